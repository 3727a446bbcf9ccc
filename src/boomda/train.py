"""The one trainer every method shares (Algorithm 1 of the paper, for any method).

Per step: a labelled source batch and an unlabelled target batch; the method returns named loss
terms; the trainer minimises their weighted sum with one optimiser step and records every term,
the balancing weights, r, and the pseudo-labels' count and accuracy. Target labels serve only that
diagnostic: they never reach the method. A fixed budget of epochs is trained and the last model
is kept (no model selection).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from boomda.config import TrainConfig
from boomda.data.container import MultimodalData, step_counts
from boomda.data.pair import DomainPair
from boomda.errors import DataError, TrainingError
from boomda.methods import Batch, Method


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from boomda.errors import ConfigError

        raise ConfigError(f"option device={name!r}, but CUDA is not available on this machine")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


class _Sampler:
    """Random batches of a fixed size from tensors held on the device; reshuffles each pass."""

    def __init__(self, data: MultimodalData, batch_size: int, device: torch.device,
                 rng: np.random.Generator, what: str) -> None:
        if len(data) < 2:
            raise DataError(f"{what}: needs at least 2 samples for a batch, got {len(data)}")
        # feature vectors live on the device; sequences (large) stay in host memory and each
        # batch is moved, cut to its longest sample
        self.device = device
        store = torch.device("cpu") if any(v.ndim == 3 for v in data.views.values()) else device
        self.x = {m: torch.from_numpy(v).to(store) for m, v in data.views.items()}
        self.steps = {m: torch.from_numpy(step_counts(v).astype(np.int64))
                      for m, v in data.views.items() if v.ndim == 3}
        self.y = None if data.labels is None else torch.from_numpy(data.labels).to(store)
        self.n = len(data)
        self.batch_size = min(batch_size, self.n)
        self.rng = rng
        self._order = np.empty(0, dtype=np.int64)
        self._pos = 0

    @property
    def batches_per_pass(self) -> int:
        return self.n // self.batch_size

    def next(self) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        if self._pos + self.batch_size > len(self._order):
            self._order, self._pos = self.rng.permutation(self.n), 0
        idx = torch.from_numpy(self._order[self._pos:self._pos + self.batch_size])
        self._pos += self.batch_size
        idx = idx.to(next(iter(self.x.values())).device)
        batch = {}
        for m, v in self.x.items():
            rows = v[idx]
            if m in self.steps:
                rows = rows[:, : int(self.steps[m][idx].max())]
            batch[m] = rows.to(self.device, non_blocking=True).float()
        y = None if self.y is None else self.y[idx].to(self.device)
        return batch, y


@dataclass
class StepLog:
    """What one step records (one JSON line of the metrics file)."""

    step: int
    epoch: int
    loss: float
    terms: dict[str, float]
    weights: dict[str, float]
    gamma: list[float] | None
    r: float | None
    n_pseudo: int | None
    pseudo_accuracy: float | None
    seconds: float
    n_pseudo_classes: int | None = None

    def to_dict(self) -> dict:
        d = {"step": self.step, "epoch": self.epoch, "loss": self.loss}
        d.update({f"loss_{k}": v for k, v in self.terms.items()})
        d.update({f"weight_{k}": v for k, v in self.weights.items()})
        if self.gamma is not None:
            d["gamma"] = self.gamma
        d["r"] = _finite_or_none(self.r)
        d["n_pseudo"] = self.n_pseudo
        d["n_pseudo_classes"] = self.n_pseudo_classes
        d["pseudo_accuracy"] = self.pseudo_accuracy
        d["seconds"] = self.seconds
        return d


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


class Trainer:
    """Trains a :class:`Method` on a :class:`DomainPair` for ``config.epochs`` epochs."""

    def __init__(self, method: Method, config: TrainConfig, device: torch.device) -> None:
        self.method = method.to(device)
        self.config = config
        self.device = device
        self.optimizer = torch.optim.Adam(
            [p for p in method.parameters() if p.requires_grad], lr=config.lr,
            betas=tuple(config.betas), weight_decay=config.weight_decay,
        )

    def fit(
        self,
        pair: DomainPair,
        on_step: Callable[[StepLog], None] | None = None,
        progress: bool = False,
    ) -> list[StepLog]:
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        source = _Sampler(pair.source, cfg.batch_size, self.device, rng, "source")
        target = _Sampler(pair.target, cfg.batch_size, self.device, rng, "target")
        for name, sampler in (("source", source), ("target", target)):
            if sampler.batch_size < cfg.batch_size:
                warnings.warn(f"batch_size {cfg.batch_size} exceeds the {sampler.n} {name} "
                              f"samples; each {name} batch holds all {sampler.n}",
                              stacklevel=2)
        steps_per_epoch = max(1, source.batches_per_pass)
        total = cfg.epochs * steps_per_epoch
        net = self.method.net
        net.fit_standardization(source.x)
        self.method.train()
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc=f"{self.method.name}", unit="step", leave=False)
        history: list[StepLog] = []
        try:
            for step in range(total):
                start = time.perf_counter()
                xs, ys = source.next()
                xt, yt_hidden = target.next()
                out = self.method.loss_terms(Batch(xs, ys), Batch(xt), step / max(1, total - 1))
                loss = out.total()
                if not torch.isfinite(loss):
                    bad = [k for k, t in out.terms.items() if not torch.isfinite(t)]
                    raise TrainingError(
                        f"step {step}: the loss became non-finite (terms {bad}); lower the "
                        f"learning rate (lr={cfg.lr}) or check the input scale"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)  # time the whole step, not its launch
                log = self._record(step, step // steps_per_epoch, loss, out, yt_hidden,
                                   time.perf_counter() - start)
                history.append(log)
                if on_step is not None:
                    on_step(log)
                if bar is not None:
                    bar.update(1)
                    if step % 10 == 0:
                        bar.set_postfix(loss=f"{log.loss:.3f}")
        finally:
            if bar is not None:
                bar.close()
        self.method.eval()
        return history

    @staticmethod
    def _record(step, epoch, loss, out, yt_hidden, seconds) -> StepLog:
        n_pseudo = acc = n_classes = None
        if out.pseudo_keep is not None:
            keep = out.pseudo_keep
            n_pseudo = int(keep.sum())
            n_classes = int(out.pseudo_labels[keep].unique().numel())
            if yt_hidden is not None and n_pseudo > 0:
                acc = float((out.pseudo_labels[keep] == yt_hidden[keep]).float().mean())
        return StepLog(
            step=step, epoch=epoch, loss=float(loss.detach()),
            terms={k: float(t.detach()) for k, t in out.terms.items()},
            weights=dict(out.weights), gamma=out.gamma, r=out.r,
            n_pseudo=n_pseudo, pseudo_accuracy=acc, seconds=seconds, n_pseudo_classes=n_classes,
        )
