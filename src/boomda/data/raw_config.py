"""Checks of a raw-corpus config (:class:`boomda.config.RawDataConfig`) against the data
registries: the corpus readers (:data:`boomda.data.readers.READERS`) and the signal pipelines
(:data:`boomda.data.pipelines.PIPELINES`).

:mod:`boomda.config` holds the schema only; these checks live beside the registries they read,
and a run calls :func:`check_raw_config` once when its config is resolved
(:func:`boomda.resolve.resolve`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from boomda.config import (
    CORPUS_OPTIONS,
    PAIR_SIDES,
    RawDataConfig,
    RawModalityConfig,
    assign,
    check_keys,
    check_option,
)
from boomda.data.pipelines import PIPELINES
from boomda.data.readers import READERS
from boomda.errors import ConfigError

#: the sequence encoders a raw modality may name (empty: the paper's for its signal)
ENCODERS = ("textcnn", "lstm")


def _one_of(registry: Mapping[str, Any]) -> str:
    """The names of a registry as ``"a, b or c"``."""
    names = list(registry)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def modality_configs(raw: RawDataConfig, where: str = "raw") -> dict[str, RawModalityConfig]:
    """``raw.modalities`` as typed configs, in order; a modality of a two-corpus config that
    gives no ``corruption`` gets ``none``. Raises :class:`ConfigError` naming the first bad
    entry."""
    if not isinstance(raw.modalities, Mapping) or len(raw.modalities) < 2:
        raise ConfigError(f"{where}.modalities: name at least 2 modalities, each with a "
                          f"signal and a backbone (folder or hub id)")
    out = {}
    for name, given in raw.modalities.items():
        spec = assign(RawModalityConfig(), given or {}, f"{where}.modalities.{name}")
        if raw.is_pair and "corruption" not in (given or {}):
            spec.corruption = "none"  # a real target corpus is corrupted only when asked
        if spec.signal not in PIPELINES:
            raise ConfigError(f"{where}.modalities.{name}.signal must be "
                              f"{_one_of(PIPELINES)}, got {spec.signal!r}")
        if spec.encoder not in ("", *ENCODERS):
            raise ConfigError(f"{where}.modalities.{name}.encoder must be textcnn or lstm "
                              f"(empty: the paper's for the signal), got {spec.encoder!r}")
        if not spec.backbone:
            raise ConfigError(f"{where}.modalities.{name}.backbone: give the local folder "
                              f"or the Hugging Face hub id of a transformers model")
        out[str(name)] = spec
    return out


def corpus_config(raw: RawDataConfig, side: str, where: str = "raw") -> RawDataConfig:
    """The one-corpus config of ``side`` (``source`` or ``target``) of a two-corpus config: the
    shared settings with that corpus's options; raises naming the first bad option."""
    here = f"{where}.{side}"
    section = getattr(raw, side)
    if not isinstance(section, Mapping) or not section:
        raise ConfigError(f"{here}: a two-corpus config needs both {where}.source and "
                          f"{where}.target, each a mapping with the corpus and its path")
    check_keys(section, CORPUS_OPTIONS, here, message=lambda key: (
        f"{here}: unknown option {key!r}; a corpus's options are "
        f"{', '.join(CORPUS_OPTIONS)}; the modalities, backbones, cache and preparation "
        f"settings are shared by both corpora and go in {where}"))
    defaults = RawDataConfig()
    one = dataclasses.replace(raw, source={}, target={},
                              **{k: getattr(defaults, k) for k in CORPUS_OPTIONS})
    assign(one, section, here)
    _check_corpus(one, here)
    return one


def check_raw_config(raw: RawDataConfig, where: str = "raw") -> None:
    """Raise :class:`ConfigError` naming the first bad option of ``raw`` (``where``: its place
    in the config, for the message)."""
    if raw.is_pair:
        defaults = RawDataConfig()
        at_top = [k for k in CORPUS_OPTIONS if getattr(raw, k) != getattr(defaults, k)]
        if at_top:
            raise ConfigError(f"{where}.{at_top[0]}: with {where}.source and {where}.target, "
                              f"each corpus's options go under them, not in {where}")
        for side in PAIR_SIDES:
            corpus_config(raw, side, where)
    else:
        _check_corpus(raw, where)
    modality_configs(raw, where)
    check_option(raw.max_seconds > 0, f"{where}.max_seconds", "must be positive",
                 raw.max_seconds)
    check_option(raw.n_frames >= 1, f"{where}.n_frames", "must be at least 1", raw.n_frames)
    check_option(raw.max_tokens >= 2, f"{where}.max_tokens", "must be at least 2",
                 raw.max_tokens)
    check_option(raw.cache_dtype in ("float16", "float32"), f"{where}.cache_dtype",
                 "must be float16 or float32", raw.cache_dtype)


def _check_corpus(raw: RawDataConfig, where: str) -> None:
    """Check the options of the one corpus ``raw`` names (:data:`CORPUS_OPTIONS`)."""
    if raw.corpus not in READERS:
        raise ConfigError(f"{where}.corpus must be {_one_of(READERS)}, got {raw.corpus!r}")
    if not raw.path:
        raise ConfigError(f"{where}.path: give the corpus folder (the CSV for a manifest)")
    check_option(raw.video_crop in ("speaker", "full"), f"{where}.video_crop",
                 "must be speaker or full", raw.video_crop)
    for s in raw.sessions:
        check_option(str(s).isdigit(), f"{where}.sessions", "must be session numbers",
                     raw.sessions)
