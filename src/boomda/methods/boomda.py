"""Boomda (Sun et al., AAAI 2026) and its ablation variants (paper Table 2).

Total loss, Eq. (14):  L = L_IB + alpha_1 * L_PL + alpha_2 * sum_{m in [M+1]} gamma_m * L_m^CA

with L_IB the information-bottleneck loss over all M+1 heads (Eq. 5), L_PL the fused head's
cross-entropy on voted pseudo-labels (Eqs. 6-9), L_m^CA correlation alignment per modality and for
the fused representation (Eq. 10), and gamma from a balancing strategy (detached).

Variants: ``dt`` (IB only, direct transfer), ``ca`` (balanced CA, no PL), ``pl`` (PL only),
``uniform`` (CA + PL, gamma = 1/(M+1)), ``boomda`` (CA + PL, balanced).
"""

from __future__ import annotations

from boomda.balance import AlignmentProblem, Balancer, make_balancer
from boomda.config import TrainConfig
from boomda.losses import (
    coral_loss,
    information_bottleneck_loss,
    pseudo_label_loss,
    vote_pseudo_labels,
)
from boomda.methods.base import Batch, Method, MethodOutput, joint_forward
from boomda.nn.net import MultimodalNet


class BoomdaMethod(Method):
    """IB loss, optionally voted pseudo-labels (``use_pl``) and balanced CORAL (``use_ca``)."""

    def __init__(
        self,
        net: MultimodalNet,
        config: TrainConfig,
        *,
        use_ca: bool = True,
        use_pl: bool = True,
        balancer: Balancer | None = None,
        name: str = "boomda",
    ) -> None:
        super().__init__(net, config)
        self.use_ca = use_ca
        self.use_pl = use_pl
        self.balancer = balancer if balancer is not None else make_balancer(config.gamma_solver)
        self.name = name

    def loss_terms(self, source: Batch, target: Batch, progress: float) -> MethodOutput:
        cfg = self.config
        out, n = joint_forward(self.net, source, target)
        src, tgt = out.rows(slice(0, n)), out.rows(slice(n, None))
        terms = {"ib": information_bottleneck_loss(src.reps + [src.fused], src.logits, source.y,
                                                   cfg.beta)}
        weights = {"ib": 1.0}
        result = MethodOutput(terms, weights)
        if self.use_pl:
            keep, labels = vote_pseudo_labels(tgt.logits, cfg.vote_threshold)
            terms["pl"] = pseudo_label_loss(tgt.fused_logits, keep, labels)
            weights["pl"] = cfg.alpha1
            result.pseudo_keep, result.pseudo_labels = keep, labels
        if self.use_ca:
            names = self.net.modalities + ["fused"]
            losses = [coral_loss(z[:n], z[n:]) for z in out.reps]
            losses.append(coral_loss(out.fused[:n], out.fused[n:]))
            balance = self.balancer(
                AlignmentProblem(losses, out.reps, self.net.encoder_parameters())
            )
            gamma = balance.gamma.tolist()
            for name, loss, g in zip(names, losses, gamma, strict=True):
                terms[f"ca_{name}"] = loss
                weights[f"ca_{name}"] = cfg.alpha2 * g
            result.gamma, result.r = gamma, balance.r
        return result


def _variant(name: str, use_ca: bool, use_pl: bool, solver: str | None = None):
    def build(net: MultimodalNet, config: TrainConfig) -> BoomdaMethod:
        balancer = make_balancer(solver or config.gamma_solver)
        return BoomdaMethod(net, config, use_ca=use_ca, use_pl=use_pl, balancer=balancer,
                            name=name)

    build.__doc__ = f"The {name!r} variant: CA={use_ca}, PL={use_pl}."
    return build


VARIANTS = {
    "dt": _variant("dt", use_ca=False, use_pl=False),
    "ca": _variant("ca", use_ca=True, use_pl=False),
    "pl": _variant("pl", use_ca=False, use_pl=True),
    "uniform": _variant("uniform", use_ca=True, use_pl=True, solver="uniform"),
    "boomda": _variant("boomda", use_ca=True, use_pl=True),
}
