"""`archdsl import` reads a functional op (`F.relu(x)`, `x.flatten(1)`, `x[:, 0]`) as the layers
say: each layer names the functions and tensor methods it reads back (`Layer.calls`) and reads
a call's arguments (`Layer.called`), torch-free, as `imports` and `arguments` do for modules. A
plugin's layer is read back the same way, and the importer knows no layer by name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from archdsl.layers import LAYERS, FunctionCall, TensorArg

from conftest import ROOT, needs_torch

IMAGE = TensorArg((2, 8, 4, 4))


def read(layer: str, name: str, *args: object, output: tuple[int, ...], **kwargs: object) -> object:
    return LAYERS[layer].called(FunctionCall(name, args, kwargs, output))


def test_a_reshape_that_keeps_the_batch_is_a_flatten_or_a_view_of_the_output_shape() -> None:
    assert read("flatten", "torch.flatten", IMAGE, 1, output=(2, 128)) == [("flatten", {})]
    # flatten(2) is no `flatten`: the view layer reads it from the shape the trace recorded
    assert read("flatten", "Tensor.flatten", IMAGE, 2, output=(2, 8, 16)) is None
    assert read("view", "Tensor.flatten", IMAGE, 2, output=(2, 8, 16)) == [("view", {"dims": (8, 16)})]
    assert read("view", "Tensor.view", IMAGE, 2, -1, output=(2, 128)) == [("flatten", {})]
    # one that folds or moves the batch axis has no per-sample statement
    assert read("view", "torch.flatten", IMAGE, output=(256,)) is None
    assert read("view", "Tensor.view", IMAGE, 1, -1, output=(1, 256)) is None


def test_channels_sliced_are_a_narrow_and_one_position_a_select() -> None:
    whole = slice(None)
    assert read("narrow", "operator.getitem", IMAGE, (whole, slice(2, 6)), output=(2, 4, 4, 4)) == [
        ("narrow", {"length": 4, "start": 2})
    ]
    assert read("narrow", "Tensor.narrow", IMAGE, 1, -3, 2, output=(2, 2, 4, 4)) == [
        ("narrow", {"length": 2, "start": 5})
    ]
    assert read("narrow", "operator.getitem", IMAGE, (whole, 0), output=(2, 4, 4)) is None
    assert read("select", "operator.getitem", IMAGE, (whole, 0), output=(2, 4, 4)) == [
        ("select", {"index": 0, "dim": 1})
    ]
    # a share of a chunk (a tuple of tensors, no one shape) is read as a split, not here
    assert read("narrow", "operator.getitem", TensorArg(None), 0, output=(2, 4, 4, 4)) is None


def test_an_images_mean_over_its_positions_is_a_global_average_pool() -> None:
    assert read("mean", "Tensor.mean", IMAGE, (2, 3), output=(2, 8)) == [
        ("adaptiveavgpool", {"size": (1, 1)}),
        ("flatten", {}),
    ]
    assert read("mean", "torch.mean", IMAGE, [-1, -2], output=(2, 8, 1, 1), keepdim=True) == [
        ("adaptiveavgpool", {"size": (1, 1)})
    ]
    tokens = TensorArg((2, 5, 16))
    assert read("mean", "Tensor.mean", tokens, 1, output=(2, 16)) == [
        ("mean", {"dim": (1,), "keepdim": False})
    ]
    assert read("mean", "Tensor.mean", tokens, 0, output=(5, 16)) is None  # over the batch


def test_pools_transposes_and_activations_read_their_arguments() -> None:
    assert read("maxpool", "torch.nn.functional.max_pool2d", IMAGE, 3, 2, 1, output=(2, 8, 2, 2)) == [
        ("maxpool", {"kernel": 3, "padding": 1, "stride": 2, "dilation": 1, "ceil": False})
    ]
    assert (
        read("maxpool", "torch.nn.functional.max_pool2d", IMAGE, 2, return_indices=True, output=(2, 8, 2, 2))
        is None
    )
    assert read("permute", "Tensor.transpose", TensorArg((2, 5, 16)), 1, 2, output=(2, 16, 5)) == [
        ("permute", {"dims": (1, 0)})
    ]
    assert read("permute", "torch.transpose", TensorArg((2, 5, 16)), 0, 1, output=(5, 2, 16)) is None
    assert read("leakyrelu", "torch.nn.functional.leaky_relu", IMAGE, 0.2, output=IMAGE.shape or ()) == [
        ("leakyrelu", {"slope": 0.2})
    ]
    assert read("identity", "Tensor.contiguous", IMAGE, output=IMAGE.shape or ()) == []


@needs_torch
@pytest.mark.slow
def test_every_function_and_method_a_layer_names_exists_in_torch_or_torchvision() -> None:
    import torch

    from archdsl.importer.functional import _resolve

    names = {name for layer in LAYERS.values() for name in layer.calls}
    methods = {name for name in names if name.startswith("Tensor.")}
    assert sorted(name for name in names - methods if not callable(_resolve(name))) == []
    assert sorted(name for name in methods if not hasattr(torch.Tensor, name.removeprefix("Tensor."))) == []


PLUGIN = ROOT / "tests" / "layer_plugin"

#: The swish plugin (tests/layer_plugin), which also reads back its functional form.
CALLED_SWISH = """
from swish_layer import SwishLayer


def swish(x, beta=1.0):
    return x * (beta * x).sigmoid()


class CalledSwish(SwishLayer):
    calls = ("swish_calls.swish",)

    def called(self, call):
        return [(self.name, {"beta": call.arg(1, "beta", 1.0)})]
"""

#: A user's network that calls the plugin's function in its forward (kept whole by `fx.wrap`).
NETWORK = """
import torch
from torch import nn

from swish_calls import swish

torch.fx.wrap("swish")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return swish(self.conv(x), beta=2.0)


def net():
    return Net()
"""


@needs_torch
@pytest.mark.slow
def test_a_plugin_layer_is_read_back_from_its_functional_form(tmp_path: Path) -> None:
    site = tmp_path / "site"
    info = site / "archdsl_swish-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: archdsl-swish\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[archdsl.layers]\nswish = swish_calls:CalledSwish\n", encoding="utf-8"
    )
    (tmp_path / "swish_calls.py").write_text(CALLED_SWISH, encoding="utf-8")
    (tmp_path / "swishnet.py").write_text(NETWORK, encoding="utf-8")
    path = os.pathsep.join([str(site), str(tmp_path), str(PLUGIN), str(ROOT)])
    result = subprocess.run(
        [sys.executable, "-m", "archdsl", "import", "swishnet:net", "--input", "3,8,8"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == textwrap.dedent(
        """\
        # Imported by `archdsl import swishnet:net --input 3,8,8` (swishnet.Net).
        # 112 parameters. Names are the module's, so its state_dict loads with strict=True;
        # shapes are for one sample of the input.

        model net {
            input [3, 8, 8]
            conv: conv(4, kernel=3) swish(beta=2.0)  # [4, 6, 6]
        }
        """
    )
