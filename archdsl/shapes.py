"""Stage 4: static shape inference on the resolved IR — PyTorch's own size rules, without torch.

Consumes a `ResolvedModel`; produces a `ShapedModel`: every statement with its input and output
shape (per sample, batch implicit), exact parameter count and multiply-accumulates, keyed by the
module path the builder will give it. Each built-in layer has one pure rule in `RULES`:
`(layer, input shape) → Outcome`, failing through `fail(...)` with the numbers that failed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import Diagnostic, Failed, Note, Span, error, warning
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
from .trainspec import TrainSpec

EMPTY_OUTPUT = "E101"
RANK = "E102"
CHANNELS = "E103"
GROUPS = "E104"
CONCAT_MISMATCH = "E105"
RESIDUAL_MISMATCH = "E106"
VIEW_SIZE = "E107"
POOL_PADDING = "E108"
SAME_PADDING = "E109"
INEXACT = "W001"
NO_GRADIENT = "W002"
BATCH_AXIS = "W003"

Shape = tuple[int, ...]

#: Past these a network could not be built on any machine (each is 4 TiB as float32), so the spec
#: is taken for a mistake and refused (E110) before anything is allocated: the elements of one
#: sample's tensor after any statement, and the parameters of a layer or of a whole model.
MAX_ELEMENTS = 2**40
MAX_PARAMS = 2**40


def float32_size(count: int) -> str:
    """`count` float32 values in bytes, for messages: '4.0 GiB'."""
    size = float(count * 4)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def fmt(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


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


@dataclass(slots=True)
class Outcome:
    output: Shape
    params: int = 0
    macs: int = 0
    warnings: list[Diagnostic] = field(default_factory=list)


def fail(code: str, message: str, span: Span, *notes: Note) -> Failed:
    return Failed(error(code, message, span, *notes))


# --- size arithmetic ------------------------------------------------------------------------------


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True, slots=True)
class Window:
    """One spatial axis of a conv or pool: PyTorch's output-size rule and its explanation."""

    size: int
    kernel: int
    stride: int
    pad_left: int
    pad_right: int
    dilation: int = 1
    ceil: bool = False

    @property
    def effective_kernel(self) -> int:
        return self.dilation * (self.kernel - 1) + 1

    @property
    def numerator(self) -> int:
        return self.size + self.pad_left + self.pad_right - self.effective_kernel

    @property
    def output(self) -> int:
        # at::native::pooling_output_shape_pad_lr; for convolutions ceil is always False.
        if not self.ceil:
            return self.numerator // self.stride + 1
        out = (self.numerator + self.stride - 1) // self.stride + 1
        if (out - 1) * self.stride >= self.size + self.pad_left:
            out -= 1  # the last window would start in the right padding: PyTorch drops it
        return out

    @property
    def dropped(self) -> int:
        """Input rows (or columns) no window covers because the division is not exact.

        Rows left over at the end of the padded input are padding first: a stride-2 3×3 conv with
        padding 1 on an even size leaves only a padding row unused, which loses nothing.
        """
        if self.ceil or self.numerator < 0:
            return 0
        return max(self.numerator % self.stride - self.pad_right, 0)

    def formula(self) -> str:
        padding = self.pad_left + self.pad_right
        inner = f"{self.size} − {self.effective_kernel}" + (f" + {padding}" if padding else "")
        if self.stride == 1:
            return f"{inner} + 1 = {self.output}"
        if self.ceil:
            text = f"⌈({inner})/{self.stride}⌉ + 1 = {(self.numerator + self.stride - 1) // self.stride + 1}"
            if self.output != (self.numerator + self.stride - 1) // self.stride + 1:
                text += f" → {self.output} (the last window would start in the padding)"
            return text
        return f"⌊({inner})/{self.stride}⌋ + 1 = {self.output}"

    def inexact_formula(self) -> str:
        padding = self.pad_left + self.pad_right
        inner = f"{self.size} − {self.effective_kernel}" + (f" + {padding}" if padding else "")
        exact = self.numerator / self.stride + 1
        return f"({inner})/{self.stride} + 1 = {_number(exact)} → {self.output}"


def _pair_text(pair: tuple[int, int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"[{pair[0]}, {pair[1]}]"


def _axes_text(windows: tuple[Window, Window], render: Callable[[Window], str], which: list[int]) -> str:
    if len(which) == 2 and windows[0] == windows[1]:
        return render(windows[0])
    names = ("height", "width")
    if len(which) == 1 and windows[0] == windows[1]:
        return render(windows[which[0]])
    return "; ".join(f"{names[i]} {render(windows[i])}" for i in which)


def _spatial(
    node: LayerNode,
    shape: Shape,
    windows: tuple[Window, Window],
    described: str,
) -> tuple[tuple[int, int], list[Diagnostic]]:
    """Output height and width; an empty output fails, an inexact division warns."""
    outputs = (windows[0].output, windows[1].output)
    empty = [i for i in (0, 1) if outputs[i] < 1]
    if empty:
        raise fail(
            EMPTY_OUTPUT,
            f"{node.op} output is empty: input {fmt(shape)}, {described} → "
            f"{_axes_text(windows, Window.formula, empty)}",
            node.span,
        )
    warnings = []
    inexact = [i for i in (0, 1) if windows[i].dropped]
    if inexact:
        warnings.append(
            warning(
                INEXACT,
                f"{node.op} size does not divide exactly: "
                f"{_axes_text(windows, Window.inexact_formula, inexact)}; PyTorch silently drops "
                f"{_dropped_text(windows[0].dropped, windows[1].dropped)} of the input",
                node.span,
            )
        )
    return (outputs[0], outputs[1]), warnings


def _dropped_text(rows: int, columns: int) -> str:
    def count(n: int, noun: str) -> str:
        return f"{noun}" if n == 1 else f"{n} {noun}s"

    if rows and columns:
        if rows == columns:
            return f"the last {count(rows, 'row')} and {'column' if rows == 1 else 'columns'}"
        return f"the last {count(rows, 'row')} and {count(columns, 'column')}"
    return f"the last {count(rows, 'row')}" if rows else f"the last {count(columns, 'column')}"


def _describe_window(
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: Any = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    ceil: bool = False,
) -> str:
    parts = [f"kernel {_pair_text(kernel)}", f"stride {_pair_text(stride)}"]
    if isinstance(padding, str):
        parts.append(f'padding "{padding}"')
    elif padding != (0, 0):
        parts.append(f"padding {_pair_text(padding)}")
    if dilation != (1, 1):
        parts.append(f"dilation {_pair_text(dilation)}")
    if ceil:
        parts.append("ceil mode")
    return ", ".join(parts)


def _needs_image(node: LayerNode, shape: Shape) -> None:
    if len(shape) != 3:
        hint = ""
        if len(shape) == 1:
            hint = "; use `view(C, H, W)` to give it a spatial shape"
        raise fail(RANK, f"{node.op} needs a [C, H, W] input, got {fmt(shape)}{hint}", node.span)


# --- the rules ------------------------------------------------------------------------------------


def _out_count(node: LayerNode, incoming: int, noun: str) -> int:
    """Checks an `in=` assertion and resolves `out=same` (conv channels, linear features)."""
    declared = node.args["in"]
    if declared is not None and declared != incoming:
        raise fail(
            CHANNELS,
            f"{node.op} expects {declared} input {noun} (in={declared}) but receives {incoming}",
            node.arg_spans.get("in", node.span),
        )
    return incoming if node.args["out"] == "same" else node.args["out"]


def conv_rule(node: LayerNode, shape: Shape) -> Outcome:
    _needs_image(node, shape)
    a = node.args
    channels_in = shape[0]
    channels_out = _out_count(node, channels_in, "channels")
    groups = a["groups"]
    for what, count in (("input", channels_in), ("output", channels_out)):
        if count % groups:
            raise fail(
                GROUPS,
                f"conv groups={groups} must divide the {count} {what} channels "
                f"({count} = {groups}·{count // groups} + {count % groups})",
                node.arg_spans.get("groups", node.span),
            )
    kernel, stride, dilation, padding = a["kernel"], a["stride"], a["dilation"], a["padding"]
    if padding == "same" and stride != (1, 1):
        raise fail(
            SAME_PADDING,
            f'padding="same" needs stride 1, got stride {_pair_text(stride)} '
            "(PyTorch refuses it for strided convolutions)",
            node.arg_spans.get("padding", node.span),
        )
    windows = []
    for axis in (0, 1):
        if padding == "same":
            total = dilation[axis] * (kernel[axis] - 1)
            left = total // 2
            pads = (left, total - left)
        elif padding == "valid":
            pads = (0, 0)
        else:
            pads = (padding[axis], padding[axis])
        windows.append(Window(shape[1 + axis], kernel[axis], stride[axis], pads[0], pads[1], dilation[axis]))
    (height, width), warnings = _spatial(
        node, shape, (windows[0], windows[1]), _describe_window(kernel, stride, padding, dilation)
    )
    weights = channels_out * (channels_in // groups) * kernel[0] * kernel[1]
    params = weights + (channels_out if a["bias"] else 0)
    return Outcome((channels_out, height, width), params, weights * height * width, warnings)


def _pool_rule(node: LayerNode, shape: Shape, dilation: tuple[int, int]) -> Outcome:
    _needs_image(node, shape)
    a = node.args
    kernel, padding, ceil = a["kernel"], a["padding"], a["ceil"]
    stride = a["stride"] or kernel
    for axis in (0, 1):
        if padding[axis] > kernel[axis] // 2:
            raise fail(
                POOL_PADDING,
                f"{node.op} padding {_pair_text(padding)} is more than half the kernel "
                f"{_pair_text(kernel)}: PyTorch allows at most "
                f"{_pair_text((kernel[0] // 2, kernel[1] // 2))}",
                node.arg_spans.get("padding", node.span),
            )
    windows = tuple(
        Window(
            shape[1 + axis], kernel[axis], stride[axis], padding[axis], padding[axis], dilation[axis], ceil
        )
        for axis in (0, 1)
    )
    (height, width), warnings = _spatial(
        node, shape, (windows[0], windows[1]), _describe_window(kernel, stride, padding, dilation, ceil)
    )
    return Outcome((shape[0], height, width), 0, 0, warnings)


def maxpool_rule(node: LayerNode, shape: Shape) -> Outcome:
    return _pool_rule(node, shape, node.args["dilation"])


def avgpool_rule(node: LayerNode, shape: Shape) -> Outcome:
    return _pool_rule(node, shape, (1, 1))


def adaptive_pool_rule(node: LayerNode, shape: Shape) -> Outcome:
    _needs_image(node, shape)
    height, width = node.args["size"]
    return Outcome((shape[0], height, width))


def batchnorm_rule(node: LayerNode, shape: Shape) -> Outcome:
    if not 1 <= len(shape) <= 4:
        raise fail(
            RANK,
            f"batchnorm needs a [F], [C, L], [C, H, W] or [C, D, H, W] input, got {fmt(shape)}",
            node.span,
        )
    return Outcome(shape, 2 * shape[0] if node.args["affine"] else 0)


def dropout_rule(node: LayerNode, shape: Shape) -> Outcome:
    if node.op == "dropout2d":
        _needs_image(node, shape)
    warnings = []
    if node.args["p"] == 1.0:
        warnings.append(
            warning(
                NO_GRADIENT,
                f"{node.op}(p=1) zeroes every activation in training: no gradient "
                "reaches the layers before it",
                node.span,
            )
        )
    return Outcome(shape, warnings=warnings)


def unchanged_rule(node: LayerNode, shape: Shape) -> Outcome:
    return Outcome(shape)


def softmax_rule(node: LayerNode, shape: Shape) -> Outcome:
    dim = node.args["dim"]
    rank = len(shape) + 1  # with the batch axis
    if not -rank <= dim < rank:
        raise fail(
            RANK,
            f"{node.op} dim={dim} is out of range for a {fmt(shape)} sample: with the batch axis "
            f"the dims are {-rank}..{rank - 1}",
            node.arg_spans.get("dim", node.span),
        )
    warnings = []
    if dim in (0, -rank):
        warnings.append(
            warning(
                BATCH_AXIS,
                f"{node.op} over dim {dim}, the batch axis, mixes the samples of a batch",
                node.arg_spans.get("dim", node.span),
            )
        )
    return Outcome(shape, warnings=warnings)


def flatten_rule(node: LayerNode, shape: Shape) -> Outcome:
    return Outcome((math.prod(shape),))


def view_rule(node: LayerNode, shape: Shape) -> Outcome:
    dims: tuple[int, ...] = node.args["dims"]
    span = node.arg_spans.get("dims", node.span)
    total = math.prod(shape)
    if not dims:
        raise fail(VIEW_SIZE, "view needs at least one dimension", span)
    if dims.count(-1) > 1:
        raise fail(VIEW_SIZE, "view can infer only one dimension: -1 appears more than once", span)
    bad = [d for d in dims if d < 1 and d != -1]
    if bad:
        raise fail(VIEW_SIZE, f"view dimensions must be positive (or one -1), got {bad[0]}", span)
    known = math.prod(d for d in dims if d != -1)
    if -1 in dims:
        if total % known:
            raise fail(
                VIEW_SIZE,
                f"view cannot reshape {fmt(shape)} ({total} elements) to {fmt(dims)}: "
                f"{total} is not a multiple of {known}",
                span,
            )
        dims = tuple(total // known if d == -1 else d for d in dims)
    elif known != total:
        raise fail(
            VIEW_SIZE,
            f"view cannot reshape {fmt(shape)} ({total} elements) to {fmt(dims)} ({known} elements)",
            span,
        )
    return Outcome(dims)


def linear_rule(node: LayerNode, shape: Shape) -> Outcome:
    if len(shape) != 1:
        flat = math.prod(shape)
        raise fail(
            RANK,
            f"linear needs a flat [F] input, got {fmt(shape)}; add `flatten` before it (giving [{flat}])",
            node.span,
        )
    features_in = shape[0]
    features_out = _out_count(node, features_in, "features")
    weights = features_in * features_out
    return Outcome((features_out,), weights + (features_out if node.args["bias"] else 0), weights)


def pretrained_rule(node: LayerNode, shape: Shape) -> Outcome:
    """A torchvision model's shape comes from PyTorch itself (a forward pass on the meta device):
    its architecture is code, not a rule archdsl could restate. Imports torch, and only here."""
    from . import pretrained

    a = node.args
    try:
        pretrained.check(a["name"], a["part"], a["weights"])
        probe = pretrained.probe(a["name"], a["part"], shape)
    except pretrained.Refused as refused:
        span = node.arg_spans.get(refused.arg, node.span) if refused.arg else node.span
        raise fail(refused.code, refused.message, span) from None
    if not all(d >= 1 for d in probe.output):
        raise fail(
            EMPTY_OUTPUT,
            f"pretrained {pretrained.title(a['name'], a['part'])} output is empty: input {fmt(shape)} "
            f"→ {fmt(probe.output)}",
            node.span,
        )
    return Outcome(probe.output, probe.params, probe.macs)


RULES: dict[str, Callable[[LayerNode, Shape], Outcome]] = {
    "conv": conv_rule,
    "maxpool": maxpool_rule,
    "avgpool": avgpool_rule,
    "adaptiveavgpool": adaptive_pool_rule,
    "adaptivemaxpool": adaptive_pool_rule,
    "batchnorm": batchnorm_rule,
    "dropout": dropout_rule,
    "dropout2d": dropout_rule,
    "relu": unchanged_rule,
    "leakyrelu": unchanged_rule,
    "tanh": unchanged_rule,
    "sigmoid": unchanged_rule,
    "gelu": unchanged_rule,
    "silu": unchanged_rule,
    "elu": unchanged_rule,
    "identity": unchanged_rule,
    "softmax": softmax_rule,
    "logsoftmax": softmax_rule,
    "flatten": flatten_rule,
    "view": view_rule,
    "linear": linear_rule,
    "pretrained": pretrained_rule,
}


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
            outcome = RULES[node.op](node, source.shape)
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
