"""Stage 3: names. What a block or model may call, what its names mean, and what its expressions
and arguments are worth.

Consumes the `SourceFile`s of one spec and its imports (from `loader.py`): `block_scopes` says which
blocks each file sees, `check_definitions` judges what can be judged of a definition without
calling it. The `Resolver` is the one evaluator of the language's expressions (`Evaluator`:
parameters, arithmetic, comparisons, `channels`, the sizes of named values) and binds arguments to
signatures (`ArgumentBinder`), converting each value (ints, `(h, w)` pairs, floats, bools, named
tensors); it also counts the layers a model expands to. `elaborate.py` walks the models with it.
Errors are collected as `Diagnostic`s, never printed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from . import ir, layers
from .codes import (
    ARGUMENT_COUNT,
    BAD_VALUE,
    DUPLICATE,
    MODEL_STRUCTURE,
    TOO_LARGE,
    UNKNOWN_ARGUMENT,
    UNKNOWN_LAYER,
    UNKNOWN_NAME,
    VALUES,
)
from .converters import (
    UNKNOWN,
    BadValue,
    CallValue,
    Symbol,
    TensorRef,
    any_int,
    any_list,
    boolean,
    describe,
    number,
    positive_int,
    string,
    tensor,
)
from .errors import Diagnostic, Failed, Note, Span, did_you_mean, error
from .layers import KEYWORD_VALUES, Arg, Layer, Signature
from .reserved_names import RESERVED_MODULE_NAMES

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
    # A named value: what a block reads beside the value it receives (`Up(skip: tensor, …)`).
    "tensor": tensor,
}


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


class Evaluator:
    """The one evaluator of the language's expressions (constants, parameters, arithmetic,
    comparisons, conditions, `channels`, the sizes of named values) where a statement stands: its
    parameters are the `scope` each method takes; `values` are the named tensors in sight, and
    `channels` the channel count of the tensor the statement receives (None where no statement
    receives one, `UNKNOWN` where it is not known)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.channels: Any = None

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
            if name in scope:
                return scope[name]
            if name in self.values:
                return TensorRef(name, self.values[name], expr.span)
            if name == CHANNELS_NAME and self.channels is not None:
                return self.channels
            return Symbol(name)
        if kind == "list":
            return [self.evaluate(item, scope) for item in expr.items]  # type: ignore[union-attr]
        if kind == "neg":
            operand = self._number(expr.operand, scope, "-")  # type: ignore[union-attr]
            return operand if operand is UNKNOWN else self.arithmetic("*", operand, -1, expr)
        if kind == "choose":
            condition = self.evaluate(expr.condition, scope)  # type: ignore[union-attr]
            if condition is UNKNOWN:
                return UNKNOWN
            chosen = expr.then if self._truth(condition, expr.condition, "if") else expr.otherwise  # type: ignore[union-attr]
            return self.evaluate(chosen, scope)
        if kind == "not":
            operand = self.evaluate(expr.operand, scope)  # type: ignore[union-attr]
            return operand if operand is UNKNOWN else not self._truth(operand, expr.operand, "not")  # type: ignore[union-attr]
        if kind == "binop":
            assert isinstance(expr, ir.BinOp)
            if expr.op in ("and", "or"):
                return self._logic(expr, scope)
            if expr.op in _COMPARISONS:
                return self._compare(expr, scope)
            left = self._number(expr.left, scope, expr.op)
            right = self._number(expr.right, scope, expr.op)
            if left is UNKNOWN or right is UNKNOWN:
                return UNKNOWN
            return self.arithmetic(expr.op, left, right, expr)
        assert isinstance(expr, ir.CallExpr)
        if expr.name in SIZE_FUNCTIONS and expr.name not in scope:
            return self._size(expr, scope)
        return CallValue(name=expr.name, span=expr.span, args=tuple(self.evaluated_args(expr.args, scope)))

    def arithmetic(self, op: str, left: Any, right: Any, expr: ir.Expr) -> Any:
        """`left op right` as Python computes it (`//` floors, `/` gives a float), on 64-bit
        integers and finite floats."""
        if op == "+":
            return _in_range(left + right, expr.span)
        if op == "-":
            return _in_range(left - right, expr.span)
        if op == "*":
            return _in_range(left * right, expr.span)
        if right == 0:
            divisor = expr.right.span if isinstance(expr, ir.BinOp) else expr.span
            raise Failed(error(BAD_VALUE, "division by zero", divisor))
        if op == "/":
            return _in_range(left / right, expr.span)
        return _in_range(left // right, expr.span)

    def _number(self, expr: ir.Expr, scope: dict[str, Any], op: str) -> Any:
        """An operand of arithmetic: an integer, or a float (as in Python, an operation with a
        float, and `/` always, gives a float)."""
        value = self.evaluate(expr, scope)
        if (isinstance(value, int | float) and not isinstance(value, bool)) or value is UNKNOWN:
            return value
        if isinstance(value, Symbol):
            raise Failed(self.unknown_name(value.name, expr.span, scope))
        raise Failed(error(BAD_VALUE, f"'{op}' works on numbers, got {describe(value)}", expr.span))

    def _truth(self, value: Any, expr: ir.Expr, op: str) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, Symbol):
            raise Failed(self.unknown_name(value.name, expr.span, {}))
        raise Failed(error(BAD_VALUE, f"'{op}' works on true and false, got {describe(value)}", expr.span))

    def _logic(self, expr: ir.BinOp, scope: dict[str, Any]) -> Any:
        """`and` and `or`, as in Python, do not evaluate their right side when the left decides."""
        left = self.evaluate(expr.left, scope)
        if left is not UNKNOWN and self._truth(left, expr.left, expr.op) == (expr.op == "or"):
            return left
        right = self.evaluate(expr.right, scope)
        if right is UNKNOWN or left is UNKNOWN:
            return UNKNOWN
        return self._truth(right, expr.right, expr.op)

    def _compare(self, expr: ir.BinOp, scope: dict[str, Any]) -> Any:
        left = self.evaluate(expr.left, scope)
        right = self.evaluate(expr.right, scope)
        for side, value in ((expr.left, left), (expr.right, right)):
            if isinstance(value, Symbol) and value.name not in KEYWORD_VALUES:
                raise Failed(self.unknown_name(value.name, side.span, scope))
        if left is UNKNOWN or right is UNKNOWN:
            return UNKNOWN
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
        if expr.op in ("==", "!="):
            comparable = numbers or type(left) is type(right)
            if not comparable:
                raise Failed(
                    error(
                        BAD_VALUE,
                        f"'{expr.op}' compares values of one kind, got {describe(left)} and "
                        f"{describe(right)}",
                        expr.span,
                    )
                )
            if isinstance(left, TensorRef):
                raise Failed(error(VALUES, "tensors cannot be compared; compare their sizes", expr.span))
            return (left == right) == (expr.op == "==")
        if not numbers:
            raise Failed(
                error(
                    BAD_VALUE,
                    f"'{expr.op}' works on numbers, got {describe(left)} and {describe(right)}",
                    expr.span,
                )
            )
        return _COMPARISONS[expr.op](left, right)

    def _size(self, expr: ir.CallExpr, scope: dict[str, Any]) -> Any:
        """`channels(x)`, `height(x)`, `width(x)`: a size of the named value `x`."""
        args = self.evaluated_args(expr.args, scope)
        if len(args) != 1 or args[0][0] is not None or not isinstance(args[0][1], TensorRef):
            given = describe(args[0][1]) if len(args) == 1 and args[0][0] is None else "something else"
            if len(args) == 1 and isinstance(args[0][1], Symbol):
                raise Failed(self.unknown_name(args[0][1].name, args[0][2], scope))
            raise Failed(
                error(
                    BAD_VALUE,
                    f"{expr.name}(…) takes one named value (a tensor made earlier), got {given}",
                    expr.span,
                )
            )
        reference: TensorRef = args[0][1]
        shape = getattr(reference.value, "shape", None)
        if shape is None:
            return UNKNOWN
        axis = SIZE_FUNCTIONS[expr.name]
        image_axis = axis if axis == 0 else len(shape) - 3 + axis
        if axis != 0 and len(shape) < 3:
            raise Failed(
                error(
                    BAD_VALUE,
                    f"{expr.name}({reference.name}) needs an image, [C, H, W]; {reference.name} is "
                    f"[{', '.join(map(str, shape))}]",
                    expr.span,
                )
            )
        return shape[image_axis]

    def unknown_name(self, name: str, span: Span, scope: dict[str, Any]) -> Diagnostic:
        if name == CHANNELS_NAME:
            return error(
                UNKNOWN_NAME,
                f"'{CHANNELS_NAME}' (the channel count a statement receives) can be read only in the "
                "arguments of a statement that receives a tensor",
                span,
            )
        candidates = [*scope, *(self.values or ()), *KEYWORD_VALUES]
        hint = did_you_mean(name, candidates)
        where = f" (parameters here: {', '.join(scope)})" if scope and not hint else ""
        return error(UNKNOWN_NAME, f"unknown name '{name}'{where}{hint}", span)

    def evaluated_args(
        self, args: Iterable[ir.Arg], scope: dict[str, Any]
    ) -> list[tuple[str | None, Any, Span]]:
        return [
            (a.name, self.evaluate(a.value, scope), a.value.span if a.name is None else a.span) for a in args
        ]


class ArgumentBinder(Evaluator):
    """Binds a call's arguments to a signature (a layer's, or a block's or model's parameters) and
    converts each value; problems past the first go to `diagnostics`."""

    def __init__(self) -> None:
        super().__init__()
        self.diagnostics: list[Diagnostic] = []

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
        values, spans, problems = _match_arguments(spec, args, what)
        converted = self._convert_arguments(spec, values, spans, problems, call_span, scope, what)
        if problems:
            self.diagnostics.extend(problems[1:])
            raise Failed(problems[0])
        return converted, spans

    def _convert_arguments(
        self,
        spec: Signature | Layer,
        values: dict[str, Any],
        spans: dict[str, Span],
        problems: list[Diagnostic],
        call_span: Span,
        scope: dict[str, Any],
        what: str,
    ) -> dict[str, Any]:
        """Each argument's value as its signature converts it, a default where none is given; a
        missing required argument or a value refused is added to `problems`."""
        converted: dict[str, Any] = {}
        # A misspelt keyword usually is the "missing" argument: report the spelling only.
        misspelt = bool(problems) and any(d.code == UNKNOWN_ARGUMENT for d in problems)
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
            if value is UNKNOWN or (type(value) is list and _unknown(value)):
                converted[arg.name] = UNKNOWN  # not judged: it is not known here
                continue
            try:
                converted[arg.name] = arg.accepts(value)
            except BadValue as bad:
                problems.append(self._bad_value(what, arg.name, value, str(bad), spans[arg.name], scope))
        return converted

    def _bad_value(
        self, what: str, name: str, value: Any, expected: str, span: Span, scope: dict[str, Any]
    ) -> Diagnostic:
        symbols = [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, Symbol)]
        unknown = [s for s in symbols if s.name not in KEYWORD_VALUES]
        if unknown:
            return self.unknown_name(unknown[0].name, span, scope)
        code = VALUES if isinstance(value, TensorRef) or "named value" in expected else BAD_VALUE
        return error(code, f"{what} argument '{name}' must be {expected}", span)

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
            if _unknown(default):
                bound[param.name] = UNKNOWN
                continue
            if isinstance(default, Symbol) and (
                default.name not in KEYWORD_VALUES or param.type_name != "str"
            ):
                raise Failed(self.unknown_name(default.name, param.default.span, bound))
            try:
                bound[param.name] = (
                    PARAM_TYPES[param.type_name](default) if param.type_name in PARAM_TYPES else default
                )
            except BadValue as bad:
                raise Failed(
                    error(BAD_VALUE, f"the default of '{param.name}' must be {bad}", param.default.span)
                ) from None
        return bound


class Resolver(ArgumentBinder):
    """Evaluates expressions and binds arguments (`Evaluator`, `ArgumentBinder`) with the blocks in
    sight (`blocks`), counting the layers a model expands to and how deep its statements nest."""

    def __init__(self, blocks: dict[str, BlockEntry]):
        super().__init__()
        self.blocks = blocks
        self.expanded = 0
        self.passes = 0
        self.too_large_reported = False
        #: Off while a repeat's passes after its first resolve: the first counted for them all.
        self.counting = True
        self.depth = 0

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


def _match_arguments(
    spec: Signature | Layer, args: Sequence[tuple[str | None, Any, Span]], what: str
) -> tuple[dict[str, Any], dict[str, Span], list[Diagnostic]]:
    """Each argument's value and span by the name of the signature's argument it gives, and the
    problems in matching them (too many, unknown names, given twice, positional after keyword)."""
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
                takes = f"takes at most {len(names)} ({', '.join(names)})" if names else "takes no arguments"
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
        _gather_variadic(spec.variadic, variadic_items, values, spans, problems)
    return values, spans, problems


def _gather_variadic(
    name: str,
    items: list[tuple[Any, Span]],
    values: dict[str, Any],
    spans: dict[str, Span],
    problems: list[Diagnostic],
) -> None:
    """The positional arguments a variadic argument takes, as one list (a single list given as is)."""
    if name in values:
        problems.append(error(ARGUMENT_COUNT, f"argument '{name}' is given twice", items[0][1]))
    elif len(items) == 1 and isinstance(items[0][0], list):
        values[name], spans[name] = items[0]
    else:
        first, last = items[0][1], items[-1][1]
        values[name] = [v for v, _ in items]
        spans[name] = first.to(last)


_Number = TypeVar("_Number", int, float)

#: The name a layer's arguments may use for the channel (or feature) count it receives.
CHANNELS_NAME = "channels"


#: `channels(x)`, `height(x)`, `width(x)`: the sizes of a named value, by axis from its channels.
SIZE_FUNCTIONS = {"channels": 0, "height": 1, "width": 2}

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _unknown(value: Any) -> bool:
    """Whether a value (or an item of a list) is not known here."""
    if value is UNKNOWN:
        return True
    return type(value) is list and any(_unknown(v) for v in value)


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
        elif kind in ("neg", "not"):
            pending.append(node.operand)
        elif kind == "choose":
            pending.extend((node.condition, node.then, node.otherwise))
        elif kind == "call":
            pending.extend(a.value for a in node.args)
    return False


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


def nested_statements(body: Sequence[ir.Stmt]) -> Iterator[ir.Stmt]:
    """Every statement in `body` and the bodies it holds, in source order."""
    # An explicit stack, not recursion: a block that is never called is not held to MAX_NESTING,
    # and may nest deeper than Python's recursion limit.
    pending: list[Iterator[ir.Stmt]] = [iter(body)]
    while pending:
        statement = next(pending[-1], None)
        if statement is None:
            pending.pop()
            continue
        yield statement
        pending.append(iter(statement_bodies(statement)))


def statement_bodies(statement: ir.Stmt) -> list[ir.Stmt]:
    """The statements a statement holds, in source order (a residual's shortcut where written)."""
    if isinstance(statement, ir.Repeat | ir.Gate | ir.Group):
        return list(statement.body)
    if isinstance(statement, ir.Residual):
        body = list(statement.body)
        if statement.shortcut is not None:
            body[statement.shortcut_at : statement.shortcut_at] = statement.shortcut.body
        return body
    if isinstance(statement, ir.Concat):
        return [s for branch in statement.branches for s in branch.body]
    if isinstance(statement, ir.If):
        return [*statement.body, *statement.orelse]
    return []


def check_definitions(source: ir.SourceFile, blocks: dict[str, BlockEntry]) -> list[Diagnostic]:
    """What can be judged of a file's definitions without calling them: parameter types, and in
    block bodies unknown layer names and misplaced input/train. A block library that no model of
    its own file calls is still checked this far."""
    problems = check_param_types(source)
    for block in source.blocks:
        own = {id(s) for s in block.body}
        for statement in nested_statements(block.body):
            if (
                isinstance(statement, ir.Call)
                and statement.op not in blocks
                and layers.find(statement.op) is None
            ):
                problems.append(unknown_layer(statement, blocks))
            elif isinstance(statement, ir.Input) and statement.dims is None and id(statement) in own:
                continue  # `input as x`: the block names what it receives
            elif isinstance(statement, ir.Input) and statement.dims is not None and id(statement) in own:
                problems.append(
                    error(
                        MODEL_STRUCTURE,
                        f"block '{block.name}' receives what its caller gives: name it `input as x`, "
                        "without a shape",
                        statement.span,
                    )
                )
            elif isinstance(statement, ir.Input | ir.Train):
                problems.append(_misplaced(statement, f"in block '{block.name}'"))
    for model in source.models:
        for statement in model.body:
            if isinstance(statement, ir.Input) and statement.dims is None:
                problems.append(
                    error(
                        MODEL_STRUCTURE,
                        "a model's input says what one sample is: `input [1, 28, 28]`",
                        statement.span,
                    )
                )
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


def resolver_input_dims(
    resolver: Resolver, statement: ir.Input, params: dict[str, Any]
) -> tuple[int, ...] | None:
    """An `input` statement's dimensions, or None (its problem reported)."""
    assert statement.dims is not None  # a model's input (a block's has none)
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
