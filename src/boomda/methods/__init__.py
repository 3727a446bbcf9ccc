"""Adaptation methods, selected by name. Each returns named loss terms for one step.

Boomda and its ablation variants (``dt``, ``ca``, ``pl``, ``uniform``, ``boomda``) and the
paper's baselines (``dann``, ``cdan``, ``mada``, ``daln``, ``pcl``, ``dada``), all on the same
multimodal network and trainer.
"""

from __future__ import annotations

from typing import Any

from boomda.config import TrainConfig
from boomda.errors import ConfigError
from boomda.methods.base import Batch, Method, MethodOutput
from boomda.methods.boomda import VARIANTS, BoomdaMethod, BoomdaOptions
from boomda.methods.cdan import CDAN
from boomda.methods.dada import DADA
from boomda.methods.daln import DALN
from boomda.methods.dann import DANN
from boomda.methods.mada import MADA
from boomda.methods.pcl import PCL
from boomda.nn.net import MultimodalNet

#: method name -> Method class
METHODS: dict[str, type[Method]] = {
    **VARIANTS, **{cls.name: cls for cls in (DANN, CDAN, MADA, DALN, PCL, DADA)}
}
BASELINES = ["dt", "dann", "cdan", "mada", "daln", "pcl", "dada"]


def check_config(config: TrainConfig, n_modalities: int | None = None) -> Any:
    """Validate ``config`` (:meth:`TrainConfig.validate`), its method's name and the method's
    options, and, given ``n_modalities``, the options against that many modalities (Boomda's
    M_v <= M+1). Returns the parsed options. Raises :class:`ConfigError` naming the first bad
    option."""
    config.validate()
    if config.method not in METHODS:
        raise ConfigError(f"unknown method {config.method!r}; choose from {', '.join(METHODS)}")
    options = METHODS[config.method].parse_options(config.options)
    check = getattr(options, "check_modalities", None)
    if n_modalities is not None and check is not None:
        check(n_modalities)
    return options


def build_method(name: str, net: MultimodalNet, config: TrainConfig) -> Method:
    """The method called ``name`` wrapped around ``net``."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name](net, config)


__all__ = ["BASELINES", "METHODS", "Batch", "BoomdaMethod", "BoomdaOptions", "Method",
           "MethodOutput", "build_method", "check_config"]
