"""IEMOCAP (Busso et al., 2008) in its release layout: ``corpus: iemocap`` (docs/raw.md,
"IEMOCAP")."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from boomda.data.readers.base import (
    BAD_TIMES,
    EMOTIONS,
    MODALITIES,
    NO_TRANSCRIPT,
    Problems,
    RawCorpus,
    RawItem,
    VideoSpans,
    check_modalities,
    config_path,
    finish_corpus,
    read_lines,
    session_numbers,
)
from boomda.errors import ConfigError, DataError

if TYPE_CHECKING:
    from boomda.config import RawDataConfig

#: ``video_crop`` values: the speaker's half of IEMOCAP's split-screen frames, or whole frames
VIDEO_CROPS = ("speaker", "full")

#: IEMOCAP's categorical codes (EmoEvaluation files); only the first four are kept
IEMOCAP_CODES = {"neu": "neutral", "hap": "happy", "sad": "sad", "ang": "angry"}
IEMOCAP_OTHER_CODES = frozenset({"exc", "fru", "sur", "fea", "dis", "oth", "xxx"})

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
    mods = check_modalities(modalities)
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
    problems = Problems(skip_missing, "IEMOCAP")
    videos = VideoSpans()
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
    return finish_corpus(items, EMOTIONS, problems, "IEMOCAP", mods, root)


def _iemocap_labels(path: Path) -> list[tuple[str, str, float, float, str]]:
    """(utterance, code, start, end, "file:line") of each label line."""
    out = []
    for number, line in enumerate(read_lines(path), start=1):
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
    for line in read_lines(path):
        match = _IEMOCAP_TRANSCRIPT.match(line.strip())
        if match:
            out[match["id"]] = match["text"].strip()
    return out


def read(raw: RawDataConfig, signals: Sequence[str]) -> RawCorpus:
    """The reader of ``corpus: iemocap``: :func:`read_iemocap` with ``raw``'s ``path``,
    ``sessions``, ``merge_excited``, ``skip_missing`` and ``video_crop``."""
    return read_iemocap(config_path(raw.path), session_numbers(raw.sessions), raw.merge_excited,
                        raw.skip_missing, signals, raw.video_crop)
