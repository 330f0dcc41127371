"""Linear layers and matrix products: M*N*K mults, M*N*(K-1) adds (+ bias adds), by hand."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import micronet_score as ms


def test_linear():
    # Linear(10, 20): 10 mults, 9 + 1 (bias) adds per output; 20 outputs.
    r = ms.count(nn.Linear(10, 20), (1, 10))
    assert (r.mults, r.adds, r.params) == (200, 200, 220)


def test_linear_on_sequence_counts_every_row():
    # (2, 7, 16) @ Linear(16, 4): 7 rows per example, 16 mults and 15 + 1 adds per output, 4 outputs per row.
    r = ms.count(nn.Linear(16, 4), (2, 7, 16))
    assert r.mults == 7 * 4 * 16 == 448
    assert r.adds == 7 * 4 * 16 == 448


def test_mm_matches_torch_flop_counter_case(fn_module):
    # torch's test_flop_counter: (4, 5) @ (5, 6) is 120 MACs; adds 4*6*(5-1) = 96.
    r = ms.count(fn_module(lambda a, b: torch.mm(a, b)), (torch.randn(4, 5), torch.randn(5, 6)))
    assert r.mults * r.batch_size == 120
    assert r.adds * r.batch_size == 96


def test_bmm_and_einsum(fn_module):
    # bmm (3, 4, 5) @ (3, 5, 2): 3*4*2 outputs, 5 mults and 4 adds each; batch of 3 -> per example /3.
    r = ms.count(fn_module(torch.bmm), (torch.randn(3, 4, 5), torch.randn(3, 5, 2)))
    assert r.mults == 4 * 2 * 5 == 40 and r.adds == 4 * 2 * 4 == 32
    e = ms.count(fn_module(lambda a, b: torch.einsum("bij,bjk->bik", a, b)),
                 (torch.randn(3, 4, 5), torch.randn(3, 5, 2)))
    assert (e.mults, e.adds) == (40, 32)


def test_matmul_broadcast(fn_module):
    # (2, 3, 8) @ (8, 5): per example 3*5 outputs of 8 mults, 7 adds.
    r = ms.count(fn_module(torch.matmul), (torch.randn(2, 3, 8), torch.randn(8, 5)))
    assert (r.mults, r.adds) == (120, 105)


def test_baddbmm(fn_module):
    # baddbmm adds the bias: (2, 3, 4) @ (2, 4, 5) + (2, 3, 5): 3*5 outputs, 4 mults, 3 + 1 adds each.
    r = ms.count(fn_module(torch.baddbmm),
                 (torch.randn(2, 3, 5), torch.randn(2, 3, 4), torch.randn(2, 4, 5)))
    assert (r.mults, r.adds) == (60, 60)


def test_scaled_dot_product_attention(fn_module):
    # q, k, v (1, 2 heads, L=S=4, E=8): q and k scaled by sqrt(scale): 2*4*8 + 2*4*8 = 128 mults; scores
    # 2*4*4*8 = 256 mults, 2*4*4*7 = 224 adds; softmax over 4: per row 8 mults, 3 adds, 8 rows -> 64 mults,
    # 24 adds; P V: 2*4*8*4 = 256 mults, 2*4*8*3 = 192 adds. Total 704 mults, 440 adds.
    q = torch.randn(1, 2, 4, 8)
    r = ms.count(fn_module(F.scaled_dot_product_attention), (q, q.clone(), q.clone()))
    assert (r.mults, r.adds) == (704, 440)
    assert r.unsupported == {}
    # a causal mask adds -inf above the diagonal: 2*4*4 = 32 adds more
    causal = ms.count(fn_module(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
                      (q, q.clone(), q.clone()))
    assert (causal.mults, causal.adds) == (704, 472)
    # the same count on real tensors (fused CPU kernel) and on the meta device (PyTorch's decomposition)
    for shapes_only in (True, False):
        assert ms.count(fn_module(F.scaled_dot_product_attention), (q, q.clone(), q.clone()),
                        shapes_only=shapes_only) == r


def test_grouped_query_attention_is_priced_per_query_head(fn_module):
    """Issue 22: 4 query heads sharing 2 key/value heads (LLaMA, Qwen, Gemma...) failed with a ForwardError."""
    # q (1, 4 heads, L=3, E=8), k and v (1, 2 heads, S=3, 8), priced as if k and v were repeated to 4 heads:
    # scaling 4*(3+3)*8 = 192 mults; scores 4*3*3 = 36, 36*8 = 288 mults, 36*7 = 252 adds; softmax 2*36 = 72
    # mults, 4*3*2 = 24 adds; P V 4*3*8*3 = 288 mults, 4*3*8*2 = 192 adds. Total 840 mults, 468 adds.
    q, k = torch.randn(1, 4, 3, 8), torch.randn(1, 2, 3, 8)
    gqa = fn_module(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
    for shapes_only in (True, False):
        r = ms.count(gqa, (q, k, k.clone()), shapes_only=shapes_only)
        assert (r.mults, r.adds) == (840, 468) and r.unsupported == {}
    # the same as repeating K and V by hand (expand + reshape: free views and copies)
    def repeat_kv(q, k, v):
        k, v = (t[:, :, None].expand(1, 2, 2, 3, 8).reshape(1, 4, 3, 8) for t in (k, v))
        return F.scaled_dot_product_attention(q, k, v)
    r = ms.count(fn_module(repeat_kv), (q, k, k.clone()))
    assert (r.mults, r.adds) == (840, 468)


def test_multihead_attention_module():
    # nn.MultiheadAttention(16, 2) on (1, 5, 16) self-attention, batch_first:
    # in-projection 3 * 5 rows * 16 outs * 16 = 3,840 mults, adds 3*5*16*(15+1) = 3,840;
    # attention per head h=2, L=S=5, E=8: scores 2*5*5*8 = 400 mults, 2*25*7 = 350 adds; q and k scaled:
    # 2*5*8 + 2*5*8 = 160 mults;
    # softmax 2*5 rows: 10*(10 mults, 4 adds) = 100 mults, 40 adds; PV 2*5*8*5 = 400 mults, 2*5*8*4 = 320 adds;
    # out-projection 5*16*16 = 1,280 mults, 5*16*16 = 1,280 adds.
    m = nn.MultiheadAttention(16, 2, batch_first=True)
    x = torch.randn(1, 5, 16)
    inputs = {"query": x, "key": x, "value": x, "need_weights": False}  # runs SDPA
    r = ms.count(m, inputs)
    assert r.mults == 3_840 + 400 + 160 + 100 + 400 + 1_280
    assert r.adds == 3_840 + 350 + 40 + 320 + 1_280
    assert r.unsupported == {}
    assert ms.count(m, inputs, shapes_only=False) == ms.count(m, inputs, shapes_only=True) == r
    # With need_weights=True PyTorch takes the explicit path: it scales q (2*5*8 = 80 mults instead of the
    # 50 score scalings) and averages the weights over the 2 heads (25 outputs: 1 add + 1 mult each).
    r = ms.count(m, (x, x, x))
    assert r.mults == 3_840 + 80 + 400 + 100 + 400 + 1_280 + 25
    assert r.adds == 3_840 + 350 + 40 + 320 + 1_280 + 25


def test_shared_linear_counts_params_once_ops_twice(fn_module):
    lin = nn.Linear(8, 8)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x):
            return self.lin(self.lin(x))

    r = ms.count(Twice(), (1, 8))
    assert r.params == 72
    assert r.mults == 2 * 64
    assert r.layer("lin").calls == 2


class _Prototypes(nn.Module):
    """Distances from each input row to 5 stored prototypes of 8 features (a prototype network's head)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.prototypes = nn.Parameter(torch.randn(5, 8))

    def forward(self, x):
        return torch.cdist(x, self.prototypes, p=self.p)


@pytest.mark.parametrize(
    "p, mults, adds",
    [
        # 3 rows x 5 prototypes = 15 distances over 8 features; every one 8 subtractions and 7 additions
        (2.0, 15 * (8 + 1), 15 * (8 + 7)),  # 8 squares and a sqrt
        (1.0, 15 * 8, 15 * (8 + 7)),  # 8 absolute values
        (0.0, 15 * 8, 15 * (8 + 7)),  # 8 comparisons with zero
        (3.0, 15 * (8 + 8 + 1), 15 * (8 + 7)),  # 8 absolute values, 8 powers, a root
        (float("inf"), 15 * (8 + 7), 15 * 8),  # 8 absolute values, 7 comparisons, no sum
    ],
)
def test_cdist_by_norm(p, mults, adds):
    r = ms.count(_Prototypes(p), (1, 3, 8), strict=True)
    assert (r.mults, r.adds, r.params) == (mults, adds, 5 * 8)


def test_bilinear_is_two_products_in_torchs_order():
    # nn.Bilinear(3, 5, 4): per output k, x2-th column j: a dot over in1 = 3 of W[k, :, j] with x1 (3 mults,
    # 2 adds), 4 * 5 of them; then per k a dot over in2 = 5 with x2 (5 mults, 4 adds); bias 4 adds
    torch.manual_seed(0)
    m = nn.Bilinear(3, 5, 4)
    r = ms.count(m, [(2, 3), (2, 5)], strict=True)
    assert (r.mults, r.adds, r.params) == (4 * 5 * 3 + 4 * 5, 4 * 5 * 2 + 4 * 4 + 4, 4 * 3 * 5 + 4)
    assert {t.name: t.role for t in r.tensors} == {"weight": "weight", "bias": "vector"}
    # rows of an input beyond the batch are priced per row: 7 rows per example
    r = ms.count(nn.Bilinear(3, 5, 4, bias=False), [(2, 7, 3), (2, 7, 5)], strict=True)
    assert (r.mults, r.adds) == (7 * 80, 7 * 56)


def test_bilinear_skips_the_zeros_of_its_weight():
    torch.manual_seed(0)
    m = nn.Bilinear(3, 5, 4)
    with torch.no_grad():
        m.weight[0] = 0  # output 0: 15 zeros, its 5 dots over in1 are empty
        m.weight[1, 0] = 0  # output 1: every dot over in1 has 2 non-zeros
    r = ms.count(m, [(2, 3), (2, 5)], strict=True)
    # first products: 60 - 15 - 5 = 40 mults; adds 5 * 1 (output 1) + 10 * 2 (outputs 2, 3) = 25
    # second products stay dense: 4 * 5 mults, 4 * 4 adds; bias 4 adds
    assert (r.mults, r.adds, r.nonzero_params) == (40 + 20, 25 + 16 + 4, 40 + 4)


def test_trilinear_in_another_layout(fn_module):
    # sum_i x_i * y_i * z_i per example of 3 values: 3 + 3 mults, 2 adds (torch unrolls over the batch)
    r = ms.count(fn_module(lambda x: torch._trilinear(x, x.flip(-1), x * 1.0, [], [], [], [1], 0)), (2, 3),
                 strict=True)
    assert (r.mults, r.adds) == (6 + 3, 2)  # x * 1.0 is 3 mults more
