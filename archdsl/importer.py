"""`archdsl import`: an existing `nn.Module` → a `.arch` spec (imports torch; runs the user's code).

The module is traced with `torch.fx` (its leaf modules kept whole, shapes recorded by running the
trace once on a sample, each submodule's call recorded with its arguments and results), and the
graph is read back into the language, module by module:

1. each module's part of the graph is condensed to its own operations and its children (each
   child one step, however many tensors it takes and gives), then written in the order its
   `forward` computes it. Where the flow forks and its branches rejoin (at the fork's immediate
   post-dominator) with nothing else entering or leaving between, the join names the construct —
   an addition is a `residual`, a product with the input a `gate`, a channel concatenation a
   `concat` (after `chunk` or `split`, a split concat). Any other flow is written with named
   values: a value read again later is named (`stmt as x`) and read by name (`x -> stmt`, or an
   argument: `cat(x)`, `padto(x)`); a join of values is `add`, `mul` or `cat`, a split into
   values `split(n) as (a, b)`;
2. a leaf module becomes the layer statement that builds it (each layer's `arguments`, the
   inverse of its `module`, in `archdsl/layers/`), a child module a group, a functional op the
   layer or function that computes it; everything keeps its module's name, so `state_dict` names
   are the original's;
3. groups of one class become calls of a `block` (`factor.py`), with parameters for what differs:
   a child called with several tensors takes them as `tensor` parameters, and one that returns
   several ends with `output a, b`;
4. values are named after the variables of the `forward` that computes them (`x1 = self.inc(x)`
   gives `as x1`) where that name is free, else `x1`, `x2`, ….

The text is then checked by proof, not by hope: compiled, built, loaded with the original's
`state_dict` strictly, and run on random inputs; it is returned only when its outputs equal the
original's and every leaf module stands at the same path with the same settings. What the language
cannot express is an `ImportFailed` naming the op and the line of the module's `forward`.
"""

from __future__ import annotations

import importlib
import inspect
import math
import operator
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import layers
from .codes import INEXACT
from .grammar import keywords
from .import_ir import Expr, Ref, Stmt, Value, nameable, refs, reserved_names
from .layers import Layer
from .layers.base import axes_of

if TYPE_CHECKING:
    from torch import fx, nn


class ImportFailed(Exception):
    """The module cannot be written as a spec; the message says which op, where, and why."""


def _fresh_chain(statements: list[Stmt], reads: Value | None, last: Value) -> list[Stmt]:
    """Statements that compute one op in turn: each reads the one before; the last gives `last`."""
    current = reads
    for i, statement in enumerate(statements):
        statement.reads = current
        gives = last if i == len(statements) - 1 else Value(statement.output)
        statement.gives = [gives]
        current = gives
    return statements


# --- loading the module ---------------------------------------------------------------------------


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


# --- tracing --------------------------------------------------------------------------------------


def _importable() -> dict[str, list[Layer]]:
    """Leaf module class name → the layers that may build it."""
    table: dict[str, list[Layer]] = {}
    for layer in layers.LAYERS.values():
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


#: What a shape-only value is read from: `x.shape`, `x.size()`, `x.dim()`, `len(x)`.
_SHAPE_QUERIES = ("size", "dim", "numel", "shape", "ndim", "ndimension")


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _inside_torch(filename: str) -> bool:
    """Whether a frame is torch's (or this importer's, which traces): not the user's code."""
    import torch

    path = os.path.abspath(filename)
    return path.startswith(os.path.dirname(torch.__file__) + os.sep) or path == os.path.abspath(__file__)


def _user_frame(frames: list[tuple[str, int, str]]) -> str:
    """' (file:line: `code`)' for the last frame outside torch: the module's own forward."""
    for filename, line, code in reversed(frames):
        if not _inside_torch(filename):
            return f" ({filename}:{line}: `{code.strip()}`)" if code else f" ({filename}:{line})"
    return ""


def _where_raised(exc: BaseException) -> str:
    frames = [(f.filename, f.lineno or 0, f.line or "") for f in traceback.extract_tb(exc.__traceback__)]
    return _user_frame(frames)


_FRAME = re.compile(r'File "([^"]+)", line (\d+), in ([^\n]*)\n(?: +([^\n]*))?')


def _frames(node: fx.Node) -> list[tuple[str, int, str, str]]:
    """The frames of the stack that made `node`, outermost first: file, line, function, code."""
    cached = node.meta.get("archdsl_frames")
    if cached is None:
        text = node.stack_trace or ""
        cached = [(m.group(1), int(m.group(2)), m.group(3), m.group(4) or "") for m in _FRAME.finditer(text)]
        node.meta["archdsl_frames"] = cached
    return cached


def _where(node: fx.Node) -> str:
    return _user_frame([(f, line, code) for f, line, _, code in _frames(node)])


def _segments(node: fx.Node) -> list[list[tuple[str, int, str, str]]]:
    """The user's frames of the stack that made `node`, by module call: the root's `forward` (and
    what it calls) first, then each submodule called on the way in."""
    cached = node.meta.get("archdsl_segments")
    if cached is None:
        cached = [[]]
        for frame in _frames(node):
            filename, _, function, _ = frame
            if function == "_call_impl" and filename.replace(os.sep, "/").endswith(
                "torch/nn/modules/module.py"
            ):
                cached.append([])
            elif not _inside_torch(filename):
                cached[-1].append(frame)
        node.meta["archdsl_segments"] = cached
    return cached


def _statement_at(node: fx.Node, depth: int) -> tuple[Any, ...] | None:
    """Where, in the `forward` of the module `depth` calls deep, the statement that made `node`
    is (its line, and the lines of the calls around it), or None."""
    segments = _segments(node)
    if len(segments) <= depth or not segments[depth]:
        return None
    return tuple((s[-1][0], s[-1][1]) if s else None for s in segments[: depth + 1])


_ASSIGNED = re.compile(
    r"\s*\(?\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*,?\s*\)?\s*(?:[-+*/%@&|^]|//|\*\*|<<|>>)?=(?!=)"
)


def assigned(node: fx.Node, depth: int) -> list[str] | None:
    """The variables that the statement of the `forward` `depth` calls deep assigns `node` to
    (`x1 = self.inc(x)`: ["x1"]; `a, b = x.chunk(2, 1)`: ["a", "b"]) where `node` is what the
    statement computes last, not a step on its way."""
    where = _statement_at(node, depth)
    if where is None:
        return None
    # a step on the statement's way is read by the statement; what a child module returns and
    # also reads itself (`return self.pool(skip), skip`) is not
    inner = _stack(node)[depth : depth + 1]
    if any(_statement_at(u, depth) == where and _stack(u)[depth : depth + 1] != inner for u in node.users):
        return None
    if not inner and any(_statement_at(u, depth) == where for u in node.users):
        return None
    match = _ASSIGNED.match(_segments(node)[depth][-1][3])
    return [name.strip() for name in match.group(1).split(",")] if match else None


def hint(value: Value, depth: int, index: int = 0, count: int = 1) -> str | None:
    """The name the module's own `forward` gives `value`, looked for in the module `depth` calls
    deep and in those it calls: `index` of `count` values a statement gives together."""
    if value.hint is not None:
        return value.hint
    node = value.node
    if node is None:
        return None
    for level in range(depth, len(_segments(node))):
        names = assigned(node, level)
        if names is None:
            continue
        # a tuple's names belong to the statement of this module that gives the tuple; a value's
        # own name may stand deeper, in the module that makes it
        if level == depth and count > 1:
            if len(names) == count:
                return names[index]
            continue
        return names[0] if len(names) == 1 else None
    return None


def implicit_broadcasts(graph: fx.Graph) -> None:
    """`x * y.expand_as(x)` (or `y.expand(...)`), as squeeze-and-excitation is often written, is
    `x * y`: the product broadcasts the gate anyway, so the expansion is dropped and the product
    read as a gate. An expansion used for anything else stays, and is refused with its line."""
    for node in list(graph.nodes):
        if not (node.op == "call_method" and node.target in ("expand_as", "expand")):
            continue
        users = list(node.users)
        if users and all(_is_product(u) for u in users):
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)


def self_attention(graph: fx.Graph, root: nn.Module) -> None:
    """`attn(x, x, x, need_weights=False)[0]` of an `nn.MultiheadAttention` (torchvision's ViT): the
    call reads x once and is its first result, as `attention` writes it. Any other call (cross
    attention, the weights read) stays, and is refused with its line."""
    from torch import nn as torch_nn

    for node in list(graph.nodes):
        if node.op != "call_module" or not isinstance(
            root.get_submodule(str(node.target)), torch_nn.MultiheadAttention
        ):
            continue
        queries = node.args[:3]
        users = list(node.users)
        firsts = all(u.target is operator.getitem and u.args[1] == 0 for u in users)
        if (
            len(queries) != 3
            or len(set(queries)) != 1
            or not users
            or not firsts
            or node.kwargs.get("attn_mask") is not None
        ):
            continue
        node.args, node.kwargs = (queries[0],), {}
        node.meta["tensor_meta"] = users[0].meta["tensor_meta"]
        for user in users:
            user.replace_all_uses_with(node)
            graph.erase_node(user)


def learnt_tensors(graph: fx.Graph, root: nn.Module) -> None:
    """A parameter of the module that a value is joined with as `token` and `posembed` write it:
    `torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)` puts learnt tokens before a
    sequence, `x + self.pos_embedding` adds a tensor of the sample's shape. Each is marked with the
    parameter it reads (`meta["learnt"]`) and made to read x alone."""
    import torch
    from torch import fx

    def parameter(value: Any) -> str | None:
        if isinstance(value, fx.Node) and value.op == "get_attr":
            try:
                root.get_parameter(str(value.target))
            except AttributeError:
                return None
            return str(value.target)
        return None

    for node in list(graph.nodes):
        if node.target in (torch.cat, torch.concat) and _is_one_tensor(node):
            parts = node.args[0]
            dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
            if not isinstance(parts, (list, tuple)) or len(parts) != 2 or dim not in (1, -2):
                continue
            expanded, x = parts
            if not (
                isinstance(expanded, fx.Node) and expanded.op == "call_method" and expanded.target == "expand"
            ):
                continue
            target = parameter(expanded.args[0])
            if target is None or len(node.meta["tensor_meta"].shape) != 3:
                continue
            node.meta["learnt"] = ("token", target)
            node.args, node.kwargs = ([x],), {"dim": 1}
            if not expanded.users:
                graph.erase_node(expanded)
        elif _is_sum(node) and len(node.args) == 2:
            targets = [parameter(a) for a in node.args]
            others = [a for a, t in zip(node.args, targets, strict=True) if t is None]
            found = [t for t in targets if t is not None]
            if len(found) == 1 and len(others) == 1 and isinstance(others[0], fx.Node):
                node.meta["learnt"] = ("posembed", found[0])
                node.args = (others[0],)


def dense_concatenations(graph: fx.Graph) -> None:
    """DenseNet's concatenations, rewritten as the language writes them: torchvision concatenates
    all earlier features in each layer, `cat([x, y1, …, yk])`; that is `cat([cat([x, y1, …]), yk])`
    of the concatenation before, so each layer's concatenation joins its input and its new
    features. A concatenation of one tensor is that tensor. A two-way concatenation of a module's
    input with that module's output, written in another module's forward, moves into the module
    that made the output: it is that module's `concat { branch { } branch { … } }`."""
    import collections

    made: dict[tuple[fx.Node, ...], fx.Node] = {}
    for node in list(graph.nodes):
        if not _is_cat(node) or "learnt" in node.meta:
            continue
        inputs = list(node.args[0])
        if len(inputs) == 1:
            node.replace_all_uses_with(inputs[0])
            graph.erase_node(node)
            continue
        made[tuple(inputs)] = node
        earlier = made.get(tuple(inputs[:-1]))
        if len(inputs) > 2 and earlier is not None:
            node.args = ([earlier, inputs[-1]], *node.args[1:])
            inputs = [earlier, inputs[-1]]
        if len(inputs) != 2:
            continue
        before, new = inputs
        here = _stack(node)
        stack = list((new.meta.get("nn_module_stack") or {}).items())
        owners = stack[:-1] if new.op == "call_module" else stack
        for depth in range(len(owners), 0, -1):
            path = owners[depth - 1][1][0]
            if _is_input_of(before, path):
                if not _within(here, path) or _as_its_sibling(before, owners[depth - 1][1]):
                    node.meta["nn_module_stack"] = collections.OrderedDict(owners[:depth])
                break


def _as_its_sibling(before: fx.Node, module: tuple[str, type]) -> bool:
    """Whether `before` is a concatenation already moved into a sibling of `module` of its class
    (the block's last layer concatenates as the layers before it did)."""
    stack = list((before.meta.get("nn_module_stack") or {}).values())
    if not _is_cat(before) or not stack:
        return False
    path, cls = stack[-1]
    return cls is module[1] and path.rpartition(".")[0] == module[0].rpartition(".")[0]


def _path_of(stack: list[str]) -> str:
    return stack[-1] if stack else ""


def _within(stack: list[str], path: str) -> bool:
    """Whether the module `stack` ends at contains the module `path` (or is it)."""
    innermost = _path_of(stack)
    return innermost == "" or path == innermost or path.startswith(innermost + ".")


def _is_input_of(value: fx.Node, path: str) -> bool:
    """`value` comes from outside the module `path`, and a node of that module reads it."""
    if path in _stack(value):
        return False
    return any(path in _stack(user) for user in value.users)


# --- the graph, condensed per module --------------------------------------------------------------

ENTRY = "<input>"
EXIT = "<output>"

ADD = {operator.add, operator.iadd, "add", "add_"}
MUL = {operator.mul, operator.imul, "mul", "mul_"}


def _entry_key(index: int) -> str:
    return ENTRY if index == 0 else f"<input{index + 1}>"


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

    found: list[fx.Node] = []

    def visit(value: Any) -> None:
        if isinstance(value, fx.Node):
            if _is_tensor(value) and value.op != "get_attr":
                found.append(value)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)

    visit(node.args)
    visit(node.kwargs)
    return found


@dataclass
class Unit:
    """A step of a module's condensed graph: one of its own ops (`node`), or a child module's call
    (`path`, all the nodes of that call)."""

    key: str
    node: fx.Node | None = None
    path: str | None = None
    nodes: list[fx.Node] = field(default_factory=list)
    #: the nodes whose values leave the step, in the order the child returns them
    outs: list[fx.Node] = field(default_factory=list)
    #: the nodes from outside the step that it reads, what it receives first
    ins: list[fx.Node] = field(default_factory=list)

    @property
    def last(self) -> fx.Node:
        return self.outs[-1] if self.outs else self.node if self.node is not None else self.nodes[-1]


class _Graph:
    def __init__(
        self,
        units: dict[str, Unit],
        preds: dict[str, list[str]],
        succs: dict[str, list[str]],
        entries: list[str],
        made: dict[fx.Node, str],
    ):
        self.units = units
        self.preds = preds
        self.succs = succs
        self.entries = entries
        #: each node that leaves a step (or enters the module) → that step's key
        self.made = made
        self.order = {
            **{key: -1 - i for i, key in enumerate(entries)},
            **{key: i for i, key in enumerate(units)},
            EXIT: len(units),
        }

    def reachable(self, start: str) -> set[str]:
        seen = {start}
        stack = [start]
        while stack:
            for s in self.succs.get(stack.pop(), []):
                if s not in seen:
                    seen.add(s)
                    stack.append(s)
        return seen

    def between(self, start: str, end: str, allowed: set[str]) -> set[str]:
        """The steps on paths from `start` to `end`, `start` included."""
        reach = self.reachable(start) & allowed
        back = {end}
        stack = [end]
        while stack:
            for p in self.preds.get(stack.pop(), []):
                if p in reach and p not in back:
                    back.add(p)
                    stack.append(p)
        return (reach & back) | {start}

    def ipdom(self, start: str, allowed: set[str]) -> str | None:
        """The first step every path from `start` (within `allowed`) to its end passes, or None."""
        region = self.reachable(start) & (allowed | {start})
        ordered = sorted(region, key=self.order.__getitem__, reverse=True)
        pdom: dict[str, set[str]] = {}
        for key in ordered:
            nexts = [s for s in self.succs.get(key, []) if s in region]
            if not nexts:
                pdom[key] = {key}
                continue
            common = set.intersection(*(pdom[s] for s in nexts))
            pdom[key] = common | {key}
        candidates = pdom[start] - {start}
        if not candidates:
            return None
        return min(candidates, key=self.order.__getitem__)

    def enclosed(self, start: str, join: str, allowed: set[str]) -> set[str] | None:
        """The steps strictly between `start` and `join` when nothing else enters or leaves them
        (what a composite can hold), or None."""
        region = self.between(start, join, allowed) - {start, join}
        inside = region | {start}
        for key in region | {join}:
            if any(p not in inside for p in self.preds[key]):
                return None
        for key in region:
            if any(c not in region and c != join for c in self.succs[key]):
                return None
        return region


class Reader:
    """Reads a traced module back into statements."""

    def __init__(self, root: nn.Module, traced: fx.GraphModule, calls: dict[str, list[Call]]):
        self.root = root
        self.traced = traced
        self.calls = calls
        self.modules = dict(root.named_modules())
        self.table = _importable()
        self.nodes = [n for n in traced.graph.nodes if n.op not in ("placeholder", "output", "get_attr")]
        self.inputs = [n for n in traced.graph.nodes if n.op == "placeholder"]
        (out,) = [n for n in traced.graph.nodes if n.op == "output"]
        self.outputs, self.returns = self._returned(out.args[0])
        #: each node's value, and the nodes that are another's value under another name (`x.clone()`)
        self.values: dict[fx.Node, Value] = {}
        self.aliases: dict[fx.Node, fx.Node] = {}
        self._references: dict[fx.Node, Any] = {}
        self._referenced_by: dict[fx.Node, list[fx.Node]] | None = None
        # A leaf no layer builds is named before the flow is read: an LSTM's tuple, say, would
        # otherwise break the flow first and hide what is missing.
        for node in self.nodes:
            leaf = self.modules[str(node.target)] if node.op == "call_module" else None
            if leaf is None or _readable(leaf, self.table):
                continue
            self.leaf(str(node.target), leaf, node)
        #: the modules written so far (a second call of one is refused: weights are not shared)
        self.named: set[str] = set()

    def _returned(self, result: Any) -> tuple[list[tuple[str | None, fx.Node]], str]:
        """The model's outputs (with their keys where it returns a dict) and how it returns them:
        "one" tensor, a "tuple" or a "dict"."""
        from torch import fx

        found: list[tuple[str | None, Any]]
        if isinstance(result, dict):
            found = [(str(k), v) for k, v in result.items()]
            kind = "dict"
        elif isinstance(result, (list, tuple)):
            found = [(None, v) for v in result]
            kind = "tuple"
        else:
            found, kind = [(None, result)], "one"
        for _, value in found:
            if not isinstance(value, fx.Node) or not _is_one_tensor(value):
                what = type(value).__name__ if not isinstance(value, fx.Node) else "a tuple of tensors"
                raise ImportFailed(
                    f"{type(self.root).__name__}'s forward returns {what}"
                    + (" among its results" if kind != "one" else "")
                    + ", not a tensor: a model gives tensors, one, a tuple or a dict of them"
                )
        if not found:
            raise ImportFailed(f"{type(self.root).__name__}'s forward returns no tensor")
        return found, kind

    def value(self, node: fx.Node) -> Value:
        while node in self.aliases:
            node = self.aliases[node]
        found = self.values.get(node)
        if found is None:
            shape = _shape(node) if _is_one_tensor(node) else ()
            found = self.values[node] = Value(shape, node)
        return found

    # the condensed graph of the module at `path` ("" for the root)
    def units(self, path: str) -> tuple[list[Unit], dict[fx.Node, Unit]]:
        units: list[Unit] = []
        owner: dict[fx.Node, Unit] = {}
        by_child: dict[str, Unit] = {}
        for node in self.nodes:
            stack = _stack(node)
            # The modules called on the way to a node; a ModuleList or ModuleDict, never called,
            # is not among them (`blocks.0` runs right under the root).
            if path and path not in stack:
                continue
            depth = stack.index(path) + 1 if path else 0
            if not _is_tensor(node):
                continue  # sizes and other plumbing feed a view's shape, not the flow
            if len(stack) > depth:
                child = stack[depth]
                if node.op == "call_module" and node.target == child:  # a leaf: each call a step
                    unit = Unit(f"{child}#{len(units)}", path=child, nodes=[node])
                    units.append(unit)
                else:
                    unit = by_child.get(child)  # type: ignore[assignment]
                    if unit is None:
                        unit = by_child[child] = Unit(child, path=child)
                        units.append(unit)
                    unit.nodes.append(node)
            else:
                unit = Unit(node.name, node=node)
                units.append(unit)
            owner[node] = unit
        for unit in units:
            if unit.node is not None or unit.nodes[0].target == unit.path:  # an op, a leaf
                unit.outs = [unit.node if unit.node is not None else unit.nodes[0]]
                unit.ins = self._reads(unit.outs)
                continue
            leaving = [
                n
                for n in unit.nodes
                if any((u.op == "output" or _is_tensor(u)) and owner.get(u) is not unit for u in n.users)
                or any(owner.get(u) is not unit for u in self.referenced_by().get(n, []))
            ]
            record = self.calls.get(unit.path or "", [])
            returned = record[0].results if record else []
            position = {n: i for i, n in enumerate(unit.nodes)}
            leaving.sort(key=lambda n: (returned.index(n) if n in returned else len(returned), position[n]))
            # a child whose result nothing reads is refused below, by what it computes
            unit.outs = leaving or [unit.nodes[-1]]
            ins = [n for n in self._reads(unit.nodes) if owner.get(n) is not unit]
            given = [n for _, n in record[0].arguments] if record else []
            first = {n: i for i, n in enumerate(ins)}
            ins.sort(key=lambda n: (given.index(n) if n in given else len(given), first[n]))
            unit.ins = ins
        return units, owner

    def _reads(self, nodes: list[fx.Node]) -> list[fx.Node]:
        """The tensors `nodes` read: their arguments, and the tensors whose size they take where
        the spec names them (`resize(y)`, `padto(y)`)."""
        found: list[fx.Node] = []
        inside = set(nodes)
        for node in nodes:
            for arg in [*_tensor_args(node), *self.references(node)]:
                if arg not in inside and arg not in found:
                    found.append(arg)
        return found

    def referenced_by(self) -> dict[fx.Node, list[fx.Node]]:
        """Each tensor whose size an op reads where the spec names it, and those ops."""
        if self._referenced_by is None:
            self._referenced_by = {}
            for node in self.nodes:
                for reference in self.references(node):
                    self._referenced_by.setdefault(reference, []).append(node)
        return self._referenced_by

    def module_body(self, path: str, entries: list[fx.Node], exits: list[fx.Node]) -> list[Stmt]:
        units, _ = self.units(path)
        graph = self.graph(path, units, entries, exits)
        keys = set(graph.units)
        statements = self.walk(path, graph, keys, graph.entries, keys | {EXIT})
        return _numbered_apart(self.containers(path, statements))

    def graph(self, path: str, units: list[Unit], entries: list[fx.Node], exits: list[fx.Node]) -> _Graph:
        who = path or type(self.root).__name__
        made: dict[fx.Node, str] = {}
        for unit in units:
            for node in unit.outs:
                made[node] = unit.key
        entry_keys = [_entry_key(i) for i in range(len(entries))]
        for key, node in zip(entry_keys, entries, strict=True):
            made.setdefault(node, key)
        preds: dict[str, list[str]] = {}
        succs: dict[str, list[str]] = {key: [] for key in entry_keys}
        by_key = {u.key: u for u in units}
        for unit in units:
            succs.setdefault(unit.key, [])
            inputs: list[str] = []
            for arg in unit.ins:
                found = made.get(arg)
                if found is None:
                    node = next((n for n in unit.nodes if arg in n.all_input_nodes), unit.last)
                    raise ImportFailed(
                        f"{who} reads a tensor that is none of its inputs{_where(node)}: a module "
                        "reads what its forward is given"
                    )
                if found not in inputs:
                    inputs.append(found)
            if not inputs and unit.node is not None:
                raise ImportFailed(
                    f"{who} computes a tensor that does not come from its "
                    f"input ({_op_name(unit.node)}{_where(unit.node)}, of a parameter or a constant): "
                    "the language's statements transform their input, and a parameter is multiplied "
                    "in only as stored, [C, 1, 1] (`scale`)"
                )
            preds[unit.key] = inputs
            for key in inputs:
                succs.setdefault(key, []).append(unit.key)
        exit_keys = []
        for node in exits:
            exit_key = made.get(node)
            if exit_key is None:
                raise ImportFailed(f"{who} returns a tensor that is none of its inputs{_where(node)}")
            if exit_key in entry_keys and len(exits) > 1 and path:
                raise ImportFailed(
                    f"{who} returns one of its inputs among its results{_where(node)}: a block gives "
                    "what its statements make"
                )
            if exit_key not in exit_keys:
                exit_keys.append(exit_key)
        for unit in units:
            if unit.key not in exit_keys and not succs.get(unit.key):
                raise ImportFailed(
                    f"{unit.path or unit.key}'s result is not used{_where(unit.last)}: a module whose "
                    "forward computes more than its output has no spec"
                )
        preds[EXIT] = exit_keys
        for key in exit_keys:
            succs.setdefault(key, []).append(EXIT)
        return _Graph(by_key, preds, succs, entry_keys, made)

    def containers(self, path: str, statements: list[Stmt]) -> list[Stmt]:
        """The members of a container that is never called (`self.blocks = nn.ModuleList(…)`, run
        by a loop in forward; a ModuleDict) stand in the calling module's body under dotted names
        (`blocks.0`); each run of them becomes a group named after the container, so that the
        names stay the module's. The unnamed layers between them (a functional ReLU) join it."""
        out: list[Stmt] = []
        i = 0
        while i < len(statements):
            head = _container_of(statements[i])
            if head is None:
                out.append(statements[i])
                i += 1
                continue
            last = j = i
            while j < len(statements):
                here = statements[j]
                if _container_of(here) == head:
                    last = j
                elif here.name is not None or here.kind != "layer":
                    break
                j += 1
            members = statements[i : last + 1]
            for member in members:
                _strip_container(member, head)
            full = f"{path}.{head}" if path else head
            out.append(
                Stmt(
                    "group",
                    name=head,
                    body=_numbered_apart(self.containers(full, members)),
                    cls=type(self.modules[full]),
                    output=members[-1].output,
                    input=members[0].input,
                )
            )
            i = last + 1
        return out

    # --- the flow, in the order forward computes it -----------------------------------------------

    def walk(
        self, path: str, graph: _Graph, keys: set[str], starts: list[str], scope: set[str]
    ) -> list[Stmt]:
        """The statements of the steps `keys`, in the order the module computes them; where the
        flow forks at a value and rejoins with nothing else entering or leaving between, one
        composite (`residual`, `gate`, `concat`) holds the branches."""
        statements: list[Stmt] = []
        done: set[str] = set()

        def settle(key: str) -> None:
            while True:
                folded = self.composite(path, graph, key, scope)
                if folded is None:
                    return
                statement, covered, join = folded
                statements.append(statement)
                done.update(covered | {join})
                key = join

        for start in starts:
            settle(start)
        for key in sorted(keys, key=graph.order.__getitem__):
            if key in done:
                continue
            unit = graph.units[key]
            done.add(key)
            sizes = self.split_node(unit)
            if sizes is not None:
                folded = self.split_concat(path, graph, key, scope, sizes)
                if folded is not None:
                    statement, covered, join = folded
                    statements.append(statement)
                    done.update(covered | {join})
                    settle(join)
                    continue
                statement, shares = self.split_values(path, graph, unit, sizes)
                statements.append(statement)
                done.update(shares)
                for share in shares:
                    settle(share)
                continue
            previous = statements[-1].gives[0] if statements and len(statements[-1].gives) == 1 else None
            statements.extend(self.step(path, unit, graph, previous))
            settle(key)
        return statements

    def fork_value(self, graph: _Graph, key: str) -> Value:
        if key in graph.units:
            return self.value(graph.units[key].outs[0])
        node = next(n for n, k in graph.made.items() if k == key)
        return self.value(node)

    def composite(
        self, path: str, graph: _Graph, start: str, scope: set[str]
    ) -> tuple[Stmt, set[str], str] | None:
        """The composite of the branches that fork at `start`'s value, with the steps it covers
        and its join; None where they do not make one."""
        nexts = {c for c in graph.succs.get(start, []) if c in scope}
        if len(nexts) < 2 or (start in graph.units and len(graph.units[start].outs) != 1):
            return None
        join = graph.ipdom(start, scope)
        if join is None or join not in graph.units:
            return None
        region = graph.enclosed(start, join, scope)
        if region is None:
            return None
        named = set(self.named)
        try:
            statement = self.fork(path, graph, start, join, region | {start, join})
        except ImportFailed:
            statement = None
        if statement is None:
            self.named = named  # the branches are written again, value by value
            return None
        return statement, region, join

    def branch(self, path: str, graph: _Graph, start: str, end: str, allowed: set[str]) -> list[Stmt]:
        if start == end:
            return []
        region = graph.between(start, end, allowed) - {start}
        return self.walk(path, graph, region, [start], region)

    def _branches(
        self, graph: _Graph, starts: list[str], ends: list[str], allowed: set[str], inner: set[str]
    ) -> bool:
        """Whether the branches from each start to its end are apart and cover `inner`."""
        regions = [
            graph.between(s, e, allowed) - {s} if s != e else set() for s, e in zip(starts, ends, strict=True)
        ]
        if any(s != e and e not in r for s, e, r in zip(starts, ends, regions, strict=True)):
            return False
        # a branch reads nothing of another's (Res2Net's `b + a` is no concat's branch)
        if any(
            p not in r and p != s
            for s, r in zip(starts, regions, strict=True)
            for k in r
            for p in graph.preds[k]
        ):
            return False
        union: set[str] = set().union(*regions)
        return sum(len(r) for r in regions) == len(union) and union == inner

    def fork(self, path: str, graph: _Graph, start: str, join: str, allowed: set[str]) -> Stmt | None:
        node = graph.units[join].node
        if node is None:
            return None
        operands = [graph.made.get(arg) for arg in _tensor_args(node)]
        if None in operands:
            return None
        keys: list[str] = operands  # type: ignore[assignment]
        if not self._branches(graph, [start] * len(keys), keys, allowed, allowed - {start, join}):
            return None
        reads, gives, shape = self.fork_value(graph, start), [self.value(node)], _shape(node)
        if _is_sum(node) and len(keys) == 2:
            if [_shape(a) for a in _tensor_args(node)] != [shape, shape]:
                return None
            bodies = [self.branch(path, graph, start, o, allowed) for o in keys]
            if len(bodies[0]) < len(bodies[1]):
                bodies.reverse()
            body, shortcut = bodies
            # `x + self.downsample(x)` where that is an nn.Identity is the identity shortcut
            shortcut = [s for s in shortcut if not (s.kind == "layer" and s.op == "identity")]
            clause = None
            if shortcut:
                if len(shortcut) != 1 or shortcut[0].kind != "group" or _container_of(shortcut[0]):
                    return None  # a shortcut that is no submodule: the values are added by name
                clause = Stmt("shortcut", name=shortcut[0].name, body=shortcut[0].body, output=shape)
            return Stmt(
                "residual", body=body, shortcut=clause, spliced=True, output=shape, reads=reads, gives=gives
            )
        if _is_product(node) and len(keys) == 2 and start in keys and reads.shape == shape:
            other = keys[1] if keys[0] == start else keys[0]
            body = self.branch(path, graph, start, other, allowed)
            return Stmt("gate", body=body, spliced=True, output=shape, reads=reads, gives=gives)
        if _is_cat(node) and len(keys) == len(_cat_inputs(node)):
            branches = [_branch(self.branch(path, graph, start, o, allowed)) for o in keys]
            if any(b.name is not None and "." in b.name for b in branches):
                return None  # members of a ModuleList (DeepLab's ASPP): a group of the list's name
            return Stmt("concat", body=branches, spliced=True, output=shape, reads=reads, gives=gives)
        return None

    def split_node(self, unit: Unit) -> list[int] | None:
        """For a `chunk` or `split` on the channels, each share's channel count."""
        import torch

        node = unit.node
        if node is None or _is_one_tensor(node) or not _is_tensor(node):
            return None
        method = node.op == "call_method" and node.target in ("chunk", "split", "tensor_split")
        function = node.op == "call_function" and node.target in (
            torch.chunk,
            torch.split,
            torch.functional.split,
        )
        if not (method or function):
            return None
        source: Any = node.args[0]
        rank = len(source.meta["tensor_meta"].shape) if _is_one_tensor(source) else 0
        dim = node.kwargs.get("dim", node.args[2] if len(node.args) > 2 else 0)
        if not isinstance(dim, int) or rank < 2 or dim % rank == 0:
            raise ImportFailed(
                f"{_op_name(node)} splits axis {dim}{_where(node)}: the language's `split` takes "
                "a sample's axes apart, not the batch's"
            )
        return [int(s.shape[dim]) for s in node.meta["tensor_meta"]]

    @staticmethod
    def split_dim(node: fx.Node) -> int:
        """The axis a split takes apart, as written (1 for the channels)."""
        return node.kwargs.get("dim", node.args[2] if len(node.args) > 2 else 0)  # type: ignore[return-value]

    def _shares(self, graph: _Graph, key: str, count: int) -> dict[int, list[str]] | None:
        """The steps that take each share of a split apart (`parts[i]`), by share."""
        shares: dict[int, list[str]] = {}
        for user in graph.succs[key]:
            node = graph.units[user].node if user in graph.units else None
            if node is None or node.target is not operator.getitem or not isinstance(node.args[1], int):
                return None
            shares.setdefault(node.args[1] % count, []).append(user)
        return shares

    def split_concat(
        self, path: str, graph: _Graph, split: str, scope: set[str], sizes: list[int]
    ) -> tuple[Stmt, set[str], str] | None:
        """A split whose shares each go their own way and are concatenated back in order: a
        `concat(split=…)`."""
        join = graph.ipdom(split, scope)
        split_node = graph.units[split].node
        assert split_node is not None
        source_rank = len(split_node.args[0].meta["tensor_meta"].shape)  # type: ignore[union-attr]
        if join is None or join not in graph.units or self.split_dim(split_node) % source_rank != 1:
            return None
        node = graph.units[join].node
        region = graph.enclosed(split, join, scope)
        if node is None or not _is_cat(node) or region is None:
            return None
        shares = self._shares(graph, split, len(sizes))
        if (
            shares is None
            or sorted(shares) != list(range(len(sizes)))
            or any(len(s) != 1 for s in shares.values())
        ):
            return None
        operands = [graph.made.get(arg) for arg in _tensor_args(node)]
        if len(operands) != len(sizes) or None in operands:
            return None
        starts = [shares[i][0] for i in range(len(sizes))]
        allowed = region | {split, join}
        if not self._branches(graph, starts, operands, allowed, region - set(starts)):  # type: ignore[arg-type]
            return None
        named = set(self.named)
        try:
            branches = []
            for start, operand in zip(starts, operands, strict=True):
                body = self.branch(path, graph, start, operand, allowed)  # type: ignore[arg-type]
                branch = _branch(body)
                branch.reads = self.value(graph.units[start].outs[0])
                branches.append(branch)
        except ImportFailed:
            self.named = named
            return None
        equal = [math.ceil(sum(sizes) / len(sizes))] * (len(sizes) - 1)
        equal.append(sum(sizes) - sum(equal))
        split_arg: Any = True if sizes == equal else sizes
        source: Any = graph.units[split].node.args[0]  # type: ignore[union-attr]
        statement = Stmt(
            "concat",
            args={"split": split_arg},
            body=branches,
            spliced=True,
            output=_shape(node),
            reads=self.value(source),
            gives=[self.value(node)],
        )
        return statement, region, join

    def split_values(self, path: str, graph: _Graph, unit: Unit, sizes: list[int]) -> tuple[Stmt, set[str]]:
        """A split taken apart into values: `split(2) as (a, b)`."""
        from .layers.joins import chunks

        node = unit.node
        assert node is not None
        shares = self._shares(graph, unit.key, len(sizes))
        who = path or type(self.root).__name__
        if shares is None:
            raise ImportFailed(
                f"{who} uses the tensors {_op_name(node)} gives{_where(node)} otherwise than one by one "
                "(`a, b = x.chunk(2, 1)`, `parts[0]`): the language takes them apart as values"
            )
        missing = [i for i in range(len(sizes)) if i not in shares]
        if missing:
            raise ImportFailed(
                f"{who} never uses share {missing[0]} of {_op_name(node)}{_where(node)}: a value made and "
                "never used has no place in a spec (a `narrow` takes a part of the channels)"
            )
        gives = []
        for index in range(len(sizes)):
            first, *others = [graph.units[k].node for k in shares[index]]
            for other in others:
                self.aliases[other] = first  # type: ignore[index,assignment]
            gives.append(self.value(first))  # type: ignore[arg-type]
        source: Any = node.args[0]
        channels = sum(sizes)
        equal = [n for n in range(1, channels + 1) if chunks(channels, n) == sizes]
        rank = len(source.meta["tensor_meta"].shape)
        dim = self.split_dim(node)
        args: dict[str, Any] = {"sizes": equal[0] if equal else tuple(sizes)}
        if dim % rank != 1:
            args["dim"] = dim
        statement = Stmt(
            "layer",
            op="split",
            args=args,
            output=gives[0].shape,
            input=_shape(source),
            reads=self.value(source),
            gives=gives,
        )
        return statement, {k for keys in shares.values() for k in keys}

    # --- one step ---------------------------------------------------------------------------------

    def step(self, path: str, unit: Unit, graph: _Graph, previous: Value | None = None) -> list[Stmt]:
        if unit.path is None:
            assert unit.node is not None
            return self.function(path, unit.node, previous)
        full = unit.path
        module = self.modules[full]
        # relative to the calling module: dotted where it sits in a container never called
        name = full[len(path) + 1 :] if path and full.startswith(path + ".") else full
        first = unit.nodes[0]
        output = _shape(unit.outs[0])
        if first.op == "call_module" and first.target == full:  # a leaf
            inputs = _tensor_args(first)
            if len(inputs) > 1:
                raise ImportFailed(
                    f"{full} is called with {len(inputs)} tensors{_where(first)}: a layer takes one"
                )
            reads = self.value(inputs[0]) if inputs else None
            base = _fused(module, self.table)
            if base is not None:
                return _fresh_chain(self.fused(full, name, module, base, first), reads, self.value(first))
            statement = self.leaf(full, module, first)
            statement.input = _shape(inputs[0]) if inputs else ()
            if full in self.named:
                if any(True for _ in module.parameters()) or any(True for _ in module.buffers()):
                    raise ImportFailed(
                        f"{full} is called more than once{_where(first)}: the language has no shared weights"
                    )
                statement.name = None
            else:
                self.named.add(full)
                statement.name = name
            return _fresh_chain([statement], reads, self.value(first))
        if full in self.named or len(self.calls.get(full, [])) > 1:
            raise ImportFailed(
                f"{full} is called more than once{_where(first)}: the language has no shared weights"
            )
        self.named.add(full)
        entries = unit.ins
        if not entries:
            raise ImportFailed(f"{full} reads no tensor{_where(first)}: a module transforms its input")
        body = self.module_body(full, entries, unit.outs)
        record = self.calls.get(full, [])
        given = {node: given for given, node in record[0].arguments} if record else {}
        return [
            Stmt(
                "group",
                name=name,
                body=body,
                cls=type(module),
                output=output,
                input=_shape(entries[0]),
                inputs=[self.value(e) for e in entries],
                gives=[self.value(o) for o in unit.outs],
                params=[given.get(e) for e in entries],
                depth=_stack(first).index(full) + 1,
            )
        ]

    def fused(self, full: str, name: str, module: nn.Module, base: type, node: fx.Node) -> list[Stmt]:
        """A module read by `_fused`: its torch.nn layer `base` under its name, then its children."""
        if full in self.named:
            raise ImportFailed(
                f"{full} is called more than once{_where(node)}: the language has no shared weights"
            )
        self.named.add(full)
        inputs = _tensor_args(node)
        statements = []
        for layer, arguments in _readings(module, self.table[base.__name__]):
            if arguments is not None:
                output = _shape(node)
                statements.append(Stmt("layer", op=layer.name, args=arguments, name=name, output=output))
                break
        else:
            raise ImportFailed(
                f"{full} is a {type(module).__module__}.{type(module).__name__}{_where(node)}, a "
                f"{base.__name__} with settings no layer of the language takes"
            )
        statements[0].input = _shape(inputs[0]) if inputs else ()
        for child_name, child in module.named_children():
            if type(child).__name__ == "Identity":
                continue
            statement = self.leaf(f"{full}.{child_name}", child, node)
            statement.input = statements[0].output
            statements.append(statement)
        return statements

    def leaf(self, path: str, module: nn.Module, node: fx.Node) -> Stmt:
        kind = _kind(module)
        for layer, arguments in _readings(module, self.table.get(kind, [])):
            if arguments is not None:
                return Stmt("layer", op=layer.name, args=_tidy(layer.name, arguments), output=_shape(node))
        raise ImportFailed(
            f"{path} is a {type(module).__module__}.{kind}{_where(node)}: no layer of the language builds it"
            + (" with these settings" if kind in self.table else "")
        )

    def function(self, path: str, node: fx.Node, previous: Value | None = None) -> list[Stmt]:
        """A functional op of a module's forward, as the layer(s) or function computing it
        (unnamed)."""
        import torch

        who = path or type(self.root).__name__
        if not _is_one_tensor(node):  # several tensors
            raise ImportFailed(
                f"{who} calls {_op_name(node)}{_where(node)}, which gives several tensors: the "
                "language has no statement for it"
            )
        output = _shape(node)
        inputs = _tensor_args(node)
        learnt = self.learnt(path, node)
        if learnt is not None:
            return _fresh_chain([learnt], self.value(inputs[0]), self.value(node))
        join = self.join(who, node, inputs, previous)
        if join is not None:
            return [join]
        made = _functional(node, torch)
        if made is None:
            made = self.resampling(who, node)
        if made is None:
            if _is_product(node):
                scale = self.scale(path, node)
                if scale is not None:
                    return _fresh_chain([scale], self.value(inputs[0]) if inputs else None, self.value(node))
            raise ImportFailed(
                f"{who} calls {_op_name(node)}{_where(node)}: the language has no statement for it"
            )
        if len(inputs) > 1 and not any(isinstance(v, Ref) for _, args in made for v in args.values()):
            raise ImportFailed(
                f"{who} calls {_op_name(node)} on {len(inputs)} tensors{_where(node)}: the language has "
                "no statement for it"
            )
        if not made:  # `x.contiguous()`: the value itself
            self.aliases[node] = inputs[0]
            return []
        shape = _shape(inputs[0]) if inputs else ()
        statements = []
        for op, args in made:
            statements.append(Stmt("layer", op=op, args=args, output=output, input=shape))
            shape = output
        return _fresh_chain(statements, self.value(inputs[0]) if inputs else None, self.value(node))

    def join(self, who: str, node: fx.Node, inputs: list[fx.Node], previous: Value | None) -> Stmt | None:
        """`a + b`, `a * b`, `torch.cat([a, b, …], 1)` of values: `add`, `mul`, `cat`, reading
        the first and naming the others (a sum or product reads the value just made where it can:
        the order of its terms does not change it)."""
        sum_, product, cat = _is_sum(node), _is_product(node), _is_cat(node)
        output = _shape(node)
        if _is_matmul(node) and len(inputs) == 2:
            return Stmt(
                "layer",
                op="matmul",
                args={"other": Ref(self.value(inputs[1]))},
                output=output,
                input=_shape(inputs[0]),
                reads=self.value(inputs[0]),
                gives=[self.value(node)],
            )
        factor = _number_factor(node)
        if factor is not None and len(inputs) == 1:
            return Stmt(
                "layer",
                op="mul",
                args={"others": [factor]},
                output=output,
                input=_shape(inputs[0]),
                reads=self.value(inputs[0]),
                gives=[self.value(node)],
            )
        if not (sum_ or product or cat) or len(inputs) < 2 or (not cat and len(inputs) != 2):
            return None
        if cat:
            if len(inputs) != len(_cat_inputs(node)):
                raise ImportFailed(
                    f"{who} concatenates a tensor that is none of its values{_where(node)} (a parameter "
                    "or a constant): the language concatenates values"
                )
            order = inputs
        else:
            a, b = inputs
            fits = [x for x in (a, b) if _shape(x) == output]
            if sum_ and len(fits) != 2:
                raise ImportFailed(
                    f"{who} adds tensors of shapes {shape_text(_shape(a))} and {shape_text(_shape(b))}"
                    f"{_where(node)}: `add` adds values of one shape"
                )
            if not fits:
                return None
            other = b if fits[0] is a else a
            if product and (
                len(_shape(other)) != len(output)
                or any(o not in (1, s) for o, s in zip(_shape(other), output, strict=True))
            ):
                raise ImportFailed(
                    f"{who} multiplies tensors of shapes {shape_text(_shape(a))} and {shape_text(_shape(b))}"
                    f"{_where(node)}: `mul` scales a value by one of its shape or 1 on an axis"
                )
            order = [fits[0], other]
            if len(fits) == 2 and previous is not None and self.value(b) is previous:
                order = [b, a]
        op = "cat" if cat else "add" if sum_ else "mul"
        return Stmt(
            "layer",
            op=op,
            args={"others": [Ref(self.value(n)) for n in order[1:]]},
            output=output,
            input=_shape(order[0]),
            reads=self.value(order[0]),
            gives=[self.value(node)],
        )

    def learnt(self, path: str, node: fx.Node) -> Stmt | None:
        """A learnt tensor joined with the value (`learnt_tensors`), where the module whose forward
        joins it holds it: `token` or `posembed` under the parameter's name."""
        found = node.meta.get("learnt")
        if found is None:
            return None
        op, target = found
        owner, _, name = target.rpartition(".")
        who = path or type(self.root).__name__
        if owner != path:
            raise ImportFailed(
                f"{who} reads {target}, a parameter of another module{_where(node)}: a learnt tensor "
                "is a parameter of the module that uses it"
            )
        tensor = self.root.get_parameter(target).detach()
        sample = _shape(node)
        if op == "token":
            args: dict[str, Any] = {"count": int(tensor.shape[1])}
            if tuple(tensor.shape) != (1, tensor.shape[1], sample[-1]):
                return None
        else:
            args = {}
            if tuple(tensor.shape) != (1, *sample):
                raise ImportFailed(
                    f"{who} adds {target}, of shape {shape_text(tuple(tensor.shape))}, to a "
                    f"{shape_text(sample)} sample{_where(node)}: `posembed` adds a tensor of the "
                    "sample's shape"
                )
        return Stmt("layer", op=op, args=args, name=name, output=sample, input=_shape(_tensor_args(node)[0]))

    def scale(self, path: str, node: fx.Node) -> Stmt | None:
        """x · a parameter of the module, of shape [C, 1, 1]: a `scale` statement of its name."""
        params: list[Any] = [a for a in node.args if getattr(a, "op", None) == "get_attr"]
        if len(params) != 1:
            return None
        target = str(params[0].target)
        owner, _, name = target.rpartition(".")
        if owner != path:
            return None
        tensor = self.root.get_parameter(target).detach()
        shape = tuple(tensor.shape)
        sample = _shape(node)
        if shape != (sample[0], *(1,) * (len(sample) - 1)):
            return None
        first = float(tensor.flatten()[0])
        init = first if bool((tensor == first).all()) else 1.0
        return Stmt("layer", op="scale", args={"init": init}, name=name, output=sample)

    # --- sizes read from other values: resize, padto ----------------------------------------------

    def references(self, node: fx.Node) -> list[fx.Node]:
        """The tensor whose size `node` takes, where the spec names it: `F.interpolate(x,
        size=y.shape[-2:])` is `resize(y)`, U-Net's centred `F.pad` to `y`'s size `padto(y)`."""
        found = self._analysed(node)
        # a refusal (text) or the identity (`()`) names no tensor
        return [found[1]] if isinstance(found, tuple) and found and found[1] is not None else []

    def _analysed(self, node: fx.Node) -> Any:
        if node not in self._references:
            self._references[node] = _resampled(node)
        return self._references[node]

    def resampling(self, who: str, node: fx.Node) -> list[tuple[str, dict[str, Any]]] | None:
        found = self._analysed(node)
        if found is None:
            return None
        if isinstance(found, str):
            raise ImportFailed(f"{who} calls {_op_name(node)}{_where(node)}{found}")
        if not found:  # nothing to do at this input: the value itself
            return []
        op, reference, args = found
        args = _tidy(op, args)
        if reference is not None:
            args = {**args, ("to" if op == "resize" else "like"): Ref(self.value(reference))}
        return [(op, args)]


# --- functional ops -------------------------------------------------------------------------------


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


def _branch(body: list[Stmt]) -> Stmt:
    """A concat branch: a branch that is one child module is that module (`branch name { … }`);
    any other is spliced, its statements the concat's members."""
    if len(body) == 1 and body[0].kind == "group":
        group = body[0]
        return Stmt("branch", name=group.name, body=group.body, output=group.output, cls=group.cls)
    return Stmt("branch", body=body, spliced=True)


def _arg(node: fx.Node, index: int, name: str, default: Any) -> Any:
    if name in node.kwargs:
        return node.kwargs[name]
    return node.args[index] if len(node.args) > index else default


def _functional(node: fx.Node, torch: Any) -> list[tuple[str, dict[str, Any]]] | None:
    """The layers that compute a functional op, or None."""
    F = torch.nn.functional
    target = _target(node)
    method = target if node.op == "call_method" else None
    plain = {
        "relu": (F.relu, torch.relu),
        "relu6": (F.relu6,),
        "sigmoid": (torch.sigmoid, F.sigmoid),
        "tanh": (torch.tanh, F.tanh),
        "silu": (F.silu,),
        "hardswish": (F.hardswish,),
        "hardsigmoid": (F.hardsigmoid,),
        "mish": (F.mish,),
    }
    for op, functions in plain.items():
        if target in functions or method == op:
            return [(op, {})]
    if method in ("contiguous", "clone") or target is torch.clone:
        return []
    if target is F.gelu:
        return [("gelu", {"approximate": node.kwargs.get("approximate", "none")})]
    if target is F.leaky_relu:
        return [("leakyrelu", {"slope": _arg(node, 1, "negative_slope", 0.01)})]
    if target is F.elu:
        return [("elu", {"alpha": _arg(node, 1, "alpha", 1.0)})]
    if target in (F.softmax, torch.softmax, F.log_softmax, torch.log_softmax) or method in (
        "softmax",
        "log_softmax",
    ):
        op = "logsoftmax" if "log" in str(getattr(target, "__name__", target)) else "softmax"
        return [(op, {"dim": _arg(node, 1, "dim", None)})]
    if target is F.dropout:
        return [("dropout", {"p": _arg(node, 1, "p", 0.5)})]
    averages = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)
    if target in (*averages, F.max_pool1d, F.max_pool2d, F.max_pool3d):
        kernel = axes_of(_arg(node, 1, "kernel_size", None))
        stride = _arg(node, 2, "stride", None)
        found: dict[str, Any] = {"kernel": kernel, "padding": axes_of(_arg(node, 3, "padding", 0))}
        if stride and axes_of(stride) != kernel:
            found["stride"] = axes_of(stride)
        if target in averages:
            if _arg(node, 6, "divisor_override", None) is not None:
                return None
            found["ceil"] = _arg(node, 4, "ceil_mode", False)
            found["count_include_pad"] = _arg(node, 5, "count_include_pad", True)
            return [("avgpool", found)]
        if _arg(node, 6, "return_indices", False):
            return None
        found["dilation"] = axes_of(_arg(node, 4, "dilation", 1))
        found["ceil"] = _arg(node, 5, "ceil_mode", False)
        return [("maxpool", found)]
    if target in (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d):
        return [("adaptiveavgpool", {"size": axes_of(_arg(node, 1, "output_size", None))})]
    if target in (F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d):
        return [("adaptivemaxpool", {"size": axes_of(_arg(node, 1, "output_size", None))})]
    if target is operator.getitem or method == "narrow" or target is torch.narrow:
        return _narrowed(node) or _selected(node)
    flattens = target is torch.flatten or method == "flatten"
    if flattens:
        start, end = _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1)
        if (start, end) == (1, -1):
            return [("flatten", {})]
        if start == 0:  # folds the batch axis into the sample's: no per-sample layer does that
            return None
    # A reshape that keeps the batch axis, written from the output's shape (which fx recorded):
    # `view(b, c)` after `b, c = x.shape[:2]`, `squeeze(-1)`, `flatten(2)`.
    reshapes = ("view", "reshape", "squeeze", "unsqueeze")
    if flattens or method in reshapes or target in (torch.reshape, torch.squeeze, torch.unsqueeze):
        if node.meta["tensor_meta"].shape[0] != _tensor_args(node)[0].meta["tensor_meta"].shape[0]:
            return None  # it moves the batch axis (`view(1, -1)`)
        shape = _shape(node)
        if len(shape) == 1:
            return [("flatten", {})]
        return [("view", {"dims": shape})]
    if method == "mean" or target is torch.mean:
        dims = _arg(node, 1, "dim", None)
        dims = [dims] if isinstance(dims, int) else dims
        source = _tensor_args(node)[0]
        rank = len(source.meta["tensor_meta"].shape)
        keepdim = _arg(node, 2, "keepdim", False)
        if dims is None or any(d % rank == 0 for d in dims):
            return None  # over the batch
        if rank == 4 and sorted(d % 4 for d in dims) == [2, 3]:  # an image's global average pool
            pooled: list[tuple[str, dict[str, Any]]] = [("adaptiveavgpool", {"size": (1, 1)})]
            return pooled if keepdim else [*pooled, ("flatten", {})]
        return [("mean", {"dim": tuple(dims), "keepdim": keepdim})]
    if method == "transpose" or target is torch.transpose:
        rank = len(_tensor_args(node)[0].meta["tensor_meta"].shape)
        first, second = (int(d) % rank for d in node.args[1:3])  # type: ignore[arg-type]
        if 0 in (first, second):
            return None  # it moves the batch axis
        order = list(range(rank))
        order[first], order[second] = order[second], order[first]
        return [("permute", {"dims": tuple(d - 1 for d in order[1:])})]
    if method == "permute" or target is torch.permute:
        dims = list(node.args[1:]) if method else list(_arg(node, 1, "dims", ()))
        if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
            dims = list(dims[0])
        return [("permute", {"dims": tuple(d - 1 for d in dims[1:])})] if dims and dims[0] == 0 else None
    if target is F.pixel_shuffle or method == "pixel_shuffle":
        return [("pixelshuffle", {"factor": _arg(node, 1, "upscale_factor", None)})]
    if target is F.pixel_unshuffle or method == "pixel_unshuffle":
        return [("pixelunshuffle", {"factor": _arg(node, 1, "downscale_factor", None)})]
    if getattr(target, "__name__", "") == "channel_shuffle":
        return [("shuffle", {"groups": _arg(node, 1, "groups", None)})]
    return None


def _narrowed(node: fx.Node) -> list[tuple[str, dict[str, Any]]] | None:
    """`x[:, a:b]` (with any full slices after), `x.narrow(1, start, length)`: a `narrow` of the
    channels; any other indexing, None."""
    from torch.fx.passes.shape_prop import TensorMetadata

    sources = _tensor_args(node)
    if len(sources) != 1 or sources[0] is not node.args[0]:
        return None
    if not isinstance(sources[0].meta.get("tensor_meta"), TensorMetadata):
        return None  # a share of a chunk or split, read as a split concat
    channels = sources[0].meta["tensor_meta"].shape[1]
    if node.target is operator.getitem:
        index = node.args[1] if isinstance(node.args[1], tuple) else (node.args[1],)
        whole = slice(None)
        rest_whole = all(i == whole or i is Ellipsis for i in index[2:])
        if len(index) < 2 or index[0] != whole or not isinstance(index[1], slice) or not rest_whole:
            return None
        bounds = (index[1].start, index[1].stop, index[1].step)
        if not all(b is None or isinstance(b, int) for b in bounds):
            return None
        start, stop, step = index[1].indices(channels)
    else:  # x.narrow(dim, start, length), torch.narrow(x, dim, start, length)
        given = [*node.args[1:4], None, None, None]
        dim, first, length = given[0], given[1], given[2]
        rank = len(sources[0].meta["tensor_meta"].shape)
        if dim not in (1, 1 - rank) or not isinstance(first, int) or not isinstance(length, int):
            return None
        start, stop, step = first % channels, first % channels + length, 1
    if step != 1 or stop <= start:
        return None
    return [("narrow", {"length": stop - start, "start": start})]


def _selected(node: fx.Node) -> list[tuple[str, dict[str, Any]]] | None:
    """`x[:, 0]` (ViT's class token), `x[:, :, 2]`: one position of an axis, which is dropped."""
    sources = _tensor_args(node)
    if node.target is not operator.getitem or len(sources) != 1 or sources[0] is not node.args[0]:
        return None
    index = node.args[1] if isinstance(node.args[1], tuple) else (node.args[1],)
    whole = slice(None)
    picks = [(axis, i) for axis, i in enumerate(index) if i != whole and i is not Ellipsis]
    if len(index) < 2 or index[0] != whole or Ellipsis in index or len(picks) != 1:
        return None
    axis, position = picks[0]
    if not isinstance(position, int) or isinstance(position, bool):
        return None
    return [("select", {"index": position, "dim": axis})]


# --- the spec's text ------------------------------------------------------------------------------


# --- sizes: resize, upsample, pad, padto ----------------------------------------------------------


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


# --- the spec's text ------------------------------------------------------------------------------


def value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        text = repr(value)
        return text
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        return value_text(value[0])
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_expr_text(v) for v in value) + "]"
    return str(value)


#: Optional arguments written without their name when they come first: `dropout(0.25)`.
POSITIONAL = ("p", "init")


def layer_text(op: str, args: dict[str, Any]) -> str:
    """`conv(64, kernel=7, stride=2, padding=3, bias=false)`: arguments at their default left out,
    the first required one positional, a variadic layer's list written out."""
    layer = layers.LAYERS[op]
    parts: list[str] = []
    for arg in layer.args:
        if arg.name not in args:
            continue
        value = args[arg.name]
        if layer.variadic == arg.name:
            parts.extend(_expr_text(v) for v in value) if value else parts.append("[]")
            continue
        default = arg.default
        if not arg.required and (value == default or (isinstance(default, tuple) and _same(value, default))):
            continue
        # positional only where the call reads it so: the layer's first argument
        if (arg.required or (arg.name in POSITIONAL and arg is layer.args[0])) and not parts:
            parts.append(_expr_text(value))
        else:
            parts.append(f"{arg.name}={_expr_text(value)}")
    return f"{op}({', '.join(parts)})" if parts else op


def _same(a: Any, b: Any) -> bool:
    return isinstance(a, tuple) and tuple(a) == tuple(b)


def _expr_text(value: Any) -> str:
    if isinstance(value, Ref):
        assert value.value.name is not None, "a value read by name has a name"
        return value.value.name
    return value.text if isinstance(value, Expr) else value_text(value)


def shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def name_text(name: str, keyword_ok: bool = True) -> str:
    """`name` as the spec writes it: bare where the grammar takes it, else quoted. A statement's
    `name:` may be a keyword (ConvNeXt's `block:`), except the three that start an expression or a
    file's import."""
    keyword = name in keywords() and (not keyword_ok or name in ("import", "true", "false"))
    return name if name.isidentifier() and not keyword else f'"{name}"'


def is_function(statement: Stmt) -> bool:
    """A function of no module (`cat`, `add`, `padto`, …): no member, no number among them."""
    return statement.kind == "layer" and not layers.LAYERS[statement.op].member


# --- names of values ------------------------------------------------------------------------------


class Names:
    """Which values of one definition (a model or a block) are read by name, and their names: the
    `forward`'s variable where no other value holds it from its value's making to its last
    reading, else the next `x1`, `x2`, … that no value of the definition is named. Also settles
    which statements read by name (`x -> …`): those that do not read what the statement before
    them makes."""

    def __init__(self, depth: int, reserved: set[str]):
        self.depth = depth
        self.reserved = reserved
        self.position = 0
        self.made: dict[Value, int] = {}
        self.last: dict[Value, int] = {}
        self.wanted: list[Value] = []
        #: the values a statement gives together, for the names a tuple's line gives them
        self.together: dict[Value, tuple[int, int]] = {}

    def make(self, values: list[Value]) -> None:
        for index, value in enumerate(values):
            if value not in self.made:
                self.made[value] = self.position
                if len(values) > 1:
                    self.together[value] = (index, len(values))
                    self.want(value)
        self.position += 1

    def want(self, value: Value) -> None:
        if value not in self.wanted:
            self.wanted.append(value)

    def read(self, value: Value) -> None:
        self.want(value)
        self.last[value] = self.position
        self.position += 1

    def flow(self, statements: list[Stmt], current: Value | None) -> Value | None:
        """Walks `statements` as the spec reads them, from `current`; returns what the last one
        gives."""
        for s in statements:
            if s.kind in ("group", "plain"):
                # a group reads by name where its first statement does: `image -> rgb: { … }`
                s.source = None
                first = _end_of(s.body, 0)
                if first is not None and first.reads is not None and first.reads is not current:
                    s.source = current = first.reads
                    self.read(first.reads)
                current = self.flow(s.body, current)
                continue
            s.source = None
            if s.reads is not None and s.reads is not current:
                s.source = s.reads
                self.read(s.reads)
            for value in refs(list(s.args.values())):
                self.read(value)
            if s.kind in ("residual", "gate", "repeat"):
                self.flow(s.body, s.reads)
                if s.shortcut is not None:
                    self.flow(s.shortcut.body, s.reads)
            elif s.kind == "concat":
                for branch in s.body:
                    self.flow(branch.body, branch.reads or s.reads)
            self.make(s.gives)
            current = s.gives[0] if len(s.gives) == 1 else None
        return current

    def assign(self, fixed: dict[Value, str] | None = None) -> None:
        """Names the values read by name (those in `fixed` as given)."""
        held: dict[str, list[tuple[int, int]]] = {}

        def span(value: Value) -> tuple[int, int]:
            start = self.made.get(value, 0)
            return start, max(self.last.get(value, start), start)

        def free(name: str, value: Value) -> bool:
            start, end = span(value)
            return all(end < s or e < start for s, e in held.get(name, []))

        def hold(name: str, value: Value) -> None:
            value.name = name
            held.setdefault(name, []).append(span(value))

        for value, name in (fixed or {}).items():
            hold(name, value)
        hints: dict[Value, str | None] = {}
        for value in self.wanted:
            if value in (fixed or {}):
                continue
            index, count = self.together.get(value, (0, 1))
            found = hint(value, self.depth, index, count)
            hints[value] = found if nameable(found, self.reserved) else None
        taken = {h for h in hints.values() if h} | set((fixed or {}).values())
        numbered = iter(f"x{i}" for i in range(1, 10**6))
        for value in sorted(hints, key=lambda v: self.made.get(v, 0)):
            given = hints[value]
            if given is not None and free(given, value):
                hold(given, value)
                continue
            while True:
                candidate = next(numbered)
                if candidate not in taken and candidate not in self.reserved and free(candidate, value):
                    break
            taken.add(candidate)
            hold(candidate, value)


WIDTH = 100


@dataclass
class Line:
    indent: int
    text: str
    shape: tuple[int, ...] | None = None
    #: a line of layers only, which a following unnamed layer may join
    joinable: bool = False


def _container_of(statement: Stmt) -> str | None:
    """The container a statement's module is a member of (`blocks` for `blocks.0`); for a
    residual or gate (spliced, no module), the one all the modules inside it are members of
    (`self.body[1](self.body[0](x) + x)`)."""
    name = statement.name
    if name is not None:
        return name.split(".", 1)[0] if "." in name else None
    if statement.kind not in ("residual", "gate"):
        return None
    heads = {_container_of(s) if s.name is not None else "" for s in _members_within(statement)}
    return heads.pop() if len(heads) == 1 and None not in heads and "" not in heads else None


def _members_within(statement: Stmt) -> Iterator[Stmt]:
    """The statements inside a composite that name a module of the enclosing one: its own, and
    those inside the composites it holds (a group's are the group's own)."""
    for inner in [*statement.body, *(statement.shortcut.body if statement.shortcut is not None else [])]:
        if inner.name is not None or inner.kind in ("group", "call"):
            yield inner
        elif inner.kind in ("residual", "gate"):
            yield from _members_within(inner)


def _strip_container(statement: Stmt, head: str) -> None:
    """`head.`, taken off the names of a container's members (inside composites too)."""
    if statement.name is not None:
        statement.name = statement.name[len(head) + 1 :]
        return
    if statement.kind in ("residual", "gate"):
        for inner in _members_within(statement):
            _strip_container(inner, head)


def _numbered_apart(statements: list[Stmt]) -> list[Stmt]:
    """An unnamed statement is numbered by its place, as in nn.Sequential; where a member of the
    module is named that number (a ModuleList's `1`, behind a functional ReLU), the unnamed one is
    named after its layer instead (`relu_1`): it holds no weights, so any name keeps the
    state_dict's. Bodies with composites (whose members number on) are left as they are; a
    function (`cat`, `add`) is no member and takes no number."""
    if any(s.kind not in ("layer", "group", "call") for s in statements):
        return statements
    members = [s for s in statements if not is_function(s)]
    taken = {s.name for s in members if s.name is not None}
    for place, statement in enumerate(members):
        if statement.name is None and str(place) in taken:
            name = f"{statement.op or statement.kind}_{place}"
            while name in taken:
                name += "_"
            statement.name = name
            taken.add(name)
    return statements


def _end_of(body: list[Stmt], end: int) -> Stmt | None:
    """The first (`end` 0) or last (-1) statement of a body, within its groups."""
    while body:
        statement = body[end]
        if statement.kind not in ("group", "plain"):
            return statement
        body = statement.body
    return None


def _walk(body: list[Stmt]) -> Iterator[Stmt]:
    for statement in body:
        yield statement
        yield from _walk(statement.body)
        if statement.shortcut is not None:
            yield from _walk(statement.shortcut.body)


def _named_by_group(group: Stmt) -> Value | None:
    """What a group gives, where its last statement names it and nothing else in it is named: the
    group names it (`rgb: { … } as x`)."""
    last = _end_of(group.body, -1)
    if last is None or len(last.gives) != 1 or last.gives[0].name is None:
        return None
    if any(v.name is not None for s in _walk(group.body) if s is not last for v in s.gives):
        return None
    return last.gives[0]


def _source_text(s: Stmt) -> str:
    return f"{s.source.name} -> " if s.source is not None else ""


def _bind_text(s: Stmt) -> str:
    """` as x`, or ` as (a, b)` for a statement that gives several values."""
    if s.bound_outside:
        return ""
    if len(s.gives) > 1:
        return f" as ({', '.join(v.name or '_' for v in s.gives)})"
    if s.gives and s.gives[0].name is not None:
        return f" as {s.gives[0].name}"
    return ""


def _flowing(s: Stmt) -> bool:
    """Whether a statement reads or gives a value by name."""
    return s.source is not None or bool(_bind_text(s))


class Writer:
    """Statements → lines, a shape comment on each; `count` follows each module's member numbers,
    so a member named as `nn.Sequential` would number it is written without its name."""

    def __init__(self, in_block: bool = False) -> None:
        self.lines: list[Line] = []
        self.in_block = in_block

    def body(self, statements: list[Stmt], indent: int, count: list[int]) -> None:
        for statement in statements:
            self.statement(statement, indent, count)

    def _label(self, statement: Stmt, count: list[int]) -> str:
        name = statement.name
        if is_function(statement):
            return ""
        number = count[0]
        count[0] += 1
        return "" if name is None or name == str(number) else f"{name_text(name)}: "

    def statement(self, s: Stmt, indent: int, count: list[int]) -> None:
        source, bind = _source_text(s), _bind_text(s)
        shape = s.output if len(s.gives) <= 1 else None
        if s.kind == "layer":
            label = self._label(s, count)
            text = label + layer_text(s.op, s.args)
            last = self.lines[-1] if self.lines else None
            if (
                not label
                and not source
                and not is_function(s)
                and layers.LAYERS[s.op].kind not in ("conv", "linear")
                and last is not None
                and last.joinable
                and last.indent == indent
                and indent * 4 + len(last.text) + len(text) + len(bind) + 1 <= WIDTH - 20
            ):
                last.text += " " + text + bind
                last.shape = shape
                last.joinable = not bind
                return
            self.lines.append(
                Line(indent, source + text + bind, shape, joinable=not is_function(s) and not bind)
            )
            return
        if s.kind == "call":
            label = self._label(s, count)
            self.lines.append(Line(indent, source + label + call_text(s) + bind, shape))
            return
        if s.kind in ("group", "plain"):
            label = self._label(s, count)
            named, bind, shape = _named_by_group(s), "", s.output
            if named is not None:
                ending = _end_of(s.body, -1)
                ending.bound_outside = True  # type: ignore[union-attr]
                bind = f" as {named.name}"
                # a block's shapes are its first call's, and `check` does not hold a comment after
                # `} as x` to the shapes of the others
                shape = None if self.in_block else shape
            self.block_of(source + label + "{", s.body, indent, shape, [0], bind)
            return
        if s.kind == "repeat":
            head = f"*repeat {_expr_text(s.count)}" + (f" as {s.index}" if s.index else "") + " {"
            inner = [count[0]]
            self.block_of(source + head, s.body, indent, s.output, inner, bind)
            # after a repeat of a parameter's count, numbers are not known: names are written
            count[0] += (inner[0] - count[0]) * s.count if isinstance(s.count, int) else -(10**9)
            return
        if s.kind == "residual":
            self.lines.append(Line(indent, source + "*residual {"))
            self.body(s.body, indent + 1, count)
            if s.shortcut is not None:
                count[0] += 1
                # `shortcut` is what an unnamed clause is called (and a keyword, so not a name there)
                name = s.shortcut.name
                self.block_of(
                    "shortcut {" if name in (None, "shortcut") else f"shortcut {name_text(name, False)} {{",
                    s.shortcut.body,
                    indent + 1,
                    None if self.in_block else s.output,  # `check` holds no comment there to a block's calls
                    [0],
                )
            self.lines.append(Line(indent, "}" + bind, s.output))
            return
        if s.kind == "gate":
            self.block_of(source + "*gate {", s.body, indent, s.output, count, bind)
            return
        if s.kind == "concat":
            split = s.args.get("split")
            head = "*concat" + (f"(split={value_text(split)})" if split is not None else "") + " {"
            self.lines.append(Line(indent, source + head))
            for branch in s.body:
                if branch.spliced:
                    self.block_of("*branch {", branch.body, indent + 1, None, count)
                else:
                    count[0] += 1
                    self.block_of(
                        f"branch {name_text(branch.name or '', keyword_ok=False)} {{",
                        branch.body,
                        indent + 1,
                        None,
                        [0],
                    )
            self.lines.append(Line(indent, "}" + bind, s.output))
            return
        raise AssertionError(s.kind)

    def block_of(
        self,
        head: str,
        body: list[Stmt],
        indent: int,
        shape: tuple[int, ...] | None,
        count: list[int],
        tail: str = "",
    ) -> None:
        """`head body }`, on one line when the body is a few layers or calls and fits."""
        trial = [count[0]]
        inline = [self.one_line(b, trial) for b in body]
        text = f"{head} {' '.join(str(t) for t in inline)} }}{tail}" if body else f"{head} }}{tail}"
        if None not in inline and indent * 4 + len(text) <= WIDTH - 10:
            count[0] = trial[0]
            self.lines.append(Line(indent, text, shape))
            return
        self.lines.append(Line(indent, head))
        self.body(body, indent + 1, count)
        self.lines.append(Line(indent, "}" + tail, shape))

    def one_line(self, s: Stmt, count: list[int]) -> str | None:
        """A statement's text when it takes one line (an unnamed layer, a call, a repeat of one)."""
        if _flowing(s):
            return None
        if s.kind == "layer" and is_function(s):
            return layer_text(s.op, s.args)
        if s.kind == "layer" and (s.name is None or s.name == str(count[0])):
            count[0] += 1
            return layer_text(s.op, s.args)
        if s.kind == "call":
            return self._label(s, count) + call_text(s)
        if s.kind == "repeat" and len(s.body) == 1 and isinstance(s.count, int):
            start = count[0]
            inner = self.one_line(s.body[0], count)
            if inner is None:
                return None
            count[0] = start + (count[0] - start) * s.count
            head = f"*repeat {s.count}" + (f" as {s.index}" if s.index else "")
            return f"{head} {{ {inner} }}"
        return None

    def text(self) -> list[str]:
        width = max((4 * line.indent + len(line.text) for line in self.lines if line.shape), default=0)
        column = min(width + 2, WIDTH - 24)
        out = []
        for line in self.lines:
            text = "    " * line.indent + line.text
            if line.shape:  # `fmt --shapes` writes the `[]` of one number a sample
                text = f"{text.ljust(column)}  # {shape_text(line.shape)}"
            out.append(text.rstrip())
        return out


def call_text(s: Stmt) -> str:
    if not s.args:
        return f"{s.op}()"
    return f"{s.op}({', '.join(_expr_text(v) for v in s.args.values())})"


def _output_text(outputs: list[tuple[str | None, Value]]) -> str:
    return "output " + ", ".join(
        (f"{k}: " if k.isidentifier() and k not in keywords() else f'"{k}": ') + v.name  # type: ignore[operator]
        if k is not None
        else v.name or "_"
        for k, v in outputs
    )


@dataclass
class Model:
    """What the spec's model is made of."""

    name: str
    #: each input's shape and value
    inputs: list[tuple[tuple[int, ...], Value]]
    body: list[Stmt]
    #: each output (its key where the model returns a dict)
    outputs: list[tuple[str | None, Value]]
    returns: str  # one | tuple | dict


def spec_text(model: Model, blocks: list[Any], header: list[str]) -> str:
    lines = [f"# {h}" if h else "#" for h in header]
    reserved = reserved_names([b.name for b in blocks])
    for block in blocks:
        names = Names(block.depth, reserved | {p.split(":")[0] for p in block.params})
        fixed = dict(zip(block.tensors, [v.name for v in block.tensors], strict=True))
        for value in [block.entry, *block.tensors]:
            names.make([value])
        last = names.flow(block.body, block.entry)
        speaks = len(block.outputs) > 1 or (block.outputs and block.outputs[0] is not last)
        if speaks:
            for value in block.outputs:
                names.read(value)
        names.assign(fixed)
        writer = Writer(in_block=True)
        if block.entry.name is not None:
            writer.lines.append(Line(1, f"input as {block.entry.name}"))
        writer.body(block.body, 1, [0])
        if speaks:
            writer.lines.append(Line(1, _output_text([(None, v) for v in block.outputs])))
        signature = f"({', '.join(block.params)})" if block.params else ""
        lines += ["", f"block {block.name}{signature} {{", *writer.text(), "}"]
    names = Names(0, reserved)
    for _, value in model.inputs:
        names.make([value])
        if len(model.inputs) > 1:
            names.want(value)
    last = names.flow(model.body, model.inputs[-1][1])
    speaks = model.returns != "one" or model.outputs[0][1] is not last
    if speaks:
        for _, value in model.outputs:
            names.read(value)
    names.assign()
    writer = Writer()
    for shape, value in model.inputs:
        writer.lines.append(
            Line(1, f"input {shape_text(shape)}" + (f" as {value.name}" if value.name else ""))
        )
    writer.body(model.body, 1, [0])
    if speaks:
        writer.lines.append(Line(1, _output_text(model.outputs)))
    lines += ["", f"model {model.name} {{", *writer.text(), "}"]
    return "\n".join(lines) + "\n"


# --- the proof ------------------------------------------------------------------------------------


def leaves(model: nn.Module) -> dict[str, str]:
    """Each module without children, as `Class(arguments)` the way it prints itself (a subclass
    that only fixes a torch.nn module's arguments as that module), `inplace` aside (it changes no
    value); strings unquoted (torchvision's StochasticDepth prints
    `mode=row`) and a tuple of one number (`(5,)`, a square pair, a cube's triple) as that number,
    as PyTorch's modules take either."""
    found = {}
    for path, module in model.named_modules():
        if not list(module.children()):
            name, _, text = repr(module).partition("(")
            name = _kind(module) if name == type(module).__name__ else name
            text = ", ".join(
                part for part in text.removesuffix(")").split(", ") if not part.startswith("inplace=")
            )
            text = re.sub(r"'([^']*)'", r"\1", text)
            found[path] = re.sub(r"\((-?\d+)(?:,|(?:, \1)+)\)", r"\1", f"{name}({text})")
    return found


def agrees(ours: str | None, theirs: str) -> str | None:
    """Ours where it is theirs; where theirs prints no arguments (torchvision's Permute keeps its
    dims to itself), the class alone: the outputs' agreement checks what such a module computes."""
    if ours is not None and theirs.endswith("()") and ours.startswith(theirs[:-1]):
        return theirs
    return ours


def idle_modules(module: nn.Module, used: set[str]) -> list[str]:
    """The outermost submodules whose state the traced forward never touches (GoogLeNet's
    auxiliary classifiers in eval mode)."""
    idle: list[str] = []
    for key in module.state_dict():
        parts = key.split(".")[:-1]
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            # a module called whole (a leaf such as nn.MultiheadAttention) runs its submodules
            if not any(u == prefix or u.startswith(prefix + ".") or prefix.startswith(u + ".") for u in used):
                if prefix not in idle:
                    idle.append(prefix)
                break
    return idle


def _tensors(result: Any) -> list[tuple[str, Any]]:
    """A module's outputs, each with where it stands: `out`, `[1]`, `["aux"]`."""
    if isinstance(result, dict):
        return [(f'["{k}"]', v) for k, v in result.items()]
    if isinstance(result, (list, tuple)):
        return [(f"[{i}]", v) for i, v in enumerate(result)]
    return [("", result)]


def prove(text: str, original: nn.Module, samples: list[tuple[int, ...]], ran: set[str]) -> int:
    """Compiles, builds and runs `text` against `original`; returns its line count. Raises
    `ImportFailed` (as a bug of the importer) when it does not reproduce the module."""
    import torch

    from .builder import build_model
    from .errors import SourceCache, render
    from .loader import Loader
    from .program import compile_file

    loader = Loader()
    path = "imported.arch"
    loader.add_text(text, path)
    program = compile_file(path, loader=loader)
    if program.errors:
        cache = SourceCache(loader.sources)
        shown = "\n".join(render(d, cache) for d in program.errors[:3])
        raise ImportFailed(f"the spec written does not check (a bug in archdsl import):\n{shown}")
    model = program.models[0]
    expected_params = sum(p.numel() for p in original.parameters())
    ours = build_model(model).eval()
    try:
        ours.load_state_dict(original.state_dict(), strict=True)
    except RuntimeError as exc:
        raise ImportFailed(
            f"the spec written does not take the module's weights (a bug in archdsl import): "
            f"{_first_line(exc)}"
        ) from None
    if model.params != expected_params:
        raise ImportFailed(
            f"the spec has {model.params:,} parameters, the module {expected_params:,} "
            "(a bug in archdsl import)"
        )
    xs = _samples(samples)
    with torch.no_grad():
        expected, got = _tensors(original.eval()(*xs)), _tensors(ours(*xs))
    if [k for k, _ in expected] != [k for k, _ in got]:
        raise ImportFailed(
            f"the spec gives {', '.join(k or 'one tensor' for k, _ in got)}, the module "
            f"{', '.join(k or 'one tensor' for k, _ in expected)} (a bug in archdsl import)"
        )
    for (where, want), (_, have) in zip(expected, got, strict=True):
        scale = max(want.abs().max().item(), 1.0)
        difference = (have - want).abs().max().item() if have.shape == want.shape else math.inf
        if not difference <= 1e-5 * scale:
            raise ImportFailed(
                f"the spec's outputs{where and ' ' + where} differ from the module's by {difference:.3g} "
                "(a bug in archdsl import)"
            )
    mine = leaves(ours)
    theirs = {p: t for p, t in leaves(original).items() if p in ran}
    # an nn.Identity has no settings to compare (and stands nowhere where it was a shortcut)
    wrong = [p for p, t in theirs.items() if t != "Identity()" and agrees(mine.get(p), t) != t]
    if wrong:
        raise ImportFailed(
            f"the spec's {wrong[0]} is {mine.get(wrong[0])}, the module's {theirs[wrong[0]]} "
            "(a bug in archdsl import)"
        )
    return text.count("\n")


@dataclass(frozen=True)
class Imported:
    text: str
    name: str
    params: int
    lines: int


#: Warnings that describe the module itself at the input given, so the spec allows them: a size
#: that does not divide exactly (the module floors it as the spec does; the proof compares them).
INHERENT = (INEXACT,)


def _canonical(text: str) -> str:
    """The spec in `archdsl fmt`'s layout, with a true shape comment on each line of the model
    (and on a block's lines where every call agrees), so that neither `fmt` nor `check --strict`
    has anything to say: a warning the module itself has at this input (`INHERENT`) is marked
    allowed on its line. Text that does not check is left to `prove`, which reports it."""
    from .fmt import FormatError, format_text
    from .loader import Loader
    from .program import compile_file

    try:
        text = format_text(text, shapes=True)
    except FormatError:
        return text
    loader = Loader()
    loader.add_text(text, "imported.arch")
    program = compile_file("imported.arch", loader=loader)
    lines = text.split("\n")
    codes: dict[int, list[str]] = {}
    for diagnostic in program.diagnostics:
        if diagnostic.code in INHERENT and not diagnostic.is_error and not diagnostic.allowed:
            found = codes.setdefault(diagnostic.span.line - 1, [])
            if diagnostic.code not in found:
                found.append(diagnostic.code)
    if not codes:
        return text
    for index, found in codes.items():
        line = lines[index]
        allow = f"archdsl: allow {', '.join(found)}"
        lines[index] = f"{line}  {allow}" if "#" in line else f"{line}  # {allow}"
    return format_text("\n".join(lines))


def _inputs(module: nn.Module, sample: Any) -> list[tuple[int, ...]]:
    """The per-sample shape of each input the module's forward takes."""
    names, required = inputs_of(module)
    if sample is None:
        given: list[tuple[int, ...]] = []
    elif sample and all(isinstance(s, int) for s in sample):
        given = [tuple(sample)]
    else:
        given = [tuple(s) for s in sample]
    if not given:
        if required > 1:
            raise ImportFailed(
                f"{type(module).__name__}'s forward takes {required} inputs ({', '.join(names[:required])}): "
                "give --input once for each"
            )
        guessed = default_input(module)
        if guessed is None:
            raise ImportFailed(
                f"{type(module).__name__}'s input shape cannot be told from its first layer: give --input"
            )
        return [guessed]
    if not required <= len(given) <= max(len(names), 1):
        count = str(required) if required == len(names) else f"{required} to {len(names)}"
        raise ImportFailed(
            f"{type(module).__name__}'s forward takes {count} input{'s' if len(names) != 1 else ''} "
            f"({', '.join(names)}), and --input gives {len(given)}"
        )
    return given


def import_module(
    module: nn.Module,
    name: str,
    sample: tuple[int, ...] | list[tuple[int, ...]] | None = None,
    header: list[str] | None = None,
) -> Imported:
    """`module` as a spec: traced, read back, factored into blocks, and proved to rebuild it.
    `sample` is the per-sample shape of its input, or a list of them for several inputs."""
    from . import factor

    samples = _inputs(module, sample)
    traced, calls = trace(module, samples)
    implicit_broadcasts(traced.graph)
    self_attention(traced.graph, module)
    learnt_tensors(traced.graph, module)
    dense_concatenations(traced.graph)
    reader = Reader(module, traced, calls)
    if len(reader.inputs) != len(samples):
        raise ImportFailed(
            f"{type(module).__name__}'s forward reads {len(reader.inputs)} inputs, and --input gives "
            f"{len(samples)}"
        )
    body = reader.module_body("", reader.inputs, [node for _, node in reader.outputs])
    inputs = []
    for shape, node in zip(samples, reader.inputs, strict=True):
        value = reader.value(node)
        value.hint = str(node.target)
        inputs.append((shape, value))
    outputs = [(key, reader.value(node)) for key, node in reader.outputs]
    for key, value in outputs:  # `result["aux"] = x`: the value is the model's `aux`
        if key is not None and value.hint is None and key.isidentifier():
            value.hint = key
    blocks, body = factor.factor(body)
    params = sum(p.numel() for p in module.parameters())
    top = [
        *(header or []),
        f"{params:,} parameters. Names are the module's, so its state_dict loads with strict=True;",
        "shapes are for one sample of the input."
        if len(samples) == 1
        else "shapes are for one sample of the inputs.",
    ]
    text = _canonical(spec_text(Model(name, inputs, body, outputs, reader.returns), blocks, top))
    ran = {str(n.target) for n in traced.graph.nodes if n.op == "call_module"}
    idle = idle_modules(
        module, {str(n.target) for n in traced.graph.nodes if n.op in ("call_module", "get_attr")}
    )
    if idle:
        held = sum(p.numel() for path in idle for p in module.get_submodule(path).parameters())
        shapes = " and ".join(shape_text(s) for s in samples)
        raise ImportFailed(
            f"{type(module).__name__} holds modules that do not run on a {shapes} "
            f"input in eval mode ({', '.join(idle)}: {held:,} parameters): a spec has no statement for a "
            "module that never runs, so its state_dict could not load; build the module without them "
            "(for torchvision's googlenet and inception_v3, --arg aux_logits=False)"
        )
    lines = prove(text, module, samples, ran)
    return Imported(text, name, params, lines)
