"""Prediction from input that lacks a modality, for some samples or for all.

A modality is *absent* for a sample when

- the input has no array for it (absent for every sample);
- its row is all NaN (a feature-vector modality);
- a per-modality mask (``mask={"pix": present}``, True where present) says so.

Absent entries are filled with a placeholder (zeros; one zero step for a sequence modality) so
that the network can run on the whole batch; what the placeholder gives is never used. A complete
sample gets exactly the prediction of the complete-input path (the fused head); a sample that
lacks a modality gets the prediction of a *strategy*:

- ``heads``: the unweighted mean of the softmax probabilities of the per-modality heads of the
  modalities present (the late-fusion average of per-modality classifiers, e.g. Kittler et al.,
  "On combining classifiers", IEEE TPAMI 1998); the fused head is not used for such a sample,
  since its input Z_{M+1} would hold the placeholder's representation. A model trained without
  modality dropout predicts this way.
- ``fused``: the fused head on Z_{M+1} with the representation of every absent modality set to
  zeros, the input a fused head trained with modality dropout (``modality_dropout: p``, ModDrop,
  Neverova et al., IEEE TPAMI 2016) saw in training (:meth:`MultimodalNet.fuse`).
- ``auto``: ``fused`` for a model trained with modality dropout, ``heads`` otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from boomda.data.container import MultimodalData
from boomda.errors import ConfigError, DataError
from boomda.evaluate import _batched_outputs

#: the strategies for a sample that lacks a modality (``auto`` picks one, see the module's doc)
STRATEGIES = ("auto", "heads", "fused")


@dataclass
class PartialInput:
    """Input with absent modalities: ``data`` holds every modality of the model, absent entries
    filled with a placeholder; ``present`` (N, M) is True where modality ``modalities[j]`` of
    sample i is real."""

    data: MultimodalData
    present: np.ndarray
    modalities: list[str]

    @property
    def complete(self) -> np.ndarray:
        """(N,) True for the samples that have every modality."""
        return np.asarray(self.present.all(axis=1))

    def absent_counts(self) -> dict[str, int]:
        """Modality -> number of samples that lack it (only modalities absent somewhere)."""
        counts = (~self.present).sum(axis=0)
        return {m: int(c) for m, c in zip(self.modalities, counts, strict=True) if c}

    def absent_names(self, i: int) -> list[str]:
        """The modalities sample ``i`` lacks."""
        return [m for m, ok in zip(self.modalities, self.present[i], strict=True) if not ok]

    def describe(self) -> str:
        """One line naming what is absent, e.g. ``pix absent in all 200 samples; fou absent in
        12 of 200`` (``no modality absent`` when nothing is)."""
        n = len(self.data)
        parts = [f"{m} absent in all {n} samples" if c == n else f"{m} absent in {c} of {n}"
                 for m, c in self.absent_counts().items()]
        return "; ".join(parts) or "no modality absent"


def partial_input(
    inputs: MultimodalData | Mapping[str, np.ndarray],
    modalities: list[str],
    dims: Mapping[str, int],
    sequences: Mapping[str, bool],
    mask: Mapping[str, np.ndarray] | None = None,
    name: str = "inputs",
    labels: np.ndarray | None = None,
) -> PartialInput:
    """The model's ``modalities`` of ``inputs`` with what is absent found and filled.

    ``dims`` / ``sequences``: each modality's feature count and whether the model expects packed
    sequences (for the placeholder of a modality given by no array). ``mask``: modality ->
    (N,) bool, True where present. Raises :class:`DataError` for a mask naming an unknown
    modality, a mask of the wrong length, a row partly NaN, or a sample with no modality.
    ``labels``: the samples' labels (default: those of ``inputs``, a MultimodalData)."""
    if labels is None and isinstance(inputs, MultimodalData):
        labels = inputs.labels
    views = inputs.views if isinstance(inputs, MultimodalData) else inputs
    if not isinstance(views, Mapping) or not views:
        raise DataError(f"{name}: expected a non-empty dict of modality name -> array")
    if not any(m in views for m in modalities):
        raise DataError(f"{name}: none of the model's modalities {modalities} is given (found "
                        f"{', '.join(map(str, views))}); at least one must be present")
    missing = [m for m in modalities if m not in views]
    unknown = [str(k) for k in views if k not in modalities]
    if missing and unknown:  # a misspelt name must not pass for an absent modality
        raise DataError(f"{name}: unknown modality {unknown[0]!r} (and no {missing[0]!r}); the "
                        f"model's modalities are {', '.join(modalities)}")
    given = {m: _as_float_array(views[m], f"{name}[{m!r}]") for m in modalities if m in views}
    n = next(iter(given.values())).shape[0]
    present = np.ones((n, len(modalities)), dtype=bool)
    for j, m in enumerate(modalities):
        if m not in given:
            present[:, j] = False
        elif given[m].ndim == 2 and given[m].shape[0] == n:
            present[:, j] = ~_nan_rows(given[m], f"{name}[{m!r}]")
    if mask is not None:
        present &= _mask_matrix(mask, modalities, n, set(given), name)
    empty = np.flatnonzero(~present.any(axis=1))
    if empty.size:
        raise DataError(f"{name}: sample {int(empty[0])} has no modality present "
                        f"({empty.size} such sample(s)); at least one of "
                        f"{', '.join(modalities)} is needed")
    filled = {}
    for j, m in enumerate(modalities):
        if m not in given:
            filled[m] = _placeholder(n, dims[m], sequences[m])
        else:
            x = given[m]
            if x.ndim == 2 and x.shape[0] == n and not present[:, j].all():
                x = np.where(present[:, j, None], x, np.float32(0.0))
            filled[m] = x
    return PartialInput(MultimodalData(filled, labels, name=name), present, list(modalities))


def _as_float_array(value, where: str) -> np.ndarray:
    half = getattr(value, "dtype", None) == np.float16 and np.ndim(value) == 3
    try:
        arr = np.asarray(value, dtype=np.float16 if half else np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: not a numeric array ({exc})") from None
    return arr[:, None] if arr.ndim == 1 else arr


def _nan_rows(x: np.ndarray, where: str) -> np.ndarray:
    """(N,) True for the rows of ``x`` that are all NaN; DataError for a row partly NaN."""
    nan = np.isnan(x)
    whole = nan.all(axis=1) if x.shape[1] else np.zeros(len(x), dtype=bool)
    partly = nan.any(axis=1) & ~whole
    if partly.any():
        row = int(np.flatnonzero(partly)[0])
        raise DataError(f"{where}: sample {row} has NaN in some features but not all (an absent "
                        f"modality is a row of NaN, or marked by mask=...)")
    return whole


def _mask_matrix(mask: Mapping[str, np.ndarray], modalities: list[str], n: int,
                 given: set[str], name: str) -> np.ndarray:
    """The (N, M) presence a per-modality mask gives (True for a modality it omits)."""
    if not isinstance(mask, Mapping):
        raise DataError(f"mask: expected a dict of modality name -> (N,) bool array, got "
                        f"{type(mask).__name__}")
    unknown = [m for m in mask if m not in modalities]
    if unknown:
        raise DataError(f"mask: unknown modality {unknown[0]!r}; the model's modalities are "
                        f"{', '.join(modalities)}")
    out = np.ones((n, len(modalities)), dtype=bool)
    for j, m in enumerate(modalities):
        if m not in mask:
            continue
        values = np.asarray(mask[m])
        if values.shape != (n,) or values.dtype.kind not in "bui":
            raise DataError(f"mask[{m!r}]: expected {n} booleans (True where present), got "
                            f"{values.dtype} values of shape {values.shape}")
        if values.dtype.kind != "b" and not np.isin(values, (0, 1)).all():
            raise DataError(f"mask[{m!r}]: expected booleans or 0/1, got other values")
        out[:, j] = values.astype(bool)
        if m not in given and out[:, j].any():
            raise DataError(f"mask[{m!r}]: marks {int(out[:, j].sum())} sample(s) present, but "
                            f"{name} has no {m!r} array")
    return out


def _placeholder(n: int, dim: int, sequence: bool) -> np.ndarray:
    """Zeros of a modality's shape: (N, D), or one real step of zeros per sample (N, 1, 1 + D)."""
    if not sequence:
        return np.zeros((n, dim), dtype=np.float32)
    out = np.zeros((n, 1, 1 + dim), dtype=np.float32)
    out[:, :, 0] = 1.0
    return out


def resolve_strategy(strategy: str, modality_dropout: float) -> str:
    """``heads`` or ``fused`` for ``strategy`` (``auto``: ``fused`` when the model was trained
    with modality dropout); ConfigError for an unknown name."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r} for absent modalities; choose from "
                          f"{', '.join(STRATEGIES)}")
    if strategy == "auto":
        return "fused" if modality_dropout > 0 else "heads"
    return strategy


@dataclass
class PartialPrediction:
    """``proba`` (N, C): class probabilities; ``pred`` (N,): predicted classes. A complete
    sample's are the fused head's (softmax and argmax of its logits, as for complete input);
    a sample that lacks a modality gets the strategy's."""

    proba: np.ndarray
    pred: np.ndarray


@torch.no_grad()
def predict_partial(net, part: PartialInput, strategy: str, device: torch.device,
                    batch_size: int | None = None) -> PartialPrediction:
    """Predictions for ``part`` with ``strategy`` (``heads`` or ``fused``, see the module's doc)
    for the samples that lack a modality."""
    if strategy not in ("heads", "fused"):
        raise ConfigError(f"strategy must be heads or fused here, got {strategy!r}")
    fused_logits, partial_proba = [], []
    start = 0
    for out in _batched_outputs(net, part.data, device, batch_size):
        rows = len(out.fused)
        keep = torch.from_numpy(part.present[start:start + rows]).to(out.fused.device)
        start += rows
        fused_logits.append(out.fused_logits.float().cpu())
        if strategy == "fused":
            partial = torch.softmax(net.fused_head(net.fuse(out.reps, keep)).float(), dim=1)
        else:
            heads = torch.stack([torch.softmax(out.logits[j].float(), dim=1)
                                 for j in range(len(part.modalities))], dim=1)  # (B, M, C)
            weights = keep.to(heads.dtype)[:, :, None]
            partial = (heads * weights).sum(dim=1) / weights.sum(dim=1)
        partial_proba.append(partial.cpu())
    if not fused_logits:
        empty = np.zeros((0, net.n_classes), dtype=np.float32)
        return PartialPrediction(empty, np.zeros(0, dtype=np.int64))
    logits = torch.cat(fused_logits)
    # complete samples: exactly the complete-input path (softmax / argmax of the fused logits)
    proba = torch.softmax(logits, dim=1).numpy()
    pred = logits.numpy().argmax(axis=1)
    lacking = ~part.complete
    if lacking.any():
        strategy_proba = torch.cat(partial_proba).numpy()
        proba[lacking] = strategy_proba[lacking]
        pred[lacking] = strategy_proba[lacking].argmax(axis=1)
    return PartialPrediction(proba, pred)
