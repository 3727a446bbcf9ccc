"""Per-modality shift diagnosis: how far the target is from the source, modality by modality,
without labels.

Three measures, each larger for a more shifted modality:

- ``domain_accuracy``: held-out accuracy of a linear domain classifier (source vs target) on the
  modality's standardised features and their squares (the squares let a linear classifier see a
  change of variance, e.g. added noise, as well as one of the mean). The two domains are
  subsampled to the same size, so 0.5 is chance (no detectable shift) and 1.0 a perfect
  separation; ``2 * (2 * accuracy - 1)`` is the proxy A-distance of Ben-David et al., "Analysis of
  representations for domain adaptation" (NIPS 2007). The classifier is the ridge least-squares
  classifier (the regularised Fisher discriminant, Hastie et al., The Elements of Statistical
  Learning, Sec. 4.3), in closed form; the accuracy is averaged over 2 folds.
- ``coral``: the CORAL distance of Sun & Saenko, "Deep CORAL" (ECCV-W 2016), the Frobenius
  distance between the target's and the source's feature covariances, after standardising both
  with the source's mean and standard deviation, relative to the source's:
  ``||C_T - C_S||_F / ||C_S||_F`` (relative so that modalities of different sizes compare).
- ``disagreement`` (once a model exists): the fraction of target samples whose prediction by the
  modality's own head differs from the fused head's; ``source_disagreement`` is the same on the
  source, for reference.

:func:`diagnose` measures the inputs (a sequence modality: its real steps averaged), and, given a
trained :class:`~boomda.estimator.DomainAdapter`, the learned representations Z_1..Z_M and the
fused Z_{M+1} (``fused``). Each run folder holds the diagnosis of its pair and model
(``diagnosis.json``), next to the balancing weights gamma in ``results.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from boomda.atomic import atomic_write, atomic_write_text
from boomda.data.container import MultimodalData, step_counts
from boomda.errors import DataError

if TYPE_CHECKING:
    from boomda.estimator import DomainAdapter

#: the measures and what they mean (larger: more shifted)
MEASURES = {
    "domain_accuracy": "held-out accuracy of a source-vs-target classifier (0.5: no shift)",
    "coral": "relative CORAL distance ||C_T - C_S||_F / ||C_S||_F (0: same covariance)",
    "disagreement": "share of target samples where the modality's head and the fused head "
                    "disagree",
}
#: the levels a diagnosis measures: the inputs, and a trained model's representations
LEVELS = ("inputs", "representations")
#: the most samples per domain a diagnosis uses (a random subset beyond)
MAX_SAMPLES = 2000


@dataclass
class ModalityShift:
    """The measures of one modality (or of ``fused``, Z_{M+1}) at one level."""

    modality: str
    domain_accuracy: float
    coral: float
    disagreement: float | None = None
    source_disagreement: float | None = None


@dataclass
class Diagnosis:
    """The shift measures per modality: of the inputs, and (given a model) of its
    representations. ``n_source`` / ``n_target``: the samples measured."""

    inputs: list[ModalityShift]
    representations: list[ModalityShift] | None = None
    n_source: int = 0
    n_target: int = 0
    seed: int = 0
    measures: dict[str, str] = field(default_factory=lambda: dict(MEASURES))

    def level(self, level: str) -> list[ModalityShift]:
        """The rows of ``level`` (``inputs`` or ``representations``)."""
        if level not in LEVELS:
            raise DataError(f"unknown level {level!r}; choose from {', '.join(LEVELS)}")
        rows = self.inputs if level == "inputs" else self.representations
        if rows is None:
            raise DataError("this diagnosis has no representation measures (no model was given)")
        return rows

    def ranking(self, measure: str, level: str = "inputs") -> list[str]:
        """The modalities (not ``fused``) of ``level``, most shifted first by ``measure``."""
        if measure not in MEASURES:
            raise DataError(f"unknown measure {measure!r}; choose from {', '.join(MEASURES)}")
        rows = [r for r in self.level(level) if r.modality != FUSED]
        if any(getattr(r, measure) is None for r in rows):
            raise DataError(f"{measure} is not measured at the level {level!r}")
        return [r.modality for r in sorted(rows, key=lambda r: -getattr(r, measure))]

    def to_dict(self) -> dict:
        """The JSON object of ``diagnosis.json``: the rows per level, keyed by modality, and the
        rankings."""
        out: dict = {"n_source": self.n_source, "n_target": self.n_target, "seed": self.seed,
                     "measures": self.measures}
        rankings: dict = {}
        for level in LEVELS:
            rows = self.inputs if level == "inputs" else self.representations
            if rows is None:
                out[level] = None
                continue
            out[level] = {r.modality: {k: v for k, v in asdict(r).items() if k != "modality"}
                          for r in rows}
            rankings[level] = {m: self.ranking(m, level) for m in MEASURES
                               if all(getattr(r, m) is not None for r in rows
                                      if r.modality != FUSED)}
        out["ranking"] = rankings
        return out

    @classmethod
    def from_dict(cls, raw: Mapping) -> Diagnosis:
        """The diagnosis a :meth:`to_dict` object (``diagnosis.json``) describes."""
        def rows(level):
            value = raw.get(level)
            if value is None:
                return None
            return [ModalityShift(m, **fields) for m, fields in value.items()]

        return cls(rows("inputs"), rows("representations"), int(raw.get("n_source", 0)),
                   int(raw.get("n_target", 0)), int(raw.get("seed", 0)))

    def write_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` to ``path`` atomically."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def table(self) -> str:
        """The measures as a plain-text table, one row per modality."""
        reps = {r.modality: r for r in self.representations or []}
        header = f"{'modality':<10} {'inputs: domain acc':>18} {'CORAL':>7}"
        if reps:
            header += f"   {'representations: domain acc':>27} {'CORAL':>7} " \
                      f"{'disagreement target/source':>27}"
        lines = [f"shift per modality: {self.n_source} source, {self.n_target} target samples "
                 f"(no labels used)", header]
        names = [r.modality for r in self.inputs] + [m for m in reps if m == FUSED]
        inputs = {r.modality: r for r in self.inputs}
        for m in names:
            row = f"{m:<10} "
            row += (f"{inputs[m].domain_accuracy:>18.3f} {inputs[m].coral:>7.3f}" if m in inputs
                    else f"{'':>18} {'':>7}")
            if m in reps:
                r = reps[m]
                agree = ("" if r.disagreement is None else
                         f"{r.disagreement:.3f} / {r.source_disagreement:.3f}")
                row += f"   {r.domain_accuracy:>27.3f} {r.coral:>7.3f} {agree:>27}"
            lines.append(row.rstrip())
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """A bar chart of every measure, one panel per level and measure, written atomically
        (PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        panels = []
        for level in LEVELS:
            rows = self.inputs if level == "inputs" else self.representations
            if rows is None:
                continue
            for measure in MEASURES:
                shown = [r for r in rows if getattr(r, measure) is not None]
                if shown:
                    panels.append((level, measure, shown))
        fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2),
                                 squeeze=False)
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        order = {r.modality: i for i, r in enumerate(self.inputs)}
        for ax, (level, measure, rows) in zip(axes[0], panels, strict=True):
            values = [getattr(r, measure) for r in rows]
            ax.bar([r.modality for r in rows], values,
                   color=[colours[order.get(r.modality, len(order)) % len(colours)]
                          for r in rows])
            if measure == "domain_accuracy":
                ax.axhline(0.5, color="grey", lw=0.8, ls="--")
                ax.set_ylim(0.4, 1.0)
            ax.set_title(f"{measure.replace('_', ' ')}\n({level})", fontsize=9)
            ax.tick_params(labelsize=8)
        fig.suptitle(f"shift per modality ({self.n_source} source, {self.n_target} target)",
                     fontsize=10)
        fig.tight_layout()
        try:
            return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
        finally:
            plt.close(fig)


#: the name of the fused representation's row
FUSED = "fused"


def diagnose(source: MultimodalData, target: MultimodalData,
             adapter: DomainAdapter | None = None, *, seed: int = 0,
             max_samples: int = MAX_SAMPLES) -> Diagnosis:
    """The per-modality shift between ``source`` and ``target`` (labels are not used): of the
    inputs, and, given a trained ``adapter``, of its representations and heads. At most
    ``max_samples`` samples per domain (a random subset, from ``seed``)."""
    if source.modalities != target.modalities:
        raise DataError(f"source and target must have the same modalities, got "
                        f"{source.modalities} and {target.modalities}")
    for name, data in (("source", source), ("target", target)):
        if len(data) < 2:
            raise DataError(f"{name}: {len(data)} samples; a diagnosis needs at least 2 per "
                            f"domain")
    rng = np.random.default_rng(seed)
    source = _at_most(source, max_samples, rng)
    target = _at_most(target, max_samples, rng)
    inputs = [_measure(m, _features(source.views[m]), _features(target.views[m]), rng)
              for m in source.modalities]
    representations = None
    if adapter is not None:
        representations = _representation_shift(adapter, source, target, rng)
    return Diagnosis(inputs, representations, len(source), len(target), seed)


def _at_most(data: MultimodalData, n: int, rng: np.random.Generator) -> MultimodalData:
    if len(data) <= n:
        return data
    return data.subset(np.sort(rng.choice(len(data), n, replace=False)))


def _features(view: np.ndarray) -> np.ndarray:
    """(N, D) float64 features: a feature vector as is, a packed sequence's real steps
    averaged."""
    if view.ndim == 2:
        return view.astype(np.float64)
    steps = view[:, :, 0].astype(np.float64)
    total = (view[:, :, 1:].astype(np.float64) * steps[:, :, None]).sum(axis=1)
    return total / np.maximum(step_counts(view), 1)[:, None]


def _measure(name: str, xs: np.ndarray, xt: np.ndarray, rng: np.random.Generator,
             disagreement: tuple[float, float] | None = None) -> ModalityShift:
    target_share, source_share = disagreement if disagreement is not None else (None, None)
    return ModalityShift(name, domain_accuracy(xs, xt, rng), coral_distance(xs, xt),
                         target_share, source_share)


def _standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (x - mean) / np.where(std > 1e-8, std, 1.0)


def coral_distance(xs: np.ndarray, xt: np.ndarray) -> float:
    """``||C_T - C_S||_F / ||C_S||_F``: the (unbiased) covariances of ``xs`` (N_s, D) and ``xt``
    (N_t, D) after standardising both with the mean and standard deviation of ``xs``."""
    mean, std = xs.mean(axis=0), xs.std(axis=0)
    cs = np.cov(_standardise(xs, mean, std), rowvar=False).reshape(xs.shape[1], -1)
    ct = np.cov(_standardise(xt, mean, std), rowvar=False).reshape(xs.shape[1], -1)
    scale = np.linalg.norm(cs)
    return float(np.linalg.norm(ct - cs) / (scale if scale > 0 else 1.0))


def domain_accuracy(xs: np.ndarray, xt: np.ndarray, rng: np.random.Generator, folds: int = 2,
                    ridge: float = 10.0) -> float:
    """Held-out accuracy of the ridge least-squares domain classifier on the standardised
    features of ``xs`` (source) and ``xt`` (target) and their squares, averaged over ``folds``
    folds. Both domains are first subsampled (``rng``) to the smaller's size. ``ridge``: the
    penalty per training sample."""
    n = min(len(xs), len(xt))
    xs = xs[rng.choice(len(xs), n, replace=False)]
    xt = xt[rng.choice(len(xt), n, replace=False)]
    fold = np.concatenate([rng.permutation(n) % folds, rng.permutation(n) % folds])
    x = np.concatenate([xs, xt])
    y = np.concatenate([np.ones(n), -np.ones(n)])
    correct = 0
    for k in range(folds):
        train, test = fold != k, fold == k
        features_train, features_test = _quadratic(x[train], x[test])
        w, b = _ridge(features_train, y[train], ridge * train.sum())
        correct += int((np.sign(features_test @ w + b) == y[test]).sum())
    return correct / len(y)


def _quadratic(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[z, z^2] with z standardised by ``train``'s statistics, each column standardised again."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    z_train, z_test = _standardise(train, mean, std), _standardise(test, mean, std)
    f_train = np.concatenate([z_train, z_train ** 2], axis=1)
    f_test = np.concatenate([z_test, z_test ** 2], axis=1)
    mean, std = f_train.mean(axis=0), f_train.std(axis=0)
    return _standardise(f_train, mean, std), _standardise(f_test, mean, std)


def _ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> tuple[np.ndarray, float]:
    """Weights and bias minimising ``||x w + b - y||^2 + penalty ||w||^2`` (``x`` centred: the
    bias is the mean of ``y``); the primal or dual solve, whichever is smaller."""
    n, d = x.shape
    b = float(y.mean())
    yc = y - b
    if d <= n:
        w = np.linalg.solve(x.T @ x + penalty * np.eye(d), x.T @ yc)
    else:
        w = x.T @ np.linalg.solve(x @ x.T + penalty * np.eye(n), yc)
    return w, b


@torch.no_grad()
def _outputs(adapter: DomainAdapter, data: MultimodalData) -> tuple[list[np.ndarray], np.ndarray,
                                                                    list[np.ndarray]]:
    """Z_1..Z_M, Z_{M+1} and the M+1 heads' predicted classes of ``data`` (evaluation mode)."""
    from boomda.evaluate import _batched_outputs

    checked = adapter.partial_input(data).data
    net = adapter.net
    assert net is not None, "partial_input() raises unless the adapter is fitted"
    reps: list[list[torch.Tensor]] = [[] for _ in net.modalities]
    fused: list[torch.Tensor] = []
    preds: list[list[torch.Tensor]] = [[] for _ in range(len(net.modalities) + 1)]
    for out in _batched_outputs(net, checked, adapter.device, None):
        for j, z in enumerate(out.reps):
            reps[j].append(z.double().cpu())
        fused.append(out.fused.double().cpu())
        for j, logits in enumerate(out.logits):
            preds[j].append(logits.argmax(dim=1).cpu())
    return ([torch.cat(r).numpy() for r in reps], torch.cat(fused).numpy(),
            [torch.cat(p).numpy() for p in preds])


def _representation_shift(adapter: DomainAdapter, source: MultimodalData,
                          target: MultimodalData, rng: np.random.Generator
                          ) -> list[ModalityShift]:
    net = adapter._require_fitted()
    if list(net.modalities) != source.modalities:
        raise DataError(f"the model's modalities {net.modalities} are not the data's "
                        f"{source.modalities}")
    reps_s, fused_s, pred_s = _outputs(adapter, source)
    reps_t, fused_t, pred_t = _outputs(adapter, target)
    rows = []
    for j, m in enumerate(net.modalities):
        shares = (float(np.mean(pred_t[j] != pred_t[-1])), float(np.mean(pred_s[j] != pred_s[-1])))
        rows.append(_measure(m, reps_s[j], reps_t[j], rng, shares))
    rows.append(_measure(FUSED, fused_s, fused_t, rng))
    return rows
