"""The pictures of a segmentation or a reconstruction: a few test images with what the trained model
made of them, beside the truth (masks.png, reconstructions.png).

Consumes numpy arrays (pixels in [0, 1], masks of class indices); every file goes through
`archdsl.atomic`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..atomic import atomic_path
from .metrics import _pyplot

MASKS = "masks.png"
RECONSTRUCTIONS = "reconstructions.png"
#: How many test images the pictures show: the first ones of the test set.
SAMPLES = 8

#: The background black, then matplotlib's ten distinct "tab10" colours, then "tab20"'s others.
_PALETTE = ["#000000", *(f"C{i}" for i in range(10))]


def palette(classes: int) -> list[Any]:
    import matplotlib

    colours: list[Any] = [matplotlib.colors.to_rgb(c) for c in _PALETTE[:classes]]
    extra = matplotlib.colormaps["tab20"]
    while len(colours) < classes:
        colours.append(extra(len(colours) % 20)[:3])
    return colours


def _show(axes: Any, image: Any) -> None:
    """An [H, W, C] image in [0, 1]: grey for one channel, colour for three."""
    if image.shape[-1] == 1:
        axes.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        axes.imshow(image, interpolation="nearest")
    axes.set_xticks([])
    axes.set_yticks([])


def _save(figure: Any, path: Path) -> None:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    _pyplot().close(figure)


def plot_masks(
    path: str | os.PathLike[str],
    title: str,
    images: Any,
    truth: Any,
    predicted: Any,
    classes: list[str],
) -> None:
    """Three rows: the images ([n, H, W, C] in [0, 1]), their true masks and the predicted ones
    ([n, H, W] class indices), one colour per class with a legend; each prediction is titled with
    its pixel accuracy."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plt = _pyplot()
    n = len(images)
    colours = palette(len(classes))
    cmap = ListedColormap(colours)
    figure, axes = plt.subplots(3, n, figsize=(1.5 * n + 1.6, 5.4), squeeze=False)
    for j in range(n):
        _show(axes[0][j], images[j])
        for row, mask in ((1, truth[j]), (2, predicted[j])):
            axes[row][j].imshow(mask, cmap=cmap, vmin=-0.5, vmax=len(classes) - 0.5, interpolation="nearest")
            axes[row][j].set_xticks([])
            axes[row][j].set_yticks([])
        axes[2][j].set_title(f"{100 * float((predicted[j] == truth[j]).mean()):.1f} %", fontsize=8)
    for row, label in enumerate(("image", "truth", "predicted")):
        axes[row][0].set_ylabel(label)
    figure.legend(
        handles=[Patch(color=colours[i], label=name) for i, name in enumerate(classes)],
        loc="center right",
        fontsize=7,
        frameon=False,
    )
    figure.suptitle(f"{title}: predicted masks (pixel accuracy above each)")
    figure.tight_layout(rect=(0, 0, 1 - 1.5 / (1.5 * n + 1.6), 1))
    _save(figure, Path(path))


def plot_reconstructions(path: str | os.PathLike[str], title: str, inputs: Any, outputs: Any) -> None:
    """Two rows: the inputs and their reconstructions ([n, H, W, C] in [0, 1]), each
    reconstruction titled with its mean squared error to its input (in these [0, 1] units)."""
    plt = _pyplot()
    n = len(inputs)
    figure, axes = plt.subplots(2, n, figsize=(1.5 * n, 3.6), squeeze=False)
    for j in range(n):
        _show(axes[0][j], inputs[j])
        _show(axes[1][j], outputs[j])
        axes[1][j].set_title(f"{float(((outputs[j] - inputs[j]) ** 2).mean()):.4f}", fontsize=8)
    axes[0][0].set_ylabel("input")
    axes[1][0].set_ylabel("output")
    figure.suptitle(f"{title}: inputs and reconstructions (MSE above each)")
    figure.tight_layout()
    _save(figure, Path(path))
