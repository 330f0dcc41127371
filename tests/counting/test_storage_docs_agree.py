"""docs/models.md agrees with what ``micronet-score count NAME --rules R`` prints for a fresh build."""

import subprocess
import sys
from pathlib import Path

import micronet_score as ms

ROOT = Path(__file__).resolve().parents[2]


def page_row(name: str) -> list[str]:
    for line in (ROOT / "docs" / "models.md").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"| `{name}` "):
            return [cell.strip() for cell in line.strip("|").split("|")]
    raise AssertionError(f"{name} has no row in docs/models.md")


def test_models_page_matches_the_cli_for_a_fresh_build():
    out = subprocess.run([sys.executable, "-m", "micronet_score.cli", "count", "densenet-seed", "--rules",
                          "micronet-2019-cifar100"], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    score_line = next(line for line in out.splitlines() if line.startswith("micronet-2019-cifar100: score"))
    assert page_row("densenet-seed")[-2] == score_line.split("score ")[1].split(" ")[0]  # "score cifar100"


def test_models_page_matches_a_fresh_resnet18_count():
    report = ms.count(ms.models.build("resnet18-cifar"), (1, 3, 32, 32))
    row = page_row("resnet18-cifar")
    assert row[5] == f"{report.params:,}"
    assert row[-2] == f"{ms.score(report, rules='micronet-2019-cifar100').value:.6f}"
    assert row[-1] == f"{ms.score(report, rules='micronet-2019-imagenet').value:.6f}"
