"""What every adaptation method shares: batches, named loss terms, and the Method interface."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field

import torch
from torch import nn

from boomda.config import TrainConfig
from boomda.nn.net import MultimodalNet, NetOutput


@dataclass
class Batch:
    """One batch: modality name -> (B, D_m) tensor, and labels (None for the target domain)."""

    x: dict[str, torch.Tensor]
    y: torch.Tensor | None = None

    def __len__(self) -> int:
        return next(iter(self.x.values())).shape[0]


def joint_forward(net: MultimodalNet, source: Batch, target: Batch) -> tuple[NetOutput, int]:
    """One forward pass over the source and target batches stacked; returns the output and the
    number of source rows (the source part is ``out.rows(slice(0, n))``)."""
    n = len(source)
    inputs = {m: torch.cat([source.x[m], target.x[m]]) for m in net.modalities}
    return net(inputs), n


@dataclass
class MethodOutput:
    """The named loss terms of one step.

    ``terms[k]`` is a scalar loss and ``weights[k]`` its coefficient; the trainer minimises
    ``sum_k weights[k] * terms[k]``. ``gamma``/``r``: balancing weights and diagnostic, when the
    method balances. ``pseudo_keep``/``pseudo_labels``: the target pseudo-labels, when it makes
    them (their accuracy is logged by the trainer as a diagnostic).
    """

    terms: dict[str, torch.Tensor]
    weights: dict[str, float]
    gamma: list[float] | None = None
    r: float | None = None
    pseudo_keep: torch.Tensor | None = None
    pseudo_labels: torch.Tensor | None = None
    extras: dict[str, float] = field(default_factory=dict)

    def total(self) -> torch.Tensor:
        return sum(self.weights[k] * t for k, t in self.terms.items())


class Method(nn.Module):
    """An adaptation method: the network plus any modules of its own (discriminators, ...).

    Subclasses implement :meth:`loss_terms`. Every parameter of the method (the network's and
    its own) is in ``self.parameters()`` and ``self.state_dict()``.
    """

    name: str = ""

    def __init__(self, net: MultimodalNet, config: TrainConfig) -> None:
        super().__init__()
        self.net = net
        self.config = config

    @abstractmethod
    def loss_terms(self, source: Batch, target: Batch, progress: float) -> MethodOutput:
        """Loss terms for one (labelled source batch, unlabelled target batch) pair.

        ``progress`` is the fraction of training done, in [0, 1] (for schedules).
        """
