"""Stage 5b: shaped IR → PyTorch source a person would write (pure text; never imports torch).

Consumes `ShapedModel`s (and the `Program` they come from, for its block definitions); produces one
Python module that needs only torch: a class per model and one per block, whose `__init__` takes
the incoming channel count (`in_channels`, or `in_features` for a flat input) and the block's
parameters, so `Stage(64, width=128)` in the model builds what the spec's `Stage(128)` builds there.
`generic.py` proves each block's class from its definition: its layers built from expressions in
its parameters (`nn.Conv2d(in_channels, width * 2, …)`), its shape comments in them and the input's
`H` and `W`. A block it cannot write as one class (a `linear` after `flatten` needs H·W, a projection
whose stride depends on the size, …) gets a class per distinct instance instead, with concrete
numbers (`Down`, `Down2`, …); so does every block when no `Program` is given.

Each layer is constructed with the arguments the builder (`builder.py`) gives it. The submodule tree
mirrors the builder's exactly — a body numbered 0, 1, … is an `nn.Sequential`, a body with named
statements is an `nn.Module` with attributes and a `forward`, `repeat n` with a parameter `n` is
`nn.Sequential(*(pass for i in range(n)))` — so `state_dict` keys are identical and weights load
both ways.

The output is laid out as `ruff format` (and black) would lay it out at their default line length,
88: containers are written one item per line with a trailing comma (which keeps them exploded at
any line length) and a call that does not fit on its line is exploded the same way.
"""

from __future__ import annotations

import ast
import builtins
import functools
import keyword
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from . import flow, layers
from .generic import Analysis, Generic, Param
from .shapes import Shaped, ShapedModel, fmt
from .symbolic import Sym, Value
from .values import describe

if TYPE_CHECKING:
    from .program import Program

LINE_LENGTH = 88
INDENT = " " * 4

# --- expressions and their layout -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    """One argument, list element or dict entry: `prefix` is `""`, `"name="` or `'"key": '`."""

    value: Expr | Generator | str
    prefix: str = ""
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Expr:
    """A bracketed expression (a call, a dict). `exploded` ones are written one item per line."""

    open: str
    items: tuple[Item, ...]
    close: str = ")"
    exploded: bool = False


@dataclass(frozen=True, slots=True)
class Generator:
    """`*(element for loop in range(count))`, an argument that unpacks `count` modules; with
    several elements, `*(layer for loop in range(count) for layer in (a, b))`."""

    elements: tuple[Expr | str, ...]
    loop: str
    count: Sym

    @property
    def clause(self) -> str:
        return f"for {self.loop} in range({self.count})"

    @property
    def element(self) -> Expr | str:
        if len(self.elements) == 1:
            return self.elements[0]
        return "layer"

    @property
    def inner(self) -> Expr | None:
        """`for layer in (a, b)`, the clause over a pass's several modules."""
        if len(self.elements) == 1:
            return None
        return Expr("for layer in (", tuple(Item(e) for e in self.elements), exploded=True)


def _inline(value: Expr | Generator | str) -> str | None:
    """The expression on one line, or None if it must span several."""
    if isinstance(value, str):
        return value
    if isinstance(value, Generator):
        element = _inline(value.element)
        return None if element is None or value.inner is not None else f"*({element} {value.clause})"
    if value.exploded and value.items:
        return None
    parts = []
    for item in value.items:
        text = _inline(item.value)
        if text is None or item.comment:
            return None
        parts.append(item.prefix + text)
    return value.open + ", ".join(parts) + value.close


def lay_out(
    value: Expr | Generator | str, indent: str, lead: str = "", trail: str = "", comment: str | None = None
) -> list[str]:
    """`lead`, the expression and `trail` as lines at `indent`, `# comment` after its last line."""
    note = f"  # {comment}" if comment else ""
    text = _inline(value)
    if text is not None:
        line = indent + lead + text + trail
        if (
            len(line + note) <= LINE_LENGTH
            or isinstance(value, str)
            or (isinstance(value, Expr) and not value.items)
        ):
            return [line + note]
        if len(line) <= LINE_LENGTH:
            # Fits without its comment: the comment goes above rather than the call over 4+ lines.
            return ([indent + note.strip()] if note else []) + [line]
    if isinstance(value, Generator):
        inner = [] if value.inner is None else lay_out(value.inner, indent + INDENT)
        return [
            indent + lead + "*(",
            *lay_out(value.element, indent + INDENT),
            indent + INDENT + value.clause,
            *inner,
            indent + ")" + trail + note,
        ]
    assert isinstance(value, Expr)
    lines = [indent + lead + value.open]
    for item in value.items:
        lines.extend(lay_out(item.value, indent + INDENT, item.prefix, ",", item.comment))
    lines.append(indent + value.close + trail + note)
    return lines


def call(func: str, *args: Any, exploded: bool = False, **kwargs: Any) -> Expr:
    """`func(args…, key=value…)`; values that are not expressions are written as Python literals."""
    items = [Item(a if isinstance(a, Expr) else py(a)) for a in args]
    items += [Item(v if isinstance(v, Expr) else py(v), f"{k}=") for k, v in kwargs.items()]
    return Expr(f"{func}(", tuple(items), exploded=exploded)


def py(value: Any) -> str:
    """A Python literal; an `(h, w)` pair with h == w is written as one number, as people write it."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f'float("{value}")'
    if isinstance(value, str):
        return _string(value, docstring=False)
    if isinstance(value, tuple):
        if len(value) == 2 and value[0] == value[1]:
            return py(value[0])
        return "(" + ", ".join(py(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(py(v) for v in value) + "]"
    return str(value)


# --- layers: the builder's constructors, written out ------------------------------------------------


def _string(value: str, docstring: bool) -> str:
    """A string literal as ruff writes it: double quotes, unless the text has double quotes and no
    single ones; always double quotes, escaped, inside a docstring, which `\"\"\"` would end."""
    text = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    if '"' in value and "'" not in value and not docstring:
        return "'" + text + "'"
    return '"' + text.replace('"', '\\"') + '"'


def _options(**pairs: tuple[Any, Any]) -> dict[str, Any]:
    """Keyword arguments whose value differs from torch's default: `name=(value, default)`."""
    return {name: value for name, (value, default) in pairs.items() if value != default}


#: What an emitted helper needs beyond torch (it imports it itself).
_HELPER_NEEDS = {"pretrained": "torchvision"}


def layer_source(node: Shaped, names: Names) -> Expr:
    """A layer's constructor call, written from the description its `Layer.module` gives, the one
    the builder constructs; a plugin's class is imported by its module's name."""
    module = layers.LAYERS[node.op].module(node)
    target = module.target
    if target.startswith("nn."):
        function = target
    elif target.startswith("archdsl."):
        helper = target[len("archdsl.") :]
        if helper in _HELPER_NEEDS:
            names.needs.add(_HELPER_NEEDS[helper])
        function = names.helper(helper)
    else:
        package, _, name = target.partition(":")
        names.imports.add(package)
        function = f"{package}.{name}"
    return call(function, *module.args, **module.options())


def _shortcut(node: Shaped) -> Expr:
    a = node.args
    if node.op == "linear":
        projection = call("nn.Linear", node.input[0], node.output[0], **_options(bias=(a["bias"], True)))
        norm = call("nn.BatchNorm1d", node.output[0])
    else:
        projection = call(
            "nn.Conv2d",
            node.input[0],
            node.output[0],
            kernel_size=1,
            **_options(stride=(a["stride"], (1, 1)), bias=(a["bias"], True)),
        )
        norm = call("nn.BatchNorm2d", node.output[0])
    if not a["batchnorm"]:
        return projection
    shape = fmt(node.output)
    return Expr("nn.Sequential(", (Item(projection, comment=shape), Item(norm, comment=shape)), exploded=True)


# --- helper modules: the builder's own, written out when a spec uses them --------------------------


@functools.cache
def helper_sources() -> dict[str, str]:
    """The source of each class and function in `runtime.py`, by name, read as text: the helpers
    the builder uses are copied, not restated (and emit imports no torch)."""
    text = resources.files(__package__).joinpath("runtime.py").read_text(encoding="utf-8")
    found = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            source = ast.get_source_segment(text, node)
            assert source is not None
            found[node.name] = source
    return found


def helper_source(kind: str, name: str) -> str:
    """The helper `kind` under the name `name` (`ResidualModule` beside a spec's `Residual`)."""
    source = helper_sources()[kind]
    keyword_ = "class" if source.startswith("class") else "def"
    return source.replace(f"{keyword_} {kind}(", f"{keyword_} {name}(", 1)


#: Names a class may not take: they would shadow what the emitted code uses (or not parse).
_TAKEN = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | {"torch", "nn", "OrderedDict"}


@dataclass
class Names:
    """Class names: the spec's models and blocks keep theirs; helpers and second signatures yield."""

    blocks: frozenset[str] = frozenset()  # every block called: their first signature gets the name
    taken: set[str] = field(default_factory=set)
    helpers: dict[str, str] = field(default_factory=dict)
    used_helpers: set[str] = field(default_factory=set)
    imports: set[str] = field(default_factory=set)  # modules beyond torch the code imports
    needs: set[str] = field(default_factory=set)  # and those it needs installed

    def claim(self, base: str, own: str | None = None) -> str:
        """A free name from `base` (`Stage`, `Stage2`, …; `list_` for a builtin), avoiding other
        blocks' names unless it is the block `own`'s."""
        avoid = self.taken | (self.blocks - {own} if own else self.blocks)
        base = base + "_" if base in _TAKEN else base
        name, number = base, 1
        while name in avoid:
            number += 1
            name = f"{base}{number}"
        self.taken.add(name)
        return name

    def helper(self, kind: str) -> str:
        self.used_helpers.add(kind)
        return self.helpers[kind]


def _is_attribute(key: str) -> bool:
    """Whether `self.<key>` names the submodule `key`: not a number, a keyword, or a `__private`
    name (which Python would mangle to `_Class__private`)."""
    private = key.startswith("__") and not key.endswith("__")
    return key.isidentifier() and not keyword.iskeyword(key) and not private


def _numbered(nodes: list[Shaped]) -> bool:
    return [n.key for n in nodes] == [str(i) for i in range(len(nodes))]


# --- forward: a module's flow as lines ------------------------------------------------------------


class _Forward:
    """Writes a flow (`flow.py`) as `forward`'s lines over `x`, with a name per kept tensor."""

    def __init__(self, members: dict[str, Shaped]):
        self.members = members
        self.lines: list[str] = []
        self.taken: dict[str, int] = {}

    def name(self, base: str) -> str:
        count = self.taken.get(base, 0) + 1
        self.taken[base] = count
        return base if count == 1 else f"{base}{count}"

    def line(self, text: str, comment: str | None = None) -> None:
        line = INDENT * 2 + text
        if comment is None:
            self.lines.append(line)
        elif len(f"{line}  # {comment}") <= LINE_LENGTH:
            self.lines.append(f"{line}  # {comment}")
        else:  # ruff would split the call to fit its comment: the comment goes above
            self.lines += [f"{INDENT * 2}# {comment}", line]

    def run(self, op: flow.Op, source: str, target: str) -> None:
        """Lines that compute `op` of `source` into `target`."""
        if isinstance(op, flow.Call):
            self.line(f"{target} = {_reference(op.key)}({source})", fmt(self.members[op.key].output))
        elif isinstance(op, flow.Scale):
            self.line(f"{target} = {source} * {_reference(op.key)}")
        elif isinstance(op, flow.Seq):
            if not op.steps and source != target:
                self.line(f"{target} = {source}")
            for index, step in enumerate(op.steps):
                self.run(step, source if index == 0 else target, target)
        elif isinstance(op, flow.Add):
            if op.shortcut is None:
                kept = self.name("identity")
                self.line(f"{kept} = {source}")
            else:
                kept = self.name("shortcut")
                self.run(op.shortcut, source, kept)
            self.run(op.body, source, target)
            self.line(f"{target} = {target} + {kept}")
        elif isinstance(op, flow.Mul):
            gate = self.name("gate")
            self.run(op.gate, source, gate)
            self.line(f"{target} = {source} * {gate}")
        else:
            inputs = [source] * len(op.branches)
            if op.split is not None:
                inputs = [self.name("part") for _ in op.branches]
                names = f"({inputs[0]},)" if len(inputs) == 1 else ", ".join(inputs)
                self.lines += lay_out(
                    call(f"{source}.split", list(op.split), dim=1), INDENT * 2, f"{names} = "
                )
            outputs = [self.name("branch") for _ in op.branches]
            for branch, given, output in zip(op.branches, inputs, outputs, strict=True):
                self.run(branch, given, output)
            joined = Expr("torch.cat(", (Item("[" + ", ".join(outputs) + "]"), Item("1", "dim=")))
            self.lines += lay_out(joined, INDENT * 2, f"{target} = ")


def _reference(key: str) -> str:
    return f"self.{key}" if _is_attribute(key) else f"getattr(self, {py(key)})"


# --- the walk -------------------------------------------------------------------------------------


class Emitter:
    def __init__(self, models: tuple[ShapedModel, ...], program: Program | None = None):
        self.models = models
        self.program = program
        self.analysis: Analysis | None = None
        self.names = Names()
        self.classes: list[str] = []  # block classes, dependencies first
        self.block_classes: dict[str, str] = {}  # class body → class name
        self.generic_classes: dict[str, str] = {}  # block → its one class's name
        self.uses_ordered_dict = False
        self.uses_torch = False

    def source(self) -> str:
        model_names = [self.names.claim(model.name) for model in self.models]
        self.names.blocks = frozenset(b for m in self.models for b in _block_names(m.layers))
        for kind in helper_sources():
            # `ResidualModule` rather than `Residual2` beside a spec's own `Residual` block.
            free = kind not in self.names.taken and kind not in self.names.blocks
            self.names.helpers[kind] = self.names.claim(kind if free else kind + "Module")
        if self.program is not None:
            reserved = {*self.names.taken, *self.names.blocks, *self.names.helpers.values()}
            self.analysis = Analysis(self.models, self.program.model_defs, self.program.blocks, reserved)
        model_classes = [self.model_class(m, name) for m, name in zip(self.models, model_names, strict=True)]
        helpers = [
            helper_source(kind, self.names.helpers[kind])
            for kind in helper_sources()
            if kind in self.names.used_helpers
        ]
        self.uses_torch = self.uses_torch or any("torch." in helper for helper in helpers)
        self.uses_ordered_dict = self.uses_ordered_dict or "Sequential" in self.names.used_helpers
        imports = []
        if self.uses_ordered_dict:
            imports += ["from collections import OrderedDict", ""]
        if self.uses_torch:
            imports.append("import torch")
        imports += [f"import {module}" for module in sorted(self.names.imports)]
        imports.append("from torch import nn")
        parts = ["\n".join([*self.header(), "", *imports]), *helpers, *self.classes, *model_classes]
        return "\n\n\n".join(parts) + "\n"

    def header(self) -> list[str]:
        files = list(dict.fromkeys(m.file for m in self.models))
        modules = ["torch", *sorted(self.names.imports | self.names.needs)]
        needs = modules[0] if len(modules) == 1 else ", ".join(modules[:-1]) + " and " + modules[-1]
        lines = [f"# Generated by `archdsl emit` from {', '.join(files)}; needs only {needs}."]
        for model in self.models:
            params = ", ".join(f"{k}={describe(v)}" for k, v in model.model_params.items())
            signature = f"{model.name}({params})" if params else model.name
            output = fmt(model.output) if model.output is not None else "?"
            lines.append(f"# model {signature}: {fmt(model.input)} -> {output}")
        return lines

    def model_class(self, model: ShapedModel, name: str) -> str:
        doc = f"{model.name}: {fmt(model.input)} -> {fmt(model.output or ())}, {model.params:,} parameters."
        return self.sequence_class(name, doc, model.layers)

    def sequence_class(
        self,
        name: str,
        doc: str,
        nodes: list[Shaped],
        params: tuple[str, ...] = (),
        prelude: tuple[str, ...] = (),
    ) -> str:
        """A model or block body as a class: a `Sequential` when its members run in order and are
        numbered 0, 1, … (as the builder's are), else an `nn.Module` with its members as
        attributes and a `forward` that runs its flow. `params` are `__init__`'s, after `self`."""
        members: list[Shaped] = []
        op = flow.sequence(nodes, members)
        return self.namespace_class(name, doc, members, op, params, prelude)

    def namespace_class(
        self,
        name: str,
        doc: str,
        members: list[Shaped],
        op: flow.Op,
        params: tuple[str, ...] = (),
        prelude: tuple[str, ...] = (),
    ) -> str:
        signature = lay_out(
            Expr("def __init__(", (Item("self"), *map(Item, params))), INDENT, trail=" -> None:"
        )
        head = f'    """{doc}"""\n\n' + "\n".join([*signature, *prelude]) + "\n"
        if flow.is_chain(op) and _numbered(members):
            body = "\n".join(lay_out(self.sequential_items(members), INDENT * 2, "super().__init__"))
            return f"class {name}({self.names.helper('Sequential')}):\n{head}{body}"
        self.uses_torch = True
        init = [INDENT * 2 + "super().__init__()"]
        for member in members:
            parameter = self.parameter(member)
            if parameter is not None:
                if _is_attribute(member.key):
                    init += lay_out(parameter, INDENT * 2, f"self.{member.key} = ")
                else:
                    register = Expr("self.register_parameter(", (Item(py(member.key)), Item(parameter)))
                    init += lay_out(register, INDENT * 2)
            elif _is_attribute(member.key):
                init += lay_out(self.module(member), INDENT * 2, f"self.{member.key} = ")
            else:
                add = Expr("self.add_module(", (Item(py(member.key)), Item(self.module(member))))
                init += lay_out(add, INDENT * 2)
        forward = _Forward({m.key: m for m in members})
        forward.run(op, "x", "x")
        forward.lines.append(f"{INDENT * 2}return x")
        return (
            f"class {name}(nn.Module):\n{head}"
            + "\n".join(init)
            + "\n\n    def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
            + "\n".join(forward.lines)
        )

    def parameter(self, node: Shaped) -> Expr | None:
        """`nn.Parameter(torch.full((C, 1, 1), 1e-06))` for a statement that is a bare parameter."""
        if node.kind != "layer":
            return None
        parameter = layers.LAYERS[node.op].parameter(node)
        if parameter is None:
            return None
        self.uses_torch = True
        shape = (
            "("
            + ", ".join(str(d) for d in parameter.shape)
            + ("," if len(parameter.shape) == 1 else "")
            + ")"
        )
        full = Expr("torch.full(", (Item(shape), Item(py(parameter.fill))))
        return Expr("nn.Parameter(", (Item(full),))

    def sequential_items(self, members: list[Shaped]) -> Expr:
        """`(a, b, …)` for numbered members, `(OrderedDict({"name": a, …}))` for named ones: the
        arguments of `nn.Sequential` (or of `super().__init__` in a `Sequential` subclass)."""
        if _numbered(members):
            items = tuple(Item(self.module(n), comment=fmt(n.output)) for n in members)
            return Expr("(", items, exploded=True)
        self.uses_ordered_dict = True
        entries = tuple(Item(self.module(n), f"{py(n.key)}: ", fmt(n.output)) for n in members)
        table = Expr("OrderedDict(", (Item(Expr("{", entries, "}", exploded=True)),), exploded=True)
        return Expr("(", (Item(table),), exploded=True)

    def sequential(self, members: list[Shaped], helper: str = "nn.Sequential", **options: Any) -> Expr:
        items = self.sequential_items(members).items
        extra = tuple(Item(value, f"{key}=") for key, value in options.items())
        return Expr(f"{helper}(", items + extra, exploded=True)

    def module(self, node: Shaped) -> Expr | str:
        """The expression that constructs `node`'s submodule."""
        if node.kind == "layer":
            return layer_source(node, self.names)
        if node.kind == "block":
            generic = self.analysis.generic(node.op) if self.analysis else None
            if generic is not None:
                return self.generic_call(node, generic)
            return self.block(node) + "()"
        if node.kind == "shortcut" and node.op != "path":
            return _shortcut(node)
        if node.kind == "repeat" and isinstance(node.args["count"], Sym):
            # One pass, built `count` times: the count is a parameter of the class.
            one = node.children[0].children
            passes = Generator(tuple(self.module(n) for n in one), node.args["loop"], node.args["count"])
            return Expr("nn.Sequential(", (Item(passes),), exploded=True)
        members, op = flow.module(node)
        if flow.is_chain(op):
            return self.sequential(members)
        helper = self.helper_call(node, members, op)
        if helper is not None:
            return helper
        return self.composite_class(node, members, op) + "()"

    def helper_call(self, node: Shaped, members: list[Shaped], op: flow.Op) -> Expr | None:
        """A residual, gate or concat whose body runs its members in order, through the helper
        module of its kind; None when it does not fit one."""
        if isinstance(op, flow.Mul) and flow.is_chain(op.gate):
            return self.sequential(members, self.names.helper("Gate"))
        if isinstance(op, flow.Add) and flow.is_chain(op.body):
            body = members[: len(op.body.steps)]  # type: ignore[union-attr]
            rest = members[len(body) :]
            if [m.key for m in body] != [step.key for step in op.body.steps]:  # type: ignore[union-attr]
                return None  # the shortcut stands first: the helper registers it last
            if op.shortcut is None and not rest:
                return self.sequential(body, self.names.helper("Residual"))
            if isinstance(op.shortcut, flow.Call) and len(rest) == 1:
                shortcut = rest[0]
                options: dict[str, Any] = {"shortcut": self.module(shortcut)}
                if shortcut.key != "shortcut":
                    options["name"] = py(shortcut.key)
                return self.sequential(body, self.names.helper("Residual"), **options)
        if isinstance(op, flow.Cat) and all(isinstance(b, flow.Call) for b in op.branches):
            branches = tuple(Item(self.module(b), f"{py(b.key)}: ", fmt(b.output)) for b in members)
            items = [Item(Expr("{", branches, "}", exploded=True))]
            if op.split is not None:
                items.append(Item(py(list(op.split)), "split="))
            return Expr(f"{self.names.helper('Concat')}(", tuple(items), exploded=True)
        return None

    def composite_class(self, node: Shaped, members: list[Shaped], op: flow.Op) -> str:
        """A class for a composite statement whose members do not fit a helper: one per distinct
        body, as for block instances."""
        doc = f"{node.kind} {fmt(node.input)} -> {fmt(node.output)}, {node.params:,} parameters."
        body = self.namespace_class("{name}", doc, members, op)
        name = self.block_classes.get(body)
        if name is None:
            name = self.names.claim(node.kind.capitalize())
            self.block_classes[body] = name
            self.classes.append(body.replace("class {name}(", f"class {name}(", 1))
        return name

    def block(self, node: Shaped) -> str:
        """The class of this block instance: one class per distinct body."""
        doc = f"{node.op}: {fmt(node.input)} -> {fmt(node.output)}, {node.params:,} parameters."
        body = self.sequence_class("{name}", doc, node.children)
        name = self.block_classes.get(body)
        if name is None:
            name = self.names.claim(node.op, own=node.op)
            self.block_classes[body] = name
            self.classes.append(body.replace("class {name}(", f"class {name}(", 1))
        return name

    def generic_call(self, node: Shaped, generic: Generic) -> Expr:
        """`Basic(64, width=64)`: the call of a block's one class."""
        assert self.analysis is not None
        name = self.generic_class(generic)
        args = self.analysis.call_args(node, generic)
        return call(name, *([] if args.channels is None else [args.channels]), **args.kwargs)

    def generic_class(self, generic: Generic) -> str:
        """The one class of a block whose calls all build the same code from its parameters."""
        name = self.generic_classes.get(generic.name)
        if name is not None:
            return name
        assert self.analysis is not None
        params = [f"{generic.input_name}: int"] if generic.uses_input else []
        defaulted = False
        prelude: list[str] = []  # defaults computed from earlier parameters
        for param in generic.params:
            annotation = f"{param.name}: {param.type_name}"
            if param.computed is not None:
                defaulted = True
                params.append(f"{annotation} | None = None")
                prelude.append(f"{INDENT * 2}if {param.name} is None:")
                prelude.append(f"{INDENT * 3}{param.name} = {param.computed}")
            elif param.has_default:
                defaulted = True
                params.append(f"{annotation} = {py(param.default)}")
            else:
                if defaulted and "*" not in params:
                    params.append("*")  # a required parameter after a defaulted one: keyword-only
                params.append(annotation)
        # The body first: the classes it calls come before this one.
        body = self.sequence_class("{name}", "{doc}", generic.body, tuple(params), tuple(prelude))
        name = self.names.claim(generic.name, own=generic.name)
        self.generic_classes[generic.name] = name
        built_as: dict[str, None] = {}  # each distinct call once, in order
        for call in generic.calls:
            written = str(_inline(self.generic_call(call, generic))).replace('"""', '\\"\\"\\"')
            shapes = f"{fmt(call.input)} -> {fmt(call.output)}"
            built_as[f"{written}: {shapes}, {call.params:,} parameters"] = None
        declared = ", ".join(_declaration(p) for p in generic.params)
        where = ", on an input of height H and width W" if len(generic.input) == 3 else ""
        doc = (
            f"block {generic.name}{f'({declared})' if generic.params else ''}{where}:\n"
            f"    {_shape(generic.input)} -> {_shape(generic.output)}.\n\n"
            "    Built here as\n" + "".join(f"        {c}\n" for c in built_as) + "    "
        )
        text = body.replace("class {name}(", f"class {name}(", 1).replace('"""{doc}"""', f'"""{doc}"""', 1)
        self.classes.append(text)
        return name


def _shape(shape: tuple[Value, ...]) -> str:
    """A shape whose sizes may be expressions: `[width, H // 2, W // 2]`."""
    return "[" + ", ".join(str(size) for size in shape) + "]"


def _declaration(param: Param) -> str:
    """A block parameter as the spec declares it: `width: int`, `depth: int = 2`."""
    text = f"{param.name}: {param.type_name}"
    if param.computed is not None:
        return f"{text} = {param.computed}"
    if not param.has_default:
        return text
    default = param.default
    return f"{text} = {_string(default, docstring=True) if isinstance(default, str) else describe(default)}"


def _block_names(nodes: list[Shaped]) -> list[str]:
    """The blocks called anywhere in `nodes`, in order of first call."""
    found: dict[str, None] = {}
    for node in nodes:
        if node.kind == "block":
            found[node.op] = None
        found.update(dict.fromkeys(_block_names(node.children)))
    return list(found)


def emit_source(*models: ShapedModel, program: Program | None = None) -> str:
    """Python source for `models` (checked, complete): classes whose `state_dict` keys and outputs
    are those of `archdsl.build`'s modules. Deterministic: the same models give the same text.
    With the `program` they come from, blocks that can be are written as one class each, taking
    their parameters; without it, every block is written per distinct instance."""
    if not models:
        raise ValueError("emit_source needs at least one model")
    for model in models:
        if not model.complete:
            raise ValueError(f"model {model.name} has errors; check it first")
    return Emitter(models, program).source()
