"""Layers that keep their input's shape: activations, normalisation, dropout, stochastic depth,
identity."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..codes import BATCH_AXIS, NO_GRADIENT, RANK
from ..converters import any_int, boolean, choice, number, positive_int, positive_number, probability
from ..errors import warning
from ..sizes import Outcome, Shape, divides, fail, fmt, needs_image
from .base import (
    Arg,
    FieldRule,
    Function,
    FunctionCall,
    Input,
    Layer,
    Member,
    Mixes,
    Module,
    Parameter,
    Pointwise,
    Reading,
    plain,
)

if TYPE_CHECKING:
    from ..graph import Node as LayerNode
    from ..shapes import Shaped


class BatchNorm(Layer):
    layout = "image"
    name = "batchnorm"
    torch = "nn.BatchNorm1d / nn.BatchNorm2d / nn.BatchNorm3d (by rank)"
    doc = "batch normalisation over the channel (or feature) axis"
    kind = "norm"
    args = (
        Arg("eps", positive_number, "added to the variance", 1e-5),
        Arg("momentum", probability, "running-statistics momentum", 0.1),
        Arg("affine", boolean, "learn scale and shift", True),
    )
    passed_args = ("eps", "momentum", "affine")
    imports = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d")

    def arguments(self, module: Any) -> dict[str, Any] | None:
        if module.momentum is None or not module.track_running_stats:
            return None
        return {"eps": module.eps, "momentum": module.momentum, "affine": module.affine}

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        if not 1 <= len(shape) <= 4:
            raise fail(
                RANK,
                f"batchnorm needs a [F], [C, L], [C, H, W] or [C, T, H, W] input, got {fmt(shape)}",
                node.span,
            )
        return Outcome(shape, 2 * shape[0] if node.args["affine"] else 0)

    def module(self, node: Shaped) -> Module:
        a = node.args
        rank = {1: "1d", 2: "1d", 3: "2d", 4: "3d"}[len(node.input)]
        return Module(
            f"nn.BatchNorm{rank}",
            (node.input[0],),
            {"eps": a["eps"], "momentum": a["momentum"], "affine": a["affine"]},
            {"eps": 1e-5, "momentum": 0.1, "affine": True},
        )

    def needs(self, args: dict[str, Any], shape: tuple[Any, ...], output: tuple[Any, ...]) -> tuple[Any, ...]:
        return (shape[0],)


_EPS = Arg("eps", positive_number, "added to the variance", 1e-5)
_BIAS = Arg("bias", boolean, "learn the shift (with affine)", True)


def _norm_options(node_args: dict[str, Any], affine: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The keyword arguments of nn.LayerNorm / nn.GroupNorm (`affine` is the name each uses) and
    their defaults in PyTorch."""
    a = node_args
    return (
        {"eps": a["eps"], affine: a["affine"], "bias": a["bias"]},
        {"eps": 1e-5, affine: True, "bias": True},
    )


def _norm_params(node_args: dict[str, Any], count: int) -> int:
    """A weight per normalised element, and a bias unless `bias=false`; none without `affine`."""
    return count * (1 + node_args["bias"]) if node_args["affine"] else 0


class _LayerNorm(Layer):
    kind = "norm"
    args = (
        _EPS,
        Arg("affine", boolean, "learn a scale and a shift per element (elementwise_affine)", True),
        _BIAS,
    )
    passed_args = ("eps", "affine", "bias")
    #: The module it builds: nn.LayerNorm, or the subclass that normalises the channel axis.
    target: ClassVar[str]

    def axis(self, shape: tuple[Any, ...]) -> int:
        """The axis normalised, per sample."""
        raise NotImplementedError

    def arguments(self, module: Any) -> dict[str, Any] | None:
        if len(module.normalized_shape) != 1:
            return None
        affine = module.elementwise_affine
        return {"eps": module.eps, "affine": affine, "bias": not affine or module.bias is not None}

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        return Outcome(shape, _norm_params(node.args, shape[self.axis(shape)]))

    def module(self, node: Shaped) -> Module:
        kwargs, defaults = _norm_options(node.args, "elementwise_affine")
        return Module(self.target, (node.input[self.axis(node.input)],), kwargs, defaults)

    def field(self, node: Shaped) -> FieldRule:
        # The statistics are over that axis at each position of the others.
        return Mixes((self.axis(node.input),))

    def needs(self, args: dict[str, Any], shape: tuple[Any, ...], output: tuple[Any, ...]) -> tuple[Any, ...]:
        return (shape[self.axis(shape)],)


class LayerNorm(_LayerNorm):
    layout = "features"
    channel_axis = -1
    name = "layernorm"
    torch = "nn.LayerNorm(last axis)"
    doc = "layer normalisation over the last axis"
    target = "nn.LayerNorm"
    imports = ("LayerNorm",)

    def axis(self, shape: tuple[Any, ...]) -> int:
        return len(shape) - 1


class LayerNorm2d(_LayerNorm):
    layout = "image"
    name = "layernorm2d"
    torch = "torchvision's ConvNeXt LayerNorm2d (an nn.LayerNorm over the channels)"
    doc = "layer normalisation over the channels of each position of [C, H, W]"
    target = "archdsl.LayerNorm2d"
    imports = ("LayerNorm2d",)

    def axis(self, shape: tuple[Any, ...]) -> int:
        return 0

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        needs_image(node, shape)
        return super().shape(node, shape)


class GroupNorm(Layer):
    layout = "image"
    name = "groupnorm"
    torch = "nn.GroupNorm"
    doc = "group normalisation: each group of channels over its channels and positions"
    kind = "norm"
    args = (
        Arg("groups", positive_int, "channel groups; divides the channels", required=True),
        _EPS,
        Arg("affine", boolean, "learn a scale and a shift per channel", True),
        _BIAS,
    )
    symbolic_args = ("groups",)
    passed_args = ("eps", "affine", "bias")
    imports = ("GroupNorm",)

    def arguments(self, module: Any) -> dict[str, Any] | None:
        affine = module.affine
        return {
            "groups": module.num_groups,
            "eps": module.eps,
            "affine": affine,
            "bias": not affine or module.bias is not None,
        }

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        # nn.GroupNorm takes any [C, ...], a flat [C] too.
        divides(node, shape[0], "channels")
        return Outcome(shape, _norm_params(node.args, shape[0]))

    def module(self, node: Shaped) -> Module:
        kwargs, defaults = _norm_options(node.args, "affine")
        return Module("nn.GroupNorm", (node.args["groups"], node.input[0]), kwargs, defaults)

    def describe(self, node: Shaped) -> str:
        return f"groupnorm {node.args['groups']}"

    def field(self, node: Shaped) -> FieldRule:
        # A group's mean and variance come from all its positions.
        return Mixes(tuple(range(len(node.input))))

    def needs(self, args: dict[str, Any], shape: tuple[Any, ...], output: tuple[Any, ...]) -> tuple[Any, ...]:
        return (shape[0], *super().needs(args, shape, output))


class _Dropout(Pointwise):
    kind = "dropout"
    passed_args: ClassVar[tuple[str, ...]] = ("p",)
    #: What p=1 zeroes, for W002.
    zeroes: ClassVar[str] = "every activation"

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        if node.op == "dropout2d":
            needs_image(node, shape)
        warnings = []
        if node.args["p"] == 1.0:
            warnings.append(
                warning(
                    NO_GRADIENT,
                    f"{node.op}(p=1) zeroes {self.zeroes} in training: no gradient "
                    "reaches the layers before it",
                    node.span,
                )
            )
        return Outcome(shape, warnings=warnings)

    def arguments(self, module: Any) -> dict[str, Any] | None:
        return {"p": module.p}

    def called(self, call: FunctionCall) -> Reading | None:
        return [(self.name, {"p": call.arg(1, "p", 0.5)})]

    def module(self, node: Shaped) -> Module:
        # The probability is written even at its default: it is what a reader looks for.
        return Module(self.torch, (), {"p": node.args["p"]})

    def describe(self, node: Shaped) -> str:
        return f"{node.op} {node.args['p']:g}"


class Dropout(_Dropout):
    name = "dropout"
    torch = "nn.Dropout"
    imports = ("Dropout",)
    calls = ("torch.nn.functional.dropout",)
    doc = "element-wise dropout"
    args = (Arg("p", probability, "probability of zeroing an element", 0.5),)


class Dropout2d(_Dropout):
    layout = "image"
    no_axis = False
    name = "dropout2d"
    torch = "nn.Dropout2d"
    imports = ("Dropout2d",)
    doc = "channel-wise dropout"
    args = (Arg("p", probability, "probability of zeroing a channel", 0.5),)


class StochasticDepth(_Dropout):
    name = "stochasticdepth"
    torch = "torchvision.ops.stochastic_depth, as a module of its own (archdsl.StochasticDepth)"
    doc = "drops a residual branch per sample in training; the identity in eval"
    args = (
        Arg("p", probability, "probability of zeroing a sample (or the batch)", required=True),
        Arg(
            "mode",
            choice("row", "batch"),
            '`"row"`: each sample apart; `"batch"`: all together',
            "row",
            default_text='"row"',
        ),
    )
    passed_args = ("p", "mode")
    zeroes = "every sample"
    imports = ("StochasticDepth",)

    def arguments(self, module: Any) -> dict[str, Any] | None:
        return {"p": module.p, "mode": module.mode}

    def module(self, node: Shaped) -> Module:
        a = node.args
        return Module("archdsl.StochasticDepth", (), {"p": a["p"], "mode": a["mode"]}, {"mode": "row"})

    def describe(self, node: Shaped) -> str:
        a = node.args
        return f"stochasticdepth {a['p']:g}" + (", batch" if a["mode"] == "batch" else "")


class LeakyReLU(Pointwise):
    name = "leakyrelu"
    torch = "nn.LeakyReLU"
    doc = "x for x ≥ 0, slope·x below"
    args = (Arg("slope", number, "slope for x < 0", 0.01),)
    passed_args = ("slope",)
    imports = ("LeakyReLU",)

    calls = ("torch.nn.functional.leaky_relu",)

    def arguments(self, module: Any) -> dict[str, Any] | None:
        return {"slope": module.negative_slope}

    def called(self, call: FunctionCall) -> Reading | None:
        return [(self.name, {"slope": call.arg(1, "negative_slope", 0.01)})]

    def module(self, node: Shaped) -> Module:
        return Module("nn.LeakyReLU", (), {"negative_slope": node.args["slope"]}, {"negative_slope": 0.01})

    def describe(self, node: Shaped) -> str:
        return f"leakyrelu {node.args['slope']:g}"


class PReLU(Layer):
    """nn.PReLU: its slopes are weights (`weight`, one, or one per channel of the first axis)."""

    name = "prelu"
    torch = "nn.PReLU"
    doc = "x for x ≥ 0, a learnt slope·x below: one slope, or one per channel"
    kind = "activation"
    args = (
        Arg("per_channel", boolean, "a slope per channel (the first axis) instead of one for all", False),
        Arg("init", number, "the slopes' initial value", 0.25),
    )
    passed_args = ("init",)
    imports = ("PReLU",)
    no_axis = True  # one slope for all: per channel needs a channel axis, checked in `shape`

    def arguments(self, module: Any) -> dict[str, Any] | None:
        return {"per_channel": module.num_parameters > 1, "init": module.init}

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        if node.args["per_channel"] and not shape:
            raise fail(
                RANK,
                "prelu(per_channel=true) needs a channel axis, and this sample has none ([])",
                node.arg_spans.get("per_channel", node.span),
            )
        return Outcome(shape, shape[0] if node.args["per_channel"] else 1)

    def module(self, node: Shaped) -> Module:
        slopes = node.input[0] if node.args["per_channel"] else 1
        kwargs = {"num_parameters": slopes, "init": node.args["init"]}
        return Module("nn.PReLU", (), kwargs, {"num_parameters": 1, "init": 0.25})

    def describe(self, node: Shaped) -> str:
        return f"prelu ×{node.input[0]}" if node.args["per_channel"] else "prelu"

    def needs(self, args: dict[str, Any], shape: tuple[Any, ...], output: tuple[Any, ...]) -> tuple[Any, ...]:
        return (shape[0],) if args["per_channel"] else ()


class ELU(Pointwise):
    name = "elu"
    torch = "nn.ELU"
    doc = "exponential linear unit"
    args = (Arg("alpha", number, "scale of the negative part", 1.0),)
    passed_args = ("alpha",)
    imports = ("ELU",)

    calls = ("torch.nn.functional.elu",)

    def arguments(self, module: Any) -> dict[str, Any] | None:
        return {"alpha": module.alpha}

    def called(self, call: FunctionCall) -> Reading | None:
        return [(self.name, {"alpha": call.arg(1, "alpha", 1.0)})]

    def module(self, node: Shaped) -> Module:
        return Module("nn.ELU", (), {"alpha": node.args["alpha"]}, {"alpha": 1.0})


class GELU(Pointwise):
    name = "gelu"
    torch = "nn.GELU"
    doc = "Gaussian error linear unit"
    args = (
        Arg(
            "approximate",
            choice("none", "tanh"),
            '`"none"`: x·Φ(x) exactly; `"tanh"`: its tanh approximation',
            "none",
            default_text='"none"',
        ),
    )
    passed_args = ("approximate",)
    imports = ("GELU",)

    calls = ("torch.nn.functional.gelu",)

    def arguments(self, module: Any) -> dict[str, Any] | None:
        return {"approximate": module.approximate}

    def called(self, call: FunctionCall) -> Reading | None:
        return [(self.name, {"approximate": call.kwargs.get("approximate", "none")})]

    def module(self, node: Shaped) -> Module:
        return Module("nn.GELU", (), {"approximate": node.args["approximate"]}, {"approximate": "none"})

    def describe(self, node: Shaped) -> str:
        return "gelu" if node.args["approximate"] == "none" else f"gelu {node.args['approximate']}"


class Identity(Pointwise):
    name = "identity"
    torch = "nn.Identity"
    doc = "passes its input through"
    kind = "other"
    imports = ("Identity",)
    calls = ("Tensor.contiguous", "Tensor.clone", "torch.clone")

    def module(self, node: Shaped) -> Module:
        return Module("nn.Identity")

    def called(self, call: FunctionCall) -> Reading | None:
        return []  # `x.contiguous()`, `x.clone()`: the value itself, no statement


class _Softmax(Pointwise):
    def arguments(self, module: Any) -> dict[str, Any] | None:
        return None if module.dim is None else {"dim": module.dim}

    def called(self, call: FunctionCall) -> Reading | None:
        return [(self.name, {"dim": call.arg(1, "dim", None)})]

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        dim = node.args["dim"]
        rank = len(shape) + 1  # with the batch axis
        if not -rank <= dim < rank:
            raise fail(
                RANK,
                f"{node.op} dim={dim} is out of range for a {fmt(shape)} sample: with the batch axis "
                f"the dims are {-rank}..{rank - 1}",
                node.arg_spans.get("dim", node.span),
            )
        warnings = []
        if dim in (0, -rank):
            warnings.append(
                warning(
                    BATCH_AXIS,
                    f"{node.op} over dim {dim}, the batch axis, mixes the samples of a batch",
                    node.arg_spans.get("dim", node.span),
                )
            )
        return Outcome(shape, warnings=warnings)

    def module(self, node: Shaped) -> Module:
        return Module(self.torch, (), {"dim": node.args["dim"]})

    def describe(self, node: Shaped) -> str:
        return f"{node.op} dim={node.args['dim']}"

    def field(self, node: Shaped) -> FieldRule:
        # Each output depends on every position along `dim` (none, over the batch axis).
        dim = node.args["dim"] % (len(node.input) + 1)
        return Mixes((dim - 1,) if dim else ())


class Softmax(_Softmax):
    name = "softmax"
    torch = "nn.Softmax"
    imports = ("Softmax",)
    calls = ("torch.nn.functional.softmax", "torch.softmax", "Tensor.softmax")
    doc = "softmax along an axis"
    args = (Arg("dim", any_int, "axis, counting the batch as 0", 1),)


class LogSoftmax(_Softmax):
    name = "logsoftmax"
    torch = "nn.LogSoftmax"
    imports = ("LogSoftmax",)
    calls = ("torch.nn.functional.log_softmax", "torch.log_softmax", "Tensor.log_softmax")
    doc = "log of softmax along an axis"
    args = (Arg("dim", any_int, "axis, counting the batch as 0", 1),)


class Scale(Layer):
    """A learnt scale per channel: ConvNeXt's layer scale, `x * gamma` with `gamma` of shape
    [C, 1, 1]. It is no module but a bare parameter of the module it stands in, under its name
    (`layer_scale: scale(1e-6)` is the parameter `layer_scale`, as torchvision names it)."""

    name = "scale"
    torch = "nn.Parameter(torch.full((C, 1, 1), init)), multiplied in"
    doc = "a learnt scale per channel (layer scale)"
    kind = "norm"
    args = (Arg("init", number, "the scales' initial value", 1.0),)
    passed_args = ("init",)

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        return Outcome(shape, shape[0])

    def parameter(self, node: Shaped) -> Parameter:
        return Parameter((node.input[0], *(1,) * (len(node.input) - 1)), node.args["init"])

    def use(self, node: Shaped) -> Function:
        return Function("*", (Input(0), Member()))

    def module(self, node: Shaped) -> Module:
        raise AssertionError("scale is a parameter of its module, not a module (see `parameter`)")

    def describe(self, node: Shaped) -> str:
        return f"scale ×{node.args['init']:g}"

    def needs(self, args: dict[str, Any], shape: tuple[Any, ...], output: tuple[Any, ...]) -> tuple[Any, ...]:
        return (shape[0],)


LAYERS = (
    BatchNorm,
    Scale,
    LayerNorm,
    LayerNorm2d,
    GroupNorm,
    Dropout,
    Dropout2d,
    StochasticDepth,
    plain("relu", "ReLU", "max(0, x)", calls=("torch.nn.functional.relu", "torch.relu", "Tensor.relu")),
    plain("relu6", "ReLU6", "min(max(0, x), 6)", calls=("torch.nn.functional.relu6",)),
    LeakyReLU,
    PReLU,
    plain(
        "tanh",
        "Tanh",
        "hyperbolic tangent",
        calls=("torch.tanh", "torch.nn.functional.tanh", "Tensor.tanh"),
    ),
    plain(
        "sigmoid",
        "Sigmoid",
        "logistic function",
        calls=("torch.sigmoid", "torch.nn.functional.sigmoid", "Tensor.sigmoid"),
    ),
    plain(
        "hardsigmoid",
        "Hardsigmoid",
        "relu6(x + 3)/6, a piecewise-linear sigmoid",
        calls=("torch.nn.functional.hardsigmoid",),
    ),
    GELU,
    plain("silu", "SiLU", "x·sigmoid(x)", calls=("torch.nn.functional.silu",)),
    plain(
        "hardswish",
        "Hardswish",
        "x·relu6(x + 3)/6, a piecewise-linear silu",
        calls=("torch.nn.functional.hardswish",),
    ),
    plain("mish", "Mish", "x·tanh(softplus(x))", calls=("torch.nn.functional.mish",)),
    ELU,
    Softmax,
    LogSoftmax,
    Identity,
)
