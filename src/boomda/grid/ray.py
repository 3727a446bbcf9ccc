"""Grids on a Ray cluster: ``boomda bench GRID --ray [ADDRESS]`` runs each cell as a Ray task.

Ray (Moritz et al., "Ray: A Distributed Framework for Emerging AI Applications", OSDI 2018;
https://www.ray.io) schedules each cell on a node with the cell's resources free
(:class:`RayOptions`: CPUs and GPUs per cell). The task runs
:func:`boomda.grid.cell.run_cell`, the function local workers run, so each cell writes its own run
folder under the grid folder, atomically, exactly as a local worker does: a cell already done
is skipped, an unfinished one continues from its checkpoint, a failed one gets ``error.txt``,
and ``boomda report`` reads the folder as it reads any grid. The grid folder must therefore be
on a file system every node mounts at the same path; the bench checks, for every cell a task
reports done, that its results are visible where the bench runs, and stops with one line when
they are not.

*Addresses.* No address (or ``local``) starts a Ray instance on this machine with ``workers``
CPUs, ended with the bench (in a process that called ``ray.init`` already, it means that
connection, which is kept). ``auto`` connects to the cluster ``ray start`` started on this
machine (or ``RAY_ADDRESS``); ``host:port`` to a head node's GCS port (6379 by default);
``ray://host:port`` through Ray Client (port 10001). An address is probed with a plain TCP
connection first, so that a wrong one fails in seconds rather than after Ray's own retries.

*Faults.* A task whose worker process or node dies is retried by Ray (``max_retries``); the
retry resumes the cell from its checkpoint. A cell still lost after that is counted as failed
and left unfinished (a warning names it): a rerun resumes it. SIGINT, SIGTERM or SIGHUP to the
bench cancel every outstanding task (their worker processes are killed, the cells stay
unfinished and resumable) and the bench ends with :class:`boomda.grid.GridInterrupted`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from boomda import rundir
from boomda.config import RunConfig
from boomda.errors import BoomdaError, ConfigError
from boomda.grid.cell import Payload, run_cell
from boomda.grid.executors import Describe, Executor, OnCell
from boomda.grid.signals import Stop
from boomda.grid.workers import init_worker

#: what to install for ``--ray``
INSTALL_HINT = "pip install 'boomda[ray]'"
#: seconds a TCP probe of a cluster address may take
PROBE_TIMEOUT = 5.0
#: seconds the bench waits for a cell's results to appear on the shared file system
VISIBLE_TIMEOUT = 30.0


@dataclass
class RayOptions:
    """How ``boomda bench`` uses Ray. ``address``: ``None``/``local`` (a local instance),
    ``auto``, ``host:port`` or ``ray://host:port``; ``cpus_per_cell`` and ``gpus_per_cell``: the
    Ray resources each cell's task holds (fractions allowed, e.g. 0.5 GPU: two cells share
    one); ``max_retries``: how often Ray reruns a task whose worker or node died."""

    address: str | None = None
    cpus_per_cell: float = 1.0
    gpus_per_cell: float = 0.0
    max_retries: int = 2

    def validate(self) -> None:
        if not self.cpus_per_cell > 0:
            raise ConfigError(f"--ray-cpus-per-cell must be positive, got {self.cpus_per_cell}")
        if not self.gpus_per_cell >= 0:
            raise ConfigError(f"--ray-gpus-per-cell must be 0 or more, got "
                              f"{self.gpus_per_cell}")
        if self.max_retries < 0:
            raise ConfigError(f"Ray max_retries must be 0 or more, got {self.max_retries}")
        if self.address is not None and self.address not in ("local", "auto"):
            parse_address(self.address)

    @property
    def local(self) -> bool:
        """Whether the bench starts its own Ray instance."""
        return self.address in (None, "local")

    def threads(self) -> int:
        """The default torch threads of a cell: its CPUs, at least 1."""
        return max(1, int(self.cpus_per_cell))


def parse_address(address: str) -> tuple[str, int]:
    """(host, port) of ``host:port`` or ``ray://host:port`` (``[v6]:port`` too); a
    :class:`ConfigError` naming ``--ray`` otherwise."""
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--ray {address!r}: expected auto, host:port (the head node's GCS "
                          f"port, e.g. 10.0.0.1:6379) or ray://host:port (Ray Client, e.g. "
                          f"ray://10.0.0.1:10001)")
    return host, int(port)


def import_ray() -> ModuleType:
    """The ``ray`` module, or a one-line :class:`BoomdaError` saying how to install it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report over the network
    try:
        import ray
    except ImportError:
        raise BoomdaError(f"--ray needs the ray package, which is not installed: "
                          f"{INSTALL_HINT}") from None
    return ray


def probe(address: str, timeout: float = PROBE_TIMEOUT) -> None:
    """Open (and close) a TCP connection to the cluster ``address``; a one-line
    :class:`BoomdaError` if it cannot be reached within ``timeout`` seconds."""
    host, port = parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError | socket.timeout):
            reason = f"no answer within {timeout:g} s"
        raise BoomdaError(f"--ray {address}: cannot reach the Ray cluster at {host}:{port} "
                          f"({reason}); is the head node started (ray start --head) and the "
                          f"port open?") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def connect(options: RayOptions, workers: int) -> Iterator[ModuleType]:
    """Start (``options.local``: with ``workers`` CPUs) or reach the Ray cluster for the
    duration of the block; ``ray`` is shut down (a local instance ended) at its end. Ray's own
    SIGTERM handler is replaced by the one that was set before, so that the bench's handling of
    stop signals stays in force. A process already connected to Ray (``ray.init`` called
    before) uses that connection, without an address, and stays connected."""
    ray = import_ray()
    address = options.address
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": logging.ERROR}
    if options.local:
        kwargs.update(address="local", num_cpus=workers)
    else:
        target = os.environ.get("RAY_ADDRESS") if address == "auto" else address
        if target and target not in ("auto", "local"):
            probe(target)
        kwargs["address"] = address
    if ray.is_initialized():  # e.g. a notebook that called ray.init: use that, keep it
        if not options.local:
            raise BoomdaError(f"--ray {address}: this process is already connected to Ray; "
                              f"give no address to use that connection")
        yield ray
        return
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if in_main else None
    try:
        ray.init(**kwargs)
    except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; one line says which
        where = "start a local Ray instance" if options.local else \
            f"connect to the Ray cluster at {address}"
        raise BoomdaError(f"--ray: cannot {where}: {_first_line(exc)}") from None
    finally:
        if in_main and previous is not None:
            signal.signal(signal.SIGTERM, previous)
    try:
        yield ray
    finally:
        ray.shutdown()


def check_resources(ray: ModuleType, options: RayOptions) -> None:
    """A :class:`ConfigError` if no node of the cluster has the resources of one cell (its tasks
    would wait forever)."""
    need = {"CPU": options.cpus_per_cell, "GPU": options.gpus_per_cell}
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    if any(all(res.get(k, 0.0) >= v for k, v in need.items() if v > 0) for res in nodes):
        return
    have = ", ".join(f"{res.get('CPU', 0):g} CPU {res.get('GPU', 0):g} GPU" for res in nodes)
    raise ConfigError(f"--ray-cpus-per-cell {options.cpus_per_cell:g} / --ray-gpus-per-cell "
                      f"{options.gpus_per_cell:g}: no node of the Ray cluster has that much "
                      f"(nodes: {have or 'none'})")


def check_devices(payloads: list[Payload], options: RayOptions) -> None:
    """A :class:`ConfigError` for a cell set to train on CUDA while its task holds no GPU."""
    if options.gpus_per_cell > 0:
        return
    for cell_id, config_dict in payloads:
        device = str((config_dict.get("train") or {}).get("device", "auto"))
        if device.startswith("cuda"):
            raise ConfigError(f"cell {cell_id}: train.device is {device!r}, but its Ray task "
                              f"holds no GPU; give --ray-gpus-per-cell (e.g. 1)")


def ray_cell(config_dict: dict[str, Any], folder: str, threads: int, cwd: str,
             gpus: float) -> tuple[str, str, float, str]:
    """The body of a cell's Ray task: :func:`boomda.grid.cell.run_cell` in the bench's working
    folder (when this node has it), with ``threads`` torch threads. A task holding no GPU
    (``gpus`` 0) sees none, so that ``device: auto`` trains on CPU there rather than on a GPU
    Ray gave to another task. Returns (cell id, status, seconds, host)."""
    if gpus == 0:  # Ray sets CUDA_VISIBLE_DEVICES only for tasks that hold GPUs
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    if os.path.isdir(cwd):  # relative data paths in the config mean what they meant there
        os.chdir(cwd)
    init_worker(threads)
    return (*run_cell(config_dict, folder), socket.gethostname())


def _wait_visible(folder: Path, fingerprint: str, status: str, host: str) -> None:
    """Wait until the results a task on ``host`` reported for ``folder`` are visible here."""
    wanted = rundir.DONE if status == "done" else rundir.FAILED
    deadline = time.monotonic() + VISIBLE_TIMEOUT
    while rundir.run_status(folder, fingerprint) != wanted:
        if time.monotonic() > deadline:
            raise BoomdaError(
                f"cell {folder.name} finished on host {host}, but its results are not in "
                f"{folder} on host {socket.gethostname()}: the grid folder (--out) must be on "
                f"a file system every Ray node mounts at the same path")
        time.sleep(0.2)


class RayExecutor(Executor):
    """Cells as Ray tasks (:class:`RayOptions`): ``workers`` CPUs for a local Ray instance,
    ``threads`` torch threads per cell. A stop (raised in the main thread while waiting)
    cancels the outstanding tasks and propagates."""

    def __init__(self, options: RayOptions, workers: int, threads: int,
                 stop: Stop | None = None) -> None:
        super().__init__(stop)
        self.options, self.workers, self.threads = options, workers, threads

    def run_cells(self, payloads: list[Payload], runs: Path, on_cell: OnCell,
                  describe: Describe) -> None:
        runs = runs.absolute()
        options = self.options
        check_devices(payloads, options)
        with connect(options, self.workers) as ray:
            check_resources(ray, options)
            task = ray.remote(ray_cell).options(num_cpus=options.cpus_per_cell,
                                                num_gpus=options.gpus_per_cell,
                                                max_retries=options.max_retries)
            cwd = os.getcwd()
            pending: dict[Any, tuple[str, str]] = {}
            try:
                for cell_id, config_dict in payloads:
                    config_dict = {**config_dict, "out": str(runs)}
                    fingerprint = rundir.config_fingerprint(
                        RunConfig.from_dict(config_dict, where=f"cell {cell_id}"))
                    ref = task.remote(config_dict, str(runs / cell_id), self.threads, cwd,
                                      options.gpus_per_cell)
                    pending[ref] = (cell_id, fingerprint)
                _collect(ray, pending, runs, on_cell, describe)
            except BaseException:
                _cancel(ray, pending)
                raise


def _cancel(ray: ModuleType, pending: dict[Any, tuple[str, str]]) -> None:
    """Cancel the tasks ``pending`` and wait (briefly) for their worker processes to end."""
    for ref in pending:
        try:
            ray.cancel(ref, force=True)
        except Exception:  # noqa: BLE001, S110 - finished meanwhile, or cluster gone
            pass
    # a forced cancel kills the task's worker process asynchronously; a cancelled task ends
    # once its process is gone: wait for that (briefly), so that no cell is still being
    # written when the bench returns
    try:
        ray.wait(list(pending), num_returns=len(pending), timeout=3.0)
    except Exception:  # noqa: BLE001, S110 - the cluster went away: nothing to wait for
        pass


def _collect(ray: ModuleType, pending: dict[Any, tuple[str, str]], runs: Path,
             on_cell: OnCell, describe: Describe) -> None:
    """Wait for the tasks ``pending`` (ref -> (cell id, fingerprint)), removing each as it
    ends."""
    lost = 0
    while pending:
        describe(f"on ray {len(pending)}, lost {lost}")
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        for ref in ready:
            cell_id, fingerprint = pending.pop(ref)
            try:
                _, status, _, host = ray.get(ref)
            except ray.exceptions.RayError as exc:
                lost += 1
                warnings.warn(f"cell {cell_id}: its Ray task was lost ({_first_line(exc)}); "
                              f"the cell is left unfinished and a rerun resumes it",
                              stacklevel=2)
                on_cell(cell_id, "failed")
                continue
            _wait_visible(runs / cell_id, fingerprint, status, host)
            on_cell(cell_id, status)
