"""What the corpus readers (:mod:`boomda.data.readers`) share.

A reader only lists utterances (:class:`RawItem`: label, file paths, clip times, transcript,
which half of a split-screen frame shows the speaker) and checks what can be checked without
decoding: that the files exist and, for clips cut out of a longer video, that the video lasts
until the clip's end (from the container's header, :class:`VideoSpans`). The signals are loaded
later (:mod:`boomda.data.signals`).

An utterance with such a problem raises :class:`~boomda.errors.DataError` naming the file, unless
``skip_missing``, which drops it and records why in :attr:`RawCorpus.skipped` (counted by reason
in :attr:`RawCorpus.skip_counts`); :class:`Problems` does both. Utterances whose video ends early
are all collected first and named in one error, with their count. Skipping happens here, when the
corpus is read, so the stratified split that follows is made over the utterances actually used.
``modalities`` says which of ``audio``, ``video``, ``text`` are looked for; the others are left
``None``.

Also here: finding files by name below a folder (:func:`index_tree`, :func:`pick_file`) and
reading text as UTF-8 with a byte-order mark dropped (:func:`read_lines`, :func:`read_text`,
:func:`read_transcripts`).

The four classes of the paper (Sun et al., AAAI 2026, Sec. 4) are :data:`EMOTIONS`.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from boomda.data.signals import clip_covered, video_span
from boomda.errors import ConfigError, DataError

if TYPE_CHECKING:
    from boomda.config import RawDataConfig

#: the four classes kept from IEMOCAP and MSP-IMPROV, in label order
EMOTIONS = ("neutral", "happy", "sad", "angry")
MODALITIES = ("audio", "video", "text")

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
    per-utterance file. Modalities not read are ``None``. ``corpus`` identifies the corpus the
    utterance was read from (its reader's name and resolved path, set by
    :func:`boomda.data.raw_pair.read_corpus`); it enters the frozen-state cache key, so two
    corpora never share an entry.
    """

    id: str
    label: int
    audio: Path | None = None
    video: Path | None = None
    start: float | None = None
    end: float | None = None
    text: str | None = None
    crop: str | None = None
    corpus: str = ""

    def file(self, signal: str) -> Path:
        """The ``audio`` or ``video`` file of the utterance; a :class:`DataError` naming it
        when its reader did not read that modality."""
        path = getattr(self, signal)
        if path is None:
            raise DataError(f"utterance {self.id!r}: no {signal} file (the corpus was read "
                            f"without that modality)")
        return path


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


class Problems:
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
            raise DataError(f"{message} (utterance {item_id}; to skip such utterances set "
                            f"raw.skip_missing: true in the run's config, or remove them from the "
                            f"{self.name} corpus)")
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
                            f"({shown}{more}); set raw.skip_missing: true in the run's config "
                            f"to skip such utterances before the split")


class VideoSpans:
    """Each video file's end and frame period, read once from its header."""

    def __init__(self) -> None:
        self._spans: dict[Path, tuple[float, float] | str] = {}

    def check(self, problems: Problems, utt: str, path: Path, start: float, end: float) -> bool:
        """Whether ``path`` covers the clip ``[start, end]`` of ``utt``
        (:func:`~boomda.data.signals.clip_covered`); if not, the problem goes to ``problems``:
        an unreadable video at once, an uncovered clip collected with the others."""
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


def check_modalities(modalities: Iterable[str]) -> tuple[str, ...]:
    """``modalities`` as a tuple, refused unless a non-empty subset of :data:`MODALITIES`."""
    mods = tuple(modalities)
    unknown = [m for m in mods if m not in MODALITIES]
    if unknown or not mods:
        raise ConfigError(f"modalities must be a non-empty subset of {', '.join(MODALITIES)}; "
                          f"got {list(mods)}")
    return mods


def finish_corpus(items: list[RawItem], classes: Sequence[str], problems: Problems, name: str,
                  modalities: tuple[str, ...], source: Path) -> RawCorpus:
    """The :class:`RawCorpus` of a reader's ``items``, with what ``problems`` skipped; raises
    the problems collected (:meth:`Problems.finish`), or when no utterance is left."""
    problems.finish()
    if not items:
        why = ""
        if problems.skipped:
            why = f" ({len(problems.skipped)} skipped; " + ", ".join(
                f"{reason}: {n}" for reason, n in problems.counts.items()) + ")"
        raise DataError(f"{name}: no utterances found under {source}{why}")
    return RawCorpus(tuple(items), tuple(classes), tuple(problems.skipped), name, modalities,
                     dict(problems.counts))


class CorpusReader(Protocol):
    """A corpus reader, as :data:`boomda.data.readers.READERS` holds them: the utterances of the
    corpus a validated :class:`~boomda.config.RawDataConfig` names (``raw.path`` and the options
    that apply to this corpus), looking only for the files of ``signals`` (a sorted subset of
    :data:`MODALITIES`); the others are left ``None`` in every :class:`RawItem`."""

    def __call__(self, raw: RawDataConfig, signals: Sequence[str]) -> RawCorpus: ...


def config_path(path: str) -> str:
    """A path from a config, ``~`` expanded ("" stays "")."""
    return os.path.expanduser(path)


def session_numbers(sessions: Sequence[str | int]) -> list[int] | None:
    """A config's ``sessions`` as numbers; None (all sessions) when empty."""
    return [int(s) for s in sessions] or None


def index_tree(root: Path, suffixes: set[str]) -> tuple[dict[str, list[Path]], dict[str, Path]]:
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


def pick_file(files: dict[str, list[Path]], stem: str, suffixes: tuple[str, ...],
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
    if same_text and len({read_text(p) for p in found}) == 1:
        return found[0], None
    return None, (f"several files for {stem}: {', '.join(map(str, found))}; keep one, or move "
                  f"the others out of the corpus folder")


def read_transcripts(source: Path) -> dict[str, str]:
    """Utterance id -> transcript, from a CSV with the columns ``id,text`` or a folder of
    ``<id>.txt`` files (searched below it)."""
    if source.is_dir():
        return {p.stem: read_text(p) for p in sorted(source.rglob("*.txt"))}
    if not source.is_file():
        raise DataError(f"transcripts not found: {source}")
    with source.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"id", "text"} <= set(reader.fieldnames):
            raise DataError(f"{source}: a transcript CSV needs the columns id,text; "
                            f"got {reader.fieldnames}")
        return {row["id"].strip(): (row["text"] or "").strip() for row in reader}


def read_text(path: Path) -> str:
    """A transcript file read as UTF-8 (a byte-order mark dropped), its whitespace collapsed."""
    try:
        return " ".join(path.read_text(encoding="utf-8-sig", errors="replace").split())
    except OSError as error:
        raise DataError(f"cannot read transcript {path}: {error}") from None


def read_lines(path: Path) -> list[str]:
    """The lines of a text file read as UTF-8; a byte-order mark at its start is dropped."""
    try:
        return path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error}") from None
