"""Per-signal pipelines of a raw modality: load the signal, corrupt it, prepare it as the
backbone expects and run the backbone's frozen part, through the cache.

One class per signal kind (``RawModalityConfig.signal``): :class:`AudioPipeline`,
:class:`VideoPipeline`, :class:`TextPipeline`, on the shared :class:`SignalPipeline`, which does
what does not depend on the signal (the backbone, the corruption's configuration, the cache key,
the frozen forward pass). :data:`PIPELINES` maps a signal kind to its class;
``SignalPipeline(name, spec, ...)`` builds the class of ``spec.signal``. The corruptions are the
paper's (Sun et al., AAAI 2026, Sec. 4; docs/raw.md, "Corruptions of the target half").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from boomda.config import RawDataConfig, RawModalityConfig
from boomda.data import signals
from boomda.data.frozen_cache import FrozenCache, cache_key, file_identity, to_dtype
from boomda.data.readers import RawItem
from boomda.data.shifts import split_spec
from boomda.errors import ConfigError


class SignalPipeline:
    """One raw modality: signal loading, corruption, preparation and the frozen backbone part.

    :meth:`frozen_states` gives the frozen part's output for an utterance, (T, H) for audio and
    text and (F * (P + 1), H) for video (F frames of P patches plus CLS), through the cache.

    A subclass per signal sets :attr:`signal`, :attr:`backbone_kind` and :attr:`corruptions`
    and implements :meth:`configure` (its preparation settings), :meth:`prepare` (the backbone's
    input for one utterance) and :meth:`source` (what identifies the input in the cache key).
    """

    #: the signal kind (``RawModalityConfig.signal``)
    signal: ClassVar[str]
    #: the kind of pretrained model the backbone folder must hold (``PretrainedBackbone``)
    backbone_kind: ClassVar[str]
    #: the signal's corruptions: kind -> parameters with the paper's values; the first is the
    #: default
    corruptions: ClassVar[dict[str, dict[str, float]]]

    def __new__(cls, *args: Any, **kwargs: Any) -> SignalPipeline:
        if cls is SignalPipeline:  # the class of the spec's signal
            spec = kwargs["spec"] if "spec" in kwargs else args[1]
            cls = pipeline_class(spec.signal)
        return super().__new__(cls)

    def __init__(self, name: str, spec: RawModalityConfig, raw: RawDataConfig,
                 cache: FrozenCache | None, device: torch.device) -> None:
        from boomda.nn.backbones import PretrainedBackbone
        from boomda.nn.hub import resolve_backbone

        if spec.signal != self.signal:
            raise ConfigError(f"raw.modalities.{name}: a {type(self).__name__} reads "
                              f"{self.signal}, not {spec.signal}")
        self.name = name
        self.where = f"raw.modalities.{name}"
        self.corruption = parse_corruption(spec.corruption, spec.signal,
                                           f"{self.where}.corruption")
        try:
            #: where the weights came from: the folder, or the hub id and its cached revision
            self.resolved = resolve_backbone(spec.backbone, allow_download=raw.allow_download)
            folder = self.resolved.folder
            self.backbone = PretrainedBackbone.from_pretrained(
                folder, self.backbone_kind, spec.trainable_layers)
        except ConfigError as error:
            raise ConfigError(f"{self.where}.backbone: {error}") from None
        #: SHA-256 of the whole model as loaded (which weights the run started from)
        self.weights_fingerprint = self.backbone.weights_fingerprint()
        self.backbone.to(device).eval()
        self.sequence = spec.encoder or None
        self.device = device
        self.cache = cache
        self.dtype = np.dtype(raw.cache_dtype)
        self.settings: dict[str, Any] = {"signal": spec.signal}
        #: the text pipeline's ``transformers`` tokenizer (None for the other signals)
        self.tokenizer: Any = None
        self.configure(spec, raw, folder, _read_preprocessor(folder))
        self.fingerprint = self.backbone.fingerprint()

    def backbone_record(self) -> dict[str, Any]:
        """Which weights this modality uses, for the run folder: the backbone as given, the hub
        id and the commit of its cached snapshot (``"local"`` for a folder), the folder loaded,
        the SHA-256 of all the weights as loaded (``weights_fingerprint``), the fingerprint of
        the frozen part (16 hex digits, the cache's key) and k."""
        return {**self.resolved.record(), "weights_fingerprint": self.weights_fingerprint,
                "fingerprint": self.fingerprint[:16],
                "trainable_layers": self.backbone.trainable_layers}

    # -- per signal ------------------------------------------------------------------------
    def configure(self, spec: RawModalityConfig, raw: RawDataConfig, folder: str,
                  preprocessor: Mapping[str, Any]) -> None:
        """Fill :attr:`settings` (they enter the cache key) from ``raw`` and the backbone
        folder's ``preprocessor_config.json``; check that the backbone fits."""
        raise NotImplementedError

    def prepare(self, item: RawItem, corruption: Mapping[str, Any] | None,
                seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The backbone's input for one utterance (a batch of one) and its mask, corrupted by
        ``corruption`` (None: clean)."""
        raise NotImplementedError

    def source(self, item: RawItem) -> dict[str, Any]:
        """What identifies the utterance's input in the cache key."""
        raise NotImplementedError

    def arrange(self, states: torch.Tensor) -> torch.Tensor:
        """The frozen part's output (a batch of one) as the states that are kept."""
        return states

    # -- inputs ----------------------------------------------------------------------------
    def _rng(self, item: RawItem, seed: int) -> np.random.Generator:
        return signals.item_rng(seed, f"{self.signal}/{item.id}")

    def model_inputs(self, item: RawItem, corrupt: bool,
                     seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The backbone's input for one utterance (a batch of one) and its mask."""
        return self.prepare(item, self.corruption if corrupt else None, seed)

    def key(self, item: RawItem, corrupt: bool, seed: int) -> str:
        corruption = self.corruption if corrupt else None
        return cache_key({
            "backbone": self.fingerprint, "settings": self.settings, "input": self.source(item),
            "corpus": item.corpus,
            "corruption": corruption,
            # the corruption's random draw depends on the seed and the utterance id
            "seed": seed if corruption else None, "id": item.id if corruption else None,
        })

    @torch.no_grad()
    def compute(self, item: RawItem, corrupt: bool, seed: int) -> np.ndarray:
        inputs, mask = self.model_inputs(item, corrupt, seed)
        mask = None if mask is None else mask.to(self.device)
        states = self.backbone.frozen_forward(inputs.to(self.device), mask).hidden[0]
        return self.arrange(states).float().cpu().numpy()

    def frozen_states(self, item: RawItem, corrupt: bool, seed: int) -> np.ndarray:
        if self.cache is None:
            return to_dtype(self.compute(item, corrupt, seed), self.dtype, self.where)
        return self.cache.get_or_compute(self.name, self.key(item, corrupt, seed),
                                         lambda: self.compute(item, corrupt, seed))


class AudioPipeline(SignalPipeline):
    """A waveform at the backbone's rate, cut to ``max_seconds``, with white noise in the target
    half and normalised per utterance when the backbone's preprocessor says so."""

    signal = "audio"
    backbone_kind = "speech"
    corruptions = {"noise": {"snr": 1.0}}

    def configure(self, spec: RawModalityConfig, raw: RawDataConfig, folder: str,
                  preprocessor: Mapping[str, Any]) -> None:
        self.settings.update(rate=int(preprocessor.get("sampling_rate", 16000)),
                             normalize=bool(preprocessor.get("do_normalize", True)),
                             max_seconds=raw.max_seconds)

    def prepare(self, item: RawItem, corruption: Mapping[str, Any] | None,
                seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        s = self.settings
        wave = signals.load_audio(item.file("audio"), s["rate"], s["max_seconds"])
        if corruption is not None:
            wave = signals.add_white_noise(wave, corruption["snr"], self._rng(item, seed))
        if s["normalize"]:
            wave = (wave - wave.mean()) / np.sqrt(wave.var() + 1e-7)
        return torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None], None

    def source(self, item: RawItem) -> dict[str, Any]:
        return {**file_identity(item.file("audio")), "start": item.start, "end": item.end}


class VideoPipeline(SignalPipeline):
    """``n_frames`` evenly sampled frames of the utterance's clip (the speaker's half with a
    crop), resized to the image model's size, darkened and noised in the target half and
    normalised with the image model's mean and std."""

    signal = "video"
    backbone_kind = "image"
    corruptions = {"darken_noise": {"brightness": 0.2, "snr": 0.5}}

    def configure(self, spec: RawModalityConfig, raw: RawDataConfig, folder: str,
                  preprocessor: Mapping[str, Any]) -> None:
        pre = preprocessor
        size = pre.get("size", self.backbone.model.config.image_size)
        if isinstance(size, Mapping):
            size = size.get("height", size.get("shortest_edge"))
        self.settings.update(size=int(size), n_frames=raw.n_frames,
                             mean=list(pre.get("image_mean", [0.5, 0.5, 0.5])),
                             std=list(pre.get("image_std", [0.5, 0.5, 0.5])),
                             normalize=bool(pre.get("do_normalize", True)))

    def prepare(self, item: RawItem, corruption: Mapping[str, Any] | None,
                seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        s = self.settings
        frames = signals.read_frames(item.file("video"), s["n_frames"], item.start, item.end,
                                     size=s["size"], crop=item.crop)
        if corruption is not None:
            x = signals.darken_and_noise(frames, corruption["brightness"], corruption["snr"],
                                         self._rng(item, seed))
        else:
            x = frames.astype(np.float32) / np.float32(255.0)
        if s["normalize"]:
            x = (x - np.asarray(s["mean"], np.float32)) / np.asarray(s["std"], np.float32)
        pixels = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        return pixels[None].float(), None

    def source(self, item: RawItem) -> dict[str, Any]:
        source = {**file_identity(item.file("video")), "start": item.start, "end": item.end}
        if item.crop is not None:
            source["crop"] = item.crop  # (whole frames keep the keys they always had)
        return source

    def arrange(self, states: torch.Tensor) -> torch.Tensor:
        if self.backbone.trainable_layers == 0:
            states = states[:, :1]  # a frozen model: only the CLS embedding is used
        return states.flatten(0, 1)  # (F, P + 1, H) -> (F * (P + 1), H)


class TextPipeline(SignalPipeline):
    """The transcript with words masked in the target half, tokenised and cut to
    ``max_tokens``."""

    signal = "text"
    backbone_kind = "text"
    corruptions = {"mask_words": {"fraction": 0.4}}

    def configure(self, spec: RawModalityConfig, raw: RawDataConfig, folder: str,
                  preprocessor: Mapping[str, Any]) -> None:
        from boomda.nn.backbones import load_tokenizer

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

    def prepare(self, item: RawItem, corruption: Mapping[str, Any] | None,
                seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        text = item.text or ""
        if corruption is not None:
            text = signals.mask_text(text, corruption["fraction"], self.tokenizer.mask_token,
                                     self._rng(item, seed))
        encoded = self.tokenizer(text, truncation=True, max_length=self.settings["max_tokens"],
                                 return_tensors="pt")
        return encoded["input_ids"], encoded["attention_mask"]

    def source(self, item: RawItem) -> dict[str, Any]:
        return {"text": item.text}


#: signal kind -> its pipeline class
PIPELINES: dict[str, type[SignalPipeline]] = {
    cls.signal: cls for cls in (AudioPipeline, VideoPipeline, TextPipeline)
}
#: corruption kind -> (the signal it applies to, its parameters with the paper's values)
CORRUPTIONS: dict[str, tuple[str, dict[str, float]]] = {
    kind: (signal, params) for signal, cls in PIPELINES.items()
    for kind, params in cls.corruptions.items()
}
#: signal kind -> its default corruption
DEFAULT_CORRUPTION = {signal: next(iter(cls.corruptions)) for signal, cls in PIPELINES.items()}
#: signal kind -> the kind of pretrained model its backbone folder holds
BACKBONE_KIND = {signal: cls.backbone_kind for signal, cls in PIPELINES.items()}


def pipeline_class(signal: str) -> type[SignalPipeline]:
    """The pipeline class of a signal kind (:data:`PIPELINES`)."""
    if signal not in PIPELINES:
        raise ConfigError(f"unknown signal {signal!r}; choose from {', '.join(PIPELINES)}")
    return PIPELINES[signal]


def make_pipeline(name: str, spec: RawModalityConfig, raw: RawDataConfig,
                  cache: FrozenCache | None, device: torch.device) -> SignalPipeline:
    """The pipeline of modality ``name``, of the class of ``spec.signal``."""
    return pipeline_class(spec.signal)(name, spec, raw, cache, device)


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
