"""How much each feature-level shift hurts each view of the embedded data.

A linear probe (multinomial logistic regression on source-standardised features) is trained on
one view of the source half and evaluated on the same view of the target half, for every view and
every shift kind. It shows which views keep class information under which shift, which is how the
default task (docs/data.md) was chosen: every shifted default view still carries signal, and the
three views get three different kinds of shift.

Run:  python benchmarks/shift_strength.py [--seeds 0,1,2]
Needs scikit-learn (the ``test`` extra).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from boomda import DomainPair, load_multiple_features

SHIFTS = {
    "clean": "none",
    "noise SNR 1": "noise:snr=1",
    "scale 0.2 + noise SNR 0.5": "scale_noise:scale=0.2,snr=0.5",
    "mask 40 %": "mask:fraction=0.4",
}


def probe_f1(view: str, shift: str, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    data = load_multiple_features([view])
    pair = DomainPair.from_protocol(data, {view: shift}, seed=seed, holdout=0.0)
    xs = pair.source.views[view]
    mean, std = xs.mean(axis=0), xs.std(axis=0) + 1e-8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = LogisticRegression(max_iter=300).fit((xs - mean) / std, pair.source.labels)
    pred = clf.predict((pair.target.views[view] - mean) / std)
    return 100.0 * f1_score(pair.target.labels, pred, average="weighted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    views = load_multiple_features().modalities
    print("Target weighted F1 of a linear probe trained on the source view "
          f"(mean over seeds {args.seeds}).\n")
    print("| view | " + " | ".join(SHIFTS) + " |")
    print("|:--|" + "--:|" * len(SHIFTS))
    for view in views:
        cells = [np.mean([probe_f1(view, spec, s) for s in seeds]) for spec in SHIFTS.values()]
        print(f"| {view} | " + " | ".join(f"{c:.1f}" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
