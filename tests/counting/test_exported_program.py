"""Counting an exported program (``torch.export``): the same totals as the eager model, rows named after the
original modules, batch norms folded (also after ``run_decompositions()``), the seed recipe's widths kept."""

from __future__ import annotations

import copy
import dataclasses
import warnings

import pytest
import torch
from torch import nn

import micronet_score as ms
from micronet_score.errors import InputError


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Net(nn.Module):
    """stem conv + bn + relu, one block called twice (shared weights), a mean and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()
        self.block = Block()
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.stem(x)))
        x = self.block(self.block(x))
        return self.head(x.mean((2, 3)))


def _totals(r: ms.Report) -> tuple:
    return (r.params, r.nonzero_params, r.mask_bits, r.mults, r.adds, r.param_storage, r.math_ops,
            r.params_by_bits, r.mults_by_bits, r.freebie)


def _rows(r: ms.Report) -> list[tuple]:
    return [dataclasses.astuple(row) for row in r.layers]


def _tensors(r: ms.Report) -> list[tuple]:
    return [dataclasses.astuple(row) for row in r.tensors]


@pytest.fixture(scope="module")
def net() -> tuple[nn.Module, torch.Tensor, torch.export.ExportedProgram]:
    torch.manual_seed(0)
    model = Net().eval()
    x = torch.randn(1, 3, 2, 2)
    return model, x, torch.export.export(model, (x,))


@pytest.mark.parametrize("form", ["program", "module", "decomposed"])
def test_exported_counts_by_hand(net, form):
    model, x, ep = net
    target = {"program": lambda: ep, "module": ep.module, "decomposed": ep.run_decompositions}[form]()
    r = ms.count(target, x)
    # params: stem.weight 12 + its folded bias 4 + block.conv.weight 16 + two folded biases 2 x 4 (the block
    # runs twice, one fold per call) + head 8 + 2 = 50
    assert r.params == 50
    # mults: stem 16 outputs x 3 = 48; block conv 16 x 4 = 64, twice = 128; relu 1 per element, 3 x 16 = 48;
    # the mean's division 4; head 2 x 4 = 8 -> 236
    assert r.mults == 236
    # adds: stem 16 x 2 + 16 folded-bias adds = 48; block conv (16 x 3 + 16) x 2 = 128; mean 4 x 3 = 12;
    # head 2 x 3 + 2 bias = 8 -> 196
    assert r.adds == 196
    rows = {row.name: row for row in r.layers}
    # operators charged to the original modules, with their types and call counts
    assert (rows["stem"].type, rows["stem"].calls, rows["stem"].mults) == ("Conv2d", 1, 48)
    assert (rows["block.conv"].type, rows["block.conv"].calls, rows["block.conv"].mults) == ("Conv2d", 2, 128)
    assert (rows["block.act"].type, rows["block.act"].calls, rows["block.act"].mults) == ("ReLU", 2, 32)
    assert (rows["act"].type, rows["act"].calls, rows["act"].mults) == ("ReLU", 1, 16)
    assert (rows["head"].type, rows["head"].mults, rows["head"].adds) == ("Linear", 8, 8)
    assert (rows["bn"].mults, rows["bn"].adds, rows["block.bn"].calls) == (0, 0, 2)  # folded
    assert rows[""].type == "Net"
    labels = {t.name: t.module for t in r.tensors}
    assert labels["stem.bias (folded bn)"] == "stem"
    assert labels["block.conv.bias (folded block.bn)"] == "block.conv"
    eager = ms.count(model, x)
    assert _totals(r) == _totals(eager)
    assert sorted(_rows(r)) == sorted(_rows(eager))
    assert sorted(_tensors(r)) == sorted(_tensors(eager))


def test_program_rows_in_the_original_order(net):
    model, x, ep = net
    assert _rows(ms.count(ep, x)) == _rows(ms.count(model, x))


def test_decomposed_batch_norm_is_the_no_training_kernel_and_folds(net):
    _, x, ep = net
    decomposed = ep.run_decompositions()
    targets = {str(n.target) for n in decomposed.graph.nodes if n.op == "call_function"}
    assert "aten._native_batch_norm_legit_no_training.default" in targets
    r = ms.count(decomposed, x)
    # folded: no batch-norm tensor is stored, every norm's work is gone (the 4 running statistics x 3 norms
    # would add 12 stored vectors if they were read as stored tensors)
    assert not any(".running_" in t.name or t.name.endswith("bn.weight") for t in r.tensors)
    assert r.by_operator["aten._native_batch_norm_legit_no_training"].mults == 0


def test_counting_leaves_the_exported_module_as_it_was(net):
    _, x, ep = net
    gm = ep.module()
    before = {k: v.clone() for k, v in gm.state_dict().items()}
    ms.count(gm, x)
    assert all(torch.equal(before[k], v) for k, v in gm.state_dict().items())


def test_score_takes_an_exported_program(net):
    model, x, ep = net
    rules = "micronet-2019-cifar100"
    assert ms.score(ep, x, rules=rules).value == ms.score(model, x, rules=rules).value


def test_leaf_module_convention_refused(net):
    _, x, ep = net
    with pytest.raises(InputError, match="exported program"):
        ms.count(ep, x, rules="imta-2025")


def test_bits_by_type_refused(net):
    _, x, ep = net
    with pytest.raises(InputError, match="module name"):
        ms.count(ep, x, bits={nn.Conv2d: 8})
    # by name: the width reaches the module's stored weight (12 values at 8 bits)
    r = ms.count(ep, x, bits={"stem": 8})
    assert next(t for t in r.tensors if t.name == "stem.weight").bits == 8


def _seed() -> nn.Module:
    from micronet_score.compress import GlobalUnstructured, finalize_, prune_

    model = ms.models.build("densenet-seed").eval()
    finalize_(prune_(model, GlobalUnstructured(amount=0.5)))
    return model


@pytest.mark.parametrize("quantize", ["half", "fakequant16"])
def test_seed_recipe_exports_to_the_same_count(quantize):
    from micronet_score.compress import FakeQuant, Half, quantize_

    model = _seed()
    x = torch.randn(1, 3, 32, 32)
    if quantize == "half":
        quantize_(model, Half(dtype=torch.float16))
        x = x.half()
    else:  # weights only: the activation quantizer's range check is Python control flow on a tensor
        quantize_(model, FakeQuant(weight_bits=16, act_bits=None))
    eager = ms.count(model, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(copy.deepcopy(model), (x,))
    for target in (ep, ep.module()):
        r = ms.count(target, x)
        assert _totals(r) == _totals(eager)
        assert sorted(_rows(r)) == sorted(_rows(eager))
    # every stored value at 16 bits, and half the weights pruned: far fewer non-zeros than the 203,794 stored
    assert eager.params_by_bits == {16: 203_794}
    assert eager.nonzero_params < 203_794 * 0.6


def test_inputs_not_shaped_like_the_export_are_refused(net):
    _, x, ep = net
    with pytest.raises(InputError, match="takes 1 positional input"):
        ms.count(ep, (x, x))  # the eager model would refuse the second input too
    with pytest.raises(ms.errors.ForwardError, match=r"Guard failed: x.size\(\)\[2\] == 2"):
        ms.count(ep, torch.randn(1, 3, 4, 4))  # exported for 2 x 2 images
