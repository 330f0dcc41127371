"""Write docs/models.md: the reference model zoo counted and scored by micronet-score.

Run from the repository root:

    .venv/bin/python docs/generate_models_page.py

Every number on the page comes from the library (``micronet_score.models`` and ``micronet_score.count``);
nothing is typed by hand.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch
from tabulate import tabulate

import micronet_score as ms
from micronet_score import models
from micronet_score.models.densenet_seed import SEED_BLOCKS, SEED_GROUPS

RULE_SETS = ("micronet-2019-cifar100", "micronet-2019-imagenet")
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "models.md"
COMMAND = ".venv/bin/python docs/generate_models_page.py"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _int(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def model_row(name: str) -> list[str]:
    """Count a fresh build of model ``name`` (builder defaults, its documented input) and score it: what
    ``micronet-score count NAME --rules RULES`` prints."""
    spec = models.spec(name)
    model = models.build(name)
    parameters = sum(p.numel() for p in model.parameters())
    try:
        report = ms.count(model, spec.input_size)
    except ms.InputError:  # a language model takes token ids, not the random floats a shape becomes
        report = ms.count(model, models.example_inputs(name, model))
    if report.unsupported_total:
        raise RuntimeError(f"{name}: {report.unsupported_total} operator call(s) were not counted")
    if not report.freebie:
        raise RuntimeError(f"{name}: the 16-bit freebie did not apply")
    scores = [ms.score(report, rules=rules).value for rules in RULE_SETS]
    return [
        f"`{name}`",
        _cell(spec.description),
        _cell(spec.source),
        _shape(spec.input_size),
        f"{parameters:,}",
        f"{report.params:,}",
        _int(report.mults),
        _int(report.adds),
        _int(report.param_storage),
        _int(report.math_ops),
        *(f"{s:.6f}" for s in scores),
    ]


def _baselines() -> str:
    lines = []
    for name in RULE_SETS:
        rules = ms.rules.get(name)
        lines.append(
            f"  - `{name}`: P_base = {rules.param_baseline:,.0f}, O_base = {rules.ops_baseline:,.0f}"
        )
    return "\n".join(lines)


def _seed_section() -> str:
    spec = models.spec("densenet-seed")
    growth = spec.default_kwargs["growth_rate"]
    with torch.device("meta"):
        model = models.build("densenet-seed")
    parameters = sum(p.numel() for p in model.parameters())
    blocks = "/".join(str(b) for b in SEED_BLOCKS)
    return (
        "## The `densenet-seed` configuration\n\n"
        f"{spec.description}.\n\n"
        f"- Source: {spec.source}.\n"
        f"- DenseNet-BC in the kuangliu layout: growth rate k = {growth}, dense blocks {blocks}, "
        "reduction 0.5 at each transition, global average pool (4x4) and a linear classifier.\n"
        f"- Groups: stem conv {SEED_GROUPS.stem}, 1x1 bottleneck convs {SEED_GROUPS.bottleneck} (dense), "
        f"3x3 convs {SEED_GROUPS.conv3x3}, transition convs {SEED_GROUPS.transition}.\n"
        f"- k = {growth} is the smallest growth rate every group count divides (the stem needs 3 | 2k, the 3x3 "
        "convs 2 | k), and the valid one closest to the ~112k parameters reported for the entry; it gives "
        f"{parameters:,} parameters at {spec.default_kwargs['num_classes']} classes.\n\n"
        f"{_groups_table()}"
    )


GROUP_FORMS = (None, 1, 2, "conv3x3:2,transition:3", {"stem": 3, "conv3x3": 3, "transition": 1})


def _groups_table() -> str:
    """Other groupings of the seed, in each form ``groups=`` accepts, counted (meta device, batch 1)."""
    rows = []
    for form in GROUP_FORMS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an int regroups only the stages it divides, and says so
            with torch.device("meta"):
                model = models.build("densenet-seed", groups=form)
        g = model.groups
        report = ms.count(model, models.input_size("densenet-seed"))
        rows.append([f"`{form!r}`", f"{g.stem} / {g.bottleneck} / {g.conv3x3} / {g.transition}",
                     f"{sum(p.numel() for p in model.parameters()):,}", f"{report.params:,}", f"{report.mults:,}"])
    table = tabulate(rows, headers=["`groups=`", "stem / 1x1 / 3x3 / transition", "torch parameters",
                                    "stored values (norms folded)", "mults per example"],
                     tablefmt="github", disable_numparse=True)
    return (
        "`groups=` regroups it, in any of these forms (the same as `--arg groups=...` on the command line, e.g. "
        "`micronet-score count densenet-seed --arg groups=conv3x3:2,transition:3`): None (the seed), an int "
        "(every grouped stage it can split; the others keep the seed's count, with a warning), a mapping or "
        "the string `kind:g,...` (the kinds named), or a `DenseNetGroups`. Each built on the meta device and "
        "counted at batch 1 (so every weight is dense):\n\n"
        f"{table}\n"
    )


def _rule_set_section(names: tuple[str, ...] = ("densenet-seed", "resnet18-cifar")) -> str:
    """Each fresh model scored under every shipped rule set (its own counting convention each)."""
    rows = []
    for name in names:
        spec = models.spec(name)
        for rules_name in ms.rules.names():
            rules = ms.rules.get(rules_name)
            if rules.counting.per_token:
                rows.append([f"`{name}`", f"`{rules_name}`", f"`{rules.counting.name}`", "-", "-",
                             "not applicable: a per-token language-model track"])
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                s = ms.score(models.build(name), spec.input_size, rules=rules)
            rows.append([f"`{name}`", f"`{rules_name}`", f"`{s.convention}`", _int(s.param_storage),
                         _int(s.math_ops), f"{s.value:.6f}"])
    headers = ["model", "rule set", "convention", "param storage", "math ops", "score"]
    table = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True,
                     colalign=["left"] * 3 + ["right"] * 3)
    return (
        "## Scores under every shipped rule set\n\n"
        "Fresh builds (builder defaults, seed 0) scored with `ms.score(model, models.input_size(name), "
        "rules=...)`, each under its rule set's own convention (see [Rule sets](rules.md)). Vectors are dense "
        "under every convention, so a fresh build's zero batch-norm shifts count as stored values, and the "
        "kuangliu-layout models call `F.relu` as kuangliu's code does: a fresh `resnet18-cifar` scores the "
        "course's own references, 2.0000 under `imta-2023` and 3.9790 under `imta-2025`.\n\n"
        f"{table}\n"
    )


def render() -> str:
    headers = [
        "model",
        "description",
        "source",
        "input",
        "parameters",
        "stored values",
        "mults",
        "adds",
        "param storage",
        "math ops",
        *(f"score {r.removeprefix('micronet-2019-')}" for r in RULE_SETS),
    ]
    rows = [model_row(name) for name in models.names()]
    align = ["left"] * 4 + ["right"] * (len(headers) - 4)
    table = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True, colalign=align)
    return (
        "# Reference model zoo\n\n"
        f"<!-- Generated by `{COMMAND}`; do not edit by hand. -->\n\n"
        f"This page is generated: regenerate it with `{COMMAND}` after changing a builder or the counting "
        "engine.\n\n"
        "`micronet_score.models` builds the networks micronet-score is checked against "
        "(`models.names()`, `models.build(name, **kwargs)`, `models.input_size(name)`). "
        "How the numbers below were obtained:\n\n"
        "- Each model is built fresh with its builder's defaults (CIFAR models with 10 classes, ImageNet "
        "models with 1000, seed 0) and counted with `ms.count(model, models.input_size(name))` at batch 1 "
        "(the language model on `models.example_inputs(name, model)`, token ids): "
        "the numbers `micronet-score count NAME --rules RULES` prints. Weights are stored in the cheaper of "
        "dense and non-zeros plus one mask bit per element; biases and other vectors are dense, so a fresh "
        "model's zero biases cost what the official counter charges. A few weights of a fresh "
        "initialisation can be exactly zero, and their multiplies are not counted (spec section 3).\n"
        "- **parameters**: elements of `model.parameters()`. **stored values**: what the forward reads under "
        "the `micronet` convention: a batch norm whose input comes from a conv or linear that feeds nothing "
        "else is folded into it (its 2C affine parameters become C biases); the other batch norms "
        "(pre-activation networks, norms after an add) are per-channel affines.\n"
        "- **mults**, **adds**: raw operations per example. **param storage** and **math ops** are 32-bit "
        "equivalents at the 16-bit freebie: parameters and multiplies count 16/32, additions 32/32.\n"
        "- Scores are `param storage / P_base + math ops / O_base` against both MicroNet 2019 rule sets, "
        "with no accuracy check (every model is scored against both baselines whatever its dataset):\n"
        f"{_baselines()}\n"
        "- `efficientnet-b0` reproduces the official google-research counter's 5,267,540 values and "
        "406,623,188 mults; its adds are 1,050,560 fewer than the official example's 395,601,308, because "
        "that example counts each residual add over the expanded channel count.\n\n"
        f"{table}\n\n"
        f"{_rule_set_section()}\n"
        f"{_seed_section()}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write (docs/models.md)")
    args = parser.parse_args(argv)
    args.output.write_text(render(), encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
