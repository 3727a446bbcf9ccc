"""The snippets of docs/extending.md, run as they are written: each adds an entry to a registry
with one small definition and one registry line, and the entry is then usable by name and
appears in the lists and help texts derived from the registry. The registries are restored
after each test."""

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from boomda import DomainAdapter, DomainPair, MultimodalData, RunConfig
from boomda.cli import main
from boomda.errors import ConfigError
from boomda.registry import BALANCERS, CA_FORMS, METHODS, READERS, Lazy, table_order
from boomda.resolve import resolve
from boomda.select import VALIDATORS
from tests.conftest import make_views

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
TINY = {"epochs": 2, "batch_size": 16, "dim": 8, "hidden": 16, "device": "cpu", "seed": 0}


def _snippets(heading: str) -> list[str]:
    """The Python blocks of the section of docs/extending.md called ``heading``."""
    sections = re.split(r"^## ", DOC.read_text(encoding="utf-8"), flags=re.M)
    section = next(s for s in sections if s.startswith(heading + "\n"))
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.fixture
def run_doc(monkeypatch):
    """Run a section's snippets as one module; returns its namespace. Every registry gets its
    entries back afterwards."""
    for registry in (METHODS, BALANCERS, CA_FORMS, READERS, VALIDATORS):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))

    def run(heading: str) -> dict:
        blocks = _snippets(heading)
        assert blocks, heading
        module = types.ModuleType("extending_" + re.sub(r"\W", "_", heading))
        monkeypatch.setitem(sys.modules, module.__name__, module)
        for block in blocks:
            exec(compile(block, f"{DOC}: {heading}", "exec"), module.__dict__)
        return module.__dict__

    return run


def _pair():
    views, y = make_views(n=64)
    target, ty = make_views(n=64, seed=1)
    return DomainPair.from_arrays(MultimodalData(views, y),
                                  MultimodalData({k: v + 1 for k, v in target.items()}, ty),
                                  source_holdout=MultimodalData(views, y))


def _run_help(capsys) -> str:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_a_method_from_the_doc_trains_and_is_listed(run_doc, capsys):
    ns = run_doc("A method")
    assert METHODS["mmd"] is ns["LinearMMD"]
    adapter = DomainAdapter(method="mmd", options={"weight": 0.5}, **TINY).fit(_pair())
    assert adapter.history[-1].weights["mmd"] == 0.5 and adapter.history[-1].terms["mmd"] >= 0
    with pytest.raises(ConfigError, match="options.weight"):
        DomainAdapter(method="mmd", options={"weight": -1}, **TINY).fit(_pair())
    assert "--method METHOD" in _run_help(capsys)
    assert re.search(r"--method METHOD .*one of: [a-z_, ]*\bmmd\b", _run_help(capsys))
    # no table_rank: after the ranked methods in the report's order
    assert table_order(["mmd", "boomda", "dt"]) == ["dt", "boomda", "mmd"]


def test_a_balancing_strategy_from_the_doc_weighs_by_inverse_gradient_norm(run_doc, capsys):
    ns = run_doc("A balancing strategy")
    q = np.diag([1.0, 4.0, 16.0, 64.0])
    assert ns["solve_inverse_norm"](q) == pytest.approx(np.array([8, 4, 2, 1]) / 15)
    adapter = DomainAdapter(method="boomda", gamma_solver="inverse_norm", **TINY).fit(_pair())
    gamma = np.array(adapter.history[-1].gamma)
    assert gamma.sum() == pytest.approx(1.0) and (gamma > 0).all()
    assert re.search(r"--gamma-solver GAMMA_SOLVER .*one of: [a-z_, ]*\binverse_norm\b",
                     _run_help(capsys))


def test_an_alignment_form_from_the_doc_is_used(run_doc, capsys):
    ns = run_doc("A correlation-alignment form")
    calls = []

    def spy(z_source, z_target):
        calls.append(z_source.shape)
        return ns["mean_gap"](z_source, z_target)

    torch = pytest.importorskip("torch")
    z_s, z_t = torch.zeros(4, 3), torch.ones(5, 3)
    assert float(CA_FORMS["mean_gap"](z_s, z_t)) == pytest.approx(1.0)
    CA_FORMS["mean_gap"] = spy  # in the test's copy of the registry
    DomainAdapter(method="uniform", ca_form="mean_gap", **TINY).fit(_pair())
    assert calls and calls[0][1] in (8, 24)
    assert re.search(r"--ca-form CA_FORM .*one of: [a-z_, ]*\bmean_gap\b", _run_help(capsys))


def test_a_validator_from_the_doc_scores_every_run(run_doc, capsys):
    from boomda.select import score_model

    run_doc("A label-free validator")
    pair = _pair()
    adapter = DomainAdapter(method="dt", **TINY).fit(pair)
    scores = score_model(adapter, pair)
    probs = adapter.predict_proba(pair.target)
    assert scores["confidence"] == pytest.approx(float(probs.max(axis=1).mean()), rel=1e-5)
    assert re.search(r"--select VALIDATOR .*\bconfidence\b", _run_help(capsys))


def test_a_corpus_reader_from_the_doc_reads_a_tiny_corpus(run_doc, tmp_path):
    from boomda.data.raw_pair import read_corpus

    run_doc("A corpus reader")
    for name, utterances in (("happy", ["h1", "h2"]), ("sad", ["s1"])):
        (tmp_path / name).mkdir()
        for u in utterances:
            (tmp_path / name / f"{u}.wav").write_bytes(b"")
            (tmp_path / name / f"{u}.txt").write_text(f"words of {u}\n", encoding="utf-8")
    section = {"corpus": "class-folders", "path": str(tmp_path),
               "modalities": {"a": {"signal": "audio", "backbone": "b"},
                              "t": {"signal": "text", "backbone": "c"}}}
    raw = RunConfig.from_dict({"raw": section}).raw
    corpus = read_corpus(raw, ["audio", "text"])
    assert corpus.classes == ("happy", "sad")
    assert [(i.id, i.label, i.text) for i in corpus.items] == [
        ("h1", 0, "words of h1"), ("h2", 0, "words of h2"), ("s1", 1, "words of s1")]
    assert corpus.items[2].audio == tmp_path / "sad" / "s1.wav"
    with pytest.raises(ConfigError, match="class-folders, got 'other'"):
        resolve(RunConfig.from_dict({"raw": {**section, "corpus": "other"}}))


def test_the_registries_are_restored_after_the_doc_tests():
    assert "mmd" not in METHODS and "inverse_norm" not in BALANCERS
    assert "mean_gap" not in CA_FORMS and "class-folders" not in READERS
    assert "confidence" not in VALIDATORS


@pytest.mark.parametrize("registry", [METHODS, BALANCERS], ids=["methods", "balancers"])
def test_the_traits_a_lazy_entry_declares_are_its_class_attributes(registry):
    declared = [name for name, entry in registry._entries.items() if isinstance(entry, Lazy)]
    assert len(declared) >= 5
    for name, entry in {n: e for n, e in registry._entries.items()
                        if isinstance(e, Lazy)}.items():
        cls = entry.load()
        assert cls is registry[name]
        for key, value in entry.traits.items():
            value = value.load() if isinstance(value, Lazy) else value
            assert getattr(cls, key, None) == value, (name, key)
