"""Every error path of the command line ends in exit code 2 and one line on stderr that names
the culprit: no traceback, whatever the bad input."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from boomda.cli import main


def _call(argv, capsys):
    """(exit code, stderr) of ``boomda ARGV`` run in this process."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def _made(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        _make_files(tmp_path)
    return tmp_path


@pytest.fixture
def files(_made, monkeypatch):
    monkeypatch.chdir(_made)
    return _made


def _make_files(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "text.npz").write_text("not a zip")
    np.savez("one.npz", a=np.zeros((1, 3)), b=np.zeros((1, 2)), labels=np.zeros(1, int))
    np.savez("d.npz", a=rng.random((40, 3)), b=rng.random((40, 2)), labels=np.arange(40) % 2)
    np.savez("nolabels.npz", a=rng.random((40, 3)), b=rng.random((40, 2)))
    np.savez("onlya.npz", a=rng.random((40, 3)))
    np.savez("onlyc.npz", c=np.zeros((40, 3)))
    np.savez("fewcols.npz", a=rng.random((40, 2)), b=rng.random((40, 2)))
    (tmp_path / "afile").write_text("")
    (tmp_path / "folder").mkdir()
    (tmp_path / "bad_seed.yaml").write_text("data:\n  split_seed: abc\n")
    (tmp_path / "bad_syntax.yaml").write_text("data: [unclosed\n")
    (tmp_path / "bad_key.yaml").write_text("trian:\n  epochs: 3\n")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "grid_bad.yaml").write_text("name: g\nmethds: [dt]\n")
    (tmp_path / "grid_nosweep.yaml").write_text("name: g\nmethods: [dt]\nseeds: [0]\n")
    (tmp_path / "garbage.pt").write_bytes(b"\x00\x01garbage")
    torch.save({"format": 99}, tmp_path / "other.pt")
    code = main(["run", "--dataset", "d.npz", "--epochs", "1", "--name", "m", "--no-progress"])
    assert code == 0


#: (argv, a fragment the one line must hold)
CASES = [
    ([], "the following arguments are required"),
    (["fly"], "invalid choice: 'fly'"),
    (["run", "--epochs", "a"], "--epochs: invalid int value: 'a'"),
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
    (["run", "--method", "nope"], "unknown method 'nope'"),
    (["run", "--epochs", "0"], "option epochs must be at least 1"),
    (["run", "--lr", "-1"], "option lr must be positive"),
    (["run", "--batch-size", "1"], "option batch_size must be at least 2"),
    (["run", "--dropout", "1.5"], "option dropout must lie in [0, 1), got 1.5"),
    (["run", "--modalities", "fou"], "needs at least 2 modalities"),
    (["run", "--modalities", "fou,audio"], "unknown modality 'audio'"),
    (["run", "--shift", "fou"], "--shift 'fou': expected MODALITY=SPEC"),
    (["run", "--shift", "fou=noise:db=3"], "unknown parameter 'db'"),
    (["run", "--shift", "fou=blur:x=1"], "unknown shift kind 'blur'; choose from"),
    (["run", "--shift", "zzz=noise:snr=1"], "modality 'zzz' is not among the modalities"),
    (["run", "--option", "trade_off"], "--option 'trade_off': expected KEY=VALUE"),
    (["run", "--method", "dann", "--option", "nope=1"],
     "method 'dann' has no option 'nope'; its options: trade_off"),
    (["run", "--ca-form", "frob"], "unknown ca_form 'frob'"),
    (["run", "--gamma-normalization", "l3"], "unknown gamma_normalization 'l3'"),
    (["run", "--gamma-solver", "magic"], "unknown gamma_solver 'magic'"),
    (["run", "--device", "tpu"], "option device must be auto, cpu or cuda[:N], got 'tpu'"),
    *([(["run", "--device", "cuda:0"], "but CUDA is not available on this machine")]
      if not torch.cuda.is_available() else []),
    (["run", "--dataset", "missing.npz"], "'missing.npz': no such file"),
    (["run", "--dataset", "empty.npz"], "empty.npz: cannot read as .npz"),
    (["run", "--dataset", "text.npz"], "text.npz: not a .npz archive of arrays"),
    (["run", "--dataset", "one.npz"], "1 samples; the protocol"),
    (["run", "--dataset", "nolabels.npz"], "has no 'labels' array"),
    (["run", "--dataset", "d.npz", "--holdout", "1.5"], "holdout must lie in [0, 1), got 1.5"),
    (["run", "--config", "missing.yaml"], "config file not found: missing.yaml"),
    (["run", "--config", "bad_syntax.yaml"], "bad_syntax.yaml: not valid YAML"),
    (["run", "--config", "bad_key.yaml"], "unknown key 'trian'"),
    (["run", "--config", "list.yaml"], "list.yaml: expected a mapping at the top level"),
    (["run", "--config", "bad_seed.yaml"], "data.split_seed: cannot read 'abc' as int"),
    (["run", "--dataset", "d.npz", "--out", "afile"], "cannot create the run folder"),
    (["run", "--dataset", "d.npz", "--name", "x" * 300], "a folder name holds at most 255"),
    (["run", "--dataset", "d.npz", "--name", "a/b"], "without '/'"),
    (["run", "--dataset", "d.npz", "--name", "m"], "already exists and holds a finished run"),
    (["run", "--dataset", "d.npz", "--name", "folder", "--out", "."], "already exists"),
    (["run", "--checkpoint-every", "-1"], "--checkpoint-every -1: must be 0 (never) or a number"),
    (["run", "--resume", "nowhere"], "not a run folder"),
    (["run", "--resume", "runs/m"], "already finished"),
    (["run", "--resume", "runs/m", "--seed", "2"], "--seed does not apply"),
    (["run", "--resume", "runs/m", "--threads", "1"], "already finished"),  # --threads applies
    (["bench", "missing.yaml"], "grid file not found: missing.yaml"),
    (["bench", "grid_bad.yaml"], "unknown key 'methds'"),
    (["bench", "configs/none.yaml", "--workers", "x"], "--workers: invalid int value"),
    (["bench", "grid_bad.yaml", "--select", "oracle"], "--select 'oracle': choose a validator"),
    (["bench", "grid_nosweep.yaml", "--select", "im"],
     "--select im: the grid grid_nosweep.yaml has no sweep, so there is no grid point to select"),
    (["run", "--threads", "0"], "--threads 0: give a number of threads, at least 1"),
    (["predict", "missing.pt", "d.npz"], "checkpoint not found: missing.pt"),
    (["predict", "garbage.pt", "d.npz"], "garbage.pt: not a readable boomda checkpoint"),
    (["predict", "other.pt", "d.npz"], "other.pt: not a boomda checkpoint"),
    (["predict", "runs/m/model.pt", "missing.npz"], "error: missing.npz: no such file"),
    (["predict", "runs/m/model.pt", "onlyc.npz"], "none of the model's modalities"),
    (["predict", "runs/m/model.pt", "fewcols.npz"], "2 features, the model expects 3"),
    (["predict", "runs/m/model.pt", "d.npz", "--out", "folder"], "--out folder: is a folder"),
    (["predict", "runs/m/model.pt", "d.npz", "--out", "afile/x.csv"],
     "--out afile/x.csv: cannot write the predictions"),
    (["report", "folder"], "no runs/ folder"),
    (["report", "nowhere"], "nowhere: no runs/ folder"),
]


@pytest.mark.parametrize(("argv", "fragment"), CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_every_bad_input_ends_in_one_line(files, capsys, argv, fragment):
    code, err = _call([*argv, *(["--no-progress"] if argv[:1] == ["run"] else [])], capsys)
    assert code == 2, (argv, err)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("boomda"), err
    assert fragment in lines[0], (fragment, lines[0])


def test_an_unexpected_error_is_one_line_too(files, capsys, monkeypatch):
    import boomda.data.load

    def broken(*args, **kwargs):
        raise RuntimeError("deep inside\ntorch")

    monkeypatch.setattr(boomda.data.load, "build_pair", broken)
    code, err = _call(["run", "--no-progress"], capsys)
    assert code == 2
    assert err.strip() == ("boomda: error: unexpected RuntimeError: deep inside torch (a bug or an "
                           "unchecked input; BOOMDA_TRACEBACK=1 shows where)")
    monkeypatch.setenv("BOOMDA_TRACEBACK", "1")
    with pytest.raises(RuntimeError, match="deep inside"):
        main(["run", "--no-progress"])


def test_warnings_are_one_line(files, capsys):
    code, err = _call(["run", "--dataset", "d.npz", "--epochs", "1", "--batch-size", "500",
                       "--no-progress", "--overwrite", "--name", "w"], capsys)
    assert code == 0
    assert err.strip().splitlines() == [
        "boomda: warning: no target shift on a, b: source and target are two random halves of "
        "d.npz, the same distribution; give a shift per modality (--shift MODALITY=SPEC) or a "
        "real target (--source/--target)",
        "boomda: warning: batch_size 500 exceeds the 16 source samples; each source batch holds "
        "all 16",
        "boomda: warning: batch_size 500 exceeds the 20 target samples; each target batch holds "
        "all 20"]


def test_a_real_process_prints_one_line(files):
    """The installed entry point, not only ``main``: one line, exit code 2."""
    proc = subprocess.run([sys.executable, "-m", "boomda", "run", "--dataset", "empty.npz"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "boomda: error: empty.npz: cannot read as .npz (No data left in file)"]


def test_every_training_option_is_on_the_command_line_with_its_default(capsys):
    """The run command's training options are derived from TrainConfig's fields, and its
    shortcuts for Boomda's options from BoomdaOptions' fields: each has a flag whose help gives
    its meaning and its default, and the flag sets the option."""
    import dataclasses
    import re

    from boomda.cli import _parser as parser
    from boomda.cli import boomda_options, build_config
    from boomda.config import train_options
    from boomda.methods import BoomdaOptions

    options = train_options()
    names = {name for name, *_ in options}
    assert {"method", "epochs", "lr", "optimizer", "grad_clip", "device"} <= names
    assert "options" not in names and "betas" not in names
    assert [name for name, *_ in boomda_options()] == \
        [f.name for f in dataclasses.fields(BoomdaOptions)]
    with pytest.raises(SystemExit):
        parser().parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split()).replace("- ", "-")  # wrapped at a hyphen
    unset = build_config(parser().parse_args(["run"]))
    assert unset.train.options == {}
    for (name, kind, what, _default), owner in (
            [(o, unset.train) for o in options]
            + [(o, BoomdaOptions()) for o in boomda_options()]):
        flag = "--" + name.replace("_", "-")
        block = re.search(rf"{flag} \S+ (Boomda's option: )?{re.escape(' '.join(what.split()))}"
                          rf"(.*?)(?= --[a-z]|$)", text)
        assert block, flag
        # the default this flag's own help shows, read back, is the option's value when the
        # flag is not given
        shown = re.fullmatch(r".*\(default ([^()]*)\)\s*", block.group(2))
        assert shown, (flag, block.group(2))
        assert kind(shown.group(1)) == getattr(owner, name), flag
    args = parser().parse_args(["run", "--grad-clip", "0.5", "--optimizer", "sgd",
                                "--vote-threshold", "2", "--option", "alpha1=0.25"])
    config = build_config(args)
    assert (config.train.grad_clip, config.train.optimizer) == (0.5, "sgd")
    assert config.train.options == {"vote_threshold": 2, "alpha1": "0.25"}
