"""The multimodal sample container: named modality arrays plus optional labels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from boomda.errors import DataError

RESERVED_NAMES = ("fused",)


@dataclass(frozen=True)
class MultimodalData:
    """N samples, each with M modalities, and optional integer labels.

    Construction validates everything and raises :class:`DataError` naming the field at fault;
    the object is frozen.

    Args:
        views: modality name -> array, all with the same N: feature vectors (N, D_m) (a 1-D
            array (N,) is one feature), or padded sequences (N, T, 1 + D_m) as made by
            :func:`pack_sequences` (channel 0 marks the real steps, channels 1.. hold the D_m
            features of each step). Stored as float32; float16 sequences stay float16, to
            halve the memory of large frozen-backbone states. Real and finite values only;
            ``fused`` is a reserved name.
        labels: one label per sample (N,), or None (an unlabelled target domain): integer
            class indices (integral floats accepted), or class names (strings), encoded as
            indices into ``classes`` or, when no ``classes`` are given, into their sorted
            distinct names (:mod:`boomda.data.labels`).
        name: how errors name this data (``data[...]``, ``data.labels``).
        classes: the class names, distinct, labels being indices into them (None: unnamed
            classes 0..K-1).

    Attributes:
        views: modality name -> the checked, contiguous array.
        labels: int64 class indices (N,), or None.
        classes: the class names as a tuple, or None.

    Raises:
        DataError: an empty ``views``, a bad modality name, a complex, non-numeric,
            non-finite or featureless array, a bad step mask, sample counts that differ, or
            labels of the wrong shape, type or range.
    """

    views: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    classes: tuple[str, ...] | None = None

    def __init__(
        self,
        views: Mapping[str, np.ndarray],
        labels: np.ndarray | Iterable[int] | Iterable[str] | None = None,
        *,
        name: str = "data",
        classes: Sequence[str] | None = None,
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
            half = getattr(value, "dtype", None) == np.float16 and np.ndim(value) == 3
            if np.iscomplexobj(value):
                raise DataError(f"{name}[{key!r}]: complex values; boomda takes real features "
                                f"(split a complex feature into its real and imaginary parts, "
                                f"or take its magnitude)")
            try:
                arr = np.asarray(value, dtype=np.float16 if half else np.float32)
            except (TypeError, ValueError) as exc:
                raise DataError(f"{name}[{key!r}]: not a numeric array ({exc})") from None
            if arr.ndim == 1:
                arr = arr[:, None]
            if arr.ndim not in (2, 3):
                raise DataError(
                    f"{name}[{key!r}]: expected shape (n_samples, n_features) or padded "
                    f"sequences (n_samples, steps, 1 + n_features), got {arr.shape}"
                )
            if arr.shape[-1] <= (1 if arr.ndim == 3 else 0):
                raise DataError(f"{name}[{key!r}]: has no features")
            bad = ~np.isfinite(arr)
            if bad.any():
                row, col = map(int, np.argwhere(bad)[0])
                kind = "NaN" if np.isnan(arr[row, col]) else "inf"
                raise DataError(
                    f"{name}[{key!r}]: {int(bad.sum())} non-finite value(s) "
                    f"(first: {kind} at sample {row}, feature {col})"
                )
            if arr.ndim == 3:
                _check_step_mask(arr[:, :, 0], f"{name}[{key!r}]")
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
        names = None if classes is None else tuple(str(c) for c in classes)
        if names is not None and (not names or len(set(names)) != len(names)):
            raise DataError(f"{name}.classes: expected distinct class names, got {list(names)}")
        if labels is not None:
            from boomda.data.labels import encode_labels, is_text

            y = np.asarray(labels)
            if y.ndim != 1 or y.shape[0] != n_samples:
                raise DataError(
                    f"{name}.labels: expected shape ({n_samples},), one label per sample, "
                    f"got {tuple(y.shape)}"
                )
            if is_text(y):  # class names: encoded as indices into ``classes``
                y, names = encode_labels(y, f"{name}.labels", names)
            else:
                if y.size and not np.issubdtype(y.dtype, np.integer):
                    if (not np.issubdtype(y.dtype, np.floating)
                            or not np.all(np.equal(np.mod(y, 1), 0))):
                        raise DataError(f"{name}.labels: must be integer class indices or class "
                                        f"names, got {y.dtype}")
                y = y.astype(np.int64)
                if y.size and y.min() < 0:
                    raise DataError(f"{name}.labels: negative class index {int(y.min())}")
                if names is not None and y.size and y.max() >= len(names):
                    raise DataError(f"{name}.labels: class index {int(y.max())} is outside the "
                                    f"{len(names)} classes {list(names)}")
        object.__setattr__(self, "views", checked)
        object.__setattr__(self, "labels", y)
        object.__setattr__(self, "classes", names)

    def __len__(self) -> int:
        return next(iter(self.views.values())).shape[0]

    def __repr__(self) -> str:
        labels = ("unlabelled" if self.labels is None
                  else f"labels of {len(np.unique(self.labels))} classes")
        return f"MultimodalData({len(self)} samples; {self.describe_modalities()}; {labels})"

    def describe_modalities(self) -> str:
        """The modalities with their features, for messages and summaries.

        Returns:
            ``fou (76), lexical (sequences of 40 x 768)``: for a sequence modality, its
            padded length and the features of a step.
        """
        return ", ".join(f"{m} (sequences of {v.shape[1]} x {self.dims[m]})" if v.ndim == 3
                         else f"{m} ({v.shape[1]})" for m, v in self.views.items())

    @property
    def modalities(self) -> list[str]:
        """The modality names, in the order of ``views``."""
        return list(self.views)

    @property
    def dims(self) -> dict[str, int]:
        """Features per modality, D_m (per step for a sequence modality)."""
        return {k: v.shape[-1] - (1 if v.ndim == 3 else 0) for k, v in self.views.items()}

    def is_sequence(self, modality: str) -> bool:
        """Whether a modality holds packed sequences (N, T, 1 + D_m) rather than features.

        Args:
            modality: the modality's name.

        Returns:
            True for a sequence modality.

        Raises:
            KeyError: an unknown modality.
        """
        return self.views[modality].ndim == 3

    def subset(self, index: np.ndarray) -> MultimodalData:
        """Rows ``index`` of every modality and of the labels, the classes kept.

        Sequence arrays are cut to the longest real sequence among the rows kept.

        Args:
            index: row indices (K,) or a boolean mask (N,).

        Returns:
            The K samples, as a new MultimodalData.
        """
        labels = None if self.labels is None else self.labels[index]
        return MultimodalData({k: trim_padding(v[index]) for k, v in self.views.items()}, labels,
                              classes=self.classes)

    def select(self, modalities: Iterable[str]) -> MultimodalData:
        """Only the named modalities, in the given order.

        Args:
            modalities: the modality names to keep.

        Returns:
            The same samples with those modalities only.

        Raises:
            DataError: an unknown modality, or one listed twice.
        """
        names = list(modalities)
        missing = [m for m in names if m not in self.views]
        if missing:
            raise DataError(
                f"unknown modality {missing[0]!r}; available: {', '.join(self.views)}"
            )
        if len(set(names)) != len(names):
            raise DataError(f"modalities listed twice: {names}")
        return MultimodalData({m: self.views[m] for m in names}, self.labels,
                              classes=self.classes)

    def check_labels(self, n_classes: int, name: str = "labels") -> None:
        """Check that every label lies in ``0 .. n_classes-1`` (no labels: nothing to check).

        Args:
            n_classes: the number of classes.
            name: how the error names the labels.

        Raises:
            DataError: naming the first label outside the class set and its sample.
        """

        if self.labels is None or self.labels.size == 0:
            return
        bad = (self.labels < 0) | (self.labels >= n_classes)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                f"{name}: label {int(self.labels[i])} at sample {i} is outside the class set "
                f"0..{n_classes - 1}"
            )


def pack_sequences(sequences: Sequence[np.ndarray], steps: int | None = None,
                   dtype: DTypeLike = np.float32) -> np.ndarray:
    """Right-pad variable-length sequences (T_i, D) into one array (N, T, 1 + D) of ``dtype``
    (float32, or float16 to halve the memory).

    Channel 0 is 1 on the T_i real steps of sample i and 0 on padding; channels 1.. hold the
    features (zeros on padding). ``T`` is the longest sequence unless ``steps`` is given.
    """
    if len(sequences) == 0:
        raise DataError("pack_sequences: no sequences")
    if np.dtype(dtype) not in (np.float32, np.float16):
        raise DataError(f"pack_sequences: dtype must be float32 or float16, got {dtype}")
    arrays = [np.asarray(s) for s in sequences]
    widths = {a.shape[1] for a in arrays if a.ndim == 2}
    if any(a.ndim != 2 for a in arrays) or len(widths) != 1:
        raise DataError(f"pack_sequences: expected (steps, features) arrays of one width, got "
                        f"shapes {sorted({a.shape for a in arrays})[:3]}")
    if min(a.shape[0] for a in arrays) < 1:
        raise DataError("pack_sequences: every sequence needs at least one step")
    longest = max(a.shape[0] for a in arrays)
    steps = longest if steps is None else steps
    if steps < longest:
        raise DataError(f"pack_sequences: steps={steps} is shorter than the longest sequence "
                        f"({longest})")
    out = np.zeros((len(arrays), steps, 1 + widths.pop()), dtype=dtype)
    for i, a in enumerate(arrays):
        out[i, : len(a), 0] = 1.0
        out[i, : len(a), 1:] = a
    return out


def _check_step_mask(mask: np.ndarray, where: str) -> None:
    if not np.isin(mask, (0.0, 1.0)).all():
        raise DataError(f"{where}: channel 0 of a sequence array must be the 0/1 step mask "
                        f"(see pack_sequences)")
    lengths = _count_steps(mask)
    if mask.shape[0] and lengths.min() < 1:
        raise DataError(f"{where}: sample {int(np.argmin(lengths))} has no real step")
    prefix = np.arange(mask.shape[1])[None, :] < lengths[:, None]
    if not np.array_equal(prefix, mask.astype(bool)):
        row = int(np.flatnonzero((prefix != mask.astype(bool)).any(axis=1))[0])
        raise DataError(f"{where}: the step mask of sample {row} is not a prefix (sequences "
                        f"must be right-padded)")


def trim_padding(view: np.ndarray) -> np.ndarray:
    """A sequence array cut to its longest real sequence (no all-padding steps at the end)."""
    if view.ndim != 3 or view.shape[0] == 0:
        return view
    return view[:, : max(1, int(step_counts(view).max()))]


def step_counts(view: np.ndarray) -> np.ndarray:
    """The number of real steps of each sample of a packed sequence array (N, T, 1 + D)."""
    return _count_steps(view[:, :, 0])


def _count_steps(mask: np.ndarray) -> np.ndarray:
    return (mask > 0.5).sum(axis=1)  # counted as integers (float16 sums stop at 2048)
