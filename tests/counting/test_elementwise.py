"""Elementwise arithmetic and free operators."""

import torch
import torch.nn.functional as F
from torch import nn

import micronet_score as ms


def test_residual_add_and_mul(fn_module):
    # 1 add per element of the output (2*3*4 = 24), 1 mult per element for mul, alpha=2 adds a mult.
    assert ms.count(fn_module(lambda x: x + x), (1, 2, 3, 4)).adds == 24
    assert ms.count(fn_module(lambda x: x * x), (1, 2, 3, 4)).mults == 24
    r = ms.count(fn_module(lambda x: torch.add(x, x, alpha=2)), (1, 2, 3, 4))
    assert (r.mults, r.adds) == (24, 24)


def test_broadcast_add_counts_output_elements(fn_module):
    # (1, 4, 5) + bias (5,): 20 adds; the bias is a stored parameter of 5 values.
    r = ms.count(fn_module(lambda x, b: x + b, b=torch.ones(5)), (1, 4, 5))
    assert r.adds == 20 and r.params == 5


def test_views_reshapes_cat_pad_are_free(fn_module):
    def f(x):
        y = x.view(1, -1).reshape(1, 2, -1).permute(0, 2, 1).contiguous()
        z = torch.cat([y, y], 1)
        return torch.nn.functional.pad(z, (1, 1))[:, :3].flatten()

    r = ms.count(fn_module(f), (1, 2, 3, 4))
    assert (r.mults, r.adds) == (0, 0)
    assert r.unsupported == {}


def test_dropout_eval_and_identity_free():
    r = ms.count(nn.Sequential(nn.Dropout(0.5), nn.Identity(), nn.Flatten()), (1, 3, 4))
    assert (r.mults, r.adds, r.unsupported) == (0, 0, {})


def test_embedding_lookup_free_table_stored():
    emb = nn.Embedding(100, 8)
    r = ms.count(emb, torch.tensor([[1, 2, 3]]))
    assert (r.mults, r.adds) == (0, 0)
    assert r.params == 800


def test_weight_only_ops_are_preprocessing(fn_module):
    # The weight is standardised (mean/std over weights) before use: those ops depend only on weights,
    # so only the conv counts: 1*1*2 = 2 mults, 1 add per output, 2x3x3 = 18 outputs.
    def f(x, w):
        w = (w - w.mean()) / (w.std() + 1e-5)
        return torch.nn.functional.conv2d(x, w)

    r = ms.count(fn_module(f, w=torch.randn(2, 2, 1, 1)), (1, 2, 3, 3))
    assert (r.mults, r.adds) == (36, 18)
    assert r.params == 4


def test_logical_operators_and_all_any_by_the_spec(fn_module):
    """Issue 22: ``torch.all(mask == 1)`` (Hugging Face encoders given an attention mask) made strict=True refuse
    the model. Spec section 3: logical and/or/xor 1 add per combined pair, all/any over n values n - 1 adds,
    logical not free; comparisons count as mults."""
    def f(x, mask):
        a = x > 0                          # 2*3*4 = 24 comparisons (mults)
        b = torch.logical_and(a, mask)     # 24 adds
        c = torch.logical_not(b)           # free
        return torch.all(c, dim=-1), torch.any(c)  # 2*3 rows x (4 - 1) = 18 adds; 24 - 1 = 23 adds
    r = ms.count(fn_module(f), (torch.randn(1, 2, 3, 4), torch.ones(1, 2, 3, 4, dtype=torch.bool)), strict=True)
    assert (r.mults, r.adds) == (24, 24 + 18 + 23)


def test_adaptive_pooling_of_a_permuted_input_is_counted_in_strict_mode(fn_module):
    """Issue 22: adaptive average pooling to 1x1 of a permuted (channels-last) input runs ``aten.as_strided_``,
    a view that moves no value; strict=True refused 7 timm models and HF Swin over it."""
    # 4 channels, each the mean of 7*7 = 49 values: 4 mults, 4 * 48 = 192 adds
    pool = fn_module(lambda x: F.adaptive_avg_pool2d(x.permute(0, 3, 1, 2), 1))
    for shapes_only in (True, False):
        r = ms.count(pool, (1, 7, 7, 4), strict=True, shapes_only=shapes_only)
        assert (r.mults, r.adds) == (4, 192)
