"""What a count divides by: the examples of the first input (spec section 3, "Examples").

The batch dimension of the first input is 0, unless that input goes first into a sequence-first module
(``batch_first=False``: ``nn.MultiheadAttention``, ``nn.Transformer*``, ``nn.RNN``/``LSTM``/``GRU``), then 1.
"Goes first into" is read from the forward itself: the first module called on an input-dependent tensor
that fixes a layout decides. Layout-free modules (embeddings, linear layers, activations, dropout, layer norms)
are looked through, so token ids of shape (steps, batch) that go through an ``nn.Embedding`` into an
``nn.LSTM`` are read at dimension 1; a conv, batch norm, pooling or flatten layer first means dimension 0. A
sequence-first module that receives an unbatched input (2-D) means one example. Flat indices (1-D) that go
first into an ``nn.EmbeddingBag`` with their offsets hold one example per bag. ``batch_dim=`` overrides.

A per-token convention (``per_token``, the WikiText-103 track) divides by batch x sequence length, the
sequence being the other of the first two dimensions. The report says what it divided by
(``Report.examples``), the dimension it read (``Report.batch_dim``) and why (``Report.examples_from``).

>>> import torch, micronet_score as ms
>>> mha = torch.nn.MultiheadAttention(8, 2)                      # batch_first=False: (tokens, batch, embed)
>>> x = torch.randn(10, 3, 8)
>>> r = ms.count(mha, (x, x, x))
>>> r.examples, r.batch_dim
(3, 1)
>>> r.examples_from
'dimension 1 of the first input (3): it goes first into a sequence-first MultiheadAttention (batch_first=False)'
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from micronet_score.errors import InputError

_SEQUENCE_MODULES = (nn.MultiheadAttention, nn.Transformer, nn.TransformerEncoder, nn.TransformerDecoder,
                     nn.TransformerEncoderLayer, nn.TransformerDecoderLayer, nn.RNNBase)
_LAYOUT_FREE = (nn.Embedding, nn.EmbeddingBag, nn.Linear, nn.Bilinear, nn.Identity, nn.LayerNorm,
                nn.modules.dropout._DropoutNd, nn.Softmax, nn.LogSoftmax, nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU,
                nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.Hardswish, nn.Hardsigmoid, nn.Mish, nn.PReLU,
                nn.Softplus, nn.GLU)
if hasattr(nn, "RMSNorm"):
    _LAYOUT_FREE = (*_LAYOUT_FREE, nn.RMSNorm)


def batch_first(module: nn.Module) -> bool:
    """Whether a sequence module reads (batch, sequence, ...) inputs."""
    if hasattr(module, "batch_first"):
        return bool(module.batch_first)
    for layer in getattr(module, "layers", ()):  # nn.TransformerEncoder/Decoder: as their layers
        attn = getattr(layer, "self_attn", None)
        if attn is not None:
            return bool(attn.batch_first)
    attn = getattr(module, "self_attn", None)
    return bool(attn.batch_first) if attn is not None else True


@dataclass
class LayoutProbe:
    """Watches module calls during a traced forward; the first layout-fixing module decides the batch dim."""

    dep: Any  # the tracer's input-dependent tensors (supports ``in``)
    dim: int | None = None
    why: str = ""
    unbatched: bool = False
    sequence: bool = False  # a sequence module or an embedding read the input: it holds tokens
    bags: int | None = None  # flat indices into an nn.EmbeddingBag: its bags are the examples

    def hook(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if self.dim is not None:
            return
        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if x is None or x not in self.dep:
            return
        name = type(module).__name__
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag, *_SEQUENCE_MODULES)):
            self.sequence = True
        if isinstance(module, nn.EmbeddingBag) and x.dim() == 1 and len(args) > 1 and \
                isinstance(args[1], torch.Tensor) and args[1].dim() == 1:
            self.bags = args[1].numel() - (1 if module.include_last_offset else 0)
            self.dim = 0
            self.why = f"{self.bags} bags: flat indices go first into {name} with their offsets"
            return
        if isinstance(module, _SEQUENCE_MODULES):
            if x.dim() == 2:  # (sequence, features): one example
                self.dim, self.unbatched = 0, True
                self.why = f"one example: an unbatched (2-D) input goes first into {name}"
            elif batch_first(module):
                self.dim, self.why = 0, f"it goes first into {name} (batch_first=True)"
            else:
                self.dim, self.why = 1, f"it goes first into a sequence-first {name} (batch_first=False)"
        elif isinstance(module, _LAYOUT_FREE) or any(True for _ in module.children()):
            return  # layout-free, or a container: its children decide
        else:
            self.dim, self.why = 0, f"it goes first into {name}, which reads the batch at dimension 0"


@contextmanager
def probing(dep: Any) -> Iterator[LayoutProbe]:
    """A :class:`LayoutProbe` registered as a global forward pre-hook for the duration of the block."""
    probe = LayoutProbe(dep)
    handle = nn.modules.module.register_module_forward_pre_hook(probe.hook)
    try:
        yield probe
    finally:
        handle.remove()


@dataclass(frozen=True)
class Examples:
    """What the counts are divided by: ``count`` examples, read at ``batch_dim`` (None: not read), ``why``."""

    count: int
    batch_dim: int | None
    why: str


def examples(first: torch.Tensor, probe: LayoutProbe | None, *, batch_dim: int | None, per_token: bool,
             unbatched: bool, batch_size: int | None) -> Examples:
    """The divisor of one count from its first input, what the forward showed, and the caller's options."""
    if batch_size is not None:
        return Examples(batch_size, None, f"batch_size={batch_size} given")
    if first.dim() == 0:
        return Examples(1, None, "one example: the first input is a scalar")
    if batch_dim is not None:
        dim, why = batch_dim, f"batch_dim={batch_dim} given"
    elif unbatched:
        return Examples(1, None, "one example: the forward adds the batch dimension itself")
    elif probe is not None and probe.unbatched:
        return Examples(1, None, probe.why)
    elif probe is not None and probe.bags is not None and not per_token:
        return Examples(probe.bags, None, probe.why)
    elif probe is not None and probe.dim is not None:
        dim, why = probe.dim, probe.why
    else:
        dim, why = 0, "the default batch dimension"
    batch = int(first.shape[dim])
    what = f"dimension {dim} of the first input ({batch}): {why}"
    if per_token:
        tokens_in = not (first.is_floating_point() or first.is_complex() or first.dtype == torch.bool) or \
            (probe is not None and probe.sequence)
        if not tokens_in or first.dim() < 2 or dim not in (0, 1):
            raise InputError(f"the rule set counts per token, but the first input (shape {tuple(first.shape)}, "
                             f"{first.dtype}) is not a batch of token sequences: pass token ids of shape (batch, "
                             "steps), or batch_size= to say how many tokens the inputs hold")
        seq = 1 - dim
        tokens = int(first.shape[seq])
        return Examples(batch * tokens, dim, f"{batch * tokens} tokens: {what}, times dimension {seq} "
                                             f"({tokens} tokens per example; the rule set counts per token)")
    return Examples(batch, dim, what)


def check_batch_dim(batch_dim: Any, first: torch.Tensor | None) -> None:
    """Refuse a ``batch_dim`` that is not a dimension of the first input, naming its shape."""
    if batch_dim is None:
        return
    if isinstance(batch_dim, bool) or not isinstance(batch_dim, int) or batch_dim < 0:
        raise InputError(f"batch_dim must be a dimension index (0, 1, ...), got {batch_dim!r}")
    if first is not None and batch_dim >= max(first.dim(), 1):
        raise InputError(f"batch_dim={batch_dim} but the first input has shape {tuple(first.shape)}: pick one of "
                         f"its dimensions")
