"""What the adversarial baselines share: options, and a base with a gradient-reversal layer."""

from __future__ import annotations

from dataclasses import dataclass

from boomda.config import TrainConfig
from boomda.errors import ConfigError
from boomda.methods.base import Method, weight_preset
from boomda.nn.adversarial import GradientReversal
from boomda.nn.net import MultimodalNet


@dataclass
class AdversarialOptions:
    """``trade_off``: weight of the adversarial term. ``grl``: ``ramp`` (the coefficient
    ``2/(1+exp(-10 p)) - 1`` of Ganin et al. 2016, p the training progress) or ``constant``;
    ``grl_max``: its final (or constant) value. ``hidden``/``dropout``: the discriminator's."""

    trade_off: float = 1.0
    grl: str = "ramp"
    grl_max: float = 1.0
    hidden: int = 1024
    dropout: float = 0.5

    def validate(self) -> None:
        if self.grl not in ("ramp", "constant"):
            raise ConfigError(f"options.grl must be ramp or constant, got {self.grl!r}")
        if self.trade_off < 0 or self.grl_max < 0:
            raise ConfigError("options.trade_off and options.grl_max must be >= 0")
        if self.hidden < 1 or not 0 <= self.dropout < 1:
            raise ConfigError("options.hidden must be >= 1 and options.dropout in [0, 1)")


class AdversarialMethod(Method):
    """Base of the methods that align the fused representation through gradient reversal."""

    Options = AdversarialOptions
    #: the adversarial weight ``trade_off`` from 0.03 to 10, the default 1 first
    preset = weight_preset("trade_off")

    def __init__(self, net: MultimodalNet, config: TrainConfig) -> None:
        super().__init__(net, config)
        self.grl = GradientReversal(self.options.grl, self.options.grl_max)
