"""Stage 4: static shape inference on the resolved IR — PyTorch's own size rules, without torch.

Consumes a `ResolvedModel`; produces a `ShapedModel`: every statement with its input and output
shape (per sample, batch implicit), exact parameter count and multiply-accumulates, keyed by the
module path the builder will give it. Each layer kind has one pure rule, its `Layer.shape`
`(layer, input shape) → Outcome`, failing through `fail(...)` with the numbers that failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from . import layers
from .errors import Diagnostic, Failed, Note, Span, error
from .resolve import (
    TOO_LARGE,
    BlockNode,
    BranchNode,
    ConcatNode,
    InvalidNode,
    LayerNode,
    Node,
    RepeatNode,
    ResidualNode,
    ResolvedModel,
)
from .sizes import (  # noqa: F401  (the codes are re-exported: later stages name them from here)
    BATCH_AXIS,
    CHANNELS,
    CONCAT_MISMATCH,
    EMPTY_OUTPUT,
    GROUPS,
    INEXACT,
    MAX_ELEMENTS,
    MAX_PARAMS,
    NO_GRADIENT,
    POOL_PADDING,
    RANK,
    RESIDUAL_MISMATCH,
    SAME_PADDING,
    VIEW_SIZE,
    Outcome,
    Shape,
    fail,
    float32_size,
    fmt,
)
from .trainspec import TrainSpec

# --- results --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Shaped:
    """One statement (or pass, branch, shortcut) with its shapes; `children` mirror submodules."""

    kind: str  # layer | block | repeat | iteration | concat | branch | residual | shortcut
    op: str  # the layer op, the block's name, or the kind
    key: str
    path: str
    label: str | None
    span: Span
    input: Shape
    output: Shape
    params: int
    macs: int
    args: dict[str, Any] = field(default_factory=dict)
    children: list[Shaped] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.label or self.key


@dataclass
class ShapedModel:
    name: str
    file: str
    span: Span
    input: Shape
    output: Shape | None  # None when inference stopped at an error
    layers: list[Shaped]
    params: int
    macs: int
    train: TrainSpec | None
    model_params: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.output is not None


def projection_stride(size: int, target: int) -> int | None:
    """The smallest stride s with ⌊(size − 1)/s⌋ + 1 = target (a 1×1 conv's rule), if any."""
    if target < 1 or target > size:
        return None
    if target == 1:
        return max(size, 1)
    stride = (size - 1) // target + 1
    return stride if (size - 1) // stride + 1 == target else None


# --- the walk over composites ---------------------------------------------------------------------


@dataclass
class Source:
    """Where a tensor came from, for notes: the model input or a statement."""

    shape: Shape
    span: Span | None
    op: str | None


class Inference:
    def __init__(self, model: ResolvedModel):
        self.model = model
        self.diagnostics: list[Diagnostic] = []
        self.calls: list[BlockNode] = []

    def run(self) -> ShapedModel:
        model = self.model
        assert model.input_shape is not None
        if math.prod(model.input_shape) > MAX_ELEMENTS:
            self.report(
                _too_many_elements("the input is", model.input_shape, model.input_span or model.span), None
            )
            layers: list[Shaped] = []
            output: Source | None = None
        else:
            layers, output = self.sequence(model.body, Source(model.input_shape, None, None), "")
        params = sum(layer.params for layer in layers)
        if params > MAX_PARAMS and output is not None:
            self.report(_too_many_params(f"model {model.name}", params, model.name_span), None)
            output = None
        return ShapedModel(
            name=model.name,
            file=model.file,
            span=model.span,
            input=model.input_shape,
            output=output.shape if output else None,
            layers=layers,
            params=params,
            macs=sum(layer.macs for layer in layers),
            train=model.train,
            model_params=model.params,
        )

    def sequence(self, nodes: list[Node], source: Source, prefix: str) -> tuple[list[Shaped], Source | None]:
        """Shapes a body in order; stops (returning None) at the first statement that fails."""
        shaped: list[Shaped] = []
        current: Source | None = source
        for node in nodes:
            if current is None:
                break
            result = self.statement(node, current, prefix + node.key)
            if result is None:
                return shaped, None
            if math.prod(result.output) > MAX_ELEMENTS:
                self.report(_too_many_elements(f"{result.op} gives", result.output, node.span), None)
                return shaped, None
            shaped.append(result)
            current = Source(result.output, node.span, result.op)
        return shaped, current

    def statement(self, node: Node, source: Source, path: str) -> Shaped | None:
        if isinstance(node, InvalidNode):
            return None
        if isinstance(node, LayerNode):
            return self.layer(node, source, path)
        if isinstance(node, BlockNode):
            self.calls.append(node)
            children, output = self.sequence(node.body, source, path + ".")
            self.calls.pop()
            if output is None:
                return None
            # The call's parameter values travel with it, so a diagram can title the block
            # `Stage(width=128)` and emit can tell the calls apart.
            return self._composite(
                "block",
                node,
                path,
                source.shape,
                output.shape,
                children,
                op=node.block,
                args=dict(node.params),
            )
        if isinstance(node, RepeatNode):
            return self.repeat(node, source, path)
        if isinstance(node, ConcatNode):
            return self.concat(node, source, path)
        return self.residual(node, source, path)

    def layer(self, node: LayerNode, source: Source, path: str) -> Shaped | None:
        try:
            outcome = layers.LAYERS[node.op].shape(node, source.shape)
        except Failed as failed:
            self.report(failed.diagnostic, source)
            return None
        for diagnostic in outcome.warnings:
            self.report(diagnostic, None)
        if outcome.params > MAX_PARAMS:
            self.report(_too_many_params(f"this {node.op}", outcome.params, node.span), None)
            return None
        return Shaped(
            "layer",
            node.op,
            node.key,
            path,
            node.label,
            node.span,
            source.shape,
            outcome.output,
            outcome.params,
            outcome.macs,
            node.args,
        )

    def repeat(self, node: RepeatNode, source: Source, path: str) -> Shaped | None:
        passes: list[Shaped] = []
        current = source
        for index in range(node.count):
            children, output = self.sequence(node.body, current, f"{path}.{index}.")
            if output is None:
                return None
            passes.append(
                self._composite(
                    "iteration",
                    node,
                    f"{path}.{index}",
                    current.shape,
                    output.shape,
                    children,
                    key=str(index),
                )
            )
            current = output
        return self._composite(
            "repeat", node, path, source.shape, current.shape, passes, args={"count": node.count}
        )

    def concat(self, node: ConcatNode, source: Source, path: str) -> Shaped | None:
        branches: list[Shaped] = []
        failed = False
        for branch in node.branches:
            result = self.branch(branch, source, path)
            if result is None:
                failed = True
            else:
                branches.append(result)
        if failed:
            return None
        first = branches[0]
        for other in branches[1:]:
            if len(other.output) != len(first.output) or other.output[1:] != first.output[1:]:
                notes = [
                    Note(message=f"branch {b.name} (line {b.span.line}) gives {fmt(b.output)}", span=b.span)
                    for b in branches
                ]
                what = "H and W" if len(first.output) == 3 else "every axis but the first"
                self.report(
                    error(
                        CONCAT_MISMATCH,
                        f"concat branches must agree on {what}: branch {first.name} "
                        f"gives {fmt(first.output)}, branch {other.name} gives {fmt(other.output)}",
                        node.span,
                        *notes,
                    ),
                    None,
                )
                return None
        output = (sum(b.output[0] for b in branches), *first.output[1:])
        return self._composite("concat", node, path, source.shape, output, branches)

    def branch(self, branch: BranchNode, source: Source, path: str) -> Shaped | None:
        children, output = self.sequence(branch.body, source, f"{path}.{branch.key}.")
        if output is None:
            return None
        return self._composite("branch", branch, f"{path}.{branch.key}", source.shape, output.shape, children)

    def residual(self, node: ResidualNode, source: Source, path: str) -> Shaped | None:
        children, output = self.sequence(node.body, source, f"{path}.body.")
        if output is None:
            return None
        x, y = source.shape, output.shape
        if node.shortcut == "identity":
            if x != y:
                self.report(
                    error(
                        RESIDUAL_MISMATCH,
                        f"residual body changes the shape {fmt(x)} → {fmt(y)}, so it "
                        "cannot be added to its input; use residual(shortcut=project)",
                        node.span,
                        Note(
                            message=f"the body ends at line {output.span.line if output.span else '?'} "
                            f"with {fmt(y)}"
                        ),
                    ),
                    None,
                )
                return None
        else:
            shortcut = self.projection(node, x, y, path)
            if shortcut is None:
                return None
            children.append(shortcut)
        return self._composite("residual", node, path, x, y, children, args={"shortcut": node.shortcut})

    def projection(self, node: ResidualNode, x: Shape, y: Shape, path: str) -> Shaped | None:
        span = node.arg_spans.get("shortcut", node.span)
        bn_params = 2 * y[0] if node.batchnorm else 0
        if len(x) == 1 and len(y) == 1:
            if node.stride is not None:
                self.report(
                    error(
                        RESIDUAL_MISMATCH,
                        "a projection of [F] features is a linear layer: it takes no stride",
                        node.arg_spans["stride"],
                    ),
                    None,
                )
                return None
            weights = x[0] * y[0]
            return Shaped(
                "shortcut",
                "linear",
                "shortcut",
                f"{path}.shortcut",
                None,
                span,
                x,
                y,
                weights + (y[0] if node.bias else 0) + bn_params,
                weights,
                {"bias": node.bias, "batchnorm": node.batchnorm},
            )
        if len(x) != 3 or len(y) != 3:
            self.report(
                error(
                    RESIDUAL_MISMATCH,
                    f"a projection shortcut maps [C, H, W] or [F]; here the body maps {fmt(x)} → {fmt(y)}",
                    node.span,
                ),
                None,
            )
            return None
        strides = []
        for axis, name in ((1, "height"), (2, "width")):
            stride = projection_stride(x[axis], y[axis])
            if node.stride is not None:
                given = node.stride[axis - 1]
                if (x[axis] - 1) // given + 1 != y[axis]:
                    self.report(
                        error(
                            RESIDUAL_MISMATCH,
                            f"the projection's stride {given} maps {name} {x[axis]} to "
                            f"{(x[axis] - 1) // given + 1}, but the body gives {y[axis]}",
                            node.arg_spans["stride"],
                        ),
                        None,
                    )
                    return None
                stride = given
            if stride is None:
                self.report(
                    error(
                        RESIDUAL_MISMATCH,
                        f"no 1×1 projection maps {fmt(x)} to {fmt(y)}: no stride takes "
                        f"{name} {x[axis]} to {y[axis]}",
                        node.span,
                    ),
                    None,
                )
                return None
            strides.append(stride)
        weights = y[0] * x[0]
        return Shaped(
            "shortcut",
            "conv",
            "shortcut",
            f"{path}.shortcut",
            None,
            span,
            x,
            y,
            weights + (y[0] if node.bias else 0) + bn_params,
            weights * y[1] * y[2],
            {"stride": (strides[0], strides[1]), "bias": node.bias, "batchnorm": node.batchnorm},
        )

    @staticmethod
    def _composite(
        kind: str,
        node: BlockNode | RepeatNode | ConcatNode | BranchNode | ResidualNode,
        path: str,
        x: Shape,
        y: Shape,
        children: list[Shaped],
        *,
        op: str | None = None,
        args: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> Shaped:
        """A statement made of others; `key` names one pass of a repeat (which has no label)."""
        return Shaped(
            kind,
            op or kind,
            key or node.key,
            path,
            None if key else node.label,
            node.span,
            x,
            y,
            sum(c.params for c in children),
            sum(c.macs for c in children),
            args or {},
            children,
        )

    def report(self, diagnostic: Diagnostic, source: Source | None) -> None:
        notes = list(diagnostic.notes)
        if source is not None and diagnostic.is_error:
            notes.append(self._origin(diagnostic, source))
        for call in reversed(self.calls):
            if not (call.span.file == diagnostic.span.file and call.span.line == diagnostic.span.line):
                notes.append(Note(message=f"in block '{call.block}' called at {call.span}", span=call.span))
        self.diagnostics.append(diagnostic.model_copy(update={"notes": tuple(notes)}))

    def _origin(self, diagnostic: Diagnostic, source: Source) -> Note:
        model = self.model
        if diagnostic.code == EMPTY_OUTPUT and model.input_shape is not None and model.input_span is not None:
            return Note(
                message=f"the input to this model is {fmt(model.input_shape)} "
                f"(line {model.input_span.line}); "
                "this network expects larger images",
                span=model.input_span,
            )
        if source.span is None:
            line = model.input_span.line if model.input_span else model.span.line
            return Note(
                message=f"{fmt(source.shape)} is the model's input (line {line})", span=model.input_span
            )
        return Note(
            message=f"{fmt(source.shape)} comes from {source.op} at line {source.span.line}", span=source.span
        )


def _too_many_elements(what: str, shape: Shape, span: Span) -> Diagnostic:
    count = math.prod(shape)
    return error(
        TOO_LARGE,
        f"{what} {fmt(shape)}: {count:,} elements per sample ({float32_size(count)} as float32), "
        f"more than archdsl allows ({MAX_ELEMENTS:,})",
        span,
    )


def _too_many_params(what: str, count: int, span: Span) -> Diagnostic:
    return error(
        TOO_LARGE,
        f"{what} has {count:,} parameters ({float32_size(count)} as float32), more than archdsl "
        f"allows ({MAX_PARAMS:,})",
        span,
    )


def infer(model: ResolvedModel) -> tuple[ShapedModel | None, list[Diagnostic]]:
    if model.input_shape is None:
        return None, []
    inference = Inference(model)
    shaped = inference.run()
    return shaped, inference.diagnostics
