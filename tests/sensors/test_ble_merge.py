"""Merging separately sent acc and gyro streams without inventing gyro: a lost gyro frame is not bridged
by interpolation, and the same instant rounded apart in two streams still merges."""

from __future__ import annotations

import numpy as np

from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.firmware_protocols.merge import ImuMerger

FS = 52.0


def _feed(m: ImuMerger, batches: list[ImuBatch]) -> list[ImuBatch]:
    out: list[ImuBatch] = []
    for b in batches:
        out += m.feed(b)
    return out + m.flush()


def test_acc_inside_a_lost_gyro_frame_gets_no_interpolated_gyro() -> None:
    t = 100.0 + np.arange(150) / FS
    acc = np.ones((150, 3))
    gyr = np.stack([t, t, t], axis=1)
    # gyro samples 50..99 lost (one frame); the next gyro frame says so
    batches = [
        ImuBatch(t_s=t[:50], gyr_rads=gyr[:50]),
        ImuBatch(t_s=t[:150], acc_mps2=acc),
        ImuBatch(t_s=t[100:], gyr_rads=gyr[100:], gap_before=True, n_lost=50),
    ]
    out = _feed(ImuMerger(expect=("acc", "gyr")), batches)
    with_gyr = np.concatenate([b.t_s for b in out if b.gyr_rads is not None])
    without = np.concatenate([b.t_s for b in out if b.gyr_rads is None])
    np.testing.assert_array_equal(without, t[50:100])  # exactly the samples whose gyro was lost
    np.testing.assert_array_equal(with_gyr, np.concatenate([t[:50], t[100:]]))
    after = next(b for b in out if b.gyr_rads is not None and b.t_s[0] == t[100])
    assert after.gap_before


def test_same_instant_rounded_apart_in_two_streams_merges() -> None:
    t = 100.0 + np.arange(20) / FS
    batches = [
        ImuBatch(t_s=t, acc_mps2=np.ones((20, 3))),
        ImuBatch(t_s=t + 3e-9, gyr_rads=np.zeros((20, 3))),  # ns timestamps of the other stream
    ]
    out = _feed(ImuMerger(expect=("acc", "gyr")), batches)
    assert sum(len(b) for b in out if b.gyr_rads is not None) == 20
