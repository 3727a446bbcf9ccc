"""The multimodal sample container: named modality arrays plus optional labels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from boomda.errors import DataError

RESERVED_NAMES = ("fused",)


@dataclass(frozen=True)
class MultimodalData:
    """N samples, each with M modalities (feature vectors), and optional integer labels.

    ``views`` maps a modality name to a float32 array of shape (N, D_m); all modalities share the
    same N. ``labels`` is an int64 array of shape (N,) or None (an unlabelled target domain).
    Construction validates everything and raises :class:`DataError` naming the field at fault.
    """

    views: dict[str, np.ndarray]
    labels: np.ndarray | None = None

    def __init__(
        self,
        views: Mapping[str, np.ndarray],
        labels: np.ndarray | Iterable[int] | None = None,
        *,
        name: str = "data",
    ) -> None:
        if not isinstance(views, Mapping) or len(views) == 0:
            raise DataError(f"{name}: expected a non-empty dict of modality name -> array")
        checked: dict[str, np.ndarray] = {}
        n_samples: int | None = None
        first = ""
        for key, value in views.items():
            if not isinstance(key, str) or not key:
                raise DataError(f"{name}: modality names must be non-empty strings, got {key!r}")
            if key in RESERVED_NAMES:
                raise DataError(f"{name}: modality name {key!r} is reserved; rename it")
            try:
                arr = np.asarray(value, dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise DataError(f"{name}[{key!r}]: not a numeric array ({exc})") from None
            if arr.ndim == 1:
                arr = arr[:, None]
            if arr.ndim != 2:
                raise DataError(
                    f"{name}[{key!r}]: expected shape (n_samples, n_features), got {arr.shape}"
                )
            if arr.shape[1] == 0:
                raise DataError(f"{name}[{key!r}]: has no features")
            bad = ~np.isfinite(arr)
            if bad.any():
                row, col = map(int, np.argwhere(bad)[0])
                kind = "NaN" if np.isnan(arr[row, col]) else "inf"
                raise DataError(
                    f"{name}[{key!r}]: {int(bad.sum())} non-finite value(s) "
                    f"(first: {kind} at sample {row}, feature {col})"
                )
            if n_samples is None:
                n_samples, first = arr.shape[0], key
            elif arr.shape[0] != n_samples:
                raise DataError(
                    f"{name}: modalities have different sample counts: "
                    f"{first!r} has {n_samples}, {key!r} has {arr.shape[0]}"
                )
            checked[key] = np.ascontiguousarray(arr)
        assert n_samples is not None
        y = None
        if labels is not None:
            y = np.asarray(labels)
            if y.ndim != 1 or y.shape[0] != n_samples:
                raise DataError(
                    f"{name}.labels: expected shape ({n_samples},), got {tuple(y.shape)}"
                )
            if y.size and not np.issubdtype(y.dtype, np.integer):
                if not np.issubdtype(y.dtype, np.floating) or not np.all(np.equal(np.mod(y, 1), 0)):
                    raise DataError(f"{name}.labels: must be integer class indices, got {y.dtype}")
            y = y.astype(np.int64)
            if y.size and y.min() < 0:
                raise DataError(f"{name}.labels: negative class index {int(y.min())}")
        object.__setattr__(self, "views", checked)
        object.__setattr__(self, "labels", y)

    def __len__(self) -> int:
        return next(iter(self.views.values())).shape[0]

    @property
    def modalities(self) -> list[str]:
        return list(self.views)

    @property
    def dims(self) -> dict[str, int]:
        return {k: v.shape[1] for k, v in self.views.items()}

    def subset(self, index: np.ndarray) -> MultimodalData:
        """Rows ``index`` of every modality (and of the labels)."""
        labels = None if self.labels is None else self.labels[index]
        return MultimodalData({k: v[index] for k, v in self.views.items()}, labels)

    def select(self, modalities: Iterable[str]) -> MultimodalData:
        """Only the named modalities, in the given order."""
        names = list(modalities)
        missing = [m for m in names if m not in self.views]
        if missing:
            raise DataError(
                f"unknown modality {missing[0]!r}; available: {', '.join(self.views)}"
            )
        if len(set(names)) != len(names):
            raise DataError(f"modalities listed twice: {names}")
        return MultimodalData({m: self.views[m] for m in names}, self.labels)

    def check_labels(self, n_classes: int, name: str = "labels") -> None:
        """Raise if a label lies outside ``0 .. n_classes-1``."""
        if self.labels is None or self.labels.size == 0:
            return
        bad = (self.labels < 0) | (self.labels >= n_classes)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                f"{name}: label {int(self.labels[i])} at sample {i} is outside the class set "
                f"0..{n_classes - 1}"
            )
