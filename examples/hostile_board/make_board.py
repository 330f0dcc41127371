"""Write a hostile leaderboard: a generated CIFAR-10-format test set, honest submissions and hostile ones.

    python examples/hostile_board/make_board.py FOLDER [--images 200] [--train-steps 40] [--small]

FOLDER gets ``cifar-10-batches-py/`` (generated: every class a colour with noise on top, in the real pickle
layout, ``--images`` test images and five training batches of as many), ``subs/`` (the entries' files) and
``challenge.toml`` (rules ``imta-2025``, ``allow_code = true``). ``run_demo.py`` runs the board; ``EXPECTED``
says what each row must be. ``--small`` writes the five entries of the test ``tests/organizer/
test_hostile_board_demo.py`` (one honest, four hostile) and trains nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import pickle
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import torch

import micronet_score as ms
from micronet_score.compress import FakeQuant, GlobalUnstructured, calibrate, finalize_, prune_, quantize_

RULES = "imta-2025"
DATA = "cifar-10-batches-py"
#: A CIFAR-10 rule set counted operator by operator (the 2019 MicroNet convention, CIFAR-100 track's baselines):
#: imta-2025 counts module by module with hooks, which an exported program (what a file.py entry becomes) refuses.
OPERATOR_RULES = """\
[rules]
name = "demo-cifar10-operators"
description = "hostile board demo: CIFAR-10 under the MicroNet 2019 convention and CIFAR-100 track baselines"
param_baseline = 36.5e6
ops_baseline = 10.49e9
threshold = 0.90
dataset = "CIFAR-10"
input_size = [1, 3, 32, 32]
data_format = "cifar10"
data_mean = [0.4914, 0.4822, 0.4465]
data_std = [0.2023, 0.1994, 0.2010]
convention = "micronet"
"""
#: CIFAR-10's usual normalisation, which imta-2025 applies (a participant knows it).
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)

# ---------------------------------------------------------------------------------------------------------------
# the entries' Python files (allow_code = true): each factory runs in the child that only exports the model

HOSTILE_PY = '''
"""Factories that attack the machine that runs them (each runs in the child that exports the model)."""
import ctypes
import os
import time

import torch


def worker_killer():
    os._exit(3)


def system_exit():
    raise SystemExit(0)


def hang():
    time.sleep(10 ** 7)


def allocate_20gib():
    torch.ones(20 << 30, dtype=torch.uint8)  # 20 GiB, touched


def segfault():
    ctypes.string_at(0)
'''

# a participant's model that finds the test set next to its own folder, reads the labels and replays them: each
# image is recognised by one number (its projection on a fixed random direction), looked up in a table of the
# test images' numbers. Without the labels it predicts class 0 for everything.
READER_PY = '''
"""A label reader: looks for the test set's labels and builds a model that replays them."""
import pickle
from pathlib import Path

import torch

MEAN = torch.tensor(MEAN_VALUES).view(3, 1, 1)
STD = torch.tensor(STD_VALUES).view(3, 1, 1)


def _labels_and_images():
    """(labels, images) of the first test_batch found near this file, or None."""
    here = Path(__file__).resolve()
    for folder in here.parents:
        for path in sorted(folder.glob("*/test_batch")) + sorted(folder.glob("test_batch")):
            try:
                with open(path, "rb") as fh:
                    batch = pickle.load(fh, encoding="bytes")
                return batch[b"labels"], batch[b"data"]
            except Exception:
                continue
    return None


class Replay(torch.nn.Module):
    def __init__(self, direction, keys, answers):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))  # the only saved tensor: the weights file holds it
        self.register_buffer("direction", direction, persistent=False)  # made at build time, never saved
        self.register_buffer("keys", keys, persistent=False)
        self.register_buffer("answers", answers, persistent=False)

    def forward(self, x):
        key = x.flatten(1) @ self.direction
        return self.answers[(key[:, None] - self.keys[None, :]).abs().argmin(1)] * self.scale


def build():
    found = _labels_and_images()
    if found is None:  # no labels: one key that every image is nearest to, answer class 0
        return Replay(torch.zeros(3072), torch.zeros(1),
                      torch.nn.functional.one_hot(torch.zeros(1, dtype=torch.long), 10).float())
    labels, data = found
    images = (torch.as_tensor(data).view(-1, 3, 32, 32).float() / 255 - MEAN) / STD
    direction = torch.randn(3072, generator=torch.Generator().manual_seed(0))
    keys = images.flatten(1) @ direction
    answers = torch.nn.functional.one_hot(torch.as_tensor(labels, dtype=torch.long), 10).float()
    return Replay(direction, keys, answers)
'''.replace("MEAN_VALUES", repr(MEAN)).replace("STD_VALUES", repr(STD))

# a nearest-colour classifier: the mean colour of the image, then one linear layer (the class centroids). The
# first version has a bug (the logits rolled by one class); run_demo.py fixes it between two runs.
STALE_PY = '''
"""Mean colour, then the class centroids: a 40-parameter classifier for the generated data."""
import torch

ROLL = 1  # a bug: the class of every prediction shifted by one


class MeanColour(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.classify = torch.nn.Linear(3, 10)

    def forward(self, x):
        return self.classify(x.mean((2, 3))).roll(ROLL, 1)


def build():
    return MeanColour()
'''
STALE_FIXED = STALE_PY.replace("ROLL = 1  # a bug: the class of every prediction shifted by one",
                               "ROLL = 0  # fixed")

#: Entry name -> (what the row must show, a few words of why), in manifest order.
ENTRIES = {
    "honest-dense": "densenet-seed weights (save_submission), scored by zoo name",
    "honest-pruned": "the same, 50% of its weights pruned (save_submission folder with the prune recorded)",
    "honest-folder": "a save_submission folder, given as submission = \"subs/honest-folder\"",
    "centroid-stale": "file.py model (allow_code) whose source the demo fixes between runs: rescored",
    "label-reader": "file.py model (allow_code) that reads the test set's labels and replays them",
    "input-chooser": "save_submission folder whose submission.toml says input = [1, 3, 8, 8]",
    "fakequant-16bit": "quantize_(FakeQuant(16, 16)) + calibrate, saved as a plain state_dict, scored by zoo name",
    "worker-killer": "factory calls os._exit(3)",
    "system-exit": "factory raises SystemExit(0)",
    "hang": "factory sleeps forever",
    "alloc-20gib": "factory allocates 20 GiB",
    "segfault": "factory reads address 0 (ctypes.string_at(0))",
}
SMALL = ("honest-dense", "input-chooser", "worker-killer", "system-exit", "segfault")


def write_cifar10(folder: Path, per_batch: int, seed: int = 0) -> Path:
    """Generated CIFAR-10 in its on-disk layout: class ``k`` is a fixed colour plus noise (the seed tutorial's
    generator, ``docs/gen/seed_numbers.py``, loaded from the checkout)."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "docs" / "gen" / "seed_numbers.py"
    spec = importlib.util.spec_from_file_location("_seed_numbers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_synthetic_cifar10(folder, per_batch=per_batch, seed=seed)


def _train_set(data: Path) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for i in range(1, 6):
        with open(data / f"data_batch_{i}", "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        xs.append(torch.as_tensor(batch[b"data"]).view(-1, 3, 32, 32))
        ys.append(torch.as_tensor(batch[b"labels"]))
    x = torch.cat(xs).float() / 255
    x = (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    return x, torch.cat(ys)


def _densenet(x: torch.Tensor, y: torch.Tensor, steps: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = ms.models.build("densenet-seed", num_classes=10)
    if steps:
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        model.train()
        for _ in range(steps):
            idx = torch.randint(0, len(x), (32,))
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def _centroids(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Nearest centroid as a linear layer: argmin |m - c_k|^2 = argmax 2 c_k.m - |c_k|^2."""
    means = x.mean((2, 3))
    c = torch.stack([means[y == k].mean(0) for k in range(10)])
    return {"classify.weight": 2 * c, "classify.bias": -(c * c).sum(1)}


def own_score(model: torch.nn.Module, data: Path, rules: str = RULES) -> dict[str, float]:
    """What the participant's own ``ms.evaluate`` + ``ms.score`` say of ``model`` (in this process, eager)."""
    from micronet_score.organizer import Preprocessing, read_dataset

    dataset = read_dataset(data, "cifar10", Preprocessing.from_rules(rules))
    accuracy = ms.evaluate(model, dataset, progress=False)
    result = ms.score(model, (1, 3, 32, 32), rules=rules, accuracy=accuracy.as_tuple())
    return {"correct": accuracy.correct, "total": accuracy.total, "param_term": result.param_term,
            "ops_term": result.ops_term, "score": result.value}


def _load_module(path: Path, source: str | None = None) -> Any:
    namespace: dict[str, Any] = {"__file__": str(path)}
    exec(compile(source if source is not None else path.read_text(), str(path), "exec"), namespace)
    return argparse.Namespace(**namespace)


def _entry(name: str, body: str) -> str:
    return f'\n[[entry]]\nname = "{name}"  # {ENTRIES[name]}\n' + textwrap.dedent(body).strip() + "\n"


def make_board(folder: str | Path, images: int = 200, train_steps: int = 40, small: bool = False,
               rules: str = RULES) -> Path:
    """Write the board into ``folder``; returns the path of its ``challenge.toml``. ``rules``: ``imta-2025`` or
    ``operators`` (:data:`OPERATOR_RULES`, written to ``folder/rules.toml``)."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    if rules == "operators":
        (root / "rules.toml").write_text(OPERATOR_RULES)
        rules = "rules.toml"
    ruleset = str(root / rules) if rules.endswith(".toml") else rules
    subs = root / "subs"
    subs.mkdir(parents=True, exist_ok=True)
    data = write_cifar10(root / DATA, images)
    x, y = _train_set(data)
    expected: dict[str, dict[str, float]] = {}  # what the participants' own ms.score says: run_demo.py compares
    dense = _densenet(x, y, 0 if small else train_steps)
    ms.save_submission(dense, subs / "honest-dense", model_name="densenet-seed", args={"num_classes": 10})
    (subs / "hostile.py").write_text(HOSTILE_PY.lstrip())
    body: dict[str, str] = {}
    body["honest-dense"] = '''
        model = "densenet-seed"
        weights = "subs/honest-dense/weights.safetensors"
        args = { num_classes = 10 }
    '''
    # the input chooser: an honest folder, plus a key that would count the operations on 8x8 images
    chooser = subs / "input-chooser"
    ms.save_submission(dense, chooser, model_name="densenet-seed", args={"num_classes": 10})
    toml = chooser / "submission.toml"
    toml.write_text("input = [1, 3, 8, 8]\n" + toml.read_text())
    body["input-chooser"] = 'submission = "subs/input-chooser"'
    for name, factory in (("worker-killer", "worker_killer"), ("system-exit", "system_exit"), ("hang", "hang"),
                          ("alloc-20gib", "allocate_20gib"), ("segfault", "segfault")):
        body[name] = f'''
            model = "subs/hostile.py:{factory}"
            weights = "subs/honest-dense/weights.safetensors"
        '''
    if not small:
        pruned = copy.deepcopy(dense)
        finalize_(prune_(pruned, GlobalUnstructured(amount=0.5)))
        ms.save_submission(pruned, subs / "honest-pruned", model_name="densenet-seed", args={"num_classes": 10})
        body["honest-pruned"] = 'submission = "subs/honest-pruned"'
        ms.save_submission(dense, subs / "honest-folder", model_name="densenet-seed", args={"num_classes": 10})
        body["honest-folder"] = 'submission = "subs/honest-folder"'
        (subs / "centroid").mkdir(exist_ok=True)
        (subs / "centroid" / "stale.py").write_text(STALE_PY.lstrip())
        torch.save(_centroids(x, y), subs / "centroid" / "weights.pt")
        body["centroid-stale"] = '''
            model = "subs/centroid/stale.py:build"
            weights = "subs/centroid/weights.pt"
        '''
        (subs / "reader").mkdir(exist_ok=True)
        (subs / "reader" / "reader.py").write_text(READER_PY.lstrip())
        torch.save({"scale": torch.ones(1)}, subs / "reader" / "weights.pt")
        body["label-reader"] = '''
            model = "subs/reader/reader.py:build"
            weights = "subs/reader/weights.pt"
        '''
        fq = copy.deepcopy(dense)
        quantize_(fq, FakeQuant(weight_bits=16, act_bits=16))
        calibrate(fq, [x[:64]])
        torch.save(fq.state_dict(), subs / "fakequant16.pt")  # a plain state dict: no recipe, no compress list
        body["fakequant-16bit"] = '''
            model = "densenet-seed"
            weights = "subs/fakequant16.pt"
            args = { num_classes = 10 }
        '''
    expected["honest-dense"] = expected["honest-folder"] = own_score(dense, data, ruleset)
    if not small:
        expected["honest-pruned"] = own_score(pruned, data, ruleset)
        expected["fakequant-16bit"] = own_score(fq, data, ruleset)
        centroid = _load_module(subs / "centroid" / "stale.py").build()
        centroid.load_state_dict(torch.load(subs / "centroid" / "weights.pt"))
        expected["centroid-stale"] = own_score(centroid, data, ruleset)  # ROLL = 1, the buggy version
        fixed = _load_module(subs / "centroid" / "stale.py", STALE_FIXED).build()
        fixed.load_state_dict(torch.load(subs / "centroid" / "weights.pt"))
        expected["centroid-stale fixed"] = own_score(fixed, data, ruleset)
        labels = np.asarray(pickle.loads((data / "test_batch").read_bytes(), encoding="bytes")[b"labels"])
        expected["label-reader without the labels"] = {"correct": int((labels == 0).sum()), "total": len(labels)}
    (root / "expected.json").write_text(json.dumps(expected, indent=1))
    names = [n for n in ENTRIES if n in body and (not small or n in SMALL)]
    manifest = root / "challenge.toml"
    manifest.write_text(f'rules = "{rules}"\nallow_code = true  # the file.py entries run in a child that only '
                        f'exports the model\n\n[data]\npath = "{DATA}"\ndataset = "cifar10"\n'
                        + "".join(_entry(n, body[n]) for n in names))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--images", type=int, default=200, help="test images (and images per training batch)")
    parser.add_argument("--train-steps", type=int, default=40, help="SGD steps of batch 32 for densenet-seed")
    parser.add_argument("--small", action="store_true", help="one honest entry and four hostile ones")
    parser.add_argument("--rules", choices=(RULES, "operators"), default=RULES,
                        help="imta-2025, or a CIFAR-10 rule set counted operator by operator")
    args = parser.parse_args(argv)
    print(make_board(args.folder, args.images, args.train_steps, args.small, args.rules))
    return 0


if __name__ == "__main__":
    sys.exit(main())
