"""boomda: heterogeneous multimodal unsupervised domain adaptation.

Boomda (Sun et al., "Boomda: Balanced Multi-objective Optimization for Multimodal Domain
Adaptation", AAAI 2026) and the baselines it is compared with, on one shared trainer.

Importing the package loads no torch: the names that need it (``DomainAdapter``, the data
classes) are imported at first use.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from boomda.config import DataConfig, RunConfig, TrainConfig
from boomda.errors import BoomdaError, ConfigError, DataError

if TYPE_CHECKING:
    from boomda.data import DomainPair, MultimodalData, load_multiple_features
    from boomda.estimator import DomainAdapter

try:
    __version__ = version("boomda")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

#: the names loaded at first use -> their module
_LAZY = {"DomainAdapter": "boomda.estimator", "DomainPair": "boomda.data",
         "MultimodalData": "boomda.data", "load_multiple_features": "boomda.data"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BoomdaError",
    "ConfigError",
    "DataConfig",
    "DataError",
    "DomainAdapter",
    "DomainPair",
    "MultimodalData",
    "RunConfig",
    "TrainConfig",
    "__version__",
    "load_multiple_features",
]
