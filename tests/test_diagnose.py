"""The per-modality shift diagnosis (boomda.diagnose): the measures against closed forms, the
ranking on a pair where one modality is shifted and the others are clean, the files it writes,
the run folder's diagnosis.json, and the command line."""

import json

import numpy as np
import pytest
import torch

from boomda import DomainAdapter
from boomda.cli import main
from boomda.config import RunConfig
from boomda.data.container import MultimodalData
from boomda.data.pair import DomainPair
from boomda.diagnose import Diagnosis, coral_distance, diagnose, domain_accuracy
from boomda.errors import DataError
from boomda.run import run_experiment
from tests.conftest import make_views

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHIFTED = "m1"


@pytest.fixture(scope="module")
def one_shifted():
    """Three modalities of 6 features; only m1 is shifted (darkened and noisy)."""
    views, y = make_views(n=600, dims=(6, 6, 6), seed=1)
    return DomainPair.from_protocol(MultimodalData(views, y),
                                    {SHIFTED: "scale_noise:scale=0.2,snr=0.5"}, seed=0)


@pytest.fixture(scope="module")
def model(one_shifted):
    return DomainAdapter(method="dt", epochs=4, dim=8, hidden=16, batch_size=32,
                         seed=0).fit(one_shifted)


def test_coral_distance_closed_form():
    """Doubling the features (and moving them) multiplies the covariance by 4 after the source
    standardisation: ||4C - C|| / ||C|| = 3 exactly; the same data give 0."""
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    assert coral_distance(xs, 2 * xs + 7) == pytest.approx(3.0, rel=1e-9)
    assert coral_distance(xs, xs) == pytest.approx(0.0, abs=1e-12)
    # by definition, with numpy's covariance and the source's statistics
    xt = rng.normal(size=(200, 5)) * 1.5
    z = (xs - xs.mean(0)) / xs.std(0)
    zt = (xt - xs.mean(0)) / xs.std(0)
    want = np.linalg.norm(np.cov(zt.T) - np.cov(z.T)) / np.linalg.norm(np.cov(z.T))
    assert coral_distance(xs, xt) == pytest.approx(want, rel=1e-9)


def test_domain_accuracy_is_chance_for_one_distribution_and_one_for_separated_ones():
    rng = np.random.default_rng(0)
    xs, xt = rng.normal(size=(600, 4)), rng.normal(size=(500, 4))
    assert abs(domain_accuracy(xs, xt, rng) - 0.5) < 0.06
    assert domain_accuracy(xs, xt + 10, rng) == 1.0
    # a change of variance only (same mean) is seen through the squared features (a linear
    # classifier on the features alone stays at chance; the Bayes accuracy here is 0.93)
    assert domain_accuracy(xs, 3 * xt, rng) > 0.75


def test_the_one_shifted_modality_ranks_first_by_every_measure(one_shifted, model):
    result = diagnose(one_shifted.source, one_shifted.target, model)
    for measure in ("domain_accuracy", "coral"):
        for level in ("inputs", "representations"):
            assert result.ranking(measure, level)[0] == SHIFTED, (measure, level)
    assert result.ranking("disagreement", "representations")[0] == SHIFTED
    inputs = {r.modality: r for r in result.inputs}
    assert inputs[SHIFTED].domain_accuracy > 0.9
    assert all(abs(inputs[m].domain_accuracy - 0.5) < 0.1 for m in ("m0", "m2"))
    with pytest.raises(DataError, match="disagreement is not measured at the level 'inputs'"):
        result.ranking("disagreement", "inputs")


def test_disagreement_is_the_share_of_target_samples_where_head_and_fused_head_differ(
        one_shifted, model):
    result = diagnose(one_shifted.source, one_shifted.target, model)
    net = model.net.eval()
    with torch.no_grad():
        out = net({m: torch.from_numpy(v) for m, v in one_shifted.target.views.items()})
    fused = out.fused_logits.argmax(dim=1).numpy()
    rows = {r.modality: r for r in result.representations}
    for j, m in enumerate(net.modalities):
        want = float(np.mean(out.logits[j].argmax(dim=1).numpy() != fused))
        assert rows[m].disagreement == pytest.approx(want)
    assert rows["fused"].disagreement is None


def test_json_round_trip_table_and_chart(one_shifted, model, tmp_path):
    result = diagnose(one_shifted.source, one_shifted.target, model, seed=3)
    path = result.write_json(tmp_path / "d" / "diagnosis.json")
    raw = json.loads(path.read_text())
    assert raw["ranking"]["inputs"]["coral"][0] == SHIFTED
    assert raw["n_source"] == len(one_shifted.source) and raw["seed"] == 3
    again = Diagnosis.from_dict(raw)
    assert again.inputs == result.inputs and again.representations == result.representations
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["diagnosis.json"]  # no temp file
    figure = result.plot(tmp_path / "d" / "diagnosis.png")
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = result.table().splitlines()
    assert table[2].split()[0] == "m0" and table[-1].split()[0] == "fused"


def test_inputs_only_diagnosis_and_bad_input(one_shifted):
    result = diagnose(one_shifted.source, one_shifted.target)
    assert result.representations is None
    assert result.ranking("coral")[0] == SHIFTED
    with pytest.raises(DataError, match="no representation measures"):
        result.ranking("coral", "representations")
    with pytest.raises(DataError, match="unknown measure 'mmd'"):
        result.ranking("mmd")
    with pytest.raises(DataError, match="same modalities"):
        diagnose(one_shifted.source, one_shifted.target.select(["m0", "m1"]))


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    """A .npz data set: 'b' of its two modalities is shifted by the CLI's --shift."""
    folder = tmp_path_factory.mktemp("diagnose-cli")
    views, y = make_views(n=200, dims=(4, 5), seed=2)
    np.savez(folder / "d.npz", a=views["m0"], b=views["m1"], labels=y)
    return folder


def test_run_folder_holds_the_diagnosis(npz, tmp_path):
    config = RunConfig.from_dict({
        "data": {"dataset": str(npz / "d.npz"), "shifts": {"b": "scale_noise:scale=0.2,snr=0.5"}},
        "train": {"method": "dt", "epochs": 2, "dim": 8, "hidden": 16},
        "out": str(tmp_path), "name": "r"})
    run_experiment(config)
    raw = json.loads((tmp_path / "r" / "diagnosis.json").read_text())
    assert set(raw["inputs"]) == {"a", "b"} and set(raw["representations"]) == {"a", "b", "fused"}
    assert raw["ranking"]["inputs"]["domain_accuracy"][0] == "b"


def test_cli_diagnose_prints_and_writes(npz, capsys, tmp_path):
    out = tmp_path / "diag"
    code = main(["diagnose", "--dataset", str(npz / "d.npz"), "--shift",
                 "b=scale_noise:scale=0.2,snr=0.5", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "inputs: domain acc" in printed and "representations" not in printed
    assert sorted(p.name for p in out.iterdir()) == ["diagnosis.json", "diagnosis.png"]
    assert json.loads((out / "diagnosis.json").read_text())["ranking"]["inputs"]["coral"] == \
        ["b", "a"]
    # a run folder: its pair and its model
    assert main(["run", "--dataset", str(npz / "d.npz"), "--shift", "b=noise:snr=0.5",
                 "--method", "dt", "--epochs", "1", "--out", str(tmp_path), "--name", "r",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["diagnose", "--run", str(tmp_path / "r"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "disagreement target/source" in printed and "fused" in printed
    assert json.loads((out / "diagnosis.json").read_text())["representations"] is not None


@pytest.mark.parametrize(("argv", "fragment"), [
    (["diagnose", "--run", "nowhere"], "--run nowhere: not a run folder"),
    (["diagnose", "--run", "RUN", "--seed", "1"], "--seed does not apply"),
    (["diagnose", "--dataset", "D", "--shift", "zzz=noise:snr=1"], "unknown modality 'zzz'"),
    (["diagnose", "--dataset", "D", "--modalities", "a,c"], "unknown modality 'c'"),
    (["diagnose", "--dataset", "D", "--model", "missing.pt"], "checkpoint not found"),
    (["diagnose", "--dataset", "D", "--out", "D"], "--out"),
])
def test_cli_diagnose_bad_input_is_one_line(npz, tmp_path, capsys, argv, fragment):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("{}\n")
    argv = [str(npz / "d.npz") if a == "D" else str(run) if a == "RUN" else a for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("boomda: error:") and fragment in lines[0], err
