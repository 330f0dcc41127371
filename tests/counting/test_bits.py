"""Bit widths: dtype, fake quantization, user settings, and the 16-bit freebie."""

import torch
from torch import nn

import micronet_score as ms
from micronet_score.bits import range_bits


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


# Hand counts of _net on (1, 3, 8, 8): conv 27 mults/26 adds x 144 outputs = 3,888 / 3,744; ReLU 144 mults;
# linear 144 mults and 143 + 1 adds x 10 = 1,440 / 1,440. Params 108 + 1,440 + 10 = 1,558.
MULTS = 3_888 + 144 + 1_440
ADDS = 3_744 + 1_440
PARAMS = 1_558


def test_fp32_gets_the_freebie():
    r = ms.count(_net(), (1, 3, 8, 8))
    assert (r.mults, r.adds, r.params) == (MULTS, ADDS, PARAMS)
    assert r.freebie
    # 16/32 for params and mults, 32/32 for adds.
    assert r.param_storage == PARAMS / 2
    assert r.math_ops == MULTS / 2 + ADDS


def test_freebie_off_counts_32_bits():
    r = ms.count(_net(), (1, 3, 8, 8), freebie=False)
    assert r.param_storage == PARAMS
    assert r.math_ops == MULTS + ADDS


def test_fp16_model_is_16_bits_without_needing_the_freebie():
    r = ms.count(_net().half(), (1, 3, 8, 8), freebie=False)
    assert r.params_by_bits == {16: PARAMS}
    assert r.param_storage == PARAMS / 2
    assert r.math_ops == MULTS / 2 + ADDS  # adds at the 32-bit accumulator


def test_bf16_dtype():
    r = ms.count(_net().to(torch.bfloat16), (1, 3, 8, 8), freebie=False)
    assert set(r.mults_by_bits) == {16}


def test_one_layer_at_8_bits_switches_the_freebie_off():
    # Setting the conv to 8 bits: no freebie; conv params 108 at 8 bits, the rest stays 32-bit.
    r = ms.count(_net(), (1, 3, 8, 8), bits={"0": 8})
    assert not r.freebie
    assert r.param_storage == 108 * 8 / 32 + 1_450
    # conv mults at 8 bits; ReLU and linear mults at 32; all adds at 32.
    assert r.math_ops == 3_888 * 8 / 32 + 144 + 1_440 + ADDS
    # ... which here scores worse than the fp32 model with the freebie: 8-bit conv params save 81 but the
    # freebie's half on everything else is lost.
    assert r.param_storage > ms.count(_net(), (1, 3, 8, 8)).param_storage


def test_bits_by_module_type_and_precision():
    r = ms.count(_net(), (1, 3, 8, 8), bits={nn.Linear: ms.Precision(weight=4, activation=8)})
    # linear weights and bias at 4 bits: 1,450 * 4 / 32; linear mults at max(4, 8) = 8.
    row = r.layer("3")
    assert row.param_storage == 1_450 * 4 / 32
    assert row.mult_bits == (8,)


def test_range_bits():
    assert range_bits(-128, 127) == 8
    assert range_bits(0, 15) == 4
    assert range_bits(0, 255) == 8
    assert range_bits(-7, 7) == 4  # 15 levels need 4 bits


class FakeQuantNet(nn.Module):
    """Weight fake-quantized per channel to 4 bits, activation per tensor to 8 bits."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        with torch.no_grad():  # |w| in [0.5, 1]: nothing rounds to zero at 4 bits (step max/7 <= 0.143)
            self.conv.weight.copy_(torch.rand(4, 3, 3, 3) * 0.5 + 0.5)
            self.conv.weight[:, 0] *= -1

    def forward(self, x):
        x = torch.fake_quantize_per_tensor_affine(x, 0.05, 0, -128, 127)
        w = self.conv.weight
        scale = w.detach().abs().amax(dim=(1, 2, 3)) / 7
        w = torch.fake_quantize_per_channel_affine(w, scale, torch.zeros(4, dtype=torch.int32), 0, -8, 7)
        return torch.nn.functional.conv2d(x, w)


def test_fake_quant_widths_read_from_the_dispatch_stream():
    r = ms.count(FakeQuantNet(), (1, 3, 8, 8))
    assert not r.freebie  # something is below 16 bits
    assert r.params_by_bits == {4: 108}
    # conv input is 8-bit, weight 4-bit: mults at max(8, 4) = 8 bits; 3,888 mults; adds 3,744 at 32.
    assert r.mults_by_bits == {8: 3_888}
    assert r.math_ops == 3_888 * 8 / 32 + 3_744
    # weight fake-quant is preprocessing: only the conv is counted.
    assert r.mults == 3_888


def test_quantization_rounding_zeros_are_seen():
    class Q(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 1, bias=False)
            with torch.no_grad():
                self.lin.weight.copy_(torch.tensor([[0.01, 0.5, -0.02, 1.0]]))

        def forward(self, x):
            # scale 0.1: 0.01 and -0.02 round to 0 -> 2 non-zeros.
            w = torch.fake_quantize_per_tensor_affine(self.lin.weight, 0.1, 0, -8, 7)
            return torch.nn.functional.linear(x, w)

    r = ms.count(Q(), (1, 4))
    assert r.nonzero_params == 2
    assert r.mults == 2


# ------------------------------------------------- the width of values moved without arithmetic (spec section 2)


class _Moves(nn.Module):
    """A linear layer whose 8-bit weight multiplies ``how(q, x)``: ``q`` the input fake-quantized to 8 bits,
    ``x`` the input as it is (32-bit values)."""

    def __init__(self, how) -> None:
        super().__init__()
        self.how = how
        self.weight = nn.Parameter(torch.full((3, 8), 0.5))  # 0.5 is on the 8-bit grid: no zero, no rounding
        self.token = nn.Parameter(torch.full((1, 4), 0.25))  # a stored 32-bit tensor

    def forward(self, x):
        q = torch.fake_quantize_per_tensor_affine(x, 0.1, 0, -128, 127)
        w = torch.fake_quantize_per_tensor_affine(self.weight, 0.1, 0, -128, 127)
        return nn.functional.linear(self.how(self, q, x), w)


def _mult_widths(how) -> dict[int, int]:
    # the linear layer: 3 outputs x 8 inputs = 24 mults per example; x * 1.0 adds 4 at 32 bits where it appears
    return dict(ms.count(_Moves(how), (2, 4)).mults_by_bits)


def test_a_concatenation_of_8_bit_and_32_bit_values_is_multiplied_at_32_bits():
    assert _mult_widths(lambda m, q, x: torch.cat([q, x * 1.0], 1)) == {32: 24 + 4}
    assert _mult_widths(lambda m, q, x: torch.stack([q, x * 1.0], 1).flatten(1)) == {32: 24 + 4}


def test_a_concatenation_with_a_stored_32_bit_tensor_is_multiplied_at_32_bits():
    assert _mult_widths(lambda m, q, x: torch.cat([q, m.token.expand(q.shape[0], 4)], 1)) == {32: 24}


def test_values_of_one_width_keep_it_through_moves_and_indexing():
    assert _mult_widths(lambda m, q, x: torch.cat([q, q.flip(1)], 1)) == {8: 24}
    assert _mult_widths(lambda m, q, x: torch.cat([q, q[:, torch.tensor([3, 2, 1, 0])]], 1)) == {8: 24}
    # an index computed from the input is not a value: the selection keeps the values' 8 bits (computing the
    # index costs 4 comparisons at 32 bits and 4 conversions of 1-bit values)
    assert _mult_widths(lambda m, q, x: torch.cat([q, q.gather(1, (x > 0).long().expand(-1, 4))], 1)) == \
        {8: 24, 32: 4, 1: 4}


def test_an_indexed_write_of_8_bit_values_over_32_bit_ones_is_32_bit():
    def write(m, q, x):
        buf = torch.cat([x * 1.0, x * 1.0], 1)  # 32-bit values
        buf[:, :4] = q  # half of them overwritten by 8-bit values: the other half is still 32-bit
        return buf

    assert _mult_widths(write) == {32: 24 + 8}


class _WritesIntoBuffer(nn.Module):
    """The 8-bit linear layer of ``_Moves`` reading a model buffer of 32-bit values (0.25, off the 8-bit grid
    of scale 0.1) after ``how(self, q)`` wrote the 8-bit input ``q`` into part or all of it."""

    def __init__(self, how) -> None:
        super().__init__()
        self.how = how
        self.weight = nn.Parameter(torch.full((3, 8), 0.5))
        self.register_buffer("cache", torch.full((2, 8), 0.25))

    def forward(self, x):
        q = torch.fake_quantize_per_tensor_affine(x, 0.1, 0, -128, 127)
        w = torch.fake_quantize_per_tensor_affine(self.weight, 0.1, 0, -128, 127)
        self.how(self, q)
        return nn.functional.linear(self.cache, w)


def _buffer_widths(how) -> dict[int, int]:
    # 3 outputs x 8 inputs = 24 mults per example, at the width of the buffer's values
    model = _WritesIntoBuffer(how)
    widths = dict(ms.count(model, (2, 4)).mults_by_bits)
    assert torch.equal(model.cache, torch.full((2, 8), 0.25))  # the count put the buffer back
    return widths


def test_a_buffer_partly_overwritten_by_8_bit_values_keeps_its_32_bit_ones():
    rows, cols = torch.arange(2)[:, None], torch.arange(4)[None]
    half = torch.arange(8) < 4
    assert _buffer_widths(lambda m, q: m.cache[:, :4].copy_(q)) == {32: 24}  # through a view of half of it
    assert _buffer_widths(lambda m, q: m.cache.index_put_((rows, cols), q)) == {32: 24}
    assert _buffer_widths(lambda m, q: m.cache.index_copy_(1, torch.arange(4), q)) == {32: 24}
    assert _buffer_widths(lambda m, q: m.cache.masked_scatter_(half, q)) == {32: 24}


def test_a_buffer_wholly_overwritten_by_8_bit_values_holds_8_bit_ones():
    assert _buffer_widths(lambda m, q: m.cache.copy_(torch.cat([q, q], 1))) == {8: 24}
    assert _buffer_widths(lambda m, q: m.cache[:, :].copy_(torch.cat([q, q], 1))) == {8: 24}  # a view of all of it
    assert _buffer_widths(lambda m, q: torch.cat([q, q], 1, out=m.cache)) == {8: 24}


def test_two_writes_that_cover_a_buffer_between_them_are_not_known_to_cover_it():
    # a known limit, on the safe side: each write alone leaves 32-bit values, and the count does not track
    # which elements were reached, so the buffer stays 32-bit after the second write too
    def both_halves(m, q):
        m.cache[:, :4] = q
        m.cache[:, 4:] = q

    assert _buffer_widths(both_halves) == {32: 24}
