"""Neural-network parts: encoders and the multimodal network."""

from boomda.nn.encoders import MLPEncoder, Standardizer
from boomda.nn.net import MultimodalNet, NetOutput

__all__ = ["MLPEncoder", "MultimodalNet", "NetOutput", "Standardizer"]
