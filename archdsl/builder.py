"""Stage 5a: shaped IR → a real `torch.nn.Module` (the only stage here that imports torch).

Consumes a `ShapedModel`; every statement is built from the shapes already inferred (in-channels
and in-features come from the statement's input shape, `same` and `view(-1)` are already
concrete). Named statements become submodules of that name, unnamed ones are numbered as
`nn.Sequential` numbers them, so `state_dict` keys follow the spec.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from .errors import ArchError, error
from .shapes import TOO_LARGE, Shaped, ShapedModel, float32_size


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


def _pretrained(layer: Shaped) -> nn.Module:
    """torchvision's module; the weights are fetched here, the only place archdsl downloads them."""
    from . import pretrained

    a = layer.args
    try:
        module = pretrained.build(a["name"], a["part"], a["weights"], a["freeze"])
    except pretrained.LoadFailed as failed:
        raise ArchError([error(pretrained.PRETRAINED, str(failed), layer.span)]) from None
    params = sum(p.numel() for p in module.parameters())
    if params != layer.params:
        # The check found the shape without weights; a few weights rebuild the model differently
        # (vit_h_14's SWAG weights raise its image size to 518).
        raise ArchError(
            [
                error(
                    pretrained.PRETRAINED,
                    f"pretrained {pretrained.title(a['name'], a['part'])} with weights {a['weights']} has "
                    f"{params:,} parameters, not the {layer.params:,} checked without them: these "
                    "weights change the architecture, so its shapes cannot be trusted",
                    layer.span,
                )
            ]
        )
    return module


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
    "pretrained": _pretrained,
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


def memory_bytes() -> int | None:
    """This machine's physical memory, if the system says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def default_max_params() -> int:
    """As many float32 parameters as this machine's memory holds (2**30 when it cannot be told)."""
    memory = memory_bytes()
    return memory // 4 if memory else 2**30


def size_error(model: ShapedModel, max_params: int | None = None) -> ArchError | None:
    """Refuses, before anything is allocated, a model with more parameters than `max_params`
    (by default: more than fit in this machine's memory as float32)."""
    limit = default_max_params() if max_params is None else max_params
    if model.params <= limit:
        return None
    if max_params is None:
        reason = f"more than fit in this machine's memory ({float32_size(limit)})"
    else:
        reason = f"more than max_params={max_params:,}"
    return ArchError(
        [
            error(
                TOO_LARGE,
                f"model {model.name} has {model.params:,} parameters ({float32_size(model.params)} "
                f"as float32), {reason}; raise the limit (max_params=…, --max-params) to build it",
                model.span,
            )
        ]
    )


def build_model(model: ShapedModel, max_params: int | None = None) -> Model:
    """Builds the model; raises `ArchError` (E110) if it has more than `max_params` parameters
    (default: what this machine's memory holds), before allocating any."""
    if not model.complete:
        raise ValueError(f"model {model.name} has errors; check it first")
    too_big = size_error(model, max_params)
    if too_big is not None:
        raise too_big
    return Model(model.name, _sequence(model.layers))
