"""The run folder: its file names, its identity, its status, and its exclusive creation.

A run folder holds

- ``config.yaml``: the resolved config, the environment, and the run's identity (``run``);
- ``metrics.jsonl``: one line per step (``metrics.jsonl.partial`` while training);
- ``checkpoint.pt``: the training state, written atomically every ``checkpoint_every`` epochs
  while the run is unfinished (``boomda run --resume``), removed once the run is done;
- ``diagnosis.json``: the per-modality shift of the pair and of the trained model's
  representations (:mod:`boomda.diagnose`), to read next to the balancing weights;
- ``model.pt`` and ``results.json`` (:class:`RunResults`), written last; ``results.json``
  repeats the identity;
- ``tensorboard/``: the curves of metrics.jsonl as TensorBoard events, when logged
  (:mod:`boomda.board`).

A run's identity is a random id, given when its folder is created, and the fingerprint of the
config it was asked to run (:func:`config_fingerprint`). A folder is *done* only when
``results.json`` and ``config.yaml`` carry the same id, so a folder holding the files of two runs
is never taken for a finished one.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from boomda.errors import BoomdaError

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
METRICS_PARTIAL = "metrics.jsonl.partial"
CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
RESULTS = "results.json"
ERROR = "error.txt"
DIAGNOSIS = "diagnosis.json"
#: the folder of the TensorBoard event files (``logging: {tensorboard: true}``, boomda.board)
TENSORBOARD = "tensorboard"
#: a tuned run folder's (boomda run --select, boomda.tune) record of every point's scores and
#: the choice, and its folder of one run folder per point
SELECTION = "selection.json"
POINTS = "points"

#: statuses of a run folder
DONE, FAILED, MISSING, UNFINISHED, STALE = "done", "failed", "missing", "unfinished", "stale"

#: the files a run folder may hold (anything else means the folder is not only a run folder)
RUN_FILES = {CONFIG, METRICS, METRICS_PARTIAL, CHECKPOINT, MODEL, RESULTS, ERROR, TENSORBOARD,
             DIAGNOSIS}


def config_fingerprint(config: Any) -> str:
    """SHA-256 (16 hex digits) of a run config's settings: everything but where the run folder
    goes (``out``, ``name``) and where its curves are logged besides metrics.jsonl
    (``logging``). ``config`` is a :class:`~boomda.config.RunConfig` or its dict."""
    d = config if isinstance(config, dict) else config.to_dict()
    settings = {k: v for k, v in d.items() if k not in ("out", "name", "logging")}
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def new_run_id() -> str:
    """A random run id (time-ordered prefix, then 8 random hex digits)."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(4)


def default_run_name(method: str, modalities: list[str], seed: int) -> str:
    """``method-modalities-seedN-<date>-<time>-<random>``: two runs started in the same second
    still get different names."""
    mods = "+".join(modalities) if modalities else "all"
    return f"{method}-{mods}-seed{seed}-{new_run_id()}"


def identity(run_id: str, fingerprint: str, name: str) -> dict[str, str]:
    return {"id": run_id, "config_fingerprint": fingerprint, "name": name,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def read_json_object(path: str | Path) -> dict:
    """The JSON object in ``path`` (``results.json``); one-line :class:`BoomdaError` if the file
    cannot be read or holds something else."""
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BoomdaError(f"{path}: cannot read as JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BoomdaError(f"{path}: expected a JSON object")
    return value


def read_yaml_mapping(path: str | Path) -> dict:
    """The top-level mapping in the YAML file ``path`` (``config.yaml``); one-line
    :class:`BoomdaError` if the file cannot be read or holds something else."""
    import yaml

    from boomda.config import load_yaml

    path = Path(path)
    try:
        value = load_yaml(path, BoomdaError)
    except (OSError, yaml.YAMLError) as exc:
        raise BoomdaError(f"{path}: cannot read as YAML ({exc})") from None
    if not isinstance(value, dict):
        raise BoomdaError(f"{path}: expected a mapping at the top level")
    return value


def run_identity(path: str | Path) -> dict | None:
    """The ``run`` identity section of a ``config.yaml`` or ``results.json``; None if the file
    is absent, unreadable or has none."""
    read = read_json_object if Path(path).suffix == ".json" else read_yaml_mapping
    try:
        run = read(path).get("run")
    except BoomdaError:
        return None
    return run if isinstance(run, dict) else None


def run_status(folder: str | Path, fingerprint: str | None = None) -> str:
    """The status of a run folder.

    ``done``: results.json and config.yaml name the same run (and, given ``fingerprint``, the
    run had that config); ``stale``: finished, but with another config, or its files belong to
    different runs; ``failed``: error.txt; ``unfinished``: started (config.yaml) but not done;
    ``missing``: no such folder or an empty one.
    """
    folder = Path(folder)
    if (folder / RESULTS).is_file():
        result_id = run_identity(folder / RESULTS)
        config_id = run_identity(folder / CONFIG)
        if result_id is None or config_id is None or result_id.get("id") != config_id.get("id"):
            return STALE
        if fingerprint is not None and result_id.get("config_fingerprint") != fingerprint:
            return STALE
        return DONE
    if (folder / ERROR).is_file():
        return FAILED
    if folder.is_dir() and any(folder.iterdir()):
        return UNFINISHED
    return MISSING


def create_run_folder(folder: str | Path, *, overwrite: bool = False) -> Path:
    """Create ``folder`` for a new run, exclusively: an existing folder is an error unless
    ``overwrite``, which first removes the run's files from it (:func:`clear_run_folder`: only
    a run's own files, each checked, and nothing if the folder holds anything else)."""
    folder = Path(folder)
    if overwrite and (folder.exists() or folder.is_symlink()):
        clear_run_folder(folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BoomdaError(f"cannot create the run folder {str(folder)[:120]!r} (option out / "
                          f"name): {exc.strerror or exc}") from None
    try:
        folder.mkdir()
    except FileExistsError:
        status = run_status(folder)
        what = {DONE: "a finished run", FAILED: "a failed run",
                UNFINISHED: "an unfinished run (continue it with --resume)",
                STALE: "a run"}.get(status, "nothing, but exists")
        raise BoomdaError(f"run folder {folder} already exists and holds {what}; choose another "
                          f"--name, or pass --overwrite to replace it") from None
    except OSError as exc:
        raise BoomdaError(f"cannot create the run folder {str(folder)[:120]!r} (option out / "
                          f"name): {exc.strerror or exc}") from None
    return folder


def run_lock(folder: str | Path):
    """A context manager holding the run folder ``folder`` exclusively (:mod:`boomda.lock`):
    a second process that would write the same run (``--resume`` twice, ``--overwrite`` of a
    running run) fails at once with a one-line error naming the holder."""
    from boomda.lock import folder_lock

    return folder_lock(folder, what="run folder", command="boomda run")


def clear_run_folder(folder: str | Path) -> None:
    """Remove the run folder ``folder`` for ``--overwrite``: only the files and folders a run
    writes (:data:`RUN_FILES`, the lock, and the temporary files of its atomic writes), each
    checked to hold what a run writes there, and only if nothing else is in the folder;
    otherwise a one-line :class:`BoomdaError` names the first entry that is not a run's and
    nothing is removed. A folder that another process is running in is refused too."""
    from boomda.lock import LOCK

    folder = Path(folder)
    refuse = f"run folder {folder} is not replaced"
    if folder.is_symlink():
        raise BoomdaError(f"{refuse}: it is a symbolic link (to {os.readlink(folder)}); "
                          f"remove the link or choose another name")
    if not folder.is_dir():
        raise BoomdaError(f"{refuse}: it exists and is not a folder")
    with run_lock(folder):
        entries = sorted(folder.iterdir())
        for entry in entries:
            reason = _not_a_run_entry(entry)
            if reason:
                raise BoomdaError(f"{refuse}: {entry.name!r} {reason} (move or remove it "
                                  f"yourself)")
        for entry in entries:
            if entry.name == LOCK:
                continue  # held: emptied on release, removed with the folder below
            if entry.is_dir():
                for child in entry.iterdir():
                    child.unlink()
                entry.rmdir()
            else:
                entry.unlink()
    (folder / LOCK).unlink(missing_ok=True)
    folder.rmdir()


def remove_leftovers(folder: str | Path) -> None:
    """Remove the temporary files that an interrupted atomic write of a run file left in
    ``folder`` (``.checkpoint.pt.<random>.tmp`` and the like)."""
    for entry in Path(folder).glob(".*.tmp"):
        if _temporary_of_run_file(entry.name) and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)


def _temporary_of_run_file(name: str) -> bool:
    """Whether ``name`` is the temporary file of an atomic write of a run file
    (:func:`boomda.atomic.atomic_write`: ``.<name>.<random>.tmp``)."""
    return (name.startswith(".") and name.endswith(".tmp")
            and any(name.startswith(f".{run_file}.") for run_file in RUN_FILES))


#: the most bytes of a run file read to check what it holds
_CHECK_BYTES = 64 * 1024 * 1024


def _not_a_run_entry(entry: Path) -> str | None:
    """None if ``entry`` is a file or folder that a run writes, holding what the run writes
    there; else why not (for :func:`clear_run_folder`'s message)."""
    from boomda.lock import LOCK

    name = entry.name
    if entry.is_symlink():
        return "is a symbolic link"
    if entry.is_dir():
        if name != TENSORBOARD:
            return "is a folder that a run does not write"
        for child in entry.iterdir():
            if (child.is_symlink() or not child.is_file()
                    or not child.name.startswith("events.out.tfevents.")):
                return f"holds {child.name!r}, which is not a TensorBoard event file"
        return None
    if not entry.is_file():
        return "is not a regular file"
    if name == LOCK or _temporary_of_run_file(name):
        return None
    if name not in RUN_FILES:
        return "is not a file that a run writes"
    if entry.stat().st_size > _CHECK_BYTES and name not in (MODEL, CHECKPOINT):
        return "is larger than a run writes there"
    if name in (CONFIG, RESULTS):
        if run_identity(entry) is None:
            return "holds no run identity (it was not written by a run)"
    elif name in (METRICS, METRICS_PARTIAL):
        if not _metrics_lines_ok(entry):
            return "does not hold a run's metrics lines"
    elif name in (MODEL, CHECKPOINT):
        if not _torch_archive(entry):
            return "is not a PyTorch checkpoint"
    elif name == DIAGNOSIS:
        try:
            read_json_object(entry)
        except BoomdaError:
            return "is not a JSON object"
    elif name == ERROR:
        head = entry.read_bytes()[:200].decode(errors="replace").split(":", 1)[0]
        if not head.isidentifier():
            return "is not a run's error record"
    return None


def _metrics_lines_ok(path: Path) -> bool:
    """Every complete line of ``path`` is a JSON object with a ``step``."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return False
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):  # the last line, cut by a kill
            break
        try:
            record = json.loads(line)
        except ValueError:
            return False
        if not isinstance(record, dict) or "step" not in record:
            return False
    return True


def _torch_archive(path: Path) -> bool:
    """Whether ``path`` is a zip archive in ``torch.save``'s layout."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("/data.pkl") for n in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


@dataclass
class RunResults:
    """``results.json``: what a finished run measured, and which run it was (``run``).

    ``options``: every option of the method, defaults included. Scores are weighted F1 and
    accuracy x 100 with the sample count (``target``: None when the target has no labels, which
    serve scoring only; ``source_holdout``); ``classes``: the class names, in index order;
    ``final_gamma`` maps each objective (modalities, then ``fused``) to its
    last balancing weight; ``validators`` holds the label-free scores (``boomda.select``; None
    where not finite); ``tags`` are a grid's labels (``task``, ``point``), written at the top
    level of the file. Timings in seconds.
    """

    run: dict[str, str]
    method: str
    options: dict[str, Any] | None
    modalities: list[str]
    seed: int
    target: dict[str, float] | None
    source_holdout: dict[str, float] | None
    final_gamma: dict[str, float] | None
    validators: dict[str, float | None]
    raw: dict[str, Any] | None
    steps: int
    resumed_at_step: int | None
    train_seconds: float
    seconds_per_step: float
    wall_seconds: float = 0.0
    classes: list[str] | None = None
    #: the epoch whose model was kept (``select_epoch``); None: the last epoch's
    selected_epoch: int | None = None
    tags: dict[str, str] = field(default_factory=dict)

    #: the tags a grid gives its cells (see :attr:`tags`)
    TAGS = ("task", "point")

    def to_dict(self) -> dict[str, Any]:
        """The file's JSON object: the fields in order, the tags after ``options``."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "tags"}
        head = list(d)[:list(d).index("options") + 1]
        return {**{k: d[k] for k in head}, **self.tags,
                **{k: v for k, v in d.items() if k not in head}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunResults:
        """The results in a ``results.json`` object; a field the file lacks (one written by an
        older boomda, or by hand) is None."""
        values: dict[str, Any] = {f.name: d.get(f.name) for f in fields(cls) if f.name != "tags"}
        return cls(**values, tags={k: str(d[k]) for k in cls.TAGS if k in d})

    def write(self, folder: str | Path) -> Path:
        """Write ``results.json`` in ``folder`` atomically."""
        from boomda.atomic import atomic_write_text

        return atomic_write_text(Path(folder) / RESULTS,
                                 json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def read(cls, folder: str | Path) -> RunResults:
        """Read ``results.json`` of ``folder``; one-line :class:`BoomdaError` if it cannot."""
        return cls.from_dict(read_json_object(Path(folder) / RESULTS))

    def summary(self, folder: str | Path) -> str:
        """The run's summary as ``boomda run`` prints it, for the run folder ``folder``."""
        r = self
        lines = [
            f"run folder      {folder}",
            f"method          {r.method}"
            + (f" ({r.options['gamma_solver']})"
               if r.final_gamma is not None and r.options and "gamma_solver" in r.options
               else "")
            + f", modalities {'+'.join(r.modalities)}, seed {r.seed}",
        ]
        if r.classes:
            shown = ", ".join(r.classes[:10]) + (", ..." if len(r.classes) > 10 else "")
            lines.append(f"classes         {len(r.classes)}: {shown}")
        if r.target is not None:
            lines.append(f"target          weighted F1 {r.target['weighted_f1']:.2f}   "
                         f"accuracy {r.target['accuracy']:.2f}   (n={r.target['n']})")
        else:
            lines.append("target          no labels: judged by the label-free validators below "
                         "only")
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


def is_tuned_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a run of ``boomda run --select`` (its config has ``tune``)."""
    path = Path(folder) / CONFIG
    if not path.is_file():
        return False
    try:
        return isinstance(read_yaml_mapping(path).get("tune"), dict)
    except BoomdaError:
        return False
