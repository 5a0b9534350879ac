"""The student: a small CNN for 8x8 digits. Plain torch, no Lightning, so inference stays light."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tasks.domains.digits.config import N_CLASSES, Config


class DigitsCNN(nn.Module):
    def __init__(self, width: int = 32, dropout: float = 0.25) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(dropout),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * 16, 128),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(128, N_CLASSES),
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels: (n, 64) in [0, 1] -> logits (n, 10)."""
        return self.head(self.features(pixels.view(-1, 1, 8, 8)))


def build(cfg: Config) -> DigitsCNN:
    return DigitsCNN(width=cfg.train.width, dropout=cfg.train.dropout)


@torch.no_grad()
def probabilities(network: nn.Module, pixels: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Softmax outputs (n, 10) for pixels (n, 64) scaled to [0, 1], in eval mode."""
    network.eval()
    out = [
        torch.softmax(network(torch.from_numpy(pixels[i : i + batch])), dim=1).numpy()
        for i in range(0, len(pixels), batch)
    ]
    return np.concatenate(out) if out else np.zeros((0, N_CLASSES), dtype=np.float32)
