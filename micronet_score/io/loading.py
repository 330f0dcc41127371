"""Loading a submitted checkpoint into a model: safely, strictly, and saying what was done.

Accepted: a bare state dict, or one under ``"state_dict"``, ``"model"`` or ``"model_state_dict"``; a torch zip
(``torch.save``), torch's legacy pickle format, or safetensors; ``module.`` (DataParallel/DDP) or any other
prefix on, or missing from, every key; pruned state dicts (``weight_orig`` + ``weight_mask``); float16 or
bfloat16 values for a float32 model; the fake-quant buffers :func:`micronet_score.compress.quantize_` saves
(the same quantizers are applied to the model first, at the
bit widths the file records; a fake-quant file that does not record them is refused unless ``fake_quant=``
states them). Anything else is refused with one line and nothing is
loaded: see :mod:`micronet_score.io.matching` and :mod:`micronet_score.io.torch_zip`.

>>> import os, tempfile, torch
>>> from torch import nn
>>> from micronet_score.io import load_checkpoint
>>> path = os.path.join(tempfile.mkdtemp(), "dp.pt")
>>> torch.save(nn.DataParallel(nn.Linear(2, 3)).state_dict(), path)  # keys 'module.weight', 'module.bias'
>>> loaded = load_checkpoint(nn.Linear(2, 3), path)
>>> loaded.prefix_removed, len(loaded.notes)
('module.', 1)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from micronet_score.errors import CheckpointError
from micronet_score.io.fake_quant import apply_fake_quant, plan_fake_quant
from micronet_score.io.files import clean, open_regular
from micronet_score.io.limits import DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_INFLATED_BYTES, Limits
from micronet_score.io.matching import fold_prune_masks, match_keys
from micronet_score.io.safetensors_reader import load_safetensors
from micronet_score.io.sniff import sniff
from micronet_score.io.torch_zip import inspect_zip, load_torch
from micronet_score.io.unwrap import unwrap

__all__ = ["LoadNote", "Loaded", "load_checkpoint", "load_weights", "read_state_dict"]

PathLike = str | bytes | os.PathLike[str]


class LoadNote(UserWarning):
    """Something :func:`load_weights` did that changes how the checkpoint is read (a prefix removed, a dtype
    converted, quantizers applied with assumed bit widths)."""


@dataclass(frozen=True)
class Loaded:
    """The outcome of :func:`load_checkpoint`: the model (loaded in place) and what was done, one note a line."""

    model: torch.nn.Module
    path: str
    format: str
    source_key: str | None
    prefix_removed: str | None
    prefix_added: str | None
    folded_masks: tuple[str, ...]
    fake_quant: Any
    notes: tuple[str, ...]


def _read(path: PathLike, allow_globals: Sequence[str], limits: Limits) -> tuple[dict[str, torch.Tensor], str,
                                                                                 str | None, str]:
    with open_regular(path) as opened:
        kind = sniff(opened)
        if kind == "safetensors":
            return load_safetensors(opened, limits), kind, None, opened.name
        mmap = False
        if kind == "torch-zip":
            mmap = inspect_zip(opened, limits).inflated_bytes == 0
        obj = load_torch(opened, mmap=mmap, allow_globals=allow_globals)
        state, source_key = unwrap(opened.name, obj)
        return dict(state), kind, source_key, opened.name


def _refuse_unplaceable(plan: Any, modules: dict[str, torch.nn.Module], name: str) -> None:
    """Refuse, before the model is touched, quantizer state that ``quantize_`` would give no place to."""
    from micronet_score.compress.fakequant import FAKE_QUANT_CLASSES

    odd = [layer for layer in plan.layers if type(modules[layer]) not in FAKE_QUANT_CLASSES]
    if odd:
        raise CheckpointError(f"{name} holds fake-quant buffers for layer {clean(repr(odd[0]))} "
                              f"({type(modules[odd[0]]).__name__}), but quantize_ fake-quantizes only layers of "
                              "exact type nn.Conv1d/2d/3d or nn.Linear; nothing was loaded: the checkpoint was not "
                              "saved from this model")
    if plan.config.act_bits is None:
        raise CheckpointError(f"{name} holds activation ranges (*.input_fake_quant.min_val/max_val) but "
                              "fake_quant has act_bits=None, which installs no activation quantizer to load them "
                              "into; nothing was loaded: state the activation bits the model was saved with")


class _Undo:
    """Puts back what installing fake quantizers changes: each layer's class and submodules, the record."""

    def __init__(self, model: torch.nn.Module, layers: Sequence[str]) -> None:
        from micronet_score.compress.history import ATTRIBUTE

        self._attribute = ATTRIBUTE
        self._model = model
        self._record = model.__dict__.get(ATTRIBUTE, _MISSING)
        modules = dict(model.named_modules())
        self._layers = [(modules[n], type(modules[n]), dict(modules[n]._modules)) for n in layers if n in modules]

    def __call__(self) -> None:
        for module, cls, children in self._layers:
            module.__class__ = cls
            module._modules.clear()
            module._modules.update(children)
        if self._record is _MISSING:
            self._model.__dict__.pop(self._attribute, None)
        else:
            self._model.__dict__[self._attribute] = self._record


_MISSING = object()


def read_state_dict(path: PathLike, *, allow_globals: Sequence[str] = (),
                    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
                    max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES) -> dict[str, torch.Tensor]:
    """The state dict stored at ``path`` (a PyTorch file or safetensors), never executing pickled code.

    Accepts a bare state dict or a dict holding one under ``"state_dict"``, ``"model"`` or
    ``"model_state_dict"``. ``allow_globals`` names classes (``"mod.Class"``) the pickle may use;
    ``max_header_bytes``/``max_inflated_bytes`` are the limits of :class:`~micronet_score.io.Limits`.
    """
    return _read(path, allow_globals, Limits(max_header_bytes, max_inflated_bytes))[0]


def load_checkpoint(model: torch.nn.Module, path: PathLike, *, allow_globals: Sequence[str] = (),
                    fake_quant: Any = None, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
                    max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES) -> Loaded:
    """Load the checkpoint at ``path`` into ``model`` (in place) strictly, and say what was done.

    Every key and shape must match after the resolutions the module docstring lists; otherwise a
    :class:`~micronet_score.errors.CheckpointError` with the diff is raised and the model is left untouched.
    ``fake_quant`` (a :class:`~micronet_score.compress.FakeQuant`) states the quantizers of a fake-quantized
    checkpoint that does not record its bit widths (they are never assumed).
    """
    state, kind, source_key, name = _read(path, allow_globals, Limits(max_header_bytes, max_inflated_bytes))
    expected = model.state_dict()
    state, folded = fold_prune_masks(state, expected)
    modules = dict(model.named_modules())
    if not any(_is_grid_key(k) for k in state):  # a file from before quantizers recorded their grid: the
        expected = {k: v for k, v in expected.items() if not _is_grid_key(k)}  # model's own quantizers state it
    plan = plan_fake_quant(state, expected, modules, fake_quant, name)
    if plan is not None:
        _refuse_unplaceable(plan, modules, name)
        expected = dict(expected)
        for key in plan.keys:  # the entries quantize_ will add: shapes as saved (scalars)
            expected[key] = state[key]
    match = match_keys(state, expected, name)
    _check_grids(match.state, expected, name)
    notes = list(match.notes)
    if folded:
        notes.insert(0, f"folded {len(folded)} pruning mask(s) into their weights (weight_orig * weight_mask)")
    if plan is not None:
        notes.append(plan.describe())
    undo = _Undo(model, plan.layers if plan is not None else ())
    try:
        if plan is not None:
            apply_fake_quant(model, plan)
        with torch.no_grad():
            model.load_state_dict(match.state, strict=True)
    except Exception as error:  # validated above; anything left puts the model's structure back
        undo()
        detail = clean(" ".join(str(error).split()))[:300] or type(error).__name__
        removed = "the fake quantizers were removed again, but " if plan is not None else ""
        raise CheckpointError(f"{name} could not be loaded into the model ({type(error).__name__}: {detail}); "
                              f"{removed}values already copied stay: rebuild the model before using it") from error
    return Loaded(model, name, kind, source_key, match.prefix_removed, match.prefix_added, tuple(folded),
                  plan.config if plan is not None else None, tuple(notes))


def _is_grid_key(key: str) -> bool:
    return key.endswith(("_fake_quant.quant_min", "_fake_quant.quant_max", "_fake_quant.per_channel"))


def _check_grids(state: dict[str, torch.Tensor], expected: Any, name: str) -> None:
    """A recorded grid must equal the one of the quantizer it loads into (the model's own, already applied)."""
    for key, value in state.items():
        own = expected.get(key)
        if _is_grid_key(key) and isinstance(own, torch.Tensor) and own.numel() == 1 and (
                value.numel() != 1 or value.is_floating_point() or int(value.item()) != int(own.item())):
            raise CheckpointError(f"{name}: {key} is {value.flatten()[:3].tolist()} in the checkpoint but "
                                  f"{int(own.item())} in the model's quantizer: the file was saved at other bit "
                                  "widths; load it into a model without quantizers (they are rebuilt as saved)")


def load_weights(model: torch.nn.Module, path: PathLike, *, allow_globals: Sequence[str] = (),
                 fake_quant: Any = None, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
                 max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES) -> torch.nn.Module:
    """:func:`load_checkpoint`, returning the model; each note is issued as a :class:`LoadNote` warning.

    >>> import os, tempfile, torch
    >>> from torch import nn
    >>> path = os.path.join(tempfile.mkdtemp(), "w.pt")
    >>> torch.save({"state_dict": nn.Linear(2, 3).state_dict(), "epoch": 7}, path)
    >>> load_weights(nn.Linear(2, 3), path).weight.shape
    torch.Size([3, 2])
    """
    loaded = load_checkpoint(model, path, allow_globals=allow_globals, fake_quant=fake_quant,
                             max_header_bytes=max_header_bytes, max_inflated_bytes=max_inflated_bytes)
    for note in loaded.notes:
        warnings.warn(f"{loaded.path}: {note}", LoadNote, stacklevel=2)
    return loaded.model


