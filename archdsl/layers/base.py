"""One definition per layer kind: what every stage needs to know about it, in one class.

A `Layer` holds a layer's signature (arguments, defaults, what each accepts), its shape rule, the
PyTorch module it builds (as data, `Module`, so the builder constructs it and `emit` writes it from
the same description), its label in tables and diagrams, its receptive-field rule, and what the
one-class-per-block emitter may write as expressions. Nothing here imports torch: `callables.py`
turns a `Module` into an `nn.Module` at build time.

A user's own layer is a subclass registered through the `archdsl.layers` entry point (see
`archdsl/layers/__init__.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar

from ..sizes import Outcome, Shape
from .callables import construct

if TYPE_CHECKING:
    from ..graph import Node as LayerNode
    from ..shapes import Shaped


@dataclass(frozen=True)
class Arg:
    name: str
    accepts: Callable[[Any], Any]
    doc: str
    default: Any = None
    required: bool = False
    #: Shown in docs and signatures instead of the Python default.
    default_text: str | None = None

    @property
    def shown_default(self) -> str:
        """The default as the language reference and the editor show it: `required`, `1`, `"row"`."""
        if self.required:
            return "required"
        if self.default_text is not None:
            return self.default_text
        value = self.default
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, tuple) and len(set(value)) == 1:
            return str(value[0])
        return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Signature:
    """What a call binds: the arguments of a composite (`residual(...)`), a block or a model."""

    name: str
    args: tuple[Arg, ...]
    #: What it is in PyTorch and what it does, for the docs.
    torch: str = ""
    doc: str = ""
    #: `view(4, 7, 7)`: all positional arguments are collected into one list argument.
    variadic: str | None = None

    def arg(self, name: str) -> Arg:
        return next(a for a in self.args if a.name == name)


@dataclass(frozen=True)
class Module:
    """A PyTorch module's construction as data: `target(*args, **kwargs)`.

    `target` is `nn.Name` (a class of `torch.nn`), `archdsl.Name` (a module of `archdsl.runtime`,
    written into emitted source as a helper class), or `package.module:Name` (a plugin's own
    class, imported by the built module and the emitted source). `defaults` are the keyword
    arguments' defaults in PyTorch: emitted source leaves out an argument equal to its default.
    """

    target: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        """The keyword arguments that differ from PyTorch's defaults."""
        return {k: v for k, v in self.kwargs.items() if k not in self.defaults or v != self.defaults[k]}


@dataclass(frozen=True)
class Input:
    """In a `Function`'s arguments: the node's input `index` (0 is what it receives)."""

    index: int


@dataclass(frozen=True)
class Inputs:
    """In a `Function`'s arguments: a list of all the node's inputs."""


@dataclass(frozen=True)
class SizeOf:
    """In a `Function`'s arguments: the spatial size of the node's input `index`, `x.shape[2:]`,
    read when the network runs (so the network takes any size, as PyTorch's own does)."""

    index: int


@dataclass(frozen=True)
class Function:
    """A computation that is no module, as data: `target(*args, **kwargs)`, which the builder calls
    and `emit` writes. `target` is a torch function (`torch.cat`, `nn.functional.interpolate`), a
    helper of `archdsl.runtime` (`archdsl.pad_to`, copied into emitted source like its modules),
    or an operator, `+`, `*` or `@`, applied to its arguments in turn (`Inputs` are each input).
    `args` and `kwargs` may hold `Input`, `Inputs` and `SizeOf`, and in a `Layer.use`, `Member`
    and `Batched`; a `Member` target calls the member. `defaults` as for `Module`."""

    target: str | Member
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: It returns a tuple, an item for each of the node's outputs (even one).
    many: bool = False
    #: It returns a tuple of which the node's output is this item (`nn.MultiheadAttention` returns
    #: the output and the attention weights).
    pick: int | None = None

    def options(self) -> dict[str, Any]:
        """The keyword arguments that differ from PyTorch's defaults."""
        return {k: v for k, v in self.kwargs.items() if k not in self.defaults or v != self.defaults[k]}


@dataclass(frozen=True)
class Member:
    """In a `Function` that says how `forward` uses a layer's member (`Layer.use`): the member
    itself, `self.class_token` or `self.self_attention`; as a `Function`'s target, it is called."""


@dataclass(frozen=True)
class Batched:
    """In a `Function`'s arguments: the member, a parameter whose first axis is 1, expanded to the
    batch of the node's input `index`: `self.class_token.expand(x.shape[0], -1, -1)` keeps its
    `axes` after the first."""

    index: int = 0
    axes: int = 2


@dataclass(frozen=True)
class Parameter:
    """A bare learnable tensor registered on the enclosing module under the statement's name, which
    `Layer.use` combines with what flows through (`layer_scale` multiplies it, a position embedding
    is added): `torch.full(shape, fill)` at first, or drawn from N(0, std²) where `std` is given."""

    shape: tuple[Any, ...]
    fill: Any = 0.0
    std: float | None = None


#: The names of a sample's axes where they are known: an image's are C, H and W, in that order.
Axes = tuple[str, ...]
IMAGE_AXES: Axes = ("C", "H", "W")


# --- receptive-field rules (read by receptive.py) -------------------------------------------------


@dataclass(frozen=True)
class Sliding:
    """A window sliding over the spatial axes (L; H and W; T, H and W): a convolution or pool, each
    argument one size per axis, in the axes' order."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...] = (1, 1)


@dataclass(frozen=True)
class Mixes:
    """Every output depends on every position along these per-sample axes (0 is the first axis
    after the batch: C of [C, H, W]); the others are kept. A rule about axes, not about H and W,
    so it stays true after a `permute` has moved them: `linear` and `layernorm` mix the last axis,
    `layernorm2d` and `shuffle` the channel axis, `softmax` its `dim`."""

    axes: tuple[int, ...]


@dataclass(frozen=True)
class Permutes:
    """Output axis i is input axis dims[i] (per sample): the grid moves, no position is mixed."""

    dims: tuple[int, ...]


@dataclass(frozen=True)
class Resamples:
    """The grid scaled by `scale` along H and W (more output positions than input ones where it is
    above 1), each output position reading `reach` input positions along the axis (1 for nearest,
    2 for bilinear, the kernel's taps over the stride for a transposed conv); `exact` where that
    is the whole of it (nearest by a whole factor), else the field is an upper bound."""

    scale: tuple[Fraction, Fraction]
    reach: tuple[int, int]
    exact: bool = False


@dataclass(frozen=True)
class Joins:
    """Each output position sees what the same position of every input saw (a sum, a product);
    with `axis`, the inputs are joined along that per-sample axis (a concatenation): where it holds
    H or W, neighbouring positions come from different inputs."""

    axis: int | None = None


#: Each output position sees what the same input position saw (activations, norms, dropout).
KEEP = "keep"
JOIN = Joins()
#: Every output sees every input position (flatten, a fully connected layer).
WHOLE = "whole"
#: PyTorch's adaptive-pool bins.
ADAPTIVE = "adaptive"

FieldRule = Sliding | Mixes | Permutes | Joins | Resamples | str


class NotSymbolic(Exception):
    """This layer, with these arguments, cannot be written over symbolic sizes."""


# --- functional forms, as `archdsl import` reads them ---------------------------------------------


@dataclass(frozen=True)
class TensorArg:
    """In a `FunctionCall`'s arguments: a tensor, with its shape, batch axis first (None for a tuple
    of tensors, what `chunk` gives)."""

    shape: tuple[int, ...] | None


@dataclass(frozen=True)
class FunctionCall:
    """A call of a function or a tensor method in a traced `forward` (`F.relu(x)`, `x.flatten(1)`),
    as `Layer.called` reads it: no torch object in it, each tensor argument a `TensorArg`."""

    #: the name it was looked up by, one of a layer's `calls`: `torch.flatten`, `Tensor.flatten`
    name: str
    #: the arguments as given, the tensor first (a method's own tensor is its first)
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    #: the shape it gives, batch axis first
    output: tuple[int, ...]

    @property
    def method(self) -> bool:
        return self.name.startswith("Tensor.")

    def arg(self, index: int, name: str, default: Any) -> Any:
        """The argument of a parameter, passed by `name` or at `index` (the tensor at 0)."""
        if name in self.kwargs:
            return self.kwargs[name]
        return self.args[index] if len(self.args) > index else default

    @property
    def tensors(self) -> list[TensorArg]:
        """Its tensor arguments, in order, within lists and dicts too."""
        return found_in((self.args, self.kwargs), lambda value: isinstance(value, TensorArg))


def found_in(value: Any, wanted: Callable[[Any], bool]) -> list[Any]:
    """The items of a call's arguments that are `wanted`, in order, looked for within lists,
    tuples and dicts (`torch.cat([a, b])`, `x[:, i]`)."""
    if wanted(value):
        return [value]
    if isinstance(value, (list, tuple)):
        return [found for item in value for found in found_in(item, wanted)]
    if isinstance(value, Mapping):
        return [found for item in value.values() for found in found_in(item, wanted)]
    return []


#: What `Layer.called` reads a call as: the statements (a layer's name and its arguments) that
#: compute it, in order; [] for a call that computes nothing (`x.contiguous()`, the value itself).
Reading = list[tuple[str, dict[str, Any]]]


# --- the definition -------------------------------------------------------------------------------


class Layer:
    """A layer kind. Subclasses set the class attributes and override what differs.

    `shape` is required; the rest have defaults for a layer that keeps its input's shape.
    `archdsl import` reads a layer back from a module through `imports` and `arguments`, and from
    a functional op of a `forward` (`F.relu(x)`, `x.flatten(1)`) through `calls` and `called`: a
    plugin's layer declares its own, and the importer knows no layer by name.
    """

    name: ClassVar[str]
    args: ClassVar[tuple[Arg, ...]] = ()
    #: One line for the language reference.
    doc: ClassVar[str] = ""
    #: What it is in PyTorch, for the language reference.
    torch: ClassVar[str] = ""
    #: The diagram's colour group: conv, pool, norm, activation, linear, dropout, reshape, block, other.
    kind: ClassVar[str] = "other"
    variadic: ClassVar[str | None] = None
    #: What it asks of a [C, H, W] sample's axes, which shape inference follows through permutes:
    #: "image", channels first (convolutions, pools, channel norms); "features", a last axis that is
    #: no spatial one (linear and layernorm map the last axis); "map", the channels last (Swin's
    #: layers on [H, W, C]); or "any".
    layout: ClassVar[str] = "any"
    #: Arguments the one-class-per-block emitter may write as expressions in a block's parameters.
    symbolic_args: ClassVar[tuple[str, ...]] = ()
    #: Arguments that may be a block parameter of any type, passed straight to the constructor.
    passed_args: ClassVar[tuple[str, ...]] = ()
    #: Arguments given per spatial axis (`kernel=3`, `kernel=[3, 7, 7]`): shape inference makes
    #: each one size per axis of the input's rank (`sizes.spread`) before the rule reads them, so
    #: the rule, `module`, `describe` and `field` see `(3, 3, 3)`.
    per_axis: ClassVar[tuple[str, ...]] = ()

    #: The PyTorch module classes, by class name, that `arguments` reads back (`archdsl import`).
    imports: ClassVar[tuple[str, ...]] = ()
    #: The functions and tensor methods, by qualified name, whose calls `called` reads back
    #: (`archdsl import`): `torch.nn.functional.relu`, `torch.relu`, `Tensor.relu` (a method of
    #: `torch.Tensor`), `operator.getitem`. A name that does not import (a package not installed) is
    #: skipped; where several layers name one callable, each is asked in turn, in the catalog's order.
    calls: ClassVar[tuple[str, ...]] = ()
    #: False for a function of no module (`cat`, `add`, a resize): it registers no member, takes no
    #: number among its module's members, and is written as a call in `forward` (`function`).
    member: ClassVar[bool] = True
    #: The axis of its input whose size `channels` means in its arguments: the channels, first;
    #: the features `linear` and `layernorm` act on, last (-1).
    channel_axis: ClassVar[int] = 0
    #: Its diagnostics say where each of its inputs comes from (a join's), so none is added.
    names_its_inputs: ClassVar[bool] = False
    #: Some of its arguments are named values it reads beside what it receives (`cat(skip)`).
    reads_values: ClassVar[bool] = False
    #: It takes a sample with no axis (`[]`, one number per sample, as `view([])` gives): it acts
    #: on each number alone, or reshapes. Shape inference refuses the others such a sample.
    no_axis: ClassVar[bool] = False
    #: The module it stands for in a pretrained network runs on the tensor alone; False where that
    #: module takes more beside it (MViT's attention, `forward(x, thw)`, the token grid), so that a
    #: part holding one cannot run on a tensor.
    runs_alone: ClassVar[bool] = True

    def arg(self, name: str) -> Arg:
        return next(a for a in self.args if a.name == name)

    def arguments(self, module: Any) -> dict[str, Any] | None:
        """The inverse of `module()`, for `archdsl import`: the arguments of a statement that builds
        `module` (an instance of a class named in `imports`), read from its attributes, or None when
        no statement of this layer builds it (a setting the layer has no argument for). Values as
        the arguments take them (pairs as tuples); those at their default may be left out. Reads
        attributes only, so it imports nothing."""
        return {}

    def called(self, call: FunctionCall) -> Reading | None:
        """The functional form's `arguments`, for `archdsl import`: the statements that compute
        `call` (a call of a name in `calls`), usually this layer with the arguments read from the
        call's; None where none does (a setting this layer has no argument for). Imports nothing."""
        return [(self.name, {})]

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        """The output shape, parameters and MACs for one sample of `shape`, or `fail(...)`."""
        raise NotImplementedError

    def module(self, node: Shaped) -> Module:
        """The PyTorch module for a shaped statement (its input and output shapes are known)."""
        raise NotImplementedError

    def function(self, node: Shaped) -> Function:
        """For a layer that is no member (`member = False`): the computation, as data."""
        raise NotImplementedError

    def parameter(self, node: Shaped) -> Parameter | None:
        """For a layer that is a bare parameter of its module rather than a module: its tensor."""
        return None

    def use(self, node: Shaped) -> Function | None:
        """How `forward` uses the layer's member, where that is not calling it on what it receives
        (`self.conv(x)`): as data, with `Member()` for the member. A bare parameter must say
        (`scale` multiplies, `x * self.layer_scale`); `attention` calls its module on x three
        times and keeps the first item it returns."""
        return None

    def build(self, node: Shaped) -> Any:
        """The `nn.Module` itself; imports torch. Override only when building needs more than the
        constructor `module` describes (a download, a check)."""
        return construct(self.module(node))

    def axes(self, args: dict[str, Any], axes: Axes | None, output: Shape) -> Axes | None:
        """What its output's axes are (`("C", "H", "W")`), given its input's, or None where that is
        not known: kept by a layer that keeps the rank; an image's after a reshape to rank 3."""
        if axes is not None and len(axes) == len(output):
            return axes
        return IMAGE_AXES if len(output) == 3 else None

    def describe(self, node: Shaped) -> str:
        """A short label with the arguments that matter: `conv 5×5, 16, /2`."""
        return self.name

    def field(self, node: Shaped) -> FieldRule:
        return KEEP

    def symbolic_output(self, args: dict[str, Any], shape: tuple[Any, ...]) -> tuple[Any, ...]:
        """The output shape when sizes and arguments may be `symbolic` expressions; raises
        `NotSymbolic` when none can be written."""
        return shape

    def needs(self, args: dict[str, Any], shape: tuple[Any, ...], output: tuple[Any, ...]) -> tuple[Any, ...]:
        """The values the constructor reads beyond constants: written as expressions, they must be
        in terms of what a block's class receives."""
        values: list[Any] = []
        for name in self.symbolic_args:
            value = args.get(name)
            if isinstance(value, tuple):
                values.extend(value)
            elif name != "out" and value is not None and not isinstance(value, str):
                values.append(value)
        return tuple(values)


class Pointwise(Layer):
    """A layer that keeps its input's shape and learns nothing (activations, identity)."""

    kind: ClassVar[str] = "activation"
    no_axis: ClassVar[bool] = True

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        return Outcome(shape)


def plain(
    name: str, torch_name: str, doc: str, kind: str = "activation", calls: tuple[str, ...] = ()
) -> type[Pointwise]:
    """A shape-keeping layer without arguments: `relu` is `nn.ReLU()`; `calls`, its functional
    forms (`torch.relu`)."""

    def module(self: Pointwise, node: Shaped) -> Module:
        return Module(f"nn.{torch_name}")

    attributes = {
        "name": name,
        "torch": f"nn.{torch_name}",
        "doc": doc,
        "kind": kind,
        "module": module,
        "imports": (torch_name,),
        "calls": calls,
    }
    return type(torch_name, (Pointwise,), attributes)


# --- text helpers for `describe` ------------------------------------------------------------------


def pair_of(value: Any) -> tuple[Any, Any]:
    """PyTorch's int-or-pair arguments (`kernel_size=3`, `(3, 3)`) as a pair."""
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def axes_of(value: Any) -> Any:
    """PyTorch's int-or-tuple arguments of any rank (`kernel_size=3`, `(3, 7, 7)`, `(3,)`) as an
    argument per spatial axis takes them: one int where every axis has it, else the tuple."""
    if isinstance(value, int):
        return value
    items = tuple(value)
    return items[0] if len(set(items)) == 1 else items


def size_text(pair: tuple[int, ...]) -> str:
    return "×".join(str(n) for n in pair)


def pair_or_int(pair: tuple[int, ...]) -> str:
    return str(pair[0]) if len(set(pair)) == 1 else size_text(pair)


def step_text(pair: tuple[int, ...]) -> str:
    return f"/{pair_or_int(pair)}"
