"""One experiment run: build the domain pair from a :class:`RunConfig`, train, evaluate, and write
the run folder (resolved config, per-step metrics, results, checkpoint)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import socket
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from boomda.atomic import atomic_write_text
from boomda.config import RunConfig
from boomda.data.container import MultimodalData
from boomda.data.mfeat import load_multiple_features
from boomda.data.pair import DomainPair
from boomda.errors import BoomdaError, DataError
from boomda.estimator import DomainAdapter
from boomda.train import StepLog


def load_dataset(dataset: str, labels_required: bool = True) -> MultimodalData:
    """``mfeat`` (embedded), ``htad`` (read from the ``multiviewstacking`` package, see
    :mod:`boomda.data.htad`) or a ``.npz`` file with one array per modality and ``labels``
    (optional when ``labels_required`` is False)."""
    if dataset == "mfeat":
        return load_multiple_features()
    if dataset == "htad":
        from boomda.data.htad import load_htad

        return load_htad()
    path = Path(dataset)
    if not path.is_file():
        raise DataError(f"dataset {dataset!r}: no such file (use 'mfeat' for the embedded data "
                        f"or the path of a .npz file)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot read as .npz ({exc or type(exc).__name__})") from None
    if "labels" not in arrays and labels_required:
        raise DataError(f"{path}: has no 'labels' array (found {', '.join(arrays)})")
    labels = arrays.pop("labels", None)
    if labels is not None and labels_required:  # training data: the labels define the classes
        check_class_labels(labels, f"{path}: labels")
    return MultimodalData(arrays, labels, name=str(path))


def check_class_labels(labels: np.ndarray, what: str) -> None:
    """Raise unless ``labels`` are integers 0..K-1 with every class present (a stray value such
    as 99 among 0..3 would otherwise make a 100-class model)."""
    values = np.asarray(labels)
    if values.size == 0:
        return
    integral = values.dtype.kind in "iu" or (values.dtype.kind == "f"
                                             and bool(np.all(values == np.round(values))))
    if not integral:
        raise DataError(f"{what} must be integer class indices, got {values.dtype} values")
    values = values.astype(np.int64)
    low, high = int(values.min()), int(values.max())
    rule = f"{what} must be 0..K-1 with every class present"
    if low < 0:
        raise DataError(f"{rule}; found the negative label {low}")
    empty = np.flatnonzero(np.bincount(values, minlength=high + 1) == 0)
    if empty.size:
        more = f" and {empty.size - 1} more" if empty.size > 1 else ""
        raise DataError(f"{rule}; labels run from 0 to {high} with no sample of class "
                        f"{int(empty[0])}{more}")


#: fewest samples the split-and-shift protocol accepts (two halves of at least 2 samples each,
#: a covariance needs 2)
MIN_SAMPLES = 4


def build_pair(config: RunConfig) -> DomainPair:
    """The domain pair a run config describes (the paper's split-and-shift protocol)."""
    data = load_dataset(config.data.dataset)
    unknown = [m for m in config.data.shifts if m not in data.views]
    if unknown:
        raise DataError(f"data.shifts: unknown modality {unknown[0]!r}; available: "
                        f"{', '.join(data.modalities)}")
    if len(data) < MIN_SAMPLES:
        raise DataError(f"dataset {config.data.dataset!r}: {len(data)} samples; the protocol "
                        f"splits them into a source and a target half and needs at least "
                        f"{MIN_SAMPLES}")
    modalities = config.data.modalities or data.modalities
    if len(modalities) < 2:
        raise DataError(f"data.modalities: a multimodal model needs at least 2 modalities, got "
                        f"{list(modalities)}")
    data = data.select(modalities)
    shifts = {m: s for m, s in config.data.shifts.items() if m in modalities}
    return DomainPair.from_protocol(data, shifts, seed=split_seed(config),
                                    holdout=config.data.holdout)


def split_seed(config: RunConfig) -> int:
    """The seed of the split and the target shifts: ``data.split_seed``, else the training seed."""
    return config.train.seed if config.data.split_seed is None else int(config.data.split_seed)


def environment() -> dict:
    """What makes runs comparable: versions and machine."""
    from boomda import __version__

    return {
        "boomda_version": __version__,
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "machine": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


@dataclass
class RunResult:
    folder: Path
    results: dict
    adapter: DomainAdapter


def default_run_name(config: RunConfig) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    mods = "+".join(config.data.modalities) if config.data.modalities else "all"
    return f"{config.train.method}-{mods}-seed{config.train.seed}-{stamp}"


def run_experiment(
    config: RunConfig,
    *,
    progress: bool = False,
    on_step: Callable[[StepLog], None] | None = None,
) -> RunResult:
    """Train and evaluate one configuration and write its run folder under ``config.out``.

    Folder contents: ``config.yaml`` (resolved config, seed, versions), ``metrics.jsonl`` (one
    line per step; written as ``metrics.jsonl.partial`` while training), ``results.json`` and
    ``model.pt``. Every final file appears atomically.
    """
    wall_start = time.perf_counter()
    config.train.validate()
    encoders = None
    if config.raw is not None:
        from boomda.data.raw_pair import build_raw_pair
        from boomda.train import resolve_device

        raw_pair = build_raw_pair(config.raw, seed=split_seed(config),
                                  holdout=config.data.holdout,
                                  device=resolve_device(config.train.device), progress=progress)
        pair, encoders = raw_pair.pair, raw_pair.encoders
        config.data.dataset = f"raw:{config.raw.corpus}"
        config.data.modalities = list(pair.modalities)
        config.data.shifts = dict(pair.info["corruptions"])
    else:
        pair = build_pair(config)
    config.train.validate(n_modalities=len(pair.modalities))
    if not config.data.modalities:
        config.data.modalities = list(pair.modalities)
    folder = Path(config.out) / (config.name or default_run_name(config))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BoomdaError(f"cannot create the run folder {str(folder)[:120]!r} (option out / "
                          f"name): {exc.strerror or exc}") from None
    resolved = {**config.to_dict(), "environment": environment(), "pair": pair.info}
    atomic_write_text(folder / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))

    partial = folder / "metrics.jsonl.partial"
    start = time.perf_counter()
    with partial.open("w") as fh:
        def record(log: StepLog) -> None:
            fh.write(json.dumps(log.to_dict()) + "\n")
            if on_step is not None:
                on_step(log)

        adapter = DomainAdapter(config.train).fit(pair, encoders=encoders, progress=progress,
                                                  on_step=record)
    train_seconds = time.perf_counter() - start
    os.replace(partial, folder / "metrics.jsonl")

    last = adapter.history[-1]
    from boomda.select import score_model

    results = {
        "method": config.train.method,
        "gamma_solver": config.train.gamma_solver,
        "gamma_normalization": config.train.gamma_normalization,
        "ca_form": config.train.ca_form,
        **config.tags,
        "modalities": list(pair.modalities),
        "seed": config.train.seed,
        "target": adapter.evaluate(pair.target, "target"),
        "source_holdout": (adapter.evaluate(pair.source_holdout, "source_holdout")
                           if pair.source_holdout is not None and len(pair.source_holdout)
                           else None),
        "final_gamma": (dict(zip(list(pair.modalities) + ["fused"], last.gamma, strict=True))
                        if last.gamma is not None else None),
        # label-free scores of the trained model (boomda.select): source labels and unlabelled
        # target data only
        "validators": {k: (v if math.isfinite(v) else None)
                       for k, v in score_model(adapter, pair).items()},
        "raw": ({k: pair.info[k] for k in ("n_utterances", "skipped_missing",
                                           "skipped_unreadable", "cache")}
                if config.raw is not None else None),
        "steps": len(adapter.history),
        "train_seconds": train_seconds,
        "seconds_per_step": train_seconds / max(1, len(adapter.history)),
    }
    if config.raw is not None:
        adapter.metadata = {"classes": pair.info["classes"], "raw": dataclasses.asdict(config.raw)}
    adapter.save(folder / "model.pt")
    results["wall_seconds"] = time.perf_counter() - wall_start
    atomic_write_text(folder / "results.json", json.dumps(results, indent=2) + "\n")
    return RunResult(folder, results, adapter)
