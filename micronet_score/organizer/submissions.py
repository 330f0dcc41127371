"""``save_submission`` / ``load_submission``: weights plus the recipe that rebuilds the exact model.

A submission is a folder holding ``submission.toml`` (the keys of one leaderboard manifest entry: ``model``,
``weights``, ``args``, ``input``, ``compress``) and the weights (``weights.safetensors`` when safetensors is
installed, else a weights-only ``weights.pt``); with ``save_submission(..., export=example)`` also the
exported program ``model.pt2`` (key ``program``).
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from micronet_score.organizer.builders import apply_compression, build_model, compression_of
from micronet_score.organizer.errors import SubmissionError

SUBMISSION_FILE = "submission.toml"


def save_submission(model: torch.nn.Module, path: str | Path, *, model_name: str | None = None,
                    args: Mapping[str, Any] | None = None, input: Sequence[int] | None = None,
                    export: Any = None) -> Path:
    """Write ``model``'s weights and recipe to the folder ``path``; returns the path of ``submission.toml``.

    The recipe's model is ``model_name`` (a zoo name or ``module:factory``) with ``args``, or what
    ``micronet_score.models.build`` recorded on the model; the prune/quantize configs applied to it are recorded
    too, so ``micronet-score eval path`` rebuilds the model, quantizers included.

    ``export=example`` (an input tensor, or a tuple of them, of the shape that is scored) also writes the
    model as an exported program, ``model.pt2`` (``torch.export``, in eval mode), recorded as
    ``program = "model.pt2"``: the organizer can then evaluate and count that graph without any code of
    yours. A model that cannot be exported raises :class:`SubmissionError` with torch's reason, before any file
    is written.

    >>> import tempfile, micronet_score as ms
    >>> model = ms.models.build("densenet-seed")
    >>> out = save_submission(model, tempfile.mkdtemp(), model_name="densenet-seed", args={"num_classes": 10})
    >>> out.name
    'submission.toml'
    """
    built = getattr(model, "micronet_build", None) or {}
    name = model_name or built.get("model")
    if not name:
        raise SubmissionError("save_submission needs the model's recipe: build it with "
                              "micronet_score.models.build or pass model_name= (a zoo name or module:factory)")
    recipe_args = dict(args if args is not None else built.get("args", {}))
    program = export_program(model, export) if export is not None else None
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    try:
        from safetensors.torch import save_file
    except ImportError:  # pragma: no cover - optional extra
        weights = folder / "weights.pt"
        torch.save(state, weights)
    else:
        weights = folder / "weights.safetensors"
        save_file(state, str(weights))
    entry: dict[str, Any] = {"model": name, "weights": weights.name, "args": recipe_args}
    if input is not None:
        entry["input"] = [int(s) for s in input]
    configs = compression_of(model)
    if configs:
        entry["compress"] = configs
    if program is not None:
        torch.export.save(program, str(folder / PROGRAM_FILE))
        entry["program"] = PROGRAM_FILE
    out = folder / SUBMISSION_FILE
    out.write_text(to_toml(entry), encoding="utf-8")
    return out


PROGRAM_FILE = "model.pt2"


def export_program(model: torch.nn.Module, example: Any) -> Any:
    """``torch.export.export`` of ``model`` in eval mode on ``example`` (a tensor or a tuple of them), its
    training flags put back after; an export that fails is a one-line :class:`SubmissionError` with the usual
    ways out."""
    args = tuple(example) if isinstance(example, (tuple, list)) else (example,)
    if not args or not all(isinstance(a, torch.Tensor) for a in torch.utils._pytree.tree_leaves(args)):
        raise SubmissionError("export= needs an example input: a tensor (or a tuple of tensors) of the shape "
                              "that is scored, e.g. export=torch.randn(1, 3, 32, 32)")
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notices while tracing are not the user's concern
            return torch.export.export(model, args)
    except Exception as exc:  # noqa: BLE001 - every export failure gets the same way out
        text = str(exc).strip()
        first = text.splitlines()[0].strip() if text else type(exc).__name__
        raise SubmissionError(
            f"the model cannot be exported (torch.export: {type(exc).__name__}: {first[:300]}); make the forward "
            "exportable: no Python control flow on tensor values (use torch.cond), no .item()/.tolist() or "
            "other data-dependent shapes, the static input shape that is scored; or leave export= out to "
            "submit weights only") from None
    finally:
        for module, training in flags:
            module.training = training


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict, with a one-line error naming the file when it is not valid TOML."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    if not path.is_file():
        raise SubmissionError(f"{str(path)!r} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{path}: not valid TOML: {exc}") from None


def read_submission(path: str | Path) -> tuple[dict[str, Any], Path]:
    """The entry recorded in a submission folder (or its ``submission.toml``) and the folder its paths are
    relative to."""
    path = Path(path)
    file = path / SUBMISSION_FILE if path.is_dir() else path
    entry = read_toml(file)
    if "model" not in entry or "weights" not in entry:
        raise SubmissionError(f"{file}: a submission needs 'model' and 'weights' keys")
    return entry, file.parent


def load_submission(path: str | Path, **load_options: Any) -> torch.nn.Module:
    """Rebuild the model of a submission folder and load its weights (``load_options`` go to
    :func:`micronet_score.load_weights`)."""
    entry, base = read_submission(path)
    return rebuild(entry, base, **load_options)


def rebuild(entry: Mapping[str, Any], base: Path, **load_options: Any) -> torch.nn.Module:
    """The model of a manifest/submission entry: built, compressed as recorded, weights loaded."""
    from micronet_score import models
    from micronet_score.loading import load_weights, read_state_dict

    spec = str(entry["model"])
    model = build_model(spec, entry.get("args") or {}, base)
    input_size = entry.get("input") or (models.input_size(spec) if spec in models.names() else None)
    configs = entry.get("compress") or []
    weights = base / str(entry["weights"]) if entry.get("weights") else None
    if configs:
        # weights saved after finalize_ hold plain tensors (no *_orig/*_mask): rebuild the same way
        finalized = weights is not None and not any(k.endswith("_orig") for k in read_state_dict(weights))
        apply_compression(model, configs, input_size, finalize=finalized)
    if weights is not None:
        load_weights(model, weights, **load_options)
    return model


def to_toml(table: Mapping[str, Any]) -> str:
    """A flat table of JSON-like values as TOML (nested tables inline, lists of tables as arrays of tables)."""
    lines = []
    arrays = []
    for key, value in table.items():
        if value is None:
            continue
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            arrays.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, items in arrays:
        for item in items:
            lines.append(f"\n[[{_key(key)}]]")
            lines.extend(f"{_key(k)} = {_value(v)}" for k, v in item.items() if v is not None)
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value if v is not None) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items() if v is not None) + " }"
    raise SubmissionError(f"cannot write {type(value).__name__} value {value!r} to a submission file")
