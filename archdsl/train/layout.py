"""The activations' memory layout, chosen per model by timing a few training steps of each.

Neither layout wins everywhere. On this project's 2-core CPU, LeNet-5 trains fastest contiguous
and GoogLeNet-mini channels_last; which is faster depends on the layer sizes, the batch, the
oneDNN or cuDNN build and the machine. So the runner times both on the model it is about to train
instead of assuming one (`benchmarks/train_speed.py` shows the figures).

The timing runs forward and backward only, so the weights stay untouched; it puts back the
batch-norm statistics it moved and every random-number state it drew from (dropout). A run with
the measured layout is therefore step for step the run with that layout named.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

CONTIGUOUS = "contiguous"
CHANNELS_LAST = "channels_last"
LAYOUTS = (CONTIGUOUS, CHANNELS_LAST)
#: Timed steps per layout, taken alternately after one untimed step each (oneDNN and cuDNN pick
#: and build their kernels on the first step of a shape). The fastest step of each counts: a
#: neighbour process on the machine only ever makes a step slower.
ROUNDS = 3


@dataclass(frozen=True)
class Choice:
    layout: str
    #: Seconds per step, fastest seen, per layout timed (empty when the layout was not measured).
    step_seconds: dict[str, float]

    def describe(self) -> str:
        if not self.step_seconds:
            return f"memory layout: {self.layout}"
        timings = ", ".join(f"{name} {1000 * s:.1f} ms" for name, s in self.step_seconds.items())
        return f"memory layout: {self.layout} (a training step took {timings})"


def memory_format(layout: str) -> torch.memory_format:
    import torch

    return torch.channels_last if layout == CHANNELS_LAST else torch.contiguous_format


def measure(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: Callable[[Any, torch.Tensor], torch.Tensor],
    autocast: Callable[[], AbstractContextManager[object]],
) -> Choice:
    """Times forward + backward of `model` on the batch `x`, `y` in each layout; the faster wins.
    `loss(output, y)` is the training loss of what the model returns (the runner's picks the
    output it trains on and computes in float32)."""
    import torch

    device = x.device
    cuda = device.type == "cuda"
    # The model itself, not a copy (which would double its memory on the GPU): forward and backward
    # change only its buffers (batch-norm statistics) and gradients, restored below.
    buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}
    training = model.training
    model.train()

    def step(layout: str) -> float:
        fmt = memory_format(layout)
        model.zero_grad(set_to_none=True)  # as the runner does: each step allocates its gradients
        model.to(memory_format=fmt)
        batch = x.contiguous(memory_format=fmt)
        if cuda:
            torch.cuda.synchronize(device)
        began = time.perf_counter()
        with autocast():
            output = model(batch)
        loss(output, y).backward()
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter() - began

    with torch.random.fork_rng(devices=[device] if cuda else []):
        for layout in LAYOUTS:
            step(layout)
        best = {layout: math.inf for layout in LAYOUTS}
        for _ in range(ROUNDS):
            for layout in LAYOUTS:
                best[layout] = min(best[layout], step(layout))
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            buffer.copy_(buffers[name])
    model.train(training)
    return Choice(min(LAYOUTS, key=lambda layout: best[layout]), best)
