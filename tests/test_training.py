"""Training end to end: variants, logging, no target-label leak, save/load, the CLI."""

import json
import sys

import numpy as np
import pytest
import torch
import yaml

from boomda import DomainAdapter, DomainPair, MultimodalData, load_multiple_features
from boomda.balance import BALANCERS
from boomda.cli import main
from boomda.config import DEFAULT_MODALITIES, DEFAULT_SHIFTS
from boomda.methods import METHODS, BoomdaOptions
from tests.conftest import make_views

TINY = {"epochs": 2, "batch_size": 16, "dim": 8, "hidden": 16}


def _toy_pair(seed=0):
    views, y = make_views(n=64, dims=(5, 7, 3), n_classes=3, seed=seed)
    target_views, target_y = make_views(n=64, dims=(5, 7, 3), n_classes=3, seed=seed)
    target_views = {k: v * 0.5 + 1.0 for k, v in target_views.items()}
    return DomainPair.from_arrays(MultimodalData(views, y),
                                  MultimodalData(target_views, target_y), holdout=0)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_and_logs(method):
    pair = _toy_pair()
    adapter = DomainAdapter(method=method, seed=1, **TINY).fit(pair)
    history = adapter.history
    assert len(history) == 2 * (64 // 16)
    last = history[-1]
    assert "ib" in last.terms and np.isfinite(last.loss)
    expected_total = sum(last.weights[k] * v for k, v in last.terms.items())
    assert last.loss == pytest.approx(expected_total, rel=1e-5, abs=1e-6)
    has_ca = method in ("ca", "uniform", "boomda")
    assert (last.gamma is not None) == has_ca
    if has_ca:
        assert sum(last.gamma) == pytest.approx(1.0, abs=1e-6) and min(last.gamma) >= 0
        assert {f"ca_{m}" for m in ["m0", "m1", "m2", "fused"]} <= set(last.terms)
        assert last.weights["ca_m0"] == pytest.approx(BoomdaOptions().alpha2 * last.gamma[0])
    if method == "uniform":
        assert last.gamma == pytest.approx([0.25] * 4) and last.r is None
    if method in ("pl", "uniform", "boomda"):
        assert 0 <= last.n_pseudo <= 16
        if last.n_pseudo:
            assert 0.0 <= last.pseudo_accuracy <= 1.0
            assert 1 <= last.n_pseudo_classes <= min(3, last.n_pseudo)
    result = adapter.evaluate(pair.target)
    pred = adapter.predict(pair.target)
    assert result["max_class_share"] == pytest.approx(np.bincount(pred).max() / len(pred))
    assert result["accuracy"] == pytest.approx(100.0 * np.mean(pred == pair.target.labels))


@pytest.mark.parametrize("solver", sorted(BALANCERS))
def test_every_gamma_solver_trains(solver):
    adapter = DomainAdapter(method="boomda", gamma_solver=solver, **TINY).fit(_toy_pair())
    gamma = np.array([log.gamma for log in adapter.history])
    assert np.all(gamma >= 0) and np.allclose(gamma.sum(axis=1), 1.0, atol=1e-6)
    if solver != "uniform":
        assert all(log.r is not None for log in adapter.history)


def test_target_labels_never_reach_training():
    pair = _toy_pair()
    hidden = DomainPair.from_arrays(pair.source, MultimodalData(pair.target.views),
                                    n_classes=pair.n_classes, holdout=0)
    a = DomainAdapter(method="boomda", seed=3, **TINY).fit(pair)
    b = DomainAdapter(method="boomda", seed=3, **TINY).fit(hidden)
    assert [log.loss for log in a.history] == [log.loss for log in b.history]
    for (k, v), w in zip(a.method.state_dict().items(), b.method.state_dict().values(),
                         strict=True):
        assert torch.equal(v, w), k
    assert b.history[-1].pseudo_accuracy is None


def test_same_seed_same_result():
    a = DomainAdapter(method="boomda", seed=5, **TINY).fit(_toy_pair())
    b = DomainAdapter(method="boomda", seed=5, **TINY).fit(_toy_pair())
    views = _toy_pair().target.views
    np.testing.assert_array_equal(a.predict_proba(views), b.predict_proba(views))


def test_save_load_predict_roundtrip(tmp_path):
    pair = _toy_pair()
    adapter = DomainAdapter(method="boomda", **TINY).fit(pair)
    path = adapter.save(tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    assert set(raw["state_dict"]) == set(adapter.method.state_dict())
    loaded = DomainAdapter.load(path)
    np.testing.assert_array_equal(loaded.predict(pair.target), adapter.predict(pair.target))
    assert loaded.evaluate(pair.target) == adapter.evaluate(pair.target)
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(Exception, match="junk.pt: not a readable boomda checkpoint"):
        DomainAdapter.load(tmp_path / "junk.pt")


@pytest.mark.integration  # two runs at the default budget of 30 epochs
def test_boomda_beats_direct_transfer_on_shifted_embedded_data():
    data = load_multiple_features(DEFAULT_MODALITIES)
    pair = DomainPair.from_protocol(data, DEFAULT_SHIFTS, seed=0)
    dt = DomainAdapter(method="dt", seed=0).fit(pair)  # the default budget (30 epochs)
    boomda = DomainAdapter(method="boomda", seed=0).fit(pair)
    f1_dt = dt.evaluate(pair.target)["weighted_f1"]
    f1_boomda = boomda.evaluate(pair.target)["weighted_f1"]
    source_f1 = dt.evaluate(pair.source_holdout)["weighted_f1"]
    assert source_f1 - f1_dt >= 10.0  # the default shift makes direct transfer clearly lose
    assert f1_boomda >= f1_dt + 5.0


def test_cli_run_threads_and_progress_only_on_a_terminal(tmp_path, capsys, monkeypatch):
    """boomda run: one torch thread by default on feature-vector data (OMP_NUM_THREADS unset),
    --threads N otherwise; a progress bar only when stderr is a terminal."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("BOOMDA_STDERR_TERMINAL", raising=False)
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({"train": {"epochs": 1, "dim": 8, "hidden": 16},
                                      "data": {"modalities": ["fou", "mor"], "shifts": {}}}))
    base = ["run", "--config", str(config), "--out", str(tmp_path / "runs")]
    torch.set_num_threads(2)
    assert main([*base, "--name", "a"]) == 0
    assert torch.get_num_threads() == 1
    err = capsys.readouterr().err
    assert "step/s" not in err and "%|" not in err  # captured stderr: not a terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main([*base, "--name", "b", "--threads", "2"]) == 0
    assert torch.get_num_threads() == 2
    assert "| 0/16 [" in capsys.readouterr().err  # the bar of its 16 steps
    assert main([*base, "--name", "c", "--no-progress"]) == 0
    assert "%|" not in capsys.readouterr().err


def test_cli_run_writes_run_folder(tmp_path, capsys):
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({"train": {"epochs": 1, "dim": 16, "hidden": 32},
                                      "data": {"modalities": ["fou", "mor"],
                                               "shifts": {"fou": "noise:snr=1"}}}))
    code = main(["run", "--config", str(config), "--seed", "2", "--out", str(tmp_path / "runs"),
                 "--name", "r1", "--no-progress", "--shift", "mor=mask:fraction=0.5"])
    assert code == 0
    out = capsys.readouterr().out
    assert "target          weighted F1" in out and "final gamma" in out
    assert "label-free      source_risk=" in out
    folder = tmp_path / "runs" / "r1"
    assert sorted(p.name for p in folder.iterdir()) == [
        ".lock", "config.yaml", "diagnosis.json", "metrics.jsonl", "model.pt", "results.json"]
    resolved = yaml.safe_load((folder / "config.yaml").read_text())
    assert resolved["train"]["seed"] == 2 and resolved["train"]["epochs"] == 1
    assert resolved["data"]["shifts"] == {"fou": "noise:snr=1", "mor": "mask:fraction=0.5"}
    assert resolved["environment"]["boomda_version"]
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 800 // 48
    step = json.loads(lines[-1])
    assert {"loss", "loss_ib", "loss_pl", "loss_ca_fou", "gamma", "r", "n_pseudo"} <= set(step)
    results = json.loads((folder / "results.json").read_text())
    assert 0 <= results["target"]["weighted_f1"] <= 100
    assert set(results["final_gamma"]) == {"fou", "mor", "fused"}
    assert results["options"] == {"alpha1": 0.5, "alpha2": 100.0, "vote_threshold": 3,
                                  "gamma_solver": "closed_form", "gamma_normalization": "none",
                                  "ca_form": "correlation"}
    # the label-free validators of the trained model (each checked in tests/test_select.py)
    assert set(results["validators"]) == {"source_risk", "im", "snd", "dev"}
    assert all(np.isfinite(v) for v in results["validators"].values())
    loaded = DomainAdapter.load(folder / "model.pt")
    assert loaded.net.modalities == ["fou", "mor"]


def test_cli_predict_on_a_npz_file(tmp_path, capsys):
    pair = _toy_pair()
    adapter = DomainAdapter(method="boomda", **TINY).fit(pair)
    model = adapter.save(tmp_path / "model.pt")
    data = tmp_path / "new.npz"
    np.savez(data, labels=pair.target.labels, **pair.target.views)
    out = tmp_path / "pred.csv"
    assert main(["predict", str(model), str(data), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    expected = adapter.evaluate(pair.target)
    assert f"weighted F1 {expected['weighted_f1']:.2f}" in printed
    lines = out.read_text().splitlines()
    assert lines[0] == "index,predicted,p_0,p_1,p_2" and len(lines) == 1 + len(pair.target)
    predicted = [int(line.split(",")[1]) for line in lines[1:]]
    assert predicted == adapter.predict(pair.target).tolist()
    np.savez(data, m0=pair.target.views["m0"], m1=pair.target.views["m1"])  # m2 absent
    assert main(["predict", str(model), str(data)]) == 0
    assert f"m2 absent in all {len(pair.target)} samples" in capsys.readouterr().out
    np.savez(data, m0=pair.target.views["m0"], m1=pair.target.views["m1"],
             m22=pair.target.views["m2"])  # a misspelt name is not taken for an absent one
    assert main(["predict", str(model), str(data)]) == 2
    assert "new.npz: inputs: unknown modality 'm22' (and no 'm2')" in capsys.readouterr().err
    np.savez(data, labels=pair.target.labels, **pair.target.views)
    assert main(["predict", str(model), str(data), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a folder; give the path of a CSV file" in err and "Traceback" not in err


def test_a_batch_larger_than_the_data_is_said():
    pair = _toy_pair()
    with pytest.warns(UserWarning, match="batch_size 5000 exceeds the 64 source samples"):
        DomainAdapter(method="dt", **{**TINY, "batch_size": 5000}).fit(pair)


@pytest.mark.parametrize(("schedule", "expected"), [
    ("constant", [1.0, 1.0, 1.0]),
    ("cosine", [1.0, 0.5, 0.0]),                         # 0.5 (1 + cos(pi p))
    ("inverse", [1.0, 6.0 ** -0.75, 11.0 ** -0.75]),     # (1 + 10 p)^-0.75
])
def test_learning_rate_follows_the_schedule(schedule, expected):
    """The learning rate of steps 0, (T-1)/2 and T-1 of a T-step run."""
    from boomda.train import make_schedule

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.2)
    scheduler = make_schedule(optimizer, schedule, total=5)
    seen = []
    for _ in range(5):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    assert [seen[0], seen[2], seen[4]] == pytest.approx([0.2 * e for e in expected])


def test_gradient_clipping_bounds_the_global_norm(monkeypatch):
    """With grad_clip, the gradient the optimiser sees has global norm at most the clip."""
    norms = []
    step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        grads = [p.grad for group in self.param_groups for p in group["params"]
                 if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in grads]))))
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    DomainAdapter(epochs=2, batch_size=16, dim=8, hidden=16, grad_clip=0.05,
                  device="cpu").fit(_toy_pair())
    assert norms and max(norms) <= 0.05 * (1 + 1e-5)
    # without clipping the same run's gradients are far larger: the clip acted
    norms.clear()
    DomainAdapter(epochs=2, batch_size=16, dim=8, hidden=16, device="cpu").fit(_toy_pair())
    assert max(norms) > 0.5


def test_method_diagnostics_are_logged(tmp_path):
    """The adversarial baselines' gradient-reversal coefficient reaches metrics.jsonl: it rises
    from 0 at the first step along 2/(1+exp(-10 p)) - 1 (Ganin et al. 2016)."""
    import math

    adapter = DomainAdapter(method="dann", seed=1, **TINY).fit(_toy_pair())
    logs = [log.to_dict() for log in adapter.history]
    total = len(logs)
    for i in (0, total // 2, total - 1):
        p = i / (total - 1)
        assert logs[i]["extra_grl"] == pytest.approx(2 / (1 + math.exp(-10 * p)) - 1)
    assert "extra_grl" not in DomainAdapter(method="dt", seed=1, **TINY).fit(
        _toy_pair()).history[0].to_dict()


def test_gamma_names_its_objectives_and_survives_a_resume():
    """StepLog.gamma_names / gamma_by_name: Boomda's weights belong to the modalities, then the
    fused representation; the metrics line keeps gamma a list; a training state whose history
    predates the names gets them back on resume."""
    import json
    from copy import deepcopy

    from boomda import DomainAdapter, DomainPair, MultimodalData
    from tests.conftest import make_views

    views, y = make_views(n=40, dims=(4, 3, 5))
    target, _ = make_views(n=40, dims=(4, 3, 5), shift=0.3)
    pair = DomainPair.from_arrays(MultimodalData(views, labels=y), MultimodalData(target))
    options = dict(epochs=2, dim=8, hidden=16, batch_size=16, seed=0)
    states = []
    # a copy: the optimiser's state in the training state goes on changing with training
    full = DomainAdapter(**options).fit(pair, checkpoint=lambda s: states.append(deepcopy(s)),
                                        checkpoint_every=1)
    last = full.history[-1]
    assert last.gamma_names == ["m0", "m1", "m2", "fused"]
    assert last.gamma_by_name == dict(zip(["m0", "m1", "m2", "fused"], last.gamma, strict=True))
    assert abs(sum(last.gamma_by_name.values()) - 1) < 1e-6
    line = last.to_dict()
    assert "gamma_names" not in line and line["gamma"] == last.gamma
    dt = DomainAdapter(method="dt", **options).fit(pair)
    assert dt.history[-1].gamma is None and dt.history[-1].gamma_by_name is None

    state, end = states  # after epoch 1 of 2, and at the end of training
    assert (state["step"], end["step"]) == (len(full.history) // 2, len(full.history))
    old = json.loads(state["history"])
    for fields in old:
        del fields["gamma_names"]
    state["history"] = json.dumps(old)
    resumed = DomainAdapter(**options).fit(pair, resume=state)
    assert [log.gamma_names for log in resumed.history] == [["m0", "m1", "m2", "fused"]] * len(
        full.history)
    assert [log.gamma for log in resumed.history] == [log.gamma for log in full.history]
