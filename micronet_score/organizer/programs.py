"""Reading an exported program (``.pt2``): what a submission hands in instead of weights and a model name, and
what the child process of :mod:`micronet_score.organizer.entry_code` writes."""

from __future__ import annotations

from collections.abc import Sequence
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


def export_model(model: torch.nn.Module, shape: Sequence[int]) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` in eval mode on a zero input of ``shape`` (the batch dimension dynamic, so
    the scorer can evaluate in batches); the model's training flag is restored. A model that cannot be exported
    gets the export error and the usual ways out."""
    was_training = model.training
    model.eval()
    example = torch.zeros((max(2, int(shape[0])), *(int(s) for s in shape[1:])))
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    try:
        with torch.no_grad():
            return torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    except Exception as exc:
        raise SubmissionError(
            f"torch.export of the model failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
            "make the forward exportable (static shapes, torch.cond for data-dependent branches)") from None
    finally:
        model.train(was_training)
