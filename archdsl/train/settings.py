"""The settings of one training run: the spec's `train { }` section, overridden by flags, completed
with defaults. No torch here.

Every default the runner fills in for a missing setting is named in `Settings.notes`, so the user
reads which choices were made for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..shapes import ShapedModel
from ..trainspec import (
    AugmentSpec,
    DatasetSpec,
    LossSpec,
    NormalizeSpec,
    OptimizerSpec,
    ScheduleSpec,
    TrainSpec,
    task_conflicts,
    task_of,
)
from .errors import TrainError

DEFAULT_EPOCHS = 10
DEFAULT_BATCH = 128
DEFAULT_LR = 0.01
DEFAULT_MOMENTUM = 0.9
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Overrides:
    """The command-line flags that override the spec (None: not given)."""

    epochs: int | None = None
    batch: int | None = None
    lr: float | None = None
    seed: int | None = None
    limit: int | None = None
    test_limit: int | None = None
    #: "classification", "segmentation" or "reconstruction"
    task: str | None = None
    #: --tensorboard DIR
    tensorboard: str | None = None


@dataclass(frozen=True)
class Settings:
    """Everything the loop needs to know about the recipe, with no field left to guess."""

    dataset: DatasetSpec
    input: tuple[int, ...]
    resize: tuple[int, int] | None
    #: `True`: the dataset's own statistics; `False`: none; else explicit per-channel values.
    normalize: NormalizeSpec | bool
    augment: AugmentSpec
    epochs: int
    batch: int
    optimizer: OptimizerSpec
    schedule: ScheduleSpec
    loss: LossSpec
    seed: int
    #: train on the first `limit` training images, test on the first `test_limit` test images
    #: (None: all of them; one never shrinks the other)
    limit: int | None = None
    test_limit: int | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)
    #: What the model learns: "classification" (a class per image), "segmentation" (a class per
    #: pixel) or "reconstruction" (its input back).
    task: str = "classification"
    #: Where TensorBoard event files go (None: none are written). How to watch, not what to learn:
    #: not part of the recipe, so a resumed run may change it.
    tensorboard: str | None = field(default=None, compare=False)

    def recipe(self) -> dict[str, Any]:
        """A JSON-friendly description, saved with checkpoints and reports."""
        normalize: Any = (
            self.normalize
            if isinstance(self.normalize, bool)
            else {"mean": list(self.normalize.mean), "std": list(self.normalize.std)}
        )
        return {
            "task": self.task,
            "dataset": self.dataset.model_dump(),
            "input": list(self.input),
            "resize": list(self.resize) if self.resize else None,
            "normalize": normalize,
            "augment": self.augment.model_dump(),
            "epochs": self.epochs,
            "batch": self.batch,
            "optimizer": self.optimizer.model_dump(),
            "schedule": self.schedule.model_dump(),
            "loss": self.loss.model_dump(),
            "seed": self.seed,
            "limit": self.limit,
            "test_limit": self.test_limit,
        }


def _guess_dataset(shape: tuple[int, ...], task: str) -> DatasetSpec | None:
    if shape == (1, 28, 28):
        return DatasetSpec(name="fashion-mnist-segmentation" if task == "segmentation" else "fashion-mnist")
    if task == "segmentation":
        return None
    if shape == (3, 32, 32):
        return DatasetSpec(name="cifar10")
    return None


def resolve(model: ShapedModel, overrides: Overrides | None = None) -> Settings:
    """The run's settings: spec, then flags, then defaults (each default named in `notes`)."""
    flags = overrides or Overrides()
    spec = model.train or TrainSpec()
    notes: list[str] = []
    if model.train is None:
        notes.append(f"model {model.name} has no train section, so defaults are used")

    task = task_of(flags.task or spec.task, spec.dataset)
    dataset = spec.dataset
    if dataset is None:
        dataset = _guess_dataset(tuple(model.input), task)
        if dataset is None:
            example = (
                'dataset = "fashion-mnist-segmentation"'
                if task == "segmentation"
                else 'dataset = imagefolder("path")'
            )
            raise TrainError(
                f"model {model.name} names no dataset and its input {list(model.input)} fits none "
                f"of the built-in ones{' for segmentation' if task == 'segmentation' else ''}: "
                f"add a train section, e.g. train {{ {example} }}"
            )
        notes.append(f"dataset {dataset.name} (guessed from the input shape {list(model.input)})")
    # `check` holds the section to its own task; --task may name another.
    for _, problem in task_conflicts(task, dataset, spec.loss):
        where = f"--task {task}: " if flags.task is not None else ""
        raise TrainError(where + problem.replace("train setting ", "the spec's setting ", 1))

    optimizer = spec.optimizer
    if optimizer is None:
        optimizer = OptimizerSpec(name="sgd", lr=flags.lr or DEFAULT_LR, momentum=DEFAULT_MOMENTUM)
        notes.append(f"default optimizer sgd(lr={optimizer.lr:g}, momentum={DEFAULT_MOMENTUM:g})")
    elif flags.lr is not None:
        optimizer = optimizer.model_copy(update={"lr": flags.lr})

    loss = spec.loss
    if loss is None and task == "reconstruction":
        loss = LossSpec(name="mse")
    elif loss is None:
        # A model that ends in logsoftmax already outputs log-probabilities: cross-entropy on them
        # would apply log-softmax twice.
        last = model.layers[-1].op if model.layers else None
        loss = LossSpec(name="nll" if last == "logsoftmax" else "cross_entropy")

    epochs = _pick(flags.epochs, spec.epochs, DEFAULT_EPOCHS, "epochs", notes)
    batch = _pick(flags.batch, spec.batch, DEFAULT_BATCH, "batch", notes)
    seed = flags.seed if flags.seed is not None else spec.seed if spec.seed is not None else DEFAULT_SEED
    normalize: NormalizeSpec | bool
    if spec.normalize is not None:
        normalize = spec.normalize
    elif task == "reconstruction":
        # The target is the input: pixels in [0, 1], which a model ending in sigmoid can give back.
        normalize = False
        notes.append("normalize false (a reconstruction's target is its input, pixels in [0, 1])")
    else:
        normalize = True
    if isinstance(normalize, NormalizeSpec):
        channels = model.input[0] if model.input else 1
        if len(normalize.mean) not in (1, channels):
            raise TrainError(
                f"normalize gives {len(normalize.mean)} channel statistics for "
                f"an input of {channels} channels"
            )
    for value, what in ((optimizer.lr, "learning rate"),):
        if not math.isfinite(value) or value <= 0:
            raise TrainError(f"the {what} must be a positive number, got {value}")
    return Settings(
        dataset=dataset,
        input=tuple(model.input),
        resize=spec.resize,
        normalize=normalize,
        augment=spec.augment or AugmentSpec(),
        epochs=epochs,
        batch=batch,
        optimizer=optimizer,
        schedule=spec.schedule or ScheduleSpec(name="none"),
        loss=loss,
        seed=seed,
        limit=flags.limit,
        test_limit=flags.test_limit,
        notes=tuple(notes),
        task=task,
        tensorboard=flags.tensorboard or spec.tensorboard,
    )


def _pick(flag: int | None, spec: int | None, default: int, name: str, notes: list[str]) -> int:
    if flag is not None:
        return flag
    if spec is not None:
        return spec
    notes.append(f"default {name} {default}")
    return default
