"""Grids: cells, resumption after a killed worker, failed cells, folder safety."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from boomda.errors import BoomdaError, ConfigError
from boomda.grid import GridSpec, cell_status, point_label, run_grid
from boomda.methods import check_config
from tests.helpers import (
    HAS_PROC,
    children,
    read_proc,
    send_signal,
    spawned_workers,
    tiny_grid,
    wait_until,
)


def _spec(**changes):
    raw = tiny_grid("tiny", modalities=("fou", "kar", "mor"),
                    shifts={"fou": "noise:snr=1", "mor": "mask:fraction=0.5"},
                    subsets=[["fou", "kar"], ["fou", "kar", "mor"]], seeds=(0, 1),
                    epochs=3, dim=16, hidden=32)
    raw.update(changes)
    return raw


def test_cells_are_the_product_and_pairs_come_first():
    spec = GridSpec.from_dict(_spec(subsets="all", seeds=[3]))
    ids = [c.id for c in spec.cells()]
    assert ids[:4] == ["dt__fou+kar__seed3", "dt__fou+mor__seed3", "dt__kar+mor__seed3",
                       "dt__fou+kar+mor__seed3"]
    assert len(ids) == 2 * 4 * 1 == len(set(ids))
    cell = spec.cells()[-1]
    assert cell.config.train.method == "boomda" and cell.config.train.seed == 3
    assert cell.config.data.modalities == ["fou", "kar", "mor"]


def test_grid_spec_errors():
    with pytest.raises(ConfigError, match="unknown method 'danm'"):
        GridSpec.from_dict(_spec(methods=["danm"]))
    with pytest.raises(ConfigError, match="unknown key 'seed'"):
        GridSpec.from_dict({**_spec(), "seed": 1})
    with pytest.raises(ConfigError, match=r"vote_threshold \(M_v\) = 4 exceeds M\+1 = 3"):
        GridSpec.from_dict(_spec(base={"data": {"modalities": ["fou", "kar"]},
                                       "train": {"options": {"vote_threshold": 4}}}))
    with pytest.raises(ConfigError, match="method 'dann' has no option 'alpha2'"):
        GridSpec.from_dict(_spec(methods=["dann", "boomda"], sweep={"alpha2": [1, 10]}))
    with pytest.raises(ConfigError, match="method_overrides.boomda: unknown option 'trade_of'"):
        GridSpec.from_dict(_spec(method_overrides={"boomda": {"trade_of": 1}}))
    with pytest.raises(ConfigError, match="method_overrides: 'cdan' is not in methods"):
        GridSpec.from_dict(_spec(method_overrides={"cdan": {"options": {"entropy": True}}}))


def _results(folder: Path) -> dict:
    out = {}
    for cell in sorted((folder / "runs").iterdir()):
        results = json.loads((cell / "results.json").read_text())
        last = (cell / "metrics.jsonl").read_text().splitlines()[-1]
        out[cell.name] = (results["target"]["weighted_f1"], json.loads(last)["loss"])
    return out


@pytest.mark.integration
@pytest.mark.skipif(not HAS_PROC, reason="needs /proc to find worker processes")
def test_killed_worker_then_rerun_gives_every_cell_once_and_same_results(tmp_path):
    grid = tmp_path / "grid.yaml"
    spec = _spec(seeds=[0, 1, 2])
    spec["base"]["train"]["epochs"] = 6
    grid.write_text(yaml.safe_dump(spec))
    cells = {c.id for c in GridSpec.from_dict(spec).cells()}

    reference = tmp_path / "reference"
    run_grid(GridSpec.from_dict(spec), reference, workers=2, threads=1, progress=False,
             report=False)

    interrupted = tmp_path / "interrupted"
    command = [sys.executable, "-m", "boomda.cli", "bench", str(grid), "--out", str(interrupted),
               "--workers", "2", "--threads", "1", "--no-progress"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    bench = read_proc(proc.pid)
    assert bench is not None

    killed = []

    def kill_a_worker() -> bool:  # once a cell is done
        if list(interrupted.glob("runs/*/results.json")):
            killed.extend(w for w in spawned_workers(children(bench))[:1]
                          if send_signal(w, signal.SIGKILL))
        return bool(killed)

    wait_until(lambda: proc.poll() is not None or kill_a_worker())
    out, err = proc.communicate(timeout=120)
    assert killed, "the grid finished before a worker could be killed"
    assert proc.returncode == 2, err
    assert "a worker process died" in err and "Traceback" not in err
    finished = {p.parent.name for p in (interrupted / "runs").glob("*/results.json")}
    assert 0 < len(finished) < len(cells)

    resumed = []
    run_grid(GridSpec.from_dict(spec), interrupted, workers=2, threads=1, progress=False,
             report=False, on_cell=lambda cell, status: resumed.append(cell))
    assert sorted(resumed) == sorted(cells - finished)  # only the unfinished cells ran again
    assert {p.name for p in (interrupted / "runs").iterdir()} == cells
    leftovers = [p for p in interrupted.rglob("*") if p.suffix in (".partial", ".tmp")
                 or p.name == "error.txt"]
    assert leftovers == []
    assert _results(interrupted) == _results(reference)


def test_failed_cell_is_recorded_and_the_grid_goes_on(tmp_path, monkeypatch):
    import boomda.run

    real = boomda.run.run_experiment

    def flaky(config, **kwargs):
        if config.name == "dt__fou+kar__seed0":
            raise RuntimeError("simulated failure in this cell")
        return real(config, **kwargs)

    monkeypatch.setattr(boomda.run, "run_experiment", flaky)
    spec = GridSpec.from_dict(_spec(seeds=[0], subsets=[["fou", "kar"]]))
    assert [c.id for c in spec.cells()] == ["dt__fou+kar__seed0", "boomda__fou+kar__seed0"]
    result = run_grid(spec, tmp_path / "g", workers=1, threads=1, progress=False, report=False)
    assert result.failed == 1 and result.done == 1  # the cell after the failed one ran
    failed = tmp_path / "g" / "runs" / "dt__fou+kar__seed0"
    assert cell_status(failed) == "failed"
    assert (failed / "error.txt").read_text().startswith(
        "RuntimeError: simulated failure in this cell")
    monkeypatch.setattr(boomda.run, "run_experiment", real)
    again = run_grid(spec, tmp_path / "g", workers=1, threads=1, progress=False, report=False)
    assert again.ran == 1 and again.done == 2 and cell_status(failed) == "done"


def test_leftovers_of_an_interrupted_cell_are_not_results(tmp_path):
    spec = GridSpec.from_dict(_spec(methods=["dt"], seeds=[0], subsets=[["fou", "kar"]]))
    cell = tmp_path / "g" / "runs" / "dt__fou+kar__seed0"
    cell.mkdir(parents=True)
    # the files of another run, killed before its first checkpoint
    (cell / "config.yaml").write_text("stale: true\nrun: {id: 20260101-000000-00000000, "
                                      "config_fingerprint: 0123456789abcdef}\n")
    (cell / "metrics.jsonl.partial").write_text('{"step": 0}\n{"step": 1, "lo')
    assert cell_status(cell) == "unfinished"  # started, not done; no checkpoint: from scratch
    result = run_grid(spec, tmp_path / "g", workers=1, threads=1, progress=False, report=False)
    assert result.ran == 1 and cell_status(cell) == "done"
    assert not (cell / "metrics.jsonl.partial").exists()
    assert "stale" not in (cell / "config.yaml").read_text()


def test_a_rerun_never_removes_a_users_file_from_a_cell(tmp_path, monkeypatch):
    import boomda.run

    spec = GridSpec.from_dict(_spec(methods=["dt"], seeds=[0], subsets=[["fou", "kar"]]))
    real = boomda.run.run_experiment

    def failing(config, **kwargs):
        raise RuntimeError("simulated failure in this cell")

    monkeypatch.setattr(boomda.run, "run_experiment", failing)
    run_grid(spec, tmp_path / "g", workers=1, threads=1, progress=False, report=False)
    cell = tmp_path / "g" / "runs" / "dt__fou+kar__seed0"
    assert cell_status(cell) == "failed"
    (cell / "notes.txt").write_text("why this cell failed\n")
    monkeypatch.setattr(boomda.run, "run_experiment", real)
    again = run_grid(spec, tmp_path / "g", workers=1, threads=1, progress=False, report=False)
    assert again.failed == 1 and cell_status(cell) == "failed"
    assert (cell / "notes.txt").read_text() == "why this cell failed\n"
    error = (cell / "error.txt").read_text().splitlines()[0]
    assert "'notes.txt' is not a file that a run writes" in error
    (cell / "notes.txt").unlink()  # moved away by its owner: the cell runs
    third = run_grid(spec, tmp_path / "g", workers=1, threads=1, progress=False, report=False)
    assert third.done == 1 and cell_status(cell) == "done"
    assert sorted(p.name for p in cell.iterdir()) == sorted(
        [".lock", "config.yaml", "diagnosis.json", "metrics.jsonl", "model.pt", "results.json"])


def test_a_folder_never_mixes_two_grids(tmp_path):
    spec = GridSpec.from_dict(_spec(methods=["dt"], seeds=[0], subsets=[["fou", "kar"]]))
    run_grid(spec, tmp_path / "g", workers=1, threads=1, progress=False, report=False)
    other = GridSpec.from_dict(_spec(methods=["dt"], seeds=[5], subsets=[["fou", "kar"]]))
    with pytest.raises(BoomdaError, match="holds a different grid"):
        run_grid(other, tmp_path / "g", workers=1, threads=1, progress=False, report=False)


def test_suite_tasks_and_sweep_points_make_the_cells(tmp_path):
    tasks = {"tasks": {"t1": {"modalities": ["fou", "kar"], "shifts": {"fou": "noise:snr=2"}},
                       "t2": {"modalities": ["kar", "mor", "pix"],
                              "shifts": {"mor": "block:fraction=0.5"}}}}
    (tmp_path / "tasks.yaml").write_text(yaml.safe_dump(tasks))
    grid = _spec(tasks="tasks.yaml", methods=["pl", "boomda"], sweep_methods=["boomda"],
                 sweep={"alpha2": [1, 10], "gamma_normalization": ["none", "loss"]}, seeds=[0])
    del grid["subsets"]
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    spec = GridSpec.from_yaml(tmp_path / "grid.yaml")
    cells = spec.cells()
    # per task: pl once, boomda at 2 x 2 points
    assert len(cells) == 2 * (1 + 4)
    by_id = {c.id: c for c in cells}
    cell = by_id["boomda__t2__alpha2=10,gamma_normalization=loss__seed0"]
    assert cell.config.train.options == {"alpha2": 10, "gamma_normalization": "loss"}
    assert cell.config.data.modalities == ["kar", "mor", "pix"]
    assert cell.config.data.shifts == {"mor": "block:fraction=0.5"}
    assert cell.config.tags == {"task": "t2", "point": "alpha2=10,gamma_normalization=loss"}
    assert by_id["pl__t1__seed0"].config.tags == {"task": "t1"}
    assert by_id["pl__t1__seed0"].config.train.options == {}
    # a list of points instead of a product
    listed = GridSpec.from_dict(_spec(sweep=[{"ca_form": "paper", "alpha2": 0.001},
                                             {"ca_form": "relative", "alpha2": 3}]))
    points = [check_config(c.config.train) for c in listed.cells() if c.method == "boomda"]
    assert {(o.ca_form, o.alpha2) for o in points} == {("paper", 0.001), ("relative", 3.0)}
    # an override of one method's option, and a sweep of a train option beside it
    spec = GridSpec.from_dict(_spec(methods=["dann", "boomda"], sweep_methods=["boomda"],
                                    sweep={"lr": [0.01]},
                                    method_overrides={"dann": {"trade_off": 0.5},
                                                      "boomda": {"alpha2": 3, "epochs": 2}}))
    by_method = {c.method: c.config.train for c in spec.cells()}
    assert by_method["dann"].options == {"trade_off": 0.5} and by_method["dann"].lr == 1e-3
    assert by_method["boomda"].options == {"alpha2": 3}
    assert (by_method["boomda"].epochs, by_method["boomda"].lr) == (2, 0.01)


def test_sweep_and_task_errors():
    with pytest.raises(ConfigError, match="sweep: 'seed' is neither a train option that can be "
                                          "swept nor an option of the methods it applies to"):
        GridSpec.from_dict(_spec(sweep={"seed": [1, 2]}))
    with pytest.raises(ConfigError, match="sweep: expected 'preset', a mapping"):
        GridSpec.from_dict(_spec(sweep={"alpha2": []}))
    with pytest.raises(ConfigError, match="unknown ca_form 'frob'"):
        GridSpec.from_dict(_spec(sweep={"ca_form": ["frob"]}))
    with pytest.raises(ConfigError, match="tasks: expected a non-empty mapping"):
        GridSpec.from_dict(_spec(tasks=["t1"]))


def test_shipped_suite_grids_parse_and_keep_dev_and_test_apart():
    configs = Path(__file__).parents[1] / "configs"
    dev = yaml.safe_load((configs / "suite-dev.yaml").read_text())["tasks"]
    test = yaml.safe_load((configs / "suite-test.yaml").read_text())["tasks"]
    assert len(dev) + len(test) >= 6 and not set(dev) & set(test)
    # no test task repeats a development task's data and shifts
    assert not [t for t in test.values() if t in dev.values()]
    counts = {}
    for name in ("grid-suite-table", "grid-suite-select", "grid-suite-select-uniform",
                 "grid-suite-dev-forms", "grid-suite-dev-balance"):
        spec = GridSpec.from_yaml(configs / f"{name}.yaml")
        counts[name] = len(spec.cells())
    assert counts == {"grid-suite-table": 11 * 7 * 3, "grid-suite-select": 6 * 7 * 3,
                      "grid-suite-select-uniform": 4 * 7 * 3,
                      "grid-suite-dev-forms": 4 * (1 + 2 * 10), "grid-suite-dev-balance":
                      4 * 2 * (2 + 7)}


def test_the_summary_is_written_while_the_folder_is_still_locked(tmp_path):
    """run_grid's on_done (boomda bench's summary and report) runs before the lock is released:
    a second bench trying the folder then is refused."""
    from boomda.grid import GridLocked, grid_lock

    raw = _spec(methods=["dt"], seeds=[0], subsets=[["fou", "kar"]])
    raw["base"]["train"]["epochs"] = 1
    spec = GridSpec.from_dict(raw)
    seen = []

    def done(result):
        with pytest.raises(GridLocked, match="is in use by boomda bench"):
            with grid_lock(tmp_path / "g"):
                pass
        seen.append(result.done)

    run_grid(spec, tmp_path / "g", workers=1, threads=1, progress=False, report=False, on_done=done)
    assert seen == [1]
    with grid_lock(tmp_path / "g"):  # released afterwards
        pass


def test_the_last_progress_line_says_every_cell_is_done(tmp_path, capsys):
    raw = _spec(methods=["dt"], seeds=[0, 1], subsets=[["fou", "kar"]])
    raw["base"]["train"]["epochs"] = 1
    result = run_grid(GridSpec.from_dict(raw), tmp_path / "g", workers=1, threads=1,
                      progress=True, report=False)
    assert result.done == 2
    err = capsys.readouterr().err
    updates = [u for u in err.replace("\n", "\r").split("\r") if u.strip()]
    assert "running 1, left 2, failed 0" in updates[1]
    assert any("running 1, left 1, failed 0" in u for u in updates)
    assert "2/2" in updates[-1] and "all done, failed 0" in updates[-1]
    assert "running" not in updates[-1]


def test_a_preset_sweep_gives_every_method_its_own_points():
    from boomda.methods import METHODS
    from boomda.methods.boomda import BoomdaOptions

    spec = GridSpec.from_dict(_spec(methods=["dt", "dann", "boomda"], sweep="preset", seeds=[0],
                                    subsets=[["fou", "kar"]]))
    spec.validate()
    for method in ("dt", "dann", "boomda"):
        cells = [c for c in spec.cells() if c.method == method]
        assert len(cells) == 6  # every method: the same number of points
        assert [c.point for c in cells] == [point_label(p) for p in METHODS[method].preset]
    boomda_cells = [c for c in spec.cells() if c.method == "boomda"]
    first = boomda_cells[0].config.train.options
    assert (first["ca_form"], float(first["alpha2"])) == (BoomdaOptions().ca_form,
                                                          BoomdaOptions().alpha2)
    dann = [c.config.train.options.get("trade_off") for c in spec.cells() if c.method == "dann"]
    assert sorted(map(float, dann)) == [0.03, 0.1, 0.3, 1.0, 3.0, 10.0] and dann[0] == 1
    with pytest.raises(ConfigError, match="expected 'preset'"):
        GridSpec.from_dict(_spec(sweep="presets")).validate()
