"""Prediction from input that lacks a modality (boomda.partial): each strategy's output is
recomputed here in numpy from the model's weights, complete samples keep exactly the
complete-input prediction, modality dropout trains as described, and bad input is one line."""

import csv

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from boomda import DomainAdapter
from boomda.cli import main
from boomda.data.container import MultimodalData
from boomda.data.pair import DomainPair
from boomda.errors import ConfigError, DataError
from boomda.nn.net import MultimodalNet
from tests.conftest import make_views

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODALITIES = ["m0", "m1", "m2"]


def _pair(seed=0):
    views, y = make_views(n=150, dims=(5, 7, 3), seed=seed)
    return DomainPair.from_protocol(MultimodalData(views, y), {"m0": "noise:snr=1"}, seed=seed)


@pytest.fixture(scope="module")
def pair():
    return _pair()


@pytest.fixture(scope="module")
def plain(pair):
    """A model trained without modality dropout."""
    return DomainAdapter(method="dt", epochs=3, dim=8, hidden=16, batch_size=16, seed=0).fit(pair)


@pytest.fixture(scope="module")
def moddrop(pair):
    """A model trained with modality dropout 0.5."""
    return DomainAdapter(method="dt", epochs=3, dim=8, hidden=16, batch_size=16, seed=0,
                         modality_dropout=0.5).fit(pair)


def _numpy_model(adapter):
    """The network's evaluation-mode arithmetic in float64 numpy, from its state dict:
    Z_m = W2 relu(W1 (x - mean) / std + b1) + b2; head_m = Wh Z_m + bh; fused = Wf [Z] + bf."""
    state = {k: v.detach().double().numpy() for k, v in adapter.net.state_dict().items()}

    def rep(m, x):
        p = f"encoders.{m}."
        z = (x - state[p + "standardize.mean"]) / state[p + "standardize.std"]
        h = np.maximum(z @ state[p + "net.0.weight"].T + state[p + "net.0.bias"], 0)
        return h @ state[p + "net.3.weight"].T + state[p + "net.3.bias"]

    def head(m, z):
        return z @ state[f"heads.{m}.weight"].T + state[f"heads.{m}.bias"]

    def fused(zs):
        return np.concatenate(zs, axis=1) @ state["fused_head.weight"].T + state["fused_head.bias"]

    return rep, head, fused


def _softmax(a):
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _expected(adapter, views, present, strategy):
    """Each sample's probabilities under ``strategy`` for the samples lacking a modality, the
    fused head's for the complete ones, recomputed from the weights."""
    rep, head, fused = _numpy_model(adapter)
    x = {m: views[m].astype(np.float64) for m in MODALITIES}
    zs = [rep(m, x[m]) for m in MODALITIES]
    out = _softmax(fused(zs))
    for i in np.flatnonzero(~present.all(axis=1)):
        here = [j for j in range(3) if present[i, j]]
        if strategy == "heads":
            out[i] = np.mean([_softmax(head(MODALITIES[j], zs[j][i:i + 1]))[0] for j in here],
                             axis=0)
        else:
            kept = [zs[j][i:i + 1] if present[i, j] else np.zeros_like(zs[j][i:i + 1])
                    for j in range(3)]
            out[i] = _softmax(fused(kept))[0]
    return out


@pytest.mark.parametrize("strategy", ["heads", "fused"])
def test_a_sample_without_a_modality_gets_the_strategy_computed_on_the_remaining_heads(
        pair, plain, strategy):
    views = {m: v.copy() for m, v in pair.target.views.items()}
    n = len(pair.target)
    present = np.ones((n, 3), dtype=bool)
    present[:10, 1] = False  # m1 absent: rows of NaN
    present[10:20, 0] = False  # m0 absent: through the mask
    present[20:25, [0, 2]] = False  # only m1 left
    views["m1"][:10] = np.nan
    mask = {"m0": present[:, 0], "m2": present[:, 2]}
    got = plain.predict_proba(views, mask=mask, strategy=strategy)
    want = _expected(plain, pair.target.views, present, strategy)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_array_equal(plain.predict(views, mask=mask, strategy=strategy),
                                  got.argmax(axis=1))
    # one modality absent for every sample: its array left out
    without = {m: v for m, v in pair.target.views.items() if m != "m2"}
    everyone = np.ones((n, 3), dtype=bool)
    everyone[:, 2] = False
    np.testing.assert_allclose(plain.predict_proba(without, strategy=strategy),
                               _expected(plain, pair.target.views, everyone, strategy),
                               atol=1e-5)


def test_heads_average_is_not_the_fused_head(pair, plain):
    """The two strategies really differ on partial input (the checks above would not tell a
    strategy from the other if they coincided)."""
    without = {m: v for m, v in pair.target.views.items() if m != "m1"}
    heads = plain.predict_proba(without, strategy="heads")
    fused = plain.predict_proba(without, strategy="fused")
    assert np.abs(heads - fused).max() > 1e-2


@pytest.mark.parametrize("strategy", ["heads", "fused", "auto"])
def test_random_masks_never_crash_nor_change_complete_samples(pair, plain, moddrop, strategy):
    rng = np.random.default_rng(0)
    n = len(pair.target)
    for adapter in (plain, moddrop):
        full_proba = adapter.predict_proba(pair.target)
        full_pred = adapter.predict(pair.target)
        for trial in range(15):
            present = rng.random((n, 3)) >= rng.uniform(0.05, 0.7)
            present[~present.any(axis=1), rng.integers(0, 3)] = True
            if trial == 0:
                present[:] = True
            mask = {m: present[:, j] for j, m in enumerate(MODALITIES)}
            proba = adapter.predict_proba(pair.target, mask=mask, strategy=strategy)
            pred = adapter.predict(pair.target, mask=mask, strategy=strategy)
            complete = present.all(axis=1)
            assert proba.shape == full_proba.shape and np.isfinite(proba).all()
            np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
            np.testing.assert_array_equal(proba[complete], full_proba[complete])
            np.testing.assert_array_equal(pred[complete], full_pred[complete])
            score = adapter.evaluate(pair.target, mask=mask, strategy=strategy)
            assert score["weighted_f1"] == pytest.approx(
                100 * f1_score(pair.target.labels, pred, average="weighted"))


def test_auto_strategy_follows_modality_dropout(pair, plain, moddrop, tmp_path):
    without = {m: v for m, v in pair.target.views.items() if m != "m0"}
    np.testing.assert_array_equal(plain.predict_proba(without),
                                  plain.predict_proba(without, strategy="heads"))
    np.testing.assert_array_equal(moddrop.predict_proba(without),
                                  moddrop.predict_proba(without, strategy="fused"))
    reloaded = DomainAdapter.load(moddrop.save(tmp_path / "m.pt"))
    assert reloaded.config.modality_dropout == 0.5
    np.testing.assert_allclose(reloaded.predict_proba(without),
                               moddrop.predict_proba(without), atol=1e-6)
    part = plain.partial_input(without)
    assert part.describe() == f"m0 absent in all {len(pair.target)} samples"


def test_modality_dropout_zeroes_whole_representations_in_training_only():
    torch.manual_seed(0)
    net = MultimodalNet({"a": 4, "b": 3, "c": 2}, 3, dim=5, hidden=8, modality_dropout=0.4)
    x = {"a": torch.randn(4000, 4), "b": torch.randn(4000, 3), "c": torch.randn(4000, 2)}
    net.train()
    out = net(x)
    blocks = out.fused.reshape(4000, 3, 5)
    dropped = (blocks == 0).all(dim=2)  # a whole Z_m zeroed
    kept = torch.stack(out.reps, dim=1)
    np.testing.assert_array_equal(blocks[~dropped].detach().numpy(),
                                  kept[~dropped].detach().numpy())
    assert not dropped.all(dim=1).any()  # never every modality of a sample
    # P(dropped) = p, except that all-dropped rows (p^3) are restored: p - p^3 per modality
    rate = dropped.float().mean().item()
    assert rate == pytest.approx(0.4 - 0.4 ** 3, abs=0.02)
    net.eval()
    assert torch.equal(net(x).fused, torch.cat(net(x).reps, dim=1))


def test_no_modality_dropout_draws_nothing():
    """p = 0 leaves torch's generator where it was, so training is unchanged bit for bit (the
    reference-loss test checks whole runs); p > 0 draws."""
    x = {"a": torch.randn(6, 4), "b": torch.randn(6, 3)}
    for p, draws in ((0.0, False), (0.3, True)):
        net = MultimodalNet({"a": 4, "b": 3}, 2, dim=5, hidden=8, dropout=0.0,
                            modality_dropout=p)
        net.train()
        before = torch.get_rng_state()
        net(x)
        assert (not torch.equal(torch.get_rng_state(), before)) == draws


def test_bad_partial_input_is_one_clear_error(pair, plain):
    views = dict(pair.target.views)
    n = len(pair.target)
    none = {m: np.zeros(n, bool) for m in MODALITIES}
    with pytest.raises(DataError, match="sample 0 has no modality present"):
        plain.predict(views, mask=none)
    with pytest.raises(DataError, match="none of the model's modalities"):
        plain.predict({"x": views["m0"]})
    with pytest.raises(DataError, match="mask: unknown modality 'm7'"):
        plain.predict(views, mask={"m7": np.ones(n, bool)})
    with pytest.raises(DataError, match=r"unknown modality 'mm1' \(and no 'm1'\)"):
        plain.predict({"m0": views["m0"], "mm1": views["m1"], "m2": views["m2"]})
    with pytest.raises(DataError, match=r"mask\['m1'\]: expected 75 booleans"):
        plain.predict(views, mask={"m1": np.ones(3, bool)})
    partly = {**views, "m1": views["m1"].copy()}
    partly["m1"][4, 0] = np.nan
    with pytest.raises(DataError, match=r"inputs\['m1'\]: sample 4 has NaN in some features"):
        plain.predict(partly)
    with pytest.raises(DataError, match="marks 75 sample"):
        plain.predict({"m0": views["m0"]}, mask={"m1": np.ones(n, bool)})
    with pytest.raises(ConfigError, match="unknown strategy 'vote'"):
        plain.predict(views, strategy="vote")
    with pytest.raises(ConfigError, match="modality_dropout must lie in"):
        DomainAdapter(modality_dropout=1.0).fit(pair)


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("partial-cli")
    rng = np.random.default_rng(0)
    y = np.arange(80) % 2
    a = rng.normal(size=(80, 3)) + y[:, None]
    b = rng.normal(size=(80, 2)) - y[:, None]
    np.savez(folder / "d.npz", a=a, b=b, labels=y)
    assert main(["run", "--dataset", str(folder / "d.npz"), "--epochs", "2", "--out",
                 str(folder), "--name", "m", "--no-progress"]) == 0
    return folder, a, b, y


def test_cli_predict_names_what_is_absent(cli_model, capsys):
    folder, a, b, y = cli_model
    model = folder / "m" / "model.pt"
    b_nan = b.copy()
    b_nan[:5] = np.nan
    np.savez(folder / "no_b.npz", a=a, labels=y)
    np.savez(folder / "nan_b.npz", a=a, b=b_nan)
    capsys.readouterr()
    assert main(["predict", str(model), str(folder / "no_b.npz"), "--out",
                 str(folder / "p.csv")]) == 0
    out = capsys.readouterr().out
    assert "absent modalities: b absent in all 80 samples; those samples predicted with the " \
           "heads strategy" in out and "weighted F1" in out
    rows = list(csv.DictReader((folder / "p.csv").open()))
    adapter = DomainAdapter.load(model)
    assert [int(r["predicted"]) for r in rows] == list(adapter.predict({"a": a}))
    assert {r["absent"] for r in rows} == {"b"}
    assert main(["predict", str(model), str(folder / "nan_b.npz"), "--out",
                 str(folder / "q.csv"), "--strategy", "fused"]) == 0
    assert "b absent in 5 of 80; those samples predicted with the fused strategy" in \
        capsys.readouterr().out
    rows = list(csv.DictReader((folder / "q.csv").open()))
    assert [r["absent"] for r in rows] == ["b"] * 5 + [""] * 75
    full = adapter.predict({"a": a, "b": b})
    assert [int(r["predicted"]) for r in rows][5:] == list(full[5:])


def test_cli_bad_partial_input_is_one_line(cli_model, capsys):
    folder, a, b, y = cli_model
    model = str(folder / "m" / "model.pt")
    nan_a = a.copy()
    nan_a[7] = np.nan
    np.savez(folder / "other.npz", x=a)
    np.savez(folder / "typo.npz", a=a, bb=b)
    np.savez(folder / "nothing7.npz", a=nan_a)
    cases = [
        (["predict", model, str(folder / "other.npz")], "none of the model's modalities"),
        (["predict", model, str(folder / "typo.npz")], "unknown modality 'bb' (and no 'b')"),
        (["predict", model, str(folder / "nothing7.npz")], "sample 7 has no modality present"),
        (["predict", model, str(folder / "typo.npz"), "--strategy", "vote"],
         "invalid choice: 'vote'"),
    ]
    for argv, fragment in cases:
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("boomda") and fragment in lines[0], err
