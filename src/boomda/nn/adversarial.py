"""Building blocks of adversarial domain adaptation: gradient reversal and discriminators."""

from __future__ import annotations

import math

import torch
from torch import nn

from boomda.errors import ConfigError


class _ReverseGradient(torch.autograd.Function):
    """Identity going forward; multiplies the incoming gradient by ``-coeff`` going back."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coeff * grad, None


def reverse_gradient(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Gradient reversal (Ganin & Lempitsky 2015): ``y = x``, ``dL/dx = -coeff * dL/dy``."""
    return _ReverseGradient.apply(x, float(coeff))


def grl_schedule(progress: float, kind: str = "ramp", max_coeff: float = 1.0,
                 gamma: float = 10.0) -> float:
    """The gradient-reversal coefficient at training progress ``p`` in [0, 1].

    ``ramp`` (Ganin et al., JMLR 2016, Sec. 5.2.2): ``max_coeff * (2 / (1 + exp(-gamma p)) - 1)``,
    0 at the start and close to ``max_coeff`` at the end. ``constant``: ``max_coeff``.
    """
    if kind == "constant":
        return max_coeff
    if kind == "ramp":
        p = min(max(progress, 0.0), 1.0)
        return max_coeff * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)
    raise ConfigError(f"unknown grl_schedule {kind!r}; choose ramp or constant")


class GradientReversal(nn.Module):
    """A gradient-reversal layer whose coefficient is set from training progress."""

    def __init__(self, kind: str = "ramp", max_coeff: float = 1.0, gamma: float = 10.0) -> None:
        super().__init__()
        grl_schedule(0.0, kind)  # validate the kind early
        self.kind = kind
        self.max_coeff = max_coeff
        self.gamma = gamma

    def coefficient(self, progress: float) -> float:
        return grl_schedule(progress, self.kind, self.max_coeff, self.gamma)

    def forward(self, x: torch.Tensor, progress: float) -> torch.Tensor:
        return reverse_gradient(x, self.coefficient(progress))


class DomainDiscriminator(nn.Sequential):
    """MLP domain classifier ``Linear -> ReLU -> Dropout -> Linear -> ReLU -> Dropout -> Linear``
    (the architecture of DANN's and CDAN's discriminators, Ganin 2016 / Long 2018), giving
    ``n_out`` logits (1 for source-vs-target)."""

    def __init__(self, in_dim: int, hidden: int = 1024, n_out: int = 1,
                 dropout: float = 0.5) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, n_out),
        )
