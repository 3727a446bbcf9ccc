"""MADA: multi-adversarial domain adaptation (Pei et al., AAAI 2018).

One domain discriminator per class k, fed ``p_k * f``: the fused representation f weighted by
the fused head's probability of class k (detached), behind gradient reversal.

    L = L_src + lambda * sum_k BCE(D_k(p_k * R(f)), domain)

The paper sums the K discriminators' losses; that sum is kept. Adaptation to feature data: each
discriminator has hidden width 256 (the paper used 1024 on ResNet features); with K discriminators
of width 1024 on CPU the method would cost several times the others.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from boomda.config import TrainConfig
from boomda.losses import domain_adversarial_loss, tensor_sum
from boomda.methods.adversarial import AdversarialMethod
from boomda.methods.base import Batch, MethodOutput, joint_forward, source_loss
from boomda.methods.options import MADAOptions
from boomda.nn.adversarial import DomainDiscriminator
from boomda.nn.net import MultimodalNet


def class_weighted_inputs(features: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """MADA's per-class discriminator inputs: ``out[k] = probs[:, k:k+1] * features``, (K, B, D)."""
    return probs.T.unsqueeze(2) * features.unsqueeze(0)


class MADA(AdversarialMethod):
    name = "mada"
    table_rank = 3
    title = "MADA"
    baseline = True
    Options = MADAOptions

    def __init__(self, net: MultimodalNet, config: TrainConfig) -> None:
        super().__init__(net, config)
        o = self.options
        self.discriminators = nn.ModuleList(
            DomainDiscriminator(net.fused_dim, o.hidden, 1, o.dropout)
            for _ in range(net.n_classes)
        )

    def loss_terms(self, source: Batch, target: Batch, progress: float) -> MethodOutput:
        out, n = joint_forward(self.net, source, target)
        probs = F.softmax(out.fused_logits, dim=1).detach()
        inputs = class_weighted_inputs(self.grl(out.fused, progress), probs)
        domain = tensor_sum(
            domain_adversarial_loss(logits[:n], logits[n:])
            for logits in (disc(x) for disc, x in zip(self.discriminators, inputs, strict=True))
        )
        terms = {"ib": source_loss(out, n, source.labels(), self.config), "domain": domain}
        weight = self.options.trade_off * self.options.class_weight
        return MethodOutput(terms, {"ib": 1.0, "domain": weight},
                            extras={"grl": self.grl.coefficient(progress)})
