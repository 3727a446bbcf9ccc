import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """Give torch back its thread count after each test: ``boomda run`` called in-process (and
    torch.set_num_threads in a test) changes it for the whole process."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of tiny models: a single intra-op thread is several times faster than thread
    hand-offs. Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sigterm_in_cell(monkeypatch, cell_id: str, step: int) -> None:
    """Make the in-process run of grid cell ``cell_id`` send SIGTERM to this process when it
    logs step ``step`` (so the grid stops mid-cell, past a checkpoint when ``step`` is beyond
    the first epoch); every other run is unchanged."""
    import os
    import signal

    import boomda.run

    real = boomda.run.run_experiment

    def stop_midway(config, **kwargs):
        if config.name == cell_id:
            def on_step(log):
                if log.step == step:
                    os.kill(os.getpid(), signal.SIGTERM)
            kwargs["on_step"] = on_step
        return real(config, **kwargs)

    monkeypatch.setattr(boomda.run, "run_experiment", stop_midway)


def make_views(n=60, dims=(5, 7, 3), n_classes=3, seed=0, shift=0.0):
    """A small labelled multimodal set: class-dependent means plus noise, one array per view."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    views = {}
    for i, d in enumerate(dims):
        centres = rng.normal(0, 2.0, (n_classes, d))
        views[f"m{i}"] = (centres[y] + rng.normal(0, 1.0, (n, d)) + shift).astype(np.float32)
    return views, y


def two_view_domain(n, seed, shift=0.0, n_classes=4):
    """One domain of a small two-view pair: ``audio`` (N, 6) and ``video`` (N, 5) around class
    means that are the same for every ``seed`` (so two seeds give two domains of one task),
    plus noise; ``shift`` moves audio and widens video's noise. Returns (views, labels)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    means_a = np.random.default_rng(100).normal(0, 2, (n_classes, 6))
    means_b = np.random.default_rng(101).normal(0, 2, (n_classes, 5))
    a = means_a[y] + rng.normal(0, 1, (n, 6)) + shift
    b = means_b[y] + rng.normal(0, 1 + shift, (n, 5))
    return {"audio": a.astype(np.float32), "video": b.astype(np.float32)}, y
