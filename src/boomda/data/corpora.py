"""Readers of raw multimodal emotion corpora: IEMOCAP, MSP-IMPROV and a generic manifest CSV.

A reader only lists utterances (:class:`RawItem`: label, file paths, clip times, transcript,
which half of a split-screen frame shows the speaker) and checks what can be checked without
decoding: that the files exist and, for clips cut out of a longer video, that the video lasts
until the clip's end (from the container's header). The signals are loaded later
(:mod:`boomda.data.raw`).

An utterance with such a problem raises :class:`~boomda.errors.DataError` naming the file, unless
``skip_missing``, which drops it and records why in :attr:`RawCorpus.skipped` (counted by reason
in :attr:`RawCorpus.skip_counts`). Utterances whose video ends early are all collected first and
named in one error, with their count. Skipping happens here, when the corpus is read, so the
stratified split that follows is made over the utterances actually used. ``modalities`` says
which of ``audio``, ``video``, ``text`` are looked for; the others are left ``None``.

The four classes of the paper (Sun et al., AAAI 2026, Sec. 4) are :data:`EMOTIONS`.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from boomda.errors import ConfigError, DataError

#: the four classes kept from IEMOCAP and MSP-IMPROV, in label order
EMOTIONS = ("neutral", "happy", "sad", "angry")
MODALITIES = ("audio", "video", "text")
#: ``video_crop`` values: the speaker's half of IEMOCAP's split-screen frames, or whole frames
VIDEO_CROPS = ("speaker", "full")

#: IEMOCAP's categorical codes (EmoEvaluation files); only the first four are kept
IEMOCAP_CODES = {"neu": "neutral", "hap": "happy", "sad": "sad", "ang": "angry"}
IEMOCAP_OTHER_CODES = frozenset({"exc", "fru", "sur", "fea", "dis", "oth", "xxx"})

#: MSP-IMPROV's consensus letters (Evaluation.txt); O (other) and X (no agreement) are dropped
MSP_IMPROV_CODES = {"N": "neutral", "H": "happy", "S": "sad", "A": "angry"}
MSP_IMPROV_OTHER_CODES = frozenset({"O", "X"})

#: reasons an utterance is skipped (the keys of :attr:`RawCorpus.skip_counts`)
MISSING_FILE = "missing file"
UNREADABLE_VIDEO = "unreadable video"
UNCOVERED = "video ends before the utterance"
BAD_TIMES = "clip end not after its start"
SEVERAL_FILES = "several files"
NO_TRANSCRIPT = "no transcript"


@dataclass(frozen=True)
class RawItem:
    """One utterance. ``label`` indexes :attr:`RawCorpus.classes`.

    ``video`` is a video file or a folder of frame images; ``start``/``end`` (seconds) cut the
    utterance out of a longer video file (IEMOCAP's per-dialog videos), ``None`` for the whole
    file. ``crop`` (``"left"``/``"right"``) is the half of each frame that shows the speaker
    (IEMOCAP's split-screen dialog videos), ``None`` for whole frames. ``audio`` is always a
    per-utterance file. Modalities not read are ``None``.
    """

    id: str
    label: int
    audio: Path | None = None
    video: Path | None = None
    start: float | None = None
    end: float | None = None
    text: str | None = None
    crop: str | None = None


@dataclass(frozen=True)
class RawCorpus:
    """The utterances of a corpus, its class names and the utterances skipped (with reasons)."""

    items: tuple[RawItem, ...]
    classes: tuple[str, ...]
    skipped: tuple[str, ...] = ()
    name: str = ""
    modalities: tuple[str, ...] = field(default=MODALITIES)
    #: reason -> number of utterances skipped for it (the reasons are this module's constants)
    skip_counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    @property
    def labels(self) -> np.ndarray:
        return np.array([item.label for item in self.items], dtype=np.int64)

    @property
    def class_counts(self) -> dict[str, int]:
        """Class name -> number of utterances, in label order."""
        counts = np.bincount(self.labels[self.labels >= 0], minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, counts, strict=False)}

    def skip_summary(self, examples: int = 3) -> str:
        """One line: how many utterances were skipped, by reason, with a few of their ids."""
        total = len(self.items) + self.n_skipped
        reasons = ", ".join(f"{reason}: {n}" for reason, n in self.skip_counts.items())
        ids = [entry.split(":", 1)[0] for entry in self.skipped]
        shown = ", ".join(ids[:examples]) + (", ..." if len(ids) > examples else "")
        return (f"{self.name}: {self.n_skipped} of {total} labelled utterances skipped when "
                f"reading the corpus, before the split ({reasons}): {shown}")

    def __len__(self) -> int:
        return len(self.items)


class _Problems:
    """Raises a DataError for an unusable utterance, or records it when skipping is on.

    :meth:`report` raises at once; :meth:`collect` gathers the problems of one kind (videos that
    end early) so that :meth:`finish` names them all, with their count, in one error.
    """

    def __init__(self, skip: bool, name: str) -> None:
        self.skip = skip
        self.name = name
        self.skipped: list[str] = []
        self.counts: Counter[str] = Counter()
        self.collected: list[tuple[str, str]] = []

    def report(self, item_id: str, message: str, reason: str = MISSING_FILE) -> None:
        if not self.skip:
            raise DataError(f"{message} (utterance {item_id}; pass skip_missing=True to skip "
                            "such utterances)")
        self._skip(item_id, message, reason)

    def collect(self, item_id: str, message: str, reason: str) -> None:
        if self.skip:
            self._skip(item_id, message, reason)
        else:
            self.collected.append((item_id, message))

    def _skip(self, item_id: str, message: str, reason: str) -> None:
        self.skipped.append(f"{item_id}: {message}")
        self.counts[reason] += 1

    def finish(self) -> None:
        if self.collected:
            n = len(self.collected)
            shown = "; ".join(f"{utt}: {message}" for utt, message in self.collected[:3])
            more = f"; and {n - 3} more" if n > 3 else ""
            what = "utterance ends" if n == 1 else "utterances end"
            raise DataError(f"{self.name}: {n} {what} after the video that should show "
                            f"{'it' if n == 1 else 'them'} "
                            f"({shown}{more}); pass skip_missing=True (raw.skip_missing: true) "
                            f"to skip such utterances before the split")


class _Videos:
    """Each video file's end and frame period, read once from its header."""

    def __init__(self) -> None:
        self._spans: dict[Path, tuple[float, float] | str] = {}

    def check(self, problems: _Problems, utt: str, path: Path, start: float, end: float) -> bool:
        """Whether ``path`` covers the clip ``[start, end]`` of ``utt``
        (:func:`~boomda.data.raw.clip_covered`); if not, the problem goes to ``problems``: an
        unreadable video at once, an uncovered clip collected with the others."""
        from boomda.data.raw import clip_covered, video_span

        if path not in self._spans:
            try:
                self._spans[path] = video_span(path)
            except DataError as error:
                self._spans[path] = str(error)
        span = self._spans[path]
        if isinstance(span, str):
            problems.report(utt, span, UNREADABLE_VIDEO)
            return False
        video_end, period = span
        if clip_covered(video_end, period, end):
            return True
        problems.collect(utt, f"video {path.name} ends at {video_end:.2f} s, before the "
                              f"utterance ({start:.2f}-{end:.2f} s)", UNCOVERED)
        return False


def _check_modalities(modalities: Iterable[str]) -> tuple[str, ...]:
    mods = tuple(modalities)
    unknown = [m for m in mods if m not in MODALITIES]
    if unknown or not mods:
        raise ConfigError(f"modalities must be a non-empty subset of {', '.join(MODALITIES)}; "
                          f"got {list(mods)}")
    return mods


def _finish(items: list[RawItem], classes: Sequence[str], problems: _Problems, name: str,
            modalities: tuple[str, ...], source: Path) -> RawCorpus:
    problems.finish()
    if not items:
        why = ""
        if problems.skipped:
            why = f" ({len(problems.skipped)} skipped; " + ", ".join(
                f"{reason}: {n}" for reason, n in problems.counts.items()) + ")"
        raise DataError(f"{name}: no utterances found under {source}{why}")
    return RawCorpus(tuple(items), tuple(classes), tuple(problems.skipped), name, modalities,
                     dict(problems.counts))


# --- IEMOCAP ------------------------------------------------------------------------------------

_IEMOCAP_LABEL = re.compile(
    r"^\[\s*(?P<start>[\d.]+)\s*-\s*(?P<end>[\d.]+)\s*\]\s+(?P<id>\S+)\s+(?P<code>\S+)"
)
_IEMOCAP_TRANSCRIPT = re.compile(r"^(?P<id>Ses\S+)\s+\[[^\]]*\]:\s*(?P<text>.*)$")
_IEMOCAP_ID = re.compile(r"^Ses\d\d(?P<dialog>[FM])_.*_(?P<speaker>[FM])[^_]*$")


def iemocap_speaker_half(utterance: str) -> str:
    """``"left"`` or ``"right"``: the half of its dialog's video frames that shows an utterance's
    speaker.

    IEMOCAP's dialog videos show the two actors side by side. The dialog's letter
    (``Ses01F_impro04``) names the actor who wears the motion-capture markers (the release's
    README); that actor is on the left half, the other on the right, as public IEMOCAP
    preprocessing scripts crop the frames. The utterance's letter (``..._M036``) names the
    speaker: ``Ses01F_impro04_M036`` is the male actor, on the right.
    """
    match = _IEMOCAP_ID.match(utterance)
    if not match:
        raise DataError(f"cannot tell which half of the video shows the speaker of {utterance!r} "
                        f"(IEMOCAP ids look like Ses01F_impro04_M036); set video_crop: full to "
                        f"use whole frames")
    return "left" if match["speaker"] == match["dialog"] else "right"


def read_iemocap(
    root: str | Path,
    sessions: Sequence[int] | None = None,
    merge_excited: bool = False,
    skip_missing: bool = False,
    modalities: Sequence[str] = MODALITIES,
    video_crop: str = "speaker",
) -> RawCorpus:
    """IEMOCAP (Busso et al., 2008) in its release layout, 4 classes (:data:`EMOTIONS`).

    For ``Session{n}`` and each dialog ``<d>`` (one label file per dialog)::

        Session{n}/dialog/EmoEvaluation/<d>.txt    "[6.2901 - 8.2357]\\t<utt>\\tneu\\t[...]"
        Session{n}/sentences/wav/<d>/<utt>.wav      audio, one file per utterance
        Session{n}/dialog/avi/DivX/<d>.avi          video of the dialog, cut by the label times
        Session{n}/dialog/transcriptions/<d>.txt    "<utt> [006.2901-008.2357]: Excuse me."

    Utterances labelled ``neu, hap, sad, ang`` are kept (the paper's four classes); with
    ``merge_excited``, ``exc`` (excited) counts as happy too (the protocol most published IEMOCAP
    work uses); the other codes are dropped. ``sessions`` defaults to the ``Session1`` ..
    ``Session5`` folders present.

    With the video modality: each dialog video's duration is read from its header, and an
    utterance that ends after its video does (by more than one frame) is not covered, even in
    part; a label line whose end is not after its start cannot be cut out. Both are errors, or
    skipped with ``skip_missing``. The dialog videos are split-screen; ``video_crop="speaker"``
    keeps the speaker's half of each frame (:func:`iemocap_speaker_half`), ``"full"`` the whole
    frame. Files are read as UTF-8 (a byte-order mark is ignored).
    """
    root = Path(root)
    mods = _check_modalities(modalities)
    if video_crop not in VIDEO_CROPS:
        raise ConfigError(f"video_crop must be one of {', '.join(VIDEO_CROPS)}, got "
                          f"{video_crop!r}")
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
    problems = _Problems(skip_missing, "IEMOCAP")
    videos = _Videos()
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
            for utt, code, start, end, where in _iemocap_labels(label_file):
                if code not in codes:
                    continue
                wav = session / "sentences" / "wav" / dialog / f"{utt}.wav"
                if "audio" in mods and not wav.is_file():
                    problems.report(utt, f"missing audio file {wav}")
                    continue
                crop = None
                if "video" in mods:
                    if end <= start:
                        problems.report(utt, f"{where}: utterance end {end} s is not after its "
                                             f"start {start} s, so no clip can be cut",
                                        BAD_TIMES)
                        continue
                    if not video.is_file():
                        problems.report(utt, f"missing video file {video}")
                        continue
                    if not videos.check(problems, utt, video, start, end):
                        continue
                    if video_crop == "speaker":
                        crop = iemocap_speaker_half(utt)
                text = transcripts.get(utt)
                if "text" in mods and text is None:
                    where_text = session / "dialog" / "transcriptions" / f"{dialog}.txt"
                    problems.report(utt, f"no transcript in {where_text}", NO_TRANSCRIPT)
                    continue
                items.append(RawItem(
                    id=utt,
                    label=EMOTIONS.index(codes[code]),
                    audio=wav if "audio" in mods else None,
                    video=video if "video" in mods else None,
                    start=start if "video" in mods else None,
                    end=end if "video" in mods else None,
                    text=text,
                    crop=crop,
                ))
    return _finish(items, EMOTIONS, problems, "IEMOCAP", mods, root)


def _iemocap_labels(path: Path) -> list[tuple[str, str, float, float, str]]:
    """(utterance, code, start, end, "file:line") of each label line."""
    out = []
    for number, line in enumerate(_read_lines(path), start=1):
        match = _IEMOCAP_LABEL.match(line)
        if not match:
            continue
        code = match["code"]
        if code not in IEMOCAP_CODES and code not in IEMOCAP_OTHER_CODES:
            raise DataError(f"{path}:{number}: unknown IEMOCAP label {code!r}; expected one of "
                            f"{', '.join(sorted({*IEMOCAP_CODES, *IEMOCAP_OTHER_CODES}))}")
        try:
            start, end = float(match["start"]), float(match["end"])
        except ValueError:
            raise DataError(f"{path}:{number}: cannot read the times of {line.strip()!r}") from None
        out.append((match["id"], code, start, end, f"{path}:{number}"))
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
#: the top folder of each kind of file in the release (``Audio/session1/S01A/P/<id>.wav``)
_MSP_TOP = {".wav": "Audio", ".avi": "Video", ".mp4": "Video"}
_MSP_TRANSCRIPTS = "All_human_transcriptions"


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
    S or A kept; O and X dropped; a UTF-8 byte-order mark at the start is ignored). Utterance
    ids are ``MSP-IMPROV-S01A-F01-P-FM01``: sentence and scenario ``S01A``, speaker ``F01``
    (session 1), recording type ``P``.

    The release layout, as public preprocessing scripts use it::

        Evaluation.txt
        Audio/session1/S01A/P/MSP-IMPROV-S01A-F01-P-FM01.wav
        Video/session1/S01A/P/MSP-IMPROV-S01A-F01-P-FM01.avi
        Human_transcriptions/All_human_transcriptions/MSP-IMPROV-S01A-F01-P-FM01.txt

    Files are found by name anywhere below ``root``, so other arrangements (no ``Audio/`` level,
    transcripts in session subfolders, a video as a folder ``<id>`` of frame images) work too.
    When one name is found more than once (a resampled copy of the audio, say), the copy in the
    release layout (``[Audio|Video/]session<n>/<sentence>/<type>/``; transcripts: under
    ``All_human_transcriptions``) is used; transcripts with the same words are one transcript;
    otherwise the utterance cannot be read unambiguously: an error naming the files, or skipped
    with ``skip_missing``. ``transcripts`` replaces the release's transcriptions by a CSV with
    columns ``id,text`` or a folder of ``<id>.txt`` files.
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
    problems = _Problems(skip_missing, "MSP-IMPROV")
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
        layout = (f"session{session}", parts["sentence"], parts["kind"])
        release_dir = root / "Audio" / Path(*layout)
        audio = video = None
        if "audio" in mods:
            audio, why = _pick(files, utt, (".wav",), _msp_in_layout(root, layout))
            if why:
                problems.report(utt, why, SEVERAL_FILES)
                continue
            if audio is None:
                problems.report(utt, f"missing audio file {release_dir / (utt + '.wav')} "
                                     f"(searched by name under {root})")
                continue
        if "video" in mods:
            video, why = _pick(files, utt, (".avi", ".mp4"), _msp_in_layout(root, layout))
            if why:
                problems.report(utt, why, SEVERAL_FILES)
                continue
            video = video or folders.get(utt)
            if video is None:
                problems.report(utt, f"missing video file {root / 'Video' / Path(*layout)}/"
                                     f"{utt}.avi (searched by name under {root})")
                continue
        text = None
        if "text" in mods:
            if transcripts is None:
                found, why = _pick(files, utt, (".txt",),
                                   lambda path: _MSP_TRANSCRIPTS in path.parts, same_text=True)
                if why:
                    problems.report(utt, why, SEVERAL_FILES)
                    continue
                text = _read_text(found) if found is not None else None
            else:
                text = texts.get(utt)
            if text is None:
                where = (transcripts if transcripts is not None else
                         f"{utt}.txt under {root} (the release's Human_transcriptions)")
                problems.report(utt, f"no transcript in {where}", NO_TRANSCRIPT)
                continue
        items.append(RawItem(utt, EMOTIONS.index(MSP_IMPROV_CODES[code]), audio, video,
                             text=text))
    return _finish(items, EMOTIONS, problems, "MSP-IMPROV", mods, root)


def _msp_in_layout(root: Path, layout: tuple[str, str, str]) -> Callable[[Path], bool]:
    """Whether a file lies where the release puts it: ``[Audio|Video/]session<n>/<s>/<t>/``."""

    def check(path: Path) -> bool:
        folder = path.parent.relative_to(root).parts
        top = _MSP_TOP.get(path.suffix.lower())
        return folder == layout or (top is not None and folder == (top, *layout))

    return check


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


def _pick(files: dict[str, list[Path]], stem: str, suffixes: tuple[str, ...],
          preferred: Callable[[Path], bool],
          same_text: bool = False) -> tuple[Path | None, str | None]:
    """The one file named ``stem`` (with one of ``suffixes``): ``(path, None)``, ``(None, None)``
    when there is none, ``(None, why)`` when several copies leave no way to choose. Among several,
    the only ``preferred`` one wins; with ``same_text``, copies holding the same words are one."""
    found = sorted(p for p in files.get(stem, []) if p.suffix.lower() in suffixes)
    if len(found) <= 1:
        return (found[0] if found else None), None
    chosen = [p for p in found if preferred(p)]
    if len(chosen) == 1:
        return chosen[0], None
    if same_text and len({_read_text(p) for p in found}) == 1:
        return found[0], None
    return None, (f"several files for {stem}: {', '.join(map(str, found))}; keep one, or move "
                  f"the others out of the corpus folder")


def _read_transcripts(source: Path) -> dict[str, str]:
    if source.is_dir():
        return {p.stem: _read_text(p) for p in sorted(source.rglob("*.txt"))}
    if not source.is_file():
        raise DataError(f"transcripts not found: {source}")
    with source.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"id", "text"} <= set(reader.fieldnames):
            raise DataError(f"{source}: a transcript CSV needs the columns id,text; "
                            f"got {reader.fieldnames}")
        return {row["id"].strip(): (row["text"] or "").strip() for row in reader}


def _read_text(path: Path) -> str:
    try:
        return " ".join(path.read_text(encoding="utf-8-sig", errors="replace").split())
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
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
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
    problems = _Problems(skip_missing, csv_path.stem)
    videos = _Videos()
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
    """The lines of a text file read as UTF-8; a byte-order mark at its start is dropped."""
    try:
        return path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error}") from None
