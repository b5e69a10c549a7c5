"""Questions asked of one node of a traced graph: is it a tensor, its shape, a sum, a product, a
concatenation of the channels, which modules it was made in, its arguments. Imports torch inside
the functions that need it.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

from ..layers.base import found_in

if TYPE_CHECKING:
    from torch import fx


#: What a shape-only value is read from: `x.shape`, `x.size()`, `x.dim()`, `len(x)`.
_SHAPE_QUERIES = ("size", "dim", "numel", "shape", "ndim", "ndimension")


ADD = {operator.add, operator.iadd, "add", "add_"}


MUL = {operator.mul, operator.imul, "mul", "mul_"}


def _is_sum(node: fx.Node) -> bool:
    """`a + b`, `a += b`, `a.add(b)`, `torch.add(a, b)` (not with an `alpha`, which scales b)."""
    import torch

    target = _target(node)
    alpha = node.kwargs.get("alpha", 1)
    plain = isinstance(alpha, int | float) and alpha == 1 and len(node.args) <= 2
    return plain and (target in ADD or target is torch.add)


def _is_product(node: fx.Node) -> bool:
    """`a * b`, `a *= b`, `a.mul(b)`, `torch.mul(a, b)`."""
    import torch

    target = _target(node)
    return len(node.args) <= 2 and (target in MUL or target is torch.mul)


def _is_matmul(node: fx.Node) -> bool:
    """`a @ b`, `torch.matmul(a, b)`, `a.matmul(b)`, `torch.bmm(a, b)`."""
    import torch

    target = _target(node)
    return target in (operator.matmul, torch.matmul, torch.bmm, "matmul", "bmm")


def _number_factor(node: fx.Node) -> float | None:
    """The number a value is multiplied by (`x * 0.125`, `x.mul(s)`) or divided by (`x / 8`)."""
    import torch

    target = _target(node)
    divides = target in (operator.truediv, torch.div, "div") and "rounding_mode" not in node.kwargs
    if not (_is_product(node) or divides) or len(node.args) != 2:
        return None
    numbers = [a for a in node.args if isinstance(a, int | float) and not isinstance(a, bool)]
    if len(numbers) != 1 or (divides and node.args[1] is not numbers[0]):
        return None
    return 1 / numbers[0] if divides else float(numbers[0])


def _target(node: fx.Node) -> Any:
    return node.target if node.op == "call_function" else node.target if node.op == "call_method" else None


def _is_tensor(node: fx.Node) -> bool:
    """A tensor, or a tuple of them (`chunk`'s): what flows, not sizes."""
    from torch.fx.passes.shape_prop import TensorMetadata

    meta = node.meta.get("tensor_meta")
    if isinstance(meta, TensorMetadata):  # a named tuple itself
        return True
    return isinstance(meta, (tuple, list)) and bool(meta) and all(isinstance(m, TensorMetadata) for m in meta)


def _is_one_tensor(node: fx.Node) -> bool:
    from torch.fx.passes.shape_prop import TensorMetadata

    return isinstance(node.meta.get("tensor_meta"), TensorMetadata)


def _shape(node: fx.Node) -> tuple[int, ...]:
    return tuple(node.meta["tensor_meta"].shape[1:])


def _stack(node: fx.Node) -> list[str]:
    stack = node.meta.get("nn_module_stack") or {}
    return [path for path, _ in stack.values()]


def _tensor_args(node: fx.Node) -> list[fx.Node]:
    from torch import fx

    def wanted(value: Any) -> bool:
        return isinstance(value, fx.Node) and _is_tensor(value) and value.op != "get_attr"

    return found_in((node.args, node.kwargs), wanted)


def _op_name(node: fx.Node) -> str:
    target = node.target
    if node.op == "call_method":
        return f"Tensor.{target}"
    if node.op == "call_module":
        return str(target)
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", str(target))
    if module.startswith("torch.nn.functional") or module == "torch.nn.functional":
        return f"torch.nn.functional.{name}"
    if module == "_operator":
        return f"operator.{name}"
    return f"{module}.{name}" if module and not module.startswith("torch._C") else f"torch.{name}"


def _is_cat(node: fx.Node) -> bool:
    """`torch.cat([a, b, …], 1)` (or `dim=-3` of an image): a concatenation of the channels."""
    import torch

    if node.target not in (torch.cat, torch.concat, torch.concatenate):
        return False
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
    rank = len(node.meta["tensor_meta"].shape) if _is_one_tensor(node) else 0
    return isinstance(dim, int) and rank >= 2 and dim % rank == 1


def _cat_inputs(node: fx.Node) -> list[Any]:
    return list(node.args[0])  # type: ignore[arg-type]


def _arg(node: fx.Node, index: int, name: str, default: Any) -> Any:
    if name in node.kwargs:
        return node.kwargs[name]
    return node.args[index] if len(node.args) > index else default
