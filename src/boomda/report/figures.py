"""The training-dynamics figure (paper Fig. 3) of one run: r, the balancing weights gamma and
the pseudo-label accuracy over steps, read from its ``metrics.jsonl``. A run that logged none of
the three (a method without balancing or pseudo-labels, such as ``dt`` or ``dann``) gets a
figure of what it logged instead: its loss terms, and its own diagnostics and varying weights.

The only module of :mod:`boomda.report` that uses matplotlib, imported when a figure is drawn.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from boomda import rundir
from boomda.atomic import atomic_write
from boomda.errors import BoomdaError
from boomda.report.records import DONE, RunRecord, read_run
from boomda.report.tables import subset_order

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The per-step records of a run's ``metrics.jsonl`` (never the ``.partial`` file)."""
    path = Path(run_dir) / rundir.METRICS
    if not path.is_file():
        raise BoomdaError(f"{path}: not found (a run still training has only "
                          f"{rundir.METRICS_PARTIAL})")
    steps = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                steps.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise BoomdaError(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
    return steps


def smooth_ema(values: Sequence[float], weight: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average:
    ``a_t = w a_{t-1} + (1 - w) x_t`` with ``a_0 = 0``, shown as ``a_t / (1 - w^t)``."""
    if not 0 <= weight < 1:
        raise BoomdaError(f"smoothing weight must lie in [0, 1), got {weight}")
    smoothed = np.empty(len(values))
    last = 0.0
    for t, value in enumerate(values, 1):
        last = weight * last + (1 - weight) * value
        smoothed[t - 1] = last / (1 - weight**t)
    return smoothed


def _plot_series(ax: Axes, steps: Sequence[int], values: Sequence[float | None], smooth: float,
                 color: str, label: str | None = None) -> list[float]:
    """Raw series (faint) and its smoothed line, over the finite values only; returns those."""
    points = [(s, v) for s, v in zip(steps, values, strict=True)
              if v is not None and math.isfinite(v)]
    if points:
        x, y = zip(*points, strict=True)
        ax.plot(x, y, color=color, alpha=0.25, linewidth=0.8)
        ax.plot(x, smooth_ema(y, smooth), color=color, linewidth=1.6, label=label)
    return [v for _, v in points]


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set(xticks=[], yticks=[])


def dynamics_figure(run_dir: str | Path, smooth: float = 0.9) -> Figure:
    """Paper Fig. 3 for one run: (a) r, (b) gamma per objective, (c) pseudo-label accuracy over
    steps, each raw (faint) and smoothed with :func:`smooth_ema`; a note where not logged. A run
    that logged none of the three gets the figure of its losses instead."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    record = read_run(run_dir)
    log = read_metrics(run_dir)
    steps = [entry["step"] for entry in log]
    method = record.method or "unknown"
    seed = "" if record.seed is None else f", seed {record.seed}"
    if not any(e.get(k) is not None for e in log for k in FIG3_KEYS):
        return _losses_figure(log, f"{method}, {record.subset or '?'}{seed}", smooth)
    fig = Figure(figsize=(13, 3.8), dpi=120, layout="constrained")
    ax_r, ax_gamma, ax_acc = fig.subplots(1, 3)
    fig.suptitle(f"Training dynamics: {method}, {record.subset or '?'}{seed}")

    r = _plot_series(ax_r, steps, [e.get("r") for e in log], smooth, "C0")
    positive = [v for v in r if v > 0]
    if positive and max(positive) / min(positive) > 100:
        ax_r.set_yscale("log")
    ax_r.set(title=r"(a) $r = \max_{i \neq j} |Q_{ij}| \,/\, \min_i Q_{ii}$", xlabel="step",
             ylabel="r")
    if not r:
        _note(ax_r, f"r not logged for method {method}")

    gammas = [e.get("gamma") for e in log]
    width = max((len(g) for g in gammas if g), default=0)
    names = [*record.modalities, "fused"]
    if len(names) != width:
        names = [f"objective {i + 1}" for i in range(width)]
    for i, name in enumerate(names):
        _plot_series(ax_gamma, steps, [g[i] if g and i < len(g) else None for g in gammas],
                     smooth, f"C{i}", label=name)
    ax_gamma.set(title="(b) balancing weights γ", xlabel="step", ylabel="gamma")
    if width:
        ax_gamma.legend(fontsize="small")
    else:
        _note(ax_gamma, f"gamma not logged for method {method}")

    accuracy = _plot_series(ax_acc, steps, [e.get("pseudo_accuracy") for e in log], smooth, "C2")
    ax_acc.set(title="(c) pseudo-label accuracy (target batch)", xlabel="step",
               ylabel="pseudo-label accuracy")
    if accuracy:
        ax_acc.set_ylim(-0.02, 1.02)
    else:
        _note(ax_acc, f"pseudo-labels not logged for method {method}")
    return fig


#: the per-step values Fig. 3 plots
FIG3_KEYS = ("r", "gamma", "pseudo_accuracy")


def _losses_figure(log: list[dict], what: str, smooth: float) -> Figure:
    """(a) the total loss and every loss term (``loss_*``) over steps; (b), when logged, the
    method's own diagnostics (``extra_*``) and the term weights that vary (``weight_*``)."""
    from matplotlib.figure import Figure

    steps = [entry["step"] for entry in log]
    keys = list(dict.fromkeys(k for e in log for k in e))
    terms = ["loss"] + [k for k in keys if k.startswith("loss_")]
    others = [k for k in keys if k.startswith("extra_")] + [
        k for k in keys if k.startswith("weight_")
        and len({e.get(k) for e in log if e.get(k) is not None}) > 1]
    fig = Figure(figsize=(13 if others else 6.5, 3.8), dpi=120, layout="constrained")
    axes = fig.subplots(1, 2 if others else 1, squeeze=False)[0]
    fig.suptitle(f"Training losses: {what} (no r, gamma or pseudo-labels logged)")
    values = []
    for i, key in enumerate(terms):
        values += _plot_series(axes[0], steps, [e.get(key) for e in log], smooth, f"C{i}",
                               label="total" if key == "loss" else key[len("loss_"):])
    positive = [v for v in values if v > 0]
    if len(positive) == len(values) and positive and max(positive) / min(positive) > 100:
        axes[0].set_yscale("log")
    axes[0].set(title="(a) loss terms", xlabel="step", ylabel="loss")
    axes[0].legend(fontsize="small")
    if others:
        for i, key in enumerate(others):
            _plot_series(axes[1], steps, [e.get(key) for e in log], smooth, f"C{i}", label=key)
        axes[1].set(title="(b) the method's diagnostics and varying weights", xlabel="step",
                    ylabel="value")
        axes[1].legend(fontsize="small")
    return fig


def plot_dynamics(run_dir: str | Path, out_png: str | Path, smooth: float = 0.9) -> Path:
    """Write :func:`dynamics_figure` of ``run_dir`` as a PNG, atomically; returns its path."""
    fig = dynamics_figure(run_dir, smooth)
    return atomic_write(out_png, lambda tmp: fig.savefig(tmp, format="png"))


def default_figure_runs(records: Sequence[RunRecord], limit: int = 4) -> list[str]:
    """Finished ``boomda`` runs to plot: one per modality subset (seed 0, else the lowest seed),
    in table column order, at most ``limit``."""
    candidates = sorted((r for r in records if r.status == DONE and r.method == "boomda"),
                        key=lambda r: (r.seed is None, r.seed or 0))
    chosen: dict[str, RunRecord] = {}
    for r in candidates:
        chosen.setdefault(r.column, r)
    return [chosen[column].cell_id for column in subset_order(records) if column in chosen][:limit]
