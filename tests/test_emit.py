"""`archdsl emit`: the source as goldens, and the emitted classes against `archdsl.build` — the same
state_dict keys, weights loading both ways, the same outputs — formatted, deterministic, torch-only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import archdsl
from archdsl.codegen.source import emit_source
from archdsl.layers import LAYERS, Layer
from archdsl.pipeline import compile_file
from campaigns import specgen

from conftest import HAS_TORCH, ROOT, SPECS, needs_torch, run_cli, torch_threads

# The light install runs the tests of the emitted text alone (campaigns/emit.py, which holds
# RUFF and load_source, imports torch: the ruff tests are torch's too).
if HAS_TORCH:
    import torch
    from torch import nn

    from campaigns.emit import RUFF, assert_same_network, load_source

PYTHON = sys.executable

#: Everything the emitter has a special case for: block parameters, repeat, concat with named,
#: unnamed and empty branches, residuals with conv and linear projections, view with -1, every
#: layer with non-default arguments, and names Python reserves (a keyword, `__private`, a block
#: named like the module the code imports, one named like the emitted residual helper).
ODD = """
block torch(width: int) { conv(width, kernel=3, padding=1) relu }

block Residual(width: int) {
    residual(shortcut=project, bias=false, batchnorm=true) {
        conv(width, kernel=3, stride=2, padding=1, bias=false) batchnorm relu
    }
}

block Mixer(width: int, depth: int = 2) {
    repeat depth { conv(width, kernel=[3, 5], padding=[1, 2], groups=2) leakyrelu(0.2) }
    concat {
        branch left { conv(8, kernel=1) }
        branch { }
        branch def { maxpool(3, stride=1, padding=1) conv(4, kernel=1, bias=false) }
    }
}

model Odd(classes: int = 7) {
    input [4, 16, 16]
    class: conv(8, kernel=3, padding="same", dilation=2)
    x: batchnorm(eps=0.001, momentum=0.2)
    self: elu(alpha=0.5)
    __private: gelu
    torch(8)
    Mixer(8)
    Residual(16)
    maxpool(2, ceil=true)
    avgpool(3, stride=2, padding=1, count_include_pad=false, ceil=true)
    adaptivemaxpool([2, 3])
    dropout2d(0.1)
    view(-1, 6)
    batchnorm
    silu sigmoid identity
    flatten
    residual(shortcut=project) { linear(12) tanh }
    residual { linear(same) relu }
    batchnorm(affine=false)
    residual(shortcut=project, batchnorm=true) { linear(10) }
    dropout(0.25)
    out: linear(classes, bias=false)
    logsoftmax
}

model Second {
    input [8, 16, 16]
    torch(8)
    leaf: conv(4, kernel=1, padding="valid")
    adaptiveavgpool(1)
    flatten
    softmax(dim=-1)
}
"""


@pytest.fixture(scope="module", autouse=True)
def two_threads() -> Iterator[None]:
    with torch_threads(2):
        yield


@pytest.fixture(scope="module")
def odd_spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("odd") / "odd.arch"
    path.write_text(ODD, encoding="utf-8")
    return path


def emitted(path: str | Path, **params: object) -> str:
    program = compile_file(str(path), params=params or None)
    assert not program.errors, program.errors
    return emit_source(*program.models, program=program)


def spec_classes(source: str) -> list[str]:
    """The classes emitted for the spec's models and blocks, without the helpers copied in."""
    from archdsl.codegen.source import helper_sources

    return [c for c in re.findall(r"^class (\w+)\(", source, flags=re.M) if c not in helper_sources()]


def ruff_format_check(source: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUFF, "format", "--check", "--diff", *options, "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


@pytest.mark.parametrize("spec", SPECS)
def test_emitted_source_matches_golden(spec: str, in_root: Path, golden: Callable[[Path, str], None]) -> None:
    code, source = run_cli("emit", spec)
    assert code == 0
    golden(ROOT / "tests" / "golden" / Path(spec).stem / "model.py", source)


HANDWRITTEN = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tests" / "handwritten").glob("*.arch"))


@pytest.mark.slow
@needs_torch
@pytest.mark.parametrize("spec", SPECS + HANDWRITTEN)
def test_emitted_class_loads_the_built_weights_and_computes_the_same(spec: str, tmp_path: Path) -> None:
    path = ROOT / spec
    for model in archdsl.load(str(path)).models:
        assert_same_network(path, model.name, emitted(path), tmp_path)


@needs_torch
@pytest.mark.parametrize("model", ["Odd", "Second"])
def test_keywords_private_names_and_every_layer_kind_emit_what_the_builder_builds(
    model: str, odd_spec: Path, tmp_path: Path
) -> None:
    assert_same_network(odd_spec, model, emitted(odd_spec), tmp_path)


def test_names_python_reserves_are_reached_through_add_module_and_getattr(odd_spec: Path) -> None:
    source = emitted(odd_spec)
    assert 'self.add_module(\n            "class",' in source or 'self.add_module("class", ' in source
    assert 'x = getattr(self, "class")(x)  # [8, 16, 16]' in source
    assert 'x = getattr(self, "__private")(x)  # [8, 16, 16]' in source  # self.__private would mangle
    assert "        x = self.x(x)  # [8, 16, 16]\n        x = self.self(x)  # [8, 16, 16]\n" in source
    # the spec's blocks keep their names where Python allows; the helper gives way
    assert "class torch_(Sequential):" in source and 'self.add_module("4", torch_(8, width=8))' in source
    assert "class Residual(Sequential):" in source and "class ResidualModule(nn.Sequential):" in source
    assert "class Mixer(Sequential):" in source
    # one class for the block called twice on the same shape, in two models
    assert source.count("class torch_") == 1 and "class torch_2" not in source


@pytest.mark.slow
@needs_torch
def test_pretrained_layers_are_torchvision_models_cut_and_frozen_as_built(tmp_path: Path) -> None:
    path = tmp_path / "tuned.arch"
    path.write_text(
        "model Tuned {\n"
        "    input [64, 16, 16]\n"
        '    stem: pretrained("resnet18", part="layer1", freeze=true)\n'
        "    adaptiveavgpool(1) flatten linear(10)\n"
        "}\n",
        encoding="utf-8",
    )
    source = emitted(path)
    assert '        self.stem = pretrained("resnet18", part="layer1", freeze=True)\n' in source
    assert source.startswith(
        f"# Generated by `archdsl emit` from {path}; needs only torch and torchvision.\n"
    )
    assert ruff_format_check(source, "--isolated").returncode == 0
    assert_same_network(path, "Tuned", source, tmp_path)
    ours = load_source(source, tmp_path).Tuned()
    assert [p.requires_grad for p in ours.parameters()] == [
        p.requires_grad for p in archdsl.build(str(path)).parameters()
    ]


def test_every_layer_of_the_language_describes_its_module() -> None:
    # emit and build both read `Layer.module` (a function's `Layer.function`); the base class's
    # raise NotImplementedError
    assert [
        name for name, layer in LAYERS.items() if layer.member and type(layer).module is Layer.module
    ] == []
    assert [
        name for name, layer in LAYERS.items() if not layer.member and type(layer).function is Layer.function
    ] == []
    # and a layer that is a bare parameter says so instead
    bare = [name for name, layer in LAYERS.items() if type(layer).parameter is not Layer.parameter]
    assert bare == ["scale", "token", "posembed"]
    # and says how forward combines it with what flows through
    assert all(type(LAYERS[name]).use is not Layer.use for name in bare)


@needs_torch
def test_a_block_is_one_class_taking_its_input_channels_and_parameters(tmp_path: Path) -> None:
    path = tmp_path / "basic.arch"
    path.write_text(
        "block Basic(width: int, depth: int = 2) {\n"
        "    repeat depth { conv(width, kernel=3, padding=1, bias=false) batchnorm relu }\n"
        "}\n"
        "block Pair(width: int) { Basic(width) Basic(width * 2, depth=1) }\n"
        "model M {\n"
        "    input [64, 16, 16]\n"
        "    Basic(64)\n"
        "    conv(128, kernel=1)\n"
        "    Basic(128)\n"
        "    Pair(32)\n"
        "}\n",
        encoding="utf-8",
    )
    source = emitted(path)
    assert spec_classes(source) == ["Basic", "Pair", "M"]
    assert "    def __init__(self, in_channels: int, width: int, depth: int = 2) -> None:\n" in source
    assert "                            in_channels if i == 0 else width,\n" in source
    assert "                    for i in range(depth)\n" in source
    assert "            Basic(64, width=64),  # [64, 16, 16]\n" in source
    assert "            Basic(128, width=128),  # [128, 16, 16]\n" in source
    assert "            Basic(in_channels, width=width),  # [width, H, W]\n" in source
    assert "            Basic(width, width=width * 2, depth=1),  # [width * 2, H, W]\n" in source
    assert "        Basic(64, width=64): [64, 16, 16] -> [64, 16, 16], 73,984 parameters\n" in source
    assert_same_network(path, "M", source, tmp_path)


@needs_torch
def test_block_classes_build_what_the_spec_builds_at_values_the_spec_never_used(tmp_path: Path) -> None:
    """The classes are general, not fitted to the calls they were emitted from: resnet18's `Stage`
    on an odd size and widths no call uses, vgg16's `Stage` with a repeat count of 1."""
    cases = [
        ("resnet18", "ResNet18", "[24, 9, 9]", "Stage(40)", lambda m: m.Stage(24, width=40)),
        ("vgg16", "VGG16", "[5, 11, 10]", "Stage(6, 1)", lambda m: m.Stage(5, width=6, convs=1)),
    ]
    for stem, model, shape, statement, construct in cases:
        blocks = (ROOT / "specs" / f"{stem}.arch").read_text(encoding="utf-8").split(f"model {model}")[0]
        path = tmp_path / f"{stem}_probe.arch"
        path.write_text(f"{blocks}model Probe {{\n    input {shape}\n    {statement}\n}}\n", encoding="utf-8")
        built = archdsl.build(str(path))
        ours = nn.Sequential(construct(load_source(emitted(ROOT / "specs" / f"{stem}.arch"), tmp_path)))
        assert list(ours.state_dict()) == list(built.state_dict())
        ours.load_state_dict(built.state_dict(), strict=True)
        x = torch.randn(2, *archdsl.load(str(path)).model().input, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            assert torch.equal(ours.eval()(x), built.eval()(x))


def test_unet_up_is_one_class_its_skip_read_by_forward_and_bilinear_an_if_in_init(in_root: Path) -> None:
    source = emitted("specs/unet.arch")
    assert spec_classes(source) == ["DoubleConv", "Down", "Up", "UNet"]
    # the skip's channel count is `__init__`'s, the skip itself `forward`'s
    assert (
        "    def __init__(\n        self,\n        in_channels: int,\n        skip_channels: int,\n"
        "        out: int,\n        bilinear: bool = False,\n    ) -> None:\n"
    ) in source
    assert "    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:\n" in source
    # both ways up, though every call of the spec takes the transposed convolution
    assert (
        "        if bilinear:\n"
        '            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)\n'
        "        else:\n"
        "            self.up = nn.ConvTranspose2d(\n"
    ) in source
    assert "            skip_channels + (in_channels if bilinear else in_channels // 2),\n" in source
    assert "            mid=(skip_channels + in_channels) // 2 if bilinear else out,\n" in source
    assert "        x = self.conv(x)  # [out, skip_H, skip_W]\n" in source
    assert "        self.up1 = Up(1024, skip_channels=512, out=512)\n" in source


@needs_torch
def test_unet_up_builds_what_the_spec_builds_at_channels_sizes_and_a_bilinear_the_spec_never_used(
    tmp_path: Path,
) -> None:
    """Every `Up` of specs/unet.arch takes the transposed convolution; the class built with
    `bilinear=True`, at channel counts and odd sizes no call uses, is what the spec builds there."""
    spec = ROOT / "specs" / "unet.arch"
    blocks = spec.read_text(encoding="utf-8").split("model UNet")[0]
    emitted_unet = load_source(emitted(spec), tmp_path)
    generator = torch.Generator().manual_seed(0)
    for bilinear in (False, True):
        path = tmp_path / f"up_{bilinear}.arch"
        path.write_text(
            f"{blocks}model Probe {{\n    input [10, 4, 5] as low\n    input [6, 9, 11] as skip\n"
            f"    low -> up: Up(skip, 7, {str(bilinear).lower()})\n}}\n",
            encoding="utf-8",
        )
        built = archdsl.build(str(path)).get_submodule("up")
        ours = emitted_unet.Up(10, skip_channels=6, out=7, bilinear=bilinear)
        assert list(ours.state_dict()) == list(built.state_dict())
        ours.load_state_dict(built.state_dict(), strict=True)
        low, skip = (
            torch.randn(2, 10, 4, 5, generator=generator),
            torch.randn(2, 6, 9, 11, generator=generator),
        )
        with torch.no_grad():
            assert torch.equal(ours.eval()(low, skip), built.eval()(low, skip))


#: Blocks of the dataflow graph: an input named and read again, several values given, values read
#: by name and joined, a split whose sizes are the parameters', a tensor parameter, an `if` on the
#: parameters and sizes in a class with attributes and in a sequence, and one whose branches run
#: alike.
GRAPH = """
block Two(w: int) {
    input as x
    conv(w, kernel=1) as a
    x -> conv(w, kernel=3, padding=1) as b
    output a, b
}

block Halves(w: int) {
    conv(w * 2, kernel=1)
    split(2) as (a, b)
    a -> add(b)
}

block Meet(skip: tensor, w: int) {
    input as x
    resize(skip) as y
    skip -> cat(y)
    conv(w, kernel=3, padding=1)
    if channels(x) == w { act: relu } else { act: sigmoid }
}

block Steps(w: int, wide: bool = false) {
    conv(w, kernel=1)
    if wide { conv(w * 2, kernel=3, padding=1) } else { conv(w * 2, kernel=1) }
    if w > 4 { relu } else { relu }
}

model M {
    input [3, 8, 8]
    Two(4) as (a, b)
    a -> cat(b)
    conv(6, kernel=1) as s
    maxpool(2)
    Two(5) as (c, d)
    c -> add(d)
    Halves(3)
    Meet(s, 6)
    Halves(5)
    Meet(s, 4)
    Steps(4)
    Steps(6, true)
}
"""


@needs_torch
def test_blocks_of_the_dataflow_graph_are_one_class_each(tmp_path: Path) -> None:
    path = tmp_path / "graph.arch"
    path.write_text(GRAPH, encoding="utf-8")
    source = emitted(path)
    assert spec_classes(source) == ["Two", "Halves", "Meet", "Steps", "M"]
    assert "    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:\n" in source
    assert "        self.split_sizes = [w, w]\n" in source
    assert "        a, b = torch.split(x, self.split_sizes, dim=1)\n" in source
    assert "    def __init__(self, in_channels: int, skip_channels: int, w: int) -> None:\n" in source
    assert "    [in_channels, H, W], skip [skip_channels, skip_H, skip_W] -> [w, skip_H, skip_W].\n" in source
    assert "        if in_channels == w:\n            self.act = nn.ReLU()\n" in source
    # in a sequence, a member built one way or the other; where both are the same, no `if`
    assert "                if wide\n                else nn.Conv2d(w, w * 2, kernel_size=1)\n" in source
    assert "            nn.ReLU(),  # [w * 2, H, W]\n" in source
    assert ruff_format_check(source, "--isolated").returncode == 0
    assert_same_network(path, "M", source, tmp_path)
    # and at values no call uses
    module = load_source(source, tmp_path)
    probe = tmp_path / "probe.arch"
    for statement, construct, shapes in [
        ("Halves(7)", lambda: module.Halves(5, w=7), [(5, 3, 4)]),
        ("Steps(3, true)", lambda: module.Steps(5, w=3, wide=True), [(5, 3, 4)]),
        ("s -> Meet(x, 2)", lambda: module.Meet(4, skip_channels=5, w=2), [(4, 3, 4), (5, 6, 2)]),
    ]:
        inputs = (
            "    input [5, 3, 4] as x\n    input [4, 3, 4] as s\n"
            if "Meet" in statement
            else "    input [5, 3, 4]\n"
        )
        probe.write_text(
            GRAPH.split("model M")[0] + f"model Probe {{\n{inputs}    {statement}\n}}\n", encoding="utf-8"
        )
        built = archdsl.build(str(probe)).get_submodule("0")
        ours = construct()
        ours.load_state_dict(built.state_dict(), strict=True)
        generator = torch.Generator().manual_seed(0)
        xs = [torch.randn(2, *shape, generator=generator) for shape in shapes]
        with torch.no_grad():
            assert torch.equal(ours.eval()(*xs), built.eval()(*xs))


@needs_torch
def test_a_transposed_convolution_keeping_its_channels_takes_them_from_init(tmp_path: Path) -> None:
    # Found with the graph's layers: its class said nothing of its sizes over expressions, so the
    # class built `nn.ConvTranspose2d(in_channels, …)` without taking `in_channels`.
    path = tmp_path / "same.arch"
    path.write_text(
        "block Up { convtranspose(same, kernel=1) }\n"
        "model M {\n    input [4, 6, 6]\n    Up()\n    conv(5, kernel=1)\n    Up()\n}\n",
        encoding="utf-8",
    )
    source = emitted(path)
    assert "    def __init__(self, in_channels: int) -> None:\n" in source
    assert_same_network(path, "M", source, tmp_path)


def test_vgg_stages_are_one_class_whose_repeat_count_is_a_parameter(in_root: Path) -> None:
    source = emitted("specs/vgg16.arch")
    assert spec_classes(source) == ["Stage", "VGG16"]
    assert "                    for i in range(convs)\n" in source
    assert (
        "        Stage(256, width=512, convs=3): [256, 28, 28] -> [512, 14, 14], 5,899,776 parameters\n"
        in source
    )
    assert '    """VGG16: [3, 224, 224] -> [1000], 138,357,544 parameters."""' in source


@needs_torch
@pytest.mark.parametrize(
    ("spec", "classes"),
    [
        # linear after flatten needs H·W, which no parameter gives
        (
            "block Head(n: int) { flatten linear(n) }\n"
            "model M { input [2, 4, 4] concat { branch { Head(3) } branch { maxpool(2) Head(5) } } }\n",
            ["Head", "Head2", "M"],
        ),
        # called on an image and on features
        ("block Act { relu }\nmodel M { input [2, 4, 4] Act() flatten Act() }\n", ["Act", "Act2", "M"]),
        # an `in=` assertion
        (
            "block C(w: int) { conv(w, kernel=1, in=2) }\nmodel M { input [2, 4, 4] C(2) C(4) }\n",
            ["C", "C2", "M"],
        ),
        # a repeat whose count is a parameter and that runs no pass at one call
        (
            "block R(n: int) { repeat n { conv(4, kernel=1) } }\nmodel M { input [2, 4, 4] R(0) R(2) }\n",
            ["R", "R2", "M"],
        ),
        # an `if` on a parameter whose branches run different forwards (ultralytics' Bottleneck)
        (
            "block B(w: int, skip: bool = true) {\n    input as x\n    conv(w, kernel=1)\n"
            "    if skip { add(x) }\n}\nmodel M { input [2, 4, 4] B(2) B(2, false) }\n",
            ["B", "B2", "M"],
        ),
        # a tensor parameter that is what the block receives at one call: a forward of one input
        (
            "block F(f: tensor, n: int) {\n    linear(n) as a\n    f -> linear(n)\n    add(a)\n}\n"
            "model M { input [4] as f\n    F(f, 4)\n    linear(4)\n    F(f, 4)\n}\n",
            ["F", "F2", "M"],
        ),
    ],
)
def test_a_block_no_one_class_can_express_is_written_per_instance(
    spec: str, classes: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "fallback.arch"
    path.write_text(spec, encoding="utf-8")
    source = emitted(path)
    assert spec_classes(source) == classes
    assert "    def __init__(self) -> None:\n" in source
    assert_same_network(path, "M", source, tmp_path)


@needs_torch
@pytest.mark.parametrize("spec", [*SPECS, "odd"])
def test_emitted_source_is_formatted_as_ruff_formats_it(spec: str, odd_spec: Path) -> None:
    source = emitted(odd_spec if spec == "odd" else ROOT / spec)
    # Black's and ruff's default line length, as in a user's project, and this repository's own.
    for options in (["--isolated"], ["--isolated", "--line-length", "110"]):
        result = ruff_format_check(source, *options)
        assert result.returncode == 0, result.stdout + result.stderr


def test_source_imports_only_torch(odd_spec: Path) -> None:
    for spec in [*SPECS, odd_spec]:
        source = emitted(ROOT / spec)
        assert set(re.findall(r"^(?:from|import) (\S+)", source, flags=re.M)) <= {"collections", "torch"}
        assert "archdsl" not in source.split("\n", 1)[1]  # only the header names it


def test_header_names_the_spec_and_the_models_parameters(in_root: Path) -> None:
    code, source = run_cli("emit", "specs/lenet5.arch", "-p", "classes=100")
    assert code == 0
    assert source.startswith(
        "# Generated by `archdsl emit` from specs/lenet5.arch; needs only torch.\n"
        "# model LeNet5(classes=100): [1, 28, 28] -> [100]\n\nfrom collections import OrderedDict\n\n"
        "from torch import nn\n\n\n"
    )
    assert "            nn.Linear(84, 100),  # [100]\n" in source


@pytest.mark.slow
def test_same_spec_gives_the_same_bytes_in_fresh_processes(odd_spec: Path) -> None:
    outputs = set()
    for seed in ("1", "2"):
        result = subprocess.run(
            [PYTHON, "-m", "archdsl", "emit", str(odd_spec)],
            capture_output=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        outputs.add(result.stdout)
    assert len(outputs) == 1
    assert emitted(odd_spec).encode() in outputs


@pytest.mark.slow
def test_emit_never_imports_torch(odd_spec: Path) -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from archdsl.cli import main\n"
        f"code = main(['emit', {str(odd_spec)!r}])\n"
        "loaded = [n for n, module in sys.modules.items() if module and n.split('.')[0] == 'torch']\n"
        "assert not loaded, loaded\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_output_flag_writes_the_file_and_prints_what_it_wrote(in_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "model.py"
    code, text = run_cli("emit", "specs/resnet_mini.arch", "-o", str(out))
    assert code == 0
    assert text == f"wrote {out} (ResNetMini)\n"
    assert out.read_text(encoding="utf-8") == emitted("specs/resnet_mini.arch")
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.py"]  # no temporary left


def test_model_flag_picks_one_model(odd_spec: Path) -> None:
    code, source = run_cli("emit", str(odd_spec), "--model", "Second")
    assert code == 0
    assert spec_classes(source) == ["torch_", "Second"]


def test_warnings_go_to_stderr_so_stdout_stays_python(
    in_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, source = run_cli("emit", "specs/alexnet.arch")
    assert code == 0
    assert source == emitted("specs/alexnet.arch")
    assert "warning[W001]: conv size does not divide exactly" in capsys.readouterr().err


def test_spec_error_is_rendered_and_exits_1(in_root: Path) -> None:
    code, text = run_cli("emit", "tests/fixtures/errors/groups.arch")
    assert code == 1
    assert text == (
        "tests/fixtures/errors/groups.arch:3:24: error[E104]: conv groups=4 must divide the 3 input "
        "channels (3 = 4·0 + 3)\n"
        "    3 |     conv(16, kernel=3, groups=4)\n"
        "      |                        ^^^^^^^^\n"
        "note: [3, 32, 32] is the model's input (line 2)\n\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["emit", "nope.arch"], "archdsl: error: nope.arch: no such file\n"),
        (["emit", "specs/lenet5.arch", "-p", "3=4"], "archdsl: error: --param takes NAME=VALUE, got '3=4'\n"),
        (["emit", "specs/lenet5.arch", "-o", "specs"], "archdsl: error: specs: Is a directory\n"),
    ],
)
def test_usage_errors_exit_2_without_a_traceback(
    args: list[str], message: str, in_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = run_cli(*args)
    assert (code, text) == (2, "")
    assert capsys.readouterr().err == message


def test_unknown_flag_exits_2(in_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_cli("emit", "specs/lenet5.arch", "--frobnicate")
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("archdsl: error: unrecognized arguments: --frobnicate\nusage: archdsl ")
    assert "Traceback" not in err


@pytest.mark.slow
@needs_torch
def test_random_specs_emit_classes_that_load_the_built_weights_and_compute_the_same(tmp_path: Path) -> None:
    """specgen's blocks use their parameters in expressions, defaults, kernels and repeat counts;
    whether each becomes one class or falls back, the source must be the built network, formatted."""
    sources: dict[str, str] = {}
    generic = 0
    for seed in range(300):
        path = tmp_path / f"spec{seed}.arch"
        path.write_text(specgen.render(specgen.generate(seed, several_inputs=True))[0], encoding="utf-8")
        program = compile_file(str(path))
        if program.errors:
            continue
        source = emit_source(*program.models, program=program)
        assert_same_network(path, "M", source, tmp_path)
        sources[f"spec{seed}.py"] = source
        generic += "in_channels: int" in source
    assert len(sources) >= 100 and generic >= 15, (len(sources), generic)
    for name, source in sources.items():
        (tmp_path / name).write_text(source, encoding="utf-8")
    result = subprocess.run(
        [RUFF, "format", "--check", "--isolated", *sources], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_torch
def test_every_runtime_helper_is_written_as_emitted_code_is_formatted() -> None:
    # emit copies archdsl/runtime.py's definitions verbatim, so they are held to the emitted rules
    from archdsl.codegen.source import helper_sources

    module = "import torch\nfrom torch import nn\n\n\n" + "\n\n\n".join(helper_sources().values()) + "\n"
    result = ruff_format_check(module, "--isolated")
    assert result.returncode == 0, result.stdout
    assert "archdsl" not in module


#: Every layer of issue 11's first part, with block parameters feeding their arguments: groups,
#: eps, p, mode, approximate and bias are the block's own, so the block is one class.
MODERN = """
block Inverted(width: int, groups: int, eps: float, p: float, mode: str, approximate: str, bias: bool) {
    residual {
        conv(width * 2, kernel=1) groupnorm(groups, eps=eps, bias=bias) relu6
        conv(same, kernel=3, padding=1, groups=width * 2) shuffle(groups) hardswish
        conv(width, kernel=1) layernorm2d(eps=eps, bias=bias) gelu(approximate=approximate)
        stochasticdepth(p, mode=mode)
    }
}

block Channels(width: int, eps: float) {
    permute(1, 2, 0) layernorm(eps=eps) permute(2, 0, 1) conv(width, kernel=1) mish hardsigmoid
}

model Modern {
    input [4, 8, 8]
    conv(8, kernel=3, padding=1)
    Inverted(8, 2, 1e-6, 0.1, "row", "tanh", false)
    Inverted(8, 4, 1e-5, 0.2, "batch", "none", true)
    Channels(12, 1e-6)
    view(12, 64) linear(16) linear(8, bias=false) layernorm
    flatten stochasticdepth(0.5) linear(10)
}
"""


@pytest.mark.slow
@needs_torch
def test_the_modern_layers_emit_what_the_builder_builds_in_eval_and_in_training(tmp_path: Path) -> None:
    path = tmp_path / "modern.arch"
    path.write_text(MODERN, encoding="utf-8")
    source = emitted(path)
    # the helpers runtime.py defines, then one class per block, generic over its parameters
    assert spec_classes(source) == ["Inverted", "Channels", "Modern"]
    helpers = ("Residual", "View", "Permute", "LayerNorm2d", "StochasticDepth")
    assert all(f"\nclass {helper}(" in source for helper in helpers)
    assert "        in_channels: int,\n        width: int,\n        groups: int,\n" in source
    assert "nn.GroupNorm(groups, width * 2, eps=eps, bias=bias)," in source
    assert "StochasticDepth(p=p, mode=mode),  # [width, H, W]" in source
    assert "nn.LayerNorm(in_channels, eps=eps),  # [H, W, in_channels]" in source
    for options in (["--isolated"], ["--isolated", "--line-length", "110"]):
        assert ruff_format_check(source, *options).returncode == 0
    assert_same_network(path, "Modern", source, tmp_path)
    # in training, stochastic depth draws the same noise in both, from the same seed
    built = archdsl.build(str(path))
    ours: nn.Module = load_source(source, tmp_path).Modern()
    ours.load_state_dict(built.state_dict(), strict=True)
    x = torch.randn(16, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(3)
    expected = built.train()(x)
    torch.manual_seed(3)
    assert torch.equal(ours.train()(x), expected)


@pytest.mark.slow
@needs_torch
def test_an_emitted_class_slices_as_nn_sequential_does(tmp_path: Path) -> None:
    path = ROOT / "specs" / "vgg16.arch"
    net = load_source(emitted(path), tmp_path).VGG16()
    head = net[:2]
    assert type(head) is nn.Sequential and len(head) == 2
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(head(x), net[1](net[0](x)))
        assert torch.equal(net[0][:1](x), net[0][0](x))  # the block's class slices too


@needs_torch
def test_nested_residuals_keep_each_input_apart(tmp_path: Path) -> None:
    # Found by the emit campaign: the inner sum's input was moved into `identity`, which the
    # outer one still held, so the forward added x twice.
    path = tmp_path / "nested.arch"
    path.write_text(
        "model M {\n    input [2, 3, 3]\n    residual {\n        tanh\n        *residual { relu }\n    }\n}\n"
    )
    source = emitted(path)
    assert_same_network(path, "M", source, tmp_path)
    x = torch.randn(1, 2, 3, 3)
    inner = torch.tanh(x)
    torch.testing.assert_close(load_source(source, tmp_path).M()(x), inner + torch.relu(inner) + x)


@needs_torch
def test_spliced_branches_emit_what_the_builder_builds(tmp_path: Path) -> None:
    from test_resolve import FIRE

    path = tmp_path / "fire.arch"
    path.write_text(FIRE, encoding="utf-8")
    source = emitted(path)
    assert ruff_format_check(source, "--isolated").returncode == 0
    built = archdsl.build(str(path))
    assert list(built.state_dict()) == [
        "f.squeeze.weight",
        "f.squeeze.bias",
        "f.e1.weight",
        "f.e1.bias",
        "f.e3.weight",
        "f.e3.bias",
    ]
    assert_same_network(path, "M", source, tmp_path)
