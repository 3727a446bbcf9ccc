"""``boomda predict`` on a manifest whose rows leave a recording's cell empty: those samples lack
that modality, the output says so, and complete rows keep the complete-input prediction."""

import csv

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("av")
pytest.importorskip("soundfile")

from boomda.cli import main  # noqa: E402
from boomda.config import RawDataConfig  # noqa: E402
from boomda.data.raw_pair import raw_inputs, raw_partial_inputs  # noqa: E402
from boomda.errors import DataError  # noqa: E402
from boomda.estimator import DomainAdapter  # noqa: E402
from tests import rawcorpus as rc  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _write(path, rows, header=("id", "label", "audio", "video", "text")):
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, list(header))
        writer.writeheader()
        writer.writerows({k: row[k] for k in header} for row in rows)


def test_manifest_rows_with_empty_cells(tmp_path, capsys):
    import yaml

    backbones = rc.tiny_backbones(tmp_path / "backbones", layers=2)
    manifest = rc.make_tiny_manifest(tmp_path / "corpus", per_class=3)
    config = {"raw": rc.raw_config("manifest", manifest, backbones, tmp_path / "cache"),
              "train": {"method": "dt", "epochs": 1, "batch_size": 4, "device": "cpu"}}
    (tmp_path / "raw.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", "--config", str(tmp_path / "raw.yaml"), "--out", str(tmp_path / "r"),
                 "--name", "m", "--no-progress"]) == 0
    model = tmp_path / "r" / "m" / "model.pt"
    rows = list(csv.DictReader(manifest.open()))
    rows[0]["video"] = ""  # utt000: no video
    rows[1]["text"] = ""  # utt001: no transcript
    rows[2]["audio"] = rows[2]["video"] = ""  # utt002: the transcript only
    gaps = manifest.parent / "gaps.csv"
    _write(gaps, rows)
    capsys.readouterr()
    assert main(["predict", str(model), str(gaps), "--out", str(tmp_path / "p.csv"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert ("absent modalities: acoustic absent in 1 of 12; lexical absent in 1 of 12; visual "
            "absent in 2 of 12; those samples predicted with the heads strategy") in out
    written = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [r["absent"] for r in written[:4]] == ["visual", "lexical", "acoustic+visual", ""]

    adapter = DomainAdapter.load(model)
    raw = RawDataConfig(**adapter.metadata["raw"])
    full, ids, _ = raw_inputs(raw, manifest, list(rc.CLASSES))
    data, _, _, mask = raw_partial_inputs(raw, gaps, list(rc.CLASSES))
    np.testing.assert_array_equal(mask["visual"][:4], [False, True, False, True])
    # complete rows: the complete-input prediction; the others: the mean of the present heads
    expected = adapter.predict(full)
    got = [rc.CLASSES.index(r["predicted"]) for r in written]
    assert got[3:] == list(expected[3:])
    heads = adapter.predict(full, mask=mask, strategy="heads")
    assert got == list(heads)

    # a row with no recording at all is named
    rows[5]["audio"] = rows[5]["video"] = rows[5]["text"] = ""
    _write(gaps, rows)
    with pytest.raises(DataError, match=r"gaps.csv:7: no recording"):
        raw_partial_inputs(raw, gaps, list(rc.CLASSES))
    assert main(["predict", str(model), str(gaps), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no recording" in err[0]
