"""The pipeline without torch: file → IR → resolved IR → shapes, for one spec file.

`compile_file` runs every stage and returns a `Program`: the shaped models and every diagnostic
found, errors and warnings, sorted by position. Stages never raise for a problem in the spec; the
public API turns errors into an `ArchError`, the CLI renders them.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import ir
from .codes import DEFINES_NOTHING, IMPORT, TOO_LARGE, UNKNOWN_LAYER, UNKNOWN_MODEL
from .elaborate import elaborate_model
from .errors import ArchError, Diagnostic, Note, Span, did_you_mean, error, sort_key, text_at, warning
from .graph import ShapedModel
from .layers import names as layer_names
from .layers import zoo
from .loader import Loader
from .resolve import BlockEntry, block_scopes, check_definitions
from .sizes import fmt, fmt_io
from .trivia import allowed_codes


def _torchvision() -> zoo.Torchvision:
    from . import pretrained  # on the first `pretrained(...)` checked: no start-up cost otherwise

    return pretrained


# The `pretrained` layer asks torchvision, and the zoo's specs (which take this pipeline), through
# the interface the layers define; installed here, before any shape is inferred.
zoo.install(_torchvision)


@dataclass
class Program:
    """What one spec file defines, checked: its models with their shapes, and the diagnostics."""

    path: str
    models: list[ShapedModel] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    model_names: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    #: The definitions behind `models`, arguments still expressions (for `emit`'s generic classes):
    #: each model's, and the blocks visible in the file.
    model_defs: dict[str, ir.ModelDef] = field(default_factory=dict)
    blocks: dict[str, BlockEntry] = field(default_factory=dict)

    def __repr__(self) -> str:
        # One line, as a notebook or a debugger shows it: the dataclass's own would print every
        # layer, graph and source. Notebooks draw a program from `archdsl.notebook`.
        if self.errors:
            count = len(self.errors)
            return f"<Program {self.path}: {count} error{'s' if count != 1 else ''}>"
        models = [
            f"{m.name} {fmt_io(m.inputs) if m.inputs else fmt(m.input)} → {fmt_io(m.outputs)}, "
            f"{m.params:,} params"
            for m in self.models
        ]
        return f"<Program {self.path}: {'; '.join(models) or 'no model'}>"

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]

    def model(self, name: str | None = None) -> ShapedModel:
        """The model called `name`, or the file's only model. Raises `ArchError` (E013) when there is
        no such model, none at all, or several and no `name` to choose between them."""
        if name is None:
            if len(self.models) == 1:
                return self.models[0]
            problem = (
                several_models(self.path, self.model_names, "model=") if self.models else no_model(self.path)
            )
            raise ArchError([problem])
        for model in self.models:
            if model.name == name:
                return model
        raise ArchError([unknown_model(self.path, name, self.model_names)])


# --- choosing a model -----------------------------------------------------------------------------
# One rule for every command and function: without a model name, all the models of a file; a
# command or function that makes one thing from one model (render, train, build, summary()) takes
# the file's only model, and asks for a name when there are several. These are the findings.


def unknown_model(path: str, name: str, names: list[str]) -> Diagnostic:
    listed = f" (models: {', '.join(names)})" if names else " (it defines none)"
    return error(
        UNKNOWN_MODEL, f"{path} has no model '{name}'{listed}{did_you_mean(name, names)}", Span.of_file(path)
    )


def no_model(path: str) -> Diagnostic:
    return error(UNKNOWN_MODEL, f"{path} defines no model", Span.of_file(path))


def several_models(path: str, names: list[str], option: str) -> Diagnostic:
    return error(
        UNKNOWN_MODEL,
        f"{path} defines {len(names)} models ({', '.join(names)}); choose one with {option}",
        Span.of_file(path),
    )


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Compiling makes ~10 objects per layer and no reference cycles, so reference counting frees
    them all; meanwhile the cyclic collector would rescan the growing heap ~300 times for a
    10,000-layer spec, a fifth of the compile. It is paused for the compile and restored after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def compile_file(
    path: str,
    loader: Loader | None = None,
    model: str | None = None,
    params: dict[str, Any] | None = None,
) -> Program:
    """Runs every static stage on `path` (and its imports). Raises OSError if `path` is unreadable."""
    with _cyclic_gc_paused():
        return _compile(path, loader or Loader(), model, params)


def _compile(path: str, loader: Loader, model: str | None, params: dict[str, Any] | None) -> Program:
    closure = loader.closure(path)
    root = closure.files[closure.root]
    diagnostics = list(closure.diagnostics)
    scopes, scope_problems = block_scopes(closure.files, closure.graph)
    diagnostics.extend(scope_problems)
    for path, source in closure.files.items():
        diagnostics.extend(check_definitions(source, scopes.get(path, {})))

    definitions = root.models
    if not root.models and not root.blocks and not diagnostics:
        diagnostics.append(
            warning(
                DEFINES_NOTHING,
                "this file defines no model and no block (it is empty, or holds only comments or imports)",
                Span.of_file(closure.root),
            )
        )
    if model is not None:
        definitions = [m for m in root.models if m.name == model]
        if not definitions:
            diagnostics.append(unknown_model(closure.root, model, [m.name for m in root.models]))

    program = Program(
        path=closure.root,
        model_names=[m.name for m in root.models],
        sources=loader.sources,
        model_defs={m.name: m for m in definitions},
        blocks=scopes.get(closure.root, {}),
    )
    for definition in definitions:
        try:
            shaped, problems = elaborate_model(definition, scopes.get(closure.root, {}), params)
        except RecursionError:  # a safety net: resolve's MAX_NESTING should stop it first
            diagnostics.append(error(TOO_LARGE, "this model nests too deeply to check", definition.name_span))
            continue
        diagnostics.extend(problems)
        if shaped is not None:
            program.models.append(shaped)
    text = loader.sources.get(closure.root)
    if not params and text is not None and program.models:
        # Shape comments describe the default parameters: with others they are not judged.
        from .shape_comments import stale_comments

        diagnostics.extend(stale_comments(program.models, loader.trivia(closure.root), closure.root))
    diagnostics = _behind_failed_imports(diagnostics, loader)
    program.diagnostics = _unique(sorted(_allow(diagnostics, loader), key=sort_key))
    return program


def _behind_failed_imports(diagnostics: list[Diagnostic], loader: Loader) -> list[Diagnostic]:
    """A file whose import failed calls blocks that the import may have defined: each such name
    is a note on the failed import, not an error of its own. A name close to a layer's stays an
    error (E002 with its did-you-mean): a typo, whatever the import held."""
    failed: dict[str, list[Diagnostic]] = {}  # a file's failed imports, in order
    for diagnostic in diagnostics:
        if diagnostic.code == IMPORT and not diagnostic.span.whole_file:
            failed.setdefault(diagnostic.span.file, []).append(diagnostic)
    if not failed:
        return diagnostics
    known = layer_names()
    callers: dict[str, dict[str, int]] = {}  # a file's names no one defines, at their first line
    kept = []
    for diagnostic in diagnostics:
        span = diagnostic.span
        text = loader.sources.get(span.file)
        if diagnostic.code == UNKNOWN_LAYER and span.file in failed and text is not None:
            name = text_at(text, span)
            if name and not did_you_mean(name, known):
                callers.setdefault(span.file, {}).setdefault(name, span.line)
                continue
        kept.append(diagnostic)
    result = []
    for diagnostic in kept:
        imports = failed.get(diagnostic.span.file, [])
        names = callers.get(diagnostic.span.file) if imports and imports[0] is diagnostic else None
        if names:
            listed = [f"'{name}' (line {line})" for name, line in names.items()]
            called = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + f" and {listed[-1]}"
            them = "it" if len(listed) == 1 else "them"
            which = "the import" if len(imports) == 1 else "the imports that failed"
            note = Note(
                message=f"this file calls {called}, defined nowhere it can see: {which} may define {them}"
            )
            diagnostic = diagnostic.model_copy(update={"notes": (*diagnostic.notes, note)})
        result.append(diagnostic)
    return result


def _allow(diagnostics: list[Diagnostic], loader: Loader) -> list[Diagnostic]:
    """Marks the warnings that a `# archdsl: allow CODE` comment on their line names as meant."""
    result = []
    for diagnostic in diagnostics:
        span = diagnostic.span
        if diagnostic.is_error or span.whole_file or span.file not in loader.sources:
            result.append(diagnostic)
            continue
        if diagnostic.code in allowed_codes(loader.trivia(span.file).on_line(span.line)):
            note = Note(
                message=f"allowed by `archdsl: allow {diagnostic.code}` in a comment on line {span.line}: "
                "`check --strict` does not fail on it"
            )
            diagnostic = diagnostic.model_copy(update={"allowed": True, "notes": (*diagnostic.notes, note)})
        result.append(diagnostic)
    return result


def _unique(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple[Any, ...]] = set()
    result = []
    for diagnostic in diagnostics:
        key = (diagnostic.span, diagnostic.code, diagnostic.message, diagnostic.notes)
        if key not in seen:
            seen.add(key)
            result.append(diagnostic)
    return result


# --- several files --------------------------------------------------------------------------------


def find_specs(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """The spec files among `paths`: files as given, directories searched for `*.arch`, each once.
    Raises `FileNotFoundError` for a path that does not exist or a directory without specs."""
    files: list[str] = []
    for given in paths:
        path = os.fspath(given)
        if os.path.isdir(path):
            found = sorted(
                os.path.join(root, name)
                for root, _dirs, names in os.walk(path)
                for name in names
                if name.endswith(".arch")
            )
            if not found:
                raise FileNotFoundError(f"{path}: no .arch files in this directory")
            files.extend(found)
        elif os.path.exists(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return list(dict.fromkeys(os.path.normpath(f) for f in files))


def compile_files(
    files: list[str], params: dict[str, Any] | None = None, model: str | None = None
) -> tuple[list[Program], list[Diagnostic], Loader]:
    """Compiles each file (sharing one loader, so a common import is parsed once) and returns the
    programs and every diagnostic once, sorted. With `model`, only the models of that name are
    checked; a file without one is then no finding, unless no file has one. Raises OSError for an
    unreadable file."""
    loader = Loader()
    programs = [compile_file(file, loader=loader, model=model, params=params or None) for file in files]
    if model is not None and any(model in p.model_names for p in programs):
        for program in programs:
            program.diagnostics = [d for d in program.diagnostics if d.code != UNKNOWN_MODEL]
    seen: set[tuple[Any, ...]] = set()
    diagnostics: list[Diagnostic] = []
    for program in programs:
        for diagnostic in program.diagnostics:
            key = (diagnostic.span, diagnostic.code, diagnostic.message)
            if key not in seen:
                seen.add(key)
                diagnostics.append(diagnostic)
    diagnostics.sort(key=sort_key)
    return programs, diagnostics, loader
