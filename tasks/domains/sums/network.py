"""A character-level decoder-only transformer without positional encoding (NoPE), and its
batched decoding. Plain torch, no Lightning.

No position table: causal attention alone tells the positions apart (Kazemnejad et al. 2023),
so nothing in the weights is tied to a sequence length, and a model trained on 12-digit sums
can be asked 20-digit ones. Issue 13's prototype: the right-aligned, fixed-width prompt with
absolute positions scored 0% one digit past its seed; this model learns each new length.
`Ensemble` holds `models` such networks from different initial weights (one by default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class Shape:
    vocab: int
    width: int
    layers: int
    heads: int


class Cache:
    """Keys and values of every layer for `n` sequences of up to `size` positions, and which
    positions are real: prompts of different widths are left-padded, and a padded position is
    masked out of attention, so it changes nothing (there are no positions to shift)."""

    def __init__(self, n: int, size: int, shape: Shape, valid: torch.Tensor) -> None:
        dims = (n, shape.heads, size, shape.width // shape.heads)
        self.keys = [torch.empty(dims) for _ in range(shape.layers)]
        self.values = [torch.empty(dims) for _ in range(shape.layers)]
        self.valid = torch.ones((n, size), dtype=torch.bool)
        self.valid[:, : valid.shape[1]] = valid
        self.length = 0

    def mask(self, t: int) -> torch.Tensor:
        """(n, 1, t, end) which keys each of the `t` new positions may attend to: real ones,
        causally; a pad position attends to itself only (its output is never read)."""
        start, end = self.length, self.length + t
        keys = self.valid[:, None, None, :end]
        causal = torch.ones((t, end), dtype=torch.bool).tril(start)
        itself = torch.zeros((t, end), dtype=torch.bool)
        itself[:, start:end] = torch.eye(t, dtype=torch.bool)
        return (keys & causal) | itself


class Block(nn.Module):
    """Pre-norm attention and MLP (nanoGPT's block)."""

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.heads = shape.heads
        self.ln1 = nn.LayerNorm(shape.width)
        self.qkv = nn.Linear(shape.width, 3 * shape.width)
        self.proj = nn.Linear(shape.width, shape.width)
        self.ln2 = nn.LayerNorm(shape.width)
        self.mlp = nn.Sequential(
            nn.Linear(shape.width, 4 * shape.width),
            nn.GELU(),
            nn.Linear(4 * shape.width, shape.width),
        )

    def attend(self, x: torch.Tensor, cache: Cache | None, layer: int) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = (
            part.view(n, t, self.heads, c // self.heads).transpose(1, 2)
            for part in self.qkv(x).split(c, dim=2)
        )
        if cache is None:  # training: right-padded, so causal attention never sees a pad
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            start, end = cache.length, cache.length + t
            cache.keys[layer][:, :, start:end] = k
            cache.values[layer][:, :, start:end] = v
            k, v = cache.keys[layer][:, :, :end], cache.values[layer][:, :, :end]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=cache.mask(t))
        return self.proj(y.transpose(1, 2).reshape(n, t, c))

    def forward(self, x: torch.Tensor, cache: Cache | None, layer: int) -> torch.Tensor:
        x = x + self.attend(self.ln1(x), cache, layer)
        return x + self.mlp(self.ln2(x))


class NoPE(nn.Module):
    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.shape = shape
        self.tokens = nn.Embedding(shape.vocab, shape.width)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.layers))
        self.ln = nn.LayerNorm(shape.width)
        self.head = nn.Linear(shape.width, shape.vocab, bias=False)
        self.head.weight = self.tokens.weight  # tied, as in GPT-2 / nanoGPT
        for name, p in self.named_parameters():
            if p.dim() >= 2:  # GPT-2's init, residual projections scaled by depth
                deep = name.endswith("proj.weight") or name.endswith("mlp.2.weight")
                nn.init.normal_(p, std=0.02 / (math.sqrt(2 * shape.layers) if deep else 1))
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        """Logits (n, t, vocab) of the next character after each of `idx`'s (n, t) positions;
        with a cache, `idx` continues the cached sequences and extends the cache."""
        x = self.tokens(idx)
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer)
        if cache is not None:
            cache.length += idx.shape[1]
        return self.head(self.ln(x))


class Ensemble(nn.Module):
    """`members` NoPE networks, each from its own initial weights (drawn one after another)."""

    def __init__(self, shape: Shape, members: int) -> None:
        super().__init__()
        self.members = nn.ModuleList(NoPE(shape) for _ in range(members))

    def nets(self) -> list[NoPE]:
        """The members, typed (the first one is what evaluation and predict ask)."""
        return [m for m in self.members if isinstance(m, NoPE)]


@torch.inference_mode()
def decode(
    network: NoPE,
    prompts: torch.Tensor,
    steps: int,
    temperature: float,
    generator: torch.Generator | None = None,
    pad: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Continue `prompts` (n, p), left-padded with `pad`, by exactly `steps` characters:
    greedy when `temperature` is 0, else sampled. Returns the characters (n, steps) and each
    sequence's mean probability of the characters it chose (under the untempered model)."""
    network.eval()
    n = prompts.shape[0]
    cache = Cache(n, prompts.shape[1] + steps, network.shape, prompts != pad)
    logits = network(prompts, cache)
    out = torch.empty((n, steps), dtype=torch.long)
    prob_sum = torch.zeros(n)
    for step in range(steps):
        last = logits[:, -1, :].float()
        probs = torch.softmax(last, dim=-1)
        if temperature > 0:
            tempered = torch.softmax(last / temperature, dim=-1)
            chosen = torch.multinomial(tempered, 1, generator=generator).squeeze(1)
        else:
            chosen = last.argmax(dim=-1)
        prob_sum += probs.gather(1, chosen[:, None]).squeeze(1)
        out[:, step] = chosen
        if step < steps - 1:
            logits = network(chosen[:, None], cache)
    return out, prob_sum / max(steps, 1)
