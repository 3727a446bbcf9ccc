"""Training curves in TensorBoard: every value of a run's ``metrics.jsonl``, per step.

``metrics.jsonl`` stays the source of truth: the run writes each step's record there and hands
the same record to :class:`TensorBoardLog`, which writes its numbers as scalars (through
``torch.utils.tensorboard``) under ``<run folder>/tensorboard/``. The tag of a value is its
``metrics.jsonl`` key with the group prefix turned into a folder (:func:`scalars`):

=========================== ===============================
metrics.jsonl               TensorBoard tag
=========================== ===============================
``loss``                    ``loss/total``
``loss_<term>``             ``loss/<term>``
``weight_<term>``           ``weight/<term>``
``gamma`` (list)            ``gamma/<modality>``, ``gamma/fused``
``r``                       ``r``
``n_pseudo``                ``pseudo/n``
``n_pseudo_classes``        ``pseudo/n_classes``
``pseudo_accuracy``         ``pseudo/accuracy``
``extra_<name>``            ``extra/<name>``
``epoch``, ``seconds``      ``progress/epoch``, ``progress/seconds``
=========================== ===============================

Values that are null in ``metrics.jsonl`` (no pseudo-labels yet, a non-finite r) are left out.
TensorBoard stores scalars as 32-bit floats.

A resumed run (``boomda run --resume``) keeps the records of the steps before its checkpoint and
drops those logged after it; its events are rewritten the same way: the event files are
replaced by the kept records, then the resumed steps follow, so that every step is in the
events exactly once (TensorBoard's own ``purge_step`` depends on the order of the event files'
names, which two processes started in the same second do not fix).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from boomda.errors import ConfigError

#: metrics.jsonl key -> tag, for the keys without a group prefix
PLAIN_TAGS = {"loss": "loss/total", "r": "r", "n_pseudo": "pseudo/n",
              "n_pseudo_classes": "pseudo/n_classes", "pseudo_accuracy": "pseudo/accuracy",
              "epoch": "progress/epoch", "seconds": "progress/seconds"}
#: metrics.jsonl key prefix -> tag folder
GROUPS = {"loss_": "loss/", "weight_": "weight/", "extra_": "extra/"}
#: seconds between flushes of the event file while training
FLUSH_SECONDS = 10


def require_tensorboard(what: str = "logging.tensorboard") -> None:
    """Raise a one-line :class:`ConfigError` unless ``tensorboard`` can be imported."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError(f"{what} needs the optional package 'tensorboard': "
                          f"pip install 'boomda[tensorboard]'") from None


def tag_of(key: str) -> str:
    """The TensorBoard tag of a ``metrics.jsonl`` key (module docstring)."""
    if key in PLAIN_TAGS:
        return PLAIN_TAGS[key]
    for prefix, group in GROUPS.items():
        if key.startswith(prefix):
            return group + key[len(prefix):]
    return key


def gamma_tags(n: int, names: Sequence[str]) -> list[str]:
    """The tags of a gamma of ``n`` weights: ``gamma/<name>`` when ``names`` has ``n`` names,
    else ``gamma/0`` ... ``gamma/<n-1>``."""
    labels = list(names) if len(names) == n else [str(i) for i in range(n)]
    return [f"gamma/{label}" for label in labels]


def scalars(record: Mapping[str, Any], gamma_names: Sequence[str] = ()) -> dict[str, float]:
    """The scalars of one ``metrics.jsonl`` record: tag -> value, nulls and ``step`` left out."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key == "step" or value is None:
            continue
        if key == "gamma":
            out.update(zip(gamma_tags(len(value), gamma_names), map(float, value), strict=True))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[tag_of(key)] = float(value)
    return out


class TensorBoardLog:
    """Writes ``metrics.jsonl`` records as TensorBoard scalars under ``folder``.

    ``gamma_names``: the objectives of gamma in order (the modalities, then ``fused``).
    ``replay``: the records already in ``metrics.jsonl`` (a resumed run); the folder's event
    files are replaced by them before anything else is written."""

    def __init__(self, folder: str | Path, gamma_names: Sequence[str] = (),
                 replay: Iterable[Mapping[str, Any]] | None = None) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(folder)
        self.gamma_names = list(gamma_names)
        if replay is not None:
            for old in self.folder.glob("events.out.tfevents.*"):
                old.unlink()
        self.writer = SummaryWriter(str(self.folder), flush_secs=FLUSH_SECONDS)
        for record in replay or ():
            self.write(record)

    def write(self, record: Mapping[str, Any]) -> None:
        """Add one step's record (its ``step`` is the global step)."""
        step = int(record["step"])
        for tag, value in scalars(record, self.gamma_names).items():
            self.writer.add_scalar(tag, value, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
