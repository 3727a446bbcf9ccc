"""Label-free tuning (boomda.tune): presets, sweeps, the choice, tuned run folders and their
resumption, the estimator's scikit-learn conventions and the validators through the API."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from boomda import rundir
from boomda.cli import main
from boomda.config import RunConfig, TrainConfig
from boomda.data.container import MultimodalData
from boomda.data.load import build_pair
from boomda.data.pair import DomainPair
from boomda.errors import BoomdaError, ConfigError
from boomda.estimator import DomainAdapter
from boomda.methods import METHODS
from boomda.methods.base import PRESET_SIZE
from boomda.run import resume_experiment
from boomda.rundir import POINTS, SELECTION
from boomda.select import VALIDATORS, cross_entropy, score_model, softmax
from boomda.sweep import choose, parse_sweep, point_label, sweep_points
from boomda.tune import resume_tuned, run_tuned
from tests.conftest import two_view_domain

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"epochs": 2, "batch_size": 16, "dim": 8, "hidden": 16, "device": "cpu", "seed": 1}
#: two points of Boomda's preset: a small sweep for the run-folder tests
SWEEP = {"alpha2": [10.0, 1000.0]}


def _domain(n, seed, shift=0.0):
    return two_view_domain(n, seed, shift, n_classes=3)


def _pair(target_labels=None, holdout=0.2):
    views, y = _domain(60, 0)
    source = MultimodalData(views, labels=y)
    views, y = _domain(36, 1, shift=1.0)
    target = MultimodalData(views, labels=y if target_labels is None else target_labels)
    return DomainPair.from_arrays(source, target, holdout=holdout, seed=0)


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    views, y = _domain(60, 0)
    np.savez("source.npz", **views, labels=y)
    views, y = _domain(36, 1, shift=1.0)
    np.savez("target.npz", **views, labels=y)
    return tmp_path


def _config(name, method="boomda"):
    return RunConfig.from_dict({"data": {"source": "source.npz", "target": "target.npz"},
                                "train": {**TINY, "method": method}, "out": "runs",
                                "name": name})


# --------------------------------------------------------------------------- presets


def _default(method, key):
    options = METHODS[method].Options()
    if hasattr(options, key):
        return getattr(options, key)
    return getattr(TrainConfig(), key)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_preset_has_six_valid_points_the_default_first(method):
    preset = METHODS[method].preset
    assert len(preset) == PRESET_SIZE == 6
    defaults = [all(value == _default(method, k) for k, value in point.items())
                for point in preset]
    assert defaults[0] and not any(defaults[1:])  # the default lies in every preset: first
    for point in preset:  # each point is a valid configuration of the method
        TrainConfig(method=method).validate()
        METHODS[method].parse_options({k: v for k, v in point.items()
                                       if hasattr(METHODS[method].Options(), k)})


def test_presets_span_what_the_method_tunes():
    boomda = METHODS["boomda"].preset
    assert [(p["ca_form"], p["alpha2"]) for p in boomda] == [
        ("correlation", 100.0), ("correlation", 10.0), ("correlation", 1000.0),
        ("relative", 1.0), ("relative", 10.0), ("relative", 100.0)]
    assert METHODS["ca"].preset == METHODS["uniform"].preset == boomda
    for method in ("dann", "cdan", "mada", "daln", "pcl", "dada"):
        weights = [p["trade_off"] for p in METHODS[method].preset]
        assert weights[0] == 1.0 and min(weights) <= 0.03 and max(weights) >= 10
    assert {p["pcl_weight"] for p in METHODS["pcl"].preset} == {0.05, 0.5}
    assert {k for p in METHODS["dt"].preset for k in p} == {"lr", "dropout"}
    assert [p["alpha1"] for p in METHODS["pl"].preset][0] == 0.5


# --------------------------------------------------------------------------- sweeps


def test_sweep_parsing_gives_every_combination_coerced():
    points = parse_sweep(["alpha2=1,10", "lr=0.01", "ca_form=relative,correlation"], "boomda")
    assert points == [{"alpha2": a, "lr": 0.01, "ca_form": f}
                      for a in (1.0, 10.0) for f in ("relative", "correlation")]
    assert all(isinstance(p["alpha2"], float) for p in points)
    assert parse_sweep(["epochs=3,4"], "dann") == [{"epochs": 3}, {"epochs": 4}]
    assert sweep_points("dann", {"trade_off": [1, "0.5"]}) == [{"trade_off": 1.0},
                                                               {"trade_off": 0.5}]
    assert point_label({"ca_form": "relative", "alpha2": 100.0}) == "ca_form=relative,alpha2=100"


@pytest.mark.parametrize("items, message", [
    (["alpha3=1,2"], r"^--sweep: 'alpha3' is neither a training option that can be tuned .* "
                     r"nor an option of boomda \(alpha1, alpha2,"),
    (["seed=1,2"], r"'seed' is neither a training option that can be tuned"),
    (["alpha2="], r"^--sweep alpha2: no values; give alpha2=V1,V2,...$"),
    (["alpha2"], r"^--sweep 'alpha2': expected KEY=V1,V2,"),
    (["alpha2=1,x"], r"^--sweep alpha2: cannot read 'x' as float$"),
    (["epochs=2.5"], r"^--sweep epochs: cannot read '2.5' as int$"),
    (["alpha2=1", "alpha2=2"], r"^--sweep alpha2: given twice"),
])
def test_sweep_errors_are_one_line(items, message):
    with pytest.raises(ConfigError, match=message):
        parse_sweep(items, "boomda")


def test_sweep_errors_through_the_command_line(files, capsys):
    for argv, message in (
            (["--select", "im", "--sweep", "trade_off=1,2"], "'trade_off' is neither"),
            (["--select", "im", "--sweep", "alpha2=-1,2"],
             "--sweep point alpha2=-1: option alpha2 must be >= 0"),
            (["--sweep", "alpha2=1,2"], "--sweep applies to a tuned run: add --select im"),
            (["--select", "imm"], "--select 'imm': choose a validator from"),
            (["--select", "dev", "--holdout", "0"], "--select dev: reads held-out labelled")):
        code = main(["run", "--source", "source.npz", "--target", "target.npz", "--epochs", "1",
                     *argv])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (files / "runs").exists()  # nothing trained, no folder


# --------------------------------------------------------------------------- the choice


def test_choice_is_the_argmax_with_the_earlier_point_winning_ties():
    labels = ["a", "b", "c", "d"]
    assert choose("im", labels, [{"im": 0.1}, {"im": 0.3}, {"im": 0.2}, {"im": 0.3}])[0] == "b"
    chosen, reason = choose("im", labels, [{"im": float("nan")}, {"im": None},
                                           {"im": float("inf")}, {"im": -5.0}])
    assert chosen == "d" and "3 point(s) without a finite score cannot win" in reason
    assert "tied with d" in choose("im", labels, [{"im": 1}, {"im": 2}, {"im": 0},
                                                  {"im": 2}])[1]
    with pytest.raises(BoomdaError, match="no point has a finite dev score"):
        choose("dev", labels[:2], [{"dev": None}, {"dev": float("nan")}])


# --------------------------------------------------------------------------- the estimator


def test_tuned_fit_keeps_the_argmax_point_and_reads_no_target_label():
    pair = _pair()
    adapter = DomainAdapter(select="im", sweep={"alpha2": [1.0, 100.0, 1000.0]}, **TINY)
    adapter.fit(pair)
    sel = adapter.selection
    assert sel.labels == ["alpha2=1", "alpha2=100", "alpha2=1000"]
    im = [s["im"] for s in sel.scores]
    assert sel.chosen == sel.labels[int(np.argmax(im))]  # np.argmax: first on ties
    assert adapter.config.options["alpha2"] == sel.points[sel.chosen_index]["alpha2"]
    # the kept model is the chosen point's: its scores are the table's row
    assert score_model(adapter, pair)["im"] == pytest.approx(im[sel.chosen_index], rel=1e-12)
    assert adapter.score(pair, "im") == pytest.approx(im[sel.chosen_index], rel=1e-12)
    assert all(t is not None and set(t) >= {"weighted_f1", "accuracy"} for t in sel.target)

    permuted = _pair(target_labels=np.random.default_rng(5).permutation(pair.target.labels))
    again = DomainAdapter(select="im", sweep={"alpha2": [1.0, 100.0, 1000.0]}, **TINY)
    again.fit(permuted)
    assert again.selection.chosen == sel.chosen and again.selection.scores == sel.scores
    for (name, a), (_, b) in zip(adapter.method.state_dict().items(),
                                 again.method.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_sklearn_clone_and_params_round_trip():
    from sklearn.base import clone

    config = TrainConfig(epochs=3)
    adapter = DomainAdapter(config, select="im", sweep={"alpha2": [1, 10]}, alpha2=5, epoch=2)
    params = adapter.get_params(deep=True)
    assert params == {"config": config, "select": "im", "sweep": {"alpha2": [1, 10]},
                      "alpha2": 5, "epoch": 2}
    assert params["config"] is config  # stored as given, not validated nor copied
    copy = clone(adapter)
    assert copy is not adapter and copy.get_params() == params
    assert copy.get_params()["config"] is not config  # clone copies the parameters
    copy.set_params(epoch=None, select="snd")
    assert copy.get_params()["select"] == "snd" and adapter.get_params()["select"] == "im"
    del copy._options["epoch"]
    assert copy.set_params(alpha2=7).config.options == {"alpha2": 7.0}
    assert copy.config.epochs == 3
    with pytest.raises(ConfigError, match="did you mean the training option 'epochs'"):
        adapter.fit(_pair())  # the misspelt keyword: at fit, not at construction


def test_tuned_fit_argument_errors():
    pair = _pair()
    for adapter, message in (
            (DomainAdapter(sweep={"alpha2": [1]}, **TINY), "sweep: needs select=VALIDATOR"),
            (DomainAdapter(select="best", **TINY), "select 'best': choose a validator"),
            (DomainAdapter(select="im", sweep={"alpha2": 3}, **TINY),
             "sweep: alpha2: expected a non-empty list"),
            (DomainAdapter(select="im", sweep={"nope": [1]}, **TINY), "'nope' is neither")):
        with pytest.raises(ConfigError, match=message):
            adapter.fit(pair)
    with pytest.raises(ConfigError, match="select source_risk: reads held-out"):
        DomainAdapter(select="source_risk", **TINY).fit(_pair(holdout=0.0))


# --------------------------------------------------------------------------- validators


def test_validators_through_the_api_equal_an_independent_recomputation():
    pair = _pair()
    adapter = DomainAdapter(method="dt", **TINY).fit(pair)
    scores = score_model(adapter, pair)
    assert set(scores) == set(VALIDATORS)
    assert all(math.isfinite(v) for v in scores.values())
    holdout = pair.source_holdout
    assert holdout is not None and len(holdout) == 12  # 20 % of 60, stratified
    with torch.no_grad():
        adapter.net.eval()
        logits = adapter.net({m: torch.from_numpy(v) for m, v in holdout.views.items()})
    probs = softmax(logits.fused_logits.numpy())
    expected = -np.mean(-np.log(probs[np.arange(12), holdout.labels]))
    assert scores["source_risk"] == pytest.approx(expected, rel=1e-6)
    assert cross_entropy(probs, holdout.labels).mean() == pytest.approx(-expected, rel=1e-12)
    assert adapter.score(pair, "source_risk") == scores["source_risk"]
    assert adapter.score(pair, "dev") == scores["dev"]
    with pytest.raises(ConfigError, match="validator 'imx': choose from"):
        adapter.score(pair, "imx")


# --------------------------------------------------------------------------- run folders


def _independent_scores(folder, config):
    """Every point's validators from its saved model.pt, recomputed on the rebuilt pair."""
    pair = build_pair(config)
    out = {}
    for point in sorted((folder / POINTS).iterdir()):
        out[point.name] = score_model(DomainAdapter.load(point / rundir.MODEL, device="cpu"),
                                      pair)
    return out


def test_tuned_run_folder_chooses_the_argmax_of_the_saved_models(files):
    result = run_tuned(_config("tuned"), "im", sweep_points("boomda", SWEEP))
    folder = result.folder
    assert rundir.run_status(folder) == rundir.DONE
    selection = json.loads((folder / SELECTION).read_text())
    labels = [p["label"] for p in selection["points"]]
    assert labels == ["alpha2=10", "alpha2=1000"]
    independent = _independent_scores(folder, _config("tuned"))
    for row in selection["points"]:
        for name, value in row["validators"].items():
            assert value == pytest.approx(independent[row["label"]][name], rel=1e-9, abs=1e-12)
    im = [independent[label]["im"] for label in labels]
    assert selection["chosen"] == labels[int(np.argmax(im))]
    assert selection["validator"] == "im" and "earlier point" in selection["tie_rule"]
    chosen = folder / POINTS / selection["chosen"]
    assert (folder / rundir.MODEL).read_bytes() == (chosen / rundir.MODEL).read_bytes()
    results = json.loads((folder / rundir.RESULTS).read_text())
    point = json.loads((chosen / rundir.RESULTS).read_text())
    assert results["selection"] == selection and results["options"] == point["options"]
    assert results["run"] == rundir.run_identity(folder / rundir.CONFIG) != point["run"]
    for label in labels:  # each point is a finished run folder of its own
        assert rundir.run_status(folder / POINTS / label) == rundir.DONE


class _Killed(BaseException):
    """Stands for the process being killed."""


def test_a_killed_tuned_run_resumes_and_reuses_its_finished_points(files, monkeypatch):
    from boomda import run as run_module

    fit = run_module.DomainAdapter.fit
    calls = []

    def dying_fit(self, pair, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second point dies after its first checkpoint
            step = kwargs.pop("on_step")

            def on_step(log):
                step(log)
                if log.step >= 5:
                    raise _Killed
            kwargs["on_step"] = on_step
        return fit(self, pair, **kwargs)

    monkeypatch.setattr(run_module.DomainAdapter, "fit", dying_fit)
    points = sweep_points("boomda", {"alpha2": [10.0, 1000.0, 100.0]})
    with pytest.raises(_Killed):
        run_tuned(_config("killed"), "im", points)
    folder = files / "runs" / "killed"
    first = folder / POINTS / "alpha2=10"
    second = folder / POINTS / "alpha2=1000"
    assert rundir.run_status(first) == rundir.DONE
    assert rundir.run_status(second) == rundir.UNFINISHED
    assert not (folder / POINTS / "alpha2=100").exists()
    assert rundir.run_status(folder) == rundir.UNFINISHED
    finished = (first / rundir.RESULTS).read_bytes()
    model_time = (first / rundir.MODEL).stat().st_mtime_ns

    monkeypatch.setattr(run_module.DomainAdapter, "fit", fit)
    code = main(["run", "--resume", str(folder), "--no-progress"])
    assert code == 0
    assert (first / rundir.RESULTS).read_bytes() == finished  # not trained again
    assert (first / rundir.MODEL).stat().st_mtime_ns == model_time
    resumed = json.loads((second / rundir.RESULTS).read_text())
    assert resumed["resumed_at_step"] is not None
    assert rundir.run_status(folder) == rundir.DONE
    with pytest.raises(BoomdaError, match="already finished"):
        resume_tuned(folder)
    with pytest.raises(BoomdaError, match="a tuned run .* boomda.tune.resume_tuned"):
        resume_experiment(folder)

    # the same as an uninterrupted tuned run
    whole = run_tuned(_config("whole"), "im", points)
    assert whole.results["selection"]["points"] == json.loads(
        (folder / SELECTION).read_text())["points"]


def test_command_line_tuned_run_and_its_summary(files, capsys):
    code = main(["run", "--source", "source.npz", "--target", "target.npz", "--method", "dann",
                 "--select", "im", "--sweep", "trade_off=0.1,1", "--epochs",
                 "2", "--batch-size", "16", "--dim", "8", "--hidden", "16", "--device", "cpu",
                 "--name", "cli", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    selection = json.loads((files / "runs" / "cli" / SELECTION).read_text())
    assert f"* {selection['chosen']}" in out and "im*" in out
    assert "target F1 (reporting only)" in out and f"chosen          {selection['chosen']}" in out
    assert "add --select im" not in out
    assert main(["diagnose", "--run", "runs/cli", "--out", "diag", "--no-progress"]) == 0
    assert (files / "diag" / "diagnosis.json").is_file()
    # a plain run on the user's own pair says how to tune
    code = main(["run", "--source", "source.npz", "--target", "target.npz", "--epochs", "1",
                 "--dim", "8", "--hidden", "16", "--device", "cpu", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "defaults        chosen on other tasks" in out
    assert "add --select im" in out


def test_overwrite_replaces_a_tuned_folder(files):
    points = sweep_points("boomda", {"alpha2": [10.0]})
    first = run_tuned(_config("again"), "im", points)
    with pytest.raises(BoomdaError, match="already exists"):
        run_tuned(_config("again"), "im", points)
    second = run_tuned(_config("again"), "im", points, overwrite=True)
    assert second.results["run"]["id"] != first.results["run"]["id"]
    assert dataclasses.is_dataclass(second.summary)


@pytest.mark.integration
def test_points_in_worker_processes_choose_as_one_process(files):
    points = sweep_points("dann", {"trade_off": [0.1, 1.0, 10.0]})
    one = run_tuned(_config("one", "dann"), "im", points)
    two = run_tuned(_config("two", "dann"), "im", points, workers=2)
    assert two.results["selection"] == one.results["selection"]
    for (name, a), (_, b) in zip(one.adapter.method.state_dict().items(),
                                 two.adapter.method.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_the_documented_presets_are_the_code_s():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    method = (docs / "method.md").read_text()
    for i, point in enumerate(METHODS["boomda"].preset):
        default = " (default)" if i == 0 else ""
        assert f"| {i + 1}{default} | {point['ca_form']} | {point['alpha2']:g} |" in method
    weights = ", ".join(f"{p['trade_off']:g}" for p in METHODS["dann"].preset)
    assert f"`trade_off` = {weights} |" in (docs / "baselines.md").read_text()
    alpha1 = ", ".join(f"{p['alpha1']:g}" for p in METHODS["pl"].preset)
    assert alpha1.replace("0.5", "0.5 (default)", 1) in method
