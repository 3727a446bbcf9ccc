"""Domain pairs: a labelled source domain and a shifted, unlabelled target domain.

The paper's protocol (Sun et al., AAAI 2026, Sec. 4): split a corpus evenly and randomly into two
halves, stratified by class; one half is the source, the other, corrupted per modality, is the
target. A stratified part of the source is held out from training to measure source-domain
accuracy. Target labels are kept only for evaluation and diagnostics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    """The data one adaptation run needs: a labelled source and a shifted target.

    Build one with :meth:`from_arrays` (two domains you have) or :meth:`from_protocol` (one
    labelled data set, split and shifted by the paper's protocol). Construction checks that
    the parts share the source's modalities, in order, and feature widths, and that every
    label lies in the class set.

    Attributes:
        source: the labelled training source.
        target: the shifted target; its labels, if present, are used for evaluation and
            diagnostics only, never in training or label-free selection.
        n_classes: the size of the class set, K (at least 2).
        source_holdout: labelled source samples kept out of training, or None.
        info: how the pair was made (seed, holdout, shifts), for the run's records.
        classes: the K class names (default: the source's, else ``"0"`` .. ``"K-1"``).

    Raises:
        DataError: the source has no labels, a part is empty, fewer than 2 classes, a number
            of class names other than ``n_classes``, or parts whose modalities, widths or
            labels do not fit.

    """

    source: MultimodalData
    target: MultimodalData
    n_classes: int
    source_holdout: MultimodalData | None = None
    info: dict = field(default_factory=dict)
    classes: list[str] | None = None

    def __post_init__(self) -> None:
        if self.classes is None:
            self.classes = list(self.source.classes or [str(c) for c in range(self.n_classes)])
        self.classes = [str(c) for c in self.classes]
        if len(self.classes) != self.n_classes:
            raise DataError(f"classes: {len(self.classes)} names for {self.n_classes} classes")
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
        """The modality names, in the source's order (shared by every part)."""
        return self.source.modalities

    @classmethod
    def from_arrays(
        cls,
        source: MultimodalData,
        target: MultimodalData,
        *,
        holdout: float = 0.2,
        seed: int = 0,
        source_holdout: MultimodalData | None = None,
        n_classes: int | None = None,
        info: Mapping | None = None,
    ) -> DomainPair:
        """A pair from two domains the user already has (two corpora, devices, sites, ...).

        Classes: when the source's labels are names (``MultimodalData.classes``), the target's
        and the held-out part's labels are mapped onto them by name (a class the source lacks
        is an error); integer labels are class indices. The target's labels, if any, serve
        scoring only.

        Args:
            source: the labelled source domain.
            target: the target domain, labelled or not.
            holdout: the stratified fraction of ``source`` kept out of training (drawn with
                ``seed``), so that the source-risk and DEV validators (:mod:`boomda.select`)
                and the source held-out score are available; 0 trains on all of ``source``.
                Must lie in [0, 1).
            seed: the seed of the held-out draw.
            source_holdout: the held-out part, given yourself (then ``holdout`` does not
                apply).
            n_classes: the number of classes for integer labels (default: the largest label
                of any part + 1); ignored when the source's classes are named.
            info: facts to record in :attr:`info` (with ``holdout`` and ``seed`` added when
                the held-out part is drawn).

        Returns:
            The checked pair.

        Raises:
            DataError: ``source`` has no labels, ``holdout`` outside [0, 1) or leaving no
                held-out or no training sample, labels in different forms or naming a class
                the source lacks, or parts that do not fit (see the class).
        """
        if source.labels is None:
            raise DataError("source: labels are required for the source domain")
        if not 0.0 <= holdout < 1.0:
            raise DataError(f"holdout must lie in [0, 1), got {holdout}")
        target = onto_classes(target, source.classes, "target")
        drawn = source_holdout is None and holdout > 0
        if source_holdout is not None:
            source_holdout = onto_classes(source_holdout, source.classes, "source_holdout")
        elif drawn:
            hold_idx, train_idx = stratified_split(source.labels, holdout,
                                                   np.random.default_rng(seed))
            if len(hold_idx) == 0 or len(train_idx) == 0:
                raise DataError(f"holdout {holdout}: {len(source)} source samples leave no "
                                f"{'held-out' if len(hold_idx) == 0 else 'training'} sample; "
                                f"lower or raise holdout (0: none held out)")
            source_holdout, source = source.subset(hold_idx), source.subset(train_idx)
        if source.classes is not None:
            n_classes = len(source.classes)
        elif n_classes is None:
            seen = [d.labels for d in (source, target, source_holdout)
                    if d is not None and d.labels is not None]
            n_classes = int(max(int(s.max()) for s in seen if s.size)) + 1
        details = dict(info or {})
        if drawn:
            details.update(holdout=holdout, seed=seed)
        return cls(source, target, n_classes, source_holdout, details)

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

        ``data`` is split into two stratified random halves (Sun et al., AAAI 2026, Sec. 4):
        the first is the source, the second, shifted, the target. The random split, the shifts
        and the holdout all derive from ``seed``.

        Args:
            data: one labelled data set.
            shifts: modality name -> shift (a :class:`~boomda.data.shifts.Shift`, a spec
                string such as ``noise:snr=1``, or a mapping; see :func:`parse_shift`); a
                modality it omits is left clean.
            seed: the seed of the split, the shifts and the holdout.
            holdout: the stratified fraction of the source half kept out of training, in
                [0, 1).
            n_classes: the number of classes for integer labels (default: the largest label
                + 1); ignored when the classes of ``data`` are named.

        Returns:
            The pair; its :attr:`info` records ``seed``, ``holdout`` and the shifts.

        Raises:
            DataError: ``data`` has no labels, a shift names an unknown modality, or
                ``holdout`` lies outside [0, 1).
            ConfigError: a malformed shift.
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
        target = MultimodalData(shifted, target.labels, name="target", classes=data.classes)
        holdout_data = None
        if holdout > 0:
            hold_idx, train_idx = stratified_split(data.labels[src_idx], holdout, rng)
            holdout_data, source = source.subset(hold_idx), source.subset(train_idx)
        if data.classes is not None:
            k = len(data.classes)
        else:
            k = n_classes if n_classes is not None else int(data.labels.max()) + 1
        info = {"seed": seed, "holdout": holdout,
                "shifts": {m: shift_to_str(s) for m, s in parsed.items()}}
        return cls(source, target, k, holdout_data, info)


def onto_classes(data: MultimodalData, classes: Sequence[str] | None,
                 part: str) -> MultimodalData:
    """``data`` with its labels as indices into ``classes`` (the source's or a model's): labels
    given as names (``data.classes``) are matched by name, a class outside ``classes`` being a
    :class:`DataError` naming it; integer labels (no ``data.classes``) are indices already.
    ``classes`` None: the source's classes are unnamed indices."""
    if data.labels is None or data.classes is None:
        return data
    if classes is not None and tuple(data.classes) == tuple(classes):
        return data
    if classes is None:
        raise DataError(f"{part}.labels: class names, but the source's labels are integers; "
                        f"give both in the same form")
    from boomda.data.labels import encode_labels

    names = np.asarray(data.classes)[data.labels]
    labels, _ = encode_labels(names, f"{part}.labels", classes)
    return MultimodalData(data.views, labels, name=part, classes=classes)
