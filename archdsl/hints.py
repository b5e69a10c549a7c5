"""Likely fixes for sizes that do not meet: the padding that a window layer lacks.

Where two values must agree (a concat's branches, a residual's body and its input, or the body and
a 1×1 projection) and one of them lost pixels to a convolution or pool written without padding, the
numbers alone leave the user to find the layer and the amount. `padding_fix` replays a chain of
records along each spatial axis with every such layer given half its window, `padding=(k-1)/2`
(what keeps the size at stride 1, as PyTorch's `padding="same"` does for an odd window), and returns
the changes when they make the chain give what is wanted.

It suggests only what it can replay exactly: each window layer's recorded output must follow from
the rule ⌊(n + 2p − d(k − 1) − 1)/s⌋ + 1 (so transposed convolutions and `ceil=true` pools are left
out), and any other record in the chain must keep the spatial size (an upsampling, an adaptive pool
or a join that changes it ends the search with no hint). A wrong hint is worse than none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from .graph import Node, Shaped
from .layers.base import pair_or_int

Sizes = tuple[int, ...]


@dataclass(frozen=True)
class PaddingFix:
    """One window layer and the padding that would keep its size."""

    node: Node
    padding: Sizes

    def text(self, column: bool = False) -> str:
        span = self.node.span
        where = f"line {span.line}, column {span.column}" if column else f"line {span.line}"
        return f"`padding={pair_or_int(self.padding)}` on the {self.node.op} at {where}"


def padding_fix(
    records: Sequence[Shaped], start: Sizes, wanted: Callable[[Sizes], bool]
) -> tuple[list[PaddingFix], Sizes] | None:
    """The paddings that make the chain `records`, fed spatial sizes `start`, give sizes that
    `wanted` accepts, and those sizes; None when no padding of unpadded window layers does."""
    chain = _leaves(records)
    if chain is None or not chain:
        return None
    sizes = start
    fixes: list[PaddingFix] = []
    for record in chain:
        before, after = record.input[1:], record.output[1:]
        window = _window(record) if isinstance(record, Node) else None
        if window is None or not isinstance(record, Node):
            if before != after or len(sizes) != len(before):
                return None
            continue
        kernel, stride, padding, dilation = window
        if len(kernel) != len(sizes) or _slide(before, kernel, stride, padding, dilation) != after:
            return None
        # Half the window pads an odd window exactly; an even one cannot keep its size.
        better = tuple(
            max(p, d * (k - 1) // 2) if d * (k - 1) % 2 == 0 else p
            for k, p, d in zip(kernel, padding, dilation, strict=True)
        )
        if better != padding:
            fixes.append(PaddingFix(record, better))
        sizes = _slide(sizes, kernel, stride, better, dilation)
        if any(size < 1 for size in sizes):
            return None
    if not fixes or not wanted(sizes):
        return None
    return fixes, sizes


def describe(fixes: Sequence[PaddingFix]) -> str:
    """The fixes in a sentence; columns only where two share a line."""
    lines = [fix.node.span.line for fix in fixes]
    return " and ".join(fix.text(column=lines.count(fix.node.span.line) > 1) for fix in fixes)


def _leaves(records: Sequence[Shaped]) -> list[Shaped] | None:
    """The chain's records in order, composites opened where they are a plain sequence; None when
    the records do not follow one another (a graph inside a block)."""
    out: list[Shaped] = []
    for record in records:
        if isinstance(record, Node) or record.joins or not record.children:
            out.append(record)
        else:
            inner = _leaves(record.children)
            if inner is None:
                return None
            out.extend(inner)
    for previous, record in pairwise(out):
        if previous.output != record.input:
            return None
    return out


def _window(node: Node) -> tuple[Sizes, Sizes, Sizes, Sizes] | None:
    args = node.args
    if "output_padding" in args or args.get("ceil"):
        return None
    kernel: Any = args.get("kernel")
    if not _axes(kernel):
        return None
    found = tuple(args.get(name, (1,) * len(kernel)) for name in ("kernel", "stride", "padding", "dilation"))
    if not all(_axes(value) and len(value) == len(kernel) for value in found) or "padding" not in args:
        return None
    return found


def _axes(value: Any) -> bool:
    return isinstance(value, tuple) and bool(value) and all(type(v) is int for v in value)


def _slide(sizes: Sizes, kernel: Sizes, stride: Sizes, padding: Sizes, dilation: Sizes) -> Sizes:
    return tuple(
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, k, s, p, d in zip(sizes, kernel, stride, padding, dilation, strict=True)
    )
