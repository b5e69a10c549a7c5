"""Every network in specs/ against PyTorch: statement by statement, the built module produces the
statically inferred shapes and holds the statically counted parameters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")  # the light install has no torch: this whole file is skipped there

import torch
import torchvision
from torch import nn

import archdsl
from archdsl.graph import Node
from archdsl.reserved_names import RESERVED_MODULE_NAMES
from archdsl.shapes import Shaped

from conftest import ROOT, SPECS, torch_threads


def walk(nodes: list[Shaped]) -> Iterator[Shaped]:
    for node in nodes:
        yield node
        yield from walk(node.children)


def forward_shapes(net: nn.Module, input_shapes: list[tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """The output shape of every submodule (its first value's, where it gives several), by its
    path, for a batch of 2."""
    shapes: dict[str, tuple[int, ...]] = {}

    def first(out: Any) -> tuple[int, ...]:
        return tuple((out[0] if isinstance(out, tuple | list) else out).shape)

    hooks = [
        module.register_forward_hook(lambda _m, _i, out, name=name: shapes.__setitem__(name, first(out)))
        for name, module in net.named_modules()
        if name
    ]
    with torch.no_grad():
        net.eval()(*(torch.randn(2, *shape) for shape in input_shapes))
    for hook in hooks:
        hook.remove()
    return shapes


@pytest.fixture(scope="module", autouse=True)
def two_threads() -> Iterator[None]:
    with torch_threads(2):
        yield


@pytest.mark.slow
@pytest.mark.parametrize("spec", SPECS)
def test_built_module_matches_static_shapes_and_parameters_statement_by_statement(spec: str) -> None:
    path = str(ROOT / spec)
    for model in archdsl.load(path).models:
        net = archdsl.build(path, model=model.name)
        produced = forward_shapes(net, [shape for _name, shape in model.inputs])
        modules = dict(net.named_modules())
        for node in walk(model.layers):
            if node.name == "*":  # no module (spliced, or a function): checked as their namespace's
                continue
            if isinstance(node, Node) and node.parameter:  # a bare parameter (a class token): no module
                assert net.get_parameter(node.path).numel() == node.params, node.path
                continue
            assert produced[node.path] == (2, *node.output), node.path
            assert sum(p.numel() for p in modules[node.path].parameters()) == node.params, node.path
        assert sum(p.numel() for p in net.parameters()) == model.params


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spec", "reference"), [("vgg16", torchvision.models.vgg16), ("resnet18", torchvision.models.resnet18)]
)
def test_classic_specs_have_torchvisions_parameter_count(spec: str, reference: type) -> None:
    expected = sum(p.numel() for p in reference(weights=None).parameters())
    assert archdsl.load(str(ROOT / "specs" / f"{spec}.arch")).model().params == expected


@pytest.mark.slow
def test_resnet18_stages_give_torchvisions_shapes_under_torchvisions_names() -> None:
    ours = archdsl.load(str(ROOT / "specs" / "resnet18.arch")).model()
    theirs = forward_shapes(torchvision.models.resnet18(weights=None), [(3, 224, 224)])
    by_name = {layer.name: layer for layer in ours.layers}
    for name in ("conv1", "bn1", "maxpool", "layer1", "layer2", "layer3", "layer4", "fc"):
        assert (2, *by_name[name].output) == theirs[name], name


def test_state_dict_keys_follow_the_spec(tmp_path: Path) -> None:
    spec = tmp_path / "named.arch"
    spec.write_text(
        "model Named {\n"
        "    input [1, 8, 8]\n"
        "    c1: conv(4, kernel=3) relu\n"
        "    mix: concat { branch wide { conv(2, kernel=1) } branch { conv(2, kernel=1, bias=false) } }\n"
        "    res: residual(shortcut=project) { conv(8, kernel=3, padding=1) }\n"
        "    flatten head: linear(3)\n"
        "    train { epochs = 1 }\n"
        "}\n"
    )
    assert list(archdsl.build(str(spec)).state_dict()) == [
        "c1.weight", "c1.bias",
        "mix.wide.0.weight", "mix.wide.0.bias", "mix.1.0.weight",
        "res.0.weight", "res.0.bias", "res.shortcut.weight", "res.shortcut.bias",
        "head.weight", "head.bias",
    ]  # fmt: skip


def test_reserved_names_cover_every_attribute_of_nn_sequential() -> None:
    # A statement named like one of these would make add_module refuse the network at build time.
    assert set(dir(nn.Sequential())) <= RESERVED_MODULE_NAMES


def test_model_parameters_are_passed_to_build() -> None:
    net = archdsl.build(str(ROOT / "specs" / "lenet5.arch"), classes=100)
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 100)


def test_an_unknown_model_parameter_is_an_arch_error_with_a_suggestion() -> None:
    with pytest.raises(archdsl.ArchError) as raised:
        archdsl.build(str(ROOT / "specs" / "lenet5.arch"), clases=100)
    assert (
        raised.value.diagnostics[0].message
        == "model LeNet5 has no argument 'clases'; did you mean 'classes'?"
    )


def test_a_spec_with_errors_does_not_build() -> None:
    with pytest.raises(archdsl.ArchError) as raised:
        archdsl.build(str(ROOT / "tests" / "fixtures" / "errors" / "alexnet_28.arch"))
    assert [d.code for d in raised.value.diagnostics] == ["E101"]


def test_the_built_module_prints_under_the_spec_names() -> None:
    net = archdsl.build(str(ROOT / "specs" / "googlenet_mini.arch"))
    assert repr(net).startswith("GoogLeNetMini(")
    assert "(3): Inception(" in repr(net)


def test_a_built_network_slices_as_nn_sequential_does(tmp_path: Path) -> None:
    net = archdsl.build(str(ROOT / "specs" / "lenet5.arch"))
    head = net[:2]
    assert isinstance(head, nn.Sequential) and [type(m).__name__ for m in head] == ["Conv2d", "Tanh"]
    assert net[-1] is list(net.children())[-1] and len(net[2:5]) == 3
    spec = tmp_path / "features.arch"
    spec.write_text(
        "model M { input [3, 8, 8] features: { conv(4, kernel=3) relu maxpool(2) } flatten }\n",
        encoding="utf-8",
    )
    built = archdsl.build(str(spec))
    features = built.features[:2]
    assert [type(m).__name__ for m in features] == ["Conv2d", "ReLU"]
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(features(x), built.features[1](built.features[0](x)))
