"""Stage 3: IR → resolved IR. Names, blocks, parameters and `repeat` counts are settled here.

Consumes the `SourceFile`s of one spec and its imports (from `loader.py`); produces one
`ResolvedModel` per model: a tree of layer, block, repeat, concat and residual nodes whose
arguments are plain normalised values (ints, `(h, w)` pairs, floats, bools) and whose keys are
the submodule names the builder will use. Errors are collected, not raised: a statement that
cannot be resolved becomes an `InvalidNode` so later stages stop there without a second report.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import ir, layers
from .errors import Diagnostic, Failed, Note, Span, did_you_mean, error
from .layers import CONCAT, KEYWORD_VALUES, RESIDUAL, Arg, Layer, Signature
from .module_names import RESERVED_MODULE_NAMES
from .trainspec import TrainSpec, validate_train
from .values import (
    BadValue,
    CallValue,
    Symbol,
    any_int,
    any_list,
    boolean,
    describe,
    number,
    positive_int,
    string,
)

UNKNOWN_LAYER = "E002"
UNKNOWN_ARGUMENT = "E003"
ARGUMENT_COUNT = "E004"
BAD_VALUE = "E005"
UNKNOWN_NAME = "E006"
DUPLICATE = "E009"
RECURSION = "E010"
MODEL_STRUCTURE = "E011"
TOO_LARGE = "E110"

#: A spec that expands past this many layers is refused before anything is built.
MAX_EXPANDED_LAYERS = 1_000_000
#: Statements nested deeper than this (block calls, repeat, concat, residual) are taken for a
#: mistake; every later stage walks the tree recursively, so this also keeps them off Python's
#: recursion limit.
MAX_NESTING = 100
#: Integers are 64-bit: the smallest out of range.
INT_LIMIT = 2**63

PARAM_TYPES: dict[str, Callable[[Any], Any]] = {
    "int": any_int,
    "float": number,
    "bool": boolean,
    # A bare keyword value passes as its name, so `Block(pad=same)` can bind `pad: str`.
    "str": lambda v: v.name if isinstance(v, Symbol) else string(v),
    "list": any_list,
}


# --- the resolved tree ----------------------------------------------------------------------------


@dataclass(slots=True)
class LayerNode:
    key: str
    label: str | None
    span: Span
    op: str
    args: dict[str, Any]
    arg_spans: dict[str, Span]


@dataclass(slots=True)
class BlockNode:
    key: str
    label: str | None
    span: Span
    block: str
    params: dict[str, Any]
    body: list[Node]
    splice: bool = False


@dataclass(slots=True)
class RepeatNode:
    """`count` passes of one body, each resolved on its own (a pass's names may hold its index);
    their members are numbered on through the passes, as if the body were written out."""

    key: str
    label: str | None
    span: Span
    passes: list[list[Node]]
    splice: bool = False

    @property
    def count(self) -> int:
        return len(self.passes)


@dataclass(slots=True)
class BranchNode:
    """A concat's branch, or a residual's written-out shortcut: a module of its own, unless
    spliced (`*branch`), when its members are the concat's."""

    key: str
    label: str | None
    span: Span
    body: list[Node]
    splice: bool = False


@dataclass(slots=True)
class ConcatNode:
    key: str
    label: str | None
    span: Span
    branches: list[BranchNode]
    #: The channels each branch takes of the input, or None: every branch takes all of it.
    split: tuple[int, ...] | bool = False
    arg_spans: dict[str, Span] = field(default_factory=dict)
    splice: bool = False


@dataclass(slots=True)
class ResidualNode:
    key: str
    label: str | None
    span: Span
    shortcut: str  # identity | project | path
    stride: tuple[int, int] | None
    bias: bool
    batchnorm: bool
    body: list[Node]
    arg_spans: dict[str, Span]
    #: The projection's or the written-out path's member name; the path stands after `shortcut_at`
    #: of the body's statements.
    shortcut_key: str | None = None
    path: BranchNode | None = None
    shortcut_at: int = 0
    splice: bool = False


@dataclass(slots=True)
class GateNode:
    key: str
    label: str | None
    span: Span
    body: list[Node]
    splice: bool = False


@dataclass(slots=True)
class GroupNode:
    key: str
    label: str | None
    span: Span
    body: list[Node]
    splice: bool = False


@dataclass(slots=True)
class InvalidNode:
    """A statement whose error is already reported; shape inference stops at it."""

    key: str
    label: str | None
    span: Span


Node = LayerNode | BlockNode | RepeatNode | ConcatNode | ResidualNode | GateNode | GroupNode | InvalidNode


def children(node: Node | BranchNode) -> list[Node | BranchNode]:
    """The statements (and branches) a resolved statement holds: every pass of a repeat, a
    concat's branches, a residual's body and its written shortcut, a block's or group's body."""
    if isinstance(node, RepeatNode):
        return [n for one in node.passes for n in one]
    if isinstance(node, ConcatNode):
        return list(node.branches)
    if isinstance(node, ResidualNode):
        return [*node.body, *([node.path] if node.path is not None else [])]
    if isinstance(node, BlockNode | BranchNode | GateNode | GroupNode):
        return list(node.body)
    return []


def _stops(nodes: list[Node]) -> bool:
    """Whether shape inference stops in `nodes`: they hold a statement refused (`InvalidNode`)."""
    stack: list[Node | BranchNode] = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, InvalidNode):
            return True
        stack.extend(children(node))
    return False


@dataclass(frozen=True)
class Deferred:
    """A layer argument that reads `channels`, the count the layer receives: evaluated by shape
    inference, which knows it (`value(channels)` raises `Failed` as the resolver would)."""

    value: Callable[[int], Any]


@dataclass
class Namespace:
    """The members of one module, claimed in order: a named statement takes its name, an unnamed
    one its position among the members (as `nn.Sequential` numbers them)."""

    names: dict[str, Span] = field(default_factory=dict)
    #: Members so far; a spliced statement's members count here, not the statement itself.
    members: int = 0
    #: Spliced statements so far, which are told apart by their number (`.0`, `.1`, …).
    spliced: int = 0


@dataclass
class ResolvedModel:
    name: str
    file: str
    span: Span
    name_span: Span
    input_shape: tuple[int, ...] | None
    input_span: Span | None
    params: dict[str, Any]
    body: list[Node]
    train: TrainSpec | None


# --- scopes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockEntry:
    #: None for a block whose definition has a syntax error: calls to it are silently invalid.
    definition: ir.BlockDef | None
    #: The blocks visible where this block was written: a block's body resolves in its own file.
    scope: dict[str, BlockEntry]


def block_scopes(
    files: dict[str, ir.SourceFile], import_graph: dict[str, list[str]]
) -> tuple[dict[str, dict[str, BlockEntry]], list[Diagnostic]]:
    """The blocks visible in each file: its own and, transitively, those of the files it imports."""
    diagnostics: list[Diagnostic] = []
    own: dict[str, dict[str, ir.BlockDef]] = {}
    for path, source in files.items():
        table: dict[str, ir.BlockDef] = {}
        for block in source.blocks:
            if block.name in layers.LAYERS:
                diagnostics.append(
                    error(
                        DUPLICATE,
                        f"block '{block.name}' would hide the built-in '{block.name}'",
                        block.name_span,
                    )
                )
            elif block.name in table:
                diagnostics.append(_defined_twice("block", block, table[block.name]))
            else:
                table[block.name] = block
        own[path] = table
        models: dict[str, ir.ModelDef] = {}
        for model in source.models:
            if model.name in models:
                diagnostics.append(_defined_twice("model", model, models[model.name]))
            else:
                models[model.name] = model

    scopes: dict[str, dict[str, BlockEntry]] = {path: {} for path in files}
    entries: dict[int, BlockEntry] = {}
    for path in files:
        scope = scopes[path]
        for other in _import_closure(path, import_graph):
            for name in files[other].unparsed_blocks if other in files else ():
                scope.setdefault(name, BlockEntry(None, {}))
            for name, block in own.get(other, {}).items():
                visible = scope.get(name)
                if visible is None:
                    # A block's body resolves in the scope of the file that defines it.
                    scope[name] = entries.setdefault(id(block), BlockEntry(block, scopes[other]))
                elif visible.definition is not None and visible.definition is not block:
                    diagnostics.append(_defined_twice("block", block, visible.definition))
    unique = {(d.span, d.message): d for d in diagnostics}
    return scopes, list(unique.values())


def _defined_twice(what: str, later: ir.Definition, first: ir.Definition) -> Diagnostic:
    return error(
        DUPLICATE,
        f"{what} '{later.name}' is defined twice",
        later.name_span,
        Note(message=f"the other definition is at {first.name_span}", span=first.name_span),
    )


def _import_closure(path: str, import_graph: dict[str, list[str]]) -> list[str]:
    """`path` first, then every file it imports, transitively, depth-first in import order."""
    order: list[str] = []
    stack = [path]
    while stack:
        current = stack.pop()
        if current not in order:
            order.append(current)
            stack.extend(reversed(import_graph.get(current, [])))
    return order


# --- the resolver ---------------------------------------------------------------------------------


class Resolver:
    def __init__(self, blocks: dict[str, BlockEntry]):
        self.blocks = blocks
        self.diagnostics: list[Diagnostic] = []
        self.expanded = 0
        self.passes = 0
        self.too_large_reported = False
        #: Off while a repeat's passes after its first resolve: the first counted for them all.
        self.counting = True
        #: Inside a repeat that runs no pass: its body is resolved once, to check names and arguments.
        self.dry = 0
        self.depth = 0
        #: The top-level body of the model being resolved (where input and train belong).
        self.model_body: Sequence[ir.Stmt] | None = None

    # --- expressions ------------------------------------------------------------------------------

    def evaluate(self, expr: ir.Expr, scope: dict[str, Any]) -> Any:
        # Dispatch on `kind`: isinstance against pydantic classes is several times slower, and
        # this runs for every argument of every layer.
        kind = expr.kind
        if kind == "int":
            return _in_range(expr.value, expr.span)  # type: ignore[union-attr,type-var]
        if kind in ("float", "str", "bool"):
            return expr.value  # type: ignore[union-attr]
        if kind == "name":
            name = expr.name  # type: ignore[union-attr]
            return scope[name] if name in scope else Symbol(name)
        if kind == "list":
            return [self.evaluate(item, scope) for item in expr.items]  # type: ignore[union-attr]
        if kind == "neg":
            return -self._number(expr.operand, scope, "-")  # type: ignore[union-attr]
        if kind == "binop":
            assert isinstance(expr, ir.BinOp)
            left = self._number(expr.left, scope, expr.op)
            right = self._number(expr.right, scope, expr.op)
            if expr.op == "+":
                return _in_range(left + right, expr.span)
            if expr.op == "-":
                return _in_range(left - right, expr.span)
            if expr.op == "*":
                return _in_range(left * right, expr.span)
            if right == 0:
                raise Failed(error(BAD_VALUE, "division by zero", expr.right.span))
            if expr.op == "/":
                return _in_range(left / right, expr.span)
            return _in_range(left // right, expr.span)
        assert isinstance(expr, ir.CallExpr)
        return CallValue(name=expr.name, span=expr.span, args=tuple(self.evaluated_args(expr.args, scope)))

    def _number(self, expr: ir.Expr, scope: dict[str, Any], op: str) -> int | float:
        """An operand of arithmetic: an integer, or a float (as in Python, an operation with a
        float, and `/` always, gives a float)."""
        value = self.evaluate(expr, scope)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if isinstance(value, Symbol):
            raise Failed(self.unknown_name(value.name, expr.span, scope))
        raise Failed(error(BAD_VALUE, f"'{op}' works on numbers, got {describe(value)}", expr.span))

    def unknown_name(self, name: str, span: Span, scope: dict[str, Any]) -> Diagnostic:
        if name == CHANNELS_NAME:
            return error(
                UNKNOWN_NAME,
                f"'{CHANNELS_NAME}' (the channel count a layer receives) can be read only in a layer's "
                "own arguments; pass it to a block as a parameter",
                span,
            )
        hint = did_you_mean(name, [*scope, *KEYWORD_VALUES])
        where = f" (parameters here: {', '.join(scope)})" if scope and not hint else ""
        return error(UNKNOWN_NAME, f"unknown name '{name}'{where}{hint}", span)

    # --- argument binding ------------------------------------------------------------------------

    def bind(
        self,
        spec: Signature | Layer,
        args: Sequence[tuple[str | None, Any, Span]],
        call_span: Span,
        scope: dict[str, Any],
        what: str | None = None,
    ) -> tuple[dict[str, Any], dict[str, Span]]:
        """Matches positional and keyword arguments to a signature and converts each value."""
        what = what or spec.name
        names = [a.name for a in spec.args]
        values: dict[str, Any] = {}
        spans: dict[str, Span] = {}
        positional_done = False
        problems: list[Diagnostic] = []
        variadic_items: list[tuple[Any, Span]] = []
        for index, (name, value, span) in enumerate(args):
            if name is None:
                if positional_done:
                    problems.append(
                        error(ARGUMENT_COUNT, "a positional argument cannot follow a keyword argument", span)
                    )
                    continue
                if spec.variadic is not None:
                    variadic_items.append((value, span))
                    continue
                if index >= len(names):
                    takes = (
                        f"takes at most {len(names)} ({', '.join(names)})" if names else "takes no arguments"
                    )
                    problems.append(error(ARGUMENT_COUNT, f"too many arguments: {what} {takes}", span))
                    continue
                name = names[index]
            else:
                positional_done = True
                if name not in names:
                    hint = did_you_mean(name, names)
                    accepted = f" (it takes {', '.join(names)})" if names and not hint else ""
                    if not names:
                        accepted = " (it takes none)"
                    problems.append(
                        error(UNKNOWN_ARGUMENT, f"{what} has no argument '{name}'{accepted}{hint}", span)
                    )
                    continue
            if name in values:
                problems.append(error(ARGUMENT_COUNT, f"argument '{name}' is given twice", span))
                continue
            values[name] = value
            spans[name] = span
        if spec.variadic is not None and variadic_items:
            if spec.variadic in values:
                problems.append(
                    error(ARGUMENT_COUNT, f"argument '{spec.variadic}' is given twice", variadic_items[0][1])
                )
            elif len(variadic_items) == 1 and isinstance(variadic_items[0][0], list):
                values[spec.variadic], spans[spec.variadic] = variadic_items[0]
            else:
                first, last = variadic_items[0][1], variadic_items[-1][1]
                values[spec.variadic] = [v for v, _ in variadic_items]
                spans[spec.variadic] = first.to(last)
        converted: dict[str, Any] = {}
        # A misspelt keyword usually is the "missing" argument: report the spelling only.
        misspelt = any(d.code == UNKNOWN_ARGUMENT for d in problems)
        for arg in spec.args:
            if arg.name not in values:
                if arg.required and not misspelt:
                    problems.append(
                        error(ARGUMENT_COUNT, f"{what} needs an argument '{arg.name}' ({arg.doc})", call_span)
                    )
                else:
                    converted[arg.name] = arg.default
                continue
            value = values[arg.name]
            if isinstance(value, Deferred):
                converted[arg.name] = value  # converted by shape inference, which knows `channels`
                continue
            if isinstance(value, list) and any(isinstance(v, Deferred) for v in value):
                converted[arg.name] = Deferred(functools.partial(_evaluate_items, value))
                continue
            try:
                converted[arg.name] = arg.accepts(value)
            except BadValue as bad:
                problems.append(self._bad_value(what, arg.name, value, str(bad), spans[arg.name], scope))
        if problems:
            self.diagnostics.extend(problems[1:])
            raise Failed(problems[0])
        return converted, spans

    def _bad_value(
        self, what: str, name: str, value: Any, expected: str, span: Span, scope: dict[str, Any]
    ) -> Diagnostic:
        symbols = [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, Symbol)]
        unknown = [s for s in symbols if s.name not in KEYWORD_VALUES]
        if unknown:
            return self.unknown_name(unknown[0].name, span, scope)
        return error(BAD_VALUE, f"{what} argument '{name}' must be {expected}", span)

    def evaluated_args(
        self, args: Iterable[ir.Arg], scope: dict[str, Any]
    ) -> list[tuple[str | None, Any, Span]]:
        return [
            (a.name, self.evaluate(a.value, scope), a.value.span if a.name is None else a.span) for a in args
        ]

    # --- statements -------------------------------------------------------------------------------

    def body(
        self,
        statements: Sequence[ir.Stmt],
        scope: dict[str, Any],
        stack: tuple[str, ...],
        weight: int,
        space: Namespace | None = None,
    ) -> list[Node]:
        """Resolves statements whose members join `space` (a new module's, unless given)."""
        space = Namespace() if space is None else space
        nodes: list[Node] = []
        for statement in statements:
            if isinstance(statement, ir.Input | ir.Train):
                # A model's own body is checked by `resolve_model`, a block's by `check_definitions`.
                if stack == () and statements is not self.model_body:
                    self.diagnostics.append(_misplaced(statement, "inside repeat, concat or residual"))
                continue
            label: str | None = None
            if statement.splice:
                key, inner = f".{space.spliced}", space
                space.spliced += 1
            else:
                inner = Namespace()
                try:
                    label = self.label(statement, scope)
                    key = self.claim(space, label, statement.label_span or statement.span)
                except Failed as failure:
                    # Shape inference stops at a statement that cannot be named, as at any other.
                    self.diagnostics.append(failure.diagnostic)
                    nodes.append(InvalidNode(key=f".{space.spliced}", label=None, span=statement.span))
                    space.spliced += 1
                    continue
            try:
                nodes.append(self.statement(statement, key, label, scope, stack, weight, inner))
            except Failed as failure:
                self.diagnostics.append(failure.diagnostic)
                nodes.append(InvalidNode(key=key, label=label, span=statement.span))
        return nodes

    def label(self, statement: ir.Stmt, scope: dict[str, Any]) -> str | None:
        """The name a statement gives its module, its `{…}` expressions evaluated."""
        if statement.label_parts is None:
            return statement.label
        text = []
        for part in statement.label_parts:
            if isinstance(part, str):
                text.append(part)
                continue
            value = self.evaluate(part, scope)
            if isinstance(value, Symbol):
                raise Failed(self.unknown_name(value.name, part.span, scope))
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise Failed(
                    error(
                        BAD_VALUE, f"a name can hold integers and strings, got {describe(value)}", part.span
                    )
                )
            text.append(str(value))
        return "".join(text)

    def claim(self, space: Namespace, label: str | None, span: Span) -> str:
        """The member key of the next statement in `space`: its label, or its position."""
        position = str(space.members)
        space.members += 1
        if label is None:
            if position in space.names:
                raise Failed(_taken(position, span, space.names[position]))
            space.names[position] = span
            return position
        problem = _bad_name(label)
        if problem is not None:
            raise Failed(error(DUPLICATE, problem, span))
        if label in space.names:
            raise Failed(_taken(label, span, space.names[label]))
        space.names[label] = span
        return label

    def statement(
        self,
        statement: ir.Stmt,
        key: str,
        label: str | None,
        scope: dict[str, Any],
        stack: tuple[str, ...],
        weight: int,
        space: Namespace,
    ) -> Node:
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise Failed(
                    error(
                        TOO_LARGE,
                        f"statements nest more than {MAX_NESTING} deep here "
                        "(block calls, repeat, concat, residual, gate and groups each add a level)",
                        statement.span,
                    )
                )
            return self._statement(statement, key, label, scope, stack, weight, space)
        finally:
            self.depth -= 1

    def _statement(
        self,
        statement: ir.Stmt,
        key: str,
        label: str | None,
        scope: dict[str, Any],
        stack: tuple[str, ...],
        weight: int,
        space: Namespace,
    ) -> Node:
        splice = statement.splice
        if isinstance(statement, ir.Call):
            return self.call(statement, key, label, scope, stack, weight, space)
        if isinstance(statement, ir.Repeat):
            return self.repeat(statement, key, label, scope, stack, weight, space)
        if isinstance(statement, ir.Concat):
            args, spans = self.bind(CONCAT, self.evaluated_args(statement.args, scope), statement.span, scope)
            if not statement.branches:
                raise Failed(error(BAD_VALUE, "concat needs at least one branch", statement.span))
            branches = [self.branch(branch, scope, stack, weight, space) for branch in statement.branches]
            split = args["split"]
            if isinstance(split, tuple) and len(split) != len(branches):
                raise Failed(
                    error(
                        BAD_VALUE,
                        f"concat split gives {len(split)} channel counts for {len(branches)} branches",
                        spans["split"],
                    )
                )
            return ConcatNode(key, label, statement.span, branches, split, spans, splice)
        if isinstance(statement, ir.Residual):
            return self.residual(statement, key, label, scope, stack, weight, space)
        if isinstance(statement, ir.Gate):
            return GateNode(
                key, label, statement.span, self.body(statement.body, scope, stack, weight, space), splice
            )
        if isinstance(statement, ir.Group):
            return GroupNode(
                key, label, statement.span, self.body(statement.body, scope, stack, weight, space), splice
            )
        raise AssertionError(f"unhandled statement {statement!r}")

    def branch(
        self,
        branch: ir.Branch,
        scope: dict[str, Any],
        stack: tuple[str, ...],
        weight: int,
        space: Namespace,
        default: str | None = None,
    ) -> BranchNode:
        """A branch (or a written-out shortcut, named `shortcut` unless it says): a module of its
        own among `space`'s members, or, spliced, none: its members are `space`'s."""
        if branch.splice:
            key = f".{space.spliced}"
            space.spliced += 1
            body = self.body(branch.body, scope, stack, weight, space)
            return BranchNode(key=key, label=None, span=branch.span, body=body, splice=True)
        # A branch whose name is refused refuses its concat (or residual): shape inference stops
        # there, as at a statement whose name is refused.
        key = self.claim(space, branch.name or default, branch.span)
        body = self.body(branch.body, scope, stack, weight)
        return BranchNode(key=key, label=branch.name, span=branch.span, body=body)

    def repeat(
        self,
        statement: ir.Repeat,
        key: str,
        label: str | None,
        scope: dict[str, Any],
        stack: tuple[str, ...],
        weight: int,
        space: Namespace,
    ) -> RepeatNode | InvalidNode:
        count = self.evaluate(statement.count, scope)
        if isinstance(count, Symbol):
            raise Failed(self.unknown_name(count.name, statement.count.span, scope))
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise Failed(
                error(BAD_VALUE, f"repeat needs a count ≥ 0, got {describe(count)}", statement.count.span)
            )
        inner_weight = weight * max(count, 1)
        self._grow(0, statement.span, inner_weight)
        index = statement.index
        if count == 0 or self.dry:
            # No pass runs, so nothing is built: the body is still held to its names and
            # arguments (a typo is wrong at any count), but not to values that may be wrong
            # only at this count (a block called with n=0, w=1 whose `conv(w - 2)` never runs),
            # nor to names its passes would give twice (a repeat inside resolves one pass).
            checked = len(self.diagnostics)
            dry = {**scope, index: 0} if index else scope
            self.dry += 1
            try:
                self.body(statement.body, dry, stack, inner_weight, Namespace())
            finally:
                self.dry -= 1
            self.diagnostics[checked:] = [d for d in self.diagnostics[checked:] if d.code != BAD_VALUE]
            return RepeatNode(key, label, statement.span, [], statement.splice)
        passes: list[list[Node]] = []
        counting = self.counting
        try:
            for number in range(count):
                here = {**scope, index: number} if index else scope
                reported = len(self.diagnostics)
                passes.append(self.body(statement.body, here, stack, inner_weight, space))
                if self.too_large_reported:
                    # Refused already (E110): expanding the rest would only take the memory.
                    return InvalidNode(key=key, label=label, span=statement.span)
                if any(d.is_error for d in self.diagnostics[reported:]) and _stops(passes[-1]):
                    # A pass with an error: shape inference stops at it, in this pass, and the
                    # passes after it would report it again (a typo in `repeat 1000000 { … }`
                    # took a minute). The passes so far stay, for inference to reach it.
                    return RepeatNode(key, label, statement.span, passes, statement.splice)
                # The first pass counts for all of them (its layers weigh `inner_weight`), so a
                # repeat that expands past the limit is refused before its other passes resolve.
                self.counting = False
        finally:
            self.counting = counting
        if not counting:
            return RepeatNode(key, label, statement.span, passes, statement.splice)
        # Each pass is a step of shape inference even when its body is empty, so passes are
        # bounded too; counted after the body, whose layers report first.
        self.passes += weight * count
        if self.passes > MAX_EXPANDED_LAYERS and not self.too_large_reported:
            self.too_large_reported = True
            raise Failed(
                error(
                    TOO_LARGE,
                    f"this model's repeats make more than {MAX_EXPANDED_LAYERS:,} passes here",
                    statement.span,
                    Note(message="a repeat count or block nesting multiplies the passes in its body"),
                )
            )
        return RepeatNode(key, label, statement.span, passes, statement.splice)

    def residual(
        self,
        statement: ir.Residual,
        key: str,
        label: str | None,
        scope: dict[str, Any],
        stack: tuple[str, ...],
        weight: int,
        space: Namespace,
    ) -> ResidualNode:
        args, spans = self.bind(RESIDUAL, self.evaluated_args(statement.args, scope), statement.span, scope)
        shortcut = args["shortcut"]
        if statement.shortcut is not None:
            if "shortcut" in spans:
                raise Failed(
                    error(
                        BAD_VALUE,
                        "a residual with a written-out shortcut takes no shortcut= argument",
                        spans["shortcut"],
                        Note(message=f"its shortcut is written at {statement.shortcut.span}"),
                    )
                )
            shortcut = "path"
        if shortcut != "project":
            for extra in ("stride", "bias", "batchnorm"):
                if extra in spans:
                    raise Failed(
                        error(BAD_VALUE, f"'{extra}' applies only to shortcut=project", spans[extra])
                    )
        # The written-out shortcut's module stands among the body's where it is written (RegNet
        # registers `proj` before `f`), so the members are claimed in that order.
        at = statement.shortcut_at if statement.shortcut is not None else len(statement.body)
        body = self.body(statement.body[:at], scope, stack, weight, space)
        shortcut_at = len(body)
        path = None
        shortcut_key = None
        if statement.shortcut is not None:
            path = self.branch(statement.shortcut, scope, stack, weight, space, default="shortcut")
            shortcut_key = path.key
        body += self.body(statement.body[at:], scope, stack, weight, space)
        if shortcut == "project":
            shortcut_key = self.claim(space, "shortcut", statement.span)
        return ResidualNode(
            key=key,
            label=label,
            span=statement.span,
            shortcut=shortcut,
            stride=args["stride"],
            bias=args["bias"],
            batchnorm=args["batchnorm"],
            body=body,
            arg_spans=spans,
            shortcut_key=shortcut_key,
            path=path,
            shortcut_at=shortcut_at,
            splice=statement.splice,
        )

    def call(
        self,
        call: ir.Call,
        key: str,
        label: str | None,
        scope: dict[str, Any],
        stack: tuple[str, ...],
        weight: int,
        space: Namespace,
    ) -> Node:
        # Built-in layers, then blocks, then plugins: a spec that calls only built-ins and blocks
        # never scans the installed packages for plugins, and a block hides a plugin's layer.
        spec = layers.LAYERS.get(call.op)
        if spec is None and call.op not in self.blocks:
            spec = layers.find(call.op)
        if spec is not None:
            if call.splice:
                raise Failed(
                    error(
                        BAD_VALUE,
                        f"`*` splices the members of a block, repeat, concat, residual, gate or group "
                        f"into the enclosing module; {call.op} is a layer, one member already",
                        call.span,
                    )
                )
            if self.counting:
                self._grow(weight, call.span, weight)
            arguments = self.layer_args(call.args, scope)
            values, spans = self.bind(spec, arguments, call.span, scope)
            return LayerNode(key=key, label=label, span=call.span, op=call.op, args=values, arg_spans=spans)
        arguments = self.evaluated_args(call.args, scope)
        entry = self.blocks.get(call.op)
        if entry is None:
            if stack:  # inside a block body: `check_definitions` reported it once, at the definition
                return InvalidNode(key=key, label=label, span=call.span)
            raise Failed(unknown_layer(call, self.blocks))
        definition = entry.definition
        if definition is None:
            return InvalidNode(key=key, label=label, span=call.span)
        if definition.name in stack:
            cycle = " → ".join([*stack[stack.index(definition.name) :], definition.name])
            raise Failed(error(RECURSION, f"block '{definition.name}' calls itself: {cycle}", call.op_span))
        params = self.bind_params(definition, arguments, call.span, f"block {definition.name}")
        # The body resolves among the blocks visible where it was written; its problems get a
        # note naming this call.
        caller_blocks, self.blocks = self.blocks, entry.scope
        first_new = len(self.diagnostics)
        try:
            body = self.body(definition.body, params, (*stack, definition.name), weight, space)
        finally:
            self.blocks = caller_blocks
        self.diagnostics[first_new:] = [
            _called_from(d, call, definition) for d in self.diagnostics[first_new:]
        ]
        return BlockNode(
            key=key,
            label=label,
            span=call.span,
            block=definition.name,
            params=params,
            body=body,
            splice=call.splice,
        )

    def layer_args(self, args: Iterable[ir.Arg], scope: dict[str, Any]) -> list[tuple[str | None, Any, Span]]:
        """A layer call's arguments; one that reads `channels` (and no parameter of that name is
        in scope) is left for shape inference, which knows how many channels arrive."""
        result = []
        for a in args:
            span = a.value.span if a.name is None else a.span
            if CHANNELS_NAME not in scope and mentions(a.value, (CHANNELS_NAME,)):
                value: Any = Deferred(functools.partial(self._with_channels, a.value, scope))
            else:
                value = self.evaluate(a.value, scope)
            result.append((a.name, value, span))
        return result

    def _with_channels(self, expr: ir.Expr, scope: dict[str, Any], channels: int) -> Any:
        return self.evaluate(expr, {**scope, CHANNELS_NAME: channels})

    def bind_params(
        self,
        definition: ir.Definition,
        arguments: Sequence[tuple[str | None, Any, Span]],
        call_span: Span,
        what: str,
    ) -> dict[str, Any]:
        """Binds a block's (or model's) typed parameters; defaults may use earlier parameters."""
        signature = Signature(definition.name, tuple(_param_arg(p) for p in definition.params))
        values, spans = self.bind(signature, arguments, call_span, {}, what=what)
        bound: dict[str, Any] = {}
        for param in definition.params:
            if param.name in spans:
                bound[param.name] = values[param.name]
                continue
            if param.default is None:
                continue  # reported by bind as a missing argument
            default = self.evaluate(param.default, bound)
            try:
                bound[param.name] = (
                    PARAM_TYPES[param.type_name](default) if param.type_name in PARAM_TYPES else default
                )
            except BadValue as bad:
                raise Failed(
                    error(BAD_VALUE, f"the default of '{param.name}' must be {bad}", param.default.span)
                ) from None
        return bound

    def _grow(self, layers: int, span: Span, weight: int) -> None:
        self.expanded += layers
        if (
            self.expanded > MAX_EXPANDED_LAYERS or weight > MAX_EXPANDED_LAYERS
        ) and not self.too_large_reported:
            self.too_large_reported = True
            raise Failed(
                error(
                    TOO_LARGE,
                    f"this model expands to more than {MAX_EXPANDED_LAYERS:,} layers here",
                    span,
                    Note(message="a repeat count or block nesting multiplies the layers in its body"),
                )
            )


_Number = TypeVar("_Number", int, float)

#: The name a layer's arguments may use for the channel (or feature) count it receives.
CHANNELS_NAME = "channels"


def mentions(expr: ir.Expr, scope: Iterable[str]) -> bool:
    """Whether `expr` reads a name in `scope` (a bare name, anywhere inside it)."""
    wanted = set(scope)
    pending: list[Any] = [expr]
    while pending:
        node = pending.pop()
        kind = node.kind
        if kind == "name":
            if node.name in wanted:
                return True
        elif kind == "list":
            pending.extend(node.items)
        elif kind == "binop":
            pending.extend((node.left, node.right))
        elif kind == "neg":
            pending.append(node.operand)
        elif kind == "call":
            pending.extend(a.value for a in node.args)
    return False


def _evaluate_items(items: list[Any], channels: int) -> list[Any]:
    return [item.value(channels) if isinstance(item, Deferred) else item for item in items]


def _taken(name: str, span: Span, first: Span) -> Diagnostic:
    if span == first:
        return error(
            DUPLICATE,
            f"the name '{name}' is given by every pass of this repeat: put the pass's index in "
            f'it (`repeat n as i {{ "{name}{{i}}": … }}`)',
            span,
        )
    return error(
        DUPLICATE,
        f"the name '{name}' is already used in this body",
        span,
        Note(message=f"first used at {first}", span=first),
    )


def _bad_name(name: str) -> str | None:
    """Why PyTorch would refuse `name` for a submodule, or None."""
    if name == "":
        return "a module's name cannot be empty"
    if "." in name:
        return f"'{name}' cannot name a module: PyTorch's module names cannot contain '.'"
    if name in RESERVED_MODULE_NAMES:
        return f"'{name}' cannot name a statement: torch.nn.Module already has an attribute of that name"
    return None


def _in_range(value: _Number, span: Span) -> _Number:
    """Integers are 64-bit, as PyTorch's sizes are: a bigger one is a mistake, and unbounded
    arithmetic on it (`x * x * x …`) would make numbers too long to print. Floats must be finite."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise Failed(error(BAD_VALUE, "this number is out of range: it is not finite", span))
    if -INT_LIMIT <= value < INT_LIMIT:
        return value
    raise Failed(
        error(
            BAD_VALUE,
            f"this integer is out of range: archdsl's integers are 64-bit, as PyTorch's sizes are "
            f"(at most {INT_LIMIT - 1:,})",
            span,
        )
    )


def _param_arg(param: ir.Param) -> Arg:
    convert = PARAM_TYPES.get(param.type_name, lambda v: v)
    return Arg(param.name, convert, f"{param.type_name} parameter", required=param.default is None)


def _called_from(diagnostic: Diagnostic, call: ir.Call, definition: ir.BlockDef) -> Diagnostic:
    """Errors inside a block body point at the body; a note says which call reached it."""
    if (
        diagnostic.span.file == call.span.file
        and call.span.line <= diagnostic.span.line <= call.span.end_line
    ):
        return diagnostic
    note = Note(message=f"in block '{definition.name}' called at {call.span}", span=call.span)
    if any(n.message == note.message for n in diagnostic.notes):
        return diagnostic
    return diagnostic.model_copy(update={"notes": (*diagnostic.notes, note)})


# --- models ---------------------------------------------------------------------------------------


def unknown_layer(call: ir.Call, blocks: dict[str, BlockEntry]) -> Diagnostic:
    hint = did_you_mean(call.op, [*layers.names(), *blocks])
    return error(UNKNOWN_LAYER, f"unknown layer or block '{call.op}'{hint}", call.op_span)


def _misplaced(statement: ir.Input | ir.Train, where: str) -> Diagnostic:
    return error(
        MODEL_STRUCTURE, f"'{statement.kind}' belongs at the top of a model, not {where}", statement.span
    )


def _nested_statements(body: Sequence[ir.Stmt]) -> Iterator[ir.Stmt]:
    # An explicit stack, not recursion: a block that is never called is not held to MAX_NESTING,
    # and may nest deeper than Python's recursion limit.
    pending: list[Iterator[ir.Stmt]] = [iter(body)]
    while pending:
        statement = next(pending[-1], None)
        if statement is None:
            pending.pop()
            continue
        yield statement
        if isinstance(statement, ir.Repeat | ir.Residual):
            pending.append(iter(statement.body))
        elif isinstance(statement, ir.Concat):
            pending.append(iter([s for branch in statement.branches for s in branch.body]))


def check_definitions(source: ir.SourceFile, blocks: dict[str, BlockEntry]) -> list[Diagnostic]:
    """What can be judged of a file's definitions without calling them: parameter types, and in
    block bodies unknown layer names and misplaced input/train. A block library that no model of
    its own file calls is still checked this far."""
    problems = check_param_types(source)
    for block in source.blocks:
        for statement in _nested_statements(block.body):
            if (
                isinstance(statement, ir.Call)
                and statement.op not in blocks
                and layers.find(statement.op) is None
            ):
                problems.append(unknown_layer(statement, blocks))
            elif isinstance(statement, ir.Input | ir.Train):
                problems.append(_misplaced(statement, f"in block '{block.name}'"))
    return problems


def check_param_types(source: ir.SourceFile) -> list[Diagnostic]:
    problems = []
    for definition in [*source.blocks, *source.models]:
        seen: set[str] = set()
        for param in definition.params:
            if param.type_name not in PARAM_TYPES:
                hint = did_you_mean(param.type_name, PARAM_TYPES)
                problems.append(
                    error(
                        BAD_VALUE,
                        f"unknown parameter type '{param.type_name}' (types: {', '.join(PARAM_TYPES)}){hint}",
                        param.type_span,
                    )
                )
            if param.name in seen:
                problems.append(error(DUPLICATE, f"parameter '{param.name}' is declared twice", param.span))
            seen.add(param.name)
    return problems


def resolve_model(
    model: ir.ModelDef,
    blocks: dict[str, BlockEntry],
    overrides: dict[str, Any] | None = None,
) -> tuple[ResolvedModel, list[Diagnostic]]:
    resolver = Resolver(blocks)
    overrides = overrides or {}
    unbound = False
    for param in model.params:
        if param.default is None and param.name not in overrides:
            unbound = True
            resolver.diagnostics.append(
                error(
                    ARGUMENT_COUNT,
                    f"model parameter '{param.name}' has no default: give it one "
                    f"(`{param.name}: {param.type_name} = "
                    f"…`) or pass a value (`-p {param.name}=…`, or archdsl.build(…, {param.name}=…))",
                    param.span,
                )
            )
    params: dict[str, Any] = {}
    if not unbound:
        arguments = [(name, value, model.name_span) for name, value in overrides.items()]
        try:
            params = resolver.bind_params(model, arguments, model.name_span, f"model {model.name}")
        except Failed as failure:
            resolver.diagnostics.append(failure.diagnostic)
            unbound = True
    if unbound:
        # Without its parameters the body cannot be resolved; reporting each use would only repeat
        # the one problem.
        empty = ResolvedModel(
            model.name, model.span.file, model.span, model.name_span, None, None, {}, [], None
        )
        return empty, resolver.diagnostics

    input_shape: tuple[int, ...] | None = None
    input_span: Span | None = None
    train: TrainSpec | None = None
    seen_layer = False
    for statement in model.body:
        if isinstance(statement, ir.Input):
            if input_span is not None:
                resolver.diagnostics.append(
                    error(
                        MODEL_STRUCTURE,
                        "a model has one input statement",
                        statement.span,
                        Note(message=f"the first is at {input_span}"),
                    )
                )
                continue
            if seen_layer:
                resolver.diagnostics.append(
                    error(MODEL_STRUCTURE, "input must come before the first layer", statement.span)
                )
            input_span = statement.span
            input_shape = resolver_input_shape(resolver, statement, params)
        elif isinstance(statement, ir.Train):
            if train is not None:
                resolver.diagnostics.append(
                    error(MODEL_STRUCTURE, "a model has one train section", statement.span)
                )
                continue
            train = validate_train(
                statement, lambda expr: resolver.evaluate(expr, params), resolver.bind, resolver.diagnostics
            )
        else:
            seen_layer = True
    if input_span is None:
        resolver.diagnostics.append(
            error(
                MODEL_STRUCTURE,
                f"model '{model.name}' has no input statement: say what one sample is, "
                "e.g. `input [1, 28, 28]`",
                model.name_span,
            )
        )

    resolver.model_body = model.body
    body = resolver.body(model.body, params, (), 1)
    resolved = ResolvedModel(
        name=model.name,
        file=model.span.file,
        span=model.span,
        name_span=model.name_span,
        input_shape=input_shape,
        input_span=input_span,
        params=params,
        body=body,
        train=train,
    )
    return resolved, resolver.diagnostics


def resolver_input_shape(
    resolver: Resolver, statement: ir.Input, params: dict[str, Any]
) -> tuple[int, ...] | None:
    dims: list[int] = []
    for expr in statement.dims:
        try:
            value = resolver.evaluate(expr, params)
            if isinstance(value, Symbol):
                raise Failed(resolver.unknown_name(value.name, expr.span, params))
            dims.append(positive_int(value))
        except BadValue as bad:
            resolver.diagnostics.append(error(BAD_VALUE, f"an input dimension must be {bad}", expr.span))
            return None
        except Failed as failure:
            resolver.diagnostics.append(failure.diagnostic)
            return None
    if not dims:
        resolver.diagnostics.append(
            error(BAD_VALUE, "input needs at least one dimension, e.g. [1, 28, 28]", statement.span)
        )
        return None
    return tuple(dims)
