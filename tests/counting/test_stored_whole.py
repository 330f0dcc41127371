"""Stored tensors are stored whole, once; computations on weights alone are load-time work whose sources are
stored (spec section 3, "Which tensors are parameters" and "Computations on weights alone are load-time work").

Every figure below is hand arithmetic. Float values are 16 bits under the freebie (a value costs 1/2), an int64
index buffer 64 bits (a mask or index is stored at its own width: 2 each).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import micronet_score as ms
from micronet_score.report import Report


class GPT2Like(nn.Module):
    """Token table (50, 64), position table (1024, 64) read with torch.arange(seq) (built from shapes), head."""

    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(50, 64)
        self.wpe = nn.Embedding(1024, 64)
        self.head = nn.Linear(64, 50, bias=False)

    def forward(self, ids):
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.head(self.wte(ids) + self.wpe(positions))


@pytest.mark.parametrize("tokens", [1, 16, 64])
@pytest.mark.parametrize("batch", [1, 3])
def test_a_position_table_read_with_constant_ids_is_stored_whole(tokens, batch):
    report = ms.count(GPT2Like(), torch.zeros(batch, tokens, dtype=torch.long))
    # 50*64 + 1024*64 + 64*50 = 3,200 + 65,536 + 3,200 = 71,936 at any length and batch (was 64 per token read)
    assert report.params == 71_936
    rows = {t.name: t for t in report.tensors}
    assert (rows["wpe.weight"].shape, rows["wpe.weight"].params, rows["wpe.weight"].role) == ((1024, 64), 65_536,
                                                                                           "weight")
    assert any(line.startswith("wpe.weight: aten.embedding") for line in report.load_time)
    # operations unchanged: the add of the positions (64 per token) and the head (64 mults, 63 adds per logit)
    assert report.mults == 64 * 50 * tokens
    assert report.adds == (64 + 63 * 50) * tokens


class BertLike(nn.Module):
    """BERT's embeddings: word, token-type and position tables; position and token-type ids read from
    registered integer buffers, the token types expanded to the batch."""

    def __init__(self, persistent: bool):
        super().__init__()
        self.word = nn.Embedding(30, 16)
        self.token_type = nn.Embedding(2, 16)
        self.position = nn.Embedding(40, 16)
        self.register_buffer("position_ids", torch.arange(40).expand(1, -1), persistent=persistent)
        self.register_buffer("token_type_ids", torch.zeros(1, 40, dtype=torch.long), persistent=persistent)

    def forward(self, ids):
        batch, seq = ids.shape
        types = self.token_type_ids[:, :seq].expand(batch, seq)
        return self.word(ids) + self.token_type(types) + self.position(self.position_ids[:, :seq])


@pytest.mark.parametrize("persistent", [False, True])
def test_bert_embeddings_count_the_same_at_every_batch_and_length(persistent):
    counts = {(b, s): ms.count(BertLike(persistent), torch.zeros(b, s, dtype=torch.long))
              for b in (1, 3) for s in (5, 12)}
    # tables: 30*16 + 2*16 + 40*16 = 480 + 32 + 640 = 1,152 values at 16 bits = 576
    # persistent id buffers: 2 x 40 int64 values, 64 bits each = 80 values, 160
    params, storage = (1_232, 736.0) if persistent else (1_152, 576.0)
    for report in counts.values():
        assert (report.params, report.param_storage) == (params, storage)
    names = {t.name for t in counts[1, 5].tensors}
    assert names == {"word.weight", "token_type.weight", "position.weight"} | (
        {"position_ids", "token_type_ids"} if persistent else set())


class RelativeBias(nn.Module):
    """Swin's relative-position bias: a ((2*7-1)**2, 3) table gathered with a constant index into (3, 49, 49)."""

    def __init__(self, persistent: bool, window: int = 7, heads: int = 3):
        super().__init__()
        self.table = nn.Parameter(torch.randn((2 * window - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * window - 1) + rel[..., 1],
                             persistent=persistent)
        self.n, self.heads = window * window, heads

    def bias(self):
        gathered = self.table[self.relative_position_index.view(-1)]
        return gathered.view(self.n, self.n, self.heads).permute(2, 0, 1).unsqueeze(0)

    def forward(self, attn):
        return (attn + self.bias()).softmax(-1)


@pytest.mark.parametrize("persistent", [False, True])
def test_a_relative_position_table_is_stored_as_its_507_values(persistent):
    report = ms.count(RelativeBias(persistent), torch.zeros(2, 3, 49, 49))
    rows = {t.name: t for t in report.tensors}
    # the table: 13*13 rows x 3 heads = 507 values (not the 49*49*3 = 7,203 it is gathered into), 16 bits
    assert (rows["table"].shape, rows["table"].params, rows["table"].param_storage) == ((169, 3), 507, 253.5)
    if persistent:  # a stored int64 index: 49*49 = 2,401 values at 64 bits = 4,802
        index = rows["relative_position_index"]
        assert (index.params, index.bits, index.role, index.param_storage) == (2_401, 64, "mask/index", 4_802)
        assert (report.params, report.param_storage) == (2_908, 253.5 + 4_802)
    else:  # non-persistent: derivable at load time, free
        assert (report.params, report.param_storage) == (507, 253.5)
    # the gather is free; the add costs 1 per element of (3, 49, 49) = 7,203 per example
    assert report.by_operator["aten.add"].adds == 7_203


class BiasMLP(RelativeBias):
    """Swin-v2's continuous bias: an MLP (2 -> 16 -> 3) run on a fixed coordinate buffer, then gathered."""

    def __init__(self):
        super().__init__(persistent=False)
        del self.table
        self.mlp = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
        grid = torch.stack(torch.meshgrid(torch.arange(-6, 7.0), torch.arange(-6, 7.0), indexing="ij"), -1)
        self.register_buffer("coords_table", grid.reshape(-1, 2) / 6, persistent=False)

    def bias(self):
        gathered = self.mlp(self.coords_table)[self.relative_position_index.view(-1)]
        return gathered.view(self.n, self.n, self.heads).permute(2, 0, 1).unsqueeze(0)


def test_a_constant_sub_network_stores_its_weights_not_its_output():
    report = ms.count(BiasMLP(), torch.zeros(1, 3, 49, 49))
    # 2*16 + 16 + 16*3 + 3 = 99 values (its output, 169 x 3 = 507 gathered into 7,203, is not stored)
    assert report.params == 99
    assert {t.name for t in report.tensors} == {"mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias"}
    assert {t.name: t.role for t in report.tensors}["mlp.0.weight"] == "weight"
    # the MLP runs at load time: no operation but the add (7,203) and the softmax over 49 per row (147 rows:
    # 49 exp + 49 mults each, 48 adds)
    assert (report.mults, report.adds) == (147 * 98, 7_203 + 147 * 48)
    assert any("mlp.0.weight" in line and "aten.addmm" in line for line in report.load_time)


class ConvOfConstant(nn.Module):
    """EdgeNeXt's positional encoding: a 1x1 conv of a grid built from the input's shape (batch included)."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(4, 8, 1)

    def forward(self, x):
        b, _, h, w = x.shape
        grid = torch.linspace(0, 1, h * w).reshape(1, 1, h, w).expand(b, 4, h, w)
        return x + self.proj(grid)


@pytest.mark.parametrize("shape", [(1, 8, 5, 5), (3, 8, 6, 4)])
def test_a_convolution_of_a_constant_input_stores_its_weights(shape):
    report = ms.count(ConvOfConstant(), shape)
    # 4*8 + 8 = 40 values (not the conv's output, 8*h*w per example); the conv is load-time work: only the add
    assert report.params == 40
    assert (report.mults, report.adds) == (0, 8 * shape[2] * shape[3])


class TinyTransformerLM(nn.Module):
    """A transformer LM's embedding: token table (20, 16), position table (128, 16), output head."""

    def __init__(self):
        super().__init__()
        self.tokens = nn.Embedding(20, 16)
        self.positions = nn.Embedding(128, 16)
        self.head = nn.Linear(16, 20)

    def forward(self, ids):
        x = self.tokens(ids) + self.positions(torch.arange(ids.shape[1]))
        return self.head(torch.relu(x))


def test_the_per_token_rule_set_stores_the_whole_position_table():
    s = ms.score(TinyTransformerLM(), torch.zeros(1, 1, dtype=torch.long), rules="micronet-2019-wikitext103")
    # 20*16 + 128*16 + 16*20 + 20 = 320 + 2,048 + 320 + 20 = 2,708 values at 16 bits (was 1 row of 128: 788)
    assert s.param_storage == 2_708 / 2


class ReducedScale(nn.Module):
    """A weight scaled by a reduction of another table: an elementwise, shape-keeping result of the weight."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4, bias=False)
        self.table = nn.Parameter(torch.rand(100, 8) + 1)

    def forward(self, x):
        return nn.functional.linear(x, self.fc.weight * self.table.sum(0))


def test_elementwise_derivations_still_price_their_source_by_the_result():
    # weight norm: w = g * v / ||v||, priced as v (4*8 = 32) by the result; g and the norm cost nothing
    wn = nn.utils.parametrizations.weight_norm(nn.Linear(8, 4, bias=False))
    assert ms.count(wn, (1, 8)).params == 32
    # spectral norm: w / sigma, sigma computed from w and the u, v buffers: priced as w (32); u and v cost nothing
    sn = nn.utils.parametrizations.spectral_norm(nn.Linear(8, 4, bias=False)).eval()
    assert ms.count(sn, (1, 8)).params == 32
    # a weight scaled by a reduction of another table: the product (32 values) is what a deployed model stores
    assert ms.count(ReducedScale(), (1, 8)).params == 32
    # a pruning mask product: 32 values, 16 of them non-zero
    pruned = nn.Linear(8, 4, bias=False)
    prune.l1_unstructured(pruned, "weight", amount=16)
    report = ms.count(pruned, (1, 8))
    assert (report.params, report.nonzero_params, report.load_time) == (32, 16, ())


def test_load_time_work_survives_a_json_round_trip():
    report = ms.count(GPT2Like(), torch.zeros(1, 4, dtype=torch.long))
    assert report.load_time and Report.from_json(report.to_json()) == report
    assert Report.from_json(report.to_json()).load_time == report.load_time


class RandomProjection(nn.Module):
    """A fixed random projection kept as a non-persistent buffer and multiplied by the input."""

    def __init__(self):
        super().__init__()
        self.register_buffer("projection", torch.randn(4, 8), persistent=False)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x @ self.projection.t())


def test_a_non_persistent_buffer_multiplied_as_a_weight_is_free_and_said():
    report = ms.count(RandomProjection(), (1, 8))
    assert report.params == 4 * 2 + 2  # the projection (32 values) is not in the state_dict: free
    assert report.mults == 4 * 8 + 2 * 4  # its multiplies still count
    # listed with the load-time work, not a warning (every rotary model holds such tables)
    assert any(line.startswith("projection: a non-persistent buffer multiplied as a weight") for line in
               report.load_time) and report.warnings == ()


class ScaledStdConv(nn.Conv2d):
    """NFNet's ScaledStdConv2d: the weight standardized per filter with batch_norm, scaled by a gain."""

    def __init__(self):
        super().__init__(3, 4, 3, bias=False)
        self.gain = nn.Parameter(torch.ones(4, 1, 1, 1))

    def forward(self, x):
        weight = nn.functional.batch_norm(self.weight.reshape(1, 4, -1), None, None, weight=self.gain.view(-1),
                                          training=True, momentum=0.0, eps=1e-6).reshape_as(self.weight)
        return self._conv_forward(x, weight, None)


def test_a_standardized_weight_is_priced_as_the_weight():
    report = ms.count(ScaledStdConv(), (1, 3, 5, 5))
    # weight standardization is a parametrization: 4*3*3*3 = 108 values, priced by the result as a weight; the
    # gain, like weight norm's, costs nothing; the standardization itself is load-time work (only the conv:
    # 9 outputs x 4 filters x 27 mults)
    assert (report.params, report.mults) == (108, 27 * 36)
    assert [(t.name, t.role) for t in report.tensors] == [("gain+weight", "weight")]


def test_the_summary_names_the_load_time_constants():
    text = ms.count(GPT2Like(), torch.zeros(1, 4, dtype=torch.long)).summary()
    assert "load-time (free; its stored sources counted whole): wpe.weight: aten.embedding" in text
