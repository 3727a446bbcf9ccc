"""Writing a grid's report: ``results.csv``, ``report.md`` and the figures
(:func:`write_report`), and ``boomda report`` (:func:`main_report`)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

from boomda.atomic import atomic_write_text
from boomda.errors import BoomdaError
from boomda.report.figures import default_figure_runs, plot_dynamics
from boomda.report.records import DONE, FAILED, MISSING, RunRecord, collect_runs
from boomda.report.tables import (
    DEFAULT_VALIDATOR,
    SelectionTask,
    Table,
    _count,
    aggregate,
    comparability,
    method_order,
    render_selection,
    render_table1,
    render_table2,
    results_table,
    selection_tasks,
    write_csv,
)


def _report_markdown(grid: Path, records: Sequence[RunRecord], table: Table,
                     figures: dict[str, Path], chosen: Sequence[SelectionTask],
                     validator: str = DEFAULT_VALIDATOR) -> str:
    by_status = {s: [r for r in records if r.status == s] for s in (DONE, FAILED, MISSING)}
    parts = [f"# Grid report: {grid.name}",
             f"{_count(len(records), 'run')}: {len(by_status[DONE])} done, "
             f"{len(by_status[FAILED])} failed, {len(by_status[MISSING])} missing."]
    if by_status[FAILED]:
        parts.append("## Failures\n\n" + "\n".join(f"- {r.describe()}: {r.error}"
                                                   for r in by_status[FAILED]))
    if by_status[MISSING]:
        parts.append("Not run yet or interrupted: "
                     + ", ".join(f"`{r.cell_id}`" for r in by_status[MISSING]) + ".")
    if not by_status[DONE]:
        parts.append("No finished runs yet: nothing to tabulate.")
        return "\n\n".join(parts) + "\n"
    warnings = comparability(records)
    parts.append("## Comparability\n\n" + ("\n".join(f"- {w}" for w in warnings) if warnings
                                            else "The finished runs share versions, machine "
                                                 "and settings apart from method, seed and "
                                                 "modalities."))
    if any(r.settings_label for r in by_status[DONE]):
        parts[-1] += ("\n\nRuns of one method that differ in such a setting are never averaged "
                      "together: each setting has a row of its own, labelled `{setting=value}`.")
    parts.append("## Target weighted F1 (Table 1 layout)\n\n" + render_table1(table))
    ablation = render_table2(table)
    if ablation is not None:
        parts.append("## Ablation (Table 2 layout)\n\n" + ablation)
    if chosen:
        parts.append(f"## Label-free selection of the grid point\n\n"
                     f"{render_selection(chosen, validator)}")
    source = aggregate(records, table.rows, table.columns, metric="source_holdout")
    if source.has_values:
        parts.append("## Source held-out weighted F1\n\n" + render_table1(source))
    if figures:
        parts.append("## Training dynamics (Fig. 3 layout)\n\n" + "\n\n".join(
            f"![{cell_id}](figures/{path.name})" for cell_id, path in figures.items()))
    return "\n\n".join(parts) + "\n"


def _write_report(grid_dir: str | Path, figure_runs: list[str] | None,
                  validator: str = DEFAULT_VALIDATOR
                  ) -> tuple[dict[str, Path], Table, list[SelectionTask]]:
    grid = Path(grid_dir)
    records = collect_runs(grid)
    table = aggregate(records, rows=method_order(records))
    paths = {"results.csv": write_csv(results_table(records), grid / "results.csv")}
    figures = {}
    for cell_id in default_figure_runs(records) if figure_runs is None else figure_runs:
        if not (grid / "runs" / cell_id).is_dir():
            raise BoomdaError(_unknown_cell(grid, cell_id))
        figures[cell_id] = plot_dynamics(grid / "runs" / cell_id,
                                         grid / "figures" / f"{cell_id}.png")
    report = grid / "report.md"
    chosen = selection_tasks(records)
    atomic_write_text(report, _report_markdown(grid, records, table, figures, chosen, validator))
    paths["report.md"] = report
    paths.update({f"figures/{path.name}": path for path in figures.values()})
    return paths, table, chosen


def _unknown_cell(grid: Path, cell_id: str, shown: int = 30) -> str:
    """The error for ``--figure cell_id`` without a run folder: the close cell ids, then the
    valid ones (the first ``shown``)."""
    runs = grid / "runs"
    valid = sorted(p.name for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []
    if not valid:
        return f"--figure {cell_id}: {grid} has no run folders yet"
    close = sorted(difflib.get_close_matches(cell_id, valid, n=3))
    hint = f"; did you mean {', '.join(close)}?" if close else "."
    listed = ", ".join(valid[:shown]) + (f", ... ({len(valid)} in all)"
                                         if len(valid) > shown else "")
    return f"--figure {cell_id}: no such cell in {runs}{hint} Valid cell ids: {listed}"


def write_report(grid_dir: str | Path, figure_runs: list[str] | None = None,
                 validator: str = DEFAULT_VALIDATOR) -> dict[str, Path]:
    """Write ``results.csv``, ``report.md`` and ``figures/<cell_id>.png`` into ``grid_dir``
    (each atomically); figures for ``figure_runs`` or :func:`default_figure_runs`; in a grid
    with a sweep, the grid point is selected per task by ``validator``.
    Returns the written paths by name."""
    return _write_report(grid_dir, figure_runs, validator)[0]


def main_report(directory: str, figure_runs: list[str] | None = None,
                validator: str = DEFAULT_VALIDATOR) -> int:
    """``boomda report``: write the report of a grid folder, print its paths and Table 1 (and
    the selection table for a grid with a sweep)."""
    from boomda.select import VALIDATORS

    if validator not in VALIDATORS:
        raise BoomdaError(f"unknown validator {validator!r}; choose from "
                          f"{', '.join(VALIDATORS)}")
    paths, table, chosen = _write_report(directory, figure_runs, validator)
    for path in paths.values():
        print(path)
    print()
    print(render_table1(table) if table.has_values
          else "No finished runs yet: nothing to tabulate.")
    if chosen:
        print()
        print(render_selection(chosen, validator))
    return 0
