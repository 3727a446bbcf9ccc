"""Grids of runs: methods x modality subsets x seeds on one data set, in parallel and resumable.

A grid folder holds ``grid.yaml`` (the resolved grid), ``.lock`` (see below) and
``runs/<cell>/``, one run folder per cell (see :mod:`boomda.rundir`).

*Statuses.* A cell's status is its run folder's (:func:`boomda.rundir.run_status`, given the
fingerprint of the cell's config): ``done`` only when ``results.json`` and ``config.yaml`` name
the same run and that run had the cell's config; ``failed`` (``error.txt``); ``unfinished``
(started, not done); ``stale`` (finished, but with another config, or its files belong to
different runs); ``missing``. Every cell that is not done is run by the next ``boomda bench`` on
the folder; done cells are skipped.

*Resumption.* An unfinished cell whose folder holds a checkpoint of a run with the cell's config
is continued from it (:func:`boomda.run.resume_experiment`, which on CPU gives the uninterrupted
run's result bit for bit); any other cell that is not done (failed, stale, unfinished without a
usable checkpoint) has its run files replaced (:func:`boomda.rundir.clear_run_folder`; a file
that is not a run's stops the cell instead) and is run from scratch. Cells are seeded, so a grid
stopped at any moment and run again ends with the results of an uninterrupted run. A cell that
raises an error gets ``error.txt`` (written atomically) and is retried on a rerun.

*Lock.* While a bench runs, it holds :func:`grid_lock` on the grid folder (see
:mod:`boomda.lock`): a second bench on the folder fails at once with a one-line
:class:`~boomda.errors.BoomdaError` naming the holder, and the lock of a killed bench is simply
taken over (with one line on stderr).

*Shutdown.* Cells run in worker processes (``spawn``) when ``workers > 1``. The workers end with
the main process whatever ends it (SIGKILL included: ``PR_SET_PDEATHSIG`` on Linux, and a thread
that watches the parent pid everywhere), and ignore SIGINT, so that a Ctrl-C in a terminal is
handled by the main process only. SIGINT, SIGTERM or SIGHUP to the main process stops the grid at
once: no further cell starts, the running workers are killed (the cells they ran stay
unfinished, resumable), the lock is released and :class:`GridInterrupted` (a ``BoomdaError``)
says in one line how many cells are done and that the same command resumes the grid. With
``workers == 1`` the cells run in the main process: the current cell is abandoned the same way.

*Ray.* ``run_grid(..., ray=RayOptions(...))`` (``boomda bench --ray``) runs the cells as tasks on
a Ray cluster instead (:mod:`boomda.bench_ray`), through the same :func:`run_cell`, the same
statuses, lock and stop signals.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import combinations, product
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from boomda import rundir
from boomda.config import (
    RunConfig,
    TrainConfig,
    check_keys,
    coerce,
    load_yaml,
    load_yaml_mapping,
)
from boomda.errors import BoomdaError, ConfigError, TrainingError
from boomda.lock import LOCK as LOCK  # the grid folder's lock file
from boomda.lock import FolderLocked, folder_lock
from boomda.methods import METHODS, check_config

if TYPE_CHECKING:
    from boomda.bench_ray import RayOptions



#: ``sweep: preset`` in a grid file: every method's own preset sweep
PRESET = "preset"


@dataclass
class GridSpec:
    """What a grid runs. ``base``: a run config (``data``/``train`` sections) shared by all cells;
    ``methods``; ``modalities``: the modalities subsets are drawn from (default: the base's);
    ``subsets``: ``all`` (every combination of two or more) or a list of subsets;
    ``seeds``; ``method_overrides``: per-method ``train`` settings or method options.

    ``tasks``: a benchmark suite instead of one data set: task name -> ``data`` settings that
    replace the base's (dataset, modalities, shifts, ...), or the path of a YAML file holding
    such a ``tasks:`` mapping (relative to the grid file). Each task runs on all its modalities
    (``subsets`` does not apply). ``sweep``: ``train`` option or method option (e.g.
    Boomda's ``alpha2``) -> list of values; every
    combination is a grid point, run for every method, task or subset, and seed (the points
    among which ``boomda bench --select`` chooses); or a list of such mappings of single
    values, one per point, when the options are not varied independently. ``sweep_methods``:
    the methods the sweep applies to (default: all); the others run once with the base settings.
    ``sweep: preset``: every method's own preset (:attr:`boomda.methods.base.Method.preset`, the
    points ``boomda run --select`` tries; the same number for every method), for a comparison in
    which every method is tuned the same way.
    """

    name: str = "grid"
    base: dict[str, Any] = field(default_factory=dict)
    methods: list[str] = field(default_factory=lambda: ["boomda"])
    modalities: list[str] | None = None
    subsets: str | list[list[str]] = "all"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] | str | None = None
    sweep: dict[str, list[Any]] | list[dict[str, Any]] | str = field(default_factory=dict)
    sweep_methods: list[str] | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> GridSpec:
        raw = load_yaml_mapping(path, "grid file")
        if isinstance(raw.get("tasks"), str):
            tasks_file = Path(path).parent / raw["tasks"]
            tasks = load_yaml_mapping(tasks_file, "tasks file").get("tasks")
            if not isinstance(tasks, Mapping) or not tasks:
                raise ConfigError(f"{tasks_file}: expected a non-empty 'tasks:' mapping")
            raw["tasks"] = dict(tasks)
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "grid") -> GridSpec:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: expected a mapping at the top level")
        check_keys(raw, sorted(cls.__dataclass_fields__), where, "key")
        spec = cls(**{k: copy.deepcopy(v) for k, v in raw.items()})
        spec.validate(where)
        return spec

    def points(self, method: str) -> list[dict[str, Any]]:
        """The sweep's grid points for ``method``: one dict of train settings per combination
        (a single empty point without a sweep, or for a method the sweep does not apply to)."""
        excluded = self.sweep_methods is not None and method not in self.sweep_methods
        if not self.sweep or excluded:
            return [{}]
        if self.sweep == PRESET:
            return [dict(point) for point in METHODS[method].preset] or [{}]
        if isinstance(self.sweep, list):
            return [dict(point) for point in self.sweep]
        keys = list(self.sweep)
        return [dict(zip(keys, values, strict=True))
                for values in product(*(self.sweep[k] for k in keys))]

    def task_list(self) -> list[tuple[str | None, dict[str, Any]]]:
        """(task name, data settings) pairs; one unnamed entry without tasks."""
        if not self.tasks:
            return [(None, {})]
        assert isinstance(self.tasks, Mapping)
        return [(str(name), dict(data or {})) for name, data in self.tasks.items()]

    def to_dict(self) -> dict[str, Any]:
        return {k: copy.deepcopy(getattr(self, k)) for k in self.__dataclass_fields__}

    def base_config(self) -> RunConfig:
        return RunConfig.from_dict(self.base, where="grid.base")

    def validate(self, where: str = "grid") -> None:
        """Check the whole grid before any cell runs: its name, the lists it must hold, every
        modality against the data's, every method, override and swept option, and each
        cell's train settings; :class:`ConfigError` naming the first bad key."""
        _check_folder_name(self.name, f"{where}.name")
        if not isinstance(self.methods, list) or not self.methods:
            raise ConfigError(f"{where}.methods: empty; name at least one method of "
                              f"{', '.join(METHODS)}")
        if isinstance(self.subsets, list) and not self.subsets:
            raise ConfigError(f"{where}.subsets: empty; give 'all' or a list of modality "
                              f"subsets, e.g. [fou+kar]")
        base = self.base_config()
        for m in self.methods:
            if m not in METHODS:
                raise ConfigError(f"{where}.methods: unknown method {m!r}; choose from "
                                  f"{', '.join(METHODS)}")
        for m in self.method_overrides:
            if m not in self.methods:
                raise ConfigError(f"{where}.method_overrides: {m!r} is not in methods")
        if not self.seeds or not all(isinstance(s, int) for s in self.seeds):
            raise ConfigError(f"{where}.seeds: expected a non-empty list of integers")
        if self.subsets != "all" and not isinstance(self.subsets, list):
            raise ConfigError(f"{where}.subsets: 'all' or a list of modality lists")
        if self.tasks is not None and (not isinstance(self.tasks, Mapping) or not self.tasks):
            raise ConfigError(f"{where}.tasks: expected a non-empty mapping of task name -> "
                              f"data settings (or a tasks file)")
        if self.sweep == PRESET:
            keys = {k for m in self.methods for point in self.points(m) for k in point}
        elif isinstance(self.sweep, list):
            if not all(isinstance(point, Mapping) and point for point in self.sweep):
                raise ConfigError(f"{where}.sweep: a list of points must hold non-empty "
                                  f"mappings of train option -> value")
            keys = {k for point in self.sweep for k in point}
        elif isinstance(self.sweep, Mapping) and all(isinstance(v, list) and v
                                                      for v in self.sweep.values()):
            keys = set(self.sweep)
        else:
            raise ConfigError(f"{where}.sweep: expected 'preset', a mapping of train option -> "
                              f"non-empty "
                              f"list of values, or a list of points")
        swept = [m for m in self.methods
                 if self.sweep_methods is None or m in self.sweep_methods]
        for key in sorted(keys):
            if key in ("method", "seed") or not (
                    _is_train_field(key) or any(key in _method_option_names(m) for m in swept)):
                raise ConfigError(f"{where}.sweep: {key!r} is neither a train option that can "
                                  f"be swept nor an option of the methods it applies to")
        self._check_modalities(base, where)
        if (not base.data.modalities and self.modalities is None and self.subsets == "all"
                and not self.tasks):
            raise ConfigError(f"{where}: give modalities (or base.data.modalities)")
        for cell in self.cells():
            check_config(cell.config.train, n_modalities=len(cell.modalities))

    def _check_modalities(self, base: RunConfig, where: str) -> None:
        """Every modality the grid names is one of its data's: the ``modalities`` and
        ``subsets`` against the base's data, each task's against the task's."""
        if self.tasks:
            for task, data in self.task_list():
                config = self._task_config(task, data)
                _check_available(config.data.modalities, config,
                                 f"{where}.tasks.{task}.modalities")
            return
        if self.modalities:
            _check_available(self.modalities, base, f"{where}.modalities")
        if self.subsets != "all":
            for subset in self.subset_list():
                _check_available(subset, base, f"{where}.subsets")

    def pool(self) -> list[str]:
        base = self.base_config()
        if self.modalities:
            return list(self.modalities)
        return list(base.raw.modalities) if base.raw is not None else list(base.data.modalities)

    def subset_list(self) -> list[tuple[str, ...]]:
        """The modality subsets: pairs first, then larger ones, in the pool's order."""
        pool = self.pool()
        if self.subsets == "all":
            return [c for k in range(2, len(pool) + 1) for c in combinations(pool, k)]
        out = []
        for item in self.subsets:
            subset = tuple(item.split("+")) if isinstance(item, str) else tuple(item)
            if len(subset) < 2:
                raise ConfigError(f"grid.subsets: {subset} has fewer than 2 modalities")
            out.append(subset)
        return out

    def _task_config(self, task: str | None, data: dict[str, Any]) -> RunConfig:
        raw = copy.deepcopy(self.base)
        if task is not None:
            merged = dict(raw.get("data") or {})
            if "source" in data or "target" in data:
                # a real pair: the base's data set, its views and its shifts do not apply
                for key in ("dataset", "modalities", "shifts"):
                    merged.pop(key, None)
            merged.update(copy.deepcopy(data))
            raw["data"] = merged
        where = "grid.base" if task is None else f"grid.tasks.{task}"
        config = RunConfig.from_dict(raw, where=where)
        if config.data.is_pair and not config.data.modalities:  # every array of the files
            from boomda.data.files import modality_names

            config.data.modalities = modality_names(config.data.source, f"{where}.source")
        return config

    def cells(self) -> list[Cell]:
        """Every (method, task or subset, grid point, seed) cell with its resolved run config."""
        cells = []
        for task, data in self.task_list():
            task_base = self._task_config(task, data)
            subsets = ([tuple(task_base.data.modalities)] if task is not None
                       else self.subset_list())
            for method in self.methods:
                for point in self.points(method):
                    for subset in subsets:
                        for seed in self.seeds:
                            cells.append(self._cell(task, task_base, method, point, subset,
                                                    seed))
        return cells

    def _cell(self, task: str | None, task_base: RunConfig, method: str, point: dict[str, Any],
              subset: tuple[str, ...], seed: int) -> Cell:
        config = copy.deepcopy(task_base)
        config.train.method = method
        config.train.seed = seed
        for key, value in self.method_overrides.get(method, {}).items():
            if _is_train_field(key):
                setattr(config.train, key, copy.deepcopy(value))
            elif key in _method_option_names(method):
                config.train.options[key] = copy.deepcopy(value)
            else:
                raise ConfigError(f"grid.method_overrides.{method}: unknown option {key!r} "
                                  f"(neither a train option nor an option of {method})")
        for key, value in point.items():
            if _is_train_field(key):
                setattr(config.train, key, coerce(value, getattr(config.train, key),
                                                  f"grid.sweep.{key}"))
            else:  # a method option, coerced and checked by the method
                config.train.options[key] = copy.deepcopy(value)
        config.data.modalities = list(subset)
        if config.raw is not None:
            unknown = [m for m in subset if m not in config.raw.modalities]
            if unknown:
                raise ConfigError(f"grid: modality {unknown[0]!r} is not in "
                                  f"base.raw.modalities")
            config.raw.modalities = {m: config.raw.modalities[m] for m in subset}
        label = point_label(point)
        parts = [method, task if task is not None else "+".join(subset)]
        if label:
            parts.append(label)
        cid = "__".join(parts + [f"seed{seed}"])
        config.name = cid
        config.tags = {k: v for k, v in (("task", task), ("point", label)) if v}
        return Cell(cid, method, subset, seed, config, task, label)


def _check_folder_name(name: Any, where: str) -> None:
    """``name`` is one plain folder name: a non-empty string of at most 255 bytes, without a
    path separator, and neither ``.`` nor ``..``."""
    if (not isinstance(name, str) or not name or name in (".", "..")
            or any(c in name for c in "/\\\0")):
        raise ConfigError(f"{where} {name!r}: one plain folder name (the grid's folder under "
                          f"bench/), not empty, without '/', '\\' or '..'")
    if len(name.encode()) > 255:
        raise ConfigError(f"{where}: {len(name.encode())} bytes; a folder name holds at most "
                          f"255")


def _available_modalities(config: RunConfig) -> tuple[list[str], str] | None:
    """The modalities ``config``'s data offer and a phrase that names them; None when they are
    known only once the data are read (a data file that does not exist yet is reported by the
    run)."""
    from boomda.data import files, htad, mfeat

    if config.raw is not None:
        return list(config.raw.modalities), "raw.modalities are"
    if config.data.is_pair:
        return (files.modality_names(config.data.source, "data.source"),
                f"the source {config.data.source} holds")
    if config.data.dataset == "mfeat":
        return list(mfeat.VIEWS), "the embedded data's views are"
    if config.data.dataset == "htad":
        return list(htad.VIEWS.values()), "htad's views are"
    if Path(config.data.dataset).is_file():
        return (files.modality_names(config.data.dataset, "data.dataset"),
                f"{config.data.dataset} holds")
    return None


def _check_available(names: Any, config: RunConfig, where: str) -> None:
    """Each of ``names`` is a modality of ``config``'s data; ConfigError naming ``where``."""
    available = _available_modalities(config)
    if available is None:
        return
    known, phrase = available
    for name in names:
        if name not in known:
            raise ConfigError(f"{where}: unknown modality {name!r} ({'+'.join(map(str, names))}); "
                              f"{phrase} {', '.join(known)}")


def _is_train_field(key: str) -> bool:
    return key in TrainConfig.__dataclass_fields__


def _method_option_names(method: str) -> set[str]:
    """The option names of ``method`` (none for an unknown method, which is reported
    elsewhere)."""
    if method not in METHODS:
        return set()
    return {f.name for f in dataclasses.fields(METHODS[method].Options)}


def point_label(point: Mapping[str, Any]) -> str:
    """A grid point as ``key=value,key=value`` (empty for the base settings)."""
    return ",".join(f"{k}={v}" for k, v in point.items())


@dataclass
class Cell:
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


# --------------------------------------------------------------------------- the grid lock


class GridLocked(FolderLocked):
    """The grid folder is in use by another bench."""


@contextmanager
def grid_lock(folder: str | Path) -> Iterator[Path]:
    """Hold the grid folder ``folder`` (created if needed) exclusively for the duration of the
    block; raises :class:`GridLocked` (a ``BoomdaError``) naming the holder if another process
    holds it. The lock ends with its holder, however that ends (see :mod:`boomda.lock`)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BoomdaError(f"cannot create the grid folder {folder}: "
                          f"{exc.strerror or exc}") from None
    with folder_lock(folder, what="grid folder", command="boomda bench",
                     error=GridLocked) as path:
        yield path


# --------------------------------------------------------------------------- workers


#: Linux prctl option: the signal a process gets when its parent dies
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    """In a worker: end when the main process ``parent_pid`` ends, however it ends."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import ctypes.util

            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the death signal was set
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="boomda-parent-watch", daemon=True).start()


def _init_worker(threads: int, parent_pid: int | None = None) -> None:
    """Set torch's threads; in a worker process (``parent_pid`` given), also end with the main
    process and leave SIGINT to it."""
    if parent_pid is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _die_with_parent(parent_pid)
    import torch

    torch.set_num_threads(threads)


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


# --------------------------------------------------------------------------- signals


class GridInterrupted(BoomdaError):
    """A grid stopped by a signal (SIGINT, SIGTERM, SIGHUP) to the main process; ``done`` of
    ``total`` cells are done. Running the same grid on the folder again resumes it."""

    def __init__(self, message: str, *, signal_name: str, done: int, total: int) -> None:
        super().__init__(message)
        self.signal_name, self.done, self.total = signal_name, done, total


class _Stop(KeyboardInterrupt):
    """Raised in the main thread by a stop signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: the signals that stop a grid (those the platform has)
_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                      if hasattr(signal, name))


#: the stop signal :func:`_stop_on_signals` caught in its current block, if any (a library that
#: checks signals itself, such as Ray, raises a plain KeyboardInterrupt in place of the _Stop)
STOPPED_BY: list[int] = []


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into :class:`_Stop` in the main thread for the duration
    of the block; a signal that is ignored (``nohup``, a background job) stays ignored. After the
    first one the others are ignored, so that the cleanup is not cut short. The previous
    handlers are restored at the end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    STOPPED_BY.clear()

    def handler(signum: int, frame: Any) -> None:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        STOPPED_BY.append(signum)
        raise _Stop(signum)

    try:
        for sig in _STOP_SIGNALS:
            current = signal.getsignal(sig)
            if current is signal.SIG_IGN or current is None:
                continue
            previous[sig] = current
            signal.signal(sig, handler)
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's workers now (terminate, then kill) and start no further call."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        try:
            process.terminate()
        except (OSError, ValueError, AttributeError):
            pass
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + 2.0
    for process in processes:
        try:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(1.0)
        except (OSError, ValueError, AttributeError, AssertionError):
            pass


# --------------------------------------------------------------------------- the grid


@dataclass
class BenchResult:
    folder: Path
    done: int
    failed: int
    ran: int
    seconds: float


def _settings(grid: dict[str, Any]) -> dict[str, Any]:
    """A resolved grid without where its runs log their curves (``base.logging``, which a rerun
    may switch on or off)."""
    base = grid.get("base")
    if not isinstance(base, Mapping):
        return grid
    return {**grid, "base": {k: v for k, v in base.items() if k != "logging"}}


def prepare_folder(spec: GridSpec, folder: Path) -> None:
    """Create the grid folder, or check that an existing one holds the same grid."""
    folder.mkdir(parents=True, exist_ok=True)
    grid_file = folder / "grid.yaml"
    wanted = spec.to_dict()
    if grid_file.exists():
        existing = load_yaml(grid_file) or {}
        if _settings(existing) != _settings(wanted):
            raise BoomdaError(
                f"{grid_file}: this folder holds a different grid; use another --out folder "
                f"(or delete it) rather than mixing two grids' results"
            )
        return
    from boomda.atomic import atomic_write_text

    atomic_write_text(grid_file, yaml.safe_dump(wanted, sort_keys=False))


def run_grid(
    spec: GridSpec,
    folder: str | Path,
    *,
    workers: int = 1,
    threads: int | None = None,
    progress: bool = True,
    report: bool = True,
    on_cell: Callable[[str, str], None] | None = None,
    on_done: Callable[[BenchResult], None] | None = None,
    ray: RayOptions | None = None,
) -> BenchResult:
    """Run every cell of ``spec`` under ``folder`` that is not done, with ``workers`` processes.

    ``threads``: torch threads per worker (default: the CPU count divided by ``workers``, at
    least 1). Done cells are skipped, unfinished ones resumed, the others run from scratch. The
    folder is locked for the duration (:func:`grid_lock`; :class:`GridLocked` if another bench
    holds it). When a worker process dies the grid stops with :class:`BoomdaError`; SIGINT,
    SIGTERM or SIGHUP stop it with :class:`GridInterrupted`. Rerunning resumes it.
    ``on_done(result)`` runs at the end while the folder is still locked (``boomda bench``
    prints its summary and report there), so no other bench writes to it meanwhile.

    ``ray``: run the cells as tasks on a Ray cluster instead (:mod:`boomda.bench_ray`;
    ``workers``: the CPUs of a local Ray instance; ``threads`` default: the CPUs per cell).
    """
    folder = Path(folder)
    if workers < 1:
        raise ConfigError(f"option workers must be at least 1, got {workers}")
    if ray is not None:
        ray.validate()
        threads = threads or ray.threads()
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    cells = spec.cells()
    runs = folder / "runs"
    # each cell's payload and config fingerprint, computed once
    prepared = {cell.id: cell_payload(cell, runs) for cell in cells}
    fingerprints = {cid: fp for cid, (_, fp) in prepared.items()}
    with grid_lock(folder), _stop_on_signals():
        start = time.perf_counter()
        failed = ran = 0
        try:
            prepare_folder(spec, folder)
            runs.mkdir(exist_ok=True)
            payloads = [(cid, config_dict) for cid, (config_dict, fp) in prepared.items()
                        if cell_status(runs / cid, fp) != rundir.DONE]
            ran = len(payloads)
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(cells), initial=len(cells) - len(payloads),
                           desc=spec.name, unit="cell", file=sys.stderr, dynamic_ncols=True)
            try:
                if payloads:
                    failed = _execute(payloads, runs, workers, threads, bar, on_cell, ray)
            finally:
                if bar is not None:
                    bar.close()
            done = _count_done(fingerprints, runs)
            result = BenchResult(folder, done, failed, ran, time.perf_counter() - start)
            if report:
                from boomda.report import write_report

                write_report(folder)
            if on_done is not None:  # still holding the lock: no other bench writes meanwhile
                on_done(result)
            return result
        except _Stop as stop:
            name = signal.Signals(stop.signum).name
            done = _count_done(fingerprints, runs)
            raise GridInterrupted(
                f"grid {spec.name} stopped by {name}: {done} of {len(cells)} cells done; the "
                f"running cells were stopped and no further cell started. Run the same "
                f"command again to resume", signal_name=name, done=done, total=len(cells)
            ) from None


def _count_done(fingerprints: Mapping[str, str], runs: Path) -> int:
    """The cells (id -> config fingerprint) whose run folder under ``runs`` is done."""
    return sum(cell_status(runs / cid, fp) == rundir.DONE for cid, fp in fingerprints.items())


def _execute(payloads, runs: Path, workers: int, threads: int, bar, on_cell,
             ray: RayOptions | None = None) -> int:
    failed = 0

    def finish(cell_id: str, status: str) -> None:
        nonlocal failed
        failed += status == "failed"
        if on_cell is not None:
            on_cell(cell_id, status)
        if bar is not None:
            bar.update(1)

    if ray is not None:
        from boomda import bench_ray

        def describe(text: str) -> None:
            if bar is not None:
                bar.set_postfix_str(f"{text}, failed {failed}", refresh=True)

        bench_ray.execute(payloads, runs, ray, workers=workers, threads=threads, finish=finish,
                          describe=describe)
        _describe(bar, running=0, left=0, failed=failed)
        return failed
    if workers == 1:
        _init_worker(threads)
        for i, (cell_id, config) in enumerate(payloads):
            _describe(bar, running=1, left=len(payloads) - i, failed=failed)
            finish(*run_cell(config, str(runs / cell_id))[:2])
        _describe(bar, running=0, left=0, failed=failed)
        return failed
    import multiprocessing as mp

    context = mp.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(threads, os.getpid()))
    try:
        queue = deque(payloads)
        pending: dict[Any, str] = {}
        while queue or pending:
            # only as many cells in the pool as workers: a stop leaves no queued cell behind
            while queue and len(pending) < workers:
                cell_id, config = queue.popleft()
                pending[pool.submit(run_cell, config, str(runs / cell_id))] = cell_id
            _describe(bar, running=len(pending), left=len(pending) + len(queue), failed=failed)
            finished, _ = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in finished:
                cell_id = pending.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    unfinished = len(pending) + len(queue) + 1
                    raise BoomdaError(
                        f"a worker process died (killed, or out of memory) while running "
                        f"{unfinished} unfinished cell(s); finished cells are kept. Run "
                        f"the same command again to resume."
                    ) from None
                finish(*outcome[:2])
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)
    _describe(bar, running=0, left=0, failed=failed)
    return failed


def describe_progress(running: int, left: int, failed: int) -> str:
    """The progress line's counts: the cells running, left (running included) and failed; once
    none is left, only the failed ones."""
    if left == 0:
        return f"all done, failed {failed}"
    return f"running {running}, left {left}, failed {failed}"


def _describe(bar, *, running: int, left: int, failed: int) -> None:
    if bar is not None:
        bar.set_postfix_str(describe_progress(running, left, failed), refresh=True)
