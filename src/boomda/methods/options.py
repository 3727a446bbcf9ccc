"""Boomda's options (:class:`BoomdaOptions`), apart from the method so that the command line
lists them without importing torch."""

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
