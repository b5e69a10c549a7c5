"""Shape comments that cannot lie (W005, `archdsl fmt --shapes`) and warnings a spec means
(`archdsl: allow CODE`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import archdsl
from archdsl.fmt import FormatError, format_text

from conftest import ROOT, run_cli

SPEC = """\
block Down(width: int) {
    conv(width, kernel=3, stride=2, padding=1) relu  # [8, 8, 8]
}

model M(classes: int = 10) {
    input [1, 16, 16]
    conv(8, kernel=3, padding=1)  # [8, 16, 16] same size
    Down(8)                       # [8, 8, 8]
    stage: {
        conv(8, kernel=3, padding=1) relu
    }                             # [8, 8, 8]
    repeat 2 { maxpool(2) }       # [8, 2, 2]
    flatten linear(classes)       # [10]
}
"""


def check(text: str, tmp_path: Path, **params: int) -> list[archdsl.Diagnostic]:
    path = tmp_path / "spec.arch"
    path.write_text(text, encoding="utf-8")
    return [d for d in archdsl.check(path, **params) if d.code == "W005"]


def test_a_stale_shape_comment_is_w005_with_both_shapes_and_the_fix(tmp_path: Path) -> None:
    (stale,) = check(SPEC.replace("# [8, 16, 16]", "# [8, 14, 14]"), tmp_path)
    assert (stale.line, stale.column, stale.end_column) == (7, 37, 48)
    assert stale.message == (
        "shape comment [8, 14, 14] is stale: `conv` gives [8, 16, 16]; `archdsl fmt --shapes` rewrites it"
    )
    assert stale.severity is archdsl.Severity.WARNING


def test_a_size_no_tensor_has_is_stale_not_a_crash(tmp_path: Path) -> None:
    # Found by the fuzzer: Python refuses to convert a string of more than 4,300 digits to an int.
    huge = "9" * 5000
    text = f"model A {{\n    input [4]\n    linear(2)  # [{huge}]\n    relu       # [0002]\n}}\n"
    (found,) = check(text, tmp_path)
    assert (found.line, found.column) == (3, 18)
    assert found.message == (
        f"shape comment [{huge[:39]}… is stale: `linear` gives [2]; `archdsl fmt --shapes` rewrites it"
    )


def test_a_comment_after_a_closing_brace_describes_the_whole_statement(tmp_path: Path) -> None:
    assert check(SPEC, tmp_path) == []
    (stale,) = check(SPEC.replace("}                             # [8, 8, 8]", "}  # [8, 9, 9]"), tmp_path)
    assert stale.line == 11 and "the group gives [8, 8, 8]" in stale.message


GRAPH = """\
block B(out: int) {
    *residual {
        conv(out, kernel=3, padding=1)
        shortcut { conv(out, kernel=1) }  # [8, 9, 9]
    }
}

model M {
    input [4, 9, 9]
    c: { conv(8, kernel=1) } as skip  # [8, 9, 9]
    B(8)
    flatten linear(1)
    view([])  # []
}
"""


def test_a_comment_after_names_a_shortcut_or_one_number_per_sample_is_checked(tmp_path: Path) -> None:
    # Found by the importer's round trips: each was neither checked nor refreshed, and `# []` was
    # written again on each `fmt --shapes`.
    assert check(GRAPH, tmp_path) == []
    stale = GRAPH.replace("as skip  # [8, 9, 9]", "as skip  # [99, 1, 1]")
    stale = stale.replace("}  # [8, 9, 9]", "}  # [9, 9, 9]").replace("# []", "# [1]")
    assert [(d.line, d.message.split(";")[0]) for d in check(stale, tmp_path)] == [
        (4, "shape comment [9, 9, 9] is stale: the shortcut gives [8, 9, 9]"),
        (10, "shape comment [99, 1, 1] is stale: the group gives [8, 9, 9]"),
        (13, "shape comment [1] is stale: `view` gives []"),
    ]
    path = tmp_path / "spec.arch"
    assert format_text(stale, str(path), shapes=True) == format_text(GRAPH, str(path), shapes=True)
    formatted = format_text(GRAPH, str(path), shapes=True)
    assert format_text(formatted, str(path), shapes=True) == formatted


def test_only_the_statement_right_before_the_comment_is_described(tmp_path: Path) -> None:
    # `flatten linear(classes)  # [10]` is linear's shape, not flatten's; a comment after '{' is none.
    assert check(SPEC.replace("stage: {", "stage: {  # [1, 2, 3]"), tmp_path) == []


def test_a_block_statement_is_held_to_every_call(tmp_path: Path) -> None:
    twice = SPEC.replace("    Down(8)                       # [8, 8, 8]", "    Down(8) Down(8)")
    (impossible,) = [d for d in check(twice, tmp_path) if d.line == 2]
    assert "`relu` gives [8, 8, 8] or [8, 4, 4], depending on the call or pass" in impossible.message
    assert [n.message for n in impossible.notes] == [
        "a statement in a block has a shape at each call of the block"
    ]


def test_shape_comments_are_not_judged_under_parameter_overrides(tmp_path: Path) -> None:
    assert check(SPEC.replace("# [10]", "# [5]"), tmp_path, classes=5) == []
    assert [d.line for d in check(SPEC.replace("# [10]", "# [5]"), tmp_path)] == [13]


def test_fmt_shapes_writes_true_comments_and_keeps_other_text(tmp_path: Path) -> None:
    path = tmp_path / "spec.arch"
    text = SPEC.replace("Down(8)                       # [8, 8, 8]", "Down(8)  # halves")
    path.write_text(
        text.replace("    flatten linear(classes)       # [10]\n", "    flatten\n    linear(classes)\n")
    )
    formatted = format_text(path.read_text(), str(path), shapes=True)
    assert formatted == (
        "block Down(width: int) {\n"
        "    conv(width, kernel=3, stride=2, padding=1) relu  # [8, 8, 8]\n"
        "}\n\n"
        "model M(classes: int = 10) {\n"
        "    input [1, 16, 16]\n"
        "    conv(8, kernel=3, padding=1)           # [8, 16, 16] same size\n"
        "    Down(8)                                # [8, 8, 8]  halves\n"
        "    stage: {\n"
        "        conv(8, kernel=3, padding=1) relu  # [8, 8, 8]\n"
        "    }                                      # [8, 8, 8]\n"
        "    repeat 2 { maxpool(2) }                # [8, 2, 2]\n"
        "    flatten                                # [32]\n"
        "    linear(classes)                        # [10]\n"
        "}\n"
    )
    assert format_text(formatted, str(path), shapes=True) == formatted
    path.write_text(formatted)
    assert check(formatted, tmp_path) == []


def test_fmt_shapes_removes_a_shape_that_cannot_be_true(tmp_path: Path) -> None:
    twice = SPEC.replace("    Down(8)                       # [8, 8, 8]", "    Down(8) Down(8)")
    path = tmp_path / "spec.arch"
    formatted = format_text(
        twice.replace("relu  # [8, 8, 8]", "relu  # [8, 1, 1]: the second call"), str(path), shapes=True
    )
    assert "    conv(width, kernel=3, stride=2, padding=1) relu  # the second call\n" in formatted
    # A repeat's body changes shape at each pass: no comment is written inside it.
    looped = format_text(
        twice.replace("repeat 2 { maxpool(2) }", "repeat 2 {\n maxpool(2)\n}"), str(path), shapes=True
    )
    assert "        maxpool(2)\n" in looped


def test_fmt_shapes_refuses_a_spec_with_errors(tmp_path: Path) -> None:
    with pytest.raises(FormatError) as caught:
        format_text("model M { input [1, 4, 4] conv(8, kernel=9) }\n", str(tmp_path / "x.arch"), shapes=True)
    assert [d.code for d in caught.value.diagnostics] == ["E101"]


# --- warnings a spec means -------------------------------------------------------------------------

ALLOWED = (
    "model M {\n    input [1, 5, 5]\n    maxpool(2)  # [1, 2, 2]  archdsl: allow W001\n    maxpool(1)\n}\n"
)


def test_an_allowed_warning_is_reported_but_strict_does_not_fail_on_it(tmp_path: Path) -> None:
    spec = tmp_path / "allowed.arch"
    spec.write_text(ALLOWED, encoding="utf-8")
    (warning,) = archdsl.check(spec, strict=True)
    assert warning.code == "W001" and warning.allowed and not warning.is_error
    assert warning.notes[-1].message.startswith("allowed by `archdsl: allow W001` in a comment on line 3")
    code, out = run_cli("check", "--strict", str(spec))
    assert code == 0 and out.endswith("0 errors, 1 warning (1 allowed)\n") and "warning[W001]" in out
    archdsl.load(spec, strict=True)  # no ArchError
    document = json.loads(run_cli("check", "--format", "json", str(spec))[1])
    assert document["diagnostics"][0]["allowed"] is True
    sarif = json.loads(run_cli("check", "--format", "sarif", str(spec))[1])
    assert sarif["runs"][0]["results"][0]["suppressions"] == [
        {"kind": "inSource", "justification": "# archdsl: allow W001"}
    ]


def test_allowing_another_code_or_another_line_allows_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "other.arch"
    spec.write_text(ALLOWED.replace("allow W001", "allow W002"), encoding="utf-8")
    assert [d.is_error for d in archdsl.check(spec, strict=True)] == [True]
    spec.write_text(
        ALLOWED.replace("  archdsl: allow W001", "").replace(
            "maxpool(1)", "maxpool(1)  # archdsl: allow W001"
        )
    )
    assert [d.is_error for d in archdsl.check(spec, strict=True)] == [True]


@pytest.mark.slow
def test_every_spec_in_the_repository_passes_check_strict(in_root: Path) -> None:
    code, out = run_cli("check", "--strict", "-q", "specs", "specs/torchvision", "tests/fixtures/fmt")
    assert code == 0, out
    assert out.count("warning[W001]") == 4 and "error[" not in out  # alexnet's, allowed


def test_the_readme_names_the_allowed_warnings(in_root: Path) -> None:
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert (
        "an `archdsl: allow W001` comment on each of those lines says so, and `check --strict` passes"
        in readme
    )


def test_fmt_shapes_on_the_command_line(tmp_path: Path) -> None:
    spec = tmp_path / "spec.arch"
    spec.write_text("model M { input [1, 4, 4]\n    conv(2, kernel=3)  # [2, 4, 4]\n}\n", encoding="utf-8")
    assert run_cli("fmt", "--shapes", "--check", str(spec))[0] == 1
    assert run_cli("fmt", "--shapes", str(spec))[0] == 0
    assert spec.read_text(encoding="utf-8") == (
        "model M {\n    input [1, 4, 4]\n    conv(2, kernel=3)  # [2, 2, 2]\n}\n"
    )
    assert run_cli("check", "--strict", str(spec))[0] == 0


def test_a_statement_giving_several_values_is_described_by_each_shape(tmp_path: Path) -> None:
    text = (
        "model M {\n    input [4, 6, 6]\n    split(2) as (a, b)  # ([2, 6, 6], [2, 6, 6])\n"
        "    a -> cat(b)\n}\n"
    )
    assert check(text, tmp_path) == []
    (stale,) = check(text.replace("[2, 6, 6])", "[2, 6, 5])"), tmp_path)
    assert stale.message == (
        "shape comment ([2, 6, 6], [2, 6, 5]) is stale: `split` gives ([2, 6, 6], [2, 6, 6]); "
        "`archdsl fmt --shapes` rewrites it"
    )
    bare = text.replace("  # ([2, 6, 6], [2, 6, 6])", "")
    assert format_text(bare, str(tmp_path / "spec.arch"), shapes=True).split("\n")[2] == (
        "    split(2) as (a, b)  # ([2, 6, 6], [2, 6, 6])"
    )
