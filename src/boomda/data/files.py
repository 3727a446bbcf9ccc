"""Feature data from files: one labelled data set (the paper's split-and-shift protocol), or a
user's own pair of domains in two files.

A data file is a ``.npz`` holding one (N, D_m) array per modality and, optionally, ``labels``
(N,): class names (strings) or integers of any values (:mod:`boomda.data.labels`). Where a data
file is expected, ``heart:SITE`` names one hospital of the UCI Heart Disease data instead
(:mod:`boomda.data.heart`), so ``--source heart:cleveland --target heart:hungary`` is a real
pair read from an installed package.
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from boomda.data.container import MultimodalData
from boomda.data.heart import is_heart_domain
from boomda.data.pair import DomainPair
from boomda.data.shifts import ShiftSpec, parse_shift, shift_to_str
from boomda.errors import DataError

#: the array of a data file that holds the labels
LABELS = "labels"

#: fewest samples the split-and-shift protocol accepts (two halves of at least 2 samples each,
#: a covariance needs 2)
MIN_SAMPLES = 4


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a ``.npz`` file, unchecked; DataError when it cannot be read."""
    with _open_npz(path) as npz:
        try:
            return {k: npz[k] for k in npz.files}
        except ValueError:  # numpy reads an object array only with pickles allowed
            raise DataError(f"{path}: holds Python objects (pickled arrays); save plain numeric "
                            f"arrays, and labels as strings or integers") from None
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: cannot read as .npz ({str(exc) or type(exc).__name__})") \
                from None


def modality_names(path: str | Path, what: str) -> list[str]:
    """The modality arrays a data file holds (every array but ``labels``), read without loading
    them; DataError naming ``what`` when the file cannot be read."""
    if is_heart_domain(path):
        from boomda.data.heart import VIEWS

        return list(VIEWS)
    try:
        with _open_npz(path) as npz:
            return [k for k in npz.files if k != LABELS]
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from None


def _open_npz(path: str | Path) -> np.lib.npyio.NpzFile:
    """``path`` opened as a ``.npz`` archive (no pickles); DataError saying why it cannot be."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file" + ("" if path.suffix == ".npz" else
                                                    " (expected a .npz file of arrays)"))
    try:
        npz = np.load(path, allow_pickle=False)
    except ValueError:
        raise DataError(f"{path}: not a .npz archive of arrays (save one with np.savez)") \
            from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot read as .npz ({str(exc) or type(exc).__name__})") \
            from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: holds one array, not a .npz archive of named arrays (save one "
                        f"with np.savez)")
    return npz


def load_dataset(dataset: str, labels_required: bool = True) -> MultimodalData:
    """``mfeat`` (embedded), ``htad`` (read from the ``multiviewstacking`` package, see
    :mod:`boomda.data.htad`) or a ``.npz`` file with one array per modality and ``labels``
    (optional when ``labels_required`` is False)."""
    if dataset == "mfeat":
        from boomda.data.mfeat import load_multiple_features

        return load_multiple_features()
    if dataset == "htad":
        from boomda.data.htad import load_htad

        return load_htad()
    if not Path(dataset).is_file():
        raise DataError(f"dataset {dataset!r}: no such file (use 'mfeat' for the embedded data "
                        f"or the path of a .npz file)")
    return read_data_file(dataset, labels_required, "dataset")


def read_data_file(path: str | Path, labels_required: bool, role: str,
                   classes: Sequence[str] | None = None) -> MultimodalData:
    """The modalities and labels of the ``.npz`` file ``path`` (``role`` names it in errors:
    ``source``, ``target``, ``dataset``). Labels are encoded onto ``classes`` when given (the
    source's), else onto their own sorted classes. ``heart:SITE`` reads that site of the Heart
    Disease data (:func:`boomda.data.heart.load_heart`)."""
    if is_heart_domain(path):
        return _heart_domain(str(path), classes)
    path = Path(path)
    arrays = read_npz(path)
    if LABELS not in arrays and labels_required:
        raise DataError(f"{path} ({role}): has no '{LABELS}' array (found "
                        f"{', '.join(arrays) or 'no array'}); the {role} needs one label per "
                        f"sample")
    labels = arrays.pop(LABELS, None)
    if not arrays:
        raise DataError(f"{path} ({role}): holds no modality array besides '{LABELS}'")
    for key, value in arrays.items():
        if value.ndim != 2:
            raise DataError(f"{path}[{key!r}]: expected a (samples, features) array, got shape "
                            f"{value.shape}")
    if labels is not None:
        from boomda.data.labels import encode_labels

        labels, classes = encode_labels(labels, f"{path}[{LABELS!r}]", classes)
    return MultimodalData(arrays, labels, name=str(path), classes=classes)


def _heart_domain(spec: str, classes: Sequence[str] | None) -> MultimodalData:
    """The site ``spec`` (``heart:SITE``), its labels mapped onto ``classes`` when given."""
    from boomda.data.heart import CLASSES, PREFIX, load_heart
    from boomda.data.labels import encode_labels

    data = load_heart(spec[len(PREFIX):])
    if classes is None:
        return data
    labels, classes = encode_labels(np.asarray(CLASSES)[data.labels], f"{spec}[{LABELS!r}]",
                                    classes)
    return MultimodalData(data.views, labels, name=spec, classes=classes)


def protocol_pair(data: MultimodalData, modalities: Sequence[str], shifts: Mapping[str, ShiftSpec],
                  *, seed: int, holdout: float, name: str) -> DomainPair:
    """The paper's split-and-shift protocol on one labelled data set (``name`` in errors)."""
    unknown = [m for m in shifts if m not in data.views]
    if unknown:
        raise DataError(f"data.shifts: unknown modality {unknown[0]!r}; available: "
                        f"{', '.join(data.modalities)}")
    if len(data) < MIN_SAMPLES:
        raise DataError(f"dataset {name!r}: {len(data)} samples; the protocol splits them into "
                        f"a source and a target half and needs at least {MIN_SAMPLES}")
    modalities = list(modalities) or data.modalities
    if len(modalities) < 2:
        raise DataError(f"data.modalities: a multimodal model needs at least 2 modalities, got "
                        f"{list(modalities)}")
    data = data.select(modalities)
    shifts = {m: s for m, s in shifts.items() if m in modalities}
    warn_rare_classes(data, name)
    pair = DomainPair.from_protocol(data, shifts, seed=seed, holdout=holdout)
    pair.info["dataset"] = name
    return pair


def warn_rare_classes(data: MultimodalData, name: str) -> None:
    """Warn of classes with fewer than 2 labelled samples (a stray label, such as 99 among
    0..3, makes a class of its own)."""
    if data.labels is None:
        return
    counts = np.bincount(data.labels, minlength=len(data.classes or ()) or 1)
    rare = np.flatnonzero(counts < 2)
    if rare.size:
        classes = data.classes or tuple(str(c) for c in range(len(counts)))
        shown = ", ".join(f"{classes[c]!r} ({counts[c]})" for c in rare[:5])
        warnings.warn(f"{name}: class(es) with fewer than 2 samples: {shown}; a stray label? "
                      f"(every distinct label is a class)", stacklevel=3)


def no_shift_warning(pair: DomainPair) -> str | None:
    """The warning a protocol pair without any target shift deserves (None otherwise)."""
    if "dataset" not in pair.info or any(s != "none" for s in pair.info["shifts"].values()):
        return None
    return (f"no target shift on {', '.join(pair.modalities)}: source and target are two "
            f"random halves of {pair.info['dataset']}, the same distribution; give a shift per "
            f"modality (--shift MODALITY=SPEC) or a real target (--source/--target)")


def file_pair(source: str | Path, target: str | Path, modalities: Sequence[str] = (), *,
              holdout: float = 0.2, seed: int = 0,
              shifts: Mapping[str, ShiftSpec] | None = None) -> DomainPair:
    """A user's own pair of domains: the labelled ``source`` file and the ``target`` file
    (labels optional, for scoring only). ``modalities``: which to use (default: every array of
    the files, which must then hold the same ones). Standardisation statistics come from the
    source only (the network's); ``holdout``: the stratified fraction of the source kept out of
    training (drawn with ``seed``); ``shifts``: optional extra corruption of the target."""
    src = read_data_file(source, True, "source")
    warn_rare_classes(src, str(source))
    tgt = read_data_file(target, False, "target", classes=src.classes)
    modalities = list(modalities) or _common_modalities(src, tgt, source, target)
    for m in modalities:
        for data, path in ((src, source), (tgt, target)):
            if m not in data.views:
                raise DataError(f"{path}: has no modality {m!r} (it holds "
                                f"{', '.join(data.modalities)})")
    if len(modalities) < 2:
        raise DataError(f"modalities: a multimodal model needs at least 2 modalities, got "
                        f"{modalities}")
    src, tgt = src.select(modalities), tgt.select(modalities)
    for m in modalities:
        if src.dims[m] != tgt.dims[m]:
            raise DataError(f"{target}[{m!r}]: {tgt.dims[m]} features, but {source}[{m!r}] has "
                            f"{src.dims[m]}; a modality needs the same features in both domains")
    parsed = {}
    for m, spec in (shifts or {}).items():
        if m not in modalities:
            raise DataError(f"data.shifts: modality {m!r} is not among {', '.join(modalities)}")
        parsed[m] = parse_shift(spec)
    if parsed:
        rng = np.random.default_rng(seed + 1)
        tgt = MultimodalData({m: parsed[m].apply(x, rng) if m in parsed else x
                              for m, x in tgt.views.items()}, tgt.labels, name=str(target),
                             classes=tgt.classes)
    info = {"source": str(source), "target": str(target), "target_labels": tgt.labels is not None,
            "shifts": {m: shift_to_str(s) for m, s in parsed.items()}}
    return DomainPair.from_arrays(src, tgt, holdout=holdout, seed=seed, info=info)


def _common_modalities(src: MultimodalData, tgt: MultimodalData, source, target) -> list[str]:
    """Every modality of the two files, which must hold the same ones."""
    only_source = [m for m in src.modalities if m not in tgt.views]
    only_target = [m for m in tgt.modalities if m not in src.views]
    if not only_source and not only_target:
        return src.modalities
    common = [m for m in src.modalities if m in tgt.views]
    if not common:
        raise DataError(f"{source} and {target} have no modality in common ({source}: "
                        f"{', '.join(src.modalities)}; {target}: {', '.join(tgt.modalities)})")
    missing, holder, lacking = ((only_source[0], source, target) if only_source
                                else (only_target[0], target, source))
    raise DataError(f"{lacking}: has no modality {missing!r}, which {holder} has; choose the "
                    f"common modalities with --modalities ({','.join(common)})")
