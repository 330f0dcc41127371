"""Block and N:M sparsity masks, packaged as ``torch.nn.utils.prune`` pruning methods.

The methods use ``PRUNING_TYPE = "global"`` so that, when a tensor was pruned before, torch hands
them the whole tensor and they multiply their mask into the earlier one (zeros stay zeros).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import prune


def block_mask(weight: Tensor, block: tuple[int, int], amount: float, norm: str = "l1") -> Tensor:
    """Mask (same shape as ``weight``) zeroing the ``round(amount * n_blocks)`` weakest blocks of
    ``weight.reshape(weight.shape[0], -1)`` cut into ``block`` tiles.

    >>> import torch
    >>> w = torch.arange(16.0).reshape(4, 4)
    >>> block_mask(w, (2, 2), 0.5)
    tensor([[0., 0., 0., 0.],
            [0., 0., 0., 0.],
            [1., 1., 1., 1.],
            [1., 1., 1., 1.]])
    """
    matrix = weight.detach().reshape(weight.shape[0], -1)
    rows, cols = matrix.shape
    br, bc = block
    if rows % br or cols % bc:
        raise ValueError(f"block {block} does not divide the {rows}x{cols} weight matrix")
    tiles = matrix.reshape(rows // br, br, cols // bc, bc)
    if norm == "l1":
        scores = tiles.abs().sum(dim=(1, 3))
    else:
        scores = tiles.pow(2).sum(dim=(1, 3)).sqrt()
    keep = torch.ones_like(scores)
    n_prune = round(amount * scores.numel())
    if n_prune:
        weakest = torch.topk(scores.flatten(), n_prune, largest=False, sorted=False).indices
        keep.view(-1)[weakest] = 0
    mask = keep[:, None, :, None].expand(-1, br, -1, bc).reshape(rows, cols)
    return mask.reshape(weight.shape).to(weight.dtype)


def _nm_view(weight: Tensor) -> Tensor:
    # Put the input dimension last: (out, in) stays, (out, in, *kernel) -> (out, *kernel, in).
    return weight if weight.dim() == 2 else weight.movedim(1, -1)


def nm_mask(weight: Tensor, n: int, m: int) -> Tensor:
    """Mask keeping the ``n`` largest-magnitude weights of every ``m`` consecutive weights along the
    input dimension (dim 1; for convolutions: the input channels at each kernel position).

    >>> import torch
    >>> nm_mask(torch.tensor([[1.0, -4.0, 3.0, 2.0]]), 2, 4)
    tensor([[0., 1., 1., 0.]])
    """
    if weight.dim() < 2:
        raise ValueError(f"N:M sparsity needs a weight with >= 2 dims, got shape {tuple(weight.shape)}")
    view = _nm_view(weight.detach())
    if view.shape[-1] % m:
        raise ValueError(f"m={m} does not divide the {view.shape[-1]} input channels of the weight")
    groups = view.reshape(-1, m).abs()
    keep = torch.zeros_like(groups)
    keep.scatter_(1, torch.topk(groups, n, dim=1).indices, 1.0)
    keep = keep.reshape(view.shape)
    return (keep if weight.dim() == 2 else keep.movedim(-1, 1)).contiguous().to(weight.dtype)


class BlockMagnitude(prune.BasePruningMethod):
    """``torch.nn.utils.prune`` method zeroing the weakest blocks (see :func:`block_mask`)."""

    PRUNING_TYPE = "global"

    def __init__(self, block: tuple[int, int], amount: float, norm: str = "l1") -> None:
        self.block = block
        self.amount = amount
        self.norm = norm

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        return default_mask * block_mask(t * default_mask, self.block, self.amount, self.norm)

    @classmethod
    def apply(cls, module: nn.Module, name: str, block: tuple[int, int], amount: float, norm: str = "l1"):  # type: ignore[override]
        return super().apply(module, name, block=block, amount=amount, norm=norm)


class NMMagnitude(prune.BasePruningMethod):
    """``torch.nn.utils.prune`` method keeping ``n`` of every ``m`` weights (see :func:`nm_mask`)."""

    PRUNING_TYPE = "global"

    def __init__(self, n: int, m: int) -> None:
        self.n = n
        self.m = m

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        return default_mask * nm_mask(t * default_mask, self.n, self.m)

    @classmethod
    def apply(cls, module: nn.Module, name: str, n: int, m: int):  # type: ignore[override]
        return super().apply(module, name, n=n, m=m)
