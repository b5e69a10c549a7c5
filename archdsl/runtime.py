"""The modules archdsl's networks use beyond `torch.nn`, one definition for both of its outputs.

The builder constructs these classes; `emit` copies their source text, read from this file (never
imported: emit does not import torch), into the emitted module, so a built network and its emitted
source run the same code. Each definition is therefore written as it is to appear there: plain
PyTorch, no archdsl imports, formatted as `ruff format` formats at its default line length (88),
and referring only to `torch` and `nn`, which the emitted module imports.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class Sequential(nn.Sequential):
    """`nn.Sequential` for a class that builds its own layers in `__init__`: a slice of it is a
    plain `nn.Sequential` of those layers (`nn.Sequential`'s own slice would call `__init__`)."""

    def __getitem__(self, index: int | slice) -> nn.Module:  # type: ignore[override]
        if isinstance(index, slice):
            return nn.Sequential(OrderedDict(list(self._modules.items())[index]))
        return super().__getitem__(index)


class Concat(nn.Module):
    """Runs every branch on the input (or, with `split`, each on its share of the channels) and
    joins the results on the channel axis."""

    def __init__(self, branches: dict[str, nn.Module], split: list[int] | None = None) -> None:
        super().__init__()
        for key, branch in branches.items():
            self.add_module(key, branch)
        self._split = split

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = list(self.children())
        if self._split is None:
            return torch.cat([branch(x) for branch in branches], dim=1)
        parts = x.split(self._split, dim=1)
        return torch.cat([branch(p) for branch, p in zip(branches, parts, strict=True)], dim=1)


class Residual(nn.Sequential):
    """x + its layers run in order (as `nn.Sequential` runs them), or shortcut(x) + them: the
    shortcut is registered beside the layers as `name`."""

    def __init__(
        self,
        *layers: nn.Module,
        shortcut: nn.Module | None = None,
        name: str = "shortcut",
    ) -> None:
        super().__init__(*layers)
        self._shortcut = None if shortcut is None else name
        if shortcut is not None:
            self.add_module(name, shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for key, layer in self._modules.items():
            if key != self._shortcut:
                y = layer(y)
        if self._shortcut is None:
            return y + x
        return y + self._modules[self._shortcut](x)


class Gate(nn.Sequential):
    """x times what its layers, run in order, make of x: a squeeze-and-excitation gate."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * super().forward(x)


def pretrained(
    name: str,
    part: str = "",
    freeze: bool = False,
    **options: object,
) -> nn.Module:
    """torchvision's model `name` (`weights="DEFAULT"` downloads its weights), or its submodule
    `part`; `freeze` turns off `requires_grad` for all its parameters."""
    import torchvision

    model = torchvision.models.get_model(name, **options)
    module = model.get_submodule(part) if part else model
    return module.requires_grad_(not freeze)


class View(nn.Module):
    """Reshapes each sample, keeping the batch axis."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)
