"""A run folder is never lost or half-replaced: the run's finishing sequence survives a stop at
every file operation, ``--overwrite`` removes only a run's own files, and one process at a time
writes a run folder.

The finish is exercised by stopping the run at each of its file operations in turn (counted from
the last training step on): once by a stop right after the operation, once by a full disk
(``ENOSPC``) instead of it; each stopped run is then resumed and must end with every metrics
line and the result of the uninterrupted run. A slow variant does the same with real kills of a
``boomda run`` process.
"""

import errno
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

import boomda.train
from boomda import rundir
from boomda.config import RunConfig
from boomda.errors import BoomdaError
from boomda.estimator import DomainAdapter
from boomda.lock import FolderLocked
from boomda.run import resume_experiment, run_experiment
from tests.conftest import make_views

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPOCHS, BATCH, N = 3, 16, 60
#: results that differ between any two runs: timings, identity, where it resumed
_VOLATILE = {"run", "train_seconds", "seconds_per_step", "wall_seconds", "resumed_at_step"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    views, y = make_views(n=N, dims=(5, 4), n_classes=3)
    path = tmp_path_factory.mktemp("data") / "small.npz"
    np.savez(path, **views, labels=y)
    return path


def _config(dataset, out, name):
    return RunConfig.from_dict({
        "data": {"dataset": str(dataset), "shifts": {"m0": "noise:snr=1"}},
        "train": {"method": "boomda", "epochs": EPOCHS, "seed": 1, "dim": 8, "hidden": 16,
                  "batch_size": BATCH, "device": "cpu"},
        "out": str(out), "name": name, "checkpoint_every": 1,
    })


def _lines(folder):
    """Every metrics line, its timing left out."""
    records = [json.loads(line) for line in (folder / rundir.METRICS).read_text().splitlines()]
    for record in records:
        record.pop("seconds")
    return records


def _stable(folder):
    results = json.loads((folder / rundir.RESULTS).read_text())
    return {k: v for k, v in results.items() if k not in _VOLATILE}


def _parameters(folder):
    state = DomainAdapter.load(folder / rundir.MODEL, device="cpu").method.state_dict()
    return {k: v.numpy().copy() for k, v in state.items()}


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    folder = run_experiment(_config(dataset, out, "ref")).folder
    # 60 samples: 30 source, of which 24 train (holdout 0.2): one batch of 16 per epoch
    assert [line["step"] for line in _lines(folder)] == list(range(EPOCHS))
    return {"lines": _lines(folder), "results": _stable(folder),
            "parameters": _parameters(folder),
            "diagnosis": json.loads((folder / rundir.DIAGNOSIS).read_text())}


class _Stopped(BaseException):
    """A stop of the process (not an error the run could catch)."""


#: the file operations counted: creating a temporary file, making a written one readable (the
#: step between writing and renaming it), renaming, removing, syncing
_OPERATIONS = [(os, "replace"), (os, "unlink"), (os, "chmod"), (os, "fsync"),
               (tempfile, "mkstemp")]


class _Finish:
    """Counts the file operations after the last training step; stops the run at the
    ``at``-th: after it (``mode="stop"``) or by a full disk instead of it (``"full"``)."""

    def __init__(self, monkeypatch, at: int | None = None, mode: str = "stop") -> None:
        self.at, self.mode, self.count, self.armed = at, mode, 0, False
        self.names: list[str] = []
        record = boomda.train.Trainer._record

        def arming(step, epoch, *args):
            if step == EPOCHS - 1:  # the last step (one step per epoch)
                self.armed = True
            return record(step, epoch, *args)

        monkeypatch.setattr(boomda.train.Trainer, "_record", staticmethod(arming))
        for module, name in _OPERATIONS:
            monkeypatch.setattr(module, name, self._wrap(getattr(module, name), name))

    def _wrap(self, operation, name):
        def counted(*args, **kwargs):
            if not self.armed:
                return operation(*args, **kwargs)
            self.count += 1
            self.names.append(name)
            if self.count == self.at and self.mode == "full":
                raise OSError(errno.ENOSPC, "No space left on device")
            result = operation(*args, **kwargs)
            if self.count == self.at:
                raise _Stopped
            return result
        return counted


def test_a_stop_at_every_file_operation_of_the_finish_resumes(dataset, reference, tmp_path,
                                                              monkeypatch):
    with monkeypatch.context() as patch:
        counter = _Finish(patch)
        run_experiment(_config(dataset, tmp_path, "count"))
    total = counter.count
    # the final checkpoint, model.pt, diagnosis.json, metrics.jsonl, results.json, the
    # checkpoint's removal: at least 12 operations
    assert total >= 12, counter.names
    for mode in ("stop", "full"):
        for at in range(1, total + 1):
            name = f"{mode}-{at}"
            with monkeypatch.context() as patch:
                _Finish(patch, at, mode)
                with pytest.raises((_Stopped, OSError, BoomdaError)):
                    run_experiment(_config(dataset, tmp_path, name))
            folder = tmp_path / name
            if rundir.run_status(folder) != rundir.DONE:
                resume_experiment(folder)
            assert rundir.run_status(folder) == rundir.DONE, name
            assert _lines(folder) == reference["lines"], name
            assert _stable(folder) == reference["results"], name
            parameters = _parameters(folder)
            for key, value in reference["parameters"].items():
                assert np.array_equal(parameters[key], value), (name, key)
            diagnosis = json.loads((folder / rundir.DIAGNOSIS).read_text())
            assert diagnosis == reference["diagnosis"], name
            if (folder / rundir.CHECKPOINT).exists():  # stopped right after results.json
                with pytest.raises(BoomdaError, match="already finished"):
                    resume_experiment(folder)
            leftovers = sorted(p.name for p in folder.iterdir()
                               if p.name not in rundir.RUN_FILES and p.name != ".lock")
            assert leftovers == [] and not (folder / rundir.CHECKPOINT).exists(), name


def test_resume_restores_metrics_lines_the_files_lost(dataset, reference, tmp_path):
    """The checkpoint's own logs are the record of the steps before it: lines lost from the
    metrics file (a full disk, a cut write) come back on resume."""
    config = _config(dataset, tmp_path, "lost")
    with pytest.raises(_Stopped):
        with pytest.MonkeyPatch.context() as patch:
            _Finish(patch, 1, "stop")  # stopped at the first operation after training
            run_experiment(config)
    folder = tmp_path / "lost"
    partial = folder / rundir.METRICS_PARTIAL
    partial.write_text(partial.read_text().splitlines(keepends=True)[0][:20])  # a cut line
    resume_experiment(folder)
    assert _lines(folder) == reference["lines"]


@pytest.mark.integration
@pytest.mark.skipif(os.name != "posix", reason="POSIX kill")
def test_a_killed_boomda_run_at_every_finish_operation_resumes(dataset, reference, tmp_path):
    """Real kills (``os._exit`` right after the operation: no clean-up runs) of a ``boomda run``
    process, at each file operation of its finish."""
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    at = 1
    while True:
        name = f"kill-{at}"
        config = _config(dataset, tmp_path, name).to_dict()
        done = subprocess.run([sys.executable, str(driver), json.dumps(config), str(at)],
                              cwd=Path(__file__).parents[1], capture_output=True, text=True,
                              timeout=300)
        folder = tmp_path / name
        if done.returncode == 0:  # the run ended before the at-th operation: all were tried
            assert at > 12
            break
        assert done.returncode == 137, done.stderr
        if rundir.run_status(folder) != rundir.DONE:
            resume_experiment(folder)
        assert _lines(folder) == reference["lines"], name
        assert _stable(folder) == reference["results"], name
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [".lock", "config.yaml", "diagnosis.json", "metrics.jsonl", "model.pt",
             "results.json"]) or (folder / rundir.CHECKPOINT).exists(), name
        at += 1


_DRIVER = """
import json, os, sys, tempfile
import boomda.train
from boomda.config import RunConfig
from boomda.run import run_experiment

config, at = RunConfig.from_dict(json.loads(sys.argv[1])), int(sys.argv[2])
state = {"armed": False, "count": 0}
record = boomda.train.Trainer._record
total = config.train.epochs  # one step per epoch

def arming(step, epoch, *args):
    if step == total - 1:
        state["armed"] = True
    return record(step, epoch, *args)

boomda.train.Trainer._record = staticmethod(arming)

def wrap(operation):
    def counted(*args, **kwargs):
        result = operation(*args, **kwargs)
        if state["armed"]:
            state["count"] += 1
            if state["count"] == at:
                os._exit(137)
        return result
    return counted

for module, name in [(os, "replace"), (os, "unlink"), (os, "chmod"), (os, "fsync"),
                     (tempfile, "mkstemp")]:
    setattr(module, name, wrap(getattr(module, name)))
run_experiment(config)
"""


# --------------------------------------------------------------------------- --overwrite


def _finished(dataset, out, name):
    return run_experiment(_config(dataset, out, name)).folder


@pytest.mark.parametrize("foreign", [".git/HEAD", ".env", "notes.txt", "tensorboard/mine.csv",
                                     "sub/x"])
def test_overwrite_refuses_a_folder_holding_anything_else(dataset, tmp_path, foreign):
    folder = _finished(dataset, tmp_path, "x")
    path = folder / foreign
    path.parent.mkdir(exist_ok=True)
    path.write_text("mine\n")
    before = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    with pytest.raises(BoomdaError) as caught:
        run_experiment(_config(dataset, tmp_path, "x"), overwrite=True)
    named = foreign.split("/")[0]
    assert str(caught.value).startswith(f"run folder {folder} is not replaced: {named!r} ")
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == before
    assert path.read_text() == "mine\n"


@pytest.mark.parametrize("name, text, reason", [
    ("config.yaml", "data: {dataset: mfeat}\n", "holds no run identity"),
    ("results.json", '{"method": "boomda"}', "holds no run identity"),
    ("metrics.jsonl", "my,own,csv\n1,2,3\n", "does not hold a run's metrics lines"),
    ("model.pt", "not a checkpoint", "is not a PyTorch checkpoint"),
    ("diagnosis.json", "[1, 2]", "is not a JSON object"),
    ("error.txt", "my notes about this run\n", "is not a run's error record"),
])
def test_overwrite_checks_what_each_run_file_holds(tmp_path, dataset, name, text, reason):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / name).write_text(text)
    with pytest.raises(BoomdaError, match=f"is not replaced: '{name}' {reason}"):
        run_experiment(_config(dataset, tmp_path, "x"), overwrite=True)
    assert (folder / name).read_text() == text


def test_overwrite_replaces_a_runs_own_files(dataset, tmp_path):
    folder = _finished(dataset, tmp_path, "x")
    (folder / ".model.pt.abc123.tmp").write_bytes(b"")  # an atomic write cut by a kill
    first = yaml.safe_load((folder / "config.yaml").read_text())["run"]["id"]
    again = run_experiment(_config(dataset, tmp_path, "x"), overwrite=True)
    assert again.results["run"]["id"] != first
    assert not (folder / ".model.pt.abc123.tmp").exists()


def test_overwrite_refuses_a_symbolic_link(dataset, tmp_path):
    real = tmp_path / "elsewhere"
    real.mkdir()
    (real / "precious.txt").write_text("x")
    (tmp_path / "x").symlink_to(real)
    with pytest.raises(BoomdaError, match=r"is not replaced: it is a symbolic link \(to "):
        run_experiment(_config(dataset, tmp_path, "x"), overwrite=True)
    assert (real / "precious.txt").exists() and (tmp_path / "x").is_symlink()


# --------------------------------------------------------------------------- one writer


def test_a_run_folder_is_written_by_one_process_at_a_time(dataset, tmp_path):
    config = _config(dataset, tmp_path, "busy")
    with pytest.raises(_Stopped):
        with pytest.MonkeyPatch.context() as patch:
            _Finish(patch, 1, "stop")
            run_experiment(config)
    folder = tmp_path / "busy"
    with rundir.run_lock(folder):  # another process resuming it, as far as a lock can tell
        with pytest.raises(FolderLocked, match=rf"run folder {folder} is in use by boomda run "
                                               rf"\(pid {os.getpid()} on host"):
            resume_experiment(folder)
        with pytest.raises(FolderLocked, match="is in use by boomda run"):
            run_experiment(config, overwrite=True)
    assert rundir.run_status(folder) == rundir.UNFINISHED
    resume_experiment(folder)
    assert rundir.run_status(folder) == rundir.DONE


def test_a_leftover_temporary_checkpoint_is_removed_when_the_run_finishes(dataset, tmp_path,
                                                                          monkeypatch):
    """A kill during a checkpoint write leaves ``.checkpoint.pt.<random>.tmp``; the resumed
    run's finished folder holds no such file."""
    config = _config(dataset, tmp_path, "tmp")
    with pytest.raises(_Stopped):
        with monkeypatch.context() as patch:
            _Finish(patch, 1, "stop")
            run_experiment(config)
    folder = tmp_path / "tmp"
    (folder / ".checkpoint.pt.k2j3h4.tmp").write_bytes(b"")
    (folder / ".keep.tmp").write_text("a user's file that looks temporary")
    resume_experiment(folder)
    assert not (folder / ".checkpoint.pt.k2j3h4.tmp").exists()
    assert (folder / ".keep.tmp").exists()
