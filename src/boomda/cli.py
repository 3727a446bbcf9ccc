"""The command line: ``boomda run``, ``bench``, ``report``, ``predict`` and ``diagnose``."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boomda.config import (
    DEFAULT_MODALITIES,
    DEFAULT_SHIFTS,
    RunConfig,
    field_options,
    train_options,
)
from boomda.errors import BoomdaError, ConfigError, DataError
from boomda.launch import TERMINAL_ENV, check_parallel, launch_torchrun

if TYPE_CHECKING:
    from boomda.resolve import ResolvedRun


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (``boomda run: error: ...``), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _data_parent() -> _Parser:
    """The data options that ``boomda run`` and ``boomda diagnose`` share (a parent parser):
    they build the domain pair the same way (:func:`data_config`)."""
    parent = _Parser(add_help=False)
    parent.add_argument("--config", help="YAML file with 'data', 'train', 'out', 'name' "
                                         "sections (diagnose reads its data section)")
    parent.add_argument("--modalities", help="comma-separated modality names (default: "
                                             f"{','.join(DEFAULT_MODALITIES)} for the embedded "
                                             "data; every array of the file(s) for a .npz)")
    parent.add_argument("--shift", action="append", default=[], metavar="MODALITY=SPEC",
                        help="target shift of one modality, e.g. fou=noise:snr=1, fou=none or "
                             "pix=mask:fraction=0.4 (repeatable)")
    parent.add_argument("--source", metavar="S.npz",
                        help="your own labelled source domain: a .npz file of one (N, D) array "
                             "per modality plus labels (class names or integers), or heart:SITE "
                             "(a hospital of the UCI Heart Disease data: cleveland, hungary, "
                             "switzerland, va); with --target")
    parent.add_argument("--target", metavar="T.npz",
                        help="your own target domain: a .npz file with the same modalities (or "
                             "heart:SITE); its labels, if any, are used for scoring only")
    parent.add_argument("--dataset", help="one labelled data set split into source and target "
                                          "halves by the paper's protocol: 'mfeat' (embedded, "
                                          "the default), 'htad' or a .npz file of arrays + "
                                          "labels")
    parent.add_argument("--holdout", type=float,
                        help="fraction of the source kept for evaluation")
    parent.add_argument("--split-seed", dest="split_seed", type=int,
                        help="seed of the split and shifts (default: --seed)")
    return parent


def _parser() -> argparse.ArgumentParser:
    from boomda import __version__
    from boomda.config import LR_SCHEDULES, OPTIMIZERS
    from boomda.registry import BALANCERS, CA_FORMS, METHODS, NORMALIZATIONS
    from boomda.report import DEFAULT_VALIDATOR
    from boomda.select import VALIDATORS

    validators = (f"{DEFAULT_VALIDATOR} (the recommended one), "
                  + ", ".join(v for v in VALIDATORS if v != DEFAULT_VALIDATOR))

    parser = _Parser(
        prog="boomda",
        description="Heterogeneous multimodal unsupervised domain adaptation (Boomda, AAAI 2026).",
    )
    parser.add_argument("--version", action="version", version=f"boomda {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    data = _data_parent()
    run = sub.add_parser(
        "run", parents=[data], help="train and evaluate one configuration",
        description="Train one method on a domain pair (the embedded UCI Multiple Features data "
                    "by default) and write a run folder: config.yaml, metrics.jsonl, "
                    "results.json, model.pt. Options override the YAML config file.",
    )
    run.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                     help="a method option, e.g. trade_off=0.5 or entropy=true for cdan "
                          "(repeatable; see docs/baselines.md)")
    # every TrainConfig option of one number or word, with its help from the dataclass
    choices: dict[str, Iterable[str]] = {"method": METHODS, "gamma_solver": BALANCERS,
               "gamma_normalization": NORMALIZATIONS, "ca_form": CA_FORMS,
               "optimizer": OPTIMIZERS, "lr_schedule": LR_SCHEDULES}
    for name, kind, what, default in train_options():
        among = f"; one of: {', '.join(choices[name])}" if name in choices else ""
        run.add_argument("--" + name.replace("_", "-"), dest=name, type=kind,
                         help=f"{what}{among} (default {default})")
    # Boomda's options (BoomdaOptions), shortcuts for --option KEY=VALUE
    for name, kind, what, default in boomda_options():
        among = f"; one of: {', '.join(choices[name])}" if name in choices else ""
        run.add_argument("--" + name.replace("_", "-"), dest=f"option_{name}", type=kind,
                         metavar=name.upper(),
                         help=f"Boomda's option: {what}{among} (default {default})")
    run.add_argument("--out", help="parent folder of run folders (default runs)")
    run.add_argument("--name", help="run folder name (default: method-modalities-seed-time-"
                                    "random, never an existing folder)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace the run folder if it exists (without it, an existing folder "
                          "is an error)")
    run.add_argument("--checkpoint-every", dest="checkpoint_every", type=int, metavar="EPOCHS",
                     help="save the training state every EPOCHS epochs, for --resume; 0: never "
                          "(default 1)")
    run.add_argument("--resume", metavar="RUN_DIR",
                     help="continue the unfinished run in RUN_DIR from its last checkpoint, "
                          "with the settings it was started with (of the other options, only "
                          "--threads and --no-progress apply)")
    run.add_argument("--tensorboard", action="store_true",
                     help="also write the per-step metrics as TensorBoard events under "
                          "<run folder>/tensorboard/ (as logging: {tensorboard: true})")
    run.add_argument("--nproc", type=int, metavar="N",
                     help="data-parallel training in N processes on this machine (launches "
                          "torchrun --standalone --nproc-per-node N; one GPU each on a GPU "
                          "machine; batch_size stays the global batch; see docs/scale.md)")
    run.add_argument("--threads", type=int, metavar="N",
                     help="torch's CPU threads (default: 1 on feature-vector data, whose small "
                          "network runs fastest on one, above all on a busy machine; torch's "
                          "default for a raw corpus; OMP_NUM_THREADS when it is set)")
    run.add_argument("--select", metavar="VALIDATOR",
                     help="tune without target labels: train every point of the method's "
                          f"preset sweep (or --sweep), score each with this validator "
                          f"({validators}) and keep the best point's "
                          "model; the folder holds each point under points/ and selection.json")
    run.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2",
                     help="with --select: the values of a training option or method option to "
                          "try, in place of the preset (repeatable; every combination)")
    run.add_argument("--workers", type=int, metavar="N",
                     help="with --select: train N points at a time in worker processes "
                          "(default 1)")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bar (there is none when stderr is not a terminal)")

    bench = sub.add_parser(
        "bench", help="run a grid of methods x modality subsets x seeds",
        description="Run every cell of a grid (a YAML file: base config, methods, subsets, seeds) "
                    "in parallel worker processes. Finished cells are kept: rerunning the same "
                    "command after an interruption runs only the unfinished ones. Writes the "
                    "report (results.csv, report.md, figures) at the end.",
        epilog="The grid file's keys (name, base, methods, modalities, subsets, seeds, "
               "method_overrides, tasks, sweep, sweep_methods): docs/grids.md. To run one "
               "modality subset, name it in the file, e.g. 'subsets: [fou+kar]'; --methods "
               "and --seeds narrow a grid from the command line. Progress bars only on a "
               "terminal.",
    )
    bench.add_argument("grid", help="grid YAML file, e.g. configs/grid-table1.yaml")
    bench.add_argument("--out", help="grid folder (default bench/<grid name>)")
    bench.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                       help="parallel worker processes (default: min(2, CPUs))")
    bench.add_argument("--threads", type=int,
                       help="torch threads per worker (default: CPUs / workers)")
    bench.add_argument("--methods", help="only these methods (comma-separated)")
    bench.add_argument("--seeds", help="only these seeds (comma-separated)")
    bench.add_argument("--epochs", type=int, help="override the epochs of every cell")
    bench.add_argument("--select", metavar="VALIDATOR", default=None,
                       help="label-free validator that picks each task's grid point in a grid "
                            f"with a sweep: {VALIDATORS.choices()} (default "
                            f"{DEFAULT_VALIDATOR})")
    bench.add_argument("--tensorboard", action="store_true",
                       help="every cell writes TensorBoard events in its run folder; compare "
                            "them with: tensorboard --logdir <grid folder>/runs")
    bench.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help="run each cell as a task on a Ray cluster (pip install "
                            "'boomda[ray]'; see docs/scale.md): no ADDRESS starts a local "
                            "instance with --workers CPUs; auto, HOST:6379 or ray://HOST:10001 "
                            "connect (--out then on a file system every node mounts)")
    bench.add_argument("--ray-cpus-per-cell", type=float, default=None, metavar="N",
                       help="CPUs each cell's Ray task holds (default 1)")
    bench.add_argument("--ray-gpus-per-cell", type=float, default=None, metavar="N",
                       help="GPUs each cell's Ray task holds, fractions allowed (default 0)")
    bench.add_argument("--no-progress", action="store_true",
                       help="no progress bar (there is none when stderr is not a terminal)")

    predict = sub.add_parser(
        "predict", help="predict with a saved model",
        description="Predict the classes of the samples in a .npz file (one (N, D) array per "
                    "modality the model was trained on; a 'labels' array, if present, is used to "
                    "report weighted F1 and accuracy) and write them as CSV.",
    )
    predict.add_argument("model", help="model.pt of a run folder (or DomainAdapter.save)")
    predict.add_argument("data", help=".npz file with the model's modalities, or (a model trained "
                         "on a raw corpus) a manifest CSV of recordings: id, audio, video, text "
                         "and an optional label column")
    predict.add_argument("--out", help="CSV file for the predictions (default: print a summary)")
    predict.add_argument("--strategy", default="auto", choices=("auto", "heads", "fused"),
                         help="for a sample that lacks a modality (no array in the .npz, a row "
                              "of NaN, an empty manifest cell): heads averages the probabilities "
                              "of the present modalities' heads, fused uses the fused head with "
                              "the absent representations zeroed; auto: fused for a model trained "
                              "with modality_dropout, else heads (default auto)")
    predict.add_argument("--no-progress", action="store_true",
                         help="no progress bar (there is none when stderr is not a terminal)")

    diagnose = sub.add_parser(
        "diagnose", parents=[data],
        help="per-modality shift between source and target, without labels",
        description="Measure, per modality, how far the target is from the source: a domain "
                    "classifier's held-out accuracy and the CORAL distance on the inputs, and, "
                    "with a model (--run or --model), on its representations, with the "
                    "disagreement of each modality's head with the fused head. Prints a table "
                    "and writes diagnosis.json and diagnosis.png. The pair is built as boomda "
                    "run builds it (the same data options).",
    )
    diagnose.add_argument("--seed", type=int, help="seed (default 0)")
    diagnose.add_argument("--run", metavar="RUN_DIR",
                          help="a run folder: its pair and its model.pt (no data option applies)")
    diagnose.add_argument("--model", help="model.pt trained on this pair: adds the measures of "
                                          "its representations")
    diagnose.add_argument("--out", default="diagnosis",
                          help="folder for diagnosis.json and diagnosis.png (default diagnosis)")
    diagnose.add_argument("--no-progress", action="store_true",
                          help="no progress bar (there is none when stderr is not a terminal)")

    report = sub.add_parser(
        "report", help="tables, CSV and figures from a grid folder",
        description="Regenerate results.csv, report.md and figures from the finished runs of a "
                    "grid folder (also written at the end of every bench).",
    )
    report.add_argument("directory", help="grid folder written by boomda bench")
    report.add_argument("--select", metavar="VALIDATOR", default=None,
                        help="label-free validator that picks each task's grid point in a grid "
                             f"with a sweep: {VALIDATORS.choices()} (default "
                            f"{DEFAULT_VALIDATOR})")
    report.add_argument("--figure", action="append", default=None, metavar="CELL",
                        help="cell id to plot training dynamics for (repeatable)")
    return parser


def _key_value(item: str, flag: str, form: str) -> tuple[str, str]:
    """Split a repeatable ``KEY=VALUE`` option; ConfigError naming the flag otherwise."""
    key, eq, value = item.partition("=")
    if not eq or not key.strip():
        raise ConfigError(f"{flag} {item!r}: expected {form}")
    return key.strip(), value.strip()


def boomda_options() -> list[tuple[str, type, str, Any]]:
    """(name, type, help, default) of Boomda's options: the command line's shortcuts."""
    from boomda.methods.options import BoomdaOptions

    return field_options(BoomdaOptions)


def build_config(args: argparse.Namespace) -> RunConfig:
    """The run config of ``boomda run``'s options: the config file's, overridden by the data
    options (:func:`data_config`), the training and method options and the output options."""
    config = data_config(args)
    for name, kind, _, _ in train_options():
        value = getattr(args, name, None)
        if value is not None:
            setattr(config.train, name, kind(value))
    _run_options(args, config)
    return config


def data_config(args: argparse.Namespace) -> RunConfig:
    """The config file of ``--config`` (or the default config) with the data options that
    ``boomda run`` and ``boomda diagnose`` share (:func:`_data_parent`) applied."""
    config = RunConfig.from_yaml(args.config) if args.config else RunConfig()
    if config.raw is not None:
        for flag, given in (("--modalities", args.modalities), ("--dataset", args.dataset),
                            ("--shift", args.shift)):
            if given:
                raise ConfigError(f"{flag} does not apply to a raw corpus ({args.config}); set "
                                  f"raw.modalities and their corruption in the config file")
    if (args.source is None) != (args.target is None):
        raise ConfigError(f"{'--source' if args.target is None else '--target'} needs "
                          f"{'--target' if args.target is None else '--source'}: a real pair is "
                          f"two files, the labelled source and the target")
    if args.source is not None:
        if args.dataset is not None:
            raise ConfigError("--dataset (one data set, split by the protocol) and "
                              "--source/--target (your own pair) exclude each other")
        if config.raw is not None:
            raise ConfigError(f"--source/--target do not apply to a raw corpus ({args.config})")
        if not config.data.is_pair:  # the embedded data's views and shifts do not apply
            if config.data.modalities == DEFAULT_MODALITIES and args.modalities is None:
                config.data.modalities = []
            if config.data.shifts == DEFAULT_SHIFTS:
                config.data.shifts = {}
        config.data.source, config.data.target = args.source, args.target
        config.data.dataset = ""  # none: the pair's files are the data
    if args.modalities is not None:
        config.data.modalities = [m.strip() for m in args.modalities.split(",") if m.strip()]
        if config.data.shifts == DEFAULT_SHIFTS:  # the default shifts of the chosen views
            config.data.shifts = {m: s for m, s in DEFAULT_SHIFTS.items()
                                  if m in config.data.modalities}
    if args.dataset is not None:
        if config.data.is_pair:
            raise ConfigError(f"--dataset does not apply: {args.config} gives a real pair "
                              f"(data.source / data.target)")
        if args.dataset != "mfeat":
            # the embedded data's default views and shifts do not apply to another data set
            if config.data.modalities == DEFAULT_MODALITIES and args.modalities is None:
                config.data.modalities = []
            if config.data.shifts == DEFAULT_SHIFTS:
                config.data.shifts = {}
        config.data.dataset = args.dataset
    if args.holdout is not None:
        config.data.holdout = args.holdout
    if args.split_seed is not None:
        config.data.split_seed = args.split_seed
        config.data.validate()
    for item in args.shift:
        modality, spec = _key_value(item, "--shift", "MODALITY=SPEC, e.g. fou=noise:snr=1")
        if config.data.modalities and modality not in config.data.modalities:
            raise ConfigError(f"--shift {item}: modality {modality!r} is not among the "
                              f"modalities {','.join(config.data.modalities)}")
        config.data.shifts[modality] = spec
    return config


def _run_options(args: argparse.Namespace, config: RunConfig) -> None:
    """Apply ``boomda run``'s method and output options to ``config``."""
    for name, _, _, _ in boomda_options():
        value = getattr(args, f"option_{name}", None)
        if value is not None:
            config.train.options[name] = value
    for item in args.option:
        key, value = _key_value(item, "--option", "KEY=VALUE, e.g. trade_off=0.5")
        config.train.options[key] = value
    if args.out is not None:
        config.out = args.out
    if args.name is not None:
        config.name = args.name
    if args.tensorboard:
        config.logging.tensorboard = True
    if args.checkpoint_every is not None:
        if args.checkpoint_every < 0:
            raise ConfigError(f"--checkpoint-every {args.checkpoint_every}: must be 0 (never) "
                              f"or a number of epochs")
        config.checkpoint_every = args.checkpoint_every


def _resolve(config: RunConfig, args: argparse.Namespace) -> ResolvedRun:
    """``config`` checked once (:func:`boomda.resolve.resolve`), errors naming the config
    file ``--config`` when one was given."""
    from boomda.resolve import resolve

    return resolve(config, str(args.config) if args.config else "config")


def _run(args: argparse.Namespace) -> int:
    from boomda import distributed
    from boomda.run import resume_experiment, run_experiment
    from boomda.rundir import is_tuned_folder

    tuned = args.select is not None or (args.resume is not None
                                        and is_tuned_folder(args.resume))
    if not tuned:
        for flag, value in (("--sweep", args.sweep), ("--workers", args.workers)):
            if value:
                raise ConfigError(f"{flag} applies to a tuned run: add --select im (the "
                                  f"validator that chooses among the points)")
    elif args.nproc is not None:
        raise ConfigError("--nproc does not apply to a tuned run (--select); --workers N "
                          "trains N points at a time")
    if tuned:
        return _run_tuned(args)
    if args.nproc is not None and args.nproc < 1:
        raise ConfigError(f"--nproc {args.nproc}: give a number of processes, at least 1")
    if args.nproc is not None and args.nproc > 1 and not distributed.launched_by_torchrun():
        if args.resume is None:
            # bad options fail here, once, before the processes start
            check_parallel(_resolve(build_config(args), args), args.nproc)
        return launch_torchrun(args.nproc, args.argv)
    if args.resume is not None:
        _only_resume_options(args, ("nproc", "sweep"))
        _set_threads(args.threads, _resumed_is_raw(args.resume))
        progress = _progress(args) and distributed.is_writer()
        try:
            result = resume_experiment(args.resume, progress=progress)
        finally:
            distributed.teardown()
        if result is not None:
            print(f"resumed at step {result.summary.resumed_at_step}")
    else:
        config = build_config(args)
        _set_threads(args.threads, config.raw is not None)
        try:
            result = run_experiment(_resolve(config, args), progress=_progress(args),
                                    overwrite=args.overwrite)
        finally:
            distributed.teardown()
    if result is not None:  # None: a data-parallel rank other than 0
        print(result.summary.summary(result.folder))
        if args.resume is None and config.data.is_pair:
            print("defaults        chosen on other tasks; to tune them on this pair without "
                  "its target labels, add --select im")
    return 0


def _only_resume_options(args: argparse.Namespace, allowed: tuple[str, ...]) -> None:
    """Refuse, with ``--resume``, every option but ``--threads``, ``--no-progress`` and
    ``allowed``: a resumed run keeps its own settings."""
    keep = ("command", "resume", "no_progress", "threads", "argv", *allowed)
    lists = ("shift", "option", "sweep")
    given = [flag for flag, value in vars(args).items()
             if flag not in keep and flag not in lists and value not in (None, False)]
    given += [flag for flag in lists if flag not in allowed and getattr(args, flag, None)]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise ConfigError(f"--resume continues a run with its own settings; {flag} does not "
                          f"apply")


def _run_tuned(args: argparse.Namespace) -> int:
    """``boomda run --select VALIDATOR`` (or ``--resume`` of such a run)."""
    from boomda.sweep import Selection, parse_sweep
    from boomda.tune import resume_tuned, run_tuned

    workers = 1 if args.workers is None else args.workers
    if args.resume is not None:
        _only_resume_options(args, ("workers",))
        _set_threads(args.threads, _resumed_is_raw(args.resume))
        result = resume_tuned(args.resume, workers=workers, threads=args.threads,
                              progress=_progress(args))
    else:
        config = build_config(args)
        _set_threads(args.threads, config.raw is not None)
        points = parse_sweep(args.sweep, config.train.method) if args.sweep else None
        result = run_tuned(_resolve(config, args), args.select, points, workers=workers,
                           threads=args.threads, progress=_progress(args),
                           overwrite=args.overwrite)
    selection = Selection.from_dict(result.results["selection"])
    print(result.summary.summary(result.folder))
    print(f"tuned           {len(selection.labels)} points, chosen by {selection.validator} "
          f"(label-free; higher is better):")
    print(selection.table())
    print(f"chosen          {selection.chosen}: {selection.reason}")
    if any(t is not None for t in selection.target):
        print("                (the target F1 column reads the target's labels: reporting "
              "only, never used to choose)")
    return 0


def _progress(args: argparse.Namespace) -> bool:
    """Progress bars: unless ``--no-progress``, and only on a terminal (not in a log file); the
    processes of ``--nproc`` ask their launcher's terminal."""
    if args.no_progress:
        return False
    return sys.stderr.isatty() or os.environ.get(TERMINAL_ENV) == "1"


def _set_threads(threads: int | None, raw: bool) -> None:
    """torch's CPU threads for ``boomda run``: ``threads`` if given; else OMP_NUM_THREADS's when
    set, torch's default (the cores) for a raw corpus (large backbones), and 1 otherwise (the
    feature-vector network is small: threads spend more time handing off than computing)."""
    import torch

    if threads is not None:
        if threads < 1:
            raise ConfigError(f"--threads {threads}: give a number of threads, at least 1")
        torch.set_num_threads(threads)
    elif not raw and not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(1)


def _resumed_is_raw(folder: str) -> bool:
    """Whether the run in ``folder`` (``--resume``) reads a raw corpus (False when its config
    cannot be read: resuming then fails with its own message)."""
    from boomda import rundir

    try:
        return bool(rundir.read_yaml_mapping(Path(folder) / rundir.CONFIG).get("raw"))
    except (BoomdaError, OSError):
        return False


def _bench(args: argparse.Namespace) -> int:
    from boomda.grid import GridSpec, run_grid
    from boomda.report import DEFAULT_VALIDATOR, main_report
    from boomda.select import VALIDATORS

    if args.select is not None and args.select not in VALIDATORS:
        raise ConfigError(f"--select {args.select!r}: choose a validator from "
                          f"{', '.join(VALIDATORS)}")
    spec = GridSpec.from_yaml(args.grid)
    if args.methods:
        spec.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        spec.method_overrides = {m: v for m, v in spec.method_overrides.items()
                                 if m in spec.methods}
    if args.seeds:
        try:
            spec.seeds = [int(s) for s in args.seeds.split(",")]
        except ValueError:
            raise ConfigError(f"--seeds {args.seeds!r}: expected integers, e.g. 0,1,2") from None
    if args.epochs is not None:
        spec.base.setdefault("train", {})["epochs"] = args.epochs
    if args.tensorboard:
        spec.base["logging"] = {**(spec.base.get("logging") or {}), "tensorboard": True}
    spec.validate("grid")
    if args.select is not None and not spec.sweep:
        raise ConfigError(f"--select {args.select}: the grid {args.grid} has no sweep, so there "
                          f"is no grid point to select (docs/grids.md)")
    folder = args.out or os.path.join("bench", spec.name)

    def summarise(result) -> None:  # while the grid folder is still locked
        print(f"grid {spec.name}: {result.done} of {len(spec.cells())} cells done, "
              f"{result.failed} failed this time, {result.ran} run in {result.seconds:.0f} s")
        main_report(str(result.folder), None, args.select or DEFAULT_VALIDATOR)

    result = run_grid(spec, folder, workers=args.workers, threads=args.threads,
                      progress=_progress(args), report=False, on_done=summarise,
                      ray=_ray_options(args))
    return 0 if result.failed == 0 else 1


def _ray_options(args: argparse.Namespace):
    """The Ray options of ``boomda bench`` (None without ``--ray``)."""
    per_cell = {"cpus_per_cell": args.ray_cpus_per_cell, "gpus_per_cell": args.ray_gpus_per_cell}
    if args.ray is None:
        given = [k for k, v in per_cell.items() if v is not None]
        if given:
            raise ConfigError(f"--ray-{given[0].replace('_', '-')} applies only with --ray")
        return None
    from boomda.grid import RayOptions

    return RayOptions(args.ray, **{k: v for k, v in per_cell.items() if v is not None})


def _predict(args: argparse.Namespace) -> int:
    import numpy as np

    from boomda.data.files import LABELS, read_npz
    from boomda.data.labels import encode_labels
    from boomda.estimator import DomainAdapter
    from boomda.evaluate import write_predictions
    from boomda.partial import resolve_strategy

    if args.out and Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out}: is a folder; give the path of a CSV file")
    adapter = DomainAdapter.load(args.model, device="cpu")
    ids = None
    names = [str(c) for c in adapter.classes]
    try:
        if args.data.lower().endswith(".csv"):
            data, ids, mask = _raw_inputs(adapter, args.data, _progress(args))
            part = adapter.partial_input(data, mask)
        else:
            arrays = read_npz(args.data)
            labels = arrays.pop(LABELS, None)
            if labels is not None:  # names or integers, matched to the model's classes by name
                labels, _ = encode_labels(labels, f"{args.data}[{LABELS!r}]", names)
            part = adapter.partial_input(arrays, labels=labels)
        probs = adapter.predict_proba(part, strategy=args.strategy)
    except DataError as exc:  # named by the data file, once
        message = str(exc)
        raise DataError(message if message.startswith(args.data) else f"{args.data}: {message}") \
            from None
    absent = not part.complete.all()
    if absent:
        strategy = resolve_strategy(args.strategy, adapter.config.modality_dropout)
        print(f"absent modalities: {part.describe()}; those samples predicted with the "
              f"{strategy} strategy")
    pred = probs.argmax(axis=1)
    counts = np.bincount(pred, minlength=probs.shape[1])
    print(f"{len(pred)} samples; predicted class counts: "
          + ", ".join(f"{names[c]}: {n}" for c, n in enumerate(counts)))
    if part.data.labels is not None:
        result = adapter.evaluate(part, name=args.data, strategy=args.strategy)
        print(f"weighted F1 {result['weighted_f1']:.2f}   accuracy {result['accuracy']:.2f}")
    if args.out:
        try:
            write_predictions(args.out, probs, names, ids,
                              [part.absent_names(i) for i in range(len(pred))] if absent
                              else None)
        except OSError as exc:
            raise BoomdaError(f"--out {args.out}: cannot write the predictions "
                              f"({exc.strerror or exc})") from None
        print(f"predictions written to {args.out}")
    return 0


def _diagnose(args: argparse.Namespace) -> int:
    from boomda import rundir
    from boomda.data.load import split_seed
    from boomda.diagnose import diagnose
    from boomda.estimator import DomainAdapter
    from boomda.resolve import resolve
    from boomda.run import prepare

    model = args.model
    if args.run is not None:
        flags = ["config", "dataset", "modalities", "holdout", "split_seed", "seed", "model"]
        given = [f for f in flags if getattr(args, f) is not None] + (["shift"] if args.shift
                                                                       else [])
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise ConfigError(f"--run diagnoses a run's own pair and model; {flag} does not "
                              f"apply")
        folder = Path(args.run)
        if not (folder / rundir.CONFIG).is_file():
            raise BoomdaError(f"--run {folder}: not a run folder (no {rundir.CONFIG})")
        model = folder / rundir.MODEL
        if not model.is_file():
            raise BoomdaError(f"--run {folder}: no {rundir.MODEL} (the run is not finished)")
        resolved = rundir.read_yaml_mapping(folder / rundir.CONFIG)
        for key in ("run", "environment", "pair", "tune"):  # tune: a tuned run's sweep
            resolved.pop(key, None)
        where = str(folder / rundir.CONFIG)
        run = resolve(RunConfig.from_dict(resolved, where=where), where)
    else:
        config = data_config(args)  # the pair as boomda run builds it
        if args.seed is not None:
            config.train.seed = args.seed
        run = _resolve(config, args)
    run, data = prepare(run, progress=_progress(args))
    pair = data.pair
    adapter = DomainAdapter.load(model, device="cpu") if model is not None else None
    try:
        result = diagnose(pair.source, pair.target, adapter, seed=split_seed(run.config))
    except DataError as exc:
        raise DataError(f"{model}: {exc}" if model is not None else str(exc)) from None
    print(result.table())
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; give a folder")
    json_path = result.write_json(out / "diagnosis.json")
    figure = result.plot(out / "diagnosis.png")
    print(f"written: {json_path}, {figure}")
    return 0


def _raw_inputs(adapter, manifest: str, progress: bool):
    """Packed frozen states of a manifest's recordings, prepared as the model was trained, and
    which modalities each row has (an empty cell: absent)."""
    from boomda.config import RawDataConfig
    from boomda.data.raw_pair import raw_partial_inputs

    settings = adapter.metadata.get("raw")
    if settings is None:
        raise ConfigError(f"{manifest}: this model was trained on feature vectors; give a .npz "
                          f"file of its modalities")
    raw = RawDataConfig(**settings)
    data, ids, corpus, mask = raw_partial_inputs(raw, manifest, adapter.metadata["classes"],
                                                 progress=progress)
    if corpus.n_skipped:
        print(f"{corpus.n_skipped} utterances skipped (missing files)")
    return data, ids, mask


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; every error ends in one line on stderr and exit code 2
    (``BOOMDA_TRACEBACK=1`` shows the traceback of an unexpected one)."""
    for stream in (sys.stdout, sys.stderr):  # never fail on a character after the work is done
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _main(args)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"boomda: warning: {_one_line(message)}", file=sys.stderr)


def _one_line(message) -> str:
    return " ".join(str(message).split())


def _main(args: argparse.Namespace) -> int:
    try:
        if args.command == "run":
            return _run(args)
        elif args.command == "bench":
            return _bench(args)
        elif args.command == "predict":
            return _predict(args)
        elif args.command == "diagnose":
            return _diagnose(args)
        elif args.command == "report":
            from boomda.report import DEFAULT_VALIDATOR, main_report

            return main_report(args.directory, args.figure, args.select or DEFAULT_VALIDATOR)
        return 0
    except BoomdaError as exc:
        print(f"boomda: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("boomda: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a file the user named: unreadable, unwritable, disk full
        where = f" {exc.filename}" if exc.filename else ""
        print(f"boomda: error:{where} {exc.strerror or _one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback from deep inside torch
        if os.environ.get("BOOMDA_TRACEBACK"):
            raise
        print(f"boomda: error: unexpected {type(exc).__name__}: {_one_line(exc)} (a bug or an "
              f"unchecked input; BOOMDA_TRACEBACK=1 shows where)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
