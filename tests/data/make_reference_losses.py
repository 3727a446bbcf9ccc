"""Record the first 50 steps' losses of the reference runs.

``python tests/data/make_reference_losses.py`` from the repository root writes
``tests/data/reference_losses.json``; run it only to re-record after an intended change of what
is trained (tests/test_reference_run.py reproduces the file within 1e-5).

Every case is recorded in float64 (``torch.set_default_dtype``), where reordering the arithmetic
changes a loss by about 1e-12 rather than the float32 round-off that 50 steps of training
amplify to about 1e-5.
"""

import json

import torch

from boomda import DomainAdapter
from boomda.config import RunConfig
from boomda.data.load import build_pair

CASES = [
    {"method": "boomda", "gamma_solver": "closed_form"},
    {"method": "boomda", "gamma_solver": "exact", "gamma_normalization": "l2"},
    {"method": "boomda", "gamma_solver": "imtl"},
    {"method": "boomda", "gamma_solver": "mgda_params"},
    {"method": "uniform"},
    {"method": "ca", "ca_form": "coral"},
    {"method": "dann"},
    {"method": "dada"},
]
MODALITIES = ["fou", "kar", "pix"]
TRAIN = {"epochs": 4, "batch_size": 48, "dim": 32, "hidden": 64, "seed": 0, "device": "cpu"}


def main() -> None:
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    pair = build_pair(RunConfig.from_dict({"data": {"modalities": MODALITIES}}))
    out = {"data": {"dataset": "mfeat", "modalities": MODALITIES, "shifts": "default",
                    "split_seed": 0},
           "dtype": "float64", "train": TRAIN, "cases": []}
    for case in CASES:
        adapter = DomainAdapter(**TRAIN, **case).fit(pair)
        out["cases"].append({"options": case,
                             "losses": [log.loss for log in adapter.history[:50]]})
    with open("tests/data/reference_losses.json", "w") as fh:
        json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
