"""What every adaptation method shares: batches, named loss terms, and the Method interface."""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from boomda import distributed
from boomda.config import TrainConfig, assign
from boomda.losses import information_bottleneck_loss, tensor_sum
from boomda.methods.options import NoOptions
from boomda.nn.net import MultimodalNet, NetOutput


@dataclass
class Batch:
    """One batch: modality name -> (B, D_m) tensor (or packed sequences (B, T, 1 + D_m)), and
    labels (None for the target domain)."""

    x: dict[str, torch.Tensor]
    y: torch.Tensor | None = None

    def __len__(self) -> int:
        return next(iter(self.x.values())).shape[0]

    def labels(self) -> torch.Tensor:
        """``y``, which a source batch has; a batch without labels is a :class:`ValueError`."""
        if self.y is None:
            raise ValueError("a source batch needs labels; this one has none")
        return self.y


def joint_forward(net: MultimodalNet, source: Batch, target: Batch) -> tuple[NetOutput, int]:
    """One forward pass over the source and target batches stacked; returns the output and the
    number of source rows (the source part is ``out.rows(slice(0, n))``).

    In data-parallel training (:mod:`boomda.distributed`) the batches are the global ones: each
    rank runs the network on its share of the source rows and of the target rows, and the
    output is the gathered one, in the global order (all source rows, then all target rows)."""
    n = len(source)
    world = distributed.world()
    if world is None:
        inputs = {m: stack_rows(source.x[m], target.x[m]) for m in net.modalities}
        return run_net(net, inputs), n
    inputs = {m: stack_rows(distributed.local_rows(source.x[m]),
                            distributed.local_rows(target.x[m])) for m in net.modalities}
    return gather_output(run_net(net, inputs), n // world.size), n


def forward_rows(net: MultimodalNet, x: dict[str, torch.Tensor]) -> NetOutput:
    """``net(x)`` for a global batch ``x``; in data-parallel training, each rank's share run
    here and the outputs gathered (see :func:`joint_forward`)."""
    if distributed.world() is None:
        return run_net(net, x)
    return gather_output(run_net(net, {m: distributed.local_rows(v) for m, v in x.items()}), None)


def run_net(net: MultimodalNet, x: dict[str, torch.Tensor]) -> NetOutput:
    """``net(x)``; in training with ``net.autocast_dtype`` set (``precision: bf16``), the
    forward pass is autocast to that dtype and its outputs returned in fp32, so that the loss
    terms (alignment, Q, the IB log-determinant) are computed in fp32."""
    dtype = getattr(net, "autocast_dtype", None)
    if dtype is None or not net.training:
        return net(x)
    device = next(iter(x.values())).device.type
    with torch.autocast(device, dtype=dtype):
        out = net(x)
    return NetOutput([z.float() for z in out.reps], out.fused.float(),
                     [y.float() for y in out.logits])


def gather_output(out: NetOutput, n_source: int | None) -> NetOutput:
    """Every rank's ``out`` (rows: ``n_source`` source rows then target rows, or one part when
    ``n_source`` is None) gathered in one collective into the global order: the source rows of
    ranks 0..N-1, then their target rows."""
    tensors = [*out.reps, out.fused, *out.logits]
    widths = [t.shape[1] for t in tensors]
    world = distributed.world()
    size = 1 if world is None else world.size
    rows = tensors[0].shape[0]
    every = distributed.gather_rows(torch.cat(tensors, dim=1)).reshape(size, rows, -1)
    if n_source is not None:
        every = torch.cat([every[:, :n_source].reshape(size * n_source, -1),
                           every[:, n_source:].reshape(size * (rows - n_source), -1)])
    else:
        every = every.reshape(size * rows, -1)
    parts = list(torch.split(every, widths, dim=1))
    m = len(out.reps)
    return NetOutput(parts[:m], parts[m], parts[m + 1:])


def stack_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a`` and ``b`` stacked along the batch; padded sequences (B, T, C) of different lengths
    are right-padded with zeros (padding steps) to the longer T first."""
    if a.dim() == 3 and a.shape[1] != b.shape[1]:
        steps = max(a.shape[1], b.shape[1])
        a, b = (torch.nn.functional.pad(t, (0, 0, 0, steps - t.shape[1])) for t in (a, b))
    return torch.cat([a, b])


@dataclass
class MethodOutput:
    """The named loss terms of one step.

    ``terms[k]`` is a scalar loss and ``weights[k]`` its coefficient; the trainer minimises
    ``sum_k weights[k] * terms[k]``. ``gamma``/``r``: balancing weights and diagnostic, when the
    method balances; ``gamma_names``: the objective each weight belongs to.
    ``pseudo_keep``/``pseudo_labels``: the target pseudo-labels, when it makes them (their
    accuracy is logged by the trainer as a diagnostic).

    ``injected``: (tensor, gradient) pairs whose gradient the method already knows: a term whose
    gradient w.r.t. an intermediate tensor was computed anyway (Boomda's alignment losses, whose
    representation gradients the balancing needs) is then recorded detached, and its gradient
    enters :meth:`backward` at that tensor, so that the backward pass does not traverse the
    term's graph a second time.
    """

    terms: dict[str, torch.Tensor]
    weights: dict[str, float]
    gamma: list[float] | None = None
    r: float | None = None
    gamma_names: list[str] | None = None
    pseudo_keep: torch.Tensor | None = None
    pseudo_labels: torch.Tensor | None = None
    extras: dict[str, float] = field(default_factory=dict)
    injected: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)

    def total(self) -> torch.Tensor:
        """``sum_k weights[k] * terms[k]`` (its gradient omits the injected ones)."""
        return tensor_sum(self.weights[k] * t for k, t in self.terms.items())

    def backward(self, total: torch.Tensor) -> None:
        """Back-propagate ``total`` (:meth:`total`) together with the injected gradients: the
        parameter gradients of the whole weighted loss."""
        if not self.injected:
            total.backward()
            return
        tensors = [total, *(t for t, _ in self.injected)]
        grads = [None, *(g for _, g in self.injected)]
        if not total.requires_grad:  # every term injected
            tensors, grads = tensors[1:], grads[1:]
        torch.autograd.backward(tensors, grads)


def source_loss(out: NetOutput, n_source: int, labels: torch.Tensor,
                config: TrainConfig) -> torch.Tensor:
    """The source-domain objective every method shares: the IB loss (Eq. 5) over the M+1 heads
    on the source rows of a joint batch (cross-entropy plus the small log-determinant term)."""
    src = out.rows(slice(0, n_source))
    return information_bottleneck_loss(src.reps + [src.fused], src.logits, labels, config.beta)


#: the number of points of every method's :attr:`Method.preset`
PRESET_SIZE = 6


def weight_preset(key: str, extra: dict[str, Any] | None = None) -> tuple[dict[str, Any], ...]:
    """The baselines' preset: ``key`` (an adaptation weight, default 1) at 1 (first), 0.03, 0.1,
    0.3, 3 and 10, each with the settings ``extra``."""
    return tuple({key: value, **(extra or {})} for value in (1.0, 0.03, 0.1, 0.3, 3.0, 10.0))


class Method(nn.Module):
    """An adaptation method: the network plus any modules of its own (discriminators, ...).

    Subclasses implement :meth:`loss_terms` and may declare an ``Options`` dataclass of their own
    hyperparameters (set through ``TrainConfig.options``). Every parameter of the method (the
    network's and its own) is in ``self.parameters()`` and ``self.state_dict()``.
    """

    name: str = ""
    Options: type = NoOptions
    #: the points ``boomda run --select`` / ``DomainAdapter(select=...)`` tries by default: each
    #: a mapping of method options or :class:`~boomda.config.TrainConfig` fields to values, the
    #: shipped default first (the earlier point wins a tie); every method has :data:`PRESET_SIZE`
    preset: tuple[dict[str, Any], ...] = ()
    #: the row of the method in the paper's tables (Table 1 order); None: after the ranked ones
    table_rank: int | None = None
    #: the method's name in tables (the paper's: ``D.T.``, ``DANN``, ...); None: its ``name``
    title: str | None = None
    #: whether the method is a baseline of the comparison (direct transfer or a published method)
    baseline: bool = False
    #: for an ablation variant of Boomda: whether it uses correlation alignment (CA) and
    #: pseudo-labels (PL); None for the other methods
    use_ca: bool | None = None
    use_pl: bool | None = None

    def __init__(self, net: MultimodalNet, config: TrainConfig) -> None:
        super().__init__()
        self.net = net
        self.config = config
        self.options = self.parse_options(config.options)

    @classmethod
    def parse_options(cls, raw: Mapping[str, Any] | None) -> Any:
        """The method's options from a mapping, with defaults; raises on an unknown key."""
        options = cls.Options()
        allowed = [f.name for f in dataclasses.fields(options)]
        assign(options, dict(raw or {}), "options", message=lambda key: (
            f"method {cls.name!r} has no option {key!r}; its options: "
            f"{', '.join(allowed) or 'none'}"))
        check = getattr(options, "validate", None)
        if check is not None:
            check()
        return options

    def forward(self, source: Batch, target: Batch, progress: float) -> MethodOutput:
        """:meth:`loss_terms` (what a :class:`~torch.nn.parallel.DistributedDataParallel`
        wrapper calls)."""
        return self.loss_terms(source, target, progress)

    @abstractmethod
    def loss_terms(self, source: Batch, target: Batch, progress: float) -> MethodOutput:
        """Loss terms for one (labelled source batch, unlabelled target batch) pair.

        ``progress`` is the fraction of training done, in [0, 1] (for schedules).
        """
