"""Balancing the M+1 alignment objectives (Sun et al., AAAI 2026, "Pareto optimal balance").

MGDA (Sener & Koltun 2018) looks for weights gamma on the simplex that minimise the norm of the
combined gradient. With gradients taken w.r.t. the representations (problem P2), the stacked
gradient matrix P is block-diagonal plus a last row, and Q = P P^T has

    Q_mm = |g_m|^2,   Q_{m,M+1} = g_m . g_{M+1}^m,   Q_{M+1,M+1} = sum_m |g_{M+1}^m|^2,

all other entries 0, where ``g_m = dL_m^CA/dZ_m`` and ``g_{M+1}^m = dL_{M+1}^CA/dZ_m``.

    P3 (exact):        min_gamma gamma^T Q gamma,   gamma >= 0, 1^T gamma = 1
    P4 (closed form):  Q replaced by its diagonal:  gamma = Q~^{-1} 1 / (1^T Q~^{-1} 1)   (Eq. 13)
    P1 (reference):    the same with gradients w.r.t. the encoder parameters.

Before solving, the gradients may be normalised, as in Sener & Koltun's released code
(``gradient_normalizers``): each objective's gradient g_m is divided by n_m, its norm (``l2``),
its loss value (``loss``), or both (``loss+``), i.e. Q is replaced by ``D^-1 Q D^-1`` with
``D = diag(n)``; the min-norm weights found are applied to the unnormalised losses, as there
(``imtl`` maps its weights back to the raw losses: :class:`ImpartialBalancer`). Without
normalisation (``none``, the paper's P3/P4) gamma_m ~ 1/|g_m|^2, which gives the least weight to
the objective with the largest gradient, typically the most shifted modality's. With ``loss``,
gamma_m ~ L_m^2/|g_m|^2, and since |g_m|^2 grows like L_m for a covariance distance, roughly
gamma_m ~ L_m: the most misaligned modality gets the most weight.

The strategies below are interchangeable: each maps an :class:`AlignmentProblem` to a
:class:`BalanceResult`; the trainer never knows which one it holds.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from boomda.config import check_keys
from boomda.losses import tensor_sum
from boomda.registry import BALANCERS as BALANCERS
from boomda.registry import NORMALIZATIONS as NORMALIZATIONS
from boomda.registry import check_normalization

#: a diagonal entry of Q at or below this fraction of the largest one counts as a zero gradient
#: (an objective already met); relative, so that the solvers do not depend on Q's scale
ZERO_GRAD = 1e-30

@dataclass
class AlignmentProblem:
    """The M+1 alignment losses of one step and what their gradients are taken w.r.t.

    ``losses``: M per-modality losses then the fused one (scalars with graphs).
    ``reps``: the M representations Z_m over both domains of the batch, shape (B_s + B_t, d);
    ``losses[m]`` must depend on ``reps[m]`` only and the fused loss on their concatenation.
    ``params``: the encoder parameters (used only by the parameter-gradient reference P1).
    ``fused_reps``: when given, the fused loss depends on the concatenation of these tensors
    (detached copies of the representations, as are then ``reps``) rather than on ``reps``, so
    that one ``autograd.grad`` call gives every objective's representation gradient apart.
    ``gradients``: the representation gradients, when the caller computed them in closed form.
    """

    losses: list[torch.Tensor]
    reps: list[torch.Tensor]
    params: list[torch.nn.Parameter] | None = None
    fused_reps: list[torch.Tensor] | None = None
    #: ``(g, h)`` as :func:`representation_gradients` returns them, when already known (a form
    #: with closed-form gradients, :data:`boomda.losses.ANALYTIC_FORMS`); the losses may then
    #: be detached
    gradients: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None


@dataclass
class BalanceResult:
    """``gamma``: (M+1,) detached weights on the simplex; ``gram``: Q, when computed; ``r``: the
    diagnostic ``max_{i!=j} |Q_ij| / min_i Q_ii`` (inf when some Q_ii is 0), when Q is known.
    ``gradients``: ``(g, h)`` of :func:`representation_gradients`, when the strategy computed
    them: the gradient of the weighted alignment w.r.t. Z_m is then known without a second pass
    through the alignment losses (:meth:`representation_gradient`)."""

    gamma: torch.Tensor
    gram: np.ndarray | None = None
    r: float | None = None
    gradients: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None

    def representation_gradient(self, m: int, scale: float = 1.0) -> torch.Tensor:
        """``scale * (gamma_m g_m + gamma_{M+1} h_m)``: the gradient of
        ``scale * sum_k gamma_k L_k`` w.r.t. Z_m."""
        assert self.gradients is not None
        own, fused = self.gradients
        gamma = self.gamma.to(own[m].dtype)
        return (scale * gamma[m]) * own[m] + (scale * gamma[-1]) * fused[m]


def representation_gradients(losses: list[torch.Tensor], reps: list[torch.Tensor],
                             fused_reps: list[torch.Tensor] | None = None
                             ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``(g, h)``: ``g[m] = dL_m/dZ_m`` and ``h[m] = dL_{M+1}/dZ_m``.

    With ``fused_reps`` (the fused loss computed on their concatenation, and ``reps`` detached
    copies: :class:`AlignmentProblem`), one ``autograd.grad`` call through the alignment graphs
    only; otherwise two (the per-modality losses together, since L_m depends on Z_m only; then
    the fused one), keeping the graph for the later backward pass."""
    m_count = len(reps)
    if len(losses) != m_count + 1:
        raise ValueError(f"expected {m_count + 1} losses for {m_count} representations")
    if fused_reps is not None:
        grads = torch.autograd.grad(tensor_sum(losses), [*reps, *fused_reps], allow_unused=True)
        own, fused = grads[:m_count], grads[m_count:]
    else:
        own = torch.autograd.grad(tensor_sum(losses[:m_count]), reps, retain_graph=True,
                                  allow_unused=True)
        fused = torch.autograd.grad(losses[m_count], reps, retain_graph=True, allow_unused=True)
    zero = [torch.zeros_like(z) for z in reps]
    return ([z if g is None else g for g, z in zip(own, zero, strict=True)],
            [z if h is None else h for h, z in zip(fused, zero, strict=True)])


def gram_from_gradients(own: list[torch.Tensor], fused: list[torch.Tensor]) -> np.ndarray:
    """Q (float64, (M+1, M+1)) from :func:`representation_gradients`' output.

    When the M representations have one shape: one (2M, 2M) product of the flattened gradients
    in their own dtype (the entries of Q are its diagonal and the g_m . h_m entries), copied to
    the host once; else in float64, pair by pair."""
    m_count = len(own)
    idx = np.arange(m_count)
    if len({tuple(g.shape) for g in own}) == 1:
        rows = torch.stack([t.detach().reshape(-1) for t in (*own, *fused)])
        p = (rows @ rows.T).double().cpu().numpy()
        values = np.concatenate([p[idx, idx], p[idx, idx + m_count],
                                 [p[idx + m_count, idx + m_count].sum()]])
    else:
        pairs = [(x.detach().double().flatten(), y.detach().double().flatten())
                 for x, y in zip(own, fused, strict=True)]
        values = torch.stack([x @ x for x, _ in pairs] + [x @ y for x, y in pairs]
                             + [tensor_sum(y @ y for _, y in pairs)]).cpu().numpy()
    q = np.zeros((m_count + 1, m_count + 1))
    q[idx, idx] = values[:m_count]
    q[idx, m_count] = q[m_count, idx] = values[m_count:2 * m_count]
    q[m_count, m_count] = values[-1]
    return q


def representation_gram(losses: list[torch.Tensor], reps: list[torch.Tensor]) -> np.ndarray:
    """Q from representation gradients (problem P2; see the module docstring). Returns a float64
    (M+1, M+1) array. The graph is kept for the later backward pass."""
    return gram_from_gradients(*representation_gradients(losses, reps))


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
    diag = np.diag(q)
    if zero_gradients(diag).any():
        return 0.0 if top == 0.0 else math.inf
    return top / float(diag.min())


def normalize_gram(q: np.ndarray, losses: np.ndarray, mode: str) -> np.ndarray:
    """Q of the normalised gradients ``g_m / n_m``: ``Q_ij / (n_i n_j)``.

    ``mode``: ``none`` (n = 1), ``l2`` (n_m = |g_m| = sqrt(Q_mm)), ``loss`` (n_m = L_m) or
    ``loss+`` (n_m = L_m |g_m|), as in Sener & Koltun's released code. An objective whose n_m is
    0 (zero gradient, or loss already 0) keeps a zero row and column: it counts as met.
    """
    q = np.asarray(q, dtype=np.float64)
    n = gradient_normalizers(q, losses, mode)
    if mode == "none":
        return q
    inv = np.divide(1.0, n, out=np.zeros_like(n), where=n > 0)
    return q * np.outer(inv, inv)


def gradient_normalizers(q: np.ndarray, losses: np.ndarray, mode: str) -> np.ndarray:
    """``n`` of :func:`normalize_gram`: ones (``none``), ``|g_m|`` (``l2``), ``|L_m|``
    (``loss``) or ``|L_m| |g_m|`` (``loss+``), with ``|g_m| = sqrt(Q_mm)``."""
    check_normalization(mode)
    q = np.asarray(q, dtype=np.float64)
    if mode == "none":
        return np.ones(q.shape[0])
    losses = np.abs(np.asarray(losses, dtype=np.float64))
    norms = np.sqrt(np.clip(np.diag(q), 0.0, None))
    return {"l2": norms, "loss": losses, "loss+": losses * norms}[mode]


def zero_gradients(diag: np.ndarray) -> np.ndarray:
    """Mask of the objectives whose gradient counts as zero: ``Q_mm <= ZERO_GRAD * max_k Q_kk``
    (all of them when every diagonal entry is 0)."""
    top = float(diag.max())
    return diag <= ZERO_GRAD * top if top > 0 else np.ones_like(diag, dtype=bool)


def solve_min_norm_closed_form(q: np.ndarray) -> np.ndarray:
    """P4, Eq. (13): ``gamma_m = (1/Q_mm) / sum_k (1/Q_kk)``.

    When some Q_mm is 0 (that objective's gradient vanishes) the minimum of P4 is 0, reached by any
    gamma supported on the zero entries; the weight is then spread evenly over them. The result
    does not change when Q is multiplied by any positive number.
    """
    diag = np.diag(q).astype(np.float64)
    zero = zero_gradients(diag)
    if zero.any():
        return zero / zero.sum()
    inv = diag.max() / diag
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

    Every test is relative to the gradient norms ``s_m = sqrt(Q_mm)`` involved, not to the
    largest one, so that objectives whose Q_mm lie many orders of magnitude apart (1e20 and
    more) get their exact weights: a violation of optimality by point j counts when it exceeds
    ``tol * s_j * sum_m gamma_m s_m`` (the round-off scale of ``(Q gamma)_j``), and the affine
    minimisers are solved in the coordinates ``s_m alpha_m``, where Q has a unit diagonal.
    An objective with a zero gradient (:func:`zero_gradients`) makes the minimum 0: the weight
    is then spread evenly over such objectives, as in :func:`solve_min_norm_closed_form`.
    """
    q = np.asarray(q, dtype=np.float64)
    n = q.shape[0]
    if q.shape != (n, n) or n == 0:
        raise ValueError(f"Q must be a non-empty square matrix, got shape {q.shape}")
    if not np.all(np.isfinite(q)):
        raise ValueError("Q has non-finite entries")
    q = 0.5 * (q + q.T)
    zero = zero_gradients(np.diag(q))
    if zero.any():  # the minimum, 0, is reached on the zero gradients (on all when Q = 0)
        return zero / zero.sum()
    q = q / float(np.diag(q).max())  # the minimiser does not change; no overflow below
    norms = np.sqrt(np.diag(q))
    unit = q / np.outer(norms, norms)  # the Gram matrix of the unit gradients
    j0 = int(np.argmin(norms))
    lam = np.zeros(n)
    lam[j0] = 1.0
    corral = [j0]
    for _ in range(max_iter):
        qlam = q @ lam
        gap = (float(lam @ qlam) - qlam) / (norms * float(norms @ lam))
        j = int(np.argmax(gap))
        if gap[j] <= tol or j in corral:
            break
        corral.append(j)
        while True:
            alpha = _affine_minimiser(unit, norms, corral)
            if np.all(alpha > 0.0):
                lam = np.zeros(n)
                lam[corral] = alpha
                break
            current = lam[corral]
            neg = np.flatnonzero(alpha <= 0.0)
            ratios = current[neg] / (current[neg] - alpha[neg])
            theta = float(ratios.min())
            new = current + theta * (alpha - current)
            new[neg[int(np.argmin(ratios))]] = 0.0  # the point that reaches the face leaves S
            new = np.clip(new, 0.0, None)
            lam = np.zeros(n)
            lam[corral] = new
            corral = [i for i in corral if lam[i] > 0.0]
            if len(corral) == 1:
                lam = np.zeros(n)
                lam[corral[0]] = 1.0
                break
    return lam / lam.sum()


def _affine_minimiser(unit: np.ndarray, norms: np.ndarray, corral: list[int]) -> np.ndarray:
    """argmin_alpha alpha^T Q_SS alpha subject to sum(alpha) = 1 (alpha may be negative), for
    ``Q = diag(norms) unit diag(norms)``.

    Solved for ``beta = norms_S * alpha`` (``beta^T unit_SS beta`` under ``w . beta = 1`` with
    ``w = 1 / norms_S`` divided by its largest entry), whose KKT matrix stays well conditioned
    however far the norms lie apart."""
    k = len(corral)
    w = 1.0 / norms[corral]
    w = w / w.max()
    kkt = np.zeros((k + 1, k + 1))
    kkt[:k, :k] = unit[np.ix_(corral, corral)]
    kkt[:k, k] = w
    kkt[k, :k] = w
    rhs = np.zeros(k + 1)
    rhs[k] = 1.0
    try:
        beta = np.linalg.solve(kkt, rhs)[:k]
    except np.linalg.LinAlgError:  # affinely dependent points: the least-squares solution
        beta = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:k]
    alpha = beta / norms[corral]
    return alpha / alpha.sum()


def solve_impartial(q: np.ndarray) -> np.ndarray:
    """IMTL-G (Liu et al., "Towards impartial multi-task learning", ICLR 2021): the weights whose
    combined gradient ``g = sum_m gamma_m g_m`` has the same projection on every objective's unit
    gradient, ``g . g_m / |g_m|`` equal for all m.

    In terms of Q: ``Q gamma`` proportional to ``n = sqrt(diag Q)``, so ``gamma ~ Q^+ n``,
    normalised to sum 1. For mutually orthogonal gradients this is ``gamma_m ~ 1/|g_m|``: larger
    gradients still get smaller weights, but as 1/|g| rather than MGDA's 1/|g|^2.

    Two departures from IMTL-G: objectives with a zero gradient (:func:`zero_gradients`), whose
    unit gradient is undefined, get weight 0 and the others are solved for without them; and
    where IMTL-G's weights have a negative entry (it keeps it: its combined gradient then
    increases that objective's loss), the entry is set to 0 and the others rescaled to sum 1,
    so the projections are then no longer equal. If nothing positive is left the weights are
    uniform.
    """
    q = np.asarray(q, dtype=np.float64)
    n_obj = q.shape[0]
    diag = np.diag(q)
    live = ~zero_gradients(diag)
    if not live.any():
        return np.full(n_obj, 1.0 / n_obj)
    q_live = q[np.ix_(live, live)] / float(diag.max())
    gamma = np.zeros(n_obj)
    gamma[live] = np.linalg.lstsq(q_live, np.sqrt(np.diag(q_live)), rcond=None)[0]
    gamma = np.clip(gamma, 0.0, None)
    total = gamma.sum()
    if not np.isfinite(total) or total <= 0.0:
        return np.full(n_obj, 1.0 / n_obj)
    return gamma / total


class Balancer(ABC):
    """A strategy that weighs the M+1 alignment objectives of one step.

    ``normalization``: how the gradients are normalised before a Q-based solver sees them
    (:func:`normalize_gram`); the logged r is that of the Q the solver sees.
    """

    name: str = ""
    #: True when the strategy's result carries the representation gradients (then the method
    #: may compute the alignment on detached copies and inject them)
    uses_representation_gradients = False
    #: False when the strategy needs neither the losses' graphs nor the parameters (it reads
    #: the losses' values and ``AlignmentProblem.gradients``): the method may then give it
    #: detached losses and closed-form gradients. True, the safe default, for a strategy that
    #: differentiates the losses itself.
    needs_loss_graph = True
    #: whether the strategy trains in data-parallel processes (:mod:`boomda.distributed`)
    data_parallel = True

    def __init__(self, normalization: str = "none") -> None:
        check_normalization(normalization)
        self.normalization = normalization

    @abstractmethod
    def __call__(self, problem: AlignmentProblem) -> BalanceResult: ...

    def _loss_values(self, problem: AlignmentProblem) -> np.ndarray:
        if self.normalization in ("loss", "loss+"):
            return np.array([float(loss.detach()) for loss in problem.losses])
        return np.ones(len(problem.losses))

    def _normalized(self, q: np.ndarray, problem: AlignmentProblem) -> np.ndarray:
        return normalize_gram(q, self._loss_values(problem), self.normalization)


def _result(gamma: np.ndarray, q: np.ndarray | None, like: torch.Tensor,
            gradients=None) -> BalanceResult:
    tensor = torch.as_tensor(gamma, dtype=like.dtype, device=like.device)
    return BalanceResult(tensor, q, None if q is None else off_diagonal_ratio(q), gradients)


class UniformBalancer(Balancer):
    """gamma_m = 1/(M+1): CA+PL without balancing (the paper's Table 2, fourth row). Q is not
    computed, so r is not logged."""

    name = "uniform"
    needs_loss_graph = False

    def __call__(self, problem: AlignmentProblem) -> BalanceResult:
        n = len(problem.losses)
        return _result(np.full(n, 1.0 / n), None, problem.losses[0])


class GramBalancer(Balancer):
    """Q from representation gradients (P2), normalised, then solved by :meth:`solve`."""

    @staticmethod
    @abstractmethod
    def solve(q: np.ndarray) -> np.ndarray: ...

    #: the strategy's Q comes from representation gradients, which it keeps in its result
    uses_representation_gradients = True
    needs_loss_graph = False

    def gradients(self, problem: AlignmentProblem):
        """The representation gradients (kept in the result): the problem's when it has them,
        else by autograd; None for a Q of another kind."""
        if problem.gradients is not None:
            return problem.gradients
        return representation_gradients(problem.losses, problem.reps, problem.fused_reps)

    def gram(self, problem: AlignmentProblem, gradients) -> np.ndarray:
        return gram_from_gradients(*gradients)

    def __call__(self, problem: AlignmentProblem) -> BalanceResult:
        gradients = self.gradients(problem)
        q = self._normalized(self.gram(problem, gradients), problem)
        return _result(self.solve(q), q, problem.losses[0], gradients)


class ClosedFormBalancer(GramBalancer):
    """P4 on the representation-gradient Q (the paper's Boomda, with ``none``)."""

    name = "closed_form"
    solve = staticmethod(solve_min_norm_closed_form)


class ExactBalancer(GramBalancer):
    """P3 on the representation-gradient Q, solved exactly."""

    name = "exact"
    solve = staticmethod(solve_min_norm_exact)


class ImpartialBalancer(GramBalancer):
    """IMTL-G's equal-projection weights on the representation-gradient Q
    (:func:`solve_impartial`).

    Unlike the min-norm strategies, the weights are applied consistently with the
    normalisation: the weights ``gamma'`` found for the normalised gradients ``g_m / n_m`` give
    the combined gradient ``sum_m (gamma'_m / n_m) g_m``, so the losses get ``gamma_m ~ gamma'_m
    / n_m`` (rescaled to sum 1). IMTL-G's direction does not depend on the gradients' scales,
    so every normalisation gives IMTL-G's weights on the raw gradients; only an objective whose
    ``n_m`` is 0 (loss 0 under ``loss``/``loss+``) differs: it counts as met and gets weight 0.
    """

    name = "imtl"
    solve = staticmethod(solve_impartial)

    def __call__(self, problem: AlignmentProblem) -> BalanceResult:
        gradients = self.gradients(problem)
        raw = self.gram(problem, gradients)
        values = self._loss_values(problem)
        q = normalize_gram(raw, values, self.normalization)
        n = gradient_normalizers(raw, values, self.normalization)
        gamma = np.divide(self.solve(q), n, out=np.zeros_like(n), where=n > 0)
        total = gamma.sum()
        gamma = gamma / total if total > 0 else np.full(len(n), 1.0 / len(n))
        return _result(gamma, q, problem.losses[0], gradients)


class ParameterMGDABalancer(GramBalancer):
    """P1: the original MGDA on encoder-parameter gradients, solved exactly. The expensive
    reference that P2-P4 approximate."""

    name = "mgda_params"
    solve = staticmethod(solve_min_norm_exact)

    uses_representation_gradients = False
    needs_loss_graph = True
    #: its Q needs every objective's parameter gradient gathered over the processes
    data_parallel = False

    def gradients(self, problem: AlignmentProblem):
        return None

    def gram(self, problem: AlignmentProblem, gradients) -> np.ndarray:
        if not problem.params:
            raise ValueError("mgda_params needs the encoder parameters in the problem")
        return parameter_gram(problem.losses, problem.params)


def make_balancer(name: str, **options: Any) -> Balancer:
    """The balancing strategy called ``name`` (a name in :data:`BALANCERS`), built with its
    ``options``: for the built-in ones, ``normalization`` (one of :data:`NORMALIZATIONS`), the
    gradient normalisation before solving. An option the strategy does not take is an error
    naming it."""
    cls = BALANCERS.lookup(name)
    accepted = list(inspect.signature(cls).parameters)
    check_keys(options, accepted, f"gamma solver {name!r}")
    return cls(**options)
