"""archdsl: a declarative architecture compiler for PyTorch.

    import archdsl
    archdsl.check(["specs/"])                       # every diagnostic of every spec (no torch)
    print(archdsl.summary("specs/lenet5.arch"))     # the layer table; .layers, .params, .macs
    archdsl.render("specs/lenet5.arch", "lenet5.svg")
    program = archdsl.load("specs/lenet5.arch")     # parse, resolve, infer shapes (no torch)
    net = archdsl.build("specs/lenet5.arch")        # a torch.nn.Module (needs archdsl[torch])

Problems in a spec raise `ArchError`, whose `.diagnostics` carry file, line, column and code;
`render` raises `RenderError` when graphviz's `dot` is missing or fails, and `build` raises
`MissingExtra` without torch. All three are here, at the package's top.
Without a model name, `check`, `load` and `emit` take every model of a file; `summary`, `render`
and `build`, which make one thing from one model, take the file's only model and raise
`ArchError` (E013) when it defines several and none is named.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .errors import ArchError, Diagnostic, RenderError, Severity, Span
from .extras import MissingExtra
from .version import __version__ as __version__

if TYPE_CHECKING:
    from torch import nn

    from .diagram import Rendered
    from .pipeline import Program
    from .shapes import Shaped, ShapedModel
    from .table import Summary

__all__ = [
    "ArchError",
    "Diagnostic",
    "MissingExtra",
    "Program",
    "RenderError",
    "Severity",
    "Shaped",
    "ShapedModel",
    "Span",
    "Summary",
    "build",
    "check",
    "emit",
    "load",
    "render",
    "summary",
]


PathLike = str | os.PathLike[str]


def check(
    paths: PathLike | Iterable[PathLike], *, model: str | None = None, strict: bool = False, **params: Any
) -> list[Diagnostic]:
    """Checks spec files, or directories searched for `*.arch` (without importing torch), and
    returns every diagnostic, errors and warnings, sorted by position; an empty list when clean.

    `model` checks only the models of that name; `params` override model parameters; `strict`
    returns warnings as errors (but those an `archdsl: allow CODE` comment allows). Raises
    `FileNotFoundError` for a missing path or a directory without specs, `OSError` for an
    unreadable file.
    """
    from .errors import strict as promoted
    from .pipeline import compile_files, find_specs

    given = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    _, diagnostics, _ = compile_files(find_specs(given), params, model)
    return promoted(diagnostics) if strict else diagnostics


def load(path: PathLike, model: str | None = None, strict: bool = False, **params: Any) -> Program:
    """Parses and checks a spec file (without importing torch).

    `model` restricts the work to one model of the file; `params` override the model's parameters.
    Raises `ArchError` when the spec has errors (or warnings a comment does not allow, with
    `strict=True`) or defines no model, and `OSError` when the file cannot be read.
    """
    from .pipeline import compile_file, no_model

    program = compile_file(os.fspath(path), model=model, params=params or None)
    failing = [d for d in program.diagnostics if d.is_error or (strict and not d.allowed)]
    if failing:
        raise ArchError(failing)
    if not program.models:
        raise ArchError([no_model(program.path)])
    return program


def summary(path: PathLike, model: str | None = None, **params: Any) -> Summary:
    """The layer table of a spec's model (its only one, or the one named `model`), as
    `archdsl summary` prints it: `str()` is the table; `.layers` (one row per statement, nested
    statements after their parent), `.params` and `.macs` are its numbers. No torch import."""
    from .table import Summary

    return Summary.of(load(path, model=model, **params).model(model))


def render(
    path: PathLike,
    out: PathLike,
    format: str | None = None,
    depth: int | None = None,
    *,
    model: str | None = None,
    expand: bool = False,
    rankdir: str = "TB",
    **params: Any,
) -> Rendered:
    """Draws a spec's model (its only one, or `model`) to `out` with graphviz, as `archdsl render`
    does, and returns the format written (a `str`, with `.path`, the file; a notebook shows an svg
    or png as the picture). `format` (svg, png, pdf or dot) defaults to `out`'s suffix; `depth` N
    draws blocks nested deeper than N as one node. Needs graphviz's `dot` program except for dot
    output (`archdsl.RenderError` otherwise); no torch import."""
    from .diagram import Rendered, dot_source, format_of, render_dot

    target = os.fspath(out)
    fmt = format or format_of(target, "format=")
    shaped = load(path, model=model, **params).model(model)
    render_dot(dot_source(shaped, depth=depth, expand=expand, rankdir=rankdir), target, fmt)
    return Rendered(fmt, target)


def build(
    path: PathLike, model: str | None = None, max_params: int | None = None, **params: Any
) -> nn.Module:
    """Builds a spec's model (its only one, or the one named `model`) as a `torch.nn.Module`.
    Needs `archdsl[torch]` (`MissingExtra` says so otherwise).

    A model with more parameters than `max_params` (by default, more than fit in this machine's
    memory as float32) raises `ArchError` (E110), saying its size, before anything is allocated.
    """
    from .extras import require

    require("archdsl.build", "torch", ("torch",))
    from .builder import build_model

    program = load(path, model=model, **params)
    return build_model(program.model(model), max_params=max_params)


def emit(path: PathLike, model: str | None = None, **params: Any) -> str:
    """A spec's models (every one, or the one named `model`) as plain PyTorch source, the text
    `archdsl emit` writes; its `state_dict` keys are those of `build`'s module. No torch import."""
    from .codegen.source import emit_source

    program = load(path, model=model, **params)
    return emit_source(*program.models, program=program)


# `render`'s docstring once named its error `archdsl.render.RenderError`; that spelling stays, for
# compatibility, as an attribute of the function. `archdsl.RenderError` is the name to use.
render.RenderError = RenderError  # type: ignore[attr-defined]


def __getattr__(name: str) -> Any:
    # The pipeline's types load on first use, so `import archdsl` (and the CLI's start) stays cheap.
    if name == "Program":
        from .pipeline import Program

        return Program
    if name in ("Shaped", "ShapedModel"):
        from . import shapes

        return getattr(shapes, name)
    if name == "Summary":
        from .table import Summary

        return Summary
    raise AttributeError(f"module 'archdsl' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The public API, not whichever stages (`archdsl.pipeline`, …) importing has bound so far.
    return sorted([*__all__, "__version__"])


# In a Jupyter kernel (or any IPython shell) IPython is imported before this: teach its display to
# draw programs and models (archdsl/notebook.py says how). Elsewhere nothing is imported for it.
if "IPython" in sys.modules:
    from .notebook import register as _register

    _register()
