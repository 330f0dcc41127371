"""``Report.by_operator``: counts per aten operator, checked against hand arithmetic."""

import torch
from torch import nn

import micronet_score as ms
from micronet_score.report import OperatorRow, Report


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))


def test_counts_per_operator_by_hand():
    report = ms.count(_net(), (2, 3, 10, 10))
    ops = report.by_operator
    # conv: 3*3*3 = 27 mults per output, 8*8*8 = 512 outputs -> 13,824 mults; 26 adds per output + the bias
    # add (the folded batch norm's shift, the conv has its own bias already) -> 27 * 512 = 13,824 adds
    assert ops["aten.convolution"] == OperatorRow(13_824, 13_824, 1)
    # the batch norm folds into the conv: 0 operations (one call still listed)
    assert ops["aten.native_batch_norm"].mults == 0
    assert ops["aten.native_batch_norm"].adds == 0
    # ReLU: 1 mult per element, 512 elements
    assert ops["aten.relu"] == OperatorRow(512, 0, 1)
    # Linear 512 -> 10: 5,120 mults, 511*10 + 10 bias = 5,120 adds
    assert ops["aten.addmm"] == OperatorRow(5_120, 5_120, 1)
    assert report.mults == 13_824 + 512 + 5_120


def test_calls_count_every_costed_call():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4, bias=False)

        def forward(self, x):
            return self.fc(self.fc(x))

    ops = ms.count(Twice(), (1, 4)).by_operator
    assert ops["aten.mm"] == OperatorRow(32, 24, 2)  # 2 calls x 16 mults, 2 x 4*3 adds


def test_by_operator_survives_json_and_old_reports_still_load():
    report = ms.count(_net(), (1, 3, 10, 10))
    again = Report.from_json(report.to_json())
    assert again == report and again.by_operator == report.by_operator
    assert again.by_operator["aten.relu"] == OperatorRow(512, 0, 1)
    old = report.to_dict()
    del old["by_operator"]  # a report written before the field existed
    assert Report.from_dict(old).by_operator == {}
