"""Adaptation methods, selected by name. Each returns named loss terms for one step."""

from __future__ import annotations

from boomda.config import TrainConfig
from boomda.errors import ConfigError
from boomda.methods.base import Batch, Method, MethodOutput
from boomda.methods.boomda import VARIANTS, BoomdaMethod
from boomda.nn.net import MultimodalNet

#: method name -> builder(net, config) -> Method
METHODS = dict(VARIANTS)


def build_method(name: str, net: MultimodalNet, config: TrainConfig) -> Method:
    """The method called ``name`` wrapped around ``net``."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name](net, config)


__all__ = ["METHODS", "Batch", "BoomdaMethod", "Method", "MethodOutput", "build_method"]
