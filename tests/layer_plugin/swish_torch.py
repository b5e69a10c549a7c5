"""The PyTorch side of the swish plugin: imported only when a model is built."""

from __future__ import annotations

import torch
from torch import nn


class Swish(nn.Module):
    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.beta * x)
