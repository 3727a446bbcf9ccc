"""The paper's ablation (Table 2) on the embedded data, with training diagnostics.

Runs the grid ``configs/grid-ablation.yaml`` (dt, ca, pl, uniform, boomda x the four subsets of
the default views x seeds 0, 1, 2) through ``boomda bench`` (resumable: rerun the same command to
finish an interrupted grid), then prints the Table 2 layout and, per variant, what the loss terms
looked like: the weighted CA term next to the whole loss, the mean of the paper's r, the final
gamma and the pseudo-labels' accuracy and count, all averaged over the last epoch of every run.

Run from the repository root (about 5 minutes with 2 workers on a 2-core CPU)::

    python benchmarks/ablation.py
    python benchmarks/ablation.py --alpha2 10 --out bench/ablation-alpha2-10   # another
                                      # alignment weight (a sensitivity study; reads target labels)
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

from boomda.grid import GridSpec, run_grid
from boomda.registry import ablation_marks
from boomda.report import aggregate, collect_runs, read_metrics, render_table2


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.fmean(values) if values else None


def diagnostics(grid: Path) -> str:
    """Per-variant means over the last epoch of every finished run."""
    per_variant: dict[str, dict[str, list]] = {}
    for record in collect_runs(grid):
        if record.status != "done":
            continue
        steps = read_metrics(record.folder)
        last = [s for s in steps if s["epoch"] == steps[-1]["epoch"]]
        ca = [sum(v * s[f"loss_{k[len('weight_'):]}"] for k, v in s.items()
                  if k.startswith("weight_ca_")) for s in last]
        row = per_variant.setdefault(record.method, {k: [] for k in
                                                     ("loss", "ca", "r", "acc", "kept", "gamma")})
        row["loss"].append(_mean([s["loss"] for s in last]))
        row["ca"].append(_mean(ca) if any(k.startswith("weight_ca_") for k in last[0]) else None)
        row["r"].append(_mean([s["r"] for s in steps if s.get("r") is not None]))
        row["acc"].append(_mean([s.get("pseudo_accuracy") for s in last]))
        row["kept"].append(_mean([s.get("n_pseudo") for s in last]))
        if len(record.modalities) == 3 and "gamma" in steps[-1]:
            row["gamma"].append(steps[-1]["gamma"])

    def fmt(value: float | None, spec: str) -> str:
        return "–" if value is None else format(value, spec)

    lines = ["| variant | last-epoch loss | weighted CA term | mean r | final γ (3 views, fused "
             "last) | PL accuracy | kept / batch |", "|:--|--:|--:|--:|:--|--:|--:|"]
    for variant in [v for v in ablation_marks() if v in per_variant]:
        row = per_variant[variant]
        gamma = ("[" + ", ".join(f"{statistics.fmean(g):.2f}" for g in zip(*row["gamma"],
                                                                            strict=True)) + "]"
                 if row["gamma"] else "–")
        lines.append(f"| {variant} | {fmt(_mean(row['loss']), '.3f')} | "
                     f"{fmt(_mean(row['ca']), '.2e')} | {fmt(_mean(row['r']), '.2f')} | {gamma} | "
                     f"{fmt(_mean(row['acc']), '.3f')} | {fmt(_mean(row['kept']), '.1f')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="configs/grid-ablation.yaml")
    parser.add_argument("--out", default="bench/ablation", help="grid folder")
    parser.add_argument("--alpha2", type=float, help="override alpha_2 for every cell")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    spec = GridSpec.from_yaml(args.grid)
    if args.alpha2 is not None:
        train = spec.base.setdefault("train", {})
        train["options"] = {**(train.get("options") or {}), "alpha2": args.alpha2}
        spec.name = f"{spec.name}-alpha2-{args.alpha2:g}"
    start = time.perf_counter()
    result = run_grid(spec, args.out, workers=args.workers)
    print(f"\n{result.done} cells done ({result.ran} run now) in "
          f"{time.perf_counter() - start:.0f} s\n")
    print(render_table2(aggregate(collect_runs(args.out))) or "(not an ablation grid)")
    print()
    print(diagnostics(Path(args.out)))


if __name__ == "__main__":
    main()
