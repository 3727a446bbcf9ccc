"""The one trainer every method shares (Algorithm 1 of the paper, for any method).

Per step: a labelled source batch and an unlabelled target batch; the method returns named loss
terms; the trainer minimises their weighted sum with one optimiser step and records every term,
the balancing weights, r, and the pseudo-labels' count and accuracy. Target labels serve only that
diagnostic: they never reach the method. A fixed budget of epochs is trained and the last model
is kept (no model selection).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from boomda import distributed
from boomda.config import TrainConfig
from boomda.data.container import MultimodalData, step_counts
from boomda.data.pair import DomainPair
from boomda.errors import DataError, TrainingError
from boomda.methods import Batch, Method
from boomda.nn.backbone_encoder import BackboneEncoder
from boomda.runtime import resolve_device, seed_everything  # noqa: F401 - re-exported

#: version of the training-state layout (:meth:`Trainer.fit`'s ``checkpoint``)
TRAINING_STATE_FORMAT = 1


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

    def state(self) -> dict[str, Any]:
        """Where the sampler is in its current pass (its random generator is saved apart)."""
        return {"order": torch.from_numpy(self._order.copy()), "pos": self._pos}

    def load_state(self, state: dict[str, Any]) -> None:
        self._order = state["order"].numpy().astype(np.int64)
        self._pos = int(state["pos"])

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
            batch[m] = rows.to(self.device, dtype=torch.get_default_dtype(), non_blocking=True)
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
    #: the method's own per-step diagnostics (``MethodOutput.extras``: the gradient-reversal
    #: coefficient of the adversarial baselines, DADA's mixing coefficient, ...), written as
    #: ``extra_<name>``
    extras: dict[str, float] = dataclasses.field(default_factory=dict)
    #: the objective of each weight in ``gamma`` (Boomda: the modalities, then ``fused``); not
    #: written to the metrics file, whose ``gamma`` stays a list
    gamma_names: list[str] | None = None

    @property
    def gamma_by_name(self) -> dict[str, float] | None:
        """``gamma`` as objective -> weight (``{"fou": 0.1, ..., "fused": 0.6}``), or None when
        the step has no gamma."""
        if self.gamma is None:
            return None
        names = self.gamma_names or [f"objective {i + 1}" for i in range(len(self.gamma))]
        return dict(zip(names, self.gamma, strict=True))

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"step": self.step, "epoch": self.epoch, "loss": self.loss}
        d.update({f"loss_{k}": v for k, v in self.terms.items()})
        d.update({f"weight_{k}": v for k, v in self.weights.items()})
        if self.gamma is not None:
            d["gamma"] = self.gamma
        d["r"] = _finite_or_none(self.r)
        d["n_pseudo"] = self.n_pseudo
        d["n_pseudo_classes"] = self.n_pseudo_classes
        d["pseudo_accuracy"] = self.pseudo_accuracy
        d.update({f"extra_{k}": _finite_or_none(v) for k, v in self.extras.items()})
        d["seconds"] = self.seconds
        return d


def nonfinite_message(terms: Mapping[str, torch.Tensor], weights: Mapping[str, Any]) -> str:
    """What made the weighted loss ``sum_k weights[k] * terms[k]`` non-finite: the non-finite
    terms with their weights; else every term with its weight, and whether a weighted term or
    only their sum is not finite."""
    if not terms:
        return "the method gave no loss terms"
    values = {k: float(t.detach()) for k, t in terms.items()}
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        return "non-finite terms: " + ", ".join(f"{k}={values[k]:g} (weight "
                                                f"{float(weights[k]):g})" for k in bad)
    listed = ", ".join(f"{k}={values[k]:g} x weight {float(weights[k]):g}" for k in terms)
    if all(torch.isfinite(torch.as_tensor(weights[k] * terms[k])) for k in terms):
        return f"every weighted term finite, the weighted sum overflowed: {listed}"
    return f"every term finite, a weighted term not: {listed}"


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


class Trainer:
    """Trains a :class:`Method` on a :class:`DomainPair` for ``config.epochs`` epochs."""

    def __init__(self, method: Method, config: TrainConfig, device: torch.device) -> None:
        self.method = method.to(device)
        self.config = config
        self.device = device
        self.params = [p for p in method.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.params, config)
        self.scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
        method.net.autocast_dtype = AUTOCAST[config.precision]
        #: what a step calls: the method, or its DistributedDataParallel wrapper
        self.model: torch.nn.Module = method
        if distributed.world() is not None:
            self.model = _data_parallel(method, device)

    def fit(
        self,
        pair: DomainPair,
        on_step: Callable[[StepLog], None] | None = None,
        progress: bool = False,
        *,
        checkpoint: Callable[[dict[str, Any]], None] | None = None,
        checkpoint_every: int = 0,
        resume: dict[str, Any] | None = None,
    ) -> list[StepLog]:
        """Train for ``config.epochs`` epochs and return the per-step logs.

        ``checkpoint``: called with the whole training state (see :meth:`training_state`) at the
        end of every ``checkpoint_every``-th epoch and at the end of training (so that work after
        training, such as writing a run folder, can be resumed without training again).
        ``resume``: such a state; the run continues from it exactly as if it had never stopped
        (on CPU, bit for bit); a state saved at the end of training trains no further step.
        """
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        source = _Sampler(pair.source, cfg.batch_size, self.device, rng, "source")
        target = _Sampler(pair.target, cfg.batch_size, self.device, rng, "target")
        for name, sampler in (("source", source), ("target", target)):
            if sampler.batch_size < cfg.batch_size and resume is None:
                warnings.warn(f"batch_size {cfg.batch_size} exceeds the {sampler.n} {name} "
                              f"samples; each {name} batch holds all {sampler.n}",
                              stacklevel=2)
        steps_per_epoch = max(1, source.batches_per_pass)
        total = cfg.epochs * steps_per_epoch
        self.scheduler = make_schedule(self.optimizer, cfg.lr_schedule, total)
        net = self.method.net
        net.fit_standardization(source.x)
        history: list[StepLog] = []
        first = 0
        #: the best epoch so far by the label-free score (``select_epoch``)
        self.best_epoch: dict[str, Any] = {}
        if resume is not None:
            first, history = self._restore(resume, rng, source, target, total)
        self.method.train()
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=first, desc=f"{self.method.name}", unit="step",
                       leave=False)
        try:
            for step in range(first, total):
                start = time.perf_counter()
                xs, ys = source.next()
                xt, yt_hidden = target.next()
                out = self.model(Batch(xs, ys), Batch(xt), step / max(1, total - 1))
                loss = out.total()
                if not torch.isfinite(loss):
                    raise TrainingError(
                        f"step {step}: the loss became non-finite "
                        f"({nonfinite_message(out.terms, out.weights)}); lower the "
                        f"learning rate (lr={cfg.lr}) or check the input scale"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                out.backward(loss)
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
                self.optimizer.step()
                if self.scheduler is not None:
                    self.scheduler.step()
                # no explicit device synchronisation: the one host transfer of the logged
                # values in _record waits for the step, and the step is timed after it
                log = self._record(step, step // steps_per_epoch, loss, out, yt_hidden, start)
                history.append(log)
                if on_step is not None:
                    on_step(log)
                if bar is not None:
                    bar.update(1)
                    if step % 10 == 0:
                        bar.set_postfix(loss=f"{log.loss:.3f}")
                epoch_done = (step + 1) % steps_per_epoch == 0
                if epoch_done and cfg.select_epoch != "none":
                    self._score_epoch((step + 1) // steps_per_epoch, pair)
                if (checkpoint is not None and checkpoint_every > 0 and epoch_done
                        and (step + 1 == total
                             or ((step + 1) // steps_per_epoch) % checkpoint_every == 0)):
                    self._check_finite(step + 1)  # a diverged state is never saved
                    checkpoint(self.training_state(step + 1, rng, source, target, history))
        finally:
            if bar is not None:
                bar.close()
        self._check_finite(total)
        if self.best_epoch:  # the model of the epoch the label-free score picked
            self.method.load_state_dict(self.best_epoch["model"], strict=False)
        self.method.eval()
        return history

    def _score_epoch(self, epoch: int, pair: DomainPair) -> None:
        """Score the model with IM on the unlabelled target (``select_epoch``); keep a copy of
        it when the score beats every earlier epoch's (the earlier epoch wins a tie; a
        non-finite score never wins)."""
        from boomda.evaluate import predict_logits
        from boomda.select import information_maximization, softmax

        score = information_maximization(softmax(predict_logits(self.method.net, pair.target,
                                                                self.device)))
        if math.isfinite(score) and score > self.best_epoch.get("score", -math.inf):
            self.best_epoch = {
                "epoch": epoch, "score": score,
                "model": {k: v.detach().cpu().clone()
                          for k, v in stored_state(self.method).items()}}

    def _check_finite(self, steps: int) -> None:
        """Raise :class:`TrainingError` if a parameter holds a non-finite value after ``steps``
        steps (training diverged: the model must not be saved or used)."""
        bad = total = 0
        names = []
        for name, param in self.method.named_parameters():
            count = int((~torch.isfinite(param.detach())).sum())
            total += param.numel()
            if count:
                bad += count
                names.append(name)
        if bad:
            raise TrainingError(
                f"training diverged: after {steps} steps {bad:,} of {total:,} parameters are "
                f"not finite (first in {names[0]}); lower the learning rate "
                f"(lr={self.config.lr}) or clip the gradients (grad_clip)")

    def training_state(self, step: int, rng: np.random.Generator, source: _Sampler,
                       target: _Sampler, history: list[StepLog]) -> dict[str, Any]:
        """Everything the next step depends on: the model and the optimiser, every random state
        (torch, CUDA, numpy's global and the samplers' generator, Python's), where each sampler
        is in its pass, the next step's index, and the logs so far. Tensors, numbers and
        strings only, so that ``torch.load(..., weights_only=True)`` reads it."""
        np_state = np.random.get_state(legacy=True)
        assert isinstance(np_state, tuple), "numpy's global MT19937 state is a legacy tuple"
        return {
            "format": TRAINING_STATE_FORMAT,
            "step": step,
            "total_steps": self.config.epochs * max(1, source.batches_per_pass),
            "model": {k: v.detach().cpu().clone() for k, v in stored_state(self.method).items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": ({k: v for k, v in self.scheduler.state_dict().items()
                           if k != "lr_lambdas"} if self.scheduler is not None else {}),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": (torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []),
                "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)),
                          "rest": json.dumps([np_state[0], *map(_plain_number, np_state[2:])])},
                "python": json.dumps(random.getstate()),
                "sampler": json.dumps(rng.bit_generator.state),
            },
            "samplers": {"source": source.state(), "target": target.state()},
            "history": json.dumps([dataclasses.asdict(log) for log in history]),
            "best_epoch": dict(self.best_epoch),
        }

    def _restore(self, state: dict[str, Any], rng: np.random.Generator, source: _Sampler,
                 target: _Sampler, total: int) -> tuple[int, list[StepLog]]:
        if state.get("format") != TRAINING_STATE_FORMAT:
            raise TrainingError(f"checkpoint format {state.get('format')!r} is not "
                                f"{TRAINING_STATE_FORMAT} (written by another boomda version)")
        if int(state["total_steps"]) != total:
            raise TrainingError(f"the checkpoint is of a run of {state['total_steps']} steps, "
                                f"this run has {total}: the data or the settings changed")
        if not 0 < int(state["step"]) <= total:
            raise TrainingError(f"the checkpoint's step {int(state['step'])} lies outside this "
                                f"run's schedule (1..{total} steps)")
        own = stored_state(self.method)
        saved_model = state["model"]
        odd = sorted(set(own) ^ set(saved_model))
        if odd:
            raise TrainingError(f"the checkpoint's model {'lacks' if odd[0] in own else 'has'} "
                                f"the entry {odd[0]!r}: it is of another model than this run's")
        for key, value in saved_model.items():
            if tuple(value.shape) != tuple(own[key].shape):
                raise TrainingError(f"the checkpoint's entry {key!r} has shape "
                                    f"{tuple(value.shape)}, this run's model "
                                    f"{tuple(own[key].shape)}: it is of another model")
        self.method.load_state_dict(saved_model, strict=False)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise TrainingError(f"the checkpoint's optimiser state does not fit this run's "
                                f"model ({type(exc).__name__}): it is of another model") from None
        if self.scheduler is not None and state.get("scheduler"):
            self.scheduler.load_state_dict({**state["scheduler"], "lr_lambdas": [None]})
        saved = state["rng"]
        torch.set_rng_state(saved["torch"])
        if self.device.type == "cuda" and saved["cuda"]:
            torch.cuda.set_rng_state_all(saved["cuda"])
        name, *rest = json.loads(saved["numpy"]["rest"])
        np.random.set_state((name, saved["numpy"]["keys"].numpy().astype(np.uint32), *rest))
        version, internal, gauss = json.loads(saved["python"])
        random.setstate((version, tuple(internal), gauss))
        rng.bit_generator.state = json.loads(saved["sampler"])
        source.load_state(state["samplers"]["source"])
        target.load_state(state["samplers"]["target"])
        history = [StepLog(**fields) for fields in json.loads(state["history"])]
        if len(history) != int(state["step"]):
            raise TrainingError(f"the checkpoint holds the logs of {len(history)} steps but "
                                f"says it stopped after {int(state['step'])}")
        self.best_epoch = dict(state.get("best_epoch") or {})
        names = self.method.net.modalities + ["fused"]
        for log in history:  # a checkpoint written before steps named their gamma
            if log.gamma is not None and log.gamma_names is None and len(log.gamma) == len(names):
                log.gamma_names = list(names)
        return int(state["step"]), history

    @staticmethod
    def _record(step, epoch, loss, out, yt_hidden, start: float) -> StepLog:
        """The step's log; ``seconds`` runs from ``start`` to the host transfer of the logged
        values, which waits for the device to finish the step."""
        n_pseudo = acc = n_classes = None
        if out.pseudo_keep is not None:
            keep = out.pseudo_keep
            n_pseudo = int(keep.sum())
            n_classes = int(out.pseudo_labels[keep].unique().numel())
            if yt_hidden is not None and n_pseudo > 0:
                acc = float((out.pseudo_labels[keep] == yt_hidden[keep]).float().mean())
        names = list(out.terms)
        # one host transfer for the loss and every term
        values = torch.stack([loss.detach().reshape(()).to(torch.float64)]
                             + [out.terms[k].detach().reshape(()).to(torch.float64)
                                for k in names]).tolist()
        seconds = time.perf_counter() - start
        return StepLog(
            step=step, epoch=epoch, loss=values[0],
            terms=dict(zip(names, values[1:], strict=True)),
            weights=dict(out.weights), gamma=out.gamma, r=out.r, gamma_names=out.gamma_names,
            n_pseudo=n_pseudo, pseudo_accuracy=acc, seconds=seconds, n_pseudo_classes=n_classes,
            extras={k: float(v) for k, v in out.extras.items()},
        )


#: ``TrainConfig.precision`` -> the dtype the network's forward pass is autocast to (None: fp32)
AUTOCAST = {"fp32": None, "bf16": torch.bfloat16}


def _data_parallel(method: Method, device: torch.device) -> torch.nn.Module:
    """``method`` wrapped for data-parallel training (see :mod:`boomda.distributed`)."""
    from torch.nn.parallel import DistributedDataParallel

    distributed.check_supported(method, method.options, method.config.select_epoch)
    ids = [device.index] if device.type == "cuda" else None
    # buffers (standardisation statistics, discriminators' batch-norm statistics) are computed
    # from the same global data on every rank: no need to broadcast them at every forward
    return DistributedDataParallel(method, device_ids=ids, forward_sync_buffers=False)


def make_optimizer(params: list[torch.nn.Parameter], config: TrainConfig
                   ) -> torch.optim.Optimizer:
    """``config.optimizer`` over ``params``: Adam (the paper's), AdamW, or SGD with momentum
    ``betas[0]``; learning rate ``lr`` and weight decay ``weight_decay``."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.betas[0],
                               weight_decay=config.weight_decay, foreach=True)
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(params, lr=config.lr, betas=(config.betas[0], config.betas[1]),
                weight_decay=config.weight_decay, foreach=True)


def lr_factor(schedule: str, progress: float) -> float:
    """The learning rate's factor at training progress ``progress`` in [0, 1]."""
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "inverse":
        return (1.0 + 10.0 * progress) ** -0.75
    return 1.0


def make_schedule(optimizer: torch.optim.Optimizer, schedule: str, total: int
                  ) -> torch.optim.lr_scheduler.LambdaLR | None:
    """A per-step schedule over ``total`` steps (None for ``constant``)."""
    if schedule == "constant":
        return None
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(schedule, step / max(1, total - 1)))


def _plain_number(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def stored_state(method: Method) -> dict[str, torch.Tensor]:
    """The state-dict entries a checkpoint holds: all but the frozen weights of backbones (they
    are reloaded from the backbone's folder)."""
    frozen = {id(t) for e in method.net.encoders.values() if isinstance(e, BackboneEncoder)
              for t in e.frozen_tensors()}
    return {k: v for k, v in method.state_dict(keep_vars=True).items() if id(v) not in frozen}
