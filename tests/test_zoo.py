"""The torchvision zoo as specs: each `specs/torchvision/<name>.arch` is exactly one of
torchvision's networks, checked without torch: a classification model
`torchvision.models.<name>(weights=None)`, a segmentation model (FCN and DeepLabV3 made with
`aux_loss=True`, as their published weights are), or the ResNet-50 FPN backbone of Faster R-CNN.

For each network the spec's first model is built, torchvision's network is made with random
weights and random batchnorm statistics, affine parameters and layer scales, and its `state_dict`
is loaded into ours with `strict=True`, in torchvision's order (`networks.check_network`). In eval
mode both must give the same output on a random batch (within 1e-5 of the output's scale; every
key of a dict); the static parameter count must be torchvision's, and every statement's static
shape what PyTorch produces there. Images are small (the classifiers pool adaptively, the others
take any size) to keep this to seconds on two cores.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
from networks import assert_outputs_agree, check_network, randomized, statements
from torch import nn

import archdsl
from archdsl.importer import agrees, leaves

from conftest import ROOT, torch_threads

torchvision = pytest.importorskip("torchvision")

ZOO = ROOT / "specs" / "torchvision"

#: The classification networks, `pretrained(...)`'s zoo: torchvision's extra arguments, and the
#: image size the test runs.
CLASSIFIERS: dict[str, tuple[dict[str, Any], int]] = {
    "alexnet": ({}, 64),
    "vgg16_bn": ({}, 32),
    "resnet18": ({}, 64),
    "resnet50": ({}, 64),
    "resnext50_32x4d": ({}, 64),
    "wide_resnet50_2": ({}, 64),
    "squeezenet1_1": ({}, 64),
    "googlenet": ({"aux_logits": False, "init_weights": False}, 64),
    "inception_v3": ({"aux_logits": False, "init_weights": False}, 75),
    "densenet121": ({}, 64),
    "mobilenet_v2": ({}, 64),
    "mobilenet_v3_large": ({}, 64),
    "mnasnet1_0": ({}, 64),
    "shufflenet_v2_x1_0": ({}, 64),
    "efficientnet_b0": ({}, 64),
    "efficientnet_v2_s": ({}, 64),
    "regnet_x_400mf": ({}, 64),
    "regnet_y_400mf": ({}, 64),
    "convnext_tiny": ({}, 64),
}


def segmentation(name: str, **extra: Any) -> Callable[[], nn.Module]:
    # weights_backbone=None: its default is ImageNet's weights, which torchvision would download
    return partial(torchvision.models.get_model, name, weights=None, weights_backbone=None, **extra)


def fasterrcnn_resnet50_fpn_backbone() -> nn.Module:
    detector = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    return detector.backbone


#: name: (torchvision's network, made with random weights; the image size the test runs).
NETWORKS: dict[str, tuple[Callable[[], nn.Module], int]] = {
    **{
        name: (partial(torchvision.models.get_model, name, weights=None, **extra), size)
        for name, (extra, size) in CLASSIFIERS.items()
    },
    "fcn_resnet50": (segmentation("fcn_resnet50", aux_loss=True), 64),
    "fcn_resnet101": (segmentation("fcn_resnet101", aux_loss=True), 64),
    "deeplabv3_resnet50": (segmentation("deeplabv3_resnet50", aux_loss=True), 64),
    "deeplabv3_resnet101": (segmentation("deeplabv3_resnet101", aux_loss=True), 64),
    "deeplabv3_mobilenet_v3_large": (segmentation("deeplabv3_mobilenet_v3_large", aux_loss=True), 64),
    "lraspp_mobilenet_v3_large": (segmentation("lraspp_mobilenet_v3_large"), 64),
    "resnet50_fpn": (fasterrcnn_resnet50_fpn_backbone, 64),
}

WRITTEN = sorted(p.stem for p in ZOO.glob("*.arch"))
CLASSIFYING = [name for name in WRITTEN if name in CLASSIFIERS]

#: Modules whose training behaviour differs from eval's: ours must stand where torchvision's do.
STATEFUL = ("Dropout", "Dropout2d", "StochasticDepth", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d")

#: torchvision's modules that print no arguments, and the layer of ours each computes: the FPN's
#: LastLevelMaxPool is `F.max_pool2d(x, kernel_size=1, stride=2, padding=0)` on the last map.
COMPUTES = {
    "LastLevelMaxPool()": "MaxPool2d(kernel_size=1, stride=2, padding=0, dilation=1, ceil_mode=False)"
}


def test_every_spec_is_a_listed_network() -> None:
    assert set(WRITTEN) <= set(NETWORKS)


def test_only_the_classifiers_are_pretrained_targets() -> None:
    from archdsl import pretrained

    assert [name for name in WRITTEN if pretrained.in_zoo(name)] == CLASSIFYING
    assert set(pretrained.ZOO_WEIGHTS) <= set(CLASSIFIERS)


def sample(size: int, seed: int) -> torch.Tensor:
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", WRITTEN)
def test_spec_is_torchvisions_network_weight_for_weight(name: str) -> None:
    make, size = NETWORKS[name]
    model = archdsl.load(str(ZOO / f"{name}.arch"), size=size).models[0]
    assert model.name == name
    theirs = make()
    ran: set[str] = set()
    for path, module in theirs.named_modules():
        module.register_forward_hook(lambda *_, path=path: ran.add(path))
    produced: dict[str, tuple[int, ...]] = {}
    ours = check_network(model, theirs, [sample(size, 1)], name=name, produced=produced)
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
    their_leaves = {p: COMPUTES.get(t, t) for p, t in leaves(theirs).items() if p in ran}
    assert {p: agrees(ours_leaves.get(p), t) for p, t in their_leaves.items()} == their_leaves
    extra = [m for p, m in ours_leaves.items() if p not in their_leaves and m.startswith(STATEFUL)]
    assert extra == []


@pytest.mark.parametrize("name", WRITTEN)
def test_emitted_source_takes_torchvisions_weights_and_computes_what_torchvision_does(
    name: str, tmp_path: Path
) -> None:
    from test_emit import load_source

    from archdsl.emit import emit_source

    make, size = NETWORKS[name]
    program = archdsl.load(str(ZOO / f"{name}.arch"), size=size)
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

    extra, size = CLASSIFIERS[name]
    theirs = torchvision.models.get_model(name, weights=None, **extra).eval()
    ran: set[str] = set()
    for path, module in theirs.named_modules():
        module.register_forward_hook(lambda *_, path=path: ran.add(path))
    with torch.no_grad():
        theirs(torch.zeros(1, 3, size, size))
    # the parts a spec offers are torchvision's submodules, every one that takes part in its forward
    offered = set(pretrained.zoo_parts(name))
    assert ran - {""} <= offered <= {path for path, _ in theirs.named_modules()}
    tops = [None, *(path for path in pretrained.zoo_parts(name) if "." not in path)]
    for part in tops:
        given = pretrained.zoo_parts(name)[part] if part else (3, size, size)
        if part and len(given) == 3:
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
