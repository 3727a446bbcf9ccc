"""DADA: data-augmented domain adaptation (Ren et al., "Towards Improved Proxy-based Deep Metric
Learning via Data-Augmented Domain Adaptation", AAAI 2024), as its released code defines it
(github.com/Noahsark/DADA, ``criteria/dadaproxy.py``), mapped onto domain adaptation.

The original aligns two groups in a metric-learning embedding, the samples and their class
proxies, through points mixed between them. Here the two groups are the source and the target
fused representations z_s, z_t (L2-normalised, ``normalize``, as the release does):

- **class-consistent mixing**: the release mixes each sample with a point of its own class (its
  class proxy). Here each source row i is mixed with a target row predicted (by the fused head,
  detached) to be of class y_i, drawn at random among them: ``z_mix = (1 - m) z_s[i] + m z_t[j]``,
  with one ``m ~ Beta(mix_alpha, mix_beta)`` per batch. Source rows whose class no target row is
  predicted to have are left unmixed.
- **unit (domain) discriminator** U, ``d -> 512 -> BN -> ReLU -> 3 -> BN``, behind gradient
  reversal, applied to each group apart as in the release; its three cross-entropies are summed:
  ``L_dom = CE(U(z_s), 0) + CE(U(z_mix), 1) + CE(U(z_t), 2)``.
- **category discriminator** C, a C-way classifier apart from the task head,
  ``d -> 512 -> BN -> ReLU -> Dropout -> 128 -> BN -> ReLU -> Dropout -> C``: trained on the
  source, ``L_cat = CE(C(z_s), y)``, while it maximises and the encoders minimise (gradient
  reversal) the discrepancy between its predictions on the mixed rows and on their source rows:
  ``nwd`` (default), ``(||softmax C(z_s)||_* - ||softmax C(z_mix)||_*) / n``, or ``l1``,
  ``mean |softmax C(z_s) - softmax C(z_mix)|``.

The release's weights, with r = ``ratio`` (its ``d_dis_ratio``, 0.01) and rho =
``discrepancy_ratio`` (0.5), scaled as a whole by ``trade_off`` (its ``dis_gamma``, 1):

    L = L_src + trade_off * ((1 - r) L_dom + 2 r L_cat + r rho D)

The release trains the discriminators with an optimiser and learning rate of their own in
alternating steps; here, as for every adversarial baseline, one step through gradient reversal
with the shared optimiser. The metric-learning proxy loss is replaced by the task's
classification loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from boomda.config import TrainConfig
from boomda.errors import ConfigError
from boomda.losses import classifier_discrepancy, nuclear_wasserstein_discrepancy
from boomda.methods.adversarial import AdversarialMethod
from boomda.methods.base import Batch, MethodOutput, joint_forward, source_loss
from boomda.methods.options import DISCREPANCIES, DADAOptions
from boomda.nn.net import MultimodalNet


#: DADA's category-discrepancy forms (the release's ``dis_mode``)
def class_consistent_pairs(labels: torch.Tensor, predicted: torch.Tensor,
                           generator: torch.Generator | None = None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair each source row with a target row of its class: for source row i (label
    ``labels[i]``), a target row j drawn uniformly among those with ``predicted[j] ==
    labels[i]``. Returns (source indices, target indices), in source order; source rows whose
    class no target row has are left out."""
    src, tgt = [], []
    for c in torch.unique(labels).tolist():
        rows = torch.nonzero(labels == c).flatten()
        candidates = torch.nonzero(predicted == c).flatten()
        if len(candidates) == 0:
            continue
        pick = torch.randint(len(candidates), (len(rows),), generator=generator,
                             device=candidates.device)
        src.append(rows)
        tgt.append(candidates[pick])
    if not src:
        empty = torch.zeros(0, dtype=torch.long, device=labels.device)
        return empty, empty
    src_idx, tgt_idx = torch.cat(src), torch.cat(tgt)
    order = torch.argsort(src_idx)
    return src_idx[order], tgt_idx[order]


def mix(a: torch.Tensor, b: torch.Tensor, m: float | torch.Tensor) -> torch.Tensor:
    """The release's mixup (``mix_mode: random``, ``shift_scale: 1``): ``(1 - m) a + m b``."""
    return (1.0 - m) * a + m * b


def category_discrepancy(logits_source: torch.Tensor, logits_mixed: torch.Tensor,
                         form: str) -> torch.Tensor:
    """The release's ``discrepancy(out1, out2, dis_mode)`` between the category discriminator's
    logits on source rows and on their mixed rows."""
    if form == "nwd":
        return nuclear_wasserstein_discrepancy(logits_source, logits_mixed)
    if form == "l1":
        return classifier_discrepancy(F.softmax(logits_source, dim=1),
                                      F.softmax(logits_mixed, dim=1))
    raise ConfigError(f"options.discrepancy must be one of {', '.join(DISCREPANCIES)}, got "
                      f"{form!r}")


class UnitDiscriminator(nn.Sequential):
    """The release's ``Uni_Predictor`` (with ``fd2_bn``): ``Linear -> BN -> ReLU -> Linear(3)
    -> BN``."""

    def __init__(self, in_dim: int, hidden: int = 512) -> None:
        super().__init__(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, 3), nn.BatchNorm1d(3))


class CategoryDiscriminator(nn.Sequential):
    """The release's ``Dis_Predictor`` (without ``fc2_bn``): ``Linear -> BN -> ReLU -> Dropout
    -> Linear -> BN -> ReLU -> Dropout -> Linear(C)``."""

    def __init__(self, in_dim: int, n_classes: int, hidden: tuple[int, int] = (512, 128),
                 dropout: float = 0.5) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden[0]), nn.BatchNorm1d(hidden[0]), nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden[0], hidden[1]), nn.BatchNorm1d(hidden[1]), nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden[1], n_classes),
        )


class DADA(AdversarialMethod):
    name = "dada"
    table_rank = 2
    title = "DADA"
    baseline = True
    Options = DADAOptions

    def __init__(self, net: MultimodalNet, config: TrainConfig) -> None:
        super().__init__(net, config)
        o = self.options
        self.unit = UnitDiscriminator(net.fused_dim, o.hidden)
        self.category = CategoryDiscriminator(net.fused_dim, net.n_classes,
                                              (o.category_hidden, o.category_hidden2),
                                              o.dropout)

    def loss_terms(self, source: Batch, target: Batch, progress: float) -> MethodOutput:
        o = self.options
        out, n = joint_forward(self.net, source, target)
        predicted = out.fused_logits[n:].detach().argmax(dim=1)
        src_idx, tgt_idx = class_consistent_pairs(source.labels(), predicted)
        m = float(torch.distributions.Beta(o.mix_alpha, o.mix_beta).sample())
        domain, category, discrepancy = dada_terms(
            out.fused[:n], out.fused[n:], source.labels(), src_idx, tgt_idx, m, self.unit,
            self.category, lambda z: self.grl(z, progress), o)
        r, lam = o.ratio, o.trade_off
        terms = {"ib": source_loss(out, n, source.labels(), self.config),
                 "domain": domain,
                 "category": category,
                 # the category discriminator maximises the discrepancy, the encoders (through
                 # the reversal) minimise it
                 "discrepancy": -discrepancy}
        weights = {"ib": 1.0, "domain": lam * (1.0 - r), "category": lam * 2.0 * r,
                   "discrepancy": lam * r * o.discrepancy_ratio}
        return MethodOutput(terms, weights, extras={"grl": self.grl.coefficient(progress),
                                                    "mixed_rows": float(len(src_idx)),
                                                    "mix": m})


def dada_terms(z_source: torch.Tensor, z_target: torch.Tensor, labels: torch.Tensor,
               src_idx: torch.Tensor, tgt_idx: torch.Tensor, m: float, unit: nn.Module,
               category: nn.Module, reverse, options: DADAOptions
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DADA's three terms on fused representations: the summed unit-discriminator CE, the
    category discriminator's source CE, and the category discrepancy D (see the module
    docstring). ``reverse``: the gradient reversal; ``(src_idx, tgt_idx)``: the
    class-consistent pairs; ``m``: the batch's mixing coefficient. Each group goes through a
    discriminator apart (its batch-norm statistics are the group's), as in the release."""
    # the release mixes the embeddings, then L2-normalises every group
    z_mix = mix(z_source[src_idx], z_target[tgt_idx], m)
    if options.normalize:
        z_source, z_target = F.normalize(z_source, dim=1), F.normalize(z_target, dim=1)
        z_mix = F.normalize(z_mix, dim=1)
    zero = z_source.new_zeros(())
    mixed = len(src_idx) >= 2  # batch norm needs 2 rows

    def unit_ce(z: torch.Tensor, label: int) -> torch.Tensor:
        target = torch.full((len(z),), label, dtype=torch.long, device=z.device)
        return F.cross_entropy(unit(reverse(z)), target)

    domain = unit_ce(z_source, 0) + (unit_ce(z_mix, 1) if mixed else zero) \
        + unit_ce(z_target, 2)
    source_ce = F.cross_entropy(category(z_source), labels)
    if not mixed:
        return domain, source_ce, zero
    discrepancy = category_discrepancy(category(reverse(z_source[src_idx])),
                                       category(reverse(z_mix)), options.discrepancy)
    return domain, source_ce, discrepancy
