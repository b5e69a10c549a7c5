"""Layers that reshape a sample, reorder it or connect all its features: flatten, view, permute,
shuffle, linear, and `pretrained`, a torchvision network used as one layer."""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

from ..codes import EMPTY_OUTPUT, NARROW, PERMUTATION, PRETRAINED, RANK, VIEW_SIZE
from ..converters import boolean, channels, int_list, nonnegative_int, positive_int, string
from ..sizes import Outcome, Shape, divides, fail, fmt, out_count
from ..symbolic import mul
from . import zoo
from .base import (
    WHOLE,
    Arg,
    Axes,
    FieldRule,
    FunctionCall,
    Layer,
    Mixes,
    Module,
    NotSymbolic,
    Permutes,
    Reading,
    TensorArg,
)

if TYPE_CHECKING:
    from ..graph import Node as LayerNode
    from ..shapes import Shaped


#: `torch.flatten(x, 1)`, `x.flatten(1)`: a flatten, or any other (`flatten(2)`) a view.
_FLATTENS = ("torch.flatten", "Tensor.flatten")
#: `x.transpose(1, 2)`: a permute of two of the sample's axes.
_TRANSPOSES = ("Tensor.transpose", "torch.transpose")


class Flatten(Layer):
    name = "flatten"
    torch = "nn.Flatten"
    doc = "[C, H, W] → [C·H·W]"
    kind = "reshape"

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        return Outcome((math.prod(shape),))

    imports = ("Flatten",)
    calls = _FLATTENS

    def arguments(self, module: Any) -> dict[str, Any] | None:
        return {} if (module.start_dim, module.end_dim) == (1, -1) else None

    def called(self, call: FunctionCall) -> Reading | None:
        start, end = call.arg(1, "start_dim", 0), call.arg(2, "end_dim", -1)
        return [(self.name, {})] if (start, end) == (1, -1) else None

    def module(self, node: Shaped) -> Module:
        return Module("nn.Flatten")

    def field(self, node: Shaped) -> FieldRule:
        return WHOLE

    def symbolic_output(self, args: dict[str, Any], shape: tuple[Any, ...]) -> tuple[Any, ...]:
        return (functools.reduce(mul, shape),)


class View(Layer):
    name = "view"
    torch = "Tensor.reshape (batch kept)"
    doc = "reshape each sample"
    kind = "reshape"
    args = (
        Arg("dims", int_list, "the per-sample shape; one -1 is inferred; [] for one number", required=True),
    )
    variadic = "dims"
    no_axis = True

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        dims: tuple[int, ...] = node.args["dims"]
        span = node.arg_spans.get("dims", node.span)
        total = math.prod(shape)
        if not dims:
            if total != 1:
                raise fail(
                    VIEW_SIZE,
                    f"view([]) makes one number of each sample, and {fmt(shape)} has {total}",
                    span,
                )
            return Outcome(())
        if dims.count(-1) > 1:
            raise fail(VIEW_SIZE, "view can infer only one dimension: -1 appears more than once", span)
        bad = [d for d in dims if d < 1 and d != -1]
        if bad:
            raise fail(VIEW_SIZE, f"view dimensions must be positive (or one -1), got {bad[0]}", span)
        known = math.prod(d for d in dims if d != -1)
        if -1 in dims:
            if total % known:
                raise fail(
                    VIEW_SIZE,
                    f"view cannot reshape {fmt(shape)} ({total} elements) to {fmt(dims)}: "
                    f"{total} is not a multiple of {known}",
                    span,
                )
            dims = tuple(total // known if d == -1 else d for d in dims)
        elif known != total:
            raise fail(
                VIEW_SIZE,
                f"view cannot reshape {fmt(shape)} ({total} elements) to {fmt(dims)} ({known} elements)",
                span,
            )
        return Outcome(dims)

    imports = ("View",)
    # a reshape that keeps the batch axis, read from the output's shape, which the trace recorded:
    # `view(b, c)` after `b, c = x.shape[:2]`, `squeeze(-1)`, `flatten(2)`
    calls = (
        *_FLATTENS,
        "Tensor.view",
        "Tensor.reshape",
        "Tensor.squeeze",
        "Tensor.unsqueeze",
        "torch.reshape",
        "torch.squeeze",
        "torch.unsqueeze",
    )

    def arguments(self, module: Any) -> dict[str, Any] | None:
        # archdsl's own View (emitted source's): its shape keeps the batch apart.
        return {"dims": tuple(module.shape)} if type(module).__module__.startswith("archdsl") else None

    def called(self, call: FunctionCall) -> Reading | None:
        if call.name in _FLATTENS and call.arg(1, "start_dim", 0) == 0:
            return None  # folds the batch axis into the sample's: no per-sample layer does that
        source = call.tensors[0].shape
        if source is None or call.output[0] != source[0]:
            return None  # it moves the batch axis (`view(1, -1)`)
        shape = call.output[1:]
        return [("flatten", {})] if len(shape) == 1 else [(self.name, {"dims": shape})]

    def module(self, node: Shaped) -> Module:
        # `view(-1)` is already concrete in the shaped IR: the output shape is the reshape target.
        return Module("archdsl.View", tuple(node.output))

    def describe(self, node: Shaped) -> str:
        return f"view {fmt(node.output)}"

    def field(self, node: Shaped) -> FieldRule:
        return WHOLE

    def symbolic_output(self, args: dict[str, Any], shape: tuple[Any, ...]) -> tuple[Any, ...]:
        if -1 in args["dims"]:
            raise NotSymbolic("view infers a dimension from the input's size")
        return tuple(args["dims"])


class Permute(Layer):
    name = "permute"
    torch = "Tensor.permute (batch kept first)"
    doc = "reorder each sample's axes"
    kind = "reshape"
    args = (Arg("dims", int_list, "the sample's axes in their new order, from 0", required=True),)
    variadic = "dims"

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        dims: tuple[int, ...] = node.args["dims"]
        axes = list(range(len(shape)))
        written = f"permute({', '.join(map(str, dims))})"
        span = node.arg_spans.get("dims", node.span)
        if len(dims) != len(shape):
            hint = ""
            if len(dims) == len(shape) + 1 and dims[0] == 0 and sorted(dims) == [0, *(a + 1 for a in axes)]:
                ours = ", ".join(str(d - 1) for d in dims[1:])
                hint = f"; the batch axis is not counted: PyTorch's {written} is permute({ours}) here"
            raise fail(
                PERMUTATION,
                f"{written} orders {len(dims)} axes, but a {fmt(shape)} sample has {len(shape)} "
                f"({_listed(axes)}){hint}",
                span,
            )
        if sorted(dims) != axes:
            problems = [f"{d} is not one of them" for d in sorted(set(dims)) if d not in axes]
            problems += [f"{d} appears {dims.count(d)} times" for d in axes if dims.count(d) > 1]
            problems += [f"{d} is missing" for d in axes if d not in dims]
            raise fail(
                PERMUTATION,
                f"{written} is not an order of the {fmt(shape)} sample's axes {_listed(axes)} "
                f"(the batch axis stays first and is not counted): {', '.join(problems)}",
                span,
            )
        return Outcome(tuple(shape[d] for d in dims))

    def axes(self, args: dict[str, Any], axes: Axes | None, output: Shape) -> Axes | None:
        return None if axes is None else tuple(axes[d] for d in args["dims"])

    imports = ("Permute",)
    calls = ("Tensor.permute", "torch.permute", *_TRANSPOSES)

    def arguments(self, module: Any) -> dict[str, Any] | None:
        dims = tuple(module.dims)
        if type(module).__module__.startswith("archdsl"):
            return {"dims": dims}
        # torchvision's Permute counts the batch axis, which must stay first
        return {"dims": tuple(d - 1 for d in dims[1:])} if dims and dims[0] == 0 else None

    def called(self, call: FunctionCall) -> Reading | None:
        if call.name in _TRANSPOSES:
            rank = len(call.tensors[0].shape or ())
            first, second = (int(d) % rank for d in call.args[1:3])
            if 0 in (first, second):
                return None  # it moves the batch axis
            order = list(range(rank))
            order[first], order[second] = order[second], order[first]
            return [(self.name, {"dims": tuple(d - 1 for d in order[1:])})]
        dims = list(call.args[1:]) if call.method else list(call.arg(1, "dims", ()))
        if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
            dims = list(dims[0])
        return [(self.name, {"dims": tuple(d - 1 for d in dims[1:])})] if dims and dims[0] == 0 else None

    def module(self, node: Shaped) -> Module:
        return Module("archdsl.Permute", tuple(node.args["dims"]))

    def describe(self, node: Shaped) -> str:
        return f"permute {fmt(node.args['dims'])}"

    def field(self, node: Shaped) -> FieldRule:
        return Permutes(tuple(node.args["dims"]))

    def symbolic_output(self, args: dict[str, Any], shape: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(shape[d] for d in args["dims"])


def _listed(axes: list[int]) -> str:
    return ", ".join(map(str, axes))


class Narrow(Layer):
    """Some of the channels: GhostNet's `out[:, :self.out_chs]`. The first axis of the sample,
    whatever its rank, as `x[:, start:start + length]` slices it."""

    name = "narrow"
    torch = "x[:, start:start + length] (Tensor.narrow on the axis after the batch)"
    doc = "keep `length` channels from `start` on"
    kind = "reshape"
    args = (
        Arg("length", positive_int, "how many channels to keep", required=True),
        Arg("start", nonnegative_int, "the first channel kept, from 0", 0),
    )
    symbolic_args = ("length", "start")

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        length, start = node.args["length"], node.args["start"]
        if start + length > shape[0]:
            raise fail(
                NARROW,
                f"narrow({length}, start={start}) keeps channels {start}–{start + length - 1}, but "
                f"a {fmt(shape)} sample has {shape[0]} (0–{shape[0] - 1})",
                node.span,
            )
        return Outcome((length, *shape[1:]))

    imports = ("Narrow",)
    calls = ("operator.getitem", "Tensor.narrow", "torch.narrow")

    def arguments(self, module: Any) -> dict[str, Any] | None:
        # archdsl's own Narrow (emitted source's)
        if not type(module).__module__.startswith("archdsl"):
            return None
        return {"length": module.length, "start": module.start}

    def called(self, call: FunctionCall) -> Reading | None:
        """`x[:, a:b]` (with any full slices after), `x.narrow(1, start, length)`; any other
        indexing, None."""
        source = call.args[0] if call.args else None
        if len(call.tensors) != 1 or not isinstance(source, TensorArg) or source.shape is None:
            return None  # no shape: a share of a chunk or split, read as a split concat
        channels = source.shape[1]
        if call.name == "operator.getitem":
            index = call.args[1] if isinstance(call.args[1], tuple) else (call.args[1],)
            whole = slice(None)
            rest_whole = all(i == whole or i is Ellipsis for i in index[2:])
            if len(index) < 2 or index[0] != whole or not isinstance(index[1], slice) or not rest_whole:
                return None
            bounds = (index[1].start, index[1].stop, index[1].step)
            if not all(b is None or isinstance(b, int) for b in bounds):
                return None
            start, stop, step = index[1].indices(channels)
        else:  # x.narrow(dim, start, length), torch.narrow(x, dim, start, length)
            given = [*call.args[1:4], None, None, None]
            dim, first, length = given[0], given[1], given[2]
            rank = len(source.shape)
            if dim not in (1, 1 - rank) or not isinstance(first, int) or not isinstance(length, int):
                return None
            start, stop, step = first % channels, first % channels + length, 1
        if step != 1 or stop <= start:
            return None
        return [(self.name, {"length": stop - start, "start": start})]

    def module(self, node: Shaped) -> Module:
        return Module("archdsl.Narrow", (node.args["length"],), {"start": node.args["start"]}, {"start": 0})

    def describe(self, node: Shaped) -> str:
        start, length = node.args["start"], node.args["length"]
        return f"narrow {start}:{start + length}"

    def symbolic_output(self, args: dict[str, Any], shape: tuple[Any, ...]) -> tuple[Any, ...]:
        return (args["length"], *shape[1:])


class Shuffle(Layer):
    layout = "image"
    name = "shuffle"
    torch = "nn.ChannelShuffle"
    doc = "channel shuffle (ShuffleNet): C as [groups, C/groups], transposed"
    kind = "reshape"
    args = (Arg("groups", positive_int, "channel groups; divides the channels", required=True),)
    symbolic_args = ("groups",)

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        if len(shape) < 2:
            raise fail(
                RANK,
                f"shuffle needs channels and positions ([C, L], [C, H, W], …), got {fmt(shape)}: "
                "PyTorch's channel_shuffle refuses a flat sample",
                node.span,
            )
        divides(node, shape[0], "channels")
        return Outcome(shape)

    imports = ("ChannelShuffle",)
    calls = (
        "torchvision.models.shufflenetv2.channel_shuffle",
        "torch.nn.functional.channel_shuffle",
        "torch.channel_shuffle",
    )

    def arguments(self, module: Any) -> dict[str, Any] | None:
        return {"groups": module.groups}

    def called(self, call: FunctionCall) -> Reading | None:
        return [(self.name, {"groups": call.arg(1, "groups", None)})]

    def module(self, node: Shaped) -> Module:
        return Module("nn.ChannelShuffle", (node.args["groups"],))

    def describe(self, node: Shaped) -> str:
        return f"shuffle {node.args['groups']}"

    def field(self, node: Shaped) -> FieldRule:
        return Mixes((0,))


class Linear(Layer):
    layout = "features"
    channel_axis = -1
    name = "linear"
    torch = "nn.Linear"
    doc = "fully connected layer on the last axis"
    kind = "linear"
    args = (
        Arg("out", channels, "output features, or `same`", required=True),
        Arg("bias", boolean, "learn an additive bias", True),
        Arg("in", positive_int, "asserts the incoming feature count", default_text="inferred"),
    )
    symbolic_args = ("out",)
    passed_args = ("bias",)

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        features_in = shape[-1]
        features_out = out_count(node, features_in, "features")
        weights = features_in * features_out
        # The same weights at every position of the leading axes ([L, F] → [L, out]).
        return Outcome(
            (*shape[:-1], features_out),
            weights + (features_out if node.args["bias"] else 0),
            weights * math.prod(shape[:-1]),
        )

    imports = ("Linear",)

    def arguments(self, module: Any) -> dict[str, Any] | None:
        return {"out": module.out_features, "bias": module.bias is not None}

    def module(self, node: Shaped) -> Module:
        return Module(
            "nn.Linear", (node.input[-1], node.output[-1]), {"bias": node.args["bias"]}, {"bias": True}
        )

    def describe(self, node: Shaped) -> str:
        return f"linear {node.output[-1]}"

    def field(self, node: Shaped) -> FieldRule:
        return Mixes((len(node.input) - 1,))

    def symbolic_output(self, args: dict[str, Any], shape: tuple[Any, ...]) -> tuple[Any, ...]:
        return (*shape[:-1], shape[-1] if args["out"] == "same" else args["out"])

    def needs(self, args: dict[str, Any], shape: tuple[Any, ...], output: tuple[Any, ...]) -> tuple[Any, ...]:
        return (shape[-1], output[-1])


class Pretrained(Layer):
    name = "pretrained"
    torch = "torchvision.models.get_model(name, weights=…), or its part"
    doc = "a torchvision model, or part of one, as a layer"
    kind = "block"
    args = (
        Arg("name", string, "a torchvision classification model, as `list_models()` names it", required=True),
        Arg("part", string, 'a submodule of it, a dotted path ("features", "layer4")', default_text="none"),
        Arg("weights", string, 'a weights enum member ("DEFAULT", "IMAGENET1K_V1")', default_text="none"),
        Arg("freeze", boolean, "requires_grad false for all its parameters", False),
    )

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        """A torchvision model's shape comes from PyTorch itself (a forward pass on the meta
        device): its architecture is code, not a rule archdsl could restate. Imports torch, and
        only here."""
        source = zoo.source()
        a = node.args
        try:
            if source.in_zoo(a["name"]):
                # torchvision's network written as a spec: checked from it, without torch.
                probe = source.static(a["name"], a["part"], a["weights"], shape)
            else:
                source.check(a["name"], a["part"], a["weights"])
                probe = source.probe(a["name"], a["part"], shape)
        except zoo.Refused as refused:
            span = node.arg_spans.get(refused.arg, node.span) if refused.arg else node.span
            raise fail(refused.code, refused.message, span) from None
        if not all(d >= 1 for d in probe.output):
            raise fail(
                EMPTY_OUTPUT,
                f"pretrained {zoo.title(a['name'], a['part'])} output is empty: input {fmt(shape)} "
                f"→ {fmt(probe.output)}",
                node.span,
            )
        return Outcome(probe.output, probe.params, probe.macs)

    def module(self, node: Shaped) -> Module:
        """torchvision's model as the builder makes it, through the emitted `pretrained` helper."""
        a = node.args
        return Module(
            "archdsl.pretrained",
            (a["name"],),
            {
                "part": a["part"],
                "weights": a["weights"],
                "freeze": a["freeze"],
                **zoo.CONSTRUCTOR_ARGS.get(a["name"], {}),
            },
            {"part": None, "weights": None, "freeze": False},
        )

    def build(self, node: Shaped) -> Any:
        """torchvision's module; the weights are fetched here, the only place archdsl downloads them."""
        from ..errors import ArchError, error

        a = node.args
        title = zoo.title(a["name"], a["part"])
        try:
            module = zoo.source().build(a["name"], a["part"], a["weights"], a["freeze"])
        except zoo.LoadFailed as failed:
            raise ArchError([error(PRETRAINED, str(failed), node.span)]) from None
        params = sum(p.numel() for p in module.parameters())
        if params != node.params:
            # The check found the shape without weights; a few weights rebuild the model differently
            # (vit_h_14's SWAG weights raise its image size to 518).
            raise ArchError(
                [
                    error(
                        PRETRAINED,
                        f"pretrained {title} with weights {a['weights']} has "
                        f"{params:,} parameters, not the {node.params:,} checked without them: these "
                        "weights change the architecture, so its shapes cannot be trusted",
                        node.span,
                    )
                ]
            )
        return module

    def describe(self, node: Shaped) -> str:
        a = node.args
        parts = [f"pretrained {zoo.title(a['name'], a['part'])}"]
        if a["weights"]:
            parts.append(a["weights"])
        if a["freeze"]:
            parts.append("frozen")
        return ", ".join(parts)

    def field(self, node: Shaped) -> FieldRule:
        # Its architecture is torchvision's code, not arguments: assume it may see everything.
        return WHOLE

    def symbolic_output(self, args: dict[str, Any], shape: tuple[Any, ...]) -> tuple[Any, ...]:
        raise NotSymbolic("a pretrained layer")


LAYERS = (Flatten, View, Permute, Narrow, Shuffle, Linear, Pretrained)
