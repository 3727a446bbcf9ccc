"""Class labels of any kind: names or integers, mapped to class indices 0..K-1.

A data file's labels may be strings (``"angry"``, ``"happy"``) or any integers (``3``, ``7``,
``99``). The classes are the distinct labels of the **source**, in sorted order: integers in
numeric order, strings in Unicode code-point order (Python's ``sorted``); each class is named
by its label as text (``"3"``, ``"angry"``). A label's index is its class's position in that
order. The target's labels (used for scoring only) and the labels of data given to a trained
model are mapped by name onto the source's classes; a label the source lacks is an error naming
it. With integers 0..K-1, every class present, the index of a label is the label itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from boomda.errors import DataError


def is_text(labels: np.ndarray) -> bool:
    """Whether ``labels`` hold names (strings or bytes) rather than numbers."""
    return labels.dtype.kind in "USO"


def class_names(labels: np.ndarray, what: str) -> list[str]:
    """The classes of ``labels`` (N,): their distinct values in sorted order, as text."""
    values = _plain(labels, what)
    if values.size == 0:
        raise DataError(f"{what}: no labels")
    return [_name(v) for v in np.unique(values)]


def encode_labels(labels: np.ndarray, what: str,
                  classes: Sequence[str] | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """(indices (N,) int64, class names): ``labels`` mapped onto ``classes`` (by name), or onto
    their own sorted classes when ``classes`` is None. A label outside ``classes`` is a
    :class:`DataError` naming it."""
    values = _plain(labels, what)
    names = tuple(class_names(values, what)) if classes is None else tuple(classes)
    if values.size == 0:
        return np.zeros(0, np.int64), names
    index = {name: i for i, name in enumerate(names)}
    distinct, inverse = np.unique(values, return_inverse=True)
    codes = []
    for value in distinct:
        name = _name(value)
        if name not in index:
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise DataError(f"{what}: class {name!r} is not among the source's classes "
                            f"({shown})")
        codes.append(index[name])
    return np.asarray(codes, np.int64)[inverse.reshape(-1)], names


def _plain(labels: np.ndarray, what: str) -> np.ndarray:
    """``labels`` as a 1-d array of str or int64; DataError for anything else."""
    values = np.asarray(labels)
    if values.ndim != 1:
        raise DataError(f"{what}: expected one label per sample, shape (N,), got shape "
                        f"{tuple(values.shape)}")
    kind = values.dtype.kind
    if kind == "S":
        try:
            return np.array([v.decode() for v in values], dtype=str)
        except UnicodeDecodeError:
            raise DataError(f"{what}: byte-string labels that are not UTF-8 text") from None
    if kind in "UO":
        if kind == "O" and not all(isinstance(v, str) for v in values):
            raise DataError(f"{what}: labels must be all names (strings) or all integers")
        return values.astype(str)
    if kind in "iub":
        return values.astype(np.int64)
    if kind == "f":
        if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
            raise DataError(f"{what}: labels must be integers or class names, got "
                            f"non-integer {values.dtype} values")
        return values.astype(np.int64)
    raise DataError(f"{what}: labels must be integers or class names, got {values.dtype}")


def _name(value) -> str:
    return str(value.item() if isinstance(value, np.generic) else value)
