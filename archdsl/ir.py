"""The IR: typed pydantic nodes for what a spec file says, before any name is resolved.

Produced by `transformer.py` from the lark tree, consumed by `resolve.py`. Every node keeps the
`Span` of the text it came from, so any later stage can point at it. Nothing here is checked
beyond syntax: `conv(-3)` is a valid IR node; resolve and shapes judge it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import SpanField


class Node(BaseModel):
    model_config = ConfigDict(frozen=True)

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
    op: Literal["+", "-", "*", "//"]
    left: Expr
    right: Expr


class Neg(Node):
    kind: Literal["neg"] = "neg"
    operand: Expr


class CallExpr(Node):
    """`sgd(lr=0.9)` as a value (in `train { }`)."""

    kind: Literal["call"] = "call"
    name: str
    args: list[Arg]


Expr = Annotated[
    IntLit | FloatLit | StrLit | BoolLit | NameRef | ListExpr | BinOp | Neg | CallExpr,
    Field(discriminator="kind"),
]


class Arg(Node):
    """One argument: positional when `name` is None, else `name=value`."""

    name: str | None
    value: Expr


# --- statements ----------------------------------------------------------------------------------


class Statement(Node):
    label: str | None = None
    label_span: SpanField | None = None


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


class Branch(Node):
    name: str | None
    body: list[Stmt]


class Concat(Statement):
    kind: Literal["concat"] = "concat"
    args: list[Arg]
    branches: list[Branch]


class Residual(Statement):
    kind: Literal["residual"] = "residual"
    args: list[Arg]
    body: list[Stmt]


class Input(Statement):
    kind: Literal["input"] = "input"
    dims: list[Expr]


class TrainEntry(Node):
    key: str
    value: Expr


class Train(Statement):
    kind: Literal["train"] = "train"
    entries: list[TrainEntry]


Stmt = Annotated[Call | Repeat | Concat | Residual | Input | Train, Field(discriminator="kind")]


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


class SourceFile(BaseModel):
    """One parsed `.arch` file, its definitions in source order."""

    model_config = ConfigDict(frozen=True)

    path: str
    imports: list[Import]
    blocks: list[BlockDef]
    models: list[ModelDef]
    #: Names of blocks whose definitions did not parse (their syntax error is already reported).
    unparsed_blocks: list[str] = []


for _model in (ListExpr, BinOp, Neg, CallExpr, Arg, Repeat, Branch, Concat, Residual, Definition):
    _model.model_rebuild()
for _model in (BlockDef, ModelDef):
    _model.model_rebuild()
