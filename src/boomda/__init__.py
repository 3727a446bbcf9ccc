"""boomda: heterogeneous multimodal unsupervised domain adaptation.

Boomda (Sun et al., "Boomda: Balanced Multi-objective Optimization for Multimodal Domain
Adaptation", AAAI 2026) and the baselines it is compared with, on one shared trainer.
"""

from importlib.metadata import PackageNotFoundError, version

from boomda.config import DataConfig, RunConfig, TrainConfig
from boomda.data import DomainPair, MultimodalData, load_multiple_features
from boomda.errors import BoomdaError, ConfigError, DataError
from boomda.estimator import DomainAdapter

try:
    __version__ = version("boomda")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

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
