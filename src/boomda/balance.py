"""Balancing the M+1 alignment objectives (Sun et al., AAAI 2026, "Pareto optimal balance").

MGDA (Sener & Koltun 2018) looks for weights gamma on the simplex that minimise the norm of the
combined gradient. With gradients taken w.r.t. the representations (problem P2), the stacked
gradient matrix P is block-diagonal plus a last row, and Q = P P^T has

    Q_mm = |g_m|^2,   Q_{m,M+1} = g_m . g_{M+1}^m,   Q_{M+1,M+1} = sum_m |g_{M+1}^m|^2,

all other entries 0, where ``g_m = dL_m^CA/dZ_m`` and ``g_{M+1}^m = dL_{M+1}^CA/dZ_m``.

    P3 (exact):        min_gamma gamma^T Q gamma,   gamma >= 0, 1^T gamma = 1
    P4 (closed form):  Q replaced by its diagonal:  gamma = Q~^{-1} 1 / (1^T Q~^{-1} 1)   (Eq. 13)
    P1 (reference):    the same with gradients w.r.t. the encoder parameters.

The strategies below are interchangeable: each maps an :class:`AlignmentProblem` to a
:class:`BalanceResult`; the trainer never knows which one it holds.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch

from boomda.errors import ConfigError

#: a diagonal entry of Q at or below this counts as a zero gradient (an objective already met)
ZERO_GRAD = 1e-30


@dataclass
class AlignmentProblem:
    """The M+1 alignment losses of one step and what their gradients are taken w.r.t.

    ``losses``: M per-modality losses then the fused one (scalars with graphs).
    ``reps``: the M representations Z_m over both domains of the batch, shape (B_s + B_t, d);
    ``losses[m]`` must depend on ``reps[m]`` only and the fused loss on their concatenation.
    ``params``: the encoder parameters (used only by the parameter-gradient reference P1).
    """

    losses: list[torch.Tensor]
    reps: list[torch.Tensor]
    params: list[torch.nn.Parameter] | None = None


@dataclass
class BalanceResult:
    """``gamma``: (M+1,) detached weights on the simplex; ``gram``: Q, when computed; ``r``: the
    diagnostic ``max_{i!=j} |Q_ij| / min_i Q_ii`` (inf when some Q_ii is 0), when Q is known."""

    gamma: torch.Tensor
    gram: np.ndarray | None = None
    r: float | None = None


def representation_gram(losses: list[torch.Tensor], reps: list[torch.Tensor]) -> np.ndarray:
    """Q from representation gradients, with two ``autograd.grad`` calls (SPEC 4).

    Returns a float64 (M+1, M+1) array. The graph is kept for the later backward pass.
    """
    m_count = len(reps)
    if len(losses) != m_count + 1:
        raise ValueError(f"expected {m_count + 1} losses for {m_count} representations")
    own = torch.autograd.grad(sum(losses[:m_count]), reps, retain_graph=True, allow_unused=True)
    fused = torch.autograd.grad(losses[m_count], reps, retain_graph=True, allow_unused=True)
    q = np.zeros((m_count + 1, m_count + 1))
    for m, (g, h) in enumerate(zip(own, fused, strict=True)):
        g = torch.zeros_like(reps[m]) if g is None else g
        h = torch.zeros_like(reps[m]) if h is None else h
        g64, h64 = g.detach().double().flatten(), h.detach().double().flatten()
        q[m, m] = float(g64 @ g64)
        q[m, m_count] = q[m_count, m] = float(g64 @ h64)
        q[m_count, m_count] += float(h64 @ h64)
    return q


def parameter_gram(losses: list[torch.Tensor], params: list[torch.nn.Parameter]) -> np.ndarray:
    """Q for problem P1: Gram matrix of the per-objective gradients w.r.t. ``params``
    (one backward pass through the encoders per objective)."""
    flat = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        flat.append(torch.cat([
            (torch.zeros_like(p) if g is None else g).detach().double().flatten()
            for p, g in zip(params, grads, strict=True)
        ]))
    stacked = torch.stack(flat)
    return (stacked @ stacked.T).cpu().numpy()


def off_diagonal_ratio(q: np.ndarray) -> float:
    """Paper Fig. 3a: ``r = max_{i != j} |Q_ij| / min_i Q_ii`` (inf when min_i Q_ii = 0)."""
    n = q.shape[0]
    off = np.abs(q[~np.eye(n, dtype=bool)])
    top = float(off.max()) if off.size else 0.0
    low = float(np.diag(q).min())
    if low <= ZERO_GRAD:
        return 0.0 if top == 0.0 else math.inf
    return top / low


def solve_min_norm_closed_form(q: np.ndarray) -> np.ndarray:
    """P4, Eq. (13): ``gamma_m = (1/Q_mm) / sum_k (1/Q_kk)``.

    When some Q_mm is 0 (that objective's gradient vanishes) the minimum of P4 is 0, reached by any
    gamma supported on the zero entries; the weight is then spread evenly over them.
    """
    diag = np.diag(q).astype(np.float64)
    zero = diag <= ZERO_GRAD
    if zero.any():
        return zero / zero.sum()
    inv = 1.0 / diag
    return inv / inv.sum()


def solve_min_norm_exact(q: np.ndarray, tol: float = 1e-12, max_iter: int = 1000) -> np.ndarray:
    """P3 exactly: ``min gamma^T Q gamma`` on the simplex, Q symmetric PSD.

    This is Wolfe's minimum-norm-point algorithm (Wolfe 1976, "Finding the nearest point in a
    polytope", Math. Programming 11) written with the Gram matrix Q only: the rows p_i of P span
    the polytope, ``<x, p_i> = (Q gamma)_i`` and ``|x|^2 = gamma^T Q gamma`` for ``x = P^T gamma``.
    It is an active-set method: it keeps a corral S of affinely independent points, adds the
    point that most violates the optimality condition ``(Q gamma)_i >= gamma^T Q gamma``, and
    walks back to the simplex face when the affine minimiser of S leaves it. It ends, after
    finitely many steps, at a point satisfying the KKT conditions.
    """
    q = np.asarray(q, dtype=np.float64)
    n = q.shape[0]
    if q.shape != (n, n) or n == 0:
        raise ValueError(f"Q must be a non-empty square matrix, got shape {q.shape}")
    q = 0.5 * (q + q.T)
    scale = max(float(np.abs(np.diag(q)).max()), ZERO_GRAD)
    eps = tol * scale
    j0 = int(np.argmin(np.diag(q)))
    lam = np.zeros(n)
    lam[j0] = 1.0
    corral = [j0]
    for _ in range(max_iter):
        qlam = q @ lam
        norm2 = float(lam @ qlam)
        j = int(np.argmin(qlam))
        if qlam[j] >= norm2 - eps or j in corral:
            break
        corral.append(j)
        while True:
            alpha = _affine_minimiser(q, corral)
            if np.all(alpha > eps / scale):
                lam = np.zeros(n)
                lam[corral] = alpha
                break
            current = lam[corral]
            neg = alpha <= eps / scale
            theta = np.min(current[neg] / (current[neg] - alpha[neg]))
            new = current + theta * (alpha - current)
            new[new < 1e-15] = 0.0
            lam = np.zeros(n)
            lam[corral] = new
            corral = [i for i in corral if lam[i] > 0.0]
            if len(corral) == 1:
                lam = np.zeros(n)
                lam[corral[0]] = 1.0
                break
    lam = np.clip(lam, 0.0, None)
    return lam / lam.sum()


def _affine_minimiser(q: np.ndarray, corral: list[int]) -> np.ndarray:
    """argmin_alpha alpha^T Q_SS alpha subject to sum(alpha) = 1 (alpha may be negative)."""
    k = len(corral)
    kkt = np.zeros((k + 1, k + 1))
    kkt[:k, :k] = q[np.ix_(corral, corral)]
    kkt[:k, k] = 1.0
    kkt[k, :k] = 1.0
    rhs = np.zeros(k + 1)
    rhs[k] = 1.0
    solution = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
    alpha = solution[:k]
    return alpha / alpha.sum()


class Balancer(ABC):
    """A strategy that weighs the M+1 alignment objectives of one step."""

    name: str = ""

    @abstractmethod
    def __call__(self, problem: AlignmentProblem) -> BalanceResult: ...


def _result(gamma: np.ndarray, q: np.ndarray | None, like: torch.Tensor) -> BalanceResult:
    tensor = torch.as_tensor(gamma, dtype=like.dtype, device=like.device)
    return BalanceResult(tensor, q, None if q is None else off_diagonal_ratio(q))


class UniformBalancer(Balancer):
    """gamma_m = 1/(M+1): CA+PL without balancing (the paper's Table 2, fourth row). Q is not
    computed, so r is not logged."""

    name = "uniform"

    def __call__(self, problem: AlignmentProblem) -> BalanceResult:
        n = len(problem.losses)
        return _result(np.full(n, 1.0 / n), None, problem.losses[0])


class ClosedFormBalancer(Balancer):
    """P4 on the representation-gradient Q (Boomda's default)."""

    name = "closed_form"

    def __call__(self, problem: AlignmentProblem) -> BalanceResult:
        q = representation_gram(problem.losses, problem.reps)
        return _result(solve_min_norm_closed_form(q), q, problem.losses[0])


class ExactBalancer(Balancer):
    """P3 on the representation-gradient Q, solved exactly."""

    name = "exact"

    def __call__(self, problem: AlignmentProblem) -> BalanceResult:
        q = representation_gram(problem.losses, problem.reps)
        return _result(solve_min_norm_exact(q), q, problem.losses[0])


class ParameterMGDABalancer(Balancer):
    """P1: the original MGDA on encoder-parameter gradients, solved exactly. The expensive
    reference that P2-P4 approximate."""

    name = "mgda_params"

    def __call__(self, problem: AlignmentProblem) -> BalanceResult:
        if not problem.params:
            raise ValueError("mgda_params needs the encoder parameters in the problem")
        q = parameter_gram(problem.losses, problem.params)
        return _result(solve_min_norm_exact(q), q, problem.losses[0])


BALANCERS: dict[str, type[Balancer]] = {
    cls.name: cls
    for cls in (ClosedFormBalancer, ExactBalancer, UniformBalancer, ParameterMGDABalancer)
}


def make_balancer(name: str) -> Balancer:
    """The balancing strategy called ``name`` (closed_form, exact, uniform, mgda_params)."""
    if name not in BALANCERS:
        raise ConfigError(f"unknown gamma solver {name!r}; choose from {', '.join(BALANCERS)}")
    return BALANCERS[name]()
