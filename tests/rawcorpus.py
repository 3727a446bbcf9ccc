"""Tiny raw corpora and tiny randomly initialised backbones, made on the fly for tests.

Every utterance carries its class in each signal (a tone's pitch, the frames' colour, the words),
so a model can learn the task; the backbones are ``transformers`` models with random weights
saved to local folders (with a word-piece tokenizer for the text model), loaded as a user's
pretrained weights would be.

The corpora follow the real release layouts (see docs/raw.md): IEMOCAP's dialog videos are
split-screen, one actor per half, and can end before the dialog's last labelled utterances;
MSP-IMPROV has ``Audio/``, ``Video/`` and ``Human_transcriptions/`` folders and an
``Evaluation.txt`` that starts with a UTF-8 byte-order mark.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

CLASS_WORDS = {
    "neutral": ["okay", "fine", "sure", "maybe"],
    "happy": ["great", "wonderful", "yes", "glad"],
    "sad": ["miss", "sorry", "alone", "lost"],
    "angry": ["stop", "never", "hate", "leave"],
}
CLASSES = tuple(CLASS_WORDS)
COMMON_WORDS = ["i", "you", "it", "is", "the", "that", "we", "so"]
IEMOCAP_CODE = {"neutral": "neu", "happy": "hap", "sad": "sad", "angry": "ang"}
RATE = 16000
FPS = 10
FRAME_SIZE = 16
#: an IEMOCAP dialog frame: HALF_WIDTH x HEIGHT pixels per actor, side by side (720 x 480 in
#: the release; 3:2 here too, with the middle on a 16-pixel codec block boundary)
HALF_WIDTH, HEIGHT = 48, 64
#: the colour of the listener's half of an IEMOCAP frame (no class colour has green below 80)
LISTENER = np.array([230, 10, 230], np.uint8)


def tiny_backbones(root: Path, layers: int = 4) -> dict[str, Path]:
    """Folders ``speech`` (WavLM), ``text`` (BERT + tokenizer) and ``image`` (ViT) under
    ``root``, each with ``layers`` transformer layers of width 32."""
    import torch
    import transformers

    common = dict(hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                  intermediate_size=64)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *COMMON_WORDS,
             *(w for words in CLASS_WORDS.values() for w in words)]
    configs = {
        "speech": transformers.WavLMConfig(**common, conv_dim=(16, 16), conv_kernel=(10, 4),
                                           conv_stride=(10, 4), num_conv_pos_embeddings=8,
                                           num_conv_pos_embedding_groups=4),
        "text": transformers.BertConfig(vocab_size=len(vocab), max_position_embeddings=64,
                                        **common),
        "image": transformers.ViTConfig(image_size=FRAME_SIZE, patch_size=8, **common),
    }
    folders = {}
    for i, (kind, config) in enumerate(configs.items()):
        folder = root / kind
        torch.manual_seed(i)
        transformers.AutoModel.from_config(config).save_pretrained(folder)
        folders[kind] = folder
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(root / "vocab.txt"))
    tokenizer.save_pretrained(folders["text"])
    return folders


def utterance_signals(label: int, index: int, seconds: float = 0.3, vary: bool = True):
    """A class-coloured tone, frame colour and sentence for utterance ``index`` of ``label``.

    With ``vary`` the audio lasts ``seconds`` plus 0 to 40 % and the sentence has 3 to 5 words
    (so batches need padding); without, every utterance has ``seconds`` of audio and 4 words."""
    rng = np.random.default_rng(1000 * label + index)
    stretch = 1 + 0.2 * (index % 3) if vary else 1.0
    t = np.arange(int(seconds * stretch * RATE)) / RATE
    wave = 0.5 * np.sin(2 * np.pi * 200.0 * 2**label * t) + 0.05 * rng.standard_normal(t.size)
    colour = np.array([60 * label + 20, 200 - 40 * label, 40 + 10 * index % 200], np.uint8)
    words = CLASS_WORDS[CLASSES[label]]
    chosen = [COMMON_WORDS[index % len(COMMON_WORDS)], words[index % 4], words[(index + 1) % 4],
              COMMON_WORDS[(index + 3) % len(COMMON_WORDS)], words[(index + 2) % 4]]
    sentence = " ".join(chosen[: 3 + index % 3 if vary else 4])
    return wave.astype(np.float32), colour, sentence


def _write_wav(path: Path, wave: np.ndarray) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, RATE)


def write_video(path: Path, frames: list[np.ndarray], fps: int = FPS) -> None:
    """The RGB frames (H, W, 3) as an MPEG-4 video at ``fps`` frames per second."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = height, width
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "1"}
        for pixels in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _plain(colour: np.ndarray, height: int = FRAME_SIZE, width: int = FRAME_SIZE) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, np.uint8), (height, width, 3)).copy()


def split_screen(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """An IEMOCAP dialog frame: one actor's half on the left, the other's on the right."""
    return np.concatenate([_plain(left, HEIGHT, HALF_WIDTH), _plain(right, HEIGHT, HALF_WIDTH)],
                          axis=1)


def make_tiny_iemocap(root: Path, per_class: int = 4,
                      video_seconds: dict[str, float] | None = None) -> Path:
    """IEMOCAP's release layout: Session1 with two dialogs, each utterance 0.5 s of the dialog
    video, its own wav, a transcript line and a label line; plus one 'frustrated' utterance that
    the reader drops.

    The dialog videos are split-screen as in the release: the actor named by the dialog
    (``Ses01F``: the female actor, who wears the motion-capture markers) on the left half, the
    other on the right. The speaker's half shows the utterance's class colour, the listener's
    half :data:`LISTENER`. ``video_seconds`` cuts a dialog's video to its first seconds, as some
    release videos end before the dialog's last labelled utterances.
    """
    session = root / "Session1"
    utterances = [(label, i) for label in range(4) for i in range(per_class)]
    dialogs = {"Ses01F_impro01": utterances[0::2], "Ses01M_script01": utterances[1::2]}
    for dialog, utts in dialogs.items():
        labels = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        lines, frames = [], []
        for n, (label, i) in enumerate([*utts, (-1, 0)]):
            speaker = "F" if n % 2 else "M"
            utt = f"{dialog}_{speaker}{n:03d}"
            start, end = 0.5 * n, 0.5 * n + 0.5
            code = IEMOCAP_CODE[CLASSES[label]] if label >= 0 else "fru"
            wave, colour, sentence = utterance_signals(max(label, 0), i)
            labels += [f"[{start:.4f} - {end:.4f}]\t{utt}\t{code}\t[2.5000, 2.5000, 2.5000]", ""]
            lines.append(f"{utt} [{start:08.4f}-{end:08.4f}]: {sentence}")
            on_left = speaker == dialog[5]
            picture = split_screen(colour, LISTENER) if on_left else split_screen(LISTENER, colour)
            frames += [picture] * int(0.5 * FPS)
            _write_wav(session / "sentences" / "wav" / dialog / f"{utt}.wav", wave)
        for sub, content in (("EmoEvaluation", labels), ("transcriptions", lines)):
            (session / "dialog" / sub).mkdir(parents=True, exist_ok=True)
            (session / "dialog" / sub / f"{dialog}.txt").write_text("\n".join(content) + "\n")
        if video_seconds and dialog in video_seconds:
            frames = frames[: int(round(video_seconds[dialog] * FPS))]
        write_video(session / "dialog" / "avi" / "DivX" / f"{dialog}.avi", frames)
    return root


#: (utterance id without the MSP-IMPROV- prefix, consensus letter); O (other) is dropped
MSP_IMPROV_UTTERANCES = [("S01A-F01-P-FM01", "A"), ("S01H-M01-R-MM01", "H"),
                         ("S02S-F02-S-FM02", "S"), ("S02N-M02-T-MF02", "N"),
                         ("S03A-F03-P-FM03", "O")]
MSP_IMPROV_CLASS = {"A": "angry", "H": "happy", "S": "sad", "N": "neutral", "O": "neutral"}


#: the class of each MSP-IMPROV consensus letter kept
MSP_IMPROV_LETTER = {"neutral": "N", "happy": "H", "sad": "S", "angry": "A"}


def msp_improv_utterances(per_class: int) -> list[tuple[str, str]]:
    """``per_class`` utterances of each class (speakers alternating between sessions 1 and 2),
    then one labelled O (other), as (id without the MSP-IMPROV- prefix, consensus letter)."""
    out = []
    for letter in MSP_IMPROV_LETTER.values():
        for i in range(per_class):
            speaker = f"{'FM'[i % 2]}0{1 + i % 2}"
            out.append((f"S{i + 1:02d}{letter}-{speaker}-P-{speaker[0]}M0{1 + i % 2}", letter))
    return [*out, ("S99O-F01-P-FM01", "O")]


def make_tiny_msp_improv(root: Path, transcripts: str = "all",
                         per_class: int | None = None) -> Path:
    """MSP-IMPROV as released: ``Evaluation.txt`` (starting with a UTF-8 byte-order mark) with a
    consensus line and rater lines per utterance, ``Audio/`` and ``Video/`` holding
    ``session<n>/<sentence>/<type>/<id>.wav|.avi``, and the human transcriptions
    ``Human_transcriptions/All_human_transcriptions/<id>.txt`` (``transcripts="all"``) or, as
    some guides show them, in session subfolders (``"sessions"``). Also ``transcripts.csv``
    (``id,text``) for the reader's ``transcripts`` option. The utterances are
    :data:`MSP_IMPROV_UTTERANCES`, or with ``per_class`` :func:`msp_improv_utterances`."""
    lines = []
    rows = []
    utterances = (MSP_IMPROV_UTTERANCES if per_class is None
                  else msp_improv_utterances(per_class))
    for n, (utt, code) in enumerate(utterances):
        lines += [f"UTD-IMPROV-{utt}.avi; {code}; A:3.000000; V:3.000000; D:3.000000 ; "
                  f"N:3.000000;", f"rater0{n}; Angry; ; A:3.0; V:3.0; D:3.0; N:3.0;", ""]
        full = f"MSP-IMPROV-{utt}"
        sentence, speaker, kind = utt.split("-")[:3]
        where = Path(f"session{int(speaker[1:])}") / sentence / kind
        label = CLASSES.index(MSP_IMPROV_CLASS[code])
        wave, colour, text = utterance_signals(label, n)
        _write_wav(root / "Audio" / where / f"{full}.wav", wave)
        write_video(root / "Video" / where / f"{full}.avi", [_plain(colour)] * 5)
        folder = (root / "Human_transcriptions" / "All_human_transcriptions"
                  if transcripts == "all" else
                  root / "Human_transcriptions" / f"session{int(speaker[1:])}")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{full}.txt").write_text(text + "\n")
        rows.append([full, text])
    (root / "Evaluation.txt").write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    with open(root / "transcripts.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        writer.writerows(rows)
    return root


def make_tiny_manifest(root: Path, per_class: int = 4) -> Path:
    """A manifest CSV with per-utterance wavs, frame folders and transcripts; returns the CSV."""
    from PIL import Image

    rows = []
    for label in range(4):
        for i in range(per_class):
            utt = f"utt{label}{i:02d}"
            wave, colour, sentence = utterance_signals(label, i)
            _write_wav(root / "audio" / f"{utt}.wav", wave)
            frames = root / "frames" / utt
            frames.mkdir(parents=True, exist_ok=True)
            for f in range(4):
                pixels = _plain(colour)
                pixels[f % FRAME_SIZE] = 255
                Image.fromarray(pixels).save(frames / f"frame{f}.png")
            rows.append([utt, CLASSES[label], f"audio/{utt}.wav", f"frames/{utt}", sentence])
    manifest = root / "corpus.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "label", "audio", "video", "text"])
        writer.writerows(rows)
    return manifest


def raw_config(corpus: str, path: Path, backbones: dict[str, Path], cache: Path | str,
               **overrides) -> dict:
    """A ``raw:`` config section with the three modalities on the tiny backbones."""
    config = {
        "corpus": corpus,
        "path": str(path),
        "modalities": {
            "acoustic": {"signal": "audio", "backbone": str(backbones["speech"]),
                         "trainable_layers": 2},
            "visual": {"signal": "video", "backbone": str(backbones["image"]),
                       "trainable_layers": 2},
            "lexical": {"signal": "text", "backbone": str(backbones["text"]),
                        "trainable_layers": 2},
        },
        "n_frames": 3,
        "cache_dir": str(cache),
    }
    if corpus == "manifest":
        config["classes"] = list(CLASSES)
    config.update(overrides)
    return config


def pair_config(source: tuple[str, Path], target: tuple[str, Path], backbones: dict[str, Path],
                cache: Path | str, **overrides) -> dict:
    """A two-corpus ``raw:`` section: ``source`` and ``target`` as (corpus name, path), the
    three modalities on the tiny backbones shared; a manifest gets the four class names."""
    config = raw_config("manifest", Path(), backbones, cache, **overrides)
    del config["corpus"], config["path"], config["classes"]
    for side, (corpus, path) in (("source", source), ("target", target)):
        config[side] = {"corpus": corpus, "path": str(path)}
        if corpus == "manifest":
            config[side]["classes"] = list(CLASSES)
    return config
