"""A traced module's graph → statements, module by module, in the order its `forward` computes them.

Where the flow forks and its branches rejoin (at the fork's immediate post-dominator) with nothing
else entering or leaving between, the join names the construct: an addition is a `residual`, a
product with the input a `gate`, a channel concatenation a `concat` (after `chunk` or `split`, a
split concat). Any other flow is written with named values. Each step is read by `steps.Steps`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .failures import ImportFailed, _where
from .flow import EXIT, Unit, _entry_key, _Graph
from .ir import Stmt, Value, is_function
from .nodes import (
    _cat_inputs,
    _is_cat,
    _is_one_tensor,
    _is_product,
    _is_sum,
    _is_tensor,
    _op_name,
    _shape,
    _stack,
    _tensor_args,
)
from .steps import Steps

if TYPE_CHECKING:
    from torch import fx


class Reader(Steps):
    """Reads a traced module back into statements."""

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
        from ..layers.joins import chunks

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


def _branch(body: list[Stmt]) -> Stmt:
    """A concat branch: a branch that is one child module is that module (`branch name { … }`);
    any other is spliced, its statements the concat's members."""
    if len(body) == 1 and body[0].kind == "group":
        group = body[0]
        return Stmt("branch", name=group.name, body=group.body, output=group.output, cls=group.cls)
    return Stmt("branch", body=body, spliced=True)


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
