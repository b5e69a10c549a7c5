"""Diagnostics: source spans, the one error type, and their rendering.

Every stage reports problems as `Diagnostic` values carrying a `Span`; the stages collect them and
raise a single `ArchError` at the end. Only the CLI turns them into text (`render`), so library code
never prints.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from difflib import get_close_matches
from enum import Enum
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator

from .codes import CODES  # noqa: F401  (the table of codes, importable from here as it was)


class Span(NamedTuple):
    """A region of a source file: 1-based line and column, end column exclusive (as lark counts).

    A tuple, not a pydantic model: every IR node has one, and a 10,000-layer spec makes ~50,000
    of them; a tuple is four times cheaper to create and compares and hashes by value.
    """

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return self.file if self.whole_file else f"{self.file}:{self.line}:{self.column}"

    @classmethod
    def of_file(cls, file: str) -> Span:
        """A span for a finding about a file as a whole (it defines nothing, it has no model of
        that name): line and column 0, so nothing is quoted and no caret is drawn."""
        return cls(file, 0, 0, 0, 0)

    @property
    def whole_file(self) -> bool:
        return self.line == 0

    def to(self, end: Span) -> Span:
        """From the start of this span to the end of `end`."""
        return Span(self.file, self.line, self.column, end.end_line, end.end_column)


def _span_dict(span: Span) -> dict[str, Any]:
    return span._asdict()


def _as_span(value: Any) -> Span:
    if isinstance(value, Span):
        return value
    if isinstance(value, dict):
        return Span(**value)
    return Span(*value)


#: How pydantic models hold a span: a `Span` passes as is (the transformer makes every one), a dict
#: or sequence (from JSON) becomes one; dumped as a dict so JSON reads {"file": …, "line": …}.
SpanField = Annotated[Span, PlainValidator(_as_span), PlainSerializer(_span_dict)]


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


# Schemas are built on first use (defer_build): a clean check never creates a diagnostic.
class Note(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    message: str
    span: SpanField | None = None


class Diagnostic(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    severity: Severity
    code: str
    message: str
    span: SpanField
    notes: tuple[Note, ...] = ()
    #: A warning the spec means: `# archdsl: allow CODE` on its line. `--strict` does not fail on it.
    allowed: bool = False

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    # Where, as a user reads it (`d.file`, `d.line`): the span's fields; line and column are None
    # for a finding about the whole file.
    @property
    def file(self) -> str:
        return self.span.file

    @property
    def line(self) -> int | None:
        return None if self.span.whole_file else self.span.line

    @property
    def column(self) -> int | None:
        return None if self.span.whole_file else self.span.column

    @property
    def end_line(self) -> int | None:
        return None if self.span.whole_file else self.span.end_line

    @property
    def end_column(self) -> int | None:
        return None if self.span.whole_file else self.span.end_column

    def __str__(self) -> str:
        """`file:line:col: error[CODE]: message`, the first line of `render` (no source, no notes)."""
        return f"{self.span}: {self.severity.value}[{self.code}]: {self.message}"

    def as_error(self) -> Diagnostic:
        """The same finding promoted to an error (what `--strict` does to warnings)."""
        return self.model_copy(update={"severity": Severity.ERROR})


def strict(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """What `--strict` reports: every warning as an error, but those a comment allows."""
    return [d if d.is_error or d.allowed else d.as_error() for d in diagnostics]


class ArchError(Exception):
    """Raised by the public API when a spec has errors; `.diagnostics` holds all of them."""

    def __init__(self, diagnostics: Sequence[Diagnostic]):
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        first = self.diagnostics[0] if self.diagnostics else None
        summary = str(first) if first else "archdsl error"
        more = len(self.diagnostics) - 1
        super().__init__(summary + (f" (and {more} more)" if more > 0 else ""))


class RenderError(Exception):
    """Raised by `render` (the function and `archdsl render`) when graphviz's `dot` is missing or
    fails; the message says what to do. Here, beside `ArchError`, so that naming it imports no
    stage."""


class Failed(Exception):
    """Raised inside a stage to abandon one statement; the stage records `.diagnostic` and goes on."""

    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def error(code: str, message: str, span: Span, *notes: Note) -> Diagnostic:
    return Diagnostic(severity=Severity.ERROR, code=code, message=message, span=span, notes=notes)


def warning(code: str, message: str, span: Span, *notes: Note) -> Diagnostic:
    return Diagnostic(severity=Severity.WARNING, code=code, message=message, span=span, notes=notes)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """'; did you mean 'x'?' when something close exists, else ''."""
    matches = get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in candidates}
        if word.lower() in lowered:
            matches = [lowered[word.lower()]]
    return f"; did you mean '{matches[0]}'?" if matches else ""


def sort_key(diagnostic: Diagnostic) -> tuple[str, int, int, str]:
    span = diagnostic.span
    return (span.file, span.line, span.column, diagnostic.code)


# --- rendering -----------------------------------------------------------------------------------


class SourceCache:
    """Source text by file name, so rendering can quote the offending line."""

    def __init__(self, sources: dict[str, str] | None = None):
        self._lines: dict[str, list[str]] = {}
        for name, text in (sources or {}).items():
            self.add(name, text)

    def add(self, name: str, text: str) -> None:
        self._lines[name] = _lines(text)

    def line(self, name: str, number: int) -> str | None:
        lines = self._lines.get(name)
        if lines is None:
            try:
                # utf-8-sig: a byte-order mark is no character of line 1 (the loader skips it too)
                with open(name, encoding="utf-8-sig", errors="replace", newline="") as handle:
                    lines = _lines(handle.read())
            except OSError:
                lines = []
            self._lines[name] = lines
        if 1 <= number <= len(lines):
            return lines[number - 1]
        return None


def text_at(text: str, span: Span) -> str:
    """The text `span` covers in `text` (a file's), its lines counted as the parser counts them
    (at `\n` alone), or "" where the text has no such place."""
    starts = [0, *(match.end() for match in re.finditer("\n", text))]
    if not 1 <= span.line <= len(starts) or not 1 <= span.end_line <= len(starts):
        return ""
    return text[starts[span.line - 1] + span.column - 1 : starts[span.end_line - 1] + span.end_column - 1]


def _lines(text: str) -> list[str]:
    """Lines as the parser counts them: `str.splitlines` would also break at form feeds, lone
    carriage returns and other separators, and quote the wrong line under a diagnostic."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def visible(text: str, keep: str = "") -> str:
    """`text` with every unprintable character (but those in `keep`) written as its escape
    (`\\x00`, `\\x1b`, `\\u202e`): a binary file's NULs, a terminal escape sequence or a
    bidirectional override in a spec is shown, never sent to the terminal or into a diagram."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)


def _display(text: str) -> str:
    return visible(text, keep="\t").expandtabs(4)


def _caret_line(source_line: str, span: Span) -> str:
    start = max(span.column - 1, 0)
    end = span.end_column - 1 if span.end_line == span.line else len(source_line.rstrip())
    end = max(end, start + 1)
    # Measure through expandtabs so carets stay under the text when the line has tabs.
    lead = len(_display(source_line[:start]))
    width = max(len(_display(source_line[:end])) - lead, 1)
    return " " * lead + "^" * width


#: The most of a source line a diagnostic quotes: a longer line (a binary file read as text, a
#: generated spec on one line) is cut to this much around the caret, marked by ellipses.
QUOTED_WIDTH = 120


def _window(shown: str, caret: str) -> tuple[str, str]:
    """The displayed line and its caret line cut to `QUOTED_WIDTH` characters around the caret."""
    if len(shown) <= QUOTED_WIDTH:
        return shown, caret
    lead = len(caret) - len(caret.lstrip(" "))
    start = max(0, min(lead - QUOTED_WIDTH // 4, len(shown) - QUOTED_WIDTH))
    end = start + QUOTED_WIDTH
    text = ("…" if start else "") + shown[start:end] + ("…" if end < len(shown) else "")
    return text, (" " if start else "") + caret[start:end]


def render(diagnostic: Diagnostic, sources: SourceCache, color: bool = False) -> str:
    """`file:line:col: error[CODE]: message`, the source line with a caret, then any notes."""

    def paint(text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if color else text

    span = diagnostic.span
    label_color = "1;31" if diagnostic.is_error else "1;33"
    label = paint(f"{diagnostic.severity.value}[{diagnostic.code}]", label_color)
    lines = [f"{paint(str(span), '1')}: {label}: {visible(diagnostic.message)}"]
    source_line = sources.line(span.file, span.line)
    if source_line is not None:
        gutter = str(span.line)
        pad = " " * len(gutter)
        shown, caret = _window(_display(source_line), _caret_line(source_line, span))
        lines.append(f"{gutter:>5} | {shown}".rstrip())
        lines.append(f"{pad:>5} | {paint(caret, label_color)}".rstrip())
    for note in diagnostic.notes:
        lines.append(f"{paint('note', '1;36')}: {visible(note.message)}")
    return "\n".join(lines)
