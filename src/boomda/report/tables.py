"""Aggregation and rendering of a grid's records: ``results.csv`` rows, mean and std over seeds
(:class:`Table`), the paper's Table 1 and Table 2 layouts, comparability warnings, and the
label-free selection of the grid point per task (:class:`SelectionTask`).

Runs are averaged over seeds only: finished runs of one method (and sweep point) in one table
column that differ in a data/train setting get rows of their own, labelled with the differing
settings (``boomda {epochs=5}``), besides the comparability warnings.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from boomda.atomic import atomic_write_text
from boomda.errors import BoomdaError
from boomda.registry import METHODS, ablation_marks, table_order
from boomda.report.records import (
    DONE,
    FAILED,
    RunRecord,
    _compared_settings,
    _first_appearance,
    flatten,
)

#: the validator that selects the grid point per task unless another is asked for
DEFAULT_VALIDATOR = "im"
AVERAGE = "ave."
NO_VALUE = "–"

#: metric name -> what the table shows
METRICS = {"target": "target weighted F1", "source_holdout": "source held-out weighted F1"}
#: environment keys that must agree for runs to be comparable
_ENV_KEYS = ("boomda_version", "torch_version", "python_version", "machine", "cuda")
#: results.csv columns that come first, in this order
_LEAD_COLUMNS = ["cell_id", "status", "train.method", "data.modalities", "train.seed",
                 "target.weighted_f1", "target.accuracy", "source_holdout.weighted_f1",
                 "source_holdout.accuracy", "wall_seconds", "error"]
#: results.json keys that repeat the config
_RESULT_DUPLICATES = {"method", "modalities", "seed", "cell"}


def results_table(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One ``results.csv`` row per run: status, metrics, flattened config and environment."""
    rows = []
    for r in records:
        row: dict[str, Any] = dict.fromkeys(_LEAD_COLUMNS)
        row.update(cell_id=r.cell_id, status=r.status, error=r.error)
        row.update(flatten({k: v for k, v in r.results.items()
                            if k not in _RESULT_DUPLICATES and v is not None}))
        row.update(flatten({k: r.config.get(k) or {} for k in ("data", "train")}))
        row.update(flatten({"environment": r.environment}))
        rows.append(row)
    return rows


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write ``rows`` as CSV (columns in order of first appearance) atomically to ``path``."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    path = Path(path)
    atomic_write_text(path, buffer.getvalue())
    return path


@dataclass
class Stat:
    """The runs of one (method, modality subset) cell: their scores and the failed cell ids."""

    values: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (ddof=1); 0 for a single run."""
        if not self.values:
            return None
        return statistics.stdev(self.values) if self.n > 1 else 0.0


@dataclass
class Table:
    """Methods (rows) x modality subsets (columns) of one metric over seeds."""

    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], Stat]
    metric: str = "target"
    #: row -> its method (and sweep point), for rows that carry a settings label
    #: (``boomda {epochs=5}`` -> ``boomda``); see :meth:`base`
    bases: dict[str, str] = field(default_factory=dict)

    def base(self, row: str) -> str:
        """The row's method (with its sweep point), without its settings label."""
        return self.bases.get(row, row)

    def name(self, row: str) -> str:
        """The row as the tables show it: the paper's name of the method, then the rest."""
        base = self.base(row)
        title = METHODS.trait(base, "title") if base in METHODS else None
        return (title or base) + row[len(base):]

    def stat(self, row: str, column: str) -> Stat:
        return self.cells.get((row, column), Stat())

    def average(self, row: str) -> float | None:
        """Mean over the columns of the row's per-column means; None if any column lacks one."""
        means = [self.stat(row, c).mean for c in self.columns]
        known = [m for m in means if m is not None]
        if not means or len(known) < len(means):
            return None
        return statistics.fmean(known)

    def value(self, row: str, column: str) -> float | None:
        """The shown number: the cell's mean, or the row's average for ``AVERAGE``."""
        return self.average(row) if column == AVERAGE else self.stat(row, column).mean

    def best(self, column: str) -> set[str]:
        """The rows with the highest value in ``column`` (several on a tie)."""
        values = {r: v for r in self.rows if (v := self.value(r, column)) is not None}
        top = max(values.values(), default=None)
        return {r for r, v in values.items() if v == top}

    @property
    def has_values(self) -> bool:
        """Whether any cell has a finished run."""
        return any(self.stat(r, c).values for r in self.rows for c in self.columns)

    @property
    def failed(self) -> list[str]:
        """Ids of the failed cells in the table."""
        return [cid for r in self.rows for c in self.columns for cid in self.stat(r, c).failed]

    def restrict(self, rows: Sequence[str]) -> Table:
        """The same table with only ``rows`` (best marks follow)."""
        return Table(list(rows), self.columns, self.cells, self.metric, self.bases)


def subset_order(records: Sequence[RunRecord]) -> list[str]:
    """The table columns present: suite tasks in order of first appearance; else the modality
    subsets, pairs first, then larger subsets, each by first appearance (a single modality, if
    any, before the pairs)."""
    placed = [r for r in records if r.modalities]
    if any(r.task or r.data_label for r in placed):
        return _first_appearance([r.column for r in placed])
    sizes = {r.subset: len(r.modalities) for r in placed}
    return sorted(_first_appearance([r.subset for r in placed]), key=sizes.__getitem__)


def aggregate(
    records: Sequence[RunRecord],
    rows: list[str] | None = None,
    columns: list[str] | None = None,
    metric: str = "target",
) -> Table:
    """Mean and sample std over seeds of ``metric`` ('target' or 'source_holdout' weighted F1).

    Rows: methods (:attr:`RunRecord.row`), in the given order or by first appearance; a given
    method whose runs carry settings labels stands for its rows. Columns: modality subsets
    ('a+b'), as given or pairs first then larger subsets, each by first appearance. Records of
    other rows or columns, and records with no method or modalities, are left out.
    """
    if metric not in METRICS:
        raise BoomdaError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    placed = [r for r in records if r.method and r.modalities]
    present = _first_appearance([r.row for r in placed])
    bases = {r.row: r.base_row for r in placed if r.row != r.base_row}
    if rows is None:
        rows = present
    else:
        expanded = []
        for row in rows:
            labelled = [p for p in present if bases.get(p) == row]
            expanded += ([row] if row in present or not labelled else []) + labelled
        rows = _first_appearance(expanded)
    columns = columns if columns is not None else subset_order(placed)
    cells: dict[tuple[str, str], Stat] = {}
    for r in placed:
        if r.row not in rows or r.column not in columns:
            continue
        stat = cells.setdefault((r.row, r.column), Stat())
        value = r.target_f1 if metric == "target" else r.source_f1
        if r.status == DONE and value is not None:
            stat.values.append(float(value))
        elif r.status == FAILED:
            stat.failed.append(r.cell_id)
    return Table(list(rows), list(columns), cells, metric, bases)


def _markdown(header: list[str], body: list[list[str]], n_left: int) -> str:
    """A Markdown table; the first ``n_left`` columns left-aligned, the rest right-aligned."""
    align = [":---"] * n_left + ["---:"] * (len(header) - n_left)
    lines = [header, align, *body]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def _usual_n(table: Table) -> int:
    return max((table.stat(r, c).n for r in table.rows for c in table.columns), default=0)


def _cell_text(table: Table, row: str, column: str, usual_n: int) -> str:
    stat = table.stat(row, column)
    text = NO_VALUE
    if stat.mean is not None:
        # one run has no spread to show
        text = f"{stat.mean:.2f}" if stat.n == 1 else f"{stat.mean:.2f} ± {stat.std:.2f}"
        if row in table.best(column):
            text = f"**{text}**"
    notes = [f"n={stat.n}"] if stat.values and stat.n != usual_n else []
    if stat.failed:
        notes.append(f"{len(stat.failed)} failed")
    return text + (f" ({', '.join(notes)})" if notes else "")


def _average_text(table: Table, row: str) -> str:
    value = table.average(row)
    if value is None:
        return NO_VALUE
    return f"**{value:.2f}**" if row in table.best(AVERAGE) else f"{value:.2f}"


def _render(table: Table, lead_header: list[str], lead: dict[str, list[str]]) -> str:
    usual_n = _usual_n(table)
    body = [lead[r] + [_cell_text(table, r, c, usual_n) for c in table.columns]
            + [_average_text(table, r)] for r in table.rows]
    text = _markdown(lead_header + table.columns + [AVERAGE], body, len(lead_header))
    what = ("the score of the one seed per cell" if usual_n == 1 else
            f"mean ± sample std over {usual_n} seeds per cell (a single run: its score)")
    text += (f"\n\n{METRICS[table.metric]} (x100): {what} "
             f"(n shown where a cell has another number of runs); best of each column in bold; "
             f"{NO_VALUE} = no finished run; {AVERAGE} = mean of the row's columns, shown only "
             f"when every column has a value.")
    if table.failed:
        text += (f"\nFailed runs, not included ({len(table.failed)}): "
                 + ", ".join(f"`{cid}`" for cid in table.failed) + ".")
    return text


def render_table1(table: Table) -> str:
    """Paper Table 1 layout: methods as rows, modality subsets as columns, an 'ave.' column."""
    return _render(table, ["Method"], {r: [table.name(r)] for r in table.rows})


def render_table2(table: Table) -> str | None:
    """Paper Table 2 layout (the ablation) with CA / PL marks, or None unless the table holds
    ``dt``, ``boomda`` and at least one other ablation variant (a variant run with different
    settings has a row per setting)."""
    ablation = ablation_marks()
    variants = [v for v in ablation if any(table.base(r) == v for r in table.rows)]
    if not {"dt", "boomda"} <= set(variants) or len(variants) < 3:
        return None

    def mark(used: bool) -> str:
        return "✓" if used else "✗"

    rows = [r for v in variants for r in table.rows if table.base(r) == v]
    lead = {r: [table.name(r), *(mark(u) for u in ablation[table.base(r)])] for r in rows}
    text = _render(table.restrict(rows), ["Variant", "CA", "PL"], lead)
    if "uniform" in variants:
        text += "\n`uniform` is CA + PL without balancing: γ_1 = … = γ_{M+1} = 1/(M+1)."
    return text


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("s" if n != 1 else "")


def _differences(label: str, values: Sequence[Any]) -> str | None:
    """'runs differ in label: a (n runs), b (m runs)', most common first; None if all agree."""
    counts = Counter("none" if v is None else str(v) for v in values)
    if len(counts) < 2:
        return None
    return f"runs differ in {label}: " + ", ".join(
        f"{value} ({_count(n, 'run')})" for value, n in counts.most_common())


def comparability(records: Sequence[RunRecord]) -> list[str]:
    """Warnings where finished runs differ in versions, machine, CUDA device, or in a data/train
    setting other than method, seed and modalities (each key compared among the runs having it)."""
    done = [r for r in records if r.status == DONE]
    warnings = [_differences(key, [r.environment.get(key) for r in done]) for key in _ENV_KEYS]
    settings = [_compared_settings(r) for r in done]
    for key in _first_appearance([k for s in settings for k in s]):
        warnings.append(_differences(key, [s[key] for s in settings if key in s]))
    return [w for w in warnings if w is not None]


def method_order(records: Sequence[RunRecord]) -> list[str]:
    """The table rows present: methods in the paper's order (their ``table_rank``), then any
    others by first appearance; a method's rows (sweep points, settings) follow it in order of
    first appearance."""
    methods = table_order(_first_appearance([r.method for r in records if r.method]))
    method_of = {r.row: r.method for r in records if r.method}
    return [row for m in methods for row in method_of if method_of[row] == m]


@dataclass
class SelectionTask:
    """The sweep points of one method on one task: mean target F1 and mean validator scores
    over seeds per point, and the point of the shipped defaults (None if not in the grid).
    ``settings``: the method's settings label (:attr:`RunRecord.settings_label`), when its runs
    were also run with other settings."""

    task: str
    method: str
    f1: dict[str, float]
    scores: dict[str, dict[str, float]]
    default: str | None
    settings: str = ""

    @property
    def label(self) -> str:
        """The method, with its settings label in braces when it has one."""
        return f"{self.method} {{{self.settings}}}" if self.settings else self.method

    def selected(self, validator: str) -> str | None:
        """The point with the best mean score of ``validator`` (None if no finite score)."""
        from boomda.select import select_point

        try:
            return select_point(self.scores.get(validator, {}))
        except BoomdaError:
            return None

    def best(self) -> str:
        """The point with the best mean target F1 (reads target labels: for reporting only)."""
        return max(self.f1, key=self.f1.__getitem__)

    def correlation(self, validator: str) -> float:
        """Spearman correlation between the validator's mean scores and the mean target F1
        over the points that have both."""
        from boomda.select import spearman

        pts = [p for p in self.f1 if math.isfinite(self.scores.get(validator, {}).get(p, math.nan))]
        return spearman(np.array([self.scores[validator][p] for p in pts]),
                        np.array([self.f1[p] for p in pts]))


def is_default_point(point: str, method: str) -> bool:
    """Whether every option of a sweep point (``key=value,...``), a train option or an option of
    ``method`` (also spelt ``options.key``), has its shipped default."""
    from boomda.config import TrainConfig, coerce

    # the registry reads a built-in method's options without loading the method (and torch)
    options = [METHODS.trait(method, "Options")()] if method in METHODS else []
    for item in filter(None, point.split(",")):
        key, _, value = item.partition("=")
        owners = options if key.startswith("options.") else [TrainConfig(), *options]
        key = key.removeprefix("options.")
        owner = next((o for o in owners if hasattr(o, key)), None)
        if owner is None:
            return False
        default = getattr(owner, key)
        if coerce(yaml.safe_load(value), default, key) != default:
            return False
    return True


def selection_tasks(records: Sequence[RunRecord]) -> list[SelectionTask]:
    """One :class:`SelectionTask` per (task or subset, method, settings label) with at least
    two sweep points."""
    from boomda.select import VALIDATORS

    done = [r for r in records if r.status == DONE and r.point and r.target_f1 is not None]
    out = []
    for column in _first_appearance([r.column for r in done]):
        for method, settings in _first_appearance([(r.method, r.settings_label) for r in done
                                                   if r.column == column]):
            if method is None:  # a finished run names its method
                continue
            runs = [r for r in done if r.column == column and r.method == method
                    and r.settings_label == settings]
            points = _first_appearance([r.point for r in runs])
            if len(points) < 2:
                continue
            f1 = {p: statistics.fmean(f for r in runs if r.point == p
                                      and (f := r.target_f1) is not None) for p in points}
            scores: dict[str, dict[str, float]] = {}
            for v in VALIDATORS:
                scores[v] = {}
                for p in points:
                    values = [r.validators.get(v) for r in runs if r.point == p]
                    finite = [x for x in values if x is not None and math.isfinite(x)]
                    scores[v][p] = statistics.fmean(finite) if finite else math.nan
            default = next((p for p in points if is_default_point(p, method)), None)
            out.append(SelectionTask(column, method, f1, scores, default, settings))
    return out


def render_selection(tasks: Sequence[SelectionTask], validator: str) -> str:
    """The selection table (per task: the default point, the point the validator selects, and
    the best point by target labels) and each validator's selected F1 and rank correlation."""
    from boomda.select import VALIDATORS

    if validator not in VALIDATORS:
        raise BoomdaError(f"unknown validator {validator!r}; choose from "
                          f"{', '.join(VALIDATORS)}")

    def f1_text(task: SelectionTask, point: str | None) -> str:
        return NO_VALUE if point is None else f"{task.f1[point]:.2f} ({point})"

    body = []
    for t in tasks:
        body.append([t.task, t.label, f1_text(t, t.default), f1_text(t, t.selected(validator)),
                     f1_text(t, t.best())])

    def mean_of(values: list[float | None]) -> str:
        known = [v for v in values if v is not None]
        return NO_VALUE if not values or len(known) < len(values) \
            else f"{statistics.fmean(known):.2f}"

    body.append(["**average**", "",
                 mean_of([t.f1[t.default] if t.default else None for t in tasks]),
                 mean_of([t.f1[p] if (p := t.selected(validator)) else None for t in tasks]),
                 mean_of([t.f1[t.best()] for t in tasks])])
    text = _markdown(["task", "method", "default", f"selected by `{validator}`",
                      "best by target labels (reads them; reporting only)"], body, 2)
    text += ("\n\nTarget weighted F1 (x100), mean over seeds, of one grid point per task; the "
             "point is in brackets. `default`: the shipped defaults (– when not in the grid). "
             "The selected point maximises the validator's mean score over seeds, computed from "
             "source labels and unlabelled target data only; the last column reads target labels "
             "and is an upper bound for any selection rule, not a usable one.")
    several = len({t.label for t in tasks}) > 1
    labels = [f"{t.task} ({t.label})" if several else t.task for t in tasks]
    rows = []
    for v in VALIDATORS:
        picked = [t.f1[p] if (p := t.selected(v)) else None for t in tasks]
        corr = [t.correlation(v) for t in tasks]
        finite = [c for c in corr if math.isfinite(c)]
        rows.append([f"`{v}`", mean_of(picked),
                     f"{statistics.fmean(finite):+.2f}" if finite else NO_VALUE,
                     " ".join(f"{c:+.2f}" if math.isfinite(c) else NO_VALUE for c in corr),
                     VALIDATORS[v].description])
    text += "\n\n" + _markdown(["validator", "mean F1 of its selection", "mean Spearman ρ",
                                 "ρ per task (" + ", ".join(labels) + ")",
                                 "what it scores"], rows, 1)
    text += ("\n\nSpearman ρ: rank correlation, per task, between the validator's mean score "
             "and the mean target F1 over the grid points; 1 would rank the points exactly as "
             "the target labels do.")
    return text
