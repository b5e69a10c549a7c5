"""Stage 3–4: a model's statements → its dataflow graph, shaped.

Consumes a model's IR (and the blocks in sight, `resolve.block_scopes`); produces a `ShapedModel`:
the `Graph` of its values and nodes (`graph.py`), and its outline, a `Shaped` record per statement.
Statements are elaborated in order, each lowered into nodes by its construct (`constructs.py`, one
class per construct), and every node is shaped as it is made (`shapes.infer`). Resolving and
shaping are one walk because the language lets arguments read shapes: `channels`, the sizes of a
named value, a block's parameter defaults and an `if`'s condition are worth what the values that
reach them are, so what a block builds depends on what it receives.

A statement reads the value the statement before it made (its *flow*), or the value its `source ->`
names, and the values its arguments name; `as` names what it makes. Names live in the definition
(model or block) that makes them, from where they are made to its end, as Python's locals do; a
block sees only its parameters. Where a statement fails, the flow stops: later statements are still
checked for what can be judged without shapes (names, arguments), but make no nodes. Statements
that never run (the passes of `repeat 0`, a branch whose condition does not hold) are checked the
same way, except for values that may be wrong only where they would run.

Its length (about 950 lines) is the walk and the services every construct calls back into while it
lowers a statement (binding arguments, applying a layer, claiming names, reporting); the constructs
themselves are in `constructs.py`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from . import ir, layers
from .codes import (
    ARGUMENT_COUNT,
    BAD_VALUE,
    DUPLICATE,
    MODEL_STRUCTURE,
    TOO_LARGE,
    UNKNOWN_NAME,
    UNUSED,
    VALUES,
)
from .constructs import CONSTRUCTS, given_by
from .converters import UNKNOWN, BadValue, Symbol, describe, tensor_refs
from .errors import Diagnostic, Failed, Note, Span, error, warning
from .frames import Frame, Made, Namespace, Scope, dry
from .graph import Graph, Module, Node, Shaped, ShapedModel, Value
from .resolve import (
    CHANNELS_NAME,
    MAX_EXPANDED_LAYERS,
    MAX_NESTING,
    BlockEntry,
    Resolver,
    _bad_name,
    _misplaced,
    _taken,
    mentions,
    resolver_input_dims,
)
from .shapes import Context as ShapeContext
from .shapes import infer, input_axes, too_many_elements, too_many_params, with_origin
from .sizes import MAX_ELEMENTS, MAX_PARAMS, fmt
from .trainspec import TrainSpec, validate_train


class Elaborator(Resolver):
    def __init__(self, blocks: dict[str, BlockEntry]):
        super().__init__(blocks)
        self.nodes: list[Node] = []
        self.shape_context = ShapeContext(None, None, Span.of_file(""))
        #: Statements failed so far (the flow stopped at each).
        self.failed = 0
        #: The names in sight where expressions are evaluated (see `here`).
        self.current_scope: Scope | None = None
        #: `elaborate_part`'s question: the module path of a statement, and the input to give it.
        self.probe: tuple[str, tuple[int, ...]] | None = None
        #: Every name given to a value, where it is given, and the value (`ShapedModel.named`).
        self.named: list[tuple[str, Span, Value]] = []

    def name_value(self, scope: Scope, name: str, span: Span, value: Value) -> None:
        scope.values[name] = value
        scope.spans[name] = span
        scope.given_names.append((name, span, value))
        self.named.append((name, span, value))

    # --- the walk over a body -------------------------------------------------------------------

    def body(self, statements: Sequence[ir.Stmt], frame: Frame) -> list[Shaped]:
        """Elaborates statements in order; returns their outline records. `frame.flow` follows."""
        records: list[Shaped] = []
        last = len(statements) - 1
        started = False
        for index, statement in enumerate(statements):
            kind = statement.kind  # a string compare: isinstance on pydantic classes costs more
            if kind in _SECTIONS:
                if kind == "input" and statement.dims is None and frame.top and frame.stack:  # type: ignore[union-attr]
                    self.block_input(statement, frame, started)  # type: ignore[arg-type]
                    continue
                started = True
                if kind == "output":
                    self.output(statement, frame, index == last)  # type: ignore[arg-type]
                elif not frame.top and not frame.stack:
                    # A model's own are read by `model`, a block's judged by `check_definitions`.
                    self.diagnostics.append(_misplaced(statement, "inside repeat, concat or residual"))  # type: ignore[arg-type]
                continue
            started = True
            made = self.statement(statement, frame)
            if made.spread is not None:
                records.extend(made.spread)
            elif made.record is not None:
                records.append(made.record)
        return records

    def statement(self, statement: ir.Stmt, frame: Frame) -> Made:
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
            return self._statement(statement, frame)
        except Failed as failure:
            self.report(failure.diagnostic)
            self.failed += 1
            outputs = [dry(statement.span) for _ in range(len(statement.binds or ()) or 1)]
            if statement.binds:
                self.bind_names(statement, outputs, frame, quiet=True)
            frame.flow, frame.stopped, frame.last = outputs[0], None, outputs
            return Made(None, outputs)
        finally:
            self.depth -= 1

    def _statement(self, statement: ir.Stmt, frame: Frame) -> Made:
        kind = statement.kind
        construct = CONSTRUCTS[kind]
        if kind == "if":
            return construct.lower(self, statement, frame, "", None)
        if statement.source is None and frame.flow is not None:
            source: Value | None = frame.flow
        else:
            source = self.source(statement, frame)
        key, label = self.claim_statement(statement, frame)
        probed = self.probe is not None and frame.module.prefix + key == self.probe[0] and not frame.never
        if probed:
            assert self.probe is not None
            shape = self.probe[1]
            # The part reads its input as the network lays it out there (Swin's stages take maps
            # channels last), whatever the value it is given calls its axes.
            known = source is not None and source.shape is not None and len(source.shape) == len(shape)
            axes = source.axes if known and source is not None else input_axes(shape)
            source = Value(shape, axes, origin="the part's input", span=statement.span)
        frame.flow = source  # what this statement receives; what it makes follows it
        made = construct.lower(self, statement, frame, key, label)
        if probed:
            raise Found(made)
        record = made.record
        if record is not None and not isinstance(record, Node):
            # A composite's values are said to come from it (a layer's say so already).
            record.result = made.outputs[0]
            for value in made.outputs:
                if value.name is None and value.shape is not None:
                    value.origin, value.span = record.op, statement.span
        if record is not None and len(made.outputs) > 1 and all(v.shape is not None for v in made.outputs):
            record.given = tuple(v.shape for v in made.outputs)  # type: ignore[misc]
        if statement.binds and not self.bind_names(statement, made.outputs, frame):
            made = Made(made.record, [dry(statement.span) for _ in statement.binds])
        frame.last = made.outputs
        if len(made.outputs) == 1 or all(v.shape is None for v in made.outputs):
            # One value goes on; so does a statement that did not run, whatever it would give.
            frame.flow, frame.stopped = made.outputs[0] if made.outputs else dry(statement.span), None
        else:
            frame.flow = None
            names = f" ({', '.join(statement.binds)})" if statement.binds else ""
            frame.stopped = (
                f"the statement at line {statement.span.line} gives {len(made.outputs)} values{names}"
            )
        return made

    def source(self, statement: ir.Stmt, frame: Frame) -> Value | None:
        """What a statement receives: the value its `source ->` names, or the flow."""
        if statement.source is not None:
            assert statement.source_span is not None
            return self.lookup(statement.source, statement.source_span, frame)
        if frame.flow is None and frame.stopped is not None and not frame.never:
            raise Failed(
                error(
                    VALUES,
                    f"{frame.stopped}: say which this statement reads (`name -> …`)",
                    statement.span,
                )
            )
        return frame.flow

    def lookup(self, name: str, span: Span, frame: Frame) -> Value:
        scope = frame.scope
        value = scope.values.get(name)
        if value is not None:
            return value
        self.here(frame, None)
        raise Failed(self.unknown_value(name, span, frame))

    def unknown_value(self, name: str, span: Span, frame: Frame) -> Diagnostic:
        scope = frame.scope
        if name in scope.params:
            return error(
                VALUES,
                f"'{name}' is a parameter ({describe(scope.params[name])}), not a named value",
                span,
            )
        return self.unknown_name(name, span, scope.params)

    def unknown_name(self, name: str, span: Span, scope: dict[str, Any]) -> Diagnostic:
        """A name that is not in sight, with why where a value of that name is made elsewhere in
        the definition: later, or only in a branch that does not run."""
        here = self.current_scope
        if here is not None and name not in scope and name != CHANNELS_NAME:
            if name in here.maybe:
                where, kind = here.maybe[name]
                made = (
                    f"only where the `if` at line {where.line} runs, and here it does not"
                    if kind == "if"
                    else f"only in the passes of the `repeat` at line {where.line}, and here it makes none"
                )
                return error(
                    UNKNOWN_NAME,
                    f"'{name}' is made {made}",
                    span,
                    Note(message=f"the `{kind}` is at {where}", span=where),
                )
            first = here.later.get(name)
            if first is not None and first > span:
                return error(
                    UNKNOWN_NAME,
                    f"'{name}' is read before it is made: it is named at line {first.line}",
                    span,
                    Note(message=f"'{name}' is made at {first}", span=first),
                )
            label = here.labels.get(name)
            if label is not None:
                return error(
                    UNKNOWN_NAME,
                    f"'{name}' names a module (`{name}: …` at line {label.line}), not a value: name the "
                    f"value it makes with `as`, `{name}: … as {name}`",
                    span,
                    Note(message=f"the module is named at {label}", span=label),
                )
        return super().unknown_name(name, span, scope)

    def here(self, frame: Frame, channels: Any) -> None:
        """Expressions are evaluated next where `frame` stands: its values, its `channels`."""
        self.values = frame.scope.values
        self.channels = channels
        self.current_scope = frame.scope

    # --- names ----------------------------------------------------------------------------------

    def claim_statement(self, statement: ir.Stmt, frame: Frame) -> tuple[str, str | None]:
        """The statement's member key and label in its namespace."""
        space = frame.space
        if statement.splice:
            return space.anonymous(), None
        if statement.kind == "call" and not self.is_member(statement):
            if statement.label is not None:
                raise Failed(
                    error(
                        BAD_VALUE,
                        f"{statement.op} makes no module, so it takes no name; `as name` names "
                        "the value it makes",
                        statement.label_span or statement.span,
                    )
                )
            return space.anonymous(), None
        if statement.label is None:
            # The common case, a numbered member, claimed here without the general path's calls.
            key = str(space.members)
            space.members += 1
            if key in space.names:
                raise Failed(_taken(key, statement.span, space.names[key]))
            space.names[key] = statement.span
            return key, None
        label = self.label(statement, frame.scope.params)
        key = self.claim(space, label, statement.label_span or statement.span)
        if label is not None:
            frame.scope.labels.setdefault(label, statement.label_span or statement.span)
        return key, label

    def is_member(self, call: ir.Call) -> bool:
        spec = layers.LAYERS.get(call.op)
        if spec is None and call.op not in self.blocks:
            spec = layers.find(call.op)
        return spec is None or spec.member

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

    def bind_names(self, statement: ir.Stmt, outputs: list[Value], frame: Frame, quiet: bool = False) -> bool:
        """`as x`, `as (a, b)`: names the statement's values in its definition. False where the
        names do not fit the values (reported), so the flow stops there."""
        names = statement.binds
        if not names:
            return True
        span = statement.binds_span or statement.span
        # What a statement that does not run gives is not known to be one value or several.
        quiet = quiet or all(v.shape is None for v in outputs)
        fits = True
        if statement.binds_tuple or len(names) > 1:
            if len(names) != len(outputs):
                fits = False
                if not quiet:
                    self.report(
                        error(
                            VALUES,
                            f"this statement gives {len(outputs)} value{'s' if len(outputs) != 1 else ''}, "
                            f"and `as ({', '.join(names)})` names {len(names)}",
                            span,
                        )
                    )
                outputs = [dry(span) for _ in names]
        elif len(outputs) != 1:
            fits = False
            if not quiet:
                self.report(
                    error(
                        VALUES,
                        f"this statement gives {len(outputs)} values: name each, "
                        f"`as ({', '.join(chr(ord('a') + i) for i in range(len(outputs)))})`",
                        span,
                    )
                )
            outputs = [dry(span)]
        scope = frame.scope
        twice = next((name for index, name in enumerate(names) if name in names[:index]), None)
        if twice is not None:
            self.report(error(DUPLICATE, f"`as ({', '.join(names)})` gives the name '{twice}' twice", span))
            # Each name still made (unknown), so later statements reading it say nothing more.
            fits, names, outputs = (
                False,
                list(dict.fromkeys(names)),
                [dry(span) for _ in dict.fromkeys(names)],
            )
        for name, value in zip(names, outputs, strict=True):
            problem = self.reserved_value_name(name, scope)
            if problem is not None:
                if not quiet:
                    self.report(error(DUPLICATE, problem, span))
                fits = False
                continue
            if frame.never and frame.never_at is not None:
                scope.maybe.setdefault(name, (frame.never_at, frame.never_kind))
            if value.name is None:
                value.name = name
            # The name is the definition's: emit writes it in the forwards of its modules only.
            frame.module.names.setdefault(value, name)
            self.name_value(scope, name, span, value)
            if not frame.never:
                scope.maybe.pop(name, None)
        return fits

    @staticmethod
    def reserved_value_name(name: str, scope: Scope) -> str | None:
        if name in scope.params:
            return f"'{name}' is a parameter here; a value needs a name of its own"
        if name == CHANNELS_NAME:
            return f"'{CHANNELS_NAME}' is the channel count a statement receives; a value needs another name"
        if name in layers.KEYWORD_VALUES:
            return f"'{name}' is a keyword value; a value needs another name"
        return None

    def block_input(self, statement: ir.Input, frame: Frame, started: bool) -> None:
        """`input as x`: the name of what the block receives."""
        if not statement.binds or statement.binds_tuple or len(statement.binds) != 1:
            self.report(
                error(MODEL_STRUCTURE, "a block's input is one value: name it `input as x`", statement.span)
            )
            return
        if started:
            self.report(
                error(
                    MODEL_STRUCTURE,
                    "`input as …` must come before the block's first statement",
                    statement.span,
                )
            )
            return
        value = frame.flow if frame.flow is not None else dry(statement.span)
        name = statement.binds[0]
        problem = self.reserved_value_name(name, frame.scope)
        if problem is not None:
            self.report(error(DUPLICATE, problem, statement.binds_span or statement.span))
            return
        self.name_value(frame.scope, name, statement.binds_span or statement.span, value)
        frame.module.names.setdefault(value, name)

    def output(self, statement: ir.Output, frame: Frame, last: bool) -> None:
        """`output a, b` or `output out: a, aux: b`: what the model or block gives."""
        if not frame.top:
            self.report(
                error(
                    MODEL_STRUCTURE,
                    "output belongs in a model's or block's own body, at its end",
                    statement.span,
                )
            )
            return
        scope = frame.scope
        if scope.outputs is not None:
            assert scope.output_span is not None
            self.report(
                error(
                    MODEL_STRUCTURE,
                    "a model or block has one output statement",
                    statement.span,
                    Note(message=f"the first is at {scope.output_span}", span=scope.output_span),
                )
            )
            return
        if not last:
            self.report(
                error(MODEL_STRUCTURE, "output must be the last statement of its body", statement.span)
            )
        keys = [item.key for item in statement.items]
        if any(k is not None for k in keys):
            if frame.stack:
                self.report(
                    error(
                        MODEL_STRUCTURE,
                        "a block gives its values in order, `output a, b`; only a model's may be named",
                        statement.span,
                    )
                )
                return
            missing = [item for item in statement.items if item.key is None]
            if missing:
                self.report(
                    error(
                        MODEL_STRUCTURE,
                        f"name every output or none: `{missing[0].name}` has no key "
                        f"(`output {missing[0].name}: {missing[0].name}, …`)",
                        missing[0].span,
                    )
                )
                return
            seen: dict[str, Span] = {}
            for item in statement.items:
                assert item.key is not None
                if item.key in seen:
                    self.report(
                        error(
                            DUPLICATE, f"the output '{item.key}' is named twice", item.key_span or item.span
                        )
                    )
                    return
                seen[item.key] = item.span
        values = []
        for item in statement.items:
            try:
                values.append(self.lookup(item.name, item.span, frame))
            except Failed as failure:
                self.report(failure.diagnostic)
                values.append(dry(item.span))
        scope.outputs = values
        scope.output_names = [item.name for item in statement.items]
        scope.output_keys = [k for k in keys if k is not None] or None
        scope.output_span = statement.span

    # --- layers ---------------------------------------------------------------------------------

    def channels_of(self, value: Value | None, axis: int = 0) -> Any:
        """`channels` in a statement receiving `value`: its size on `axis`, or `UNKNOWN`."""
        if value is None or value.shape is None:
            return UNKNOWN
        shape = value.shape
        if not shape:
            return UNKNOWN
        return shape[axis] if -len(shape) <= axis < len(shape) else UNKNOWN

    def arguments(
        self, args: Sequence[ir.Arg], frame: Frame, channels: Any
    ) -> list[tuple[str | None, Any, Span]]:
        """A call's arguments, evaluated where it stands (with `channels` the count it receives)."""
        self.here(frame, channels)
        return self.evaluated_args(args, frame.scope.params)

    def layer(
        self,
        spec: layers.Layer,
        call: ir.Call,
        frame: Frame,
        key: str,
        label: str | None,
    ) -> Made:
        x = frame.flow
        if call.args:
            channels = self.channels_of(x, spec.channel_axis)
            arguments = self.arguments(call.args, frame, channels)
        else:
            channels, arguments = UNKNOWN, []
        try:
            values, spans = self.bind(spec, arguments, call.span, frame.scope.params)
        except Failed as failure:
            diagnostic = _with_channels(failure.diagnostic, call, channels)
            if diagnostic is not failure.diagnostic and x is not None and x.shape is not None:
                diagnostic = with_origin(diagnostic, x, self.shape_context)
            raise Failed(diagnostic) from None
        references = tensor_refs(values) if spec.reads_values else []
        if (
            frame.never
            or x is None
            or x.shape is None
            or (references and any(r.value.shape is None for r in references))
            # an argument that reads a size of a value whose shape an error left unknown
            or any(value is UNKNOWN for value in values.values())
        ):
            outputs = [dry(call.span, call.op)]
            return Made(None, outputs)
        return self.apply(
            spec, call.span, key, label, frame, (x, *(r.value for r in references)), values, spans
        )

    def apply(
        self,
        spec: layers.Layer,
        span: Span,
        key: str,
        label: str | None,
        frame: Frame,
        inputs: tuple[Value, ...],
        args: dict[str, Any],
        spans: dict[str, Span] | None = None,
        module: Module | None = None,
    ) -> Made:
        """A node of `spec` on `inputs`, shaped, and made part of the graph (a member of `module`,
        by default the frame's, when the layer is a member)."""
        module = module or frame.module
        x = inputs[0]
        assert x.shape is not None
        member = spec.member
        node = Node(
            "layer",
            spec.name,
            key,
            module.prefix + key,
            label,
            span,
            x.shape,
            (),
            0,
            0,
            args,
            _LEAF,  # children
            False,  # spliced
            None,  # axes
            None,  # result
            (),  # given
            _LEAF,  # joins
            None,  # block
            inputs,
            _LEAF,
            module,
            member,
            spans or {},
        )
        if self.counting:
            weight = frame.weight
            self.expanded += weight
            if self.expanded > MAX_EXPANDED_LAYERS or weight > MAX_EXPANDED_LAYERS:
                self._grow(0, span, weight)  # reports E110
        outcome, axes = infer(node, self.shape_context, spec)
        if outcome.warnings:
            for diagnostic in outcome.warnings:
                self.report(diagnostic)
        node.output, node.params, node.macs, node.axes = outcome.output, outcome.params, outcome.macs, axes
        if member:
            node.parameter = type(spec).parameter is not _NO_PARAMETER and spec.parameter(node) is not None
            if type(spec).use is not _PLAIN_USE:
                node.use = spec.use(node)
            module.members[key] = node
        name = spec.name
        first = Value(outcome.output, axes, node, 0, None, name, span)
        outputs = [first]
        if outcome.more:
            for index, shape in enumerate(outcome.more, 1):
                outputs.append(Value(shape, axes, node, index, None, name, span))
        node.outputs = outputs
        node.result = first
        x.read = True
        for value in inputs[1:]:
            value.read = True
        self.nodes.append(node)
        frame.scope.made.extend(outputs)
        return Made(node, outputs)

    def function(
        self,
        op: str,
        span: Span,
        frame: Frame,
        inputs: tuple[Value, ...],
        path: str,
        module: Module | None = None,
        skips: tuple[int, ...] = (),
        **args: Any,
    ) -> Node:
        """A function node a construct lowers into (a residual's sum, a concat's join), no statement
        of the outline: `path` names it after its construct's (`layer1.0:add`). The construct
        phrases its diagnostics first."""
        spec = layers.LAYERS[op]
        bound = {**{a.name: a.default for a in spec.args}, **args}
        made = self.apply(spec, span, frame.space.anonymous(), None, frame, inputs, bound, module=module)
        node = made.record
        assert isinstance(node, Node)
        node.path = path
        node.skips = skips
        return node

    # --- reporting ------------------------------------------------------------------------------

    def report(self, diagnostic: Diagnostic) -> None:
        self.diagnostics.append(diagnostic)

    def check_used(self, scope: Scope, outputs: Sequence[Value]) -> None:
        """W006 for each value made in a body and never read."""
        returned = set(outputs)
        for value in scope.made:
            if value.read or value in returned or value.shape is None:
                continue
            span = value.span
            if span is None:
                continue
            if value.name is not None:
                named_at = scope.spans.get(value.name, span)
                self.report(warning(UNUSED, f"'{value.name}' is made here and never used", named_at))
            else:
                self.report(warning(UNUSED, f"what {value.origin} makes here is never used", span))
        made = set(scope.made)
        for name, span, value in scope.given_names:
            if value in made or value.read or value in returned or value.shape is None:
                continue
            made.add(value)  # one warning a value
            self.report(warning(UNUSED, f"'{name}' is made here and never used", span))

    # --- models ---------------------------------------------------------------------------------

    def model(self, model: ir.ModelDef, overrides: dict[str, Any]) -> ShapedModel | None:
        params = self.model_params(model, overrides)
        if params is None:
            return None
        inputs, train = self.model_sections(model, params)
        if not inputs:
            return None
        # As declared: a later `as` may name an unnamed input where a block gives it back.
        input_names = [value.name for value in inputs]
        root = Module("", "", None, model.name)
        scope = Scope(params, body=model.body)
        first_shape, first_span = inputs[0].shape, inputs[0].span
        self.shape_context = ShapeContext(first_shape, first_span, model.span)
        for value in inputs:
            if value.name is not None:
                scope.values[value.name] = value
                scope.spans[value.name] = value.span  # type: ignore[assignment]
                root.names[value] = value.name
        scope.made.extend(inputs)
        frame = Frame(root, Namespace(), scope, inputs[-1], (), 1, top=True)
        self.current_scope = scope
        too_big = next((v for v in inputs if v.shape is not None and math.prod(v.shape) > MAX_ELEMENTS), None)
        if too_big is not None:
            assert too_big.shape is not None and too_big.span is not None
            self.report(too_many_elements("the input is", too_big.shape, too_big.span))
            frame.flow = None
        records = self.body(model.body, frame) if frame.flow is not None else []
        # With no `output`, what the last statement gives (several values, as a block gives them).
        outputs = scope.outputs if scope.outputs is not None else given_by(frame)
        params_total = sum(node.params for node in self.nodes)
        macs_total = sum(node.macs for node in self.nodes)
        complete = (
            not any(d.is_error for d in self.diagnostics)
            and outputs
            and all(v.shape is not None for v in outputs)
        )
        if complete and params_total > MAX_PARAMS:
            self.report(too_many_params(f"model {model.name}", params_total, model.name_span))
            complete = False
        graph = None
        if complete:
            self.check_used(scope, outputs)
            graph = Graph(
                root, list(inputs), self.nodes, list(outputs), scope.output_keys, scope.output_names
            )
        keys: list[str | None] = list(scope.output_keys) if scope.output_keys else [None] * len(outputs)
        return ShapedModel(
            name=model.name,
            file=model.span.file,
            span=model.span,
            input=first_shape,  # type: ignore[arg-type]
            output=outputs[0].shape if complete else None,
            layers=records,
            params=params_total,
            macs=macs_total,
            train=train,
            model_params=params,
            graph=graph,
            inputs=[(name, v.shape) for name, v in zip(input_names, inputs, strict=True)],  # type: ignore[misc]
            outputs=[(k, v.shape) for k, v in zip(keys, outputs, strict=True)] if complete else [],  # type: ignore[misc]
            named=self.named,
        )

    def model_params(self, model: ir.ModelDef, overrides: dict[str, Any]) -> dict[str, Any] | None:
        unbound = False
        for param in model.params:
            if param.default is None and param.name not in overrides:
                unbound = True
                self.diagnostics.append(
                    error(
                        ARGUMENT_COUNT,
                        f"model parameter '{param.name}' has no default: give it one "
                        f"(`{param.name}: {param.type_name} = "
                        f"…`) or pass a value (`-p {param.name}=…`, or archdsl.build(…, {param.name}=…))",
                        param.span,
                    )
                )
        if unbound:
            return None
        arguments = [(name, value, model.name_span) for name, value in overrides.items()]
        try:
            params = self.bind_params(model, arguments, model.name_span, f"model {model.name}")
        except Failed as failure:
            self.diagnostics.append(failure.diagnostic)
            return None
        for param in model.params:
            if param.type_name == "tensor":
                self.diagnostics.append(
                    error(
                        VALUES,
                        "a model's parameter cannot be a tensor: its inputs are `input` statements",
                        param.type_span,
                    )
                )
                return None
        return params

    def model_sections(
        self, model: ir.ModelDef, params: dict[str, Any]
    ) -> tuple[list[Value], TrainSpec | None]:
        """The model's inputs and its train section; each input's value, with its name."""
        inputs: list[Value] = []
        train: TrainSpec | None = None
        first_input: Span | None = None
        seen_layer = False
        failed = False
        misplaced = False
        for statement in model.body:
            if isinstance(statement, ir.Input):
                if seen_layer and not misplaced:
                    misplaced = True
                    self.diagnostics.append(
                        error(MODEL_STRUCTURE, "input must come before the first layer", statement.span)
                    )
                if inputs and (inputs[0].name is None or not statement.binds):
                    assert first_input is not None
                    self.diagnostics.append(
                        error(
                            MODEL_STRUCTURE,
                            "a model with several inputs names each: `input [1, 28, 28] as image`, "
                            "and reads them by name",
                            statement.span,
                            Note(message=f"the first is at {first_input}", span=first_input),
                        )
                    )
                    continue
                first_input = first_input or statement.span
                if statement.dims is None:  # reported by `check_definitions`
                    failed = True
                    continue
                dims = resolver_input_dims(self, statement, params)
                if dims is None:
                    failed = True
                    continue
                name = None
                if statement.binds:
                    if statement.binds_tuple or len(statement.binds) > 1:
                        self.diagnostics.append(
                            error(
                                VALUES,
                                "an input is one value: name it `as name`",
                                statement.binds_span or statement.span,
                            )
                        )
                    name = statement.binds[0]
                value = Value(
                    dims, input_axes(dims), None, name=name, origin="the model's input", span=statement.span
                )
                if name is not None:
                    first = next((v for v in inputs if v.name == name), None)
                    if first is not None:
                        assert first.span is not None
                        self.diagnostics.append(
                            error(
                                DUPLICATE,
                                f"the input '{name}' is named twice",
                                statement.binds_span or statement.span,
                                Note(message=f"first named at {first.span}", span=first.span),
                            )
                        )
                        failed = True
                        continue
                    self.named.append((name, statement.binds_span or statement.span, value))
                inputs.append(value)
            elif isinstance(statement, ir.Train):
                if train is not None:
                    self.diagnostics.append(
                        error(MODEL_STRUCTURE, "a model has one train section", statement.span)
                    )
                    continue
                train = validate_train(
                    statement, lambda expr: self.evaluate(expr, params), self.bind, self.diagnostics
                )
            elif not isinstance(statement, ir.Output):
                seen_layer = True
        if first_input is None:
            self.diagnostics.append(
                error(
                    MODEL_STRUCTURE,
                    f"model '{model.name}' has no input statement: say what one sample is, "
                    "e.g. `input [1, 28, 28]`",
                    model.name_span,
                )
            )
        return ([] if failed else inputs), train


#: A layer's record holds no statements and no joins: one empty tuple serves them all.
_LEAF: Any = ()
#: A layer kind that is no bare parameter does not override this (asking costs a call per node).
_NO_PARAMETER = layers.Layer.parameter
_PLAIN_USE = layers.Layer.use

#: Statements that are no step of the flow: a model's inputs and train section, an output.
_SECTIONS = frozenset({"input", "train", "output"})


class Found(Exception):
    """`elaborate_part` found its statement: what it made at the input given."""

    def __init__(self, made: Made):
        super().__init__()
        self.made = made


def elaborate_part(
    model: ir.ModelDef, blocks: dict[str, BlockEntry], path: str, shape: tuple[int, ...]
) -> tuple[Made | None, list[Diagnostic]]:
    """What the statement of `model` at module path `path` makes of an input of `shape` (the
    statements before it elaborated as the model has them), and the diagnostics of doing so; the
    whole model's output for `path` "" (its input replaced)."""
    elaborator = Elaborator(blocks)
    if not path:
        replaced = [
            s.model_copy(update={"dims": [ir.IntLit.of(span=s.span, value=d) for d in shape]})
            if isinstance(s, ir.Input)
            else s
            for s in model.body
        ]
        shaped = elaborator.model(model.model_copy(update={"body": replaced}), {})
        if shaped is None or shaped.graph is None:
            return None, elaborator.diagnostics
        outputs = shaped.graph.outputs
        record = Shaped(
            "block",
            model.name,
            "",
            "",
            None,
            model.span,
            shape,
            outputs[0].shape,  # type: ignore[arg-type]
            shaped.params,
            shaped.macs,
            {},
            shaped.layers,
        )
        return Made(record, list(outputs)), elaborator.diagnostics
    elaborator.probe = (path, shape)
    try:
        elaborator.model(model, {})
    except Found as found:
        return found.made, elaborator.diagnostics
    return None, elaborator.diagnostics


def _with_channels(diagnostic: Diagnostic, call: ir.Call, channels: Any) -> Diagnostic:
    """A bad value computed from `channels` says what `channels` was."""
    if diagnostic.code != BAD_VALUE or channels is UNKNOWN:
        return diagnostic
    for arg in call.args:
        span = arg.value.span if arg.name is None else arg.span
        if span == diagnostic.span and mentions(arg.value, (CHANNELS_NAME,)):
            return diagnostic.model_copy(
                update={"message": f"{diagnostic.message} (with channels = {channels})"}
            )
    return diagnostic


def elaborate_model(
    model: ir.ModelDef, blocks: dict[str, BlockEntry], overrides: dict[str, Any] | None = None
) -> tuple[ShapedModel | None, list[Diagnostic]]:
    elaborator = Elaborator(blocks)
    shaped = elaborator.model(model, overrides or {})
    return shaped, elaborator.diagnostics


__all__ = ["BadValue", "Elaborator", "elaborate_model", "elaborate_part", "fmt"]
