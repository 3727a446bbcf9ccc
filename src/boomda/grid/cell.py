"""A grid cell: its run config, the status of its run folder, and running it.

A cell's status is its run folder's (:func:`boomda.rundir.run_status`, given the fingerprint of
the cell's config): ``done`` only when ``results.json`` and ``config.yaml`` name the same run
and that run had the cell's config; ``failed`` (``error.txt``); ``unfinished`` (started, not
done); ``stale`` (finished, but with another config, or its files belong to different runs);
``missing``.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from boomda import rundir
from boomda.config import RunConfig
from boomda.errors import BoomdaError, TrainingError

#: what an executor runs: (cell id, the cell's run config as a dict)
Payload = tuple[str, dict[str, Any]]


@dataclass
class Cell:
    """One run of a grid: ``id`` (its folder's name under ``runs/``), the method, the modality
    subset, the seed, the resolved run config, the suite task (grids with ``tasks``) and the
    label of the grid point (grids with a ``sweep``; empty otherwise)."""

    id: str
    method: str
    modalities: tuple[str, ...]
    seed: int
    config: RunConfig
    task: str | None = None
    point: str = ""


def cell_status(folder: str | Path, fingerprint: str | None = None) -> str:
    """The status of a cell's run folder (:func:`boomda.rundir.run_status`): ``done``,
    ``failed``, ``unfinished``, ``stale`` or ``missing``. Given the fingerprint of the cell's
    config, a run of another config is ``stale``."""
    return rundir.run_status(folder, fingerprint)


def cell_payload(cell: Cell, runs: str | Path) -> tuple[dict[str, Any], str]:
    """What a worker receives for ``cell`` (its config as a dict, ``out`` set to ``runs``) and
    the fingerprint of the config :func:`boomda.run.run_experiment` will be given."""
    cell.config.out = str(runs)
    config_dict = cell.config.to_dict()
    fingerprint = rundir.config_fingerprint(RunConfig.from_dict(config_dict,
                                                                where=f"cell {cell.id}"))
    return config_dict, fingerprint


def _resumable(path: Path, fingerprint: str) -> bool:
    return (rundir.run_status(path, fingerprint) == rundir.UNFINISHED
            and (path / rundir.CHECKPOINT).is_file()
            and (rundir.run_identity(path / rundir.CONFIG) or {}).get("config_fingerprint")
            == fingerprint)


def run_cell(config_dict: dict[str, Any], folder: str) -> tuple[str, str, float]:
    """Run one cell (in a worker process, or in the main one); returns (cell id, status,
    seconds). An unfinished run of the same config is resumed from its checkpoint; otherwise the
    run files in the folder are replaced and the cell run from scratch (a file that is not a
    run's is never removed: the cell fails, naming it). An error is recorded in
    ``error.txt``."""
    from boomda.atomic import atomic_write_text
    from boomda.run import resume_experiment, run_experiment

    path = Path(folder)
    start = time.perf_counter()
    config = RunConfig.from_dict(config_dict, where=f"cell {path.name}")
    fingerprint = rundir.config_fingerprint(config)
    try:
        if rundir.run_status(path, fingerprint) == rundir.DONE:
            return path.name, "done", time.perf_counter() - start
        if _resumable(path, fingerprint):
            try:
                resume_experiment(path)
                return path.name, "done", time.perf_counter() - start
            except TrainingError:
                raise  # a real failure; from scratch it would fail the same way
            except BoomdaError:
                pass  # unreadable checkpoint, another run's files: start over
        # a run's own files are replaced; anything else in the folder stops the cell
        run_experiment(config, progress=False, overwrite=True)
        return path.name, "done", time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - a failed cell is recorded, the grid goes on
        path.mkdir(parents=True, exist_ok=True)
        if not (path / rundir.CONFIG).exists():  # failed before the run wrote its config
            identity = rundir.identity(rundir.new_run_id(), fingerprint, path.name)
            atomic_write_text(path / rundir.CONFIG,
                              yaml.safe_dump({**config_dict, "run": identity}, sort_keys=False))
        message = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        atomic_write_text(path / rundir.ERROR, message + "\n\n" + traceback.format_exc())
        return path.name, "failed", time.perf_counter() - start
