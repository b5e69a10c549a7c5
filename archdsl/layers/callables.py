"""The callables a layer's `Module` and `Function` descriptions name, and the modules they build.

A layer describes its PyTorch module as data (`Module("nn.Conv2d", args, kwargs)`); this turns a
name into the class or function it names (`nn.`, `nn.functional.`, `torch.`, `archdsl.` for the
runtime's classes, or a plugin's `package:attribute`) and a description into the module. It sits
with the layers, so that `Layer.build` and the builder construct modules one way; torch is
imported here only when a name is looked up, never by `archdsl check`.
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from .base import Module


class PluginError(Exception):
    """A plugin's layer cannot be registered, or the module it names imported; the message names the
    plugin and why."""


@functools.cache
def target(name: str) -> Any:
    """The callable a `Function` or `Module` names."""
    import torch
    from torch import nn

    if name.startswith("nn.functional."):
        return getattr(nn.functional, name[len("nn.functional.") :])
    if name.startswith("nn."):
        return getattr(nn, name[3:])
    if name.startswith("torch."):
        return getattr(torch, name[len("torch.") :])
    if name.startswith("archdsl."):
        from .. import runtime

        return getattr(runtime, name[len("archdsl.") :])
    package, _, attribute = name.partition(":")
    try:
        return getattr(importlib.import_module(package), attribute)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"a layer plugin's module {name} cannot be imported: {exc}") from None


def construct(module: Module) -> nn.Module:
    """The `nn.Module` a layer's `Module` describes."""
    built: nn.Module = target(module.target)(*module.args, **module.kwargs)
    return built
