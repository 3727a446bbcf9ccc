"""A domain pair from a raw corpus: the paper's protocol on audio, video and transcripts.

Steps (Sun et al., AAAI 2026, Sec. 4; SPEC section 6):

1. read the corpus (:mod:`boomda.data.corpora`): IEMOCAP, MSP-IMPROV or a manifest CSV; the
   utterances that cannot be used (missing files, a video that ends before the utterance) stop
   the run here, or with ``skip_missing`` are dropped and reported (a warning with their count)
   before anything is computed;
2. split what remains into stratified random halves (source, target) and hold out a stratified
   part of the source, all from one seed;
3. per modality and utterance: load the signal (audio at the backbone's rate, cut to
   ``max_seconds``; ``n_frames`` evenly sampled frames; the transcript), corrupt it in the target
   half (:mod:`boomda.data.raw`, one seeded generator per utterance), prepare it as the backbone
   expects (waveform normalisation, frame resizing and normalisation, tokenisation), and run the
   backbone's frozen part, read from and written to the cache (:mod:`boomda.data.frozen_cache`);
4. pack the frozen states of each modality as sequences (:func:`pack_sequences`).

The trainable top of each backbone and its sequence encoder then form the modality's encoder
(:meth:`RawPair.encoders`).
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from boomda.config import RawDataConfig, RawModalityConfig
from boomda.data import raw as signals
from boomda.data.container import MultimodalData, pack_sequences
from boomda.data.corpora import RawCorpus, RawItem, read_iemocap, read_manifest, read_msp_improv
from boomda.data.frozen_cache import FrozenCache, cache_key, file_identity, to_dtype
from boomda.data.pair import DomainPair, stratified_split
from boomda.data.shifts import split_spec
from boomda.errors import ConfigError, DataError

#: corruption kind -> (the signal it applies to, its parameters with the paper's values)
CORRUPTIONS: dict[str, tuple[str, dict[str, float]]] = {
    "noise": ("audio", {"snr": 1.0}),
    "darken_noise": ("video", {"brightness": 0.2, "snr": 0.5}),
    "mask_words": ("text", {"fraction": 0.4}),
}
DEFAULT_CORRUPTION = {"audio": "noise", "video": "darken_noise", "text": "mask_words"}
BACKBONE_KIND = {"audio": "speech", "video": "image", "text": "text"}


def parse_corruption(spec: str, signal: str, where: str) -> dict[str, Any] | None:
    """``"default"``, ``"none"`` or ``"kind:key=value,..."`` -> ``{"kind": ..., params}`` (None
    for no corruption); the kind must fit the signal."""
    if spec.strip() == "none":
        return None
    kind, params = ((DEFAULT_CORRUPTION[signal], {}) if spec.strip() == "default"
                    else split_spec(spec, where))
    if kind not in CORRUPTIONS:
        raise ConfigError(f"{where}: unknown corruption {kind!r}; choose from "
                          f"{', '.join(CORRUPTIONS)} or none")
    target, defaults = CORRUPTIONS[kind]
    if target != signal:
        raise ConfigError(f"{where}: corruption {kind!r} applies to {target}, not {signal}")
    unknown = set(params) - set(defaults)
    if unknown:
        raise ConfigError(f"{where}: corruption {kind!r} has no parameter "
                          f"{sorted(unknown)[0]!r}; its parameters: {', '.join(defaults)}")
    return {"kind": kind, **defaults, **params}


def corruption_to_str(corruption: Mapping[str, Any] | None) -> str:
    if corruption is None:
        return "none"
    params = ",".join(f"{k}={v:g}" for k, v in corruption.items() if k != "kind")
    return f"{corruption['kind']}:{params}"


def _read_preprocessor(folder: str) -> dict[str, Any]:
    path = Path(folder) / "preprocessor_config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None


class SignalPipeline:
    """One raw modality: signal loading, corruption, preparation and the frozen backbone part.

    :meth:`frozen_states` gives the frozen part's output for an utterance, (T, H) for audio and
    text and (F * (P + 1), H) for video (F frames of P patches plus CLS), through the cache.
    """

    def __init__(self, name: str, spec: RawModalityConfig, raw: RawDataConfig,
                 cache: FrozenCache | None, device: torch.device) -> None:
        from boomda.nn.backbones import PretrainedBackbone, load_tokenizer

        self.name = name
        self.signal = spec.signal
        self.where = f"raw.modalities.{name}"
        self.corruption = parse_corruption(spec.corruption, spec.signal,
                                           f"{self.where}.corruption")
        folder = os.path.expanduser(spec.backbone)
        if os.path.isdir(folder):  # an absolute path, so a saved model finds it from anywhere
            folder = os.path.abspath(folder)
        try:
            self.backbone = PretrainedBackbone.from_pretrained(
                folder, BACKBONE_KIND[spec.signal], spec.trainable_layers)
        except ConfigError as error:
            raise ConfigError(f"{self.where}.backbone: {error}") from None
        self.backbone.to(device).eval()
        self.sequence = spec.encoder or None
        self.device = device
        self.cache = cache
        self.dtype = np.dtype(raw.cache_dtype)
        pre = _read_preprocessor(folder)
        self.settings: dict[str, Any] = {"signal": spec.signal}
        self.tokenizer = None
        if spec.signal == "audio":
            self.settings.update(rate=int(pre.get("sampling_rate", 16000)),
                                 normalize=bool(pre.get("do_normalize", True)),
                                 max_seconds=raw.max_seconds)
        elif spec.signal == "video":
            size = pre.get("size", self.backbone.model.config.image_size)
            if isinstance(size, Mapping):
                size = size.get("height", size.get("shortest_edge"))
            self.settings.update(size=int(size), n_frames=raw.n_frames,
                                 mean=list(pre.get("image_mean", [0.5, 0.5, 0.5])),
                                 std=list(pre.get("image_std", [0.5, 0.5, 0.5])),
                                 normalize=bool(pre.get("do_normalize", True)))
        else:
            self.tokenizer = load_tokenizer(folder)
            if self.corruption is not None and self.tokenizer.mask_token is None:
                raise ConfigError(f"{self.where}: the tokenizer of {spec.backbone} has no mask "
                                  f"token, which word masking needs")
            positions = getattr(self.backbone.model.config, "max_position_embeddings", None)
            if positions is not None and raw.max_tokens > positions:
                raise ConfigError(f"raw.max_tokens = {raw.max_tokens} exceeds the "
                                  f"{positions} positions of the text backbone {folder}")
            vocab = json.dumps(sorted(self.tokenizer.get_vocab().items()))
            self.settings.update(max_tokens=raw.max_tokens,
                                 tokenizer=cache_key({"vocab": vocab,
                                                      "class": type(self.tokenizer).__name__,
                                                      "lower": getattr(self.tokenizer,
                                                                       "do_lower_case", None)}))
        self.fingerprint = self.backbone.fingerprint()

    # -- inputs ----------------------------------------------------------------------------
    def _rng(self, item: RawItem, seed: int) -> np.random.Generator:
        return signals.item_rng(seed, f"{self.signal}/{item.id}")

    def model_inputs(self, item: RawItem, corrupt: bool,
                     seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The backbone's input for one utterance (a batch of one) and its mask."""
        c = self.corruption if corrupt else None
        s = self.settings
        if self.signal == "audio":
            wave = signals.load_audio(item.audio, s["rate"], s["max_seconds"])
            if c is not None:
                wave = signals.add_white_noise(wave, c["snr"], self._rng(item, seed))
            if s["normalize"]:
                wave = (wave - wave.mean()) / np.sqrt(wave.var() + 1e-7)
            return torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None], None
        if self.signal == "video":
            frames = signals.read_frames(item.video, s["n_frames"], item.start, item.end,
                                         size=s["size"], crop=item.crop)
            if c is not None:
                x = signals.darken_and_noise(frames, c["brightness"], c["snr"],
                                             self._rng(item, seed))
            else:
                x = frames.astype(np.float32) / np.float32(255.0)
            if s["normalize"]:
                x = (x - np.asarray(s["mean"], np.float32)) / np.asarray(s["std"], np.float32)
            pixels = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
            return pixels[None].float(), None
        text = item.text or ""
        if c is not None:
            text = signals.mask_text(text, c["fraction"], self.tokenizer.mask_token,
                                     self._rng(item, seed))
        encoded = self.tokenizer(text, truncation=True, max_length=s["max_tokens"],
                                 return_tensors="pt")
        return encoded["input_ids"], encoded["attention_mask"]

    def key(self, item: RawItem, corrupt: bool, seed: int) -> str:
        corruption = self.corruption if corrupt else None
        if self.signal == "text":
            source: dict[str, Any] = {"text": item.text}
        else:
            path = item.audio if self.signal == "audio" else item.video
            source = {**file_identity(path), "start": item.start, "end": item.end}
            if self.signal == "video" and item.crop is not None:
                source["crop"] = item.crop  # (whole frames keep the keys they always had)
        return cache_key({
            "backbone": self.fingerprint, "settings": self.settings, "input": source,
            "corruption": corruption,
            # the corruption's random draw depends on the seed and the utterance id
            "seed": seed if corruption else None, "id": item.id if corruption else None,
        })

    @torch.no_grad()
    def compute(self, item: RawItem, corrupt: bool, seed: int) -> np.ndarray:
        inputs, mask = self.model_inputs(item, corrupt, seed)
        mask = None if mask is None else mask.to(self.device)
        states = self.backbone.frozen_forward(inputs.to(self.device), mask).hidden[0]
        if self.signal == "video":
            if self.backbone.trainable_layers == 0:
                states = states[:, :1]  # a frozen model: only the CLS embedding is used
            states = states.flatten(0, 1)  # (F, P + 1, H) -> (F * (P + 1), H)
        return states.float().cpu().numpy()

    def frozen_states(self, item: RawItem, corrupt: bool, seed: int) -> np.ndarray:
        if self.cache is None:
            return to_dtype(self.compute(item, corrupt, seed), self.dtype, self.where)
        return self.cache.get_or_compute(self.name, self.key(item, corrupt, seed),
                                         lambda: self.compute(item, corrupt, seed))


def _pipelines(raw: RawDataConfig, specs: Mapping[str, RawModalityConfig],
               device: torch.device) -> tuple[FrozenCache | None, dict[str, SignalPipeline]]:
    """The cache ``raw`` names (None without ``cache_dir``) and one pipeline per modality."""
    cache = (FrozenCache(os.path.expanduser(raw.cache_dir), raw.cache_dtype) if raw.cache_dir
             else None)
    return cache, {m: SignalPipeline(m, spec, raw, cache, device) for m, spec in specs.items()}


def read_corpus(raw: RawDataConfig, signals_used: list[str]) -> RawCorpus:
    """The corpus a raw config names, read for the given signals."""
    sessions = [int(s) for s in raw.sessions] or None
    path = os.path.expanduser(raw.path)
    if raw.corpus == "iemocap":
        return read_iemocap(path, sessions, raw.merge_excited, raw.skip_missing,
                            signals_used, raw.video_crop)
    if raw.corpus == "msp-improv":
        return read_msp_improv(path, sessions, os.path.expanduser(raw.transcripts) or None,
                               raw.skip_missing, signals_used)
    return read_manifest(path, raw.classes or None, raw.skip_missing, signals_used)


@dataclass
class RawPair:
    """The domain pair of packed frozen states, the pipelines that made it, and the utterance
    ids of each part (``source``, ``target``, ``source_holdout``) in row order."""

    pair: DomainPair
    pipelines: dict[str, SignalPipeline]
    info: dict[str, Any] = field(default_factory=dict)
    ids: dict[str, list[str]] = field(default_factory=dict)

    def encoders(self, dim: int, dropout: float) -> dict:
        """One new :class:`~boomda.nn.backbone_encoder.BackboneEncoder` per modality, on a copy
        of the pretrained backbone (so every model trained on this pair starts from the same
        weights). Pass this method as ``DomainAdapter.fit(..., encoders=raw_pair.encoders)``."""
        from boomda.nn.backbone_encoder import BackboneEncoder

        return {m: BackboneEncoder(copy.deepcopy(p.backbone), dim, p.sequence, dropout,
                                   fingerprint=p.fingerprint)
                for m, p in self.pipelines.items()}


def build_raw_pair(
    raw: RawDataConfig,
    *,
    seed: int = 0,
    holdout: float = 0.2,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> RawPair:
    """The paper's protocol on a raw corpus (module docstring); everything derives from
    ``seed``. Utterances whose signal cannot be read stop the run with an error naming the file,
    or, with ``raw.skip_missing``, are dropped and counted in ``info``. Those found when the
    corpus is read (missing files, videos that end early) are dropped before the split and
    reported at once in a warning, with their count, before any feature is computed."""
    raw.validate()
    if not 0.0 <= holdout < 1.0:
        raise DataError(f"holdout must lie in [0, 1), got {holdout}")
    specs = raw.modality_configs()
    corpus = read_corpus(raw, sorted({s.signal for s in specs.values()}))
    if corpus.skipped:
        warnings.warn(corpus.skip_summary(), stacklevel=2)
    cache, pipelines = _pipelines(raw, specs, torch.device(device))

    labels = corpus.labels
    rng = np.random.default_rng(seed)
    source_idx, target_idx = stratified_split(labels, 0.5, rng)
    holdout_idx = np.zeros(0, dtype=np.int64)
    if holdout > 0:
        hold, train = stratified_split(labels[source_idx], holdout, rng)
        holdout_idx, source_idx = source_idx[hold], source_idx[train]

    unreadable: list[str] = []
    parts, ids = {}, {}
    for part, index, corrupt in (("source", source_idx, False), ("target", target_idx, True),
                                 ("source_holdout", holdout_idx, False)):
        parts[part], ids[part] = _extract(corpus, index, pipelines, corrupt, seed,
                                          raw.skip_missing, unreadable, part, progress)
    n_classes = len(corpus.classes)
    holdout_data = parts["source_holdout"] if holdout > 0 else None
    pair = DomainPair(parts["source"], parts["target"], n_classes, holdout_data)
    info = {
        "corpus": raw.corpus, "path": str(raw.path), "classes": list(corpus.classes),
        "seed": seed, "holdout": holdout, "n_utterances": len(corpus),
        "class_counts": corpus.class_counts,
        "skipped_missing": corpus.n_skipped, "skipped_unreadable": len(unreadable),
        "skipped_by_reason": dict(corpus.skip_counts),
        "skipped": list(corpus.skipped) + unreadable,
        "corruptions": {m: corruption_to_str(p.corruption) for m, p in pipelines.items()},
        "backbones": {m: {"source": p.backbone.source, "fingerprint": p.fingerprint[:16],
                          "trainable_layers": p.backbone.trainable_layers}
                      for m, p in pipelines.items()},
        "cache": None if cache is None else {"dir": str(cache.root), "hits": cache.hits,
                                             "misses": cache.misses},
    }
    pair.info = info
    return RawPair(pair, pipelines, info, ids)


def raw_inputs(
    raw: RawDataConfig,
    manifest: str | Path,
    classes: list[str],
    *,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> tuple[MultimodalData, list[str], RawCorpus]:
    """Clean (uncorrupted) packed frozen states of the utterances of a manifest CSV, prepared as
    ``raw`` says (the settings a model was trained with): the inputs for prediction. The
    ``label`` column is optional; the data carry labels only when every row has one."""
    specs = raw.modality_configs()
    corpus = read_manifest(manifest, classes, raw.skip_missing,
                           sorted({s.signal for s in specs.values()}), labels_required=False)
    cache, pipelines = _pipelines(raw, specs, torch.device(device))
    data, ids = _extract(corpus, np.arange(len(corpus)), pipelines, False, 0, raw.skip_missing,
                         [], "inputs", progress)
    return data, ids, corpus


def _extract(corpus: RawCorpus, index: np.ndarray, pipelines: dict[str, SignalPipeline],
             corrupt: bool, seed: int, skip: bool, unreadable: list[str], part: str,
             progress: bool) -> tuple[MultimodalData, list[str]]:
    states: dict[str, list[np.ndarray]] = {m: [] for m in pipelines}
    labels, ids = [], []
    items = [corpus.items[i] for i in index]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), desc=f"frozen features ({part})", unit="utt", leave=False)
    try:
        for item in items:
            try:
                row = {m: p.frozen_states(item, corrupt, seed) for m, p in pipelines.items()}
            except DataError as error:
                if not skip:
                    raise DataError(f"{error} (utterance {item.id}; set raw.skip_missing: true "
                                    f"to skip such utterances)") from None
                unreadable.append(f"{item.id}: {error}")
                continue
            finally:
                if bar is not None:
                    bar.update(1)
            for m, value in row.items():
                states[m].append(value)
            labels.append(item.label)
            ids.append(item.id)
    finally:
        if bar is not None:
            bar.close()
    if not labels:
        if len(items) == 0:
            empty = {m: np.zeros((0, 1, 1 + p.backbone.hidden_size), p.dtype)
                     for m, p in pipelines.items()}
            return MultimodalData(empty, np.zeros(0, np.int64), name=part), []
        raise DataError(f"{part}: no utterance could be read ({len(items)} skipped)")
    # the states are already rounded to the cache dtype: packing them in it loses nothing
    views = {m: pack_sequences(v, dtype=p.dtype) for (m, v), p in
             zip(states.items(), pipelines.values(), strict=True)}
    y = np.asarray(labels, dtype=np.int64)
    if (y < 0).any():  # unlabelled rows (data to predict on)
        return MultimodalData(views, None, name=part), ids
    return MultimodalData(views, y, name=part), ids
