"""Readers of raw multimodal emotion corpora: IEMOCAP, MSP-IMPROV and a generic manifest CSV.

A reader only lists utterances (:class:`RawItem`: label, file paths, clip times, transcript) and
checks that their files exist; the signals are loaded later (:mod:`boomda.data.raw`). A missing
file raises :class:`~boomda.errors.DataError` naming it, unless ``skip_missing``, which drops the
utterance and records why in :attr:`RawCorpus.skipped`. ``modalities`` says which of
``audio``, ``video``, ``text`` are looked for; the others are left ``None``.

The four classes of the paper (Sun et al., AAAI 2026, Sec. 4) are :data:`EMOTIONS`.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from boomda.errors import ConfigError, DataError

#: the four classes kept from IEMOCAP and MSP-IMPROV, in label order
EMOTIONS = ("neutral", "happy", "sad", "angry")
MODALITIES = ("audio", "video", "text")

#: IEMOCAP's categorical codes (EmoEvaluation files); only the first four are kept
IEMOCAP_CODES = {"neu": "neutral", "hap": "happy", "sad": "sad", "ang": "angry"}
IEMOCAP_OTHER_CODES = frozenset({"exc", "fru", "sur", "fea", "dis", "oth", "xxx"})

#: MSP-IMPROV's consensus letters (Evaluation.txt); O (other) and X (no agreement) are dropped
MSP_IMPROV_CODES = {"N": "neutral", "H": "happy", "S": "sad", "A": "angry"}
MSP_IMPROV_OTHER_CODES = frozenset({"O", "X"})


@dataclass(frozen=True)
class RawItem:
    """One utterance. ``label`` indexes :attr:`RawCorpus.classes`.

    ``video`` is a video file or a folder of frame images; ``start``/``end`` (seconds) cut the
    utterance out of a longer video file (IEMOCAP's per-dialog videos), ``None`` for the whole
    file. ``audio`` is always a per-utterance file. Modalities not read are ``None``.
    """

    id: str
    label: int
    audio: Path | None = None
    video: Path | None = None
    start: float | None = None
    end: float | None = None
    text: str | None = None


@dataclass(frozen=True)
class RawCorpus:
    """The utterances of a corpus, its class names and the utterances skipped (with reasons)."""

    items: tuple[RawItem, ...]
    classes: tuple[str, ...]
    skipped: tuple[str, ...] = ()
    name: str = ""
    modalities: tuple[str, ...] = field(default=MODALITIES)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    @property
    def labels(self) -> np.ndarray:
        return np.array([item.label for item in self.items], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.items)


class _Problems:
    """Raises a DataError for a missing file, or records it when skipping is on."""

    def __init__(self, skip: bool) -> None:
        self.skip = skip
        self.skipped: list[str] = []

    def report(self, item_id: str, message: str) -> None:
        if not self.skip:
            raise DataError(f"{message} (utterance {item_id}; pass skip_missing=True to skip "
                            "such utterances)")
        self.skipped.append(f"{item_id}: {message}")


def _check_modalities(modalities: Iterable[str]) -> tuple[str, ...]:
    mods = tuple(modalities)
    unknown = [m for m in mods if m not in MODALITIES]
    if unknown or not mods:
        raise ConfigError(f"modalities must be a non-empty subset of {', '.join(MODALITIES)}; "
                          f"got {list(mods)}")
    return mods


def _finish(items: list[RawItem], classes: Sequence[str], problems: _Problems, name: str,
            modalities: tuple[str, ...], source: Path) -> RawCorpus:
    if not items:
        why = f" ({len(problems.skipped)} skipped for missing files)" if problems.skipped else ""
        raise DataError(f"{name}: no utterances found under {source}{why}")
    return RawCorpus(tuple(items), tuple(classes), tuple(problems.skipped), name, modalities)


# --- IEMOCAP ------------------------------------------------------------------------------------

_IEMOCAP_LABEL = re.compile(
    r"^\[\s*(?P<start>[\d.]+)\s*-\s*(?P<end>[\d.]+)\s*\]\s+(?P<id>\S+)\s+(?P<code>\S+)"
)
_IEMOCAP_TRANSCRIPT = re.compile(r"^(?P<id>Ses\S+)\s+\[[^\]]*\]:\s*(?P<text>.*)$")


def read_iemocap(
    root: str | Path,
    sessions: Sequence[int] | None = None,
    merge_excited: bool = False,
    skip_missing: bool = False,
    modalities: Sequence[str] = MODALITIES,
) -> RawCorpus:
    """IEMOCAP (Busso et al., 2008) in its release layout, 4 classes (:data:`EMOTIONS`).

    For ``Session{n}`` and each dialog ``<d>`` (one label file per dialog)::

        Session{n}/dialog/EmoEvaluation/<d>.txt    "[6.2901 - 8.2357]\\t<utt>\\tneu\\t[...]"
        Session{n}/sentences/wav/<d>/<utt>.wav      audio, one file per utterance
        Session{n}/dialog/avi/DivX/<d>.avi          video of the dialog, cut by the label times
        Session{n}/dialog/transcriptions/<d>.txt    "<utt> [006.2901-008.2357]: Excuse me."

    Utterances labelled ``neu, hap, sad, ang`` are kept; ``exc`` (excited) becomes happy when
    ``merge_excited``; the other codes are dropped. ``sessions`` defaults to the ``Session1`` ..
    ``Session5`` folders present.
    """
    root = Path(root)
    mods = _check_modalities(modalities)
    if not root.is_dir():
        raise DataError(f"IEMOCAP root folder not found: {root}")
    if sessions is None:
        numbers = [n for n in range(1, 6) if (root / f"Session{n}").is_dir()]
        if not numbers:
            raise DataError(f"no Session1..Session5 folders in the IEMOCAP root {root}")
    else:
        numbers = list(sessions)
        for n in numbers:
            if not (root / f"Session{n}").is_dir():
                raise DataError(f"IEMOCAP session folder not found: {root / f'Session{n}'}")
    codes = dict(IEMOCAP_CODES, **({"exc": "happy"} if merge_excited else {}))
    problems = _Problems(skip_missing)
    items: list[RawItem] = []
    for n in numbers:
        session = root / f"Session{n}"
        label_dir = session / "dialog" / "EmoEvaluation"
        if not label_dir.is_dir():
            raise DataError(f"IEMOCAP label folder not found: {label_dir}")
        label_files = sorted(p for p in label_dir.glob("*.txt") if not p.name.startswith("."))
        if not label_files:
            raise DataError(f"no label files (*.txt) in {label_dir}")
        for label_file in label_files:
            dialog = label_file.stem
            transcripts = (_iemocap_transcripts(session / "dialog" / "transcriptions" /
                                                f"{dialog}.txt") if "text" in mods else {})
            video = session / "dialog" / "avi" / "DivX" / f"{dialog}.avi"
            for utt, code, start, end in _iemocap_labels(label_file):
                if code not in codes:
                    continue
                wav = session / "sentences" / "wav" / dialog / f"{utt}.wav"
                if "audio" in mods and not wav.is_file():
                    problems.report(utt, f"missing audio file {wav}")
                    continue
                if "video" in mods and not video.is_file():
                    problems.report(utt, f"missing video file {video}")
                    continue
                text = transcripts.get(utt)
                if "text" in mods and text is None:
                    where = session / "dialog" / "transcriptions" / f"{dialog}.txt"
                    problems.report(utt, f"no transcript in {where}")
                    continue
                items.append(RawItem(
                    id=utt,
                    label=EMOTIONS.index(codes[code]),
                    audio=wav if "audio" in mods else None,
                    video=video if "video" in mods else None,
                    start=start if "video" in mods else None,
                    end=end if "video" in mods else None,
                    text=text,
                ))
    return _finish(items, EMOTIONS, problems, "IEMOCAP", mods, root)


def _iemocap_labels(path: Path) -> list[tuple[str, str, float, float]]:
    out = []
    for number, line in enumerate(_read_lines(path), start=1):
        match = _IEMOCAP_LABEL.match(line)
        if not match:
            continue
        code = match["code"]
        if code not in IEMOCAP_CODES and code not in IEMOCAP_OTHER_CODES:
            raise DataError(f"{path}:{number}: unknown IEMOCAP label {code!r}; expected one of "
                            f"{', '.join(sorted({*IEMOCAP_CODES, *IEMOCAP_OTHER_CODES}))}")
        start, end = float(match["start"]), float(match["end"])
        if end <= start:
            raise DataError(f"{path}:{number}: utterance end {end} is not after its start {start}")
        out.append((match["id"], code, start, end))
    return out


def _iemocap_transcripts(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    out = {}
    for line in _read_lines(path):
        match = _IEMOCAP_TRANSCRIPT.match(line.strip())
        if match:
            out[match["id"]] = match["text"].strip()
    return out


# --- MSP-IMPROV ---------------------------------------------------------------------------------

_MSP_LABEL = re.compile(r"^UTD-IMPROV-(?P<id>[A-Za-z0-9-]+)\.avi;\s*(?P<code>[A-Za-z]);")
_MSP_ID = re.compile(r"^MSP-IMPROV-(?P<sentence>S\d\d[A-Z])-(?P<speaker>[FM](?P<session>\d\d))-"
                     r"(?P<kind>[A-Z])-[A-Z0-9]+$")


def read_msp_improv(
    root: str | Path,
    sessions: Sequence[int] | None = None,
    transcripts: str | Path | None = None,
    skip_missing: bool = False,
    modalities: Sequence[str] = MODALITIES,
) -> RawCorpus:
    """MSP-IMPROV (Busso et al., 2017), 4 classes (:data:`EMOTIONS`).

    Labels come from ``root/Evaluation.txt``, whose utterance lines read
    ``UTD-IMPROV-S01A-F01-P-FM01.avi; N; A:...; V:...; D:... ; N:...;`` (consensus letter N, H,
    S or A kept; O and X dropped). Utterance ids are ``MSP-IMPROV-S01A-F01-P-FM01``: sentence and
    scenario ``S01A``, speaker ``F01`` (session 1), recording type ``P``.

    Assumed layout (the release's, as far as public preprocessing scripts show): audio
    ``session1/S01A/P/<id>.wav`` and video ``session1/S01A/P/<id>.avi``, possibly under
    ``Audio/`` and ``Video/``. Files are therefore found by name anywhere below ``root``; a video
    may also be a folder ``<id>`` of frame images. The release has no transcripts: ``transcripts``
    is a CSV with columns ``id,text`` or a folder of ``<id>.txt`` files (by default ``<id>.txt``
    files anywhere below ``root``).
    """
    root = Path(root)
    mods = _check_modalities(modalities)
    labels_file = root / "Evaluation.txt"
    if not labels_file.is_file():
        raise DataError(f"MSP-IMPROV label file not found: {labels_file}")
    files, folders = _index_tree(root, {".wav", ".avi", ".mp4", ".txt"})
    texts: dict[str, str] = {}
    if "text" in mods:
        texts = _read_transcripts(Path(transcripts)) if transcripts is not None else {}
    wanted = None if sessions is None else {int(s) for s in sessions}
    problems = _Problems(skip_missing)
    items: list[RawItem] = []
    seen: set[str] = set()
    for number, line in enumerate(_read_lines(labels_file), start=1):
        if not line.startswith("UTD-IMPROV-"):
            continue
        match = _MSP_LABEL.match(line)
        if not match:
            raise DataError(f"{labels_file}:{number}: cannot read the utterance line {line!r}")
        utt, code = f"MSP-IMPROV-{match['id']}", match["code"]
        parts = _MSP_ID.match(utt)
        if not parts:
            raise DataError(f"{labels_file}:{number}: unexpected utterance id {utt!r}")
        if code not in MSP_IMPROV_CODES:
            if code not in MSP_IMPROV_OTHER_CODES:
                raise DataError(f"{labels_file}:{number}: unknown MSP-IMPROV label {code!r}; "
                                f"expected one of A, H, N, S, O, X")
            continue
        if utt in seen:
            raise DataError(f"{labels_file}:{number}: utterance {utt} is listed twice")
        seen.add(utt)
        session = int(parts["session"])
        if wanted is not None and session not in wanted:
            continue
        release_dir = root / f"session{session}" / parts["sentence"] / parts["kind"]
        audio = video = None
        if "audio" in mods:
            audio = _unique(files, utt, (".wav",))
            if audio is None:
                problems.report(utt, f"missing audio file {release_dir / (utt + '.wav')} "
                                     f"(searched by name under {root})")
                continue
        if "video" in mods:
            video = _unique(files, utt, (".avi", ".mp4")) or folders.get(utt)
            if video is None:
                problems.report(utt, f"missing video file {release_dir / (utt + '.avi')} "
                                     f"(searched by name under {root})")
                continue
        text = None
        if "text" in mods:
            if transcripts is None:
                found = _unique(files, utt, (".txt",))
                text = _read_text(found) if found is not None else None
            else:
                text = texts.get(utt)
            if text is None:
                where = transcripts if transcripts is not None else f"{utt}.txt under {root}"
                problems.report(utt, f"no transcript in {where}")
                continue
        items.append(RawItem(utt, EMOTIONS.index(MSP_IMPROV_CODES[code]), audio, video,
                             text=text))
    return _finish(items, EMOTIONS, problems, "MSP-IMPROV", mods, root)


def _index_tree(root: Path, suffixes: set[str]) -> tuple[dict[str, list[Path]], dict[str, Path]]:
    """Files below ``root`` by stem (with the wanted suffixes) and folders by name."""
    files: dict[str, list[Path]] = {}
    folders: dict[str, Path] = {}
    for here, dirs, names in os.walk(root):
        dirs.sort()
        for d in dirs:
            folders.setdefault(d, Path(here) / d)
        for name in sorted(names):
            path = Path(here) / name
            if path.suffix.lower() in suffixes and not name.startswith("."):
                files.setdefault(path.stem, []).append(path)
    return files, folders


def _unique(files: dict[str, list[Path]], stem: str, suffixes: tuple[str, ...]) -> Path | None:
    found = [p for p in files.get(stem, []) if p.suffix.lower() in suffixes]
    if len(found) > 1:
        raise DataError(f"several files for {stem}: {', '.join(map(str, found))}; keep one")
    return found[0] if found else None


def _read_transcripts(source: Path) -> dict[str, str]:
    if source.is_dir():
        return {p.stem: _read_text(p) for p in sorted(source.rglob("*.txt"))}
    if not source.is_file():
        raise DataError(f"transcripts not found: {source}")
    with source.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"id", "text"} <= set(reader.fieldnames):
            raise DataError(f"{source}: a transcript CSV needs the columns id,text; "
                            f"got {reader.fieldnames}")
        return {row["id"].strip(): (row["text"] or "").strip() for row in reader}


def _read_text(path: Path) -> str:
    try:
        return " ".join(path.read_text(encoding="utf-8", errors="replace").split())
    except OSError as error:
        raise DataError(f"cannot read transcript {path}: {error}") from None


# --- manifest -----------------------------------------------------------------------------------

MANIFEST_COLUMNS = ("id", "label", "audio", "video", "text", "start", "end")


def read_manifest(
    csv_path: str | Path,
    classes: Sequence[str] | None = None,
    skip_missing: bool = False,
    modalities: Sequence[str] = MODALITIES,
    labels_required: bool = True,
) -> RawCorpus:
    """A generic corpus listed in a CSV file with a header row.

    Columns: ``id``, ``label`` (a class name), ``audio`` (file), ``video`` (video file or frame
    folder), ``text`` (the transcript), optional ``start``/``end`` (seconds, to cut the video).
    Relative paths are relative to the CSV's folder. ``classes`` fixes the class names and their
    order; by default the sorted set of labels in the file. Only the columns of ``modalities``
    are needed. With ``labels_required=False`` (data to predict on, ``classes`` given) the
    ``label`` column may be absent or empty; such items get label -1.
    """
    csv_path = Path(csv_path)
    mods = _check_modalities(modalities)
    if not csv_path.is_file():
        raise DataError(f"manifest not found: {csv_path}")
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
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
    problems = _Problems(skip_missing)
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
            if not cell:
                raise DataError(f"{where}: empty {mod} path")
            path = Path(cell) if Path(cell).is_absolute() else base / cell
            exists = path.is_file() or (mod == "video" and path.is_dir())
            if not exists:
                missing = f"missing {mod} file {path}"
                break
            paths[mod] = path
        if missing:
            problems.report(utt, missing)
            continue
        text = None
        if "text" in mods:
            text = (row.get("text") or "").strip()
            if not text:
                raise DataError(f"{where}: empty text")
        start = _seconds(row.get("start"), where, "start")
        end = _seconds(row.get("end"), where, "end")
        if start is not None and end is not None and end <= start:
            raise DataError(f"{where}: end {end} is not after start {start}")
        items.append(RawItem(utt, label_index, paths["audio"], paths["video"], start, end, text))
    return _finish(items, names, problems, csv_path.stem, mods, csv_path)


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


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error}") from None
