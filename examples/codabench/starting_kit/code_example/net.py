"""A code submission's model file: ``model = "net.py:build"`` in ``submission.toml``.

The ingestion program imports this file in a separate process (no test data, 600 s, 8 GiB), calls
``build(**args)``, loads ``weights`` into the result and exports it with ``torch.export``; the exported program
is what is scored. Keep the forward exportable: no Python branches on tensor values, no ``.item()``.
"""

import torch


def build(num_classes: int = 100, width: int = 16) -> torch.nn.Module:
    """A small CNN that is not on the challenge's list of zoo models."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.BatchNorm2d(width), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(width, 2 * width, 3, padding=1), torch.nn.BatchNorm2d(2 * width), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(2 * width, num_classes))
