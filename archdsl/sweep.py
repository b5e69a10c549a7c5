"""Stage 7 (tools): hyper-parameter sweeps on Optuna (`archdsl sweep`).

Consumes a spec file, the model to sweep and search spaces (`--param NAME=SPACE`) over its model
parameters and train settings; each trial compiles the model with its values, trains it with the
training runner (`train.loop.train`, into `DIR/trials/N/`) and reports each epoch's test metric to
Optuna, whose median pruner stops the trials that fall behind. Produces the study (an SQLite file,
`DIR/study.db`, by default: running again adds trials to it), the results table (`results.md`,
`results.csv`, best first), the spec with the best values filled in (`best.arch`) and two plots
(`history.png`, `importances.png`).

Nothing here prints: each finished trial goes to the caller's `on_trial`, and the CLI renders.
Optuna, torch and matplotlib are imported inside the functions that need them.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import ir
from .atomic import write_text
from .codes import STALE_SHAPE
from .converters import command_line_value
from .errors import SourceCache, Span, render
from .loader import Loader
from .pipeline import Program, compile_file
from .shapes import ShapedModel

if TYPE_CHECKING:
    import optuna

    from .train.metrics import EpochMetrics
    from .train.settings import Overrides, Settings

#: The train settings a sweep can vary: the first three are the optimizer's arguments.
OPTIMIZER_SETTINGS = ("lr", "momentum", "weight_decay")
TRAIN_SETTINGS = (*OPTIMIZER_SETTINGS, "epochs", "batch", "seed")
#: The settings that must be whole numbers (a range of them draws integers).
_INTEGER_SETTINGS = ("epochs", "batch", "seed")

SPACE_GRAMMAR = (
    "SPACE is a choice `16,32,64` (values separated by commas; one value fixes it), a range "
    "`0.01..0.5` (uniform), or `0.001..0.1:log` (log-uniform); a range whose bounds are both "
    "integers draws integers"
)

RESULTS_MD = "results.md"
RESULTS_CSV = "results.csv"
BEST_SPEC = "best.arch"
HISTORY = "history.png"
IMPORTANCES = "importances.png"
STUDY_DB = "study.db"
TRIALS = "trials"
#: A trial whose process died stops beating; after this many seconds without a beat, the next run
#: on the study marks it failed and tries its values again (once).
HEARTBEAT_S = 10
GRACE_S = 30


class SweepUsage(ValueError):
    """A mistake in how the sweep was asked for (a bad SPACE, an unknown NAME): the CLI's exit 2."""


# --- search spaces --------------------------------------------------------------------------------


Value = int | float | bool | str


@dataclass(frozen=True)
class Space:
    """Where a parameter's values are drawn from: `choices`, or a range `low..high`."""

    name: str
    choices: tuple[Value, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    integer: bool = False

    def suggest(self, trial: optuna.Trial) -> Value:
        if self.choices:
            chosen: Value = trial.suggest_categorical(self.name, list(self.choices))  # type: ignore[assignment]
            return chosen
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def describe(self) -> str:
        if self.choices:
            return ",".join(_literal(c) for c in self.choices)
        bounds = f"{_literal(int(self.low) if self.integer else self.low)}.."
        bounds += _literal(int(self.high) if self.integer else self.high)
        return bounds + (":log" if self.log else "")


def _bound(text: str, whole: str) -> int | float:
    value = command_line_value(text.strip())
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SweepUsage(f"'{whole}': the bound '{text.strip()}' is not a number; {SPACE_GRAMMAR}")
    return value


def parse_space(name: str, text: str) -> Space:
    """`text` read by the SPACE grammar (`SPACE_GRAMMAR`); raises `SweepUsage` quoting it."""
    whole = f"{name}={text}"
    if ".." not in text:
        items = [item.strip() for item in text.split(",")]
        if not text.strip() or any(not item for item in items):
            raise SweepUsage(f"'{whole}': an empty value; {SPACE_GRAMMAR}")
        return Space(name, choices=tuple(dict.fromkeys(command_line_value(item) for item in items)))
    body, colon, scale = text.partition(":")
    if colon and scale != "log":
        raise SweepUsage(f"'{whole}': unknown scale ':{scale}' (only ':log'); {SPACE_GRAMMAR}")
    low_text, _, high_text = body.partition("..")
    low, high = _bound(low_text, whole), _bound(high_text, whole)
    if not low < high:
        raise SweepUsage(f"'{whole}': the range's low bound must be below its high bound; {SPACE_GRAMMAR}")
    if colon and low <= 0:
        raise SweepUsage(f"'{whole}': a log-uniform range needs bounds above 0; {SPACE_GRAMMAR}")
    integer = isinstance(low, int) and isinstance(high, int)
    return Space(name, low=low, high=high, log=bool(colon), integer=integer)


def parse_param(text: str) -> Space:
    """`NAME=SPACE`, as `--param` takes it."""
    name, sep, space = text.partition("=")
    if not sep or not name.isidentifier():
        raise SweepUsage(f"--param takes NAME=SPACE, got '{text}'; {SPACE_GRAMMAR}")
    return parse_space(name, space)


# --- the sweep ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What to sweep and how to run each trial (the CLI's flags)."""

    spec: str
    model: str
    spaces: tuple[Space, ...]
    trials: int
    out: str
    storage: str | None = None
    study: str | None = None
    epochs: int | None = None
    batch: int | None = None
    seed: int | None = None
    limit: int | None = None
    test_limit: int | None = None
    device: str = "auto"
    data_root: str | None = None


@dataclass(frozen=True)
class Row:
    """One finished trial, as the results table shows it."""

    number: int
    #: The final test metric (complete), the last one reported (pruned), None (failed).
    value: float | None
    params: dict[str, Value]
    state: str
    epochs: int
    seconds: float
    note: str = ""


@dataclass
class Outcome:
    study: str
    storage: str
    out: Path
    #: The test metric the study optimises, and its direction ("maximize" or "minimize").
    metric: str
    direction: str
    rows: list[Row]
    before: int
    added: int
    best: Row | None
    #: The files written (results, best spec, plots), by name.
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


#: Each task's main test metric: the `EpochMetrics` field reported each epoch, and its direction.
METRICS = {
    "classification": ("test_accuracy", "maximize"),
    "segmentation": ("test_mean_iou", "maximize"),
    "reconstruction": ("test_mse", "minimize"),
}


def model_parameters(program: Program, model: str) -> dict[str, str]:
    """The model's parameters and their types (`int`, `float`, …)."""
    return {p.name: p.type_name for p in program.model_defs[model].params}


def check_names(spaces: tuple[Space, ...], parameters: dict[str, str], request: Request) -> None:
    """Every NAME a model parameter or a train setting, each swept once and not also given as a
    flag; integer settings and parameters drawn from integers."""
    known = [*parameters, *TRAIN_SETTINGS]
    seen: set[str] = set()
    for space in spaces:
        if space.name in seen:
            raise SweepUsage(f"--param {space.name} is given twice")
        seen.add(space.name)
        if space.name not in known:
            from .errors import did_you_mean

            raise SweepUsage(
                f"--param {space.name}: neither a parameter of model {request.model} "
                f"({', '.join(parameters) or 'it has none'}) nor a train setting "
                f"({', '.join(TRAIN_SETTINGS)}){did_you_mean(space.name, known)}"
            )
        flag = {"epochs": request.epochs, "batch": request.batch, "seed": request.seed}.get(space.name)
        if flag is not None and space.name not in parameters:
            raise SweepUsage(f"--param {space.name} sweeps what --{space.name} fixes: give one of them")
        whole = space.name in _INTEGER_SETTINGS or parameters.get(space.name) == "int"
        values = space.choices or ((space.low, space.high) if not space.integer else ())
        if whole and any(isinstance(v, bool) or not isinstance(v, int) for v in values):
            raise SweepUsage(
                f"--param {space.name}={space.describe()}: {space.name} takes whole numbers, so give "
                "integers (a range of two integers draws integers)"
            )


def overrides(request: Request, values: dict[str, Value]) -> Overrides:
    from .train.settings import Overrides

    def pick(name: str, flag: int | None) -> Any:
        return values.get(name, flag)

    return Overrides(
        epochs=pick("epochs", request.epochs),
        batch=pick("batch", request.batch),
        lr=values.get("lr"),  # type: ignore[arg-type]
        seed=pick("seed", request.seed),
        limit=request.limit,
        test_limit=request.test_limit,
    )


def settings_for(shaped: ShapedModel, request: Request, values: dict[str, Value]) -> Settings:
    """The trial's settings: the spec's, the flags, then the trial's values (the optimizer's
    momentum and weight decay, which no flag sets, replaced in its `OptimizerSpec`)."""
    from .train.settings import resolve

    settings = resolve(shaped, overrides(request, values))
    update = {k: float(v) for k, v in values.items() if k in ("momentum", "weight_decay")}
    if update:
        settings = dataclasses.replace(settings, optimizer=settings.optimizer.model_copy(update=update))
    return settings


class _TrialFailed(Exception):
    """A trial whose values make the spec invalid or whose training failed: the sweep goes on."""


class _Reporter:
    """The trial's observer: each epoch's test metric goes to Optuna, which may prune the trial."""

    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial, self.metric = trial, metric

    def message(self, text: str) -> None:
        pass  # the runner's notes (the memory layout it chose) are the same for every trial

    def epoch_start(self, epoch: int, epochs: int, images: int) -> None:
        pass

    def progress(self, images: int, loss: float, accuracy: float, images_per_s: float) -> None:
        pass

    def epoch_end(self, result: EpochMetrics) -> None:
        import optuna

        value = getattr(result, self.metric)
        self.trial.set_user_attr("epochs", result.epoch)
        if value is None or not math.isfinite(value):
            return
        self.trial.set_user_attr("last", value)
        self.trial.report(value, result.epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {result.epoch}: {value:.4g} is below the median")


def _objective(
    request: Request, metric: str, out: Path, parameters: dict[str, str]
) -> Callable[[optuna.Trial], float]:
    from .errors import ArchError
    from .train import TrainError
    from .train.loop import Options, train

    def objective(trial: optuna.Trial) -> float:
        values = {space.name: space.suggest(trial) for space in request.spaces}
        trial.set_user_attr("epochs", 0)
        program = compile_file(request.spec, model=request.model, params=_model_values(values, parameters))
        errors = program.errors
        if errors:
            text = "\n\n".join(render(d, SourceCache(program.sources)) for d in errors)
            _fail(trial, out, errors[0].message, text)
        try:
            shaped = program.model(request.model)
            settings = settings_for(shaped, request, {k: v for k, v in values.items() if k not in parameters})
            options = Options(
                device=request.device,
                data_root=request.data_root,
                out=str(out / TRIALS / str(trial.number)),
                force=True,
            )
            result = train(shaped, settings, options, _Reporter(trial, metric))
        except ArchError as exc:
            text = "\n\n".join(render(d, SourceCache(program.sources)) for d in exc.diagnostics)
            _fail(trial, out, exc.diagnostics[0].message, text)
        except (TrainError, SweepUsage) as exc:
            _fail(trial, out, str(exc), str(exc))
        except (RuntimeError, MemoryError) as exc:  # torch's: out of memory at a large width, …
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            _fail(trial, out, f"{type(exc).__name__}: {first}", f"{type(exc).__name__}: {exc}")
        final = getattr(result.history[-1], metric) if result.history else None
        if final is None or not math.isfinite(final):
            _fail(trial, out, f"no finite {metric} at the end", "")
        return float(final)

    return objective


def _model_values(values: dict[str, Value], parameters: dict[str, str]) -> dict[str, Any] | None:
    """The trial's values of model parameters (a parameter named like a train setting is the
    model's), as `compile_file` takes them."""
    return {k: v for k, v in values.items() if k in parameters} or None


def _fail(trial: optuna.Trial, out: Path, message: str, text: str) -> NoReturn:
    trial.set_user_attr("error", message)
    if text:
        write_text(out / TRIALS / str(trial.number) / "error.txt", text + "\n")
    raise _TrialFailed(message)


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna logs every trial at INFO and warns of its experimental features; the sweep says one
    line per trial itself, so only Optuna's errors get through."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def open_study(request: Request, direction: str) -> optuna.Study:
    """The study (created, or loaded to add trials to), its stale trials failed and retried."""

    with _quiet_optuna():
        return _open_study(request, direction)


def _open_study(request: Request, direction: str) -> optuna.Study:
    import optuna
    import sqlalchemy.exc
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    url = request.storage or f"sqlite:///{Path(request.out) / STUDY_DB}"
    if request.storage is None:
        Path(request.out).mkdir(parents=True, exist_ok=True)
    try:
        storage = RDBStorage(
            url,
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
        )
    except (sqlalchemy.exc.SQLAlchemyError, ValueError, ImportError) as exc:
        # A URL SQLAlchemy cannot read, a database it cannot open, a driver not installed.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SweepUsage(f"--storage {url}: {reason}") from None
    study = optuna.create_study(
        storage=storage,
        study_name=request.study or request.model,
        direction=direction,  # type: ignore[arg-type]
        load_if_exists=True,
        pruner=optuna.pruners.MedianPruner(),
    )
    if study.direction.name.lower() != direction:
        raise SweepUsage(
            f"study {study.study_name} in {url} {study.direction.name.lower()}s its objective, but this "
            f"model's metric is {direction}d: choose another --study"
        )
    optuna.storages.fail_stale_trials(study)
    # A fixed seed per run, shifted by the trials already made: a resumed sweep must not draw
    # its first random trials again.
    seed = (request.seed or 0) + len(study.trials)
    study.sampler = optuna.samplers.TPESampler(seed=seed)
    return study


def run(
    request: Request,
    on_trial: Callable[[Row], None] | None = None,
    on_start: Callable[[str], None] | None = None,
) -> Outcome:
    """Adds `request.trials` trials to the study and writes the outputs; raises `SweepUsage` for a
    request that cannot run, `TrainError` for settings that no trial could train with."""
    program = compile_file(request.spec, model=request.model)
    parameters = model_parameters(program, request.model)
    check_names(request.spaces, parameters, request)
    shaped = program.model(request.model)
    # The settings at the spec's own values: the task (and the metric) and the flags' errors,
    # before any trial.
    settings = settings_for(shaped, request, {})
    if settings.optimizer.name != "sgd" and any(
        s.name == "momentum" and s.name not in parameters for s in request.spaces
    ):
        raise SweepUsage(
            f"--param momentum: the optimizer {settings.optimizer.name} has no momentum (only sgd has)"
        )
    metric, direction = METRICS[settings.task]
    out = Path(request.out)
    with _quiet_optuna():
        study = open_study(request, direction)
        out.mkdir(parents=True, exist_ok=True)
        before = len(study.trials)
        if on_start is not None:
            on_start(
                f"study {study.study_name} ({before} trials so far) in "
                f"{request.storage or 'sqlite:///' + str(out / STUDY_DB)}: {direction} {metric}"
            )

        def told(_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if on_trial is not None:
                on_trial(_row(trial))

        study.optimize(
            _objective(request, metric, out, parameters),
            n_trials=request.trials,
            catch=(_TrialFailed,),
            callbacks=[told],
            gc_after_trial=True,
        )
        outcome = Outcome(
            study=study.study_name,
            storage=request.storage or f"sqlite:///{out / STUDY_DB}",
            out=out,
            metric=metric,
            direction=direction,
            rows=rank(study),
            before=before,
            added=len(study.trials) - before,
            best=None,
        )
        outcome.best = next((r for r in outcome.rows if r.state == "complete"), None)
        write_results(outcome, [s.name for s in request.spaces])
        if outcome.best is not None:
            write_best(request, program, outcome, parameters)
        else:
            outcome.notes.append(f"no trial completed, so no {BEST_SPEC}")
        plot(study, outcome)
    return outcome


# --- results --------------------------------------------------------------------------------------


def _row(trial: optuna.trial.FrozenTrial) -> Row:
    state = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}.get(trial.state.name, "running")
    value = (
        trial.value if state == "complete" else trial.user_attrs.get("last") if state == "pruned" else None
    )
    seconds = trial.duration.total_seconds() if trial.duration is not None else 0.0
    return Row(
        number=trial.number,
        value=value,
        params=dict(trial.params),
        state=state,
        epochs=int(trial.user_attrs.get("epochs", 0)),
        seconds=seconds,
        note=str(trial.user_attrs.get("error", "")),
    )


def rank(study: optuna.Study) -> list[Row]:
    """Every finished trial, best first: the complete ones by value, then the pruned ones by the
    last value they reported, then the failed ones, each group by trial number."""
    sign = -1.0 if study.direction.name == "MAXIMIZE" else 1.0
    rows = [_row(t) for t in study.trials if t.state.is_finished()]
    order = {"complete": 0, "pruned": 1, "failed": 2}

    def key(row: Row) -> tuple[int, float, int]:
        value = sign * row.value if row.value is not None else math.inf
        return order[row.state], value, row.number

    return sorted(rows, key=key)


def _columns(rows: list[Row], names: list[str]) -> list[str]:
    """The swept names: this run's first, then those of earlier runs' trials."""
    return list(dict.fromkeys([*names, *(n for row in rows for n in row.params)]))


def shown(value: Value | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return _literal(value)


def write_results(outcome: Outcome, names: list[str]) -> None:
    params = _columns(outcome.rows, names)
    header = ["trial", outcome.metric, *params, "state", "epochs", "seconds", "note"]

    def cells(row: Row, value: Callable[[Any], str]) -> list[str]:
        return [
            str(row.number),
            value(row.value),
            *(value(row.params.get(name)) for name in params),
            row.state,
            str(row.epochs),
            f"{row.seconds:.1f}",
            row.note,
        ]

    def exact(value: Any) -> str:
        return "" if value is None else repr(value) if isinstance(value, float) else _literal(value)

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(cells(row, exact) for row in outcome.rows)
    write_text(outcome.out / RESULTS_CSV, buffer.getvalue())

    lines = [
        f"# Sweep {outcome.study}: {outcome.metric} ({outcome.direction})",
        "",
        f"{len(outcome.rows)} finished trials, best first; storage `{outcome.storage}`.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if i < 2 + len(params) else "---" for i in range(len(header))) + "|",
    ]
    for row in outcome.rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells(row, shown)) + " |")
    write_text(outcome.out / RESULTS_MD, "\n".join(lines) + "\n")
    outcome.files += [RESULTS_MD, RESULTS_CSV]


def plot(study: optuna.Study, outcome: Outcome) -> None:
    """history.png (the value of each trial, the best so far) and importances.png, each
    when the study has what it needs: a complete trial; two, and a parameter that varied."""
    complete = [r for r in outcome.rows if r.state == "complete"]
    if not complete:
        outcome.notes.append(f"no trial completed, so no {HISTORY} or {IMPORTANCES}")
        return
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as charts

    axes = charts.plot_optimization_history(study, target_name=outcome.metric)
    _save(plt, axes.figure, outcome.out / HISTORY)
    outcome.files.append(HISTORY)
    varied = {name for name in complete[0].params if len({_key(r.params.get(name)) for r in complete}) > 1}
    if len(complete) < 2 or not varied:
        outcome.notes.append(
            f"no {IMPORTANCES}: it needs two complete trials and a parameter whose value they differ in"
        )
        return
    try:
        # Optuna's default evaluator, PED-ANOVA: deterministic, and it needs no scikit-learn.
        axes = charts.plot_param_importances(study, params=sorted(varied), target_name=outcome.metric)
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        outcome.notes.append(f"no {IMPORTANCES}: Optuna could not weigh the parameters ({exc})")
        plt.close("all")
        return
    _save(plt, axes.figure, outcome.out / IMPORTANCES)
    outcome.files.append(IMPORTANCES)


def _key(value: Any) -> str:
    return json.dumps(value)


def _save(plt: Any, figure: Any, path: Path) -> None:
    from .atomic import atomic_path

    figure.set_size_inches(7, 4.5)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)


# --- the best spec --------------------------------------------------------------------------------


def _literal(value: Value) -> str:
    """`value` as the spec language writes it (a float always with its point: `1.0e-05`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        mantissa, e, exponent = repr(value).partition("e")
        if "." not in mantissa:
            mantissa += ".0"
        return mantissa + (e + exponent if e else "")
    return json.dumps(value)


class _Text:
    """Edits of a source text at spans (1-based lines and columns, end exclusive)."""

    def __init__(self, text: str):
        self.text = text
        self.starts = [0]
        for index, char in enumerate(text):
            if char == "\n":
                self.starts.append(index + 1)
        self.edits: list[tuple[int, int, str]] = []

    def start(self, span: Span) -> int:
        return self.starts[span.line - 1] + span.column - 1

    def end(self, span: Span) -> int:
        return self.starts[span.end_line - 1] + span.end_column - 1

    def replace(self, span: Span, text: str) -> None:
        self.edits.append((self.start(span), self.end(span), text))

    def insert(self, offset: int, text: str) -> None:
        self.edits.append((offset, offset, text))

    def result(self) -> str:
        text = self.text
        for start, end, new in sorted(self.edits, key=lambda e: (e[0], e[1]), reverse=True):
            text = text[:start] + new + text[end:]
        return text


def fill(
    text: str,
    definition: ir.ModelDef,
    values: dict[str, Value],
    parameters: dict[str, str],
    settings: Settings,
) -> str:
    """The spec's text with `values` filled in: model parameters as their defaults in the model's
    signature, train settings in its train section (written into it, or a section added, where the
    spec left them to the runner's defaults). `settings` are the model's at its own values (the
    optimizer a spec without one trains with)."""
    source = _Text(text)
    for param in definition.params:
        if param.name in values and param.name in parameters:
            # Every parameter has a default here: the sweep compiled the model at its own values.
            assert param.default is not None
            source.replace(param.default.span, _literal(values[param.name]))
    train = {k: v for k, v in values.items() if k in TRAIN_SETTINGS and k not in parameters}
    section = next((s for s in definition.body if isinstance(s, ir.Train)), None)
    entries = {e.key: e for e in section.entries} if section is not None else {}
    added: list[str] = []
    for key in ("epochs", "batch", "seed"):
        if key in train:
            if key in entries:
                source.replace(entries[key].value.span, _literal(train[key]))
            else:
                added.append(f"{key} = {_literal(train[key])}")
    optimizer = {k: train[k] for k in OPTIMIZER_SETTINGS if k in train}
    if optimizer:
        added += _fill_optimizer(source, entries.get("optimizer"), optimizer, settings)
    if added and section is not None:
        source.insert(source.end(section.span) - 1, " " + " ".join(added) + " ")
    elif added:
        source.insert(source.end(definition.span) - 1, "    train { " + " ".join(added) + " }\n")
    return source.result()


def _fill_optimizer(
    source: _Text, entry: ir.TrainEntry | None, values: dict[str, Value], settings: Settings
) -> list[str]:
    """Edits the optimizer call for `values`; returns the setting to add when the spec has none."""
    if entry is None:
        spec = settings.optimizer
        args = {"lr": spec.lr, **({"momentum": spec.momentum} if spec.name == "sgd" else {}), **values}
        return [f"optimizer = {spec.name}({_arguments(args)})"]
    call = entry.value
    if isinstance(call, ir.NameRef):  # `optimizer = adam`: its arguments written out
        source.replace(call.span, f"{call.name}({_arguments(values)})")
        return []
    assert isinstance(call, ir.CallExpr)  # `check` accepts no other form
    missing = dict(values)
    for arg in call.args:
        if arg.name in missing:
            source.replace(arg.value.span, _literal(missing.pop(arg.name)))
    if missing:
        separator = ", " if call.args else ""
        source.insert(source.end(call.span) - 1, separator + _arguments(missing))
    return []


def _arguments(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_literal(float(v) if k in OPTIMIZER_SETTINGS else v)}" for k, v in values.items())


def write_best(request: Request, program: Program, outcome: Outcome, parameters: dict[str, str]) -> None:
    """best.arch: the spec with the best trial's values, laid out as `archdsl fmt` lays it out,
    its shape comments refreshed where the values changed the shapes."""
    from .fmt import format_text

    assert outcome.best is not None
    best = outcome.best
    path = program.path
    text = program.sources[path]
    shaped = program.model(request.model)
    filled = fill(
        text, program.model_defs[request.model], best.params, parameters, settings_for(shaped, request, {})
    )
    value = shown(best.value)
    chosen = ", ".join(f"{k}={_literal(v)}" for k, v in best.params.items())
    header = (
        f"# The best of sweep {outcome.study}, written by archdsl sweep from {os.path.basename(path)}: "
        f"trial {best.number}, {outcome.metric} {value}, with {chosen}\n"
    )
    # Checked where the spec is, so its imports resolve as they do for it.
    formatted = format_text(header + filled, path)
    if any(d.code == STALE_SHAPE for d in _check_text(formatted, path).diagnostics):
        formatted = format_text(formatted, path, shapes=True)
    write_text(outcome.out / BEST_SPEC, formatted)
    outcome.files.append(BEST_SPEC)
    if _imports(program, path):
        outcome.notes.append(
            f"{BEST_SPEC} imports what {path} imports, by the same relative paths: keep it beside {path} "
            "to check it"
        )


def _check_text(text: str, path: str) -> Program:
    loader = Loader()
    loader.add_text(text, path)
    return compile_file(path, loader=loader)


def _imports(program: Program, path: str) -> bool:
    return len(program.sources) > 1


__all__ = [
    "SPACE_GRAMMAR",
    "TRAIN_SETTINGS",
    "Outcome",
    "Request",
    "Row",
    "Space",
    "SweepUsage",
    "parse_param",
    "parse_space",
    "run",
]
