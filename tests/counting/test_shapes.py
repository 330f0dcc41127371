"""The Python shape table gives the same counts as PyTorch's meta kernels, on every zoo model."""

import pytest
import torch

import micronet_score as ms
from micronet_score.counting import shapes


@pytest.mark.parametrize("name", sorted(ms.models.names()))
def test_shape_table_matches_meta_kernels(name, monkeypatch):
    with torch.device("meta"):
        model = ms.models.build(name)
    shape = ms.models.input_size(name)
    fast = ms.count(model, shape)
    monkeypatch.setattr(shapes, "ENABLED", False)
    slow = ms.count(model, shape)
    assert fast == slow


def test_shape_table_on_functional_ops(fn_module):
    def f(x):
        y = torch.nn.functional.max_pool2d(x, 3, 2, 1, ceil_mode=True)
        y = torch.cat([y, y[:, :2]], 1).permute(0, 2, 3, 1).reshape(x.shape[0], -1, 5)
        return torch.nn.functional.avg_pool2d(y.unsqueeze(1), 2).mean(-1, keepdim=True).t() if y.dim() == 2 \
            else (y.transpose(1, 2) @ y).softmax(-1)

    with torch.device("meta"):
        x = torch.empty(2, 3, 9, 9)
    model = fn_module(f)
    fast = ms.count(model, x)
    shapes.ENABLED = False
    try:
        slow = ms.count(model, x)
    finally:
        shapes.ENABLED = True
    assert fast == slow and fast.mults > 0
