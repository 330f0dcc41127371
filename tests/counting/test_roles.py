"""Stored tensors priced by the role the engine reads them in (spec sections 2-3): weights may be sparse, vectors
are dense, masks and indices are stored at their own width and never switch the 16-bit freebie off."""

import pytest
import torch
from torch import nn

import micronet_score as ms


def test_hand_masked_conv_and_linear_have_one_mask_bit_per_weight_element_and_dense_biases():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(16, 5))
    with torch.no_grad():
        model[0].weight.fill_(0.5)
        model[0].weight[:2] = 0  # 54 of 108 weights kept
        model[0].bias.zero_()  # 4 zero biases: stored values
        model[2].weight.fill_(0.25)
        model[2].weight.view(-1)[:60] = 0  # 20 of 80 weights kept
        model[2].bias.zero_()
    report = ms.count(model, (1, 3, 4, 4))
    rows = {t.name: t for t in report.tensors}
    assert report.freebie  # nothing quantized: 16 bits
    conv_w, conv_b, lin_w, lin_b = rows["0.weight"], rows["0.bias"], rows["2.weight"], rows["2.bias"]
    assert (conv_w.role, conv_w.format, conv_w.stored_values, conv_w.mask_bits) == ("weight", "element", 54, 108)
    assert (lin_w.role, lin_w.format, lin_w.stored_values, lin_w.mask_bits) == ("weight", "element", 20, 80)
    for bias, n in ((conv_b, 4), (lin_b, 5)):
        assert (bias.role, bias.format, bias.stored_values, bias.mask_bits) == ("vector", "dense", n, 0)
        assert "bias" in bias.reason and "zeros are stored values" in bias.reason
    assert "multiplied operand of aten.convolution" in conv_w.reason
    # (54 x 16 + 108) / 32 = 30.375; 4 x 16 / 32 = 2; (20 x 16 + 80) / 32 = 12.5; 5 x 16 / 32 = 2.5
    assert report.param_storage == 30.375 + 2 + 12.5 + 2.5
    assert report.mask_bits == 108 + 80


class PositionalTable(nn.Module):
    """A learned positional table, zero-initialised, added to the input (not multiplied)."""

    def __init__(self, as_buffer: bool):
        super().__init__()
        if as_buffer:
            self.register_buffer("pos", torch.zeros(6, 8))
        else:
            self.pos = nn.Parameter(torch.zeros(6, 8))
        self.proj = nn.Linear(8, 8, bias=False)

    def forward(self, x):
        return self.proj(x + self.pos)


@pytest.mark.parametrize("as_buffer", [False, True])
def test_a_zero_two_dimensional_table_that_is_added_stays_dense(as_buffer):
    report = ms.count(PositionalTable(as_buffer), (2, 6, 8))
    pos = next(t for t in report.tensors if t.name == "pos")
    assert (pos.role, pos.format, pos.stored_values, pos.mask_bits) == ("vector", "dense", 48, 0)
    assert pos.param_storage == 48 * 16 / 32  # 48 zeros stored as values at 16 bits
    assert "aten.add" in pos.reason


class CausalBlock(nn.Module):
    """Single-head causal self-attention; the mask a bool buffer or built in the forward."""

    def __init__(self, mask_buffer: bool, tokens: int = 6, dim: int = 8):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.mask_buffer = mask_buffer
        if mask_buffer:
            self.register_buffer("mask", torch.triu(torch.ones(tokens, tokens, dtype=torch.bool), 1))

    def forward(self, x):
        t = x.shape[1]
        mask = self.mask if self.mask_buffer else torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
        scores = (self.q(x) @ self.k(x).transpose(1, 2)).masked_fill(mask, float("-inf")).softmax(-1)
        return scores @ self.v(x)


def test_a_bool_causal_mask_buffer_keeps_the_freebie():
    with_mask = ms.count(CausalBlock(True), (2, 6, 8))
    without = ms.count(CausalBlock(False), (2, 6, 8))
    assert with_mask.freebie and without.freebie
    assert (with_mask.mults, with_mask.adds, with_mask.math_ops) == (without.mults, without.adds, without.math_ops)
    # 3 x (64 + 8) values at 16 bits = 108; the 6 x 6 mask stored at 1 bit per element: 36 / 32
    assert without.param_storage == 108
    mask = next(t for t in with_mask.tensors if t.name == "mask")
    assert (mask.role, mask.bits, mask.format, mask.param_storage) == ("mask/index", 1, "dense", 36 / 32)
    assert with_mask.param_storage == without.param_storage + 36 / 32


class Indexed(nn.Module):
    """Token ids in, an int64 index buffer and a uint8 mask buffer used as indices and as a mask."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.register_buffer("order", torch.tensor([3, 2, 1, 0]))
        self.register_buffer("keep", torch.tensor([1, 0, 1, 1], dtype=torch.uint8))

    def forward(self, ids):
        x = self.emb(ids)[..., self.order]
        return x * self.keep  # a 0/1 mask multiplied in: still a mask, not a quantized weight


def test_token_ids_and_index_buffers_are_not_quantized_values():
    report = ms.count(Indexed(), torch.tensor([[1, 2, 3]]))
    assert report.freebie
    rows = {t.name: t for t in report.tensors}
    assert (rows["emb.weight"].role, rows["emb.weight"].bits) == ("weight", 16)
    assert (rows["order"].role, rows["order"].bits, rows["order"].param_storage) == ("mask/index", 64, 4 * 64 / 32)
    assert (rows["keep"].role, rows["keep"].bits, rows["keep"].param_storage) == ("mask/index", 8, 4 * 8 / 32)


def test_quantizing_a_weight_still_switches_the_freebie_off():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    assert not ms.count(model, (1, 4), bits={"0": 8}).freebie
