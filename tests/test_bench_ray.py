"""Grids on Ray (boomda bench --ray): the same results and the same resumption as local workers,
cancellation on a stop signal, and one-line errors.

One local Ray instance with 2 CPUs, started as ``boomda bench --ray`` starts one, serves the
whole module (run_grid uses the connection the process already has), so that Ray starts once.
"""

import csv
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

import boomda.grid.executors as executors
from boomda import rundir
from boomda.cli import main
from boomda.errors import BoomdaError, ConfigError
from boomda.grid import GridInterrupted, GridSpec, cell_status, run_grid
from tests.conftest import sigterm_in_cell

ray = pytest.importorskip("ray")

from boomda.grid.ray import RayOptions, connect  # noqa: E402 - after the skip

#: results.csv columns that measure time or name a particular execution
_VOLATILE = ("seconds", "run.", "started", "environment.", "resumed_at_step")


def _grid(seeds=(0, 1), epochs=2, methods=("dt", "boomda")) -> dict:
    return {
        "name": "onray",
        "base": {"data": {"modalities": ["fou", "kar"], "shifts": {"fou": "noise:snr=1"}},
                 "train": {"epochs": epochs, "dim": 8, "hidden": 16}},
        "methods": list(methods),
        "subsets": [["fou", "kar"]],
        "seeds": list(seeds),
    }


def _comparable(folder: Path) -> dict[str, dict[str, str]]:
    with (folder / "results.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {row["cell_id"]: {k: v for k, v in row.items()
                             if not any(part in k for part in _VOLATILE)} for row in rows}


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
    assert _comparable(out) == _comparable(reference)
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
    assert _comparable(folder) == _comparable(reference)

    again = []
    result = run_grid(GridSpec.from_dict(raw), folder, progress=False, ray=RayOptions(),
                      on_cell=lambda cell, status: again.append(cell))
    assert again == [] and result.ran == 0 and result.done == 4


def test_a_stop_signal_cancels_the_ray_tasks(tmp_path, ray_session, monkeypatch):
    """SIGTERM to the bench while its cells train on Ray: GridInterrupted at once, the tasks'
    worker processes are killed (their cells stop changing) and stay resumable."""
    raw = _grid(seeds=(0, 1), epochs=200, methods=("dt",))
    folder = tmp_path / "g"
    _no_cell_in_this_process(monkeypatch)
    sent = []

    def stop_after_a_checkpoint() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if list(folder.glob(f"runs/*/{rundir.CHECKPOINT}")):
                sent.append(time.monotonic())
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=stop_after_a_checkpoint, daemon=True)
    previous = signal.getsignal(signal.SIGTERM)
    watcher.start()
    with pytest.raises(GridInterrupted, match=r"stopped by SIGTERM: 0 of 2 cells done"):
        run_grid(GridSpec.from_dict(raw), folder, threads=1, progress=False, report=False,
                 ray=RayOptions())
    took = time.monotonic() - sent[0]
    watcher.join()
    assert took < 5, f"took {took:.1f} s to stop"
    assert signal.getsignal(signal.SIGTERM) is previous
    runs = folder / "runs"
    partial = sorted(runs.glob(f"*/{rundir.METRICS_PARTIAL}"))
    assert partial
    sizes = [p.stat().st_size for p in partial]
    time.sleep(1.5)
    assert [p.stat().st_size for p in partial] == sizes  # no task trains on
    assert {cell_status(p) for p in runs.iterdir()} == {rundir.UNFINISHED}
    assert any(p.is_file() for p in runs.glob(f"*/{rundir.CHECKPOINT}"))


def _ray_cell_processes() -> list[int]:
    """The Ray worker processes running a cell now (Ray titles them ``ray::ray_cell``)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(b"ray::ray_cell"):
                pids.append(int(cmdline.parent.name))
        except (OSError, ValueError):
            continue
    return pids


@pytest.mark.slow  # Ray starts a new worker process (torch and all) for the retry
@pytest.mark.skipif(not Path("/proc/self/cmdline").is_file(), reason="needs /proc")
def test_a_killed_ray_worker_is_retried_and_the_cell_resumes(tmp_path, ray_session):
    """SIGKILL to the worker process of a running cell: Ray reruns the task, which continues
    the cell from its checkpoint to the uninterrupted run's result."""
    raw = _grid(seeds=(0,), epochs=4, methods=("dt",))
    folder = tmp_path / "g"
    killed = []

    def kill_after_a_checkpoint() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if list(folder.glob(f"runs/*/{rundir.CHECKPOINT}")):
                for pid in _ray_cell_processes():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.01)

    watcher = threading.Thread(target=kill_after_a_checkpoint, daemon=True)
    watcher.start()
    result = run_grid(GridSpec.from_dict(raw), folder, threads=1, progress=False,
                      report=False, ray=RayOptions())
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


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bench_error(tmp_path: Path, capsys, *args: str) -> str:
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(_grid(seeds=(0,), methods=("dt",))))
    code = main(["bench", str(grid), "--out", str(tmp_path / "g"), "--no-progress", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_unreachable_address_fails_at_once_in_one_line(tmp_path, capsys, scheme):
    port = _closed_port()
    started = time.monotonic()
    line = _bench_error(tmp_path, capsys, "--ray", f"{scheme}127.0.0.1:{port}")
    assert time.monotonic() - started < 10
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
