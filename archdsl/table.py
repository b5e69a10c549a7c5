"""Formatting of shaped models for people: the per-layer table and one-line descriptions.

Consumes `ShapedModel`s (the shapes stage's output): `Summary.of` collects one `Layer` record per
statement, and `table` only formats them (as torchinfo collects `LayerInfo`s first). No torch here.

Sizes in bytes are binary (KiB, MiB, GiB: `shapes.float32_size`), everywhere archdsl prints one;
counts of parameters and MACs use the decimal K, M, G of counts.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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

    def __repr__(self) -> str:
        # One line: the dataclass's own would print the whole model.
        return f"<Summary {self.name}: {len(self.layers)} rows, {_count(self.params)} params>"

    # IPython's display protocol: a notebook shows the table as HTML, a terminal as text.
    def _repr_html_(self) -> str:
        return html_table(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


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
    out.append(_totals(model))
    return "\n".join(out)


def _totals(model: ShapedModel) -> str:
    return (
        f"{_count(model.params)} parameters ({float32_size(model.params)} as float32), "
        f"{_count(model.macs)} multiply-accumulates per sample"
    )


_LEFT = ' style="text-align:left"'
_RIGHT = ' style="text-align:right"'


def html_table(summary: Summary) -> str:
    """The table as HTML, for a notebook: the rows, total and totals line of `str(summary)`, every
    text escaped. A row's name is indented by its depth, and its title is its module path."""
    model = summary.model
    inputs = fmt_io(model.inputs) if model.inputs else fmt(model.input)

    def cell(text: str, style: str = _LEFT, tag: str = "td", extra: str = "") -> str:
        return f"<{tag}{style}{extra}>{html.escape(text)}</{tag}>"

    def numbers(params: int, macs: int, tag: str = "td") -> str:
        return cell(_count(params), _RIGHT, tag) + cell(_count(macs), _RIGHT, tag)

    head = "".join(cell(name, tag="th") for name in ("name", "op", "output")) + "".join(
        cell(name, _RIGHT, "th") for name in ("params", "MACs")
    )
    out = [
        '<table class="archdsl-summary">',
        f"<caption{_LEFT}><b>{html.escape(model.name)}</b> "
        f"({html.escape(model.file)}, input {html.escape(inputs)})</caption>",
        f"<thead><tr>{head}</tr></thead>",
        "<tbody>",
    ]
    for layer in summary.layers:
        indent = _LEFT
        if layer.depth:  # nested rows indented, as the text table indents them
            indent = f' style="text-align:left;padding-left:{0.5 + 1.5 * layer.depth:g}em"'
        out.append(
            "<tr>"
            + cell(layer.name, indent, extra=f' title="{html.escape(layer.path)}"')
            + cell(layer.op)
            + cell(layer.output_text)
            + numbers(layer.params, layer.macs)
            + "</tr>"
        )
    outputs = fmt_io(model.outputs) if model.outputs else "?"
    out.append("</tbody>")
    out.append(
        f"<tfoot><tr>{cell('total', tag='th')}<td></td>{cell(outputs)}"
        f"{numbers(model.params, model.macs, 'th')}</tr></tfoot>"
    )
    out.append("</table>")
    out.append(f"<p>{html.escape(_totals(model))}</p>")
    return "\n".join(out)
