"""Every file in configs/ loads as what it is: a grid (``grid-*.yaml``) through the loader of
``boomda bench``, a tasks file (only a ``tasks:`` mapping) as the tasks of a grid, anything else
as a run config through the loader of ``boomda run --config``. The folder is globbed, so a new
file is covered as it is added."""

from pathlib import Path

import pytest

from boomda.config import RunConfig, load_yaml_mapping
from boomda.grid import GridSpec
from boomda.methods import METHODS

CONFIGS = Path(__file__).parents[1] / "configs"
SHIPPED = sorted(CONFIGS.glob("*.yaml"))
GRIDS = [p for p in SHIPPED if p.name.startswith("grid-")]
TASKS = [p for p in SHIPPED
         if p not in GRIDS and set(load_yaml_mapping(p, "configuration")) == {"tasks"}]
RUNS = [p for p in SHIPPED if p not in GRIDS and p not in TASKS]


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
