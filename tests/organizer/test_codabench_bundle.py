"""The competition bundle in ``examples/codabench`` run the way Codabench (v2) runs it.

``build_bundle.py`` zips the bundle (with a small CIFAR-10-format test set written here); the test unpacks it and
lays out each step as Codabench's compute worker does: the prediction step (the ingestion program's
``metadata.yaml`` command with ``/app/input_data``, ``/app/ingested_program``, ``/app/output``; no reference
data anywhere), then the scoring step (``/app/input/res`` = the ingestion's output, ``/app/input/ref`` = the
reference data, ``/app/output``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from micronet_score.cli import main

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "examples" / "codabench"
GENERATED = ("build", "logo.png", "save_submission", "pt2_submission", "code_submission", "cifar-100-python",
             "__pycache__", "*.zip")

# The code submission that looks for the labels while the ingestion program exports it. It searches the folders it
# can name (the folder above its own: Codabench's /app; its working folder; every folder on its parent's command
# line, recursively; every folder in its environment) and the environment itself, writes what it saw next to
# itself (its stdout is discarded), raises with the list if it found anything, else builds densenet-seed.
PROBE = textwrap.dedent('''
    import json, os
    from pathlib import Path

    def _labelish(p):
        name = p.name
        if name in ("test_batch", "ref", "reference_data") or p.suffix == ".npz" or "cifar" in name.lower() \\
                or "labels" in name.lower():
            return True
        return name == "challenge.toml" and any(line.strip().startswith("[data")
                                                for line in p.read_text(errors="ignore").splitlines())

    def _look():
        here = Path(__file__).resolve().parent
        roots = {here.parent, Path.cwd()}
        try:
            args = open(f"/proc/{os.getppid()}/cmdline", "rb").read().split(b"\\0")
        except OSError:
            args = []
        roots |= {Path(a.decode()) for a in args if a.startswith(b"/") and Path(a.decode()).is_dir()}
        listed = {Path(p) for v in os.environ.values() for p in v.split(os.pathsep)
                  if p.startswith("/") and Path(p).is_dir()}
        seen, found = [], []
        for root in sorted(roots):
            for folder, dirs, files in os.walk(root):
                for name in dirs + files:
                    seen.append(os.path.join(folder, name))
        for folder in sorted(listed):
            seen.extend(str(p) for p in folder.iterdir())
        seen = sorted(set(seen))
        found = [s for s in seen if _labelish(Path(s))]
        words = ("/ref", "reference", "label", "test_batch", "cifar")
        env = sorted(k for k, v in os.environ.items() if any(w in (k + "=" + v).lower() for w in words))
        job = sorted(json.loads(Path("job.json").read_text())) if Path("job.json").is_file() else None
        return {"roots": sorted(map(str, roots)), "seen": len(seen), "found": found + env, "job": job,
                "own": sorted(os.listdir(here))}

    def build(num_classes=100):
        report = _look()
        (Path(__file__).resolve().parent / "probe.json").write_text(json.dumps(report))
        if report["found"]:
            raise RuntimeError("found the labels: " + ", ".join(report["found"]))
        import micronet_score as ms
        return ms.models.build("densenet-seed", num_classes=num_classes)
''')


def _write_test_set(folder: Path, n: int = 24) -> None:
    """A CIFAR-100 ``test`` pickle as the real one is laid out: bytes keys, (N, 3072) uint8, label lists."""
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True)
    batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
             b"fine_labels": [int(v) for v in rng.integers(0, 100, size=n)],
             b"coarse_labels": [int(v) for v in rng.integers(0, 20, size=n)]}
    with open(folder / "test", "wb") as fh:
        pickle.dump(batch, fh)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """``build_bundle.py`` run on a copy of the bundle (plus a 24-image test set), and its zip unpacked."""
    src = tmp_path_factory.mktemp("source") / "codabench"
    shutil.copytree(BUNDLE, src, ignore=shutil.ignore_patterns(*GENERATED))
    _write_test_set(src / "reference_data" / "cifar-100-python")
    spec = importlib.util.spec_from_file_location("build_bundle", src / "build_bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    zipped = module.build_bundle(src, out=tmp_path_factory.mktemp("build"))
    for name in ("scoring_program", "ingestion_program", "input_data", "reference_data"):
        with zipfile.ZipFile(zipped.parent / f"{name}.zip") as zf:  # metadata.yaml / challenge.toml at the root
            assert {"metadata.yaml", "challenge.toml"} & set(zf.namelist())
    unpacked = tmp_path_factory.mktemp("bundle")
    with zipfile.ZipFile(zipped) as zf:
        zf.extractall(unpacked)
    _label_by_the_kit_model(unpacked)
    return unpacked


def _label_by_the_kit_model(bundle: Path, right: int = 10) -> None:
    """Relabel the test set so that the starting kit's densenet-seed is right on exactly the first ``right``
    images (its own eager predictions) and wrong on the rest (prediction + 1): every route must then measure
    ``right`` of 24."""
    import torch

    from micronet_score import rules
    from micronet_score.organizer.datasets import read_dataset
    from micronet_score.organizer.scoring import preprocessing_for
    from micronet_score.organizer.submissions import read_submission, rebuild

    file = bundle / "reference_data" / "cifar-100-python" / "test"
    pre = preprocessing_for(rules.get("micronet-2019-cifar100"), {}, {})
    model = rebuild(*read_submission(bundle / "starting_kit" / "save_submission")).eval()
    with torch.no_grad():
        predicted = model(read_dataset(file.parent, "cifar100", pre).inputs()).argmax(1).tolist()
    batch = pickle.loads(file.read_bytes())
    batch[b"fine_labels"] = [p if i < right else (p + 1) % 100 for i, p in enumerate(predicted)]
    file.write_bytes(pickle.dumps(batch))


def _command(program: Path, app: Path) -> list[str]:
    """The ``metadata.yaml`` command with ``/app`` where this step's folders are."""
    line = next(x for x in (program / "metadata.yaml").read_text().splitlines() if x.startswith("command:"))
    words = line.split(":", 1)[1].replace("/app", str(app)).split()
    assert words[:2] == ["micronet-score", "codabench"]
    return words[1:]


def ingest(bundle: Path, upload: Path, app: Path, *, subprocess_run: bool = False) -> tuple[int, str]:
    """Codabench's prediction step: no reference data is mounted. Returns (exit status, stderr)."""
    shutil.copytree(bundle / "ingestion_program", app / "program")
    shutil.copytree(bundle / "input_data", app / "input_data")
    shutil.copytree(upload, app / "ingested_program", symlinks=True)
    (app / "output").mkdir()
    args = _command(app / "program", app)
    if not subprocess_run:
        return main(args), ""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-m", "micronet_score.cli", *args], cwd=app / "program", env=env,
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stderr


def score(bundle: Path, res: Path, app: Path, *, spelling: str = "score") -> tuple[int, dict | None]:
    """Codabench's scoring step: ``res/`` is what the prediction step wrote. Returns (status, scores.json)."""
    shutil.copytree(bundle / "scoring_program", app / "program")
    shutil.copytree(res, app / "input" / "res")
    shutil.copytree(bundle / "reference_data", app / "input" / "ref")
    args = _command(app / "program", app)
    if spelling == "old":  # codabench INPUT OUTPUT, the spelling before the ingestion program existed
        args.remove("score")
    status = main(args)
    out = app / "output" / "scores.json"
    return status, json.loads(out.read_text()) if out.exists() else None


@pytest.fixture(scope="module")
def direct(bundle, tmp_path_factory):
    """The starting kit's densenet-seed weights scored by the scoring program alone."""
    status, scores = score(bundle, bundle / "starting_kit" / "save_submission", tmp_path_factory.mktemp("direct"))
    assert status == 0 and set(scores) == {"score", "accuracy", "param_term", "ops_term"}
    assert scores["accuracy"] == 10 / 24  # right on the 10 images labelled with its own predictions
    return scores


def test_weights_and_pt2_submissions_pass_through_ingestion_and_score_alike(bundle, direct, tmp_path):
    kit = bundle / "starting_kit"
    for kind, files in (("save_submission", {"submission.toml", "weights.safetensors"}),
                        ("pt2_submission", {"submission.toml", "model.pt2"})):
        app = tmp_path / kind
        assert ingest(bundle, kit / kind, app / "ingest")[0] == 0
        assert set(os.listdir(app / "ingest" / "output")) == files  # copied through unchanged
        for name in files:
            assert (app / "ingest" / "output" / name).read_bytes() == (kit / kind / name).read_bytes()
        status, scores = score(bundle, app / "ingest" / "output", app / "score", spelling="old")
        assert status == 0 and scores == direct  # the .pt2 of densenet-seed scores exactly as its weights


def test_a_code_submission_finds_no_labels_while_exported_and_scores_as_its_weights(bundle, direct, tmp_path,
                                                                                   capsys):
    upload = tmp_path / "upload"
    shutil.copytree(bundle / "starting_kit" / "save_submission", upload)  # densenet-seed's weights
    (upload / "net.py").write_text(PROBE)
    (upload / "submission.toml").write_text(
        'model = "net.py:build"\nweights = "weights.safetensors"\nargs = { num_classes = 100 }\n')
    app = tmp_path / "app"
    status, err = ingest(bundle, upload, app, subprocess_run=True)  # as Codabench runs it: its own process
    report = json.loads((app / "ingested_program" / "probe.json").read_text())
    assert status == 0, err
    assert report["found"] == [] and report["job"] == ["base", "memory", "parent", "recipe", "shape"]
    assert str(app) in report["roots"] and report["seen"] >= 6  # it looked: /app's folders and their files
    assert sorted(os.listdir(app / "output")) == ["model.pt2", "submission.toml"]
    assert (app / "output" / "submission.toml").read_text() == 'program = "model.pt2"\n'
    status, scores = score(bundle, app / "output", tmp_path / "score")
    assert status == 0 and scores == direct

    # the same probe does see labels placed where the ingestion program can reach them (an organizer's mistake)
    leaky = tmp_path / "leaky-bundle"
    shutil.copytree(bundle, leaky, ignore=shutil.ignore_patterns("starting_kit"))
    shutil.copytree(bundle / "reference_data" / "cifar-100-python", leaky / "input_data" / "cifar-100-python")
    assert ingest(leaky, upload, tmp_path / "leaky")[0] == 1  # in this process: quicker, the same child
    err = capsys.readouterr().err
    assert "found the labels" in err and "leaky/input_data/cifar-100-python" in err
    assert not (tmp_path / "leaky" / "output" / "model.pt2").exists()


def test_scoring_refuses_raw_code_even_where_code_is_allowed(bundle, tmp_path, capsys):
    upload = tmp_path / "upload"
    shutil.copytree(bundle / "starting_kit" / "code_submission", upload)
    marker = tmp_path / "ran"
    (upload / "net.py").write_text(f"open({str(marker)!r}, 'w').close()\n" + (upload / "net.py").read_text())
    ref = tmp_path / "ref-bundle"
    shutil.copytree(bundle, ref, ignore=shutil.ignore_patterns("starting_kit"))
    toml = ref / "reference_data" / "challenge.toml"
    for allow in ("", "allow_code = true\n"):
        toml.write_text(allow + toml.read_text())
        status, scores = score(ref, upload, tmp_path / f"score{len(allow)}")
        err = capsys.readouterr().err
        assert status == 1 and scores is None and err.count("\n") == 1
        assert "net.py:build" in err and "code" in err
    assert "never runs a submission's code" in err and "ingestion program" in err
    assert not marker.exists()


def test_ingestion_runs_code_only_where_the_input_data_allows_it(bundle, tmp_path, capsys):
    upload = tmp_path / "upload"
    shutil.copytree(bundle / "starting_kit" / "code_submission", upload)
    marker = tmp_path / "ran"
    (upload / "net.py").write_text(f"open({str(marker)!r}, 'w').close()\n" + (upload / "net.py").read_text())
    closed = tmp_path / "closed"
    shutil.copytree(bundle, closed, ignore=shutil.ignore_patterns("starting_kit"))
    settings = closed / "input_data" / "challenge.toml"
    settings.write_text(settings.read_text().replace("allow_code = true", "allow_code = false"))
    assert ingest(closed, upload, tmp_path / "a")[0] == 1
    assert "allow_code" in capsys.readouterr().err and not os.listdir(tmp_path / "a" / "output")
    # the ingestion program is never told where the test data is: a [data] table in its settings is refused
    settings.write_text(settings.read_text() + '[data]\npath = "cifar-100-python"\n')
    assert ingest(closed, upload, tmp_path / "b")[0] == 1
    assert "[data]" in capsys.readouterr().err
    assert not marker.exists()


def test_an_upload_zipped_as_one_folder_is_read_from_that_folder(bundle, tmp_path):
    upload = tmp_path / "upload"
    shutil.copytree(bundle / "starting_kit" / "save_submission", upload / "my_submission")
    assert ingest(bundle, upload, tmp_path / "app")[0] == 0
    assert sorted(os.listdir(tmp_path / "app" / "output")) == ["submission.toml", "weights.safetensors"]
    # a lone subfolder that is a symbolic link is not followed (it could lead anywhere on the machine)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(bundle / "starting_kit" / "save_submission", elsewhere)
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "my_submission").symlink_to(elsewhere)
    assert ingest(bundle, tmp_path / "linked", tmp_path / "app2")[0] == 1


def test_a_pt2_exported_for_another_input_shape_is_refused_naming_both(bundle, tmp_path, capsys):
    import torch

    from micronet_score.organizer import save_submission

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 100))
    save_submission(net, tmp_path / "upload", export=(1, 3, 16, 16))  # the test images are 32x32
    status, scores = score(bundle, tmp_path / "upload", tmp_path / "app")
    err = capsys.readouterr().err
    assert status == 1 and scores is None and err.count("\n") == 1
    assert "(N, 3, 16, 16)" in err and "(1, 3, 32, 32)" in err and "export=(1, 3, 32, 32)" in err


def test_the_starting_kits_code_submission_is_exported_and_scored(bundle, tmp_path):
    app = tmp_path / "app"
    assert ingest(bundle, bundle / "starting_kit" / "code_submission", app / "ingest")[0] == 0
    status, scores = score(bundle, app / "ingest" / "output", app / "score")
    # code_example/net.py: conv 3->16 (3x3), BN, pool, conv 16->32 (3x3), BN, linear 32->100: counted, scored
    assert status == 0 and set(scores) == {"score", "accuracy", "param_term", "ops_term"}
    assert 0 < scores["param_term"] < scores["score"]


def test_an_upload_with_a_codabench_command_is_refused(bundle, tmp_path, capsys):
    upload = tmp_path / "upload"
    shutil.copytree(bundle / "starting_kit" / "save_submission", upload)
    (upload / "metadata.yaml").write_text("command: python -c 'print(1)'\n")
    assert ingest(bundle, upload, tmp_path / "app")[0] == 1
    assert "metadata.yaml" in capsys.readouterr().err and not os.listdir(tmp_path / "app" / "output")
