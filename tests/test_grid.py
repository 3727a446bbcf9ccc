"""The boomda.grid package: cell ids that are safe folder names, the executor interface and its
stop, and the shape of the package (no import cycle, no private name shared)."""

import ast
import re
from itertools import product
from pathlib import Path

import pytest

from boomda.errors import ConfigError
from boomda.grid import (
    Executor,
    GridSpec,
    LocalExecutor,
    Stop,
    Stopped,
    point_label,
    run_grid,
    safe_name,
)
from boomda.report.tables import is_default_point

ROOT = Path(__file__).parents[1]
#: what no folder name may hold on some operating system, or what a shell or YAML reads
#: specially: Windows' forbidden characters, quotes, braces, whitespace, control characters
UNSAFE = re.compile(r"""[<>:"/\\|?*'{}`\s\x00-\x1f\x7f]""")
TINY = {"epochs": 1, "dim": 8, "hidden": 16}


def _raw(**changes) -> dict:
    raw = {"name": "ids", "base": {"data": {"modalities": ["fou", "kar"]}, "train": dict(TINY)},
           "methods": ["dt"], "subsets": [["fou", "kar"]], "seeds": [0]}
    raw.update(changes)
    return raw


def _plain_label(point: dict) -> str:
    """A point as ``key=value,...`` with Python's str of each value."""
    return ",".join(f"{k}={v}" for k, v in point.items())


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("grid-*.yaml")),
                         ids=lambda p: p.stem)
def test_every_shipped_grid_has_safe_unique_cell_ids_and_keeps_its_safe_ones(path):
    spec = GridSpec.from_yaml(path)
    ids = [c.id for c in spec.cells()]
    assert len(set(ids)) == len(ids)
    for cid in ids:
        assert not UNSAFE.search(cid), cid
        assert len(cid.encode()) <= 255
    # the ids spelt with str() of every value, where that is already safe, are kept as they are
    plain = set()
    unsafe = 0
    for (task, _), method, seed in product(spec.task_list(), spec.methods, spec.seeds):
        subsets = ([None] if task is not None else spec.subset_list())
        for point, subset in product(spec.points(method), subsets):
            label = _plain_label(point)
            parts = [method, task if task is not None else "+".join(subset)]
            cid = "__".join(parts + ([label] if label else []) + [f"seed{seed}"])
            if UNSAFE.search(cid):
                unsafe += 1
                assert point_label(point) != label
            else:
                plain.add(cid)
                assert point_label(point) == label
    assert plain <= set(ids) and len(plain) + unsafe == len(ids)


def test_a_nested_point_is_labelled_with_dotted_keys():
    spec = GridSpec.from_dict(_raw(methods=["mada"], sweep=[{"options": {"class_weight": 0.3}},
                                                            {"options": {"class_weight": 1.0}}]))
    cells = spec.cells()
    assert [c.id for c in cells] == ["mada__fou+kar__options.class_weight=0.3__seed0",
                                     "mada__fou+kar__options.class_weight=1.0__seed0"]
    assert [c.config.train.options for c in cells] == [{"class_weight": 0.3},
                                                       {"class_weight": 1.0}]
    assert cells[0].config.tags["point"] == "options.class_weight=0.3"
    # the report reads the dotted key as the method's option (MADA's default weight is 1)
    assert is_default_point("options.class_weight=1.0", "mada")
    assert not is_default_point("options.class_weight=0.3", "mada")


def test_point_labels_by_hand():
    assert point_label({}) == ""
    assert point_label({"ca_form": "relative", "alpha2": 100.0}) == "ca_form=relative,alpha2=100.0"
    assert point_label({"options": {"a": {"b": 1}, "c": "x y"}}) == "options.a.b=1,options.c=x%20y"
    assert point_label({"hidden": [64, 32]}) == "hidden=[64,32]"
    assert point_label({"hidden": [64]}) == "hidden=[64]"  # safe as str() spells it
    assert point_label({"options": {}}) == "options=%7B%7D"


def test_safe_name_by_hand():
    assert safe_name('C:\\x "y"') == "C%3A%5Cx%20%22y%22"
    assert safe_name("a/b|c?*<>'\t") == "a%2Fb%7Cc%3F%2A%3C%3E%27%09"
    already = "dann__fou+kar__trade_off=0.03__seed0"
    assert safe_name(already) == already
    assert safe_name("é") == "é"


def test_task_names_become_safe_and_colliding_ids_are_refused():
    spec = GridSpec.from_dict(_raw(tasks={"a b": {}, "c/d": {}}))
    assert [c.id for c in spec.cells()] == ["dt__a%20b__seed0", "dt__c%2Fd__seed0"]
    assert spec.cells()[0].config.tags["task"] == "a b"  # reports keep the name as given
    with pytest.raises(ConfigError, match=r"two cells would share the folder runs/dt__a%20b"):
        GridSpec.from_dict(_raw(tasks={"a b": {}, "a%20b": {}}))
    with pytest.raises(ConfigError, match="a folder name holds at most 255"):
        GridSpec.from_dict(_raw(tasks={"t" * 250: {}}))


def test_an_existing_cell_folder_is_found_and_reused(tmp_path):
    raw = _raw(methods=["dann"], sweep={"trade_off": [0.03]})
    spec = GridSpec.from_dict(raw)
    assert [c.id for c in spec.cells()] == ["dann__fou+kar__trade_off=0.03__seed0"]
    first = run_grid(spec, tmp_path / "g", threads=1, progress=False, report=False)
    assert (first.ran, first.done) == (1, 1)
    assert (tmp_path / "g" / "runs" / "dann__fou+kar__trade_off=0.03__seed0").is_dir()
    again = run_grid(GridSpec.from_dict(raw), tmp_path / "g", threads=1, progress=False,
                     report=False)
    assert (again.ran, again.done) == (0, 1)


# --------------------------------------------------------------------------- executors


class _Recorder(Executor):
    """An executor that records the cells it is given and raises ``raise_`` if set."""

    def __init__(self, stop, raise_=None):
        super().__init__(stop)
        self.raise_, self.ran = raise_, []

    def run_cells(self, payloads, runs, on_cell, describe):
        for cell_id, _ in payloads:
            self.ran.append(cell_id)
            on_cell(cell_id, "done")
        if self.raise_ is not None:
            raise self.raise_


def test_a_stop_set_before_execute_starts_no_cell(tmp_path):
    stop = Stop()
    stop.set(15)
    ended = []
    with pytest.raises(Stopped) as caught:
        LocalExecutor(1, 1, stop).execute([("c", {"not": "a config"})], tmp_path,
                                          lambda *cell: ended.append(cell))
    assert caught.value.signum == 15 and ended == [] and not (tmp_path / "c").exists()


def test_a_plain_interrupt_is_a_stop_only_when_the_stop_is_set(tmp_path):
    stop = Stop()
    recorder = _Recorder(stop, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt) as caught:
        recorder.execute([("a", {})], tmp_path, lambda *cell: None)
    assert type(caught.value) is KeyboardInterrupt and recorder.ran == ["a"]
    stop.set(2)
    stop.set(15)  # the first signal is the one reported
    with pytest.raises(Stopped) as caught:
        _Recorder(stop, KeyboardInterrupt()).execute([("a", {})], tmp_path, lambda *cell: None)
    assert caught.value.signum == 2


def test_a_stop_that_an_executor_swallowed_still_stops(tmp_path):
    stop = Stop()

    class Swallower(_Recorder):
        def run_cells(self, payloads, runs, on_cell, describe):
            stop.set(1)

    with pytest.raises(Stopped):
        Swallower(stop).execute([("a", {})], tmp_path, lambda *cell: None)


# --------------------------------------------------------------------------- the package


def _grid_imports() -> dict[str, set[str]]:
    """boomda.grid's modules -> the boomda.grid modules each imports (in functions too)."""
    package = ROOT / "src" / "boomda" / "grid"
    modules = {p.stem: p for p in package.glob("*.py")}
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{name}: relative import"
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for target in targets:
                if target == "boomda.grid":
                    edges.add("__init__")
                elif target.startswith("boomda.grid."):
                    edges.add(target.split(".")[2])
        graph[name] = edges & set(modules)
    return graph


def test_the_grid_modules_import_each_other_without_a_cycle():
    graph = _grid_imports()
    assert {"spec", "cell", "lock", "signals", "executors", "ray", "run"} <= set(graph)
    assert graph["__init__"] >= {"spec", "run", "ray", "executors"}
    order, state = [], {}

    def visit(node, path):
        assert state.get(node) != "open", f"import cycle: {' -> '.join(path + [node])}"
        if state.get(node) == "closed":
            return
        state[node] = "open"
        for nxt in sorted(graph[node]):
            visit(nxt, path + [node])
        state[node] = "closed"
        order.append(node)

    for node in sorted(graph):
        visit(node, [])
    assert order[-1] == "__init__"


def test_no_private_name_of_the_grid_is_imported_across_modules():
    """Neither a grid module imports another module's private name, nor any module a grid
    module's."""
    for path in [*(ROOT / "src" / "boomda").rglob("*.py"), *(ROOT / "tests").glob("*.py")]:
        in_grid = path.parent.name == "grid"
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level:
                continue
            module = node.module or ""
            if module.startswith("boomda") and (in_grid or module.startswith("boomda.grid")):
                private = [a.name for a in node.names
                           if a.name.startswith("_") and not a.name.endswith("__")]
                assert not private, f"{path.relative_to(ROOT)} imports {private} from {module}"


def test_a_raw_corpus_the_readers_do_not_know_fails_when_the_grid_is_read():
    from boomda.registry import READERS

    grid = {"name": "g", "base": {"raw": {"corpus": "nosuch", "path": "."}}, "methods": ["dt"],
            "seeds": [0]}
    with pytest.raises(ConfigError) as caught:
        GridSpec.from_dict(grid)
    message = str(caught.value)
    assert message.startswith("grid.base.raw.corpus")
    assert "'nosuch'" in message and all(name in message for name in READERS)
