"""The language's statements, each defined once: how it lowers into the dataflow graph.

One class per construct, as `archdsl/layers/` holds one class per layer kind: its signature (the
arguments of `residual(...)` and `concat(...)`), its lowering into nodes of the graph, and the
diagnostics only it can phrase (a residual body that changes the shape, concat branches that
disagree). `elaborate.py` walks a body and hands each statement to its construct; nothing after
the graph knows the constructs: a residual is a body and an `add`, a gate a body and a `mul`, a
concat its branches and a `cat`, a projection shortcut a conv and a batchnorm.

Its length (about a thousand lines) is seven construct classes of 50 to 250 lines, kept in one
module so that every construct's lowering reads in one place; more constructs would make it a
package, as `layers/` is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from . import ir, layers
from .codes import (
    BAD_VALUE,
    CONCAT_MISMATCH,
    DUPLICATE,
    GATE_MISMATCH,
    INEXACT,
    RECURSION,
    RESIDUAL_MISMATCH,
    TOO_LARGE,
)
from .converters import UNKNOWN, Symbol, TensorRef, describe
from .errors import Failed, Note, Span, error, warning
from .frames import Frame, Made, Namespace, Scope, dry
from .graph import Module, Node, Shaped, Value
from .hints import describe as describe_fixes
from .hints import padding_fix
from .layers import CONCAT, RESIDUAL, Signature
from .resolve import MAX_EXPANDED_LAYERS, _called_from, unknown_layer
from .sizes import fmt, pair_text

if TYPE_CHECKING:
    from .elaborate import Elaborator


def _dry(span: Span | None = None, count: int = 1) -> list[Value]:
    return [dry(span) for _ in range(count)]


def _shaped(value: Value | None) -> bool:
    return value is not None and value.shape is not None


def _composite(
    kind: str,
    statement: ir.Stmt,
    frame: Frame,
    key: str,
    label: str | None,
    x: Value,
    y: Value,
    children: list[Shaped],
    *,
    op: str | None = None,
    args: dict[str, Any] | None = None,
) -> Shaped:
    assert x.shape is not None and y.shape is not None
    return Shaped(
        kind,
        op or kind,
        key,
        frame.module.prefix + key,
        label,
        statement.span,
        x.shape,
        y.shape,
        sum(c.params for c in children),
        sum(c.macs for c in children),
        args or {},
        children,
        spliced=statement.splice,
        axes=y.axes,
    )


def _own_module(frame: Frame, statement: ir.Stmt, key: str, title: str) -> Module | None:
    """The module a composite statement makes (None when spliced: its members are `frame`'s)."""
    if statement.splice:
        return None
    return Module(key, frame.module.prefix + key, frame.module, title)


def _register(frame: Frame, module: Module | None, record: Shaped, outputs: list[Value]) -> None:
    """Registers a composite's module on its parent, once it is made; what it gives comes first
    among its module's outputs."""
    if module is not None:
        module.record = record
        module.returns = list(outputs)
        frame.module.members[module.key] = module


def given_by(frame: Frame) -> list[Value]:
    """What a body gave: its last statement's values (several, where it gave several)."""
    if frame.flow is not None or not frame.last:
        return [frame.flow] if frame.flow is not None else []
    return list(frame.last)


class Construct:
    """A statement kind. `lower` elaborates one statement receiving `frame.flow`, as the member
    `key` (labelled `label`) of `frame`'s namespace, and says what it made."""

    kind: ClassVar[str]
    signature: ClassVar[Signature | None] = None

    def lower(self, elab: Elaborator, statement: Any, frame: Frame, key: str, label: str | None) -> Made:
        raise NotImplementedError

    def describe(self, record: Shaped) -> str:
        """A short label for a statement of this kind in tables (`summary`, `docs`)."""
        return record.op


class Call(Construct):
    """A layer, or a block call: `conv(6, kernel=5)`, `Stage(128)`, `Up(x3, 256)`."""

    kind = "call"

    def lower(self, elab: Elaborator, statement: ir.Call, frame: Frame, key: str, label: str | None) -> Made:
        # Built-in layers, then blocks, then plugins: a spec that calls only built-ins and blocks
        # never scans the installed packages for plugins, and a block hides a plugin's layer.
        spec = layers.LAYERS.get(statement.op)
        if spec is None and statement.op not in elab.blocks:
            spec = layers.find(statement.op)
        if spec is not None:
            if statement.splice:
                raise Failed(
                    error(
                        BAD_VALUE,
                        f"`*` splices the members of a block, repeat, concat, residual, gate or group "
                        f"into the enclosing module; {statement.op} is a layer, one member already",
                        statement.span,
                    )
                )
            return elab.layer(spec, statement, frame, key, label)
        entry = elab.blocks.get(statement.op)
        if entry is None:
            if frame.stack:  # inside a block body: `check_definitions` reported it at the definition
                return Made(None, _dry(statement.span))
            raise Failed(unknown_layer(statement, elab.blocks))
        if entry.definition is None:  # its definition has a syntax error, reported already
            return Made(None, _dry(statement.span))
        return BLOCK_CALL.lower_call(elab, statement, entry, frame, key, label)


class BlockCall:
    """A block's body, elaborated with its parameters bound, in a module of its own (none when
    spliced) that receives what the call receives and the tensors passed to its parameters."""

    def lower_call(
        self, elab: Elaborator, call: ir.Call, entry: Any, frame: Frame, key: str, label: str | None
    ) -> Made:
        definition = entry.definition
        if definition.name in frame.stack:
            cycle = " → ".join([*frame.stack[frame.stack.index(definition.name) :], definition.name])
            raise Failed(error(RECURSION, f"block '{definition.name}' calls itself: {cycle}", call.op_span))
        x = frame.flow
        arguments = elab.arguments(call.args, frame, elab.channels_of(x))
        elab.values = {}  # a default sees the block's parameters only
        params = elab.bind_params(definition, arguments, call.span, f"block {definition.name}")
        tensors = {name: v for name, v in params.items() if isinstance(v, TensorRef)}
        dry = frame.never or not _shaped(x) or any(v.value.shape is None for v in tensors.values())
        module = None if dry else _own_module(frame, call, key, definition.name)
        if dry:
            module_for_body = Module(key, frame.module.prefix + key, None, definition.name)
        else:
            module_for_body = module or frame.module
        if module is not None:
            assert x is not None
            module.preferred = [x, *(v.value for v in tensors.values())]
            module.names = {v.value: name for name, v in tensors.items()}
        scope = Scope(dict(params), body=definition.body)
        for name, reference in tensors.items():
            scope.values[name] = reference.value
            scope.spans[name] = reference.span
            param = next(p for p in definition.params if p.name == name)
            elab.named.append((name, param.span, reference.value))
        inner = Frame(
            module_for_body,
            Namespace() if (module is not None or dry) else frame.space,
            scope,
            x if x is not None else _dry(call.span)[0],
            (*frame.stack, definition.name),
            frame.weight,
            never=frame.never,
            top=True,
        )
        # The body resolves among the blocks visible where it was written; its problems get a
        # note naming this call.
        caller_blocks, elab.blocks = elab.blocks, entry.scope
        caller_scope = elab.current_scope
        first_new = len(elab.diagnostics)
        failed_before = elab.failed
        try:
            records = elab.body(definition.body, inner)
            outputs = scope.outputs if scope.outputs is not None else given_by(inner)
            if not dry and elab.failed == failed_before and all(_shaped(v) for v in outputs):
                elab.check_used(scope, outputs)
        finally:
            elab.blocks = caller_blocks
            elab.current_scope = caller_scope
        elab.diagnostics[first_new:] = [
            _called_from(d, call, definition) for d in elab.diagnostics[first_new:]
        ]
        if dry or not outputs or not all(_shaped(v) for v in outputs):
            count = len(scope.outputs) if scope.outputs is not None else _declared_outputs(definition)
            return Made(None, _dry(call.span, count))
        assert x is not None
        record = _composite(
            "block", call, frame, key, label, x, outputs[0], records, op=definition.name, args=dict(params)
        )
        record.block = entry
        _register(frame, module, record, outputs)
        return Made(record, list(outputs))


def _declared_outputs(definition: ir.BlockDef) -> int:
    for statement in definition.body:
        if isinstance(statement, ir.Output):
            return len(statement.items)
    return 1


BLOCK_CALL = BlockCall()


class Group(Construct):
    """`{ body }`: statements gathered under one module, as `nn.Sequential` gathers them."""

    kind = "group"

    def lower(self, elab: Elaborator, statement: ir.Group, frame: Frame, key: str, label: str | None) -> Made:
        x = frame.flow
        module = _own_module(frame, statement, key, "Sequential")
        inner = frame.inner(module)
        records = elab.body(statement.body, inner)
        outputs = given_by(inner)
        if not _shaped(x) or frame.never or not outputs or not all(_shaped(v) for v in outputs):
            return Made(None, _dry(statement.span, max(len(outputs), 1)))
        assert x is not None
        record = _composite("group", statement, frame, key, label, x, outputs[0], records)
        _register(frame, module, record, outputs)
        return Made(record, outputs)


class Gate(Construct):
    """`gate { body }`: the input times what the body makes of it (squeeze-and-excitation)."""

    kind = "gate"

    def lower(self, elab: Elaborator, statement: ir.Gate, frame: Frame, key: str, label: str | None) -> Made:
        x = frame.flow
        module = _own_module(frame, statement, key, "Gate")
        inner = frame.inner(module)
        records = elab.body(statement.body, inner)
        g = inner.flow
        if not _shaped(x) or frame.never or not _shaped(g):
            return Made(None, _dry(statement.span))
        assert x is not None and g is not None and x.shape is not None and g.shape is not None
        xs, gs = x.shape, g.shape
        # The gate may be narrower than x on any axis, where it is 1 (and PyTorch broadcasts it:
        # [C, 1, 1] scales channels, [1, H, W] positions); a rank or size it cannot broadcast to
        # x's shape, or one that would enlarge x, is refused rather than broadcast.
        if len(gs) != len(xs) or any(a not in (1, b) for a, b in zip(gs, xs, strict=True)):
            hint = ""
            if len(gs) < len(xs):
                hint = "; PyTorch would align its axes with x's last ones: view it to the same rank"
            raise Failed(
                error(
                    GATE_MISMATCH,
                    f"gate gives {fmt(gs)}, which cannot scale its input {fmt(xs)}: each axis must be "
                    f"the input's size or 1{hint}",
                    statement.span,
                    Note(
                        message=f"the gate's body ends at line {g.span.line if g.span else '?'} "
                        f"with {fmt(gs)}"
                    ),
                )
            )
        (module or frame.module).hints.setdefault(g, "gate")
        path = frame.module.prefix + key
        join = elab.function("mul", statement.span, inner, (x, g), f"{path}:mul", module=module, skips=(0,))
        y = join.outputs[0]
        record = _composite("gate", statement, frame, key, label, x, y, records)
        record.joins.append(join)
        _register(frame, module, record, [y])
        return Made(record, [y])


class Residual(Construct):
    """`residual { body }`: body(x) + shortcut(x); the shortcut is x itself, a projection (a 1×1
    conv, or a linear layer for [F], with a batchnorm after it if asked), or a written-out path."""

    kind = "residual"

    def describe(self, record: Shaped) -> str:
        return f"residual ({record.args['shortcut']})"

    signature = RESIDUAL

    def lower(
        self, elab: Elaborator, statement: ir.Residual, frame: Frame, key: str, label: str | None
    ) -> Made:
        x = frame.flow
        elab.here(frame, elab.channels_of(x))
        args, spans = elab.bind(
            RESIDUAL,
            elab.evaluated_args(statement.args, frame.scope.params),
            statement.span,
            frame.scope.params,
        )
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
        module = _own_module(frame, statement, key, "Residual")
        inner = frame.inner(module)
        # The written-out shortcut's module stands among the body's where it is written (RegNet
        # registers `proj` before `f`), so its members are claimed in that order.
        at = statement.shortcut_at if statement.shortcut is not None else len(statement.body)
        records = elab.body(statement.body[:at], inner)
        path_record: Shaped | None = None
        path_value: Value | None = None
        if statement.shortcut is not None:
            path_record, path_value = BRANCH.lower_branch(
                elab, statement.shortcut, inner, x, default="shortcut", kind="shortcut"
            )
        body_end = len(records)
        records += elab.body(statement.body[at:], inner)
        y = inner.flow
        if not _shaped(x) or frame.never or not _shaped(y):
            if shortcut == "project" and not frame.never:
                inner.space.names.setdefault("shortcut", statement.span)
            return Made(None, _dry(statement.span))
        assert x is not None and y is not None and x.shape is not None and y.shape is not None
        xs, ys = x.shape, y.shape
        if shortcut == "identity":
            if xs != ys:
                raise Failed(
                    error(
                        RESIDUAL_MISMATCH,
                        f"residual body changes the shape {fmt(xs)} → {fmt(ys)}, so it "
                        f"cannot be added to its input; {_residual_hint(xs, ys, records)}",
                        statement.span,
                        Note(
                            message=f"the body ends at line {y.span.line if y.span else '?'} with {fmt(ys)}"
                        ),
                    )
                )
            s = x
        elif shortcut == "path":
            if path_record is None or not _shaped(path_value):
                return Made(None, _dry(statement.span))
            assert path_value is not None and path_value.shape is not None
            if path_value.shape != ys:
                assert statement.shortcut is not None
                raise Failed(
                    error(
                        RESIDUAL_MISMATCH,
                        f"residual body gives {fmt(ys)} but its shortcut gives {fmt(path_value.shape)}: "
                        "the two are added, so they must be equal",
                        statement.span,
                        Note(
                            message=f"the shortcut is at {statement.shortcut.span}",
                            span=statement.shortcut.span,
                        ),
                    )
                )
            records.insert(body_end, path_record)
            s = path_value
        else:
            projection = self.projection(elab, statement, inner, module, x, y, args, spans, records)
            records.append(projection)
            s = projection_value(projection)
        owner = module or frame.module
        owner.hints.setdefault(x, "identity")
        if s is not x:
            owner.hints.setdefault(s, "shortcut")
        path = frame.module.prefix + key
        join = elab.function("add", statement.span, inner, (y, s), f"{path}:add", module=module, skips=(1,))
        out = join.outputs[0]
        record = _composite(
            "residual", statement, frame, key, label, x, out, records, args={"shortcut": shortcut}
        )
        record.joins.append(join)
        _register(frame, module, record, [out])
        return Made(record, [out])

    def projection(
        self,
        elab: Elaborator,
        statement: ir.Residual,
        frame: Frame,
        module: Module | None,
        x: Value,
        y: Value,
        args: dict[str, Any],
        spans: dict[str, Span],
        body: Sequence[Shaped],
    ) -> Shaped:
        """The shortcut `project` asks for, as ordinary nodes: a 1×1 conv (a linear layer for [F])
        from x's channels to y's, and a batchnorm after it with `batchnorm=true`, both under the
        member `shortcut`."""
        assert x.shape is not None and y.shape is not None
        xs, ys = x.shape, y.shape
        span = spans.get("shortcut", statement.span)
        owner = module or frame.module
        key = elab.claim(frame.space, "shortcut", statement.span)
        stride: tuple[int, int] | None = None
        if len(xs) == 1 and len(ys) == 1:
            if args["stride"] is not None:
                raise Failed(
                    error(
                        RESIDUAL_MISMATCH,
                        "a projection of [F] features is a linear layer: it takes no stride",
                        spans["stride"],
                    )
                )
            op, layer_args = "linear", {"out": ys[0], "bias": args["bias"], "in": None}
        elif len(xs) != 3 or len(ys) != 3:
            raise Failed(
                error(
                    RESIDUAL_MISMATCH,
                    f"a projection shortcut maps [C, H, W] or [F]; here the body maps {fmt(xs)} → {fmt(ys)}",
                    statement.span,
                )
            )
        else:
            stride = self.stride(elab, statement, xs, ys, args, spans, span, body)
            op = "conv"
            layer_args = {
                "out": ys[0],
                "kernel": (1, 1),
                "stride": stride,
                "padding": (0, 0),
                "dilation": (1, 1),
                "groups": 1,
                "bias": args["bias"],
                "in": None,
            }
        if not args["batchnorm"]:
            made = elab.apply(layers.LAYERS[op], span, key, None, frame, (x,), layer_args, module=owner)
            assert isinstance(made.record, Node)
            made.record.skips = (0,)
            return made.record
        holder = Module(key, owner.prefix + key, owner, "Sequential")
        inner = frame.inner(holder, Namespace())
        first = elab.apply(
            layers.LAYERS[op],
            span,
            elab.claim(inner.space, None, span),
            None,
            inner,
            (x,),
            layer_args,
            module=holder,
        )
        first.record.skips = (0,)  # type: ignore[union-attr]
        norm_args = {a.name: a.default for a in layers.LAYERS["batchnorm"].args}
        second = elab.apply(
            layers.LAYERS["batchnorm"],
            span,
            elab.claim(inner.space, None, span),
            None,
            inner,
            tuple(first.outputs),
            norm_args,
            module=holder,
        )
        assert first.record is not None and second.record is not None
        children = [first.record, second.record]
        output = second.outputs[0]
        record = Shaped(
            "shortcut",
            "project",
            key,
            holder.path,
            None,
            span,
            xs,
            ys,
            sum(c.params for c in children),
            sum(c.macs for c in children),
            {"batchnorm": True},
            children,
            axes=output.axes,
            result=output,
        )
        holder.record = record
        owner.members[key] = holder
        return record

    def stride(
        self,
        elab: Elaborator,
        statement: ir.Residual,
        xs: tuple[int, ...],
        ys: tuple[int, ...],
        args: dict[str, Any],
        spans: dict[str, Span],
        span: Span,
        body: Sequence[Shaped],
    ) -> tuple[int, int]:
        from .shapes import projection_stride

        strides = []
        for axis, name in ((1, "height"), (2, "width")):
            stride = projection_stride(xs[axis], ys[axis])
            if args["stride"] is not None:
                given = args["stride"][axis - 1]
                if (xs[axis] - 1) // given + 1 != ys[axis]:
                    wanted = tuple(
                        (size - 1) // step + 1 for size, step in zip(xs[1:], args["stride"], strict=True)
                    )
                    raise Failed(
                        error(
                            RESIDUAL_MISMATCH,
                            f"the projection's stride {given} maps {name} {xs[axis]} to "
                            f"{(xs[axis] - 1) // given + 1}, but the body gives {ys[axis]}",
                            spans["stride"],
                            *_projection_fix(body, xs, ys, lambda sizes, wanted=wanted: sizes == wanted),
                        )
                    )
                stride = given
            if stride is None:
                raise Failed(
                    error(
                        RESIDUAL_MISMATCH,
                        f"no 1×1 projection maps {fmt(xs)} to {fmt(ys)}: no stride takes "
                        f"{name} {xs[axis]} to {ys[axis]}",
                        statement.span,
                        *_projection_fix(
                            body,
                            xs,
                            ys,
                            lambda sizes: all(
                                projection_stride(n, m) is not None
                                for n, m in zip(xs[1:], sizes, strict=True)
                            ),
                        ),
                    )
                )
            strides.append(stride)
        if args["stride"] is None and max(strides) > 2:
            # The smallest stride that gives the body's size; past 2 it reads one input pixel in
            # stride², which a body that pools or gates its input does not (see `gate`).
            elab.report(
                warning(
                    INEXACT,
                    f"the projection's inferred stride {pair_text((strides[0], strides[1]))} maps "
                    f"{fmt(xs)} to {fmt(ys)} reading one input pixel in {strides[0] * strides[1]:,}: "
                    "to scale the input by what the body makes of it, write `gate { … }`; to keep "
                    "this projection, give its stride (`stride=…`)",
                    span,
                )
            )
        return strides[0], strides[1]


def _projection_fix(
    body: Sequence[Shaped], xs: tuple[int, ...], ys: tuple[int, ...], wanted: Any
) -> list[Note]:
    """The paddings after which a 1×1 projection meets the body: the usual cause is a strided
    window layer written without padding, which loses a row that the projection keeps."""
    found = padding_fix(body, xs[1:], wanted)
    if found is None:
        return []
    fixes, sizes = found
    return [
        Note(
            message=f"likely fix: {describe_fixes(fixes)}; the body would give {fmt((ys[0], *sizes))}",
            span=fixes[0].node.span,
        )
    ]


def projection_value(record: Shaped) -> Value:
    """The value a projection shortcut makes: its last node's output."""
    node = record if not record.children else record.children[-1]
    return node.outputs[0]  # type: ignore[attr-defined]


def _residual_hint(x: tuple[int, ...], y: tuple[int, ...], body: Sequence[Shaped]) -> str:
    if len(x) == len(y) and x[0] == y[0] and all(size == 1 for size in y[1:]) and x != y:
        return "to scale the input by it (squeeze-and-excitation), write `gate { … }`"
    if len(x) == len(y) and x[0] == y[0]:
        found = padding_fix(body, x[1:], lambda sizes: sizes == x[1:])
        if found is not None:
            return f"likely fix: {describe_fixes(found[0])}, which keeps {fmt(x)}"
    return "use residual(shortcut=project), or write its shortcut out (`shortcut { … }`)"


def _concat_fixes(branches: list[Shaped]) -> list[Note]:
    """The paddings that bring the branches that disagree with the first to its size; or, where
    the first alone is the odd one out, that bring it to the others'."""
    first = branches[0]
    odd = [b for b in branches[1:] if b.output[1:] != first.output[1:]]
    if len(odd) == len(branches) - 1 and len({b.output[1:] for b in odd}) == 1:
        found = padding_fix([first], first.input[1:], lambda sizes: sizes == odd[0].output[1:])
        if found is not None:
            return [_fix_note(first, *found)]
    notes = []
    for branch in odd:
        found = padding_fix([branch], branch.input[1:], lambda sizes: sizes == first.output[1:])
        if found is not None:
            notes.append(_fix_note(branch, *found))
    return notes


def _fix_note(branch: Shaped, fixes: list[Any], sizes: tuple[int, ...]) -> Note:
    shape = fmt((branch.output[0], *sizes))
    return Note(
        message=f"likely fix: {describe_fixes(fixes)}; branch {branch.name} would give {shape}",
        span=fixes[0].node.span,
    )


class Branch:
    """A concat's branch, or a residual's written-out shortcut: a module of its own, unless spliced
    (`*branch`), when its members are the enclosing module's."""

    def lower_branch(
        self,
        elab: Elaborator,
        branch: ir.Branch,
        frame: Frame,
        x: Value | None,
        default: str | None = None,
        kind: str = "branch",
    ) -> tuple[Shaped | None, Value | None]:
        if branch.splice:
            key = frame.space.anonymous()
            module = None
            inner = frame.inner(flow=x)
        else:
            # A branch whose name is refused refuses its concat (or residual), as a statement
            # whose name is refused stops the flow.
            key = elab.claim(frame.space, branch.name or default, branch.span)
            module = Module(key, frame.module.prefix + key, frame.module, "Sequential")
            inner = frame.inner(module, Namespace(), flow=x)
        records = elab.body(branch.body, inner)
        y = inner.flow
        if not _shaped(x) or frame.never or not _shaped(y):
            return None, None
        assert x is not None and x.shape is not None and y is not None and y.shape is not None
        record = Shaped(
            kind,
            "path" if kind == "shortcut" else "branch",
            key,
            frame.module.prefix + key,
            branch.name if not branch.splice else None,
            branch.span,
            x.shape,
            y.shape,
            sum(c.params for c in records),
            sum(c.macs for c in records),
            {},
            records,
            spliced=branch.splice,
            axes=y.axes,
            result=y,
        )
        if module is not None:
            module.record = record
            frame.module.members[key] = module
        return record, y


BRANCH = Branch()


class Concat(Construct):
    """`concat { branch … }`: every branch on the input (or, with `split`, each on its share of the
    channels), joined on the channel axis."""

    kind = "concat"

    def describe(self, record: Shaped) -> str:
        split = record.args.get("split")
        return "concat, split " + "+".join(str(size) for size in split) if split else "concat"

    signature = CONCAT

    def lower(
        self, elab: Elaborator, statement: ir.Concat, frame: Frame, key: str, label: str | None
    ) -> Made:
        x = frame.flow
        elab.here(frame, elab.channels_of(x))
        args, spans = elab.bind(
            CONCAT,
            elab.evaluated_args(statement.args, frame.scope.params),
            statement.span,
            frame.scope.params,
        )
        if not statement.branches:
            raise Failed(error(BAD_VALUE, "concat needs at least one branch", statement.span))
        split = args["split"]
        if isinstance(split, tuple) and len(split) != len(statement.branches):
            raise Failed(
                error(
                    BAD_VALUE,
                    f"concat split gives {len(split)} channel counts for {len(statement.branches)} branches",
                    spans["split"],
                )
            )
        module = _own_module(frame, statement, key, "Concat")
        inner = frame.inner(module)
        live = _shaped(x) and not frame.never
        parts: list[Value | None] = [x] * len(statement.branches)
        splits: list[Any] = []
        if split is not False and live:
            assert x is not None
            divider = self.split(elab, statement, inner, module, x, split, spans, frame.module.prefix + key)
            parts, splits = list(divider.outputs), [divider]
        branches = [
            BRANCH.lower_branch(elab, branch, inner, part)
            for branch, part in zip(statement.branches, parts, strict=True)
        ]
        if not live or any(record is None for record, _ in branches):
            return Made(None, _dry(statement.span))
        assert x is not None
        records = [record for record, _ in branches if record is not None]
        values = [value for _, value in branches if value is not None]
        first = records[0]
        for other in records[1:]:
            if len(other.output) != len(first.output) or other.output[1:] != first.output[1:]:
                notes = [
                    Note(message=f"branch {b.name} (line {b.span.line}) gives {fmt(b.output)}", span=b.span)
                    for b in records
                ]
                notes += _concat_fixes(records)
                what = "H and W" if len(first.output) == 3 else "every axis but the first"
                raise Failed(
                    error(
                        CONCAT_MISMATCH,
                        f"concat branches must agree on {what}: branch {first.name} "
                        f"gives {fmt(first.output)}, branch {other.name} gives {fmt(other.output)}",
                        statement.span,
                        *notes,
                    )
                )
        for value in values:
            (module or frame.module).hints.setdefault(value, "branch")
        path = frame.module.prefix + key
        join = elab.function("cat", statement.span, inner, tuple(values), f"{path}:concat", module=module)
        y = join.outputs[0]
        sizes = tuple(v.shape[0] for v in parts) if split is not False else None  # type: ignore[union-attr, index]
        record = _composite("concat", statement, frame, key, label, x, y, records, args={"split": sizes})
        record.joins.extend(splits)
        record.joins.append(join)
        _register(frame, module, record, [y])
        return Made(record, [y])

    def split(
        self,
        elab: Elaborator,
        statement: ir.Concat,
        frame: Frame,
        module: Module | None,
        x: Value,
        split: Any,
        spans: dict[str, Span],
        path: str,
    ) -> Any:
        """The node that gives the branches their shares of the input's channels."""
        assert x.shape is not None
        channels = x.shape[0]
        count = len(statement.branches)
        span = spans.get("split", statement.span)
        if split is True:
            # torch.chunk's shares: ⌈C/n⌉ each, the last what is left, and fewer when that runs out.
            from .layers.joins import chunks

            sizes = chunks(channels, count)
            if len(sizes) != count:
                raise Failed(
                    _with_source(
                        elab,
                        error(
                            CONCAT_MISMATCH,
                            f"concat(split=true) cannot share {channels} channels among {count} branches: "
                            f"torch.chunk gives {len(sizes)} parts ({' + '.join(map(str, sizes))})",
                            span,
                        ),
                        x,
                    )
                )
        else:
            sizes = list(split)
            if sum(sizes) != channels:
                raise Failed(
                    _with_source(
                        elab,
                        error(
                            CONCAT_MISMATCH,
                            f"concat split {' + '.join(map(str, sizes))} = {sum(sizes)} channels, but the "
                            f"input has {channels} ({fmt(x.shape)})",
                            span,
                        ),
                        x,
                    )
                )
        owner = module or frame.module
        made = elab.apply(
            layers.LAYERS["split"],
            statement.span,
            frame.space.anonymous(),
            None,
            frame,
            (x,),
            {"sizes": tuple(sizes)},
            module=owner,
        )
        for value in made.outputs:
            owner.hints.setdefault(value, "part")
        node = made.record
        node.path = f"{path}:split"  # type: ignore[union-attr]
        return node


def _with_source(elab: Elaborator, diagnostic: Any, x: Value) -> Any:
    from .shapes import with_origin

    return with_origin(diagnostic, x, elab.shape_context)


class Repeat(Construct):
    """`repeat N { body }`: the body N times in sequence, its passes' members the repeat's (or, spliced,
    the enclosing module's), numbered on through the passes; `as i` names the pass's index."""

    kind = "repeat"

    def describe(self, record: Shaped) -> str:
        return f"repeat ×{record.args['count']}"

    def lower(
        self, elab: Elaborator, statement: ir.Repeat, frame: Frame, key: str, label: str | None
    ) -> Made:
        x = frame.flow
        elab.here(frame, elab.channels_of(x))
        params = frame.scope.params
        count = elab.evaluate(statement.count, params)
        if isinstance(count, Symbol):
            raise Failed(elab.unknown_name(count.name, statement.count.span, params))
        if count is not UNKNOWN and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
            raise Failed(
                error(BAD_VALUE, f"repeat needs a count ≥ 0, got {describe(count)}", statement.count.span)
            )
        weight = frame.weight * max(count if isinstance(count, int) else 1, 1)
        elab._grow(0, statement.span, weight)
        index = statement.index
        module = _own_module(frame, statement, key, "Sequential")
        if count == 0 or count is UNKNOWN or frame.never or not _shaped(x):
            # No pass runs (or none is known), so nothing is built: the body is still held to its
            # names and arguments (a typo is wrong at any count), but not to values that may be
            # wrong only at this count (a block called with n=0, w=1 whose `conv(w - 2)` never
            # runs), nor to names its passes would give twice (a repeat inside resolves one pass).
            checked = len(elab.diagnostics)
            scope = {**params, index: 0} if index else params
            sequential = Module(key, "", None, "Sequential")
            if count == 0:
                inner = frame.dead(sequential, statement.span, "repeat", weight=weight)
            else:
                inner = frame.inner(sequential, Namespace(), weight=weight)
            with _params(inner, scope):
                elab.body(statement.body, inner)
            if isinstance(count, int) and count > 1 and not frame.never:
                # A second pass in the same namespace finds a name every pass would give; of what
                # it reports, only that is new.
                second = len(elab.diagnostics)
                with _params(inner, {**params, index: 1} if index else params):
                    elab.body(statement.body, inner)
                seen = {(d.code, d.span) for d in elab.diagnostics[:second]}
                elab.diagnostics[second:] = [
                    d
                    for d in elab.diagnostics[second:]
                    if d.code == DUPLICATE and (d.code, d.span) not in seen
                ]
            if count == 0 or frame.never:
                elab.diagnostics[checked:] = [d for d in elab.diagnostics[checked:] if d.code != BAD_VALUE]
            if count == 0 and _shaped(x) and not frame.never:
                assert x is not None
                record = _composite("repeat", statement, frame, key, label, x, x, [], args={"count": 0})
                _register(frame, module, record, [x])
                return Made(record, [x])
            return Made(None, _dry(statement.span))
        assert isinstance(count, int)
        inner = frame.inner(module, weight=weight)
        passes: list[Shaped] = []
        counting = elab.counting
        current = x
        try:
            for number in range(count):
                scope = {**params, index: number} if index else params
                failed = elab.failed
                inner.flow = current
                with _params(inner, scope):
                    children = elab.body(statement.body, inner)
                if elab.too_large_reported:
                    # Refused already (E110): expanding the rest would only take the memory.
                    return Made(None, _dry(statement.span))
                output = inner.flow
                if elab.failed != failed:
                    # A pass with an error: the flow stops at it, in this pass, and the passes after
                    # it would report it again (a typo in `repeat 1000000 { … }` took a minute).
                    return Made(None, _dry(statement.span))
                if _shaped(current) and _shaped(output):
                    assert current is not None and output is not None and current.shape is not None
                    passes.append(
                        Shaped(
                            "iteration",
                            "iteration",
                            f".{number}",
                            f"{frame.module.prefix}{key}..{number}",
                            None,
                            statement.span,
                            current.shape,
                            output.shape,  # type: ignore[arg-type]
                            sum(c.params for c in children),
                            sum(c.macs for c in children),
                            {},
                            children,
                            spliced=True,
                            axes=output.axes,
                            result=output,
                        )
                    )
                current = output
                # The first pass counts for all of them (its layers weigh `weight`), so a repeat
                # that expands past the limit is refused before its other passes resolve.
                elab.counting = False
        finally:
            elab.counting = counting
        if counting:
            # Each pass is a step of inference even when its body is empty, so passes are bounded
            # too; counted after the body, whose layers report first.
            elab.passes += frame.weight * count
            if elab.passes > MAX_EXPANDED_LAYERS and not elab.too_large_reported:
                elab.too_large_reported = True
                raise Failed(
                    error(
                        TOO_LARGE,
                        f"this model's repeats make more than {MAX_EXPANDED_LAYERS:,} passes here",
                        statement.span,
                        Note(message="a repeat count or block nesting multiplies the passes in its body"),
                    )
                )
        if not _shaped(x) or not _shaped(current):
            return Made(None, _dry(statement.span))
        assert x is not None and current is not None
        record = _composite("repeat", statement, frame, key, label, x, current, passes, args={"count": count})
        _register(frame, module, record, [current])
        return Made(record, [current])


class _params:
    """Within: the frame's definition sees these parameters (a pass's index among them)."""

    def __init__(self, frame: Frame, params: dict[str, Any]):
        self.scope = frame.scope
        self.params = params

    def __enter__(self) -> None:
        self.saved = self.scope.params
        self.scope.params = self.params

    def __exit__(self, *exc: object) -> None:
        self.scope.params = self.saved


class If(Construct):
    """`if cond { … } else { … }`: the statements of the branch whose condition holds stand in its
    place, as if written there; the other branch is checked, never built."""

    kind = "if"

    def lower(self, elab: Elaborator, statement: ir.If, frame: Frame, key: str, label: str | None) -> Made:

        elab.here(frame, elab.channels_of(frame.flow))
        params = frame.scope.params
        try:
            value = elab.evaluate(statement.condition, params)
            if isinstance(value, Symbol):
                raise Failed(elab.unknown_name(value.name, statement.condition.span, params))
            if value is not UNKNOWN and not isinstance(value, bool):
                raise Failed(
                    error(
                        BAD_VALUE,
                        f"an `if` needs true or false, got {describe(value)}",
                        statement.condition.span,
                    )
                )
        except Failed as failure:
            elab.report(failure.diagnostic)
            value = UNKNOWN
        chosen: Sequence[ir.Stmt] = ()
        others: list[Sequence[ir.Stmt]] = [statement.body, statement.orelse]
        if value is True:
            chosen, others = statement.body, [statement.orelse]
        elif value is False:
            chosen, others = statement.orelse, [statement.body]
        records = elab.body(chosen, frame) if chosen else []
        for other in others:
            if not other:
                continue
            checked = len(elab.diagnostics)
            elab.body(other, frame.dead(Module("", "", None, "Sequential"), statement.span, "if"))
            elab.diagnostics[checked:] = [d for d in elab.diagnostics[checked:] if d.code != BAD_VALUE]
        if value is UNKNOWN:
            frame.flow = frame.flow if frame.flow is None else _dry(statement.span)[0]
        return Made(None, [frame.flow] if frame.flow is not None else [], spread=records)


CONSTRUCTS: dict[str, Construct] = {
    construct.kind: construct for construct in (Call(), Group(), Gate(), Residual(), Concat(), Repeat(), If())
}


def describe_record(record: Shaped) -> str:
    """A statement's short label, said by its construct; the records a construct makes inside
    it (a repeat's passes, a residual's shortcut) are said here."""
    construct = CONSTRUCTS.get(record.kind)
    if construct is not None:
        return construct.describe(record)
    if record.kind == "iteration":
        return f"pass {int(record.key[1:]) + 1}"
    if record.kind == "shortcut":
        return "projection" if record.op == "project" else "shortcut"
    return record.op
