"""Raw signals: loading audio and video frames, and the paper's target-domain corruptions.

The corruptions follow Sun et al. (AAAI 2026, Sec. 4; docs/raw.md, "Corruptions of the target
half"): white noise on the waveform at SNR 1.0, video darkened to 20 % brightness plus Gaussian
noise at SNR 0.5, and 40 % of the words of each utterance replaced by the tokenizer's mask token.
They are pure functions of numpy arrays (or word lists) and an explicit ``np.random.Generator``;
:func:`item_rng` derives one generator per utterance from a seed and the utterance id, so a
corrupted item does not depend on batch order.

An SNR is a power ratio (``signal power / noise power``), not decibels. Signal power is the mean
square of the signal being corrupted, measured per utterance (per clip for frames).

Heavy optional dependencies are imported where used: ``soundfile`` and ``scipy`` for audio,
``Pillow`` for frame folders, ``av`` (PyAV) for video files.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from math import gcd
from pathlib import Path
from typing import TypeVar

import numpy as np

from boomda.errors import ConfigError, DataError

T = TypeVar("T")

#: file name endings read as frames inside a frame folder
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
#: the parts of a frame ``crop`` keeps: the left or right half (a split-screen recording such as
#: IEMOCAP's dialog videos, one actor per half), or the whole frame (None)
CROPS = ("left", "right")


def item_rng(seed: int, key: str) -> np.random.Generator:
    """A generator for one utterance: seeded by ``seed`` and a SHA-256 of ``key`` (its id).

    The same (seed, key) gives the same stream on every platform and in every order of items.
    """
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([int(seed), *words]))


# --- corruptions --------------------------------------------------------------------------------


def add_white_noise(wave: np.ndarray, snr: float, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise at signal-to-noise ratio ``snr`` (power ratio) on one utterance.

    ``x' = x + n``, ``n ~ N(0, P / snr)`` i.i.d. per sample, ``P = mean(x^2)`` over this utterance.
    A silent utterance (P = 0) is returned unchanged. Returns float32 of the shape of ``wave``.
    """
    _check_snr(snr)
    x = np.asarray(wave, dtype=np.float32)
    if x.size == 0:
        raise DataError("add_white_noise: the waveform is empty")
    power = float(np.mean(np.square(x, dtype=np.float64)))
    std = np.float32(np.sqrt(power / snr))
    return x + rng.standard_normal(x.shape, dtype=np.float32) * std


def darken_and_noise(
    frames: np.ndarray,
    brightness: float,
    snr: float,
    rng: np.random.Generator,
    clip: bool = False,
) -> np.ndarray:
    """Brightness scaling then Gaussian noise, on the frames of one clip.

    ``frames`` are uint8 (0..255, divided by 255 here) or float in [0, 1], any shape, e.g.
    (F, H, W, 3). ``x' = b x + n``, ``n ~ N(0, P / snr)`` i.i.d. per value, with ``P`` the mean
    square of the darkened frames ``b x`` of this clip. Returns float32 in the [0, 1] scale;
    values are not clipped unless ``clip`` (clipping lowers the noise power, so the SNR is exact
    only without it).
    """
    _check_snr(snr)
    if not (isinstance(brightness, int | float) and np.isfinite(brightness) and brightness >= 0):
        raise ConfigError(f"brightness must be a number >= 0, got {brightness!r}")
    x = _unit_float(frames, "darken_and_noise")
    dark = x * np.float32(brightness)
    power = float(np.mean(np.square(dark, dtype=np.float64)))
    std = np.float32(np.sqrt(power / snr))
    out = dark + rng.standard_normal(dark.shape, dtype=np.float32) * std
    return np.clip(out, 0.0, 1.0) if clip else out


def mask_positions(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """``round(fraction * n)`` distinct sorted positions in ``0..n-1``, drawn without replacing."""
    if not (isinstance(fraction, int | float) and 0.0 <= fraction <= 1.0):
        raise ConfigError(f"mask fraction must lie in [0, 1], got {fraction!r}")
    k = int(round(fraction * n))
    return np.sort(rng.choice(n, size=k, replace=False)) if k else np.zeros(0, dtype=np.int64)


def mask_words(
    words: Sequence[T], fraction: float, mask_token: T, rng: np.random.Generator
) -> list[T]:
    """Replace ``round(fraction * len(words))`` of one utterance's words (or token ids) by
    ``mask_token``; the positions (:func:`mask_positions`) are drawn for this utterance."""
    if isinstance(words, str):
        raise DataError("mask_words: pass a list of words (e.g. text.split()), not a string; "
                        "mask_text masks a whole sentence")
    out = list(words)
    for position in mask_positions(len(out), fraction, rng):
        out[position] = mask_token
    return out


def mask_text(text: str, fraction: float, mask_token: str, rng: np.random.Generator) -> str:
    """:func:`mask_words` on the whitespace-separated words of ``text``, joined by single spaces."""
    return " ".join(mask_words(text.split(), fraction, mask_token, rng))


def _check_snr(snr: float) -> None:
    if not (isinstance(snr, int | float) and snr > 0 and not np.isnan(snr)):
        raise ConfigError(f"snr must be a positive number (a power ratio), got {snr!r}")


def _unit_float(frames: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(frames)
    if x.size == 0:
        raise DataError(f"{what}: no frames")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{what}: frames must be uint8 or float in [0, 1], got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise DataError(f"{what}: float frames must lie in [0, 1], got values in "
                        f"[{float(x.min()):g}, {float(x.max()):g}] (0..255 floats? divide by 255)")
    return x


# --- audio --------------------------------------------------------------------------------------


def load_audio(
    path: str | Path, sr: int = 16000, max_seconds: float | None = None
) -> np.ndarray:
    """A mono float32 waveform at ``sr`` Hz: channels averaged, resampled with
    ``scipy.signal.resample_poly`` and truncated to the first ``max_seconds`` (if given)."""
    sf = _require("soundfile", "reading audio")
    from scipy.signal import resample_poly

    path = Path(path)
    if not path.is_file():
        raise DataError(f"audio file not found: {path}")
    if max_seconds is not None and not max_seconds > 0:
        raise ConfigError(f"max_seconds must be positive, got {max_seconds!r}")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError) as error:
        raise DataError(f"cannot read audio file {path}: {error}") from None
    wave = data.mean(axis=1)
    if wave.size == 0:
        raise DataError(f"audio file {path} holds no samples")
    if max_seconds is not None:
        wave = wave[: int(np.ceil(max_seconds * rate)) + 1]
    if rate != sr:
        common = gcd(int(rate), int(sr))
        wave = resample_poly(wave, sr // common, int(rate) // common).astype(np.float32)
    if max_seconds is not None:
        wave = wave[: int(round(max_seconds * sr))]
    return np.ascontiguousarray(wave, dtype=np.float32)


# --- video frames -------------------------------------------------------------------------------


def sample_frames(n_total: int, k: int) -> np.ndarray:
    """``k`` evenly spaced frame indices in ``0..n_total-1``: the centres of k equal segments,
    ``floor((i + 0.5) n_total / k)``; frames repeat when ``n_total < k``."""
    if k < 1:
        raise ConfigError(f"number of frames must be >= 1, got {k}")
    if n_total < 1:
        raise DataError("cannot sample frames from a clip with no frames")
    return np.floor((np.arange(k) + 0.5) * n_total / k).astype(np.int64)


def read_frames(
    path: str | Path,
    k: int = 10,
    start: float | None = None,
    end: float | None = None,
    size: int | None = None,
    crop: str | None = None,
) -> np.ndarray:
    """``k`` evenly sampled RGB frames (k, H, W, 3) uint8 from a folder of images or a video file.

    ``start``/``end`` (seconds) cut a clip out of a video file; a frame folder is one clip.
    ``crop`` (``"left"``/``"right"``) keeps one half of every frame, before ``size`` resizes it
    to ``size x size``.
    """
    path = Path(path)
    if path.is_dir():
        if start is not None or end is not None:
            raise DataError(f"{path}: start/end apply to video files, not to frame folders")
        return read_frame_folder(path, k, size, crop)
    return read_video_frames(path, k, start, end, size, crop)


def crop_frame(pixels: np.ndarray, crop: str | None) -> np.ndarray:
    """One frame (H, W, ...) cut to its left half (columns ``0 .. W//2 - 1``), its right half
    (``W//2 .. W - 1``) or kept whole (``crop=None``)."""
    _check_crop(crop)
    if crop is None:
        return pixels
    middle = pixels.shape[1] // 2
    return np.ascontiguousarray(pixels[:, :middle] if crop == "left" else pixels[:, middle:])


def _check_crop(crop: str | None) -> None:
    if crop is not None and crop not in CROPS:
        raise ConfigError(f"frame crop must be one of {', '.join(CROPS)} or None, got {crop!r}")


def read_frame_folder(folder: str | Path, k: int = 10, size: int | None = None,
                      crop: str | None = None) -> np.ndarray:
    """``k`` evenly sampled frames of a folder of images (png/jpg/bmp), in natural name order
    (``frame2`` before ``frame10``), cut to a half by ``crop`` and resized to ``size``;
    (k, H, W, 3) uint8."""
    image = _require("PIL.Image", "reading frame folders", package="pillow")
    _check_crop(crop)
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"frame folder not found: {folder}")
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                   key=lambda p: _natural_key(p.name))
    if not files:
        raise DataError(f"frame folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    frames = []
    for index in sample_frames(len(files), k):
        try:
            with image.open(files[index]) as im:
                im = im.convert("RGB")
                if crop is not None:
                    im = image.fromarray(crop_frame(np.asarray(im), crop))
                if size is not None:
                    im = im.resize((size, size), image.Resampling.BILINEAR)
                frames.append(np.asarray(im, dtype=np.uint8))
        except OSError as error:
            raise DataError(f"cannot read frame {files[index]}: {error}") from None
    return _stack_frames(frames, folder)


def read_video_frames(
    path: str | Path,
    k: int = 10,
    start: float | None = None,
    end: float | None = None,
    size: int | None = None,
    crop: str | None = None,
) -> np.ndarray:
    """``k`` evenly sampled frames (k, H, W, 3) uint8 of a video file decoded with PyAV, taken
    among the frames whose time lies in ``[start, end)`` seconds (the whole video by default),
    cut to a half by ``crop`` and resized to ``size``.

    A clip that the video covers only in part is refused (:func:`clip_covered`): its frames would
    show only the covered part of the utterance.
    """
    av = _require("av", "reading video files")
    _check_crop(crop)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"video file not found: {path}")
    if start is not None and end is not None and end <= start:
        raise DataError(f"{path}: clip end {end} s is not after its start {start} s")
    kept = []
    with _open_video(path) as container:
        stream = container.streams.video[0]
        if end is not None:
            video_end, period = _video_span(av, container, stream, path)
            if not clip_covered(video_end, period, end):
                raise DataError(f"video file {path.name} ends at {video_end:.2f} s, before the "
                                f"clip's end at {end:.2f} s ({path})")
        try:
            if start and stream.time_base is not None:
                container.seek(int(start / stream.time_base), stream=stream)
            for frame in container.decode(stream):
                t = frame.time
                if t is None:
                    continue
                if start is not None and t < start - 1e-6:
                    continue
                if end is not None and t >= end:
                    break
                kept.append(frame)
        except av.FFmpegError as error:
            raise DataError(f"cannot decode video file {path}: {error}") from None
        if not kept:
            raise DataError(f"video file {path} has no frames between {start or 0} s and "
                            f"{'the end' if end is None else f'{end} s'}")
        frames = []
        for index in sample_frames(len(kept), k):
            frame = kept[index]
            if crop is not None:
                half = crop_frame(frame.to_ndarray(format="rgb24"), crop)
                frame = av.VideoFrame.from_ndarray(half, format="rgb24")
            if size is not None:
                frame = frame.reformat(width=size, height=size)
            frames.append(frame.to_ndarray(format="rgb24"))
    return _stack_frames(frames, path)


def clip_covered(video_end: float, frame_period: float, clip_end: float) -> bool:
    """Whether a video that ends at ``video_end`` seconds covers a clip until ``clip_end``: the
    clip may end at most one frame period after the video (its last frame is then still the
    clip's last one). Anything later is not covered, however much of the clip the video holds."""
    return clip_end <= video_end + frame_period + 1e-6


def video_span(path: str | Path) -> tuple[float, float]:
    """``(end, frame_period)`` of a video file in seconds, from the container's header (the
    video stream's start time and duration, else the container's duration); only without either
    are the packets read through (not decoded). The frame period is 1 / the stream's frame rate
    (0 when the rate is unknown)."""
    av = _require("av", "reading video files")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"video file not found: {path}")
    with _open_video(path) as container:
        return _video_span(av, container, container.streams.video[0], path)


def _open_video(path: Path):
    av = _require("av", "reading video files")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        raise DataError(f"cannot open video file {path}: {error}") from None
    if not container.streams.video:
        container.close()
        raise DataError(f"video file {path} has no video stream")
    return container


def _video_span(av, container, stream, path: Path) -> tuple[float, float]:
    rate = stream.average_rate or stream.guessed_rate
    period = float(1 / rate) if rate else 0.0
    base = stream.time_base
    if stream.duration is not None and base is not None:
        return float((stream.start_time or 0) * base + stream.duration * base), period
    if container.duration is not None:
        return ((container.start_time or 0) + container.duration) / av.time_base, period
    last = None
    try:
        for packet in container.demux(stream):
            if packet.pts is not None:
                packet_end = packet.pts + (packet.duration or 0)
                last = packet_end if last is None else max(last, packet_end)
    except av.FFmpegError as error:
        raise DataError(f"cannot read video file {path}: {error}") from None
    if last is None or base is None:
        raise DataError(f"video file {path} holds no timed frames")
    container.seek(0)
    return float(last * base), period


def _stack_frames(frames: list[np.ndarray], source: Path) -> np.ndarray:
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise DataError(f"{source}: frames differ in size {sorted(shapes)}; pass size= to resize")
    return np.stack(frames)


def _natural_key(name: str) -> list[object]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _require(module: str, purpose: str, package: str | None = None):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        name = package or module.split(".")[0]
        raise ImportError(f"{purpose} needs the optional package {name!r}: "
                          f"pip install {name}") from None
