"""Plots return a Figure with the expected axes."""

from __future__ import annotations

import pytest
from torch import nn

import micronet_score as ms
from micronet_score.compress import GlobalUnstructured, finalize_, prune_

pytest.importorskip("matplotlib")
from matplotlib.figure import Figure  # noqa: E402


def model() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(288, 10))


def test_report_plot_by_layer_bits_and_density():
    fig = ms.count(model(), (1, 3, 8, 8)).plot()
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == ["By layer", "By bit width", "Density of stored values"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["0", "1", "3"]
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["16-bit"]


def test_comparison_plot_shows_changed_layers():
    before = ms.count(model(), (1, 3, 8, 8))
    after = ms.count(finalize_(prune_(model(), GlobalUnstructured(amount=0.5))), (1, 3, 8, 8))
    fig = ms.compare(before, after).plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "1" not in labels and set(labels) <= {"0", "3"}  # the ReLU did not change


def test_history_plot_accuracy_against_score():
    dense = ms.score(ms.count(model(), (1, 3, 8, 8)), rules="micronet-2019-cifar100", accuracy=0.82)
    fig = ms.plot_history([("dense", dense), ("pruned", dense.value / 2, 0.79)])
    (ax,) = fig.axes
    assert ax.get_xlabel() == "score (lower is better)" and ax.get_ylabel() == "accuracy (%)"
    assert [t.get_text() for t in ax.texts] == ["dense", "pruned"]
    assert ax.get_lines()[-1].get_ydata()[0] == pytest.approx(80.0)  # the CIFAR-100 threshold


def test_history_needs_accuracies():
    s = ms.score(ms.count(model(), (1, 3, 8, 8)), rules="micronet-2019-cifar100")
    with pytest.raises(ms.InputError, match="has no accuracy"):
        ms.plot_history([("dense", s)])
