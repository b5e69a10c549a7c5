"""Comments are kept once, from the lexer: positions right, and no second scanner of `#`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from archdsl.loader import Loader
from archdsl.parser import parse
from archdsl.trivia import scan

ARCHDSL = Path(__file__).resolve().parent.parent / "archdsl"

SPEC = (
    "# own line\r\n"
    'import "a # not a comment.arch" # last\n'
    "model M {  # after the brace\n"
    "  input [3, 8, 8]\f  # [3, 8, 8] \n"
    "}\n"
)


def test_comments_come_from_the_lexer_with_their_positions():
    result = parse(SPEC, "m.arch")
    assert not result.diagnostics
    assert result.trivia_tokens is not None
    trivia = Loader().add_text(SPEC, "m.arch").trivia
    found = [(c.line, c.column, c.text, c.trailing) for c in trivia.comments]
    assert found == [
        (1, 1, "# own line", False),
        (2, 33, "# last", True),
        (3, 12, "# after the brace", True),
        (4, 21, "# [3, 8, 8]", True),
    ]
    for comment in trivia.comments:
        assert SPEC[comment.offset :].startswith(comment.text)
    # The `#` inside the string is in a string, not a comment.
    inside = SPEC.index("# not")
    assert trivia.in_comment_or_string(inside)
    assert not any(c.offset == inside for c in trivia.comments)
    assert trivia.closing == {SPEC.index("{"): SPEC.rindex("}") + 1}


@pytest.mark.parametrize(
    "text",
    [
        SPEC,
        SPEC.replace("\n", "\r\n"),
        "model M {\n  input [3, 8, 8] # a\n  conv(4 # broken\n",
        'model M {\n  relu: "open # x\n}\n# end\n',
        "import 'a#b.arch'  # c\nmodel M { input [1] }\n",
    ],
)
def test_the_lexer_and_the_tolerant_scan_agree(text):
    """A file that parses takes its trivia from the lexer's tokens; one that does not is read
    with the same patterns: both give the same comments, braces and strings."""
    loaded = Loader().add_text(text, "m.arch")
    assert loaded.trivia == scan(text) or loaded.trivia_tokens is None
    assert [c.text for c in scan(text).comments] == [c.text for c in loaded.trivia.comments]


#: Comment syntax written out: `#` then "anything to the end of the line", in a regex or a test.
_COMMENT_SYNTAX = re.compile(r"""#\[\^\\n\]|#\.\*|["']#["']\s*(?:in|==|!=)|(?:==|!=)\s*["']#["']""")


def test_no_module_but_comments_py_knows_what_a_comment_looks_like():
    """The grammar owns comment syntax (grammar.py reads its terminals for text that may not parse)
    and trivia.py the comments: every other module reads them."""
    allowed = {"trivia.py"}
    offenders = []
    for path in ARCHDSL.rglob("*.py"):
        if path.name in allowed:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _COMMENT_SYNTAX.search(line):
                offenders.append(f"{path.relative_to(ARCHDSL)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_guard_catches_a_private_comment_regex():
    assert _COMMENT_SYNTAX.search(r'_TOKENS = re.compile(r"#[^\n]*")')
    assert _COMMENT_SYNTAX.search('if ch == "#":')
    assert not _COMMENT_SYNTAX.search('_SHAPE = re.compile(rf"#\\s*({_SIZES})")')


def test_the_terminals_read_from_the_grammar_file_are_the_lexers():
    from archdsl.grammar import terminal
    from archdsl.parser import lark_parser

    lexer = lark_parser()
    for name in ("STRING", "COMMENT"):
        # lark writes the grammar's `\n` escape as the character itself; the two match alike
        assert terminal(name).replace("\\n", "\n") == lexer.get_terminal(name).pattern.to_regexp()


def test_the_parsers_recovery_skips_what_the_trivia_reads_as_strings_and_comments():
    from archdsl.parser import _code_offsets

    text = 'a "b # c" d # e "f"\n\'g}\' h "open { i\nj'
    kept = "".join(text[i] for i in _code_offsets(text))
    assert kept == "a  d \n h \nj"
    trivia = scan(text)
    skipped = [(c.offset, c.offset + len(c.text)) for c in trivia.comments] + trivia.strings
    assert sorted(skipped) == [(2, 9), (12, 19), (20, 24), (27, 36)]
