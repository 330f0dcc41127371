"""report.print(): a rich table when rich is installed, the plain table otherwise."""

from __future__ import annotations

import sys

import pytest
from torch import nn

import micronet_score as ms


def report() -> ms.Report:
    return ms.count(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), (1, 4))


def test_print_without_rich_is_the_plain_table(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.setitem(sys.modules, "rich.console", None)
    r = report()
    r.print()
    out = capsys.readouterr().out
    assert out == r.summary() + "\n" + r.table() + "\n"


def test_print_with_rich_shows_every_row_and_the_total(monkeypatch, capsys):
    pytest.importorskip("rich")
    monkeypatch.setenv("COLUMNS", "200")
    report().print()
    out = capsys.readouterr().out
    # 4*3 + 3 = 15 and 3*2 + 2 = 8 values: 23 in total
    assert "Linear" in out and "ReLU" in out and "total" in out and "23" in out
