"""Random `.arch` specs with an independent PyTorch reference, for differential testing.

The one reference of every differential test: the campaign (`benchmarks/differential.py`), its
CI slice (`tests/test_reliability.py`) and the hypothesis stacks of `tests/test_differential.py`,
which builds these data classes itself and judges them with `compare`. A spec is drawn from a seed
as plain data — blocks with typed parameters used in expressions (defaults that use earlier
parameters, calls to earlier blocks), `repeat`, `concat` with named and unnamed branches of
different depths, `residual` with both shortcuts, labels, and every layer of the catalog —
rendered to real `.arch` text (one statement per line, so a line names a statement), and run
statement by statement through the torch.nn layers it stands for. The reference evaluates the
block parameters and expressions itself and never calls archdsl's resolver, shape rules or builder.

Where archdsl is documented to be stricter than PyTorch, the reference applies the documented rule
and says so (`Rejected` with an "archdsl rule" reason): a residual adds equal shapes only, conv and
pooling take a [C, H, W] sample, linear no [C, H, W] one (any other, on its last axis), channel
counts are positive, and permute's dims count the sample's axes from 0.

Errors are expected on the line of the statement PyTorch refuses; inside a block that is the
block's own statement (archdsl adds a note naming the call), not the call. No error may fall on a
statement of the model that PyTorch ran, nor on a line of the model before the refused statement.
"""

from __future__ import annotations

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
    """Arithmetic on parameters: + - * // and, on floats, /."""

    op: str
    left: Any
    right: Any


class Same:
    """The keyword value `same` (as many channels as come in)."""

    def __repr__(self) -> str:
        return "same"


SAME = Same()


# eq=False: statements are told apart by identity, so the rendered line of each can be looked up.
@dataclass(eq=False)
class Layer:
    op: str
    positional: tuple[Any, ...] = ()
    keywords: tuple[tuple[str, Any], ...] = ()
    label: str | None = None

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


@dataclass(eq=False)
class Repeat:
    count: Any
    body: list[Any]
    label: str | None = None
    splice: bool = False
    #: `repeat n as i`
    index: str | None = None


@dataclass(eq=False)
class Call:
    block: str
    positional: tuple[Any, ...] = ()
    keywords: tuple[tuple[str, Any], ...] = ()
    label: str | None = None
    splice: bool = False


@dataclass(eq=False)
class Gate:
    body: list[Any]
    label: str | None = None
    splice: bool = False


@dataclass(eq=False)
class Group:
    body: list[Any]
    label: str | None = None
    splice: bool = False


class Channels:
    """The name `channels`: the channel count the layer receives."""

    def __repr__(self) -> str:
        return "channels"


CHANNELS = Channels()


@dataclass(eq=False)
class BlockDef:
    name: str
    #: (name, default or None); every parameter is an int.
    params: list[tuple[str, Any]]
    body: list[Any]


Statement = Layer | Concat | Residual | Repeat | Call | Gate | Group


@dataclass
class Spec:
    input: Shape
    body: list[Any]
    blocks: list[BlockDef] = field(default_factory=list)


# --- rendering ------------------------------------------------------------------------------------

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "//": 2}


def expr_text(value: Any, parent: int = 0) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Same):
        return "same"
    if isinstance(value, Channels):
        return "channels"
    if isinstance(value, P):
        return value.name
    if isinstance(value, Op):
        level = _PRECEDENCE[value.op]
        # Left-associative: the right operand needs brackets at the same level.
        text = f"{expr_text(value.left, level)} {value.op} {expr_text(value.right, level + 1)}"
        return f"({text})" if level < parent else text
    if isinstance(value, tuple | list):
        return "[" + ", ".join(expr_text(v) for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, int) and value < 0 and parent:
        return f"({value})"
    return repr(value) if isinstance(value, float) else str(value)


def _args(positional: tuple[Any, ...], keywords: tuple[tuple[str, Any], ...]) -> str:
    parts = [expr_text(v) for v in positional] + [f"{k}={expr_text(v)}" for k, v in keywords]
    return ", ".join(parts)


def _labelled(statement: Any, text: str) -> str:
    if getattr(statement, "splice", False):
        return "*" + text
    label = statement.label
    if not label:
        return text
    return f"{label}: {text}" if label.isidentifier() else f'"{label}": {text}'


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
                emit(_labelled(s, call), depth, s)
            elif isinstance(s, Call):
                emit(_labelled(s, f"{s.block}({_args(s.positional, s.keywords)})"), depth, s)
            elif isinstance(s, Repeat):
                index = f" as {s.index}" if s.index else ""
                emit(_labelled(s, f"repeat {expr_text(s.count)}{index} {{"), depth, s)
                body(s.body, depth + 1)
                emit("}", depth)
            elif isinstance(s, Concat):
                head = f"concat(split={expr_text(s.split)})" if s.split is not False else "concat"
                emit(_labelled(s, head + " {"), depth, s)
                for branch in s.branches:
                    head = f"branch {_name(branch.name)} {{" if branch.name else "branch {"
                    emit("*" + head if branch.splice else head, depth + 1, branch)
                    body(branch.body, depth + 2)
                    emit("}", depth + 1)
                emit("}", depth)
            elif isinstance(s, Gate | Group):
                emit(_labelled(s, "gate {" if isinstance(s, Gate) else "{"), depth, s)
                body(s.body, depth + 1)
                emit("}", depth)
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
                emit("}", depth)

    for block in spec.blocks:
        params = ", ".join(
            f"{name}: int" + (f" = {expr_text(default)}" if default is not None else "")
            for name, default in block.params
        )
        emit(f"block {block.name}({params}) {{", 0)
        body(block.body, 1)
        emit("}", 0)
    emit(MODEL_HEADER, 0)
    emit(f"input {expr_text(spec.input)}", 1)
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
        #: Statements the same rule refuses too (the other names a repeat's passes repeat).
        self.also: set[int] = set()


@dataclass
class Reference:
    #: Every module path's per-sample output shape.
    shapes: dict[str, Shape] = field(default_factory=dict)
    #: Parameters of every leaf module path (layers and projection shortcuts).
    params: dict[str, int] = field(default_factory=dict)
    #: Statements PyTorch ran without complaint.
    ran: set[int] = field(default_factory=set)
    #: The model's per-sample output shape.
    output: Shape = ()


def evaluate(value: Any, env: dict[str, int]) -> Any:
    if isinstance(value, P):
        return env[value.name]
    if isinstance(value, Channels):
        return env["channels"]
    if isinstance(value, Op):
        left, right = evaluate(value.left, env), evaluate(value.right, env)
        if value.op == "+":
            return left + right
        if value.op == "-":
            return left - right
        if value.op == "*":
            return left * right
        return left / right if value.op == "/" else left // right
    if isinstance(value, tuple | list):
        return tuple(evaluate(v, env) for v in value)
    return value


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


class Runner:
    def __init__(self, spec: Spec):
        import torch

        self.torch = torch
        self.blocks = {b.name: b for b in spec.blocks}
        self.ref = Reference()
        #: Statements and branches whose names archdsl refuses (see `name_all`), by id, with the
        #: occurrence (a repeat's pass) at which it refuses them; how often each was named and run.
        self.refused: dict[int, int] = {}
        self.named: dict[int, int] = {}
        self.reached: dict[int, int] = {}
        #: A projected residual's `shortcut` is claimed apart from the residual's own name: by a
        #: stand-in of its own, so that the two claims' occurrences are counted apart.
        self.projections: dict[int, object] = {}
        #: Statements archdsl blames for a name taken inside them (a projection's).
        self.blamed_within: set[int] = set()

    def module(self, module: Any, path: str) -> Any:
        self.ref.params[path] = self.ref.params.get(path, 0) + sum(p.numel() for p in module.parameters())
        return module

    def sequence(self, statements: list[Any], x: Any, space: Space, env: dict[str, int]) -> Any:
        """Runs statements whose members join `space`: each takes its name, or its position among
        the members; a spliced one's members take theirs in turn."""
        for s in statements:
            self.refuse(s, space)
            if getattr(s, "splice", False):
                x = self.composite(s, x, space, env)
            else:
                path = space.claim(s, None if s.label is None else s.label.format(**env))
                x = self.statement(s, x, path, env)
                self.ref.shapes[path] = tuple(x.shape[1:])
            self.ref.ran.add(id(s))
        return x

    def statement(self, s: Any, x: Any, path: str, env: dict[str, int]) -> Any:
        if isinstance(s, Layer):
            return self.layer(s, x, path, env)
        return self.composite(s, x, Space(path + "."), env)

    def composite(self, s: Any, x: Any, space: Space, env: dict[str, int]) -> Any:
        if isinstance(s, Call):
            block = self.blocks[s.block]
            return self.sequence(block.body, x, space, self.bind(block, s, env))
        if isinstance(s, Repeat):
            count = evaluate(s.count, env)
            if count < 0:
                raise Rejected(s, space.prefix, f"archdsl rule: a repeat count is ≥ 0, got {count}")
            for index in range(count):
                here = {**env, s.index: index} if s.index else env
                x = self.sequence(s.body, x, space, here)
            return x
        if isinstance(s, Concat):
            return self.concat(s, x, space, env)
        if isinstance(s, Gate):
            gate = self.sequence(s.body, x, space, env)
            # PyTorch broadcasts x * gate wherever the gate is 1; archdsl also wants equal ranks
            # and no axis of the gate larger than x's, so the product keeps x's shape.
            if gate.dim() != x.dim() or any(
                g not in (1, n) for g, n in zip(gate.shape[1:], x.shape[1:], strict=True)
            ):
                raise Rejected(s, space.prefix, f"archdsl rule: gate {tuple(gate.shape)} on {tuple(x.shape)}")
            return _named(x * gate, _axes(x))
        if isinstance(s, Group):
            return self.sequence(s.body, x, space, env)
        return self.residual(s, x, space, env)

    def name_all(self, statements: list[Any], space: Space, env: dict[str, int]) -> None:
        """archdsl names every module before it infers any shape: this walks the spec as its resolver
        does, claiming each name in its module, and records in `self.refused` each statement (or
        branch) whose name a module already has — a name every pass of a repeat gives, two spliced
        statements' members — which archdsl refuses, stopping there."""
        for s in statements:
            if getattr(s, "splice", False):
                self.name_composite(s, space, env)
                continue
            label = None if s.label is None else s.label.format(**env)
            if not self.claims(space, s, label) or isinstance(s, Layer):
                continue
            self.name_composite(s, Space(""), env)

    def claims(self, space: Space, statement: Any, label: str | None) -> bool:
        key = str(space.count) if label is None else label
        space.count += 1
        occurrence = self.named[id(statement)] = self.named.get(id(statement), 0) + 1
        if key in space.names:
            # A statement a repeat runs again is refused in one pass only: the one counted here.
            self.refused.setdefault(id(statement), occurrence)
            return False
        space.names.add(key)
        return True

    def name_composite(self, s: Any, space: Space, env: dict[str, int]) -> None:
        if isinstance(s, Call):
            block = self.blocks[s.block]
            self.name_all(block.body, space, self.bind(block, s, env))
        elif isinstance(s, Repeat):
            count = evaluate(s.count, env)
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
            elif s.project and not self.claims(space, self.projection(s), "shortcut"):
                self.blamed_within.add(id(s))
        else:
            self.name_all(s.body, space, env)

    def projection(self, residual: Any) -> object:
        return self.projections.setdefault(id(residual), object())

    def refuse(self, statement: Any, space: Space, blamed: Any = None) -> None:
        """Refuses a statement (or branch) where archdsl does: at the occurrence `name_all` found.
        `blamed` is the statement reported, where `statement` stands for part of it."""
        if id(statement) not in self.refused:
            return
        reached = self.reached[id(statement)] = self.reached.get(id(statement), 0) + 1
        if reached == self.refused[id(statement)]:
            where = statement if blamed is None else blamed
            raise Rejected(where, space.prefix, "archdsl rule: a name its module already has")

    def bind(self, block: BlockDef, s: Call, env: dict[str, int]) -> dict[str, int]:
        inner: dict[str, int] = {}
        given = dict(
            zip([n for n, _ in block.params], [evaluate(v, env) for v in s.positional], strict=False)
        )
        given.update({k: evaluate(v, env) for k, v in s.keywords})
        for name, default in block.params:
            inner[name] = given[name] if name in given else evaluate(default, inner)
        return inner

    def concat(self, s: Concat, x: Any, space: Space, env: dict[str, int]) -> Any:
        for branch in s.branches:
            self.refuse(branch, space)
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
                outputs.append(self.sequence(branch.body, part, space, env))
                continue
            key = space.claim(branch, branch.name)
            y = self.sequence(branch.body, part, Space(key + "."), env)
            self.ref.shapes[key] = tuple(y.shape[1:])
            outputs.append(y)
        try:
            return _named(self.torch.cat(outputs, dim=1), _axes(outputs[0]))
        except (RuntimeError, IndexError) as exc:
            raise Rejected(s, space.prefix, f"torch.cat: {exc}") from None

    def residual(self, s: Residual, x: Any, space: Space, env: dict[str, int]) -> Any:
        from torch import nn

        if s.path is not None:
            self.refuse(s.path, space)
        elif s.project:
            # archdsl names the projection `shortcut` after the body (a spliced residual of the
            # body may have taken the name), and refuses the whole residual where it is taken.
            self.refuse(self.projection(s), space, s)
        first = (
            space.claim(s.path, s.path.name or "shortcut") if s.path is not None and s.path_first else None
        )
        y = self.sequence(s.body, x, space, env)
        if s.path is not None:
            key = first or space.claim(s.path, s.path.name or "shortcut")
            shortcut = self.sequence(s.path.body, x, Space(key + "."), env)
            self.ref.shapes[key] = tuple(shortcut.shape[1:])
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
        path = space.claim(s, "shortcut")
        options = {k: evaluate(v, env) for k, v in s.options if k != "shortcut"}
        bias, stride = options.get("bias", True), options.get("stride")
        if x.dim() == 2 and y.dim() == 2 and stride is None:
            layers: list[Any] = [nn.Linear(x.shape[1], y.shape[1], bias=bias)]
            if options.get("batchnorm", False):
                layers.append(nn.BatchNorm1d(y.shape[1]))
        elif x.dim() == 4 and y.dim() == 4:
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

    def layer(self, s: Layer, x: Any, path: str, env: dict[str, int]) -> Any:
        """The layer in PyTorch, holding [C, H, W] samples to archdsl's documented layout rules:
        their axes are followed by name through permutes; conv, pools and channel norms need the
        channels first, linear and layernorm a last axis that is not H or W."""
        axes = _axes(x)
        if axes is not None and len(axes) == 3:
            if s.op in IMAGE_LAYOUT and axes[0] != "C":
                raise Rejected(s, path, f"archdsl rule: {s.op} on axes {axes}")
            if s.op in ("linear", "layernorm") and axes[-1] in ("H", "W"):
                raise Rejected(s, path, f"archdsl rule: {s.op} over {axes[-1]} of {axes}")
        y = self._layer(s, x, path, env)
        if s.op == "permute" and axes is not None:
            dims = [evaluate(v, env) for v in s.positional]
            dims = list(dims[0]) if len(dims) == 1 and isinstance(dims[0], tuple) else dims
            return _named(y, tuple(axes[d] for d in dims))
        if axes is not None and y.dim() == x.dim():
            return _named(y, axes)
        return _named(y, IMAGE if y.dim() == 4 else None)

    def _layer(self, s: Layer, x: Any, path: str, env: dict[str, int]) -> Any:
        from torch import nn

        op = s.op
        env = {**env, "channels": x.shape[1]} if x.dim() > 1 else env
        pos = [evaluate(v, env) for v in s.positional]
        kw = {k: evaluate(v, env) for k, v in s.keywords}

        def rank(n: int) -> None:
            # PyTorch would take an unbatched 3-D tensor for one [C, H, W] sample, and nn.Linear
            # maps the last axis of any tensor; archdsl requires the per-sample rank instead.
            if x.dim() != n + 1:
                raise Rejected(s, path, f"archdsl rule: {op} needs rank {n}, got {tuple(x.shape[1:])}")

        def positive(value: Any, what: str) -> None:
            values = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, int) and not isinstance(v, bool) and v < 1 for v in values):
                raise Rejected(s, path, f"archdsl rule: {what} must be positive, got {value}")

        try:
            if op == "conv":
                rank(3)
                out = pos[0] if pos else kw["out"]
                out = x.shape[1] if isinstance(out, Same) else out
                positive(out, "out")
                positive(kw.get("kernel"), "kernel")
                padding = kw.get("padding", 0)
                if (
                    isinstance(padding, tuple | int)
                    and min(padding if isinstance(padding, tuple) else (padding,)) < 0
                ):
                    raise Rejected(s, path, "archdsl rule: padding ≥ 0")
                module = nn.Conv2d(
                    kw.get("in", x.shape[1]),
                    out,
                    kernel_size=kw["kernel"],
                    stride=kw.get("stride", 1),
                    padding=padding,
                    dilation=kw.get("dilation", 1),
                    groups=kw.get("groups", 1),
                    bias=kw.get("bias", True),
                )
            elif op in ("maxpool", "avgpool"):
                rank(3)
                kernel = pos[0]
                positive(kernel, "kernel")
                common = {
                    "stride": kw.get("stride"),
                    "padding": kw.get("padding", 0),
                    "ceil_mode": kw.get("ceil", False),
                }
                if op == "maxpool":
                    module = nn.MaxPool2d(kernel, dilation=kw.get("dilation", 1), **common)
                else:
                    module = nn.AvgPool2d(
                        kernel, count_include_pad=kw.get("count_include_pad", True), **common
                    )
            elif op in ("adaptiveavgpool", "adaptivemaxpool"):
                rank(3)
                positive(pos[0], "size")
                module = (nn.AdaptiveAvgPool2d if op == "adaptiveavgpool" else nn.AdaptiveMaxPool2d)(pos[0])
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
            elif op == "linear":
                out = pos[0] if pos else kw["out"]
                out = x.shape[-1] if isinstance(out, Same) else out
                positive(out, "out")
                module = nn.Linear(kw.get("in", x.shape[-1]), out, bias=kw.get("bias", True))
            else:
                raise AssertionError(f"no reference for {op}")
            return self.module(module, path)(x)
        except (RuntimeError, ValueError, IndexError) as exc:
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
    }
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
    runner.name_all(spec.body, Space(""), {})
    try:
        with torch.no_grad():
            x = torch.randn(BATCH, *spec.input)
            y = runner.sequence(spec.body, _named(x, IMAGE if x.dim() == 4 else None), Space(""), {})
    except Rejected as rejected:
        rejected.ran = runner.ref.ran
        # archdsl names every statement before inferring any shape: a name it refuses is refused
        # where PyTorch fails first, earlier, too.
        rejected.also |= set(runner.refused) | runner.blamed_within
        raise
    runner.ref.output = tuple(y.shape[1:])
    return runner.ref


# --- the generator --------------------------------------------------------------------------------


class Generator:
    """Draws one spec from a seed. It tracks the tensor's shape with simple size rules so that most
    specs are valid deep into their statements; a few statements are wrong on purpose, and the
    simple rules are sometimes wrong (ceil mode, dilation), so PyTorch rejects a fair share."""

    def __init__(self, seed: int):
        self.r = random.Random(seed)
        self.blocks: list[BlockDef] = []
        self.labels = 0

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
        kernel = self.pair(1, 5)
        kw: list[tuple[str, Any]] = [("kernel", kernel)]
        k = kernel if isinstance(kernel, int) else max(kernel)
        stride = 1
        if self.chance(0.3):
            stride = self.r.randint(1, 3)
            kw.append(("stride", stride))
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
            kw.append(("padding", (self.r.randint(0, 2), self.r.randint(0, 2))))
        if groups != 1:
            kw.append(("groups", groups))
        if self.chance(0.1):
            kw.append(("bias", False))
        if self.chance(0.05):
            kw.append(("in", self.pick([c, c, c + 1])))
        shape[0] = c if isinstance(out, Same) else out
        for axis in range(1, len(shape)):
            shape[axis] = (shape[axis] + 2 * pad - dilation * (k - 1) - 1) // stride + 1
        return Layer("conv", (out,), tuple(kw), self.label())

    def pool(self, shape: list[int]) -> Layer:
        op = self.pick(["maxpool", "avgpool"])
        kernel = self.pair(1, 4)
        k = kernel if isinstance(kernel, int) else min(kernel)
        kw: list[tuple[str, Any]] = []
        stride = k
        if self.chance(0.5):
            stride = self.r.randint(1, 3)
            kw.append(("stride", stride))
        pad = 0
        if self.chance(0.35):
            pad = self.r.randint(0, 2)  # sometimes more than half the kernel: PyTorch refuses
            kw.append(("padding", pad))
        if op == "maxpool" and self.chance(0.2):
            kw.append(("dilation", self.r.randint(1, 2)))
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
        if roll < 0.35:
            return self.conv(shape)
        if roll < 0.55:
            return self.pool(shape)
        if roll < 0.62:
            op = self.pick(["adaptiveavgpool", "adaptivemaxpool"])
            size = self.pair(1, 6)
            shape[1:] = [size, size] if isinstance(size, int) else list(size)
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

    # --- layers on features ----------------------------------------------------------------------

    def linear(self, shape: list[int]) -> Layer:
        out: Any = SAME if self.chance(0.1) else self.r.randint(1, 16)
        kw: list[tuple[str, Any]] = []
        if self.chance(0.1):
            kw.append(("bias", False))
        if self.chance(0.05):
            kw.append(("in", self.pick([shape[0], shape[0] + 1])))
        shape[0] = shape[0] if isinstance(out, Same) else out
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
        """A statement meant to keep H and W (and the channels, if asked)."""
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
                    body.append(
                        self.keeping(inner, keep_channels=False)
                        if self.chance(0.8)
                        else self.statement(inner, depth + 1)
                    )
                elif not image:
                    body.append(self.linear(inner) if self.chance(0.7) else self.activation(inner))
                else:
                    body.append(self.statement(inner, depth + 1))
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
        return Group([self.statement(shape, depth + 1) for _ in range(self.r.randint(1, 3))], self.label())

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
                    body.append(self.statement(inner, depth + 1))
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
                body.append(self.statement(inner, depth + 1))
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
            self.keeping(shape, keep_channels=True) if len(shape) == 3 else self.activation(shape)
            for _ in range(self.r.randint(1, 2))
        ]
        if self.chance(0.2):
            body.append(self.statement(list(shape), depth + 1))
        index = None
        if self.chance(0.3):
            # Names that hold the pass's index (RegNet's "block1-0", DenseNet's "denselayer1").
            index = "i"
            for statement in body:
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
            elif roll < 0.82 and self.blocks:
                earlier = self.pick(self.blocks)
                args: tuple[Any, ...] = (self.pick([P("w"), Op("+", P("w"), 1), 4]),)
                kw: tuple[tuple[str, Any], ...] = (("k", P("k")),) if self.chance(0.5) else ()
                body.append(Call(earlier.name, args, kw, self.label()))
            else:
                body.append(self.activation([1, 1, 1]))
        return params, body

    def call(self, shape: list[int], depth: int) -> Call:
        if not self.blocks or (len(self.blocks) < 3 and self.chance(0.4)):
            params, body = self.block_body(depth)
            self.blocks.append(BlockDef(f"B{len(self.blocks)}", params, body))
        block = self.pick(self.blocks)
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
            if composite and roll < 0.37:
                return self.splice(self.call(shape, depth))
            if composite and roll < 0.4:
                return self.splice(self.gate(shape))
            if composite and roll < 0.42:
                return self.splice(self.group(shape, depth))
            if roll < 0.42:
                shape[:] = [_prod(shape)]
                return Layer("flatten", (), (), self.label())
            if roll < 0.45:
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
        # [C, L] and [C, D, H, W]: what works on any rank, and a way back.
        roll = self.r.random()
        if composite and roll < 0.1:
            return self.concat(shape, depth)
        if composite and roll < 0.2:
            return self.residual(shape, depth)
        if roll < 0.3:
            return self.view(shape)
        if roll < 0.4:
            shape[:] = [_prod(shape)]
            return Layer("flatten")
        if roll < 0.5:
            out: Any = SAME if self.chance(0.1) else self.r.randint(1, 12)
            shape[-1] = shape[-1] if isinstance(out, Same) else out
            return Layer("linear", (out,), (("bias", False),) if self.chance(0.1) else (), self.label())
        if roll < 0.58:
            return self.permute(shape)
        if roll < 0.9:
            return self.activation(shape)
        return self.image_layer(shape)  # a rank error

    def spec(self) -> Spec:
        roll = self.r.random()
        if roll < 0.7:
            shape = [self.r.randint(1, 6), self.r.randint(1, 32), self.r.randint(1, 32)]
        elif roll < 0.85:
            shape = [self.r.randint(1, 64)]
        elif roll < 0.93:
            shape = [self.r.randint(1, 6), self.r.randint(1, 16)]
        else:
            shape = [self.r.randint(1, 4), self.r.randint(1, 6), self.r.randint(1, 8), self.r.randint(1, 8)]
        start = tuple(shape)
        body = [self.statement(shape) for _ in range(self.r.randint(1, 9))]
        return Spec(start, body, self.blocks)


def _prod(values: Any) -> int:
    total = 1
    for v in values:
        total *= v
    return total


def generate(seed: int) -> Spec:
    return Generator(seed).spec()


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
    from archdsl.program import compile_file

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
    if model.output != ref.output:
        return Verdict(True, "", f"the model's output is {model.output}, PyTorch's {ref.output}", text)
    if params != ref.params or model.params != sum(ref.params.values()):
        diff = {
            k: (params.get(k), ref.params.get(k))
            for k in set(params) | set(ref.params)
            if params.get(k) != ref.params.get(k)
        }
        return Verdict(True, "", f"parameter counts differ (archdsl, PyTorch): {diff}", text)
    if build:
        built = built_shapes(model, spec.input, shapes)
        if built != shapes:
            return Verdict(True, "", f"the built module gives other shapes: {built}", text)
    return Verdict(True, "", None, text)


def _walk(statements: list[Any]) -> list[Any]:
    found = []
    for s in statements:
        found.append(s)
        if isinstance(s, Repeat | Residual | Gate | Group):
            found += _walk(s.body)
        if isinstance(s, Residual) and s.path is not None:
            found += _walk(s.path.body)
        elif isinstance(s, Concat):
            for branch in s.branches:
                found += _walk(branch.body)
    return found


def built_shapes(model: Any, input_shape: Shape, paths: dict[str, Shape]) -> dict[str, Shape]:
    """The shapes archdsl's builder really produces, at the module paths the static pass names."""
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
            lambda _m, _a, out, path=path: seen.__setitem__(path, tuple(out.shape[1:]))
        )
    with torch.no_grad():
        network(torch.randn(BATCH, *input_shape))
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
# Shared by tests/test_robustness.py (hypothesis), tests/test_reliability.py and benchmarks/fuzz.py.

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
        text = render(generate(rng.randrange(1 << 30)))[0]
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
    from archdsl.program import compile_file
    from archdsl.report import check_json
    from archdsl.summary import model_line

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
