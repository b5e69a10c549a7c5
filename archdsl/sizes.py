"""Size arithmetic shared by the layers' shape rules: PyTorch's output-size rule for windows
(convolutions and pools), with the words and numbers a diagnostic shows, and the rule's result.

No torch, and nothing about composites: `shapes.py` walks the model, `layers/` hold one rule per
layer kind, and both read this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .codes import AXES_LENGTH, CHANNELS, EMPTY_OUTPUT, GROUPS, INEXACT, POOL_PADDING, RANK
from .errors import Diagnostic, Failed, Note, Span, error, warning

if TYPE_CHECKING:
    from .graph import Node as LayerNode


Shape = tuple[int, ...]

#: Past these a network could not be built on any machine (each is 4 TiB as float32), so the spec
#: is taken for a mistake and refused (E110) before anything is allocated: the elements of one
#: sample's tensor after any statement, and the parameters of a layer or of a whole model.
MAX_ELEMENTS = 2**40
MAX_PARAMS = 2**40


def float32_size(count: int) -> str:
    """`count` float32 values in bytes, for messages: '4.0 GiB'; past what a float holds (a size
    from a scale of 1e300), '> 1e308 bytes'."""
    if count * 4 > 2**1023:
        return "> 1e308 bytes"
    size = float(count * 4)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def fmt(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def fmt_io(items: list[tuple[str | None, Shape]]) -> str:
    """A model's inputs or outputs: `[3, 224, 224]` for one unnamed, else each in parentheses, by
    name where it has one: `(out: [21, 64, 64], aux: [21, 64, 64])`."""
    if len(items) == 1 and items[0][0] is None:
        return fmt(items[0][1])
    if not items:
        return "?"
    return "(" + ", ".join(f"{name}: {fmt(shape)}" if name else fmt(shape) for name, shape in items) + ")"


@dataclass(slots=True)
class Outcome:
    output: Shape
    params: int = 0
    macs: int = 0
    warnings: list[Diagnostic] = field(default_factory=list)
    #: The shapes of its outputs after the first, for a layer that makes several (`split`).
    more: tuple[Shape, ...] = ()


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
        padding 1 on an even size leaves only a padding row unused, which loses nothing. A window
        narrower than its stride skips the rows between windows by design (a 1×1 conv with stride
        2 reads every other row): left-over rows no more than that gap are skipped as those are,
        not dropped. Only the rows where one more window would have started are.
        """
        if self.ceil or self.numerator < 0:
            return 0
        gap = max(self.stride - self.effective_kernel, 0)
        return max(self.numerator % self.stride - gap - self.pad_right, 0)

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


def pair_text(pair: tuple[int, ...]) -> str:
    """A size per axis as a message writes it: `3` where every axis has it, else `[3, 7, 7]`."""
    return str(pair[0]) if len(set(pair)) == 1 else "[" + ", ".join(str(n) for n in pair) + "]"


#: How messages name a sample's spatial axes, by how many there are: a signal's, an image's, a
#: video's; and what each axis is made of (its input rows).
AXIS_NAMES: dict[int, tuple[str, ...]] = {
    1: ("length",),
    2: ("height", "width"),
    3: ("time", "height", "width"),
}
AXIS_UNITS: dict[int, tuple[str, ...]] = {
    1: ("position",),
    2: ("row", "column"),
    3: ("frame", "row", "column"),
}
#: The spatial axes' letters, after C: `[C, L]`, `[C, H, W]`, `[C, T, H, W]`.
AXIS_LETTERS: dict[int, tuple[str, ...]] = {1: ("L",), 2: ("H", "W"), 3: ("T", "H", "W")}


def _axes_text(windows: tuple[Window, ...], render: Callable[[Window], str], which: list[int]) -> str:
    if len(set(windows)) == 1:
        return render(windows[0])  # every axis alike: no need to say which
    names = AXIS_NAMES[len(windows)]
    return "; ".join(f"{names[i]} {render(windows[i])}" for i in which)


def spatial(
    node: LayerNode,
    shape: Shape,
    windows: tuple[Window, ...],
    described: str,
) -> tuple[tuple[int, ...], list[Diagnostic]]:
    """The output size along each spatial axis; an empty output fails, an inexact division warns."""
    outputs = tuple(window.output for window in windows)
    axes = range(len(windows))
    empty = [i for i in axes if outputs[i] < 1]
    if empty:
        raise fail(
            EMPTY_OUTPUT,
            f"{node.op} output is empty: input {fmt(shape)}, {described} → "
            f"{_axes_text(windows, Window.formula, empty)}",
            node.span,
        )
    warnings = []
    inexact = [i for i in axes if windows[i].dropped]
    if inexact:
        warnings.append(
            warning(
                INEXACT,
                f"{node.op} size does not divide exactly: "
                f"{_axes_text(windows, Window.inexact_formula, inexact)}; PyTorch silently drops "
                f"{_dropped_text([w.dropped for w in windows])} of the input",
                node.span,
            )
        )
    return outputs, warnings


def _dropped_text(counts: list[int]) -> str:
    """`the last 2 rows and columns`, `the last row and 2 columns`, `the last frame, 2 rows and 2
    columns`: the input rows (columns, frames…) each axis drops, those that drop none left out."""

    def count(n: int, unit: str) -> str:
        return unit if n == 1 else f"{n} {unit}s"

    dropped = [(n, unit) for n, unit in zip(counts, AXIS_UNITS[len(counts)], strict=True) if n]
    if len({n for n, _ in dropped}) == 1:
        first, *rest = dropped  # the count once: `2 rows and columns`
        words = [count(*first), *(unit if first[0] == 1 else f"{unit}s" for _, unit in rest)]
    else:
        words = [count(n, unit) for n, unit in dropped]
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return f"the last {listed}"


def describe_window(
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: Any = (0, 0),
    dilation: tuple[int, ...] = (1, 1),
    ceil: bool = False,
) -> str:
    parts = [f"kernel {pair_text(kernel)}", f"stride {pair_text(stride)}"]
    if isinstance(padding, str):
        parts.append(f'padding "{padding}"')
    elif any(padding):
        parts.append(f"padding {pair_text(padding)}")
    if any(d != 1 for d in dilation):
        parts.append(f"dilation {pair_text(dilation)}")
    if ceil:
        parts.append("ceil mode")
    return ", ".join(parts)


def needs_spatial(node: LayerNode, shape: Shape) -> int:
    """The sample's spatial axes, 1 to 3 (`[C, L]`, `[C, H, W]`, `[C, T, H, W]`): a window or an
    adaptive pool slides over each of them (E102 for any other rank)."""
    if not 2 <= len(shape) <= 4:
        hint = "; use `view(C, H, W)` to give it a spatial shape" if len(shape) == 1 else ""
        raise fail(
            RANK,
            f"{node.op} needs a [C, L], [C, H, W] or [C, T, H, W] input, got {fmt(shape)}{hint}",
            node.span,
        )
    return len(shape) - 1


def spread(
    node: LayerNode, names: tuple[str, ...], shape: Shape, channels_last: bool = False
) -> dict[str, Any]:
    """`node`'s arguments with those given per spatial axis (`names`) as one size per axis of a
    `shape` sample (its channels first, or last): an int for every axis, a list held to their
    number (E118). A sample with no spatial axis, or too many, keeps them as given: the shape rule
    refuses it (E102)."""
    axes = len(shape) - 1
    if not 1 <= axes <= 3:
        return node.args
    args = dict(node.args)
    for name in names:
        value = args.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            args[name] = (value,) * axes
        elif isinstance(value, tuple) and len(value) != axes:
            letters = ", ".join(AXIS_LETTERS[axes]).lower()
            raise fail(
                AXES_LENGTH,
                f"{node.op} {name} {fmt(value)} gives "
                f"{len(value)} {'size' if len(value) == 1 else 'sizes'}, but its input {fmt(shape)} has "
                f"{axes} spatial {'axis' if axes == 1 else 'axes'} "
                f"({_layout(AXIS_LETTERS[axes], channels_last)}): give one size, or [{letters}]",
                node.arg_spans.get(name, node.span),
            )
    return args


def _layout(letters: Any, channels_last: bool) -> str:
    return f"[{', '.join(letters)}, C]" if channels_last else f"[C, {', '.join(letters)}]"


def needs_image(node: LayerNode, shape: Shape) -> None:
    if len(shape) != 3:
        hint = ""
        if len(shape) == 1:
            hint = "; use `view(C, H, W)` to give it a spatial shape"
        raise fail(RANK, f"{node.op} needs a [C, H, W] input, got {fmt(shape)}{hint}", node.span)


def sample_axis(node: LayerNode, shape: Shape, dim: int, span_key: str = "dim") -> int:
    """A `dim` counting the batch as 0, as PyTorch counts it, as an axis of the sample (from 0):
    `split`'s, `select`'s, `mean`'s."""
    rank = len(shape) + 1
    if not -rank <= dim < rank or dim % rank == 0:
        raise fail(
            RANK,
            f"{node.op} dim={dim} must be an axis of the {fmt(shape)} sample: with the batch axis (0, "
            f"which it may not take) the dims are 1..{rank - 1} (or {-rank + 1}..-1)",
            node.arg_spans.get(span_key, node.span),
        )
    return dim % rank - 1


def pool_padding(node: LayerNode, kernel: tuple[int, ...], padding: tuple[int, ...]) -> None:
    """A pool's padding (maxpool's, avgpool's, tokenpool's) is at most half its kernel on each
    axis, as PyTorch's pools require."""
    if any(p > k // 2 for p, k in zip(padding, kernel, strict=True)):
        raise fail(
            POOL_PADDING,
            f"{node.op} padding {pair_text(padding)} is more than half the kernel "
            f"{pair_text(kernel)}: PyTorch allows at most "
            f"{pair_text(tuple(k // 2 for k in kernel))}",
            node.arg_spans.get("padding", node.span),
        )


def divides(node: LayerNode, count: int, what: str, arg: str = "groups") -> None:
    """`groups=` (or `heads=`) must divide `count` (conv's channels in and out, groupnorm's,
    shuffle's; attention's features)."""
    groups = node.args[arg]
    if count % groups:
        raise fail(
            GROUPS,
            f"{node.op} {arg}={groups} must divide the {count} {what} "
            f"({count} = {groups}·{count // groups} + {count % groups})",
            node.arg_spans.get(arg, node.span),
        )


def out_count(node: LayerNode, incoming: int, noun: str) -> int:
    """Checks an `in=` assertion and resolves `out=same` (conv channels, linear features)."""
    declared = node.args["in"]
    if declared is not None and declared != incoming:
        raise fail(
            CHANNELS,
            f"{node.op} expects {declared} input {noun} (in={declared}) but receives {incoming}",
            node.arg_spans.get("in", node.span),
        )
    return incoming if node.args["out"] == "same" else node.args["out"]


def conv_channels(node: LayerNode, shape: Shape) -> tuple[int, int]:
    """A convolution's (or transposed convolution's) channels in and out, checked: the `in=`
    assertion, `out=same`, and groups dividing both (the caller checks the rank first)."""
    channels_in = shape[0]
    channels_out = out_count(node, channels_in, "channels")
    for what, count in (("input", channels_in), ("output", channels_out)):
        divides(node, count, f"{what} channels")
    return channels_in, channels_out
