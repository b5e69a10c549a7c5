"""`pretrained(...)`: torchvision models as layers, checked on the meta device and built for real;
and `archdsl train --max-params`.

Only weights=None models are built from torchvision here (nothing can be downloaded); weights are
exercised through a checkpoint placed in torchvision's cache, and a download failure is simulated.
"""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest

import archdsl
from archdsl.errors import ArchError, SourceCache, render
from archdsl.loader import Loader
from archdsl.pipeline import Program, compile_file
from archdsl.receptive import receptive_fields
from archdsl.table import describe

from conftest import HAS_TORCH, needs_fashion, needs_torch, run_cli, write_spec

if HAS_TORCH:  # the light install runs the tests that check specs alone
    import torch
    import torchvision
    from torch import nn

    from archdsl.builder import build_model


def check_text(text: str, name: str = "net.arch") -> Program:
    loader = Loader()
    loader.add_text(text, name)
    return compile_file(name, loader=loader)


def rendered(program: Program) -> str:
    cache = SourceCache(program.sources)
    return "\n\n".join(render(d, cache) for d in program.diagnostics)


def reference(name: str, part: str | None) -> nn.Module:
    """The module as a user would write it in PyTorch."""
    kwargs = {"aux_logits": False} if name in ("googlenet", "inception_v3") else {}
    module = torchvision.models.get_model(name, weights=None, **kwargs)
    for component in (part or "").split(".") if part else ():
        module = getattr(module, component)
    return module


# --- shapes agree with PyTorch --------------------------------------------------------------------


@pytest.mark.slow
@needs_torch
@pytest.mark.filterwarnings("ignore:The default weight initialization:FutureWarning")
@pytest.mark.parametrize(
    ("name", "part", "shape"),
    [
        ("vgg11", "features", (3, 64, 64)),
        ("mobilenet_v3_small", "features", (3, 64, 64)),
        ("resnet18", None, (3, 64, 64)),
        ("resnet18", "layer4", (256, 8, 8)),
        ("resnet18", "layer4.1", (512, 3, 5)),
        ("googlenet", None, (3, 96, 96)),
    ],
)
def test_static_shape_and_params_equal_the_built_module_and_pytorch(
    name: str, part: str | None, shape: tuple[int, ...]
) -> None:
    part_arg = f', part="{part}"' if part else ""
    program = check_text(f'model M {{\n    input {list(shape)}\n    pretrained("{name}"{part_arg})\n}}\n')
    assert program.diagnostics == []
    layer = program.model().layers[0]
    theirs = reference(name, part).eval()
    with torch.no_grad():
        expected = tuple(theirs(torch.randn(2, *shape)).shape[1:])
    assert layer.output == expected
    assert layer.params == sum(p.numel() for p in theirs.parameters())
    built = build_model(program.model()).eval()
    with torch.no_grad():
        assert tuple(built(torch.randn(2, *shape)).shape[1:]) == expected
    assert sum(p.numel() for p in built.parameters()) == layer.params


def test_macs_are_convolution_and_matmul_multiplies_as_archdsl_counts_them() -> None:
    # vgg11's first conv block written out in archdsl, against the same part of torchvision's model.
    ours = check_text("model M { input [3, 32, 32] conv(64, kernel=3, padding=1) relu maxpool(2) }\n")
    theirs = check_text('model M { input [3, 32, 32] pretrained("vgg11", part="features.0") }\n')
    assert theirs.model().macs == ours.model().macs == 64 * 3 * 9 * 32 * 32
    assert theirs.model().params == ours.model().params


@pytest.mark.slow
@needs_torch
def test_build_of_pretrained_features_then_classifier_runs_at_the_inferred_shape(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        'model T {\n    input [3, 64, 64]\n    pretrained("vgg11", part="features")\n'
        "    flatten linear(10)\n}\n",
    )
    program = archdsl.load(spec)
    assert program.model().layers[0].output == (512, 2, 2)
    net = archdsl.build(spec)
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    assert sum(p.numel() for p in net.parameters()) == program.model().params == 9_220_480 + 20_490
    assert isinstance(net[0], nn.Sequential) and isinstance(net[0][0], nn.Conv2d)


@needs_torch
def test_freeze_turns_off_gradients_of_the_pretrained_layer_only(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        "model T {\n    input [3, 32, 32]\n"
        '    pretrained("mobilenet_v3_small", part="features", freeze=true)\n'
        "    adaptiveavgpool(1) flatten linear(10)\n}\n",
    )
    net = archdsl.build(spec)
    assert [p.requires_grad for p in net[0].parameters()] == [False] * len(list(net[0].parameters()))
    assert all(p.requires_grad for p in net[3].parameters())
    assert describe(archdsl.load(spec).model().layers[0]) == "pretrained mobilenet_v3_small.features, frozen"


def test_receptive_field_of_a_pretrained_layer_is_its_whole_input() -> None:
    program = check_text('model M { input [3, 32, 32] pretrained("vgg11", part="features") }\n')
    assert receptive_fields(program.model())["0"].text() == "global"


# --- weights ---------------------------------------------------------------------------------------


@needs_torch
def test_weights_are_loaded_from_torchvisions_cache_at_build_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    saved = torchvision.models.resnet18().state_dict()
    torch.save(saved, checkpoints / os.path.basename(weights.url))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    spec = write_spec(
        tmp_path,
        'model T {\n    input [3, 32, 32]\n    pretrained("resnet18", weights="DEFAULT", freeze=true)\n}\n',
    )
    net = archdsl.build(spec)
    assert torch.equal(net[0].conv1.weight, saved["conv1.weight"])
    assert not any(p.requires_grad for p in net.parameters())


@needs_torch
def test_a_failed_download_is_a_positioned_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    spec = write_spec(
        tmp_path, 'model T {\n    input [3, 32, 32]\n    pretrained("resnet18", weights="IMAGENET1K_V1")\n}\n'
    )
    with pytest.raises(ArchError) as caught:
        archdsl.build(spec)
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.code, diagnostic.span.line, diagnostic.span.column) == ("E111", 3, 5)
    assert diagnostic.message == (
        "cannot load the IMAGENET1K_V1 weights of resnet18 from "
        "https://download.pytorch.org/models/resnet18-f37072fd.pth: <urlopen error no network> "
        "(torchvision keeps downloaded weights under $TORCH_HOME/hub)"
    )


@needs_torch
def test_summary_verify_compares_shapes_without_downloading_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_download(url: str, *args: object, **kwargs: object) -> None:
        pytest.fail(f"summary --verify downloaded {url}")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: any weights would be fetched
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    spec = write_spec(
        tmp_path,
        'model T {\n    input [64, 8, 8]\n    pretrained("resnet18", part="layer1", weights="DEFAULT")\n'
        "    flatten\n}\n",
    )
    code, out = run_cli("summary", spec, "--verify")
    assert code == 0, out
    assert out.endswith("\n\nverified against torchinfo: 2 layers agree\n")


# --- errors ----------------------------------------------------------------------------------------


def test_unknown_weights_are_a_positioned_error_listing_the_models_weights() -> None:
    program = check_text('model M {\n  input [3, 32, 32]\n  pretrained("resnet18", weights="NOPE")\n}\n')
    assert rendered(program) == (
        'net.arch:3:26: error[E005]: resnet18 has no weights "NOPE" (it has IMAGENET1K_V1, DEFAULT)\n'
        '    3 |   pretrained("resnet18", weights="NOPE")\n'
        "      |                          ^^^^^^^^^^^^^^\n"
        "note: [3, 32, 32] is the model's input (line 2)"
    )


@needs_torch
@pytest.mark.parametrize("name", ["os.system", "../x", "__import__", "torchvision.models.resnet18", ""])
def test_only_registered_model_names_are_accepted(name: str) -> None:
    program = check_text(f'model M {{\n  input [3, 32, 32]\n  pretrained("{name}")\n}}\n')
    (diagnostic,) = program.diagnostics
    assert (diagnostic.code, diagnostic.span.line, diagnostic.span.column) == ("E005", 3, 14)
    assert diagnostic.message.startswith(f'"{name}" is not a torchvision classification model')


@needs_torch
def test_misspelt_model_name_suggests_the_registered_one() -> None:
    program = check_text('model M {\n  input [3, 32, 32]\n  pretrained("resnet81")\n}\n')
    assert program.diagnostics[0].message == (
        "\"resnet81\" is not a torchvision classification model; did you mean 'resnet18'?"
    )


def test_missing_part_lists_the_models_children_with_did_you_mean() -> None:
    program = check_text('model M {\n  input [3, 32, 32]\n  pretrained("resnet18", part="layer5")\n}\n')
    assert rendered(program) == (
        'net.arch:3:26: error[E005]: resnet18 has no part "layer5" (its parts: conv1, bn1, relu, '
        "maxpool, layer1, layer2, layer3, layer4, avgpool, fc); did you mean 'layer4'?\n"
        '    3 |   pretrained("resnet18", part="layer5")\n'
        "      |                          ^^^^^^^^^^^^^\n"
        "note: [3, 32, 32] is the model's input (line 2)"
    )


def test_a_part_path_goes_through_submodules_not_attributes() -> None:
    # `forward` and `_modules` are attributes of every module, not parts.
    for part, listed in (("forward", "conv1, bn1"), ("layer1._modules", "0, 1")):
        program = check_text(f'model M {{ input [3, 32, 32] pretrained("resnet18", part="{part}") }}\n')
        assert program.diagnostics[0].code == "E005"
        assert f"(its parts: {listed}" in program.diagnostics[0].message


def test_input_a_zoo_network_cannot_take_is_the_static_error_of_its_spec() -> None:
    program = check_text('model M {\n  input [3, 16, 16]\n  pretrained("vgg11")\n}\n')
    assert rendered(program) == (
        "net.arch:3:3: error[E111]: pretrained vgg11 cannot take a [3, 16, 16] input: maxpool output "
        "is empty: input [512, 1, 1], kernel 2, stride 2 → ⌊(1 − 2)/2⌋ + 1 = 0\n"
        '    3 |   pretrained("vgg11")\n'
        "      |   ^^^^^^^^^^^^^^^^^^^\n"
        "note: [3, 16, 16] is the model's input (line 2)"
    )


@needs_torch
def test_input_a_network_outside_the_zoo_cannot_take_names_the_failing_submodule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from archdsl import pretrained

    # A network with no spec is run by torch on meta tensors.
    monkeypatch.setattr(pretrained, "in_zoo", lambda name: False)
    program = check_text('model M {\n  input [3, 16, 16]\n  pretrained("vgg11")\n}\n')
    assert rendered(program) == (
        "net.arch:3:3: error[E111]: pretrained vgg11 fails on a [3, 16, 16] input at vgg11.features.20 "
        "(MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)) on [512, 1, 1]: "
        "Given input size: (512x1x1). Calculated output size: (512x0x0). Output size is too small\n"
        '    3 |   pretrained("vgg11")\n'
        "      |   ^^^^^^^^^^^^^^^^^^^\n"
        "note: [3, 16, 16] is the model's input (line 2)"
    )


# --- archdsl train --max-params --------------------------------------------------------------------

MLP = """model Mlp {
    input [1, 28, 28]
    flatten linear(100) relu linear(10)
    train { dataset = "fashion-mnist" epochs = 1 batch = 64 }
}
"""


@needs_torch
def test_train_refuses_a_model_over_max_params_before_loading_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARCHDSL_NO_DOWNLOAD", "1")
    monkeypatch.setenv("ARCHDSL_DATA", str(tmp_path / "no-data"))
    write_spec(tmp_path, MLP)
    code, out = run_cli("train", "net.arch", "--max-params", "50000", "--out", "run")
    assert code == 1
    assert out == (
        "note: default optimizer sgd(lr=0.01, momentum=0.9)\n"
        "net.arch:1:1: error[E110]: model Mlp has 79,510 parameters (310.6 KiB as float32), more than "
        "max_params=50,000; raise the limit (max_params=…, --max-params) to build it\n"
        "    1 | model Mlp {\n"
        "      | ^^^^^^^^^^^\n\n"
    )
    assert not (tmp_path / "run").exists()


@needs_torch
@needs_fashion
def test_train_max_params_above_the_model_lets_it_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHDSL_NO_DOWNLOAD", "1")
    monkeypatch.setenv("ARCHDSL_DATA", str(tmp_path / "data-root"))
    spec = write_spec(tmp_path, MLP)
    out = tmp_path / "run"
    code, text = run_cli(
        "train", spec, "--max-params", "79510", "--limit", "600", "--device", "cpu", "--out", str(out)
    )
    assert code == 0, text
    assert (out / "model.pt").is_file()


@pytest.mark.slow
def test_a_zoo_network_is_checked_from_its_spec_without_importing_torch(tmp_path: Path) -> None:
    import subprocess
    import sys

    def check(body: str) -> subprocess.CompletedProcess[str]:
        spec = tmp_path / "transfer.arch"
        spec.write_text(body, encoding="utf-8")
        code = (
            "import sys, archdsl\n"
            "diagnostics = archdsl.check([sys.argv[1]])\n"
            "print([d.message for d in diagnostics], 'torch' in sys.modules)\n"
        )
        return subprocess.run(
            [sys.executable, "-c", code, str(spec)], capture_output=True, text=True, check=True
        )

    clean = check(
        'model T {\n    input [64, 16, 16]\n    pretrained("resnet18", part="layer1", freeze=true)\n'
        "    flatten linear(10)\n}\n"
    )
    assert clean.stdout == "[] False\n"
    # layer1 was made for 64 channels: a convolution of torchvision's does not infer them
    wrong = check('model T {\n    input [3, 64, 64]\n    pretrained("resnet18", part="layer1")\n}\n')
    message = "pretrained resnet18.layer1 takes 64 channels ([64, H, W]), not the [3, 64, 64] it is given"
    assert wrong.stdout == f"[{message!r}] False\n"


def test_a_transformers_part_is_checked_from_its_spec_on_tokens() -> None:
    # ViT's encoder takes the 197 tokens of a 224×224 image, the class token first: the tokens
    # its position embedding was made for
    program = check_text(
        'model M {\n  input [197, 768]\n  pretrained("vit_b_16", part="encoder", freeze=true)\n'
        "  select(0) linear(2)\n}\n"
    )
    assert program.diagnostics == []
    assert program.model().params == 85_207_296 + 768 * 2 + 2  # torchvision's encoder, the head
    program = check_text('model M {\n  input [3, 224, 224]\n  pretrained("vit_b_16", part="encoder")\n}\n')
    assert rendered(program) == (
        "net.arch:3:3: error[E111]: pretrained vit_b_16.encoder takes a sample of 2 axes, [197, 768] at "
        "the network's default size, not the [3, 224, 224] it is given\n"
        '    3 |   pretrained("vit_b_16", part="encoder")\n'
        "      |   ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        "note: [3, 224, 224] is the model's input (line 2)"
    )


@pytest.mark.slow
@needs_torch
def test_a_channels_last_part_is_checked_as_the_network_lays_it_out() -> None:
    # Swin's stages take maps [H, W, C]: the part reads its input so, whatever the value given
    # calls its axes, and its channels are the last axis
    program = check_text('model M {\n  input [56, 56, 96]\n  pretrained("swin_t", part="features.1")\n}\n')
    assert program.diagnostics == []
    theirs = torchvision.models.swin_t().features[1]
    assert program.model().params == sum(p.numel() for p in theirs.parameters())
    with torch.no_grad():
        built = build_model(program.model()).eval()(torch.randn(1, 56, 56, 96))
    assert tuple(built.shape[1:]) == program.model().output == (56, 56, 96)
    clip = check_text('model M {\n  input [3, 16, 224, 224]\n  pretrained("swin3d_t", part="features")\n}\n')
    assert rendered(clip) == (
        "net.arch:3:3: error[E111]: pretrained swin3d_t.features takes 96 channels ([T, H, W, 96]), not "
        "the [3, 16, 224, 224] it is given\n"
        '    3 |   pretrained("swin3d_t", part="features")\n'
        "      |   ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        "note: [3, 16, 224, 224] is the model's input (line 2)"
    )


@pytest.mark.slow
@needs_torch
def test_a_video_network_of_the_zoo_is_checked_from_its_spec_and_built_by_torchvision(tmp_path: Path) -> None:
    import subprocess
    import sys

    spec = tmp_path / "clips.arch"
    code = (
        "import sys, archdsl\n"
        "print([d.message for d in archdsl.check([sys.argv[1]])], 'torch' in sys.modules)\n"
    )
    spec.write_text(
        'model T {\n    input [3, 8, 32, 32]\n    pretrained("r3d_18", part="layer2")\n}\n', encoding="utf-8"
    )
    wrong = subprocess.run(
        [sys.executable, "-c", code, str(spec)], capture_output=True, text=True, check=True
    )
    message = "pretrained r3d_18.layer2 takes 64 channels ([64, T, H, W]), not the [3, 8, 32, 32] it is given"
    assert wrong.stdout == f"[{message!r}] False\n"
    spec.write_text(
        'model T {\n    input [3, 8, 32, 32]\n    pretrained("r2plus1d_18", weights="KINETICS400_V1")\n}\n',
        encoding="utf-8",
    )
    clean = subprocess.run(
        [sys.executable, "-c", code, str(spec)], capture_output=True, text=True, check=True
    )
    assert clean.stdout == "[] False\n"
    model = archdsl.load(spec).model()
    assert (model.output, model.params) == ((400,), 31_505_325)
    theirs = reference("mc3_18", "layer3").eval()
    program = check_text('model M {\n    input [128, 4, 8, 8]\n    pretrained("mc3_18", part="layer3")\n}\n')
    assert program.diagnostics == []
    with torch.no_grad():
        expected = tuple(theirs(torch.randn(1, 128, 4, 8, 8)).shape[1:])
    assert program.model().output == expected == (256, 4, 4, 4)
    built = build_model(program.model()).eval()
    assert sum(p.numel() for p in built.parameters()) == program.model().params
