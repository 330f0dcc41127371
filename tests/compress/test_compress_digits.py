"""End to end on real data: scikit-learn's bundled 8x8 digits (1797 images, no download).

Train a small CNN, prune 50% of its weights globally, fake-quantize weights and activations to
8 bits with static calibration, fine-tune briefly, and check accuracy holds up.
"""

from __future__ import annotations

import copy

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

#: Accuracy may drop by at most this much from the float model after prune + quantize + fine-tune.
MARGIN = 0.03


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def test_prune_quantize_finetune_on_digits_keeps_accuracy(digits_example):
    # the data split, model and training loop of examples/digits_compress.py
    small_cnn, fit = digits_example.small_cnn, digits_example.fit
    torch.manual_seed(0)
    x_train, y_train, x_test, y_test = digits_example.load_digits()
    model = small_cnn()
    fit(model, x_train, y_train, epochs=15, lr=1e-2)
    acc_float = accuracy(model, x_test, y_test)
    assert acc_float > 0.90

    prune_(model, GlobalUnstructured(amount=0.5))
    weights = {name: module.weight for name, module in model.named_modules() if hasattr(module, "weight_mask")}
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    # the classifier (10*256) is excluded by default: 50% of the 8*1*9 + 16*8*9 = 72 + 1152 = 1224 conv weights
    assert zeros == 612
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
