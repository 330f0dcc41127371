"""Storage pricing follows the official rules (spec sections 1-3): weights in the cheaper of dense and non-zeros
plus one mask bit per element; vectors dense; block bitmasks only where a tensor really is block-sparse."""

import pytest
import torch
from torch import nn

import micronet_score as ms
from micronet_score.convention import ConventionError, StoragePolicy, get_convention
from micronet_score.counting.storage import infer_role, measure, price
from micronet_score.errors import MicronetError


def masked_conv_linear() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    with torch.no_grad():
        model[0].weight[:, :, 0, :] = 0  # 8 x 3 x 3 = 72 of 216 weights zeroed by hand: 144 non-zeros
        model[0].bias.zero_()  # a bias of zeros (as after folding a fresh batch norm)
        model[2].weight[:, ::2] = 0  # every other column: 640 of 1,280 zeroed
        model[2].bias[:5] = 0  # half a bias zero
    return model


def test_hand_masked_conv_and_linear_one_mask_bit_per_weight_element_dense_biases():
    r = ms.count(masked_conv_linear(), (1, 3, 6, 6))
    rows = {t.name: t for t in r.tensors}
    # fp32 and nothing below 16 bits: the freebie prices every value at 16 bits.
    # conv weight: 144 non-zeros x 16 + 216 mask bits = 2,520 bits < dense 216 x 16 = 3,456.
    w0 = rows["0.weight"]
    assert (w0.block, w0.stored_values, w0.mask_bits, w0.param_storage) == ((1, 1), 144, 216, 2520 / 32)
    # linear weight: 640 x 16 + 1,280 = 11,520 bits < dense 1,280 x 16 = 20,480.
    w2 = rows["2.weight"]
    assert (w2.block, w2.stored_values, w2.mask_bits, w2.param_storage) == ((1, 1), 640, 1280, 11520 / 32)
    # biases are dense, zeros included: 8 x 16 = 128 bits and 10 x 16 = 160 bits, no mask.
    for name, n in (("0.bias", 8), ("2.bias", 10)):
        assert (rows[name].block, rows[name].stored_values, rows[name].mask_bits) == (None, n, 0)
    assert r.mask_bits == 216 + 1280
    assert r.param_storage == (2520 + 128 + 11520 + 160) / 32 == 447.75


def test_a_dense_weight_with_a_few_zeros_stays_dense():
    layer = nn.Linear(100, 10, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.5)
        layer.weight[0, :5] = 0  # 5 accidental zeros in 1,000
    (row,) = ms.count(layer, (1, 100)).tensors
    # dense 1,000 x 16 = 16,000 bits; sparse 995 x 16 + 1,000 = 16,920 bits: dense is cheaper.
    assert (row.block, row.stored_values, row.mask_bits, row.param_storage) == (None, 1000, 0, 500.0)
    assert row.nonzero_params == 995


def block_linear(hole: bool = False) -> nn.Linear:
    layer = nn.Linear(16, 8, bias=False)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[0:4, 4:8] = 1.0  # two of the eight 4x4 blocks kept, every value non-zero
        layer.weight[4:8, 8:12] = 2.0
        if hole:
            layer.weight[0, 4] = 0.0  # one zero inside a kept block: no longer block-sparse
    return layer


def with_format(fmt: str):
    return get_convention("micronet").with_options(name=f"micronet-{fmt}", sparse_format=fmt)


def test_block_sparse_weight_under_block_format_costs_one_bit_per_block():
    (row,) = ms.count(block_linear(), (1, 16), convention=with_format("block")).tensors
    # 4x4 blocks: 8 blocks -> 8 mask bits; 2 kept blocks x 16 values x 16 bits = 512; total 520 bits = 16.25.
    # (2x2 blocks: 32 values + 32 bits = 544; element: 32 x 16 + 128 = 640; dense 128 x 16 = 2,048.)
    assert (row.block, row.stored_values, row.mask_bits, row.param_storage) == ((4, 4), 32, 8, 520 / 32)


def test_the_default_is_the_official_element_bitmask_even_for_block_sparse_weights():
    (row,) = ms.count(block_linear(), (1, 16)).tensors
    # 32 non-zeros x 16 + 128 mask bits (one per element of the full 8 x 16 shape) = 640 bits = 20.
    assert (row.block, row.stored_values, row.mask_bits, row.param_storage) == ((1, 1), 32, 128, 20.0)


def test_block_format_refuses_blocks_that_would_store_zeros_cheapest_does_not():
    (row,) = ms.count(block_linear(hole=True), (1, 16), convention=with_format("block")).tensors
    # 31 non-zeros: no block shape has every block all zero or all non-zero -> element: 31 x 16 + 128 = 624.
    assert (row.block, row.stored_values, row.mask_bits) == ((1, 1), 31, 128)
    (row,) = ms.count(block_linear(hole=True), (1, 16), convention=with_format("cheapest")).tensors
    # "cheapest" stores the zero inside its kept 4x4 block: 32 values x 16 + 8 bits = 520 bits.
    assert (row.block, row.stored_values, row.mask_bits) == ((4, 4), 32, 8)


def test_price_says_which_format_and_why():
    pruned = torch.ones(8, 16)
    pruned[:, :8] = 0
    p = price(measure(pruned), 16)
    assert p.format == "element" and p.reason.startswith("element bitmask: 64 non-zeros x 16 bits + 128 mask bits")
    assert price(measure(torch.ones(4, 4)), 16).reason == "dense: no zeros"
    assert "vector" in price(measure(torch.zeros(10)), 16).reason
    assert price(measure(torch.zeros(4, 4), role="vector"), 16).format == "dense"
    meta = price(measure(torch.ones(4, 4, device="meta")), 16)
    assert meta.format == "dense" and "unknown" in meta.reason


def test_which_tensors_may_be_sparse_is_the_conventions_choice():
    zeros = torch.zeros(100)
    # "all": a vector of 100 zeros is stored as 0 values + 100 mask bits.
    p = price(measure(zeros, StoragePolicy("element", "all")), 16, StoragePolicy("element", "all"))
    assert (p.values, p.mask_bits) == (0, 100)
    none = StoragePolicy("element", "none")
    pruned = torch.zeros(10, 10)
    assert price(measure(pruned, none), 16, none).format == "dense"
    assert infer_role(torch.ones(3)) == "vector" and infer_role(torch.ones(3, 3)) == "weight"


def test_bad_policy_and_role_are_clear_micronet_errors():
    with pytest.raises(MicronetError, match="sparse format"):
        measure(torch.ones(2, 2), "bitmask-please")
    with pytest.raises(ConventionError, match="role"):
        measure(torch.ones(2, 2), role="bias")
