"""Pelvis orientation: Baker angles against scipy, accuracy on exact synthetic motion, streaming equals
batch, state save/restore, accelerometer-only and bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).parent))

from _orient_synth import synth_run  # noqa: E402

from pelvimon.dsp.orientation import (  # noqa: E402
    OrientationParams,
    PelvisMotion,
    PelvisOrientation,
    offline_pelvis_orientation,
    pelvis_angles_from_quat,
)


def _wxyz(r: Rotation) -> np.ndarray:
    q = r.as_quat()
    return np.concatenate([q[..., 3:], q[..., :3]], axis=-1)


MOUNT = _wxyz(Rotation.random(random_state=7))


@pytest.fixture(scope="module")
def run() -> object:
    return synth_run(
        stand_s=3.0,
        run_s=16.0,
        mount_quat_wxyz=MOUNT,
        noise_acc=0.05,
        noise_gyr=0.005,
        bias_gyr=np.array([0.01, -0.015, 0.008]),
        heading_drift_dps=0.3,
        seed=3,
    )


# ---------------------------------------------------------------- angle decomposition (oracle: scipy)
@settings(max_examples=60, deadline=None)
@given(
    st.floats(-89, 89),  # obliquity
    st.floats(-179, 179),  # tilt
    st.floats(-179, 179),  # rotation
)
def test_baker_angles_match_scipy_intrinsic_zxy(obl: float, tilt: float, rot: float) -> None:
    r = Rotation.from_euler("ZXY", [rot, obl, tilt], degrees=True)  # Rz(rot) Rx(obl) Ry(tilt)
    t_, o_, r_ = pelvis_angles_from_quat(_wxyz(r)[None, :])
    np.testing.assert_allclose([t_[0], o_[0], r_[0]], [tilt, obl, rot], atol=1e-6)
    # and the matrix product written out by hand is the same rotation
    m = (
        Rotation.from_euler("z", rot, degrees=True)
        * Rotation.from_euler("x", obl, degrees=True)
        * Rotation.from_euler("y", tilt, degrees=True)
    )
    np.testing.assert_allclose(m.as_matrix(), r.as_matrix(), atol=1e-12)


def test_sign_conventions_of_the_design() -> None:
    # anterior tilt: the pelvis x axis (anterior) points downwards
    r = Rotation.from_euler("y", 10, degrees=True)
    assert r.apply([1, 0, 0])[2] < 0
    tilt, obl, rot = pelvis_angles_from_quat(_wxyz(r))
    assert tilt == pytest.approx(10) and abs(obl) < 1e-9 and abs(rot) < 1e-9
    # obliquity > 0 lifts the left side (+y goes up)
    r = Rotation.from_euler("x", 5, degrees=True)
    assert r.apply([0, 1, 0])[2] > 0
    assert pelvis_angles_from_quat(_wxyz(r))[1] == pytest.approx(5)
    # rotation > 0 turns the pelvis to the left (x towards +y)
    r = Rotation.from_euler("z", 7, degrees=True)
    assert r.apply([1, 0, 0])[1] > 0
    assert pelvis_angles_from_quat(_wxyz(r))[2] == pytest.approx(7)


def test_angles_reject_bad_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        pelvis_angles_from_quat(np.zeros((3, 3)))


# ---------------------------------------------------------------- accuracy on exact synthetic motion
def _step_ranges(t: np.ndarray, x: np.ndarray, t_ic: np.ndarray) -> np.ndarray:
    return np.array([np.ptp(x[(t >= a) & (t < b)]) for a, b in zip(t_ic[:-1], t_ic[1:], strict=True)])


@pytest.mark.parametrize("offline", [False, True])
def test_angles_follow_truth_for_any_mounting(run, offline: bool) -> None:
    if offline:
        m = offline_pelvis_orientation(run.t_s, run.acc_mps2, run.gyr_rads, MOUNT, 200.0)
    else:
        m = PelvisOrientation(200.0, MOUNT).update(run.t_s, run.acc_mps2, run.gyr_rads)
    late = run.t_s > 8.0
    assert m.valid[late].all()
    for name, tol in (("tilt", 0.5), ("obliquity", 0.5), ("rotation", 1.0)):
        est, tru = getattr(m, f"{name}_deg"), getattr(run, f"{name}_deg")
        rmse = float(np.sqrt(np.mean((est[late] - tru[late]) ** 2)))
        assert rmse < tol, (name, rmse)
        ics = run.t_ic_s[run.t_ic_s > 8.0]
        dr = _step_ranges(run.t_s, est, ics) - _step_ranges(run.t_s, tru, ics)
        assert np.max(np.abs(dr)) < 0.6, (name, dr)
    # rotation is relative to the running direction: it oscillates around 0 despite heading drift
    assert abs(float(np.mean(m.rotation_deg[late]))) < 0.5


def test_acc_level_is_level_and_heading_free(run) -> None:
    m = PelvisOrientation(200.0, MOUNT).update(run.t_s, run.acc_mps2, run.gyr_rads)
    late = run.t_s > 8.0
    # standing: specific force straight up
    stand = run.t_s < 2.5
    np.testing.assert_allclose(np.mean(m.acc_level_mps2[stand], axis=0), [0, 0, 9.80665], atol=0.2)  # gyro bias not yet estimated
    # running: the synthetic world force is known; compare in the running-direction frame
    a = m.acc_level_mps2[late]
    tr = np.radians(run.heading_deg[late])
    # truth: rebuild the world force in the running frame from the pelvis-frame force and the true angles
    r_wp = Rotation.from_euler("ZXY", np.radians(np.stack([run.rotation_deg, run.obliquity_deg, run.tilt_deg], 1)))
    q = Rotation.from_quat(np.concatenate([MOUNT[1:], MOUNT[:1]]))
    f_run = r_wp[late].apply(q.apply(run.acc_mps2[late]))
    del tr
    err = np.sqrt(np.mean(np.sum((a - f_run) ** 2, axis=1)))
    assert err < 0.35  # m/s², with 0.05 m/s² noise and a few 0.1 deg of angle error on ~25 m/s² peaks
    # brake-then-propel along +x in every stance: mean x over stance is ~0, first half negative
    assert np.corrcoef(a[:, 0], f_run[:, 0])[0, 1] > 0.98


# ---------------------------------------------------------------- streaming equals batch
@settings(max_examples=12, deadline=None)
@given(st.lists(st.integers(1, 400), min_size=1, max_size=40))
def test_streaming_random_chunks_bit_identical(sizes: list[int]) -> None:
    r = synth_run(stand_s=1.0, run_s=4.0, mount_quat_wxyz=MOUNT, noise_acc=0.05, noise_gyr=0.005, seed=1)
    whole = PelvisOrientation(200.0, MOUNT).update(r.t_s, r.acc_mps2, r.gyr_rads)
    po = PelvisOrientation(200.0, MOUNT)
    parts, i = [], 0
    n = r.t_s.size
    k = 0
    while i < n:
        j = min(n, i + sizes[k % len(sizes)])
        parts.append(po.update(r.t_s[i:j], r.acc_mps2[i:j], r.gyr_rads[i:j]))
        i, k = j, k + 1
    chunked = PelvisMotion.concat(parts)
    for f in ("tilt_deg", "obliquity_deg", "rotation_deg", "acc_pelvis_mps2", "acc_level_mps2", "valid"):
        np.testing.assert_array_equal(getattr(chunked, f), getattr(whole, f), err_msg=f)


def test_save_restore_continues_identically(run) -> None:
    n = run.t_s.size
    cut = n // 2
    whole = PelvisOrientation(200.0, MOUNT).update(run.t_s, run.acc_mps2, run.gyr_rads)
    a = PelvisOrientation(200.0, MOUNT)
    a.update(run.t_s[:cut], run.acc_mps2[:cut], run.gyr_rads[:cut])
    state = a.save_state()
    b = PelvisOrientation(200.0, MOUNT).restore_state(state)
    rest = b.update(run.t_s[cut:], run.acc_mps2[cut:], run.gyr_rads[cut:])
    np.testing.assert_array_equal(rest.obliquity_deg, whole.obliquity_deg[cut:])
    np.testing.assert_array_equal(rest.rotation_deg, whole.rotation_deg[cut:])
    with pytest.raises(ValueError, match="state"):
        b.restore_state({"nope": 1})


def test_valid_after_rest_or_settling_time_and_again_after_reset(run) -> None:
    # standing start: valid once VQF has seen rest (restMinT 1.5 s), well before settle_s
    po = PelvisOrientation(200.0, MOUNT, OrientationParams(warmup_s=0.5, settle_s=10.0))
    m = po.update(run.t_s, run.acc_mps2, run.gyr_rads)
    first = run.t_s[np.argmax(m.valid)]
    assert 0.5 <= first < 2.5 and m.valid[run.t_s >= first].all()
    # restart in motion (no rest to see): invalid for settle_s, then valid
    po.reset()
    moving = run.t_s >= 4.0
    m2 = po.update(run.t_s[moving], run.acc_mps2[moving], run.gyr_rads[moving])
    t2 = run.t_s[moving] - 4.0
    assert not m2.valid[t2 < 9.99].any() and m2.valid[t2 >= 10.0].all()
    # and the settled angles are right
    late = t2 >= 10.0
    err = m2.obliquity_deg[late] - run.obliquity_deg[moving][late]
    assert np.sqrt(np.mean(err**2)) < 0.5


# ---------------------------------------------------------------- accelerometer only, bad input
def test_accelerometer_only_marks_angles_invalid(run) -> None:
    m = PelvisOrientation(200.0, MOUNT).update(run.t_s, run.acc_mps2, None)
    assert not m.valid.any() and np.isnan(m.tilt_deg).all() and m.gyr_pelvis_rads is None
    q = Rotation.from_quat(np.concatenate([MOUNT[1:], MOUNT[:1]]))
    np.testing.assert_allclose(m.acc_pelvis_mps2, q.apply(run.acc_mps2), atol=1e-9)
    np.testing.assert_allclose(m.acc_level_mps2, m.acc_pelvis_mps2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mount_quat_wxyz": [1, 0, 0]}, "mount_quat_wxyz"),
        ({"mount_quat_wxyz": [2, 0, 0, 0]}, "unit"),
        ({"rate_hz": 0.0}, "rate_hz"),
        ({"params": OrientationParams(heading_order=3)}, "heading_order"),
    ],
)
def test_bad_construction_is_a_clear_error(kwargs: dict, match: str) -> None:
    args = {"rate_hz": 200.0, "mount_quat_wxyz": [1, 0, 0, 0]} | kwargs
    with pytest.raises(ValueError, match=match):
        PelvisOrientation(**args)


def test_any_memory_layout_is_accepted(run) -> None:
    """Column-major input (as pandas gives) gives the same result as row-major."""
    a = PelvisOrientation(200.0, MOUNT).update(run.t_s, run.acc_mps2, run.gyr_rads)
    b = PelvisOrientation(200.0, MOUNT).update(run.t_s, np.asfortranarray(run.acc_mps2), np.asfortranarray(run.gyr_rads))
    np.testing.assert_array_equal(a.obliquity_deg, b.obliquity_deg)


def test_bad_chunk_is_a_clear_error() -> None:
    po = PelvisOrientation(200.0, [1, 0, 0, 0])
    with pytest.raises(ValueError, match="acc_mps2"):
        po.update(np.arange(3.0), np.zeros((2, 3)), np.zeros((3, 3)))
    acc = np.zeros((3, 3))
    acc[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        po.update(np.arange(3.0), acc, np.zeros((3, 3)))
