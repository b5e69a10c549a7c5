"""archdsl: a declarative architecture compiler for PyTorch.

    import archdsl
    program = archdsl.load("specs/lenet5.arch")      # parse, resolve, infer shapes (no torch)
    net = archdsl.build("specs/lenet5.arch")         # a torch.nn.Module

Problems in a spec raise `ArchError`, whose `.diagnostics` carry file, line and column.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ArchError, Diagnostic, Severity, Span

if TYPE_CHECKING:
    from torch import nn

    from .program import Program
    from .shapes import Shaped, ShapedModel

__all__ = [
    "ArchError",
    "Diagnostic",
    "Program",
    "Severity",
    "Shaped",
    "ShapedModel",
    "Span",
    "build",
    "emit",
    "load",
]

__version__ = "0.1.0"


def load(path: str, model: str | None = None, strict: bool = False, **params: Any) -> Program:
    """Parses and checks a spec file (without importing torch).

    `model` restricts the work to one model of the file; `params` override the model's parameters.
    Raises `ArchError` when the spec has errors (or warnings, with `strict=True`), and `OSError`
    when the file cannot be read.
    """
    from .program import compile_file

    program = compile_file(path, model=model, params=params or None)
    failing = [d for d in program.diagnostics if d.is_error or strict]
    if failing:
        raise ArchError(failing)
    return program


def build(path: str, model: str | None = None, max_params: int | None = None, **params: Any) -> nn.Module:
    """Builds a spec's model (its first, or the one named `model`) as a `torch.nn.Module`.

    A model with more parameters than `max_params` (by default, more than fit in this machine's
    memory as float32) raises `ArchError` (E110), saying its size, before anything is allocated.
    """
    from .builder import build_model

    program = load(path, model=model, **params)
    return build_model(program.model(model), max_params=max_params)


def emit(path: str, model: str | None = None, **params: Any) -> str:
    """A spec's model (its first, or the one named `model`) as plain PyTorch source, the text
    `archdsl emit` writes; its `state_dict` keys are those of `build`'s module. No torch import."""
    from .emit import emit_source

    program = load(path, model=model, **params)
    return emit_source(program.model(model), program=program)


def __getattr__(name: str) -> Any:
    # The pipeline's types load on first use, so `import archdsl` (and the CLI's start) stays cheap.
    if name == "Program":
        from .program import Program

        return Program
    if name in ("Shaped", "ShapedModel"):
        from . import shapes

        return getattr(shapes, name)
    raise AttributeError(f"module 'archdsl' has no attribute {name!r}")
