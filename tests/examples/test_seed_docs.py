"""The seed tutorial's numbers are what ``examples/seed_cifar10.py`` and the library print now.

A training run's floating-point bits differ between CPUs even at one thread and seed 0, so the run is compared
with the page by ``docs/gen/seed_numbers.py``'s :func:`differences`: words and untrained counts exactly, losses and
accuracies by form, what the pruned steps cost within ``TRAINED_REL`` (2%). Nothing here needs the page's trained
figures bit for bit.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _generator():
    spec = importlib.util.spec_from_file_location("docs_gen_seed_numbers", DOCS / "gen" / "seed_numbers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fresh():
    return _generator().generate()


def _page(name: str) -> str:
    return (DOCS / "gen" / "snippets" / name).read_text(encoding="utf-8")


def test_the_fresh_model_is_counted_as_the_page_says(fresh):
    # no training: the fresh densenet-seed is counted the same on every CPU, so the snippet matches exactly
    assert fresh["seed_model.md"] == _page("seed_model.md"), "run: python docs/gen/seed_numbers.py"
    # the classifier, Linear(192, 10): 192 * 10 = 1,920 weights
    assert "`Linear(192, 10)` (1,920 weights)" in fresh["seed_model.md"]


def test_a_fresh_run_prints_what_the_page_shows_up_to_its_trained_figures(fresh):
    gen = _generator()
    problems = gen.differences(_page("seed_run.md"), fresh["seed_run.md"])
    assert not problems, "\n".join(problems) + "\nrun: python docs/gen/seed_numbers.py"


def test_the_run_shows_every_step_and_the_counts_training_cannot_move(fresh):
    gen = _generator()
    lines = gen.run_lines(fresh["seed_run.md"])
    rows = {line.split()[0]: line.split() for line in lines if line.split()[:1] and line.split()[0] in gen.STEPS
            and "/64" in line}
    assert list(rows) == ["dense", "pruned", "fine-tuned", "quantized"]
    # the dense model's counts are those of the fresh model (seed_model.md): 203,794 values, 23,355,456 mults
    assert rows["dense"][3:5] == ["203,794", "23,355,456"]
    # 50% of the ranked weights zeroed: the classifier's 1,920 are not ranked, and neither are the norms' and
    # biases' values, so the non-zero count falls by half of the convolution weights (see the next test)
    assert {r[3] for name, r in rows.items() if name != "dense"} == {"109,996"}
    assert lines[-1].endswith("classifier weights non-zero: 1,920")


def test_the_pruned_count_is_half_the_convolution_weights():
    from torch import nn

    import micronet_score as ms

    model = ms.models.build("densenet-seed")
    convs = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))
    # 203,794 - 109,996 = 93,798 zeroed: half of the convolution weights, the only ones ranked
    assert convs == 2 * 93_798


PAGE_RUN = """```console
$ python examples/seed_cifar10.py --epochs 4
```

```text
dense epoch 1/4: mean loss 2.2614
step              accuracy  non-zero params       mults
----------  --------------  ---------------  ----------
dense       41/64 (64.06%)          203,794  23,355,456
pruned       7/64 (10.94%)          109,996  11,959,776
imta-2025 storage / ops: dense 205,186 / 21,788,544; pruned 111,388 / 21,788,544
Scores (quantized step: imta-2023 fails (threshold 90%)).
120 weight tensors pruned; classifier weights non-zero: 1,920
```
"""


@pytest.mark.parametrize(("old", "new"), [
    ("mean loss 2.2614", "mean loss 2.1998"),            # losses: form only
    ("41/64 (64.06%)", "43/64 (67.19%)"),                # accuracies: form only (the AMD EPYC run)
    (" 7/64 (10.94%)", "10/64 (15.62%)"),
    ("11,959,776", "11,959,680"),                        # a pruned step's mults: 96 of 11,959,776 is 0.0008%
    ("pruned 111,388 / 21,788,544", "pruned 111,400 / 21,700,000"),
    ("imta-2023 fails (", "imta-2023 passes ("),         # a verdict follows the accuracy
    ("120 weight tensors", "119 weight tensors"),
])
def test_figures_training_moves_may_differ(old, new):
    gen = _generator()
    assert old in PAGE_RUN
    assert gen.differences(PAGE_RUN, PAGE_RUN.replace(old, new)) == []


@pytest.mark.parametrize(("old", "new", "says"), [
    ("23,355,456", "23,355,457", "number 5 differs"),    # the dense model is counted without any training bits
    ("109,996", "109,997", "number 4 differs"),          # the pruning amount fixes the non-zero count
    ("11,959,776", "12,300,000", "moved more than 2%"),  # 12,300,000 / 11,959,776 - 1 = 2.8%
    ("41/64 (64.06%)", "41/64 (65.06%)", "not a count of the test images"),  # 41/64 = 64.0625%
    ("--epochs 4", "--epochs 5", "number 1 differs"),
    ("classifier weights non-zero: 1,920", "classifier weights non-zero: 1,919", "differs"),
    ("step ", "stage ", "reads differently"),
    ("(threshold 90%)", "(threshold 80%)", "differs"),
])
def test_other_changes_are_reported(old, new, says):
    gen = _generator()
    assert old in PAGE_RUN
    problems = gen.differences(PAGE_RUN, PAGE_RUN.replace(old, new))
    assert len(problems) == 1 and says in problems[0], problems


def test_the_text_around_the_run_is_compared_exactly():
    gen = _generator()
    problems = gen.differences(PAGE_RUN, PAGE_RUN.replace("```console", "<!-- not-run: x -->\n```console"))
    assert len(problems) == 1 and "the text around the run differs" in problems[0]


def test_a_missing_line_is_reported():
    gen = _generator()
    # the command and 8 printed lines on the page
    fewer = PAGE_RUN.replace("dense epoch 1/4: mean loss 2.2614\n", "")
    assert gen.differences(PAGE_RUN, fewer) == ["the page shows 9 lines of the run, a fresh run prints 8"]


def test_the_tutorial_includes_every_snippet_and_the_plot():
    gen = _generator()
    page = (DOCS / "seed-tutorial.md").read_text(encoding="utf-8")
    for name in gen.SNIPPETS:
        assert f'--8<-- "{name}"' in page
    assert "img/seed-history.png" in page and gen.IMAGE.stat().st_size > 10_000


def test_the_generated_data_is_in_the_cifar10_layout(tmp_path):
    from micronet_score.organizer.datasets import read_dataset

    gen = _generator()
    folder = gen.write_synthetic_cifar10(tmp_path / "c10", per_batch=8)
    assert sorted(p.name for p in folder.iterdir()) == ["batches.meta", "data_batch_1", "data_batch_2",
                                                       "data_batch_3", "data_batch_4", "data_batch_5",
                                                       "test_batch"]
    test = read_dataset(folder, "cifar10")
    assert tuple(test.images.shape) == (8, 3, 32, 32) and test.y.max() < 10
