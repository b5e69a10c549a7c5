"""Layers of multiscale vision transformers (torchvision's MViT), on a clip's tokens `[1 + t·h·w, D]`:
a class token first, then the clip's positions frame by frame, row by row. The token count does
not say the grid's sizes, so each layer is told them (`grid=[t, h, w]`, computed in the spec from
the clip's size) and checks that they hold the sequence (E120): the class token put before the
tokens with MViT's separable position embedding (`posencoding`), self-attention whose queries,
keys and values are pooled on the grid (`poolattention`) and max pooling on the grid
(`tokenpool`). The class token passes every pooling unchanged, as torchvision's does.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..codes import EMPTY_OUTPUT, TOKEN_GRID
from ..converters import (
    BadValue,
    boolean,
    describe,
    nonnegative_int,
    positive_int,
    positive_number,
    probability,
)
from ..sizes import Outcome, Shape, divides, fail, fmt, pair_text, pool_padding
from .base import WHOLE, Arg, FieldRule, Layer, Module, NotSymbolic
from .tokens import needs_sequence

if TYPE_CHECKING:
    from ..graph import Node as LayerNode
    from ..shapes import Shaped

Triple = tuple[int, int, int]


def _triple(item: Any, what: str) -> Any:
    """One size for the three axes of the grid, or one per axis, `[t, h, w]`."""

    def convert(value: Any) -> Triple:
        try:
            if isinstance(value, list | tuple):
                if len(value) == 3:
                    return tuple(item(v) for v in value)
            else:
                number = item(value)
                return (number, number, number)
        except BadValue:
            pass
        raise BadValue(f"{what}, or one per axis of the grid ([t, h, w]), got {describe(value)}")

    return convert


positive_triple = _triple(positive_int, "a positive integer")
nonnegative_triple = _triple(nonnegative_int, "an integer ≥ 0")


def grid(value: Any) -> Triple:
    """The clip's token grid, `[t, h, w]`."""
    if isinstance(value, list | tuple) and len(value) == 3:
        try:
            t, h, w = (positive_int(v) for v in value)
            return (t, h, w)
        except BadValue:
            pass
    raise BadValue(f"the token grid [t, h, w], three positive integers, got {describe(value)}")


_ONES = (1, 1, 1)
_GRID = Arg("grid", grid, "the tokens' grid [t, h, w] after the class token: 1 + t·h·w tokens", required=True)


def needs_grid(node: LayerNode, shape: Shape, class_token: bool = True) -> tuple[Triple, int]:
    """A sequence `[L, D]` whose L tokens are what `grid` holds: a class token and t·h·w more (or,
    without `class_token`, the t·h·w alone); returns the grid and D."""
    needs_sequence(node, shape)
    t, h, w = node.args["grid"]
    expected = class_token + t * h * w
    counted = f"{'1 + ' if class_token else ''}{t}·{h}·{w} = {expected}"
    what = "a class token and the grid's positions" if class_token else "the grid's positions"
    if shape[0] != expected:
        raise fail(
            TOKEN_GRID,
            f"{node.op} grid [{t}, {h}, {w}] holds {counted} tokens ({what}), but it receives "
            f"{shape[0]}: {fmt(shape)}",
            node.arg_spans.get("grid", node.span),
        )
    return (t, h, w), shape[1]


def pooled(
    node: LayerNode, sizes: Triple, kernel: Triple, stride: Triple, padding: Triple, arg: str
) -> Triple:
    """The grid a window of `kernel` leaves, PyTorch's rule on each axis: ⌊(n + 2p − k) / s⌋ + 1."""
    out = tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(sizes, kernel, stride, padding, strict=True))
    if min(out) < 1:
        raise fail(
            EMPTY_OUTPUT,
            f"{node.op} {arg} {pair_text(kernel)} (padding {pair_text(padding)}) does not fit the grid "
            f"{list(sizes)}: it leaves {list(out)}",
            node.arg_spans.get(arg, node.span),
        )
    return (out[0], out[1], out[2])


class PosEncoding(Layer):
    """torchvision's MViT `PositionalEncoding`: a learnt class token `class_token` [D] put before
    the clip's tokens, and, with `embed`, MViT V1's separable position embedding added: one row per
    position of a frame (`spatial_pos` [h·w, D]), one per frame (`temporal_pos` [t, D]) and one for
    the class token (`class_pos` [D])."""

    name = "posencoding"
    torch = "torchvision's MViT PositionalEncoding(D, (h, w), t, rel_pos_embed=not embed)"
    doc = "MViT's class token put before a clip's tokens [t·h·w, D], and its separable position embedding"
    kind = "other"
    channel_axis = -1
    args = (
        Arg("grid", grid, "the grid [t, h, w] of the tokens it receives: t·h·w tokens", required=True),
        Arg(
            "embed",
            boolean,
            "add a learnt position embedding, one per frame and one per frame's position",
            True,
        ),
    )
    passed_args = ("embed",)

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        (t, h, w), features = needs_grid(node, shape, class_token=False)
        params = features + ((h * w + t + 1) * features if node.args["embed"] else 0)
        return Outcome((shape[0] + 1, features), params)

    def module(self, node: Shaped) -> Module:
        a = node.args
        return Module(
            "archdsl.PositionalEncoding",
            (node.input[-1], list(a["grid"])),
            {"embed": a["embed"]},
            {"embed": True},
        )

    def describe(self, node: Shaped) -> str:
        return "class token, position embedding" if node.args["embed"] else "class token"

    def field(self, node: Shaped) -> FieldRule:
        return WHOLE

    def symbolic_output(self, args: dict[str, Any], shape: tuple[Any, ...]) -> tuple[Any, ...]:
        raise NotSymbolic("posencoding is made for one grid")


class PoolAttention(Layer):
    """torchvision's MViT `MultiscaleAttention`: multi-head self-attention whose queries, keys and
    values are each pooled on the token grid by a depthwise `Conv3d` (no bias, padding half the
    kernel) and a LayerNorm of the head's features, the class token passed through; with
    `rel_pos`, MViT V2's decomposed relative position embedding added to the scores; with
    `residual_pool`, the pooled queries added to the output (the class token's excluded). Its
    `state_dict` is torchvision's: `qkv`, `project.0`, `pool_q.pool`, `pool_q.norm_act.0` (and
    `pool_k`, `pool_v`), `rel_pos_h`, `rel_pos_w`, `rel_pos_t`."""

    name = "poolattention"
    #: torchvision's takes the token grid beside the tokens
    runs_alone = False
    torch = "torchvision's MViT MultiscaleAttention(grid, D, dim, heads, kernel_q, kernel_kv, …)"
    doc = "MViT's attention with pooled queries, keys and values on a clip's tokens [1 + t·h·w, D]"
    kind = "linear"
    channel_axis = -1
    args = (
        Arg("heads", positive_int, "attention heads; divides dim", required=True),
        Arg("dim", positive_int, "the output's features, and the attention's", default_text="D"),
        _GRID,
        Arg(
            "kernel_q",
            positive_triple,
            "the queries' pooling window, an int or [t, h, w]; 1: none",
            _ONES,
            default_text="1",
        ),
        Arg(
            "stride_q",
            positive_triple,
            "the queries' pooling step, an int or [t, h, w]",
            _ONES,
            default_text="1",
        ),
        Arg(
            "kernel_kv",
            positive_triple,
            "the keys' and values' pooling window; 1: none",
            _ONES,
            default_text="1",
        ),
        Arg("stride_kv", positive_triple, "the keys' and values' pooling step", _ONES, default_text="1"),
        Arg("residual_pool", boolean, "add the pooled queries to the output (MViT V2)", False),
        Arg(
            "rel_pos", boolean, "add a decomposed relative position embedding to the scores (MViT V2)", False
        ),
        Arg("dropout", probability, "dropout on the output, in training", 0.0),
        Arg("eps", positive_number, "the pooling norms' epsilon", 1e-5, default_text="1e-5"),
    )
    passed_args = ("residual_pool", "rel_pos", "dropout", "eps")

    @staticmethod
    def pools(kernel: Triple, stride: Triple) -> bool:
        """torchvision pools where the window or the step is more than one position."""
        return math.prod(kernel) > 1 or math.prod(stride) > 1

    def grids(self, node: LayerNode, sizes: Triple) -> tuple[Triple, Triple]:
        """The queries' grid and the keys' (and values')."""
        a = node.args
        grids = []
        for which in ("q", "kv"):
            kernel, stride = a[f"kernel_{which}"], a[f"stride_{which}"]
            padding: Triple = tuple(k // 2 for k in kernel)
            pools = self.pools(kernel, stride)
            grids.append(pooled(node, sizes, kernel, stride, padding, f"kernel_{which}") if pools else sizes)
        return grids[0], grids[1]

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        sizes, features = needs_grid(node, shape)
        a = node.args
        dim = a["dim"] or features
        divides(node, dim, "features of its output", "heads")
        head = dim // a["heads"]
        q_grid, kv_grid = self.grids(node, sizes)
        queries, keys = math.prod(q_grid), math.prod(kv_grid)
        params = features * 3 * dim + 3 * dim + dim * dim + dim
        # the pools: depthwise, of the head's features, each with a LayerNorm
        macs = shape[0] * features * 3 * dim + (1 + queries) * dim * dim
        for which, count, cells in (("q", 1, queries), ("kv", 2, keys)):
            kernel = a[f"kernel_{which}"]
            if self.pools(kernel, a[f"stride_{which}"]):
                params += count * (head * math.prod(kernel) + 2 * head)
                macs += count * dim * cells * math.prod(kernel)
        # the scores and their weighted sum, each head's: 2·Lq·Lk·dim
        macs += 2 * (1 + queries) * (1 + keys) * dim
        if a["rel_pos"]:
            # torchvision's sizes: the grid's larger side over the stride along h
            side = max(sizes[1:])
            rows = max(side // a["stride_q"][1], side // a["stride_kv"][1])
            if rows < 1:
                raise fail(
                    EMPTY_OUTPUT,
                    f"poolattention rel_pos=true sizes its tables by the grid's larger side over the "
                    f"strides along h, 2·max({side} // {a['stride_q'][1]}, "
                    f"{side} // {a['stride_kv'][1]}) − 1: a side of {side} leaves none",
                    node.arg_spans.get("rel_pos", node.span),
                )
            spatial = 2 * rows - 1
            params += (2 * spatial + 2 * sizes[0] - 1) * head
            macs += queries * sum(kv_grid) * dim
        return Outcome((1 + queries, dim), params, macs)

    def module(self, node: Shaped) -> Module:
        a = node.args
        return Module(
            "archdsl.MultiscaleAttention",
            (
                node.input[-1],
                node.output[-1],
                a["heads"],
                list(a["grid"]),
                list(a["kernel_q"]),
                list(a["stride_q"]),
                list(a["kernel_kv"]),
                list(a["stride_kv"]),
            ),
            {
                "residual_pool": a["residual_pool"],
                "rel_pos": a["rel_pos"],
                "dropout": a["dropout"],
                "eps": a["eps"],
            },
            {"residual_pool": False, "rel_pos": False, "dropout": 0.0, "eps": 1e-5},
        )

    def describe(self, node: Shaped) -> str:
        a = node.args
        text = f"pooling attention, {a['heads']} head{'s' if a['heads'] != 1 else ''}"
        for which in ("q", "kv"):
            stride = a[f"stride_{which}"]
            if math.prod(stride) > 1:
                text += f", {which} /{_times(stride)}"
        return text + (", rel pos" if a["rel_pos"] else "")

    def field(self, node: Shaped) -> FieldRule:
        return WHOLE

    def symbolic_output(self, args: dict[str, Any], shape: tuple[Any, ...]) -> tuple[Any, ...]:
        raise NotSymbolic("poolattention is made for one grid")


def _times(sizes: tuple[int, ...]) -> str:
    return str(sizes[0]) if len(set(sizes)) == 1 else "×".join(map(str, sizes))


class TokenPool(Layer):
    """torchvision's MViT `Pool` around an `nn.MaxPool3d` (a block's `pool_skip`): max pooling of
    the tokens on their grid, the class token passed through. The pooling is the module's `pool`,
    as torchvision's is."""

    name = "tokenpool"
    #: torchvision's takes the token grid beside the tokens
    runs_alone = False
    torch = "torchvision's MViT Pool(nn.MaxPool3d(kernel, stride, padding), None)"
    doc = "max pooling of a clip's tokens [1 + t·h·w, D] on their grid, the class token kept"
    kind = "pool"
    channel_axis = -1
    args = (
        Arg("kernel", positive_triple, "window size, an int or [t, h, w]", required=True),
        Arg("stride", positive_triple, "step; defaults to the kernel", default_text="kernel"),
        Arg(
            "padding",
            nonnegative_triple,
            "implicit -inf padding, at most half the kernel",
            (0, 0, 0),
            default_text="0",
        ),
        _GRID,
    )

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        sizes, features = needs_grid(node, shape)
        a = node.args
        kernel, padding = a["kernel"], a["padding"]
        pool_padding(node, kernel, padding)
        out = pooled(node, sizes, kernel, a["stride"] or kernel, padding, "kernel")
        return Outcome((1 + math.prod(out), features))

    def module(self, node: Shaped) -> Module:
        a = node.args
        return Module(
            "archdsl.TokenPool",
            (list(a["kernel"]), list(a["stride"] or a["kernel"]), list(a["padding"]), list(a["grid"])),
        )

    def describe(self, node: Shaped) -> str:
        a = node.args
        stride = a["stride"] or a["kernel"]
        return f"token maxpool {_times(a['kernel'])}" + (
            f", /{_times(stride)}" if math.prod(stride) > 1 else ""
        )

    def field(self, node: Shaped) -> FieldRule:
        return WHOLE

    def symbolic_output(self, args: dict[str, Any], shape: tuple[Any, ...]) -> tuple[Any, ...]:
        raise NotSymbolic("tokenpool is made for one grid")


LAYERS = (PosEncoding, PoolAttention, TokenPool)
