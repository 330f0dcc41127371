"""Small challenges written in the real on-disk formats: a tiny model file, test data and checkpoints."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

NET_PY = textwrap.dedent('''
    import torch

    def const(cls=0, classes=4):
        """A net that always predicts class ``cls``: the linear layer's weight is zero, its bias one-hot."""
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                  torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, classes))
        with torch.no_grad():
            net[4].weight.zero_()
            net[4].bias.zero_()
            net[4].bias[cls] = 1.0
        return net
''')


class Plant:
    """Loads a file that creates a marker when unpickled (a pickle that would run code)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_challenge(root: Path, labels: np.ndarray) -> None:
    """``root/net.py``, ``root/test.npz`` (8x8 RGB images, ``labels``) and checkpoints of const(0..3)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "net.py").write_text(NET_PY)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(len(labels), 8, 8, 3), dtype=np.uint8)  # NHWC, as many tools write it
    np.savez(root / "test.npz", x=x, y=labels)
    namespace: dict = {}
    exec(NET_PY, namespace)
    (root / "subs").mkdir(exist_ok=True)
    for cls in range(4):
        torch.save(namespace["const"](cls).state_dict(), root / "subs" / f"const{cls}.pt")


#: The manifest head of the organizer tests' boards (their models are the organizer's own code files).
HEADER = textwrap.dedent('''
    rules = "micronet-2019-cifar100"
    allow_code = true
    [data]
    path = "test.npz"
    dataset = "npz"
''')


def entry(name: str, weights: str, cls: int = 0) -> str:
    return textwrap.dedent(f'''
        [[entry]]
        name = "{name}"
        model = "net.py:const"
        weights = "{weights}"
        args = {{ cls = {cls} }}
        input = [1, 3, 8, 8]
    ''')


# 50 labels: 20 zeros, 15 ones, 10 twos, 5 threes (so const(c) gets exactly that many right)
LABELS = np.array([0] * 20 + [1] * 15 + [2] * 10 + [3] * 5)[np.random.default_rng(1).permutation(50)]


@pytest.fixture
def challenge(tmp_path):
    root = tmp_path / "challenge"
    write_challenge(root, LABELS)
    return root
