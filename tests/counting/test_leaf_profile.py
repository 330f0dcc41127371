"""Module-level counting (``imta-profile``, spec section 4) against hand arithmetic."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from micronet_score.counting.leaf_profile import profile
from micronet_score.errors import InputError, MicronetError


def small_net(functional_relu: bool = False) -> nn.Module:
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.bn = nn.BatchNorm2d(8)
            self.relu = nn.ReLU()
            self.pool = nn.AvgPool2d(2)
            self.fc = nn.Linear(8 * 2 * 2, 10)

        def forward(self, x):
            x = self.bn(self.conv(x))
            x = F.relu(x) if functional_relu else self.relu(x)
            return self.fc(torch.flatten(self.pool(x), 1))

    return Net()


def test_imta_profile_ops_by_hand():
    p = profile(small_net(), (1, 3, 6, 6))
    ops = {row.name: row.ops for row in p.layers}
    # conv 3->8, k3 on 6x6: 8 x 4 x 4 = 128 outputs x (27 x 16/32 + 27 - 1 + 1 bias) = 128 x 40.5 = 5,184
    assert ops["conv"] == 5184
    assert ops["bn"] == 3 * 128  # 3 ops per input element, never folded
    assert ops["relu"] == 128  # 1 op per element
    assert ops["pool"] == 32 * 4  # 8 x 2 x 2 outputs x k^2 = 4
    assert ops["fc"] == 10 * (32 * 16 / 32 + 32 - 1)  # per output: in x b/32 + in - 1, bias ignored: 470
    assert p.ops == 5184 + 384 + 128 + 128 + 470 == 6294


def test_functional_calls_cost_nothing():
    p = profile(small_net(functional_relu=True), (1, 3, 6, 6))
    assert p.ops == 6294 - 128  # F.relu is not a module: the course script never sees it


def test_parameters_non_zero_at_b_without_mask_and_macs_drop_zeroed_filters():
    model = small_net()
    with torch.no_grad():
        for t in (model.conv.weight, model.conv.bias, model.fc.weight, model.fc.bias):
            t.fill_(0.5)
    mask = torch.ones(8, 3, 3, 3)
    mask[:2] = 0  # two whole filters: 54 zeros
    mask[2:, 0, 0, 0] = 0  # one weight in each other filter: 6 zeros
    prune.custom_from_mask(model.conv, "weight", mask)  # weight_orig parameter + weight_mask buffer
    p = profile(model, (1, 3, 6, 6))
    # parameters: conv 216 + 8, bn weight 8 + bias 8 (buffers excluded), fc 320 + 10 = 570
    assert p.params == 570
    # non-zeros: conv 216 - 60 = 156 (the weight the forward uses), conv bias 8, bn weight 8, bn bias 8 (its
    # initial zeros are stored values: vectors are dense, spec section 3), fc 330: 510, at 16 bits with no
    # mask: 255.
    assert p.nonzero_params == 510 and p.param_storage == 255
    # MACs: conv 16 positions x 27 x 6 filters left = 2,592 (a lone zero does not lower them); fc 32 x 10
    assert p.macs == 2592 + 320


def test_batch_is_divided_and_the_model_is_left_as_it_was():
    model = small_net()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    p = profile(model, torch.randn(4, 3, 6, 6))
    assert p.batch_size == 4 and p.ops == 6294
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.conv._forward_hooks


def test_bits_and_conventions():
    p = profile(small_net(), (1, 3, 6, 6), bits=32)
    # conv per output: 27 x 32/32 + 26 + 1 = 54 -> 6,912; fc: 32 + 31 = 63 x 10 = 630
    assert p.ops == 6912 + 384 + 128 + 128 + 630
    with pytest.raises(InputError, match="leaf modules"):
        profile(small_net(), (1, 3, 6, 6), convention="micronet")


def test_unpriced_weight_modules_are_named_not_skipped_silently():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = profile(model, torch.zeros(1, 3, dtype=torch.long))
    assert "Embedding" in p.uncounted
    assert any("Embedding" in str(w.message) for w in caught)


def test_a_failing_forward_is_a_micronet_error():
    with pytest.raises(MicronetError, match="forward pass failed"):
        profile(small_net(), (1, 5, 6, 6))


def test_options_of_the_operator_engine_are_refused_by_name():
    with pytest.raises(InputError, match="shapes_only: not an option"):
        profile(small_net(), (1, 3, 6, 6), shapes_only=True)
