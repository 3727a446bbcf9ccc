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
:mod:`boomda.grid.lock`): a second bench on the folder fails at once with a one-line
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
a Ray cluster instead (:mod:`boomda.grid.ray`), through the same :func:`run_cell`, the same
statuses, lock and stop signals.

*Modules.* :mod:`~boomda.grid.spec` (the grid file, its cells and their ids),
:mod:`~boomda.grid.cell` (a cell's status and :func:`run_cell`), :mod:`~boomda.grid.lock`,
:mod:`~boomda.grid.signals` (the stop on SIGINT, SIGTERM, SIGHUP), :mod:`~boomda.grid.workers`
(a worker process's set-up), :mod:`~boomda.grid.executors` (the :class:`Executor` interface and
the local one), :mod:`~boomda.grid.ray` (the Ray one) and :mod:`~boomda.grid.run` (``run_grid``,
its progress line and result). Each imports only modules listed before it (``ray`` after
``executors``); this package re-exports their public names.
"""

from boomda.grid.cell import Cell, Payload, cell_payload, cell_status, run_cell
from boomda.grid.executors import Executor, LocalExecutor
from boomda.grid.lock import LOCK, GridLocked, grid_lock
from boomda.grid.ray import RayExecutor, RayOptions
from boomda.grid.run import BenchResult, Progress, describe_progress, prepare_folder, run_grid
from boomda.grid.signals import GridInterrupted, Stop, Stopped, stop_on_signals
from boomda.grid.spec import PRESET, GridSpec, point_label, safe_name

__all__ = [
    "LOCK", "PRESET", "BenchResult", "Cell", "Executor", "GridInterrupted", "GridLocked",
    "GridSpec", "LocalExecutor", "Payload", "Progress", "RayExecutor", "RayOptions", "Stop",
    "Stopped", "cell_payload", "cell_status", "describe_progress", "grid_lock", "point_label",
    "prepare_folder", "run_cell", "run_grid", "safe_name", "stop_on_signals",
]
