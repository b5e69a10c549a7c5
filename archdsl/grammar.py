"""The language's grammar file, and the facts other stages read from it without building a parser.

`grammar.lark` is the one definition of the language: the parser (`parser.py`) loads it, and its
keywords are read here, so the layer catalog can refuse a layer named `gate` (a statement that
calls it could never parse) without importing lark or the parser stack.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

GRAMMAR = Path(__file__).with_name("grammar.lark")

#: A lark grammar's string literals, with its comments and regular expressions matched only so that
#: a quote inside one (the STRING terminal's `/"…"/`) is not taken for a literal.
_LEXEME = re.compile(r'"((?:[^"\\\n]|\\.)*)"i?|//[^\n]*|/(?:[^/\\\n]|\\.)+/[imslux]*')


@functools.lru_cache(maxsize=1)
def keywords() -> frozenset[str]:
    """The grammar's keywords (`block`, `residual`, `true`, …): the literals it spells that are
    words. Each is a terminal of its own, so the NAME terminal never matches one: no keyword can
    be a name where the grammar asks for NAME."""
    text = GRAMMAR.read_text(encoding="utf-8")
    literals = (match.group(1) for match in _LEXEME.finditer(text) if match.group(1) is not None)
    return frozenset(word for word in literals if word.isidentifier())
