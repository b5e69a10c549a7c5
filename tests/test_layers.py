"""The layer kinds modern CNNs need (relu6 … mish, gelu's approximation, layernorm, layernorm2d,
groupnorm, shuffle, permute, stochasticdepth, linear on the last axis): each statement's static
shape and parameter count against the module PyTorch really builds and runs, and the runtime
helpers against torchvision's own definitions, weight for weight and draw for draw."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import archdsl
from archdsl.loader import Loader
from archdsl.pipeline import Program, compile_file
from archdsl.shapes import Shaped, ShapedModel

from conftest import HAS_TORCH, needs_torch, torch_threads

if HAS_TORCH:  # the light install runs the tests of static shapes and diagnostics alone
    import torch
    from torch import nn

    from archdsl import runtime
    from archdsl.builder import build_model


@pytest.fixture(autouse=True, scope="module")
def two_threads() -> Iterator[None]:
    with torch_threads(2):
        yield


def compile_text(body: str, input_shape: str) -> Program:
    loader = Loader()
    loader.add_text(f"model M {{\n    input {input_shape}\n    {body}\n}}\n", "t.arch")
    return compile_file("t.arch", loader=loader)


def shaped(body: str, input_shape: str) -> ShapedModel:
    program = compile_text(body, input_shape)
    assert program.errors == [], program.errors
    return program.model()


def leaves(nodes: list[Shaped]) -> Iterator[Shaped]:
    for node in nodes:
        if node.kind == "layer":
            yield node
        yield from leaves(node.children)


def assert_static_is_what_pytorch_runs(model: ShapedModel, train: bool = False) -> nn.Module:
    """Every layer's static output shape and parameter count are those of the module the builder
    makes, run on a batch of 3."""
    network = build_model(model).train(train)
    modules = dict(network.named_modules())
    seen: dict[str, tuple[int, ...]] = {}
    for node in leaves(model.layers):
        module = modules[node.path]
        assert sum(p.numel() for p in module.parameters()) == node.params, node.path
        module.register_forward_hook(
            lambda _m, _a, out, path=node.path: seen.__setitem__(path, tuple(out.shape[1:]))
        )
    with torch.no_grad():
        out = network(torch.randn(3, *model.input))
    assert seen == {node.path: node.output for node in leaves(model.layers)}
    assert tuple(out.shape[1:]) == model.output
    assert sum(p.numel() for p in network.parameters()) == model.params
    return network


@needs_torch
@pytest.mark.parametrize(
    ("body", "input_shape"),
    [
        ('relu6 hardswish hardsigmoid mish gelu gelu(approximate="tanh") silu', "[3, 5, 5]"),
        ("layernorm layernorm(eps=1e-6, bias=false) layernorm(affine=false)", "[10]"),
        ("layernorm layernorm(bias=false)", "[7, 10]"),
        ("permute(1, 2, 0) layernorm(eps=1e-6) permute(2, 0, 1)", "[6, 4, 5]"),
        ("layernorm2d layernorm2d(eps=1e-6, bias=false) layernorm2d(affine=false)", "[6, 4, 5]"),
        ("groupnorm(3) groupnorm(1, bias=false) groupnorm(6, affine=false)", "[6, 4, 5]"),
        ("groupnorm(2)", "[6]"),
        ("groupnorm(2, eps=0.001)", "[4, 7]"),
        ("shuffle(3) shuffle(2) shuffle(1)", "[6, 4, 5]"),
        ("shuffle(2)", "[4, 9]"),
        ("permute(1, 2, 0) permute([1, 0, 2]) permute(0, 1, 2)", "[6, 4, 5]"),
        ("permute(1, 0)", "[4, 9]"),
        ("permute(3, 1, 0, 2)", "[2, 3, 4, 5]"),
        ('stochasticdepth(0.5) stochasticdepth(0.2, mode="batch") stochasticdepth(1)', "[6, 4, 5]"),
        ("linear(5) linear(3, bias=false) linear(same)", "[7, 10]"),
        ("linear(5)", "[2, 3, 4, 6]"),
        ("residual { conv(same, kernel=3, padding=1) groupnorm(2) stochasticdepth(0.1) }", "[4, 6, 6]"),
    ],
)
@pytest.mark.parametrize("train", [False, True])
def test_static_shapes_and_parameters_are_what_pytorch_builds_and_runs(
    body: str, input_shape: str, train: bool
) -> None:
    assert_static_is_what_pytorch_runs(shaped(body, input_shape), train)


def test_norms_count_a_weight_and_a_bias_per_normalised_element() -> None:
    model = shaped(
        "layernorm2d groupnorm(2) groupnorm(2, bias=false) permute(1, 2, 0) layernorm "
        "layernorm(affine=false)",
        "[6, 4, 5]",
    )
    assert [node.params for node in model.layers] == [12, 12, 6, 0, 12, 0]
    assert all(node.macs == 0 for node in model.layers)


def test_linear_maps_the_last_axis_with_the_same_weights_at_every_position() -> None:
    (linear,) = shaped("linear(5)", "[7, 10]").layers
    assert (linear.output, linear.params, linear.macs) == ((7, 5), 10 * 5 + 5, 7 * 10 * 5)
    (deep,) = shaped("linear(3, bias=false)", "[2, 4, 5, 6]").layers
    assert (deep.output, deep.params, deep.macs) == ((2, 4, 5, 3), 18, 2 * 4 * 5 * 18)


def test_linear_and_layernorm_map_the_channels_of_a_channels_last_image_and_refuse_its_w() -> None:
    # Shape inference follows the axes through permutes: [C, H, W] → [H, W, C] maps C.
    (_permute, linear) = shaped("permute(1, 2, 0) linear(4)", "[3, 5, 6]").layers
    assert (linear.output, linear.params, linear.macs) == ((5, 6, 4), 16, 5 * 6 * 12)
    assert linear.axes == ("H", "W", "C")
    for statement, fix in (
        ("linear(4)", "add `flatten` before it (giving [90])"),
        ("layernorm", "`layernorm2d` normalises the channels"),
    ):
        program = compile_text(statement, "[3, 5, 6]")
        op = statement.split("(")[0]
        assert [(d.code, d.message) for d in program.errors] == [
            (
                "E102",
                f"{op} acts on the last axis, here W of [C = 3, H = 5, W = 6]: {fix}, or "
                "`permute(1, 2, 0)` moves the channels last",
            )
        ]
    # and a convolution needs the channels first again
    program = compile_text("permute(1, 2, 0) conv(4, kernel=1)", "[3, 5, 6]")
    assert [d.message for d in program.errors] == [
        "conv needs the channels first, [C, H, W], but this sample's axes are [H = 5, W = 6, C = 3] "
        "(a permute reordered them); `permute(2, 0, 1)` puts them back"
    ]
    # a transposed image is still one
    assert not compile_text("permute(0, 2, 1) conv(4, kernel=1)", "[3, 5, 6]").errors


@needs_torch
def test_layernorm2d_is_torchvisions_convnext_layernorm2d_weight_for_weight() -> None:
    from torchvision.models.convnext import LayerNorm2d

    ours = build_model(shaped("layernorm2d(eps=1e-6)", "[8, 5, 7]"))[0]
    assert isinstance(ours, nn.LayerNorm) and list(ours.state_dict()) == ["weight", "bias"]
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        ours.bias.uniform_(-1, 1)
    theirs = LayerNorm2d(8, eps=1e-6)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(3, 8, 5, 7) * 4 + 1
    assert torch.equal(ours(x), theirs(x))
    # and it is a layer norm over the channels at each position
    expected = nn.functional.layer_norm(x.movedim(1, -1), (8,), ours.weight, ours.bias, 1e-6).movedim(-1, 1)
    torch.testing.assert_close(ours(x), expected)


@needs_torch
def test_shuffle_is_torchvisions_shufflenet_channel_shuffle() -> None:
    from torchvision.models.shufflenetv2 import channel_shuffle

    for channels, groups in ((12, 3), (12, 4), (6, 2), (8, 8), (5, 1)):
        module = build_model(shaped(f"shuffle({groups})", f"[{channels}, 3, 4]"))
        x = torch.randn(2, channels, 3, 4)
        assert torch.equal(module(x), channel_shuffle(x, groups))
        assert module.state_dict() == {}
    # output channel k·groups + g is input channel g·(C/groups) + k
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert build_model(shaped("shuffle(2)", "[6, 1, 1]"))(x).flatten().tolist() == [0, 3, 1, 4, 2, 5]


@needs_torch
def test_permute_keeps_the_batch_first_as_torchvisions_permute_with_it() -> None:
    from torchvision.ops.misc import Permute

    module = build_model(shaped("permute(1, 2, 0)", "[3, 4, 5]"))
    x = torch.randn(2, 3, 4, 5)
    assert torch.equal(module(x), Permute([0, 2, 3, 1])(x))
    assert module.state_dict() == {} and repr(module[0]) == "Permute(1, 2, 0)"


@needs_torch
@pytest.mark.parametrize("mode", ["row", "batch"])
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
def test_stochastic_depth_draws_what_torchvision_draws(mode: str, p: float) -> None:
    from torchvision.ops import stochastic_depth

    module = runtime.StochasticDepth(p, mode)
    x = torch.randn(64, 3, 2, 2)
    for seed in range(5):
        torch.manual_seed(seed)
        ours = module.train()(x)
        torch.manual_seed(seed)
        theirs = stochastic_depth(x, p, mode, training=True)
        assert torch.equal(ours, theirs)
    assert module.eval()(x) is x
    assert torch.equal(stochastic_depth(x, p, mode, training=False), x)


@needs_torch
def test_stochastic_depth_drops_whole_samples_and_scales_the_rest() -> None:
    torch.manual_seed(0)
    x = torch.ones(400, 2, 3)
    row = runtime.StochasticDepth(0.25, "row").train()(x)
    kept = row.flatten(1).amax(dim=1)
    assert set(kept.tolist()) == {0.0, torch.tensor(1 / 0.75).item()}  # all dropped or all scaled
    assert bool((row.flatten(1) == kept[:, None]).all())
    batch = runtime.StochasticDepth(0.25, "batch").train()(x)
    assert len(set(batch.flatten().tolist())) == 1  # the whole batch together


@needs_torch
def test_stochastic_depth_learns_nothing_and_says_what_it_is() -> None:
    module = build_model(shaped('stochasticdepth(0.1, mode="batch")', "[4]"))[0]
    assert module.state_dict() == {} and list(module.parameters()) == []
    assert repr(module) == "StochasticDepth(p=0.1, mode='batch')"
    assert repr(build_model(shaped("stochasticdepth(0.2)", "[4]"))[0]) == "StochasticDepth(p=0.2, mode='row')"


def test_stochastic_depth_of_one_warns_that_nothing_before_it_learns() -> None:
    program = compile_text("residual { linear(same) stochasticdepth(p=1) }", "[4]")
    assert [d.code for d in program.diagnostics] == ["W002"]
    assert compile_text("stochasticdepth(p=0.99)", "[4]").diagnostics == []


@needs_torch
def test_the_activations_are_pytorchs_own_modules() -> None:
    module = build_model(shaped('relu6 hardswish hardsigmoid mish gelu gelu(approximate="tanh")', "[4]"))
    assert [repr(m) for m in module] == [
        "ReLU6()",
        "Hardswish()",
        "Hardsigmoid()",
        "Mish()",
        "GELU(approximate='none')",
        "GELU(approximate='tanh')",
    ]
    program = compile_text('gelu(approximate="erf")', "[4]")
    assert [d.code for d in program.errors] == ["E005"]
    assert "one of `none`, `tanh`" in program.errors[0].message


@needs_torch
def test_the_new_layers_build_from_a_file_with_the_public_api(tmp_path: Path) -> None:
    path = tmp_path / "convnext_block.arch"
    path.write_text(
        "block Block(width: int) {\n"
        "    residual {\n"
        "        conv(same, kernel=7, padding=3, groups=width)\n"
        "        permute(1, 2, 0) layernorm(eps=1e-6) permute(2, 0, 1)\n"
        "        conv(width * 4, kernel=1) gelu conv(width, kernel=1)\n"
        "        stochasticdepth(0.1)\n"
        "    }\n"
        "}\n"
        "model Tiny {\n"
        "    input [3, 32, 32]\n"
        "    conv(16, kernel=4, stride=4) layernorm2d(eps=1e-6)\n"
        "    Block(16) Block(16)\n"
        "    layernorm2d(eps=1e-6) conv(32, kernel=2, stride=2) Block(32)\n"
        "    adaptiveavgpool(1) flatten layernorm(eps=1e-6) linear(10)\n"
        "}\n",
        encoding="utf-8",
    )
    model = archdsl.load(str(path)).model()
    assert model.output == (10,)
    network = assert_static_is_what_pytorch_runs(model, train=True)
    assert sum(p.numel() for p in network.parameters()) == model.params
