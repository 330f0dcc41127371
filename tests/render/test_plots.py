"""Plots return a Figure with the expected axes."""

from __future__ import annotations

from collections import OrderedDict

import pytest
from torch import nn

import micronet_score as ms
from micronet_score.compress import GlobalUnstructured, finalize_, prune_

pytest.importorskip("matplotlib")
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402


def model() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(288, 10))


def nested() -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        features=nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU()),
        classifier=nn.Sequential(nn.Flatten(), nn.Linear(256, 10))))


def test_report_plot_by_layer_bits_and_density():
    fig = ms.count(model(), (1, 3, 8, 8)).plot()
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == [
        "Parameter storage: top 2 of 2 layers", "Math operations: top 3 of 3 layers", "By bit width",
        "Density of the storage panel's layers"]
    # the linear layer (3) stores 288*10+10 = 2,890 values, the conv (0) 3*3*3*8+8 = 224, the ReLU (1) none: it is
    # in the operations panel only, after the conv (11,664 math ops) and the linear layer (4,320)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["3", "0"]
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == ["0", "3", "1"]
    assert [t.get_text() for t in fig.axes[2].get_xticklabels()] == ["16-bit"]


def test_report_plot_ranks_the_deepest_layers_with_an_other_bar():
    """A model whose layers all sit under two children: the bars name the leaves, costliest first, and the
    "other" bar holds the rest, so the bars add up to the total."""
    fig = ms.count(nested(), (1, 3, 8, 8)).plot(top=2)
    storage, ops = fig.axes[:2]
    # 16-bit freebie: storage is half the values. classifier.1: 256*10+10 = 2,570 values -> 1,285.0;
    # features.2: 8*16*9+16 = 1,168 -> 584.0; the rest is features.0: 3*8*9+8 = 224 -> 112.0
    assert [t.get_text() for t in storage.get_yticklabels()] == ["classifier.1", "features.2", "other (1 layer)"]
    assert [p.get_width() for p in storage.patches] == [1285.0, 584.0, 112.0]
    # mults at 16 bits: features.2 4*4*16*72 = 18,432 mults + as many adds at 32 bits -> 9,216 + 18,432 = 27,648;
    # features.0 6*6*8*27 = 7,776 -> 3,888 + 7,776 = 11,664; the linear and the two ReLUs make the 3 others
    assert [t.get_text() for t in ops.get_yticklabels()] == ["features.2", "features.0", "other (3 layers)"]
    assert [p.get_width() for p in ops.patches][:2] == [27648.0, 11664.0]
    assert storage.get_title() == "Parameter storage: top 2 of 3 layers"
    # the title names the units: 32-bit equivalents of storage, not "parameters"
    title = fig.texts[0].get_text()
    assert title == "Sequential: parameter storage 1,981.0, math operations 43,424.0 (32-bit equivalents)"
    assert "1,981.0 parameters" not in title


def test_report_plot_cuts_a_long_tail_bar_and_labels_its_value():
    # six equal layers, top 1: the other five (5 * 55.0 = 275.0 each 110 values at 16 bits) would squash the bar
    fig = ms.count(nn.Sequential(*(nn.Linear(10, 10) for _ in range(6))), (1, 10)).plot(top=1)
    storage = fig.axes[0]
    assert [t.get_text() for t in storage.get_yticklabels()] == ["0", "other (5 layers)"]
    assert storage.patches[1].get_width() == storage.get_xlim()[1] < 275.0
    assert "275.0 (83.3%) (bar cut short)" in [t.get_text() for t in storage.texts]


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


def test_history_labels_do_not_overlap_each_other_or_the_points():
    """The seed recipe's history with two quantized steps at (almost) the same spot: every label stays readable."""
    steps = [("dense", 0.1147, 0.64), ("pruned", 0.0977, 0.109), ("fine-tuned", 0.0977, 0.158),
             ("half", 0.0490, 0.158), ("q16", 0.0491, 0.156)]
    fig = ms.plot_history(steps)
    (ax,) = fig.axes
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = [Text.get_window_extent(t, renderer) for t in ax.texts]  # the text only, not its leader line
    assert [t.get_text() for t in ax.texts] == ["dense", "pruned", "fine-tuned", "half", "q16"]
    for i, a in enumerate(boxes):
        assert ax.get_window_extent(renderer).contains(a.x0, a.y0) and \
            ax.get_window_extent(renderer).contains(a.x1, a.y1)
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)
        for x, y in steps_display(ax, steps):
            assert not a.contains(x, y)


def steps_display(ax, steps):
    return [tuple(ax.transData.transform((s, 100 * acc))) for _, s, acc in steps]


def test_history_steps_at_the_same_point_share_one_label():
    # fine-tuning that changed nothing lands on the pruned point: one label names both
    fig = ms.plot_history([("dense", 0.11, 0.67), ("pruned", 0.098, 0.16), ("fine-tuned", 0.098, 0.16)])
    assert [t.get_text() for t in fig.axes[0].texts] == ["dense", "pruned, fine-tuned"]


def test_comparison_plot_ranks_the_deepest_changed_layers():
    before = ms.count(nested(), (1, 3, 8, 8))
    after = ms.count(finalize_(prune_(nested(), GlobalUnstructured(amount=0.5))), (1, 3, 8, 8))
    labels = [t.get_text() for t in ms.compare(before, after).plot().axes[0].get_yticklabels()]
    # the two pruned convolutions by name, not their parent "features" (the classifier is left out of pruning
    # by default, so it did not change)
    assert set(labels) == {"features.0", "features.2"}


def test_report_plot_needs_at_least_one_bar():
    with pytest.raises(ms.InputError, match="top must be at least 1"):
        ms.count(model(), (1, 3, 8, 8)).plot(top=0)
