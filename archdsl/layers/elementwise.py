"""Layers that keep their input's shape: activations, normalisation, dropout, identity."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import warning
from ..sizes import BATCH_AXIS, NO_GRADIENT, RANK, Outcome, Shape, fail, fmt, needs_image
from ..values import any_int, boolean, number, positive_number, probability
from .base import Arg, FieldRule, Layer, Mixes, Module, Pointwise, plain

if TYPE_CHECKING:
    from ..resolve import LayerNode
    from ..shapes import Shaped


class BatchNorm(Layer):
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

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        if not 1 <= len(shape) <= 4:
            raise fail(
                RANK,
                f"batchnorm needs a [F], [C, L], [C, H, W] or [C, D, H, W] input, got {fmt(shape)}",
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


class _Dropout(Pointwise):
    kind = "dropout"
    passed_args = ("p",)

    def shape(self, node: LayerNode, shape: Shape) -> Outcome:
        if node.op == "dropout2d":
            needs_image(node, shape)
        warnings = []
        if node.args["p"] == 1.0:
            warnings.append(
                warning(
                    NO_GRADIENT,
                    f"{node.op}(p=1) zeroes every activation in training: no gradient "
                    "reaches the layers before it",
                    node.span,
                )
            )
        return Outcome(shape, warnings=warnings)

    def module(self, node: Shaped) -> Module:
        # The probability is written even at its default: it is what a reader looks for.
        return Module(self.torch, (), {"p": node.args["p"]})

    def describe(self, node: Shaped) -> str:
        return f"{node.op} {node.args['p']:g}"


class Dropout(_Dropout):
    name = "dropout"
    torch = "nn.Dropout"
    doc = "element-wise dropout"
    args = (Arg("p", probability, "probability of zeroing an element", 0.5),)


class Dropout2d(_Dropout):
    name = "dropout2d"
    torch = "nn.Dropout2d"
    doc = "channel-wise dropout"
    args = (Arg("p", probability, "probability of zeroing a channel", 0.5),)


class LeakyReLU(Pointwise):
    name = "leakyrelu"
    torch = "nn.LeakyReLU"
    doc = "x for x ≥ 0, slope·x below"
    args = (Arg("slope", number, "slope for x < 0", 0.01),)
    passed_args = ("slope",)

    def module(self, node: Shaped) -> Module:
        return Module("nn.LeakyReLU", (), {"negative_slope": node.args["slope"]}, {"negative_slope": 0.01})

    def describe(self, node: Shaped) -> str:
        return f"leakyrelu {node.args['slope']:g}"


class ELU(Pointwise):
    name = "elu"
    torch = "nn.ELU"
    doc = "exponential linear unit"
    args = (Arg("alpha", number, "scale of the negative part", 1.0),)
    passed_args = ("alpha",)

    def module(self, node: Shaped) -> Module:
        return Module("nn.ELU", (), {"alpha": node.args["alpha"]}, {"alpha": 1.0})


class _Softmax(Pointwise):
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
    doc = "softmax along an axis"
    args = (Arg("dim", any_int, "axis, counting the batch as 0", 1),)


class LogSoftmax(_Softmax):
    name = "logsoftmax"
    torch = "nn.LogSoftmax"
    doc = "log of softmax along an axis"
    args = (Arg("dim", any_int, "axis, counting the batch as 0", 1),)


LAYERS = (
    BatchNorm,
    Dropout,
    Dropout2d,
    plain("relu", "ReLU", "max(0, x)"),
    LeakyReLU,
    plain("tanh", "Tanh", "hyperbolic tangent"),
    plain("sigmoid", "Sigmoid", "logistic function"),
    plain("gelu", "GELU", "Gaussian error linear unit"),
    plain("silu", "SiLU", "x·sigmoid(x)"),
    ELU,
    Softmax,
    LogSoftmax,
    plain("identity", "Identity", "passes its input through", kind="other"),
)
