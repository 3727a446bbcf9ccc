"""Per-modality encoders: modules mapping one modality's input to a (B, d) representation."""

from __future__ import annotations

import torch
from torch import nn


class Standardizer(nn.Module):
    """``(x - mean) / std`` per feature, with statistics held as buffers (saved in state_dict).

    The statistics are set from the source domain only (:meth:`fit`); a feature that is
    constant in the source keeps std 1.
    """

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        self.mean.copy_(x.mean(dim=0))
        std = x.std(dim=0, unbiased=False)
        self.std.copy_(torch.where(std > 1e-8, std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class MLPEncoder(nn.Module):
    """Feature-vector encoder: standardise, ``Linear -> ReLU -> Dropout -> Linear`` to d dims."""

    def __init__(self, n_features: int, dim: int = 256, hidden: int = 512, dropout: float = 0.1):
        super().__init__()
        self.standardize = Standardizer(n_features)
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
        )
        self.out_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.standardize(x))
