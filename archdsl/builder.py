"""Stage 5a: shaped IR → a real `torch.nn.Module` (the only stage here that imports torch).

Consumes a `ShapedModel`; every statement is built from the shapes already inferred (in-channels
and in-features come from the statement's input shape, `same` and `view(-1)` are already
concrete). Named statements become submodules of that name, unnamed ones are numbered as
`nn.Sequential` numbers them, so `state_dict` keys follow the spec.
"""

from __future__ import annotations

import importlib
import os
from collections import OrderedDict

import torch
from torch import nn

from . import flow, layers, runtime
from .errors import ArchError, error
from .flow import Add, Call, Mul, Op, Scale, Seq, is_chain
from .layers import Module, PluginError
from .runtime import Sequential
from .shapes import TOO_LARGE, Shaped, ShapedModel, float32_size


class Model(Sequential):
    """A body whose statements run one after another: a model's, or a block call's. Prints under
    the spec's name; a slice of it is a plain `nn.Sequential`."""

    def __init__(self, arch_name: str, members: OrderedDict[str, nn.Module]):
        super().__init__(members)
        self.arch_name = arch_name

    def _get_name(self) -> str:
        return self.arch_name


class Block(Model):
    """The body of one block call."""


class Graph(nn.Module):
    """A module whose members (submodules and parameters) do not simply run one after another:
    its forward follows `flow` (see `flow.py`), which names them. The emitted source writes the
    same flow out as a `forward` method."""

    def __init__(self, arch_name: str, members: OrderedDict[str, nn.Module | nn.Parameter], flow: Op):
        super().__init__()
        self.arch_name = arch_name
        for key, member in members.items():
            if isinstance(member, nn.Parameter):
                self.register_parameter(key, member)
            else:
                self.add_module(key, member)
        self._flow = flow

    def _get_name(self) -> str:
        return self.arch_name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(self._flow, x)

    def _run(self, op: Op, x: torch.Tensor) -> torch.Tensor:
        if isinstance(op, Call):
            return self._modules[op.key](x)  # type: ignore[misc]
        if isinstance(op, Seq):
            for step in op.steps:
                x = self._run(step, x)
            return x
        if isinstance(op, Scale):
            parameter = self._parameters[op.key]
            assert parameter is not None
            return x * parameter
        if isinstance(op, Add):
            return self._run(op.body, x) + (x if op.shortcut is None else self._run(op.shortcut, x))
        if isinstance(op, Mul):
            return x * self._run(op.gate, x)
        parts = [x] * len(op.branches) if op.split is None else torch.split(x, list(op.split), dim=1)
        return torch.cat([self._run(b, part) for b, part in zip(op.branches, parts, strict=True)], dim=1)


def construct(module: Module) -> nn.Module:
    """The `nn.Module` a layer's `Module` describes."""
    target = module.target
    if target.startswith("nn."):
        factory = getattr(nn, target[3:])
    elif target.startswith("archdsl."):
        factory = getattr(runtime, target[len("archdsl.") :])
    else:
        package, _, name = target.partition(":")
        try:
            factory = getattr(importlib.import_module(package), name)
        except (ImportError, AttributeError) as exc:
            raise PluginError(f"a layer plugin's module {target} cannot be imported: {exc}") from None
    return factory(*module.args, **module.kwargs)


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


#: How a composite statement's module prints when it is not a block's.
_NAMES = {"residual": "Residual", "gate": "Gate", "concat": "Concat"}


def _member(node: Shaped) -> nn.Module | nn.Parameter:
    parameter = layers.LAYERS[node.op].parameter(node) if node.kind == "layer" else None
    if parameter is not None:
        return nn.Parameter(torch.full(parameter.shape, float(parameter.fill)))
    return build_node(node)


def _module(name: str, members: list[Shaped], op: Op, sequential: type[Model] | None) -> nn.Module:
    built = OrderedDict((member.key, _member(member)) for member in members)
    if not is_chain(op):
        return Graph(name, built, op)
    modules: OrderedDict[str, nn.Module] = built  # type: ignore[assignment]  # a chain has no parameters
    return nn.Sequential(modules) if sequential is None else sequential(name, modules)


def build_node(node: Shaped) -> nn.Module:
    if node.kind == "layer":
        return layers.LAYERS[node.op].build(node)
    if node.kind == "shortcut" and node.op != "path":
        return _shortcut(node)
    members, op = flow.module(node)
    if node.kind == "block":
        return _module(node.op, members, op, Block)
    return _module(_NAMES.get(node.kind, "Sequential"), members, op, None)


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
    members: list[Shaped] = []
    op = flow.sequence(model.layers, members)
    return _module(model.name, members, op, Model)  # type: ignore[return-value]
