"""Convolutions: every count below is hand arithmetic (dot-product length x outputs)."""

import torch
from torch import nn

import micronet_score as ms


def test_conv2d_no_bias():
    # Conv2d(16, 32, 3), 32x32 input -> 30x30; per output 3*3*16 = 144 mults, 143 adds.
    r = ms.count(nn.Conv2d(16, 32, 3, bias=False), (1, 16, 32, 32))
    assert r.mults == 3 * 3 * 16 * 32 * 30 * 30 == 4_147_200
    assert r.adds == 143 * 32 * 30 * 30 == 4_118_400
    assert r.params == 3 * 3 * 16 * 32 == 4_608


def test_conv2d_bias_adds_one_per_output():
    # 144 mults + (143 + 1) adds per output; 30*30*32 = 28,800 outputs.
    r = ms.count(nn.Conv2d(16, 32, 3), (1, 16, 32, 32))
    assert r.mults == 4_147_200
    assert r.adds == 144 * 28_800 == 4_147_200
    assert r.params == 4_608 + 32


def test_strided_padded_conv_counts_every_output_fully():
    # 3x3 stride 2 pad 1 on 32x32 -> 16x16; padding ignored: 3*3*8 = 72 mults per output, 16 channels.
    r = ms.count(nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), (1, 8, 32, 32))
    assert r.mults == 72 * 16 * 16 * 16 == 294_912
    assert r.adds == 71 * 16 * 16 * 16 == 290_816


def test_dilated_conv():
    # k3 dilation 2 on 20x20 -> 16x16; dot product 3*3*4 = 36.
    r = ms.count(nn.Conv2d(4, 6, 3, dilation=2, bias=False), (1, 4, 20, 20))
    assert r.mults == 36 * 6 * 16 * 16 == 55_296


def test_grouped_conv_groups_3():
    # 12 -> 24 channels, groups 3: each filter sees 12/3 = 4 channels: 3*3*4 = 36 mults; 8x8 out (pad 1).
    r = ms.count(nn.Conv2d(12, 24, 3, padding=1, groups=3, bias=False), (1, 12, 8, 8))
    assert r.mults == 36 * 24 * 64 == 55_296
    assert r.adds == 35 * 24 * 64 == 53_760
    assert r.params == 24 * 4 * 9 == 864


def test_depthwise_conv():
    # depthwise 32 channels 3x3, 16x16 out: 9 mults, 8 adds per output, plus bias.
    r = ms.count(nn.Conv2d(32, 32, 3, padding=1, groups=32), (1, 32, 16, 16))
    assert r.mults == 9 * 32 * 256 == 73_728
    assert r.adds == (8 + 1) * 32 * 256 == 73_728
    assert r.params == 32 * 9 + 32


def test_conv1d_and_conv3d():
    # Conv1d(4, 8, 5) on length 20 -> 16: 20 mults per output, 8*16 outputs.
    r1 = ms.count(nn.Conv1d(4, 8, 5, bias=False), (1, 4, 20))
    assert r1.mults == 20 * 8 * 16 == 2_560
    # Conv3d(2, 4, 3) on 6^3 -> 4^3: 3*3*3*2 = 54 mults per output, 4*64 outputs.
    r3 = ms.count(nn.Conv3d(2, 4, 3, bias=False), (1, 2, 6, 6, 6))
    assert r3.mults == 54 * 4 * 64 == 13_824


def test_transposed_conv_costs_per_input_position():
    # ConvTranspose2d(8, 4, 3, stride 2) on 5x5: each of 8*25 input elements meets 4*3*3 = 36 weights.
    r = ms.count(nn.ConvTranspose2d(8, 4, 3, stride=2, bias=False), (1, 8, 5, 5))
    assert r.mults == 8 * 25 * 36 == 7_200
    # output 11x11x4 = 484 elements; accumulation adds = products - outputs = 7,200 - 484.
    assert r.adds == 7_200 - 484


def test_batch_gives_per_example_counts():
    one = ms.count(nn.Conv2d(3, 8, 3), (1, 3, 16, 16))
    four = ms.count(nn.Conv2d(3, 8, 3), (4, 3, 16, 16))
    assert four.mults == one.mults == 27 * 8 * 14 * 14
    assert four.batch_size == 4


def test_functional_conv_with_weights_of_the_module(fn_module):
    # F.conv2d called from a custom forward: the weight is a parameter, counted once.
    w = torch.randn(6, 3, 5, 5)
    model = fn_module(lambda x, w: torch.nn.functional.conv2d(x, w), w=w)
    r = ms.count(model, (1, 3, 12, 12))
    assert r.mults == 75 * 6 * 8 * 8 == 28_800
    assert r.params == 450


def test_sparse_filters_hand_made_mask():
    # Conv2d(2, 3, 2): filters have 8 weights. Zero out: filter 0 keeps 8, filter 1 keeps 3, filter 2 keeps 0.
    conv = nn.Conv2d(2, 3, 2, bias=True)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(0.5)
        conv.weight[1].zero_()
        conv.weight[1, 0, 0, :] = 2.0  # 2 non-zeros
        conv.weight[1, 1, 1, 1] = 3.0  # 3rd non-zero
        conv.weight[2].zero_()
    r = ms.count(conv, (1, 2, 5, 5))  # 4x4 = 16 outputs per channel
    # mults: (8 + 3 + 0) * 16 = 176; adds: ((8-1) + (3-1) + 0) * 16 + bias for the 2 live filters 2 * 16.
    assert r.mults == 176
    assert r.adds == 9 * 16 + 32 == 176
    assert r.params == 24 + 3
    assert r.nonzero_params == 11 + 3
    # weight 24 values, 11 non-zero at 16 bits (freebie): dense 24*16 = 384 bits; bitmask 11*16 + 24 = 200.
    row = next(t for t in r.tensors if t.name.endswith("weight"))
    assert row.mask_bits == 24 and row.stored_values == 11
    assert row.param_storage == 200 / 32


def test_pruned_with_torch_prune_masks_reads_effective_weight():
    from torch.nn.utils import prune

    conv = nn.Conv2d(4, 8, 3, bias=False)
    prune.l1_unstructured(conv, "weight", amount=0.75)  # 288 weights, 216 zeroed, 72 kept
    r = ms.count(conv, (1, 4, 10, 10))
    assert r.params == 288
    assert r.nonzero_params == 72
    # 72 kept weights, each used once per output position (8x8 = 64): 72 * 64 mults.
    assert r.mults == 72 * 64
    # at 16 bits (freebie): bitmask 72*16 + 288 = 1,440 bits < dense 288*16 = 4,608; 1,440 / 32 = 45.
    assert r.mask_bits == 288
    assert r.param_storage == 45
    # weight_orig and weight_mask are training-time tensors: not counted, not listed as unused.
    assert r.unused == ()
    assert [t.name for t in r.tensors] == ["weight"]


def test_fully_zeroed_filter_costs_nothing():
    conv = nn.Conv2d(1, 2, 1, bias=True)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0] = 1.0
        conv.bias.fill_(1.0)
    r = ms.count(conv, (1, 1, 3, 3))
    # only channel 0: 1 mult per output, 0 + 1 (bias) adds; 9 outputs.
    assert r.mults == 9 and r.adds == 9
