"""Layers that slide a window over H and W, or pool to a fixed size: conv, maxpool, avgpool and
the adaptive pools."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..sizes import (
    POOL_PADDING,
    SAME_PADDING,
    Outcome,
    Shape,
    Window,
    conv_channels,
    describe_window,
    fail,
    needs_image,
    pair_text,
    spatial,
)
from ..symbolic import UNKNOWN, window
from ..values import boolean, channels, conv_padding, nonnegative_pair, positive_int, positive_pair
from .base import (
    ADAPTIVE,
    Arg,
    FieldRule,
    Layer,
    Module,
    Sliding,
    pair_of,
    pair_or_int,
    size_text,
    step_text,
)

if TYPE_CHECKING:
    from ..graph import Node as LayerNode
    from ..shapes import Shaped


def conv_pads(
    padding: Any, kernel: tuple[int, int], dilation: tuple[int, int]
) -> tuple[tuple[int, int], ...]:
    """(left, right) padding per axis: "same" pads as PyTorch does (the odd one on the right)."""
    pads = []
    for axis in (0, 1):
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
    torch = "nn.Conv2d"
    doc = "2-D convolution"
    kind = "conv"
    args = (
        Arg("out", channels, "output channels, or `same`", required=True),
        Arg("kernel", positive_pair, "window size, an int or [h, w]", required=True),
        Arg("stride", positive_pair, "step, an int or [h, w]", (1, 1), default_text="1"),
        Arg(
            "padding",
            conv_padding,
            'zero padding, an int, [h, w], "same" or "valid"',
            (0, 0),
            default_text="0",
        ),
        Arg("dilation", positive_pair, "spacing of kernel taps", (1, 1), default_text="1"),
        Arg("groups", positive_int, "grouped convolution; divides in and out channels", 1),
        Arg("bias", boolean, "learn an additive bias", True),
        Arg("in", positive_int, "asserts the incoming channel count", default_text="inferred"),
    )
    symbolic_args = ("out", "kernel", "stride", "padding", "dilation", "groups")
    passed_args = ("bias",)
    imports = ("Conv2d",)

    def arguments(self, module: Any) -> dict[str, Any] | None:
        if module.padding_mode != "zeros":
            return None
        padding = module.padding if isinstance(module.padding, str) else pair_of(module.padding)
        return {
            "out": module.out_channels,
            "kernel": pair_of(module.kernel_size),
            "stride": pair_of(module.stride),
            "padding": padding,
            "dilation": pair_of(module.dilation),
            "groups": module.groups,
            "bias": module.bias is not None,
        }

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        a = node.args
        channels_in, channels_out = conv_channels(node, shape)
        kernel, stride, dilation, padding = a["kernel"], a["stride"], a["dilation"], a["padding"]
        if padding == "same" and stride != (1, 1):
            raise fail(
                SAME_PADDING,
                f'padding="same" needs stride 1, got stride {pair_text(stride)} '
                "(PyTorch refuses it for strided convolutions)",
                node.arg_spans.get("padding", node.span),
            )
        pads = conv_pads(padding, kernel, dilation)
        windows = tuple(
            Window(shape[1 + axis], kernel[axis], stride[axis], *pads[axis], dilation[axis])
            for axis in (0, 1)
        )
        (height, width), warnings = spatial(
            node, shape, (windows[0], windows[1]), describe_window(kernel, stride, padding, dilation)
        )
        weights = channels_out * (channels_in // a["groups"]) * kernel[0] * kernel[1]
        params = weights + (channels_out if a["bias"] else 0)
        return Outcome((channels_out, height, width), params, weights * height * width, warnings)

    def module(self, node: Shaped) -> Module:
        a = node.args
        padding = (0, 0) if a["padding"] == "valid" else a["padding"]
        return Module(
            "nn.Conv2d",
            (node.input[0], node.output[0]),
            {
                "kernel_size": a["kernel"],
                "stride": a["stride"],
                "padding": padding,
                "dilation": a["dilation"],
                "groups": a["groups"],
                "bias": a["bias"],
            },
            {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1, "bias": True},
        )

    def describe(self, node: Shaped) -> str:
        a = node.args
        parts = [f"conv {size_text(a['kernel'])}", str(node.output[0])]
        if a["stride"] != (1, 1):
            parts.append(step_text(a["stride"]))
        if isinstance(a["padding"], str):
            parts.append(f"pad {a['padding']}")
        elif a["padding"] != (0, 0):
            parts.append(f"pad {pair_or_int(a['padding'])}")
        if a["dilation"] != (1, 1):
            parts.append(f"dilation {a['dilation'][0]}")
        if a["groups"] != 1:
            parts.append(f"groups {a['groups']}")
        return ", ".join(parts)

    def field(self, node: Shaped) -> FieldRule:
        a = node.args
        pads = conv_pads(a["padding"], a["kernel"], a["dilation"])
        return Sliding(a["kernel"], a["stride"], (pads[0][0], pads[1][0]), a["dilation"])

    def symbolic_output(self, args: dict[str, Any], shape: tuple[Any, ...]) -> tuple[Any, ...]:
        channels_out = shape[0] if args["out"] == "same" else args["out"]
        if args["padding"] == "same":
            return (channels_out, shape[1], shape[2])
        padding = (0, 0) if args["padding"] == "valid" else args["padding"]
        sizes = (
            window(
                shape[1 + axis],
                args["kernel"][axis],
                args["stride"][axis],
                padding[axis],
                args["dilation"][axis],
            )
            for axis in (0, 1)
        )
        return (channels_out, *sizes)

    def needs(self, args: dict[str, Any], shape: tuple[Any, ...], output: tuple[Any, ...]) -> tuple[Any, ...]:
        return (shape[0], output[0], *super().needs(args, shape, output))


_KERNEL = Arg("kernel", positive_pair, "window size, an int or [h, w]", required=True)
_POOL_STRIDE = Arg("stride", positive_pair, "step; defaults to the kernel", default_text="kernel")
_POOL_PADDING = Arg(
    "padding",
    nonnegative_pair,
    "implicit -inf/zero padding, at most half the kernel",
    (0, 0),
    default_text="0",
)
_CEIL = Arg("ceil", boolean, "round the output size up (ceil_mode)", False)


class _Pool(Layer):
    layout = "image"
    kind = "pool"
    symbolic_args: ClassVar[tuple[str, ...]] = ("kernel", "stride", "padding")

    def dilation(self, node_args: dict[str, Any]) -> Any:
        return (1, 1)

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        needs_image(node, shape)
        a = node.args
        kernel, padding, ceil = a["kernel"], a["padding"], a["ceil"]
        stride = a["stride"] or kernel
        dilation = self.dilation(a)
        for axis in (0, 1):
            if padding[axis] > kernel[axis] // 2:
                raise fail(
                    POOL_PADDING,
                    f"{node.op} padding {pair_text(padding)} is more than half the kernel "
                    f"{pair_text(kernel)}: PyTorch allows at most "
                    f"{pair_text((kernel[0] // 2, kernel[1] // 2))}",
                    node.arg_spans.get("padding", node.span),
                )
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
            for axis in (0, 1)
        )
        (height, width), warnings = spatial(
            node, shape, (windows[0], windows[1]), describe_window(kernel, stride, padding, dilation, ceil)
        )
        return Outcome((shape[0], height, width), 0, 0, warnings)

    def describe(self, node: Shaped) -> str:
        a = node.args
        stride = a["stride"] or a["kernel"]
        parts = [f"{node.op} {size_text(a['kernel'])}"]
        if stride != a["kernel"]:
            parts.append(step_text(stride))
        if a["padding"] != (0, 0):
            parts.append(f"pad {pair_or_int(a['padding'])}")
        if a["ceil"]:
            parts.append("ceil")
        return ", ".join(parts)

    def field(self, node: Shaped) -> FieldRule:
        a = node.args
        return Sliding(a["kernel"], a["stride"] or a["kernel"], a["padding"], self.dilation(a))

    def symbolic_output(self, args: dict[str, Any], shape: tuple[Any, ...]) -> tuple[Any, ...]:
        if args["ceil"]:
            return (shape[0], UNKNOWN, UNKNOWN)
        stride = args["stride"] or args["kernel"]
        dilation = self.dilation(args)
        return (
            shape[0],
            *(
                window(
                    shape[1 + axis], args["kernel"][axis], stride[axis], args["padding"][axis], dilation[axis]
                )
                for axis in (0, 1)
            ),
        )


class MaxPool(_Pool):
    name = "maxpool"
    torch = "nn.MaxPool2d"
    doc = "2-D max pooling"
    args = (
        _KERNEL,
        _POOL_STRIDE,
        _POOL_PADDING,
        Arg("dilation", positive_pair, "spacing of window taps", (1, 1), default_text="1"),
        _CEIL,
    )
    symbolic_args = ("kernel", "stride", "padding", "dilation")
    imports = ("MaxPool2d",)

    def dilation(self, node_args: dict[str, Any]) -> Any:
        return node_args["dilation"]

    def arguments(self, module: Any) -> dict[str, Any] | None:
        if module.return_indices:
            return None
        return {**_pool_arguments(module), "dilation": pair_of(module.dilation)}

    def module(self, node: Shaped) -> Module:
        a = node.args
        kernel = a["kernel"]
        return Module(
            "nn.MaxPool2d",
            (kernel,),
            {
                "stride": a["stride"] or kernel,
                "padding": a["padding"],
                "dilation": a["dilation"],
                "ceil_mode": a["ceil"],
            },
            {"stride": kernel, "padding": (0, 0), "dilation": (1, 1), "ceil_mode": False},
        )


class AvgPool(_Pool):
    name = "avgpool"
    torch = "nn.AvgPool2d"
    doc = "2-D average pooling"
    args = (
        _KERNEL,
        _POOL_STRIDE,
        _POOL_PADDING,
        _CEIL,
        Arg("count_include_pad", boolean, "count padding zeros in the average", True),
    )
    imports = ("AvgPool2d",)

    def arguments(self, module: Any) -> dict[str, Any] | None:
        if module.divisor_override is not None:
            return None
        return {**_pool_arguments(module), "count_include_pad": module.count_include_pad}

    def module(self, node: Shaped) -> Module:
        a = node.args
        kernel = a["kernel"]
        return Module(
            "nn.AvgPool2d",
            (kernel,),
            {
                "stride": a["stride"] or kernel,
                "padding": a["padding"],
                "ceil_mode": a["ceil"],
                "count_include_pad": a["count_include_pad"],
            },
            {"stride": kernel, "padding": (0, 0), "ceil_mode": False, "count_include_pad": True},
        )


def _pool_arguments(module: Any) -> dict[str, Any]:
    kernel = pair_of(module.kernel_size)
    stride = pair_of(module.stride) if module.stride else kernel
    found = {"kernel": kernel, "padding": pair_of(module.padding), "ceil": module.ceil_mode}
    return found if stride == kernel else {**found, "stride": stride}


class _AdaptivePool(Layer):
    layout = "image"
    kind = "pool"
    args = (Arg("size", positive_pair, "output size, an int or [h, w]", required=True),)

    def arguments(self, module: Any) -> dict[str, Any] | None:
        size = pair_of(module.output_size)
        return None if None in size else {"size": size}

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        needs_image(node, shape)
        height, width = node.args["size"]
        return Outcome((shape[0], height, width))

    def module(self, node: Shaped) -> Module:
        return Module(self.torch, (node.args["size"],))

    def describe(self, node: Shaped) -> str:
        return f"{node.op} {size_text(node.args['size'])}"

    def field(self, node: Shaped) -> FieldRule:
        return ADAPTIVE

    def symbolic_output(self, args: dict[str, Any], shape: tuple[Any, ...]) -> tuple[Any, ...]:
        return (shape[0], *args["size"])


class AdaptiveAvgPool(_AdaptivePool):
    name = "adaptiveavgpool"
    torch = "nn.AdaptiveAvgPool2d"
    imports = ("AdaptiveAvgPool2d",)
    doc = "average pooling to a fixed output size"


class AdaptiveMaxPool(_AdaptivePool):
    name = "adaptivemaxpool"
    torch = "nn.AdaptiveMaxPool2d"
    imports = ("AdaptiveMaxPool2d",)
    doc = "max pooling to a fixed output size"


LAYERS = (Conv, MaxPool, AvgPool, AdaptiveAvgPool, AdaptiveMaxPool)
