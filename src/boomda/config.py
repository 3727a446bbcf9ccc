"""Typed configuration: training hyperparameters, data set-up, and a run.

Defaults are the paper's (Sun et al., AAAI 2026, Sec. 4): Adam, lr 1e-3, betas (0.9, 0.999),
batch 48, beta 5e-4, alpha_1 0.5, M_v 3, d 256, the closed-form balancing (P4). The alignment is
the scale-free ``correlation`` form with alpha_2 = 100, chosen on the development part of the
benchmark suite (``configs/suite-dev.yaml``; docs/method.md): the paper's alpha_2 = 0.1 belongs to
its unnormalised Eq. (10), available as ``ca_form: paper``. The paper gives no epoch budget; the
default budget here is fixed and the last model is evaluated. Boomda's own hyperparameters
(alpha_1, alpha_2, M_v, the form and the balancing) are the method's options
(:class:`boomda.methods.boomda.BoomdaOptions`), like every method's.
"""

from __future__ import annotations

import codecs
import dataclasses
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from boomda.errors import ConfigError

#: the embedded data's default views and their target shifts (see docs/data.md)
DEFAULT_MODALITIES = ["fou", "kar", "pix"]
DEFAULT_SHIFTS = {
    "fou": "noise:snr=1",
    "kar": "scale_noise:scale=0.2,snr=0.5",
    "pix": "mask:fraction=0.4",
}


def _option(default: Any, help: str) -> Any:
    """A config field with its one-line meaning (the command line's help text): the options
    of :class:`TrainConfig` and of :class:`boomda.methods.options.BoomdaOptions`."""
    return field(default=default, metadata={"help": help})


def field_options(cls: type) -> list[tuple[str, type, str, Any]]:
    """(name, type, help, default) of every field of the dataclass ``cls`` that has a help text
    (see :func:`_option`), in field order."""
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name], f.metadata["help"], f.default)
            for f in fields(cls) if "help" in f.metadata]


def train_options() -> list[tuple[str, type, str, Any]]:
    """(name, type, help, default) of every ``TrainConfig`` option that takes one number or
    word, in field order: the command line's training options are exactly these."""
    return field_options(TrainConfig)


#: the largest seed of training and of the split (both seeds lie in 0 .. SEED_MAX: numpy's
#: legacy seeding takes 32 bits, torch's up to 64)
SEED_MAX = 2**32 - 1

#: the most nodes (scalars, lists, mappings) a YAML file the project reads may hold once its
#: aliases are expanded; the shipped configs hold a few hundred at most, an alias bomb billions
MAX_YAML_NODES = 100_000

#: the optimisers and learning-rate schedules ``TrainConfig`` offers
OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("constant", "cosine", "inverse")
PRECISIONS = ("fp32", "bf16")
#: ``TrainConfig.select_epoch``: none (the last epoch's model) or a label-free validator scored
#: on the target at each epoch's end
EPOCH_VALIDATORS = ("none", "im")


@dataclass
class TrainConfig:
    """Hyperparameters of one training run.

    Every field but ``betas`` and ``options`` is a command-line option of ``boomda run``
    (``--batch-size`` for ``batch_size``), and every field a key under ``train:`` in a config
    file. :meth:`validate` checks the values; the method and its options are checked by
    :func:`boomda.methods.check_config`.

    Attributes:
        method: the method, a name in :data:`boomda.registry.METHODS`: Boomda, an ablation
            variant or a baseline (default ``boomda``).
        epochs: passes over the source training set (default 30; at least 1).
        batch_size: source (and target) samples per step (default 48; at least 2).
        lr: the learning rate (default 1e-3; positive).
        betas: Adam's and AdamW's betas, two numbers in [0, 1) (default (0.9, 0.999)); SGD's
            momentum is the first.
        weight_decay: the weight decay (default 0; >= 0).
        optimizer: ``adam`` (default, the paper's), ``adamw`` or ``sgd``.
        lr_schedule: the learning-rate schedule over the run: ``constant`` (default),
            ``cosine`` (decays to 0) or ``inverse`` (``lr / (1 + 10 p)^0.75`` at progress p,
            Ganin et al. 2016).
        grad_clip: clip the gradients' global norm to this value; 0 (default): off.
        beta: the weight of the IB log-determinant (default 5e-4; >= 0).
        dim: the representation size d (default 256).
        hidden: the hidden width of the feature encoders (default 512).
        dropout: the dropout of the feature encoders (default 0.1; in [0, 1)).
        modality_dropout: the probability of zeroing a modality's representation before
            fusion, per sample and step (ModDrop, Neverova et al. 2016): trains the fused head
            for inputs that lack a modality; 0 (default): off.
        seed: the seed of training, and of the split and shifts unless ``data.split_seed``
            (default 0; in 0 .. 2**32 - 1).
        device: ``auto`` (default: a CUDA GPU when one is present), ``cpu``, ``cuda`` or
            ``cuda:N``.
        precision: ``fp32`` (default), or ``bf16``: the network's forward pass autocast to
            bfloat16, the alignment, Q and the IB term in fp32.
        select_epoch: ``none`` (default: the last epoch's model) or ``im``: keep the model of
            the epoch whose IM score on the unlabelled target is best (docs/benchmarks.md).
        options: the method's own hyperparameters: Boomda's ``alpha1``, ``alpha2``,
            ``vote_threshold``, ``gamma_solver``, ``gamma_normalization`` and ``ca_form``
            (:class:`boomda.methods.boomda.BoomdaOptions`), ``trade_off`` for the adversarial
            baselines, ...; each method documents and validates its options.
    """

    method: str = _option("boomda", "the method: Boomda, an ablation variant or a baseline")
    epochs: int = _option(30, "passes over the source training set")
    batch_size: int = _option(48, "source (and target) samples per step")
    lr: float = _option(1e-3, "learning rate")
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = _option(0.0, "weight decay")
    optimizer: str = _option("adam", "the optimiser (sgd's momentum: the first of betas)")
    lr_schedule: str = _option("constant", "learning-rate schedule over the run: cosine decays "
                                           "to 0, inverse is lr / (1 + 10 p)^0.75 at progress "
                                           "p (Ganin et al. 2016)")
    grad_clip: float = _option(0.0, "clip the gradients' global norm to this value; 0: off")
    beta: float = _option(5e-4, "weight of the IB log-determinant")
    dim: int = _option(256, "representation size d")
    hidden: int = _option(512, "hidden width of the feature encoders")
    dropout: float = _option(0.1, "dropout of the feature encoders")
    modality_dropout: float = _option(
        0.0, "probability of zeroing a modality's representation before fusion, per sample "
             "and step (ModDrop, Neverova et al. 2016): trains the fused head for inputs "
             "that lack a modality; 0: off")
    seed: int = _option(0, "seed of training, and of the split and shifts unless "
                           "data.split_seed")
    device: str = _option("auto", "auto, cpu, cuda or cuda:N")
    precision: str = _option("fp32", "fp32, or bf16: the network's forward pass autocast to "
                                     "bfloat16, the alignment, Q and the IB term in fp32")
    select_epoch: str = _option(
        "none", "keep the model of the epoch whose IM score on the unlabelled target is best "
                "(im), instead of the last epoch's (none); measured in docs/benchmarks.md")
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Check the values of the fields, but the method's name and options.

        Those are checked against the method registry by :func:`boomda.methods.check_config`,
        which also calls this.

        Raises:
            ConfigError: naming the first bad option.
        """
        for f in fields(self):
            value = getattr(self, f.name)
            numbers = value if isinstance(value, tuple) else (value,)
            _check(not any(isinstance(v, float) and not math.isfinite(v) for v in numbers),
                   f.name, "must be a finite number", value)
        _check(self.epochs >= 1, "epochs", "must be at least 1", self.epochs)
        _check(0 <= self.seed <= SEED_MAX, "seed", f"must lie in 0 .. {SEED_MAX}", self.seed)
        _check(self.batch_size >= 2, "batch_size",
               "must be at least 2 (a covariance needs 2 samples)", self.batch_size)
        _check(self.lr > 0, "lr", "must be positive", self.lr)
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas",
               "must be two numbers in [0, 1)", self.betas)
        _check(self.weight_decay >= 0, "weight_decay", "must be >= 0", self.weight_decay)
        _check(self.optimizer in OPTIMIZERS, "optimizer",
               f"must be one of {', '.join(OPTIMIZERS)}", self.optimizer)
        _check(self.lr_schedule in LR_SCHEDULES, "lr_schedule",
               f"must be one of {', '.join(LR_SCHEDULES)}", self.lr_schedule)
        _check(self.grad_clip >= 0, "grad_clip", "must be >= 0 (0: no clipping)", self.grad_clip)
        _check(self.beta >= 0, "beta", "must be >= 0", self.beta)
        _check(self.dim >= 1 and self.hidden >= 1, "dim/hidden", "must be positive",
               (self.dim, self.hidden))
        _check(0 <= self.dropout < 1, "dropout", "must lie in [0, 1)", self.dropout)
        _check(0 <= self.modality_dropout < 1, "modality_dropout", "must lie in [0, 1)",
               self.modality_dropout)
        _check(self.precision in PRECISIONS, "precision", f"must be one of "
               f"{', '.join(PRECISIONS)}", self.precision)
        _check(self.device in ("auto", "cpu") or self.device.startswith("cuda"), "device",
               "must be auto, cpu or cuda[:N]", self.device)
        _check(self.select_epoch in EPOCH_VALIDATORS, "select_epoch",
               f"must be one of {', '.join(EPOCH_VALIDATORS)}", self.select_epoch)


@dataclass
class DataConfig:
    """Where the data comes from and how the domain pair is built.

    Either one labelled data set, split and shifted by the paper's protocol (``dataset``), or
    a real pair of domains (``source`` and ``target``, and then ``dataset`` is empty).

    Attributes:
        dataset: ``mfeat`` (default: the embedded UCI Multiple Features data), ``htad`` or
            the path of a ``.npz`` file holding one (N, D_m) array per modality plus
            ``labels`` (N,).
        modalities: which modalities to use, in order (all when empty); default ``fou``,
            ``kar``, ``pix`` for ``mfeat``.
        shifts: modality -> target shift (see ``boomda.data.shifts.parse_shift``; with a real
            pair, an optional extra corruption of the target); default: the embedded data's
            shifts of docs/data.md for ``mfeat``.
        holdout: the stratified fraction of the source kept out of training (default 0.2).
        split_seed: the seed of the split and shifts (None, default: the training seed).
        source: a real pair's source, a ``.npz`` file as above (labels required), or None.
        target: a real pair's target, a ``.npz`` file as above (labels optional, serving
            scoring only), or None.
    """

    dataset: str = "mfeat"
    modalities: list[str] = field(default_factory=lambda: list(DEFAULT_MODALITIES))
    shifts: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SHIFTS))
    holdout: float = 0.2
    split_seed: int | None = None
    source: str | None = None
    target: str | None = None

    @property
    def is_pair(self) -> bool:
        """Whether the data are a real pair of domains (``source`` and ``target`` files)."""
        return self.source is not None

    def validate(self, where: str = "data") -> None:
        """Check the options that can be checked without reading the data (the split's seed).

        Args:
            where: how errors name this config (``data``, ``config.yaml.data``).

        Raises:
            ConfigError: naming the first bad option.
        """
        if self.split_seed is not None:
            _check(0 <= self.split_seed <= SEED_MAX, f"{where}.split_seed",
                   f"must lie in 0 .. {SEED_MAX}", self.split_seed)


@dataclass
class RawModalityConfig:
    """One raw modality: which signal, through which backbone.

    ``signal``: ``audio``, ``video`` or ``text`` (a column of the corpus). ``backbone``: a local
    folder of a ``transformers`` model (speech model for audio, BERT family for text, image model
    for video frames) with its tokenizer for text, or its Hugging Face hub id (``org/name``,
    optionally ``@revision``), fetched once into the Hugging Face cache
    (:mod:`boomda.nn.hub`). ``trainable_layers``: k, the last k
    transformer layers trained. ``encoder``: ``textcnn`` or ``lstm`` (default: TextCNN for audio
    and text, LSTM for video). ``corruption``: the target corruption, ``"default"`` for the
    paper's (``noise:snr=1`` audio, ``darken_noise:brightness=0.2,snr=0.5`` video,
    ``mask_words:fraction=0.4`` text), ``"none"``, or such a string with other values.
    """

    signal: str = "audio"
    backbone: str = ""
    trainable_layers: int = 3
    encoder: str = ""
    corruption: str = "default"


#: the options of one corpus; in a two-corpus config they go under ``raw.source`` and
#: ``raw.target``, everything else in ``raw`` is shared by both corpora
CORPUS_OPTIONS = ("corpus", "path", "classes", "sessions", "merge_excited", "transcripts",
                  "video_crop", "skip_missing")
#: the two corpora of a two-corpus (cross-corpus) config
PAIR_SIDES = ("source", "target")


@dataclass
class RawDataConfig:
    """A raw corpus (audio, video, transcripts), or two, and how their signals are prepared.

    ``corpus``: ``iemocap``, ``msp-improv``, ``manifest`` or another name in
    :data:`boomda.data.readers.READERS`; ``path``: its root folder (the CSV file for a
    manifest). ``source`` and ``target`` (both or neither): a two-corpus pair, each a mapping of
    one corpus's options (:data:`CORPUS_OPTIONS`: ``corpus``, ``path`` and the options below
    that apply to it), which are then not given at the top level; the whole source corpus
    (less the held-out part) is the source, the whole target corpus the target, classes are
    matched by name, and a modality's ``corruption`` not given is ``none`` (docs/raw.md,
    "Two corpora"). ``modalities``: name -> :class:`RawModalityConfig` fields, in order.
    ``classes`` (manifest: class names in label order), ``sessions`` (IEMOCAP / MSP-IMPROV:
    which sessions, all when empty), ``merge_excited`` (IEMOCAP: count "excited" as happy, the
    common protocol; off: the paper's four classes, happy = "hap" only), ``transcripts``
    (MSP-IMPROV: replaces the release's human transcriptions by a CSV id,text or a folder of
    <id>.txt). ``video_crop`` (IEMOCAP): ``speaker`` keeps the speaker's half of the
    split-screen dialog frames, ``full`` the whole frame; other corpora's frames are used whole.
    ``skip_missing``: skip utterances that cannot be used (missing or unreadable files, a video
    that ends before the utterance, unusable clip times; counted in the run's info and, when
    found on reading the corpus, dropped before the split) instead of stopping.
    ``max_seconds``: audio is cut to its first seconds; ``n_frames``: frames sampled
    evenly per clip; ``max_tokens``: transcripts are cut to this many tokens. ``cache_dir``:
    where the frozen backbone outputs are cached (empty: no cache); ``cache_dtype``: float16
    (half the disk and memory) or float32. ``allow_download``: false never fetches a backbone
    given by hub id (it must be in the Hugging Face cache already), as ``HF_HUB_OFFLINE=1`` does.

    This is the schema only: the corpus, the signals and the option values are checked against
    the data registries by :func:`boomda.data.raw_config.check_raw_config`.
    """

    corpus: str = "manifest"
    path: str = ""
    source: dict[str, Any] = field(default_factory=dict)
    target: dict[str, Any] = field(default_factory=dict)
    modalities: dict[str, Any] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    merge_excited: bool = False
    transcripts: str = ""
    video_crop: str = "speaker"
    skip_missing: bool = False
    max_seconds: float = 8.0
    n_frames: int = 10
    max_tokens: int = 64
    cache_dir: str = ".boomda-cache"
    cache_dtype: str = "float16"
    allow_download: bool = True

    @property
    def is_pair(self) -> bool:
        """Whether this is a two-corpus config (``source`` and ``target`` given)."""
        return bool(self.source or self.target)

    @property
    def label(self) -> str:
        """The corpus's name, or ``source->target`` (``iemocap->msp-improv``) for a pair."""
        if not self.is_pair:
            return self.corpus
        return "->".join(str(getattr(self, side).get("corpus", "?")) for side in PAIR_SIDES)

@dataclass
class LoggingConfig:
    """Where a run's training curves go besides ``metrics.jsonl`` (always written, the source of
    truth). ``tensorboard``: also write every step's values as TensorBoard events under
    ``<run folder>/tensorboard/`` (:mod:`boomda.board`; needs the ``tensorboard`` package)."""

    tensorboard: bool = False


@dataclass
class RunConfig:
    """A whole run: data, training and where the run folder goes.

    The YAML config file of ``boomda run --config`` holds these keys (:meth:`from_yaml`).

    Attributes:
        data: where the data comes from (:class:`DataConfig`). With ``raw`` set, the data
            come from a raw corpus through pretrained backbones and ``data.dataset``,
            ``data.modalities`` and ``data.shifts`` are not used (``data.holdout`` and
            ``data.split_seed`` are).
        train: the training settings (:class:`TrainConfig`).
        out: the folder the run folder goes in (default ``runs``).
        name: the run folder's name (None, default: ``method-modalities-seedN-<date>-<time>-
            <random>``).
        raw: a raw corpus (:class:`RawDataConfig`), or None (default) for feature data.
        tags: labels a grid gives its cells (``task``, ``point``), kept in config.yaml for
            reports.
        checkpoint_every: save the training state every this many epochs (``boomda run
            --resume``; default 1); 0: never.
        logging: training curves besides metrics.jsonl (:class:`LoggingConfig`; not part of
            the run's settings: left out of its config fingerprint).
    """

    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    out: str = "runs"
    name: str | None = None
    raw: RawDataConfig | None = None
    #: labels a grid gives its cells (``task``, ``point``), kept in config.yaml for reports
    tags: dict[str, str] = field(default_factory=dict)
    #: save the training state every this many epochs (``boomda run --resume``); 0: never
    checkpoint_every: int = 1
    #: training curves besides metrics.jsonl (not part of the run's settings: left out of its
    #: config fingerprint)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data, as ``config.yaml`` holds it (:meth:`from_dict`'s inverse).

        Returns:
            A nested dict of the fields, ``train.betas`` as a list.
        """
        d = dataclasses.asdict(self)
        d["train"]["betas"] = list(self.train.betas)
        return d

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "config") -> RunConfig:
        """The config a mapping (a YAML file's) describes.

        The keys, the value types and the options are checked without the method and data
        registries (those: :func:`boomda.resolve.resolve`).

        Args:
            raw: the mapping, with the keys of the fields (all optional).
            where: how errors name it (a file's path).

        Returns:
            The config.

        Raises:
            ConfigError: an unknown key, a value of the wrong type or out of range, or a
                ``data`` section naming only one of ``source``/``target``, or a pair and a
                ``dataset`` together.

        """
        check_keys(raw, [f.name for f in fields(cls)], where, "key")
        data = _build(DataConfig, raw.get("data") or {}, f"{where}.data")
        data.validate(f"{where}.data")
        given = raw.get("data") or {}
        if (data.source is None) != (data.target is None):
            lacking = "target" if data.target is None else "source"
            raise ConfigError(f"{where}.data: a real pair needs both 'source' and 'target' "
                              f"files; {lacking!r} is missing")
        if data.is_pair:
            if given.get("dataset"):
                raise ConfigError(f"{where}.data: 'dataset' (one data set, split by the "
                                  f"protocol) and 'source'/'target' (a real pair) exclude each "
                                  f"other")
            data.dataset = ""  # none: the pair's files are the data
        if data.dataset != "mfeat" or data.is_pair:
            # the embedded data's default views and shifts do not apply to another data set
            if "modalities" not in given:
                data.modalities = []
            if "shifts" not in given:
                data.shifts = {}
        train = assign(TrainConfig(), raw.get("train") or {}, f"{where}.train",
                       message=lambda key: _train_key_message(key, f"{where}.train"))
        raw_data = None
        if raw.get("raw") is not None:
            raw_data = _build(RawDataConfig, raw["raw"], f"{where}.raw")
        tags = raw.get("tags") or {}
        if not isinstance(tags, Mapping):
            raise ConfigError(f"{where}.tags: expected a mapping")
        every = coerce_to(raw.get("checkpoint_every", 1), int, f"{where}.checkpoint_every")
        _check(every >= 0, f"{where}.checkpoint_every", "must be 0 (never) or a number of "
               "epochs", every)
        logging = _build(LoggingConfig, raw.get("logging") or {}, f"{where}.logging")
        return cls(data, train, str(raw.get("out", "runs")), raw.get("name"), raw_data,
                   {str(k): str(v) for k, v in tags.items()}, every, logging)

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        """The config a YAML file describes (:meth:`from_dict`).

        Args:
            path: the file: UTF-8 YAML, a mapping at the top level (an empty file is the
                default config), at most :data:`MAX_YAML_NODES` nodes once its aliases are
                expanded.

        Returns:
            The config.

        Raises:
            ConfigError: the file is missing, not UTF-8, not valid YAML, not a mapping, too
                large, or holds a bad key or value.
        """

        return cls.from_dict(load_yaml_mapping(path, "config file"), where=str(path))


def _train_key_message(key: str, where: str) -> str:
    allowed = ", ".join(f.name for f in fields(TrainConfig))
    return (f"{where}: unknown option {key!r}; allowed: {allowed}. A method's own options "
            f"(Boomda's alpha1, alpha2, vote_threshold, gamma_solver, gamma_normalization, "
            f"ca_form; a baseline's trade_off, ...) go under {where}.options")


def load_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The top-level mapping of a YAML file (empty for an empty file); ConfigError otherwise."""
    path = Path(path)
    try:
        raw = load_yaml(path)
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return dict(raw)


def read_utf8(path: str | Path, error: type[Exception] = ConfigError) -> str:
    """The text of the UTF-8 file ``path`` (a leading byte-order mark dropped); ``error``
    naming the file and the first bad byte when it is not UTF-8."""
    data = Path(path).read_bytes()
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = skip + exc.start
        raise error(f"{path}: not UTF-8 text (byte 0x{data[offset]:02x} at offset "
                    f"{offset})") from None


def load_yaml(path: str | Path, error: type[Exception] = ConfigError) -> Any:
    """The YAML document in the file ``path``, read by :class:`BoundedLoader`: ``error`` naming
    the file when it is not UTF-8, holds more than :data:`MAX_YAML_NODES` nodes once its aliases
    are expanded, or an alias inside the node it names; ``yaml.YAMLError`` for bad syntax."""
    text = read_utf8(path, error)
    try:
        return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except _Refused as exc:
        raise error(f"{path}: {exc}") from None
    except RecursionError:
        raise error(f"{path}: nested too deeply (a config holds a few levels; refused)") \
            from None


class _Refused(Exception):
    """A YAML document that :class:`BoundedLoader` does not build."""


class BoundedLoader(yaml.SafeLoader):
    """yaml's safe loader that refuses, once a document is composed and before any value is
    built, a document of more than :data:`MAX_YAML_NODES` nodes with its aliases expanded (an
    alias bomb: a few lines that expand to billions of nodes) and an alias inside the node it
    names (a value that contains itself). Counting visits each composed node once."""

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        _expanded_size(node, {}, set())
        return node


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_: set[int]) -> int:
    """The number of nodes under ``node`` (itself included) with aliases expanded; ``sizes``
    memoises the nodes counted, ``open_`` holds those being counted."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise _Refused("a YAML alias refers to itself (it lies inside the node it names; "
                       "refused)")
    open_.add(key)
    if isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [item for pair in node.value for item in pair]
    else:
        children = []
    size = 1
    for child in children:
        size += _expanded_size(child, sizes, open_)
        if size > MAX_YAML_NODES:
            raise _Refused(f"more than {MAX_YAML_NODES} YAML nodes after expanding aliases (a "
                           f"config holds far fewer; refused)")
    open_.discard(key)
    sizes[key] = size
    return size


def check_option(ok: bool, name: str, message: str, value: Any) -> None:
    """A :class:`ConfigError` ``option NAME MESSAGE, got VALUE`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"option {name} {message}, got {value!r}")


_check = check_option


def check_keys(raw: Mapping[str, Any], allowed: Sequence[str], where: str, what: str = "option",
               message: Callable[[str], str] | None = None) -> None:
    """The one check of unknown keys: a :class:`ConfigError` for the first key of ``raw`` (in
    sorted order) that is not in ``allowed``, ``"{where}: unknown {what} 'k'; allowed: ..."``
    (or ``message(k)``). ``raw`` must be a mapping."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(allowed), key=str)
    if unknown:
        if message is not None:
            raise ConfigError(message(unknown[0]))
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}unknown {what} {unknown[0]!r}; allowed: "
                          f"{', '.join(allowed) or 'none'}")


def assign(obj: Any, raw: Mapping[str, Any], where: str, what: str = "option",
           message: Callable[[str], str] | None = None) -> Any:
    """Set the dataclass ``obj``'s fields from ``raw``: unknown keys are errors
    (:func:`check_keys`), and each value is coerced to its field's type annotation
    (:func:`coerce_to`), errors naming ``where.key``. Returns ``obj``."""
    names = [f.name for f in fields(obj)]
    check_keys(raw, names, where, what, message)
    hints = typing.get_type_hints(type(obj))
    for key, value in raw.items():
        setattr(obj, key, coerce_to(value, hints[key], f"{where}.{key}" if where else key))
    return obj


def coerce_to(value: Any, annotation: Any, where: str) -> Any:
    """Coerce a YAML / command-line value to a field's type annotation: ``int``, ``float``,
    ``bool``, ``str``, ``tuple[float, ...]``, ``list[str]``, ``dict``, or any of them ``| None``
    (None stays None); other annotations take the value as it is."""
    args = typing.get_args(annotation)
    if type(None) in args:
        if value is None:
            return None
        rest = [a for a in args if a is not type(None)]
        annotation = rest[0] if len(rest) == 1 else Any
    origin = typing.get_origin(annotation) or annotation
    sample = {int: 0, float: 0.0, bool: False, str: "", tuple: (0.0,), list: [""],
              dict: {}}.get(origin)
    if sample is None:
        return value
    return coerce(value, sample, where)


def _build(cls: type, raw: Mapping[str, Any], where: str):
    return assign(cls(), raw, where)


def coerce(value: Any, default: Any, where: str) -> Any:
    """Coerce a YAML / command-line value to the type of the option's default."""
    if default is None or value is None:
        return value
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("true", "1", "yes"):
                    return True
                if value.lower() in ("false", "0", "no"):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            return _finite(float(value), value, where)
        if isinstance(default, tuple):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(_finite(float(v), value, where) for v in items)
        if isinstance(default, list):
            return [str(v) for v in (value.split(",") if isinstance(value, str) else value)]
        if isinstance(default, dict):
            if not isinstance(value, Mapping):
                raise ValueError(value)
            return dict(value)
        return str(value)
    except ConfigError:
        raise
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{where}: cannot read {value!r} as {type(default).__name__}") from None


def _finite(number: float, given: Any, where: str) -> float:
    if not math.isfinite(number):
        raise ConfigError(f"{where}: {given!r} is not a finite number")
    return number
