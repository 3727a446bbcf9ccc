"""Raw-signal corruptions, audio and frame loading, and the corpus readers (on tiny corpora made
on the fly in IEMOCAP, MSP-IMPROV and manifest form)."""

import csv

import numpy as np
import pytest

from boomda.data.readers import (
    EMOTIONS,
    read_iemocap,
    read_manifest,
    read_msp_improv,
)
from boomda.data.signals import (
    add_white_noise,
    darken_and_noise,
    item_rng,
    load_audio,
    mask_positions,
    mask_text,
    mask_words,
    read_frame_folder,
    read_frames,
    read_video_frames,
    sample_frames,
)
from boomda.errors import ConfigError, DataError
from tests import rawcorpus as rc

# --- corruptions --------------------------------------------------------------------------------


def _sine(seconds, sr=16000, freq=220.0, amplitude=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("snr", [1.0, 0.5, 4.0])
def test_white_noise_reaches_requested_snr(snr):
    wave = _sine(10.0) + 0.1
    noisy = add_white_noise(wave, snr, np.random.default_rng(0))
    noise = noisy.astype(np.float64) - wave
    measured = np.mean(wave.astype(np.float64) ** 2) / np.mean(noise**2)
    assert measured == pytest.approx(snr, rel=0.01)
    assert noisy.dtype == np.float32 and noisy.shape == wave.shape
    assert abs(noise.mean()) < 0.01 * noise.std()  # zero-mean noise


def test_white_noise_power_is_measured_per_utterance():
    loud, quiet = _sine(5.0, amplitude=0.8), _sine(5.0, amplitude=0.01)
    rng = np.random.default_rng(1)
    n_loud = add_white_noise(loud, 1.0, rng) - loud
    n_quiet = add_white_noise(quiet, 1.0, rng) - quiet
    assert n_loud.std() / n_quiet.std() == pytest.approx(80.0, rel=0.01)
    # silence stays silent; a seeded generator repeats itself
    assert np.array_equal(add_white_noise(np.zeros(10), 1.0, rng), np.zeros(10))
    a = add_white_noise(loud, 2.0, np.random.default_rng(5))
    assert np.array_equal(a, add_white_noise(loud, 2.0, np.random.default_rng(5)))
    with pytest.raises(ConfigError, match="snr"):
        add_white_noise(loud, 0.0, rng)


def test_darkening_scales_brightness_exactly():
    frames = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    dark = darken_and_noise(frames, 0.2, np.inf, np.random.default_rng(0))
    assert dark.dtype == np.float32
    np.testing.assert_allclose(dark, frames / 255.0 * 0.2, rtol=1e-6)
    # uint8 and the same frames as floats in [0, 1] are the same input
    as_float = darken_and_noise(frames / 255.0, 0.2, 0.5, np.random.default_rng(3))
    np.testing.assert_allclose(as_float, darken_and_noise(frames, 0.2, 0.5,
                                                          np.random.default_rng(3)), atol=1e-6)


@pytest.mark.parametrize("brightness,snr", [(0.2, 0.5), (1.0, 2.0)])
def test_frame_noise_reaches_requested_snr_of_darkened_frames(brightness, snr):
    frames = np.random.default_rng(1).integers(0, 256, (10, 64, 64, 3), dtype=np.uint8)
    out = darken_and_noise(frames, brightness, snr, np.random.default_rng(2))
    dark = frames.astype(np.float64) / 255.0 * brightness
    noise = out - dark
    assert np.mean(dark**2) / np.mean(noise**2) == pytest.approx(snr, rel=0.01)
    clipped = darken_and_noise(frames, brightness, snr, np.random.default_rng(2), clip=True)
    assert clipped.min() >= 0.0 and clipped.max() <= 1.0
    with pytest.raises(DataError, match="0, 1"):
        darken_and_noise(frames.astype(np.float32), brightness, snr, np.random.default_rng(2))


def test_masking_rate_and_per_utterance_positions():
    rng = np.random.default_rng(0)
    utterances = [[f"w{i}" for i in range(n)] for n in [1, 2, 3, 5, 7, 10, 10, 10, 10, 23]]
    masked = [mask_words(words, 0.4, "[MASK]", rng) for words in utterances]
    for words, out in zip(utterances, masked, strict=True):
        hits = [i for i, w in enumerate(out) if w == "[MASK]"]
        assert len(hits) == int(round(0.4 * len(words)))  # 0, 1, 1, 2, 3, 4, 4, 4, 4, 9
        assert all(out[i] == words[i] for i in range(len(words)) if i not in hits)
    patterns = {tuple(w == "[MASK]" for w in out) for out in masked[5:9]}
    assert len(patterns) > 1  # equal-length utterances get their own positions
    assert sum(len(w) for w in utterances) == 81
    assert sum(o.count("[MASK]") for o in masked) == 32  # a rate of 0.395 for 0.4


def test_masking_is_seeded_per_utterance_and_works_on_token_ids():
    ids = list(range(100, 120))
    first = mask_words(ids, 0.4, 103, item_rng(7, "Ses01F_impro01_F000"))
    again = mask_words(ids, 0.4, 103, item_rng(7, "Ses01F_impro01_F000"))
    other = mask_words(ids, 0.4, 103, item_rng(7, "Ses01F_impro01_F001"))
    assert first == again and first != other and first.count(103) == 8
    assert mask_text("I am not  happy at all", 0.5, "[MASK]",
                     np.random.default_rng(0)).split().count("[MASK]") == 3
    positions = mask_positions(10, 0.4, np.random.default_rng(0))
    assert len(set(positions.tolist())) == 4 and positions.max() < 10
    with pytest.raises(DataError, match="list of words"):
        mask_words("a sentence", 0.4, "[MASK]", np.random.default_rng(0))
    with pytest.raises(ConfigError, match="fraction"):
        mask_words(ids, 1.5, 0, np.random.default_rng(0))


# --- audio and frames ---------------------------------------------------------------------------


def test_load_audio_resamples_to_16k_mono_and_truncates(tmp_path):
    sf = pytest.importorskip("soundfile")
    sr = 44100
    t = np.arange(2 * sr) / sr
    left = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    sf.write(tmp_path / "a.wav", np.stack([left, 0.5 * left], axis=1), sr)
    wave = load_audio(tmp_path / "a.wav", sr=16000, max_seconds=1.5)
    assert wave.dtype == np.float32 and wave.shape == (24000,)
    expected = 0.75 * 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(24000) / 16000)
    np.testing.assert_allclose(wave[1000:-1000], expected[1000:-1000], atol=2e-3)
    assert load_audio(tmp_path / "a.wav").shape == (32000,)


def test_load_audio_names_missing_and_unreadable_files(tmp_path):
    pytest.importorskip("soundfile")
    with pytest.raises(DataError, match="nothere.wav"):
        load_audio(tmp_path / "nothere.wav")
    (tmp_path / "bad.wav").write_bytes(b"not a wave file at all")
    with pytest.raises(DataError, match="bad.wav"):
        load_audio(tmp_path / "bad.wav")


def test_sample_frames_hand_values():
    assert sample_frames(100, 10).tolist() == [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]
    assert sample_frames(10, 10).tolist() == list(range(10))
    assert sample_frames(3, 6).tolist() == [0, 0, 1, 1, 2, 2]
    assert sample_frames(20, 10).tolist() == list(range(1, 20, 2))
    with pytest.raises(DataError):
        sample_frames(0, 10)


def _write_frames(folder, levels, size=(12, 16)):
    image = pytest.importorskip("PIL.Image")
    folder.mkdir(parents=True, exist_ok=True)
    for i, level in enumerate(levels, start=1):
        pixels = np.full((*size, 3), level, dtype=np.uint8)
        pixels[..., 2] = 255 - level
        image.fromarray(pixels).save(folder / f"frame_{i}.png")


def test_read_frame_folder_samples_evenly_in_natural_order(tmp_path):
    _write_frames(tmp_path / "clip", [10 * i for i in range(20)])
    frames = read_frame_folder(tmp_path / "clip", k=10)
    assert frames.shape == (10, 12, 16, 3) and frames.dtype == np.uint8
    # frame_2 comes before frame_10: levels follow the sampled indices
    assert frames[:, 0, 0, 0].tolist() == [10 * i for i in sample_frames(20, 10)]
    assert frames[:, 0, 0, 2].tolist() == [255 - 10 * i for i in sample_frames(20, 10)]
    assert read_frames(tmp_path / "clip", k=4, size=8).shape == (4, 8, 8, 3)
    with pytest.raises(DataError, match="no images"):
        read_frame_folder(tmp_path / "clip" / "..", k=4)
    with pytest.raises(DataError, match="start/end"):
        read_frames(tmp_path / "clip", start=1.0)


def _write_video(path, n_frames, fps=10, size=(32, 48)):
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "1"}
        for i in range(n_frames):
            pixels = np.full((*size, 3), 8 * i, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_read_video_frames_cuts_the_clip_and_samples_evenly(tmp_path):
    _write_video(tmp_path / "dialog.avi", n_frames=30)
    clip = read_video_frames(tmp_path / "dialog.avi", k=5, start=1.0, end=2.0)
    assert clip.shape == (5, 32, 48, 3)
    # frames 10..19 lie in [1 s, 2 s); the evenly sampled ones are 11, 13, ..., 19
    levels = clip.reshape(5, -1).mean(axis=1)
    np.testing.assert_allclose(levels, [8 * i for i in (11, 13, 15, 17, 19)], atol=4)
    whole = read_frames(tmp_path / "dialog.avi", k=3, size=16)
    assert whole.shape == (3, 16, 16, 3)
    np.testing.assert_allclose(whole.reshape(3, -1).mean(axis=1), [40, 120, 200], atol=6)
    (tmp_path / "broken.avi").write_bytes(b"garbage")
    with pytest.raises(DataError, match="broken.avi"):
        read_video_frames(tmp_path / "broken.avi")


def test_read_frames_crops_one_half_before_resizing(tmp_path):
    pytest.importorskip("av")
    left, right = np.array([200, 40, 30], np.uint8), np.array([20, 60, 210], np.uint8)
    rc.write_video(tmp_path / "dialog.avi", [rc.split_screen(left, right)] * 6)
    whole = read_frames(tmp_path / "dialog.avi", k=2)
    assert whole.shape == (2, rc.HEIGHT, 2 * rc.HALF_WIDTH, 3)
    for crop, colour in (("left", left), ("right", right)):
        frames = read_frames(tmp_path / "dialog.avi", k=2, size=8, crop=crop)
        assert frames.shape == (2, 8, 8, 3)
        np.testing.assert_allclose(frames.reshape(-1, 3).astype(float), np.tile(colour, (128, 1)),
                                   atol=6)
        unresized = read_frames(tmp_path / "dialog.avi", k=1, crop=crop)
        assert unresized.shape == (1, rc.HEIGHT, rc.HALF_WIDTH, 3)
    # resized whole: the left columns show the left half, the right columns the right half
    squeezed = read_frames(tmp_path / "dialog.avi", k=1, size=16)[0].astype(float)
    np.testing.assert_allclose(squeezed[:, :6].reshape(-1, 3).mean(0), left, atol=6)
    np.testing.assert_allclose(squeezed[:, 10:].reshape(-1, 3).mean(0), right, atol=6)
    # frame folders are cropped the same way
    folder = tmp_path / "frames"
    folder.mkdir()
    image = pytest.importorskip("PIL.Image")
    image.fromarray(rc.split_screen(left, right)).save(folder / "frame1.png")
    np.testing.assert_array_equal(read_frames(folder, k=1, crop="right")[0, 0, 0], right)
    with pytest.raises(ConfigError, match="crop"):
        read_frames(folder, k=1, crop="top")


def test_read_video_frames_refuses_a_clip_the_video_covers_only_partly(tmp_path):
    _write_video(tmp_path / "dialog.avi", n_frames=30)  # 3.0 s at 10 frames per second
    assert read_video_frames(tmp_path / "dialog.avi", k=2, start=2.5, end=3.0).shape[0] == 2
    # within one frame period of the end: covered
    assert read_video_frames(tmp_path / "dialog.avi", k=2, start=2.5, end=3.08).shape[0] == 2
    # frames exist from 2.5 to 2.9 s, but the clip lasts until 3.5 s: not silently shortened
    with pytest.raises(DataError, match=r"dialog\.avi ends at 3\.00 s, before the clip's end "
                                        r"at 3\.50 s"):
        read_video_frames(tmp_path / "dialog.avi", k=2, start=2.5, end=3.5)
    with pytest.raises(DataError, match="ends at 3.00 s"):
        read_video_frames(tmp_path / "dialog.avi", start=5.0, end=6.0)


# --- corpus readers -----------------------------------------------------------------------------

#: (session, dialog, utterance, code, start, end, text)
IEMOCAP_UTTERANCES = [
    (1, "Ses01F_impro01", "Ses01F_impro01_F000", "neu", 6.2901, 8.2357, "Excuse me."),
    (1, "Ses01F_impro01", "Ses01F_impro01_M000", "ang", 8.5, 10.0, "Do you have your forms?"),
    (1, "Ses01F_impro01", "Ses01F_impro01_F001", "fru", 10.5, 11.0, "Yeah."),
    (1, "Ses01F_impro01", "Ses01F_impro01_M001", "exc", 11.2, 12.0, "Let's see them."),
    (1, "Ses01M_script01_1", "Ses01M_script01_1_F000", "sad", 1.0, 2.5, "I miss him."),
    (1, "Ses01M_script01_1", "Ses01M_script01_1_M000", "hap", 3.0, 4.0, "This is great."),
    (2, "Ses02F_impro02", "Ses02F_impro02_F000", "xxx", 0.5, 1.5, "What?"),
    (2, "Ses02F_impro02", "Ses02F_impro02_M000", "hap", 2.0, 3.0, "We won!"),
]


def _write_wav(path, seconds=0.2, sr=16000):
    sf = pytest.importorskip("soundfile")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, _sine(seconds, sr), sr)


def make_iemocap(root, utterances=IEMOCAP_UTTERANCES):
    dialogs = {}
    for session, dialog, utt, code, start, end, text in utterances:
        dialogs.setdefault((session, dialog), []).append((utt, code, start, end, text))
    for (session, dialog), utts in dialogs.items():
        base = root / f"Session{session}"
        labels = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        lines = []
        for utt, code, start, end, text in utts:
            labels += [f"[{start:.4f} - {end:.4f}]\t{utt}\t{code}\t[2.5000, 2.5000, 2.5000]",
                       "C-E2:\tNeutral;\t()", "A-E3:\tval 3; act 2; dom  2;\t()", ""]
            lines.append(f"{utt} [{start:08.4f}-{end:08.4f}]: {text}")
            _write_wav(base / "sentences" / "wav" / dialog / f"{utt}.wav")
        for sub, content in (("EmoEvaluation", labels), ("transcriptions", lines)):
            (base / "dialog" / sub).mkdir(parents=True, exist_ok=True)
            (base / "dialog" / sub / f"{dialog}.txt").write_text("\n".join(content) + "\n")
        # a split-screen video at 2 frames per second that lasts until the last utterance ends
        n_frames = int(np.ceil(2 * max(end for _, _, _, end, _ in utts)))
        frame = rc.split_screen(np.array([90, 90, 90]), np.array([160, 160, 160]))
        rc.write_video(base / "dialog" / "avi" / "DivX" / f"{dialog}.avi", [frame] * n_frames,
                       fps=2)
    # a macOS resource fork as found in the release is ignored
    (root / "Session1" / "dialog" / "EmoEvaluation" / "._Ses01F_impro01.txt").write_bytes(b"\0")
    return root


def test_read_iemocap_keeps_four_classes_with_times_text_and_files(tmp_path):
    root = make_iemocap(tmp_path / "IEMOCAP")
    corpus = read_iemocap(root)
    assert corpus.classes == EMOTIONS == ("neutral", "happy", "sad", "angry")
    ids = [item.id for item in corpus.items]
    assert ids == ["Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses01M_script01_1_F000",
                   "Ses01M_script01_1_M000", "Ses02F_impro02_M000"]
    assert corpus.labels.tolist() == [0, 3, 2, 1, 1]
    first = corpus.items[0]
    assert (first.start, first.end, first.text) == (6.2901, 8.2357, "Excuse me.")
    assert first.audio == root / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav"
    assert first.video == root / "Session1/dialog/avi/DivX/Ses01F_impro01.avi"
    assert corpus.n_skipped == 0
    wave = load_audio(first.audio)
    assert wave.shape == (3200,)

    merged = read_iemocap(root, merge_excited=True)
    assert "Ses01F_impro01_M001" in [i.id for i in merged.items]
    assert merged.labels.tolist().count(1) == 3
    only2 = read_iemocap(root, sessions=[2])
    assert [i.id for i in only2.items] == ["Ses02F_impro02_M000"]
    audio_only = read_iemocap(root, modalities=["audio"])
    assert audio_only.items[0].video is None and audio_only.items[0].text is None


def test_read_iemocap_missing_files_name_the_file_or_are_skipped(tmp_path):
    root = make_iemocap(tmp_path / "IEMOCAP")
    wav = root / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M000.wav"
    wav.unlink()
    with pytest.raises(DataError, match="Ses01F_impro01_M000.wav"):
        read_iemocap(root)
    corpus = read_iemocap(root, skip_missing=True)
    assert corpus.n_skipped == 1 and len(corpus) == 4
    assert "Ses01F_impro01_M000" not in [i.id for i in corpus.items]
    assert "Ses01F_impro01_M000.wav" in corpus.skipped[0]
    # without audio among the modalities the missing wav does not matter
    assert len(read_iemocap(root, modalities=["video", "text"])) == 5

    (root / "Session2/dialog/avi/DivX/Ses02F_impro02.avi").unlink()
    with pytest.raises(DataError, match="Ses02F_impro02.avi"):
        read_iemocap(root, sessions=[2])
    with pytest.raises(DataError, match="no utterances"):
        read_iemocap(root, sessions=[2], skip_missing=True)
    with pytest.raises(DataError, match="Session4"):
        read_iemocap(root, sessions=[4])


def test_read_iemocap_rejects_unknown_labels_and_reports_missing_transcripts(tmp_path):
    bad = [(1, "Ses01F_impro01", "Ses01F_impro01_F000", "joy", 1.0, 2.0, "Hi.")]
    root = make_iemocap(tmp_path / "bad", bad)
    with pytest.raises(DataError, match=r"Ses01F_impro01\.txt:3: unknown IEMOCAP label 'joy'"):
        read_iemocap(root)
    root = make_iemocap(tmp_path / "ok")
    (root / "Session2/dialog/transcriptions/Ses02F_impro02.txt").write_text("")
    with pytest.raises(DataError, match="transcriptions/Ses02F_impro02.txt"):
        read_iemocap(root, sessions=[2])
    with pytest.raises(DataError, match="IEMOCAP root"):
        read_iemocap(tmp_path / "nowhere")


def test_read_msp_improv_labels_sessions_and_files(tmp_path):
    root = rc.make_tiny_msp_improv(tmp_path / "MSP-IMPROV")
    corpus = read_msp_improv(root, transcripts=root / "transcripts.csv")
    assert [i.id for i in corpus.items] == ["MSP-IMPROV-S01A-F01-P-FM01",
                                            "MSP-IMPROV-S01H-M01-R-MM01",
                                            "MSP-IMPROV-S02S-F02-S-FM02",
                                            "MSP-IMPROV-S02N-M02-T-MF02"]
    assert corpus.labels.tolist() == [3, 1, 2, 0]
    first = corpus.items[0]
    assert first.audio == root / "Audio/session1/S01A/P/MSP-IMPROV-S01A-F01-P-FM01.wav"
    assert first.video == root / "Video/session1/S01A/P/MSP-IMPROV-S01A-F01-P-FM01.avi"
    assert first.text == rc.utterance_signals(3, 0)[2] and first.start is None
    assert len(read_msp_improv(root, sessions=[2], modalities=["audio", "video"])) == 2

    # the release's human transcriptions are found by name without the transcripts option
    assert [i.text for i in read_msp_improv(root).items] == [i.text for i in corpus.items]
    for path in (root / "Human_transcriptions").rglob("*S02N*.txt"):
        path.unlink()
    with pytest.raises(DataError, match="no transcript .*MSP-IMPROV-S02N-M02-T-MF02"):
        read_msp_improv(root)
    (root / "Audio/session2/S02S/S/MSP-IMPROV-S02S-F02-S-FM02.wav").unlink()
    with pytest.raises(DataError, match="MSP-IMPROV-S02S-F02-S-FM02.wav"):
        read_msp_improv(root, modalities=["audio"])
    skipped = read_msp_improv(root, modalities=["audio"], skip_missing=True)
    assert skipped.n_skipped == 1 and len(skipped) == 3


def test_read_manifest_with_frame_folders_and_relative_paths(tmp_path):
    rows = [("u1", "calm", "a/u1.wav", "frames/u1", "hello there"),
            ("u2", "tense", "a/u2.wav", "frames/u2", "go away"),
            ("u3", "calm", "a/u3.wav", "frames/u3", "fine thanks")]
    for _, _, audio, video, _ in rows:
        _write_wav(tmp_path / audio)
        _write_frames(tmp_path / video, [0, 50, 100])
    manifest = tmp_path / "corpus.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "label", "audio", "video", "text"])
        writer.writerows(rows)
    corpus = read_manifest(manifest)
    assert corpus.classes == ("calm", "tense") and corpus.labels.tolist() == [0, 1, 0]
    assert corpus.items[1].audio == tmp_path / "a/u2.wav"
    assert corpus.items[1].video == tmp_path / "frames/u2" and corpus.items[1].text == "go away"
    assert read_frames(corpus.items[0].video, k=10).shape == (10, 12, 16, 3)
    assert read_manifest(manifest, classes=["tense", "calm"]).labels.tolist() == [1, 0, 1]

    with pytest.raises(DataError, match=r"corpus.csv:3: unknown label 'tense'"):
        read_manifest(manifest, classes=["calm", "happy"])
    (tmp_path / "a/u3.wav").unlink()
    with pytest.raises(DataError, match="u3.wav"):
        read_manifest(manifest)
    assert read_manifest(manifest, skip_missing=True).n_skipped == 1
    assert len(read_manifest(manifest, modalities=["video", "text"])) == 3


def test_read_manifest_checks_columns(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,label,text\nu1,calm,hi\n")
    with pytest.raises(DataError, match="missing column 'audio'"):
        read_manifest(manifest)
    assert read_manifest(manifest, modalities=["text"]).items[0].text == "hi"
    manifest.write_text("id,label,speech\nu1,calm,x.wav\n")
    with pytest.raises(DataError, match="unknown column 'speech'"):
        read_manifest(manifest, modalities=["text"])
    manifest.write_text("id,label,text\n")
    with pytest.raises(DataError, match="no utterances"):
        read_manifest(manifest, modalities=["text"])
    with pytest.raises(ConfigError, match="modalities"):
        read_manifest(manifest, modalities=["smell"])


def test_pipeline_registry_one_class_per_signal():
    """The signal kinds, their backbones and corruptions, from the per-signal classes."""
    from boomda.config import RunConfig
    from boomda.data.pipelines import (
        BACKBONE_KIND,
        CORRUPTIONS,
        DEFAULT_CORRUPTION,
        PIPELINES,
        AudioPipeline,
        SignalPipeline,
        TextPipeline,
        VideoPipeline,
        parse_corruption,
        pipeline_class,
    )
    from boomda.resolve import resolve

    assert PIPELINES == {"audio": AudioPipeline, "video": VideoPipeline, "text": TextPipeline}
    assert all(issubclass(cls, SignalPipeline) for cls in PIPELINES.values())
    assert pipeline_class("video") is VideoPipeline
    with pytest.raises(ConfigError, match="unknown signal 'smell'"):
        pipeline_class("smell")
    assert BACKBONE_KIND == {"audio": "speech", "video": "image", "text": "text"}
    assert DEFAULT_CORRUPTION == {"audio": "noise", "video": "darken_noise", "text": "mask_words"}
    assert CORRUPTIONS == {"noise": ("audio", {"snr": 1.0}),
                           "darken_noise": ("video", {"brightness": 0.2, "snr": 0.5}),
                           "mask_words": ("text", {"fraction": 0.4})}
    assert parse_corruption("default", "video", "w") == {"kind": "darken_noise",
                                                          "brightness": 0.2, "snr": 0.5}
    with pytest.raises(ConfigError, match="applies to audio, not text"):
        parse_corruption("noise:snr=2", "text", "w")
    section = {"path": "x", "modalities": {"a": {"backbone": "b"},
                                           "s": {"signal": "smell", "backbone": "c"}}}
    with pytest.raises(ConfigError, match=r"raw\.modalities\.s\.signal must be audio, video or "
                                          r"text, got 'smell'"):
        resolve(RunConfig.from_dict({"raw": section}))
