"""CDAN: conditional adversarial domain adaptation (Long et al., NeurIPS 2018).

The discriminator sees the multilinear map ``T(f, g) = f (x) g`` of the fused representation f
(B, Md) and the fused head's softmax g (B, C), detached. When ``Md * C`` exceeds ``max_dim``
(4096, the paper's threshold) the randomized map ``(R_f f) * (R_g g) / sqrt(r)`` is used instead,
with fixed Gaussian matrices R_f (Md, r), R_g (C, r), r = ``random_dim`` = 1024, kept as buffers.
CDAN+E (``entropy: true``) weights each sample by ``w = 1 + exp(-H(g))``, normalised per domain.

    L = L_src + lambda * BCE_w(D(R(T(f, g))), domain)

Defaults follow the paper and its code: discriminator hidden 1024, lambda = 1, ramped GRL.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from boomda.config import TrainConfig
from boomda.losses import domain_adversarial_loss, entropy, multilinear_map
from boomda.methods.adversarial import AdversarialMethod
from boomda.methods.base import Batch, MethodOutput, joint_forward, source_loss
from boomda.methods.options import CDANOptions
from boomda.nn.adversarial import DomainDiscriminator
from boomda.nn.net import MultimodalNet


class RandomizedMultilinearMap(nn.Module):
    """``(f R_f) * (g R_g) / sqrt(r)``: an unbiased low-dimensional estimate of the multilinear
    map's inner products (Long et al. 2018, Sec. 3.1). R_f, R_g are standard-normal buffers drawn
    from ``seed``, so they are saved in the state dict and fixed for a fixed seed."""

    def __init__(self, feature_dim: int, n_classes: int, out_dim: int, seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.r_features: torch.Tensor
        self.r_probs: torch.Tensor
        self.register_buffer("r_features", torch.randn(feature_dim, out_dim, generator=gen))
        self.register_buffer("r_probs", torch.randn(n_classes, out_dim, generator=gen))
        self.out_dim = out_dim

    def forward(self, features: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        return (features @ self.r_features) * (probs @ self.r_probs) / math.sqrt(self.out_dim)


class CDAN(AdversarialMethod):
    name = "cdan"
    table_rank = 6
    title = "CDAN"
    baseline = True
    Options = CDANOptions

    def __init__(self, net: MultimodalNet, config: TrainConfig) -> None:
        super().__init__(net, config)
        o = self.options
        full_dim = net.fused_dim * net.n_classes
        randomized = o.randomized == "always" or (o.randomized == "auto" and full_dim > o.max_dim)
        self.random_map = (RandomizedMultilinearMap(net.fused_dim, net.n_classes, o.random_dim,
                                                    config.seed) if randomized else None)
        in_dim = o.random_dim if randomized else full_dim
        self.discriminator = DomainDiscriminator(in_dim, o.hidden, 1, o.dropout)

    def conditioning(self, features: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """The discriminator's input: the (randomized) multilinear map."""
        if self.random_map is not None:
            return self.random_map(features, probs)
        return multilinear_map(features, probs)

    def loss_terms(self, source: Batch, target: Batch, progress: float) -> MethodOutput:
        out, n = joint_forward(self.net, source, target)
        probs = F.softmax(out.fused_logits, dim=1).detach()
        h = self.conditioning(self.grl(out.fused, progress), probs)
        logits = self.discriminator(h)
        ws = wt = None
        if self.options.entropy:
            w = 1.0 + torch.exp(-entropy(probs))
            ws, wt = w[:n], w[n:]
        terms = {"ib": source_loss(out, n, source.labels(), self.config),
                 "domain": domain_adversarial_loss(logits[:n], logits[n:], ws, wt)}
        return MethodOutput(terms, {"ib": 1.0, "domain": self.options.trade_off},
                            extras={"grl": self.grl.coefficient(progress)})
