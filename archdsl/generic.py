"""The symbolic pass over block definitions that lets `emit` write one class per block.

Consumes the shaped models with the IR of their blocks (the definitions, arguments still
expressions); produces, for each block that can be written generically, a `Generic`: its body as
`Shaped` nodes whose channel counts and sizes are `symbolic` expressions in `in_channels` (or
`in_features`), the block's parameters and the input's `H` and `W`.

Generality is proved, never guessed. A block is generic only when everything its construction needs
is an expression in its input channels and integer parameters, every call gives its input the same
rank, and, for every call in the spec, the expressions evaluated at that call's values equal the
shapes that shape inference found. Otherwise `NotGeneric` says why and emit writes a class per
distinct instance instead.
"""

from __future__ import annotations

import functools
import keyword
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from . import ir, layers
from .layers import NotSymbolic
from .errors import Failed
from .resolve import PARAM_TYPES, BlockEntry, Resolver, mentions
from .shapes import Shaped, ShapedModel
from .symbolic import UNKNOWN, Sym, Value, Var, add, choice, known, mul, names, sub, window
from .symbolic import evaluate as evaluate_value
from .symbolic import floordiv as symbolic_floordiv
from .values import BadValue, Symbol

#: Why a block cannot be one class for all its calls (a layer's `NotSymbolic` is one such reason).
NotGeneric = NotSymbolic


_PAIRS = frozenset({"kernel", "stride", "padding", "dilation"})
#: The `args` key of a block call in a generic class's body: how it calls the block's class.
CALL = "call"
_SPATIAL_NAMES = ("H", "W")
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
    *_SPATIAL_NAMES,
}

Shape = tuple[Value, ...]


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
    params: list[Param]
    input: Shape
    output: Shape
    body: list[Shaped]
    uses_input: bool
    #: The block's calls in the models, as shaped (their `args` are the bound parameters).
    calls: list[Shaped] = field(default_factory=list)


def _symbolic(node: Shaped, **changes: Any) -> Shaped:
    """A copy of `node` whose sizes (`input`, `output`) and arguments may be expressions: a
    `Shaped` in all but the type of its sizes, which only `emit` reads."""
    return replace(node, **changes)


def _integer(value: Any) -> Value:
    if isinstance(value, Sym) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise NotGeneric(f"{value!r} is not an integer")


class _Symbolic(Resolver):
    """The resolver's evaluator over symbolic values: a block's parameters and its input's size are
    `Var`s, and integer arithmetic on them builds `symbolic` expressions. What cannot be written
    over them (a true division, a comparison or condition on one) is `NotGeneric`."""

    def __init__(self) -> None:
        super().__init__({})

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


_SYMBOLIC = _Symbolic()


def evaluate(expr: ir.Expr, env: Mapping[str, Any]) -> Any:
    """The value of `expr` with `env`'s names bound, by the one evaluator of the language
    (`resolve.Resolver`): constants as the resolver makes them, integer arithmetic on
    expressions as `symbolic` expressions."""
    try:
        return _SYMBOLIC.evaluate(expr, dict(env))
    except Failed as failure:
        raise NotGeneric(failure.diagnostic.message) from None


def _convert(type_name: str, value: Any) -> Any:
    if isinstance(value, Sym):
        if type_name != "int":
            raise NotGeneric(f"an expression passed to a {type_name} parameter")
        return value
    try:
        return PARAM_TYPES[type_name](value) if type_name in PARAM_TYPES else value
    except BadValue:
        raise NotGeneric(f"{value!r} is not a {type_name}") from None


def bind(
    definition: ir.BlockDef, args: Sequence[ir.Arg], env: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A call's parameters, as the resolver binds them (defaults may use earlier parameters), and
    the arguments it writes, by name."""
    order = [p.name for p in definition.params]
    given: dict[str, Any] = {}
    for index, arg in enumerate(args):
        name = arg.name if arg.name is not None else order[index]
        given[name] = evaluate(arg.value, env)
    bound: dict[str, Any] = {}
    for param in definition.params:
        if param.name in given:
            given[param.name] = bound[param.name] = _convert(param.type_name, given[param.name])
        elif param.default is not None:
            bound[param.name] = _convert(param.type_name, evaluate(param.default, bound))
        else:
            raise NotGeneric(f"no value for '{param.name}'")
    return bound, given


def _statements(body: Sequence[ir.Stmt]) -> list[ir.Stmt]:
    return [s for s in body if not isinstance(s, ir.Input | ir.Train | ir.Output)]


def _representable(value: Any) -> bool:
    """Whether `value` can be written as a Python literal in a call."""
    if isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple):
        return all(_representable(v) for v in value)
    return False


class Analysis:
    """Every block call of the models with its parameters, and which blocks are generic."""

    def __init__(
        self,
        models: Sequence[ShapedModel],
        model_defs: Mapping[str, ir.ModelDef],
        blocks: Mapping[str, BlockEntry],
        reserved: Iterable[str] = (),
    ):
        self.reserved = _RESERVED | frozenset(reserved)
        self.calls: dict[str, list[Shaped]] = {}  # block → its calls, as shaped
        self.entries: dict[str, BlockEntry] = {}
        self.reasons: dict[str, str] = {}  # block → why it is not generic
        self._generic: dict[str, Generic | None] = {}
        self.enabled = True
        for model in models:
            self._collect(model.layers)

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
        kwargs = {p.name: params[p.name] for p in generic.params if not p.is_default(params[p.name], params)}
        return CallArgs(node.input[0] if generic.uses_input else None, kwargs)

    # --- the analysis -----------------------------------------------------------------------------

    def _analyse(self, block: str) -> Generic:
        entry = self.entries[block]
        definition = entry.definition
        assert definition is not None
        calls = self.calls[block]
        ranks = {len(call.input) for call in calls}
        if len(ranks) != 1:
            raise NotGeneric("it is called on inputs of different ranks")
        rank = ranks.pop()
        if rank not in (1, 3):
            raise NotGeneric(f"its input has rank {rank}")
        input_name = "in_channels" if rank == 3 else "in_features"
        params = []
        declared = [p.name for p in definition.params]
        for param in definition.params:
            if param.type_name == "tensor":
                raise NotGeneric(f"its parameter '{param.name}' is a tensor")
            if param.name in self.reserved:
                raise NotGeneric(f"its parameter '{param.name}' is a name the generated code needs")
            if param.default is None:
                params.append(Param(param.name, param.type_name))
                continue
            if mentions(param.default, declared):
                # `p: int = k // 2`: None in the signature, computed first thing in `__init__`.
                earlier = {p.name: Var(p.name) for p in params}
                computed = _integer(evaluate(param.default, earlier))
                if param.type_name != "int" or not isinstance(computed, Sym) or not known(computed):
                    raise NotGeneric(f"the default of '{param.name}' is not an integer expression")
                params.append(Param(param.name, param.type_name, None, True, computed))
                continue
            default = _convert(param.type_name, evaluate(param.default, {}))
            if not _representable(default):
                raise NotGeneric(f"the default of '{param.name}' is not a Python literal")
            params.append(Param(param.name, param.type_name, default, True))
        for call in calls:
            if not all(_representable(v) for v in call.args.values()):
                raise NotGeneric("a call passes a value that is not a Python literal")
        integers = {p.name for p in definition.params if p.type_name == "int"}
        env: dict[str, Any] = {name: Var(name) for name in declared}
        shape: Shape = (Var(input_name), Var("H"), Var("W")) if rank == 3 else (Var(input_name),)
        first: tuple[list[Shaped], Shape, set[str]] | None = None
        signature: str | None = None
        seen: set[str] = set()
        for call in calls:
            key = repr((call.input, call.args))
            if key in seen:
                continue
            seen.add(key)
            concrete = {input_name: call.input[0]}
            if rank == 3:
                concrete.update(H=call.input[1], W=call.input[2])
            concrete.update({k: v for k, v in call.args.items() if k in integers})
            walk = _Walk(self, concrete, {input_name} | integers, call.args)
            body, output = walk.body(definition.body, call.children, env, entry.scope, shape)
            text = _signature(body) + repr(output)
            if signature is None:
                signature, first = text, (body, output, walk.used)
            elif text != signature:
                raise NotGeneric("its calls build different layers")
        assert first is not None
        body, output, used = first
        return Generic(block, input_name, params, shape, output, body, input_name in used, calls)


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


class _Walk:
    """One call of a block walked over its definition: symbolic shapes beside the shaped ones."""

    def __init__(
        self, analysis: Analysis, concrete: dict[str, int], allowed: set[str], params: Mapping[str, Any]
    ):
        self.analysis = analysis
        self.concrete = concrete
        self.allowed = allowed
        self.params = params  # this call's parameters, of every type
        self.used: set[str] = set()

    def passed(self, value: Any, actual: Any, what: str) -> Any:
        """A parameter passed straight to a layer: the block's own, or a constant."""
        if isinstance(value, Sym):
            if not isinstance(value, Var) or value.name not in self.params:
                raise NotGeneric(f"{what} is an expression")
            found = self.params[value.name]
        else:
            found = value
        if type(found) is not type(actual) and not {type(found), type(actual)} <= {int, float}:
            raise NotGeneric(f"{what} changes type")
        if found != actual:
            raise NotGeneric(f"{what} evaluates differently")
        return value

    def need(self, *values: Value) -> None:
        """Values the constructors take: they must be expressions in what `__init__` receives."""
        for value in values:
            if not known(value) or not names(value) <= self.allowed:
                raise NotGeneric(f"a layer's construction needs {value}")
            self.used |= names(value)

    def check(self, shape: Shape, actual: tuple[int, ...], what: str) -> None:
        if len(shape) != len(actual):
            raise NotGeneric(f"{what}: rank {len(shape)}, but a call gives rank {len(actual)}")
        for symbolic, value in zip(shape, actual, strict=True):
            found = evaluate_value(symbolic, self.concrete)
            if found is not None and found != value:
                raise NotGeneric(f"{what}: {symbolic} is {found} at a call that gives {value}")

    def body(
        self,
        statements: Sequence[ir.Stmt],
        nodes: Sequence[Shaped],
        env: Mapping[str, Any],
        scope: Mapping[str, BlockEntry],
        shape: Shape,
    ) -> tuple[list[Shaped], Shape]:
        statements = _statements(statements)
        if len(statements) != len(nodes):
            raise NotGeneric("the shaped block does not follow its definition")
        result = []
        for statement, node in zip(statements, nodes, strict=True):
            symbolic = self.statement(statement, node, env, scope, shape)
            self.check(symbolic.output, node.output, node.op)
            result.append(symbolic)
            shape = symbolic.output
        return result, shape

    def statement(
        self,
        statement: ir.Stmt,
        node: Shaped,
        env: Mapping[str, Any],
        scope: Mapping[str, BlockEntry],
        shape: Shape,
    ) -> Shaped:
        # What the symbolic walk does not follow yet: the block gets a class per distinct call.
        if statement.splice:
            raise NotGeneric("a spliced statement")
        if isinstance(statement, ir.If):
            raise NotGeneric("a conditional")
        if statement.source is not None or statement.binds:
            raise NotGeneric("a statement that reads or names a value")
        if statement.label_parts is not None:
            raise NotGeneric("a name computed from its parameters")
        if isinstance(statement, ir.Call):
            if statement.op in layers.LAYERS:
                return self.layer(statement, node, env, shape)
            return self.block_call(statement, node, env, scope, shape)
        if isinstance(statement, ir.Repeat):
            return self.repeat(statement, node, env, scope, shape)
        if isinstance(statement, ir.Concat):
            if statement.args:
                raise NotGeneric("a concat that splits its input")
            branches, outputs = [], []
            for branch, shaped in zip(statement.branches, node.children, strict=True):
                children, output = self.body(branch.body, shaped.children, env, scope, shape)
                branches.append(_symbolic(shaped, input=shape, output=output, children=children))
                outputs.append(output)
            channels: Value = functools.reduce(add, (output[0] for output in outputs))
            return _symbolic(node, input=shape, output=(channels, *outputs[0][1:]), children=branches)
        if isinstance(statement, ir.Residual):
            return self.residual(statement, node, env, scope, shape)
        if isinstance(statement, ir.Group):
            children, output = self.body(statement.body, node.children, env, scope, shape)
            return _symbolic(node, input=shape, output=output, children=children)
        if isinstance(statement, ir.Gate):
            children, _ = self.body(statement.body, node.children, env, scope, shape)
            return _symbolic(node, input=shape, output=shape, children=children)
        raise NotGeneric(f"a {statement.kind} statement")

    def layer(self, statement: ir.Call, node: Shaped, env: Mapping[str, Any], shape: Shape) -> Shaped:
        op = statement.op
        spec = layers.LAYERS[op]
        order = [a.name for a in spec.args]
        args = dict(node.args)
        for index, arg in enumerate(statement.args):
            name = arg.name if arg.name is not None else (spec.variadic or order[index])
            if name == "in":
                raise NotGeneric(f"{op} asserts its input size (in=)")
            if not mentions(arg.value, env):
                continue  # a constant: the same at every call, as shape inference normalised it
            if name in spec.passed_args and arg.value.kind == "name":
                args[name] = self.passed(env[arg.value.name], node.args[name], f"{op} {name}")
                continue
            if name not in spec.symbolic_args:
                raise NotGeneric(f"{op} {name} depends on a parameter")
            value = evaluate(arg.value, env)
            if name in _PAIRS:
                items = value if isinstance(value, list) else [value, value]
                if len(items) != 2:
                    raise NotGeneric(f"{op} {name} is not a pair")
                value = (_integer(items[0]), _integer(items[1]))
                if tuple(evaluate_value(v, self.concrete) for v in value) != tuple(node.args[name]):
                    raise NotGeneric(f"{op} {name} evaluates differently")
            else:
                value = _integer(value)
                expected = node.output[0] if name == "out" else node.args[name]
                if evaluate_value(value, self.concrete) != expected:
                    raise NotGeneric(f"{op} {name} evaluates differently")
            args[name] = value
        output = spec.symbolic_output(args, shape)
        self.need(*spec.needs(args, shape, output))
        return _symbolic(node, input=shape, output=output, args=args)

    def block_call(
        self,
        statement: ir.Call,
        node: Shaped,
        env: Mapping[str, Any],
        scope: Mapping[str, BlockEntry],
        shape: Shape,
    ) -> Shaped:
        entry = scope[statement.op]
        definition = entry.definition
        assert definition is not None
        callee = self.analysis.generic(definition.name)
        if callee is None:
            raise NotGeneric(f"it calls {definition.name}, which is not generic")
        bound, given = bind(definition, statement.args, env)
        # The callee's body, walked here with its parameters bound to this block's expressions,
        # gives the call's output in this block's terms (and checks it at this call's values).
        _, output = self.body(definition.body, node.children, bound, entry.scope, shape)
        channels = shape[0] if callee.uses_input else None
        if channels is not None:
            self.need(channels)
        for value in given.values():
            if isinstance(value, Sym):
                self.need(value)
        return _symbolic(
            node, input=shape, output=output, args={CALL: CallArgs(channels, given)}, children=[]
        )

    def repeat(
        self,
        statement: ir.Repeat,
        node: Shaped,
        env: Mapping[str, Any],
        scope: Mapping[str, BlockEntry],
        shape: Shape,
    ) -> Shaped:
        if statement.index is not None:
            raise NotGeneric("a repeat whose passes read their index")
        count = evaluate(statement.count, env)
        if not isinstance(count, int):
            return self.repeat_parameter(statement, node, env, scope, shape, _integer(count))
        passes = []
        current = shape
        for iteration in node.children:
            children, output = self.body(statement.body, iteration.children, env, scope, current)
            passes.append(_symbolic(iteration, input=current, output=output, children=children))
            current = output
        return _symbolic(node, input=shape, output=current, children=passes)

    def repeat_parameter(
        self,
        statement: ir.Repeat,
        node: Shaped,
        env: Mapping[str, Any],
        scope: Mapping[str, BlockEntry],
        shape: Shape,
        count: Value,
    ) -> Shaped:
        """`repeat n { … }` as `nn.Sequential(*(pass for i in range(n)))`: one pass written once,
        its input `in_channels if i == 0 else width` when the first pass changes the channels and
        every later one keeps them. Its sizes after the first pass are `?` unless the pass keeps
        them, so nothing may be built from them."""
        self.need(count)
        if not node.children:
            raise NotGeneric("a repeat whose count is a parameter runs no pass at some call")
        _, after = self.body(statement.body, node.children[0].children, env, scope, shape)
        if len(after) != len(shape):
            raise NotGeneric("a repeated pass changes the rank")
        loop = next(n for n in ("i", "j", "index", "step", "pass_") if n not in env and n not in self.allowed)
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
                children, output = self.body(statement.body, iteration.children, env, scope, incoming)
                if output[0] != after[0] or (keeps_sizes and output[1:] != after[1:]):
                    raise NotGeneric("a repeated pass does not keep what it makes")
                # Each pass's members are numbered on from the last pass's: compare them by place.
                text = _signature([replace(c, key=str(j)) for j, c in enumerate(children)])
                if signature is None:
                    template, signature = children, text
                elif text != signature:
                    raise NotGeneric("the passes of a repeat build different layers")
        finally:
            self.concrete.pop(loop, None)
            self.allowed.discard(loop)
            inner, self.used = self.used, used
        self.used |= inner - {loop}
        output = (
            choice(count, shape[0], after[0]),
            *(shape[1:] if keeps_sizes else (UNKNOWN,) * (len(shape) - 1)),
        )
        one = _symbolic(node.children[0], input=incoming, output=after, children=template)
        args = {"count": count, "loop": loop if loop in inner else "_"}
        return _symbolic(node, input=shape, output=output, args=args, children=[one])

    def residual(
        self,
        statement: ir.Residual,
        node: Shaped,
        env: Mapping[str, Any],
        scope: Mapping[str, BlockEntry],
        shape: Shape,
    ) -> Shaped:
        if any(mentions(arg.value, env) for arg in statement.args):
            raise NotGeneric("a residual's arguments depend on a parameter")
        if statement.shortcut is not None:
            raise NotGeneric("a residual whose shortcut is written out")
        projected = node.args.get("shortcut") == "project"
        body_nodes = node.children[:-1] if projected else node.children
        children, output = self.body(statement.body, body_nodes, env, scope, shape)
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
                symbolic_conv = _symbolic(projection, input=shape, output=output, children=[symbolic_conv, norm])
            children.append(symbolic_conv)
        return _symbolic(node, input=shape, output=output, children=children)
