"""Grids of runs: methods x modality subsets x seeds on one data set, in parallel and resumable.

A grid folder holds ``grid.yaml`` (the resolved grid) and ``runs/<cell>/``, one run folder per
cell (see :func:`boomda.run.run_experiment`). A cell is finished exactly when its
``results.json`` exists; that file is written last and atomically, so a cell interrupted at any
moment is simply unfinished and is run again, from scratch, by the next ``boomda bench`` on the
same folder. A cell that raised an error gets ``error.txt`` instead and is retried on a rerun.
"""

from __future__ import annotations

import copy
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from itertools import combinations, product
from pathlib import Path
from typing import Any

import yaml

from boomda.config import RunConfig, coerce, load_yaml_mapping
from boomda.errors import BoomdaError, ConfigError

RESULTS = "results.json"
ERROR = "error.txt"


@dataclass
class GridSpec:
    """What a grid runs. ``base``: a run config (``data``/``train`` sections) shared by all cells;
    ``methods``; ``modalities``: the modalities subsets are drawn from (default: the base's);
    ``subsets``: ``all`` (every combination of two or more) or a list of subsets;
    ``seeds``; ``method_overrides``: per-method ``train`` settings (e.g. options).

    ``tasks``: a benchmark suite instead of one data set: task name -> ``data`` settings that
    replace the base's (dataset, modalities, shifts, ...), or the path of a YAML file holding
    such a ``tasks:`` mapping (relative to the grid file). Each task runs on all its modalities
    (``subsets`` does not apply). ``sweep``: ``train`` option -> list of values; every
    combination is a grid point, run for every method, task or subset, and seed (the points
    among which ``boomda bench --select`` chooses); or a list of such mappings of single
    values, one per point, when the options are not varied independently. ``sweep_methods``:
    the methods the sweep applies to (default: all); the others run once with the base settings.
    """

    name: str = "grid"
    base: dict[str, Any] = field(default_factory=dict)
    methods: list[str] = field(default_factory=lambda: ["boomda"])
    modalities: list[str] | None = None
    subsets: str | list[list[str]] = "all"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] | str | None = None
    sweep: dict[str, list[Any]] | list[dict[str, Any]] = field(default_factory=dict)
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
        allowed = set(cls.__dataclass_fields__)
        unknown = set(raw) - allowed
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}; allowed: "
                              f"{', '.join(sorted(allowed))}")
        spec = cls(**{k: copy.deepcopy(v) for k, v in raw.items()})
        spec.validate(where)
        return spec

    def points(self, method: str) -> list[dict[str, Any]]:
        """The sweep's grid points for ``method``: one dict of train settings per combination
        (a single empty point without a sweep, or for a method the sweep does not apply to)."""
        excluded = self.sweep_methods is not None and method not in self.sweep_methods
        if not self.sweep or excluded:
            return [{}]
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
        from boomda.methods import METHODS

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
        if isinstance(self.sweep, list):
            if not all(isinstance(point, Mapping) and point for point in self.sweep):
                raise ConfigError(f"{where}.sweep: a list of points must hold non-empty "
                                  f"mappings of train option -> value")
            keys = {k for point in self.sweep for k in point}
        elif isinstance(self.sweep, Mapping) and all(isinstance(v, list) and v
                                                      for v in self.sweep.values()):
            keys = set(self.sweep)
        else:
            raise ConfigError(f"{where}.sweep: expected a mapping of train option -> non-empty "
                              f"list of values, or a list of points")
        for key in sorted(keys):
            if not hasattr(base.train, key) or key in ("method", "seed"):
                raise ConfigError(f"{where}.sweep: {key!r} is not a train option that can be "
                                  f"swept")
        for cell in self.cells():
            cell.config.train.validate(n_modalities=len(cell.modalities))
        if not base.data.modalities and self.modalities is None:
            raise ConfigError(f"{where}: give modalities (or base.data.modalities)")

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
            merged.update(copy.deepcopy(data))
            raw["data"] = merged
        return RunConfig.from_dict(raw, where="grid.base" if task is None else f"grid.tasks.{task}")

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
            if not hasattr(config.train, key):
                raise ConfigError(f"grid.method_overrides.{method}: unknown option {key!r}")
            setattr(config.train, key, copy.deepcopy(value))
        for key, value in point.items():
            setattr(config.train, key, coerce(value, getattr(config.train, key),
                                              f"grid.sweep.{key}"))
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


def cell_status(folder: Path) -> str:
    """``done`` (results.json), ``failed`` (error.txt) or ``missing``."""
    if (folder / RESULTS).is_file():
        return "done"
    if (folder / ERROR).is_file():
        return "failed"
    return "missing"


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_cell(config_dict: dict[str, Any], folder: str) -> tuple[str, str, float]:
    """Run one cell in a worker process; returns (cell id, status, seconds)."""
    from boomda.atomic import atomic_write_text
    from boomda.run import run_experiment

    path = Path(folder)
    start = time.perf_counter()
    if path.exists():  # leftovers of an interrupted or failed attempt: start clean
        shutil.rmtree(path)
    config = RunConfig.from_dict(config_dict, where=f"cell {path.name}")
    try:
        run_experiment(config, progress=False)
        return path.name, "done", time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - a failed cell is recorded, the grid goes on
        path.mkdir(parents=True, exist_ok=True)
        if not (path / "config.yaml").exists():  # failed before the run wrote its config
            atomic_write_text(path / "config.yaml", yaml.safe_dump(config_dict, sort_keys=False))
        message = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        atomic_write_text(path / ERROR, message + "\n\n" + traceback.format_exc())
        return path.name, "failed", time.perf_counter() - start


@dataclass
class BenchResult:
    folder: Path
    done: int
    failed: int
    ran: int
    seconds: float


def prepare_folder(spec: GridSpec, folder: Path) -> None:
    """Create the grid folder, or check that an existing one holds the same grid."""
    folder.mkdir(parents=True, exist_ok=True)
    grid_file = folder / "grid.yaml"
    wanted = spec.to_dict()
    if grid_file.exists():
        existing = yaml.safe_load(grid_file.read_text()) or {}
        if existing != wanted:
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
) -> BenchResult:
    """Run every unfinished cell of ``spec`` under ``folder`` with ``workers`` processes.

    ``threads``: torch threads per worker (default: the CPU count divided by ``workers``, at
    least 1). Finished cells are skipped; failed and missing ones are run. When a worker process
    dies the grid stops with :class:`BoomdaError`; rerunning resumes it.
    """
    folder = Path(folder)
    if workers < 1:
        raise ConfigError(f"option workers must be at least 1, got {workers}")
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    prepare_folder(spec, folder)
    runs = folder / "runs"
    runs.mkdir(exist_ok=True)
    cells = spec.cells()
    todo = [c for c in cells if cell_status(runs / c.id) != "done"]
    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc=spec.name,
                   unit="cell", file=sys.stderr, dynamic_ncols=True)
    failed = 0
    payloads = []
    for cell in todo:
        config = cell.config
        config.out = str(runs)
        payloads.append((cell.id, config.to_dict()))
    try:
        if todo:
            failed = _execute(payloads, runs, workers, threads, bar, on_cell)
    finally:
        if bar is not None:
            bar.close()
    done = sum(cell_status(runs / c.id) == "done" for c in cells)
    result = BenchResult(folder, done, failed, len(todo), time.perf_counter() - start)
    if report:
        from boomda.report import write_report

        write_report(folder)
    return result


def _execute(payloads, runs: Path, workers: int, threads: int, bar, on_cell) -> int:
    failed = 0

    def finish(cell_id: str, status: str) -> None:
        nonlocal failed
        failed += status == "failed"
        if on_cell is not None:
            on_cell(cell_id, status)
        if bar is not None:
            bar.update(1)

    if workers == 1:
        _init_worker(threads)
        for i, (cell_id, config) in enumerate(payloads):
            _describe(bar, running=1, left=len(payloads) - i, failed=failed)
            finish(*run_cell(config, str(runs / cell_id))[:2])
        return failed
    import multiprocessing as mp

    context = mp.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(threads,)) as pool:
        pending = {pool.submit(run_cell, config, str(runs / cell_id)): cell_id
                   for cell_id, config in payloads}
        left = len(pending)
        while pending:
            _describe(bar, running=min(workers, left), left=left, failed=failed)
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                cell_id = pending.pop(future)
                try:
                    finish(*future.result()[:2])
                except BrokenProcessPool:
                    unfinished = [*pending.values(), cell_id]
                    raise BoomdaError(
                        f"a worker process died (killed, or out of memory) while running "
                        f"{len(unfinished)} unfinished cell(s); finished cells are kept. Run "
                        f"the same command again to resume."
                    ) from None
                left -= 1
    return failed


def _describe(bar, *, running: int, left: int, failed: int) -> None:
    if bar is not None:
        bar.set_postfix_str(f"running {running}, left {left}, failed {failed}", refresh=True)
