"""Reports on a grid of runs (``boomda bench``): ``results.csv``, the paper's Table 1 and Table 2
layouts, comparability warnings, and the training-dynamics figure (paper Fig. 3).

A grid folder holds ``runs/<cell_id>/``, one run folder per cell; when a cell counts as done,
failed or missing is said in :mod:`boomda.report.records`. Scores are weighted F1 x 100, as in
the paper.

Runs are averaged over seeds only: finished runs of one method (and sweep point) in one table
column that differ in a data/train setting get rows of their own, labelled with the differing
settings (``boomda {epochs=5}``), besides the comparability warnings.

Modules, each name re-exported here:

- :mod:`boomda.report.records`: reading run folders (:class:`RunRecord`, :func:`read_run`,
  :func:`collect_runs`, data and settings labels);
- :mod:`boomda.report.tables`: aggregation and rendering (:class:`Table`, :func:`aggregate`,
  Table 1 / Table 2, comparability warnings, ``results.csv``, the selection table);
- :mod:`boomda.report.figures`: the training-dynamics figure (the only user of matplotlib,
  imported when a figure is drawn);
- :mod:`boomda.report.writer`: :func:`write_report` and ``boomda report`` (:func:`main_report`).
"""

from boomda.report.figures import (
    default_figure_runs,
    dynamics_figure,
    plot_dynamics,
    read_metrics,
    smooth_ema,
)
from boomda.report.records import DONE, FAILED, MISSING, RunRecord, collect_runs, flatten, read_run
from boomda.report.tables import (
    AVERAGE,
    DEFAULT_VALIDATOR,
    METRICS,
    NO_VALUE,
    SelectionTask,
    Stat,
    Table,
    aggregate,
    comparability,
    is_default_point,
    method_order,
    render_selection,
    render_table1,
    render_table2,
    results_table,
    selection_tasks,
    subset_order,
    write_csv,
)
from boomda.report.writer import main_report, write_report

__all__ = [
    # records
    "DONE", "FAILED", "MISSING", "RunRecord", "read_run", "collect_runs", "flatten",
    # tables
    "DEFAULT_VALIDATOR", "AVERAGE", "NO_VALUE", "METRICS",
    "results_table", "write_csv", "Stat", "Table", "subset_order", "aggregate", "render_table1",
    "render_table2", "comparability", "method_order", "SelectionTask", "is_default_point",
    "selection_tasks", "render_selection",
    # figures
    "read_metrics", "smooth_ema", "dynamics_figure", "plot_dynamics", "default_figure_runs",
    # writer
    "write_report", "main_report",
]
