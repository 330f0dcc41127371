"""``finalize_``: bake pruning masks (and parametrizations) into plain parameters."""

from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrize, prune

from .base import register_finalizer
from .configs import Finalize
from .history import record


def finalize_(model: nn.Module) -> nn.Module:
    """Make every pruning mask permanent, in place, and return ``model``.

    Calls ``torch.nn.utils.prune.remove`` on every pruned tensor (``weight_orig``/``weight_mask``
    become a plain ``weight`` parameter holding the zeros) and removes ``torch.nn.utils.parametrize``
    parametrizations, keeping their current value. Afterwards the model deep-copies, and its
    ``state_dict`` loads into a fresh model of the same architecture. Fake-quant layers made by
    :func:`quantize_` are left as they are. When anything was baked in, a :class:`Finalize` step is
    recorded (see :func:`applied`), so replaying the record rebuilds the same structure.

    >>> from torch import nn
    >>> from micronet_score.compress import LayerUnstructured, finalize_, prune_
    >>> model = prune_(nn.Sequential(nn.Linear(4, 4)), LayerUnstructured(amount=0.5))
    >>> sorted(finalize_(model).state_dict())
    ['0.bias', '0.weight']
    """
    if _finalize(model, Finalize()):
        record(model, Finalize())
    return model


@register_finalizer(Finalize)
def _finalize(model: nn.Module, config: Finalize) -> bool:
    changed = False
    for module in model.modules():
        names = [
            hook._tensor_name
            for hook in module._forward_pre_hooks.values()
            if isinstance(hook, prune.BasePruningMethod)
        ]
        for name in names:
            prune.remove(module, name)
            changed = True
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
                changed = True
    return changed
