"""``load_exported``: a ``.pt2`` is loaded only when nothing in it can run code, and a ``.pt2`` of every zoo
model counts and scores exactly as the eager model. Hostile files are built here from a real one."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import struct
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

import micronet_score as ms
from micronet_score.errors import CheckpointError
from micronet_score.io.exported import load_exported

X = torch.randn(2, 4)


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc(x)))


class Touch:
    """Unpickling this runs ``touch <path>``: the marker file tells whether a load ran code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # noqa: ANN204
        return os.system, (f"touch '{self.path}'",)


def _export(model: nn.Module, args: tuple, path: Path, **kwargs) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.export.save(torch.export.export(model, args, **kwargs), str(path))
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[str, dict[str, bytes]]:
    """The records of a real .pt2 of ``Small``: (archive folder, {name under it: bytes})."""
    path = _export(Small().eval(), (X,), tmp_path_factory.mktemp("pt2") / "small.pt2")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        root = names[0].partition("/")[0]
        return root, {n.partition("/")[2]: z.read(n) for n in names}


def _write(path: Path, root: str, records: dict[str, bytes], *, extra: list[tuple[str, bytes]] = (),
           compress: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compress) as z:
        for name, data in [*records.items(), *extra]:
            z.writestr(f"{root}/{name}", data)
    return path


def _graph(records: dict[str, bytes]) -> dict:
    return json.loads(records["models/model.json"])


def _with_graph(records: dict[str, bytes], program: dict) -> dict[str, bytes]:
    return {**records, "models/model.json": json.dumps(program).encode()}


def _load_quietly(path: Path) -> None:
    with warnings.catch_warnings(), contextlib.suppress(Exception):  # only whether the code ran matters
        warnings.simplefilter("ignore")
        torch.export.load(str(path))


def test_a_real_program_loads_and_counts(tmp_path, base):
    root, records = base
    ep = load_exported(_write(tmp_path / "ok.pt2", root, records))
    r = ms.count(ep, X)
    # fc: 3 outputs x 4 inputs = 12 mults; relu 3 (one per element); head: 2 x 3 = 6 -> 21 per example
    assert r.mults == 21
    # per layer under the original names; the functional relu runs in the root module
    assert {row.name: row.mults for row in r.layers} == {"": 3, "fc": 12, "head": 6}


def _constant_pickle(records: dict[str, bytes], blob: bytes) -> dict[str, bytes]:
    config = {"config": {"evil": {"path_name": "tensor_0", "is_param": False, "use_pickle": True,
                                  "tensor_meta": None}}}
    return {**records, "data/constants/model_constants_config.json": json.dumps(config).encode(),
            "data/constants/tensor_0": blob}


def _weight_pickle(records: dict[str, bytes], blob: bytes) -> dict[str, bytes]:
    config = json.loads(records["data/weights/model_weights_config.json"])
    first = next(iter(config["config"]))
    config["config"][first] = {**config["config"][first], "use_pickle": True}
    path_name = config["config"][first]["path_name"]
    return {**records, "data/weights/model_weights_config.json": json.dumps(config).encode(),
            f"data/weights/{path_name}": blob}


def _torch_saved(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("where", ["constant", "weight", "sample_inputs"])
@pytest.mark.parametrize("form", ["pickle", "torch.save"])
def test_a_code_running_pickle_is_refused_and_never_run(tmp_path, base, where, form):
    root, records = base
    marker = tmp_path / "ran"
    blob = pickle.dumps(Touch(marker)) if form == "pickle" else _torch_saved(Touch(marker))
    hostile = {"constant": _constant_pickle, "weight": _weight_pickle,
               "sample_inputs": lambda r, b: {**r, "data/sample_inputs/model.pt": b}}[where](records, blob)
    path = _write(tmp_path / "evil.pt2", root, hostile)
    with pytest.raises(CheckpointError, match=r"imports (posix|os|nt)\.system.*refused"):
        load_exported(path)
    assert not marker.exists()


def test_torch_export_load_itself_runs_the_pickle(tmp_path, base):
    """Why the checks exist: torch.export.load unpickles a pickled constant with weights_only=False."""
    root, records = base
    marker = tmp_path / "ran"
    path = _write(tmp_path / "evil.pt2", root, _constant_pickle(records, pickle.dumps(Touch(marker))))
    _load_quietly(path)
    assert marker.exists()


@pytest.mark.parametrize(("target", "match"), [
    ("torch.ops.evil.op.default", "custom namespace 'evil'"),
    ("torch.serialization.load", "not an aten or prims operator"),
    ("builtins.exec", "not an aten or prims operator"),
    ("_operator.methodcaller", "not an aten or prims operator"),
    ("#evil/op", "not an aten or prims operator"),
    ("torch.ops.aten.from_file.default", "reads or writes files"),
])
def test_a_graph_calling_an_unknown_operator_is_refused(tmp_path, base, target, match):
    root, records = base
    program = _graph(records)
    nodes = program["graph_module"]["graph"]["nodes"]
    next(n for n in nodes if n["target"] == "torch.ops.aten.linear.default")["target"] = target
    path = _write(tmp_path / "evil.pt2", root, _with_graph(records, program))
    with pytest.raises(CheckpointError, match=match):
        load_exported(path)


def test_a_custom_operator_of_a_real_export_is_refused(tmp_path):
    @torch.library.custom_op("micronet_test::double", mutates_args=())
    def double(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    @double.register_fake
    def _(x):
        return torch.empty_like(x)

    class UsesCustom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return double(x)

    path = _export(UsesCustom(), (X,), tmp_path / "custom.pt2")
    with pytest.raises(CheckpointError, match="micronet_test::double of the custom namespace"):
        load_exported(path)


@pytest.mark.parametrize("expr", ["__import__('os').system(\"touch {marker}\")", "2**2**100", "Pow(10, 10**9)"])
def test_a_python_expression_in_a_shape_is_refused(tmp_path, base, expr):
    root, records = base
    marker = tmp_path / "ran"
    program = _graph(records)
    # sympify evaluates the text as Python (the first would run a command, the others never finish)
    program["range_constraints"] = {expr.format(marker=marker): {"min_val": 1, "max_val": 2}}
    path = _write(tmp_path / "evil.pt2", root, _with_graph(records, program))
    with pytest.raises(CheckpointError, match="symbolic shape expression"):
        load_exported(path)
    assert not marker.exists()


def test_guards_code_is_never_run(tmp_path, base):
    root, records = base
    marker = tmp_path / "ran"
    program = _graph(records)
    program["guards_code"] = [f"__import__('os').system(\"touch {marker}\") == 0"]
    path = _write(tmp_path / "guards.pt2", root, _with_graph(records, program))
    ep = load_exported(path)
    ep.module()(X)
    ms.count(ep, X)
    assert not marker.exists()
    # torch itself compiles the guards into the module and runs them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.export.load(str(path)).module()(X)
    assert marker.exists()


def test_truncated_archive_is_refused(tmp_path, base):
    root, records = base
    data = _write(tmp_path / "ok.pt2", root, records).read_bytes()
    (tmp_path / "cut.pt2").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable .pt2 archive"):
        load_exported(tmp_path / "cut.pt2")


@pytest.mark.parametrize("field", ["uncompressed", "both"])
def test_a_huge_declared_size_is_refused_before_reading(tmp_path, base, field):
    root, records = base
    data = bytearray(_write(tmp_path / "ok.pt2", root, records).read_bytes())
    # the central directory entry of models/model.json: compressed size at +20, uncompressed size at +24
    name = f"{root}/models/model.json".encode()
    at = data.find(b"PK\x01\x02")
    while data[at + 46: at + 46 + len(name)] != name:
        at = data.find(b"PK\x01\x02", at + 4)
    huge = 0xFFFF_FFF0
    struct.pack_into("<I", data, at + 24, huge)
    if field == "both":
        struct.pack_into("<I", data, at + 20, huge)
    (tmp_path / "bomb.pt2").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="declares 4,294,967,280 bytes"):
        load_exported(tmp_path / "bomb.pt2")


def test_a_compressed_record_is_refused(tmp_path, base):
    root, records = base
    path = _write(tmp_path / "zipped.pt2", root, records, compress=zipfile.ZIP_DEFLATED)
    with pytest.raises(CheckpointError, match="compressed"):
        load_exported(path)


def test_duplicate_records_are_refused(tmp_path, base):
    root, records = base
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        path = _write(tmp_path / "dup.pt2", root, records, extra=[("models/model.json", b"{}")])
    with pytest.raises(CheckpointError, match="appears twice"):
        load_exported(path)


@pytest.mark.parametrize(("record", "match"), [
    ("data/aotinductor/model/model.so", "AOTInductor"),
    ("data/weights/model.pt", "not part of what torch.export.save writes"),
    ("extra/notes.txt", "not part of what torch.export.save writes"),
])
def test_records_outside_the_layout_are_refused(tmp_path, base, record, match):
    root, records = base
    path = _write(tmp_path / "more.pt2", root, {**records, record: b"\x7fELF"})
    with pytest.raises(CheckpointError, match=match):
        load_exported(path)


def test_object_constants_are_refused(tmp_path, base):
    root, records = base
    config = {"config": {"obj": {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True,
                                 "tensor_meta": None}}}
    hostile = {**records, "data/constants/model_constants_config.json": json.dumps(config).encode(),
               "data/constants/opaque_obj_0": b"\x80\x04N."}
    with pytest.raises(CheckpointError, match="Python or TorchScript object"):
        load_exported(_write(tmp_path / "obj.pt2", root, hostile))


def test_not_a_file_and_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="directory"):
        load_exported(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_exported(tmp_path / "absent.pt2")


def test_dynamic_batch_and_cond_programs_load(tmp_path):
    dynamic = _export(Small(), (X,), tmp_path / "dyn.pt2",
                      dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}})
    ep = load_exported(dynamic)
    assert ep.module()(torch.randn(7, 4)).shape == (7, 2)
    # 7 examples: the per-example count does not change with the batch (21 mults, as above)
    assert ms.count(ep, torch.randn(7, 4)).mults == 21

    class Branch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 2)
            self.b = nn.Linear(4, 2, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cond(x.sum() > 0, lambda t: self.a(t), lambda t: self.b(t), (x,))

    ep = load_exported(_export(Branch(), (X,), tmp_path / "cond.pt2"))
    positive = torch.ones(2, 4)  # the shape it was exported with
    # the taken branch a: 2 x 4 = 8 mults per example, plus the predicate's one comparison for the batch of
    # 2 (0.5 per example) -> 8.5; the other branch (b) is never run
    r = ms.count(ep, positive)
    assert r.mults == 8.5
    assert ms.count(ep, -positive).mults == 8.5  # b: the same shape without a bias


# the zoo's natural rule sets: by input size (operator-level conventions; the course's leaf-module counter
# cannot follow an exported program) and the language model's per-token rules
_RULES = {(1, 3, 32, 32): "micronet-2019-cifar100", (1, 3, 224, 224): "micronet-2019-imagenet"}
# smaller builds of the same architecture code where the builder takes sizes (file size and export time);
# wrn-28-10 keeps the full size
_SMALLER = {"wrn": {"depth": 10, "width": 2}, "densenet-cifar": {"blocks": (2, 4, 6, 4)},
            "lstm-lm-wikitext103": {"num_classes": 1000, "embed_dim": 64, "hidden_size": 128}}


def _figures(r: ms.Report) -> tuple:
    return (r.params, r.nonzero_params, r.mask_bits, r.mults, r.adds, r.param_storage, r.math_ops,
            r.params_by_bits, r.mults_by_bits)


@pytest.mark.parametrize("name", ms.models.names())
def test_a_pt2_of_every_zoo_model_scores_as_the_eager_model(tmp_path, name):
    spec = ms.models.spec(name)
    torch.manual_seed(0)
    model = ms.models.build(name, **_SMALLER.get(name, {})).eval()
    if spec.modality == "tokens":
        inputs, rules = tuple(model.example_inputs()), "micronet-2019-wikitext103"
    else:
        inputs, rules = (torch.randn(spec.input_size),), _RULES[spec.input_size]
    eager = ms.count(model, inputs, rules=rules)
    loaded = ms.count(load_exported(_export(model, inputs, tmp_path / "model.pt2")), inputs, rules=rules)
    assert _figures(loaded) == _figures(eager)
    # operators per original module; stored values are compared in total (a tied weight, the language model's
    # embedding and output, is named after whichever of its two modules the loaded program lists first)
    def rows(r: ms.Report) -> list[tuple]:
        return sorted((row.name, row.type, row.calls, row.mults, row.adds) for row in r.layers if row.mults or row.adds)

    assert rows(loaded) == rows(eager)
    assert ms.score(loaded, rules=rules).value == ms.score(eager, rules=rules).value


def test_save_submission_writes_the_exported_program(tmp_path):
    from micronet_score.organizer.submissions import load_submission, read_toml, save_submission

    model = ms.models.build("wrn", depth=10, width=1)
    model.train()  # the export is made in eval mode, and the model is given back as it was
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(1, 3, 32, 32)
    out = save_submission(model, tmp_path / "sub", export=x)
    assert read_toml(out)["program"] == "model.pt2"
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    program = load_exported(tmp_path / "sub" / "model.pt2")
    # eval mode: the program's batch norms are the inference kernel and fold as the eager count's do
    assert _figures(ms.count(program, x)) == _figures(ms.count(model, x))
    assert load_submission(tmp_path / "sub") is not None  # the weights-only reading still works


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # Python control flow on a value: not exportable
            return self.fc(x)
        return -self.fc(x)


def test_save_submission_export_failure_is_one_line_with_the_ways_out(tmp_path):
    from micronet_score.organizer.errors import SubmissionError
    from micronet_score.organizer.submissions import save_submission

    with pytest.raises(SubmissionError) as caught:
        save_submission(DataDependent(), tmp_path / "sub", model_name="pkg.mod:build", export=X)
    message = str(caught.value)
    assert "\n" not in message
    assert "cannot be exported" in message and "torch.cond" in message and "batch dimension" in message
    assert not (tmp_path / "sub").exists()  # nothing written


def test_docstring_example():
    import doctest

    import micronet_score.io.exported as module

    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0


@pytest.mark.parametrize("decompose", [False, True])
def test_a_program_exported_in_training_mode_is_refused(tmp_path, decompose):
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).train()
    x = torch.randn(2, 3, 2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(model, (x,))
        if decompose:  # aten._native_batch_norm_legit_functional, which has no cost: it would be counted free
            ep = ep.run_decompositions()
        torch.export.save(ep, str(tmp_path / "train.pt2"))
    with pytest.raises(CheckpointError, match="training mode.*model.eval"):
        load_exported(tmp_path / "train.pt2")


class Hidden(nn.Module):
    """Weights kept out of the parameters: a plain tensor attribute (a constant of the program) and a
    non-persistent buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.randn(8, 3, 3, 3)
        self.register_buffer("nb", torch.randn(8, 3, 3, 3), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(x, self.w) + torch.nn.functional.conv2d(x, self.nb)


def test_weights_hidden_in_constants_are_priced_as_stored(tmp_path):
    x = torch.randn(1, 3, 8, 8)
    program = load_exported(_export(Hidden().eval(), (x,), tmp_path / "hidden.pt2"))
    r = ms.count(program, x)
    # both 8 x 3 x 3 x 3 = 216-value tensors are bytes of the file: 432 stored values, not 216 (the constant
    # was free) or 0
    assert {t.name: t.params for t in r.tensors} == {"w": 216, "nb": 216}
    assert r.params == 432


def test_a_protocol_0_inst_pickle_is_refused_and_never_run(tmp_path, base):
    """INST names the callable inline (no GLOBAL opcode): the scanner must still see ``os.system``."""
    root, records = base
    marker = tmp_path / "ran"
    blob = f"(S'touch {marker}'\nios\nsystem\n.".encode()
    path = _write(tmp_path / "inst.pt2", root, _constant_pickle(records, blob))
    with pytest.raises(CheckpointError, match=r"imports os\.system"):
        load_exported(path)
    assert not marker.exists()
    _load_quietly(path)  # torch.export.load itself runs it
    assert marker.exists()


def test_a_pickle_importing_through_extension_codes_is_refused(tmp_path, base):
    root, records = base
    blob = b"\x80\x02\x82\x01)R."  # PROTO 2, EXT1 1 (copyreg's registry), EMPTY_TUPLE, REDUCE, STOP
    path = _write(tmp_path / "ext.pt2", root, _constant_pickle(records, blob))
    with pytest.raises(CheckpointError, match="extension registry"):
        load_exported(path)
