"""Reading a grid's run folders: one :class:`RunRecord` per cell.

A grid folder holds ``runs/<cell_id>/``, one run folder per cell (:mod:`boomda.rundir`). A cell
is *done* when its ``results.json`` and ``config.yaml`` carry the same run identity; *failed* when
it has ``error.txt`` instead, or when its ``results.json`` belongs to another run than its
``config.yaml`` or carries no identity (written by an older boomda), whose scores are then never
used; and *missing* otherwise (not run yet, or interrupted). Files ending in ``.partial`` or
``.tmp`` are never read as results. Scores are weighted F1 x 100, as in the paper.

Records get a data label when a folder mixes data sets or shifts, and a settings label when
finished runs of one method (and sweep point) in one table column differ in a data/train setting,
so that such runs are never averaged together (:func:`collect_runs`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from boomda import rundir
from boomda.errors import BoomdaError

#: a cell's status in a report (aliases of :mod:`boomda.rundir`'s; a *stale* or *unfinished*
#: run folder is reported as failed or missing)
DONE, FAILED, MISSING = rundir.DONE, rundir.FAILED, rundir.MISSING
#: config keys a grid varies on purpose (``data.shifts`` is compared on each run's modalities)
_VARIED = {"train.method", "train.seed", "data.modalities"}
#: further keys that differ on purpose between the tasks of a suite
_TASK_VARIED = ("data.dataset", "data.shifts.")


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


#: run-folder files as JSON / YAML, one-line errors (:mod:`boomda.rundir`)
_read_json = rundir.read_json_object
_read_yaml = rundir.read_yaml_mapping


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
        results = rundir.RunResults.read(folder)
        record.results = results.to_dict()
        record.status = DONE
        record.method = results.method
        record.modalities = tuple(results.modalities or record.modalities)
        record.seed = results.seed
        target, source = results.target or {}, results.source_holdout or {}
        record.target_f1, record.target_accuracy = target.get("weighted_f1"), target.get("accuracy")
        record.source_f1 = source.get("weighted_f1")
        record.wall_seconds = results.wall_seconds
        record.validators = results.validators or {}
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
        dataset = (f"{Path(str(data['source'])).stem}->{Path(str(data['target'])).stem}"
                   if data.get("source") else str(data.get("dataset")))
        shifts = dict(data.get("shifts") or {})
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
    cells: dict[tuple[str | None, str, str], list[dict[str, Any]]] = {}
    for r in placed:
        if r.status == DONE:
            cells.setdefault((r.method, r.base_row, r.column), []).append(settings[id(r)])
    differing: dict[str | None, list[str]] = {}
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


_T = TypeVar("_T")


def _first_appearance(items: Iterable[_T]) -> list[_T]:
    return list(dict.fromkeys(items))


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
