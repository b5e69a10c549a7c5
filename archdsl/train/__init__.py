"""Stage 6: training a built model on a dataset (`archdsl train`). Imports torch.

Consumes a `ShapedModel` (its `train { }` section, a `TrainSpec`) and command-line overrides;
produces per-epoch metrics, curves, a final report and checkpoints in an output directory. The
task is a classification, a segmentation (a class per pixel) or a reconstruction (an autoencoder).

    settings.py    TrainSpec + flags + defaults → `Settings` (no torch)
    data.py        datasets decoded once into uint8 tensors (segmentation sets derived from them);
                   batches (and masks) prepared on the device
    loop.py        the orchestration: set up, the epochs, the final report; its public API
                   (`train`, `Options`, `Observer`, `Result`)
    setup.py       device, dataset, network in its memory layout, optimiser, schedule, resume, DDP
    epoch.py       an epoch: the training pass and its steps, NaN and stall checks, evaluation
    watch.py       TensorBoard event files; per-layer gradient norms and dead units (the report's
                   layer table, layers.png, the vanishing-gradient warning)
    checkpoint.py  atomic checkpoints, safe loading (`weights_only=True`)
    metrics.py     metrics files (JSONL, CSV), curves, confusion matrix, mean IoU, the final report
    pictures.py    masks.png and reconstructions.png: test images beside what the model made of them
    progress.py    the CLI's progress lines for a segmentation or a reconstruction

Nothing here prints: the loop reports through an `Observer`, and the CLI renders.
"""

from __future__ import annotations

from .errors import TrainError

__all__ = ["TrainError"]
