"""Layers of sequences of tokens, `[L, D]` per sample (L tokens of D features): learnt tokens put
before the sequence (`token`), a learnt position embedding added to it (`posembed`), multi-head
self-attention (`attention`), and the primitives that hand-written attention is made of: the
matrix product of two values (`matmul`), one position taken along an axis (`select`) and the mean
over axes (`mean`).

An image becomes tokens as torchvision's ViT makes them: a strided `conv`, then `view(D, -1)`
and `permute(1, 0)` (`x.reshape(n, D, h * w).permute(0, 2, 1)`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..codes import FACTOR, MATMUL, NARROW, RANK
from ..converters import (
    BadValue,
    any_int,
    boolean,
    choice,
    describe,
    nonnegative_axes,
    positive_axes,
    positive_int,
    positive_number,
    probability,
    tensor,
)
from ..sizes import Outcome, Shape, divides, fail, fmt, sample_axis
from .base import (
    WHOLE,
    Arg,
    Batched,
    FieldRule,
    Function,
    FunctionCall,
    Input,
    Layer,
    Member,
    Mixes,
    Module,
    NotSymbolic,
    Parameter,
    Reading,
    TensorArg,
    axes_of,
)
from .joins import _notes, value_text

if TYPE_CHECKING:
    from ..graph import Node as LayerNode
    from ..shapes import Shaped

#: How an image's positions become tokens, for the hints of a layer given an image.
_TO_TOKENS = "`view(C, -1) permute(1, 0)` makes each position of a [C, H, W] image a token of C features"


def needs_sequence(node: LayerNode, shape: Shape) -> None:
    """A sequence of tokens, `[L, D]`."""
    if len(shape) != 2:
        hint = f"; {_TO_TOKENS}" if len(shape) == 3 else ""
        raise fail(RANK, f"{node.op} needs a sequence of tokens [L, D], got {fmt(shape)}{hint}", node.span)


class Token(Layer):
    """ViT's class token: `torch.cat([class_token.expand(n, -1, -1), x], dim=1)`. The tokens are a
    bare parameter `[1, count, D]` of the module the statement stands in, under its name."""

    name = "token"
    torch = "nn.Parameter(torch.zeros(1, count, D)), put before the sequence"
    doc = "learnt tokens put before a sequence [L, D] (ViT's class token)"
    kind = "other"
    channel_axis = -1
    args = (Arg("count", positive_int, "how many tokens", 1),)
    symbolic_args = ("count",)

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        needs_sequence(node, shape)
        count = node.args["count"]
        return Outcome((shape[0] + count, shape[1]), count * shape[1])

    def parameter(self, node: Shaped) -> Parameter:
        return Parameter((1, node.args["count"], node.input[1]))

    def use(self, node: Shaped) -> Function:
        return Function("torch.cat", ([Batched(0), Input(0)],), {"dim": 1})

    def module(self, node: Shaped) -> Module:
        raise AssertionError("token is a parameter of its module, not a module (see `parameter`)")

    def describe(self, node: Shaped) -> str:
        count = node.args["count"]
        return "token" if count == 1 else f"{count} tokens"

    def field(self, node: Shaped) -> FieldRule:
        return WHOLE

    def symbolic_output(self, args: dict[str, Any], shape: tuple[Any, ...]) -> tuple[Any, ...]:
        return (shape[0] + args["count"], shape[1])

    def needs(self, args: dict[str, Any], shape: tuple[Any, ...], output: tuple[Any, ...]) -> tuple[Any, ...]:
        return (args["count"], shape[1])


class PosEmbed(Layer):
    """ViT's position embedding: `x + pos_embedding`, a bare parameter `[1, *sample]` of the module
    the statement stands in, under its name, drawn from N(0, std²) as torchvision draws it."""

    name = "posembed"
    torch = "nn.Parameter(torch.empty(1, *shape).normal_(std=std)), added"
    doc = "a learnt tensor of the sample's shape added to it (a position embedding)"
    kind = "other"
    args = (Arg("std", positive_number, "the standard deviation of its initial values", 0.02),)
    passed_args = ("std",)

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        if not shape:
            raise fail(RANK, f"posembed needs a sample with axes, got {fmt(shape)}", node.span)
        return Outcome(shape, math.prod(shape))

    def parameter(self, node: Shaped) -> Parameter:
        return Parameter((1, *node.input), std=node.args["std"])

    def use(self, node: Shaped) -> Function:
        return Function("+", (Input(0), Member()))

    def module(self, node: Shaped) -> Module:
        raise AssertionError("posembed is a parameter of its module, not a module (see `parameter`)")

    def describe(self, node: Shaped) -> str:
        return "position embedding"

    def needs(self, args: dict[str, Any], shape: tuple[Any, ...], output: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(shape)


class Attention(Layer):
    """`nn.MultiheadAttention(D, heads, batch_first=True)` used as self-attention, as torchvision's
    ViT uses it: `self_attention(x, x, x, need_weights=False)[0]`. Its `state_dict` is PyTorch's:
    `in_proj_weight` [3D, D], `in_proj_bias`, `out_proj.weight`, `out_proj.bias`."""

    name = "attention"
    torch = "nn.MultiheadAttention(D, heads, batch_first=True), on (x, x, x)"
    doc = "multi-head self-attention over a sequence [L, D]"
    kind = "linear"
    channel_axis = -1
    args = (
        Arg("heads", positive_int, "attention heads; divides D", required=True),
        Arg("dropout", probability, "dropout on the attention weights, in training", 0.0),
        Arg("bias", boolean, "learn the projections' biases", True),
    )
    symbolic_args = ("heads",)
    passed_args = ("dropout", "bias")
    imports = ("MultiheadAttention",)

    def arguments(self, module: Any) -> dict[str, Any] | None:
        if (
            not module.batch_first
            or not module._qkv_same_embed_dim
            or module.bias_k is not None
            or module.add_zero_attn
        ):
            return None
        return {"heads": module.num_heads, "dropout": module.dropout, "bias": module.in_proj_bias is not None}

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        needs_sequence(node, shape)
        length, features = shape
        divides(node, features, "features of each token", "heads")
        biases = 4 * features if node.args["bias"] else 0
        # q, k and v projections and the output's: 4·L·D²; the scores and their weighted sum: 2·L²·D
        macs = 4 * length * features * features + 2 * length * length * features
        return Outcome(shape, 4 * features * features + biases, macs)

    def module(self, node: Shaped) -> Module:
        a = node.args
        return Module(
            "nn.MultiheadAttention",
            (node.input[1], a["heads"]),
            {"dropout": a["dropout"], "bias": a["bias"], "batch_first": True},
            {"dropout": 0.0, "bias": True, "batch_first": False},
        )

    def use(self, node: Shaped) -> Function:
        return Function(Member(), (Input(0), Input(0), Input(0)), {"need_weights": False}, pick=0)

    def describe(self, node: Shaped) -> str:
        heads = node.args["heads"]
        return f"attention, {heads} head{'s' if heads != 1 else ''}"

    def field(self, node: Shaped) -> FieldRule:
        return Mixes((0, 1))

    def needs(self, args: dict[str, Any], shape: tuple[Any, ...], output: tuple[Any, ...]) -> tuple[Any, ...]:
        return (shape[1], args["heads"])


class MatMul(Layer):
    """`x @ other`, PyTorch's `torch.matmul` on two batches: each sample's last two axes are
    matrices, the axes before them broadcast (`[heads, L, d] @ [heads, d, L]`). The samples have one
    rank, so that the batch axes meet."""

    name = "matmul"
    torch = "x @ other"
    doc = "the matrix product of what it receives and another value"
    kind = "merge"
    member = False
    names_its_inputs = True
    reads_values = True
    args = (Arg("other", tensor, "the value it multiplies by, on the right", required=True),)

    def shape(self, node: Any, shape: Shape) -> Outcome:
        left, right = node.inputs
        other = right.shape
        for index, value in enumerate((left, right)):
            if len(value.shape) < 2:
                raise fail(
                    RANK,
                    f"matmul multiplies matrices, the last two axes of each sample: "
                    f"{value_text(value, index)} has {len(value.shape)}",
                    node.span,
                    *_notes(node.inputs),
                )
        if len(shape) != len(other):
            # The batch axis comes first in both: PyTorch would broadcast it against another axis.
            raise fail(
                MATMUL,
                f"matmul needs samples of one rank, so that the batch axes meet: "
                f"{value_text(left)}, {value_text(right, 1)}; `view` adds an axis of 1",
                node.span,
                *_notes(node.inputs),
            )
        if shape[-1] != other[-2]:
            raise fail(
                MATMUL,
                f"matmul needs the last axis of the left ({shape[-1]}) to equal the second to last of "
                f"the right ({other[-2]}): {value_text(left)}, {value_text(right, 1)}",
                node.span,
                *_notes(node.inputs),
            )
        leading = _broadcast(shape[:-2], other[:-2])
        if leading is None:
            raise fail(
                MATMUL,
                f"matmul cannot broadcast the axes before the matrices: {value_text(left)}, "
                f"{value_text(right, 1)}; each must be equal or 1",
                node.span,
                *_notes(node.inputs),
            )
        output = (*leading, shape[-2], other[-1])
        return Outcome(output, macs=math.prod(output) * shape[-1])

    def function(self, node: Shaped) -> Function:
        return Function("@", (Input(0), Input(1)))

    def describe(self, node: Shaped) -> str:
        return f"matmul {node.args['other'].name}"

    def field(self, node: Shaped) -> FieldRule:
        return WHOLE


def _broadcast(one: Shape, other: Shape) -> Shape | None:
    """PyTorch's broadcast of two shapes (aligned on the right), or None where they cannot."""
    size = max(len(one), len(other))
    one = (1,) * (size - len(one)) + tuple(one)
    other = (1,) * (size - len(other)) + tuple(other)
    result = []
    for a, b in zip(one, other, strict=True):
        if a != b and 1 not in (a, b):
            return None
        result.append(max(a, b) if 1 in (a, b) else a)
    return tuple(result)


class Select(Layer):
    """`x.select(dim, index)`, `x[:, 0]` for the class token: one position along an axis, the axis
    dropped."""

    name = "select"
    torch = "x.select(dim, index), x[:, index]"
    doc = "one position along an axis, which it drops (the class token: `select(0)`)"
    kind = "reshape"
    member = False
    args = (
        Arg("index", any_int, "the position, from 0 (negative counts from the end)", required=True),
        Arg("dim", any_int, "the axis, counting the batch as 0", 1),
    )

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        axis = sample_axis(node, shape, node.args["dim"])
        index, size = node.args["index"], shape[axis]
        if not -size <= index < size:
            raise fail(
                NARROW,
                f"select index {index} is past the {size} positions of axis {axis + 1} of {fmt(shape)}",
                node.arg_spans.get("index", node.span),
            )
        return Outcome(shape[:axis] + shape[axis + 1 :])

    calls = ("operator.getitem",)

    def called(self, call: FunctionCall) -> Reading | None:
        """`x[:, 0]` (ViT's class token), `x[:, :, 2]`: one position of an axis."""
        if len(call.tensors) != 1 or not isinstance(call.args[0], TensorArg):
            return None
        index = call.args[1] if isinstance(call.args[1], tuple) else (call.args[1],)
        whole = slice(None)
        picks = [(axis, i) for axis, i in enumerate(index) if i != whole and i is not Ellipsis]
        if len(index) < 2 or index[0] != whole or Ellipsis in index or len(picks) != 1:
            return None
        axis, position = picks[0]
        if not isinstance(position, int) or isinstance(position, bool):
            return None
        return [(self.name, {"index": position, "dim": axis})]

    def function(self, node: Shaped) -> Function:
        return Function("torch.select", (Input(0),), {"dim": node.args["dim"], "index": node.args["index"]})

    def describe(self, node: Shaped) -> str:
        return f"select {node.args['index']}" + (
            "" if node.args["dim"] == 1 else f" of dim {node.args['dim']}"
        )

    def field(self, node: Shaped) -> FieldRule:
        return WHOLE


def _dims(value: Any) -> tuple[int, ...]:
    """One axis or several."""
    items = value if isinstance(value, list | tuple) else [value]
    if items and all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        return tuple(items)
    raise BadValue(f"an axis or a list of axes, got {describe(value)}")


class Mean(Layer):
    """`x.mean(dim)`: the mean over tokens (`mean(1)` of `[L, D]`), or over several axes."""

    name = "mean"
    torch = "x.mean(dim, keepdim=…)"
    doc = "the mean over axes (the tokens' mean: `mean(1)`)"
    kind = "pool"
    member = False
    args = (
        Arg("dim", _dims, "the axis, or a list of axes, counting the batch as 0", (1,), default_text="1"),
        Arg("keepdim", boolean, "keep each axis, of size 1", False),
    )

    calls = ("Tensor.mean", "torch.mean")

    def called(self, call: FunctionCall) -> Reading | None:
        dims = call.arg(1, "dim", None)
        dims = [dims] if isinstance(dims, int) else dims
        rank = len(call.tensors[0].shape or ())
        keepdim = call.arg(2, "keepdim", False)
        if dims is None or any(d % rank == 0 for d in dims):
            return None  # over the batch
        if rank == 4 and sorted(d % 4 for d in dims) == [2, 3]:  # an image's global average pool
            pooled: Reading = [("adaptiveavgpool", {"size": (1, 1)})]
            return pooled if keepdim else [*pooled, ("flatten", {})]
        return [(self.name, {"dim": tuple(dims), "keepdim": keepdim})]

    def _axes(self, node: Any, shape: Shape) -> list[int]:
        axes = [sample_axis(node, shape, d) for d in node.args["dim"]]
        if len(set(axes)) != len(axes):
            raise fail(
                RANK,
                f"mean names an axis twice: dim={list(node.args['dim'])}",
                node.arg_spans.get("dim", node.span),
            )
        return axes

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        axes = self._axes(node, shape)
        if node.args["keepdim"]:
            return Outcome(tuple(1 if i in axes else s for i, s in enumerate(shape)))
        return Outcome(tuple(s for i, s in enumerate(shape) if i not in axes))

    def function(self, node: Shaped) -> Function:
        dim = node.args["dim"]
        return Function(
            "torch.mean",
            (Input(0),),
            {"dim": dim[0] if len(dim) == 1 else list(dim), "keepdim": node.args["keepdim"]},
            {"keepdim": False},
        )

    def describe(self, node: Shaped) -> str:
        dim = node.args["dim"]
        return f"mean of dim {dim[0] if len(dim) == 1 else list(dim)}"

    def field(self, node: Shaped) -> FieldRule:
        return WHOLE


def needs_channels_last(node: LayerNode, shape: Shape) -> None:
    """A channels-last map `[H, W, C]`, or a clip's `[T, H, W, C]`, as Swin's layers take them."""
    if len(shape) not in (3, 4):
        raise fail(
            RANK,
            f"{node.op} needs a channels-last map [H, W, C] or clip [T, H, W, C], got {fmt(shape)}",
            node.span,
        )


def _sizes(value: int | tuple[int, ...], axes: int) -> tuple[int, ...]:
    return (value,) * axes if isinstance(value, int) else tuple(value)


def _times(sizes: tuple[int, ...]) -> str:
    return "×".join(map(str, sizes))


#: The hidden width of Swin V2's continuous position bias MLP (torchvision's `cpb_mlp`).
_CPB_HIDDEN = 512


class WindowAttention(Layer):
    """torchvision's Swin `ShiftedWindowAttention` (and, with `v2`, `ShiftedWindowAttentionV2`) on
    a channels-last `[H, W, C]` map, or the video Swin's `ShiftedWindowAttention3d` on a clip's
    `[T, H, W, C]`: the map padded to whole windows, shifted cyclically by `shift`, self-attention
    within each window with a relative position bias, shifted back and cropped. Its `state_dict`
    is torchvision's (`qkv`, `proj`, `relative_position_bias_table` or V2's `logit_scale` and
    `cpb_mlp`, and the index buffers)."""

    name = "windowattention"
    torch = "torchvision's ShiftedWindowAttention(C, window, shift, heads), V2's with v2=true, 3d's on a clip"
    doc = "Swin's shifted-window self-attention on a channels-last [H, W, C] map or [T, H, W, C] clip"
    kind = "linear"
    layout = "map"
    channel_axis = -1
    args = (
        Arg("heads", positive_int, "attention heads; divides C", required=True),
        Arg("window", positive_axes, "window size, an int or one per axis ([h, w], [t, h, w])", 7),
        Arg("shift", nonnegative_axes, "cyclic shift of the windows, an int or one per axis", 0),
        Arg("dropout", probability, "dropout on the output, in training", 0.0),
        Arg("attention_dropout", probability, "dropout on the attention weights, in training", 0.0),
        Arg("qkv_bias", boolean, "learn the q, k and v projections' biases", True),
        Arg("proj_bias", boolean, "learn the output projection's bias", True),
        Arg("v2", boolean, "Swin V2's: cosine attention, a continuous position bias", False),
    )
    passed_args = ("dropout", "attention_dropout", "qkv_bias", "proj_bias", "v2")
    symbolic_args = ("heads", "window", "shift")
    per_axis = ("window", "shift")
    imports = ("ShiftedWindowAttention", "ShiftedWindowAttentionV2", "ShiftedWindowAttention3d")

    def arguments(self, module: Any) -> dict[str, Any] | None:
        return {
            "heads": module.num_heads,
            "window": axes_of(module.window_size),
            "shift": axes_of(module.shift_size),
            "dropout": module.dropout,
            "attention_dropout": module.attention_dropout,
            "qkv_bias": module.qkv.bias is not None,
            "proj_bias": module.proj.bias is not None,
            # V2's cosine attention scales its logits by a learnt parameter that V1 lacks
            "v2": hasattr(module, "logit_scale"),
        }

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        needs_channels_last(node, shape)
        *sizes, channels = shape
        a = node.args
        heads, window = a["heads"], a["window"]
        if a["v2"] and len(sizes) != 2:
            raise fail(RANK, f"windowattention v2=true takes a map [H, W, C], got {fmt(shape)}", node.span)
        divides(node, channels, "channels", "heads")
        if len(sizes) == 3:
            # a clip's window no larger than the clip (torchvision's `_get_window_and_shift_size`)
            window = tuple(min(w, size) for w, size in zip(window, sizes, strict=True))
        relative = math.prod(2 * w - 1 for w in a["window"])
        params = 4 * channels * channels + (3 * channels if a["qkv_bias"] else 0)
        params += channels if a["proj_bias"] else 0
        macs = 0
        if a["v2"]:
            params += heads + 3 * _CPB_HIDDEN + _CPB_HIDDEN * heads
            macs += relative * (2 * _CPB_HIDDEN + _CPB_HIDDEN * heads)
        else:
            params += relative * heads
        tokens = math.prod(-(-size // w) * w for size, w in zip(sizes, window, strict=True))
        # the projections: 4·T·C²; in each window of N tokens the scores and their sum, 2·N²·C
        macs += 4 * tokens * channels * channels + 2 * tokens * math.prod(window) * channels
        return Outcome(shape, params, macs)

    def module(self, node: Shaped) -> Module:
        a = node.args
        return Module(
            "archdsl.ShiftedWindowAttention",
            (node.input[-1], list(a["window"]), list(a["shift"]), a["heads"]),
            {
                "qkv_bias": a["qkv_bias"],
                "proj_bias": a["proj_bias"],
                "attention_dropout": a["attention_dropout"],
                "dropout": a["dropout"],
                "v2": a["v2"],
            },
            {"qkv_bias": True, "proj_bias": True, "attention_dropout": 0.0, "dropout": 0.0, "v2": False},
        )

    def describe(self, node: Shaped) -> str:
        a = node.args
        axes = max(len(node.input) - 1, 1)
        window, shift = _sizes(a["window"], axes), _sizes(a["shift"], axes)
        text = f"window attention {_times(window)}, {a['heads']} heads"
        if any(shift):
            text += f", shift {shift[0]}" if len(set(shift)) == 1 else f", shift {_times(shift)}"
        return text + (", v2" if a["v2"] else "")

    def field(self, node: Shaped) -> FieldRule:
        return WHOLE

    def needs(self, args: dict[str, Any], shape: tuple[Any, ...], output: tuple[Any, ...]) -> tuple[Any, ...]:
        axes = len(shape) - 1
        return (shape[-1], args["heads"], *_sizes(args["window"], axes), *_sizes(args["shift"], axes))


class PartitionAttention(Layer):
    """MaxViT's relative-position self-attention within partitions of a channels-last `[H, W, C]`
    map: `size`×`size` windows of neighbours (block attention), or with `grid` a `size`×`size` grid
    of positions spread evenly over the map (grid attention). torchvision's
    `RelativePositionalMultiHeadAttention` between its `PartitionAttentionLayer`'s partition and
    departition; its `state_dict` is torchvision's (`to_qkv`, `merge`,
    `relative_position_bias_table`, `relative_position_index`)."""

    name = "partitionattention"
    torch = "torchvision's MaxViT RelativePositionalMultiHeadAttention on [H, W, C], partitioned"
    doc = "MaxViT's block (window) or grid self-attention on a channels-last [H, W, C] map"
    kind = "linear"
    layout = "map"
    channel_axis = -1
    args = (
        Arg("heads", positive_int, "attention heads; divides C", required=True),
        Arg("size", positive_int, "the partition's side: size×size positions attend together", 7),
        Arg("grid", boolean, "a grid of positions spread over the map, not a window of neighbours", False),
        Arg(
            "scale_by",
            choice("head", "channels"),
            "keys scaled by 1/√ the head's width, or 1/√C (torchvision's MaxViT)",
            "head",
        ),
    )
    passed_args = ("grid", "scale_by")
    symbolic_args = ("heads", "size")
    #: archdsl's own runtime class, so that a network built from a spec imports back
    imports = ("PartitionAttention",)

    def arguments(self, module: Any) -> dict[str, Any] | None:
        return {
            "heads": module.num_heads,
            "size": module.size,
            "grid": module.grid,
            "scale_by": module.scale_by,
        }

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        if len(shape) != 3:
            raise fail(
                RANK, f"partitionattention needs a channels-last map [H, W, C], got {fmt(shape)}", node.span
            )
        height, width, channels = shape
        divides(node, channels, "channels", "heads")
        size = node.args["size"]
        for extent, axis in ((height, "height"), (width, "width")):
            if extent % size:
                raise fail(
                    FACTOR,
                    f"partitionattention size={size} must divide the map's {axis}, and {fmt(shape)} has "
                    f"{extent} ({extent} = {size}·{extent // size} + {extent % size})",
                    node.arg_spans.get("size", node.span),
                )
        params = 4 * channels * channels + 4 * channels + (2 * size - 1) ** 2 * node.args["heads"]
        # the projections: 4·T·C²; in each group of N = size² positions the scores and their sum
        tokens = height * width
        return Outcome(shape, params, 4 * tokens * channels * channels + 2 * tokens * size * size * channels)

    def module(self, node: Shaped) -> Module:
        a = node.args
        return Module(
            "archdsl.PartitionAttention",
            (node.input[-1], a["heads"], a["size"]),
            {"grid": a["grid"], "scale_by": a["scale_by"]},
            {"grid": False, "scale_by": "head"},
        )

    def describe(self, node: Shaped) -> str:
        a = node.args
        size = a["size"]
        return f"{'grid' if a['grid'] else 'block'} attention {size}×{size}, {a['heads']} heads"

    def field(self, node: Shaped) -> FieldRule:
        return WHOLE

    def needs(self, args: dict[str, Any], shape: tuple[Any, ...], output: tuple[Any, ...]) -> tuple[Any, ...]:
        return (shape[-1], args["heads"], args["size"])


class PatchMerging(Layer):
    """torchvision's Swin `PatchMerging` (and, with `v2`, `PatchMergingV2`) on a channels-last
    `[H, W, C]` map: each 2×2 neighbourhood gathered into 4C features (an odd size padded),
    `norm` (LayerNorm of 4C) and `reduction` (linear to 2C, no bias); V2 reduces, then normalises
    the 2C."""

    name = "patchmerging"
    torch = "torchvision's PatchMerging(C), PatchMergingV2 with v2=true"
    doc = "Swin's patch merging: [H, W, C] → [⌈H/2⌉, ⌈W/2⌉, 2C]"
    kind = "pool"
    layout = "map"
    channel_axis = -1
    args = (Arg("v2", boolean, "Swin V2's: reduce, then normalise", False),)
    passed_args = ("v2",)
    imports = ("PatchMerging", "PatchMergingV2")

    def arguments(self, module: Any) -> dict[str, Any] | None:
        # torchvision takes any `norm_layer`; the layer builds PyTorch's default LayerNorm, over the
        # 4C gathered features, or over the 2C reduced ones for V2
        norm, reduction = module.norm, module.reduction
        if type(norm).__name__ != "LayerNorm" or norm.eps != 1e-5 or not norm.elementwise_affine:
            return None
        if norm.bias is None or reduction.bias is not None:
            return None
        if tuple(norm.normalized_shape) not in ((reduction.in_features,), (reduction.out_features,)):
            return None
        return {"v2": tuple(norm.normalized_shape) == (reduction.out_features,)}

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        needs_channels_last(node, shape)
        *frames, height, width, channels = shape
        output = (*frames, -(-height // 2), -(-width // 2), 2 * channels)
        norm = 2 * (2 * channels if node.args["v2"] else 4 * channels)
        reduction = 4 * channels * 2 * channels
        return Outcome(output, reduction + norm, math.prod(output[:-1]) * reduction)

    def module(self, node: Shaped) -> Module:
        return Module("archdsl.PatchMerging", (node.input[-1],), {"v2": node.args["v2"]}, {"v2": False})

    def describe(self, node: Shaped) -> str:
        return "patch merging" + (" v2" if node.args["v2"] else "")

    def field(self, node: Shaped) -> FieldRule:
        return WHOLE

    def symbolic_output(self, args: dict[str, Any], shape: tuple[Any, ...]) -> tuple[Any, ...]:
        raise NotSymbolic("patch merging halves the size, rounding up")


LAYERS = (
    Token,
    PosEmbed,
    Attention,
    MatMul,
    Select,
    Mean,
    WindowAttention,
    PartitionAttention,
    PatchMerging,
)
