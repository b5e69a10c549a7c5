"""Random `.arch` specs with an independent PyTorch reference, for differential testing.

The one reference of every differential test: the campaign (`campaigns/differential.py`), its
CI slice (`tests/test_reliability.py`) and the hypothesis stacks of `tests/test_differential.py`,
which builds these data classes itself and judges them with `compare`. A spec is drawn from a seed
as plain data — blocks with typed parameters used in expressions (defaults that use earlier
parameters, calls to earlier blocks, `tensor` parameters, `input as x`, several outputs), `repeat`,
`concat` with named and unnamed branches of different depths, `residual` with both shortcuts,
labels, named values (`… as x`, `x -> …`, `as (a, b)`) joined by `cat`, `add` and `mul` and taken
apart by `split`, `if`/`else` and `a if cond else b` over parameters and sizes, models with several
inputs and outputs, and every layer of the catalog — rendered to real `.arch` text (one statement
per line, so a line names a statement), and run statement by statement through the torch.nn layers
it stands for. The reference evaluates the block parameters and expressions itself and never calls
archdsl's resolver, shape rules or builder.

Where archdsl is documented to be stricter than PyTorch, the reference applies the documented rule
and says so (`Rejected` with an "archdsl rule" reason): a residual (and `add`) adds equal shapes
only, a gate (and `mul`) scales by a value that is 1 or the scaled value's size on each axis, conv,
pooling and the resampling layers take a [C, H, W] sample, linear no [C, H, W] one (any other, on
its last axis), channel counts are positive, permute's dims count the sample's axes from 0, a
function (`cat`, `split`, …) takes no name, a statement after one that gives several values says
which it reads, an output is never empty, and statements that never run (the other branch of an
`if`, the body of `repeat 0`) are still held to reading only values in sight.

Errors are expected on the line of the statement PyTorch refuses; inside a block that is the
block's own statement (archdsl adds a note naming the call), not the call. No error may fall on a
statement of the model that PyTorch ran, nor on a line of the model before the refused statement.
"""

from __future__ import annotations

import operator
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Shape = tuple[int, ...]
FILE = "differential.arch"
MODEL_HEADER = "model M {"
BATCH = 2

# --- specs as data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class P:
    """A reference to a block parameter."""

    name: str


@dataclass(frozen=True)
class Op:
    """Arithmetic on parameters: + - * // and, on floats, /; comparisons == != < <= > >=; and, or."""

    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class Not:
    operand: Any


@dataclass(frozen=True)
class Choose:
    """`then if cond else otherwise`."""

    then: Any
    cond: Any
    otherwise: Any


@dataclass(frozen=True)
class V:
    """A named value (a tensor) where an argument takes one: `cat(skip)`, `Up(x3, 8)`."""

    name: str


@dataclass(frozen=True)
class Size:
    """`channels(x)`, `height(x)`, `width(x)`: a size of the named value `x`."""

    fn: str
    name: str


class Same:
    """The keyword value `same` (as many channels as come in)."""

    def __repr__(self) -> str:
        return "same"


SAME = Same()

# Every statement may read a named value (`source -> …`) instead of the one before it, and name
# what it makes (`… as x`, or `… as (a, b)` with `many`).


# eq=False: statements are told apart by identity, so the rendered line of each can be looked up.
@dataclass(eq=False)
class Layer:
    op: str
    positional: tuple[Any, ...] = ()
    keywords: tuple[tuple[str, Any], ...] = ()
    label: str | None = None
    source: str | None = None
    binds: tuple[str, ...] = ()
    many: bool = False

    def arg(self, name: str, default: Any = None) -> Any:
        return dict(self.keywords).get(name, default)


@dataclass(eq=False)
class Branch:
    name: str | None
    body: list[Any]
    #: `*branch { … }`: no module; its members join the concat's (it has no name then).
    splice: bool = False


# A composite's `splice` writes it `*…`: its members join the enclosing module's. A label may hold
# `{i}`, a repeat's index, as Python's str.format and the language both read it.


@dataclass(eq=False)
class Concat:
    branches: list[Branch]
    label: str | None = None
    splice: bool = False
    #: False, True (torch.chunk's shares) or the channel count of each branch.
    split: Any = False
    source: str | None = None
    binds: tuple[str, ...] = ()
    many: bool = False


@dataclass(eq=False)
class Residual:
    body: list[Any]
    project: bool = False
    options: tuple[tuple[str, Any], ...] = ()
    label: str | None = None
    splice: bool = False
    #: A written-out shortcut: `shortcut name { … }`, written before the body with `path_first`
    #: (its module then comes first among the residual's members).
    path: Branch | None = None
    path_first: bool = False
    source: str | None = None
    binds: tuple[str, ...] = ()
    many: bool = False


@dataclass(eq=False)
class Repeat:
    count: Any
    body: list[Any]
    label: str | None = None
    splice: bool = False
    #: `repeat n as i`
    index: str | None = None
    source: str | None = None
    binds: tuple[str, ...] = ()
    many: bool = False


@dataclass(eq=False)
class Call:
    block: str
    positional: tuple[Any, ...] = ()
    keywords: tuple[tuple[str, Any], ...] = ()
    label: str | None = None
    splice: bool = False
    source: str | None = None
    binds: tuple[str, ...] = ()
    many: bool = False


@dataclass(eq=False)
class Gate:
    body: list[Any]
    label: str | None = None
    splice: bool = False
    source: str | None = None
    binds: tuple[str, ...] = ()
    many: bool = False


@dataclass(eq=False)
class Group:
    body: list[Any]
    label: str | None = None
    splice: bool = False
    source: str | None = None
    binds: tuple[str, ...] = ()
    many: bool = False


@dataclass(eq=False)
class If:
    """`if cond { body } else { orelse }`: the statements of the branch that holds stand in its
    place; `chained` writes an `orelse` that is one `If` as `else if`."""

    cond: Any
    body: list[Any]
    orelse: list[Any] = field(default_factory=list)
    chained: bool = False
    label = None
    splice = False
    source = None
    binds: tuple[str, ...] = ()
    many = False


@dataclass(eq=False)
class Output:
    """`output a, b` (keys None), or a model's `output out: a, aux: b`; last in its body."""

    items: tuple[tuple[str | None, str], ...]
    label = None
    splice = False
    source = None
    binds: tuple[str, ...] = ()
    many = False


@dataclass(eq=False)
class Input:
    """`input as x` at the top of a block's body: the name of what the block receives."""

    name: str
    label = None
    splice = False
    source = None
    binds: tuple[str, ...] = ()
    many = False


class Channels:
    """The name `channels`: the channel count the layer receives."""

    def __repr__(self) -> str:
        return "channels"


CHANNELS = Channels()

#: The layers that are functions of no module: no member number, no name.
FUNCTIONS = frozenset({"cat", "add", "mul", "split", "resize", "padto", "matmul", "select", "mean"})


@dataclass(eq=False)
class BlockDef:
    name: str
    #: (name, default or None); a parameter is an int unless `types` says otherwise.
    params: list[tuple[str, Any]]
    body: list[Any]
    #: A parameter's type where it is not int: "tensor", "bool".
    types: dict[str, str] = field(default_factory=dict)
    #: What the generator made it for (which calls fit it); not rendered.
    kind: str = "plain"


Statement = Layer | Concat | Residual | Repeat | Call | Gate | Group | If | Output | Input


@dataclass
class Spec:
    input: Shape
    body: list[Any]
    blocks: list[BlockDef] = field(default_factory=list)
    #: The first input's name (`input [3, 8, 8] as a`), and the model's other inputs, each named.
    input_name: str | None = None
    more: list[tuple[str, Shape]] = field(default_factory=list)

    @property
    def inputs(self) -> list[tuple[str | None, Shape]]:
        return [(self.input_name, self.input), *self.more]


# --- rendering ------------------------------------------------------------------------------------

_COMPARISONS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_PRECEDENCE = {"or": 1, "and": 2, **dict.fromkeys(_COMPARISONS, 3), "+": 4, "-": 4, "*": 5, "/": 5, "//": 5}
#: Tighter than any operator: an operand that must be a single term (`not`'s).
_TERM = 9


def expr_text(value: Any, parent: int = 0) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Same):
        return "same"
    if isinstance(value, Channels):
        return "channels"
    if isinstance(value, P | V):
        return value.name
    if isinstance(value, Size):
        return f"{value.fn}({value.name})"
    if isinstance(value, Not):
        return f"not {expr_text(value.operand, _TERM)}"
    if isinstance(value, Choose):
        # `then` and `cond` are bare operator chains in the grammar; `otherwise` may chain on.
        text = f"{expr_text(value.then, 1)} if {expr_text(value.cond, 1)} else {expr_text(value.otherwise)}"
        return f"({text})" if parent else text
    if isinstance(value, Op):
        level = _PRECEDENCE[value.op]
        # Left-associative: the right operand needs brackets at the same level; comparisons do
        # not chain, so a comparison's left operand does too.
        left = level + 1 if value.op in _COMPARISONS else level
        text = f"{expr_text(value.left, left)} {value.op} {expr_text(value.right, level + 1)}"
        return f"({text})" if level < parent else text
    if isinstance(value, tuple | list):
        return "[" + ", ".join(expr_text(v) for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, int | float) and value < 0 and parent:
        return f"({value!r})"
    return repr(value) if isinstance(value, float) else str(value)


def _args(positional: tuple[Any, ...], keywords: tuple[tuple[str, Any], ...]) -> str:
    parts = [expr_text(v) for v in positional] + [f"{k}={expr_text(v)}" for k, v in keywords]
    return ", ".join(parts)


def _labelled(statement: Any, text: str) -> str:
    source = f"{statement.source} -> " if statement.source else ""
    if getattr(statement, "splice", False):
        return source + "*" + text
    label = statement.label
    if not label:
        return source + text
    return source + (f"{label}: {text}" if label.isidentifier() else f'"{label}": {text}')


def _bound(statement: Any) -> str:
    names = statement.binds
    if not names:
        return ""
    if statement.many or len(names) > 1:
        return " as (" + ", ".join(names) + ")"
    return f" as {names[0]}"


def _name(name: str) -> str:
    return name if name.isidentifier() else f'"{name}"'


def render(spec: Spec) -> tuple[str, dict[Any, int]]:
    """The spec's text and the line of every statement (and branch) in it, by identity."""
    lines: list[str] = []
    where: dict[Any, int] = {}

    def emit(text: str, depth: int, statement: Any = None) -> None:
        lines.append("    " * depth + text)
        if statement is not None:
            where[statement] = len(lines)

    def body(statements: list[Any], depth: int) -> None:
        for s in statements:
            if isinstance(s, Layer):
                call = f"{s.op}({_args(s.positional, s.keywords)})" if s.positional or s.keywords else s.op
                emit(_labelled(s, call) + _bound(s), depth, s)
            elif isinstance(s, Call):
                emit(_labelled(s, f"{s.block}({_args(s.positional, s.keywords)})") + _bound(s), depth, s)
            elif isinstance(s, Input):
                emit(f"input as {s.name}", depth, s)
            elif isinstance(s, Output):
                items = [name if key is None else f"{_name(key)}: {name}" for key, name in s.items]
                emit("output " + ", ".join(items), depth, s)
            elif isinstance(s, If):
                emit(f"if {expr_text(s.cond)} {{", depth, s)
                body(s.body, depth + 1)
                node = s
                while node.orelse:
                    if len(node.orelse) == 1 and isinstance(node.orelse[0], If) and node.orelse[0].chained:
                        node = node.orelse[0]
                        emit(f"}} else if {expr_text(node.cond)} {{", depth, node)
                        body(node.body, depth + 1)
                        continue
                    emit("} else {", depth)
                    body(node.orelse, depth + 1)
                    break
                emit("}", depth)
            elif isinstance(s, Repeat):
                index = f" as {s.index}" if s.index else ""
                emit(_labelled(s, f"repeat {expr_text(s.count)}{index} {{"), depth, s)
                body(s.body, depth + 1)
                emit("}" + _bound(s), depth)
            elif isinstance(s, Concat):
                head = f"concat(split={expr_text(s.split)})" if s.split is not False else "concat"
                emit(_labelled(s, head + " {"), depth, s)
                for branch in s.branches:
                    head = f"branch {_name(branch.name)} {{" if branch.name else "branch {"
                    emit("*" + head if branch.splice else head, depth + 1, branch)
                    body(branch.body, depth + 2)
                    emit("}", depth + 1)
                emit("}" + _bound(s), depth)
            elif isinstance(s, Gate | Group):
                emit(_labelled(s, "gate {" if isinstance(s, Gate) else "{"), depth, s)
                body(s.body, depth + 1)
                emit("}" + _bound(s), depth)
            else:
                head = f"residual({_args((), s.options)})" if s.options else "residual"
                emit(_labelled(s, head + " {"), depth, s)

                def shortcut(path: Branch) -> None:
                    name = f" {_name(path.name)}" if path.name else ""
                    emit(f"shortcut{name} {{", depth + 1, path)
                    body(path.body, depth + 2)
                    emit("}", depth + 1)

                if s.path is not None and s.path_first:
                    shortcut(s.path)
                body(s.body, depth + 1)
                if s.path is not None and not s.path_first:
                    shortcut(s.path)
                emit("}" + _bound(s), depth)

    for block in spec.blocks:
        params = ", ".join(
            f"{name}: {block.types.get(name, 'int')}"
            + (f" = {expr_text(default)}" if default is not None else "")
            for name, default in block.params
        )
        emit(f"block {block.name}({params}) {{", 0)
        body(block.body, 1)
        emit("}", 0)
    emit(MODEL_HEADER, 0)
    for name, shape in spec.inputs:
        emit(f"input {expr_text(shape)}" + (f" as {name}" if name else ""), 1)
    body(spec.body, 1)
    emit("}", 0)
    return "\n".join(lines) + "\n", where


# --- the reference: plain torch.nn, statement by statement ---------------------------------------


class Rejected(Exception):
    """PyTorch (or archdsl's documented, stricter rule) refuses `statement`."""

    def __init__(self, statement: Any, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.statement = statement
        self.path = path
        self.reason = reason
        #: The ids of the statements PyTorch ran before refusing this one.
        self.ran: set[int] = set()
        #: Statements the same rule refuses too.
        self.also: set[int] = set()


@dataclass
class Reference:
    #: Every module path's per-sample output shape.
    shapes: dict[str, Shape] = field(default_factory=dict)
    #: Parameters of every leaf module path (layers and projection shortcuts).
    params: dict[str, int] = field(default_factory=dict)
    #: Statements PyTorch ran without complaint.
    ran: set[int] = field(default_factory=set)
    #: The model's per-sample output shape (its first output's).
    output: Shape = ()
    #: Every output: (its key in a dict output, or None; its per-sample shape).
    outputs: list[tuple[str | None, Shape]] = field(default_factory=list)


class Unevaluable(Exception):
    """An expression archdsl refuses to evaluate: a name not in sight, a size a value lacks."""


def _sample(value: Any) -> Shape:
    """A value's per-sample shape: a tensor's (batch axis dropped), or the generator's guess."""
    if isinstance(value, list | tuple):
        return tuple(value)
    return tuple(value.shape[1:])


def evaluate(value: Any, env: dict[str, Any], values: dict[str, Any] | None = None) -> Any:
    """An expression's value: parameters (and `channels`) from `env`, named values (tensors, or
    the generator's guesses of their shapes) from `values`."""
    if isinstance(value, bool):
        return value
    if isinstance(value, P):
        if value.name not in env:
            raise Unevaluable(f"unknown name '{value.name}'")
        return env[value.name]
    if isinstance(value, Channels):
        if "channels" not in env:
            raise Unevaluable("no channel count here")
        return env["channels"]
    if isinstance(value, V | Size):
        if values is None or value.name not in values:
            raise Unevaluable(f"no value named '{value.name}' in sight")
        if isinstance(value, V):
            return values[value.name]
        shape = _sample(values[value.name])
        if value.fn == "channels":
            if not shape:
                raise Unevaluable(f"channels({value.name}) of a [] sample")
            return shape[0]
        if len(shape) < 3:
            raise Unevaluable(f"archdsl rule: {value.fn}({value.name}) needs an image, got {list(shape)}")
        return shape[len(shape) - 3 + (1 if value.fn == "height" else 2)]
    if isinstance(value, Not):
        operand = evaluate(value.operand, env, values)
        if not isinstance(operand, bool):
            raise Unevaluable(f"not of {operand!r}")
        return not operand
    if isinstance(value, Choose):
        cond = evaluate(value.cond, env, values)
        if not isinstance(cond, bool):
            raise Unevaluable(f"a condition of {cond!r}")
        return evaluate(value.then if cond else value.otherwise, env, values)
    if isinstance(value, Op):
        left = evaluate(value.left, env, values)
        if value.op in ("and", "or"):
            # As in Python, the right side is evaluated only where the left does not decide.
            if not isinstance(left, bool):
                raise Unevaluable(f"{value.op} of {left!r}")
            if left == (value.op == "or"):
                return left
            right = evaluate(value.right, env, values)
            if not isinstance(right, bool):
                raise Unevaluable(f"{value.op} of {right!r}")
            return right
        right = evaluate(value.right, env, values)
        if value.op in _COMPARISONS:
            numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
            if not numbers and (value.op not in ("==", "!=") or type(left) is not type(right)):
                raise Unevaluable(f"{left!r} {value.op} {right!r}")
            return _COMPARISONS[value.op](left, right)
        if value.op == "+":
            return left + right
        if value.op == "-":
            return left - right
        if value.op == "*":
            return left * right
        if right == 0:
            raise Unevaluable("division by zero")
        return left / right if value.op == "/" else left // right
    if isinstance(value, tuple | list):
        return tuple(evaluate(v, env, values) for v in value)
    return value


def _reads(value: Any) -> list[str]:
    """The named values an expression reads (`x` of `cat(x)`, of `height(x)`)."""
    if isinstance(value, V | Size):
        return [value.name]
    if isinstance(value, Not):
        return _reads(value.operand)
    if isinstance(value, Op):
        return _reads(value.left) + _reads(value.right)
    if isinstance(value, Choose):
        return _reads(value.then) + _reads(value.cond) + _reads(value.otherwise)
    if isinstance(value, tuple | list):
        return [name for v in value for name in _reads(v)]
    return []


def _statement_reads(s: Any) -> list[str]:
    """The named values a statement reads itself (not in the statements it holds)."""
    found = [s.source] if s.source else []
    if isinstance(s, Layer | Call):
        found += _reads(s.positional) + _reads([v for _, v in s.keywords])
    elif isinstance(s, If):
        found += _reads(s.cond)
    elif isinstance(s, Repeat):
        found += _reads(s.count)
    elif isinstance(s, Residual):
        found += _reads([v for _, v in s.options])
    elif isinstance(s, Output):
        found += [name for _, name in s.items]
    return found


@dataclass
class Space:
    """The members of one module: their names, claimed in order (archdsl's documented rule: a name
    is used once in a module, a statement without one takes its position among the members)."""

    prefix: str
    names: set[str] = field(default_factory=set)
    count: int = 0

    def claim(self, statement: Any, label: str | None) -> str:
        key = str(self.count) if label is None else label
        self.count += 1
        if key in self.names:
            raise Rejected(statement, self.prefix + key, f"archdsl rule: the name '{key}' is taken")
        self.names.add(key)
        return self.prefix + key


class Several(list):
    """What a statement gives when it gives several values: a split's parts, a block's outputs."""


@dataclass
class Names:
    """The named values of one definition's body (the model's, or a block call's), as Python's
    locals: the composites inside it share them; a block sees only its own."""

    values: dict[str, Any] = field(default_factory=dict)
    #: What `output` gives, once it is written: (key or None, value).
    outputs: list[tuple[str | None, Any]] | None = None


def _first(y: Any) -> Any:
    return y[0] if isinstance(y, Several) else y


class Runner:
    def __init__(self, spec: Spec):
        import torch

        self.torch = torch
        self.blocks = {b.name: b for b in spec.blocks}
        self.ref = Reference()
        #: The branches each `if` took where it ran (an `if` in a block may go either way).
        self.took: dict[int, set[bool]] = {}
        #: Statements and branches whose name their module already has, as `name_all` finds them;
        #: residuals whose projection's name `shortcut` is taken.
        self.refused: set[int] = set()
        self.blamed_within: set[int] = set()

    def module(self, module: Any, path: str) -> Any:
        self.ref.params[path] = self.ref.params.get(path, 0) + sum(p.numel() for p in module.parameters())
        return module

    @staticmethod
    def received(env: dict[str, Any]) -> dict[str, Any]:
        return {"channels": env["channels"]} if "channels" in env else {}

    @staticmethod
    def here(env: dict[str, Any], x: Any) -> dict[str, Any]:
        """`env` where a statement receives `x`: with `channels`, its channel count."""
        if isinstance(x, Several) or x is None or x.dim() < 2:
            return env
        return {**env, "channels": x.shape[1]}

    def value(self, s: Any, expr: Any, env: dict[str, Any], names: Names, path: str) -> Any:
        try:
            return evaluate(expr, env, names.values)
        except Unevaluable as exc:
            raise Rejected(s, path, str(exc)) from None

    def sequence(self, statements: list[Any], x: Any, space: Space, env: dict[str, Any], names: Names) -> Any:
        """Runs statements whose members join `space`: each takes its name, or its position among
        the members; a spliced one's members take theirs in turn; a function takes none. Returns
        what the last gave: a tensor, or `Several`."""
        for s in statements:
            if isinstance(s, Input):
                names.values[s.name] = x
            elif isinstance(s, Output):
                missing = [name for _, name in s.items if name not in names.values]
                if missing:
                    raise Rejected(s, space.prefix, f"no value named '{missing[0]}' in sight")
                names.outputs = [(key, names.values[name]) for key, name in s.items]
            elif isinstance(s, If):
                # The branch that holds stands in the statement's place, its members among the
                # enclosing module's; archdsl then checks the other, which never runs.
                truth = self.value(s, s.cond, self.here(env, x), names, space.prefix)
                if not isinstance(truth, bool):
                    raise Rejected(s, space.prefix, f"archdsl rule: an if needs true or false, got {truth!r}")
                chosen, other = (s.body, s.orelse) if truth else (s.orelse, s.body)
                self.took.setdefault(id(s), set()).add(truth)
                x = self.sequence(chosen, x, space, env, names)
                self.unrun(other, set(names.values))
            else:
                x = self.step(s, x, space, env, names)
            self.ref.ran.add(id(s))
        return x

    def step(self, s: Any, x: Any, space: Space, env: dict[str, Any], names: Names) -> Any:
        if s.source is not None:
            if s.source not in names.values:
                raise Rejected(s, space.prefix, f"no value named '{s.source}' in sight")
            x = names.values[s.source]
        elif isinstance(x, Several):
            raise Rejected(
                s,
                space.prefix,
                f"archdsl rule: the statement before gives {len(x)} values; say which it reads",
            )
        if isinstance(s, Layer) and s.op in FUNCTIONS:
            if s.label is not None:
                raise Rejected(s, space.prefix, f"archdsl rule: {s.op} makes no module, so it takes no name")
            y = self.layer(s, x, space.prefix + f"<{s.op}>", env, names)
        elif getattr(s, "splice", False):
            y = self.composite(s, x, space, env, names)
        else:
            path = space.claim(s, None if s.label is None else s.label.format(**env))
            y = self.statement(s, x, path, env, names)
            self.ref.shapes[path] = tuple(_first(y).shape[1:])
        if s.binds:
            values = list(y) if isinstance(y, Several) else [y]
            if (s.many or len(s.binds) > 1) and len(values) != len(s.binds):
                raise Rejected(s, space.prefix, f"archdsl rule: {len(values)} values, {len(s.binds)} names")
            if not (s.many or len(s.binds) > 1) and len(values) != 1:
                raise Rejected(s, space.prefix, f"archdsl rule: {len(values)} values named as one")
            names.values.update(zip(s.binds, values, strict=True))
        return y

    def name_all(self, statements: list[Any], space: Space, env: dict[str, Any]) -> None:
        """Every statement (and branch) whose name its module already has, as archdsl's namespaces
        claim names (`refused`). The reference refuses the first of them where it runs; archdsl
        goes on claiming the names of the statements after a refused one (in every pass of a
        repeat), and refuses them by the same rule, so their lines may carry that error too."""
        for s in statements:
            if isinstance(s, Input | Output) or (isinstance(s, Layer) and s.op in FUNCTIONS):
                continue
            if isinstance(s, If):
                # The branches it took where it ran; both where it never ran.
                took = self.took.get(id(s), {True, False})
                for truth in sorted(took, reverse=True):
                    self.name_all(s.body if truth else s.orelse, space, env)
                continue
            if getattr(s, "splice", False):
                self.name_composite(s, space, env)
                continue
            try:
                label = None if s.label is None else s.label.format(**env)
            except (KeyError, IndexError, ValueError):
                label = s.label
            if self.claims(space, s, label) and not isinstance(s, Layer):
                self.name_composite(s, Space(""), env)

    def claims(self, space: Space, statement: Any, label: str | None) -> bool:
        key = str(space.count) if label is None else label
        space.count += 1
        if key in space.names:
            self.refused.add(id(statement))
            return False
        space.names.add(key)
        return True

    def name_composite(self, s: Any, space: Space, env: dict[str, Any]) -> None:
        if isinstance(s, Call):
            block = self.blocks.get(s.block)
            if block is None:
                return
            inner: dict[str, Any] = {}
            given = dict(zip([n for n, _ in block.params], s.positional, strict=False))
            given.update(dict(s.keywords))
            for name, default in block.params:
                try:
                    inner[name] = evaluate(given[name], env) if name in given else evaluate(default, inner)
                except (Unevaluable, KeyError, TypeError):
                    inner[name] = None  # a tensor, or a value that needs one
            self.name_all(block.body, space, inner)
        elif isinstance(s, Repeat):
            try:
                count = evaluate(s.count, env)
            except (Unevaluable, TypeError):
                count = 0
            for index in range(count if isinstance(count, int) else 0):
                self.name_all(s.body, space, {**env, s.index: index} if s.index else env)
        elif isinstance(s, Concat):
            for branch in s.branches:
                if branch.splice:
                    self.name_all(branch.body, space, env)
                elif self.claims(space, branch, branch.name):
                    self.name_all(branch.body, Space(""), env)
        elif isinstance(s, Residual):
            if s.path is None or not s.path_first:
                self.name_all(s.body, space, env)
            if s.path is not None:
                if self.claims(space, s.path, s.path.name or "shortcut"):
                    self.name_all(s.path.body, Space(""), env)
                if s.path_first:
                    self.name_all(s.body, space, env)
            elif s.project and not self.claims(space, object(), "shortcut"):
                self.blamed_within.add(id(s))
        else:
            self.name_all(s.body, space, env)

    def unrun(self, statements: list[Any], seen: set[str], blocks: tuple[str, ...] = ()) -> None:
        """Statements that never run (the other branch of an `if`, the body of `repeat 0`): archdsl
        checks them for what needs no shapes, among it that every value they read is in sight
        (`seen`: those of their definition, and those they make themselves, in order)."""
        for s in statements:
            if isinstance(s, Input):
                seen.add(s.name)
                continue
            missing = [name for name in _statement_reads(s) if name not in seen]
            if missing:
                raise Rejected(
                    s, "", f"archdsl rule: '{missing[0]}' is not in sight (in a part that never runs)"
                )
            if isinstance(s, If):
                self.unrun(s.body, seen, blocks)
                self.unrun(s.orelse, seen, blocks)
            elif isinstance(s, Call) and s.block in self.blocks and s.block not in blocks:
                block = self.blocks[s.block]
                tensors = {name for name, _ in block.params if block.types.get(name) == "tensor"}
                self.unrun(block.body, tensors, (*blocks, s.block))
            elif isinstance(s, Concat):
                for branch in s.branches:
                    self.unrun(branch.body, seen, blocks)
            elif isinstance(s, Residual):
                self.unrun(s.body, seen, blocks)
                if s.path is not None:
                    self.unrun(s.path.body, seen, blocks)
            elif isinstance(s, Repeat | Gate | Group):
                self.unrun(s.body, seen, blocks)
            seen.update(s.binds)

    def statement(self, s: Any, x: Any, path: str, env: dict[str, Any], names: Names) -> Any:
        if isinstance(s, Layer):
            return self.layer(s, x, path, env, names)
        return self.composite(s, x, Space(path + "."), env, names)

    def composite(self, s: Any, x: Any, space: Space, env: dict[str, Any], names: Names) -> Any:
        if isinstance(s, Call):
            block = self.blocks[s.block]
            inner, tensors = self.bind(block, s, self.here(env, x), names, space.prefix)
            own = Names(dict(tensors))
            y = self.sequence(block.body, x, space, inner, own)
            if own.outputs is not None:
                values = [v for _, v in own.outputs]
                return values[0] if len(values) == 1 else Several(values)
            return y
        if isinstance(s, Repeat):
            count = self.value(s, s.count, env, names, space.prefix)
            if count < 0:
                raise Rejected(s, space.prefix, f"archdsl rule: a repeat count is ≥ 0, got {count}")
            if count == 0:
                self.unrun(s.body, set(names.values))
            for index in range(count):
                here = {**env, s.index: index} if s.index else env
                x = self.sequence(s.body, x, space, here, names)
            return x
        if isinstance(s, Concat):
            return self.concat(s, x, space, env, names)
        if isinstance(s, Gate):
            gate = self.tensor(s, self.sequence(s.body, x, space, env, names), space.prefix)
            # PyTorch broadcasts x * gate wherever the gate is 1; archdsl also wants equal ranks
            # and no axis of the gate larger than x's, so the product keeps x's shape.
            if gate.dim() != x.dim() or any(
                g not in (1, n) for g, n in zip(gate.shape[1:], x.shape[1:], strict=True)
            ):
                raise Rejected(s, space.prefix, f"archdsl rule: gate {tuple(gate.shape)} on {tuple(x.shape)}")
            return _named(x * gate, _axes(x))
        if isinstance(s, Group):
            return self.sequence(s.body, x, space, env, names)
        return self.residual(s, x, space, env, names)

    @staticmethod
    def tensor(s: Any, y: Any, path: str) -> Any:
        """A composite's body must end in one value."""
        if isinstance(y, Several):
            raise Rejected(s, path, f"archdsl rule: a body that gives {len(y)} values")
        return y

    def bind(
        self, block: BlockDef, s: Call, env: dict[str, Any], names: Names, path: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A call's parameters (a default sees the parameters before it) and its tensors."""
        given = dict(zip([n for n, _ in block.params], s.positional, strict=False))
        given.update(dict(s.keywords))
        inner: dict[str, Any] = {}
        tensors: dict[str, Any] = {}
        for name, default in block.params:
            kind = block.types.get(name, "int")
            if name in given:
                value = self.value(s, given[name], env, names, path)
            else:
                # A default sees the parameters before it, and `channels`: what the block receives.
                value = self.value(s, default, {**self.received(env), **inner}, Names(), path)
            is_tensor = not isinstance(value, bool | int | float | str | tuple)
            if (kind == "tensor") != is_tensor:
                raise Rejected(
                    s, path, f"archdsl rule: parameter {name}: {kind} given {type(value).__name__}"
                )
            if kind == "tensor":
                tensors[name] = value
            elif (kind == "bool") != isinstance(value, bool):
                raise Rejected(s, path, f"archdsl rule: parameter {name}: {kind} given {value!r}")
            inner[name] = value
        return inner, tensors

    def concat(self, s: Concat, x: Any, space: Space, env: dict[str, Any], names: Names) -> Any:
        count = len(s.branches)
        if s.split is False:
            parts = [x] * count
        else:
            if s.split is True:
                parts = list(self.torch.chunk(x, count, dim=1))
            else:
                if min(s.split) < 1:
                    raise Rejected(
                        s, space.prefix, f"archdsl rule: split channel counts are positive: {s.split}"
                    )
                if sum(s.split) != x.shape[1]:
                    raise Rejected(s, space.prefix, f"split {s.split} of {x.shape[1]} channels")
                parts = list(self.torch.split(x, list(s.split), dim=1))
            if len(parts) != count:
                raise Rejected(s, space.prefix, f"torch.chunk gives {len(parts)} parts for {count} branches")
            parts = [_named(part, _axes(x)) for part in parts]
        outputs = []
        for branch, part in zip(s.branches, parts, strict=True):
            if branch.splice:
                outputs.append(
                    self.tensor(s, self.sequence(branch.body, part, space, env, names), space.prefix)
                )
                continue
            key = space.claim(branch, branch.name)
            y = self.tensor(s, self.sequence(branch.body, part, Space(key + "."), env, names), key)
            self.ref.shapes[key] = tuple(y.shape[1:])
            outputs.append(y)
        try:
            return _named(self.torch.cat(outputs, dim=1), _axes(outputs[0]))
        except (RuntimeError, IndexError) as exc:
            raise Rejected(s, space.prefix, f"torch.cat: {exc}") from None

    def residual(self, s: Residual, x: Any, space: Space, env: dict[str, Any], names: Names) -> Any:
        from torch import nn

        def written_out(path: Branch) -> Any:
            key = space.claim(path, path.name or "shortcut")
            shortcut = self.tensor(s, self.sequence(path.body, x, Space(key + "."), env, names), key)
            self.ref.shapes[key] = tuple(shortcut.shape[1:])
            return shortcut

        # A written-out shortcut runs where it is written: before the body, or after it.
        shortcut = written_out(s.path) if s.path is not None and s.path_first else None
        y = self.tensor(s, self.sequence(s.body, x, space, env, names), space.prefix)
        if s.path is not None:
            if shortcut is None:
                shortcut = written_out(s.path)
            key = space.prefix + (s.path.name or "shortcut")
            if shortcut.shape != y.shape:
                raise Rejected(
                    s, key, f"archdsl rule: shortcut {tuple(shortcut.shape)}, body {tuple(y.shape)}"
                )
            return _named(y + shortcut, _axes(y))
        if not s.project:
            # x + body(x) would broadcast ([1, H, W] + [C, H, W]); archdsl documents equal shapes.
            if y.shape != x.shape:
                raise Rejected(s, space.prefix, f"archdsl rule: residual {tuple(x.shape)} → {tuple(y.shape)}")
            return _named(x + y, _axes(y))
        # archdsl names the projection `shortcut` after the body (a spliced residual of the body
        # may have taken the name), and refuses the whole residual where it is taken.
        path = space.claim(s, "shortcut")
        options = {k: self.value(s, v, env, names, path) for k, v in s.options if k != "shortcut"}
        bias, stride = options.get("bias", True), options.get("stride")
        if x.dim() == 2 and y.dim() == 2 and stride is None:
            layers: list[Any] = [nn.Linear(x.shape[1], y.shape[1], bias=bias)]
            if options.get("batchnorm", False):
                layers.append(nn.BatchNorm1d(y.shape[1]))
        elif x.dim() == 4 and y.dim() == 4:
            axes = _axes(x)
            if axes is not None and axes[0] != "C":
                # The projection is a 1×1 conv: archdsl's layout rule holds for it as for any conv.
                raise Rejected(s, path, f"archdsl rule: a projection's conv on axes {axes}")
            if stride is None:
                # archdsl's documented choice: the smallest s with ⌊(H − 1)/s⌋ + 1 = H_body.
                found = []
                for size, target in zip(x.shape[2:], y.shape[2:], strict=True):
                    fits = [t for t in range(1, size + 1) if (size - 1) // t + 1 == target]
                    if not fits:
                        raise Rejected(s, path, f"no 1×1 stride maps {size} to {target}")
                    found.append(fits[0])
                stride = tuple(found)
            layers = [nn.Conv2d(x.shape[1], y.shape[1], kernel_size=1, stride=stride, bias=bias)]
            if options.get("batchnorm", False):
                layers.append(nn.BatchNorm2d(y.shape[1]))
        else:
            raise Rejected(s, path, f"archdsl rule: no projection maps {tuple(x.shape)} to {tuple(y.shape)}")
        # One layer is the member `shortcut`; with its batchnorm, `shortcut` holds them as 0 and 1.
        projected = x
        for index, layer in enumerate(layers):
            where = path if len(layers) == 1 else f"{path}.{index}"
            projected = self.module(layer, where)(projected)
            self.ref.shapes[where] = tuple(projected.shape[1:])
        if projected.shape != y.shape:
            raise Rejected(s, path, f"projection gives {tuple(projected.shape)}, body {tuple(y.shape)}")
        self.ref.shapes[path] = tuple(projected.shape[1:])
        return _named(y + projected, _axes(y))

    def layer(self, s: Layer, x: Any, path: str, env: dict[str, Any], names: Names) -> Any:
        """The layer in PyTorch, holding [C, H, W] samples to archdsl's documented layout rules:
        their axes are followed by name through permutes; conv, pools, channel norms and the
        resampling layers need the channels first, linear and layernorm a last axis that is not H
        or W. A function's result keeps what it receives's axes."""
        axes = _axes(x)
        if axes is not None and len(axes) == 3:
            if s.op in IMAGE_LAYOUT and axes[0] != "C":
                raise Rejected(s, path, f"archdsl rule: {s.op} on axes {axes}")
            if s.op in ("linear", "layernorm") and axes[-1] in ("H", "W"):
                raise Rejected(s, path, f"archdsl rule: {s.op} over {axes[-1]} of {axes}")
            if s.op in CHANNELS_LAST and axes[-1] != "C":
                raise Rejected(s, path, f"archdsl rule: {s.op} on axes {axes}")
        if x.dim() == 1 and s.op in NEEDS_AN_AXIS:
            # A [] sample (`view([])`) has no features, channels or axis to act on.
            raise Rejected(s, path, f"archdsl rule: {s.op} on a [] sample")
        # `channels` is the count of the axis a layer acts on: the last for linear and layernorm.
        here = {**env, "channels": x.shape[-1]} if s.op in LAST_AXIS and x.dim() > 1 else self.here(env, x)
        y = self._layer(s, x, path, here, names)
        if isinstance(y, Several):
            return Several(_named(part, axes) for part in y)
        if any(size == 0 for size in y.shape[1:]):
            raise Rejected(s, path, f"archdsl rule: an empty output {tuple(y.shape[1:])}")
        if s.op == "permute" and axes is not None:
            dims = [evaluate(v, env) for v in s.positional]
            dims = list(dims[0]) if len(dims) == 1 and isinstance(dims[0], tuple) else dims
            return _named(y, tuple(axes[d] for d in dims))
        if axes is not None and y.dim() == x.dim():
            return _named(y, axes)
        return _named(y, IMAGE if y.dim() == 4 else None)

    def _layer(self, s: Layer, x: Any, path: str, env: dict[str, Any], names: Names) -> Any:
        from torch import nn
        from torch.nn import functional

        op = s.op
        pos = [self.value(s, v, env, names, path) for v in s.positional]
        kw = {k: self.value(s, v, env, names, path) for k, v in s.keywords}

        def rank(n: int) -> None:
            # PyTorch would take an unbatched 3-D tensor for one [C, H, W] sample, and nn.Linear
            # maps the last axis of any tensor; archdsl requires the per-sample rank instead.
            if x.dim() != n + 1:
                raise Rejected(s, path, f"archdsl rule: {op} needs rank {n}, got {tuple(x.shape[1:])}")

        def spatial(*values: Any) -> str:
            """A signal's, an image's or a video's: `1d`, `2d`, `3d`, PyTorch's module for it. Its
            sizes per axis are an int, or a list of one per spatial axis (archdsl's rule: PyTorch
            would take a pair for a 3d module's kernel, or fail somewhere deeper)."""
            if not 3 <= x.dim() <= 5:
                raise Rejected(s, path, f"archdsl rule: {op} needs rank 2 to 4, got {tuple(x.shape[1:])}")
            axes = x.dim() - 2
            for value in values:
                if isinstance(value, tuple) and len(value) != axes:
                    raise Rejected(s, path, f"archdsl rule: {op} size {value} for {axes} spatial axes")
            return f"{axes}d"

        def positive(value: Any, what: str) -> None:
            values = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, int) and not isinstance(v, bool) and v < 1 for v in values):
                raise Rejected(s, path, f"archdsl rule: {what} must be positive, got {value}")

        def tensors(values: list[Any]) -> list[Any]:
            if not values or any(isinstance(v, bool | int | float | str | tuple) for v in values):
                raise Rejected(s, path, f"archdsl rule: {op} joins named values, got {values}")
            return values

        def interpolation() -> dict[str, Any]:
            options = {"mode": kw.get("mode", "nearest")}
            if kw.get("align_corners") is not None:
                options["align_corners"] = kw["align_corners"]
            return options

        try:
            if op == "conv":
                padding = kw.get("padding", 0)
                dims = spatial(kw.get("kernel"), kw.get("stride"), padding, kw.get("dilation"))
                out = pos[0] if pos else kw["out"]
                out = x.shape[1] if isinstance(out, Same) else out
                positive(out, "out")
                positive(kw.get("kernel"), "kernel")
                if (
                    isinstance(padding, tuple | int)
                    and min(padding if isinstance(padding, tuple) else (padding,)) < 0
                ):
                    raise Rejected(s, path, "archdsl rule: padding ≥ 0")
                module = getattr(nn, f"Conv{dims}")(
                    kw.get("in", x.shape[1]),
                    out,
                    kernel_size=kw["kernel"],
                    stride=kw.get("stride", 1),
                    padding=padding,
                    dilation=kw.get("dilation", 1),
                    groups=kw.get("groups", 1),
                    bias=kw.get("bias", True),
                )
            elif op == "convtranspose":
                rank(3)
                out = pos[0] if pos else kw["out"]
                out = x.shape[1] if isinstance(out, Same) else out
                positive(out, "out")
                positive(kw.get("kernel"), "kernel")
                module = nn.ConvTranspose2d(
                    kw.get("in", x.shape[1]),
                    out,
                    kernel_size=kw["kernel"],
                    stride=kw.get("stride", 1),
                    padding=kw.get("padding", 0),
                    output_padding=kw.get("output_padding", 0),
                    groups=kw.get("groups", 1),
                    bias=kw.get("bias", True),
                    dilation=kw.get("dilation", 1),
                )
            elif op in ("maxpool", "avgpool"):
                kernel = pos[0]
                dims = spatial(kernel, kw.get("stride"), kw.get("padding"), kw.get("dilation"))
                positive(kernel, "kernel")
                common = {
                    "stride": kw.get("stride"),
                    "padding": kw.get("padding", 0),
                    "ceil_mode": kw.get("ceil", False),
                }
                if op == "maxpool":
                    module = getattr(nn, f"MaxPool{dims}")(kernel, dilation=kw.get("dilation", 1), **common)
                else:
                    module = getattr(nn, f"AvgPool{dims}")(
                        kernel, count_include_pad=kw.get("count_include_pad", True), **common
                    )
            elif op in ("adaptiveavgpool", "adaptivemaxpool"):
                dims = spatial(pos[0])
                positive(pos[0], "size")
                family = "AdaptiveAvgPool" if op == "adaptiveavgpool" else "AdaptiveMaxPool"
                module = getattr(nn, f"{family}{dims}")(pos[0])
            elif op == "upsample":
                rank(3)
                scale = pos[0] if pos else kw["scale"]
                module = nn.Upsample(scale_factor=scale, **interpolation())
            elif op == "pad":
                rank(3)
                amount = pos[0] if pos else kw["amount"]
                mode, value = kw.get("mode", "zeros"), kw.get("value", 0)
                if value != 0 and mode != "constant":
                    # PyTorch's padding modules other than ConstantPad2d take no fill.
                    raise Rejected(s, path, f"archdsl rule: value={value} fills only with mode=constant")
                if mode == "constant":
                    module = nn.ConstantPad2d(amount, value)
                else:
                    pads = {
                        "zeros": nn.ZeroPad2d,
                        "reflect": nn.ReflectionPad2d,
                        "replicate": nn.ReplicationPad2d,
                        "circular": nn.CircularPad2d,
                    }
                    module = pads[mode](amount)
            elif op == "pixelshuffle":
                rank(3)
                module = nn.PixelShuffle(pos[0] if pos else kw["factor"])
            elif op == "pixelunshuffle":
                rank(3)
                module = nn.PixelUnshuffle(pos[0] if pos else kw["factor"])
            elif op == "batchnorm":
                norms = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}
                if x.dim() not in norms:
                    raise Rejected(s, path, f"no batchnorm for {tuple(x.shape[1:])}")
                module = norms[x.dim()](
                    x.shape[1],
                    eps=kw.get("eps", 1e-5),
                    momentum=kw.get("momentum", 0.1),
                    affine=kw.get("affine", True),
                )
            elif op in ("layernorm", "layernorm2d", "groupnorm"):
                norm = {"eps": kw.get("eps", 1e-5), "bias": kw.get("bias", True)}
                if op == "groupnorm":
                    groups = pos[0] if pos else kw["groups"]
                    positive(groups, "groups")
                    module = nn.GroupNorm(groups, x.shape[1], affine=kw.get("affine", True), **norm)
                else:
                    # torchvision's own LayerNorm2d (ConvNeXt's) for the channels of [C, H, W].
                    from torchvision.models.convnext import LayerNorm2d

                    size = x.shape[-1] if op == "layernorm" else x.shape[1]
                    kind = nn.LayerNorm if op == "layernorm" else LayerNorm2d
                    module = kind(size, elementwise_affine=kw.get("affine", True), **norm)
            elif op == "dropout":
                module = nn.Dropout(kw.get("p", 0.5))
            elif op == "scale":
                # A bare parameter of its module (ConvNeXt's layer scale), here one of its own.
                init = pos[0] if pos else kw.get("init", 1.0)
                gamma = nn.Parameter(self.torch.full((x.shape[1], *(1,) * (x.dim() - 2)), float(init)))
                self.ref.params[path] = gamma.numel()
                return x * gamma
            elif op == "stochasticdepth":
                from torchvision.ops import StochasticDepth

                module = StochasticDepth(pos[0] if pos else kw["p"], kw.get("mode", "row"))
            elif op == "shuffle":
                groups = pos[0] if pos else kw["groups"]
                positive(groups, "groups")
                module = nn.ChannelShuffle(groups)
            elif op == "gelu":
                module = nn.GELU(approximate=kw.get("approximate", "none"))
            elif op == "dropout2d":
                rank(3)
                module = nn.Dropout2d(kw.get("p", 0.5))
            elif op in ("softmax", "logsoftmax"):
                module = (nn.Softmax if op == "softmax" else nn.LogSoftmax)(dim=kw.get("dim", 1))
            elif op == "leakyrelu":
                module = nn.LeakyReLU(kw.get("slope", 0.01))
            elif op == "elu":
                module = nn.ELU(kw.get("alpha", 1.0))
            elif op == "prelu":
                slopes = x.shape[1] if kw.get("per_channel", False) else 1
                module = nn.PReLU(slopes, init=kw.get("init", 0.25))
            elif op in SIMPLE:
                module = getattr(nn, SIMPLE[op])()
            elif op == "view":
                dims = pos[0] if len(pos) == 1 and isinstance(pos[0], tuple) else tuple(pos)
                if any(d < 1 and d != -1 for d in dims):
                    raise Rejected(s, path, f"archdsl rule: view dims positive or one -1, got {dims}")
                self.ref.params[path] = 0
                return x.reshape(x.shape[0], *dims)
            elif op == "narrow":
                length = pos[0] if pos else kw["length"]
                start = kw.get("start", 0)
                if x.dim() < 2:
                    raise Rejected(s, path, "no channel axis")
                if start + length > x.shape[1]:
                    # PyTorch's slice would stop at the last channel, silently
                    past = f"narrow {start}+{length} past {x.shape[1]} channels"
                    raise Rejected(s, path, f"archdsl rule: {past}")
                self.ref.params[path] = 0
                return x[:, start : start + length]
            elif op == "permute":
                dims = pos[0] if len(pos) == 1 and isinstance(pos[0], tuple) else tuple(pos)
                if any(d < 0 for d in dims):
                    raise Rejected(s, path, f"archdsl rule: permute dims count from 0, got {dims}")
                self.ref.params[path] = 0
                return x.permute(0, *(d + 1 for d in dims))
            elif op == "token":
                rank(2)
                count = pos[0] if pos else kw.get("count", 1)
                positive(count, "count")
                tokens = nn.Parameter(self.torch.zeros(1, count, x.shape[-1]))
                self.ref.params[path] = tokens.numel()
                return self.torch.cat([tokens.expand(x.shape[0], -1, -1), x], dim=1)
            elif op == "posembed":
                embedding = nn.Parameter(self.torch.empty(1, *x.shape[1:]).normal_(std=kw.get("std", 0.02)))
                self.ref.params[path] = embedding.numel()
                return x + embedding
            elif op == "attention":
                rank(2)
                heads = pos[0] if pos else kw["heads"]
                positive(heads, "heads")
                if x.shape[-1] % heads:
                    raise Rejected(s, path, f"{heads} heads do not divide {x.shape[-1]} features")
                module = nn.MultiheadAttention(
                    x.shape[-1],
                    heads,
                    dropout=kw.get("dropout", 0.0),
                    bias=kw.get("bias", True),
                    batch_first=True,
                )
                return self.module(module, path)(x, x, x, need_weights=False)[0]
            elif op in ("windowattention", "patchmerging"):
                from torchvision.models import swin_transformer as swin
                from torchvision.models.video import swin_transformer as swin3d

                if x.dim() not in (4, 5):
                    raise Rejected(s, path, f"archdsl rule: {op} on {tuple(x.shape[1:])}")
                axes, v2 = x.dim() - 2, kw.get("v2", False)
                if op == "patchmerging":
                    # torchvision's (2-D) PatchMerging merges each frame of a clip, as Swin3d uses it
                    module = (swin.PatchMergingV2 if v2 else swin.PatchMerging)(x.shape[-1])
                elif v2 and axes != 2:
                    raise Rejected(s, path, "archdsl rule: Swin V2's window attention takes maps")
                else:
                    heads = pos[0] if pos else kw["heads"]
                    window, shift = kw.get("window", 7), kw.get("shift", 0)
                    window = list(window) if isinstance(window, tuple) else [window] * axes
                    shift = list(shift) if isinstance(shift, tuple) else [shift] * axes
                    if len(window) != axes or len(shift) != axes:
                        raise Rejected(s, path, f"archdsl rule: {window}, {shift} for {axes} axes")
                    positive(heads, "heads")
                    positive(tuple(window), "window")
                    if x.shape[-1] % heads:
                        raise Rejected(s, path, f"{heads} heads do not divide {x.shape[-1]} channels")
                    if axes == 3:
                        kind = swin3d.ShiftedWindowAttention3d
                    else:
                        kind = swin.ShiftedWindowAttentionV2 if v2 else swin.ShiftedWindowAttention
                    module = kind(x.shape[-1], window, shift, heads)
            elif op == "partitionattention":
                from torchvision.models import maxvit

                if x.dim() != 4:
                    raise Rejected(s, path, f"archdsl rule: {op} on {tuple(x.shape[1:])}")
                heads, size = pos[0] if pos else kw["heads"], kw.get("size", 7)
                positive(heads, "heads")
                positive(size, "size")
                n, height, width, channels = x.shape
                if channels % heads:
                    raise Rejected(s, path, f"{heads} heads do not divide {channels} channels")
                if height % size or width % size:
                    # torchvision's partition reshapes the map into whole partitions
                    raise Rejected(s, path, f"partitions of {size} do not divide {height}×{width}")
                attention = maxvit.RelativePositionalMultiHeadAttention(
                    channels, channels // heads, size * size
                )
                if kw.get("scale_by", "head") == "head":
                    attention.scale_factor = (channels // heads) ** -0.5
                rows, columns = height // size, width // size
                # a grid's group (a, b) holds positions (i·rows + a, …), a window's (a·size + i, …)
                grid = kw.get("grid", False)
                split = (
                    (n, size, rows, size, columns, channels)
                    if grid
                    else (n, rows, size, columns, size, channels)
                )
                order = (0, 2, 4, 1, 3, 5) if grid else (0, 1, 3, 2, 4, 5)
                groups = x.reshape(split).permute(order).reshape(n, rows * columns, size * size, channels)
                out = self.module(attention, path)(groups)
                back = [order.index(axis) for axis in range(6)]
                return out.reshape(n, rows, columns, size, size, channels).permute(back).reshape(x.shape)
            elif op in ("posencoding", "poolattention", "tokenpool"):
                from functools import partial

                from torchvision.models.video import mvit

                if x.dim() != 3:
                    raise Rejected(s, path, f"archdsl rule: {op} on {tuple(x.shape[1:])}")
                grid = kw["grid"]
                if not isinstance(grid, tuple) or len(grid) != 3:
                    raise Rejected(s, path, f"archdsl rule: {op} grid {grid}")
                positive(grid, "grid")
                features, tokens = x.shape[-1], _prod(grid) + (op != "posencoding")
                if x.shape[1] != tokens:
                    # torchvision's reshapes onto the grid would fail, or run on the wrong positions
                    raise Rejected(s, path, f"archdsl rule: grid {grid} for {x.shape[1]} tokens")

                def triple(value: Any) -> list[int]:
                    return list(value) if isinstance(value, tuple | list) else [value] * 3

                if op == "posencoding":
                    module = mvit.PositionalEncoding(
                        features, (grid[1], grid[2]), grid[0], rel_pos_embed=not kw.get("embed", True)
                    )
                    return self.module(module, path)(x)
                if op == "tokenpool":
                    kernel = triple(pos[0] if pos else kw["kernel"])
                    stride, padding = triple(kw.get("stride") or kernel), triple(kw.get("padding", 0))
                    positive(tuple(kernel + stride), "kernel and stride")
                    module = mvit.Pool(nn.MaxPool3d(kernel, stride=stride, padding=padding), None)
                    return self.module(module, path)(x, tuple(grid))[0]
                heads, dim = pos[0] if pos else kw["heads"], kw.get("dim", features)
                positive(heads, "heads")
                if dim % heads:
                    raise Rejected(s, path, f"{heads} heads do not divide {dim} features")
                kernel_q, stride_q = triple(kw.get("kernel_q", 1)), triple(kw.get("stride_q", 1))
                kernel_kv, stride_kv = triple(kw.get("kernel_kv", 1)), triple(kw.get("stride_kv", 1))
                module = mvit.MultiscaleAttention(
                    list(grid),
                    features,
                    dim,
                    heads,
                    kernel_q=kernel_q,
                    kernel_kv=kernel_kv,
                    stride_q=stride_q,
                    stride_kv=stride_kv,
                    residual_pool=kw.get("residual_pool", False),
                    residual_with_cls_embed=False,
                    rel_pos_embed=kw.get("rel_pos", False),
                    norm_layer=partial(nn.LayerNorm, eps=kw.get("eps", 1e-5)),
                )
                return self.module(module, path)(x, tuple(grid))[0]
            elif op == "linear":
                out = pos[0] if pos else kw["out"]
                out = x.shape[-1] if isinstance(out, Same) else out
                positive(out, "out")
                module = nn.Linear(kw.get("in", x.shape[-1]), out, bias=kw.get("bias", True))
            # --- functions: no module, no parameters --------------------------------------------
            elif op == "cat":
                return self.torch.cat([x, *tensors(pos)], dim=1)
            elif op == "add":
                for other in tensors(pos):
                    if other.shape != x.shape:
                        # PyTorch would broadcast; archdsl adds values of one shape only.
                        raise Rejected(
                            s, path, f"archdsl rule: add {tuple(x.shape)} and {tuple(other.shape)}"
                        )
                return sum(pos, x)
            elif op == "mul":
                numbers = [v for v in pos if isinstance(v, int | float) and not isinstance(v, bool)]
                others = [v for v in pos if not isinstance(v, int | float) or isinstance(v, bool)]
                y = x
                for other in tensors(others) if others or not numbers else []:
                    if other.dim() != x.dim() or any(
                        o not in (1, n) for o, n in zip(other.shape[1:], x.shape[1:], strict=True)
                    ):
                        # PyTorch would broadcast x too; archdsl scales by a value of x's size or 1.
                        raise Rejected(s, path, f"archdsl rule: mul {tuple(x.shape)} by {tuple(other.shape)}")
                    y = y * other
                for number in numbers:
                    y = y * number
                return y
            elif op == "split":
                sizes = pos[0] if pos else kw["sizes"]
                dim = kw.get("dim", 1)
                if x.dim() < 2:
                    raise Rejected(s, path, "archdsl rule: split needs channels")
                if dim % x.dim() == 0 and -x.dim() <= dim < x.dim():
                    raise Rejected(s, path, "archdsl rule: split may not take the batch axis")
                if isinstance(sizes, int):
                    positive(sizes, "split's count")
                    parts = self.torch.chunk(x, sizes, dim=dim)
                    if len(parts) != sizes:
                        # torch.chunk silently gives fewer parts; archdsl refuses
                        raise Rejected(
                            s, path, f"archdsl rule: torch.chunk gives {len(parts)} parts, not {sizes}"
                        )
                else:
                    positive(sizes, "split's sizes")
                    parts = self.torch.split(x, list(sizes), dim=dim)
                return Several(parts) if len(parts) > 1 else parts[0]
            elif op == "matmul":
                (other,) = tensors(pos[:1] or [kw.get("other")])
                if x.dim() < 3 or other.dim() < 3 or x.dim() != other.dim():
                    # PyTorch would take vectors, and broadcast the batch against another axis.
                    raise Rejected(
                        s, path, f"archdsl rule: matmul {tuple(x.shape[1:])} by {tuple(other.shape[1:])}"
                    )
                return x @ other
            elif op in ("select", "mean"):
                if op == "select":
                    dims = (kw.get("dim", 1),)
                else:
                    dims = pos[0] if pos else kw.get("dim", 1)
                    dims = dims if isinstance(dims, tuple) else (dims,)
                if any(-x.dim() <= d < x.dim() and d % x.dim() == 0 for d in dims):
                    raise Rejected(s, path, f"archdsl rule: {op} may not take the batch axis")
                if op == "select":
                    return x.select(dims[0], pos[0] if pos else kw["index"])
                if not dims:
                    raise Rejected(s, path, "archdsl rule: mean over no axis")
                return x.mean(dim=dims, keepdim=kw.get("keepdim", False))
            elif op == "resize":
                rank(3)
                to = pos[0] if pos else kw["to"]
                if isinstance(to, tuple | int):
                    size = (to, to) if isinstance(to, int) else to
                    positive(size, "resize's size")
                else:
                    like = tuple(to.shape[1:])
                    if len(like) < 2:
                        raise Rejected(
                            s, path, f"archdsl rule: resize to {like}, which has no height and width"
                        )
                    size = like[-2:]
                return functional.interpolate(x, size=size, **interpolation())
            elif op == "padto":
                rank(3)
                like = tuple(tensors(pos[:1] or [kw.get("like")])[0].shape[1:])
                if len(like) < 2:
                    raise Rejected(s, path, f"archdsl rule: padto {like}, which has no height and width")
                # U-Net's padding of the way up to its skip's size (milesial's Pytorch-UNet).
                dy, dx = like[-2] - x.shape[2], like[-1] - x.shape[3]
                mode = kw.get("mode", "zeros")
                return functional.pad(
                    x,
                    [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2],
                    mode="constant" if mode == "zeros" else mode,
                )
            else:
                raise AssertionError(f"no reference for {op}")
            return self.module(module, path)(x)
        except (RuntimeError, ValueError, IndexError, TypeError, NotImplementedError) as exc:
            raise Rejected(s, path, f"{type(exc).__name__}: {exc}") from None


#: The layers that need a [C, H, W] sample's channels first (archdsl follows the axes' names).
IMAGE_LAYOUT = frozenset(
    {
        "conv",
        "maxpool",
        "avgpool",
        "adaptiveavgpool",
        "adaptivemaxpool",
        "batchnorm",
        "layernorm2d",
        "groupnorm",
        "dropout2d",
        "shuffle",
        "convtranspose",
        "upsample",
        "resize",
        "pad",
        "padto",
        "pixelshuffle",
        "pixelunshuffle",
    }
)
#: The layers that need a map's channels last, [H, W, C] (Swin's).
CHANNELS_LAST = frozenset({"windowattention", "partitionattention", "patchmerging"})
#: The layers whose `channels` is the count of the last axis, the one they act on.
LAST_AXIS = frozenset({"linear", "layernorm"})
#: The layers that act on a feature or channel axis, which a [] sample lacks.
NEEDS_AN_AXIS = frozenset(
    {"linear", "layernorm", "groupnorm", "scale", "narrow", "batchnorm", "shuffle", "split", "posembed"}
)
IMAGE = ("C", "H", "W")


def _axes(x: Any) -> tuple[str, ...] | None:
    """The names of a sample's axes, where known: carried on the tensor."""
    return getattr(x, "axes", None)


def _named(x: Any, axes: tuple[str, ...] | None) -> Any:
    x.axes = axes
    return x


SIMPLE = {
    "relu": "ReLU",
    "relu6": "ReLU6",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "hardsigmoid": "Hardsigmoid",
    "silu": "SiLU",
    "hardswish": "Hardswish",
    "mish": "Mish",
    "identity": "Identity",
    "flatten": "Flatten",
}


def run_reference(spec: Spec) -> Reference:
    """Runs the spec in PyTorch; raises `Rejected` at the first statement PyTorch refuses."""
    import torch

    runner = Runner(spec)
    names = Names()
    try:
        with torch.no_grad():
            x = None
            for name, shape in spec.inputs:
                x = torch.randn(BATCH, *shape)
                _named(x, IMAGE if x.dim() == 4 else None)
                if name is not None:
                    names.values[name] = x
            y = runner.sequence(spec.body, x, Space(""), {}, names)
    except Rejected as rejected:
        rejected.ran = runner.ref.ran
        runner.name_all(spec.body, Space(""), {})
        rejected.also |= runner.refused | runner.blamed_within
        raise
    if names.outputs is not None:
        outputs = names.outputs
    else:
        outputs = [(None, v) for v in (y if isinstance(y, Several) else [y])]
    runner.ref.outputs = [(key, tuple(v.shape[1:])) for key, v in outputs]
    runner.ref.output = runner.ref.outputs[0][1]
    return runner.ref


# --- the generator --------------------------------------------------------------------------------


class Generator:
    """Draws one spec from a seed. It tracks the tensor's shape with simple size rules so that most
    specs are valid deep into their statements; a few statements are wrong on purpose, and the
    simple rules are sometimes wrong (ceil mode, dilation), so PyTorch rejects a fair share.

    It also tracks the values named so far in the definition it writes (`scope`: each name's shape,
    as guessed), so that statements read them back (`x -> …`, `cat(x)`, `padto(x)`, `height(x)`);
    a name made only in one branch of an `if` is not read later. `several_inputs` lets a model
    have two inputs (`tests/test_emit.py` calls the networks it builds with one tensor)."""

    def __init__(self, seed: int, several_inputs: bool = False):
        self.r = random.Random(seed)
        self.blocks: list[BlockDef] = []
        self.labels = 0
        self.several_inputs = several_inputs
        #: The named values of the definition being written, with their guessed shapes.
        self.scope: dict[str, list[int]] = {}
        self.names = 0
        #: > 0 while writing a branch of an `if`: names made there may not exist after it.
        self.hidden = 0

    # small helpers
    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def pick(self, options: list[Any]) -> Any:
        return self.r.choice(options)

    def label(self) -> str | None:
        if self.chance(0.1):
            self.labels += 1
            return f"s{self.labels}" if self.chance(0.8) else f"s-{self.labels}"
        return None

    def splice(self, statement: Any) -> Any:
        """Sometimes `*`: the composite's members join the enclosing module (a label would be
        meaningless then, so it goes)."""
        if self.chance(0.15):
            statement.splice = True
            statement.label = None
        return statement

    def pair(self, low: int, high: int) -> int | tuple[int, int]:
        if self.chance(0.75):
            return self.r.randint(low, high)
        return (self.r.randint(low, high), self.r.randint(low, high))

    def per_axis(self, low: int, high: int, axes: int) -> int | tuple[int, ...]:
        """A size for every spatial axis, or one per axis (`[3, 7, 7]` on a video); now and then a
        list for another number of axes (E118)."""
        if self.chance(0.7):
            return self.r.randint(low, high)
        count = axes if self.chance(0.95) else self.pick([n for n in (1, 2, 3) if n != axes])
        return tuple(self.r.randint(low, high) for _ in range(count))

    # --- layers on an image --------------------------------------------------------------------

    def conv(self, shape: list[int]) -> Layer:
        c = shape[0]
        if self.chance(0.08):
            # A depthwise convolution written with `channels`, the count the layer receives.
            out: Any = self.pick([CHANNELS, Op("*", CHANNELS, 2)])
            k = self.pick([1, 3])
            shape[0] = c if isinstance(out, Channels) else 2 * c
            return Layer(
                "conv", (out,), (("kernel", k), ("padding", k // 2), ("groups", CHANNELS)), self.label()
            )
        groups = 1
        if self.chance(0.15):
            divisors = [g for g in (2, 3, 4) if c % g == 0]
            groups = self.pick(divisors) if divisors and self.chance(0.8) else self.r.randint(2, 4)
        out: Any = SAME if self.chance(0.15) else groups * self.r.randint(1, max(1, 12 // groups))
        if groups == 1 and self.chance(0.06):
            # `a if cond else b`, a condition on the channels it receives (or a named value's size)
            cond = self.condition(shape)
            a, b = self.r.randint(1, 12), self.r.randint(1, 12)
            out = Choose(a, cond, b)
            shape[0] = a if self.guess(cond, shape) else b
            out_count = shape[0]
        else:
            out_count = c if isinstance(out, Same) else out
        axes = max(len(shape) - 1, 1)
        kernel = self.per_axis(1, 5, axes)
        kw: list[tuple[str, Any]] = [("kernel", kernel)]
        k = kernel if isinstance(kernel, int) else max(kernel)
        stride: Any = 1
        if self.chance(0.3):
            stride = self.per_axis(1, 3, axes) if self.chance(0.3) else self.r.randint(1, 3)
            kw.append(("stride", stride))
            stride = stride if isinstance(stride, int) else min(stride)
        dilation = 1
        if self.chance(0.2):
            dilation = self.r.randint(1, 3)
            kw.append(("dilation", dilation))
        roll = self.r.random()
        pad = 0
        if roll < 0.45:
            pad = self.r.randint(0, 3)
            kw.append(("padding", pad))
        elif roll < 0.6:
            kw.append(("padding", "same"))  # with a stride, refused by PyTorch
            pad = dilation * (k - 1) // 2
        elif roll < 0.65:
            kw.append(("padding", "valid"))
        elif roll < 0.7:
            kw.append(("padding", tuple(self.r.randint(0, 2) for _ in range(axes))))
        if groups != 1:
            kw.append(("groups", groups))
        if self.chance(0.1):
            kw.append(("bias", False))
        if self.chance(0.05):
            kw.append(("in", self.pick([c, c, c + 1])))
        shape[0] = out_count
        for axis in range(1, len(shape)):
            shape[axis] = (shape[axis] + 2 * pad - dilation * (k - 1) - 1) // stride + 1
        return Layer("conv", (out,), tuple(kw), self.label())

    def convtranspose(self, shape: list[int]) -> Layer:
        """A learnt upsampling (DCGAN's, U-Net's), sometimes with an output padding not below its
        stride, or padding that cuts more than the output has."""
        c = shape[0]
        groups = 1
        if self.chance(0.12):
            divisors = [g for g in (2, 3, 4) if c % g == 0]
            groups = self.pick(divisors) if divisors and self.chance(0.8) else self.r.randint(2, 3)
        out: Any = SAME if self.chance(0.1) else groups * self.r.randint(1, max(1, 12 // groups))
        if self.chance(0.08):
            out = Op("//", CHANNELS, 2)  # U-Net's up step halves the channels
            shape[0] = c // 2
        else:
            shape[0] = c if isinstance(out, Same) else out
        big = shape[1] * shape[2] > 24 * 24
        kernel = self.pair(1, 4)
        kw: list[tuple[str, Any]] = [("kernel", kernel)]
        ks = kernel if isinstance(kernel, tuple) else (kernel, kernel)
        stride = 1 if big else self.pick([1, 2, 2, 3])
        if stride != 1 or self.chance(0.2):
            kw.append(("stride", stride))
        pad = 0
        if self.chance(0.4):
            pad = self.r.randint(0, 2)
            kw.append(("padding", pad))
        extra = 0
        if self.chance(0.2):
            # below the stride, or now and then not: PyTorch refuses
            extra = self.r.randint(0, stride) if self.chance(0.2) else self.r.randint(0, stride - 1)
            kw.append(("output_padding", extra))
        dilation = 1
        if self.chance(0.12):
            dilation = self.r.randint(1, 2)
            kw.append(("dilation", dilation))
        if groups != 1:
            kw.append(("groups", groups))
        if self.chance(0.1):
            kw.append(("bias", False))
        if self.chance(0.03):
            kw.append(("in", self.pick([c, c + 1])))
        for axis in (1, 2):
            shape[axis] = (shape[axis] - 1) * stride - 2 * pad + dilation * (ks[axis - 1] - 1) + extra + 1
        return Layer("convtranspose", (out,), tuple(kw), self.label())

    def upsample(self, shape: list[int]) -> Layer:
        scale: Any = self.pick([2, 2, 2, 3, 1.5, 0.5, [2, 1], [1, 2]])
        if shape[1] * shape[2] > 24 * 24:
            scale = self.pick([0.5, 1, [1, 2]])
        kw: list[tuple[str, Any]] = []
        mode = self.pick(["nearest", "nearest", "bilinear", "bicubic"])
        if mode != "nearest" or self.chance(0.3):
            kw.append(("mode", mode))
        if (mode != "nearest" and self.chance(0.3)) or self.chance(0.03):
            kw.append(("align_corners", self.chance(0.6)))  # with nearest: refused
        pair = scale if isinstance(scale, list) else [scale, scale]
        shape[1:] = [int(shape[1] * pair[0]), int(shape[2] * pair[1])]
        return Layer("upsample", (scale,), tuple(kw), self.label())

    def pad(self, shape: list[int]) -> Layer:
        amount: Any = self.r.randint(0, 2) if self.chance(0.6) else [self.r.randint(-1, 2) for _ in range(4)]
        if self.chance(0.05):
            amount = -1  # crops
        sides = amount if isinstance(amount, list) else [amount] * 4
        kw: list[tuple[str, Any]] = []
        mode = self.pick(["zeros", "zeros", "constant", "reflect", "reflect", "replicate", "circular"])
        if mode != "zeros" or self.chance(0.2):
            kw.append(("mode", mode))
        if (mode == "constant" and self.chance(0.7)) or self.chance(0.03):
            kw.append(("value", self.pick([0.5, -1, 0, 2.0])))  # with another mode: refused
        shape[1:] = [shape[1] + sides[2] + sides[3], shape[2] + sides[0] + sides[1]]
        return Layer("pad", (amount,), tuple(kw), self.label())

    def pixelshuffle(self, shape: list[int]) -> Layer:
        """Channels into space (ESPCN's upsampling), or space into channels; mostly by a factor
        that divides what it must."""
        fits = [r for r in (2, 3) if shape[0] % (r * r) == 0]
        if (fits and self.chance(0.6)) or self.chance(0.1):
            r = self.pick(fits) if fits and self.chance(0.9) else 2
            shape[:] = [shape[0] // (r * r), shape[1] * r, shape[2] * r]
            return Layer("pixelshuffle", (r,), (), self.label())
        fits = [r for r in (2, 3) if shape[1] % r == 0 and shape[2] % r == 0]
        r = self.pick(fits) if fits and self.chance(0.9) else 2
        shape[:] = [shape[0] * r * r, shape[1] // r, shape[2] // r]
        return Layer("pixelunshuffle", (r,), (), self.label())

    def resize(self, shape: list[int]) -> Layer:
        """`resize` to a named image's size (FCN's, U-Net's), or to a given one."""
        images = [n for n, v in self.scope.items() if len(v) == 3]
        kw: list[tuple[str, Any]] = []
        mode = self.pick(["nearest", "nearest", "bilinear", "bicubic"])
        if mode != "nearest" or self.chance(0.3):
            kw.append(("mode", mode))
        if (mode != "nearest" and self.chance(0.3)) or self.chance(0.02):
            kw.append(("align_corners", self.chance(0.5)))
        if images and self.chance(0.7):
            name = self.pick(images)
            shape[1:] = self.scope[name][1:]
            return Layer("resize", (V(name),), tuple(kw))
        size: Any = self.pair(1, 16)
        shape[1:] = [size, size] if isinstance(size, int) else list(size)
        return Layer("resize", (list(size) if isinstance(size, tuple) else size,), tuple(kw))

    def pool(self, shape: list[int]) -> Layer:
        op = self.pick(["maxpool", "avgpool"])
        axes = max(len(shape) - 1, 1)
        kernel = self.per_axis(1, 4, axes)
        k = kernel if isinstance(kernel, int) else min(kernel)
        kw: list[tuple[str, Any]] = []
        stride = k
        if self.chance(0.5):
            stride = self.r.randint(1, 3)
            kw.append(("stride", stride))
        pad = 0
        if self.chance(0.35):
            pad = self.r.randint(0, 2)  # sometimes more than half the kernel: PyTorch refuses
            kw.append(("padding", pad if self.chance(0.8) else self.per_axis(0, 2, axes)))
        if op == "maxpool" and self.chance(0.2):
            kw.append(("dilation", self.r.randint(1, 2) if self.chance(0.8) else self.per_axis(1, 2, axes)))
        if self.chance(0.4):
            kw.append(("ceil", self.chance(0.7)))
        if op == "avgpool" and self.chance(0.15):
            kw.append(("count_include_pad", False))
        for axis in range(1, len(shape)):
            shape[axis] = (shape[axis] + 2 * pad - k) // max(stride, 1) + 1
        return Layer(op, (kernel,), tuple(kw), self.label())

    def groups(self, channels: int) -> int:
        """Mostly a groups count that divides the channels, sometimes one that need not."""
        divisors = [g for g in (1, 2, 3, 4, 6) if channels % g == 0]
        return self.pick(divisors) if self.chance(0.85) else self.r.randint(2, 5)

    def activation(self, shape: list[int]) -> Layer:
        """A statement that keeps the shape (or would, where PyTorch accepts it)."""
        op = self.pick(
            [
                "relu",
                "relu6",
                "tanh",
                "sigmoid",
                "hardsigmoid",
                "gelu",
                "silu",
                "hardswish",
                "mish",
                "identity",
                "leakyrelu",
                "prelu",
                "elu",
                "softmax",
                "logsoftmax",
                "dropout",
                "stochasticdepth",
                "scale",
                "batchnorm",
                "layernorm",
                "groupnorm",
                "shuffle",
            ]
        )
        positional: tuple[Any, ...] = ()
        kw: tuple[tuple[str, Any], ...] = ()
        if op in ("groupnorm", "shuffle"):
            positional = (self.groups(shape[0]),)
        elif op == "scale" and self.chance(0.6):
            positional = (self.pick([1e-6, 0.5, 2]),)
        elif op == "stochasticdepth":
            positional = (self.pick([0.0, 0.2, 0.5, 1]),)
            if self.chance(0.4):
                kw = (("mode", self.pick(["row", "batch"])),)
        if op == "gelu" and self.chance(0.5):
            kw = (("approximate", self.pick(["none", "tanh"])),)
        elif op in ("layernorm", "groupnorm") and self.chance(0.5):
            options = [
                ("eps", self.pick([1e-6, 0.001])),
                ("affine", self.chance(0.5)),
                ("bias", self.chance(0.5)),
            ]
            kw = tuple(self.r.sample(options, self.r.randint(1, 3)))
        elif op == "leakyrelu" and self.chance(0.5):
            kw = (("slope", self.pick([0.1, 0.2, 0.01])),)
        elif op == "elu" and self.chance(0.5):
            kw = (("alpha", self.pick([0.5, 1.0, 2])),)
        elif op == "prelu" and self.chance(0.6):
            options = [("per_channel", self.chance(0.7)), ("init", self.pick([0.25, 0.1, 0.0]))]
            kw = tuple(self.r.sample(options, self.r.randint(1, 2)))
        elif op in ("softmax", "logsoftmax") and self.chance(0.6):
            rank = len(shape) + 1
            kw = (("dim", self.r.randint(-rank - 1, rank)),)  # sometimes out of range
        elif op == "dropout" and self.chance(0.5):
            kw = (("p", self.pick([0.0, 0.1, 0.5, 1])),)
        elif op == "batchnorm" and self.chance(0.4):
            kw = (("eps", 0.001), ("momentum", 0.2), ("affine", self.chance(0.5)))[: self.r.randint(1, 3)]
        return Layer(op, positional, kw, self.label())

    def permute(self, shape: list[int]) -> Layer:
        """A random order of the axes; sometimes wrong: PyTorch's order with the batch axis, an
        axis twice, one too many or a negative one."""
        dims = list(range(len(shape)))
        self.r.shuffle(dims)
        roll = self.r.random()
        if roll < 0.04:
            dims = [0, *(d + 1 for d in dims)]
        elif roll < 0.07:
            dims[0] = dims[-1]
        elif roll < 0.09:
            dims.append(len(dims))
        elif roll < 0.1:
            dims[0] = -1
        elif sorted(dims) == list(range(len(shape))):
            shape[:] = [shape[d] for d in dims]
        if self.chance(0.3):
            return Layer("permute", (tuple(dims),), (), self.label())
        return Layer("permute", tuple(dims), (), self.label())

    def image_layer(self, shape: list[int]) -> Any:
        roll = self.r.random()
        if len(shape) != 3:
            if roll < 0.16:
                # a layer of images on another rank: refused
                op, args = self.pick(
                    [("convtranspose", (4, ("kernel", 2))), ("upsample", (2,)), ("pad", (1,))]
                )
                return Layer(op, args[:1], tuple(args[1:]))
        elif roll < 0.07:
            return self.convtranspose(shape)
        elif roll < 0.1:
            return self.upsample(shape)
        elif roll < 0.13:
            return self.pad(shape)
        elif roll < 0.16:
            return self.pixelshuffle(shape)
        roll = self.r.random()
        if roll < 0.35:
            return self.conv(shape)
        if roll < 0.55:
            return self.pool(shape)
        if roll < 0.62:
            op = self.pick(["adaptiveavgpool", "adaptivemaxpool"])
            size = self.per_axis(1, 6, max(len(shape) - 1, 1))
            shape[1:] = [size] * (len(shape) - 1) if isinstance(size, int) else list(size)
            return Layer(op, (size,), (), self.label())
        if roll < 0.67:
            return Layer("dropout2d", (), (("p", 0.2),) if self.chance(0.5) else (), self.label())
        if roll < 0.71:
            kw = (("eps", 1e-6),) if self.chance(0.3) else ()
            kw += (("affine", False),) if self.chance(0.2) else ()
            return Layer("layernorm2d", (), kw, self.label())
        if roll < 0.76:
            return self.permute(shape)
        if roll < 0.79:
            return self.narrow(shape)
        return self.activation(shape)

    def narrow(self, shape: list[int]) -> Layer:
        """Some channels: mostly ones there are, sometimes past the last."""
        channels = max(shape[0], 1)  # the generator's guess of the shape may be off
        length = self.r.randint(1, channels) if self.chance(0.9) else channels + 1
        room = max(channels - length, 0) + self.pick([0, 0, 0, 1])
        start = 0 if self.chance(0.5) else self.r.randint(0, room)
        shape[0] = length
        kw = (("start", start),) if start or self.chance(0.2) else ()
        if self.chance(0.2):
            return Layer("narrow", (), (("length", length), *kw), self.label())
        return Layer("narrow", (length,), kw, self.label())

    # --- tokens and attention ----------------------------------------------------------------------

    def heads(self, features: int) -> int:
        """Heads that divide the features, mostly."""
        if self.chance(0.9):
            return self.pick([h for h in (1, 2, 3, 4, 8) if features % h == 0])
        return self.r.randint(1, 5)

    def token_layer(self, shape: list[int]) -> Layer:
        """A transformer's layer on tokens [L, D] (given another rank now and then: refused), or a
        class token picked, the tokens' mean, a product by a number."""
        roll = self.r.random()
        if roll < 0.15:
            count = self.pick([1, 1, 2])
            if len(shape) == 2:
                shape[0] += count
            return Layer("token", (count,) if count != 1 or self.chance(0.3) else (), (), self.label())
        if roll < 0.3:
            return Layer("posembed", (), (("std", 0.1),) if self.chance(0.2) else (), self.label())
        if roll < 0.5:
            kw = (("dropout", 0.1),) if self.chance(0.2) else ()
            kw += (("bias", False),) if self.chance(0.2) else ()
            return Layer("attention", (self.heads(shape[-1]),), kw, self.label())
        if roll < 0.65:
            axis = self.r.randrange(len(shape))
            index = self.r.randrange(max(shape[axis], 1)) if self.chance(0.9) else shape[axis]
            if self.chance(0.2):
                index -= shape[axis]
            dim = self.pick([axis + 1, axis + 1, axis - len(shape)]) if self.chance(0.95) else 0
            del shape[axis]
            return Layer("select", (index,), (("dim", dim),) if dim != 1 or self.chance(0.2) else ())
        if roll < 0.8:
            axes = self.r.sample(range(len(shape)), self.r.randint(1, len(shape)))
            dims = [a + 1 for a in axes]
            keep = self.chance(0.3)
            if keep:
                shape[:] = [1 if i in axes else n for i, n in enumerate(shape)]
            else:
                shape[:] = [n for i, n in enumerate(shape) if i not in axes]
            dim: Any = dims[0] if len(dims) == 1 and self.chance(0.7) else tuple(dims)
            kw = (("keepdim", True),) if keep else ()
            if self.chance(0.5):
                return Layer("mean", (dim,), kw)
            return Layer("mean", (), (("dim", dim), *kw))
        if roll < 0.9:
            return Layer("mul", (self.pick([0.5, 2, 0.125, -1]),))
        return self.activation(shape)

    def attention(self, shape: list[int]) -> list[Any]:
        """Self-attention written by hand on tokens [L, D], as the tutorials write it: q, k and v
        split from one linear layer, or the heads split by `view` and `permute`, the scores a
        product of two values, scaled and softmaxed."""
        length, features = shape
        heads = self.heads(features)
        head = max(features // heads, 1)
        q, k, v = self.fresh(), self.fresh(), self.fresh()
        # now and then the first token's features taken on, as ViT classifies its class token
        then = [Layer("select", (0,))] if self.chance(0.3) else []
        if then:
            shape[:] = [features]
        if self.chance(0.5):
            return [
                Layer("linear", (features * 3,)),
                Layer("split", (3,), (("dim", 2),), binds=(q, k, v), many=True),
                Layer("permute", (1, 0), source=k, binds=(k + "t",)),
                Layer("matmul", (V(k + "t"),), source=q),
                Layer("mul", (self.pick([0.5, 0.25]),)),
                Layer("softmax", (), (("dim", -1),)),
                Layer("matmul", (V(v),)),
                *then,
            ]
        return [
            Layer("view", (length, heads, head)) if self.chance(0.9) else Layer("view", (length, heads, -1)),
            Layer("permute", (1, 0, 2), binds=(q,)),
            Layer("permute", (0, 2, 1), binds=(k,)),
            Layer("matmul", (V(k),), source=q),
            Layer("softmax", (), (("dim", -1),)),
            Layer("matmul", (V(q),)),
            Layer("permute", (1, 0, 2)),
            Layer("view", (length, -1)),
            *then,
        ]

    def swin(self, shape: list[int]) -> list[Any]:
        """Swin's and MaxViT's layers on a map or a clip turned channels-last and back: shifted-window
        attention (V1 or V2; V2's on a clip refused), patch merging (V1 or V2), windows and shifts
        of one size or one per axis (now and then of another count: refused); block or grid
        attention within partitions (on a clip, or of a size that leaves a remainder: refused)."""
        channels, *sizes = shape
        clip = len(sizes) == 3
        out: list[Any] = [Layer("permute", (1, 2, 3, 0) if clip else (1, 2, 0))]
        v2 = (("v2", True),) if self.chance(0.1 if clip else 0.3) else ()
        if self.chance(0.1 if clip else 0.3):
            # MaxViT's: partitions that divide the map, mostly
            fitting = [size for size in (1, 2, 3, 4) if all(v % size == 0 for v in sizes)]
            kw = (("size", self.pick(fitting) if self.chance(0.85) else self.pick([2, 3, 5])),)
            if self.chance(0.5):
                kw += (("grid", True),)
            if self.chance(0.3):
                kw += (("scale_by", "channels"),)
            out.append(Layer("partitionattention", (self.heads(channels),), kw, self.label()))
        elif self.chance(0.6):
            window = self.pick([2, 3, 4, (2, 3, 2) if clip else (2, 3), (2, 3)])
            kw: tuple[tuple[str, Any], ...] = (("window", window),)
            if self.chance(0.5):
                kw += (("shift", self.pick([1, (1, 0, 1) if clip else (1, 0), 2])),)
            out.append(Layer("windowattention", (self.heads(channels),), kw + v2, self.label()))
        else:
            out.append(Layer("patchmerging", (), v2, self.label()))
            shape[:] = [2 * channels, *sizes[:-2], -(-sizes[-2] // 2), -(-sizes[-1] // 2)]
        out.append(Layer("permute", (3, 0, 1, 2) if clip else (2, 0, 1)))
        return out

    def mvit(self, shape: list[int]) -> list[Any]:
        """MViT's layers on a clip made tokens (`view(C, -1) permute(1, 0)`): the class token put
        first (`posencoding`), attention with pooled queries, keys and values and max pooling of
        the tokens, each told the grid of what it receives (now and then another: refused)."""
        channels, *sizes = shape
        grid = list(sizes)

        def told() -> tuple[int, ...]:
            return tuple(grid) if self.chance(0.9) else tuple(g + self.pick([1, -1]) for g in grid)

        def pooled(kernel: Any, stride: Any, padding: Any) -> None:
            each = [
                (k, s, p)
                for k, s, p in zip(
                    *(v if isinstance(v, tuple) else (v,) * 3 for v in (kernel, stride, padding)), strict=True
                )
            ]
            grid[:] = [(n + 2 * p - k) // s + 1 for n, (k, s, p) in zip(grid, each, strict=True)]

        embed = (("embed", False),) if self.chance(0.4) else ()
        out: list[Any] = [
            Layer("view", (channels, -1)),
            Layer("permute", (1, 0)),
            Layer("posencoding", (), (("grid", told()), *embed), self.label()),
        ]
        features = channels
        if self.chance(0.8):
            heads = self.heads(channels)
            kw: list[tuple[str, Any]] = [("grid", told())]
            if self.chance(0.3):
                features = heads * self.pick([1, 2, 4])
                kw.append(("dim", features))
            q_kernel, q_stride = self.pick([1, 3, (1, 3, 3)]), self.pick([1, (1, 2, 2), 2])
            kv_kernel, kv_stride = self.pick([1, 3]), self.pick([1, (1, 2, 2), (1, 4, 4)])
            kw += [
                ("kernel_q", q_kernel),
                ("stride_q", q_stride),
                ("kernel_kv", kv_kernel),
                ("stride_kv", kv_stride),
            ]
            for flag in ("residual_pool", "rel_pos"):
                if self.chance(0.3):
                    kw.append((flag, True))
            out.append(Layer("poolattention", (heads,), tuple(kw), self.label()))
            if _prod(q_kernel if isinstance(q_kernel, tuple) else (q_kernel,)) > 1 or q_stride != 1:
                halves = q_kernel if isinstance(q_kernel, tuple) else (q_kernel,) * 3
                pooled(q_kernel, q_stride, tuple(k // 2 for k in halves))
        if self.chance(0.7):
            kernel = self.pick([(1, 3, 3), 2, 3, (1, 9, 9)])
            stride = self.pick([None, 1, (1, 2, 2)])
            padding = self.pick([0, (0, 1, 1), 1])
            kw = [("grid", told())] + ([("stride", stride)] if stride else []) + [("padding", padding)]
            out.append(Layer("tokenpool", (kernel,), tuple(kw), self.label()))
            pooled(kernel, stride or kernel, padding)
        shape[:] = [1 + _prod(grid), features]
        return out

    # --- layers on features ----------------------------------------------------------------------

    def linear(self, shape: list[int]) -> Layer:
        out: Any = SAME if self.chance(0.1) else self.r.randint(1, 16)
        if self.chance(0.05):
            out = Op("*", CHANNELS, 2)  # the features it receives, doubled
            shape[0] *= 2
        kw: list[tuple[str, Any]] = []
        if self.chance(0.1):
            kw.append(("bias", False))
        if self.chance(0.05):
            kw.append(("in", self.pick([shape[0], shape[0] + 1])))
        shape[0] = out if isinstance(out, int) else shape[0]
        return Layer("linear", (out,), tuple(kw), self.label())

    def view(self, shape: list[int]) -> Layer:
        total = 1
        for d in shape:
            total *= d
        rank = self.pick([1, 2, 3, 3, 4])
        dims: list[int] = []
        rest = total
        for _ in range(rank - 1):
            factors = [f for f in (1, 2, 3, 4) if rest % f == 0] or [1]
            f = self.pick(factors) if self.chance(0.9) else self.r.randint(1, 5)
            dims.append(f)
            rest = max(rest // f, 1)
        dims.append(rest)
        if self.chance(0.7):
            dims[self.r.randrange(rank)] = -1
        shape[:] = [total // max(1, _prod([d for d in dims if d != -1])) if d == -1 else d for d in dims]
        if self.chance(0.5) or len(dims) == 1:
            return Layer("view", tuple(dims), (), self.label())
        return Layer("view", (tuple(dims),), (), self.label())

    # --- composites ------------------------------------------------------------------------------

    def keeping(self, shape: list[int], keep_channels: bool) -> Any:
        """A statement meant to keep the spatial sizes (and the channels, if asked): of an image,
        or of a signal or a video."""
        if not 2 <= len(shape) <= 4:  # the statements before it changed the rank
            return self.activation(shape) if shape else self.scalar(shape)
        roll = self.r.random()
        if roll < 0.5:
            k, d = self.pick([1, 3, 5]), self.pick([1, 1, 2])
            out: Any = SAME if keep_channels else self.r.randint(1, 10)
            padding: Any = "same" if self.chance(0.3) else d * (k // 2)
            kw: tuple[tuple[str, Any], ...] = (("kernel", k), ("padding", padding))
            if d != 1:
                kw += (("dilation", d),)
            if not keep_channels:
                shape[0] = out
            return Layer("conv", (out,), kw, self.label())
        if roll < 0.65:
            return Layer(
                self.pick(["maxpool", "avgpool"]), (3,), (("stride", 1), ("padding", 1)), self.label()
            )
        return self.activation(shape)

    def concat(self, shape: list[int], depth: int) -> Concat:
        image = len(shape) == 3
        if image and self.chance(0.25):
            return self.split(shape, depth)
        branches = []
        total = 0
        ends: list[list[int]] = []
        for index in range(self.r.randint(1, 4)):
            inner = list(shape)
            body: list[Any] = []
            for _ in range(self.r.randint(0, 3)):
                if image and self.chance(0.85):
                    if self.chance(0.8):
                        body.append(self.keeping(inner, keep_channels=False))
                    else:
                        body += self.statements(inner, depth + 1)
                elif not image:
                    body.append(self.linear(inner) if self.chance(0.7) else self.activation(inner))
                else:
                    body += self.statements(inner, depth + 1)
            name = f"b{index}" if self.chance(0.3) else None
            branches.append(Branch(name, body, splice=name is None and self.chance(0.25)))
            ends.append(inner)
            total += inner[0] if inner else 0
        shape[:] = [total, *ends[0][1:]]
        return Concat(branches, self.label())

    def split(self, shape: list[int], depth: int) -> Concat:
        """Branches on shares of the channels (ShuffleNet's units): torch.chunk's, or given."""
        count = self.r.randint(1, 3)
        split: Any = True
        if self.chance(0.4):
            first = self.r.randint(1, max(1, shape[0] - 1))
            split = (first, shape[0] - first) if count == 2 else (shape[0],) * count
        share = list(shape)
        share[0] = -(-shape[0] // count)
        branches = []
        for index in range(count):
            inner = list(share)
            body = [self.keeping(inner, keep_channels=True) for _ in range(self.r.randint(0, 2))]
            name = f"b{index}" if self.chance(0.3) else None
            branches.append(Branch(name, body, splice=name is None and self.chance(0.25)))
        return Concat(branches, self.label(), split=split)

    def gate(self, shape: list[int]) -> Gate:
        """Squeeze-and-excitation (a [C, 1, 1] gate), a spatial [1, H, W] one, or one per element;
        now and then of a shape that does not broadcast."""
        c = shape[0]
        if len(shape) == 1:
            return Gate(
                [self.linear([c]), Layer("relu"), Layer("linear", (c,)), Layer("sigmoid")], self.label()
            )
        roll = self.r.random()
        if roll < 0.6:
            squeeze = self.r.randint(1, max(1, c))
            out = c if self.chance(0.9) else c + 1
            body: list[Any] = [
                Layer("adaptiveavgpool", (1,)),
                Layer("conv", (squeeze,), (("kernel", 1),), self.label()),
                self.pick([Layer("relu"), Layer("silu")]),
                Layer("conv", (out,), (("kernel", 1),)),
                self.pick([Layer("sigmoid"), Layer("hardsigmoid")]),
            ]
        elif roll < 0.85:
            body = [Layer("conv", (1,), (("kernel", 3), ("padding", 1))), Layer("sigmoid")]
        else:
            body = [self.activation(list(shape))]
        return Gate(body, self.label())

    def group(self, shape: list[int], depth: int) -> Group:
        body: list[Any] = []
        for _ in range(self.r.randint(1, 3)):
            body += self.statements(shape, depth + 1)
        return Group(body, self.label())

    def residual(self, shape: list[int], depth: int) -> Residual:
        inner = list(shape)
        body: list[Any] = []
        if self.chance(0.5):
            for _ in range(self.r.randint(1, 3)):
                if len(inner) == 1:
                    body.append(Layer("linear", (SAME,)) if self.chance(0.8) else self.activation(inner))
                elif len(inner) == 3 and self.chance(0.8):
                    body.append(self.keeping(inner, keep_channels=True))
                else:
                    body += self.statements(inner, depth + 1)
            shape[:] = inner
            return Residual(body, label=self.label())
        stride = None
        for _ in range(self.r.randint(1, 3)):
            if len(inner) == 3 and stride is None and self.chance(0.6):
                stride = self.pair(1, 3)
                k = self.pick([1, 3])
                out = self.r.randint(1, 10)
                body.append(Layer("conv", (out,), (("kernel", k), ("stride", stride), ("padding", k // 2))))
                inner[0] = out
                s = stride if isinstance(stride, tuple) else (stride, stride)
                inner[1:] = [(inner[1] - 1) // s[0] + 1, (inner[2] - 1) // s[1] + 1]
            elif len(inner) == 1:
                body.append(self.linear(inner))
            elif len(inner) == 3 and self.chance(0.7):
                body.append(self.keeping(inner, keep_channels=False))
            else:
                body += self.statements(inner, depth + 1)
        if len(shape) == 3 and len(inner) == 3 and self.chance(0.3):
            # The shortcut written out, ResNet's downsample: a 1×1 conv (with the body's stride,
            # when it took one) and a batchnorm, which must give the body's shape.
            step = stride if stride is not None else 1
            path: list[Any] = [Layer("conv", (inner[0],), (("kernel", 1), ("stride", step), ("bias", False)))]
            if self.chance(0.7):
                path.append(Layer("batchnorm"))
            shape[:] = inner
            name = self.pick([None, "downsample", "proj"])
            return Residual(body, label=self.label(), path=Branch(name, path), path_first=self.chance(0.3))
        options: list[tuple[str, Any]] = [("shortcut", "project")]
        if self.chance(0.25):
            options.append(("stride", stride if stride is not None and self.chance(0.7) else self.pair(1, 3)))
        if self.chance(0.2):
            options.append(("bias", False))
        if self.chance(0.25):
            options.append(("batchnorm", True))
        shape[:] = inner
        # `shortcut=project` is a bare keyword value, not a string.
        return Residual(
            body, True, tuple((k, P(v) if k == "shortcut" else v) for k, v in options), self.label()
        )

    def repeat(self, shape: list[int], depth: int) -> Repeat:
        count = self.pick([0, 1, 2, 2, 3])
        body = [
            self.keeping(shape, keep_channels=True) if 2 <= len(shape) <= 4 else self.activation(shape)
            for _ in range(self.r.randint(1, 2))
        ]
        if self.chance(0.2):
            body += self.statements(list(shape), depth + 1)
        index = None
        if self.chance(0.3):
            # Names that hold the pass's index (RegNet's "block1-0", DenseNet's "denselayer1").
            index = "i"
            for statement in body:
                if isinstance(statement, If | Output | Input) or (
                    isinstance(statement, Layer) and statement.op in FUNCTIONS
                ):
                    continue  # no module, no name
                if statement.label is not None or self.chance(0.5):
                    self.labels += 1
                    statement.label = f"r{self.labels}-{{i}}" if self.chance(0.9) else f"r{self.labels}"
            if self.chance(0.3):
                # a rate rising pass by pass, in float arithmetic (EfficientNet's stochastic depth)
                rate = Op("/", Op("*", 0.2, Op("+", P("i"), 1)), self.pick([4, 8.0]))
                body.append(Layer("stochasticdepth", (rate,), (("mode", "row"),)))
        return Repeat(count, body, self.label(), index=index)

    # --- blocks ----------------------------------------------------------------------------------

    def block_body(self, depth: int) -> tuple[list[tuple[str, Any]], list[Any]]:
        """A block on images: parameters w (channels), k (kernel), p = k // 2, n (repeat count)."""
        params: list[tuple[str, Any]] = [("w", None), ("k", 3), ("p", Op("//", P("k"), 2)), ("n", 1)]
        body: list[Any] = []
        # A block with a condition is written as a class per call (emit's generic classes take
        # none): one block in five has them.
        conditional = self.chance(0.2)
        for _ in range(self.r.randint(1, 4)):
            roll = self.r.random()
            if roll < 0.3:
                out = self.pick([P("w"), Op("*", P("w"), 2), Op("+", P("w"), 1), Op("-", P("w"), 2), SAME])
                body.append(Layer("conv", (out,), (("kernel", P("k")), ("padding", P("p"))), self.label()))
            elif roll < 0.45:
                body.append(
                    Repeat(
                        P("n"),
                        [
                            Layer(
                                "conv",
                                (SAME,),
                                (("kernel", P("k")), ("padding", Op("//", Op("-", P("k"), 1), 2))),
                            ),
                            Layer("relu"),
                        ],
                    )
                )
            elif roll < 0.55:
                body.append(
                    Residual(
                        [
                            Layer("conv", (SAME,), (("kernel", P("k")), ("padding", P("p")))),
                            Layer("batchnorm"),
                        ],
                        label=self.label(),
                    )
                )
            elif roll < 0.62:
                body.append(
                    Residual(
                        [Layer("conv", (P("w"),), (("kernel", 3), ("stride", 2), ("padding", 1)))],
                        True,
                        (("shortcut", P("project")),) + ((("stride", 2),) if self.chance(0.5) else ()),
                    )
                )
            elif roll < 0.72:
                body.append(
                    Concat(
                        [
                            Branch(None, [Layer("conv", (P("w"),), (("kernel", 1),))]),
                            Branch(
                                "wide",
                                [
                                    Layer(
                                        "conv",
                                        (Op("+", Op("//", P("w"), 2), 1),),
                                        (("kernel", P("k")), ("padding", P("p"))),
                                    ),
                                    Layer("relu"),
                                ],
                            ),
                        ]
                    )
                )
            elif roll < 0.82 and self.plain():
                earlier = self.pick(self.plain())
                args: tuple[Any, ...] = (self.pick([P("w"), Op("+", P("w"), 1), 4]),)
                kw: tuple[tuple[str, Any], ...] = (("k", P("k")),) if self.chance(0.5) else ()
                body.append(Call(earlier.name, args, kw, self.label()))
            elif roll < 0.9 and conditional:
                # `if` over the parameters, and `a if cond else b` in an argument
                cond = self.pick(
                    [
                        Op(">", P("w"), 4),
                        Op(">=", P("k"), 3),
                        Op("and", Op("<", P("n"), 2), Op("!=", P("w"), P("k"))),
                        Not(Op("<=", P("w"), P("k"))),
                        Op("or", Op("==", CHANNELS, P("w")), Op(">", P("n"), 1)),
                    ]
                )
                out = Choose(P("w"), Op(">=", P("k"), 3), Op("*", P("w"), 2)) if self.chance(0.5) else P("w")
                then = [Layer("conv", (out,), (("kernel", P("k")), ("padding", P("p"))), self.label())]
                orelse = [self.activation([1, 1, 1])] if self.chance(0.6) else []
                body.append(If(cond, then, orelse))
            else:
                body.append(self.activation([1, 1, 1]))
        return params, body

    def plain(self) -> list[BlockDef]:
        """The blocks `call` and other blocks' bodies call: B(w, k=…, n=…)."""
        return [b for b in self.blocks if b.kind == "plain"]

    def call(self, shape: list[int], depth: int) -> Call:
        if not self.plain() or (len(self.plain()) < 3 and self.chance(0.4)):
            scope, self.scope = self.scope, {}
            params, body = self.block_body(depth)
            self.scope = scope
            self.blocks.append(BlockDef(f"B{len(self.blocks)}", params, body))
        block = self.pick(self.plain())
        w = self.r.randint(1, 10)
        positional: tuple[Any, ...] = (w,)
        keywords: list[tuple[str, Any]] = []
        if self.chance(0.4):
            keywords.append(("k", self.pick([1, 3, 5, 2])))
        if self.chance(0.3):
            keywords.append(("n", self.pick([0, 1, 2])))
        if self.chance(0.3):
            positional, keywords = (), [("w", w), *keywords]
        shape[0] = w  # a guess: most block bodies end with w channels
        return Call(block.name, positional, tuple(keywords), self.label())

    # --- statements --------------------------------------------------------------------------------

    def statement(self, shape: list[int], depth: int = 0) -> Any:
        if not shape:
            return self.scalar(shape)
        if _prod(shape) == 1 and self.chance(0.3):
            # One number a sample (DCGAN's discriminator): `view([])`.
            shape[:] = []
            return Layer("view", ((),), (), self.label())
        if self.chance(0.03):
            # Wrong on purpose: a layer of the wrong rank.
            return Layer("linear", (4,)) if len(shape) == 3 else Layer("conv", (4,), (("kernel", 1),))
        composite = depth < 3
        if len(shape) == 3:
            roll = self.r.random()
            if composite and roll < 0.1:
                return self.splice(self.concat(shape, depth))
            if composite and roll < 0.2:
                return self.splice(self.residual(shape, depth))
            if composite and roll < 0.27:
                return self.splice(self.repeat(shape, depth))
            if composite and roll < 0.41:
                return self.splice(self.call(shape, depth))
            if composite and roll < 0.44:
                return self.splice(self.gate(shape))
            if composite and roll < 0.46:
                return self.splice(self.group(shape, depth))
            if roll < 0.46:
                shape[:] = [_prod(shape)]
                return Layer("flatten", (), (), self.label())
            if roll < 0.49:
                return self.view(shape)
            return self.image_layer(shape)
        if len(shape) == 1:
            roll = self.r.random()
            if composite and roll < 0.08:
                return self.splice(self.concat(shape, depth))
            if composite and roll < 0.16:
                return self.splice(self.residual(shape, depth))
            if composite and roll < 0.22:
                return self.splice(self.repeat(shape, depth))
            if composite and roll < 0.25:
                return self.splice(self.gate(shape))
            if roll < 0.3:
                return self.view(shape)
            if roll < 0.7:
                return self.linear(shape)
            return self.activation(shape)
        # [C, L] and [C, T, H, W]: convolutions and pools of their rank (`image_layer`, which also
        # draws layers of images only: rank errors), what works on any rank, and a way back.
        roll = self.r.random()
        if composite and roll < 0.07:
            return self.concat(shape, depth)
        if composite and roll < 0.14:
            return self.residual(shape, depth)
        if composite and roll < 0.18:
            return self.splice(self.repeat(shape, depth))
        if composite and roll < 0.24:
            return self.splice(self.call(shape, depth))
        if composite and roll < 0.27:
            return self.splice(self.gate(shape))
        if roll < 0.32:
            return self.view(shape)
        if roll < 0.37:
            shape[:] = [_prod(shape)]
            return Layer("flatten")
        if roll < 0.42:
            out: Any = SAME if self.chance(0.1) else self.r.randint(1, 12)
            shape[-1] = shape[-1] if isinstance(out, Same) else out
            return Layer("linear", (out,), (("bias", False),) if self.chance(0.1) else (), self.label())
        if roll < 0.46:
            return self.permute(shape)
        if roll < 0.54:
            return self.activation(shape)
        if roll < 0.6:
            kw = (("eps", 0.001), ("momentum", 0.01), ("affine", self.chance(0.5)))[: self.r.randint(0, 3)]
            return Layer("batchnorm", (), kw, self.label())
        if roll < 0.7:
            return self.pool(shape)
        if roll < (0.9 if len(shape) == 2 else 0.75):
            return self.token_layer(shape)  # of a video: refused, mostly
        return self.image_layer(shape)

    def scalar(self, shape: list[int]) -> Layer:
        """What follows `view([])`: mostly a layer a [] sample takes (elementwise ones), or a way
        back to [1]; now and then one that needs an axis it lacks."""
        roll = self.r.random()
        if roll < 0.55:
            op = self.pick(["relu", "sigmoid", "tanh", "identity", "gelu", "dropout", "prelu", "silu"])
            return Layer(op, (), (), self.label())
        if roll < 0.8:
            shape[:] = [1]
            return Layer("view", self.pick([((1,),), (-1,), (1,)]), (), self.label())
        if roll < 0.85:
            shape[:] = [1]
            return Layer("flatten")
        if roll < 0.93:
            out = self.r.randint(1, 8)
            shape[:] = [out]
            return Layer("linear", (out,))
        return self.activation([1])

    # --- named values ------------------------------------------------------------------------------

    def statements(self, shape: list[int], depth: int = 0) -> list[Any]:
        """One statement, or a few that go together: a value named and read again, taken apart,
        joined, a branch, attention written by hand."""
        if len(shape) in (1, 3) and depth < 4 and self.chance(0.13 if len(shape) == 3 else 0.1):
            return self.graph(shape, depth)
        if len(shape) == 2 and self.chance(0.12):
            return self.attention(shape)
        if len(shape) == 4:
            roll = self.r.random()  # one draw for both, as for Swin's alone before MViT's
            if roll < 0.05:
                return self.swin(shape)
            if roll < 0.1:
                return self.mvit(shape)
        statement = self.statement(shape, depth)
        if self.chance(0.08):
            self.name(statement, shape)
        return [statement]

    def fresh(self) -> str:
        self.names += 1
        return f"v{self.names}"

    def name(self, statement: Any, shape: list[int]) -> str:
        """Names what `statement` makes (`… as v3`), of `shape` as guessed (if it has no name yet)."""
        if statement.binds:
            return statement.binds[0]
        name = self.fresh()
        statement.binds = (name,)
        if not self.hidden:
            self.scope[name] = list(shape)
        return name

    def graph(self, shape: list[int], depth: int) -> list[Any]:
        roll = self.r.random()
        if roll < 0.16:
            return self.join(shape, depth)
        if roll < 0.32:
            return self.skip(shape, depth)
        if roll < 0.42:
            return self.parts(shape, depth)
        if roll < 0.5 and self.scope:
            return self.reread(shape, depth)
        if roll < 0.66:
            return [self.conditional(shape, depth)]
        if len(shape) == 3:
            if roll < 0.72:
                return self.excite(shape)
            if roll < 0.76:
                return [self.resize(shape)]
            if roll < 0.84:
                return self.swin(shape)
            return self.graph_call(shape, depth)
        return [self.statement(shape, depth)]

    def join(self, shape: list[int], depth: int) -> list[Any]:
        """`cat`, `add` or `mul` with values named earlier: mostly ones that fit."""
        kind = self.pick(["cat", "cat", "add", "mul"])

        def fits(value: list[int]) -> bool:
            if len(value) != len(shape):
                return False
            if kind == "cat":
                return value[1:] == shape[1:]
            if kind == "add":
                return value == shape
            return all(a in (1, b) for a, b in zip(value, shape, strict=True))

        names = [n for n, v in self.scope.items() if fits(v)]
        if not names:
            if self.chance(0.85) or not self.scope:
                return self.skip(shape, depth)
            names = list(self.scope)  # one that does not fit: refused
        chosen = self.r.sample(names, min(len(names), 2 if self.chance(0.2) else 1))
        if kind == "cat" and shape:
            shape[0] += sum(self.scope[n][0] for n in chosen if self.scope[n])
        # now and then named as a module, which a function is not: refused
        label = self.label() if self.chance(0.05) else None
        return [Layer(kind, tuple(V(n) for n in chosen), (), label)]

    def skip(self, shape: list[int], depth: int) -> list[Any]:
        """A value named, a few statements, and the value joined back: U-Net's skips (resized or
        padded to meet), DenseNet's concatenation, a sum, a product."""
        first = self.statement(shape, depth)
        out: list[Any] = [first]
        if not shape:
            return out
        name = self.name(first, shape)
        saved = list(shape)
        for _ in range(self.r.randint(1, 3)):
            roll = self.r.random()
            if len(shape) == 3 and roll < 0.5:
                out.append(self.keeping(shape, keep_channels=self.chance(0.5)))
            elif len(shape) == 3 and roll < 0.75:
                out.append(self.image_layer(shape))
            elif len(shape) == 1 and roll < 0.75:
                out.append(self.linear(shape) if self.chance(0.6) else self.activation(shape))
            else:
                out += self.statements(shape, depth + 1)
        if len(shape) == 3 and len(saved) == 3:
            if shape[1:] != saved[1:] and self.chance(0.9):
                roll = self.r.random()
                if roll < 0.4:
                    mode = self.pick([(), (), (("mode", "reflect"),), (("mode", "replicate"),)])
                    out.append(Layer("padto", (V(name),), mode))
                elif roll < 0.85:
                    kw = (
                        (("mode", "bilinear"), ("align_corners", self.chance(0.5)))
                        if self.chance(0.3)
                        else ()
                    )
                    out.append(Layer("resize", (V(name),), kw))
                else:
                    out.append(Layer("resize", (saved[1:],)))
                shape[1:] = saved[1:]
            how = self.r.random()
            last = out[-1]
            if how < 0.35:
                out.append(Layer("cat", (V(name),)))
                shape[0] += saved[0]
            elif how < 0.5 and not isinstance(last, If | Output) and not last.many:
                # the skip first, U-Net's order: `skip -> cat(x)`
                here = self.name(last, shape)
                out.append(Layer("cat", (V(here),), source=name))
                shape[0] += saved[0]
            elif how < 0.85:
                if shape[0] != saved[0] and self.chance(0.85):
                    out.append(Layer("conv", (saved[0],), (("kernel", 1),)))
                    shape[0] = saved[0]
                out.append(Layer("add", (V(name),)))
            else:
                out.append(Layer("mul", (V(name),)))
        elif len(shape) == 1 and len(saved) == 1:
            if self.chance(0.5):
                out += [Layer("linear", (saved[0],)), Layer("add", (V(name),))]
                shape[0] = saved[0]
            else:
                out.append(Layer("cat", (V(name),)))
                shape[0] += saved[0]
        else:
            out.append(Layer("cat", (V(name),)))  # ranks that mostly disagree
            if len(shape) == len(saved) and shape:
                shape[0] += saved[0]
        return out

    def parts(self, shape: list[int], depth: int) -> list[Any]:
        """`split` taken apart with `as (a, b)`: one part goes on, the others join it again (a CSP
        or ShuffleNet unit), or are left (W006)."""
        c = max(shape[0], 1)
        arg: Any
        if self.chance(0.55):
            arg = self.pick([2, 2, 3])
            sizes = _chunks(c, arg)
            sizes += [1] * (arg - len(sizes))  # torch.chunk gives fewer: refused
        else:
            first = self.r.randint(1, max(1, c - 1))
            sizes = [first, c - first] if self.chance(0.9) else [first, c]
            arg = list(sizes)
        names = [self.fresh() for _ in sizes]
        if not self.hidden:
            for name, size in zip(names, sizes, strict=True):
                self.scope[name] = [size, *shape[1:]]
        out: list[Any] = [Layer("split", (arg,), binds=tuple(names), many=True)]
        shape[0] = sizes[0]
        if self.chance(0.3):
            follow = self.statement(shape, depth + 1)
        elif len(shape) == 3:
            follow = self.keeping(shape, keep_channels=self.chance(0.6))
        else:
            follow = self.linear(shape) if self.chance(0.5) else self.activation(shape)
        follow.source = names[0]
        out.append(follow)
        if self.chance(0.8) and shape:
            out.append(Layer("cat", tuple(V(n) for n in names[1:])))
            shape[0] += sum(sizes[1:])
        return out

    def reread(self, shape: list[int], depth: int) -> list[Any]:
        """A statement that reads a value named earlier rather than the one before it; now and then
        after a composite whose value nothing reads then (W006)."""
        dropped: list[Any] = []
        if self.chance(0.3):
            composite = self.pick([self.group, self.concat, self.residual, self.repeat])
            dropped = [
                composite(list(shape), depth) if len(shape) in (1, 3) else self.statement(list(shape), depth)
            ]
        name = self.pick(list(self.scope))
        shape[:] = self.scope[name]
        statement = self.statement(shape, depth)
        statement.source = name
        return [*dropped, statement]

    def guess(self, expr: Any, shape: list[int]) -> Any:
        """What `expr` is worth here, by the guessed shapes (None where that cannot tell)."""
        try:
            return evaluate(expr, {"channels": shape[0]} if shape else {}, self.scope)
        except (Unevaluable, TypeError, IndexError):
            return None

    def condition(self, shape: list[int]) -> Any:
        """A condition on what a statement here can read: `channels`, a named value's sizes,
        numbers; with and, or, not."""

        def operand() -> Any:
            options: list[Any] = [CHANNELS] if shape else []
            for name, value in self.scope.items():
                if value:
                    options.append(Size("channels", name))
                if len(value) >= 3:
                    options += [Size("height", name), Size("width", name)]
            return self.pick(options) if options else self.r.randint(0, 8)

        def comparison() -> Op:
            left = operand()
            value = self.guess(left, shape)
            number = isinstance(value, int) and not isinstance(value, bool)
            right = value + self.r.randint(-2, 2) if number and self.chance(0.75) else operand()
            return Op(self.pick(list(_COMPARISONS)), left, right)

        roll = self.r.random()
        if roll < 0.05:
            return self.chance(0.5)
        cond: Any = comparison()
        if roll < 0.25:
            cond = Op(self.pick(["and", "or"]), cond, comparison())
        elif roll < 0.33:
            cond = Not(cond)
        return cond

    def conditional(self, shape: list[int], depth: int) -> If:
        """`if cond { … } else { … }`: the branch that holds stands in its place. Mostly each
        keeps the shape; now and then both name what they give alike, to be read after."""
        cond = self.condition(shape)
        holds = self.guess(cond, shape)
        self.hidden += 1
        branches = []
        for first in (True, False):
            inner = list(shape)
            body: list[Any] = []
            for _ in range(self.r.randint(1 if first else 0, 2)):
                if len(inner) == 3 and self.chance(0.6):
                    body.append(self.keeping(inner, keep_channels=self.chance(0.7)))
                elif self.chance(0.5) or not inner:
                    body.append(self.activation(inner) if inner else self.scalar(inner))
                else:
                    body += self.statements(inner, depth + 1)
            branches.append((body, inner))
        self.hidden -= 1
        (then, then_shape), (orelse, else_shape) = branches
        shape[:] = then_shape if holds is not False else else_shape
        statement = If(cond, then, orelse)

        def bindable(s: Any) -> bool:
            return not isinstance(s, If | Output | Input) and not s.binds and not s.many

        if then and orelse and bindable(then[-1]) and bindable(orelse[-1]) and self.chance(0.3):
            name = self.fresh()
            then[-1].binds = orelse[-1].binds = (name,)
            if not self.hidden:
                self.scope[name] = list(shape)
        elif orelse and self.chance(0.15):
            # `else if`
            chained = If(self.condition(shape), orelse, [self.activation(list(shape))] if shape else [], True)
            statement.orelse = [chained]
        return statement

    def excite(self, shape: list[int]) -> list[Any]:
        """Squeeze-and-excitation written with named values: `… as x`, a [C, 1, 1] gate `as g`,
        `x -> mul(g)`; now and then the other way round, `mul(x)`, which would enlarge the gate."""
        first = self.keeping(shape, keep_channels=self.chance(0.5))
        x = self.name(first, shape)
        c = max(shape[0], 1)
        out = c if self.chance(0.9) else c + 1
        gate = Layer(self.pick(["sigmoid", "hardsigmoid"]))
        g = self.name(gate, [out, 1, 1])
        width = Size("channels", x) if self.chance(0.3) else out
        statements: list[Any] = [
            first,
            Layer("adaptiveavgpool", (1,)),
            Layer("conv", (self.r.randint(1, c),), (("kernel", 1),)),
            Layer("relu"),
            Layer("conv", (width,), (("kernel", 1),)),
            gate,
        ]
        if self.chance(0.85):
            statements.append(Layer("mul", (V(g),), source=x))
        else:
            statements.append(Layer("mul", (V(x),)))
            shape[:] = [out, 1, 1]
        return statements

    # --- blocks of the dataflow graph ---------------------------------------------------------------

    def graph_block(self, kind: str) -> BlockDef:
        """A block of one of the graph's kinds, drawn once and then mostly called again."""
        found = [b for b in self.blocks if b.kind == kind]
        if found and self.chance(0.7):
            return self.pick(found)
        types: dict[str, str] = {}
        params: list[tuple[str, Any]]
        if kind == "bottleneck":
            # ultralytics' Bottleneck: its input added back where the shapes allow and it is asked
            params, types = [("w", None), ("skip", True)], {"skip": "bool"}
            cond = self.pick(
                [
                    Op("and", P("skip"), Op("==", Size("channels", "x"), P("w"))),
                    Op("==", Size("channels", "x"), CHANNELS),
                    Op(">", P("w"), 4),
                    Not(P("skip")),
                ]
            )
            body: list[Any] = [
                Input("x"),
                Layer("conv", (P("w"),), (("kernel", 1),)),
                Layer("relu"),
                Layer("conv", (P("w"),), (("kernel", 3), ("padding", 1))),
                If(cond, [Layer("add", (V("x"),))], [Layer("relu")] if self.chance(0.4) else []),
            ]
        elif kind == "up":
            # U-Net's up step: upsampled, met to its skip's size, joined with it
            params, types = (
                [("skip", None), ("w", None), ("bilinear", False)],
                {"skip": "tensor", "bilinear": "bool"},
            )
            up = If(
                P("bilinear"),
                [Layer("upsample", (2,), (("mode", "bilinear"), ("align_corners", True)))],
                [Layer("convtranspose", (Op("//", CHANNELS, 2),), (("kernel", 2), ("stride", 2)))],
            )
            meet = self.pick(["padto", "resize"])
            if self.chance(0.5):
                steps = [Layer(meet, (V("skip"),), binds=("y",)), Layer("cat", (V("y"),), source="skip")]
            else:
                steps = [Layer(meet, (V("skip"),)), Layer("cat", (V("skip"),))]
            body = [up, *steps, Layer("conv", (P("w"),), (("kernel", 3), ("padding", 1))), Layer("relu")]
        elif kind == "two":
            params = [("w", None)]
            variant = self.r.randrange(3)
            if variant == 0:
                pair = (("a", "b"), ("b", "a"))[self.r.randrange(2)]
                body = [
                    Input("x"),
                    Layer("conv", (P("w"),), (("kernel", 1),), binds=("a",)),
                    Layer("conv", (P("w"),), (("kernel", 3), ("padding", 1)), source="x", binds=("b",)),
                    Output(((None, pair[0]), (None, pair[1]))),
                ]
            elif variant == 1:
                body = [Layer("conv", (Op("*", P("w"), 2),), (("kernel", 1),)), Layer("split", (2,))]
            else:
                body = [
                    Layer("conv", (Op("*", P("w"), 2),), (("kernel", 1),)),
                    Layer("split", ([P("w"), P("w")],), binds=("a", "b"), many=True),
                    Layer("relu", source="b", binds=("c",)),
                    Output(((None, "a"), (None, "c"))),
                ]
        else:
            # squeeze-and-excitation as a block that reads its own input's channels (or whose
            # default does: `channels` there is what the block receives)
            params = [("r", 4)]
            squeeze: Any = Choose(
                Op("//", Size("channels", "x"), P("r")), Op(">", Size("channels", "x"), P("r")), 1
            )
            if self.chance(0.5):
                params.append(("squeeze", Choose(Op("//", CHANNELS, P("r")), Op(">", CHANNELS, P("r")), 1)))
                squeeze = P("squeeze")
            body = [
                Input("x"),
                Layer("adaptiveavgpool", (1,)),
                Layer("conv", (squeeze,), (("kernel", 1),)),
                Layer("relu"),
                Layer("conv", (Size("channels", "x"),), (("kernel", 1),)),
                Layer("sigmoid", binds=("g",)),
                Layer("mul", (V("g"),), source="x"),
            ]
        block = BlockDef(f"B{len(self.blocks)}", params, body, types, kind)
        self.blocks.append(block)
        return block

    def graph_call(self, shape: list[int], depth: int) -> list[Any]:
        kind = self.pick(["bottleneck", "up", "up", "two", "two", "excite"])
        block = self.graph_block(kind)
        c = max(shape[0], 1)
        if kind == "bottleneck":
            w = c if self.chance(0.6) else self.r.randint(1, 10)
            shape[0] = w
            args: tuple[Any, ...] = (w, self.chance(0.7)) if self.chance(0.4) else (w,)
            return [Call(block.name, args, (), self.label())]
        if kind == "excite":
            return [Call(block.name, (self.pick([2, 4]),) if self.chance(0.5) else (), (), self.label())]
        if kind == "up":
            before: list[Any] = []
            images = [n for n, v in self.scope.items() if len(v) == 3]
            if not images or self.chance(0.5):
                # a way down first: the skip named, then pooled, as U-Net's encoder
                first = self.keeping(shape, keep_channels=False)
                images = [self.name(first, shape)]
                before = [first, Layer("maxpool", (2,))]
                shape[1:] = [shape[1] // 2, shape[2] // 2]
            skip = self.pick(images)
            w = self.r.randint(1, 10)
            args = (V(skip), w, True) if self.chance(0.3) else (V(skip), w)
            shape[:] = [w, *self.scope.get(skip, shape)[1:]]
            return [*before, Call(block.name, args, (), self.label())]
        # two values, taken apart and read by name
        w = self.r.randint(1, 8)
        roll = self.r.random()
        if roll < 0.05:
            shape[0] = w
            return [Call(block.name, (w,), (), self.label())]  # the next statement must say which
        a, b = self.fresh(), self.fresh()
        if not self.hidden:
            self.scope[a] = self.scope[b] = [w, *shape[1:]]
        call = Call(block.name, (w,), (), self.label(), binds=(a, b), many=True)
        shape[0] = w
        if roll < 0.5:
            shape[0] = 2 * w
            return [call, Layer("cat", (V(b),), source=a)]
        if roll < 0.75:
            return [call, Layer("add", (V(a),), source=b)]
        follow = self.statement(shape, depth + 1)
        follow.source = a
        return [call, follow]

    def spec(self) -> Spec:
        roll = self.r.random()
        if roll < 0.6:
            shape = [self.r.randint(1, 6), self.r.randint(1, 32), self.r.randint(1, 32)]
        elif roll < 0.73:
            shape = [self.r.randint(1, 64)]
        elif roll < 0.85:
            # a signal ([C, L], audio's)
            shape = [self.r.randint(1, 6), self.r.randint(1, 48)]
        else:
            # a video ([C, T, H, W])
            shape = [self.r.randint(1, 4), self.r.randint(1, 8), self.r.randint(1, 12), self.r.randint(1, 12)]
        start = tuple(shape)
        name: str | None = None
        more: list[tuple[str, Shape]] = []
        roll = self.r.random()
        if roll < 0.1 and self.several_inputs:
            # two inputs, each named; a statement reads the last unless it names another
            name, other = self.fresh(), self.fresh()
            second = list(shape)
            second[0] = self.r.randint(1, 6 if len(shape) > 1 else 64)
            if len(shape) == 3 and self.chance(0.2):
                second[1:] = [self.r.randint(1, 32), self.r.randint(1, 32)]
            self.scope = {name: list(shape), other: list(second)}
            more = [(other, tuple(second))]
            shape = second
        elif roll < 0.25:
            name = self.fresh()
            self.scope = {name: list(shape)}
        body: list[Any] = []
        length = self.r.randint(1, 9)  # statements, a pattern's several counted as they are
        while len(body) < length:
            body += self.statements(shape)
        last = body[-1]
        if self.scope and self.chance(0.12) and not isinstance(last, If | Output | Input) and not last.many:
            # several outputs: the last value and one named earlier, in order or by key
            given = self.name(last, shape)
            others = [n for n in self.scope if n != given]
            if others:
                keys: tuple[Any, ...] = ("out", "aux") if self.chance(0.4) else (None, None)
                body.append(Output(tuple(zip(keys, (given, self.pick(others)), strict=True))))
        return Spec(start, body, self.blocks, name, more)


def _prod(values: Any) -> int:
    total = 1
    for v in values:
        total *= v
    return total


def _chunks(channels: int, count: int) -> list[int]:
    """torch.chunk's shares: ⌈C/n⌉ each, the last what is left, fewer parts when that runs out."""
    share = -(-channels // count)
    return [min(share, channels - start) for start in range(0, channels, share)]


def generate(seed: int, several_inputs: bool = False) -> Spec:
    """The spec of `seed`. `several_inputs`: a model may have two inputs (the campaigns ask for
    them; `tests/test_emit.py` runs what it builds on one tensor)."""
    return Generator(seed, several_inputs).spec()


# --- the comparison -------------------------------------------------------------------------------


@dataclass
class Verdict:
    """How archdsl and PyTorch judged one spec; `problem` is set when they disagree."""

    accepted: bool
    #: What PyTorch refused ("conv", "concat", ...), or "" when it accepted.
    rejected_op: str
    problem: str | None
    text: str


def _static(nodes: list[Any], shapes: dict[str, Shape], params: dict[str, int]) -> None:
    for node in nodes:
        # A spliced statement is no module, its members are; a function (`cat`) is none at all.
        if not node.spliced and not node.key.startswith("."):
            shapes[node.path] = node.output
            if node.kind == "layer":
                params[node.path] = node.params
        _static(node.children, shapes, params)


def _op(statement: Any) -> str:
    if isinstance(statement, Layer):
        return statement.op
    return type(statement).__name__.lower()


def compare(spec: Spec, build: bool = True) -> Verdict:
    """Checks the spec with archdsl and runs it in PyTorch; with `build`, also runs archdsl's own
    built module and compares the shapes it really produces."""
    from archdsl.loader import Loader
    from archdsl.pipeline import compile_file

    text, lines = render(spec)
    loader = Loader()
    loader.add_text(text, FILE)
    program = compile_file(FILE, loader=loader)
    errors = program.errors
    error_lines = sorted({e.span.line for e in errors})
    try:
        ref = run_reference(spec)
    except Rejected as rejected:
        line = lines[rejected.statement]
        op = _op(rejected.statement)
        if line not in error_lines:
            return Verdict(
                False,
                op,
                f"PyTorch rejects line {line} ({rejected.reason}); archdsl "
                f"reports errors on lines {error_lines}: {[e.message for e in errors]}",
                text,
            )
        # Nothing PyTorch ran may be blamed: no statement of the model that ran, at any depth, and
        # no line of the model before the refused one (the input, a composite around it). A block's
        # statements may be fine in one call and wrong in another, so only the model's lines count.
        model_start = text.split("\n").index(MODEL_HEADER) + 1
        ran = {lines[s] for s in _walk(spec.body) if id(s) in rejected.ran}
        also = {line for statement, line in lines.items() if id(statement) in rejected.also}
        # A composite around the refused statement (a residual, gate or concat) checks what its
        # body gives after its body; where a statement after the refused one reads a value named
        # before it (`x -> …`), the body gives a value again, and that check may fail on its own.
        also |= {lines[s] for s in _resuming(spec.body, rejected.statement, lines)}
        blamed = [
            n for n in error_lines if n != line and n not in also and (n in ran or model_start <= n < line)
        ]
        if blamed:
            return Verdict(
                False,
                op,
                f"PyTorch rejects line {line} ({rejected.reason}); archdsl also blames lines {blamed}, "
                f"which PyTorch ran or which come first: {[f'{e.span.line}: {e.message}' for e in errors]}",
                text,
            )
        return Verdict(False, op, None, text)
    if errors:
        return Verdict(
            True,
            "",
            "PyTorch accepts; archdsl reports " + "; ".join(f"{e.span.line}: {e.message}" for e in errors),
            text,
        )
    model = program.model()
    shapes: dict[str, Shape] = {}
    params: dict[str, int] = {}
    _static(model.layers, shapes, params)
    if shapes != ref.shapes:
        diff = {
            k: (shapes.get(k), ref.shapes.get(k))
            for k in set(shapes) | set(ref.shapes)
            if shapes.get(k) != ref.shapes.get(k)
        }
        return Verdict(True, "", f"shapes differ (archdsl, PyTorch): {diff}", text)
    if model.output != ref.output or list(model.outputs) != ref.outputs:
        return Verdict(
            True,
            "",
            f"the model's outputs are {model.outputs} ({model.output}), PyTorch's {ref.outputs}",
            text,
        )
    if params != ref.params or model.params != sum(ref.params.values()):
        diff = {
            k: (params.get(k), ref.params.get(k))
            for k in set(params) | set(ref.params)
            if params.get(k) != ref.params.get(k)
        }
        return Verdict(True, "", f"parameter counts differ (archdsl, PyTorch): {diff}", text)
    if build:
        built = built_shapes(model, [shape for _, shape in spec.inputs], shapes)
        if built != shapes:
            return Verdict(True, "", f"the built module gives other shapes: {built}", text)
    return Verdict(True, "", None, text)


def _resuming(statements: list[Any], refused: Any, lines: dict[Any, int]) -> list[Any]:
    """The composites around `refused` whose body reads a named value after it."""
    found = []
    for s in _walk(statements):
        if isinstance(s, Concat):
            inside = [t for branch in s.branches for t in _walk(branch.body)]
        elif isinstance(s, Residual | Gate | Group | Repeat):
            inside = _walk(s.body)
            if isinstance(s, Residual) and s.path is not None:
                inside += _walk(s.path.body)
        else:
            continue
        if refused in inside and any(t.source and lines.get(t, 0) > lines.get(refused, 0) for t in inside):
            found.append(s)
    return found


def _walk(statements: list[Any]) -> list[Any]:
    found = []
    for s in statements:
        found.append(s)
        if isinstance(s, If):
            found += _walk(s.body) + _walk(s.orelse)
        if isinstance(s, Repeat | Residual | Gate | Group):
            found += _walk(s.body)
        if isinstance(s, Residual) and s.path is not None:
            found += _walk(s.path.body)
        elif isinstance(s, Concat):
            for branch in s.branches:
                found += _walk(branch.body)
    return found


def _given(out: Any, expected: Shape) -> Shape:
    """The per-sample shape a module gave: its output's. A module that also hands on values named
    inside it gives a tuple, in no documented order: the one of the expected shape, if any is. A
    module whose value nothing reads gives nothing: there is nothing to compare. (Attention gives
    its output and None, the weights it was not asked for.)"""
    if not isinstance(out, tuple | list):
        return tuple(out.shape[1:])
    shapes = [tuple(value.shape[1:]) for value in out if value is not None]
    return expected if expected in shapes or not shapes else shapes[0]


def built_shapes(model: Any, input_shapes: list[Shape], paths: dict[str, Shape]) -> dict[str, Shape]:
    """The shapes archdsl's builder really produces, at the module paths the static pass names (a
    module that gives several values, its first's)."""
    import torch

    from archdsl.builder import build_model

    network = build_model(model)
    seen: dict[str, Shape] = {}
    modules = dict(network.named_modules())
    parameters = dict(network.named_parameters())
    for path in paths:
        if path not in modules and path in parameters:  # a bare parameter (`scale`), no module
            seen[path] = paths[path]
            continue
        modules[path].register_forward_hook(
            lambda _m, _a, out, path=path: seen.__setitem__(path, _given(out, paths[path]))
        )
    with torch.no_grad():
        network(*(torch.randn(BATCH, *shape) for shape in input_shapes))
    for path in paths:
        # A body that computes nothing (`branch { }`, `{ repeat 0 { … } }`) is a module that never
        # runs: its input goes straight on.
        module = modules.get(path)
        if path not in seen and isinstance(module, torch.nn.Sequential) and not list(module.parameters()):
            inner = [f"{path}.{name}" for name, _ in module.named_modules() if name]
            if not any(p in seen for p in inner):
                seen[path] = paths[path]
    if sum(p.numel() for p in network.parameters()) != model.params:
        seen["<params>"] = (model.params,)
    return seen


# --- fuzz inputs ----------------------------------------------------------------------------------
# Shared by tests/test_robustness.py (hypothesis), tests/test_reliability.py and campaigns/fuzz.py.

_ROOT = Path(__file__).resolve().parent.parent
SEED_FILES = sorted((_ROOT / "specs").glob("*.arch")) + sorted(
    (_ROOT / "tests" / "fixtures" / "errors").glob("*.arch")
)
SEEDS = [p.read_text(encoding="utf-8") for p in SEED_FILES]
FRAGMENTS = [
    "conv(",
    "relu",
    ")",
    "(",
    "{",
    "}",
    "[",
    "]",
    ",",
    "=",
    "-1",
    "0",
    "99999999999999999999",
    "same",
    "project",
    "repeat",
    "concat",
    "branch",
    "residual",
    "input",
    "train",
    "block",
    "model",
    "import",
    '"x.arch"',
    "kernel=",
    "stride=",
    'padding="same"',
    "view(",
    "permute(",
    "linear(",
    "flatten",
    "groupnorm(",
    "shuffle(",
    "layernorm2d",
    'stochasticdepth(p=1, mode="batch")',
    "ceil=true",
    "#",
    "\n",
    ";",
    ":",
    "//",
    "*",
    "1.5",
    "true",
    "\t",
    "\x00",
    "é",
    "B()",
    "block B(n: int) { repeat n { B(n) } }",
    "gate {",
    "shortcut",
    "*",
    "*residual {",
    "as i",
    '"s-{i}":',
    '"{',
    "channels",
    "scale(1e-6)",
    "/",
    "concat(split=true) {",
    "block: {",
    " as x",
    " as (a, b)",
    "x ->",
    "->",
    "cat(x)",
    "add(x, y)",
    "mul(",
    "split(2)",
    "split([1, 3]) as (a, b)",
    "output a, b",
    "output out: a, aux: b",
    "input as x",
    "input [3, 8, 8] as a",
    "skip: tensor",
    "block U(skip: tensor, w: int) { padto(skip) cat(skip) }",
    "if",
    "else",
    "if channels(x) == 4 {",
    "} else {",
    "} else if",
    "height(x)",
    "width(",
    "and",
    "or",
    "not",
    "==",
    "!=",
    "<=",
    ">",
    "2 if true else 3",
    "convtranspose(",
    "output_padding=",
    "upsample(2",
    'mode="bilinear"',
    "align_corners=true",
    "resize(",
    "pad(",
    'mode="reflect"',
    "padto(x)",
    "pixelshuffle(2)",
    "pixelunshuffle(",
    "view([])",
]
#: Values that stress limits: huge and long numbers, deep nesting, self-reference.
EXTREMES = [
    "0",
    "-1",
    "1e999",
    "9" * 25,
    "9" * 5000,
    "0" * 5000 + "1",
    "2 * " * 300 + "2",
    "(" * 500 + "1" + ")" * 500,
    "[" * 300 + "1" + "]" * 300,
    "-" * 2000 + "1",
    "repeat 1 { " * 150 + "relu" + " }" * 150,
    "repeat 1000000 { repeat 1000000 { relu } }",
    "residual { " * 120 + "relu" + " }" * 120,
    'import "fuzz.arch"',
    'import "/dev/null"',
    'import "."',
    "99999999 * 99999999 * 99999999",
    "input [100000, 100000, 100000]",
    "linear(99999999999999)",
]


def mutate(rng: random.Random, text: str, rounds: int | None = None) -> str:
    """A few random edits: deletions, inserted fragments or extreme values, copied spans, chars."""
    for _ in range(rounds if rounds is not None else rng.randint(1, 6)):
        at = rng.randint(0, len(text))
        choice = rng.randrange(6)
        if choice == 0:
            text = text[:at] + text[at + rng.randint(1, 20) :]
        elif choice == 1:
            text = text[:at] + rng.choice(FRAGMENTS) + text[at:]
        elif choice == 2:
            start = rng.randint(0, len(text))
            text = text[:at] + text[start : start + rng.randint(1, 40)] + text[at:]
        elif choice == 3:
            text = text[:at] + chr(rng.choice([rng.randint(0, 0x2FF), rng.randint(0, 0x10FFFF)])) + text[at:]
            text = text.encode("utf-8", "replace").decode("utf-8", "replace")
        elif choice == 4:
            text = text[:at] + rng.choice(EXTREMES) + text[at:]
        else:
            # A number replaced by an extreme one, keeping the text around it.
            digits = [i for i, c in enumerate(text) if c.isdigit()]
            if digits:
                i = rng.choice(digits)
                text = text[:i] + rng.choice(EXTREMES[:7]) + text[i + 1 :]
    return text


def fuzz_input(rng: random.Random) -> tuple[str, bytes]:
    """One fuzz input and the kind it is: mutated seed specs, mutated generated specs, random
    fragments, or random bytes (often not UTF-8)."""
    roll = rng.random()
    if roll < 0.45:
        return "mutated-spec", mutate(rng, rng.choice(SEEDS)).encode("utf-8", "replace")
    if roll < 0.65:
        text = render(generate(rng.randrange(1 << 30), several_inputs=True))[0]
        return "mutated-generated", mutate(rng, text).encode("utf-8", "replace")
    if roll < 0.85:
        parts = [rng.choice(FRAGMENTS + EXTREMES[:5]) for _ in range(rng.randint(0, 60))]
        return "fragments", " ".join(parts).encode("utf-8", "replace")
    size = rng.randint(0, 400)
    if rng.random() < 0.5:
        return "bytes", bytes(rng.randrange(256) for _ in range(size))
    alphabet = b"model block input{}()[]=,;:#\n\"' 0123456789abcxyz-*/."
    return "bytes", bytes(rng.choice(alphabet) for _ in range(size))


def check_survives(data: bytes, path: str) -> str | None:
    """Runs what `archdsl check` runs on a file holding `data`: the only outcomes allowed are a
    clean check or diagnostics positioned inside the file. Returns the problem, or None."""
    import json

    from archdsl.errors import SourceCache
    from archdsl.errors import render as render_diagnostic
    from archdsl.loader import Loader
    from archdsl.pipeline import compile_file
    from archdsl.report import check_json
    from archdsl.table import model_line

    with open(path, "wb") as handle:
        handle.write(data)
    loader = Loader()
    program = compile_file(path, loader=loader)
    text = data.decode("utf-8", "replace").removeprefix("\ufeff")  # a byte-order mark is skipped
    lines = text.split("\n")
    for d in program.diagnostics:
        span = d.span
        if span.file != program.path or span.whole_file:  # a finding about the file as a whole
            continue
        if not 1 <= span.line <= len(lines) or not 1 <= span.end_line <= len(lines):
            return (
                f"{d.code} at line {span.line}..{span.end_line}, the file has {len(lines)} lines: {d.message}"
            )
        if not 1 <= span.column <= len(lines[span.line - 1]) + 1:
            return f"{d.code} at column {span.column} of a {len(lines[span.line - 1])}-character line"
        if (span.end_line, span.end_column) < (span.line, span.column):
            return f"{d.code} span ends before it starts: {span}"
        if not 1 <= span.end_column <= len(lines[span.end_line - 1]) + 1:
            length = len(lines[span.end_line - 1])
            return f"{d.code} ends at column {span.end_column} of a {length}-character line"
    cache = SourceCache(loader.sources)
    for d in program.diagnostics:
        render_diagnostic(d, cache)
        if (
            d.span.file == program.path
            and not d.span.whole_file
            and cache.line(d.span.file, d.span.line) != lines[d.span.line - 1].removesuffix("\r")
        ):
            return f"{d.code} at line {d.span.line}: the rendering quotes another line"
    json.dumps(check_json(program.diagnostics, program.models))
    for model in program.models:
        if model.complete:
            model_line(model)
    return None
