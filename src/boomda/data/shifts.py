"""Feature-level target-domain shifts: the analogues of the paper's raw-signal corruptions.

The paper (Sun et al., AAAI 2026, Sec. 4) corrupts the target half of a corpus per modality:
white noise on audio at SNR 1.0, video darkened to 20 % brightness plus Gaussian noise at SNR 0.5,
and 40 % of the words masked. On pre-extracted feature vectors we use the analogues below. Each
modality gets its own kind and severity of shift ("heterogeneous" shift).

Signal power for the SNR is measured per feature as the variance of that feature over the clean
samples being corrupted: feature views mix scales (counts, moments, coefficients), so a power
pooled over features would drown the small-scale features and spare the large ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from boomda.config import check_keys
from boomda.errors import ConfigError


@dataclass(frozen=True)
class NoShift:
    """The identity: the target keeps the clean features."""

    kind: str = "none"

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return x.copy()


@dataclass(frozen=True)
class NoiseShift:
    """Additive white Gaussian noise at signal-to-noise ratio ``snr`` (a power ratio, not dB).

    ``x'_ij = x_ij + n_ij``, ``n_ij ~ N(0, var_j / snr)``, ``var_j`` the variance of feature j.
    """

    snr: float = 1.0
    kind: str = "noise"

    def __post_init__(self) -> None:
        _positive("noise.snr", self.snr)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return _add_noise(x, self.snr, rng)


@dataclass(frozen=True)
class ScaleNoiseShift:
    """Scaling then additive noise, the analogue of darkening a video and adding noise.

    ``x' = scale * x + n`` with ``n`` at SNR ``snr`` relative to the scaled signal.
    """

    scale: float = 0.2
    snr: float = 0.5
    kind: str = "scale_noise"

    def __post_init__(self) -> None:
        _positive("scale_noise.scale", self.scale)
        _positive("scale_noise.snr", self.snr)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return _add_noise(x * np.float32(self.scale), self.snr, rng)


@dataclass(frozen=True)
class MaskShift:
    """Masking: in every sample, ``round(fraction * D)`` entries drawn without replacement are set
    to ``value``, the analogue of replacing a fraction of the words of an utterance by a mask token.
    Positions are drawn per sample.
    """

    fraction: float = 0.4
    value: float = 0.0
    kind: str = "mask"

    def __post_init__(self) -> None:
        _fraction("mask.fraction", self.fraction)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, d = x.shape
        k = int(round(self.fraction * d))
        out = x.copy()
        if k == 0:
            return out
        # argsort of uniform noise gives an independent random permutation per row
        positions = np.argsort(rng.random((n, d)), axis=1)[:, :k]
        np.put_along_axis(out, positions, np.float32(self.value), axis=1)
        return out


@dataclass(frozen=True)
class BlockShift:
    """Structured masking: one contiguous block of ``round(fraction * D)`` features, at a random
    position drawn once for the whole domain, is set to ``value`` in every sample (a group of
    sensor channels or a band of descriptors that failed in the target domain).
    """

    fraction: float = 0.3
    value: float = 0.0
    kind: str = "block"

    def __post_init__(self) -> None:
        _fraction("block.fraction", self.fraction)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        d = x.shape[1]
        k = int(round(self.fraction * d))
        start = int(rng.integers(0, d - k + 1))
        out = x.copy()
        out[:, start:start + k] = np.float32(self.value)
        return out


@dataclass(frozen=True)
class RescaleShift:
    """Structured rescaling: a random subset of ``round(fraction * D)`` features, drawn once for
    the whole domain, is multiplied by ``scale`` in every sample (a gain or unit change of some
    channels), the other features are unchanged.
    """

    fraction: float = 0.5
    scale: float = 3.0
    kind: str = "rescale"

    def __post_init__(self) -> None:
        _fraction("rescale.fraction", self.fraction)
        _positive("rescale.scale", self.scale)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        d = x.shape[1]
        k = int(round(self.fraction * d))
        columns = rng.permutation(d)[:k]
        out = x.copy()
        out[:, columns] *= np.float32(self.scale)
        return out


Shift = NoShift | NoiseShift | ScaleNoiseShift | MaskShift | BlockShift | RescaleShift
#: what :func:`parse_shift` reads: a spec string, a mapping with a ``kind``, or a shift
ShiftSpec = str | Mapping | Shift

_KINDS: dict[str, type[Shift]] = {
    "none": NoShift,
    "noise": NoiseShift,
    "scale_noise": ScaleNoiseShift,
    "mask": MaskShift,
    "block": BlockShift,
    "rescale": RescaleShift,
}


def _fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must lie in [0, 1], got {value}")


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and value > 0 and np.isfinite(value)):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


def _add_noise(x: np.ndarray, snr: float, rng: np.random.Generator) -> np.ndarray:
    power = x.var(axis=0, dtype=np.float64)
    std = np.sqrt(power / snr).astype(np.float32)
    return x + rng.standard_normal(x.shape, dtype=np.float32) * std


def parse_shift(spec: ShiftSpec) -> Shift:
    """Build a shift from ``"noise:snr=1.0"``, ``"scale_noise:scale=0.2,snr=0.5"``,
    ``"mask:fraction=0.4"``, ``"block:fraction=0.3"``, ``"rescale:fraction=0.5,scale=3"``,
    ``"none"``, or a mapping ``{"kind": "noise", "snr": 1.0}``."""
    if isinstance(spec, Shift):
        return spec
    params: dict[str, Any]
    if isinstance(spec, str):
        kind, params = split_spec(spec, "shift")
    elif isinstance(spec, Mapping):
        params = dict(spec)
        kind = str(params.pop("kind", ""))
    else:
        raise ConfigError(f"cannot read a shift from {spec!r}")
    if kind not in _KINDS:
        raise ConfigError(f"unknown shift kind {kind!r}; choose from {', '.join(_KINDS)}")
    cls = _KINDS[kind]
    check_keys(params, sorted({f.name for f in fields(cls)} - {"kind"}), f"shift {kind!r}",
               "parameter")
    return cls(**params)


def split_spec(spec: str, what: str) -> tuple[str, dict[str, float]]:
    """``"kind:key=value,key=value"`` -> (kind, {key: float(value)}); ``what`` names the option
    in errors."""
    kind, _, rest = spec.strip().partition(":")
    params: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"{what} {spec!r}: expected key=value, got {item!r}")
        try:
            params[key.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"{what} {spec!r}: {key.strip()} must be a number") from None
    return kind.strip(), params


def shift_to_str(shift: Shift) -> str:
    """Inverse of :func:`parse_shift` for the string form."""
    params = {k: v for k, v in asdict(shift).items() if k != "kind"}
    if not params:
        return shift.kind
    return shift.kind + ":" + ",".join(f"{k}={v:g}" for k, v in params.items())
