"""Time per training step of every method on the embedded default task, and where a Boomda
step spends its time (torch's operator profile).

Each method trains ``--epochs`` epochs of the default task (three views, d = 256, hidden 512,
batch 48) in one process with ``--threads`` torch threads, after an untimed one-epoch warm-up;
the median of the trainer's ``StepLog.seconds`` over the steps after the first 5 is reported.
Then one ``--profile-epochs`` fit of ``--profile-method`` runs under ``torch.profiler`` and its
operators are listed by their own CPU time.

Run from the repository root::

    python benchmarks/step_time.py --out docs/benchmarks/step_time_after.md

The same script, run with ``PYTHONPATH`` pointing at another checkout's ``src``, times that
version of the library (the "before" column of docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

import boomda
from boomda import DomainAdapter
from boomda.config import RunConfig
from boomda.data.load import build_pair

METHODS = ["dt", "uniform", "boomda", "dann", "cdan", "mada", "daln", "pcl", "dada"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile-method", default="boomda")
    parser.add_argument("--profile-epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True, help="markdown file to write")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    pair = build_pair(RunConfig())
    rows = []
    for method in args.methods.split(","):
        DomainAdapter(epochs=1, method=method, device="cpu").fit(pair)
        adapter = DomainAdapter(epochs=args.epochs, method=method, device="cpu").fit(pair)
        seconds = [log.seconds for log in adapter.history[5:]]
        rows.append((method, statistics.median(seconds) * 1000, len(seconds)))
        print(f"{method:8s} {rows[-1][1]:7.2f} ms", flush=True)
    from torch.profiler import ProfilerActivity, profile

    DomainAdapter(epochs=1, method=args.profile_method, device="cpu").fit(pair)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        adapter = DomainAdapter(epochs=args.profile_epochs, method=args.profile_method,
                                device="cpu").fit(pair)
    steps = len(adapter.history)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    lines = [
        f"boomda {boomda.__version__} (`{boomda.__file__}`), torch {torch.__version__}, "
        f"Python {platform.python_version()}, {args.threads} torch thread(s); "
        f"{time.strftime('%Y-%m-%d')}, wall time {time.perf_counter() - start:.0f} s.",
        "",
        "Median time per training step, ms (default task, d = 256, hidden 512, batch 48):",
        "",
        "| method | ms per step | steps timed |",
        "|:--|--:|--:|",
        *[f"| {m} | {ms:.2f} | {n} |" for m, ms, n in rows],
        "",
        f"Operators of `{args.profile_method}` by own CPU time ({steps} steps; "
        f"{total / 1000 / steps:.2f} ms of operator time per step):",
        "",
        "| operator | calls per step | ms per step | share |",
        "|:--|--:|--:|--:|",
        *[f"| `{e.key}` | {e.count / steps:.1f} | {e.self_cpu_time_total / 1000 / steps:.2f} | "
          f"{100 * e.self_cpu_time_total / total:.1f} % |" for e in events[:12]],
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
