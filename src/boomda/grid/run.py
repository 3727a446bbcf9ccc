"""Running a grid: :func:`run_grid` locks the folder, picks the cells that are not done, runs
them with an executor (:mod:`boomda.grid.executors`, :mod:`boomda.grid.ray`) under the stop
signals (:mod:`boomda.grid.signals`), shows the progress and counts the result."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from boomda import rundir
from boomda.config import load_yaml
from boomda.errors import BoomdaError, ConfigError
from boomda.grid.cell import cell_payload, cell_status
from boomda.grid.executors import Executor, LocalExecutor
from boomda.grid.lock import grid_lock
from boomda.grid.signals import GridInterrupted, Stop, Stopped, stop_on_signals
from boomda.grid.spec import GridSpec

if TYPE_CHECKING:
    from boomda.grid.ray import RayOptions


@dataclass
class BenchResult:
    """A finished :func:`run_grid`: the grid ``folder``, its cells ``done`` (all runs, earlier
    ones included), those ``failed`` this time, how many it ``ran`` and its wall ``seconds``."""

    folder: Path
    done: int
    failed: int
    ran: int
    seconds: float


def describe_progress(running: int, left: int, failed: int) -> str:
    """The progress line's counts: the cells running, left (running included) and failed; once
    none is left, only the failed ones."""
    if left == 0:
        return f"all done, failed {failed}"
    return f"running {running}, left {left}, failed {failed}"


class Progress:
    """The progress of cells run by an executor: it counts the failed ones and, with a bar
    (``total`` cells, ``initial`` done before; ``desc`` its label), shows them on stderr."""

    def __init__(self, total: int, initial: int, desc: str, unit: str = "cell", *,
                 show: bool = True,
                 on_cell: Callable[[str, str], None] | None = None) -> None:
        self.failed = 0
        self._on_cell = on_cell
        self._bar = None
        if show:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit,
                             file=sys.stderr, dynamic_ncols=True)

    def cell(self, cell_id: str, status: str) -> None:
        """A cell ended with ``status`` (``done`` or ``failed``)."""
        self.failed += status == "failed"
        if self._on_cell is not None:
            self._on_cell(cell_id, status)
        if self._bar is not None:
            self._bar.update(1)

    def describe(self, text: str) -> None:
        """The executor's state, ``text``, followed by the failed count."""
        if self._bar is not None:
            self._bar.set_postfix_str(f"{text}, failed {self.failed}", refresh=True)

    def finish(self) -> None:
        """Show that every cell ended (with the failed count)."""
        if self._bar is not None:
            self._bar.set_postfix_str(describe_progress(0, 0, self.failed), refresh=True)

    def close(self) -> None:
        """Close the bar (as it stands)."""
        if self._bar is not None:
            self._bar.close()


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


def _executor(workers: int, threads: int, ray: RayOptions | None, stop: Stop) -> Executor:
    if ray is None:
        return LocalExecutor(workers, threads, stop)
    from boomda.grid.ray import RayExecutor

    return RayExecutor(ray, workers, threads, stop)


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
    folder is locked for the duration (:func:`~boomda.grid.lock.grid_lock`;
    :class:`~boomda.grid.lock.GridLocked` if another bench holds it). When a worker process
    dies the grid stops with :class:`BoomdaError`; SIGINT, SIGTERM or SIGHUP stop it with
    :class:`GridInterrupted`. Rerunning resumes it. ``on_cell(cell id, status)`` as each cell
    ends; ``on_done(result)`` runs at the end while the folder is still locked (``boomda
    bench`` prints its summary and report there), so no other bench writes to it meanwhile.

    ``ray``: run the cells as tasks on a Ray cluster instead (:mod:`boomda.grid.ray`;
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
    stop = Stop()
    with grid_lock(folder), stop_on_signals(stop):
        start = time.perf_counter()
        try:
            prepare_folder(spec, folder)
            runs.mkdir(exist_ok=True)
            payloads = [(cid, config_dict) for cid, (config_dict, fp) in prepared.items()
                        if cell_status(runs / cid, fp) != rundir.DONE]
            shown = Progress(len(cells), len(cells) - len(payloads), spec.name, show=progress,
                             on_cell=on_cell)
            try:
                if payloads:
                    _executor(workers, threads, ray, stop).execute(
                        payloads, runs, shown.cell, shown.describe)
                    shown.finish()
            finally:
                shown.close()
            done = _count_done(fingerprints, runs)
            result = BenchResult(folder, done, shown.failed, len(payloads),
                                 time.perf_counter() - start)
            if report:
                from boomda.report import write_report

                write_report(folder)
            if on_done is not None:  # still holding the lock: no other bench writes meanwhile
                on_done(result)
            return result
        except Stopped as stopped:
            name = signal.Signals(stopped.signum).name
            done = _count_done(fingerprints, runs)
            raise GridInterrupted(
                f"grid {spec.name} stopped by {name}: {done} of {len(cells)} cells done; the "
                f"running cells were stopped and no further cell started. Run the same "
                f"command again to resume", signal_name=name, done=done, total=len(cells)
            ) from None


def _count_done(fingerprints: Mapping[str, str], runs: Path) -> int:
    """The cells (id -> config fingerprint) whose run folder under ``runs`` is done."""
    return sum(cell_status(runs / cid, fp) == rundir.DONE for cid, fp in fingerprints.items())
