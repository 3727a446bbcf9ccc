"""One validation per run: a :class:`~boomda.config.RunConfig` checked against the method and
data registries, once, into a :class:`ResolvedRun` that every later step of the run reads.

:func:`resolve` works on a deep copy: the caller's config is never changed. The steps that fill
in what only the data tell (a raw corpus's modalities and corruptions, the device a process
trains on) make new resolved runs (:meth:`ResolvedRun.with_data`,
:meth:`ResolvedRun.with_device`) instead of changing one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from boomda.config import DataConfig, RunConfig, TrainConfig
from boomda.data.raw_config import check_raw_config
from boomda.errors import ConfigError
from boomda.methods import check_config


@dataclass(frozen=True)
class ResolvedRun:
    """A run config checked once by :func:`resolve` (a private copy, read and never changed
    by the run) and its method's parsed options."""

    config: RunConfig
    options: Any

    @property
    def train(self) -> TrainConfig:
        """The training settings."""
        return self.config.train

    @property
    def data(self) -> DataConfig:
        """The data settings."""
        return self.config.data

    def check_modalities(self, n_modalities: int) -> None:
        """Check the method's options against a pair of ``n_modalities`` modalities (Boomda's
        M_v <= M+1); :class:`ConfigError` naming the option otherwise."""
        check = getattr(self.options, "check_modalities", None)
        if check is not None:
            check(n_modalities)

    def with_device(self, device: str) -> ResolvedRun:
        """This run with ``train.device`` set to ``device`` (a process's own device)."""
        config = copy.deepcopy(self.config)
        config.train.device = device
        return ResolvedRun(config, self.options)

    def with_data(self, dataset: str, modalities: list[str],
                  shifts: dict[str, Any]) -> ResolvedRun:
        """This run with the data settings its data resolve (:class:`boomda.data.load.RunData`):
        ``data.dataset``, ``data.modalities`` and ``data.shifts``."""
        config = copy.deepcopy(self.config)
        config.data.dataset = dataset
        config.data.modalities = list(modalities)
        config.data.shifts = dict(shifts)
        return ResolvedRun(config, self.options)


def resolve(config: RunConfig | ResolvedRun, where: str = "config") -> ResolvedRun:
    """Check ``config`` once: its raw corpus against the data registries
    (:func:`boomda.data.raw_config.check_raw_config`, errors naming ``where.raw``), then its
    training settings, method and method options (:func:`boomda.methods.check_config`). A
    resolved run is returned as it is. Raises :class:`ConfigError` naming the first bad
    option."""
    if isinstance(config, ResolvedRun):
        return config
    if not isinstance(config, RunConfig):
        raise ConfigError(f"{where}: expected a RunConfig, got {type(config).__name__}")
    config = copy.deepcopy(config)
    if config.raw is not None:
        check_raw_config(config.raw, f"{where}.raw")
    return ResolvedRun(config, check_config(config.train))
