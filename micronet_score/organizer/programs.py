"""Reading an exported program (``.pt2``): what a submission hands in instead of weights and a model name, and
what the child process of :mod:`micronet_score.organizer.entry_code` writes."""

from __future__ import annotations

from pathlib import Path

import torch

from micronet_score.organizer.errors import SubmissionError


def load_program(path: str | Path) -> torch.export.ExportedProgram:
    """The exported program at ``path``, or one :class:`SubmissionError` line."""
    # merge: use io.exported.load_exported
    try:
        return torch.export.load(str(path))
    except Exception as exc:
        raise SubmissionError(f"{Path(path).name}: not a loadable exported program: {type(exc).__name__}: "
                              f"{' '.join(str(exc).split())[:200]}") from None
