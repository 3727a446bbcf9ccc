"""``import boomda``, the command line's parser, ``boomda --help``, ``boomda run --help`` and
``boomda report`` on an existing grid import no torch: each checked in a fresh interpreter."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _torch_loaded(code: str) -> bool:
    """Whether ``code`` run in a fresh interpreter leaves torch in ``sys.modules``."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    probe = code + "\nimport sys\nprint('TORCH', 'torch' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=env, timeout=120, check=True).stdout
    return out.strip().splitlines()[-1] == "TORCH True"


@pytest.mark.parametrize("code", [
    "import boomda",
    "from boomda import RunConfig, TrainConfig, BoomdaError",
    "from boomda.methods import METHODS, BASELINES, check_config",
    "from boomda.cli import _parser\n_parser()",
    "from boomda.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
    "from boomda.cli import main\ntry:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass",
], ids=["import", "config", "methods", "parser", "help", "run-help"])
def test_no_torch_until_a_name_needs_it(code):
    assert not _torch_loaded(code)


def test_the_probe_sees_torch_when_a_name_needs_it():
    assert _torch_loaded("from boomda import DomainAdapter")


def test_report_on_an_existing_grid_imports_no_torch(tmp_path):
    from tests.test_report import make_cell

    grid = tmp_path / "grid"
    for method, f1 in (("boomda", 80.0), ("uniform", 75.0), ("dt", 70.0), ("ca", 72.0)):
        make_cell(grid, f"{method}-fou+kar-s0", method, ["fou", "kar"], 0, f1)
    code = f"from boomda.cli import main\nassert main(['report', {str(grid)!r}]) == 0"
    assert not _torch_loaded(code)
    report = (grid / "report.md").read_text(encoding="utf-8")
    # the paper's order and the ablation marks, from the method classes' attributes
    assert report.index("| D.T.") < report.index("| ca") < report.index("| uniform") \
        < report.index("| Boomda")
    assert "| D.T. | ✗ | ✗ |" in report and "| ca | ✓ | ✗ |" in report


def test_report_on_a_grid_with_a_sweep_imports_no_torch(tmp_path):
    """The selection table tells the shipped default point from the method's options, read from
    the registry without loading the method."""
    from tests.test_report import _sweep_cell

    grid = tmp_path / "grid"
    for point, f1 in (("alpha2=100", 70.0), ("alpha2=10", 90.0)):  # 100: Boomda's default
        for seed in (0, 1):
            _sweep_cell(grid, "a", point, seed, f1 + seed,
                        {"im": f1 / 100, "snd": 1.0, "source_risk": None, "dev": None})
    code = (f"from boomda.cli import main\n"
            f"assert main(['report', {str(grid)!r}, '--select', 'im']) == 0")
    assert not _torch_loaded(code)
    report = (grid / "report.md").read_text(encoding="utf-8")
    assert "## Label-free selection of the grid point" in report
    row = next(line for line in report.splitlines() if line.startswith("| a "))
    # default alpha2=100 (70.5 on average), selected and best alpha2=10 (90.5)
    assert "70.50" in row and row.count("90.50") == 2, row
