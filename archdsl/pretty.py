"""A Wadler-style pretty printer (prettier's algorithm): documents of text, groups and line breaks,
laid out within a width. `fmt.py` builds the document of a spec; this module only prints it.

- `Group(parts)` prints flat — each `LINE` as a space, each `SOFT` as nothing — when it fits in
  what is left of the line, and otherwise breaks: each of its own lines becomes a newline at the
  current indentation (a group inside it decides for itself).
- `Fill([content, separator, content, …])` packs contents onto a line while they fit, breaking a
  separator only before a content that does not.
- `HARD` always breaks, `BLANK` breaks and leaves one empty line; both break every enclosing group.
- `Suffix(text)` (a trailing comment) is held back to the end of its line, and breaks its groups.
- `Comment(text)` (an own-line comment) stands on a line of its own.

Widths count code only: trailing comments are aligned afterwards, into one column for each run of
consecutive non-empty lines (`align_comments`), as gofmt aligns them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INDENT = "    "


@dataclass
class Line:
    kind: str  # "line" (a space when flat), "soft" (nothing when flat), "hard", "blank"


LINE = Line("line")
SOFT = Line("soft")
HARD = Line("hard")
BLANK = Line("blank")


@dataclass
class Group:
    parts: Doc
    broken: bool = False


@dataclass
class Indent:
    parts: Doc


@dataclass
class Fill:
    parts: list[Doc]


@dataclass
class IfBreak:
    """`text` only when the enclosing group breaks (a trailing comma)."""

    text: str


@dataclass
class Suffix:
    text: str


@dataclass
class Comment:
    text: str


Doc = str | Line | Group | Indent | Fill | IfBreak | Suffix | Comment | list["Doc"]

FLAT, BREAK = 0, 1


def propagate_breaks(doc: Doc) -> bool:
    """Marks every group that holds a hard break, a blank line or a comment as broken; returns
    whether `doc` holds one."""
    if isinstance(doc, str | IfBreak):
        return False
    if isinstance(doc, Line):
        return doc.kind in ("hard", "blank")
    if isinstance(doc, Suffix | Comment):
        return True
    if isinstance(doc, Group):
        inner = propagate_breaks(doc.parts)
        doc.broken = doc.broken or inner
        return doc.broken
    if isinstance(doc, Indent):
        return propagate_breaks(doc.parts)
    parts = doc.parts if isinstance(doc, Fill) else doc
    found = False
    for part in parts:
        found = propagate_breaks(part) or found
    return found


@dataclass
class Printed:
    """The lines of a printed document: each line's code, and its trailing comment ('' if none)."""

    lines: list[tuple[str, str]] = field(default_factory=list)


class _Out:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.code = ""
        self.suffixes: list[str] = []
        self.indent = 0  # of the line being written, set by the last line break

    @property
    def column(self) -> int:
        return len(self.code) if self.code else len(INDENT) * self.indent

    def text(self, text: str) -> None:
        if not self.code:
            text = text.lstrip(" ")  # a line starts at its indentation
            if not text:
                return
            self.code = INDENT * self.indent
        self.code += text

    def newline(self, indent: int) -> None:
        """Ends the line being written, if anything stands on it; the next starts at `indent`."""
        if self.code or self.suffixes:
            self.lines.append((self.code.rstrip(), "  ".join(self.suffixes)))
            self.code = ""
            self.suffixes = []
        self.indent = indent

    def blank(self, indent: int) -> None:
        self.newline(indent)
        if self.lines and self.lines[-1] != ("", ""):
            self.lines.append(("", ""))


Command = tuple[int, int, Doc]


def _fits(next_: Command, rest: list[Command], width: int, must_be_flat: bool = False) -> bool:
    rest_index = len(rest)
    commands = [next_]
    while width >= 0:
        if not commands:
            if rest_index == 0:
                return True
            rest_index -= 1
            commands.append(rest[rest_index])
            continue
        indent, mode, doc = commands.pop()
        if isinstance(doc, str):
            width -= len(doc)
        elif isinstance(doc, list):
            commands.extend((indent, mode, part) for part in reversed(doc))
        elif isinstance(doc, Indent):
            commands.append((indent + 1, mode, doc.parts))
        elif isinstance(doc, Group):
            if must_be_flat and doc.broken:
                return False
            commands.append((indent, BREAK if doc.broken else mode, doc.parts))
        elif isinstance(doc, Fill):
            commands.extend((indent, mode, part) for part in reversed(doc.parts))
        elif isinstance(doc, IfBreak):
            if mode == BREAK:
                width -= len(doc.text)
        elif isinstance(doc, Line):
            if doc.kind in ("hard", "blank"):
                return not must_be_flat
            if mode == BREAK:
                return True
            if doc.kind == "line":
                width -= 1
        elif isinstance(doc, Comment):
            return not must_be_flat
        # a Suffix takes no width: comments do not count
    return False


def print_doc(doc: Doc, width: int) -> Printed:
    propagate_breaks(doc)
    out = _Out()
    commands: list[Command] = [(0, BREAK, doc)]
    while commands:
        indent, mode, doc = commands.pop()
        if isinstance(doc, str):
            out.text(doc)
        elif isinstance(doc, list):
            commands.extend((indent, mode, part) for part in reversed(doc))
        elif isinstance(doc, Indent):
            commands.append((indent + 1, mode, doc.parts))
        elif isinstance(doc, Group):
            if mode == FLAT and not doc.broken:
                commands.append((indent, FLAT, doc.parts))
            else:
                flat = not doc.broken and _fits((indent, FLAT, doc.parts), commands, width - out.column)
                commands.append((indent, FLAT if flat else BREAK, doc.parts))
        elif isinstance(doc, IfBreak):
            if mode == BREAK:
                out.text(doc.text)
        elif isinstance(doc, Line):
            if doc.kind == "blank":
                out.blank(indent)
            elif mode == BREAK or doc.kind == "hard":
                out.newline(indent)
            elif doc.kind == "line":
                out.text(" ")
        elif isinstance(doc, Suffix):
            out.suffixes.append(doc.text)
        elif isinstance(doc, Comment):
            out.newline(indent)
            out.text(doc.text)
            out.newline(indent)
        elif isinstance(doc, Fill):
            _fill(doc.parts, indent, mode, commands, width - out.column)
    out.newline(0)
    return Printed(out.lines)


def _fill(parts: list[Doc], indent: int, mode: int, commands: list[Command], remaining: int) -> None:
    """prettier's fill: one step, pushing what is left as a shorter fill."""
    if not parts:
        return
    content = parts[0]
    flat: Command = (indent, FLAT, content)
    broken: Command = (indent, BREAK, content)
    content_fits = _fits(flat, [], remaining, must_be_flat=True)
    if len(parts) == 1:
        commands.append(flat if content_fits else broken)
        return
    separator = parts[1]
    if len(parts) == 2:
        commands.append((indent, FLAT if content_fits else BREAK, separator))
        commands.append(flat if content_fits else broken)
        return
    commands.append((indent, mode, Fill(parts[2:])))
    pair = (indent, FLAT, [content, separator, parts[2]])
    if _fits(pair, [], remaining, must_be_flat=True):
        commands.append((indent, FLAT, separator))
        commands.append(flat)
    else:
        commands.append((indent, BREAK, separator))
        commands.append(flat if content_fits else broken)


def align_comments(lines: list[tuple[str, str]]) -> list[str]:
    """The lines as text, trailing comments aligned: in each run of consecutive non-empty lines,
    every trailing comment starts two columns past the longest code that carries one."""
    result: list[str] = []
    run: list[tuple[str, str]] = []

    def flush() -> None:
        column = max((len(code) for code, comment in run if comment), default=0) + 2
        for code, comment in run:
            result.append(f"{code.ljust(column)}{comment}" if comment else code)
        run.clear()

    for code, comment in lines:
        if not code and not comment:
            flush()
            result.append("")
        else:
            run.append((code, comment))
    flush()
    return result
