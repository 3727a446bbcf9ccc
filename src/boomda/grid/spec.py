"""What a grid runs: the grid file (:class:`GridSpec`), checked whole before any cell runs, and
its cells (method x task or modality subset x grid point x seed) with their ids.

A cell's id is the name of its run folder under ``runs/``: ``method__subset__seedN`` (or the
suite task in place of the subset), with the grid point's label before the seed when the grid
has a sweep, e.g. ``dann__fou+kar__trade_off=0.03__seed0``. Every part is a safe folder name on
every operating system (:func:`safe_name`); a point's nested settings are spelt with dots
(``options.class_weight=0.3``).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations, product
from pathlib import Path
from typing import Any

from boomda.config import RunConfig, TrainConfig, check_keys, coerce, load_yaml_mapping
from boomda.data.raw_config import check_raw_config
from boomda.errors import ConfigError
from boomda.grid.cell import Cell
from boomda.methods import METHODS, check_config

#: ``sweep: preset`` in a grid file: every method's own preset sweep
PRESET = "preset"


@dataclass
class GridSpec:
    """What a grid runs. ``base``: a run config (``data``/``train`` sections) shared by all cells;
    ``methods``; ``modalities``: the modalities subsets are drawn from (default: the base's);
    ``subsets``: ``all`` (every combination of two or more) or a list of subsets;
    ``seeds``; ``method_overrides``: per-method ``train`` settings or method options.

    ``tasks``: a benchmark suite instead of one data set: task name -> ``data`` settings that
    replace the base's (dataset, modalities, shifts, ...), or the path of a YAML file holding
    such a ``tasks:`` mapping (relative to the grid file). Each task runs on all its modalities
    (``subsets`` does not apply). ``sweep``: ``train`` option or method option (e.g.
    Boomda's ``alpha2``) -> list of values; every
    combination is a grid point, run for every method, task or subset, and seed (the points
    among which ``boomda bench --select`` chooses); or a list of such mappings of single
    values, one per point, when the options are not varied independently. ``sweep_methods``:
    the methods the sweep applies to (default: all); the others run once with the base settings.
    ``sweep: preset``: every method's own preset (:attr:`boomda.methods.base.Method.preset`, the
    points ``boomda run --select`` tries; the same number for every method), for a comparison in
    which every method is tuned the same way.
    """

    name: str = "grid"
    base: dict[str, Any] = field(default_factory=dict)
    methods: list[str] = field(default_factory=lambda: ["boomda"])
    modalities: list[str] | None = None
    subsets: str | list[list[str]] = "all"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] | str | None = None
    sweep: dict[str, list[Any]] | list[dict[str, Any]] | str = field(default_factory=dict)
    sweep_methods: list[str] | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> GridSpec:
        raw = load_yaml_mapping(path, "grid file")
        if isinstance(raw.get("tasks"), str):
            tasks_file = Path(path).parent / raw["tasks"]
            tasks = load_yaml_mapping(tasks_file, "tasks file").get("tasks")
            if not isinstance(tasks, Mapping) or not tasks:
                raise ConfigError(f"{tasks_file}: expected a non-empty 'tasks:' mapping")
            raw["tasks"] = dict(tasks)
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "grid") -> GridSpec:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: expected a mapping at the top level")
        check_keys(raw, sorted(cls.__dataclass_fields__), where, "key")
        spec = cls(**{k: copy.deepcopy(v) for k, v in raw.items()})
        spec.validate(where)
        return spec

    def points(self, method: str) -> list[dict[str, Any]]:
        """The sweep's grid points for ``method``: one dict of train settings per combination
        (a single empty point without a sweep, or for a method the sweep does not apply to)."""
        excluded = self.sweep_methods is not None and method not in self.sweep_methods
        if not self.sweep or excluded:
            return [{}]
        if isinstance(self.sweep, str):  # PRESET, the one string validate() accepts
            return [dict(point) for point in METHODS[method].preset] or [{}]
        if isinstance(self.sweep, list):
            return [dict(point) for point in self.sweep]
        keys = list(self.sweep)
        return [dict(zip(keys, values, strict=True))
                for values in product(*(self.sweep[k] for k in keys))]

    def task_list(self) -> list[tuple[str | None, dict[str, Any]]]:
        """(task name, data settings) pairs; one unnamed entry without tasks."""
        if not self.tasks:
            return [(None, {})]
        assert isinstance(self.tasks, Mapping)
        return [(str(name), dict(data or {})) for name, data in self.tasks.items()]

    def to_dict(self) -> dict[str, Any]:
        return {k: copy.deepcopy(getattr(self, k)) for k in self.__dataclass_fields__}

    def base_config(self) -> RunConfig:
        return RunConfig.from_dict(self.base, where="grid.base")

    def validate(self, where: str = "grid") -> None:
        """Check the whole grid before any cell runs: its name, the lists it must hold, every
        modality against the data's, every method, override and swept option, and each
        cell's train settings; :class:`ConfigError` naming the first bad key."""
        _check_folder_name(self.name, f"{where}.name")
        if not isinstance(self.methods, list) or not self.methods:
            raise ConfigError(f"{where}.methods: empty; name at least one method of "
                              f"{', '.join(METHODS)}")
        if isinstance(self.subsets, list) and not self.subsets:
            raise ConfigError(f"{where}.subsets: empty; give 'all' or a list of modality "
                              f"subsets, e.g. [fou+kar]")
        base = self.base_config()
        if base.raw is not None:  # the corpus and its options against the data registries
            check_raw_config(base.raw, f"{where}.base.raw")
        for m in self.methods:
            if m not in METHODS:
                raise ConfigError(f"{where}.methods: unknown method {m!r}; choose from "
                                  f"{', '.join(METHODS)}")
        for m in self.method_overrides:
            if m not in self.methods:
                raise ConfigError(f"{where}.method_overrides: {m!r} is not in methods")
        if not self.seeds or not all(isinstance(s, int) for s in self.seeds):
            raise ConfigError(f"{where}.seeds: expected a non-empty list of integers")
        if self.subsets != "all" and not isinstance(self.subsets, list):
            raise ConfigError(f"{where}.subsets: 'all' or a list of modality lists")
        if self.tasks is not None and (not isinstance(self.tasks, Mapping) or not self.tasks):
            raise ConfigError(f"{where}.tasks: expected a non-empty mapping of task name -> "
                              f"data settings (or a tasks file)")
        if self.sweep == PRESET:
            keys = {k for m in self.methods for point in self.points(m) for k in point}
        elif isinstance(self.sweep, list):
            if not all(isinstance(point, Mapping) and point for point in self.sweep):
                raise ConfigError(f"{where}.sweep: a list of points must hold non-empty "
                                  f"mappings of train option -> value")
            keys = {k for point in self.sweep for k in point}
        elif isinstance(self.sweep, Mapping) and all(isinstance(v, list) and v
                                                      for v in self.sweep.values()):
            keys = set(self.sweep)
        else:
            raise ConfigError(f"{where}.sweep: expected 'preset', a mapping of train option -> "
                              f"non-empty "
                              f"list of values, or a list of points")
        swept = [m for m in self.methods
                 if self.sweep_methods is None or m in self.sweep_methods]
        for key in sorted(keys):
            if key in ("method", "seed") or not (
                    _is_train_field(key) or any(key in _method_option_names(m) for m in swept)):
                raise ConfigError(f"{where}.sweep: {key!r} is neither a train option that can "
                                  f"be swept nor an option of the methods it applies to")
        self._check_modalities(base, where)
        if (not base.data.modalities and self.modalities is None and self.subsets == "all"
                and not self.tasks):
            raise ConfigError(f"{where}: give modalities (or base.data.modalities)")
        seen: set[str] = set()
        for cell in self.cells():
            check_config(cell.config.train, n_modalities=len(cell.modalities))
            _check_cell_id(cell.id, seen, where)

    def _check_modalities(self, base: RunConfig, where: str) -> None:
        """Every modality the grid names is one of its data's: the ``modalities`` and
        ``subsets`` against the base's data, each task's against the task's."""
        if self.tasks:
            for task, data in self.task_list():
                config = self._task_config(task, data)
                _check_available(config.data.modalities, config,
                                 f"{where}.tasks.{task}.modalities")
            return
        if self.modalities:
            _check_available(self.modalities, base, f"{where}.modalities")
        if self.subsets != "all":
            for subset in self.subset_list():
                _check_available(subset, base, f"{where}.subsets")

    def pool(self) -> list[str]:
        base = self.base_config()
        if self.modalities:
            return list(self.modalities)
        return list(base.raw.modalities) if base.raw is not None else list(base.data.modalities)

    def subset_list(self) -> list[tuple[str, ...]]:
        """The modality subsets: pairs first, then larger ones, in the pool's order."""
        pool = self.pool()
        if self.subsets == "all":
            return [c for k in range(2, len(pool) + 1) for c in combinations(pool, k)]
        out = []
        for item in self.subsets:
            subset = tuple(item.split("+")) if isinstance(item, str) else tuple(item)
            if len(subset) < 2:
                raise ConfigError(f"grid.subsets: {subset} has fewer than 2 modalities")
            out.append(subset)
        return out

    def _task_config(self, task: str | None, data: dict[str, Any]) -> RunConfig:
        raw = copy.deepcopy(self.base)
        if task is not None:
            merged = dict(raw.get("data") or {})
            if "source" in data or "target" in data:
                # a real pair: the base's data set, its views and its shifts do not apply
                for key in ("dataset", "modalities", "shifts"):
                    merged.pop(key, None)
            merged.update(copy.deepcopy(data))
            raw["data"] = merged
        where = "grid.base" if task is None else f"grid.tasks.{task}"
        config = RunConfig.from_dict(raw, where=where)
        if config.data.source is not None and not config.data.modalities:  # the files' arrays
            from boomda.data.files import modality_names

            config.data.modalities = modality_names(config.data.source, f"{where}.source")
        return config

    def cells(self) -> list[Cell]:
        """Every (method, task or subset, grid point, seed) cell with its resolved run config."""
        cells = []
        for task, data in self.task_list():
            task_base = self._task_config(task, data)
            subsets = ([tuple(task_base.data.modalities)] if task is not None
                       else self.subset_list())
            for method in self.methods:
                for point in self.points(method):
                    for subset in subsets:
                        for seed in self.seeds:
                            cells.append(self._cell(task, task_base, method, point, subset,
                                                    seed))
        return cells

    def _cell(self, task: str | None, task_base: RunConfig, method: str, point: dict[str, Any],
              subset: tuple[str, ...], seed: int) -> Cell:
        config = copy.deepcopy(task_base)
        config.train.method = method
        config.train.seed = seed
        for key, value in self.method_overrides.get(method, {}).items():
            if _is_train_field(key):
                setattr(config.train, key, copy.deepcopy(value))
            elif key in _method_option_names(method):
                config.train.options[key] = copy.deepcopy(value)
            else:
                raise ConfigError(f"grid.method_overrides.{method}: unknown option {key!r} "
                                  f"(neither a train option nor an option of {method})")
        for key, value in point.items():
            if _is_train_field(key):
                setattr(config.train, key, coerce(value, getattr(config.train, key),
                                                  f"grid.sweep.{key}"))
            else:  # a method option, coerced and checked by the method
                config.train.options[key] = copy.deepcopy(value)
        config.data.modalities = list(subset)
        if config.raw is not None:
            unknown = [m for m in subset if m not in config.raw.modalities]
            if unknown:
                raise ConfigError(f"grid: modality {unknown[0]!r} is not in "
                                  f"base.raw.modalities")
            config.raw.modalities = {m: config.raw.modalities[m] for m in subset}
        label = point_label(point)
        parts = [method, task if task is not None else "+".join(subset)]
        if label:
            parts.append(label)
        cid = safe_name("__".join(parts + [f"seed{seed}"]))
        config.name = cid
        config.tags = {k: v for k, v in (("task", task), ("point", label)) if v}
        return Cell(cid, method, subset, seed, config, task, label)


def _check_folder_name(name: Any, where: str) -> None:
    """``name`` is one plain folder name: a non-empty string of at most 255 bytes, without a
    path separator, and neither ``.`` nor ``..``."""
    if (not isinstance(name, str) or not name or name in (".", "..")
            or any(c in name for c in "/\\\0")):
        raise ConfigError(f"{where} {name!r}: one plain folder name (the grid's folder under "
                          f"bench/), not empty, without '/', '\\' or '..'")
    if len(name.encode()) > 255:
        raise ConfigError(f"{where}: {len(name.encode())} bytes; a folder name holds at most "
                          f"255")


def _check_cell_id(cid: str, seen: set[str], where: str) -> None:
    """``cid`` names one cell's folder: no other cell of the grid (``seen``, to which it is
    added) has it, and it fits a folder name (255 bytes)."""
    if cid in seen:
        raise ConfigError(f"{where}: two cells would share the folder runs/{cid}; make the "
                          f"grid points (or task names) differ")
    if len(cid.encode()) > 255:
        raise ConfigError(f"{where}: the cell id {cid[:40]}... is {len(cid.encode())} bytes; a "
                          f"folder name holds at most 255: shorten the task names or the swept "
                          f"values")
    seen.add(cid)


def _available_modalities(config: RunConfig) -> tuple[list[str], str] | None:
    """The modalities ``config``'s data offer and a phrase that names them; None when they are
    known only once the data are read (a data file that does not exist yet is reported by the
    run)."""
    from boomda.data import files, htad, mfeat

    if config.raw is not None:
        return list(config.raw.modalities), "raw.modalities are"
    if config.data.source is not None:  # a real pair
        return (files.modality_names(config.data.source, "data.source"),
                f"the source {config.data.source} holds")
    if config.data.dataset == "mfeat":
        return list(mfeat.VIEWS), "the embedded data's views are"
    if config.data.dataset == "htad":
        return list(htad.VIEWS.values()), "htad's views are"
    if Path(config.data.dataset).is_file():
        return (files.modality_names(config.data.dataset, "data.dataset"),
                f"{config.data.dataset} holds")
    return None


def _check_available(names: Any, config: RunConfig, where: str) -> None:
    """Each of ``names`` is a modality of ``config``'s data; ConfigError naming ``where``."""
    available = _available_modalities(config)
    if available is None:
        return
    known, phrase = available
    for name in names:
        if name not in known:
            raise ConfigError(f"{where}: unknown modality {name!r} ({'+'.join(map(str, names))}); "
                              f"{phrase} {', '.join(known)}")


def _is_train_field(key: str) -> bool:
    return key in TrainConfig.__dataclass_fields__


def _method_option_names(method: str) -> set[str]:
    """The option names of ``method`` (none for an unknown method, which is reported
    elsewhere)."""
    if method not in METHODS:
        return set()
    return {f.name for f in dataclasses.fields(METHODS[method].Options)}


#: characters no cell id holds: those Windows forbids in file names, quotes, braces and the
#: backquote (besides whitespace and control characters, see :func:`safe_name`)
UNSAFE = frozenset('<>:"/\\|?*\'{}`')


def safe_name(text: str) -> str:
    """``text`` with every character that is not safe in a folder name on every operating
    system (:data:`UNSAFE`, whitespace, control characters) written as ``%XX`` (its UTF-8
    bytes); a text without one is returned unchanged."""
    return "".join(c if c not in UNSAFE and c.isprintable() and not c.isspace()
                   else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def point_label(point: Mapping[str, Any]) -> str:
    """A grid point as ``key=value,key=value`` (empty for the base settings), a safe folder
    name (:func:`safe_name`): an item whose ``key=value`` is safe as it is stays so; a nested
    mapping is spelt with dotted keys (``options.class_weight=0.3``), a list as
    ``key=[a,b]``."""
    return ",".join(_label_items(point, ""))


def _label_items(point: Mapping[str, Any], prefix: str) -> list[str]:
    items = []
    for key, value in point.items():
        name = f"{prefix}{key}"
        plain = f"{name}={value}"
        if safe_name(plain) == plain:
            items.append(plain)
        elif isinstance(value, Mapping) and value:
            items.extend(_label_items(value, f"{name}."))
        elif isinstance(value, list | tuple):
            items.append(safe_name(f"{name}=[{','.join(map(str, value))}]"))
        else:
            items.append(safe_name(plain))
    return items
