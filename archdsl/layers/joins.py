"""Functions that join values or take one apart: `add`, `mul`, `cat` and `split`. None is a module:
each is written as a call in `forward` (`x + skip`, `torch.cat([x, p4], dim=1)`), registers no
member and takes no number among its module's members, as in hand-written PyTorch.

Each reads the value it receives first, then the values its arguments name: `cat(p4)` joins what
it receives with `p4`, in that order (`skip -> cat(x)` puts `skip` first). `residual`, `gate` and
`concat` lower to `add`, `mul` and `cat` (and `split`) too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..codes import CONCAT_MISMATCH, GATE_MISMATCH, RANK, RESIDUAL_MISMATCH
from ..converters import (
    BadValue,
    TensorRef,
    any_int,
    boolean,
    channel_split,
    choice,
    describe,
    positive_pair,
    tensors,
)
from ..errors import Note
from ..sizes import Outcome, Shape, fail, fmt, sample_axis
from .base import JOIN, KEEP, WHOLE, Arg, FieldRule, Function, Input, Inputs, Joins, Layer, Signature

if TYPE_CHECKING:
    from ..graph import Value
    from ..shapes import Shaped

#: Arguments of the `residual(...)` and `concat(...)` composites, bound like a layer's: data of the
#: language's signatures, held here with the joins they lower to, so that `constructs.py` (which
#: lowers them), the editor and the docs read one definition from below.
RESIDUAL = Signature(
    "residual",
    (
        Arg(
            "shortcut",
            choice("identity", "project"),
            "`identity`, or `project`: a 1×1 conv (linear for [F])",
            "identity",
        ),
        Arg(
            "stride",
            positive_pair,
            "the projection's stride; inferred from the shapes",
            default_text="inferred",
        ),
        Arg("bias", boolean, "the projection's bias", True),
        Arg("batchnorm", boolean, "batch-normalise the projection (as ResNet's downsample)", False),
    ),
)
CONCAT = Signature(
    "concat",
    (
        Arg(
            "split",
            channel_split,
            "`true`: the branches take equal shares of the input's channels, in order (as "
            "`torch.chunk`); a list: each branch's channel count",
            False,
        ),
    ),
)


def _who(value: Value, index: int) -> str:
    """How a join's diagnostic calls one of its inputs: its name, else what it receives."""
    if value.name is not None:
        return value.name
    return "what it receives" if index == 0 else f"its input {index + 1}"


def value_text(value: Value, index: int = 0) -> str:
    """A value as a diagnostic names it: `skip is [64, 56, 56] (conv, line 5)`."""
    assert value.shape is not None
    where = f"{value.origin}, line {value.span.line}" if value.span is not None else value.origin
    return f"{_who(value, index)} is {fmt(value.shape)} ({where})"


def _notes(values: tuple[Value, ...]) -> tuple[Note, ...]:
    """Where each joined value is made, for an editor to go to."""
    return tuple(
        Note(message=f"{_who(v, i)} is made here", span=v.span)
        for i, v in enumerate(values)
        if v.span is not None
    )


_OTHERS_DOC = "the values joined to what it receives, by name"


class _Join(Layer):
    kind = "merge"
    member = False
    names_its_inputs = True
    reads_values = True
    variadic = "others"
    args = (Arg("others", tensors, _OTHERS_DOC, required=True),)
    #: How `emit` writes it, and the builder runs it.
    operator = ""

    def function(self, node: Shaped) -> Function:
        return Function(self.operator, (Inputs(),))

    def field(self, node: Shaped) -> FieldRule:
        return JOIN

    def describe(self, node: Shaped) -> str:
        names = [ref.name for ref in node.args.get("others", ())]
        return f"{self.name} {', '.join(names)}" if names else self.name


class Add(_Join):
    name = "add"
    torch = "x + y + …"
    doc = "the sum of what it receives and the values it names (all of one shape)"
    operator = "+"
    no_axis = True

    def shape(self, node: Any, shape: Shape) -> Outcome:
        values = node.inputs
        for index, other in enumerate(values[1:], 1):
            if other.shape != shape:
                raise fail(
                    RESIDUAL_MISMATCH,
                    f"{node.op} joins values of different shapes: {value_text(values[0])}, "
                    f"{value_text(other, index)}{_hint(shape, other.shape)}",
                    node.span,
                    *_notes(values),
                )
        return Outcome(shape)


def _factors(value: Any) -> tuple[Any, ...]:
    """`mul`'s arguments: named values, and numbers (`mul(0.125)`, attention's 1/√d)."""
    items = value if isinstance(value, list | tuple) else [value]
    if items and all(
        isinstance(v, TensorRef) or (isinstance(v, int | float) and not isinstance(v, bool)) for v in items
    ):
        return tuple(items)
    raise BadValue(f"named values (tensors made earlier, `… as name`) or numbers, got {describe(value)}")


class Mul(_Join):
    name = "mul"
    torch = "x * y * …, x * 0.125"
    doc = "the product of what it receives and the values (of its shape, or 1 on an axis) or numbers it names"
    operator = "*"
    no_axis = True
    args = (Arg("others", _factors, "the values, or numbers, it multiplies by", required=True),)

    def function(self, node: Shaped) -> Function:
        # a gate's mul (constructs.py) names no others: it multiplies its inputs
        numbers = tuple(v for v in node.args.get("others") or () if not isinstance(v, TensorRef))
        return Function("*", (Inputs(), *numbers))

    def describe(self, node: Shaped) -> str:
        others = [v.name if isinstance(v, TensorRef) else f"{v:g}" for v in node.args.get("others") or ()]
        return f"mul {', '.join(others)}" if others else "mul"

    def shape(self, node: Any, shape: Shape) -> Outcome:
        values = node.inputs
        for index, other in enumerate(values[1:], 1):
            given = other.shape
            if len(given) != len(shape) or any(g not in (1, s) for g, s in zip(given, shape, strict=True)):
                # The other way round it would scale: the product's shape is what it receives.
                turned = (
                    len(values) == 2
                    and len(given) == len(shape)
                    and all(s in (1, g) for g, s in zip(given, shape, strict=True))
                )
                name = other.name
                hint = (
                    f"; to scale {name} by what it receives, name that (`… as w`) and write "
                    f"`{name} -> mul(w)`"
                    if turned and name is not None
                    else ""
                )
                raise fail(
                    GATE_MISMATCH,
                    f"{node.op} cannot scale one by the other: {value_text(values[0])}, "
                    f"{value_text(other, index)}; each axis of what scales must be the scaled value's "
                    f"size or 1{hint}",
                    node.span,
                    *_notes(values),
                )
        return Outcome(shape)


class Cat(_Join):
    name = "cat"
    torch = "torch.cat([x, y, …], dim=1)"
    doc = "what it receives and the values it names, joined on the channel axis"
    kind = "merge"

    def function(self, node: Shaped) -> Function:
        return Function("torch.cat", (Inputs(),), {"dim": 1})

    def field(self, node: Shaped) -> FieldRule:
        return Joins(0)

    def shape(self, node: Any, shape: Shape) -> Outcome:
        values = node.inputs
        first = values[0]
        for index, other in enumerate(values[1:], 1):
            assert other.shape is not None
            if len(other.shape) != len(shape) or other.shape[1:] != shape[1:]:
                what = "H and W" if len(shape) == 3 else "every axis but the first"
                raise fail(
                    CONCAT_MISMATCH,
                    f"{node.op} joins values that disagree on {what}: {value_text(first)}, "
                    f"{value_text(other, index)}{_cat_hint(shape, other.shape)}",
                    node.span,
                    *_notes(values),
                )
        channels = sum(v.shape[0] for v in values)
        return Outcome((channels, *shape[1:]))


def _hint(shape: Shape, other: Shape) -> str:
    if len(shape) == len(other) == 3 and shape[0] == other[0] and shape[1:] != other[1:]:
        return "; resize one to the other's size (`resize(…)`, `padto(…)`) or change a stride"
    if len(shape) == len(other) and shape[1:] == other[1:]:
        return "; a 1×1 conv (`conv(…, kernel=1)`) would give them the same channels"
    return ""


def _cat_hint(shape: Shape, other: Shape) -> str:
    if len(shape) == len(other) == 3:
        return (
            "; pad or resize one to the other's size first (`padto(…)`, `resize(…)`), or give the "
            "model an input that each downsampling divides exactly"
        )
    return ""


def _sizes(value: Any) -> int | tuple[int, ...]:
    """`split`'s argument: a number of equal shares, or the channel count of each."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if (
        isinstance(value, list | tuple)
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        return tuple(value)
    raise BadValue(f"a number of shares or a list of positive channel counts, got {describe(value)}")


def chunks(channels: int, count: int) -> list[int]:
    """torch.chunk's shares of `channels`: ⌈C/n⌉ each, the last what is left, fewer when that runs out."""
    share = -(-channels // count)
    return [min(share, channels - start) for start in range(0, channels, share)]


class Split(Layer):
    name = "split"
    torch = "torch.split(x, sizes, dim=1), or torch.chunk(x, n, dim=1)"
    doc = "the channels (or another axis) taken apart: several values, named with `as (a, b, …)`"
    kind = "reshape"
    member = False
    args = (
        Arg(
            "sizes",
            _sizes,
            "a number of shares (as `torch.chunk`), or the channel count of each part",
            required=True,
        ),
        Arg("dim", any_int, "the axis taken apart, counting the batch as 0: 1 is the channels", 1),
    )

    def shape(self, node: Any, shape: Shape) -> Outcome:
        if len(shape) < 1:
            raise fail(RANK, f"split needs channels to take apart, got {fmt(shape)}", node.span)
        axis = self.axis(node, shape)
        what = "channels" if axis == 0 else f"positions of axis {axis + 1}"
        sizes = self.parts(node.args["sizes"], shape[axis])
        span = node.arg_spans.get("sizes", node.span)
        if isinstance(node.args["sizes"], int):
            if len(sizes) != node.args["sizes"]:
                raise fail(
                    CONCAT_MISMATCH,
                    f"split cannot share {shape[axis]} {what} in {node.args['sizes']} parts: torch.chunk "
                    f"gives {len(sizes)} ({' + '.join(map(str, sizes))})",
                    span,
                )
        elif sum(sizes) != shape[axis]:
            raise fail(
                CONCAT_MISMATCH,
                f"split {' + '.join(map(str, sizes))} = {sum(sizes)} {what}, but the input has "
                f"{shape[axis]} ({fmt(shape)})",
                span,
            )
        outputs = [(*shape[:axis], size, *shape[axis + 1 :]) for size in sizes]
        return Outcome(outputs[0], more=tuple(outputs[1:]))

    def field(self, node: Shaped) -> FieldRule:
        return KEEP if self.axis(node, node.input) == 0 else WHOLE

    @staticmethod
    def axis(node: Any, shape: Shape) -> int:
        """The sample's axis (from 0) that `dim` names, counting the batch as 0 (a concat's split,
        `constructs.py`, takes the channels)."""
        return sample_axis(node, shape, node.args.get("dim", 1))

    @staticmethod
    def parts(sizes: int | tuple[int, ...], channels: int) -> list[int]:
        return chunks(channels, sizes) if isinstance(sizes, int) else list(sizes)

    def function(self, node: Shaped) -> Function:
        axis = self.axis(node, node.input)
        sizes = [shape[axis] for shape in self.output_shapes(node)]
        return Function("torch.split", (Input(0), sizes), {"dim": node.args.get("dim", 1)}, many=True)

    @staticmethod
    def output_shapes(node: Any) -> list[Shape]:
        return [value.shape for value in node.outputs]

    def describe(self, node: Shaped) -> str:
        axis = self.axis(node, node.input)
        where = "" if axis == 0 else f" of dim {node.args.get('dim', 1)}"
        return "split " + "+".join(str(shape[axis]) for shape in self.output_shapes(node)) + where


LAYERS = (Add, Mul, Cat, Split)
