"""Data: the multimodal container, domain pairs, target shifts and the embedded data set."""

from boomda.data.container import MultimodalData
from boomda.data.mfeat import load_multiple_features
from boomda.data.pair import DomainPair, stratified_split
from boomda.data.shifts import MaskShift, NoiseShift, NoShift, ScaleNoiseShift, parse_shift

__all__ = [
    "DomainPair",
    "MaskShift",
    "MultimodalData",
    "NoShift",
    "NoiseShift",
    "ScaleNoiseShift",
    "load_multiple_features",
    "parse_shift",
    "stratified_split",
]
