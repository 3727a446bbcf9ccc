"""Metrics: weighted F1 (the paper's metric) and accuracy, and model evaluation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from boomda.data.container import MultimodalData, trim_padding
from boomda.errors import DataError, TrainingError
from boomda.nn.net import NetOutput


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) counts: rows are true classes, columns predicted classes."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def weighted_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Support-weighted mean of the per-class F1 scores, in [0, 1].

    A class that is never predicted (or never true) has F1 0; classes absent from ``y_true`` have
    weight 0.
    """
    cm = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    total = support.sum()
    return float((f1 * support).sum() / total) if total else 0.0


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred)) if len(y_true) else 0.0


def _batched_outputs(net, data: MultimodalData, device: torch.device,
                     batch_size: int | None) -> Iterator[NetOutput]:
    """The network's outputs for consecutive batches of ``data``, in evaluation mode (restored
    afterwards), in batches of ``batch_size`` samples (1024, or 32 when a modality is a
    sequence)."""
    if batch_size is None:
        batch_size = 32 if any(v.ndim == 3 for v in data.views.values()) else 1024
    was_training = net.training
    net.eval()
    try:
        for start in range(0, len(data), batch_size):
            inputs = {m: torch.from_numpy(trim_padding(data.views[m][start:start + batch_size]))
                      .to(device).float() for m in net.modalities}
            yield net(inputs)
    finally:
        net.train(was_training)


@torch.no_grad()
def predict_outputs(net, data: MultimodalData, device: torch.device,
                    batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fused representation Z_{M+1} (N, M*d) and fused-head logits (N, C) for every sample of
    ``data``, in evaluation mode, in batches of ``batch_size`` samples (1024, or 32 when a
    modality is a sequence)."""
    fused, logits = [], []
    for out in _batched_outputs(net, data, device, batch_size):
        fused.append(out.fused.float().cpu())
        logits.append(out.fused_logits.float().cpu())
    if not logits:
        return (np.zeros((0, net.fused_dim), dtype=np.float32),
                np.zeros((0, net.n_classes), dtype=np.float32))
    return torch.cat(fused).numpy(), torch.cat(logits).numpy()


@torch.no_grad()
def predict_logits(net, data: MultimodalData, device: torch.device,
                   batch_size: int | None = None) -> np.ndarray:
    """Fused-head logits (N, C), as :func:`predict_outputs` but without keeping Z_{M+1}."""
    chunks = [out.fused_logits.float().cpu()
              for out in _batched_outputs(net, data, device, batch_size)]
    if not chunks:
        return np.zeros((0, net.n_classes), dtype=np.float32)
    logits = torch.cat(chunks).numpy()
    check_finite_outputs(logits)
    return logits


def check_finite_outputs(outputs: np.ndarray) -> None:
    """Raise :class:`~boomda.errors.TrainingError` when a model's outputs (N, C) are not finite:
    a diverged model (or inputs far outside the scale it was trained on) predicts nothing."""
    bad = ~np.isfinite(outputs).all(axis=1)
    if bad.any():
        raise TrainingError(f"the model's outputs are not finite for {int(bad.sum())} of "
                            f"{len(outputs)} samples (first: sample {int(np.argmax(bad))}): the "
                            f"model diverged in training, or these inputs lie far outside the "
                            f"scale it was trained on")


def evaluate(net, data: MultimodalData, device: torch.device, name: str = "data") -> dict:
    """Weighted F1 and accuracy (both x100) of the fused head on labelled ``data``, and the
    share of the most frequent predicted class (near 1 when the model collapsed to one class)."""
    if data.labels is None:
        raise DataError(f"{name}: labels are needed to evaluate")
    pred = predict_logits(net, data, device).argmax(axis=1)
    return prediction_scores(data.labels, pred, net.n_classes)


def prediction_scores(labels: np.ndarray, pred: np.ndarray, n_classes: int) -> dict:
    """What :func:`evaluate` reports for predictions ``pred`` of samples labelled ``labels``."""
    counts = np.bincount(pred, minlength=n_classes)
    return {
        "weighted_f1": 100.0 * weighted_f1(labels, pred, n_classes),
        "accuracy": 100.0 * accuracy(labels, pred),
        "max_class_share": float(counts.max() / max(1, len(pred))),
        "n": len(labels),
    }


def write_predictions(path: str | Path, probs: np.ndarray, classes: Sequence[str],
                      ids: Sequence[str] | None = None,
                      absent: Sequence[Sequence[str]] | None = None) -> Path:
    """Write predictions as CSV, atomically: per sample its ``id`` (or ``index`` without
    ``ids``), the predicted class name, one probability column ``p_<class>`` per class of
    ``classes`` (6 decimals) and, given ``absent``, the modalities the sample lacks (joined by
    ``+``). Raises :class:`OSError` when the file cannot be written."""
    from boomda.atomic import atomic_write_text

    pred = probs.argmax(axis=1)
    first = "id" if ids is not None else "index"
    header = f"{first},predicted," + ",".join(f"p_{_csv_field(str(c))}" for c in classes)
    keys = ids if ids is not None else range(len(pred))
    rows = [f"{k},{_csv_field(str(classes[p]))}," + ",".join(f"{v:.6f}" for v in row)
            for k, p, row in zip(keys, pred, probs, strict=True)]
    if absent is not None:
        header += ",absent"
        rows = [f"{row},{'+'.join(names)}" for row, names in zip(rows, absent, strict=True)]
    return atomic_write_text(Path(path), "\n".join([header, *rows]) + "\n")


def _csv_field(text: str) -> str:
    """``text`` as one CSV field (quoted when it holds a comma, a quote or a line break)."""
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text
