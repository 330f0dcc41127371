"""Unstructured, block and N:M pruning, finalize_ and sparsity, with hand-derived expectations."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from micronet_score.compress import (
    BlockMagnitude,
    BlockSparse,
    GlobalUnstructured,
    LayerEmptiedWarning,
    LayerUnstructured,
    NMMagnitude,
    NMSparse,
    finalize_,
    prune_,
    sparsity,
)


def two_layer_model() -> nn.Sequential:
    """Linear(2->4) with |w| = 1..8 and Linear(4->2) with |w| = 9..16 (distinct magnitudes)."""
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.arange(1.0, 9.0).reshape(4, 2) * torch.tensor([1.0, -1.0]))
        model[2].weight.copy_(torch.arange(9.0, 17.0).reshape(2, 4))
    return model


def test_global_unstructured_removes_the_globally_smallest_weights():
    model = two_layer_model()
    with pytest.warns(LayerEmptiedWarning, match=r"pruned every weight of layer\(s\) '0' \(8 weights\)"):
        prune_(model, GlobalUnstructured(amount=0.5, exclude=()))
    # 16 weights in total, 50% -> the 8 smallest |w| = 1..8, which are exactly all of layer 0.
    assert torch.count_nonzero(model[0].weight) == 0
    assert torch.count_nonzero(model[2].weight) == 8
    assert sparsity(model) == {"0.weight": 1.0, "2.weight": 0.0}
    # torch's standard representation is kept.
    assert {n for n, _ in model[0].named_parameters()} == {"weight_orig", "bias"}
    assert {n for n, _ in model[0].named_buffers()} == {"weight_mask"}


def test_global_unstructured_quarter_and_bias():
    model = two_layer_model()
    with torch.no_grad():
        model[0].bias.copy_(torch.tensor([0.5, 100.0, 100.0, 100.0]))
        model[2].bias.copy_(torch.tensor([100.0, 0.25]))
    prune_(model, GlobalUnstructured(amount=0.25, include_bias=True, exclude=()))
    # Pool: 16 weights + 6 biases = 22 values; round(0.25 * 22) = round(5.5) = 6 pruned:
    # biases 0.25 and 0.5, then |w| = 1, 2, 3, 4 (all in layer 0).
    assert sparsity(model, include_bias=True) == {
        "0.weight": 4 / 8,
        "0.bias": 1 / 4,
        "2.weight": 0.0,
        "2.bias": 1 / 2,
    }


def test_global_unstructured_twice_prunes_the_remaining_weights():
    model = two_layer_model()
    with pytest.warns(LayerEmptiedWarning, match="'0'"):
        prune_(model, GlobalUnstructured(amount=0.5, exclude=()))
    with pytest.warns(LayerEmptiedWarning, match="'0'"):  # still empty: said again
        prune_(model, GlobalUnstructured(amount=0.5, exclude=()))
    # torch.nn.utils.prune semantics: the second call prunes 50% of the 8 survivors: |w| = 9..12.
    assert sparsity(model) == {"0.weight": 1.0, "2.weight": 0.5}
    assert torch.count_nonzero(model[2].weight[0]) == 0


def test_layer_unstructured_float_and_mapping():
    model = two_layer_model()
    prune_(model, LayerUnstructured(amount=0.25))
    # each layer: round(0.25 * 8) = 2 of its own smallest weights.
    assert sparsity(model) == {"0.weight": 0.25, "2.weight": 0.25}
    assert model[0].weight.flatten()[:2].eq(0).all()  # |w| = 1, 2
    assert model[2].weight.flatten()[:2].eq(0).all()  # |w| = 9, 10

    model = two_layer_model()
    prune_(model, LayerUnstructured(amount={"2": 0.5}))
    assert sparsity(model) == {"0.weight": 0.0, "2.weight": 0.5}
    with pytest.raises(ValueError, match=r"names \['nope'\], which are not selected layers"):
        prune_(two_layer_model(), LayerUnstructured(amount={"nope": 0.5}))


def test_filter_fn_and_layer_types_select_layers():
    model = two_layer_model()
    prune_(model, LayerUnstructured(amount=0.5, filter_fn=lambda module, name: name == "0"))
    assert sparsity(model) == {"0.weight": 0.5, "2.weight": 0.0}
    with pytest.raises(ValueError, match=r"no layer with a weight matches layer_types=\(Conv2d\)"):
        prune_(two_layer_model(), GlobalUnstructured(layer_types=(nn.Conv2d,)))


def test_block_sparse_zeroes_the_weakest_blocks():
    layer = nn.Linear(8, 8, bias=False)
    # 8x8 weight, 4x4 blocks: block (r, c) filled with a constant v, so its L1 norm is 16 * |v|.
    values = torch.tensor([[1.0, -5.0], [3.0, 0.5]])
    with torch.no_grad():
        layer.weight.copy_(values.repeat_interleave(4, 0).repeat_interleave(4, 1))
    model = nn.Sequential(layer)
    prune_(model, BlockSparse(block=(4, 4), amount=0.5))
    # 4 blocks, round(0.5 * 4) = 2 pruned: norms 16, 80, 48, 8 -> blocks (1, 1) and (0, 0) go.
    w = model[0].weight
    assert w[:4, :4].eq(0).all() and w[4:, 4:].eq(0).all()
    assert w[:4, 4:].eq(-5).all() and w[4:, :4].eq(3).all()
    assert isinstance(next(iter(model[0]._forward_pre_hooks.values())), BlockMagnitude)


def test_block_sparse_uses_the_out_by_rest_matrix_of_a_conv():
    conv = nn.Conv2d(2, 4, 2, bias=False)  # matrix view 4 x (2 * 2 * 2) = 4 x 8
    with torch.no_grad():
        conv.weight.copy_(torch.arange(1.0, 33.0).reshape(4, 2, 2, 2))
    model = nn.Sequential(conv)
    prune_(model, BlockSparse(block=(2, 4), amount=0.25, norm="l2"))
    # 2 x 2 = 4 blocks, round(0.25 * 4) = 1 pruned: the top-left block holds the smallest values 1..4, 9..12.
    matrix = model[0].weight.reshape(4, 8)
    assert matrix[:2, :4].eq(0).all()
    assert torch.count_nonzero(matrix) == 32 - 8


def test_block_sparse_rejects_blocks_that_do_not_divide_and_leaves_the_model_alone():
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 6))
    with pytest.raises(ValueError, match=r"BlockSparse cannot prune layer\(s\) '1' \(block \(4, 4\) does not divide the 6x8"):
        prune_(model, BlockSparse(block=(4, 4)))
    assert not hasattr(model[0], "weight_mask")  # validated before anything was masked


def test_nm_sparse_keeps_n_of_every_m_along_the_input_dimension():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 6), nn.Conv2d(8, 4, 3))
    prune_(model, NMSparse(n=2, m=4))
    linear = model[0].weight.reshape(6, 4, 4)  # groups of 4 consecutive inputs
    assert (torch.count_nonzero(linear, dim=-1) == 2).all()
    conv = model[1].weight.permute(0, 2, 3, 1).reshape(4, 3, 3, 2, 4)  # groups of 4 input channels
    assert (torch.count_nonzero(conv, dim=-1) == 2).all()
    assert sparsity(model) == {"0.weight": 0.5, "1.weight": 0.5}
    assert isinstance(next(iter(model[0]._forward_pre_hooks.values())), NMMagnitude)


def test_nm_sparse_keeps_the_largest_and_composes_with_earlier_masks():
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.1, -4.0, 3.0, 2.0]]))
    model = nn.Sequential(layer)
    prune_(model, LayerUnstructured(amount=0.25))  # removes 0.1 -> mask [0, 1, 1, 1]
    prune_(model, NMSparse(n=2, m=4))  # keeps -4 and 3
    assert model[0].weight_mask.tolist() == [[0.0, 1.0, 1.0, 0.0]]
    with pytest.raises(ValueError, match=r"m=4 does not divide the 6 input channels"):
        prune_(nn.Sequential(nn.Linear(6, 2)), NMSparse(n=2, m=4))


def test_prune_rejects_unknown_configs_and_stray_example_inputs():
    with pytest.raises(TypeError, match="prune_ expects"):
        prune_(two_layer_model(), "half")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="example_inputs is only used by StructuredFilters"):
        prune_(two_layer_model(), GlobalUnstructured(), example_inputs=torch.ones(1, 2))


def test_finalize_makes_masks_permanent_and_the_model_portable():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    prune_(model, GlobalUnstructured(amount=0.5, include_bias=True, exclude=()))
    prune_(model, NMSparse(n=2, m=4, layer_types=(nn.Linear,)))
    x = torch.randn(2, 1, 8, 8)
    expected = model(x)
    before = sparsity(model, include_bias=True)
    assert finalize_(model) is model
    assert sparsity(model, include_bias=True) == before
    assert not any(name.endswith(("_orig", "_mask")) for name in model.state_dict())
    assert len(model[0]._forward_pre_hooks) == 0
    torch.testing.assert_close(model(x), expected)

    clone = copy.deepcopy(model)
    torch.testing.assert_close(clone(x), expected)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    fresh.load_state_dict(torch.load(buffer))
    torch.testing.assert_close(fresh(x), expected)


def test_finalize_removes_parametrizations():
    class Double(nn.Module):
        def forward(self, w):
            return 2 * w

    model = nn.Sequential(nn.Linear(2, 2))
    nn.utils.parametrize.register_parametrization(model[0], "weight", Double())
    value = model[0].weight.detach().clone()
    finalize_(model)
    assert not nn.utils.parametrize.is_parametrized(model[0])
    torch.testing.assert_close(model[0].weight.detach(), value)


def test_sparsity_reads_orig_times_mask_even_before_a_forward_pass():
    model = two_layer_model()
    prune_(model, LayerUnstructured(amount=0.5))
    state = model.state_dict()
    other = two_layer_model()
    prune_(other, LayerUnstructured(amount=0.0))
    other.load_state_dict(state)  # weight attribute is stale until the next forward
    assert sparsity(other) == {"0.weight": 0.5, "2.weight": 0.5}
