"""Label-free tuning: train every point of a sweep of hyperparameters, score each trained model with
a validator of :mod:`boomda.select` (source labels and unlabelled target data only), and keep the
model of the best point.

A sweep is a list of points, each a mapping of method options or
:class:`~boomda.config.TrainConfig` fields to values: by default the method's preset
(:attr:`boomda.methods.base.Method.preset`, the shipped default first), or every combination of
given values (``boomda run --select im --sweep alpha2=10,100``). Ties go to the earlier point in
the sweep's order, so the default wins a tie; a non-finite score never wins.

``boomda run --select`` writes a run folder whose points are run folders of their own
(``points/<label>/``), with ``selection.json`` (:class:`Selection`), ``model.pt`` (a copy of the
chosen point's), ``config.yaml`` and ``results.json`` (the chosen point's results with the
selection; written last). ``--resume`` reuses the finished points and continues the others.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import shutil
import time
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from boomda import rundir
from boomda.atomic import atomic_write, atomic_write_text
from boomda.config import RunConfig, TrainConfig, coerce_to
from boomda.errors import BoomdaError, ConfigError
from boomda.methods import METHODS, check_config
from boomda.resolve import ResolvedRun, resolve

if TYPE_CHECKING:
    from boomda.run import RunResult

#: how a tie between points is broken
TIE_RULE = ("the earlier point in the sweep's order wins a tie (a preset's first point is the "
            "method's default); a point whose score is not finite never wins")
#: the file of a tuned run folder that records every point's scores and the choice
SELECTION = "selection.json"
#: the folder of a tuned run folder that holds one run folder per point
POINTS = "points"
#: TrainConfig fields a sweep may not vary (what is tuned, and the settings of the run itself)
NOT_TUNABLE = ("method", "seed", "device", "precision", "betas", "options")


def preset_points(method: str) -> list[dict[str, Any]]:
    """The preset sweep of ``method`` (:attr:`~boomda.methods.base.Method.preset`), copied."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return [dict(point) for point in METHODS[method].preset]


def _annotation(method: str, key: str, where: str) -> Any:
    """The type annotation of the tunable setting ``key`` of ``method``; ConfigError naming
    ``where`` if ``key`` is neither a tunable training option nor an option of the method."""
    options = METHODS[method].Options
    own = [f.name for f in dataclasses.fields(options)]
    if key in own:
        return typing.get_type_hints(options)[key]
    train = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in NOT_TUNABLE]
    if key in train:
        return typing.get_type_hints(TrainConfig)[key]
    raise ConfigError(f"{where}: {key!r} is neither a training option that can be tuned "
                      f"({', '.join(train)}) nor an option of {method} "
                      f"({', '.join(own) or 'none'})")


def sweep_points(method: str, sweep: Mapping[str, Sequence[Any]],
                 where: str = "sweep") -> list[dict[str, Any]]:
    """Every combination of the values of ``sweep`` (setting -> non-empty list of values), in
    order (the last setting varies fastest), each value coerced to its setting's type."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if not isinstance(sweep, Mapping) or not sweep:
        raise ConfigError(f"{where}: expected a mapping of option -> list of values, e.g. "
                          f"{{'alpha2': [10, 100]}}")
    columns = []
    for key, values in sweep.items():
        annotation = _annotation(method, str(key), where)
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise ConfigError(f"{where}: {key}: expected a non-empty list of values, got "
                              f"{values!r}")
        columns.append([coerce_to(v, annotation, f"{where} {key}") for v in values])
    keys = [str(k) for k in sweep]
    return [dict(zip(keys, values, strict=True)) for values in product(*columns)]


def parse_sweep(items: Sequence[str], method: str) -> list[dict[str, Any]]:
    """The points of ``--sweep KEY=V1,V2 ...`` (repeatable): every combination of the values;
    one-line ConfigError for a malformed item, an unknown key, no values or a bad value."""
    sweep: dict[str, list[str]] = {}
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"--sweep {item!r}: expected KEY=V1,V2,... e.g. alpha2=10,100")
        if key in sweep:
            raise ConfigError(f"--sweep {key}: given twice; list its values once, "
                              f"{key}=V1,V2,...")
        _annotation(method, key, "--sweep")
        values = [v.strip() for v in text.split(",") if v.strip()]
        if not values:
            raise ConfigError(f"--sweep {key}: no values; give {key}=V1,V2,...")
        sweep[key] = values
    return sweep_points(method, sweep, "--sweep")


def point_label(point: Mapping[str, Any]) -> str:
    """A point as ``key=value,key=value`` (its folder's name under ``points/``)."""
    return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in point.items())


def apply_point(config: TrainConfig, point: Mapping[str, Any]) -> TrainConfig:
    """A copy of ``config`` with the settings of ``point`` (training options set, method
    options added to ``options``)."""
    out = copy.deepcopy(config)
    train = {f.name for f in dataclasses.fields(TrainConfig)}
    for key, value in point.items():
        if key in train:
            setattr(out, key, copy.deepcopy(value))
        else:
            out.options[key] = copy.deepcopy(value)
    return out


def check_points(config: TrainConfig, points: Sequence[Mapping[str, Any]],
                 n_modalities: int | None = None, where: str = "sweep") -> list[str]:
    """Check every point's settings (:func:`boomda.methods.check_config`) and return their
    labels; ConfigError naming the first bad point."""
    if not points:
        raise ConfigError(f"{where}: no point to tune")
    labels = [point_label(p) for p in points]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where}: a point is given twice")
    for label, point in zip(labels, points, strict=True):
        try:
            check_config(apply_point(config, point), n_modalities)
        except ConfigError as error:
            raise ConfigError(f"{where} point {label}: {error}") from None
    return labels


def check_validator(name: str, has_holdout: bool, where: str = "select") -> None:
    """ConfigError unless ``name`` is a validator usable on a pair with (``has_holdout``) or
    without a held-out source part."""
    from boomda.select import VALIDATORS

    if name not in VALIDATORS:
        raise ConfigError(f"{where} {name!r}: choose a validator from {', '.join(VALIDATORS)} "
                          f"(recommended: im)")
    if VALIDATORS[name].needs_holdout and not has_holdout:
        raise ConfigError(f"{where} {name}: reads held-out labelled source samples, and the "
                          f"pair has none (give holdout > 0), or choose im or snd")


@dataclass
class Selection:
    """Which point a validator chose, and every point's scores.

    ``points``: each point's settings, in the sweep's order; ``labels``: their names;
    ``scores``: per point, every validator's score (None where not finite); ``target``: per
    point, the target's weighted F1 and accuracy when the target has labels (reporting only:
    the choice never reads them), else None; ``chosen``: the chosen point's label; ``reason``:
    why it was chosen."""

    validator: str
    points: list[dict[str, Any]]
    labels: list[str]
    scores: list[dict[str, float | None]]
    target: list[dict[str, float] | None]
    chosen: str
    reason: str
    tie_rule: str = TIE_RULE

    @property
    def chosen_index(self) -> int:
        return self.labels.index(self.chosen)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``selection.json``."""
        return {"validator": self.validator, "chosen": self.chosen,
                "chosen_point": self.points[self.chosen_index], "reason": self.reason,
                "tie_rule": self.tie_rule,
                "points": [{"label": label, "settings": point, "validators": scores,
                            "target_reporting_only": target}
                           for label, point, scores, target in zip(
                               self.labels, self.points, self.scores, self.target,
                               strict=True)]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Selection:
        rows = d["points"]
        return cls(d["validator"], [r["settings"] for r in rows], [r["label"] for r in rows],
                   [r["validators"] for r in rows], [r["target_reporting_only"] for r in rows],
                   d["chosen"], d["reason"], d.get("tie_rule", TIE_RULE))

    def table(self) -> str:
        """The points x validators table (and the target's weighted F1, reporting only), the
        chosen point marked with ``*``."""
        names = list(self.scores[0]) if self.scores else []
        labelled = any(t is not None for t in self.target)
        width = max(len("point"), *(len(label) for label in self.labels)) + 2
        header = "  point".ljust(width + 2) + "".join(
            (f"{n}*" if n == self.validator else n).rjust(12) for n in names)
        if labelled:
            header += "   target F1 (reporting only)"
        lines = [header]
        for i, label in enumerate(self.labels):
            mark = "* " if label == self.chosen else "  "
            row = (mark + label).ljust(width + 2) + "".join(
                (f"{v:.4f}" if v is not None else "–").rjust(12)
                for v in self.scores[i].values())
            if labelled:
                t = self.target[i]
                row += f"   {t['weighted_f1']:.2f}" if t is not None else "   –"
            lines.append(row)
        return "\n".join(lines)


def choose(validator: str, labels: Sequence[str], scores: Sequence[Mapping[str, Any]],
           ) -> tuple[str, str]:
    """The label of the point with the highest finite ``validator`` score (the earlier point on
    ties) and why; BoomdaError when no point has a finite score."""
    values = [_finite(s.get(validator)) for s in scores]
    finite = [i for i, v in enumerate(values) if v is not None]
    if not finite:
        raise BoomdaError(f"no point has a finite {validator} score ({len(labels)} point(s)); "
                          f"choose another validator")
    best = max(values[i] for i in finite)
    tied = [i for i in finite if values[i] == best]
    reason = f"highest {validator} ({best:.4f}) among {len(finite)} point(s) with a finite score"
    if len(tied) > 1:
        reason += (f"; tied with {', '.join(labels[i] for i in tied[1:])}, the earlier point in "
                   f"the sweep's order wins")
    if len(finite) < len(labels):
        reason += f"; {len(labels) - len(finite)} point(s) without a finite score cannot win"
    return labels[tied[0]], reason


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def make_selection(validator: str, points: Sequence[Mapping[str, Any]], labels: Sequence[str],
                   scores: Sequence[Mapping[str, Any]], target: Sequence[Any]) -> Selection:
    """The :class:`Selection` of the point ``validator`` chooses among ``points``."""
    chosen, reason = choose(validator, labels, scores)
    plain = [{k: _finite(v) for k, v in s.items()} for s in scores]
    return Selection(validator, [dict(p) for p in points], list(labels), plain, list(target),
                     chosen, reason)


# --------------------------------------------------------------------------- run folders


@dataclass
class TunedRun:
    """What a tuned run folder records: the base config, the validator and the points."""

    config: RunConfig
    validator: str
    points: list[dict[str, Any]] = field(default_factory=list)

    def settings(self) -> dict[str, Any]:
        """The ``tune`` section of the folder's ``config.yaml``."""
        return {"select": self.validator, "points": [dict(p) for p in self.points]}

    def fingerprint(self) -> str:
        return rundir.config_fingerprint({**self.config.to_dict(), "tune": self.settings()})

    def point_configs(self, folder: Path) -> list[tuple[str, dict[str, Any]]]:
        """(label, run config as a dict) of every point, its run folder under ``folder``."""
        out = []
        for point in self.points:
            config = copy.deepcopy(self.config)
            config.train = apply_point(config.train, point)
            label = point_label(point)
            config.out, config.name = str(folder / POINTS), label
            config.tags = {**config.tags, "point": label}
            out.append((label, config.to_dict()))
        return out


def is_tuned_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a run of ``boomda run --select`` (its config has ``tune``)."""
    path = Path(folder) / rundir.CONFIG
    if not path.is_file():
        return False
    try:
        return isinstance(rundir.read_yaml_mapping(path).get("tune"), dict)
    except BoomdaError:
        return False


def run_tuned(config: RunConfig | ResolvedRun, validator: str,
              points: Sequence[Mapping[str, Any]] | None = None, *, workers: int = 1,
              threads: int | None = None, progress: bool = False,
              overwrite: bool = False) -> RunResult:
    """Train every point of ``points`` (default: the method's preset) on the pair of ``config``,
    choose one with ``validator`` and write the tuned run folder (see the module docstring).
    ``config`` is resolved once (:func:`boomda.resolve.resolve`) and never changed.
    ``workers`` > 1 trains points in parallel processes (as ``boomda bench``); returns the
    :class:`~boomda.run.RunResult` of the folder (the chosen model)."""
    from boomda.run import _check_name, default_run_name, environment

    config = resolve(config).config
    if workers < 1:
        raise ConfigError(f"--workers {workers}: give a number of processes, at least 1")
    check_validator(validator, config.data.holdout > 0 or config.raw is not None, "--select")
    points = [dict(p) for p in (points if points is not None
                                else preset_points(config.train.method))]
    check_points(config.train, points, where="--sweep" if points else "preset")
    if config.name is not None:
        _check_name(config)
    tuned = TunedRun(config, validator, points)
    name = config.name or default_run_name(config)
    target = Path(config.out) / name
    if overwrite and is_tuned_folder(target):
        _clear_tuned_folder(target)
    folder = rundir.create_run_folder(target, overwrite=overwrite)
    with rundir.run_lock(folder):
        identity = rundir.identity(rundir.new_run_id(), tuned.fingerprint(), name)
        resolved = {**config.to_dict(), "run": identity, "environment": environment(),
                    "tune": tuned.settings()}
        atomic_write_text(folder / rundir.CONFIG, yaml.safe_dump(resolved, sort_keys=False))
        return _tune(folder, tuned, identity, workers, threads, progress)


def resume_tuned(folder: str | Path, *, workers: int = 1, threads: int | None = None,
                 progress: bool = False) -> RunResult:
    """Continue the tuned run in ``folder``: its finished points are kept, the others resumed
    from their checkpoints or run again; then the choice is made and the folder finished."""
    folder = Path(folder)
    if not is_tuned_folder(folder):
        raise BoomdaError(f"--resume {folder}: not a tuned run folder (no 'tune' in "
                          f"{rundir.CONFIG})")
    if workers < 1:
        raise ConfigError(f"--workers {workers}: give a number of processes, at least 1")
    with rundir.run_lock(folder):
        if rundir.run_status(folder) == rundir.DONE:
            raise BoomdaError(f"--resume {folder}: the run is already finished "
                              f"({rundir.RESULTS} exists)")
        resolved = rundir.read_yaml_mapping(folder / rundir.CONFIG)
        identity = resolved.pop("run", None)
        settings = resolved.pop("tune")
        resolved.pop("environment", None)
        if not isinstance(identity, dict) or "id" not in identity:
            raise BoomdaError(f"{folder / rundir.CONFIG}: has no run identity; cannot resume")
        where = str(folder / rundir.CONFIG)
        config = resolve(RunConfig.from_dict(resolved, where=where), where).config
        tuned = TunedRun(config, str(settings.get("select")), list(settings.get("points") or []))
        rundir.remove_leftovers(folder)
        for leftover in folder.glob(f".{SELECTION}.*.tmp"):  # a selection.json cut by a kill
            leftover.unlink(missing_ok=True)
        return _tune(folder, tuned, identity, workers, threads, progress)


def _tune(folder: Path, tuned: TunedRun, identity: dict, workers: int, threads: int | None,
          progress: bool) -> RunResult:
    """Run the points that are not done, choose, and finish the folder (results.json last)."""
    from boomda.estimator import DomainAdapter
    from boomda.grid import LocalExecutor, Progress
    from boomda.run import RunResult

    wall_start = time.perf_counter()
    runs = folder / POINTS
    runs.mkdir(exist_ok=True)
    payloads = tuned.point_configs(folder)
    fingerprints = {label: rundir.config_fingerprint(RunConfig.from_dict(d, where=label))
                    for label, d in payloads}
    todo = [(label, d) for label, d in payloads
            if rundir.run_status(runs / label, fingerprints[label]) != rundir.DONE]
    if todo:
        if threads is None:
            import torch

            threads = (torch.get_num_threads() if workers == 1 else
                       1 if tuned.config.raw is None else
                       max(1, (os.cpu_count() or 1) // workers))
        shown = Progress(len(payloads), len(payloads) - len(todo), "points", "point",
                         show=progress)
        try:
            LocalExecutor(workers, threads).execute(todo, runs, shown.cell, shown.describe)
            shown.finish()
        finally:
            shown.close()
    results = {}
    for label, _ in payloads:
        path = runs / label
        if rundir.run_status(path, fingerprints[label]) != rundir.DONE:
            error = (path / rundir.ERROR)
            why = (error.read_text().split("\n", 1)[0] if error.is_file() else "not finished")
            raise BoomdaError(f"point {label} failed ({why}); the finished points are kept: "
                              f"boomda run --resume {folder} runs the others again")
        results[label] = rundir.read_json_object(path / rundir.RESULTS)
    labels = [label for label, _ in payloads]
    selection = make_selection(tuned.validator, tuned.points, labels,
                               [results[lb].get("validators") or {} for lb in labels],
                               [results[lb].get("target") for lb in labels])
    atomic_write_text(folder / SELECTION, json.dumps(selection.to_dict(), indent=2) + "\n")
    chosen = runs / selection.chosen
    atomic_write(folder / rundir.MODEL,
                 lambda tmp: shutil.copyfile(chosen / rundir.MODEL, tmp))
    finished = {**results[selection.chosen], "run": identity,
                "wall_seconds": time.perf_counter() - wall_start,
                "selection": selection.to_dict()}
    atomic_write_text(folder / rundir.RESULTS, json.dumps(finished, indent=2) + "\n")
    adapter = DomainAdapter.load(folder / rundir.MODEL, device=tuned.config.train.device)
    return RunResult(folder, finished, adapter, rundir.RunResults.from_dict(finished))


def _clear_tuned_folder(folder: Path) -> None:
    """Remove a tuned run folder for ``--overwrite``: each point's run folder (only a run's
    files, :func:`boomda.rundir.clear_run_folder`), ``selection.json``, then the run's own
    files."""
    runs = folder / POINTS
    if runs.is_dir() and not runs.is_symlink():
        for entry in sorted(runs.iterdir()):
            rundir.clear_run_folder(entry)
        runs.rmdir()
    selection = folder / SELECTION
    if selection.is_file() and not selection.is_symlink():
        rundir.read_json_object(selection)  # a selection's JSON, not a user's file
        selection.unlink()
    rundir.clear_run_folder(folder)
