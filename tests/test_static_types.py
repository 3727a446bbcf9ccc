"""The checks that came with the static type check: the narrowing helpers and the errors they
raise, and ``mypy`` itself (integration tier: it type-checks the whole package)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from boomda.config import RunConfig
from boomda.data import files
from boomda.data.load import build_pair
from boomda.data.readers.base import RawItem
from boomda.errors import ConfigError, DataError
from boomda.losses import tensor_sum
from boomda.methods.base import Batch

ROOT = Path(__file__).resolve().parents[1]


def test_tensor_sum_adds_in_order_and_refuses_nothing():
    parts = [torch.tensor([1.0, 2.0]), torch.tensor([0.5, -1.0]), torch.tensor([3.0, 0.25])]
    assert tensor_sum(parts).tolist() == [4.5, 1.25]
    assert tensor_sum(iter(parts[:1])).tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="no tensors"):
        tensor_sum([])


def test_batch_labels_of_an_unlabelled_batch_is_an_error():
    y = torch.tensor([0, 1])
    assert Batch({"a": torch.zeros(2, 3)}, y).labels() is y
    with pytest.raises(ValueError, match="needs labels"):
        Batch({"a": torch.zeros(2, 3)}).labels()


def test_raw_item_file_names_the_missing_signal(tmp_path):
    wav = tmp_path / "u1.wav"
    item = RawItem("u1", 0, audio=wav)
    assert item.file("audio") == wav
    with pytest.raises(DataError, match=r"'u1'.*no video file"):
        item.file("video")


def test_a_pair_with_only_a_target_file_is_refused(tmp_path):
    config = RunConfig()
    config.data.target = str(tmp_path / "target.npz")
    with pytest.raises(ConfigError, match="both 'source' and 'target'"):
        build_pair(config)


def test_an_unreadable_npz_without_a_message_names_the_error(tmp_path, monkeypatch):
    path = tmp_path / "x.npz"
    path.write_bytes(b"")

    def fail(*args, **kwargs):
        raise EOFError()

    monkeypatch.setattr(np, "load", fail)
    with pytest.raises(DataError, match=r"cannot read as \.npz \(EOFError\)"):
        files.read_npz(path)


@pytest.mark.integration
def test_mypy_reports_no_error():
    """The static type check of src/boomda ([tool.mypy] in pyproject.toml; mypy is in the
    test extra, so CI runs it through the integration tier)."""
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Success: no issues found" in done.stdout
