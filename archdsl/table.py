"""Formatting of shaped models for people: the per-layer table and one-line descriptions.

Consumes `ShapedModel`s (the shapes stage's output): `Summary.of` collects one `Layer` record per
statement, and `table` only formats them (as torchinfo collects `LayerInfo`s first). No torch here.

Sizes in bytes are binary (KiB, MiB, GiB: `shapes.float32_size`), everywhere archdsl prints one;
counts of parameters and MACs use the decimal K, M, G of counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from . import constructs, layers
from .shapes import Shape, Shaped, ShapedModel, float32_size, fmt
from .sizes import fmt_io


def describe(node: Shaped) -> str:
    """A short label with the arguments that matter: `conv 5×5, 16, /2`, `repeat ×3`."""
    if node.kind == "layer":
        return layers.LAYERS[node.op].describe(node)
    return constructs.describe_record(node)


def output_text(output: Shape, given: tuple[Shape, ...]) -> str:
    """A statement's output, or `([a], [b])`, each value's, where it gives several."""
    return fmt_io([(None, shape) for shape in given]) if len(given) > 1 else fmt(output)


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
    inputs = fmt_io(model.inputs) if model.inputs else fmt(model.input)
    outputs = fmt_io(model.outputs) if model.outputs else "?"
    return f"{model.name} {inputs} → {outputs}: {_count(model.params)} params, {human(model.macs)} MACs"


@dataclass(frozen=True, slots=True)
class Layer:
    """One row of a summary: a statement (or pass, branch, shortcut) of the model."""

    depth: int  # 0 for the model's own statements, 1 inside a block call, repeat, concat...
    name: str  # the statement's name, or its number in its body
    path: str  # its module path in the built model ("layer2.0.0.body.3")
    kind: str  # layer | block | repeat | iteration | concat | branch | residual | shortcut
    op: str  # the table's description: "conv 5×5, 6, pad 2"
    input: Shape
    output: Shape
    params: int
    macs: int
    #: Where it gives several values (a split, a block's `output a, b`): the shape of each.
    given: tuple[Shape, ...] = ()

    @property
    def output_text(self) -> str:
        return output_text(self.output, self.given)


@dataclass(frozen=True)
class Summary:
    """A model's layer table as data (`layers`, `params`, `macs`); `str()` is the table itself."""

    model: ShapedModel
    layers: tuple[Layer, ...]

    @classmethod
    def of(cls, model: ShapedModel) -> Summary:
        rows = tuple(
            Layer(
                depth,
                node.name,
                node.path,
                node.kind,
                describe(node),
                node.input,
                node.output,
                node.params,
                node.macs,
                node.given,
            )
            for depth, node in walk(model.layers)
        )
        return cls(model, rows)

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def input(self) -> Shape:
        return self.model.input

    @property
    def output(self) -> Shape | None:
        return self.model.output

    @property
    def params(self) -> int:
        return self.model.params

    @property
    def macs(self) -> int:
        return self.model.macs

    def __str__(self) -> str:
        return _format(self)


def table(model: ShapedModel) -> str:
    return _format(Summary.of(model))


def _format(summary: Summary) -> str:
    model = summary.model
    header = ("name", "op", "output", "params", "MACs")
    rows = [header]
    for layer in summary.layers:
        rows.append(
            (
                "  " * layer.depth + layer.name,
                layer.op,
                layer.output_text,
                _count(layer.params),
                _count(layer.macs),
            )
        )
    total = (
        "total",
        "",
        fmt_io(model.outputs) if model.outputs else "?",
        _count(model.params),
        _count(model.macs),
    )
    widths = [max(len(row[i]) for row in [*rows, total]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        left = [row[i].ljust(widths[i]) for i in range(3)]
        right = [row[i].rjust(widths[i]) for i in range(3, 5)]
        return "  ".join(left + right).rstrip()

    rule = "─" * len(line(header))
    inputs = fmt_io(model.inputs) if model.inputs else fmt(model.input)
    out = [f"{model.name}  ({model.file}, input {inputs})", rule, line(header), rule]
    out.extend(line(row) for row in rows[1:])
    out.append(rule)
    out.append(line(total))
    out.append(
        f"{_count(model.params)} parameters ({float32_size(model.params)} as float32), "
        f"{_count(model.macs)} multiply-accumulates per sample"
    )
    return "\n".join(out)
