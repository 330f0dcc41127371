"""The hostile-submission catalogue: each case a participant (or a careless organizer) tried, and what stops it.

1. ``input = [1, 3, 8, 8]`` added to a densenet-seed ``submission.toml`` counted the operations on 8x8 images while
   accuracy used 32x32 (score 0.006276 -> 0.003235): a key outside model/weights/args/compress/program is refused
   in one line naming it (``input``, ``preprocessing``, ``rules``, the typo ``argz``), in ``eval FOLDER``,
   ``codabench`` and a manifest's ``submission = ...``; every entry is counted on one example of the test data
   (a manifest ``input`` that differs is that entry's error). A challenge's ``models = [...]`` limits the zoo
   names a submission may use.
2. ``args`` holding a TOML datetime or a table: refused, naming the argument.
3. ``weights`` outside the folder (absolute path, ``..``, a symlink leaving it): refused; the refusal never quotes
   the file's bytes.
4. ``model = "net.py:build"`` (read the labels: 500/500) or ``model = "os:system"`` with ``args = {command=...}``
   in a submission ran in the scoring process: refused naming ``allow_code``, nothing runs. In a manifest, code
   needs ``allow_code = true`` and then runs in a child process that only exports the model (no data path given;
   an input-chooser, a hang, a 20 GiB allocation and ``SystemExit(0)`` each end as that entry's one-line error:
   "timed out after N s", "ran out of memory (N GiB)").
5. A 16-bit fake-quantized densenet-seed saved as a plain state dict and scored by zoo name was priced at 8 bits
   (0.028 instead of 0.057 under imta-2025): the quantizers record their widths and it is scored at 16 bits; a
   file whose widths cannot be read is refused naming ``--bits``, and ``--bits 16`` / a manifest ``bits = 16``
   state them.
6. A manifest entry ``submission = "subs/heidi"`` (a ``save_submission`` folder) is scored as its weights are; the
   loader's notes (a removed ``module.`` prefix) go into the row and print as one ``note:`` line.
7. A checkpoint whose fake-quant range has the wrong shape installed the quantizers, then failed with a raw
   ``RuntimeError``: refused with one line before the model changes.
8. Codabench: the scoring program (``codabench score``, the old ``codabench INPUT OUTPUT``) refuses a code upload
   even with ``allow_code = true``; where code is allowed the ingestion program (``codabench ingest``) exports it
   in the child, with no reference data mounted: a submission that searches its folders, its parent's command
   line and its environment for the labels finds none, and scores exactly as its weights
   (``test_codabench_bundle.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap

import numpy as np
import pytest
import torch

import micronet_score as ms
from micronet_score.cli import main
from micronet_score.errors import CheckpointError
from micronet_score.loading import load_weights, read_state_dict
from micronet_score.organizer import SubmissionError, save_submission
from micronet_score.organizer.submissions import read_submission

from .conftest import LABELS, NET_PY

RULES = "micronet-2019-cifar100"
SECRET = "SECRET-BYTES-0123"


def _cifar_like(path, n=6):
    """``n`` 32x32 RGB uint8 images and labels 0..n-1, as an .npz."""
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8), y=np.arange(n) % 10)
    return path


def _seed_submission(folder):
    model = ms.models.build("densenet-seed")
    save_submission(model, folder, model_name="densenet-seed", args={"num_classes": 10})
    return folder


def _codabench(tmp_path, challenge_toml, npz):
    inp = tmp_path / "input"
    (inp / "ref").mkdir(parents=True)
    shutil.copy(npz, inp / "ref" / "test.npz")
    (inp / "ref" / "challenge.toml").write_text(challenge_toml + '[data]\npath = "test.npz"\ndataset = "npz"\n')
    return inp


# 1. keys a submission may not set -------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, key", [
    ("input = [1, 3, 8, 8]\n", "input"),
    ("preprocessing = { mean = [0.0, 0.0, 0.0] }\n", "preprocessing"),
    ('rules = "micronet-2019-imagenet"\n', "rules"),
    ("argz = { num_classes = 10 }\n", "argz"),
])
def test_a_key_outside_the_list_is_refused_naming_it(tmp_path, capsys, extra, key):
    sub = _seed_submission(tmp_path / "sub")
    toml = sub / "submission.toml"
    toml.write_text(toml.read_text().replace("args =", extra + "args =", 1))
    with pytest.raises(SubmissionError, match=f"key '{key}' is not accepted"):
        read_submission(sub)
    npz = _cifar_like(tmp_path / "t.npz")
    assert main(["eval", str(sub), "--data", str(npz), "--dataset", "npz", "--rules", RULES]) == 1
    err = capsys.readouterr().err
    assert f"'{key}'" in err and err.count("\n") == 1


def test_the_input_case_is_refused_by_codabench_and_the_board(tmp_path, capsys):
    npz = _cifar_like(tmp_path / "t.npz")
    inp = _codabench(tmp_path, f'rules = "{RULES}"\n', npz)
    _seed_submission(inp / "res")
    honest_toml = (inp / "res" / "submission.toml").read_text()
    assert main(["codabench", str(inp), str(tmp_path / "out")]) == 0
    honest = json.loads((tmp_path / "out" / "scores.json").read_text())
    # counted on one example of the test data, 1x3x32x32, as the participant's own ms.score would
    model = ms.models.build("densenet-seed")
    assert honest["score"] == ms.score(model, (1, 3, 32, 32), rules=RULES,
                                       accuracy=(round(honest["accuracy"] * 6), 6)).value
    (inp / "res" / "submission.toml").write_text("input = [1, 3, 8, 8]\n" + honest_toml)
    assert main(["codabench", str(inp), str(tmp_path / "out2")]) == 1
    assert "'input'" in capsys.readouterr().err and not (tmp_path / "out2" / "scores.json").exists()
    # the manifest route: the submission folder's input is refused; the honest folder scores as on Codabench
    root = tmp_path / "board"
    shutil.copytree(inp / "res", root / "subs" / "cheat")
    _seed_submission(root / "subs" / "honest")
    shutil.copy(npz, root / "t.npz")
    (root / "m.toml").write_text(f'rules = "{RULES}"\n[data]\npath = "t.npz"\ndataset = "npz"\n'
                                 '[[entry]]\nname = "cheat"\nsubmission = "subs/cheat"\n'
                                 '[[entry]]\nname = "honest"\nsubmission = "subs/honest"\n'
                                 '[[entry]]\nname = "small"\nsubmission = "subs/honest"\ninput = [1, 3, 8, 8]\n')
    rows = {r["name"]: r for r in ms.leaderboard(root / "m.toml", root / "out").rows}
    assert "'input'" in rows["cheat"]["error"] and rows["cheat"]["score"] is None
    assert rows["cheat"]["error"].startswith("subs/cheat/submission.toml: ")  # no path of the organizer's machine
    assert rows["honest"]["score"] == honest["score"]
    # an organizer's input that is not one example of the test data (1, 3, 32, 32) is that entry's error
    assert "[1, 3, 32, 32]" in rows["small"]["error"] and rows["small"]["score"] is None


# 2. plain arguments only --------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", ["{ seed = 1979-05-27T07:32:00Z }", "{ num_classes = { nested = 1 } }",
                                  "{ growth = [1, { a = 2 }] }"])
def test_args_must_be_plain_values(tmp_path, args):
    sub = _seed_submission(tmp_path / "sub")
    toml = sub / "submission.toml"
    text = toml.read_text()
    toml.write_text(text.replace(text[text.index("args ="):].splitlines()[0], f"args = {args}"))
    with pytest.raises(SubmissionError, match="arguments may only be bool, int, float, str"):
        read_submission(sub)


# 3. weights inside the folder ------------------------------------------------------------------------------------

def test_weights_outside_the_folder_are_refused_without_quoting_them(tmp_path, capsys):
    secret = tmp_path / "labels.txt"
    secret.write_text(SECRET)
    sub = _seed_submission(tmp_path / "sub")
    toml = sub / "submission.toml"
    honest = toml.read_text()
    os.symlink(secret, sub / "link.pt")
    for weights, why in ((str(secret), "relative path"), ("../labels.txt", "relative path"),
                         ("link.pt", "leaves the submission folder")):
        toml.write_text(honest.replace('weights = "weights.safetensors"', f"weights = {json.dumps(weights)}"))
        with pytest.raises(SubmissionError, match=why) as info:
            read_submission(sub)
        assert SECRET not in str(info.value)
        assert main(["eval", str(sub), "--rules", RULES]) == 1
        err = capsys.readouterr().err
        assert why in err and SECRET not in err


# 4. no participant code where scores are made --------------------------------------------------------------------

LABEL_READER = textwrap.dedent('''
    import glob, os, torch

    def build(**kwargs):
        """Replays the labels it finds next to it (the 500/500 cheat); marks that it ran."""
        open(os.path.join(os.path.dirname(__file__), "ran"), "w").write(repr(sorted(os.environ)))
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(4))
''')


def test_code_in_a_submission_is_refused_and_never_runs(tmp_path, challenge, capsys):
    inp = _codabench(tmp_path, 'rules = "micronet-2019-cifar100"\n', challenge / "test.npz")
    (inp / "res").mkdir()
    (inp / "res" / "net.py").write_text(LABEL_READER)
    shutil.copy(challenge / "subs" / "const0.pt", inp / "res" / "w.pt")
    marker = tmp_path / "pwned"
    for toml in ('model = "net.py:build"\nweights = "w.pt"\n',
                 f'model = "os:system"\nweights = "w.pt"\nargs = {{ command = "touch {marker}" }}\n'):
        (inp / "res" / "submission.toml").write_text(toml)
        assert main(["codabench", str(inp), str(tmp_path / "out")]) == 1
        assert "allow_code" in capsys.readouterr().err
    assert main(["eval", str(inp / "res"), "--rules", RULES]) == 1  # eval FOLDER too, without --allow-code
    assert "allow_code" in capsys.readouterr().err
    assert not (inp / "res" / "ran").exists() and not marker.exists()
    # even where code is allowed, a submission's model is a file in its folder, never pkg.module:factory
    (inp / "ref" / "challenge.toml").write_text('allow_code = true\n' + (inp / "ref" / "challenge.toml").read_text())
    assert main(["codabench", str(inp), str(tmp_path / "out")]) == 1
    assert "pkg.module:factory" in capsys.readouterr().err and not marker.exists()


def test_manifest_code_needs_allow_code_and_runs_in_a_limited_child(challenge, tmp_path):
    (challenge / "hostile.py").write_text(NET_PY + textwrap.dedent('''
        import json, os, sys, time, torch

        def spy(**kwargs):
            """Records what the child process can see, then builds an honest model."""
            seen = {"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ),
                    "files": sorted(os.listdir(os.getcwd()))}
            seen["job"] = open("job.json").read()
            open(os.path.join(os.path.dirname(__file__), "seen.json"), "w").write(json.dumps(seen))
            return const(1)

        def hang(**kwargs):
            time.sleep(3600)

        def hog(**kwargs):
            torch.empty(20 << 30, dtype=torch.uint8)

        def leave(**kwargs):
            raise SystemExit(0)
    '''))
    marker = challenge / "pwned"
    header = 'rules = "micronet-2019-cifar100"\n[data]\npath = "test.npz"\ndataset = "npz"\n'
    os_entry = f'[[entry]]\nname = "os"\nmodel = "os:system"\nweights = "subs/const0.pt"\n' \
               f'args = {{ command = "touch {marker}" }}\n'
    (challenge / "no.toml").write_text(header + os_entry)
    row = ms.leaderboard(challenge / "no.toml", tmp_path / "no").rows[0]
    assert "allow_code" in row["error"] and row["score"] is None and not marker.exists()

    entries = "".join(f'[[entry]]\nname = "{name}"\nmodel = "hostile.py:{name}"\nweights = "subs/const1.pt"\n'
                      f'{extra}\n' for name, extra in (("spy", ""), ("hang", "entry_timeout = 20"),
                                                        ("hog", "entry_memory = 4"), ("leave", "")))
    (challenge / "yes.toml").write_text("allow_code = true\n" + header + entries)
    rows = {r["name"]: r for r in ms.leaderboard(challenge / "yes.toml", tmp_path / "yes").rows}
    # the spy built const(1): right on the 15 ones of 50, counted as its eager model is
    assert (rows["spy"]["correct"], rows["spy"]["total"]) == (15, 50) and int((LABELS == 1).sum()) == 15
    eager = ms.score(ms.organizer.builders.build_model("net.py:const", {"cls": 1}, challenge), (1, 3, 8, 8),
                     rules=RULES)
    assert rows["spy"]["score"] == eager.value
    seen = json.loads((challenge / "seen.json").read_text())
    text = json.dumps(seen)
    assert "test.npz" not in text and str(challenge / "test.npz") not in text  # no data path reaches the child
    assert seen["cwd"] != str(challenge) and set(seen["env"]) <= {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR",
                                                                 "PYTHONPATH", "OMP_NUM_THREADS",
                                                                 "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
                                                                 "VIRTUAL_ENV", "SYSTEMROOT", "LC_CTYPE"}
    assert rows["hang"]["error"] == "the model's code timed out after 20 s (--entry-timeout)"
    assert rows["hog"]["error"] == "the model's code ran out of memory (4 GiB, --entry-memory)"
    assert rows["leave"]["error"] == "the model's code raised SystemExit(0)"
    for name in ("hang", "hog", "leave"):
        assert rows[name]["score"] is None and "\n" not in rows[name]["error"]


# 5. widths are read, never guessed --------------------------------------------------------------------------------

def test_a_16_bit_fake_quant_state_dict_is_scored_at_16_bits(tmp_path, capsys):
    from micronet_score.compress import FakeQuant, calibrate, quantize_

    torch.manual_seed(0)
    model = ms.models.build("densenet-seed")
    quantize_(model, FakeQuant(weight_bits=16, act_bits=16))
    calibrate(model, [torch.randn(2, 3, 32, 32)])
    torch.save(model.state_dict(), tmp_path / "fq16.pt")
    in_process = ms.score(model, (1, 3, 32, 32), rules="imta-2025").value
    eight = quantize_(ms.models.build("densenet-seed"), FakeQuant(weight_bits=8, act_bits=8))
    calibrate(eight, [torch.randn(2, 3, 32, 32)])
    at_8 = ms.score(eight, (1, 3, 32, 32), rules="imta-2025").value
    assert in_process > 1.9 * at_8  # the cheat: the same file priced at 8 bits costs about half

    assert main(["count", "densenet-seed", "--weights", str(tmp_path / "fq16.pt"), "--rules", "imta-2025",
                 "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["score"]["value"] == in_process
    assert "16-bit weights and 16-bit activations, bit widths read from the file" in out.err

    # a file from before the widths were recorded: refused with the fix, then scored as stated
    old = {k: v for k, v in model.state_dict().items() if not k.endswith(("quant_min", "quant_max", "per_channel"))}
    torch.save(old, tmp_path / "old.pt")
    assert main(["count", "densenet-seed", "--weights", str(tmp_path / "old.pt"), "--rules", "imta-2025"]) == 1
    err = capsys.readouterr().err
    assert "does not record their bit widths" in err and "--bits" in err and err.count("\n") == 1
    assert main(["count", "densenet-seed", "--weights", str(tmp_path / "old.pt"), "--rules", "imta-2025",
                 "--bits", "16", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["score"]["value"] == in_process
    npz = _cifar_like(tmp_path / "t.npz")
    assert main(["eval", "densenet-seed", "--weights", str(tmp_path / "old.pt"), "--data", str(npz),
                 "--dataset", "npz", "--rules", "imta-2025", "--bits", "16", "--json"]) in (0, 3)
    assert json.loads(capsys.readouterr().out)["score"]["value"] > 1.9 * at_8

    # a manifest entry: the recorded file by zoo name, the old one refused, the old one with bits = 16
    shutil.copy(npz, tmp_path / "t2.npz")
    (tmp_path / "m.toml").write_text(
        'rules = "imta-2025"\n[data]\npath = "t2.npz"\ndataset = "npz"\n'
        '[[entry]]\nname = "recorded"\nmodel = "densenet-seed"\nweights = "fq16.pt"\n'
        '[[entry]]\nname = "old"\nmodel = "densenet-seed"\nweights = "old.pt"\n'
        '[[entry]]\nname = "stated"\nmodel = "densenet-seed"\nweights = "old.pt"\nbits = 16\n')
    rows = {r["name"]: r for r in ms.leaderboard(tmp_path / "m.toml", tmp_path / "b").rows}
    assert "--bits" in rows["old"]["error"] and rows["old"]["score"] is None
    assert rows["recorded"]["param_term"] == rows["stated"]["param_term"]
    assert rows["recorded"]["ops_term"] == rows["stated"]["ops_term"]


def test_a_width_that_contradicts_the_file_is_refused(tmp_path, capsys):
    from micronet_score.compress import FakeQuant, quantize_

    model = quantize_(ms.models.build("densenet-seed"), FakeQuant(weight_bits=16, act_bits=None))
    torch.save(model.state_dict(), tmp_path / "w16.pt")
    assert main(["count", "densenet-seed", "--weights", str(tmp_path / "w16.pt"), "--bits", "8"]) == 1
    assert "records 16-bit weights" in capsys.readouterr().err
    eight = quantize_(ms.models.build("densenet-seed"), FakeQuant(weight_bits=8, act_bits=None))
    with pytest.raises(CheckpointError, match="other bit widths"):
        load_weights(eight, tmp_path / "w16.pt")


# 6. a save_submission folder in a manifest, and its notes --------------------------------------------------------

def test_manifest_submission_folder_and_its_notes(tmp_path, capsys):
    root = tmp_path / "board"
    sub = _seed_submission(root / "subs" / "heidi")
    state = read_state_dict(sub / "weights.safetensors")
    (sub / "weights.safetensors").unlink()
    torch.save({f"module.{k}": v for k, v in state.items()}, sub / "weights.pt")  # saved inside DataParallel
    toml = sub / "submission.toml"
    toml.write_text(toml.read_text().replace("weights.safetensors", "weights.pt"))
    npz = _cifar_like(root / "t.npz")
    (root / "m.toml").write_text(f'rules = "{RULES}"\n[data]\npath = "t.npz"\ndataset = "npz"\n'
                                 '[[entry]]\nname = "heidi"\nsubmission = "subs/heidi"\n'
                                 '[[entry]]\nname = "direct"\nmodel = "densenet-seed"\nweights = "subs/heidi/weights.pt"\n'
                                 'args = { num_classes = 10 }\n')
    rows = {r["name"]: r for r in ms.leaderboard(root / "m.toml", root / "out").rows}
    assert rows["heidi"]["error"] is None and rows["heidi"]["score"] == rows["direct"]["score"]
    assert "removed the prefix 'module.'" in rows["heidi"]["notes"]
    assert main(["leaderboard", str(root / "m.toml"), "--out", str(root / "out")]) == 0  # stored rows, same notes
    notes = [line for line in capsys.readouterr().err.splitlines() if "note:" in line]
    assert len(notes) == 2 and any("heidi: " in n and "removed the prefix 'module.'" in n for n in notes)
    assert main(["eval", str(sub), "--data", str(npz), "--dataset", "npz", "--rules", RULES]) in (0, 3)
    notes = [line for line in capsys.readouterr().err.splitlines() if "note:" in line]
    assert len(notes) == 1 and "removed the prefix 'module.'" in notes[0]


def test_a_fake_quant_buffer_of_the_wrong_shape_is_refused_before_the_model_changes(tmp_path):
    """(A smaller hole of the same kind: quantizers were installed, then loading failed with a raw RuntimeError.)"""
    from micronet_score.compress import FakeQuant, calibrate, quantize_

    model = quantize_(ms.models.build("densenet-seed"), FakeQuant(weight_bits=8, act_bits=8))
    calibrate(model, [torch.randn(2, 3, 32, 32)])
    state = model.state_dict()
    fresh = ms.models.build("densenet-seed")
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    wrong = dict(state, **{"features.conv1.input_fake_quant.min_val": torch.zeros(3)})
    no_range = {k: v for k, v in state.items() if k != "features.conv1.input_fake_quant.max_val"}
    for bad, message in ((wrong, "scalars"), (no_range, "records an activation grid but not its range")):
        torch.save(bad, tmp_path / "bad.pt")
        with pytest.raises(CheckpointError, match=message):
            load_weights(fresh, tmp_path / "bad.pt")
        assert fresh.state_dict().keys() == before.keys()
        assert all(torch.equal(v, before[k]) for k, v in fresh.state_dict().items())


def test_a_model_off_the_challenges_list_is_refused(tmp_path, capsys):
    npz = _cifar_like(tmp_path / "t.npz")
    inp = _codabench(tmp_path, f'rules = "{RULES}"\nmodels = ["resnet18-cifar"]\n', npz)
    _seed_submission(inp / "res")
    assert main(["codabench", str(inp), str(tmp_path / "out")]) == 1
    assert "'densenet-seed' is not on this challenge's list (resnet18-cifar)" in capsys.readouterr().err
