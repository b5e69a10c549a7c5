"""The language's grammar file, and the facts other stages read from it without building a parser.

`grammar.lark` is the one definition of the language: the parser (`parser.py`) loads it, and its
keywords are read here, so the layer catalog can refuse a layer named `gate` (a statement that
calls it could never parse) without importing lark or the parser stack; and so are its STRING and
COMMENT terminals, which every reader of text that may not parse (the parser's recovery, the
trivia of a half-typed file, the editor's completion context) skips by.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

GRAMMAR = Path(__file__).with_name("grammar.lark")

#: A lark grammar's string literals, with its comments and regular expressions matched only so that
#: a quote inside one (the STRING terminal's `/"…"/`) is not taken for a literal.
_LEXEME = re.compile(r'"((?:[^"\\\n]|\\.)*)"i?|//[^\n]*|/(?:[^/\\\n]|\\.)+/[imslux]*')


@functools.cache
def _text() -> str:
    return GRAMMAR.read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def keywords() -> frozenset[str]:
    """The grammar's keywords (`block`, `residual`, `true`, …): the literals it spells that are
    words. Each is a terminal of its own, so the NAME terminal never matches one: no keyword can
    be a name where the grammar asks for NAME."""
    literals = (match.group(1) for match in _LEXEME.finditer(_text()) if match.group(1) is not None)
    return frozenset(word for word in literals if word.isidentifier())


#: A terminal's definition: its name (and priority), then one regular expression, or several on
#: lines of their own that begin with `|`.
_DEFINITION = re.compile(r"^(?P<name>[A-Z_][A-Z0-9_]*)(?:\.\d+)?:(?P<body>[^\n]*(?:\n[ \t]+\|[^\n]*)*)", re.M)
_REGEX = re.compile(r"/(?P<regex>(?:[^/\\\n]|\\.)+)/(?P<flags>[imslux]*)")

#: A string literal left open: from its quote to the end of its line (a half-typed one), or a
#: single-quoted one, which the lexer refuses but a reader still takes for a string.
UNCLOSED_STRING = r"\"(?:[^\"\\\n]|\\.)*|'(?:[^'\\\n]|\\.)*"


@functools.cache
def terminal(name: str) -> str:
    """The regular expression of the grammar's terminal `name` (`STRING`, `COMMENT`), its
    alternatives joined as lark joins them; tests/test_trivia.py holds it to the lexer's own."""
    for match in _DEFINITION.finditer(_text()):
        if match["name"] == name:
            parts = [
                f"(?{m['flags']}:{m['regex']})" if m["flags"] else m["regex"]
                for m in _REGEX.finditer(match["body"])
            ]
            return parts[0] if len(parts) == 1 else f"(?:{'|'.join(parts)})"
    raise KeyError(f"the grammar defines no terminal {name} by regular expressions")


@functools.lru_cache(maxsize=1)
def skip_pattern() -> str:
    """What a reader of text that may not parse skips: a string, closed or not, or a comment."""
    return f"{terminal('STRING')}|{UNCLOSED_STRING}|{terminal('COMMENT')}"
