"""A user's own pair of domains in two files, through every command; class labels of any kind.

The target's labels serve scoring only: a run with them permuted, or removed, trains exactly the
same model (every metrics value but the pseudo-labels' accuracy, which is the one diagnostic
documented as reading them, and every parameter).
"""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from boomda import rundir
from boomda.cli import main
from boomda.config import RunConfig
from boomda.data.container import MultimodalData
from boomda.data.files import file_pair
from boomda.data.labels import class_names, encode_labels
from boomda.data.pair import DomainPair
from boomda.errors import ConfigError, DataError
from boomda.estimator import DomainAdapter
from boomda.grid import GridSpec, run_grid
from boomda.run import run_experiment
from tests.conftest import two_view_domain

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAMES = np.array(["angry", "happy", "neutral", "sad"])


def _domain(n, seed, shift=0.0):
    return two_view_domain(n, seed, shift, n_classes=4)


@pytest.fixture
def files(tmp_path, monkeypatch):
    """source.npz (string labels), target.npz (labels) and unlabelled.npz in tmp_path."""
    monkeypatch.chdir(tmp_path)
    views, y = _domain(80, 0)
    np.savez("source.npz", **views, labels=NAMES[y])
    views, y = _domain(48, 1, shift=1.0)
    np.savez("target.npz", **views, labels=NAMES[y])
    np.savez("unlabelled.npz", **views)
    return tmp_path


def _call(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _config(source, target, name, out="runs", **data):
    return RunConfig.from_dict({
        "data": {"source": str(source), "target": str(target), **data},
        "train": {"epochs": 3, "batch_size": 16, "dim": 8, "hidden": 16, "seed": 2,
                  "device": "cpu"},
        "out": str(out), "name": name})


# --------------------------------------------------------------------------- labels


def test_class_names_are_sorted_and_mapped_by_name():
    assert class_names(np.array(["sad", "angry", "sad", "happy"]), "y") == ["angry", "happy",
                                                                            "sad"]
    assert class_names(np.array([99, 3, 7, 3]), "y") == ["3", "7", "99"]  # numeric order
    indices, classes = encode_labels(np.array([99, 3, 7, 3]), "y")
    assert classes == ("3", "7", "99") and indices.tolist() == [2, 0, 1, 0]
    indices, _ = encode_labels(np.array([b"sad", b"angry"]), "y", ("angry", "sad"))
    assert indices.tolist() == [1, 0]
    with pytest.raises(DataError, match=r"y: class 'calm' is not among the source's classes "
                                        r"\(angry, sad\)"):
        encode_labels(np.array(["sad", "calm"]), "y", ("angry", "sad"))
    with pytest.raises(DataError, match="y: labels must be integers or class names, got "
                                        "non-integer float64"):
        encode_labels(np.array([0.5, 1.0]), "y")


def test_named_labels_through_the_python_api():
    views, y = _domain(64, 0)
    source = MultimodalData(views, NAMES[y])
    assert source.classes == tuple(NAMES) and np.array_equal(source.labels, y)
    tv, ty = _domain(40, 1)
    reordered = ["sad", "neutral", "happy", "angry"]  # the target's own class order
    target = MultimodalData(tv, [reordered.index(n) for n in NAMES[ty]], classes=reordered)
    pair = DomainPair.from_arrays(source, target, holdout=0.25, seed=0)
    assert pair.classes == list(NAMES) and np.array_equal(pair.target.labels, ty)
    assert len(pair.source_holdout) == 16 and len(pair.source) == 48
    assert np.array_equal(np.bincount(pair.source_holdout.labels), [4, 4, 4, 4])
    with pytest.raises(DataError, match="target.labels: class 'calm' is not among"):
        DomainPair.from_arrays(source, MultimodalData(tv, np.array(["calm"] * 40)))


# --------------------------------------------------------------------------- pair checks


@pytest.mark.parametrize("case, message", [
    ("target_lacks", r"target\.npz: has no modality 'video', which source\.npz has; choose the "
                     r"common modalities with --modalities \(audio\)"),
    ("disjoint", r"source\.npz and target\.npz have no modality in common"),
    ("width", r"target\.npz\['video'\]: 4 features, but source\.npz\['video'\] has 5"),
    ("nan", r"target\.npz\['audio'\]: 1 non-finite value\(s\) \(first: NaN at sample 3, "
            r"feature 2\)"),
    ("inf", r"source\.npz\['video'\]: 1 non-finite value\(s\) \(first: inf at sample 0"),
    ("label_shape", r"source\.npz\['labels'\]: expected one label per sample, shape \(N,\), "
                    r"got shape \(80, 1\)"),
    ("label_count", r"target\.npz\.labels: expected shape \(48,\), one label per sample, got "
                    r"\(47,\)"),
    ("unknown_class", r"target\.npz\['labels'\]: class 'calm' is not among the source's "
                      r"classes \(angry, happy, neutral, sad\)"),
    ("no_source_labels", r"source\.npz \(source\): has no 'labels' array"),
    ("complex", r"source\.npz\['audio'\]: complex values"),
])
def test_each_pair_check_is_one_line_naming_the_file_and_field(files, capsys, case, message):
    source = dict(np.load("source.npz"))
    target = dict(np.load("target.npz"))
    if case == "target_lacks":
        del target["video"]
    elif case == "disjoint":
        target = {"other": target["audio"], "labels": target["labels"]}
    elif case == "width":
        target["video"] = target["video"][:, :4]
    elif case == "nan":
        target["audio"][3, 2] = np.nan
    elif case == "inf":
        source["video"][0, 1] = np.inf
    elif case == "label_shape":
        source["labels"] = source["labels"][:, None]
    elif case == "label_count":
        target["labels"] = target["labels"][:47]
    elif case == "unknown_class":
        target["labels"][5] = "calm"
    elif case == "no_source_labels":
        del source["labels"]
    elif case == "complex":
        source["audio"] = source["audio"] + 1j
    np.savez("source.npz", **source)
    np.savez("target.npz", **target)
    code, out, err = _call(["run", "--source", "source.npz", "--target", "target.npz",
                            "--no-progress"], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("boomda: error: ")
    import re

    assert re.search(message, err), err


@pytest.mark.parametrize("argv, message", [
    (["--source", "source.npz"], "--source needs --target"),
    (["--target", "target.npz"], "--target needs --source"),
    (["--source", "source.npz", "--target", "target.npz", "--dataset", "mfeat"],
     "--dataset (one data set, split by the protocol) and --source/--target (your own pair) "
     "exclude each other"),
    (["--modalities", "fou,kar", "--shift", "pix=mask:fraction=0.4"],
     "--shift pix=mask:fraction=0.4: modality 'pix' is not among the modalities fou,kar"),
])
def test_option_errors(files, capsys, argv, message):
    code, _, err = _call(["run", "--no-progress", *argv], capsys)
    assert code == 2 and message in err


def test_yaml_pair_errors(files):
    with pytest.raises(ConfigError, match="a real pair needs both 'source' and 'target' "
                                          "files; 'target' is missing"):
        RunConfig.from_dict({"data": {"source": "source.npz"}})
    with pytest.raises(ConfigError, match="'dataset' .* and 'source'/'target' .* exclude"):
        RunConfig.from_dict({"data": {"source": "s", "target": "t", "dataset": "mfeat"}})
    config = RunConfig.from_dict({"data": {"source": "s.npz", "target": "t.npz"}})
    assert config.data.modalities == [] and config.data.shifts == {}  # not the embedded data's


def test_no_shift_says_source_and_target_are_the_same_distribution(files, capsys):
    code, out, err = _call(["run", "--dataset", "source.npz", "--epochs", "1", "--no-progress",
                            "--batch-size", "8"], capsys)
    assert code == 0
    assert err.strip() == (
        "boomda: warning: no target shift on audio, video: source and target are two random "
        "halves of source.npz, the same distribution; give a shift per modality (--shift "
        "MODALITY=SPEC) or a real target (--source/--target)")
    code, _, err = _call(["run", "--dataset", "source.npz", "--epochs", "1", "--no-progress",
                          "--batch-size", "8", "--shift", "audio=noise:snr=1"], capsys)
    assert code == 0 and err == ""


# --------------------------------------------------------------------------- the run


def test_a_run_on_two_files_as_a_new_user_types_it(files, capsys):
    code, out, err = _call(["run", "--source", "source.npz", "--target", "unlabelled.npz",
                            "--epochs", "2", "--batch-size", "16", "--no-progress", "--name",
                            "mine"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert "classes         4: angry, happy, neutral, sad" in lines
    assert ("target          no labels: judged by the label-free validators below only"
            in lines)
    results = json.loads(Path("runs/mine/results.json").read_text())
    assert results["target"] is None and results["classes"] == list(NAMES)
    assert set(results["validators"]) == {"source_risk", "im", "snd", "dev"}
    assert results["source_holdout"]["n"] == 16  # 20 % of 80, stratified
    config = yaml.safe_load(Path("runs/mine/config.yaml").read_text())
    assert config["pair"]["source"] == "source.npz" and config["pair"]["target_labels"] is False
    # labelled target: scored
    code, out, _ = _call(["run", "--source", "source.npz", "--target", "target.npz",
                          "--epochs", "2", "--batch-size", "16", "--no-progress", "--name",
                          "scored"], capsys)
    scored = json.loads(Path("runs/scored/results.json").read_text())
    assert code == 0 and scored["target"]["n"] == 48
    # the same model: the labels did not change the training
    assert scored["final_gamma"] == results["final_gamma"]
    assert scored["validators"] == results["validators"]


def _trained(folder):
    lines = [json.loads(line) for line in (folder / rundir.METRICS).read_text().splitlines()]
    for line in lines:
        line.pop("seconds")
        line.pop("pseudo_accuracy")  # the diagnostic that reads the target's labels
    state = DomainAdapter.load(folder / rundir.MODEL, device="cpu").method.state_dict()
    return lines, {k: v.numpy() for k, v in state.items()}


def test_training_never_reads_the_target_labels(files):
    target = dict(np.load("target.npz"))
    rng = np.random.default_rng(5)
    np.savez("permuted.npz", **{**target, "labels": rng.permutation(target["labels"])})
    runs = {}
    for name in ("target", "permuted", "unlabelled"):
        result = run_experiment(_config("source.npz", f"{name}.npz", name, out="inv"))
        runs[name] = _trained(result.folder)
    lines, params = runs["target"]
    assert any(line["n_pseudo"] for line in lines)  # pseudo-labels were drawn
    for other in ("permuted", "unlabelled"):
        other_lines, other_params = runs[other]
        assert other_lines == lines
        assert other_params.keys() == params.keys()
        for key in params:
            assert np.array_equal(other_params[key], params[key]), (other, key)
    # the labels are read for scoring: each run's score is its predictions' against them
    adapter = DomainAdapter.load("inv/target/model.pt", device="cpu")
    views = dict(np.load("target.npz"))
    predicted = adapter.classes[adapter.predict({m: views[m] for m in ("audio", "video")})]
    for name in ("target", "permuted"):
        labels = np.load(f"{name}.npz")["labels"]
        score = json.loads(Path(f"inv/{name}/results.json").read_text())["target"]
        assert score["accuracy"] == pytest.approx(100 * np.mean(predicted == labels))
    assert json.loads(Path("inv/unlabelled/results.json").read_text())["target"] is None


def test_string_labels_end_to_end(files, capsys):
    pair = file_pair("source.npz", "target.npz", holdout=0.2, seed=0)
    adapter = DomainAdapter(epochs=3, batch_size=16, dim=8, hidden=16, device="cpu").fit(pair)
    assert list(adapter.classes) == list(NAMES)
    adapter.save("model.pt")
    loaded = DomainAdapter.load("model.pt", device="cpu")
    assert list(loaded.classes) == list(NAMES)
    views = dict(np.load("target.npz"))
    true = views.pop("labels")
    names = loaded.classes[loaded.predict(views)]
    expected = NAMES[adapter.predict(pair.target)]
    assert np.array_equal(names, expected)
    accuracy = 100 * float(np.mean(names == true))
    code, out, err = _call(["predict", "model.pt", "target.npz", "--out", "pred.csv"], capsys)
    assert code == 0, err
    with open("pred.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["index", "predicted", "p_angry", "p_happy", "p_neutral", "p_sad"]
    assert [r[1] for r in rows[1:]] == list(names)
    assert f"accuracy {accuracy:.2f}" in out
    # a target class the model does not know
    views["labels"] = np.where(true == "sad", "calm", true)
    np.savez("odd.npz", **views)
    code, _, err = _call(["predict", "model.pt", "odd.npz"], capsys)
    assert code == 2 and "odd.npz['labels']: class 'calm' is not among the source's classes" in err


def test_integer_labels_of_any_values_are_classes(files, capsys):
    views, y = _domain(80, 0)
    np.savez("ints.npz", **views, labels=np.array([3, 7, 99, 12])[y])
    code, out, err = _call(["run", "--source", "ints.npz", "--target", "unlabelled.npz",
                            "--epochs", "1", "--batch-size", "16", "--no-progress"], capsys)
    assert code == 0, err
    assert "classes         4: 3, 7, 12, 99" in out.splitlines()


def test_diagnose_a_real_pair(files, capsys):
    code, out, err = _call(["diagnose", "--source", "source.npz", "--target", "target.npz",
                            "--out", "diag", "--no-progress"], capsys)
    assert code == 0, err
    diagnosis = json.loads(Path("diag/diagnosis.json").read_text())
    # the shifted target: audio moved by +1 in every feature (its covariance unchanged),
    # video's noise doubled (its covariance changed, its mean not)
    audio, video = diagnosis["inputs"]["audio"], diagnosis["inputs"]["video"]
    assert audio["domain_accuracy"] > video["domain_accuracy"]  # a linear domain classifier
    assert video["coral"] > audio["coral"]
    assert diagnosis["n_source"] == 64 and diagnosis["n_target"] == 48


def test_a_grid_with_a_two_file_task(files):
    spec = GridSpec.from_dict({
        "name": "pairs",
        "base": {"train": {"epochs": 2, "batch_size": 16, "dim": 8, "hidden": 16,
                           "device": "cpu"}},
        "methods": ["dt", "boomda"],
        "tasks": {"mine": {"source": "source.npz", "target": "target.npz"},
                  "mine-unlabelled": {"source": "source.npz", "target": "unlabelled.npz"}},
        "seeds": [0],
    })
    result = run_grid(spec, files / "g", workers=1, threads=1, progress=False, report=True)
    assert result.done == 4 and result.failed == 0
    report = (files / "g" / "report.md").read_text()
    assert "mine" in report
    scored = json.loads((files / "g/runs/boomda__mine__seed0/results.json").read_text())
    assert scored["target"]["n"] == 48 and scored["classes"] == list(NAMES)
    unscored = json.loads((files / "g/runs/boomda__mine-unlabelled__seed0/results.json")
                          .read_text())
    assert unscored["target"] is None


def test_a_single_array_file_is_not_a_pair_file(files, capsys):
    np.save("single.npy", np.zeros((48, 6)))
    Path("single.npy").rename("single.npz")
    code, _, err = _call(["run", "--source", "source.npz", "--target", "single.npz",
                          "--no-progress"], capsys)
    assert code == 2 and err.strip() == ("boomda: error: single.npz: holds one array, not a .npz "
                                         "archive of named arrays (save one with np.savez)")


def test_a_file_of_python_objects_is_refused_without_unpickling(files, capsys):
    np.savez("objects.npz", audio=np.array([{"x": 1}, None], dtype=object),
             video=np.zeros((2, 5)), labels=np.array(["a", "b"]))
    code, _, err = _call(["run", "--source", "objects.npz", "--target", "target.npz",
                          "--no-progress"], capsys)
    assert code == 2 and err.strip() == (
        "boomda: error: objects.npz: holds Python objects (pickled arrays); save plain numeric "
        "arrays, and labels as strings or integers")
