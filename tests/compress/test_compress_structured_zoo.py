"""Structured pruning on real architectures: removing channels whose every contribution is zero
must leave the model's output unchanged. This checks the channel bookkeeping (residual adds,
concatenations, groups, depthwise convs, squeeze-excitation gates, batch norms) end to end."""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch
from torch import nn

from micronet_score.compress import StructuredFilters, shrink_
from micronet_score.compress._layers import select_layers
from micronet_score.compress.channel_graph import analyze
from micronet_score.compress.structured import choose_removed

models = pytest.importorskip("micronet_score.models")


def silence_doomed_channels(model: nn.Module, config: StructuredFilters, x: torch.Tensor) -> int:
    """Zero every weight through which a channel that shrink_ will remove reaches the output:
    its filters and biases in all coupled producers, and its batch-norm scale/shift and depthwise
    filter. Returns how many channel classes will go."""
    selected = {name for name, _ in select_layers(model, config.layer_types, config.filter_fn)}
    graph = analyze(model, x, selected)
    modules = dict(model.named_modules())
    removed = choose_removed(graph, config, modules)
    find = graph.sets.find
    doomed = defaultdict(list)
    for name, atoms in graph.producers.items():
        doomed[name] = [i for i, a in enumerate(atoms) if find(a) in removed]
    for name, flow in graph.channelwise.items():
        doomed[name] = [p for p in range(flow.size) if find(flow.atoms[p]) in removed]
    with torch.no_grad():
        for name, channels in doomed.items():
            module = modules[name]
            for tensor in (module.weight, getattr(module, "bias", None)):
                if tensor is not None and channels:
                    tensor[channels] = 0
    return len(removed)


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("resnet18-cifar", (1, 3, 32, 32)),
        ("preact-resnet18-cifar", (1, 3, 32, 32)),
        ("densenet-seed", (1, 3, 32, 32)),
        ("mobilenetv2", (1, 3, 64, 64)),
        ("efficientnet-b0", (1, 3, 64, 64)),
    ],
)
def test_removing_silent_channels_keeps_outputs_of_real_architectures(name, size):
    if name not in models.names():
        pytest.skip(f"model zoo has no {name}")
    torch.manual_seed(0)
    model = models.build(name).eval()
    with torch.no_grad():  # give batch norms non-trivial statistics
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
    x = torch.randn(*size)
    config = StructuredFilters(amount=0.3)
    assert silence_doomed_channels(model, config, x) > 0
    expected = model(x)
    before = params(model)
    shrink_(model, config, x)
    assert params(model) < 0.8 * before
    torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)
