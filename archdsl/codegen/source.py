"""Stage 5b: shaped IR → PyTorch source a person would write (pure text; never imports torch).

Consumes `ShapedModel`s (and the `Program` they come from, for its block definitions); produces one
Python module that needs only torch: a class per model and one per block, whose `__init__` takes
the incoming channel count (`in_channels`, or `in_features` for a flat input) and the block's
parameters, so `Stage(64, width=128)` in the model builds what the spec's `Stage(128)` builds there.
`codegen/blocks.py` proves each block's class from its definition: its layers built from expressions in
its parameters (`nn.Conv2d(in_channels, width * 2, …)`), its shape comments in them and the input's
`H` and `W`. A tensor parameter is an input of `forward` (`forward(self, x, skip)`) whose channel
count `__init__` takes where a layer is built from it (`skip_channels`); an `if` on the parameters
whose branches build the same members is a Python `if` in `__init__` (in a list of layers, a
conditional expression); a size `forward` needs beyond its tensors (a split's) is kept on the
module. A block it cannot write as one class (a `linear` after `flatten` needs H·W, a projection
whose stride depends on the size, an `if` whose branches run different forwards, …) gets a class
per distinct instance instead, with concrete numbers (`Down`, `Down2`, …); so does every block when
no `Program` is given.

Each layer is constructed with the arguments the builder (`builder.py`) gives it. The submodule tree
mirrors the builder's exactly — a body numbered 0, 1, … is an `nn.Sequential`, a body with named
statements is an `nn.Module` with attributes and a `forward`, `repeat n` with a parameter `n` is
`nn.Sequential(*(pass for i in range(n)))` — so `state_dict` keys are identical and weights load
both ways.

The output is laid out as `ruff format` (and black) would lay it out at their default line length,
88: containers are written one item per line with a trailing comma (which keeps them exploded at
any line length) and a call that does not fit on its line is exploded the same way.

Its length (about 1,100 lines) is one pass from a shaped model's graph to a module's text: naming,
the helper classes, each statement's expression and the layout share the pass's names and are not
used apart; `blocks.py` beside it is the separate analysis of blocks.
"""

from __future__ import annotations

import ast
import builtins
import functools
import keyword
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import TYPE_CHECKING, Any

from .. import layers
from ..converters import describe
from ..graph import Module as GraphModule
from ..graph import Node, Program, Shaped, ShapedModel, Step, Value, is_chain, programs
from ..layers import Batched, Function, Input, Inputs, Member, SizeOf
from ..sizes import fmt, fmt_io
from ..symbolic import Sym
from ..symbolic import Value as SymbolicValue
from .blocks import CHOICE, Analysis, Generic, Param, by_path, symbols

if TYPE_CHECKING:
    from ..pipeline import Program as SpecProgram

LINE_LENGTH = 88
INDENT = " " * 4

# --- expressions and their layout -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    """One argument, list element or dict entry: `prefix` is `""`, `"name="` or `'"key": '`."""

    value: Expr | Generator | Choice | str
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

    elements: tuple[Expr | Choice | str, ...]
    loop: str
    count: Sym

    @property
    def clause(self) -> str:
        return f"for {self.loop} in range({self.count})"

    @property
    def element(self) -> Expr | Choice | str:
        if len(self.elements) == 1:
            return self.elements[0]
        return "layer"

    @property
    def inner(self) -> Expr | None:
        """`for layer in (a, b)`, the clause over a pass's several modules."""
        if len(self.elements) == 1:
            return None
        return Expr("for layer in (", tuple(Item(e) for e in self.elements), exploded=True)


@dataclass(frozen=True, slots=True)
class Choice:
    """`then if condition else otherwise`: a member that an `if` on a block's parameters builds one
    way or the other, where it is listed (a Python `if` statement cannot stand there)."""

    then: Expr | str
    condition: str
    otherwise: Expr | str


def _inline(value: Expr | Generator | Choice | str) -> str | None:
    """The expression on one line, or None if it must span several."""
    if isinstance(value, str):
        return value
    if isinstance(value, Choice):
        then, otherwise = _inline(value.then), _inline(value.otherwise)
        return None if then is None or otherwise is None else f"{then} if {value.condition} else {otherwise}"
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
    value: Expr | Generator | Choice | str,
    indent: str,
    lead: str = "",
    trail: str = "",
    comment: str | None = None,
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
    if isinstance(value, Choice):
        # as ruff splits a conditional expression: bracketed, a line for each part
        return [
            indent + lead + "(",
            *lay_out(value.then, indent + INDENT),
            f"{indent}{INDENT}if {value.condition}",
            *lay_out(value.otherwise, indent + INDENT, "else "),
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
    items = [Item(_argument(a)) for a in args]
    items += [Item(_argument(v), f"{k}=") for k, v in kwargs.items()]
    return Expr(f"{func}(", tuple(items), exploded=exploded)


def _argument(value: Any) -> Expr | Choice | str:
    """An argument as laid out: a size that is a conditional expression (`in_channels if i == 0 else
    width`) split at its `if` and `else` where it does not fit, as ruff splits one."""
    if isinstance(value, Expr):
        return value
    text = py(value)
    if isinstance(value, Sym) and " if " in text:
        tree = ast.parse(text, mode="eval").body
        if isinstance(tree, ast.IfExp):
            then, condition, otherwise = (
                _segment(text, part) for part in (tree.body, tree.test, tree.orelse)
            )
            return Choice(then, condition, otherwise)
    return text


def _segment(text: str, node: ast.expr) -> str:
    """A part of a conditional expression, bracketed where it is one itself."""
    part = ast.get_source_segment(text, node) or ""
    return f"({part})" if isinstance(node, ast.IfExp) else part


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


# --- helper modules: the builder's own, written out when a spec uses them --------------------------


@functools.cache
def helper_sources() -> dict[str, str]:
    """The source of each class and function in `runtime.py`, by name, read as text: the helpers
    the builder uses are copied, not restated (and emit imports no torch)."""
    text = resources.files("archdsl").joinpath("runtime.py").read_text(encoding="utf-8")
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
        # `C3`'s second class is `C3_2`, not `C32`.
        joiner = "_" if base[-1].isdigit() else ""
        name, number = base, 1
        while name in avoid:
            number += 1
            name = f"{base}{joiner}{number}"
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


def _numbered(nodes: list[Any]) -> bool:
    return [n.key for n in nodes] == [str(i) for i in range(len(nodes))]


# --- forward: a module's program as lines -----------------------------------------------------------


def _reference(key: str) -> str:
    return f"self.{key}" if _is_attribute(key) else f"getattr(self, {py(key)})"


class _Forward:
    """Writes a module's program (`graph.programs`) as `forward`'s lines: one line a step, each
    value in a local named as the spec names it, else as the construct that made it calls it
    (`identity`, `shortcut`, `gate`, `branch`), else `x`, reused as soon as it is free."""

    def __init__(
        self,
        program: Program,
        module: GraphModule,
        shapes: dict[Value, str],
        names: Names,
        functions: dict[Node, Function] | None = None,
    ):
        self.program = program
        #: The functions written from a generic class's expressions, not the node's own numbers.
        self.functions = functions or {}
        self.module = module
        self.shapes = shapes
        self.names = names
        self.lines: list[str] = []
        self.local: dict[Value, str] = {}
        self.holder: dict[str, Value] = {}  # local name → the value it holds now
        self.readers: dict[Value, int] = {}
        for step in program.steps:
            for value in step.inputs:
                self.readers[value] = self.readers.get(value, 0) + 1
        for value in program.outputs:
            self.readers[value] = self.readers.get(value, 0) + 1
        self.hints = _inherited_hints(program, module.hints)
        self.known = _names_in_sight(module)

    def line(self, text: str, comment: str | None = None) -> None:
        line = INDENT * 2 + text
        if comment is None:
            self.lines.append(line)
        elif len(f"{line}  # {comment}") <= LINE_LENGTH:
            self.lines.append(f"{line}  # {comment}")
        else:  # ruff would split the call to fit its comment: the comment goes above
            self.lines += [f"{INDENT * 2}# {comment}", line]

    def live(self, name: str) -> bool:
        value = self.holder.get(name)
        return value is not None and self.readers.get(value, 0) > 0

    def fresh(self, base: str) -> str:
        name, number = base, 1
        while self.live(name) or name in _FORWARD_TAKEN:
            number += 1
            name = f"{base}{number}"
        return name

    def given(self, value: Value) -> str | None:
        return self.known.get(value)

    def assign(self, value: Value, reading: Sequence[str] = ()) -> str:
        """The local a new value goes into: its own name, else `x` (what `x` still holds moves to
        its hint first, `identity = x`), else a fresh one. `reading`: the locals the step that
        makes it reads, written after the move, so none may be moved into."""
        wanted = self.given(value) or self.hints.get(value)
        if wanted is not None and wanted.isidentifier() and wanted not in _FORWARD_TAKEN:
            name = self.fresh(wanted)
        else:
            name = "x"
            if self.live("x"):
                held = self.holder["x"]
                hint = self.hints.get(held)
                movable = hint is not None and hint.isidentifier() and hint not in _FORWARD_TAKEN
                if hint is not None and movable and not self.live(hint) and hint not in reading:
                    self.line(f"{hint} = x")
                    self.local[held] = hint
                    self.holder[hint] = held
                else:
                    name = self.fresh("x")
        self.local[value] = name
        self.holder[name] = value
        return name

    def run(self) -> list[str]:
        for step in self.program.steps:
            reads = step.inputs
            arguments = [self.local[v] for v in reads]
            for value in reads:
                self.readers[value] -= 1
            expression = self.expression(step, arguments)
            targets = [self.assign(v, arguments) for v in step.outputs]
            lead = ", ".join(targets)
            target = step.target
            if len(targets) == 1 and _gives_a_tuple(target):
                lead = f"({targets[0]},)"
            comment = self.shapes.get(step.outputs[0]) if len(step.outputs) == 1 else None
            if isinstance(expression, Expr):
                self.lines += lay_out(expression, INDENT * 2, f"{lead} = ", comment=comment)
            else:
                self.line(f"{lead} = {expression}", comment)
        results = [self.local[v] for v in self.program.outputs]
        return results

    def expression(self, step: Step, arguments: list[str]) -> Expr | str:
        target = step.target
        if isinstance(target, GraphModule):
            return f"{_reference(target.key)}({', '.join(arguments)})"
        if target.member and target.use is not None:
            return function_source(target.use, arguments, self.names, _reference(target.key))
        if target.member:
            return f"{_reference(target.key)}({', '.join(arguments)})"
        function = self.functions.get(target) or layers.LAYERS[target.op].function(target)
        return function_source(function, arguments, self.names)


_FORWARD_TAKEN = frozenset({"self", "torch", "nn", *keyword.kwlist})


def _gives_a_tuple(target: Node | GraphModule) -> bool:
    """Whether a step is a function that returns a tuple, even of one value (`torch.split`)."""
    return isinstance(target, Node) and not target.member and layers.LAYERS[target.op].function(target).many


def _names_in_sight(module: GraphModule) -> dict[Value, str]:
    """The spec's names for values, as the definition a module belongs to gives them: its own and
    its enclosing modules', up to the block call (or model) whose body it is."""
    found: dict[Value, str] = {}
    current: GraphModule | None = module
    while current is not None:
        for value, name in current.names.items():
            found.setdefault(value, name)
        record = current.record
        if record is not None and record.kind == "block":
            break
        current = current.parent
    return found


def _inherited_hints(program: Program, own: dict[Value, str]) -> dict[Value, str]:
    """The module's hints, and values that lead only into a hinted one take its name: the body of
    a gate is `gate`."""
    hints: dict[Value, str] = dict(own)
    inputs = set(program.inputs)
    readers: dict[Value, int] = {}
    for step in program.steps:
        for value in step.inputs:
            readers[value] = readers.get(value, 0) + 1
    for step in reversed(program.steps):
        if len(step.outputs) != 1 or not step.inputs:
            continue
        hint = hints.get(step.outputs[0])
        if hint is None or step.outputs[0].name is not None:
            continue
        source = step.inputs[0]
        if source in inputs or source.name is not None or source in hints or readers.get(source) != 1:
            continue
        hints[source] = hint
    return hints


def function_source(
    function: Function, arguments: list[str], names: Names, member: str | None = None
) -> Expr | str:
    """A `Function`, written as a call (or an operator) on the named inputs; `member` is how
    `forward` refers to the layer's member where the function uses it (`self.class_token`)."""
    if function.target in ("+", "*", "@"):
        operands: list[str] = []
        for argument in function.args:
            if isinstance(argument, Inputs):
                operands.extend(arguments)
            else:
                operands.append(_function_argument(argument, arguments, member))
        return f" {function.target} ".join(operands)
    if isinstance(function.target, Member):
        assert member is not None
        target = member
    else:
        target = function.target
        if target.startswith("archdsl."):
            target = names.helper(target[len("archdsl.") :])
    items = [Item(_function_argument(a, arguments, member)) for a in function.args]
    items += [Item(_function_argument(v, arguments, member), f"{k}=") for k, v in function.options().items()]
    return Expr(f"{target}(", tuple(items), ")" if function.pick is None else f")[{function.pick}]")


@dataclass(frozen=True)
class _Kept:
    """In a `Function`'s arguments: a value `__init__` computes from its parameters and keeps on
    the module under `name`, as a person keeps a split's sizes (`self.c` in ultralytics' C2f)."""

    name: str


def _function_argument(value: Any, arguments: list[str], member: str | None = None) -> str:
    if isinstance(value, _Kept):
        return f"self.{value.name}"
    if isinstance(value, Input):
        return arguments[value.index]
    if isinstance(value, Inputs):
        return "[" + ", ".join(arguments) + "]"
    if isinstance(value, SizeOf):
        return f"{arguments[value.index]}.shape[2:]"
    if isinstance(value, Member):
        assert member is not None
        return member
    if isinstance(value, Batched):
        assert member is not None
        rest = ", ".join(["-1"] * value.axes)
        return f"{member}.expand({arguments[value.index]}.shape[0], {rest})"
    if isinstance(value, list):
        return "[" + ", ".join(_function_argument(v, arguments, member) for v in value) + "]"
    return py(value)


@dataclass(frozen=True)
class _Helper:
    """A composite's module in the form of a helper module (`kind`): the members it lists, a
    residual's written-out shortcut, a concat's channels for each branch."""

    kind: str
    body: list[Node | GraphModule]
    shortcut: Node | GraphModule | None = None
    split: list[Any] | None = None


# --- the walk -------------------------------------------------------------------------------------


class Emitter:
    def __init__(self, models: tuple[ShapedModel, ...], program: SpecProgram | None = None):
        self.models = models
        self.program = program
        self.analysis: Analysis | None = None
        self.names = Names()
        self.classes: list[str] = []  # block classes, dependencies first
        self.block_classes: dict[str, str] = {}  # class body → class name
        self.generic_classes: dict[str, str] = {}  # block → its one class's name
        self.uses_ordered_dict = False
        self.uses_torch = False
        self.programs: dict[GraphModule, Program] = {}
        self.module_of: dict[int, GraphModule] = {}  # a statement's record → its module
        for model in models:
            assert model.graph is not None
            self.programs.update(programs(model.graph))
            for module in model.graph.modules():
                if module.record is not None:
                    self.module_of[id(module.record)] = module

    def source(self) -> str:
        model_names = [self.names.claim(model.name) for model in self.models]
        self.names.blocks = frozenset(b for m in self.models for b in _block_names(m.layers))
        for kind in helper_sources():
            # `ResidualModule` rather than `Residual2` beside a spec's own `Residual` block.
            free = kind not in self.names.taken and kind not in self.names.blocks
            self.names.helpers[kind] = self.names.claim(kind if free else kind + "Module")
        if self.program is not None:
            reserved = {*self.names.taken, *self.names.blocks, *self.names.helpers.values()}
            self.analysis = Analysis(
                self.models,
                self.program.model_defs,
                self.program.blocks,
                reserved,
                self.programs,
                self.inline,
            )
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
            lines.append(f"# model {signature}: {fmt_io(model.inputs)} -> {fmt_io(model.outputs)}")
        return lines

    def model_class(self, model: ShapedModel, name: str) -> str:
        doc = f"{model.name}: {fmt_io(model.inputs)} -> {fmt_io(model.outputs)}, {model.params:,} parameters."
        assert model.graph is not None
        return self.module_class(name, doc, model.graph.root, {}, keys=model.graph.output_keys)

    def module_class(
        self,
        name: str,
        doc: str,
        module: GraphModule,
        overlay: dict[str, Shaped],
        params: tuple[str, ...] = (),
        prelude: tuple[str, ...] = (),
        keys: list[str] | None = None,
    ) -> str:
        """A module as a class: a `Sequential` when its members run in order and are numbered 0, 1,
        … (as the builder's are), else an `nn.Module` with its members as attributes and a
        `forward` that runs its program. `params` are `__init__`'s, after `self`."""
        signature = lay_out(
            Expr("def __init__(", (Item("self"), *map(Item, params))), INDENT, trail=" -> None:"
        )
        head = f'    """{doc}"""\n\n' + "\n".join([*signature, *prelude]) + "\n"
        program = self.programs[module]
        members = list(module.members.values())
        if keys is None and is_chain(program) and _numbered(members):
            items = self.sequential_items(members, overlay)
            body = "\n".join(lay_out(items, INDENT * 2, "super().__init__"))
            return f"class {name}({self.names.helper('Sequential')}):\n{head}{body}"
        self.uses_torch = True
        init = [INDENT * 2 + "super().__init__()"]
        # Members an `if` on the parameters builds one way or the other, consecutive ones under one
        # Python `if`: its condition, where it is written, and the lines of each branch.
        branches: tuple[Any, Any, list[str], list[str]] | None = None
        for member in members:
            choice = overlay.get(member.path)
            if choice is not None and choice.kind == CHOICE:
                condition, at = choice.args["condition"], choice.args["at"]
                if branches is None or branches[1] != at:
                    init += _if_lines(branches)
                    branches = (condition, at, [], [])
                for lines, built in zip(branches[2:], choice.children, strict=True):
                    lines += _assignment(member.key, layer_source(built, self.names), INDENT * 3)
                continue
            init += _if_lines(branches)
            branches = None
            parameter = self.parameter(member, overlay)
            if parameter is not None:
                if _is_attribute(member.key):
                    init += lay_out(parameter, INDENT * 2, f"self.{member.key} = ")
                else:
                    register = Expr("self.register_parameter(", (Item(py(member.key)), Item(parameter)))
                    init += lay_out(register, INDENT * 2)
            else:
                init += _assignment(member.key, self.member(member, overlay), INDENT * 2)
        init += _if_lines(branches)
        functions = self.kept_functions(program, overlay, {m.key for m in members}, init)
        return (
            f"class {name}(nn.Module):\n{head}"
            + "\n".join(init)
            + "\n\n"
            + self.forward(module, program, overlay, keys, functions)
        )

    def kept_functions(
        self, program: Program, overlay: dict[str, Shaped], taken: set[str], init: list[str]
    ) -> dict[Node, Function]:
        """The functions of a generic class's forward that read its parameters (split's sizes), each
        such value computed in `__init__` (its lines added to `init`) and read from the module."""
        functions: dict[Node, Function] = {}
        for step in program.steps:
            target = step.target
            record = overlay.get(target.path) if isinstance(target, Node) and not target.member else None
            if record is None:
                continue
            assert isinstance(target, Node)
            function = layers.LAYERS[target.op].function(record)

            def kept(value: Any, what: str, op: str = target.op) -> Any:
                if not symbols(value):
                    return value
                base = name = f"{op}_{what}"
                number = 1
                while name in taken:
                    number += 1
                    name = f"{base}{number}"
                taken.add(name)
                written = (
                    Expr("[", tuple(Item(_argument(v)) for v in value), "]")
                    if isinstance(value, list)
                    else py(value)
                )
                init.extend(lay_out(written, INDENT * 2, f"self.{name} = "))
                return _Kept(name)

            args = tuple(
                kept(v, "sizes" if isinstance(v, list) else str(i)) for i, v in enumerate(function.args)
            )
            kwargs = {k: kept(v, k) for k, v in function.kwargs.items()}
            if args != function.args or kwargs != dict(function.kwargs):
                functions[target] = replace(function, args=args, kwargs=kwargs)
        return functions

    def forward(
        self,
        module: GraphModule,
        program: Program,
        overlay: dict[str, Shaped],
        keys: list[str] | None,
        functions: dict[Node, Function] | None = None,
    ) -> str:
        shapes = self.value_shapes(program, overlay)
        writer = _Forward(program, module, shapes, self.names, functions)
        parameters = []
        for value in program.inputs:
            local = writer.fresh(writer.given(value) or "x")
            writer.local[value] = local
            writer.holder[local] = value
            parameters.append(local)
        results = writer.run()
        if keys is not None:
            returned = "{" + ", ".join(f"{py(k)}: {r}" for k, r in zip(keys, results, strict=True)) + "}"
            annotation = "dict[str, torch.Tensor]"
        elif len(results) == 1:
            returned, annotation = results[0], "torch.Tensor"
        else:
            returned = ", ".join(results)
            annotation = "tuple[" + ", ".join(["torch.Tensor"] * len(results)) + "]"
        head = lay_out(
            Expr("def forward(", (Item("self"), *(Item(f"{p}: torch.Tensor") for p in parameters))),
            INDENT,
            trail=f" -> {annotation}:",
        )
        return "\n".join([*head, *writer.lines, f"{INDENT * 2}return {returned}"])

    @staticmethod
    def value_shapes(program: Program, overlay: dict[str, Shaped]) -> dict[Value, str]:
        """Each value's shape as its line's comment: a symbolic one where the class is generic."""
        shapes: dict[Value, str] = {}
        for step in program.steps:
            target = step.target
            record = overlay.get(target.path) if isinstance(target, Node) else None
            if record is None and isinstance(target, GraphModule) and target.record is not None:
                record = overlay.get(target.record.path)
            for index, value in enumerate(step.outputs):
                if record is not None and index == 0:
                    shapes[value] = _shape(record.output)
                elif value.shape is not None:
                    shapes[value] = fmt(value.shape)
        return shapes

    def parameter(self, member: Node | GraphModule, overlay: dict[str, Shaped]) -> Expr | None:
        """`nn.Parameter(torch.full((C, 1, 1), 1e-06))` for a member that is a bare parameter."""
        if not isinstance(member, Node) or not member.parameter:
            return None
        node = overlay.get(member.path, member)
        parameter = layers.LAYERS[node.op].parameter(node)
        assert parameter is not None
        self.uses_torch = True
        shape = (
            "("
            + ", ".join(str(d) for d in parameter.shape)
            + ("," if len(parameter.shape) == 1 else "")
            + ")"
        )
        if parameter.std is not None:
            drawn = Expr("torch.empty(", (Item(shape),), f").normal_(std={py(parameter.std)})")
            return Expr("nn.Parameter(", (Item(drawn),))
        full = Expr("torch.full(", (Item(shape), Item(py(parameter.fill))))
        return Expr("nn.Parameter(", (Item(full),))

    def sequential_items(self, members: list[Node | GraphModule], overlay: dict[str, Shaped]) -> Expr:
        """`(a, b, …)` for numbered members, `(OrderedDict({"name": a, …}))` for named ones: the
        arguments of `nn.Sequential` (or of `super().__init__` in a `Sequential` subclass)."""

        def comment(member: Node | GraphModule) -> str:
            return _shape(self.output_of(member, overlay))

        if _numbered(members):
            items = tuple(Item(self.member(m, overlay), comment=comment(m)) for m in members)
            return Expr("(", items, exploded=True)
        self.uses_ordered_dict = True
        entries = tuple(Item(self.member(m, overlay), f"{py(m.key)}: ", comment(m)) for m in members)
        table = Expr("OrderedDict(", (Item(Expr("{", entries, "}", exploded=True)),), exploded=True)
        return Expr("(", (Item(table),), exploded=True)

    def output_of(self, member: Node | GraphModule, overlay: dict[str, Shaped]) -> tuple[SymbolicValue, ...]:
        record = member if isinstance(member, Node) else member.record
        assert record is not None
        found = overlay.get(record.path, record)
        return found.output

    def sequential(
        self,
        members: list[Node | GraphModule],
        overlay: dict[str, Shaped],
        helper: str = "nn.Sequential",
        **options: Any,
    ) -> Expr:
        items = self.sequential_items(members, overlay).items
        extra = tuple(Item(value, f"{key}=") for key, value in options.items())
        return Expr(f"{helper}(", items + extra, exploded=True)

    def member(self, member: Node | GraphModule, overlay: dict[str, Shaped]) -> Expr | Choice | str:
        """The expression that constructs a member."""
        if isinstance(member, Node):
            shown = overlay.get(member.path, member)
            if shown.kind == CHOICE:
                then, otherwise = (layer_source(built, self.names) for built in shown.children)
                return Choice(then, str(shown.args["condition"]), otherwise)
            return layer_source(shown, self.names)
        record = member.record
        assert record is not None
        symbolic = overlay.get(record.path)
        if record.kind == "block":
            generic = self.analysis.generic(record.op) if self.analysis else None
            if generic is not None:
                return self.generic_call(symbolic or record, generic)
            return self.block(member) + "()"
        if symbolic is not None and symbolic.kind == "repeat" and isinstance(symbolic.args.get("count"), Sym):
            # One pass, built `count` times: the count is a parameter of the class.
            one = symbolic.children[0].children
            elements = tuple(self.member(self.member_at(member, n.path), overlay) for n in one)
            passes = Generator(elements, symbolic.args["loop"], symbolic.args["count"])
            return Expr("nn.Sequential(", (Item(passes),), exploded=True)
        program = self.programs[member]
        members = list(member.members.values())
        if is_chain(program):
            return self.sequential(members, overlay)
        helper = self.helper_call(member, program, members, overlay)
        if helper is not None:
            return helper
        return self.composite_class(member, overlay) + "()"

    def member_at(self, module: GraphModule, path: str) -> Node | GraphModule:
        for member in module.members.values():
            if member.path == path:
                return member
        raise KeyError(path)

    def inline(self, module: GraphModule) -> bool:
        """Whether a composite statement's module is written where it is used (a sequence, a helper
        module) rather than as a class of its own."""
        program = self.programs[module]
        return is_chain(program) or self.helper_form(program, list(module.members.values())) is not None

    def helper_form(self, program: Program, members: list[Node | GraphModule]) -> _Helper | None:
        """Whether a module's program is a residual's, a gate's or a concat's in its simplest form,
        which a helper module runs: the helper and what it holds; None when it fits none."""
        if len(program.inputs) != 1 or len(program.outputs) != 1 or not program.steps:
            return None
        x = program.inputs[0]
        last = program.steps[-1]
        target = last.target
        if not isinstance(target, Node) or target.member or program.outputs[0] is not last.outputs[0]:
            return None
        chain = _chain_from(x, program.steps[:-1])
        if (
            target.op == "mul"
            and chain is not None
            and last.inputs == (x, chain[1])
            and len(chain[0]) == len(program.steps) - 1
            and [s.target for s in chain[0]] == members
        ):
            return _Helper("Gate", members)
        if target.op == "add" and len(last.inputs) == 2:
            body_steps = program.steps[:-1]
            y, s = last.inputs
            if s is x:
                chain = _chain_from(x, body_steps)
                if chain is not None and chain[1] is y and [st.target for st in chain[0]] == members:
                    return _Helper("Residual", members)
                return None
            if not body_steps:
                return None
            shortcut_step = body_steps[-1]
            chain = _chain_from(x, body_steps[:-1])
            if (
                chain is not None
                and chain[1] is y
                and shortcut_step.inputs == (x,)
                and shortcut_step.outputs == (s,)
                and shortcut_step.calls_member
                and [st.target for st in chain[0]] + [shortcut_step.target] == members
            ):
                return _Helper("Residual", members[:-1], shortcut=members[-1])
        if target.op == "cat":
            steps = program.steps[:-1]
            split = None
            parts: tuple[Value, ...] = tuple(x for _ in members)
            if steps and isinstance(steps[0].target, Node) and steps[0].target.op == "split":
                split = [v.shape[0] for v in steps[0].outputs]  # type: ignore[index]
                parts = steps[0].outputs
                steps = steps[1:]
            if len(members) != len(last.inputs) or len(parts) != len(members):
                return None
            # Each branch runs on its share (an empty branch passes it on, as the helper's
            # empty `nn.Sequential()` does), in the order its member is registered.
            pending = list(steps)
            for member, given, output in zip(members, parts, last.inputs, strict=True):
                if isinstance(member, GraphModule) and not member.members and not self.programs[member].steps:
                    if output is not given:
                        return None
                    continue
                if not pending:
                    return None
                step = pending.pop(0)
                if step.target is not member or not step.calls_member or step.inputs != (given,):
                    return None
                if step.outputs != (output,):
                    return None
            if pending:
                return None
            return _Helper("Concat", members, split=split)
        return None

    def helper_call(
        self,
        module: GraphModule,
        program: Program,
        members: list[Node | GraphModule],
        overlay: dict[str, Shaped],
    ) -> Expr | None:
        """A module whose program is a residual's, a gate's or a concat's in its simplest form, through
        the helper module of that form; None when it does not fit one."""
        form = self.helper_form(program, members)
        if form is None:
            return None
        if form.kind == "Concat":
            branches = tuple(
                Item(self.member(b, overlay), f"{py(b.key)}: ", _shape(self.output_of(b, overlay)))
                for b in form.body
            )
            items = [Item(Expr("{", branches, "}", exploded=True))]
            if form.split is not None:
                items.append(Item(py(form.split), "split="))
            return Expr(f"{self.names.helper('Concat')}(", tuple(items), exploded=True)
        options: dict[str, Any] = {}
        if form.shortcut is not None:
            options["shortcut"] = self.member(form.shortcut, overlay)
            if form.shortcut.key != "shortcut":
                options["name"] = py(form.shortcut.key)
        return self.sequential(form.body, overlay, self.names.helper(form.kind), **options)

    def composite_class(self, module: GraphModule, overlay: dict[str, Shaped]) -> str:
        """A class for a module that fits no helper: one per distinct body, as for block instances."""
        record = module.record
        assert record is not None
        shown = overlay.get(record.path, record)
        kind = record.kind if record.kind not in ("branch", "shortcut") else "group"
        doc = f"{kind} {_shape(shown.input)} -> {_shape(shown.output)}, {record.params:,} parameters."
        body = self.module_class("{name}", doc, module, overlay)
        name = self.block_classes.get(body)
        if name is None:
            name = self.names.claim(kind.capitalize())
            self.block_classes[body] = name
            self.classes.append(body.replace("class {name}(", f"class {name}(", 1))
        return name

    def block(self, module: GraphModule) -> str:
        """The class of this block instance: one class per distinct body."""
        record = module.record
        assert record is not None
        doc = f"{record.op}: {fmt(record.input)} -> {fmt(record.output)}, {record.params:,} parameters."
        body = self.module_class("{name}", doc, module, {})
        name = self.block_classes.get(body)
        if name is None:
            name = self.names.claim(record.op, own=record.op)
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
        # The body first: the classes it calls come before this one. Its structure is the first
        # call's module; its sizes and arguments, the symbolic body's.
        module = self.module_of[id(generic.calls[0])]
        overlay = by_path(generic.body)
        body = self.module_class("{name}", "{doc}", module, overlay, tuple(params), tuple(prelude))
        name = self.names.claim(generic.name, own=generic.name)
        self.generic_classes[generic.name] = name
        built_as: dict[str, None] = {}  # each distinct call once, in order
        for call_ in generic.calls:
            written = str(_inline(self.generic_call(call_, generic))).replace('"""', '\\"\\"\\"')
            shapes = f"{fmt(call_.input)} -> {fmt(call_.output)}"
            built_as[f"{written}: {shapes}, {call_.params:,} parameters"] = None
        declared = ", ".join(_declaration(p) for p in generic.declared)
        where = {
            2: ", on an input of length L",
            3: ", on an input of height H and width W",
            4: ", on an input of T frames, height H and width W",
        }.get(len(generic.input), "")
        tensors = (f"{name} {_shape(shape)}" for name, shape in generic.tensors.items())
        inputs = [_shape(generic.input), *tensors]
        # Broken where a line would outgrow the code around it, only between its parts (an
        # expression broken in the middle reads worse than a long line).
        signature = f"block {generic.name}{f'({declared})' if generic.declared else ''}"
        if where and not _fits(f'{INDENT}"""{signature}{where}:'):
            signature += f",\n{INDENT}{where.removeprefix(', ')}"
        else:
            signature += where
        given = ", ".join(_shape(output) for output in generic.outputs)
        shapes = f"{INDENT}{', '.join(inputs)} -> {given}."
        if not _fits(shapes):
            shapes = f"{INDENT}{', '.join(inputs)} ->\n{INDENT * 2}{given}."
        doc = (
            f"{signature}:\n{shapes}\n\n"
            "    Built here as\n" + "".join(f"        {c}\n" for c in built_as) + "    "
        )
        text = body.replace("class {name}(", f"class {name}(", 1).replace('"""{doc}"""', f'"""{doc}"""', 1)
        self.classes.append(text)
        return name


def _fits(line: str) -> bool:
    return len(line) <= LINE_LENGTH


def _assignment(key: str, value: Expr | Choice | str, indent: str) -> list[str]:
    """`self.key = value`, or `self.add_module("key", value)` for a key that is no attribute name."""
    if _is_attribute(key):
        return lay_out(value, indent, f"self.{key} = ")
    return lay_out(Expr("self.add_module(", (Item(py(key)), Item(value))), indent)


def _if_lines(branches: tuple[Any, Any, list[str], list[str]] | None) -> list[str]:
    """The Python `if` that builds members one way or the other, from `module_class`'s pending one."""
    if branches is None:
        return []
    condition, _, then, otherwise = branches
    return [f"{INDENT * 2}if {condition}:", *then, f"{INDENT * 2}else:", *otherwise]


def _chain_from(x: Value, steps: list[Step]) -> tuple[list[Step], Value] | None:
    """Whether `steps` are member calls one after another from `x`: their steps and what they give."""
    current = x
    for step in steps:
        if not step.calls_member or step.inputs != (current,) or len(step.outputs) != 1:
            return None
        current = step.outputs[0]
    return steps, current


def _shape(shape: tuple[SymbolicValue, ...]) -> str:
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


def emit_source(*models: ShapedModel, program: SpecProgram | None = None) -> str:
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
