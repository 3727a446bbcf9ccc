"""The encoder of a raw modality (paper Sec. 4): the trainable top of a pretrained backbone, then
a sequence encoder.

Acoustic and lexical modalities: the last k layers of WavLM / BERT, then a TextCNN over the
hidden states. Visual modality: the last k layers of the image model on every frame, the frame's
CLS embedding, then a 1-layer LSTM over the frames. The frozen bottom of the backbone is run
once per utterance when the data is prepared (and cached, :mod:`boomda.data.frozen_cache`); the
encoder's input is its output, packed as (B, T, 1 + H) (``boomda.data.pack_sequences``). For an
image backbone the T steps of a sample are its F frames times the P + 1 tokens per frame (times
1, the CLS embedding, when no layer of the image model is trained).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from boomda.errors import BoomdaError, ConfigError
from boomda.nn.backbones import PretrainedBackbone
from boomda.nn.encoders import Standardizer, split_steps
from boomda.nn.sequence import LSTMEncoder, TextCNN

SEQUENCE_ENCODERS = ("textcnn", "lstm")
#: the paper's sequence encoder for each backbone kind
DEFAULT_SEQUENCE = {"speech": "textcnn", "text": "textcnn", "image": "lstm"}


def tokens_per_frame(backbone: PretrainedBackbone) -> int:
    """P + 1: the patches of one frame plus the CLS token (image backbones)."""
    config = backbone.model.config
    size, patch = config.image_size, config.patch_size
    size = size if isinstance(size, int) else size[0]
    patch = patch if isinstance(patch, int) else patch[0]
    return (size // patch) ** 2 + 1


def frozen_steps_per_frame(backbone: PretrainedBackbone) -> int:
    """Steps of one frame in the stored frozen states of an image backbone: its P + 1 tokens
    when layers are trained on them, only the CLS embedding when the whole model is frozen."""
    if backbone.kind != "image" or backbone.trainable_layers == 0:
        return 1
    return tokens_per_frame(backbone)


class BackboneEncoder(nn.Module):
    """``sequence(backbone.trainable_forward(frozen states))`` -> (B, d).

    ``sequence`` is ``"textcnn"`` or ``"lstm"`` (default: the paper's for the backbone's kind).
    ``stats`` holds per-feature statistics of the source's frozen states; they are not applied
    in the forward pass (the states go on into transformer layers) and serve :meth:`augment`.
    """

    def __init__(
        self,
        backbone: PretrainedBackbone,
        dim: int = 256,
        sequence: str | None = None,
        dropout: float = 0.1,
        fingerprint: str | None = None,
    ) -> None:
        """``fingerprint``: the backbone's, when the caller has computed it already."""
        super().__init__()
        sequence = sequence or DEFAULT_SEQUENCE[backbone.kind]
        if sequence not in SEQUENCE_ENCODERS:
            raise ConfigError(f"sequence encoder must be one of {', '.join(SEQUENCE_ENCODERS)}, "
                              f"got {sequence!r}")
        self.backbone = backbone
        self.sequence_name = sequence
        hidden = backbone.hidden_size
        self.n_features = hidden
        self.out_dim = dim
        self.dropout = dropout
        self.steps_per_frame = frozen_steps_per_frame(backbone)
        self.stats = Standardizer(hidden)
        self.sequence: TextCNN | LSTMEncoder
        if sequence == "textcnn":
            self.sequence = TextCNN(hidden, dim, dropout=dropout)
        else:
            self.sequence = LSTMEncoder(hidden, dim)
        self._fingerprint = fingerprint

    @torch.no_grad()
    def fit_standardization(self, x: torch.Tensor) -> None:
        features, mask = split_steps(x)
        self.stats.fit(features[mask].float())

    def augment(self, x: torch.Tensor, noise: float, fraction: float) -> torch.Tensor:
        """Noise and masking (:meth:`Standardizer.perturb`) on the features of the real steps;
        the step mask and the padding are kept."""
        features, mask = split_steps(x)
        perturbed = self.stats.perturb(features, noise, fraction)
        perturbed = torch.where(mask.unsqueeze(-1), perturbed, features)
        return torch.cat([x[..., :1], perturbed], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.n_features + 1:
            raise BoomdaError(f"{self.backbone.kind} encoder: expected packed frozen states "
                              f"(batch, steps, 1 + {self.n_features}), got {tuple(x.shape)}")
        states, mask = split_steps(x.to(self.stats.mean.dtype))  # float16 data: compute in float32
        if self.backbone.kind == "image":
            p = self.steps_per_frame
            if states.shape[1] % p:
                raise BoomdaError(f"image encoder: {states.shape[1]} steps are not whole frames "
                                  f"of {p} tokens")
            frames = states.unflatten(1, (states.shape[1] // p, p))  # (B, F, P + 1, H)
            frame_mask = mask[:, ::p]
            steps = self.backbone.trainable_forward(frames)  # (B, F, H)
            mask = frame_mask
        else:
            steps = self.backbone.trainable_forward(states, mask)
        if self.sequence_name == "lstm":
            return self.sequence(steps, mask.sum(dim=1))
        return self.sequence(steps, mask)

    def fingerprint(self) -> str:
        """The backbone's fingerprint (computed once; the frozen part never changes)."""
        if self._fingerprint is None:
            self._fingerprint = self.backbone.fingerprint()
        return self._fingerprint

    def frozen_tensors(self) -> list[torch.Tensor]:
        """The backbone's frozen parameters and buffers (left out of checkpoints)."""
        trainable = {id(t) for layer in self.backbone.layers[self.backbone.split :]
                     for t in [*layer.parameters(), *layer.buffers()]}
        return [t for t in [*self.backbone.parameters(), *self.backbone.buffers()]
                if id(t) not in trainable]

    def spec(self) -> dict[str, Any]:
        """What :func:`build_backbone_encoder` needs to rebuild this encoder (JSON-able)."""
        b = self.backbone
        return {"kind": b.kind, "source": b.source, "trainable_layers": b.trainable_layers,
                "fingerprint": self.fingerprint(), "sequence": self.sequence_name,
                "dim": self.out_dim, "dropout": self.dropout}


def build_backbone_encoder(spec: dict[str, Any]) -> BackboneEncoder:
    """Rebuild an encoder from :meth:`BackboneEncoder.spec`: the backbone is loaded from its
    local folder again and must have the same frozen part (fingerprint) as when it was trained."""
    backbone = PretrainedBackbone.from_pretrained(spec["source"], spec["kind"],
                                                  spec["trainable_layers"])
    encoder = BackboneEncoder(backbone, spec["dim"], spec["sequence"], spec["dropout"])
    if encoder.fingerprint() != spec["fingerprint"]:
        raise BoomdaError(f"the backbone at {spec['source']} is not the one the model was trained "
                          f"with (its frozen weights or config differ)")
    return encoder
