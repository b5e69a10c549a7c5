"""A seed-style Sequential CNN, a module with its own forward and a residual, modules the language
cannot express (an op it has no statement for; control flow on a tensor's values; a sum that
broadcasts), networks written as tutorials and popular repositories write them, and graph-shaped
ones: values read again later, several inputs and outputs, padding and resizing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def seed_cnn(classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.25),
        nn.Linear(16 * 7 * 7, classes),
    )


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.norm(self.conv(x)))


class ResidualNet(nn.Module):
    def __init__(self, width: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.blocks = nn.Sequential(Block(width), Block(width), Block(width))
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        x = x.mean([2, 3])
        return self.head(x)


class Cumulative(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(self.conv(x), dim=1)


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.conv(x)
        return self.conv(-x)


class ShapeBranch(nn.Module):
    """A branch on the input's shape, which fx alone cannot trace: followed as this input takes it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if x.shape[-1] > 8:
            x = self.pool(x)
        return torch.flatten(x, 1)


class TutorialNet(nn.Module):
    """The CIFAR-10 network of PyTorch's 60-minute blitz, functional ReLUs and all."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class CifarBlock(nn.Module):
    """ResNet's basic block as kuangliu/pytorch-cifar writes it."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        out = F.relu(out)
        return out


class CifarResNet(nn.Module):
    """kuangliu/pytorch-cifar's ResNet: a shortcut named `shortcut`, empty where it is the identity;
    `out += self.shortcut(x)`; `F.avg_pool2d`; `out.view(out.size(0), -1)`."""

    def __init__(self, num_blocks: tuple[int, ...] = (1, 1, 1, 1), num_classes: int = 10) -> None:
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._make_layer(64, num_blocks[0], 1)
        self.layer2 = self._make_layer(128, num_blocks[1], 2)
        self.layer3 = self._make_layer(256, num_blocks[2], 2)
        self.layer4 = self._make_layer(512, num_blocks[3], 2)
        self.linear = nn.Linear(512, num_classes)

    def _make_layer(self, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(CifarBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = self.layer4(out)
        out = F.avg_pool2d(out, 4)
        out = out.view(out.size(0), -1)
        return self.linear(out)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation as it is commonly written: `x.size()`, `view`, `expand_as`."""

    def __init__(self, c: int, r: int = 4) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(c, c // r, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(c // r, c, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.size()
        y = self.avg_pool(x).view(b, c)
        y = self.fc(y).view(b, c, 1, 1)
        return x * y.expand_as(x)


class SENet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.se = SqueezeExcite(16)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x))
        x = self.se(x)
        x = x.mean([2, 3])
        return self.head(x)


class LoopBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.add(x, F.relu(self.bn(self.conv(x))))


class Looped(nn.Module):
    """Blocks in a ModuleList run by a loop, layers in one with functional ReLUs between them, a
    ModuleDict, `torch.add` for the residual, a PReLU, and `squeeze` for the flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Conv2d(3 if i == 0 else 8, 8, 3, padding=1) for i in range(3)])
        self.blocks = nn.ModuleList([LoopBlock(8) for _ in range(3)])
        self.act = nn.PReLU(8, init=0.1)
        self.heads = nn.ModuleDict({"hidden": nn.Linear(8, 16), "out": nn.Linear(16, 10)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = F.relu(layer(x), inplace=True)
        for block in self.blocks:
            x = block(x)
        x = F.adaptive_avg_pool2d(self.act(x), 1).squeeze(-1).squeeze(-1)
        return self.heads["out"](F.relu(self.heads["hidden"](x)))


class Recurrent(nn.Module):
    """An LSTM, which no layer of the language builds."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(8, 16, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


class GELU(nn.Module):
    """A class of torch's name that is not torch's (timm has one): traced into, not read as nn.GELU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")


class OwnGELU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.act(self.conv(x)), 1)


class ReshapedGamma(nn.Module):
    """A parameter stored as [C], reshaped in forward (timm's ConvNeXt): not the [C, 1, 1] of `scale`."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.gamma = nn.Parameter(torch.ones(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mul(self.gamma.reshape(1, -1, 1, 1))


class SplitPaths(nn.Module):
    """torch.split into equal shares used one by one (Res2Net), which gives a tuple."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, 2, 1)
        return self.conv(torch.cat([parts[1], parts[0]], 1))


class BatchNormAct2d(nn.BatchNorm2d):
    """timm's fused norm and activation: a BatchNorm2d whose forward runs its `drop` and `act`."""

    def __init__(self, channels: int, act: bool = True) -> None:
        super().__init__(channels)
        self.drop = nn.Identity()
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self.running_mean, self.running_var
        x = F.batch_norm(x, mean, var, self.weight, self.bias, self.training, self.momentum, self.eps)
        return self.act(self.drop(x))


class FusedBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = BatchNormAct2d(channels, act=False)
        self.downsample = nn.Identity()  # timm's RegNet when no projection is needed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)) + self.downsample(x))


class Fused(nn.Module):
    """Norm-and-activation modules and an nn.Identity shortcut, as timm builds its networks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = BatchNormAct2d(8)
        self.blocks = nn.Sequential(FusedBlock(8), FusedBlock(8))
        self.classifier = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.bn1(self.conv_stem(x)))
        return self.classifier(x.mean((2, 3)))


class GhostModule(nn.Module):
    """GhostNet's module: cheap features concatenated to the primary ones, then `out[:, :n]`."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.out_chs = out_chs
        init = (out_chs + 1) // 2
        self.primary_conv = nn.Sequential(
            nn.Conv2d(in_chs, init, 1, bias=False), nn.BatchNorm2d(init), nn.ReLU()
        )
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(init, init, 3, padding=1, groups=init, bias=False), nn.BatchNorm2d(init), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary_conv(x)
        out = torch.cat([x1, self.cheap_operation(x1)], dim=1)
        return out[:, : self.out_chs, :, :]


class Ghost(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ghost1 = GhostModule(3, 7)
        self.ghost2 = GhostModule(7, 5)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ghost2(self.ghost1(x)).narrow(1, 1, 4)
        return self.fc(x.mean((2, 3)))


# --- graph-shaped modules: values read again, several inputs and outputs, resampling ---------------
# U-Net (milesial/Pytorch-UNet), DCGAN and the YOLO-style trunk are `tests/references.py`'s.


def unet(bilinear: bool = False) -> nn.Module:
    """milesial/Pytorch-UNet's U-Net: skips read three stages later, `Up(x1, x2)` taking two
    tensors, and `F.pad` to the skip's size computed from both tensors' sizes."""
    from references import UNet

    return UNet(3, 2, bilinear=bilinear)


def yolo() -> nn.Module:
    """A YOLOv5-style trunk: a backbone returning three maps, a neck taking three and returning
    three, `nn.Upsample` called twice, SPPF's max pool called three times."""
    from references import YoloTrunk

    return YoloTrunk()


def generator() -> nn.Module:
    """DCGAN's generator (pytorch/examples): transposed convolutions from a [100, 1, 1] code."""
    from references import Generator

    return Generator()


def fcn(classes: int = 3) -> nn.Module:
    """torchvision's FCN (`_SimpleSegmentationModel`) on a small backbone: an
    IntermediateLayerGetter returning a dict of two maps, an FCNHead on each, `F.interpolate` to
    the input's size (`input_shape = x.shape[-2:]`), and a dict `{"out", "aux"}` returned."""
    from collections import OrderedDict

    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.segmentation.fcn import FCN, FCNHead

    def stage(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    trunk = nn.Sequential(OrderedDict(stem=stage(3, 8), layer1=stage(8, 16), layer2=stage(16, 32)))
    backbone = IntermediateLayerGetter(trunk, return_layers={"layer1": "aux", "layer2": "out"})
    return FCN(backbone, FCNHead(32, classes), FCNHead(16, classes))


class TwoStreams(nn.Module):
    """Two inputs (an image and its depth map), each through its own stem, joined and classified."""

    def __init__(self) -> None:
        super().__init__()
        self.rgb = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.depth = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.fuse = nn.Conv2d(12, 16, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, image: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.rgb(image), self.depth(depth)], dim=1)
        x = F.relu(self.fuse(x))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


class DownBlock(nn.Module):
    """A step down that returns the pooled map and the map before pooling (its skip)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        )
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.conv(x)
        return self.pool(skip), skip


class UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.conv = nn.Sequential(nn.Conv2d(2 * cout, cout, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        return self.conv(torch.cat([x, skip], dim=1))


class TinyUNet(nn.Module):
    """Steps down that return (pooled, skip) tuples, steps up that take two tensors, and a forward
    that returns the logits and the bottleneck's features as a tuple."""

    def __init__(self) -> None:
        super().__init__()
        self.down1 = DownBlock(3, 8)
        self.down2 = DownBlock(8, 16)
        self.bottleneck = nn.Conv2d(16, 32, 3, padding=1)
        self.up2 = UpBlock(32, 16)
        self.up1 = UpBlock(16, 8)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, skip1 = self.down1(x)
        x, skip2 = self.down2(x)
        features = F.relu(self.bottleneck(x))
        x = self.up2(features, skip2)
        x = self.up1(x, skip1)
        return self.head(x), features


class SuperResolution(nn.Module):
    """pytorch/examples' super-resolution network (ESPCN): one `nn.ReLU` called after each
    convolution, and a sub-pixel convolution, `nn.PixelShuffle`, at the end."""

    def __init__(self, upscale_factor: int = 3) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.conv1 = nn.Conv2d(1, 64, (5, 5), (1, 1), (2, 2))
        self.conv2 = nn.Conv2d(64, 64, (3, 3), (1, 1), (1, 1))
        self.conv3 = nn.Conv2d(64, 32, (3, 3), (1, 1), (1, 1))
        self.conv4 = nn.Conv2d(32, upscale_factor**2, (3, 3), (1, 1), (1, 1))
        self.pixel_shuffle = nn.PixelShuffle(upscale_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        x = self.relu(self.conv3(x))
        x = self.pixel_shuffle(self.conv4(x))
        return x


class Resampling(nn.Module):
    """Padding and resizing as modules and as functions: reflection and constant padding modules,
    `F.pad` by constant numbers, `F.interpolate` by a factor and to another tensor's size,
    `nn.Upsample`, a pixel unshuffle and a transposed convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(3, 8, 3)
        self.down = nn.PixelUnshuffle(2)
        self.mix = nn.Conv2d(32, 8, 1)
        self.fill = nn.ConstantPad2d((0, 1, 0, 1), 0.5)
        self.up = nn.ConvTranspose2d(8, 8, 2, stride=2)
        self.smooth = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(self.pad(x))
        z = self.mix(self.down(y))
        z = F.interpolate(z, scale_factor=2, mode="nearest")
        z = F.pad(z, [1, 0, 1, 0])
        z = self.fill(self.up(z))
        z = F.interpolate(z, size=y.shape[2:], mode="bilinear", align_corners=False)
        return self.smooth(z + y)


class Halves(nn.Module):
    """The channels taken apart (`a, b = x.chunk(2, dim=1)`), each half through its own
    convolution, the second also reading the first's (Res2Net's hierarchy, in two parts)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(4, 4, 3, padding=1)
        self.conv_b = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        a = self.conv_a(a)
        b = self.conv_b(b + a)
        return torch.cat([a, b], dim=1)


class BroadcastSum(nn.Module):
    """A sum of tensors of different shapes, which `add` does not broadcast."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y + F.adaptive_avg_pool2d(y, 1)


class IndexedSequential(nn.Module):
    """An nn.Sequential never called whole: `forward` calls its members by index around a sum."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body[1](self.body[0](x) + x)


class AudioNet(nn.Module):
    """A 1-d CNN over a waveform, as keyword-spotting tutorials write it: Conv1d, BatchNorm1d,
    pools of each kind, functional ones too."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, 8, kernel_size=9, stride=4, padding=4)
        self.bn1 = nn.BatchNorm1d(8)
        self.pool1 = nn.MaxPool1d(3, stride=2, ceil_mode=True)
        self.conv2 = nn.Conv1d(8, 16, kernel_size=3, dilation=2, groups=2, bias=False)
        self.pool2 = nn.AvgPool1d(2)
        self.fc = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(F.relu(self.bn1(self.conv1(x))))
        x = F.relu(self.conv2(x))
        x = F.max_pool1d(self.pool2(x), 2)
        x = F.adaptive_avg_pool1d(x, 1)
        return self.fc(torch.flatten(x, 1))


class VideoBlock(nn.Module):
    """A (2+1)-d residual block: a spatial then a temporal convolution, as R(2+1)D factorises."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.spatial = nn.Conv3d(channels, channels, (1, 3, 3), padding=(0, 1, 1), bias=False)
        self.bn1 = nn.BatchNorm3d(channels)
        self.temporal = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0), bias=False)
        self.bn2 = nn.BatchNorm3d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.spatial(x)))
        return F.relu(self.bn2(self.temporal(out)) + x)


class VideoNet(nn.Module):
    """A small 3-d CNN over clips [3, T, H, W]: a (3, 7, 7) stem, a pool over frames one by one,
    residual blocks, an average pool over time and space."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(3, 8, kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(8),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.blocks = nn.Sequential(VideoBlock(8), VideoBlock(8))
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.pool(self.stem(x)))
        x = F.avg_pool3d(x, (2, 1, 1))
        return self.fc(self.avgpool(x).flatten(1))
