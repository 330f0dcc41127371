"""``count``: run one forward pass under the tracer and turn what it saw into a :class:`Report`."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from micronet_score.bits import Precision
from micronet_score.convention import Convention, get_convention
from micronet_score.counting.build import build_report
from micronet_score.counting.hooks import thread_hooks
from micronet_score.counting.inputs import InputsLike, check_devices, flat_tensors, prepare_inputs
from micronet_score.counting.meta import to_meta
from micronet_score.counting.model_index import ModelIndex
from micronet_score.counting.session import model_session, shared_rng
from micronet_score.counting.shape_inputs import materialize
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


def count(
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
) -> Report:
    """Count the parameters and operations of one inference forward pass of ``model`` on ``inputs``.

    ``inputs``: a tensor, a tuple of tensors, a dict of keyword tensors, or a shape such as ``(1, 3, 32, 32)``;
    the first dimension of the first tensor is the batch, and counts are per example. ``bits`` sets widths per
    module name (a name also covers the modules below it) or module type: an int, or a
    :class:`~micronet_score.bits.Precision` with separate weight and activation widths. ``freebie``: ``None``
    applies the 16-bit freebie when nothing is below 16 bits (the rules), ``True``/``False`` force it.
    ``strict=True`` raises :class:`~micronet_score.errors.UnsupportedOpError` on any operator without a cost.

    ``batch_size`` overrides the number of examples the counts are divided by (default: the first dimension of
    the first input tensor, or 1 when the forward itself unsqueezes an unbatched input).
    Activations are not needed for counting, only their shapes: with ``shapes_only=None`` (the default) the
    input-dependent operators run on the meta device while weights stay real (so their non-zeros are read),
    and if that forward fails (data-dependent control flow, an operator without a meta kernel) the model runs
    again on real activations; the counts are the same either way. ``shapes_only=True`` insists on shapes (a
    forward that needs values then fails with a clear error); ``False`` always computes real activations.

    The model runs once in eval mode under ``torch.no_grad()``; its parameters, buffers, training flags,
    hooks and the global RNG state are left exactly as they were, also when the forward writes into its
    weights (``weight.data.clamp_()``) or registers buffers, parameters or hooks, and when several threads
    count it at once (see ``docs/guarantees.md``). An input given as a shape is counted on the meta device;
    random values of that shape are drawn only when the forward needs them (up to 1 GiB).

    >>> import torch, micronet_score as ms
    >>> report = ms.count(torch.nn.Conv2d(3, 8, 3), (1, 3, 32, 32))
    >>> report.mults  # 3*3*3 mults per output, 8*30*30 outputs
    194400
    """
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"count() needs a torch.nn.Module, got {type(model).__name__}; wrap a function in an "
                         "nn.Module whose forward calls it")
    if isinstance(model, torch.jit.ScriptModule):
        raise InputError(f"count() needs an eager nn.Module, got a TorchScript module ({type(model).__name__}, "
                         "from torch.jit.script, trace or freeze) whose forward runs outside Python, where "
                         "operators cannot be followed to modules; count the eager model it was made from")
    conv = get_convention(convention).with_options(freebie=freebie, accumulator_bits=accumulator_bits)
    conv = _validated(conv, freebie)
    index = ModelIndex.of(model)
    precision_of = _precision_lookup(index, bits)
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
    ctx = CountContext(model, index, precision_of, conv, args, kwargs, strict, batch_size)
    reason = "shapes_only=False"
    if shapes_only is None:  # auto: shapes alone when the forward allows it, real activations otherwise
        if not tensors[0].is_meta or placeholders:
            try:
                return _count_once(ctx, True)
            except (UnsupportedOpError, InputError, ComplexTensorError, UncountedWorkError):
                raise
            except Exception as exc:  # noqa: BLE001 - the forward needs values (or a meta kernel is missing)
                reason = f"it did not run on shapes alone: {one_line(exc)}"
        shapes_only = False
    if placeholders and not shapes_only:
        device, dtype = index.device_dtype()
        args, kwargs = materialize((ctx.args, ctx.kwargs), placeholders, device, dtype, reason)
        ctx = dataclasses.replace(ctx, args=args, kwargs=kwargs)
    return _count_once(ctx, shapes_only)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, without terminal escape codes (torch colours some)."""
    text = _ANSI.sub("", str(exc)).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


@dataclass(frozen=True)
class CountContext:
    """Everything one traced forward pass needs, checked and resolved by :func:`count`."""

    model: torch.nn.Module
    index: ModelIndex
    precision_of: Callable[[str], Precision | None]
    convention: Convention
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    strict: bool
    batch_size: int | None


def _count_once(ctx: CountContext, shapes_only: bool) -> Report:
    """One traced forward pass; ``shapes_only`` runs the input-dependent operators on the meta device."""
    model, index, conv = ctx.model, ctx.index, ctx.convention
    args, kwargs = ctx.args, ctx.kwargs
    if shapes_only:
        args, kwargs = to_meta((args, kwargs))
    tensors = flat_tensors((args, kwargs))
    if not shapes_only:
        check_devices(index, tensors)
    batch = tensors[0].shape[0] if tensors[0].dim() > 0 else 1
    tracer = Tracer(index, ctx.precision_of, strict=ctx.strict, mask_policy=conv.mask_policy, shapes_only=shapes_only)
    for t in tensors:
        tracer.mark_input(t)
    with _inference_run(model, index, tracer) as run:
        try:
            output = model(*args, **kwargs)
        except MicronetError:
            raise
        except Exception as exc:  # the forward itself failed: say where, and on what inputs
            module = tracer.stack[-1]
            shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
            where = f"module '{module}' ({tracer.module_types.get(module, '?')})" if module else \
                f"the root module ({type(model).__name__})"
            first = one_line(exc)
            hint = ""
            if tensors[0].is_meta and ("meta" in str(exc).lower() or "data-dependent" in str(exc).lower()):
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
    if tracer.unbatched:
        batch = 1  # the forward added the batch dimension itself: the input was one example
    if ctx.batch_size is not None:
        batch = ctx.batch_size
    return build_report(model, tracer, conv, batch, tensors, output)


def _validated(conv: Convention, freebie: Any) -> Convention:
    if freebie not in (None, True, False):
        raise InputError(f"freebie must be None (as the rules say), True or False; got {freebie!r}")
    return conv


class _Run:
    output: Any = None


def _unused(tracer: Tracer) -> list[str]:
    return sorted(set(tracer.tensor_names.values()) - tracer.used_sources)


@contextlib.contextmanager
def _inference_run(model: torch.nn.Module, index: ModelIndex, tracer: Tracer) -> Iterator[_Run]:
    """Eval mode, no grad, this thread's module hooks, the modes, and a shared RNG state; the model is put
    back (by the last count running on it) even when forward raises."""
    devices = [t.device.index or 0 for _, t in index.parameters if t.device.type == "cuda"][:1]
    with model_session(model, index) as session:
        tracer.session = session
        try:
            for _, m in index.modules:
                m.training = False
            with shared_rng(devices), thread_hooks(tracer), torch.no_grad(), AttentionMode(tracer), tracer:
                yield _Run()
        finally:
            tracer.restore()


def _precision_lookup(index: ModelIndex, bits: BitsSpec | None):
    """module name -> Precision or None, from names (a name covers its descendants) and types."""
    if not bits:
        return lambda name: None
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
