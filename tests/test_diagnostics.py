"""Diagnostics as users see them: every fixture's full `archdsl check` output against a golden file."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from archdsl import codes
from archdsl.errors import CODES, Diagnostic, SourceCache, Span, error, render, warning

from conftest import ROOT, needs_torch, run_cli

FIXTURES = ROOT / "tests" / "fixtures" / "errors"
#: pretrained.arch misspells a torchvision model: the names suggested are the ones torchvision has.
CASES = [
    pytest.param(case, marks=needs_torch) if case.endswith("/pretrained.arch") else case
    for case in sorted(p.relative_to(ROOT).as_posix() for p in FIXTURES.glob("*.arch"))
]


@pytest.mark.parametrize("fixture", CASES)
def test_check_output_matches_golden(
    fixture: str, in_root: Path, golden: Callable[[Path, str], None]
) -> None:
    code, out = run_cli("check", fixture)
    golden(ROOT / Path(fixture).with_suffix(".txt"), out)
    assert code == (1 if "error[" in out else 0)


def test_every_code_has_a_golden_fixture() -> None:
    shown = set()
    for expected in FIXTURES.glob("*.txt"):
        shown |= set(re.findall(r"(?:error|warning)\[([EW]\d{3})\]", expected.read_text(encoding="utf-8")))
    # E013 names a model that is not in the file: only --model can ask for one (tests/test_cli.py).
    assert set(CODES) - {"E013"} <= shown


def test_each_code_is_defined_once_in_the_code_table() -> None:
    # `archdsl/codes.py` names every code; a stage that spells one (`TOO_LARGE = "E110"` in two
    # modules, a bare `"E110"` in a call) keeps a copy that can drift from the table.
    spelled = []
    for path in sorted((ROOT / "archdsl").rglob("*.py")):
        if path == ROOT / "archdsl" / "codes.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and re.fullmatch(r"[EW]\d{3}", str(node.value)):
                spelled.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value}")
    assert spelled == []
    constants = {name: value for name, value in vars(codes).items() if name.isupper() and name != "CODES"}
    assert sorted(constants.values()) == sorted(set(constants.values())), "two names for one code"
    assert set(constants.values()) == set(CODES)


def test_design_example_renders_as_designed(in_root: Path) -> None:
    code, out = run_cli("check", "tests/fixtures/errors/alexnet_28.arch")
    assert code == 1
    assert (
        "tests/fixtures/errors/alexnet_28.arch:9:5: error[E101]: maxpool output is empty: input [256, 2, 2], "
        "kernel 3, stride 2 → ⌊(2 − 3)/2⌋ + 1 = 0\n"
        "    9 |     maxpool(3, stride=2)\n"
        "      |     ^^^^^^^^^^^^^^^^^^^^\n"
        "note: the input to this model is [1, 28, 28] (line 2); this network expects larger images\n"
    ) in out


def test_strict_turns_warnings_into_errors(in_root: Path) -> None:
    fixture = "tests/fixtures/errors/warnings.arch"
    assert run_cli("check", fixture)[0] == 0
    code, out = run_cli("check", "--strict", fixture)
    assert code == 1
    assert "error[W001]" in out and "warning[" not in out


def test_caret_stays_under_the_span_when_the_line_has_tabs() -> None:
    span = Span("t.arch", 1, 3, 1, 9)
    rendered = render(error("E002", "unknown", span), SourceCache({"t.arch": "\t\tflaten\n"}))
    source_line, caret_line = rendered.splitlines()[1:3]
    column = source_line.index("flaten")
    assert caret_line.index("^") == column and caret_line.count("^") == len("flaten")


def test_span_running_past_its_line_is_underlined_to_the_line_end() -> None:
    span = Span("t.arch", 1, 5, 3, 2)
    rendered = render(warning("W001", "w", span), SourceCache({"t.arch": "    concat {  \n  x\n}\n"}))
    assert rendered.splitlines()[2] == "      |     ^^^^^^^^"


def test_diagnostic_for_a_line_outside_the_file_renders_without_source() -> None:
    diagnostic: Diagnostic = error("E001", "broken", Span("t.arch", 9, 1, 9, 2))
    assert render(diagnostic, SourceCache({"t.arch": "model A {}\n"})) == "t.arch:9:1: error[E001]: broken"


# --- files a newcomer's editor or shell makes --------------------------------------------------------


@pytest.mark.parametrize("text", ["", "\n\n", "# a spec, one day\n", 'import "other.arch"\n'])
def test_a_file_that_defines_nothing_is_warned_about(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "blank.arch"
    spec.write_text(text, encoding="utf-8")
    (tmp_path / "other.arch").write_text("block B { relu }\n", encoding="utf-8")
    code, out = run_cli("check", str(spec))
    assert (code, out) == (
        0,
        f"{spec}: warning[W004]: this file defines no model and no block (it is empty, or holds only "
        "comments or imports)\n\nchecked 1 file, 0 models: 0 errors, 1 warning\n",
    )
    assert run_cli("check", "--strict", str(spec))[0] == 1
    assert run_cli("check", str(tmp_path / "other.arch")) == (
        0,
        "checked 1 file, 0 models: 0 errors, 0 warnings\n",
    )


def check_bytes(spec: Path, data: bytes) -> tuple[int, str]:
    """`archdsl check -q` on a file holding exactly `data`."""
    spec.write_bytes(data)
    return run_cli("check", "-q", str(spec))


def test_a_utf8_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    spec = tmp_path / "windows.arch"
    assert check_bytes(spec, b"\xef\xbb\xbfmodel A {\r\n    input [4]\r\n    linear(2)\r\n}\r\n") == (0, "")
    # columns on line 1 do not count the mark
    code, out = check_bytes(spec, b"\xef\xbb\xbfmodel A { input [4] lineer(2) }\n")
    assert code == 1
    assert out.startswith(
        f"{spec}:1:21: error[E002]: unknown layer or block 'lineer'; did you mean 'linear'?\n"
        "    1 | model A { input [4] lineer(2) }\n"
        "      |                     ^^^^^^\n"
    )


@pytest.mark.parametrize(
    "data",
    [
        b"model A {\n    input [4] \x00\x1b[2J\x07 linear(2)\n}\n",  # UTF-8, with NUL and a terminal escape
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\n",  # a binary file, not UTF-8
        b"model A { input [4] linear(2) }  # \xe2\x80\xae reversed\x00\n",  # bidi override in a comment
    ],
)
def test_unprintable_bytes_are_never_echoed(data: bytes, tmp_path: Path) -> None:
    _, out = check_bytes(tmp_path / "binary.arch", data)
    assert all(c.isprintable() or c == "\n" for c in out), ascii(out)


def test_a_nul_in_a_line_is_shown_escaped_with_the_caret_under_it(tmp_path: Path) -> None:
    spec = tmp_path / "nul.arch"
    code, out = check_bytes(spec, b"model A {\n    input [4] \x00 linear(2)\n}\n")
    assert code == 1
    assert out.startswith(
        f"{spec}:2:15: error[E001]: unexpected character U+0000: expected a value, '}}', ')', ']', ',', "
        "'=', ':' or '{'\n"
        "    2 |     input [4] \\x00 linear(2)\n"
        "      |               ^^^^\n"
    )


def test_a_long_line_is_quoted_around_the_caret_only(tmp_path: Path) -> None:
    # A spec on one line (or a binary file read as text) would otherwise quote all of it.
    line = "model M { input [3, 8, 8] " + "relu " * 40 + "conv(4, kernel=9) " + "relu " * 40 + "}"
    spec = tmp_path / "long.arch"
    spec.write_text(line + "\n", encoding="utf-8")
    column = line.index("conv") + 1
    text = render(
        error("E101", "conv output is empty", Span(str(spec), 1, column, 1, column + 17)),
        SourceCache({str(spec): line + "\n"}),
    )
    quoted = line[column - 1 - 30 : column - 1 + 90]
    assert text.splitlines()[1:] == [f"    1 | …{quoted}…", f"      | {' ' * 31}{'^' * 17}"]
