"""What the scorer reads from a torchao-quantized model (skipped when torchao is not installed; it is not a
dependency of micronet-score). Tried with torchao 0.18.0.

torchao replaces a Linear's weight parameter by a tensor subclass (``Int8Tensor`` for
``Int8WeightOnlyConfig``) whose forward runs plain aten ops on its inner tensors: ``t`` of the int8 ``qdata``,
``_to_copy`` to float32, ``mm``, ``mul`` by the per-row scale, ``add_`` of the bias. The engine maps the inner
tensors of such a subclass to its parameter: the int8 ``qdata`` is the stored weight (8 bits, its own
non-zeros) and the scale and zero point are the format's metadata.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import micronet_score as ms

torchao_quantization = pytest.importorskip("torchao.quantization")


def int8_weight_only_linear() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8))
    with warnings.catch_warnings():  # torchao's own import-time and conversion notices
        warnings.simplefilter("ignore")
        torchao_quantization.quantize_(model, torchao_quantization.Int8WeightOnlyConfig())
    return model


def test_torchao_int8_weight_only_runs_and_counts_the_matmul():
    model = int8_weight_only_linear()
    assert type(model[0].weight).__name__ == "Int8Tensor"
    r = ms.count(model, (1, 16))
    # what is right today: the 8 x 16 product is counted, with its bias adds (15 + 1 per output) and one
    # multiply per output for the per-row scale; nothing is unsupported.
    assert r.unsupported == {}
    assert (r.mults, r.adds) == (128 + 8, 8 * 16)


def test_torchao_int8_weight_only_weight_is_stored_at_8_bits():
    model = int8_weight_only_linear()
    qdata = model[0].weight.qdata
    r = ms.count(model, (1, 16))
    assert "0.weight" not in r.unused
    # 128 int8 weights (their non-zeros read from qdata) and the float32 bias
    assert r.params_by_bits.get(8) == 128
    assert r.nonzero_params == int(torch.count_nonzero(qdata)) + 8
    assert not r.freebie  # an 8-bit weight switches the freebie off


def test_torchao_dynamic_int8_activation_and_weight():
    model = nn.Sequential(nn.Linear(16, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torchao_quantization.quantize_(model, torchao_quantization.Int8DynamicActivationInt8WeightConfig())
    qdata = model[0].weight.qdata
    r = ms.count(model, (1, 16))
    assert r.unsupported == {}
    # the int8 x int8 product (aten._int_mm) runs at 8 bits: one multiply per non-zero int8 weight (one row);
    # the activation's runtime quantization (min/max, scale, rounding) is counted too, at 32 bits.
    assert r.mults_by_bits.get(8, 0) >= int(torch.count_nonzero(qdata))
    int8_rows = [t for t in r.tensors if t.bits == 8]
    assert len(int8_rows) == 1 and int8_rows[0].shape == (8, 16)
    assert int8_rows[0].nonzero_params == int(torch.count_nonzero(qdata))
