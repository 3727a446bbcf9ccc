"""The examples of docs/extending.md, registered for the duration of a test: each is accepted
by the config's validation and used by a run, with nothing changed but its registry."""

from dataclasses import dataclass

import numpy as np
import pytest

from boomda import DomainAdapter, DomainPair, MultimodalData
from boomda.balance import BALANCERS, _GramBalancer
from boomda.errors import ConfigError
from boomda.losses import CA_FORMS
from boomda.methods import METHODS
from boomda.methods.base import Batch, Method, MethodOutput, joint_forward, source_loss
from boomda.select import VALIDATORS, Validator
from tests.conftest import make_views

TINY = {"epochs": 2, "batch_size": 16, "dim": 8, "hidden": 16, "device": "cpu", "seed": 0}


def _pair():
    views, y = make_views(n=64)
    target, ty = make_views(n=64, seed=1)
    return DomainPair.from_arrays(MultimodalData(views, y),
                                  MultimodalData({k: v + 1 for k, v in target.items()}, ty),
                                  source_holdout=MultimodalData(views, y))


@dataclass
class MMDOptions:
    weight: float = 1.0

    def validate(self) -> None:
        if self.weight < 0:
            raise ConfigError("options.weight must be >= 0")


class LinearMMD(Method):
    name = "mmd"
    Options = MMDOptions

    def loss_terms(self, source: Batch, target: Batch, progress: float) -> MethodOutput:
        out, n = joint_forward(self.net, source, target)
        gap = out.fused[:n].mean(0) - out.fused[n:].mean(0)
        terms = {"ib": source_loss(out, n, source.y, self.config), "mmd": (gap * gap).sum()}
        return MethodOutput(terms, {"ib": 1.0, "mmd": self.options.weight})


def solve_inverse_norm(q: np.ndarray) -> np.ndarray:
    w = 1.0 / np.sqrt(np.maximum(np.diag(q), 1e-30))
    return w / w.sum()


class InverseNormBalancer(_GramBalancer):
    name = "inverse_norm"
    solve = staticmethod(solve_inverse_norm)


def test_a_registered_method_trains(monkeypatch):
    monkeypatch.setitem(METHODS, "mmd", LinearMMD)
    adapter = DomainAdapter(method="mmd", options={"weight": 0.5}, **TINY).fit(_pair())
    assert adapter.history[-1].weights["mmd"] == 0.5 and adapter.history[-1].terms["mmd"] >= 0
    with pytest.raises(ConfigError, match="options.weight"):
        DomainAdapter(method="mmd", options={"weight": -1}, **TINY).fit(_pair())


def test_a_registered_balancing_strategy_weighs_by_inverse_gradient_norm(monkeypatch):
    monkeypatch.setitem(BALANCERS, "inverse_norm", InverseNormBalancer)
    adapter = DomainAdapter(method="boomda", gamma_solver="inverse_norm", **TINY).fit(_pair())
    gamma = np.array(adapter.history[-1].gamma)
    assert gamma.sum() == pytest.approx(1.0) and (gamma > 0).all()
    q = np.diag([1.0, 4.0, 16.0, 64.0])
    assert solve_inverse_norm(q) == pytest.approx(np.array([8, 4, 2, 1]) / 15)


def test_a_registered_alignment_form_is_used(monkeypatch):
    calls = []

    def mean_gap(z_source, z_target):
        calls.append(z_source.shape)
        gap = z_source.mean(0) - z_target.mean(0)
        return (gap * gap).mean()

    monkeypatch.setitem(CA_FORMS, "mean_gap", mean_gap)
    DomainAdapter(method="uniform", ca_form="mean_gap", **TINY).fit(_pair())
    assert calls and calls[0][1] in (8, 24)


def test_a_registered_validator_scores_every_run(monkeypatch):
    from boomda.select import score_model

    monkeypatch.setitem(VALIDATORS, "confidence", Validator(
        "confidence", "mean maximum class probability on the target", False,
        lambda o: float(o.probs_t.max(axis=1).mean())))
    pair = _pair()
    adapter = DomainAdapter(method="dt", **TINY).fit(pair)
    scores = score_model(adapter, pair)
    probs = adapter.predict_proba(pair.target)
    assert scores["confidence"] == pytest.approx(float(probs.max(axis=1).mean()), rel=1e-5)
