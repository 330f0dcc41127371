"""``save_submission`` / ``load_submission``: weights plus the recipe that rebuilds the exact model.

A submission is a folder holding ``submission.toml`` and the weights (``weights.safetensors`` when safetensors is
installed, else a weights-only ``weights.pt``). A submission supplies only what cannot change how it is scored:
``model`` (a zoo name; Python code only where the organizer sets ``allow_code = true``), ``weights`` (a file inside
the folder), ``args`` (plain values: bool, int, float, str or lists of those) and ``compress`` (the recorded
prune/quantize configs); or ``program``, an exported program (``.pt2``) inside the folder. Any other key
(``input``, ``preprocessing``, ``rules``, a typo) is refused: the organizer decides the counting input (one
example of the test data), the preprocessing and the rule set.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from micronet_score.organizer.builders import apply_compression, build_model, compression_of
from micronet_score.organizer.errors import SubmissionError

SUBMISSION_FILE = "submission.toml"
#: The keys a ``submission.toml`` may hold.
SUBMISSION_KEYS = ("model", "weights", "args", "compress", "program")


def save_submission(model: torch.nn.Module, path: str | Path, *, model_name: str | None = None,
                    args: Mapping[str, Any] | None = None, export: Any = None) -> Path:
    """Write ``model``'s weights and recipe to the folder ``path``; returns the path of ``submission.toml``.

    The recipe's model is ``model_name`` (a zoo name, or ``file.py:factory`` for challenges that allow code)
    with ``args``, or what ``micronet_score.models.build`` recorded on the model; the prune/quantize configs
    applied to it are recorded too, so ``micronet-score eval path`` rebuilds the model, quantizers included
    (fake quantizers also record their bit widths in the weights).

    ``export=(1, 3, 32, 32)`` (a shape, or an example input tensor of the shape that is scored) writes an
    exported program instead (``torch.export`` in eval mode, the batch dimension dynamic): ``model.pt2`` and
    ``program = "model.pt2"``, for models that are not on the challenge's list; the scorer evaluates and counts
    that graph, with no code of the participant's. A model that cannot be exported raises
    :class:`SubmissionError` with torch's reason and the ways out, before any file is written.

    >>> import tempfile, micronet_score as ms
    >>> model = ms.models.build("densenet-seed")
    >>> out = save_submission(model, tempfile.mkdtemp(), model_name="densenet-seed", args={"num_classes": 10})
    >>> out.name
    'submission.toml'
    """
    folder = Path(path)
    if export is not None:
        from micronet_score.organizer.programs import export_model

        program = export_model(model, export)
        folder.mkdir(parents=True, exist_ok=True)
        torch.export.save(program, str(folder / PROGRAM_FILE))
        out = folder / SUBMISSION_FILE
        out.write_text(to_toml({"program": PROGRAM_FILE}), encoding="utf-8")
        return out
    built = getattr(model, "micronet_build", None) or {}
    name = model_name or built.get("model")
    if not name:
        raise SubmissionError("save_submission needs the model's recipe: build it with "
                              "micronet_score.models.build or pass model_name= (a zoo name or module:factory)")
    recipe_args = dict(args if args is not None else built.get("args", {}))
    check_args(recipe_args, "save_submission")
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
    configs = compression_of(model)
    if configs:
        entry["compress"] = configs
    out = folder / SUBMISSION_FILE
    out.write_text(to_toml(entry), encoding="utf-8")
    return out


PROGRAM_FILE = "model.pt2"


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


def is_code(spec: str) -> bool:
    """Whether a ``model`` value names Python code (``file.py:factory`` / ``pkg.module:factory``), not a zoo
    model."""
    from micronet_score import models

    return spec not in models.names()


def check_args(args: Any, where: str) -> dict[str, Any]:
    """``args`` as a dict of plain values (bool, int, float, str, or lists of those), else a refusal naming the
    argument."""
    if not isinstance(args, Mapping):
        raise SubmissionError(f"{where}: args must be a table of plain values, got {type(args).__name__}")
    for key, value in args.items():
        items = value if isinstance(value, list) else [value]
        bad = next((v for v in items if not isinstance(v, (bool, int, float, str))), None)
        if bad is not None or not isinstance(key, str):
            raise SubmissionError(f"{where}: args.{key} is a {type(bad).__name__}; arguments may only be bool, "
                                  "int, float, str or lists of those")
    return dict(args)


def inside(base: Path, rel: Any, what: str) -> Path:
    """``base / rel`` when ``rel`` is a relative path that stays inside ``base`` (symlinks resolved) and names a
    regular file; else a refusal naming the key (never the file's contents)."""
    if not isinstance(rel, str) or not rel:
        raise SubmissionError(f"{what} must be a file name inside the submission folder, got "
                              f"{type(rel).__name__}")
    path = Path(rel)
    if path.is_absolute() or rel.startswith(("/", "\\")) or ".." in path.parts or ":" in path.parts[0]:
        raise SubmissionError(f"{what} = {rel!r} must be a relative path inside the submission folder "
                              "(no absolute path, no '..')")
    root = base.resolve()
    full = (base / path).resolve()
    if full != root and root not in full.parents:
        raise SubmissionError(f"{what} = {rel!r} leaves the submission folder (a symlink pointing outside)")
    if not full.is_file():
        raise SubmissionError(f"{what} = {rel!r} is not a file in the submission folder")
    return full


def check_submission(entry: Mapping[str, Any], base: Path, *, allow_code: bool = False,
                     models: Sequence[str] | None = None, where: str = SUBMISSION_FILE) -> dict[str, Any]:
    """The keys of a participant's ``submission.toml`` checked against the trust model (see the module's
    docstring); returns them with ``weights``/``program`` as given. ``allow_code``: the organizer lets
    ``file.py:factory`` models (a file inside the folder) run, in a child process. ``models``: the challenge's
    list of zoo names a submission may use (None: any zoo model)."""
    unknown = sorted(str(k) for k in entry if k not in SUBMISSION_KEYS)
    if unknown:
        raise SubmissionError(f"{where}: key {unknown[0]!r} is not accepted in a submission (accepted: "
                              f"{', '.join(SUBMISSION_KEYS)}); the organizer sets the counting input, "
                              "preprocessing and rules")
    out = dict(entry)
    if "program" in out:
        if "model" in out or "weights" in out:
            raise SubmissionError(f"{where}: an exported program (program = ...) carries its model and weights; "
                                  "drop model/weights")
        inside(base, out["program"], "program")
        return out
    if "model" not in out or "weights" not in out:
        raise SubmissionError(f"{where}: a submission needs 'model' and 'weights' keys (or 'program')")
    spec = out["model"]
    if not isinstance(spec, str):
        raise SubmissionError(f"{where}: model must be a string, got {type(spec).__name__}")
    inside(base, out["weights"], "weights")
    out["args"] = check_args(out.get("args") or {}, where)
    compress = out.get("compress") or []
    if not isinstance(compress, list) or not all(isinstance(c, Mapping) for c in compress):
        raise SubmissionError(f"{where}: compress must be a list of tables (the recorded configs)")
    if models is not None and not is_code(spec) and spec not in models:
        raise SubmissionError(f"{where}: model = {spec!r} is not on this challenge's list ({', '.join(models)})")
    if is_code(spec):
        target = spec.rpartition(":")[0]
        if not allow_code:
            raise SubmissionError(f"{where}: model = {spec!r} is Python code, which submissions may not run "
                                  "here: use a zoo model, or an exported program; the organizer can allow code "
                                  "with allow_code = true or eval --allow-code (it then runs in a child process that only exports "
                                  "the model)")
        if not target.endswith(".py"):
            raise SubmissionError(f"{where}: model = {spec!r}: a submission's code must be a file.py:factory in "
                                  "its folder (pkg.module:factory belongs to the organizer's manifest)")
        inside(base, target, "model file")
    return out


def read_submission(path: str | Path, *, allow_code: bool = False,
                    models: Sequence[str] | None = None) -> tuple[dict[str, Any], Path]:
    """The entry recorded in a submission folder (or its ``submission.toml``), checked by
    :func:`check_submission`, and the folder its paths are relative to."""
    path = Path(path)
    file = path / SUBMISSION_FILE if path.is_dir() else path
    entry = read_toml(file)
    return check_submission(entry, file.parent, allow_code=allow_code, models=models, where=str(file)), file.parent


def model_list(table: Mapping[str, Any], where: str) -> list[str] | None:
    """A manifest's / ``challenge.toml``'s ``models = [...]``: the zoo names submissions may use (None: any)."""
    from micronet_score import models as zoo

    names = table.get("models")
    if names is None:
        return None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise SubmissionError(f"{where}: models must be a list of zoo model names")
    unknown = [n for n in names if n not in zoo.names()]
    if unknown:
        raise SubmissionError(f"{where}: models lists {unknown[0]!r}, which is not a zoo model")
    return names


def load_submission(path: str | Path, *, allow_code: bool = False, **load_options: Any) -> torch.nn.Module:
    """Rebuild the model of a submission folder and load its weights (``load_options`` go to
    :func:`micronet_score.load_weights`). ``allow_code=True`` imports a ``file.py:factory`` model in this
    process: only for code you trust (the scorers run it in a child process instead)."""
    entry, base = read_submission(path, allow_code=allow_code)
    if "program" in entry:
        from micronet_score.organizer.programs import load_program

        return load_program(base / entry["program"]).module()
    return rebuild(entry, base, **load_options)


def rebuild(entry: Mapping[str, Any], base: Path, **load_options: Any) -> torch.nn.Module:
    """The model of a manifest/submission entry: built, compressed as recorded, weights loaded (in this
    process: check the entry first)."""
    return rebuild_in_process(entry, base, None, **load_options)[0]


def rebuild_in_process(entry: Mapping[str, Any], base: Path, shape: Sequence[int] | None,
                       **load_options: Any) -> tuple[torch.nn.Module, list[str]]:
    """The model of an entry and the weights loader's notes. ``shape``: the counting input (the organizer's),
    used to replay compression that needs an example; None: the zoo model's input size. ``entry["bits"]`` (an
    int, or ``[weight, activation]``) states the widths of a fake-quant checkpoint that does not record them."""
    from micronet_score import models
    from micronet_score.loading import load_checkpoint, read_state_dict

    spec = str(entry["model"])
    model = build_model(spec, entry.get("args") or {}, base)
    if shape is None:
        shape = models.input_size(spec) if spec in models.names() else None
    configs = entry.get("compress") or []
    weights = base / str(entry["weights"]) if entry.get("weights") else None
    if configs:
        # weights saved after finalize_ hold plain tensors (no *_orig/*_mask): rebuild the same way
        finalized = weights is not None and not any(k.endswith("_orig") for k in read_state_dict(weights))
        apply_compression(model, configs, shape, finalize=finalized)
    notes: list[str] = []
    if weights is not None:
        if entry.get("bits") is not None and "fake_quant" not in load_options:
            load_options["fake_quant"] = fake_quant_config(entry["bits"])
        notes = list(load_checkpoint(model, weights, **load_options).notes)
    return model, notes


def fake_quant_config(bits: Any) -> Any:
    """``FakeQuant`` for a stated width: ``N`` (weights and activations) or ``[weight, activation]``."""
    from micronet_score.compress import FakeQuant
    from micronet_score.errors import MicronetError

    pair = bits if isinstance(bits, (list, tuple)) else [bits, bits]
    if len(pair) != 2 or not all(isinstance(b, int) and not isinstance(b, bool) for b in pair):
        raise SubmissionError(f"bits must be an int or [weight, activation] ints, got {bits!r}")
    try:
        return FakeQuant(weight_bits=pair[0], act_bits=pair[1])
    except MicronetError as exc:
        raise SubmissionError(f"bits = {bits!r}: {exc}") from None


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
