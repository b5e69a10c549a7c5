"""The torchvision zoo as specs: each `specs/torchvision/<name>.arch` is exactly
`torchvision.models.<name>(weights=None)`, checked without torch.

For each network the spec's first model is built, torchvision's network is made with random
weights and random batchnorm statistics, affine parameters and layer scales, and its `state_dict`
is loaded into ours with `strict=True`. In eval mode both must give the same output on a random
batch (within 1e-5 of the output's scale); the static parameter count must be torchvision's, and
every statement's static shape what PyTorch produces there. Images are small (the networks pool
adaptively) to keep this to seconds on two cores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import archdsl
from archdsl.builder import build_model
from archdsl.importer import agrees, leaves
from archdsl.shapes import Shaped

from conftest import ROOT, torch_threads

torchvision = pytest.importorskip("torchvision")

ZOO = ROOT / "specs" / "torchvision"

#: name: (torchvision's extra arguments, the image size the test runs).
NETWORKS: dict[str, tuple[dict[str, Any], int]] = {
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

WRITTEN = sorted(p.stem for p in ZOO.glob("*.arch"))


def randomized(model: nn.Module) -> nn.Module:
    """Random normalisation statistics and affine parameters, and layer scales away from 1e-6:
    with torchvision's initial ones a misplaced norm or scale would hardly show in the output."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.normal_(0, 0.5, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
            if isinstance(module, nn.modules.batchnorm._BatchNorm | nn.LayerNorm | nn.GroupNorm):
                if module.weight is not None:
                    module.weight.uniform_(0.5, 1.5, generator=generator)
                if module.bias is not None:
                    module.bias.normal_(0, 0.2, generator=generator)
        for name, parameter in model.named_parameters():
            if name.endswith("layer_scale"):
                parameter.uniform_(0.5, 1.5, generator=generator)
    return model


#: Modules whose training behaviour differs from eval's: ours must stand where torchvision's do.
STATEFUL = ("Dropout", "Dropout2d", "StochasticDepth", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d")


def walk(nodes: list[Shaped]) -> list[Shaped]:
    return [n for node in nodes for n in (node, *walk(node.children))]


def test_every_spec_is_a_listed_network() -> None:
    assert set(WRITTEN) <= set(NETWORKS)


@pytest.mark.parametrize("name", WRITTEN)
def test_spec_is_torchvisions_network_weight_for_weight(name: str) -> None:
    extra, size = NETWORKS[name]
    program = archdsl.load(str(ZOO / f"{name}.arch"), size=size)
    model = program.models[0]
    assert model.name == name
    theirs = randomized(torchvision.models.get_model(name, weights=None, **extra)).eval()
    assert model.params == sum(p.numel() for p in theirs.parameters())
    ours = build_model(model).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())  # in torchvision's order, too
    produced: dict[str, tuple[int, ...]] = {}
    modules = dict(ours.named_modules())
    statements = [node for node in walk(model.layers) if not node.spliced and node.path in modules]
    for node in statements:
        modules[node.path].register_forward_hook(
            lambda _m, _a, out, path=node.path: produced.__setitem__(path, tuple(out.shape[1:]))
        )
    ran: set[str] = set()
    for path, module in theirs.named_modules():
        module.register_forward_hook(lambda *_, path=path: ran.add(path))
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch_threads(2), torch.no_grad():
        expected, got = theirs(x), ours(x)
    scale = expected.abs().max().item()
    assert (got - expected).abs().max().item() <= 1e-5 * max(scale, 1.0), name
    assert {n.path: n.output for n in statements if n.path in produced} == produced
    # What never runs here (a body that computes nothing, ShuffleNet's empty `branch1`) never runs
    # in torchvision either.
    assert {n.path for n in statements if n.path not in produced} <= set(dict(theirs.named_modules())) - ran
    # torchvision's every leaf module that takes part in the computation is ours at its path, with
    # its arguments. (EfficientNet registers a StochasticDepth in every block and calls it only
    # in those that add their input: one that never runs computes nothing, in training either.)
    # Where we have a module it has none (a functional op: torch.flatten, F.relu), ours changes
    # nothing in training.
    ours_leaves = leaves(ours)
    their_leaves = {p: t for p, t in leaves(theirs).items() if p in ran}
    assert {p: agrees(ours_leaves.get(p), t) for p, t in their_leaves.items()} == their_leaves
    extra = [m for p, m in ours_leaves.items() if p not in their_leaves and m.startswith(STATEFUL)]
    assert extra == []


@pytest.mark.parametrize("name", WRITTEN)
def test_emitted_source_takes_torchvisions_weights_and_computes_what_torchvision_does(
    name: str, tmp_path: Path
) -> None:
    from test_emit import load_source

    from archdsl.emit import emit_source

    extra, size = NETWORKS[name]
    program = archdsl.load(str(ZOO / f"{name}.arch"), size=size)
    emitted = getattr(load_source(emit_source(program.models[0], program=program), tmp_path), name)()
    theirs = randomized(torchvision.models.get_model(name, weights=None, **extra)).eval()
    emitted.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch_threads(2), torch.no_grad():
        expected, got = theirs(x), emitted.eval()(x)
    assert (got - expected).abs().max().item() <= 1e-5 * max(expected.abs().max().item(), 1.0)


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


@pytest.mark.parametrize("name", WRITTEN)
def test_pretrained_parts_are_checked_from_the_spec_as_torchvision_runs_them(name: str) -> None:
    from archdsl import pretrained

    extra, size = NETWORKS[name]
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


@pytest.mark.parametrize("name", WRITTEN)
def test_the_weights_table_is_torchvisions(name: str) -> None:
    from archdsl import pretrained

    assert pretrained.ZOO_WEIGHTS[name] == tuple(torchvision.models.get_model_weights(name).__members__)
