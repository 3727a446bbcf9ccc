"""Ablation of Boomda's two parts on the embedded data, in the layout of the paper's Table 2.

What it measures: target-domain weighted F1 (x100, fused head, last model) of the variants
``dt`` (IB only), ``ca`` (balanced CA), ``pl`` (voted pseudo-labels), ``uniform`` (CA + PL with
gamma = 1/(M+1), i.e. CA without balancing) and ``boomda`` (CA + PL, balanced), for every subset
of two or more of the views (``--views``, default ``boomda.config.DEFAULT_MODALITIES``) with
their shifts (``boomda.config.DEFAULT_SHIFTS``, entries replaced by ``--shift``) restricted to
the subset, over several seeds. The seed drives both the domain split
(``DomainPair.from_protocol(..., seed=seed)``) and training. Hyperparameters are the
``TrainConfig`` defaults unless ``--epochs`` / ``--alpha2`` override them.

Output: a Markdown fragment (``--out``; cells are mean +- sample std over the seeds, plus the
source held-out F1 for reference) and one JSON line per run (``--jsonl``). Runs go to a pool of
``--jobs`` processes (spawned), each using ``cpu_count // jobs`` torch threads.

Run from the repository root::

    python benchmarks/ablation.py                       # 5 variants x 4 subsets x seeds 0,1,2
    python benchmarks/ablation.py --seeds 0 --epochs 2 --variants dt,boomda --jobs 1   # smoke
    python benchmarks/ablation.py --views fou,zer,kar \
        --shift zer=scale_noise:scale=0.2,snr=0.5 --shift kar=mask:fraction=0.4
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

#: variant -> (uses CA, uses PL), in the row order of the paper's Table 2
VARIANT_FLAGS: dict[str, tuple[bool, bool]] = {
    "dt": (False, False),
    "ca": (True, False),
    "pl": (False, True),
    "uniform": (True, True),
    "boomda": (True, True),
}


@dataclass(frozen=True)
class Job:
    variant: str
    modalities: tuple[str, ...]
    seed: int
    epochs: int
    alpha2: float
    shifts: tuple[tuple[str, str], ...]  # (modality, shift spec) for the modalities of the subset


def all_subsets(views: Sequence[str]) -> list[tuple[str, ...]]:
    """Every subset of two or more views, pairs first (for a, b, c: a+b, a+c, b+c, a+b+c)."""
    return [c for k in range(2, len(views) + 1) for c in combinations(views, k)]


def subset_label(modalities: Sequence[str]) -> str:
    return "+".join(modalities)


# ----------------------------------------------------------------------------- worker side
_DATA: Any = None


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_job(job: Job) -> dict[str, Any]:
    """Train one (variant, subset, seed) and evaluate it; runs in a worker process."""
    global _DATA
    import torch

    import boomda

    if _DATA is None:
        _DATA = boomda.load_multiple_features()
    mods = list(job.modalities)
    shifts = dict(job.shifts)
    pair = boomda.DomainPair.from_protocol(_DATA.select(mods), shifts, seed=job.seed)
    start = time.perf_counter()
    adapter = boomda.DomainAdapter(method=job.variant, epochs=job.epochs, seed=job.seed,
                                   alpha2=job.alpha2, device="cpu").fit(pair)
    train_seconds = time.perf_counter() - start
    history = adapter.history
    last_epoch = [log for log in history if log.epoch == history[-1].epoch]

    def mean_of(values: list[float]) -> float | None:
        return statistics.fmean(values) if values else None

    ca_keys = [k for k in history[-1].terms if k.startswith("ca_")]
    rs = [log.r for log in history if log.r is not None and math.isfinite(log.r)]
    target = adapter.evaluate(pair.target, "target")
    source = adapter.evaluate(pair.source_holdout, "source_holdout")
    return {
        "variant": job.variant,
        "modalities": mods,
        "subset": subset_label(mods),
        "seed": job.seed,
        "epochs": job.epochs,
        "alpha2": job.alpha2,
        "shifts": pair.info["shifts"],
        "steps": len(history),
        "target_weighted_f1": target["weighted_f1"],
        "target_accuracy": target["accuracy"],
        "source_holdout_weighted_f1": source["weighted_f1"],
        "train_seconds": train_seconds,
        "threads": torch.get_num_threads(),
        # last-epoch means of the loss and of the weighted CA contribution alpha2 * sum gamma L^CA
        "last_epoch_loss": mean_of([log.loss for log in last_epoch]),
        "last_epoch_ib": mean_of([log.terms["ib"] for log in last_epoch if "ib" in log.terms]),
        "last_epoch_weighted_ca": (mean_of([sum(log.weights[k] * log.terms[k] for k in ca_keys)
                                            for log in last_epoch]) if ca_keys else None),
        "final_gamma": history[-1].gamma,
        "mean_r": mean_of(rs),
        "last_epoch_pseudo_accuracy": mean_of([log.pseudo_accuracy for log in last_epoch
                                               if log.pseudo_accuracy is not None]),
        "last_epoch_n_pseudo": mean_of([float(log.n_pseudo) for log in last_epoch
                                        if log.n_pseudo is not None]),
    }


# ------------------------------------------------------------------------------ reporting
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def _cell(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    mean, std = mean_std(values)
    return f"{mean:.2f} ± {std:.2f}"


def _per_seed_average(rows: list[dict], variant: str, subsets: list[str], key: str,
                      seeds: list[int]) -> list[float]:
    """For each seed with every subset present, the mean over subsets (the 'ave.' column)."""
    out = []
    for seed in seeds:
        vals = [r[key] for r in rows if r["variant"] == variant and r["seed"] == seed
                and r["subset"] in subsets]
        if len(vals) == len(subsets):
            out.append(statistics.fmean(vals))
    return out


def render_table(rows: list[dict], variants: list[str], subsets: list[str], seeds: list[int],
                 key: str, with_flags: bool = True) -> str:
    """A Markdown table: one row per variant, the subsets then the average as columns."""
    head = (["variant", "CA", "PL"] if with_flags else ["variant"]) + subsets + ["ave."]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join([":--"] + ([":-:", ":-:"] if with_flags else [])
                            + ["--:"] * (len(subsets) + 1)) + "|"]
    for v in variants:
        ca, pl = VARIANT_FLAGS[v]
        cells = [v]
        if with_flags:
            cells += ["✓" if ca else "✗", "✓" if pl else "✗"]
        for s in subsets:
            cells.append(_cell([r[key] for r in rows if r["variant"] == v and r["subset"] == s]))
        cells.append(_cell(_per_seed_average(rows, v, subsets, key, seeds)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_diagnostics(rows: list[dict], variants: list[str]) -> str:
    """Per variant, means over every run: CA's share of the last-epoch loss, r, pseudo-labels."""
    lines = ["| variant | last-epoch loss | of which α2·Σγ·L_CA | mean r "
             "| final γ (widest subset, fused last) | PL acc. (last epoch) | kept / 48 |",
             "|:--|--:|--:|--:|:--|--:|--:|"]

    def avg(vals: list[float | None], fmt: str) -> str:
        vals = [v for v in vals if v is not None]
        return format(statistics.fmean(vals), fmt) if vals else "–"

    for v in variants:
        mine = [r for r in rows if r["variant"] == v]
        widest = max(len(r["modalities"]) for r in rows)
        full = [r for r in mine if len(r["modalities"]) == widest and r["final_gamma"]]
        gamma = "–"
        if full:
            g = [statistics.fmean(r["final_gamma"][i] for r in full) for i in range(widest + 1)]
            gamma = "[" + ", ".join(f"{x:.2f}" for x in g) + "]"
        lines.append("| " + " | ".join([
            v,
            avg([r["last_epoch_loss"] for r in mine], ".4f"),
            avg([r["last_epoch_weighted_ca"] for r in mine], ".2e"),
            avg([r["mean_r"] for r in mine], ".3f"),
            gamma,
            avg([r["last_epoch_pseudo_accuracy"] for r in mine], ".3f"),
            avg([r["last_epoch_n_pseudo"] for r in mine], ".1f"),
        ]) + " |")
    return "\n".join(lines)


def render_fragment(rows: list[dict], variants: list[str], subsets: list[str], seeds: list[int],
                    meta: dict[str, Any]) -> str:
    shifts = ", ".join(f"{m}: `{meta['shifts'].get(m, 'none')}`" for m in meta["views"])
    return "\n".join([
        f"Views and target shifts: {shifts}.",
        "",
        f"Target weighted F1 (x100), mean ± sample std over seeds {meta['seeds']}, "
        f"{meta['epochs']} epochs, alpha2 = {meta['alpha2']:g}, last model. Row `uniform` is "
        f"CA without balancing (γ = 1/(M+1)); rows `ca` and `boomda` balance with "
        f"`{meta['gamma_solver']}`.",
        "",
        render_table(rows, variants, subsets, seeds, "target_weighted_f1"),
        "",
        "Source held-out weighted F1 (for reference; 200 held-out source samples):",
        "",
        render_table(rows, variants, subsets, seeds, "source_holdout_weighted_f1",
                     with_flags=False),
        "",
        "Training diagnostics (means over all runs of the variant):",
        "",
        render_diagnostics(rows, variants),
        "",
        f"{meta['n_runs']} runs, {meta['jobs']} processes x {meta['threads']} torch threads, "
        f"wall time {meta['wall_seconds']:.0f} s (sum of per-run training time "
        f"{meta['train_seconds_total']:.0f} s).",
    ])


# ------------------------------------------------------------------------------------ main
def _csv(kind: type) -> Any:
    def parse(text: str) -> list:
        return [kind(t) for t in text.split(",") if t.strip()]

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from boomda.config import TrainConfig

    parser = argparse.ArgumentParser(
        description="Boomda ablation (paper Table 2 layout) on the embedded data: variants x "
                    "modality subsets x seeds; writes a Markdown table and raw JSON lines.")
    parser.add_argument("--seeds", type=_csv(int), default=[0, 1, 2],
                        help="comma-separated seeds (split and training), default 0,1,2")
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs,
                        help="epoch budget (default: the TrainConfig default)")
    parser.add_argument("--alpha2", type=float, default=TrainConfig().alpha2,
                        help="weight of the CA term (default: the TrainConfig default)")
    parser.add_argument("--views", type=_csv(str), default=None,
                        help="comma-separated views whose subsets are run (default: "
                             "boomda.config.DEFAULT_MODALITIES)")
    parser.add_argument("--shift", action="append", default=[], metavar="VIEW=SPEC",
                        help="target shift of one view, replacing its DEFAULT_SHIFTS entry, "
                             "e.g. zer=scale_noise:scale=0.2,snr=0.5 (repeatable)")
    parser.add_argument("--variants", type=_csv(str), default=list(VARIANT_FLAGS),
                        help=f"comma-separated, from {','.join(VARIANT_FLAGS)} (default all)")
    parser.add_argument("--subsets", type=_csv(str), default=None,
                        help="comma-separated subsets written like fou+kar (default: every "
                             "subset of two or more of the views)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="worker processes (default min(2, cpu count))")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/ablation.md"),
                        help="Markdown fragment to write (default docs/benchmarks/ablation.md)")
    parser.add_argument("--jsonl", type=Path, default=Path("docs/benchmarks/ablation.jsonl"),
                        help="raw per-run results (default docs/benchmarks/ablation.jsonl)")
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants if v not in VARIANT_FLAGS]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANT_FLAGS)}")
    if args.epochs < 1 or args.jobs < 1 or not args.seeds or args.alpha2 < 0:
        parser.error("--epochs and --jobs must be >= 1, --alpha2 >= 0 and --seeds non-empty")
    bad = [s for s in args.shift if "=" not in s]
    if bad:
        parser.error(f"--shift {bad[0]!r}: expected VIEW=SPEC")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from boomda.config import DEFAULT_MODALITIES, DEFAULT_SHIFTS, TrainConfig

    views = args.views or list(DEFAULT_MODALITIES)
    shift_specs = dict(DEFAULT_SHIFTS)
    shift_specs.update(dict(s.split("=", 1) for s in args.shift))
    subsets = ([tuple(s.split("+")) for s in args.subsets] if args.subsets
               else all_subsets(views))
    labels = [subset_label(s) for s in subsets]
    variants = [v for v in VARIANT_FLAGS if v in args.variants]

    def job(v: str, mods: tuple[str, ...], seed: int) -> Job:
        shifts = tuple((m, shift_specs[m]) for m in mods if m in shift_specs)
        return Job(v, mods, seed, args.epochs, args.alpha2, shifts)

    # longest first (more views, CA, PL), so the pool ends together
    jobs = sorted((job(v, s, seed) for v in variants for s in subsets for seed in args.seeds),
                  key=lambda j: (-len(j.modalities), -sum(VARIANT_FLAGS[j.variant])))
    n_workers = min(args.jobs, len(jobs))
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    print(f"{len(jobs)} runs on {n_workers} processes x {threads} threads", file=sys.stderr)

    rows: list[dict] = []
    start = time.perf_counter()
    with ProcessPoolExecutor(n_workers, mp_context=mp.get_context("spawn"),
                             initializer=_init_worker, initargs=(threads,)) as pool:
        futures = [pool.submit(run_job, j) for j in jobs]
        for future in as_completed(futures):
            row = future.result()
            rows.append(row)
            print(f"[{len(rows):3d}/{len(jobs)}] {row['variant']:8s} {row['subset']:12s} "
                  f"seed {row['seed']}: target F1 {row['target_weighted_f1']:6.2f}  "
                  f"source F1 {row['source_holdout_weighted_f1']:6.2f}  "
                  f"({row['train_seconds']:.1f} s)", file=sys.stderr)
    wall = time.perf_counter() - start

    order = {(v, s, seed): i for i, (v, s, seed) in enumerate(
        (v, s, seed) for v in variants for s in labels for seed in args.seeds)}
    rows.sort(key=lambda r: order[(r["variant"], r["subset"], r["seed"])])
    in_subsets = {m for s in subsets for m in s}
    used = [m for m in views if m in in_subsets] + sorted(in_subsets - set(views))
    meta = {
        "views": used, "shifts": {m: shift_specs[m] for m in used if m in shift_specs},
        "seeds": ",".join(map(str, args.seeds)), "epochs": args.epochs, "alpha2": args.alpha2,
        "gamma_solver": TrainConfig().gamma_solver, "n_runs": len(rows), "jobs": n_workers,
        "threads": threads, "wall_seconds": wall,
        "train_seconds_total": sum(r["train_seconds"] for r in rows),
        "torch": str(torch.__version__), "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }
    fragment = render_fragment(rows, variants, labels, args.seeds, meta)
    print(fragment)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(fragment + "\n")
    args.jsonl.parent.mkdir(parents=True, exist_ok=True)
    with args.jsonl.open("w") as fh:
        fh.write(json.dumps({"meta": meta}) + "\n")
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    print(f"wrote {args.out} and {args.jsonl}; wall time {wall:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
