"""Every bad input gets a clear error naming the field at fault."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from boomda import DomainAdapter, DomainPair, MultimodalData, RunConfig, TrainConfig
from boomda.cli import main
from boomda.errors import BoomdaError, ConfigError, DataError
from boomda.methods import check_config
from tests.conftest import make_views


def _pair(**kwargs):
    views, y = make_views(**kwargs)
    return DomainPair.from_arrays(MultimodalData(views, y), MultimodalData(views), holdout=0)


def test_different_sample_counts():
    with pytest.raises(DataError, match=r"'a' has 5, 'b' has 4"):
        MultimodalData({"a": np.zeros((5, 2)), "b": np.zeros((4, 3))})


@pytest.mark.parametrize("bad, kind", [(np.nan, "NaN"), (np.inf, "inf")])
def test_non_finite_values(bad, kind):
    x = np.zeros((5, 3))
    x[2, 1] = bad
    with pytest.raises(DataError, match=rf"source\['b'\].*{kind} at sample 2, feature 1"):
        MultimodalData({"a": np.zeros((5, 2)), "b": x}, name="source")


def test_unknown_modality():
    views, y = make_views()
    data = MultimodalData(views, y)
    with pytest.raises(DataError, match="unknown modality 'audio'"):
        data.select(["m0", "audio"])
    adapter = DomainAdapter(method="dt", epochs=1, dim=4, hidden=8).fit(_pair())
    # a modality left out is absent (boomda.partial), but not when a misspelt name explains it
    with pytest.raises(DataError, match=r"unknown modality 'mm2' \(and no 'm2'\)"):
        adapter.predict({"m0": views["m0"], "m1": views["m1"], "mm2": views["m2"]})
    with pytest.raises(DataError, match=r"inputs\['m1'\]: 3 features, the model expects 7"):
        adapter.predict({"m0": views["m0"], "m1": views["m2"], "m2": views["m2"]})


def test_target_modalities_must_match_source():
    views, y = make_views()
    target = {k: v for k, v in views.items() if k != "m1"}
    with pytest.raises(DataError, match="modality 'm1' is not in both source and target"):
        DomainPair.from_arrays(MultimodalData(views, y), MultimodalData(target), holdout=0)


def test_unknown_method_and_solver():
    """The estimator's arguments are checked when it is fitted (scikit-learn's convention:
    the constructor stores them as given)."""
    DomainAdapter(method="danm", gamma_solver="qp", learning_rate=0.1)  # no error yet
    with pytest.raises(ConfigError, match="unknown method 'danm'"):
        DomainAdapter(method="danm").fit(_pair())
    with pytest.raises(ConfigError, match="unknown gamma_solver 'qp'"):
        check_config(TrainConfig(options={"gamma_solver": "qp"}))
    with pytest.raises(ConfigError, match="unknown gamma_solver 'qp'"):
        DomainAdapter(gamma_solver="qp").fit(_pair())
    with pytest.raises(BoomdaError, match="method 'boomda' has no option 'learning_rate'; "
                                          "its options: alpha1, alpha2, vote_threshold"):
        DomainAdapter(learning_rate=0.1).fit(_pair())


def test_boomda_options_are_method_options():
    """Boomda's hyperparameters live in TrainConfig.options like a baseline's: a keyword of
    DomainAdapter that is not a TrainConfig field goes there, a baseline refuses them, and a
    YAML train section that sets one directly is told where it belongs."""
    adapter = DomainAdapter(alpha2=10, gamma_solver="exact", epochs=3)
    assert adapter.config.options == {"alpha2": 10, "gamma_solver": "exact"}
    assert adapter.config.epochs == 3
    options = check_config(adapter.config)
    assert (options.alpha2, options.gamma_solver, options.alpha1) == (10.0, "exact", 0.5)
    assert isinstance(options.alpha2, float)
    with pytest.raises(ConfigError, match="method 'dann' has no option 'alpha2'"):
        DomainAdapter(method="dann", alpha2=10).fit(_pair())
    with pytest.raises(ConfigError, match=r"cfg.train: unknown option 'alpha2'.* go under "
                                          r"cfg.train.options"):
        RunConfig.from_dict({"train": {"alpha2": 10}}, where="cfg")
    config = RunConfig.from_dict({"train": {"options": {"alpha2": 10, "vote_threshold": 2}}})
    assert check_config(config.train, n_modalities=2).vote_threshold == 2
    with pytest.raises(ConfigError, match="option alpha1 must be >= 0, got -1.0"):
        DomainAdapter(alpha1=-1).fit(_pair())


def test_labels_outside_class_set():
    views, y = make_views(n_classes=3)
    with pytest.raises(DataError, match=r"source.labels: label 2 at sample 2 is outside .*0..1"):
        DomainPair.from_arrays(MultimodalData(views, y), MultimodalData(views), n_classes=2,
                               holdout=0)
    with pytest.raises(DataError, match="negative class index -1"):
        MultimodalData(views, y - 1)
    with pytest.raises(DataError, match="must be integer class indices"):
        MultimodalData(views, y + 0.5)


def test_batch_of_fewer_than_two_samples():
    with pytest.raises(ConfigError, match="batch_size must be at least 2"):
        DomainAdapter(batch_size=1).fit(_pair())
    views, y = make_views(n=6)
    one = {k: v[:1] for k, v in views.items()}
    pair = DomainPair.from_arrays(MultimodalData(views, y), MultimodalData(one), n_classes=3,
                                  holdout=0)
    with pytest.raises(DataError, match="target: needs at least 2 samples"):
        DomainAdapter(method="boomda", epochs=1, dim=4, hidden=8).fit(pair)


def test_vote_threshold_above_m_plus_one():
    views, y = make_views(dims=(3, 4))  # M = 2 -> at most 3 votes
    pair = DomainPair.from_arrays(MultimodalData(views, y), MultimodalData(views), holdout=0)
    with pytest.raises(ConfigError, match=r"vote_threshold \(M_v\) = 4 exceeds M\+1 = 3"):
        DomainAdapter(vote_threshold=4, epochs=1).fit(pair)


def test_empty_target_set():
    views, y = make_views()
    empty = {k: v[:0] for k, v in views.items()}
    with pytest.raises(DataError, match="target: the target set is empty"):
        DomainPair.from_arrays(MultimodalData(views, y), MultimodalData(empty), holdout=0)


def test_single_modality_is_rejected():
    views, y = make_views(dims=(3,))
    pair = DomainPair.from_arrays(MultimodalData(views, y), MultimodalData(views), holdout=0)
    with pytest.raises(DataError, match="at least 2 modalities"):
        DomainAdapter(epochs=1).fit(pair)


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.train: unknown option 'epoch'"):
        RunConfig.from_yaml(bad)
    bad.write_text("train:\n  epochs: many\n")
    with pytest.raises(ConfigError, match=r"train.epochs: cannot read 'many' as int"):
        RunConfig.from_yaml(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        RunConfig.from_yaml(tmp_path / "missing.yaml")


def test_cli_reports_errors_without_traceback(capsys):
    assert main(["run", "--method", "nope", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "boomda: error: unknown method 'nope'" in err and "Traceback" not in err
    assert main(["run", "--modalities", "fou,audio", "--no-progress"]) == 2
    assert "unknown modality 'audio'" in capsys.readouterr().err
    assert main(["run", "--shift", "fou=noise:db=3", "--no-progress"]) == 2
    assert "unknown parameter 'db'" in capsys.readouterr().err
    assert main(["run", "--modalities", "fou,kar", "--vote-threshold", "4",
                 "--no-progress"]) == 2
    assert "exceeds M+1 = 3" in capsys.readouterr().err
    assert main(["run", "--method", "dann", "--alpha2", "4", "--no-progress"]) == 2
    assert "method 'dann' has no option 'alpha2'" in capsys.readouterr().err
    assert main(["run", "--ca-form", "frob", "--no-progress"]) == 2
    assert "unknown ca_form 'frob'" in capsys.readouterr().err
    assert main(["run", "--gamma-normalization", "l3", "--no-progress"]) == 2
    assert "unknown gamma_normalization 'l3'" in capsys.readouterr().err
    assert main(["bench", "configs/grid-ablation.yaml", "--select", "oracle"]) == 2
    assert "--select 'oracle': choose a validator" in capsys.readouterr().err


def test_shipped_config_spells_out_the_defaults():
    import dataclasses
    from pathlib import Path

    from boomda.methods import BoomdaOptions

    shipped = RunConfig.from_yaml(Path(__file__).parents[1] / "configs" / "embedded.yaml")
    # every Boomda option spelled out with its default value and type
    assert shipped.train.options == dataclasses.asdict(BoomdaOptions())
    assert [type(v) for v in shipped.train.options.values()] == \
        [type(v) for v in dataclasses.asdict(BoomdaOptions()).values()]
    shipped.train.options = {}
    assert shipped.to_dict() == RunConfig().to_dict()


def test_readme_own_data_command_works_as_written(tmp_path, monkeypatch, capsys):
    """The README's command on a .npz with other modality names: the embedded data's default
    views and shifts do not apply to another data set."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savez("d.npz", audio=rng.random((200, 8)), video=rng.random((200, 6)),
             labels=np.arange(200) % 4)
    code = main(["run", "--dataset", "d.npz", "--modalities", "audio,video", "--shift",
                 "audio=noise:snr=1", "--epochs", "1", "--no-progress", "--name", "own"])
    assert code == 0, capsys.readouterr().err
    resolved = yaml.safe_load((tmp_path / "runs" / "own" / "config.yaml").read_text())
    assert resolved["data"]["shifts"] == {"audio": "noise:snr=1"}
    # without --modalities: every array of the file but labels
    assert main(["run", "--dataset", "d.npz", "--epochs", "1", "--no-progress",
                 "--name", "all"]) == 0
    resolved = yaml.safe_load((tmp_path / "runs" / "all" / "config.yaml").read_text())
    assert resolved["data"]["modalities"] == ["audio", "video"]
    assert resolved["data"]["shifts"] == {}
    # the same from a config file that names only the data set
    config = RunConfig.from_dict({"data": {"dataset": "d.npz"}})
    assert config.data.modalities == [] and config.data.shifts == {}
    assert RunConfig.from_dict({}).data.shifts == RunConfig().data.shifts


def test_one_modality_and_stray_labels_get_the_right_message(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--modalities", "fou", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "needs at least 2 modalities" in err and "M_v" not in err
    rng = np.random.default_rng(1)
    labels = np.arange(200) % 4
    labels[17] = 99
    np.savez("stray.npz", a=rng.random((200, 3)), b=rng.random((200, 2)), labels=labels)
    # every distinct label is a class: the stray one is said, and is a class of its own
    assert main(["run", "--dataset", "stray.npz", "--no-progress", "--epochs", "1",
                 "--shift", "a=noise:snr=1", "--name", "stray"]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == ("boomda: warning: stray.npz: class(es) with fewer than 2 "
                                    "samples: '99' (1); a stray label? (every distinct label is "
                                    "a class)")
    assert "classes         5: 0, 1, 2, 3, 99" in captured.out


def test_run_help_shows_every_training_option_with_its_default(capsys):
    import re

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    options = capsys.readouterr().out.split("options:", 1)[1]
    for flag, default in (("--seed", "0"), ("--epochs", "30"), ("--batch-size", "48"),
                          ("--lr", "0.001"), ("--beta", "0.0005"), ("--alpha1", "0.5"),
                          ("--alpha2", "100.0"), ("--dim", "256"), ("--hidden", "512"),
                          ("--dropout", "0.1"), ("--device", "auto")):
        entry = re.search(rf"\n  {flag} [A-Z_0-9]+\s+(.*?)(?=\n  -|\Z)", options, re.S)
        assert entry is not None, flag
        assert f"(default {default})" in " ".join(entry.group(1).split()), flag


def test_bad_files_and_options_end_in_one_line(tmp_path, monkeypatch, capsys):
    """Each of these ended in a traceback; now: exit code 2 and one line naming the culprit."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.npz").write_bytes(b"")
    np.savez("one.npz", a=np.zeros((1, 3)), b=np.zeros((1, 2)), labels=np.zeros(1, int))
    rng = np.random.default_rng(2)
    np.savez("d.npz", a=rng.random((40, 3)), b=rng.random((40, 2)), labels=np.arange(40) % 2)
    (tmp_path / "afile").write_text("")
    (tmp_path / "bad.yaml").write_text("data:\n  split_seed: abc\n")
    cases = [
        (["run", "--dataset", "empty.npz"], "empty.npz: cannot read as .npz"),
        (["run", "--dataset", "one.npz"], "1 samples; the protocol"),
        (["run", "--dataset", "d.npz", "--out", "afile", "--epochs", "1"],
         "cannot create the run folder"),
        (["run", "--dataset", "d.npz", "--name", "x" * 300, "--epochs", "1"],
         "option name: 300 bytes; a folder name holds at most 255"),
        (["run", "--config", "bad.yaml"], "data.split_seed: cannot read 'abc' as int"),
    ]
    for argv, message in cases:
        assert main([*argv, "--no-progress"]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err
    with pytest.raises(ConfigError, match="epochs: cannot read 'three' as int"):
        DomainAdapter(epochs="three").fit(_pair())
    assert DomainAdapter(epochs="3").config.epochs == 3


def test_non_finite_loss_is_a_one_line_training_error(tmp_path, monkeypatch, capsys):
    from boomda.errors import TrainingError

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(3)
    np.savez("d.npz", a=rng.random((40, 3)), b=rng.random((40, 2)), labels=np.arange(40) % 2)
    assert main(["run", "--dataset", "d.npz", "--lr", "1e30", "--epochs", "3",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "the loss became non-finite" in err and "Traceback" not in err
    assert issubclass(TrainingError, FloatingPointError)


def test_one_builder_checks_keys_and_coerces_by_annotation():
    """Every config section, method options, estimator keywords and shift parameters go
    through config.assign / check_keys: values are coerced to the field's annotation (an
    optional field keeps None), and an unknown key is one error naming where it was."""
    from boomda.config import DataConfig, assign, check_keys, coerce_to

    data = assign(DataConfig(), {"split_seed": "7", "holdout": "0.25"}, "data")
    assert (data.split_seed, data.holdout) == (7, 0.25)
    assert assign(DataConfig(), {"split_seed": None}, "data").split_seed is None
    train = assign(TrainConfig(), {"betas": "0.8,0.95", "epochs": 3.0}, "train")
    assert train.betas == (0.8, 0.95) and train.epochs == 3
    assert coerce_to("yes", bool, "x") is True and coerce_to(["a", 1], list[str], "x") == ["a", "1"]
    with pytest.raises(ConfigError, match=r"^train: unknown option 'epoch'; allowed: method"):
        assign(TrainConfig(), {"epoch": 3}, "train")
    with pytest.raises(ConfigError, match=r"^data.split_seed: cannot read 'x' as int"):
        assign(DataConfig(), {"split_seed": "x"}, "data")
    with pytest.raises(ConfigError, match=r"^unknown option 'nope'; allowed: a, b$"):
        check_keys({"nope": 1}, ["a", "b"], "")
    with pytest.raises(ConfigError, match="method 'boomda' has no option 'bogus'"):
        DomainAdapter(bogus=1).fit(_pair())
    with pytest.raises(ConfigError, match="shift 'noise': unknown parameter 'db'; allowed: snr"):
        from boomda.data.shifts import parse_shift

        parse_shift("noise:db=3")


def test_config_does_not_import_the_methods():
    """config is imported by the methods, never the other way round, not even lazily inside a
    function: boomda.methods.check_config checks a config's method and its options."""
    import ast

    import boomda.config

    tree = ast.parse(Path(boomda.config.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for a in node.names}
    assert "boomda.errors" in imported
    assert not {m for m in imported
                if m and m.startswith(("boomda.methods", "boomda.balance", "boomda.losses"))}


@pytest.mark.parametrize("keyword, hint", [
    ("epoch", "; did you mean the training option 'epochs'?"),
    ("batchsize", "; did you mean the training option 'batch_size'?"),
    ("alpha_2", "; did you mean boomda's option 'alpha2' or boomda's option 'alpha1'?"),
    ("zzz", "; nor is it a training option (method, epochs, batch_size, lr, betas, "
            "weight_decay, optimizer, lr_schedule, grad_clip, beta, dim, hidden, dropout, "
            "modality_dropout, seed, device, precision, select_epoch)"),
])
def test_a_misspelt_keyword_names_the_close_training_or_method_option(keyword, hint):
    with pytest.raises(ConfigError) as err:
        DomainAdapter(**{keyword: 3}).fit(_pair())
    assert str(err.value) == (f"method 'boomda' has no option {keyword!r}; its options: alpha1, "
                              f"alpha2, vote_threshold, gamma_solver, gamma_normalization, "
                              f"ca_form{hint}")
    with pytest.raises(ConfigError, match=r"method 'dann' has no option 'trade_of'; its options: "
                                          r"trade_off, .*; did you mean dann's option "
                                          r"'trade_off'\?$"):
        DomainAdapter(method="dann", trade_of=0.5).fit(_pair())
