"""Every file in configs/ loads as what it is: a grid (``grid-*.yaml``) through the loader of
``boomda bench``, a tasks file (only a ``tasks:`` mapping) as the tasks of a grid, anything else
as a run config through the loader of ``boomda run --config``. The folder is globbed, so a new
file is covered as it is added."""

import re
from pathlib import Path

import pytest

from boomda.bench import GridSpec
from boomda.config import RunConfig, load_yaml_mapping
from boomda.methods import METHODS

CONFIGS = Path(__file__).parents[1] / "configs"
SHIPPED = sorted(CONFIGS.glob("*.yaml"))
GRIDS = [p for p in SHIPPED if p.name.startswith("grid-")]
TASKS = [p for p in SHIPPED
         if p not in GRIDS and set(load_yaml_mapping(p, "configuration")) == {"tasks"}]
RUNS = [p for p in SHIPPED if p not in GRIDS and p not in TASKS]

#: characters a file or folder name may not hold on Windows (``<>:"/\|?*``), and quotes,
#: braces and spaces, which a shell or a Markdown table takes apart
UNSAFE = re.compile(r"""[<>:"/\\|?*'{}\s]""")

#: grids whose cells are named with a point's mapping today (``options={'class_weight': 0.3}``)
UNSAFE_TODAY = {"grid-suite-dev-baselines.yaml"}


def _names(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_every_shipped_file_is_of_one_kind():
    assert len(SHIPPED) == len(GRIDS) + len(TASKS) + len(RUNS)
    assert GRIDS and TASKS and RUNS
    assert "embedded.yaml" in _names(RUNS) and "suite-dev.yaml" in _names(TASKS)


@pytest.mark.parametrize("path", RUNS, ids=_names(RUNS))
def test_a_shipped_run_config_loads(path):
    config = RunConfig.from_yaml(path)
    assert isinstance(config, RunConfig)
    assert config.train.method in METHODS


@pytest.mark.parametrize("path", GRIDS, ids=_names(GRIDS))
def test_a_shipped_grid_loads_with_cells(path):
    spec = GridSpec.from_yaml(path)
    cells = spec.cells()
    assert cells
    ids = [c.id for c in cells]
    assert len(set(ids)) == len(ids)  # one folder per cell
    assert all(c.config.train.method in METHODS for c in cells)


@pytest.mark.parametrize("path", TASKS, ids=_names(TASKS))
def test_a_shipped_tasks_file_serves_a_grid_and_each_task_loads(path):
    tasks = load_yaml_mapping(path, "tasks file")["tasks"]
    users = [g.name for g in GRIDS if load_yaml_mapping(g, "grid").get("tasks") == path.name]
    assert users, f"no shipped grid reads {path.name}"
    for name, task in tasks.items():
        spec = GridSpec.from_dict({"tasks": {name: task}, "methods": ["dt"], "seeds": [0]})
        assert len(spec.cells()) == 1, name


def _cell_names_case(path: Path):
    marks = ()
    if path.name in UNSAFE_TODAY:
        marks = pytest.mark.xfail(strict=True, reason="the cells of a point given as a mapping "
                                  "are named with its Python repr (quotes, braces, spaces)")
    return pytest.param(path, id=path.name, marks=marks)


@pytest.mark.parametrize("path", [_cell_names_case(p) for p in GRIDS])
def test_a_shipped_grid_names_its_cell_folders_portably(path):
    unsafe = [c.id for c in GridSpec.from_yaml(path).cells() if UNSAFE.search(c.id)]
    assert unsafe == []


def test_the_unsafe_name_check_finds_each_character():
    for ch in '<>:"/\\|?*\'{} ':
        assert UNSAFE.search(f"dt__fou{ch}kar__seed0"), repr(ch)
    assert not UNSAFE.search("boomda__dev-far__alpha2=10,ca_form=paper__seed0")
