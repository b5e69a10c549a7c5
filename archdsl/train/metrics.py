"""Metrics of a run and the files that show them: metrics.jsonl and metrics.csv (one row per epoch),
curves.png (loss and accuracy), and the final report (report.md, report.json, confusion.png).

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
    train_accuracy: float
    train_time: float
    train_images_per_s: float
    test_loss: float
    test_accuracy: float
    test_time: float
    test_images_per_s: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpochMetrics:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def write_metrics(out: str | os.PathLike[str], history: list[EpochMetrics]) -> None:
    """Rewrites both metrics files whole: each stays a complete table after every epoch."""
    directory = Path(out)
    rows = [asdict(m) for m in history]
    write_text(directory / METRICS_JSONL, "".join(json.dumps(row) + "\n" for row in rows))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[f.name for f in fields(EpochMetrics)], lineterminator="\n")
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
    gets one tick, 1, not 0.95…1.05)."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    epochs = [m.epoch for m in history]
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axes.plot(epochs, [m.train_loss for m in history], "o-", label="train")
    loss_axes.plot(epochs, [m.test_loss for m in history], "o-", label="test")
    loss_axes.set(xlabel="epoch", ylabel="loss", title="loss")
    accuracy_axes.plot(epochs, [100 * m.train_accuracy for m in history], "o-", label="train")
    accuracy_axes.plot(epochs, [100 * m.test_accuracy for m in history], "o-", label="test")
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
