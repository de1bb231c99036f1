"""ImuMerger: acc + gyro (+ mag) streams with their own times -> combined batches on the acc sample times."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.firmware_protocols.merge import ImuMerger

FS = 104.0


def _truth_gyr(t):
    """A smooth gyro signal whose linear interpolation error is bounded and known."""
    return np.stack([np.sin(2 * np.pi * 1.3 * t), np.cos(2 * np.pi * 0.7 * t), 0.1 * t], axis=1)


def _streams(n=600, offset_s=0.0037, gyro_fs=FS, t0=50.0):
    ta = t0 + np.arange(n) / FS
    tg = t0 - 0.05 + offset_s + np.arange(int(n * gyro_fs / FS) + 10) / gyro_fs
    acc = np.stack([np.arange(n), -np.arange(n), np.ones(n)], axis=1).astype(float)
    return ta, acc, tg, _truth_gyr(tg)


def _interleave(ta, acc, tg, gyr, acc_cuts, gyr_cuts, gap_acc_at=None, gap_gyr_at=None):
    """Batches in arrival order: each chunk arrives when its last sample exists."""
    items = []
    for a, b in zip(acc_cuts[:-1], acc_cuts[1:], strict=True):
        gap = gap_acc_at is not None and a == gap_acc_at
        items.append(
            (ta[b - 1], 0, ImuBatch(t_s=ta[a:b], acc_mps2=acc[a:b], gap_before=gap, n_lost=3 if gap else 0))
        )
    for a, b in zip(gyr_cuts[:-1], gyr_cuts[1:], strict=True):
        gap = gap_gyr_at is not None and a == gap_gyr_at
        items.append((tg[b - 1], 1, ImuBatch(t_s=tg[a:b], gyr_rads=gyr[a:b], gap_before=gap)))
    items.sort(key=lambda x: (x[0], x[1]))
    return [b for _, _, b in items]


def _cuts(draw_sizes, n):
    """Chunk boundaries cycling through the drawn sizes (chunks stay short: streams arrive close together)."""
    cuts = [0]
    k = 0
    while cuts[-1] + draw_sizes[k % len(draw_sizes)] < n:
        cuts.append(cuts[-1] + draw_sizes[k % len(draw_sizes)])
        k += 1
    cuts.append(n)
    return cuts


def _run(merger, batches):
    out = []
    for b in batches:
        out += merger.feed(b)
    out += merger.flush()
    return out


def _flatten(out):
    t = np.concatenate([b.t_s for b in out])
    acc = np.concatenate([b.acc_mps2 for b in out])
    gyr = np.concatenate(
        [b.gyr_rads if b.gyr_rads is not None else np.full((len(b), 3), np.nan) for b in out]
    )
    flags = np.concatenate([np.r_[b.gap_before, np.zeros(len(b) - 1, bool)] for b in out])
    lost = np.concatenate([np.r_[b.n_lost, np.zeros(len(b) - 1, int)] for b in out])
    return t, acc, gyr, flags, lost


def test_gyro_is_interpolated_onto_acc_times_without_extrapolation():
    ta, acc, tg, gyr = _streams()
    out = _run(
        ImuMerger(),
        _interleave(ta, acc, tg, gyr, list(range(0, 601, 36)) + [600], list(range(0, 610, 40)) + [610]),
    )
    t, acc_out, gyr_out, flags, _ = _flatten(out)
    np.testing.assert_array_equal(t, ta)
    np.testing.assert_array_equal(acc_out, acc)
    inside = (ta >= tg[0]) & (ta <= tg[-1])
    assert inside.all()
    expected = np.stack([np.interp(ta, tg, gyr[:, c]) for c in range(3)], axis=1)
    np.testing.assert_allclose(gyr_out, expected, atol=1e-12)
    # linear interpolation error of the smooth truth is bounded by (dt^2/8)·max|g''|
    bound = (1 / FS) ** 2 / 8 * (2 * np.pi * 1.3) ** 2 * 1.01
    assert np.abs(gyr_out - _truth_gyr(ta)).max() <= bound
    assert not flags.any()


def test_acc_before_first_gyro_sample_is_output_without_gyro():
    ta, acc, tg, gyr = _streams(offset_s=0.2)  # gyro starts 0.15 s after acc
    out = _run(ImuMerger(), _interleave(ta, acc, tg, gyr, [0, 100, 600], [0, 100, len(tg)]))
    t, _, gyr_out, _, _ = _flatten(out)
    np.testing.assert_array_equal(t, ta)
    early = ta < tg[0]
    assert early.sum() > 0
    assert np.isnan(gyr_out[early]).all() and np.isfinite(gyr_out[~early & (ta <= tg[-1])]).all()
    assert out[0].gyr_rads is None


def test_acc_is_held_until_gyro_covers_it():
    ta, acc, tg, gyr = _streams()
    m = ImuMerger()
    assert m.feed(ImuBatch(t_s=ta[:50], acc_mps2=acc[:50])) == []
    assert m.n_held == 50
    got = m.feed(ImuBatch(t_s=tg[:30], gyr_rads=gyr[:30]))
    n_out = sum(len(b) for b in got)
    assert n_out == np.searchsorted(ta[:50], tg[29], side="right")
    assert all(b.t_s[-1] <= tg[29] for b in got)
    assert m.n_held == 50 - n_out


def test_acc_only_device_does_not_stall():
    ta, acc, _, _ = _streams(n=2000)
    m = ImuMerger(expect=("acc", "gyr"), max_hold_s=1.0)
    out = []
    for i in range(0, 2000, 20):
        out += m.feed(ImuBatch(t_s=ta[i : i + 20], acc_mps2=acc[i : i + 20]))
        assert m.n_held <= 1.0 * FS + 21
    assert sum(len(b) for b in out) >= 2000 - 20  # after the first hold, acc passes straight through
    assert all(b.gyr_rads is None for b in out)
    assert m.n_held <= 20


def test_acc_only_expectation_passes_through():
    ta, acc, _, _ = _streams(n=100)
    out = ImuMerger(expect=("acc",)).feed(ImuBatch(t_s=ta, acc_mps2=acc, gap_before=True, n_lost=4))
    assert len(out) == 1 and len(out[0]) == 100 and out[0].gap_before and out[0].n_lost == 4


def test_held_samples_are_bounded():
    ta, acc, tg, gyr = _streams(n=3000)
    m = ImuMerger(max_hold_s=100.0, max_hold_samples=256)
    m.feed(ImuBatch(t_s=tg[:5], gyr_rads=gyr[:5]))
    for i in range(0, 3000, 50):
        m.feed(ImuBatch(t_s=ta[i : i + 50], acc_mps2=acc[i : i + 50]))
        assert m.n_held <= 256


def test_gap_flags_preserved():
    ta, acc, tg, gyr = _streams()
    acc_cuts = [0, 100, 236, 400, 600]
    gyr_cuts = [0, 150, 300, len(tg)]
    batches = _interleave(ta, acc, tg, gyr, acc_cuts, gyr_cuts, gap_acc_at=236, gap_gyr_at=300)
    out = _run(ImuMerger(), batches)
    t, _, _, flags, lost = _flatten(out)
    flagged = set(np.flatnonzero(flags))
    first_after_gyro_gap = int(np.searchsorted(ta, tg[299], side="right"))
    assert flagged == {236, first_after_gyro_gap}
    assert lost[236] == 3
    assert all(not b.gap_before or b.t_s[0] in (ta[236], ta[first_after_gyro_gap]) for b in out)


def test_mag_is_merged_when_expected():
    ta, acc, tg, gyr = _streams(n=300)
    tm = ta[0] - 0.01 + np.arange(80) / 20.0
    mag = np.stack([tm, tm, tm], axis=1) * 10
    m = ImuMerger(expect=("acc", "gyr", "mag"))
    out = []
    out += m.feed(ImuBatch(t_s=tg, gyr_rads=gyr))
    out += m.feed(ImuBatch(t_s=ta, acc_mps2=acc))
    assert out == []  # mag not there yet
    out += m.feed(ImuBatch(t_s=tm, mag_uT=mag))
    assert sum(len(b) for b in out) == 300
    full = ImuBatch.concat([b for b in out if b.mag_uT is not None])
    np.testing.assert_allclose(full.mag_uT[:, 0], full.t_s * 10, atol=1e-9)


def test_combined_input_batches_pass_unchanged():
    ta, acc, _, _ = _streams(n=200)
    g = _truth_gyr(ta)
    out = _run(
        ImuMerger(),
        [
            ImuBatch(t_s=ta[i : i + 25], acc_mps2=acc[i : i + 25], gyr_rads=g[i : i + 25])
            for i in range(0, 200, 25)
        ],
    )
    t, acc_out, gyr_out, _, _ = _flatten(out)
    np.testing.assert_array_equal(t, ta)
    np.testing.assert_allclose(gyr_out, g, atol=1e-12)


def test_bad_expect():
    with pytest.raises(ValueError):
        ImuMerger(expect=("gyr",))
    with pytest.raises(ValueError):
        ImuMerger(expect=("acc", "quat"))


@settings(max_examples=40, deadline=None)
@given(
    acc_sizes=st.lists(st.integers(1, 90), min_size=1, max_size=40),
    gyr_sizes=st.lists(st.integers(1, 90), min_size=1, max_size=40),
    offset=st.floats(-0.02, 0.02),
    gyro_fs=st.sampled_from([52.0, 104.0, 208.0]),
    gaps=st.booleans(),
)
def test_streaming_equals_batch(acc_sizes, gyr_sizes, offset, gyro_fs, gaps):
    ta, acc, tg, gyr = _streams(n=500, offset_s=offset, gyro_fs=gyro_fs)
    ng = len(tg)
    gap_a, gap_g = (236, ng // 2) if gaps else (None, None)
    # reference: two chunks per stream at the gap points (if any), fed in arrival order
    ref_acc_cuts = sorted({0, 500} | ({gap_a} if gaps else set()))
    ref_gyr_cuts = sorted({0, ng} | ({gap_g} if gaps else set()))
    ref = _flatten(_run(ImuMerger(), _interleave(ta, acc, tg, gyr, ref_acc_cuts, ref_gyr_cuts, gap_a, gap_g)))
    acc_cuts = sorted(set(_cuts(acc_sizes, 500)) | set(ref_acc_cuts))
    gyr_cuts = sorted(set(_cuts(gyr_sizes, ng)) | set(ref_gyr_cuts))
    got = _flatten(_run(ImuMerger(), _interleave(ta, acc, tg, gyr, acc_cuts, gyr_cuts, gap_a, gap_g)))
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_array_equal(r, g)
