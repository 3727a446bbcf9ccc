"""Refactors and speed-ups must not change what is trained: the losses of reference runs over
their first 50 steps, recorded in ``tests/data/reference_losses.json`` by the code before the
balancing-gradient, correlation and trainer changes (``tests/data/make_reference_losses.py``;
torch 2.13 CPU, one thread, float64), are reproduced within 1e-5.

The runs are in float64: in float32, any reordering of the arithmetic (say, dividing before
rather than after a matrix product) changes the round-off, and 50 steps of training amplify it
to about 1e-5 on its own."""

import json
from pathlib import Path

import pytest
import torch

from boomda import DomainAdapter
from boomda.config import RunConfig
from boomda.data.load import build_pair

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REFERENCE = json.loads((Path(__file__).parent / "data" / "reference_losses.json").read_text())


@pytest.fixture(autouse=True)
def _float64():
    assert REFERENCE["dtype"] == "float64"
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


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
