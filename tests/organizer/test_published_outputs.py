"""What the leaderboard publishes: escaped text, no formulas, no organizer paths, one track, shared ranks, a
readable Pareto plot."""

from __future__ import annotations

import csv
import io
import os
import re
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import micronet_score as ms
from micronet_score.organizer.ranking import Leaderboard, rank
from micronet_score.render import leaderboard as render

from .conftest import entry

HOSTILE_KEY = "<img src=x onerror=alert(1)>"
HOSTILE_NAME = "bob|smith\n<b>bold</b> *x* [l](javascript:alert(1))"


def _row(name, score, passed=True, correct=40, **extra):
    row = {"name": name, "model": "m", "correct": correct, "total": 50, "accuracy": correct / 50, "passed": passed,
           "param_term": None if score is None else score / 2, "ops_term": None if score is None else score / 2,
           "score": score, "error": None, "published": False}
    row.update(extra)
    return row


def _manifest(root, *entries, rules='"micronet-2019-cifar100"', data='"test.npz"'):
    # the entries' models are the organizer's own code files: allowed, and run in a child that exports them
    text = f'rules = {rules}\nallow_code = true\n[data]\npath = {data}\ndataset = "npz"\n' + "".join(entries)
    (root / "challenge.toml").write_text(text)
    return root / "challenge.toml"


def _published_files(out: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(out.glob("leaderboard.*"))}


# --- ties and the order of passing and failing rows ------------------------------------------------------------

def test_ties_share_a_rank_standard_competition_ranking():
    rows = [_row("e", 0.5), _row("c", 0.3), _row("a", 0.1), _row("d", 0.3), _row("b", 0.2),
            _row("low", 0.05, passed=False, correct=10), _row("low2", 0.05, passed=False, correct=10),
            _row("broken", None, error="weights file 'x.pt' does not exist")]
    ranked = rank(rows)
    # passing rows by score: 0.1, 0.2, 0.3, 0.3, 0.5 -> 1, 2, 3, 3, 5; then below-threshold rows (tied at 0.05,
    # better scores than every passing row but placed after them) -> 6, 6; the broken entry has no rank
    assert [(r["name"], r["rank"]) for r in ranked] == [
        ("a", 1), ("b", 2), ("c", 3), ("d", 3), ("e", 5), ("low", 6), ("low2", 6), ("broken", None)]


def test_tie_means_equal_floats_not_equal_digits():
    # 0.1 + 0.2 is the float 0.30000000000000004, not 0.3: shown alike at six decimals, ranked apart
    ranked = rank([_row("sum", 0.1 + 0.2), _row("exact", 0.3), _row("same", 0.3)])
    assert [(r["name"], r["rank"]) for r in ranked] == [("exact", 1), ("same", 1), ("sum", 3)]


def test_page_says_passing_rows_rank_first():
    board = Leaderboard(rules="micronet-2019-cifar100", rows=tuple(rank([_row("a", 0.1), _row("b", 0.2, False)])))
    for text in (render.to_markdown(board), render.to_html(board)):
        assert "rank before" in text and "share a rank" in text


# --- escaping ----------------------------------------------------------------------------------------------------

def _hostile_board():
    rows = [_row(HOSTILE_NAME, 0.1), _row("=HYPERLINK(\"http://x\")", 0.2), _row("+1", 0.3), _row("-2", 0.4),
            _row("@SUM(A1)", 0.5), _row("\tt", 0.6), _row("\rr", 0.7),
            _row("eve", None, error=f"unexpected key(s) in checkpoint: ['{HOSTILE_KEY}'] | x\ny")]
    return Leaderboard(rules="micronet-2019-cifar100", rows=tuple(rank(rows)))


def test_markdown_escapes_html_and_cannot_break_the_table():
    md = render.to_markdown(_hostile_board())
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 8  # header, rule, one line per row: no newline got through
    for line in table:  # 8 columns: 9 pipes that are not escaped
        assert len(re.findall(r"(?<!\\)\|", line)) == 9, line
    assert "<img" not in md and "<b>" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    markdown = pytest.importorskip("markdown")
    page = markdown.markdown(md, extensions=["tables"])
    assert "<img" not in page and "<b>" not in page and "<a " not in page
    assert page.count("<tr>") == 9 and all(row.count("<td") == 8 for row in page.split("<tr>")[2:])
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # the key stays readable text


def test_html_escapes_everything():
    page = render.to_html(_hostile_board())
    assert "<img" not in page and "<b>" not in page and "javascript:alert(1)](" not in page.replace(
        "javascript:alert(1))", "")
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    # the name is text wherever it appears (table cell, plot label, tooltip)
    assert page.count("bob|smith") >= 2 and "&lt;b&gt;bold&lt;/b&gt;" in page


def test_csv_neutralises_formulas_but_keeps_numbers():
    rows = list(_hostile_board().rows) + [_row("neg", -0.25)]
    text = render.to_csv(Leaderboard(rules="r", rows=tuple(rows)))
    cells = {r["name"]: r for r in csv.DictReader(io.StringIO(text))}
    for name in ("=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tt", "\rr"):
        assert "'" + name in cells, name
    assert not any(k[:1] in "=+-@\t\r" for k in cells)
    # numbers stay numbers: a negative score is not a formula
    assert cells["neg"]["score"] == "-0.25" and cells["neg"]["param_term"] == "-0.125"
    assert cells["neg"]["correct"] == "40" and cells["'-2"]["rank"] == "4"


# --- no absolute paths of the organizer's machine ------------------------------------------------------------

def _leaks(text: str, roots) -> list[str]:
    return [root for root in roots if root in text]


def _roots(tmp_path):
    home = os.path.expanduser("~")
    return [str(tmp_path), os.path.realpath(tmp_path), sys.prefix, os.path.dirname(torch.__file__)] + (
        [home] if len(home) > 1 else [])


RAISER = textwrap.dedent('''
    import torch

    def outside(cls=0):
        raise RuntimeError(f"cannot read {torch.__file__!r}: no permission")
''')


def test_no_absolute_path_in_published_files(challenge, tmp_path):
    (challenge / "raiser.py").write_text(RAISER)
    absolute = entry("abs", str(challenge / "subs" / "const0.pt"), 0)  # the organizer wrote an absolute path
    manifest = _manifest(challenge, entry("ok", "subs/const0.pt", 0), entry("ghost", "subs/nothing.pt", 0), absolute,
                         entry("outside", "subs/const0.pt", 0).replace("net.py:const", "raiser.py:outside"),
                         entry("nofile", "subs/const0.pt", 0).replace("net.py:const", "nowhere.py:const"))
    out = tmp_path / "out"
    board = ms.leaderboard(manifest, out)
    rows = {r["name"]: r for r in board.rows}
    assert rows["ok"]["correct"] == 20 and "does not exist" in rows["ghost"]["error"]
    files = _published_files(out)
    assert set(files) == {"leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.html"}
    for name, text in files.items():
        assert _leaks(text, _roots(tmp_path)) == [], name
    published = {r["name"]: r for r in __import__("json").loads(files["leaderboard.json"])}
    assert "'subs/nothing.pt'" in published["ghost"]["error"]  # relative to the manifest's folder
    assert "__init__.py" in published["outside"]["error"]  # outside the manifest's folder: only the file name
    assert published["abs"]["weights"] == "subs/const0.pt"


def test_unreadable_data_error_names_data_not_its_path(challenge, tmp_path):
    (challenge / "bad.npz").write_bytes(b"not an npz archive")
    manifest = _manifest(challenge, entry("ok", "subs/const0.pt", 0), data='"bad.npz"')
    out = tmp_path / "elsewhere" / "out"
    board = ms.leaderboard(manifest, out)
    assert board.rows[0]["error"]  # the entry could not be scored
    for name, text in _published_files(out).items():
        assert _leaks(text, _roots(tmp_path)) == [], name
    published = __import__("json").loads((out / "leaderboard.json").read_text())
    assert "<data>" in published[0]["error"] or "bad.npz" in published[0]["error"]


# --- --against only within the board's track ----------------------------------------------------------------------

@pytest.mark.parametrize("rules, field", [
    ('"micronet-2019-cifar100"', "micronet-2019-imagenet"),
    ('"imta-2025"', "micronet-2019-cifar100"),
    ('"micronet-2019-imagenet"', "micronet-2019-wikitext103"),
])
def test_against_refuses_another_track(challenge, tmp_path, rules, field):
    manifest = _manifest(challenge, entry("zero", "subs/const0.pt", 0), rules=rules)
    with pytest.raises(ms.organizer.SubmissionError) as info:
        ms.leaderboard(manifest, tmp_path / "out", against=field)
    message = str(info.value)
    assert field in message and rules.strip('"') in message and "\n" not in message
    assert not (tmp_path / "out" / "leaderboard.md").exists()  # refused before anything was scored


def test_against_refuses_a_rule_set_with_other_baselines(challenge, tmp_path):
    (challenge / "mine.toml").write_text(textwrap.dedent('''
        [rules]
        name = "my-cifar100"
        param_baseline = 1e6
        ops_baseline = 1e8
        threshold = 0.8
        dataset = "CIFAR-100"
    '''))
    manifest = _manifest(challenge, entry("zero", "subs/const0.pt", 0), rules='"mine.toml"')
    with pytest.raises(ms.organizer.SubmissionError, match="my-cifar100.*micronet-2019-cifar100|"
                                                           "micronet-2019-cifar100.*my-cifar100"):
        ms.leaderboard(manifest, tmp_path / "out", against="micronet-2019-cifar100")


def test_against_cli_is_one_line(challenge, tmp_path, capsys):
    from micronet_score.cli import main

    manifest = _manifest(challenge, entry("zero", "subs/const0.pt", 0))
    assert main(["leaderboard", str(manifest), "--out", str(tmp_path / "o"),
                 "--against", "micronet-2019-imagenet"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "micronet-2019-imagenet" in err and "micronet-2019-cifar100" in err


# --- the Pareto plot ---------------------------------------------------------------------------------------------

WIDE = textwrap.dedent('''
    import torch

    def const(cls=0, width=4, classes=4):
        """Predicts class ``cls`` for every image; ``width`` sets its size (and so its score)."""
        net = torch.nn.Sequential(torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU(),
                                  torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(width, classes))
        with torch.no_grad():
            net[4].weight.zero_()
            net[4].bias.zero_()
            net[4].bias[cls] = 1.0
        return net
''')

THIRTY = textwrap.dedent('''
    [rules]
    name = "thirty"
    param_baseline = 1e4
    ops_baseline = 1e6
    threshold = 0.3
    dataset = "npz"
''')


def wide_entry(name, cls, width):
    return textwrap.dedent(f'''
        [[entry]]
        name = "{name}"
        model = "wide.py:const"
        weights = "subs/w{width}c{cls}.pt"
        args = {{ cls = {cls}, width = {width} }}
        input = [1, 3, 8, 8]
    ''')


@pytest.fixture
def plotted(challenge, tmp_path):
    (challenge / "wide.py").write_text(WIDE)
    (challenge / "thirty.toml").write_text(THIRTY)
    namespace: dict = {}
    exec(WIDE, namespace)
    entries = []
    for name, cls, width in (("alice", 0, 4), ("bob", 0, 4), ("carol", 0, 16), ("dave", 0, 64), ("erin", 2, 16)):
        torch.save(namespace["const"](cls, width).state_dict(), challenge / "subs" / f"w{width}c{cls}.pt")
        entries.append(wide_entry(name, cls, width))
    manifest = _manifest(challenge, *entries, rules='"thirty.toml"')
    board = ms.leaderboard(manifest, tmp_path / "out")
    return board, (tmp_path / "out" / "leaderboard.html").read_text()


def _svg(page):
    return page[page.index("<svg"):page.index("</svg>")]


def test_pareto_plot_has_several_labelled_x_ticks(plotted):
    board, page = plotted
    scores = sorted({r["score"] for r in board.rows})
    assert len(scores) == 3 and scores[-1] / scores[0] > 10  # widths 4, 16, 64: more than a decade apart
    svg = _svg(page)
    assert len(re.findall(r"class='xtick'", svg)) >= 3


def test_pareto_plot_draws_the_threshold_and_a_legend(plotted):
    board, page = plotted
    svg = _svg(page)
    assert "class='threshold'" in svg and "30%" in svg  # the rule set's threshold, 0.3
    # pass and fail told apart by shape as well as colour: a circle and a triangle in the legend
    legend = svg[svg.index("class='legend'"):]
    assert "meets the threshold" in legend and "below the threshold" in legend
    assert "<circle" in legend and "<path" in legend
    rows = {r["name"]: r for r in board.rows}
    assert rows["erin"]["passed"] is False and rows["alice"]["passed"] is True  # 10/50 < 30% <= 20/50


def test_pareto_plot_labels_tied_entries_together(plotted):
    board, page = plotted
    rows = {r["name"]: r for r in board.rows}
    assert (rows["alice"]["score"], rows["alice"]["accuracy"]) == (rows["bob"]["score"], rows["bob"]["accuracy"])
    assert rows["alice"]["rank"] == rows["bob"]["rank"] == 1
    labels = re.findall(r"<text[^>]*class='label'[^>]*>([^<]*)</text>", _svg(page))
    assert "alice, bob" in labels
    for name in ("carol", "dave", "erin"):
        assert name in labels


def test_accuracy_cells_do_not_wrap(plotted):
    _, page = plotted
    assert re.search(r"td\.acc[^{]*\{[^}]*white-space:\s*nowrap", page)
    assert "<td class='acc'>20/50 (40.00%)</td>" in page



# --- writing ------------------------------------------------------------------------------------------------------

def test_outputs_use_temporary_files_of_their_own(tmp_path):
    from micronet_score.organizer.ranking import write_outputs

    out = tmp_path / "out"
    (out / "leaderboard.md.tmp").mkdir(parents=True)  # a fixed temporary name, taken (another board's, a leftover)
    board = Leaderboard(rules="micronet-2019-cifar100", rows=tuple(rank([_row("a", 0.1)])))
    written = write_outputs(board, out)
    assert sorted(p.name for p in written.values()) == [f"leaderboard.{e}" for e in ("csv", "html", "json", "md")]
    assert "| 1 | a |" in (out / "leaderboard.md").read_text()
    assert sorted(p.name for p in out.iterdir()) == sorted(["leaderboard.md.tmp", *(p.name for p in written.values())])
    assert all(p.stat().st_mode & 0o444 == 0o444 for p in written.values())


def test_doctests_of_the_publishing_modules():
    import doctest

    from micronet_score.organizer import field, redact

    assert doctest.testmod(redact).failed == 0 and doctest.testmod(field).failed == 0


def test_codabench_detailed_results_name_no_absolute_path(challenge, tmp_path):
    import shutil

    from micronet_score.organizer.codabench import run_codabench

    inp = tmp_path / "input"
    (inp / "ref").mkdir(parents=True)
    shutil.copy(challenge / "test.npz", inp / "ref" / "test.npz")
    (inp / "ref" / "challenge.toml").write_text('rules = "micronet-2019-cifar100"\nallow_code = true\n[data]\n'
                                                'path = "test.npz"\ndataset = "npz"\n')
    (inp / "res").mkdir()
    shutil.copy(challenge / "net.py", inp / "res" / "net.py")
    (inp / "res" / "submission.toml").write_text('model = "net.py:const"\nweights = "w.pt"\n')
    with pytest.raises(ms.organizer.SubmissionError) as info:
        run_codabench(inp, tmp_path / "out")
    page = (tmp_path / "out" / "detailed_results.html").read_text()
    assert "is not a file in the submission folder" in page and "w.pt" in page  # refused before loading
    for text in (page, str(info.value)):
        assert _leaks(text, _roots(tmp_path)) == []


def test_pareto_plot_close_scores_get_a_linear_axis_and_long_names_a_short_label():
    from micronet_score.render.pareto import pareto_svg

    long = "x" * 120
    rows = [_row("alpha", 0.0101), _row("beta", 0.0118), _row(long, 0.0145, passed=False, correct=10)]
    svg = pareto_svg(rank(rows), threshold=0.8)
    # 0.0101 to 0.0145 is less than 4 times the smallest: a linear axis, ticks every 0.001 (0.010 ... 0.015)
    assert "linear scale" in svg
    ticks = re.findall(r"class='xtick'[^>]*>([^<]*)<", svg)
    assert ticks[:2] == ["0.01", "0.011"] and len(ticks) >= 4
    labels = re.findall(r"class='label'[^>]*>([^<]*)<", svg)
    assert "x" * 23 + "…" in labels and f"<title>{long}: score" in svg  # the tooltip has the whole name
