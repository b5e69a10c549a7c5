"""Setting up a training run: the device, the dataset, the network in its memory layout, the
optimiser and schedule, a resumed run's state, and the runtime `Options` and `Observer` they answer
to. Consumes a `ShapedModel` and its `Settings`; produces the `Run` that `epoch.py` advances and
`loop.py` orchestrates.

On CUDA the dataset goes onto the GPU whole (or into pinned memory when it does not fit), with
cuDNN autotuning, TF32 matmuls and bf16 autocast; channels_last activations on CPU and GPU where
they measure faster (`layout.measure`). Optionally `torch.compile` (on the CPU it needs a C++
compiler). Under `torchrun` (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel.
"""

from __future__ import annotations

import math
import os
import shutil
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..shapes import ShapedModel
from . import checkpoint, data, layout, metrics, pictures, watch
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
    watch.LAYERS_PNG,
)


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
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1


def distributed_env() -> Distributed:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    return Distributed(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


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


def pick_device(name: str, dist: Distributed) -> torch.device:
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


def batch_of(
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


@dataclass
class _Tensors:
    """The dataset's images and labels where training reads them: on the GPU, pinned, or as loaded."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


@dataclass
class Run:
    """One training run as its stages share it: set up once (`set_up`), then read and advanced epoch
    by epoch (`run_epoch`), and reported on at the end (`_finish`)."""

    shaped: ShapedModel
    settings: Settings
    options: Options
    observer: Observer
    dist: Distributed
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
    #: The per-layer diagnostics, and the TensorBoard files where asked (rank 0).
    watcher: watch.Watch
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


# --- setting up -----------------------------------------------------------------------------------


def set_up(
    shaped: ShapedModel,
    settings: Settings,
    options: Options,
    observer: Observer,
    dist: Distributed,
    build_model: Any,
) -> Run:
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
    run = Run(
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
        watcher=watch.Watch(model, settings.tensorboard if dist.rank == 0 else None),
    )
    if state is not None:
        _resume(run, state)
    run.network = _network(model, options, dist, device)
    return run


def _set_up_device(options: Options, dist: Distributed) -> torch.device:
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


def _process_batch(settings: Settings, dist: Distributed, observer: Observer) -> int:
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
    dist: Distributed,
) -> layout.Choice:
    """Chooses the activations' memory layout (`_choose_layout`, on the first batch) and puts the
    model and the pipeline in it."""
    import torch

    first = torch.arange(min(batch, len(tensors.train_labels)), device=tensors.train_images.device)
    sample = batch_of(
        settings.task, pipeline, tensors.train_images, tensors.train_labels, first, False, pipeline.device
    )
    choice = _choose_layout(
        options.layout, state, len(settings.input) == 3, model, sample, criterion, autocast, dist
    )
    model.to(memory_format=layout.memory_format(choice.layout))
    pipeline.channels_last = choice.layout == layout.CHANNELS_LAST
    return choice


def _resume(run: Run, state: dict[str, Any]) -> None:
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
    run.watcher.diagnostics.restore(state.get("diagnostics"))
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


def _network(model: nn.Module, options: Options, dist: Distributed, device: torch.device) -> nn.Module:
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


def _choose_layout(
    wanted: str,
    state: dict[str, Any] | None,
    image_input: bool,
    model: nn.Module,
    sample: tuple[torch.Tensor, torch.Tensor],
    criterion: nn.Module,
    autocast: Any,
    dist: Distributed,
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


def _require_cxx() -> None:
    """torch.compile's CPU backend compiles C++ at run time; without a compiler it fails mid-epoch."""
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise TrainError(
            f"--compile on the CPU needs a C++ compiler and `{compiler}` was not found: install one "
            "(apt-get install g++), point CXX at yours, or train without --compile"
        )
