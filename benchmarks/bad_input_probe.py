"""Feed the command line bad input, as a careful user and an attacker would, and count how each
case ends: ``clean`` (exit 2, one line on stderr that says what is wrong), ``generic`` (one line,
but an unexpected error), ``traceback``, ``several lines``, or ``exit 0`` (accepted: a wrong
result). Run from the repository root (it reuses the test suite's bad command lines):

    python benchmarks/bad_input_probe.py [--out docs/benchmarks/bad_input_probe.md]

Every case runs in this process through ``boomda.cli.main``, in a scratch folder.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_cli_errors import CASES, _make_files  # noqa: E402

from boomda.cli import main  # noqa: E402


def _extra_files(folder: Path) -> list[tuple[list[str], str]]:
    """More bad inputs: real pairs, labels, encodings, seeds, non-finite values, grids, run
    folders. Returns (argv, what the message must name) for each."""
    rng = np.random.default_rng(1)
    a, b = rng.random((40, 3)), rng.random((40, 2))
    y = np.array(["x", "y"])[np.arange(40) % 2]
    np.savez("s.npz", a=a, b=b, labels=y)
    np.savez("t.npz", a=a + 1, b=b)
    np.savez("t_lacks.npz", a=a)
    np.savez("t_width.npz", a=a[:, :2], b=b)
    np.savez("t_disjoint.npz", c=a)
    with_nan = a.copy()
    with_nan[3, 1] = np.nan
    np.savez("t_nan.npz", a=with_nan, b=b)
    np.savez("t_inf.npz", a=a, b=np.full_like(b, np.inf))
    np.savez("t_class.npz", a=a, b=b, labels=np.array(["x", "z"])[np.arange(40) % 2])
    np.savez("s_2d_labels.npz", a=a, b=b, labels=(np.arange(40) % 2)[:, None])
    np.savez("s_nolabels.npz", a=a, b=b)
    np.savez("s_complex.npz", a=a + 1j, b=b, labels=y)
    np.savez("s_float_labels.npz", a=a, b=b, labels=np.arange(40) * 0.5)
    np.savez("s_3d.npz", a=a[:, :, None], b=b, labels=y)
    np.save("single.npy", a)
    os.replace("single.npy", "single.npz")
    Path("latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    Path("binary.yaml").write_bytes(bytes(range(256)))
    Path("bomb.yaml").write_text(
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
                  for p, c in zip("abcdefgh", "bcdefghi", strict=True)))
    Path("grid_typo.yaml").write_text("name: g\nmethods: [dt]\nsubsets: [[fou, kra]]\n"
                                      "seeds: [0]\n")
    Path("grid_empty.yaml").write_text("name: g\nmethods: []\nseeds: [0]\n")
    Path("grid_nosubsets.yaml").write_text("name: g\nmethods: [dt]\nsubsets: []\nseeds: [0]\n")
    Path("grid_escape.yaml").write_text("name: ../../../x\nmethods: [dt]\nseeds: [0]\n")
    Path("nan_lr.yaml").write_text("train: {lr: .nan}\n")
    Path("inf_epochs.yaml").write_text("train: {epochs: .inf}\n")
    Path("pair_and_dataset.yaml").write_text("data: {dataset: mfeat, source: s.npz, "
                                             "target: t.npz}\n")
    Path("pair_half.yaml").write_text("data: {source: s.npz}\n")
    Path("runs/taken/.git").mkdir(parents=True)
    Path("runs/taken/.env").write_text("SECRET=1\n")
    Path("runs/handwritten").mkdir()
    Path("runs/handwritten/config.yaml").write_text("data: {dataset: mfeat}\n")
    Path("elsewhere").mkdir()
    Path("runs/linked").symlink_to(Path("elsewhere").resolve())
    Path("manifest_latin1.csv").write_bytes("id,label,audio\nu1,caf\xe9,a.wav\n".encode("latin-1"))
    pair = ["run", "--no-progress", "--epochs", "1", "--batch-size", "8", "--source", "s.npz"]
    small = ["run", "--no-progress", "--epochs", "1", "--dataset", "d.npz"]
    return [
        ([*pair, "--target", "t_lacks.npz"], "has no modality 'b'"),
        ([*pair, "--target", "t_width.npz"], "2 features, but"),
        ([*pair, "--target", "t_disjoint.npz"], "no modality in common"),
        ([*pair, "--target", "t_nan.npz"], "non-finite value"),
        ([*pair, "--target", "t_inf.npz"], "non-finite value"),
        ([*pair, "--target", "t_class.npz"], "class 'z' is not among the source's classes"),
        ([*pair, "--target", "missing.npz"], "missing.npz: no such file"),
        ([*pair, "--target", "single.npz"], "single.npz"),
        (["run", "--source", "s_2d_labels.npz", "--target", "t.npz", "--no-progress"],
         "expected one label per sample"),
        (["run", "--source", "s_nolabels.npz", "--target", "t.npz", "--no-progress"],
         "has no 'labels' array"),
        (["run", "--source", "s_complex.npz", "--target", "t.npz", "--no-progress"],
         "complex values"),
        (["run", "--source", "s_float_labels.npz", "--target", "t.npz", "--no-progress"],
         "non-integer"),
        (["run", "--source", "s_3d.npz", "--target", "t.npz", "--no-progress"],
         "expected a (samples, features) array"),
        (["run", "--source", "s.npz", "--no-progress"], "--source needs --target"),
        (["run", "--source", "s.npz", "--target", "t.npz", "--dataset", "d.npz"],
         "exclude each other"),
        (["run", "--config", "pair_and_dataset.yaml"], "exclude each other"),
        (["run", "--config", "pair_half.yaml"], "'target' is missing"),
        ([*small, "--lr", "inf"], "must be a finite number"),
        ([*small, "--lr", "nan"], "must be a finite number"),
        ([*small, "--lr", "1e30"], "diverged"),
        ([*small, "--alpha2", "inf"], "not a finite number"),
        (["run", "--config", "nan_lr.yaml"], "not a finite number"),
        (["run", "--config", "inf_epochs.yaml"], "cannot read inf as int"),
        ([*small, "--seed", "-1"], "seed"),
        ([*small, "--seed", str(2 ** 70)], "seed"),
        ([*small, "--split-seed", "-5"], "split_seed"),
        (["run", "--config", "latin1.yaml"], "UTF-8"),
        (["run", "--config", "binary.yaml"], "binary.yaml"),
        (["run", "--config", "bomb.yaml"], "bomb.yaml"),
        (["bench", "bomb.yaml"], "bomb.yaml"),
        (["bench", "grid_typo.yaml", "--out", "g1"], "kra"),
        (["bench", "grid_empty.yaml", "--out", "g2"], "methods"),
        (["bench", "grid_nosubsets.yaml", "--out", "g3"], "subsets"),
        (["bench", "grid_escape.yaml"], "name"),
        ([*small, "--name", "taken", "--overwrite"], "'.env'"),
        ([*small, "--name", "handwritten", "--overwrite"], "holds no run identity"),
        ([*small, "--name", "linked", "--overwrite"], "symbolic link"),
        (["predict", "runs/m/model.pt", "manifest_latin1.csv"], "manifest_latin1.csv"),
        (["predict", "runs/m/model.pt", "s_complex.npz"], "complex"),
        (["diagnose", "--source", "s.npz", "--target", "t_width.npz", "--no-progress"],
         "2 features, but"),
    ]


def _run(argv: list[str]) -> tuple[int | None, str, float]:
    err = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        except BaseException as exc:  # noqa: BLE001 - counted as a traceback
            return None, f"{type(exc).__name__}: {exc}", time.perf_counter() - start
    return code, err.getvalue(), time.perf_counter() - start


def classify(code: int | None, err: str, fragment: str) -> str:
    lines = [line for line in err.strip().splitlines()
             if not line.startswith("boomda: warning:")]
    if code is None or "Traceback" in err:
        return "traceback"
    if code == 0:
        return "exit 0"
    if len(lines) != 1:
        return "several lines"
    if "unexpected" in lines[0]:
        return "generic"
    return "clean" if fragment in lines[0] else "does not name it"


def main_probe() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="also write the table as Markdown to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        os.symlink(root / "configs", "configs")
        with contextlib.redirect_stdout(io.StringIO()):
            _make_files(Path(scratch))
            extra = _extra_files(Path(scratch))
        cases = [(list(a), f) for a, f in CASES] + extra
        rows = []
        for argv, fragment in cases:
            code, err, seconds = _run(argv)
            rows.append((argv, classify(code, err, fragment), err.strip().splitlines()[-1:],
                         seconds))
    counts: dict[str, int] = {}
    for _, verdict, _, _ in rows:
        counts[verdict] = counts.get(verdict, 0) + 1
    print(f"{len(rows)} bad inputs: " + ", ".join(f"{v} {n}" for v, n in sorted(counts.items())))
    for argv, verdict, last, _ in rows:
        if verdict != "clean":
            print(f"  {verdict:16s} {' '.join(argv)[:70]}  ->  {(last or [''])[0][:110]}")
    slowest = max(rows, key=lambda r: r[3])
    print(f"slowest case: {slowest[3]:.1f} s ({' '.join(slowest[0])[:60]})")
    if args.out:
        table = ["| verdict | cases |", "|:--|--:|"] + [f"| {v} | {n} |"
                                                     for v, n in sorted(counts.items())]
        Path(root / args.out).write_text(
            f"# Bad-input probe\n\n`python benchmarks/bad_input_probe.py`, "
            f"{time.strftime('%Y-%m-%d')}: {len(rows)} bad inputs.\n\n" + "\n".join(table) + "\n")


if __name__ == "__main__":
    main_probe()
