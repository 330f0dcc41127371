"""Prune, quantize and score a small CNN on scikit-learn's bundled 8x8 digits (1,797 images, no download).

    .venv/bin/python examples/digits_compress.py [--epochs 15] [--finetune-epochs 3] [--seed 0]

Steps: train a float CNN; prune 50% of its conv/linear weights globally by magnitude; fake-quantize weights
and activations to 8 bits with a static range calibrated on the training set; fine-tune briefly. After each
step the test accuracy is measured and the model is counted (``ms.count``) and scored against a small custom
rule set whose baselines are the dense float model's own counts, so the float model scores exactly 2.0.
Runs in seconds on a CPU. ``tests/compress/test_readback_digits.py`` runs the same pipeline and checks every
count against numbers derived by hand from the layer shapes.
"""

from __future__ import annotations

import argparse
import copy
import time
from dataclasses import dataclass

import torch
from torch import nn

import micronet_score as ms
from micronet_score.compare import compare
from micronet_score.compress import FakeQuant, GlobalUnstructured, calibrate, prune_, quantize_

INPUT = (1, 1, 8, 8)

# The baselines are the dense float model counted by hand (at 16 bits: the freebie applies to a float model).
# Parameters: conv 1 8*1*9 + 8 = 80, conv 2 16*8*9 + 16 = 1,168, linear 256*10 + 10 = 2,570: 3,818 values,
# at 16 bits 1,909. Operations per example (8x8 input, padding 1):
#   conv 1: 8x8x8 = 512 outputs x 9 mults, 8 + 1 adds     4,608 mults   4,608 adds
#   ReLU: 512 mults; max pool 2x2: 8x4x4 = 128 outputs x 3 comparisons = 384 mults
#   conv 2: 16x4x4 = 256 outputs x 72 mults, 71 + 1 adds  18,432 mults  18,432 adds
#   ReLU: 256 mults; linear: 10 outputs x 256 mults, 255 + 1 adds  2,560 mults  2,560 adds
#   total 26,752 mults at 16 bits + 25,600 adds at 32 bits = 13,376 + 25,600 = 38,976
RULES = ms.RuleSet("digits", param_baseline=1909, ops_baseline=38976, threshold=0.9,
                   dataset="scikit-learn digits 8x8, 450 test images",
                   description="baselines: the dense float small CNN of examples/digits_compress.py")


@dataclass(frozen=True)
class Step:
    """One stage of the pipeline: its test accuracy, a snapshot of the model, its report and its score."""

    name: str
    correct: int
    total: int
    model: nn.Module
    report: ms.Report
    score: ms.Score

    @property
    def accuracy(self) -> float:
        return self.correct / self.total


def load_digits(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train/test split (75/25, stratified) of the digits, pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    data = sklearn_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    return x_train, y_train, x_test, y_test


def small_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 10),
    )


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()


def correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    model.eval()
    with torch.no_grad():  # also refreshes the pruning hooks' `weight` without a graph, so the model deep-copies
        return int((model(x).argmax(dim=1) == y).sum())


def _step(name: str, model: nn.Module, x_test: torch.Tensor, y_test: torch.Tensor) -> Step:
    right = correct(model, x_test, y_test)
    report = ms.count(model, INPUT)
    result = ms.score(report, rules=RULES, accuracy=(right, len(y_test)))
    return Step(name, right, len(y_test), copy.deepcopy(model), report, result)


def run(epochs: int = 15, finetune_epochs: int = 3, seed: int = 0) -> list[Step]:
    """Train, prune, quantize, fine-tune; one :class:`Step` per stage."""
    torch.manual_seed(seed)
    x_train, y_train, x_test, y_test = load_digits(seed)
    model = small_cnn()
    fit(model, x_train, y_train, epochs=epochs, lr=1e-2, seed=seed)
    steps = [_step("float", model, x_test, y_test)]

    # exclude=() ranks the classifier with the convolutions (the default keeps the last classifier out); this
    # small CNN's classifier keeps its accuracy at 50% and carries most of the weights
    prune_(model, GlobalUnstructured(amount=0.5, exclude=()))
    steps.append(_step("pruned 50% (global)", model, x_test, y_test))

    quantize_(model, FakeQuant(weight_bits=8, act_bits=8))
    calibrate(model, [x_train[i : i + 256] for i in range(0, len(x_train), 256)])
    steps.append(_step("+ 8-bit fake quant", model, x_test, y_test))

    fit(model, x_train, y_train, epochs=finetune_epochs, lr=1e-3, seed=seed + 1)
    steps.append(_step(f"+ fine-tuned {finetune_epochs} epochs", model, x_test, y_test))
    return steps


def table(steps: list[Step]) -> str:
    from tabulate import tabulate

    def widths(d: dict) -> str:
        return "/".join(str(b) for b in d) or "-"

    rows = [[s.name, f"{s.accuracy:.2%} ({s.correct}/{s.total})", f"{s.report.nonzero_params:,}",
             f"{s.report.mask_bits:,}", widths(s.report.params_by_bits), widths(s.report.mults_by_bits),
             "on" if s.report.freebie else "off", f"{s.report.param_storage:,.2f}", f"{s.report.math_ops:,.1f}",
             f"{s.score.value:.4f}", "yes" if s.score.passed else "no"] for s in steps]
    headers = ["step", "accuracy", "non-zeros", "mask bits", "param bits", "mult bits", "freebie",
               "param storage", "math ops", "score", f"≥ {RULES.threshold:.0%}"]
    return tabulate(rows, headers=headers, disable_numparse=True,
                    colalign=("left", "right", "right", "right", "left", "left", "left", "right", "right", "right",
                              "left"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    steps = run(args.epochs, args.finetune_epochs, args.seed)
    print(table(steps))
    print()
    print(f"rule set {RULES.name!r}: score = param storage / {RULES.param_baseline:,} + math ops / "
          f"{RULES.ops_baseline:,}; accuracy threshold {RULES.threshold:.0%}")
    print()
    diff = compare(steps[0].report, steps[-1].report)
    print(f"float -> {steps[-1].name}, per layer:")
    print(diff.table())
    print(diff.score_delta(RULES, accuracy_before=(steps[0].correct, steps[0].total),
                           accuracy_after=(steps[-1].correct, steps[-1].total)))
    print(f"\n({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
