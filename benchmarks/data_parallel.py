"""Data-parallel training and bf16 on the embedded default task: time per step and agreement.

What it measures (``boomda run`` processes, the default task: fou, kar, pix at the default
shifts, batch 48, 30 epochs unless ``--epochs``):

* 1 process against ``--nproc 2`` (torchrun, gloo on CPU, or nccl with one GPU per process)
  at the same global batch, for ``boomda`` and ``dann``, with encoder dropout 0 (whose masks
  depend on how many rows a process draws them for): seconds per step, the largest difference
  of the per-step losses (over the first 20 steps, and over the run, where float round-off
  from summing the gradients in another order grows with training) and of the final
  parameters, and the target weighted F1 of both;
* ``precision: fp32`` against ``bf16`` (the network autocast to bfloat16) at the default
  settings, seeds 0-2: target weighted F1 and seconds per step.

Run from the repository root::

    python benchmarks/data_parallel.py                      # about 15 minutes on 2 CPU cores
    python benchmarks/data_parallel.py --epochs 2 --seeds 0 --out bench/smoke   # smoke

Results: ``docs/benchmarks/data_parallel.json`` and ``.md`` (``--out`` to change the folder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import torch


def boomda_run(work: Path, name: str, *args: str) -> Path:
    """One ``boomda run`` process (``python -m boomda run``); its run folder."""
    folder = work / name
    if (folder / "results.json").is_file():
        return folder
    command = [sys.executable, "-m", "boomda", "run", "--out", str(work), "--name", name,
               "--overwrite", "--no-progress", *args]
    print(" ".join(command[2:]), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return folder


def metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def max_param_gap(a: Path, b: Path) -> float:
    pa, pb = (torch.load(f / "model.pt", map_location="cpu", weights_only=False)["state_dict"]
              for f in (a, b))
    return max(float((pa[k].double() - pb[k].double()).abs().max())
               for k in pa if pa[k].is_floating_point())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", type=Path, default=Path("bench/data_parallel"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    common = ["--epochs", str(args.epochs), "--device", args.device]
    rows = []
    for method in ("boomda", "dann"):
        same = [*common, "--method", method, "--dropout", "0", "--checkpoint-every", "0"]
        one = boomda_run(args.work, f"{method}-1proc", *same)
        two = boomda_run(args.work, f"{method}-2proc", *same, "--nproc", "2")
        ma, mb = metrics(one), metrics(two)
        rows.append({
            "method": method, "steps": len(ma),
            "seconds_per_step_1": results(one)["seconds_per_step"],
            "seconds_per_step_2": results(two)["seconds_per_step"],
            "max_loss_gap_20": max(abs(x["loss"] - y["loss"])
                                   for x, y in zip(ma[:20], mb[:20], strict=True)),
            "max_loss_gap": max(abs(x["loss"] - y["loss"]) for x, y in zip(ma, mb, strict=True)),
            "max_param_gap": max_param_gap(one, two),
            "f1_1": results(one)["target"]["weighted_f1"],
            "f1_2": results(two)["target"]["weighted_f1"],
        })
    precision = {}
    for p in ("fp32", "bf16"):
        runs = [results(boomda_run(args.work, f"{p}-seed{s}", *common, "--seed", str(s),
                                   "--precision", p)) for s in seeds]
        precision[p] = {"f1": [r["target"]["weighted_f1"] for r in runs],
                        "seconds_per_step": statistics.fmean(r["seconds_per_step"]
                                                             for r in runs)}
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(),
               "torch": torch.__version__, "device": args.device,
               "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "data_parallel.json").write_text(json.dumps(
        {"machine": machine, "epochs": args.epochs, "data_parallel": rows,
         "precision": precision}, indent=1) + "\n")
    lines = [f"Machine: {machine['platform']}, {machine['cpus']} CPUs, torch {machine['torch']}, "
             f"device {args.device}" + (f" ({machine['gpu']})" if machine["gpu"] else ""),
             f"Command: `python benchmarks/data_parallel.py --epochs {args.epochs} --seeds "
             f"{args.seeds} --device {args.device}`", "",
             "| method | steps | s/step, 1 process | s/step, 2 processes | max loss gap, "
             "first 20 steps | max loss gap, all steps | max parameter gap, end | "
             "F1, 1 process | F1, 2 processes |",
             "|:--|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['steps']} | {r['seconds_per_step_1']:.4f} | "
                     f"{r['seconds_per_step_2']:.4f} | {r['max_loss_gap_20']:.1e} | "
                     f"{r['max_loss_gap']:.1e} | "
                     f"{r['max_param_gap']:.1e} | {r['f1_1']:.2f} | {r['f1_2']:.2f} |")
    lines += ["", "| precision | target wF1 per seed | mean | s/step |", "|:--|:--|--:|--:|"]
    for p, v in precision.items():
        lines.append(f"| {p} | {', '.join(f'{f:.2f}' for f in v['f1'])} | "
                     f"{statistics.fmean(v['f1']):.2f} | {v['seconds_per_step']:.4f} |")
    (args.out / "data_parallel.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
