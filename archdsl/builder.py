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

from torch import nn

from . import layers, runtime
from .errors import ArchError, error
from .layers import Module, PluginError
from .runtime import Concat, Residual
from .shapes import TOO_LARGE, Shaped, ShapedModel, float32_size


class Model(nn.Sequential):
    """The network of one `model` definition; prints under the spec's model name."""

    def __init__(self, arch_name: str, members: OrderedDict[str, nn.Module]):
        super().__init__(members)
        self.arch_name = arch_name

    def _get_name(self) -> str:
        return self.arch_name


class Block(Model):
    """The body of one block call."""


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


def _sequence(nodes: list[Shaped]) -> OrderedDict[str, nn.Module]:
    return OrderedDict((node.key, build_node(node)) for node in nodes)


def build_node(node: Shaped) -> nn.Module:
    if node.kind == "layer":
        return layers.LAYERS[node.op].build(node)
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
