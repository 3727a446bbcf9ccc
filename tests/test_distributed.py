"""Data-parallel training (boomda.distributed): 2 processes under torchrun (gloo, CPU) against 1
process at the same global batch. Every loss term is computed on the gathered global batch, so
losses, gamma and the trained parameters agree up to float round-off. The tests that start
processes are in the integration tier."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from boomda.cli import main
from boomda.distributed import gather_rows, local_rows, world
from tests.helpers import HAS_PROC, descendants, is_alive, read_proc, send_signal, wait_until

# 800 source training rows / 40 = 20 steps; no encoder dropout, whose masks each rank takes from
# the draw for the gathered batch in rank order, which gives them to other rows than one process
# does (a discriminator's dropout sees the global batch and matches)
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
    # float32 round-off of sums over the rows in another order, relative to the loss's size
    for x, y in zip(a, b, strict=True):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-5, abs=1e-5)
        for key in x:
            if key.startswith("loss_"):
                assert x[key] == pytest.approx(y[key], rel=1e-5, abs=1e-5), key
        if x.get("gamma") is not None:
            assert x["gamma"] == pytest.approx(y["gamma"], abs=1e-5)
        assert x.get("n_pseudo") == y.get("n_pseudo")
    pa, pb = _parameters(one), _parameters(two)
    assert pa.keys() == pb.keys()
    for key in pa:
        assert torch.allclose(pa[key], pb[key], rtol=0, atol=5e-5), key


# Adam's update does not change when every gradient is scaled by one constant (a gradient
# summed over too few or too many ranks); plain SGD's does, and a clip that acts on some steps
# only sees the global norm
CASES = {
    "boomda": ["--method", "boomda"],
    "dann": ["--method", "dann"],
    "boomda-sgd": ["--method", "boomda", "--optimizer", "sgd", "--lr", "0.01"],
    "dann-sgd-clip": ["--method", "dann", "--optimizer", "sgd", "--lr", "0.05",
                      "--grad-clip", "1.0"],
}


@pytest.mark.integration
@pytest.mark.parametrize("case", list(CASES))
def test_two_processes_train_as_one_at_the_same_global_batch(case, tmp_path, one_torch_thread):
    extra = CASES[case]
    assert main(["run", *ARGS, *extra, "--out", str(tmp_path), "--name", "one"]) == 0
    done = _boomda("run", *ARGS, *extra, "--out", str(tmp_path), "--name", "two",
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


@pytest.mark.integration
@pytest.mark.skipif(not HAS_PROC, reason="needs /proc to find torchrun's workers")
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
    launcher = read_proc(proc.pid)
    assert launcher is not None
    checkpoint = tmp_path / "two" / "checkpoint.pt"
    wait_until(lambda: checkpoint.exists() or proc.poll() is not None, 240)
    # torchrun's workers may run in sessions of their own: kill the whole process tree
    tree = [launcher, *descendants(launcher)]
    for process in tree:
        send_signal(process, signal.SIGKILL)
    proc.wait()
    assert wait_until(lambda: not any(is_alive(p) for p in tree))  # none writes on
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


@pytest.mark.integration
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


# ------------------------------------------------- two gloo processes, one step, no launcher
ROWS = 8  # rows of each domain per process


def _batches():
    from boomda.methods import Batch
    from tests.conftest import make_views

    views, y = make_views(n=4 * ROWS, dims=(5, 6, 7), n_classes=3, seed=3)
    half = 2 * ROWS
    source = Batch({m: torch.from_numpy(v[:half]) for m, v in views.items()},
                   torch.from_numpy(y[:half]))
    target = Batch({m: torch.from_numpy(1.5 * v[half:] + 0.5) for m, v in views.items()})
    return source, target


def _one_step(method_name: str, optimizer: str, grad_clip: float) -> dict:
    """One training step of ``method_name`` on the global batch of :func:`_batches` (the
    process's share of it in data-parallel training): the parameter gradients after the
    backward pass and the parameters after the optimiser's step."""
    from boomda import DomainAdapter
    from boomda.methods import build_method
    from boomda.nn.net import MultimodalNet
    from boomda.train import Trainer

    source, target = _batches()
    torch.manual_seed(0)
    config = DomainAdapter(method=method_name, dim=8, hidden=16, dropout=0.0,
                           optimizer=optimizer, lr=0.1, grad_clip=grad_clip).config
    net = MultimodalNet({m: v.shape[1] for m, v in source.x.items()}, 3, 8, 16, 0.0)
    net.fit_standardization(source.x)
    method = build_method(method_name, net, config)
    trainer = Trainer(method, config, torch.device("cpu"))
    out = trainer.model(source, target, 0.5)
    trainer.optimizer.zero_grad(set_to_none=True)
    out.backward(out.total())
    grads = {k: p.grad.detach().clone() for k, p in method.named_parameters()
             if p.grad is not None}
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(trainer.params, grad_clip)
    trainer.optimizer.step()
    return {"grads": grads,
            "params": {k: p.detach().clone() for k, p in method.named_parameters()}}


def _masks(rows: int) -> dict:
    """The dropout masks of every encoder and the modality-dropout mask that one training
    forward pass of a network with dropout 0.5 and modality dropout 0.5 draws for ``rows``
    rows (this process's share in data-parallel training)."""
    from boomda.nn.net import MultimodalNet

    source, _ = _batches()
    torch.manual_seed(0)
    net = MultimodalNet({m: v.shape[1] for m, v in source.x.items()}, 3, 8, 16, 0.5,
                        modality_dropout=0.5).train()
    torch.manual_seed(1)
    seen = {}
    for name, encoder in net.encoders.items():
        dropout = next(m for m in encoder.modules() if isinstance(m, torch.nn.Dropout))
        # ones in: the output is the mask (0 or 1 / (1 - p))
        dropout.register_forward_pre_hook(lambda mod, inp: (torch.ones_like(inp[0]),))
        dropout.register_forward_hook(
            lambda mod, inp, out, name=name: seen.__setitem__(name, out.detach().clone()))
    draw = net.modality_dropout_mask
    net.modality_dropout_mask = lambda *a: seen.setdefault("modality", draw(*a))
    net({m: v[:rows] for m, v in source.x.items()})
    return seen


def _worker(rank: int, size: int, init: str, out: str, method_name: str, optimizer: str,
            grad_clip: float) -> None:
    import torch.distributed as dist

    os.environ["LOCAL_RANK"] = str(rank)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=size)
    try:
        result = {**_one_step(method_name, optimizer, grad_clip), "masks": _masks(ROWS)}
        torch.save(result, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def _two_processes(tmp_path: Path, method_name: str, optimizer: str, grad_clip: float) -> list:
    import torch.multiprocessing as mp

    out = tmp_path / "rank"
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(out), method_name, optimizer,
                            grad_clip), nprocs=2)
    return [torch.load(f"{out}.{rank}", weights_only=False) for rank in range(2)]


@pytest.mark.integration
@pytest.mark.parametrize(("method", "optimizer", "grad_clip"),
                         [("boomda", "sgd", 0.0), ("dann", "sgd", 0.05)])
def test_the_synchronised_gradient_is_the_one_process_gradient(method, optimizer, grad_clip,
                                                               tmp_path, one_torch_thread):
    """Two gloo processes, each with half of the global batch: after the backward pass every
    rank holds the gradient that one process computes on the whole batch (not a multiple of
    it), and an SGD step, clipped or not, moves every parameter as in one process."""
    ranks = _two_processes(tmp_path, method, optimizer, grad_clip)
    one = _one_step(method, optimizer, grad_clip)
    assert one["grads"].keys() == ranks[0]["grads"].keys() == ranks[1]["grads"].keys()
    total = torch.sqrt(sum((g.double() ** 2).sum() for g in one["grads"].values()))
    if grad_clip:  # the clip acts on this step
        assert total > 2 * grad_clip
    # float32 sums over the rows in another order: round-off of 1e-6 of the largest terms
    for rank in ranks:
        for key, grad in one["grads"].items():
            torch.testing.assert_close(rank["grads"][key], grad, rtol=1e-5, atol=1e-5,
                                       msg=key)
        for key, value in one["params"].items():
            torch.testing.assert_close(rank["params"][key], value, rtol=1e-5, atol=1e-6,
                                       msg=key)


@pytest.mark.integration
def test_each_rank_draws_its_rows_dropout_masks_from_the_global_draw(tmp_path,
                                                                     one_torch_thread):
    """Every rank draws dropout and modality-dropout masks as for the whole gathered batch and
    keeps its own rows: the two processes' masks differ, and side by side they are the masks
    one process draws for both processes' rows."""
    ranks = _two_processes(tmp_path, "boomda", "sgd", 0.0)
    one = _masks(2 * ROWS)
    assert set(one) == {"m0", "m1", "m2", "modality"}
    for key, mask in one.items():
        first, second = ranks[0]["masks"][key], ranks[1]["masks"][key]
        assert first.shape[0] == ROWS
        assert not torch.equal(first, second), key
        assert torch.equal(torch.cat([first, second]), mask), key
        if key != "modality":
            assert set(mask.unique().tolist()) == {0.0, 2.0}
