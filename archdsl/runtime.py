"""The modules archdsl's networks use beyond `torch.nn`, one definition for both of its outputs.

The builder constructs these classes; `emit` copies their source text, read from this file (never
imported: emit does not import torch), into the emitted module, so a built network and its emitted
source run the same code. Each definition is therefore written as it is to appear there: plain
PyTorch, no archdsl imports, formatted as `ruff format` formats at its default line length (88),
and referring only to `torch` and `nn`, which the emitted module imports.
"""

from __future__ import annotations

import torch
from torch import nn


class Concat(nn.Module):
    """Runs every branch on the same input and joins the results on the channel axis."""

    def __init__(self, branches: dict[str, nn.Module]) -> None:
        super().__init__()
        for key, branch in branches.items():
            self.add_module(key, branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.children()], dim=1)


class Residual(nn.Module):
    """body(x) + x, or body(x) + shortcut(x) where a projection maps x to the body's shape."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None = None) -> None:
        super().__init__()
        self.body = body
        self.shortcut = nn.Identity() if shortcut is None else shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


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
