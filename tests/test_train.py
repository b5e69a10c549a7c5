"""`archdsl train`: real short runs on Fashion-MNIST, resume, the errors a user can cause, torchrun.

Every run is tiny (a few thousand images, one or two epochs, small networks) so the file stays
well under a minute and a half on two cores. Runs that need the data skip without Debian's
dataset-fashion-mnist.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, needs_fashion, needs_torch, run_cli, write_spec

# Out of the fast lane (`pytest -m "not slow"`): real training runs on Fashion-MNIST.
pytestmark = pytest.mark.slow

PYTHON = sys.executable

SMALL_CNN = """
model Small {
    input [1, 28, 28]
    conv(8, kernel=3) relu maxpool(2)
    flatten dropout(0.1) linear(10)
    train { dataset = "fashion-mnist" epochs = 2 batch = 64 optimizer = sgd(lr=0.05, momentum=0.9) }
}
"""


@needs_torch
@needs_fashion
def test_short_fashion_mnist_run_learns_and_writes_metrics_curves_report(
    tmp_path: Path, offline: Path
) -> None:
    out = tmp_path / "run"
    code, text = run_cli(
        "train", write_spec(tmp_path, SMALL_CNN), "--limit", "3000", "--test-limit", "500", "--out", str(out)
    )
    assert code == 0, text
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[-1]["test_accuracy"] > 0.6  # chance is 0.1
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    for key in ("train_loss", "train_accuracy", "train_time", "train_images_per_s", "test_images_per_s"):
        assert rows[0][key] > 0
    csv_lines = (out / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith(
        "epoch,lr,train_loss,train_accuracy,train_time,train_images_per_s,test_loss"
    )
    assert len(csv_lines) == 3
    for name in ("curves.png", "confusion.png", "checkpoint.pt", "model.pt"):
        assert (out / name).read_bytes()[:4] in (b"\x89PNG", b"PK\x03\x04"), name
    report = (out / "report.md").read_text()
    assert f"test accuracy: {100 * rows[-1]['test_accuracy']:.2f} %" in report
    assert "| Ankle boot " in report and report in text
    recipe = json.loads((out / "report.json").read_text())["recipe"]
    assert (recipe["limit"], recipe["test_limit"]) == (3000, 500)
    assert sum(map(sum, json.loads((out / "report.json").read_text())["confusion"])) == 500
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"


@needs_torch
@needs_fashion
def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(tmp_path: Path, offline: Path) -> None:
    import torch

    from archdsl.pipeline import compile_file
    from archdsl.train.loop import Options, train
    from archdsl.train.settings import Overrides, resolve
    from archdsl.trainspec import AugmentSpec, ScheduleSpec

    shaped = compile_file(write_spec(tmp_path, SMALL_CNN)).model()
    # Dropout, augmentation and a per-step schedule: every random and scheduled state must resume.
    settings = dataclasses.replace(
        resolve(shaped, Overrides(limit=1200, seed=3)),
        augment=AugmentSpec(crop_padding=2, flip=0.5),
        schedule=ScheduleSpec(name="cosine"),
    )
    # The layout is named: two runs timing the layouts could pick differently, and the kernels of
    # the two layouts round differently. The resumed run names none and keeps the one it started in.
    whole = train(
        shaped, settings, Options(device="cpu", out=str(tmp_path / "whole"), layout="channels_last")
    )
    train(
        shaped,
        settings,
        Options(device="cpu", out=str(tmp_path / "parts"), stop_after=1, layout="channels_last"),
    )
    resumed = train(shaped, settings, Options(device="cpu", out=str(tmp_path / "parts"), resume=True))
    assert resumed.layout == "channels_last"
    expected, actual = whole.model.state_dict(), resumed.model.state_dict()
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
    assert [m.train_loss for m in resumed.history] == [m.train_loss for m in whole.history]


BATCHNORM_DROPOUT_CNN = """
model Normed {
    input [1, 28, 28]
    conv(8, kernel=3) batchnorm relu maxpool(2)
    conv(8, kernel=3) batchnorm relu
    flatten dropout(0.3) linear(10)
    train { dataset = "fashion-mnist" epochs = 1 batch = 64 optimizer = sgd(lr=0.05, momentum=0.9) }
}
"""


@needs_torch
@needs_fashion
def test_a_run_that_times_the_layouts_is_the_run_in_the_layout_it_picked(
    tmp_path: Path, offline: Path
) -> None:
    """Timing runs real forward and backward passes (batch-norm statistics move, dropout draws
    random numbers); none of it may reach the run it precedes."""
    import torch

    from archdsl.pipeline import compile_file
    from archdsl.train.loop import Options, Quiet, train
    from archdsl.train.settings import Overrides, resolve

    shaped = compile_file(write_spec(tmp_path, BATCHNORM_DROPOUT_CNN)).model()
    settings = resolve(shaped, Overrides(limit=640, test_limit=200, seed=5))
    messages: list[str] = []

    class Listen(Quiet):
        def message(self, text: str) -> None:
            messages.append(text)

    timed = train(shaped, settings, Options(device="cpu"), Listen())
    assert timed.layout in ("contiguous", "channels_last")
    [said] = [m for m in messages if m.startswith("memory layout:")]
    assert re.fullmatch(
        rf"memory layout: {timed.layout} \(a training step took "
        r"contiguous [0-9.]+ ms, channels_last [0-9.]+ ms\)",
        said,
    )
    named = train(shaped, settings, Options(device="cpu", layout=timed.layout))
    expected, actual = named.model.state_dict(), timed.model.state_dict()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
    assert [m.train_loss for m in timed.history] == [m.train_loss for m in named.history]


@needs_torch
@needs_fashion
def test_a_named_layout_is_followed_untimed_and_an_unknown_one_is_a_usage_error(
    tmp_path: Path, offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, SMALL_CNN)
    code, text = run_cli(
        "train",
        spec,
        "--limit",
        "300",
        "--test-limit",
        "100",
        "--epochs",
        "1",
        "--layout",
        "contiguous",
        "--out",
        str(tmp_path / "a"),
    )
    assert code == 0, text
    assert "memory layout: contiguous\n" in text
    capsys.readouterr()
    code, _ = run_cli("train", spec, "--layout", "rows", "--out", str(tmp_path / "b"))
    assert code == 2 and "argument --layout: invalid choice: 'rows'" in capsys.readouterr().err


@needs_torch
@needs_fashion
def test_killed_run_leaves_a_checkpoint_that_loads_and_resumes(tmp_path: Path, offline: Path) -> None:
    from archdsl.train import checkpoint

    spec, out = write_spec(tmp_path, SMALL_CNN), tmp_path / "run"
    command = [PYTHON, "-m", "archdsl", "train", spec, "--limit", "600", "--epochs", "500", "--out", str(out)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (out / "checkpoint.pt").exists():
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "no checkpoint after 60 s"
            time.sleep(0.05)
        time.sleep(0.3)  # let it get into a later epoch (and perhaps the middle of a write)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    state = checkpoint.load(out / "checkpoint.pt")
    epoch = int(state["epoch"])
    assert epoch >= 1 and len(state["history"]) == epoch
    code, text = run_cli(
        "train", spec, "--limit", "600", "--epochs", str(epoch + 1), "--out", str(out), "--resume"
    )
    assert code == 0, text
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == list(range(1, epoch + 2))


@needs_torch
def test_corrupt_checkpoint_on_resume_is_a_clear_error(
    tmp_path: Path, offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"PK\x03\x04 not really a zip")
    code, _ = run_cli("train", write_spec(tmp_path, SMALL_CNN), "--out", str(out), "--resume")
    err = capsys.readouterr().err
    assert code == 1
    assert "checkpoint is unreadable" in err and "Traceback" not in err


@needs_torch
def test_resume_without_checkpoint_is_a_clear_error(
    tmp_path: Path, offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_cli("train", write_spec(tmp_path, SMALL_CNN), "--out", str(tmp_path / "x"), "--resume")
    assert code == 1
    assert "no checkpoint to resume from" in capsys.readouterr().err


@needs_torch
@needs_fashion
def test_an_earlier_run_is_refused_unless_resumed_or_forced(
    tmp_path: Path, offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, out = write_spec(tmp_path, STUCK), tmp_path / "run"
    fast = ["--limit", "64", "--test-limit", "64", "--out", str(out)]
    assert run_cli("train", spec, *fast)[0] == 0
    (out / "notes.txt").write_text("mine")
    before = (out / "metrics.jsonl").read_bytes()
    code, _ = run_cli("train", spec, *fast)
    assert code == 1
    assert capsys.readouterr().err == (
        f"archdsl: error: {out} holds an earlier run (checkpoint.pt, model.pt, metrics.jsonl, metrics.csv, "
        "curves.png, confusion.png, report.md, report.json, layers.png): continue it with --resume, "
        "replace it with --force, or choose another --out\n"
    )
    assert (out / "metrics.jsonl").read_bytes() == before
    code, text = run_cli("train", spec, *fast, "--force", "--seed", "5")
    assert code == 0, text
    assert json.loads((out / "report.json").read_text())["recipe"]["seed"] == 5
    assert (out / "notes.txt").read_text() == "mine"  # only the run's own files are replaced
    assert run_cli("train", spec, *fast, "--resume", "--force")[0] == 2  # one or the other


def test_a_fresh_or_empty_output_directory_needs_no_flag(tmp_path: Path) -> None:
    from archdsl.train.loop import prepare_out

    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "data.csv").write_text("not a run's file")
    for out in ("missing", "empty", "other"):
        prepare_out(tmp_path / out, resume=False, force=False)


@needs_torch
@needs_fashion
def test_nan_loss_stops_training_naming_epoch_and_step(
    tmp_path: Path, offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = SMALL_CNN.replace("lr=0.05, momentum=0.9", "lr=1e37")
    code, _ = run_cli("train", write_spec(tmp_path, spec), "--limit", "1000", "--out", str(tmp_path / "o"))
    err = capsys.readouterr().err
    assert code == 1
    assert "at epoch 1, step " in err and "lower learning rate" in err and "--lr 1e+36" in err
    assert "Traceback" not in err


STUCK = """
model Stuck {
    input [1, 28, 28]
    flatten dropout(1) linear(10)
    train { dataset = "fashion-mnist" epochs = 1 batch = 16 optimizer = sgd(lr=0.01) }
}
"""


@needs_torch
@needs_fashion
def test_loss_stuck_at_chance_is_reported_after_the_epoch_line_and_limit_keeps_the_test_set_whole(
    tmp_path: Path, offline: Path
) -> None:
    # dropout(1) zeroes every feature in training: only the bias learns, and the classes are
    # balanced, so the loss stays at ln(10) through all 75 steps.
    out = tmp_path / "o"
    code, text = run_cli("train", write_spec(tmp_path, STUCK), "--limit", "1200", "--out", str(out))
    assert code == 0
    layout, *lines = text.splitlines()
    assert layout.startswith("memory layout: ")
    assert lines[0].startswith("epoch 1: train loss 2.30")
    assert lines[1].startswith(
        "warning: epoch 1: the training loss sat at ln(10) = 2.303 (chance level, accuracy "
    )
    assert lines[1].endswith(
        "%) through the last 38 of its 75 steps: the network is not learning. Try a lower learning "
        "rate, another --seed, or momentum"
    )
    # --limit shrinks the training set only: the test set is Fashion-MNIST's whole 10,000 images.
    assert sum(map(sum, json.loads((out / "report.json").read_text())["confusion"])) == 10_000


@needs_torch
@pytest.mark.parametrize(
    ("losses", "accuracy", "expected"),
    [
        ([2.31, 2.30, 2.29, 2.28, 2.27], 0.10, False),  # 5 steps whose loss falls: too few to judge
        ([2.3026] * 49, 0.10, False),  # flat, but under 50 steps
        ([2.3026] * 100, 0.10, True),  # flat at ln(10) for 100 steps
        ([2.30 - 0.008 * i for i in range(100)], 0.15, False),  # leaves chance level
        ([2.3026] * 100, 0.30, False),  # at chance loss but learning to rank the classes
    ],
)
def test_not_learning_is_judged_over_the_late_steps_of_a_long_enough_epoch(
    losses: list[float], accuracy: float, expected: bool
) -> None:
    import torch

    from archdsl.train.loop import stalled
    from archdsl.train.metrics import EpochMetrics

    row = EpochMetrics(1, 0.1, sum(losses) / len(losses), accuracy, 1.0, 1.0, 2.3, 0.1, 1.0, 1.0)
    assert (stalled(torch.tensor(losses), row, 10) is not None) == expected


@needs_torch
def test_missing_data_says_where_to_put_the_files(
    tmp_path: Path, offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if Path("/usr/share/datasets/mnist").exists():
        pytest.skip("MNIST is installed here")
    spec = SMALL_CNN.replace('"fashion-mnist"', '"mnist"')
    root = tmp_path / "empty"
    code, _ = run_cli(
        "train", write_spec(tmp_path, spec), "--data-root", str(root), "--out", str(tmp_path / "o")
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "no mnist data found" in err
    assert "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, " in err
    assert f"in {root}" in err and "dataset-mnist" in err and "Traceback" not in err


@needs_torch
def test_compile_on_the_cpu_without_a_cxx_compiler_says_what_to_install(
    tmp_path: Path, offline: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CXX", "no-such-c++")
    out = tmp_path / "o"
    code, _ = run_cli(
        "train", write_spec(tmp_path, SMALL_CNN), "--compile", "--device", "cpu", "--out", str(out)
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err == (
        "archdsl: error: --compile on the CPU needs a C++ compiler and `no-such-c++` was not found: "
        "install one (apt-get install g++), point CXX at yours, or train without --compile\n"
    )
    assert not out.exists()


@needs_torch
@needs_fashion
def test_input_shape_that_does_not_match_the_dataset_is_reported_before_training(
    tmp_path: Path, offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = SMALL_CNN.replace("input [1, 28, 28]", "input [1, 32, 32]")
    out = tmp_path / "o"
    code, _ = run_cli("train", write_spec(tmp_path, spec), "--out", str(out))
    err = capsys.readouterr().err
    assert code == 1
    assert "takes input [1, 32, 32] but fashion-mnist gives images of [1, 28, 28]" in err
    assert "add resize = 32 to the train section" in err
    assert not out.exists()


@needs_torch
@needs_fashion
def test_spec_without_train_section_uses_defaults_and_says_so(tmp_path: Path, offline: Path) -> None:
    spec = "model Bare { input [1, 28, 28] flatten linear(10) }"
    code, text = run_cli(
        "train", write_spec(tmp_path, spec), "--epochs", "1", "--limit", "600", "--out", str(tmp_path / "o")
    )
    assert code == 0, text
    assert text.startswith("note: model Bare has no train section, so defaults are used; ")
    assert "dataset fashion-mnist (guessed from the input shape [1, 28, 28])" in text
    assert "default optimizer sgd(lr=0.01, momentum=0.9)" in text and "default epochs" not in text


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--lr", "0"), ("--epochs", "-1"), ("--batch", "x"), ("--seed", "-2"), ("--lr", "nan")],
)
def test_bad_flag_value_is_a_usage_error(
    flag: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_cli("train", write_spec(tmp_path, SMALL_CNN), flag, value)
    err = capsys.readouterr().err
    assert code == 2
    assert f"argument {flag}: expected" in err and "Traceback" not in err


def image_folder(root: Path, per_class: int = 40) -> Path:
    """Two classes a small network can tell apart (a bright left or right half), drawn at several
    sizes and in colour, as photos in a folder come: the runner must bring them to the model's input."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, name in enumerate(("left", "right")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            h, w = (12, 16) if i % 2 else (20, 14)
            pixels = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
            half = slice(0, w // 2) if label == 0 else slice(w // 2, w)
            pixels[:, half] += 150
            Image.fromarray(pixels, "RGB").save(root / name / f"{i:03}.png")
    return root


FOLDER_NET = """
model Halves {
    input [1, 8, 8]
    conv(4, kernel=3, padding=1) relu maxpool(2) flatten linear(2) LAST
    train { dataset = imagefolder("FOLDER") resize = 8 epochs = 4 batch = 16 optimizer = adam(lr=0.01) LOSS }
}
"""


@needs_torch
@pytest.mark.parametrize(("last", "loss"), [("", ""), ("logsoftmax", "loss = nll")])
def test_imagefolder_of_mixed_sizes_is_resized_and_learns(
    last: str, loss: str, tmp_path: Path, offline: Path
) -> None:
    folder = image_folder(tmp_path / "photos")
    spec = FOLDER_NET.replace("FOLDER", str(folder)).replace("LAST", last).replace("LOSS", loss)
    out = tmp_path / "o"
    code, text = run_cli("train", write_spec(tmp_path, spec), "--out", str(out), "--seed", "1")
    assert code == 0, text
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    # every 10th image of each class (in name order) is held out: 4 + 4 test images
    assert report["classes"] == ["left", "right"]
    assert sum(map(sum, report["confusion"])) == 8
    assert report["test_accuracy"] >= 0.875, report["confusion"]


@needs_torch
def test_imagefolder_of_mixed_sizes_without_resize_says_to_add_it(
    tmp_path: Path, offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = image_folder(tmp_path / "photos", per_class=4)
    spec = FOLDER_NET.replace("FOLDER", str(folder)).replace("resize = 8 ", "").replace("LAST", "")
    code, _ = run_cli("train", write_spec(tmp_path, spec.replace("LOSS", "")), "--out", str(tmp_path / "o"))
    assert code == 1
    assert capsys.readouterr().err == (
        f"archdsl: error: imagefolder('{folder}'): images of 2 different sizes (12×16, 20×14); "
        "add resize = [h, w] to the train section to bring them to one size\n"
    )


def cifar_folder(root: Path, per_batch: int = 24) -> Path:
    """CIFAR-10's python layout (cifar-10-batches-py/data_batch_1..5, test_batch) with a few images
    per batch whose class shows in their mean colour, pickled the way the published files are."""
    import pickle

    import numpy as np

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [i % 10 for i in range(per_batch)]
        images = rng.integers(0, 50, size=(per_batch, 3 * 32 * 32), dtype=np.uint8)
        images += np.array(labels, dtype=np.uint8)[:, None] * 20
        batch = {
            "batch_label": name,
            "labels": labels,
            "data": images,
            "filenames": [f"{i}.png" for i in labels],
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
    return root


CIFAR_NET = """
model Tiny {
    input [3, 32, 32]
    conv(8, kernel=3, padding=1) relu adaptiveavgpool(1) flatten linear(10)
    train {
        dataset = "cifar10" augment = [crop(padding=4), flip] epochs = 2 batch = 32
        optimizer = sgd(lr=0.05, momentum=0.9)
    }
}
"""


@needs_torch
def test_cifar10_batches_in_the_data_root_train_with_augmentation(tmp_path: Path, offline: Path) -> None:
    root = cifar_folder(tmp_path / "cifar")
    out = tmp_path / "o"
    code, text = run_cli(
        "train", write_spec(tmp_path, CIFAR_NET), "--data-root", str(root), "--out", str(out)
    )
    assert code == 0, text
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["classes"][:3] == ["airplane", "automobile", "bird"]
    assert sum(map(sum, report["confusion"])) == 24  # the whole test batch
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]


@needs_torch
def test_a_cifar_batch_that_names_other_code_is_refused_not_run(
    tmp_path: Path, offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pickle

    root = cifar_folder(tmp_path / "cifar", per_batch=2)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    with open(root / "cifar-10-batches-py" / "data_batch_3", "wb") as handle:
        pickle.dump(Payload(), handle, protocol=2)
    code, _ = run_cli(
        "train", write_spec(tmp_path, CIFAR_NET), "--data-root", str(root), "--out", str(tmp_path / "o")
    )
    err = capsys.readouterr().err
    assert code == 1
    assert (
        f"{root / 'cifar-10-batches-py' / 'data_batch_3'}: not a CIFAR-10 batch (UnpicklingError: it names "
        in err
    )
    assert "which a CIFAR-10 batch does not hold)" in err and "Traceback" not in err
    assert not marker.exists()


@needs_fashion
def test_torchrun_two_cpu_processes_train_and_write_one_set_of_outputs(tmp_path: Path) -> None:
    torchrun = shutil.which("torchrun", path=os.path.dirname(PYTHON))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    out = tmp_path / "run"
    command = [torchrun, "--nproc_per_node=2", "-m", "archdsl", "train", write_spec(tmp_path, SMALL_CNN)]
    command += ["--epochs", "1", "--limit", "2000", "--device", "cpu", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ARCHDSL_NO_DOWNLOAD": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("test accuracy:") == 1  # only rank 0 reports
    assert "trained on cpu on 2 processes" in result.stdout
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 1 and json.loads(rows[0])["test_accuracy"] > 0.5
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt",
        "confusion.png",
        "curves.png",
        "layers.png",
        "metrics.csv",
        "metrics.jsonl",
        "model.pt",
        "report.json",
        "report.md",
    ]


@needs_torch
@pytest.mark.parametrize("epochs", [1, 2, 7, 30])
def test_curves_have_integer_epoch_ticks(epochs: int) -> None:
    from archdsl.train.metrics import EpochMetrics, curves_figure

    history = [EpochMetrics(e, 0.1, 1.0 / e, 0.5, 1.0, 1.0, 1.0, 0.5, 1.0, 1.0) for e in range(1, epochs + 1)]
    figure = curves_figure(history, "t")
    for axes in figure.axes:
        low, high = axes.get_xlim()
        shown = [t for t in axes.get_xticks() if low <= t <= high]
        assert shown and all(float(t).is_integer() for t in shown), shown
        assert 1 in shown or epochs > 10
    import matplotlib.pyplot as plt

    plt.close(figure)


# --- segmentation and reconstruction ---------------------------------------------------------------


@needs_torch
def test_pixel_accuracy_and_mean_iou_of_hand_made_masks() -> None:
    import torch

    from archdsl.train.loop import confusion_of
    from archdsl.train.metrics import class_iou, mean_iou, pixel_accuracy

    # Two 2×3 masks, 4 classes; class 3 is neither present nor predicted.
    truth = torch.tensor([[[0, 0, 1], [1, 2, 2]], [[0, 0, 0], [1, 1, 2]]])
    predicted = torch.tensor([[[0, 1, 1], [1, 2, 0]], [[0, 0, 0], [1, 2, 2]]])
    confusion = confusion_of(predicted, truth, 4).tolist()
    assert confusion == [[4, 1, 0, 0], [0, 3, 1, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert pixel_accuracy(confusion) == 9 / 12
    # IoU = TP / (TP + FP + FN): class 0: 4 / (4 + 1 + 1), class 1: 3 / (3 + 1 + 1), class 2: 2 / (2 + 1 + 1)
    assert class_iou(confusion) == [4 / 6, 3 / 5, 2 / 4, None]
    assert mean_iou(confusion) == pytest.approx((4 / 6 + 3 / 5 + 2 / 4) / 3)  # class 3 left out
    perfect = confusion_of(truth, truth, 3).tolist()
    assert (pixel_accuracy(perfect), mean_iou(perfect)) == (1.0, 1.0)


@needs_torch
def test_segmentation_masks_label_pixels_above_the_threshold_with_the_class_plus_one() -> None:
    import torch

    from archdsl.train.data import SEGMENTATION_THRESHOLD, masks_of

    assert SEGMENTATION_THRESHOLD == 10  # docs/training.md states it
    images = torch.tensor([[0, 9, 10, 11], [255, 10, 11, 0]], dtype=torch.uint8).reshape(2, 1, 1, 4)
    masks = masks_of(images, torch.tensor([0, 9]))
    assert masks.dtype == torch.uint8
    assert masks.tolist() == [[[0, 0, 0, 1]], [[10, 0, 10, 0]]]


@needs_torch
@needs_fashion
def test_the_fashion_mnist_segmentation_set_is_derived_from_the_installed_files(offline: Path) -> None:
    import torch

    from archdsl.train import data
    from archdsl.trainspec import DatasetSpec

    plain = data.load(DatasetSpec(name="fashion-mnist"), None, 1)
    derived = data.load(DatasetSpec(name="fashion-mnist-segmentation"), None, 1)
    assert derived.classes == ["background", *data.CLASSES["fashion-mnist"]]
    assert derived.masks and not plain.masks
    for split, source in ((derived.train, plain.train), (derived.test, plain.test)):
        assert torch.equal(split.images, source.images)
        assert split.labels.shape == (len(source), 28, 28)
        expected = torch.where(source.images[:, 0] > 10, (source.labels + 1).reshape(-1, 1, 1), 0)
        assert torch.equal(split.labels.long(), expected)
    # every image holds its item and background, and nothing of another item
    test = derived.test.labels.long()
    present = test.reshape(len(test), -1).amax(1)
    assert torch.equal(present, plain.test.labels + 1)
    assert bool((test.reshape(len(test), -1) == 0).any(1).all())


@needs_torch
def test_the_pipeline_moves_masks_with_their_images_through_resize_crop_and_flip() -> None:
    import torch

    from archdsl.train.data import Dataset, Pipeline, Split
    from archdsl.trainspec import AugmentSpec

    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 1, 12, 10), generator=generator, dtype=torch.uint8)
    images[torch.rand(images.shape, generator=generator) < 0.4] = 0
    masks = torch.where(images[:, 0] > 0, 3, 0).to(torch.uint8)
    dataset = Dataset(
        "t", Split(images, masks), Split(images, masks), ["b", "x", "y", "z"], "", (0.5,), (0.2,)
    )
    for resize in (None, (24, 20)):
        pipeline = Pipeline(
            torch.device("cpu"),
            True,
            dataset,
            resize,
            AugmentSpec(crop_padding=3, flip=0.5),
            False,
            torch.Generator().manual_seed(1),
        )
        x, y = pipeline.pair(images, masks, train=True)
        assert y is not None and y.dtype == torch.int64 and y.shape == (16, *x.shape[-2:])
        if resize is None:  # the same crop and flip moved both: a pixel is masked where it is lit
            assert torch.equal(pipeline.pixels(x)[:, 0] > 0, y == 3)
        assert set(y.unique().tolist()) <= {0, 3}
        # without augmentation the masks come back as given (resized by nearest neighbour)
        _, plain = pipeline.pair(images, masks, train=False)
        assert plain is not None
        assert torch.equal(plain[:, ::2, ::2] if resize else plain, masks.long())


@needs_torch
def test_a_model_with_several_outputs_trains_on_out_or_its_first(tmp_path: Path) -> None:
    import torch

    from archdsl.pipeline import compile_file
    from archdsl.train.loop import primary, primary_shape

    a, b = torch.zeros(1), torch.ones(1)
    assert primary({"aux": a, "out": b}) is b
    assert primary({"main": a, "aux": b}) is a
    assert primary((a, b)) is a and primary(b) is b
    body = "input [1, 4, 4] conv(3, kernel=1) as a\n a -> conv(5, kernel=1) as b\n"
    for outputs, shape in (("aux: a, out: b", (5, 4, 4)), ("a, b", (3, 4, 4))):
        spec = write_spec(tmp_path, f"model M {{ {body} output {outputs} }}")
        assert primary_shape(compile_file(spec).model()) == shape


def test_the_task_follows_the_dataset_and_sets_the_loss_and_normalisation() -> None:
    from archdsl.pipeline import compile_file
    from archdsl.train.settings import Overrides, resolve

    unet = resolve(compile_file(str(ROOT / "specs" / "unet_small.arch")).model())
    assert (unet.task, unet.dataset.name, unet.loss.name) == (
        "segmentation",
        "fashion-mnist-segmentation",
        "cross_entropy",
    )
    assert unet.normalize is True and unet.recipe()["task"] == "segmentation"
    autoencoder = resolve(compile_file(str(ROOT / "specs" / "autoencoder.arch")).model())
    assert (autoencoder.task, autoencoder.loss.name, autoencoder.normalize) == (
        "reconstruction",
        "mse",
        False,
    )
    assert "normalize false (a reconstruction's target is its input, pixels in [0, 1])" in autoencoder.notes
    lenet = compile_file(str(ROOT / "specs" / "lenet5.arch")).model()
    assert resolve(lenet).task == "classification"
    assert resolve(lenet, Overrides(task="reconstruction")).loss.name == "mse"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            'task = "segmentation" dataset = "fashion-mnist"',
            "train setting 'dataset' must be 'fashion-mnist-segmentation' (images with a class per pixel) "
            'for task "segmentation", got "fashion-mnist"',
        ),
        (
            'dataset = "fashion-mnist-segmentation" task = "classification"',
            "train setting 'dataset' must be one of 'mnist', 'fashion-mnist', 'cifar10' or "
            'imagefolder("path") for task "classification", got "fashion-mnist-segmentation" '
            '(a segmentation dataset, for task "segmentation")',
        ),
        (
            'dataset = "fashion-mnist-seg"',
            "train setting 'dataset' must be one of 'mnist', 'fashion-mnist', 'cifar10' or "
            'imagefolder("path"), got "fashion-mnist-seg"; did you mean \'fashion-mnist-segmentation\'?',
        ),
        (
            'task = "segmenting"',
            "train setting 'task' must be one of 'classification', 'segmentation', 'reconstruction', "
            "got \"segmenting\"; did you mean 'segmentation'?",
        ),
        (
            'dataset = "fashion-mnist-segmentation" loss = mse',
            "train setting 'loss' must be cross_entropy or nll for task \"segmentation\", got mse",
        ),
        (
            'task = "reconstruction" loss = nll',
            "train setting 'loss' must be mse or l1 for task \"reconstruction\", got nll",
        ),
    ],
)
def test_a_dataset_or_loss_that_does_not_fit_the_task_is_a_check_error(
    settings: str, message: str, tmp_path: Path
) -> None:
    from archdsl.pipeline import compile_file

    text = f"model M {{ input [1, 28, 28] flatten linear(10) train {{ {settings} }} }}"
    program = compile_file(write_spec(tmp_path, text))
    assert [(d.code, d.message) for d in program.diagnostics] == [("E012", message)]


@needs_torch
def test_a_task_flag_that_does_not_fit_the_spec_is_refused_before_loading_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_cli(
        "train", write_spec(tmp_path, SMALL_CNN), "--task", "segmentation", "--data-root", "/nowhere"
    )
    assert code == 1
    assert capsys.readouterr().err == (
        "archdsl: error: --task segmentation: the spec's setting 'dataset' must be "
        "'fashion-mnist-segmentation' (images with a class per pixel) for task \"segmentation\", "
        'got "fashion-mnist"\n'
    )


# The output the run trains on, "out", comes second: taking the first ([8, 28, 28]) would fail.
SEGMENTER = """
model Segmenter {
    input [1, 28, 28]
    conv(8, kernel=3, padding=1) relu as features
    conv(11, kernel=1) as logits
    train { dataset = "fashion-mnist-segmentation" epochs = 1 batch = 16 optimizer = adam(lr=0.01) }
    output aux: features, out: logits
}
"""


@needs_torch
@needs_fashion
def test_short_segmentation_run_reports_pixel_accuracy_and_mean_iou_and_draws_masks(
    tmp_path: Path, offline: Path
) -> None:
    from PIL import Image

    from archdsl.train.metrics import mean_iou, pixel_accuracy

    out = tmp_path / "run"
    code, text = run_cli(
        "train", write_spec(tmp_path, SEGMENTER), "--limit", "320", "--test-limit", "64", "--out", str(out)
    )
    assert code == 0, text
    (row,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert list(row) == [
        "epoch", "lr", "train_loss", "train_accuracy", "train_time", "train_images_per_s",
        "test_loss", "test_accuracy", "test_time", "test_images_per_s", "test_mean_iou",
    ]  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    confusion = report["confusion"]
    assert len(confusion) == 11 and sum(map(sum, confusion)) == 64 * 28 * 28  # every test pixel
    assert report["test_pixel_accuracy"] == pixel_accuracy(confusion) == row["test_accuracy"]
    assert report["test_mean_iou"] == mean_iou(confusion) == row["test_mean_iou"]
    # 20 steps teach a convolution to tell the items from the background by their brightness (which
    # item it is takes longer).
    assert report["per_class_iou"]["background"] > 0.75, report["per_class_iou"]
    assert f"test pixel accuracy: {100 * report['test_pixel_accuracy']:.2f} %" in text
    assert "| Ankle boot  |" in (out / "report.md").read_text()
    epoch = next(line for line in text.splitlines() if line.startswith("epoch 1: "))
    assert re.fullmatch(
        r"epoch 1: train loss [\d.]+ pixel acc [\d.]+% \(.* img/s, .* s\) \| "
        r"test loss [\d.]+ pixel acc [\d.]+% mean IoU [\d.]+%",
        epoch,
    ), epoch
    with Image.open(out / "masks.png") as picture:
        assert picture.format == "PNG" and picture.size[0] > 2 * picture.size[1]


@needs_torch
@needs_fashion
def test_segmentation_resume_ends_with_the_same_weights_as_an_uninterrupted_run(
    tmp_path: Path, offline: Path
) -> None:
    import torch

    from archdsl.pipeline import compile_file
    from archdsl.train.loop import Options, train
    from archdsl.train.settings import Overrides, resolve
    from archdsl.trainspec import AugmentSpec

    shaped = compile_file(write_spec(tmp_path, SEGMENTER.replace("epochs = 1", "epochs = 2"))).model()
    # Crops and flips move the masks with the images: their random states must resume too.
    settings = dataclasses.replace(
        resolve(shaped, Overrides(limit=192, test_limit=32, seed=2)),
        augment=AugmentSpec(crop_padding=2, flip=0.5),
    )
    whole = train(shaped, settings, Options(device="cpu", layout="contiguous"))  # writes no files
    parts = Options(device="cpu", out=str(tmp_path / "parts"), stop_after=1, layout="contiguous")
    train(shaped, settings, parts)
    resumed = train(shaped, settings, Options(device="cpu", out=str(tmp_path / "parts"), resume=True))
    expected, actual = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
    assert [m.test_mean_iou for m in resumed.history] == [m.test_mean_iou for m in whole.history]
    assert resumed.test_metrics == whole.test_metrics and (tmp_path / "parts" / "masks.png").exists()


@needs_torch
@needs_fashion
def test_short_reconstruction_run_reports_the_test_mse_of_output_to_input(
    tmp_path: Path, offline: Path
) -> None:
    import torch

    import archdsl
    from archdsl.train import data
    from archdsl.trainspec import DatasetSpec

    out = tmp_path / "run"
    spec = str(ROOT / "specs" / "autoencoder.arch")
    code, text = run_cli(
        "train", spec, "--epochs", "1", "--limit", "512", "--test-limit", "64", "--out", str(out)
    )
    assert code == 0, text
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert header == (
        "epoch,lr,train_loss,train_time,train_images_per_s,test_loss,test_time,test_images_per_s,test_mse"
    )
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "reconstruction" and report["units"] == "pixel values in [0, 1]"
    # The MSE is the trained model's output against its input, pixels scaled to [0, 1].
    model = archdsl.build(spec)
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    images = data.load(DatasetSpec(name="fashion-mnist"), None, 1).test.images[:64].float() / 255
    with torch.no_grad():
        expected = float(torch.nn.functional.mse_loss(model.eval()(images), images))
    assert report["test_mse"] == pytest.approx(expected, rel=1e-4)
    assert f"test MSE: {report['test_mse']:.6f} (pixel values in [0, 1])" in text
    assert (out / "reconstructions.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / "confusion.png").exists()
