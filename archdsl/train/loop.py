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

The run's stages live beside this orchestration: `setup.py` (device, data, network, layout,
optimiser, resume), `epoch.py` (the passes, steps and evaluation) and `watch.py` (TensorBoard
event files and the per-layer diagnostics of the report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import atomic_path
from ..shapes import ShapedModel
from . import layout, metrics, pictures, watch
from .epoch import Evaluation, confusion_of, evaluate_run, run_epoch, stalled
from .errors import TrainError
from .metrics import EpochMetrics
from .settings import Settings
from .setup import (
    MODEL_FILE,
    RUN_FILES,
    Distributed,
    Observer,
    Options,
    Quiet,
    Run,
    batch_of,
    check_shapes,
    distributed_env,
    pick_device,
    prepare_out,
    primary,
    primary_shape,
    set_up,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

#: The public names of the loop (others, e.g. `archdsl sweep`, import them from here).
__all__ = [
    "MODEL_FILE",
    "RUN_FILES",
    "Observer",
    "Options",
    "Quiet",
    "Result",
    "TrainError",
    "check_shapes",
    "confusion_of",
    "pick_device",
    "prepare_out",
    "primary",
    "primary_shape",
    "stalled",
    "train",
]


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
    #: Each layer's gradient norm and each ReLU-family activation's dead units, per epoch.
    diagnostics: watch.Diagnostics | None = None


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
    dist = distributed_env()
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


def _train(
    shaped: ShapedModel,
    settings: Settings,
    options: Options,
    observer: Observer,
    dist: Distributed,
    build_model: Any,
) -> Result:
    run = set_up(shaped, settings, options, observer, dist, build_model)
    try:  # the TensorBoard files are closed (flushed) however the run ends
        evaluation: Evaluation | None = None
        for epoch in range(run.start, run.last + 1):
            evaluation = run_epoch(run, epoch)
        if evaluation is None or run.start > run.last:
            # Nothing left to train (a resumed run that had finished): evaluate for the report.
            evaluation = evaluate_run(run)
        return _finish(run, evaluation)
    finally:
        run.watcher.close()


# --- the end of a run -----------------------------------------------------------------------------


def _finish(run: Run, evaluation: Evaluation) -> Result:
    """The final report (written, with the pictures and the trained weights, by the writing rank)
    and the run's `Result`."""
    import torch

    accuracy: float | None = None
    matrix: list[list[int]] = []
    if run.task == "reconstruction":
        test_metrics, report = _reconstruction_report(run, evaluation)
    else:
        accuracy, matrix, test_metrics, report = _class_report(run, evaluation)
    diagnostics = run.watcher.diagnostics
    warning = diagnostics.warning()
    if warning is not None:
        run.observer.message(f"warning: {warning}")
    if diagnostics.gradient_norms:
        report += "\n" + diagnostics.table()
    if run.writes:
        assert run.out is not None
        watch.write_report(run.out, report, diagnostics, run.title)
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
        diagnostics=diagnostics,
    )


def _reconstruction_report(run: Run, evaluation: Evaluation) -> tuple[dict[str, float], str]:
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


def _class_report(run: Run, evaluation: Evaluation) -> tuple[float, list[list[int]], dict[str, float], str]:
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


def _pictures(run: Run, out: Path) -> None:
    """masks.png or reconstructions.png: the first test images, what the model made of them and,
    for a segmentation, the true masks."""
    import torch

    task, model, pipeline, dataset, autocast = run.task, run.model, run.pipeline, run.dataset, run.autocast
    images, labels = run.tensors.test_images, run.tensors.test_labels
    index = torch.arange(min(pictures.SAMPLES, len(labels)), device=images.device)
    x, y = batch_of(task, pipeline, images, labels, index, False, run.device)
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
