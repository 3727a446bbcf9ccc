"""The corpus readers on tiny corpora built to the real release layouts (tests/rawcorpus.py):
IEMOCAP's split-screen dialog videos, videos that end before the dialog's last utterances, label
lines whose times are unusable, byte-order marks; MSP-IMPROV's Audio/, Video/ and
Human_transcriptions/ folders and duplicate file names."""

import shutil

import numpy as np
import pytest

from boomda.config import RunConfig
from boomda.data.raw_config import check_raw_config
from boomda.data.readers import (
    iemocap_speaker_half,
    read_iemocap,
    read_manifest,
    read_msp_improv,
)
from boomda.errors import ConfigError, DataError
from boomda.resolve import resolve
from tests import rawcorpus as rc

pytest.importorskip("av")
pytest.importorskip("soundfile")

#: utterances of the second dialog of make_tiny_iemocap(per_class=4) that its video, cut to
#: 2.8 s, does not cover: 0.5 s each from 0.5 n, so n = 5 (2.5-3.0 s, partly covered: frames up
#: to 2.7 s exist), 6 and 7; n = 8 is 'frustrated' and dropped anyway
UNCOVERED = ["Ses01M_script01_F005", "Ses01M_script01_M006", "Ses01M_script01_F007"]


def test_iemocap_speaker_half_follows_the_dialog_and_utterance_letters():
    # the actor named by the dialog (the one wearing the markers) is on the left
    assert iemocap_speaker_half("Ses01F_impro04_M036") == "right"
    assert iemocap_speaker_half("Ses01F_impro04_F036") == "left"
    assert iemocap_speaker_half("Ses03M_impro04_M041") == "left"
    assert iemocap_speaker_half("Ses03M_impro04_F041") == "right"
    assert iemocap_speaker_half("Ses03F_impro06_FXX1") == "left"
    assert iemocap_speaker_half("Ses05M_script01_1b_F021") == "right"
    with pytest.raises(DataError, match="video_crop: full"):
        iemocap_speaker_half("utt001")


def test_iemocap_items_carry_the_speakers_half_unless_video_crop_full(tmp_path):
    root = rc.make_tiny_iemocap(tmp_path / "IEMOCAP")
    crops = {item.id: item.crop for item in read_iemocap(root).items}
    assert len(crops) == 16
    assert crops["Ses01F_impro01_M000"] == "right" and crops["Ses01F_impro01_F001"] == "left"
    assert crops["Ses01M_script01_M000"] == "left" and crops["Ses01M_script01_F001"] == "right"
    full = read_iemocap(root, video_crop="full")
    assert {item.crop for item in full.items} == {None}
    assert {item.crop for item in read_iemocap(root, modalities=["audio", "text"]).items} == {None}
    with pytest.raises(ConfigError, match="video_crop"):
        read_iemocap(root, video_crop="face")


def test_iemocap_videos_that_end_early_are_reported_with_counts_or_skipped(tmp_path):
    root = rc.make_tiny_iemocap(tmp_path / "IEMOCAP", video_seconds={"Ses01M_script01": 2.8})
    with pytest.raises(DataError) as error:
        read_iemocap(root)
    message = str(error.value)
    assert "3 utterances" in message and "skip_missing" in message and "\n" not in message
    assert UNCOVERED[0] in message and "2.80 s" in message
    corpus = read_iemocap(root, skip_missing=True)
    # 16 kept utterances, 3 of them uncovered (sad, angry, angry): 4 + 4 + 3 + 2 remain
    assert len(corpus) == 13 and corpus.n_skipped == 3
    assert [s.split(":")[0] for s in corpus.skipped] == UNCOVERED
    assert corpus.skip_counts == {"video ends before the utterance": 3}
    assert corpus.class_counts == {"neutral": 4, "happy": 4, "sad": 3, "angry": 2}
    summary = corpus.skip_summary()
    assert "3 of 16" in summary and UNCOVERED[0] in summary
    # without video the clip times are not used: every utterance is kept
    assert len(read_iemocap(root, modalities=["audio", "text"])) == 16
    # the first dialog's video is whole
    assert len(read_iemocap(root, sessions=[1], skip_missing=True)) == 13


def test_label_line_with_end_not_after_start_is_skippable(tmp_path):
    root = rc.make_tiny_iemocap(tmp_path / "IEMOCAP")
    labels = root / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    text = labels.read_text()
    assert "[1.0000 - 1.5000]\tSes01F_impro01_M002\thap" in text
    labels.write_text(text.replace("[1.0000 - 1.5000]", "[1.5000 - 1.0000]"))
    corpus = read_iemocap(root, skip_missing=True)
    assert len(corpus) == 15 and corpus.skipped[0].startswith("Ses01F_impro01_M002:")
    assert corpus.skip_counts == {"clip end not after its start": 1}
    with pytest.raises(DataError, match=r"Ses01F_impro01\.txt:7: .*end 1\.0 s is not after"):
        read_iemocap(root)
    # the times only cut the video: without it the utterance is kept
    assert len(read_iemocap(root, modalities=["audio", "text"])) == 16


def test_byte_order_marks_do_not_drop_the_first_line(tmp_path):
    root = rc.make_tiny_iemocap(tmp_path / "IEMOCAP")
    dialog = root / "Session1/dialog"
    # a transcript file and a label file without its header line, both saved with a BOM
    transcripts = dialog / "transcriptions/Ses01F_impro01.txt"
    transcripts.write_text(transcripts.read_text(), encoding="utf-8-sig")
    labels = dialog / "EmoEvaluation/Ses01M_script01.txt"
    body = labels.read_text().split("\n", 2)[2]
    assert body.startswith("[0.0000 - 0.5000]\tSes01M_script01_M000")
    labels.write_text(body, encoding="utf-8-sig")
    corpus = read_iemocap(root)
    ids = [item.id for item in corpus.items]
    assert len(ids) == 16 and "Ses01M_script01_M000" in ids
    first = corpus.items[0]
    assert first.id == "Ses01F_impro01_M000"
    assert first.text == rc.utterance_signals(0, 0)[2]


def test_msp_improv_release_layout_with_transcripts_and_bom(tmp_path):
    root = rc.make_tiny_msp_improv(tmp_path / "MSP-IMPROV")
    assert (root / "Evaluation.txt").read_bytes()[:3] == b"\xef\xbb\xbf"
    corpus = read_msp_improv(root)  # transcripts found by name: All_human_transcriptions
    assert [i.id for i in corpus.items] == ["MSP-IMPROV-S01A-F01-P-FM01",
                                            "MSP-IMPROV-S01H-M01-R-MM01",
                                            "MSP-IMPROV-S02S-F02-S-FM02",
                                            "MSP-IMPROV-S02N-M02-T-MF02"]
    assert corpus.labels.tolist() == [3, 1, 2, 0]
    first = corpus.items[0]
    assert first.audio == root / "Audio/session1/S01A/P/MSP-IMPROV-S01A-F01-P-FM01.wav"
    assert first.video == root / "Video/session1/S01A/P/MSP-IMPROV-S01A-F01-P-FM01.avi"
    written = (root / "Human_transcriptions/All_human_transcriptions"
               / "MSP-IMPROV-S01A-F01-P-FM01.txt").read_text().strip()
    assert first.text == written and len(written.split()) >= 3
    assert first.crop is None and first.start is None
    # the transcripts in session subfolders, as some guides show them, are found too
    other = rc.make_tiny_msp_improv(tmp_path / "sessions", transcripts="sessions")
    assert [i.text for i in read_msp_improv(other).items] == [i.text for i in corpus.items]
    # and the same transcript in both places is one transcript
    shutil.copytree(root / "Human_transcriptions/All_human_transcriptions",
                    root / "Human_transcriptions/session1")
    assert [i.text for i in read_msp_improv(root).items] == [i.text for i in corpus.items]


def test_msp_improv_duplicate_files_pick_the_release_copy_or_are_skipped(tmp_path):
    sf = pytest.importorskip("soundfile")
    root = rc.make_tiny_msp_improv(tmp_path / "MSP-IMPROV")
    utt = "MSP-IMPROV-S01H-M01-R-MM01"
    release = root / "Audio/session1/S01H/R" / f"{utt}.wav"
    # a resampled copy outside the release layout: the release file is used, always
    wave, rate = sf.read(release)
    (root / "Audio_8k").mkdir()
    sf.write(root / "Audio_8k" / f"{utt}.wav", wave[::2], rate // 2)
    for skip in (False, True):
        corpus = read_msp_improv(root, modalities=["audio", "text"], skip_missing=skip)
        assert len(corpus) == 4 and corpus.n_skipped == 0
        assert corpus.items[1].audio == release
    # two copies in the release layout: no way to choose; an error, or skipped
    copy = root / "session1/S01H/R" / f"{utt}.wav"
    copy.parent.mkdir(parents=True)
    shutil.copy(release, copy)
    with pytest.raises(DataError, match=f"several files for {utt}.*Audio/session1"):
        read_msp_improv(root, modalities=["audio", "text"])
    corpus = read_msp_improv(root, modalities=["audio", "text"], skip_missing=True)
    assert [i.id for i in corpus.items] == ["MSP-IMPROV-S01A-F01-P-FM01",
                                            "MSP-IMPROV-S02S-F02-S-FM02",
                                            "MSP-IMPROV-S02N-M02-T-MF02"]
    assert corpus.skip_counts == {"several files": 1}
    # text only: the duplicate audio does not matter
    assert len(read_msp_improv(root, modalities=["text"])) == 4


def test_manifest_clips_are_checked_when_read(tmp_path):
    """A manifest's clips cut out of longer videos: coverage and times checked on reading; a
    CSV saved with a byte-order mark keeps its first column."""
    rc.write_video(tmp_path / "talk.avi", [np.full((16, 16, 3), 100, np.uint8)] * 30)  # 3.0 s
    rows = ["id,label,video,start,end", "u1,calm,talk.avi,0.0,1.0", "u2,calm,talk.avi,2.5,3.5",
            "u3,tense,talk.avi,2.0,1.0", "u4,tense,talk.avi,1.0,2.0"]
    manifest = tmp_path / "clips.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8-sig")
    with pytest.raises(DataError, match="u3"):  # end before start: at once
        read_manifest(manifest, modalities=["video"])
    corpus = read_manifest(manifest, modalities=["video"], skip_missing=True)
    assert [i.id for i in corpus.items] == ["u1", "u4"] and corpus.classes == ("calm", "tense")
    assert corpus.skip_counts == {"clip end not after its start": 1,
                                  "video ends before the utterance": 1}
    manifest.write_text("\n".join(rows[:3]) + "\n", encoding="utf-8-sig")
    with pytest.raises(DataError, match=r"clips: 1 utterance ends after .*u2: video talk\.avi "
                                        r"ends at 3\.00 s"):
        read_manifest(manifest, modalities=["video"])


def test_video_crop_option_is_checked():
    section = {"path": "x", "modalities": {"a": {"backbone": "b"}, "v": {"signal": "video",
                                                                     "backbone": "c"}}}
    assert RunConfig.from_dict({"raw": section}).raw.video_crop == "speaker"
    assert RunConfig.from_dict({"raw": {**section, "video_crop": "full"}}).raw.video_crop == "full"
    with pytest.raises(ConfigError, match=r"raw\.video_crop .*speaker or full"):
        resolve(RunConfig.from_dict({"raw": {**section, "video_crop": "face"}}))


def test_class_counts_of_both_label_protocols(tmp_path):
    """The paper's four classes (happy = hap) and the common protocol (exc merged into hap)."""
    from tests.test_raw_signals import make_iemocap

    root = make_iemocap(tmp_path / "IEMOCAP")
    paper = read_iemocap(root)
    merged = read_iemocap(root, merge_excited=True)
    assert paper.class_counts == {"neutral": 1, "happy": 2, "sad": 1, "angry": 1}
    assert merged.class_counts == {"neutral": 1, "happy": 3, "sad": 1, "angry": 1}
    assert np.array_equal(np.bincount(merged.labels, minlength=4), [1, 3, 1, 1])


def test_readers_registry_is_what_the_config_and_read_corpus_use(tmp_path, monkeypatch):
    """A reader registered in READERS (and only there) makes its corpus name valid and is the
    one read_corpus calls; the registry is restored afterwards."""
    from boomda.data.raw_pair import read_corpus
    from boomda.data.readers import READERS, RawCorpus, RawItem

    section = {"corpus": "fake", "path": str(tmp_path / "fake"),
               "modalities": {"a": {"signal": "audio", "backbone": "b"},
                              "t": {"signal": "text", "backbone": "c"}}}
    with pytest.raises(ConfigError, match="corpus must be iemocap, msp-improv or manifest, "
                                          "got 'fake'"):
        resolve(RunConfig.from_dict({"raw": section}))

    calls = []

    def read_fake(raw, signals):
        calls.append((raw.path, list(signals)))
        return RawCorpus((RawItem("u0", 0, text="hello"),), ("calm",), name="fake",
                         modalities=tuple(signals))

    monkeypatch.setitem(READERS, "fake", read_fake)
    raw = RunConfig.from_dict({"raw": section}).raw
    check_raw_config(raw)
    corpus = read_corpus(raw, ["audio", "text"])
    assert calls == [(str(tmp_path / "fake"), ["audio", "text"])]
    assert corpus.name == "fake" and [item.id for item in corpus.items] == ["u0"]
    with pytest.raises(ConfigError, match="must be iemocap, msp-improv, manifest or fake, "
                                          "got 'other'"):
        resolve(RunConfig.from_dict({"raw": {**section, "corpus": "other"}}))
    monkeypatch.undo()
    assert "fake" not in READERS
    with pytest.raises(ConfigError, match="got 'fake'"):
        check_raw_config(raw)


def test_each_built_in_corpus_has_its_reader_module():
    from boomda.data.readers import READERS, iemocap, manifest, msp_improv

    assert READERS == {"iemocap": iemocap.read, "msp-improv": msp_improv.read,
                       "manifest": manifest.read}
