"""Run identity, exclusive run folders, checkpoints and ``boomda run --resume``.

A resumed run must equal the uninterrupted run with the same seed exactly (on CPU): every
parameter, every metrics line but its timing, and every result but the timings and the identity.
"""

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from boomda import rundir
from boomda.cli import main
from boomda.config import RunConfig
from boomda.errors import BoomdaError
from boomda.estimator import DomainAdapter
from boomda.run import resume_experiment, run_experiment
from boomda.train import Trainer
from tests.helpers import wait_until

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: results that differ between any two runs: timings, identity, where it resumed
_VOLATILE = {"run", "train_seconds", "seconds_per_step", "wall_seconds", "resumed_at_step"}


def _config(out, name, method="boomda", epochs=4, every=1, **train):
    return RunConfig.from_dict({
        "data": {"dataset": "mfeat", "modalities": ["fou", "kar"]},
        "train": {"method": method, "epochs": epochs, "seed": 3, "dim": 16, "hidden": 32,
                  "batch_size": 96, "device": "cpu", **train},
        "out": str(out), "name": name, "checkpoint_every": every,
    })


def _metrics(folder):
    lines = [json.loads(line) for line in (Path(folder) / rundir.METRICS).read_text().splitlines()]
    for line in lines:
        line.pop("seconds")
    return lines


def _stable(results):
    return {k: v for k, v in results.items() if k not in _VOLATILE}


def _parameters(folder):
    return DomainAdapter.load(Path(folder) / rundir.MODEL, device="cpu").method.state_dict()


def _assert_same_run(a, b):
    ra = json.loads((Path(a) / rundir.RESULTS).read_text())
    rb = json.loads((Path(b) / rundir.RESULTS).read_text())
    assert _stable(ra) == _stable(rb)
    assert _metrics(a) == _metrics(b)
    pa, pb = _parameters(a), _parameters(b)
    assert pa.keys() == pb.keys()
    for key in pa:
        assert torch.equal(pa[key], pb[key]), key


class _Stop(Exception):
    pass


def _interrupt_after(monkeypatch, n_steps):
    """Make training raise after ``n_steps`` steps (a crash at a step boundary)."""
    record = Trainer._record
    calls = {"n": 0}

    def stopping(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > n_steps:
            raise _Stop
        return record(*args, **kwargs)

    monkeypatch.setattr(Trainer, "_record", staticmethod(stopping))


@pytest.mark.parametrize(("method", "every", "seed", "train"), [
    ("boomda", 1, 0, {}), ("dann", 2, 1, {}), ("boomda", 1, 2, {}),
    ("boomda", 1, 3, {"optimizer": "adamw", "lr_schedule": "cosine", "grad_clip": 0.5}),
    ("dada", 1, 4, {"optimizer": "sgd", "lr_schedule": "inverse", "lr": 0.01}),
])
def test_resumed_run_equals_uninterrupted_run(tmp_path, monkeypatch, method, every, seed, train):
    whole = run_experiment(_config(tmp_path, "whole", method, every=every, **train))
    steps_per_epoch = len(whole.adapter.history) // 4
    assert whole.results["resumed_at_step"] is None
    assert not (whole.folder / rundir.CHECKPOINT).exists()  # removed once the run is done
    # stop at a random step after the first checkpoint (drawn from a seeded generator)
    stop = random.Random(seed).randrange(every * steps_per_epoch + 1, 4 * steps_per_epoch)
    with monkeypatch.context() as patch:
        _interrupt_after(patch, stop)
        with pytest.raises(_Stop):
            run_experiment(_config(tmp_path, "cut", method, every=every, **train))
    cut = tmp_path / "cut"
    assert rundir.run_status(cut) == rundir.UNFINISHED
    assert (cut / rundir.CHECKPOINT).is_file() and not (cut / rundir.RESULTS).exists()
    resumed = resume_experiment(cut)
    # it went back to the last checkpoint: the last multiple of `every` epochs before the stop
    last_epoch = (stop // steps_per_epoch) // every * every
    assert resumed.results["resumed_at_step"] == last_epoch * steps_per_epoch
    assert resumed.results["run"]["id"] != whole.results["run"]["id"]
    _assert_same_run(tmp_path / "whole", cut)
    assert rundir.run_status(cut) == rundir.DONE
    assert not (cut / rundir.CHECKPOINT).exists()


def test_resumed_run_keeps_its_identity(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 30)
        with pytest.raises(_Stop):
            run_experiment(_config(tmp_path, "cut"))
    started = yaml_run(tmp_path / "cut")
    resumed = resume_experiment(tmp_path / "cut")
    assert resumed.results["run"] == started
    assert started["config_fingerprint"] == rundir.config_fingerprint(_config(tmp_path, "other"))


def yaml_run(folder):
    import yaml

    return yaml.safe_load((Path(folder) / rundir.CONFIG).read_text())["run"]


def test_run_folders_are_exclusive(tmp_path):
    first = run_experiment(_config(tmp_path, "x", epochs=1))
    with pytest.raises(BoomdaError, match="already exists and holds a finished run"):
        run_experiment(_config(tmp_path, "x", epochs=1, method="dt"))
    # the first run's files are untouched
    assert json.loads((first.folder / rundir.RESULTS).read_text())["method"] == "boomda"
    again = run_experiment(_config(tmp_path, "x", epochs=1, method="dt"), overwrite=True)
    assert again.results["method"] == "dt" and rundir.run_status(again.folder) == rundir.DONE
    # --overwrite never deletes a folder holding other files
    other = tmp_path / "data"
    other.mkdir()
    (other / "mine.csv").write_text("1\n")
    with pytest.raises(BoomdaError, match="mine.csv"):
        run_experiment(_config(tmp_path, "data", epochs=1), overwrite=True)
    assert (other / "mine.csv").read_text() == "1\n"


def test_default_names_never_collide(tmp_path):
    config = _config(tmp_path, None)
    names = {rundir.default_run_name("boomda", ["fou", "kar"], 0) for _ in range(200)}
    assert len(names) == 200
    a = run_experiment(_config(tmp_path, None, epochs=1))
    b = run_experiment(_config(tmp_path, None, epochs=1))  # within the same second
    assert a.folder != b.folder and a.folder.parent == b.folder.parent == tmp_path
    assert config.name is None


def test_mixed_folder_is_not_done(tmp_path):
    a = run_experiment(_config(tmp_path, "a", epochs=1))
    b = run_experiment(_config(tmp_path, "b", epochs=1, method="dt"))
    assert rundir.run_status(a.folder) == rundir.DONE
    # b's config beside a's results: two runs' files in one folder
    (a.folder / rundir.CONFIG).write_bytes((b.folder / rundir.CONFIG).read_bytes())
    assert rundir.run_status(a.folder) == rundir.STALE
    # a finished run with another config than the one asked for is stale too
    assert rundir.run_status(b.folder, rundir.config_fingerprint(_config(tmp_path, "b"))) \
        == rundir.STALE
    assert rundir.run_status(b.folder, b.results["run"]["config_fingerprint"]) == rundir.DONE


def test_resume_refuses_what_it_cannot_continue(tmp_path, monkeypatch, capsys):
    done = run_experiment(_config(tmp_path, "done", epochs=1))
    assert main(["run", "--resume", str(done.folder)]) == 2
    assert "already finished" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path / "nowhere")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    # killed before its first checkpoint
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 1)
        with pytest.raises(_Stop):
            run_experiment(_config(tmp_path, "early"))
    assert main(["run", "--resume", str(tmp_path / "early")]) == 2
    assert "no checkpoint.pt" in capsys.readouterr().err
    # a checkpoint of another run
    for name in ("p", "q"):
        with monkeypatch.context() as patch:
            _interrupt_after(patch, 30)
            with pytest.raises(_Stop):
                run_experiment(_config(tmp_path, name))
    (tmp_path / "p" / rundir.CHECKPOINT).write_bytes(
        (tmp_path / "q" / rundir.CHECKPOINT).read_bytes())
    assert main(["run", "--resume", str(tmp_path / "p")]) == 2
    assert "belongs to another run" in capsys.readouterr().err
    (tmp_path / "q" / rundir.CHECKPOINT).write_bytes(b"garbage")
    assert main(["run", "--resume", str(tmp_path / "q")]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path / "q"), "--seed", "4"]) == 2
    assert "--seed does not apply" in capsys.readouterr().err


def _boomda(*args, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "boomda", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _partial_lines(folder: Path) -> int:
    """The steps a run folder's metrics.jsonl.partial holds so far."""
    try:
        return (folder / rundir.METRICS_PARTIAL).read_text().count("\n")
    except FileNotFoundError:
        return 0


def _cli_config(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(_config(tmp_path, None, epochs=12).to_dict()))
    return str(path)


@pytest.mark.integration
def test_killed_process_resumes_exactly(tmp_path):
    """SIGKILL a ``boomda run`` process at a random step, resume it, and compare with an
    uninterrupted process."""
    config = _cli_config(tmp_path)
    whole = _boomda("run", "--config", config, "--name", "whole", "--no-progress")
    _, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err
    steps = len(_metrics(tmp_path / "whole"))
    cut = tmp_path / "cut"
    for attempt, fraction in enumerate((0.3, 0.7)):
        args = ("--resume", str(cut)) if attempt else ("--config", config, "--name", "cut")
        proc = _boomda("run", *args, "--no-progress")
        target = int(steps * (fraction + random.Random(attempt).uniform(0, 0.1)))
        wait_until(lambda p=proc, n=target: p.poll() is not None or _partial_lines(cut) >= n,
                   120, every=0.01)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)  # not reaped yet: the pid is still this process's
        proc.communicate(timeout=30)
        assert rundir.run_status(cut) == rundir.UNFINISHED
    final = _boomda("run", "--resume", str(cut), "--no-progress")
    out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    assert "resumed at step" in out
    _assert_same_run(tmp_path / "whole", cut)


def test_results_json_reads_back_as_the_run_results(tmp_path):
    """results.json is RunResults' JSON object: read back, it equals what the run returned;
    a grid's tags sit after the method's options; a file lacking a field (older, or written by
    hand) reads with None there."""
    config = _config(tmp_path, "tagged", epochs=1)
    config.tags = {"task": "t1", "point": "alpha2=10"}
    result = run_experiment(config)
    back = rundir.RunResults.read(result.folder)
    assert back == result.summary
    keys = list(json.loads((result.folder / rundir.RESULTS).read_text()))
    assert keys[keys.index("options") + 1: keys.index("options") + 3] == ["task", "point"]
    assert back.to_dict() == result.results
    partial = rundir.RunResults.from_dict({"method": "dt", "target": {"weighted_f1": 50.0}})
    assert partial.method == "dt" and partial.validators is None and partial.tags == {}
