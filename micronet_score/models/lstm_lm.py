"""The MicroNet Challenge 2019 WikiText-103 baseline: a one-layer LSTM language model (``lstm-lm-wikitext103``).

Spec section 4: vocabulary 267,735, embedding 512, one LSTM layer of 2048 hidden units, a 2048 -> 512
projection, and an output layer whose weight is the embedding table (tied). Baselines: 159M parameters and
318M operations per token, counted at batch 1 stepping one token at a time with the recurrent state as an
input (the steady state, not the all-zero first step).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError
from . import _checks
from ._init import seeded
from .registry import register

#: WikiText-103's vocabulary (words with the end-of-sentence and unknown tokens).
WIKITEXT103_VOCAB = 267_735

State = tuple[torch.Tensor, torch.Tensor]


class LSTMLanguageModel(nn.Module):
    """Embedding -> LSTM -> linear projection (no bias) -> output layer tied to the embedding (with a bias).

    ``forward(tokens, state=None)`` takes token ids of shape (batch, steps) and the state ``(h, c)``, each of
    shape (1, batch, hidden_size), and returns ``(logits, state)`` with logits of shape (batch, steps, vocab).
    Count one token with the state as an input: ``ms.count(model, model.example_inputs())``.
    """

    def __init__(self, vocab_size: int, embed_dim: int, hidden_size: int, output_bias: bool = True) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.projection = nn.Linear(hidden_size, embed_dim, bias=False)
        self.output = nn.Linear(embed_dim, vocab_size, bias=output_bias)
        self.output.weight = self.embedding.weight  # tied: one table, stored once

    def initial_state(self, batch_size: int = 1) -> State:
        """An all-zero state ``(h, c)`` for ``batch_size`` sequences, on the model's device."""
        weight = self.lstm.weight_hh_l0
        shape = (1, batch_size, self.lstm.hidden_size)
        return (torch.zeros(shape, dtype=weight.dtype, device=weight.device),
                torch.zeros(shape, dtype=weight.dtype, device=weight.device))

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, State]:
        """One token per sequence and the state: what per-token counting passes to :func:`micronet_score.count`."""
        tokens = torch.zeros((batch_size, 1), dtype=torch.long, device=self.embedding.weight.device)
        return tokens, self.initial_state(batch_size)

    def forward(self, tokens: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        if tokens.is_floating_point() or tokens.is_complex():
            raise InputError(f"the language model takes integer token ids, got a {tokens.dtype} tensor (a shape "
                             "given as input becomes random floats): pass model.example_inputs()")
        hidden, state = self.lstm(self.embedding(tokens), state)
        return self.output(self.projection(hidden)), state


@register(
    "lstm-lm-wikitext103",
    description="MicroNet 2019 WikiText-103 baseline: LSTM LM, vocab 267,735, embed 512, LSTM 2048, proj 512, tied",
    source="MicroNet Challenge 2019 WikiText-103 track baseline (159M parameters, 318M ops per token)",
    input_size=(1, 1),
    modality="tokens",
)
def lstm_lm_wikitext103(
    num_classes: int = WIKITEXT103_VOCAB,
    embed_dim: int = 512,
    hidden_size: int = 2048,
    output_bias: bool = True,
    seed: int | None = 0,
) -> LSTMLanguageModel:
    """The WikiText-103 baseline language model; ``num_classes`` is the vocabulary size.

    Input: token ids of shape ``(1, 1)`` (batch 1, one token; integers, not a random float tensor) and the
    recurrent state, as :meth:`LSTMLanguageModel.example_inputs` builds them. At the defaults: 159,384,535
    parameters (embedding 137,080,320, LSTM 20,987,904, projection 1,048,576, output bias 267,735) and
    318,239,232 operations per token.

    The output layer keeps its bias (as PyTorch's word-language-model example and AWD-LSTM do: one value per
    word, the unigram prior, 0.17% of the parameters); ``output_bias=False`` drops it. The projection has none
    (a pure 2048 -> 512 map, like the LSTM's own ``proj_size`` projection). Initialisation: embedding uniform in
    [-0.1, 0.1], output bias zero, LSTM and projection PyTorch's defaults; works under ``torch.device("meta")``.

    >>> import micronet_score as ms
    >>> model = ms.models.build("lstm-lm-wikitext103", num_classes=100, embed_dim=8, hidden_size=16)
    >>> logits, state = model(*model.example_inputs())
    >>> tuple(logits.shape), tuple(state[0].shape)
    ((1, 1, 100), (1, 1, 16))
    """
    vocab = _checks.positive_int(num_classes, "num_classes (the vocabulary size)")
    embed = _checks.positive_int(embed_dim, "embed_dim")
    hidden = _checks.positive_int(hidden_size, "hidden_size")
    if not isinstance(output_bias, bool):
        raise ValueError(f"output_bias must be True or False, got {output_bias!r}")
    with seeded(_checks.seed(seed)):
        model = LSTMLanguageModel(vocab, embed, hidden, output_bias)
        nn.init.uniform_(model.embedding.weight, -0.1, 0.1)
        if model.output.bias is not None:
            nn.init.zeros_(model.output.bias)
    return model
