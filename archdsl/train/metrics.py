"""Metrics of a run and the files that show them: metrics.jsonl and metrics.csv (one row per epoch),
curves.png (loss and accuracy), and the final report (report.md, report.json, confusion.png).

The columns follow the task: a classification's are the fields of `EpochMetrics` down to
`test_images_per_s`; a segmentation's accuracies are pixel accuracies and it adds `test_mean_iou`;
a reconstruction has no accuracy and adds `test_mse`.

Consumes plain numbers (no torch); every file goes through `archdsl.atomic`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..atomic import atomic_path, write_text

METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
CURVES = "curves.png"
CONFUSION = "confusion.png"
REPORT_MD = "report.md"
REPORT_JSON = "report.json"


@dataclass
class EpochMetrics:
    epoch: int
    lr: float
    train_loss: float
    #: Of the images (classification), of the pixels (segmentation); None for a reconstruction.
    train_accuracy: float | None
    train_time: float
    train_images_per_s: float
    test_loss: float
    test_accuracy: float | None
    test_time: float
    test_images_per_s: float
    #: Segmentation only: the mean over classes of intersection over union (`mean_iou`).
    test_mean_iou: float | None = None
    #: Reconstruction only: the mean squared error of the output to the input, per element.
    test_mse: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpochMetrics:
        # A checkpoint's history holds the task's fields only (`row`): the others are None.
        values: dict[str, Any] = {f.name: data.get(f.name) for f in fields(cls)}
        return cls(**values)

    def row(self) -> dict[str, Any]:
        """Its fields that apply to the task (those not None), in order."""
        return {name: value for name, value in asdict(self).items() if value is not None}


def write_metrics(out: str | os.PathLike[str], history: list[EpochMetrics]) -> None:
    """Rewrites both metrics files whole: each stays a complete table after every epoch."""
    directory = Path(out)
    rows = [m.row() for m in history]
    write_text(directory / METRICS_JSONL, "".join(json.dumps(row) + "\n" for row in rows))
    buffer = io.StringIO()
    columns = list(rows[0]) if rows else [f.name for f in fields(EpochMetrics)]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(directory / METRICS_CSV, buffer.getvalue())


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window, work without a display
    import matplotlib.pyplot as plt

    return plt


def curves_figure(history: list[EpochMetrics], title: str) -> Any:
    """Loss and accuracy per epoch, side by side; the x axis has integer epochs only (a 1-epoch run
    gets one tick, 1, not 0.95…1.05). A segmentation's right panel shows pixel accuracies and the
    test mean IoU; a reconstruction's, the test MSE."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    epochs = [m.epoch for m in history]
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axes.plot(epochs, [m.train_loss for m in history], "o-", label="train")
    loss_axes.plot(epochs, [m.test_loss for m in history], "o-", label="test")
    loss_axes.set(xlabel="epoch", ylabel="loss", title="loss")
    if history and history[0].test_mse is not None:
        accuracy_axes.plot(epochs, [m.test_mse for m in history], "o-", color="C1", label="test")
        accuracy_axes.set(xlabel="epoch", ylabel="mean squared error", title="test MSE")
    else:
        accuracy_axes.plot(epochs, [100 * (m.train_accuracy or 0.0) for m in history], "o-", label="train")
        accuracy_axes.plot(epochs, [100 * (m.test_accuracy or 0.0) for m in history], "o-", label="test")
        if history and history[0].test_mean_iou is not None:
            iou = [100 * (m.test_mean_iou or 0.0) for m in history]
            accuracy_axes.plot(epochs, iou, "s--", label="test mean IoU")
            accuracy_axes.set(xlabel="epoch", ylabel="%", title="pixel accuracy and mean IoU")
        else:
            accuracy_axes.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_curves(out: str | os.PathLike[str], history: list[EpochMetrics], title: str) -> None:
    figure = curves_figure(history, title)
    with atomic_path(Path(out) / CURVES) as temporary:
        figure.savefig(temporary, dpi=100)
    _pyplot().close(figure)


def per_class(confusion: list[list[int]]) -> list[tuple[int, int, float]]:
    """(correct, total, accuracy) per true class; rows of `confusion` are true classes."""
    result = []
    for i, row in enumerate(confusion):
        total = sum(row)
        result.append((row[i], total, row[i] / total if total else 0.0))
    return result


def report_text(title: str, accuracy: float, classes: list[str], confusion: list[list[int]]) -> str:
    """The final report as Markdown: the test accuracy and a per-class accuracy table."""
    width = max(len("class"), *(len(c) for c in classes))
    lines = [
        f"# {title}",
        "",
        f"test accuracy: {100 * accuracy:.2f} %",
        "",
        f"| {'class'.ljust(width)} | correct |  total | accuracy |",
        f"|{'-' * (width + 2)}|--------:|-------:|---------:|",
    ]
    for name, (correct, total, acc) in zip(classes, per_class(confusion), strict=True):
        lines.append(f"| {name.ljust(width)} | {correct:7d} | {total:6d} | {100 * acc:7.2f}% |")
    return "\n".join(lines) + "\n"


def write_report(
    out: str | os.PathLike[str],
    title: str,
    accuracy: float,
    classes: list[str],
    confusion: list[list[int]],
    recipe: dict[str, Any],
) -> str:
    directory = Path(out)
    text = report_text(title, accuracy, classes, confusion)
    write_text(directory / REPORT_MD, text)
    data = {
        "title": title,
        "test_accuracy": accuracy,
        "classes": classes,
        "per_class_accuracy": {c: acc for c, (_, _, acc) in zip(classes, per_class(confusion), strict=True)},
        "confusion": confusion,
        "recipe": recipe,
    }
    write_text(directory / REPORT_JSON, json.dumps(data, indent=2) + "\n")
    plot_confusion(directory / CONFUSION, title, classes, confusion)
    return text


def plot_confusion(path: Path, title: str, classes: list[str], confusion: list[list[int]]) -> None:
    plt = _pyplot()
    n = len(classes)
    size = max(5.0, 0.55 * n + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    image = axes.imshow(confusion, cmap="Blues")
    axes.set_xticks(range(n), classes, rotation=45, ha="right")
    axes.set_yticks(range(n), classes)
    axes.set(xlabel="predicted", ylabel="true", title=f"{title}: confusion matrix")
    if n <= 20:
        peak = max((max(row) for row in confusion), default=0)
        for i, row in enumerate(confusion):
            for j, count in enumerate(row):
                colour = "white" if count > peak / 2 else "black"
                axes.text(j, i, str(count), ha="center", va="center", fontsize=7, color=colour)
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)


# --- segmentation ----------------------------------------------------------------------------------


def pixel_accuracy(confusion: list[list[int]]) -> float:
    """The share of pixels whose predicted class is their true class (rows: true classes)."""
    total = sum(map(sum, confusion))
    return sum(confusion[i][i] for i in range(len(confusion))) / total if total else 0.0


def class_iou(confusion: list[list[int]]) -> list[float | None]:
    """Per class, intersection over union: true positives / (true + false positives + false
    negatives), over the pixels the confusion matrix counts (rows: true classes, columns:
    predicted). None for a class neither present nor predicted (its union is empty)."""
    result: list[float | None] = []
    for i, row in enumerate(confusion):
        union = sum(row) + sum(r[i] for r in confusion) - row[i]
        result.append(row[i] / union if union else None)
    return result


def mean_iou(confusion: list[list[int]]) -> float:
    """The mean of `class_iou` over the classes it is defined for (the background included), so
    a class the test images neither hold nor get predicted is left out rather than counted 0 or 1."""
    ious = [iou for iou in class_iou(confusion) if iou is not None]
    return sum(ious) / len(ious) if ious else 0.0


def segmentation_report_text(title: str, classes: list[str], confusion: list[list[int]]) -> str:
    """The final report of a segmentation: pixel accuracy, mean IoU and a per-class table."""
    width = max(len("class"), *(len(c) for c in classes))
    lines = [
        f"# {title}",
        "",
        f"test pixel accuracy: {100 * pixel_accuracy(confusion):.2f} %",
        f"test mean IoU: {100 * mean_iou(confusion):.2f} %",
        "",
        f"| {'class'.ljust(width)} |     IoU | pixels (true) | pixels (predicted) |",
        f"|{'-' * (width + 2)}|--------:|--------------:|-------------------:|",
    ]
    for i, (name, iou) in enumerate(zip(classes, class_iou(confusion), strict=True)):
        shown = "–" if iou is None else f"{100 * iou:6.2f}%"
        true, predicted = sum(confusion[i]), sum(row[i] for row in confusion)
        lines.append(f"| {name.ljust(width)} | {shown:>7} | {true:13d} | {predicted:18d} |")
    return "\n".join(lines) + "\n"


def write_segmentation_report(
    out: str | os.PathLike[str],
    title: str,
    classes: list[str],
    confusion: list[list[int]],
    recipe: dict[str, Any],
) -> str:
    directory = Path(out)
    text = segmentation_report_text(title, classes, confusion)
    write_text(directory / REPORT_MD, text)
    data = {
        "title": title,
        "task": "segmentation",
        "test_pixel_accuracy": pixel_accuracy(confusion),
        "test_mean_iou": mean_iou(confusion),
        "classes": classes,
        "per_class_iou": dict(zip(classes, class_iou(confusion), strict=True)),
        "confusion": confusion,
        "recipe": recipe,
    }
    write_text(directory / REPORT_JSON, json.dumps(data, indent=2) + "\n")
    plot_confusion(directory / CONFUSION, title, classes, confusion)
    return text


# --- reconstruction --------------------------------------------------------------------------------


def reconstruction_report_text(title: str, mse: float, loss: float, loss_name: str, units: str) -> str:
    lines = [f"# {title}", "", f"test MSE: {mse:.6f} ({units})"]
    if loss_name != "mse":
        lines.append(f"test loss ({loss_name}): {loss:.6f}")
    return "\n".join(lines) + "\n"


def write_reconstruction_report(
    out: str | os.PathLike[str],
    title: str,
    mse: float,
    loss: float,
    loss_name: str,
    units: str,
    recipe: dict[str, Any],
) -> str:
    directory = Path(out)
    text = reconstruction_report_text(title, mse, loss, loss_name, units)
    write_text(directory / REPORT_MD, text)
    data = {
        "title": title,
        "task": "reconstruction",
        "test_mse": mse,
        "test_loss": loss,
        "units": units,
        "recipe": recipe,
    }
    write_text(directory / REPORT_JSON, json.dumps(data, indent=2) + "\n")
    return text
