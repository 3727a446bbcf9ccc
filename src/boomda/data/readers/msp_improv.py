"""MSP-IMPROV (Busso et al., 2017) in its release layout: ``corpus: msp-improv`` (docs/raw.md,
"MSP-IMPROV")."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from boomda.data.readers.base import (
    EMOTIONS,
    MODALITIES,
    NO_TRANSCRIPT,
    SEVERAL_FILES,
    Problems,
    RawCorpus,
    RawItem,
    check_modalities,
    config_path,
    finish_corpus,
    index_tree,
    pick_file,
    read_lines,
    read_text,
    read_transcripts,
    session_numbers,
)
from boomda.errors import DataError

if TYPE_CHECKING:
    from boomda.config import RawDataConfig

#: MSP-IMPROV's consensus letters (Evaluation.txt); O (other) and X (no agreement) are dropped
MSP_IMPROV_CODES = {"N": "neutral", "H": "happy", "S": "sad", "A": "angry"}
MSP_IMPROV_OTHER_CODES = frozenset({"O", "X"})

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
    mods = check_modalities(modalities)
    labels_file = root / "Evaluation.txt"
    if not labels_file.is_file():
        raise DataError(f"MSP-IMPROV label file not found: {labels_file}")
    files, folders = index_tree(root, {".wav", ".avi", ".mp4", ".txt"})
    texts: dict[str, str] = {}
    if "text" in mods:
        texts = read_transcripts(Path(transcripts)) if transcripts is not None else {}
    wanted = None if sessions is None else {int(s) for s in sessions}
    problems = Problems(skip_missing, "MSP-IMPROV")
    items: list[RawItem] = []
    seen: set[str] = set()
    for number, line in enumerate(read_lines(labels_file), start=1):
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
            audio, why = pick_file(files, utt, (".wav",), _msp_in_layout(root, layout))
            if why:
                problems.report(utt, why, SEVERAL_FILES)
                continue
            if audio is None:
                problems.report(utt, f"missing audio file {release_dir / (utt + '.wav')} "
                                     f"(searched by name under {root})")
                continue
        if "video" in mods:
            video, why = pick_file(files, utt, (".avi", ".mp4"), _msp_in_layout(root, layout))
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
                found, why = pick_file(files, utt, (".txt",),
                                   lambda path: _MSP_TRANSCRIPTS in path.parts, same_text=True)
                if why:
                    problems.report(utt, why, SEVERAL_FILES)
                    continue
                text = read_text(found) if found is not None else None
            else:
                text = texts.get(utt)
            if text is None:
                where = (transcripts if transcripts is not None else
                         f"{utt}.txt under {root} (the release's Human_transcriptions)")
                problems.report(utt, f"no transcript in {where}", NO_TRANSCRIPT)
                continue
        items.append(RawItem(utt, EMOTIONS.index(MSP_IMPROV_CODES[code]), audio, video,
                             text=text))
    return finish_corpus(items, EMOTIONS, problems, "MSP-IMPROV", mods, root)


def _msp_in_layout(root: Path, layout: tuple[str, str, str]) -> Callable[[Path], bool]:
    """Whether a file lies where the release puts it: ``[Audio|Video/]session<n>/<s>/<t>/``."""

    def check(path: Path) -> bool:
        folder = path.parent.relative_to(root).parts
        top = _MSP_TOP.get(path.suffix.lower())
        return folder == layout or (top is not None and folder == (top, *layout))

    return check


def read(raw: RawDataConfig, signals: Sequence[str]) -> RawCorpus:
    """The reader of ``corpus: msp-improv``: :func:`read_msp_improv` with ``raw``'s ``path``,
    ``sessions``, ``transcripts`` and ``skip_missing``."""
    return read_msp_improv(config_path(raw.path), session_numbers(raw.sessions),
                           config_path(raw.transcripts) or None, raw.skip_missing, signals)
