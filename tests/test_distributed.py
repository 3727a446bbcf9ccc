"""Data-parallel training (boomda.distributed): 2 processes under torchrun (gloo, CPU) against 1
process at the same global batch. Every loss term is computed on the gathered global batch, so
losses, gamma and the trained parameters agree up to float round-off."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from boomda.cli import main
from boomda.distributed import gather_rows, local_rows, world

# 800 source training rows / 40 = 20 steps; no encoder dropout, whose masks depend on how many
# rows a process draws them for (a discriminator's dropout sees the global batch and matches)
ARGS = ["--epochs", "1", "--batch-size", "40", "--dropout", "0", "--dim", "16", "--hidden", "32",
        "--device", "cpu", "--checkpoint-every", "0", "--no-progress"]


def _boomda(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "boomda", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def _parameters(folder: Path) -> dict[str, torch.Tensor]:
    state = torch.load(folder / "model.pt", map_location="cpu", weights_only=False)["state_dict"]
    return {k: v.double() for k, v in state.items() if v.is_floating_point()}


def _assert_same_training(one: Path, two: Path, steps: int) -> None:
    a, b = _metrics(one), _metrics(two)
    assert len(a) == len(b) == steps
    for x, y in zip(a, b, strict=True):
        assert x["loss"] == pytest.approx(y["loss"], abs=1e-5)
        for key in x:
            if key.startswith("loss_"):
                assert x[key] == pytest.approx(y[key], abs=1e-5), key
        if x.get("gamma") is not None:
            assert x["gamma"] == pytest.approx(y["gamma"], abs=1e-5)
        assert x.get("n_pseudo") == y.get("n_pseudo")
    pa, pb = _parameters(one), _parameters(two)
    assert pa.keys() == pb.keys()
    for key in pa:
        assert torch.allclose(pa[key], pb[key], rtol=0, atol=1e-5), key


@pytest.mark.parametrize("method", ["boomda", "dann"])
def test_two_processes_train_as_one_at_the_same_global_batch(method, tmp_path):
    torch.set_num_threads(1)
    assert main(["run", *ARGS, "--method", method, "--out", str(tmp_path), "--name", "one"]) == 0
    done = _boomda("run", *ARGS, "--method", method, "--out", str(tmp_path), "--name", "two",
                   "--nproc", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    # rank 0 alone wrote the run folder and printed the summary
    assert done.stdout.count("run folder") == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["one", "two"]
    _assert_same_training(tmp_path / "one", tmp_path / "two", steps=20)
    config = yaml.safe_load((tmp_path / "two" / "config.yaml").read_text())
    assert config["environment"]["processes"] == 2
    assert config["train"]["device"] == "cpu"
    results = json.loads((tmp_path / "two" / "results.json").read_text())
    reference = json.loads((tmp_path / "one" / "results.json").read_text())
    assert results["target"]["weighted_f1"] == pytest.approx(reference["target"]["weighted_f1"],
                                                             abs=0.2)


def test_bad_data_parallel_options_fail_in_one_line_before_launch(tmp_path, capsys):
    assert main(["run", *ARGS, "--batch-size", "45", "--nproc", "2", "--out",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "batch_size 45 is not divisible by 2" in err and "Traceback" not in err
    assert main(["run", *ARGS, "--gamma-solver", "mgda_params", "--nproc", "2", "--out",
                 str(tmp_path)]) == 2
    assert "mgda_params is not supported in data-parallel training" in capsys.readouterr().err
    assert main(["run", *ARGS, "--nproc", "0"]) == 2
    assert "--nproc 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_rows_helpers_are_the_identity_in_one_process():
    x = torch.arange(12.0).reshape(6, 2)
    assert world() is None
    assert local_rows(x) is x and gather_rows(x) is x


def _descendants(pid: int) -> list[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    out, frontier = [], [pid]
    while frontier:
        kids = [p for p, parent in parents.items() if parent in frontier]
        out += kids
        frontier = kids
    return out


@pytest.mark.slow
def test_a_killed_data_parallel_run_resumes_under_data_parallel(tmp_path):
    """2 processes, SIGKILLed after the first checkpoint, resumed with 2 processes: the same
    training as one uninterrupted process."""
    args = list(ARGS)
    args[args.index("--epochs") + 1] = "3"
    args[args.index("--checkpoint-every") + 1] = "1"
    assert main(["run", *args, "--out", str(tmp_path), "--name", "one"]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "boomda", "run", *args, "--out",
                             str(tmp_path), "--name", "two", "--nproc", "2"], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    checkpoint = tmp_path / "two" / "checkpoint.pt"
    deadline = time.time() + 240
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    # torchrun's workers may run in sessions of their own: kill the whole process tree
    for pid in [proc.pid, *_descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    time.sleep(0.5)
    assert checkpoint.exists() and not (tmp_path / "two" / "results.json").exists()
    done = _boomda("run", "--resume", str(tmp_path / "two"), "--nproc", "2", "--no-progress",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_same_training(tmp_path / "one", tmp_path / "two", steps=60)


def test_bf16_autocasts_the_network_and_keeps_the_losses_in_fp32():
    """precision: bf16 runs the encoders and heads in bfloat16 (autocast) and hands fp32
    outputs to the loss terms, which stay fp32; fp32 leaves everything in fp32."""
    from boomda import DomainAdapter
    from boomda.methods import Batch, build_method
    from boomda.nn.net import MultimodalNet
    from boomda.train import Trainer
    from tests.conftest import make_views

    views, y = make_views(dims=(5, 6, 7))
    seen = []
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        config = DomainAdapter(precision=precision, dim=8, hidden=16).config
        net = MultimodalNet({m: v.shape[1] for m, v in views.items()}, 3, 8, 16, 0.0)
        method = build_method("boomda", net, config)
        Trainer(method, config, torch.device("cpu"))
        first = next(m for m in net.encoders[net.modalities[0]].modules()
                     if isinstance(m, torch.nn.Linear))
        handle = first.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
        x = {m: torch.from_numpy(v[:16]).float() for m, v in views.items()}
        xt = {m: torch.from_numpy(v[16:32]).float() for m, v in views.items()}
        out = method.train().loss_terms(Batch(x, torch.from_numpy(y[:16])), Batch(xt), 0.0)
        handle.remove()
        assert all(t.dtype == torch.float32 for t in out.terms.values())
        assert all(z.dtype == torch.float32 for z, _ in out.injected)
    assert seen == [torch.float32, torch.bfloat16]


def test_the_raw_cache_is_filled_sharded_by_rank(monkeypatch):
    """With a cache, rank r of N computes the frozen states of items r, r+N, ... (every
    pipeline of an item that has its signal), then waits at the barrier; without a cache, or in
    one process, nothing is computed ahead."""
    from types import SimpleNamespace

    from boomda import distributed
    from boomda.data import raw_pair
    from boomda.errors import DataError

    calls, barriers = [], []

    class Pipeline:
        def __init__(self, signal, cache="a cache"):
            self.signal, self.cache = signal, cache

        def frozen_states(self, item, corrupt, seed):
            if item.id == "u3":
                raise DataError("unreadable")
            calls.append((self.signal, item.id, corrupt, seed))

    items = [SimpleNamespace(id=f"u{i}", audio="a.wav", text=None if i == 5 else "hi")
             for i in range(7)]
    pipes = {"a": Pipeline("audio"), "t": Pipeline("text")}
    monkeypatch.setattr(distributed, "barrier", lambda: barriers.append(1))
    raw_pair._fill_cache_sharded(items, pipes, True, 4)  # one process: nothing ahead
    assert calls == [] and barriers == []
    monkeypatch.setattr(distributed, "world", lambda: distributed.World(1, 2, 1))
    raw_pair._fill_cache_sharded(items, pipes, True, 4)
    # u3 fails (left to the caller, which reports it), u5 has no transcript
    assert calls == [("audio", "u1", True, 4), ("text", "u1", True, 4),
                     ("audio", "u5", True, 4)]
    assert barriers == [1]
    calls.clear()
    raw_pair._fill_cache_sharded(items, {"a": Pipeline("audio", cache=None)}, True, 4)
    assert calls == [] and barriers == [1]


def test_a_failing_data_parallel_run_ends_in_one_error_line(tmp_path):
    """An error in the processes (here: a data file that does not exist, found when the data
    are read) is said once; torchrun's own traceback is not shown; exit code 2."""
    done = _boomda("run", *ARGS, "--dataset", "nothere.npz", "--nproc", "2", "--out",
                   str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr and "elastic" not in done.stderr
    assert len([line for line in lines if "nothere.npz" in line]) == 1, lines
    assert lines[-1].startswith("boomda: error: the data-parallel run in 2 processes failed")
