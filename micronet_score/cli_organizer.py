"""The organizer's verbs of the ``micronet-score`` command: ``eval``, ``leaderboard``, ``codabench``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def load_options(allow: list[str]) -> dict[str, Any]:
    """``allow_globals=`` for ``load_weights`` when globals were opted in (and this version supports it)."""
    import inspect

    from micronet_score.cli_common import CliError
    from micronet_score.loading import load_weights

    if not allow:
        return {}
    if "allow_globals" not in inspect.signature(load_weights).parameters:
        raise CliError("--allow-global is not supported by this micronet-score's checkpoint loader")
    return {"allow_globals": tuple(allow)}


def _eval(args: argparse.Namespace) -> int:
    from micronet_score import api, models
    from micronet_score.cli_common import (
        CliError,
        describe_run,
        get_rules,
        parse_kwargs,
        parse_shape,
        resolve_model,
    )
    from micronet_score.loading import load_weights
    from micronet_score.organizer.datasets import read_dataset
    from micronet_score.organizer.evaluation import evaluate, resolve_device
    from micronet_score.organizer.scoring import preprocessing_for
    from micronet_score.organizer.submissions import read_submission, rebuild

    ruleset = get_rules(args.rules)
    resolve_device(args.device)
    kwargs = parse_kwargs(args.arg)
    target = Path(args.model)
    entry: dict[str, Any] = {}
    if target.is_dir() or target.suffix == ".toml":
        if args.weights or kwargs:
            raise CliError("a submission folder carries its own weights and arguments; drop --weights/--arg")
        entry, base = read_submission(target)
        model = rebuild(entry, base, **load_options(args.allow_global))
        weights = str(base / entry["weights"])
        spec = str(entry["model"])
        kwargs = dict(entry.get("args") or {})
        default_shape = entry.get("input") or (models.input_size(spec) if spec in models.names() else None)
    else:
        model, default_shape = resolve_model(args.model, kwargs)
        weights = args.weights
        if weights:
            load_weights(model, weights, **load_options(args.allow_global))
    shape = parse_shape(args.input) if args.input else default_shape
    if shape is None and ruleset is not None:
        shape = ruleset.input_size
    if shape is None:
        raise CliError(f"{args.model} needs --input (a shape such as 1,3,32,32)")
    if ruleset is not None and not args.data and args.accuracy is None:
        raise CliError("eval scores a measured accuracy: pass --data (the test set) or --accuracy (e.g. "
                       "9010/10000); to count only, use micronet-score count")
    if args.data and args.accuracy is not None:
        raise CliError("pass --data (measure the accuracy) or --accuracy (give it), not both")
    accuracy: Any = None
    pre = data = None
    mismatch = None
    if args.data:
        from micronet_score.organizer.datasets import Preprocessing
        from micronet_score.rules.task import dataset_mismatch

        pre = preprocessing_for(ruleset, {}, entry) if ruleset is not None else Preprocessing()
        data = read_dataset(args.data, args.dataset, pre)  # the format is read from the content
        if ruleset is not None:
            mismatch = dataset_mismatch(ruleset, _DATA_NAMES.get(data.format), data.classes)
        if mismatch and not args.allow_dataset_mismatch:
            raise CliError(f"{mismatch}: score it under a rule set of that task, or pass --allow-dataset-mismatch "
                           "to score it anyway")
        accuracy = evaluate(model, data, batch_size=args.batch_size, device=args.device).as_tuple()
    elif args.accuracy is not None:
        from micronet_score import rules as rules_mod

        try:
            rules_mod.accuracy_fraction(args.accuracy)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        accuracy = args.accuracy
    options: dict[str, Any] = {}
    if ruleset is not None:
        options["convention"] = ruleset.counting
    report = api.count(model, tuple(shape), **options)
    result = None
    if ruleset is not None:
        result = api.score(report, rules=ruleset, accuracy=accuracy)
    used = _preprocessing_line(pre, ruleset)
    if args.json:
        from micronet_score.organizer.datasets import preprocessing_dict

        payload: dict[str, Any] = {"report": report.to_dict(),
                                   "score": None if result is None else result.to_dict()}
        payload.update(describe_run(str(entry.get("model") or args.model), kwargs, weights, ruleset, report,
                                    accuracy))
        payload["data"] = None if data is None else {"path": str(args.data), "format": data.format,
                                                     "classes": data.classes, "examples": len(data)}
        payload["preprocessing"] = None if pre is None else {**preprocessing_dict(pre), "from": used[1]}
        payload["dataset_mismatch"] = mismatch
        if ruleset is None:
            payload["note"] = "no rule set applied (pass --rules to score)"
        print(json.dumps(payload, indent=2))
    else:
        print(report.summary())
        if pre is not None:
            print(f"preprocessing: {used[0]} ({used[1]})")
        if isinstance(accuracy, tuple) and args.data:
            from micronet_score.organizer.evaluation import Accuracy

            print(f"top-1 accuracy: {Accuracy(*accuracy)}")
        if mismatch:
            print(f"warning: {mismatch} (--allow-dataset-mismatch)")
        if result is not None:
            print(result)
        else:
            print("rules: none applied (pass --rules to score)")
    return 3 if result is not None and result.passed is False else 0


_DATA_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


def _preprocessing_line(pre: Any, ruleset: Any) -> tuple[str, str]:
    """The preprocessing as one phrase, and where it came from."""
    from micronet_score.organizer.datasets import describe_preprocessing

    if pre is None:
        return "", ""
    origin = f"rule set {ruleset.name}" if ruleset is not None else "no rule set: pixels scaled only, no normalisation"
    return describe_preprocessing(pre), origin


def _leaderboard(args: argparse.Namespace) -> int:
    import sys

    from micronet_score.organizer.ranking import leaderboard
    from micronet_score.organizer.runner import BoardInterrupted

    try:
        board = leaderboard(args.manifest, args.out, workers=args.workers, scheduler=args.scheduler,
                            against=args.against, batch_size=args.batch_size, device=args.device,
                            entry_timeout=args.entry_timeout, entry_memory=args.entry_memory)
    except BoardInterrupted as exc:
        print(f"micronet-score: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("micronet-score: interrupted before any entry was scored; run the same command to start again",
              file=sys.stderr)
        return 130
    print(board)
    print()
    print(f"scored {board.scored} new entr{'y' if board.scored == 1 else 'ies'}; wrote "
          + ", ".join(str(p) for p in board.outputs.values()))
    if board.unscored:
        print(f"micronet-score: {board.unscored} entr{'y was' if board.unscored == 1 else 'ies were'} not scored "
              "(the machinery failed, see their rows); the same command retries them", file=sys.stderr)
        return 1
    return 0


def _codabench(args: argparse.Namespace) -> int:
    from micronet_score.organizer.codabench import run_codabench

    row = run_codabench(args.input_dir, args.output_dir, device=args.device)
    print(f"score {row['score']:.6f}, accuracy {row['correct']:,} of {row['total']:,}")
    return 0


def add_organizer_verbs(sub: Any) -> None:
    """Register ``eval``, ``leaderboard`` and ``codabench`` on the ``micronet-score`` sub-parsers."""
    from micronet_score.cli_common import parse_accuracy

    ev = sub.add_parser("eval", help="measure a model's top-1 accuracy on a test set and score it")
    ev.add_argument("model", help="a zoo model, module:factory / file.py:factory, or a save_submission folder")
    ev.add_argument("--weights", help="checkpoint to load (state dict, .pt/.pth or .safetensors)")
    ev.add_argument("--data", help="the test set: a CIFAR batch folder, a class-folder tree or an .npz file")
    ev.add_argument("--dataset", choices=("cifar10", "cifar100", "imagefolder", "npz"),
                    help="the test set's format (default: read from the data; a format given must match it)")
    ev.add_argument("--accuracy", type=parse_accuracy,
                    help="score this accuracy instead of measuring it: a fraction (0.9012) or 9010/10000")
    ev.add_argument("--allow-dataset-mismatch", action="store_true",
                    help="score data of another task than the rule set's (CIFAR-10 under CIFAR-100 rules)")
    ev.add_argument("--rules", help="score against this rule set (name or .toml file)")
    ev.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE",
                    help="keyword argument for the model builder (repeatable)")
    ev.add_argument("--input", help="input shape for counting, e.g. 1,3,32,32")
    ev.add_argument("--batch-size", type=int, default=256)
    ev.add_argument("--device", default="cpu", help="cpu or cuda")
    ev.add_argument("--json", action="store_true", help="print everything as JSON")
    ev.add_argument("--allow-global", action="append", default=[], metavar="MOD.CLASS",
                    help="let the checkpoint unpickle this global (repeatable; only for files you trust)")
    ev.set_defaults(func=_eval)
    lb = sub.add_parser("leaderboard", help="score every entry of a manifest and write the leaderboard")
    lb.add_argument("manifest", help="the challenge manifest (TOML)")
    lb.add_argument("--out", help="output folder (default: the manifest's folder)")
    lb.add_argument("--workers", type=int, default=1, help="local processes scoring entries in parallel")
    lb.add_argument("--scheduler", help="a Dask distributed scheduler address, e.g. tcp://host:8786")
    lb.add_argument("--against", help="place entries among a published leaderboard, e.g. micronet-2019-cifar100")
    lb.add_argument("--batch-size", type=int, default=256)
    lb.add_argument("--device", default="cpu", help="cpu or cuda")
    lb.add_argument("--entry-timeout", type=float, default=600.0, metavar="SECONDS",
                    help="wall time per entry, process start to row (default 600; 0: no limit)")
    lb.add_argument("--entry-memory", default="8GiB", metavar="SIZE",
                    help="address space per entry, e.g. 8GiB (the default), 512MiB or none; not applied with "
                         "--device cuda")
    lb.set_defaults(func=_leaderboard)
    cb = sub.add_parser("codabench", help="the scoring program of a Codabench / CodaLab competition")
    cb.add_argument("input_dir", help="holds res/ (the submission) and ref/challenge.toml")
    cb.add_argument("output_dir", help="where scores.json and detailed_results.html go")
    cb.add_argument("--device", default="cpu", help="cpu or cuda")
    cb.set_defaults(func=_codabench)
