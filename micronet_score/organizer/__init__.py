"""The organizer's side: test sets, accuracy, submissions, leaderboards, Codabench, the published field.

>>> import micronet_score as ms
>>> ms.published("micronet-2019-wikitext103")[0].team
'MIT-HAN-Lab'
"""

from micronet_score.organizer.datasets import Dataset, Preprocessing, read_dataset
from micronet_score.organizer.errors import DatasetError, DeviceError, SubmissionError
from micronet_score.organizer.evaluation import Accuracy, evaluate
from micronet_score.organizer.field import PublishedEntry, published
from micronet_score.organizer.ranking import Leaderboard, leaderboard, read_manifest
from micronet_score.organizer.submissions import load_submission, save_submission

__all__ = ["Accuracy", "Dataset", "DatasetError", "DeviceError", "Leaderboard", "Preprocessing", "PublishedEntry",
           "SubmissionError", "evaluate", "leaderboard", "load_submission", "published", "read_dataset",
           "read_manifest", "save_submission"]
