"""The extension points' registries, importable without torch.

Each registry maps a name (as a config or the command line gives it) to its entry, in
registration order. The built-in entries are :class:`Lazy` references, loaded at first use, so
that listing the names (iteration, ``in``, ``len``), as the command line's parser and the
report do, imports no implementation module. Every other list of names in the package is
derived from these.

Adding an entry is one line: ``METHODS.register(LinearMMD.name, LinearMMD)`` (or
``METHODS["mmd"] = LinearMMD``); see docs/extending.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from boomda.errors import ConfigError

if TYPE_CHECKING:
    from boomda.balance import Balancer
    from boomda.methods.base import Method

T = TypeVar("T")


@dataclass(frozen=True)
class Lazy:
    """An entry given by where it is defined, ``"module:attribute"``, imported at first use.
    ``traits``: those of its attributes that are read without loading it (the report's table
    order and ablation marks); they must equal the loaded object's attributes."""

    target: str
    traits: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        """The object ``target`` names."""
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


class Registry(MutableMapping[str, T]):
    """Names -> entries of one extension point (``what``: how its errors name it)."""

    def __init__(self, what: str, entries: dict[str, Any] | None = None) -> None:
        self.what = what
        self._entries: dict[str, Any] = dict(entries or {})
        self._loaded: dict[str, Any] = {}  # the objects of the Lazy entries loaded so far

    def register(self, name: str, entry: T | Lazy) -> T | Lazy:
        """Add (or replace) the entry called ``name``; returns ``entry``."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.what} needs a non-empty name, got {name!r}")
        self._entries[name] = entry
        self._loaded.pop(name, None)
        return entry

    def __getitem__(self, name: str) -> T:
        entry = self._entries[name]
        if not isinstance(entry, Lazy):
            return entry
        if name not in self._loaded:
            self._loaded[name] = entry.load()
        return self._loaded[name]

    def __setitem__(self, name: str, entry: T) -> None:
        self.register(name, entry)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {list(self._entries)})"

    def names(self) -> list[str]:
        """The registered names, in registration order (nothing is imported)."""
        return list(self._entries)

    def choices(self) -> str:
        """The names as a help text or an error lists them: ``a, b, c``."""
        return ", ".join(self._entries)

    def lookup(self, name: str, where: str | None = None) -> T:
        """The entry called ``name``; an unknown one is a :class:`ConfigError` naming
        ``where`` (default: the kind of entry) and listing the registered names."""
        if name not in self._entries:
            raise ConfigError(f"unknown {where or self.what} {name!r}; choose from "
                              f"{self.choices()}")
        return self[name]

    def trait(self, name: str, key: str, default: Any = None) -> Any:
        """The attribute ``key`` of the entry ``name`` (``default`` if it has none): read from
        a :class:`Lazy` entry's declared traits without loading it, else from the entry."""
        entry = self._entries[name]
        if isinstance(entry, Lazy) and key in entry.traits:
            return entry.traits[key]
        return getattr(self[name], key, default)


def _method(target: str, rank: int, use_ca: bool | None = None, use_pl: bool | None = None,
            baseline: bool = False) -> Lazy:
    return Lazy("boomda.methods." + target, {"table_rank": rank, "use_ca": use_ca,
                                             "use_pl": use_pl, "baseline": baseline})


#: method name -> :class:`boomda.methods.base.Method` subclass (``train.method``,
#: ``--method``); the built-ins in the paper's Table 1 order
METHODS: Registry[type[Method]] = Registry("method", {
    "dt": _method("boomda:DirectTransfer", 0, False, False, baseline=True),
    "dann": _method("dann:DANN", 1, baseline=True),
    "dada": _method("dada:DADA", 2, baseline=True),
    "mada": _method("mada:MADA", 3, baseline=True),
    "daln": _method("daln:DALN", 4, baseline=True),
    "pcl": _method("pcl:PCL", 5, baseline=True),
    "cdan": _method("cdan:CDAN", 6, baseline=True),
    "ca": _method("boomda:AlignOnly", 7, True, False),
    "pl": _method("boomda:PseudoLabelOnly", 8, False, True),
    "uniform": _method("boomda:UniformBoomda", 9, True, True),
    "boomda": _method("boomda:BoomdaMethod", 10, True, True),
})


def _balancer(attribute: str, gram: bool = True) -> Lazy:
    return Lazy("boomda.balance:" + attribute, {"data_parallel": gram})


#: balancing strategy name -> :class:`boomda.balance.Balancer` subclass
#: (``train.options.gamma_solver``, ``--gamma-solver``); ``data_parallel``: whether it trains
#: in data-parallel processes
BALANCERS: Registry[type[Balancer]] = Registry("gamma solver", {
    "closed_form": _balancer("ClosedFormBalancer"),
    "exact": _balancer("ExactBalancer"),
    "imtl": _balancer("ImpartialBalancer"),
    "uniform": _balancer("UniformBalancer"),
    "mgda_params": _balancer("ParameterMGDABalancer", gram=False),
})

#: the gradient normalisations before balancing (``gamma_normalization``)
NORMALIZATIONS = ("none", "l2", "loss", "loss+")


def check_normalization(mode: str) -> None:
    """Raise :class:`ConfigError` unless ``mode`` is one of :data:`NORMALIZATIONS`."""
    if mode not in NORMALIZATIONS:
        raise ConfigError(f"unknown gamma_normalization {mode!r}; choose from "
                          f"{', '.join(NORMALIZATIONS)}")

#: correlation-alignment form name -> loss ``(z_source, z_target) -> scalar``
#: (``train.options.ca_form``, ``--ca-form``)
CA_FORMS: Registry[Any] = Registry("CA form", {
    "paper": Lazy("boomda.losses:coral_distance"),
    "coral": Lazy("boomda.losses:coral_loss"),
    "relative": Lazy("boomda.losses:relative_coral_loss"),
    "correlation": Lazy("boomda.losses:correlation_alignment_loss"),
})

#: corpus name -> reader ``read(raw, signals) -> RawCorpus`` (``raw.corpus``)
READERS: Registry[Any] = Registry("corpus", {
    "iemocap": Lazy("boomda.data.readers.iemocap:read"),
    "msp-improv": Lazy("boomda.data.readers.msp_improv:read"),
    "manifest": Lazy("boomda.data.readers.manifest:read"),
})


def table_order(names: list[str] | None = None) -> list[str]:
    """``names`` (default: every registered method) in the paper's table order (the methods'
    ``table_rank``), those without a rank after, in registration order."""
    names = METHODS.names() if names is None else names
    ranked = sorted((METHODS.trait(n, "table_rank"), i, n) for i, n in enumerate(names)
                    if n in METHODS and METHODS.trait(n, "table_rank") is not None)
    return [n for *_, n in ranked] + [n for n in names if n not in {r for *_, r in ranked}]


def ablation_marks() -> dict[str, tuple[bool, bool]]:
    """The ablation variants (methods that say whether they use CA and PL), in table order ->
    (uses CA, uses PL)."""
    marks = {}
    for name in table_order():
        ca, pl = METHODS.trait(name, "use_ca"), METHODS.trait(name, "use_pl")
        if ca is not None and pl is not None:
            marks[name] = (bool(ca), bool(pl))
    return marks


def baselines() -> list[str]:
    """The methods marked ``baseline`` (direct transfer and the published baselines)."""
    return [n for n in METHODS if METHODS.trait(n, "baseline", False)]
