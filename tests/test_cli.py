"""The command line as users and CI call it: exit codes, output formats, and no torch import."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import ROOT, SPECS, run_cli

PYTHON = sys.executable


def test_check_specs_directory_is_clean(in_root: Path) -> None:
    code, out = run_cli("check", "specs")
    assert code == 0
    assert "error[" not in out
    assert f"checked {len(SPECS)} files" in out
    assert "specs/lenet5.arch: LeNet5 [1, 28, 28] → [10]: 61,706 params" in out


@pytest.mark.parametrize("spec", SPECS)
def test_summary_matches_golden(spec: str, in_root: Path, golden: Callable[[Path, str], None]) -> None:
    code, out = run_cli("summary", spec)
    assert code == 0
    golden(ROOT / "tests" / "golden" / Path(spec).stem / "summary.txt", out)


@pytest.mark.parametrize("spec", SPECS)
def test_check_json_matches_golden(spec: str, in_root: Path, golden: Callable[[Path, str], None]) -> None:
    code, out = run_cli("check", "--format", "json", spec)
    assert code == 0
    golden(ROOT / "tests" / "golden" / Path(spec).stem / "check.json", out)


def test_json_document_has_the_documented_fields(in_root: Path) -> None:
    code, out = run_cli(
        "check", "--format", "json", "specs/googlenet_mini.arch", "tests/fixtures/errors/groups.arch"
    )
    assert code == 1
    document = json.loads(out)
    (diagnostic,) = document["diagnostics"]
    assert set(diagnostic) >= {
        "file",
        "line",
        "column",
        "end_line",
        "end_column",
        "severity",
        "code",
        "message",
    }
    assert (diagnostic["code"], diagnostic["line"], diagnostic["severity"]) == ("E104", 3, "error")
    model = next(m for m in document["models"] if m["name"] == "GoogLeNetMini")
    assert set(model) >= {"file", "name", "input", "output", "params", "macs", "layers"}
    assert (model["input"], model["output"], model["params"]) == ([1, 28, 28], [10], 97298)
    # One entry per statement of the body in source order; a block call is one entry with children.
    assert [layer["op"] for layer in model["layers"]] == [
        "conv",
        "relu",
        "maxpool",
        "Inception",
        "conv",
        "relu",
        "maxpool",
        "Inception",
        "flatten",
        "linear",
    ]
    inception = model["layers"][3]
    assert set(inception) >= {"name", "op", "line", "column", "output", "params", "macs", "children"}
    assert inception["output"] == [88, 12, 12] and inception["line"] == 14
    (concat,) = inception["children"]
    assert [branch["output"][0] for branch in concat["children"]] == [16, 24, 24, 24]


def test_github_format_prints_workflow_annotations(in_root: Path) -> None:
    code, out = run_cli("check", "--format", "github", "tests/fixtures/errors/alexnet_28.arch")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(
        "::warning file=tests/fixtures/errors/alexnet_28.arch,line=3,col=5,endLine=3,endColumn=45,"
        "title=archdsl W001::conv size does not divide exactly"
    )
    assert lines[1].startswith("::error file=tests/fixtures/errors/alexnet_28.arch,line=9,col=5,")
    # Notes travel in the message, with newlines escaped as the workflow-command format requires.
    assert "%0Anote: the input to this model is [1, 28, 28]" in lines[1]
    assert lines[-1] == "archdsl: 1 file, 1 error, 1 warning"


def test_github_format_annotates_no_warning_an_allow_comment_allows(in_root: Path) -> None:
    # AlexNet's four W001s are meant, and say so in comments: a pull request shows none of them.
    code, out = run_cli("check", "--format", "github", "specs/alexnet.arch")
    assert (code, out) == (0, "archdsl: 1 file, 0 errors, 4 warnings (4 allowed)\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "nope.arch"], "archdsl: error: nope.arch: no such file or directory"),
        (["check", "--colour", "specs"], "archdsl: error: unrecognized arguments: --colour"),
        (["check"], "archdsl: error: the following arguments are required: PATH"),
        ([], "archdsl: error: the following arguments are required: COMMAND"),
        (["summary", "nope.arch"], "archdsl: error: nope.arch: no such file"),
        (["check", "-p", "classes", "specs"], "archdsl: error: --param takes NAME=VALUE, got 'classes'"),
        (
            ["summary", "specs/lenet5.arch", "-p", "clases=3"],
            "archdsl: error: -p clases: model LeNet5 has no parameter 'clases'; did you mean 'classes'? "
            "(its parameters: classes)\n",
        ),
        (
            ["check", "-p", "clases=3", "specs/lenet5.arch", "specs/unet.arch"],
            "archdsl: error: -p clases: none of the 2 models has a parameter 'clases'; did you mean "
            "'classes'? (theirs: classes, bilinear, factor, size)\n",
        ),
        (["check", "--format", "xml", "specs"], "archdsl: error: argument --format: invalid choice: 'xml'"),
    ],
)
def test_usage_errors_exit_2_with_a_message_and_no_traceback(
    args: list[str], message: str, in_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_cli(*args)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(message)
    assert "Traceback" not in err + out


def test_directory_without_specs_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("not a spec")
    code, _ = run_cli("check", str(tmp_path))
    assert code == 2
    assert capsys.readouterr().err == f"archdsl: error: {tmp_path}: no .arch files in this directory\n"


@pytest.mark.parametrize("command", ["check", "summary", "render", "docs", "emit", "train", "export"])
def test_an_unknown_model_is_a_usage_error_without_a_source_caret(
    command: str, in_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = {
        "render": ["-o", str(tmp_path / "x.dot")],
        "docs": ["-o", str(tmp_path / "d")],
        "export": ["-o", str(tmp_path / "x.onnx")],
    }.get(command, [])
    if command in ("train", "export"):
        pytest.importorskip("torch")
    if command == "export":
        pytest.importorskip("onnxscript")
    code, out = run_cli(command, "specs/lenet5.arch", "--model", "LeNet", *extra)
    assert (code, out) == (2, "")
    assert capsys.readouterr().err == (
        "archdsl: error: specs/lenet5.arch has no model 'LeNet' (models: LeNet5); did you mean 'LeNet5'?\n"
    )


SEVERAL = "model A {\n    input [4]\n    linear(2)\n}\nmodel B {\n    input [4]\n    linear(3)\n}\n"


def test_commands_that_report_take_every_model_and_model_picks_one(tmp_path: Path) -> None:
    spec = tmp_path / "two.arch"
    spec.write_text(SEVERAL, encoding="utf-8")
    for command in ("check", "summary", "emit"):
        _, every = run_cli(command, str(spec))
        _, one = run_cli(command, str(spec), "--model", "B")
        assert "A" in every.replace(str(spec), "") and "B" in every.replace(str(spec), "")
        assert "A [4]" not in one and "class A(" not in one and "A  (" not in one, command
    code, out = run_cli("check", str(spec), "--model", "B")
    assert (code, out.splitlines()[-1]) == (0, "checked 1 file, 1 model: 0 errors, 0 warnings")


def test_check_model_across_files_checks_the_files_that_define_it(
    in_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_cli("check", "specs", "--model", "LeNet5")
    assert (code, out.splitlines()[-1]) == (0, f"checked {len(SPECS)} files, 1 model: 0 errors, 0 warnings")
    code, _ = run_cli("check", "specs", "--model", "LeNet")
    assert code == 2
    assert capsys.readouterr().err.startswith(
        f"archdsl: error: no model 'LeNet' in the {len(SPECS)} files "
        "(models: AlexNet, Autoencoder, Generator, Discriminator, DeepSigmoid, GoogLeNetMini, LeNet5, "
    )


@pytest.mark.parametrize("command", ["render", "train", "export"])
def test_a_command_that_makes_one_thing_needs_model_when_the_file_has_several(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if command in ("train", "export"):
        pytest.importorskip("torch")
    if command == "export":
        pytest.importorskip("onnxscript")
    spec = tmp_path / "two.arch"
    spec.write_text(SEVERAL, encoding="utf-8")
    output = {"render": ["-o", str(tmp_path / "x.dot")], "export": ["-o", str(tmp_path / "x.onnx")]}
    code, _ = run_cli(command, str(spec), *output.get(command, []))
    assert code == 2
    assert capsys.readouterr().err == (
        f"archdsl: error: {spec} defines 2 models (A, B); choose one with --model\n"
    )


def test_an_unknown_option_shows_the_commands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_cli("check", "--bogus", "specs")
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("archdsl: error: unrecognized arguments: --bogus\nusage: archdsl check [-h]")


@pytest.mark.parametrize("command", ["check", "summary", "render", "docs", "emit", "train", "export"])
def test_every_positional_argument_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run_cli(command, "--help")
    help_text = capsys.readouterr().out
    positional = help_text.split("positional arguments:\n")[1].split("\n\n")[0]
    for line in positional.splitlines():
        assert len(line.split()) > 1, f"{command}: {line.strip()} has no help"
    assert "--model NAME" in help_text


def test_param_overrides_a_model_parameter(in_root: Path) -> None:
    code, out = run_cli("summary", "specs/lenet5.arch", "-p", "classes=100")
    assert code == 0
    assert re.search(r"^11 +linear 100 +\[100\] +8,500 +8,400$", out, flags=re.M)


def test_a_boolean_parameter_written_as_python_does_says_how_the_language_writes_it(in_root: Path) -> None:
    code, out = run_cli("check", "specs/unet.arch", "-p", "bilinear=True")
    assert code == 1
    assert out.startswith(
        "specs/unet.arch:29:7: error[E005]: model UNet argument 'bilinear' must be true or false, "
        'got "True" (the language writes it true)\n'
    )


def test_file_that_is_not_utf8_is_a_positioned_error(tmp_path: Path) -> None:
    spec = tmp_path / "latin1.arch"
    spec.write_bytes(b"model A {\n    input [1, 8, 8]  # caf\xe9\n}\n")
    code, out = run_cli("check", str(spec))
    assert code == 1
    assert f"{spec}:2:27: error[E007]: this file is not UTF-8 text: byte 0xe9 cannot be decoded" in out


def test_every_error_in_several_files_is_reported_in_one_run(in_root: Path) -> None:
    code, out = run_cli(
        "check", "-q", "tests/fixtures/errors/groups.arch", "tests/fixtures/errors/view_size.arch"
    )
    assert code == 1
    assert "groups.arch:3:24: error[E104]" in out and "view_size.arch:3:10: error[E107]" in out


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize(
    "command", [["check", "specs"], ["summary", "specs/resnet_mini.arch"], ["fmt", "--check", "specs"]]
)
def test_static_commands_never_import_torch(command: list[str]) -> None:
    # An import of torch (or of the language server's pygls) anywhere in check or summary would
    # fail here: sys.modules maps them to None.
    result = _run(
        "import sys; sys.modules['torch'] = sys.modules['pygls'] = sys.modules['lsprotocol'] = None\n"
        "from archdsl.cli import main\n"
        f"code = main({command!r})\n"
        "heavy = ('torch', 'pygls', 'lsprotocol')\n"
        "loaded = [n for n, module in sys.modules.items() if module and n.split('.')[0] in heavy]\n"
        "assert not loaded, loaded\n"
        "sys.exit(code)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "internal error" not in result.stderr


@pytest.mark.slow
def test_a_check_that_ends_the_process_early_still_writes_all_it_printed_and_its_exit_code(
    tmp_path: Path,
) -> None:
    # `run` skips the interpreter's teardown after a check: what sits in stdout's buffer, here far
    # more than one buffer's worth, must still come out, and the exit code must be the check's.
    spec = tmp_path / "long.arch"
    body = "\n".join("    conv(4, kernel=1) relu" for _ in range(600))
    spec.write_text(
        f"model Long {{\n    input [1, 8, 8]\n{body}\n    conv(4, kernel=9)\n}}\n", encoding="utf-8"
    )
    result = subprocess.run(
        [PYTHON, "-m", "archdsl", "check", str(spec), "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    expected_code, expected = run_cli("check", str(spec), "--format", "json")
    assert (result.returncode, result.stdout) == (expected_code, expected)
    assert expected_code == 1 and len(expected) > 100_000


@pytest.mark.slow
def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run(
        [PYTHON, "-m", "archdsl", "check", "-q", "specs/lenet5.arch"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0
    assert result.stdout == ""


@pytest.mark.slow
def test_console_script_is_installed() -> None:
    script = Path(PYTHON).with_name("archdsl")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("archdsl ")


def test_sizes_use_binary_units_everywhere(in_root: Path) -> None:
    from archdsl.errors import SourceCache
    from archdsl.pages import entries, pages
    from archdsl.pipeline import compile_files
    from archdsl.shapes import float32_size

    texts = [run_cli("summary", spec)[1] for spec in SPECS]
    programs, _, loader = compile_files(SPECS)
    texts += list(pages(entries(programs, SourceCache(loader.sources))).values())
    assert [m for text in texts for m in re.findall(r"\d (?:[KMGTP]B)\b", text)] == []
    assert "61,706 parameters (241.0 KiB as float32)" in texts[SPECS.index("specs/lenet5.arch")]
    assert [float32_size(n) for n in (100, 2**18, 2**28, 2**38)] == [
        "400 bytes",
        "1.0 MiB",
        "1.0 GiB",
        "1.0 TiB",
    ]
