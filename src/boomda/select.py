"""Label-free model selection for unsupervised domain adaptation.

Each validator rates a trained model from labelled source data and *unlabelled* target data
only; target labels are never read. Higher is better for every validator, so that a sweep picks
its point with :func:`select_point`. :func:`spearman` measures how well a validator ranks the
points of a sweep against their (diagnostic) target accuracy.

Attributes:
    VALIDATORS: the label-free validators by name (``boomda bench --select NAME``), a
        :class:`~boomda.registry.Registry` of :class:`Validator`: ``source_risk``
        (:func:`source_risk`), ``im`` (:func:`information_maximization`), ``snd``
        (:func:`soft_neighborhood_density`) and ``dev`` (:func:`deep_embedded_validation`).
        Adding one is a scoring function of :class:`ModelOutputs` and one line:
        ``VALIDATORS.register(name, Validator(...))``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from boomda.errors import BoomdaError, DataError
from boomda.registry import Registry

_EPS = 1e-12
#: log-odds of the DEV domain classifier are clipped to +-this value before exp() (no overflow)
_MAX_LOG_ODDS = 50.0


@dataclass
class ModelOutputs:
    """What a validator may read of a trained model on a domain pair; never the target's labels.

    Representations are the fused Z_{M+1} (width F = M d) and probabilities the fused head's
    softmax. The ``_s``/``_v`` entries are None without (at least 2) held-out source samples.

    Attributes:
        feats_t: the target's representations (N_t, F).
        probs_t: the target's class probabilities (N_t, C).
        feats_s: the source training part's representations (N_s, F), or None.
        feats_v: the source held-out part's representations (N_v, F), or None.
        probs_v: the source held-out part's class probabilities (N_v, C), or None.
        labels_v: the source held-out part's class indices (N_v,), or None.
    """

    feats_t: np.ndarray
    probs_t: np.ndarray
    feats_s: np.ndarray | None = None
    feats_v: np.ndarray | None = None
    probs_v: np.ndarray | None = None
    labels_v: np.ndarray | None = None


@dataclass(frozen=True)
class Validator:
    """A validator's entry in :data:`VALIDATORS`.

    Attributes:
        name: its name, as ``--select`` and ``select=`` give it.
        description: one line on what it measures.
        needs_holdout: it reads labelled held-out source samples, so it is ``nan`` for a pair
            without (at least 2 of) them.
        score: ``score(outputs)``: the score of a :class:`ModelOutputs`, higher is better.
    """

    name: str
    description: str
    needs_holdout: bool
    score: Callable[[ModelOutputs], float]


def _entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy in nats of each row of ``probs`` (0 log 0 = 0)."""
    return -np.sum(probs * np.log(np.clip(probs, _EPS, None)), axis=-1)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, shifted by the row maximum for stability.

    Args:
        logits: the logits (N, C).

    Returns:
        The probabilities (N, C), each row summing to 1.
    """
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def cross_entropy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-sample cross-entropy ``-log max(p_i[y_i], 1e-12)`` in nats.

    Args:
        probs: class probabilities (N, C).
        labels: class indices (N,).

    Returns:
        The cross-entropies (N,), float64.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    return -np.log(np.clip(p[np.arange(len(y)), y], _EPS, None))


def source_risk(probs_source: np.ndarray, labels_source: np.ndarray) -> float:
    """Minus the mean cross-entropy of held-out labelled source samples, ``-mean_i CE_i``.

    The source-risk baseline of You et al., ICML 2019, Sec. 2. Probabilities are clipped at
    1e-12 before the log.

    Args:
        probs_source: softmax probabilities (N, C) of held-out source samples.
        labels_source: their class indices (N,).

    Returns:
        The score (at most 0, higher is better); ``nan`` when N = 0.
    """
    if len(labels_source) == 0:
        return float("nan")
    return -float(cross_entropy(probs_source, labels_source).mean())


def information_maximization(probs_target: np.ndarray) -> float:
    """Information maximisation ``H(mean_i p_i) - mean_i H(p_i)`` in nats.

    Shi & Sha, ICML 2012; Liang et al., SHOT, ICML 2020: the diversity of the target
    predictions minus their mean entropy.

    Args:
        probs_target: softmax probabilities (N, C) of the target samples.

    Returns:
        The score, in [0, log C] (entropy is concave); ``nan`` when N = 0.
    """
    p = np.asarray(probs_target, dtype=np.float64)
    if len(p) == 0:
        return float("nan")
    return float(_entropy(p.mean(axis=0)) - _entropy(p).mean())


def soft_neighborhood_density(probs_target: np.ndarray, temperature: float = 0.05,
                              block: int = 2000) -> float:
    """Soft neighbourhood density of the target predictions.

    Saito et al., "Tune it the right way: unsupervised validation of domain adaptation via
    soft neighborhood density", ICCV 2021. With ``P`` the target probabilities (N, C), each
    row L2-normalised, ``S = P P^T`` and, for each row i,
    ``q_ij = softmax_{j != i}(S_ij / temperature)`` over the N-1 other samples; the score is
    ``mean_i H(q_i)`` in nats.

    Args:
        probs_target: softmax probabilities (N, C) of the target samples.
        temperature: the softmax temperature, positive.
        block: rows computed at once, so memory is O(block * N).

    Returns:
        The score, higher is better; ``nan`` when N < 2.

    Raises:
        BoomdaError: a temperature that is not positive.
    """
    if temperature <= 0:
        raise BoomdaError(f"temperature must be positive, got {temperature}")
    p = np.asarray(probs_target, dtype=np.float64)
    n = len(p)
    if n < 2:
        return float("nan")
    p = p / np.clip(np.linalg.norm(p, axis=1, keepdims=True), _EPS, None)
    total = 0.0
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        s = p[rows] @ p.T / temperature
        s[np.arange(len(rows)), rows] = -np.inf
        s -= s.max(axis=1, keepdims=True)
        e = np.exp(s)
        s[np.arange(len(rows)), rows] = 0.0
        z = e.sum(axis=1)
        # H(q) = -sum_j q_j (s_j - log z) = log z - sum_j q_j s_j  (q_ii = 0)
        total += float(np.sum(np.log(z) - np.sum(e * s, axis=1) / z))
    return total / n


def density_ratios(features_source_train: np.ndarray, features_source_val: np.ndarray,
                   features_target: np.ndarray, l2: float = 1e-2) -> np.ndarray:
    """DEV's importance weights ``w_i = (N_s / N_t) p(target|x_i) / p(source|x_i)``.

    You et al., ICML 2019, Sec. 4.1. The domain classifier is a logistic regression, source =
    0 / target = 1, fitted on the source-train and target features after standardising all
    three sets with the pooled mean and standard deviation of those two; it minimises
    ``mean_i BCE_i + l2 / 2 * ||w||^2`` (bias not penalised) by L-BFGS from zero, in float64
    (deterministic). The log-odds are clipped to +-50 before the exponential.

    Args:
        features_source_train: the source training features (N_s, D).
        features_source_val: the source validation features (N_v, D).
        features_target: the target features (N_t, D).
        l2: the weight of the L2 penalty.

    Returns:
        The weights (N_v,) of the source-validation samples.

    Raises:
        DataError: the source-train or target features are empty.
    """
    import torch
    import torch.nn.functional as F

    xs = np.asarray(features_source_train, dtype=np.float64)
    xt = np.asarray(features_target, dtype=np.float64)
    xv = np.asarray(features_source_val, dtype=np.float64)
    if len(xs) == 0 or len(xt) == 0:
        raise DataError("density_ratios: the source-train and target features must be non-empty")
    pooled = np.concatenate([xs, xt])
    mean, std = pooled.mean(axis=0), pooled.std(axis=0)
    std[std == 0] = 1.0
    x = torch.from_numpy((pooled - mean) / std)
    y = torch.cat([torch.zeros(len(xs), dtype=torch.float64),
                   torch.ones(len(xt), dtype=torch.float64)])
    params = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], lr=1.0, max_iter=500, tolerance_grad=1e-10,
                                  tolerance_change=1e-14, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        logits = x @ params[:-1] + params[-1]
        loss = (F.binary_cross_entropy_with_logits(logits, y)
                + 0.5 * l2 * params[:-1].pow(2).sum())
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    coef = params.detach().numpy()
    log_odds = ((xv - mean) / std) @ coef[:-1] + coef[-1]
    return len(xs) / len(xt) * np.exp(np.clip(log_odds, -_MAX_LOG_ODDS, _MAX_LOG_ODDS))


def dev_risk(losses: np.ndarray, weights: np.ndarray) -> float:
    """DEV's control-variate risk estimate ``mean(w l) + eta mean(w) - eta``.

    You et al., ICML 2019, Eq. 6 and Alg. 1, with ``eta = -Cov(w l, w) / Var(w)`` (sample
    covariance and variance; ``eta = 0`` when Var(w) = 0).

    Args:
        losses: the per-sample losses l (N,).
        weights: their importance weights w (N,).

    Returns:
        The risk estimate (lower is better); ``nan`` when N < 2.
    """
    loss = np.asarray(losses, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if len(loss) < 2:
        return float("nan")
    weighted = w * loss
    var = np.var(w, ddof=1)
    eta = 0.0 if var == 0 else -np.cov(weighted, w, ddof=1)[0, 1] / var
    return float(weighted.mean() + eta * w.mean() - eta)


def deep_embedded_validation(features_source_train: np.ndarray,
                             features_source_val: np.ndarray, features_target: np.ndarray,
                             losses_source_val: np.ndarray, l2: float = 1e-2) -> float:
    """Deep embedded validation, ``-dev_risk(l, w)``.

    You et al., "Towards accurate model selection in deep unsupervised domain adaptation",
    ICML 2019: ``w`` are the :func:`density_ratios` of the source-validation features and
    ``l`` their per-sample losses.

    Args:
        features_source_train: the source training features (N_s, D).
        features_source_val: the source validation features (N_v, D).
        features_target: the target features (N_t, D).
        losses_source_val: the per-sample losses (N_v,) of the source validation samples.
        l2: the weight of the domain classifier's L2 penalty (:func:`density_ratios`).

    Returns:
        The score, higher is better; ``nan`` when N_v < 2.

    Raises:
        DataError: the source-train or target features are empty.
    """
    if len(losses_source_val) < 2:
        return float("nan")
    w = density_ratios(features_source_train, features_source_val, features_target, l2)
    return -dev_risk(losses_source_val, w)


def score_model(adapter, pair) -> dict[str, float]:
    """Every validator of :data:`VALIDATORS` for a trained model on a domain pair.

    Representations are the fused Z_{M+1} and probabilities the softmax of the fused head
    (:class:`ModelOutputs`). The target's labels are never read.

    Args:
        adapter: a trained :class:`~boomda.estimator.DomainAdapter`.
        pair: a :class:`~boomda.data.pair.DomainPair` with the model's modalities.

    Returns:
        Validator name -> score, higher is better. ``source_risk`` and ``dev`` need
        ``pair.source_holdout`` and are ``nan`` when it is None or holds fewer than 2 samples.

    Raises:
        BoomdaError: the model is not trained yet.
    """
    from boomda.evaluate import predict_outputs

    net = adapter.net
    if net is None:
        raise BoomdaError("the model is not trained yet: call fit() or load() first")
    feats_t, logits_t = predict_outputs(net, pair.target, adapter.device)
    outputs = ModelOutputs(feats_t, softmax(logits_t))
    holdout = pair.source_holdout
    if holdout is not None and len(holdout) >= 2:
        outputs.feats_s, _ = predict_outputs(net, pair.source, adapter.device)
        outputs.feats_v, logits_v = predict_outputs(net, holdout, adapter.device)
        outputs.probs_v, outputs.labels_v = softmax(logits_v), holdout.labels
    return {name: (float("nan") if v.needs_holdout and outputs.probs_v is None
                   else float(v.score(outputs)))
            for name, v in VALIDATORS.items()}


def _held_out(value: np.ndarray | None) -> np.ndarray:
    """An ``_s``/``_v`` entry of :class:`ModelOutputs`, present whenever a validator that
    ``needs_holdout`` is scored."""
    if value is None:
        raise ValueError("this validator needs held-out source samples; the pair has none")
    return value


#: the label-free validators, by name (``boomda bench --select NAME``); adding one is a scoring
#: function of :class:`ModelOutputs` and one line: ``VALIDATORS.register(name, Validator(...))``
VALIDATORS: Registry[Validator] = Registry("validator", {v.name: v for v in (
    Validator("source_risk", "minus the cross-entropy on held-out labelled source samples",
              True, lambda o: source_risk(_held_out(o.probs_v), _held_out(o.labels_v))),
    Validator("im", "information maximisation on the target: diversity of the predictions "
              "minus their mean entropy", False, lambda o: information_maximization(o.probs_t)),
    Validator("snd", "soft neighbourhood density: entropy of each target sample's softmax "
              "similarity to the other target samples", False,
              lambda o: soft_neighborhood_density(o.probs_t)),
    Validator("dev", "deep embedded validation: importance-weighted source-validation loss "
              "with a control variate, negated", True,
              lambda o: deep_embedded_validation(
                  _held_out(o.feats_s), _held_out(o.feats_v), o.feats_t,
                  cross_entropy(_held_out(o.probs_v), _held_out(o.labels_v)))),
)})


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..N, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    for lo, hi in zip(starts, ends, strict=True):
        ranks[order[lo:hi]] = (lo + hi + 1) / 2.0
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation: the Pearson correlation of the average ranks of two arrays.

    Args:
        x: the first values (N,).
        y: the second values (N,).

    Returns:
        The correlation, in [-1, 1]; ``nan`` when N < 2 or either input is constant.

    Raises:
        DataError: inputs that are not two 1-D arrays of equal length.
    """
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise DataError(f"spearman: expected two 1-D arrays of equal length, got {a.shape} "
                        f"and {b.shape}")
    if len(a) < 2:
        return float("nan")
    ra = _average_ranks(a) - (len(a) + 1) / 2.0
    rb = _average_ranks(b) - (len(b) + 1) / 2.0
    denom = np.sqrt(np.sum(ra * ra) * np.sum(rb * rb))
    return float(np.sum(ra * rb) / denom) if denom > 0 else float("nan")


def select_point(scores: Mapping[str, float]) -> str:
    """The key of the highest finite score (the first such key on ties).

    Args:
        scores: point -> score, in the sweep's order.

    Returns:
        The chosen key.

    Raises:
        BoomdaError: no score is finite.
    """

    best: str | None = None
    for key, value in scores.items():
        if np.isfinite(value) and (best is None or value > scores[best]):
            best = key
    if best is None:
        raise BoomdaError(f"select_point: no finite score among {len(scores)} point(s) "
                          f"({', '.join(map(str, scores)) or 'none'})")
    return best
