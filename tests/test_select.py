"""Label-free model-selection validators against constructed cases with known answers."""

import dataclasses

import numpy as np
import pytest
import torch

from boomda.data.container import MultimodalData
from boomda.data.pair import DomainPair
from boomda.errors import BoomdaError
from boomda.estimator import DomainAdapter
from boomda.evaluate import predict_logits, predict_outputs
from boomda.select import (
    VALIDATORS,
    deep_embedded_validation,
    density_ratios,
    dev_risk,
    information_maximization,
    score_model,
    select_point,
    soft_neighborhood_density,
    softmax,
    source_risk,
    spearman,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------ source risk and IM
def test_source_risk_known_values():
    labels = np.array([0, 1, 2, 1])
    assert source_risk(np.eye(3)[labels], labels) == pytest.approx(0.0, abs=1e-12)
    assert source_risk(np.full((4, 3), 1 / 3), labels) == pytest.approx(-np.log(3))
    # a confidently wrong prediction costs -log(1e-12) (the clip), the right ones nothing
    wrong = np.eye(3)[[1, 1, 2, 1]]
    assert source_risk(wrong, labels) == pytest.approx(np.log(1e-12) / 4)


def test_information_maximization_known_values():
    c = 4
    confident_balanced = np.eye(c)[np.arange(12) % c]
    assert information_maximization(confident_balanced) == pytest.approx(np.log(c))
    constant_one_hot = np.eye(c)[np.zeros(12, dtype=int)]
    assert information_maximization(constant_one_hot) == pytest.approx(0.0, abs=1e-9)
    constant_soft = np.tile([0.7, 0.1, 0.1, 0.1], (12, 1))
    assert information_maximization(constant_soft) == pytest.approx(0.0, abs=1e-12)
    assert information_maximization(np.full((12, c), 1 / c)) == pytest.approx(0.0, abs=1e-12)
    # by hand: mean prediction (0.55, 0.45); H(p1) = H(0.9, 0.1), H(p2) = H(0.2, 0.8)
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    diversity = -(0.55 * np.log(0.55) + 0.45 * np.log(0.45))
    mean_entropy = -(0.9 * np.log(0.9) + 0.1 * np.log(0.1)
                     + 0.2 * np.log(0.2) + 0.8 * np.log(0.8)) / 2
    assert information_maximization(probs) == pytest.approx(diversity - mean_entropy)


# ------------------------------------------------------------------ SND
def _snd_brute_force(probs, temperature):
    n = len(probs)
    unit = [p / np.sqrt(sum(v * v for v in p)) for p in probs]
    total = 0.0
    for i in range(n):
        sims = {j: float(np.dot(unit[i], unit[j])) / temperature for j in range(n) if j != i}
        z = sum(np.exp(s) for s in sims.values())
        total -= sum(np.exp(s) / z * np.log(np.exp(s) / z) for s in sims.values())
    return total / n


@pytest.mark.parametrize("temperature", [0.05, 0.5])
def test_snd_matches_brute_force(temperature):
    probs = np.random.default_rng(1).dirichlet(np.ones(4), 9)
    expected = _snd_brute_force(probs, temperature)
    assert soft_neighborhood_density(probs, temperature) == pytest.approx(expected, rel=1e-10)
    # row blocks give the same value as one block
    assert soft_neighborhood_density(probs, temperature, block=2) == pytest.approx(expected,
                                                                                   rel=1e-10)


def test_snd_of_perfect_clusters_in_closed_form():
    c, k, t = 3, 5, 0.05
    probs = np.eye(c)[np.arange(c * k) % c]
    # each row: k - 1 neighbours at similarity 1, c k - k at 0
    a = 1 / t
    z = (k - 1) * np.exp(a) + (c * k - k)
    expected = np.log(z) - (k - 1) * np.exp(a) * a / z
    assert soft_neighborhood_density(probs, t) == pytest.approx(expected, rel=1e-12)


def test_snd_prefers_clustered_predictions():
    rng = np.random.default_rng(0)
    n, c = 90, 3
    clustered = softmax(6 * np.eye(c)[np.arange(n) % c] + rng.normal(0, 0.5, (n, c)))
    noise = rng.dirichlet(np.ones(c), n)
    assert soft_neighborhood_density(clustered) > soft_neighborhood_density(noise)
    assert np.isnan(soft_neighborhood_density(noise[:1]))
    with pytest.raises(BoomdaError, match="temperature"):
        soft_neighborhood_density(noise, temperature=0.0)


# ------------------------------------------------------------------ DEV
def test_dev_risk_by_hand():
    losses = np.array([1.0, 2.0, 3.0])
    # equal weights: Var(w) = 0, eta = 0, the estimate is the mean loss (times the weight)
    assert dev_risk(losses, np.ones(3)) == pytest.approx(2.0)
    assert dev_risk(losses, np.full(3, 0.5)) == pytest.approx(1.0)
    # w = (1, 1, 2): wl = (1, 2, 6), mean 3; mean w = 4/3; Var(w) = (1/9 + 1/9 + 4/9) / 2 = 1/3;
    # Cov(wl, w) = ((-2)(-1/3) + (-1)(-1/3) + (3)(2/3)) / 2 = 3/2; eta = -4.5;
    # risk = 3 - 4.5 * 4/3 + 4.5 = 1.5
    assert dev_risk(losses, np.array([1.0, 1.0, 2.0])) == pytest.approx(1.5)
    assert np.isnan(dev_risk(losses[:1], np.ones(1)))


def test_density_ratios_match_sklearn_logistic_regression():
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    xs = rng.normal(0, 1, (80, 3))
    xt = rng.normal(0, 1, (50, 3)) + [1.0, 0.0, -0.5]
    xv = rng.normal(0, 1, (20, 3))
    l2 = 0.05
    pooled = np.concatenate([xs, xt])
    mean, std = pooled.mean(axis=0), pooled.std(axis=0)
    y = np.r_[np.zeros(len(xs)), np.ones(len(xt))]
    # sklearn minimises C sum(BCE) + ||w||^2 / 2, i.e. mean(BCE) + ||w||^2 / (2 C N)
    clf = linear_model.LogisticRegression(C=1 / (l2 * len(pooled)), tol=1e-12, max_iter=10_000)
    clf.fit((pooled - mean) / std, y)
    expected = len(xs) / len(xt) * np.exp(clf.decision_function((xv - mean) / std))
    np.testing.assert_allclose(density_ratios(xs, xv, xt, l2), expected, rtol=1e-5)


def test_dev_is_the_mean_loss_without_shift():
    rng = np.random.default_rng(0)
    xs, xt, xv = (rng.normal(0, 1, (n, 4)) for n in (300, 300, 200))
    losses = rng.exponential(1.0, 200)
    assert deep_embedded_validation(xs, xv, xt, losses) == pytest.approx(-losses.mean(),
                                                                          rel=0.02)


def test_dev_penalises_losses_on_target_like_samples():
    rng = np.random.default_rng(0)
    xs = rng.normal(0, 1, (300, 2))
    xt = rng.normal(0, 1, (300, 2)) + [2.0, 0.0]
    xv = rng.normal(0, 1, (200, 2))
    target_like = xv[:, 0] > np.median(xv[:, 0])
    bad_on_target = np.where(target_like, 2.0, 0.0)
    bad_on_source = np.where(target_like, 0.0, 2.0)   # the same mean loss, 1
    dev_bad = deep_embedded_validation(xs, xv, xt, bad_on_target)
    dev_good = deep_embedded_validation(xs, xv, xt, bad_on_source)
    assert dev_bad < -1.0 < dev_good
    assert np.isnan(deep_embedded_validation(xs, xv[:1], xt, bad_on_target[:1]))


# ------------------------------------------------------------------ spearman and selection
def test_spearman_by_hand_with_ties():
    # ranks x: (1, 2.5, 2.5, 4), y: (1, 3, 2, 4); centred: (-1.5, 0, 0, 1.5), (-1.5, .5, -.5, 1.5)
    # rho = 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(3 / np.sqrt(10))
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1], [2]))
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_spearman_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = rng.integers(0, 5, 12), rng.integers(0, 5, 12)
        assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_select_point():
    assert select_point({"a": 0.1, "b": float("nan"), "c": 0.3, "d": float("inf")}) == "c"
    assert select_point({"x": 1.0, "y": 1.0}) == "x"
    with pytest.raises(BoomdaError, match="no finite score"):
        select_point({"a": float("nan"), "b": float("-inf")})
    with pytest.raises(BoomdaError, match="no finite score"):
        select_point({})


# ------------------------------------------------------------------ on a trained model
@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    labels = np.arange(120) % 3
    data = MultimodalData({"a": rng.normal(0, 1, (120, 5)).astype(np.float32),
                           "b": rng.normal(0, 1, (120, 4)).astype(np.float32)}, labels)
    pair = DomainPair.from_protocol(data, {"a": "noise:snr=1"}, seed=0, holdout=0.2)
    adapter = DomainAdapter(method="dt", epochs=1, batch_size=16, dim=8, hidden=16,
                            device="cpu").fit(pair)
    return adapter, pair


def test_predict_outputs_batches_and_mode(trained):
    adapter, pair = trained
    net = adapter.net
    net.train()
    fused, logits = predict_outputs(net, pair.target, adapter.device, batch_size=7)
    assert net.training
    assert fused.shape == (len(pair.target), 2 * 8) and logits.shape == (len(pair.target), 3)
    net.eval()
    with torch.no_grad():
        out = net({m: torch.from_numpy(v) for m, v in pair.target.views.items()})
    np.testing.assert_allclose(fused, out.fused.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits, out.fused_logits.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(predict_logits(net, pair.target, adapter.device, 7), logits)


def test_score_model_is_finite_and_matches_the_validators(trained):
    adapter, pair = trained
    scores = score_model(adapter, pair)
    assert list(scores) == list(VALIDATORS) == ["source_risk", "im", "snd", "dev"]
    assert all(np.isfinite(v) for v in scores.values())
    holdout = adapter.predict_proba(pair.source_holdout)
    target = adapter.predict_proba(pair.target)
    assert scores["source_risk"] == pytest.approx(
        np.mean(np.log(holdout[np.arange(len(holdout)), pair.source_holdout.labels])), rel=1e-5)
    assert scores["im"] == pytest.approx(information_maximization(target), rel=1e-5)
    assert scores["snd"] == pytest.approx(soft_neighborhood_density(target), rel=1e-5)


def test_score_model_without_holdout(trained):
    adapter, pair = trained
    scores = score_model(adapter, dataclasses.replace(pair, source_holdout=None))
    assert np.isnan(scores["source_risk"]) and np.isnan(scores["dev"])
    with_holdout = score_model(adapter, pair)
    assert scores["im"] == with_holdout["im"] and scores["snd"] == with_holdout["snd"]


class _LabelTrap(MultimodalData):
    """Target data whose labels must not be read."""

    def __getattribute__(self, name):
        if name == "labels":
            raise AssertionError("the target's labels were read")
        return super().__getattribute__(name)


def test_score_model_never_reads_target_labels(trained):
    adapter, pair = trained
    reference = score_model(adapter, pair)
    permuted = MultimodalData(pair.target.views, np.random.default_rng(1).permutation(
        pair.target.labels))
    for target in (permuted, MultimodalData(pair.target.views, None)):
        assert score_model(adapter, dataclasses.replace(pair, target=target)) == reference
    trapped = dataclasses.replace(pair, target=MultimodalData(pair.target.views, None))
    trapped.target = _LabelTrap(pair.target.views)
    assert score_model(adapter, trapped) == reference
