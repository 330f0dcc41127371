"""Counting a model that lives on CUDA (skipped where there is no GPU)."""

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import micronet_score as ms

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_cuda_model_counts_like_cpu():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    cpu = ms.count(model, (2, 3, 32, 32))
    model.cuda()
    rng = torch.cuda.get_rng_state()
    gpu = ms.count(model, (2, 3, 32, 32))
    assert torch.equal(torch.cuda.get_rng_state(), rng)
    assert (gpu.mults, gpu.adds, gpu.nonzero_params, gpu.param_storage) == \
        (cpu.mults, cpu.adds, cpu.nonzero_params, cpu.param_storage)
    with pytest.raises(ms.InputError, match="cuda"):
        ms.count(model, torch.randn(2, 3, 32, 32))
