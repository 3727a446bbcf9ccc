"""A user's own module as the encoder of a feature-vector modality: checked up front, trained,
saved and loaded again (with the module passed back)."""

import numpy as np
import pytest
import torch
from torch import nn

from boomda import DomainAdapter, DomainPair, MultimodalData
from boomda.errors import BoomdaError, DataError
from boomda.nn.encoders import ModuleEncoder
from tests.conftest import make_views

pytestmark = pytest.mark.usefixtures("one_torch_thread")

D = 8  # the config's dim in these tests


def _pair():
    views, y = make_views(n=60, dims=(5, 7))
    target, _ = make_views(n=60, dims=(5, 7), seed=0, shift=0.5)
    return DomainPair.from_arrays(MultimodalData(views, labels=y), MultimodalData(target))


def _module(width=6):
    return nn.Sequential(nn.Linear(5, width), nn.Tanh(), nn.Linear(width, D))


def _adapter():
    return DomainAdapter(epochs=2, dim=D, hidden=16, batch_size=16, seed=0)


def test_own_encoder_trains_predicts_saves_and_loads(tmp_path):
    pair = _pair()
    module = _module()
    before = [p.detach().clone() for p in module.parameters()]
    adapter = _adapter().fit(pair, encoders={"m0": module})
    encoder = adapter.net.encoders["m0"]
    assert isinstance(encoder, ModuleEncoder) and encoder.module is module
    # every parameter of the user's module was trained
    assert all(not torch.equal(p.detach(), b) for p, b in zip(module.parameters(), before,
                                                               strict=True))
    # it receives the features standardised with the source's statistics
    x = pair.source.views["m0"][:4]
    mean, std = pair.source.views["m0"].mean(0), pair.source.views["m0"].std(0)
    encoder.eval()
    with torch.no_grad():
        expected = module(torch.from_numpy((x - mean) / std)).numpy()
        got = encoder(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)

    pred = adapter.predict(pair.target)
    assert pred.shape == (60,) and set(pred) <= {0, 1, 2}
    path = adapter.save(tmp_path / "model.pt")
    with pytest.raises(BoomdaError, match=r"modality 'm0' was trained with its own encoder "
                                          r"\(torch\.nn\.modules\.container\.Sequential\); "
                                          r"pass a new instance"):
        DomainAdapter.load(path)
    loaded = DomainAdapter.load(path, encoders={"m0": _module()})
    np.testing.assert_array_equal(loaded.predict(pair.target), pred)
    np.testing.assert_allclose(loaded.predict_proba(pair.target),
                               adapter.predict_proba(pair.target), rtol=1e-6, atol=1e-7)


def test_load_rejects_a_module_of_another_shape_or_modality(tmp_path):
    path = _adapter().fit(_pair(), encoders={"m0": _module()}).save(tmp_path / "model.pt")
    with pytest.raises(BoomdaError, match=r"saved parameters do not fit the model \(size "
                                          r"mismatch for net\.encoders\.m0\.module\.[02]\.weight"):
        DomainAdapter.load(path, encoders={"m0": _module(width=9)})
    with pytest.raises(BoomdaError, match=r"entry 'net\.encoders\.m0\.module\.2\.bias'; it "
                                          r"belongs to the module given as encoders\['m0'\]"):
        DomainAdapter.load(path, encoders={"m0": nn.Sequential(nn.Linear(5, D))})
    with pytest.raises(BoomdaError, match=r"encoders\['m1'\]: the model at .* was not trained "
                                          r"with an encoder of its own for 'm1' \(modalities "
                                          r"that take one: 'm0'\)"):
        DomainAdapter.load(path, encoders={"m0": _module(), "m1": _module()})


class _Fails(nn.Module):
    def forward(self, x):
        raise KeyError("no such feature")


@pytest.mark.parametrize("module, message", [
    (nn.Linear(5, 3), r"expected a module mapping \(B, 5\) to \(B, 8\), got output shape "
                      r"\(2, 3\) for input shape \(2, 5\)$"),
    (nn.Linear(4, D), r"expected a module mapping \(B, 5\) to \(B, 8\); on a \(2, 5\) batch "
                      r"it raised RuntimeError: mat1 and mat2 shapes cannot be multiplied"),
    (_Fails(), r".*it raised KeyError: 'no such feature'$"),
    (lambda x: x, r"expected a module mapping \(B, 5\) to \(B, 8\), got a function, not an "
                  r"nn\.Module$"),
])
def test_a_wrong_module_is_a_one_line_error_before_training(module, message):
    adapter = _adapter()
    with pytest.raises(DataError, match=r"^encoders\['m0'\]: " + message) as err:
        adapter.fit(_pair(), encoders={"m0": module})
    assert "\n" not in str(err.value)
    assert adapter.net is None  # nothing was built or trained


def test_the_check_leaves_the_module_in_its_mode_and_its_batch_norm_statistics_alone():
    module = nn.Sequential(nn.Linear(5, D), nn.BatchNorm1d(D))
    adapter = _adapter()
    # a check alone (the fit fails on the other modality's encoder afterwards)
    with pytest.raises(DataError, match=r"encoders\['m1'\]"):
        adapter.fit(_pair(), encoders={"m0": module, "m1": nn.Linear(7, 3)})
    assert module.training
    assert int(module[1].num_batches_tracked) == 0


def test_a_plain_module_for_a_sequence_modality_is_a_one_line_error():
    from boomda.data.container import pack_sequences

    rng = np.random.default_rng(0)
    views, y = make_views(n=40, dims=(5,))
    seqs = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(40)]
    source = MultimodalData({**views, "seq": pack_sequences(seqs)}, labels=y)
    target = MultimodalData({**views, "seq": pack_sequences(seqs)})
    pair = DomainPair.from_arrays(source, target)
    with pytest.raises(DataError, match=r"^encoders\['seq'\]: modality 'seq' holds packed "
                                        r"sequences; its encoder must be a sequence encoder "
                                        r"such as BackboneEncoder .*got a Linear$"):
        _adapter().fit(pair, encoders={"seq": nn.Linear(4, D)})
