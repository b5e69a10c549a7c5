"""`archdsl import`'s own IR: the spec being written, as statements over values.

The importer (`importer/`) reads a traced module into these statements and writes them as text;
`importer/factor.py` rewrites them into blocks and repeats in between. Both read and make them, so they
live here, below both: the importer calls `factor`, and `factor` needs nothing of the importer's.
Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .. import layers
from ..grammar import keywords


@dataclass(eq=False)
class Value:
    """A tensor of the spec being written: what a statement gives, or an input. It is named (`as
    x`) only where a statement reads it other than next; `name` is given when the text is written
    (fixed beforehand for a block's `tensor` parameters)."""

    shape: tuple[int, ...] = ()
    #: the fx node it stands for, whose line in `forward` suggests its name
    node: Any = None
    name: str | None = None
    #: a name to try first (a block's input: its parameter's name in `forward`)
    hint: str | None = None


@dataclass(frozen=True, eq=False)
class Ref:
    """A value passed by name as an argument: `cat(x)`, `padto(skip)`, `Up(x4, 512)`."""

    value: Value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ref) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)


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
    #: the value it receives (None for a group, whose statements read for themselves)
    reads: Value | None = None
    #: the values it gives: one, or several (`as (a, b)`)
    gives: list[Value] = field(default_factory=list)
    #: group: the values it reads from outside, what it receives first, and their names in its
    #: `forward`; its depth among the calls of modules (the root's children are at 1)
    inputs: list[Value] = field(default_factory=list)
    params: list[str | None] = field(default_factory=list)
    depth: int = 0
    #: set when the text is written: the value it reads by name (`x -> …`); for the last
    #: statement of a group, that the group names what it gives instead (`{ … } as x`)
    source: Value | None = None
    bound_outside: bool = False


def refs(value: Any) -> Iterator[Value]:
    """The values an argument names."""
    if isinstance(value, Ref):
        yield value.value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from refs(item)


@dataclass(frozen=True)
class Expr:
    """An expression in a block's parameters, already written (`width * 4`, `channels`)."""

    text: str


# --- names of values ------------------------------------------------------------------------------

#: Words a value is not named, beside the grammar's keywords and the layers': what an expression
#: reads as the incoming size.
RESERVED = frozenset({"channels", "height", "width", "in"})


def reserved_names(blocks: list[str]) -> set[str]:
    return set(keywords()) | set(layers.LAYERS) | set(blocks) | RESERVED


def nameable(name: str | None, reserved: set[str]) -> bool:
    return bool(name) and name.isidentifier() and name not in reserved and not name.startswith("__")  # type: ignore[union-attr]


# --- walking statements ---------------------------------------------------------------------------


def shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def is_function(statement: Stmt) -> bool:
    """A function of no module (`cat`, `add`, `padto`, …): no member, no number among them."""
    return statement.kind == "layer" and not layers.LAYERS[statement.op].member


def end_of(body: list[Stmt], end: int) -> Stmt | None:
    """The first (`end` 0) or last (-1) statement of a body, within its groups."""
    while body:
        statement = body[end]
        if statement.kind not in ("group", "plain"):
            return statement
        body = statement.body
    return None


def walk_body(body: list[Stmt]) -> Iterator[Stmt]:
    """Every statement of `body`, and those inside each, depth first."""
    for statement in body:
        yield statement
        yield from walk_body(statement.body)
        if statement.shortcut is not None:
            yield from walk_body(statement.shortcut.body)


__all__ = [
    "RESERVED",
    "Expr",
    "Ref",
    "Stmt",
    "Value",
    "end_of",
    "is_function",
    "nameable",
    "refs",
    "reserved_names",
    "shape_text",
    "walk_body",
]
