"""Loss functions of Boomda (Sun et al., AAAI 2026, Sec. 3). Pure functions of tensors.

Shapes: ``z`` is (B, d) representations of one modality; ``logits`` is (B, C); ``y`` is (B,).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from boomda.errors import DataError

#: added to every per-dimension variance inside the log-determinant
LOGDET_EPS = 1e-6


def _check_batch(z: torch.Tensor, what: str) -> None:
    if z.dim() != 2:
        raise DataError(f"{what}: expected a (batch, dim) tensor, got shape {tuple(z.shape)}")
    if z.shape[0] < 2:
        raise DataError(f"{what}: a batch needs at least 2 samples to estimate a covariance, "
                        f"got {z.shape[0]}")


def covariance(z: torch.Tensor) -> torch.Tensor:
    """Unbiased covariance of the rows of ``z``: ``(z - mean)^T (z - mean) / (B - 1)``, (d, d)."""
    _check_batch(z, "covariance")
    centred = z - z.mean(dim=0, keepdim=True)
    return centred.T @ centred / (z.shape[0] - 1)


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


def coral_loss(z_source: torch.Tensor, z_target: torch.Tensor) -> torch.Tensor:
    """Correlation alignment, Eq. (10) with Deep CORAL's normalisation (Sun & Saenko 2016):
    ``|| C_t - C_s ||_F^2 / (4 d^2)``, C the unbiased covariance, d the representation size."""
    if z_source.shape[1] != z_target.shape[1]:
        raise DataError(f"coral_loss: source dim {z_source.shape[1]} != target dim "
                        f"{z_target.shape[1]}")
    d = z_source.shape[1]
    diff = covariance(z_target) - covariance(z_source)
    return (diff * diff).sum() / (4.0 * d * d)


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
