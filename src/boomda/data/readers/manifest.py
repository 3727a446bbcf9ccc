"""A generic corpus listed in a CSV file: ``corpus: manifest`` (docs/raw.md, "Manifest"); also
the input of ``boomda predict``."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from boomda.config import read_utf8
from boomda.data.readers.base import (
    BAD_TIMES,
    MODALITIES,
    Problems,
    RawCorpus,
    RawItem,
    VideoSpans,
    check_modalities,
    config_path,
    finish_corpus,
)
from boomda.errors import ConfigError, DataError

if TYPE_CHECKING:
    from boomda.config import RawDataConfig

MANIFEST_COLUMNS = ("id", "label", "audio", "video", "text", "start", "end")


def read_manifest(
    csv_path: str | Path,
    classes: Sequence[str] | None = None,
    skip_missing: bool = False,
    modalities: Sequence[str] = MODALITIES,
    labels_required: bool = True,
    allow_empty: bool = False,
) -> RawCorpus:
    """A generic corpus listed in a CSV file with a header row.

    Columns: ``id``, ``label`` (a class name), ``audio`` (file), ``video`` (video file or frame
    folder), ``text`` (the transcript), optional ``start``/``end`` (seconds, to cut the video).
    Relative paths are relative to the CSV's folder. ``classes`` fixes the class names and their
    order; by default the sorted set of labels in the file. Only the columns of ``modalities``
    are needed. With ``labels_required=False`` (data to predict on, ``classes`` given) the
    ``label`` column may be absent or empty; such items get label -1. With ``allow_empty``
    (recordings to predict on), an empty audio, video or text cell leaves that modality absent
    (``None``) for the row; a row with every one empty is an error.
    """
    csv_path = Path(csv_path)
    mods = check_modalities(modalities)
    if not csv_path.is_file():
        raise DataError(f"manifest not found: {csv_path}")
    reader = csv.DictReader(io.StringIO(read_utf8(csv_path, DataError), newline=""))
    header = [c.strip() for c in reader.fieldnames or []]
    reader.fieldnames = header
    rows = list(enumerate(reader, start=2))
    unknown = [c for c in header if c not in MANIFEST_COLUMNS]
    if unknown:
        raise DataError(f"{csv_path}: unknown column {unknown[0]!r}; columns are "
                        f"{', '.join(MANIFEST_COLUMNS)}")
    if not labels_required and classes is None:
        raise ConfigError("read_manifest: labels_required=False needs the class names (classes)")
    for column in ("id", *(("label",) if labels_required else ()), *mods):
        if column not in header:
            raise DataError(f"{csv_path}: missing column {column!r} (header: {', '.join(header)})")
    found = sorted({(row.get("label") or "").strip() for _, row in rows} - {""})
    names = tuple(found) if classes is None else tuple(classes)
    if len(set(names)) != len(names):
        raise ConfigError(f"classes must be distinct, got {list(names)}")
    base = csv_path.parent
    problems = Problems(skip_missing, csv_path.stem)
    videos = VideoSpans()
    items: list[RawItem] = []
    seen: set[str] = set()
    for line, row in rows:
        where = f"{csv_path}:{line}"
        utt = (row["id"] or "").strip()
        label = (row.get("label") or "").strip()
        if not utt:
            raise DataError(f"{where}: empty id")
        if utt in seen:
            raise DataError(f"{where}: id {utt!r} is listed twice")
        seen.add(utt)
        if not label and not labels_required:
            label_index = -1
        elif label not in names:
            raise DataError(f"{where}: unknown label {label!r}; classes are {', '.join(names)}")
        else:
            label_index = names.index(label)
        paths: dict[str, Path | None] = {"audio": None, "video": None}
        missing = None
        for mod in ("audio", "video"):
            if mod not in mods:
                continue
            cell = (row.get(mod) or "").strip()
            if not cell and allow_empty:
                continue
            if not cell:
                raise DataError(f"{where}: empty {mod} path")
            path = Path(cell) if Path(cell).is_absolute() else base / cell
            exists = path.is_file() or (mod == "video" and path.is_dir())
            if not exists:
                missing = (f"the {mod} path {path} is a folder, not a file" if path.is_dir()
                           else f"missing {mod} file {path}")
                break
            paths[mod] = path
        if missing:
            problems.report(utt, missing)
            continue
        text = None
        if "text" in mods:
            text = (row.get("text") or "").strip()
            if not text and allow_empty:
                text = None
            elif not text:
                raise DataError(f"{where}: empty text")
        if allow_empty and all(paths[m] is None for m in ("audio", "video")) and not text:
            raise DataError(f"{where}: no recording ({', '.join(mods)} all empty); at least one "
                            f"is needed")
        start = _seconds(row.get("start"), where, "start")
        end = _seconds(row.get("end"), where, "end")
        video = paths["video"]
        if video is not None and (start is not None or end is not None):
            if video.is_dir():
                raise DataError(f"{where}: start/end cut clips out of video files, not out of "
                                f"the frame folder {video}")
            if start is not None and end is not None and end <= start:
                problems.report(utt, f"{where}: end {end} s is not after start {start} s",
                                BAD_TIMES)
                continue
            if end is not None and not videos.check(problems, utt, video, start or 0.0, end):
                continue
        items.append(RawItem(utt, label_index, paths["audio"], video, start, end, text))
    return finish_corpus(items, names, problems, csv_path.stem, mods, csv_path)


def _seconds(cell: str | None, where: str, column: str) -> float | None:
    if cell is None or not cell.strip():
        return None
    try:
        value = float(cell)
    except ValueError:
        raise DataError(f"{where}: {column} must be a number of seconds, got {cell!r}") from None
    if not np.isfinite(value) or value < 0:
        raise DataError(f"{where}: {column} must be >= 0 seconds, got {cell!r}")
    return value


def read(raw: RawDataConfig, signals: Sequence[str]) -> RawCorpus:
    """The reader of ``corpus: manifest``: :func:`read_manifest` of the CSV ``raw.path`` with
    ``raw``'s ``classes`` and ``skip_missing``."""
    return read_manifest(config_path(raw.path), raw.classes or None, raw.skip_missing, signals)
