"""`archdsl import`: torchvision's CNNs and hand-written modules round trip — import, check, build,
load the original's state_dict strictly, equal outputs in eval mode — and what the language cannot
express is a clear error that names the op and the line of the module's forward.

Inputs are small (32×32: every network here pools adaptively), which keeps the file to about a
minute on two cores; the importer's own proof and this test's check each build the network once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import archdsl
from archdsl.builder import build_model

from conftest import ROOT, run_cli, torch_threads

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # the hand-written modules: `import_modules.nets`

from import_modules import nets  # noqa: E402

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


def round_trip(module: Any, name: str, sample: tuple[int, ...], tmp_path: Path) -> tuple[str, Any]:
    """import → check → build → strict load → equal outputs; the spec's path and its model."""
    from archdsl.importer import import_module

    module = randomized(module).eval()
    with torch_threads(2):
        # the command's header line too, so that lines count as the command writes them
        imported = import_module(module, name, sample, header=[f"Imported by a test ({name})."])
    from archdsl.fmt import format_text

    assert format_text(imported.text) == imported.text  # `archdsl fmt` would change nothing
    path = tmp_path / f"{name}.arch"
    path.write_text(imported.text, encoding="utf-8")
    assert [d for d in archdsl.check(path) if d.is_error] == []
    model = archdsl.load(path).model()
    assert model.name == name and tuple(model.input) == sample
    ours = build_model(model).eval()
    ours.load_state_dict(module.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(module.state_dict())
    x = torch.randn(2, *sample, generator=torch.Generator().manual_seed(0))
    with torch_threads(2), torch.no_grad():
        expected, got = module(x), ours(x)
    assert (got - expected).abs().max().item() <= 1e-5 * max(expected.abs().max().item(), 1.0)
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
            "SplitPaths",
            "parts = torch.split(x, 2, 1)",
            "calls torch.functional.split ({file}:{line}: `{code}`), which gives several tensors, and uses "
            "them otherwise than a split concat does (each share through its own path, concatenated back "
            "in order): the language has no statement for it",
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
