"""Sequence encoders: (B, T, in_dim) step features with padding -> (B, out_dim) representations.

The paper's encoders (Sun et al., AAAI 2026, Sec. 4) put a TextCNN on the hidden states of the
acoustic (WavLM) and lexical (BERT) backbones and a 1-layer LSTM on the per-frame features of the
visual backbone. Sequences are right-padded: step ``t`` of sample ``b`` is real when
``t < length_b``, i.e. ``mask[b, t]`` is True on a prefix.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from boomda.errors import DataError
from boomda.nn.encoders import RowDropout


class TextCNN(nn.Module):
    """Convolutions of several widths with max-over-time pooling (Kim, "Convolutional Neural
    Networks for Sentence Classification", EMNLP 2014), then a linear map to ``out_dim``.

    For every width ``k`` in ``kernel_sizes``: ``c = ReLU(Conv1d_k(x))`` with ``channels`` filters,
    pooled as ``max_t c_t`` over the windows that overlap the real steps (zero-padded "full"
    convolution, so a sequence shorter than ``k`` still has windows). Padding steps never reach
    the result: a padded batch gives exactly the outputs of its sequences encoded one by one.
    Shapes: ``x`` (B, T, in_dim), ``mask`` (B, T) bool (None: no padding) -> (B, out_dim).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 256,
        kernel_sizes: Sequence[int] = (3, 4, 5),
        channels: int = 100,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if not kernel_sizes or min(kernel_sizes) < 1:
            raise ValueError(f"kernel_sizes must be positive widths, got {list(kernel_sizes)}")
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.convs = nn.ModuleList(
            nn.Conv1d(in_dim, channels, k, padding=k - 1) for k in self.kernel_sizes
        )
        self.dropout = RowDropout(dropout)
        self.proj = nn.Linear(channels * len(self.kernel_sizes), out_dim)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        lengths = _lengths_from_mask(x, mask)
        if mask is not None:
            x = x * mask.unsqueeze(-1).to(x.dtype)
        x = x.transpose(1, 2)  # (B, in_dim, T)
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs, strict=True):
            c = torch.relu(conv(x))  # (B, channels, T + k - 1)
            steps = torch.arange(c.shape[-1], device=c.device)
            valid = steps.unsqueeze(0) < (lengths + k - 1).unsqueeze(1)  # windows touching a step
            c = c.masked_fill(~valid.unsqueeze(1), float("-inf"))
            pooled.append(c.max(dim=-1).values)
        return self.proj(self.dropout(torch.cat(pooled, dim=-1)))


class LSTMEncoder(nn.Module):
    """A 1-layer LSTM over the steps; the representation is its last hidden state ``h_T``
    (each sequence's own last real step). ``x`` (B, T, in_dim), ``lengths`` (B,) -> (B, out_dim).
    """

    def __init__(self, in_dim: int, out_dim: int = 256) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_dim, out_dim, num_layers=1, batch_first=True)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3:
            raise DataError(f"LSTMEncoder: expected (batch, steps, features), got {tuple(x.shape)}")
        if lengths is None:
            _, (h, _) = self.lstm(x)
            return h[-1]
        lengths = torch.as_tensor(lengths, dtype=torch.int64).cpu()
        if lengths.shape != (x.shape[0],):
            raise DataError(f"LSTMEncoder: expected {x.shape[0]} lengths, got shape "
                            f"{tuple(lengths.shape)}")
        if int(lengths.min()) < 1 or int(lengths.max()) > x.shape[1]:
            raise DataError(f"LSTMEncoder: lengths must lie in 1..{x.shape[1]}, got "
                            f"{lengths.tolist()}")
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                   enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return h[-1]


def _lengths_from_mask(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if x.dim() != 3:
        raise DataError(f"TextCNN: expected (batch, steps, features), got {tuple(x.shape)}")
    if mask is None:
        return torch.full((x.shape[0],), x.shape[1], dtype=torch.int64, device=x.device)
    if mask.shape != x.shape[:2]:
        raise DataError(f"TextCNN: mask shape {tuple(mask.shape)} != (batch, steps) "
                        f"{tuple(x.shape[:2])}")
    mask = mask.bool()
    lengths = mask.sum(dim=1)
    if int(lengths.min()) < 1:
        raise DataError("TextCNN: every sequence needs at least one real step")
    prefix = torch.arange(x.shape[1], device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
    if not torch.equal(prefix, mask):
        raise DataError("TextCNN: the mask must mark a prefix of each sequence (right padding)")
    return lengths
