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


def parse_bits(text: str) -> tuple[int, int]:
    """``--bits``: ``"16"`` (weights and activations) or ``"8/16"`` (weight/activation)."""
    w, sep, a = text.partition("/")
    try:
        pair = (int(w), int(a) if sep else int(w))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--bits {text!r}: write N or WEIGHT/ACTIVATION, e.g. 16 or 8/16") \
            from None
    if not all(1 <= b <= 64 for b in pair):
        raise argparse.ArgumentTypeError(f"--bits {text!r}: widths are 1..64 bits")
    return pair


def _fake_quant(bits: tuple[int, int] | None) -> Any:
    """The FakeQuant stating a checkpoint's widths from ``--bits`` (None when not given or not a fake-quant
    width)."""
    if bits is None or not all(2 <= b <= 16 for b in bits):
        return None
    from micronet_score.compress import FakeQuant

    return FakeQuant(weight_bits=bits[0], act_bits=bits[1])


def print_notes(notes: Any) -> None:
    """The weights loader's notes as one ``note:`` line on stderr."""
    import sys

    if notes:
        print("micronet-score: note: " + "; ".join(notes), file=sys.stderr)


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
    from micronet_score.io.loading import load_checkpoint
    from micronet_score.organizer.datasets import read_dataset
    from micronet_score.organizer.evaluation import evaluate, resolve_device
    from micronet_score.organizer.scoring import Exported, example_shape, load_entry, preprocessing_for
    from micronet_score.organizer.submissions import read_submission

    ruleset = get_rules(args.rules)
    resolve_device(args.device)
    kwargs = parse_kwargs(args.arg)
    target = Path(args.model)
    folder = target.is_dir() or target.suffix == ".toml"
    if args.data and args.accuracy is not None:
        raise CliError("pass --data (measure the accuracy) or --accuracy (give it), not both")
    pre = data = None
    mismatch = None
    if args.data:
        from micronet_score.organizer.datasets import Preprocessing
        from micronet_score.rules.task import dataset_mismatch

        # the organizer's preprocessing: a submission cannot carry its own
        pre = preprocessing_for(ruleset, {}, {}) if ruleset is not None else Preprocessing()
        data = read_dataset(args.data, args.dataset, pre)  # the format is read from the content
        if ruleset is not None:
            mismatch = dataset_mismatch(ruleset, _DATA_NAMES.get(data.format), data.classes)
        if mismatch and not args.allow_dataset_mismatch:
            raise CliError(f"{mismatch}: score it under a rule set of that task, or pass --allow-dataset-mismatch "
                           "to score it anyway")
    entry: dict[str, Any] = {}
    exported = False
    if folder:
        if args.weights or kwargs:
            raise CliError("a submission folder carries its own weights and arguments; drop --weights/--arg")
        entry, base = read_submission(target, allow_code=args.allow_code)
        spec = str(entry.get("model") or entry.get("program"))
        # the counting input is the organizer's: --input, one example of --data, else the zoo model's / rules'
        shape = (parse_shape(args.input) if args.input else example_shape(data) if data is not None
                 else models.input_size(spec) if spec in models.names()
                 else ruleset.input_size if ruleset is not None else None)
        if shape is None:
            raise CliError(f"{args.model} needs --input (a shape such as 1,3,32,32) or --data")
        if args.bits is not None:
            entry["bits"] = list(args.bits)
        model, notes, _, exported = load_entry(
            entry, base, tuple(shape),
            {"allow_code": args.allow_code, "entry_timeout": args.entry_timeout,
             "entry_memory": _memory(args.entry_memory)}, **load_options(args.allow_global))
        weights = str(base / str(entry.get("weights") or entry.get("program")))
        kwargs = dict(entry.get("args") or {})
        print_notes(notes)
    else:
        model, default_shape = resolve_model(args.model, kwargs)
        weights = args.weights
        if weights:
            loaded = load_checkpoint(model, weights, fake_quant=_fake_quant(args.bits),
                                     **load_options(args.allow_global))
            print_notes(loaded.notes)
        shape = parse_shape(args.input) if args.input else default_shape
        if shape is None and data is not None:
            shape = example_shape(data)
        if shape is None and ruleset is not None:
            shape = ruleset.input_size
        if shape is None:
            raise CliError(f"{args.model} needs --input (a shape such as 1,3,32,32)")
    if ruleset is not None and data is None and args.accuracy is None:  # after the submission's own checks
        raise CliError("eval scores a measured accuracy: pass --data (the test set) or --accuracy (e.g. "
                       "9010/10000); to count only, use micronet-score count")
    accuracy: Any = None
    if data is not None:
        accuracy = evaluate(Exported(model) if exported else model, data, batch_size=args.batch_size,
                            device=args.device).as_tuple()
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
        payload.update(describe_run(str(entry.get("model") or entry.get("program") or args.model), kwargs,
                                    weights, ruleset, report, accuracy))
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
    for row in board.rows:  # the weights loader's notes: one line per entry that has any
        if row.get("notes"):
            print_notes([f"{row.get('name')}: {row['notes']}"])
    print(f"scored {board.scored} new entr{'y' if board.scored == 1 else 'ies'}; wrote "
          + ", ".join(str(p) for p in board.outputs.values()))
    if board.unscored:
        print(f"micronet-score: {board.unscored} entr{'y was' if board.unscored == 1 else 'ies were'} not scored "
              "(the machinery failed, see their rows); the same command retries them", file=sys.stderr)
        return 1
    return 0


def _codabench(args: argparse.Namespace) -> int:
    """``codabench ingest INPUT_DATA SUBMISSION OUTPUT``, ``codabench score INPUT OUTPUT`` (also spelled
    ``codabench INPUT OUTPUT``)."""
    from micronet_score.cli_common import CliError

    words = list(args.paths)
    if words[:1] == ["ingest"] and len(words) == 4:
        from micronet_score.organizer.codabench_ingest import run_ingestion

        done = run_ingestion(words[1], words[2], words[3], entry_timeout=args.entry_timeout,
                             entry_memory=_memory(args.entry_memory))
        print_notes(done["notes"])
        kind = {"weights": "weights copied through", "program": "exported program copied through",
                "code": "code exported to model.pt2 (in a child process)"}[done["kind"]]
        print(f"ingested: {kind}")
        return 0
    if words[:1] == ["score"] and len(words) == 3:
        words = words[1:]
    if len(words) != 2 or words[0] == "ingest":
        raise CliError("usage: micronet-score codabench ingest INPUT_DATA SUBMISSION OUTPUT | "
                       "micronet-score codabench score INPUT OUTPUT")
    from micronet_score.organizer.codabench import run_codabench

    row = run_codabench(words[0], words[1], device=args.device)
    if row.get("notes"):
        print_notes([row["notes"]])
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
    ev.add_argument("--bits", type=parse_bits, metavar="N|W/A",
                    help="bit widths of a fake-quantized checkpoint that does not record them (16, or 8/16)")
    _add_code_flags(ev, allow=True)
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
    cb = sub.add_parser("codabench", help="the ingestion and scoring programs of a Codabench competition",
                        usage="micronet-score codabench {ingest INPUT_DATA SUBMISSION OUTPUT | score INPUT OUTPUT} "
                              "[options]")
    cb.add_argument("paths", nargs="+", metavar="ingest|score ...",
                    help="ingest INPUT_DATA SUBMISSION OUTPUT: check the upload and export code (only where "
                         "INPUT_DATA/challenge.toml sets allow_code) to OUTPUT/model.pt2; score INPUT OUTPUT: "
                         "INPUT holds res/ (what is scored) and ref/challenge.toml, OUTPUT gets scores.json and "
                         "detailed_results.html (codabench INPUT OUTPUT is the same)")
    cb.add_argument("--device", default="cpu", help="cpu or cuda")
    _add_code_flags(cb, allow=False)
    cb.set_defaults(func=_codabench)


def _memory(text: str) -> int | None:
    """``--entry-memory`` in bytes (None: no limit), or a one-line usage error."""
    from micronet_score.cli_common import CliError
    from micronet_score.organizer.errors import SubmissionError
    from micronet_score.organizer.limits import parse_memory

    try:
        return parse_memory(text)
    except SubmissionError as exc:
        raise CliError(f"--entry-memory: {exc}") from None


def _add_code_flags(parser: Any, *, allow: bool) -> None:
    """``--entry-timeout``/``--entry-memory`` (and ``--allow-code``): limits of a model's code, which runs only
    where allowed, in a child process that exports the model."""
    if allow:
        parser.add_argument("--allow-code", action="store_true",
                            help="let a submission's file.py:factory run (in a child process that only exports "
                                 "the model; it can still read your files: use a container)")
    parser.add_argument("--entry-timeout", type=float, default=600.0, metavar="S",
                        help="wall-time limit of a model's code, seconds (default 600)")
    parser.add_argument("--entry-memory", default="8GiB", metavar="SIZE",
                        help="memory limit of a model's code, e.g. 8GiB (the default), 512MiB or none")
