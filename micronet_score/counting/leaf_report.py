"""``ms.count`` under a leaf-module convention (``imta-profile``, ``imta-2025``): the course's counter
(:mod:`micronet_score.counting.leaf_profile`) run, its result given as a :class:`~micronet_score.report.Report`.

The report holds what the rule set scores: under ``imta-profile`` the non-zero parameters at b/32 and the
module-level operations (multiplies at b/32, additions and plain ops at 1); under ``imta-2025`` the closed
form's two terms, nnz_w x q_w/32 and the conv/linear MACs x max(q_w, q_a)/32, with the formula's inputs in
``Report.formula_inputs``. Modules the scheme prices at 0 although they hold weights are named in the
warnings.

>>> import torch, micronet_score as ms
>>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), torch.nn.ReLU())
>>> r = ms.count(model, (1, 3, 6, 6), rules="imta-2023")
>>> r.convention, r.math_ops  # conv 8x4x4 outputs x (27 x 16/32 + 26) = 5,056; ReLU 128
('imta-profile', 5184.0)
>>> r.mults, r.adds  # 128 x 27 multiplies; 128 x 26 additions + 128 ReLU ops
(3456, 3456)
"""

from __future__ import annotations

from typing import Any

import torch

from micronet_score.convention import Convention
from micronet_score.counting.inputs import flat_tensors, prepare_inputs
from micronet_score.counting.leaf_profile import LeafProfile, profile
from micronet_score.report import LayerRow, Report, TensorRow
from micronet_score.rules import formulas


def leaf_report(model: torch.nn.Module, inputs: Any, conv: Convention, *, bits: Any = None,
                batch_size: int | None = None) -> Report:
    """Count ``model`` module by module under ``conv`` (attribution ``"leaf-modules"``) into a Report."""
    measured = profile(model, inputs, convention=conv, bits=bits, batch_size=batch_size)
    args, kwargs = prepare_inputs(model, inputs)
    shapes = tuple(tuple(t.shape) for t in flat_tensors((args, kwargs)))
    return to_report(measured, conv, type(model).__name__, shapes, batch_size is not None)


def to_report(p: LeafProfile, conv: Convention, model_name: str = "",
              input_shapes: tuple[tuple[int, ...], ...] = (), given_batch: bool = False) -> Report:
    """The Report of a :class:`LeafProfile`: totals, one row per priced module, one per parameter."""
    wb, acc = p.weight_bits, conv.accumulator_bits
    closed = conv.formula == "imta-2025"
    storage, ops = formulas.imta_2025(p.nonzero_params, p.macs, wb, p.activation_bits) if closed else \
        (p.param_storage, p.ops)
    mults = sum(r.mults for r in p.layers)
    adds = sum(r.adds for r in p.layers)
    by_module: dict[str, list[Any]] = {}
    for q in p.parameters:
        by_module.setdefault(q.module, []).append(q)
    rows = {r.name: r for r in p.layers}
    types = dict(p.module_types)
    layers = []
    for name in dict.fromkeys([*by_module, *rows]):  # module order, then modules without parameters
        r = rows.get(name)
        own = by_module.get(name, [])
        nnz = sum(q.nonzero for q in own)
        layers.append(LayerRow(
            name=name, type=r.type if r is not None else types.get(name, ""), calls=r.calls if r is not None else 0,
            params=sum(q.params for q in own), nonzero_params=nnz, mask_bits=0, param_storage=nnz * wb / 32,
            mults=r.mults if r is not None else 0, adds=r.adds if r is not None else 0,
            math_ops=(r.macs * max(wb, p.activation_bits) / 32 if closed else r.ops) if r is not None else 0.0,
            param_bits=(wb,) if own else (), mult_bits=(wb,) if r is not None and r.mults else (),
            add_bits=(acc,) if r is not None and r.adds else (),
        ))
    tensors = tuple(
        TensorRow(q.name, q.module, q.shape, q.params, q.nonzero, wb, q.nonzero, 0, None, q.nonzero * wb / 32,
                  True, "weight" if len(q.shape) >= 2 else "vector", "non-zeros",
                  f"{conv.name}: the non-zero values at {wb} bits, no mask")
        for q in p.parameters)
    warnings = (f"convention {conv.name!r} prices these modules at 0 operations: {', '.join(p.uncounted)}",) \
        if p.uncounted else ()
    formula_inputs = {"nonzero_params": p.nonzero_params, "macs": p.macs, "weight_bits": wb,
                      "activation_bits": p.activation_bits}
    return Report(
        params=p.params, nonzero_params=p.nonzero_params, mask_bits=0, param_storage=storage,
        mults=mults, adds=adds, math_ops=ops, layers=tuple(layers), tensors=tensors, unsupported={},
        unused=(), params_by_bits={wb: p.params} if p.params else {},
        mults_by_bits={wb: mults} if mults else {}, adds_by_bits={acc: adds} if adds else {},
        batch_size=p.batch_size, input_shapes=input_shapes, convention=conv.name, freebie=False,
        accumulator_bits=acc, nonzeros_known=True, warnings=warnings, model=model_name,
        examples=p.batch_size, batch_dim=None if given_batch else 0, formula_inputs=formula_inputs if closed else {},
        examples_from=f"batch_size={p.batch_size} given" if given_batch else
        f"dimension 0 of the first input ({p.batch_size}): the course counter reads the batch there",
    )
