"""Every built-in method's options, apart from the methods so that the command line and the
report read them (names, defaults, help texts) without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

from boomda.config import _option
from boomda.errors import ConfigError
from boomda.registry import BALANCERS, CA_FORMS, check_normalization


@dataclass
class BoomdaOptions:
    """Boomda's hyperparameters (Eq. 14), shared by its ablation variants, which ignore those
    of the terms they leave out. The defaults: the paper's alpha_1 and M_v; the scale-free
    ``correlation`` form at alpha_2 = 100 with the closed-form balancing and no normalisation,
    chosen on the development tasks of the benchmark suite (docs/method.md)."""

    alpha1: float = _option(0.5, "weight of the pseudo-label loss")
    alpha2: float = _option(100.0, "weight of the correlation alignment")
    vote_threshold: int = _option(3, "M_v, votes needed to keep a pseudo-label")
    gamma_solver: str = _option("closed_form", "how Boomda weighs its alignment objectives")
    gamma_normalization: str = _option("none", "gradient normalisation before balancing")
    ca_form: str = _option("correlation", "correlation-alignment form")

    def validate(self) -> None:
        if self.gamma_solver not in BALANCERS:
            raise ConfigError(f"unknown gamma_solver {self.gamma_solver!r}; choose from "
                              f"{', '.join(BALANCERS)}")
        check_normalization(self.gamma_normalization)
        if self.ca_form not in CA_FORMS:
            raise ConfigError(f"unknown ca_form {self.ca_form!r}; choose from "
                              f"{', '.join(CA_FORMS)}")
        for name in ("alpha1", "alpha2"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"option {name} must be >= 0, got {getattr(self, name)!r}")
        if self.vote_threshold < 1:
            raise ConfigError(f"option vote_threshold (M_v) must be at least 1, got "
                              f"{self.vote_threshold!r}")

    def check_modalities(self, n_modalities: int) -> None:
        """M_v cannot exceed the M+1 voting heads of ``n_modalities`` modalities."""
        if self.vote_threshold > n_modalities + 1:
            raise ConfigError(
                f"vote_threshold (M_v) = {self.vote_threshold} exceeds M+1 = {n_modalities + 1} "
                f"voting heads for {n_modalities} modalities"
            )


@dataclass
class NoOptions:
    """This method has no options of its own."""


#: the discrepancies DADA can measure between its two classifiers
DISCREPANCIES = ("nwd", "l1")


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


@dataclass
class DALNOptions(AdversarialOptions):
    """Only ``trade_off`` and the ``grl`` settings apply (DALN has no discriminator)."""


@dataclass
class PCLOptions(AdversarialOptions):
    pcl_weight: float = 0.05
    scale: float = 7.0
    noise: float = 0.5
    mask: float = 0.2

    def validate(self) -> None:
        super().validate()
        if self.pcl_weight < 0 or self.scale <= 0 or self.noise < 0 or not 0 <= self.mask < 1:
            raise ConfigError("options: pcl_weight >= 0, scale > 0, noise >= 0, mask in [0, 1)")


@dataclass
class MADAOptions(AdversarialOptions):
    """Also ``class_weight``: the weight of each class discriminator's loss (the released code's
    ``loss_weight``)."""

    hidden: int = 256
    class_weight: float = 1.0

    def validate(self) -> None:
        super().validate()
        if self.class_weight < 0:
            raise ConfigError(f"options.class_weight must be >= 0, got {self.class_weight}")


@dataclass
class CDANOptions(AdversarialOptions):
    """Also: ``entropy`` (CDAN+E), ``randomized`` (``auto``: when Md*C > ``max_dim``;
    ``always``; ``never``), ``random_dim`` r, ``max_dim``."""

    entropy: bool = False
    randomized: str = "auto"
    random_dim: int = 1024
    max_dim: int = 4096

    def validate(self) -> None:
        super().validate()
        if self.randomized not in ("auto", "always", "never"):
            raise ConfigError(f"options.randomized must be auto, always or never, got "
                              f"{self.randomized!r}")


@dataclass
class DADAOptions(AdversarialOptions):
    """The release's defaults (``parameters.py``): ``hidden`` 512 (``fd_fc1_dim``),
    ``category_hidden`` 512 (``fc_fc1_dim``) and 128 (``fc_fc2_dim``), ``ratio`` r = 0.01
    (``d_dis_ratio``; its data sets use 0.005 to 0.05), ``discrepancy_ratio`` 0.5,
    ``discrepancy`` nwd, ``mix_alpha`` = ``mix_beta`` = 0.5 (its data sets use (3, 0.5), (2, 1),
    (3, 3), (2, 5)), ``normalize`` true, ``dropout`` 0.5."""

    hidden: int = 512
    category_hidden: int = 512
    category_hidden2: int = 128
    ratio: float = 0.01
    discrepancy_ratio: float = 0.5
    discrepancy: str = "nwd"
    mix_alpha: float = 0.5
    mix_beta: float = 0.5
    normalize: bool = True

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.ratio <= 1:
            raise ConfigError(f"options.ratio must be in [0, 1], got {self.ratio}")
        if self.discrepancy_ratio < 0:
            raise ConfigError("options.discrepancy_ratio must be >= 0")
        if self.mix_alpha <= 0 or self.mix_beta <= 0:
            raise ConfigError("options.mix_alpha and options.mix_beta must be > 0")
        if self.discrepancy not in DISCREPANCIES:
            raise ConfigError(f"options.discrepancy must be one of {', '.join(DISCREPANCIES)}, "
                              f"got {self.discrepancy!r}")
        if self.category_hidden < 1 or self.category_hidden2 < 1:
            raise ConfigError("options.category_hidden and category_hidden2 must be >= 1")
