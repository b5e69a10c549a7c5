"""`archdsl lsp`: the language server, over stdio (pygls), a thin protocol shell over `queries.py`.

Consumes LSP messages; answers them with what the checker's own stages say (`editor.analyse` runs
`program.compile_file` on the buffer, imports read from the other open buffers or from disk):
diagnostics on every change, after a short debounce, hover, inlay hints, go to definition,
completion, document symbols and formatting (`fmt.format_text`). Positions are converted only
here: archdsl's 1-based lines and character columns to LSP's 0-based lines and the client's
code units (UTF-16 unless it asks for another encoding).

Every check and format runs on one worker thread, in order: the event loop stays free to read
messages, and a check that a newer keystroke made stale is dropped. A handler that fails logs
the error and answers nothing; the server never stops for a broken document.
"""

from __future__ import annotations

import asyncio
import logging
import os
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from ..errors import Diagnostic, Severity, Span
from ..version import __version__
from . import queries as editor

#: How long a burst of keystrokes must pause before the document is checked again.
DEBOUNCE_S = 0.015

T = TypeVar("T")
log = logging.getLogger("archdsl.ide.server")


class Positions:
    """Converts between archdsl's 1-based character columns and the client's 0-based code units."""

    def __init__(self, text: str, encoding: str | None):
        self.lines = text.split("\n")
        self.width: Callable[[str], int]
        if encoding == types.PositionEncodingKind.Utf32:
            self.width = len
        elif encoding == types.PositionEncodingKind.Utf8:
            self.width = lambda s: len(s.encode("utf-8"))
        else:
            self.width = lambda s: len(s.encode("utf-16-le")) // 2

    def to_client(self, line: int, column: int) -> types.Position:
        """archdsl's (line, column), both 1-based, as an LSP position."""
        if line < 1:
            return types.Position(line=0, character=0)
        if line > len(self.lines):
            return types.Position(line=len(self.lines), character=0)
        text = self.lines[line - 1]
        return types.Position(line=line - 1, character=self.width(text[: max(column - 1, 0)]))

    def from_client(self, position: types.Position) -> tuple[int, int]:
        """An LSP position as archdsl's (line, column), both 1-based."""
        line = min(position.line, len(self.lines) - 1)
        text = self.lines[line]
        units = 0
        for index, char in enumerate(text):
            if units >= position.character:
                return line + 1, index + 1
            units += self.width(char)
        return line + 1, len(text) + 1

    def range(self, span: Span) -> types.Range:
        return types.Range(
            start=self.to_client(span.line, span.column), end=self.to_client(span.end_line, span.end_column)
        )


def path_of(uri: str) -> str:
    """The file a document stands for; an unsaved one is named after its URI in the current directory."""
    path = to_fs_path(uri)
    if path is None or not uri.startswith("file:"):
        return os.path.abspath(uri.rsplit("/", 1)[-1] or "untitled.arch")
    return os.path.normpath(path)


class ArchServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("archdsl", __version__)
        # One thread: the parser is not reentrant, and checks must finish in the order they start.
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archdsl-check")
        self.analyses: dict[str, editor.Analysis] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        #: For each document, the files its last diagnostics went to (to clear them later).
        self.published: dict[str, set[str]] = {}
        #: For each file, the diagnostics each open document's check found in it.
        self.contributions: dict[str, dict[str, list[types.Diagnostic]]] = {}

    # --- documents ----------------------------------------------------------------------------

    def encoding(self) -> str | None:
        return self.workspace.position_encoding

    def text(self, uri: str) -> tuple[str, int | None]:
        document = self.workspace.get_text_document(uri)
        return document.source, document.version

    def buffers(self, except_uri: str) -> dict[str, str]:
        return {
            path_of(uri): document.source
            for uri, document in self.workspace.text_documents.items()
            if uri != except_uri
        }

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.worker, function, *args)

    async def located(self, params: Any) -> tuple[editor.Analysis, Positions, int, int]:
        """For a request at a position: the document's check, its positions, and the position as
        archdsl's 1-based line and column."""
        analysis = await self.analysis(params.text_document.uri)
        positions = Positions(analysis.text, self.encoding())
        return (analysis, positions, *positions.from_client(params.position))

    async def analysis(self, uri: str) -> editor.Analysis:
        """The check of the document's current text (made now if the last one is stale)."""
        text, _ = self.text(uri)
        cached = self.analyses.get(uri)
        if cached is not None and cached.text == text:
            return cached
        analysis = await self.run(editor.analyse, text, path_of(uri), self.buffers(uri))
        self.analyses[uri] = analysis
        return analysis

    def schedule(self, uri: str, delay: float = DEBOUNCE_S) -> None:
        loop = asyncio.get_running_loop()
        pending = self.timers.pop(uri, None)
        if pending is not None:
            pending.cancel()
        self.timers[uri] = loop.call_later(delay, lambda: loop.create_task(self.check(uri)))

    async def check(self, uri: str) -> None:
        self.timers.pop(uri, None)
        if uri not in self.workspace.text_documents:
            return
        text, version = self.text(uri)
        try:
            analysis = await self.run(editor.analyse, text, path_of(uri), self.buffers(uri))
        except Exception:  # a bug in archdsl: say so, keep serving
            log.error("archdsl could not check %s:\n%s", uri, traceback.format_exc())
            return
        if uri not in self.workspace.text_documents or self.text(uri)[1] != version:
            return  # a newer change is on its way
        self.analyses[uri] = analysis
        self.publish(uri, analysis, version)
        # Open documents that import this one see its new text.
        for other, other_analysis in list(self.analyses.items()):
            if other != uri and analysis.path in other_analysis.program.sources:
                self.schedule(other)

    def publish(self, uri: str, analysis: editor.Analysis, version: int | None) -> None:
        """Sends the check's diagnostics: those in the document to it, those in an imported file
        (a block's error at a call from here) to that file, merged with what its own check and
        the other documents found there."""
        targets: set[str] = set()
        for file, diagnostics in editor.diagnostics_by_file(analysis).items():
            target = uri if file == analysis.path else from_fs_path(file) or file
            text = analysis.text if file == analysis.path else analysis.program.sources.get(file, "")
            positions = Positions(text, self.encoding())
            converted = [lsp_diagnostic(d, positions, target) for d in diagnostics]
            self.contributions.setdefault(target, {})[uri] = converted
            targets.add(target)
        stale = self.published.get(uri, set()) - targets
        for target in stale:
            self.contributions.get(target, {}).pop(uri, None)
        self.published[uri] = targets
        for target in sorted(targets | stale):
            self.send(target, version if target == uri else None)

    def withdraw(self, uri: str) -> None:
        """Takes back what a closed document's checks said."""
        for target in self.published.pop(uri, set()):
            self.contributions.get(target, {}).pop(uri, None)
            self.send(target, None)

    def send(self, target: str, version: int | None) -> None:
        merged: dict[tuple[Any, ...], types.Diagnostic] = {}
        for diagnostics in self.contributions.get(target, {}).values():
            for d in diagnostics:
                start, end = d.range.start, d.range.end
                merged.setdefault(
                    (start.line, start.character, end.line, end.character, d.code, d.message), d
                )
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=target, version=version, diagnostics=list(merged.values()))
        )


def lsp_diagnostic(diagnostic: Diagnostic, positions: Positions, uri: str) -> types.Diagnostic:
    span = diagnostic.span
    where = types.Range(start=types.Position(0, 0), end=types.Position(0, 0))
    if not span.whole_file:
        where = positions.range(span)
    related = [
        types.DiagnosticRelatedInformation(
            location=types.Location(
                uri=uri
                if note.span is None or note.span.file == span.file
                else from_fs_path(note.span.file) or "",
                range=positions.range(note.span)
                if note.span is not None and note.span.file == span.file
                else where,
            ),
            message=note.message,
        )
        for note in diagnostic.notes
    ]
    return types.Diagnostic(
        range=where,
        message=diagnostic.message,
        severity=types.DiagnosticSeverity.Error
        if diagnostic.severity is Severity.ERROR
        else types.DiagnosticSeverity.Warning,
        code=diagnostic.code,
        source="archdsl",
        related_information=related or None,
    )


def _guarded(handler: Callable[..., Any]) -> Callable[..., Any]:
    """A request handler that logs its failure and answers nothing instead of failing the request."""

    async def run(ls: ArchServer, params: Any) -> Any:
        try:
            return await handler(ls, params)
        except Exception:
            log.error("archdsl: %s failed:\n%s", handler.__name__, traceback.format_exc())
            return None

    run.__name__ = handler.__name__
    return run


_COMPLETION_KINDS = {
    "layer": types.CompletionItemKind.Function,
    "block": types.CompletionItemKind.Class,
    "keyword": types.CompletionItemKind.Keyword,
    "argument": types.CompletionItemKind.Property,
    "setting": types.CompletionItemKind.Field,
    "value": types.CompletionItemKind.Value,
}
_SYMBOL_KINDS = {
    "model": types.SymbolKind.Class,
    "block": types.SymbolKind.Function,
    "statement": types.SymbolKind.Field,
    "import": types.SymbolKind.Module,
}


def create_server() -> ArchServer:
    server = ArchServer()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: ArchServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, delay=0)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: ArchServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: ArchServer, params: types.DidSaveTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, delay=0)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: ArchServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.analyses.pop(uri, None)
        pending = ls.timers.pop(uri, None)
        if pending is not None:
            pending.cancel()
        ls.withdraw(uri)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    @_guarded
    async def hover(ls: ArchServer, params: types.HoverParams) -> types.Hover | None:
        analysis, positions, line, column = await ls.located(params)
        found = editor.hover(analysis, line, column)
        if found is None:
            return None
        return types.Hover(
            contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=found.markdown),
            range=positions.range(found.span) if found.span.file == analysis.path else None,
        )

    @server.feature(types.TEXT_DOCUMENT_INLAY_HINT, types.InlayHintOptions(resolve_provider=False))
    @_guarded
    async def inlay_hint(ls: ArchServer, params: types.InlayHintParams) -> list[types.InlayHint]:
        analysis = await ls.analysis(params.text_document.uri)
        positions = Positions(analysis.text, ls.encoding())
        first, last = params.range.start.line + 1, params.range.end.line + 1
        return [
            types.InlayHint(
                position=positions.to_client(hint.line, hint.column),
                label=hint.label,
                kind=types.InlayHintKind.Type,
                padding_left=True,
            )
            for hint in editor.inlay_hints(analysis, first, last)
        ]

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    @_guarded
    async def definition(ls: ArchServer, params: types.DefinitionParams) -> types.Location | None:
        analysis, positions, line, column = await ls.located(params)
        span = editor.definition(analysis, line, column)
        if span is None:
            return None
        if span.file == analysis.path:
            return types.Location(uri=params.text_document.uri, range=positions.range(span))
        text = analysis.program.sources.get(span.file, "")
        return types.Location(
            uri=from_fs_path(span.file) or span.file, range=Positions(text, ls.encoding()).range(span)
        )

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=["(", ",", "{", "="])
    )
    @_guarded
    async def completion(ls: ArchServer, params: types.CompletionParams) -> types.CompletionList:
        uri = params.text_document.uri
        text, _ = ls.text(uri)
        # The last check gives the blocks in scope; the text being typed gives the context.
        analysis = ls.analyses.get(uri) or await ls.analysis(uri)
        line, column = Positions(text, ls.encoding()).from_client(params.position)
        items = [
            types.CompletionItem(
                label=item.label,
                kind=_COMPLETION_KINDS[item.kind],
                detail=item.detail or None,
                documentation=types.MarkupContent(kind=types.MarkupKind.Markdown, value=item.documentation)
                if item.documentation
                else None,
                insert_text=item.insert,
            )
            for item in editor.completions(analysis, line, column, text)
        ]
        return types.CompletionList(is_incomplete=False, items=items)

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    @_guarded
    async def document_symbol(
        ls: ArchServer, params: types.DocumentSymbolParams
    ) -> list[types.DocumentSymbol]:
        analysis = await ls.analysis(params.text_document.uri)
        positions = Positions(analysis.text, ls.encoding())

        def convert(symbol: editor.Symbol) -> types.DocumentSymbol:
            return types.DocumentSymbol(
                name=symbol.name,
                kind=_SYMBOL_KINDS[symbol.kind],
                range=positions.range(symbol.span),
                selection_range=positions.range(symbol.name_span),
                detail=symbol.detail or None,
                children=[convert(child) for child in symbol.children] or None,
            )

        return [convert(symbol) for symbol in editor.symbols(analysis)]

    @server.feature(types.TEXT_DOCUMENT_FORMATTING)
    @_guarded
    async def formatting(
        ls: ArchServer, params: types.DocumentFormattingParams
    ) -> list[types.TextEdit] | None:
        from ..fmt import FormatError, format_text

        uri = params.text_document.uri
        text, _ = ls.text(uri)
        try:
            formatted = await ls.run(format_text, text, path_of(uri))
        except FormatError:
            return None  # a syntax error: the diagnostics say where
        if formatted == text:
            return []
        lines = text.split("\n")
        end = Positions(text, ls.encoding()).to_client(len(lines), len(lines[-1]) + 1)
        return [types.TextEdit(range=types.Range(start=types.Position(0, 0), end=end), new_text=formatted)]

    return server


def serve() -> None:
    """Runs the server on standard input and output until the client says exit."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    create_server().start_io()
