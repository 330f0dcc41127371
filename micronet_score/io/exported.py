"""Loading an exported program (a ``.pt2`` file from ``torch.export.save``) without running anything it carries.

A ``.pt2`` is a zip: the graph as JSON (``models/model.json``), raw weight and constant bytes
(``data/weights/weight_N``, ``data/constants/tensor_N``) listed in two JSON configs, and pickles made with
``torch.save``: the example inputs (``data/sample_inputs/model.pt``) and any weight or constant the config marks
``use_pickle``. ``torch.export.load`` (torch 2.13) runs code from such a file in five ways, all checked here
*before* it is called:

* pickles loaded with ``weights_only=False`` (pickled weights and constants; the example inputs after a
  weights-only attempt fails; whole legacy ``data/weights/model.pt`` files), ``pickle.loads`` of
  ``opaque_obj_*`` constants and TorchScript ``custom_obj_*`` constants: every pickle record is read from its
  opcodes (:mod:`~micronet_score.io.pickle_scan`, nothing executed) and refused if it imports a global that
  ``torch.load(weights_only=True)`` would refuse; object constants and legacy files are refused by name;
* a node's target is resolved by name from ``torch``, ``operator`` or ``math`` (``torch.serialization.load``
  would be called when the graph runs): only ``aten``/``prims`` operators, ``operator.getitem``, torch's
  symbolic-shape helpers and ``torch.cond`` are accepted; a custom namespace (``evil::op``) is refused by name,
  and so are the operators that touch files (``aten::from_file``, ``aten::save``);
* symbolic shape expressions (``expr_str``) are parsed with ``sympy.sympify``, which evaluates Python: only
  symbol names, numbers, operators and torch's shape functions are accepted;
* ``guards_code`` is Python source that ``ep.module()`` compiles and runs: it is dropped (the input checks of
  the graph's own range constraints stay);
* ``data/aotinductor/`` holds compiled shared libraries: any record outside the layout ``torch.export.save``
  writes is refused, by name.

The zip itself is checked first: truncated or corrupt archives, duplicate record names, compressed records
(``torch.export.save`` writes none) and records that declare more bytes than the file holds are refused. The
file is read once into memory (never reopened between the checks and the load). Every refusal is a
:class:`~micronet_score.errors.CheckpointError` of one line; the loaded program's graph is checked again.
"""

from __future__ import annotations

import io
import json
import logging
import operator
import re
import threading
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from micronet_score import _fake_quant_meta  # noqa: F401 - a loaded fake-quantized program can be re-traced
from micronet_score.errors import CheckpointError
from micronet_score.io.files import clean, open_regular
from micronet_score.io.limits import Limits
from micronet_score.io.pickle_scan import inspect_pickle
from micronet_score.io.torch_zip import _safe_names

__all__ = ["load_exported"]

_FIXED = {"archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id",
          "models/model.json", "data/weights/model_weights_config.json",
          "data/constants/model_constants_config.json", "data/sample_inputs/model.pt"}
_REQUIRED = ("archive_version", "models/model.json", "data/weights/model_weights_config.json",
             "data/constants/model_constants_config.json")
_PAYLOAD_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_OPERATOR = re.compile(r"^torch\.ops\.([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)$")
_NAMESPACES = ("aten", "prims")
_FILE_OPERATORS = {"from_file", "save", "_print", "warn"}  # read or write files, or print
_PYTHON_TARGETS = {
    "_operator.getitem", "_operator.eq", "_operator.ne", "_operator.le", "_operator.ge", "_operator.lt",
    "_operator.gt", "_operator.neg", "_operator.pos", "_operator.mul", "_operator.add", "_operator.sub",
    "_operator.floordiv", "_operator.mod", "_operator.pow", "_operator.truediv", "_operator.and_",
    "_operator.or_", "_operator.lshift", "_operator.rshift", "math.trunc", "torch.sym_not", "torch.sym_int",
    "torch.sym_float", "torch.sym_ite", "torch.sym_max", "torch.sym_min", "torch.sym_sqrt",
    "torch.ops.higher_order.cond",
}
_SYMPY_FUNCTIONS = {
    # no powers or shifts (Pow, PowByNatural, FloatPow, LShift, RShift, ** and ^): 2**2**100 would never finish
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv",
    "FloatTrueDiv", "IntTrueDiv",
    "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat",
    "Identity", "Max", "Min", "Abs", "Eq", "Ne", "Ge", "Gt", "Le", "Lt", "And", "Or", "Not", "true", "false",
    "True", "False", "oo", "zoo", "nan", "Integer", "Float", "Rational", "Mul", "Add", "Symbol",
    "Infinity", "NegativeInfinity", "One", "Zero", "NegativeOne", "Half", "BooleanTrue", "BooleanFalse",
    # a Symbol's assumptions, as srepr writes them: Symbol('s77', positive=True, integer=True)
    "positive", "negative", "integer", "real", "nonnegative", "nonpositive", "nonzero", "zero", "finite",
    "infinite", "even", "odd", "rational", "commutative", "extended_real", "precision",
}
_EXPR_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)|(\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|"
                         r"('[a-z]{1,4}\d+'|'[-+0-9.eE]{1,40}')|(//|<=|>=|==|!=|(?<!\*)\*(?!\*)|[-+/%(),<>&|~=]))")
_SYMBOL = re.compile(r"^[a-z]{1,4}\d+$")  # s0, s77, u3, zuf0 ...


def load_exported(path: str | Path, *, limits: Limits | None = None) -> torch.export.ExportedProgram:
    """The exported program in the ``.pt2`` file at ``path``, loaded only after every check of the module
    docstring passed; a :class:`~micronet_score.errors.CheckpointError` (one line, naming the record and the
    reason) otherwise. ``limits.max_header_bytes`` bounds each JSON record.

    >>> import tempfile, torch, micronet_score as ms
    >>> from micronet_score.io.exported import load_exported
    >>> ep = torch.export.export(torch.nn.Linear(4, 2), (torch.randn(1, 4),))
    >>> path = tempfile.mkdtemp() + "/linear.pt2"
    >>> torch.export.save(ep, path)
    >>> ms.count(load_exported(path), (1, 4)).mults  # 2 outputs x 4 inputs
    8
    """
    limits = limits or Limits()
    with open_regular(path) as opened:
        name = opened.name
        with open(opened.path, "rb") as f:
            data = f.read()
    check_archive(data, name, limits)
    program = _load(data, name)
    check_program(program, name)
    program._guards_code = []  # Python source ep.module() would compile and run: never from a file
    return constants_as_buffers(program, name)


def constants_as_buffers(program: Any, name: str = "the exported program") -> Any:
    """The program with every tensor it ships as stored data: its constants (tensors the model held as plain
    attributes or made in ``forward``) and non-persistent buffers become persistent buffers, so a count prices
    them as the model's stored tensors. In a ``.pt2`` their values are bytes of the file, not something derived
    at load time: a weight hidden in a constant would otherwise be stored for free."""
    import dataclasses

    from torch.export.graph_signature import ExportGraphSignature, InputKind

    signature = program.graph_signature
    specs, state, constants, changed = [], dict(program.state_dict), dict(program.constants), False
    for spec in signature.input_specs:
        moved = spec.kind == InputKind.CONSTANT_TENSOR or (spec.kind == InputKind.BUFFER and not spec.persistent)
        if moved and isinstance(constants.get(spec.target), torch.Tensor):
            state[spec.target] = constants.pop(spec.target)
            spec = dataclasses.replace(spec, kind=InputKind.BUFFER, persistent=True)
            changed = True
        specs.append(spec)
    if not changed:
        return program
    try:
        moved_program = torch.export.ExportedProgram(
            root=program.graph_module, graph=program.graph,
            graph_signature=ExportGraphSignature(specs, signature.output_specs), state_dict=state,
            range_constraints=program.range_constraints, module_call_graph=program.module_call_graph,
            example_inputs=program.example_inputs, constants=constants, verifiers=program.verifiers)
    except Exception as exc:  # noqa: BLE001 - torch's verifier: one line
        raise CheckpointError(f"{name}: its constants cannot be read as stored tensors ({type(exc).__name__}: "
                              f"{clean(str(exc))[:200]}); refused") from None
    moved_program._guards_code = []
    return moved_program


def check_archive(data: bytes, name: str, limits: Limits) -> None:
    """Every check made before ``torch.export.load`` sees the bytes (see the module docstring)."""
    records = _records(data, name)
    for required in _REQUIRED:
        if required not in records:
            raise CheckpointError(f"{name}: no record {required!r}; not a .pt2 written by torch.export.save "
                                  "(save the program with torch.export.save(ep, 'model.pt2'))")
    version = records["archive_version"]
    if _read(data, version) != b"0":
        raise CheckpointError(f"{name}: archive version {clean(_read(data, version)[:20])!r}, this torch reads "
                              "version '0'; export and save the program again with this torch version")
    listed = {"data/weights/": _payloads(data, records, "data/weights/model_weights_config.json", name, limits),
              "data/constants/": _payloads(data, records, "data/constants/model_constants_config.json", name,
                                           limits)}
    pickled = ["data/sample_inputs/model.pt"] if "data/sample_inputs/model.pt" in records else []
    for folder, payloads in listed.items():
        for path_name, use_pickle in payloads.items():
            record = folder + path_name
            if record not in records:
                raise CheckpointError(f"{name}: its config lists {clean(record)!r}, which the archive does not "
                                      "hold; the file is truncated or corrupt")
            if use_pickle:
                pickled.append(record)
    for rel in records:
        folder, _, leaf = rel.rpartition("/")
        if rel in _FIXED or leaf in listed.get(folder + "/", {}):
            continue
        raise CheckpointError(f"{name}: record {clean(rel)!r} is not part of what torch.export.save writes "
                              "(graph, weights, constants, example inputs) and is refused"
                              + (" (compiled AOTInductor code would run natively)" if "aotinductor" in rel else ""))
    for rel in pickled:
        _check_pickle(_read(data, records[rel]), rel, name)
    _check_graph(_json(data, records["models/model.json"], "models/model.json", name, limits), name)


def check_program(program: Any, name: str = "the exported program") -> None:
    """The loaded graph (and its subgraphs) calls only accepted operators: the same rule as the JSON check,
    applied to what torch built."""
    for module in program.graph_module.modules():
        graph = getattr(module, "graph", None)
        if graph is None:
            continue
        for node in graph.nodes:
            if node.op in ("placeholder", "output", "get_attr"):
                continue
            if node.op != "call_function":
                raise CheckpointError(f"{name}: graph node {clean(node.name)!r} is a {node.op} node; an exported "
                                      "program calls operators only, refused")
            _check_target(_target_name(node.target), name)
            _check_eval_mode(node, name)


def _check_eval_mode(node: Any, name: str) -> None:
    """An operator in training mode (batch statistics, active dropout) is refused: the program would evaluate
    differently from the model in eval mode, and be counted so."""
    schema = getattr(node.target, "_schema", None)
    if schema is None:
        return
    for i, argument in enumerate(schema.arguments):
        if argument.name in ("training", "train"):
            value = node.args[i] if i < len(node.args) else node.kwargs.get(argument.name)
            if value is True:
                raise CheckpointError(f"{name}: operator {schema.name} runs in training mode (node "
                                      f"{clean(node.name)!r}): the program was exported from a model in training "
                                      "mode; call model.eval() before torch.export.export (save_submission(..., "
                                      "export=) does)")


def _target_name(target: Any) -> str:
    if isinstance(target, torch._ops.OpOverload):
        return f"torch.ops.{target.namespace}.{target._opname}.{target._overloadname}"
    if target is operator.getitem:
        return "_operator.getitem"
    if isinstance(target, torch._ops.HigherOrderOperator):
        return f"torch.ops.higher_order.{target.name()}"
    module = getattr(target, "__module__", None) or ""
    return f"{module}.{getattr(target, '__name__', repr(target))}"


def _check_target(target: Any, name: str) -> None:
    if not isinstance(target, str):
        raise CheckpointError(f"{name}: a graph node has a target that is not a name; refused")
    if target in _PYTHON_TARGETS:
        return
    match = _OPERATOR.match(target)
    if match is None:
        raise CheckpointError(f"{name}: a graph node calls {clean(target)[:120]!r}, which is not an aten or prims "
                              "operator: an exported program runs operators only, refused")
    namespace, op = match.group(1), match.group(2)
    if namespace not in _NAMESPACES:
        raise CheckpointError(f"{name}: a graph node calls operator {namespace}::{op} of the custom namespace "
                              f"{namespace!r}; only aten and prims operators are run, refused")
    if op in _FILE_OPERATORS:
        raise CheckpointError(f"{name}: a graph node calls {namespace}::{op}, which reads or writes files or "
                              "prints; refused")


def _records(data: bytes, name: str) -> dict[str, zipfile.ZipInfo]:
    """The archive's records by their name under the archive's folder, after the zip-level checks."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise CheckpointError(f"{name}: not a readable .pt2 archive ({clean(exc)}): truncated, corrupt, or not "
                              "written by torch.export.save") from None
    if not infos:
        raise CheckpointError(f"{name}: an empty zip archive, not a .pt2 program")
    roots = {info.filename.partition("/")[0] for info in infos}
    if len(roots) != 1 or any("/" not in info.filename for info in infos):
        raise CheckpointError(f"{name}: its records are not all under one archive folder; not a .pt2 written by "
                              "torch.export.save")
    records: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        rel = info.filename.partition("/")[2]
        parts = rel.split("/")
        if rel in records:
            raise CheckpointError(f"{name}: record {clean(rel)!r} appears twice; which one a reader takes is not "
                                  "defined, refused")
        if not rel or ".." in parts or "" in parts or rel.startswith("/"):
            raise CheckpointError(f"{name}: record name {clean(info.filename)!r} is not a plain relative path; "
                                  "refused")
        if info.compress_type != zipfile.ZIP_STORED:
            raise CheckpointError(f"{name}: record {clean(rel)!r} is compressed (method {info.compress_type}); "
                                  "torch.export.save stores records uncompressed, so this file was re-zipped: "
                                  "refused (save it again with torch.export.save)")
        end = info.header_offset + 30 + len(info.filename.encode()) + info.compress_size
        if info.file_size != info.compress_size or end > len(data):
            raise CheckpointError(f"{name}: record {clean(rel)!r} declares {info.file_size:,} bytes but the file "
                                  f"holds {len(data):,} in all; the file is truncated or crafted, refused")
        records[rel] = info
    return records


def _read(data: bytes, info: zipfile.ZipInfo) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read(info)


def _json(data: bytes, info: zipfile.ZipInfo, rel: str, name: str, limits: Limits) -> Any:
    if info.file_size > limits.max_header_bytes:
        raise CheckpointError(f"{name}: record {rel!r} declares {info.file_size:,} bytes, over the limit of "
                              f"{limits.max_header_bytes:,} (max_header_bytes); if you trust the file, raise it")
    try:
        return json.loads(_read(data, info).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{name}: record {rel!r} is not valid JSON ({type(exc).__name__}); the file is "
                              "corrupt or crafted, refused") from None


def _payloads(data: bytes, records: dict[str, zipfile.ZipInfo], rel: str, name: str,
              limits: Limits) -> dict[str, bool]:
    """path_name -> use_pickle of every payload a weights or constants config lists."""
    config = _json(data, records[rel], rel, name, limits)
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise CheckpointError(f"{name}: {rel!r} has no 'config' table; the file is corrupt, refused")
    out: dict[str, bool] = {}
    for fqn, meta in entries.items():
        path_name = meta.get("path_name") if isinstance(meta, dict) else None
        if not isinstance(path_name, str) or not _PAYLOAD_NAME.match(path_name) or path_name in (".", ".."):
            raise CheckpointError(f"{name}: {rel!r} gives {clean(fqn)[:80]!r} an invalid record name; refused")
        if path_name == "model.pt":
            raise CheckpointError(f"{name}: {rel!r} names the legacy record 'model.pt', which torch would unpickle "
                                  "whole; refused (save the program again with torch.export.save)")
        if path_name.startswith(("custom_obj_", "opaque_obj_")):
            raise CheckpointError(f"{name}: constant {clean(fqn)[:80]!r} is a Python or TorchScript object "
                                  f"({path_name}), which loading would unpickle and could run code; refused. "
                                  "Export a model whose constants are tensors")
        out[path_name] = bool(meta.get("use_pickle", False))
    return out


def _check_pickle(blob: bytes, rel: str, name: str) -> None:
    """A ``torch.save`` blob (a zip holding ``data.pkl``) or a bare pickle: refused when it imports any
    global a weights-only load refuses."""
    pickles = [blob]
    if blob[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(blob)) as inner:
                pickles = [inner.read(i) for i in inner.infolist() if i.filename.endswith(".pkl")]
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
            raise CheckpointError(f"{name}: record {rel!r} is a corrupt torch.save archive ({clean(exc)}); "
                                  "refused") from None
    safe = _safe_names()
    for pickled in pickles:
        if _extension_codes(pickled):
            raise CheckpointError(f"{name}: record {rel!r} is a pickle that imports through the copyreg extension "
                                  "registry (EXT opcodes), which could run code while loading: refused")
        asked = [g for g in inspect_pickle(pickled).globals if g not in safe]
        if asked:
            shown = ", ".join(clean(g) for g in asked[:5]) + (", ..." if len(asked) > 5 else "")
            raise CheckpointError(f"{name}: record {rel!r} is a pickle that imports {shown}, which could run code "
                                  "while loading: refused (micronet-score never runs code from a submission)")


def _extension_codes(pickled: bytes) -> bool:
    """True when the pickle uses EXT1/EXT2/EXT4 (a global named by a registered code, not by its name)."""
    import pickletools

    try:
        return any(op.name.startswith("EXT") for op, _, _ in pickletools.genops(pickled))
    except (ValueError, IndexError, KeyError, TypeError):  # malformed: torch refuses it on its own
        return False


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    """(key, value) for every dict entry in a JSON value, depth first, without recursion
    (a crafted file may nest deeply)."""
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, dict):
            for key, item in current.items():
                yield key, item
                if isinstance(item, (dict, list)):
                    pending.append(item)
        elif isinstance(current, list):
            pending.extend(item for item in current if isinstance(item, (dict, list)))


def _check_graph(program: Any, name: str) -> None:
    if not isinstance(program, dict) or not isinstance(program.get("graph_module"), dict):
        raise CheckpointError(f"{name}: models/model.json holds no graph_module; not an exported program")
    guards = program.get("guards_code", [])
    if not isinstance(guards, list) or not all(isinstance(g, str) for g in guards):
        raise CheckpointError(f"{name}: models/model.json has a malformed guards_code; refused")
    for key in (program.get("range_constraints") or {}):
        _check_expr(key, name)
    for key, value in _walk(program):
        if key == "nodes" and isinstance(value, list):
            for node in value:
                _check_target(node.get("target") if isinstance(node, dict) else None, name)
        elif key == "expr_str":
            _check_expr(value, name)
        elif key in ("as_custom_obj", "custom_obj_values") and value:
            raise CheckpointError(f"{name}: the graph passes a TorchScript object, which loading would unpickle; "
                                  "refused. Export a model whose constants are tensors")


def _check_expr(expr: Any, name: str) -> None:
    """A symbolic shape expression: symbol names, numbers, operators and torch's shape functions only (sympy
    evaluates the string as Python)."""
    if not isinstance(expr, str) or len(expr) > 10_000:
        raise CheckpointError(f"{name}: a symbolic shape expression is not a short string; refused")
    position = 0
    while position < len(expr):
        match = _EXPR_TOKEN.match(expr, position)
        if match is None or match.end() == position:
            if expr[position:].strip() == "":
                return
            raise CheckpointError(f"{name}: symbolic shape expression {clean(expr)[:80]!r} holds "
                                  f"{clean(expr[position:position + 20])!r}, which is not part of a shape "
                                  "formula; refused (sympy would evaluate it as Python)")
        word = match.group(1)
        if word is not None and not (_SYMBOL.match(word) or word in _SYMPY_FUNCTIONS):
            raise CheckpointError(f"{name}: symbolic shape expression {clean(expr)[:80]!r} names {clean(word)!r}, "
                                  "which is neither a shape symbol nor a shape function; refused (sympy would "
                                  "evaluate it as Python)")
        position = match.end()


#: torch.export.load keeps its deserializer in a global: two threads loading at once (a Dask worker's threads)
#: make the second fail, so loads take turns.
_LOAD_LOCK = threading.Lock()


def _load(data: bytes, name: str) -> Any:
    with _LOAD_LOCK:
        return _load_one(data, name)


def _load_one(data: bytes, name: str) -> Any:
    logger = logging.getLogger("torch.export")
    level = logger.level
    try:
        logger.setLevel(logging.ERROR)  # torch logs a failed load as a warning, then retries the legacy format
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.load(io.BytesIO(data))
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch's reasons are many; one line each
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{name}: torch.export.load cannot read it ({type(exc).__name__}: "
                              f"{clean(first)[:200]}); export and save the program again with this torch "
                              "version") from None
    finally:
        logger.setLevel(level)
