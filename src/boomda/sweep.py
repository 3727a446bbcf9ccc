"""Sweeps of hyperparameters and the label-free choice among their points.

A sweep is a list of points, each a mapping of method options or
:class:`~boomda.config.TrainConfig` fields to values: by default the method's preset
(:attr:`boomda.methods.base.Method.preset`, the shipped default first), or every combination of
given values (``boomda run --select im --sweep alpha2=10,100``). Each trained point is scored by
a validator of :mod:`boomda.select` (source labels and unlabelled target data only); ties go to
the earlier point in the sweep's order, so the default wins a tie, and a non-finite score never
wins (:data:`TIE_RULE`). :class:`Selection` records every point's scores and the choice.

This module trains nothing: :meth:`boomda.DomainAdapter.fit` (``select=``) and the tuned run
folders of :mod:`boomda.tune` use it.

Attributes:
    TIE_RULE: how a tie between points is broken, in words (recorded in ``selection.json``).
    NOT_TUNABLE: the :class:`~boomda.config.TrainConfig` fields a sweep may not vary (what is
        tuned, and the settings of the run itself).
"""


from __future__ import annotations

import copy
import dataclasses
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING, Any

from boomda.config import TrainConfig, coerce_to
from boomda.errors import BoomdaError, ConfigError
from boomda.methods import METHODS, check_config

if TYPE_CHECKING:
    pass

#: how a tie between points is broken
TIE_RULE = ("the earlier point in the sweep's order wins a tie (a preset's first point is the "
            "method's default); a point whose score is not finite never wins")
#: TrainConfig fields a sweep may not vary (what is tuned, and the settings of the run itself)
NOT_TUNABLE = ("method", "seed", "device", "precision", "betas", "options")


def preset_points(method: str) -> list[dict[str, Any]]:
    """The preset sweep of a method (:attr:`~boomda.methods.base.Method.preset`), copied.

    Args:
        method: a name in :data:`boomda.registry.METHODS`.

    Returns:
        The points, the method's default first, each a new dict of setting -> value.

    Raises:
        ConfigError: an unknown method.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return [dict(point) for point in METHODS[method].preset]


def _annotation(method: str, key: str, where: str) -> Any:
    """The type annotation of the tunable setting ``key`` of ``method``; ConfigError naming
    ``where`` if ``key`` is neither a tunable training option nor an option of the method."""
    options = METHODS[method].Options
    own = [f.name for f in dataclasses.fields(options)]
    if key in own:
        return typing.get_type_hints(options)[key]
    train = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in NOT_TUNABLE]
    if key in train:
        return typing.get_type_hints(TrainConfig)[key]
    raise ConfigError(f"{where}: {key!r} is neither a training option that can be tuned "
                      f"({', '.join(train)}) nor an option of {method} "
                      f"({', '.join(own) or 'none'})")


def sweep_points(method: str, sweep: Mapping[str, Sequence[Any]],
                 where: str = "sweep") -> list[dict[str, Any]]:
    """Every combination of the values of a sweep, each value coerced to its setting's type.

    Args:
        method: the method, whose options (and the tunable training options) the sweep may
            vary.
        sweep: setting -> non-empty list of values.
        where: how errors name the sweep.

    Returns:
        The points in order, the last setting varying fastest.

    Raises:
        ConfigError: an unknown method, a sweep that is not a non-empty mapping, a setting
            that is neither a tunable training option nor an option of the method, an empty
            list of values, or a value that cannot be read as its setting's type.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if not isinstance(sweep, Mapping) or not sweep:
        raise ConfigError(f"{where}: expected a mapping of option -> list of values, e.g. "
                          f"{{'alpha2': [10, 100]}}")
    columns = []
    for key, values in sweep.items():
        annotation = _annotation(method, str(key), where)
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise ConfigError(f"{where}: {key}: expected a non-empty list of values, got "
                              f"{values!r}")
        columns.append([coerce_to(v, annotation, f"{where} {key}") for v in values])
    keys = [str(k) for k in sweep]
    return [dict(zip(keys, values, strict=True)) for values in product(*columns)]


def parse_sweep(items: Sequence[str], method: str) -> list[dict[str, Any]]:
    """The points of ``--sweep KEY=V1,V2 ...`` (repeatable): every combination of the values.

    Args:
        items: the ``KEY=V1,V2,...`` texts, one per setting.
        method: the method, whose options (and the tunable training options) may be swept.

    Returns:
        The points, as :func:`sweep_points` gives them.

    Raises:
        ConfigError: a malformed item, a key given twice, an unknown key, no values, or a bad
            value.
    """
    sweep: dict[str, list[str]] = {}
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"--sweep {item!r}: expected KEY=V1,V2,... e.g. alpha2=10,100")
        if key in sweep:
            raise ConfigError(f"--sweep {key}: given twice; list its values once, "
                              f"{key}=V1,V2,...")
        _annotation(method, key, "--sweep")
        values = [v.strip() for v in text.split(",") if v.strip()]
        if not values:
            raise ConfigError(f"--sweep {key}: no values; give {key}=V1,V2,...")
        sweep[key] = values
    return sweep_points(method, sweep, "--sweep")


def point_label(point: Mapping[str, Any]) -> str:
    """A point's label, its folder's name under ``points/``.

    Args:
        point: setting -> value.

    Returns:
        ``key=value,key=value``, floats in ``%g`` form.
    """
    return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in point.items())


def apply_point(config: TrainConfig, point: Mapping[str, Any]) -> TrainConfig:
    """A copy of ``config`` with the settings of ``point``.

    Args:
        config: the training settings to start from (not changed).
        point: setting -> value: training options are set, method options added to
            ``options``.

    Returns:
        The new settings (not checked: :func:`check_points`).
    """
    out = copy.deepcopy(config)
    train = {f.name for f in dataclasses.fields(TrainConfig)}
    for key, value in point.items():
        if key in train:
            setattr(out, key, copy.deepcopy(value))
        else:
            out.options[key] = copy.deepcopy(value)
    return out


def check_points(config: TrainConfig, points: Sequence[Mapping[str, Any]],
                 n_modalities: int | None = None, where: str = "sweep") -> list[str]:
    """Check every point's settings (:func:`boomda.methods.check_config`).

    Args:
        config: the training settings each point applies to.
        points: the sweep's points.
        n_modalities: the number of modalities, to check the options against (None: not
            checked).
        where: how errors name the sweep.

    Returns:
        The points' labels (:func:`point_label`), in order.

    Raises:
        ConfigError: no point, a point given twice, or naming the first point with a bad
            setting.
    """
    if not points:
        raise ConfigError(f"{where}: no point to tune")
    labels = [point_label(p) for p in points]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where}: a point is given twice")
    for label, point in zip(labels, points, strict=True):
        try:
            check_config(apply_point(config, point), n_modalities)
        except ConfigError as error:
            raise ConfigError(f"{where} point {label}: {error}") from None
    return labels


def check_validator(name: str, has_holdout: bool, where: str = "select") -> None:
    """Check that a validator exists and can score the pair it is meant for.

    Args:
        name: the validator's name in :data:`boomda.select.VALIDATORS`.
        has_holdout: whether the pair has a held-out source part (at least 2 samples).
        where: how errors name the option.

    Raises:
        ConfigError: an unknown validator, or one that needs a held-out source part the pair
            lacks.
    """
    from boomda.select import VALIDATORS

    if name not in VALIDATORS:
        raise ConfigError(f"{where} {name!r}: choose a validator from {', '.join(VALIDATORS)} "
                          f"(recommended: im)")
    if VALIDATORS[name].needs_holdout and not has_holdout:
        raise ConfigError(f"{where} {name}: reads held-out labelled source samples, and the "
                          f"pair has none (give holdout > 0), or choose im or snd")


@dataclass
class Selection:
    """Which point a validator chose, and every point's scores.

    Attributes:
        validator: the name of the validator that chose.
        points: each point's settings, in the sweep's order.
        labels: their names (:func:`point_label`).
        scores: per point, every validator's score (None where not finite).
        target: per point, the target's weighted F1 and accuracy when the target has labels
            (reporting only: the choice never reads them), else None.
        chosen: the chosen point's label.
        reason: why it was chosen.
        tie_rule: how ties were broken (:data:`TIE_RULE`).
    """

    validator: str
    points: list[dict[str, Any]]
    labels: list[str]
    scores: list[dict[str, float | None]]
    target: list[dict[str, float] | None]
    chosen: str
    reason: str
    tie_rule: str = TIE_RULE

    @property
    def chosen_index(self) -> int:
        """The chosen point's position in :attr:`points`."""
        return self.labels.index(self.chosen)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``selection.json``.

        Returns:
            ``validator``, ``chosen``, ``chosen_point``, ``reason``, ``tie_rule`` and
            ``points``: per point its ``label``, ``settings``, ``validators`` (scores) and
            ``target_reporting_only``.
        """
        return {"validator": self.validator, "chosen": self.chosen,
                "chosen_point": self.points[self.chosen_index], "reason": self.reason,
                "tie_rule": self.tie_rule,
                "points": [{"label": label, "settings": point, "validators": scores,
                            "target_reporting_only": target}
                           for label, point, scores, target in zip(
                               self.labels, self.points, self.scores, self.target,
                               strict=True)]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Selection:
        """The selection a ``selection.json`` object describes (:meth:`to_dict`'s inverse).

        Args:
            d: the JSON object.

        Returns:
            The selection.

        Raises:
            KeyError: a key :meth:`to_dict` writes is missing (``tie_rule`` may be).
        """
        rows = d["points"]
        return cls(d["validator"], [r["settings"] for r in rows], [r["label"] for r in rows],
                   [r["validators"] for r in rows], [r["target_reporting_only"] for r in rows],
                   d["chosen"], d["reason"], d.get("tie_rule", TIE_RULE))

    def table(self) -> str:
        """The points x validators table, as ``boomda run --select`` prints it.

        Returns:
            A header and one line per point, the chosen point and the choosing validator's
            column header marked with ``*``; the target's weighted F1 in a last column
            (reporting only) when the target has labels.

        """
        names = list(self.scores[0]) if self.scores else []
        labelled = any(t is not None for t in self.target)
        width = max(len("point"), *(len(label) for label in self.labels)) + 2
        header = "  point".ljust(width + 2) + "".join(
            (f"{n}*" if n == self.validator else n).rjust(12) for n in names)
        if labelled:
            header += "   target F1 (reporting only)"
        lines = [header]
        for i, label in enumerate(self.labels):
            mark = "* " if label == self.chosen else "  "
            row = (mark + label).ljust(width + 2) + "".join(
                (f"{v:.4f}" if v is not None else "–").rjust(12)
                for v in self.scores[i].values())
            if labelled:
                t = self.target[i]
                row += f"   {t['weighted_f1']:.2f}" if t is not None else "   –"
            lines.append(row)
        return "\n".join(lines)


def choose(validator: str, labels: Sequence[str], scores: Sequence[Mapping[str, Any]],
           ) -> tuple[str, str]:
    """The point with the highest finite score of a validator; the earlier point wins ties.

    Args:
        validator: the validator whose score decides.
        labels: the points' labels, in the sweep's order.
        scores: per point, validator name -> score (None or non-finite: cannot win).

    Returns:
        The chosen label and why it was chosen, in words.

    Raises:
        BoomdaError: no point has a finite score.
    """
    values = [_finite(s.get(validator)) for s in scores]
    finite = [i for i, v in enumerate(values) if v is not None]
    if not finite:
        raise BoomdaError(f"no point has a finite {validator} score ({len(labels)} point(s)); "
                          f"choose another validator")
    best = max(v for v in values if v is not None)
    tied = [i for i in finite if values[i] == best]
    reason = f"highest {validator} ({best:.4f}) among {len(finite)} point(s) with a finite score"
    if len(tied) > 1:
        reason += (f"; tied with {', '.join(labels[i] for i in tied[1:])}, the earlier point in "
                   f"the sweep's order wins")
    if len(finite) < len(labels):
        reason += f"; {len(labels) - len(finite)} point(s) without a finite score cannot win"
    return labels[tied[0]], reason


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def make_selection(validator: str, points: Sequence[Mapping[str, Any]], labels: Sequence[str],
                   scores: Sequence[Mapping[str, Any]], target: Sequence[Any]) -> Selection:
    """The :class:`Selection` of the point ``validator`` chooses among ``points`` (:func:`choose`).

    Args:
        validator: the validator whose score decides.
        points: the points' settings, in the sweep's order.
        labels: their labels.
        scores: per point, every validator's score.
        target: per point, the target's scores when it has labels (reporting only), else None.

    Returns:
        The selection, non-finite scores stored as None.

    Raises:
        BoomdaError: no point has a finite score.
    """

    chosen, reason = choose(validator, labels, scores)
    plain = [{k: _finite(v) for k, v in s.items()} for s in scores]
    return Selection(validator, [dict(p) for p in points], list(labels), plain, list(target),
                     chosen, reason)


