"""Reading an exported program (``.pt2``): what a submission hands in instead of weights and a model name, and
what the child process of :mod:`micronet_score.organizer.entry_code` writes."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from micronet_score.organizer.errors import SubmissionError


def load_program(path: str | Path) -> torch.export.ExportedProgram:
    """The exported program at ``path``, loaded by :func:`micronet_score.io.exported.load_exported` (which refuses
    a ``.pt2`` that carries a code-running pickle, an unknown operator or a shape expression it would evaluate),
    or one :class:`SubmissionError` line."""
    from micronet_score.errors import MicronetError
    from micronet_score.io.exported import load_exported

    try:
        return load_exported(path)
    except MicronetError as exc:
        raise SubmissionError(f"{Path(path).name}: {' '.join(str(exc).split())[:300]}") from None


def export_model(model: torch.nn.Module, shape: Any) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` in eval mode on a zero input of ``shape`` (a shape, or an example tensor
    of that shape; the batch dimension dynamic, so the scorer can evaluate in batches); every module's training
    flag is put back. A model that cannot be exported gets the export error and the usual ways out."""
    if isinstance(shape, torch.Tensor):
        shape = tuple(shape.shape)
    try:
        dims = [int(s) for s in shape]
    except (TypeError, ValueError):
        raise SubmissionError(f"export= needs the scored input's shape, e.g. (1, 3, 32, 32), or an example tensor; "
                              f"got {type(shape).__name__}") from None
    if not dims or any(d < 1 for d in dims):
        raise SubmissionError(f"export= needs a shape of positive sizes, e.g. (1, 3, 32, 32); got {dims}")
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    example = torch.zeros((max(2, dims[0]), *dims[1:]))
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notices while tracing are not the user's concern
            return torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    except Exception as exc:  # noqa: BLE001 - every export failure gets the same ways out
        raise SubmissionError(
            f"the model cannot be exported (torch.export: {type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]}); make the forward exportable: no Python control flow on tensor "
            "values (use torch.cond), no .item()/.tolist() or other data-dependent shapes, a batch dimension "
            "the forward does not fix; or submit weights for a model on the challenge's list") from None
    finally:
        for module, training in flags:
            module.training = training


def check_input_shape(program: torch.export.ExportedProgram, shape: Any, where: str = "the exported program") -> None:
    """Refuse, in one line, a program whose single input cannot take ``shape`` (the counting input: one example
    of the test data): a fixed size that differs (``.pt2`` exported at another resolution) is named with the fix.
    Symbolic sizes (the dynamic batch) match anything; programs with several inputs are left to the forward."""
    inputs = [spec.arg.name for spec in program.graph_signature.input_specs if spec.kind.name == "USER_INPUT"]
    if len(inputs) != 1:
        return
    node = next((n for n in program.graph.nodes if n.op == "placeholder" and n.name == inputs[0]), None)
    val = None if node is None else node.meta.get("val")
    if val is None or not hasattr(val, "shape"):
        return
    dims = list(val.shape)
    want = [int(s) for s in shape]
    fixed = [d if isinstance(d, int) else None for d in dims]
    if len(dims) != len(want) or any(f is not None and f != w for f, w in zip(fixed[1:], want[1:])):
        shown = ", ".join("N" if f is None else str(f) for f in fixed)
        raise SubmissionError(f"{where} takes inputs of shape ({shown}) but is scored on one example of the test "
                              f"data, {tuple(want)}: export it on that shape (save_submission(model, folder, "
                              f"export={tuple(want)}))")
