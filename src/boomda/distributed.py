"""Data-parallel training over several processes (``torchrun``), with global batch statistics.

Under ``torchrun --nproc-per-node N -m boomda run ...`` (or ``boomda run --nproc N``) every rank
draws the same global batch of ``batch_size`` source and target rows (the samplers share their
seed) and runs its encoders on its own contiguous share of the rows, ``batch_size / N`` of each.
The network's outputs are then gathered with a differentiable all-gather, in the global batch's
row order, so every rank computes every loss term on the whole global batch: the CORAL and
correlation matrices, the IB variances, Boomda's Q and gamma, the pseudo-label votes and the
discriminators see exactly what a one-process run at the same batch sees.

Gradients: the all-gather's backward sums, over ranks, the gradient that each rank's copy of
the (identical) loss sends to the rank's own rows, i.e. N times the gradient of the loss w.r.t.
those rows; :class:`~torch.nn.parallel.DistributedDataParallel` then averages the parameter
gradients over the N ranks, which gives exactly the one-process gradient (parameters after the
gather, such as a discriminator's, get the same full gradient on every rank, averaged to itself).

Random masks drawn for a rank's own rows (encoder dropout, modality dropout) are its rows of
the masks drawn for the whole gathered batch (:func:`draw_rows`): independent across ranks, and
the ranks' shared torch random state advances as one process's does.

Backends: gloo on CPU, nccl on CUDA (one GPU per rank, ``cuda:LOCAL_RANK``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from boomda.errors import ConfigError
from boomda.registry import BALANCERS


@dataclass(frozen=True)
class World:
    """This process's place among the data-parallel ranks."""

    rank: int
    size: int
    local_rank: int


def world() -> World | None:
    """The data-parallel world, or None when training in one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return World(dist.get_rank(), dist.get_world_size(),
                 int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def launched_by_torchrun() -> bool:
    """Whether this process is one of several ranks started by ``torchrun``."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def setup(device: str) -> str:
    """Join the process group of a ``torchrun`` launch (gloo on CPU, nccl on CUDA) and return
    this rank's device: ``cuda:LOCAL_RANK`` when ``device`` is ``auto`` with CUDA available or
    ``cuda[:N]``, else ``cpu``. Without a torchrun launch, returns ``device`` unchanged."""
    if not launched_by_torchrun():
        return device
    if dist.is_available() and dist.is_initialized():
        cuda = dist.get_backend() == "nccl"
        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if cuda else "cpu"
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed; run in one process")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:  # cuda, cuda:N or auto: each rank takes cuda:LOCAL_RANK
        if not torch.cuda.is_available():
            raise ConfigError(f"option device={device!r}, but CUDA is not available on this "
                              f"machine")
        if local >= torch.cuda.device_count():
            raise ConfigError(f"process {local} of this machine has no GPU of its own: "
                              f"{torch.cuda.device_count()} GPU(s) for more processes; start at "
                              f"most one process per GPU (--nproc / --nproc-per-node)")
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    elif device == "auto":
        device = "cpu"
    dist.init_process_group("nccl" if cuda else "gloo")
    return device


def check_supported(method: type | object, options: object, select_epoch: str = "none") -> None:
    """Raise :class:`ConfigError` when ``method`` (a Method class or instance) with ``options``
    cannot train data-parallel: a balancing on per-parameter gradients (``mgda_params``), whose
    Q would need every objective's parameter gradient gathered over the ranks; or an epoch
    chosen by a label-free score (``select_epoch``), which scores the whole target in one
    process."""
    if select_epoch != "none":
        raise ConfigError(f"select_epoch {select_epoch} is not supported in data-parallel "
                          f"training; train in one process, or without it")
    solver = getattr(options, "gamma_solver", None)
    if (getattr(method, "use_ca", False) and isinstance(solver, str) and solver in BALANCERS
            and not BALANCERS.trait(solver, "data_parallel", True)):
        usable = ", ".join(n for n in BALANCERS if BALANCERS.trait(n, "data_parallel", True))
        raise ConfigError(f"gamma_solver {solver} is not supported in data-parallel training "
                          f"(its Q needs per-parameter gradients); use one of {usable}")


def teardown() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_writer() -> bool:
    """Whether this process writes files: rank 0, or the only process."""
    w = world()
    return w is None or w.rank == 0


def barrier() -> None:
    if world() is not None:
        dist.barrier()


def local_rows(x: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous share of the rows of a global batch (all of them in one
    process)."""
    w = world()
    if w is None:
        return x
    n = x.shape[0]
    if n % w.size:
        raise ConfigError(f"a batch of {n} rows cannot be shared by {w.size} processes: choose "
                          f"a batch_size divisible by the number of processes (and no larger "
                          f"than the smaller domain)")
    share = n // w.size
    return x[w.rank * share:(w.rank + 1) * share]


def draw_rows(draw: Callable[[int], torch.Tensor], rows: int) -> torch.Tensor:
    """Random values for this process's ``rows`` rows, drawn as for the whole gathered batch.

    ``draw(n)`` draws a tensor of ``n`` rows from torch's generator. In one process it is
    ``draw(rows)``; in data-parallel training every rank calls ``draw(N * rows)``, as one process
    would for the gathered batch, and keeps rows ``rank * rows`` to ``(rank + 1) * rows``. The
    ranks' rows so get independent values, and torch's generator, which the ranks share, stays
    in the same state on every rank."""
    w = world()
    if w is None:
        return draw(rows)
    return draw(w.size * rows)[w.rank * rows:(w.rank + 1) * rows]


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """The rows of every rank, concatenated in rank order (``x`` itself in one process). The
    gradient flows back to each rank's own rows (summed over the ranks' losses)."""
    if world() is None:
        return x
    return _GatherRows.apply(x)


class _GatherRows(torch.autograd.Function):
    """All-gather along the rows; backward: the gathered gradient summed over the ranks
    (all-reduce, which gloo and nccl both have), of which each rank keeps its own rows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        ctx.rows = x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        rank = dist.get_rank()
        return grad[rank * ctx.rows:(rank + 1) * ctx.rows]
