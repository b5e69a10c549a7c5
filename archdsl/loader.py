"""Reads spec files and their imports: text → parse → IR for the whole import closure.

An import is resolved relative to the file that writes it. A missing or unreadable import, and an
import cycle, are positioned errors at the `import` statement. Parsed files are cached, so
checking a directory parses a shared `blocks.arch` once.
"""

from __future__ import annotations

import errno
import functools
import os
from dataclasses import dataclass, field

from lark import Token

from . import ir
from .codes import IMPORT, IMPORT_CYCLE, TOO_LARGE
from .errors import Diagnostic, Note, Span, error
from .parser import parse
from .transformer import source_file
from .trivia import Trivia, of_tokens, scan

#: A chain of imports longer than this is taken for a mistake (and would exhaust the recursion).
MAX_IMPORT_DEPTH = 100


def display_path(path: str) -> str:
    return os.path.normpath(path)


@dataclass
class LoadedFile:
    source: ir.SourceFile
    text: str
    diagnostics: list[Diagnostic]
    #: The lexer's comment, string and brace tokens (`ParseResult.trivia_tokens`).
    trivia_tokens: list[Token] | None = None

    @functools.cached_property
    def trivia(self) -> Trivia:
        """The file's comments, strings and braces, as its parse's lexer found them."""
        if self.trivia_tokens is not None:
            return of_tokens(self.text, self.trivia_tokens)
        return scan(self.text)


@dataclass
class Closure:
    """A root file and everything it imports."""

    root: str
    files: dict[str, ir.SourceFile] = field(default_factory=dict)
    graph: dict[str, list[str]] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)


class Loader:
    def __init__(self) -> None:
        self._files: dict[str, LoadedFile] = {}
        self.sources: dict[str, str] = {}

    def read(self, path: str) -> LoadedFile:
        """Parses one file. Raises OSError when it cannot be read at all."""
        path = display_path(path)
        cached = self._files.get(path)
        if cached is not None:
            return cached
        if os.path.exists(path) and not os.path.isfile(path):
            # A directory, or a device or pipe such as /dev/zero or /dev/stdin that reading would
            # never finish.
            raise OSError(errno.EINVAL, "not a regular file", path)
        with open(path, "rb") as handle:
            data = handle.read()
        loaded = self.parse_text(_decode(data, path), path)
        if isinstance(loaded, Diagnostic):
            loaded = LoadedFile(ir.SourceFile.of(path=path, imports=[], blocks=[], models=[]), "", [loaded])
        self._files[path] = loaded
        return loaded

    def parse_text(self, text: str | Diagnostic, path: str) -> LoadedFile | Diagnostic:
        if isinstance(text, Diagnostic):
            return text
        text = text.removeprefix("\ufeff")  # a byte-order mark (Windows editors write one) is no text
        self.sources[path] = text
        result = parse(text, path)
        diagnostics = list(result.diagnostics)
        source = source_file(result.items, path, result.unparsed_blocks)
        return LoadedFile(source, text, diagnostics, result.trivia_tokens)

    def add_text(self, text: str, path: str) -> LoadedFile:
        """Registers in-memory text under a path (the API's `load(text=...)`, tests)."""
        loaded = self.parse_text(text, display_path(path))
        assert isinstance(loaded, LoadedFile)
        self._files[display_path(path)] = loaded
        return loaded

    def trivia(self, path: str) -> Trivia:
        """The comments, strings and braces of a file this loader read (`sources[path]`)."""
        loaded = self._files.get(display_path(path))
        if loaded is not None and loaded.text == self.sources.get(path):
            return loaded.trivia
        return scan(self.sources[path])

    def closure(self, root: str) -> Closure:
        root = display_path(root)
        closure = Closure(root=root)
        self._visit(root, [], closure)
        return closure

    def _visit(self, path: str, stack: list[str], closure: Closure) -> None:
        loaded = self.read(path)
        closure.files[path] = loaded.source
        closure.diagnostics.extend(loaded.diagnostics)
        targets: list[str] = []
        closure.graph[path] = targets
        stack = [*stack, path]
        for statement in loaded.source.imports:
            target = display_path(os.path.join(os.path.dirname(path), statement.path))
            if len(stack) >= MAX_IMPORT_DEPTH and target not in closure.files:
                closure.diagnostics.append(
                    error(
                        TOO_LARGE,
                        f"imports chain more than {MAX_IMPORT_DEPTH} files deep here",
                        statement.span,
                    )
                )
                continue
            if target in stack:
                cycle = " → ".join([*stack[stack.index(target) :], target])
                closure.diagnostics.append(error(IMPORT_CYCLE, f"import cycle: {cycle}", statement.span))
                continue
            if target in closure.files:
                targets.append(target)
                continue
            problem = _unreadable(target)
            if problem is not None:
                closure.diagnostics.append(
                    error(
                        IMPORT,
                        f'cannot import "{statement.path}": {problem}',
                        statement.span,
                        Note(
                            message=f"imports are found relative to the importing file: looked for {target}"
                        ),
                    )
                )
                continue
            targets.append(target)
            self._visit(target, stack, closure)


def _unreadable(path: str) -> str | None:
    if os.path.isdir(path):
        return "it is a directory"
    if not os.path.exists(path):
        return "no such file"
    if not os.path.isfile(path):
        return "not a regular file"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def _decode(data: bytes, path: str) -> str | Diagnostic:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        # In characters, as every other column: the bytes before the first bad one are valid.
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        column = len(data[line_start : exc.start].decode("utf-8")) + 1
        span = Span(file=path, line=line, column=column, end_line=line, end_column=column + 1)
        return error(
            IMPORT, f"this file is not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded", span
        )
