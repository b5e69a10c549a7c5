"""The IR: typed pydantic nodes for what a spec file says, before any name is resolved.

Produced by `transformer.py` during the parse, consumed by `resolve.py`. Every node keeps the
`Span` of the text it came from, so any later stage can point at it. Nothing here is checked
beyond syntax: `conv(-3)` is a valid IR node; resolve and shapes judge it.

The transformer builds nodes with `Record.of`, which skips validation: its values are typed by the
grammar already, and the schemas then need not be built when `archdsl check` starts (they cost
~80 ms, a quarter of its start-up). `tests/test_parser.py` validates the IR of every spec.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import Self

from .errors import SpanField


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    _defaults: ClassVar[dict[str, Any]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._defaults = {name: f.default for name, f in cls.model_fields.items() if not f.is_required()}

    @classmethod
    def of(cls, **fields: Any) -> Self:
        """A node from already-typed values, unvalidated: pydantic's `model_construct` without its
        generality, which costs twice as much (a 10,000-layer spec makes ~30,000 nodes)."""
        node = cls.__new__(cls)
        set_attribute = object.__setattr__
        set_attribute(node, "__dict__", {**cls._defaults, **fields})
        set_attribute(node, "__pydantic_fields_set__", set(fields))
        set_attribute(node, "__pydantic_extra__", None)
        set_attribute(node, "__pydantic_private__", None)
        return node


class Node(Record):
    span: SpanField


# --- expressions ---------------------------------------------------------------------------------


class IntLit(Node):
    kind: Literal["int"] = "int"
    value: int


class FloatLit(Node):
    kind: Literal["float"] = "float"
    value: float


class StrLit(Node):
    kind: Literal["str"] = "str"
    value: str


class BoolLit(Node):
    kind: Literal["bool"] = "bool"
    value: bool


class NameRef(Node):
    """A bare name: a parameter in scope, or a keyword value such as `same` or `project`."""

    kind: Literal["name"] = "name"
    name: str


class ListExpr(Node):
    kind: Literal["list"] = "list"
    items: list[Expr]


class BinOp(Node):
    kind: Literal["binop"] = "binop"
    op: Literal["+", "-", "*", "/", "//", "==", "!=", "<", "<=", ">", ">=", "and", "or"]
    left: Expr
    right: Expr


class Neg(Node):
    kind: Literal["neg"] = "neg"
    operand: Expr


class Not(Node):
    kind: Literal["not"] = "not"
    operand: Expr


class Choose(Node):
    """`then if condition else otherwise`."""

    kind: Literal["choose"] = "choose"
    condition: Expr
    then: Expr
    otherwise: Expr


class CallExpr(Node):
    """`sgd(lr=0.9)` as a value (in `train { }`), or `channels(skip)`, a named value's size."""

    kind: Literal["call"] = "call"
    name: str
    args: list[Arg]


Expr = Annotated[
    IntLit | FloatLit | StrLit | BoolLit | NameRef | ListExpr | BinOp | Neg | Not | Choose | CallExpr,
    Field(discriminator="kind"),
]


class Arg(Node):
    """One argument: positional when `name` is None, else `name=value`."""

    name: str | None
    value: Expr


# --- statements ----------------------------------------------------------------------------------


class Statement(Node):
    #: The statement's module name as written; a string label may interpolate expressions
    #: (`"denselayer{i + 1}"`): then `label_parts` holds its text and expressions in order.
    label: str | None = None
    label_span: SpanField | None = None
    label_parts: list[str | Expr] | None = None
    #: `*`: its members join the enclosing module rather than forming a module of their own.
    splice: bool = False
    #: `skip -> …`: the named value it reads instead of the statement before it.
    source: str | None = None
    source_span: SpanField | None = None
    #: `… as x`, `… as (a, b)`: the names of what it gives; `binds_tuple` for the parenthesised
    #: form, which takes a statement's several values apart.
    binds: list[str] | None = None
    binds_span: SpanField | None = None
    binds_tuple: bool = False


class Call(Statement):
    """A built-in layer or a block call: `conv(6, kernel=5)`, `relu`, `Inception()`."""

    kind: Literal["call"] = "call"
    op: str
    op_span: SpanField
    args: list[Arg]


class Repeat(Statement):
    kind: Literal["repeat"] = "repeat"
    count: Expr
    body: list[Stmt]
    #: `repeat 6 as i`: the pass's index, 0, 1, …, as a name in the body.
    index: str | None = None
    index_span: SpanField | None = None


class Branch(Node):
    name: str | None
    body: list[Stmt]
    #: `*branch { … }`: its members join the concat's module rather than forming one of their own.
    splice: bool = False


class Concat(Statement):
    kind: Literal["concat"] = "concat"
    args: list[Arg]
    branches: list[Branch]


class Residual(Statement):
    kind: Literal["residual"] = "residual"
    args: list[Arg]
    body: list[Stmt]
    #: `shortcut downsample { … }`: the path the input takes to the sum, written out; `shortcut_at`
    #: body statements come before it (its module stands among theirs where it is written).
    shortcut: Branch | None = None
    shortcut_at: int = 0


class Gate(Statement):
    """`gate { body }`: the input times what the body makes of it (squeeze-and-excitation)."""

    kind: Literal["gate"] = "gate"
    body: list[Stmt]


class Group(Statement):
    """`{ body }`: statements gathered under one module, as `nn.Sequential` gathers them."""

    kind: Literal["group"] = "group"
    body: list[Stmt]


class Input(Statement):
    """A model's `input [1, 28, 28]`, or a block's `input as x` (dims None: the caller's)."""

    kind: Literal["input"] = "input"
    dims: list[Expr] | None


class OutputItem(Node):
    """One value a model or block gives; `key` names it in a model's dict of outputs."""

    key: str | None
    key_span: SpanField | None = None
    name: str


class Output(Statement):
    """`output a, b` (a tuple) or `output out: a, aux: b` (a model's dict)."""

    kind: Literal["output"] = "output"
    items: list[OutputItem]


class If(Statement):
    """`if cond { … } else { … }`: the statements of the branch whose condition holds, in place."""

    kind: Literal["if"] = "if"
    condition: Expr
    body: list[Stmt]
    orelse: list[Stmt] = []


class TrainEntry(Node):
    key: str
    value: Expr


class Train(Statement):
    kind: Literal["train"] = "train"
    entries: list[TrainEntry]


Stmt = Annotated[
    Call | Repeat | Concat | Residual | Gate | Group | If | Input | Output | Train,
    Field(discriminator="kind"),
]


# --- definitions ---------------------------------------------------------------------------------


class Param(Node):
    name: str
    type_name: str
    type_span: SpanField
    default: Expr | None


class Definition(Node):
    name: str
    name_span: SpanField
    params: list[Param]
    body: list[Stmt]


class BlockDef(Definition):
    kind: Literal["block"] = "block"


class ModelDef(Definition):
    kind: Literal["model"] = "model"


class Import(Node):
    path: str


class SourceFile(Record):
    """One parsed `.arch` file, its definitions in source order."""

    path: str
    imports: list[Import]
    blocks: list[BlockDef]
    models: list[ModelDef]
    #: Names of blocks whose definitions did not parse (their syntax error is already reported).
    unparsed_blocks: list[str] = []
