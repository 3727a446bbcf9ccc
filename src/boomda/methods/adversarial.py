"""What the adversarial baselines share: options, and a base with a gradient-reversal layer."""

from __future__ import annotations

from boomda.config import TrainConfig
from boomda.methods.base import Method, weight_preset
from boomda.methods.options import AdversarialOptions
from boomda.nn.adversarial import GradientReversal
from boomda.nn.net import MultimodalNet


class AdversarialMethod(Method):
    """Base of the methods that align the fused representation through gradient reversal."""

    Options = AdversarialOptions
    #: the adversarial weight ``trade_off`` from 0.03 to 10, the default 1 first
    preset = weight_preset("trade_off")

    def __init__(self, net: MultimodalNet, config: TrainConfig) -> None:
        super().__init__(net, config)
        self.grl = GradientReversal(self.options.grl, self.options.grl_max)
