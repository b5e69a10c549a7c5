"""One check of a spec against the PyTorch network it stands for, shared by the zoo and graph tests.

The reference is given random normalisation statistics and affine parameters (with their initial
ones a misplaced norm would hardly show), its `state_dict` is loaded into the spec's built module
strictly, and both run in eval mode on the same random inputs: their outputs (one tensor, a tuple
or a dict, as the reference returns) must agree within 1e-5 of their scale, their parameter counts
must be equal, and every statement's static shape must be what PyTorch produces there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

import archdsl
from archdsl.builder import build_model
from archdsl.graph import Node, Shaped, ShapedModel

from conftest import torch_threads


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


def walk(nodes: list[Shaped]) -> list[Shaped]:
    return [n for node in nodes for n in (node, *walk(node.children))]


def tensors(value: Any) -> dict[str, torch.Tensor]:
    """A network's output as named tensors: one, a tuple's by place, a dict's by key."""
    if isinstance(value, torch.Tensor):
        return {"": value}
    if isinstance(value, dict):
        return dict(value)
    return {str(i): v for i, v in enumerate(value)}


def assert_outputs_agree(got: Any, expected: Any, name: str) -> None:
    """Equal within 1e-5 of their scale, and returned as the reference returns them: a tensor, a
    tuple (or list), or a dict (an OrderedDict's keys in order)."""
    for kind in (torch.Tensor, dict, tuple | list):
        if isinstance(expected, kind):
            assert isinstance(got, kind), (
                f"{name}: returns {type(got).__name__}, not {type(expected).__name__}"
            )
    ours, theirs = tensors(got), tensors(expected)
    assert list(ours) == list(theirs), name
    for key, value in theirs.items():
        assert ours[key].shape == value.shape, (name, key)
        scale = value.abs().max().item()
        assert (ours[key] - value).abs().max().item() <= 1e-5 * max(scale, 1.0), (name, key)


def statements(model: ShapedModel, built: nn.Module) -> list[Shaped]:
    """The statements that are modules of the built network."""
    modules = dict(built.named_modules())
    return [
        node
        for node in walk(model.layers)
        if not node.spliced and node.path in modules and not (isinstance(node, Node) and not node.member)
    ]


def check_network(
    model: ShapedModel,
    reference: nn.Module,
    inputs: Sequence[torch.Tensor],
    *,
    name: str,
    order: bool = True,
    produced: dict[str, tuple[int, ...]] | None = None,
) -> nn.Module:
    """The spec's built model against `reference` (see the module's docstring); returns ours.
    `order`: its `state_dict` keys also come in the reference's order. `produced`, where given, is
    filled with the shape (per sample) PyTorch produced at each statement that ran, by path."""
    theirs = randomized(reference).eval()
    assert model.params == sum(p.numel() for p in theirs.parameters()), name
    ours = build_model(model).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    if order:
        assert list(ours.state_dict()) == list(theirs.state_dict()), name
    produced = {} if produced is None else produced
    modules = dict(ours.named_modules())
    found = statements(model, ours)
    for node in found:
        modules[node.path].register_forward_hook(
            lambda _m, _a, out, path=node.path: produced.__setitem__(path, _first_shape(out))
        )
    with torch_threads(2), torch.no_grad():
        expected, got = theirs(*inputs), ours(*inputs)
    assert_outputs_agree(got, expected, name)
    shapes = {n.path: n.output for n in found if n.path in produced}
    assert shapes == {p: produced[p] for p in shapes}, name
    assert set(produced) <= {n.path for n in found}
    return ours


def _first_shape(output: Any) -> tuple[int, ...]:
    """A statement's output shape, per sample: its first value's, where it gives several."""
    first = output[0] if isinstance(output, tuple | list) else output
    return tuple(first.shape[1:])


def load(path: str, model: str | None = None, **params: Any) -> ShapedModel:
    return archdsl.load(path, model=model, **params).model(model)
