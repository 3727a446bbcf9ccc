"""The multimodal network of Boomda (paper Fig. 2, Sec. 3A).

One encoder per modality gives Z_1..Z_M (each (B, d)); ``Z_{M+1} = concat(Z_1..Z_M)`` is the fused
representation; each of the M+1 representations has its own linear classifier head, and the head
on Z_{M+1} gives the prediction. Modalities are keyed by name, so any M >= 2 uses the same code.

A modality's encoder is an MLP on its feature vector by default; raw modalities bring their own
(a :class:`~boomda.nn.backbone_encoder.BackboneEncoder`). Every encoder maps its input to (B, d).

Modality dropout (ModDrop, Neverova et al., "ModDrop: adaptive multi-modal gesture recognition",
IEEE TPAMI 2016): in training, with ``modality_dropout`` p > 0, each sample's Z_m is replaced by
zeros in the fused representation with probability p, independently per modality (a sample whose
every modality was drawn keeps them all), without rescaling. The per-modality heads and Z_1..Z_M
themselves are untouched. A fused head so trained predicts from Z_{M+1} with the representation
of an absent modality set to zeros (:meth:`MultimodalNet.fuse`), as
:mod:`boomda.partial` does at prediction time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from boomda import distributed
from boomda.errors import DataError
from boomda.nn.encoders import Encoder, MLPEncoder


@dataclass
class NetOutput:
    """``reps``: Z_1..Z_M; ``fused``: Z_{M+1}; ``logits``: the M+1 head outputs, fused last."""

    reps: list[torch.Tensor]
    fused: torch.Tensor
    logits: list[torch.Tensor]

    @property
    def fused_logits(self) -> torch.Tensor:
        return self.logits[-1]

    def rows(self, index: slice) -> NetOutput:
        """The same outputs for a slice of the batch (e.g. the source part of a joint batch)."""
        return NetOutput([z[index] for z in self.reps], self.fused[index],
                         [out[index] for out in self.logits])


class MultimodalNet(nn.Module):
    """Encoders, fusion by concatenation, and M+1 heads."""

    def __init__(
        self,
        dims: Mapping[str, int],
        n_classes: int,
        dim: int = 256,
        hidden: int = 512,
        dropout: float = 0.1,
        encoders: Mapping[str, nn.Module] | None = None,
        modality_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= modality_dropout < 1.0:
            raise DataError(f"modality_dropout must lie in [0, 1), got {modality_dropout}")
        self.modality_dropout = float(modality_dropout)
        #: the autocast dtype of training (``precision: bf16``; see the trainer), None: none
        self.autocast_dtype: torch.dtype | None = None
        encoders = dict(encoders or {})
        if len(dims) < 2:
            raise DataError(f"a multimodal network needs at least 2 modalities, got {list(dims)}")
        self.modalities = list(dims)
        self.n_classes = n_classes
        self.dim = dim
        unknown = [m for m in encoders if m not in dims]
        if unknown:
            raise DataError(f"an encoder is given for {unknown[0]!r}, which is not a modality of "
                            f"the data {list(dims)}")
        for m, encoder in encoders.items():
            if encoder.out_dim != dim or encoder.n_features != dims[m]:
                raise DataError(f"encoder of {m!r} maps {encoder.n_features} features to "
                                f"{encoder.out_dim}; the data has {dims[m]} and d = {dim}")
        self.encoders = nn.ModuleDict(
            {m: encoders[m] if m in encoders else MLPEncoder(n, dim, hidden, dropout)
             for m, n in dims.items()}
        )
        self.heads = nn.ModuleDict({m: nn.Linear(dim, n_classes) for m in dims})
        self.fused_head = nn.Linear(dim * len(dims), n_classes)

    @property
    def dims(self) -> dict[str, int]:
        """Input features per modality (per step for a sequence modality)."""
        return {m: int(self.encoder(m).n_features) for m in self.modalities}

    @property
    def fused_dim(self) -> int:
        """Size of Z_{M+1}: M times d."""
        return self.dim * len(self.modalities)

    def encoder(self, modality: str) -> Encoder:
        """The encoder of ``modality`` (its ``n_features`` and ``out_dim`` were checked when the
        network was built)."""
        return cast(Encoder, self.encoders[modality])

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.encoders.parameters() if p.requires_grad]

    @torch.no_grad()
    def fit_standardization(self, inputs: Mapping[str, torch.Tensor]) -> None:
        """Set every encoder's standardisation statistics from (source) inputs."""
        for m in self.modalities:
            self.encoder(m).fit_standardization(inputs[m])

    def fuse(self, reps: list[torch.Tensor], keep: torch.Tensor | None = None) -> torch.Tensor:
        """Z_{M+1}: Z_1..Z_M concatenated; with ``keep`` (B, M) bool, Z_m of row b is replaced by
        zeros where ``keep[b, m]`` is False."""
        if keep is None:
            return torch.cat(reps, dim=1)
        return torch.cat([z * keep[:, i, None].to(z.dtype) for i, z in enumerate(reps)], dim=1)

    def modality_dropout_mask(self, batch: int, device: torch.device) -> torch.Tensor:
        """(B, M) bool, False with probability ``modality_dropout`` each, drawn from torch's
        generator (in data-parallel training: this process's rows of the draw for the whole
        gathered batch, :func:`boomda.distributed.draw_rows`); rows drawn all False are set all
        True."""
        m = len(self.modalities)
        uniform = distributed.draw_rows(lambda rows: torch.rand(rows, m, device=device), batch)
        keep = uniform >= self.modality_dropout
        return keep | ~keep.any(dim=1, keepdim=True)

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> NetOutput:
        missing = [m for m in self.modalities if m not in inputs]
        if missing:
            raise DataError(f"input is missing modality {missing[0]!r}; the model expects "
                            f"{self.modalities}")
        reps = [self.encoders[m](inputs[m]) for m in self.modalities]
        keep = None
        if self.training and self.modality_dropout > 0:
            keep = self.modality_dropout_mask(reps[0].shape[0], reps[0].device)
        fused = self.fuse(reps, keep)
        logits = [self.heads[m](z) for m, z in zip(self.modalities, reps, strict=True)]
        logits.append(self.fused_head(fused))
        return NetOutput(reps, fused, logits)
