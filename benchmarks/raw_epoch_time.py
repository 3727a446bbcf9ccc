"""Raw corpora: time per epoch on CPU (or a GPU), with a cold and a warm frozen-state cache.

What it measures: two ``boomda.run.run_experiment`` runs of method ``boomda`` on a synthetic
manifest corpus (audio, frame folders, transcripts) through backbones of the real *base* sizes
with random weights (WavLM-base, BERT-base, ViT-base/16 at 224 px; 12 layers, width 768; no
download), the last 3 layers of each trained, 10 frames per clip, audio cut to 8 s, on the CPU
(``--device cuda`` for a GPU).
The first run starts from an empty cache folder, so the frozen part of every backbone (the first
9 layers) runs on every utterance and is written to the cache; the second run, identical, reads
it. Per run:

* data preparation time, ``wall_seconds - train_seconds`` of the run's ``results.json``, split
  into the domain pair's build (corpus, frozen parts or cache reads) and what follows training
  (evaluation of the target and held-out parts, checkpoint), located with the step callback;
* training time per epoch and per step (the run's ``train_seconds``, ``seconds_per_step`` and
  each step's ``StepLog.seconds``);
* the cache's hits and misses, the cache folder's size on disk, and peak RSS: the process's
  (``resource.getrusage``) and each run's own (Linux ``VmHWM``, reset before the run);
* the CPU time of this process and of other processes during each run (``/proc/stat``), to
  tell a slow run from a contended one.

Everything is made under ``--work`` (default ``bench/raw_epoch_time``): the backbone folders
(kept and reused by later invocations), the corpus (reused when its settings are unchanged),
the cache folder (emptied at the start) and the run folders. Results go to
``docs/benchmarks/raw_epoch_time.json`` and ``.md`` (``--out`` to change the folder).

Run from the repository root::

    python benchmarks/raw_epoch_time.py                 # about 7 minutes on 2 CPU cores
    python benchmarks/raw_epoch_time.py --utterances 8 --epochs 1 --out bench/smoke   # smoke
    python benchmarks/raw_epoch_time.py --device cuda --precision bf16 --batch-size 48 \
        --out bench/bf16                                # bf16 against fp32 on a GPU
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.rawcorpus import (  # noqa: E402
    CLASS_WORDS,
    CLASSES,
    COMMON_WORDS,
    RATE,
    utterance_signals,
)

import boomda  # noqa: E402
from boomda.atomic import atomic_write_text  # noqa: E402
from boomda.config import RunConfig  # noqa: E402
from boomda.run import run_experiment  # noqa: E402

FRAME_SIZE = 224
FPS = 10
TRAINABLE_LAYERS = 3
N_FRAMES = 10
MAX_SECONDS = 8.0
#: backbone folder -> (transformers config class, files that must exist to reuse the folder)
BACKBONES = {
    "speech": ("WavLMConfig", ("config.json", "model.safetensors")),
    "text": ("BertConfig", ("config.json", "model.safetensors", "vocab.txt",
                            "tokenizer_config.json")),
    "image": ("ViTConfig", ("config.json", "model.safetensors")),
}
#: modality -> (signal, backbone folder)
MODALITIES = {"acoustic": ("audio", "speech"), "visual": ("video", "image"),
              "lexical": ("text", "text")}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- setup --------------------------------------------------------------------------------
def _backbone_config(kind: str, vocab_size: int):
    import transformers

    if kind == "speech":
        return transformers.WavLMConfig()
    if kind == "text":
        return transformers.BertConfig(vocab_size=vocab_size)
    return transformers.ViTConfig(image_size=FRAME_SIZE, patch_size=16)


def _reusable(folder: Path, kind: str, vocab_size: int) -> bool:
    if not all((folder / name).is_file() for name in BACKBONES[kind][1]):
        return False
    saved = json.loads((folder / "config.json").read_text())
    expected = _backbone_config(kind, vocab_size).to_dict()
    keys = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "intermediate_size", "vocab_size", "image_size", "patch_size")
    return all(saved.get(k) == expected.get(k) for k in keys)


def base_backbones(root: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    """WavLM-base, BERT-base (with a word-piece tokenizer over a small vocabulary) and
    ViT-base/16 at 224 px with random weights under ``root``; folders already there with the
    same architecture are reused. Returns the folders and, per backbone, its parameter count
    and whether it was reused."""
    import transformers

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *COMMON_WORDS,
             *(w for words in CLASS_WORDS.values() for w in words)]
    folders, info = {}, {}
    for i, kind in enumerate(BACKBONES):
        folder = root / kind
        folders[kind] = folder
        reused = _reusable(folder, kind, len(vocab))
        if not reused:
            log(f"building the {kind} backbone ({BACKBONES[kind][0]} defaults, random weights)")
            tmp = root / f".{kind}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            torch.manual_seed(i)
            model = transformers.AutoModel.from_config(_backbone_config(kind, len(vocab)))
            model.save_pretrained(tmp)
            if kind == "text":
                (tmp / "vocab.txt").write_text("\n".join(vocab) + "\n")
                tokenizer = transformers.BertTokenizerFast(vocab_file=str(tmp / "vocab.txt"))
                tokenizer.save_pretrained(tmp)
            del model
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        config = json.loads((folder / "config.json").read_text())
        info[kind] = {"model_type": config["model_type"],
                      "layers": config["num_hidden_layers"], "hidden": config["hidden_size"],
                      "weights_mb": (folder / "model.safetensors").stat().st_size / 1e6,
                      "reused": reused}
    return folders, info


def make_corpus(root: Path, per_class: int, seconds: float) -> Path:
    """A manifest CSV with ``4 * per_class`` utterances: a ``seconds``-long wav, a folder of
    ``seconds * FPS`` 224 x 224 PNG frames and a short sentence each. Reused when a corpus with
    the same settings is already in ``root``."""
    import soundfile as sf
    from PIL import Image

    manifest = root / "corpus.csv"
    spec = {"per_class": per_class, "seconds": seconds, "frame_size": FRAME_SIZE, "fps": FPS}
    spec_file = root / "corpus.json"
    if manifest.is_file() and spec_file.is_file() and json.loads(spec_file.read_text()) == spec:
        return manifest
    log(f"writing the corpus: {4 * per_class} utterances of {seconds:g} s under {root}")
    shutil.rmtree(root, ignore_errors=True)
    n_frames = max(1, round(seconds * FPS))
    rows = []
    for label in range(len(CLASSES)):
        for i in range(per_class):
            utt = f"utt{label}{i:03d}"
            wave, colour, sentence = utterance_signals(label, i, seconds=seconds, vary=False)
            audio = root / "audio" / f"{utt}.wav"
            audio.parent.mkdir(parents=True, exist_ok=True)
            sf.write(audio, wave, RATE)
            frames = root / "frames" / utt
            frames.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng(10_000 * label + i)
            base = np.broadcast_to(colour.astype(np.int16), (FRAME_SIZE, FRAME_SIZE, 3))
            for f in range(n_frames):
                pixels = base + rng.integers(-12, 13, base.shape, dtype=np.int16)
                row = (f * FRAME_SIZE) // n_frames
                pixels[row:row + 8] = 255  # a bar moving down the clip
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
                    frames / f"frame{f:03d}.png")
            rows.append([utt, CLASSES[label], f"audio/{utt}.wav", f"frames/{utt}", sentence])
    with manifest.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "label", "audio", "video", "text"])
        writer.writerows(rows)
    spec_file.write_text(json.dumps(spec) + "\n")
    return manifest


# -- measurement --------------------------------------------------------------------------
def folder_bytes(folder: Path) -> tuple[int, int, int]:
    """(files, apparent bytes, allocated bytes) of everything under ``folder``."""
    files = apparent = allocated = 0
    for path in folder.rglob("*"):
        if path.is_file():
            stat = path.stat()
            files += 1
            apparent += stat.st_size
            allocated += stat.st_blocks * 512
    return files, apparent, allocated


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_window_peak() -> bool:
    """Reset the kernel's peak-RSS mark (``VmHWM``) so that :func:`window_peak_mb` gives the
    peak of what follows (Linux only; False where it cannot)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def window_peak_mb() -> float | None:
    """``VmHWM`` of ``/proc/self/status`` in MB (KiB / 1024): the peak RSS since the last
    :func:`reset_window_peak`."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def cpu_busy_seconds() -> tuple[float, float]:
    """(this process's CPU seconds, the whole machine's busy CPU seconds from /proc/stat): their
    difference over a run is the CPU time other processes took, a sign of contention."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    own = usage.ru_utime + usage.ru_stime
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
        busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        busy = float("nan")
    return own, busy


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_config(args: argparse.Namespace, manifest: Path, backbones: dict[str, Path],
               cache: Path, name: str) -> RunConfig:
    modalities = {m: {"signal": signal, "backbone": str(backbones[kind]),
                      "trainable_layers": TRAINABLE_LAYERS}
                  for m, (signal, kind) in MODALITIES.items()}
    return RunConfig.from_dict({
        "raw": {"corpus": "manifest", "path": str(manifest), "classes": list(CLASSES),
                "modalities": modalities, "n_frames": N_FRAMES, "max_seconds": MAX_SECONDS,
                "cache_dir": str(cache)},
        "train": {"method": "boomda", "epochs": args.epochs, "batch_size": args.batch_size,
                  "device": args.device, "seed": 0, "precision": args.precision},
        "out": str(args.work / "runs"), "name": name,
    })


def timed_run(config: RunConfig, label: str, epochs: int) -> dict[str, Any]:
    """One run; the times of the run itself (``results.json``) and the split of its
    non-training time into the pair's build and what follows training."""
    step_ends: list[float] = []

    def on_step(step: boomda.StepLog) -> None:
        step_ends.append(time.perf_counter())
        log(f"{label}: step {step.step + 1} (epoch {step.epoch + 1}) {step.seconds:.1f} s, "
            f"loss {step.loss:.3f}")

    start = time.perf_counter()
    result = run_experiment(config, on_step=on_step)
    end = time.perf_counter()
    results = json.loads((result.folder / "results.json").read_text())
    steps = [json.loads(line)["seconds"]
             for line in (result.folder / "metrics.jsonl").read_text().splitlines()]
    train = results["train_seconds"]
    train_start = step_ends[-1] - train
    cache = results["raw"]["cache"]
    return {
        "seconds": end - start,
        "wall_seconds": results["wall_seconds"],
        "train_seconds": train,
        "prep_seconds": results["wall_seconds"] - train,
        "pair_build_seconds": train_start - start,
        "after_train_seconds": end - step_ends[-1],
        "epochs": epochs,
        "steps": results["steps"],
        "steps_per_epoch": results["steps"] // epochs,
        "train_seconds_per_epoch": train / epochs,
        "seconds_per_step": results["seconds_per_step"],
        "step_seconds": steps,
        "median_step_seconds": statistics.median(steps),
        "cache_hits": cache["hits"],
        "cache_misses": cache["misses"],
        "n_utterances": results["raw"]["n_utterances"],
        "n_target": results["target"]["n"],
        "n_source_holdout": (results["source_holdout"] or {}).get("n", 0),
        "target": results["target"],
        "run_folder": str(result.folder),
    }


# -- report -------------------------------------------------------------------------------
def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def render(report: dict[str, Any]) -> str:
    m = report["meta"]
    lines = [
        f"Raw corpus, time per epoch on {m['gpu'] or 'CPU'}: {m['n_utterances']} utterances "
        f"({m['audio_seconds']:g} s audio, {N_FRAMES} of {m['frames_per_clip']} frames "
        f"{FRAME_SIZE}x{FRAME_SIZE}, short sentences), WavLM-base + ViT-base/16 + BERT-base "
        f"(random weights, last {TRAINABLE_LAYERS} of 12 layers trained), method boomda, "
        f"batch {m['batch_size']}, {m['epochs']} epochs; {m['torch_threads']} torch threads on "
        f"{m['cpu_model']} ({m['cpu_count']} logical CPUs); torch {m['torch']}, transformers "
        f"{m['transformers']}; {m['date']}, script wall time {m['script_seconds']:.0f} s.",
        "",
        "| cache | preparation s (wall − train) | of which: pair build s | evaluate + save s "
        "| train s / epoch | s / step (mean) | s / step (median) | steps / epoch "
        "| cache hits / misses | cache MB | peak RSS MB (this run) |",
        "|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for label in ("cold", "warm"):
        r = report["runs"][label]
        lines.append(
            f"| {label} | {r['prep_seconds']:.1f} | {r['pair_build_seconds']:.1f} "
            f"| {r['after_train_seconds']:.1f} | {r['train_seconds_per_epoch']:.1f} "
            f"| {r['seconds_per_step']:.2f} | {r['median_step_seconds']:.2f} "
            f"| {r['steps_per_epoch']} | {r['cache_hits']} / {r['cache_misses']} "
            f"| {r['cache_mb']:.1f} | {_mb(r['run_peak_rss_mb'])} |")
    c, w = report["runs"]["cold"], report["runs"]["warm"]
    lines += [
        "",
        f"The warm cache saves {c['pair_build_seconds'] - w['pair_build_seconds']:.1f} s of "
        f"pair build ({c['pair_build_seconds'] / max(w['pair_build_seconds'], 1e-9):.1f}x "
        f"faster); the cache holds {c['cache_files']} entries, "
        f"{c['cache_mb'] / max(1, m['n_utterances']):.2f} MB per utterance. Peak RSS of the "
        f"whole process (getrusage): {m['peak_rss_mb']:.0f} MB. CPU time of this process / "
        f"of other processes during the runs: cold {c['process_cpu_seconds']:.0f} / "
        f"{c['other_cpu_seconds']:.0f} s, warm {w['process_cpu_seconds']:.0f} / "
        f"{w['other_cpu_seconds']:.0f} s.",
    ]
    if c["cache_hits"]:
        lines.append(f"The cold run's {c['cache_hits']} hits are utterances whose prepared input "
                     f"equals an earlier one's (repeated transcripts in the clean half) and share "
                     f"its entry.")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--work", type=Path, default=Path("bench/raw_epoch_time"),
                        help="work folder: backbones, corpus, cache, runs")
    parser.add_argument("--utterances", type=int, default=48,
                        help="corpus size, a multiple of 4 (default 48: 12 per class)")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="audio and clip length per utterance (default 3)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (default 0: torch's default)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                        help="training precision (bf16: the network autocast to bfloat16)")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"),
                        help="folder of raw_epoch_time.json and .md (default docs/benchmarks)")
    args = parser.parse_args(argv)
    if args.utterances < 8 or args.utterances % len(CLASSES):
        parser.error(f"--utterances must be a multiple of {len(CLASSES)}, at least 8")
    if args.epochs < 1 or args.batch_size < 2 or args.seconds <= 0 or args.threads < 0:
        parser.error("--epochs >= 1, --batch-size >= 2, --seconds > 0, --threads >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    script_start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    args.work.mkdir(parents=True, exist_ok=True)
    setup_start = time.perf_counter()
    backbones, backbone_info = base_backbones(args.work / "backbones")
    manifest = make_corpus(args.work / f"corpus-{args.utterances}x{args.seconds:g}s",
                           args.utterances // len(CLASSES), args.seconds)
    setup_seconds = time.perf_counter() - setup_start
    rss_setup = peak_rss_mb()
    cache = args.work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(args.work / "runs", ignore_errors=True)

    runs = {}
    for label in ("cold", "warm"):
        log(f"{label} cache run")
        resettable = reset_window_peak()
        cuda = args.device.startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        own0, busy0 = cpu_busy_seconds()
        run = timed_run(run_config(args, manifest, backbones, cache, label), label, args.epochs)
        own1, busy1 = cpu_busy_seconds()
        run.update(process_cpu_seconds=own1 - own0,
                   process_cpu_utilisation=(own1 - own0) / run["seconds"],
                   other_cpu_seconds=max(0.0, (busy1 - busy0) - (own1 - own0)),
                   load_average=list(os.getloadavg()))
        files, apparent, allocated = folder_bytes(cache)
        run.update(cache_files=files, cache_mb=apparent / 1e6, cache_mb_allocated=allocated / 1e6,
                   peak_rss_mb=peak_rss_mb(),
                   run_peak_rss_mb=window_peak_mb() if resettable else None,
                   gpu_peak_mb=torch.cuda.max_memory_allocated() / 1e6 if cuda else None)
        runs[label] = run
        log(f"{label}: wall {run['wall_seconds']:.1f} s, train {run['train_seconds']:.1f} s, "
            f"cache {run['cache_hits']} hits / {run['cache_misses']} misses")
    by_modality = {m: folder_bytes(cache / m)[1] / 1e6 for m in MODALITIES}

    report = {
        "meta": {
            "n_utterances": args.utterances, "audio_seconds": args.seconds,
            "frames_per_clip": max(1, round(args.seconds * FPS)), "frame_size": FRAME_SIZE,
            "n_frames": N_FRAMES, "max_seconds": MAX_SECONDS,
            "trainable_layers": TRAINABLE_LAYERS, "method": "boomda",
            "batch_size": args.batch_size, "epochs": args.epochs, "device": args.device,
            "gpu": (torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None),
            "backbones": backbone_info, "setup_seconds": setup_seconds,
            "peak_rss_mb_after_setup": rss_setup, "cache_mb_by_modality": by_modality,
            "torch_threads": torch.get_num_threads(), "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(), "torch": str(torch.__version__),
            "transformers": transformers.__version__, "boomda": boomda.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "date": time.strftime("%Y-%m-%d"),
            "identical_target_results": runs["cold"]["target"] == runs["warm"]["target"],
        },
        "runs": runs,
    }
    report["meta"]["peak_rss_mb"] = peak_rss_mb()
    report["meta"]["script_seconds"] = time.perf_counter() - script_start
    text = render(report)
    print(text)
    atomic_write_text(args.out / "raw_epoch_time.json", json.dumps(report, indent=1) + "\n")
    atomic_write_text(args.out / "raw_epoch_time.md", text + "\n")
    log(f"wrote {args.out / 'raw_epoch_time.json'} and .md; "
        f"script wall time {report['meta']['script_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
