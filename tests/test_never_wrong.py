"""Nothing silently wrong: a diverged model is an error, never a saved result; ``--resume``
verifies what it continues (the settings, the checkpoint's step and shapes); a training
checkpoint is not a model."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from boomda import rundir
from boomda.cli import main
from boomda.config import RunConfig
from boomda.data.container import MultimodalData
from boomda.data.pair import DomainPair
from boomda.errors import BoomdaError, ConfigError, TrainingError
from boomda.estimator import DomainAdapter
from boomda.run import resume_experiment, run_experiment
from tests.conftest import make_views

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(epochs=2, batch_size=16, dim=8, hidden=16, device="cpu")


def _pair():
    views, y = make_views(n=48, dims=(5, 4))
    target, _ = make_views(n=40, dims=(5, 4), seed=1, shift=0.5)
    return DomainPair.from_arrays(MultimodalData(views, y), MultimodalData(target), holdout=0)


def _corrupt_at_last_step(adapter, value):
    """An on_step callback that sets one weight to ``value`` after the last step."""
    def on_step(log):
        if log.step == adapter.config.epochs * 3 - 1:  # 48 samples, batch 16: 3 steps/epoch
            with torch.no_grad():
                next(adapter.method.parameters()).view(-1)[0] = value
    return on_step


def test_non_finite_parameters_after_training_are_an_error():
    adapter = DomainAdapter(method="dt", **TINY)
    with pytest.raises(TrainingError, match=r"training diverged: after 6 steps 1 of [\d,]+ "
                                            r"parameters are not finite \(first in net\."):
        adapter.fit(_pair(), on_step=_corrupt_at_last_step(adapter, float("nan")))


def test_finite_parameters_with_non_finite_outputs_are_an_error():
    adapter = DomainAdapter(method="dt", **TINY)
    # one huge weight: every parameter finite, the activations overflow
    with pytest.raises(TrainingError, match=r"the model's outputs are not finite for \d+ of "
                                            r"\d+ samples"):
        adapter.fit(_pair(), on_step=_corrupt_at_last_step(adapter, 3e38))


def test_a_diverged_run_saves_no_model(tmp_path, monkeypatch):
    import boomda.train

    real = boomda.train.Trainer._record

    def diverging(step, epoch, *args):
        log = real(step, epoch, *args)
        if step == 5:  # the last step: the update just made is broken
            method = diverging.trainer.method
            with torch.no_grad():
                next(method.parameters()).view(-1)[0] = float("inf")
        return log

    real_init = boomda.train.Trainer.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        diverging.trainer = self

    monkeypatch.setattr(boomda.train.Trainer, "__init__", init)
    monkeypatch.setattr(boomda.train.Trainer, "_record", staticmethod(diverging))
    views, y = make_views(n=60, dims=(5, 4))
    np.savez(tmp_path / "d.npz", **views, labels=y)
    config = RunConfig.from_dict({
        "data": {"dataset": str(tmp_path / "d.npz"), "shifts": {"m0": "noise:snr=1"}},
        "train": {"method": "dt", "epochs": 6, "batch_size": 16, "dim": 8, "hidden": 16,
                  "device": "cpu"},
        "out": str(tmp_path), "name": "x"})
    with pytest.raises(TrainingError, match="training diverged"):
        run_experiment(config)
    folder = tmp_path / "x"
    assert not (folder / rundir.MODEL).exists() and not (folder / rundir.RESULTS).exists()
    assert rundir.run_status(folder) == rundir.UNFINISHED


@pytest.mark.parametrize("argv, message", [
    (["--lr", "inf"], "option lr must be a finite number, got inf"),
    (["--lr", "nan"], "option lr must be a finite number, got nan"),
    (["--grad-clip", "inf"], "option grad_clip must be a finite number, got inf"),
    (["--alpha2", "inf"], "alpha2"),
])
def test_options_reject_non_finite_values(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--no-progress", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err and "finite" in err


def test_yaml_options_reject_non_finite_values():
    with pytest.raises(ConfigError, match=r"config.train.lr: inf is not a finite number"):
        RunConfig.from_dict({"train": {"lr": float("inf")}})
    with pytest.raises(ConfigError, match=r"config.train.betas: .* is not a finite number"):
        RunConfig.from_dict({"train": {"betas": [0.9, float("nan")]}})
    with pytest.raises(ConfigError, match=r"config.train.epochs: cannot read inf as int"):
        RunConfig.from_dict({"train": {"epochs": float("inf")}})


def test_predict_refuses_non_finite_outputs(tmp_path, capsys):
    pair = _pair()
    adapter = DomainAdapter(method="dt", **TINY).fit(pair)
    with torch.no_grad():
        next(adapter.method.parameters()).view(-1)[0] = float("nan")
    adapter.save(tmp_path / "model.pt")
    np.savez(tmp_path / "x.npz", **pair.target.views)
    code = main(["predict", str(tmp_path / "model.pt"), str(tmp_path / "x.npz"), "--out",
                 str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "the model's outputs are not finite for 40 of 40 samples" in err
    assert not (tmp_path / "p.csv").exists()


# --------------------------------------------------------------------------- resume


def _stopped_run(tmp_path, name="r"):
    """A run stopped after its first checkpoint (epoch 1 of 3)."""
    config = RunConfig.from_dict({
        "data": {"dataset": "mfeat", "modalities": ["fou", "kar"]},
        "train": {"method": "dt", "epochs": 3, "seed": 3, "dim": 8, "hidden": 16,
                  "batch_size": 200, "device": "cpu"},
        "out": str(tmp_path), "name": name})

    class Stop(BaseException):
        pass

    def on_step(log):
        if log.step == 4:  # 800 source rows, batch 200: 4 steps per epoch
            raise Stop

    with pytest.raises(Stop):
        run_experiment(config, on_step=on_step)
    return tmp_path / name


def test_resume_refuses_an_edited_config(tmp_path):
    folder = _stopped_run(tmp_path)
    path = folder / rundir.CONFIG
    original = path.read_text()
    edited = yaml.safe_load(original)
    edited["data"]["shifts"] = {"fou": "noise:snr=0.1"}  # another target
    path.write_text(yaml.safe_dump(edited, sort_keys=False))
    with pytest.raises(BoomdaError, match="config.yaml: its settings were changed after the run "
                                          "started"):
        resume_experiment(folder)
    # the identity edited too: still refused (the checkpoint keeps the original fingerprint)
    edited["run"]["settings_fingerprint"] = rundir.config_fingerprint(
        {k: v for k, v in edited.items() if k not in ("run", "environment", "pair")})
    path.write_text(yaml.safe_dump(edited, sort_keys=False))
    with pytest.raises(BoomdaError, match="its settings were changed"):
        resume_experiment(folder)
    # only where the run goes (out, name) and logging are not settings
    restored = yaml.safe_load(original)
    restored["logging"] = {"tensorboard": False}
    path.write_text(yaml.safe_dump(restored, sort_keys=False))
    result = resume_experiment(folder)
    assert result.summary.resumed_at_step == 4


@pytest.mark.parametrize("field, value, message", [
    ("step", 10**9, r"the checkpoint's step 1000000000 lies outside this run's schedule "
                    r"\(1\.\.12 steps\)"),
    ("step", 0, r"step 0 lies outside"),
    ("step", 8, r"the checkpoint holds the logs of 4 steps but says it stopped after 8"),
    ("shape", None, r"the checkpoint's entry '[\w.]+' has shape \(3, 3\), this run's model "),
    ("entry", None, r"the checkpoint's model has the entry 'extra'"),
])
def test_resume_verifies_the_checkpoint_against_the_config(tmp_path, capsys, field, value,
                                                           message):
    folder = _stopped_run(tmp_path)
    path = folder / rundir.CHECKPOINT
    state = torch.load(path, weights_only=True)
    if field == "step":
        state["step"] = value
    elif field == "shape":
        key = next(iter(state["model"]))
        state["model"][key] = torch.zeros(3, 3)
    else:
        state["model"]["extra"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(TrainingError, match=message):
        resume_experiment(folder)
    code = main(["run", "--resume", str(folder), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and len(err) < 300


def test_predict_given_a_training_checkpoint_says_so(tmp_path, capsys):
    folder = _stopped_run(tmp_path)
    np.savez(tmp_path / "x.npz", fou=np.zeros((2, 76)), kar=np.zeros((2, 64)))
    code = main(["predict", str(folder / rundir.CHECKPOINT), str(tmp_path / "x.npz")])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == (
        f"boomda: error: {folder / rundir.CHECKPOINT}: a training checkpoint (the state --resume "
        f"continues from), not a model; give the run's model.pt")


def test_settings_fingerprint_is_recorded(tmp_path):
    folder = _stopped_run(tmp_path)
    identity = yaml.safe_load((folder / rundir.CONFIG).read_text())["run"]
    state = torch.load(folder / rundir.CHECKPOINT, weights_only=True)
    assert state["settings_fingerprint"] == identity["settings_fingerprint"]
    resolved = yaml.safe_load((folder / rundir.CONFIG).read_text())
    settings = {k: v for k, v in resolved.items() if k not in ("run", "environment", "pair")}
    assert rundir.config_fingerprint(settings) == identity["settings_fingerprint"]
    result = resume_experiment(folder)
    assert json.loads((Path(result.folder) / rundir.RESULTS).read_text())["run"] == identity
