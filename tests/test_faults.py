"""Grids under faults: the grid lock, stop signals, killed main and worker processes.

The subprocess tests run ``python -m boomda bench`` in a session of its own, so that every
process it started (workers, the resource tracker) can be found in /proc by its session id,
and Ctrl-C in a terminal can be imitated by SIGINT to its process group. They kill processes
and are in the integration tier.
"""

import json
import multiprocessing as mp
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from boomda import lock, rundir
from boomda.grid import (
    LOCK,
    GridInterrupted,
    GridLocked,
    GridSpec,
    cell_payload,
    cell_status,
    grid_lock,
    run_grid,
)
from tests.conftest import sigterm_in_cell
from tests.helpers import (
    HAS_PROC,
    Proc,
    comparable,
    read_proc,
    send_signal,
    session,
    spawned_workers,
    tiny_grid,
    wait_until,
)

needs_proc = pytest.mark.skipif(not HAS_PROC, reason="needs /proc to find the bench's processes")
needs_posix = pytest.mark.skipif(os.name != "posix", reason="POSIX signals and sessions")


def _grid(seeds=(0, 1, 2), epochs=3) -> dict:
    return tiny_grid("faults", seeds=seeds, epochs=epochs)


def _cell_ids(raw: dict) -> set[str]:
    return {c.id for c in GridSpec.from_dict(raw).cells()}


# --------------------------------------------------------------------------- helpers


def _hold_lock(folder: str, ready, release) -> None:
    with grid_lock(folder):
        ready.set()
        release.wait(HANG)


def _lock_holder(folder: Path):
    """A child process holding grid_lock(folder); returns (process, release event)."""
    context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    ready, release = context.Event(), context.Event()
    child = context.Process(target=_hold_lock, args=(str(folder), ready, release), daemon=True)
    child.start()
    assert ready.wait(60), "the child did not take the lock"
    return child, release


#: a guard against a hang only: every wait below ends on an event long before it
HANG = 120.0


class Bench:
    """A ``boomda bench`` process in a session of its own, and the processes of that session:
    its workers and multiprocessing's resource tracker."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        leader = read_proc(proc.pid)
        assert leader is not None, "the bench ended before it could be looked at"
        self.leader = leader

    def session(self) -> list[Proc]:
        """The live processes of the bench's session (a new session leader that took over the
        bench's pid after it ended is not one of them)."""
        return [p for p in session(self.leader.pid)
                if p.pid != self.leader.pid or p.start == self.leader.start]

    def workers(self) -> list[Proc]:
        return spawned_workers(self.session())

    def session_gone(self) -> list[Proc]:
        """Wait until no process of the session is left; those left when it timed out."""
        wait_until(lambda: not self.session(), HANG)
        return self.session()


def _default_sigint() -> None:  # a shell may start background jobs with SIGINT ignored
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_bench(grid: Path, out: Path) -> Bench:
    command = [sys.executable, "-m", "boomda", "bench", str(grid), "--out", str(out),
               "--workers", "2", "--threads", "1", "--no-progress"]
    return Bench(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, start_new_session=True, preexec_fn=_default_sigint))


def _done(out: Path) -> set[str]:
    return {p.parent.name for p in out.glob("runs/*/results.json")}


def _wait_for(predicate, proc: subprocess.Popen) -> bool:
    """Wait until ``predicate()`` holds (True) or ``proc`` has ended (False)."""
    wait_until(lambda: proc.poll() is not None or predicate(), HANG)
    return predicate()


def _assert_complete(out: Path, cells: set[str]) -> None:
    assert {p.name for p in (out / "runs").iterdir()} == cells  # every cell exactly once
    statuses = {c: cell_status(out / "runs" / c) for c in cells}
    assert set(statuses.values()) == {rundir.DONE}, statuses
    litter = [p for p in out.rglob("*") if p.name in (rundir.ERROR, rundir.CHECKPOINT)
              or p.suffix in (".partial", ".tmp")]
    assert litter == []


# --------------------------------------------------------------------------- the lock


def test_a_locked_folder_is_refused_at_once_naming_the_holder(tmp_path):
    """Refused while the holder still holds the lock (it lets go only when told): the grid
    did not wait for the lock."""
    folder = tmp_path / "g"
    spec = GridSpec.from_dict(_grid(seeds=[0]))
    holder, release = _lock_holder(folder)
    try:
        with pytest.raises(GridLocked) as caught:
            run_grid(spec, folder, workers=1, progress=False, report=False)
        assert holder.is_alive() and not release.is_set()
        message = str(caught.value)
        assert "\n" not in message
        assert re.fullmatch(rf"grid folder {re.escape(str(folder))} is in use by boomda bench "
                            rf"\(pid {holder.pid} on host \S+, since [-0-9: ]+\); wait for it "
                            rf"or stop it", message), message
        assert not (folder / "runs").exists() and not (folder / "grid.yaml").exists()
    finally:
        release.set()
        holder.join(10)
    assert holder.exitcode == 0
    assert (folder / LOCK).read_text() == ""  # a clean release leaves no holder named
    with grid_lock(folder):
        pass


@needs_posix
def test_the_cli_refuses_a_folder_in_use_in_one_line(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(_grid(seeds=[0])))
    folder = tmp_path / "g"
    holder, release = _lock_holder(folder)
    try:
        proc = subprocess.run([sys.executable, "-m", "boomda", "bench", str(grid), "--out",
                               str(folder), "--no-progress"], capture_output=True, text=True,
                              timeout=60)
    finally:
        release.set()
        holder.join(10)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("boomda: error: grid folder"), proc.stderr
    assert f"in use by boomda bench (pid {holder.pid} on host" in lines[0]
    assert not (folder / "runs").exists()


@needs_posix
@pytest.mark.integration
def test_the_lock_of_a_killed_holder_is_taken_over(tmp_path, capfd):
    folder = tmp_path / "g"
    holder, _ = _lock_holder(folder)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    assert str(holder.pid) in (folder / LOCK).read_text()  # it never released it
    with grid_lock(folder):
        assert f'"pid": {os.getpid()}' in (folder / LOCK).read_text()
    err = capfd.readouterr().err
    assert f"taking over the lock of pid {holder.pid}" in err
    assert "no longer running" in err and len(err.strip().splitlines()) == 1


def test_the_pid_file_lock_without_fcntl(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(lock, "fcntl", None)
    folder = tmp_path / "g"
    with grid_lock(folder):
        assert f'"pid": {os.getpid()}' in (folder / LOCK).read_text()
        with pytest.raises(GridLocked, match=rf"in use by boomda bench \(pid {os.getpid()} "):
            with grid_lock(folder):
                pass
    assert not (folder / LOCK).exists()
    # the pid file of a process that has ended is taken over
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    dead = int(ended.stdout)
    import socket

    (folder / LOCK).write_text(f'{{"pid": {dead}, "host": "{socket.gethostname()}", '
                                     f'"since": "2026-01-01 00:00:00"}}\n')
    with grid_lock(folder):
        pass
    assert f"taking over the lock of pid {dead}" in capsys.readouterr().err
    assert not (folder / LOCK).exists()


# --------------------------------------------------------------------------- stop signals


@needs_posix
def test_sigterm_in_process_abandons_the_cell_and_a_rerun_resumes_it(tmp_path, monkeypatch):
    """workers == 1: the signal stops the cell being trained; the next does not start; the
    rerun resumes the abandoned cell from its checkpoint with the uninterrupted result."""
    raw = _grid(seeds=[0, 1, 2], epochs=3)
    raw["methods"] = ["dt"]
    victim = "dt__fou+kar__seed1"
    sigterm_in_cell(monkeypatch, victim, 40)  # past the first epoch's checkpoint
    previous = signal.getsignal(signal.SIGTERM)
    folder = tmp_path / "g"
    with pytest.raises(GridInterrupted) as caught:
        run_grid(GridSpec.from_dict(raw), folder, workers=1, threads=1, progress=False,
                 report=False)
    assert signal.getsignal(signal.SIGTERM) is previous  # the handler is restored
    message = str(caught.value)
    assert "\n" not in message and "stopped by SIGTERM: 1 of 3 cells done" in message
    assert "again to resume" in message
    runs = folder / "runs"
    assert cell_status(runs / victim) == rundir.UNFINISHED
    assert (runs / victim / rundir.CHECKPOINT).is_file()
    assert not (runs / "dt__fou+kar__seed2").exists()  # the next cell never started
    monkeypatch.undo()  # runs are left alone again

    ran = []
    result = run_grid(GridSpec.from_dict(raw), folder, workers=1, threads=1, progress=False,
                      report=False, on_cell=lambda cell, status: ran.append(cell))
    assert ran == [victim, "dt__fou+kar__seed2"] and result.done == 3
    resumed = json.loads((runs / victim / rundir.RESULTS).read_text())
    assert resumed["resumed_at_step"] is not None
    reference = tmp_path / "reference"
    raw_one = dict(raw, seeds=[1])
    run_grid(GridSpec.from_dict(raw_one), reference, workers=1, threads=1, progress=False,
             report=False)
    uninterrupted = json.loads((reference / "runs" / victim / rundir.RESULTS).read_text())
    assert resumed["target"] == uninterrupted["target"]
    assert resumed["validators"] == uninterrupted["validators"]
    assert (runs / victim / rundir.METRICS).read_text().count("\n") == uninterrupted["steps"]


def test_stale_and_foreign_cells_are_rerun(tmp_path):
    raw = _grid(seeds=[0], epochs=1)
    raw["methods"] = ["dt"]
    folder = tmp_path / "g"
    run_grid(GridSpec.from_dict(raw), folder, workers=1, threads=1, progress=False,
             report=False)
    cell = folder / "runs" / "dt__fou+kar__seed0"
    spec = GridSpec.from_dict(raw)
    fingerprint = cell_payload(spec.cells()[0], folder / "runs")[1]
    assert cell_status(cell, fingerprint) == rundir.DONE
    # the cell's results.json from another run than its config.yaml: stale, run again
    config = yaml.safe_load((cell / rundir.CONFIG).read_text())
    config["run"]["id"] = "another-run"
    (cell / rundir.CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    assert cell_status(cell, fingerprint) == rundir.STALE
    again = run_grid(spec, folder, workers=1, threads=1, progress=False, report=False)
    assert again.ran == 1 and cell_status(cell, fingerprint) == rundir.DONE
    # a finished run of another config (its fingerprint differs): stale, run again
    assert cell_status(cell, "0" * 16) == rundir.STALE


@pytest.mark.integration
@needs_proc
@needs_posix
@pytest.mark.parametrize("how", ["SIGTERM to the main process", "SIGINT to the process group"])
def test_a_stop_signal_ends_the_grid_at_once(tmp_path, how):
    """The signal comes when the dt cells are done and two boomda cells train, with 400 epochs
    to go: the bench ends without waiting for them, which stay unfinished."""
    raw = _grid(seeds=[0, 1, 2, 3], epochs=4)
    raw["method_overrides"] = {"boomda": {"epochs": 400}}
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(raw))
    out = tmp_path / "g"
    dt_cells = {c for c in _cell_ids(raw) if c.startswith("dt__")}

    def boomda_training() -> set[str]:
        return {p.parent.name for p in out.glob(f"runs/boomda__*/{rundir.METRICS_PARTIAL}")
                if p.stat().st_size}

    running = _start_bench(grid, out)
    proc = running.proc
    try:
        assert _wait_for(lambda: _done(out) == dt_cells and len(boomda_training()) == 2
                         and len(running.workers()) == 2, proc), proc.communicate()[1]
        training = boomda_training()
        if how.startswith("SIGTERM"):
            os.kill(proc.pid, signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal
        _, err = proc.communicate(timeout=HANG)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2
    lines = err.strip().splitlines()
    name = how.split()[0]
    assert len(lines) == 1 and re.fullmatch(
        rf"boomda: error: grid faults stopped by {name}: 4 of 8 cells done; .* Run the same "
        rf"command again to resume", lines[0]), err
    assert _done(out) == dt_cells
    assert {cell_status(out / "runs" / c) for c in training} == {rundir.UNFINISHED}
    assert running.session_gone() == []
    assert (out / LOCK).read_text() == ""  # released


# --------------------------------------------------------------------------- random kills


def _training_since(out: Path, started: float) -> bool:
    """Whether a cell of ``out`` has logged a training step since ``started``."""
    for partial in out.glob(f"runs/*/{rundir.METRICS_PARTIAL}"):
        try:
            if partial.stat().st_mtime >= started and partial.stat().st_size:
                return True
        except OSError:
            continue
    return False


def _kill_round(grid: Path, out: Path, kind: str, delay: float,
                total: int) -> tuple[int, str]:
    """Start the bench on ``out``, kill it (``kind``) ``delay`` s after it starts training,
    and check that nothing of it is left. Returns its exit code and stderr."""
    started = time.time()
    running = _start_bench(grid, out)
    proc = running.proc
    try:
        _wait_for(lambda: _training_since(out, started) and len(running.workers()) == 2, proc)
        try:  # the random moment of the kill
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            if kind == "SIGKILL worker":
                workers = running.workers()
                if workers:
                    send_signal(random.Random(delay).choice(workers), signal.SIGKILL)
            elif kind == "SIGINT group":
                os.killpg(proc.pid, signal.SIGINT)
            else:
                os.kill(proc.pid, getattr(signal, kind.split()[0]))
        _, err = proc.communicate(timeout=HANG)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert running.session_gone() == [], f"processes of the killed bench left ({kind})"
    finished = len(_done(out)) == total
    if proc.returncode == 0:
        assert finished
    elif kind == "SIGKILL main":
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 2, err
        last = err.strip().splitlines()[-1]
        expected = ("a worker process died" if kind == "SIGKILL worker"
                    else f"stopped by {kind.split()[0]}")
        assert expected in last and "Traceback" not in err, err
    return proc.returncode, err


def _random_kills(tmp_path: Path, raw: dict, kinds: list[str], seed: int,
                  longest: float) -> None:
    """Kill benches of ``raw`` in the ways ``kinds`` at random moments (up to ``longest`` s
    into training), rerunning between kills; then run it to completion and compare with an
    uninterrupted run."""
    cells = _cell_ids(raw)
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(raw))
    out = tmp_path / "killed"
    rng = random.Random(seed)
    after_kill = False
    for kind in kinds:
        returncode, err = _kill_round(grid, out, kind, rng.uniform(0.0, longest), len(cells))
        if after_kill:  # the lock the SIGKILLed bench could not release is taken over
            assert "taking over the lock of pid" in err and "no longer running" in err, err
        # a bench SIGKILLed while it held the lock leaves its name in the lock file (one killed
        # after the grid was done, while writing the report, has already released it)
        lock = out / LOCK
        after_kill = (returncode == -signal.SIGKILL and lock.is_file()
                      and lock.read_text().strip() != "")
    final = subprocess.run([sys.executable, "-m", "boomda", "bench", str(grid), "--out",
                            str(out), "--workers", "2", "--threads", "1", "--no-progress"],
                           capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    if after_kill:
        assert "taking over the lock of pid" in final.stderr
    _assert_complete(out, cells)

    reference = tmp_path / "reference"
    run_grid(GridSpec.from_dict(raw), reference, workers=1, threads=1, progress=False,
             report=True)
    assert comparable(out) == comparable(reference)


@pytest.mark.integration
@needs_proc
@needs_posix
def test_killed_main_and_worker_then_rerun_gives_the_uninterrupted_results(tmp_path):
    _random_kills(tmp_path, _grid(seeds=[0, 1, 2], epochs=4),
                  ["SIGKILL main", "SIGKILL worker", "SIGKILL main", "SIGTERM main"],
                  seed=7, longest=2.0)


@pytest.mark.integration
@needs_proc
@needs_posix
def test_many_random_kills_then_rerun_gives_the_uninterrupted_results(tmp_path):
    kinds = ["SIGKILL main", "SIGTERM main", "SIGINT group", "SIGKILL worker"] * 3
    random.Random(11).shuffle(kinds)
    raw = _grid(seeds=[0, 1, 2], epochs=4)
    raw["base"]["data"]["modalities"] = ["fou", "kar", "mor"]
    raw["subsets"] = "all"  # 2 methods x 4 subsets x 3 seeds
    _random_kills(tmp_path, raw, kinds, seed=11, longest=1.5)
