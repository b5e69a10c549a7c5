"""The symbolic pass over block definitions that lets `emit` write one class per block.

Consumes the shaped models with the IR of their blocks (the definitions, arguments still
expressions); produces, for each block that can be written generically, a `Generic`: its body as
`Shaped` nodes whose channel counts and sizes are `symbolic` expressions in `in_channels` (or
`in_features`), the block's parameters, the input's `H` and `W` (a signal's `L`, a video's `T`,
`H` and `W`), and the sizes of its tensor parameters (`skip_channels`, `skip_H`, `skip_W`).

The pass follows a block's dataflow as elaboration does. Each named value (`… as x`, `input as x`,
a tensor parameter) has a symbolic shape in the scope of its definition, so a statement that reads
one (`skip -> …`, `cat(skip)`, `padto(skip)`, `channels(x)`) gets its shape; a block gives one
value or several (`output a, b`). A tensor parameter is an input of `forward`; its channel count is
a parameter of `__init__` where a layer is built from it. An `if` on the parameters becomes a
Python `if` in `__init__` when both branches build the same members (so `forward` is the same),
and the sizes after it are conditional expressions (`in_channels if bilinear else in_channels // 2`).

Generality is proved, never guessed. A block is generic only when everything its construction needs
is an expression in what `__init__` receives, every call gives its inputs the same ranks and runs
the same `forward`, and, for every call in the spec, the expressions evaluated at that call's values
equal the shapes that shape inference found (where a branch of an `if` runs at no call, its layers
are held to their shape rules at each call's values instead). Otherwise `NotGeneric` says why and
emit writes a class per distinct instance instead.

Its length (about 1,500 lines) is one symbolic evaluator: conditions (`Truth`), sizes, the layer
rules and the walk over a body call one another recursively, so split apart they would import each
other in a circle.
"""

from __future__ import annotations

import functools
import keyword
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, cast

from .. import ir, layers
from ..converters import UNKNOWN as NOT_KNOWN
from ..converters import BadValue, TensorRef, tensor_refs
from ..errors import Failed
from ..graph import Module as GraphModule
from ..graph import Node, Program, is_chain
from ..graph import Value as GraphValue
from ..graph import programs as programs_of
from ..layers import NotSymbolic
from ..layers.base import Layer
from ..layers.joins import Add, Cat, Mul, Split, chunks
from ..layers.resample import ConvTranspose, Pad, PadTo, PixelShuffle, PixelUnshuffle, Resize, Upsample
from ..resolve import CHANNELS_NAME, PARAM_TYPES, BlockEntry, Resolver, mentions, nested_statements
from ..shapes import Shaped, ShapedModel
from ..symbolic import (
    UNKNOWN,
    Choice,
    FloorDiv,
    Product,
    Sum,
    Sym,
    Unknown,
    Value,
    Var,
    add,
    choice,
    known,
    mul,
    names,
    sub,
    window,
)
from ..symbolic import evaluate as evaluate_value
from ..symbolic import floordiv as symbolic_floordiv

#: Why a block cannot be one class for all its calls (a layer's `NotSymbolic` is one such reason).
NotGeneric = NotSymbolic


_PAIRS = frozenset({"kernel", "stride", "padding", "dilation", "output_padding"})
#: The `args` key of a block call in a generic class's body: how it calls the block's class.
CALL = "call"
#: The kind of the record of a member an `if` on the parameters builds one way or the other: its
#: children are the two builds, then the other.
CHOICE = "choice"
#: The names of an input's spatial sizes, by its rank: a signal's, an image's, a video's.
_SPATIAL_NAMES: dict[int, tuple[str, ...]] = {2: ("L",), 3: ("H", "W"), 4: ("T", "H", "W")}
#: Names a parameter may not have in a generated signature: what the generated `__init__` itself
#: reads (the classes it calls are added by `emit`), and the names of the shape comments.
_RESERVED = frozenset(keyword.kwlist) | {
    "self",
    "super",
    "range",
    "int",
    "float",
    "bool",
    "str",
    "list",
    "nn",
    "torch",
    "OrderedDict",
    "in_channels",
    "in_features",
    "L",
    "T",
    "H",
    "W",
}

Shape = tuple[Value, ...]


# --- conditions -----------------------------------------------------------------------------------

_OR, _AND, _NOT, _COMPARISON, _ATOM = range(5)
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class Truth:
    """A condition on what `__init__` receives (`bilinear`, `skip and in_channels == out`): how an
    `if` on the parameters is written, and what it is at each call."""

    precedence = _ATOM

    def evaluate(self, env: Mapping[str, Any]) -> bool | None:
        """Whether it holds with `env`'s names bound; None if a name is unbound."""
        raise NotImplementedError

    def leaves(self) -> tuple[Any, ...]:
        """The values it compares or tests."""
        raise NotImplementedError

    def names(self) -> frozenset[str]:
        return frozenset().union(*(names(v) for v in self.leaves() if isinstance(v, int | Sym)))

    def __repr__(self) -> str:
        return str(self)


@dataclass(frozen=True, repr=False)
class Holds(Truth):
    """A bool parameter, as a condition."""

    flag: Var

    def __str__(self) -> str:
        return str(self.flag)

    def evaluate(self, env: Mapping[str, Any]) -> bool | None:
        value = self.flag.evaluate(env)
        return None if value is None else bool(value)

    def leaves(self) -> tuple[Any, ...]:
        return (self.flag,)


@dataclass(frozen=True, repr=False)
class Compare(Truth):
    op: str
    left: Any
    right: Any
    precedence = _COMPARISON

    def __str__(self) -> str:
        return f"{_literal(self.left)} {self.op} {_literal(self.right)}"

    def evaluate(self, env: Mapping[str, Any]) -> bool | None:
        left, right = _value_at(self.left, env), _value_at(self.right, env)
        if left is None or right is None:
            return None
        return bool(_COMPARE[self.op](left, right))

    def leaves(self) -> tuple[Any, ...]:
        return (self.left, self.right)


@dataclass(frozen=True, repr=False)
class Negation(Truth):
    operand: Truth
    precedence = _NOT

    def __str__(self) -> str:
        return f"not {_bracket(self.operand, _NOT)}"

    def evaluate(self, env: Mapping[str, Any]) -> bool | None:
        value = self.operand.evaluate(env)
        return None if value is None else not value

    def leaves(self) -> tuple[Any, ...]:
        return self.operand.leaves()


@dataclass(frozen=True, repr=False)
class Logic(Truth):
    """`and`, `or`."""

    op: str
    left: Truth
    right: Truth

    @property
    def precedence(self) -> int:  # type: ignore[override]
        return _AND if self.op == "and" else _OR

    def __str__(self) -> str:
        return f"{_bracket(self.left, self.precedence)} {self.op} {_bracket(self.right, self.precedence + 1)}"

    def evaluate(self, env: Mapping[str, Any]) -> bool | None:
        left, right = self.left.evaluate(env), self.right.evaluate(env)
        decides = self.op == "or"  # the value of either side that decides the whole
        if left is decides or right is decides:
            return decides
        return None if left is None or right is None else not decides

    def leaves(self) -> tuple[Any, ...]:
        return self.left.leaves() + self.right.leaves()


def _bracket(truth: Truth, place: int) -> str:
    return str(truth) if truth.precedence >= place else f"({truth})"


def _literal(value: Any) -> str:
    """An operand of a comparison as Python source."""
    if isinstance(value, Sym):
        return f"({value})" if value.precedence == Choice.precedence else str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _value_at(value: Any, env: Mapping[str, Any]) -> Any:
    return value.evaluate(env) if isinstance(value, Sym) else value


@dataclass(frozen=True, eq=True, repr=False)
class Conditional(Choice):
    """`then if condition else otherwise`, a size that an `if` on the parameters decides: a
    `Choice` whose count is a `Truth` (true counts as 1, so `if_zero` is the size where it does not
    hold, `otherwise` the size where it does)."""

    def __str__(self) -> str:
        return f"{_operand(self.otherwise)} if {self.count} else {_operand(self.if_zero)}"


def _operand(value: Value) -> str:
    return f"({value})" if isinstance(value, Sym) and value.precedence == Choice.precedence else str(value)


def _assume(value: Value, truth: Truth, holds: bool) -> Value:
    """`value` where `truth` is known to be `holds`: its conditionals on `truth` decided."""
    if isinstance(value, Conditional) and value.count == truth:
        return _assume(value.otherwise if holds else value.if_zero, truth, holds)
    if isinstance(value, Sum):
        total: Value = value.constant
        for term, coefficient in value.terms:
            total = add(total, mul(_assume(term, truth, holds), coefficient))
        return total
    if isinstance(value, Product):
        return mul(_assume(value.left, truth, holds), _assume(value.right, truth, holds))
    if isinstance(value, FloorDiv):
        return symbolic_floordiv(
            _assume(value.numerator, truth, holds), _assume(value.denominator, truth, holds)
        )
    if isinstance(value, Conditional):
        assert isinstance(value.count, Truth)
        return _conditional(
            value.count, _assume(value.otherwise, truth, holds), _assume(value.if_zero, truth, holds)
        )
    if isinstance(value, Choice):
        return choice(
            value.count, _assume(value.if_zero, truth, holds), _assume(value.otherwise, truth, holds)
        )
    return value


def _conditional(truth: Truth, then: Value, otherwise: Value) -> Value:
    then, otherwise = _assume(then, truth, True), _assume(otherwise, truth, False)
    if then == otherwise:
        return then
    if isinstance(then, Unknown) or isinstance(otherwise, Unknown):
        return UNKNOWN
    return Conditional(truth, otherwise, then)  # type: ignore[arg-type]  # a Choice whose count is a Truth


def _truth(value: Any) -> Truth:
    if isinstance(value, Truth):
        return value
    if isinstance(value, Var):
        return Holds(value)
    raise NotGeneric(f"a condition on {value}")


def _integral(value: Any) -> bool:
    return isinstance(value, Sym) or (isinstance(value, int) and not isinstance(value, bool))


def _symbolic_value(value: Any) -> bool:
    return isinstance(value, Sym | Truth)


def symbols(value: Any) -> list[Any]:
    """The expressions and conditions in a value, a list's or tuple's items too."""
    if isinstance(value, list | tuple):
        return [found for item in value for found in symbols(item)]
    return [value] if _symbolic_value(value) else []


def _has_symbols(value: Any) -> bool:
    return bool(symbols(value))


# --- evaluation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sized:
    """A named value as the symbolic evaluator sees it (`channels(x)`, `cat(x)`): its shape."""

    shape: Shape


def _symbolic(node: Shaped, **changes: Any) -> Shaped:
    """A copy of `node` whose sizes (`input`, `output`) and arguments may be expressions: a
    `Shaped` in all but the type of its sizes, which only `emit` reads."""
    return replace(node, **changes)


def _record(
    kind: str,
    op: str,
    like: Shaped,
    span: Any,
    input: Shape,
    output: Shape,
    args: dict[str, Any],
    children: list[Shaped] | None = None,
) -> Shaped:
    """A record no shaped one stands behind, named as the member `like`, its sizes expressions
    (a `Shaped`'s are integers, as shape inference makes them)."""
    sizes = cast(Any, (input, output))
    return Shaped(
        kind, op, like.key, like.path, like.label, span, sizes[0], sizes[1], 0, 0, args, children or []
    )


def _integer(value: Any) -> Value:
    if isinstance(value, Sym) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise NotGeneric(f"{value!r} is not an integer")


class _Symbolic(Resolver):
    """The resolver's evaluator over symbolic values: a block's parameters and its inputs' sizes
    are `Var`s, integer arithmetic on them builds `symbolic` expressions, a comparison or condition
    on them a `Truth`, and a conditional expression on one a `Conditional`. What cannot be written
    over them (a true division, a conditional value that is no integer) is `NotGeneric`."""

    def __init__(self) -> None:
        super().__init__({})

    def evaluate(self, expr: ir.Expr, scope: dict[str, Any]) -> Any:
        kind = expr.kind
        if kind == "choose":
            assert isinstance(expr, ir.Choose)
            condition = self.evaluate(expr.condition, scope)
            if _symbolic_value(condition):
                then, otherwise = self.evaluate(expr.then, scope), self.evaluate(expr.otherwise, scope)
                return _choose(_truth(condition), then, otherwise)
        elif kind == "not":
            assert isinstance(expr, ir.Not)
            operand = self.evaluate(expr.operand, scope)
            if _symbolic_value(operand):
                truth = _truth(operand)
                return truth.operand if isinstance(truth, Negation) else Negation(truth)
        elif kind == "binop":
            assert isinstance(expr, ir.BinOp)
            if expr.op in ("and", "or"):
                return self._connective(expr, scope)
            if expr.op in _COMPARE:
                left, right = self.evaluate(expr.left, scope), self.evaluate(expr.right, scope)
                if _symbolic_value(left) or _symbolic_value(right):
                    return _comparison(expr.op, left, right)
        return super().evaluate(expr, scope)

    def _connective(self, expr: ir.BinOp, scope: dict[str, Any]) -> Any:
        """`and`, `or`: as in Python, the left side decides where it can."""
        decides = expr.op == "or"
        left = self.evaluate(expr.left, scope)
        if not _symbolic_value(left):
            if self._truth(left, expr.left, expr.op) == decides:
                return left
            right = self.evaluate(expr.right, scope)
            return _truth(right) if _symbolic_value(right) else self._truth(right, expr.right, expr.op)
        right = self.evaluate(expr.right, scope)
        if not _symbolic_value(right):
            return decides if self._truth(right, expr.right, expr.op) == decides else _truth(left)
        return Logic(expr.op, _truth(left), _truth(right))

    def _number(self, expr: ir.Expr, scope: dict[str, Any], op: str) -> Any:
        value = self.evaluate(expr, scope)
        if isinstance(value, Sym):
            return value
        return super()._number(expr, scope, op)

    def arithmetic(self, op: str, left: Any, right: Any, expr: ir.Expr) -> Any:
        if not isinstance(left, Sym) and not isinstance(right, Sym):
            return super().arithmetic(op, left, right, expr)
        left, right = _integer(left), _integer(right)
        if op == "+":
            return add(left, right)
        if op == "-":
            return sub(left, right)
        if op == "*":
            return mul(left, right)
        if op == "/":
            raise NotGeneric("a true division")
        try:
            return symbolic_floordiv(left, right)
        except ZeroDivisionError:
            raise NotGeneric("division by zero") from None


def _comparison(op: str, left: Any, right: Any) -> Any:
    for side in (left, right):
        if not isinstance(side, Sym | int | float | str) or isinstance(side, Truth):
            raise NotGeneric(f"a comparison with {side}")
    if left == right:  # the same expression, whatever its value
        return op in ("==", "<=", ">=")
    return Compare(op, left, right)


def _choose(truth: Truth, then: Any, otherwise: Any) -> Any:
    if _integral(then) and _integral(otherwise):
        return _conditional(truth, then, otherwise)
    if type(then) is type(otherwise) and then == otherwise:
        return then
    raise NotGeneric("a conditional value that is not an integer")


_SYMBOLIC = _Symbolic()


def evaluate(
    expr: ir.Expr,
    env: Mapping[str, Any],
    values: Mapping[str, Shape] | None = None,
    channels: Value | None = None,
) -> Any:
    """The value of `expr` with `env`'s names bound, `values` the shapes of the named values in
    sight and `channels` what the statement receives, by the one evaluator of the language
    (`resolve.Resolver`): constants as the resolver makes them, arithmetic and conditions on
    expressions as `symbolic` expressions and `Truth`s."""
    _SYMBOLIC.values = {name: _Sized(shape) for name, shape in (values or {}).items()}
    _SYMBOLIC.channels = channels
    try:
        return _SYMBOLIC.evaluate(expr, dict(env))
    except Failed as failure:
        raise NotGeneric(failure.diagnostic.message) from None
    finally:
        _SYMBOLIC.values, _SYMBOLIC.channels = {}, None


def _convert(type_name: str, value: Any) -> Any:
    if _symbolic_value(value):
        # Passed on as written: an integer expression, or a parameter of the caller's own type.
        if isinstance(value, Truth) and type_name == "bool":
            return value
        if isinstance(value, Sym) and (type_name in ("int", "float") or isinstance(value, Var)):
            return value
        raise NotGeneric(f"an expression passed to a {type_name} parameter")
    try:
        return PARAM_TYPES[type_name](value) if type_name in PARAM_TYPES else value
    except BadValue:
        raise NotGeneric(f"{value!r} is not a {type_name}") from None


def bind(
    definition: ir.BlockDef,
    args: Sequence[ir.Arg],
    env: Mapping[str, Any],
    values: Mapping[str, Shape] | None = None,
    channels: Value | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A call's parameters, as the resolver binds them (defaults may use earlier parameters and
    `channels`, what the call receives), and the arguments it writes, by name."""
    order = [p.name for p in definition.params]
    given: dict[str, Any] = {}
    for index, arg in enumerate(args):
        name = arg.name if arg.name is not None else order[index]
        given[name] = evaluate(arg.value, env, values, channels)
    bound: dict[str, Any] = {}
    for param in definition.params:
        if param.name in given:
            given[param.name] = bound[param.name] = _convert(param.type_name, given[param.name])
        elif param.default is not None:
            default = evaluate(param.default, bound, channels=channels)
            bound[param.name] = _convert(param.type_name, default)
        else:
            raise NotGeneric(f"no value for '{param.name}'")
    return bound, given


def _representable(value: Any) -> bool:
    """Whether `value` can be written as a Python literal in a call."""
    if isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple):
        return all(_representable(v) for v in value)
    return False


def _fresh(base: str, taken: set[str]) -> str:
    name = base
    while name in taken:
        name += "_"
    taken.add(name)
    return name


# --- the layers' sizes over expressions -----------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    """The symbolic side of a layer whose class defines none: its output shapes from its inputs'
    (the value it receives, then those it reads by name), the arguments that may be expressions,
    and the values its constructor reads."""

    output: Callable[[dict[str, Any], list[Shape]], list[Shape]]
    args: tuple[str, ...] = ()
    needs: Callable[[dict[str, Any], list[Shape], list[Shape]], tuple[Any, ...]] = lambda a, i, o: ()


def _image(shape: Shape, op: str) -> Shape:
    if len(shape) != 3:
        raise NotGeneric(f"{op} on a sample that is no image")
    return shape


def _convtranspose(args: dict[str, Any], inputs: list[Shape]) -> list[Shape]:
    channels, *sizes = _image(inputs[0], "convtranspose")
    out = channels if args["out"] == "same" else args["out"]
    grown = []
    for axis, size in enumerate(sizes):
        stretched = sub(mul(sub(size, 1), args["stride"][axis]), mul(args["padding"][axis], 2))
        reach = mul(args["dilation"][axis], sub(args["kernel"][axis], 1))
        grown.append(add(add(stretched, reach), add(args["output_padding"][axis], 1)))
    return [(out, *grown)]


def _convtranspose_needs(args: dict[str, Any], inputs: list[Shape], outputs: list[Shape]) -> tuple[Any, ...]:
    pairs = (args[name] for name in ("kernel", "stride", "padding", "output_padding", "dilation"))
    return (inputs[0][0], outputs[0][0], *(v for pair in pairs for v in pair), args["groups"])


def _scaled(size: Value, scale: float) -> Value:
    """⌊size · scale⌋, PyTorch's upsampled size, for a scale that is a simple fraction."""
    ratio = Fraction(scale)
    if ratio.denominator > 64:
        raise NotGeneric(f"an upsample by {scale:g}, which no integer expression follows")
    return symbolic_floordiv(mul(size, ratio.numerator), ratio.denominator)


def _upsample(args: dict[str, Any], inputs: list[Shape]) -> list[Shape]:
    channels, height, width = _image(inputs[0], "upsample")
    return [(channels, _scaled(height, args["scale"][0]), _scaled(width, args["scale"][1]))]


def _like(args: dict[str, Any], inputs: list[Shape]) -> list[Shape]:
    """`padto(like)`, `resize(to)`: the height and width of a named value, or a given size."""
    channels = _image(inputs[0], "a resize")[0]
    target = args["to"] if "to" in args else args["like"]
    if not isinstance(target, TensorRef):
        return [(channels, target[0], target[1])]
    like = inputs[1]
    if len(like) < 2:
        raise NotGeneric(f"a resize to {target.name}, which has no height and width")
    return [(channels, like[-2], like[-1])]


def _pad(args: dict[str, Any], inputs: list[Shape]) -> list[Shape]:
    channels, height, width = _image(inputs[0], "pad")
    left, right, top, bottom = args["amount"]
    return [(channels, add(height, top + bottom), add(width, left + right))]


def _pixelshuffle(args: dict[str, Any], inputs: list[Shape]) -> list[Shape]:
    channels, height, width = _image(inputs[0], "pixelshuffle")
    r = args["factor"]
    return [(symbolic_floordiv(channels, r * r), mul(height, r), mul(width, r))]


def _pixelunshuffle(args: dict[str, Any], inputs: list[Shape]) -> list[Shape]:
    channels, height, width = _image(inputs[0], "pixelunshuffle")
    r = args["factor"]
    return [(mul(channels, r * r), symbolic_floordiv(height, r), symbolic_floordiv(width, r))]


def _first(args: dict[str, Any], inputs: list[Shape]) -> list[Shape]:
    """`add`, `mul`: the shape of what it receives (shape inference held the others to it)."""
    return [inputs[0]]


def _cat(args: dict[str, Any], inputs: list[Shape]) -> list[Shape]:
    channels: Value = functools.reduce(add, (shape[0] for shape in inputs))
    return [(channels, *inputs[0][1:])]


def _split(args: dict[str, Any], inputs: list[Shape]) -> list[Shape]:
    if args.get("dim", 1) != 1:
        raise NotGeneric("a split of an axis other than the channels")
    channels, *rest = inputs[0]
    sizes = args["sizes"]
    if isinstance(sizes, Sym):
        raise NotGeneric("a split into a number of parts that is a parameter")
    if isinstance(sizes, tuple):
        parts: list[Value] = list(sizes)
    elif isinstance(channels, int):
        parts = list(chunks(channels, sizes))
    else:
        # torch.chunk's shares: ⌈C/n⌉ each, the last what is left.
        share = symbolic_floordiv(add(channels, sizes - 1), sizes)
        parts = [share] * (sizes - 1) + [sub(channels, mul(share, sizes - 1))]
    return [(part, *rest) for part in parts]


#: Layers whose classes say nothing of their sizes over expressions (their `symbolic_output`
#: would keep the input's shape), or that read more values than one.
_RULES: dict[type[Layer], _Rule] = {
    ConvTranspose: _Rule(
        _convtranspose,
        ("out", "kernel", "stride", "padding", "output_padding", "dilation", "groups"),
        _convtranspose_needs,
    ),
    Upsample: _Rule(_upsample),
    Resize: _Rule(_like),
    PadTo: _Rule(_like),
    Pad: _Rule(_pad),
    PixelShuffle: _Rule(_pixelshuffle),
    PixelUnshuffle: _Rule(_pixelunshuffle),
    Add: _Rule(_first),
    Mul: _Rule(_first),
    Cat: _Rule(_cat),
    Split: _Rule(_split, ("sizes",)),
}


# --- what the analysis gives ----------------------------------------------------------------------


@dataclass(frozen=True)
class CallArgs:
    """How a class is called: the incoming channel count (None if the class takes none) and the
    keyword arguments."""

    channels: Value | None
    kwargs: dict[str, Any]

    def __repr__(self) -> str:
        return f"CallArgs({self.channels!r}, {self.kwargs!r})"


@dataclass
class Param:
    name: str
    type_name: str
    default: Any = None
    has_default: bool = False
    #: A default that uses earlier parameters, as an expression in them.
    computed: Value | None = None
    #: The tensor parameter whose channel count this parameter is (`skip_channels` of `skip`).
    tensor: str | None = None

    def is_default(self, value: Any, params: Mapping[str, Any]) -> bool:
        """Whether `value`, in a call binding `params`, is what the default would give."""
        if not self.has_default:
            return False
        default = self.default if self.computed is None else evaluate_value(self.computed, params)
        return type(default) is type(value) and default == value


@dataclass
class Generic:
    """A block written once: its body over symbolic shapes, and what its signature needs."""

    name: str
    input_name: str
    #: `__init__`'s parameters after the input's channel count.
    params: list[Param]
    #: The block's parameters as the spec declares them, tensors too.
    declared: list[Param]
    input: Shape
    #: Each tensor parameter's shape, in the order declared.
    tensors: dict[str, Shape]
    #: What it gives: one value, or several (`output a, b`).
    outputs: list[Shape]
    body: list[Shaped]
    uses_input: bool
    #: The block's calls in the models, as shaped (their `args` are the bound parameters).
    calls: list[Shaped] = field(default_factory=list)

    def channels_of(self, tensor: str) -> Param | None:
        """The parameter that takes a tensor parameter's channel count, if the class takes it."""
        return next((p for p in self.params if p.tensor == tensor), None)


def by_path(records: Sequence[Shaped]) -> dict[str, Shaped]:
    """The records of a generic body by module path: what `emit` writes each member from. The two
    builds of a member under an `if` are its `CHOICE` record's children, not its path's."""
    found: dict[str, Shaped] = {}
    stack = list(records)
    while stack:
        record = stack.pop()
        found[record.path] = record
        if record.kind != CHOICE:
            stack.extend(record.children)
    return found


class Analysis:
    """Every block call of the models with its parameters, and which blocks are generic.

    `programs` are the modules' programs (`graph.programs`), and `inline` says whether `emit`
    writes a composite statement's module where it is used (a sequence, a helper) rather than as a
    class of its own, which a generic class cannot call with its sizes."""

    def __init__(
        self,
        models: Sequence[ShapedModel],
        model_defs: Mapping[str, ir.ModelDef],
        blocks: Mapping[str, BlockEntry],
        reserved: Iterable[str] = (),
        programs: Mapping[GraphModule, Program] | None = None,
        inline: Callable[[GraphModule], bool] | None = None,
    ):
        self.reserved = _RESERVED | frozenset(reserved)
        self.calls: dict[str, list[Shaped]] = {}  # block → its calls, as shaped
        self.entries: dict[str, BlockEntry] = {}
        self.reasons: dict[str, str] = {}  # block → why it is not generic
        self._generic: dict[str, Generic | None] = {}
        self.enabled = True
        self.module_of: dict[int, GraphModule] = {}  # a call's record → its module
        found: dict[GraphModule, Program] = {}
        for model in models:
            self._collect(model.layers)
            if model.graph is not None:
                if programs is None:
                    found.update(programs_of(model.graph))
                for module in model.graph.modules():
                    if module.record is not None:
                        self.module_of[id(module.record)] = module
        self.programs: Mapping[GraphModule, Program] = programs if programs is not None else found
        self.inline = inline or (lambda module: is_chain(self.programs[module]))

    def _collect(self, nodes: Sequence[Shaped]) -> None:
        """Every block call, with its definition (and the scope it was resolved in); the values the
        resolver bound for the call come with the shaped node."""
        for node in nodes:
            if node.kind == "block" and node.block is not None:
                definition = node.block.definition
                if not node.spliced:  # a spliced call's members are its namespace's: no class
                    self.calls.setdefault(definition.name, []).append(node)
                self.entries[definition.name] = node.block
            self._collect(node.children)

    # --- queries ----------------------------------------------------------------------------------

    def generic(self, block: str) -> Generic | None:
        """The block as one class, or None (see `reasons`)."""
        if not self.enabled or block not in self.calls:
            return None
        if block not in self._generic:
            self._generic[block] = None
            try:
                self._generic[block] = self._analyse(block)
            except NotGeneric as reason:
                self.reasons[block] = str(reason)
        return self._generic[block]

    def call_args(self, node: Shaped, generic: Generic) -> CallArgs:
        """The arguments of a block call: symbolic where `node` is in a generic class's body,
        else the concrete values (those equal to their default left out)."""
        written = node.args.get(CALL)
        if isinstance(written, CallArgs):
            return written
        params = node.args
        values = {**params, generic.input_name: node.input[0]}
        kwargs = {}
        for param in generic.params:
            if param.tensor is not None:
                kwargs[param.name] = params[param.tensor].value.shape[0]
            elif not param.is_default(params[param.name], values):
                kwargs[param.name] = params[param.name]
        return CallArgs(node.input[0] if generic.uses_input else None, kwargs)

    # --- the analysis -----------------------------------------------------------------------------

    def _analyse(self, block: str) -> Generic:
        entry = self.entries[block]
        definition = entry.definition
        assert definition is not None
        calls = self.calls[block]
        rank = _one_rank([call.input for call in calls], "its input")
        input_name = "in_features" if rank == 1 else "in_channels"
        declared = [p.name for p in definition.params if p.type_name != "tensor"]
        taken = {*self.reserved, *(p.name for p in definition.params)}
        tensors: dict[str, Shape] = {}
        for param in definition.params:
            if param.type_name == "tensor":
                tensors[param.name] = _tensor_shape(param.name, calls, taken)
        params: list[Param] = []
        computed_reads_input = False
        for param in definition.params:
            if param.type_name == "tensor":
                params.append(Param(str(tensors[param.name][0]), "int", tensor=param.name))
                continue
            if param.name in self.reserved:
                raise NotGeneric(f"its parameter '{param.name}' is a name the generated code needs")
            if param.default is None:
                params.append(Param(param.name, param.type_name))
                continue
            if mentions(param.default, [*declared, CHANNELS_NAME]):
                # `p: int = k // 2`: None in the signature, computed first thing in `__init__`.
                earlier = {p.name: Var(p.name) for p in params if p.tensor is None}
                computed = _integer(evaluate(param.default, earlier, channels=Var(input_name)))
                if param.type_name != "int" or not isinstance(computed, Sym) or not known(computed):
                    raise NotGeneric(f"the default of '{param.name}' is not an integer expression")
                computed_reads_input |= input_name in names(computed)
                params.append(Param(param.name, param.type_name, None, True, computed))
                continue
            default = _convert(param.type_name, evaluate(param.default, {}))
            if not _representable(default):
                raise NotGeneric(f"the default of '{param.name}' is not a Python literal")
            params.append(Param(param.name, param.type_name, default, True))
        for call in calls:
            if not all(_representable(call.args[name]) for name in declared):
                raise NotGeneric("a call passes a value that is not a Python literal")
        env: dict[str, Any] = {name: Var(name) for name in declared}
        shape: Shape = (Var(input_name), *(Var(n) for n in _SPATIAL_NAMES.get(rank, ())))
        allowed = {input_name, *declared, *(str(s[0]) for s in tensors.values())}
        first: tuple[list[Shaped], list[Shape]] | None = None
        used: set[str] = {input_name} if computed_reads_input else set()
        signature: str | None = None
        seen: set[str] = set()
        for call in calls:
            key = repr((call.input, {k: getattr(v, "value", v) for k, v in call.args.items()}))
            if key in seen:
                continue
            seen.add(key)
            concrete = dict(zip((str(v) for v in shape), call.input, strict=True))
            concrete.update({name: call.args[name] for name in declared})
            for name, sizes in tensors.items():
                concrete.update(zip((str(v) for v in sizes), call.args[name].value.shape, strict=True))
            walk = _Walk(self, concrete, set(allowed), call.args)
            scope = _Scope(env, dict(tensors), entry.scope)
            body, outputs = walk.definition(definition.body, call.children, scope, shape)
            text = _signature(body) + repr(outputs)
            if signature is None:
                signature, first = text, (body, outputs)
            elif text != signature:
                raise NotGeneric("its calls build different layers")
            used |= walk.used
        assert first is not None
        body, outputs = first
        self._check_forward(calls, body)
        params = [p for p in params if p.tensor is None or p.name in used]
        declarations = [
            Param(p.name, "tensor")
            if p.type_name == "tensor"
            else next(q for q in params if q.name == p.name)
            for p in definition.params
        ]
        return Generic(
            block, input_name, params, declarations, shape, tensors, outputs, body, input_name in used, calls
        )

    def _check_forward(self, calls: Sequence[Shaped], body: list[Shaped]) -> None:
        """What `emit` writes from the first call's module holds for every call: each runs the same
        program on its values, and the composites inside are written where they are used."""
        module = self.module_of[id(calls[0])]
        overlay = by_path(body)
        # A repeat whose count is a parameter runs as many passes as its call says: one, written
        # once, for all.
        repeats = {
            path[len(module.prefix) :]
            for path, record in overlay.items()
            if record.kind == "repeat" and isinstance(record.args.get("count"), Sym)
        }
        if len({self._forward(call, repeats) for call in calls}) != 1:
            raise NotGeneric("its calls run different forwards")
        self._composites(module, overlay)

    def _forward(self, call: Shaped, repeats: set[str]) -> str:
        """The programs of a call's module and the composites in it (but those of `repeats`, by
        path in the module), with its values numbered."""
        module = self.module_of.get(id(call))
        if module is None:
            raise NotGeneric("a call builds no module of its own")
        numbers: dict[GraphValue, int] = {}

        def numbered(values: Iterable[GraphValue]) -> str:
            return ",".join(str(numbers.setdefault(v, len(numbers))) for v in values)

        lines = []
        pending = [module]
        while pending:
            current = pending.pop()
            program = self.programs[current]
            lines.append(f"{current.path[len(module.path) :]}({numbered(program.inputs)})")
            for step in program.steps:
                target = step.target
                if isinstance(target, GraphModule):
                    what = f"module {target.key}"
                elif target.member:
                    what = f"member {target.key}"
                else:
                    what = f"function {target.op}"
                lines.append(f"{what}({numbered(step.inputs)}) -> {numbered(step.outputs)}")
            lines.append(f"return {numbered(program.outputs)}")
            pending.extend(
                m
                for m in current.members.values()
                if isinstance(m, GraphModule)
                and not (m.record is not None and m.record.kind == "block")
                and m.path[len(module.prefix) :] not in repeats
            )
        return "\n".join(lines)

    def _composites(self, module: GraphModule, overlay: Mapping[str, Shaped]) -> None:
        for member in module.members.values():
            record = member.record if isinstance(member, GraphModule) else None
            if record is None or record.kind == "block":
                continue
            assert isinstance(member, GraphModule)
            symbolic = overlay.get(record.path)
            if (
                symbolic is not None
                and symbolic.kind == "repeat"
                and isinstance(symbolic.args.get("count"), Sym)
            ):
                # written as `nn.Sequential(*(pass for i in range(n)))`: its passes must run in turn
                if not is_chain(self.programs[member]):
                    raise NotGeneric("a repeat whose count is a parameter and whose passes read named values")
            elif not self.inline(member):
                raise NotGeneric(f"its {record.kind} needs a class of its own")
            self._composites(member, overlay)


def _one_rank(shapes: Iterable[tuple[int, ...]], what: str) -> int:
    ranks = {len(shape) for shape in shapes}
    if len(ranks) != 1:
        raise NotGeneric(f"it is called with {what} of different ranks")
    rank = ranks.pop()
    if not 1 <= rank <= 4:
        raise NotGeneric(f"{what} has rank {rank}")
    return rank


def _tensor_shape(name: str, calls: Sequence[Shaped], taken: set[str]) -> Shape:
    """A tensor parameter's shape: its own names for its sizes (`skip_channels`, `skip_H`,
    `skip_W`), none the block's parameters or the generated code use."""
    rank = _one_rank([call.args[name].value.shape for call in calls], f"'{name}'")
    if rank == 1:
        return (Var(_fresh(f"{name}_features", taken)),)
    axes = ("channels", *_SPATIAL_NAMES[rank])
    return tuple(Var(_fresh(f"{name}_{axis}", taken)) for axis in axes)


def _signature(nodes: Sequence[Shaped]) -> str:
    """What the code written for `nodes` depends on: equal signatures, equal code."""
    parts = []
    for node in nodes:
        parts.append(
            repr(
                (node.kind, node.op, node.key, node.label, sorted(node.args.items()), node.input, node.output)
            )
            + "{"
            + _signature(node.children)
            + "}"
        )
    return ";".join(parts)


@dataclass
class _Scope:
    """What a definition's body sees: its parameters (as expressions), the shapes of its named
    values so far (shared by the composites inside it, as elaboration's `Scope` is), and the
    blocks in sight where it is written."""

    env: Mapping[str, Any]
    values: dict[str, Shape]
    blocks: Mapping[str, BlockEntry]

    def named(self, name: str) -> Shape:
        shape = self.values.get(name)
        if shape is None:
            raise NotGeneric(f"it reads '{name}' where its shape is not followed")
        return shape


def _made_names(body: Sequence[ir.Stmt]) -> set[str]:
    """The names a body gives values (`as x`), in its composites too."""
    return {name for statement in nested_statements(body) for name in statement.binds or ()}


class _Walk:
    """One call of a block walked over its definition: symbolic shapes beside the shaped ones."""

    def __init__(
        self, analysis: Analysis, concrete: dict[str, Any], allowed: set[str], params: Mapping[str, Any]
    ):
        self.analysis = analysis
        self.concrete = concrete  # this call's values of every name the expressions use
        self.allowed = allowed
        self.params = params  # this call's parameters, of every type
        self.used: set[str] = set()

    def at(self, value: Any) -> Any:
        """`value` at this call."""
        if isinstance(value, list | tuple):
            return type(value)(self.at(v) for v in value)
        if isinstance(value, Sym | Truth):
            found = value.evaluate(self.concrete)
            if found is None:
                raise NotGeneric(f"{value} is not known at a call")
            return found
        return value

    def need(self, *values: Any) -> None:
        """Values the constructors take: they must be expressions in what `__init__` receives."""
        for value in values:
            leaves = value.leaves() if isinstance(value, Truth) else (value,)
            if not all(known(v) for v in leaves if _integral(v)) or not names(value) <= self.allowed:
                if isinstance(value, Truth):
                    raise NotGeneric(f"an `if` on {value}, which `__init__` does not receive")
                raise NotGeneric(f"a layer's construction needs {value}")
            self.used |= names(value)

    def check(self, shape: Shape, actual: tuple[int, ...], what: str) -> None:
        if len(shape) != len(actual):
            raise NotGeneric(f"{what}: rank {len(shape)}, but a call gives rank {len(actual)}")
        for symbolic, value in zip(shape, actual, strict=True):
            found = evaluate_value(symbolic, self.concrete)
            if found is not None and found != value:
                raise NotGeneric(f"{what}: {symbolic} is {found} at a call that gives {value}")

    def check_node(self, outputs: list[Shape], node: Shaped) -> None:
        """The shapes a statement gives, against those shape inference found at this call (each of
        a layer's; a block's first, its others made by statements of its own, checked there)."""
        actual = [v.shape for v in node.outputs] if isinstance(node, Node) else [node.output]
        if isinstance(node, Node) and len(actual) != len(outputs):
            raise NotGeneric(f"{node.op} gives {len(actual)} values at a call, not {len(outputs)}")
        for shape, found in zip(outputs, actual, strict=False):
            assert found is not None
            self.check(shape, found, node.op)

    # --- bodies -----------------------------------------------------------------------------------

    def definition(
        self, statements: Sequence[ir.Stmt], nodes: Sequence[Shaped], scope: _Scope, shape: Shape
    ) -> tuple[list[Shaped], list[Shape]]:
        """A body on its shaped records (a block's, a composite's): every record followed."""
        pending = iter(nodes)
        records, outputs = self.body(statements, pending, scope, [shape])
        if next(pending, None) is not None:
            raise NotGeneric("the shaped block does not follow its definition")
        return records, outputs

    def body(
        self, statements: Sequence[ir.Stmt], nodes: Iterator[Shaped], scope: _Scope, flow: list[Shape]
    ) -> tuple[list[Shaped], list[Shape]]:
        """The statements in order, each taking its records from `nodes` (an `if` those of the
        branch it runs); `flow` is what the last gave. Returns the records and what the body gives."""
        records: list[Shaped] = []
        given: list[Shape] | None = None
        for statement in statements:
            if isinstance(statement, ir.Train):
                continue
            if isinstance(statement, ir.Input):
                if statement.binds:
                    scope.values[statement.binds[0]] = _one(flow)
                continue
            if isinstance(statement, ir.Output):
                given = [scope.named(item.name) for item in statement.items]
                continue
            if isinstance(statement, ir.If):
                made, flow = self.conditional(statement, nodes, scope, flow)
                records.extend(made)
                continue
            node = next(nodes, None)
            if node is None:
                raise NotGeneric("the shaped block does not follow its definition")
            shape = scope.named(statement.source) if statement.source is not None else _one(flow)
            record, flow = self.statement(statement, node, scope, shape)
            if statement.binds:
                if len(statement.binds) != len(flow):
                    raise NotGeneric("a statement names its values differently at a call")
                scope.values.update(zip(statement.binds, flow, strict=True))
            records.append(record)
        return records, given if given is not None else flow

    def statement(
        self, statement: ir.Stmt, node: Shaped, scope: _Scope, shape: Shape
    ) -> tuple[Shaped, list[Shape]]:
        if statement.splice:
            raise NotGeneric("a spliced statement")
        if statement.label_parts is not None:
            raise NotGeneric("a name computed from its parameters")
        if isinstance(statement, ir.Call):
            if node.op != statement.op:
                raise NotGeneric("the shaped block does not follow its definition")
            if statement.op in layers.LAYERS:
                return self.layer(statement, node, scope, shape)
            return self.block_call(statement, node, scope, shape)
        if node.kind != statement.kind:
            raise NotGeneric("the shaped block does not follow its definition")
        if isinstance(statement, ir.Repeat):
            record = self.repeat(statement, node, scope, shape)
        elif isinstance(statement, ir.Concat):
            record = self.concat(statement, node, scope, shape)
        elif isinstance(statement, ir.Residual):
            record = self.residual(statement, node, scope, shape)
        elif isinstance(statement, ir.Group):
            children, given = self.definition(statement.body, node.children, scope, shape)
            record = _symbolic(node, input=shape, output=given[0], children=children)
            self.check(record.output, node.output, node.op)
            return record, given
        elif isinstance(statement, ir.Gate):
            children, _ = self.definition(statement.body, node.children, scope, shape)
            record = _symbolic(node, input=shape, output=shape, children=children)
        else:
            raise NotGeneric(f"a {statement.kind} statement")
        self.check(record.output, node.output, node.op)
        return record, [record.output]

    # --- layers -----------------------------------------------------------------------------------

    def layer(
        self, statement: ir.Call, node: Shaped, scope: _Scope, shape: Shape
    ) -> tuple[Shaped, list[Shape]]:
        spec = layers.LAYERS[statement.op]
        inputs, args = self.layer_args(spec, statement, scope, shape)
        self.matches(statement.op, args, node)
        outputs = self.outputs(spec, args, inputs)
        self.check_node(outputs, node)
        values = [GraphValue(output) for output in outputs]  # type: ignore[arg-type]
        record = _symbolic(node, input=inputs[0], output=outputs[0], args=args, outputs=values)
        self.needs(spec, args, inputs, outputs)
        if not spec.member:
            # What `forward` reads beyond its tensors (split's sizes), `__init__` keeps on the module.
            function = spec.function(record)
            self.need(*symbols([*function.args, *function.kwargs.values()]))
        return record, outputs

    def layer_args(
        self, spec: Layer, statement: ir.Call, scope: _Scope, shape: Shape
    ) -> tuple[list[Shape], dict[str, Any]]:
        """The layer's inputs' shapes (what it receives, then what it reads by name) and its
        arguments, bound as elaboration binds them; those that depend on the block's parameters or
        sizes are expressions."""
        op = statement.op
        axis = spec.channel_axis
        channels = shape[axis] if -len(shape) <= axis < len(shape) else None
        order = [a.name for a in spec.args]
        arguments: list[tuple[str | None, Any, Any]] = []
        expressions: dict[str, Any] = {}
        for index, arg in enumerate(statement.args):
            name = arg.name or spec.variadic or (order[index] if index < len(order) else None)
            if name is None:
                raise NotGeneric(f"{op} takes no argument {index + 1}")
            if name == "in":
                raise NotGeneric(f"{op} asserts its input size (in=)")
            value = evaluate(arg.value, scope.env, scope.values, channels)
            if _has_symbols(value):
                if name == spec.variadic:
                    raise NotGeneric(f"{op} {name} depends on a parameter")
                expressions[name] = value
                value = NOT_KNOWN  # bound below, as an expression
            arguments.append((arg.name, value, arg.span))
        try:
            args, _ = _SYMBOLIC.bind(spec, arguments, statement.span, {})
        except Failed as failure:
            raise NotGeneric(failure.diagnostic.message) from None
        finally:
            _SYMBOLIC.diagnostics.clear()
        rule = _RULES.get(type(spec))
        symbolic_args = rule.args if rule is not None else spec.symbolic_args
        for name, value in expressions.items():
            if name in spec.passed_args:
                if not isinstance(value, Var) or value.name not in self.params:
                    raise NotGeneric(f"{op} {name} is an expression")
                args[name] = value
            elif name in symbolic_args:
                args[name] = _normalised(name, value, op, len(shape) - 1)
            else:
                raise NotGeneric(f"{op} {name} depends on a parameter")
        axes = len(shape) - 1
        for name in spec.per_axis:
            # One size per spatial axis, as shape inference spreads them (`sizes.spread`).
            value = args.get(name)
            if name in expressions or not 1 <= axes <= 3:
                continue
            if isinstance(value, int) and not isinstance(value, bool):
                args[name] = (value,) * axes
            elif isinstance(value, tuple) and len(value) != axes:
                raise NotGeneric(f"{op} {name} is not one size per axis")
        reads = tensor_refs(args) if spec.reads_values else []
        return [shape, *(ref.value.shape for ref in reads)], args

    def matches(self, op: str, args: Mapping[str, Any], node: Shaped) -> None:
        """The arguments at this call are those elaboration bound."""
        for name, value in args.items():
            actual = node.args.get(name)
            if isinstance(value, TensorRef) or (isinstance(value, tuple) and tensor_refs({name: value})):
                continue
            found = self.at(value)
            if not _same(found, actual):
                changes = "changes type" if found == actual else "evaluates differently"
                raise NotGeneric(f"{op} {name} {changes}")

    @staticmethod
    def outputs(spec: Layer, args: dict[str, Any], inputs: list[Shape]) -> list[Shape]:
        rule = _RULES.get(type(spec))
        if rule is not None:
            return rule.output(args, inputs)
        return [spec.symbolic_output(args, inputs[0])]

    def needs(self, spec: Layer, args: dict[str, Any], inputs: list[Shape], outputs: list[Shape]) -> None:
        rule = _RULES.get(type(spec))
        if rule is not None:
            self.need(*rule.needs(args, inputs, outputs))
        else:
            self.need(*spec.needs(args, inputs[0], outputs[0]))

    def unbuilt(self, statement: ir.Call, scope: _Scope, shape: Shape, like: Shaped) -> Shaped:
        """A layer of the branch of an `if` that no shaped record follows here: bound from its
        statement as elaboration would bind it, named as `like`, the member the other branch
        builds, and held to its shape rule at this call's values, where that runs."""
        spec = layers.LAYERS[statement.op]
        inputs, args = self.layer_args(spec, statement, scope, shape)
        outputs = self.outputs(spec, args, inputs)
        self.needs(spec, args, inputs, outputs)
        try:
            concrete = [tuple(self.at(size) for size in sizes) for sizes in (*inputs, *outputs)]
        except NotGeneric:
            concrete = []  # a size no expression follows: nothing to hold it to
        if concrete:
            probe = Node(
                "layer",
                spec.name,
                like.key,
                like.path,
                like.label,
                statement.span,
                concrete[0],
                (),
                0,
                0,
                {name: self.at(value) for name, value in args.items()},
                inputs=tuple(GraphValue(sizes) for sizes in concrete[: len(inputs)]),
            )
            try:
                outcome = spec.shape(probe, concrete[0])
            except Failed:
                pass  # it cannot run at this call's values: the spec would refuse it here too
            else:
                if [outcome.output, *outcome.more] != concrete[len(inputs) :]:
                    raise NotGeneric(f"{spec.name}'s sizes do not follow its shape rule")
        return _record("layer", spec.name, like, statement.span, inputs[0], outputs[0], args)

    # --- `if` ----------------------------------------------------------------------------------------

    def conditional(
        self, statement: ir.If, nodes: Iterator[Shaped], scope: _Scope, flow: list[Shape]
    ) -> tuple[list[Shaped], list[Shape]]:
        """An `if`: the branch it runs, where its condition is a constant; else, where both branches
        build the same members (so `forward` runs them alike), each member built one way or the
        other (`CHOICE`), a Python `if` in `__init__`."""
        shape = flow[0] if len(flow) == 1 else None
        condition = evaluate(
            statement.condition, scope.env, scope.values, None if shape is None else shape[0]
        )
        if isinstance(condition, bool):
            return self.body(statement.body if condition else statement.orelse, nodes, scope, flow)
        truth = _truth(condition)
        holds = truth.evaluate(self.concrete)
        if holds is None:
            raise NotGeneric(f"the `if` on {truth} is not decided at a call")
        if shape is None:
            raise NotGeneric("an `if` after a statement that gives several values")
        pairs = _members_alike(statement)
        sides: tuple[list[Shaped], list[Shaped]] = ([], [])  # then, otherwise
        then_shape = otherwise_shape = shape
        for then, otherwise in pairs:
            node = next(nodes, None)
            if node is None:
                raise NotGeneric("the shaped block does not follow its definition")
            if holds:
                built, _ = self.layer(then, node, scope, then_shape)
                other = self.unbuilt(otherwise, scope, otherwise_shape, node)
                pair = (built, other)
            else:
                built, _ = self.layer(otherwise, node, scope, otherwise_shape)
                other = self.unbuilt(then, scope, then_shape, node)
                pair = (other, built)
            sides[0].append(pair[0])
            sides[1].append(pair[1])
            then_shape, otherwise_shape = pair[0].output, pair[1].output
        if _signature(sides[0]) == _signature(sides[1]):
            return sides[0 if holds else 1], [then_shape]  # both build the same: no `if` to write
        self.need(truth)
        records = [
            _record(
                CHOICE,
                "if",
                then,
                statement.span,
                _merge(truth, then.input, otherwise.input),
                _merge(truth, then.output, otherwise.output),
                {"condition": truth, "at": statement.span},
                [then, otherwise],
            )
            for then, otherwise in zip(*sides, strict=True)
        ]
        return records, [_merge(truth, then_shape, otherwise_shape)]

    # --- block calls --------------------------------------------------------------------------------

    def block_call(
        self, statement: ir.Call, node: Shaped, scope: _Scope, shape: Shape
    ) -> tuple[Shaped, list[Shape]]:
        entry = scope.blocks[statement.op]
        definition = entry.definition
        assert definition is not None
        callee = self.analysis.generic(definition.name)
        if callee is None:
            raise NotGeneric(f"it calls {definition.name}, which is not generic")
        bound, given = bind(definition, statement.args, scope.env, scope.values, shape[0] if shape else None)
        # The callee's body, walked here with its parameters bound to this block's expressions,
        # gives the call's outputs in this block's terms (and checks them at this call's values).
        env = {name: v for name, v in bound.items() if not isinstance(v, TensorRef)}
        values = {name: v.value.shape for name, v in bound.items() if isinstance(v, TensorRef)}
        _, outputs = self.definition(definition.body, node.children, _Scope(env, values, entry.scope), shape)
        self.check_node(outputs, node)
        channels = shape[0] if callee.uses_input else None
        if channels is not None:
            self.need(channels)
        kwargs: dict[str, Any] = {}
        for name, value in given.items():
            if isinstance(value, TensorRef):
                # a tensor is `forward`'s; the class may take its channel count
                param = callee.channels_of(name)
                if param is None:
                    continue
                name, value = param.name, value.value.shape[0]
            if _symbolic_value(value):
                self.need(value)
            kwargs[name] = value
        record = _symbolic(
            node, input=shape, output=outputs[0], args={CALL: CallArgs(channels, kwargs)}, children=[]
        )
        return record, outputs

    # --- composites -----------------------------------------------------------------------------------

    def concat(self, statement: ir.Concat, node: Shaped, scope: _Scope, shape: Shape) -> Shaped:
        if statement.args:
            raise NotGeneric("a concat that splits its input")
        branches, outputs = [], []
        for branch, shaped in zip(statement.branches, node.children, strict=True):
            children, given = self.definition(branch.body, shaped.children, scope, shape)
            output = _one(given)
            branches.append(_symbolic(shaped, input=shape, output=output, children=children))
            outputs.append(output)
        channels: Value = functools.reduce(add, (output[0] for output in outputs))
        return _symbolic(node, input=shape, output=(channels, *outputs[0][1:]), children=branches)

    def repeat(self, statement: ir.Repeat, node: Shaped, scope: _Scope, shape: Shape) -> Shaped:
        if statement.index is not None:
            raise NotGeneric("a repeat whose passes read their index")
        count = evaluate(statement.count, scope.env, scope.values, shape[0] if shape else None)
        if not isinstance(count, int):
            return self.repeat_parameter(statement, node, scope, shape, _integer(count))
        passes = []
        current = shape
        for iteration in node.children:
            children, given = self.definition(statement.body, iteration.children, scope, current)
            output = _one(given)
            passes.append(_symbolic(iteration, input=current, output=output, children=children))
            current = output
        return _symbolic(node, input=shape, output=current, children=passes)

    def repeat_parameter(
        self, statement: ir.Repeat, node: Shaped, scope: _Scope, shape: Shape, count: Value
    ) -> Shaped:
        """`repeat n { … }` as `nn.Sequential(*(pass for i in range(n)))`: one pass written once,
        its input `in_channels if i == 0 else width` when the first pass changes the channels and
        every later one keeps them. Its sizes after the first pass are `?` unless the pass keeps
        them, so nothing may be built from them; the values it names are not followed after it
        (no pass may run)."""
        self.need(count)
        if not node.children:
            raise NotGeneric("a repeat whose count is a parameter runs no pass at some call")
        _, given = self.definition(statement.body, node.children[0].children, scope, shape)
        after = _one(given)
        if len(after) != len(shape):
            raise NotGeneric("a repeated pass changes the rank")
        loop = next(
            n for n in ("i", "j", "index", "step", "pass_") if n not in scope.env and n not in self.allowed
        )
        channels = shape[0] if after[0] == shape[0] else choice(Var(loop), shape[0], after[0])
        keeps_sizes = after[1:] == shape[1:]
        incoming: Shape = (channels, *(shape[1:] if keeps_sizes else (UNKNOWN,) * (len(shape) - 1)))
        used, self.used = self.used, set()
        self.allowed.add(loop)
        template: list[Shaped] = []
        signature = None
        try:
            for index, iteration in enumerate(node.children):
                self.concrete[loop] = index
                children, given = self.definition(statement.body, iteration.children, scope, incoming)
                output = _one(given)
                if output[0] != after[0] or (keeps_sizes and output[1:] != after[1:]):
                    raise NotGeneric("a repeated pass does not keep what it makes")
                # Each pass's members are numbered on from the last pass's: compare them by place.
                text = _signature([_placed(c, j) for j, c in enumerate(children)])
                if signature is None:
                    template, signature = children, text
                elif text != signature:
                    raise NotGeneric("the passes of a repeat build different layers")
        finally:
            self.concrete.pop(loop, None)
            self.allowed.discard(loop)
            inner, self.used = self.used, used
        for name in _made_names(statement.body):
            scope.values.pop(name, None)
        self.used |= inner - {loop}
        output = (
            choice(count, shape[0], after[0]),
            *(shape[1:] if keeps_sizes else (UNKNOWN,) * (len(shape) - 1)),
        )
        one = _symbolic(node.children[0], input=incoming, output=after, children=template)
        args = {"count": count, "loop": loop if loop in inner else "_"}
        return _symbolic(node, input=shape, output=output, args=args, children=[one])

    def residual(self, statement: ir.Residual, node: Shaped, scope: _Scope, shape: Shape) -> Shaped:
        if any(mentions(arg.value, [*scope.env, *scope.values, CHANNELS_NAME]) for arg in statement.args):
            raise NotGeneric("a residual's arguments depend on a parameter")
        if statement.shortcut is not None:
            raise NotGeneric("a residual whose shortcut is written out")
        projected = node.args.get("shortcut") == "project"
        body_nodes = node.children[:-1] if projected else node.children
        children, given = self.definition(statement.body, body_nodes, scope, shape)
        output = _one(given)
        if projected:
            projection = node.children[-1]
            conv = projection.children[0] if projection.children else projection
            if conv.op == "conv" and not any(a.name == "stride" for a in statement.args):
                # The builder takes the smallest stride that maps the input's size to the body's:
                # the same for every size only when the body's map is a stride-1 or -2 one's.
                for axis in (1, 2):
                    stride = conv.args["stride"][axis - 1]
                    mapped = window(shape[axis], 1, stride, 0)
                    if stride > 2 or not known(output[axis]) or mapped != output[axis]:
                        raise NotGeneric("the shortcut's stride depends on the input's size")
            self.need(shape[0], output[0])
            symbolic_conv = _symbolic(conv, input=shape, output=output, args={**conv.args, "out": output[0]})
            if projection.children:
                norm = _symbolic(projection.children[1], input=output, output=output)
                symbolic_conv = _symbolic(
                    projection, input=shape, output=output, children=[symbolic_conv, norm]
                )
            children.append(symbolic_conv)
        return _symbolic(node, input=shape, output=output, children=children)


def _placed(record: Shaped, place: int) -> Shaped:
    """`record` keyed by its place, as a pass's are compared (a `CHOICE`'s builds with it)."""
    children = (
        [replace(c, key=str(place)) for c in record.children] if record.kind == CHOICE else record.children
    )
    return replace(record, key=str(place), children=children)


def _one(flow: list[Shape]) -> Shape:
    if len(flow) != 1:
        raise NotGeneric("a statement reads one of several values without naming it")
    return flow[0]


def _normalised(name: str, value: Any, op: str, axes: int) -> Any:
    """An argument that is an expression, as the layer's own values are: one integer per spatial
    axis (of `axes`) for a window's sizes, a tuple of integers for a list, else an integer."""
    if name in _PAIRS:
        items = value if isinstance(value, list) else [value] * axes
        if len(items) != axes:
            raise NotGeneric(f"{op} {name} is not one size per axis")
        return tuple(_integer(item) for item in items)
    if isinstance(value, list):
        return tuple(_integer(v) for v in value)
    return _integer(value)


def _same(found: Any, actual: Any) -> bool:
    if isinstance(found, list | tuple) and isinstance(actual, list | tuple):
        return len(found) == len(actual) and all(_same(f, a) for f, a in zip(found, actual, strict=True))
    if type(found) is not type(actual) and not {type(found), type(actual)} <= {int, float}:
        return False
    return bool(found == actual)


def _merge(truth: Truth, then: Shape, otherwise: Shape) -> Shape:
    if len(then) != len(otherwise):
        raise NotGeneric("the branches of an `if` give different ranks")
    return tuple(_conditional(truth, a, b) for a, b in zip(then, otherwise, strict=True))


def _members_alike(statement: ir.If) -> list[tuple[ir.Call, ir.Call]]:
    """The branches' statements pairwise, where each builds a layer of the same name on what the
    one before it gave, so `forward` is the same whichever branch is built."""
    then, otherwise = statement.body, statement.orelse
    if not then or len(then) != len(otherwise):
        raise NotGeneric("an `if` on its parameters whose branches run different forwards")
    pairs = []
    for first, second in zip(then, otherwise, strict=True):
        for one in (first, second):
            spec = layers.LAYERS.get(one.op) if isinstance(one, ir.Call) else None
            plain = spec is not None and not (
                one.splice or one.source is not None or one.binds or one.label_parts
            )
            if not plain or spec is None or not spec.member or type(spec).parameter is not Layer.parameter:
                raise NotGeneric("an `if` on its parameters whose branches run different forwards")
        if first.label != second.label:
            raise NotGeneric("an `if` on its parameters whose branches name their members differently")
        assert isinstance(first, ir.Call) and isinstance(second, ir.Call)
        pairs.append((first, second))
    return pairs
