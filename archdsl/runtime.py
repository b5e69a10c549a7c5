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


class ShiftedWindowAttention(nn.Module):
    """torchvision's Swin window attention on a channels-last map [N, H, W, C], or a clip's
    [N, T, H, W, C] (`ShiftedWindowAttention3d`, a window of three sizes): multi-head
    self-attention within each window of the (padded) map, the windows shifted cyclically by
    `shift_size` first, with a learnt relative position bias. The two ranks differ as torchvision's
    do where a window is as large as the map: a map's window keeps its size and is not shifted; a
    clip's shrinks to the map, unshifted, and takes the first rows of the bias index. With `v2`
    (maps only), Swin V2's: cosine attention with a learnt logit scale, the bias from a small MLP
    over log-spaced relative coordinates, no key bias."""

    def __init__(
        self,
        dim: int,
        window_size: list[int],
        shift_size: list[int],
        num_heads: int,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        attention_dropout: float = 0.0,
        dropout: float = 0.0,
        v2: bool = False,
    ) -> None:
        super().__init__()
        if v2 and len(window_size) != 2:
            raise ValueError("Swin V2's window attention takes maps [N, H, W, C] only")
        self.window_size = list(window_size)
        self.shift_size = list(shift_size)
        self.num_heads = num_heads
        self.attention_dropout = attention_dropout
        self.dropout = dropout
        self.v2 = v2
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        window = self.window_size
        if v2:
            wh, ww = window
            rows = torch.arange(-(wh - 1), wh, dtype=torch.float32) / (wh - 1)
            columns = torch.arange(-(ww - 1), ww, dtype=torch.float32) / (ww - 1)
            table = torch.stack(torch.meshgrid([rows, columns], indexing="ij"))
            table = table.permute(1, 2, 0).contiguous().unsqueeze(0) * 8
            table = torch.sign(table) * torch.log2(torch.abs(table) + 1.0) / 3.0
            self.register_buffer("relative_coords_table", table)
        else:
            size = 1
            for w in window:
                size *= 2 * w - 1
            table = torch.zeros(size, num_heads)
            self.relative_position_bias_table = nn.Parameter(table)
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        grid = torch.meshgrid(*(torch.arange(w) for w in window), indexing="ij")
        coords = torch.stack(grid).flatten(1)
        relative = coords[:, :, None] - coords[:, None, :]
        relative = relative.permute(1, 2, 0).contiguous()
        for axis, w in enumerate(window):
            relative[:, :, axis] += w - 1
        for axis in range(len(window) - 1):
            for w in window[axis + 1 :]:
                relative[:, :, axis] *= 2 * w - 1
        index = relative.sum(-1)
        # torchvision keeps a map's index flat, a clip's square
        index = index.flatten() if len(window) == 2 else index
        self.register_buffer("relative_position_index", index)
        if v2:
            logit_scale = torch.log(10 * torch.ones((num_heads, 1, 1)))
            self.logit_scale = nn.Parameter(logit_scale)
            self.cpb_mlp = nn.Sequential(
                nn.Linear(2, 512, bias=True),
                nn.ReLU(inplace=True),
                nn.Linear(512, num_heads, bias=False),
            )
            if qkv_bias:
                length = self.qkv.bias.numel() // 3
                self.qkv.bias[length : 2 * length].data.zero_()

    def position_bias(self, window: list[int]) -> torch.Tensor:
        if self.v2:
            table = self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)
        else:
            table = self.relative_position_bias_table
        n = 1
        for w in window:
            n *= w
        index = self.get_buffer("relative_position_index")
        index = index if index.dim() == 1 else index[:n, :n].flatten()
        bias = table[index].view(n, n, -1).permute(2, 0, 1).contiguous().unsqueeze(0)
        return 16 * torch.sigmoid(bias) if self.v2 else bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, *sizes, channels = x.shape
        rank, heads = len(sizes), self.num_heads
        window, shift = list(self.window_size), list(self.shift_size)
        if rank == 3:
            # a clip's window no larger than the clip: as large as it, unshifted
            for axis in range(3):
                if sizes[axis] <= window[axis]:
                    window[axis], shift[axis] = sizes[axis], 0
        pads = [(w - size % w) % w for size, w in zip(sizes, window, strict=True)]
        padding = [0, 0, *(v for pad in reversed(pads) for v in (0, pad))]
        x = nn.functional.pad(x, padding)
        padded = list(x.shape[1:-1])
        if rank == 2:
            # a map's window as large as the map has nothing to shift
            covers = [w >= size for w, size in zip(window, padded, strict=True)]
            shift = [0 if full else s for full, s in zip(covers, shift, strict=True)]
        dims = tuple(range(1, rank + 1))
        if sum(shift) > 0:
            x = torch.roll(x, shifts=[-s for s in shift], dims=dims)
        counts = [size // w for size, w in zip(padded, window, strict=True)]
        windows, tokens = 1, 1
        for count, w in zip(counts, window, strict=True):
            windows, tokens = windows * count, tokens * w
        split = [v for count, w in zip(counts, window, strict=True) for v in (count, w)]
        # [N, n₁, w₁, n₂, w₂, …, C] → [N·windows, tokens, C]: the window counts first
        gather = [0, *range(1, 2 * rank, 2), *range(2, 2 * rank + 1, 2), 2 * rank + 1]
        x = x.view(batch, *split, channels).permute(gather)
        x = x.reshape(batch * windows, tokens, channels)
        qkv_bias: torch.Tensor | None = self.qkv.bias
        if self.v2 and qkv_bias is not None:
            qkv_bias = qkv_bias.clone()
            length = qkv_bias.numel() // 3
            qkv_bias[length : 2 * length].zero_()
        qkv = nn.functional.linear(x, self.qkv.weight, qkv_bias)
        qkv = qkv.reshape(x.size(0), x.size(1), 3, heads, channels // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        if self.v2:
            q = nn.functional.normalize(q, dim=-1)
            attn = q @ nn.functional.normalize(k, dim=-1).transpose(-2, -1)
            attn = attn * torch.clamp(self.logit_scale, max=4.605170185988092).exp()
        else:
            attn = (q * (channels // heads) ** -0.5).matmul(k.transpose(-2, -1))
        attn = attn + self.position_bias(window)
        if sum(shift) > 0:
            mask = x.new_zeros(padded)
            # the regions a shift joins, numbered in torchvision's order
            regions: list[tuple[slice, ...]] = [()]
            for w, s in zip(window, shift, strict=True):
                pieces = (slice(0, -w), slice(-w, -s), slice(-s, None))
                regions = [(*region, piece) for region in regions for piece in pieces]
            for count, region in enumerate(regions):
                mask[region] = count
            inner = [g - 1 for g in gather[1:-1]]
            mask = mask.view(*split).permute(inner).reshape(windows, tokens)
            mask = mask.unsqueeze(1) - mask.unsqueeze(2)
            mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
            attn = attn.view(x.size(0) // windows, windows, heads, x.size(1), x.size(1))
            attn = attn + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, heads, x.size(1), x.size(1))
        attn = nn.functional.softmax(attn, dim=-1)
        attn = nn.functional.dropout(attn, self.attention_dropout, self.training)
        x = attn.matmul(v).transpose(1, 2).reshape(x.size(0), x.size(1), channels)
        x = nn.functional.linear(x, self.proj.weight, self.proj.bias)
        x = nn.functional.dropout(x, self.dropout, self.training)
        # back: [N, n₁, n₂, …, w₁, w₂, …, C] → [N, n₁, w₁, n₂, w₂, …, C]
        scatter = [
            0,
            *(v for axis in range(rank) for v in (1 + axis, 1 + rank + axis)),
            2 * rank + 1,
        ]
        x = x.view(batch, *counts, *window, channels).permute(scatter)
        x = x.reshape(batch, *padded, channels)
        if sum(shift) > 0:
            x = torch.roll(x, shifts=shift, dims=dims)
        return x[(slice(None), *(slice(0, size) for size in sizes))].contiguous()


class PatchMerging(nn.Module):
    """torchvision's Swin patch merging on [N, H, W, C] (or a clip's [N, T, H, W, C], each frame
    merged): each 2×2 neighbourhood (an odd size padded) gathered into 4C features, normalised and
    reduced to 2C; with `v2`, reduced first."""

    def __init__(self, dim: int, v2: bool = False) -> None:
        super().__init__()
        self.v2 = v2
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(2 * dim if v2 else 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-3:-1]
        x = nn.functional.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        x0 = x[..., 0::2, 0::2, :]
        x1 = x[..., 1::2, 0::2, :]
        x2 = x[..., 0::2, 1::2, :]
        x3 = x[..., 1::2, 1::2, :]
        x = torch.cat([x0, x1, x2, x3], -1)
        if self.v2:
            return self.norm(self.reduction(x))
        return self.reduction(self.norm(x))
