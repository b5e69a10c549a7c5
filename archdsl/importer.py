"""`archdsl import`: an existing `nn.Module` → a `.arch` spec (imports torch; runs the user's code).

The module is traced with `torch.fx` (its leaf modules kept whole, shapes recorded by running the
trace once on a sample), and the graph is read back into the language, module by module:

1. each module's part of the graph is condensed to its own operations and its children (each
   child one step), then decomposed from its input to its output: a chain is a run of statements;
   where the flow forks, the branches rejoin at the fork's immediate post-dominator, and that
   join names the construct — an addition is a `residual`, a product with the input a `gate`, a
   channel concatenation a `concat` (after `chunk` or `split`, a split concat);
2. a leaf module becomes the layer statement that builds it (each layer's `arguments`, the
   inverse of its `module`, in `archdsl/layers/`), a child module a group, a functional op the
   layer that computes it; everything keeps its module's name, so `state_dict` names are the
   original's;
3. groups of one class become calls of a `block` (`factor.py`), with parameters for what differs.

The text is then checked by proof, not by hope: compiled, built, loaded with the original's
`state_dict` strictly, and run on a random input; it is returned only when its outputs equal the
original's and every leaf module stands at the same path with the same settings. What the language
cannot express is an `ImportFailed` naming the op and the line of the module's `forward`.
"""

from __future__ import annotations

import importlib
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
from .layers import Layer
from .parser import keywords

if TYPE_CHECKING:
    from torch import fx, nn


class ImportFailed(Exception):
    """The module cannot be written as a spec; the message says which op, where, and why."""


@dataclass
class Stmt:
    """One statement of the spec being written: a layer, a group (a child module), a block call,
    a composite (`residual`, `gate`, `concat`, always spliced: none is a module of the original's)
    or a `repeat`."""

    kind: str  # layer | group | call | residual | gate | concat | branch | shortcut | repeat
    op: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    body: list[Stmt] = field(default_factory=list)
    #: residual: the shortcut clause; concat: its branches are `body` (kind "branch")
    shortcut: Stmt | None = None
    spliced: bool = False
    output: tuple[int, ...] = ()
    input: tuple[int, ...] = ()
    #: group: the class of the module it stands for (the unit of block factoring)
    cls: type | None = None
    count: int = 0  # repeat: the passes
    index: str | None = None  # repeat: the pass variable


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
    """[C, 224, 224] for a network that starts with a convolution, [F] for one that starts with a
    linear layer; None when the first layer does not tell."""
    from torch import nn

    for child in module.modules():
        if isinstance(child, nn.Conv2d):
            return (child.in_channels, 224, 224)
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


def _reads_as_layer(module: nn.Module, table: dict[str, list[Layer]]) -> bool:
    """Whether a layer reads `module` back; one no layer reads (timm's `GELU`) is traced into
    instead, down to the `F.gelu` it calls."""
    return any(True for _ in _readings(module, table.get(type(module).__name__, [])))


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


def trace(module: nn.Module, sample: tuple[int, ...]) -> fx.GraphModule:
    """The module's fx graph, its leaf modules kept whole, each node's output shape recorded."""
    import torch
    from torch import fx
    from torch.fx.passes.shape_prop import ShapeProp

    table = _importable()

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualified_name: str) -> bool:
            return _readable(m, table) or super().is_leaf_module(m, qualified_name)

        # Where fx cannot decide a branch or a loop (`if x.shape[-1] > 8:`, `h, w = x.shape[2:]`),
        # the module is run on the sample up to that point and the branch it takes is followed:
        # the spec is for this input shape. A branch on a tensor's values is refused.
        def to_bool(self, obj: fx.Proxy) -> bool:
            return bool(_concrete(self, obj.node, module, sample))

        def iter(self, obj: fx.Proxy) -> Iterator[Any]:
            return iter(_concrete(self, obj.node, module, sample))

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
    traced = fx.GraphModule(module, graph)
    x = torch.randn(2, *sample)
    try:
        with torch.no_grad():
            module(x)
    except Exception as exc:
        raise ImportFailed(
            f"{type(module).__name__} fails on a [2, {', '.join(map(str, sample))}] input (--input gives "
            f"its shape): {type(exc).__name__}: {_first_line(exc)}"
        ) from None
    with torch.no_grad():
        ShapeProp(traced).propagate(x)
    return traced


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


def _concrete(tracer: Any, node: fx.Node, module: nn.Module, sample: tuple[int, ...]) -> Any:
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
    with unpatched(), torch.no_grad():
        return fx.Interpreter(module, graph=graph).run(torch.randn(2, *sample))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _user_frame(frames: list[tuple[str, int, str]]) -> str:
    """' (file:line: `code`)' for the last frame outside torch: the module's own forward."""
    import torch

    inside = os.path.dirname(torch.__file__)
    for filename, line, code in reversed(frames):
        if not os.path.abspath(filename).startswith(inside):
            return f" ({filename}:{line}: `{code.strip()}`)" if code else f" ({filename}:{line})"
    return ""


def _where_raised(exc: BaseException) -> str:
    frames = [(f.filename, f.lineno or 0, f.line or "") for f in traceback.extract_tb(exc.__traceback__)]
    return _user_frame(frames)


def _where(node: fx.Node) -> str:
    text = node.stack_trace or ""
    frames = [
        (m.group(1), int(m.group(2)), m.group(3) or "")
        for m in re.finditer(r'File "([^"]+)", line (\d+), in [^\n]*\n(?: +([^\n]*))?', text)
    ]
    return _user_frame(frames)


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
        if not _is_cat(node):
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


def _target(node: fx.Node) -> Any:
    return node.target if node.op == "call_function" else node.target if node.op == "call_method" else None


def _is_tensor(node: fx.Node) -> bool:
    """A tensor, or a tuple of them (`chunk`'s): what flows, not sizes."""
    from torch.fx.passes.shape_prop import TensorMetadata

    meta = node.meta.get("tensor_meta")
    if isinstance(meta, TensorMetadata):  # a named tuple itself
        return True
    return isinstance(meta, (tuple, list)) and bool(meta) and all(isinstance(m, TensorMetadata) for m in meta)


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
    #: the node whose value leaves the step
    out: Any = None

    @property
    def last(self) -> fx.Node:
        return self.out if self.out is not None else self.node if self.node is not None else self.nodes[-1]


class Reader:
    """Reads a traced module back into statements."""

    def __init__(self, root: nn.Module, traced: fx.GraphModule):
        self.root = root
        self.traced = traced
        self.modules = dict(root.named_modules())
        self.table = _importable()
        self.nodes = [n for n in traced.graph.nodes if n.op not in ("placeholder", "output", "get_attr")]
        (self.input,) = [n for n in traced.graph.nodes if n.op == "placeholder"]
        (out,) = [n for n in traced.graph.nodes if n.op == "output"]
        result = out.args[0]
        if not hasattr(result, "op") or not _is_tensor(result):
            raise ImportFailed(
                f"{type(root).__name__}'s forward returns {type(result).__name__}, not one tensor"
            )
        self.output: fx.Node = result
        # A leaf no layer builds is named before the flow is read: an LSTM's tuple, say, would
        # otherwise break the flow first and hide what is missing.
        for node in self.nodes:
            leaf = self.modules[str(node.target)] if node.op == "call_module" else None
            if leaf is None or _readable(leaf, self.table):
                continue
            self.leaf(str(node.target), leaf, node)
        #: how many times each leaf module has been written, per enclosing module
        self.named: set[str] = set()

    # the condensed graph of the module at `path` ("" for the root), entered at `entry`
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
            if unit.node is not None or len(unit.nodes) == 1:
                unit.out = unit.node if unit.node is not None else unit.nodes[0]
                continue
            leaving = [
                n
                for n in unit.nodes
                if any((u.op == "output" or _is_tensor(u)) and owner.get(u) is not unit for u in n.users)
            ]
            if len(leaving) != 1:
                raise ImportFailed(
                    f"{unit.path} gives {len(leaving)} results{_where(unit.nodes[-1])}: "
                    "the language's modules give one tensor"
                )
            unit.out = leaving[0]
        return units, owner

    def module_body(self, path: str, entry: fx.Node, exit_: fx.Node) -> list[Stmt]:
        units, owner = self.units(path)
        preds: dict[str, list[str]] = {}
        succs: dict[str, list[str]] = {ENTRY: []}
        by_key = {u.key: u for u in units}
        for unit in units:
            succs.setdefault(unit.key, [])
            inputs: list[str] = []
            for node in unit.nodes if unit.node is None else [unit.node]:
                for arg in _tensor_args(node):
                    source = owner.get(arg)
                    if source is unit:
                        continue
                    key = source.key if source is not None else None
                    if arg is entry and source is None:
                        key = ENTRY
                    if key is None:
                        raise ImportFailed(
                            f"{path or type(self.root).__name__} reads a tensor from outside its input"
                            f"{_where(node)}: the language passes each module one input"
                        )
                    if key not in inputs:
                        inputs.append(key)
            if not inputs and unit.node is not None:
                raise ImportFailed(
                    f"{path or type(self.root).__name__} computes a tensor that does not come from its "
                    f"input ({_op_name(unit.node)}{_where(unit.node)}, of a parameter or a constant): "
                    "the language's statements transform their input, and a parameter is multiplied "
                    "in only as stored, [C, 1, 1] (`scale`)"
                )
            preds[unit.key] = inputs
            for key in inputs:
                succs.setdefault(key, []).append(unit.key)
        exit_key = ENTRY if exit_ is entry else owner[exit_].key
        for unit in units:
            if unit.key == exit_key:
                continue
            if not succs.get(unit.key):
                raise ImportFailed(
                    f"{unit.path or unit.key}'s result is not used{_where(unit.last)}: a module whose "
                    "forward computes more than its output has no spec"
                )
        graph = _Graph(by_key, preds, succs, exit_key)
        statements = self.chain(path, graph, ENTRY, exit_key, graph.reachable(ENTRY))
        return _numbered_apart(self.containers(path, statements))

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
                if here.name is not None and _container_of(here) == head:
                    last = j
                elif here.name is not None or here.kind != "layer":
                    break
                j += 1
            members = statements[i : last + 1]
            for member in members:
                if member.name is not None:
                    member.name = member.name[len(head) + 1 :]
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

    # --- decomposition ----------------------------------------------------------------------------

    def chain(self, path: str, graph: _Graph, start: str, stop: str, allowed: set[str]) -> list[Stmt]:
        statements: list[Stmt] = []
        current = start
        while current != stop:
            nexts = [s for s in graph.succs[current] if s in allowed]
            if not nexts:
                raise ImportFailed(f"{path or 'the model'}: the flow stops before its output")
            if len(nexts) == 1 and graph.preds[nexts[0]] == [current]:
                unit = graph.units[nexts[0]]
                split = self.split_node(unit)
                if split is None:
                    statements.extend(self.step(path, unit, graph))
                    current = nexts[0]
                    continue
                join = graph.ipdom(nexts[0], allowed)
                statements.append(self.split_concat(path, graph, nexts[0], join, allowed, split))
                current = join
                continue
            join = graph.ipdom(current, allowed)
            statements.append(self.fork(path, graph, current, join, allowed))
            current = join
        return statements

    def branch(self, path: str, graph: _Graph, start: str, end: str, allowed: set[str]) -> list[Stmt]:
        if start == end:
            return []
        region = graph.between(start, end, allowed)
        return self.chain(path, graph, start, end, region | {end})

    def fork(self, path: str, graph: _Graph, start: str, join: str, allowed: set[str]) -> Stmt:
        unit = graph.units[join]
        node = unit.node
        what = _op_name(unit.last)
        if node is None:
            raise ImportFailed(
                f"{path or 'the model'}: {unit.path} takes several inputs{_where(unit.last)}; "
                "the language passes each module one"
            )
        operands = [self._key_of(graph, arg) for arg in _tensor_args(node)]
        if _is_sum(node) and len(operands) == 2:
            bodies = [self.branch(path, graph, start, o, allowed) for o in operands]
            if len(bodies[0]) < len(bodies[1]):
                bodies.reverse()
            body, shortcut = bodies
            # `x + self.downsample(x)` where that is an nn.Identity is the identity shortcut
            shortcut = [s for s in shortcut if not (s.kind == "layer" and s.op == "identity")]
            clause = None
            if shortcut:
                if len(shortcut) != 1 or shortcut[0].kind != "group":
                    raise ImportFailed(
                        f"{path or 'the model'}: a residual's shortcut must be one submodule{_where(node)}"
                    )
                clause = Stmt("shortcut", name=shortcut[0].name, body=shortcut[0].body, output=_shape(node))
            return Stmt("residual", body=body, shortcut=clause, spliced=True, output=_shape(node))
        if _is_product(node) and len(operands) == 2 and start in operands:
            other = operands[1] if operands[0] == start else operands[0]
            body = self.branch(path, graph, start, other, allowed)
            return Stmt("gate", body=body, spliced=True, output=_shape(node))
        if _is_cat(node) and len(operands) == len(_cat_inputs(node)):
            branches = [self.branch(path, graph, start, o, allowed) for o in operands]
            return Stmt("concat", body=[_branch(b) for b in branches], spliced=True, output=_shape(node))
        raise ImportFailed(
            f"{path or 'the model'}: {what} joins branches{_where(node)}; the language joins them by "
            "addition (residual), by multiplying the input (gate) or by concatenating channels (concat)"
        )

    @staticmethod
    def _key_of(graph: _Graph, node: fx.Node) -> str:
        for key, unit in graph.units.items():
            if unit.last is node:
                return key
        return ENTRY

    def split_node(self, unit: Unit) -> list[int] | None:
        """For a `chunk` or `split` on the channels, each share's channel count."""
        node = unit.node
        if node is None or _target(node) not in ("chunk", "split", "__getitem__") or node.op != "call_method":
            return None
        dim = node.kwargs.get("dim", node.args[2] if len(node.args) > 2 else 0)
        if dim != 1:
            return None
        shapes = node.meta.get("tensor_meta")
        return [int(s.shape[1]) for s in shapes] if isinstance(shapes, (list, tuple)) else None

    def split_concat(
        self, path: str, graph: _Graph, split: str, join: str, allowed: set[str], sizes: list[int]
    ) -> Stmt:
        node = graph.units[join].node
        if node is None or not _is_cat(node):
            raise ImportFailed(
                f"{path or 'the model'}: a chunk or split must end in a concatenation"
                f"{_where(graph.units[split].last)}"
            )
        shares = [s for s in graph.succs[split] if s in allowed]
        getitems = {graph.units[s].node.args[1]: s for s in shares}  # type: ignore[union-attr]
        if sorted(getitems) != list(range(len(sizes))):  # type: ignore[type-var]
            raise ImportFailed(
                f"{path or 'the model'}: every share of a split must be used once{_where(node)}"
            )
        operands = [self._key_of(graph, arg) for arg in _tensor_args(node)]
        branches = []
        for index, operand in enumerate(operands):
            share = getitems[index]
            branches.append(_branch(self.branch(path, graph, share, operand, allowed)))
        equal = [math.ceil(sum(sizes) / len(sizes))] * (len(sizes) - 1)
        equal.append(sum(sizes) - sum(equal))
        split_arg: Any = True if sizes == equal else sizes
        return Stmt("concat", args={"split": split_arg}, body=branches, spliced=True, output=_shape(node))

    # --- one step ---------------------------------------------------------------------------------

    def step(self, path: str, unit: Unit, graph: _Graph) -> list[Stmt]:
        if unit.path is None:
            assert unit.node is not None
            return self.function(path, unit.node)
        full = unit.path
        module = self.modules[full]
        # relative to the calling module: dotted where it sits in a container never called
        name = full[len(path) + 1 :] if path and full.startswith(path + ".") else full
        first = unit.nodes[0]
        output = _shape(unit.last)
        inputs = _tensor_args(first)
        base = _fused(module, self.table) if len(unit.nodes) == 1 and first.op == "call_module" else None
        if base is not None:
            return self.fused(full, name, module, base, first)
        if len(unit.nodes) == 1 and first.op == "call_module":
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
            return [statement]
        if full in self.named:
            raise ImportFailed(
                f"{full} is called more than once{_where(first)}: the language has no shared weights"
            )
        self.named.add(full)
        entry = inputs[0] if inputs else self.input
        body = self.module_body(full, entry, unit.last)
        return [
            Stmt(
                "group",
                name=name,
                body=body,
                cls=type(module),
                output=output,
                input=_shape(entry),
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
        kind = type(module).__name__
        for layer, arguments in _readings(module, self.table.get(kind, [])):
            if arguments is not None:
                return Stmt("layer", op=layer.name, args=arguments, output=_shape(node))
        raise ImportFailed(
            f"{path} is a {type(module).__module__}.{kind}{_where(node)}: no layer of the language builds it"
            + (" with these settings" if kind in self.table else "")
        )

    def function(self, path: str, node: fx.Node) -> list[Stmt]:
        """A functional op of a module's forward, as the layer(s) computing it (unnamed)."""
        import torch
        from torch.fx.passes.shape_prop import TensorMetadata

        if not isinstance(node.meta.get("tensor_meta"), TensorMetadata):  # several tensors
            raise ImportFailed(
                f"{path or type(self.root).__name__} calls {_op_name(node)}{_where(node)}, which gives "
                "several tensors, and uses them otherwise than a split concat does (each share through "
                "its own path, concatenated back in order): the language has no statement for it"
            )
        output = _shape(node)
        made = _functional(node, torch)
        if made is None:
            if _is_product(node):
                scale = self.scale(path, node)
                if scale is not None:
                    return [scale]
            raise ImportFailed(
                f"{path or type(self.root).__name__} calls {_op_name(node)}{_where(node)}: the language "
                "has no statement for it"
            )
        inputs = _tensor_args(node)
        shape = _shape(inputs[0]) if inputs else ()
        made_statements = []
        for op, args in made:
            made_statements.append(Stmt("layer", op=op, args=args, output=output, input=shape))
            shape = output
        return made_statements

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
    import torch

    if node.target not in (torch.cat, torch.concat, torch.concatenate):
        return False
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
    return bool(dim == 1)


def _cat_inputs(node: fx.Node) -> list[Any]:
    return list(node.args[0])  # type: ignore[arg-type]


def _branch(body: list[Stmt]) -> Stmt:
    """A concat branch: a branch that is one child module is that module (`branch name { … }`);
    any other is spliced, its statements the concat's members."""
    if len(body) == 1 and body[0].kind == "group":
        group = body[0]
        return Stmt("branch", name=group.name, body=group.body, output=group.output, cls=group.cls)
    return Stmt("branch", body=body, spliced=True)


class _Graph:
    def __init__(
        self, units: dict[str, Unit], preds: dict[str, list[str]], succs: dict[str, list[str]], exit_: str
    ):
        self.units = units
        self.preds = preds
        self.succs = succs
        self.exit = exit_
        self.order = {ENTRY: -1, **{key: i for i, key in enumerate(units)}}

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

    def ipdom(self, start: str, allowed: set[str]) -> str:
        """The first step every path from `start` (within `allowed`) to the exit passes."""
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
            raise ImportFailed("the flow does not rejoin before the output")
        return min(candidates, key=self.order.__getitem__)


# --- functional ops -------------------------------------------------------------------------------


def _arg(node: fx.Node, index: int, name: str, default: Any) -> Any:
    if name in node.kwargs:
        return node.kwargs[name]
    return node.args[index] if len(node.args) > index else default


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


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
    if target in (F.avg_pool2d, F.max_pool2d):
        kernel = _pair(_arg(node, 1, "kernel_size", None))
        stride = _arg(node, 2, "stride", None)
        found: dict[str, Any] = {"kernel": kernel, "padding": _pair(_arg(node, 3, "padding", 0))}
        if stride and _pair(stride) != kernel:
            found["stride"] = _pair(stride)
        if target is F.avg_pool2d:
            if _arg(node, 6, "divisor_override", None) is not None:
                return None
            found["ceil"] = _arg(node, 4, "ceil_mode", False)
            found["count_include_pad"] = _arg(node, 5, "count_include_pad", True)
            return [("avgpool", found)]
        if _arg(node, 6, "return_indices", False):
            return None
        found["dilation"] = _pair(_arg(node, 4, "dilation", 1))
        found["ceil"] = _arg(node, 5, "ceil_mode", False)
        return [("maxpool", found)]
    if target is F.adaptive_avg_pool2d:
        return [("adaptiveavgpool", {"size": _pair(_arg(node, 1, "output_size", None))})]
    if target is F.adaptive_max_pool2d:
        return [("adaptivemaxpool", {"size": _pair(_arg(node, 1, "output_size", None))})]
    if target is operator.getitem or method == "narrow" or target is torch.narrow:
        return _narrowed(node)
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
        if dims is None or rank != 4 or sorted(d % 4 for d in dims) != [2, 3]:
            return None
        pooled: list[tuple[str, dict[str, Any]]] = [("adaptiveavgpool", {"size": (1, 1)})]
        return pooled if _arg(node, 2, "keepdim", False) else [*pooled, ("flatten", {})]
    if method == "permute" or target is torch.permute:
        dims = list(node.args[1:]) if method else list(_arg(node, 1, "dims", ()))
        if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
            dims = list(dims[0])
        return [("permute", {"dims": tuple(d - 1 for d in dims[1:])})] if dims and dims[0] == 0 else None
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
        return "[" + ", ".join(value_text(v) for v in value) + "]"
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
            parts.extend(value_text(v) for v in value)
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
    return value.text if isinstance(value, Expr) else value_text(value)


@dataclass(frozen=True)
class Expr:
    """An expression in a block's parameters, already written (`width * 4`, `channels`)."""

    text: str


def shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def name_text(name: str, keyword_ok: bool = True) -> str:
    """`name` as the spec writes it: bare where the grammar takes it, else quoted. A statement's
    `name:` may be a keyword (ConvNeXt's `block:`), except the three that start an expression or a
    file's import."""
    keyword = name in keywords() and (not keyword_ok or name in ("import", "true", "false"))
    return name if name.isidentifier() and not keyword else f'"{name}"'


WIDTH = 100


@dataclass
class Line:
    indent: int
    text: str
    shape: tuple[int, ...] | None = None
    #: a line of layers only, which a following unnamed layer may join
    joinable: bool = False


def _container_of(statement: Stmt) -> str | None:
    name = statement.name
    return name.split(".", 1)[0] if name is not None and "." in name else None


def _numbered_apart(statements: list[Stmt]) -> list[Stmt]:
    """An unnamed statement is numbered by its place, as in nn.Sequential; where a member of the
    module is named that number (a ModuleList's `1`, behind a functional ReLU), the unnamed one is
    named after its layer instead (`relu_1`): it holds no weights, so any name keeps the
    state_dict's. Bodies with composites (whose members number on) are left as they are."""
    if any(s.kind not in ("layer", "group", "call") for s in statements):
        return statements
    taken = {s.name for s in statements if s.name is not None}
    for place, statement in enumerate(statements):
        if statement.name is None and str(place) in taken:
            name = f"{statement.op or statement.kind}_{place}"
            while name in taken:
                name += "_"
            statement.name = name
            taken.add(name)
    return statements


class Writer:
    """Statements → lines, a shape comment on each; `count` follows each module's member numbers,
    so a member named as `nn.Sequential` would number it is written without its name."""

    def __init__(self) -> None:
        self.lines: list[Line] = []

    def body(self, statements: list[Stmt], indent: int, count: list[int]) -> None:
        for statement in statements:
            self.statement(statement, indent, count)

    def _label(self, statement: Stmt, count: list[int]) -> str:
        name = statement.name
        number = count[0]
        count[0] += 1
        return "" if name is None or name == str(number) else f"{name_text(name)}: "

    def statement(self, s: Stmt, indent: int, count: list[int]) -> None:
        if s.kind == "layer":
            label = self._label(s, count)
            text = label + layer_text(s.op, s.args)
            last = self.lines[-1] if self.lines else None
            if (
                not label
                and layers.LAYERS[s.op].kind not in ("conv", "linear")
                and last is not None
                and last.joinable
                and last.indent == indent
                and indent * 4 + len(last.text) + len(text) + 1 <= WIDTH - 20
            ):
                last.text += " " + text
                last.shape = s.output
                return
            self.lines.append(Line(indent, text, s.output, joinable=True))
            return
        if s.kind == "call":
            label = self._label(s, count)
            self.lines.append(Line(indent, label + call_text(s), s.output))
            return
        if s.kind in ("group", "plain"):
            label = self._label(s, count)
            self.block_of(label + "{", s.body, indent, s.output, [0])
            return
        if s.kind == "repeat":
            head = f"*repeat {_expr_text(s.count)}" + (f" as {s.index}" if s.index else "") + " {"
            inner = [count[0]]
            self.block_of(head, s.body, indent, s.output, inner)
            # after a repeat of a parameter's count, numbers are not known: names are written
            count[0] += (inner[0] - count[0]) * s.count if isinstance(s.count, int) else -(10**9)
            return
        if s.kind == "residual":
            self.lines.append(Line(indent, "*residual {"))
            self.body(s.body, indent + 1, count)
            if s.shortcut is not None:
                count[0] += 1
                # `shortcut` is what an unnamed clause is called (and a keyword, so not a name there)
                name = s.shortcut.name
                self.block_of(
                    "shortcut {" if name in (None, "shortcut") else f"shortcut {name_text(name, False)} {{",
                    s.shortcut.body,
                    indent + 1,
                    s.output,
                    [0],
                )
            self.lines.append(Line(indent, "}", s.output))
            return
        if s.kind == "gate":
            self.block_of("*gate {", s.body, indent, s.output, count)
            return
        if s.kind == "concat":
            split = s.args.get("split")
            head = "*concat" + (f"(split={value_text(split)})" if split is not None else "") + " {"
            self.lines.append(Line(indent, head))
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
            self.lines.append(Line(indent, "}", s.output))
            return
        raise AssertionError(s.kind)

    def block_of(
        self, head: str, body: list[Stmt], indent: int, shape: tuple[int, ...] | None, count: list[int]
    ) -> None:
        """`head body }`, on one line when the body is a few layers or calls and fits."""
        trial = [count[0]]
        inline = [self.one_line(b, trial) for b in body]
        text = f"{head} {' '.join(str(t) for t in inline)} }}" if body else f"{head} }}"
        if None not in inline and indent * 4 + len(text) <= WIDTH - 10:
            count[0] = trial[0]
            self.lines.append(Line(indent, text, shape))
            return
        self.lines.append(Line(indent, head))
        self.body(body, indent + 1, count)
        self.lines.append(Line(indent, "}", shape))

    def one_line(self, s: Stmt, count: list[int]) -> str | None:
        """A statement's text when it takes one line (an unnamed layer, a call, a repeat of one)."""
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
            if line.shape is not None:
                text = f"{text.ljust(column)}  # {shape_text(line.shape)}"
            out.append(text.rstrip())
        return out


def call_text(s: Stmt) -> str:
    if not s.args:
        return f"{s.op}()"
    return f"{s.op}({', '.join(_expr_text(v) for v in s.args.values())})"


def spec_text(
    name: str,
    sample: tuple[int, ...],
    body: list[Stmt],
    blocks: list[tuple[str, list[str], list[Stmt]]],
    header: list[str],
) -> str:
    lines = [f"# {h}" if h else "#" for h in header]
    for block, params, block_body in blocks:
        writer = Writer()
        writer.body(block_body, 1, [0])
        signature = f"({', '.join(params)})" if params else ""
        lines += ["", f"block {block}{signature} {{  # shapes at its first call", *writer.text(), "}"]
    writer = Writer()
    writer.lines.append(Line(1, f"input {shape_text(sample)}"))
    writer.body(body, 1, [0])
    lines += ["", f"model {name} {{", *writer.text(), "}"]
    return "\n".join(lines) + "\n"


# --- the proof ------------------------------------------------------------------------------------


def leaves(model: nn.Module) -> dict[str, str]:
    """Each module without children, as `Class(arguments)` the way it prints itself, `inplace`
    aside (it changes no value); strings unquoted (torchvision's StochasticDepth prints
    `mode=row`) and square pairs as one number."""
    found = {}
    for path, module in model.named_modules():
        if not list(module.children()):
            name, _, text = repr(module).partition("(")
            text = ", ".join(
                part for part in text.removesuffix(")").split(", ") if not part.startswith("inplace=")
            )
            text = re.sub(r"'([^']*)'", r"\1", text)
            found[path] = re.sub(r"\((-?\d+), \1\)", r"\1", f"{name}({text})")
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
            if not any(u == prefix or u.startswith(prefix + ".") for u in used):
                if prefix not in idle:
                    idle.append(prefix)
                break
    return idle


def prove(text: str, original: nn.Module, sample: tuple[int, ...], ran: set[str]) -> int:
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
    x = torch.randn(2, *sample, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = original.eval()(x), ours(x)
    scale = max(expected.abs().max().item(), 1.0)
    difference = (got - expected).abs().max().item()
    if not difference <= 1e-5 * scale:
        raise ImportFailed(
            f"the spec's outputs differ from the module's by {difference:.3g} (a bug in archdsl import)"
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


def _canonical(text: str) -> str:
    """The spec in `archdsl fmt`'s layout, so that a formatter run on it changes nothing. Text that
    does not parse is left to `prove`, which reports it."""
    from .fmt import FormatError, format_text

    try:
        return format_text(text)
    except FormatError:
        return text


def import_module(
    module: nn.Module,
    name: str,
    sample: tuple[int, ...] | None = None,
    header: list[str] | None = None,
) -> Imported:
    """`module` as a spec: traced, read back, factored into blocks, and proved to rebuild it."""
    from . import factor

    given = sample or default_input(module)
    if given is None:
        raise ImportFailed(
            f"{type(module).__name__}'s input shape cannot be told from its first layer: give --input"
        )
    traced = trace(module, given)
    implicit_broadcasts(traced.graph)
    dense_concatenations(traced.graph)
    reader = Reader(module, traced)
    body = reader.module_body("", reader.input, reader.output)
    blocks, body = factor.factor(body)
    params = sum(p.numel() for p in module.parameters())
    top = [
        *(header or []),
        f"{params:,} parameters. Names are the module's, so its state_dict loads with strict=True;",
        "shapes are for one sample of the input.",
    ]
    text = _canonical(spec_text(name, given, body, blocks, top))
    ran = {str(n.target) for n in traced.graph.nodes if n.op == "call_module"}
    idle = idle_modules(
        module, {str(n.target) for n in traced.graph.nodes if n.op in ("call_module", "get_attr")}
    )
    if idle:
        held = sum(p.numel() for path in idle for p in module.get_submodule(path).parameters())
        raise ImportFailed(
            f"{type(module).__name__} holds modules that do not run on a [{', '.join(map(str, given))}] "
            f"input in eval mode ({', '.join(idle)}: {held:,} parameters): a spec has no statement for a "
            "module that never runs, so its state_dict could not load; build the module without them "
            "(for torchvision's googlenet and inception_v3, --arg aux_logits=False)"
        )
    lines = prove(text, module, given, ran)
    return Imported(text, name, params, lines)
