"""The ``micronet-score`` command: a thin layer over the library API.

    micronet-score count resnet18-cifar                      # a zoo model at its input size
    micronet-score count mypkg.nets:build_model --input 1,3,32,32 --rules micronet-2019-cifar100
    micronet-score count efficientnet-b0 --json
    micronet-score models | rules
    micronet-score eval densenet-seed --weights alice.pt --data cifar-10-batches-py --rules micronet-2019-cifar100
    micronet-score leaderboard challenge.toml --out board --workers 4 --against micronet-2019-cifar100
    micronet-score codabench ingest INPUT_DATA SUBMISSION OUTPUT    # Codabench ingestion program
    micronet-score codabench score INPUT_DIR OUTPUT_DIR             # Codabench scoring program

Exit status: 0 scored (and passing when a threshold applies), 3 scored but below the threshold, 2 usage error,
1 any other failure (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import Any

import torch

from micronet_score._version import __version__
from micronet_score.cli_common import (  # noqa: F401  (re-exported: the CLI's helpers)
    CliError,
    describe_run,
    get_rules,
    parse_accuracy,
    parse_kwargs,
    parse_shape,
    resolve_model,
)
from micronet_score.errors import MicronetError


def _count(args: argparse.Namespace) -> int:
    import micronet_score as ms
    from micronet_score import rules as rules_mod

    ruleset = get_rules(args.rules)
    if args.accuracy is not None:
        if ruleset is None:
            raise CliError("--accuracy needs --rules (the threshold to check it against)")
        try:
            if not getattr(ruleset, "lower_is_better", False):  # a perplexity is not a fraction
                rules_mod.accuracy_fraction(args.accuracy)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    model, default_shape = resolve_model(args.model, parse_kwargs(args.arg))
    if args.weights:
        from micronet_score.cli_organizer import _fake_quant, print_notes
        from micronet_score.io.loading import load_checkpoint

        loaded = load_checkpoint(model, args.weights, allow_globals=args.allow_global,
                                 fake_quant=_fake_quant(args.bits))
        print_notes(loaded.notes)
    shape = parse_shape(args.input) if args.input else default_shape
    if shape is None and ruleset is not None:
        shape = ruleset.input_size
    if shape is None:
        raise CliError(f"{args.model} needs --input (a shape such as 1,3,32,32)")
    options: dict[str, Any] = {"strict": args.strict, "shapes_only": args.shapes_only}
    if args.freebie != "auto":
        options["freebie"] = args.freebie == "on"
    if args.bits is not None:
        from micronet_score.bits import Precision

        options["bits"] = {torch.nn.Module: Precision(*args.bits)}
    if ruleset is not None:
        options["rules"] = ruleset  # a course scheme (leaf modules) counts with its own counter
    report = ms.count(model, shape, **options)
    result = ms.score(report, rules=ruleset, accuracy=args.accuracy) if ruleset is not None else None
    check = ms.cross_check(model, shape, **options) if args.cross_check else None
    if args.json:
        payload: dict[str, Any] = {"report": report.to_dict()}
        if result is not None:
            payload["score"] = result.to_dict()
        payload.update(describe_run(args.model, parse_kwargs(args.arg), args.weights, ruleset, report,
                                    args.accuracy))
        if check is not None:
            payload["cross_check"] = check.to_dict()
        print(json.dumps(payload, indent=2))
    else:
        print(report.table(depth=args.depth))
        print()
        print(report.summary())
        if result is not None:
            print(result)
        if check is not None:
            print()
            print(check.table())
    return 3 if result is not None and result.passed is False else 0


def _models(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from micronet_score import models

    if getattr(args, "name", None):
        print(_model_help(args.name))
        return 0
    rows = [(name, "x".join(map(str, models.input_size(name))), desc) for name, desc in models.names().items()]
    print(tabulate(rows, headers=["model", "input", "description"]))
    return 0


def _threshold(r: Any) -> str:
    if r.threshold is None:
        return "-"
    if getattr(r, "lower_is_better", False):
        return f"{r.metric} ≤ {r.threshold:g}"
    return f"top-1 ≥ {r.threshold:.0%}"


def _model_help(name: str) -> str:
    """``micronet-score models NAME``: a builder's arguments with types and defaults, and an example command."""
    import inspect

    from tabulate import tabulate

    from micronet_score import models

    spec = models.spec(name)
    params = inspect.signature(spec.builder).parameters
    rows = [(arg, str(params[arg].annotation).replace("typing.", "") if arg in params else "", repr(default))
            for arg, default in spec.default_kwargs.items()]
    example = " ".join(f"--arg {key}={_arg_text(value)}" for key, value in spec.example.items())
    doc = inspect.cleandoc(spec.builder.__doc__ or "")
    return "\n".join([
        f"{spec.name}: {spec.description}",
        f"source: {spec.source}",
        f"input: {'x'.join(map(str, spec.input_size))}",
        "",
        tabulate(rows, headers=["argument", "type", "default"]),
        "",
        doc,
        "",
        f"example: micronet-score count {spec.name} {example}".rstrip(),
    ])


def _arg_text(value: Any) -> str:
    """A builder argument as ``--arg`` reads it back (a Python literal; strings bare when that is unambiguous)."""
    if isinstance(value, str) and value and not re.search(r"[\s'\"]", value):
        return value
    text = repr(value)
    return f'"{text}"' if re.search(r"[\s{}()\[\]'*]", text) else text


def _rules(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from micronet_score import rules

    rows = []
    for name in rules.names():
        r = rules.get(name)
        rows.append((name, f"{r.param_baseline:,.0f}", f"{r.ops_baseline:,.0f}",
                     _threshold(r), r.dataset, r.counting.name))
    print(tabulate(rows, headers=["rules", "P_base", "O_base", "threshold", "dataset", "convention"]))
    return 0


def _scan(args: argparse.Namespace) -> int:
    from micronet_score.io import scan_checkpoint

    stats = scan_checkpoint(args.file, allow_globals=args.allow_global,
                            max_header_bytes=int(args.max_header_mb * (1 << 20)),
                            max_inflated_bytes=int(args.max_inflated_mb * (1 << 20)))
    print(json.dumps(stats.to_dict(), indent=2) if args.json else stats.table())
    return 0


def _add_scan(sub: Any) -> None:
    from micronet_score.io.limits import DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_INFLATED_BYTES

    scan = sub.add_parser("scan", help="count the values and non-zeros of a checkpoint file (no model needed)")
    scan.add_argument("file", help="a torch.save checkpoint (.pt/.pth/.ckpt) or a .safetensors file")
    scan.add_argument("--json", action="store_true", help="print the totals and every tensor as JSON")
    scan.add_argument("--allow-global", action="append", default=[], metavar="MOD.CLASS",
                      help="let the pickle use this class (repeatable; only for files you trust)")
    scan.add_argument("--max-header-mb", type=float, default=DEFAULT_MAX_HEADER_BYTES / (1 << 20),
                      help="refuse a safetensors header or torch pickle larger than this (default %(default)g)")
    scan.add_argument("--max-inflated-mb", type=float, default=DEFAULT_MAX_INFLATED_BYTES / (1 << 20),
                      help="refuse a zip whose compressed records inflate to more (default %(default)g)")
    scan.set_defaults(func=_scan)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="micronet-score",
                                     description="Count and score neural networks by the MicroNet rules.")
    parser.add_argument("--version", action="version", version=f"micronet-score {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    count = sub.add_parser("count", help="count a model's parameters and operations (and score it)")
    count.add_argument("model", help="a zoo model name (see `models`) or module:factory / file.py:factory")
    count.add_argument("--input", help="input shape, e.g. 1,3,32,32 (default: the zoo model's or rules')")
    count.add_argument("--rules", help="score against this rule set (name or .toml file)")
    count.add_argument("--accuracy", type=parse_accuracy,
                       help="top-1 accuracy as a fraction (0.9012) or correct/total (9010/10000)")
    count.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE",
                       help="keyword argument for the model builder (repeatable)")
    from micronet_score.cli_organizer import parse_bits

    count.add_argument("--bits", type=parse_bits, metavar="N|W/A",
                       help="bit width of every parameter and activation (16, or weight/activation 8/16); "
                            "also states the widths of a --weights fake-quant file that does not record them")
    count.add_argument("--freebie", choices=("auto", "on", "off"), default="auto",
                       help="the 16-bit freebie: as the rules say (auto), forced on or off")
    count.add_argument("--depth", type=int, help="merge table rows below this module depth")
    count.add_argument("--json", action="store_true", help="print the report (and score) as JSON")
    count.add_argument("--strict", action="store_true", help="fail on any operator without a cost")
    count.add_argument("--weights", help="load this checkpoint (state dict, .pt/.pth or .safetensors) first")
    count.add_argument("--shapes-only", action="store_true",
                       help="do not compute activations (meta device); weights stay real")
    count.add_argument("--allow-global", action="append", default=[], metavar="MOD.CLASS",
                       help="let the --weights pickle use this class (repeatable; only for files you trust)")
    count.add_argument("--cross-check", action="store_true",
                       help="also show per-module MACs of fvcore and FlopCounterMode beside ours, and why they differ")
    count.set_defaults(func=_count)
    _add_scan(sub)
    models_cmd = sub.add_parser("models", help="list the reference models, or show one builder's arguments")
    models_cmd.add_argument("name", nargs="?", help="a zoo model: print its arguments, defaults and an example")
    models_cmd.set_defaults(func=_models)
    sub.add_parser("rules", help="list the rule sets").set_defaults(func=_rules)
    from micronet_score.cli_organizer import add_organizer_verbs

    add_organizer_verbs(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # `micronet-score ... | head`: the reader left; end quietly
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except CliError as exc:
        print(f"micronet-score: error: {exc}", file=sys.stderr)
        return 2
    except (MicronetError, KeyError, ValueError, FileNotFoundError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"micronet-score: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    from micronet_score.cli import main as _main  # one CliError class, not a second copy under __main__

    sys.exit(_main())
