"""Graph-shaped networks of `specs/` against the PyTorch their authors wrote (`references.py`):
U-Net, DCGAN's generator and discriminator, the conv autoencoder and a YOLO-style trunk. Each
loads its reference's `state_dict` strictly and computes what it computes (see `networks.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")  # the light install has no torch: this whole file is skipped there

import handwritten_references
import references
import torch
from networks import check_network, load

import archdsl

from conftest import ROOT

SPECS = ROOT / "specs"


def sample(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.slow
@pytest.mark.parametrize(("bilinear", "size"), [(False, 64), (False, 37), (True, 45)])
def test_unet_is_milesials_and_pads_skips_at_odd_sizes(bilinear: bool, size: int) -> None:
    # 37 and 45 are floored on the way down: each step up is padded to its skip's size.
    model = load(str(SPECS / "unet.arch"), bilinear=bilinear, size=size)
    reference = references.UNet(3, 2, bilinear=bilinear)
    check_network(model, reference, [sample(1, 3, size, size)], name=f"unet bilinear={bilinear}")


@pytest.mark.slow
def test_dcgan_generator_and_discriminator_are_pytorch_examples() -> None:
    generator = load(str(SPECS / "dcgan.arch"), model="Generator")
    check_network(generator, references.Generator(), [sample(2, 100, 1, 1)], name="generator")
    discriminator = load(str(SPECS / "dcgan.arch"), model="Discriminator")
    assert discriminator.output == ()  # one number a sample: the reference's view(-1, 1).squeeze(1)
    check_network(discriminator, references.Discriminator(), [sample(2, 3, 64, 64)], name="discriminator")


def test_autoencoder_is_the_tutorials() -> None:
    model = load(str(SPECS / "autoencoder.arch"))
    check_network(model, references.Autoencoder(), [sample(2, 1, 28, 28)], name="autoencoder")


@pytest.mark.slow
def test_yolo_trunk_gives_three_maps_as_the_reference() -> None:
    model = load(str(SPECS / "yolo.arch"), size=64)
    assert [shape for _, shape in model.outputs] == [(64, 8, 8), (128, 4, 4), (256, 2, 2)]
    # The reference registers C3's cv3 before m, and calls one `up` twice where the spec has two.
    check_network(model, references.YoloTrunk(), [sample(1, 3, 64, 64)], name="yolo", order=False)


def test_a_model_ending_in_several_values_gives_them_all(tmp_path: Path) -> None:
    # With no `output`, as a block's body does: found by the differential campaign (the model had
    # no output at all, and no diagnostic said so).
    path = tmp_path / "halves.arch"
    path.write_text("model Thirds {\n    input [4, 8, 8]\n    conv(6, kernel=1)\n    split(3)\n}\n")
    model = load(str(path))
    assert model.outputs == [(None, (2, 8, 8))] * 3
    net = archdsl.build(str(path)).eval()
    x = sample(1, 4, 8, 8)
    with torch.no_grad():
        got, whole = net(x), dict(net.named_modules())["0"](x)
    assert isinstance(got, tuple) and len(got) == 3
    torch.testing.assert_close(torch.cat(got, dim=1), whole)


def test_a_statement_giving_several_values_shows_each_in_the_summary(tmp_path: Path) -> None:
    path = tmp_path / "fpn.arch"
    path.write_text(
        "block Two(w: int) {\n    input as c\n    c -> conv(w, kernel=1) as p3\n"
        "    c -> maxpool(2) conv(w, kernel=1) as p4\n    output p3, p4\n}\n"
        "model M {\n    input [3, 16, 16]\n    Two(8) as (p3, p4)\n    p4 -> upsample(2) as up\n"
        "    p3 -> add(up)\n}\n",
        encoding="utf-8",
    )
    summary = archdsl.summary(str(path))
    assert [(layer.name, layer.output_text) for layer in summary.layers[:1]] == [
        ("0", "([8, 16, 16], [8, 8, 8])")
    ]
    (row,) = [line for line in str(summary).splitlines() if line.startswith("0 ")]
    assert row.split()[:2] == ["0", "Two"] and "([8, 16, 16], [8, 8, 8])" in row


@pytest.mark.parametrize(
    ("spec", "model", "factory", "shape"),
    [
        ("pix2pix.arch", "Pix2Pix", handwritten_references.Pix2Pix, (3, 64, 64)),
        ("fpn.arch", "FPN", handwritten_references.FPN, (3, 50, 50)),
        ("fpn.arch", "FPNDict", handwritten_references.FPNDict, (3, 50, 50)),
        ("mbv2.arch", "MBV2Tiny", handwritten_references.MBV2Tiny, (3, 32, 32)),
        ("multi.arch", "Multi", handwritten_references.Multi, (8, 16, 16)),
        ("attention.arch", "Tiny", handwritten_references.Tiny, (16, 64)),
        ("attention.arch", "TinyViT", handwritten_references.TinyViT, (3, 16, 16)),
    ],
)
def test_networks_written_by_hand_are_the_pytorch_they_stand_for(
    spec: str, model: str, factory: Any, shape: tuple[int, ...]
) -> None:
    # Written as a new user would, apart from archdsl's tests (tests/handwritten/).
    shaped = load(str(ROOT / "tests" / "handwritten" / spec), model=model)
    check_network(shaped, factory(), [sample(2, *shape)], name=model)
