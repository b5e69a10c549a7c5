"""The Python API as a user coming from torchinfo or Keras calls it: check, summary, render, load,
emit, the diagnostics' fields and the package's public names."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import archdsl
from archdsl.program import compile_file

from conftest import ROOT, SPECS

TWO = "model A {\n    input [4]\n    linear(2)\n}\nmodel B {\n    input [4]\n    linear(3)\n}\n"


def write(tmp_path: Path, text: str, name: str = "net.arch") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_dir_shows_only_the_public_api() -> None:
    assert dir(archdsl) == [
        "ArchError",
        "Diagnostic",
        "MissingExtra",
        "Program",
        "Severity",
        "Shaped",
        "ShapedModel",
        "Span",
        "Summary",
        "__version__",
        "build",
        "check",
        "emit",
        "load",
        "render",
        "summary",
    ]
    assert all(getattr(archdsl, name) is not None for name in archdsl.__all__)


def test_the_functions_stay_functions_after_their_stages_are_imported(in_root: Path) -> None:
    # `archdsl.emit` is the function and `archdsl/emit.py` a stage of the same name: importing the
    # stage (as emitting does) must not replace the function on the package.
    archdsl.emit("specs/lenet5.arch")
    archdsl.render("specs/lenet5.arch", "/dev/null", format="dot")
    str(archdsl.summary("specs/lenet5.arch"))
    assert all(callable(getattr(archdsl, name)) for name in ("emit", "render", "summary", "check", "load"))
    from archdsl.emit import emit_source  # the stage is still importable

    assert callable(emit_source)


def test_check_returns_every_diagnostic_with_its_fields(in_root: Path) -> None:
    diagnostics = archdsl.check(["specs/lenet5.arch", "tests/fixtures/errors/alexnet_28.arch"])
    assert [(d.file, d.line, d.column, d.code, d.severity, d.severity.value) for d in diagnostics] == [
        ("tests/fixtures/errors/alexnet_28.arch", 3, 5, "W001", archdsl.Severity.WARNING, "warning"),
        ("tests/fixtures/errors/alexnet_28.arch", 9, 5, "E101", archdsl.Severity.ERROR, "error"),
    ]
    assert (
        diagnostics[1].message
        == "maxpool output is empty: input [256, 2, 2], kernel 3, stride 2 → ⌊(2 − 3)/2⌋ + 1 = 0"
    )
    assert (diagnostics[1].end_line, diagnostics[1].end_column) == (9, 25)
    assert str(diagnostics[1]) == (
        "tests/fixtures/errors/alexnet_28.arch:9:5: error[E101]: maxpool output is empty: input "
        "[256, 2, 2], kernel 3, stride 2 → ⌊(2 − 3)/2⌋ + 1 = 0"
    )
    assert [d.code for d in archdsl.check("specs")] == ["W001"] * 4  # specs/alexnet.arch's, on purpose
    assert archdsl.check(Path("specs/lenet5.arch"), strict=True) == []
    assert [
        d.severity.value for d in archdsl.check("tests/fixtures/errors/alexnet_28.arch", strict=True)
    ] == [
        "error",
        "error",
    ]


def test_check_of_a_missing_path_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.arch: no such file or directory"):
        archdsl.check(str(tmp_path / "nope.arch"))


def test_str_of_an_arch_error_includes_the_code(in_root: Path) -> None:
    with pytest.raises(archdsl.ArchError) as raised:
        archdsl.load("tests/fixtures/errors/groups.arch")
    assert str(raised.value).startswith("tests/fixtures/errors/groups.arch:3:24: error[E104]: ")


def test_summary_is_the_table_and_its_numbers(in_root: Path) -> None:
    summary = archdsl.summary("specs/lenet5.arch")
    assert str(summary) + "\n" == (ROOT / "tests" / "golden" / "lenet5" / "summary.txt").read_text(
        encoding="utf-8"
    )
    assert (summary.params, summary.macs, summary.input, summary.output) == (
        61_706,
        416_520,
        (1, 28, 28),
        (10,),
    )
    assert len(summary.layers) == 12
    first = summary.layers[0]
    assert (first.name, first.op, first.output, first.params, first.macs) == (
        "0",
        "conv 5×5, 6, pad 2",
        (6, 28, 28),
        156,
        117_600,
    )
    assert archdsl.summary("specs/lenet5.arch", classes=100).output == (100,)


def test_summary_nests_rows_under_block_calls(in_root: Path) -> None:
    layers = archdsl.summary("specs/googlenet_mini.arch").layers
    assert [(layer.depth, layer.kind) for layer in layers[3:6]] == [
        (0, "block"),
        (1, "concat"),
        (2, "branch"),
    ]
    assert sum(layer.params for layer in layers if layer.depth == 0) == 97_298


def test_one_model_functions_need_a_name_when_the_file_has_several(tmp_path: Path) -> None:
    path = write(tmp_path, TWO)
    with pytest.raises(archdsl.ArchError) as raised:
        archdsl.summary(path)
    assert str(raised.value) == f"{path}: error[E013]: {path} defines 2 models (A, B); choose one with model="
    assert archdsl.summary(path, model="B").output == (3,)
    assert [m.name for m in archdsl.load(path).models] == ["A", "B"]
    assert "class A(" in archdsl.emit(path) and "class B(" in archdsl.emit(path)
    assert "class A(" not in archdsl.emit(path, model="B")


def test_load_of_a_file_without_a_model_raises_arch_error(tmp_path: Path) -> None:
    path = write(tmp_path, "block B { relu }\n")
    with pytest.raises(archdsl.ArchError) as raised:
        archdsl.load(path)
    (diagnostic,) = raised.value.diagnostics
    assert (diagnostic.code, diagnostic.file, diagnostic.line, diagnostic.column) == (
        "E013",
        str(path),
        None,
        None,
    )
    assert str(raised.value) == f"{path}: error[E013]: {path} defines no model"


def test_an_unknown_model_is_an_arch_error_about_the_file_not_its_first_line(in_root: Path) -> None:
    with pytest.raises(archdsl.ArchError) as raised:
        archdsl.load("specs/lenet5.arch", model="LeNet")
    assert str(raised.value) == (
        "specs/lenet5.arch: error[E013]: specs/lenet5.arch has no model 'LeNet' (models: LeNet5); did you "
        "mean 'LeNet5'?"
    )
    with pytest.raises(archdsl.ArchError):
        compile_file("specs/lenet5.arch").model("LeNet")


def test_render_writes_the_diagram_in_the_format_its_suffix_names(in_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "lenet.dot"
    assert archdsl.render("specs/googlenet_mini.arch", out, depth=0) == "dot"
    text = out.read_text(encoding="utf-8")
    assert (
        text.startswith('digraph "GoogLeNetMini" {') and "<Inception<BR/>" in text and "cluster_" not in text
    )
    with pytest.raises(ValueError, match=r"cannot tell the format from '\.txt'; use format=svg"):
        archdsl.render("specs/lenet5.arch", tmp_path / "x.txt")
    if shutil.which("dot"):
        assert archdsl.render("specs/lenet5.arch", tmp_path / "x.bin", format="svg") == "svg"
        assert (tmp_path / "x.bin").read_text(encoding="utf-8").lstrip().startswith("<?xml")


@pytest.mark.parametrize("spec", SPECS[:2])
def test_the_api_never_imports_torch_for_static_work(spec: str) -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import archdsl\n"
        f"archdsl.check([{spec!r}]); str(archdsl.summary({spec!r})); archdsl.emit({spec!r})\n"
        f"archdsl.render({spec!r}, '/dev/null', format='dot')\n"
        "try:\n"
        f"    archdsl.build({spec!r})\n"
        "except archdsl.MissingExtra as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout == "archdsl.build needs torch, which is not installed: pip install 'archdsl[torch]'\n"
    )
