"""Trivia: what the parser's lexer skips — comments — and where each `{` closes.

Consumes the comment, string and brace tokens the parser's lexer handed over while it parsed a
file (`ParseResult.trivia_tokens`, kept once per file on `LoadedFile.trivia`); produces its
comments, each with its position and whether code stands before it on its line (a trailing
comment) or not (an own-line comment), its string literals, and for each `{` the offset of its
`}`. A file that does not parse is read with the grammar's own STRING and COMMENT patterns
(`scan`), a character the lexer cannot take skipped, so a comment here is exactly what the
parser ignores as one (a `#` inside a string is no comment). This is the one module that knows
what a comment looks like: no other module looks for `#` in a text.

Read by `fmt` (which keeps every comment), by the shape-comment check (`shape_comments.py`) and
by `# archdsl: allow CODE`, which marks a warning on its line as intended.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from lark import Token

from .grammar import UNCLOSED_STRING, terminal
from .grammar import skip_pattern as grammar_skip_pattern


@dataclass(frozen=True)
class Comment:
    offset: int  #: of its '#'
    line: int  #: 1-based
    column: int  #: 1-based, in characters
    text: str  #: from '#' to the end of the line, trailing white space removed
    trailing: bool  #: code stands before it on its line
    #: For a trailing comment, the offset just past the last character of code before it.
    code_end: int = -1


@dataclass
class Trivia:
    text: str
    comments: list[Comment] = field(default_factory=list)
    #: The offset of each `{` outside strings and comments → the offset of its `}` (unclosed: absent).
    closing: dict[int, int] = field(default_factory=dict)
    line_starts: list[int] = field(default_factory=list)
    #: (start, end) of each string literal, and of each unclosed one (to the end of its line).
    strings: list[tuple[int, int]] = field(default_factory=list)

    def offset(self, line: int, column: int) -> int:
        """The offset of a 1-based line and column."""
        return self.line_starts[line - 1] + column - 1

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.line_starts, offset)

    def on_line(self, line: int) -> list[Comment]:
        return [c for c in self.comments if c.line == line]

    def in_comment_or_string(self, offset: int) -> bool:
        """Whether the character at `offset` stands in a comment or a string (closed or not)."""
        spans = [(c.offset, c.offset + len(c.text)) for c in self.comments]
        return any(start <= offset < end for start, end in [*spans, *self.strings])

    def closing_brace_after(self, offset: int) -> int | None:
        """The `}` that closes the first `{` at or after `offset`."""
        opens = self._opens
        index = bisect.bisect_left(opens, offset)
        return self.closing.get(opens[index]) if index < len(opens) else None

    @functools.cached_property
    def _opens(self) -> list[int]:
        return sorted(self.closing)


@functools.lru_cache(maxsize=1)
def _pattern() -> re.Pattern[str]:
    string, comment = _terminals()
    return re.compile(f"(?P<string>{string})|(?P<comment>{comment})|(?P<quote>[\"'])|(?P<brace>[{{}}])")


_UNCLOSED_AT = re.compile(UNCLOSED_STRING)


@functools.lru_cache(maxsize=1)
def _terminals() -> tuple[str, str]:
    """The grammar's own STRING and COMMENT patterns: the one definition of what each is."""
    return terminal("STRING"), terminal("COMMENT")


def comment_pattern() -> str:
    """The grammar's COMMENT pattern, for a reader of half-typed text that drops comments."""
    return terminal("COMMENT")


def skip_pattern() -> str:
    """A regular expression for what a tolerant tokenizer of half-typed text (the editor's
    completion context) skips: a string, closed or not, or a comment (`grammar.skip_pattern`)."""
    return grammar_skip_pattern()


def _line_starts(text: str) -> list[int]:
    return [0, *(m.end() for m in re.finditer("\n", text))]


def _comment(text: str, line_starts: list[int], start: int, raw: str) -> Comment:
    line = bisect.bisect_right(line_starts, start)
    line_start = line_starts[line - 1]
    code = text[line_start:start].rstrip()
    trailing = bool(code.strip())
    return Comment(
        offset=start,
        line=line,
        column=start - line_start + 1,
        text=raw.rstrip(),
        trailing=trailing,
        code_end=line_start + len(code) if trailing else -1,
    )


def of_tokens(text: str, tokens: Iterable[Token]) -> Trivia:
    """The trivia of a file that parsed, from the comment, string and brace tokens its lexer
    handed over (`ParseResult.trivia_tokens`): no second reading of the text."""
    line_starts = _line_starts(text)
    trivia = Trivia(text=text, line_starts=line_starts)
    stack: list[int] = []
    for token in tokens:
        start = token.start_pos or 0
        kind = token.type
        if kind == "LBRACE":
            stack.append(start)
        elif kind == "RBRACE":
            if stack:
                trivia.closing[stack.pop()] = start + 1
        elif kind == "COMMENT":
            trivia.comments.append(_comment(text, line_starts, start, str(token)))
        else:
            trivia.strings.append((start, start + len(token)))
    return trivia


def scan(text: str) -> Trivia:
    """The trivia of any text, one that does not parse included: what the lexer would find,
    read with its own patterns, a character it cannot take skipped."""
    line_starts = _line_starts(text)
    trivia = Trivia(text=text, line_starts=line_starts)
    stack: list[int] = []
    for match in _pattern().finditer(text):
        kind = match.lastgroup
        start = match.start()
        if kind == "brace":
            if text[start] == "{":
                stack.append(start)
            elif stack:
                trivia.closing[stack.pop()] = start + 1
        elif kind == "comment":
            trivia.comments.append(_comment(text, line_starts, start, match.group()))
        elif kind == "string":
            trivia.strings.append((start, match.end()))
        else:  # a quote no string closes: skipped, as the lexer cannot take it, but a string to a reader
            unclosed = _UNCLOSED_AT.match(text, start)
            assert unclosed is not None
            trivia.strings.append((start, unclosed.end()))
    return trivia


# --- `# archdsl: allow CODE` ---------------------------------------------------------------------

_ALLOW = re.compile(r"archdsl:\s*allow\s+([A-Z][0-9]{3}(?:\s*,\s*[A-Z][0-9]{3})*)")


def allowed_codes(comments: Iterable[Comment]) -> set[str]:
    """The codes that `# archdsl: allow W001, W005` in any of `comments` names."""
    codes: set[str] = set()
    for comment in comments:
        for match in _ALLOW.finditer(comment.text):
            codes.update(code.strip() for code in match.group(1).split(","))
    return codes
