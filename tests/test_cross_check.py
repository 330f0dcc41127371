"""``ms.cross_check``: micronet-score, fvcore and FlopCounterMode side by side on a small conv net whose counts
are worked out by hand below, every difference explained."""

import sys

import pytest
import torch
from torch import nn

import micronet_score as ms
from micronet_score.cli import main

pytest.importorskip("fvcore")


class SmallNet(nn.Module):
    """Conv2d(3, 8, 3, no bias) on 10x10 -> 8x8x8; BatchNorm2d(8); ReLU; global average pool; Linear(8, 10)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.act(self.bn(self.conv(x)))), 1))


CONV = 3 * 3 * 3 * 8 * 8 * 8  # 27 mults per output x 512 outputs = 13,824
FC = 8 * 10  # 80


def _rows(check):
    return {r.module: r for r in check.rows}


def test_three_counts_side_by_side_by_hand():
    check = ms.cross_check(SmallNet(), (1, 3, 10, 10))
    rows = _rows(check)
    assert (rows["conv"].micronet, rows["conv"].fvcore, rows["conv"].flop_counter) == (CONV, CONV, CONV)
    assert rows["conv"].why == "agree"
    assert (rows["fc"].micronet, rows["fc"].fvcore, rows["fc"].flop_counter) == (FC, FC, FC)
    # batch norm: folded into the conv by micronet-score (0); fvcore 2 per element (normalise + affine) on
    # 8*8*8 = 512 elements = 1,024; FlopCounterMode does not count norms
    assert (rows["bn"].micronet, rows["bn"].fvcore, rows["bn"].flop_counter) == (0, 1_024, 0)
    assert "folded" in rows["bn"].why
    # ReLU: 1 mult per element (spec) = 512; fvcore ignores relu; FlopCounterMode counts only conv/matmul
    assert (rows["act"].micronet, rows["act"].fvcore, rows["act"].flop_counter) == (512, 0, 0)
    assert "fvcore ignores" in rows["act"].why and "FlopCounterMode counts only" in rows["act"].why
    # global average pool over 8x8, 8 channels: 8 mults (spec: C mults); fvcore 1 per input element = 512
    assert (rows["pool"].micronet, rows["pool"].fvcore, rows["pool"].flop_counter) == (8, 512, 0)
    assert "pool" in rows["pool"].why
    assert check.micronet == CONV + 512 + 8 + FC  # 14,424
    assert check.fvcore == CONV + 1_024 + 512 + FC  # 15,440
    assert check.flop_counter == CONV + FC  # 13,904
    assert all(r.why for r in check.rows)


def test_zero_filters_are_explained():
    model = SmallNet()
    with torch.no_grad():
        model.conv.weight[:2] = 0  # 2 of 8 filters: 2 * 27 = 54 zero weights
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    rng = torch.get_rng_state()
    check = ms.cross_check(model, (2, 3, 10, 10))
    assert torch.equal(torch.get_rng_state(), rng)
    conv = _rows(check)["conv"]
    assert conv.micronet == 3 * 3 * 3 * 6 * 8 * 8  # 6 live filters: 10,368 per example
    assert conv.fvcore == conv.flop_counter == CONV  # both count dense, per example (batch 2 divided)
    assert "54 zero weight" in conv.why
    assert model.training and model.bn.training  # the model is left as it was
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_table_renders_every_row_and_the_totals():
    text = ms.cross_check(SmallNet(), (1, 3, 10, 10)).table()
    for word in ("micronet-score", "fvcore", "FlopCounterMode", "why", "total", "14,424", "15,440", "13,904"):
        assert word in text


def test_without_fvcore_its_column_is_empty_and_a_note_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "fvcore.nn", None)
    check = ms.cross_check(SmallNet(), (1, 3, 10, 10))
    assert check.fvcore is None and all(r.fvcore is None for r in check.rows)
    assert any("fvcore is not installed" in n for n in check.notes)
    assert _rows(check)["conv"].flop_counter == CONV


def test_cli_cross_check(tmp_path, capsys, monkeypatch):
    (tmp_path / "smallnet.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "def build():\n    return nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.ReLU())\n")
    monkeypatch.chdir(tmp_path)
    assert main(["count", "smallnet.py:build", "--input", "1,3,10,10", "--cross-check"]) == 0
    out = capsys.readouterr().out
    assert "FlopCounterMode" in out and "13,824" in out


def test_cross_check_refuses_a_non_module():
    with pytest.raises(ms.MicronetError, match="nn.Module"):
        ms.cross_check(lambda x: x, (1, 3))


class IteratedBlocks(nn.Module):
    """Two Linear(8, 8) in a ModuleList iterated (not called) in the forward, as Swin-v2's stages are."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(8, 8) for _ in range(2)])

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


def test_an_iterated_module_list_is_not_counted_twice():
    """Issue 22: FlopCounterMode's column double-counted whenever a ModuleList was iterated instead of called
    (its children were subtracted from a parent that FlopCounterMode never entered), with a false
    "FlopCounterMode N vs micronet-score 0" row for the root."""
    check = ms.cross_check(IteratedBlocks(), (1, 8))
    # 2 layers x 8 x 8 = 128 MACs in every tool; FlopCounterMode itself says 2 x 128 = 256 FLOPs
    assert (check.micronet, check.fvcore, check.flop_counter) == (128, 128, 128)
    assert {r.module for r in check.rows} == {"blocks.0", "blocks.1"}
    assert all(r.why == "agree" for r in check.rows)


class ConstantNorm(nn.Module):
    """A layer norm of a stored table (weights alone: load-time work) added to the input."""

    def __init__(self):
        super().__init__()
        self.table = nn.Parameter(torch.randn(4, 16))
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        return self.fc(x + nn.functional.layer_norm(self.table, (16,)))


def test_an_operator_on_weights_alone_is_explained_as_load_time_work():
    """Issue 22: operators skipped as constant were explained as "micronet-score prices it with additions only"."""
    why = _rows(ms.cross_check(ConstantNorm(), (1, 4, 16)))[""].why
    assert "additions only" not in why
    assert "weights alone" in why


def test_bilinear_upsampling_is_not_a_matrix_product():
    """Issue 22: upsample_bilinear2d was filed under matmul (the substring "linear")."""
    from micronet_score.cross_check import family

    assert family("aten.upsample_bilinear2d") == family("upsample_bilinear2d") != family("aten.linear")
    assert family("aten.linear") == family("aten.addmm") == family("linear") == "matmul"


def test_parameters_require_grad_again_after_the_peers_ran():
    """The peers run with parameters frozen (FlopCounterMode's module tracker fails on a parameter passed as a
    module input, as Hugging Face hub-kernel layers do); each flag is put back."""
    model = SmallNet()
    model.fc.weight.requires_grad_(False)
    ms.cross_check(model, (1, 3, 10, 10))
    assert [p.requires_grad for p in model.parameters()] == [True, True, True, False, True]
