"""`archdsl fmt`: one canonical layout, idempotent, every comment kept, the meaning unchanged.

The meaning is tested as a differential: a spec and its formatted text must check to the same
models — every statement's path (its `state_dict` prefix), op, arguments, shapes, parameters and
MACs — for every spec of the repository and for the fuzz corpus, whose layout and comments are
scrambled first; for the small ones the built modules' `state_dict` names are compared too.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest

from archdsl.fmt import FormatError, format_text
from archdsl.loader import Loader
from archdsl.parser import concrete_parser
from archdsl.pipeline import compile_file
from archdsl.trivia import scan
from campaigns.specgen import fuzz_input, generate, render

from conftest import ROOT, run_cli

ZOO = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "specs" / "torchvision").glob("*.arch"))
SPECS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "specs").glob("*.arch")) + ZOO
#: Written by hand as users write, and not formatted: what fmt meets in the wild.
HANDWRITTEN = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tests" / "handwritten").glob("*.arch"))
FIXTURES = ROOT / "tests" / "fixtures" / "fmt"


def layer_tree(nodes: list[Any]) -> list[Any]:
    """Each statement's module path, op, arguments, shapes, parameters, MACs and children."""
    fields = ("name", "path", "kind", "op", "input", "output", "params", "macs")
    return [
        (*(getattr(n, f) for f in fields), repr(sorted(n.args.items())), layer_tree(n.children))
        for n in nodes
    ]


def models(text: str, path: str) -> list[Any]:
    """What `text`, standing at `path` (its imports read from beside it), checks to."""
    loader = Loader()
    loader.add_text(text, path)
    program = compile_file(path, loader=loader)
    # A message may say where a value is made ("conv, line 4"): formatting moves lines.
    found = [
        (d.code, re.sub(r"line \d+", "line N", d.message)) for d in program.diagnostics if d.code != "W005"
    ]
    return [found] + [
        (m.name, m.input, m.output, m.params, m.macs, layer_tree(m.layers)) for m in program.models
    ]


def comments(text: str) -> list[str]:
    return [c.text for c in scan(text).comments]


@pytest.mark.slow
@pytest.mark.parametrize("spec", SPECS + HANDWRITTEN)
def test_formatting_a_spec_keeps_its_models_and_comments_and_is_idempotent(spec: str) -> None:
    text = (ROOT / spec).read_text(encoding="utf-8")
    formatted = format_text(text, spec)
    assert format_text(formatted, spec) == formatted
    assert comments(formatted) == comments(text)
    assert models(formatted, str(ROOT / spec)) == models(text, str(ROOT / spec))


@pytest.mark.slow
def test_every_spec_in_the_repository_is_formatted(in_root: Path) -> None:
    code, out = run_cli("fmt", "--check", "specs", "specs/torchvision")
    assert code == 0, out


# --- the fuzz corpus, its layout scrambled ----------------------------------------------------------


def scramble(text: str, rng: random.Random) -> str:
    """The same spec, its tokens separated by random white space (spaces, tabs, newlines, blank
    lines), random comments (on lines of their own, after code, inside expressions) and `;`s."""
    lines = text.splitlines()
    # `;` may end a statement wherever one stands in a body: after an indented line, or a `{`.
    text = "\n".join(
        line + (";" if (line.startswith(" ") or line.endswith("{")) and rng.random() < 0.2 else "")
        for line in lines
    )
    tokens = list(concrete_parser().lex(text))
    out = [str(tokens[0])]
    for index, token in enumerate(tokens[1:], start=1):
        roll = rng.random()
        if roll < 0.6:
            gap = " "
        elif roll < 0.75:
            gap = rng.choice(["\n", "\n\n", "\n\n\n    ", "\t", "  ", " \n  "])
        elif roll < 0.85:
            gap = f"  # c{index}\n"
        elif roll < 0.9:
            gap = f"\n# own {index}\n"
        else:
            glued = token.type in _PUNCTUATION or tokens[index - 1].type in _PUNCTUATION
            gap = "" if glued else " "
        out.append(gap + str(token))
    return "".join(out) + "\n"


_PUNCTUATION = {"COMMA", "SEMICOLON", "COLON", "EQUAL", "LPAR", "RPAR", "LSQB", "RSQB", "LBRACE", "RBRACE"}


def _scrambled_corpus(count: int) -> list[tuple[int, str]]:
    return [(seed, render(generate(seed))[0]) for seed in range(count)]


@pytest.mark.parametrize(("seed", "text"), _scrambled_corpus(40), ids=lambda v: str(v)[:8])
def test_formatting_a_scrambled_generated_spec_gives_the_same_models(
    seed: int, text: str, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    path = str(tmp_path / "differential.arch")
    scrambled = scramble(text, rng)
    formatted = format_text(scrambled, path)
    assert format_text(formatted, path) == formatted
    assert comments(formatted) == comments(scrambled)
    assert models(formatted, path) == models(scrambled, path) == models(text, path)


@pytest.mark.slow
def test_formatted_modules_have_the_same_state_dict_names(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from archdsl.builder import build_model

    def names(text: str, path: str) -> list[tuple[str, tuple[int, ...]]]:
        loader = Loader()
        loader.add_text(text, path)
        program = compile_file(path, loader=loader)
        net = build_model(program.models[0])
        return [(k, tuple(v.shape)) for k, v in net.state_dict().items()]

    for seed in range(8):
        text = render(generate(seed))[0]
        path = str(tmp_path / f"spec{seed}.arch")
        scrambled = scramble(text, random.Random(seed))
        try:
            expected = names(text, path)
        except Exception:  # the generator's spec is one PyTorch refuses: nothing to compare
            continue
        assert names(format_text(scrambled, path), path) == expected
    for spec in ("specs/lenet5.arch", "specs/resnet_mini.arch", "specs/googlenet_mini.arch", ZOO[0]):
        text = (ROOT / spec).read_text(encoding="utf-8")
        assert names(format_text(text), str(ROOT / spec)) == names(text, str(ROOT / spec))


@pytest.mark.slow
def test_formatting_never_crashes_on_fuzz_input() -> None:
    rng = random.Random(13)
    for _ in range(150):
        _, data = fuzz_input(rng)
        text = data.decode("utf-8", "replace")
        try:
            formatted = format_text(text)
        except FormatError as exc:
            assert exc.diagnostics, exc  # only a syntax error may stop it
            continue
        assert format_text(formatted) == formatted


# --- the canonical layout ------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.arch")), ids=lambda p: p.stem)
def test_layout_fixture_formats_to_its_golden(fixture: Path, golden: Any) -> None:
    formatted = format_text(fixture.read_text(encoding="utf-8"), fixture.name)
    golden(fixture.with_suffix(".formatted"), formatted)
    assert format_text(formatted) == formatted


def test_a_trailing_comment_stays_after_its_statement_when_a_long_line_is_broken() -> None:
    long = " ".join(["conv(64, kernel=3, padding=1) batchnorm relu"] * 3)
    text = f"model M {{\n    input [3, 8, 8]\n    {long}  # the stem\n}}\n"
    formatted = format_text(text)
    lines = formatted.splitlines()
    assert lines[-2].endswith("relu  # the stem") and lines[-2].count("relu") == 1
    assert len(lines) > 4 and all(len(line) <= 100 for line in lines)


def test_a_comment_inside_an_argument_list_stays_after_its_argument() -> None:
    text = "model M {\n    input [1, 8, 8]\n    conv(4,  # four\n         kernel=3)\n}\n"
    assert format_text(text) == (
        "model M {\n    input [1, 8, 8]\n    conv(\n        4,  # four\n        kernel=3,\n    )\n}\n"
    )


def test_a_comment_after_the_brace_before_else_stays_there() -> None:
    # Found by the generated specs of the differential campaign: fmt refused the file, losing it.
    text = (
        "model M {\n    input [2, 8]\n    if channels == 2 { relu }  # first\n"
        "    else if channels == 3 {\n        tanh\n    }  # second\n    else { sigmoid }\n}\n"
    )
    assert format_text(text) == (
        "model M {\n    input [2, 8]\n    if channels == 2 { relu }  # first\n"
        "    else if channels == 3 {\n        tanh\n    }                          # second\n"
        "    else { sigmoid }\n}\n"
    )


def test_own_line_comments_keep_their_place_and_blank_lines_are_collapsed() -> None:
    text = (
        "# header\n\n\n\nblock B {\n\n    # first\n    relu\n\n\n    # second\n\n    tanh\n"
        "\n    # last\n\n}\nmodel M { input [1, 2, 2] B() }  # end\n# the end\n"
    )
    assert format_text(text) == (
        "# header\n\nblock B {\n    # first\n    relu\n\n    # second\n\n    tanh\n\n    # last\n}\n\n"
        "model M { input [1, 2, 2] B() }  # end\n# the end\n"
    )


def test_separators_and_trailing_commas_are_dropped() -> None:
    text = "model M { input [1, 2, 2,]; relu;; tanh\n train { epochs = 1, batch = 2; seed = 0 } }\n"
    assert format_text(text) == (
        "model M {\n    input [1, 2, 2] relu tanh\n    train { epochs = 1 batch = 2 seed = 0 }\n}\n"
    )


def test_a_file_with_a_syntax_error_cannot_be_formatted() -> None:
    with pytest.raises(FormatError) as caught:
        format_text("model M { conv( }\n", "broken.arch")
    assert [d.code for d in caught.value.diagnostics] == ["E001"]


# --- the command ---------------------------------------------------------------------------------


def test_fmt_check_lists_the_files_it_would_change_and_changes_nothing(tmp_path: Path) -> None:
    messy = tmp_path / "messy.arch"
    messy.write_text("model M{input [1,2,2] relu}\n", encoding="utf-8")
    clean = tmp_path / "clean.arch"
    clean.write_text("model M { input [1, 2, 2] relu }\n", encoding="utf-8")
    code, out = run_cli("fmt", "--check", str(tmp_path))
    assert code == 1
    assert out == f"would reformat {messy}\n1 file would be reformatted, 1 unchanged\n"
    assert messy.read_text(encoding="utf-8") == "model M{input [1,2,2] relu}\n"


def test_fmt_rewrites_files_in_place_and_then_check_passes(tmp_path: Path) -> None:
    messy = tmp_path / "messy.arch"
    messy.write_text("model M{input [1,2,2] relu}\n", encoding="utf-8")
    assert run_cli("fmt", str(messy)) == (0, f"reformatted {messy}\n1 file reformatted, 0 unchanged\n")
    assert messy.read_text(encoding="utf-8") == "model M { input [1, 2, 2] relu }\n"
    assert run_cli("fmt", "--check", str(messy)) == (0, "0 files would be reformatted, 1 unchanged\n")
    assert [p.name for p in tmp_path.iterdir()] == ["messy.arch"]  # no temporary file left


def test_fmt_diff_prints_a_unified_diff(tmp_path: Path) -> None:
    messy = tmp_path / "messy.arch"
    messy.write_text("model M{input [1,2,2] relu}\n", encoding="utf-8")
    code, out = run_cli("fmt", "--diff", str(messy))
    assert code == 1
    assert out.splitlines()[2:] == [
        "@@ -1 +1 @@",
        "-model M{input [1,2,2] relu}",
        "+model M { input [1, 2, 2] relu }",
    ]


def test_fmt_leaves_a_file_with_syntax_errors_as_it_is(tmp_path: Path) -> None:
    broken = tmp_path / "broken.arch"
    broken.write_text("model M { conv( }\n", encoding="utf-8")
    code, out = run_cli("fmt", str(broken))
    assert code == 1
    assert "error[E001]" in out and out.endswith("0 files reformatted, 0 unchanged, 1 not formatted\n")
    assert broken.read_text(encoding="utf-8") == "model M { conv( }\n"


def test_a_file_keeps_its_line_endings(tmp_path: Path) -> None:
    # as black does: a CRLF file in the canonical layout is unchanged, and one formatted stays CRLF
    canonical = "model M {\r\n    input [1, 28, 28]  # an image\r\n    conv(6, kernel=5) relu\r\n}\r\n"
    assert format_text(canonical) == canonical
    scrambled = "model M {\r\n  input [1, 28, 28]  # an image\r\n    conv(6, kernel=5)   relu\r\n}\r\n"
    assert format_text(scrambled) == canonical
    assert format_text(canonical.replace("\r\n", "\n")) == canonical.replace("\r\n", "\n")
    spec = tmp_path / "crlf.arch"
    spec.write_bytes(canonical.encode())
    assert run_cli("fmt", "--check", str(spec)) == (0, "0 files would be reformatted, 1 unchanged\n")
