"""Structured channel pruning that physically shrinks layers (shrink_ / StructuredFilters)."""

from __future__ import annotations

import copy
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from micronet_score.compress import (
    FakeQuant,
    LayerUnstructured,
    StructuredFilters,
    UntraceableModelError,
    finalize_,
    prune_,
    quantize_,
    shrink_,
)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def zero_filters(conv: nn.Module, channels: list[int]) -> None:
    with torch.no_grad():
        conv.weight[channels] = 0
        if conv.bias is not None:
            conv.bias[channels] = 0


def scale_filters(conv: nn.Module) -> None:
    """Make filter norms strictly increasing with the channel index (ties never decide)."""
    ranks = torch.arange(1.0, conv.out_channels + 1).view(-1, *[1] * (conv.weight.dim() - 1))
    with torch.no_grad():
        conv.weight.copy_(conv.weight.sign() * 0.01 * ranks)


# ---------------------------------------------------------------------------------------- models


def chain() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.a = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.b = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = F.relu(self.stem(x))
        y = F.relu(self.bn(self.a(x)))
        x = F.relu(x + self.b(y))
        return self.fc(x.mean((2, 3)))


class Dense(nn.Module):
    """DenseNet-like: every conv sees the concatenation of all earlier feature maps."""

    def __init__(self) -> None:
        super().__init__()
        self.c0 = nn.Conv2d(3, 4, 3, padding=1)
        self.c1 = nn.Conv2d(4, 4, 3, padding=1)
        self.c2 = nn.Conv2d(8, 4, 3, padding=1)
        self.head = nn.Conv2d(12, 6, 1)
        self.fc = nn.Linear(6 * 4 * 4, 3)

    def forward(self, x):
        x0 = torch.relu(self.c0(x))
        x1 = torch.relu(self.c1(x0))
        x01 = torch.cat([x0, x1], 1)
        x2 = torch.relu(self.c2(x01))
        h = self.head(torch.cat([x01, x2], dim=1))
        return self.fc(h.view(h.size(0), -1))


def grouped() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=False),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, groups=2, bias=False),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, groups=8, bias=False),  # depthwise
        nn.ReLU(),
        nn.Conv2d(8, 4, 1, bias=False),
    )


# ---------------------------------------------------------------------------------------- tests


def test_chain_conv_bn_relu_channel_and_parameter_counts():
    torch.manual_seed(0)
    model = chain()
    scale_filters(model[0])
    old_kept = model[0].weight.detach()[2:].clone()
    assert n_params(model) == 216 + 16 + 1152 + 32 + 170  # = 1586
    prune_(model, StructuredFilters(amount=0.25), example_inputs=torch.randn(1, 3, 8, 8))
    # conv0: round(0.25 * 8) = 2 removed -> 6; conv1: round(0.25 * 16) = 4 removed -> 12;
    # the classifier's outputs reach the model output and stay 10.
    assert (model[0].out_channels, model[1].num_features) == (6, 6)
    assert (model[3].in_channels, model[3].out_channels, model[4].num_features) == (6, 12, 12)
    assert (model[8].in_features, model[8].out_features) == (12, 10)
    # conv0 6*3*9 = 162, bn0 2*6 = 12, conv1 12*6*9 = 648, bn1 2*12 = 24, fc 12*10 + 10 = 130 -> 976
    assert n_params(model) == 976
    assert type(model[0]) is nn.Conv2d and type(model[1]) is nn.BatchNorm2d
    # The two weakest filters (channels 0 and 1) went; the others are copied unchanged.
    torch.testing.assert_close(model[0].weight.detach(), old_kept)
    assert model(torch.randn(5, 3, 8, 8)).shape == (5, 10)


def test_amount_zero_changes_nothing():
    torch.manual_seed(0)
    for model, x in [(chain(), torch.randn(2, 3, 8, 8)), (Residual(), torch.randn(2, 3, 6, 6))]:
        model.eval()
        expected = model(x)
        layers = list(model.modules())
        shrink_(model, StructuredFilters(amount=0.0), x)
        assert list(model.modules()) == layers
        assert torch.equal(model(x), expected)


def test_pruning_zero_filters_leaves_the_chain_output_unchanged():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 4))
    zero_filters(model[0], [1, 6])
    zero_filters(model[2], [0, 3])
    model.eval()
    x = torch.randn(3, 3, 8, 8)
    expected = model(x)
    shrink_(model, StructuredFilters(amount=0.25), x)
    # round(0.25 * 8) = 2 per conv: exactly the zeroed (zero-norm) filters; the linear input
    # loses 2 channels * 16 positions = 32 features.
    assert (model[0].out_channels, model[2].out_channels, model[5].in_features) == (6, 6, 96)
    torch.testing.assert_close(model(x), expected)


def test_residual_add_prunes_coupled_layers_consistently():
    torch.manual_seed(0)
    model = Residual().eval()
    assert n_params(model) == 216 + 576 + 16 + 576 + 45  # = 1429
    # stem and b feed the same add: their channels form one coupled set, ranked by summed norm.
    zero_filters(model.stem, [1, 3, 4, 6])
    zero_filters(model.b, [1, 3, 4, 6])
    zero_filters(model.a, [0, 2, 5, 7])  # bn of a zero channel is 0 (running mean 0, beta 0)
    x = torch.randn(2, 3, 6, 6)
    expected = model(x)
    shrink_(model, StructuredFilters(amount=0.5), x)
    # stem/b: round(0.5 * 8) = 4 coupled channels removed from both; a: 4 removed.
    assert (model.stem.out_channels, model.a.in_channels, model.a.out_channels) == (4, 4, 4)
    assert (model.bn.num_features, model.b.in_channels, model.b.out_channels, model.fc.in_features) == (4, 4, 4, 4)
    # stem 4*3*9 = 108, a 4*4*9 = 144, bn 8, b 144, fc 4*5 + 5 = 25 -> 429
    assert n_params(model) == 429
    torch.testing.assert_close(model(x), expected)


def test_residual_coupled_channels_are_the_same_indices_in_every_producer():
    torch.manual_seed(0)
    model = Residual().eval()
    stem, b = model.stem.weight.detach().clone(), model.b.weight.detach().clone()
    a = model.a.weight.detach().clone()
    shrink_(model, StructuredFilters(amount=0.5), torch.randn(1, 3, 6, 6))
    score = stem.abs().sum((1, 2, 3)) + b.abs().sum((1, 2, 3))
    kept = sorted(torch.topk(score, 4).indices.tolist())
    torch.testing.assert_close(model.stem.weight.detach(), stem[kept])
    # b lost the same output channels as stem; its inputs (from a) were ranked on their own.
    a_kept = sorted(torch.topk(a.abs().sum((1, 2, 3)), 4).indices.tolist())
    torch.testing.assert_close(model.b.weight.detach(), b[kept][:, a_kept])


def test_densenet_concatenation_shifts_channel_indices():
    torch.manual_seed(0)
    model = Dense().eval()
    assert n_params(model) == 112 + 148 + 292 + 78 + 291  # = 921
    zero_filters(model.c0, [0, 3])
    zero_filters(model.c1, [1, 2])
    zero_filters(model.c2, [0, 1])
    zero_filters(model.head, [0, 2, 4])
    x = torch.randn(2, 3, 4, 4)
    expected = model(x)
    shrink_(model, StructuredFilters(amount=0.5), x)
    # Each producer keeps half its channels; consumers of the concatenations are sliced at
    # the shifted positions: c2 sees 2 + 2, head sees 2 + 2 + 2, fc sees 3 channels * 16 pixels.
    assert [model.c0.out_channels, model.c1.out_channels, model.c2.out_channels] == [2, 2, 2]
    assert (model.c1.in_channels, model.c2.in_channels, model.head.in_channels) == (2, 4, 6)
    assert (model.head.out_channels, model.fc.in_features, model.fc.out_features) == (3, 48, 3)
    # c0 2*27 + 2 = 56, c1 2*18 + 2 = 38, c2 2*36 + 2 = 74, head 3*6 + 3 = 21, fc 48*3 + 3 = 147 -> 336
    assert n_params(model) == 336
    torch.testing.assert_close(model(x), expected)


def test_grouped_and_depthwise_convolutions_keep_groups_balanced():
    torch.manual_seed(0)
    model = grouped().eval()
    assert n_params(model) == 216 + 288 + 72 + 32  # = 608
    zero_filters(model[0], [1, 2, 5, 7])  # two per input group of the groups=2 conv
    zero_filters(model[2], [0, 3, 4, 6])  # two per output group
    x = torch.randn(2, 3, 9, 9)
    expected = model(x)
    shrink_(model, StructuredFilters(amount=0.5), x)
    # conv0 -> 4 (2 per group of the next conv), grouped conv 4 -> 4 with groups=2 (2 per group),
    # depthwise follows its input (4 channels, groups=4), last conv's outputs are model outputs.
    assert (model[0].out_channels, model[2].in_channels, model[2].out_channels, model[2].groups) == (4, 4, 4, 2)
    assert (model[4].in_channels, model[4].out_channels, model[4].groups) == (4, 4, 4)
    assert (model[6].in_channels, model[6].out_channels) == (4, 4)
    # conv0 4*3*9 = 108, grouped 4*(4/2)*9 = 72, depthwise 4*1*9 = 36, last 4*4 = 16 -> 232
    assert n_params(model) == 232
    torch.testing.assert_close(model(x), expected)


def test_grouped_conv_with_unbalanced_weak_channels_still_removes_equally_per_group():
    torch.manual_seed(0)
    model = grouped().eval()
    zero_filters(model[0], [0, 1, 2])  # all weak channels in group 0
    shrink_(model, StructuredFilters(amount=0.25), torch.randn(1, 3, 9, 9))
    # round(0.25 * 4) = 1 per group of 4: channel 0 from group 0 and the weakest of group 1.
    assert (model[0].out_channels, model[2].in_channels, model[2].groups) == (6, 6, 2)
    assert model(torch.randn(1, 3, 9, 9)).shape == (1, 4, 3, 3)  # 9 -> 7 -> 5 -> 3 -> 3


def test_mlp_and_filter_fn():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 5))
    shrink_(model, StructuredFilters(amount=0.5, filter_fn=lambda m, name: name != "2"), torch.randn(1, 10))
    assert [model[0].out_features, model[2].in_features, model[2].out_features, model[4].in_features] == [10, 10, 20, 20]
    # 10*10 + 10 + 20*10 + 20 + 5*20 + 5 = 435
    assert n_params(model) == 435


def test_unknown_ops_leave_their_channels_alone():
    class LiteralView(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c0 = nn.Conv2d(3, 8, 3)
            self.c1 = nn.Conv2d(8, 4, 3)
            self.fc = nn.Linear(4 * 4 * 4, 2)

        def forward(self, x):
            x = self.c1(torch.relu(self.c0(x)))
            return self.fc(x.view(-1, 64))  # a literal size would break if c1 lost channels

    model = LiteralView()
    shrink_(model, StructuredFilters(amount=0.5), torch.randn(1, 3, 8, 8))
    assert (model.c0.out_channels, model.c1.in_channels, model.c1.out_channels) == (4, 4, 4)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 2)


def test_untraceable_model_raises_a_clear_error_and_leaf_modules_is_a_way_out():
    class Gate(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x  # data-dependent control flow

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c0 = nn.Conv2d(3, 8, 3)
            self.gate = Gate()
            self.c1 = nn.Conv2d(8, 8, 3)
            self.c2 = nn.Conv2d(8, 4, 1)

        def forward(self, x):
            return self.c2(torch.relu(self.c1(self.gate(self.c0(x)))))

    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(UntraceableModelError, match=r"torch\.fx could not trace Net.*leaf_modules.*torch_pruning"):
        shrink_(Net(), StructuredFilters(amount=0.5), x)
    model = Net()
    shrink_(model, StructuredFilters(amount=0.5, leaf_modules=(Gate,)), x)
    # c0 feeds the black box and keeps its 8 channels; c1 -> round(0.5 * 8) = 4.
    assert (model.c0.out_channels, model.c1.out_channels, model.c2.in_channels) == (8, 4, 4)


def test_requires_example_inputs_and_finalized_masks():
    with pytest.raises(ValueError, match="needs example_inputs"):
        prune_(chain(), StructuredFilters())
    model = chain()
    prune_(model, LayerUnstructured(amount=0.5))
    with pytest.raises(ValueError, match=r"layer '0' still carries a pruning mask .*finalize_"):
        shrink_(model, StructuredFilters(), torch.randn(1, 3, 8, 8))
    finalize_(model)
    shrink_(model, StructuredFilters(amount=0.5), torch.randn(1, 3, 8, 8))
    assert model[0].out_channels == 4
    quantize_(model, FakeQuant(act_bits=None))
    with pytest.raises(ValueError, match=r"layer '0' is fake-quantized; run structured pruning before quantize_"):
        shrink_(model, StructuredFilters(), torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"StructuredFilters: no layer matches layer_types=\(Conv3d\)"):
        shrink_(chain(), StructuredFilters(layer_types=(nn.Conv3d,)), torch.randn(1, 3, 8, 8))


def test_pruned_model_trains_and_deep_copies_and_keeps_training_mode():
    torch.manual_seed(0)
    model = Residual().train()
    shrink_(model, StructuredFilters(amount=0.5), torch.randn(1, 3, 6, 6))
    assert model.training and model.bn.training
    clone = copy.deepcopy(model)
    loss = clone(torch.randn(4, 3, 6, 6)).sum()
    loss.backward()
    assert clone.stem.weight.grad is not None and clone.stem.weight.grad.shape == (4, 3, 3, 3)
    fresh = Residual()
    with pytest.raises(RuntimeError):
        fresh.load_state_dict(model.state_dict())  # the architecture really changed


@pytest.mark.parametrize(
    ("make", "shape", "expected_params"),
    [(chain, (1, 3, 8, 8), 510), (Residual, (1, 3, 6, 6), 429), (Dense, (1, 3, 4, 4), 336), (grouped, (1, 3, 9, 9), 232)],
)
def test_optional_torch_pruning_backend_agrees_with_the_builtin_one(make, shape, expected_params):
    pytest.importorskip("torch_pruning")
    torch.manual_seed(0)
    builtin, external = make(), make()
    external.load_state_dict(builtin.state_dict())
    x = torch.randn(*shape)
    shrink_(builtin, StructuredFilters(amount=0.5), x)
    shrink_(external, StructuredFilters(amount=0.5, backend="torch_pruning"), x)
    # chain at 50%: conv0 4*3*9 = 108, bn 8, conv1 8*4*9 = 288, bn 16, fc 8*10 + 10 = 90 -> 510
    assert n_params(builtin) == n_params(external) == expected_params
    assert external(x).shape == builtin(x).shape


def test_torch_pruning_backend_missing_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_pruning", None)
    with pytest.raises(ImportError, match="pip install torch-pruning"):
        shrink_(chain(), StructuredFilters(backend="torch_pruning"), torch.randn(1, 3, 8, 8))
