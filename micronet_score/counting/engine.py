"""``count``: run one forward pass under the tracer and turn what it saw into a :class:`Report`."""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from micronet_score.bits import FREEBIE_BITS, Precision, weigh
from micronet_score.convention import Convention, get_convention
from micronet_score.counting.inputs import InputsLike, check_devices, flat_tensors, prepare_inputs
from micronet_score.counting.model_index import ModelIndex
from micronet_score.counting.storage import StorageStats, measure, price
from micronet_score.counting.tracer import AttentionMode, Event, StoredTensor, Tracer
from micronet_score.errors import ForwardError, InputError, MicronetError, UnsupportedOpError
from micronet_score.report import LayerRow, Report, TensorRow

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
    hooks and the global RNG state are left exactly as they were.

    >>> import torch, micronet_score as ms
    >>> report = ms.count(torch.nn.Conv2d(3, 8, 3), (1, 3, 32, 32))
    >>> report.mults  # 3*3*3 mults per output, 8*30*30 outputs
    194400
    """
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"count() needs a torch.nn.Module, got {type(model).__name__}; wrap a function in an "
                         "nn.Module whose forward calls it")
    conv = get_convention(convention).with_options(freebie=freebie, accumulator_bits=accumulator_bits)
    conv = _validated(conv, freebie)
    index = ModelIndex.of(model)
    precision_of = _precision_lookup(index, bits)
    args, kwargs = prepare_inputs(index, inputs)
    tensors = flat_tensors((args, kwargs))
    if not tensors:
        raise InputError("inputs hold no tensor: pass a tensor, a tuple of tensors, a dict or a shape")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    if shapes_only is None:  # auto: shapes alone when the forward allows it, real activations otherwise
        if not tensors[0].is_meta:
            try:
                return _count_once(model, index, precision_of, conv, args, kwargs, True, strict, batch_size)
            except (UnsupportedOpError, InputError):
                raise
            except Exception:  # noqa: BLE001 - the forward needs values (or a meta kernel is missing): run it
                pass
        shapes_only = False
    return _count_once(model, index, precision_of, conv, args, kwargs, shapes_only, strict, batch_size)


def _count_once(model, index, precision_of, conv, args, kwargs, shapes_only, strict, batch_size) -> Report:
    """One traced forward pass; ``shapes_only`` runs the input-dependent operators on the meta device."""
    if shapes_only:
        args, kwargs = _to_meta((args, kwargs))
    tensors = flat_tensors((args, kwargs))
    if not shapes_only:
        check_devices(index, tensors)
    batch = tensors[0].shape[0] if tensors[0].dim() > 0 else 1
    tracer = Tracer(index, precision_of, strict=strict, mask_policy=conv.mask_policy, shapes_only=shapes_only)
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
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            hint = ""
            if tensors[0].is_meta and ("meta" in str(exc).lower() or "data-dependent" in str(exc).lower()):
                hint = ("; the forward needs activation values (data-dependent control flow): count with real "
                        "inputs" + (" (shapes_only=False)" if shapes_only else " instead of the meta device"))
            else:
                hint = f"; inputs had shapes {shapes}: check they are what the model expects"
            raise ForwardError(f"the forward pass failed in {where}: {type(exc).__name__}: {first}{hint}",
                               module=module) from exc
        run.output = output
    if tracer.unbatched:
        batch = 1  # the forward added the batch dimension itself: the input was one example
    if batch_size is not None:
        batch = batch_size
    return _build_report(model, tracer, conv, batch, tensors, output)


def _to_meta(value: Any, memo: dict[int, torch.Tensor] | None = None) -> Any:
    """``value`` with every tensor on the meta device; one tensor passed twice stays one tensor (a model may
    test ``query is key``)."""
    memo = {} if memo is None else memo
    if isinstance(value, torch.Tensor):
        if id(value) not in memo:
            memo[id(value)] = value.to("meta")
        return memo[id(value)]
    if isinstance(value, (list, tuple)):
        return type(value)(_to_meta(v, memo) for v in value)
    if isinstance(value, Mapping):
        return {k: _to_meta(v, memo) for k, v in value.items()}
    return value


def _validated(conv: Convention, freebie: Any) -> Convention:
    if freebie not in (None, True, False):
        raise InputError(f"freebie must be None (as the rules say), True or False; got {freebie!r}")
    return conv


class _Run:
    output: Any = None


@contextlib.contextmanager
def _inference_run(model: torch.nn.Module, index: ModelIndex, tracer: Tracer) -> Iterator[_Run]:
    """Eval mode, no grad, hooks, the modes, and a forked RNG; everything put back even when forward raises."""
    modes = [(m, m.training) for _, m in index.modules]
    pre = torch.nn.modules.module.register_module_forward_pre_hook(tracer.pre_hook)
    post = torch.nn.modules.module.register_module_forward_hook(tracer.post_hook)
    devices = [t.device.index or 0 for _, t in index.parameters if t.device.type == "cuda"][:1]
    try:
        for m, _ in modes:
            m.training = False
        with torch.random.fork_rng(devices=devices), torch.no_grad(), AttentionMode(tracer), tracer:
            yield _Run()
    finally:
        pre.remove()
        post.remove()
        for m, training in modes:
            m.training = training
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


# ---------------------------------------------------------------------- report building
def _fold(tracer: Tracer, conv: Convention, warnings: list[str]) -> list[StoredTensor]:
    """Decide every batch norm: folded into its producer, or a per-channel affine. Returns the extra stored
    tensors (folded biases, affine scale/shift); NaN/Inf in a norm that leaves no tensor of its own is added to
    ``warnings``."""
    extra: list[StoredTensor] = []
    events = tracer.events
    for event in events:
        bn = event.batchnorm
        if bn is None:
            continue
        producer = events[bn.producer] if bn.producer >= 0 else None
        target = producer.fold if producer is not None else None
        foldable = (conv.fold_batchnorm and target is not None and tracer.consumers[bn.producer] == 1
                    and target.channels == bn.channels)
        if foldable:
            event.mults = event.adds = 0
            stats = _folded_bias(bn)
            if not target.has_bias:
                producer.adds += target.per_channel * target.active
                target.has_bias = True
                extra.append(StoredTensor(f"{producer.module}.bias (folded {bn.owner})", producer.module,
                                          (bn.channels,), bn.bits, stats))
            elif not stats.finite:  # merged into the producer's own bias: flag the norm itself
                warnings.append(f"{bn.owner} (folded into {producer.module}) holds NaN or Inf values")
            continue
        scale, shift = _affine(bn)
        extra.append(StoredTensor(f"{bn.owner}.scale", bn.owner, (bn.channels,), bn.bits, scale))
        extra.append(StoredTensor(f"{bn.owner}.shift", bn.owner, (bn.channels,), bn.bits, shift))
    return extra


def _scale_shift(bn) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A norm's per-channel affine: scale gamma / sqrt(var + eps) and shift beta - mean * scale (None when its
    values are unknown or it has no running statistics)."""
    weight, bias, mean, var = bn.tensors
    if _meta(bn) or mean is None or var is None:
        return None
    scale = torch.rsqrt(var.float() + bn.eps)
    if weight is not None:
        scale = scale * weight.float()
    shift = -mean.float() * scale
    if bias is not None:
        shift = shift + bias.float()
    return scale, shift


def _folded_bias(bn) -> StorageStats:
    """The bias a folded norm leaves (its shift), measured: zeros, and NaN/Inf in either half."""
    affine = _scale_shift(bn)
    if affine is None:
        return StorageStats(bn.channels, None if _meta(bn) else bn.channels)
    scale, shift = affine
    stats = measure(shift, "when-zeros")
    finite = stats.finite and bool(torch.isfinite(scale).all())
    return StorageStats(bn.channels, stats.nonzeros, stats.options, finite)


def _meta(bn) -> bool:
    return any(isinstance(t, torch.Tensor) and t.is_meta for t in bn.tensors)


def _affine(bn) -> tuple[StorageStats, StorageStats]:
    """Non-zeros of an unfolded norm's two stored vectors, scale and shift."""
    affine = _scale_shift(bn)
    if affine is None:
        return StorageStats(bn.channels, None), StorageStats(bn.channels, None)
    return measure(affine[0]), measure(affine[1])


def _per_example(total: float, batch: int) -> float:
    value = total / batch
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


def _build_report(model, tracer: Tracer, conv: Convention, batch: int, inputs, output) -> Report:
    warnings: list[str] = []
    stored = list(tracer.stored.values()) + _fold(tracer, conv, warnings)
    events: list[Event] = tracer.events
    widths = {s.bits for s in stored} | {e.mult_bits for e in events if e.mults} | tracer.activation_widths
    if conv.freebie is None:
        freebie = bool(widths) and min(widths) >= FREEBIE_BITS
    else:
        freebie = conv.freebie

    def eff(b: int) -> int:
        return min(b, FREEBIE_BITS) if freebie else b

    acc = conv.accumulator_bits
    rows: dict[str, dict[str, Any]] = {}

    def row(name: str) -> dict[str, Any]:
        r = rows.get(name)
        if r is None:
            r = rows[name] = {"params": 0, "nonzero": 0, "nonzero_known": True, "mask": 0, "storage": 0.0,
                              "mults": 0, "adds": 0, "ops": 0.0, "pbits": set(), "mbits": set(),
                              "abits": set()}
        return r

    tensor_rows: list[TensorRow] = []
    seen_labels: Counter[str] = Counter()
    params_by_bits: Counter[int] = Counter()
    order = {name: i for i, name in enumerate(tracer.module_types)}
    stored.sort(key=lambda s: (order.get(s.module, len(order)), s.label))  # the same whatever path ran
    for s in stored:
        b = eff(s.bits)
        priced = price(s.stats, b, conv.mask_policy)
        r = row(s.module)
        r["params"] += s.stats.numel
        if s.stats.nonzeros is None:
            r["nonzero_known"] = False
        else:
            r["nonzero"] += s.stats.nonzeros
        r["mask"] += priced.mask_bits
        r["storage"] += priced.storage
        r["pbits"].add(b)
        params_by_bits[b] += s.stats.numel
        if not s.stats.finite:
            warnings.append(f"{s.label} holds NaN or Inf values")
        seen_labels[s.label] += 1
        label = s.label if seen_labels[s.label] == 1 else f"{s.label} (derived {seen_labels[s.label]})"
        tensor_rows.append(TensorRow(label, s.module, s.shape, s.stats.numel, s.stats.nonzeros, b,
                                     priced.values, priced.mask_bits, priced.block, priced.storage,
                                     s.stats.finite))
    mults_by_bits: Counter[int] = Counter()
    adds_total = 0
    for e in events:
        r = row(e.module)
        r["mults"] += e.mults
        r["adds"] += e.adds
        mb = eff(e.mult_bits)
        r["ops"] += weigh(e.mults, mb) + weigh(e.adds, acc)
        if e.mults:
            r["mbits"].add(mb)
            mults_by_bits[mb] += e.mults
        if e.adds:
            r["abits"].add(acc)
        adds_total += e.adds
    for module in tracer.unsupported:
        row(module)
    layers = []
    for name in sorted(rows, key=lambda n: order.get(n, len(order))):
        r = rows[name]
        layers.append(LayerRow(
            name=name, type=tracer.module_types.get(name, "?"), calls=tracer.calls.get(name, 0 if name else 1),
            params=r["params"], nonzero_params=r["nonzero"] if r["nonzero_known"] else None,
            mask_bits=r["mask"], param_storage=r["storage"], mults=_per_example(r["mults"], batch),
            adds=_per_example(r["adds"], batch), math_ops=r["ops"] / batch, param_bits=tuple(sorted(r["pbits"])),
            mult_bits=tuple(sorted(r["mbits"])), add_bits=tuple(sorted(r["abits"])),
            unsupported=dict(tracer.unsupported.get(name, {})),
        ))
    all_sources = set(tracer.tensor_names.values())
    unused = tuple(sorted(all_sources - tracer.used_sources))
    if tracer.unsupported:
        total = sum(sum(c.values()) for c in tracer.unsupported.values())
        names = sorted({op for c in tracer.unsupported.values() for op in c})
        warnings.append(f"{total} operator call(s) have no cost and were not counted: {', '.join(names)}")
    if output is None:
        warnings.append("the forward returned None")
    nonzero_known = all(s.stats.nonzeros is not None for s in stored)
    total_mults = sum(e.mults for e in events)
    return Report(
        params=sum(s.stats.numel for s in stored),
        nonzero_params=sum(s.stats.nonzeros for s in stored) if nonzero_known else None,
        mask_bits=sum(t.mask_bits for t in tensor_rows),
        param_storage=math.fsum(t.param_storage for t in tensor_rows),
        mults=_per_example(total_mults, batch),
        adds=_per_example(adds_total, batch),
        math_ops=math.fsum(weigh(c, b) for b, c in mults_by_bits.items()) / batch + weigh(adds_total, acc) / batch,
        layers=tuple(layers),
        tensors=tuple(tensor_rows),
        unsupported={m: dict(c) for m, c in tracer.unsupported.items()},
        unused=unused,
        params_by_bits=dict(sorted(params_by_bits.items())),
        mults_by_bits={b: _per_example(c, batch) for b, c in sorted(mults_by_bits.items())},
        adds_by_bits={acc: _per_example(adds_total, batch)} if adds_total else {},
        batch_size=batch,
        input_shapes=tuple(tuple(t.shape) for t in inputs),
        convention=conv.name,
        freebie=freebie,
        accumulator_bits=acc,
        nonzeros_known=nonzero_known and tracer.nonzeros_known,
        warnings=tuple(warnings),
        model=type(model).__name__,
    )

