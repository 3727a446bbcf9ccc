"""DANN: domain-adversarial training (Ganin et al., "Domain-Adversarial Training of Neural
Networks", JMLR 17(59), 2016).

    L = L_src + lambda * [ BCE(D(R(Z^s_{M+1})), 1) + BCE(D(R(Z^t_{M+1})), 0) ] / 2

R is the gradient-reversal layer (coefficient ramped ``2/(1+exp(-10 p)) - 1``), D a 3-layer MLP
discriminator (hidden 1024, dropout 0.5) on the fused representation, lambda = ``trade_off`` = 1.
L_src is the source objective shared by all methods (the IB loss over the M+1 heads).
"""

from __future__ import annotations

from boomda.config import TrainConfig
from boomda.losses import domain_adversarial_loss
from boomda.methods.adversarial import AdversarialMethod
from boomda.methods.base import Batch, MethodOutput, joint_forward, source_loss
from boomda.nn.adversarial import DomainDiscriminator
from boomda.nn.net import MultimodalNet


class DANN(AdversarialMethod):
    name = "dann"
    table_rank = 1
    title = "DANN"
    baseline = True

    def __init__(self, net: MultimodalNet, config: TrainConfig) -> None:
        super().__init__(net, config)
        o = self.options
        self.discriminator = DomainDiscriminator(net.fused_dim, o.hidden, 1, o.dropout)

    def loss_terms(self, source: Batch, target: Batch, progress: float) -> MethodOutput:
        out, n = joint_forward(self.net, source, target)
        logits = self.discriminator(self.grl(out.fused, progress))
        terms = {"ib": source_loss(out, n, source.labels(), self.config),
                 "domain": domain_adversarial_loss(logits[:n], logits[n:])}
        return MethodOutput(terms, {"ib": 1.0, "domain": self.options.trade_off},
                            extras={"grl": self.grl.coefficient(progress)})
