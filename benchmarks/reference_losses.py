"""Record the first 50 steps' losses of reference runs (tests/data/reference_losses.json)."""
import json, torch
from boomda import DomainAdapter
from boomda.config import RunConfig
from boomda.run import build_pair

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
torch.set_num_threads(1)
pair = build_pair(RunConfig.from_dict({"data": {"modalities": ["fou", "kar", "pix"]}}))
out = {"data": {"dataset": "mfeat", "modalities": ["fou", "kar", "pix"], "shifts": "default", "split_seed": 0},
       "train": {"epochs": 4, "batch_size": 48, "dim": 32, "hidden": 64, "seed": 0, "device": "cpu"},
       "cases": []}
for case in CASES:
    adapter = DomainAdapter(**out["train"], **case).fit(pair)
    losses = [log.loss for log in adapter.history[:50]]
    out["cases"].append({"options": case, "losses": losses})
    print(case, losses[:3], losses[-1])
json.dump(out, open("tests/data/reference_losses.json", "w"), indent=1)
