"""The data of a run: the domain pair a :class:`~boomda.config.RunConfig` describes, built from
an embedded or ``.npz`` data set split and shifted by the paper's protocol, a real pair of
``.npz`` files, or a raw corpus through its backbones (:mod:`boomda.data.raw_pair`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from boomda.config import RunConfig
from boomda.data.files import file_pair, load_dataset, protocol_pair
from boomda.data.pair import DomainPair
from boomda.errors import ConfigError


def split_seed(config: RunConfig) -> int:
    """The seed of the split and the target shifts: ``data.split_seed``, else the training seed."""
    return config.train.seed if config.data.split_seed is None else int(config.data.split_seed)


def build_pair(config: RunConfig) -> DomainPair:
    """The domain pair of a feature-data config: a real pair of files (``data.source`` /
    ``data.target``), or one data set split and shifted by the paper's protocol."""
    data = config.data
    if data.source is not None or data.target is not None:
        if data.source is None or data.target is None:
            raise ConfigError("data: a real pair needs both 'source' and 'target' files")
        return file_pair(data.source, data.target, data.modalities, holdout=data.holdout,
                         seed=split_seed(config), shifts=data.shifts)
    return protocol_pair(load_dataset(data.dataset), data.modalities, data.shifts,
                         seed=split_seed(config), holdout=data.holdout, name=data.dataset)


@dataclass(frozen=True)
class RunData:
    """A run's domain pair, the encoders of its raw modalities (None for feature data; see
    :meth:`boomda.data.raw_pair.RawPair.encoders`), and the data settings it resolves:
    ``dataset`` (``raw:<corpus>`` for a raw corpus), ``modalities`` (the pair's, in order) and
    ``shifts`` (a raw corpus's: its corruptions)."""

    pair: DomainPair
    encoders: Callable[[int, float], Any] | None
    dataset: str
    modalities: list[str] = field(default_factory=list)
    shifts: dict[str, Any] = field(default_factory=dict)


def load_run_data(config: RunConfig, *, progress: bool = False) -> RunData:
    """The data of ``config``, a checked config (:func:`boomda.resolve.resolve`): with
    ``config.raw``, the raw corpus prepared on ``config.train.device`` (``progress``: show the
    feature extraction's progress), else :func:`build_pair`."""
    if config.raw is None:
        pair = build_pair(config)
        return RunData(pair, None, config.data.dataset,
                       list(config.data.modalities or pair.modalities), dict(config.data.shifts))
    from boomda.data.raw_pair import build_raw_pair
    from boomda.runtime import resolve_device

    raw_pair = build_raw_pair(config.raw, seed=split_seed(config), holdout=config.data.holdout,
                              device=resolve_device(config.train.device), progress=progress)
    pair = raw_pair.pair
    return RunData(pair, raw_pair.encoders, f"raw:{config.raw.label}", list(pair.modalities),
                   dict(pair.info["corruptions"]))
