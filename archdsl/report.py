"""Machine-readable forms of a check: the JSON document and GitHub Actions annotations.

Consumes diagnostics and shaped models; produces plain data or text. No printing here.
"""

from __future__ import annotations

from typing import Any

from .errors import Diagnostic
from .shapes import Shaped, ShapedModel


def diagnostic_json(diagnostic: Diagnostic) -> dict[str, Any]:
    span = diagnostic.span
    return {
        "file": span.file,
        "line": span.line,
        "column": span.column,
        "end_line": span.end_line,
        "end_column": span.end_column,
        "severity": diagnostic.severity.value,
        "code": diagnostic.code,
        "message": diagnostic.message,
        "notes": [note.message for note in diagnostic.notes],
    }


def layer_json(node: Shaped) -> dict[str, Any]:
    return {
        "name": node.name,
        "op": node.op,
        "kind": node.kind,
        "path": node.path,
        "spliced": node.spliced,
        "line": node.span.line,
        "column": node.span.column,
        "input": list(node.input),
        "output": list(node.output),
        "params": node.params,
        "macs": node.macs,
        "children": [layer_json(child) for child in node.children],
    }


def model_json(model: ShapedModel) -> dict[str, Any]:
    return {
        "file": model.file,
        "name": model.name,
        "line": model.span.line,
        "input": list(model.input),
        "output": list(model.output) if model.output is not None else None,
        "params": model.params,
        "macs": model.macs,
        "layers": [layer_json(layer) for layer in model.layers],
    }


def check_json(diagnostics: list[Diagnostic], models: list[ShapedModel]) -> dict[str, Any]:
    return {
        "diagnostics": [diagnostic_json(d) for d in diagnostics],
        "models": [model_json(m) for m in models],
    }


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(diagnostic: Diagnostic) -> str:
    """A workflow command that GitHub Actions shows as an annotation on the line."""
    span = diagnostic.span
    level = "error" if diagnostic.is_error else "warning"
    properties = ",".join(
        f"{key}={_escape_property(str(value))}"
        for key, value in (
            ("file", span.file),
            ("line", span.line),
            ("col", span.column),
            ("endLine", span.end_line),
            ("endColumn", span.end_column),
            ("title", f"archdsl {diagnostic.code}"),
        )
    )
    message = diagnostic.message
    if diagnostic.notes:
        message += "\n" + "\n".join(f"note: {note.message}" for note in diagnostic.notes)
    return f"::{level} {properties}::{_escape_data(message)}"
