"""`archdsl import`'s last stage: the statements read from a module → blocks and repeats, as a
person would write them.

- The child modules of one class (torchvision's `BasicBlock`, `Fire`) become calls of one `block`
  per shape of their bodies (a block with a projected shortcut and one without are two). What
  differs between the calls becomes a parameter; what is the same is written once. A value is
  written as `channels` (or `channels * k`, `channels // k`) where it is the layer's incoming
  channel count at every call, and as an existing parameter (or a multiple of one) where it
  follows it, before a new parameter is made.
- A child called with several tensors (U-Net's `Up(x1, x2)`) takes all but the first as `tensor`
  parameters, named as its `forward` names them, and one that returns several values gives them
  with `output a, b`; its calls pass and take apart the caller's values (`Up(x4, 512)`).
- Consecutive identical statements, each reading what the one before makes and nothing else
  reading it, become `*repeat N { … }`; names numbered on (`denselayer1` … `denselayer6`) become
  `*repeat N as i { "denselayer{i + 1}": … }`.

Classes are factored innermost first, so a block's body holds the calls of the blocks below it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .ir import Expr, Ref, Stmt, Value, nameable, refs, reserved_names

#: Containers whose instances share a class but nothing else: each stays a group of its own.
PLAIN = ("Sequential", "ModuleList", "ModuleDict")
#: A new parameter's name, by the argument it stands for.
PARAMETER_NAMES = {"out": "width", "size": "size", "p": "p", "init": "init", "dims": "dims"}


@dataclass
class Block:
    name: str
    #: the signature's parameters as written (`skip: tensor`, `out: int`)
    params: list[str]
    body: list[Stmt]
    #: what it receives; its `tensor` parameters (named); what it gives where that is several
    entry: Value
    tensors: list[Value] = field(default_factory=list)
    outputs: list[Value] = field(default_factory=list)
    #: its depth among the calls of modules, where its `forward`'s names are looked for
    depth: int = 0


def factor(body: list[Stmt]) -> tuple[list[Block], list[Stmt]]:
    blocks: list[Block] = []
    taken: set[str] = set()
    while True:
        groups = [g for g in _groups(body) if not any(_groups(g.body))]
        if not groups:
            break
        before = sum(1 for g in _all_groups(body) if g.kind == "group")
        classes: dict[type, list[Stmt]] = {}
        for group in groups:
            _repeats(group.body, _readers(body))
            if group.cls is not None and group.cls.__name__ not in PLAIN:
                classes.setdefault(group.cls, []).append(group)
            else:
                group.kind = "plain"  # a group still, but no longer one to factor
        for cls, instances in classes.items():
            everyone = [g for g in _all_groups(body) if g.cls is cls and g.kind == "group"]
            if len(everyone) != len(instances):
                # some instances still hold groups of their own: wait for them
                for group in instances:
                    group.kind = "group"
                continue
            blocks.extend(_blocks(cls, everyone, taken))
        if sum(1 for g in _all_groups(body) if g.kind == "group") == before:
            for group in groups:  # instances of one class at several depths: each stays a group
                group.kind = "plain"
    for group in _all_groups(body):
        group.kind = "group"
    _repeats(body, _readers(body))
    return blocks, body


def _groups(body: list[Stmt]) -> Iterator[Stmt]:
    """The unfactored groups within `body` at any depth, outermost first."""
    for stmt in _children(body):
        if stmt.kind == "group":
            yield stmt
        yield from _groups(_nested(stmt))


def _all_groups(body: list[Stmt]) -> Iterator[Stmt]:
    for stmt in _children(body):
        if stmt.kind in ("group", "plain"):
            yield stmt
        yield from _all_groups(_nested(stmt))


def _children(body: list[Stmt]) -> list[Stmt]:
    return list(body)


def _nested(stmt: Stmt) -> list[Stmt]:
    nested = list(stmt.body)
    if stmt.shortcut is not None:
        nested.append(stmt.shortcut)
    return nested


# --- blocks ---------------------------------------------------------------------------------------


def _signature(stmt: Stmt) -> Any:
    split = stmt.args.get("split") if stmt.kind == "concat" else None
    return (
        stmt.kind,
        stmt.op,
        stmt.name,
        tuple(sorted(stmt.args)) if stmt.kind in ("layer", "call") else (),
        split is True,
        tuple(_signature(s) for s in stmt.body),
        _signature(stmt.shortcut) if stmt.shortcut is not None else None,
        stmt.index,
    )


def _slots(stmt: Stmt) -> Iterator[tuple[Stmt, str]]:
    """Every value of `stmt`'s tree a call may vary, in a fixed order: (statement, argument). The
    values an argument names (`cat(x)`) are the body's structure, not parameters."""
    if stmt.kind in ("layer", "call"):
        for key, value in stmt.args.items():
            if not any(True for _ in refs(value)):
                yield stmt, key
    if stmt.kind == "concat" and stmt.args.get("split") not in (None, True):
        yield stmt, "split"
    if stmt.kind == "repeat":
        yield stmt, "#count"
    for inner in _nested(stmt):
        yield from _slots(inner)


def _get(stmt: Stmt, key: str) -> Any:
    if key == "#count":
        return stmt.count
    return _plain(stmt.args[key]) if stmt.kind == "layer" else stmt.args[key]


def _plain(value: Any) -> Any:
    """A square pair is its number (`kernel=3`); other pairs and lists stay lists."""
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and value[0] == value[1]
        and not isinstance(value[0], bool)
    ):
        return value[0]
    return value


def _set(stmt: Stmt, key: str, value: Any) -> None:
    if key == "#count":
        stmt.count = value
    else:
        stmt.args[key] = value


def _type(values: list[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return "bool"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "int"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "float"
    if all(isinstance(v, str) for v in values):
        return "str"
    return "list"


def _block_name(cls: type, variant: int, taken: set[str]) -> str:
    base = re.sub(r"\W", "", cls.__name__).lstrip("_") or "Block"
    if not base[0].isalpha():
        base = "Block" + base
    name = base if variant == 0 else f"{base}{variant + 1}"
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _walk(body: list[Stmt]) -> Iterator[Stmt]:
    for stmt in body:
        yield stmt
        yield from _walk(_nested(stmt))


def _structure(group: Stmt) -> tuple[Any, ...]:
    """How the values of a group's body flow, with each value numbered where it is made (its
    inputs first): two groups of one class whose bodies differ in it are two blocks."""
    numbers: dict[Value, int] = {v: i for i, v in enumerate(group.inputs)}
    flow: list[Any] = []
    for stmt in _walk(group.body):
        read = [numbers.get(v, -1) for v in ([stmt.reads] if stmt.reads is not None else [])]
        named = [numbers.get(v, -1) for value in stmt.args.values() for v in refs(value)]
        flow.append((tuple(read), tuple(named)))
        for value in stmt.gives:
            numbers.setdefault(value, len(numbers))
    return (*flow, tuple(numbers.get(v, -1) for v in group.gives))


def _blocks(cls: type, instances: list[Stmt], taken: set[str]) -> list[Block]:
    variants: dict[Any, list[Stmt]] = {}
    for group in instances:
        key = (tuple(_signature(s) for s in group.body), len(group.inputs), _structure(group))
        variants.setdefault(key, []).append(group)
    blocks = []
    for number, calls in enumerate(variants.values()):
        name = _block_name(cls, number, taken)
        blocks.append(_block(name, calls))
    return blocks


def _substitute(body: list[Stmt], mapping: dict[Value, Value]) -> None:
    """The values of `mapping` in place of its keys, wherever `body` reads or gives them."""

    def swap(value: Any) -> Any:
        if isinstance(value, Ref):
            return Ref(mapping.get(value.value, value.value))
        if isinstance(value, list):
            return [swap(v) for v in value]
        if isinstance(value, tuple):
            return tuple(swap(v) for v in value)
        return value

    for stmt in _walk(body):
        if stmt.reads is not None:
            stmt.reads = mapping.get(stmt.reads, stmt.reads)
        stmt.gives = [mapping.get(v, v) for v in stmt.gives]
        stmt.inputs = [mapping.get(v, v) for v in stmt.inputs]
        stmt.args = {k: swap(v) for k, v in stmt.args.items()}


def _tensor_names(template: Stmt) -> list[str]:
    """The names of a block's `tensor` parameters: the `forward`'s, where the spec can use them."""
    reserved = reserved_names([])
    names: list[str] = []
    for index, given in enumerate(template.params[1:], 1):
        name = given if nameable(given, reserved) and given not in names else None
        if name is None:
            number = index
            while f"x{number}" in names or f"x{number}" in template.params:
                number += 1
            name = f"x{number}"
        names.append(name)
    return names


def _block(name: str, calls: list[Stmt]) -> Block:
    """One block for groups of one shape; each group becomes a call of it."""
    template = calls[0]
    # the block's own values in place of the caller's: what it receives, its tensor parameters
    # and (where it gives several) its results
    tensor_names = _tensor_names(template)
    entry = Value(template.inputs[0].shape, hint=template.params[0] if template.params else None)
    tensors = [
        Value(value.shape, name=tensor_name)
        for value, tensor_name in zip(template.inputs[1:], tensor_names, strict=True)
    ]
    mapping = dict(zip(template.inputs, [entry, *tensors], strict=True))
    outputs: list[Value] = []
    if len(template.gives) > 1:
        outputs = [Value(v.shape, v.node) for v in template.gives]
        mapping.update(zip(template.gives, outputs, strict=True))
    _substitute(template.body, mapping)
    per_call = [[slot for s in call.body for slot in _slots(s)] for call in calls]
    params: list[tuple[str, str, list[Any]]] = [
        (tensor_name, "tensor", [Ref(call.inputs[i]) for call in calls])
        for i, tensor_name in enumerate(tensor_names, 1)
    ]
    arguments: list[list[Any]] = [
        [Ref(call.inputs[i]) for i in range(1, len(template.inputs))] for call in calls
    ]
    for position, (stmt, key) in enumerate(per_call[0]):
        values = [_get(*slots[position]) for slots in per_call]
        expression = _expression(stmt, key, values, [slots[position][0] for slots in per_call], params)
        if expression is None:
            parameter = _new_name(stmt, key, params)
            kind = _type(values)
            if kind == "list":  # kernels of 3 and of [1, 7]: every one a pair (a triple in 3-d)
                axes = max((len(v) for v in values if isinstance(v, (list, tuple))), default=2)
                values = [
                    [v] * axes if isinstance(v, int) and not isinstance(v, bool) else list(v) for v in values
                ]
            params.append((parameter, kind, values))
            for i, value in enumerate(values):
                arguments[i].append(value)
            expression = Expr(parameter)
        if not (isinstance(expression, Expr) or expression is _LITERAL):
            raise AssertionError(expression)
        if expression is not _LITERAL:
            _set(stmt, key, expression)
    signature = [f"{p}: {t}" for p, t, _ in params]
    for call, values in zip(calls, arguments, strict=True):
        call.kind = "call"
        call.op = name
        call.args = {p: v for (p, _, _), v in zip(params, values, strict=True)}
        call.reads = call.inputs[0]
        call.body = call.body if call is template else []
    body = template.body
    template.body = []
    return Block(name, signature, body, entry, tensors, outputs, template.depth)


_LITERAL = object()


def _expression(
    stmt: Stmt, key: str, values: list[Any], owners: list[Stmt], params: list[tuple[str, str, list[Any]]]
) -> Any:
    """How a slot is written in the block: `_LITERAL` (the same at every call), an `Expr` in
    `channels` or an existing parameter, or None for a new parameter."""
    if all(v == values[0] for v in values):
        return _LITERAL
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        for name, kind, known in params:
            if kind != "tensor" and known == values:
                return Expr(name)
        return None
    incoming = [o.input[0] if o.input else None for o in owners]
    if stmt.kind == "layer" and key in ("out", "groups") and None not in incoming:
        found = _relation("channels", incoming, values)
        if found is not None:
            return found
    for name, kind, known in params:
        if kind == "int":
            found = _relation(name, known, values)
            if found is not None:
                return found
    return None


def _relation(name: str, known: list[Any], values: list[int]) -> Expr | None:
    """`name`, `name * k` or `name // k` where it gives `values` from `known`."""
    if known == values:
        return Expr(name)
    if any(k == 0 for k in known):
        return None
    if all(v % k == 0 for v, k in zip(values, known, strict=True)):
        factors = {v // k for v, k in zip(values, known, strict=True)}
        if len(factors) == 1 and (factor := factors.pop()) > 1:
            return Expr(f"{name} * {factor}")
    if all(v and k % v == 0 for v, k in zip(values, known, strict=True)):
        divisors = {k // v for v, k in zip(values, known, strict=True)}
        if len(divisors) == 1 and (divisor := divisors.pop()) > 1:
            return Expr(f"{name} // {divisor}")
    return None


def _new_name(stmt: Stmt, key: str, params: list[tuple[str, str, list[Any]]]) -> str:
    taken = {p for p, _, _ in params}
    base = "repeats" if key == "#count" else PARAMETER_NAMES.get(key, key)
    if base in ("in", "channels") or base in taken:
        member = re.sub(r"\W", "_", stmt.name or "")
        qualified = f"{member}_{base}" if member and member[0].isalpha() else base
        base = qualified
    name, number = base, 2
    while name in taken or name in ("channels", "in"):
        name, number = f"{base}{number}", number + 1
    return name


# --- repeat ---------------------------------------------------------------------------------------


def _readers(body: list[Stmt]) -> dict[Value, list[int]]:
    """The statements (by id) that read each value: the one after it, or by name."""
    found: dict[Value, list[int]] = {}
    for stmt in _walk(body):
        read = [stmt.reads] if stmt.reads is not None else []
        for value in [*read, *(v for arg in stmt.args.values() for v in refs(arg))]:
            found.setdefault(value, []).append(id(stmt))
    return found


def _repeats(body: list[Stmt], readers: dict[Value, list[int]]) -> None:
    """Runs of identical statements in `body` (and in its composites) → `*repeat`."""
    for stmt in body:
        if stmt.kind not in ("group", "plain", "call"):
            _repeats(stmt.body, readers)
    index = 0
    while index < len(body):
        end = index + 1
        while (
            end < len(body)
            and _same(body[index], body[end])
            and _follows(body[end - 1], body[end], readers)
            and _numbered(body[index : end + 1])
        ):
            end += 1
        if end - index >= 2:
            run = body[index:end]
            first = run[0]
            names = _numbered(run)
            stmt = Stmt(first.kind, op=first.op, args=first.args, body=first.body, shortcut=first.shortcut)
            stmt.cls, stmt.input, stmt.output, stmt.spliced = (
                first.cls,
                first.input,
                first.output,
                first.spliced,
            )
            stmt.count, stmt.index = first.count, first.index
            stmt.reads, stmt.gives, stmt.inputs = first.reads, first.gives, first.inputs
            repeat = Stmt(
                "repeat",
                body=[stmt],
                count=len(run),
                output=run[-1].output,
                spliced=True,
                reads=first.reads,
                gives=run[-1].gives,
            )
            if isinstance(names, tuple):
                prefix, start = names
                repeat.index = "i"
                stmt.name = prefix + ("{i}" if start == 0 else f"{{i + {start}}}")
            body[index:end] = [repeat]
        index += 1


def _same(a: Stmt, b: Stmt) -> bool:
    if a.kind not in ("call", "layer") or b.kind != a.kind:
        return False
    return a.op == b.op and a.args == b.args and not any(True for v in a.args.values() for _ in refs(v))


def _follows(a: Stmt, b: Stmt, readers: dict[Value, list[int]]) -> bool:
    """Whether `b` reads what `a` makes, and nothing but `b` does: one pass after another."""
    if len(a.gives) != 1 or len(b.gives) != 1 or b.reads is not a.gives[0]:
        return False
    inside = {id(s) for s in _walk([b])}
    return all(r in inside for r in readers.get(a.gives[0], []))


def _numbered(run: list[Stmt]) -> bool | tuple[str, int]:
    """Whether the statements' names let one statement stand for all: none, members numbered as
    the repeat numbers them (digits), or a common prefix with consecutive numbers."""
    names = [s.name for s in run]
    if all(n is None or n.isdigit() for n in names):
        digits = [int(n) for n in names if n is not None]
        return not digits or digits == list(range(digits[0], digits[0] + len(digits)))
    matches = [re.fullmatch(r"(\D*?)(\d+)", n or "") for n in names]
    if not all(matches):
        return False
    prefixes = {m.group(1) for m in matches if m}
    numbers = [int(m.group(2)) for m in matches if m]
    if len(prefixes) != 1 or numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        return False
    return prefixes.pop(), numbers[0]
