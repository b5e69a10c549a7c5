"""Loading and tracing: `MODULE:FACTORY` → the `nn.Module`, and the module → its `torch.fx` graph.

Leaf modules that a layer reads back (`Layer.imports`, `Layer.arguments`) are kept whole; every
other module is traced into, each of its calls recorded with the tensors it was given and
returned. Where fx cannot decide a branch on a shape, the module is run on the sample and the
branch it takes is followed. The graph's nodes carry their output shapes (`ShapeProp`).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import layers
from ..grammar import keywords
from ..layers import Layer
from .failures import ImportFailed, _first_line, _where, _where_raised
from .nodes import _SHAPE_QUERIES

if TYPE_CHECKING:
    from torch import fx, nn


def load_factory(target: str, arguments: dict[str, Any]) -> tuple[nn.Module, str]:
    """Calls `MODULE:FACTORY` (`torchvision.models:resnet18`) with `arguments` as keywords, and
    returns the module and the model's name (the factory's). Runs the user's code."""
    from torch import nn

    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ImportFailed(f"expected MODULE:FACTORY (torchvision.models:resnet18), got '{target}'")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a user's own package, as `python -c` would find it
    try:
        found: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ImportFailed(f"cannot import {module_name}: {type(exc).__name__}: {exc}") from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ImportFailed(f"{module_name} has no attribute '{attribute}'")
        found = getattr(found, part)
    try:
        made = found(**arguments)
    except Exception as exc:
        raise ImportFailed(f"{target}(…) failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(made, nn.Module):
        raise ImportFailed(f"{target}(…) gave a {type(made).__name__}, not an nn.Module")
    name = attribute.split(".")[-1]
    return made, name if name.isidentifier() and name not in keywords() else "imported"


def default_input(module: nn.Module) -> tuple[int, ...] | None:
    """[C, 224, 224] for a network that starts with a 2-d convolution ([C, 16, 112, 112], a video
    clip as torchvision's video models take it, for a 3-d one; [C, 224] for a 1-d one), [F] for
    one that starts with a linear layer; None when the first layer does not tell."""
    from torch import nn

    for child in module.modules():
        if isinstance(child, nn.Conv2d):
            return (child.in_channels, 224, 224)
        if isinstance(child, nn.Conv3d):
            return (child.in_channels, 16, 112, 112)
        if isinstance(child, nn.Conv1d):
            return (child.in_channels, 224)
        if isinstance(child, nn.Linear):
            return (child.in_features,)
    return None


def catalog() -> list[Layer]:
    """Every layer kind in the catalog's order, the installed plugins' last: a plugin's layer is
    read back from its module (`imports`) or its functional form (`calls`) as a built-in one is."""
    return [layers.LAYERS[name] for name in layers.names()]


def _importable() -> dict[str, list[Layer]]:
    """Leaf module class name → the layers that may build it."""
    table: dict[str, list[Layer]] = {}
    for layer in catalog():
        for name in layer.imports:
            table.setdefault(name, []).append(layer)
    return table


def _readings(module: nn.Module, layers: list[Layer]) -> Iterator[tuple[Layer, dict[str, Any] | None]]:
    """Each of `layers` that reads `module` back, with what it reads (None: a setting it has no
    argument for). One whose attributes the module lacks does not read it: a class of the same
    name from elsewhere (timm's own `GELU` shares torch's name but not its `approximate`)."""
    for layer in layers:
        try:
            yield layer, layer.arguments(module)
        except AttributeError:
            continue


def _kind(module: nn.Module) -> str:
    """The class `module` computes as, by name: its own, or, for a subclass that only fixes a
    torch.nn module's arguments (torchvision's `Conv3DSimple`, an `nn.Conv3d` whose `forward` it
    keeps), that module's."""
    kind = type(module)
    for base in kind.__mro__:
        if base.__module__.startswith("torch.nn.") and base.__name__ != "Module":
            # a subclass that keeps the torch.nn class's forward computes as that class
            keeps = kind.forward is base.forward  # type: ignore[attr-defined]
            return base.__name__ if keeps else kind.__name__
    return kind.__name__


def _reads_as_layer(module: nn.Module, table: dict[str, list[Layer]]) -> bool:
    """Whether a layer reads `module` back; one no layer reads (timm's `GELU`) is traced into
    instead, down to the `F.gelu` it calls."""
    return any(True for _ in _readings(module, table.get(_kind(module), [])))


def _fused(module: nn.Module, table: dict[str, list[Layer]]) -> type | None:
    """The torch.nn class a module extends with stateless children it runs after itself (timm's
    `BatchNormAct2d`: a BatchNorm2d whose forward then runs its `drop` and `act`), or None. Such a
    module is read as that layer under the module's name followed by its children, unnamed: the
    state_dict is the same, and the outputs, which prove() compares, tell whether the reading
    holds."""
    if type(module).__name__ in table:
        return None
    base = next(
        (c for c in type(module).__mro__[1:] if c.__module__.startswith("torch.nn.") and c.__name__ in table),
        None,
    )
    children = [child for _, child in module.named_children()]
    if base is None or not children:
        return None
    for child in children:
        stateful = any(True for _ in child.parameters()) or any(True for _ in child.buffers())
        if stateful or not _reads_as_layer(child, table):
            return None
    return base


def _readable(module: nn.Module, table: dict[str, list[Layer]]) -> bool:
    """Whether `module` is read whole, as a layer (or a fused one), rather than traced into."""
    return _reads_as_layer(module, table) or _fused(module, table) is not None


def _wrapped_functions() -> tuple[Callable[..., Any], ...]:
    """Functions traced as one op rather than into: torchvision's channel shuffle."""
    try:
        from torchvision.models import shufflenetv2
    except ImportError:
        return ()
    return (shufflenetv2.channel_shuffle,)


@dataclass
class Call:
    """One call of a submodule that is traced into: the tensors it was given, each with the name
    of its parameter in the module's `forward`, and the tensors it returned, in order."""

    arguments: list[tuple[str | None, Any]]
    results: list[Any]


def _call_arguments(
    module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[tuple[str | None, Any]]:
    from torch import fx

    try:
        items: list[tuple[str | None, Any]] = list(
            inspect.signature(module.forward).bind(*args, **kwargs).arguments.items()
        )
    except (TypeError, ValueError):
        items = [(None, a) for a in args] + list(kwargs.items())
    found: list[tuple[str | None, Any]] = []

    def visit(name: str | None, value: Any) -> None:
        if isinstance(value, fx.Proxy):
            found.append((name, value.node))
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                visit(f"{name}{i}" if name else None, item)
        elif isinstance(value, dict):
            for key, item in value.items():
                visit(key if isinstance(key, str) else None, item)

    for name, value in items:
        visit(name, value)
    return found


def _results(value: Any) -> list[Any]:
    from torch import fx

    if isinstance(value, fx.Proxy):
        return [value.node]
    if isinstance(value, (list, tuple)):
        return [n for item in value for n in _results(item)]
    if isinstance(value, dict):
        return [n for item in value.values() for n in _results(item)]
    return []


def _samples(samples: list[tuple[int, ...]]) -> list[Any]:
    import torch

    generator = torch.Generator().manual_seed(0)
    return [torch.randn(2, *sample, generator=generator) for sample in samples]


def inputs_of(module: nn.Module) -> tuple[list[str], int]:
    """The names of `forward`'s tensor parameters, and how many of them have no default."""
    try:
        parameters = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return ["x"], 1
    positional = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return [p.name for p in positional], sum(1 for p in positional if p.default is inspect.Parameter.empty)


def trace(module: nn.Module, samples: list[tuple[int, ...]]) -> tuple[fx.GraphModule, dict[str, list[Call]]]:
    """The module's fx graph, its leaf modules kept whole, each node's output shape recorded; and
    each call of a submodule traced into, by its path."""
    import torch
    from torch import fx
    from torch.fx.passes.shape_prop import ShapeProp

    table = _importable()
    calls: dict[str, list[Call]] = {}

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualified_name: str) -> bool:
            return _readable(m, table) or super().is_leaf_module(m, qualified_name)

        def call_module(
            self, m: nn.Module, forward: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            result = super().call_module(m, forward, args, kwargs)
            try:
                path = self.path_of_module(m)
            except NameError:
                return result
            if path and not self.is_leaf_module(m, path):
                calls.setdefault(path, []).append(Call(_call_arguments(m, args, kwargs), _results(result)))
            return result

        # Where fx cannot decide a branch or a loop (`if x.shape[-1] > 8:`, `h, w = x.shape[2:]`),
        # the module is run on the sample up to that point and the branch it takes is followed:
        # the spec is for this input shape. A branch on a tensor's values is refused.
        def to_bool(self, obj: fx.Proxy) -> bool:
            return bool(_concrete(self, obj.node, module, samples))

        def iter(self, obj: fx.Proxy) -> Iterator[Any]:
            return iter(_concrete(self, obj.node, module, samples))

    tracer = Tracer(autowrap_functions=_wrapped_functions())
    tracer.record_stack_traces = True
    module.eval()
    try:
        graph = tracer.trace(module)
    except ImportFailed:
        raise
    except Exception as exc:
        where = _where_raised(exc)
        raise ImportFailed(
            f"torch.fx cannot trace {type(module).__name__}{where}: {type(exc).__name__}: "
            f"{_first_line(exc)} (data-dependent control flow, such as an `if` on a tensor's values, "
            "has no statement in the language)"
        ) from None
    _drop_followed_conditions(graph)
    # a parameter with a default that forward never reads (`mask=None`) is no input
    for node in list(graph.nodes):
        if node.op == "placeholder" and not node.users and node.args:
            graph.erase_node(node)
    traced = fx.GraphModule(module, graph)
    xs = _samples(samples)
    try:
        with torch.no_grad():
            module(*xs)
    except Exception as exc:
        shapes = " and ".join(f"[2, {', '.join(map(str, s))}]" for s in samples)
        raise ImportFailed(
            f"{type(module).__name__} fails on {'an input' if len(samples) == 1 else 'inputs'} {shapes} "
            f"(--input gives {'its shape' if len(samples) == 1 else 'their shapes'}): {type(exc).__name__}: "
            f"{_first_line(exc)}"
        ) from None
    with torch.no_grad():
        ShapeProp(traced).propagate(*xs)
    return traced, calls


def _drop_followed_conditions(graph: fx.Graph) -> None:
    """The shape arithmetic of a branch already followed, which nothing else uses."""
    for node in reversed(list(graph.nodes)):
        arithmetic = node.op == "call_function" and (
            getattr(node.target, "__module__", None) in ("_operator", "operator")
            or node.target in (getattr, len)
        )
        query = node.op == "call_method" and node.target in _SHAPE_QUERIES
        if not node.users and (arithmetic or query):
            graph.erase_node(node)


def _concrete(tracer: Any, node: fx.Node, module: nn.Module, samples: list[tuple[int, ...]]) -> Any:
    """The value `node` takes when the module runs on the sample, if it depends on the input's
    shape only; `ImportFailed` at its line when it depends on the input's values."""
    from torch import fx

    stack, seen = [node], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        target = current.target
        attribute = current.args[1] if target is getattr and len(current.args) > 1 else None
        if (current.op == "call_method" and target in _SHAPE_QUERIES) or attribute in _SHAPE_QUERIES:
            continue
        if target is len:
            continue
        if current.op == "placeholder":
            raise ImportFailed(
                f"{type(module).__name__}'s forward branches on its input's values{_where(node)}: "
                "data-dependent control flow has no statement in the language"
            )
        stack.extend(a for a in current.all_input_nodes)
    graph = fx.Graph()
    copied: dict[fx.Node, fx.Node] = {}
    for original in tracer.graph.nodes:
        copied[original] = graph.node_copy(original, copied.__getitem__)
        if original is node:
            break
    graph.output(copied[node])
    import torch
    from torch.fx import _symbolic_trace

    # While fx traces, it patches nn.Module so that parameters come back as proxies; the sample
    # runs with those patches lifted (fx's own context for this, which dynamo uses too).
    unpatched = getattr(_symbolic_trace, "_maybe_revert_all_patches", None)
    if unpatched is None:
        raise ImportFailed(
            f"{type(module).__name__}'s forward branches on its input's shape{_where(node)}, which this "
            "torch's fx gives no way to follow"
        )
    placeholders = sum(1 for n in graph.nodes if n.op == "placeholder")
    with unpatched(), torch.no_grad():
        return fx.Interpreter(module, graph=graph).run(*_samples(samples)[:placeholders])
