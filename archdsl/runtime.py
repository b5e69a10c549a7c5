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

    def __init__(
        self,
        branches: dict[str, nn.Module],
        split: list[int] | None = None,
    ) -> None:
        super().__init__()
        for key, branch in branches.items():
            self.add_module(key, branch)
        self._split = split

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = list(self.children())
        if self._split is None:
            return torch.cat([branch(x) for branch in branches], dim=1)
        parts = x.split(self._split, dim=1)
        return torch.cat(
            [branch(p) for branch, p in zip(branches, parts, strict=True)],
            dim=1,
        )


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


def pad_to(x: torch.Tensor, like: torch.Tensor, mode: str = "constant") -> torch.Tensor:
    """`x` padded (or, where it is larger, cropped) to `like`'s height and width, centred: the
    extra row or column goes at the bottom or right."""
    dy = like.shape[-2] - x.shape[-2]
    dx = like.shape[-1] - x.shape[-1]
    pads = [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2]
    return nn.functional.pad(x, pads, mode=mode)


class View(nn.Module):
    """Reshapes each sample, keeping the batch axis."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


class Narrow(nn.Module):
    """Keeps `length` channels of each sample from `start` on: `x[:, start:start + length]`."""

    def __init__(self, length: int, start: int = 0) -> None:
        super().__init__()
        self.length = length
        self.start = start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.narrow(1, self.start, self.length)

    def extra_repr(self) -> str:
        return f"{self.length}, start={self.start}"


class Permute(nn.Module):
    """Reorders each sample's axes, keeping the batch axis first: `dims` counts from the axis
    after the batch, so `Permute(1, 2, 0)` takes [N, C, H, W] to [N, H, W, C]."""

    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, *(d + 1 for d in self.dims))

    def extra_repr(self) -> str:
        return ", ".join(map(str, self.dims))


class LayerNorm2d(nn.LayerNorm):
    """Layer normalisation over the channels of each position of [N, C, H, W]: torchvision's
    ConvNeXt LayerNorm2d, whose parameters (`weight`, `bias`) it has."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        shape, eps = self.normalized_shape, self.eps
        x = nn.functional.layer_norm(x, shape, self.weight, self.bias, eps)
        return x.permute(0, 3, 1, 2)


class StochasticDepth(nn.Module):
    """torchvision.ops.stochastic_depth: in training, zeroes each sample ("row") or the whole
    batch ("batch") with probability p and scales what is kept by 1 / (1 - p); the identity in
    eval mode or with p = 0."""

    def __init__(self, p: float, mode: str = "row") -> None:
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode!r}"
