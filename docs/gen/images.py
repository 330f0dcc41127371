"""Write the plot image the getting-started page shows (``docs/img/report-plot.png``).

    python docs/gen/images.py

The image is not compared byte for byte in the tests (PNG bytes vary with the matplotlib version);
``tests/docs`` checks that the script runs and that the page's image exists.
"""

from __future__ import annotations

from pathlib import Path

import torch

import micronet_score as ms

OUT = Path(__file__).resolve().parents[1] / "img"


def main(out: Path = OUT) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    report = ms.count(ms.models.build("resnet18-cifar"), (1, 3, 32, 32))
    path = out / "report-plot.png"
    report.plot().savefig(path, dpi=80)
    return path


if __name__ == "__main__":
    print(main())
