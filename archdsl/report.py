"""Machine-readable forms of a check: the JSON document, GitHub Actions annotations and SARIF.

Consumes diagnostics and shaped models; produces plain data or text. No printing here. A finding
about a whole file (line 0 in its span) has no line or column in any of them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from .codes import CODES
from .errors import Diagnostic
from .shapes import Shaped, ShapedModel
from .version import __version__

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"


def _compact_encoder() -> Callable[[Any], str]:
    """`json.dumps(value, ensure_ascii=False)`, made once: `dumps`, and even a kept
    `JSONEncoder.encode`, set up a new C encoder per call, and a 10,000-layer check makes 10,000
    calls (a third of the document's time). Where CPython's C encoder is missing, the Python one."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return json.JSONEncoder(ensure_ascii=False).encode
    encoder = make(None, None, json.encoder.encode_basestring, None, ": ", ", ", False, False, True)

    def encode(value: Any) -> str:
        if isinstance(value, str):  # the C encoder takes containers and scalars, but a str alone
            return json.encoder.encode_basestring(value)
        return "".join(encoder(value, 0))

    return encode


_encode = _compact_encoder()


def diagnostic_json(diagnostic: Diagnostic) -> dict[str, Any]:
    return {
        "file": diagnostic.file,
        "line": diagnostic.line,
        "column": diagnostic.column,
        "end_line": diagnostic.end_line,
        "end_column": diagnostic.end_column,
        "severity": diagnostic.severity.value,
        "code": diagnostic.code,
        "message": diagnostic.message,
        "notes": [note.message for note in diagnostic.notes],
        "allowed": diagnostic.allowed,
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
        # every input and output, by name (a model's dict of outputs: by key) where it has one
        "inputs": [{"name": name, "shape": list(shape)} for name, shape in model.inputs],
        "outputs": [{"key": key, "shape": list(shape)} for key, shape in model.outputs],
        "params": model.params,
        "macs": model.macs,
        "layers": [layer_json(layer) for layer in model.layers],
    }


def check_json(diagnostics: list[Diagnostic], models: list[ShapedModel]) -> dict[str, Any]:
    return {
        "diagnostics": [diagnostic_json(d) for d in diagnostics],
        "models": [model_json(m) for m in models],
    }


def json_text(value: Any, expand: int = 4, indent: str = "  ", level: int = 0) -> str:
    """JSON laid out one item a line down to `expand` levels of nesting (a check's document: its
    diagnostics, its models, each model's top-level layers), and compact below and for a list of
    numbers or strings, written by the C encoder: `json.dumps(indent=2)` takes the pure-Python
    path, which costs more than the check."""
    flat = isinstance(value, list) and not any(isinstance(item, dict | list) for item in value)
    if level >= expand or not isinstance(value, dict | list) or not value or flat:
        return _encode(value)
    inner = indent * (level + 1)
    if isinstance(value, dict):
        items = [
            f"{inner}{_encode(key)}: {json_text(item, expand, indent, level + 1)}"
            for key, item in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + indent * level + "}"
    items = [inner + json_text(item, expand, indent, level + 1) for item in value]
    return "[\n" + ",\n".join(items) + "\n" + indent * level + "]"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(diagnostic: Diagnostic) -> str:
    """A workflow command that GitHub Actions shows as an annotation on the line."""
    level = "error" if diagnostic.is_error else "warning"
    properties = ",".join(
        f"{key}={_escape_property(str(value))}"
        for key, value in (
            ("file", diagnostic.file),
            ("line", diagnostic.line),
            ("col", diagnostic.column),
            ("endLine", diagnostic.end_line),
            ("endColumn", diagnostic.end_column),
            ("title", f"archdsl {diagnostic.code}"),
        )
        if value is not None
    )
    return f"::{level} {properties}::{_escape_data(_with_notes(diagnostic))}"


def _with_notes(diagnostic: Diagnostic) -> str:
    message = diagnostic.message
    if diagnostic.notes:
        message += "\n" + "\n".join(f"note: {note.message}" for note in diagnostic.notes)
    return message


# --- SARIF 2.1.0, for code-scanning upload ---------------------------------------------------------


def _uri(path: str) -> str:
    """A file's artifact URI: a relative path as a relative URI reference (what code scanning
    resolves against the repository root), an absolute one as a file: URI."""
    posix = path.replace(os.sep, "/")
    if os.path.isabs(path):
        return "file://" + quote(posix if posix.startswith("/") else "/" + posix)
    return quote(posix)


def _sarif_result(diagnostic: Diagnostic, rule_index: dict[str, int]) -> dict[str, Any]:
    location: dict[str, Any] = {"artifactLocation": {"uri": _uri(diagnostic.file)}}
    if diagnostic.line is not None:
        # 1-based, end column exclusive: SARIF counts as archdsl's spans do.
        location["region"] = {
            "startLine": diagnostic.line,
            "startColumn": diagnostic.column,
            "endLine": diagnostic.end_line,
            "endColumn": diagnostic.end_column,
        }
    result: dict[str, Any] = {
        "ruleId": diagnostic.code,
        "level": "error" if diagnostic.is_error else "warning",
        "message": {"text": _with_notes(diagnostic)},
        "locations": [{"physicalLocation": location}],
    }
    if diagnostic.code in rule_index:
        result["ruleIndex"] = rule_index[diagnostic.code]
    if diagnostic.allowed:
        justification = f"# archdsl: allow {diagnostic.code}"
        result["suppressions"] = [{"kind": "inSource", "justification": justification}]
    return result


def sarif(diagnostics: list[Diagnostic]) -> dict[str, Any]:
    """One SARIF 2.1.0 log with one run (this invocation): archdsl as the tool, every diagnostic
    code as a rule, every diagnostic as a result. Columns count characters (code points)."""
    rules = [
        {
            "id": code,
            "shortDescription": {"text": meaning},
            "defaultConfiguration": {"level": "error" if code.startswith("E") else "warning"},
        }
        for code, meaning in CODES.items()
    ]
    rule_index = {code: index for index, code in enumerate(CODES)}
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "archdsl",
                        "version": __version__,
                        "rules": rules,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": [_sarif_result(d, rule_index) for d in diagnostics],
            }
        ],
    }
