"""Two-corpus (cross-corpus) raw pairs: tiny IEMOCAP, MSP-IMPROV and manifest corpora in their
release layouts, tiny random backbones, through the run path: the whole source corpus (less
its held-out part) against the whole target corpus, classes matched by name, no target
corruption unless asked, one frozen-state cache keyed per corpus, one-line config errors."""

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("transformers")
pytest.importorskip("av")
pytest.importorskip("soundfile")

from boomda.config import RunConfig  # noqa: E402
from boomda.data.raw_config import corpus_config, modality_configs  # noqa: E402
from boomda.data.raw_pair import build_raw_pair, read_corpus  # noqa: E402
from boomda.errors import ConfigError, DataError  # noqa: E402
from boomda.resolve import resolve  # noqa: E402
from boomda.run import run_experiment  # noqa: E402
from tests import rawcorpus as rc  # noqa: E402

#: the training device; BOOMDA_TEST_DEVICE=cuda runs this module on a GPU
DEVICE = os.environ.get("BOOMDA_TEST_DEVICE", "cpu")
MODALITIES = ("acoustic", "visual", "lexical")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("cross")
    return {
        "backbones": rc.tiny_backbones(root / "backbones", layers=3),
        "iemocap": rc.make_tiny_iemocap(root / "IEMOCAP", per_class=6),  # 24 of 4 classes
        "msp-improv": rc.make_tiny_msp_improv(root / "MSP-IMPROV", per_class=3),  # 12 (+ 1 O)
        "manifest": rc.make_tiny_manifest(root / "corpus", per_class=6),  # 24
        "other": rc.make_tiny_manifest(root / "other", per_class=2),  # 8, other files
    }


def _section(corpora, source, target, cache, **overrides) -> dict:
    """A two-corpus raw section; ``source``/``target`` are keys of ``corpora`` or (name, path)."""
    def side(which):
        return which if isinstance(which, tuple) else (
            "manifest" if which == "other" else which, corpora[which])

    return rc.pair_config(side(source), side(target), corpora["backbones"], cache, **overrides)


def _raw(section):
    return RunConfig.from_dict({"raw": section}).raw


def _rewrite_manifest(manifest: Path, name: str, labels: dict[str, str | None]) -> Path:
    """A copy of ``manifest`` next to it (same files) with each label renamed by ``labels``;
    rows whose label maps to None are left out."""
    rows = list(csv.DictReader(manifest.open()))
    out = manifest.parent / name
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        for row in rows:
            label = labels.get(row["label"], row["label"])
            if label is not None:
                writer.writerow({**row, "label": label})
    return out


def _msp_labels(per_class: int) -> dict[str, int]:
    """Utterance id -> the label index of its class in the four common classes."""
    return {f"MSP-IMPROV-{utt}": rc.CLASSES.index(rc.MSP_IMPROV_CLASS[letter])
            for utt, letter in rc.msp_improv_utterances(per_class) if letter != "O"}


def test_iemocap_to_msp_improv_runs_end_to_end(corpora, tmp_path):
    section = _section(corpora, "iemocap", "msp-improv", tmp_path / "cache")
    config = RunConfig.from_dict({"raw": section, "out": str(tmp_path / "runs"), "name": "pair",
                                  "train": {"epochs": 1, "batch_size": 4, "device": DEVICE}})
    result = run_experiment(config)
    folder = result.folder
    assert all((folder / f).is_file() for f in ("config.yaml", "results.json", "model.pt",
                                                 "metrics.jsonl"))
    results = json.loads((folder / "results.json").read_text())
    # the whole MSP-IMPROV corpus is the target (12 utterances; the one labelled O is dropped);
    # the whole IEMOCAP corpus the source: round(0.2 * 6) = 1 of each class's 6 held out
    assert results["target"]["n"] == 12 and results["source_holdout"]["n"] == 4
    assert results["raw"]["n_utterances"] == 24 + 12
    assert results["steps"] == 20 // 4
    assert "raw:iemocap->msp-improv" in (folder / "config.yaml").read_text()

    # the target is scored on its own labels, renumbered to the source's classes by name
    raw_pair = build_raw_pair(config.raw, seed=0, holdout=0.2)
    target = raw_pair.pair.target
    assert dict(zip(raw_pair.ids["target"], target.labels.tolist(), strict=True)) == \
        _msp_labels(3)
    assert raw_pair.info["classes"] == list(rc.CLASSES)
    assert raw_pair.info["corpora"]["target"]["class_counts"] == dict.fromkeys(rc.CLASSES, 3)
    assert not set(raw_pair.ids["source"]) & set(raw_pair.ids["source_holdout"])
    assert len(raw_pair.ids["source"]) + len(raw_pair.ids["source_holdout"]) == 24
    predicted = result.adapter.predict(target)
    assert results["target"]["accuracy"] == pytest.approx(
        100.0 * np.mean(predicted == target.labels))


def test_manifest_to_manifest_matches_classes_by_name(corpora, tmp_path):
    # the target lists its classes in another order and has no angry utterance
    target_csv = _rewrite_manifest(corpora["other"], "three.csv", {"angry": None})
    section = _section(corpora, "manifest", ("manifest", target_csv), tmp_path / "cache")
    section["target"]["classes"] = ["sad", "neutral", "happy"]
    config = RunConfig.from_dict({"raw": section, "out": str(tmp_path / "runs"), "name": "m2m",
                                  "data": {"holdout": 0.0},
                                  "train": {"epochs": 1, "batch_size": 4, "device": DEVICE}})
    result = run_experiment(config)
    assert result.results["target"]["n"] == 6 and result.results["source_holdout"] is None
    assert (result.folder / "results.json").is_file()
    assert "raw:manifest->manifest" in (result.folder / "config.yaml").read_text()
    raw_pair = build_raw_pair(config.raw, seed=0, holdout=0.0)
    names = {row["id"]: row["label"] for row in csv.DictReader(target_csv.open())}
    expected = [rc.CLASSES.index(names[i]) for i in raw_pair.ids["target"]]
    assert raw_pair.pair.target.labels.tolist() == expected
    assert sorted(expected) == [0, 0, 1, 1, 2, 2]
    assert raw_pair.pair.n_classes == 4 and len(raw_pair.pair.source) == 24


def test_a_target_class_the_source_lacks_is_a_one_line_error(corpora, tmp_path, capsys):
    surprised = _rewrite_manifest(corpora["other"], "surprised.csv", {"angry": "surprised"})
    section = _section(corpora, "manifest", ("manifest", surprised), "")
    del section["target"]["classes"]  # the classes found in the file
    with pytest.raises(DataError) as error:
        build_raw_pair(_raw(section))
    message = str(error.value)
    assert "class 'surprised' of the target corpus" in message and "\n" not in message
    assert "source corpus corpus (neutral, happy, sad, angry)" in message
    # a target labelled with MSP-IMPROV's letters: the error says which name a letter means
    letters = _rewrite_manifest(corpora["other"], "letters.csv", rc.MSP_IMPROV_LETTER)
    section = _section(corpora, "iemocap", ("manifest", letters), "")
    del section["target"]["classes"]
    with pytest.raises(DataError, match="class 'A' of the target corpus letters .*'A' is "
                                        "msp-improv's code for angry: label it angry"):
        build_raw_pair(_raw(section))

    from boomda.cli import main

    path = tmp_path / "pair.yaml"
    path.write_text(yaml.safe_dump({"raw": section}))
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert "class 'A'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def _unpadded(view: np.ndarray) -> np.ndarray:
    """One packed sequence's real steps (channel 0 marks them), without the mark."""
    return view[view[:, 0] > 0, 1:]


def test_real_target_is_not_corrupted_unless_asked(corpora):
    section = _section(corpora, "manifest", "other", "")
    raw_pair = build_raw_pair(_raw(section), seed=3, holdout=0.0)
    assert raw_pair.info["corruptions"] == dict.fromkeys(MODALITIES, "none")
    raw = _raw(section)
    items = {it.id: it for it in read_corpus(corpus_config(raw, "target"),
                                             ["audio", "text", "video"]).items}
    first = items[raw_pair.ids["target"][0]]
    for m, pipeline in raw_pair.pipelines.items():
        clean = pipeline.compute(first, corrupt=False, seed=3).astype(np.float16)
        np.testing.assert_allclose(_unpadded(raw_pair.pair.target.views[m][0]), clean,
                                   rtol=1e-3, atol=1e-3)

    # the target's corruption stays available: set on a modality, it applies to that one
    section["modalities"]["lexical"]["corruption"] = "default"
    section["modalities"]["acoustic"]["corruption"] = "noise:snr=2"
    corrupted = build_raw_pair(_raw(section), seed=3, holdout=0.0)
    assert corrupted.info["corruptions"] == {"acoustic": "noise:snr=2", "visual": "none",
                                             "lexical": "mask_words:fraction=0.4"}
    for m in ("acoustic", "lexical"):
        pipeline = corrupted.pipelines[m]
        got = _unpadded(corrupted.pair.target.views[m][0])
        np.testing.assert_allclose(got, pipeline.compute(first, True, 3).astype(np.float16),
                                   rtol=1e-3, atol=1e-3)
        clean = pipeline.compute(first, False, 3).astype(np.float16)
        assert got.shape != clean.shape or np.abs(got - clean).max() > 0.05
    np.testing.assert_array_equal(corrupted.pair.source.views["lexical"],
                                  raw_pair.pair.source.views["lexical"])


def test_cache_is_shared_by_both_corpora_and_keyed_per_corpus(corpora, tmp_path):
    cache = tmp_path / "cache"
    forward = build_raw_pair(_raw(_section(corpora, "iemocap", "msp-improv", cache)), seed=0)
    n = len(MODALITIES) * (24 + 12)
    assert forward.info["cache"] == {"dir": str(cache), "hits": 0, "misses": n}
    # the reverse pair reads every entry: both corpora are clean, whichever side they are on
    reverse = build_raw_pair(_raw(_section(corpora, "msp-improv", "iemocap", cache)), seed=0)
    assert reverse.info["cache"] == {"dir": str(cache), "hits": n, "misses": 0}
    assert reverse.info["corpus"] == "msp-improv->iemocap"
    assert reverse.info["corpora"]["source"]["n_utterances"] == 12
    # the one-corpus protocol on IEMOCAP reads its clean source half, computes its corrupted
    # target half
    one = build_raw_pair(_raw(rc.raw_config("iemocap", corpora["iemocap"], corpora["backbones"],
                                            cache)), seed=0)
    assert one.info["cache"]["hits"] == len(MODALITIES) * 12
    assert one.info["cache"]["misses"] == len(MODALITIES) * 12

    # two corpora listing the very same files and transcripts get their own entries
    manifest = corpora["manifest"]
    twin = _rewrite_manifest(manifest, "twin.csv", {})
    section = _section(corpora, "manifest", ("manifest", twin), tmp_path / "twin-cache")
    section["modalities"] = {m: section["modalities"][m] for m in ("acoustic", "lexical")}
    pair = build_raw_pair(_raw(section), seed=0, holdout=0.0)
    assert pair.info["cache"]["misses"] == 2 * (24 + 24) and pair.info["cache"]["hits"] == 0
    raw = _raw(section)
    a = read_corpus(corpus_config(raw, "source"), ["audio", "text"]).items[0]
    b = read_corpus(corpus_config(raw, "target"), ["audio", "text"]).items[0]
    assert (a.id, a.audio, a.text) == (b.id, b.audio, b.text) and a.corpus != b.corpus
    assert a.corpus == f"manifest:{manifest.resolve()}"
    for pipeline in pair.pipelines.values():
        assert pipeline.key(a, False, 0) != pipeline.key(b, False, 0)
        np.testing.assert_array_equal(pipeline.frozen_states(a, False, 0),
                                      pipeline.frozen_states(b, False, 0))


def test_each_corpus_keeps_its_own_options(corpora, tmp_path):
    # an MSP-IMPROV copy with one audio file missing: skipped by the target's own skip_missing
    root = rc.make_tiny_msp_improv(tmp_path / "MSP-IMPROV", per_class=1)
    gone = next((root / "Audio").rglob("MSP-IMPROV-S01H-*.wav"))
    gone.unlink()
    section = _section(corpora, "iemocap", ("msp-improv", root), "")
    section["modalities"] = {m: section["modalities"][m] for m in ("acoustic", "lexical")}
    with pytest.raises(DataError, match="missing audio file"):
        build_raw_pair(_raw(section), holdout=0.0)
    section["target"]["skip_missing"] = True
    section["source"]["merge_excited"] = True
    with pytest.warns(UserWarning, match=r"MSP-IMPROV: 1 of 4 labelled utterances skipped"):
        raw_pair = build_raw_pair(_raw(section), holdout=0.0)
    info = raw_pair.info
    assert info["corpora"]["target"]["skipped_missing"] == 1 and info["skipped_missing"] == 1
    assert info["corpora"]["target"]["class_counts"] == {"neutral": 1, "happy": 0, "sad": 1,
                                                         "angry": 1}
    assert len(raw_pair.pair.target) == 3 and info["n_utterances"] == 24 + 3
    assert raw_pair.pair.target.labels.tolist() == [0, 2, 3]
    assert corpus_config(_raw(section), "source").merge_excited
    assert not corpus_config(_raw(section), "target").merge_excited


def test_two_corpus_config_errors_are_one_line(corpora):
    section = _section(corpora, "iemocap", "msp-improv", "")
    top = "config.raw"
    cases = [
        ({"target": None}, f"{top}.target: a two-corpus config needs both {top}.source and "
                           f"{top}.target"),
        ({"source": {}}, f"{top}.source: a two-corpus config needs both"),
        ({"path": "/data/IEMOCAP"}, f"{top}.path: with {top}.source and {top}.target, each "
                                    f"corpus's options go under them"),
        ({"skip_missing": True}, f"{top}.skip_missing: with {top}.source and {top}.target"),
        ({"target": {**section["target"], "max_seconds": 4}},
         f"{top}.target: unknown option 'max_seconds'; a corpus's options are corpus, path, "),
        ({"target": {**section["target"], "corpus": "msp"}},
         f"{top}.target.corpus must be iemocap, msp-improv or manifest, got 'msp'"),
        ({"source": {"corpus": "iemocap"}}, f"{top}.source.path: give the corpus folder"),
        ({"source": {**section["source"], "video_crop": "left"}},
         f"option {top}.source.video_crop must be speaker or full"),
        ({"source": "iemocap"}, f"{top}.source: cannot read 'iemocap' as dict"),
    ]
    for change, message in cases:
        bad = {**section, **change}
        if bad.get("target") is None:
            del bad["target"]
        with pytest.raises(ConfigError) as error:
            resolve(RunConfig.from_dict({"raw": bad}))
        assert message in str(error.value), (change, str(error.value))
        assert "\n" not in str(error.value)


def test_example_cross_corpus_config_parses():
    root = Path(__file__).resolve().parents[1] / "configs"
    config = RunConfig.from_yaml(root / "iemocap-to-msp-improv.yaml")
    raw = config.raw
    assert raw.is_pair and raw.label == "iemocap->msp-improv"
    source, target = corpus_config(raw, "source"), corpus_config(raw, "target")
    assert (source.corpus, target.corpus) == ("iemocap", "msp-improv")
    assert source.merge_excited and source.skip_missing
    specs = modality_configs(raw)
    assert [s.signal for s in specs.values()] == ["audio", "video", "text"]
    assert all(s.corruption == "none" for s in specs.values())
    assert all("/" in s.backbone and not Path(s.backbone).exists() for s in specs.values())
