"""Stage 5a: shaped IR → a real `torch.nn.Module` (the only stage here that imports torch).

Consumes a `ShapedModel`; every statement is built from the shapes already inferred (in-channels
and in-features come from the statement's input shape, `same` and `view(-1)` are already
concrete). Named statements become submodules of that name, unnamed ones are numbered as
`nn.Sequential` numbers them, so `state_dict` keys follow the spec.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from .shapes import Shaped, ShapedModel


class Model(nn.Sequential):
    """The network of one `model` definition; prints under the spec's model name."""

    def __init__(self, arch_name: str, layers: OrderedDict[str, nn.Module]):
        super().__init__(layers)
        self.arch_name = arch_name

    def _get_name(self) -> str:
        return self.arch_name


class Block(Model):
    """The body of one block call."""


class Concat(nn.Module):
    """Parallel branches on the same input, joined on the channel axis."""

    def __init__(self, branches: OrderedDict[str, nn.Module]):
        super().__init__()
        for name, branch in branches.items():
            self.add_module(name, branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.children()], dim=1)


class Residual(nn.Module):
    """y = body(x) + shortcut(x); the shortcut is `nn.Identity` or a 1×1 projection."""

    def __init__(self, body: nn.Module, shortcut: nn.Module):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class View(nn.Module):
    """Reshapes each sample, keeping the batch axis (`reshape`, so non-contiguous input works)."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return ", ".join(str(d) for d in self.shape)


def _conv(layer: Shaped) -> nn.Module:
    a = layer.args
    padding = a["padding"]
    return nn.Conv2d(
        layer.input[0],
        layer.output[0],
        kernel_size=a["kernel"],
        stride=a["stride"],
        padding=0 if padding == "valid" else padding,
        dilation=a["dilation"],
        groups=a["groups"],
        bias=a["bias"],
    )


def _batchnorm(layer: Shaped) -> nn.Module:
    a = layer.args
    kind = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}[len(layer.input)]
    return kind(layer.input[0], eps=a["eps"], momentum=a["momentum"], affine=a["affine"])


CONSTRUCTORS: dict[str, Callable[[Shaped], nn.Module]] = {
    "conv": _conv,
    "maxpool": lambda s: nn.MaxPool2d(
        s.args["kernel"],
        s.args["stride"] or s.args["kernel"],
        s.args["padding"],
        s.args["dilation"],
        ceil_mode=s.args["ceil"],
    ),
    "avgpool": lambda s: nn.AvgPool2d(
        s.args["kernel"],
        s.args["stride"] or s.args["kernel"],
        s.args["padding"],
        ceil_mode=s.args["ceil"],
        count_include_pad=s.args["count_include_pad"],
    ),
    "adaptiveavgpool": lambda s: nn.AdaptiveAvgPool2d(s.args["size"]),
    "adaptivemaxpool": lambda s: nn.AdaptiveMaxPool2d(s.args["size"]),
    "batchnorm": _batchnorm,
    "dropout": lambda s: nn.Dropout(s.args["p"]),
    "dropout2d": lambda s: nn.Dropout2d(s.args["p"]),
    "relu": lambda s: nn.ReLU(),
    "leakyrelu": lambda s: nn.LeakyReLU(s.args["slope"]),
    "tanh": lambda s: nn.Tanh(),
    "sigmoid": lambda s: nn.Sigmoid(),
    "gelu": lambda s: nn.GELU(),
    "silu": lambda s: nn.SiLU(),
    "elu": lambda s: nn.ELU(s.args["alpha"]),
    "softmax": lambda s: nn.Softmax(dim=s.args["dim"]),
    "logsoftmax": lambda s: nn.LogSoftmax(dim=s.args["dim"]),
    "identity": lambda s: nn.Identity(),
    "flatten": lambda s: nn.Flatten(),
    "view": lambda s: View(s.output),
    "linear": lambda s: nn.Linear(s.input[0], s.output[0], bias=s.args["bias"]),
}


def _shortcut(node: Shaped) -> nn.Module:
    a = node.args
    if node.op == "linear":
        projection: nn.Module = nn.Linear(node.input[0], node.output[0], bias=a["bias"])
        norm: nn.Module = nn.BatchNorm1d(node.output[0])
    else:
        projection = nn.Conv2d(
            node.input[0], node.output[0], kernel_size=1, stride=a["stride"], bias=a["bias"]
        )
        norm = nn.BatchNorm2d(node.output[0])
    return nn.Sequential(projection, norm) if a["batchnorm"] else projection


def _sequence(nodes: list[Shaped]) -> OrderedDict[str, nn.Module]:
    return OrderedDict((node.key, build_node(node)) for node in nodes)


def build_node(node: Shaped) -> nn.Module:
    if node.kind == "layer":
        return CONSTRUCTORS[node.op](node)
    if node.kind == "block":
        return Block(node.op, _sequence(node.children))
    if node.kind in ("repeat", "iteration", "branch"):
        return nn.Sequential(_sequence(node.children))
    if node.kind == "concat":
        return Concat(_sequence(node.children))
    if node.kind == "residual":
        body = [c for c in node.children if c.kind != "shortcut"]
        shortcuts = [c for c in node.children if c.kind == "shortcut"]
        shortcut = _shortcut(shortcuts[0]) if shortcuts else nn.Identity()
        return Residual(nn.Sequential(_sequence(body)), shortcut)
    raise AssertionError(f"cannot build a {node.kind}")


def build_model(model: ShapedModel) -> Model:
    if not model.complete:
        raise ValueError(f"model {model.name} has errors; check it first")
    return Model(model.name, _sequence(model.layers))
