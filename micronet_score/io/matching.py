"""Matching a checkpoint's state dict to a model: known differences resolved, the rest refused with a diff.

Resolved: masks saved by ``torch.nn.utils.prune`` (``weight_orig`` and ``weight_mask`` folded into ``weight``
when the model has a plain weight); a prefix on every key, or missing from every key, such as ``module.``
from ``nn.DataParallel``/DDP or ``_orig_mod.`` from ``torch.compile`` (applied only when it makes every key
and shape match). Refused: missing, unexpected or mis-shaped keys (with a hint when a prefix explains part of
it), sparse tensors, complex values for a real parameter. Noted: values stored in another floating dtype than
the model's (e.g. float16 weights loaded into a float32 model).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from micronet_score.errors import CheckpointError
from micronet_score.io.files import clean

__all__ = ["Match", "fold_prune_masks", "match_keys"]


@dataclass(frozen=True)
class Match:
    """The state dict to load and what was done to get it (``notes``: one line each)."""

    state: dict[str, torch.Tensor]
    prefix_removed: str | None
    prefix_added: str | None
    notes: tuple[str, ...]


def fold_prune_masks(state: Mapping[str, torch.Tensor],
                     expected: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``X_orig * X_mask`` as ``X`` where the model has a plain ``X`` (every pair when the model has no
    ``_orig`` parameter at all, so prefixed keys fold too); returns the folded names as well."""
    out = dict(state)
    folded = []
    model_pruned = any(k.endswith("_orig") for k in expected)
    for key in list(state):
        if not key.endswith("_orig"):
            continue
        base = key[: -len("_orig")]
        mask = state.get(base + "_mask")
        if mask is None or (model_pruned and (key in expected or base not in expected)):
            continue
        if tuple(mask.shape) != tuple(state[key].shape):
            raise CheckpointError(f"pruning mask {clean(repr(base + '_mask'))} has shape {tuple(mask.shape)} "
                                  f"but {clean(repr(key))} has {tuple(state[key].shape)}; the file is corrupt")
        out[base] = state[key] * mask
        del out[key], out[base + "_mask"]
        folded.append(base)
    return out, folded


def _strip(key: str, prefix: str) -> str:
    return key[len(prefix):] if key.startswith(prefix) else key


def _common_prefix(keys: list[str]) -> str:
    """The longest dotted prefix (ending in '.') shared by every key, '' when none."""
    if not keys:
        return ""
    parts = [k.split(".") for k in keys]
    shared = []
    for pieces in zip(*(p[:-1] for p in parts)):
        if all(x == pieces[0] for x in pieces):
            shared.append(pieces[0])
        else:
            break
    return ".".join(shared) + "." if shared else ""


def _prefix_candidates(have: list[str], want: list[str]) -> list[tuple[str, str]]:
    """(remove, add) pairs to try on checkpoint keys: strip a prefix all of them share, add one all model keys
    share, or swap one for the other."""
    ours, theirs = _common_prefix(have), _common_prefix(want)
    out: list[tuple[str, str]] = []
    for remove in _levels(ours):
        for add in _levels(theirs):
            if (remove, add) != ("", ""):
                out.append((remove, add))
    return out


def _levels(prefix: str) -> list[str]:
    pieces = prefix.split(".")[:-1] if prefix else []
    return [""] + [".".join(pieces[:i]) + "." for i in range(1, len(pieces) + 1)]


def match_keys(state: dict[str, torch.Tensor], expected: Mapping[str, torch.Tensor], name: str) -> Match:
    """``state`` renamed to ``expected``'s keys when a prefix explains the difference, or a refusal."""
    removed = added = None
    if set(state) != set(expected):
        for remove, add in _prefix_candidates(list(state), list(expected)):
            renamed = {add + _strip(k, remove): v for k, v in state.items()}
            if set(renamed) == set(expected) and _wrong_shapes(renamed, expected) == []:
                state, removed, added = renamed, remove or None, add or None
                break
    _refuse_mismatch(state, expected, name)
    notes = []
    if removed:
        notes.append(f"removed the prefix {removed!r} from every checkpoint key (a model saved inside a wrapper "
                     "such as nn.DataParallel)")
    if added:
        notes.append(f"added the prefix {added!r} to every checkpoint key to match the model")
    notes.extend(_check_values(state, expected, name))
    return Match(state, removed, added, tuple(notes))


def _wrong_shapes(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> list[str]:
    return sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))


def _listed(keys: list[str]) -> str:
    shown = ", ".join(clean(repr(k)) for k in keys[:3])
    return shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def _refuse_mismatch(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], name: str) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = _wrong_shapes(state, expected)
    if not (missing or unexpected or wrong):
        return
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} key(s): {_listed(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {_listed(unexpected)}")
    if wrong:
        k = wrong[0]
        parts.append(f"{len(wrong)} shape mismatch(es) such as {clean(repr(k))}: checkpoint "
                     f"{tuple(state[k].shape)} vs model {tuple(expected[k].shape)}")
    hint = _prefix_hint(list(state), list(expected))
    raise CheckpointError(f"{name} does not match the model, nothing was loaded: {'; '.join(parts)}.{hint} Build "
                          "the model with the same architecture and arguments the checkpoint was trained with")


def _prefix_hint(have: list[str], want: list[str]) -> str:
    best, best_hits = None, len(set(have) & set(want))
    for remove, add in _prefix_candidates(have, want):
        hits = len({add + _strip(k, remove) for k in have} & set(want))
        if hits > best_hits:
            best, best_hits = (remove, add), hits
    if best is None:
        return ""
    remove, add = best
    change = (f"replacing the prefix {remove!r} with {add!r}" if remove and add else
              f"removing the prefix {remove!r}" if remove else f"adding the prefix {add!r}")
    return (f" Hint: {change} on the checkpoint's keys matches {best_hits} of the model's {len(want)} keys "
            "(applied automatically only when it matches all of them).")


def _check_values(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], name: str) -> list[str]:
    stored: Counter[str] = Counter()
    for key, value in state.items():
        target = expected[key]
        if value.layout != torch.strided:
            raise CheckpointError(f"{name}: tensor {clean(repr(key))} is a sparse tensor ({value.layout}); load "
                                  "dense weights (save t.to_dense()), the count prices sparsity from the zeros")
        if value.is_complex() and not target.is_complex():
            raise CheckpointError(f"{name}: tensor {clean(repr(key))} holds complex values but the model's is "
                                  f"{str(target.dtype).removeprefix('torch.')}; loading would drop the imaginary "
                                  "part, refused")
        if value.dtype != target.dtype and value.is_floating_point() and target.is_floating_point():
            stored[f"{str(value.dtype).removeprefix('torch.')} -> {str(target.dtype).removeprefix('torch.')}"] += 1
    notes = []
    for change, n in sorted(stored.items()):
        src, dst = change.split(" -> ")
        exact = _exact(src, dst)
        notes.append(f"the checkpoint stores {n} tensor(s) as {src}; loaded into the model's {dst} "
                     f"({'every value exact' if exact else 'values rounded'}); the count prices the model's "
                     "dtype unless bit widths are given (bits= / --bits)")
    return notes


_WIDTH = {"float16": 16, "bfloat16": 16, "float32": 32, "float64": 64}


def _exact(src: str, dst: str) -> bool:
    if src == dst:
        return True
    if dst == "float64":
        return src in _WIDTH
    if dst == "float32":
        return src in ("float16", "bfloat16") or src.startswith("float8")
    return src.startswith("float8") and dst in ("float16", "bfloat16")
