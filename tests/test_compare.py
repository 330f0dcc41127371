"""``compare(before, after)``: per-layer differences between two reports, with hand-derived deltas."""

from __future__ import annotations

import doctest
import importlib
import json

import pytest
import torch
from torch import nn

import micronet_score as ms
from micronet_score.compare import BitsChange, Change, Comparison, compare
from micronet_score.compress import FakeQuant, LayerUnstructured, calibrate, prune_, quantize_


def mlp() -> nn.Sequential:
    """Linear(4, 3) -> ReLU -> Linear(3, 2) with known weights; biases 1."""
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2, 3, -4], [5, -6, 7, -8], [9, -10, 11, -12]]))
        model[2].weight.copy_(torch.tensor([[1.0, 2, 3], [4, 5, 6]]))
        model[0].bias.fill_(1.0)
        model[2].bias.fill_(1.0)
    return model


def pruned_and_quantized() -> nn.Sequential:
    model = prune_(mlp(), LayerUnstructured(amount={"0": 0.5}))
    quantize_(model, {"0": FakeQuant(weight_bits=4, act_bits=8)})
    calibrate(model, [torch.tensor([[1.0, -1.0, 0.5, 2.0]])])
    return model


@pytest.fixture
def diff() -> Comparison:
    return compare(ms.count(mlp(), (1, 4)), ms.count(pruned_and_quantized(), (1, 4)))


def test_prune_and_quantize_deltas_by_hand(diff):
    # Before (float, freebie on): layer 0: 12 + 3 values, 12 mults, 3 x (3 + 1) = 12 adds; ReLU 3 mults;
    # layer 2: 6 + 2 values, 6 mults, 2 x (2 + 1) = 6 adds.
    # After: layer 0 loses its 6 smallest weights (magnitudes 1..6): row 0 is empty, row 1 keeps 7 and -8,
    # row 2 keeps all four. 4-bit per-channel grids keep them non-zero (row 1 scale 8/7: 7 -> 6.1; row 2
    # scale 12/7: 9 -> 5.25). Layer 0: 6 mults; adds: row 0 nothing (an empty filter skips its bias too),
    # row 1 (2 - 1) + 1, row 2 (4 - 1) + 1: 6.
    l0, relu, l2 = diff.layer("0"), diff.layer("1"), diff.layer("2")
    assert (l0.type_before, l0.type_after) == ("Linear", "FakeQuantLinear")
    assert (l0.params.before, l0.params.after, l0.params.delta) == (15, 15, 0)
    assert (l0.nonzero_params.before, l0.nonzero_params.after, l0.nonzero_params.delta) == (15, 9, -6)
    assert (l0.mults.delta, l0.adds.delta) == (6 - 12, 6 - 12)
    # 4-bit weight storage, by hand (rows x cols = 3 x 4; rows are odd, so only 1xN blocks fit):
    #   dense 12 x 4 = 48 bits; element bitmask 6 x 4 + 12 = 36;
    #   the element bitmask is the official format and the default (block bitmasks are the "block" option).
    assert (l0.mask_bits.before, l0.mask_bits.after) == (0, 12)
    # bias: 3 values at 32 bits (the freebie is off). 36/32 + 3 = 4.125; before 15 x 16 / 32 = 7.5
    assert (l0.param_storage.before, l0.param_storage.after) == (7.5, 4.125)
    assert l0.param_storage.delta == -3.375
    assert (l0.param_bits.before, l0.param_bits.after) == ((16,), (4, 32))
    assert (l0.mult_bits.before, l0.mult_bits.after) == ((16,), (8,))  # 8-bit input x 4-bit weight
    # math ops: before 12 x 16/32 + 12 = 18; after 6 x 8/32 + 6 = 7.5
    assert (l0.math_ops.before, l0.math_ops.after, l0.math_ops.delta) == (18.0, 7.5, -10.5)
    # The rest is untouched, but loses the freebie: 32-bit values and multiplies.
    assert relu.status == "changed" and relu.mults.delta == 0
    assert (relu.math_ops.before, relu.math_ops.after) == (1.5, 3.0)
    assert (l2.param_storage.before, l2.param_storage.after, l2.param_storage.delta) == (4.0, 8.0, 4.0)
    assert (l2.math_ops.before, l2.math_ops.after) == (6 / 2 + 6, 6 + 6)
    assert (l2.param_bits.before, l2.param_bits.after) == ((16,), (32,))
    # Totals: storage 11.5 -> 4.125 + 8 = 12.125 (+0.625: losing the freebie costs more than it saves);
    # math ops 28.5 -> 7.5 + 3 + 12 = 22.5 (-6).
    t = diff.total
    assert (t.param_storage.before, t.param_storage.after, t.param_storage.delta) == (11.5, 12.125, 0.625)
    assert (t.math_ops.before, t.math_ops.after, t.math_ops.delta) == (28.5, 22.5, -6.0)
    assert (t.nonzero_params.delta, t.mask_bits.delta, t.mults.delta, t.adds.delta) == (-6, 12, -6, -6)
    assert (t.param_bits.before, t.param_bits.after) == ((16,), (4, 32))
    assert (t.mult_bits.before, t.mult_bits.after) == ((16,), (8, 32))
    assert diff.freebie == (True, False)
    assert diff.params_by_bits == ({16: 23}, {4: 12, 32: 11})


def test_score_delta_by_hand(diff):
    rules = ms.RuleSet("tiny", param_baseline=11.5, ops_baseline=28.5)  # the float model scores 2
    delta = diff.score_delta(rules)
    assert delta.before.value == 2.0
    assert delta.after.value == pytest.approx(12.125 / 11.5 + 22.5 / 28.5, rel=1e-15)
    assert delta.param_term_delta == pytest.approx(0.625 / 11.5, rel=1e-12)
    assert delta.ops_term_delta == pytest.approx(-6 / 28.5, rel=1e-12)
    assert delta.delta == pytest.approx(0.625 / 11.5 - 6 / 28.5, rel=1e-12)
    assert delta.ratio == pytest.approx(delta.after.value / 2.0)
    with_accuracy = diff.score_delta(ms.RuleSet("t", 11.5, 28.5, threshold=0.5), accuracy_before=(3, 4),
                                     accuracy_after=(1, 4))
    assert (with_accuracy.before.passed, with_accuracy.after.passed) == (True, False)
    assert "tiny: score 2.000000 ->" in str(delta)


def test_table_shows_before_after_and_deltas(diff):
    text = diff.table()
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["layer", "type", "params", "nonzero"]
    row0 = next(line for line in lines if line.startswith("0 "))
    assert "Linear → FakeQuantLinear" in row0 and "15 → 9" in row0 and "0 → 12" in row0 and "16 → 4/32" in row0
    assert "7.5 → 4.1" in row0 and "-3.4" in row0 and "-10.5" in row0
    total = next(line for line in lines if line.startswith("total"))
    assert "11.5 → 12.1" in total and "+0.6" in total and "-6.0" in total
    assert lines[-1] == "16-bit freebie: on → off"
    assert str(diff) == text
    assert "|" in diff.table(tablefmt="github")


def test_rows_added_and_removed_keep_their_place():
    before = ms.count(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Tanh()), (1, 3, 8, 8))
    after = ms.count(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Identity(), nn.Conv2d(4, 4, 3), nn.Tanh(),
                                   nn.Sigmoid()), (1, 3, 8, 8))
    diff = compare(before, after)
    assert [r.name for r in diff.layers] == ["0", "1", "2", "3", "4"]
    relu, sigmoid = diff.layer("1"), diff.layer("4")
    # the ReLU (4 x 6 x 6 = 144 mults) has no row afterwards: it counts as zeros
    assert relu.status == "removed" and (relu.mults.before, relu.mults.after) == (144, 0)
    assert relu.type_after is None and relu.mult_bits == BitsChange((16,), ())
    # the sigmoid on 4 x 4 x 4 = 64 values: 2 mults + 1 add each
    assert sigmoid.status == "added" and (sigmoid.mults.after, sigmoid.adds.after) == (128, 64)
    assert diff.layer("0").status == "unchanged"
    assert [r.name for r in diff.changed()] == ["1", "4"]
    assert diff.total.mults.delta == 128 - 144
    text = diff.table(changed_only=True)
    assert "ReLU → (none)" in text and "(none) → Sigmoid" in text and "\n0 " not in text
    with pytest.raises(KeyError, match="no layer 'nope'.*rows: 0, 1"):
        diff.layer("nope")


def test_depth_merges_rows_like_the_report_table():
    def build(width):
        return nn.Sequential(nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU()), nn.Conv2d(width, 2, 3))

    diff = compare(ms.count(build(4), (1, 3, 8, 8)), ms.count(build(2), (1, 3, 8, 8)))
    lines = diff.table(depth=1).splitlines()
    merged = next(line for line in lines if line.startswith("0 "))
    # block 0: conv 3 -> 4 (108 + 4 values) becomes 3 -> 2 (54 + 2); its ReLU is merged in: the type reads "…"
    assert "…" in merged and "112 → 56" in merged
    assert len([line for line in lines if line.startswith(("0 ", "1 ", "total"))]) == 3


def test_unknown_nonzeros_and_json(diff):
    with torch.device("meta"):
        meta = ms.count(nn.Sequential(nn.Linear(4, 3)), torch.empty(1, 4))
    real = ms.count(nn.Sequential(nn.Linear(4, 3)), (1, 4))
    unknown = compare(meta, real)
    assert unknown.total.nonzero_params == Change(None, 15)
    assert unknown.total.nonzero_params.delta is None and unknown.total.nonzero_params.ratio is None
    assert "? → 15" in unknown.table()
    data = json.loads(json.dumps(diff.to_dict()))
    assert data["total"]["param_storage"] == {"before": 11.5, "after": 12.125, "delta": 0.625}
    assert data["freebie"] == [True, False]
    assert data["layers"][0]["param_bits"] == {"before": [16], "after": [4, 32]}
    assert data["params_by_bits"][1] == {"4": 12, "32": 11}


def test_change_arithmetic_and_errors():
    assert Change(4, 1).delta == -3 and Change(4, 1).ratio == 0.25 and Change(0, 3).ratio is None
    assert Change(1, 2) + Change(3, None) == Change(4, None)
    with pytest.raises(ms.InputError, match="compare\\(\\) needs two Reports"):
        compare(ms.count(nn.Linear(2, 2), (1, 2)), nn.Linear(2, 2))


def test_docstring_examples_run():
    # ms.compare (the function) shadows the submodule attribute: fetch the module itself
    result = doctest.testmod(importlib.import_module("micronet_score.compare"), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
