"""``select_epoch: im``: the model kept is the one of the epoch whose IM score on the unlabelled
target was best (checked against IM recomputed from snapshots taken at every epoch's end), the
earlier epoch winning ties; resuming a run keeps the choice exact."""

from copy import deepcopy

import numpy as np
import pytest
import torch

from boomda.data.container import MultimodalData
from boomda.data.pair import DomainPair
from boomda.errors import ConfigError
from boomda.estimator import DomainAdapter
from boomda.evaluate import predict_logits
from boomda.select import information_maximization, softmax
from tests.conftest import make_views

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OPTIONS = dict(epochs=6, batch_size=16, dim=8, hidden=16, device="cpu", seed=4,
               select_epoch="im", lr=3e-3)


def _pair(target_labels=True):
    views, y = make_views(n=48, dims=(5, 4, 3))
    target, ty = make_views(n=40, dims=(5, 4, 3), seed=1, shift=0.8)
    return DomainPair.from_arrays(MultimodalData(views, y),
                                  MultimodalData(target, ty if target_labels else None),
                                  holdout=0)


def test_the_kept_model_is_the_epoch_with_the_best_im():
    pair = _pair()
    adapter = DomainAdapter(**OPTIONS)
    snapshots, scores = [], []

    def on_step(log):
        if (log.step + 1) % 3 == 0:  # 48 samples, batch 16: the end of an epoch
            net = adapter.method.net
            probs = softmax(predict_logits(net, pair.target, torch.device("cpu")))
            scores.append(information_maximization(probs))
            snapshots.append({k: v.clone() for k, v in adapter.method.state_dict().items()})

    adapter.fit(pair, on_step=on_step)
    assert len(scores) == 6
    best = int(np.argmax(scores))  # numpy's argmax: the first of equal scores
    assert adapter.selected_epoch == best + 1
    kept = adapter.method.state_dict()
    for key, value in snapshots[best].items():
        assert torch.equal(kept[key], value), key
    if best != 5:  # not simply the last epoch's model
        assert any(not torch.equal(kept[k], v) for k, v in snapshots[-1].items())
    # no labels were read: the same choice without them
    unlabelled = DomainAdapter(**OPTIONS).fit(_pair(target_labels=False))
    assert unlabelled.selected_epoch == adapter.selected_epoch


def test_without_it_the_last_epoch_is_kept():
    adapter = DomainAdapter(**{**OPTIONS, "select_epoch": "none"}).fit(_pair())
    assert adapter.selected_epoch is None


def test_a_resumed_run_keeps_the_same_choice():
    pair = _pair()
    states = []
    full = DomainAdapter(**OPTIONS).fit(pair, checkpoint=lambda s: states.append(deepcopy(s)),
                                        checkpoint_every=1)
    middle = states[2]  # after epoch 3 of 6: a best epoch already recorded
    assert middle["best_epoch"]["epoch"] <= 3
    resumed = DomainAdapter(**OPTIONS).fit(pair, resume=middle)
    assert resumed.selected_epoch == full.selected_epoch
    for key, value in full.method.state_dict().items():
        assert torch.equal(resumed.method.state_dict()[key], value), key


def test_a_bad_value_is_one_line():
    with pytest.raises(ConfigError, match="option select_epoch must be one of none, im, got "
                                          "'dev'"):
        DomainAdapter(**{**OPTIONS, "select_epoch": "dev"}).fit(_pair())
