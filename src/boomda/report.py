"""Reports on a grid of runs (``boomda bench``): ``results.csv``, the paper's Table 1 and Table 2
layouts, comparability warnings, and the training-dynamics figure (paper Fig. 3).

A grid folder holds ``runs/<cell_id>/``, one run folder per cell (:mod:`boomda.rundir`). A cell
is *done* when its ``results.json`` and ``config.yaml`` carry the same run identity; *failed* when
it has ``error.txt`` instead, or when its ``results.json`` belongs to another run than its
``config.yaml`` or carries no identity (written by an older boomda), whose scores are then never
used; and *missing* otherwise (not run yet, or interrupted). Files ending in ``.partial`` or
``.tmp`` are never read as results. Scores are weighted F1 x 100, as in the paper.

Runs are averaged over seeds only: finished runs of one method (and sweep point) in one table
column that differ in a data/train setting get rows of their own, labelled with the differing
settings (``boomda {epochs=5}``), besides the comparability warnings.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import yaml

from boomda import rundir
from boomda.atomic import atomic_write, atomic_write_text
from boomda.errors import BoomdaError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: a cell's status in a report (aliases of :mod:`boomda.rundir`'s; a *stale* or *unfinished*
#: run folder is reported as failed or missing)
DONE, FAILED, MISSING = rundir.DONE, rundir.FAILED, rundir.MISSING
#: the validator that selects the grid point per task unless another is asked for
DEFAULT_VALIDATOR = "im"
AVERAGE = "ave."
NO_VALUE = "–"

#: the paper's Table 1 row order, with the ablation variants just before the full method
PAPER_ORDER = ["dt", "dann", "dada", "mada", "daln", "pcl", "cdan", "ca", "pl", "uniform",
               "boomda"]
#: Table 2 variants, in the paper's row order -> (uses CA, uses PL)
ABLATION = {"dt": (False, False), "ca": (True, False), "pl": (False, True),
            "uniform": (True, True), "boomda": (True, True)}
_PAPER_NAMES = {"dt": "D.T.", "dann": "DANN", "dada": "DADA", "mada": "MADA", "daln": "DALN",
                "pcl": "PCL", "cdan": "CDAN", "boomda": "Boomda"}
#: metric name -> what the table shows
METRICS = {"target": "target weighted F1", "source_holdout": "source held-out weighted F1"}
#: environment keys that must agree for runs to be comparable
_ENV_KEYS = ("boomda_version", "torch_version", "python_version", "machine", "cuda")
#: config keys a grid varies on purpose (``data.shifts`` is compared on each run's modalities)
_VARIED = {"train.method", "train.seed", "data.modalities"}
#: further keys that differ on purpose between the tasks of a suite
_TASK_VARIED = ("data.dataset", "data.shifts.")
#: results.csv columns that come first, in this order
_LEAD_COLUMNS = ["cell_id", "status", "train.method", "data.modalities", "train.seed",
                 "target.weighted_f1", "target.accuracy", "source_holdout.weighted_f1",
                 "source_holdout.accuracy", "wall_seconds", "error"]
#: results.json keys that repeat the config
_RESULT_DUPLICATES = {"method", "gamma_solver", "modalities", "seed", "cell"}


@dataclass
class RunRecord:
    """One cell of a grid: its status, what it ran, and its scores (weighted F1 x 100)."""

    cell_id: str
    folder: Path
    status: str
    method: str | None = None
    modalities: tuple[str, ...] = ()
    seed: int | None = None
    target_f1: float | None = None
    target_accuracy: float | None = None
    source_f1: float | None = None
    error: str | None = None
    config: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    wall_seconds: float | None = None
    #: the whole results.json (empty unless done)
    results: dict = field(default_factory=dict)
    #: the suite task (grids with ``tasks``) and the sweep point (grids with ``sweep``)
    task: str | None = None
    point: str = ""
    #: label-free validator scores of the trained model (``boomda.select``)
    validators: dict = field(default_factory=dict)
    #: the data the run was on, when a folder mixes data sets or shifts (set by collect_runs)
    data_label: str = ""
    #: the settings that set the run apart from runs of its method it would otherwise be
    #: averaged with, e.g. ``epochs=5`` (set by collect_runs; empty in a grid without such runs)
    settings_label: str = ""

    @property
    def subset(self) -> str:
        """The modality subset's label, e.g. ``fou+kar``."""
        return "+".join(self.modalities)

    @property
    def base_row(self) -> str:
        """The method, with its sweep point when it has one."""
        return f"{self.method} [{self.point}]" if self.point else (self.method or "")

    @property
    def row(self) -> str:
        """The table row: :attr:`base_row`, with the settings label in braces when it has one."""
        return f"{self.base_row} {{{self.settings_label}}}" if self.settings_label \
            else self.base_row

    @property
    def column(self) -> str:
        """The table column: the suite task, else the modality subset (prefixed by the data
        when the folder mixes data sets or shifts, so that they are never averaged together)."""
        if self.task:
            return self.task
        return f"{self.data_label}: {self.subset}" if self.data_label else self.subset

    def describe(self) -> str:
        """``cell_id (method, subset, seed s)``, as far as known."""
        known = [x for x in (self.method, self.subset) if x]
        if self.seed is not None:
            known.append(f"seed {self.seed}")
        return f"`{self.cell_id}`" + (f" ({', '.join(known)})" if known else "")


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BoomdaError(f"{path}: cannot read as JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BoomdaError(f"{path}: expected a JSON object")
    return value


def _read_yaml(path: Path) -> dict:
    try:
        value = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BoomdaError(f"{path}: cannot read as YAML ({exc})") from None
    if not isinstance(value, dict):
        raise BoomdaError(f"{path}: expected a mapping at the top level")
    return value


def _stale_reason(folder: Path, config: dict) -> str:
    """Why a run folder with results.json is not a finished run (:data:`rundir.STALE`), in one
    line."""
    results, again = rundir.RESULTS, "; run this cell again"
    ours, theirs = _read_json(folder / results).get("run"), config.get("run")
    ours = ours.get("id") if isinstance(ours, dict) else None
    theirs = theirs.get("id") if isinstance(theirs, dict) else None
    if ours is None:
        return f"{results} has no run identity (written by an older boomda?){again}"
    if not (folder / rundir.CONFIG).is_file():
        return f"{results} has no {rundir.CONFIG} beside it{again}"
    if theirs is None:
        return f"{rundir.CONFIG} has no run identity (written by an older boomda?){again}"
    if ours != theirs:
        return (f"{results} and {rundir.CONFIG} belong to different runs (ids {ours} and "
                f"{theirs}){again}")
    return f"{results} and {rundir.CONFIG} do not name the same run{again}"


def read_run(folder: str | Path) -> RunRecord:
    """The record of one run folder; raises :class:`BoomdaError` naming an unreadable file.

    Its status follows :func:`boomda.rundir.run_status`: a *stale* folder (results.json of
    another run than config.yaml's, or without identity) counts as failed, its scores unread;
    an *unfinished* one as missing.
    """
    folder = Path(folder)
    status = rundir.run_status(folder)
    record = RunRecord(folder.name, folder, MISSING)
    if (folder / rundir.CONFIG).is_file():
        record.config = _read_yaml(folder / rundir.CONFIG)
        data, train = record.config.get("data") or {}, record.config.get("train") or {}
        record.method, record.seed = train.get("method"), train.get("seed")
        record.modalities = tuple(data.get("modalities") or ())
        record.environment = record.config.get("environment") or {}
        tags = record.config.get("tags") or {}
        record.task, record.point = tags.get("task"), tags.get("point", "")
    if status == rundir.DONE:
        results = record.results = _read_json(folder / rundir.RESULTS)
        record.status = DONE
        record.method = results.get("method", record.method)
        record.modalities = tuple(results.get("modalities") or record.modalities)
        record.seed = results.get("seed", record.seed)
        target, source = results.get("target") or {}, results.get("source_holdout") or {}
        record.target_f1, record.target_accuracy = target.get("weighted_f1"), target.get("accuracy")
        record.source_f1 = source.get("weighted_f1")
        record.wall_seconds = results.get("wall_seconds")
        record.validators = results.get("validators") or {}
    elif status == rundir.STALE:
        record.status, record.error = FAILED, _stale_reason(folder, record.config)
    elif status == rundir.FAILED:
        record.status = FAILED
        lines = (folder / rundir.ERROR).read_text().strip().splitlines()
        record.error = lines[0].strip() if lines else f"({rundir.ERROR} is empty)"
    return record


def collect_runs(grid_dir: str | Path) -> list[RunRecord]:
    """One record per cell folder under ``grid_dir/runs``, sorted by cell id.

    A cell whose files cannot be read counts as failed, with the reason as its error.
    """
    runs = Path(grid_dir) / "runs"
    if not runs.is_dir():
        raise BoomdaError(f"{grid_dir}: no runs/ folder (expected a grid folder written by "
                          f"'boomda bench')")
    records = []
    for folder in sorted(p for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            records.append(read_run(folder))
        except BoomdaError as exc:
            records.append(RunRecord(folder.name, folder, FAILED, error=str(exc)))
    _label_data(records)
    _label_settings(records)
    return records


def _label_data(records: Sequence[RunRecord]) -> None:
    """Give every run outside a suite task a data label when such runs differ in data set or in
    the shift of a modality they share: the data set's name, plus ``#k`` when one data set comes
    with several shift settings. Runs on subsets of one setting stay together."""
    groups: list[tuple[str, dict]] = []
    members: list[int] = []
    loose = [r for r in records if not r.task and r.config]
    for r in loose:
        data = r.config.get("data") or {}
        dataset, shifts = str(data.get("dataset")), dict(data.get("shifts") or {})
        for i, (name, merged) in enumerate(groups):
            if name == dataset and all(merged[m] == v for m, v in shifts.items() if m in merged):
                merged.update(shifts)
                members.append(i)
                break
        else:
            groups.append((dataset, shifts))
            members.append(len(groups) - 1)
    if len(groups) < 2:
        return
    names = [Path(name).name for name, _ in groups]
    for r, i in zip(loose, members, strict=True):
        same = [j for j, n in enumerate(names) if n == names[i]]
        r.data_label = names[i] if len(same) == 1 else f"{names[i]}#{same.index(i) + 1}"


def _label_settings(records: Sequence[RunRecord]) -> None:
    """Give runs a settings label where finished runs of one method would otherwise be averaged
    over different settings: for each method, the compared settings (:func:`_compared_settings`)
    that differ among its finished runs in one table cell (same sweep point and column) label
    every run of the method that has them, as ``key=value, ...`` (``train.`` and the method left
    out of the key). Runs that differ only in seed keep one label; a method whose runs agree
    within every cell gets none."""
    placed = [r for r in records if r.method and r.modalities and r.config]
    settings = {id(r): _compared_settings(r) for r in placed}
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in placed:
        if r.status == DONE:
            cells.setdefault((r.method, r.base_row, r.column), []).append(settings[id(r)])
    differing: dict[str, list[str]] = {}
    for (method, _, _), group in cells.items():
        for key in _first_appearance([k for s in group for k in s]):
            if len({repr(s[key]) for s in group if key in s}) > 1:
                differing.setdefault(method, []).append(key)
    for r in placed:
        keys = _first_appearance(differing.get(r.method, []))
        r.settings_label = ", ".join(f"{_setting_name(k)}={_setting_text(settings[id(r)][k])}"
                                     for k in keys if k in settings[id(r)])


def _setting_name(key: str) -> str:
    """A compared setting's key as a row label shows it: ``epochs``, ``options.trade_off``,
    ``data.holdout``."""
    return key.partition(" (")[0].removeprefix("train.")


def _setting_text(value: Any) -> str:
    return "none" if value is None else str(value)


def _scalar(value: Any) -> Any:
    """A list as one string ('+'-joined names, ','-joined numbers); other values unchanged."""
    if isinstance(value, (list, tuple)):
        sep = "+" if all(isinstance(v, str) for v in value) else ","
        return sep.join(str(v) for v in value)
    return value


def flatten(mapping: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (``train.options.trade_off``), lists via :func:`_scalar`."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = _scalar(value)
    return flat


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
        return _PAPER_NAMES.get(base, base) + row[len(base):]

    def stat(self, row: str, column: str) -> Stat:
        return self.cells.get((row, column), Stat())

    def average(self, row: str) -> float | None:
        """Mean over the columns of the row's per-column means; None if any column lacks one."""
        means = [self.stat(row, c).mean for c in self.columns]
        if not means or any(m is None for m in means):
            return None
        return statistics.fmean(means)

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


_T = TypeVar("_T")


def _first_appearance(items: Iterable[_T]) -> list[_T]:
    return list(dict.fromkeys(items))


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
        text = f"{stat.mean:.2f} ± {stat.std:.2f}"
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
    seeds = f"{usual_n} seed" + ("s" if usual_n != 1 else "")
    text += (f"\n\n{METRICS[table.metric]} (x100): mean ± sample std over {seeds} per cell "
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
    variants = [v for v in ABLATION if any(table.base(r) == v for r in table.rows)]
    if not {"dt", "boomda"} <= set(variants) or len(variants) < 3:
        return None

    def mark(used: bool) -> str:
        return "✓" if used else "✗"

    rows = [r for v in variants for r in table.rows if table.base(r) == v]
    lead = {r: [table.name(r), *(mark(u) for u in ABLATION[table.base(r)])] for r in rows}
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


def _compared_settings(record: RunRecord) -> dict[str, Any]:
    """The run's data/train settings that a grid keeps fixed: shifts only of its own modalities,
    method options labelled with their method."""
    settings = {}
    swept = {f"train.{item.partition('=')[0]}" for item in record.point.split(",") if item}
    for key, value in flatten({k: record.config.get(k) or {} for k in ("data", "train")}).items():
        if key in _VARIED or key in swept:
            continue
        if record.task and key.startswith(_TASK_VARIED):
            continue
        if key.startswith("data.shifts.") and key.removeprefix("data.shifts.") \
                not in record.modalities:
            continue
        if key.startswith("train.options."):
            key = f"{key} ({record.method})"
        settings[key] = value
    return settings


def comparability(records: Sequence[RunRecord]) -> list[str]:
    """Warnings where finished runs differ in versions, machine, CUDA device, or in a data/train
    setting other than method, seed and modalities (each key compared among the runs having it)."""
    done = [r for r in records if r.status == DONE]
    warnings = [_differences(key, [r.environment.get(key) for r in done]) for key in _ENV_KEYS]
    settings = [_compared_settings(r) for r in done]
    for key in _first_appearance([k for s in settings for k in s]):
        warnings.append(_differences(key, [s[key] for s in settings if key in s]))
    return [w for w in warnings if w is not None]


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
    steps, each raw (faint) and smoothed with :func:`smooth_ema`; a note where not logged."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    record = read_run(run_dir)
    log = read_metrics(run_dir)
    steps = [entry["step"] for entry in log]
    method = record.method or "unknown"
    fig = Figure(figsize=(13, 3.8), dpi=120, layout="constrained")
    ax_r, ax_gamma, ax_acc = fig.subplots(1, 3)
    seed = "" if record.seed is None else f", seed {record.seed}"
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


def method_order(records: Sequence[RunRecord]) -> list[str]:
    """The table rows present: methods in the paper's order, then any others by first
    appearance; a method's rows (sweep points, settings) follow it in order of first
    appearance."""
    present = _first_appearance([r.method for r in records if r.method])
    methods = [m for m in PAPER_ORDER if m in present] + [m for m in present
                                                         if m not in PAPER_ORDER]
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


def is_default_point(point: str) -> bool:
    """Whether every option of a sweep point (``key=value,...``) has its shipped default."""
    from boomda.config import TrainConfig, coerce

    defaults = TrainConfig()
    for item in filter(None, point.split(",")):
        key, _, value = item.partition("=")
        if not hasattr(defaults, key):
            return False
        default = getattr(defaults, key)
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
            runs = [r for r in done if r.column == column and r.method == method
                    and r.settings_label == settings]
            points = _first_appearance([r.point for r in runs])
            if len(points) < 2:
                continue
            f1 = {p: statistics.fmean(r.target_f1 for r in runs if r.point == p) for p in points}
            scores = {}
            for v in VALIDATORS:
                scores[v] = {}
                for p in points:
                    values = [r.validators.get(v) for r in runs if r.point == p]
                    finite = [x for x in values if x is not None and math.isfinite(x)]
                    scores[v][p] = statistics.fmean(finite) if finite else math.nan
            default = next((p for p in points if is_default_point(p)), None)
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
        return NO_VALUE if not values or any(v is None for v in values) \
            else f"{statistics.fmean(values):.2f}"

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


def _report_markdown(grid: Path, records: Sequence[RunRecord], table: Table,
                     figures: dict[str, Path], chosen: Sequence[SelectionTask],
                     validator: str = DEFAULT_VALIDATOR) -> str:
    by_status = {s: [r for r in records if r.status == s] for s in (DONE, FAILED, MISSING)}
    parts = [f"# Grid report: {grid.name}",
             f"{_count(len(records), 'run')}: {len(by_status[DONE])} done, "
             f"{len(by_status[FAILED])} failed, {len(by_status[MISSING])} missing."]
    if by_status[FAILED]:
        parts.append("## Failures\n\n" + "\n".join(f"- {r.describe()}: {r.error}"
                                                   for r in by_status[FAILED]))
    if by_status[MISSING]:
        parts.append("Not run yet or interrupted: "
                     + ", ".join(f"`{r.cell_id}`" for r in by_status[MISSING]) + ".")
    if not by_status[DONE]:
        parts.append("No finished runs yet: nothing to tabulate.")
        return "\n\n".join(parts) + "\n"
    warnings = comparability(records)
    parts.append("## Comparability\n\n" + ("\n".join(f"- {w}" for w in warnings) if warnings
                                            else "The finished runs share versions, machine "
                                                 "and settings apart from method, seed and "
                                                 "modalities."))
    if any(r.settings_label for r in by_status[DONE]):
        parts[-1] += ("\n\nRuns of one method that differ in such a setting are never averaged "
                      "together: each setting has a row of its own, labelled `{setting=value}`.")
    parts.append("## Target weighted F1 (Table 1 layout)\n\n" + render_table1(table))
    ablation = render_table2(table)
    if ablation is not None:
        parts.append("## Ablation (Table 2 layout)\n\n" + ablation)
    if chosen:
        parts.append(f"## Label-free selection of the grid point\n\n"
                     f"{render_selection(chosen, validator)}")
    source = aggregate(records, table.rows, table.columns, metric="source_holdout")
    if source.has_values:
        parts.append("## Source held-out weighted F1\n\n" + render_table1(source))
    if figures:
        parts.append("## Training dynamics (Fig. 3 layout)\n\n" + "\n\n".join(
            f"![{cell_id}](figures/{path.name})" for cell_id, path in figures.items()))
    return "\n\n".join(parts) + "\n"


def _write_report(grid_dir: str | Path, figure_runs: list[str] | None,
                  validator: str = DEFAULT_VALIDATOR
                  ) -> tuple[dict[str, Path], Table, list[SelectionTask]]:
    grid = Path(grid_dir)
    records = collect_runs(grid)
    table = aggregate(records, rows=method_order(records))
    paths = {"results.csv": write_csv(results_table(records), grid / "results.csv")}
    figures = {}
    for cell_id in default_figure_runs(records) if figure_runs is None else figure_runs:
        if not (grid / "runs" / cell_id).is_dir():
            raise BoomdaError(f"{grid / 'runs' / cell_id}: no such run folder")
        figures[cell_id] = plot_dynamics(grid / "runs" / cell_id,
                                         grid / "figures" / f"{cell_id}.png")
    report = grid / "report.md"
    chosen = selection_tasks(records)
    atomic_write_text(report, _report_markdown(grid, records, table, figures, chosen, validator))
    paths["report.md"] = report
    paths.update({f"figures/{path.name}": path for path in figures.values()})
    return paths, table, chosen


def write_report(grid_dir: str | Path, figure_runs: list[str] | None = None,
                 validator: str = DEFAULT_VALIDATOR) -> dict[str, Path]:
    """Write ``results.csv``, ``report.md`` and ``figures/<cell_id>.png`` into ``grid_dir``
    (each atomically); figures for ``figure_runs`` or :func:`default_figure_runs`; in a grid
    with a sweep, the grid point is selected per task by ``validator``.
    Returns the written paths by name."""
    return _write_report(grid_dir, figure_runs, validator)[0]


def main_report(directory: str, figure_runs: list[str] | None = None,
                validator: str = DEFAULT_VALIDATOR) -> int:
    """``boomda report``: write the report of a grid folder, print its paths and Table 1 (and
    the selection table for a grid with a sweep)."""
    from boomda.select import VALIDATORS

    if validator not in VALIDATORS:
        raise BoomdaError(f"unknown validator {validator!r}; choose from "
                          f"{', '.join(VALIDATORS)}")
    paths, table, chosen = _write_report(directory, figure_runs, validator)
    for path in paths.values():
        print(path)
    print()
    print(render_table1(table) if table.has_values
          else "No finished runs yet: nothing to tabulate.")
    if chosen:
        print()
        print(render_selection(chosen, validator))
    return 0
