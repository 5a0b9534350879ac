"""A small character-level decoder-only transformer (nanoGPT-style). Plain torch, no Lightning.

Generation keeps a key/value cache, so each new character costs one position per layer rather
than the whole prefix. Every prompt has the same width, so a batch of sequences advances in
lockstep without any padding on the left.
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
    block: int
    """Longest sequence (prompt + solution) the position table covers."""
    width: int
    layers: int
    heads: int
    dropout: float = 0.0


class Cache:
    """Keys and values of every layer for the positions seen so far, in buffers allocated once
    (growing them with `torch.cat` each step cost three quarters of the decoding time)."""

    def __init__(self, n: int, shape: Shape) -> None:
        head = shape.width // shape.heads
        size = (n, shape.heads, shape.block, head)
        self.keys = [torch.empty(size) for _ in range(shape.layers)]
        self.values = [torch.empty(size) for _ in range(shape.layers)]
        self.length = 0


class SelfAttention(nn.Module):
    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.heads = shape.heads
        self.qkv = nn.Linear(shape.width, 3 * shape.width)
        self.proj = nn.Linear(shape.width, shape.width)
        self.dropout = shape.dropout

    def forward(self, x: torch.Tensor, cache: Cache | None, layer: int) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = (
            part.view(n, t, self.heads, c // self.heads).transpose(1, 2)
            for part in self.qkv(x).split(c, dim=2)
        )
        start = 0
        if cache is not None:
            start, end = cache.length, cache.length + t
            cache.keys[layer][:, :, start:end] = k
            cache.values[layer][:, :, start:end] = v
            k, v = cache.keys[layer][:, :, :end], cache.values[layer][:, :, :end]
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            # the prompt is causal; a single new position may see every earlier one
            is_causal=start == 0,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.proj(y.transpose(1, 2).reshape(n, t, c))


class Block(nn.Module):
    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(shape.width)
        self.attn = SelfAttention(shape)
        self.ln2 = nn.LayerNorm(shape.width)
        self.mlp = nn.Sequential(
            nn.Linear(shape.width, 4 * shape.width),
            nn.GELU(),
            nn.Linear(4 * shape.width, shape.width),
            nn.Dropout(shape.dropout),
        )

    def forward(self, x: torch.Tensor, cache: Cache | None, layer: int) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, layer)
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.shape = shape
        self.tokens = nn.Embedding(shape.vocab, shape.width)
        self.positions = nn.Embedding(shape.block, shape.width)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.layers))
        self.ln = nn.LayerNorm(shape.width)
        self.head = nn.Linear(shape.width, shape.vocab, bias=False)
        self.head.weight = self.tokens.weight  # tied, as in GPT-2 / nanoGPT
        self.apply(_init)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * shape.layers))

    def forward(self, idx: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        """Logits (n, t, vocab) of the next character at each of `idx`'s positions. With a
        cache, `idx` continues the cached sequences, and the cache is extended by it."""
        start = 0 if cache is None else cache.length
        positions = torch.arange(start, start + idx.shape[1], device=idx.device)
        x = self.tokens(idx) + self.positions(positions)
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer)
        if cache is not None:
            cache.length += idx.shape[1]
        return self.head(self.ln(x))


def _init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


@torch.inference_mode()
def decode(
    network: CharTransformer,
    prompts: torch.Tensor,
    max_new: int,
    end: int,
    pad: int,
    temperature: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Continue same-width `prompts` (n, p): greedy when `temperature` is 0, else sampled.

    Returns the new characters (n, <= max_new), PAD after each sequence's end, and each
    sequence's mean probability of the characters it chose (under the untempered model).
    Stops as soon as every sequence has written `end`.
    """
    network.eval()
    n = prompts.shape[0]
    cache = Cache(n, network.shape)
    logits = network(prompts, cache)
    out = torch.full((n, max_new), pad, dtype=torch.long)
    done = torch.zeros(n, dtype=torch.bool)
    prob_sum, count = torch.zeros(n), torch.zeros(n)
    for step in range(max_new):
        last = logits[:, -1, :].float()
        probs = torch.softmax(last, dim=-1)
        if temperature > 0:
            chosen = torch.multinomial(
                torch.softmax(last / temperature, dim=-1), 1, generator=generator
            ).squeeze(1)
        else:
            chosen = last.argmax(dim=-1)
        live = ~done
        prob_sum += torch.where(live, probs.gather(1, chosen[:, None]).squeeze(1), 0.0)
        count += live.float()
        chosen = torch.where(live, chosen, pad)
        out[:, step] = chosen
        done |= chosen == end
        if bool(done.all()) or step == max_new - 1:
            return out[:, : step + 1], prob_sum / count.clamp(min=1)
        logits = network(chosen[:, None], cache)
    return out[:, :0], prob_sum
