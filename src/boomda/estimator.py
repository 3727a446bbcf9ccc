"""Estimator-style entry point: build, ``fit``, ``evaluate``, ``predict``, ``save``/``load``."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from boomda.atomic import atomic_write
from boomda.config import TrainConfig, assign
from boomda.data.container import MultimodalData
from boomda.data.pair import DomainPair, onto_classes
from boomda.errors import BoomdaError, ConfigError, DataError
from boomda.evaluate import evaluate, predict_logits, prediction_scores
from boomda.methods import METHODS, build_method, check_config
from boomda.nn.backbone_encoder import BackboneEncoder, build_backbone_encoder
from boomda.nn.encoders import ModuleEncoder, check_module_encoder
from boomda.nn.net import MultimodalNet
from boomda.partial import PartialInput, partial_input, predict_partial, resolve_strategy
from boomda.runtime import resolve_device, seed_everything
from boomda.train import StepLog, Trainer, stored_state

if TYPE_CHECKING:
    from boomda.methods.base import Method
    from boomda.sweep import Selection

CHECKPOINT_FORMAT = 1


class DomainAdapter:
    """Train a multimodal classifier on a labelled source and an unlabelled, shifted target.

    >>> adapter = DomainAdapter(method="boomda", epochs=30, seed=0)
    >>> adapter.fit(pair)                       # a DomainPair
    >>> adapter.evaluate(pair.target)           # {'weighted_f1': ..., 'accuracy': ...}
    >>> adapter.save("model.pt"); DomainAdapter.load("model.pt").predict(views)

    The estimator follows scikit-learn's conventions: the constructor stores its arguments as
    given and :meth:`fit` checks them (so the constructor raises nothing);
    :meth:`get_params` / :meth:`set_params`, so that ``sklearn.base.clone`` works.

    Args:
        config: the training settings to start from (default: ``TrainConfig()``); the
            keyword ``options`` override its fields and add to its ``options``.
        select: the name of a validator of :data:`boomda.select.VALIDATORS` (``im``
            recommended). :meth:`fit` then trains every point of ``sweep``, scores each
            without reading the target's labels and keeps the model of the best point;
            :attr:`selection` holds the table and the choice (:class:`boomda.sweep.Selection`;
            ties: :data:`boomda.sweep.TIE_RULE`). None: one training run.
        sweep: option -> non-empty list of values, every combination one point (the last
            option varying fastest; :func:`boomda.sweep.sweep_points`). None: the method's
            preset (:attr:`boomda.methods.base.Method.preset`, its default first). Needs
            ``select``.
        **options: :class:`~boomda.config.TrainConfig` fields (``method``, ``epochs``,
            ``lr``, ...) or options of the method, added to ``TrainConfig.options`` (Boomda's
            ``alpha2``, ``gamma_solver``, ...; ``trade_off`` for the adversarial baselines;
            see docs/method.md and docs/baselines.md).

    Attributes:
        net: the trained network (:class:`~boomda.nn.net.MultimodalNet`); None before
            :meth:`fit` or :meth:`load`.
        method: the trained method (:class:`~boomda.methods.base.Method`), holding ``net``.
        history: the per-step logs (:class:`~boomda.train.StepLog`) of the training run of
            the model (empty after :meth:`load`).
        selected_epoch: the epoch whose model was kept when ``select_epoch`` chose one
            (None: the last epoch's).
        metadata: JSON-able facts saved with the model (class names, how raw inputs are
            prepared).
        selection: the points tried and the one chosen, after a fit with ``select``; else
            None.
    """

    def __init__(self, config: TrainConfig | None = None, select: str | None = None,
                 sweep: Mapping[str, Sequence] | None = None, **options) -> None:
        self._config_param = config
        self.select = select
        self.sweep = sweep
        self._options = options
        self._fitted_config: TrainConfig | None = None
        self._device: torch.device | None = None
        self.net: MultimodalNet | None = None
        self.method: Method | None = None
        self.history: list[StepLog] = []
        self.selected_epoch: int | None = None
        #: JSON-able facts saved with the model (class names, how raw inputs are prepared)
        self.metadata: dict = {}
        #: the points tried and the one chosen, after a fit with ``select``
        self.selection: Selection | None = None
        #: the settings and method options already checked (:meth:`from_checked`), or None
        self._checked: tuple[TrainConfig, object] | None = None

    @classmethod
    def from_checked(cls, config: TrainConfig, options: object) -> DomainAdapter:
        """An adapter for training settings that were already checked, not checked again.

        A run checks its config once (:func:`boomda.resolve.resolve`) and builds its adapter
        with this.

        Args:
            config: the checked training settings.
            options: the method's parsed options, as :func:`boomda.methods.check_config`
                returns them for ``config``.

        Returns:
            A new, untrained adapter.
        """
        adapter = cls(config)
        adapter._checked = (config, options)
        return adapter

    # ------------------------------------------------------------------ parameters
    def get_params(self, deep: bool = True) -> dict:
        """The constructor's arguments, as given (scikit-learn's estimator API).

        Args:
            deep: scikit-learn's flag for nested estimators; it changes nothing here, since no
                parameter is an estimator.

        Returns:
            ``config``, ``select``, ``sweep`` and every keyword option, by name.
        """
        return {"config": self._config_param, "select": self.select, "sweep": self.sweep,
                **self._options}

    def set_params(self, **params) -> DomainAdapter:
        """Set constructor arguments, checked by the next :meth:`fit`.

        Args:
            **params: ``config``, ``select``, ``sweep`` or keyword options, as the constructor
                takes them; an option set before keeps its value unless given again.

        Returns:
            ``self``.
        """
        self._checked = None
        for key, value in params.items():
            if key == "config":
                self._config_param = value
            elif key in ("select", "sweep"):
                setattr(self, key, value)
            else:
                self._options[key] = value
        return self

    @property
    def config(self) -> TrainConfig:
        """The training settings (:class:`~boomda.config.TrainConfig`).

        The trained model's after :meth:`fit` or :meth:`load`, else those the constructor's
        arguments give, checked (a one-line :class:`~boomda.errors.ConfigError` for a bad
        one).
        """
        if self._fitted_config is not None:
            return self._fitted_config
        return self._resolve_config()

    @property
    def device(self) -> torch.device:
        """The device the model runs on (``torch.device``), resolved from ``config.device``."""
        if self._device is None:
            return resolve_device(self.config.device)
        return self._device

    def _resolve_config(self) -> TrainConfig:
        if self._checked is not None:
            return self._checked[0]
        given = self._config_param
        if given is not None and not isinstance(given, TrainConfig):
            raise ConfigError(f"config: expected a TrainConfig, got {type(given).__name__}")
        config = dataclasses.replace(given or TrainConfig())
        options = dict(self._options)
        own = {f.name for f in dataclasses.fields(TrainConfig)}
        method_options = {k: options.pop(k) for k in list(options) if k not in own}
        assign(config, options, "")
        _check_option_names(method_options, config.method)
        config.options = {**config.options, **method_options}
        check_config(config)
        return config

    # ------------------------------------------------------------------ training
    def fit(
        self,
        pair: DomainPair,
        *,
        encoders: Mapping[str, nn.Module] | Callable[[int, float], Mapping[str, nn.Module]]
        | None = None,
        progress: bool = False,
        on_step: Callable[[StepLog], None] | None = None,
        checkpoint: Callable[[dict], None] | None = None,
        checkpoint_every: int = 0,
        resume: dict | None = None,
    ) -> DomainAdapter:
        """Train on ``pair``: the source's labels and the target's inputs, never its labels.

        With ``select`` (or ``sweep``) given to the constructor, every point of the sweep is
        trained, scored by every validator of :mod:`boomda.select`, and the model of the point
        that ``select`` scores best is kept (:attr:`selection`).

        Args:
            pair: the labelled source, the unlabelled target (its labels, if any, serve
                scoring only) and optionally a held-out source part; at least 2 modalities.
            encoders: the encoder of some modalities (modality -> module), or a function
                ``(d, dropout) -> encoders`` called after seeding (as ``RawPair.encoders``);
                the other modalities get an MLP. A sequence modality (packed frozen states)
                needs a :class:`~boomda.nn.backbone_encoder.BackboneEncoder`; a
                feature-vector modality takes any ``nn.Module`` mapping (B, D_m) to (B, d)
                (d: the config's ``dim``), which receives the standardised features
                (:class:`~boomda.nn.encoders.ModuleEncoder`) and is checked first on 2 source
                rows. Loading the saved model needs it again (:meth:`load`).
            progress: show a progress bar.
            on_step: called with each step's :class:`~boomda.train.StepLog`.
            checkpoint: called with the whole training state at the end of every
                ``checkpoint_every``-th epoch and at the end of training
                (:meth:`boomda.train.Trainer.fit`); not with ``select``.
            checkpoint_every: epochs between two calls of ``checkpoint``; 0: only at the end
                of training.
            resume: a training state saved by ``checkpoint`` on the same pair with the same
                config, continued as if training had never stopped; not with ``select``.

        Returns:
            ``self``, trained.

        Raises:
            ConfigError: a bad training setting or method option, ``sweep`` without
                ``select``, a validator that does not apply to ``pair``, or
                ``checkpoint``/``resume`` with ``select``.
            DataError: ``pair`` is not a :class:`~boomda.data.pair.DomainPair`, has fewer
                than 2 modalities, or an encoder does not fit its modality.
            TrainingError: the loss or the trained model's outputs became non-finite.
        """
        cfg = self._resolve_config()
        if not isinstance(pair, DomainPair):
            raise DataError("fit expects a DomainPair (see DomainPair.from_arrays)")
        if len(pair.modalities) < 2:
            raise DataError(f"a multimodal model needs at least 2 modalities, got "
                            f"{pair.modalities}")
        if self._checked is None:
            check_config(cfg, n_modalities=len(pair.modalities))
        else:
            check = getattr(self._checked[1], "check_modalities", None)
            if check is not None:
                check(len(pair.modalities))
        if self.select is not None or self.sweep is not None:
            if checkpoint is not None or resume is not None:
                raise ConfigError("checkpoint/resume: apply to one training run, not to a "
                                  "tuned fit (select=...)")
            return self._fit_selected(cfg, pair, encoders, progress, on_step)
        self._fitted_config, self._device = cfg, resolve_device(cfg.device)
        self.selection = None
        seed_everything(cfg.seed)
        encoders = dict((encoders(cfg.dim, cfg.dropout) if callable(encoders) else encoders)
                        or {})
        for m in pair.modalities:
            if pair.source.is_sequence(m) and m not in encoders:
                raise DataError(f"modality {m!r} holds sequences; pass its encoder (encoders=...)")
            if pair.source.is_sequence(m) and not all(
                    hasattr(encoders[m], a) for a in ("n_features", "out_dim",
                                                      "fit_standardization", "augment")):
                raise DataError(f"encoders[{m!r}]: modality {m!r} holds packed sequences; its "
                                f"encoder must be a sequence encoder such as BackboneEncoder "
                                f"(n_features, out_dim, fit_standardization, augment), got a "
                                f"{type(encoders[m]).__name__}")
            if m in encoders and not pair.source.is_sequence(m):
                if isinstance(encoders[m], BackboneEncoder):
                    raise DataError(f"modality {m!r} holds feature vectors, but a sequence "
                                    f"encoder was given for it")
                encoders[m] = _module_encoder(m, encoders[m], pair.source.dims[m], cfg.dim,
                                              self.device,
                                              torch.from_numpy(pair.source.views[m][:2]))
        self.net = MultimodalNet(pair.source.dims, pair.n_classes, cfg.dim, cfg.hidden,
                                 cfg.dropout, encoders=encoders,
                                 modality_dropout=cfg.modality_dropout)
        self.method = build_method(cfg.method, self.net, cfg)
        self.metadata["classes"] = list(pair.classes or ())
        trainer = Trainer(self.method, cfg, self.device)
        self.history = trainer.fit(pair, on_step=on_step, progress=progress,
                                   checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                                   resume=resume)
        #: the epoch whose model was kept when ``select_epoch`` chose one (None: the last)
        self.selected_epoch = trainer.best_epoch.get("epoch")
        # finite parameters can still give non-finite outputs (a diverged model's activations
        # overflow): such a model is an error, not a result
        predict_logits(self.net, pair.source.subset(np.arange(min(256, len(pair.source)))),
                       self.device)
        return self

    def _fit_selected(self, cfg: TrainConfig, pair: DomainPair, encoders, progress: bool,
                      on_step) -> DomainAdapter:
        """Train every point of the sweep, score each with every validator and keep the model
        of the point ``select`` chooses (see :mod:`boomda.sweep`)."""
        from boomda.select import score_model
        from boomda.sweep import (
            apply_point,
            check_points,
            check_validator,
            make_selection,
            preset_points,
            sweep_points,
        )

        if self.select is None:
            raise ConfigError("sweep: needs select=VALIDATOR, the validator that chooses among "
                              "its points (recommended: im)")
        holdout = pair.source_holdout
        check_validator(self.select, holdout is not None and len(holdout) >= 2)
        points = (preset_points(cfg.method) if self.sweep is None
                  else sweep_points(cfg.method, self.sweep))
        labels = check_points(cfg, points, len(pair.modalities))
        scores, target, best, best_score = [], [], None, None
        for point in points:
            given = encoders if encoders is None or callable(encoders) else copy.deepcopy(
                dict(encoders))  # every point starts from the modules as given
            one = DomainAdapter(apply_point(cfg, point)).fit(pair, encoders=given,
                                                             progress=progress, on_step=on_step)
            scores.append(score_model(one, pair))
            # the target's labels, when it has them, serve this report only
            target.append(one.evaluate(pair.target, "target")
                          if pair.target.labels is not None else None)
            value = scores[-1][self.select]
            if math.isfinite(value) and (best_score is None or value > best_score):
                best, best_score = one, value
        self.selection = make_selection(self.select, points, labels, scores, target)
        assert best is not None  # make_selection raised otherwise
        self.net, self.method, self.history = best.net, best.method, best.history
        self.metadata = best.metadata
        self._fitted_config, self._device = best.config, best.device
        return self

    def score(self, pair: DomainPair, validator: str = "im") -> float:
        """The label-free score of the trained model on ``pair`` by one validator.

        Computed by :func:`boomda.select.score_model`, which never reads the target's labels.

        Args:
            pair: the domain pair to score on (``source_risk`` and ``dev`` need its held-out
                source part).
            validator: a name in :data:`boomda.select.VALIDATORS`.

        Returns:
            The score, higher is better; ``nan`` for ``source_risk`` or ``dev`` when
            ``pair`` holds fewer than 2 held-out source samples.

        Raises:
            ConfigError: an unknown validator.
            BoomdaError: the model is not trained yet.
            DataError: ``pair`` is not a :class:`~boomda.data.pair.DomainPair`.
        """
        from boomda.select import VALIDATORS, score_model

        if validator not in VALIDATORS:
            raise ConfigError(f"validator {validator!r}: choose from {', '.join(VALIDATORS)}")
        self._require_fitted()
        if not isinstance(pair, DomainPair):
            raise DataError("score expects a DomainPair (see DomainPair.from_arrays)")
        return score_model(self, pair)[validator]

    # ---------------------------------------------------------------- inference
    @property
    def classes(self) -> np.ndarray:
        """The class names, a string array (C,), in the order of the class indices.

        :meth:`predict` returns indices into it and the columns of :meth:`predict_proba`
        follow it: ``adapter.classes[adapter.predict(x)]`` gives names (see
        :mod:`boomda.data.labels` for their order; ``"0"`` .. ``"C-1"`` for unnamed classes).
        Raises :class:`~boomda.errors.BoomdaError` before :meth:`fit` or :meth:`load`.
        """
        net = self._require_fitted()
        names = self.metadata.get("classes") or [str(c) for c in range(net.n_classes)]
        return np.asarray(names, dtype=str)

    def _require_fitted(self) -> MultimodalNet:
        if self.net is None:
            raise BoomdaError("the model is not trained yet: call fit() or load() first")
        return self.net

    def _as_data(self, inputs: MultimodalData | Mapping[str, np.ndarray]) -> MultimodalData:
        net = self._require_fitted()
        data = inputs if isinstance(inputs, MultimodalData) else MultimodalData(inputs,
                                                                                name="inputs")
        missing = [m for m in net.modalities if m not in data.views]
        if missing:
            raise DataError(f"inputs: missing modality {missing[0]!r}; the model expects "
                            f"{net.modalities}")
        data = data.select(net.modalities)
        for m, want in net.dims.items():
            if data.dims[m] != want:
                raise DataError(f"inputs[{m!r}]: {data.dims[m]} features, the model expects "
                                f"{want}")
            sequence = isinstance(net.encoders[m], BackboneEncoder)
            if data.is_sequence(m) != sequence:
                raise DataError(f"inputs[{m!r}]: the model expects "
                                f"{'packed sequences' if sequence else 'feature vectors'}")
        return data

    def partial_input(self, inputs: MultimodalData | Mapping[str, np.ndarray] | PartialInput,
                      mask: Mapping[str, np.ndarray] | None = None,
                      labels: np.ndarray | None = None) -> PartialInput:
        """``inputs`` checked against the model, with their absent modalities found and filled.

        A modality is absent from a sample when its array is missing, its row is all NaN, or
        ``mask`` says so. The prediction methods accept what this returns in place of
        ``inputs``; its ``.describe()`` names what is absent (see :mod:`boomda.partial`).

        Args:
            inputs: a :class:`~boomda.data.container.MultimodalData`, a mapping of modality
                -> array ((N, D_m) features or packed sequences), or a ``PartialInput``
                (returned as is).
            mask: modality -> (N,) bool, True where the modality is present.
            labels: the samples' labels (N,) (default: those of ``inputs``, a
                MultimodalData, mapped onto the model's classes by name).

        Returns:
            The checked :class:`~boomda.partial.PartialInput` of N samples.

        Raises:
            BoomdaError: the model is not trained yet.
            DataError: a modality of the wrong width or kind, a bad mask, a row partly NaN, a
                sample with no modality, or ``mask``/``labels`` given with a PartialInput.
        """
        if isinstance(inputs, PartialInput):
            if mask is not None or labels is not None:
                raise DataError("mask/labels: the input is already a PartialInput")
            return inputs
        net = self._require_fitted()
        if isinstance(inputs, MultimodalData):  # labels given as names: onto the model's classes
            inputs = onto_classes(inputs, list(self.classes), "inputs")
        sequences = {m: isinstance(net.encoders[m], BackboneEncoder) for m in net.modalities}
        part = partial_input(inputs, net.modalities, net.dims, sequences, mask, labels=labels)
        part.data = self._as_data(part.data)
        return part

    def _predict_partial(self, part: PartialInput, strategy: str):
        return predict_partial(self.net, part,
                               resolve_strategy(strategy, self.config.modality_dropout),
                               self.device)

    def predict_proba(self, inputs: MultimodalData | Mapping[str, np.ndarray] | PartialInput,
                      mask: Mapping[str, np.ndarray] | None = None,
                      strategy: str = "auto") -> np.ndarray:
        """Class probabilities of every sample of ``inputs``.

        A complete sample gets the fused head's; a sample that lacks a modality (see
        :meth:`partial_input`) gets ``strategy``'s (see :mod:`boomda.partial`).

        Args:
            inputs: N samples, as :meth:`partial_input` takes them.
            mask: modality -> (N,) bool, True where the modality is present.
            strategy: for samples that lack a modality: ``heads`` (the mean of the
                probabilities of the present modalities' heads), ``fused`` (the fused head
                with the absent representations zeroed) or ``auto`` (``fused`` for a model
                trained with ``modality_dropout``, else ``heads``).

        Returns:
            The probabilities (N, C), columns in the order of :attr:`classes`.

        Raises:
            ConfigError: an unknown ``strategy``.
            BoomdaError: the model is not trained yet.
            DataError: inputs that do not fit the model (see :meth:`partial_input`).
            TrainingError: the model's outputs are not finite.
        """
        resolve_strategy(strategy, self.config.modality_dropout)
        part = self.partial_input(inputs, mask)
        if part.complete.all():
            logits = predict_logits(self.net, part.data, self.device)
            return torch.softmax(torch.from_numpy(logits), dim=1).numpy()
        return self._predict_partial(part, strategy).proba

    def predict(self, inputs: MultimodalData | Mapping[str, np.ndarray] | PartialInput,
                mask: Mapping[str, np.ndarray] | None = None,
                strategy: str = "auto") -> np.ndarray:
        """Predicted class indices of every sample of ``inputs``.

        The fused head's for a complete sample, ``strategy``'s for one that lacks a modality
        (see :meth:`predict_proba`).

        Args:
            inputs: N samples, as :meth:`partial_input` takes them.
            mask: modality -> (N,) bool, True where the modality is present.
            strategy: ``heads``, ``fused`` or ``auto``, for samples that lack a modality (see
                :meth:`predict_proba`).

        Returns:
            The class indices (N,) into :attr:`classes`.

        Raises:
            ConfigError: an unknown ``strategy``.
            BoomdaError: the model is not trained yet.
            DataError: inputs that do not fit the model (see :meth:`partial_input`).
            TrainingError: the model's outputs are not finite.
        """
        resolve_strategy(strategy, self.config.modality_dropout)
        part = self.partial_input(inputs, mask)
        if part.complete.all():
            return predict_logits(self.net, part.data, self.device).argmax(axis=1)
        return self._predict_partial(part, strategy).pred

    def evaluate(self, data: MultimodalData | PartialInput, name: str = "data",
                 mask: Mapping[str, np.ndarray] | None = None, strategy: str = "auto") -> dict:
        """Weighted F1 and accuracy on labelled ``data``, predicted as :meth:`predict` does.

        Args:
            data: N labelled samples; they may lack modalities.
            name: how errors name ``data``.
            mask: modality -> (N,) bool, True where the modality is present.
            strategy: ``heads``, ``fused`` or ``auto``, for samples that lack a modality (see
                :meth:`predict_proba`).

        Returns:
            ``weighted_f1`` and ``accuracy`` (both x100), ``max_class_share`` (the share of
            the most frequent predicted class, near 1 for a model collapsed to one class) and
            ``n`` (the number of samples).

        Raises:
            ConfigError: an unknown ``strategy``.
            BoomdaError: the model is not trained yet.
            DataError: ``data`` has no labels, a label outside the model's classes, or does
                not fit the model (see :meth:`partial_input`).
            TrainingError: the model's outputs are not finite.
        """
        resolve_strategy(strategy, self.config.modality_dropout)
        part = self.partial_input(data, mask)
        net = self._require_fitted()
        checked = part.data
        if checked.labels is None:
            raise DataError(f"{name}: labels are needed to evaluate")
        checked.check_labels(net.n_classes, f"{name}.labels")
        if part.complete.all():
            return evaluate(net, checked, self.device, name)
        pred = self._predict_partial(part, strategy).pred
        return prediction_scores(checked.labels, pred, net.n_classes)

    # -------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write the model (architecture, config, state dict, metadata) atomically to ``path``.

        A backbone encoder is saved as how to rebuild it (its frozen weights are not stored);
        a module of the user's own is saved as its class (``module.qualname``) and its
        parameters.

        Args:
            path: the file to write (``model.pt``), replaced if it exists.

        Returns:
            ``path``, as a :class:`~pathlib.Path`.

        Raises:
            BoomdaError: the model is not trained yet.
        """
        net = self._require_fitted()
        assert self.method is not None, "fit() and load() set the method with the network"
        path = Path(path)
        state = {k: v.detach().cpu() for k, v in stored_state(self.method).items()}
        specs = {m: e.spec() for m, e in net.encoders.items() if isinstance(e, BackboneEncoder)}
        modules = {m: e.describe() for m, e in net.encoders.items()
                   if isinstance(e, ModuleEncoder)}
        payload = {
            "format": CHECKPOINT_FORMAT,
            "modalities": list(net.modalities),
            "dims": net.dims,
            "n_classes": int(net.n_classes),
            "config": _plain(dataclasses.asdict(self.config)),
            # backbone encoders: how to rebuild them (their frozen weights are not stored)
            "encoders": json.dumps(specs),
            # users' own encoders: their class (their parameters are in the state dict)
            "module_encoders": json.dumps(modules),
            "metadata": json.dumps(self.metadata),
            "state_dict": state,
        }
        atomic_write(path, lambda tmp: torch.save(payload, tmp))
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "auto",
             encoders: Mapping[str, nn.Module] | None = None) -> DomainAdapter:
        """Load a model written by :meth:`save` (read with ``weights_only=True``).

        A model with backbone encoders reloads each backbone from the local folder it was
        trained with and checks that its frozen part is unchanged.

        Args:
            path: the file :meth:`save` wrote.
            device: where the model runs: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
            encoders: for a model trained with a module of its own for a feature-vector
                modality, the same architecture again (modality -> a new instance); its saved
                parameters are loaded into it.

        Returns:
            The trained adapter, in evaluation mode.

        Raises:
            BoomdaError: the file is missing, unreadable, a training checkpoint rather than a
                model, of another format, or does not match the model it describes; or
                ``encoders`` lacks a module the model was trained with, or names another.
            ConfigError: a bad ``device``.
            DataError: a module of ``encoders`` does not map (B, D_m) to (B, d).

        """

        path = Path(path)
        if not path.is_file():
            raise BoomdaError(f"checkpoint not found: {path}")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same message
            raise BoomdaError(f"{path}: not a readable boomda checkpoint ({exc})") from None
        if isinstance(payload, dict) and "config" not in payload and "optimizer" in payload:
            raise BoomdaError(f"{path}: a training checkpoint (the state --resume continues "
                              f"from), not a model; give the run's model.pt")
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise BoomdaError(f"{path}: not a boomda checkpoint (format "
                              f"{payload.get('format') if isinstance(payload, dict) else '?'})")
        raw = dict(payload["config"])
        raw["betas"] = tuple(raw["betas"])
        raw["device"] = device
        adapter = cls(TrainConfig(**raw))
        cfg = adapter._resolve_config()
        adapter._fitted_config, adapter._device = cfg, resolve_device(cfg.device)
        dims = {m: payload["dims"][m] for m in payload["modalities"]}
        specs = json.loads(payload.get("encoders") or "{}")
        built: dict[str, nn.Module] = {m: build_backbone_encoder(spec)
                                       for m, spec in specs.items()}
        built.update(_given_encoders(path, json.loads(payload.get("module_encoders") or "{}"),
                                     dict(encoders or {}), dims, cfg.dim, adapter.device))
        adapter.net = MultimodalNet(dims, payload["n_classes"], cfg.dim, cfg.hidden, cfg.dropout,
                                    encoders=built, modality_dropout=cfg.modality_dropout)
        adapter.method = build_method(cfg.method, adapter.net, cfg)
        expected = set(stored_state(adapter.method))
        stored = set(payload["state_dict"])
        if stored != expected:
            odd = sorted(stored ^ expected)[0]
            raise BoomdaError(f"{path}: the checkpoint does not match the model it describes "
                              f"(entry {odd!r}{_owner(odd, built)})")
        try:
            adapter.method.load_state_dict(payload["state_dict"], strict=False)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1].strip()
            raise BoomdaError(f"{path}: the saved parameters do not fit the model ({first})"
                              ) from None
        adapter.metadata = json.loads(payload.get("metadata") or "{}")
        adapter.method.to(adapter.device).eval()
        return adapter


def _check_option_names(names: Mapping[str, object], method: str) -> None:
    """A :class:`ConfigError` for a keyword that is neither a :class:`TrainConfig` field nor an
    option of ``method``, naming the close names of either kind (``epoch``: ``epochs``)."""
    if method not in METHODS:
        return  # check_config names the unknown method
    train = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "options"]
    own = [f.name for f in dataclasses.fields(METHODS[method].Options)]
    for key in sorted(names):
        if key in own:
            continue
        close = [f"the training option {name!r}" for name in
                 difflib.get_close_matches(key, train, n=2, cutoff=0.7)]
        close += [f"{method}'s option {name!r}" for name in
                  difflib.get_close_matches(key, own, n=2, cutoff=0.7)]
        hint = (f"; did you mean {' or '.join(close)}?" if close else
                f"; nor is it a training option ({', '.join(train)})")
        raise ConfigError(f"method {method!r} has no option {key!r}; its options: "
                          f"{', '.join(own) or 'none'}{hint}")


def _module_encoder(name: str, module: object, n_features: int, dim: int,
                    device: torch.device, rows: torch.Tensor) -> ModuleEncoder:
    """``module``, checked on ``rows`` (2 samples of modality ``name``), as an encoder."""
    return ModuleEncoder(check_module_encoder(name, module, rows, dim, device), n_features, dim)


def _given_encoders(path: Path, trained: dict[str, str], given: dict[str, nn.Module],
                    dims: dict[str, int], dim: int, device: torch.device
                    ) -> dict[str, ModuleEncoder]:
    """The modules passed to :meth:`DomainAdapter.load` for the modalities ``trained`` with a
    module of their own (modality -> its class), checked on 2 rows of zeros."""
    for m, kind in trained.items():
        if m not in given:
            raise BoomdaError(f"{path}: modality {m!r} was trained with its own encoder ({kind}); "
                              f"pass a new instance of it: DomainAdapter.load(path, "
                              f"encoders={{{m!r}: ...}})")
    for m in given:
        if m not in trained:
            own = ", ".join(map(repr, trained)) or "none"
            raise BoomdaError(f"encoders[{m!r}]: the model at {path} was not trained with an "
                              f"encoder of its own for {m!r} (modalities that take one: {own})")
    return {m: _module_encoder(m, module, dims[m], dim, device, torch.zeros(2, dims[m]))
            for m, module in given.items()}


def _owner(entry: str, encoders: Mapping[str, nn.Module]) -> str:
    """``; it belongs to encoders['m']`` when a state-dict entry lies in a user's module."""
    for m, encoder in encoders.items():
        if isinstance(encoder, ModuleEncoder) and entry.startswith(f"net.encoders.{m}.module."):
            return f"; it belongs to the module given as encoders[{m!r}]"
    return ""


def _plain(value):
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
