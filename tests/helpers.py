"""Scaffolding shared by the test modules: small grids, the comparable part of a grid's
results.csv, and processes found in /proc.

A process is named by its pid together with its start time (``/proc/<pid>/stat`` field 22,
see proc(5)): a pid freed by a process that ended may be given to a new one, the pair is not.
Signals go through a pidfd (pidfd_open(2)) opened on a pid whose start time still matches, so
that a signal never reaches a process that merely inherited a pid.
"""

from __future__ import annotations

import csv
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: results.csv columns that measure time or name a particular execution
VOLATILE_COLUMNS = ("seconds", "run.", "started", "environment.", "resumed_at_step")


def tiny_grid(name: str = "tiny", *, modalities: tuple[str, ...] = ("fou", "kar"),
              shifts: dict[str, str] | None = None, methods: tuple[str, ...] = ("dt", "boomda"),
              subsets: list[list[str]] | str | None = None, seeds: tuple[int, ...] = (0, 1),
              epochs: int = 2, dim: int = 8, hidden: int = 16, **changes: Any) -> dict:
    """A grid of small networks on the embedded data, as a ``GridSpec.from_dict`` mapping:
    ``shifts`` defaults to noise at SNR 1 on ``fou``, ``subsets`` to all of ``modalities`` at
    once; ``changes`` replace top-level keys."""
    raw = {
        "name": name,
        "base": {"data": {"modalities": list(modalities),
                          "shifts": dict(shifts) if shifts is not None
                          else {"fou": "noise:snr=1"}},
                 "train": {"epochs": epochs, "dim": dim, "hidden": hidden}},
        "methods": list(methods),
        "subsets": [list(modalities)] if subsets is None else subsets,
        "seeds": list(seeds),
    }
    raw.update(changes)
    return raw


def comparable(folder: Path) -> dict[str, dict[str, str]]:
    """A grid folder's results.csv by cell id, less the columns that differ between two
    executions of the same cells (times, run ids, machine)."""
    with (folder / "results.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {row["cell_id"]: {k: v for k, v in row.items()
                             if not any(part in k for part in VOLATILE_COLUMNS)}
            for row in rows}


# --------------------------------------------------------------------------- processes


HAS_PROC = Path("/proc/self/stat").is_file()


@dataclass(frozen=True)
class Proc:
    """One process as /proc showed it: (``pid``, ``start``) names it for good."""

    pid: int
    ppid: int
    sid: int
    state: str
    start: int
    cmdline: bytes

    @property
    def live(self) -> bool:
        """Whether it has not ended (a zombie, ended but not yet reaped, counts as ended)."""
        return self.state not in ("Z", "X", "x")


def read_proc(pid: int) -> Proc | None:
    """Process ``pid`` now, or None when no such process exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return Proc(pid=pid, ppid=int(fields[1]), sid=int(fields[3]), state=fields[0],
                start=int(fields[19]), cmdline=cmdline)


def processes() -> list[Proc]:
    """Every process now."""
    found = (read_proc(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit())
    return [p for p in found if p is not None]


def same_process(proc: Proc) -> Proc | None:
    """``proc`` as it is now, or None when it has ended (its pid free or given to another)."""
    now = read_proc(proc.pid)
    return now if now is not None and now.start == proc.start else None


def is_alive(proc: Proc) -> bool:
    """Whether ``proc`` (that very process, not a later holder of its pid) runs still."""
    now = same_process(proc)
    return now is not None and now.live


def send_signal(proc: Proc, signum: int = signal.SIGKILL) -> bool:
    """Send ``signum`` to ``proc`` if it still exists; whether it was sent."""
    try:
        fd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        return False
    try:
        if same_process(proc) is None:  # the pid now names another process
            return False
        signal.pidfd_send_signal(fd, signum)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)


def session(sid: int) -> list[Proc]:
    """The live processes of session ``sid``."""
    return [p for p in processes() if p.sid == sid and p.live]


def spawned_workers(procs: list[Proc]) -> list[Proc]:
    """Those of ``procs`` that are multiprocessing's spawned workers."""
    return [p for p in procs if b"spawn_main" in p.cmdline]


def children(parent: Proc) -> list[Proc]:
    """The live children of ``parent`` (none once it has ended)."""
    if same_process(parent) is None:
        return []
    return [p for p in processes() if p.ppid == parent.pid and p.live and p.start >= parent.start]


def descendants(root: Proc) -> list[Proc]:
    """The live children of ``root``, their children, and so on."""
    table = processes()
    if not any(p.pid == root.pid and p.start == root.start for p in table):
        return []
    found, frontier = [], [root]
    while frontier:
        kids = [p for p in table for parent in frontier
                if p.ppid == parent.pid and p.start >= parent.start and p.live]
        found += kids
        frontier = kids
    return found


def this_process() -> Proc:
    """The test process itself."""
    proc = read_proc(os.getpid())
    assert proc is not None
    return proc


def wait_until(condition: Callable[[], bool], timeout: float = 120.0,
               every: float = 0.02) -> bool:
    """Poll ``condition`` every ``every`` s until it holds (True) or ``timeout`` s have passed
    (False): ``timeout`` guards against a hang only and is never what a test measures."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)
    return True
