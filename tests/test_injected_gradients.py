"""Boomda's alignment enters the backward pass as representation gradients (computed once, in
closed form for the default ``correlation`` form or by one autograd call for the others, and
injected at Z_1..Z_M); the parameter gradients must equal those of a backward pass through the
alignment losses, for every balancing strategy and form."""

import pytest
import torch

from boomda import TrainConfig
from boomda.balance import BALANCERS, NORMALIZATIONS
from boomda.losses import ANALYTIC_FORMS
from boomda.methods import Batch, build_method
from boomda.nn.net import MultimodalNet


def _batch(dtype, seed=0, n=24):
    gen = torch.Generator().manual_seed(seed)
    xs = {m: torch.randn(n, d, generator=gen, dtype=dtype) for m, d in (("a", 7), ("b", 5),
                                                                         ("c", 6))}
    xt = {m: 1.5 * torch.randn(n, d, generator=gen, dtype=dtype) + 0.3 for m, d in
          (("a", 7), ("b", 5), ("c", 6))}
    return Batch(xs, torch.arange(n) % 3), Batch(xt)


def _gradients(method, source, target, inject):
    method.inject_gradients = inject
    method.zero_grad(set_to_none=True)
    out = method.loss_terms(source, target, progress=0.5)
    loss = out.total()
    out.backward(loss)
    closed_form = method.options.ca_form in ANALYTIC_FORMS
    assert bool(out.injected) == (inject and method.balancer.name != "mgda_params" and (
        closed_form or method.balancer.name != "uniform"))
    return ({n: p.grad.clone() for n, p in method.named_parameters() if p.grad is not None},
            float(loss.detach()), out.gamma)


#: (solver, normalisation) pairs: a normalisation changes nothing for uniform weights, which
#: never look at the gradients, so uniform is checked once, without one
SOLVER_NORMALIZATIONS = [(solver, normalization) for solver in BALANCERS
                         for normalization in ("none", "loss")
                         if solver != "uniform" or normalization == "none"]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("solver", "normalization"), SOLVER_NORMALIZATIONS)
@pytest.mark.parametrize("form", ["correlation", "relative"])
def test_parameter_gradients_equal_a_backward_through_the_losses(solver, normalization, dtype,
                                                                 form):
    assert normalization in NORMALIZATIONS
    torch.manual_seed(0)
    net = MultimodalNet({"a": 7, "b": 5, "c": 6}, 3, dim=8, hidden=16, dropout=0.0).to(dtype)
    config = TrainConfig(method="boomda", options={
        "gamma_solver": solver, "gamma_normalization": normalization, "alpha2": 100.0,
        "vote_threshold": 2, "ca_form": form})
    method = build_method("boomda", net, config)
    source, target = _batch(dtype)
    net.fit_standardization(source.x)
    injected, loss_a, gamma_a = _gradients(method, source, target, inject=True)
    through, loss_b, gamma_b = _gradients(method, source, target, inject=False)
    assert injected.keys() == through.keys() and len(injected) > 0
    # the closed form and autograd round differently: equal to float64 precision, and to float32
    # round-off in float32
    double = dtype == torch.float64
    assert loss_a == pytest.approx(loss_b, rel=1e-12 if double else 1e-6)
    assert gamma_a == pytest.approx(gamma_b, rel=1e-9 if double else 1e-5)
    scale = max(float(g.abs().max()) for g in through.values())
    tol = 1e-6 if dtype == torch.float64 else 1e-6 * max(1.0, scale)
    for name, g in through.items():
        assert torch.allclose(injected[name], g, rtol=0, atol=tol), name
