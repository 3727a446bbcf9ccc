"""Executors: what runs a grid's cells. :class:`Executor` is the interface, :class:`LocalExecutor`
runs cells in this process or in local worker processes, and
:class:`boomda.grid.ray.RayExecutor` runs them as tasks on a Ray cluster.

Every executor runs each cell with :func:`boomda.grid.cell.run_cell` (which writes the cell's
run folder), reports each cell that ends through ``on_cell(cell id, status)`` and its progress
through ``describe(text)``, and honours the grid's :class:`~boomda.grid.signals.Stop`: once it is
set, no further cell starts, the running ones are abandoned (they stay unfinished, resumable)
and :class:`~boomda.grid.signals.Stopped` propagates.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from boomda.errors import BoomdaError
from boomda.grid.cell import Payload, run_cell
from boomda.grid.signals import Stop
from boomda.grid.workers import init_worker

#: called as each cell ends: (cell id, ``done`` or ``failed``)
OnCell = Callable[[str, str], None]
#: called with the executor's progress, e.g. ``running 2, left 5``
Describe = Callable[[str], None]


def _quiet(text: str) -> None:
    """A ``describe`` that shows nothing."""


class Executor(ABC):
    """Runs cells: :meth:`execute` with the shared stop handling around :meth:`run_cells`."""

    def __init__(self, stop: Stop | None = None) -> None:
        self.stop = stop if stop is not None else Stop()

    def execute(self, payloads: Sequence[Payload], runs: Path, on_cell: OnCell,
                describe: Describe = _quiet) -> None:
        """Run the cells ``payloads``, each writing ``runs/<cell id>``; ``on_cell`` as each
        ends, ``describe`` with the progress. Raises
        :class:`~boomda.grid.signals.Stopped` when the stop is set (before, during or by the
        end), whatever the implementation caught in between."""
        self.stop.check()
        try:
            self.run_cells(list(payloads), Path(runs), on_cell, describe)
        except KeyboardInterrupt as interrupt:
            self.stop.reraise(interrupt)
        self.stop.check()

    @abstractmethod
    def run_cells(self, payloads: list[Payload], runs: Path, on_cell: OnCell,
                  describe: Describe) -> None:
        """Run every cell of ``payloads``; on any exception (the stop's included), abandon the
        running cells before it propagates."""


class LocalExecutor(Executor):
    """Cells on this machine: in this process when ``workers`` is 1 (a stop abandons the cell
    being trained), otherwise in ``workers`` processes (``spawn``) that end with this one and
    leave SIGINT to it (:mod:`boomda.grid.workers`); ``threads`` torch threads each. When a
    worker process dies the cells stop with a one-line :class:`~boomda.errors.BoomdaError`."""

    def __init__(self, workers: int, threads: int, stop: Stop | None = None) -> None:
        super().__init__(stop)
        self.workers, self.threads = workers, threads

    def run_cells(self, payloads: list[Payload], runs: Path, on_cell: OnCell,
                  describe: Describe) -> None:
        if self.workers == 1:
            init_worker(self.threads)
            for i, (cell_id, config) in enumerate(payloads):
                describe(f"running 1, left {len(payloads) - i}")
                on_cell(*run_cell(config, str(runs / cell_id))[:2])
            return
        import multiprocessing as mp

        pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                   initializer=init_worker, initargs=(self.threads, os.getpid()))
        try:
            queue = deque(payloads)
            pending: dict[Future, str] = {}
            while queue or pending:
                self.stop.check()
                # only as many cells in the pool as workers: a stop leaves no queued cell behind
                while queue and len(pending) < self.workers:
                    cell_id, config = queue.popleft()
                    pending[pool.submit(run_cell, config, str(runs / cell_id))] = cell_id
                describe(f"running {len(pending)}, left {len(pending) + len(queue)}")
                finished, _ = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                for future in finished:
                    pending.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        unfinished = len(pending) + len(queue) + 1
                        raise BoomdaError(
                            f"a worker process died (killed, or out of memory) while running "
                            f"{unfinished} unfinished cell(s); finished cells are kept. Run "
                            f"the same command again to resume."
                        ) from None
                    on_cell(*outcome[:2])
        except BaseException:
            stop_pool(pool)
            raise
        pool.shutdown(wait=True)


def stop_pool(pool: ProcessPoolExecutor) -> None:
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
