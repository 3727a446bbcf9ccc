"""TensorBoard events of a run (``--tensorboard``, ``logging: {tensorboard: true}``), read back
with TensorBoard's own event readers and compared with metrics.jsonl, value by value: a single
run, a resumed run (every step exactly once) and a grid (one run per cell)."""

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.backend.event_processing.event_file_loader import (  # noqa: E402
    EventFileLoader,
)
from tensorboard.backend.event_processing.plugin_event_multiplexer import (  # noqa: E402
    EventMultiplexer,
)

from boomda import rundir  # noqa: E402
from boomda.board import require_tensorboard  # noqa: E402
from boomda.cli import main  # noqa: E402
from boomda.config import RunConfig  # noqa: E402
from boomda.errors import ConfigError  # noqa: E402
from boomda.run import resume_experiment, run_experiment  # noqa: E402
from boomda.train import Trainer  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODALITIES = ["fou", "kar"]


def _config(out, name, method="boomda", epochs=2, tensorboard=True):
    return RunConfig.from_dict({
        "data": {"dataset": "mfeat", "modalities": MODALITIES},
        "train": {"method": method, "epochs": epochs, "seed": 1, "dim": 16, "hidden": 32,
                  "batch_size": 128, "device": "cpu"},
        "out": str(out), "name": name, "logging": {"tensorboard": tensorboard},
    })


def _expected(line: dict) -> dict[str, float]:
    """The scalars a metrics.jsonl line must give, by the documented tag table, as float32."""
    out = {}
    for key, value in line.items():
        if value is None or key == "step":
            continue
        if key == "gamma":
            for name, v in zip([*MODALITIES, "fused"], value, strict=True):
                out[f"gamma/{name}"] = v
            continue
        tag = {"loss": "loss/total", "r": "r", "n_pseudo": "pseudo/n",
               "n_pseudo_classes": "pseudo/n_classes", "pseudo_accuracy": "pseudo/accuracy",
               "epoch": "progress/epoch", "seconds": "progress/seconds"}.get(key)
        if tag is None:
            group, _, rest = key.partition("_")
            assert group in ("loss", "weight", "extra"), key
            tag = f"{group}/{rest}"
        out[tag] = value
    return {tag: float(np.float32(v)) for tag, v in out.items()}


def _metrics(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / rundir.METRICS).read_text().splitlines()]


def _accumulated(folder: Path) -> dict[str, dict[int, float]]:
    """tag -> step -> value, as TensorBoard shows them."""
    acc = EventAccumulator(str(folder / rundir.TENSORBOARD), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def _raw_counts(folder: Path) -> Counter:
    """(tag, step) -> how many times it was written, over every event file (no purging)."""
    counts: Counter = Counter()
    for path in sorted((folder / rundir.TENSORBOARD).glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                counts[(value.tag, event.step)] += 1
    return counts


def _assert_events_equal_metrics(folder: Path) -> int:
    lines = _metrics(folder)
    expected: dict[str, dict[int, float]] = {}
    for line in lines:
        for tag, value in _expected(line).items():
            expected.setdefault(tag, {})[line["step"]] = value
    assert _accumulated(folder) == expected
    counts = _raw_counts(folder)
    assert set(counts.values()) == {1}
    assert len(counts) == sum(len(steps) for steps in expected.values())
    return len(lines)


@pytest.mark.parametrize("method", ["boomda", "dann"])
def test_events_hold_exactly_the_values_of_metrics_jsonl(tmp_path, method):
    result = run_experiment(_config(tmp_path, method, method))
    n = _assert_events_equal_metrics(result.folder)
    assert n == result.results["steps"] > 5
    tags = set(_accumulated(result.folder))
    if method == "boomda":  # every loss term, gamma per objective, r and the pseudo-labels
        assert {"loss/total", "loss/ib", "loss/ca_fou", "gamma/fou", "gamma/kar", "gamma/fused",
                "r", "pseudo/n", "weight/ca_fused"} <= tags
    else:  # the method's own diagnostics (extras)
        assert any(tag.startswith("extra/") for tag in tags)


class _Stop(Exception):
    pass


def test_resumed_run_has_every_step_once(tmp_path, monkeypatch):
    whole = run_experiment(_config(tmp_path, "whole", epochs=3))
    total = whole.results["steps"]
    per_epoch = total // 3
    stop = per_epoch + per_epoch // 2 + 1  # past the first checkpoint, before the second
    record = Trainer._record
    calls = {"n": 0}

    def stopping(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > stop:
            raise _Stop
        return record(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_record", staticmethod(stopping))
        with pytest.raises(_Stop):
            run_experiment(_config(tmp_path, "cut", epochs=3))
    cut = tmp_path / "cut"
    # the killed run's events reach past its checkpoint
    assert max(step for _, step in _raw_counts(cut)) == stop - 1 > per_epoch
    resumed = resume_experiment(cut)
    assert resumed.results["resumed_at_step"] == per_epoch
    assert _assert_events_equal_metrics(cut) == total
    # and the curves are the uninterrupted run's (timings aside)
    without_time = {tag: steps for tag, steps in _accumulated(cut).items()
                    if tag != "progress/seconds"}
    assert without_time == {tag: steps for tag, steps in _accumulated(whole.folder).items()
                            if tag != "progress/seconds"}


def test_grid_cells_log_to_their_own_run_folders(tmp_path, capsys):
    grid = {
        "name": "tb",
        "base": {"data": {"modalities": MODALITIES},
                 "train": {"epochs": 1, "dim": 16, "hidden": 32, "batch_size": 128}},
        "methods": ["dt", "boomda"],
        "subsets": [MODALITIES],
        "seeds": [0],
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    out = tmp_path / "bench"
    assert main(["bench", str(path), "--out", str(out), "--workers", "1", "--tensorboard",
                 "--no-progress"]) == 0
    runs = out / "runs"
    cells = sorted(p.name for p in runs.iterdir())
    assert cells == ["boomda__fou+kar__seed0", "dt__fou+kar__seed0"]
    for cell in cells:
        _assert_events_equal_metrics(runs / cell)
    # one TensorBoard on the grid folder shows one run per cell
    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(out))
    multiplexer.Reload()
    assert sorted(multiplexer.Runs()) == [f"runs/{c}/{rundir.TENSORBOARD}" for c in cells]
    # switching the curves off does not make the finished cells stale, nor the folder another
    # grid's
    assert main(["bench", str(path), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    assert "2 of 2 cells done" in capsys.readouterr().out


def test_logging_config_cli_and_missing_package(tmp_path, monkeypatch, capsys):
    on = RunConfig.from_dict({"logging": {"tensorboard": "yes"}})
    off = RunConfig.from_dict({})
    assert on.logging.tensorboard and not off.logging.tensorboard
    # where the curves go is not one of the run's settings
    assert rundir.config_fingerprint(on) == rundir.config_fingerprint(off)
    with pytest.raises(ConfigError, match=r"run.yaml.logging: unknown option 'tensorbord'"):
        RunConfig.from_dict({"logging": {"tensorbord": True}}, where="run.yaml")
    with pytest.raises(ConfigError, match=r"logging.tensorboard: cannot read 'maybe' as bool"):
        RunConfig.from_dict({"logging": {"tensorboard": "maybe"}})

    # without --tensorboard: no events
    assert main(["run", "--epochs", "1", "--modalities", "fou,kar", "--dim", "16",
                 "--hidden", "32", "--out", str(tmp_path), "--name", "plain",
                 "--no-progress"]) == 0
    assert not (tmp_path / "plain" / rundir.TENSORBOARD).exists()
    assert main(["run", "--resume", str(tmp_path / "plain"), "--tensorboard"]) == 2
    assert "--tensorboard does not apply" in capsys.readouterr().err

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"pip install 'boomda\[tensorboard\]'"):
        require_tensorboard()
    assert main(["run", "--epochs", "1", "--out", str(tmp_path), "--name", "needs",
                 "--tensorboard", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "needs the optional package 'tensorboard'" in err
    assert not (tmp_path / "needs").exists()  # refused before anything was written
