"""Where a backbone's weights come from: a local folder, or a model id on the Hugging Face Hub.

A backbone spec (``raw.modalities.<name>.backbone``) follows the convention of ``transformers``'
``from_pretrained``:

- an existing folder (``config.json`` and weights) is used as it is; its revision is ``"local"``;
- otherwise it is read as a hub model id, ``name`` or ``org/name``, optionally pinned to a branch,
  tag or commit with ``@revision`` (``microsoft/wavlm-base-plus@<commit>``). The model is
  fetched with ``huggingface_hub.snapshot_download`` into the Hugging Face cache
  (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``) the first time,
  and read from the cache afterwards; its revision is the commit hash of the cached snapshot.

Only what ``transformers`` loads is fetched: the JSON configs, tokenizer files and the
safetensors weights (``pytorch_model*.bin`` when the model has no safetensors), not the
TensorFlow, Flax, ONNX or other copies a model repository often holds.

Nothing is downloaded when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set (read when a
backbone is resolved), or when the caller passes ``allow_download=False``
(``raw.allow_download: false``, for machines without network access): a hub id must then be in
the cache, and one that is not is a one-line :class:`~boomda.errors.ConfigError` naming the
model and how to fetch it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from boomda.errors import ConfigError

#: revision recorded for a backbone read from a local folder
LOCAL = "local"
#: what ``transformers`` needs besides the weights: configs, tokenizer and preprocessor files
SMALL_FILES = ["*.json", "*.txt", "*.model"]
#: the weights, in order of preference: the first pattern that matches a file is used
WEIGHT_PATTERNS = ["model*.safetensors", "pytorch_model*.bin"]
_TRUE = {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class ResolvedBackbone:
    """A backbone spec and the local folder it resolved to.

    ``revision``: the commit hash of the hub snapshot, or :data:`LOCAL` for a folder;
    ``repo_id``: the hub model id (None for a folder)."""

    spec: str
    folder: str
    revision: str
    repo_id: str | None = None

    def record(self) -> dict[str, str | None]:
        """What a run folder records about where the weights came from."""
        return {"backbone": self.spec, "repo_id": self.repo_id, "revision": self.revision,
                "folder": self.folder}


def hub_cache() -> str:
    """The Hugging Face cache folder, from the environment as it is now: ``HF_HUB_CACHE``, else
    ``$HF_HOME/hub``, else the ``huggingface_hub`` default."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def downloads_off(allow_download: bool = True) -> str | None:
    """Why nothing may be downloaded now (``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1`` or
    ``allow_download is false``), or None when downloads are allowed."""
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        value = os.environ.get(variable, "")
        if value.strip().upper() in _TRUE:
            return f"{variable}={value}"
    if not allow_download:
        return "allow_download is false"
    return None


def split_hub_id(spec: str) -> tuple[str, str | None]:
    """``org/name[@revision]`` -> (repo id, revision or None); ConfigError if ``spec`` is not a
    hub model id (a path, an empty name, characters the hub does not allow)."""
    repo_id, _, revision = spec.partition("@")
    looks_like_path = (spec.startswith(("/", ".", "~", "\\")) or os.path.isabs(spec)
                       or repo_id.count("/") > 1 or "\\" in repo_id)
    if not looks_like_path:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        try:
            validate_repo_id(repo_id)
        except HFValidationError:
            looks_like_path = True
    if looks_like_path or (revision == "" and "@" in spec):
        raise ConfigError(f"backbone {spec!r}: no such folder, and not a Hugging Face hub model "
                          f"id (org/name, optionally @revision); give the folder of a "
                          f"transformers model (config.json and weights) or a hub id such as "
                          f"microsoft/wavlm-base-plus")
    return repo_id, revision or None


def resolve_backbone(spec: str, *, allow_download: bool = True) -> ResolvedBackbone:
    """The local folder of a backbone spec: the folder itself, or the cached snapshot of a hub
    model id, fetched first when it is not cached and downloads are allowed (module docstring).
    Errors are one-line :class:`ConfigError`\\ s naming the spec."""
    path = os.path.expanduser(spec)
    if os.path.isdir(path):  # an absolute path, so a saved model finds it from anywhere
        return ResolvedBackbone(spec, os.path.abspath(path), LOCAL)
    repo_id, revision = split_hub_id(spec)
    off = downloads_off(allow_download)
    folder = _snapshot(spec, repo_id, revision, off)
    return ResolvedBackbone(spec, folder, Path(folder).name, repo_id)


def _snapshot(spec: str, repo_id: str, revision: str | None, off: str | None) -> str:
    """The snapshot folder of ``repo_id`` in the cache (fetched unless ``off`` says why not)."""
    import huggingface_hub
    from huggingface_hub import errors

    cache = hub_cache()

    def fetch(weights: str) -> str:
        return huggingface_hub.snapshot_download(
            repo_id, revision=revision, cache_dir=cache, local_files_only=off is not None,
            allow_patterns=[*SMALL_FILES, weights])

    try:
        folder = fetch(WEIGHT_PATTERNS[0])
        if not any(Path(folder).glob(WEIGHT_PATTERNS[0])):
            folder = fetch(WEIGHT_PATTERNS[1])  # no safetensors: the older weight format
    except errors.IncompleteSnapshotError:
        raise ConfigError(f"backbone {spec!r}: the cached snapshot of the hub model {repo_id!r} "
                          f"in {cache} lacks files (an interrupted download?); fetch it again "
                          f"where the hub can be reached (`hf download {repo_id}`)") from None
    except errors.LocalEntryNotFoundError:
        if off is not None:
            raise ConfigError(
                f"backbone {spec!r}: no such folder, and the Hugging Face hub model {repo_id!r}"
                f"{_at(revision)} is not in the local cache {cache}, which is all that can be "
                f"read with {off}. Fetch it once where the hub can be reached (`hf download "
                f"{repo_id}`, or a run {_enabling(off)}), or give the folder of the model") \
                from None
        raise ConfigError(f"backbone {spec!r}: no such folder, and the Hugging Face hub cannot be "
                          f"reached to fetch the model {repo_id!r} (it is not in the cache "
                          f"{cache}); check the network, or give the folder of the model") \
            from None
    except errors.RevisionNotFoundError:
        raise ConfigError(f"backbone {spec!r}: the hub model {repo_id!r} has no revision "
                          f"{revision!r}") from None
    except (errors.RepositoryNotFoundError, errors.GatedRepoError):
        raise ConfigError(f"backbone {spec!r}: no such folder, and no model {repo_id!r} that "
                          f"this machine may read on the Hugging Face hub (a private or gated "
                          f"model needs `hf auth login`)") from None
    except (errors.HfHubHTTPError, OSError, ValueError) as error:
        message = " ".join(str(error).split())[:300]
        raise ConfigError(f"backbone {spec!r}: cannot fetch the hub model {repo_id!r}: "
                          f"{message}") from None
    return folder


def _enabling(off: str) -> str:
    """How to allow downloads again, for the reason ``off`` of :func:`downloads_off`."""
    if off.startswith("allow_download"):
        return "with allow_download: true"
    return f"without {off.split('=')[0]}"


def _at(revision: str | None) -> str:
    return f" at revision {revision!r}" if revision else ""
