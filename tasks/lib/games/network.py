"""The policy-value net: a residual MLP over the two piece planes. Plain torch, no Lightning.

Input is (N, 2, cells) float32 seen from the side to move (plane 0 its pieces, plane 1 the
opponent's), so one net plays both sides; output is (policy logits over every action, value in
[-1, 1] for the side to move). An MLP rather than a CNN: boards are tiny, and one matrix product
per layer keeps the batched search's forward passes cheap on one CPU thread.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from tasks.lib.games.config import NetConfig
from tasks.lib.games.game import Game

Evaluator = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(planes (N, 2, cells) float32, legal (N, n_actions) bool) -> (priors (N, n_actions) summing
to 1 over legal actions, values (N,) from the mover's view): what the search calls."""


class Block(nn.Module):
    """h + W relu(h), post-activation: one product per block keeps inference cheap."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.relu(h + self.linear(h))


class PolicyValueNet(nn.Module):
    def __init__(self, cells: int, n_actions: int, width: int, blocks: int) -> None:
        super().__init__()
        self.stem = nn.Linear(2 * cells, width)
        self.blocks = nn.Sequential(*(Block(width) for _ in range(blocks)))
        self.policy = nn.Linear(width, n_actions)
        self.value = nn.Linear(width, 1)

    def forward(self, planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.blocks(torch.relu(self.stem(planes.flatten(1))))
        return self.policy(h), torch.tanh(self.value(h)).squeeze(1)


def build(game: Game, cfg: NetConfig) -> PolicyValueNet:
    return PolicyValueNet(game.cells, game.n_actions, cfg.width, cfg.blocks)


def masked_softmax(logits: np.ndarray, legal: np.ndarray) -> np.ndarray:
    """Softmax over the legal actions of each row; exactly 0 on illegal ones."""
    z = np.where(legal, logits, -np.inf)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def evaluator(network: nn.Module) -> Evaluator:
    """The search's view of a net: one no-grad forward pass per call, in eval mode."""
    network.eval()

    def evaluate(planes: np.ndarray, legal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            logits, value = network(torch.from_numpy(planes))
        return masked_softmax(logits.numpy().astype(np.float64), legal), value.numpy()

    return evaluate
