"""The running-direction tracker through turns: rotation ranges right again within a step or two after a
U-turn, rotation left out while turning, never in straight running, and streaming equals batch across its
restarts (any chunking, state saved anywhere, the calibration's hand-over)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from _orient_synth import SynthRun, synth_run  # noqa: E402

from pelvimon.dsp.orientation import (  # noqa: E402
    OrientationParams,
    PelvisMotion,
    PelvisOrientation,
    heading_state,
)

FS = 200.0
TURN_AT_S = 10.0


def _u_turn(cadence_spm: float, turn_s: float, seed: int = 4) -> SynthRun:
    return synth_run(stand_s=3.0, run_s=20.0, cadence_spm=cadence_spm, turns=((TURN_AT_S, turn_s, 180.0),),
                     noise_acc=0.05, noise_gyr=0.005, seed=seed)


def _range_errors(r: SynthRun, m: PelvisMotion) -> tuple[np.ndarray, np.ndarray]:
    """Per step (IC to next IC): its start, s, and its rotation range minus the true one, deg (NaN: left out)."""
    starts, err = [], []
    for a, b in zip(r.t_ic_s[:-1], r.t_ic_s[1:], strict=True):
        w = (r.t_s >= a) & (r.t_s <= b)
        starts.append(a)
        err.append(np.ptp(m.rotation_deg[w]) - np.ptp(r.rotation_deg[w]))
    return np.array(starts), np.array(err)


@pytest.mark.parametrize(("cadence_spm", "turn_s"), [(170.0, 0.8), (170.0, 3.0), (110.0, 0.8), (110.0, 1.5)])
def test_rotation_ranges_are_right_again_soon_after_a_u_turn(cadence_spm: float, turn_s: float) -> None:
    r = _u_turn(cadence_spm, turn_s)
    t0, err = _range_errors(r, PelvisOrientation(FS, r.mount_quat_wxyz).update(r.t_s, r.acc_mps2, r.gyr_rads))
    end = TURN_AT_S + turn_s
    before = (t0 > 5.0) & (t0 < TURN_AT_S - 1.0)
    assert np.isfinite(err[before]).all() and np.abs(err[before]).max() < 0.5
    after = t0 >= end
    # at most two steps after the turn are left out (the pelvis still away, the tracker's second restart) ...
    assert np.isnan(err[after]).sum() <= 2
    assert np.nanmax(np.abs(err[after])) < 0.5
    # ... and from 1.5 s after it every step has its rotation range, right
    later = t0 >= end + 1.5
    assert np.isfinite(err[later]).all() and np.abs(err[later]).max() < 0.5
    # the low-pass alone (no restarts) is still seconds behind: ranges left out or several degrees off
    old = PelvisOrientation(FS, r.mount_quat_wxyz, OrientationParams(turn_s=0.0))
    _, err_old = _range_errors(r, old.update(r.t_s, r.acc_mps2, r.gyr_rads))
    soon = (t0 >= end) & (t0 < end + 4.0)
    assert np.isnan(err_old[soon]).sum() >= 2 and np.nanmax(np.abs(err_old[soon])) > 3.0


def test_rotation_is_left_out_while_turning() -> None:
    r = _u_turn(170.0, 1.5)
    m = PelvisOrientation(FS, r.mount_quat_wxyz).update(r.t_s, r.acc_mps2, r.gyr_rads)
    turning = (r.t_s >= TURN_AT_S) & (r.t_s < TURN_AT_S + 1.5)
    assert np.isnan(m.rotation_deg[turning]).mean() > 0.3
    # where it is given in the turn, the pelvis is within turn_deg of the running direction
    assert np.nanmax(np.abs(m.rotation_deg[turning])) <= OrientationParams().turn_deg
    # tilt and obliquity are not affected
    assert np.isfinite(m.obliquity_deg[turning]).all()


@pytest.mark.parametrize(("cadence_spm", "amp_deg"), [(170.0, 15.0), (110.0, 15.0), (60.0, 10.0)])
def test_straight_gait_never_restarts_the_tracker(cadence_spm: float, amp_deg: float) -> None:
    """Large rotations in the stride (15 deg either way, sprinting) and a slowly drifting heading: no sample
    is left out and the rotation is the true one (no restart moved the running direction)."""
    r = synth_run(stand_s=3.0, run_s=30.0, cadence_spm=cadence_spm, rotation_amp_deg=amp_deg,
                  heading_drift_dps=2.0, noise_acc=0.05, noise_gyr=0.005, seed=2)
    m = PelvisOrientation(FS, r.mount_quat_wxyz).update(r.t_s, r.acc_mps2, r.gyr_rads)
    ok = m.valid
    assert np.isfinite(m.rotation_deg[ok]).all()
    late = r.t_s > 10.0
    assert np.abs(m.rotation_deg[late] - r.rotation_deg[late]).max() < 1.5


@settings(max_examples=12, deadline=None)
@given(st.lists(st.integers(1, 700), min_size=1, max_size=30))
def test_streaming_through_turns_is_bit_identical_for_any_chunking(sizes: list[int]) -> None:
    r = synth_run(stand_s=1.0, run_s=9.0, cadence_spm=120.0, turns=((3.0, 1.0, 180.0), (6.5, 0.5, -120.0)),
                  noise_acc=0.05, noise_gyr=0.005, seed=1)
    whole = PelvisOrientation(FS, r.mount_quat_wxyz).update(r.t_s, r.acc_mps2, r.gyr_rads)
    assert np.isnan(whole.rotation_deg).any()  # (the turns restarted the tracker)
    po = PelvisOrientation(FS, r.mount_quat_wxyz)
    parts, i, k = [], 0, 0
    while i < r.t_s.size:
        j = min(r.t_s.size, i + sizes[k % len(sizes)])
        parts.append(po.update(r.t_s[i:j], r.acc_mps2[i:j], r.gyr_rads[i:j]))
        i, k = j, k + 1
    chunked = PelvisMotion.concat(parts)
    for f in ("rotation_deg", "acc_level_mps2", "obliquity_deg"):
        np.testing.assert_array_equal(getattr(chunked, f), getattr(whole, f), err_msg=f)


def test_state_saved_anywhere_in_a_turn_continues_identically() -> None:
    r = _u_turn(110.0, 1.5)
    whole = PelvisOrientation(FS, r.mount_quat_wxyz).update(r.t_s, r.acc_mps2, r.gyr_rads)
    seen_away = seen_settling = False
    for cut_s in np.arange(TURN_AT_S, TURN_AT_S + 4.0, 0.13):
        cut = int(cut_s * FS)
        a = PelvisOrientation(FS, r.mount_quat_wxyz)
        a.update(r.t_s[:cut], r.acc_mps2[:cut], r.gyr_rads[:cut])
        state = a.save_state()
        off_n, settle_n, hist = state["heading_turn"]
        seen_away |= off_n > 0
        seen_settling |= settle_n > 0
        assert np.shape(hist) == (2, int(OrientationParams().turn_settle_s * FS))
        b = PelvisOrientation(FS, r.mount_quat_wxyz).restore_state(state)
        rest = b.update(r.t_s[cut:], r.acc_mps2[cut:], r.gyr_rads[cut:])
        np.testing.assert_array_equal(rest.rotation_deg, whole.rotation_deg[cut:])
        np.testing.assert_array_equal(rest.acc_level_mps2, whole.acc_level_mps2[cut:])
    assert seen_away and seen_settling  # (cuts inside both parts of the turn's handling)


def test_a_state_saved_before_turns_were_tracked_still_restores() -> None:
    r = _u_turn(170.0, 0.8)
    a = PelvisOrientation(FS, r.mount_quat_wxyz)
    a.update(r.t_s[:1000], r.acc_mps2[:1000], r.gyr_rads[:1000])
    state = a.save_state()
    del state["heading_turn"]
    b = PelvisOrientation(FS, r.mount_quat_wxyz).restore_state(state)
    m = b.update(r.t_s[1000:], r.acc_mps2[1000:], r.gyr_rads[1000:])
    assert np.isfinite(m.rotation_deg[-400:]).all()


def test_calibration_hand_over_state_equals_the_estimators_after_a_turn() -> None:
    """``heading_state`` (the calibration's seed) over orientations through a turn is the state of an
    estimator fed the same samples, restarts included."""
    r = _u_turn(110.0, 1.5)
    n = int((TURN_AT_S + 1.0) * FS)  # (settling restart still due)
    po = PelvisOrientation(FS, r.mount_quat_wxyz)
    m = po.update(r.t_s[:n], r.acc_mps2[:n], r.gyr_rads[:n])
    state = po.save_state()
    seed = heading_state(m.quat_world_sensor_wxyz, r.mount_quat_wxyz, FS)
    assert seed["heading_turn"][1] > 0
    assert seed == {"heading_zi": state["heading_zi"], "heading_turn": state["heading_turn"]}


def test_bad_turn_parameters_are_a_clear_error() -> None:
    for p in (OrientationParams(turn_deg=0.0), OrientationParams(turn_deg=180.0), OrientationParams(turn_s=-1.0),
              OrientationParams(turn_settle_s=float("nan"))):
        with pytest.raises(ValueError, match="turn_deg"):
            PelvisOrientation(FS, [1, 0, 0, 0], p)
