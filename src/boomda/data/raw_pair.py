"""A domain pair from a raw corpus: the paper's protocol on audio, video and transcripts.

Steps (Sun et al., AAAI 2026, Sec. 4; docs/raw.md):

1. read the corpus with the reader its name selects (:data:`boomda.data.readers.READERS`):
   IEMOCAP, MSP-IMPROV or a manifest CSV; the utterances that cannot be used (missing files, a
   video that ends before the utterance) stop the run here, or with ``skip_missing`` are dropped
   and reported (a warning with their count) before anything is computed;
2. split what remains into stratified random halves (source, target) and hold out a stratified
   part of the source, all from one seed; for two corpora (``raw.source``, ``raw.target``),
   read both, match the target's classes to the source's by name (:func:`match_classes`),
   and hold out a stratified part of the whole source corpus; the whole target corpus is the
   target;
3. per modality and utterance: load the signal (audio at the backbone's rate, cut to
   ``max_seconds``; ``n_frames`` evenly sampled frames; the transcript), corrupt it in the target
   (:mod:`boomda.data.signals`, one seeded generator per utterance; for two corpora only the
   modalities whose ``corruption`` is given), prepare it as the
   backbone expects (waveform normalisation, frame resizing and normalisation, tokenisation), and
   run the backbone's frozen part, read from and written to the cache
   (:mod:`boomda.data.frozen_cache`), all in the signal's pipeline (:mod:`boomda.data.pipelines`);
4. pack the frozen states of each modality as sequences (:func:`pack_sequences`).

The trainable top of each backbone and its sequence encoder then form the modality's encoder
(:meth:`RawPair.encoders`).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from boomda.config import PAIR_SIDES, RawDataConfig, RawModalityConfig
from boomda.data.container import MultimodalData, pack_sequences
from boomda.data.frozen_cache import FrozenCache
from boomda.data.pair import DomainPair, stratified_split
from boomda.data.pipelines import SignalPipeline, corruption_to_str, make_pipeline
from boomda.data.raw_config import check_raw_config, corpus_config, modality_configs
from boomda.data.readers import CLASS_CODES, READERS, RawCorpus, read_manifest
from boomda.errors import DataError


def _pipelines(raw: RawDataConfig, specs: Mapping[str, RawModalityConfig],
               device: torch.device) -> tuple[FrozenCache | None, dict[str, SignalPipeline]]:
    """The cache ``raw`` names (None without ``cache_dir``) and one pipeline per modality."""
    cache = (FrozenCache(os.path.expanduser(raw.cache_dir), raw.cache_dtype) if raw.cache_dir
             else None)
    return cache, {m: make_pipeline(m, spec, raw, cache, device) for m, spec in specs.items()}


def read_corpus(raw: RawDataConfig, signals_used: list[str]) -> RawCorpus:
    """The corpus a one-corpus raw config names, read for the given signals by its reader
    (:data:`boomda.data.readers.READERS`), each utterance marked with the corpus's identity
    (its reader's name and resolved path: :attr:`RawItem.corpus <boomda.data.readers.RawItem>`,
    part of the cache key)."""
    return _identified(READERS[raw.corpus](raw, signals_used), raw.corpus, raw.path)


def _identified(corpus: RawCorpus, reader: str, path: str | Path) -> RawCorpus:
    identity = f"{reader}:{Path(os.path.expanduser(path)).resolve()}"
    items = tuple(dataclasses.replace(item, corpus=identity) for item in corpus.items)
    return dataclasses.replace(corpus, items=items)


def match_classes(source: RawCorpus, target: RawCorpus) -> RawCorpus:
    """The target corpus with its labels renumbered to the source's classes, matched by name
    (the readers give IEMOCAP's and MSP-IMPROV's codes their common names,
    :data:`~boomda.data.readers.CLASS_CODES`). A target class the source lacks is an error
    naming it; source classes the target lacks are allowed."""
    missing = [name for name in target.classes if name not in source.classes]
    if missing:
        hint = ""
        codes = {code: (corpus, name) for corpus, table in CLASS_CODES.items()
                 for code, name in table.items() if code != name}
        if missing[0] in codes:
            corpus, name = codes[missing[0]]
            hint = f" ({missing[0]!r} is {corpus}'s code for {name}: label it {name})"
        raise DataError(f"raw.target: class {missing[0]!r} of the target corpus {target.name} "
                        f"is not a class of the source corpus {source.name} "
                        f"({', '.join(source.classes)}); classes are matched by name{hint}")
    index = [source.classes.index(name) for name in target.classes]
    items = tuple(dataclasses.replace(item, label=index[item.label] if item.label >= 0 else -1)
                  for item in target.items)
    return dataclasses.replace(target, items=items, classes=source.classes)


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
    """The paper's protocol on a raw corpus, or a two-corpus pair (module docstring);
    everything derives from ``seed``. Utterances whose signal cannot be read stop the run with
    an error naming the file, or, with ``skip_missing``, are dropped and counted in ``info``.
    Those found when a corpus is read (missing files, videos that end early) are dropped before
    the split and reported at once in a warning, with their count, before any feature is
    computed. For a pair, ``info["corpora"]`` describes each corpus."""
    check_raw_config(raw)
    if not 0.0 <= holdout < 1.0:
        raise DataError(f"holdout must lie in [0, 1), got {holdout}")
    specs = modality_configs(raw)
    signals_used = sorted({s.signal for s in specs.values()})
    configs = ({side: corpus_config(raw, side) for side in PAIR_SIDES} if raw.is_pair
               else {"source": raw, "target": raw})
    source = read_corpus(configs["source"], signals_used)
    target = (match_classes(source, read_corpus(configs["target"], signals_used))
              if raw.is_pair else source)
    for corpus in {id(c): c for c in (source, target)}.values():
        if corpus.skipped:
            warnings.warn(corpus.skip_summary(), stacklevel=2)
    cache, pipelines = _pipelines(raw, specs, torch.device(device))

    rng = np.random.default_rng(seed)
    if raw.is_pair:
        source_idx, target_idx = np.arange(len(source)), np.arange(len(target))
    else:
        source_idx, target_idx = stratified_split(source.labels, 0.5, rng)
    holdout_idx = np.zeros(0, dtype=np.int64)
    if holdout > 0:
        hold, train = stratified_split(source.labels[source_idx], holdout, rng)
        holdout_idx, source_idx = source_idx[hold], source_idx[train]

    unreadable: dict[str, list[str]] = {"source": [], "target": []}
    if not raw.is_pair:  # one corpus: one list, in the order the parts are prepared
        unreadable["target"] = unreadable["source"]
    parts, ids = {}, {}
    for part, side, index, corrupt in (("source", "source", source_idx, False),
                                       ("target", "target", target_idx, True),
                                       ("source_holdout", "source", holdout_idx, False)):
        corpus = source if side == "source" else target
        parts[part], ids[part] = _extract(corpus, index, pipelines, corrupt, seed,
                                          configs[side].skip_missing, unreadable[side], part,
                                          progress)
    holdout_data = parts["source_holdout"] if holdout > 0 else None
    pair = DomainPair(parts["source"], parts["target"], len(source.classes), holdout_data,
                      classes=list(source.classes))
    if raw.is_pair:
        corpora = {side: _corpus_info(configs[side], corpus, unreadable[side])
                   for side, corpus in (("source", source), ("target", target))}
        info: dict[str, Any] = {
            "corpus": raw.label, "classes": list(source.classes),
            "n_utterances": len(source) + len(target),
            "skipped_missing": source.n_skipped + target.n_skipped,
            "skipped_unreadable": len(unreadable["source"]) + len(unreadable["target"]),
            "skipped_by_reason": dict(Counter(source.skip_counts) + Counter(target.skip_counts)),
            "skipped": [s for c in corpora.values() for s in c["skipped"]],
            "corpora": corpora,
        }
    else:
        info = {**_corpus_info(raw, source, unreadable["source"]),
                "classes": list(source.classes)}
    info.update({
        "seed": seed, "holdout": holdout,
        "corruptions": {m: corruption_to_str(p.corruption) for m, p in pipelines.items()},
        "backbones": {m: p.backbone_record() for m, p in pipelines.items()},
        "cache": None if cache is None else {"dir": str(cache.root), "hits": cache.hits,
                                             "misses": cache.misses},
    })
    pair.info = info
    return RawPair(pair, pipelines, info, ids)


def _corpus_info(raw: RawDataConfig, corpus: RawCorpus, unreadable: Sequence[str]
                 ) -> dict[str, Any]:
    """What a run records of one corpus: which, where, how many utterances, what was skipped."""
    return {
        "corpus": raw.corpus, "path": str(raw.path), "n_utterances": len(corpus),
        "class_counts": corpus.class_counts,
        "skipped_missing": corpus.n_skipped, "skipped_unreadable": len(unreadable),
        "skipped_by_reason": dict(corpus.skip_counts),
        "skipped": list(corpus.skipped) + list(unreadable),
    }


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
    data, ids, corpus, _ = _manifest_inputs(raw, manifest, classes, torch.device(device),
                                            progress, allow_empty=False)
    return data, ids, corpus


def raw_partial_inputs(
    raw: RawDataConfig,
    manifest: str | Path,
    classes: list[str],
    *,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> tuple[MultimodalData, list[str], RawCorpus, dict[str, np.ndarray]]:
    """As :func:`raw_inputs`, but a row's empty audio, video or text cell leaves that modality
    absent: also returns the presence mask (modality -> (N,) bool, True where present; absent
    entries hold one zero step, see :mod:`boomda.partial`)."""
    return _manifest_inputs(raw, manifest, classes, torch.device(device), progress,
                            allow_empty=True)


def _manifest_inputs(raw: RawDataConfig, manifest: str | Path, classes: list[str],
                     device: torch.device, progress: bool, allow_empty: bool
                     ) -> tuple[MultimodalData, list[str], RawCorpus, dict[str, np.ndarray]]:
    """The clean inputs of a manifest's utterances and their presence mask (all True unless
    ``allow_empty`` lets a row leave a cell empty)."""
    specs = modality_configs(raw)
    corpus = _identified(read_manifest(manifest, classes, raw.skip_missing,
                                       sorted({s.signal for s in specs.values()}),
                                       labels_required=False, allow_empty=allow_empty),
                         "manifest", manifest)
    _, pipelines = _pipelines(raw, specs, device)
    present: dict[str, list[bool]] = {m: [] for m in pipelines}
    data, ids = _extract(corpus, np.arange(len(corpus)), pipelines, False, 0, raw.skip_missing,
                         [], "inputs", progress, present)
    return data, ids, corpus, {m: np.asarray(v, dtype=bool) for m, v in present.items()}


def _fill_cache_sharded(items: list, pipelines: dict[str, SignalPipeline], corrupt: bool,
                        seed: int) -> None:
    """In data-parallel training (:mod:`boomda.distributed`) with a cache: each rank computes
    and caches the frozen states of every N-th item, then all wait for each other, so that the
    backbones' frozen part runs once per item; the caller then reads every item from the cache.
    An item that cannot be read is left to the caller, which reports or skips it."""
    from boomda import distributed

    w = distributed.world()
    if w is None or any(p.cache is None for p in pipelines.values()):
        return
    for item in items[w.rank::w.size]:
        for p in pipelines.values():
            if getattr(item, p.signal) is None:
                continue
            try:
                p.frozen_states(item, corrupt, seed)
            except DataError:
                break
    distributed.barrier()


def _extract(corpus: RawCorpus, index: np.ndarray, pipelines: dict[str, SignalPipeline],
             corrupt: bool, seed: int, skip: bool, unreadable: list[str], part: str,
             progress: bool, present: dict[str, list[bool]] | None = None
             ) -> tuple[MultimodalData, list[str]]:
    """Packed frozen states of the ``index`` items. With ``present`` (modality -> list, filled
    here), an item whose signal is ``None`` gets one zero step for that modality and False."""
    states: dict[str, list[np.ndarray]] = {m: [] for m in pipelines}
    labels, ids = [], []
    items = [corpus.items[i] for i in index]
    _fill_cache_sharded(items, pipelines, corrupt, seed)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), desc=f"frozen features ({part})", unit="utt", leave=False)
    try:
        for item in items:
            try:
                row = {m: (p.frozen_states(item, corrupt, seed)
                           if present is None or getattr(item, p.signal) is not None
                           else np.zeros((1, p.backbone.hidden_size), p.dtype))
                       for m, p in pipelines.items()}
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
                if present is not None:
                    present[m].append(getattr(item, pipelines[m].signal) is not None)
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
