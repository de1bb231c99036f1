"""Tier-1 truths of the simulator, each checked by a computation independent of the simulator's own
(scipy Rotation for frames and angular rates, numerical integration of the samples for impulses and drift).
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import cumulative_trapezoid
from scipy.spatial.transform import Rotation

from pelvimon.firmware_protocols.batch import G_MPS2, ImuBatch
from pelvimon.sensors.simulator import (
    SimParams,
    SimParamsError,
    SimTruth,
    Simulation,
    SimulatorSource,
    simulate,
    simulate_session,
)


def _mount(sim: Simulation) -> Rotation:
    w, x, y, z = sim.truth.mount_quat_wxyz
    return Rotation.from_quat([x, y, z, w])


def _world_pelvis(sim: Simulation) -> Rotation:
    tr = sim.truth
    return Rotation.from_euler("ZXY", np.c_[tr.rotation_deg, tr.obliquity_deg, tr.tilt_deg], degrees=True)


def _world_specific_force(sim: Simulation) -> np.ndarray:
    """Specific force rotated back to the world frame with the truth orientation and mount (scipy)."""
    return (_world_pelvis(sim) * _mount(sim)).apply(sim.batch.acc_mps2)


def _integral(t: np.ndarray, y: np.ndarray, a: float, b: float) -> np.ndarray:
    """Trapezoid integral of samples y(t) over [a, b], with linearly interpolated ends."""
    inside = (t > a) & (t < b)
    ya = np.array([np.interp(a, t, y[:, i]) for i in range(y.shape[1])])
    yb = np.array([np.interp(b, t, y[:, i]) for i in range(y.shape[1])])
    tt = np.r_[a, t[inside], b]
    yy = np.vstack([ya, y[inside], yb])
    return np.trapezoid(yy, tt, axis=0)


@pytest.fixture(scope="module")
def run_ideal() -> Simulation:
    return simulate(
        SimParams.ideal(seconds=20.0, rate_hz=1000.0, cpd_left_deg=8.0, cpd_right_deg=4.0, stand_s=3.0)
    )


@pytest.fixture(scope="module")
def walk_ideal() -> Simulation:
    return simulate(SimParams.ideal(seconds=20.0, rate_hz=1000.0, gait="walk", stand_s=3.0))


# --- gravity, mounting ----------------------------------------------------------------------------------


def test_gravity_at_rest_has_magnitude_g_and_no_rotation() -> None:
    sim = simulate(SimParams.ideal(seconds=4.0, stand_s=3.0, mount_euler_deg=(20.0, -70.0, 135.0)))
    stand = sim.batch.t_s < 3.0
    norm = np.linalg.norm(sim.batch.acc_mps2[stand], axis=1)
    assert np.allclose(norm, G_MPS2, atol=1e-9)
    assert np.allclose(sim.batch.gyr_rads[stand], 0.0, atol=1e-12)


def test_mounting_rotation_is_applied_the_right_way_round_for_random_rotations() -> None:
    rng = np.random.default_rng(7)
    ref = simulate(SimParams.ideal(seconds=6.0, stand_s=2.0))
    for _ in range(25):
        euler = tuple(rng.uniform(-180.0, 180.0, 3))
        sim = simulate(SimParams.ideal(seconds=6.0, stand_s=2.0, mount_euler_deg=euler))
        r_mount = Rotation.from_euler("xyz", euler, degrees=True)
        # v_pelvis = R_mount · v_sensor, for the specific force and the angular rate
        assert np.allclose(r_mount.apply(sim.batch.acc_mps2), ref.batch.acc_mps2, atol=1e-9)
        assert np.allclose(r_mount.apply(sim.batch.gyr_rads), ref.batch.gyr_rads, atol=1e-12)
        q = sim.truth.mount_quat_wxyz
        assert Rotation.from_quat([q[1], q[2], q[3], q[0]]).approx_equal(r_mount, atol=1e-12)
        # standing: the sensor sees gravity where the oracle puts it
        tilt = np.radians(10.0)  # the default static anterior tilt
        r_world_sensor = Rotation.from_euler("Y", tilt) * r_mount
        up = r_world_sensor.inv().apply([0.0, 0.0, G_MPS2])
        assert np.allclose(sim.batch.acc_mps2[0], up, atol=1e-9)


# --- angular rate ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("gait", ["run", "walk"])
def test_gyro_is_the_derivative_of_the_truth_orientation(gait: str) -> None:
    sim = simulate(
        SimParams.ideal(
            seconds=8.0,
            rate_hz=1000.0,
            gait=gait,
            stand_s=1.0,
            mount_euler_deg=(35.0, -80.0, 170.0),
            tilt_range_deg=10.0,
            rotation_range_deg=20.0,
        )
    )
    r = _world_pelvis(sim) * _mount(sim)
    t = sim.batch.t_s
    # body-frame rate between consecutive samples: R_i^-1 R_{i+1} = exp([w] dt)
    rel = (r[:-1].inv() * r[1:]).as_rotvec() / np.diff(t)[:, None]
    mid = 0.5 * (sim.batch.gyr_rads[:-1] + sim.batch.gyr_rads[1:])
    peak = np.abs(sim.batch.gyr_rads).max()
    assert peak > 0.5  # the pelvis really moves
    assert np.abs(rel - mid).max() < 2e-3 * peak


# --- forces ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["run", "walk"])
def test_mean_vertical_specific_force_over_each_step_is_g(which: str, run_ideal, walk_ideal) -> None:
    sim = run_ideal if which == "run" else walk_ideal
    f = _world_specific_force(sim)
    t = sim.batch.t_s
    steps = sim.truth.steps
    assert len(steps) > 20
    full = [s for s in steps if s.ramp == 1.0]  # (the start-up ramp builds up the landing velocity)
    for s in full:
        mean = _integral(t, f, s.t_ic_s, s.t_ic_s + s.step_time_s) / s.step_time_s
        assert mean[2] == pytest.approx(G_MPS2, abs=2e-3)  # vertical impulse = body weight x step time
        assert abs(mean[0]) < 2e-3  # braking and propulsion cancel within each step
    for a, b in zip(full[:-1:2], full[1::2], strict=False):
        stride = _integral(t, f, a.t_ic_s, b.t_ic_s + b.step_time_s)
        assert abs(stride[1]) < 2e-3 * (a.step_time_s + b.step_time_s)  # medial pushes cancel per stride


def test_running_flight_is_free_fall_and_contact_carries_the_load(run_ideal) -> None:
    f = _world_specific_force(run_ideal)
    t = run_ideal.batch.t_s
    full = [s for s in run_ideal.truth.steps if s.ramp == 1.0]
    assert full
    for s in full:
        flight = (t > s.t_fc_s + 1e-4) & (t < s.t_ic_s + s.step_time_s - 1e-4)
        assert flight.sum() > 50
        assert np.abs(f[flight]).max() < 1e-9
        contact = (t > s.t_ic_s + 0.3 * s.contact_time_s) & (t < s.t_fc_s - 0.3 * s.contact_time_s)
        assert f[contact, 2].min() > 1.5 * G_MPS2
        assert s.flight_time_s == pytest.approx(s.step_time_s - s.contact_time_s)


def test_walking_has_double_support_and_no_flight(walk_ideal) -> None:
    f = _world_specific_force(walk_ideal)
    t = walk_ideal.batch.t_s
    steps = walk_ideal.truth.steps
    for s in steps:
        assert s.contact_time_s > s.step_time_s
        assert s.flight_time_s == 0.0
        assert s.double_support_s == pytest.approx(s.contact_time_s - s.step_time_s)
    for a, b in zip(steps[:-1], steps[1:], strict=False):
        assert b.t_ic_s < a.t_fc_s  # the next foot lands before this one leaves
    gait = t > steps[0].t_ic_s
    assert f[gait, 2].min() > 0.5 * G_MPS2  # never airborne


@pytest.mark.parametrize("which", ["run", "walk"])
def test_sacrum_does_not_drift_on_the_treadmill(which: str, run_ideal, walk_ideal) -> None:
    sim = run_ideal if which == "run" else walk_ideal
    t = sim.batch.t_s
    a = _world_specific_force(sim) - [0.0, 0.0, G_MPS2]
    v = cumulative_trapezoid(a, t, axis=0, initial=0.0)
    p = cumulative_trapezoid(v, t, axis=0, initial=0.0)
    full = [s for s in sim.truth.steps if s.ramp == 1.0]
    ics = np.array([s.t_ic_s for s in full])
    v_ic = np.stack([np.interp(ics, t, v[:, i]) for i in range(3)], axis=1)
    p_ic = np.stack([np.interp(ics, t, p[:, i]) for i in range(3)], axis=1)
    # velocity and position at initial contact repeat every stride: no drift
    assert np.abs(v_ic[2:] - v_ic[:-2]).max() < 2e-3
    assert np.abs(p_ic[-1] - p_ic[0 if len(full) % 2 else 1]).max() < 5e-3
    # the truth vertical displacement agrees with the double integral of the samples
    assert np.abs(p[:, 2] - sim.truth.vertical_m).max() < 5e-3
    for s in full:
        assert 2.0 < s.vertical_oscillation_cm < 15.0


# --- pelvis angles --------------------------------------------------------------------------------------


@pytest.mark.parametrize("variability", [False, True])
def test_truth_cpd_is_the_swing_side_drop_in_the_obliquity_series(variability: bool) -> None:
    p = SimParams(seconds=30.0, cpd_left_deg=9.0, cpd_right_deg=3.0, variability=variability, seed=5)
    sim = simulate(p)
    tr = sim.truth
    t = tr.t_s
    for s in tr.steps:
        sel = (t >= s.t_ic_s) & (t <= s.t_fc_s)
        o_ic = np.interp(s.t_ic_s, t, tr.obliquity_deg)
        sign = 1.0 if s.side == "L" else -1.0  # left stance: the right side drops = obliquity rises
        drop = sign * (tr.obliquity_deg[sel] - o_ic)
        assert drop.max() == pytest.approx(s.cpd_deg, abs=2e-3)
        if s.ramp == 1.0 and not variability:
            assert s.cpd_deg == pytest.approx(9.0 if s.side == "L" else 3.0, abs=1e-12)
    if variability:
        left = [s.cpd_deg for s in tr.steps_of("L") if s.ramp == 1.0]
        assert 0.1 < np.std(left) < 1.0
        assert np.mean(left) == pytest.approx(9.0, abs=0.3)


def test_tilt_and_rotation_ranges_and_rhythm(run_ideal) -> None:
    tr = run_ideal.truth
    full = [s for s in tr.steps if s.ramp == 1.0]
    for s in full:
        sel = (tr.t_s >= s.t_ic_s) & (tr.t_s <= s.t_ic_s + s.step_time_s)
        assert np.ptp(tr.tilt_deg[sel]) == pytest.approx(s.tilt_range_deg, abs=1e-3)
        assert s.tilt_range_deg == pytest.approx(6.0)
        assert np.ptp(tr.rotation_deg[sel]) == pytest.approx(s.rotation_range_deg, abs=1e-3)
    # tilt: one cycle per step about the static anterior offset; rotation: one cycle per stride
    sel = tr.t_s > full[0].t_ic_s
    assert np.mean(tr.tilt_deg[sel]) == pytest.approx(10.0, abs=0.5)
    step_f = 1.0 / full[0].step_time_s
    for series, f_expected in ((tr.tilt_deg, step_f), (tr.rotation_deg, step_f / 2.0)):
        x = series[sel] - series[sel].mean()
        spec = np.abs(np.fft.rfft(x))
        freqs = np.fft.rfftfreq(len(x), np.median(np.diff(tr.t_s)))
        assert freqs[np.argmax(spec)] == pytest.approx(f_expected, rel=0.05)
    # left initial contact: the left side is forward, the pelvis turned to the right
    for s in full:
        rot_ic = np.interp(s.t_ic_s, tr.t_s, tr.rotation_deg)
        assert rot_ic == pytest.approx(-6.0 if s.side == "L" else 6.0, abs=1e-6)


# --- timing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("gait", "cadence"), [("run", 150.0), ("run", 185.0), ("walk", 100.0)])
def test_cadence_and_asymmetry_in_the_truth_match_the_knobs(gait: str, cadence: float) -> None:
    sim = simulate(SimParams(seconds=40.0, gait=gait, cadence_spm=cadence, step_time_asymmetry_pct=6.0))
    steps = [s for s in sim.truth.steps if s.ramp == 1.0]
    cad = 60.0 / np.mean([s.step_time_s for s in steps])
    assert cad == pytest.approx(cadence, rel=0.01)
    t_l = np.mean([s.step_time_s for s in steps if s.side == "L"])
    t_r = np.mean([s.step_time_s for s in steps if s.side == "R"])
    assert 100 * (t_l - t_r) / (0.5 * (t_l + t_r)) == pytest.approx(6.0, abs=1.0)
    for a, b in zip(sim.truth.steps[:-1], sim.truth.steps[1:], strict=False):
        assert a.side != b.side
        assert b.t_ic_s == pytest.approx(a.t_ic_s + a.step_time_s, abs=1e-9)
        assert a.t_fc_s == pytest.approx(a.t_ic_s + a.contact_time_s, abs=1e-12)
    assert sim.truth.steps[0].side == "L"
    assert sim.truth.steps[0].t_ic_s > sim.params.stand_s
    assert sim.truth.steps[-1].t_ic_s + sim.truth.steps[-1].step_time_s <= 40.0


def test_a_limping_walk_unloads_the_trailing_foot_while_the_other_lands() -> None:
    """With a step-time asymmetry each foot's contact is its own step time plus the same double support, so
    the trailing foot's push-off meets the other foot's heel strike on both sides and every heel strike
    loads the pelvis (with one contact time for both feet the longer step's foot had unloaded before the
    other landed: at 15 % the specific force fell to 0.75 g there and rose to only 1.1 g after it)."""
    sim = simulate(SimParams.ideal(seconds=30.0, gait="walk", step_time_asymmetry_pct=15.0))
    steps = [s for s in sim.truth.steps if s.ramp == 1.0]
    step_s = 60.0 / sim.params.cadence
    for side in "LR":
        support = [s.double_support_s for s in steps if s.side == side]
        assert np.allclose(support, 0.2 * step_s, atol=1e-9), side
    f_g = np.linalg.norm(sim.batch.acc_mps2, axis=1) / G_MPS2
    t = sim.batch.t_s
    for side in "LR":
        peaks = [f_g[(t >= s.t_ic_s) & (t < s.t_ic_s + 0.1)].max() for s in steps if s.side == side]
        assert min(peaks) > 1.25, side


def test_first_side_and_contact_time_knobs() -> None:
    sim = simulate(SimParams.ideal(seconds=10.0, first_side="R", contact_time_s=0.2, cadence_spm=180))
    assert sim.truth.steps[0].side == "R"
    assert all(s.contact_time_s == pytest.approx(0.2) for s in sim.truth.steps)


# --- sensor errors --------------------------------------------------------------------------------------


def test_errors_off_is_exact_and_errors_on_are_realistic() -> None:
    p = SimParams(seconds=30.0, stand_s=20.0, seed=11)
    noisy = simulate(p)
    clean = simulate(SimParams(**{**p.__dict__, "errors": False}))
    stand = noisy.batch.t_s < 19.0
    d_acc = noisy.batch.acc_mps2[stand] - clean.batch.acc_mps2[stand]
    d_gyr = noisy.batch.gyr_rads[stand] - clean.batch.gyr_rads[stand]
    # white noise at the configured level (the bias is constant: look at sample-to-sample differences)
    assert np.std(np.diff(d_acc, axis=0), axis=0) / np.sqrt(2) == pytest.approx([0.03] * 3, rel=0.1)
    # gyro bias: the truth carries it, about the configured size
    bias = noisy.truth.gyr_bias_rads
    assert bias is not None
    assert np.abs(d_gyr.mean(axis=0) - bias[stand].mean(axis=0)).max() < 5e-4
    assert 0.02 < np.degrees(np.abs(bias[0])).max() < 3.0
    # jitter: true times scatter around the nominal grid but stay increasing
    dt = np.diff(noisy.batch.t_s)
    assert dt.min() > 0 and np.std(dt) > 1e-5
    assert np.array_equal(noisy.truth.t_s, noisy.batch.t_s)
    assert clean.truth.gyr_bias_rads is None
    assert np.allclose(np.diff(clean.batch.t_s), 1.0 / p.rate_hz, rtol=0, atol=1e-12)


def test_saturation_clips_at_the_range() -> None:
    sim = simulate(SimParams(seconds=12.0, acc_range_g=1.5, gyr_range_dps=20.0, seed=2))
    assert np.abs(sim.batch.acc_mps2).max() == pytest.approx(1.5 * G_MPS2)
    assert np.abs(sim.batch.gyr_rads).max() == pytest.approx(np.radians(20.0))


def test_seeds_reproduce_and_differ() -> None:
    a = simulate(SimParams(seconds=10.0, seed=3))
    b = simulate(SimParams(seconds=10.0, seed=3))
    c = simulate(SimParams(seconds=10.0, seed=4))
    assert np.array_equal(a.batch.acc_mps2, b.batch.acc_mps2)
    assert np.array_equal(a.batch.gyr_rads, b.batch.gyr_rads)
    assert np.array_equal(a.batch.t_s, b.batch.t_s)
    assert [s.cpd_deg for s in a.truth.steps] == [s.cpd_deg for s in b.truth.steps]
    assert not np.array_equal(a.batch.acc_mps2, c.batch.acc_mps2)
    assert [s.step_time_s for s in a.truth.steps] != [s.step_time_s for s in c.truth.steps]


# --- parameters, truth file, streaming ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"seconds": -1.0}, "seconds"),
        ({"cadence_spm": 250.0}, "cadence_spm"),
        ({"cadence_spm": 50.0}, "cadence_spm"),
        ({"cpd_left_deg": -2.0}, "cpd_left_deg"),
        ({"rate_hz": float("nan")}, "rate_hz"),
        ({"contact_time_s": 0.5}, "flight"),
        ({"gait": "walk", "contact_time_s": 0.3}, r"too little double support .* \(step time 0\.545 s\): walking "
                                                  r"needs 0\.573-0\.873 s \(1\.05-1\.6 x the step time"),
        ({"gait": "walk", "contact_time_s": 1.5}, "too little single support"),
        ({"gait": "hop"}, "gait"),
        ({"mount_euler_deg": (0.0, 0.0)}, "three"),
        ({"seed": -1}, "seed"),
        ({"seconds": 12.0, "end_stand_s": 5.0}, "lengthen seconds"),
    ],
)
def test_bad_parameters_raise_one_clear_error(kw: dict, needle: str) -> None:
    with pytest.raises(SimParamsError, match=needle) as info:
        SimParams(**kw)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_truth_json_round_trip(tmp_path) -> None:
    sim = simulate(SimParams(seconds=10.0, mount_euler_deg=(10.0, 20.0, 30.0)))
    d = json.loads(json.dumps(sim.truth.to_json()))
    assert set(d) >= {"steps", "samples", "mount_quat_wxyz", "params"}
    assert set(d["steps"][0]) >= {"side", "t_ic_s", "t_fc_s", "step_time_s", "contact_time_s", "cpd_deg"}
    back = SimTruth.from_json(d)
    assert back.steps == sim.truth.steps
    for name in ("t_s", "tilt_deg", "obliquity_deg", "rotation_deg", "vertical_m", "mount_quat_wxyz"):
        assert np.array_equal(getattr(back, name), getattr(sim.truth, name))
    assert SimParams.from_dict(d["params"]) == sim.params


def test_simulator_source_streams_the_simulation_in_small_chunks() -> None:
    sim = simulate(SimParams(seconds=5.0))

    async def collect() -> list:
        out = []
        async with SimulatorSource(sim, pace=0, chunk=12) as src:
            assert src.info.protocol == "simulator"
            assert src.info.rate_hz == 200.0
            async for ev in src:
                out.append(ev)
        return out

    events = asyncio.run(collect())
    batches = [e for e in events if isinstance(e, ImuBatch)]
    assert max(len(b) for b in batches) == 12
    assert all(b.time_base == "session" for b in batches)
    whole = ImuBatch.concat(batches)
    assert np.array_equal(whole.t_s, sim.batch.t_s)
    assert np.array_equal(whole.acc_mps2, sim.batch.acc_mps2)
    assert np.array_equal(whole.gyr_rads, sim.batch.gyr_rads)


def test_simulator_source_paces_in_real_time() -> None:
    src = SimulatorSource(SimParams(seconds=0.3), pace=1.0)

    async def run() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        async with src:
            async for _ in src:
                pass
        return loop.time() - t0

    assert 0.25 < asyncio.run(run()) < 1.5


@settings(max_examples=15, deadline=None)
@given(
    gait=st.sampled_from(["run", "walk"]),
    cadence=st.floats(60.0, 240.0),
    cpd=st.tuples(st.floats(0.0, 25.0), st.floats(0.0, 25.0)),
    asym=st.floats(-10.0, 10.0),
    euler=st.tuples(*[st.floats(-180.0, 180.0)] * 3),
    errors=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_any_valid_parameters_give_consistent_truth(gait, cadence, cpd, asym, euler, errors, seed) -> None:
    try:
        p = SimParams(
            seconds=12.0, stand_s=1.0, gait=gait, cadence_spm=cadence, cpd_left_deg=cpd[0], cpd_right_deg=cpd[1],
            step_time_asymmetry_pct=asym, mount_euler_deg=euler, errors=errors, seed=seed,
        )  # fmt: skip
    except SimParamsError:
        return  # e.g. a walking cadence whose default contact leaves no room for the asymmetry
    sim = simulate(p)
    b, tr = sim.batch, sim.truth
    assert np.isfinite(b.acc_mps2).all() and np.isfinite(b.gyr_rads).all()
    assert (np.diff(b.t_s) > 0).all()
    assert tr.steps
    for s in tr.steps:
        sel = (tr.t_s >= s.t_ic_s) & (tr.t_s <= s.t_fc_s)
        sign = 1.0 if s.side == "L" else -1.0
        drop = sign * (tr.obliquity_deg[sel] - np.interp(s.t_ic_s, tr.t_s, tr.obliquity_deg))
        assert drop.max() == pytest.approx(s.cpd_deg, abs=0.05)
        assert (s.flight_time_s > 0) == (gait == "run")


# --- standing at the end, sessions of several bouts ------------------------------------------------------


@pytest.mark.parametrize("gait", ["run", "walk"])
def test_gait_ramps_down_to_standing_at_the_end(gait: str) -> None:
    sim = simulate(SimParams.ideal(seconds=30.0, gait=gait, end_stand_s=4.0, seed=2))
    t, acc, gyr = sim.batch.t_s, sim.batch.acc_mps2, sim.batch.gyr_rads
    still = t >= 26.0
    # standing: the specific force is gravity in the static tilt, no rotation, the sacrum back at its height
    f_world = _world_specific_force(sim)[still]
    np.testing.assert_allclose(f_world, np.tile([0.0, 0.0, G_MPS2], (f_world.shape[0], 1)), atol=1e-9)
    assert np.abs(gyr[still]).max() < 1e-12
    np.testing.assert_allclose(sim.truth.tilt_deg[still], 10.0, atol=1e-12)
    assert np.abs(sim.truth.vertical_m[still]).max() < 1e-9
    steps = sim.truth.steps
    assert steps[-1].t_ic_s + steps[-1].step_time_s <= 26.0 + 1e-9
    ramps = [s.ramp for s in steps]
    assert ramps[-1] < 0.1 and max(ramps) == 1.0 and all(r > 0 for r in ramps)
    assert np.abs(acc[(t > 15.0) & (t < 20.0)] - acc[still].mean(axis=0)).max() > 2.0  # there was gait before


def test_a_session_of_bouts_is_continuous_and_its_truth_in_session_time() -> None:
    bouts = [
        SimParams.ideal(seconds=20.0, gait="walk", end_stand_s=3.0, seed=1),
        SimParams.ideal(seconds=25.0, gait="run", stand_s=3.0, cpd_left_deg=9.0, seed=2),
    ]
    sim = simulate_session(bouts)
    alone = [simulate(b) for b in bouts]
    n0 = len(alone[0].batch)
    assert len(sim.batch) == n0 + len(alone[1].batch)
    np.testing.assert_array_equal(sim.batch.acc_mps2[:n0], alone[0].batch.acc_mps2)
    np.testing.assert_allclose(sim.batch.acc_mps2[n0:], alone[1].batch.acc_mps2, atol=1e-9)
    # no step in the readings at the junction: both sides stand still in the same posture
    d_acc = np.abs(np.diff(sim.batch.acc_mps2[n0 - 5 : n0 + 5], axis=0)).max()
    assert d_acc < 1e-9
    assert np.diff(sim.batch.t_s).min() > 0
    walk_steps, run_steps = alone[0].truth.steps, alone[1].truth.steps
    assert len(sim.truth.steps) == len(walk_steps) + len(run_steps)
    assert sim.truth.steps[len(walk_steps)].t_ic_s == pytest.approx(run_steps[0].t_ic_s + 20.0)
    assert sim.truth.steps[-1].cpd_deg == pytest.approx(run_steps[-1].cpd_deg)
    assert [b["gait"] for b in sim.truth.params["bouts"]] == ["walk", "run"]


@pytest.mark.parametrize(
    ("bouts", "needle"),
    [
        ([], "at least one bout"),
        ([{"end_stand_s": 3.0}, {"stand_s": 3.0, "mount_euler_deg": (0.0, 0.0, 90.0)}], "mount_euler_deg"),
        ([{"seconds": 20.0}, {"stand_s": 3.0}], "end standing"),
        ([{"end_stand_s": 3.0}, {"stand_s": 0.0}], "start standing"),
    ],
)
def test_a_session_of_bouts_refuses_discontinuities(bouts: list, needle: str) -> None:
    with pytest.raises(SimParamsError, match=needle):
        simulate_session([SimParams(**{"seconds": 20.0, **kw}) for kw in bouts])
