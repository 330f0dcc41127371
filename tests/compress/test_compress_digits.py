"""End to end on real data: scikit-learn's bundled 8x8 digits (1797 images, no download).

Train a small CNN, prune 50% of its weights globally, fake-quantize weights and activations to
8 bits with static calibration, fine-tune briefly, and check accuracy holds up.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from micronet_score.compress import (
    FakeQuant,
    GlobalUnstructured,
    calibrate,
    finalize_,
    prune_,
    quantize_,
    sparsity,
)

datasets = pytest.importorskip("sklearn.datasets")
model_selection = pytest.importorskip("sklearn.model_selection")

#: Accuracy may drop by at most this much from the float model after prune + quantize + fine-tune.
MARGIN = 0.03


def digits():
    data = datasets.load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target)
    x_train, x_test, y_train, y_test = model_selection.train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y
    )
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


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float) -> None:
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def test_prune_quantize_finetune_on_digits_keeps_accuracy():
    torch.manual_seed(0)
    x_train, y_train, x_test, y_test = digits()
    model = small_cnn()
    fit(model, x_train, y_train, epochs=15, lr=1e-2)
    acc_float = accuracy(model, x_test, y_test)
    assert acc_float > 0.90

    prune_(model, GlobalUnstructured(amount=0.5))
    weights = {name: module.weight for name, module in model.named_modules() if hasattr(module, "weight_mask")}
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    assert zeros == 1892  # 50% of the 8*1*9 + 16*8*9 + 10*256 = 72 + 1152 + 2560 = 3784 weights
    acc_pruned = accuracy(model, x_test, y_test)

    quantize_(model, FakeQuant(weight_bits=8, act_bits=8))
    calibrate(model, [(x_train[i : i + 256], y_train[i : i + 256]) for i in range(0, len(x_train), 256)])
    acc_quantized = accuracy(model, x_test, y_test)

    fit(model, x_train, y_train, epochs=3, lr=1e-3)
    acc_finetuned = accuracy(model, x_test, y_test)
    print(
        f"digits accuracy: float {acc_float:.4f}, pruned 50% {acc_pruned:.4f}, "
        f"+ 8-bit fake-quant {acc_quantized:.4f}, fine-tuned {acc_finetuned:.4f}"
    )
    assert acc_finetuned >= acc_float - MARGIN
    before = sparsity(model)
    assert sum(int(before[f"{n}.weight"] * w.numel()) for n, w in weights.items()) == zeros  # masks held

    # Bake the masks, save, and load into a freshly built and quantized model of the same architecture.
    finalize_(model)
    fresh = quantize_(small_cnn(), FakeQuant(weight_bits=8, act_bits=8))
    fresh.load_state_dict(copy.deepcopy(model.state_dict()))
    assert accuracy(fresh, x_test, y_test) == acc_finetuned
    assert sparsity(fresh) == before
