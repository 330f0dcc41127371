"""End to end on real data: the pipeline of ``examples/digits_compress.py`` (scikit-learn's bundled 8x8
digits; train a small CNN, prune 50% globally, fake-quantize to 8 bits with calibration, fine-tune), with the
report's numbers at every step checked against what the rules predict, worked out here from the layer shapes
and from the masks and quantized weights read off the model.

The CNN (8x8 input): conv 1 (1 -> 8, 3x3, padding 1: 8x8 outputs per filter), ReLU, max pool 2x2, conv 2
(8 -> 16, 3x3, padding 1: 4x4 outputs per filter), ReLU, flatten, linear 256 -> 10. Weights: 72, 1,152 and
2,560 (3,784 in all); biases 8 + 16 + 10 = 34.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch

import micronet_score as ms
from micronet_score.compare import compare
from micronet_score.compress import finalize_

pytest.importorskip("sklearn")

LAYERS = ("0", "3", "6")
NUMEL = {"0": 72, "3": 1152, "6": 2560}
POSITIONS = {"0": 64, "3": 16, "6": 1}  # output positions per filter: 8x8, 4x4, one row
ELEMENTWISE = 512 + 384 + 256  # ReLU 1: 8x8x8 mults; max pool: 128 outputs x 3 comparisons; ReLU 2: 16x4x4
BIASES = 34


@pytest.fixture(scope="module")
def example(digits_example):
    return digits_example


@pytest.fixture(scope="module")
def steps(example):
    run = example.run(epochs=15, finetune_epochs=3, seed=0)
    return dict(zip(("float", "pruned", "quantized", "fine-tuned"), run, strict=True))


def pruned_nonzeros(model) -> dict[str, int]:
    """Non-zeros each layer keeps: read from its pruning mask."""
    return {name: int(model.get_submodule(name).weight_mask.sum()) for name in LAYERS}


def quantized_nonzeros(model) -> dict[str, int]:
    """Non-zeros of the weights the layers multiply with: mask applied, then the layer's 8-bit fake quantizer
    (rounding can zero a small weight)."""
    found = {}
    with torch.no_grad():
        for name in LAYERS:
            layer = model.get_submodule(name)
            weight = layer.weight_fake_quant(layer.weight_orig * layer.weight_mask)
            found[name] = int(torch.count_nonzero(weight))
    return found


def bitmask_is_cheaper(nnz: int, numel: int, bits: int) -> bool:
    return nnz * bits + numel < numel * bits


def test_float_model_is_the_baseline(steps, example):
    r = steps["float"].report
    # see the example's RULES comment: 3,818 values, 26,752 mults, 25,600 adds; at 16 bits 1,909 and 38,976
    assert (r.params, r.nonzero_params, r.mask_bits) == (3818, 3818, 0)
    assert (r.mults, r.adds) == (26752, 25600)
    assert r.freebie and r.params_by_bits == {16: 3818} and r.mults_by_bits == {16: 26752}
    assert (r.param_storage, r.math_ops) == (1909.0, 38976.0)
    assert steps["float"].score.value == 2.0
    assert steps["float"].accuracy >= example.RULES.threshold and steps["float"].score.passed


def test_global_pruning_halves_the_weights_and_each_convs_mults(steps):
    step = steps["pruned"]
    r = step.report
    nnz = pruned_nonzeros(step.model)
    assert sum(nnz.values()) == 3784 // 2  # exactly half of all weights, split across layers by magnitude
    assert r.nonzero_params == 1892 + BIASES
    for name in LAYERS:
        row = r.layer(name)
        assert row.nonzero_params == nnz[name] + row.params - NUMEL[name]
        # each non-zero weight is used once per output position; a filter with z > 0 non-zeros also adds
        # z - 1 + 1 (bias) per position, and an empty filter costs nothing: adds = non-zeros x positions too
        assert (row.mults, row.adds) == (nnz[name] * POSITIONS[name], nnz[name] * POSITIONS[name])
        # at 16 bits (float model: freebie on) half the values + one mask bit per weight beat dense
        assert bitmask_is_cheaper(nnz[name], NUMEL[name], 16) and row.mask_bits == NUMEL[name]
    conv_mults = sum(nnz[n] * POSITIONS[n] for n in LAYERS)
    assert (r.mults, r.adds) == (conv_mults + ELEMENTWISE, conv_mults)
    assert r.mask_bits == 3784
    assert r.freebie
    # storage: 1,892 values x 16 + 3,784 mask bits + 34 biases x 16 = 30,272 + 3,784 + 544 bits = 1,081.25
    assert r.param_storage == (1892 * 16 + 3784 + BIASES * 16) / 32 == 1081.25
    assert r.math_ops == (conv_mults + ELEMENTWISE) * 16 / 32 + conv_mults
    assert step.score.value == pytest.approx(1081.25 / 1909 + r.math_ops / 38976, rel=1e-12)


@pytest.mark.parametrize("name", ["quantized", "fine-tuned"])
def test_8_bit_quantization_prices_weights_at_8_bits_and_biases_at_32(steps, name):
    step = steps[name]
    r = step.report
    nnz = quantized_nonzeros(step.model)
    assert sum(nnz.values()) <= 1892  # the masks hold; rounding may only add zeros
    assert not r.freebie  # 8-bit values: no freebie, float values and ops count at 32 bits
    assert r.params_by_bits == {8: 3784, 32: BIASES}
    storage_bits = 0
    for layer in LAYERS:
        row = r.layer(layer)
        assert row.param_bits == (8, 32) and row.mult_bits == (8,)  # 8-bit input x 8-bit weight
        assert row.mults == row.adds == nnz[layer] * POSITIONS[layer]
        # nnz x 8 + one bit per weight when that beats 8 bits per weight (at 50% sparsity it does: 4n + n < 8n)
        assert bitmask_is_cheaper(nnz[layer], NUMEL[layer], 8)
        assert row.mask_bits == NUMEL[layer]
        storage_bits += nnz[layer] * 8 + NUMEL[layer]
    conv_mults = sum(nnz[n] * POSITIONS[n] for n in LAYERS)
    assert r.mults_by_bits == {8: conv_mults, 32: ELEMENTWISE}  # ReLU and pooling read float conv outputs
    assert r.param_storage == (storage_bits + BIASES * 32) / 32
    assert r.math_ops == conv_mults * 8 / 32 + ELEMENTWISE + conv_mults
    assert step.score.value == pytest.approx(r.param_storage / 1909 + r.math_ops / 38976, rel=1e-12)


def test_each_step_lowers_the_score_and_accuracy_holds(steps, example):
    order = [steps[k] for k in ("float", "pruned", "quantized", "fine-tuned")]
    values = [s.score.value for s in order]
    assert values == sorted(values, reverse=True) and values[1] < values[0] and values[2] < values[1]
    assert order[-1].accuracy >= order[0].accuracy - 0.03
    assert all(s.score.passed == (s.accuracy >= example.RULES.threshold) for s in order)
    table = example.table(order)
    assert "float" in table and "2.0000" in table


def test_compare_float_to_final_shows_the_deltas(steps, example):
    before, after = steps["float"].report, steps["fine-tuned"].report
    diff = compare(before, after)
    nnz = quantized_nonzeros(steps["fine-tuned"].model)
    assert diff.total.nonzero_params.delta == sum(nnz.values()) + BIASES - 3818
    assert diff.total.mask_bits.delta == 3784
    assert diff.freebie == (True, False)
    for name in LAYERS:
        row = diff.layer(name)
        assert row.type_after.startswith("FakeQuant")
        assert row.mults.delta == (nnz[name] - NUMEL[name]) * POSITIONS[name]
        assert row.param_bits.before == (16,) and row.param_bits.after == (8, 32)
    # the ReLUs and the pool lose the freebie: their ops double (16 -> 32 bits) while their counts stay
    assert diff.layer("1").math_ops.after == 2 * diff.layer("1").math_ops.before == 512
    delta = diff.score_delta(example.RULES)
    assert delta.before.value == 2.0
    assert delta.delta == steps["fine-tuned"].score.value - 2.0 < 0


def test_finalized_model_counts_the_same(steps):
    model = copy.deepcopy(steps["fine-tuned"].model)
    report = steps["fine-tuned"].report
    baked = ms.count(finalize_(model), (1, 1, 8, 8))
    assert (baked.nonzero_params, baked.mask_bits, baked.param_storage, baked.math_ops) == \
        (report.nonzero_params, report.mask_bits, report.param_storage, report.math_ops)



def _page_rows() -> list[list[str]]:
    """The digits table of docs/compress.md, one list of cells per step."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "compress.md").read_text(encoding="utf-8")
    lines = page.split("## End to end: scikit-learn digits", 1)[1].splitlines()
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines
            if line.startswith("| ") and not line.startswith("| step")]


def test_the_compress_page_shows_this_run(steps, example):
    # The page's table is one run. Training's floating-point bits differ between CPUs, so the trained figures
    # are compared by form (accuracy) or within 2% (what rounding zeros and the per-layer split of the pruning
    # move), and what training cannot move exactly: the names, widths, mask bits, the float model's counts and
    # the pruned step's non-zeros (50% of 3,784 weights + 34 biases = 1,926).
    printed = example.table(list(steps.values())).splitlines()[2:]  # below the header and its rule
    fresh = [re.split(r"\s{2,}", line.strip()) for line in printed]
    page = _page_rows()
    assert [r[0] for r in page] == [r[0] for r in fresh] == [
        "float", "pruned 50% (global)", "+ 8-bit fake quant", "+ fine-tuned 3 epochs"]
    later = {"pruned 50% (global)", "+ 8-bit fake quant", "+ fine-tuned 3 epochs"}
    trained = {2: later - {"pruned 50% (global)"},  # non-zeros: 8-bit rounding may zero small weights
               7: later, 8: later, 9: later}         # param storage, math ops, score
    for old, new in zip(page, fresh):
        assert re.fullmatch(r"\d+\.\d\d% \(\d+/450\)", old[1]) and re.fullmatch(r"\d+\.\d\d% \(\d+/450\)", new[1])
        for col in range(2, 10):
            if old[0] in trained.get(col, ()):
                a, b = float(old[col].replace(",", "")), float(new[col].replace(",", ""))
                assert abs(a - b) <= 0.02 * max(a, b), (old[0], col, old[col], new[col])
            else:
                assert old[col] == new[col], (old[0], col, old[col], new[col])
