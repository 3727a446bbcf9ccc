"""The command line: ``boomda run``, ``bench``, ``report`` and ``predict``."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from boomda.config import DEFAULT_MODALITIES, DEFAULT_SHIFTS, RunConfig, train_options
from boomda.errors import BoomdaError, ConfigError, DataError


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (``boomda run: error: ...``), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    from boomda import __version__
    from boomda.balance import BALANCERS, NORMALIZATIONS
    from boomda.config import LR_SCHEDULES, OPTIMIZERS
    from boomda.losses import CA_FORMS
    from boomda.methods import METHODS

    parser = _Parser(
        prog="boomda",
        description="Heterogeneous multimodal unsupervised domain adaptation (Boomda, AAAI 2026).",
    )
    parser.add_argument("--version", action="version", version=f"boomda {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser(
        "run", help="train and evaluate one configuration",
        description="Train one method on a domain pair (the embedded UCI Multiple Features data "
                    "by default) and write a run folder: config.yaml, metrics.jsonl, "
                    "results.json, model.pt. Options override the YAML config file.",
    )
    run.add_argument("--config", help="YAML file with 'data', 'train', 'out', 'name' sections")
    run.add_argument("--modalities", help="comma-separated modality names (default "
                                          f"{','.join(DEFAULT_MODALITIES)})")
    run.add_argument("--shift", action="append", default=[], metavar="MODALITY=SPEC",
                     help="target shift of one modality, e.g. fou=noise:snr=1 or "
                          "pix=mask:fraction=0.4 (repeatable)")
    run.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                     help="a method option, e.g. trade_off=0.5 or entropy=true for cdan "
                          "(repeatable; see docs/baselines.md)")
    run.add_argument("--dataset", help="'mfeat' (embedded) or a .npz file of arrays + labels")
    run.add_argument("--holdout", type=float, help="fraction of the source kept for evaluation")
    run.add_argument("--split-seed", dest="split_seed", type=int,
                     help="seed of the split and shifts (default: --seed)")
    # every TrainConfig option of one number or word, with its help from the dataclass
    choices = {"method": METHODS, "gamma_solver": BALANCERS,
               "gamma_normalization": NORMALIZATIONS, "ca_form": CA_FORMS,
               "optimizer": OPTIMIZERS, "lr_schedule": LR_SCHEDULES}
    for name, kind, what, default in train_options():
        among = f"; one of: {', '.join(choices[name])}" if name in choices else ""
        run.add_argument("--" + name.replace("_", "-"), dest=name, type=kind,
                         help=f"{what}{among} (default {default})")
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
                          "with the settings it was started with (no other option applies)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    bench = sub.add_parser(
        "bench", help="run a grid of methods x modality subsets x seeds",
        description="Run every cell of a grid (a YAML file: base config, methods, subsets, seeds) "
                    "in parallel worker processes. Finished cells are kept: rerunning the same "
                    "command after an interruption runs only the unfinished ones. Writes the "
                    "report (results.csv, report.md, figures) at the end.",
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
                            "with a sweep: source_risk, im, snd, dev (default im)")
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")

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
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")

    report = sub.add_parser(
        "report", help="tables, CSV and figures from a grid folder",
        description="Regenerate results.csv, report.md and figures from the finished runs of a "
                    "grid folder (also written at the end of every bench).",
    )
    report.add_argument("directory", help="grid folder written by boomda bench")
    report.add_argument("--select", metavar="VALIDATOR", default=None,
                        help="label-free validator that picks each task's grid point in a grid "
                             "with a sweep: source_risk, im, snd, dev (default im)")
    report.add_argument("--figure", action="append", default=None, metavar="CELL",
                        help="cell id to plot training dynamics for (repeatable)")
    return parser


def _key_value(item: str, flag: str, form: str) -> tuple[str, str]:
    """Split a repeatable ``KEY=VALUE`` option; ConfigError naming the flag otherwise."""
    key, eq, value = item.partition("=")
    if not eq or not key.strip():
        raise ConfigError(f"{flag} {item!r}: expected {form}")
    return key.strip(), value.strip()


def build_config(args: argparse.Namespace) -> RunConfig:
    config = RunConfig.from_yaml(args.config) if args.config else RunConfig()
    if config.raw is not None:
        for flag, given in (("--modalities", args.modalities), ("--dataset", args.dataset),
                            ("--shift", args.shift)):
            if given:
                raise ConfigError(f"{flag} does not apply to a raw corpus ({args.config}); set "
                                  f"raw.modalities and their corruption in the config file")
    for name, kind, _, _ in train_options():
        value = getattr(args, name, None)
        if value is not None:
            setattr(config.train, name, kind(value))
    if args.modalities is not None:
        config.data.modalities = [m.strip() for m in args.modalities.split(",") if m.strip()]
    if args.dataset is not None:
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
    for item in args.shift:
        modality, spec = _key_value(item, "--shift", "MODALITY=SPEC, e.g. fou=noise:snr=1")
        config.data.shifts[modality] = spec
    for item in args.option:
        key, value = _key_value(item, "--option", "KEY=VALUE, e.g. trade_off=0.5")
        config.train.options[key] = value
    if args.out is not None:
        config.out = args.out
    if args.name is not None:
        config.name = args.name
    if args.checkpoint_every is not None:
        if args.checkpoint_every < 0:
            raise ConfigError(f"--checkpoint-every {args.checkpoint_every}: must be 0 (never) "
                              f"or a number of epochs")
        config.checkpoint_every = args.checkpoint_every
    return config


def _run(args: argparse.Namespace) -> int:
    from boomda.run import resume_experiment, run_experiment

    if args.resume is not None:
        given = [flag for flag, value in vars(args).items()
                 if flag not in ("command", "resume", "no_progress", "shift", "option")
                 and value not in (None, False)] + [f for f in ("shift", "option")
                                                    if getattr(args, f)]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise ConfigError(f"--resume continues a run with its own settings; {flag} does not "
                              f"apply")
        result = resume_experiment(args.resume, progress=not args.no_progress)
        print(f"resumed at step {result.summary.resumed_at_step}")
    else:
        config = build_config(args)
        result = run_experiment(config, progress=not args.no_progress, overwrite=args.overwrite)
    print(_summary(result))
    return 0


def _summary(result) -> str:
    r = result.summary
    lines = [
        f"run folder      {result.folder}",
        f"method          {r.method}"
        + (f" ({r.gamma_solver})" if r.final_gamma is not None else "")
        + f", modalities {'+'.join(r.modalities)}, seed {r.seed}",
        f"target          weighted F1 {r.target['weighted_f1']:.2f}   "
        f"accuracy {r.target['accuracy']:.2f}   (n={r.target['n']})",
    ]
    if r.source_holdout is not None:
        lines.append(f"source held-out weighted F1 {r.source_holdout['weighted_f1']:.2f}   "
                     f"accuracy {r.source_holdout['accuracy']:.2f}   "
                     f"(n={r.source_holdout['n']})")
    if r.final_gamma is not None:
        lines.append("final gamma     " + "  ".join(f"{k}={v:.3f}"
                                                    for k, v in r.final_gamma.items()))
    if r.validators:
        lines.append("label-free      " + "  ".join(
            f"{k}={v:.3f}" if v is not None else f"{k}=–" for k, v in r.validators.items())
            + "   (validators, higher is better)")
    raw = r.raw
    if raw is not None:
        skipped = raw["skipped_missing"] + raw["skipped_unreadable"]
        cache = raw["cache"]
        lines.append(f"corpus          {raw['n_utterances']} utterances, {skipped} skipped; "
                     + ("no frozen-state cache" if cache is None else
                        f"frozen-state cache {cache['dir']}: {cache['hits']} read, "
                        f"{cache['misses']} computed"))
    lines.append(f"time            {r.train_seconds:.1f} s for {r.steps} steps")
    return "\n".join(lines)


def _bench(args: argparse.Namespace) -> int:
    from boomda.bench import GridSpec, run_grid
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
    spec.validate("grid")
    folder = args.out or os.path.join("bench", spec.name)

    def summarise(result) -> None:  # while the grid folder is still locked
        print(f"grid {spec.name}: {result.done} of {len(spec.cells())} cells done, "
              f"{result.failed} failed this time, {result.ran} run in {result.seconds:.0f} s")
        main_report(str(result.folder), None, args.select or DEFAULT_VALIDATOR)

    result = run_grid(spec, folder, workers=args.workers, threads=args.threads,
                      progress=not args.no_progress, report=False, on_done=summarise)
    return 0 if result.failed == 0 else 1


def _predict(args: argparse.Namespace) -> int:
    import numpy as np

    from boomda.atomic import atomic_write_text
    from boomda.estimator import DomainAdapter
    from boomda.run import load_dataset

    if args.out and Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out}: is a folder; give the path of a CSV file")
    adapter = DomainAdapter.load(args.model, device="cpu")
    ids = None
    classes = adapter.metadata.get("classes")
    if args.data.lower().endswith(".csv"):
        data, ids = _raw_inputs(adapter, args.data, not args.no_progress)
    else:
        data = load_dataset(args.data, labels_required=False)
    try:
        probs = adapter.predict_proba(data)
    except DataError as exc:
        raise DataError(f"{args.data}: {exc}") from None
    pred = probs.argmax(axis=1)
    counts = np.bincount(pred, minlength=probs.shape[1])
    names = classes or [str(c) for c in range(probs.shape[1])]
    print(f"{len(pred)} samples; predicted class counts: "
          + ", ".join(f"{names[c]}: {n}" for c, n in enumerate(counts)))
    if data.labels is not None:
        result = adapter.evaluate(data, name=args.data)
        print(f"weighted F1 {result['weighted_f1']:.2f}   accuracy {result['accuracy']:.2f}")
    if args.out:
        first = "id" if ids is not None else "index"
        header = f"{first},predicted," + ",".join(f"p_{name}" if classes else f"p{c}"
                                                  for c, name in enumerate(names))
        keys = ids if ids is not None else range(len(pred))
        rows = [f"{k},{names[p] if classes else p}," + ",".join(f"{v:.6f}" for v in row)
                for k, p, row in zip(keys, pred, probs, strict=True)]
        try:
            atomic_write_text(Path(args.out), "\n".join([header, *rows]) + "\n")
        except OSError as exc:
            raise BoomdaError(f"--out {args.out}: cannot write the predictions "
                              f"({exc.strerror or exc})") from None
        print(f"predictions written to {args.out}")
    return 0


def _raw_inputs(adapter, manifest: str, progress: bool):
    """Packed frozen states of a manifest's recordings, prepared as the model was trained."""
    from boomda.config import RawDataConfig
    from boomda.data.raw_pair import raw_inputs

    settings = adapter.metadata.get("raw")
    if settings is None:
        raise ConfigError(f"{manifest}: this model was trained on feature vectors; give a .npz "
                          f"file of its modalities")
    raw = RawDataConfig(**settings)
    data, ids, corpus = raw_inputs(raw, manifest, adapter.metadata["classes"], progress=progress)
    if corpus.n_skipped:
        print(f"{corpus.n_skipped} utterances skipped (missing files)")
    return data, ids


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; every error ends in one line on stderr and exit code 2
    (``BOOMDA_TRACEBACK=1`` shows the traceback of an unexpected one)."""
    parser = _parser()
    args = parser.parse_args(argv)
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
