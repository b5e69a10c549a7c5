"""The pipeline without torch: file → IR → resolved IR → shapes, for one spec file.

`compile_file` runs every stage and returns a `Program`: the shaped models and every diagnostic
found, errors and warnings, sorted by position. Stages never raise for a problem in the spec; the
public API turns errors into an `ArchError`, the CLI renders them.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import ir
from .errors import Diagnostic, Span, did_you_mean, error, sort_key
from .loader import Loader
from .resolve import BlockEntry, block_scopes, check_definitions, resolve_model
from .shapes import ShapedModel, infer

UNKNOWN_MODEL = "E013"


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

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]

    def model(self, name: str | None = None) -> ShapedModel:
        """The model called `name`, or the file's only (or first) model."""
        if name is None:
            if not self.models:
                raise LookupError(f"{self.path} defines no model")
            return self.models[0]
        for model in self.models:
            if model.name == name:
                return model
        raise LookupError(f"{self.path} has no model '{name}'")


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
    if model is not None:
        definitions = [m for m in root.models if m.name == model]
        if not definitions:
            names = [m.name for m in root.models]
            listed = f" (models: {', '.join(names)})" if names else " (it defines none)"
            span = Span(file=closure.root, line=1, column=1, end_line=1, end_column=2)
            diagnostics.append(
                error(
                    UNKNOWN_MODEL,
                    f"{closure.root} has no model '{model}'{listed}{did_you_mean(model, names)}",
                    span,
                )
            )

    program = Program(
        path=closure.root,
        model_names=[m.name for m in root.models],
        sources=loader.sources,
        model_defs={m.name: m for m in definitions},
        blocks=scopes.get(closure.root, {}),
    )
    for definition in definitions:
        try:
            resolved, problems = resolve_model(definition, scopes.get(closure.root, {}), params)
            shaped, shape_problems = infer(resolved)
        except RecursionError:  # a safety net: resolve's MAX_NESTING should stop it first
            diagnostics.append(error("E110", "this model nests too deeply to check", definition.name_span))
            continue
        diagnostics.extend(problems)
        diagnostics.extend(shape_problems)
        if shaped is not None:
            program.models.append(shaped)
    program.diagnostics = _unique(sorted(diagnostics, key=sort_key))
    return program


def _unique(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple[Any, ...]] = set()
    result = []
    for diagnostic in diagnostics:
        key = (diagnostic.span, diagnostic.code, diagnostic.message, diagnostic.notes)
        if key not in seen:
            seen.add(key)
            result.append(diagnostic)
    return result
