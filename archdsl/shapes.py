"""Stage 4: static shape inference — PyTorch's own size rules, without torch — on the graph's nodes.

`infer` runs one node of the dataflow graph: the rule of its layer kind (`Layer.shape`, one pure
rule per kind in `archdsl/layers/`) on the shapes of the values it reads, giving its output shape,
exact parameter count and multiply-accumulates, or a diagnostic with the numbers that failed and
where the failing value came from. It knows nothing of composite constructs: `elaborate.py` lowers
them into nodes and calls it as each node is made, so every construct is shaped by the rules of
the nodes it becomes.

The outline and graph types are `graph.py`'s (`Shaped`, `ShapedModel` are re-exported here, where
earlier versions defined them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import layers
from .codes import EMPTY_OUTPUT, RANK, TOO_LARGE
from .errors import Diagnostic, Failed, Note, Span, error
from .graph import Node, Shaped, ShapedModel, Value
from .layers.base import IMAGE_AXES, Axes
from .sizes import MAX_ELEMENTS, MAX_PARAMS, Outcome, Shape, fail, float32_size, fmt, spread

__all__ = ["Node", "Shaped", "ShapedModel", "Value", "infer", "projection_stride"]


def projection_stride(size: int, target: int) -> int | None:
    """The smallest stride s with ⌊(size − 1)/s⌋ + 1 = target (a 1×1 conv's rule), if any."""
    if target < 1 or target > size:
        return None
    if target == 1:
        return max(size, 1)
    stride = (size - 1) // target + 1
    return stride if (size - 1) // stride + 1 == target else None


@dataclass(frozen=True)
class Context:
    """What a diagnostic's notes say about where a value came from: the model's input."""

    input_shape: Shape | None
    input_span: Span | None
    model_span: Span


def infer(node: Node, context: Context, spec: layers.Layer | None = None) -> tuple[Outcome, Axes | None]:
    """The node's outcome and its output's axes (`spec`: its layer kind, where the caller has it);
    raises `Failed` (the diagnostic carries a note saying where the failing input came from)."""
    spec = spec or layers.LAYERS[node.op]
    source = node.inputs[0]
    shape = source.shape
    assert shape is not None
    try:
        if not shape and not spec.no_axis:
            raise fail(
                RANK,
                f"{node.op} needs a sample with an axis, and this one has none ([], one number): "
                "`view([1])` gives it one",
                node.span,
            )
        if spec.layout != "any" and source.axes is not None:
            _check_layout(node, spec, source)
        if spec.per_axis:
            # One size per spatial axis of this input (`kernel=3` on [C, T, H, W] is (3, 3, 3)):
            # what the rule, the module, the label and the receptive field read from here on.
            node.args = spread(node, spec.per_axis, shape, spec.channel_axis == -1)
        outcome = spec.shape(node, shape)
    except Failed as failed:
        if spec.names_its_inputs:
            raise
        raise Failed(with_origin(failed.diagnostic, source, context)) from None
    if outcome.params > MAX_PARAMS:
        raise Failed(too_many_params(f"this {node.op}", outcome.params, node.span))
    if math.prod(outcome.output) > MAX_ELEMENTS:
        raise Failed(too_many_elements(f"{node.op} gives", outcome.output, node.span))
    return outcome, spec.axes(node.args, source.axes, outcome.output)


def with_origin(diagnostic: Diagnostic, source: Value, context: Context) -> Diagnostic:
    """An error with a note saying where the value it failed on came from."""
    if not diagnostic.is_error:
        return diagnostic
    note = origin(diagnostic, source, context)
    return diagnostic.model_copy(update={"notes": (*diagnostic.notes, note)})


def origin(diagnostic: Diagnostic, source: Value, context: Context) -> Note:
    assert source.shape is not None
    if diagnostic.code == EMPTY_OUTPUT and context.input_shape is not None and context.input_span is not None:
        return Note(
            message=f"the input to this model is {fmt(context.input_shape)} "
            f"(line {context.input_span.line}); "
            "this network expects larger images",
            span=context.input_span,
        )
    if source.node is None:
        span = source.span or context.input_span
        line = span.line if span else context.model_span.line
        return Note(message=f"{fmt(source.shape)} is the model's input (line {line})", span=span)
    span = source.span
    assert span is not None
    return Note(message=f"{fmt(source.shape)} comes from {source.origin} at line {span.line}", span=span)


def input_axes(shape: Shape) -> Axes | None:
    """An input's axes where they are known: an image's, or flat features."""
    return IMAGE_AXES if len(shape) == 3 else ("F",) if len(shape) == 1 else None


def _check_layout(node: Node, spec: layers.Layer, source: Value) -> None:
    """A layer that needs channels first, or a last axis that is no spatial one, on a sample
    whose axes a permute reordered (or that is an image, for `linear` and `layernorm`)."""
    axes, shape = source.axes, source.shape
    assert shape is not None
    layout = spec.layout
    if layout == "any" or axes is None or len(axes) != 3:
        return
    # H and W may be swapped (a transposed image is still one); the channels must come first.
    if layout == "image" and axes[0] != "C" and set(axes) == set(IMAGE_AXES):
        back = ", ".join(str(axes.index(a)) for a in IMAGE_AXES)
        raise fail(
            RANK,
            f"{node.op} needs the channels first, [C, H, W], but this sample's axes are "
            f"{_named(axes, shape)} (a permute reordered them); `permute({back})` puts them back",
            node.span,
        )
    # the permute that moves the channels last, keeping the other axes' order
    last = ", ".join(str(axes.index(a)) for a in (*(a for a in axes if a != "C"), "C"))
    if layout == "map" and axes[-1] != "C":
        raise fail(
            RANK,
            f"{node.op} needs a channels-last map [H, W, C], but this sample's axes are "
            f"{_named(axes, shape)}; `permute({last})` moves the channels last",
            node.span,
        )
    if layout == "features" and axes[-1] in ("H", "W"):
        if node.op == "layernorm":
            fix = "`layernorm2d` normalises the channels"
        else:
            fix = f"add `flatten` before it (giving [{math.prod(shape)}])"
        raise fail(
            RANK,
            f"{node.op} acts on the last axis, here {axes[-1]} of {_named(axes, shape)}: {fix}, or "
            f"`permute({last})` moves the channels last",
            node.span,
        )


def _named(axes: Axes, shape: Shape) -> str:
    return "[" + ", ".join(f"{a} = {n}" for a, n in zip(axes, shape, strict=True)) + "]"


def too_many_elements(what: str, shape: Shape, span: Span) -> Diagnostic:
    count = math.prod(shape)
    return error(
        TOO_LARGE,
        f"{what} {fmt(shape)}: {count:,} elements per sample ({float32_size(count)} as float32), "
        f"more than archdsl allows ({MAX_ELEMENTS:,})",
        span,
    )


def too_many_params(what: str, count: int, span: Span) -> Diagnostic:
    return error(
        TOO_LARGE,
        f"{what} has {count:,} parameters ({float32_size(count)} as float32), more than archdsl "
        f"allows ({MAX_PARAMS:,})",
        span,
    )
