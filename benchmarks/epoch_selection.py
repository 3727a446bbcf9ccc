"""Would keeping the epoch with the best label-free score help? A measurement, on the
development tasks of the suite (configs/suite-dev.yaml), of Boomda at its defaults: at the end of
every epoch the model's IM score on the target (information maximisation, boomda.select: the
target's unlabelled inputs only) and, for reporting, its target weighted F1; the last epoch (what
boomda ships) against the epoch IM would pick.

    python benchmarks/epoch_selection.py [--tasks configs/suite-dev.yaml] [--seeds 0 1 2]

Prints one row per task and seed and the averages; nothing here changes training.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from boomda.config import RunConfig, load_yaml_mapping  # noqa: E402
from boomda.data.load import build_pair  # noqa: E402
from boomda.estimator import DomainAdapter  # noqa: E402
from boomda.evaluate import predict_logits, weighted_f1  # noqa: E402
from boomda.select import information_maximization, softmax  # noqa: E402


def measure(task: dict, seed: int, epochs: int) -> tuple[float, float, float, int]:
    """(last-epoch F1, F1 of the epoch IM picks, best epoch F1 by labels, the picked epoch)."""
    config = RunConfig.from_dict({"data": task, "train": {"epochs": epochs, "seed": seed,
                                                          "device": "cpu"}})
    pair = build_pair(config)
    adapter = DomainAdapter(config.train)
    rows = []

    def on_step(log) -> None:
        if (log.step + 1) % steps_per_epoch:
            return
        net = adapter.net
        net.eval()
        probs = softmax(predict_logits(net, pair.target, adapter.device))
        f1 = 100 * weighted_f1(pair.target.labels, probs.argmax(1), pair.n_classes)
        rows.append((information_maximization(probs), f1))
        net.train()

    steps_per_epoch = max(1, len(pair.source) // min(config.train.batch_size, len(pair.source)))
    adapter.fit(pair, on_step=on_step)
    scores = np.array([r[0] for r in rows])
    f1s = [r[1] for r in rows]
    picked = int(np.argmax(scores))  # the first of equal scores
    return f1s[-1], f1s[picked], max(f1s), picked + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="configs/suite-dev.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks = load_yaml_mapping(args.tasks, "tasks file")["tasks"]
    start = time.perf_counter()
    print("| task | seed | last epoch | epoch picked by IM | F1 there | best epoch (labels) |")
    print("|:--|--:|--:|--:|--:|--:|")
    totals: dict[str, list[float]] = {"last": [], "im": [], "best": []}
    for name, task in tasks.items():
        for seed in args.seeds:
            last, chosen, best, epoch = measure(task, seed, args.epochs)
            totals["last"].append(last)
            totals["im"].append(chosen)
            totals["best"].append(best)
            print(f"| {name} | {seed} | {last:.2f} | {epoch} | {chosen:.2f} | {best:.2f} |",
                  flush=True)
    print(f"| **average** | | {statistics.fmean(totals['last']):.2f} | | "
          f"{statistics.fmean(totals['im']):.2f} | {statistics.fmean(totals['best']):.2f} |")
    print(f"\n{time.perf_counter() - start:.0f} s; {args.tasks}, seeds {args.seeds}, "
          f"{args.epochs} epochs, Boomda at its defaults")


if __name__ == "__main__":
    main()
