"""Target weighted F1 on the embedded default task with each modality removed at prediction time,
for models trained with and without modality dropout (docs/robustness.md).

Every model is the default ``boomda run`` (Boomda, 30 epochs, the default shifts) with
``--seed S --modality-dropout P``; each is evaluated on the whole target, then with one modality
absent for every target sample, predicted by the ``heads`` and by the ``fused`` strategy
(:mod:`boomda.partial`). Writes ``docs/benchmarks/missing_modalities.json`` and ``.md``.

    python benchmarks/missing_modalities.py            # seeds 0-2, modality dropout 0 and 0.3
    python benchmarks/missing_modalities.py --seeds 0 --dropouts 0,0.5 --epochs 5

``--reuse FILE`` takes the rows of (seed, dropout) pairs already measured from a file of JSON
lines (the lines this script prints) instead of training them again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from boomda import DomainAdapter
from boomda.atomic import atomic_write_text
from boomda.config import RunConfig
from boomda.data.load import build_pair

OUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks"


def measure(seed: int, dropout: float, epochs: int) -> dict:
    """Full-input and one-modality-removed target F1 of one model."""
    config = RunConfig()
    config.train.seed = seed
    config.train.epochs = epochs
    config.train.modality_dropout = dropout
    pair = build_pair(config)
    start = time.perf_counter()
    adapter = DomainAdapter(config.train).fit(pair)
    seconds = time.perf_counter() - start
    target = pair.target
    row = {"seed": seed, "modality_dropout": dropout, "train_seconds": seconds,
           "full": adapter.evaluate(target, "target")["weighted_f1"], "removed": {}}
    for m in pair.modalities:
        mask = {m: np.zeros(len(target), dtype=bool)}
        row["removed"][m] = {s: adapter.evaluate(target, "target", mask=mask,
                                                 strategy=s)["weighted_f1"]
                             for s in ("heads", "fused")}
    return row


def table(rows: list[dict]) -> str:
    """Markdown: mean (and per-seed values) per modality dropout."""
    modalities = list(rows[0]["removed"])
    lines = ["| modality dropout | strategy | full input | "
             + " | ".join(f"without {m}" for m in modalities) + " |",
             "|---|---|---|" + "---|" * len(modalities)]
    for p in sorted({r["modality_dropout"] for r in rows}):
        group = [r for r in rows if r["modality_dropout"] == p]
        full = _cell([r["full"] for r in group])
        for strategy in ("heads", "fused"):
            cells = [_cell([r["removed"][m][strategy] for r in group]) for m in modalities]
            lines.append(f"| {p:g} | {strategy} | {full} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(values: list[float]) -> str:
    return f"{np.mean(values):.2f} ({', '.join(f'{v:.1f}' for v in values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--dropouts", default="0,0.3")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", default=str(OUT / "missing_modalities"))
    parser.add_argument("--reuse", help="JSON lines of rows already measured")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    dropouts = [float(p) for p in args.dropouts.split(",")]
    done = {}
    if args.reuse:
        for line in Path(args.reuse).read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[(row["seed"], row["modality_dropout"])] = row
    rows = []
    for p in dropouts:
        for seed in seeds:
            rows.append(done.get((seed, p)) or measure(seed, p, args.epochs))
            print(json.dumps(rows[-1]), flush=True)
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
               f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    result = {"seeds": seeds, "dropouts": dropouts, "epochs": args.epochs, "machine": machine,
              "rows": rows}
    atomic_write_text(Path(args.out + ".json"), json.dumps(result, indent=2) + "\n")
    text = (f"Target weighted F1 (mean over seeds {args.seeds}; per seed in brackets), "
            f"{args.epochs} epochs, {machine}.\n\n{table(rows)}\n")
    atomic_write_text(Path(args.out + ".md"), text)
    print(text)


if __name__ == "__main__":
    main()
