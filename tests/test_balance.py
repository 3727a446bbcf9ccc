"""Balancing: Q from autograd against independent gradients, and the gamma solvers against
brute-force and independent solvers."""

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from boomda.balance import (
    AlignmentProblem,
    ClosedFormBalancer,
    ExactBalancer,
    ImpartialBalancer,
    ParameterMGDABalancer,
    UniformBalancer,
    make_balancer,
    normalize_gram,
    off_diagonal_ratio,
    parameter_gram,
    representation_gram,
    solve_impartial,
    solve_min_norm_closed_form,
    solve_min_norm_exact,
)
from boomda.losses import coral_loss


def coral_grads_numpy(zs, zt):
    """d/dZ of ||C_t - C_s||_F^2 / (4 d^2), derived by hand: for the target rows
    ``Xc_t (C_t - C_s) / ((n_t - 1) d^2)``, for the source rows minus the analogue."""
    d = zs.shape[1]
    diff = np.cov(zt, rowvar=False) - np.cov(zs, rowvar=False)
    gs = -(zs - zs.mean(0)) @ diff / ((len(zs) - 1) * d * d)
    gt = (zt - zt.mean(0)) @ diff / ((len(zt) - 1) * d * d)
    return np.vstack([gs, gt])


def _alignment_problem(rng, dims=(3, 4, 2), ns=9, nt=7):
    reps = [torch.tensor(rng.normal(size=(ns + nt, d)) * rng.uniform(0.5, 3), requires_grad=True)
            for d in dims]
    losses = [coral_loss(z[:ns], z[ns:]) for z in reps]
    fused = torch.cat(reps, dim=1)
    losses.append(coral_loss(fused[:ns], fused[ns:]))
    return reps, losses, ns


def test_gradient_of_coral_matches_hand_derivation():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(16, 3))
    t = torch.tensor(z, requires_grad=True)
    (g,) = torch.autograd.grad(coral_loss(t[:9], t[9:]), t)
    np.testing.assert_allclose(g.numpy(), coral_grads_numpy(z[:9], z[9:]), rtol=1e-9, atol=1e-14)


def test_representation_gram_matches_independent_gradients():
    rng = np.random.default_rng(1)
    reps, losses, ns = _alignment_problem(rng)
    q = representation_gram(losses, reps)
    zs = [z.detach().numpy() for z in reps]
    fused = np.hstack(zs)
    # stacked gradient matrix P (M+1 rows, each the flattened gradient w.r.t. all of Z_{M+1})
    widths = [z.shape[1] for z in zs]
    offsets = np.cumsum([0] + widths)
    rows = []
    for m, z in enumerate(zs):
        block = np.zeros_like(fused)
        block[:, offsets[m]:offsets[m + 1]] = coral_grads_numpy(z[:ns], z[ns:])
        rows.append(block.ravel())
    rows.append(coral_grads_numpy(fused[:ns], fused[ns:]).ravel())
    p = np.array(rows)
    expected = p @ p.T
    np.testing.assert_allclose(q, expected, rtol=1e-9, atol=1e-20)
    # the zero pattern docs/method.md ("Balancing") gives: only the diagonal and the last row/column
    m_count = len(zs)
    for i, j in itertools.product(range(m_count), repeat=2):
        if i != j:
            assert q[i, j] == 0.0
    assert np.all(np.diag(q) > 0)
    assert np.all(q[:m_count, m_count] != 0)


def test_per_modality_loss_has_no_gradient_on_other_modalities():
    rng = np.random.default_rng(2)
    reps, losses, _ = _alignment_problem(rng)
    grads = torch.autograd.grad(losses[0], reps, allow_unused=True)
    assert grads[0] is not None and grads[0].abs().sum() > 0
    assert grads[1] is None and grads[2] is None


def _simplex_grid(n, steps):
    for combo in itertools.product(range(steps + 1), repeat=n - 1):
        if sum(combo) <= steps:
            yield np.array([*combo, steps - sum(combo)]) / steps


def test_closed_form_is_the_minimum_of_p4():
    rng = np.random.default_rng(3)
    for _ in range(5):
        diag = rng.uniform(0.1, 5.0, 3)
        # off-diagonal entries of Q are ignored by P4
        q = np.diag(diag) + np.array([[0, 0, 0.3], [0, 0, -0.2], [0.3, -0.2, 0]])
        gamma = solve_min_norm_closed_form(q)
        value = gamma @ np.diag(diag) @ gamma
        brute = min(g @ np.diag(diag) @ g for g in _simplex_grid(3, 200))
        assert value <= brute + 1e-12
        assert value == pytest.approx(1.0 / np.sum(1.0 / diag), rel=1e-12)
        assert brute - value < 1e-3 * value


def test_closed_form_beats_random_points_in_higher_dimension():
    rng = np.random.default_rng(4)
    diag = rng.uniform(0.01, 10.0, 6)
    gamma = solve_min_norm_closed_form(np.diag(diag))
    value = gamma @ (diag * gamma)
    samples = rng.dirichlet(np.ones(6), 20000)
    assert value <= np.min(np.sum(samples**2 * diag, axis=1))


def brute_force_qp(q):
    """Exact minimum of gamma^T Q gamma on the simplex by enumerating supports (KKT on each)."""
    n = q.shape[0]
    best = (np.inf, None)
    for k in range(1, n + 1):
        for support in itertools.combinations(range(n), k):
            s = list(support)
            kkt = np.zeros((k + 1, k + 1))
            kkt[:k, :k] = q[np.ix_(s, s)]
            kkt[:k, k] = 1
            kkt[k, :k] = 1
            rhs = np.zeros(k + 1)
            rhs[k] = 1
            try:
                sol = np.linalg.solve(kkt, rhs)
            except np.linalg.LinAlgError:
                continue
            if np.any(sol[:k] < -1e-12):
                continue
            gamma = np.zeros(n)
            gamma[s] = sol[:k]
            value = gamma @ q @ gamma
            if value < best[0]:
                best = (value, gamma)
    return best


def random_psd(rng, n):
    a = rng.normal(size=(n, rng.integers(1, n + 3))) * rng.exponential(1.0, (n, 1))
    return a @ a.T


def test_exact_solver_matches_brute_force_and_scipy():
    rng = np.random.default_rng(5)
    boundary = 0
    for trial in range(300):
        n = int(rng.integers(2, 7))
        q = random_psd(rng, n)
        gamma = solve_min_norm_exact(q)
        assert np.all(gamma >= 0) and gamma.sum() == pytest.approx(1.0, abs=1e-12)
        value = gamma @ q @ gamma
        best, best_gamma = brute_force_qp(q)
        assert value <= best + 1e-10 * np.abs(q).max()
        boundary += int(np.any(best_gamma < 1e-9))
        if trial < 40:
            res = minimize(lambda g, q=q: g @ q @ g, np.full(n, 1 / n),
                           jac=lambda g, q=q: 2 * q @ g,
                           bounds=[(0, 1)] * n,
                           constraints=[{"type": "eq", "fun": lambda g: g.sum() - 1}],
                           method="SLSQP", options={"ftol": 1e-14, "maxiter": 500})
            assert value <= res.fun + 1e-8 * np.abs(q).max()
    assert boundary > 50  # the random cases include many optima on the simplex boundary


def test_exact_solver_boundary_optimum_by_hand():
    # p1 = (1, 0), p2 = (3, 0): the nearest point of the segment to the origin is p1
    p = np.array([[1.0, 0.0], [3.0, 0.0]])
    np.testing.assert_allclose(solve_min_norm_exact(p @ p.T), [1.0, 0.0], atol=1e-12)
    # p1 = (1, 1), p2 = (1, -1): midpoint (1, 0)
    p = np.array([[1.0, 1.0], [1.0, -1.0]])
    np.testing.assert_allclose(solve_min_norm_exact(p @ p.T), [0.5, 0.5], atol=1e-12)


def test_exact_solver_with_the_structure_of_q():
    rng = np.random.default_rng(6)
    for _ in range(50):
        reps, losses, _ = _alignment_problem(rng, dims=(2, 3, 2, 4))
        q = representation_gram(losses, reps)
        gamma = solve_min_norm_exact(q)
        assert gamma @ q @ gamma <= brute_force_qp(q)[0] + 1e-10 * np.abs(q).max()


def test_exact_solver_on_a_diagonal_spread_far_below_the_largest_entry():
    """Orthogonal gradients: the exact minimiser is gamma_m ~ 1/Q_mm, however far the diagonal
    entries lie apart (here the two small ones 13 orders below the first)."""
    q = np.diag([1.0, 2e-13, 1e-13])
    inverse = np.array([1.0, 5e12, 1e13])
    np.testing.assert_allclose(solve_min_norm_exact(q), inverse / inverse.sum(), rtol=1e-9)


@pytest.mark.parametrize("spread", [10.0**k for k in range(0, 21, 2)])
def test_exact_solver_on_diagonals_spanning_up_to_1e20(spread):
    rng = np.random.default_rng(int(np.log10(spread)))
    for n in (2, 3, 5):
        # log-uniform entries, the extremes included: their ratio is exactly the spread
        diag = np.exp(rng.uniform(0.0, np.log(spread), n))
        diag[:2] = 1.0, spread
        diag *= 10.0 ** rng.uniform(-20, 20)
        inverse = 1.0 / diag
        np.testing.assert_allclose(solve_min_norm_exact(np.diag(diag)), inverse / inverse.sum(),
                                   rtol=1e-9)


def _kkt_qp_scaled(q):
    """The minimiser of gamma^T Q gamma on the simplex for a positive definite Q of any spread:
    on each support S, gamma_S ~ Q_SS^-1 1 solved as D^-1 A_SS^-1 D^-1 1 with D = diag(sqrt(Q_mm))
    and A = D^-1 Q D^-1 (unit diagonal, well conditioned); the support whose point is positive
    and has (Q gamma)_j >= gamma^T Q gamma off it (KKT) is the unique optimum."""
    d = np.sqrt(np.diag(q))
    a = q / np.outer(d, d)
    n = len(d)
    for k in range(1, n + 1):
        for support in itertools.combinations(range(n), k):
            idx = list(support)
            y = np.linalg.solve(a[np.ix_(idx, idx)], 1.0 / d[idx]) / d[idx]
            if np.any(y <= 0):
                continue
            gamma = np.zeros(n)
            gamma[idx] = y / y.sum()
            # (Q gamma)_j / d_j and gamma^T Q gamma / d_j, compared in the scaled form
            u = a @ (d * gamma)
            value = (d * gamma) @ u
            if all(d[j] * u[j] >= value * (1 - 1e-9) for j in range(n) if j not in support):
                return gamma
    raise AssertionError("no KKT point")


def test_exact_solver_on_correlated_gradients_of_widely_spread_norms():
    """Non-diagonal PSD matrices D A D, with gradient norms D spanning up to 10 orders of
    magnitude (Q's diagonal up to 1e20), against the KKT point found support by support."""
    rng = np.random.default_rng(21)
    interior = 0
    for _ in range(200):
        n = int(rng.integers(2, 6))
        g = rng.normal(size=(n, n + 2))
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        d = 10.0 ** rng.uniform(-10, 0, n)
        d[rng.integers(n)] = 1.0
        q = np.outer(d, d) * (g @ g.T)
        want = _kkt_qp_scaled(q)
        got = solve_min_norm_exact(q)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
        interior += int(np.all(want > 0))
    assert interior > 20


@pytest.mark.parametrize("balancer", [ClosedFormBalancer(), ExactBalancer(), UniformBalancer()])
def test_gamma_on_the_simplex(balancer):
    rng = np.random.default_rng(7)
    reps, losses, _ = _alignment_problem(rng)
    result = balancer(AlignmentProblem(losses, reps))
    gamma = result.gamma.numpy()
    assert gamma.shape == (4,)
    assert np.all(gamma >= 0)
    assert gamma.sum() == pytest.approx(1.0, abs=1e-6)
    if isinstance(balancer, UniformBalancer):
        np.testing.assert_allclose(gamma, 0.25)
        assert result.r is None
    else:
        assert result.r == pytest.approx(off_diagonal_ratio(result.gram))


def test_closed_form_weights_are_inverse_diagonal():
    q = np.diag([1.0, 2.0, 4.0])
    np.testing.assert_allclose(solve_min_norm_closed_form(q), np.array([4, 2, 1]) / 7)


def test_off_diagonal_ratio_by_hand():
    q = np.array([[4.0, 0.0, 1.0], [0.0, 2.0, -3.0], [1.0, -3.0, 8.0]])
    assert off_diagonal_ratio(q) == pytest.approx(3.0 / 2.0)
    assert off_diagonal_ratio(np.diag([0.0, 1.0]) + np.array([[0, 0.5], [0.5, 0]])) == np.inf


def test_zero_gradient_is_safe():
    rng = np.random.default_rng(8)
    ns = 6
    base = rng.normal(size=(ns, 3))
    # modality 0 is identical in both domains: its CORAL loss and gradient vanish
    z0 = torch.tensor(np.vstack([base, base]), requires_grad=True)
    z1 = torch.tensor(rng.normal(size=(2 * ns, 2)), requires_grad=True)
    reps = [z0, z1]
    losses = [coral_loss(z[:ns], z[ns:]) for z in reps]
    fused = torch.cat(reps, 1)
    losses.append(coral_loss(fused[:ns], fused[ns:]))
    for balancer in (ClosedFormBalancer(), ExactBalancer()):
        result = balancer(AlignmentProblem(losses, reps))
        gamma = result.gamma.numpy()
        assert np.all(np.isfinite(gamma)) and gamma.sum() == pytest.approx(1.0)
        assert result.gram[0, 0] == 0.0
        # a zero-gradient objective makes the minimum norm 0: all weight goes to it
        np.testing.assert_allclose(gamma, [1.0, 0.0, 0.0], atol=1e-12)
    # everything already aligned: all of Q is zero
    q = np.zeros((3, 3))
    np.testing.assert_allclose(solve_min_norm_closed_form(q), [1 / 3] * 3)
    gamma = solve_min_norm_exact(q)
    assert np.all(np.isfinite(gamma)) and gamma.sum() == pytest.approx(1.0)
    assert off_diagonal_ratio(q) == 0.0


def test_p1_equals_p2_when_the_encoder_jacobian_is_orthogonal():
    """Linear encoders Z_m = X_m W_m with square orthogonal X_m: the parameter gradient is
    X_m^T times the representation gradient, so P1's Gram matrix equals P2's Q exactly."""
    rng = np.random.default_rng(9)
    ns = nt = 5
    n = ns + nt
    weights, reps = [], []
    for d_out in (3, 2, 4):
        x = torch.tensor(np.linalg.qr(rng.normal(size=(n, n)))[0])
        w = torch.nn.Parameter(torch.tensor(rng.normal(size=(n, d_out))))
        weights.append(w)
        reps.append(x @ w)
    losses = [coral_loss(z[:ns], z[ns:]) for z in reps]
    fused = torch.cat(reps, 1)
    losses.append(coral_loss(fused[:ns], fused[ns:]))
    q_params = parameter_gram(losses, weights)
    q_reps = representation_gram(losses, reps)
    np.testing.assert_allclose(q_params, q_reps, rtol=1e-9, atol=1e-22)
    p1 = ParameterMGDABalancer()(AlignmentProblem(losses, reps, weights)).gamma.numpy()
    p2 = ExactBalancer()(AlignmentProblem(losses, reps, weights)).gamma.numpy()
    np.testing.assert_allclose(p1, p2, atol=1e-9)


# ------------------------------------------------------------------ scale and normalisation
@pytest.mark.parametrize("scale", [10.0**k for k in range(-30, 31, 2)])
def test_solvers_do_not_depend_on_the_scale_of_q(scale):
    np.testing.assert_allclose(solve_min_norm_exact(np.diag([1.0, 4.0]) * scale), [0.8, 0.2],
                               rtol=1e-9)
    np.testing.assert_allclose(solve_min_norm_closed_form(np.diag([1.0, 4.0]) * scale),
                               [0.8, 0.2], rtol=1e-12)
    # a Q with the P2 structure, whose minimum is inside the simplex (brute force at scale 1)
    q = np.array([[2.0, 0.0, 0.0, 0.5], [0.0, 1.0, 0.0, -0.3], [0.0, 0.0, 3.0, 0.2],
                  [0.5, -0.3, 0.2, 1.5]])
    expected = brute_force_qp(q)[1]
    np.testing.assert_allclose(solve_min_norm_exact(q * scale), expected, atol=1e-9)
    # a diagonal spanning seven orders of magnitude, as Q does in training
    wide = np.diag([1e-12, 3e-9, 1e-5])
    np.testing.assert_allclose(solve_min_norm_exact(wide * scale),
                               solve_min_norm_closed_form(wide), rtol=1e-6)
    np.testing.assert_allclose(solve_impartial(np.diag([1.0, 4.0]) * scale), [2 / 3, 1 / 3],
                               rtol=1e-9)


def test_normalize_gram_by_hand():
    q = np.array([[4.0, 0.0, 2.0], [0.0, 9.0, -3.0], [2.0, -3.0, 16.0]])
    losses = np.array([2.0, 0.5, 4.0])
    np.testing.assert_allclose(normalize_gram(q, losses, "none"), q)
    n = np.array([2.0, 3.0, 4.0])  # |g_m| = sqrt(Q_mm)
    np.testing.assert_allclose(normalize_gram(q, losses, "l2"), q / np.outer(n, n))
    np.testing.assert_allclose(normalize_gram(q, losses, "loss"), q / np.outer(losses, losses))
    np.testing.assert_allclose(normalize_gram(q, losses, "loss+"),
                               q / np.outer(losses * n, losses * n))
    # an objective with loss 0 counts as met: zero row and column
    out = normalize_gram(q, np.array([0.0, 0.5, 4.0]), "loss")
    assert np.all(out[0] == 0) and np.all(out[:, 0] == 0)


def test_gamma_of_each_normalisation_by_hand():
    """Orthogonal gradients with |g| = (1, 2, 4) and losses (1, 4, 2): Q = diag(1, 4, 16).

    none: gamma ~ 1/|g|^2 = (1, 1/4, 1/16) -> (16, 4, 1)/21
    l2:   all normalised gradients have norm 1 -> uniform (1, 1, 1)/3
    loss: gamma ~ L^2/|g|^2 = (1, 4, 1/4) -> (4, 16, 1)/21
    loss+: gamma ~ L^2 = (1, 16, 4) -> (1, 16, 4)/21
    imtl: gamma ~ 1/|g| = (1, 1/2, 1/4) -> (4, 2, 1)/7 (with none)
    """
    q = np.diag([1.0, 4.0, 16.0])
    losses = np.array([1.0, 4.0, 2.0])
    expected = {"none": [16, 4, 1], "l2": [1, 1, 1], "loss": [4, 16, 1], "loss+": [1, 16, 4]}
    for mode, weights in expected.items():
        want = np.array(weights, dtype=float) / sum(weights)
        qn = normalize_gram(q, losses, mode)
        np.testing.assert_allclose(solve_min_norm_closed_form(qn), want, rtol=1e-12)
        # with orthogonal gradients P3 and P4 coincide
        np.testing.assert_allclose(solve_min_norm_exact(qn), want, rtol=1e-9)
    np.testing.assert_allclose(solve_impartial(q), np.array([4, 2, 1]) / 7, rtol=1e-12)


def test_impartial_weights_equalise_projections():
    """IMTL-G: the combined gradient has the same projection on every unit gradient."""
    rng = np.random.default_rng(11)
    p = rng.normal(size=(3, 6))
    p[1] += 0.5 * p[0]
    gamma = solve_impartial(p @ p.T)
    g = gamma @ p
    projections = p @ g / np.linalg.norm(p, axis=1)
    np.testing.assert_allclose(projections, projections[0], rtol=1e-9)
    assert gamma.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("mode", ["none", "l2", "loss", "loss+"])
def test_balancers_apply_the_normalisation(mode):
    rng = np.random.default_rng(12)
    reps, losses, _ = _alignment_problem(rng)
    q = representation_gram(losses, reps)
    values = np.array([loss.item() for loss in losses])
    qn = normalize_gram(q, values, mode)
    # the min-norm weights are those of the normalised Q, applied to the raw losses; IMTL-G's
    # (applied consistently) do not depend on the normalisation: those of the raw Q
    for cls, solve, expected in ((ClosedFormBalancer, solve_min_norm_closed_form, qn),
                                 (ExactBalancer, solve_min_norm_exact, qn),
                                 (ImpartialBalancer, solve_impartial, q)):
        result = cls(mode)(AlignmentProblem(losses, reps))
        np.testing.assert_allclose(result.gamma.numpy(), solve(expected), rtol=1e-9,
                                   atol=1e-12)
        np.testing.assert_allclose(result.gram, qn, rtol=1e-12)


def test_unknown_normalisation_is_named():
    from boomda.errors import ConfigError

    with pytest.raises(ConfigError, match="gamma_normalization 'l3'"):
        make_balancer("closed_form", normalization="l3")
    with pytest.raises(ConfigError, match="gamma solver 'exact': unknown option 'tol'; allowed: "
                                          "normalization"):
        make_balancer("exact", tol=1e-3)
    assert make_balancer("imtl", normalization="loss").normalization == "loss"


def _imtl_g_closed_form(p):
    """IMTL-G's weights as Liu et al. (ICLR 2021) write them, from the gradient rows p:
    ``alpha_{2:T} = g_1 U^T (D U^T)^-1`` with ``D = g_1 - g_t``, ``U = u_1 - u_t`` (u the unit
    gradients) and ``alpha_1 = 1 - sum alpha_{2:T}``."""
    u = p / np.linalg.norm(p, axis=1, keepdims=True)
    d, uu = p[0] - p[1:], u[0] - u[1:]
    rest = p[0] @ uu.T @ np.linalg.inv(d @ uu.T)
    return np.r_[1.0 - rest.sum(), rest]


def _problem_with_gradients(rng, dims=(3, 4, 2), rows=5):
    """An AlignmentProblem whose representation gradients are given, and its stacked gradient
    matrix P (rows: g_1..g_M on their own blocks, then h_1..h_M)."""
    own = [torch.tensor(rng.normal(size=(rows, d))) for d in dims]
    # the fused objective's gradient partly along (or against) each modality's
    fused = [torch.tensor(rng.uniform(-2, 2) * g.numpy() + rng.normal(size=(rows, d)))
             for g, d in zip(own, dims, strict=True)]
    losses = [torch.tensor(v) for v in rng.uniform(0.1, 5.0, len(dims) + 1)]
    width = rows * sum(dims)
    p = np.zeros((len(dims) + 1, width))
    start = 0
    for m, (g, h) in enumerate(zip(own, fused, strict=True)):
        size = g.numel()
        p[m, start:start + size] = g.numpy().ravel()
        p[-1, start:start + size] = h.numpy().ravel()
        start += size
    return AlignmentProblem(losses, [torch.zeros_like(g) for g in own],
                            gradients=(own, fused)), p


@pytest.mark.parametrize("mode", ["none", "l2", "loss", "loss+"])
def test_imtl_is_imtl_g_under_every_normalisation(mode):
    """The weights, applied to the unnormalised losses, are IMTL-G's on the raw gradients
    whatever the normalisation (IMTL-G's direction does not depend on the gradients' scales);
    a weight IMTL-G makes negative is set to 0 and the others rescaled to sum 1."""
    rng = np.random.default_rng(31)
    signs = set()
    for _ in range(40):
        problem, p = _problem_with_gradients(rng)
        want = _imtl_g_closed_form(p)
        signs.add(bool(np.all(want > 0)))
        if np.any(want < 0):
            want = np.clip(want, 0.0, None)
        want = want / want.sum()
        got = ImpartialBalancer(mode)(problem).gamma.numpy()
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
        if np.all(want > 0):  # the combined raw gradient has equal unit projections
            projections = p @ (got @ p) / np.linalg.norm(p, axis=1)
            np.testing.assert_allclose(projections, projections[0], rtol=1e-9)
    assert signs == {True, False}  # both cases occur
