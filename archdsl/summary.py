"""Formatting of shaped models for people: the per-layer table and one-line descriptions.

Consumes `ShapedModel`s (the shapes stage's output) and only formats them; no torch here.
"""

from __future__ import annotations

from collections.abc import Iterator

from . import layers
from .shapes import Shaped, ShapedModel, fmt


def describe(node: Shaped) -> str:
    """A short label with the arguments that matter: `conv 5×5, 16, /2`."""
    a = node.args
    if node.kind == "layer":
        return layers.LAYERS[node.op].describe(node)
    if node.kind == "repeat":
        return f"repeat ×{a['count']}"
    if node.kind == "iteration":
        return f"pass {int(node.key[1:]) + 1}"
    if node.kind == "residual":
        return f"residual ({a['shortcut']})"
    if node.kind == "shortcut":
        return {"conv": "shortcut 1×1 conv", "linear": "shortcut linear"}.get(node.op, "shortcut")
    if node.kind == "concat" and a.get("split"):
        return "concat, split " + "+".join(str(size) for size in a["split"])
    return node.op


def walk(layers: list[Shaped], depth: int = 0) -> Iterator[tuple[int, Shaped]]:
    for layer in layers:
        yield depth, layer
        yield from walk(layer.children, depth + 1)


def _count(n: int) -> str:
    return f"{n:,}"


def human(n: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return str(n)


def model_line(model: ShapedModel) -> str:
    output = fmt(model.output) if model.output else "?"
    return (
        f"{model.name} {fmt(model.input)} → {output}: {_count(model.params)} params, {human(model.macs)} MACs"
    )


def table(model: ShapedModel) -> str:
    header = ("name", "op", "output", "params", "MACs")
    rows = [header]
    for depth, node in walk(model.layers):
        rows.append(
            (
                "  " * depth + node.name,
                describe(node),
                fmt(node.output),
                _count(node.params),
                _count(node.macs),
            )
        )
    total = (
        "total",
        "",
        fmt(model.output) if model.output else "?",
        _count(model.params),
        _count(model.macs),
    )
    widths = [max(len(row[i]) for row in [*rows, total]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        left = [row[i].ljust(widths[i]) for i in range(3)]
        right = [row[i].rjust(widths[i]) for i in range(3, 5)]
        return "  ".join(left + right).rstrip()

    rule = "─" * len(line(header))
    out = [f"{model.name}  ({model.file}, input {fmt(model.input)})", rule, line(header), rule]
    out.extend(line(row) for row in rows[1:])
    out.append(rule)
    out.append(line(total))
    out.append(
        f"{_count(model.params)} parameters ({human(model.params * 4)}B as float32), "
        f"{_count(model.macs)} multiply-accumulates per sample"
    )
    return "\n".join(out)
