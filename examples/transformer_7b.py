"""Count a 7B-parameter decoder-only transformer without allocating its weights.

The model is written with plain torch modules (LLaMA-style: token embedding, 32 pre-norm blocks of causal
self-attention through ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)`` and a SwiGLU MLP,
RMSNorm, rotary position embeddings, an untied output head). Built under ``with torch.device("meta")`` it holds
no weights, and ``micronet_score.count`` traces one forward pass of a 2048-token sequence on meta tensors: the
counts are exact, only the non-zeros are unknown (a meta tensor has no values).

    .venv/bin/python examples/transformer_7b.py              # the 7B configuration, timed
    .venv/bin/python examples/transformer_7b.py --small      # a tiny configuration, with its layer table

Conventions that matter here (see docs/counting.md): attention costs the full L x L score matrix even with a
causal mask (the mask selects, it does not remove work), as torch's FlopCounterMode counts it; the rotary
tables (one pair, shared by all blocks) are buffers the forward reads, so they are stored values like the weights.
"""

from __future__ import annotations

import argparse
import math
import resource
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Config:
    vocab: int = 32000
    dim: int = 4096
    layers: int = 32
    heads: int = 32
    hidden: int = 11008  # SwiGLU inner width
    seq: int = 2048  # the sequence counted, and the length of the rotary tables
    eps: float = 1e-6
    rotary_base: float = 10000.0
    norm: str = "rms"  # "rms" (RMSNorm) or "layer" (LayerNorm)
    mlp: str = "swiglu"  # "swiglu" (3 matrices) or "gelu" (2 matrices, GPT-style)
    bias: bool = False  # biases on every linear layer

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


LLAMA_7B = Config()
SMALL = Config(vocab=101, dim=32, layers=2, heads=4, hidden=88, seq=16)
SMALL_GPT = Config(vocab=101, dim=32, layers=2, heads=4, hidden=128, seq=16, norm="layer", mlp="gelu", bias=True)


def make_norm(cfg: Config) -> nn.Module:
    if cfg.norm == "rms":
        return nn.RMSNorm(cfg.dim, eps=cfg.eps)
    if cfg.norm == "layer":
        return nn.LayerNorm(cfg.dim, eps=cfg.eps, bias=cfg.bias)
    raise ValueError(f"norm must be 'rms' or 'layer', got {cfg.norm!r}")


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class Rotary(nn.Module):
    """Rotary position embedding: x * cos + rotate_half(x) * sin, with tables computed once at build."""

    def __init__(self, head_dim: int, length: int, base: float) -> None:
        super().__init__()
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(length, dtype=torch.float32), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, heads, length, head_dim)
        length = x.shape[-2]
        return x * self.cos[:length] + rotate_half(x) * self.sin[:length]


class Attention(nn.Module):
    def __init__(self, cfg: Config, rotary: Rotary) -> None:
        super().__init__()
        self.heads, self.head_dim = cfg.heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.dim, cfg.dim, bias=cfg.bias)
        self.k_proj = nn.Linear(cfg.dim, cfg.dim, bias=cfg.bias)
        self.v_proj = nn.Linear(cfg.dim, cfg.dim, bias=cfg.bias)
        self.o_proj = nn.Linear(cfg.dim, cfg.dim, bias=cfg.bias)
        self.rotary = rotary  # one module shared by every block: its tables are stored once

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, self.head_dim).transpose(1, 2)

        q = self.rotary(split(self.q_proj(x)))
        k = self.rotary(split(self.k_proj(x)))
        v = split(self.v_proj(x))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, dim))


class SwiGLU(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.dim, cfg.hidden, bias=cfg.bias)
        self.up_proj = nn.Linear(cfg.dim, cfg.hidden, bias=cfg.bias)
        self.down_proj = nn.Linear(cfg.hidden, cfg.dim, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class GeluMLP(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.fc_in = nn.Linear(cfg.dim, cfg.hidden, bias=cfg.bias)
        self.fc_out = nn.Linear(cfg.hidden, cfg.dim, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(F.gelu(self.fc_in(x)))


class Block(nn.Module):
    def __init__(self, cfg: Config, rotary: Rotary) -> None:
        super().__init__()
        self.attn_norm = make_norm(cfg)
        self.attn = Attention(cfg, rotary)
        self.mlp_norm = make_norm(cfg)
        if cfg.mlp not in ("swiglu", "gelu"):
            raise ValueError(f"mlp must be 'swiglu' or 'gelu', got {cfg.mlp!r}")
        self.mlp = SwiGLU(cfg) if cfg.mlp == "swiglu" else GeluMLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    """Decoder-only transformer: token ids (batch, length) -> logits (batch, length, vocab)."""

    def __init__(self, cfg: Config = LLAMA_7B) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.dim)
        rotary = Rotary(cfg.head_dim, cfg.seq, cfg.rotary_base)
        self.blocks = nn.ModuleList(Block(cfg, rotary) for _ in range(cfg.layers))
        self.norm = make_norm(cfg)
        self.head = nn.Linear(cfg.dim, cfg.vocab, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def weight_count(cfg: Config) -> int:
    """Learned weights: embedding, 4 d x d attention and 3 (SwiGLU) or 2 (GELU) d x hidden MLP matrices and 2
    norms per block, the final norm and the head, plus biases if any (LLaMA-7B: 6,738,415,616)."""
    d, f = cfg.dim, cfg.hidden
    norm = d * (2 if cfg.norm == "layer" and cfg.bias else 1)
    matrices = 3 if cfg.mlp == "swiglu" else 2
    biases = (4 * d + (2 * f + d if cfg.mlp == "swiglu" else f + d)) if cfg.bias else 0
    per_block = 4 * d * d + matrices * d * f + 2 * norm + biases
    return cfg.vocab * d + cfg.layers * per_block + norm + d * cfg.vocab


def build(cfg: Config = LLAMA_7B, device: str | torch.device = "meta") -> Transformer:
    """The model on ``device`` ("meta": no memory for weights)."""
    with torch.device(device):
        return Transformer(cfg).eval()


def count(cfg: Config = LLAMA_7B, device: str = "meta"):
    """Build on ``device`` and count one forward pass of a ``cfg.seq``-token sequence; returns the report."""
    import micronet_score as ms

    model = build(cfg, device)
    tokens = torch.zeros(1, cfg.seq, dtype=torch.long, device=device)
    return ms.count(model, tokens)


def peak_rss_mib() -> float:
    """This process's peak resident set (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="a tiny configuration, printed layer by layer")
    parser.add_argument("--gpt", action="store_true", help="LayerNorm, GELU MLP and biases instead")
    args = parser.parse_args()
    cfg = SMALL if args.small else LLAMA_7B
    if args.gpt:
        cfg = SMALL_GPT if args.small else Config(norm="layer", mlp="gelu", bias=True, hidden=4 * LLAMA_7B.dim)
    start = time.perf_counter()
    report = count(cfg)
    seconds = time.perf_counter() - start
    if args.small:
        print(report.table(depth=3))
    print(f"config: {cfg}")
    print(f"stored values {report.params:,} (learned weights {weight_count(cfg):,}, rotary tables "
          f"{report.params - weight_count(cfg):,}); non-zeros known: {report.nonzeros_known}")
    print(f"mults {report.mults:,}  adds {report.adds:,}  per sequence of {cfg.seq} tokens")
    print(f"per token: {report.mults / cfg.seq / 1e9:.2f} G mults, {2 * report.mults / cfg.seq / 1e9:.2f} "
          f"GFLOP-equivalent (2 x mults), weights {weight_count(cfg) / 1e9:.3f} G")
    print(f"unsupported ops: {report.unsupported or 'none'}")
    print(f"counted in {seconds:.2f} s, peak RSS {peak_rss_mib():.0f} MiB, "
          f"log10(mults) = {math.log10(max(report.mults, 1)):.2f}")


if __name__ == "__main__":
    main()
