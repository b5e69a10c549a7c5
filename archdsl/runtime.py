"""The modules archdsl's networks use beyond `torch.nn`, one definition for both of its outputs.

`emit` copies their source text, read from this file (never imported: emit does not import torch),
into the emitted module. The builder constructs the same classes for the layers (`View`, the
attentions, `StochasticDepth`, ...), so there a built network and its emitted source run the same
code. `Concat`, `Residual` and `Gate` are emit's alone: the builder runs a composite as nodes of the
model's dataflow graph (the branches, then a `cat`; the body, then an `add` or a `mul`), while the
emitted source names the composite, as a reader expects, with one of these classes. Their two
forwards are held equal by tests/test_emit.py and by the emit campaign (`campaigns/emit.py`: the
emitted module loads the built one's state_dict strictly and gives its outputs, on 20,000 random
specs). Each definition is therefore written as it is to appear there: plain
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


class PartitionAttention(nn.Module):
    """MaxViT's relative-position self-attention (torchvision's `PartitionAttentionLayer` around
    its `RelativePositionalMultiHeadAttention`) on a channels-last map [N, H, W, C], partitioned
    into `size`×`size` groups of positions: with `grid` false, each window of neighbours (block
    attention); with `grid`, each `size`×`size` grid of positions spread evenly over the map (grid
    attention). Within a group, multi-head self-attention with a learnt bias per relative offset.
    The keys are scaled by 1/√(head width), or with `scale_by="channels"` by 1/√C, as torchvision's
    MaxViT scales them."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        size: int,
        grid: bool = False,
        scale_by: str = "head",
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.size = size
        self.grid = grid
        self.scale_by = scale_by
        self.scale = (dim if scale_by == "channels" else dim // num_heads) ** -0.5
        self.to_qkv = nn.Linear(dim, dim * 3)
        self.merge = nn.Linear(dim, dim)
        table = torch.zeros((2 * size - 1) ** 2, num_heads)
        self.relative_position_bias_table = nn.Parameter(table)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        grid_ = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        coords = torch.stack(grid_).flatten(1)
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + size - 1
        index = relative[:, :, 0] * (2 * size - 1) + relative[:, :, 1]
        self.register_buffer("relative_position_index", index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = x.shape
        p, heads = self.size, self.num_heads
        rows, columns = height // p, width // p
        # position (i, j) of a grid's group (a, b) is (i·rows + a, j·columns + b), of a
        # window (a, b) it is (a·p + i, b·p + j): [N, groups, positions, C] either way
        if self.grid:
            x = x.view(batch, p, rows, p, columns, channels).permute(0, 2, 4, 1, 3, 5)
        else:
            x = x.view(batch, rows, p, columns, p, channels).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(batch, rows * columns, p * p, channels)
        qkv = self.to_qkv(x).view(batch, rows * columns, p * p, 3, heads, -1)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5)
        attn = q.matmul((k * self.scale).transpose(-2, -1))
        index = self.get_buffer("relative_position_index").flatten()
        bias = self.relative_position_bias_table[index].view(p * p, p * p, heads)
        attn = nn.functional.softmax(attn + bias.permute(2, 0, 1), dim=-1)
        x = attn.matmul(v).transpose(2, 3).reshape(batch, rows * columns, p * p, -1)
        x = self.merge(x).view(batch, rows, columns, p, p, channels)
        x = x.permute((0, 3, 1, 4, 2, 5) if self.grid else (0, 1, 3, 2, 4, 5))
        return x.reshape(batch, height, width, channels)


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


class PositionalEncoding(nn.Module):
    """torchvision's MViT positional encoding on a clip's tokens [N, T·H·W, C] of the grid
    `grid` (T, H, W): a learnt class token put first and, with `embed`, a learnt position
    embedding added, one row per position of a frame plus one per frame (and one for the
    class token)."""

    def __init__(self, dim: int, grid: list[int], embed: bool = True) -> None:
        super().__init__()
        self.grid = list(grid)
        frames, height, width = self.grid
        self.class_token = nn.Parameter(torch.zeros(dim))
        self.spatial_pos: nn.Parameter | None = None
        self.temporal_pos: nn.Parameter | None = None
        self.class_pos: nn.Parameter | None = None
        if embed:
            self.spatial_pos = nn.Parameter(torch.zeros(height * width, dim))
            self.temporal_pos = nn.Parameter(torch.zeros(frames, dim))
            self.class_pos = nn.Parameter(torch.zeros(dim))
        for weights in self.parameters():
            nn.init.trunc_normal_(weights, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        token = self.class_token.expand(x.size(0), -1).unsqueeze(1)
        x = torch.cat((token, x), dim=1)
        spatial, temporal = self.spatial_pos, self.temporal_pos
        if spatial is not None and temporal is not None and self.class_pos is not None:
            positions, dim = spatial.shape
            embedding = torch.repeat_interleave(temporal, positions, dim=0)
            frames = spatial.unsqueeze(0).expand(self.grid[0], -1, -1)
            embedding = embedding + frames.reshape(-1, dim)
            embedding = torch.cat((self.class_pos.unsqueeze(0), embedding), dim=0)
            x = x + embedding.unsqueeze(0)
        return x

    def extra_repr(self) -> str:
        return f"grid={self.grid}"


class MultiscaleAttention(nn.Module):
    """torchvision's MViT multiscale attention on a clip's tokens [N, 1 + T·H·W, C]: a class
    token, then the grid `grid`. Queries, keys and values are pooled on the grid, each head's
    by a depthwise Conv3d and a LayerNorm (`pool_q`, `pool_k`, `pool_v`, where the kernel or
    the stride is more than 1), the class token passed through; with `rel_pos`, MViT V2's
    decomposed relative position embedding is added to the scores, and with `residual_pool`
    the pooled queries to the output, the class token's excluded."""

    def __init__(
        self,
        dim_in: int,
        dim: int,
        num_heads: int,
        grid: list[int],
        kernel_q: list[int],
        stride_q: list[int],
        kernel_kv: list[int],
        stride_kv: list[int],
        residual_pool: bool = False,
        rel_pos: bool = False,
        dropout: float = 0.0,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.grid = list(grid)
        self.dim = dim
        self.num_heads = num_heads
        head = dim // num_heads
        self.scaler = 1.0 / float(head) ** 0.5
        self.residual_pool = residual_pool
        self.qkv = nn.Linear(dim_in, 3 * dim)
        layers: list[nn.Module] = [nn.Linear(dim, dim)]
        if dropout > 0.0:
            layers.append(nn.Dropout(dropout))
        self.project = nn.Sequential(*layers)
        pools = []
        for kernel, stride in ((kernel_q, stride_q), (kernel_kv, stride_kv)):
            size = 1
            for k, s in zip(kernel, stride, strict=True):
                size *= k * s
            pools.append(size > 1)
        self.pool_q = self.pool(head, kernel_q, stride_q, eps) if pools[0] else None
        self.pool_k = self.pool(head, kernel_kv, stride_kv, eps) if pools[1] else None
        self.pool_v = self.pool(head, kernel_kv, stride_kv, eps) if pools[1] else None
        self.rel_pos_h: nn.Parameter | None = None
        self.rel_pos_w: nn.Parameter | None = None
        self.rel_pos_t: nn.Parameter | None = None
        if rel_pos:
            side = max(self.grid[1:])
            spatial = 2 * max(side // stride_q[1], side // stride_kv[1]) - 1
            self.rel_pos_h = nn.Parameter(torch.zeros(spatial, head))
            self.rel_pos_w = nn.Parameter(torch.zeros(spatial, head))
            self.rel_pos_t = nn.Parameter(torch.zeros(2 * self.grid[0] - 1, head))
            for table in (self.rel_pos_h, self.rel_pos_w, self.rel_pos_t):
                nn.init.trunc_normal_(table, std=0.02)

    @staticmethod
    def pool(
        head: int,
        kernel: list[int],
        stride: list[int],
        eps: float,
    ) -> nn.ModuleDict:
        # torchvision's Pool: the depthwise convolution `pool`, then `norm_act`
        size = (kernel[0], kernel[1], kernel[2])
        step = (stride[0], stride[1], stride[2])
        padding = (kernel[0] // 2, kernel[1] // 2, kernel[2] // 2)
        convolution = nn.Conv3d(
            head,
            head,
            size,
            stride=step,
            padding=padding,
            groups=head,
            bias=False,
        )
        norm = nn.Sequential(nn.LayerNorm(head, eps=eps))
        return nn.ModuleDict({"pool": convolution, "norm_act": norm})

    @staticmethod
    def pooled(
        pool: nn.ModuleDict,
        x: torch.Tensor,
        grid: list[int],
    ) -> tuple[torch.Tensor, list[int]]:
        token, x = torch.tensor_split(x, indices=(1,), dim=2)
        batch, heads, _, features = x.shape
        x = x.transpose(2, 3).reshape(batch * heads, features, *grid)
        x = pool["pool"](x)
        sizes = list(x.shape[2:])
        x = x.reshape(batch, heads, features, -1).transpose(2, 3)
        return pool["norm_act"](torch.cat((token, x), dim=2)), sizes

    @staticmethod
    def relative(table: torch.Tensor, q: int, k: int) -> torch.Tensor:
        """The table's rows for each query and key position along one axis (the table
        interpolated to 2·max(q, k) − 1 rows where it has another count)."""
        rows = int(2 * max(q, k) - 1)
        if table.shape[0] != rows:
            columns = table.permute(1, 0).unsqueeze(0)
            columns = nn.functional.interpolate(columns, size=rows, mode="linear")
            table = columns.squeeze(0).permute(1, 0)
        q_ratio, k_ratio = max(k / q, 1.0), max(q / k, 1.0)
        queries = torch.arange(q)[:, None] * q_ratio
        distance = queries - (torch.arange(k)[None, :] + (1.0 - k)) * k_ratio
        return table[distance.long()]

    def add_rel_pos(
        self,
        attn: torch.Tensor,
        q: torch.Tensor,
        q_grid: list[int],
        k_grid: list[int],
    ) -> torch.Tensor:
        assert self.rel_pos_h is not None and self.rel_pos_w is not None
        assert self.rel_pos_t is not None
        q_t, q_h, q_w = q_grid
        k_t, k_h, k_w = k_grid
        rh = self.relative(self.rel_pos_h, q_h, k_h)
        rw = self.relative(self.rel_pos_w, q_w, k_w)
        rt = self.relative(self.rel_pos_t, q_t, k_t)
        batch, heads, _, dim = q.shape
        r_q = q[:, :, 1:].reshape(batch, heads, q_t, q_h, q_w, dim)
        rel_h = torch.einsum("bythwc,hkc->bythwk", r_q, rh)
        rel_w = torch.einsum("bythwc,wkc->bythwk", r_q, rw)
        r_q = r_q.permute(2, 0, 1, 3, 4, 5).reshape(q_t, batch * heads * q_h * q_w, dim)
        rel_t = torch.matmul(r_q, rt.transpose(1, 2)).transpose(0, 1)
        rel_t = rel_t.view(batch, heads, q_h, q_w, q_t, k_t).permute(0, 1, 4, 2, 3, 5)
        rel_pos = (
            rel_h[:, :, :, :, :, None, :, None]
            + rel_w[:, :, :, :, :, None, None, :]
            + rel_t[:, :, :, :, :, :, None, None]
        ).reshape(batch, heads, q_t * q_h * q_w, k_t * k_h * k_w)
        attn[:, :, 1:, 1:] += rel_pos
        return attn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).reshape(batch, length, 3, heads, self.dim // heads)
        q, k, v = qkv.transpose(1, 3).unbind(dim=2)
        q_grid, k_grid = self.grid, self.grid
        if self.pool_k is not None:
            k, k_grid = self.pooled(self.pool_k, k, self.grid)
        if self.pool_v is not None:
            v = self.pooled(self.pool_v, v, self.grid)[0]
        if self.pool_q is not None:
            q, q_grid = self.pooled(self.pool_q, q, self.grid)
        attn = torch.matmul(self.scaler * q, k.transpose(2, 3))
        if self.rel_pos_h is not None:
            attn = self.add_rel_pos(attn, q, q_grid, k_grid)
        x = torch.matmul(attn.softmax(dim=-1), v)
        if self.residual_pool:
            x[:, :, 1:, :] += q[:, :, 1:, :]
        x = x.transpose(1, 2).reshape(batch, -1, self.dim)
        return self.project(x)


class TokenPool(nn.Module):
    """Max pooling of a clip's tokens [N, 1 + T·H·W, C] on their grid `grid` (T, H, W), the
    class token passed through: torchvision's MViT `Pool` around its `nn.MaxPool3d`."""

    def __init__(
        self,
        kernel: list[int],
        stride: list[int],
        padding: list[int],
        grid: list[int],
    ) -> None:
        super().__init__()
        # lists, as torchvision gives them (so the module prints as torchvision's does)
        self.pool = nn.MaxPool3d(
            list(kernel),  # type: ignore[arg-type]
            stride=list(stride),  # type: ignore[arg-type]
            padding=list(padding),  # type: ignore[arg-type]
        )
        self.grid = list(grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        token, x = x[:, :1], x[:, 1:]
        batch, _, channels = x.shape
        x = self.pool(x.transpose(1, 2).reshape(batch, channels, *self.grid))
        x = x.reshape(batch, channels, -1).transpose(1, 2)
        return torch.cat((token, x), dim=1)

    def extra_repr(self) -> str:
        return f"grid={self.grid}"
