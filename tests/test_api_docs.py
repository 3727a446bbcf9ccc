"""The public API's docstrings are structured (Google style) and agree with the signatures.

Every public callable of the documented objects has a one-line summary, an ``Args:`` section
naming exactly its parameters (less ``self``/``cls``) when it takes any, a ``Returns:`` section
when its return annotation is not None, and a ``Raises:`` section naming only exceptions of
:mod:`boomda.errors` or builtins. A dataclass documents exactly its fields under ``Attributes:``,
and a module its documented module-level values the same way.
"""

from __future__ import annotations

import builtins
import dataclasses
import inspect
import re
from collections.abc import Callable

import pytest

import boomda
import boomda.config
import boomda.errors
import boomda.registry
import boomda.select
import boomda.sweep
from boomda.data.container import MultimodalData
from boomda.data.pair import DomainPair
from boomda.estimator import DomainAdapter

SECTIONS = ("Args", "Returns", "Yields", "Raises", "Attributes", "Example", "Examples", "Note")

#: the documented classes: every public method and property they define is checked
CLASSES = [
    DomainAdapter, DomainPair, MultimodalData, boomda.RunConfig, boomda.TrainConfig,
    boomda.DataConfig, boomda.sweep.Selection, boomda.select.Validator,
    boomda.select.ModelOutputs, boomda.registry.Registry, boomda.registry.Lazy,
    boomda.errors.BoomdaError, boomda.errors.DataError, boomda.errors.ConfigError,
    boomda.errors.TrainingError,
]
#: the documented modules: every public function defined in them is checked
MODULES = [boomda.select, boomda.sweep, boomda.registry]
#: module-level values each module documents under ``Attributes:`` (exactly these)
MODULE_VALUES = {
    boomda.select: ["VALIDATORS"],
    boomda.sweep: ["TIE_RULE", "NOT_TUNABLE"],
    boomda.registry: ["METHODS", "BALANCERS", "NORMALIZATIONS", "CA_FORMS", "READERS"],
}
FUNCTIONS = [boomda.load_multiple_features]


def section(doc: str, name: str) -> list[str] | None:
    """The entry names of section ``name`` of ``doc`` (None without the section): the lines at
    the section's first indentation, each up to its ``:`` less a ``(type)``."""
    lines = inspect.cleandoc(doc).splitlines()
    for i, line in enumerate(lines):
        if line.strip() != f"{name}:":
            continue
        indent = len(line) - len(line.lstrip())
        body = []
        for text in lines[i + 1:]:
            if text.strip() and len(text) - len(text.lstrip()) <= indent:
                break
            body.append(text)
        entries = [t for t in body if t.strip()]
        if not entries:
            return []
        first = len(entries[0]) - len(entries[0].lstrip())
        names = []
        for text in entries:
            if len(text) - len(text.lstrip()) == first:
                match = re.match(r"\s*([\w.*]+)\s*(\([^)]*\))?\s*:", text)
                names.append(match.group(1) if match else text.strip())
        return names
    return None


def parameters(func: Callable) -> list[str]:
    """The parameter names of ``func`` as ``Args:`` writes them (``*args``, ``**kwargs``), less
    ``self`` and ``cls``."""
    names = []
    for p in inspect.signature(func).parameters.values():
        if p.name in ("self", "cls"):
            continue
        stars = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        names.append(stars + p.name)
    return names


def returns_value(func: Callable) -> bool:
    """Whether ``func``'s return annotation is something other than None (no annotation
    counts as a value)."""
    annotation = inspect.signature(func).return_annotation
    return annotation not in (None, "None", type(None))


def summary_problems(doc: str | None) -> list[str]:
    """A docstring's problems as a whole: missing, or no one-line summary ending in a period."""
    if not doc or not doc.strip():
        return ["no docstring"]
    lines = inspect.cleandoc(doc).splitlines()
    if not lines[0].rstrip().endswith((".", ":")):
        return [f"the summary is not one line ending in a period: {lines[0]!r}"]
    if len(lines) > 1 and lines[1].strip():
        return ["the one-line summary is not followed by a blank line"]
    return []


def raises_problems(doc: str) -> list[str]:
    """``Raises:`` entries that are neither in boomda.errors nor builtins."""
    return [f"Raises: {name} is neither in boomda.errors nor a builtin"
            for name in section(doc, "Raises") or []
            if not isinstance(getattr(boomda.errors, name, getattr(builtins, name, None)), type)]


def callable_problems(func: Callable, args_doc: str | None = None) -> list[str]:
    """What is wrong with ``func``'s docstring (``args_doc``: where its ``Args:`` are, for an
    ``__init__`` documented by its class)."""
    doc = inspect.getdoc(func) or ""
    problems = summary_problems(doc)
    if problems:
        return problems
    want = parameters(func)
    given = section(args_doc if args_doc is not None else doc, "Args")
    if want and given != want:
        problems.append(f"Args: {given} instead of {want}")
    if not want and given:
        problems.append(f"Args: {given}, but it takes no parameter")
    if returns_value(func) and func.__name__ != "__init__" and section(doc, "Returns") is None:
        problems.append("no Returns: section")
    return problems + raises_problems(doc)


def own_members(cls: type) -> list[tuple[str, object]]:
    """The public methods and properties ``cls`` defines itself, and its own ``__init__``."""
    members = []
    for name, value in vars(cls).items():
        if name.startswith("_") and name != "__init__":
            continue
        if name == "__init__" and value.__code__.co_filename != inspect.getsourcefile(cls):
            continue  # generated by dataclass: the fields are the Attributes
        if isinstance(value, classmethod | staticmethod | property) or inspect.isfunction(value):
            members.append((name, value))
    return members


def class_problems(cls: type) -> list[str]:
    """What is wrong with the docstrings of ``cls`` and of the members it defines."""
    doc = inspect.getdoc(cls) or ""
    problems = [f"{cls.__name__}: {p}" for p in summary_problems(doc) + raises_problems(doc)]
    if dataclasses.is_dataclass(cls):
        fields = [f.name for f in dataclasses.fields(cls)]
        if section(doc, "Attributes") != fields:
            problems.append(f"{cls.__name__}: Attributes: {section(doc, 'Attributes')} instead "
                            f"of the fields {fields}")
    for name, value in own_members(cls):
        where = f"{cls.__name__}.{name}"
        if isinstance(value, property):
            problems += [f"{where}: {p}" for p in summary_problems(value.__doc__)]
            continue
        func = value.__func__ if isinstance(value, classmethod | staticmethod) else value
        if name == "__init__":
            problems += [f"{where}: {p}" for p in callable_problems(func, doc)]
        else:
            problems += [f"{where}: {p}" for p in callable_problems(func)]
    return problems


def module_functions(module) -> list[Callable]:
    """The public functions defined in ``module`` (not imported into it)."""
    return [value for name, value in vars(module).items()
            if not name.startswith("_") and inspect.isfunction(value)
            and value.__module__ == module.__name__]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_class_docstrings(cls: type) -> None:
    assert class_problems(cls) == []


@pytest.mark.parametrize("func", [f for m in MODULES for f in module_functions(m)] + FUNCTIONS,
                         ids=lambda f: f"{f.__module__}.{f.__name__}")
def test_function_docstrings(func: Callable) -> None:
    assert callable_problems(func) == []


@pytest.mark.parametrize("module", list(MODULE_VALUES), ids=lambda m: m.__name__)
def test_module_values_documented(module) -> None:
    assert summary_problems(module.__doc__) == []
    assert section(module.__doc__, "Attributes") == MODULE_VALUES[module]
    for name in MODULE_VALUES[module]:
        assert hasattr(module, name)


def test_the_documented_modules_cover_the_names_asked_for() -> None:
    """The checked set holds every name of the public API (so that none drops out unseen)."""
    checked = {f"{f.__module__}.{f.__name__}" for m in MODULES for f in module_functions(m)}
    for name in ("select.score_model", "select.source_risk", "select.information_maximization",
                 "select.soft_neighborhood_density", "select.deep_embedded_validation",
                 "sweep.preset_points", "sweep.sweep_points", "sweep.parse_sweep",
                 "sweep.choose", "registry.table_order"):
        assert f"boomda.{name}" in checked
    names = [n for n, _ in own_members(DomainAdapter)]
    for name in ("__init__", "fit", "predict", "predict_proba", "evaluate", "score", "save",
                 "load", "get_params", "set_params", "classes"):
        assert name in names
    assert {"register", "lookup"} <= {n for n, _ in own_members(boomda.registry.Registry)}


# ----------------------------------------------------------------- the checker itself


def _documented(a: int, *rest: int, flag: bool = False, **extra: int) -> int:
    """Add things.

    Args:
        a: the first.
        *rest: the others.
        flag (bool): a flag,
            on two lines.
        **extra: more.

    Returns:
        The sum.

    Raises:
        DataError: never.
    """
    return a


def _undocumented_parameter(a: int, b: int) -> int:
    """Add things.

    Args:
        a: the first.

    Returns:
        The sum.
    """
    return a + b


def _no_returns(a: int) -> int:
    """Add things.

    Args:
        a: the first.
    """
    return a


def _unknown_raise(a: int) -> None:
    """Add things.

    Args:
        a: the first.

    Raises:
        NoSuchError: when.
    """


def test_the_checker_accepts_a_complete_docstring() -> None:
    assert callable_problems(_documented) == []


@pytest.mark.parametrize(("func", "problem"), [
    (_undocumented_parameter, "Args: ['a'] instead of ['a', 'b']"),
    (_no_returns, "no Returns: section"),
    (_unknown_raise, "Raises: NoSuchError is neither in boomda.errors nor a builtin"),
])
def test_the_checker_finds_each_problem(func: Callable, problem: str) -> None:
    assert callable_problems(func) == [problem]


def test_an_undocumented_new_parameter_of_the_api_fails() -> None:
    """A parameter added to a documented method without a line in its ``Args:`` is reported."""
    real = inspect.signature(DomainAdapter.fit)
    new = inspect.Parameter("new_option", inspect.Parameter.KEYWORD_ONLY, default=1)

    def fit(*args, **kwargs) -> DomainAdapter:
        return DomainAdapter()

    fit.__doc__ = DomainAdapter.fit.__doc__
    fit.__signature__ = real.replace(parameters=[*real.parameters.values(), new])  # type: ignore
    assert callable_problems(DomainAdapter.fit) == []
    documented = section(DomainAdapter.fit.__doc__ or "", "Args")
    assert callable_problems(fit) == [
        f"Args: {documented} instead of {[*parameters(DomainAdapter.fit), 'new_option']}"]
