"""One count: the forward pass under the tracer, in inference mode, turned into a :class:`Report`.

:func:`micronet_score.api.count` checks the arguments and builds the :class:`CountContext`; this module runs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from micronet_score.bits import Precision
from micronet_score.convention import Convention
from micronet_score.counting.batch_hint import missing_batch_hint
from micronet_score.counting.build import build_report
from micronet_score.counting.events import Event
from micronet_score.counting.examples import check_batch_dim, examples, probing
from micronet_score.counting.exported import as_module, check_options, run_forward
from micronet_score.counting.hooks import thread_hooks
from micronet_score.counting.inputs import InputsLike, check_devices, flat_tensors, prepare_inputs
from micronet_score.counting.leaf_report import leaf_report
from micronet_score.counting.meta import to_meta
from micronet_score.counting.model_index import ModelIndex
from micronet_score.counting.overrides import cost_table
from micronet_score.counting.reads import WeightReads
from micronet_score.counting.select import refuse_operator_options, select_convention
from micronet_score.counting.session import CountDeadlockError, model_session, paused_gc, shared_rng
from micronet_score.counting.shape_inputs import materialize
from micronet_score.counting.shortcuts import autocast_on
from micronet_score.counting.tracer import AttentionMode, Tracer
from micronet_score.errors import (
    ComplexTensorError,
    ForwardError,
    InputError,
    MicronetError,
    UncountedWorkError,
    UnsupportedOpError,
)
from micronet_score.report import Report

BitsSpec = Mapping[Any, "int | Precision"]


def count_with_events(model: torch.nn.Module, inputs: InputsLike, **options: Any) -> tuple[Report, list[Event]]:
    """:func:`micronet_score.count`, plus the costed operator calls (whole batch, batch norms decided) the report
    sums: for tools that need a finer breakdown than per module or per operator (``cross_check``). The public
    face, with the documentation of every option, is :func:`micronet_score.api.count`.

    Python's cyclic garbage collector is paused while the count runs (:func:`~micronet_score.counting.session.
    paused_gc`): a count allocates many small containers, and collections triggered by them walked the whole
    model's object graph over and over.

    The count runs outside inference mode (``torch.inference_mode(False)``; ``no_grad`` is all it needs), and
    inputs made in inference mode are copied first: operators whose arguments are all inference tensors, or
    that run in inference mode, skip the autograd keys where composite operators (``conv2d``, ``linear``)
    decompose, and would reach the tracer whole, as operators without a cost."""
    model = as_module(model)  # an ExportedProgram: its module (counting/exported.py)
    with paused_gc(), torch.inference_mode(False):
        return _count_with_events(model, inputs, **options)


def _count_with_events(
    model: torch.nn.Module,
    inputs: InputsLike,
    *,
    bits: BitsSpec | None = None,
    freebie: bool | None = None,
    accumulator_bits: int | None = None,
    strict: bool = False,
    convention: str | Convention = "micronet",
    shapes_only: bool | None = None,
    batch_size: int | None = None,
    costs: Mapping[Any, Any] | None = None,
    rules: Any = None,
    batch_dim: int | None = None,
) -> tuple[Report, list[Event]]:
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"count() needs a torch.nn.Module, got {type(model).__name__}; wrap a function in an "
                         "nn.Module whose forward calls it")
    if isinstance(model, torch.jit.ScriptModule):
        raise InputError(f"count() needs an eager nn.Module, got a TorchScript module ({type(model).__name__}, "
                         "from torch.jit.script, trace or freeze) whose forward runs outside Python, where "
                         "operators cannot be followed to modules; count the eager model it was made from")
    if freebie not in (None, True, False):
        raise InputError(f"freebie must be None (as the rules say), True or False; got {freebie!r}")
    if accumulator_bits is not None and (isinstance(accumulator_bits, bool) or not isinstance(accumulator_bits, int)
                                         or not 1 <= accumulator_bits <= 64):
        raise InputError(f"accumulator_bits must be an integer in 1..64, got {accumulator_bits!r}")
    conv = select_convention(convention, rules)
    check_options(model, conv, bits)
    if conv.attribution == "leaf-modules":  # a course scheme: the module-level counter (counting/leaf_report.py)
        refuse_operator_options(conv, freebie=freebie, accumulator_bits=accumulator_bits, strict=strict,
                                shapes_only=shapes_only, costs=costs, batch_dim=batch_dim)
        return leaf_report(model, inputs, conv, bits=bits, batch_size=batch_size), []
    conv = conv.with_options(freebie=freebie, accumulator_bits=accumulator_bits)
    if autocast_on():
        raise InputError("count() was called inside torch.autocast, which casts weights on their way into each "
                         "operator, out of the tracer's sight: the count would miss stored tensors. Call count() "
                         "outside the autocast region and give the 16-bit widths with bits= (bits={'': 16} "
                         "prices every module's weights and activations at 16 bits)")
    index = ModelIndex.of(model)
    precision_of = precision_lookup(index, bits)
    placeholders: list[torch.Tensor] = []  # inputs given as shapes, on the meta device until values are needed
    args, kwargs = prepare_inputs(index, inputs, placeholders=placeholders)
    tensors = flat_tensors((args, kwargs))
    if not tensors:
        raise InputError("inputs hold no tensor: pass a tensor, a tuple of tensors, a dict or a shape")
    if tensors[0].dim() > 0 and tensors[0].shape[0] == 0:
        raise InputError(f"the first input has a batch of 0 examples (shape {tuple(tensors[0].shape)}): counts "
                         "are per example, pass at least one example")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    check_batch_dim(batch_dim, tensors[0])
    ctx = CountContext(model, index, precision_of, conv, args, kwargs, strict, batch_size,
                       cost_table(conv, costs), batch_dim, _ReadsMemo())
    reason = "shapes_only=False"
    if shapes_only is None:  # auto: shapes alone when the forward allows it, real activations otherwise
        if not tensors[0].is_meta or placeholders:
            events: list[Event] = []
            try:
                return count_once(ctx, True, events), events
            except (UnsupportedOpError, InputError, ComplexTensorError, UncountedWorkError, CountDeadlockError):
                raise
            except Exception as exc:  # noqa: BLE001 - the forward needs values (or a meta kernel is missing)
                reason = f"it did not run on shapes alone: {one_line(exc)}"
        shapes_only = False
    events = []
    if placeholders and not shapes_only:
        device, dtype = index.device_dtype()
        args, kwargs = materialize((ctx.args, ctx.kwargs), placeholders, device, dtype, reason)
        ctx = dataclasses.replace(ctx, args=args, kwargs=kwargs)
    return count_once(ctx, bool(shapes_only), events), events


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, without terminal escape codes (torch colours some)."""
    text = _ANSI.sub("", str(exc)).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


@dataclass(frozen=True)
class CountContext:
    """Everything one traced forward pass needs, checked and resolved by :func:`count_with_events`."""

    model: torch.nn.Module
    index: ModelIndex
    precision_of: Callable[[str], Precision | None]
    convention: Convention
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    strict: bool
    batch_size: int | None
    costs: dict[Any, Any] = field(default_factory=dict)  # per-count cost overrides (counting/overrides.py)
    batch_dim: int | None = None  # the user's batch dimension of the first input (counting/examples.py)
    reads: _ReadsMemo | None = None  # the weights read so far, shared by the meta attempt and its fallback


class _ReadsMemo:
    """The :class:`WeightReads` of one ``count()`` call: when the attempt on the meta device fails (the forward
    needs activation values), the attempt on real values uses what the first one read, unless the first wrote
    into a stored tensor (then everything is read again)."""

    def __init__(self) -> None:
        self.reads: WeightReads | None = None

    def for_attempt(self, index: ModelIndex) -> WeightReads:
        if self.reads is None or self.reads.invalidated:
            self.reads = WeightReads.of_model(index)
        return self.reads


def count_once(ctx: CountContext, shapes_only: bool, events: list[Event] | None = None) -> Report:
    """One traced forward pass; ``shapes_only`` runs the input-dependent operators on the meta device.
    ``events``, when given, receives the costed operator calls (after batch-norm folding) the report sums."""
    model, index, conv = ctx.model, ctx.index, ctx.convention
    args, kwargs = ctx.args, ctx.kwargs
    if shapes_only:
        args, kwargs = to_meta((args, kwargs))
    tensors = flat_tensors((args, kwargs))
    if not shapes_only:
        check_devices(index, tensors)
    tracer = Tracer(index, ctx.precision_of, strict=ctx.strict, mask_policy=conv.mask_policy, shapes_only=shapes_only)
    tracer.cost_table = ctx.costs
    for t in tensors:
        tracer.mark_input(t)
    with _inference_run(model, index, tracer, ctx.reads) as run, probing(tracer.dep) as probe:
        try:
            output = run_forward(model, tracer, args, kwargs)
        except MicronetError:
            raise
        except Exception as exc:  # the forward itself failed: say where, and on what inputs
            module = tracer.stack[-1]
            shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
            where = f"module '{module}' ({tracer.module_types.get(module, '?')})" if module else \
                f"the root module ({type(model).__name__})"
            first = one_line(exc)
            hint = ""
            batch = missing_batch_hint(model, tensors)
            if batch is not None:
                raise ForwardError(f"the forward pass failed: {batch} (it failed in {where}: {type(exc).__name__}: "
                                   f"{first})", module=module) from exc
            if "indices" in first and any(t.is_floating_point() for t in tensors):
                hint = ("; an input that holds indices or token ids is floating point (a shape given as input "
                        "becomes random floats): pass integer ids, e.g. torch.randint(vocab, shape), or, for the "
                        "command line, define example_inputs() on the model")
            elif tensors[0].is_meta and ("meta" in str(exc).lower() or "data-dependent" in str(exc).lower()):
                hint = ("; the forward needs activation values (data-dependent control flow): count with real "
                        "inputs" + (" (shapes_only=False)" if shapes_only else " instead of the meta device"))
            else:
                hint = f"; inputs had shapes {shapes}: check they are what the model expects"
            raise ForwardError(f"the forward pass failed in {where}: {type(exc).__name__}: {first}{hint}",
                               module=module) from exc
        run.output = output
    lost = tracer.lost_work(list(_unused(tracer)))
    if lost is not None and ctx.strict:
        raise UncountedWorkError(lost + "; count with strict=False to get the partial count with a warning")
    tracer.notes.extend(n for n in (lost or tracer.export_note(),) if n)
    divisor = examples(tensors[0], probe, batch_dim=ctx.batch_dim, per_token=conv.per_token,
                       unbatched=tracer.unbatched, batch_size=ctx.batch_size)
    report = build_report(model, tracer, conv, divisor.count, tensors, output)
    if events is not None:
        events.extend(tracer.events)
    return replace(report, examples=divisor.count, batch_dim=divisor.batch_dim, examples_from=divisor.why)


class _Run:
    output: Any = None


def _unused(tracer: Tracer) -> list[str]:
    return sorted(set(tracer.tensor_names.values()) - tracer.used_sources)


@contextlib.contextmanager
def _inference_run(model: torch.nn.Module, index: ModelIndex, tracer: Tracer,
                   memo: _ReadsMemo | None = None) -> Iterator[_Run]:
    """Eval mode, no grad, this thread's module hooks, the modes, and a shared RNG state; the model is put
    back (by the last count running on it) even when forward raises."""
    devices = [t.device.index or 0 for _, t in index.parameters if t.device.type == "cuda"][:1]
    with model_session(model, index) as session:
        tracer.session = session
        # the weights read for this count: after the model is ours (counts of one model take turns), before
        # the modes (these reads are not the model's operators)
        tracer.reads = memo.for_attempt(index) if memo is not None else WeightReads.of_model(index)
        try:
            for _, m in index.modules:
                m.training = False
            with shared_rng(devices), _eager(index), thread_hooks(tracer), torch.no_grad(), AttentionMode(tracer), \
                    tracer:
                yield _Run()
        finally:
            tracer.restore()


def _eager(index: ModelIndex) -> contextlib.AbstractContextManager[Any]:
    """For a model holding ``torch.compile``d modules, run them eagerly (``torch.compiler.set_stance(
    "force_eager")``): the count follows what the wrapped modules compute, operator by operator, instead of
    dynamo tracing into the tracer itself (which failed or recompiled at every operator). Entering the stance
    costs about 1.5 ms, so other models do without it."""
    if "torch._dynamo" not in sys.modules or not hasattr(torch.compiler, "set_stance"):
        return contextlib.nullcontext()  # nothing can have been compiled
    for _, m in index.modules:
        cls = type(m)
        if cls.__name__ == "OptimizedModule" and cls.__module__.startswith("torch._dynamo"):
            return torch.compiler.set_stance("force_eager")
    return contextlib.nullcontext()


def no_bits(name: str) -> Precision | None:
    """The precision lookup of a count without ``bits=``: no module has a user width."""
    return None


def precision_lookup(index: ModelIndex, bits: BitsSpec | None) -> Callable[[str], Precision | None]:
    """module name -> Precision or None, from ``bits=`` keys: names (a name covers its descendants) and types."""
    if not bits:
        return no_bits
    by_name: dict[str, Precision] = {}
    by_type: list[tuple[type, Precision]] = []
    names = {n for n, _ in index.modules}
    for key, value in bits.items():
        precision = Precision.of(value)
        if isinstance(key, type):
            by_type.append((key, precision))
        elif isinstance(key, str):
            if key not in names:
                close = sorted(n for n in names if n and (key in n or n in key))[:5]
                raise InputError(f"bits names module {key!r}, which the model does not have"
                                 + (f"; did you mean one of {close}?" if close else ""))
            by_name[key] = precision
        else:
            raise InputError(f"bits keys must be module names or module types, got {key!r}")
    types = {n: type(m) for n, m in index.modules}
    cache: dict[str, Precision | None] = {}

    def lookup(name: str) -> Precision | None:
        if name in cache:
            return cache[name]
        found = None
        probe = name
        while True:
            if probe in by_name:
                found = by_name[probe]
                break
            if not probe:
                break
            probe = probe.rpartition(".")[0]
        if found is None:
            cls = types.get(name)
            for key, precision in by_type:
                if cls is not None and issubclass(cls, key):
                    found = precision
                    break
        cache[name] = found
        return found

    return lookup
