"""The Codabench detailed results page: a styled page of the verdict, the score's terms and the layers."""

from __future__ import annotations

import re

from micronet_score.render.codabench import detailed_results_html


def scored_row(**changes):
    row = {"rank": None, "name": "team-a", "model": "densenet-seed", "correct": 3, "total": 64,
           "accuracy": 3 / 64, "passed": False, "param_term": 0.018490714285714287, "ops_term": 0.07781622857142857,
           "score": 0.09630694285714286, "error": None, "args": {"num_classes": 10},
           "weights": "weights.safetensors", "weights_sha256": "ab" * 32, "published": False,
           "param_storage": 103548.0, "math_ops": 21788544.0, "rules": "imta-2025", "convention": "imta-2025",
           "threshold": 0.9, "param_baseline": 5600000.0, "ops_baseline": 280000000.0,
           "layers": [{"name": "conv", "type": "Conv2d", "params": 448, "nonzero_params": 200, "param_storage": 200.0,
                       "math_ops": 18000.0, "param_bits": (32,), "mult_bits": (32,)},
                      {"name": "relu", "type": "ReLU", "params": 0, "nonzero_params": 0, "param_storage": 0.0,
                       "math_ops": 0.0, "param_bits": (), "mult_bits": ()},
                      {"name": "fc", "type": "Linear", "params": 110, "nonzero_params": 110, "param_storage": 110.0,
                       "math_ops": 2000.0, "param_bits": (16,), "mult_bits": (16,)}]}
    row.update(changes)
    return row


def visible(page: str) -> str:
    """The page without its style sheet and tags: what a reader sees."""
    return re.sub(r"<[^>]+>", " ", re.sub(r"<style>.*?</style>", "", page, flags=re.S))


def test_scored_page_has_rounded_terms_accuracy_as_a_fraction_and_a_marked_failure():
    page = detailed_results_html(scored_row())
    text = visible(page)
    assert "None" not in text and "{" not in text and "}" not in text  # no empty rows, no dict repr
    assert "0.096307" in text and "0.0963069428" not in text  # six decimals, as the leaderboard
    assert "0.018491" in text and "0.077816" in text
    assert "103,548.0 32-bit-equivalent parameter storage / baseline 5,600,000" in text
    assert "3 / 64 correct (4.69%)" in text  # 3/64 = 0.046875
    assert '<div class="ms-banner ms-fail"><span class="ms-fail">✗ FAILS</span> the accuracy threshold 90.00% ' \
        '(accuracy 4.69%)</div>' in page
    assert "num_classes = 10" in text
    style = page[page.index("<style>"):page.index("</style>")]
    assert "sans-serif" in style and "white-space:nowrap" in style and "tabular-nums" in style


def test_scored_page_lists_the_layers_with_a_total():
    page = detailed_results_html(scored_row(param_storage=310.0, math_ops=20_000.0))
    table = page[page.index("Per layer"):]
    # the ReLU stores and computes nothing: left out; 2 layers, total 448 + 110 = 558 values, 200 + 110 non-zero
    assert "Per layer (2 layers" in table and "<td>relu</td>" not in table
    assert "<td>conv</td><td>Conv2d</td><td>448</td><td>200</td><td>200.0</td><td>18,000.0</td><td>90.0%</td>" in table
    assert ('<tr class="ms-total ms-total-last"><td>total</td><td></td><td>558</td><td>310</td><td>310.0</td>'
            '<td>20,000.0</td>') in table


def test_passing_page():
    page = detailed_results_html(scored_row(correct=60, accuracy=60 / 64, passed=True))
    assert '<div class="ms-banner ms-pass"><span class="ms-pass">✓ passes</span> the accuracy threshold 90.00%' in page
    assert "60 / 64 correct (93.75%)" in visible(page)


def test_refused_page_names_the_reason_without_the_machine_paths():
    row = scored_row(error="/srv/run/input/res/w.pt is not a checkpoint", layers=None)
    for key in ("correct", "total", "accuracy", "passed", "param_term", "ops_term", "score", "threshold",
                "param_storage", "math_ops", "rules", "convention"):
        row[key] = None
    page = detailed_results_html(row, {"/srv/run/input/res": "res"})
    text = visible(page)
    assert "Not scored" in text and "res/w.pt is not a checkpoint" in text
    assert "/srv" not in page and "None" not in text and "Score" not in text and "Per layer" not in text
