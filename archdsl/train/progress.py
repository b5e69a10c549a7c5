"""What `archdsl train` shows while a model trains: a tqdm bar per epoch on a terminal, one line
per epoch otherwise, with the task's own figures (accuracy; pixel accuracy and mean IoU; or MSE).
"""

from __future__ import annotations

import math
import sys
from typing import Any, TextIO

from .metrics import EpochMetrics


class Progress:
    """An `Observer` (loop.py) writing to `out`."""

    def __init__(self, out: TextIO, task: str):
        self.out = out
        self.task = task
        self.bar: Any = None
        self.tty = sys.stderr.isatty()

    def message(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.out)
        else:
            self.out.write(text + "\n")

    def epoch_start(self, epoch: int, epochs: int, images: int) -> None:
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=images, desc=f"epoch {epoch}/{epochs}", unit="img", leave=False)

    def progress(self, images: int, loss: float, accuracy: float, images_per_s: float) -> None:
        if self.bar is not None:
            self.bar.n = images
            label = "pixel acc" if self.task == "segmentation" else "acc"
            shown = "" if math.isnan(accuracy) else f"  {label} {100 * accuracy:.2f}%"
            self.bar.set_postfix_str(f"loss {loss:.4f}{shown}  {images_per_s:,.0f} img/s")

    def epoch_end(self, result: EpochMetrics) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.out.write(epoch_line(result) + "\n")
        self.out.flush()


def epoch_line(result: EpochMetrics) -> str:
    """One epoch's figures on one line, for any task."""
    speed = f"({result.train_images_per_s:,.0f} img/s, {result.train_time:.1f} s)"
    if result.test_mse is not None:
        return (
            f"epoch {result.epoch}: train loss {result.train_loss:.6f} {speed} | "
            f"test loss {result.test_loss:.6f} MSE {result.test_mse:.6f}"
        )
    train, test = (100 * (a or 0.0) for a in (result.train_accuracy, result.test_accuracy))
    if result.test_mean_iou is not None:
        return (
            f"epoch {result.epoch}: train loss {result.train_loss:.4f} pixel acc {train:.2f}% {speed} | "
            f"test loss {result.test_loss:.4f} pixel acc {test:.2f}% "
            f"mean IoU {100 * result.test_mean_iou:.2f}%"
        )
    return (
        f"epoch {result.epoch}: train loss {result.train_loss:.4f} acc {train:.2f}% {speed} | "
        f"test loss {result.test_loss:.4f} acc {test:.2f}%"
    )
