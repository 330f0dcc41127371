"""micronet-score: count and score neural networks the way the NeurIPS 2019 MicroNet Challenge did.

>>> import torch, micronet_score as ms
>>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU())
>>> report = ms.count(model, (1, 3, 32, 32))
>>> report.params, report.mults  # 3*3*3*16 + 16; 3*3*3 * 16*30*30 + 16*30*30 (ReLU)
(448, 403200)
>>> result = ms.score(report, rules="micronet-2019-cifar100")
"""

from micronet_score import models, rules
from micronet_score._version import __version__ as __version__
from micronet_score.api import count, cross_check, score
from micronet_score.bits import Precision
from micronet_score.checkpoint import CheckpointStats, scan_checkpoint
from micronet_score.compare import Comparison, compare
from micronet_score.convention import Convention, get_convention, register_convention
from micronet_score.cross_check import CrossCheck, CrossCheckRow
from micronet_score.errors import (
    CheckpointError,
    ConventionMismatchError,
    CountingError,
    ForwardError,
    InputError,
    MicronetError,
    MissingExtraError,
    RegistryError,
    UnknownRuleSetError,
    UnsupportedOpError,
)
from micronet_score.loading import load_weights
from micronet_score.organizer import (
    Accuracy,
    Leaderboard,
    evaluate,
    leaderboard,
    load_submission,
    published,
    save_submission,
)
from micronet_score.render.plots import plot_history
from micronet_score.report import LayerRow, OperatorRow, Report, TensorRow
from micronet_score.rules import RuleSet, Score

__all__ = [
    "CheckpointError",
    "CheckpointStats",
    "Comparison",
    "Convention",
    "ConventionMismatchError",
    "CountingError",
    "ForwardError",
    "InputError",
    "LayerRow",
    "MicronetError",
    "Precision",
    "Report",
    "RuleSet",
    "Score",
    "TensorRow",
    "UnknownRuleSetError",
    "UnsupportedOpError",
    "compare",
    "count",
    "cross_check",
    "get_convention",
    "load_weights",
    "register_convention",
    "models",
    "rules",
    "scan_checkpoint",
    "score",
    "plot_history",
    "MissingExtraError",
    "Accuracy",
    "Leaderboard",
    "evaluate",
    "leaderboard",
    "load_submission",
    "published",
    "save_submission",
    "CrossCheck",
    "CrossCheckRow",
    "OperatorRow",
    "RegistryError",
]

from micronet_score.errors import ComplexTensorError, UncountedWorkError, ValuesNeededError  # noqa: E402

__all__ += ["ComplexTensorError", "UncountedWorkError", "ValuesNeededError"]
