"""Cost of balancing: per-step training time of Boomda's gamma solvers on the embedded data.

What it measures, in one process so that the ratios are comparable:

* whole training steps (sampling, forward, losses, balancing, backward, Adam step; the
  ``StepLog.seconds`` the trainer records) for four configurations on the default views
  (``boomda.config.DEFAULT_MODALITIES`` and ``DEFAULT_SHIFTS``, or ``--views`` / ``--shift``;
  d = 256, batch 48, other options the ``TrainConfig`` defaults):
  ``uniform`` (CA + PL, gamma = 1/(M+1), no Q), ``boomda`` + ``closed_form`` (P4),
  ``boomda`` + ``exact`` (P3) and ``boomda`` + ``mgda_params`` (P1, parameter gradients);
* the balancing call alone (Gram matrix + solver) on a fixed batch, and the two solvers alone on
  that batch's Q.

Each block is a short ``DomainAdapter.fit`` (``--epochs`` epochs); its first ``--warmup`` steps
are dropped. An untimed one-epoch block of every configuration comes first; then the blocks are
interleaved over ``--rounds`` rounds, the configuration order rotating each round, so that drift
of the machine hits every configuration alike. The whole comparison is repeated for every encoder
width in ``--hidden`` (the scaling check of P1, whose cost grows with the number of encoder
parameters, against P2-P4, whose cost does not).

Run from the repository root::

    python benchmarks/balance_cost.py                   # a few minutes on 2 CPU cores
    python benchmarks/balance_cost.py --rounds 1 --epochs 1 --hidden 512   # smoke
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import boomda
from boomda.balance import (
    AlignmentProblem,
    make_balancer,
    solve_min_norm_closed_form,
    solve_min_norm_exact,
)
from boomda.config import DEFAULT_MODALITIES, DEFAULT_SHIFTS
from boomda.losses import alignment_loss
from boomda.methods import BoomdaOptions
from boomda.nn.net import MultimodalNet

#: the correlation-alignment form timed (``--ca-form``; docs/benchmarks.md section 3 used coral)
CA_FORM = {"name": "coral"}
#: label -> (method, gamma_solver)
CONFIGS: dict[str, tuple[str, str]] = {
    "uniform": ("uniform", "uniform"),
    "closed_form (P4)": ("boomda", "closed_form"),
    "exact (P3)": ("boomda", "exact"),
    "mgda_params (P1)": ("boomda", "mgda_params"),
}
#: ratio label -> (numerator, denominator)
RATIOS: dict[str, tuple[str, str]] = {
    "closed_form / uniform": ("closed_form (P4)", "uniform"),
    "exact / closed_form": ("exact (P3)", "closed_form (P4)"),
    "mgda_params / exact (P1 vs P3, same solver)": ("mgda_params (P1)", "exact (P3)"),
    "mgda_params / closed_form": ("mgda_params (P1)", "closed_form (P4)"),
}


def quantiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(25th percentile, median, 75th percentile)."""
    q1, med, q3 = np.percentile(np.asarray(values), [25, 50, 75])
    return float(q1), float(med), float(q3)


def _block(pair: boomda.DomainPair, label: str, hidden: int, epochs: int,
           seed: int) -> list[float]:
    method, solver = CONFIGS[label]
    adapter = boomda.DomainAdapter(method=method, gamma_solver=solver, epochs=epochs,
                                   hidden=hidden, seed=seed, device="cpu",
                                   ca_form=CA_FORM["name"]).fit(pair)
    return [s.seconds for s in adapter.history]


def time_steps(pair: boomda.DomainPair, hidden: int, epochs: int, warmup: int, rounds: int,
               log: Callable[[str], None]) -> dict[str, list[list[float]]]:
    """Seconds of every kept training step: configuration -> one list per round.

    An untimed one-epoch block of every configuration comes first (allocator and cache warm-up
    at this width); then ``rounds`` rounds, the configuration order rotating each round.
    """
    labels = list(CONFIGS)
    for label in labels:
        _block(pair, label, hidden, 1, seed=12345)
    samples: dict[str, list[list[float]]] = {label: [] for label in labels}
    for r in range(rounds):
        order = labels[r % len(labels):] + labels[:r % len(labels)]
        for label in order:
            kept = _block(pair, label, hidden, epochs, seed=r)[warmup:]
            samples[label].append(kept)
            log(f"  hidden {hidden} round {r + 1}/{rounds} {label:18s} "
                f"median {1e3 * statistics.median(kept):7.2f} ms over {len(kept)} steps")
    return samples


def _repeat(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def time_balancers(pair: boomda.DomainPair, hidden: int, repeats: int) -> dict[str, Any]:
    """The balancing call alone on one fixed joint batch, and the solvers alone on its Q."""
    torch.manual_seed(0)
    net = MultimodalNet(pair.source.dims, pair.n_classes, 256, hidden, 0.1)
    x = {m: torch.from_numpy(np.concatenate([pair.source.views[m][:48],
                                             pair.target.views[m][:48]]))
         for m in pair.modalities}
    net.fit_standardization(x)
    out = net(x)
    form = CA_FORM["name"]
    losses = [alignment_loss(z[:48], z[48:], form) for z in out.reps]
    losses.append(alignment_loss(out.fused[:48], out.fused[48:], form))
    problem = AlignmentProblem(losses, out.reps, net.encoder_parameters())
    calls = {}
    for name in ("uniform", "closed_form", "exact", "mgda_params"):
        balancer = make_balancer(name)
        balancer(problem)  # warm up
        calls[name] = statistics.median(_repeat(lambda b=balancer: b(problem), repeats))
    q = make_balancer("closed_form")(problem).gram
    solvers = {
        "closed_form": statistics.median(_repeat(lambda: solve_min_norm_closed_form(q),
                                                 10 * repeats)),
        "exact": statistics.median(_repeat(lambda: solve_min_norm_exact(q), 10 * repeats)),
    }
    n_params = sum(p.numel() for p in net.encoder_parameters())
    return {"call_seconds": calls, "solver_seconds": solvers, "encoder_params": n_params}


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"Views {'+'.join(meta['modalities'])} (input dims "
        f"{', '.join(f'{m} {d}' for m, d in meta['dims'].items())}), d = 256, batch 48, "
        f"{meta['threads']} torch thread(s), blocks of {meta['epochs']} epoch(s) "
        f"({meta['steps_per_block']} steps, first {meta['warmup']} dropped) x {meta['rounds']} "
        f"interleaved rounds per configuration; {meta['date']}, wall time "
        f"{meta['wall_seconds']:.0f} s.",
        "",
        "Whole training step, ms (median [IQR]):",
        "",
        "| hidden | encoder params | " + " | ".join(CONFIGS) + " |",
        "|--:|--:|" + "--:|" * len(CONFIGS),
    ]
    for h in results["hidden"]:
        steps = results["by_hidden"][str(h)]["step_seconds"]
        cells = []
        for label in CONFIGS:
            q1, med, q3 = quantiles([t for block in steps[label] for t in block])
            cells.append(f"{1e3 * med:.2f} [{1e3 * q1:.2f}–{1e3 * q3:.2f}]")
        n_params = results["by_hidden"][str(h)]["balance_only"]["encoder_params"]
        lines.append(f"| {h} | {n_params:,} | " + " | ".join(cells) + " |")
    lines += ["", "Ratios of the median step times (in brackets: the range of the same ratio "
              "computed within each round):", "",
              "| hidden | " + " | ".join(RATIOS) + " |",
              "|--:|" + "--:|" * len(RATIOS)]
    for h in results["hidden"]:
        ratios = results["by_hidden"][str(h)]["ratios"]
        per_round = results["by_hidden"][str(h)]["ratios_per_round"]
        lines.append(f"| {h} | " + " | ".join(
            f"{ratios[k]:.3f} [{min(per_round[k]):.2f}–{max(per_round[k]):.2f}]" for k in RATIOS
        ) + " |")
    lines += ["", "The balancing call alone (Gram matrix + solver, one fixed batch), ms "
              "(median), and the two solvers alone on that 4x4 Q, µs (median):", "",
              "| hidden | uniform | closed_form (P4) | exact (P3) | mgda_params (P1) "
              "| P4 solver µs | P3 solver (Wolfe) µs |",
              "|--:|--:|--:|--:|--:|--:|--:|"]
    for h in results["hidden"]:
        b = results["by_hidden"][str(h)]["balance_only"]
        c, s = b["call_seconds"], b["solver_seconds"]
        lines.append(f"| {h} | {1e3 * c['uniform']:.3f} | {1e3 * c['closed_form']:.3f} | "
                     f"{1e3 * c['exact']:.3f} | {1e3 * c['mgda_params']:.3f} | "
                     f"{1e6 * s['closed_form']:.1f} | {1e6 * s['exact']:.1f} |")
    return "\n".join(lines)


def _csv_int(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Per-step cost of Boomda's gamma solvers (uniform, closed_form, exact, "
                    "mgda_params) on the embedded data; writes a Markdown fragment and JSON.")
    parser.add_argument("--views", type=lambda t: [v for v in t.split(",") if v], default=None,
                        help="comma-separated views (default: boomda.config.DEFAULT_MODALITIES)")
    parser.add_argument("--shift", action="append", default=[], metavar="VIEW=SPEC",
                        help="target shift of one view, replacing its DEFAULT_SHIFTS entry "
                             "(repeatable)")
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs per timed block (16 steps each on the default pair)")
    parser.add_argument("--warmup", type=int, default=5, help="steps dropped from each block")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--hidden", type=_csv_int, default=[512, 2048, 4096],
                        help="comma-separated encoder hidden widths (default 512,2048,4096; "
                             "512 is the TrainConfig default)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--ca-form", default=BoomdaOptions.ca_form,
                        help=f"correlation-alignment form timed (default: the shipped default, "
                             f"{BoomdaOptions.ca_form})")
    parser.add_argument("--repeats", type=int, default=50,
                        help="repetitions of the balancing-call-alone timing")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/balance_cost.md"),
                        help="Markdown fragment (default docs/benchmarks/balance_cost.md)")
    parser.add_argument("--json", type=Path, default=Path("docs/benchmarks/balance_cost.json"),
                        help="raw timings (default docs/benchmarks/balance_cost.json)")
    args = parser.parse_args(argv)
    if min(args.epochs, args.rounds, args.threads, args.repeats, *args.hidden) < 1 \
            or args.warmup < 0:
        parser.error("--epochs, --rounds, --threads, --repeats, --hidden must be >= 1 and "
                     "--warmup >= 0")
    bad = [s for s in args.shift if "=" not in s]
    if bad:
        parser.error(f"--shift {bad[0]!r}: expected VIEW=SPEC")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    CA_FORM["name"] = args.ca_form

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    views = args.views or list(DEFAULT_MODALITIES)
    specs = dict(DEFAULT_SHIFTS)
    specs.update(dict(s.split("=", 1) for s in args.shift))
    data = boomda.load_multiple_features().select(views)
    pair = boomda.DomainPair.from_protocol(data, {m: specs[m] for m in views if m in specs},
                                           seed=0)
    steps_per_block = args.epochs * (len(pair.source) // 48)
    if steps_per_block <= args.warmup:
        raise SystemExit(f"--warmup {args.warmup} drops all {steps_per_block} steps of a block")
    start = time.perf_counter()
    by_hidden: dict[str, Any] = {}
    for h in args.hidden:
        steps = time_steps(pair, h, args.epochs, args.warmup, args.rounds, log)
        medians = {label: statistics.median([t for block in v for t in block])
                   for label, v in steps.items()}
        round_medians = {label: [statistics.median(block) for block in v]
                         for label, v in steps.items()}
        by_hidden[str(h)] = {
            "step_seconds": steps,
            "median_step_seconds": medians,
            "ratios": {k: medians[a] / medians[b] for k, (a, b) in RATIOS.items()},
            "ratios_per_round": {k: [x / y for x, y in zip(round_medians[a], round_medians[b],
                                                           strict=True)]
                                 for k, (a, b) in RATIOS.items()},
            "balance_only": time_balancers(pair, h, args.repeats),
        }
    wall = time.perf_counter() - start
    results = {
        "meta": {
            "modalities": list(pair.modalities), "shifts": pair.info["shifts"],
            "dims": dict(pair.source.dims), "epochs": args.epochs, "warmup": args.warmup,
            "rounds": args.rounds, "threads": args.threads, "steps_per_block": steps_per_block,
            "wall_seconds": wall, "date": time.strftime("%Y-%m-%d"),
            "torch": str(torch.__version__), "python": platform.python_version(),
        },
        "hidden": args.hidden,
        "by_hidden": by_hidden,
    }
    text = render(results)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    log(f"wrote {args.out} and {args.json}; wall time {wall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
