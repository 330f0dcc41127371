"""``examples/seed_cifar10.py`` end to end on a tiny CIFAR-10 copy the test writes in the real pickle layout."""

from __future__ import annotations

import importlib.util
import json
import math
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SUBSET = 12


def _load_example():
    spec = importlib.util.spec_from_file_location("seed_cifar10", ROOT / "examples" / "seed_cifar10.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def write_cifar10(folder: Path, per_batch: int = 16, seed: int = 0) -> Path:
    """The cifar-10-batches-py layout: five training batches, a test batch and batches.meta, as the
    official files store them (dicts with bytes keys, uint8 ``data`` of N x 3072, ``labels`` a list)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, per_batch).tolist(),
                 b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)]}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    meta = {b"label_names": [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer", "dog",
                                                  "frog", "horse", "ship", "truck")],
            b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump(meta, fh, protocol=2)
    return folder


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    pytest.importorskip("matplotlib")
    tmp = tmp_path_factory.mktemp("seed")
    data = write_cifar10(tmp / "cifar-10-batches-py")
    example = _load_example()
    argv = ["--data", str(data), "--epochs", "1", "--finetune-epochs", "1", "--subset", str(SUBSET),
            "--batch-size", "6", "--device", "cpu", "--threads", "1", "--no-progress", "--json", str(tmp / "steps.json"),
            "--plot", str(tmp / "history.png")]
    return example, tmp, example.run(argv)


def test_every_step_is_in_the_table(seed_run, capsys):
    example, tmp, steps = seed_run
    assert [s.name for s in steps] == ["dense", "pruned", "fine-tuned", "quantized"]
    text = example.table(steps)
    for name in ("dense", "pruned", "fine-tuned", "quantized", "imta-2023 score", "imta-2025 score",
                 "micronet-2019-cifar100 score (ref.)"):
        assert name in text
    assert len(text.splitlines()) == 2 + 4  # header, rule, one row per step
    rows = json.loads((tmp / "steps.json").read_text())
    assert [r["name"] for r in rows] == ["dense", "pruned", "fine-tuned", "quantized"]
    assert (tmp / "history.png").stat().st_size > 1000


def test_accuracies_are_exact_fractions_of_the_subset(seed_run):
    _, _, steps = seed_run
    for s in steps:
        assert s.total == SUBSET  # the first 12 test images
        assert 0 <= s.correct <= SUBSET and s.accuracy == s.correct / SUBSET
        for rules in ("imta-2023", "imta-2025"):
            assert s.scores[rules].accuracy == s.correct / SUBSET
        assert s.scores["micronet-2019-cifar100"].accuracy is None  # CIFAR-100 rules: reference only


def test_scores_are_finite_and_quantized_storage_is_lower(seed_run):
    _, _, steps = seed_run
    for s in steps:
        for score in s.scores.values():
            assert math.isfinite(score.value) and score.value > 0
    dense, pruned, tuned, quant = steps
    # pruning removes half the ranked weights (the classifier is not ranked): fewer non-zeros
    assert pruned.nonzero_params < dense.nonzero_params and pruned.params == dense.params
    for rules in ("imta-2023", "imta-2025", "micronet-2019-cifar100"):
        assert quant.scores[rules].param_storage < dense.scores[rules].param_storage
    # imta-2025 prices weights at their bit width: the float16 step stores half of the fine-tuned float32 one
    assert quant.scores["imta-2025"].param_storage == tuned.scores["imta-2025"].param_storage / 2


def test_the_classifier_is_not_emptied_by_pruning(seed_run):
    _, _, steps = seed_run
    # densenet-seed's classifier: Linear(192, 10), 192*10 = 1,920 weights, none pruned by default
    assert [s.classifier_nonzero for s in steps] == [1920] * 4
