"""Globals and storages read from pickle opcodes, without importing or calling anything."""

import io
import pickle
import sys
import zipfile

import torch

from micronet_score.io.pickle_scan import Global, inspect_pickle


class Marker:
    """Unpickling this would call sys.exit; inspecting must not."""

    def __reduce__(self):
        return (sys.exit, (3,))


def test_globals_of_every_protocol_are_named():
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):  # GLOBAL up to 3, STACK_GLOBAL from 4
        found = inspect_pickle(pickle.dumps({"a": [Marker(), Marker()]}, protocol=protocol)).globals
        assert found == ["sys.exit"], (protocol, found)


def test_storages_of_a_torch_zip():
    buffer = io.BytesIO()
    shared = torch.zeros(3)
    torch.save({"a": shared, "b": shared, "h": torch.ones(2, dtype=torch.float16)}, buffer)
    with zipfile.ZipFile(buffer) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    ids = inspect_pickle(data).persistent_ids
    assert ids == [("storage", Global("torch.FloatStorage"), "0", "cpu", 3),  # the tied tensor: stored once
                   ("storage", Global("torch.HalfStorage"), "1", "cpu", 2)]


def test_truncated_pickle_reports_what_it_saw():
    data = pickle.dumps(Marker(), protocol=2)
    assert inspect_pickle(data[: len(data) // 2 + 8]).globals in ([], ["sys.exit"])
