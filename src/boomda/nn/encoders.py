"""Per-modality encoders: modules mapping one modality's input to a (B, d) representation.

Every encoder has ``n_features`` (features per sample, or per step of a sequence), ``out_dim``
(d), :meth:`fit_standardization` (statistics from source inputs) and :meth:`augment` (the
feature-level second view used by PCL). A user's own module for a feature-vector modality is
wrapped in :class:`ModuleEncoder`, which adds them.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from boomda import distributed
from boomda.errors import DataError


class Encoder(Protocol):
    """What the network asks of a modality's encoder (see the module docstring)."""

    n_features: int
    out_dim: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def fit_standardization(self, x: torch.Tensor) -> None: ...

    def augment(self, x: torch.Tensor, noise: float, fraction: float) -> torch.Tensor: ...


class Standardizer(nn.Module):
    """``(x - mean) / std`` per feature, with statistics held as buffers (saved in state_dict).

    The statistics are set from the source domain only (:meth:`fit`); a feature that is
    constant in the source keeps std 1.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Statistics of ``x`` (N, D) over its rows."""
        self.mean.copy_(x.mean(dim=0))
        std = x.std(dim=0, unbiased=False)
        self.std.copy_(torch.where(std > 1e-8, std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def perturb(self, x: torch.Tensor, noise: float, fraction: float) -> torch.Tensor:
        """Gaussian noise of ``noise`` standard deviations on every value of ``x`` (..., D), then
        a random ``fraction`` of the values replaced by their mean."""
        noisy = x + noise * self.std * torch.randn_like(x)
        keep = torch.rand_like(x) >= fraction
        return torch.where(keep, noisy, self.mean.expand_as(x))


def split_steps(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A packed sequence batch (B, T, 1 + D) (see ``boomda.data.pack_sequences``) as its
    features (B, T, D) and its step mask (B, T) bool."""
    if x.dim() != 3 or x.shape[-1] < 2:
        raise ValueError(f"expected packed sequences (batch, steps, 1 + features), got "
                         f"{tuple(x.shape)}")
    return x[..., 1:], x[..., 0] > 0.5


class RowDropout(nn.Dropout):
    """:class:`torch.nn.Dropout` whose mask, in data-parallel training, is this process's rows of
    the mask drawn for the whole gathered batch (:func:`boomda.distributed.draw_rows`): the
    ranks' rows get independent masks, as one process gives them. In one process it is
    :class:`torch.nn.Dropout` itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or distributed.world() is None:
            return super().forward(x)

        def mask(rows: int) -> torch.Tensor:
            ones = torch.ones((rows, *x.shape[1:]), dtype=x.dtype, device=x.device)
            return nn.functional.dropout(ones, self.p, True)

        return x * distributed.draw_rows(mask, x.shape[0])


class StandardizedEncoder(nn.Module):
    """A feature-vector encoder that standardises its input with source statistics
    (:class:`Standardizer`), then maps it to ``out_dim`` dims (:meth:`encode`)."""

    def __init__(self, n_features: int, dim: int) -> None:
        super().__init__()
        self.standardize = Standardizer(n_features)
        self.n_features = n_features
        self.out_dim = dim

    @torch.no_grad()
    def fit_standardization(self, x: torch.Tensor) -> None:
        self.standardize.fit(x)

    def augment(self, x: torch.Tensor, noise: float, fraction: float) -> torch.Tensor:
        return self.standardize.perturb(x, noise, fraction)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised (B, n_features) -> (B, out_dim)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(self.standardize(x))


class MLPEncoder(StandardizedEncoder):
    """Feature-vector encoder: standardise, ``Linear -> ReLU -> Dropout -> Linear`` to d dims."""

    def __init__(self, n_features: int, dim: int = 256, hidden: int = 512, dropout: float = 0.1):
        super().__init__(n_features, dim)
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.ReLU(),
            RowDropout(dropout),
            nn.Linear(hidden, dim),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ModuleEncoder(StandardizedEncoder):
    """A user's module as a feature-vector encoder: standardise (source statistics, as
    :class:`MLPEncoder` does), then ``module``, which maps (B, n_features) to (B, dim).

    Its parameters train with the rest of the network and its state dict is saved with the
    model; the module itself is not, so loading a saved model needs it again
    (``DomainAdapter.load(path, encoders=...)``).
    """

    def __init__(self, module: nn.Module, n_features: int, dim: int) -> None:
        super().__init__(n_features, dim)
        self.module = module

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def describe(self) -> str:
        """The module's class, as ``module.qualname`` (recorded in checkpoints)."""
        kind = type(self.module)
        return f"{kind.__module__}.{kind.__qualname__}"


@torch.no_grad()
def check_module_encoder(name: str, module: object, x: torch.Tensor, dim: int,
                         device: torch.device) -> nn.Module:
    """``module``, checked: raise a one-line :class:`~boomda.errors.DataError` unless it (the
    encoder given for modality ``name``) is an ``nn.Module`` that maps ``x`` (2 rows of the
    modality's features) to (2, ``dim``) on ``device``; the module is left on ``device``, in its
    mode."""
    d_in = x.shape[1]
    expected = f"encoders[{name!r}]: expected a module mapping (B, {d_in}) to (B, {dim})"
    if not isinstance(module, nn.Module):
        raise DataError(f"{expected}, got a {type(module).__name__}, not an nn.Module")
    training = module.training
    module.to(device).eval()
    try:
        out = module(x.to(device, torch.get_default_dtype()))
    except Exception as exc:  # noqa: BLE001 - any failure of the user's module is reported
        message = str(exc).strip().splitlines()
        raise DataError(f"{expected}; on a ({x.shape[0]}, {d_in}) batch it raised "
                        f"{type(exc).__name__}: {message[0] if message else ''}") from None
    finally:
        module.train(training)
    if not isinstance(out, torch.Tensor):
        raise DataError(f"{expected}, got a {type(out).__name__}, not a tensor")
    if tuple(out.shape) != (x.shape[0], dim):
        raise DataError(f"{expected}, got output shape {tuple(out.shape)} for input shape "
                        f"{tuple(x.shape)}")
    return module
