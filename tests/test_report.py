"""Grid reports on hand-made run folders: statistics against hand values, table layouts, failures,
comparability warnings, results.csv, and the training-dynamics figure. No training."""

import csv
import json
import shutil

import numpy as np
import pytest
import yaml

from boomda import rundir
from boomda.errors import BoomdaError
from boomda.report import (
    aggregate,
    collect_runs,
    comparability,
    default_figure_runs,
    dynamics_figure,
    main_report,
    method_order,
    plot_dynamics,
    render_selection,
    render_table1,
    render_table2,
    selection_tasks,
    smooth_ema,
    write_report,
)

SHIFTS = {"fou": "noise:snr=1", "kar": "scale_noise:scale=0.2,snr=0.5", "pix": "mask:fraction=0.4"}
ENV = {"boomda_version": "0.1.0", "torch_version": "2.13.0+cpu", "python_version": "3.11.7",
       "platform": "Linux", "machine": "vm", "cpu_count": 2, "cuda": None}


def _metrics(method, n_modalities, steps=40):
    """Per-step lines in StepLog.to_dict's format; gamma and r only where the method balances."""
    balanced, pseudo = method in ("ca", "uniform", "boomda"), method in ("pl", "uniform", "boomda")
    lines = []
    for step in range(steps):
        entry = {"step": step, "epoch": step // 10, "loss": 2.0 / (1 + step), "loss_ib": 1.0,
                 "weight_ib": 1.0}
        if balanced:
            g = np.linspace(1, 2, n_modalities + 1) + np.sin(step / 5)
            entry["gamma"] = (g / g.sum()).tolist()
        entry["r"] = 10.0 ** (-3 + 4 * step / steps) if method in ("ca", "boomda") else None
        entry["n_pseudo"] = (step % 5) if pseudo else None
        entry["n_pseudo_classes"] = 1 if pseudo else None
        entry["pseudo_accuracy"] = (min(1.0, step / steps) if step % 5 else None) if pseudo \
            else None
        entry["seconds"] = 0.01
        lines.append(json.dumps(entry))
    return "\n".join(lines) + "\n"


def _identity(config, run_id):
    """The ``run`` section the runner writes into config.yaml and results.json."""
    return rundir.identity(run_id, rundir.config_fingerprint(config), config["name"])


def make_cell(grid, cell_id, method, modalities, seed, f1=None, *, error=None, source_f1=None,
              env=None, epochs=30, shifts=None, metrics=True, run_id=None, results_run_id=None,
              identity=True):
    """A run folder as run_experiment / boomda bench leave it: done when ``f1`` is given, failed
    with ``error``, otherwise missing (config.yaml and a partial metrics file only).

    config.yaml and results.json carry the run identity ``run_id`` (default: from the cell id);
    ``results_run_id`` gives results.json another run's; ``identity=False``: neither carries one
    (a run folder written before identities existed)."""
    run_id = run_id or f"20250101-120000-{cell_id}"
    folder = grid / "runs" / cell_id
    folder.mkdir(parents=True)
    config = {
        "data": {"dataset": "mfeat", "modalities": list(modalities),
                 "shifts": dict(SHIFTS if shifts is None else shifts), "holdout": 0.2,
                 "split_seed": None},
        "train": {"method": method, "epochs": epochs, "betas": [0.9, 0.999], "seed": seed,
                  "options": {}},
        "out": str(grid / "runs"), "name": cell_id, "environment": {**ENV, **(env or {})},
        "pair": {"seed": seed},
    }
    if identity:
        config["run"] = _identity(config, run_id)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if f1 is not None:
        if metrics:
            (folder / "metrics.jsonl").write_text(_metrics(method, len(modalities)))
        results = {
            "method": method, "options": {}, "modalities": list(modalities),
            "seed": seed, "target": {"weighted_f1": f1, "accuracy": f1 + 1, "n": 100},
            "source_holdout": None if source_f1 is None else {"weighted_f1": source_f1,
                                                              "accuracy": source_f1, "n": 20},
            "final_gamma": None, "steps": 40, "train_seconds": 1.5, "seconds_per_step": 0.04,
            "wall_seconds": 2.0, "cell": {"method": method, "seed": seed},
        }
        if identity:
            results["run"] = _identity(config, results_run_id or run_id)
        (folder / "results.json").write_text(json.dumps(results))
    elif error is not None:
        (folder / "error.txt").write_text(f"{error}\nTraceback (most recent call last): ...\n")
    else:
        (folder / "metrics.jsonl.partial").write_text(_metrics(method, len(modalities), 3))
    return folder


@pytest.fixture
def grid(tmp_path):
    """boomda and dt on fou+kar (3 seeds), fou+pix, fou+kar+pix; one failed and one missing."""
    g = tmp_path / "grid"
    for seed, f1 in enumerate([80.0, 82.0, 84.0]):
        make_cell(g, f"boomda-fou+kar-s{seed}", "boomda", ["fou", "kar"], seed, f1,
                  source_f1=95.0 + seed)
    make_cell(g, "boomda-fou+pix-s0", "boomda", ["fou", "pix"], 0, 90.0, source_f1=97.0)
    make_cell(g, "boomda-fou+kar+pix-s0", "boomda", ["fou", "kar", "pix"], 0, 70.0)
    make_cell(g, "dt-fou+kar-s0", "dt", ["fou", "kar"], 0, 60.0)
    make_cell(g, "dt-fou+kar-s1", "dt", ["fou", "kar"], 1, 62.0)
    make_cell(g, "dt-fou+kar+pix-s0", "dt", ["fou", "kar", "pix"], 0, 75.0)
    make_cell(g, "dt-fou+pix-s0", "dt", ["fou", "pix"], 0, error="CUDA out of memory")
    make_cell(g, "dt-fou+pix-s1", "dt", ["fou", "pix"], 1)
    return g


def test_collect_runs_statuses_and_partial_files_are_not_results(grid):
    (grid / "runs" / "dt-fou+pix-s1" / "results.json.tmp").write_text("{}")
    records = {r.cell_id: r for r in collect_runs(grid)}
    assert len(records) == 10
    assert records["boomda-fou+kar-s1"].status == "done"
    assert records["boomda-fou+kar-s1"].target_f1 == 82.0
    assert records["boomda-fou+kar-s1"].wall_seconds == 2.0
    failed = records["dt-fou+pix-s0"]
    assert (failed.status, failed.error) == ("failed", "CUDA out of memory")
    assert (failed.method, failed.modalities, failed.seed) == ("dt", ("fou", "pix"), 0)
    missing = records["dt-fou+pix-s1"]
    assert missing.status == "missing" and missing.target_f1 is None
    table = aggregate(records.values())
    assert table.stat("dt", "fou+pix").n == 0 and table.stat("dt", "fou+pix").failed == [
        "dt-fou+pix-s0"]


def test_aggregate_mean_sample_std_average_and_order(grid):
    table = aggregate(collect_runs(grid))
    assert table.rows == ["boomda", "dt"]
    assert table.columns == ["fou+kar", "fou+pix", "fou+kar+pix"]
    stat = table.stat("boomda", "fou+kar")
    assert (stat.n, stat.mean, stat.std) == (3, 82.0, 2.0)
    assert table.stat("boomda", "fou+pix").std == 0.0
    assert table.average("boomda") == pytest.approx((82.0 + 90.0 + 70.0) / 3)
    assert table.average("dt") is None  # dt has no finished fou+pix run
    assert aggregate(collect_runs(grid), rows=["dt", "boomda"]).rows == ["dt", "boomda"]


def test_table1_marks_best_and_shows_missing_as_dash(grid):
    text = render_table1(aggregate(collect_runs(grid)))
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
             for line in text.splitlines() if line.startswith("| ")}
    assert lines["Method"] == ["fou+kar", "fou+pix", "fou+kar+pix", "ave."]
    boomda, dt = lines["Boomda"], lines["D.T."]
    assert boomda[0] == "**82.00 ± 2.00**"
    # a single run shows its score, without a spread
    assert boomda[1] == "**90.00** (n=1)"
    assert boomda[2] == "70.00 (n=1)" and dt[2] == "**75.00** (n=1)"
    assert boomda[3] == "**80.67**"
    assert dt[0] == "61.00 ± 1.41 (n=2)"
    assert dt[1] == "– (1 failed)" and dt[3] == "–"
    assert "0.00 ±" not in dt[1]
    assert "`dt-fou+pix-s0`" in text


def test_a_table_of_one_seed_shows_scores_without_spread(tmp_path):
    g = tmp_path / "grid"
    make_cell(g, "boomda-fou+kar-s0", "boomda", ["fou", "kar"], 0, 81.25)
    make_cell(g, "dt-fou+kar-s0", "dt", ["fou", "kar"], 0, 64.5)
    text = render_table1(aggregate(collect_runs(g)))
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in text.splitlines() if line.startswith("| ")}
    assert rows["Boomda"] == ["**81.25**", "**81.25**"]
    assert rows["D.T."] == ["64.50", "64.50"]
    assert "±" not in text.split("\n\n")[0]
    assert "the score of the one seed per cell" in text


def test_figure_of_an_unknown_cell_lists_the_valid_cell_ids(grid):
    with pytest.raises(BoomdaError) as err:
        write_report(grid, ["boomda-fou+kar-s7"])
    message = str(err.value)
    assert message.startswith("--figure boomda-fou+kar-s7: no such cell in ")
    folders = sorted(p.name for p in (grid / "runs").iterdir())
    assert len(folders) == 10
    assert "; did you mean boomda-fou+kar-s0, boomda-fou+kar-s1, boomda-fou+kar-s2?" in message
    assert message.endswith("Valid cell ids: " + ", ".join(folders))


def test_table2_only_with_ablation_variants(grid):
    assert render_table2(aggregate(collect_runs(grid))) is None
    for method, f1 in [("ca", 70.0), ("uniform", 71.0)]:
        make_cell(grid, f"{method}-fou+kar-s0", method, ["fou", "kar"], 0, f1)
    text = render_table2(aggregate(collect_runs(grid), rows=["boomda", "uniform", "dt", "ca"]))
    rows = [line.split("|")[1:4] for line in text.splitlines() if line.startswith("| ")][2:]
    assert [[c.strip() for c in row] for row in rows] == [
        ["D.T.", "✗", "✗"], ["ca", "✓", "✗"], ["uniform", "✓", "✓"], ["Boomda", "✓", "✓"]]
    assert "without balancing" in text
    assert "## Ablation (Table 2 layout)" in write_report(grid)["report.md"].read_text()


def test_comparability_warns_on_versions_and_settings(tmp_path):
    g = tmp_path / "grid"
    for seed in range(3):
        make_cell(g, f"a{seed}", "boomda", ["fou", "kar"], seed, 80.0)
    make_cell(g, "b0", "boomda", ["fou", "pix"], 0, 80.0, shifts={**SHIFTS, "kar": "noise:snr=9"})
    assert comparability(collect_runs(g)) == []  # kar's shift is not used by b0
    make_cell(g, "c0", "dt", ["fou", "kar"], 0, 70.0, env={"torch_version": "2.14.1"}, epochs=5)
    make_cell(g, "c1", "dt", ["fou", "kar"], 1, env={"torch_version": "2.15.0"}, error="boom")
    warnings = comparability(collect_runs(g))
    assert warnings == ["runs differ in torch_version: 2.13.0+cpu (4 runs), 2.14.1 (1 run)",
                        "runs differ in train.epochs: 30 (4 runs), 5 (1 run)"]


def test_write_report_csv_failures_and_figures(grid, capsys):
    paths = write_report(grid)
    assert set(paths) == {"results.csv", "report.md", "figures/boomda-fou+kar-s0.png",
                          "figures/boomda-fou+pix-s0.png", "figures/boomda-fou+kar+pix-s0.png"}
    with paths["results.csv"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 10
    assert {"cell_id", "status", "train.method", "train.seed", "data.modalities",
            "target.weighted_f1", "environment.torch_version", "wall_seconds",
            "error"} <= set(rows[0])
    by_id = {row["cell_id"]: row for row in rows}
    assert by_id["boomda-fou+kar-s1"]["data.modalities"] == "fou+kar"
    assert float(by_id["boomda-fou+kar-s1"]["target.weighted_f1"]) == 82.0
    assert by_id["dt-fou+pix-s0"]["status"] == "failed"
    assert by_id["dt-fou+pix-s0"]["target.weighted_f1"] == ""
    report = paths["report.md"].read_text()
    assert "10 runs: 8 done, 1 failed, 1 missing." in report
    assert "`dt-fou+pix-s0` (dt, fou+pix, seed 0): CUDA out of memory" in report
    assert "**82.00 ± 2.00**" in report and "Table 2 layout" not in report
    assert "## Source held-out weighted F1" in report and "96.00 ± 1.00" in report
    assert "![boomda-fou+kar-s0](figures/boomda-fou+kar-s0.png)" in report
    assert not list(grid.rglob("*.tmp"))
    assert main_report(str(grid), figure_runs=[]) == 0
    assert "**82.00 ± 2.00**" in capsys.readouterr().out


def test_report_without_finished_runs_and_without_runs_folder(tmp_path):
    g = tmp_path / "grid"
    make_cell(g, "boomda-fou+kar-s0", "boomda", ["fou", "kar"], 0)
    report = write_report(g)["report.md"].read_text()
    assert "0 done, 0 failed, 1 missing" in report and "No finished runs yet" in report
    with pytest.raises(BoomdaError, match="no runs/ folder"):
        main_report(str(tmp_path / "nowhere"), None)


def test_default_figure_runs_prefers_seed_zero(tmp_path):
    g = tmp_path / "grid"
    make_cell(g, "x-s2", "boomda", ["fou", "kar"], 2, 80.0)
    make_cell(g, "x-s0", "boomda", ["fou", "kar"], 0, 80.0)
    make_cell(g, "y-s1", "boomda", ["fou", "pix"], 1, 80.0)
    make_cell(g, "z-s0", "dt", ["kar", "pix"], 0, 80.0)
    assert default_figure_runs(collect_runs(g)) == ["x-s0", "y-s1"]


def test_smooth_ema_is_debiased():
    assert smooth_ema([1.0, 2.0], 0.5) == pytest.approx([1.0, (0.25 + 1.0) / 0.75])
    assert smooth_ema([3.0, 3.0, 3.0], 0.9) == pytest.approx([3.0, 3.0, 3.0])
    assert smooth_ema([1.0, 5.0], 0.0) == pytest.approx([1.0, 5.0])


@pytest.mark.parametrize("method", ["boomda", "pl"])
def test_plot_dynamics_three_panels(tmp_path, method):
    import matplotlib.image

    run = make_cell(tmp_path, "run", method, ["fou", "kar", "pix"], 0, 80.0)
    fig = dynamics_figure(run)
    assert len(fig.axes) == 3
    assert [ax.get_xlabel() for ax in fig.axes] == ["step"] * 3
    assert [ax.get_ylabel() for ax in fig.axes] == ["r", "gamma", "pseudo-label accuracy"]
    notes = [t.get_text() for ax in fig.axes for t in ax.texts]
    if method == "boomda":
        assert notes == [] and fig.axes[0].get_yscale() == "log"
        assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == [
            "fou", "kar", "pix", "fused"]
    else:  # pseudo-labels only: the panels of what it did not log say so
        assert notes == [f"{what} not logged for method pl" for what in ("r", "gamma")]
    png = plot_dynamics(run, tmp_path / "figures" / "run.png")
    assert matplotlib.image.imread(png).shape[:2] == (456, 1560)


def test_a_method_without_fig3_traces_gets_a_figure_of_its_losses(tmp_path):
    import matplotlib.image

    run = make_cell(tmp_path, "run", "dt", ["fou", "kar"], 0, 80.0)
    fig = dynamics_figure(run)
    assert len(fig.axes) == 1 and not fig.axes[0].texts
    ax = fig.axes[0]
    assert ax.get_title() == "(a) loss terms"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["total", "ib"]
    # raw and smoothed line per term: the raw ones are the logged values
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [2.0 / (1 + s) for s in range(40)])
    np.testing.assert_allclose(ax.lines[2].get_ydata(), np.ones(40))
    png = plot_dynamics(run, tmp_path / "run.png")
    assert matplotlib.image.imread(png).shape[:2] == (456, 780)

    # a method's own diagnostics and its varying weights get a second panel
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for entry in lines:
        entry.update(loss_adv=0.7, weight_adv=entry["step"] / 40, extra_grl_lambda=0.5)
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    fig = dynamics_figure(run)
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["total", "ib", "adv"]
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == [
        "extra_grl_lambda", "weight_adv"]  # weight_ib is constant: not drawn
    np.testing.assert_allclose(fig.axes[1].lines[2].get_ydata(), np.arange(40) / 40)


def test_plot_dynamics_needs_final_metrics(tmp_path):
    run = make_cell(tmp_path, "run", "boomda", ["fou", "kar"], 0)  # only metrics.jsonl.partial
    with pytest.raises(BoomdaError, match="metrics.jsonl: not found"):
        plot_dynamics(run, tmp_path / "run.png")


def _sweep_cell(g, task, point, seed, f1, validators):
    folder = make_cell(g, f"boomda__{task}__{point}__seed{seed}", "boomda", ["fou", "kar"], seed,
                       f1)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["tags"] = {"task": task, "point": point}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    results = json.loads((folder / "results.json").read_text())
    results["validators"] = validators
    (folder / "results.json").write_text(json.dumps(results))


def test_selection_table_default_selected_best_and_correlations(tmp_path):
    """Two tasks x three points x two seeds with hand-set F1 and validator scores."""
    g = tmp_path / "grid"
    points = ["alpha2=100", "alpha2=1", "alpha2=10"]  # alpha2=100 is the shipped default
    f1 = {"a": [70.0, 80.0, 90.0], "b": [60.0, 50.0, 40.0]}
    # snd ranks the points exactly as F1 does on a, and wrongly on b; im is constant
    snd = {"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 3.0]}
    for task in ("a", "b"):
        for i, point in enumerate(points):
            for seed, delta in ((0, -1.0), (1, 1.0)):
                _sweep_cell(g, task, point, seed, f1[task][i] + delta,
                            {"snd": snd[task][i] + delta / 10, "im": 0.5,
                             "source_risk": None, "dev": -float(i)})
    chosen = selection_tasks(collect_runs(g))
    assert [(t.task, t.method) for t in chosen] == [("a", "boomda"), ("b", "boomda")]
    a, b = chosen
    assert a.f1 == pytest.approx({"alpha2=100": 70.0, "alpha2=1": 80.0, "alpha2=10": 90.0})
    assert a.default == "alpha2=100" and a.best() == "alpha2=10"
    assert a.selected("snd") == "alpha2=10" and b.selected("snd") == "alpha2=10"
    assert b.selected("dev") == "alpha2=100"
    assert a.selected("im") == "alpha2=100"  # ties: the first point (in cell-id order)
    assert a.selected("source_risk") is None
    assert a.correlation("snd") == pytest.approx(1.0) and b.correlation("snd") == \
        pytest.approx(-1.0)
    assert np.isnan(a.correlation("im"))
    text = render_selection(chosen, "snd")
    # averages: default (70 + 60) / 2, snd's choice (90 + 40) / 2, best (90 + 60) / 2
    assert "| **average** |  | 65.00 | 65.00 | 75.00 |" in text
    assert "90.00 (alpha2=10)" in text and "reads them" in text
    assert "| `dev` | 65.00 | +0.00 | -1.00 +1.00 |" in text
    with pytest.raises(BoomdaError, match="unknown validator 'xyz'"):
        render_selection(chosen, "xyz")
    # the report and its table columns: tasks, rows: method with its point
    write_report(g)
    report = (g / "report.md").read_text()
    assert "## Label-free selection of the grid point" in report
    table = aggregate(collect_runs(g), rows=method_order(collect_runs(g)))
    assert table.columns == ["a", "b"]
    assert sorted(table.rows) == sorted(f"boomda [{p}]" for p in points)


def test_runs_on_different_data_are_never_averaged_together(tmp_path):
    g = tmp_path / "grid"
    make_cell(g, "dt-a-s0", "dt", ["fou", "kar"], 0, 60.0)
    make_cell(g, "dt-a-s1", "dt", ["fou", "kar"], 1, 62.0)
    other = make_cell(g, "dt-b-s0", "dt", ["fou", "kar"], 0, 90.0)
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["data"]["dataset"] = "/data/mine.npz"
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    shifted = make_cell(g, "dt-c-s0", "dt", ["fou", "kar"], 0, 30.0,
                        shifts={"fou": "noise:snr=0.1"})
    table = aggregate(collect_runs(g))
    assert table.columns == ["mfeat#1: fou+kar", "mine.npz: fou+kar", "mfeat#2: fou+kar"]
    assert table.stat("dt", "mfeat#1: fou+kar").values == [60.0, 62.0]
    assert table.stat("dt", "mine.npz: fou+kar").values == [90.0]
    assert table.stat("dt", "mfeat#2: fou+kar").values == [30.0]
    assert shifted.name in [r.cell_id for r in collect_runs(g)]
    # one data set and shifts: plain subset columns, as before
    for folder in (other, shifted):
        import shutil

        shutil.rmtree(folder)
    assert aggregate(collect_runs(g)).columns == ["fou+kar"]
    # runs whose configs name only their own modalities' shifts (as raw-corpus runs do) and
    # agree where they overlap belong to one setting
    make_cell(g, "dt-d-s0", "dt", ["fou", "pix"], 0, 70.0, shifts={"fou": SHIFTS["fou"],
                                                                    "pix": SHIFTS["pix"]})
    assert aggregate(collect_runs(g)).columns == ["fou+kar", "fou+pix"]


def _f1_everywhere(table):
    """Every F1 value the table averages, over all its cells."""
    return [v for (r, c), stat in table.cells.items() for v in stat.values]


def test_results_of_another_run_count_as_failed_and_are_never_averaged(tmp_path):
    g = tmp_path / "grid"
    make_cell(g, "boomda-s0", "boomda", ["fou", "kar"], 0, 80.0, source_f1=95.0)
    make_cell(g, "boomda-s1", "boomda", ["fou", "kar"], 1, 84.0, source_f1=97.0)
    # results.json left by another run than the one whose config.yaml is in the folder
    make_cell(g, "boomda-s2", "boomda", ["fou", "kar"], 2, 99.0, source_f1=99.0,
              run_id="20250102-090000-aaaa0001", results_run_id="20250101-080000-bbbb0002")
    records = {r.cell_id: r for r in collect_runs(g)}
    mixed = records["boomda-s2"]
    assert mixed.status == "failed"
    assert mixed.error == ("results.json and config.yaml belong to different runs (ids "
                           "20250101-080000-bbbb0002 and 20250102-090000-aaaa0001); run this "
                           "cell again")
    assert (mixed.target_f1, mixed.source_f1, mixed.results) == (None, None, {})
    assert (mixed.method, mixed.modalities, mixed.seed) == ("boomda", ("fou", "kar"), 2)
    table = aggregate(records.values())
    stat = table.stat("boomda", "fou+kar")
    assert stat.values == [80.0, 84.0] and stat.failed == ["boomda-s2"]
    assert stat.mean == (80.0 + 84.0) / 2 and 99.0 not in _f1_everywhere(table)
    source = aggregate(records.values(), metric="source_holdout")
    assert source.stat("boomda", "fou+kar").mean == (95.0 + 97.0) / 2
    paths = write_report(g, figure_runs=[])
    report = paths["report.md"].read_text()
    assert "3 runs: 2 done, 1 failed, 0 missing." in report
    assert f"`boomda-s2` (boomda, fou+kar, seed 2): {mixed.error}" in report
    assert "**82.00 ± 2.83** (1 failed)" in report and "99.00" not in report
    with paths["results.csv"].open() as fh:
        row = {r["cell_id"]: r for r in csv.DictReader(fh)}["boomda-s2"]
    assert (row["status"], row["target.weighted_f1"], row["error"]) == ("failed", "",
                                                                        mixed.error)


def test_results_without_run_identity_are_stale(tmp_path):
    g = tmp_path / "grid"
    make_cell(g, "dt-s0", "dt", ["fou", "kar"], 0, 60.0)
    make_cell(g, "dt-s1", "dt", ["fou", "kar"], 1, 64.0)
    make_cell(g, "dt-s2", "dt", ["fou", "kar"], 2, 90.0, identity=False)  # an older boomda's
    half = make_cell(g, "dt-s3", "dt", ["fou", "kar"], 3, 91.0)
    config = yaml.safe_load((half / "config.yaml").read_text())
    del config["run"]  # results.json has an identity, config.yaml none
    (half / "config.yaml").write_text(yaml.safe_dump(config))
    records = {r.cell_id: r for r in collect_runs(g)}
    assert rundir.run_status(g / "runs" / "dt-s2") == rundir.STALE
    assert (records["dt-s2"].status, records["dt-s2"].error) == (
        "failed", "results.json has no run identity (written by an older boomda?); run this cell "
                  "again")
    assert (records["dt-s3"].status, records["dt-s3"].error) == (
        "failed", "config.yaml has no run identity (written by an older boomda?); run this cell "
                  "again")
    assert records["dt-s2"].target_f1 is None and records["dt-s3"].target_f1 is None
    table = aggregate(records.values())
    stat = table.stat("dt", "fou+kar")
    assert stat.values == [60.0, 64.0] and stat.mean == (60.0 + 64.0) / 2
    assert stat.failed == ["dt-s2", "dt-s3"] and not {90.0, 91.0} & set(_f1_everywhere(table))
    assert "| D.T. | **62.00 ± 2.83** (2 failed) |" in render_table1(table)


def test_runs_with_different_settings_get_rows_of_their_own(tmp_path):
    g = tmp_path / "grid"
    for seed, f1 in enumerate([80.0, 84.0]):
        make_cell(g, f"a-boomda-long-s{seed}", "boomda", ["fou", "kar"], seed, f1, epochs=30)
    for seed, f1 in enumerate([60.0, 61.0, 65.0]):
        make_cell(g, f"b-boomda-short-s{seed}", "boomda", ["fou", "kar"], seed, f1, epochs=5)
    make_cell(g, "c-boomda-pix-s0", "boomda", ["fou", "pix"], 0, 90.0, epochs=30)
    make_cell(g, "d-boomda-short-s3", "boomda", ["fou", "kar"], 3, error="boom", epochs=5)
    # dt runs differ in seed only: one row, averaged
    for seed, f1 in enumerate([70.0, 73.0]):
        make_cell(g, f"e-dt-s{seed}", "dt", ["fou", "kar"], seed, f1)
    make_cell(g, "e-dt-pix-s0", "dt", ["fou", "pix"], 0, 50.0)
    records = collect_runs(g)
    long, short = "boomda {epochs=30}", "boomda {epochs=5}"
    rows = method_order(records)
    assert rows == ["dt", long, short]
    table = aggregate(records, rows=rows)
    assert table.stat(long, "fou+kar").values == [80.0, 84.0]
    assert table.stat(long, "fou+kar").mean == (80.0 + 84.0) / 2
    assert table.stat(short, "fou+kar").mean == pytest.approx((60.0 + 61.0 + 65.0) / 3)
    assert table.stat(short, "fou+kar").failed == ["d-boomda-short-s3"]
    assert table.stat(long, "fou+pix").values == [90.0]  # the row holds all of its setting's runs
    assert table.stat(short, "fou+pix").values == []
    assert table.stat("dt", "fou+kar").values == [70.0, 73.0]
    assert table.average(long) == ((80.0 + 84.0) / 2 + 90.0) / 2
    assert table.average(short) is None
    # a method given as a row stands for its rows
    assert aggregate(records, rows=["boomda", "dt"]).rows == [long, short, "dt"]
    text = render_table1(table)
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
             for line in text.splitlines() if line.startswith("| ")}
    assert lines["Boomda {epochs=30}"][0] == "**82.00 ± 2.83** (n=2)"
    assert lines["Boomda {epochs=5}"][0] == "62.00 ± 2.65 (1 failed)"
    assert lines["D.T."][0] == "71.50 ± 2.12 (n=2)"
    assert comparability(records) == ["runs differ in train.epochs: 30 (6 runs), 5 (3 runs)"]
    # Table 2 keeps a row per setting of a variant
    make_cell(g, "f-ca-s0", "ca", ["fou", "kar"], 0, 75.0)
    records = collect_runs(g)
    ablation = render_table2(aggregate(records, rows=method_order(records)))
    variants = [line.split("|")[1].strip() for line in ablation.splitlines()
                if line.startswith("| ")][2:]
    assert variants == ["D.T.", "ca", "Boomda {epochs=30}", "Boomda {epochs=5}"]
    report = write_report(g, figure_runs=[])["report.md"].read_text()
    assert "| Boomda {epochs=5} | 62.00 ± 2.65 (1 failed) |" in report
    assert "never averaged together" in report
    # without the short runs, the boomda rows are plain again
    for cell in ("b-boomda-short-s0", "b-boomda-short-s1", "b-boomda-short-s2",
                 "d-boomda-short-s3"):
        shutil.rmtree(g / "runs" / cell)
    assert method_order(collect_runs(g)) == ["dt", "ca", "boomda"]


def test_selection_keeps_runs_with_different_settings_apart(tmp_path):
    g = tmp_path / "grid"
    points = ["alpha2=100", "alpha2=1"]
    for epochs, base in ((30, 80.0), (5, 50.0)):
        for i, point in enumerate(points):
            for seed in (0, 1):
                folder = make_cell(g, f"boomda__a__{point}__e{epochs}__seed{seed}", "boomda",
                                   ["fou", "kar"], seed, base + 10 * i + seed, epochs=epochs)
                config = yaml.safe_load((folder / "config.yaml").read_text())
                config["tags"] = {"task": "a", "point": point}
                (folder / "config.yaml").write_text(yaml.safe_dump(config))
    chosen = selection_tasks(collect_runs(g))
    assert [(t.task, t.label) for t in chosen] == [("a", "boomda {epochs=30}"),
                                                   ("a", "boomda {epochs=5}")]
    assert chosen[0].f1 == {"alpha2=100": (80.0 + 81.0) / 2, "alpha2=1": (90.0 + 91.0) / 2}
    assert chosen[1].f1 == {"alpha2=100": (50.0 + 51.0) / 2, "alpha2=1": (60.0 + 61.0) / 2}
    assert "| a | boomda {epochs=5} | 50.50 (alpha2=100) |" in render_selection(chosen, "im")
    # rows in order of first appearance (cell ids sorted: alpha2=100 before alpha2=1)
    assert method_order(collect_runs(g)) == [f"boomda [{p}] {{epochs={e}}}"
                                             for p in points for e in (30, 5)]
