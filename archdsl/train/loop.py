"""The training loop: a built model, `Settings` and runtime `Options` → trained weights and files.

The fast path: the dataset is decoded once into a uint8 tensor (moved to the GPU when training
there), an epoch is a shuffled index from a seeded `torch.Generator`, and each batch is one gather
followed by whole-batch preparation (`data.Pipeline`). channels_last activations on CPU and GPU;
on CUDA also bf16 autocast, and pinned memory with non-blocking copies when the data does not fit
on the GPU. Optionally `torch.compile` (on the CPU it needs a C++ compiler). Under `torchrun`
(WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel; every rank takes its shard of
each epoch's permutation and only rank 0 writes files or reports.

Three tasks share the loop (`Settings.task`): classification (a class per image: cross-entropy,
accuracy, a confusion matrix), segmentation (a class per pixel: per-pixel cross-entropy, pixel
accuracy and mean IoU, masks.png) and reconstruction (the input back: MSE, reconstructions.png).
A model with several outputs (a tuple, or a dict such as torchvision's segmentation models'
`{"out": …, "aux": …}`) trains and is judged on one of them, `primary`: the dict's "out", else its
first output; the others take no part in the loss.

Nothing here prints: progress and messages go to an `Observer`; problems a user can fix raise
`TrainError`, or the builder's `ArchError` (a model over `max_params`, pretrained weights that
cannot be loaded), which points into the spec.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..atomic import atomic_path
from ..shapes import ShapedModel
from . import checkpoint, data, layout, metrics, pictures
from .errors import TrainError
from .metrics import EpochMetrics
from .settings import Settings

if TYPE_CHECKING:
    import torch
    from torch import nn

MODEL_FILE = "model.pt"
#: The files a run writes: a directory holding any of them holds an earlier run.
RUN_FILES = (
    checkpoint.CHECKPOINT,
    MODEL_FILE,
    metrics.METRICS_JSONL,
    metrics.METRICS_CSV,
    metrics.CURVES,
    metrics.CONFUSION,
    metrics.REPORT_MD,
    metrics.REPORT_JSON,
    pictures.MASKS,
    pictures.RECONSTRUCTIONS,
)
#: The "not learning" warning judges the second half of an epoch of at least this many steps: over
#: fewer, a loss that starts at chance level has not had the time to leave it.
STALL_STEPS = 50
#: How often (in steps) the CUDA path checks losses for NaN and refreshes the progress bar: each
#: check waits for the GPU, so it is not done every step there (CPU checks every step, at no cost).
SYNC_EVERY = 25


@dataclass(frozen=True)
class Options:
    """How to run (not what to learn): these never change the recipe."""

    device: str = "auto"
    data_root: str | None = None
    out: str | None = None
    resume: bool = False
    #: Replace an earlier run in `out` (without it or `resume`, such a directory is refused).
    force: bool = False
    compile: bool = False
    #: The activations' memory layout: "contiguous", "channels_last", or "auto", timed per model
    #: (`layout.measure`); a resumed run keeps the layout it started with.
    layout: str = "auto"
    #: Stop after this epoch (benchmarks and tests); the schedule still spans `settings.epochs`.
    stop_after: int | None = None
    #: Refuse a model with more parameters (None: as many as fit in this machine's memory).
    max_params: int | None = None


class Observer(Protocol):
    def message(self, text: str) -> None: ...
    def epoch_start(self, epoch: int, epochs: int, images: int) -> None: ...
    #: `accuracy`: of the images seen so far (classification), of their pixels (segmentation);
    #: NaN for a reconstruction, which has none.
    def progress(self, images: int, loss: float, accuracy: float, images_per_s: float) -> None: ...
    def epoch_end(self, result: EpochMetrics) -> None: ...


class Quiet:
    """An observer that ignores everything (ranks other than 0, library use)."""

    def message(self, text: str) -> None:
        pass

    def epoch_start(self, epoch: int, epochs: int, images: int) -> None:
        pass

    def progress(self, images: int, loss: float, accuracy: float, images_per_s: float) -> None:
        pass

    def epoch_end(self, result: EpochMetrics) -> None:
        pass


@dataclass
class Result:
    model: nn.Module
    history: list[EpochMetrics]
    #: Of the test images (classification), of their pixels (segmentation); None for a
    #: reconstruction.
    test_accuracy: float | None
    #: The classes (a segmentation's: the background first), and the confusion matrix of the test
    #: images (or pixels), rows true classes; both empty for a reconstruction.
    classes: list[str]
    confusion: list[list[int]]
    report: str
    out: Path | None
    device: str
    world_size: int
    #: The memory layout the model trained in ("contiguous" or "channels_last").
    layout: str = layout.CONTIGUOUS
    stalled: list[int] = field(default_factory=list)
    task: str = "classification"
    #: The final test figures: a segmentation's "pixel_accuracy" and "mean_iou", a
    #: reconstruction's "mse" and "loss"; a classification's "accuracy".
    test_metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class _Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1


def _distributed_env() -> _Distributed:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Distributed()
    return _Distributed(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def prepare_out(out: Path | None, resume: bool, force: bool) -> None:
    """Refuses to train into a directory holding an earlier run unless asked to continue it
    (`resume`) or replace it (`force`, which removes the earlier run's files first, so none of them
    outlives it)."""
    if out is None or resume or not out.is_dir():
        return
    earlier = [name for name in RUN_FILES if (out / name).exists()]
    if not earlier:
        return
    if not force:
        raise TrainError(
            f"{out} holds an earlier run ({', '.join(earlier)}): continue it with --resume, replace it "
            "with --force, or choose another --out"
        )
    for name in earlier:
        (out / name).unlink()


def pick_device(name: str, dist: _Distributed) -> torch.device:
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise TrainError("--device cuda: no CUDA device is available (use --device cpu or auto)")
        return torch.device("cuda", dist.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def primary(output: Any) -> torch.Tensor:
    """The output a model trains on: the model's only one; of a dict, its "out" entry
    (torchvision's segmentation models return `{"out": …, "aux": …}`), else its first; of a tuple,
    the first."""
    if isinstance(output, dict):
        return output["out"] if "out" in output else next(iter(output.values()))
    if isinstance(output, tuple | list):
        return output[0]
    return output


def primary_shape(model: ShapedModel) -> tuple[int, ...] | None:
    """The shape of the model's `primary` output (None when inference stopped at an error)."""
    for key, shape in model.outputs:
        if key == "out":
            return tuple(shape)
    if model.outputs:
        return tuple(model.outputs[0][1])
    return tuple(model.output) if model.output is not None else None


def check_shapes(dataset: data.Dataset, settings: Settings, model: ShapedModel) -> None:
    """The spec's input shape against the dataset's images (after `resize`), and its output against
    what the task needs, before any training."""
    channels, *size = dataset.image_shape
    if settings.resize is not None:
        size = list(settings.resize)
    given = [channels, *size]
    if tuple(given) != tuple(settings.input):
        hint = ""
        if channels == settings.input[0] and len(settings.input) == 3:
            h, w = settings.input[1:]
            hint = f"; add resize = {h if h == w else [h, w]} to the train section"
        elif channels != settings.input[0]:
            hint = f"; the dataset's images have {channels} channel(s), the model takes {settings.input[0]}"
        raise TrainError(
            f"model {model.name} takes input {list(settings.input)} but {dataset.name} gives images of "
            f"{given}{' after resize' if settings.resize else ''}{hint}"
        )
    shape = primary_shape(model) or ()
    classes = len(dataset.classes)
    if settings.task == "segmentation":
        if len(shape) != 3 or shape[0] < classes or list(shape[1:]) != given[1:]:
            raise TrainError(
                f"model {model.name} outputs {list(shape)} but {dataset.name} has a class per pixel, "
                f"{classes} classes ({dataset.classes[0]} and {classes - 1} items) on "
                f"{given[1]}×{given[2]} pixels: the model should give per-pixel logits "
                f"{[classes, *given[1:]]}, e.g. end in conv({classes}, kernel=1)"
            )
        return
    if settings.task == "reconstruction":
        if tuple(shape) != tuple(settings.input):
            raise TrainError(
                f"model {model.name} outputs {list(shape)} but a reconstruction compares the output "
                f"with the input {list(settings.input)}: the model should give back a tensor of its "
                "input's shape"
            )
        return
    outputs = shape[-1] if shape else 0
    if len(shape) != 1 or outputs < classes:
        hint = ""
        if tuple(shape) == tuple(settings.input):
            hint = '; to train it to give back its input, add task = "reconstruction" to the train section'
        raise TrainError(
            f"model {model.name} outputs {list(shape)} but {dataset.name} has "
            f"{classes} classes: the model should end in linear({classes}){hint}"
        )


def _optimizer(settings: Settings, parameters: Any) -> torch.optim.Optimizer:
    import torch

    spec = settings.optimizer
    if spec.name == "sgd":
        if spec.nesterov and spec.momentum <= 0:
            raise TrainError("sgd(nesterov=true) needs momentum > 0")
        return torch.optim.SGD(
            parameters,
            lr=spec.lr,
            momentum=spec.momentum,
            nesterov=spec.nesterov,
            weight_decay=spec.weight_decay,
        )
    kind = torch.optim.Adam if spec.name == "adam" else torch.optim.AdamW
    return kind(parameters, lr=spec.lr, weight_decay=spec.weight_decay)


def _schedule(settings: Settings, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> tuple[Any, bool]:
    """The LR scheduler and whether it steps per batch (else per epoch)."""
    import torch

    spec = settings.schedule
    total = settings.epochs * steps_per_epoch
    if spec.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=spec.every or 1, gamma=spec.gamma), False
    if spec.name == "cosine":
        # Per batch: a smooth decay from the first epoch on, ending at 0 after the last step.
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total), True
    if spec.name == "onecycle":
        return (
            torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=spec.max_lr or settings.optimizer.lr, total_steps=total
            ),
            True,
        )
    return None, False


def _loss(settings: Settings) -> nn.Module:
    from torch import nn

    if settings.loss.name == "nll":
        return nn.NLLLoss(reduction="mean")
    if settings.loss.name == "mse":
        return nn.MSELoss()
    if settings.loss.name == "l1":
        return nn.L1Loss()
    return nn.CrossEntropyLoss(label_smoothing=settings.loss.smoothing)


def _batch(
    task: str,
    pipeline: data.Pipeline,
    images: torch.Tensor,
    labels: torch.Tensor,
    index: torch.Tensor,
    train: bool,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's input and its target: the labels (classification), the masks moved with the
    images (segmentation), or the input itself (reconstruction)."""
    if task == "segmentation":
        x, masks = pipeline.pair(images[index], labels[index], train)
        assert masks is not None
        return x, masks
    x = pipeline(images[index], train=train)
    if task == "reconstruction":
        return x, x
    return x, labels[index].to(device, non_blocking=True)


def train(
    shaped: ShapedModel,
    settings: Settings,
    options: Options | None = None,
    observer: Observer | None = None,
) -> Result:
    import torch
    import torch.distributed as torch_dist

    from ..builder import build_model, size_error

    options = options or Options()
    # Refused before the dataset loads, not after: the user learns it in a second.
    too_big = size_error(shaped, options.max_params)
    if too_big is not None:
        raise too_big
    dist = _distributed_env()
    if dist.rank == 0:
        prepare_out(Path(options.out) if options.out is not None else None, options.resume, options.force)
    if dist.active and not torch_dist.is_initialized():
        backend = "nccl" if options.device != "cpu" and torch.cuda.is_available() else "gloo"
        torch_dist.init_process_group(backend)
    observer = observer if observer is not None and dist.rank == 0 else Quiet()
    try:
        return _train(shaped, settings, options, observer, dist, build_model)
    finally:
        if dist.active and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


@dataclass
class _Tensors:
    """The dataset's images and labels where training reads them: on the GPU, pinned, or as loaded."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


@dataclass
class _Run:
    """One training run as its stages share it: set up once (`_set_up`), then read and advanced epoch
    by epoch (`_epoch`), and reported on at the end (`_finish`)."""

    shaped: ShapedModel
    settings: Settings
    options: Options
    observer: Observer
    dist: _Distributed
    device: torch.device
    dataset: data.Dataset
    #: The output directory (None: nothing is written), and the checkpoint resumed from.
    out: Path | None
    state: dict[str, Any] | None
    model: nn.Module
    shuffle: torch.Generator
    augment: torch.Generator
    pipeline: data.Pipeline
    tensors: _Tensors
    #: Each process's batch, and its share of each epoch's images.
    batch: int
    shard: int
    steps_per_epoch: int
    criterion: nn.Module
    autocast: Any
    choice: layout.Choice
    optimizer: torch.optim.Optimizer
    scheduler: Any
    #: Whether the scheduler steps per batch (else per epoch).
    per_step: bool
    #: The model as it trains: compiled and wrapped for DDP where asked.
    network: nn.Module
    history: list[EpochMetrics] = field(default_factory=list)
    #: The first epoch to train (after a resumed run's last).
    start: int = 1
    stalled: list[int] = field(default_factory=list)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def task(self) -> str:
        return self.settings.task

    @property
    def title(self) -> str:
        return f"{self.shaped.name} on {self.dataset.name}"

    @property
    def last(self) -> int:
        """The last epoch this call trains (`stop_after` ends it early)."""
        epochs, stop = self.settings.epochs, self.options.stop_after
        return epochs if stop is None else min(epochs, stop)

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files (rank 0, given an output directory)."""
        return self.out is not None and self.dist.rank == 0


def _train(
    shaped: ShapedModel,
    settings: Settings,
    options: Options,
    observer: Observer,
    dist: _Distributed,
    build_model: Any,
) -> Result:
    run = _set_up(shaped, settings, options, observer, dist, build_model)
    evaluation: _Evaluation | None = None
    for epoch in range(run.start, run.last + 1):
        evaluation = _epoch(run, epoch)
    if evaluation is None or run.start > run.last:
        # Nothing left to train (a resumed run that had finished): evaluate for the report.
        evaluation = _evaluate_run(run)
    return _finish(run, evaluation)


# --- setting up -----------------------------------------------------------------------------------


def _set_up(
    shaped: ShapedModel,
    settings: Settings,
    options: Options,
    observer: Observer,
    dist: _Distributed,
    build_model: Any,
) -> _Run:
    """Device, data, the model in its memory layout, optimiser and schedule, a resumed run's state,
    and the network as it trains (compiled, under DDP), in the order that keeps runs reproducible."""
    import torch

    device = _set_up_device(options, dist)
    dataset = _load_dataset(shaped, settings, options)
    out, state = _checkpoint_to_resume(options)

    torch.manual_seed(settings.seed)
    model = build_model(shaped, max_params=options.max_params)
    model.to(device)
    shuffle = torch.Generator().manual_seed(settings.seed)
    augment = torch.Generator().manual_seed(settings.seed + 1 + dist.rank)
    pipeline = data.Pipeline(
        device, settings.normalize, dataset, settings.resize, settings.augment, False, augment
    )
    tensors = _place_tensors(dataset, device, observer)
    batch = _process_batch(settings, dist, observer)
    steps_per_epoch = math.ceil(len(dataset.train) // dist.world / batch)
    criterion = _loss(settings)
    autocast = _autocast(device)
    choice = _set_layout(settings, options, state, model, pipeline, tensors, batch, criterion, autocast, dist)
    observer.message(choice.describe())
    # The optimiser comes after the layout, so that it is made over the parameters as they will train.
    optimizer = _optimizer(settings, model.parameters())
    scheduler, per_step = _schedule(settings, optimizer, steps_per_epoch)
    run = _Run(
        shaped=shaped,
        settings=settings,
        options=options,
        observer=observer,
        dist=dist,
        device=device,
        dataset=dataset,
        out=out,
        state=state,
        model=model,
        shuffle=shuffle,
        augment=augment,
        pipeline=pipeline,
        tensors=tensors,
        batch=batch,
        shard=len(dataset.train) // dist.world,
        steps_per_epoch=steps_per_epoch,
        criterion=criterion,
        autocast=autocast,
        choice=choice,
        optimizer=optimizer,
        scheduler=scheduler,
        per_step=per_step,
        network=model,
    )
    if state is not None:
        _resume(run, state)
    run.network = _network(model, options, dist, device)
    return run


def _set_up_device(options: Options, dist: _Distributed) -> torch.device:
    """The device to train on, with cuDNN autotuning and TF32 matmuls when it is a GPU."""
    import torch

    device = pick_device(options.device, dist)
    cuda = device.type == "cuda"
    if options.compile and not cuda:
        _require_cxx()
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def _load_dataset(shaped: ShapedModel, settings: Settings, options: Options) -> data.Dataset:
    """The dataset, cut to the recipe's limits and checked against the model's shapes."""
    dataset = data.load(settings.dataset, options.data_root, settings.input[0], settings.resize)
    dataset = dataset.limited(settings.limit, settings.test_limit)
    check_shapes(dataset, settings, shaped)
    if len(dataset.train) == 0 or len(dataset.test) == 0:
        raise TrainError(f"{dataset.source}: the train or test split is empty")
    return dataset


def _checkpoint_to_resume(options: Options) -> tuple[Path | None, dict[str, Any] | None]:
    """The output directory, and the checkpoint in it to continue from (None: start anew)."""
    out = Path(options.out) if options.out is not None else None
    if not options.resume:
        return out, None
    if out is None:
        raise TrainError("--resume needs the output directory of the run to continue (--out DIR)")
    return out, checkpoint.load(out / checkpoint.CHECKPOINT)


def _place_tensors(dataset: data.Dataset, device: torch.device, observer: Observer) -> _Tensors:
    """On CUDA, the whole dataset on the GPU (batches are gathered there), or pinned memory when it
    does not fit; on the CPU, the tensors as loaded."""
    import torch

    tensors = _Tensors(dataset.train.images, dataset.train.labels, dataset.test.images, dataset.test.labels)
    if device.type != "cuda":
        return tensors
    try:  # the fast path: the whole dataset on the GPU, gathered there
        return _Tensors(*(t.to(device) for t in _fields(tensors)))
    except torch.cuda.OutOfMemoryError:
        observer.message("the dataset does not fit on the GPU: batches are copied from pinned memory")
        return _Tensors(*(t.pin_memory() for t in _fields(tensors)))


def _fields(tensors: _Tensors) -> tuple[torch.Tensor, ...]:
    return (tensors.train_images, tensors.train_labels, tensors.test_images, tensors.test_labels)


def _process_batch(settings: Settings, dist: _Distributed, observer: Observer) -> int:
    """Each process's batch: under DDP the recipe's batch is shared among the processes."""
    if not dist.active:
        return settings.batch
    if settings.batch % dist.world:
        observer.message(
            f"batch {settings.batch} is not divisible by {dist.world} processes: "
            f"each takes {max(1, settings.batch // dist.world)}"
        )
    return max(1, settings.batch // dist.world)


def _autocast(device: torch.device) -> Any:
    """A context factory: bf16 autocast on CUDA, nothing elsewhere."""
    import torch

    if device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return lambda: nullcontext()


def _set_layout(
    settings: Settings,
    options: Options,
    state: dict[str, Any] | None,
    model: nn.Module,
    pipeline: data.Pipeline,
    tensors: _Tensors,
    batch: int,
    criterion: nn.Module,
    autocast: Any,
    dist: _Distributed,
) -> layout.Choice:
    """Chooses the activations' memory layout (`_choose_layout`, on the first batch) and puts the
    model and the pipeline in it."""
    import torch

    first = torch.arange(min(batch, len(tensors.train_labels)), device=tensors.train_images.device)
    sample = _batch(
        settings.task, pipeline, tensors.train_images, tensors.train_labels, first, False, pipeline.device
    )
    choice = _choose_layout(
        options.layout, state, len(settings.input) == 3, model, sample, criterion, autocast, dist
    )
    model.to(memory_format=layout.memory_format(choice.layout))
    pipeline.channels_last = choice.layout == layout.CHANNELS_LAST
    return choice


def _resume(run: _Run, state: dict[str, Any]) -> None:
    """Continues the checkpoint's run: the model's, optimiser's and schedule's states, every random
    generator's, and the history; says so, and says when the recipe changed since."""
    import torch

    assert run.out is not None
    try:
        run.model.load_state_dict(state["model"])
        run.optimizer.load_state_dict(state["optimizer"])
        if run.scheduler is not None and state.get("scheduler") is not None:
            run.scheduler.load_state_dict(state["scheduler"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise TrainError(
            f"{run.out / checkpoint.CHECKPOINT} does not fit this model or recipe: it was saved by a "
            f"different network or optimiser ({type(exc).__name__}); use another --out to start anew"
        ) from None
    torch.set_rng_state(state["rng"]["torch"])
    run.shuffle.set_state(state["rng"]["shuffle"])
    augment_states = state["rng"]["augment"]
    if run.dist.rank < len(augment_states):
        run.augment.set_state(augment_states[run.dist.rank])
    if run.cuda and state["rng"].get("cuda") is not None:
        torch.cuda.set_rng_state(state["rng"]["cuda"], run.device)
    run.history = [EpochMetrics.from_dict(row) for row in state["history"]]
    run.start = int(state["epoch"]) + 1
    saved = {"task": "classification", **state.get("recipe", {})}
    now = run.settings.recipe()
    changed = sorted(k for k in now if k != "epochs" and saved.get(k) != now[k])
    if changed:
        run.observer.message(
            f"resuming with a different recipe than the checkpoint's ({', '.join(changed)}); "
            "the optimiser and schedule continue from their saved states"
        )
    run.observer.message(f"resuming after epoch {run.start - 1} from {run.out / checkpoint.CHECKPOINT}")


def _network(model: nn.Module, options: Options, dist: _Distributed, device: torch.device) -> nn.Module:
    """The model as it trains: compiled (`--compile`), then wrapped in DistributedDataParallel."""
    import torch

    network: nn.Module = model
    if options.compile:
        # One graph per batch size (the full batches and the last one) rather than a dynamic-shape
        # graph after the first size change: static kernels are the fast ones.
        network = torch.compile(model, dynamic=False)  # type: ignore[assignment]
    if dist.active:
        from torch.nn.parallel import DistributedDataParallel

        network = DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None
        )
    return network


# --- an epoch -------------------------------------------------------------------------------------


@dataclass
class _Pass:
    """One epoch's training pass, summed over all ranks."""

    #: Each step's loss on this rank (the stall check reads them).
    losses: torch.Tensor
    loss: float
    correct: float
    images: float
    #: What the accuracy counts: images, or pixels.
    units: float
    seconds: float


def _epoch(run: _Run, epoch: int) -> _Evaluation:
    """Trains one epoch, steps an epoch-wise schedule, evaluates, reports the epoch's figures (and a
    stall), and saves the checkpoint and metrics; returns the evaluation."""
    lr = float(run.optimizer.param_groups[0]["lr"])
    trained = _train_pass(run, epoch, lr)
    if run.scheduler is not None and not run.per_step:
        run.scheduler.step()
    evaluation = _evaluate_run(run)
    judged = run.task != "reconstruction"
    row = EpochMetrics(
        epoch=epoch,
        lr=lr,
        train_loss=trained.loss / trained.images,
        train_accuracy=trained.correct / trained.units if judged else None,
        train_time=trained.seconds,
        train_images_per_s=trained.images / max(trained.seconds, 1e-9),
        test_loss=evaluation.loss,
        test_accuracy=evaluation.accuracy,
        test_time=evaluation.seconds,
        test_images_per_s=len(run.dataset.test) / max(evaluation.seconds, 1e-9),
        test_mean_iou=evaluation.mean_iou,
        test_mse=evaluation.mse,
    )
    run.history.append(row)
    run.observer.epoch_end(row)
    # Chance level is ln(classes) for classes seen equally often, as images of a class are, not
    # pixels (mostly background): only a classification is judged.
    stall = _stalled(trained.losses, row, len(run.dataset.classes)) if run.task == "classification" else None
    if stall is not None:
        run.stalled.append(epoch)
        run.observer.message(f"warning: epoch {epoch}: {stall}")
    if run.writes:
        _save_epoch(run, epoch)
    elif run.dist.active:
        _gather_states(run.augment, run.dist)  # every rank takes part in the collective
    return evaluation


def _train_pass(run: _Run, epoch: int, lr: float) -> _Pass:
    """One pass over this rank's shard of a fresh permutation: a step per batch, the loss checked
    for NaN and the progress reported every few steps."""
    import torch
    import torch.distributed as torch_dist

    dist, device, tensors, batch, steps = run.dist, run.device, run.tensors, run.batch, run.steps_per_epoch
    judged = run.task != "reconstruction"  # whether outputs are classes, with an accuracy
    run.network.train()
    order = torch.randperm(len(run.dataset.train), generator=run.shuffle)
    mine = order[dist.rank * run.shard : (dist.rank + 1) * run.shard]
    if run.cuda and tensors.train_images.is_cuda:
        mine = mine.to(device)
    run.observer.epoch_start(epoch, run.settings.epochs, len(mine) * dist.world)
    losses = torch.zeros(steps, device=device)  # per step: the NaN check names the step
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = units = checked = 0
    began = time.perf_counter()
    for step in range(steps):
        index = mine[step * batch : (step + 1) * batch]
        x, y = _batch(run.task, run.pipeline, tensors.train_images, tensors.train_labels, index, True, device)
        output, loss = _step(run, x, y)
        n = int(y.shape[0])
        losses[step] = loss.detach()
        loss_sum += loss.detach().double() * n
        if judged:  # the predicted class of each image, or of each pixel
            correct += (output.detach().argmax(1) == y).sum()
        seen += n
        units += int(y.numel()) if judged else n
        if not run.cuda or step % SYNC_EVERY == SYNC_EVERY - 1 or step == steps - 1:
            _check_finite(losses, checked, step, epoch, lr)
            checked = step + 1
            if step % 10 == 9 or step == steps - 1:
                elapsed = time.perf_counter() - began
                run.observer.progress(
                    seen * dist.world,
                    float(loss_sum) / seen,
                    int(correct) / units if judged else math.nan,
                    seen * dist.world / max(elapsed, 1e-9),
                )
    if run.cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - began
    counts = torch.tensor([float(seen), float(units)], dtype=torch.float64, device=device)
    totals = torch.cat([torch.stack([loss_sum, correct.double()]), counts])
    if dist.active:
        torch_dist.all_reduce(totals)
    loss_total, correct_total, images, units_total = (float(v) for v in totals)
    return _Pass(losses, loss_total, correct_total, images, units_total, seconds)


def _step(run: _Run, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch (and a batch-wise schedule's); the primary output and the loss."""
    with run.autocast():
        output = primary(run.network(x))
    loss = run.criterion(output.float(), y)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    if run.per_step and run.scheduler is not None:
        run.scheduler.step()
    return output, loss


def _save_epoch(run: _Run, epoch: int) -> None:
    """The checkpoint after `epoch` (every state a resumed run needs), the metrics and the curves."""
    import torch

    assert run.out is not None
    state = {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict() if run.scheduler is not None else None,
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(run.device) if run.cuda else None,
            "shuffle": run.shuffle.get_state(),
            "augment": _gather_states(run.augment, run.dist),
        },
        "epoch": epoch,
        "layout": run.choice.layout,
        "history": [m.row() for m in run.history],
        "recipe": run.settings.recipe(),
    }
    checkpoint.save(run.out / checkpoint.CHECKPOINT, state)
    metrics.write_metrics(run.out, run.history)
    metrics.plot_curves(run.out, run.history, run.title)


def _evaluate_run(run: _Run) -> _Evaluation:
    """The model on the test set (`_evaluate`), in batches twice the training's."""
    return _evaluate(
        run.model,
        run.pipeline,
        run.criterion,
        run.tensors.test_images,
        run.tensors.test_labels,
        2 * run.batch,
        len(run.dataset.classes),
        run.dist,
        run.autocast,
        run.device,
        run.task,
    )


# --- the end of a run -----------------------------------------------------------------------------


def _finish(run: _Run, evaluation: _Evaluation) -> Result:
    """The final report (written, with the pictures and the trained weights, by the writing rank)
    and the run's `Result`."""
    import torch

    accuracy: float | None = None
    matrix: list[list[int]] = []
    if run.task == "reconstruction":
        test_metrics, report = _reconstruction_report(run, evaluation)
    else:
        accuracy, matrix, test_metrics, report = _class_report(run, evaluation)
    if run.writes:
        assert run.out is not None
        if run.task != "classification":
            _pictures(run, run.out)
        with atomic_path(run.out / MODEL_FILE) as temporary:
            torch.save(run.model.state_dict(), temporary)
    return Result(
        model=run.model,
        history=run.history,
        test_accuracy=accuracy,
        classes=run.dataset.classes if run.task != "reconstruction" else [],
        confusion=matrix,
        report=report,
        out=run.out,
        device=str(run.device),
        world_size=run.dist.world,
        layout=run.choice.layout,
        stalled=run.stalled,
        task=run.task,
        test_metrics=test_metrics,
    )


def _reconstruction_report(run: _Run, evaluation: _Evaluation) -> tuple[dict[str, float], str]:
    """A reconstruction's test figures and report (written by the writing rank)."""
    assert evaluation.mse is not None
    settings, measured_in = run.settings, _units(run.settings)
    test_metrics = {"mse": evaluation.mse, "loss": evaluation.loss}
    if not run.writes:
        report = metrics.reconstruction_report_text(
            run.title, evaluation.mse, evaluation.loss, settings.loss.name, measured_in
        )
        return test_metrics, report
    assert run.out is not None
    report = metrics.write_reconstruction_report(
        run.out,
        run.title,
        evaluation.mse,
        evaluation.loss,
        settings.loss.name,
        measured_in,
        settings.recipe(),
    )
    return test_metrics, report


def _class_report(run: _Run, evaluation: _Evaluation) -> tuple[float, list[list[int]], dict[str, float], str]:
    """A classification's or segmentation's accuracy, confusion matrix, test figures and report
    (written by the writing rank)."""
    assert evaluation.confusion is not None
    matrix: list[list[int]] = evaluation.confusion.tolist()
    classes, recipe = run.dataset.classes, run.settings.recipe
    if run.task == "segmentation":
        accuracy = metrics.pixel_accuracy(matrix)
        test_metrics = {"pixel_accuracy": accuracy, "mean_iou": metrics.mean_iou(matrix)}
        if run.writes:
            assert run.out is not None
            report = metrics.write_segmentation_report(run.out, run.title, classes, matrix, recipe())
        else:
            report = metrics.segmentation_report_text(run.title, classes, matrix)
        return accuracy, matrix, test_metrics, report
    accuracy = sum(matrix[i][i] for i in range(len(classes))) / max(1, sum(map(sum, matrix)))
    if run.writes:
        assert run.out is not None
        report = metrics.write_report(run.out, run.title, accuracy, classes, matrix, recipe())
    else:
        report = metrics.report_text(run.title, accuracy, classes, matrix)
    return accuracy, matrix, {"accuracy": accuracy}, report


def _units(settings: Settings) -> str:
    """What a reconstruction's MSE is measured in: its target's units, the prepared input's."""
    if settings.normalize is False:
        return "pixel values in [0, 1]"
    return "the normalised input's units (normalize = false would give pixel values in [0, 1])"


def _pictures(run: _Run, out: Path) -> None:
    """masks.png or reconstructions.png: the first test images, what the model made of them and,
    for a segmentation, the true masks."""
    import torch

    task, model, pipeline, dataset, autocast = run.task, run.model, run.pipeline, run.dataset, run.autocast
    images, labels = run.tensors.test_images, run.tensors.test_labels
    index = torch.arange(min(pictures.SAMPLES, len(labels)), device=images.device)
    x, y = _batch(task, pipeline, images, labels, index, False, run.device)
    model.eval()
    with torch.no_grad(), autocast():
        output = primary(model(x))
    output = output.float()

    def shown(batch: torch.Tensor) -> Any:
        return pipeline.pixels(batch.float()).permute(0, 2, 3, 1).cpu().numpy()

    if task == "segmentation":
        predicted = output[:, : len(dataset.classes)].argmax(1)
        pictures.plot_masks(
            out / pictures.MASKS,
            run.title,
            shown(x),
            y.cpu().numpy(),
            predicted.cpu().numpy(),
            dataset.classes,
        )
    else:
        pictures.plot_reconstructions(out / pictures.RECONSTRUCTIONS, run.title, shown(x), shown(output))


def _choose_layout(
    wanted: str,
    state: dict[str, Any] | None,
    image_input: bool,
    model: nn.Module,
    sample: tuple[torch.Tensor, torch.Tensor],
    criterion: nn.Module,
    autocast: Any,
    dist: _Distributed,
) -> layout.Choice:
    """The layout asked for; for "auto", the resumed run's own, or the faster one measured on the
    first batch (by rank 0, for every rank: all of them must hold their parameters alike)."""
    import torch.distributed as torch_dist

    if wanted not in ("auto", *layout.LAYOUTS):
        raise TrainError(f"layout {wanted!r}: expected auto, {' or '.join(layout.LAYOUTS)}")
    if not image_input:  # features [F] or sequences: nothing to lay out differently
        return layout.Choice(layout.CONTIGUOUS, {})
    if wanted != "auto":
        return layout.Choice(wanted, {})
    if state is not None and state.get("layout") in layout.LAYOUTS:
        return layout.Choice(str(state["layout"]), {})
    choice = None
    if dist.rank == 0:
        x, y = sample

        def loss(output: Any, target: torch.Tensor) -> torch.Tensor:
            return criterion(primary(output).float(), target)

        choice = layout.measure(model, x, y, loss, autocast)
    if dist.active:
        shared = [choice]
        # NCCL sends the pickled object from this rank's own GPU, not whichever is current.
        device = sample[1].device
        torch_dist.broadcast_object_list(shared, src=0, device=device if device.type == "cuda" else None)
        choice = shared[0]
    assert choice is not None
    return choice


def _stalled(losses: torch.Tensor, row: EpochMetrics, classes: int) -> str | None:
    """Why the epoch looks like a network that does not learn, or None: over the second half of an
    epoch of at least `STALL_STEPS` steps, the loss stayed at ln(classes) (chance level) and the
    accuracy near chance. A short epoch, or one whose loss left chance level, is not judged so."""
    steps = len(losses)
    if steps < STALL_STEPS:
        return None
    chance = math.log(classes)
    late = float(losses[steps // 2 :].mean())
    accuracy = row.train_accuracy if row.train_accuracy is not None else 0.0
    if abs(late - chance) >= 0.01 * chance or accuracy >= 2 / classes:
        return None
    return (
        f"the training loss sat at ln({classes}) = {chance:.3f} (chance level, accuracy "
        f"{100 * accuracy:.1f} %) through the last {steps - steps // 2} of its {steps} steps: "
        "the network is not learning. Try a lower learning rate, another --seed, or momentum"
    )


def _require_cxx() -> None:
    """torch.compile's CPU backend compiles C++ at run time; without a compiler it fails mid-epoch."""
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise TrainError(
            f"--compile on the CPU needs a C++ compiler and `{compiler}` was not found: install one "
            "(apt-get install g++), point CXX at yours, or train without --compile"
        )


def _check_finite(losses: torch.Tensor, checked: int, step: int, epoch: int, lr: float) -> None:
    """Raises for the first non-finite loss among steps `checked`..`step` (0-based)."""
    import torch

    done = losses[: step + 1]
    bad = (~torch.isfinite(done[checked:])).nonzero()
    if len(bad):
        first = checked + int(bad[0, 0])
        value = float(done[first])
        raise TrainError(
            f"the training loss became {value} at epoch {epoch}, step {first + 1}: training stopped. "
            f"Try a lower learning rate (now {lr:g}), e.g. --lr {lr / 10:g}"
        )


def _gather_states(generator: torch.Generator, dist: _Distributed) -> list[torch.Tensor]:
    """Every rank's augmentation generator state (ranks draw different crops and flips)."""
    import torch.distributed as torch_dist

    state = generator.get_state()
    if not dist.active:
        return [state]
    states: list[Any] = [None] * dist.world
    torch_dist.all_gather_object(states, state)
    return states


def confusion_of(predicted: torch.Tensor, truth: torch.Tensor, classes: int) -> torch.Tensor:
    """The confusion matrix [classes, classes] (rows: true class, columns: predicted) of class
    indices of any one shape: a class per image, or per pixel."""
    import torch

    pairs = (truth.reshape(-1) * classes + predicted.reshape(-1)).long()
    return torch.bincount(pairs, minlength=classes * classes).reshape(classes, classes)


@dataclass
class _Evaluation:
    """One pass over the test set, over all ranks."""

    loss: float
    seconds: float
    #: Rows true classes, columns predicted, counting images or pixels (None: a reconstruction).
    confusion: torch.Tensor | None = None
    #: Of the images (classification) or the pixels (segmentation).
    accuracy: float | None = None
    mean_iou: float | None = None
    #: A reconstruction's mean squared error per element.
    mse: float | None = None


def _evaluate(
    model: nn.Module,
    pipeline: data.Pipeline,
    criterion: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch: int,
    classes: int,
    dist: _Distributed,
    autocast: Any,
    device: torch.device,
    task: str = "classification",
) -> _Evaluation:
    """Test loss, seconds, and the task's figures: the confusion matrix (rows: true class) and the
    accuracy of the images or of the pixels, or a reconstruction's squared error."""
    import torch
    import torch.distributed as torch_dist

    model.eval()
    began = time.perf_counter()
    mine = torch.arange(dist.rank, len(labels), dist.world, device=images.device)
    # the loss summed over images, the images, the squared error summed over elements, the elements
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    confusion = torch.zeros(classes * classes, dtype=torch.int64, device=device)
    with torch.no_grad():
        for start in range(0, len(mine), batch):
            index = mine[start : start + batch]
            x, y = _batch(task, pipeline, images, labels, index, False, device)
            with autocast():
                output = primary(model(x))
            output = output.float()
            sums[0] += criterion(output, y).double() * y.shape[0]
            sums[1] += y.shape[0]
            if task == "reconstruction":
                sums[2] += (output - y).square().sum().double()
                sums[3] += y.numel()
            else:
                confusion += confusion_of(output[:, :classes].argmax(1), y, classes).reshape(-1)
    if dist.active:
        torch_dist.all_reduce(sums)
        torch_dist.all_reduce(confusion)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - began
    loss = float(sums[0]) / max(1.0, float(sums[1]))
    if task == "reconstruction":
        return _Evaluation(loss, seconds, mse=float(sums[2]) / max(1.0, float(sums[3])))
    matrix = confusion.reshape(classes, classes).cpu()
    accuracy = int(matrix.trace()) / max(1, int(matrix.sum()))
    mean_iou = metrics.mean_iou(matrix.tolist()) if task == "segmentation" else None
    return _Evaluation(loss, seconds, matrix, accuracy, mean_iou)
