"""The Python shape table gives the same counts as PyTorch's meta kernels, on every zoo model."""

import pytest
import torch

import micronet_score as ms
from micronet_score.counting import shapes


@pytest.mark.parametrize("name", sorted(ms.models.names()))
def test_shape_table_matches_meta_kernels(name, monkeypatch):
    with torch.device("meta"):
        model = ms.models.build(name)
        inputs = ms.models.example_inputs(name, model)
    fast = ms.count(model, inputs)
    monkeypatch.setattr(shapes, "ENABLED", False)
    slow = ms.count(model, inputs)
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


@pytest.mark.parametrize("shape", [(1, 1, 32, 32), (1, 3, 2, 2), (1, 3, 16, 16)])
def test_shape_table_refuses_what_the_kernels_refuse(shape):
    # wrong channels, too small for the kernel, wrong size for the Linear: never a count of a forward that
    # cannot run, on meta as on real tensors
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(), torch.nn.Linear(8 * 30 * 30, 10))
    for shapes_only in (None, True, False):
        with pytest.raises(ms.ForwardError):
            ms.count(model, shape, shapes_only=shapes_only)
    with torch.device("meta"):
        meta = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(), torch.nn.Linear(8 * 30 * 30, 10))
    with pytest.raises(ms.ForwardError):
        ms.count(meta, shape)
