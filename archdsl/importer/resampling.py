"""Sizes read from the graph: `F.interpolate` and `F.pad` as `upsample`, `resize`, `pad` or
`padto`, their size arithmetic followed at the traced shapes and tried at others to tell a size
taken from another tensor (`resize(y)`, `padto(y)`) from a fixed one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .nodes import _SHAPE_QUERIES, _arg, _is_one_tensor, _is_tensor

if TYPE_CHECKING:
    from torch import fx


def _tidy(op: str, args: dict[str, Any]) -> dict[str, Any]:
    """Arguments as a person writes them: `upsample(2)`, not `upsample(2.0)`; `pad(1)` for the
    same padding on every side."""
    found = dict(args)
    scale = found.get("scale")
    if op == "upsample" and isinstance(scale, tuple) and all(float(s).is_integer() for s in scale):
        found["scale"] = tuple(int(s) for s in scale)
    amount = found.get("amount")
    if op == "pad" and isinstance(amount, tuple) and len(set(amount)) == 1:
        found["amount"] = amount[0]
    return found


class _Unknown(Exception):
    """Size arithmetic this reader does not follow."""


def _size_leaves(value: Any) -> list[fx.Node]:
    """The tensors whose size an argument is computed from (`y.shape[-2:]`, `x2.size()[2] -
    x1.size()[2]`), or raises `_Unknown` where it reads a tensor's values."""
    from torch import fx

    found: list[fx.Node] = []

    def visit(item: Any) -> None:
        if isinstance(item, fx.Node):
            if _is_tensor(item):
                raise _Unknown
            query = item.op == "call_method" and item.target in _SHAPE_QUERIES
            attribute = item.target is getattr and len(item.args) > 1 and item.args[1] in _SHAPE_QUERIES
            head: Any = item.args[0]
            if (query or attribute) and _is_one_tensor(head):
                if head not in found:
                    found.append(head)
                return
            for arg in (*item.args, *item.kwargs.values()):
                visit(arg)
        elif isinstance(item, (list, tuple)):
            for arg in item:
                visit(arg)
        elif isinstance(item, dict):
            for arg in item.values():
                visit(arg)

    visit(value)
    return found


def _evaluate(value: Any, shapes: dict[fx.Node, tuple[int, ...]]) -> Any:
    """An argument's value when the tensors have `shapes` (batch axis first)."""
    from torch import fx

    if isinstance(value, (list, tuple)):
        return type(value)(_evaluate(v, shapes) for v in value)
    if not isinstance(value, fx.Node):
        return value
    args = [_evaluate(a, shapes) if not (isinstance(a, fx.Node) and _is_tensor(a)) else a for a in value.args]
    known = bool(args) and isinstance(args[0], fx.Node) and args[0] in shapes
    if value.op == "call_method" and value.target in ("size", "shape") and known:
        shape = shapes[args[0]]
        dim: Any = value.kwargs.get("dim", args[1] if len(args) > 1 else None)
        return tuple(shape) if dim is None else shape[dim]
    if value.op == "call_method" and value.target in ("dim", "ndimension") and known:
        return len(shapes[args[0]])
    if value.target is getattr and known:
        if args[1] == "shape":
            return tuple(shapes[args[0]])
        if args[1] == "ndim":
            return len(shapes[args[0]])
    if value.op == "call_function" and (
        getattr(value.target, "__module__", None) in ("_operator", "operator")
        or value.target in (int, float, round, abs, min, max, math.floor, math.ceil)
    ):
        function: Any = value.target
        return function(*args)
    kwargs = {k: _evaluate(v, shapes) for k, v in value.kwargs.items()}
    if value.op == "call_function" and not _is_tensor(value) and not _has_node([args, list(kwargs.values())]):
        # a function of sizes alone (torchvision's `_compute_pad_size_3d`, kept whole by fx.wrap),
        # the user's: whatever it raises at a size tried means the size is not known
        try:
            return value.target(*args, **kwargs)  # type: ignore[operator]
        except Exception:
            raise _Unknown from None
    raise _Unknown


def _has_node(value: Any) -> bool:
    from torch import fx

    if isinstance(value, (list, tuple)):
        return any(_has_node(v) for v in value)
    if isinstance(value, dict):
        return any(_has_node(v) for v in value.values())
    return isinstance(value, fx.Node)


def _resampled(node: fx.Node) -> Any:
    """`F.interpolate` and `F.pad` as the language writes them: (op, the tensor whose size it
    takes or None, arguments); `()` where it does nothing at this input (a padding of 0); a
    refusal's reason (text); or None for any other op."""
    import torch

    F = torch.nn.functional
    target = node.target if node.op == "call_function" else None
    if target in (F.interpolate, F.upsample):
        return _interpolated(node)
    if target is F.pad:
        return _padded(node)
    return None


def _shapes(node: fx.Node) -> dict[fx.Node, tuple[int, ...]]:
    """The traced shapes of the tensors a size argument reads, batch axis first."""
    found: dict[fx.Node, tuple[int, ...]] = {}
    for arg in (*node.args[1:], *node.kwargs.values()):
        try:
            leaves = _size_leaves(arg)
        except _Unknown:
            continue
        for leaf in leaves:
            found[leaf] = tuple(leaf.meta["tensor_meta"].shape)
    return found


#: (height, width) of the input, (height, width) of the other tensor: sizes a size rule is tried at
_TRIALS = ((5, 7, 5, 7), (5, 7, 6, 9), (6, 4, 9, 5), (9, 8, 11, 13), (4, 4, 3, 2), (8, 6, 8, 7))


def _at(shape: tuple[int, ...], height: int, width: int) -> tuple[int, ...]:
    return (*shape[:-2], height, width)


def _interpolated(node: fx.Node) -> Any:
    names = ("input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias")
    given = {name: _arg(node, i, name, None) for i, name in enumerate(names)}
    mode = given["mode"] or "nearest"
    source: Any = node.args[0]
    if len(source.meta["tensor_meta"].shape) != 4:
        return ": the language resizes images, [C, H, W]"
    if mode not in ("nearest", "bilinear", "bicubic") or given["antialias"]:
        return (
            f' with mode="{mode}"'
            + (" and antialias" if given["antialias"] else "")
            + (": the language resizes by nearest, bilinear or bicubic interpolation")
        )
    options: dict[str, Any] = {"mode": mode}
    if given["align_corners"] is not None and mode != "nearest":
        options["align_corners"] = bool(given["align_corners"])
    size, scale = given["size"], given["scale_factor"]
    if size is None:
        if given["recompute_scale_factor"]:
            return " with recompute_scale_factor=True: `upsample` keeps its scale"
        try:
            factor = _evaluate(scale, _shapes(node))
        except _Unknown:
            return ": its scale is computed from tensors' values"
        pair = tuple(factor) if isinstance(factor, (list, tuple)) else (factor, factor)
        return "upsample", None, {"scale": (float(pair[0]), float(pair[1])), **options}
    try:
        leaves = _size_leaves(size)
        shapes = _shapes(node)
        traced = _evaluate(size, shapes)
    except _Unknown:
        return ": its size is computed from tensors' values"
    traced = tuple(traced) if isinstance(traced, (list, tuple)) else (traced, traced)
    others = [leaf for leaf in leaves if leaf is not source]
    if len(others) == 1 and len(shapes[others[0]]) >= 3:
        like = others[0]

        def size_at(h: int, w: int) -> Any:
            return _evaluate(size, {**shapes, like: _at(shapes[like], h, w)})

        try:
            if all(tuple(size_at(h, w)) == (h, w) for _, _, h, w in _TRIALS):
                return "resize", like, options
        except (_Unknown, TypeError):
            pass
    # any other size is the one the traced input gives: the spec is for that input
    return "resize", None, {"to": (int(traced[0]), int(traced[1])), **options}


def _padded(node: fx.Node) -> Any:
    source: Any = node.args[0]
    pad = _arg(node, 1, "pad", None)
    mode = _arg(node, 2, "mode", "constant") or "constant"
    value = _arg(node, 3, "value", None)
    if len(source.meta["tensor_meta"].shape) != 4:
        # torchvision's video Swin pads a clip to whole patches: at a clip of whole patches, nothing
        return () if _pads_nothing(node, pad) else ": the language pads images, [C, H, W]"
    if not isinstance(pad, (list, tuple)) or len(pad) not in (2, 4):
        return ": the language pads the height and width ([left, right, top, bottom])"
    if mode == "constant" and value:
        options: dict[str, Any] = {"mode": "constant", "value": float(value)}
    elif mode in ("constant", "reflect", "replicate", "circular"):
        options = {"mode": {"constant": "zeros"}.get(mode, mode)}
    else:
        return (
            f' with mode="{mode}": the language pads with zeros or a constant, or by reflecting, '
            "replicating or wrapping"
        )
    try:
        leaves = _size_leaves(pad)
        shapes = _shapes(node)
        traced = [int(v) for v in _evaluate(pad, shapes)]
    except (_Unknown, TypeError, ValueError):
        return ": its padding is computed from tensors' values"
    sides = (*traced, 0, 0) if len(traced) == 2 else tuple(traced)
    others = [leaf for leaf in leaves if leaf is not source]
    if (
        len(others) == 1
        and len(shapes[others[0]]) >= 3
        and options["mode"] in ("zeros", "reflect", "replicate")
    ):
        like = others[0]

        def sides_at(h: int, w: int, h2: int, w2: int) -> tuple[int, ...]:
            at = {**shapes, like: _at(shapes[like], h2, w2)}
            if source in shapes:
                at[source] = _at(shapes[source], h, w)
            return tuple(_evaluate(pad, at))

        def centred(h: int, w: int, h2: int, w2: int) -> tuple[int, ...]:
            dy, dx = h2 - h, w2 - w
            return (dx // 2, dx - dx // 2, dy // 2, dy - dy // 2)

        try:
            if all(sides_at(*trial) == centred(*trial) for trial in _TRIALS):
                return "padto", like, {"mode": options["mode"]}
        except (_Unknown, TypeError, IndexError):
            pass
    # any other padding is the one the traced input gives: the spec is for that input
    return "pad", None, {"amount": sides, **options}


def _pads_nothing(node: fx.Node, pad: Any) -> bool:
    """Whether the padding `F.pad` computes is 0 on every side at the traced input."""
    try:
        _size_leaves(pad)
        return all(int(v) == 0 for v in _evaluate(pad, _shapes(node)))
    except (_Unknown, TypeError, ValueError):
        return False
