"""The scorer reads back what the pruning utilities did, with every expected number derived by hand.

Each test builds a model whose weights are set so that the pruned positions are known in advance, prunes it
with ``micronet_score.compress``, counts it with ``ms.count`` and compares the report with numbers worked out
in the comments from the layer shapes and the rules (an n-bit value weighs n/32; a sparse tensor stores its
values plus one mask bit per element, or per block, when that is cheaper than dense; a conv output costs z
mults and z-1 adds (+1 for the bias) for a filter with z non-zeros, nothing when z = 0).

With float weights nothing is below 16 bits, so the 16-bit freebie applies: parameters and mults at 16 bits,
adds at 32.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import micronet_score as ms
from micronet_score.compress import (
    BlockSparse,
    GlobalUnstructured,
    LayerUnstructured,
    NMSparse,
    StructuredFilters,
    finalize_,
    prune_,
    sparsity,
)


def odd_net() -> nn.Sequential:
    """Conv2d(1, 3, 3) then Linear(27, 3), with weights of known magnitudes.

    Both weight matrices, (3, 9) and (3, 27), have odd sides, so no block bitmask (1x2 ... 16x16) fits them:
    the only sparse format is the element bitmask, and every pricing below is dense vs bitmask.

    conv.weight.view(3, 9)[f, i] = (-1)**i * 2 * (3*i + f + 1): magnitudes 2, 4, ..., 54 (even numbers);
    fc.weight[o, j] = (-1)**j * (3*j + o + 1): magnitudes 1, 2, ..., 81. Biases are 1.
    """
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(27, 3))
    f = torch.arange(3).view(3, 1)
    i = torch.arange(9).view(1, 9)
    conv = (2 * (3 * i + f + 1) * (-1) ** i).float()
    o = torch.arange(3).view(3, 1)
    j = torch.arange(27).view(1, 27)
    fc = ((3 * j + o + 1) * (-1) ** j).float()
    with torch.no_grad():
        model[0].weight.copy_(conv.view(3, 1, 3, 3))
        model[3].weight.copy_(fc)
        model[0].bias.fill_(1.0)
        model[3].bias.fill_(1.0)
    return model


INPUT = (1, 1, 5, 5)  # conv output 3 x 3 x 3: 9 positions per filter, 27 values into the linear layer


def test_dense_baseline_by_hand():
    r = ms.count(odd_net(), INPUT)
    # conv: 27 outputs (3 filters x 9 positions) of 9 mults and 8 adds + 1 bias add: 243 and 243;
    # ReLU: 27 mults; linear: 3 outputs of 27 mults and 26 + 1 adds: 81 and 81.
    assert (r.params, r.nonzero_params, r.mask_bits) == (27 + 3 + 81 + 3, 114, 0)
    assert (r.mults, r.adds) == (243 + 27 + 81, 243 + 81)
    assert r.freebie
    # 114 values at 16 bits; 351 mults at 16 bits, 324 adds at 32 bits
    assert r.param_storage == 114 * 16 / 32 == 57.0
    assert r.math_ops == 351 * 16 / 32 + 324 == 499.5


@pytest.mark.parametrize("baked", [False, True], ids=["hooks", "finalized"])
def test_global_unstructured_half_of_all_weights(baked):
    model = prune_(odd_net(), GlobalUnstructured(amount=0.5, exclude=()))
    assert hasattr(model[0], "weight_mask")
    if baked:
        finalize_(model)
        assert not hasattr(model[0], "weight_mask") and not model[0]._forward_pre_hooks
    r = ms.count(model, INPUT)
    # 27 + 81 = 108 weights; the 54 smallest magnitudes go, ranked across both layers. Magnitudes <= t number
    # t//2 (conv, even numbers) + t (fc); t = 36 gives 18 + 36 = 54, and the next one (37) is strictly larger.
    # conv: filter f keeps 2*(3i+f+1) > 36 <=> 3i+f+1 > 18 <=> i >= 6: 3 weights per filter, 9 in all.
    # fc: row o keeps 3j+o+1 > 36 <=> j >= 12: 15 weights per row, 45 in all.
    assert sparsity(model) == {"0.weight": 18 / 27, "3.weight": 36 / 81}
    conv, fc = r.layer("0"), r.layer("3")
    assert (conv.nonzero_params, fc.nonzero_params) == (9 + 3, 45 + 3)
    assert r.nonzero_params == 54 + 6
    # conv: 9 positions x 3 filters x 3 non-zeros = 81 mults; adds per output (3 - 1) + 1 bias = 3 -> 81.
    assert (conv.mults, conv.adds) == (81, 81)
    # fc: 3 rows x 15 non-zeros = 45 mults; adds 3 x (14 + 1) = 45.
    assert (fc.mults, fc.adds) == (45, 45)
    assert (r.mults, r.adds) == (81 + 27 + 45, 81 + 45)
    # storage at 16 bits: conv weight 9 values + 27 mask bits = 171 bits < 27 x 16 = 432 dense;
    # fc weight 45 x 16 + 81 = 801 bits < 81 x 16 = 1296; biases 6 x 16 = 96 bits. 1068 bits = 33.375.
    weights = {t.name: t for t in r.tensors if t.name.endswith("weight")}
    assert (weights["0.weight"].stored_values, weights["0.weight"].mask_bits, weights["0.weight"].block) == \
        (9, 27, (1, 1))
    assert (weights["3.weight"].stored_values, weights["3.weight"].mask_bits, weights["3.weight"].block) == \
        (45, 81, (1, 1))
    assert weights["0.weight"].param_storage == 171 / 32
    assert r.mask_bits == 27 + 81
    assert r.param_storage == 1068 / 32 == 33.375
    # mults 153 at 16 bits, adds 126 at 32 bits
    assert r.math_ops == 153 / 2 + 126 == 202.5
    assert {t.name for t in r.tensors} == {"0.weight", "0.bias", "3.weight", "3.bias"}


def test_per_layer_unstructured_with_a_mapping_and_one_amount():
    model = prune_(odd_net(), LayerUnstructured(amount={"0": 1 / 3, "3": 2 / 3}))
    r = ms.count(model, INPUT)
    # conv loses round(27/3) = 9 smallest: magnitudes 2..18, i.e. 3i+f+1 <= 9, i <= 2: 6 left per filter.
    # fc loses round(81*2/3) = 54 smallest: magnitudes 1..54, 3j+o+1 <= 54 <=> j <= 17: 9 left per row.
    assert sparsity(model) == {"0.weight": 9 / 27, "3.weight": 54 / 81}
    conv, fc = r.layer("0"), r.layer("3")
    assert (conv.nonzero_params, conv.mults, conv.adds) == (18 + 3, 18 * 9, 18 * 9)  # 6 mults, 5+1 adds per output
    assert (fc.nonzero_params, fc.mults, fc.adds) == (27 + 3, 27, 27)
    # conv 18 x 16 + 27 = 315 bits < 432; fc 27 x 16 + 81 = 513 bits < 1296; biases 96 bits: 924 bits.
    assert (conv.mask_bits, fc.mask_bits) == (27, 81)
    assert r.param_storage == 924 / 32

    uniform = ms.count(prune_(odd_net(), LayerUnstructured(amount=1 / 3)), INPUT)
    # fc now loses round(81/3) = 27: magnitudes 1..27, j <= 8: 18 left per row, 54 in all
    assert uniform.layer("3").nonzero_params == 54 + 3 and uniform.layer("3").mults == 54
    assert uniform.layer("0").mults == 162


BLOCK = ms.get_convention("micronet").with_options(name="micronet-block", sparse_format="block")


def block_conv() -> nn.Sequential:
    """Conv2d(4, 8, 2) without bias: the weight viewed as (8, 16) holds eight 4x4 blocks (2 block-rows x 4
    block-columns). Every value is 1 except blocks (0, 1) and (1, 2), which are 2: their L1 norm (32) is the
    largest, so pruning 75% of the blocks (6 of 8) keeps exactly those two."""
    model = nn.Sequential(nn.Conv2d(4, 8, 2, bias=False))
    matrix = torch.ones(8, 16)
    matrix[0:4, 4:8] = 2.0
    matrix[4:8, 8:12] = 2.0
    with torch.no_grad():
        model[0].weight.copy_(matrix.view(8, 4, 2, 2))
    return model


@pytest.mark.parametrize("baked", [False, True], ids=["hooks", "finalized"])
def test_block_sparse_4x4_is_stored_with_a_block_bitmask(baked):
    model = prune_(block_conv(), BlockSparse(block=(4, 4), amount=0.75))
    if baked:
        finalize_(model)
    # The default (the official format) stores the 32 non-zeros plus 1 mask bit per element: 32 x 16 + 128
    # = 640 bits -> 20. Block bitmasks are the "block" convention option.
    (default_row,) = ms.count(model, (1, 4, 5, 5)).tensors
    assert (default_row.block, default_row.stored_values, default_row.mask_bits) == ((1, 1), 32, 128)
    assert default_row.param_storage == 640 / 32 == 20.0
    r = ms.count(model, (1, 4, 5, 5), convention=BLOCK)
    (row,) = r.tensors
    assert row.name == "0.weight" and row.shape == (8, 4, 2, 2)
    # 2 kept blocks x 16 values = 32 non-zeros of 128.
    assert (row.params, row.nonzero_params) == (128, 32)
    # Costs at 16 bits, by hand:
    #   dense:               128 x 16               = 2048 bits -> 64
    #   element bitmask:     32 x 16 + 128          =  640 bits -> 20
    #   4x4 blocks:          2 x 16 values x 16 + 8 =  520 bits -> 16.25   (one bit per block: 8 blocks)
    #   the other candidates are dearer: 2x2 / 1x4 / 4x1: 32 values + 32 bits = 544 -> 17;
    #   1x2 / 2x1: 32 values + 64 bits = 576 -> 18; 1x8 / 8x1: 64 values + 16 bits -> 32.5; 8x8, 1x16: 128 values.
    assert (row.block, row.stored_values, row.mask_bits) == ((4, 4), 32, 8)
    assert row.param_storage == 520 / 32 == 16.25
    assert r.mask_bits == 8 and r.param_storage == 16.25
    # each filter (a row of the matrix) keeps one 4-wide slice of a block: 4 non-zeros; 4 x 4 output positions.
    # mults 8 filters x 4 x 16 = 512; adds 8 x (4 - 1) x 16 = 384 (no bias).
    assert (r.mults, r.adds) == (512, 384)


def test_block_sparse_linear_reports_its_own_shape_and_block():
    layer = nn.Linear(16, 8, bias=False)
    matrix = torch.ones(8, 16)
    for r in range(8):  # a staircase: row r keeps the 1x4 block of columns 4*(r % 4) .. 4*(r % 4) + 3
        matrix[r, 4 * (r % 4) : 4 * (r % 4) + 4] = 2.0
    with torch.no_grad():
        layer.weight.copy_(matrix)
    model = prune_(nn.Sequential(layer), BlockSparse(block=(1, 4), amount=0.75))  # 24 of 32 blocks go
    (row,) = ms.count(model, (1, 16), convention=BLOCK).tensors
    # 8 kept 1x4 blocks: 32 values x 16 + 32 mask bits = 544 bits -> 17. Dearer: element bitmask 32 x 16 + 128
    # = 640; 1x2: 32 values + 64 bits = 576; 2x2 and 2x4: 64 values; 4x4: every block of rows 0-3 is hit, 128.
    assert row.nonzero_params == 32 and row.param_storage == 17.0  # passes today
    assert row.shape == (8, 16)  # got (16, 8)
    assert (row.block, row.stored_values, row.mask_bits) == ((1, 4), 32, 32)  # got block (4, 1)


def nm_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(8, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 8))


def test_nm_2_4_keeps_exactly_half_and_halves_the_mults():
    dense = ms.count(nm_net(), (1, 8, 6, 6))
    model = prune_(nm_net(), NMSparse(n=2, m=4))
    r = ms.count(model, (1, 8, 6, 6))
    # conv weight (4, 8, 3, 3): at each of the 9 kernel positions, 8 input channels = 2 groups of 4, 2 kept
    # per group: 4 filters x 9 x 2 x 2 = 144 of 288. fc weight (8, 64): 16 groups per row, 2 kept: 256 of 512.
    conv, fc = r.layer("0"), r.layer("3")
    assert (conv.nonzero_params, fc.nonzero_params) == (144 + 4, 256 + 8)
    # conv: 4 filters x 36 non-zeros x 16 output positions (4 x 4) = 2304 (dense: 4 x 72 x 16 = 4608);
    # adds: (36 - 1) + 1 bias = 36 per output -> 2304.
    assert (dense.layer("0").mults, conv.mults, conv.adds) == (4608, 2304, 2304)
    # fc: 8 rows x 32 non-zeros = 256 (dense 512); adds 8 x (31 + 1) = 256.
    assert (dense.layer("3").mults, fc.mults, fc.adds) == (512, 256, 256)
    # Element bitmask: 144 x 16 + 288 = 2592 bits < dense 4608; fc 256 x 16 + 512 = 4608 < 8192. A block
    # format would have to waste fewer than n/16 zeros to win (values x 16 + n/s < nnz x 16 + n), and the
    # 2:4 choice differs between neighbouring kernel positions, so it does not.
    weights = {t.name: t for t in r.tensors if t.name.endswith("weight")}
    assert (weights["0.weight"].block, weights["0.weight"].mask_bits) == ((1, 1), 288)
    assert (weights["3.weight"].block, weights["3.weight"].mask_bits) == ((1, 1), 512)
    assert r.param_storage == (2592 + 4608 + 12 * 16) / 32


def structured_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(16 * 4 * 4, 10))


def test_structured_filters_make_the_layers_physically_smaller():
    model = prune_(structured_net(), StructuredFilters(amount=0.25), example_inputs=torch.randn(1, 3, 8, 8))
    r = ms.count(model, (1, 3, 8, 8))
    # round(0.25 x 8) = 2 filters leave conv 0 (8 -> 6), round(0.25 x 16) = 4 leave conv 2 (16 -> 12); the
    # linear layer loses the 4 x 16 inputs of the removed channels (256 -> 192); its 10 outputs stay.
    conv0, conv2, fc = r.layer("0"), r.layer("2"), r.layer("5")
    assert (conv0.params, conv2.params, fc.params) == (6 * 27 + 6, 12 * 6 * 9 + 12, 192 * 10 + 10)
    assert r.params == r.nonzero_params == 168 + 660 + 1930
    assert r.mask_bits == 0  # nothing is zero: the layers are smaller, not sparse
    # conv 0: 6 x 6 x 6 = 216 outputs of 27 mults, 26 + 1 adds; conv 2: 12 x 4 x 4 = 192 outputs of 54.
    assert (conv0.mults, conv0.adds) == (216 * 27, 216 * 27)
    assert (conv2.mults, conv2.adds) == (192 * 54, 192 * 54)
    assert (fc.mults, fc.adds) == (1920, 1920)
    assert (r.layer("1").mults, r.layer("3").mults) == (216, 192)  # ReLUs on the smaller maps
    assert r.param_storage == 2758 / 2
