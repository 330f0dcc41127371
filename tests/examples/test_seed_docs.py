"""The seed tutorial's numbers are what ``examples/seed_cifar10.py`` and the library print now."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _generator():
    spec = importlib.util.spec_from_file_location("docs_gen_seed_numbers", DOCS / "gen" / "seed_numbers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_seed_tutorial_snippets_match_a_fresh_run():
    gen = _generator()
    stale = [name for name, text in gen.generate().items()
             if not (gen.OUT / name).exists() or (gen.OUT / name).read_text(encoding="utf-8") != text]
    assert not stale, f"seed tutorial numbers out of date: {stale}; run: python docs/gen/seed_numbers.py"


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
