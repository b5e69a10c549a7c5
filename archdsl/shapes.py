"""Stage 4: static shape inference on the resolved IR — PyTorch's own size rules, without torch.

Consumes a `ResolvedModel`; produces a `ShapedModel`: every statement with its input and output
shape (per sample, batch implicit), exact parameter count and multiply-accumulates, keyed by the
module path the builder will give it. Each layer kind has one pure rule, its `Layer.shape`
`(layer, input shape) → Outcome`, failing through `fail(...)` with the numbers that failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from . import layers
from .errors import Diagnostic, Failed, Note, Span, error, warning
from .layers.base import IMAGE_AXES, Axes
from .resolve import (
    BAD_VALUE,
    TOO_LARGE,
    BlockNode,
    BranchNode,
    ConcatNode,
    Deferred,
    GateNode,
    GroupNode,
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
    GATE_MISMATCH,
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
    pair_text,
)
from .trainspec import TrainSpec
from .values import BadValue

# --- results --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Shaped:
    """One statement (or pass, branch, shortcut) with its shapes; `children` mirror submodules."""

    kind: str  # layer | block | repeat | iteration | concat | branch | residual | shortcut | gate | group
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
    #: No module of its own: its members are its namespace's (`*` statements, a repeat's passes).
    spliced: bool = False
    #: Its output's axes by name, where known (see `Source.axes`).
    axes: Axes | None = None

    @property
    def name(self) -> str:
        """Its module's name in its namespace; `*` for a spliced statement, which has none."""
        return "*" if self.spliced else self.label or self.key


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
    #: Its axes' names, where known (`("H", "W", "C")` after `permute(1, 2, 0)` of an image).
    axes: Axes | None = None


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
            shape = model.input_shape
            axes = IMAGE_AXES if len(shape) == 3 else ("F",) if len(shape) == 1 else None
            layers, output = self.sequence(model.body, Source(shape, None, None, axes), "")
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
        """Shapes a body in order; stops (returning None) at the first statement that fails.
        `prefix` is the module path of the namespace its members join, with its trailing dot."""
        shaped: list[Shaped] = []
        current: Source | None = source
        for node in nodes:
            if current is None:
                break
            result = self.statement(node, current, prefix)
            if result is None:
                return shaped, None
            if math.prod(result.output) > MAX_ELEMENTS:
                self.report(_too_many_elements(f"{result.op} gives", result.output, node.span), None)
                return shaped, None
            shaped.append(result)
            current = Source(result.output, node.span, result.op, result.axes)
        return shaped, current

    def statement(self, node: Node, source: Source, prefix: str) -> Shaped | None:
        path = prefix + node.key
        if isinstance(node, InvalidNode):
            return None
        if isinstance(node, LayerNode):
            return self.layer(node, source, path)
        # A spliced statement's members join the namespace it stands in; others make their own.
        inner = prefix if getattr(node, "splice", False) else path + "."
        if isinstance(node, BlockNode):
            self.calls.append(node)
            children, output = self.sequence(node.body, source, inner)
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
                axes=output.axes,
            )
        if isinstance(node, RepeatNode):
            return self.repeat(node, source, path, inner)
        if isinstance(node, ConcatNode):
            return self.concat(node, source, path, inner)
        if isinstance(node, GateNode):
            return self.gate(node, source, path, inner)
        if isinstance(node, GroupNode):
            children, output = self.sequence(node.body, source, inner)
            if output is None:
                return None
            return self._composite(
                "group", node, path, source.shape, output.shape, children, axes=output.axes
            )
        return self.residual(node, source, path, inner)

    def layer(self, node: LayerNode, source: Source, path: str) -> Shaped | None:
        spec = layers.LAYERS[node.op]
        try:
            _check_layout(node, spec, source)
            if any(isinstance(value, Deferred) for value in node.args.values()):
                node = self._with_channels(node, spec, source.shape)
            outcome = spec.shape(node, source.shape)
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
            axes=spec.axes(node.args, source.axes, outcome.output),
        )

    @staticmethod
    def _with_channels(node: LayerNode, spec: layers.Layer, shape: Shape) -> LayerNode:
        """The layer with its arguments that read `channels` evaluated for this input."""
        args = dict(node.args)
        for name, value in node.args.items():
            if not isinstance(value, Deferred):
                continue
            span = node.arg_spans.get(name, node.span)
            evaluated = value.value(shape[0])
            try:
                args[name] = spec.arg(name).accepts(evaluated)
            except BadValue as bad:
                raise fail(
                    BAD_VALUE,
                    f"{node.op} argument '{name}' must be {bad} (with channels = {shape[0]})",
                    span,
                ) from None
        return replace(node, args=args)

    def repeat(self, node: RepeatNode, source: Source, path: str, inner: str) -> Shaped | None:
        passes: list[Shaped] = []
        current = source
        for index, body in enumerate(node.passes):
            children, output = self.sequence(body, current, inner)
            if output is None:
                return None
            # A pass is no module: its members are the repeat's (or, spliced, its namespace's).
            passes.append(
                self._composite(
                    "iteration",
                    node,
                    f"{path}..{index}",
                    current.shape,
                    output.shape,
                    children,
                    key=f".{index}",
                    axes=output.axes,
                )
            )
            passes[-1].spliced = True
            current = output
        return self._composite(
            "repeat",
            node,
            path,
            source.shape,
            current.shape,
            passes,
            args={"count": node.count},
            axes=current.axes,
        )

    def concat(self, node: ConcatNode, source: Source, path: str, inner: str) -> Shaped | None:
        inputs = self._split(node, source)
        if inputs is None:
            return None
        branches: list[Shaped] = []
        failed = False
        for branch, given in zip(node.branches, inputs, strict=True):
            result = self.branch(branch, given, inner)
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
        split = node.split
        sizes = tuple(given.shape[0] for given in inputs) if split is not False else None
        return self._composite(
            "concat", node, path, source.shape, output, branches, args={"split": sizes}, axes=first.axes
        )

    def _split(self, node: ConcatNode, source: Source) -> list[Source] | None:
        """What each branch receives: the whole input, or its share of the channels."""
        count = len(node.branches)
        if node.split is False:
            return [source] * count
        channels = source.shape[0]
        span = node.arg_spans.get("split", node.span)
        if node.split is True:
            # torch.chunk's shares: ⌈C/n⌉ each, the last what is left, and fewer when that runs out.
            share = -(-channels // count)
            sizes = [min(share, channels - start) for start in range(0, channels, share)]
            if len(sizes) != count:
                self.report(
                    error(
                        CONCAT_MISMATCH,
                        f"concat(split=true) cannot share {channels} channels among {count} branches: "
                        f"torch.chunk gives {len(sizes)} parts ({' + '.join(map(str, sizes))})",
                        span,
                    ),
                    source,
                )
                return None
        else:
            sizes = list(node.split)
            if sum(sizes) != channels:
                self.report(
                    error(
                        CONCAT_MISMATCH,
                        f"concat split {' + '.join(map(str, sizes))} = {sum(sizes)} channels, but the "
                        f"input has {channels} ({fmt(source.shape)})",
                        span,
                    ),
                    source,
                )
                return None
        return [Source((size, *source.shape[1:]), source.span, source.op, source.axes) for size in sizes]

    def branch(self, branch: BranchNode, source: Source, prefix: str) -> Shaped | None:
        path = prefix + branch.key
        children, output = self.sequence(branch.body, source, prefix if branch.splice else path + ".")
        if output is None:
            return None
        return self._composite("branch", branch, path, source.shape, output.shape, children, axes=output.axes)

    def gate(self, node: GateNode, source: Source, path: str, inner: str) -> Shaped | None:
        children, output = self.sequence(node.body, source, inner)
        if output is None:
            return None
        x, g = source.shape, output.shape
        # The gate may be narrower than x on any axis, where it is 1 (and PyTorch broadcasts it:
        # [C, 1, 1] scales channels, [1, H, W] positions); a rank or size it cannot broadcast to
        # x's shape, or one that would enlarge x, is refused rather than broadcast.
        if len(g) != len(x) or any(gs not in (1, xs) for gs, xs in zip(g, x, strict=True)):
            hint = ""
            if len(g) < len(x):
                hint = "; PyTorch would align its axes with x's last ones: view it to the same rank"
            self.report(
                error(
                    GATE_MISMATCH,
                    f"gate gives {fmt(g)}, which cannot scale its input {fmt(x)}: each axis must be "
                    f"the input's size or 1{hint}",
                    node.span,
                    Note(
                        message=f"the gate's body ends at line {output.span.line if output.span else '?'} "
                        f"with {fmt(g)}"
                    ),
                ),
                None,
            )
            return None
        return self._composite("gate", node, path, x, x, children, axes=source.axes)

    def residual(self, node: ResidualNode, source: Source, path: str, inner: str) -> Shaped | None:
        children, output = self.sequence(node.body, source, inner)
        if output is None:
            return None
        x, y = source.shape, output.shape
        if node.shortcut == "identity":
            if x != y:
                self.report(
                    error(
                        RESIDUAL_MISMATCH,
                        f"residual body changes the shape {fmt(x)} → {fmt(y)}, so it "
                        f"cannot be added to its input; {_residual_hint(x, y)}",
                        node.span,
                        Note(
                            message=f"the body ends at line {output.span.line if output.span else '?'} "
                            f"with {fmt(y)}"
                        ),
                    ),
                    None,
                )
                return None
        elif node.shortcut == "path":
            assert node.path is not None
            shortcut = self.branch(node.path, source, inner)
            if shortcut is None:
                return None
            if shortcut.output != y:
                self.report(
                    error(
                        RESIDUAL_MISMATCH,
                        f"residual body gives {fmt(y)} but its shortcut gives {fmt(shortcut.output)}: "
                        "the two are added, so they must be equal",
                        node.span,
                        Note(message=f"the shortcut is at {node.path.span}", span=node.path.span),
                    ),
                    None,
                )
                return None
            shortcut.kind, shortcut.op = "shortcut", "path"
            children.insert(node.shortcut_at, shortcut)
        else:
            projection = self.projection(node, x, y, inner)
            if projection is None:
                return None
            children.append(projection)
        return self._composite(
            "residual", node, path, x, y, children, args={"shortcut": node.shortcut}, axes=output.axes
        )

    def projection(self, node: ResidualNode, x: Shape, y: Shape, prefix: str) -> Shaped | None:
        span = node.arg_spans.get("shortcut", node.span)
        key = node.shortcut_key or "shortcut"
        path = prefix + key
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
                key,
                path,
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
        if node.stride is None and max(strides) > 2:
            # The smallest stride that gives the body's size; past 2 it reads one input pixel in
            # stride², which a body that pools or gates its input does not (see `gate`).
            self.report(
                warning(
                    INEXACT,
                    f"the projection's inferred stride {pair_text((strides[0], strides[1]))} maps "
                    f"{fmt(x)} to {fmt(y)} reading one input pixel in {strides[0] * strides[1]:,}: "
                    "to scale the input by what the body makes of it, write `gate { … }`; to keep "
                    "this projection, give its stride (`stride=…`)",
                    span,
                ),
                None,
            )
        weights = y[0] * x[0]
        return Shaped(
            "shortcut",
            "conv",
            key,
            path,
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
        node: BlockNode | RepeatNode | ConcatNode | BranchNode | ResidualNode | GateNode | GroupNode,
        path: str,
        x: Shape,
        y: Shape,
        children: list[Shaped],
        *,
        op: str | None = None,
        args: dict[str, Any] | None = None,
        key: str | None = None,
        axes: Axes | None = None,
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
            spliced=getattr(node, "splice", False),
            axes=axes,
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


def _check_layout(node: LayerNode, spec: layers.Layer, source: Source) -> None:
    """A layer that needs channels first, or a last axis that is no spatial one, on a sample
    whose axes a permute reordered (or that is an image, for `linear` and `layernorm`)."""
    axes, shape = source.axes, source.shape
    if axes is None or len(axes) != 3 or spec.layout == "any":
        return
    named = "[" + ", ".join(f"{a} = {n}" for a, n in zip(axes, shape, strict=True)) + "]"
    # H and W may be swapped (a transposed image is still one); the channels must come first.
    if spec.layout == "image" and axes[0] != "C" and set(axes) == set(IMAGE_AXES):
        back = ", ".join(str(axes.index(a)) for a in IMAGE_AXES)
        raise fail(
            RANK,
            f"{node.op} needs the channels first, [C, H, W], but this sample's axes are {named} "
            f"(a permute reordered them); `permute({back})` puts them back",
            node.span,
        )
    if spec.layout == "features" and axes[-1] in ("H", "W"):
        if node.op == "layernorm":
            fix = "`layernorm2d` normalises the channels"
        else:
            fix = f"add `flatten` before it (giving [{math.prod(shape)}])"
        last = ", ".join(str(axes.index(a)) for a in (*(a for a in axes if a != "C"), "C"))
        raise fail(
            RANK,
            f"{node.op} acts on the last axis, here {axes[-1]} of {named}: {fix}, or `permute({last})` "
            "moves the channels last",
            node.span,
        )


def _residual_hint(x: Shape, y: Shape) -> str:
    if len(x) == len(y) and x[0] == y[0] and all(size == 1 for size in y[1:]) and x != y:
        return "to scale the input by it (squeeze-and-excitation), write `gate { … }`"
    return "use residual(shortcut=project), or write its shortcut out (`shortcut { … }`)"


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
