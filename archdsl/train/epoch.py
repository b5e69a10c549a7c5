"""One epoch of a training run: the training pass (a step per batch, NaN checks, progress), the
evaluation on the test set, the stall check, and the checkpoint and metrics saved after it.

Consumes the `Run` that `setup.py` made and advances it; produces each epoch's `EpochMetrics`
and `Evaluation`. Under DDP every rank takes its shard of each epoch's permutation and the figures
are summed over all ranks.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import checkpoint, data, metrics
from .errors import TrainError
from .metrics import EpochMetrics
from .setup import Distributed, Run, batch_of, primary

if TYPE_CHECKING:
    import torch
    from torch import nn

#: The "not learning" warning judges the second half of an epoch of at least this many steps: over
#: fewer, a loss that starts at chance level has not had the time to leave it.
STALL_STEPS = 50
#: How often (in steps) the CUDA path checks losses for NaN and refreshes the progress bar: each
#: check waits for the GPU, so it is not done every step there (CPU checks every step, at no cost).
SYNC_EVERY = 25

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


def run_epoch(run: Run, epoch: int) -> Evaluation:
    """Trains one epoch, steps an epoch-wise schedule, evaluates, reports the epoch's figures (and a
    stall), and saves the checkpoint and metrics; returns the evaluation."""
    lr = float(run.optimizer.param_groups[0]["lr"])
    trained = _train_pass(run, epoch, lr)
    if run.scheduler is not None and not run.per_step:
        run.scheduler.step()
    with run.watcher.measuring():
        evaluation = evaluate_run(run)
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
    run.watcher.end_epoch(_reduce_max if run.dist.active else None)
    if run.watcher.board is not None:
        run.watcher.board.epoch(row, trained.losses.tolist(), run.steps_per_epoch, run.model)
    # Chance level is ln(classes) for classes seen equally often, as images of a class are, not
    # pixels (mostly background): only a classification is judged.
    stall = stalled(trained.losses, row, len(run.dataset.classes)) if run.task == "classification" else None
    if stall is not None:
        run.stalled.append(epoch)
        run.observer.message(f"warning: epoch {epoch}: {stall}")
    if run.writes:
        _save_epoch(run, epoch)
    elif run.dist.active:
        gather_states(run.augment, run.dist)  # every rank takes part in the collective
    return evaluation


def _train_pass(run: Run, epoch: int, lr: float) -> _Pass:
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
        x, y = batch_of(
            run.task, run.pipeline, tensors.train_images, tensors.train_labels, index, True, device
        )
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


def _step(run: Run, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch (and a batch-wise schedule's); the primary output and the loss."""
    with run.autocast():
        output = primary(run.network(x))
    loss = run.criterion(output.float(), y)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.watcher.after_backward()
    run.optimizer.step()
    if run.per_step and run.scheduler is not None:
        run.scheduler.step()
    return output, loss


def _save_epoch(run: Run, epoch: int) -> None:
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
            "augment": gather_states(run.augment, run.dist),
        },
        "epoch": epoch,
        "layout": run.choice.layout,
        "history": [m.row() for m in run.history],
        "recipe": run.settings.recipe(),
        "diagnostics": run.watcher.diagnostics.state(),
    }
    checkpoint.save(run.out / checkpoint.CHECKPOINT, state)
    metrics.write_metrics(run.out, run.history)
    metrics.plot_curves(run.out, run.history, run.title)


def evaluate_run(run: Run) -> Evaluation:
    """The model on the test set (`evaluate`), in batches twice the training's."""
    return evaluate(
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


def stalled(losses: torch.Tensor, row: EpochMetrics, classes: int) -> str | None:
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


def _reduce_max(tensor: torch.Tensor) -> None:
    import torch.distributed as torch_dist

    torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.MAX)


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


def gather_states(generator: torch.Generator, dist: Distributed) -> list[torch.Tensor]:
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
class Evaluation:
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


def evaluate(
    model: nn.Module,
    pipeline: data.Pipeline,
    criterion: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch: int,
    classes: int,
    dist: Distributed,
    autocast: Any,
    device: torch.device,
    task: str = "classification",
) -> Evaluation:
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
            x, y = batch_of(task, pipeline, images, labels, index, False, device)
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
        return Evaluation(loss, seconds, mse=float(sums[2]) / max(1.0, float(sums[3])))
    matrix = confusion.reshape(classes, classes).cpu()
    accuracy = int(matrix.trace()) / max(1, int(matrix.sum()))
    mean_iou = metrics.mean_iou(matrix.tolist()) if task == "segmentation" else None
    return Evaluation(loss, seconds, matrix, accuracy, mean_iou)
