"""Adaptation methods, selected by name. Each returns named loss terms for one step.

Boomda and its ablation variants and the paper's baselines, all on the same multimodal network
and trainer; :data:`METHODS` lists them. The registry and the checks below import no torch; the
method classes load at first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from boomda.config import TrainConfig
from boomda.registry import METHODS as METHODS
from boomda.registry import baselines

if TYPE_CHECKING:
    from boomda.methods.base import Batch, Method, MethodOutput
    from boomda.methods.boomda import BoomdaMethod
    from boomda.methods.options import BoomdaOptions
    from boomda.nn.net import MultimodalNet

#: the names loaded at first use -> their module
_LAZY = {"Batch": "boomda.methods.base", "Method": "boomda.methods.base",
         "MethodOutput": "boomda.methods.base", "BoomdaMethod": "boomda.methods.boomda",
         "BoomdaOptions": "boomda.methods.options"}


def __getattr__(name: str) -> Any:
    if name == "BASELINES":
        return baselines()
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_config(config: TrainConfig, n_modalities: int | None = None) -> Any:
    """Validate ``config`` (:meth:`TrainConfig.validate`), its method's name and the method's
    options, and, given ``n_modalities``, the options against that many modalities (Boomda's
    M_v <= M+1). Returns the parsed options. Raises :class:`ConfigError` naming the first bad
    option."""
    config.validate()
    options = METHODS.lookup(config.method).parse_options(config.options)
    check = getattr(options, "check_modalities", None)
    if n_modalities is not None and check is not None:
        check(n_modalities)
    return options


def build_method(name: str, net: MultimodalNet, config: TrainConfig) -> Method:
    """The method called ``name`` (a :class:`~boomda.methods.base.Method`) wrapped around
    ``net``."""
    return METHODS.lookup(name)(net, config)


__all__ = ["BASELINES", "METHODS", "Batch", "BoomdaMethod", "BoomdaOptions", "Method",  # noqa: F822
           "MethodOutput", "build_method", "check_config"]
