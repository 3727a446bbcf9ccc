"""Adaptation methods, selected by name. Each returns named loss terms for one step.

Boomda and its ablation variants (``dt``, ``ca``, ``pl``, ``uniform``, ``boomda``) and the
paper's baselines (``dann``, ``cdan``, ``mada``, ``daln``, ``pcl``, ``dada``), all on the same
multimodal network and trainer.
"""

from __future__ import annotations

from boomda.config import TrainConfig
from boomda.errors import ConfigError
from boomda.methods.base import Batch, Method, MethodOutput
from boomda.methods.boomda import VARIANTS, BoomdaMethod
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


def build_method(name: str, net: MultimodalNet, config: TrainConfig) -> Method:
    """The method called ``name`` wrapped around ``net``."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name](net, config)


__all__ = ["BASELINES", "METHODS", "Batch", "BoomdaMethod", "Method", "MethodOutput",
           "build_method"]
