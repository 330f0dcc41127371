"""Cross-checks against the peers: torch's FlopCounterMode, fvcore, and their published test cases."""

import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import micronet_score as ms


def _conv_linear_mults(report):
    return sum(row.mults for row in report.layers if row.type in ("Conv2d", "Conv1d", "Linear"))


def _torch_macs(model, x):
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2


def _fvcore_macs(model, x):
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = analysis.by_operator()
    return sum(v for k, v in by_op.items() if k in ("conv", "linear", "addmm", "matmul"))


def _random_net(seed: int) -> tuple[nn.Module, torch.Tensor]:
    """A random conv-BN-ReLU stack (kernel, stride, padding, groups, bias all drawn) ending in a Linear."""
    rng = random.Random(seed)
    in_channels = channels = rng.choice([3, 4, 6])
    in_size = size = rng.choice([12, 16, 20])
    layers: list[nn.Module] = []
    for _ in range(rng.randint(1, 4)):
        groups = rng.choice([g for g in (1, 2, 3) if channels % g == 0])
        out = groups * rng.randint(1, 4)
        k = rng.choice([1, 3, 5])
        stride = rng.choice([1, 2])
        pad = rng.randint(0, k // 2)
        if size + 2 * pad < k:
            continue
        layers += [nn.Conv2d(channels, out, k, stride=stride, padding=pad, groups=groups, bias=rng.random() < 0.5),
                   nn.BatchNorm2d(out), nn.ReLU()]
        size = (size + 2 * pad - k) // stride + 1
        channels = out
    layers += [nn.Flatten(), nn.Linear(channels * size * size, rng.randint(2, 9))]
    return nn.Sequential(*layers).eval(), torch.randn(rng.choice([1, 2]), in_channels, in_size, in_size)


@pytest.mark.parametrize("seed", range(12))
def test_random_dense_nets_match_flop_counter_and_fvcore(seed):
    torch.manual_seed(seed)
    model, x = _random_net(seed)
    report = ms.count(model, x)
    batch = x.shape[0]
    assert _conv_linear_mults(report) * batch == _torch_macs(model, x)
    assert _conv_linear_mults(report) * batch == _fvcore_macs(model, x)


def test_torch_flop_counter_conv_case(fn_module):
    # PyTorch test_flop_counter: x (2, 3, 6, 6), w (6, 3, 4, 4), padding 1 -> 14,400 MACs for the batch.
    w = torch.randn(6, 3, 4, 4)
    r = ms.count(fn_module(lambda x, w: F.conv2d(x, w, padding=1), w=w), torch.randn(2, 3, 6, 6))
    assert r.mults * 2 == 14_400


def test_fvcore_published_cases():
    # fvcore tests: Conv2d batch 5, 10->3, 15x15, k3, pad 1 -> 303,750 MACs; groups 4 case -> 900,000;
    # Linear(10, 20) on batch 5 -> 1,000.
    r = ms.count(nn.Conv2d(10, 3, 3, padding=1), (5, 10, 15, 15))
    assert r.mults * 5 == 303_750
    r = ms.count(nn.Conv2d(16, 8, 5, padding=2, groups=4), (5, 16, 15, 15))
    assert r.mults * 5 == 900_000
    r = ms.count(nn.Linear(10, 20), (5, 10))
    assert r.mults * 5 == 1_000


class LeNet(nn.Module):
    """The PyTorch-tutorial LeNet of the fvcore docs."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3)
        self.conv2 = nn.Conv2d(6, 16, 3)
        self.fc1 = nn.Linear(16 * 6 * 6, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def test_lenet_fvcore_docs():
    # fvcore docs: 274,656 MACs (conv 194,616, linear 80,040), 81,194 parameters.
    r = ms.count(LeNet(), (1, 1, 32, 32))
    conv = r.layer("conv1").mults + r.layer("conv2").mults
    linear = sum(r.layer(n).mults for n in ("fc1", "fc2", "fc3"))
    assert (conv, linear) == (194_616, 80_040)
    assert r.params == 81_194


def test_ptflops_published_case():
    # ptflops: Conv2d(3, 2, 3) on (1, 3, 224, 224) -> 2,759,904 MACs including the bias: 2,661,336 mults and
    # 98,568 bias additions; 56 parameters.
    r = ms.count(nn.Conv2d(3, 2, 3), (1, 3, 224, 224))
    assert r.mults == 2_661_336
    assert r.adds == 2_661_336 - 98_568 + 98_568  # 26 adds + 1 bias per output = 27 per output
    assert r.params == 56
