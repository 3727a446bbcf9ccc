"""Bad input is refused up front with one line that says what is wrong: grid files checked
whole before any cell runs, YAML alias bombs refused, text that is not UTF-8, a full disk,
seeds out of range, unusable manifest cells, a non-finite loss, and an output stream that
cannot encode the summary."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from boomda import rundir
from boomda.atomic import atomic_write
from boomda.cli import main
from boomda.config import MAX_YAML_NODES, SEED_MAX, RunConfig, load_yaml_mapping
from boomda.data import mfeat
from boomda.data.readers.manifest import read_manifest
from boomda.errors import BoomdaError, ConfigError, DataError, TrainingError
from boomda.grid import GridSpec
from boomda.train import nonfinite_message

ROOT = Path(__file__).resolve().parents[1]


def _call(argv, capsys):
    """(exit code, stderr) of ``boomda ARGV`` run in this process."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def _one_line(code, err):
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savez("d.npz", a=rng.random((40, 3)), b=rng.random((40, 2)), labels=np.arange(40) % 2)
    return tmp_path


# --------------------------------------------------------------------------- grid files

GRID_CASES = [
    ("methods: [dt]\nsubsets: [[fou, kra]]\nseeds: [0]\n", ["grid.yaml.subsets", "'kra'"]),
    ("methods: [dt]\nsubsets: [fou+kra]\nseeds: [0]\n", ["grid.yaml.subsets", "'kra'"]),
    ("methods: []\nseeds: [0]\n", ["grid.yaml.methods", "empty"]),
    ("methods: [dt]\nsubsets: []\nseeds: [0]\n", ["grid.yaml.subsets", "empty"]),
    ("methods: [dt]\nseeds: []\n", ["grid.yaml.seeds"]),
    ("methods: [dt]\nmodalities: [fou, nope]\nseeds: [0]\n", ["grid.yaml.modalities", "'nope'"]),
    ("methods: [dt]\nseeds: [0]\ntasks: {}\n", ["grid.yaml.tasks"]),
    ("methods: [dt]\nseeds: [0]\ntasks:\n  t: {modalities: [fou, kra]}\n",
     ["grid.yaml.tasks.t.modalities", "'kra'"]),
    ("methods: [dt]\nbase: {data: {dataset: d.npz}}\nsubsets: [[a, c]]\nseeds: [0]\n",
     ["grid.yaml.subsets", "'c'", "a, b"]),
    ("name: ../../../x\nmethods: [dt]\nseeds: [0]\n", ["grid.yaml.name", "'../../../x'"]),
    ("name: a/b\nmethods: [dt]\nseeds: [0]\n", ["grid.yaml.name"]),
    ("name: 'a\\\\b'\nmethods: [dt]\nseeds: [0]\n", ["grid.yaml.name"]),
    ("name: ''\nmethods: [dt]\nseeds: [0]\n", ["grid.yaml.name"]),
    ("name: ..\nmethods: [dt]\nseeds: [0]\n", ["grid.yaml.name"]),
    (f"name: {'x' * 256}\nmethods: [dt]\nseeds: [0]\n", ["grid.yaml.name", "255"]),
    ("methods: [dt]\nseeds: [-1]\n", ["option seed", "0 .. 4294967295"]),
]


@pytest.mark.parametrize(("text", "fragments"), GRID_CASES,
                         ids=[t.split("\n")[0][:40] + str(i) for i, (t, _) in
                              enumerate(GRID_CASES)])
def test_a_bad_grid_is_refused_before_any_cell_runs(here, capsys, text, fragments):
    (here / "grid.yaml").write_text(text)
    line = _one_line(*_call(["bench", "grid.yaml", "--workers", "1", "--no-progress"], capsys))
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert not (here / "bench").exists()  # nothing was run or written
    assert not any(here.parent.glob("x"))


def test_the_embedded_views_come_from_the_data_registry(here, capsys):
    (here / "grid.yaml").write_text("methods: [dt]\nsubsets: [[fou, kra]]\nseeds: [0]\n")
    line = _one_line(*_call(["bench", "grid.yaml", "--no-progress"], capsys))
    assert line.endswith(", ".join(mfeat.VIEWS))
    # every registered view is accepted, also one outside the base's modalities
    names = list(mfeat.VIEWS)
    spec = GridSpec.from_dict({"methods": ["dt"], "subsets": [[names[0], names[-1]]],
                               "seeds": [0]})
    assert spec.subset_list() == [(names[0], names[-1])]


# --------------------------------------------------------------------------- YAML bounds


def _bomb(levels: int = 9, width: int = 9) -> str:
    """A billion-laughs document: ``width`` aliases of the level below at each of ``levels``
    levels, ``width ** levels`` leaves once expanded."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_bomb())
    message = f"{bomb}: more than {MAX_YAML_NODES} YAML nodes after expanding aliases"
    with pytest.raises(ConfigError, match="^" + message):
        RunConfig.from_yaml(bomb)
    with pytest.raises(ConfigError, match="^" + message):
        GridSpec.from_yaml(bomb)
    with pytest.raises(BoomdaError, match="^" + message):
        rundir.read_yaml_mapping(bomb)
    # under a grid's tasks file too
    grid = tmp_path / "grid.yaml"
    grid.write_text("methods: [dt]\nseeds: [0]\ntasks: bomb.yaml\n")
    with pytest.raises(ConfigError, match="^" + message):
        GridSpec.from_yaml(grid)


def test_the_node_bound_counts_expanded_aliases(tmp_path):
    # 1 mapping + 2 keys + (1 list + n leaves) + (1 list + 2 aliased lists) nodes once expanded
    def document(n: int) -> str:
        return f"a: &a [{', '.join(['x'] * n)}]\nb: [*a, *a]\n"

    def expanded(n: int) -> int:
        return 1 + 2 + (1 + n) + 1 + 2 * (1 + n)

    n = 1
    while expanded(n + 1) <= MAX_YAML_NODES:
        n += 1
    fits, over = tmp_path / "fits.yaml", tmp_path / "over.yaml"
    fits.write_text(document(n))
    over.write_text(document(n + 1))
    assert len(load_yaml_mapping(fits, "config file")["b"][1]) == n
    with pytest.raises(ConfigError, match="more than"):
        load_yaml_mapping(over, "config file")


def test_a_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("a: &a [1, *a]\n")
    with pytest.raises(ConfigError, match=f"^{path}: .*refers to itself"):
        load_yaml_mapping(path, "config file")


def test_every_shipped_config_still_loads():
    import yaml

    paths = sorted((ROOT / "configs").glob("*.yaml"))
    assert len(paths) >= 10
    for path in paths:
        assert load_yaml_mapping(path, "config file") == yaml.safe_load(path.read_text()), path


# --------------------------------------------------------------------------- not UTF-8


def test_a_latin1_config_is_named_with_the_bad_byte(here, capsys):
    (here / "c.yaml").write_bytes(b"name: caf\xe9\n")
    line = _one_line(*_call(["run", "--config", "c.yaml", "--no-progress"], capsys))
    assert line == "boomda: error: c.yaml: not UTF-8 text (byte 0xe9 at offset 9)"
    (here / "g.yaml").write_bytes(b"\xef\xbb\xbfname: g\nmethods: [dt\xff]\n")  # after a BOM
    line = _one_line(*_call(["bench", "g.yaml", "--no-progress"], capsys))
    assert line == "boomda: error: g.yaml: not UTF-8 text (byte 0xff at offset 23)"
    (here / "bin.yaml").write_bytes(bytes(range(256)))
    with pytest.raises(BoomdaError, match=r"bin.yaml: not UTF-8 text \(byte 0x80 at offset "
                                          r"128\)"):
        rundir.read_yaml_mapping(here / "bin.yaml")


def test_a_latin1_manifest_is_named_with_the_bad_byte(tmp_path):
    path = tmp_path / "m.csv"
    head = b"id,label,text\nu1,happy,great\n"
    path.write_bytes(head + b"u2,sad,tr\xe8s triste\n")
    with pytest.raises(DataError) as info:
        read_manifest(path, modalities=["text"])
    assert str(info.value) == (f"{path}: not UTF-8 text (byte 0xe8 at offset "
                               f"{len(head) + len(b'u2,sad,tr')})")


# --------------------------------------------------------------------------- a full disk

TORCH_WRITE_FAILED = "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"


@pytest.mark.parametrize("failure", [RuntimeError(TORCH_WRITE_FAILED),
                                     OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))])
def test_a_full_disk_is_named(tmp_path, failure):
    target = tmp_path / "model.pt"

    def write(tmp):
        Path(tmp).write_bytes(b"partial")
        raise failure

    with pytest.raises(BoomdaError, match=f"^no space left on device: {target}"):
        atomic_write(target, write)
    assert list(tmp_path.iterdir()) == []  # the partial file is gone


def test_another_write_error_is_not_called_a_full_disk(tmp_path):
    def write(tmp):
        raise RuntimeError("something else")

    with pytest.raises(RuntimeError, match="something else"):
        atomic_write(tmp_path / "x", write)
    with pytest.raises(PermissionError):
        atomic_write(tmp_path / "y", lambda tmp: (_ for _ in ()).throw(
            PermissionError(errno.EACCES, "denied")))


def test_a_full_disk_while_saving_a_checkpoint_is_one_line(here, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise RuntimeError(TORCH_WRITE_FAILED)

    monkeypatch.setattr(torch, "save", full)
    code, err = _call(["run", "--dataset", "d.npz", "--epochs", "1", "--name", "full",
                       "--batch-size", "8", "--shift", "a=noise:snr=1", "--no-progress"], capsys)
    line = _one_line(code, err)
    assert line.startswith(f"boomda: error: no space left on device: "
                           f"{Path('runs') / 'full'}"), line


# --------------------------------------------------------------------------- seeds


@pytest.mark.parametrize(("argv", "fragment"), [
    (["--seed", "-1"], "option seed must lie in 0 .. 4294967295, got -1"),
    (["--seed", str(2 ** 70)], f"option seed must lie in 0 .. 4294967295, got {2 ** 70}"),
    (["--split-seed", "-5"], "option data.split_seed must lie in 0 .. 4294967295, got -5"),
    (["--split-seed", str(2 ** 32)], "option data.split_seed must lie in 0 .. 4294967295"),
])
def test_a_seed_out_of_range_is_one_line(here, capsys, argv, fragment):
    line = _one_line(*_call(["run", "--dataset", "d.npz", *argv, "--no-progress"], capsys))
    assert fragment in line, line


def test_seeds_out_of_range_in_yaml(tmp_path):
    assert SEED_MAX == 2 ** 32 - 1
    with pytest.raises(ConfigError, match=r"c.yaml.data.split_seed must lie in 0 .. "):
        (tmp_path / "c.yaml").write_text("data: {split_seed: -5}\n")
        RunConfig.from_yaml(tmp_path / "c.yaml")
    config = RunConfig.from_dict({"train": {"seed": SEED_MAX}, "data": {"split_seed": SEED_MAX}})
    config.train.validate()  # the largest seed is fine
    config.train.seed = SEED_MAX + 1
    with pytest.raises(ConfigError, match="option seed must lie in"):
        config.train.validate()


def test_the_largest_seed_runs(here, capsys):
    code, err = _call(["run", "--dataset", "d.npz", "--epochs", "1", "--seed", str(SEED_MAX),
                       "--no-progress", "--name", "big"], capsys)
    assert code == 0, err


# --------------------------------------------------------------------------- manifests


def test_a_manifest_names_the_config_way_to_skip(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("id,label,audio\nu1,happy,nowhere.wav\n")
    with pytest.raises(DataError) as info:
        read_manifest(path, modalities=["audio"])
    message = str(info.value)
    assert f"missing audio file {tmp_path / 'nowhere.wav'}" in message
    assert "skip_missing=True" not in message
    assert "raw.skip_missing: true" in message and "remove" in message


def test_a_folder_in_an_audio_cell_is_called_a_folder(tmp_path):
    (tmp_path / "clips").mkdir()
    path = tmp_path / "m.csv"
    path.write_text("id,label,audio\nu1,happy,clips\n")
    with pytest.raises(DataError, match="is a folder, not a file") as info:
        read_manifest(path, modalities=["audio"])
    assert "missing audio" not in str(info.value)
    assert str(tmp_path / "clips") in str(info.value)


# --------------------------------------------------------------------------- non-finite loss


def test_a_non_finite_term_is_named():
    terms = {"ce": torch.tensor(1.5), "ca": torch.tensor(float("nan"))}
    message = nonfinite_message(terms, {"ce": 1.0, "ca": 100.0})
    assert "ca=nan (weight 100)" in message and "ce=" not in message


def test_finite_terms_whose_weighted_sum_is_not():
    # inf * 0: a finite term under an infinite weight
    message = nonfinite_message({"ce": torch.tensor(0.0), "ca": torch.tensor(2.0)},
                                {"ce": float("inf"), "ca": 1.0})
    assert "ce=0 x weight inf" in message and "ca=2 x weight 1" in message
    # an overflow of the sum: every product finite in float32, the sum not
    big = torch.tensor(3e38)
    assert torch.isinf(big + big)
    message = nonfinite_message({"a": big, "b": big}, {"a": 1.0, "b": 1.0})
    assert "the weighted sum overflowed" in message
    assert "a=3e+38 x weight 1" in message and "b=3e+38 x weight 1" in message
    assert "no loss terms" in nonfinite_message({}, {})


def test_training_stops_with_the_named_terms(monkeypatch):
    from boomda.data.container import MultimodalData
    from boomda.data.pair import DomainPair
    from boomda.estimator import DomainAdapter
    from boomda.methods.base import MethodOutput

    total = MethodOutput.total

    def overflowing(self):
        self.weights = {k: float("inf") if i == 0 else w
                        for i, (k, w) in enumerate(self.weights.items())}
        self.terms = {k: t * 0 if i == 0 else t for i, (k, t) in enumerate(self.terms.items())}
        return total(self)

    monkeypatch.setattr(MethodOutput, "total", overflowing)
    rng = np.random.default_rng(0)
    data = MultimodalData({"a": rng.random((20, 3)).astype(np.float32),
                           "b": rng.random((20, 2)).astype(np.float32)}, np.arange(20) % 2)
    pair = DomainPair.from_arrays(data, data, holdout=0.0)
    adapter = DomainAdapter(method="dt", epochs=1, batch_size=8, device="cpu")
    with pytest.raises(TrainingError, match=r"step 0: .*x weight inf"):
        adapter.fit(pair)


# --------------------------------------------------------------------------- output encoding


def test_a_summary_that_ascii_cannot_hold_is_still_printed(here):
    env = {**os.environ, "PYTHONIOENCODING": "ascii",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "boomda", "run", "--dataset", "d.npz",
                           "--epochs", "1", "--name", "caf\u00e9", "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=here)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "runs/caf\\xe9" in proc.stdout
    assert (here / "runs" / "caf\u00e9" / "results.json").is_file()
