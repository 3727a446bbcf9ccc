"""The extension points' registries, importable without torch.

Each registry maps a name (as a config or the command line gives it) to its entry, in
registration order. The built-in entries are :class:`Lazy` references, loaded at first use, so
that listing the names (iteration, ``in``, ``len``), as the command line's parser and the
report do, imports no implementation module. Every other list of names in the package is
derived from these.

Adding an entry is one line: ``METHODS.register(LinearMMD.name, LinearMMD)`` (or
``METHODS["mmd"] = LinearMMD``); see docs/extending.md.

Attributes:
    METHODS: method name -> :class:`boomda.methods.base.Method` subclass (``train.method``,
        ``--method``); the built-ins in the paper's Table 1 order, each with the traits
        ``table_rank``, ``use_ca``, ``use_pl`` and ``baseline``.
    BALANCERS: balancing strategy name -> :class:`boomda.balance.Balancer` subclass
        (``train.options.gamma_solver``, ``--gamma-solver``); the trait ``data_parallel``:
        whether it trains in data-parallel processes.
    NORMALIZATIONS: the gradient normalisations before balancing
        (``train.options.gamma_normalization``): a tuple of names, not a registry.
    CA_FORMS: correlation-alignment form name -> loss ``(z_source, z_target) -> scalar``
        (``train.options.ca_form``, ``--ca-form``).
    READERS: corpus name -> reader ``read(raw, signals) -> RawCorpus`` (``raw.corpus``).
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
    """An entry given by where it is defined, imported at first use.

    Attributes:
        target: ``"module:attribute"``.
        traits: those of its attributes that are read without loading it (the report's table
            order and ablation marks); they must equal the loaded object's attributes.
    """

    target: str
    traits: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        """Import the object ``target`` names.

        Returns:
            The object.

        Raises:
            ImportError: the module cannot be imported.
            AttributeError: the module has no such attribute.
        """
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


class Registry(MutableMapping[str, T]):
    """Names -> entries of one extension point, a mutable mapping in registration order.

    Reading an entry loads it if it is :class:`Lazy`; iteration, ``in`` and ``len`` load
    nothing.

    Args:
        what: how its errors name an entry (``method``, ``gamma solver``).
        entries: the initial entries, name -> entry or :class:`Lazy`.
    """

    def __init__(self, what: str, entries: dict[str, Any] | None = None) -> None:
        self.what = what
        self._entries: dict[str, Any] = dict(entries or {})
        self._loaded: dict[str, Any] = {}  # the objects of the Lazy entries loaded so far

    def register(self, name: str, entry: T | Lazy) -> T | Lazy:
        """Add (or replace) the entry called ``name``.

        Args:
            name: the entry's name, as a config or the command line gives it.
            entry: the entry, or a :class:`Lazy` reference to it.

        Returns:
            ``entry``.

        Raises:
            ConfigError: an empty or non-string name.
        """
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
        """The registered names, in registration order (nothing is imported).

        Returns:
            The names.
        """
        return list(self._entries)

    def choices(self) -> str:
        """The names as a help text or an error lists them.

        Returns:
            ``a, b, c``.
        """
        return ", ".join(self._entries)

    def lookup(self, name: str, where: str | None = None) -> T:
        """The entry called ``name``, loaded, with a one-line error for an unknown name.

        Args:
            name: the entry's name.
            where: how the error names the option (default: the kind of entry, ``what``).

        Returns:
            The entry.

        Raises:
            ConfigError: an unknown name, listing the registered names.
        """
        if name not in self._entries:
            raise ConfigError(f"unknown {where or self.what} {name!r}; choose from "
                              f"{self.choices()}")
        return self[name]

    def trait(self, name: str, key: str, default: Any = None) -> Any:
        """An attribute of an entry, read without loading it when it is a declared trait.

        Args:
            name: the entry's name.
            key: the attribute.
            default: the value when the entry has no such attribute.

        Returns:
            A :class:`Lazy` entry's declared trait ``key`` (itself loaded when it is a
            :class:`Lazy`, as the built-in methods' ``Options`` are: from a module without
            torch), else the (loaded) entry's attribute.

        Raises:
            KeyError: an unknown name.
        """
        entry = self._entries[name]
        if isinstance(entry, Lazy) and key in entry.traits:
            value = entry.traits[key]
            return value.load() if isinstance(value, Lazy) else value
        return getattr(self[name], key, default)


def _method(target: str, rank: int, options: str, use_ca: bool | None = None,
            use_pl: bool | None = None, baseline: bool = False, title: str | None = None) -> Lazy:
    return Lazy("boomda.methods." + target, {
        "table_rank": rank, "title": title, "use_ca": use_ca, "use_pl": use_pl,
        "baseline": baseline,
        "Options": Lazy("boomda.methods.options:" + options)})


#: method name -> :class:`boomda.methods.base.Method` subclass (``train.method``,
#: ``--method``); the built-ins in the paper's Table 1 order
METHODS: Registry[type[Method]] = Registry("method", {
    "dt": _method("boomda:DirectTransfer", 0, "BoomdaOptions", False, False, baseline=True,
                  title="D.T."),
    "dann": _method("dann:DANN", 1, "AdversarialOptions", baseline=True, title="DANN"),
    "dada": _method("dada:DADA", 2, "DADAOptions", baseline=True, title="DADA"),
    "mada": _method("mada:MADA", 3, "MADAOptions", baseline=True, title="MADA"),
    "daln": _method("daln:DALN", 4, "DALNOptions", baseline=True, title="DALN"),
    "pcl": _method("pcl:PCL", 5, "PCLOptions", baseline=True, title="PCL"),
    "cdan": _method("cdan:CDAN", 6, "CDANOptions", baseline=True, title="CDAN"),
    "ca": _method("boomda:AlignOnly", 7, "BoomdaOptions", True, False, title="ca"),
    "pl": _method("boomda:PseudoLabelOnly", 8, "BoomdaOptions", False, True, title="pl"),
    "uniform": _method("boomda:UniformBoomda", 9, "BoomdaOptions", True, True,
                       title="uniform"),
    "boomda": _method("boomda:BoomdaMethod", 10, "BoomdaOptions", True, True,
                      title="Boomda"),
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
    """Check a gradient normalisation's name.

    Args:
        mode: the name.

    Raises:
        ConfigError: ``mode`` is not one of :data:`NORMALIZATIONS`.
    """
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
    """Methods in the paper's table order (their ``table_rank``), loading none.

    Args:
        names: the method names (default: every registered method).

    Returns:
        The ranked names by rank, then those without a rank (or not registered), in the
        order given.
    """
    names = METHODS.names() if names is None else names
    ranked = sorted((METHODS.trait(n, "table_rank"), i, n) for i, n in enumerate(names)
                    if n in METHODS and METHODS.trait(n, "table_rank") is not None)
    return [n for *_, n in ranked] + [n for n in names if n not in {r for *_, r in ranked}]


def ablation_marks() -> dict[str, tuple[bool, bool]]:
    """The ablation variants: the methods that say whether they use CA and PL.

    Returns:
        Method name -> (uses CA, uses PL), in table order.
    """
    marks = {}
    for name in table_order():
        ca, pl = METHODS.trait(name, "use_ca"), METHODS.trait(name, "use_pl")
        if ca is not None and pl is not None:
            marks[name] = (bool(ca), bool(pl))
    return marks


def baselines() -> list[str]:
    """The methods marked ``baseline`` (direct transfer and the published baselines).

    Returns:
        Their names, in registration order.
    """

    return [n for n in METHODS if METHODS.trait(n, "baseline", False)]
