"""Domain pairs: a labelled source domain and a shifted, unlabelled target domain.

The paper's protocol (Sun et al., AAAI 2026, Sec. 4): split a corpus evenly and randomly into two
halves, stratified by class; one half is the source, the other, corrupted per modality, is the
target. A stratified part of the source is held out from training to measure source-domain
accuracy. Target labels are kept only for evaluation and diagnostics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from boomda.data.container import MultimodalData
from boomda.data.shifts import Shift, parse_shift, shift_to_str
from boomda.errors import DataError


def stratified_split(labels: np.ndarray, fraction: float, rng: np.random.Generator):
    """Indices (first, second): per class, a random ``round(fraction * n_c)`` go to ``first``.

    With ``fraction = 0.5`` and an odd class count, the extra sample alternates between the two
    parts from class to class so that both halves stay the same size.
    """
    first, second = [], []
    odd_turn = 0
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        exact = fraction * len(idx)
        k = int(np.floor(exact))
        if exact - k > 0:
            if fraction == 0.5:
                k += odd_turn
                odd_turn = 1 - odd_turn
            else:
                k = int(round(exact))
        first.append(idx[:k])
        second.append(idx[k:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


@dataclass
class DomainPair:
    """The data one adaptation run needs.

    ``source``: labelled training source. ``target``: the shifted target; its labels, if present,
    are used for evaluation and diagnostics only. ``source_holdout``: labelled source samples kept
    out of training (optional). ``n_classes``: size of the class set.
    """

    source: MultimodalData
    target: MultimodalData
    n_classes: int
    source_holdout: MultimodalData | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source.labels is None:
            raise DataError("source: labels are required for the source domain")
        if len(self.source) == 0:
            raise DataError("source: the source set is empty")
        if len(self.target) == 0:
            raise DataError("target: the target set is empty")
        if self.n_classes < 2:
            raise DataError(f"n_classes must be at least 2, got {self.n_classes}")
        for part, data in (("source", self.source), ("target", self.target),
                           ("source_holdout", self.source_holdout)):
            if data is None:
                continue
            if data.modalities != self.source.modalities:
                missing = set(self.source.modalities) ^ set(data.modalities)
                if missing:
                    raise DataError(
                        f"{part}: modality {sorted(missing)[0]!r} is not in both source and "
                        f"{part} (source has {self.source.modalities}, {part} has "
                        f"{data.modalities})"
                    )
                raise DataError(f"{part}: modalities must come in the source's order "
                                f"{self.source.modalities}")
            if data.dims != self.source.dims:
                bad = next(m for m in data.dims if data.dims[m] != self.source.dims[m])
                raise DataError(f"{part}[{bad!r}]: {data.dims[bad]} features, but the source has "
                                f"{self.source.dims[bad]}")
            data.check_labels(self.n_classes, f"{part}.labels")

    def __repr__(self) -> str:
        target = ("labelled, for evaluation only" if self.target.labels is not None
                  else "unlabelled")
        sizes = f"source {len(self.source)} samples, target {len(self.target)} ({target})"
        if self.source_holdout is not None:
            sizes += f", source held out {len(self.source_holdout)}"
        info = repr(self.info)
        if len(info) > 240:
            info = info[:237] + "..."
        return (f"DomainPair({sizes}; modalities {self.source.describe_modalities()}; "
                f"{self.n_classes} classes; info {info})")

    @property
    def modalities(self) -> list[str]:
        return self.source.modalities

    @classmethod
    def from_arrays(
        cls,
        source: MultimodalData,
        target: MultimodalData,
        *,
        source_holdout: MultimodalData | None = None,
        n_classes: int | None = None,
    ) -> DomainPair:
        """A pair from data the user already split (e.g. two corpora)."""
        if source.labels is None:
            raise DataError("source: labels are required for the source domain")
        if n_classes is None:
            seen = [source.labels] + [d.labels for d in (target, source_holdout)
                                      if d is not None and d.labels is not None]
            n_classes = int(max(int(s.max()) for s in seen if s.size)) + 1
        return cls(source, target, n_classes, source_holdout)

    @classmethod
    def from_protocol(
        cls,
        data: MultimodalData,
        shifts: Mapping[str, Shift | str | Mapping],
        *,
        seed: int = 0,
        holdout: float = 0.2,
        n_classes: int | None = None,
    ) -> DomainPair:
        """The paper's protocol: stratified halves, the second half shifted per modality.

        ``shifts`` maps modality name -> shift (see :func:`parse_shift`); a modality it omits is
        left clean. ``holdout`` is the stratified fraction of the source half kept out of
        training. The random split, the shifts and the holdout all derive from ``seed``.
        """
        if data.labels is None:
            raise DataError("data: labels are required to build a domain pair")
        unknown = [m for m in shifts if m not in data.views]
        if unknown:
            raise DataError(f"shifts: unknown modality {unknown[0]!r}; available: "
                            f"{', '.join(data.modalities)}")
        if not 0.0 <= holdout < 1.0:
            raise DataError(f"holdout must lie in [0, 1), got {holdout}")
        parsed = {m: parse_shift(s) for m, s in shifts.items()}
        rng = np.random.default_rng(seed)
        src_idx, tgt_idx = stratified_split(data.labels, 0.5, rng)
        source, target = data.subset(src_idx), data.subset(tgt_idx)
        shifted = {}
        for m, x in target.views.items():
            shift = parsed.get(m)
            shifted[m] = x.copy() if shift is None else shift.apply(x, rng)
        target = MultimodalData(shifted, target.labels, name="target")
        holdout_data = None
        if holdout > 0:
            hold_idx, train_idx = stratified_split(source.labels, holdout, rng)
            holdout_data, source = source.subset(hold_idx), source.subset(train_idx)
        k = n_classes if n_classes is not None else int(data.labels.max()) + 1
        info = {"seed": seed, "holdout": holdout,
                "shifts": {m: shift_to_str(s) for m, s in parsed.items()}}
        return cls(source, target, k, holdout_data, info)
