"""PyTorch for the specs in `tests/handwritten/`: graph-shaped networks written by hand, as a new
user would write them, without looking at archdsl's own tests (a pix2pix U-Net generator, an FPN
returning a tuple and a dict, MobileNetV2's inverted residual with `use_res_connect`, and a block
of two outputs with splits and gates). Module names are the specs'. None imports archdsl."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Pix2Pix(nn.Module):
    """pix2pix's U-Net generator, four levels, flat."""

    def __init__(self, ngf: int = 8, nc: int = 3) -> None:
        super().__init__()
        self.down1 = nn.Sequential(nn.Conv2d(nc, ngf, 4, 2, 1))
        self.down2 = nn.Sequential(
            nn.LeakyReLU(0.2), nn.Conv2d(ngf, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2)
        )
        self.down3 = nn.Sequential(
            nn.LeakyReLU(0.2), nn.Conv2d(ngf * 2, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4)
        )
        self.down4 = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(ngf * 4, ngf * 8, 4, 2, 1))
        self.up4 = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.Dropout(0.5),
        )
        self.up3 = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(ngf * 8, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.Dropout(0.5),
        )
        self.up2 = nn.Sequential(
            nn.ReLU(), nn.ConvTranspose2d(ngf * 4, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf)
        )
        self.up1 = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(ngf * 2, nc, 4, 2, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.down1(x)
        d2 = self.down2(d1)
        d3 = self.down3(d2)
        x = self.down4(d3)
        x = torch.cat([d3, self.up4(x)], 1)
        x = torch.cat([d2, self.up3(x)], 1)
        x = torch.cat([d1, self.up2(x)], 1)
        return self.up1(x)


def _stage(channels: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, out, 3, 2, 1), nn.ReLU())


class FPN(nn.Module):
    """A small backbone and a feature pyramid: lateral 1×1 convs, the coarser map resized to each
    lateral's size (odd sizes: 50 → 25 → 13 → 7 → 4) and added, a 3×3 conv on each level."""

    def __init__(self, width: int = 16, as_dict: bool = False) -> None:
        super().__init__()
        self.as_dict = as_dict
        self.stem, self.layer1, self.layer2, self.layer3 = (
            _stage(3, 16),
            _stage(16, 32),
            _stage(32, 64),
            _stage(64, 128),
        )
        self.lat4 = nn.Conv2d(128, width, 1)
        self.lat3 = nn.Conv2d(64, width, 1)
        self.lat2 = nn.Conv2d(32, width, 1)
        self.out2 = nn.Conv2d(width, width, 3, padding=1)
        self.out3 = nn.Conv2d(width, width, 3, padding=1)
        self.out4 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...] | dict[str, torch.Tensor]:
        c2 = self.layer1(self.stem(x))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        p4 = self.lat4(c4)
        l3 = self.lat3(c3)
        p3 = F.interpolate(p4, size=l3.shape[-2:], mode="nearest") + l3
        l2 = self.lat2(c2)
        p2 = F.interpolate(p3, size=l2.shape[-2:], mode="nearest") + l2
        o2, o3, o4 = self.out2(p2), self.out3(p3), self.out4(p4)
        if self.as_dict:
            return {"0": o2, "1": o3, "p4": o4, "pool": F.max_pool2d(o4, 1, 2)}
        return o2, o3, o4


def FPNDict() -> FPN:
    return FPN(as_dict=True)


class InvertedResidual(nn.Module):
    """torchvision's MobileNetV2 block: the input added where the stride is 1 and the channels stay."""

    def __init__(self, inp: int, out: int, stride: int = 1, expand: int = 6) -> None:
        super().__init__()
        hidden = inp * expand
        self.use_res_connect = stride == 1 and inp == out
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(inp, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, out, 1, bias=False),
            nn.BatchNorm2d(out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MBV2Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU6(),
            InvertedResidual(16, 8, expand=1),
            InvertedResidual(8, 8),
            InvertedResidual(8, 16, 2),
            InvertedResidual(16, 16),
            InvertedResidual(16, 16, expand=1),
        )
        # the spec's unnamed statements after `features`, numbered as archdsl numbers them
        self.add_module("1", nn.AdaptiveAvgPool2d(1))
        self.add_module("2", nn.Flatten())
        self.add_module("3", nn.Linear(16, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        for index in ("1", "2", "3"):
            x = self.get_submodule(index)(x)
        return x


class TwoHeads(nn.Module):
    def __init__(self, channels: int, out: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(channels, out, 3, padding=1)
        self.b = nn.Conv2d(channels, out, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a(x), self.b(x)


class GLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.add_module("0", nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = torch.chunk(x, 2, dim=1)
        return value * self.get_submodule("0")(gate)


class Multi(nn.Module):
    """A block of two outputs used apart, a sigmoid gate, an uneven split, a GLU, and a
    squeeze-excitation scale of a narrowed value; two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(8, 16, 3, padding=1)
        self.add_module("1", nn.ReLU())
        self.heads = TwoHeads(16, 16)
        self.sig = nn.Sigmoid()
        self.convlo = nn.Conv2d(4, 8, 1)
        self.convhi = nn.Conv2d(12, 8, 1)
        self.glu = GLU()
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 8, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.get_submodule("1")(self.stem(x))
        h1, h2 = self.heads(x)
        gated = h1 * self.sig(h2)
        lo, hi = torch.split(gated, [4, 12], dim=1)
        x = self.glu(torch.cat([self.convlo(lo), self.convhi(hi)], 1))
        return h1[:, :8] * self.se(x), h2


class SelfAttention(nn.Module):
    """Attention as the tutorials write it: one qkv linear, chunked, heads split by reshape."""

    def __init__(self, heads: int, dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = q.reshape(batch, length, self.heads, self.head_dim).transpose(1, 2)
        k = k.reshape(batch, length, self.heads, self.head_dim).transpose(1, 2)
        v = v.reshape(batch, length, self.heads, self.head_dim).transpose(1, 2)
        attention = (q @ k.transpose(-2, -1)) * self.head_dim**-0.5
        x = attention.softmax(dim=-1) @ v
        return self.proj(x.transpose(1, 2).reshape(batch, length, dim))


class Tiny(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.attn = SelfAttention(4, 64)
        self.head = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.attn(x).mean(dim=1))


class Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(4, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential()
        self.mlp.fc1 = nn.Linear(dim, dim * 2)
        self.mlp.act = nn.GELU()
        self.mlp.fc2 = nn.Linear(dim * 2, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """A small ViT: patches, a class token, a position embedding, two blocks, the class token."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, 64, kernel_size=4, stride=4)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 64))
        self.pos_embed = nn.Parameter(torch.randn(1, 17, 64) * 0.02)
        self.blocks = nn.Sequential(Block(64), Block(64))
        self.norm = nn.LayerNorm(64)
        self.head = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.blocks(x + self.pos_embed)
        return self.head(self.norm(x)[:, 0])
