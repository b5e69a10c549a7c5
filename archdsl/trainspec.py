"""The `train { }` section: validated into a `TrainSpec` during resolve (no torch here).

The runner (a later stage) reads `TrainSpec`; command-line flags override its fields. A field left
`None` means "the runner's default".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from . import ir
from .codes import TRAIN_SETTING
from .converters import (
    BadValue,
    CallValue,
    Symbol,
    boolean,
    describe,
    nonnegative_int,
    number,
    positive_int,
    positive_number,
    positive_pair,
    probability,
    string,
)
from .errors import Diagnostic, Failed, did_you_mean, error
from .layers import Arg
from .layers import Signature as LayerSpec

#: The datasets of labelled images (classification; reconstruction reads their images only).
DATASETS = ("mnist", "fashion-mnist", "cifar10")
#: The datasets of images with a class per pixel (segmentation), derived from the ones above.
SEGMENTATION_DATASETS = ("fashion-mnist-segmentation",)
#: What a run learns; without a `task` setting, "segmentation" for a segmentation dataset and
#: "classification" otherwise.
TASKS = ("classification", "segmentation", "reconstruction")
#: The losses each task can train with.
TASK_LOSSES = {
    "classification": ("cross_entropy", "nll"),
    "segmentation": ("cross_entropy", "nll"),
    "reconstruction": ("mse", "l1"),
}


class Frozen(BaseModel):
    # Built on first use: only a spec with a train section needs these schemas.
    model_config = ConfigDict(frozen=True, defer_build=True)


class DatasetSpec(Frozen):
    name: Literal["mnist", "fashion-mnist", "cifar10", "imagefolder", "fashion-mnist-segmentation"]
    path: str | None = None

    @property
    def segmentation(self) -> bool:
        return self.name in SEGMENTATION_DATASETS


class OptimizerSpec(Frozen):
    name: Literal["sgd", "adam", "adamw"]
    lr: float
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0


class ScheduleSpec(Frozen):
    name: Literal["none", "step", "cosine", "onecycle"]
    every: int | None = None
    gamma: float = 0.1
    max_lr: float | None = None


class LossSpec(Frozen):
    name: Literal["cross_entropy", "nll", "mse", "l1"]
    smoothing: float = 0.0


class NormalizeSpec(Frozen):
    """Per-channel statistics; a single number applies to every channel."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


class AugmentSpec(Frozen):
    crop_padding: int | None = None
    flip: float | None = None


class TrainSpec(Frozen):
    task: Literal["classification", "segmentation", "reconstruction"] | None = None
    dataset: DatasetSpec | None = None
    resize: tuple[int, int] | None = None
    #: `True`: the dataset's own statistics; `False`: none.
    normalize: NormalizeSpec | bool | None = None
    augment: AugmentSpec | None = None
    epochs: int | None = None
    batch: int | None = None
    optimizer: OptimizerSpec | None = None
    schedule: ScheduleSpec | None = None
    loss: LossSpec | None = None
    seed: int | None = None
    #: Where `archdsl train` writes TensorBoard event files (relative to where it runs).
    tensorboard: str | None = None


def _calls(*specs: LayerSpec) -> dict[str, LayerSpec]:
    return {spec.name: spec for spec in specs}


def _nonnegative_number(value: Any) -> float:
    result = number(value)
    if result < 0:
        raise BadValue(f"a number ≥ 0, got {describe(value)}")
    return result


OPTIMIZERS = _calls(
    LayerSpec(
        "sgd",
        (
            Arg("lr", positive_number, "learning rate", required=True),
            Arg("momentum", _nonnegative_number, "momentum", 0.0),
            Arg("nesterov", boolean, "Nesterov momentum", False),
            Arg("weight_decay", _nonnegative_number, "L2 penalty", 0.0),
        ),
        "torch.optim.SGD",
        "stochastic gradient descent",
    ),
    LayerSpec(
        "adam",
        (
            Arg("lr", positive_number, "learning rate", 0.001),
            Arg("weight_decay", _nonnegative_number, "L2 penalty", 0.0),
        ),
        "torch.optim.Adam",
        "Adam",
    ),
    LayerSpec(
        "adamw",
        (
            Arg("lr", positive_number, "learning rate", 0.001),
            Arg("weight_decay", _nonnegative_number, "decoupled weight decay", 0.01),
        ),
        "torch.optim.AdamW",
        "AdamW",
    ),
)
SCHEDULES = _calls(
    LayerSpec("none", (), "", "a constant learning rate"),
    LayerSpec(
        "step",
        (
            Arg("every", positive_int, "epochs between decays", required=True),
            Arg("gamma", positive_number, "factor applied at each decay", 0.1),
        ),
        "torch.optim.lr_scheduler.StepLR",
        "decay by gamma every N epochs",
    ),
    LayerSpec("cosine", (), "torch.optim.lr_scheduler.CosineAnnealingLR", "cosine decay to 0 over the run"),
    LayerSpec(
        "onecycle",
        (Arg("max_lr", positive_number, "peak learning rate; the optimizer's lr when omitted"),),
        "torch.optim.lr_scheduler.OneCycleLR",
        "one-cycle policy, stepped per batch",
    ),
)
LOSSES = _calls(
    LayerSpec(
        "cross_entropy",
        (Arg("smoothing", probability, "label smoothing", 0.0),),
        "nn.CrossEntropyLoss",
        "cross-entropy on logits",
    ),
    LayerSpec("nll", (), "nn.NLLLoss", "negative log-likelihood, for models ending in logsoftmax"),
    LayerSpec("mse", (), "nn.MSELoss", "mean squared error to the input (reconstruction)"),
    LayerSpec("l1", (), "nn.L1Loss", "mean absolute error to the input (reconstruction)"),
)
AUGMENTS = _calls(
    LayerSpec(
        "crop",
        (Arg("padding", nonnegative_int, "pad, then crop back at random", 4),),
        "RandomCrop",
        "random crop after padding",
    ),
    LayerSpec(
        "flip",
        (Arg("p", probability, "probability of a horizontal flip", 0.5),),
        "RandomHorizontalFlip",
        "random horizontal flip",
    ),
)
IMAGEFOLDER = LayerSpec(
    "imagefolder",
    (Arg("path", string, "folder of class folders", required=True),),
    "torchvision.datasets.ImageFolder",
    "images in one folder per class",
)

KEYS = (
    "task",
    "dataset",
    "resize",
    "normalize",
    "augment",
    "epochs",
    "batch",
    "optimizer",
    "schedule",
    "loss",
    "seed",
    "tensorboard",
)

#: Binds a call's arguments to a signature (resolve's binder, with the setting's span applied).
Binder = Callable[[LayerSpec, Any], dict[str, Any]]


def validate_train(
    section: ir.Train,
    evaluate: Callable[[ir.Expr], Any],
    bind: Callable[..., tuple[dict[str, Any], dict[str, Any]]],
    diagnostics: list[Diagnostic],
) -> TrainSpec:
    settings: dict[str, Any] = {}
    spans: dict[str, Any] = {}
    # The task first, wherever it is written: the datasets and losses a section may name depend on it.
    entries = sorted(section.entries, key=lambda entry: entry.key != "task")
    for entry in entries:
        if entry.key not in KEYS:
            hint = did_you_mean(entry.key, KEYS)
            listed = "" if hint else f" (settings: {', '.join(KEYS)})"
            diagnostics.append(
                error(TRAIN_SETTING, f"unknown train setting '{entry.key}'{listed}{hint}", entry.span)
            )
            continue
        if entry.key in settings:
            diagnostics.append(
                error(TRAIN_SETTING, f"train setting '{entry.key}' is given twice", entry.span)
            )
            continue
        span = entry.value.span
        spans[entry.key] = span

        def bind_here(spec: LayerSpec, args: Any, span: Any = span) -> dict[str, Any]:
            return bind(spec, args, span, {})[0]

        try:
            value = evaluate(entry.value)
            if entry.key == "dataset":
                settings[entry.key] = _dataset(value, bind_here, settings.get("task"))
            else:
                settings[entry.key] = _SETTINGS[entry.key](value, bind_here)
        except BadValue as bad:
            diagnostics.append(
                error(TRAIN_SETTING, f"train setting '{entry.key}' must be {bad}", entry.value.span)
            )
        except Failed as failed:
            diagnostics.append(failed.diagnostic)
    for key, problem in task_conflicts(settings.get("task"), settings.get("dataset"), settings.get("loss")):
        diagnostics.append(error(TRAIN_SETTING, problem, spans[key]))
    return TrainSpec(**settings)


def task_of(task: str | None, dataset: DatasetSpec | None) -> str:
    """The task a run learns: the one named, else the one its dataset implies."""
    if task is not None:
        return task
    return "segmentation" if dataset is not None and dataset.segmentation else "classification"


def task_conflicts(
    task: str | None, dataset: DatasetSpec | None, loss: LossSpec | None
) -> list[tuple[str, str]]:
    """(setting, message) for a dataset or loss that does not fit the task (named or implied)."""
    problems = []
    chosen = task_of(task, dataset)
    if dataset is not None and dataset.segmentation != (chosen == "segmentation"):
        if dataset.segmentation:
            listed = ", ".join(f"{d!r}" for d in DATASETS)
            problems.append(
                (
                    "dataset",
                    f"train setting 'dataset' must be one of {listed} or imagefolder(\"path\") for task "
                    f'"{chosen}", got "{dataset.name}" (a segmentation dataset, for task "segmentation")',
                )
            )
        else:
            name = "imagefolder(...)" if dataset.name == "imagefolder" else f'"{dataset.name}"'
            problems.append(
                (
                    "dataset",
                    f"train setting 'dataset' must be {_listing(SEGMENTATION_DATASETS)} "
                    f'(images with a class per pixel) for task "segmentation", got {name}',
                )
            )
    if loss is not None and loss.name not in TASK_LOSSES[chosen]:
        problems.append(
            (
                "loss",
                f"train setting 'loss' must be {' or '.join(TASK_LOSSES[chosen])} for task "
                f'"{chosen}", got {loss.name}',
            )
        )
    return problems


def _listing(names: tuple[str, ...]) -> str:
    quoted = [f"{name!r}" for name in names]
    return ", ".join(quoted) if len(quoted) == 1 else f"one of {', '.join(quoted)}"


def _call(value: Any, table: dict[str, LayerSpec], bind: Binder, what: str) -> tuple[str, dict[str, Any]]:
    name = value.name if isinstance(value, Symbol | CallValue) else None
    if name not in table:
        raise BadValue(f"one of {', '.join(table)} (a {what}), got {describe(value)}")
    args = value.args if isinstance(value, CallValue) else ()
    return name, bind(table[name], args)


def _dataset(value: Any, bind: Binder, task: str | None = None) -> DatasetSpec:
    if isinstance(value, str | Symbol) and str(value) in DATASETS + SEGMENTATION_DATASETS:
        return DatasetSpec(name=str(value))
    if isinstance(value, CallValue) and value.name == "imagefolder":
        args = bind(IMAGEFOLDER, value.args)
        return DatasetSpec(name="imagefolder", path=args["path"])
    got = describe(value)
    if task == "segmentation":
        raise BadValue(f"{_listing(SEGMENTATION_DATASETS)} (images with a class per pixel), got {got}")
    hint = did_you_mean(str(value), SEGMENTATION_DATASETS) if isinstance(value, str | Symbol) else ""
    raise BadValue(f'one of {", ".join(f"{d!r}" for d in DATASETS)} or imagefolder("path"), got {got}{hint}')


def _task(value: Any, bind: Binder) -> str:
    if isinstance(value, str | Symbol) and str(value) in TASKS:
        return str(value)
    hint = did_you_mean(str(value), TASKS) if isinstance(value, str | Symbol) else ""
    raise BadValue(f"one of {', '.join(f'{t!r}' for t in TASKS)}, got {describe(value)}{hint}")


def _normalize(value: Any, bind: Binder) -> NormalizeSpec | bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, list) and len(value) == 2:
        mean, std = (v if isinstance(v, list) else [v] for v in value)
        if len(mean) == len(std) and mean:
            try:
                return NormalizeSpec(
                    mean=tuple(number(m) for m in mean), std=tuple(positive_number(s) for s in std)
                )
            except BadValue:
                pass
    raise BadValue(f"true, false or [mean, std] (numbers or per-channel lists), got {describe(value)}")


def _augment(value: Any, bind: Binder) -> AugmentSpec:
    items = value if isinstance(value, list) else [value]
    settings: dict[str, Any] = {}
    for item in items:
        name, args = _call(item, AUGMENTS, bind, "augmentation")
        if name == "crop":
            settings["crop_padding"] = args["padding"]
        else:
            settings["flip"] = args["p"]
    return AugmentSpec(**settings)


def _directory(value: Any, bind: Binder) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise BadValue(f'a directory in quotes, e.g. "runs/tb", got {describe(value)}')


def _optimizer(value: Any, bind: Binder) -> OptimizerSpec:
    name, args = _call(value, OPTIMIZERS, bind, "optimizer")
    return OptimizerSpec(name=name, **args)


def _schedule(value: Any, bind: Binder) -> ScheduleSpec:
    name, args = _call(value, SCHEDULES, bind, "schedule")
    return ScheduleSpec(name=name, **args)


def _loss(value: Any, bind: Binder) -> LossSpec:
    name, args = _call(value, LOSSES, bind, "loss")
    return LossSpec(name=name, **args)


_SETTINGS: dict[str, Callable[[Any, Binder], Any]] = {
    "task": _task,
    "dataset": _dataset,
    "resize": lambda v, _: positive_pair(v),
    "normalize": _normalize,
    "augment": _augment,
    "epochs": lambda v, _: positive_int(v),
    "batch": lambda v, _: positive_int(v),
    "optimizer": _optimizer,
    "schedule": _schedule,
    "loss": _loss,
    "seed": lambda v, _: nonnegative_int(v),
    "tensorboard": _directory,
}
