"""The built-in layers' signatures: argument names, order, defaults and what each accepts.

Data shared by resolve (binding call arguments), shapes (rules look arguments up by name), build
and the docs. No torch here. Each argument's `accepts` converts an evaluated value to the
normalised form the later stages use (ints, `(h, w)` pairs, floats, bools) or raises `BadValue`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import Span


class BadValue(Exception):
    """An argument value of the wrong kind; the message says what was expected."""


@dataclass(frozen=True)
class Symbol:
    """A bare name that is not a parameter in scope: a keyword value such as `same` or `project`."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class CallValue:
    """A call written as a value, `sgd(lr=0.9)`; bound by whoever knows its signature."""

    name: str
    span: Span
    args: tuple[tuple[str | None, Any, Span], ...]


def describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(describe(v) for v in value) + "]"
    if isinstance(value, Symbol):
        return f"the name '{value.name}'"
    if isinstance(value, CallValue):
        return f"{value.name}(...)"
    return str(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(value: Any) -> int:
    if _is_int(value) and value >= 1:
        return int(value)
    raise BadValue(f"a positive integer, got {describe(value)}")


def nonnegative_int(value: Any) -> int:
    if _is_int(value) and value >= 0:
        return int(value)
    raise BadValue(f"an integer ≥ 0, got {describe(value)}")


def any_int(value: Any) -> int:
    if _is_int(value):
        return int(value)
    raise BadValue(f"an integer, got {describe(value)}")


def _pair(item: Callable[[Any], int], what: str) -> Callable[[Any], tuple[int, int]]:
    def convert(value: Any) -> tuple[int, int]:
        if isinstance(value, list | tuple):
            if len(value) != 2:
                raise BadValue(f"{what} or an [h, w] pair, got {describe(value)}")
            try:
                return item(value[0]), item(value[1])
            except BadValue:
                raise BadValue(f"{what} or an [h, w] pair of them, got {describe(value)}") from None
        try:
            single = item(value)
        except BadValue:
            raise BadValue(f"{what} or an [h, w] pair, got {describe(value)}") from None
        return single, single

    return convert


positive_pair = _pair(positive_int, "a positive integer")
nonnegative_pair = _pair(nonnegative_int, "an integer ≥ 0")


def conv_padding(value: Any) -> tuple[int, int] | str:
    if isinstance(value, str | Symbol) and str(value) in ("same", "valid"):
        return str(value)
    try:
        return nonnegative_pair(value)
    except BadValue:
        raise BadValue(f'an integer ≥ 0, an [h, w] pair, "same" or "valid", got {describe(value)}') from None


def channels(value: Any) -> int | str:
    """An output channel/feature count, or `same`: as many as come in."""
    if isinstance(value, Symbol) and value.name == "same":
        return "same"
    if _is_int(value) and value >= 1:
        return int(value)
    raise BadValue(f"a positive integer or `same`, got {describe(value)}")


def probability(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0:
        return float(value)
    raise BadValue(f"a probability between 0 and 1, got {describe(value)}")


def number(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise BadValue(f"a number, got {describe(value)}")


def positive_number(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise BadValue(f"a number > 0, got {describe(value)}")


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise BadValue(f"true or false, got {describe(value)}")


def string(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise BadValue(f"a string, got {describe(value)}")


def any_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    raise BadValue(f"a list, got {describe(value)}")


def int_list(value: Any) -> tuple[int, ...]:
    if isinstance(value, list | tuple) and all(_is_int(v) for v in value):
        return tuple(int(v) for v in value)
    raise BadValue(f"a list of integers, got {describe(value)}")


def choice(*options: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if isinstance(value, str | Symbol) and str(value) in options:
            return str(value)
        listed = ", ".join(f"`{o}`" for o in options)
        raise BadValue(f"one of {listed}, got {describe(value)}")

    return convert


@dataclass(frozen=True)
class Arg:
    name: str
    accepts: Callable[[Any], Any]
    doc: str
    default: Any = None
    required: bool = False
    #: Shown in docs and signatures instead of the Python default.
    default_text: str | None = None


@dataclass(frozen=True)
class LayerSpec:
    name: str
    args: tuple[Arg, ...]
    torch: str
    doc: str
    #: `view(4, 7, 7)`: all positional arguments are collected into one list argument.
    variadic: str | None = None

    def arg(self, name: str) -> Arg:
        return next(a for a in self.args if a.name == name)


_KERNEL = Arg("kernel", positive_pair, "window size, an int or [h, w]", required=True)
_POOL_STRIDE = Arg("stride", positive_pair, "step; defaults to the kernel", default_text="kernel")
_POOL_PADDING = Arg(
    "padding",
    nonnegative_pair,
    "implicit -inf/zero padding, at most half the kernel",
    (0, 0),
    default_text="0",
)
_CEIL = Arg("ceil", boolean, "round the output size up (ceil_mode)", False)

LAYERS: dict[str, LayerSpec] = {
    spec.name: spec
    for spec in (
        LayerSpec(
            "conv",
            (
                Arg("out", channels, "output channels, or `same`", required=True),
                _KERNEL,
                Arg("stride", positive_pair, "step, an int or [h, w]", (1, 1), default_text="1"),
                Arg(
                    "padding",
                    conv_padding,
                    'zero padding, an int, [h, w], "same" or "valid"',
                    (0, 0),
                    default_text="0",
                ),
                Arg("dilation", positive_pair, "spacing of kernel taps", (1, 1), default_text="1"),
                Arg("groups", positive_int, "grouped convolution; divides in and out channels", 1),
                Arg("bias", boolean, "learn an additive bias", True),
                Arg("in", positive_int, "asserts the incoming channel count", default_text="inferred"),
            ),
            "nn.Conv2d",
            "2-D convolution",
        ),
        LayerSpec(
            "maxpool",
            (
                _KERNEL,
                _POOL_STRIDE,
                _POOL_PADDING,
                Arg("dilation", positive_pair, "spacing of window taps", (1, 1), default_text="1"),
                _CEIL,
            ),
            "nn.MaxPool2d",
            "2-D max pooling",
        ),
        LayerSpec(
            "avgpool",
            (
                _KERNEL,
                _POOL_STRIDE,
                _POOL_PADDING,
                _CEIL,
                Arg("count_include_pad", boolean, "count padding zeros in the average", True),
            ),
            "nn.AvgPool2d",
            "2-D average pooling",
        ),
        LayerSpec(
            "adaptiveavgpool",
            (Arg("size", positive_pair, "output size, an int or [h, w]", required=True),),
            "nn.AdaptiveAvgPool2d",
            "average pooling to a fixed output size",
        ),
        LayerSpec(
            "adaptivemaxpool",
            (Arg("size", positive_pair, "output size, an int or [h, w]", required=True),),
            "nn.AdaptiveMaxPool2d",
            "max pooling to a fixed output size",
        ),
        LayerSpec(
            "batchnorm",
            (
                Arg("eps", positive_number, "added to the variance", 1e-5),
                Arg("momentum", probability, "running-statistics momentum", 0.1),
                Arg("affine", boolean, "learn scale and shift", True),
            ),
            "nn.BatchNorm1d / nn.BatchNorm2d / nn.BatchNorm3d (by rank)",
            "batch normalisation over the channel (or feature) axis",
        ),
        LayerSpec(
            "dropout",
            (Arg("p", probability, "probability of zeroing an element", 0.5),),
            "nn.Dropout",
            "element-wise dropout",
        ),
        LayerSpec(
            "dropout2d",
            (Arg("p", probability, "probability of zeroing a channel", 0.5),),
            "nn.Dropout2d",
            "channel-wise dropout",
        ),
        LayerSpec("relu", (), "nn.ReLU", "max(0, x)"),
        LayerSpec(
            "leakyrelu",
            (Arg("slope", number, "slope for x < 0", 0.01),),
            "nn.LeakyReLU",
            "x for x ≥ 0, slope·x below",
        ),
        LayerSpec("tanh", (), "nn.Tanh", "hyperbolic tangent"),
        LayerSpec("sigmoid", (), "nn.Sigmoid", "logistic function"),
        LayerSpec("gelu", (), "nn.GELU", "Gaussian error linear unit"),
        LayerSpec("silu", (), "nn.SiLU", "x·sigmoid(x)"),
        LayerSpec(
            "elu",
            (Arg("alpha", number, "scale of the negative part", 1.0),),
            "nn.ELU",
            "exponential linear unit",
        ),
        LayerSpec(
            "softmax",
            (Arg("dim", any_int, "axis, counting the batch as 0", 1),),
            "nn.Softmax",
            "softmax along an axis",
        ),
        LayerSpec(
            "logsoftmax",
            (Arg("dim", any_int, "axis, counting the batch as 0", 1),),
            "nn.LogSoftmax",
            "log of softmax along an axis",
        ),
        LayerSpec("identity", (), "nn.Identity", "passes its input through"),
        LayerSpec("flatten", (), "nn.Flatten", "[C, H, W] → [C·H·W]"),
        LayerSpec(
            "view",
            (Arg("dims", int_list, "the per-sample shape; one -1 is inferred", required=True),),
            "Tensor.reshape (batch kept)",
            "reshape each sample",
            variadic="dims",
        ),
        LayerSpec(
            "linear",
            (
                Arg("out", channels, "output features, or `same`", required=True),
                Arg("bias", boolean, "learn an additive bias", True),
                Arg("in", positive_int, "asserts the incoming feature count", default_text="inferred"),
            ),
            "nn.Linear",
            "fully connected layer",
        ),
        LayerSpec(
            "pretrained",
            (
                Arg(
                    "name",
                    string,
                    "a torchvision classification model, as `list_models()` names it",
                    required=True,
                ),
                Arg(
                    "part",
                    string,
                    'a submodule of it, a dotted path ("features", "layer4")',
                    default_text="none",
                ),
                Arg(
                    "weights",
                    string,
                    'a weights enum member ("DEFAULT", "IMAGENET1K_V1")',
                    default_text="none",
                ),
                Arg("freeze", boolean, "requires_grad false for all its parameters", False),
            ),
            "torchvision.models.get_model(name, weights=…), or its part",
            "a torchvision model, or part of one, as a layer",
        ),
    )
}

#: Arguments of the `residual(...)` and `concat(...)` composites, bound like a layer's.
RESIDUAL = LayerSpec(
    "residual",
    (
        Arg(
            "shortcut",
            choice("identity", "project"),
            "`identity`, or `project`: a 1×1 conv (linear for [F])",
            "identity",
        ),
        Arg(
            "stride",
            positive_pair,
            "the projection's stride; inferred from the shapes",
            default_text="inferred",
        ),
        Arg("bias", boolean, "the projection's bias", True),
        Arg("batchnorm", boolean, "batch-normalise the projection (as ResNet's downsample)", False),
    ),
    "Residual: body(x) + shortcut(x)",
    "y = shortcut(x) + body(x)",
)
CONCAT = LayerSpec("concat", (), "torch.cat(dim=1)", "parallel branches joined on channels")

#: Names the language gives meaning to as bare values.
KEYWORD_VALUES = ("same", "project", "identity")

#: Layers that learn something; used by the no-gradient warning.
PARAMETERISED = {"conv", "linear", "batchnorm", "pretrained"}
