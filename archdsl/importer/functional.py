"""Functional ops (`F.relu(x)`, `x.flatten(1)`, `x[:, 0]`, `x.mean((2, 3))`) → the statements that
compute them, as the layers say: each layer names the functions and tensor methods it reads back
(`Layer.calls`) and reads a call's arguments (`Layer.called`), as `imports` and `arguments` do for
modules. This module only turns an fx node into the `FunctionCall` a layer reads, torch-free.
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING, Any

from ..layers import FunctionCall, Layer, Reading, TensorArg
from .nodes import _is_one_tensor, _is_tensor
from .trace import catalog

if TYPE_CHECKING:
    from torch import fx

#: What `Layer.calls` writes before a method's name: `Tensor.flatten` is `x.flatten(…)`.
_METHOD = "Tensor."


def _callables() -> tuple[dict[Any, list[tuple[str, Layer]]], dict[str, list[tuple[str, Layer]]]]:
    """Each function the layers name (the object itself), and each tensor method (by name), with
    the name it was declared by and the layers that read its calls, in the catalog's order."""
    functions: dict[Any, list[tuple[str, Layer]]] = {}
    methods: dict[str, list[tuple[str, Layer]]] = {}
    for layer in catalog():
        for name in layer.calls:
            if name.startswith(_METHOD):
                methods.setdefault(name[len(_METHOD) :], []).append((name, layer))
                continue
            found = _resolve(name)
            if found is not None:
                functions.setdefault(found, []).append((name, layer))
    return functions, methods


@functools.cache
def _resolve(name: str) -> Any:
    """The object a qualified name names (`torch.nn.functional.relu`), or None where it does not
    import (torchvision not installed)."""
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for part in parts[split:]:
                found = getattr(found, part)
        except AttributeError:
            return None
        return found
    return None


def _plain(value: Any) -> Any:
    """An fx argument as a layer reads it: each tensor a `TensorArg` with its shape (within lists,
    tuples and dicts); anything else as it is."""
    from torch import fx

    if isinstance(value, fx.Node):
        if _is_tensor(value) and value.op != "get_attr":
            shape = tuple(value.meta["tensor_meta"].shape) if _is_one_tensor(value) else None
            return TensorArg(shape)
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _functional(node: fx.Node) -> Reading | None:
    """The statements that compute a functional op, or None where no layer reads it."""
    functions, methods = _callables()
    if node.op == "call_method":
        readers = methods.get(str(node.target), [])
    elif node.op == "call_function":
        try:
            readers = functions.get(node.target, [])
        except TypeError:  # an unhashable target
            readers = []
    else:
        readers = []
    if not readers:
        return None
    args = tuple(_plain(a) for a in node.args)
    kwargs = {k: _plain(v) for k, v in node.kwargs.items()}
    output = tuple(node.meta["tensor_meta"].shape)
    for name, layer in readers:
        found = layer.called(FunctionCall(name, args, kwargs, output))
        if found is not None:
            return found
    return None
