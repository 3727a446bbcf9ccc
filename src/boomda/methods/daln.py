"""DALN: discriminator-free adversarial learning (Chen et al., "Reusing the Task-specific
Classifier as a Discriminator", CVPR 2022).

The fused head acts as the critic: the fused representation goes through gradient reversal into
the fused head, and the loss holds minus the nuclear-norm Wasserstein discrepancy of its
predictions,

    L = L_src - lambda * NWD,   NWD = (||softmax(y_s)||_* - ||softmax(y_t)||_*) / B,

so the head maximises NWD (it acts as the discriminator) and, through the reversed gradient, the
encoders minimise it (the authors' released usage). lambda = ``trade_off`` = 1 as in the paper.
The authors warm the reversal coefficient up over 1000 iterations; here it uses the shared ramp
over training progress.
"""

from __future__ import annotations

from boomda.losses import nuclear_wasserstein_discrepancy
from boomda.methods.adversarial import AdversarialMethod
from boomda.methods.base import Batch, MethodOutput, joint_forward, source_loss
from boomda.methods.options import DALNOptions


class DALN(AdversarialMethod):
    name = "daln"
    table_rank = 4
    title = "DALN"
    baseline = True
    Options = DALNOptions

    def loss_terms(self, source: Batch, target: Batch, progress: float) -> MethodOutput:
        out, n = joint_forward(self.net, source, target)
        critic = self.net.fused_head(self.grl(out.fused, progress))
        terms = {"ib": source_loss(out, n, source.labels(), self.config),
                 "neg_nwd": -nuclear_wasserstein_discrepancy(critic[:n], critic[n:])}
        return MethodOutput(terms, {"ib": 1.0, "neg_nwd": self.options.trade_off},
                            extras={"grl": self.grl.coefficient(progress)})
