"""`archdsl export`: every spec of the repository as ONNX, checked by onnx's checker and run by
onnxruntime against PyTorch; `--weights` (a training run's `model.pt`), `--opset`, and the errors.

The zoo networks run at a small image size (64, inception_v3's smallest is 75): the export's cost
is the graph's size, not the image's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")  # the light install has no torch: this whole file is skipped there

import archdsl
from archdsl.builder import build_model

from conftest import ROOT, SPECS, needs_fashion, run_cli, torch_threads, write_spec

# Out of the fast lane (`pytest -m "not slow"`): every spec exported to ONNX and run by onnxruntime: the
# longest file of the suite.
pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def _variant(path: Path) -> bool:
    """A zoo spec that only calls another's blocks with other numbers (resnet101, vit_l_16): its
    graph is its family's, which is exported (a 600M-parameter variant would not fit a protobuf)."""
    text = path.read_text(encoding="utf-8")
    imports = text.startswith("import ") or "\nimport " in text
    return imports and "\nblock " not in text


ZOO = sorted(
    p.relative_to(ROOT).as_posix() for p in (ROOT / "specs" / "torchvision").glob("*.arch") if not _variant(p)
)
#: MaxViT's 7×7 partitions divide every stage's map from 224×224 on.
ZOO_SIZE = {"specs/torchvision/inception_v3.arch": 75, "specs/torchvision/maxvit_t.arch": 224}
#: The video classifiers' clips: a few small frames (S3D's final 2×7×7 pool needs 13 of 209×209).
ZOO_CLIP = {
    "specs/torchvision/r3d_18.arch": {"frames": 4, "size": 32},
    "specs/torchvision/s3d.arch": {"frames": 13, "size": 209},
    "specs/torchvision/mvit_v1_b.arch": {"frames": 4, "size": 32},
}
#: Graph specs whose default image is large: the export's cost is the graph's, the run's the image's.
SMALL = {"specs/unet.arch": {"size": 64}, "specs/yolo.arch": {"size": 64}}


def randomize(net: torch.nn.Module) -> torch.nn.Module:
    """Batchnorm statistics away from 0 and 1, so that a misplaced or dropped norm shows."""
    from test_zoo import randomized

    return randomized(net)


def run_onnx(model: Path | bytes, x: torch.Tensor) -> torch.Tensor:
    """onnxruntime's output for `x`, from a file or the model's bytes."""
    (output,) = run_onnx_graph(model, {"input": x})
    return output


def run_onnx_graph(model: Path | bytes, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """onnxruntime's outputs for the named inputs."""
    given = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(given, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {name: x.numpy() for name, x in inputs.items()})
    return [torch.from_numpy(output) for output in outputs]


def flat(result: Any) -> list[torch.Tensor]:
    """A model's outputs in the ONNX graph's order: one, a tuple's, or a dict's values."""
    if isinstance(result, dict):
        return list(result.values())
    return list(result) if isinstance(result, tuple | list) else [result]


SMALL_CNN = """
model Small {
    input [1, 28, 28]
    conv(8, kernel=3) relu maxpool(2)
    flatten dropout(0.1) linear(10)
    train { dataset = "fashion-mnist" epochs = 1 batch = 64 optimizer = sgd(lr=0.05) }
}
"""


def assert_close(got: torch.Tensor, expected: torch.Tensor, what: str = "") -> None:
    assert got.shape == expected.shape, what
    assert (got - expected).abs().max().item() <= 1e-4 * max(expected.abs().max().item(), 1.0), what


@pytest.mark.parametrize("spec", SPECS + ZOO)
def test_every_spec_exports_checks_and_runs_in_onnxruntime_as_in_pytorch(spec: str) -> None:
    """The graph `archdsl export` writes (`to_onnx`, here kept in memory: VGG's weights are half a
    gigabyte), with random weights and batchnorm statistics."""
    from archdsl.export import graph_names, to_onnx

    params = (ZOO_CLIP.get(spec) or {"size": ZOO_SIZE.get(spec, 64)}) if spec in ZOO else SMALL.get(spec, {})
    for model in archdsl.load(ROOT / spec, **params).models:
        net = randomize(build_model(model)).eval()
        inputs, outputs = graph_names(model)
        with torch_threads(2):
            proto = to_onnx(net, model.input, name=model.name, inputs=inputs, outputs=outputs)
        onnx.checker.check_model(proto, full_check=True)
        generator = torch.Generator().manual_seed(0)
        xs = {name: torch.randn(3, *shape, generator=generator) for name, shape in inputs}
        with torch_threads(2), torch.no_grad():
            got = run_onnx_graph(proto.SerializeToString(), xs)
            expected = flat(net(*xs.values()))
        assert len(got) == len(expected) == len(outputs), model.name
        for name, ours, theirs in zip(outputs, got, expected, strict=True):
            assert_close(ours, theirs, f"{model.name} {name}")


def test_the_batch_axis_is_dynamic_and_the_graph_is_named_after_the_model(
    in_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "net.onnx"
    code, text = run_cli("export", "specs/resnet_mini.arch", "-o", str(out))
    assert (code, text) == (0, f"wrote {out} (ResNetMini, ONNX opset 20, input [batch, 1, 28, 28])\n")
    proto = onnx.load(str(out))
    (given,) = proto.graph.input
    dims = [d.dim_param or d.dim_value for d in given.type.tensor_type.shape.dim]
    assert (given.name, dims) == ("input", ["batch", 1, 28, 28])
    assert proto.graph.name == "ResNetMini" and proto.producer_name == "archdsl"
    # the metadata names module paths, never this machine's files
    keys = {p.key for node in proto.graph.node for p in node.metadata_props}
    assert "pkg.torch.onnx.name_scopes" in keys and "pkg.torch.onnx.stack_trace" not in keys
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        (y,) = session.run(None, {"input": torch.zeros(batch, 1, 28, 28).numpy()})
        assert y.shape == (batch, 10)


def test_runtime_modules_export() -> None:
    """archdsl's own modules, as emitted source uses them (the builder writes the same computations
    with its flow interpreter, which every spec above exercises), in one chain: one export."""
    from torch import nn

    from archdsl import runtime
    from archdsl.export import to_onnx

    conv = nn.Conv2d(8, 8, 3, padding=1)
    chain = nn.Sequential(
        runtime.Residual(conv, nn.ReLU(), shortcut=nn.Conv2d(8, 8, 1), name="downsample"),
        runtime.Residual(nn.Conv2d(8, 8, 3, padding=1)),
        runtime.Gate(nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 8, 1), nn.Sigmoid()),
        runtime.Permute(1, 2, 0),
        nn.LayerNorm(8),
        runtime.Permute(2, 0, 1),
        runtime.LayerNorm2d(8, eps=1e-6),
        runtime.StochasticDepth(0.5, "row"),
        runtime.View(8, 64),
        runtime.View(8, 8, 8),
        runtime.Concat({"a": nn.Conv2d(8, 4, 1), "b": nn.Identity()}),
        runtime.Concat({"a": nn.Identity(), "b": nn.Conv2d(9, 9, 1)}, split=[3, 9]),
    ).eval()
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        assert_close(run_onnx(to_onnx(chain, (8, 8, 8)).SerializeToString(), x), chain(x))


@needs_fashion
def test_a_training_runs_model_pt_loads_with_weights(tmp_path: Path, offline: Path) -> None:
    spec = write_spec(tmp_path, SMALL_CNN)
    run = tmp_path / "run"
    code, text = run_cli("train", spec, "--limit", "256", "--test-limit", "64", "--out", str(run))
    assert code == 0, text
    out = tmp_path / "small.onnx"
    code, text = run_cli("export", spec, "-o", str(out), "--weights", str(run / "model.pt"))
    assert code == 0, text
    net = archdsl.build(spec).eval()
    net.load_state_dict(torch.load(run / "model.pt", weights_only=True))
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert_close(run_onnx(out, x), net(x))
    # a training checkpoint holds the same weights under "model"
    code, _ = run_cli("export", spec, "-o", str(tmp_path / "c.onnx"), "--weights", str(run / "checkpoint.pt"))
    assert code == 0
    with torch.no_grad():
        assert_close(run_onnx(tmp_path / "c.onnx", x), net(x))


def test_weights_that_do_not_fit_the_model_are_refused_and_nothing_is_written(
    in_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "lenet.pt"
    torch.save(archdsl.build("specs/lenet5.arch").state_dict(), weights)
    out = tmp_path / "x.onnx"
    code, text = run_cli(
        "export", "specs/lenet5.arch", "-p", "classes=100", "-o", str(out), "--weights", str(weights)
    )
    assert (code, text, out.exists()) == (1, "", False)
    assert capsys.readouterr().err == (
        f"archdsl: error: {weights} does not fit the model: 11.weight has shape [10, 84], the model's "
        "is [100, 84]; 11.bias has shape [10], the model's is [100]\n"
    )
    torch.save({"0.weight": torch.zeros(1)}, weights)
    code, _ = run_cli("export", "specs/lenet5.arch", "-o", str(out), "--weights", str(weights))
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"archdsl: error: {weights} does not fit the model: missing 0.bias, 3.weight")
    weights.write_bytes(b"not a pickle")
    code, _ = run_cli("export", "specs/lenet5.arch", "-o", str(out), "--weights", str(weights))
    assert code == 1 and "not a state_dict saved by torch.save" in capsys.readouterr().err
    code, _ = run_cli("export", "specs/lenet5.arch", "-o", str(out), "--weights", str(tmp_path / "none.pt"))
    assert (code, capsys.readouterr().err) == (2, f"archdsl: error: {tmp_path / 'none.pt'}: no such file\n")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_opset_the_exporter_cannot_write_is_an_error_without_a_traceback(
    in_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.onnx"
    code, text = run_cli("export", "specs/lenet5.arch", "-o", str(out), "--opset", "13")
    assert (code, text, out.exists()) == (1, "", False)
    assert capsys.readouterr().err == (
        "archdsl: error: torch.onnx cannot write this model at opset 13 (it wrote opset 18); "
        "ask for 18 or later\n"
    )
    code, _ = run_cli("export", "specs/lenet5.arch", "-o", str(out), "--opset", "18")
    assert code == 0 and onnx.load(str(out)).opset_import[0].version == 18


def test_export_without_the_onnx_extra_names_it(
    in_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else find_spec(name, *a)
    )
    code, _ = run_cli("export", "specs/lenet5.arch", "-o", str(tmp_path / "x.onnx"))
    assert (code, capsys.readouterr().err) == (
        2,
        "archdsl: error: archdsl export needs onnxscript, which is not installed: "
        "pip install 'archdsl[onnx]'\n",
    )


def test_onnx_inputs_and_outputs_are_named_as_the_spec_names_them(tmp_path: Path) -> None:
    from archdsl.export import graph_names
    from archdsl.pipeline import compile_file

    def names(text: str) -> tuple[list[str], list[str]]:
        path = tmp_path / "m.arch"
        path.write_text(text, encoding="utf-8")
        inputs, outputs = graph_names(compile_file(str(path)).model())
        return [name for name, _ in inputs], outputs

    two = "model M {\n    input [3, 8, 8] as image\n    conv(4, kernel=1) as a\n    relu as b\n"
    assert names(two + "    output a, b\n}\n") == (["image"], ["a", "b"])
    assert names(two + "    output x: a, y: b\n}\n") == (["image"], ["x", "y"])
    # Read twice, or an input's name: each by its place instead.
    assert names(two + "    output a, a\n}\n") == (["image"], ["output0", "output1"])
    assert names(two + "    output image, b\n}\n") == (["image"], ["output0", "output1"])
    # Several values with no `output`: no names to give.
    assert names("model M {\n    input [4, 8, 8]\n    split(2)\n}\n") == (["input"], ["output0", "output1"])
