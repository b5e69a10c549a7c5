"""Trivia: what the parser's lexer skips — comments — and where each `{` closes.

Consumes a file's text; produces its comments, each with its position and whether code stands
before it on its line (a trailing comment) or not (an own-line comment), and for each `{` the
offset of its `}`. Comments are found with the grammar's own STRING and COMMENT patterns, so a
comment here is exactly what the parser ignores as one (a `#` inside a string is no comment).

Read by `fmt` (which keeps every comment), by the shape-comment check (`shape_comments.py`) and
by `# archdsl: allow CODE`, which marks a warning on its line as intended.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field


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

    def offset(self, line: int, column: int) -> int:
        """The offset of a 1-based line and column."""
        return self.line_starts[line - 1] + column - 1

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.line_starts, offset)

    def on_line(self, line: int) -> list[Comment]:
        return [c for c in self.comments if c.line == line]

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
    from .parser import lark_parser

    parser = lark_parser()
    string = parser.get_terminal("STRING").pattern.to_regexp()
    comment = parser.get_terminal("COMMENT").pattern.to_regexp()
    return re.compile(f"(?P<string>{string})|(?P<comment>{comment})|(?P<brace>[{{}}])")


def scan(text: str) -> Trivia:
    line_starts = [0, *(m.end() for m in re.finditer("\n", text))]
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
            line = bisect.bisect_right(line_starts, start)
            line_start = line_starts[line - 1]
            before = text[line_start:start]
            code = before.rstrip()
            trivia.comments.append(
                Comment(
                    offset=start,
                    line=line,
                    column=start - line_start + 1,
                    text=match.group().rstrip(),
                    trailing=bool(code.strip()),
                    code_end=line_start + len(code) if code.strip() else -1,
                )
            )
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
