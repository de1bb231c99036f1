"""Real overground walking (voisard_l5_walking, AGPL data read in place, never copied): initial contacts
and stance sides from the L5 sensor against the foot-sensor reference."""

import importlib.util
import sys

import numpy as np
import pytest


@pytest.fixture(scope="module")
def validate(repo_dir, shared_dir):
    spec = importlib.util.spec_from_file_location("pelvimon_validate", repo_dir / "benchmarks" / "validate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    mod.WALK_DIR = shared_dir / "datasets" / "voisard_l5_walking" / "GaitData"
    return mod


def test_walking_ics_and_laterality(validate):
    names = validate.walking_names(validate.WALK_DIR)
    assert len(names) == 110
    subset = names[::8]
    sc = [validate.score_walking_trial(nm, "offline") for nm in subset]
    tp = sum(s.tp for s in sc)
    f1 = 2 * tp / sum(s.n_det + s.n_ref for s in sc)
    ic = np.concatenate([s.ic_err_s for s in sc])
    lat = np.concatenate([s.side_ok for s in sc])
    # the target is 0.90: this subset measures 0.934 and all 110 trials 0.943 (docs/dsp_gait.md; 0.902 and
    # 0.901 when the samples were timed by their row and not by the packet counter, with 1-10 % of the
    # packets missing); the errors left are the last steps before stopping, the U-turns and gait initiation
    assert f1 >= 0.925
    assert np.median(np.abs(ic)) <= 0.020
    # laterality: this subset measures 0.984, all 110 trials 0.966 (0.944 and 0.930 while the running direction
    # took seconds to follow the U-turn, so that the level frame's left was the walker's right after it; 0.955
    # and 0.932 before the walking final contact moved to the end of the unloading dip)
    assert lat.mean() >= 0.97


def test_walking_streaming_laterality(validate):
    """Streaming calibration: the steps before the mount is known are sided about the forward direction of
    the first strides (braking/propulsion moment), so short walks are sided from their first steps."""
    names = validate.walking_names(validate.WALK_DIR)
    sc = [validate.score_walking_trial(nm, "stream") for nm in names[::8]]
    assert all(s.calibrated for s in sc)
    lat = np.concatenate([s.side_ok for s in sc])
    assert lat.size > 300
    # the target is 0.90: this subset measures 0.958, all 110 trials 0.952 (docs/dsp_gait.md; 0.925 and 0.930
    # while the walks whose sensor bounced at heel strike counted as runs)
    assert lat.mean() >= 0.95
    # rotation ranges (steps with pelvis angles): the running direction follows the U-turn, so the steps in
    # the 2 s after it measure about what straight walking does (this subset: median 4.5 deg, 23 of 29 steps,
    # largest 17 deg; straight 5.7 deg, 143 of 149 steps); with the low-pass alone the median was 43.6 deg
    straight, _, after = (np.concatenate([s.rotation_deg[k] for s in sc]) for k in range(3))
    assert np.isfinite(straight).mean() >= 0.9 and np.nanmedian(straight) < 10.0
    assert np.isfinite(after).sum() >= 0.6 * after.size and np.nanmedian(after) < 10.0 and np.nanmax(after) < 30.0


def test_walking_steps_and_sides_do_not_depend_on_how_the_sensor_was_clipped_on(validate):
    """The real walks with the sensor's samples turned as if clipped on another way: the streaming
    calibration finds the mounting, and every IC and side comes out as with the mounting recorded."""
    from scipy.spatial.transform import Rotation

    names = validate.walking_names(validate.WALK_DIR)[5::37]
    for euler in ((180.0, 0.0, 0.0), (-131.0, 47.0, 162.0)):
        m = Rotation.from_euler("xyz", euler, degrees=True).as_matrix()
        for nm in names:
            base = validate.score_walking_trial(nm)
            turned = validate.score_walking_trial(nm, remount=m)
            assert base.tp > 20 and turned.calibrated
            assert (turned.tp, turned.n_det, turned.n_ref) == (base.tp, base.n_det, base.n_ref)
            np.testing.assert_array_equal(turned.side_ok, base.side_ok)
            np.testing.assert_allclose(turned.ic_err_s, base.ic_err_s, atol=1e-3)


def test_walks_with_a_bouncing_sensor_are_walks(validate):
    """In these four walks the sensor moved on the body: its vertical force dips under the 0.4 g flight
    level for 10-30 ms at heel strike. At their 100-125 steps/min they are walks, so the forward direction
    before the mount calibration (whose sign depends on running or walking) points forward and the steps
    are sided right from the start (they were 0.47 right when these steps counted as running)."""
    sc = [validate.score_walking_trial(nm, "stream") for nm in ("11-1", "11-2", "17-3", "17-4")]
    assert all(s.gait == "walking" for s in sc)
    lat = np.concatenate([s.side_ok for s in sc])
    assert lat.size > 100
    assert lat.mean() >= 0.9


def test_walking_heel_strikes_whose_loading_rebounds_are_timed_on_their_own_rise(validate):
    """In these walks a heel strike's loading often rebounds (in four of subject 12's six walks, most
    steps): ``a_v`` falls back under 1 g right after the peak and rises again, more steeply. Timed on that
    second rise, 45-63 % of their ICs were 75 ms or more late (median errors 30-107 ms, contact-time RMSE
    78-102 ms); timed on the rise that crossed the trigger level, 0-3 % (docs/dsp_gait.md: in all 110
    walks 17.5 % -> 4.3 %). The share and the RMSE are over the three walks together: one IC of a walk's 32
    is 3 %, and some late ICs have other causes (in 12-3 one heel strike's rise stopped 0.005 g under the
    trigger, and the next rise was timed, 120 ms late)."""
    late, contact = [], []
    for name in ("12-1", "12-3", "5-2"):
        s = validate.score_walking_trial(name)
        assert s.tp >= 30
        assert np.median(np.abs(s.ic_err_s)) <= 0.015, name
        late += (s.ic_err_s > 0.075).tolist()
        contact += s.contact_err_s.tolist()
    assert np.mean(late) <= 0.05
    assert np.sqrt(np.mean(np.square(contact))) <= 0.05


def _latencies(validate, name: str, settle_s: float, **events: float) -> tuple[list[float], int]:
    """Each step's latency of a real walk fed sample by sample (``validate.walking_latencies``), and the rises
    the missed-step recovery took; ``events``: other event parameters."""
    from pelvimon.dsp.events import EventParams
    from pelvimon.dsp.pipeline import PipelineParams

    rows, recovered = validate.walking_latencies(
        name, PipelineParams(events=EventParams(recover_settle_s=settle_s, **events)), validate.WALK_DIR)
    return [lat for _, lat in rows], recovered


def test_latency_of_real_walking_steps_closed_by_a_soft_heel_strike(validate):
    """A real walk's heel strikes are often too soft to cross the trigger level (the missed-step recovery
    took one IC in six in the 110 walks). Such a rise is taken once ``recover_settle_s`` (0.15 s) after it
    shows no rise crossing the trigger level (and its IC is not before its window either), except while
    running, so also at a bout's first step: in steady gait from one step period less ``recover_early_s``
    after the last IC on, otherwise (turns, irregular steps, a bout's first steps) from 0.6 periods on.
    These seven walks' steps are then all out within 150 ms. Waiting for the recovery's deadline, 13 of the
    first three walks' 94 steps took 155-395 ms (7 of 88 took 165-365 ms once ``a_v`` read the sensor's
    own 1 g, ``EventParams.level_hz``); when the settled rise was taken only from one period less
    0.1 s on, only after the early window and only once the gait was "walking", the last four had steps of
    245-515 ms (13-1 at 31.0 s; 14-2's first step, 5.9 s, whose gait was not known yet). All 110 walks:
    92.7 % of the steps within 150 ms at the deadline, 98.5 % then, 99.6 % with this (99.8 % with the
    sharp rise of the next test)
    (benchmarks/latency_walking.py)."""
    walks = ("15-6", "6-4", "2-4")
    for name in walks + ("13-1", "10-5", "18-2", "14-2"):
        lat, recovered = _latencies(validate, name, 0.15)
        assert len(lat) > 25 and recovered >= 2, name
        assert 0.0 <= min(lat) and max(lat) <= 0.150, name
    late = [x for name in walks for x in _latencies(validate, name, 0.0)[0] if x > 0.150]
    assert len(late) >= 5
    from pelvimon.dsp.events import EventParams

    with pytest.raises(ValueError, match="recover_settle_s"):
        EventParams(recover_settle_s=1.0).validate(100.0)


def test_latency_of_real_walking_steps_closed_by_a_sharp_soft_rise_a_little_early(validate):
    """In steady gait the settled rise is searched from one step period less 0.1 s after the last IC. When a
    soft heel strike comes a little earlier than that, its rise can cross the recovery level inside that
    window with its foot (the IC) just before it (walk 8-2 at 10.8 s). Such a sharp rise (up from its foot
    within ``sharp_rise_s``, 0.1 s; in the 110 walks 34-66 ms) is taken down to 0.6 periods; a slow one,
    like the rise out of the single-support trough ahead of a late heel strike (120-200 ms in simulated
    irregular walks), still waits for the deadline. Before, these walks' steps waited for the 1.4-period
    deadline: 245-385 ms (six of the twelve steps of the 110 walks over 150 ms). Since ``a_v`` reads the
    sensor's own 1 g (``EventParams.level_hz``), walks 1-3 and 19-4 have no such step, and 8-2's step at
    10.29 s is the one whose latency the rule brings from 325 ms to within 150 ms."""
    for name in ("1-3", "8-2", "19-4"):
        assert max(_latencies(validate, name, 0.15)[0]) <= 0.150, name
    assert max(_latencies(validate, "8-2", 0.15, sharp_rise_s=0.0)[0]) > 0.240
    from pelvimon.dsp.events import EventParams

    with pytest.raises(ValueError, match="sharp_rise_s"):
        EventParams(sharp_rise_s=1.0).validate(100.0)


def test_latency_of_real_walking_steps_whose_next_loading_climb_has_a_bump(validate):
    """A small bump on the climb to the next step's loading peak (8-1 at 8.88 s: 1.155 g, exceeded 30 ms
    later on the way to 1.24 g) was taken for that peak: the final contact came out on the climb, 50-70 ms
    after a soft next IC whose recovery is decided 0.15 s after its rise, and those steps took 155-175 ms
    counted from it. The peak is now the first high not outdone within 50 ms (``LOAD_PEAK_HOLD_S``), the
    final contacts are in the rise after the unloading dip, and these walks' steps are all out within
    150 ms."""
    for name in ("8-1", "2-3", "18-5", "2-1"):
        lat, _ = _latencies(validate, name, 0.15)
        assert len(lat) > 20 and max(lat) <= 0.150, name


def test_the_mount_recheck_stays_quiet_through_real_u_turns(validate):
    """Walk 2-2, the re-check on every sample: with the blocks of the U-turn in it, its angle reached 20.4°
    after the turn and flagged a sensor that had not moved (the mean orientation of a turning block maps its
    moment to a wrong forward direction); without them it stays under 12°, as in every one of the 110 walks
    (docs/dsp_gait.md). On the means of two samples (the default at 100 Hz) it is quiet as well."""
    from pelvimon.dsp.calibration import CalibrationParams
    from pelvimon.dsp.pipeline import GaitPipeline, MountMoved, PipelineParams

    acc, gyr, _, counter = validate.load_walking("2-2")
    for turn_deg, rate, moved in ((45.0, 0.0, False), (360.0, 0.0, True), (45.0, 50.0, False)):  # (360: no block is left out)
        # (the frame kept after a move: its re-check's angle is read on)
        params = PipelineParams(calibration=CalibrationParams(recheck_turn_deg=turn_deg), recheck_rate_hz=rate,
                                recalibrate=False)
        pipe = GaitPipeline(100.0, params)
        events, top = [], 0.0
        for b in validate.walking_batches(acc, gyr, counter, 100.0, 100):
            events += pipe.update(b).events
            angle = pipe.calibration_.forward_recent_deg_
            top = max(top, angle) if np.isfinite(angle) else top
        assert any(isinstance(e, MountMoved) for e in events) is moved
        assert (top > 20.0) if moved else (top < 12.0)


def test_the_short_recheck_window_stays_quiet_in_the_walk_where_it_rises_most(validate):
    """Walk 5-1: of the 110 walks, its three consecutive gait blocks stand furthest from the calibrated forward
    direction, each and together (12.4°); the short window's 60° limit leaves it unflagged, as would a third
    of it, and a limit of 10° flags it (the check does read these blocks)."""
    from pelvimon.dsp.calibration import CalibrationParams
    from pelvimon.dsp.pipeline import GaitPipeline, MountMoved, PipelineParams

    acc, gyr, _, counter = validate.load_walking("5-1")
    for fast_deg, moved in ((60.0, False), (20.0, False), (10.0, True)):
        pipe = GaitPipeline(100.0, PipelineParams(calibration=CalibrationParams(recheck_fast_deg=fast_deg)))
        events = []
        for b in validate.walking_batches(acc, gyr, counter, 100.0, 100):
            events += pipe.update(b).events
        assert any(isinstance(e, MountMoved) for e in events) is moved, fast_deg


def test_a_block_at_the_flight_level_is_left_out_of_the_recheck(validate):
    """Walk 17-4 (a bouncing sensor): the force floor of a block after the calibration is 0.40 g, at the
    flight level that tells running from walking. Taken for running, its moment pointed backwards and, with
    the few blocks before it, the re-check's direction swung by 106° (a moved sensor that was not); blocks
    that close to the level are left out of the re-check (``recheck_gait_margin_g``)."""
    from pelvimon.dsp.calibration import CalibrationParams
    from pelvimon.dsp.pipeline import GaitPipeline, MountMoved, PipelineParams

    acc, gyr, _, counter = validate.load_walking("17-4")
    for margin, moved in ((0.05, False), (0.0, True)):
        pipe = GaitPipeline(100.0, PipelineParams(calibration=CalibrationParams(recheck_gait_margin_g=margin)))
        events = []
        for b in validate.walking_batches(acc, gyr, counter, 100.0, 100):
            events += pipe.update(b).events
        assert any(isinstance(e, MountMoved) for e in events) is moved, margin
