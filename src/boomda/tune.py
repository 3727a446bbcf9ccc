"""Tuned run folders: ``boomda run --select`` trains every point of a sweep
(:mod:`boomda.sweep`) as a run folder of its own, scores each trained model with a validator of
:mod:`boomda.select` and keeps the model of the best point.

The run folder's points are run folders of their own (``points/<label>/``), with
``selection.json`` (:class:`~boomda.sweep.Selection`), ``model.pt`` (a copy of the chosen
point's), ``config.yaml`` and ``results.json`` (the chosen point's results with the selection;
written last). ``--resume`` reuses the finished points and continues the others.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from boomda import rundir
from boomda.atomic import atomic_write, atomic_write_text
from boomda.config import RunConfig
from boomda.errors import BoomdaError, ConfigError
from boomda.resolve import ResolvedRun, resolve

if TYPE_CHECKING:
    from boomda.run import RunResult
from boomda.sweep import (
    apply_point,
    check_points,
    check_validator,
    make_selection,
    point_label,
    preset_points,
)


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
            config.out, config.name = str(folder / rundir.POINTS), label
            config.tags = {**config.tags, "point": label}
            out.append((label, config.to_dict()))
        return out


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
    chosen = [dict(p) for p in (points if points is not None
                                else preset_points(config.train.method))]
    check_points(config.train, chosen, where="--sweep" if chosen else "preset")
    if config.name is not None:
        _check_name(config)
    tuned = TunedRun(config, validator, chosen)
    name = config.name or default_run_name(config)
    target = Path(config.out) / name
    if overwrite and rundir.is_tuned_folder(target):
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
    if not rundir.is_tuned_folder(folder):
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
        for leftover in folder.glob(f".{rundir.SELECTION}.*.tmp"):  # a selection.json cut by a kill
            leftover.unlink(missing_ok=True)
        return _tune(folder, tuned, identity, workers, threads, progress)


def _tune(folder: Path, tuned: TunedRun, identity: dict, workers: int, threads: int | None,
          progress: bool) -> RunResult:
    """Run the points that are not done, choose, and finish the folder (results.json last)."""
    from boomda.estimator import DomainAdapter
    from boomda.grid import LocalExecutor, Progress
    from boomda.run import RunResult

    wall_start = time.perf_counter()
    runs = folder / rundir.POINTS
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
    atomic_write_text(folder / rundir.SELECTION, json.dumps(selection.to_dict(), indent=2) + "\n")
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
    runs = folder / rundir.POINTS
    if runs.is_dir() and not runs.is_symlink():
        for entry in sorted(runs.iterdir()):
            rundir.clear_run_folder(entry)
        runs.rmdir()
    selection = folder / rundir.SELECTION
    if selection.is_file() and not selection.is_symlink():
        rundir.read_json_object(selection)  # a selection's JSON, not a user's file
        selection.unlink()
    rundir.clear_run_folder(folder)
