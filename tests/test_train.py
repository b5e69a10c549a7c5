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

from conftest import ROOT, needs_fashion, run_cli, write_spec

PYTHON = sys.executable

SMALL_CNN = """
model Small {
    input [1, 28, 28]
    conv(8, kernel=3) relu maxpool(2)
    flatten dropout(0.1) linear(10)
    train { dataset = "fashion-mnist" epochs = 2 batch = 64 optimizer = sgd(lr=0.05, momentum=0.9) }
}
"""


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


@needs_fashion
def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(tmp_path: Path, offline: Path) -> None:
    import torch

    from archdsl.program import compile_file
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


@needs_fashion
def test_a_run_that_times_the_layouts_is_the_run_in_the_layout_it_picked(
    tmp_path: Path, offline: Path
) -> None:
    """Timing runs real forward and backward passes (batch-norm statistics move, dropout draws
    random numbers); none of it may reach the run it precedes."""
    import torch

    from archdsl.program import compile_file
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


def test_resume_without_checkpoint_is_a_clear_error(
    tmp_path: Path, offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_cli("train", write_spec(tmp_path, SMALL_CNN), "--out", str(tmp_path / "x"), "--resume")
    assert code == 1
    assert "no checkpoint to resume from" in capsys.readouterr().err


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
        "curves.png, confusion.png, report.md, report.json): continue it with --resume, replace it with "
        "--force, or choose another --out\n"
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


@pytest.mark.parametrize(
    ("losses", "accuracy", "stalled"),
    [
        ([2.31, 2.30, 2.29, 2.28, 2.27], 0.10, False),  # 5 steps whose loss falls: too few to judge
        ([2.3026] * 49, 0.10, False),  # flat, but under 50 steps
        ([2.3026] * 100, 0.10, True),  # flat at ln(10) for 100 steps
        ([2.30 - 0.008 * i for i in range(100)], 0.15, False),  # leaves chance level
        ([2.3026] * 100, 0.30, False),  # at chance loss but learning to rank the classes
    ],
)
def test_not_learning_is_judged_over_the_late_steps_of_a_long_enough_epoch(
    losses: list[float], accuracy: float, stalled: bool
) -> None:
    import torch

    from archdsl.train.loop import _stalled
    from archdsl.train.metrics import EpochMetrics

    row = EpochMetrics(1, 0.1, sum(losses) / len(losses), accuracy, 1.0, 1.0, 2.3, 0.1, 1.0, 1.0)
    assert (_stalled(torch.tensor(losses), row, 10) is not None) == stalled


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
        "metrics.csv",
        "metrics.jsonl",
        "model.pt",
        "report.json",
        "report.md",
    ]


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
