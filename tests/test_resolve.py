"""The layers of a run: the config schema knows nothing of the data registries, a run checks its
config once into a frozen :class:`boomda.resolve.ResolvedRun`, and never changes the caller's
config."""

import ast
import copy
import dataclasses
import hashlib
import json
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import yaml

import boomda
from boomda import rundir
from boomda.config import RunConfig, TrainConfig
from boomda.data import DomainPair, MultimodalData
from boomda.errors import ConfigError
from boomda.estimator import DomainAdapter
from boomda.methods import check_config
from boomda.resolve import ResolvedRun, resolve
from boomda.run import run_experiment
from tests.conftest import make_views

SOURCES = Path(boomda.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` statement of ``path`` names, at any depth (inside functions
    too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_config_imports_nothing_of_data():
    # the walk sees imports inside functions: data/files.py imports its loaders there
    assert "boomda.data.heart" in _imported_modules(SOURCES / "data" / "files.py")
    config_imports = _imported_modules(SOURCES / "config.py")
    assert "boomda.errors" in config_imports
    assert not [m for m in config_imports if m == "boomda.data" or m.startswith("boomda.data.")]


def _counting_validate():
    """A patch of TrainConfig.validate that counts its calls (and still validates)."""
    real = TrainConfig.validate
    calls = []

    def counted(self):
        calls.append(self.method)
        return real(self)

    return mock.patch.object(TrainConfig, "validate", counted), calls


@pytest.fixture
def npz_config(tmp_path):
    views, y = make_views(n=40, dims=(4, 3), n_classes=2)
    np.savez(tmp_path / "d.npz", **views, labels=y)
    return RunConfig.from_dict({
        "data": {"dataset": str(tmp_path / "d.npz"), "shifts": {"m0": "noise:snr=1"}},
        "train": {"epochs": 1, "batch_size": 8, "dim": 8, "hidden": 16, "device": "cpu"},
        "out": str(tmp_path / "runs"), "name": "r", "checkpoint_every": 0})


def test_a_run_validates_once_and_leaves_its_config_unchanged(npz_config):
    before = copy.deepcopy(npz_config)
    patch, calls = _counting_validate()
    with patch:
        result = run_experiment(npz_config)
    assert calls == ["boomda"]
    assert npz_config == before
    assert npz_config.data.modalities == []  # all of the file's arrays, filled in on the copy
    written = yaml.safe_load((result.folder / rundir.CONFIG).read_text())
    assert written["data"]["modalities"] == ["m0", "m1"]
    assert written["train"]["device"] == "cpu"
    # the run's identity: the fingerprint of the settings as given, and of config.yaml's own,
    # each the SHA-256 of the sorted JSON of everything but out, name and logging
    settings = {k: v for k, v in before.to_dict().items() if k not in ("out", "name", "logging")}
    expected = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    assert written["run"]["config_fingerprint"] == expected.hexdigest()[:16]
    kept = {k: v for k, v in written.items()
            if k not in ("out", "name", "logging", "run", "environment", "pair")}
    expected = hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode())
    assert written["run"]["settings_fingerprint"] == expected.hexdigest()[:16]


def test_resolve_checks_once_into_a_frozen_copy(npz_config):
    patch, calls = _counting_validate()
    with patch:
        resolved = resolve(npz_config)
        assert resolve(resolved) is resolved  # a resolved run is not checked again
    assert calls == ["boomda"]
    assert resolved.config == npz_config and resolved.config is not npz_config
    assert resolved.options == check_config(npz_config.train)
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.config = npz_config
    filled = resolved.with_data("d", ["m0", "m1"], {"m0": "noise:snr=1"})
    moved = resolved.with_device("cuda:1")
    assert (filled.data.modalities, resolved.data.modalities) == (["m0", "m1"], [])
    assert (moved.train.device, resolved.train.device) == ("cuda:1", "cpu")
    with pytest.raises(ConfigError, match="^config: expected a RunConfig, got dict$"):
        resolve({"train": {}})


def test_raw_registry_checks_run_on_resolve_not_on_parsing():
    section = {"corpus": "nope", "path": "x", "modalities": {"a": {"backbone": "b"},
                                                             "t": {"signal": "text",
                                                                   "backbone": "c"}}}
    config = RunConfig.from_dict({"raw": section}, where="my.yaml")  # the schema only
    message = "my.yaml.raw.corpus must be iemocap, msp-improv or manifest, got 'nope'"
    with pytest.raises(ConfigError, match=f"^{message}$".replace(".", r"\.")):
        resolve(config, "my.yaml")
    config.raw.corpus = "manifest"
    config.train.epochs = 0
    with pytest.raises(ConfigError, match="^option epochs must be at least 1, got 0$"):
        resolve(config)


def test_from_checked_trains_without_checking_again():
    views, y = make_views(n=40, dims=(4, 3), n_classes=2)
    pair = DomainPair.from_arrays(MultimodalData(views, labels=y),
                                  MultimodalData({k: v + 1.0 for k, v in views.items()}))
    config = TrainConfig(epochs=1, batch_size=8, dim=8, hidden=16, device="cpu",
                         options={"vote_threshold": 3})
    options = check_config(config)
    patch, calls = _counting_validate()
    with patch:
        adapter = DomainAdapter.from_checked(config, options).fit(pair)
        assert adapter.config is config
    assert calls == []
    # the method's options are still checked against the pair's modalities
    too_many = dataclasses.replace(config, options={"vote_threshold": 4})
    with pytest.raises(ConfigError, match="vote_threshold \\(M_v\\) = 4 exceeds M\\+1 = 3"):
        DomainAdapter.from_checked(too_many, check_config(too_many)).fit(pair)
    assert isinstance(resolve(RunConfig()), ResolvedRun)
