"""The torchvision zoo as specs: each `specs/torchvision/<name>.arch` is exactly one of
torchvision's networks, checked without torch: a classification model
`torchvision.models.<name>(weights=None)` (an image's or a video clip's), a segmentation model (FCN
and DeepLabV3 made with `aux_loss=True`, as their published weights are), or the ResNet-50 FPN
backbone of Faster R-CNN.

For each network the spec's first model is built, torchvision's network is made with random
weights and random batchnorm statistics, affine parameters and layer scales, and its `state_dict`
is loaded into ours with `strict=True`, in torchvision's order (`networks.check_network`). In eval
mode both must give the same output on a random batch (within 1e-5 of the output's scale; every
key of a dict); the static parameter count must be torchvision's, and every statement's static
shape what PyTorch produces there. Images are small (the classifiers pool adaptively, the others
take any size) to keep this to seconds on two cores.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")  # the light install has no torch: this whole file is skipped there

import torch
from networks import assert_outputs_agree, check_network, randomized, statements
from torch import nn

import archdsl
from archdsl.importer import agrees, leaves

from conftest import ROOT, torch_threads

# Out of the fast lane (`pytest -m "not slow"`): torchvision's networks built at full width.
pytestmark = pytest.mark.slow

torchvision = pytest.importorskip("torchvision")

ZOO = ROOT / "specs" / "torchvision"

#: The classification networks, `pretrained(...)`'s zoo: torchvision's extra arguments, and the
#: image size the test runs.
CLASSIFIERS: dict[str, tuple[dict[str, Any], int]] = {
    "alexnet": ({}, 64),
    "vgg16_bn": ({}, 32),
    "vgg11": ({}, 32),
    "vgg11_bn": ({}, 32),
    "vgg13": ({}, 32),
    "vgg13_bn": ({}, 32),
    "vgg16": ({}, 32),
    "vgg19": ({}, 32),
    "vgg19_bn": ({}, 32),
    "resnet18": ({}, 64),
    "resnet34": ({}, 32),
    "resnet50": ({}, 64),
    "resnet101": ({}, 32),
    "resnet152": ({}, 32),
    "resnext50_32x4d": ({}, 64),
    "resnext101_32x8d": ({}, 32),
    "resnext101_64x4d": ({}, 32),
    "wide_resnet50_2": ({}, 64),
    "wide_resnet101_2": ({}, 32),
    "squeezenet1_1": ({}, 64),
    "squeezenet1_0": ({}, 32),
    "googlenet": ({"aux_logits": False, "init_weights": False}, 64),
    "inception_v3": ({"aux_logits": False, "init_weights": False}, 75),
    "densenet121": ({}, 64),
    "densenet161": ({}, 32),
    "densenet169": ({}, 32),
    "densenet201": ({}, 32),
    "mobilenet_v2": ({}, 64),
    "mobilenet_v3_large": ({}, 64),
    "mobilenet_v3_small": ({}, 32),
    "mnasnet1_0": ({}, 64),
    "mnasnet0_5": ({}, 32),
    "mnasnet0_75": ({}, 32),
    "mnasnet1_3": ({}, 32),
    "shufflenet_v2_x1_0": ({}, 64),
    "shufflenet_v2_x0_5": ({}, 32),
    "shufflenet_v2_x1_5": ({}, 32),
    "shufflenet_v2_x2_0": ({}, 32),
    "efficientnet_b0": ({}, 64),
    "efficientnet_b1": ({}, 32),
    "efficientnet_b2": ({}, 32),
    "efficientnet_b3": ({}, 32),
    "efficientnet_b4": ({}, 32),
    "efficientnet_b5": ({}, 32),
    "efficientnet_b6": ({}, 32),
    "efficientnet_b7": ({}, 32),
    "efficientnet_v2_s": ({}, 64),
    "efficientnet_v2_m": ({}, 32),
    "efficientnet_v2_l": ({}, 32),
    "regnet_x_400mf": ({}, 64),
    "regnet_x_800mf": ({}, 32),
    "regnet_x_1_6gf": ({}, 32),
    "regnet_x_3_2gf": ({}, 32),
    "regnet_x_8gf": ({}, 32),
    "regnet_x_16gf": ({}, 32),
    "regnet_x_32gf": ({}, 32),
    "regnet_y_400mf": ({}, 64),
    "regnet_y_800mf": ({}, 32),
    "regnet_y_1_6gf": ({}, 32),
    "regnet_y_3_2gf": ({}, 32),
    "regnet_y_8gf": ({}, 32),
    "regnet_y_16gf": ({}, 32),
    "regnet_y_32gf": ({}, 32),
    "regnet_y_128gf": ({}, 32),
    "convnext_tiny": ({}, 64),
    "convnext_small": ({}, 32),
    "convnext_base": ({}, 32),
    "convnext_large": ({}, 32),
    "vit_b_16": ({"image_size": 32}, 32),
    "vit_b_32": ({"image_size": 32}, 32),
    "vit_l_16": ({"image_size": 32}, 32),
    "vit_l_32": ({"image_size": 32}, 32),
    "vit_h_14": ({"image_size": 28}, 28),
    "swin_t": ({}, 64),
    "swin_s": ({}, 64),
    "swin_b": ({}, 64),
    "swin_v2_t": ({}, 64),
    "swin_v2_s": ({}, 64),
    "swin_v2_b": ({}, 64),
    # MaxViT's partitions of 7×7 must divide every stage's map: 224 is the smallest image
    "maxvit_t": ({}, 224),
}


#: The video classifiers (`torchvision.models.video`): torchvision's extra arguments, and the clip
#: [3, T, H, W] the test runs. S3D pools what its features leave through a fixed 2×7×7 window: it
#: takes 13 frames of 209×209 at least. The video Swins' 8×7×7 windows shrink to the 2 frames a
#: 4-frame clip leaves, and pad and shift over its 8×8 rows and columns: both of torchvision's ways.
#: MViT is made for one clip size (`spatial_size`, `temporal_size`): 4 frames of 32×32 are the
#: fewest whose 8×8 grid of tokens each of its three poolings halves (V2's position tables need a
#: row at the last).
VIDEO: dict[str, tuple[dict[str, Any], tuple[int, ...]]] = {
    "r3d_18": ({}, (3, 4, 32, 32)),
    "mc3_18": ({}, (3, 4, 32, 32)),
    "r2plus1d_18": ({}, (3, 4, 32, 32)),
    "s3d": ({}, (3, 13, 209, 209)),
    "swin3d_t": ({}, (3, 4, 32, 32)),
    "swin3d_s": ({}, (3, 4, 32, 32)),
    "swin3d_b": ({}, (3, 4, 32, 32)),
    "mvit_v1_b": ({"spatial_size": (32, 32), "temporal_size": 4}, (3, 4, 32, 32)),
    "mvit_v2_s": ({"spatial_size": (32, 32), "temporal_size": 4}, (3, 4, 32, 32)),
}


def shape_of(size: int | tuple[int, ...]) -> tuple[int, ...]:
    """One sample: an image [3, size, size], or a video clip's shape as given."""
    return (3, size, size) if isinstance(size, int) else size


def spec_params(size: int | tuple[int, ...]) -> dict[str, int]:
    """The zoo spec's model parameters for that sample: `size`, and a video's `frames`."""
    return {"size": size} if isinstance(size, int) else {"frames": size[1], "size": size[2]}


def network(name: str, **extra: Any) -> nn.Module:
    """torchvision's network `name` with random weights. MViT's builders fix the clip its position
    tables are made for (`spatial_size=(224, 224)`, `temporal_size=16`), and pass it to `_mvit`
    with the other arguments: a smaller clip's is made by `_mvit` with those two replaced."""
    sizes = {key: extra.pop(key) for key in ("spatial_size", "temporal_size") if key in extra}
    if not sizes:
        return torchvision.models.get_model(name, weights=None, **extra)
    from unittest import mock

    from torchvision.models.video import mvit

    made = mvit._mvit
    with mock.patch.object(mvit, "_mvit", lambda **kwargs: made(**{**kwargs, **sizes})):
        return torchvision.models.get_model(name, weights=None, **extra)


def segmentation(name: str, **extra: Any) -> Callable[[], nn.Module]:
    # weights_backbone=None: its default is ImageNet's weights, which torchvision would download
    return partial(torchvision.models.get_model, name, weights=None, weights_backbone=None, **extra)


def fasterrcnn_resnet50_fpn_backbone() -> nn.Module:
    detector = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    return detector.backbone


#: name: (torchvision's network, made with random weights; the image size (or clip) the test runs).
NETWORKS: dict[str, tuple[Callable[[], nn.Module], int | tuple[int, ...]]] = {
    **{
        name: (partial(torchvision.models.get_model, name, weights=None, **extra), size)
        for name, (extra, size) in CLASSIFIERS.items()
    },
    **{name: (partial(network, name, **extra), clip) for name, (extra, clip) in VIDEO.items()},
    "fcn_resnet50": (segmentation("fcn_resnet50", aux_loss=True), 64),
    "fcn_resnet101": (segmentation("fcn_resnet101", aux_loss=True), 64),
    "deeplabv3_resnet50": (segmentation("deeplabv3_resnet50", aux_loss=True), 64),
    "deeplabv3_resnet101": (segmentation("deeplabv3_resnet101", aux_loss=True), 64),
    "deeplabv3_mobilenet_v3_large": (segmentation("deeplabv3_mobilenet_v3_large", aux_loss=True), 64),
    "lraspp_mobilenet_v3_large": (segmentation("lraspp_mobilenet_v3_large"), 64),
    "resnet50_fpn": (fasterrcnn_resnet50_fpn_backbone, 64),
}

WRITTEN = sorted(p.stem for p in ZOO.glob("*.arch"))
CLASSIFYING = [name for name in WRITTEN if name in CLASSIFIERS or name in VIDEO]

#: Modules whose training behaviour differs from eval's: ours must stand where torchvision's do.
STATEFUL = ("Dropout", "Dropout2d", "StochasticDepth", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d")

#: Swin V2's blocks normalise after the attention and the MLP (`norm1(attn(x))`), but register
#: `norm1` before `attn`, as V1's blocks do: the spec registers them in the order they run, so the
#: state_dict holds the same keys in another order. MViT's blocks register `norm2` beside `norm1`,
#: before the attention that runs between them, and `project` last, wherever it runs.
UNORDERED = {"swin_v2_t", "swin_v2_s", "swin_v2_b", "mvit_v1_b", "mvit_v2_s"}

#: torchvision's modules that print no arguments, and the layer of ours each computes: the FPN's
#: LastLevelMaxPool is `F.max_pool2d(x, kernel_size=1, stride=2, padding=0)` on the last map.
COMPUTES = {
    "LastLevelMaxPool()": "MaxPool2d(kernel_size=1, stride=2, padding=0, dilation=1, ceil_mode=False)"
}


#: torchvision's modules that only move elements, where a layer of ours moves them inside itself:
#: MaxViT's partitions and axis swaps around its attention, which `partitionattention` makes.
MOVED_INSIDE = ("partition_op", "departition_op", "partition_swap", "departition_swap")


def unwritten(theirs: nn.Module) -> set[str]:
    """torchvision's modules a spec need not write: those that only move elements a layer of ours
    moves inside itself (`MOVED_INSIDE`), and every nn.Identity, which computes nothing (MaxViT's
    `proj` where nothing is projected)."""
    return {
        path
        for path, module in theirs.named_modules()
        if path.rpartition(".")[2] in MOVED_INSIDE or isinstance(module, nn.Identity)
    }


def test_every_spec_is_a_listed_network() -> None:
    assert set(WRITTEN) <= set(NETWORKS)


def test_only_the_classifiers_are_pretrained_targets() -> None:
    from archdsl import pretrained

    assert [name for name in WRITTEN if pretrained.in_zoo(name)] == CLASSIFYING
    assert set(pretrained.ZOO_WEIGHTS) <= set(CLASSIFIERS) | set(VIDEO)


def sample(size: int | tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(1, *shape_of(size), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", WRITTEN)
def test_spec_is_torchvisions_network_weight_for_weight(name: str) -> None:
    make, size = NETWORKS[name]
    model = archdsl.load(str(ZOO / f"{name}.arch"), **spec_params(size)).models[0]
    assert model.name == name
    theirs = make()
    calls: Counter[str] = Counter()
    for path, module in theirs.named_modules():
        module.register_forward_hook(lambda *_, path=path: calls.update([path]))
    produced: dict[str, tuple[int, ...]] = {}
    order = name not in UNORDERED
    ours = check_network(model, theirs, [sample(size, 1)], name=name, produced=produced, order=order)
    ran = set(calls)
    # What never runs here (a body that computes nothing, ShuffleNet's empty `branch1`) never runs
    # in torchvision either.
    idle = {n.path for n in statements(model, ours) if n.path not in produced}
    assert idle <= set(dict(theirs.named_modules())) - ran
    # torchvision's every leaf module that takes part in the computation is ours at its path, with
    # its arguments. (EfficientNet registers a StochasticDepth in every block and calls it only
    # in those that add their input: one that never runs computes nothing, in training either.)
    # Where we have a module it has none (a functional op: torch.flatten, F.relu), ours changes
    # nothing in training.
    ours_leaves = leaves(ours)
    skipped = unwritten(theirs)
    their_leaves = {p: COMPUTES.get(t, t) for p, t in leaves(theirs).items() if p in ran and p not in skipped}
    assert {p: agrees(ours_leaves.get(p), t) for p, t in their_leaves.items()} == their_leaves
    extra = [(p, m) for p, m in ours_leaves.items() if p not in their_leaves and m.startswith(STATEFUL)]
    # A module torchvision calls twice (Swin's one StochasticDepth for both branches) is ours twice,
    # the second beside the first with its arguments: it draws and computes what the second call does.
    twice = {(p.rpartition(".")[0], t) for p, t in their_leaves.items() if calls[p] > 1}
    assert [(p, m) for p, m in extra if (p.rpartition(".")[0], m) not in twice] == []


@pytest.mark.parametrize("name", WRITTEN)
def test_emitted_source_takes_torchvisions_weights_and_computes_what_torchvision_does(
    name: str, tmp_path: Path
) -> None:
    from archdsl.codegen.source import emit_source
    from campaigns.emit import load_source

    make, size = NETWORKS[name]
    program = archdsl.load(str(ZOO / f"{name}.arch"), **spec_params(size))
    emitted = getattr(load_source(emit_source(program.models[0], program=program), tmp_path), name)()
    theirs = randomized(make()).eval()
    emitted.load_state_dict(theirs.state_dict(), strict=True)
    x = sample(size, 2)
    with torch_threads(2), torch.no_grad():
        expected, got = theirs(x), emitted.eval()(x)
    assert_outputs_agree(got, expected, name)


def test_the_zoo_checks_clean_without_torch(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, archdsl\n"
        f"diagnostics = archdsl.check([{str(ZOO)!r}])\n"
        "print(len(diagnostics), 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout == "0 False\n"


@pytest.mark.parametrize("name", CLASSIFYING)
def test_pretrained_parts_are_checked_from_the_spec_as_torchvision_runs_them(name: str) -> None:
    from archdsl import pretrained

    extra, size = {**CLASSIFIERS, **VIDEO}[name]
    theirs = network(name, **extra).eval()
    ran: set[str] = set()
    for path, module in theirs.named_modules():
        module.register_forward_hook(lambda *_, path=path: ran.add(path))
    with torch.no_grad():
        theirs(torch.zeros(1, *shape_of(size)))
    # the parts a spec offers are torchvision's submodules, every one that takes part in its forward
    offered = set(pretrained.zoo_parts(name))
    # a layer of ours built as one module (Swin's patch merging) offers no part of its inside
    leaves_ = {o for o in offered if not any(p.startswith(o + ".") for p in offered)}
    inside = {r for r in ran if any(r.startswith(leaf + ".") for leaf in leaves_)}
    # nor what a spec need not write
    assert ran - {""} - inside - unwritten(theirs) <= offered <= {path for path, _ in theirs.named_modules()}
    tops = [None, *(path for path in pretrained.zoo_parts(name) if "." not in path)]
    for part in tops:
        given = pretrained.zoo_parts(name)[part] if part else shape_of(size)
        if part and len(given) == 3:
            # a smaller map, its channels kept (first, or last in Swin's stages)
            if pretrained._channel_axis(name, part) == -1:
                given = (max(given[0] // 2, 8), max(given[1] // 2, 8), given[2])
            else:
                given = (given[0], max(given[1] // 2, 8), max(given[2] // 2, 8))
        try:
            static = pretrained.static(name, part, None, given)
        except pretrained.Refused as refused:  # a part too small for this input: so is torchvision's
            with pytest.raises(pretrained.Refused):
                pretrained.probe(name, part, given)
            assert "cannot take" in refused.message
            continue
        assert static == pretrained.probe(name, part, given), part


@pytest.mark.parametrize("name", CLASSIFYING)
def test_the_weights_table_is_torchvisions(name: str) -> None:
    from archdsl import pretrained

    assert pretrained.ZOO_WEIGHTS[name] == tuple(torchvision.models.get_model_weights(name).__members__)
