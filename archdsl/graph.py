"""The dataflow graph a model elaborates into: values, the nodes that make them, the modules that
hold them, and each module's program.

Produced by `elaborate.py` (every construct lowers into it there, in one place); read by every
later stage: the builder and `emit` run and write each module's `Program`, `render` draws the
nodes and values, `receptive` follows the values. No torch here.

A model is one graph, as torch.fx holds one: `nodes` in the order they run, each reading `inputs`
(values made by earlier nodes or the model's inputs) and making `outputs`. A node runs in a
`Module` (the model, a block call, a group, a composite's module): a layer that is a member of it
(under `key`, its `state_dict` name), or a function of no module (a sum, a concatenation, a
resize). Modules nest as the built `nn.Module`s do; where a value crosses a module's boundary it
becomes one of that module's inputs or outputs. `programs` cuts the one graph into the programs of
the modules, as torch.fx's `split_module` cuts a graph by a partition, so a value named in one
stage and read three stages later (U-Net's skips) needs nothing of the modules between.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import Span
from .sizes import Shape

if TYPE_CHECKING:
    from .layers.base import Axes
    from .layers.base import Function as LayerFunction
    from .trainspec import TrainSpec


# --- the outline: what each statement made ---------------------------------------------------------


@dataclass(slots=True, eq=False)
class Shaped:
    """One statement (or pass, branch, shortcut) with its shapes; `children` mirror its statements.
    A layer's is its graph `Node` itself."""

    kind: str  # layer | block | repeat | iteration | concat | branch | residual | shortcut | gate | group
    op: str  # the layer op, the block's name, or the kind
    key: str
    path: str
    label: str | None
    span: Span
    input: Shape
    output: Shape
    params: int
    macs: int
    args: dict[str, Any] = field(default_factory=dict)
    children: list[Shaped] = field(default_factory=list)
    #: No module of its own: its members are its namespace's (`*` statements, a repeat's passes,
    #: a function such as `cat`, which is no module at all).
    spliced: bool = False
    #: Its output's axes by name, where known (see `Value.axes`).
    axes: Axes | None = None
    #: The value it gives (its first, where it gives several), in the graph.
    result: Value | None = None
    #: Where it gives several values (a split, a block's `output a, b`): the shape of each.
    given: tuple[Shape, ...] = ()
    #: The functions its construct lowered into beside its statements (a residual's sum, a
    #: concat's join), in the graph: drawn with it.
    joins: list[Node] = field(default_factory=list)
    #: A block call's: the block it calls, as resolved where it was called (`resolve.BlockEntry`).
    block: Any = None

    @property
    def name(self) -> str:
        """Its module's name in its namespace; `*` for a spliced statement, which has none, and
        for a function, which is no module."""
        return "*" if self.spliced or self.key.startswith(".") else self.label or self.key


@dataclass(eq=False)
class ShapedModel:
    name: str
    file: str
    span: Span
    input: Shape
    output: Shape | None  # None when inference stopped at an error
    layers: list[Shaped]
    params: int
    macs: int
    train: TrainSpec | None
    model_params: dict[str, Any] = field(default_factory=dict)
    #: The dataflow graph (None when inference stopped at an error).
    graph: Graph | None = None
    #: Every input, by name where it has one, and every output, by key where the model returns a
    #: dict (the first of each are `input` and `output`).
    inputs: list[tuple[str | None, Shape]] = field(default_factory=list)
    outputs: list[tuple[str | None, Shape]] = field(default_factory=list)
    #: Every name given to a value (`as skip`, `input [3, 64, 64] as image`, a block's `input as
    #: x`, a tensor parameter), with where it is given and the value, for the editor: kept where
    #: inference stopped at an error too.
    named: list[tuple[str, Span, Value]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.output is not None


# --- the graph ------------------------------------------------------------------------------------


@dataclass(eq=False, slots=True, repr=False)
class Value:
    """One tensor (per sample: the batch axis is implicit): made by `node` (its output `index`),
    or, with no node, a model's input. `shape` is None in a statement that never runs (the
    passes of `repeat 0`, a branch whose condition does not hold) and after an error."""

    shape: Shape | None
    axes: Axes | None = None
    node: Node | None = None
    index: int = 0
    #: The name the spec gives it (`as skip`), where it is read by name.
    name: str | None = None
    #: What made it and where, for notes: "conv", line 4; "the model's input", the input's line.
    origin: str = ""
    span: Span | None = None
    #: Whether a node reads it (set as the graph grows).
    read: bool = False

    def __repr__(self) -> str:
        # Not the node behind it: that repr holds the whole graph before it.
        shape = "?" if self.shape is None else list(self.shape)
        return f"Value({self.name or self.origin!r}, {shape})"


@dataclass(slots=True, eq=False)
class Node(Shaped):
    """A layer (or function) applied to values: the outline's record of a layer statement, with its
    place in the graph. `member`: it is registered on `module` under `key` (a layer's module, or a
    bare parameter); a function (`cat`, `add`, a resize) is no member. Its `input` and `output`
    are the shapes of its first input and output."""

    inputs: tuple[Value, ...] = ()
    outputs: list[Value] = field(default_factory=list)
    module: Module | None = None
    member: bool = True
    #: Where each argument is written, for diagnostics.
    arg_spans: dict[str, Span] = field(default_factory=dict)
    #: The inputs it reads by a skip connection (a residual's shortcut, the gated input): drawn
    #: dashed.
    skips: tuple[int, ...] = ()
    #: Its member is a bare parameter (`scale`, `token`, `posembed`), no module: its `use` combines
    #: it with what flows through.
    parameter: bool = False
    #: How `forward` uses its member, where that is not calling it on what it receives
    #: (`Layer.use`): `x * self.layer_scale`.
    use: LayerFunction | None = None

    @property
    def is_module(self) -> bool:
        """Whether it is a submodule of the built network: a member, not a bare parameter."""
        return self.member and not self.parameter


@dataclass(eq=False, repr=False)
class Module:
    """A module of the built network: the model, a block call, a group, or a composite statement
    that is not spliced. `members` are its submodules and parameters, in the order they are
    registered: nodes that are layers, and modules. `title` is the class name it prints under."""

    key: str
    path: str
    parent: Module | None
    title: str
    #: Its statement in the outline (None for the model).
    record: Shaped | None = None
    members: dict[str, Node | Module] = field(default_factory=dict)
    #: Where the values it reads should stand among its program's inputs: a block call's first,
    #: then its tensor parameters in the order declared. Others follow in the order first read.
    preferred: list[Value] = field(default_factory=list)
    #: The same for what it gives: a block's `output` in its order, or a statement's result first.
    returns: list[Value] = field(default_factory=list)
    #: Names the spec gives values inside it that differ from their own (a block's parameter
    #: `skip` is the caller's `x3`), for `emit`.
    names: dict[Value, str] = field(default_factory=dict)
    #: The names `emit` gives values in its forward that have none: what they are in the
    #: construct that reads or makes them here ("identity" for a residual's input, "shortcut",
    #: "gate", "branch").
    hints: dict[Value, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Module({self.path!r}, {self.title!r})"

    def __post_init__(self) -> None:
        #: Its members' paths begin with this: `layer1.0.`, and "" for the model's.
        self.prefix = self.path + "." if self.path else ""

    def within(self, other: Module) -> bool:
        """Whether this module is `other` or inside it."""
        module: Module | None = self
        while module is not None:
            if module is other:
                return True
            module = module.parent
        return False


@dataclass(eq=False, slots=True)
class Step:
    """One line of a module's program: a member run on values (`target` is a layer node or a
    submodule), or a function node of the module's own."""

    target: Node | Module
    inputs: tuple[Value, ...]
    outputs: tuple[Value, ...]

    @property
    def calls_member(self) -> bool:
        """Whether it calls a member on its inputs as is (`self.conv(x)`): a submodule, or a
        layer's module whose `use` is plain; not a function, nor a member used otherwise."""
        target = self.target
        return isinstance(target, Module) or (target.member and target.use is None)


@dataclass(eq=False)
class Program:
    """What a module's `forward` does: the values it receives, its steps, the values it returns."""

    inputs: list[Value]
    steps: list[Step]
    outputs: list[Value]


@dataclass(eq=False)
class Graph:
    root: Module
    inputs: list[Value]
    nodes: list[Node]
    outputs: list[Value]
    #: The model's outputs by name (a dict, as torchvision's segmentation models return), or None
    #: for one output or a tuple.
    output_keys: list[str] | None = None
    #: The names its `output` statement reads (`output p3, p4`), where it has one.
    output_names: list[str] | None = None

    def modules(self) -> Iterator[Module]:
        """Every module, the model's first, each before the modules it holds."""
        stack = [self.root]
        while stack:
            module = stack.pop()
            yield module
            stack.extend(reversed([m for m in module.members.values() if isinstance(m, Module)]))


def _chain(module: Module) -> list[Module]:
    chain = []
    current: Module | None = module
    while current is not None:
        chain.append(current)
        current = current.parent
    return chain


def programs(graph: Graph) -> dict[Module, Program]:
    """Each module's program, cut from the graph: a node runs in its module's program; in each
    module above it, the step is the submodule that holds it. A module's inputs are the values
    read inside it and made outside; its outputs, those made inside and read outside (or returned
    by the model)."""
    steps: dict[Module, list[Step]] = {module: [] for module in graph.modules()}
    placed: dict[Module, Step] = {}  # a submodule's step in its parent's program, once
    home: dict[Value, Module] = {value: graph.root for value in graph.inputs}
    inside: dict[Module, list[Value]] = {module: [] for module in steps}  # values read, by module
    for node in graph.nodes:
        runs_in = node.module
        assert runs_in is not None
        chain = _chain(runs_in)
        steps[runs_in].append(Step(node, node.inputs, tuple(node.outputs)))
        for child, parent in itertools.pairwise(chain):
            if child not in placed:
                placed[child] = Step(child, (), ())
                steps[parent].append(placed[child])
        for value in node.inputs:
            for module in chain:
                inside[module].append(value)
        for value in node.outputs:
            home[value] = runs_in
    result: dict[Module, Program] = {}
    returned = set(graph.outputs)
    outgoing: dict[Module, list[Value]] = {module: [] for module in steps}
    reading: dict[Value, list[Module]] = {}
    for node in graph.nodes:
        for value in node.inputs:
            reading.setdefault(value, []).append(node.module)  # type: ignore[arg-type]
    for value, module in home.items():
        readers = reading.get(value, [])
        for holder in _chain(module):
            if holder is graph.root:
                break
            if value in returned or any(not reader.within(holder) for reader in readers):
                outgoing[holder].append(value)
    for module in steps:
        if module is graph.root:
            inputs, outputs = list(graph.inputs), list(graph.outputs)
        else:
            made_inside = {v for v, m in home.items() if m.within(module)}
            received = [v for v in dict.fromkeys(inside[module]) if v not in made_inside]
            inputs = _ordered(module.preferred, received)
            # What the statement gives is returned even where nothing reads it (dead code is the
            # spec's, W006 says so), with what else is read outside after it.
            given = [v for v in module.returns if v in made_inside]
            outputs = _ordered(given, [*given, *outgoing[module]])
        result[module] = Program(inputs, steps[module], outputs)
    for module, step in placed.items():
        program = result[module]
        step.inputs, step.outputs = tuple(program.inputs), tuple(program.outputs)
    return result


def _ordered(preferred: list[Value], found: list[Value]) -> list[Value]:
    """`found` with the values of `preferred` first, in that order, each once."""
    present = set(found)
    first = [v for v in dict.fromkeys(preferred) if v in present]
    return first + [v for v in found if v not in set(first)]


def flat_outputs(graph: Graph) -> list[tuple[str | None, Value]]:
    """The model's outputs with their keys (None where they have none)."""
    keys: list[str | None] = list(graph.output_keys) if graph.output_keys else [None] * len(graph.outputs)
    return list(zip(keys, graph.outputs, strict=True))


def is_chain(program: Program) -> bool:
    """Whether the program runs its members one after another on one value, each step reading what
    the one before it made, as `nn.Sequential` does."""
    if not program.steps and not program.inputs and not program.outputs:
        return True  # a body that does nothing (`branch { }`): the identity, never run
    if len(program.inputs) != 1 or len(program.outputs) != 1:
        return False
    current = program.inputs[0]
    for step in program.steps:
        if not step.calls_member or step.inputs != (current,) or len(step.outputs) != 1:
            return False
        current = step.outputs[0]
    return program.outputs[0] is current
