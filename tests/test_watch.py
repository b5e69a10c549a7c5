"""Training you can watch: TensorBoard event files, and the per-layer diagnostics of the report
(gradient norms, dead units, the vanishing-gradient warning). Real short runs on Fashion-MNIST."""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
from pathlib import Path

import pytest

from conftest import ROOT, needs_fashion, needs_torch, run_cli, write_spec

LENET5 = str(ROOT / "specs" / "lenet5.arch")
DEEP_SIGMOID = str(ROOT / "specs" / "deep_sigmoid.arch")
#: LeNet-5's layers with parameters, by module path (its statements are unnamed: numbered).
LENET5_LAYERS = ("0", "3", "6", "9", "11")


def _events(directory: Path) -> object:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(directory), size_guidance={"scalars": 0, "histograms": 0})
    accumulator.Reload()
    return accumulator


@needs_torch
@needs_fashion
@pytest.mark.slow
def test_tensorboard_files_of_a_short_lenet5_run_hold_scalars_and_a_histogram_per_parameter_per_epoch(
    tmp_path: Path, offline: Path
) -> None:
    pytest.importorskip("tensorboard")
    from archdsl.pipeline import compile_file
    from archdsl.train.loop import Options, train
    from archdsl.train.settings import Overrides, resolve

    shaped = compile_file(LENET5).model()
    board = tmp_path / "tb"
    settings = resolve(
        shaped, Overrides(limit=256, test_limit=128, epochs=2, batch=64, tensorboard=str(board))
    )
    result = train(shaped, settings, Options(device="cpu", out=str(tmp_path / "run"), layout="contiguous"))
    events = _events(board)
    tags = events.Tags()  # type: ignore[attr-defined]

    assert sorted(tags["scalars"]) == [
        "accuracy/test",
        "accuracy/train",
        "loss/step",
        "loss/test",
        "loss/train",
        "lr",
    ]
    steps = events.Scalars("loss/step")  # type: ignore[attr-defined]
    assert [e.step for e in steps] == list(range(1, 9))  # 256 / 64 = 4 steps an epoch, counted on
    for tag, field in (("loss/train", "train_loss"), ("accuracy/test", "test_accuracy"), ("lr", "lr")):
        written = [(e.step, e.value) for e in events.Scalars(tag)]  # type: ignore[attr-defined]
        expected = [(m.epoch, pytest.approx(getattr(m, field), rel=1e-6)) for m in result.history]
        assert written == expected, tag

    # One weight and one gradient histogram per parameter of each layer with parameters, each epoch.
    names = [f"{layer}/{p}" for layer in LENET5_LAYERS for p in ("weight", "bias")]
    expected_tags = sorted(f"{kind}/{name}" for kind in ("weights", "gradients") for name in names)
    assert sorted(tags["histograms"]) == expected_tags
    for tag in expected_tags:
        assert [e.step for e in events.Histograms(tag)] == [1, 2], tag  # type: ignore[attr-defined]
    last = events.Histograms("weights/0/weight")[-1].histogram_value  # type: ignore[attr-defined]
    weight = result.model.state_dict()["0.weight"]
    assert last.num == weight.numel() and last.min == pytest.approx(float(weight.min()))


@needs_torch
@needs_fashion
@pytest.mark.slow
def test_the_deep_sigmoid_nets_report_names_the_layers_whose_gradients_vanish(
    tmp_path: Path, offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["--limit", "256", "--test-limit", "128", "--epochs", "1", "--batch", "64", "--device", "cpu"]
    code, text = run_cli("train", DEEP_SIGMOID, *args, "--out", str(out))
    assert code == 0, capsys.readouterr().err
    layers = json.loads((out / "report.json").read_text())["layers"]
    norms = {name: values[-1] for name, values in layers["gradient_norms"].items()}
    convs = [f"features/c{i}" for i in range(1, 9)]
    assert list(norms) == [*convs, "head/fc1", "head/fc2"]
    # Each sigmoid passes back at most a quarter of its gradient: the norms fall layer by layer.
    assert all(norms[a] < norms[b] for a, b in itertools.pairwise(convs))
    assert layers["vanishing"][:5] == convs[:5] and "head/fc2" not in layers["vanishing"]
    assert layers["vanishing_below"] == 1e-3
    report = (out / "report.md").read_text()
    assert report in text
    assert f"warning: gradients vanish in {', '.join(layers['vanishing'])}: over the last epoch" in report
    assert "| features/c1 | Conv2d |" in report and " vanishing |" in report
    assert list(layers["dead_units"]) == ["head/relu"]
    assert (out / "layers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_torch
def test_dead_units_are_those_zero_for_every_test_image_counted_over_batches() -> None:
    import torch
    from torch import nn

    from archdsl.train.watch import Watch

    linear = nn.Linear(2, 4)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, 0.0]]))
        linear.bias.copy_(torch.tensor([0.0, 0.0, 0.0, -1.0]))
    conv = nn.Conv2d(1, 2, kernel_size=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).reshape(2, 1, 1, 1))
    dense = nn.Sequential(linear, nn.ReLU())
    image = nn.Sequential(conv, nn.ReLU6())
    watched, pictured = Watch(dense), Watch(image)
    with watched.measuring(), pictured.measuring():
        # Unit 1 is off in the first batch and on in the second: alive. Units 2 and 3 never are.
        dense(torch.tensor([[1.0, 0.0], [3.0, 0.0]]))
        dense(torch.tensor([[0.0, 2.0]]))
        # Channel 0 fires at one pixel of one image: alive; channel 1 (the negated input) never.
        pixels = torch.zeros(2, 1, 3, 3)
        pixels[1, 0, 2, 2] = 0.5
        image(pixels)
    watched.end_epoch()
    pictured.end_epoch()
    assert watched.diagnostics.activations == [("1", "ReLU", 4)]
    assert watched.diagnostics.dead == [[0.5]]
    assert pictured.diagnostics.activations == [("1", "ReLU6", 2)]
    assert pictured.diagnostics.dead == [[0.5]]
    dense(torch.tensor([[-5.0, 0.0]]))  # unit 2 on, outside `measuring`: not counted
    with watched.measuring():  # each epoch counts afresh
        dense(torch.tensor([[1.0, 2.0]]))
    watched.end_epoch()
    assert watched.diagnostics.dead == [[0.5], [0.5]]


@needs_torch
def test_a_layers_gradient_norm_is_of_all_its_parameters_averaged_over_the_epochs_steps() -> None:
    import torch
    from torch import nn

    from archdsl.train.watch import Watch

    torch.manual_seed(0)
    first, last = nn.Linear(3, 2), nn.Linear(2, 1, bias=False)
    model = nn.Sequential(first, nn.Tanh(), last)
    watch = Watch(model)

    def norm(layer: nn.Module) -> float:
        return float(torch.cat([p.grad.flatten() for p in layer.parameters() if p.grad is not None]).norm())

    expected = []
    for step in range(2):
        model.zero_grad()
        model(torch.randn(4, 3) * (step + 1)).square().sum().backward()
        expected.append([norm(first), norm(last)])
        watch.after_backward()
    watch.end_epoch()
    assert watch.diagnostics.layers == [("0", "Linear"), ("2", "Linear")]
    mean = [(a + b) / 2 for a, b in zip(*expected, strict=True)]
    assert watch.diagnostics.gradient_norms == [pytest.approx(mean, rel=1e-6)]


def test_the_layers_table_marks_layers_below_a_thousandth_of_the_largest_as_vanishing() -> None:
    from archdsl.train.watch import Diagnostics

    diagnostics = Diagnostics(
        layers=[("c1", "Conv2d"), ("c2", "Conv2d"), ("fc", "Linear")],
        activations=[("relu", "ReLU", 8)],
        gradient_norms=[[2e-4, 3e-3, 0.5], [1e-4, 1e-3, 1.0]],
        dead=[[0.0], [0.25]],
        order=["c1", "relu", "c2", "fc"],
    )
    assert diagnostics.vanishing() == ["c1"]  # c2 sits at exactly 1e-3 × the largest
    assert diagnostics.table() == (
        "## Layers\n"
        "\n"
        "grad norm: the mean over an epoch's steps of the L2 norm of the layer's gradients.\n"
        "dead units: the channels (or features) after a ReLU-family activation that are 0\n"
        "for every test image (last epoch).\n"
        "\n"
        "| layer | kind   | grad norm, epoch 1 | grad norm, epoch 2 |         ÷ largest |      dead units |\n"
        "|-------|--------|-------------------:|-------------------:|------------------:|----------------:|\n"
        "| c1    | Conv2d |           2.00e-04 |           1.00e-04 | 1.0e-04 vanishing |                 |\n"
        "| relu  | ReLU   |                    |                    |                   | 25.0 % (2 of 8) |\n"
        "| c2    | Conv2d |           3.00e-03 |           1.00e-03 |           1.0e-03 |                 |\n"
        "| fc    | Linear |           5.00e-01 |           1.00e+00 |           1.0e+00 |                 |\n"
        "\n"
        "warning: gradients vanish in c1: over the last epoch their gradient norms are below "
        "0.001 × the largest layer's (fc, 1.00e+00), so they hardly learn. Saturating activations "
        "(sigmoid, tanh) in a deep plain stack do this: try relu, batchnorm, residual connections or a "
        "better initialisation\n"
    )


def test_the_tensorboard_setting_is_a_quoted_directory_and_the_flag_overrides_it(tmp_path: Path) -> None:
    from archdsl.pipeline import compile_file
    from archdsl.train.settings import Overrides, resolve

    spec = 'model M {{ input [4] linear(2) train {{ dataset = "fashion-mnist" tensorboard = {} }} }}\n'
    shaped = compile_file(write_spec(tmp_path, spec.format('"runs/tb"'))).model()
    assert shaped.train is not None and shaped.train.tensorboard == "runs/tb"
    assert resolve(shaped).tensorboard == "runs/tb"
    assert resolve(shaped, Overrides(tensorboard="elsewhere")).tensorboard == "elsewhere"
    assert "tensorboard" not in resolve(shaped).recipe()  # how to watch, not what to learn

    code, text = run_cli("check", write_spec(tmp_path, spec.format("3"), "bad.arch"))
    assert code == 1
    assert "train setting 'tensorboard' must be a directory in quotes, e.g. \"runs/tb\", got 3" in text


@needs_torch
def test_tensorboard_missing_names_the_extra_before_any_data_loads(
    tmp_path: Path, offline: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a)
    )
    spec = write_spec(
        tmp_path, 'model M { input [1, 28, 28] flatten linear(10) train { tensorboard = "tb" } }'
    )
    code, _ = run_cli("train", spec, "--out", str(tmp_path / "run"), "--data-root", str(tmp_path / "none"))
    assert code == 2
    assert capsys.readouterr().err == (
        "archdsl: error: archdsl train --tensorboard needs tensorboard, which is not installed: "
        "pip install 'archdsl[tensorboard]'\n"
    )
    assert not (tmp_path / "run").exists() and not (tmp_path / "tb").exists()


SMALL_RELU = """
model SmallRelu {
    input [1, 28, 28]
    features: { c1: conv(4, kernel=3) relu: relu maxpool(4) }
    flatten linear(10)
    train { dataset = "fashion-mnist" epochs = 2 batch = 64 optimizer = sgd(lr=0.05, momentum=0.9) }
}
"""


@needs_torch
@needs_fashion
@pytest.mark.slow
def test_a_resumed_run_continues_the_per_layer_history_of_the_run_it_resumes(
    tmp_path: Path, offline: Path
) -> None:
    from archdsl.pipeline import compile_file
    from archdsl.train.loop import Options, train
    from archdsl.train.settings import Overrides, resolve

    shaped = compile_file(write_spec(tmp_path, SMALL_RELU)).model()
    settings = resolve(shaped, Overrides(limit=256, test_limit=128))
    options = Options(device="cpu", out=str(tmp_path / "run"), layout="contiguous")
    first = train(shaped, settings, dataclasses.replace(options, stop_after=1))
    resumed = train(shaped, settings, dataclasses.replace(options, resume=True))
    assert first.diagnostics is not None and resumed.diagnostics is not None
    assert resumed.diagnostics.layers == [("features/c1", "Conv2d"), ("2", "Linear")]
    assert resumed.diagnostics.activations == [("features/relu", "ReLU", 4)]
    assert len(resumed.diagnostics.gradient_norms) == len(resumed.diagnostics.dead) == 2
    assert resumed.diagnostics.gradient_norms[0] == first.diagnostics.gradient_norms[0]
    assert resumed.diagnostics.dead[0] == first.diagnostics.dead[0]
    report = json.loads((tmp_path / "run" / "report.json").read_text())["layers"]
    assert [len(v) for v in report["gradient_norms"].values()] == [2, 2]
