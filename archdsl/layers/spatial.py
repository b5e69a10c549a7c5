"""Layers that slide a window over a sample's spatial axes, or pool them to a fixed size: conv,
maxpool, avgpool and the adaptive pools.

Each takes a signal `[C, L]`, an image `[C, H, W]` or a video `[C, T, H, W]`, as PyTorch's 1d, 2d
and 3d modules do, the rank taken from the input. Their window arguments are per axis
(`Layer.per_axis`): shape inference has made each one size per spatial axis before these rules
read them (`kernel=3` on a video is `(3, 3, 3)`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from ..codes import EMPTY_OUTPUT, SAME_PADDING
from ..converters import boolean, channels, conv_padding, nonnegative_axes, positive_axes, positive_int
from ..sizes import (
    AXIS_NAMES,
    Outcome,
    Shape,
    Window,
    conv_channels,
    describe_window,
    fail,
    fmt,
    needs_spatial,
    pair_text,
    pool_padding,
    spatial,
)
from ..symbolic import UNKNOWN, window
from .base import (
    ADAPTIVE,
    Arg,
    FieldRule,
    FunctionCall,
    Layer,
    Module,
    Reading,
    Sliding,
    axes_of,
    pair_or_int,
    size_text,
    step_text,
)

if TYPE_CHECKING:
    from ..graph import Node as LayerNode
    from ..shapes import Shaped


def dims(node: Shaped) -> str:
    """`1d`, `2d` or `3d`: the PyTorch module's rank for the statement's input."""
    return f"{len(node.input) - 1}d"


def conv_pads(
    padding: Any, kernel: tuple[int, ...], dilation: tuple[int, ...]
) -> tuple[tuple[int, int], ...]:
    """(left, right) padding per axis: "same" pads as PyTorch does (the odd one on the right)."""
    pads = []
    for axis in range(len(kernel)):
        if padding == "same":
            total = dilation[axis] * (kernel[axis] - 1)
            pads.append((total // 2, total - total // 2))
        elif padding == "valid":
            pads.append((0, 0))
        else:
            pads.append((padding[axis], padding[axis]))
    return tuple(pads)


class Conv(Layer):
    layout = "image"
    name = "conv"
    torch = "nn.Conv1d / nn.Conv2d / nn.Conv3d (by rank)"
    doc = "convolution over a signal, an image or a video"
    kind = "conv"
    args = (
        Arg("out", channels, "output channels, or `same`", required=True),
        Arg("kernel", positive_axes, "window size, an int or one per axis", required=True),
        Arg("stride", positive_axes, "step, an int or one per axis", 1),
        Arg(
            "padding",
            conv_padding,
            'zero padding, an int, one per axis, "same" or "valid"',
            0,
        ),
        Arg("dilation", positive_axes, "spacing of kernel taps", 1),
        Arg("groups", positive_int, "grouped convolution; divides in and out channels", 1),
        Arg("bias", boolean, "learn an additive bias", True),
        Arg("in", positive_int, "asserts the incoming channel count", default_text="inferred"),
    )
    symbolic_args = ("out", "kernel", "stride", "padding", "dilation", "groups")
    passed_args = ("bias",)
    per_axis = ("kernel", "stride", "padding", "dilation")
    imports = ("Conv1d", "Conv2d", "Conv3d")

    def arguments(self, module: Any) -> dict[str, Any] | None:
        if module.padding_mode != "zeros":
            return None
        padding = module.padding if isinstance(module.padding, str) else axes_of(module.padding)
        return {
            "out": module.out_channels,
            "kernel": axes_of(module.kernel_size),
            "stride": axes_of(module.stride),
            "padding": padding,
            "dilation": axes_of(module.dilation),
            "groups": module.groups,
            "bias": module.bias is not None,
        }

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        a = node.args
        axes = needs_spatial(node, shape)
        channels_in, channels_out = conv_channels(node, shape)
        kernel, stride, dilation, padding = a["kernel"], a["stride"], a["dilation"], a["padding"]
        if padding == "same" and any(s != 1 for s in stride):
            raise fail(
                SAME_PADDING,
                f'padding="same" needs stride 1, got stride {pair_text(stride)} '
                "(PyTorch refuses it for strided convolutions)",
                node.arg_spans.get("padding", node.span),
            )
        pads = conv_pads(padding, kernel, dilation)
        windows = tuple(
            Window(shape[1 + axis], kernel[axis], stride[axis], *pads[axis], dilation[axis])
            for axis in range(axes)
        )
        sizes, warnings = spatial(node, shape, windows, describe_window(kernel, stride, padding, dilation))
        weights = channels_out * (channels_in // a["groups"]) * math.prod(kernel)
        params = weights + (channels_out if a["bias"] else 0)
        return Outcome((channels_out, *sizes), params, weights * math.prod(sizes), warnings)

    def module(self, node: Shaped) -> Module:
        a = node.args
        padding = 0 if a["padding"] == "valid" else a["padding"]
        # One number where every axis has it, as PyTorch's own code writes `kernel_size=3`.
        return Module(
            f"nn.Conv{dims(node)}",
            (node.input[0], node.output[0]),
            {
                "kernel_size": axes_of(a["kernel"]),
                "stride": axes_of(a["stride"]),
                "padding": padding if isinstance(padding, str) else axes_of(padding),
                "dilation": axes_of(a["dilation"]),
                "groups": a["groups"],
                "bias": a["bias"],
            },
            {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True},
        )

    def describe(self, node: Shaped) -> str:
        a = node.args
        parts = [f"conv {size_text(a['kernel'])}", str(node.output[0])]
        if any(s != 1 for s in a["stride"]):
            parts.append(step_text(a["stride"]))
        if isinstance(a["padding"], str):
            parts.append(f"pad {a['padding']}")
        elif any(a["padding"]):
            parts.append(f"pad {pair_or_int(a['padding'])}")
        if any(d != 1 for d in a["dilation"]):
            parts.append(f"dilation {pair_or_int(a['dilation'])}")
        if a["groups"] != 1:
            parts.append(f"groups {a['groups']}")
        return ", ".join(parts)

    def field(self, node: Shaped) -> FieldRule:
        a = node.args
        pads = conv_pads(a["padding"], a["kernel"], a["dilation"])
        return Sliding(a["kernel"], a["stride"], tuple(left for left, _ in pads), a["dilation"])

    def symbolic_output(self, args: dict[str, Any], shape: tuple[Any, ...]) -> tuple[Any, ...]:
        channels_out = shape[0] if args["out"] == "same" else args["out"]
        if args["padding"] == "same":
            return (channels_out, *shape[1:])
        axes = range(len(shape) - 1)
        padding = (0,) * len(axes) if args["padding"] == "valid" else args["padding"]
        sizes = (
            window(
                shape[1 + axis],
                args["kernel"][axis],
                args["stride"][axis],
                padding[axis],
                args["dilation"][axis],
            )
            for axis in axes
        )
        return (channels_out, *sizes)

    def needs(self, args: dict[str, Any], shape: tuple[Any, ...], output: tuple[Any, ...]) -> tuple[Any, ...]:
        return (shape[0], output[0], *super().needs(args, shape, output))


_KERNEL = Arg("kernel", positive_axes, "window size, an int or one per axis", required=True)
_POOL_STRIDE = Arg("stride", positive_axes, "step; defaults to the kernel", default_text="kernel")
_POOL_PADDING = Arg(
    "padding",
    nonnegative_axes,
    "implicit -inf/zero padding, at most half the kernel",
    0,
)
_CEIL = Arg("ceil", boolean, "round the output size up (ceil_mode)", False)


class _Pool(Layer):
    layout = "image"
    kind = "pool"
    symbolic_args: ClassVar[tuple[str, ...]] = ("kernel", "stride", "padding")
    per_axis: ClassVar[tuple[str, ...]] = ("kernel", "stride", "padding")

    def dilation(self, node_args: dict[str, Any]) -> Any:
        return (1,) * len(node_args["kernel"])

    def fits(self, node: LayerNode, shape: Shape, kernel: tuple[int, ...]) -> None:
        """What the pool asks of its input beyond the window rule (nothing, but a 3-d average)."""

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        axes = needs_spatial(node, shape)
        a = node.args
        kernel, padding, ceil = a["kernel"], a["padding"], a["ceil"]
        stride = a["stride"] or kernel
        dilation = self.dilation(a)
        pool_padding(node, kernel, padding)
        self.fits(node, shape, kernel)
        windows = tuple(
            Window(
                shape[1 + axis],
                kernel[axis],
                stride[axis],
                padding[axis],
                padding[axis],
                dilation[axis],
                ceil,
            )
            for axis in range(axes)
        )
        sizes, warnings = spatial(
            node, shape, windows, describe_window(kernel, stride, padding, dilation, ceil)
        )
        return Outcome((shape[0], *sizes), 0, 0, warnings)

    def describe(self, node: Shaped) -> str:
        a = node.args
        stride = a["stride"] or a["kernel"]
        parts = [f"{node.op} {size_text(a['kernel'])}"]
        if stride != a["kernel"]:
            parts.append(step_text(stride))
        if any(a["padding"]):
            parts.append(f"pad {pair_or_int(a['padding'])}")
        if a["ceil"]:
            parts.append("ceil")
        return ", ".join(parts)

    def field(self, node: Shaped) -> FieldRule:
        a = node.args
        return Sliding(a["kernel"], a["stride"] or a["kernel"], a["padding"], self.dilation(a))

    def symbolic_output(self, args: dict[str, Any], shape: tuple[Any, ...]) -> tuple[Any, ...]:
        axes = range(len(shape) - 1)
        if args["ceil"]:
            return (shape[0], *(UNKNOWN for _ in axes))
        stride = args["stride"] or args["kernel"]
        dilation = self.dilation(args)
        return (
            shape[0],
            *(
                window(
                    shape[1 + axis], args["kernel"][axis], stride[axis], args["padding"][axis], dilation[axis]
                )
                for axis in axes
            ),
        )


class MaxPool(_Pool):
    name = "maxpool"
    torch = "nn.MaxPool1d / nn.MaxPool2d / nn.MaxPool3d (by rank)"
    doc = "max pooling"
    args = (
        _KERNEL,
        _POOL_STRIDE,
        _POOL_PADDING,
        Arg("dilation", positive_axes, "spacing of window taps", 1),
        _CEIL,
    )
    symbolic_args = ("kernel", "stride", "padding", "dilation")
    per_axis = ("kernel", "stride", "padding", "dilation")
    imports = ("MaxPool1d", "MaxPool2d", "MaxPool3d")
    calls = (
        "torch.nn.functional.max_pool1d",
        "torch.nn.functional.max_pool2d",
        "torch.nn.functional.max_pool3d",
    )

    def dilation(self, node_args: dict[str, Any]) -> Any:
        return node_args["dilation"]

    def arguments(self, module: Any) -> dict[str, Any] | None:
        if module.return_indices:
            return None
        return {**_pool_arguments(module), "dilation": axes_of(module.dilation)}

    def called(self, call: FunctionCall) -> Reading | None:
        if call.arg(6, "return_indices", False):
            return None
        found = _pool_called(call)
        found["dilation"] = axes_of(call.arg(4, "dilation", 1))
        found["ceil"] = call.arg(5, "ceil_mode", False)
        return [(self.name, found)]

    def module(self, node: Shaped) -> Module:
        a = node.args
        kernel = axes_of(a["kernel"])
        return Module(
            f"nn.MaxPool{dims(node)}",
            (kernel,),
            {
                "stride": axes_of(a["stride"] or kernel),
                "padding": axes_of(a["padding"]),
                "dilation": axes_of(a["dilation"]),
                "ceil_mode": a["ceil"],
            },
            {"stride": kernel, "padding": 0, "dilation": 1, "ceil_mode": False},
        )


class AvgPool(_Pool):
    name = "avgpool"
    torch = "nn.AvgPool1d / nn.AvgPool2d / nn.AvgPool3d (by rank)"
    doc = "average pooling"
    args = (
        _KERNEL,
        _POOL_STRIDE,
        _POOL_PADDING,
        _CEIL,
        Arg("count_include_pad", boolean, "count padding zeros in the average", True),
    )
    imports = ("AvgPool1d", "AvgPool2d", "AvgPool3d")
    calls = (
        "torch.nn.functional.avg_pool1d",
        "torch.nn.functional.avg_pool2d",
        "torch.nn.functional.avg_pool3d",
    )

    def fits(self, node: LayerNode, shape: Shape, kernel: tuple[int, ...]) -> None:
        # PyTorch's avg_pool3d (and only it: the 1d and 2d pools count the padding) refuses an
        # input smaller than the kernel on any axis, padded or not (pool3d_shape_check).
        small = [axis for axis in range(len(kernel)) if shape[1 + axis] < kernel[axis]]
        if len(kernel) == 3 and small:
            names = AXIS_NAMES[3]
            raise fail(
                EMPTY_OUTPUT,
                f"avgpool on a video needs each spatial size at least the kernel's, whatever the "
                f"padding (PyTorch's AvgPool3d): input {fmt(shape)}, kernel {pair_text(kernel)} → "
                + "; ".join(f"{names[axis]} {shape[1 + axis]} < {kernel[axis]}" for axis in small),
                node.span,
            )

    def arguments(self, module: Any) -> dict[str, Any] | None:
        if getattr(module, "divisor_override", None) is not None:  # AvgPool1d has none
            return None
        return {**_pool_arguments(module), "count_include_pad": module.count_include_pad}

    def called(self, call: FunctionCall) -> Reading | None:
        found = _pool_called(call)
        if call.arg(6, "divisor_override", None) is not None:
            return None
        found["ceil"] = call.arg(4, "ceil_mode", False)
        found["count_include_pad"] = call.arg(5, "count_include_pad", True)
        return [(self.name, found)]

    def module(self, node: Shaped) -> Module:
        a = node.args
        kernel = axes_of(a["kernel"])
        return Module(
            f"nn.AvgPool{dims(node)}",
            (kernel,),
            {
                "stride": axes_of(a["stride"] or kernel),
                "padding": axes_of(a["padding"]),
                "ceil_mode": a["ceil"],
                "count_include_pad": a["count_include_pad"],
            },
            {"stride": kernel, "padding": 0, "ceil_mode": False, "count_include_pad": True},
        )


def _pool_arguments(module: Any) -> dict[str, Any]:
    kernel = axes_of(module.kernel_size)
    stride = axes_of(module.stride) if module.stride else kernel
    found = {"kernel": kernel, "padding": axes_of(module.padding), "ceil": module.ceil_mode}
    return found if stride == kernel else {**found, "stride": stride}


def _pool_called(call: FunctionCall) -> dict[str, Any]:
    """`F.max_pool2d(x, kernel_size, stride, padding, …)`'s arguments the two pools share."""
    kernel = axes_of(call.arg(1, "kernel_size", None))
    stride = call.arg(2, "stride", None)
    found: dict[str, Any] = {"kernel": kernel, "padding": axes_of(call.arg(3, "padding", 0))}
    if stride and axes_of(stride) != kernel:
        found["stride"] = axes_of(stride)
    return found


class _AdaptivePool(Layer):
    layout = "image"
    kind = "pool"
    args = (Arg("size", positive_axes, "output size, an int or one per axis", required=True),)
    per_axis = ("size",)
    #: The module's class name without its rank: `AdaptiveAvgPool` (1d, 2d, 3d by the input).
    family: ClassVar[str]

    def arguments(self, module: Any) -> dict[str, Any] | None:
        size = module.output_size
        items = (size,) if isinstance(size, int) or size is None else tuple(size)
        return None if None in items else {"size": axes_of(items)}

    def called(self, call: FunctionCall) -> Reading | None:
        return [(self.name, {"size": axes_of(call.arg(1, "output_size", None))})]

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        needs_spatial(node, shape)
        return Outcome((shape[0], *node.args["size"]))

    def module(self, node: Shaped) -> Module:
        return Module(f"nn.{self.family}{dims(node)}", (axes_of(node.args["size"]),))

    def describe(self, node: Shaped) -> str:
        return f"{node.op} {size_text(node.args['size'])}"

    def field(self, node: Shaped) -> FieldRule:
        return ADAPTIVE

    def symbolic_output(self, args: dict[str, Any], shape: tuple[Any, ...]) -> tuple[Any, ...]:
        return (shape[0], *args["size"])


class AdaptiveAvgPool(_AdaptivePool):
    name = "adaptiveavgpool"
    family = "AdaptiveAvgPool"
    torch = "nn.AdaptiveAvgPool1d / nn.AdaptiveAvgPool2d / nn.AdaptiveAvgPool3d (by rank)"
    imports = ("AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d")
    calls = (
        "torch.nn.functional.adaptive_avg_pool1d",
        "torch.nn.functional.adaptive_avg_pool2d",
        "torch.nn.functional.adaptive_avg_pool3d",
    )
    doc = "average pooling to a fixed output size"


class AdaptiveMaxPool(_AdaptivePool):
    name = "adaptivemaxpool"
    family = "AdaptiveMaxPool"
    torch = "nn.AdaptiveMaxPool1d / nn.AdaptiveMaxPool2d / nn.AdaptiveMaxPool3d (by rank)"
    imports = ("AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d")
    calls = (
        "torch.nn.functional.adaptive_max_pool1d",
        "torch.nn.functional.adaptive_max_pool2d",
        "torch.nn.functional.adaptive_max_pool3d",
    )
    doc = "max pooling to a fixed output size"


LAYERS = (Conv, MaxPool, AvgPool, AdaptiveAvgPool, AdaptiveMaxPool)
