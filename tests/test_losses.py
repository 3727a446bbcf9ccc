"""Loss functions against independent numpy computations and hand-made examples."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from boomda.errors import DataError
from boomda.losses import (
    LOGDET_EPS,
    alignment_loss,
    coral_distance,
    coral_loss,
    correlation,
    correlation_alignment_loss,
    covariance,
    diag_log_det,
    information_bottleneck_loss,
    pseudo_label_loss,
    relative_coral_loss,
    vote_pseudo_labels,
)


def test_covariance_matches_numpy():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(17, 6)) * [1, 2, 3, 0.5, 4, 1] + 3.0
    got = covariance(torch.tensor(z)).numpy()
    np.testing.assert_allclose(got, np.cov(z, rowvar=False), rtol=1e-10, atol=1e-12)


def test_coral_matches_numpy():
    rng = np.random.default_rng(2)
    zs = rng.normal(size=(48, 8))
    zt = rng.normal(size=(30, 8)) @ rng.normal(size=(8, 8)) + 1.0
    d = 8
    expected = np.sum((np.cov(zt, rowvar=False) - np.cov(zs, rowvar=False)) ** 2) / (4 * d * d)
    got = coral_loss(torch.tensor(zs), torch.tensor(zt)).item()
    assert got == pytest.approx(expected, rel=1e-10)


def test_coral_is_zero_for_identical_batches_and_symmetric():
    rng = np.random.default_rng(3)
    z = torch.tensor(rng.normal(size=(10, 4)))
    w = torch.tensor(rng.normal(size=(12, 4)))
    assert coral_loss(z, z).item() == 0.0
    assert coral_loss(z, w).item() == pytest.approx(coral_loss(w, z).item(), rel=1e-12)


def test_diag_log_det_matches_numpy():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(20, 5)) * [0.1, 1, 10, 2, 3]
    expected = np.sum(np.log(np.var(z, axis=0, ddof=1) + LOGDET_EPS))
    assert diag_log_det(torch.tensor(z)).item() == pytest.approx(expected, rel=1e-10)


def test_information_bottleneck_matches_numpy():
    rng = np.random.default_rng(5)
    n, c, beta = 12, 4, 5e-4
    y = rng.integers(0, c, n)
    reps = [rng.normal(size=(n, 3)), rng.normal(size=(n, 2)), rng.normal(size=(n, 5))]
    logits = [rng.normal(size=(n, c)) for _ in reps]
    expected = 0.0
    for z, out in zip(reps, logits, strict=True):
        logdet = np.sum(np.log(np.var(z, axis=0, ddof=1) + LOGDET_EPS))
        shifted = out - out.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        expected += beta / 2 * logdet - logp[np.arange(n), y].mean()
    got = information_bottleneck_loss(
        [torch.tensor(z) for z in reps], [torch.tensor(o) for o in logits], torch.tensor(y), beta
    )
    assert got.item() == pytest.approx(expected, rel=1e-10)


def _logits_voting_for(votes, n_classes=4):
    """Logits whose argmax per head is ``votes[sample][head]``."""
    votes = torch.tensor(votes)
    return [F.one_hot(votes[:, h], n_classes).double() for h in range(votes.shape[1])]


def test_vote_pseudo_labels_hand_made():
    # 4 heads (M = 3), 4 classes
    votes = [
        [2, 2, 2, 1],  # 3 votes for class 2 -> kept with M_v = 3
        [0, 1, 2, 3],  # all different -> dropped
        [1, 1, 3, 3],  # tie 2-2 -> dropped even with M_v = 2
        [3, 3, 3, 3],  # unanimous -> kept
        [0, 0, 1, 2],  # 2 votes -> kept only when M_v <= 2
    ]
    keep, labels = vote_pseudo_labels(_logits_voting_for(votes), threshold=3)
    assert keep.tolist() == [True, False, False, True, False]
    assert labels[keep].tolist() == [2, 3]
    keep2, labels2 = vote_pseudo_labels(_logits_voting_for(votes), threshold=2)
    assert keep2.tolist() == [True, False, False, True, True]
    assert labels2[keep2].tolist() == [2, 3, 0]
    keep4, _ = vote_pseudo_labels(_logits_voting_for(votes), threshold=4)
    assert keep4.tolist() == [False, False, False, True, False]


def test_vote_nothing_kept_gives_zero_pl_loss():
    votes = [[0, 1, 2, 3], [1, 2, 3, 0]]
    logits = _logits_voting_for(votes)
    keep, labels = vote_pseudo_labels(logits, threshold=3)
    assert not keep.any()
    fused = torch.randn(2, 4, requires_grad=True)
    loss = pseudo_label_loss(fused, keep, labels)
    assert loss.item() == 0.0
    loss.backward()  # still differentiable, with a zero gradient
    assert torch.all(fused.grad == 0)


def test_pseudo_label_loss_uses_only_kept_samples():
    fused = torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]])
    keep = torch.tensor([True, False, True])
    labels = torch.tensor([0, 1, 1])
    expected = (np.log1p(np.exp(-2.0)) + np.log1p(np.exp(10.0))) / 2
    assert pseudo_label_loss(fused, keep, labels).item() == pytest.approx(expected, rel=1e-6)


def test_vote_threshold_out_of_range():
    logits = _logits_voting_for([[0, 0, 0]])
    with pytest.raises(DataError, match="M_v=4"):
        vote_pseudo_labels(logits, threshold=4)


def test_batch_of_one_is_rejected():
    with pytest.raises(DataError, match="at least 2 samples"):
        coral_loss(torch.zeros(1, 3), torch.zeros(5, 3))


# ------------------------------------------------------------------ correlation-alignment forms
def _cov_np(z):
    return np.cov(z, rowvar=False)


def _corr_np(z, eps=1e-8):
    c = _cov_np(z)
    s = np.sqrt(np.diag(c) + eps)
    return c / np.outer(s, s)


def _forms_np(zs, zt):
    """Each CA form written out in numpy."""
    d = zs.shape[1]
    cs, ct = _cov_np(zs), _cov_np(zt)
    dist = np.sum((ct - cs) ** 2)
    return {
        "paper": dist,
        "coral": dist / (4 * d * d),
        "relative": dist / (np.sum(cs**2) + np.sum(ct**2) + 1e-30),
        "correlation": np.sum((_corr_np(zt) - _corr_np(zs)) ** 2) / (d * d),
    }


@pytest.mark.parametrize("form", ["paper", "coral", "relative", "correlation"])
def test_alignment_forms_match_numpy(form):
    rng = np.random.default_rng(20)
    zs = rng.normal(size=(40, 7)) * rng.uniform(0.2, 3, 7)
    zt = rng.normal(size=(33, 7)) @ rng.normal(size=(7, 7)) + 2.0
    got = alignment_loss(torch.tensor(zs), torch.tensor(zt), form).item()
    assert got == pytest.approx(_forms_np(zs, zt)[form], rel=1e-9)


def test_scale_free_forms_ignore_the_representation_scale_and_stay_bounded():
    rng = np.random.default_rng(21)
    zs = torch.tensor(rng.normal(size=(30, 5)))
    zt = torch.tensor(rng.normal(size=(30, 5)) @ rng.normal(size=(5, 5)))
    # (correlation's eps of 1e-8 on the variances matters only for tiny variances)
    for form, scales in (("relative", (1e-3, 7.0, 1e4)), ("correlation", (0.1, 7.0, 1e4))):
        base = alignment_loss(zs, zt, form).item()
        for c in scales:
            assert alignment_loss(c * zs, c * zt, form).item() == pytest.approx(base, rel=1e-5)
    # the paper's form grows with the fourth power of the scale, Deep CORAL's too
    assert alignment_loss(10 * zs, 10 * zt, "paper").item() == pytest.approx(
        1e4 * alignment_loss(zs, zt, "paper").item(), rel=1e-9)
    # relative: 0 for equal covariances, 1 when one domain has none (a constant batch)
    assert relative_coral_loss(zs, zs).item() == 0.0
    assert relative_coral_loss(zs, torch.zeros(30, 5, dtype=torch.float64)).item() == \
        pytest.approx(1.0, abs=1e-12)
    values = [relative_coral_loss(torch.tensor(rng.normal(size=(12, 4)) * rng.uniform(0, 5, 4)),
                                  torch.tensor(rng.normal(size=(12, 4)) * rng.uniform(0, 5, 4)))
              .item() for _ in range(50)]
    assert all(0.0 <= v <= 1.0 for v in values)


def test_correlation_alignment_ignores_per_dimension_scale():
    rng = np.random.default_rng(22)
    zs = torch.tensor(rng.normal(size=(25, 4)))
    zt = torch.tensor(rng.normal(size=(25, 4)) @ rng.normal(size=(4, 4)))
    scale = torch.tensor([0.1, 5.0, 1.0, 30.0], dtype=torch.float64)
    assert correlation_alignment_loss(zs, zt * scale).item() == pytest.approx(
        correlation_alignment_loss(zs, zt).item(), rel=1e-5)


def test_unknown_alignment_form_is_named():
    with pytest.raises(DataError, match="unknown CA form 'frob'"):
        alignment_loss(torch.zeros(3, 2), torch.zeros(3, 2), "frob")


@pytest.mark.parametrize(("n_s", "n_t", "d"), [(10, 12, 5), (10, 12, 40), (6, 30, 20),
                                               (48, 48, 300)])
def test_alignment_forms_through_gram_matrices_equal_numpy(n_s, n_t, d):
    """When d exceeds the batch the forms go through (B, B) Gram matrices; every path equals
    numpy's covariance and correlation matrices, in float64."""
    rng = np.random.default_rng(d)
    zs, zt = rng.normal(0, 2, (n_s, d)), rng.normal(0.5, 1, (n_t, d))
    cs, ct = np.cov(zs.T), np.cov(zt.T)
    rs, rt = np.corrcoef(zs.T), np.corrcoef(zt.T)
    gap = ((ct - cs) ** 2).sum()
    a, b = torch.from_numpy(zs), torch.from_numpy(zt)
    assert coral_distance(a, b).item() == pytest.approx(gap, rel=1e-12)
    assert coral_loss(a, b).item() == pytest.approx(gap / (4 * d * d), rel=1e-12)
    assert relative_coral_loss(a, b).item() == pytest.approx(
        gap / ((cs ** 2).sum() + (ct ** 2).sum()), rel=1e-12)
    # eps = 1e-8 in the standard deviations: a relative difference of about 1e-8
    assert correlation_alignment_loss(a, b).item() == pytest.approx(
        ((rt - rs) ** 2).sum() / d ** 2, rel=1e-6)
    assert np.allclose(correlation(a).numpy(), rs, atol=1e-7)


@pytest.mark.parametrize(("n_source", "n_target", "dims"), [
    (48, 48, (256, 256, 256)),  # d > B: through (B, B) Gram matrices, fused too
    (40, 30, (5, 7, 3)),        # d < B for every modality and for the concatenation
    (48, 36, (16, 8, 40)),      # small modalities, a concatenation larger than the batch
])
def test_closed_form_correlation_gradients_equal_autograd(n_source, n_target, dims):
    """correlation_alignment_with_gradients: the M+1 losses of correlation_alignment_loss (per
    modality, then on the concatenation) and their gradients w.r.t. each Z_m (source rows then
    target rows), against autograd through the loss, in float64."""
    from boomda.losses import correlation_alignment_with_gradients

    gen = torch.Generator().manual_seed(len(dims) + n_target)
    source = [torch.randn(n_source, d, generator=gen, dtype=torch.float64)
              * (1 + torch.rand(d, generator=gen, dtype=torch.float64)) for d in dims]
    target = [torch.randn(n_target, d, generator=gen, dtype=torch.float64) @
              torch.randn(d, d, generator=gen, dtype=torch.float64) + 0.3 for d in dims]
    losses, own, fused = correlation_alignment_with_gradients(source, target)
    zs = [z.clone().requires_grad_() for z in source]
    zt = [z.clone().requires_grad_() for z in target]
    reference = ([correlation_alignment_loss(a, b) for a, b in zip(zs, zt, strict=True)]
                 + [correlation_alignment_loss(torch.cat(zs, dim=1), torch.cat(zt, dim=1))])
    assert len(losses) == len(dims) + 1
    for loss, ref in zip(losses, reference, strict=True):
        assert float(loss) == pytest.approx(float(ref.detach()), rel=1e-12)
    grads_fused = torch.autograd.grad(reference[-1], zs + zt, retain_graph=True)
    for m in range(len(dims)):
        g_own = torch.cat(torch.autograd.grad(reference[m], [zs[m], zt[m]], retain_graph=True))
        g_fused = torch.cat([grads_fused[m], grads_fused[len(dims) + m]])
        assert torch.allclose(own[m], g_own, rtol=0, atol=1e-12 * float(g_own.abs().max()))
        assert torch.allclose(fused[m], g_fused, rtol=0,
                              atol=1e-12 * float(g_fused.abs().max()))
