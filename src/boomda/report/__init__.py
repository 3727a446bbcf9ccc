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

The private helpers of the former single module are re-exported here as well, so that
every import from :mod:`boomda.report` keeps working.
"""

from boomda.report.figures import _note as _note
from boomda.report.figures import _plot_series as _plot_series
from boomda.report.figures import (
    default_figure_runs,
    dynamics_figure,
    plot_dynamics,
    read_metrics,
    smooth_ema,
)
from boomda.report.records import _T as _T
from boomda.report.records import _TASK_VARIED as _TASK_VARIED
from boomda.report.records import _VARIED as _VARIED
from boomda.report.records import DONE, FAILED, MISSING, RunRecord, collect_runs, flatten, read_run
from boomda.report.records import _compared_settings as _compared_settings
from boomda.report.records import _first_appearance as _first_appearance
from boomda.report.records import _label_data as _label_data
from boomda.report.records import _label_settings as _label_settings
from boomda.report.records import _read_json as _read_json
from boomda.report.records import _read_yaml as _read_yaml
from boomda.report.records import _scalar as _scalar
from boomda.report.records import _setting_name as _setting_name
from boomda.report.records import _setting_text as _setting_text
from boomda.report.records import _stale_reason as _stale_reason
from boomda.report.tables import _ENV_KEYS as _ENV_KEYS
from boomda.report.tables import _LEAD_COLUMNS as _LEAD_COLUMNS
from boomda.report.tables import _PAPER_NAMES as _PAPER_NAMES
from boomda.report.tables import _RESULT_DUPLICATES as _RESULT_DUPLICATES
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
from boomda.report.tables import _average_text as _average_text
from boomda.report.tables import _cell_text as _cell_text
from boomda.report.tables import _count as _count
from boomda.report.tables import _differences as _differences
from boomda.report.tables import _markdown as _markdown
from boomda.report.tables import _render as _render
from boomda.report.tables import _usual_n as _usual_n
from boomda.report.writer import _report_markdown as _report_markdown
from boomda.report.writer import _write_report as _write_report
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
