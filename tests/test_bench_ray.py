"""Grids on Ray (boomda bench --ray): the same results and the same resumption as local workers,
cancellation on a stop signal, and one-line errors.

One local Ray instance with 2 CPUs, started as ``boomda bench --ray`` starts one, serves the
whole module (run_grid uses the connection the process already has), so that Ray starts once.
The module is in the integration tier: Ray starts a dozen processes.
"""

import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import boomda.grid.executors as executors
from boomda import rundir
from boomda.cli import main
from boomda.errors import BoomdaError, ConfigError
from boomda.grid import GridInterrupted, GridSpec, cell_status, run_grid
from tests.conftest import sigterm_in_cell
from tests.helpers import (
    HAS_PROC,
    Proc,
    comparable,
    descendants,
    is_alive,
    send_signal,
    this_process,
    tiny_grid,
    wait_until,
)

pytestmark = pytest.mark.integration

ray = pytest.importorskip("ray")

from boomda.grid.ray import RayOptions, connect  # noqa: E402 - after the skip

needs_proc = pytest.mark.skipif(not HAS_PROC, reason="needs /proc to find Ray's workers")

#: a guard against a hang only: every wait below ends on an event long before it
HANG = 120.0


def _grid(seeds=(0, 1), epochs=2, methods=("dt", "boomda")) -> dict:
    return tiny_grid("onray", methods=methods, seeds=seeds, epochs=epochs)


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray instance with 2 CPUs for the module, as boomda bench --ray starts one."""
    previous = signal.getsignal(signal.SIGTERM)
    with connect(RayOptions(), workers=2) as module:
        assert signal.getsignal(signal.SIGTERM) is previous  # Ray's handler is not left set
        assert module.cluster_resources().get("CPU") == 2
        yield module


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The grid run without Ray (in the bench's process, as by local workers)."""
    folder = tmp_path_factory.mktemp("reference") / "g"
    run_grid(GridSpec.from_dict(_grid()), folder, workers=1, threads=1, progress=False)
    return folder


def _no_cell_in_this_process(monkeypatch) -> None:
    """Make a cell run in the test process fail: the cells must run in Ray's workers."""
    def refuse(*args, **kwargs):
        raise AssertionError("a cell ran in the bench process, not as a Ray task")

    monkeypatch.setattr(executors, "run_cell", refuse)


def test_boomda_bench_on_ray_gives_the_results_of_local_workers(tmp_path, reference,
                                                                ray_session, monkeypatch,
                                                                capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(_grid()))
    out = tmp_path / "g"
    _no_cell_in_this_process(monkeypatch)
    code = main(["bench", str(grid), "--ray", "--workers", "2", "--threads", "1", "--out",
                 str(out), "--no-progress"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "grid onray: 4 of 4 cells done, 0 failed this time, 4 run" in printed.out
    assert printed.err == ""
    assert {p.name for p in (out / "runs").iterdir()} == {c.id for c in
                                                          GridSpec.from_dict(_grid()).cells()}
    assert comparable(out) == comparable(reference)
    assert all(cell_status(p) == rundir.DONE for p in (out / "runs").iterdir())


def test_a_rerun_on_ray_skips_done_cells_and_resumes_an_interrupted_one(
        tmp_path, reference, ray_session, monkeypatch):
    """A grid stopped in-process mid-cell (past its first checkpoint) is finished on Ray: the
    done cells are kept as they are, the interrupted one continues from its checkpoint, and
    the report equals the uninterrupted local one."""
    raw = _grid()
    victim = "dt__fou+kar__seed1"
    sigterm_in_cell(monkeypatch, victim, 20)  # past the first epoch's checkpoint
    folder = tmp_path / "g"
    with pytest.raises(GridInterrupted):
        run_grid(GridSpec.from_dict(raw), folder, workers=1, threads=1, progress=False,
                 report=False)
    monkeypatch.undo()  # runs are left alone again
    runs = folder / "runs"
    assert cell_status(runs / victim) == rundir.UNFINISHED
    assert (runs / victim / rundir.CHECKPOINT).is_file()
    done_before = {p.parent.name: p.read_bytes() for p in runs.glob("*/results.json")}
    assert set(done_before) == {"dt__fou+kar__seed0"}

    _no_cell_in_this_process(monkeypatch)
    ran = []
    result = run_grid(GridSpec.from_dict(raw), folder, threads=1, progress=False,
                      ray=RayOptions(), on_cell=lambda cell, status: ran.append((cell, status)))
    expected = {c.id for c in GridSpec.from_dict(raw).cells()} - set(done_before)
    assert sorted(ran) == sorted((cell, "done") for cell in expected)
    assert result.done == 4 and result.failed == 0 and result.ran == 3
    for cell, text in done_before.items():  # not run again
        assert (runs / cell / rundir.RESULTS).read_bytes() == text
    resumed = json.loads((runs / victim / rundir.RESULTS).read_text())
    assert resumed["resumed_at_step"] is not None
    assert not list(folder.rglob(rundir.CHECKPOINT))
    assert comparable(folder) == comparable(reference)

    again = []
    result = run_grid(GridSpec.from_dict(raw), folder, progress=False, ray=RayOptions(),
                      on_cell=lambda cell, status: again.append(cell))
    assert again == [] and result.ran == 0 and result.done == 4


def _ray_cell_processes() -> list[Proc]:
    """The Ray worker processes of this test process's Ray instance that run a cell now (Ray
    titles them ``ray::ray_cell``); another instance's on the same machine are left out."""
    return [p for p in descendants(this_process()) if p.cmdline.startswith(b"ray::ray_cell")]


def _watch(folder: Path, act, stop: threading.Event) -> threading.Thread:
    """A thread that calls ``act()`` once a cell of grid ``folder`` has written its first
    checkpoint (polled every 10 ms until ``stop`` is set)."""
    def watch() -> None:
        while not stop.is_set():
            if list(folder.glob(f"runs/*/{rundir.CHECKPOINT}")):
                act()
                return
            stop.wait(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@needs_proc
def test_a_stop_signal_cancels_the_ray_tasks(tmp_path, ray_session, monkeypatch):
    """SIGTERM to the bench while its cells train on Ray: GridInterrupted without waiting for
    the cells (they have 200 epochs to go), the tasks' worker processes are killed (their cells
    stop changing) and the cells stay resumable."""
    raw = _grid(seeds=(0, 1), epochs=200, methods=("dt",))
    folder = tmp_path / "g"
    _no_cell_in_this_process(monkeypatch)
    training: list[Proc] = []

    def stop() -> None:
        training.extend(_ray_cell_processes())
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    done = threading.Event()
    watcher = _watch(folder, stop, done)
    try:
        with pytest.raises(GridInterrupted, match=r"stopped by SIGTERM: 0 of 2 cells done"):
            run_grid(GridSpec.from_dict(raw), folder, threads=1, progress=False, report=False,
                     ray=RayOptions())
    finally:
        done.set()
        watcher.join()
    assert signal.getsignal(signal.SIGTERM) is previous
    assert training, "no Ray worker ran a cell when the signal was sent"
    # cancelled by force: the processes that trained the cells end, so no cell trains on
    assert wait_until(lambda: not any(is_alive(p) for p in training), HANG)
    runs = folder / "runs"
    assert sorted(runs.glob(f"*/{rundir.METRICS_PARTIAL}"))
    assert {cell_status(p) for p in runs.iterdir()} == {rundir.UNFINISHED}
    assert any(p.is_file() for p in runs.glob(f"*/{rundir.CHECKPOINT}"))
    assert not any(p.cmdline.startswith(b"ray::ray_cell") for p in _ray_cell_processes())


@needs_proc
def test_a_killed_ray_worker_is_retried_and_the_cell_resumes(tmp_path, ray_session):
    """SIGKILL to the worker process of a running cell: Ray reruns the task, which continues
    the cell from its checkpoint to the uninterrupted run's result."""
    raw = _grid(seeds=(0,), epochs=4, methods=("dt",))
    folder = tmp_path / "g"
    killed: list[Proc] = []
    done = threading.Event()

    def kill() -> None:
        killed.extend(p for p in _ray_cell_processes() if send_signal(p, signal.SIGKILL))

    watcher = _watch(folder, kill, done)
    try:
        result = run_grid(GridSpec.from_dict(raw), folder, threads=1, progress=False,
                          report=False, ray=RayOptions())
    finally:
        done.set()
        watcher.join()
    assert killed and result.done == 1 and result.failed == 0
    cell = folder / "runs" / "dt__fou+kar__seed0"
    resumed = json.loads((cell / rundir.RESULTS).read_text())
    assert resumed["resumed_at_step"] is not None
    reference = tmp_path / "reference"
    run_grid(GridSpec.from_dict(raw), reference, workers=1, threads=1, progress=False,
             report=False)
    uninterrupted = json.loads((reference / "runs" / cell.name / rundir.RESULTS).read_text())
    assert resumed["target"] == uninterrupted["target"]
    assert resumed["steps"] == uninterrupted["steps"]


def test_a_cell_larger_than_every_node_is_refused(tmp_path, ray_session):
    spec = GridSpec.from_dict(_grid(seeds=(0,), methods=("dt",)))
    with pytest.raises(ConfigError, match=r"--ray-gpus-per-cell 1: no node of the Ray cluster "
                                          r"has that much \(nodes: 2 CPU 0 GPU\)"):
        run_grid(spec, tmp_path / "g", progress=False, ray=RayOptions(gpus_per_cell=1))


def test_a_cell_on_cuda_without_a_gpu_per_cell_is_refused(tmp_path):
    raw = _grid(seeds=(0,), methods=("dt",))
    raw["base"]["train"]["device"] = "cuda:0"
    with pytest.raises(ConfigError, match=r"cell dt__fou\+kar__seed0: train.device is 'cuda:0', "
                                          r"but its Ray task holds no GPU; give "
                                          r"--ray-gpus-per-cell"):
        run_grid(GridSpec.from_dict(raw), tmp_path / "g", progress=False, ray=RayOptions())


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local TCP port that refuses connections: bound (so that no other socket takes it)
    and not listening, for as long as the test runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _bench_error(tmp_path: Path, capsys, *args: str) -> str:
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(_grid(seeds=(0,), methods=("dt",))))
    code = main(["bench", str(grid), "--out", str(tmp_path / "g"), "--no-progress", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_unreachable_address_fails_at_once_in_one_line(tmp_path, capsys, scheme, closed_port,
                                                          monkeypatch):
    """The address is probed first: the error comes before ray.init, which would retry for
    long."""
    port = closed_port
    inits = []
    monkeypatch.setattr(ray, "init", lambda *args, **kwargs: inits.append(kwargs))
    line = _bench_error(tmp_path, capsys, "--ray", f"{scheme}127.0.0.1:{port}")
    assert inits == []
    assert line == (f"boomda: error: --ray {scheme}127.0.0.1:{port}: cannot reach the Ray "
                    f"cluster at 127.0.0.1:{port} (Connection refused); is the head node "
                    f"started (ray start --head) and the port open?")
    assert not (tmp_path / "g" / "runs").exists() or not any((tmp_path / "g" / "runs").iterdir())


def test_bad_ray_options_are_one_line_errors(tmp_path, capsys):
    assert _bench_error(tmp_path, capsys, "--ray", "headnode").startswith(
        "boomda: error: --ray 'headnode': expected auto, host:port")
    assert _bench_error(tmp_path, capsys, "--ray-cpus-per-cell", "2") == (
        "boomda: error: --ray-cpus-per-cell applies only with --ray")
    assert _bench_error(tmp_path, capsys, "--ray", "--ray-cpus-per-cell", "0") == (
        "boomda: error: --ray-cpus-per-cell must be positive, got 0.0")


def test_without_ray_installed_the_error_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    line = _bench_error(tmp_path, capsys, "--ray")
    assert line == ("boomda: error: --ray needs the ray package, which is not installed: "
                    "pip install 'boomda[ray]'")
    with pytest.raises(BoomdaError, match="not installed"):
        run_grid(GridSpec.from_dict(_grid(seeds=(0,), methods=("dt",))), tmp_path / "h",
                 progress=False, ray=RayOptions())
