"""PCL: probabilistic contrastive learning on top of adversarial alignment (Li et al.,
"Probabilistic Contrastive Learning for Domain Adaptation", IJCAI 2024).

Two views of each target sample go through the network; their fused-head softmax probabilities
(not l2-normalised features) enter an InfoNCE loss where the other view of the same sample is the
positive, with similarity ``scale * p_i . p_j`` (scale 7, the authors' code). The adversarial part
is DANN's discriminator on the fused representation (the authors built on GVB; DANN is the
shared adversarial base here).

    L = L_src + lambda * L_domain + mu * L_PCL

Feature-level augmentation stands in for image augmentation: the first view is the target batch
as it is; the second adds Gaussian noise of ``noise`` source standard deviations to every input
feature and replaces a ``mask`` fraction of the features by their source mean (for a raw modality:
the frozen backbone states of the real steps, with per-dimension source statistics). mu =
``pcl_weight`` = 0.05 (the authors' UDA configuration).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from boomda.config import TrainConfig
from boomda.losses import domain_adversarial_loss, probabilistic_contrastive_loss
from boomda.methods.adversarial import AdversarialMethod
from boomda.methods.base import Batch, MethodOutput, forward_rows, joint_forward, source_loss
from boomda.methods.options import PCLOptions
from boomda.nn.adversarial import DomainDiscriminator
from boomda.nn.net import MultimodalNet


class PCL(AdversarialMethod):
    name = "pcl"
    table_rank = 5
    title = "PCL"
    baseline = True
    Options = PCLOptions
    #: ``trade_off`` from 0.03 to 10 at the authors' contrastive weight, and a ten times larger
    #: contrastive weight ``pcl_weight`` at the default ``trade_off``; the default first
    preset = tuple({"trade_off": t, "pcl_weight": mu}
                   for t, mu in ((1.0, 0.05), (0.03, 0.05), (0.3, 0.05), (3.0, 0.05),
                                 (10.0, 0.05), (1.0, 0.5)))

    def __init__(self, net: MultimodalNet, config: TrainConfig) -> None:
        super().__init__(net, config)
        o = self.options
        self.discriminator = DomainDiscriminator(net.fused_dim, o.hidden, 1, o.dropout)

    def augment(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The second, augmented view of a batch of raw inputs (see the module docstring)."""
        o = self.options
        return {m: self.net.encoder(m).augment(value, o.noise, o.mask) for m, value in x.items()}

    def loss_terms(self, source: Batch, target: Batch, progress: float) -> MethodOutput:
        o = self.options
        out, n = joint_forward(self.net, source, target)
        logits = self.discriminator(self.grl(out.fused, progress))
        probs_a = F.softmax(out.fused_logits[n:], dim=1)
        probs_b = F.softmax(forward_rows(self.net, self.augment(target.x)).fused_logits, dim=1)
        terms = {"ib": source_loss(out, n, source.labels(), self.config),
                 "domain": domain_adversarial_loss(logits[:n], logits[n:]),
                 "pcl": probabilistic_contrastive_loss(probs_a, probs_b, o.scale)}
        return MethodOutput(terms, {"ib": 1.0, "domain": o.trade_off, "pcl": o.pcl_weight},
                            extras={"grl": self.grl.coefficient(progress)})
