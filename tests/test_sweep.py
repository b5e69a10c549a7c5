"""`archdsl sweep`: the SPACE grammar, names checked before any trial, the best spec written with
its values, and real sweeps on Optuna (LeNet-5 on Fashion-MNIST) that a second run continues."""

from __future__ import annotations

import csv
import importlib.util
import re
import time
from pathlib import Path

import pytest

from archdsl import sweep
from archdsl.loader import Loader
from archdsl.pipeline import compile_file
from archdsl.sweep import SPACE_GRAMMAR, Space, SweepUsage, parse_param
from archdsl.train.settings import resolve

from conftest import ROOT, needs_fashion, needs_torch, run_cli, write_spec

needs_optuna = pytest.mark.skipif(importlib.util.find_spec("optuna") is None, reason="needs archdsl[sweep]")
WIDTH = str(ROOT / "specs" / "lenet5_width.arch")
#: A few seconds a trial: 256 training images, 128 test images, one epoch.
SHORT = ("--limit", "256", "--test-limit", "128", "--epochs", "1", "--batch", "64")


# --- the SPACE grammar ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "space"),
    [
        ("width=16,32,64", Space("width", choices=(16, 32, 64))),
        ("act=relu, gelu", Space("act", choices=("relu", "gelu"))),
        ("flag=true,false", Space("flag", choices=(True, False))),
        ("width=16", Space("width", choices=(16,))),
        ("lr=0.01..0.5", Space("lr", low=0.01, high=0.5)),
        ("lr=0.001..0.1:log", Space("lr", low=0.001, high=0.1, log=True)),
        ("width=1..4", Space("width", low=1, high=4, integer=True)),
        ("batch=16..256:log", Space("batch", low=16, high=256, log=True, integer=True)),
        ("momentum=0..0.99", Space("momentum", low=0, high=0.99)),
    ],
)
def test_space_grammar_reads_choices_uniform_log_and_integer_ranges(text: str, space: Space) -> None:
    assert parse_param(text) == space


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("lr", "--param takes NAME=SPACE, got 'lr'"),
        ("2x=1,2", "--param takes NAME=SPACE, got '2x=1,2'"),
        ("width=", "'width=': an empty value"),
        ("width=1,,2", "'width=1,,2': an empty value"),
        ("lr=0.5..0.1", "'lr=0.5..0.1': the range's low bound must be below its high bound"),
        ("lr=a..1", "'lr=a..1': the bound 'a' is not a number"),
        ("lr=0..1:log", "'lr=0..1:log': a log-uniform range needs bounds above 0"),
        ("lr=0.1..1:exp", "'lr=0.1..1:exp': unknown scale ':exp' (only ':log')"),
    ],
)
def test_bad_space_is_refused_with_the_grammar(text: str, problem: str) -> None:
    with pytest.raises(SweepUsage) as caught:
        parse_param(text)
    assert str(caught.value) == f"{problem}; {SPACE_GRAMMAR}"


def test_bad_space_on_the_command_line_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_cli("sweep", WIDTH, "--trials", "1", "--param", "lr=1..0.1")
    assert code == 2
    assert capsys.readouterr().err == (
        f"archdsl: error: 'lr=1..0.1': the range's low bound must be below its high bound; {SPACE_GRAMMAR}\n"
    )


def test_sweep_without_a_param_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("sweep", WIDTH, "--trials", "1")[0] == 2
    assert capsys.readouterr().err == (
        f"archdsl: error: sweep needs at least one --param NAME=SPACE; {SPACE_GRAMMAR}\n"
    )


def test_sweep_without_optuna_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name, *a)
    )
    assert run_cli("sweep", WIDTH, "--trials", "1", "-p", "width=1,2")[0] == 2
    assert capsys.readouterr().err == (
        "archdsl: error: archdsl sweep needs optuna, which is not installed: pip install 'archdsl[sweep]'\n"
    )


# --- names ----------------------------------------------------------------------------------------


@needs_optuna
def test_unknown_name_is_a_usage_error_naming_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_cli("sweep", WIDTH, "--trials", "1", "-p", "widht=1,2", "-o", str(tmp_path / "s"))
    assert code == 2
    assert capsys.readouterr().err == (
        "archdsl: error: --param widht: neither a parameter of model LeNet5Width (width, classes) nor a "
        "train setting (lr, momentum, weight_decay, epochs, batch, seed); did you mean 'width'?\n"
    )
    assert not (tmp_path / "s").exists()


@needs_optuna
@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("-p", "width=1.5,2"), "--param width=1.5,2: width takes whole numbers, so give integers"),
        (
            ("-p", "epochs=1..3", "--epochs", "2"),
            "--param epochs sweeps what --epochs fixes: give one of them",
        ),
        (("-p", "lr=0.1,0.2", "-p", "lr=0.3"), "--param lr is given twice"),
    ],
)
def test_names_are_checked_before_any_trial(
    args: tuple[str, ...], problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_cli("sweep", WIDTH, "--trials", "1", "-o", str(tmp_path), *args)
    assert code == 2
    assert capsys.readouterr().err.startswith(f"archdsl: error: {problem}")


@needs_optuna
def test_momentum_is_refused_for_an_optimizer_without_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(
        tmp_path,
        "model Net {\n    input [1, 28, 28]\n    flatten linear(10)\n"
        "    train { optimizer = adam(lr=0.01) }\n}\n",
    )
    code, _ = run_cli("sweep", spec, "--trials", "1", "-p", "momentum=0.5..0.9", "-o", str(tmp_path / "s"))
    assert code == 2
    assert capsys.readouterr().err == (
        "archdsl: error: --param momentum: the optimizer adam has no momentum (only sgd has)\n"
    )
    assert not (tmp_path / "s").exists()


@needs_optuna
def test_storage_that_cannot_open_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s"
    code, _ = run_cli(
        "sweep", WIDTH, "--trials", "1", "-p", "width=1", "--storage", "nonsense", "-o", str(out)
    )
    assert code == 2 and not out.exists()
    assert capsys.readouterr().err == (
        "archdsl: error: --storage nonsense: Could not parse SQLAlchemy URL from given URL string\n"
    )


# --- the best spec --------------------------------------------------------------------------------


def _filled(tmp_path: Path, text: str, values: dict[str, sweep.Value]) -> str:
    path = write_spec(tmp_path, text)
    program = compile_file(path)
    (name,) = program.model_names
    settings = resolve(program.model(name))
    parameters = sweep.model_parameters(program, name)
    return sweep.fill(program.sources[program.path], program.model_defs[name], values, parameters, settings)


def test_fill_replaces_defaults_and_train_settings_in_place(tmp_path: Path) -> None:
    text = (
        "model Net(width: int = 4, scale: float = 1.0) {\n"
        "    input [1, 8, 8]\n"
        "    conv(width, kernel=3) flatten linear(10)\n"
        '    train { dataset = "fashion-mnist" epochs = 5 optimizer = sgd(lr=0.9, momentum=0.5) }\n'
        "}\n"
    )
    values: dict[str, sweep.Value] = {"width": 8, "scale": 1e-05, "lr": 0.25, "momentum": 0.0, "epochs": 2}
    assert _filled(tmp_path, text, values) == (
        "model Net(width: int = 8, scale: float = 1.0e-05) {\n"
        "    input [1, 8, 8]\n"
        "    conv(width, kernel=3) flatten linear(10)\n"
        '    train { dataset = "fashion-mnist" epochs = 2 optimizer = sgd(lr=0.25, momentum=0.0) }\n'
        "}\n"
    )


def test_fill_writes_what_the_spec_left_to_the_runner(tmp_path: Path) -> None:
    text = (
        "model Net(width: int = 8) {\n    input [1, 28, 28]\n    flatten linear(width) relu linear(10)\n}\n"
    )
    filled = _filled(tmp_path, text, {"width": 32, "lr": 0.5, "batch": 16})
    assert filled == (
        "model Net(width: int = 32) {\n    input [1, 28, 28]\n    flatten linear(width) relu linear(10)\n"
        "    train { batch = 16 optimizer = sgd(lr=0.5, momentum=0.9) }\n}\n"
    )
    adam = "model Net {\n    input [1, 28, 28]\n    flatten linear(10)\n    train { optimizer = adam }\n}\n"
    assert "train { optimizer = adam(lr=0.01, weight_decay=0.001) }" in _filled(
        tmp_path, adam, {"weight_decay": 0.001, "lr": 0.01}
    )
    call = adam.replace("optimizer = adam", "optimizer = adam() seed = 1")
    assert "train { optimizer = adam(lr=0.01) seed = 3 }" in _filled(tmp_path, call, {"lr": 0.01, "seed": 3})


def test_filled_spec_checks_with_the_values_as_its_defaults(tmp_path: Path) -> None:
    text = (
        "model Net(width: int = 8) {\n    input [1, 28, 28]\n    flatten linear(width) relu linear(10)\n}\n"
    )
    filled = _filled(tmp_path, text, {"width": 32, "lr": 0.5, "weight_decay": 0.0001, "epochs": 3})
    loader = Loader()
    loader.add_text(filled, str(tmp_path / "best.arch"))
    program = compile_file(str(tmp_path / "best.arch"), loader=loader)
    assert program.diagnostics == []
    model = program.model("Net")
    assert model.params == 28 * 28 * 32 + 32 + 32 * 10 + 10
    assert model.train is not None and model.train.optimizer is not None
    assert (model.train.optimizer.lr, model.train.optimizer.weight_decay, model.train.epochs) == (
        0.5,
        0.0001,
        3,
    )


def test_best_spec_is_formatted_checks_strictly_and_has_its_shape_comments_rewritten(tmp_path: Path) -> None:
    program = compile_file(WIDTH)
    request = sweep.Request(spec=WIDTH, model="LeNet5Width", spaces=(), trials=1, out=str(tmp_path))
    best = sweep.Row(
        number=7, value=0.8125, params={"width": 2, "lr": 0.05}, state="complete", epochs=2, seconds=1
    )
    outcome = sweep.Outcome(
        "LeNet5Width", "sqlite://", tmp_path, "test_accuracy", "maximize", [best], 0, 1, best
    )
    sweep.write_best(request, program, outcome, sweep.model_parameters(program, "LeNet5Width"))
    text = (tmp_path / "best.arch").read_text()
    assert text.startswith(
        "# The best of sweep LeNet5Width, written by archdsl sweep from lenet5_width.arch: trial 7, "
        "test_accuracy 0.8125, with width=2, lr=0.05\n"
    )
    assert "model LeNet5Width(width: int = 2, classes: int = 10) {" in text
    assert "conv(6 * width, kernel=5, padding=2) tanh  # [12, 28, 28]" in text
    assert "optimizer = sgd(lr=0.05)" in text
    assert run_cli("check", "--strict", str(tmp_path / "best.arch")) == (
        0,
        f"{tmp_path}/best.arch: LeNet5Width [1, 28, 28] → [10]: 244,362 params, 1.43 M MACs\n"
        "checked 1 file, 1 model: 0 errors, 0 warnings\n",
    )
    assert run_cli("fmt", "--check", str(tmp_path / "best.arch"))[0] == 0


# --- real sweeps ----------------------------------------------------------------------------------


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open() as file:
        return list(csv.DictReader(file))


@needs_torch
@needs_optuna
@needs_fashion
@pytest.mark.slow
def test_lenet5_sweep_writes_results_best_spec_and_plots_and_a_second_run_continues_it(
    tmp_path: Path, offline: Path
) -> None:
    out = tmp_path / "sweep"
    args = ("sweep", WIDTH, "-p", "width=1,2", "-p", "lr=0.05..1.0:log", *SHORT, "-o", str(out))
    code, text = run_cli(*args, "--trials", "3")
    assert code == 0, text
    lines = text.splitlines()
    assert (
        lines[0] == f"study LeNet5Width (0 trials so far) in sqlite:///{out}/study.db: maximize test_accuracy"
    )
    assert [line.split(" ")[:3] for line in lines[1:4]] == [["trial", str(n), "complete"] for n in range(3)]
    rows = _rows(out)
    assert [r["state"] for r in rows] == ["complete"] * 3
    assert sorted(int(r["trial"]) for r in rows) == [0, 1, 2]
    accuracies = [float(r["test_accuracy"]) for r in rows]
    assert accuracies == sorted(accuracies, reverse=True) and accuracies[-1] > 0
    assert {r["epochs"] for r in rows} == {"1"}
    best = rows[0]
    assert f"best: trial {best['trial']}, test_accuracy {float(best['test_accuracy']):.4f}" in lines
    markdown = (out / "results.md").read_text().splitlines()
    assert markdown[4] == "| trial | test_accuracy | width | lr | state | epochs | seconds | note |"
    assert markdown[6].startswith(
        f"| {best['trial']} | {float(best['test_accuracy']):.4g} | {best['width']} |"
    )
    for name in ("history.png", "importances.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name

    # best.arch checks clean and holds the best values as its own.
    assert run_cli("check", "--strict", str(out / "best.arch"))[0] == 0
    assert run_cli("fmt", "--check", str(out / "best.arch"))[0] == 0
    program = compile_file(str(out / "best.arch"))
    model = program.model("LeNet5Width")
    (width,) = [p for p in program.model_defs["LeNet5Width"].params if p.name == "width"]
    assert width.default is not None and width.default.value == int(best["width"])  # type: ignore[union-attr]
    assert model.train is not None and model.train.optimizer is not None
    assert model.train.optimizer.lr == float(best["lr"])

    code, text = run_cli(*args, "--trials", "1")
    assert code == 0, text
    assert text.splitlines()[0].startswith("study LeNet5Width (3 trials so far)")
    assert sorted(int(r["trial"]) for r in _rows(out)) == [0, 1, 2, 3]
    assert "1 trial added, 4 finished in study LeNet5Width" in text


@needs_torch
@needs_optuna
def test_trial_whose_values_break_the_spec_fails_with_its_diagnostic_and_the_sweep_goes_on(
    tmp_path: Path, offline: Path
) -> None:
    out = tmp_path / "sweep"
    code, text = run_cli("sweep", WIDTH, "--trials", "2", "-p", "width=0", *SHORT, "-o", str(out))
    assert code == 1  # no trial completed
    problem = "conv argument 'out' must be a positive integer or `same`, got 0"
    assert re.sub(r"\d+\.\d s\)", "S s)", text) == (
        f"study LeNet5Width (0 trials so far) in sqlite:///{out}/study.db: maximize test_accuracy\n"
        f"trial 0 failed (width=0; 0 epochs, S s): {problem}\n"
        f"trial 1 failed (width=0; 0 epochs, S s): {problem}\n"
        "note: no trial completed, so no best.arch\n"
        "note: no trial completed, so no history.png or importances.png\n"
        f"2 trials added, 2 finished in study LeNet5Width; outputs in {out}: results.md, results.csv\n"
    )
    rows = _rows(out)
    assert [(r["trial"], r["state"], r["test_accuracy"], r["width"], r["note"]) for r in rows] == [
        ("0", "failed", "", "0", problem),
        ("1", "failed", "", "0", problem),
    ]
    assert (
        (out / "trials" / "0" / "error.txt").read_text().startswith(f"{WIDTH}:5:10: error[E005]: {problem}\n")
    )
    assert not (out / "best.arch").exists()


@needs_optuna
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_stale_running_trial_is_failed_and_its_values_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import optuna

    monkeypatch.setattr(sweep, "GRACE_S", 1)
    request = sweep.Request(spec=WIDTH, model="LeNet5Width", spaces=(), trials=1, out=str(tmp_path))
    study = sweep.open_study(request, "maximize")
    killed = study.ask({"width": optuna.distributions.IntDistribution(1, 4)})
    storage = study._storage
    storage.record_heartbeat(killed._trial_id)  # type: ignore[attr-defined]
    time.sleep(2.5)  # the process "died": no beat since (SQLite's clock counts whole seconds)
    again = sweep.open_study(request, "maximize")
    states = [t.state.name for t in again.trials]
    assert states == ["FAIL", "WAITING"]
    assert again.trials[1].params == killed.params
