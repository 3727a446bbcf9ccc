"""One experiment run: resolve a :class:`RunConfig` once (:func:`boomda.resolve.resolve`), load
its data (:func:`boomda.data.load.load_run_data`), train, evaluate, and write the run folder
(resolved config, per-step metrics, results, checkpoint)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from boomda import distributed, rundir
from boomda.atomic import atomic_write, atomic_write_text
from boomda.board import TensorBoardLog, require_tensorboard
from boomda.config import RunConfig
from boomda.data.files import no_shift_warning
from boomda.data.load import RunData, load_run_data, split_seed
from boomda.errors import BoomdaError
from boomda.estimator import DomainAdapter
from boomda.resolve import ResolvedRun, resolve
from boomda.train import StepLog


def environment() -> dict:
    """What makes runs comparable: versions and machine."""
    from boomda import __version__

    world = distributed.world()
    return {
        "boomda_version": __version__,
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "machine": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        # data-parallel processes (boomda.distributed); 1: one process
        "processes": world.size if world is not None else 1,
    }


@dataclass
class RunResult:
    """A finished run: its folder, its results (``summary``; ``results`` is the same as the
    JSON object of ``results.json``) and the trained model."""

    folder: Path
    results: dict
    adapter: DomainAdapter
    summary: rundir.RunResults


def default_run_name(config: RunConfig) -> str:
    """``method-modalities-seedN-<time>-<random>`` (see :func:`boomda.rundir.default_run_name`)."""
    return rundir.default_run_name(config.train.method, config.data.modalities,
                                   config.train.seed)


def prepare(config: RunConfig | ResolvedRun, *,
            progress: bool = False) -> tuple[ResolvedRun, RunData]:
    """The resolved run of ``config`` with the data settings its data fill in
    (:meth:`ResolvedRun.with_data`), and its data; the method's options are checked against
    the pair's modalities."""
    resolved = resolve(config)
    if resolved.config.logging.tensorboard:  # before the data are prepared
        require_tensorboard()
    data = load_run_data(resolved.config, progress=progress)
    resolved.check_modalities(len(data.pair.modalities))
    return resolved.with_data(data.dataset, data.modalities, data.shifts), data


def run_experiment(
    config: RunConfig | ResolvedRun,
    *,
    progress: bool = False,
    on_step: Callable[[StepLog], None] | None = None,
    overwrite: bool = False,
) -> RunResult | None:
    """Train and evaluate one configuration and write its run folder under ``config.out``.

    ``config`` is resolved once (:func:`boomda.resolve.resolve`) and never changed. The folder
    (``config.name``, else a name that cannot collide) is created exclusively: an
    existing one is an error unless ``overwrite``. Contents: see :mod:`boomda.rundir`. Every
    final file appears atomically; a killed run keeps its last checkpoint, from which
    :func:`resume_experiment` continues it. In data-parallel training (:mod:`boomda.distributed`)
    rank 0 writes the folder and returns the result; the other ranks train and return None.
    """
    wall_start = time.perf_counter()
    resolved = resolve(config)
    fingerprint = rundir.config_fingerprint(resolved.config)
    given_device = resolved.train.device
    resolved = resolved.with_device(distributed.setup(given_device))
    if not distributed.is_writer():
        _follow(resolved, None)
        return None
    if resolved.config.name is not None:  # a bad name fails before the data are prepared
        _check_name(resolved.config)
    resolved, data = prepare(resolved, progress=progress)
    name = resolved.config.name or default_run_name(resolved.config)
    folder = rundir.create_run_folder(Path(resolved.config.out) / name, overwrite=overwrite)
    same = no_shift_warning(data.pair)
    if same is not None:
        import warnings

        warnings.warn(same, stacklevel=2)
    with rundir.run_lock(folder):
        identity = rundir.identity(rundir.new_run_id(), fingerprint, name)
        settings = resolved.config.to_dict()
        settings["train"]["device"] = given_device  # as asked; each rank's: processes
        # the fingerprint of the settings as config.yaml holds them (read back from the YAML
        # text): --resume refuses a config.yaml edited since
        identity["settings_fingerprint"] = rundir.config_fingerprint(
            yaml.safe_load(yaml.safe_dump(settings)))
        resolved_yaml = {**settings, "run": identity, "environment": environment(),
                         "pair": data.pair.info}
        atomic_write_text(folder / rundir.CONFIG, yaml.safe_dump(resolved_yaml,
                                                                 sort_keys=False))
        return _train(resolved, data, folder, identity, None, progress, on_step, wall_start)


def _check_name(config: RunConfig) -> None:
    name = str(config.name)
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise BoomdaError(f"option name {name!r}: a run folder's name, without '/'")
    if len(name.encode()) > 255:
        raise BoomdaError(f"option name: {len(name.encode())} bytes; a folder name holds at "
                          f"most 255")


def resume_experiment(
    folder: str | Path,
    *,
    progress: bool = False,
    on_step: Callable[[StepLog], None] | None = None,
) -> RunResult | None:
    """Continue the unfinished run in ``folder`` from its last checkpoint, with the config it was
    started with. The result equals the uninterrupted run's (on CPU, bit for bit: parameters,
    metrics and scores; only the timings differ)."""
    folder = Path(folder)
    if not (folder / rundir.CONFIG).is_file():
        raise BoomdaError(f"--resume {folder}: not a run folder (no {rundir.CONFIG})")
    if rundir.is_tuned_folder(folder):
        raise BoomdaError(f"--resume {folder}: a tuned run (boomda run --select); continue it "
                          f"with boomda run --resume or boomda.tune.resume_tuned")
    if distributed.launched_by_torchrun() and os.environ.get("RANK") != "0":
        return _resume(folder, progress, on_step, writer=False)  # rank 0 writes and locks
    with rundir.run_lock(folder):
        return _resume(folder, progress, on_step, writer=True)


def _resume(folder: Path, progress: bool, on_step, *, writer: bool) -> RunResult | None:
    wall_start = time.perf_counter()
    status = rundir.run_status(folder)
    if status == rundir.DONE:
        if writer:  # what a kill right after the run finished left behind
            (folder / rundir.CHECKPOINT).unlink(missing_ok=True)
            rundir.remove_leftovers(folder)
        raise BoomdaError(f"--resume {folder}: the run is already finished "
                          f"({rundir.RESULTS} exists)")
    if not (folder / rundir.CHECKPOINT).is_file():
        raise BoomdaError(f"--resume {folder}: no {rundir.CHECKPOINT}; the run stopped before "
                          f"its first checkpoint (or was started with checkpoint_every: 0). "
                          f"Start it again with --overwrite")
    resolved = rundir.read_yaml_mapping(folder / rundir.CONFIG)
    identity = resolved.pop("run", None)
    if not isinstance(identity, dict) or "id" not in identity:
        raise BoomdaError(f"{folder / rundir.CONFIG}: has no run identity; cannot resume")
    environment_then = resolved.pop("environment", {}) or {}
    resolved.pop("pair", None)
    settings_now = rundir.config_fingerprint(resolved)
    config = RunConfig.from_dict(resolved, where=str(folder / rundir.CONFIG))
    try:
        state = torch.load(folder / rundir.CHECKPOINT, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same message
        raise BoomdaError(f"{folder / rundir.CHECKPOINT}: not a readable checkpoint "
                          f"({type(exc).__name__}); start the run again with --overwrite") \
            from None
    if not isinstance(state, dict) or state.get("run_id") != identity["id"]:
        raise BoomdaError(f"{folder / rundir.CHECKPOINT}: belongs to another run than "
                          f"{rundir.CONFIG}; start the run again with --overwrite")
    started = state.get("settings_fingerprint")
    if started is not None and (started != settings_now
                                or identity.get("settings_fingerprint") != started):
        raise BoomdaError(f"{folder / rundir.CONFIG}: its settings were changed after the run "
                          f"started (they no longer match its checkpoint's); --resume continues "
                          f"a run only with the settings it started with: start a new run "
                          f"instead")
    run = resolve(config, where=str(folder / rundir.CONFIG))
    run = run.with_device(distributed.setup(run.train.device))
    if not distributed.is_writer():
        _follow(run, state)
        return None
    now = environment()
    changed = [k for k in ("boomda_version", "torch_version") if environment_then.get(k) != now[k]]
    if changed:
        import warnings

        warnings.warn(f"{folder}: resumed with other versions ({', '.join(changed)}); the "
                      f"result may differ from an uninterrupted run", stacklevel=2)
    rundir.remove_leftovers(folder)  # atomic writes cut by the kill
    run, data = prepare(run, progress=progress)
    return _train(run, data, folder, identity, state, progress, on_step, wall_start)


def _follow(resolved: ResolvedRun, resume: dict | None) -> None:
    """A data-parallel rank other than 0 (:mod:`boomda.distributed`): the same data and the
    same training steps as rank 0, which alone writes the run folder and evaluates."""
    resolved, data = prepare(resolved)
    DomainAdapter.from_checked(resolved.train, resolved.options).fit(
        data.pair, encoders=data.encoders, resume=resume)


def _train(resolved: ResolvedRun, data: RunData, folder: Path, identity: dict,
           resume: dict | None, progress: bool, on_step, wall_start: float) -> RunResult:
    config, pair = resolved.config, data.pair
    partial = folder / rundir.METRICS_PARTIAL
    kept: list[str] | None = None
    if resume is not None:
        # the metrics of the steps before the checkpoint, from the checkpoint's own logs (the
        # files may have lost lines to the kill, or been renamed by an unfinished finish);
        # those logged after it are dropped
        kept = [_metrics_line(StepLog(**fields)) for fields in json.loads(resume["history"])]
        atomic_write_text(partial, "".join(kept))
        (folder / rundir.METRICS).unlink(missing_ok=True)
    checkpoint_file = folder / rundir.CHECKPOINT
    before = float(resume.get("train_seconds", 0.0)) if resume is not None else 0.0
    start = time.perf_counter()
    with (partial.open("a" if resume is not None else "w") as fh,
          _tensorboard(config, folder, list(pair.modalities), kept) as board):
        def record(log: StepLog) -> None:
            fh.write(_metrics_line(log))
            if board is not None:  # the same values as metrics.jsonl
                board.write(log.to_dict())
            if on_step is not None:
                on_step(log)

        def save_checkpoint(state: dict) -> None:
            fh.flush()
            os.fsync(fh.fileno())
            if board is not None:
                board.flush()
            state["run_id"] = identity["id"]
            state["settings_fingerprint"] = identity.get("settings_fingerprint")
            state["train_seconds"] = before + time.perf_counter() - start
            atomic_write(checkpoint_file, lambda tmp: torch.save(state, tmp))

        adapter = DomainAdapter.from_checked(resolved.train, resolved.options).fit(
            pair, encoders=data.encoders, progress=progress, on_step=record,
            checkpoint=save_checkpoint, checkpoint_every=config.checkpoint_every,
            resume=resume)
        fh.flush()
        os.fsync(fh.fileno())
    train_seconds = before + time.perf_counter() - start

    # The finish. Each file appears atomically, and results.json, which makes the folder a
    # finished run, comes last: a run stopped at any point before it is unfinished, and
    # --resume finishes it from the checkpoint written at the end of training.
    last = adapter.history[-1]
    method = adapter.method
    assert method is not None, "fit() sets the method"
    from boomda.select import score_model

    results = rundir.RunResults(
        run=identity,
        method=config.train.method,
        options=dataclasses.asdict(method.options),
        tags=dict(config.tags),
        modalities=list(pair.modalities),
        seed=config.train.seed,
        # the target's labels, when it has them, serve this score only
        target=(adapter.evaluate(pair.target, "target") if pair.target.labels is not None
                else None),
        source_holdout=(adapter.evaluate(pair.source_holdout, "source_holdout")
                        if pair.source_holdout is not None and len(pair.source_holdout)
                        else None),
        final_gamma=(dict(zip(list(pair.modalities) + ["fused"], last.gamma, strict=True))
                     if last.gamma is not None else None),
        # label-free scores of the trained model (boomda.select): source labels and unlabelled
        # target data only
        validators={k: (v if math.isfinite(v) else None)
                    for k, v in score_model(adapter, pair).items()},
        raw=({k: pair.info[k] for k in ("n_utterances", "skipped_missing", "skipped_unreadable",
                                        "cache", "backbones")}
             if config.raw is not None else None),
        steps=len(adapter.history),
        resumed_at_step=int(resume["step"]) if resume is not None else None,
        train_seconds=train_seconds,
        seconds_per_step=train_seconds / max(1, len(adapter.history)),
        classes=list(pair.classes or ()),
        selected_epoch=adapter.selected_epoch,
    )
    if config.raw is not None:
        adapter.metadata["raw"] = dataclasses.asdict(config.raw)
    adapter.save(folder / rundir.MODEL)
    # the per-modality shift of the pair and of the learned representations (no labels); a
    # diagnostic: when it cannot be computed, the run says why and still finishes (a failed
    # write, such as a full disk, stops the run like any other)
    from boomda.diagnose import diagnose

    try:
        diagnosis = diagnose(pair.source, pair.target, adapter, seed=split_seed(config))
    except BoomdaError as error:
        import warnings

        warnings.warn(f"{folder}: no {rundir.DIAGNOSIS} ({error})", stacklevel=2)
    else:
        diagnosis.write_json(folder / rundir.DIAGNOSIS)
    os.replace(partial, folder / rundir.METRICS)
    results.wall_seconds = time.perf_counter() - wall_start
    results.write(folder)
    checkpoint_file.unlink(missing_ok=True)
    rundir.remove_leftovers(folder)
    return RunResult(folder, results.to_dict(), adapter, results)


@contextmanager
def _tensorboard(config: RunConfig, folder: Path, modalities: list[str],
                 kept: list[str] | None) -> Iterator[TensorBoardLog | None]:
    """The run's TensorBoard log (None unless ``config.logging.tensorboard``), closed at the end;
    a resumed run's events are rewritten from the ``kept`` lines of metrics.jsonl first."""
    if not config.logging.tensorboard:
        yield None
        return
    replay = None if kept is None else [json.loads(line) for line in kept]
    board = TensorBoardLog(folder / rundir.TENSORBOARD, [*modalities, "fused"], replay)
    try:
        yield board
    finally:
        board.close()


def _metrics_line(log: StepLog) -> str:
    """The line of ``metrics.jsonl`` that records ``log``."""
    return json.dumps(log.to_dict()) + "\n"
