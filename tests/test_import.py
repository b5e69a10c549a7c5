"""`archdsl import`: torchvision's CNNs and hand-written modules round trip — import, `check
--strict`, `fmt --check`, build, load the original's state_dict strictly, equal outputs in eval
mode — and what the language cannot express is a clear error that names the op and the line of the
module's forward. Graph-shaped modules (U-Net's skips, a YOLO trunk's blocks of several inputs and
outputs, FCN's dict, two inputs, tuples, resampling, values taken apart) read as named values.

Inputs are small (32×32: every network here pools adaptively; the U-Net also at 36×36, where its
padding matters), which keeps the file to about two minutes on two cores; the importer's own proof
and this test's check each build the network once.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")  # the light install has no torch: this whole file is skipped there

import archdsl
from archdsl.builder import build_model

from conftest import ROOT, run_cli, torch_threads

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # the hand-written modules: `import_modules.nets`

import handwritten_references  # noqa: E402
from import_modules import nets  # noqa: E402

# Out of the fast lane (`pytest -m "not slow"`): each test traces and imports a network, then proves it.
pytestmark = pytest.mark.slow

#: network: its torchvision arguments
NETWORKS: dict[str, dict[str, Any]] = {
    "resnet18": {},
    "resnet50": {},
    "densenet121": {},
    "mobilenet_v2": {},
    "efficientnet_b0": {},
    "shufflenet_v2_x1_0": {},
    "convnext_tiny": {},
    "googlenet": {"aux_logits": False, "init_weights": False},
    "squeezenet1_1": {},
}


def randomized(model: Any) -> Any:
    from test_zoo import randomized as zoo_randomized

    return zoo_randomized(model)


def round_trip(module: Any, name: str, sample: Any, tmp_path: Path, order: bool = True) -> tuple[str, Any]:
    """import → check (strict) → fmt → build → strict load → equal outputs; the spec's text and its
    model. `sample` is the input's per-sample shape, or a list of them for several inputs; `order`
    also asks the state_dict's keys in the module's order (not where a module registers its
    children in another order than it calls them)."""
    from archdsl.importer import import_module

    samples = sample if isinstance(sample, list) else [sample]
    module = randomized(module).eval()
    with torch_threads(2):
        # the command's header line too, so that lines count as the command writes them
        imported = import_module(module, name, sample, header=[f"Imported by a test ({name})."])
    from archdsl.fmt import format_text

    assert format_text(imported.text) == imported.text  # `archdsl fmt` would change nothing
    path = tmp_path / f"{name}.arch"
    path.write_text(imported.text, encoding="utf-8")
    assert [d for d in archdsl.check(path, strict=True) if d.is_error] == []  # `check --strict`
    model = archdsl.load(path).model()
    assert model.name == name and [tuple(shape) for _, shape in model.inputs] == samples
    ours = build_model(model).eval()
    ours.load_state_dict(module.state_dict(), strict=True)
    if order:
        assert list(ours.state_dict()) == list(module.state_dict())
    generator = torch.Generator().manual_seed(0)
    xs = [torch.randn(2, *s, generator=generator) for s in samples]
    with torch_threads(2), torch.no_grad():
        expected, got = module(*xs), ours(*xs)
    assert type(got) is type(expected) or isinstance(got, dict) == isinstance(expected, dict)
    pairs = (
        [(got[k], expected[k]) for k in expected]
        if isinstance(expected, dict)
        else list(zip(got, expected, strict=True))
        if isinstance(expected, tuple)
        else [(got, expected)]
    )
    if isinstance(expected, dict):
        assert list(got) == list(expected)
    for mine, theirs in pairs:
        assert mine.shape == theirs.shape
        assert (mine - theirs).abs().max().item() <= 1e-5 * max(theirs.abs().max().item(), 1.0)
    return imported.text, model


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_torchvision_network_round_trips_and_compares_with_the_zoo(name: str, tmp_path: Path) -> None:
    module = torchvision.models.get_model(name, weights=None, **NETWORKS[name])
    text, model = round_trip(module, name, (3, 32, 32), tmp_path)
    zoo = ROOT / "specs" / "torchvision" / f"{name}.arch"
    assert model.params == archdsl.load(zoo, size=32).model().params
    written = len(zoo.read_text(encoding="utf-8").splitlines())
    assert len(text.splitlines()) <= 1.5 * written, (len(text.splitlines()), written)


def test_a_sequential_cnn_round_trips(tmp_path: Path) -> None:
    text, _ = round_trip(nets.seed_cnn(), "seed_cnn", (1, 28, 28), tmp_path)
    assert "flatten dropout(0.25)" in text and "linear(10)" in text


def test_a_forward_with_a_residual_becomes_a_residual_in_a_block(tmp_path: Path) -> None:
    text, _ = round_trip(nets.ResidualNet(), "ResidualNet", (3, 16, 16), tmp_path)
    block = text.split("block Block {")[1].split("\n}\n")[0]
    assert "*residual {" in block and "conv: conv(8, kernel=3, padding=1, bias=false)" in block
    assert "blocks: { *repeat 3 { Block() } }" in text


@pytest.mark.parametrize(
    ("factory", "sample", "written"),
    [
        # functional ReLUs after modules, torch.flatten
        (nets.TutorialNet, (3, 32, 32), "conv1: conv(6, kernel=5) relu"),
        # a shortcut called `shortcut` (the clause's own name), empty for the identity; `+=`;
        # F.avg_pool2d; view(out.size(0), -1)
        (nets.CifarResNet, (3, 32, 32), "shortcut { conv(channels * 2, kernel=1, stride=2, bias=false)"),
        # x.size(), view(b, c), view(b, c, 1, 1), x * y.expand_as(x)
        (nets.SENet, (3, 16, 16), "*gate {"),
        # ModuleLists run by loops and a ModuleDict keep their names as groups
        (nets.Looped, (3, 8, 8), "blocks: { *repeat 3 { LoopBlock() } }"),
        (nets.Looped, (3, 8, 8), "act: prelu(per_channel=true, init=0.1)"),
        # a class called GELU that is not torch's is traced into
        (nets.OwnGELU, (3, 8, 8), 'gelu(approximate="tanh")'),
        # timm's BatchNormAct2d: the batchnorm under the module's name, then its activation
        (nets.Fused, (3, 16, 16), "bn1: batchnorm silu"),
        # `x + self.downsample(x)` with an nn.Identity is the identity shortcut
        (nets.Fused, (3, 16, 16), "blocks: { *repeat 2 { FusedBlock() } }"),
        # GhostNet's `out[:, :self.out_chs]` after a concatenation, and `x.narrow(1, 1, 4)`
        (nets.Ghost, (3, 8, 8), "narrow(length)"),
        (nets.Ghost, (3, 8, 8), "narrow(4, start=1)"),
        # a Sequential's members called by index, a residual between them: one group of its name
        (nets.IndexedSequential, (8, 8, 8), "body: {\n        *residual {"),
    ],
)
def test_modules_as_tutorials_and_popular_repositories_write_them_round_trip(
    factory: Any, sample: tuple[int, ...], written: str, tmp_path: Path
) -> None:
    text, _ = round_trip(factory(), factory.__name__, sample, tmp_path)
    assert written in text


def test_every_line_of_the_model_carries_its_shape(tmp_path: Path) -> None:
    text, _ = round_trip(nets.seed_cnn(), "seed_cnn", (1, 28, 28), tmp_path)
    body = text.split("model seed_cnn {\n")[1].splitlines()[1:-1]
    assert body and all("  # [" in line for line in body)


def test_the_command_writes_a_spec_that_checks_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(TESTS)  # the user's package is found from where the command runs
    out = tmp_path / "net.arch"
    code, text = run_cli(
        "import", "import_modules.nets:seed_cnn", "--input", "1,28,28", "--arg", "classes=5", "-o", str(out)
    )
    assert code == 0, text
    assert text.startswith(f"wrote {out} (seed_cnn: ")
    assert out.read_text(encoding="utf-8").startswith(
        "# Imported by `archdsl import import_modules.nets:seed_cnn --input 1,28,28 --arg classes=5` "
        "(torch.nn.modules.container.Sequential).\n"
    )
    assert run_cli("check", str(out))[0] == 0
    assert archdsl.load(out).model().output == (5,)


def test_the_model_takes_the_name_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(TESTS)  # a generic factory (timm:create_model) would name every model alike
    out = tmp_path / "net.arch"
    given = ("--input", "1,28,28", "--name", "Seed", "-o", str(out))
    code, _ = run_cli("import", "import_modules.nets:seed_cnn", *given)
    assert code == 0
    text = out.read_text(encoding="utf-8")
    assert "--name Seed` (" in text.splitlines()[0] and "\nmodel Seed {\n" in text
    assert run_cli("import", "import_modules.nets:seed_cnn", "--name", "model")[0] == 2
    assert "--name takes a name for the model (letters, digits, _), got 'model'" in capsys.readouterr().err


def test_an_unsupported_op_names_the_op_and_the_forwards_line_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(TESTS)
    out = tmp_path / "net.arch"
    code, text = run_cli("import", "import_modules.nets:Cumulative", "--input", "3,8,8", "-o", str(out))
    err = capsys.readouterr().err
    line = _line_of("return torch.cumsum(self.conv(x), dim=1)")
    assert (code, text, out.exists()) == (1, "", False)
    assert err == (
        f"archdsl: error: Cumulative calls torch.cumsum ({nets.__file__}:{line}: "
        "`return torch.cumsum(self.conv(x), dim=1)`): the language has no statement for it\n"
    )
    assert "Traceback" not in err


def test_a_module_no_layer_builds_is_named_before_the_flow_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(TESTS)
    code, _ = run_cli("import", "import_modules.nets:Recurrent", "--input", "5,8")
    assert code == 1
    assert capsys.readouterr().err == (
        f"archdsl: error: rnn is a torch.nn.modules.rnn.LSTM ({nets.__file__}:"
        f"{_line_of('return self.rnn(x)[0]')}: `return self.rnn(x)[0]`): no layer of the language builds it\n"
    )


@pytest.mark.parametrize(
    ("name", "code", "says"),
    [
        (
            "ReshapedGamma",
            "return self.conv(x).mul(self.gamma.reshape(1, -1, 1, 1))",
            "computes a tensor that does not come from its input (Tensor.reshape ({file}:{line}: `{code}`), "
            "of a parameter or a constant): the language's statements transform their input, and a "
            "parameter is multiplied in only as stored, [C, 1, 1] (`scale`)",
        ),
        (
            "BroadcastSum",
            "return y + F.adaptive_avg_pool2d(y, 1)",
            "adds tensors of shapes [4, 8, 8] and [4, 1, 1] ({file}:{line}: `{code}`): `add` adds values "
            "of one shape",
        ),
    ],
)
def test_what_the_language_cannot_hold_is_named_at_its_line(
    name: str, code: str, says: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(TESTS)
    assert run_cli("import", f"import_modules.nets:{name}", "--input", "4,8,8")[0] == 1
    expected = says.format(file=nets.__file__, line=_line_of(code), code=code)
    assert capsys.readouterr().err == f"archdsl: error: {name} {expected}\n"


def test_data_dependent_control_flow_is_an_error_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(TESTS)
    code, _ = run_cli("import", "import_modules.nets:Branchy", "--input", "3,8,8")
    err = capsys.readouterr().err
    assert code == 1
    assert err == (
        f"archdsl: error: Branchy's forward branches on its input's values ({nets.__file__}:"
        f"{_line_of('if x.sum() > 0:')}: `if x.sum() > 0:`): data-dependent control flow has no "
        "statement in the language\n"
    )


@pytest.mark.parametrize(("size", "pooled"), [(16, True), (8, False)])
def test_a_branch_on_the_inputs_shape_is_followed_as_that_input_takes_it(
    size: int, pooled: bool, tmp_path: Path
) -> None:
    text, _ = round_trip(nets.ShapeBranch(), "ShapeBranch", (3, size, size), tmp_path)
    assert ("pool: maxpool(2)" in text) == pooled


def test_modules_that_never_run_are_named_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "googlenet.arch"
    code, _ = run_cli(
        "import",
        "torchvision.models:googlenet",
        "--input",
        "3,64,64",
        "--arg",
        "init_weights=False",
        "-o",
        str(out),
    )
    assert (code, out.exists()) == (1, False)
    assert capsys.readouterr().err.endswith(
        "archdsl: error: GoogLeNet holds modules that do not run on a [3, 64, 64] input in eval mode "
        "(aux1, aux2: 6,379,984 parameters): a spec has no statement for a module that never runs, so "
        "its state_dict could not load; build the module without them (for torchvision's googlenet and "
        "inception_v3, --arg aux_logits=False)\n"
    )


@pytest.mark.parametrize(
    ("given", "value"),
    [
        ("aux_logits=False", False),
        ("aux_logits=false", False),
        ("weights=None", None),
        ("dropout=0.5", 0.5),
        ("kernel=(3, 3)", (3, 3)),
        ("weights=DEFAULT", "DEFAULT"),
        ("name='x y'", "x y"),
    ],
)
def test_factory_arguments_are_python_literals(given: str, value: object) -> None:
    from archdsl.cli import parse_factory_arg

    assert parse_factory_arg(given) == (given.split("=")[0], value)


def test_a_bad_target_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("import", "torchvision.models")[0] == 2
    assert "expected MODULE:FACTORY" in capsys.readouterr().err
    assert run_cli("import", "no_such_package_here:net")[0] == 1
    assert capsys.readouterr().err.startswith("archdsl: error: cannot import no_such_package_here:")


def test_help_says_importing_runs_the_users_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run_cli("import", "--help")
    assert "runs its code" in " ".join(capsys.readouterr().out.split())


def _line_of(code: str) -> int:
    lines = Path(nets.__file__).read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.strip() == code)


def test_names_are_quoted_where_the_grammar_would_read_a_keyword() -> None:
    from archdsl.importer import name_text

    assert [name_text(n) for n in ("conv1", "block", "true", "block1-0")] == [
        "conv1",
        "block",  # a statement's `block:` (ConvNeXt's)
        '"true"',
        '"block1-0"',
    ]
    assert name_text("block", keyword_ok=False) == '"block"'  # `branch "block" { … }`


# --- graph-shaped modules ---------------------------------------------------------------------------


@pytest.mark.parametrize(("bilinear", "size"), [(False, 32), (True, 36)])
def test_unet_reads_as_written_by_hand(bilinear: bool, size: int, tmp_path: Path) -> None:
    # milesial's U-Net: its skips named after forward's variables, `Up(x1, x2)` a block with a
    # tensor parameter, and the F.pad to the skip's size (computed from both sizes) `padto`. At
    # 36×36 the fourth pooling floors 9 to 4, so the padding matters; the floor is the module's own,
    # so the spec allows its W001.
    text, model = round_trip(nets.unet(bilinear), "UNet", (3, size, size), tmp_path)
    lines, written = len(text.splitlines()), text
    text = code(text)
    assert "\nblock Up(x2: tensor, width: int" in text
    assert "    padto(x2) as x1\n    x2 -> cat(x1)\n" in text
    up = (
        'up: upsample(2, mode="bilinear", align_corners=true)'
        if bilinear
        else ("up: convtranspose(channels // 2, kernel=2, stride=2)")
    )
    assert up in text
    for line in ("inc: DoubleConv(64", "down1: Down(128) as x2", "down3: Down(512) as x4", "outc: OutConv()"):
        assert line in text
    assert "up1: Up(x4, 512" in text and "up4: Up(x1, 64" in text
    assert model.output == (2, size, size)
    assert ("archdsl: allow W001" in written) == (size % 16 != 0)
    assert lines <= 45  # specs/unet.arch, written by hand, has 42


def test_a_trunk_of_blocks_that_take_and_give_several_tensors(tmp_path: Path) -> None:
    # YOLO's backbone returns three maps and its neck takes three: blocks with `output a, b, c`,
    # `tensor` parameters and `input as p3`; SPPF's pool called three times; C3 registers cv3
    # before m, so the state_dict's order is not the calls'.
    text, model = round_trip(nets.yolo(), "YoloTrunk", (3, 64, 64), tmp_path, order=False)
    text = code(text)
    assert "    backbone: Backbone() as (p3, p4, p5)" in text
    assert (
        "p3 -> neck: Neck(p4, p5) as (out3, out4, out5)" in text
        and "\n    output out3, out4, out5\n}" in text
    )
    assert "block Neck(p4: tensor, p5: tensor) {\n    input as p3\n    p5 -> reduce5: Conv(" in text
    assert "    x -> cat(y1, y2, x1)" in text and "        output p3, p4, p5\n" not in text
    assert [shape for _, shape in model.outputs] == [(64, 8, 8), (128, 4, 4), (256, 2, 2)]


def test_a_segmentation_model_resizes_to_its_input_and_returns_a_dict(tmp_path: Path) -> None:
    # torchvision's FCN: `F.interpolate(x, size=input_shape)` with `input_shape = x.shape[-2:]` is
    # `resize(x)`; the backbone's dict of two maps is a block that gives two values.
    text, model = round_trip(nets.fcn(), "FCN", (3, 32, 32), tmp_path)
    text = code(text)
    assert "    input [3, 32, 32] as x\n    backbone: IntermediateLayerGetter() as (x1, x2)" in text
    assert 'resize(x, mode="bilinear", align_corners=false) as out' in text
    assert "x1 -> aux_classifier: FCNHead()" in text and text.endswith("    output out: out, aux: aux\n}\n")
    assert model.outputs == [("out", (3, 32, 32)), ("aux", (3, 32, 32))]


def test_a_module_with_two_inputs(tmp_path: Path) -> None:
    text, model = round_trip(nets.TwoStreams(), "TwoStreams", [(3, 16, 16), (1, 16, 16)], tmp_path)
    text = code(text)
    assert "    input [3, 16, 16] as image\n    input [1, 16, 16] as depth\n" in text
    assert "image -> rgb: { conv(8, kernel=3, padding=1) batchnorm relu } as x1" in text
    assert "depth -> depth: {" in text and "x1 -> cat(x2)" in text
    assert model.inputs == [("image", (3, 16, 16)), ("depth", (1, 16, 16))]


def test_blocks_that_return_tuples_and_a_model_that_returns_one(tmp_path: Path) -> None:
    text, model = round_trip(nets.TinyUNet(), "TinyUNet", (3, 16, 16), tmp_path)
    text = code(text)
    assert "block DownBlock(width: int) {" in text and "    output x1, skip\n}" in text
    assert (
        "    down1: DownBlock(8) as (x, skip1)" in text and "x -> down2: DownBlock(16) as (x, skip2)" in text
    )
    assert "block UpBlock(skip: tensor) {" in text and "up1: UpBlock(skip1)" in text
    assert text.endswith("    output x1, features\n}\n")
    assert [shape for _, shape in model.outputs] == [(2, 16, 16), (32, 4, 4)]


@pytest.mark.parametrize(
    ("factory", "sample", "written"),
    [
        # pytorch/examples' ESPCN: one nn.ReLU called three times, nn.PixelShuffle
        (nets.SuperResolution, (1, 8, 8), "relu: relu"),
        (nets.SuperResolution, (1, 8, 8), "pixel_shuffle: pixelshuffle(3)"),
        # DCGAN's generator: transposed convolutions from a [100, 1, 1] code
        (nets.generator, (100, 1, 1), "convtranspose(512, kernel=4, bias=false)"),
        # padding and resizing modules and functions
        (nets.Resampling, (3, 16, 16), 'pad: pad(1, mode="reflect")'),
        (nets.Resampling, (3, 16, 16), "down: pixelunshuffle(2)"),
        (nets.Resampling, (3, 16, 16), "upsample(2) pad([1, 0, 1, 0])"),
        (nets.Resampling, (3, 16, 16), 'fill: pad([0, 1, 0, 1], mode="constant", value=0.5)'),
        (nets.Resampling, (3, 16, 16), 'resize(y, mode="bilinear", align_corners=false)'),
        (nets.Resampling, (3, 16, 16), 'smooth: upsample(2, mode="bilinear", align_corners=false)'),
        # torch.split taken apart into values, read out of order
        (nets.SplitPaths, (4, 8, 8), "    split(2) as (x1, x2)\n    x2 -> cat(x1)\n"),
        # a, b = x.chunk(2, dim=1), the second half reading the first's: named as forward names them
        (
            nets.Halves,
            (8, 8, 8),
            "    split(2) as (a, b)\n    a -> conv_a: conv(4, kernel=3, padding=1) as a",
        ),
        (nets.Halves, (8, 8, 8), "    conv_b: conv(4, kernel=3, padding=1) as b\n    a -> cat(b)"),
    ],
)
def test_resampling_and_values_taken_apart(
    factory: Any, sample: tuple[int, ...], written: str, tmp_path: Path
) -> None:
    text, _ = round_trip(factory(), factory.__name__, sample, tmp_path)
    assert written in code(text)


def test_the_command_takes_an_input_for_each_of_a_modules_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(TESTS)
    out = tmp_path / "two.arch"
    shapes = ("--input", "3,16,16", "--input", "1,16,16")
    code, text = run_cli("import", "import_modules.nets:TwoStreams", *shapes, "-o", str(out))
    assert code == 0, text
    assert out.read_text(encoding="utf-8").startswith(
        "# Imported by `archdsl import import_modules.nets:TwoStreams --input 3,16,16 --input 1,16,16` ("
    )
    assert run_cli("check", "--strict", str(out))[0] == 0
    assert run_cli("fmt", "--check", str(out))[0] == 0
    assert run_cli("import", "import_modules.nets:TwoStreams")[0] == 1
    assert capsys.readouterr().err.endswith(
        "archdsl: error: TwoStreams's forward takes 2 inputs (image, depth): give --input once for each\n"
    )
    assert run_cli("import", "import_modules.nets:TwoStreams", "--input", "3,16,16")[0] == 1
    assert capsys.readouterr().err.endswith(
        "archdsl: error: TwoStreams's forward takes 2 inputs (image, depth), and --input gives 1\n"
    )


def code(text: str) -> str:
    """A spec without its comments: the statements as they are written."""
    return "".join(
        re.sub(r"\s*#.*", "", line) + "\n" for line in text.splitlines() if not line.startswith("#")
    )


def video_resnet() -> Any:
    return torchvision.models.video.r3d_18(num_classes=10)


@pytest.mark.parametrize(
    ("factory", "sample", "written"),
    [
        # nn.Conv1d and the 1-d pools, F.max_pool1d and F.adaptive_avg_pool1d
        (nets.AudioNet, (1, 400), "conv1: conv(8, kernel=9, stride=4, padding=4)"),
        (nets.AudioNet, (1, 400), "maxpool(2) adaptiveavgpool(1)"),
        # nn.Conv3d with a size per axis, BatchNorm3d, MaxPool3d, F.avg_pool3d, a residual block
        (
            nets.VideoNet,
            (3, 4, 32, 32),
            "conv(8, kernel=[3, 7, 7], stride=[1, 2, 2], padding=[1, 3, 3], bias=false)",
        ),
        (nets.VideoNet, (3, 4, 32, 32), "pool: maxpool([1, 3, 3], stride=[1, 2, 2], padding=[0, 1, 1])"),
        (nets.VideoNet, (3, 4, 32, 32), "avgpool([2, 1, 1])"),
        # torchvision's r3d_18, whose Conv3DSimple is an nn.Conv3d that only fixes its arguments
        (
            video_resnet,
            (3, 4, 32, 32),
            "conv1: { conv(channels, kernel=3, padding=1, bias=false) batchnorm relu }",
        ),
    ],
)
def test_signal_and_video_networks_round_trip(
    factory: Any, sample: tuple[int, ...], written: str, tmp_path: Path
) -> None:
    text, _ = round_trip(factory(), factory.__name__, sample, tmp_path)
    assert written in text


def small_vit() -> Any:
    from torchvision.models.vision_transformer import VisionTransformer

    return VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=10
    )


@pytest.mark.parametrize(
    ("factory", "sample", "written"),
    [
        # torchvision's ViT: the class token, the position embedding, nn.MultiheadAttention, x[:, 0]
        (
            small_vit,
            (3, 32, 32),
            (
                "    class_token: token  ",
                "    pos_embedding: posembed  ",
                "attention(4)  ",
                "    select(0)  ",
            ),
        ),
        # attention written out: a qkv linear chunked on the features, heads split by reshape,
        # k transposed, q @ kᵀ scaled by a number, softmax, @ v; the tokens' mean
        (
            handwritten_references.Tiny,
            (16, 64),
            (
                "    split(3, dim=-1) as (q, k, v)\n",
                "    k -> permute(0, 2, 1) as x1  ",
                "    q -> matmul(x1)  ",
                "    mul(0.25)  ",
                "    mean  ",
            ),
        ),
        (
            handwritten_references.TinyViT,
            (3, 16, 16),
            ("    cls_token: token  ", "    pos_embed: posembed  "),
        ),
    ],
)
def test_attention_and_learnt_tokens_round_trip(
    factory: Any, sample: tuple[int, ...], written: tuple[str, ...], tmp_path: Path
) -> None:
    text, _ = round_trip(factory(), factory.__name__, sample, tmp_path)
    assert [w for w in written if w not in text] == []


def small_swin(v2: bool = False) -> Any:
    """torchvision's SwinTransformer, small: 10×10 tokens at 40×40 in windows of 3 (padded to 12,
    shifted by 1), merged to an odd 5×5 (padded to 6) and 3×3, where a window covers the map and
    does not shift. With `v2`, as swin_v2_t is built: V2's blocks and merging."""
    from torchvision.models import swin_transformer as swin

    parts = {"block": swin.SwinTransformerBlockV2, "downsample_layer": swin.PatchMergingV2} if v2 else {}
    return swin.SwinTransformer(
        patch_size=[4, 4],
        embed_dim=16,
        depths=[2, 2, 2],
        num_heads=[1, 2, 4],
        window_size=[3, 3],
        stochastic_depth_prob=0.2,
        num_classes=10,
        **parts,
    )


def small_swin_v2() -> Any:
    return small_swin(v2=True)


def small_swin3d() -> Any:
    """torchvision's SwinTransformer3d, small: windows of [2, 3, 3] shifted by 1 on [2, 6, 6]
    tokens, then on [2, 3, 3], where each window shrinks to the clip and does not shift."""
    from torchvision.models.video.swin_transformer import SwinTransformer3d

    return SwinTransformer3d(
        patch_size=[2, 4, 4],
        embed_dim=16,
        depths=[2, 2],
        num_heads=[1, 2],
        window_size=[2, 3, 3],
        stochastic_depth_prob=0.1,
        num_classes=10,
    )


@pytest.mark.parametrize(
    ("factory", "sample", "written"),
    [
        # ShiftedWindowAttention and PatchMerging read whole as layers; the block's second call of
        # its one StochasticDepth written as a module of its own
        (
            small_swin,
            (3, 40, 40),
            (
                "        attn: windowattention(heads, window=3, shift=shift)\n",
                "        stochastic_depth: stochasticdepth(p)\n",
                "        stochasticdepth(p)\n",
                "        patchmerging\n",
                "SwinTransformerBlock(4, 1, 0.2)",
            ),
        ),
        # V2's: cosine attention told by its logit scale, the merging's norm after its reduction
        (
            small_swin_v2,
            (3, 40, 40),
            ("attn: windowattention(heads, window=3, shift=shift, v2=true)\n", "patchmerging(v2=true)\n"),
        ),
        # the 3-d window attention, a window per axis; its F.pad to whole patches pads nothing here
        (small_swin3d, (3, 4, 24, 24), ("attn: windowattention(heads, window=[2, 3, 3], shift=shift)\n",)),
    ],
)
def test_swin_transformers_read_window_attention_and_patch_merging_as_layers(
    factory: Any, sample: tuple[int, ...], written: tuple[str, ...], tmp_path: Path
) -> None:
    # V2's block registers each norm before the attention or MLP that it follows
    text, _ = round_trip(factory(), "swin", sample, tmp_path, order=factory is not small_swin_v2)
    assert [w for w in written if w not in code(text)] == []


def test_a_clip_that_needs_padding_to_whole_patches_names_the_pad() -> None:
    from archdsl.importer import ImportFailed, import_module

    with pytest.raises(
        ImportFailed, match=r"patch_embed calls torch\.nn\.functional\.pad \(.*: the language pads images"
    ):
        import_module(small_swin3d().eval(), "swin3d", (3, 5, 24, 24))
