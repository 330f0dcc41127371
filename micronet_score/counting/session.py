"""Leaving the model exactly as it was, also when several threads count it at once.

Counts of one model take turns (a lock per model): a forward that rewrites its own attributes (pruning hooks
set ``module.weight`` at every call) would otherwise hand one thread's tensors to another's count. Counts of
different models run at the same time. The first count of a model takes a snapshot of its module tree (parameters, buffers, submodules, hooks,
training flags, ``requires_grad`` flags, what each parameter's ``.data`` is, plain attributes); every count
of that model shares it, records the first write into each stored tensor (also through an alias such as
``weight.data``), and the last count to finish puts everything back. torch's global RNG state is shared the
same way: saved by the first running count of the process, restored by the last.
"""

from __future__ import annotations

import contextlib
import gc
import operator
import threading
from collections.abc import Iterator
from typing import Any

import torch

from micronet_score.counting.model_index import ModelIndex
from micronet_score.errors import CountingError, MicronetError

_HOOK_DICTS = (
    "_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks",
    "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
)
_TABLES = ("_parameters", "_buffers", "_modules", *_HOOK_DICTS)

_LOCK = threading.RLock()
_SESSIONS: dict[int, ModelSession] = {}
_TURNS: dict[int, list[Any]] = {}  # id(model) -> [model, its lock (re-entrant: a count inside a forward), users,
#                                    the thread holding it, how many times it holds it]
_RNG: list[Any] = [0, None]  # running counts in the process, saved RNG states


class ModelSession:
    """Everything one model must get back, shared by the counts running on it."""

    def __init__(self, model: torch.nn.Module, index: ModelIndex) -> None:
        self.model = model
        self.users = 0
        self.lock = threading.Lock()
        self.modules = [_snapshot(m) for _, m in index.modules]
        # TorchScript submodules keep their training flag in C++, outside __dict__: saved and put back by hand
        self.flags = [(m, m.training) for _, m in index.modules if "training" not in m.__dict__]
        self.tensors = [(t, t.requires_grad, t.data if _plain(t) else None) for _, t in index.tensors]
        self.writes: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # first write into a stored tensor
        self._storage_owners: dict[int, torch.Tensor] | None = None

    def before_write(self, t: torch.Tensor, model_tensors: dict[int, torch.Tensor]) -> None:
        """``t`` is about to be written in place: keep a copy of the stored tensor it is or aliases."""
        owner = model_tensors.get(id(t))
        if owner is not t:
            owner = self._aliased(t)
            if owner is None:
                return
        if id(owner) in self.writes:
            return
        with self.lock:
            if id(owner) not in self.writes:
                self.writes[id(owner)] = (owner, owner.detach().clone())

    def _aliased(self, t: torch.Tensor) -> torch.Tensor | None:
        """The stored tensor whose memory ``t`` shares (``weight.data``, ``weight.detach()``), if any."""
        if t.is_meta or not _plain(t):
            return None
        if self._storage_owners is None:
            owners: dict[int, torch.Tensor] = {}
            for s, _, _ in self.tensors:
                ptr = _storage_ptr(s)
                if ptr:
                    owners.setdefault(ptr, s)
            self._storage_owners = owners
        ptr = _storage_ptr(t)
        return self._storage_owners.get(ptr) if ptr else None

    def restore(self) -> None:
        """Put the module tree, its tensors' bindings, flags and values back."""
        for m, attrs, lens, tables, nonpersistent in self.modules:
            state = m.__dict__
            if not _same(state, attrs):
                for key in [k for k in state if k not in attrs]:
                    del state[key]
                for key, value in attrs.items():
                    if state.get(key, _MISSING) is not value:
                        state[key] = value
            for name, saved in tables.items():
                current = state[name]
                if not _same(current, saved):
                    current.clear()
                    current.update(saved)
            if lens is None or _lengths(state) != lens:
                for name in _TABLES:
                    current = state.get(name)
                    if isinstance(current, dict) and current and name not in tables:
                        current.clear()
            current = state.get("_non_persistent_buffers_set")
            if current is not None and current != (nonpersistent or set()):
                current.clear()
                current.update(nonpersistent or ())
        with torch.no_grad():
            for t, requires_grad, data in self.tensors:
                if data is not None and not _same_data(t, data):
                    t.data = data
                if t.requires_grad != requires_grad:
                    t.requires_grad_(requires_grad)
            for t, saved in self.writes.values():
                if t.shape != saved.shape:  # an observer resized its buffer
                    t.resize_(saved.shape)
                t.copy_(saved)
        self.writes.clear()
        for m, training in self.flags:
            if m.training != training:
                m.training = training


_MISSING = object()
_TABLE_GETTER = operator.itemgetter(*_TABLES)


def _lengths(state: dict) -> tuple[int, ...] | None:
    """The sizes of a module's tables (one C call for all of them); None when one is missing or not a dict."""
    try:
        return tuple(map(len, _TABLE_GETTER(state)))
    except (KeyError, TypeError):
        return None


def _snapshot(m: torch.nn.Module) -> tuple[Any, ...]:
    """(module, a copy of its __dict__, its tables' sizes, copies of its non-empty tables, its non-persistent
    buffer names). Plain dict copies in C loops: the snapshot is taken before every count."""
    state = m.__dict__
    lens = _lengths(state)
    tables = None
    if lens is not None:
        try:
            tables = {name: state[name].copy() for name, n in zip(_TABLES, lens) if n}
        except AttributeError:  # a TorchScript submodule: its tables are views of C++ state, not dicts
            lens = None
    if tables is None:
        tables = {name: dict(t) for name in _TABLES if isinstance(t := state.get(name), dict) and t}
    nonpersistent = state.get("_non_persistent_buffers_set")
    return m, state.copy(), lens, tables, set(nonpersistent) if nonpersistent else None


def _same(current: dict, saved: dict) -> bool:
    """True when ``current`` holds exactly the keys and objects of ``saved`` (identity, in C loops)."""
    return len(current) == len(saved) and current.keys() == saved.keys() and \
        all(map(operator.is_, current.values(), saved.values()))


_PLAIN = (torch.Tensor, torch.nn.Parameter, getattr(torch.nn.parameter, "Buffer", torch.Tensor))


def _plain(t: torch.Tensor) -> bool:
    return type(t) in _PLAIN and not t.is_quantized and t.layout == torch.strided


def _same_data(t: torch.Tensor, data: torch.Tensor) -> bool:
    """True when ``t`` still holds the memory, shape and strides its ``.data`` had in the snapshot."""
    if t.dtype != data.dtype or t.device != data.device:
        return False
    if t.is_meta:
        return t.shape == data.shape and t.stride() == data.stride()
    return t.is_set_to(data)


def _storage_ptr(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage().data_ptr() if not t.is_meta else 0
    except Exception:  # noqa: BLE001 - tensors without a storage (subclasses, sparse)
        return 0


@contextlib.contextmanager
def model_session(model: torch.nn.Module, index: ModelIndex) -> Iterator[ModelSession]:
    """The shared snapshot of ``model`` for one count, counts of one model taking turns; the last count to
    leave restores the model."""
    with _LOCK:
        turn = _TURNS.get(id(model))
        if turn is None or turn[0] is not model:
            turn = _TURNS[id(model)] = [model, threading.RLock(), 0, None, 0]
        turn[2] += 1
    try:
        with _turn(turn), _session(model, index) as session:
            yield session
    finally:
        with _LOCK:
            turn[2] -= 1
            if turn[2] == 0 and _TURNS.get(id(model)) is turn:
                del _TURNS[id(model)]


class CountDeadlockError(CountingError):
    """Two counts that would wait for each other forever: a count called from inside a model's forward wants a
    model whose count, in another thread, waits (directly or through others) for a model this thread counts."""

    def __init__(self, message: str) -> None:
        MicronetError.__init__(self, message)
        self.op, self.module = "", ""


_WAITING: dict[int, list[Any]] = {}  # thread ident -> the turn it waits for (turn[3]: its owner, turn[4]: depth)


@contextlib.contextmanager
def _turn(turn: list[Any]) -> Iterator[None]:
    """Take ``turn`` (re-entrant); refuse, rather than wait, when waiting would close a cycle of threads each
    waiting for a model another one holds (a count inside a forward, in two threads, on each other's model)."""
    me = threading.get_ident()
    with _LOCK:
        holder, seen = turn, set()
        while holder is not None and holder[3] is not None and holder[3] != me and holder[3] not in seen:
            seen.add(holder[3])
            holder = _WAITING.get(holder[3])
        if holder is not None and holder[3] == me and turn[3] != me:
            raise CountDeadlockError(
                f"count() of a {type(turn[0]).__name__} was called from inside a model's forward while another "
                "count is running: another thread counts that model, and its count waits for one this thread "
                "holds, so the two would wait for each other forever. Count the models one after the other, or "
                "call count() outside the forward")
        _WAITING[me] = turn
    try:
        turn[1].acquire()
    finally:
        with _LOCK:
            del _WAITING[me]
    with _LOCK:
        turn[3], turn[4] = me, turn[4] + 1
    try:
        yield
    finally:
        with _LOCK:
            turn[4] -= 1
            if turn[4] == 0:
                turn[3] = None
        turn[1].release()


@contextlib.contextmanager
def _session(model: torch.nn.Module, index: ModelIndex) -> Iterator[ModelSession]:
    with _LOCK:
        session = _SESSIONS.get(id(model))
        if session is None or session.model is not model:
            session = _SESSIONS[id(model)] = ModelSession(model, index)
        session.users += 1
    try:
        yield session
    finally:
        with _LOCK:
            session.users -= 1
            last = session.users == 0
            if last and _SESSIONS.get(id(model)) is session:
                del _SESSIONS[id(model)]
            if last:
                session.restore()


_GC: list[Any] = [0, False]  # running counts in the process, whether the collector was enabled before the first


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Python's cyclic garbage collector paused from the first running count of the process to the last (then
    enabled again if it was); nothing is collected on the way out, the collector runs when it next would."""
    with _LOCK:
        if _GC[0] == 0:
            _GC[1] = gc.isenabled()
            gc.disable()
        _GC[0] += 1
    try:
        yield
    finally:
        with _LOCK:
            _GC[0] -= 1
            if _GC[0] == 0 and _GC[1]:
                gc.enable()


@contextlib.contextmanager
def shared_rng(devices: list[int]) -> Iterator[None]:
    """torch's RNG state (CPU and the given CUDA devices) saved by the first running count, restored by the
    last, so concurrent counts cannot leave it advanced."""
    with _LOCK:
        if _RNG[0] == 0:
            cuda = [(d, torch.cuda.get_rng_state(d)) for d in devices]
            _RNG[1] = (torch.get_rng_state(), cuda)
        _RNG[0] += 1
    try:
        yield
    finally:
        with _LOCK:
            _RNG[0] -= 1
            if _RNG[0] == 0:
                cpu, cuda = _RNG[1]
                torch.set_rng_state(cpu)
                for d, state in cuda:
                    torch.cuda.set_rng_state(state, d)
                _RNG[1] = None
