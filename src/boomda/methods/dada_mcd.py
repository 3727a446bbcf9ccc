"""DADA: data-augmented domain adaptation (Ren et al., "Towards Improved Proxy-based Deep Metric
Learning via Data-Augmented Domain Adaptation", AAAI 2024), mapped onto domain adaptation.

The original aligns two groups in a metric-learning embedding (samples and class proxies) with
adversarial discriminators, augmenting the embedding with mixed points between the groups. Here
the two groups are the source and target fused representations:

- **mixed samples**: ``z_mix = lam * z_s + (1 - lam) * z_t``, pairing the i-th source and target
  rows, ``lam ~ Beta(mix_alpha, mix_alpha)`` per pair;
- **3-way domain discriminator** D behind gradient reversal, with classes source (0), mixed (1)
  and target (2): ``L_dom = CE(D(R([z_s; z_mix; z_t])), [0; 1; 2])``;
- **classifier discrepancy** (the category-level discriminators): a second classifier head h2 is
  trained on the source like the fused head h1; on the target both see ``R(z_t)`` and the loss
  ``-mean |softmax(h1) - softmax(h2)|`` makes the heads disagree while the reversed gradient
  makes the encoders reduce the disagreement (Saito et al. 2018's min-max in one step).

    L = L_src + CE(h2(z_s), y) + lambda * L_dom + mu * (-discrepancy)

lambda = ``trade_off`` = 1, mu = ``discrepancy_weight`` = 1, ``mix_alpha`` = 1 (uniform lam).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from boomda.config import TrainConfig
from boomda.errors import ConfigError
from boomda.losses import classifier_discrepancy
from boomda.methods.adversarial import AdversarialMethod, AdversarialOptions
from boomda.methods.base import Batch, MethodOutput, joint_forward, source_loss
from boomda.nn.adversarial import DomainDiscriminator
from boomda.nn.net import MultimodalNet


def mix_domains(z_source: torch.Tensor, z_target: torch.Tensor,
                lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The discriminator's inputs ``[z_s; z_mix; z_t]`` and 3-way targets ``[0; 1; 2]``.

    ``z_mix[i] = lam[i] * z_s[i] + (1 - lam[i]) * z_t[i]`` for the first ``k = min(B_s, B_t)``
    rows; ``lam`` has shape (k,).
    """
    k = lam.shape[0]
    mixed = lam[:, None] * z_source[:k] + (1.0 - lam[:, None]) * z_target[:k]
    inputs = torch.cat([z_source, mixed, z_target])
    targets = torch.cat([
        torch.zeros(len(z_source), dtype=torch.long),
        torch.ones(k, dtype=torch.long),
        torch.full((len(z_target),), 2, dtype=torch.long),
    ]).to(z_source.device)
    return inputs, targets


@dataclass
class DADAOptions(AdversarialOptions):
    discrepancy_weight: float = 1.0
    mix_alpha: float = 1.0

    def validate(self) -> None:
        super().validate()
        if self.discrepancy_weight < 0 or self.mix_alpha <= 0:
            raise ConfigError("options: discrepancy_weight >= 0 and mix_alpha > 0")


class DADAMCD(AdversarialMethod):
    name = "dada-mcd"
    Options = DADAOptions

    def __init__(self, net: MultimodalNet, config: TrainConfig) -> None:
        super().__init__(net, config)
        o = self.options
        self.discriminator = DomainDiscriminator(net.fused_dim, o.hidden, 3, o.dropout)
        self.second_head = nn.Linear(net.fused_dim, net.n_classes)

    def loss_terms(self, source: Batch, target: Batch, progress: float) -> MethodOutput:
        o = self.options
        out, n = joint_forward(self.net, source, target)
        z_s, z_t = out.fused[:n], out.fused[n:]
        k = min(len(z_s), len(z_t))
        beta = torch.distributions.Beta(o.mix_alpha, o.mix_alpha)
        lam = beta.sample((k,)).to(z_s.device)
        inputs, targets = mix_domains(z_s, z_t, lam)
        domain = F.cross_entropy(self.discriminator(self.grl(inputs, progress)), targets)
        reversed_t = self.grl(z_t, progress)
        disagreement = classifier_discrepancy(F.softmax(self.net.fused_head(reversed_t), dim=1),
                                              F.softmax(self.second_head(reversed_t), dim=1))
        terms = {"ib": source_loss(out, n, source.y, self.config),
                 "second_head": F.cross_entropy(self.second_head(z_s), source.y),
                 "domain": domain,
                 "discrepancy": -disagreement}
        weights = {"ib": 1.0, "second_head": 1.0, "domain": o.trade_off,
                   "discrepancy": o.discrepancy_weight}
        return MethodOutput(terms, weights, extras={"grl": self.grl.coefficient(progress)})
