"""Loss functions of Boomda (Sun et al., AAAI 2026, Sec. 3). Pure functions of tensors.

Shapes: ``z`` is (B, d) representations of one modality; ``logits`` is (B, C); ``y`` is (B,).
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Iterable

import torch
import torch.nn.functional as F

from boomda.errors import DataError
from boomda.registry import CA_FORMS as CA_FORMS

#: added to every per-dimension variance inside the log-determinant
LOGDET_EPS = 1e-6


def tensor_sum(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """``t_1 + t_2 + ...`` over a non-empty iterable of tensors (what ``sum`` computes, typed
    as a tensor); an empty one is a :class:`ValueError`."""
    items = list(tensors)
    if not items:
        raise ValueError("tensor_sum: no tensors to add")
    return functools.reduce(operator.add, items)

def _check_batch(z: torch.Tensor, what: str) -> None:
    if z.dim() != 2:
        raise DataError(f"{what}: expected a (batch, dim) tensor, got shape {tuple(z.shape)}")
    if z.shape[0] < 2:
        raise DataError(f"{what}: a batch needs at least 2 samples to estimate a covariance, "
                        f"got {z.shape[0]}")


def covariance(z: torch.Tensor) -> torch.Tensor:
    """Unbiased covariance of the rows of ``z``: ``(z - mean)^T (z - mean) / (B - 1)``, (d, d)."""
    a = _covariance_factor(z)
    return a.T @ a


def diag_log_det(z: torch.Tensor, eps: float = LOGDET_EPS) -> torch.Tensor:
    """``log |Sigma|`` for the *diagonal* covariance of the batch: ``sum_j log(var_j + eps)``.

    ``var_j`` is the unbiased variance of dimension j. The full determinant is never used: with a
    batch smaller than d the sample covariance is singular.
    """
    _check_batch(z, "diag_log_det")
    return torch.log(z.var(dim=0, unbiased=True) + eps).sum()


def information_bottleneck_loss(
    reps: list[torch.Tensor],
    logits: list[torch.Tensor],
    y: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Eq. (5): ``sum_m [ (beta / 2) log|Sigma_m| + CE(logits_m, y) ]`` over all M+1 heads.

    ``reps[m]`` and ``logits[m]`` are the source representations and head outputs of modality m
    (the fused one included); CE is the mean cross-entropy over the batch.
    """
    total = torch.zeros((), device=y.device)
    for z, out in zip(reps, logits, strict=True):
        total = total + 0.5 * beta * diag_log_det(z) + F.cross_entropy(out, y)
    return total


def _check_pair(z_source: torch.Tensor, z_target: torch.Tensor, what: str) -> None:
    if z_source.shape[1:] != z_target.shape[1:]:
        raise DataError(f"{what}: source dim {z_source.shape[1]} != target dim "
                        f"{z_target.shape[1]}")


def _covariance_factor(z: torch.Tensor) -> torch.Tensor:
    """``A`` with ``A^T A`` the unbiased covariance of the rows of ``z``: the centred rows over
    ``sqrt(B - 1)``."""
    _check_batch(z, "covariance")
    return (z - z.mean(dim=0, keepdim=True)) / math.sqrt(z.shape[0] - 1)


def _correlation_factor(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``S`` with ``S^T S`` the correlation matrix of the rows of ``z`` (:func:`correlation`)."""
    a = _covariance_factor(z)
    return a / torch.sqrt((a * a).sum(dim=0) + eps)


def _small_dimension(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape[1] <= max(a.shape[0], b.shape[0])


def _inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``<a^T a, b^T b>_F = tr(a^T a b^T b) = ||a b^T||_F^2``: through the (d, d) products when
    d does not exceed the batches, else through the (B_a, B_b) product ``a b^T``, far cheaper
    when the dimension exceeds the batch (the fused representation)."""
    if _small_dimension(a, b):
        return ((a.T @ a) * (b.T @ b)).sum()
    p = a @ b.T
    return (p * p).sum()


def _gap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``||a^T a - b^T b||_F^2``: directly when d does not exceed the batches, else as
    ``<a,a> - 2 <a,b> + <b,b>`` through :func:`_inner`."""
    if _small_dimension(a, b):
        diff = a.T @ a - b.T @ b
        return (diff * diff).sum()
    return _inner(a, a) - 2.0 * _inner(a, b) + _inner(b, b)


def coral_distance(z_source: torch.Tensor, z_target: torch.Tensor) -> torch.Tensor:
    """The paper's Eq. (10), unnormalised: ``|| C_t - C_s ||_F^2``, C the unbiased covariance.

    Its size grows with the square of the representation's scale and with its dimension."""
    _check_pair(z_source, z_target, "coral_distance")
    return _gap(_covariance_factor(z_target), _covariance_factor(z_source))


def coral_loss(z_source: torch.Tensor, z_target: torch.Tensor) -> torch.Tensor:
    """Correlation alignment, Eq. (10) with Deep CORAL's normalisation (Sun & Saenko 2016):
    ``|| C_t - C_s ||_F^2 / (4 d^2)``, C the unbiased covariance, d the representation size."""
    _check_pair(z_source, z_target, "coral_loss")
    d = z_source.shape[1]
    return coral_distance(z_source, z_target) / (4.0 * d * d)


def relative_coral_loss(z_source: torch.Tensor, z_target: torch.Tensor,
                        eps: float = 1e-30) -> torch.Tensor:
    """Scale-free correlation alignment: Eq. (10) relative to the covariances' own size,

    ``|| C_t - C_s ||_F^2 / (|| C_s ||_F^2 + || C_t ||_F^2 + eps)``.

    Multiplying every representation by a constant leaves it unchanged, and it lies in [0, 1]
    for any two covariance matrices (their inner product is >= 0), whatever the dimension: 0 when
    the covariances agree, 1 when they are orthogonal (e.g. one of them is 0). The denominator
    is differentiated too, so no direction of the gradient merely rescales the representation.
    """
    _check_pair(z_source, z_target, "relative_coral_loss")
    a, b = _covariance_factor(z_source), _covariance_factor(z_target)
    return _gap(b, a) / (_inner(a, a) + _inner(b, b) + eps)


def correlation(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Correlation matrix of the rows of ``z``: ``C_ij / sqrt((C_ii + eps)(C_jj + eps))``, C the
    unbiased covariance; computed as ``S^T S`` with S the centred columns over their standard
    deviations (no (d, d) division)."""
    s = _correlation_factor(z, eps)
    return s.T @ s


def correlation_alignment_loss(z_source: torch.Tensor, z_target: torch.Tensor) -> torch.Tensor:
    """Alignment of correlation matrices: ``|| R_t - R_s ||_F^2 / d^2``, R the correlation
    matrix of each domain's batch (:func:`correlation`).

    Invariant to rescaling any single dimension in either domain, and bounded by 4 (every entry
    of R lies in [-1, 1]); differences of per-dimension variance are not penalised. When d
    exceeds the batch, computed through (B, B) Gram matrices rather than (d, d) ones."""
    _check_pair(z_source, z_target, "correlation_alignment_loss")
    d = z_source.shape[1]
    return _gap(_correlation_factor(z_target), _correlation_factor(z_source)) / (d * d)


def _factor_with_norms(z: torch.Tensor, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """``(S, n)``: :func:`_correlation_factor`'s S and the column norms n it divided by."""
    a = _covariance_factor(z)
    n = torch.sqrt((a * a).sum(dim=0) + eps)
    return a / n, n


def _factor_backward(grad_s: torch.Tensor, s: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """The gradient w.r.t. z of a function of ``S = A / n`` (A the centred rows of z over
    sqrt(B - 1), n_j = sqrt(sum_i A_ij^2 + eps)), given its gradient w.r.t. S:
    ``dA = (dS - S * sum_i(dS * S)) / n``, then ``dz = (dA - mean_rows(dA)) / sqrt(B - 1)``."""
    grad_a = (grad_s - s * (grad_s * s).sum(dim=0)) / n
    return (grad_a - grad_a.mean(dim=0)) / math.sqrt(s.shape[0] - 1)


def _correlation_gap_gradients(
    ss: torch.Tensor, st: torch.Tensor, grams: tuple[torch.Tensor, ...] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``||St^T St - Ss^T Ss||_F^2`` and its gradients w.r.t. Ss and St (``-2 * 2 Ss D`` and
    ``2 * 2 St D``, D = St^T St - Ss^T Ss), through (d, d) products when d does not exceed the
    batches, else through the (B, B) Gram matrices ``grams = (Ptt, Pts, Pss)`` (computed here
    when not given): ``St D = Ptt St - Pts Ss`` and ``Ss D = Pts^T St - Pss Ss``."""
    if grams is None and _small_dimension(st, ss):
        diff = st.T @ st - ss.T @ ss
        return (diff * diff).sum(), -4.0 * (ss @ diff), 4.0 * (st @ diff)
    ptt, pts, pss = grams if grams is not None else (st @ st.T, st @ ss.T, ss @ ss.T)
    gap = (ptt * ptt).sum() - 2.0 * (pts * pts).sum() + (pss * pss).sum()
    return gap, 4.0 * (pss @ ss - pts.T @ st), 4.0 * (ptt @ st - pts @ ss)


@torch.no_grad()
def correlation_alignment_with_gradients(
    source: list[torch.Tensor], target: list[torch.Tensor]
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """The M+1 ``correlation`` alignment losses of M representations (each modality's, then the
    concatenation's) and their gradients, in closed form, without autograd.

    ``source[m]``, ``target[m]``: the two domains' rows of Z_m. Returns ``(losses, own,
    fused)``: ``own[m]`` the gradient of L_m and ``fused[m]`` that of L_{M+1} w.r.t. Z_m, over
    the source rows then the target rows (as :func:`boomda.balance.representation_gradients`).
    The concatenation's correlation factor is the modalities' factors side by side (each
    column is normalised on its own), so its Gram matrices are the sums of theirs and nothing of
    the (B, M d) concatenation is formed when its dimension exceeds the batch."""
    for zs, zt in zip(source, target, strict=True):
        _check_pair(zs, zt, "correlation_alignment_with_gradients")
    fs = [_factor_with_norms(z) for z in source]
    ft = [_factor_with_norms(z) for z in target]
    losses, own = [], []
    for (ss, ns), (st, nt) in zip(fs, ft, strict=True):
        d = ss.shape[1]
        gap, gs, gt = _correlation_gap_gradients(ss, st)
        losses.append(gap / (d * d))
        own.append(torch.cat([_factor_backward(gs / (d * d), ss, ns),
                              _factor_backward(gt / (d * d), st, nt)]))
    d_all = sum(ss.shape[1] for ss, _ in fs)
    ss_all = [ss for ss, _ in fs]
    st_all = [st for st, _ in ft]
    if d_all <= max(ss_all[0].shape[0], st_all[0].shape[0]):  # small: the (d, d) products
        gap, gs, gt = _correlation_gap_gradients(torch.cat(ss_all, dim=1),
                                                 torch.cat(st_all, dim=1))
        widths = [ss.shape[1] for ss in ss_all]
        gs_blocks, gt_blocks = gs.split(widths, dim=1), gt.split(widths, dim=1)
    else:
        ptt = tensor_sum(st @ st.T for st in st_all)
        pts = tensor_sum(st @ ss.T for st, ss in zip(st_all, ss_all, strict=True))
        pss = tensor_sum(ss @ ss.T for ss in ss_all)
        gap = (ptt * ptt).sum() - 2.0 * (pts * pts).sum() + (pss * pss).sum()
        gs_blocks = [4.0 * (pss @ ss - pts.T @ st) for ss, st in zip(ss_all, st_all, strict=True)]
        gt_blocks = [4.0 * (ptt @ st - pts @ ss) for ss, st in zip(ss_all, st_all, strict=True)]
    scale = 1.0 / (d_all * d_all)
    losses.append(gap * scale)
    fused = [torch.cat([_factor_backward(g_s * scale, ss, ns),
                        _factor_backward(g_t * scale, st, nt)])
             for g_s, g_t, (ss, ns), (st, nt) in zip(gs_blocks, gt_blocks, fs, ft, strict=True)]
    return losses, own, fused


#: forms whose M+1 losses and representation gradients have a closed form (see
#: :func:`correlation_alignment_with_gradients`): Boomda computes them without autograd
ANALYTIC_FORMS = {"correlation": correlation_alignment_with_gradients}


def alignment_loss(z_source: torch.Tensor, z_target: torch.Tensor, form: str) -> torch.Tensor:
    """The correlation-alignment loss in the form called ``form`` (a name in
    :data:`CA_FORMS`; the built-in ones: ``paper``, :func:`coral_distance`, Eq. 10 as printed;
    ``coral``, :func:`coral_loss`, Deep CORAL's 1/(4 d^2); ``relative``,
    :func:`relative_coral_loss`; ``correlation``, :func:`correlation_alignment_loss`)."""
    if form not in CA_FORMS:
        raise DataError(f"unknown CA form {form!r}; choose from {CA_FORMS.choices()}")
    return CA_FORMS[form](z_source, z_target)


@torch.no_grad()
def vote_pseudo_labels(
    logits: list[torch.Tensor], threshold: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. (6)-(8): each of the M+1 heads votes with its argmax.

    A sample is kept when one class receives at least ``threshold`` (M_v) votes and no other class
    receives as many (a tie for the most votes is ambiguous and the sample is dropped; the paper
    does not say how ties are broken). Returns ``(keep, labels)``: a bool mask (B,) and the voted
    class (B,) (meaningful where ``keep``).
    """
    if not 1 <= threshold <= len(logits):
        raise DataError(f"vote threshold M_v={threshold} must lie in 1..{len(logits)} (M+1 heads)")
    n_classes = logits[0].shape[1]
    votes = torch.stack([out.argmax(dim=1) for out in logits], dim=1)  # (B, M+1)
    counts = F.one_hot(votes, n_classes).sum(dim=1)  # (B, C)
    top, labels = counts.max(dim=1)
    unique_top = (counts == top[:, None]).sum(dim=1) == 1
    keep = (top >= threshold) & unique_top
    return keep, labels


def pseudo_label_loss(
    fused_logits: torch.Tensor, keep: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Eq. (9): mean cross-entropy of the fused head on the kept samples; 0 if none is kept."""
    if not bool(keep.any()):
        return fused_logits.sum() * 0.0
    return F.cross_entropy(fused_logits[keep], labels[keep])


# --------------------------------------------------------------------------- baselines' losses
def domain_adversarial_loss(
    logits_source: torch.Tensor,
    logits_target: torch.Tensor,
    weight_source: torch.Tensor | None = None,
    weight_target: torch.Tensor | None = None,
) -> torch.Tensor:
    """Binary domain-classification loss (DANN, Ganin et al. 2016): source is 1, target is 0.

    ``logits_*`` are (B,) or (B, 1). Without weights: the mean BCE over both domains,
    ``(mean_s BCE(., 1) + mean_t BCE(., 0)) / 2``. With per-sample weights (CDAN+E): each domain's
    weights are normalised to sum to 1, and the loss is ``(sum_s w_s BCE + sum_t w_t BCE) / 2``.
    """
    ls, lt = logits_source.reshape(-1), logits_target.reshape(-1)
    bce_s = F.binary_cross_entropy_with_logits(ls, torch.ones_like(ls), reduction="none")
    bce_t = F.binary_cross_entropy_with_logits(lt, torch.zeros_like(lt), reduction="none")
    if weight_source is None or weight_target is None:
        return 0.5 * (bce_s.mean() + bce_t.mean())
    ws = weight_source / weight_source.sum()
    wt = weight_target / weight_target.sum()
    return 0.5 * ((ws * bce_s).sum() + (wt * bce_t).sum())


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy ``-sum_c p_c log p_c`` of each row of ``probs`` (B, C), in nats, (B,)."""
    return -(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=1)


def multilinear_map(features: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """CDAN's multilinear conditioning ``f (x) g`` (Long et al. 2018): the outer product of
    features (B, d) and predictions (B, C), flattened to (B, d * C)."""
    return torch.bmm(features.unsqueeze(2), probs.unsqueeze(1)).flatten(1)


def nuclear_wasserstein_discrepancy(logits_source: torch.Tensor,
                                    logits_target: torch.Tensor) -> torch.Tensor:
    """DALN's nuclear-norm Wasserstein discrepancy (Chen et al., CVPR 2022):
    ``(||softmax(y_s)||_* - ||softmax(y_t)||_*) / B``, ``||.||_*`` the nuclear norm (sum of
    singular values) of the (B, C) prediction matrix."""
    ps = F.softmax(logits_source, dim=1)
    pt = F.softmax(logits_target, dim=1)
    return (torch.linalg.matrix_norm(ps, ord="nuc")
            - torch.linalg.matrix_norm(pt, ord="nuc")) / logits_target.shape[0]


def probabilistic_contrastive_loss(probs_a: torch.Tensor, probs_b: torch.Tensor,
                                   scale: float = 7.0) -> torch.Tensor:
    """PCL (Li et al., IJCAI 2024): InfoNCE on softmax probabilities, without l2 normalisation.

    The 2B probability vectors of two views (B, C) each are compared by dot product times
    ``scale`` (the inverse temperature); for sample i of one view the positive is sample i of the
    other view, and the other 2B - 2 vectors are negatives. Mean over the 2B anchors.
    """
    b = probs_a.shape[0]
    stacked = torch.cat([probs_a, probs_b])
    sim = scale * stacked @ stacked.T
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=sim.device), float("-inf"))
    positives = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(sim.device)
    return F.cross_entropy(sim, positives)


def classifier_discrepancy(probs_a: torch.Tensor, probs_b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of two classifiers' probabilities (Saito et al., CVPR 2018)."""
    return (probs_a - probs_b).abs().mean()
