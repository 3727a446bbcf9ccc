"""Refactors and speed-ups must not change what is trained: the losses of reference runs over
their first 50 steps, recorded in ``tests/data/reference_losses.json`` by the code before the
balancing-gradient and trainer changes (boomda 0.1.0, torch 2.13 CPU, one thread), are
reproduced within 1e-5."""

import json
from pathlib import Path

import pytest

from boomda import DomainAdapter
from boomda.config import RunConfig
from boomda.run import build_pair

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REFERENCE = json.loads((Path(__file__).parent / "data" / "reference_losses.json").read_text())


@pytest.fixture(scope="module")
def pair():
    modalities = REFERENCE["data"]["modalities"]
    return build_pair(RunConfig.from_dict({"data": {"modalities": modalities}}))


@pytest.mark.parametrize("case", REFERENCE["cases"],
                         ids=[",".join(f"{v}" for v in c["options"].values())
                              for c in REFERENCE["cases"]])
def test_first_50_losses_match_the_reference(pair, case):
    adapter = DomainAdapter(**REFERENCE["train"], **case["options"]).fit(pair)
    losses = [log.loss for log in adapter.history[:50]]
    assert losses == pytest.approx(case["losses"], rel=1e-5, abs=1e-5)
