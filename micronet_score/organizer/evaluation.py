"""``evaluate``: top-1 accuracy of a model on a test set, as exact counts."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from micronet_score.organizer.datasets import Dataset
from micronet_score.organizer.errors import DatasetError, DeviceError


@dataclass(frozen=True)
class Accuracy:
    """``correct`` of ``total`` test examples classified right (top-1).

    >>> a = Accuracy(9010, 10000)
    >>> a.fraction, str(a)
    (0.901, '9,010 of 10,000 (90.10%)')
    """

    correct: int
    total: int

    @property
    def fraction(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def as_tuple(self) -> tuple[int, int]:
        return (self.correct, self.total)

    def __str__(self) -> str:
        return f"{self.correct:,} of {self.total:,} ({self.fraction:.2%})"


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device, refusing ``cuda`` when no GPU is usable."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"unknown device {device!r}: use cpu or cuda ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda asked for, but CUDA is not available here (no GPU or a CPU-only "
                          "torch build); use --device cpu")
    return dev


def evaluate(model: torch.nn.Module, data: Dataset, *, batch_size: int = 256,
             device: str | torch.device = "cpu", progress: bool | None = None) -> Accuracy:
    """Count the test examples ``model`` classifies right (argmax of its output equals the label).

    A plain batched ``torch.inference_mode()`` loop in eval mode; the model's training flag and device are
    restored afterwards. Labels the model's outputs cannot match (a label of 99 for 10 logits) are refused.
    ``progress``: a tqdm bar (if installed) when True, or when None and the run takes more
    than a couple of seconds.

    >>> import torch
    >>> from micronet_score.organizer.datasets import Dataset
    >>> data = Dataset(torch.zeros(4, 2, 1, 1), torch.tensor([0, 1, 1, 1]))
    >>> evaluate(torch.nn.Flatten(), data)  # logits (0, 0): argmax 0, right for the first example only
    Accuracy(correct=1, total=4)
    """
    if batch_size <= 0:
        raise DatasetError(f"batch size must be positive, got {batch_size}")
    if len(data) == 0:
        raise DatasetError("the test set is empty")
    dev = resolve_device(device)
    was_training = model.training
    first = next(iter(model.parameters()), None)
    home = first.device if first is not None else torch.device("cpu")
    model.eval()
    if dev != home:
        model.to(dev)
    correct = 0
    bar: Any = None
    started = time.perf_counter()
    try:
        with torch.inference_mode():
            for start in range(0, len(data), batch_size):
                stop = min(start + batch_size, len(data))
                x = data.batch(start, stop).to(dev, non_blocking=True)
                out = model(x)
                if isinstance(out, (tuple, list)):
                    out = out[0]
                if out.ndim != 2 or out.shape[0] != stop - start:
                    raise DatasetError(f"the model returned shape {tuple(out.shape)} for a batch of "
                                       f"{stop - start}; expected (batch, classes) logits")
                if start == 0:
                    _check_labels(data, int(out.shape[1]))
                correct += int((out.argmax(dim=1).cpu() == data.y[start:stop]).sum())
                bar = _progress(bar, progress, started, stop, len(data))
    finally:
        if bar is not None:
            bar.close()
        if dev != home:
            model.to(home)
        model.train(was_training)
    return Accuracy(correct, len(data))


def _check_labels(data: Dataset, logits: int) -> None:
    """Refuse labels no output of the model can match (the data of another task, a wrapped negative label)."""
    low, high = int(data.y.min()), int(data.y.max())
    if low < 0:
        raise DatasetError(f"the test set has label {low}; labels are class indices 0, 1, ...")
    if high >= logits:
        raise DatasetError(f"the test set has label {high} but the model gives {logits} logits (classes "
                           f"0..{logits - 1}): the data and the model are of different tasks"
                           + (f" (the data declares {data.classes} classes)" if data.classes else ""))


def _progress(bar: Any, progress: bool | None, started: float, done: int, total: int) -> Any:
    if bar is None:
        if progress is False or (progress is None and time.perf_counter() - started < 2.0) or done >= total:
            return None
        try:
            from tqdm import tqdm
        except ImportError:  # pragma: no cover - optional extra
            return None
        bar = tqdm(total=total, unit="img", desc="evaluating", leave=False)
        bar.update(done)
        return bar
    bar.update(done - bar.n)
    return bar
