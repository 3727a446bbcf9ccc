import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of tiny models: a single intra-op thread is several times faster than thread
    hand-offs. Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_views(n=60, dims=(5, 7, 3), n_classes=3, seed=0, shift=0.0):
    """A small labelled multimodal set: class-dependent means plus noise, one array per view."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    views = {}
    for i, d in enumerate(dims):
        centres = rng.normal(0, 2.0, (n_classes, d))
        views[f"m{i}"] = (centres[y] + rng.normal(0, 1.0, (n, d)) + shift).astype(np.float32)
    return views, y
