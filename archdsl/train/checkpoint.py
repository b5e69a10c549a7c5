"""Checkpoints: everything a run needs to continue exactly where it stopped, written atomically.

A checkpoint holds the model, optimiser and schedule states, the random-number states (torch's
global one, CUDA's, and the run's shuffling and augmentation generators), the epoch just finished
and the metrics so far. It is written through `atomic_path`, so a run killed mid-write leaves the
previous checkpoint intact, and read with `weights_only=True`, so loading never runs pickled code.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

from ..atomic import atomic_path
from .errors import TrainError

CHECKPOINT = "checkpoint.pt"
FORMAT = 1


def save(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    import torch

    with atomic_path(path) as temporary:
        torch.save({"format": FORMAT, **state}, temporary)


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads a checkpoint written by `save`; a missing, truncated or foreign file is a `TrainError`."""
    import torch

    target = Path(path)
    if not target.is_file():
        raise TrainError(f"no checkpoint to resume from: {target} does not exist")
    try:
        state = torch.load(target, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
        # torch's own message here advises `weights_only=False`, which a checkpoint never needs.
        raise TrainError(
            f"{target}: the checkpoint is unreadable: truncated, corrupt or not written by archdsl "
            f"({type(exc).__name__}); delete it to start over"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "model" not in state:
        raise TrainError(f"{target}: not an archdsl checkpoint")
    return state
