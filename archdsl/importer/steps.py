"""One step of a module's graph → statements: a leaf module as the layer that builds it (each
layer's `arguments`), a fused module as its layer and children, a functional op as the layer or
function that computes it (`functional.py`, `resampling.py`), a join of values as `add`, `mul`,
`cat`, a learnt tensor as `token`, `posembed` or `scale`.

`Steps` holds what the reading of a traced module knows (its modules, the values made so far);
`statements.Reader` adds the flow between steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .failures import ImportFailed, _where
from .flow import Unit, _Graph
from .functional import _functional
from .ir import Ref, Stmt, Value, shape_text
from .nodes import (
    _cat_inputs,
    _is_cat,
    _is_matmul,
    _is_one_tensor,
    _is_product,
    _is_sum,
    _number_factor,
    _op_name,
    _shape,
    _stack,
    _tensor_args,
)
from .resampling import _resampled, _tidy
from .trace import Call, _fused, _importable, _kind, _readable, _readings

if TYPE_CHECKING:
    from torch import fx, nn


def _fresh_chain(statements: list[Stmt], reads: Value | None, last: Value) -> list[Stmt]:
    """Statements that compute one op in turn: each reads the one before; the last gives `last`."""
    current = reads
    for i, statement in enumerate(statements):
        statement.reads = current
        gives = last if i == len(statements) - 1 else Value(statement.output)
        statement.gives = [gives]
        current = gives
    return statements


class Steps:
    """What reading a traced module knows, and the reading of one step; `module_body`, the flow
    between steps, is `statements.Reader`'s."""

    def __init__(self, root: nn.Module, traced: fx.GraphModule, calls: dict[str, list[Call]]):
        self.root = root
        self.traced = traced
        self.calls = calls
        self.modules = dict(root.named_modules())
        self.table = _importable()
        self.nodes = [n for n in traced.graph.nodes if n.op not in ("placeholder", "output", "get_attr")]
        self.inputs = [n for n in traced.graph.nodes if n.op == "placeholder"]
        (out,) = [n for n in traced.graph.nodes if n.op == "output"]
        self.outputs, self.returns = self._returned(out.args[0])
        #: each node's value, and the nodes that are another's value under another name (`x.clone()`)
        self.values: dict[fx.Node, Value] = {}
        self.aliases: dict[fx.Node, fx.Node] = {}
        self._references: dict[fx.Node, Any] = {}
        self._referenced_by: dict[fx.Node, list[fx.Node]] | None = None
        # A leaf no layer builds is named before the flow is read: an LSTM's tuple, say, would
        # otherwise break the flow first and hide what is missing.
        for node in self.nodes:
            leaf = self.modules[str(node.target)] if node.op == "call_module" else None
            if leaf is None or _readable(leaf, self.table):
                continue
            self.leaf(str(node.target), leaf, node)
        #: the modules written so far (a second call of one is refused: weights are not shared)
        self.named: set[str] = set()

    def _returned(self, result: Any) -> tuple[list[tuple[str | None, fx.Node]], str]:
        """The model's outputs (with their keys where it returns a dict) and how it returns them:
        "one" tensor, a "tuple" or a "dict"."""
        from torch import fx

        found: list[tuple[str | None, Any]]
        if isinstance(result, dict):
            found = [(str(k), v) for k, v in result.items()]
            kind = "dict"
        elif isinstance(result, (list, tuple)):
            found = [(None, v) for v in result]
            kind = "tuple"
        else:
            found, kind = [(None, result)], "one"
        for _, value in found:
            if not isinstance(value, fx.Node) or not _is_one_tensor(value):
                what = type(value).__name__ if not isinstance(value, fx.Node) else "a tuple of tensors"
                raise ImportFailed(
                    f"{type(self.root).__name__}'s forward returns {what}"
                    + (" among its results" if kind != "one" else "")
                    + ", not a tensor: a model gives tensors, one, a tuple or a dict of them"
                )
        if not found:
            raise ImportFailed(f"{type(self.root).__name__}'s forward returns no tensor")
        return found, kind

    def value(self, node: fx.Node) -> Value:
        while node in self.aliases:
            node = self.aliases[node]
        found = self.values.get(node)
        if found is None:
            shape = _shape(node) if _is_one_tensor(node) else ()
            found = self.values[node] = Value(shape, node)
        return found

    def module_body(self, path: str, entries: list[fx.Node], exits: list[fx.Node]) -> list[Stmt]:
        """The statements of the module at `path` ("" for the root), which reads `entries` and
        gives `exits`: the flow between steps, `statements.Reader`'s."""
        raise NotImplementedError

    # --- one step ---------------------------------------------------------------------------------

    def step(self, path: str, unit: Unit, graph: _Graph, previous: Value | None = None) -> list[Stmt]:
        if unit.path is None:
            assert unit.node is not None
            return self.function(path, unit.node, previous)
        full = unit.path
        module = self.modules[full]
        # relative to the calling module: dotted where it sits in a container never called
        name = full[len(path) + 1 :] if path and full.startswith(path + ".") else full
        first = unit.nodes[0]
        output = _shape(unit.outs[0])
        if first.op == "call_module" and first.target == full:  # a leaf
            inputs = _tensor_args(first)
            if len(inputs) > 1:
                raise ImportFailed(
                    f"{full} is called with {len(inputs)} tensors{_where(first)}: a layer takes one"
                )
            reads = self.value(inputs[0]) if inputs else None
            base = _fused(module, self.table)
            if base is not None:
                return _fresh_chain(self.fused(full, name, module, base, first), reads, self.value(first))
            statement = self.leaf(full, module, first)
            statement.input = _shape(inputs[0]) if inputs else ()
            if full in self.named:
                if any(True for _ in module.parameters()) or any(True for _ in module.buffers()):
                    raise ImportFailed(
                        f"{full} is called more than once{_where(first)}: the language has no shared weights"
                    )
                statement.name = None
            else:
                self.named.add(full)
                statement.name = name
            return _fresh_chain([statement], reads, self.value(first))
        if full in self.named or len(self.calls.get(full, [])) > 1:
            raise ImportFailed(
                f"{full} is called more than once{_where(first)}: the language has no shared weights"
            )
        self.named.add(full)
        entries = unit.ins
        if not entries:
            raise ImportFailed(f"{full} reads no tensor{_where(first)}: a module transforms its input")
        body = self.module_body(full, entries, unit.outs)
        record = self.calls.get(full, [])
        given = {node: given for given, node in record[0].arguments} if record else {}
        return [
            Stmt(
                "group",
                name=name,
                body=body,
                cls=type(module),
                output=output,
                input=_shape(entries[0]),
                inputs=[self.value(e) for e in entries],
                gives=[self.value(o) for o in unit.outs],
                params=[given.get(e) for e in entries],
                depth=_stack(first).index(full) + 1,
            )
        ]

    def fused(self, full: str, name: str, module: nn.Module, base: type, node: fx.Node) -> list[Stmt]:
        """A module read by `_fused`: its torch.nn layer `base` under its name, then its children."""
        if full in self.named:
            raise ImportFailed(
                f"{full} is called more than once{_where(node)}: the language has no shared weights"
            )
        self.named.add(full)
        inputs = _tensor_args(node)
        statements = []
        for layer, arguments in _readings(module, self.table[base.__name__]):
            if arguments is not None:
                output = _shape(node)
                statements.append(Stmt("layer", op=layer.name, args=arguments, name=name, output=output))
                break
        else:
            raise ImportFailed(
                f"{full} is a {type(module).__module__}.{type(module).__name__}{_where(node)}, a "
                f"{base.__name__} with settings no layer of the language takes"
            )
        statements[0].input = _shape(inputs[0]) if inputs else ()
        for child_name, child in module.named_children():
            if type(child).__name__ == "Identity":
                continue
            statement = self.leaf(f"{full}.{child_name}", child, node)
            statement.input = statements[0].output
            statements.append(statement)
        return statements

    def leaf(self, path: str, module: nn.Module, node: fx.Node) -> Stmt:
        kind = _kind(module)
        for layer, arguments in _readings(module, self.table.get(kind, [])):
            if arguments is not None:
                return Stmt("layer", op=layer.name, args=_tidy(layer.name, arguments), output=_shape(node))
        raise ImportFailed(
            f"{path} is a {type(module).__module__}.{kind}{_where(node)}: no layer of the language builds it"
            + (" with these settings" if kind in self.table else "")
        )

    def function(self, path: str, node: fx.Node, previous: Value | None = None) -> list[Stmt]:
        """A functional op of a module's forward, as the layer(s) or function computing it
        (unnamed)."""
        who = path or type(self.root).__name__
        if not _is_one_tensor(node):  # several tensors
            raise ImportFailed(
                f"{who} calls {_op_name(node)}{_where(node)}, which gives several tensors: the "
                "language has no statement for it"
            )
        output = _shape(node)
        inputs = _tensor_args(node)
        learnt = self.learnt(path, node)
        if learnt is not None:
            return _fresh_chain([learnt], self.value(inputs[0]), self.value(node))
        join = self.join(who, node, inputs, previous)
        if join is not None:
            return [join]
        made = _functional(node)
        if made is None:
            made = self.resampling(who, node)
        if made is None:
            if _is_product(node):
                scale = self.scale(path, node)
                if scale is not None:
                    return _fresh_chain([scale], self.value(inputs[0]) if inputs else None, self.value(node))
            raise ImportFailed(
                f"{who} calls {_op_name(node)}{_where(node)}: the language has no statement for it"
            )
        if len(inputs) > 1 and not any(isinstance(v, Ref) for _, args in made for v in args.values()):
            raise ImportFailed(
                f"{who} calls {_op_name(node)} on {len(inputs)} tensors{_where(node)}: the language has "
                "no statement for it"
            )
        if not made:  # `x.contiguous()`: the value itself
            self.aliases[node] = inputs[0]
            return []
        shape = _shape(inputs[0]) if inputs else ()
        statements = []
        for op, args in made:
            statements.append(Stmt("layer", op=op, args=args, output=output, input=shape))
            shape = output
        return _fresh_chain(statements, self.value(inputs[0]) if inputs else None, self.value(node))

    def join(self, who: str, node: fx.Node, inputs: list[fx.Node], previous: Value | None) -> Stmt | None:
        """`a + b`, `a * b`, `torch.cat([a, b, …], 1)` of values: `add`, `mul`, `cat`, reading
        the first and naming the others (a sum or product reads the value just made where it can:
        the order of its terms does not change it)."""
        sum_, product, cat = _is_sum(node), _is_product(node), _is_cat(node)
        output = _shape(node)
        if _is_matmul(node) and len(inputs) == 2:
            return Stmt(
                "layer",
                op="matmul",
                args={"other": Ref(self.value(inputs[1]))},
                output=output,
                input=_shape(inputs[0]),
                reads=self.value(inputs[0]),
                gives=[self.value(node)],
            )
        factor = _number_factor(node)
        if factor is not None and len(inputs) == 1:
            return Stmt(
                "layer",
                op="mul",
                args={"others": [factor]},
                output=output,
                input=_shape(inputs[0]),
                reads=self.value(inputs[0]),
                gives=[self.value(node)],
            )
        if not (sum_ or product or cat) or len(inputs) < 2 or (not cat and len(inputs) != 2):
            return None
        if cat:
            if len(inputs) != len(_cat_inputs(node)):
                raise ImportFailed(
                    f"{who} concatenates a tensor that is none of its values{_where(node)} (a parameter "
                    "or a constant): the language concatenates values"
                )
            order = inputs
        else:
            a, b = inputs
            fits = [x for x in (a, b) if _shape(x) == output]
            if sum_ and len(fits) != 2:
                raise ImportFailed(
                    f"{who} adds tensors of shapes {shape_text(_shape(a))} and {shape_text(_shape(b))}"
                    f"{_where(node)}: `add` adds values of one shape"
                )
            if not fits:
                return None
            other = b if fits[0] is a else a
            if product and (
                len(_shape(other)) != len(output)
                or any(o not in (1, s) for o, s in zip(_shape(other), output, strict=True))
            ):
                raise ImportFailed(
                    f"{who} multiplies tensors of shapes {shape_text(_shape(a))} and {shape_text(_shape(b))}"
                    f"{_where(node)}: `mul` scales a value by one of its shape or 1 on an axis"
                )
            order = [fits[0], other]
            if len(fits) == 2 and previous is not None and self.value(b) is previous:
                order = [b, a]
        op = "cat" if cat else "add" if sum_ else "mul"
        return Stmt(
            "layer",
            op=op,
            args={"others": [Ref(self.value(n)) for n in order[1:]]},
            output=output,
            input=_shape(order[0]),
            reads=self.value(order[0]),
            gives=[self.value(node)],
        )

    def learnt(self, path: str, node: fx.Node) -> Stmt | None:
        """A learnt tensor joined with the value (`learnt_tensors`), where the module whose forward
        joins it holds it: `token` or `posembed` under the parameter's name."""
        found = node.meta.get("learnt")
        if found is None:
            return None
        op, target = found
        owner, _, name = target.rpartition(".")
        who = path or type(self.root).__name__
        if owner != path:
            raise ImportFailed(
                f"{who} reads {target}, a parameter of another module{_where(node)}: a learnt tensor "
                "is a parameter of the module that uses it"
            )
        tensor = self.root.get_parameter(target).detach()
        sample = _shape(node)
        if op == "token":
            args: dict[str, Any] = {"count": int(tensor.shape[1])}
            if tuple(tensor.shape) != (1, tensor.shape[1], sample[-1]):
                return None
        else:
            args = {}
            if tuple(tensor.shape) != (1, *sample):
                raise ImportFailed(
                    f"{who} adds {target}, of shape {shape_text(tuple(tensor.shape))}, to a "
                    f"{shape_text(sample)} sample{_where(node)}: `posembed` adds a tensor of the "
                    "sample's shape"
                )
        return Stmt("layer", op=op, args=args, name=name, output=sample, input=_shape(_tensor_args(node)[0]))

    def scale(self, path: str, node: fx.Node) -> Stmt | None:
        """x · a parameter of the module, of shape [C, 1, 1]: a `scale` statement of its name."""
        params: list[Any] = [a for a in node.args if getattr(a, "op", None) == "get_attr"]
        if len(params) != 1:
            return None
        target = str(params[0].target)
        owner, _, name = target.rpartition(".")
        if owner != path:
            return None
        tensor = self.root.get_parameter(target).detach()
        shape = tuple(tensor.shape)
        sample = _shape(node)
        if shape != (sample[0], *(1,) * (len(sample) - 1)):
            return None
        first = float(tensor.flatten()[0])
        init = first if bool((tensor == first).all()) else 1.0
        return Stmt("layer", op="scale", args={"init": init}, name=name, output=sample)

    # --- sizes read from other values: resize, padto ----------------------------------------------

    def references(self, node: fx.Node) -> list[fx.Node]:
        """The tensor whose size `node` takes, where the spec names it: `F.interpolate(x,
        size=y.shape[-2:])` is `resize(y)`, U-Net's centred `F.pad` to `y`'s size `padto(y)`."""
        found = self._analysed(node)
        # a refusal (text) or the identity (`()`) names no tensor
        return [found[1]] if isinstance(found, tuple) and found and found[1] is not None else []

    def _analysed(self, node: fx.Node) -> Any:
        if node not in self._references:
            self._references[node] = _resampled(node)
        return self._references[node]

    def resampling(self, who: str, node: fx.Node) -> list[tuple[str, dict[str, Any]]] | None:
        found = self._analysed(node)
        if found is None:
            return None
        if isinstance(found, str):
            raise ImportFailed(f"{who} calls {_op_name(node)}{_where(node)}{found}")
        if not found:  # nothing to do at this input: the value itself
            return []
        op, reference, args = found
        args = _tidy(op, args)
        if reference is not None:
            args = {**args, ("to" if op == "resize" else "like"): Ref(self.value(reference))}
        return [(op, args)]
