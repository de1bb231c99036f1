"""Mount calibration: any mounting, forward/left sign, accelerometer-only, streaming equals batch, state,
stillness detection, re-check, bad input. Truth from the simulator and from exact synthetic motion."""

from __future__ import annotations

import math
import sys
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).parent))

from _orient_synth import synth_run  # noqa: E402

from pelvimon.dsp.calibration import CalibrationParams, MountCalibration, calibrate_offline  # noqa: E402
from pelvimon.dsp.orientation import PelvisOrientation  # noqa: E402
from pelvimon.sensors.simulator import SimParams, simulate  # noqa: E402


def _rot(q_wxyz: np.ndarray) -> Rotation:
    q = np.asarray(q_wxyz, dtype=float)
    return Rotation.from_quat([q[1], q[2], q[3], q[0]])


def _standing_frame_error_deg(q_est: np.ndarray, q_true: np.ndarray, tilt_offset_deg: float) -> float:
    """Angle between the estimated mount and the truth's mount re-expressed in the standing pelvis frame.

    The simulator's pelvis has a static anterior tilt; the calibration defines standing as tilt 0, so the
    expected sensor->pelvis rotation is Ry(offset) · R_mount_true.
    """
    expected = Rotation.from_euler("y", tilt_offset_deg, degrees=True) * _rot(q_true)
    return float(np.degrees((_rot(q_est) * expected.inv()).magnitude()))


def _sign_right(q_est: np.ndarray, q_true: np.ndarray) -> bool:
    """Forward and left of the estimate point the same way as the truth's (in the sensor frame)."""
    re, rt = _rot(q_est).inv(), _rot(q_true).inv()  # pelvis -> sensor
    return bool(re.apply([1, 0, 0]) @ rt.apply([1, 0, 0]) > 0.9 and re.apply([0, 1, 0]) @ rt.apply([0, 1, 0]) > 0.9)


MOUNTS = [tuple(v) for v in np.random.default_rng(42).uniform(-180, 180, size=(16, 3))]


@pytest.mark.parametrize("use_gyro", [True, False])
def test_any_mounting_simulated_runner(use_gyro: bool) -> None:
    """16 random mountings, noise and bias on, run and walk: calibrated, right sign, small error."""
    errs: dict[str, list[float]] = {"run": [], "walk": []}
    for i, me in enumerate(MOUNTS):
        gait = "walk" if i % 4 == 3 else "run"
        sim = simulate(SimParams(seconds=20.0, mount_euler_deg=me, seed=i, gait=gait))
        b, tr = sim.batch, sim.truth
        cal = MountCalibration().update(b.t_s, b.acc_mps2, b.gyr_rads if use_gyro else None)
        assert cal.state_ == "calibrated", (me, cal.state_, cal.n_strides_)
        assert _sign_right(cal.mount_quat_wxyz_, tr.mount_quat_wxyz), me
        errs[gait].append(_standing_frame_error_deg(cal.mount_quat_wxyz_, tr.mount_quat_wxyz, tr.params["tilt_offset_deg"]))
        assert cal.t_calibrated_s_ < tr.gait_start_s + (14.0 if gait == "walk" else 10.0)
        assert cal.forward_confidence_ > 0.8
    if use_gyro:  # moments in the VQF level frame: the pelvis oscillation does not leak into them
        assert max(errs["run"]) < 1.5, errs
        assert max(errs["walk"]) < 2.5, errs
    else:  # fixed projection: asymmetric obliquity biases the forward direction by a few degrees
        assert max(errs["run"]) < 3.0, errs
        assert max(errs["walk"]) < 5.0, errs


def test_offline_uses_all_strides_and_matches_truth() -> None:
    sim = simulate(SimParams(seconds=30.0, mount_euler_deg=(100.0, 20.0, -60.0), seed=5))
    b, tr = sim.batch, sim.truth
    res = calibrate_offline(b.t_s, b.acc_mps2, b.gyr_rads)
    assert res.state == "calibrated" and res.n_strides > 20
    assert _standing_frame_error_deg(res.mount_quat_wxyz, tr.mount_quat_wxyz, tr.params["tilt_offset_deg"]) < 1.5
    assert res.still_intervals and res.still_intervals[0][1] - res.still_intervals[0][0] > 4.0


def test_exact_synthetic_runner_any_mounting() -> None:
    """Exact rigid-body signals (independent of the simulator): 20 random mountings."""
    for seed in range(20):
        r_true = Rotation.random(random_state=seed)
        q = r_true.as_quat()
        q_true = np.array([q[3], q[0], q[1], q[2]])
        s = synth_run(mount_quat_wxyz=q_true, run_s=12.0, noise_acc=0.1, noise_gyr=0.01, seed=seed)
        cal = MountCalibration().update(s.t_s, s.acc_mps2, s.gyr_rads)
        assert cal.state_ == "calibrated"
        assert _standing_frame_error_deg(cal.mount_quat_wxyz_, q_true, 0.0) < 1.5
        # gravity from the standing part is the sensor-frame up to well under a degree
        up_true = r_true.inv().apply([0, 0, 1])
        assert np.degrees(np.arccos(np.clip(cal.gravity_sensor_ @ up_true, -1, 1))) < 0.3


@pytest.mark.parametrize("lossy", [False, True])
@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(1, 700), min_size=1, max_size=30))
def test_streaming_chunks_equal_one_batch(lossy: bool, sizes: list[int]) -> None:
    s = synth_run(stand_s=3.0, run_s=11.0, mount_quat_wxyz=np.array([0.5, 0.5, -0.5, 0.5]), noise_acc=0.1, seed=2)
    # with lost data: bridged (10 samples) and dropped (40 samples) gaps, the streaming result is the same
    keep = _drop_notifications(s.t_s.size, 0.08, 10, 1) if lossy else np.arange(s.t_s.size)
    if lossy:
        keep = keep[(keep < 1500) | (keep >= 1540)]
    t, acc, gyr = s.t_s[keep], s.acc_mps2[keep], s.gyr_rads[keep]
    whole = MountCalibration().update(t, acc, gyr)
    cal = MountCalibration()
    i = k = 0
    while i < t.size:
        j = min(t.size, i + sizes[k % len(sizes)])
        cal.update(t[i:j], acc[i:j], gyr[i:j])
        i, k = j, k + 1
    assert cal.n_gaps_ == whole.n_gaps_ and (whole.n_gaps_ > 3) == lossy
    assert cal.state_ == whole.state_ == "calibrated"
    assert cal.t_calibrated_s_ == whole.t_calibrated_s_
    assert cal.n_strides_ == whole.n_strides_
    np.testing.assert_array_equal(cal.mount_quat_wxyz_, whole.mount_quat_wxyz_)  # bit-identical
    assert cal.still_intervals_ == whole.still_intervals_


def test_save_restore_round_trip() -> None:
    s = synth_run(stand_s=3.0, run_s=11.0, noise_acc=0.1, seed=4)
    whole = MountCalibration().update(s.t_s, s.acc_mps2, s.gyr_rads)
    for cut in (5, 700, 1100):  # inside the rate probe, during stillness, during gait
        a = MountCalibration().update(s.t_s[:cut], s.acc_mps2[:cut], s.gyr_rads[:cut])
        state = a.save_state()
        assert _plain(state)
        b = MountCalibration().restore_state(state)
        b.update(s.t_s[cut:], s.acc_mps2[cut:], s.gyr_rads[cut:])
        assert b.state_ == "calibrated"
        np.testing.assert_array_equal(b.mount_quat_wxyz_, whole.mount_quat_wxyz_)
    with pytest.raises(ValueError, match="state"):
        MountCalibration().restore_state({"version": 99})


def _plain(x: object) -> bool:
    if isinstance(x, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in x.items())
    if isinstance(x, list):
        return all(_plain(v) for v in x)
    return x is None or isinstance(x, bool | int | float | str)


def test_states_without_stillness_or_without_gait() -> None:
    s = synth_run(stand_s=3.0, run_s=4.0, seed=1)
    moving = s.t_s >= 3.0
    # a few steps of gait only, no standing: no gravity yet
    cal = MountCalibration().update(s.t_s[moving], s.acc_mps2[moving], s.gyr_rads[moving])
    assert cal.state_ == "waiting_for_stillness" and cal.gravity_sensor_ is None
    # standing only (2.5 s): gravity, no forward
    stand = s.t_s < 2.5
    cal = MountCalibration().update(s.t_s[stand], s.acc_mps2[stand], s.gyr_rads[stand])
    assert cal.state_ == "gravity_known" and cal.mount_quat_wxyz_ is None
    np.testing.assert_allclose(cal.gravity_sensor_, [0, 0, 1], atol=1e-6)
    # standing shorter than still_s: nothing
    short = s.t_s < 1.5
    cal = MountCalibration().update(s.t_s[short], s.acc_mps2[short], s.gyr_rads[short])
    assert cal.state_ == "waiting_for_stillness"


@pytest.mark.parametrize("use_gyro", [True, False])
def test_no_stillness_falls_back_to_the_mean_gait_posture(use_gyro: bool) -> None:
    """A session without any still period: gravity from the mean vertical over whole strides (with a
    gyroscope) or the mean specific force (without)."""
    r_true = Rotation.from_euler("xyz", [40, -70, 150], degrees=True)
    q = r_true.as_quat()
    q_true = np.array([q[3], q[0], q[1], q[2]])
    s = synth_run(
        stand_s=0.0, run_s=16.0, mount_quat_wxyz=q_true, run_tilt_deg=5.0, noise_acc=0.1, noise_gyr=0.005, seed=8
    )
    cal = MountCalibration().update(s.t_s, s.acc_mps2, s.gyr_rads if use_gyro else None)
    assert cal.state_ == "calibrated" and cal.gravity_source_ == "gait"
    # the frame is the mean running posture: standing frame tilted by the mean running tilt (5 deg); without
    # a gyroscope the tilt oscillation correlates with the vertical force and biases the mean a few degrees
    err = _standing_frame_error_deg(cal.mount_quat_wxyz_, q_true, 5.0)
    assert err < (1.0 if use_gyro else 3.5), err
    assert _sign_right(cal.mount_quat_wxyz_, q_true)


def test_recheck_flags_a_sensor_that_turned() -> None:
    """After calibration the sensor is turned 90 deg about the vertical: the re-check flags it."""
    s = synth_run(stand_s=3.0, run_s=30.0, noise_acc=0.05, seed=6)
    cal = MountCalibration(CalibrationParams(recheck_blocks=5))
    half = s.t_s < 14.0
    cal.update(s.t_s[half], s.acc_mps2[half], s.gyr_rads[half])
    assert cal.state_ == "calibrated" and not cal.forward_moved_
    assert cal.forward_recent_deg_ < 5.0
    turn = Rotation.from_euler("z", 90, degrees=True)
    cal.update(s.t_s[~half], turn.apply(s.acc_mps2[~half]), turn.apply(s.gyr_rads[~half]))
    assert cal.forward_moved_ and cal.forward_recent_deg_ > 60.0


def test_a_moved_sensor_is_timed_at_the_block_that_showed_it_whatever_the_chunking() -> None:
    """When the re-check first flags the turn: the time of the step that closed that block and the angle
    then (over the limit, under the full turn), and the start of the block before the first that ran the
    new way (at most two blocks before the turn), the same in one call, in 1 s chunks and after a state
    saved and restored in between; an old state without them restores as not moved."""
    s = synth_run(stand_s=3.0, run_s=30.0, noise_acc=0.05, seed=6)
    turn = Rotation.from_euler("z", 90, degrees=True)
    after = s.t_s >= 14.0
    acc = np.where(after[:, None], turn.apply(s.acc_mps2), s.acc_mps2)
    gyr = np.where(after[:, None], turn.apply(s.gyr_rads), s.gyr_rads)
    params = CalibrationParams(recheck_blocks=5)
    whole = MountCalibration(params).update(s.t_s, acc, gyr)
    assert whole.forward_moved_ and whole.t_forward_moved_s_ is not None
    assert 14.0 < whole.t_forward_moved_s_ < 30.0
    assert params.recheck_deg < whole.forward_moved_deg_ < 90.0
    # the time is that of a step: the last sample the re-check had read then is earlier than the stream's end
    assert whole.t_forward_moved_s_ < s.t_s[-1] - 1.0
    chunked = MountCalibration(params)
    for a in range(0, s.t_s.size, 200):
        chunked.update(s.t_s[a : a + 200], acc[a : a + 200], gyr[a : a + 200])
        if a == 3000:
            state = chunked.save_state()
            chunked = MountCalibration(params).restore_state(state)
    assert (chunked.t_forward_moved_s_, chunked.forward_moved_deg_) == (whole.t_forward_moved_s_, whole.forward_moved_deg_)
    assert whole.t_forward_moved_from_s_ is not None and 14.0 - 2 * 2 * params.block_s < whole.t_forward_moved_from_s_ <= 14.0
    assert chunked.t_forward_moved_from_s_ == whole.t_forward_moved_from_s_
    state = whole.save_state()
    back = MountCalibration(params).restore_state(state)
    assert (back.t_forward_moved_s_, back.t_forward_moved_from_s_) == (whole.t_forward_moved_s_, whole.t_forward_moved_from_s_)
    del state["t_forward_moved_s_"], state["forward_moved_deg_"]
    del state["t_forward_moved_from_s_"], state["_recent_t0"], state["_block_t0"]
    old = MountCalibration(params).restore_state(state)
    assert old.t_forward_moved_s_ is None and np.isnan(old.forward_moved_deg_) and old.t_forward_moved_from_s_ is None


@pytest.mark.parametrize("axis", ["z", "x"])
def test_a_sensor_turned_around_is_seen_by_the_short_window_first(axis: str) -> None:
    """Turned around (about the vertical, or upside down about the forward axis) at 20 s: the last three
    blocks, each turned, show it within 9 s, where the ten-block window, which still holds the strides from
    before, takes over 12 s; a 30 deg turn is left to the ten-block window."""
    s = synth_run(stand_s=3.0, run_s=40.0, noise_acc=0.05, seed=6)
    after = s.t_s >= 20.0

    def seen(turn_deg: float, params: CalibrationParams) -> MountCalibration:
        turn = Rotation.from_euler(axis, turn_deg, degrees=True)
        acc = np.where(after[:, None], turn.apply(s.acc_mps2), s.acc_mps2)
        gyr = np.where(after[:, None], turn.apply(s.gyr_rads), s.gyr_rads)
        return MountCalibration(params).update(s.t_s, acc, gyr)

    fast = seen(180.0, CalibrationParams())
    slow = seen(180.0, CalibrationParams(recheck_fast_deg=180.0))  # (no short window)
    assert fast.t_forward_moved_s_ is not None and slow.t_forward_moved_s_ is not None
    assert 20.0 < fast.t_forward_moved_s_ < 29.5 and slow.t_forward_moved_s_ > 32.0
    assert fast.forward_moved_deg_ > 150.0
    if axis == "z":
        small = seen(30.0, CalibrationParams())
        assert small.t_forward_moved_s_ == seen(30.0, CalibrationParams(recheck_fast_deg=180.0)).t_forward_moved_s_
    with pytest.raises(ValueError, match="recheck_fast"):
        CalibrationParams(recheck_fast_blocks=0).validate()


def test_gyroscope_must_stay_present_or_absent() -> None:
    cal = MountCalibration().update(np.arange(20) / 200.0, np.tile([0, 0, 9.81], (20, 1)), np.zeros((20, 3)))
    with pytest.raises(ValueError, match="every chunk"):
        cal.update(np.arange(20, 40) / 200.0, np.tile([0, 0, 9.81], (20, 1)), None)


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="acc_mps2"):
        MountCalibration().update(np.arange(4.0), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="gyr_rads"):
        MountCalibration().update(np.arange(3.0), np.zeros((3, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="step_low_g"):
        MountCalibration(CalibrationParams(step_low_g=1.1))
    with pytest.raises(ValueError, match="increase"):
        MountCalibration().update(np.zeros(20), np.ones((20, 3)))


@settings(max_examples=8, deadline=None)
@given(st.lists(st.integers(1, 500), min_size=1, max_size=20))
def test_orientation_seed_hands_over_vqf_identically_for_any_chunking(sizes: list[int]) -> None:
    """Calibration -> orientation handover: angles right from the next sample, identical for any chunking."""
    q_true = np.array([0.5, -0.5, 0.5, 0.5])
    s = synth_run(stand_s=3.0, run_s=11.0, mount_quat_wxyz=q_true, noise_acc=0.05, noise_gyr=0.005,
                  bias_gyr=np.array([0.01, -0.015, 0.008]), seed=11)

    def pipeline(chunks: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, MountCalibration]:
        cal, po, out_t, out_o, out_r = MountCalibration(), None, [], [], []
        i = k = 0
        while i < s.t_s.size:
            j = min(s.t_s.size, i + chunks[k % len(chunks)])
            t, a, g = s.t_s[i:j], s.acc_mps2[i:j], s.gyr_rads[i:j]
            if po is None:
                cal.update(t, a, g)
                if cal.state_ == "calibrated":
                    po = PelvisOrientation(200.0, cal.mount_quat_wxyz_).restore_state(cal.orientation_seed_)
                    k0 = int(np.searchsorted(t, cal.t_calibrated_s_, side="right"))
                    t, a, g = t[k0:], a[k0:], g[k0:]
            if po is not None and t.size:
                m = po.update(t, a, g)
                out_t.append(m.t_s)
                out_o.append(np.where(m.valid, m.obliquity_deg, np.nan))
                out_r.append(m.rotation_deg)
            i, k = j, k + 1
        return np.concatenate(out_t), np.concatenate(out_o), np.concatenate(out_r), cal

    t_whole, o_whole, r_whole, cal = pipeline([s.t_s.size])
    t_chunk, o_chunk, r_chunk, _ = pipeline(sizes)
    np.testing.assert_array_equal(t_chunk, t_whole)
    np.testing.assert_array_equal(o_chunk, o_whole)
    np.testing.assert_array_equal(r_chunk, r_whole)
    # the running-direction tracker is handed over too: the rotation equals, bit for bit, that of an
    # estimator with the calibrated mount fed from the first sample of the stream
    ref = PelvisOrientation(200.0, cal.mount_quat_wxyz_).update(s.t_s, s.acc_mps2, s.gyr_rads)
    np.testing.assert_array_equal(r_whole, ref.rotation_deg[s.t_s.size - r_whole.size :])
    np.testing.assert_array_equal(o_whole, ref.obliquity_deg[s.t_s.size - o_whole.size :])
    # valid from the first sample after calibration (VQF saw the standing rest), and accurate at once
    assert np.isfinite(o_whole).all()
    truth = np.interp(t_whole, s.t_s, s.obliquity_deg)
    assert np.sqrt(np.mean((o_whole - truth) ** 2)) < 0.3


def _drop_notifications(n: int, share: float, block: int, seed: int) -> np.ndarray:
    """Indices kept after dropping ``share`` of the ``block``-sample notifications (the first 4 s kept)."""
    rng = np.random.default_rng(seed)
    keep = np.ones(n, dtype=bool)
    for b0 in range(800, n, block):
        if rng.random() < share:
            keep[b0 : b0 + block] = False
    return np.flatnonzero(keep)


def _calibrate_chunked(t: np.ndarray, acc: np.ndarray, gyr: np.ndarray, idx: np.ndarray) -> MountCalibration:
    cal = MountCalibration(rate_hz=200.0)
    for i in range(0, idx.size, 7):  # notification-sized chunks
        j = idx[i : i + 7]
        cal.update(t[j], acc[j], gyr[j])
        if cal.state_ == "calibrated":
            break
    return cal


@pytest.mark.parametrize("block", [10, 50])
def test_lost_notifications_do_not_delay_the_calibration(block: int) -> None:
    """5 % of the notifications lost (10 samples: bridged; 50 samples: the stride holding each gap is
    dropped): calibrated about as early as without loss, and as accurately."""
    late, errs, n_gaps = [], [], 0
    for seed in range(4):
        sim = simulate(SimParams(seconds=25.0, mount_euler_deg=(30.0 + 40.0 * seed, -70.0, 120.0), seed=seed))
        b, tr = sim.batch, sim.truth
        whole = _calibrate_chunked(b.t_s, b.acc_mps2, b.gyr_rads, np.arange(b.t_s.size))
        k = _drop_notifications(b.t_s.size, 0.05, block, seed)
        lossy = _calibrate_chunked(b.t_s, b.acc_mps2, b.gyr_rads, k)
        assert whole.state_ == lossy.state_ == "calibrated"
        assert whole.n_gaps_ == 0
        n_gaps += lossy.n_gaps_
        late.append(lossy.t_calibrated_s_ - whole.t_calibrated_s_)
        errs.append(_standing_frame_error_deg(lossy.mount_quat_wxyz_, tr.mount_quat_wxyz, tr.params["tilt_offset_deg"]))
    assert n_gaps >= 4  # gaps before the calibration completed
    assert max(late) < (2.0 if block == 10 else 4.0), late
    assert np.mean(late) < 2.0, late
    assert max(errs) < 1.0, errs


def test_given_rate_overrides_irregular_first_timestamps() -> None:
    """A stream whose first samples come at twice the rate: the given rate is used, not the probe."""
    sim = simulate(SimParams(seconds=20.0, seed=3))
    b = sim.batch
    t = b.t_s.copy()
    t[:20] = t[20] - 0.0025 * np.arange(20, 0, -1)  # first 20 samples 2.5 ms apart
    assert MountCalibration().update(t, b.acc_mps2, b.gyr_rads).rate_hz_ == pytest.approx(400.0)
    cal = MountCalibration(rate_hz=200.0).update(t, b.acc_mps2, b.gyr_rads)
    assert cal.rate_hz_ == 200.0
    assert cal.state_ == "calibrated"


def test_recheck_on_the_orientation_stage_quaternions_stays_quiet_on_a_steady_run() -> None:
    """The pipeline's re-check reads the orientation stage's VQF: a steady 90 s run is never flagged."""
    from pelvimon.dsp.pipeline import GaitPipeline, MountMoved

    b = simulate(SimParams(seconds=90.0, mount_euler_deg=(-40.0, 25.0, 160.0), seed=9)).batch
    pipe = GaitPipeline(200.0)
    events = []
    for a in range(0, len(b), 500):
        events += pipe.update(b.slice(a, a + 500)).events
    cal = pipe.calibration_
    assert cal.state_ == "calibrated" and cal._n_blocks > 20  # blocks kept coming after calibration
    assert not any(isinstance(e, MountMoved) for e in events)
    assert cal.forward_recent_deg_ < 5.0


def test_angle_between_forwards_is_nan_for_a_bad_moment_not_180_deg() -> None:
    from pelvimon.dsp.calibration import _angle_deg

    assert _angle_deg(np.array([1.0, 0.0, 0.0]), np.array([-1.0, 0.0, 0.0])) == pytest.approx(180.0)
    assert math.isnan(_angle_deg(np.array([np.nan, 0.0, 0.0]), np.array([1.0, 0.0, 0.0])))


# --- the batched forms against their readable step-by-step forms, bit for bit


def _rises_reference(av: np.ndarray, high: float, low: float, level: int) -> tuple[list[int], int]:
    """Sample by sample: a step where the level goes from low to high."""
    out = []
    for i, v in enumerate(av.tolist()):
        if v > high:
            if level == -1:
                out.append(i)
            level = 1
        elif v < low:
            level = -1
    return out, level


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([-1, 0, 1]))
def test_step_rises_equal_the_sample_by_sample_hysteresis(seed: int, level: int) -> None:
    from pelvimon.dsp.calibration import _step_rises

    rng = np.random.default_rng(seed)
    av = 1.0 + 0.2 * np.cumsum(rng.normal(0.0, 0.3, int(rng.integers(1, 400))))
    av[rng.random(av.size) < 0.1] = 1.0  # ties on no threshold: undecided samples
    expected, level_after = _rises_reference(av, 1.06, 0.94, level)
    rises, got_level = _step_rises(av, 1.06, 0.94, level)
    assert rises.tolist() == expected and got_level == level_after
    cut = int(rng.integers(0, av.size + 1))  # any chunking: the level carries over
    r0, lv = _step_rises(av[:cut], 1.06, 0.94, level)
    r1, lv = _step_rises(av[cut:], 1.06, 0.94, lv)
    assert r0.tolist() + (r1 + cut).tolist() == expected and lv == level_after


def test_sums_and_norms_written_out_keep_the_bits() -> None:
    from pelvimon.dsp.calibration import _norms, _seq_sum, _seq_sum_onto

    rng = np.random.default_rng(3)
    v = rng.normal(0.0, 1.0, (5000, 3)) * np.exp(rng.normal(0.0, 4.0, (5000, 3)))
    np.testing.assert_array_equal(_norms(v), np.linalg.norm(v, axis=1))
    for n, m in ((1, 2), (2, 6), (7, 12), (400, 18)):
        rows = rng.normal(0.0, 1.0, (n, m)) * np.exp(rng.normal(0.0, 6.0, (n, m)))
        rows[rng.random((n, m)) < 0.1] = -0.0
        for carry in (np.zeros(m), rng.normal(0.0, 1e3, m)):
            expected = _seq_sum(carry, rows)
            got = _seq_sum_onto(carry, rows.copy())
            assert got.tobytes() == expected.tobytes()  # (the sign of a zero included)


def _recheck_reference(recent: deque, ms: np.ndarray, up: np.ndarray, fwd: np.ndarray, p: CalibrationParams,
                       t0: deque):
    """The per-block re-check: after each block, the sum of the recent moments from the oldest on, and, when
    each of the last ``recheck_fast_blocks`` blocks on its own is off by more than ``recheck_fast_deg``, the
    sum of those. When it first moved, the start ``t0`` of the block before the first of the window that
    ran another way, by trying every split of the window."""
    from pelvimon.dsp.calibration import _angle_deg, _forward_from_moment

    def angle_of(blocks: list) -> float:
        total = np.zeros((3, 3))
        for x in blocks:
            total = total + x
        return _angle_deg(_forward_from_moment(total, up), fwd)

    def split(blocks: list) -> int:
        us = [v / np.linalg.norm(v) for v in (_forward_from_moment(x, up) for x in blocks)]
        f = fwd / np.linalg.norm(fwd)
        fits = [sum(float(u @ f) for u in us[:s]) + float(np.linalg.norm(sum(us[s:]))) for s in range(len(us))]
        return int(np.argmax(fits))

    angle, moved, first = math.nan, False, None
    ws = min(p.recheck_fast_blocks, p.recheck_blocks)
    for i, m in enumerate(ms):
        recent.append(m.copy())
        t0.append(200.0 + i)
        if len(recent) >= min(p.recheck_blocks, 3):
            angle = angle_of(list(recent))
        last = list(recent)[-ws:]
        fast = math.nan
        if len(recent) >= ws and all(angle_of([x]) > p.recheck_fast_deg for x in last):
            fast = angle_of(last)
        if not moved and (angle > p.recheck_deg or fast > p.recheck_fast_deg):
            s = split(list(recent))
            moved, first = True, (i, max(a for a in (angle, fast) if math.isfinite(a)), list(t0)[max(0, s - 1)])
    return angle, moved, first


@pytest.mark.parametrize(("recheck_blocks", "fast_blocks", "fast_deg"), [(1, 3, 60.0), (3, 3, 60.0), (10, 3, 60.0),
                                                                       (10, 2, 45.0), (10, 10, 170.0)])
def test_batched_recheck_equals_the_block_by_block_form(recheck_blocks: int, fast_blocks: int, fast_deg: float) -> None:
    rng = np.random.default_rng(recheck_blocks + fast_blocks)
    p = CalibrationParams(recheck_blocks=recheck_blocks, recheck_deg=30.0, recheck_fast_blocks=fast_blocks,
                          recheck_fast_deg=fast_deg)
    up = np.array([0.1, -0.2, 0.97]) / np.linalg.norm([0.1, -0.2, 0.97])
    fwd = np.array([0.9, 0.3, 0.0]) / np.linalg.norm([0.9, 0.3, 0.0])
    for n0 in (0, 1, 2, recheck_blocks, 2 * recheck_blocks):
        for k in (1, 2, 5, 13):
            before = [rng.normal(0.0, 1.0, (3, 3)) * 10.0 ** rng.uniform(-3, 3) for _ in range(n0)]
            ms = rng.normal(0.0, 1.0, (k, 3, 3)) * 10.0 ** rng.uniform(-3, 3, (k, 1, 1))
            cal = MountCalibration(p)
            cal.gravity_sensor_, cal.forward_sensor_ = up, fwd
            cal._recent = deque(before, maxlen=recheck_blocks)
            t0_before = [50.0 + i for i in range(n0)]
            cal._recent_t0 = deque(t0_before, maxlen=recheck_blocks)
            t_end = [100.0 + 2.5 * i for i in range(k)]
            cal._recheck(ms, t_end, [200.0 + i for i in range(k)])
            ref = deque(before, maxlen=recheck_blocks)
            angle, moved, first = _recheck_reference(ref, ms, up, fwd, p, deque(t0_before, maxlen=recheck_blocks))
            assert (math.isnan(angle) and math.isnan(cal.forward_recent_deg_)) or cal.forward_recent_deg_ == angle
            assert cal.forward_moved_ == moved
            # when it first moved: that block's step time and angle
            if first is None:
                assert cal.t_forward_moved_s_ is None and math.isnan(cal.forward_moved_deg_)
                assert cal.t_forward_moved_from_s_ is None
            else:
                assert (cal.t_forward_moved_s_, cal.forward_moved_deg_) == (t_end[first[0]], first[1])
                assert cal.t_forward_moved_from_s_ == first[2]
            assert len(cal._recent) == len(ref) and all(np.array_equal(a, b) for a, b in zip(cal._recent, ref, strict=True))


@pytest.mark.parametrize("gyro", [True, False])
def test_block_moments_equal_the_per_block_formula(gyro: bool) -> None:
    from pelvimon.dsp.calibration import G_MPS2, _block_moments, _UsedBlock

    rng = np.random.default_rng(7)
    done = [
        _UsedBlock(rng.normal(0.0, 1.0, 18 if gyro else 12) * 10.0 ** rng.uniform(-2, 4), int(rng.integers(1, 900)),
                  bool(rng.random() < 0.5), 4, 0, 0.0)
        for _ in range(11)
    ]
    done[0].sums[[0, 4]] = 0.0  # (a zero keeps its sign)
    m, acc, det = _block_moments(done, gyro)
    for i, b in enumerate(done):
        mi = b.sums[:9].reshape(3, 3) if b.running else -b.sums[:9].reshape(3, 3)
        ai = b.sums[9:]
        if gyro:
            r_mean = b.sums[9:].reshape(3, 3) / max(b.cnt, 1)
            mi = r_mean.T @ mi @ r_mean
            ai = r_mean[2, :] * (G_MPS2 * b.cnt)
            assert det[i] == pytest.approx(np.linalg.det(r_mean), rel=1e-12)
        else:
            assert det[i] == 1.0
        assert m[i].tobytes() == mi.tobytes() and acc[i].tobytes() == ai.tobytes()


def test_recheck_leaves_out_blocks_with_a_turn() -> None:
    """Overground U-turns: the re-check's angle stays within 0.5° with the turning blocks left out, and moves
    further with them in (synthetic turns move it little; real ones moved it past the limit, see the
    real-walk test); a bad limit is a clear error."""
    s = synth_run(stand_s=3.0, run_s=50.0, turns=((20.0, 1.0, 180.0), (35.0, 1.5, -180.0)), cadence_spm=110,
                  contact_frac=0.6, noise_acc=0.05, noise_gyr=0.005, seed=4)
    top = {}
    for turn_deg in (45.0, 360.0):
        cal = MountCalibration(CalibrationParams(recheck_turn_deg=turn_deg))
        top[turn_deg] = 0.0
        for a in range(0, s.t_s.size, 200):
            cal.update(s.t_s[a : a + 200], s.acc_mps2[a : a + 200], s.gyr_rads[a : a + 200])
            if np.isfinite(cal.forward_recent_deg_):
                top[turn_deg] = max(top[turn_deg], cal.forward_recent_deg_)
        assert cal.state_ == "calibrated" and not cal.forward_moved_
    assert top[45.0] < 0.5 and top[360.0] > 2 * top[45.0]
    with pytest.raises(ValueError, match="recheck_turn_deg"):
        MountCalibration(CalibrationParams(recheck_turn_deg=0.0))
