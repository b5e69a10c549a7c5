"""Layers that grow, resize and pad images: `convtranspose`, `upsample`, `resize`, `pad`, `padto`,
`pixelshuffle` and `pixelunshuffle`, each with PyTorch's own size rule and refusals.

`resize` and `padto` read a second value's size (U-Net's skip, FCN's input) where the network
runs, as `F.interpolate(x, size=skip.shape[2:])` does, so the network takes any input size; they
are functions of no module. The others are the modules PyTorch has for them.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ..codes import BAD_VALUE, EMPTY_OUTPUT, FACTOR, INEXACT, OUTPUT_PADDING, PAD_SIZE, RANK
from ..converters import (
    BadValue,
    TensorRef,
    boolean,
    channels,
    choice,
    describe,
    nonnegative_pair,
    number,
    positive_int,
    positive_pair,
    tensor,
)
from ..errors import Note, warning
from ..sizes import Outcome, Shape, conv_channels, fail, fmt, needs_image
from .base import (
    Arg,
    FieldRule,
    Function,
    FunctionCall,
    Input,
    Layer,
    Module,
    Reading,
    Resamples,
    SizeOf,
    Sliding,
    pair_of,
    pair_or_int,
    size_text,
)

if TYPE_CHECKING:
    from ..shapes import Shaped

_MODES = ("nearest", "bilinear", "bicubic")
#: How many input positions, along an axis, one output position of each mode reads.
_REACH = {"nearest": 1, "bilinear": 2, "bicubic": 4}


def _align_corners(node: Any) -> None:
    """PyTorch's refusal: `align_corners` means something only where values are interpolated."""
    if node.args["align_corners"] is not None and node.args["mode"] == "nearest":
        raise fail(
            BAD_VALUE,
            "align_corners can be set only with an interpolating mode (bilinear, bicubic), as PyTorch "
            'says; nearest has no corners to align: leave it out, or use mode="bilinear"',
            node.arg_spans.get("align_corners", node.span),
        )


def _interpolation(args: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {"mode": args["mode"]}
    if args["align_corners"] is not None:
        options["align_corners"] = args["align_corners"]
    return options


class ConvTranspose(Layer):
    layout = "image"
    name = "convtranspose"
    torch = "nn.ConvTranspose2d"
    doc = "2-D transposed convolution (a learnt upsampling)"
    kind = "conv"
    args = (
        Arg("out", channels, "output channels, or `same`", required=True),
        Arg("kernel", positive_pair, "window size, an int or [h, w]", required=True),
        Arg(
            "stride",
            positive_pair,
            "how far apart the input's pixels land in the output",
            (1, 1),
            default_text="1",
        ),
        Arg(
            "padding",
            nonnegative_pair,
            "rows and columns cut from each side of the output",
            (0, 0),
            default_text="0",
        ),
        Arg(
            "output_padding",
            nonnegative_pair,
            "rows and columns added on the bottom and right (below the stride or dilation)",
            (0, 0),
            default_text="0",
        ),
        Arg("dilation", positive_pair, "spacing of kernel taps", (1, 1), default_text="1"),
        Arg("groups", positive_int, "grouped convolution; divides in and out channels", 1),
        Arg("bias", boolean, "learn an additive bias", True),
        Arg("in", positive_int, "asserts the incoming channel count", default_text="inferred"),
    )
    passed_args = ("bias",)
    imports = ("ConvTranspose2d",)

    def arguments(self, module: Any) -> dict[str, Any] | None:
        if module.padding_mode != "zeros":
            return None
        return {
            "out": module.out_channels,
            "kernel": pair_of(module.kernel_size),
            "stride": pair_of(module.stride),
            "padding": pair_of(module.padding),
            "output_padding": pair_of(module.output_padding),
            "dilation": pair_of(module.dilation),
            "groups": module.groups,
            "bias": module.bias is not None,
        }

    def shape(self, node: Any, shape: Shape) -> Outcome:
        a = node.args
        needs_image(node, shape)
        channels_in, channels_out = conv_channels(node, shape)
        kernel, stride, padding, extra, dilation = (
            a["kernel"],
            a["stride"],
            a["padding"],
            a["output_padding"],
            a["dilation"],
        )
        for axis, name in ((0, "height"), (1, "width")):
            if extra[axis] >= stride[axis] and extra[axis] >= dilation[axis]:
                where = (
                    "" if extra == (extra[0], extra[0]) and stride == (stride[0], stride[0]) else f" ({name})"
                )
                raise fail(
                    OUTPUT_PADDING,
                    f"convtranspose output_padding {extra[axis]} must be smaller than its stride "
                    f"{stride[axis]} or its dilation {dilation[axis]}{where}, as PyTorch requires: it "
                    "only picks which of the sizes a stride could have come from",
                    node.arg_spans.get("output_padding", node.span),
                )
        sizes = []
        for axis, name in ((0, "height"), (1, "width")):
            size = shape[1 + axis]
            out = (
                (size - 1) * stride[axis]
                - 2 * padding[axis]
                + dilation[axis] * (kernel[axis] - 1)
                + extra[axis]
                + 1
            )
            if out < 1:
                formula = (
                    f"({size} − 1)·{stride[axis]} − 2·{padding[axis]} + {dilation[axis]}·({kernel[axis]} − 1)"
                    f" + {extra[axis]} + 1 = {out}"
                )
                raise fail(
                    EMPTY_OUTPUT,
                    f"convtranspose output is empty: input {fmt(shape)}, {name} {formula}: its padding cuts "
                    "more than the output has",
                    node.arg_spans.get("padding", node.span),
                )
            sizes.append(out)
        weights = channels_in * (channels_out // a["groups"]) * kernel[0] * kernel[1]
        params = weights + (channels_out if a["bias"] else 0)
        return Outcome((channels_out, sizes[0], sizes[1]), params, weights * shape[1] * shape[2])

    def module(self, node: Shaped) -> Module:
        a = node.args
        return Module(
            "nn.ConvTranspose2d",
            (node.input[0], node.output[0]),
            {
                "kernel_size": a["kernel"],
                "stride": a["stride"],
                "padding": a["padding"],
                "output_padding": a["output_padding"],
                "groups": a["groups"],
                "bias": a["bias"],
                "dilation": a["dilation"],
            },
            {
                "stride": (1, 1),
                "padding": (0, 0),
                "output_padding": (0, 0),
                "groups": 1,
                "bias": True,
                "dilation": (1, 1),
            },
        )

    def describe(self, node: Shaped) -> str:
        a = node.args
        parts = [f"convtranspose {size_text(a['kernel'])}", str(node.output[0])]
        if a["stride"] != (1, 1):
            parts.append("×" + pair_or_int(a["stride"]))
        if a["padding"] != (0, 0):
            parts.append(f"pad {pair_or_int(a['padding'])}")
        if a["output_padding"] != (0, 0):
            parts.append(f"out pad {pair_or_int(a['output_padding'])}")
        if a["dilation"] != (1, 1):
            parts.append(f"dilation {a['dilation'][0]}")
        if a["groups"] != 1:
            parts.append(f"groups {a['groups']}")
        return ", ".join(parts)

    def field(self, node: Shaped) -> FieldRule:
        a = node.args
        reach = tuple(-(-(a["dilation"][i] * (a["kernel"][i] - 1) + 1) // a["stride"][i]) for i in (0, 1))
        return Resamples(
            (Fraction(a["stride"][0]), Fraction(a["stride"][1])), (reach[0], reach[1]), exact=False
        )


def _scale(value: Any) -> tuple[float, float]:
    """A scale factor, or an [h, w] pair of them: positive numbers."""
    items = value if isinstance(value, list | tuple) else [value, value]
    if len(items) != 2:
        raise BadValue(f"a positive number or an [h, w] pair of them, got {describe(value)}")
    try:
        pair = (number(items[0]), number(items[1]))
    except BadValue:
        raise BadValue(f"a positive number or an [h, w] pair of them, got {describe(value)}") from None
    if min(pair) <= 0:
        raise BadValue(f"a positive number or an [h, w] pair of them, got {describe(value)}")
    return pair


def _scale_text(pair: tuple[float, float]) -> str:
    numbers = [f"{s:g}" for s in pair]
    return numbers[0] if numbers[0] == numbers[1] else f"{numbers[0]}×{numbers[1]}"


class Upsample(Layer):
    layout = "image"
    name = "upsample"
    torch = "nn.Upsample(scale_factor=…)"
    doc = "the image scaled by a factor (nearest, bilinear or bicubic)"
    kind = "pool"
    args = (
        Arg("scale", _scale, "the factor, or an [h, w] pair; the size is ⌊H · scale⌋", required=True),
        Arg(
            "mode", choice(*_MODES), '"nearest", "bilinear" or "bicubic"', "nearest", default_text='"nearest"'
        ),
        Arg(
            "align_corners",
            boolean,
            "bilinear and bicubic: the corner pixels' centres stay aligned",
            default_text="PyTorch's (false)",
        ),
    )
    imports = ("Upsample",)

    def arguments(self, module: Any) -> dict[str, Any] | None:
        if module.scale_factor is None or module.mode not in _MODES or module.recompute_scale_factor:
            return None
        scale = module.scale_factor
        pair = tuple(scale) if isinstance(scale, tuple | list) else (scale, scale)
        found: dict[str, Any] = {"scale": (float(pair[0]), float(pair[1])), "mode": module.mode}
        if module.align_corners is not None and module.mode != "nearest":
            found["align_corners"] = module.align_corners
        return found

    def shape(self, node: Any, shape: Shape) -> Outcome:
        needs_image(node, shape)
        _align_corners(node)
        scale = node.args["scale"]
        sizes = [math.floor(shape[1 + axis] * scale[axis]) for axis in (0, 1)]
        if min(sizes) < 1:
            raise fail(
                EMPTY_OUTPUT,
                f"upsample output is empty: input {fmt(shape)}, scale {_scale_text(scale)} → "
                f"⌊{shape[1]} · {scale[0]:g}⌋ = {sizes[0]}, ⌊{shape[2]} · {scale[1]:g}⌋ = {sizes[1]}",
                node.span,
            )
        warnings = []
        inexact = [axis for axis in (0, 1) if shape[1 + axis] * scale[axis] != sizes[axis]]
        if inexact:
            texts = [
                f"{shape[1 + axis]} · {scale[axis]:g} = {shape[1 + axis] * scale[axis]:g} → {sizes[axis]}"
                for axis in inexact
            ]
            if len(inexact) == 2 and texts[0] == texts[1]:
                text = texts[0]
            else:
                text = "; ".join(f"{('height', 'width')[a]} {x}" for a, x in zip(inexact, texts, strict=True))
            warnings.append(
                warning(
                    INEXACT,
                    f"upsample size is not whole: {text}; PyTorch floors it, leaving out what the "
                    "fraction of a row or column would have shown",
                    node.span,
                )
            )
        return Outcome((shape[0], sizes[0], sizes[1]), warnings=warnings)

    def module(self, node: Shaped) -> Module:
        a = node.args
        scale = a["scale"]
        whole = tuple(int(s) if float(s).is_integer() else s for s in scale)
        factor: Any = whole[0] if whole[0] == whole[1] else whole
        kwargs = {"scale_factor": factor, **_interpolation(a)}
        return Module("nn.Upsample", (), kwargs, {"mode": "nearest"})

    def describe(self, node: Shaped) -> str:
        a = node.args
        return f"upsample ×{_scale_text(a['scale'])}, {a['mode']}"

    def field(self, node: Shaped) -> FieldRule:
        a = node.args
        scale = (
            Fraction(a["scale"][0]).limit_denominator(1000),
            Fraction(a["scale"][1]).limit_denominator(1000),
        )
        exact = a["mode"] == "nearest" and all(s.denominator == 1 for s in scale)
        reach = _REACH[a["mode"]]
        return Resamples(scale, (reach, reach), exact=exact)


def _size_or_tensor(value: Any) -> Any:
    """`resize`'s target: a named value (its spatial size, read when the network runs) or an
    [h, w] size."""
    if isinstance(value, TensorRef):
        return value
    try:
        return positive_pair(value)
    except BadValue:
        raise BadValue(
            "a named value (a tensor whose height and width to take) or an [h, w] size, "
            f"got {describe(value)}"
        ) from None


class Resize(Layer):
    layout = "image"
    name = "resize"
    torch = "F.interpolate(x, size=to.shape[2:] or [h, w], mode=…)"
    doc = "the image resized to another value's height and width (or a given size)"
    kind = "pool"
    member = False
    reads_values = True
    args = (
        Arg(
            "to",
            _size_or_tensor,
            "a named value whose height and width to take, or an [h, w] size",
            required=True,
        ),
        Arg(
            "mode", choice(*_MODES), '"nearest", "bilinear" or "bicubic"', "nearest", default_text='"nearest"'
        ),
        Arg(
            "align_corners",
            boolean,
            "bilinear and bicubic: the corner pixels' centres stay aligned",
            default_text="PyTorch's (false)",
        ),
    )

    def shape(self, node: Any, shape: Shape) -> Outcome:
        needs_image(node, shape)
        _align_corners(node)
        target = node.args["to"]
        if isinstance(target, TensorRef):
            like = node.inputs[1].shape
            if len(like) < 2:
                raise fail(
                    RANK,
                    f"resize takes the height and width of {target.name}, which is {fmt(like)}: it has none",
                    node.arg_spans.get("to", node.span),
                )
            size = (like[-2], like[-1])
        else:
            size = target
        return Outcome((shape[0], size[0], size[1]))

    def function(self, node: Shaped) -> Function:
        a = node.args
        size: Any = SizeOf(1) if isinstance(a["to"], TensorRef) else a["to"]
        return Function("nn.functional.interpolate", (Input(0),), {"size": size, **_interpolation(a)})

    def describe(self, node: Shaped) -> str:
        a = node.args
        to = a["to"]
        target = to.name if isinstance(to, TensorRef) else size_text(to)
        return f"resize to {target}, {a['mode']}"

    def field(self, node: Shaped) -> FieldRule:
        a = node.args
        scale = tuple(Fraction(node.output[1 + i], node.input[1 + i]) for i in (0, 1))
        exact = a["mode"] == "nearest" and all(s.denominator == 1 for s in scale)
        reach = _REACH[a["mode"]]
        if any(s < 1 for s in scale):
            reach = max(reach, max(math.ceil(1 / s) for s in scale))
        return Resamples((scale[0], scale[1]), (reach, reach), exact=exact)


_PAD_MODES = ("zeros", "constant", "reflect", "replicate", "circular")
_PAD_MODULES = {
    "zeros": "nn.ZeroPad2d",
    "constant": "nn.ConstantPad2d",
    "reflect": "nn.ReflectionPad2d",
    "replicate": "nn.ReplicationPad2d",
    "circular": "nn.CircularPad2d",
}


def _sides(value: Any) -> tuple[int, int, int, int]:
    """Padding on each side: one integer for all four, or [left, right, top, bottom] (PyTorch's
    order); a negative number cuts instead."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value, value, value)
    if (
        isinstance(value, list | tuple)
        and len(value) == 4
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return (value[0], value[1], value[2], value[3])
    raise BadValue(f"an integer, or [left, right, top, bottom] (PyTorch's order), got {describe(value)}")


def _check_pads(node: Any, shape: Shape, pads: tuple[int, int, int, int], span: Any) -> list[Any]:
    """PyTorch's refusals for a padding mode, and W001 where a negative padding cuts pixels off."""
    mode = node.args["mode"]
    height, width = shape[1], shape[2]
    for side, pad, size in zip(
        ("left", "right", "top", "bottom"), pads, (width, width, height, height), strict=True
    ):
        if mode == "reflect" and pad >= size:
            raise fail(
                PAD_SIZE,
                f"reflect padding of {pad} on the {side} needs more than {pad} pixels to mirror, and the "
                f"input {fmt(shape)} has {size}: PyTorch refuses padding not smaller than the side",
                span,
            )
        if mode == "circular" and pad > size:
            raise fail(
                PAD_SIZE,
                f"circular padding of {pad} on the {side} wraps around the {size} pixels of {fmt(shape)} "
                "more than once, which PyTorch refuses",
                span,
            )
    out = (height + pads[2] + pads[3], width + pads[0] + pads[1])
    if min(out) < 1:
        raise fail(
            EMPTY_OUTPUT,
            f"{node.op} output is empty: input {fmt(shape)}, padding {list(pads)} (left, right, top, bottom) "
            f"→ [{shape[0]}, {out[0]}, {out[1]}]",
            span,
        )
    cut = [
        (side, -pad) for side, pad in zip(("left", "right", "top", "bottom"), pads, strict=True) if pad < 0
    ]
    if not cut:
        return []
    text = ", ".join(f"{n} from the {side}" for side, n in cut)
    return [
        warning(
            INEXACT,
            f"{node.op} cuts pixels off: {text} (a negative padding crops, as PyTorch's does)",
            span,
        )
    ]


class Pad(Layer):
    layout = "image"
    name = "pad"
    torch = "nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d, nn.CircularPad2d"
    doc = "padding around the image (a negative amount crops)"
    kind = "reshape"
    args = (
        Arg(
            "amount",
            _sides,
            "pixels on every side, or [left, right, top, bottom]; negative crops",
            required=True,
        ),
        Arg(
            "mode",
            choice(*_PAD_MODES),
            '"zeros", "constant", "reflect", "replicate" or "circular"',
            "zeros",
            default_text='"zeros"',
        ),
        Arg("value", number, 'the fill of mode="constant"', 0.0, default_text="0"),
    )
    imports = ("ZeroPad2d", "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "CircularPad2d")

    def arguments(self, module: Any) -> dict[str, Any] | None:
        mode = {
            "ZeroPad2d": "zeros",
            "ConstantPad2d": "constant",
            "ReflectionPad2d": "reflect",
            "ReplicationPad2d": "replicate",
            "CircularPad2d": "circular",
        }[type(module).__name__]
        found: dict[str, Any] = {"amount": tuple(module.padding), "mode": mode}
        if mode == "constant":
            found["value"] = float(module.value)
        return found

    def shape(self, node: Any, shape: Shape) -> Outcome:
        needs_image(node, shape)
        if node.args["value"] != 0.0 and node.args["mode"] != "constant":
            raise fail(
                BAD_VALUE,
                f'pad value={node.args["value"]:g} fills only with mode="constant"',
                node.arg_spans.get("value", node.span),
            )
        pads = node.args["amount"]
        warnings = _check_pads(node, shape, pads, node.arg_spans.get("amount", node.span))
        return Outcome(
            (shape[0], shape[1] + pads[2] + pads[3], shape[2] + pads[0] + pads[1]), warnings=warnings
        )

    def module(self, node: Shaped) -> Module:
        a = node.args
        pads = a["amount"]
        padding: Any = pads[0] if len(set(pads)) == 1 else pads
        if a["mode"] == "constant":
            return Module("nn.ConstantPad2d", (padding, a["value"]))
        return Module(_PAD_MODULES[a["mode"]], (padding,))

    def describe(self, node: Shaped) -> str:
        a = node.args
        pads = a["amount"]
        amount = str(pads[0]) if len(set(pads)) == 1 else "[" + ", ".join(map(str, pads)) + "]"
        return f"pad {amount}" + ("" if a["mode"] == "zeros" else f", {a['mode']}")

    def field(self, node: Shaped) -> FieldRule:
        pads = node.args["amount"]
        return Sliding((1, 1), (1, 1), (pads[2], pads[0]))


class PadTo(Layer):
    layout = "image"
    name = "padto"
    torch = "F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2]) to `like`'s size"
    doc = "padding (or cropping) around the image to another value's height and width, centred"
    kind = "reshape"
    member = False
    reads_values = True
    args = (
        Arg("like", tensor, "the named value whose height and width to reach", required=True),
        Arg(
            "mode",
            choice("zeros", "reflect", "replicate"),
            '"zeros", "reflect" or "replicate"',
            "zeros",
            default_text='"zeros"',
        ),
    )

    def shape(self, node: Any, shape: Shape) -> Outcome:
        needs_image(node, shape)
        like = node.inputs[1].shape
        span = node.arg_spans.get("like", node.span)
        if len(like) < 2:
            raise fail(
                RANK,
                f"padto takes the height and width of {node.args['like'].name}, {fmt(like)}: it has none",
                span,
            )
        dy, dx = like[-2] - shape[1], like[-1] - shape[2]
        pads = (dx // 2, dx - dx // 2, dy // 2, dy - dy // 2)
        warnings = _check_pads(node, shape, pads, span)
        return Outcome((shape[0], like[-2], like[-1]), warnings=warnings)

    def function(self, node: Shaped) -> Function:
        mode = {"zeros": "constant"}.get(node.args["mode"], node.args["mode"])
        return Function("archdsl.pad_to", (Input(0), Input(1)), {"mode": mode}, {"mode": "constant"})

    def describe(self, node: Shaped) -> str:
        return f"pad to {node.args['like'].name}"

    def field(self, node: Shaped) -> FieldRule:
        dy, dx = node.output[1] - node.input[1], node.output[2] - node.input[2]
        return Sliding((1, 1), (1, 1), (dy // 2, dx // 2))


class PixelShuffle(Layer):
    layout = "image"
    name = "pixelshuffle"
    torch = "nn.PixelShuffle"
    doc = "channels moved into space: [C·r², H, W] → [C, H·r, W·r]"
    kind = "reshape"
    args = (Arg("factor", positive_int, "r, how much larger the image becomes", required=True),)
    imports = ("PixelShuffle",)
    calls = ("torch.nn.functional.pixel_shuffle",)

    def arguments(self, module: Any) -> dict[str, Any] | None:
        return {"factor": module.upscale_factor}

    def called(self, call: FunctionCall) -> Reading | None:
        return [(self.name, {"factor": call.arg(1, "upscale_factor", None)})]

    def shape(self, node: Any, shape: Shape) -> Outcome:
        needs_image(node, shape)
        r = node.args["factor"]
        if shape[0] % (r * r):
            raise fail(
                FACTOR,
                f"pixelshuffle({r}) needs channels divisible by {r}² = {r * r}, and {fmt(shape)} has "
                f"{shape[0]} ({shape[0]} = {r * r}·{shape[0] // (r * r)} + {shape[0] % (r * r)})",
                node.arg_spans.get("factor", node.span),
            )
        return Outcome((shape[0] // (r * r), shape[1] * r, shape[2] * r))

    def module(self, node: Shaped) -> Module:
        return Module("nn.PixelShuffle", (node.args["factor"],))

    def describe(self, node: Shaped) -> str:
        return f"pixelshuffle ×{node.args['factor']}"

    def field(self, node: Shaped) -> FieldRule:
        r = Fraction(node.args["factor"])
        return Resamples((r, r), (1, 1), exact=True)


class PixelUnshuffle(Layer):
    layout = "image"
    name = "pixelunshuffle"
    torch = "nn.PixelUnshuffle"
    doc = "space moved into channels: [C, H, W] → [C·r², H/r, W/r]"
    kind = "reshape"
    args = (Arg("factor", positive_int, "r, how much smaller the image becomes", required=True),)
    imports = ("PixelUnshuffle",)
    calls = ("torch.nn.functional.pixel_unshuffle",)

    def arguments(self, module: Any) -> dict[str, Any] | None:
        return {"factor": module.downscale_factor}

    def called(self, call: FunctionCall) -> Reading | None:
        return [(self.name, {"factor": call.arg(1, "downscale_factor", None)})]

    def shape(self, node: Any, shape: Shape) -> Outcome:
        needs_image(node, shape)
        r = node.args["factor"]
        for axis, name in ((1, "height"), (2, "width")):
            if shape[axis] % r:
                raise fail(
                    FACTOR,
                    f"pixelunshuffle({r}) needs a {name} divisible by {r}, and {fmt(shape)} has "
                    f"{shape[axis]} ({shape[axis]} = {r}·{shape[axis] // r} + {shape[axis] % r})",
                    node.arg_spans.get("factor", node.span),
                    Note(message="PyTorch refuses it rather than drop the rest"),
                )
        return Outcome((shape[0] * r * r, shape[1] // r, shape[2] // r))

    def module(self, node: Shaped) -> Module:
        return Module("nn.PixelUnshuffle", (node.args["factor"],))

    def describe(self, node: Shaped) -> str:
        return f"pixelunshuffle /{node.args['factor']}"

    def field(self, node: Shaped) -> FieldRule:
        r = node.args["factor"]
        return Sliding((r, r), (r, r), (0, 0))


LAYERS = (ConvTranspose, Upsample, Resize, Pad, PadTo, PixelShuffle, PixelUnshuffle)
