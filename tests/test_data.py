"""Embedded data, domain-pair protocol and feature-level shifts."""

import numpy as np
import pytest

from boomda.data import (
    DomainPair,
    MaskShift,
    MultimodalData,
    NoiseShift,
    ScaleNoiseShift,
    load_multiple_features,
    parse_shift,
    stratified_split,
)
from boomda.data.shifts import shift_to_str
from boomda.errors import ConfigError, DataError


def test_embedded_data_shapes_and_classes():
    data = load_multiple_features()
    assert len(data) == 2000
    assert data.dims == {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
    assert np.array_equal(np.bincount(data.labels), np.full(10, 200))
    # first row of the Fourier view as printed in the CSV file
    assert data.views["fou"][0, :3] == pytest.approx([0.065882, 0.19731, 0.10383], rel=1e-6)


def test_stratified_half_split_is_even_and_disjoint():
    labels = np.repeat(np.arange(4), [10, 11, 7, 8])
    first, second = stratified_split(labels, 0.5, np.random.default_rng(0))
    assert len(first) == len(second) == 18
    assert set(first).isdisjoint(second) and len(set(first) | set(second)) == 36
    counts = np.bincount(labels[first], minlength=4)
    assert np.all(np.abs(counts - np.bincount(labels) / 2) <= 0.5)


def test_protocol_pair_is_seeded_and_stratified():
    data = load_multiple_features(["fou", "kar"])
    shifts = {"fou": "noise:snr=1"}
    a = DomainPair.from_protocol(data, shifts, seed=3)
    b = DomainPair.from_protocol(data, shifts, seed=3)
    c = DomainPair.from_protocol(data, shifts, seed=4)
    assert np.array_equal(a.target.views["fou"], b.target.views["fou"])
    # the seed picks the target half: the same rows (unshifted kar) for one seed, others for
    # another
    def target_rows(pair):
        return {tuple(r) for r in pair.target.views["kar"]}

    assert target_rows(a) == target_rows(b)
    assert len(target_rows(a) - target_rows(c)) > 100
    assert len(a.target) == 1000 and len(a.source) == 800 and len(a.source_holdout) == 200
    assert np.array_equal(np.bincount(a.target.labels), np.full(10, 100))
    assert np.array_equal(np.bincount(a.source_holdout.labels), np.full(10, 20))
    # the unshifted modality of the target equals the original rows
    rows = {tuple(r) for r in data.views["kar"]}
    assert all(tuple(r) in rows for r in a.target.views["kar"][:20])
    assert a.info["shifts"] == {"fou": "noise:snr=1"}


def test_noise_shift_reaches_requested_snr():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(20000, 3)) * [1.0, 5.0, 0.1] + [2.0, -1.0, 0.0]).astype(np.float32)
    for snr in (1.0, 0.5, 4.0):
        noisy = NoiseShift(snr).apply(x, np.random.default_rng(1))
        noise = noisy.astype(np.float64) - x
        measured = x.var(axis=0) / noise.var(axis=0)
        np.testing.assert_allclose(measured, snr, rtol=0.03)
        assert np.all(np.abs(noise.mean(axis=0)) < 0.05 * x.std(axis=0))


def test_scale_noise_shift():
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(20000, 2)) * [1.0, 3.0] + 4.0).astype(np.float32)
    out = ScaleNoiseShift(scale=0.2, snr=0.5).apply(x, np.random.default_rng(3))
    noise = out.astype(np.float64) - 0.2 * x
    np.testing.assert_allclose(out.mean(axis=0), 0.2 * x.mean(axis=0), rtol=0.02)
    np.testing.assert_allclose((0.2 * x).var(axis=0) / noise.var(axis=0), 0.5, rtol=0.03)


def test_mask_shift_masks_exact_fraction_per_sample_at_random_positions():
    x = np.arange(1, 1 + 50 * 20, dtype=np.float32).reshape(50, 20)
    out = MaskShift(fraction=0.4).apply(x, np.random.default_rng(0))
    masked = out == 0
    assert np.all(masked.sum(axis=1) == 8)
    assert np.array_equal(out[~masked], x[~masked])
    patterns = {tuple(np.flatnonzero(row)) for row in masked}
    assert len(patterns) > 40  # positions are drawn per sample


def test_parse_shift_forms_and_errors():
    assert parse_shift("noise:snr=2") == NoiseShift(2.0)
    assert parse_shift({"kind": "mask", "fraction": 0.25}) == MaskShift(0.25)
    assert shift_to_str(parse_shift("scale_noise:scale=0.2,snr=0.5")) == \
        "scale_noise:scale=0.2,snr=0.5"
    with pytest.raises(ConfigError, match="unknown shift kind 'blur'"):
        parse_shift("blur:sigma=1")
    with pytest.raises(ConfigError, match="unknown parameter 'sigma'"):
        parse_shift("noise:sigma=1")
    with pytest.raises(ConfigError, match="noise.snr must be a positive"):
        parse_shift("noise:snr=0")
    with pytest.raises(ConfigError, match="mask.fraction"):
        parse_shift("mask:fraction=1.5")


def test_standardisation_uses_source_statistics_only():
    from boomda import DomainAdapter

    views, y = {"a": np.random.default_rng(0).normal(3, 2, (40, 3)),
                "b": np.random.default_rng(1).normal(-1, 5, (40, 2))}, np.arange(40) % 2
    source = MultimodalData(views, y)
    target = MultimodalData({k: v * 10 + 100 for k, v in views.items()})
    pair = DomainPair.from_arrays(source, target, holdout=0)
    adapter = DomainAdapter(method="dt", epochs=1, batch_size=8, dim=4, hidden=8).fit(pair)
    for m, x in views.items():
        std = adapter.net.encoders[m].standardize
        np.testing.assert_allclose(std.mean.cpu().numpy(), x.mean(axis=0), rtol=1e-5)
        np.testing.assert_allclose(std.std.cpu().numpy(), x.std(axis=0), rtol=1e-5)


def test_pack_sequences_and_sequence_views():
    from boomda.data.container import pack_sequences, trim_padding

    seqs = [np.arange(6, dtype=np.float32).reshape(3, 2), np.ones((1, 2), np.float32) * 7]
    packed = pack_sequences(seqs)
    expected = np.array([[[1, 0, 1], [1, 2, 3], [1, 4, 5]],
                         [[1, 7, 7], [0, 0, 0], [0, 0, 0]]], dtype=np.float32)
    np.testing.assert_array_equal(packed, expected)
    assert pack_sequences(seqs, steps=5).shape == (2, 5, 3)
    half = pack_sequences(seqs, dtype="float16")
    assert half.dtype == np.float16
    data = MultimodalData({"seq": half, "vec": np.zeros((2, 4))}, labels=[0, 1])
    assert data.views["seq"].dtype == np.float16 and data.dims == {"seq": 2, "vec": 4}
    assert data.is_sequence("seq") and not data.is_sequence("vec")
    # a subset drops the steps that are padding in every kept sample
    assert data.subset(np.array([1])).views["seq"].shape == (1, 1, 3)
    assert trim_padding(pack_sequences(seqs, steps=9)).shape == (2, 3, 3)
    # 3000 steps: lengths are counted exactly (a float16 sum would stop at 2048)
    long = pack_sequences([np.zeros((3000, 1)), np.zeros((2999, 1))], dtype="float16")
    assert MultimodalData({"s": long, "v": np.zeros((2, 1))}).subset(
        np.array([1])).views["s"].shape == (1, 2999, 2)
    with pytest.raises(DataError, match="at least one step"):
        pack_sequences([np.zeros((0, 2))])
    with pytest.raises(DataError, match="one width"):
        pack_sequences([np.zeros((2, 2)), np.zeros((2, 3))])


@pytest.mark.parametrize("edit,message", [
    (lambda a: a.__setitem__((0, 1, 0), 0.5), "0/1 step mask"),
    (lambda a: a.__setitem__((1, 0, 0), 0.0), "not a prefix"),
    (lambda a: a.__setitem__((1, slice(None), 0), 0.0), "sample 1 has no real step"),
])
def test_sequence_views_check_their_step_mask(edit, message):
    from boomda.data.container import pack_sequences

    packed = pack_sequences([np.ones((3, 2)), np.ones((2, 2))])
    edit(packed)
    with pytest.raises(DataError, match=message):
        MultimodalData({"seq": packed, "vec": np.zeros((2, 1))}, name="source")


def test_block_shift_zeroes_one_contiguous_block_of_columns():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(50, 20)).astype(np.float32) + 3.0
    out = parse_shift("block:fraction=0.3").apply(x, np.random.default_rng(1))
    zero_columns = np.flatnonzero(np.all(out == 0, axis=0))
    assert len(zero_columns) == 6  # round(0.3 * 20)
    assert np.array_equal(zero_columns, np.arange(zero_columns[0], zero_columns[0] + 6))
    kept = np.setdiff1d(np.arange(20), zero_columns)
    np.testing.assert_array_equal(out[:, kept], x[:, kept])
    # the block's position comes from the generator
    again = parse_shift("block:fraction=0.3").apply(x, np.random.default_rng(1))
    np.testing.assert_array_equal(out, again)


def test_rescale_shift_multiplies_a_fixed_subset_of_columns():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(40, 10)).astype(np.float32)
    out = parse_shift("rescale:fraction=0.5,scale=4").apply(x, np.random.default_rng(2))
    ratio = out / x
    scaled = [j for j in range(10) if np.allclose(ratio[:, j], 4.0, rtol=1e-6)]
    same = [j for j in range(10) if np.array_equal(out[:, j], x[:, j])]
    assert len(scaled) == 5 and len(same) == 5 and not set(scaled) & set(same)
    assert shift_to_str(parse_shift("rescale:fraction=0.5,scale=4")) == \
        "rescale:fraction=0.5,scale=4"
    with pytest.raises(ConfigError, match="rescale.scale must be a positive number"):
        parse_shift("rescale:scale=0")
    with pytest.raises(ConfigError, match=r"block.fraction must lie in \[0, 1\]"):
        parse_shift("block:fraction=2")


def test_htad_is_read_from_the_package_that_ships_it():
    pytest.importorskip("multiviewstacking")
    import csv

    from boomda.data.htad import CLASSES, htad_path, load_htad

    data = load_htad()
    assert data.dims == {"audio": 36, "accel": 16} and len(data) == 1386
    # class counts and one row, read independently with the csv module
    with htad_path().open(newline="") as fh:
        rows = list(csv.reader(fh))
    names = [r[0] for r in rows[1:]]
    np.testing.assert_array_equal(np.bincount(data.labels),
                                  [names.count(c) for c in CLASSES])
    header = rows[0]
    row = rows[5]
    for view, prefix in (("audio", "v1_"), ("accel", "v2_")):
        expected = [float(v) for h, v in zip(header, row, strict=True) if h.startswith(prefix)]
        np.testing.assert_allclose(data.views[view][4], expected, rtol=1e-6)
    assert CLASSES[data.labels[4]] == row[0]


def test_htad_errors_name_the_file(tmp_path):
    from boomda.data.htad import load_htad

    bad = tmp_path / "htad.csv"
    bad.write_text("label,v1_a\nx,1\n")
    with pytest.raises(DataError, match="expected a header starting with 'class'"):
        load_htad(bad)
    bad.write_text("class,v1_a,v2_b\nsweep,1,abc\n")
    with pytest.raises(DataError, match="htad.csv: a feature value is not a number"):
        load_htad(bad)
    bad.write_text("class,v1_a,v2_b\ndance,1,2\n")
    with pytest.raises(DataError, match="unknown class 'dance'"):
        load_htad(bad)


def test_reprs_are_short_summaries_not_arrays():
    from boomda.data.container import pack_sequences

    rng = np.random.default_rng(0)
    y = np.arange(30) % 3
    seqs = [rng.normal(size=(n, 4)).astype(np.float32) for n in (1 + np.arange(30) % 6)]
    views = {"a": rng.normal(size=(30, 5)), "b": rng.normal(size=(30, 2)),
             "seq": pack_sequences(seqs)}
    data = MultimodalData(views, labels=y)
    assert repr(data) == ("MultimodalData(30 samples; a (5), b (2), seq (sequences of 6 x 4); "
                          "labels of 3 classes)")
    target = MultimodalData({k: v[:12] for k, v in views.items()})
    assert repr(target) == ("MultimodalData(12 samples; a (5), b (2), seq (sequences of 6 x 4); "
                            "unlabelled)")
    pair = DomainPair.from_arrays(data, target, holdout=0)
    assert repr(pair) == ("DomainPair(source 30 samples, target 12 (unlabelled); modalities "
                          "a (5), b (2), seq (sequences of 6 x 4); 3 classes; info {})")
    mfeat = load_multiple_features(["fou", "kar"])
    pair = DomainPair.from_protocol(mfeat, {"fou": "noise:snr=1"}, seed=0)
    assert str(pair) == (
        "DomainPair(source 800 samples, target 1000 (labelled, for evaluation only), source "
        "held out 200; modalities fou (76), kar (64); 10 classes; info {'seed': 0, "
        "'holdout': 0.2, 'shifts': {'fou': 'noise:snr=1'}})")
    pair.info = {"notes": "x" * 500}
    assert repr(pair).endswith("info {'notes': '" + "x" * (237 - len("{'notes': '")) + "...)")
    assert len(repr(pair)) < 400
