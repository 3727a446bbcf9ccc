"""Backbones by Hugging Face hub id (:mod:`boomda.nn.hub`), without any download.

The Hugging Face cache is laid out by hand under a temporary ``HF_HOME``, as ``huggingface_hub``
lays it out (``models--org--name/blobs/<sha256>``, ``snapshots/<commit>/<file>`` links to the
blobs, ``refs/main``), from tiny random models saved with ``save_pretrained``. Cache lookups
go through the real ``snapshot_download``; the one test of a first download replaces only the
download itself by a fake hub that writes the same layout. Every other call is checked to stay
local (``local_files_only=True``).
"""

import hashlib
import os
from pathlib import Path

import pytest
import torch
import yaml

pytest.importorskip("transformers")
pytest.importorskip("av")
pytest.importorskip("soundfile")
huggingface_hub = pytest.importorskip("huggingface_hub")

from boomda.cli import main  # noqa: E402
from boomda.config import RunConfig  # noqa: E402
from boomda.errors import ConfigError  # noqa: E402
from boomda.estimator import DomainAdapter  # noqa: E402
from boomda.nn.backbones import PretrainedBackbone  # noqa: E402
from boomda.nn.hub import LOCAL, resolve_backbone  # noqa: E402
from boomda.run import run_experiment  # noqa: E402
from tests import rawcorpus as rc  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

COMMIT_A = "a" * 40
COMMIT_B = "0123456789abcdef0123456789abcdef01234567"
REAL_SNAPSHOT_DOWNLOAD = huggingface_hub.snapshot_download
OFFLINE_WAYS = ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "allow_download"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The tiny speech, text and image models, and the text model with one weight changed."""
    root = tmp_path_factory.mktemp("models")
    folders = rc.tiny_backbones(root, layers=2)
    model = PretrainedBackbone.from_pretrained(str(folders["text"]), "text", 1).model
    with torch.no_grad():
        model.encoder.layer[0].output.dense.bias.add_(1.0)
    model.save_pretrained(root / "text-changed")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        if (folders["text"] / name).exists():
            (root / "text-changed" / name).write_bytes((folders["text"] / name).read_bytes())
    return {**folders, "text-changed": root / "text-changed"}


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def cache_model(hub: Path, repo_id: str, files: dict[str, bytes], commit: str,
                ref: str | None = "main") -> Path:
    """Lay ``files`` out in the cache folder ``hub`` as ``huggingface_hub`` does; returns the
    snapshot folder."""
    storage = hub / f"models--{repo_id.replace('/', '--')}"
    snapshot = storage / "snapshots" / commit
    for name, data in files.items():
        blob = storage / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    if ref is not None:
        (storage / "refs").mkdir(parents=True, exist_ok=True)
        (storage / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache under a temporary HF_HOME, downloads refused by a guard."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for variable in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)

    def local_only(*args, **kwargs):
        assert kwargs.get("local_files_only"), "a test tried to download"
        return REAL_SNAPSHOT_DOWNLOAD(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", local_only)
    return tmp_path / "hf" / "hub"


def _offline(monkeypatch, how: str) -> bool:
    """Switch downloads off one of the three ways; returns the allow_download to pass."""
    if how == "allow_download":
        return False
    monkeypatch.setenv(how, "1")
    return True


def _fingerprint(folder, kind="text") -> str:
    return PretrainedBackbone.from_pretrained(str(folder), kind, 1).weights_fingerprint()


def test_a_local_folder_is_used_as_it_is(models, hub, monkeypatch):
    resolved = resolve_backbone(str(models["text"]))
    assert (resolved.folder, resolved.revision, resolved.repo_id) == (
        str(models["text"]), LOCAL, None)
    monkeypatch.chdir(models["text"].parent)  # a relative folder becomes absolute
    assert resolve_backbone("text").folder == str(models["text"])
    assert not hub.exists()  # the cache was never looked at


@pytest.mark.parametrize("how", OFFLINE_WAYS)
def test_a_hub_id_resolves_to_its_cached_snapshot(models, hub, monkeypatch, how):
    old = cache_model(hub, "tiny-org/bert", _files(models["text-changed"]), COMMIT_A)
    new = cache_model(hub, "tiny-org/bert", _files(models["text"]), COMMIT_B)  # refs/main
    allow = _offline(monkeypatch, how)
    resolved = resolve_backbone("tiny-org/bert", allow_download=allow)
    assert (resolved.folder, resolved.revision, resolved.repo_id) == (
        str(new), COMMIT_B, "tiny-org/bert")
    pinned = resolve_backbone(f"tiny-org/bert@{COMMIT_A}", allow_download=allow)
    assert (pinned.folder, pinned.revision) == (str(old), COMMIT_A)
    # the weights are the saved model's, and the fingerprint tells the two revisions apart
    assert _fingerprint(resolved.folder) == _fingerprint(models["text"])
    assert _fingerprint(pinned.folder) == _fingerprint(models["text-changed"])
    assert _fingerprint(resolved.folder) != _fingerprint(pinned.folder)


@pytest.mark.parametrize("how", OFFLINE_WAYS)
def test_an_uncached_hub_id_is_one_line_naming_it_and_the_fix(hub, monkeypatch, how):
    allow = _offline(monkeypatch, how)
    with pytest.raises(ConfigError) as error:
        resolve_backbone("tiny-org/absent", allow_download=allow)
    message = str(error.value)
    assert "\n" not in message
    reason = "allow_download is false" if how == "allow_download" else f"{how}=1"
    for part in ("'tiny-org/absent'", f"not in the local cache {hub}", reason,
                 "`hf download tiny-org/absent`", "give the folder of the model"):
        assert part in message, part


def test_bad_specs_are_named(hub):
    for spec in ("./no/such/folder", "/no/such/folder", "a/b/c", "org/name@", "bad name!"):
        with pytest.raises(ConfigError, match="no such folder, and not a Hugging Face hub"):
            resolve_backbone(spec)


def _fake_hub(repos: dict[str, dict[str, bytes]], calls: list, commit: str = COMMIT_B):
    """A snapshot_download whose downloads copy the files of ``repos`` that match the allowed
    patterns into the cache (as the hub's client does), at ``commit``; lookups stay real."""
    from huggingface_hub.utils import filter_repo_objects

    def snapshot_download(repo_id, *, revision=None, cache_dir=None, local_files_only=False,
                          allow_patterns=None, **kwargs):
        if local_files_only or os.environ.get("HF_HUB_OFFLINE"):
            return REAL_SNAPSHOT_DOWNLOAD(repo_id, revision=revision, cache_dir=cache_dir,
                                          local_files_only=True, allow_patterns=allow_patterns)
        calls.append((repo_id, revision, cache_dir, list(allow_patterns)))
        files = repos[repo_id]
        chosen = {n: files[n] for n in filter_repo_objects(files, allow_patterns=allow_patterns)}
        return str(cache_model(Path(cache_dir), repo_id, chosen, commit))

    return snapshot_download


def test_first_use_downloads_only_what_transformers_loads_then_reads_the_cache(
        models, hub, monkeypatch):
    text = _files(models["text"])
    assert "model.safetensors" in text
    extra = {"tf_model.h5": b"tf", "onnx/model.onnx": b"onnx", "pytorch_model.bin": b"pt",
             "README.md": b"# card"}
    repos = {"tiny-org/bert": {**text, **extra},
             "tiny-org/old": {"config.json": text["config.json"], "pytorch_model.bin": b"pt"}}
    calls: list = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _fake_hub(repos, calls))

    resolved = resolve_backbone("tiny-org/bert")
    assert resolved.revision == COMMIT_B and len(calls) == 1
    assert calls[0][2] == str(hub)  # the cache under HF_HOME
    cached = set(_files(Path(resolved.folder)))
    assert cached == set(text)  # configs, tokenizer and safetensors; none of the extras
    assert _fingerprint(resolved.folder) == _fingerprint(models["text"])

    # offline afterwards: read from the cache, nothing fetched
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_backbone("tiny-org/bert") == resolved and len(calls) == 1
    monkeypatch.delenv("HF_HUB_OFFLINE")

    # a model without safetensors: its pytorch_model.bin, in a second request
    old = resolve_backbone("tiny-org/old")
    assert [c[3][-1] for c in calls[1:]] == ["model*.safetensors", "pytorch_model*.bin"]
    assert set(_files(Path(old.folder))) == {"config.json", "pytorch_model.bin"}


def test_a_model_the_hub_does_not_have_is_one_line(hub, monkeypatch):
    import httpx2
    from huggingface_hub.errors import RepositoryNotFoundError

    def missing(repo_id, **kwargs):
        request = httpx2.Request("GET", f"https://huggingface.co/api/models/{repo_id}")
        raise RepositoryNotFoundError("404", response=httpx2.Response(404, request=request))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", missing)
    with pytest.raises(ConfigError, match=r"no model 'tiny-org/typo' that this machine may read "
                                          r"on the Hugging Face hub .*hf auth login"):
        resolve_backbone("tiny-org/typo")


HUB_IDS = {"speech": "tiny-org/wavlm", "image": "tiny-org/vit", "text": "tiny-org/bert"}


def test_a_raw_run_with_hub_ids_records_revisions_and_fingerprints(models, hub, tmp_path,
                                                                   monkeypatch):
    snapshots = {kind: cache_model(hub, repo, _files(models[kind]), COMMIT_B)
                 for kind, repo in HUB_IDS.items()}
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    manifest = rc.make_tiny_manifest(tmp_path / "corpus", per_class=3)
    raw = rc.raw_config("manifest", manifest, HUB_IDS, tmp_path / "cache")
    config = RunConfig.from_dict({"raw": raw, "train": {"epochs": 1, "batch_size": 4},
                                  "out": str(tmp_path / "runs"), "name": "hub"})
    result = run_experiment(config)

    recorded = result.results["raw"]["backbones"]
    kinds = {"acoustic": ("speech", "speech"), "visual": ("image", "image"),
             "lexical": ("text", "text")}
    for modality, (kind, backbone_kind) in kinds.items():
        entry = recorded[modality]
        assert entry["backbone"] == entry["repo_id"] == HUB_IDS[kind]
        assert entry["revision"] == COMMIT_B and entry["folder"] == str(snapshots[kind])
        assert entry["weights_fingerprint"] == _fingerprint(models[kind], backbone_kind)
    saved = yaml.safe_load((result.folder / "config.yaml").read_text())
    assert saved["pair"]["backbones"] == recorded
    assert saved["raw"]["modalities"]["lexical"]["backbone"] == "tiny-org/bert"
    # the saved model reloads offline from the same snapshots
    adapter = DomainAdapter.load(result.folder / "model.pt")
    assert adapter.method.net.encoders["lexical"].backbone.source == str(snapshots["text"])

    # a local folder is recorded as such
    local = rc.raw_config("manifest", manifest, models, tmp_path / "cache")
    config = RunConfig.from_dict({"raw": local, "train": {"epochs": 1, "batch_size": 4},
                                  "out": str(tmp_path / "runs"), "name": "local"})
    entry = run_experiment(config).results["raw"]["backbones"]["lexical"]
    assert (entry["revision"], entry["repo_id"], entry["folder"]) == (
        LOCAL, None, str(models["text"]))
    assert entry["weights_fingerprint"] == recorded["lexical"]["weights_fingerprint"]


def test_cli_names_the_modality_of_an_uncached_hub_id(models, hub, tmp_path, monkeypatch,
                                                      capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    manifest = rc.make_tiny_manifest(tmp_path / "corpus", per_class=1)
    raw = rc.raw_config("manifest", manifest, models, tmp_path / "cache")
    raw["modalities"]["acoustic"]["backbone"] = "tiny-org/not-cached"
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"raw": raw, "out": str(tmp_path / "runs")}))
    assert main(["run", "--config", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("boomda: error: raw.modalities.acoustic."
                                                   "backbone: backbone 'tiny-org/not-cached'")
    assert "HF_HUB_OFFLINE=1" in err and "`hf download tiny-org/not-cached`" in err
    assert not (tmp_path / "runs").exists()
