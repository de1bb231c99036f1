"""Laterality: the forward filter over alternating steps recovers the sides from weak, noisy evidence."""

import numpy as np

from pelvimon.dsp.laterality import LateralityTracker


def _sides(n, first="L"):
    other = {"L": "R", "R": "L"}
    out = [first]
    for _ in range(n - 1):
        out.append(other[out[-1]])
    return out


def test_alternation_beats_single_step_evidence():
    rng = np.random.default_rng(1)
    truth = _sides(400)
    sign = np.array([1.0 if s == "L" else -1.0 for s in truth])
    # single-step evidence right only ~75 % of the time
    feat = sign * 0.7 + rng.normal(0, 1.0, sign.size)
    single = np.mean(np.sign(feat) == sign)
    assert single < 0.85
    tr = LateralityTracker()
    got = []
    for f in feat:
        tr.update(np.array([f, np.nan]))
        got.append(tr.side_)
    acc = np.mean([g == t for g, t in zip(got[20:], truth[20:], strict=False)])
    assert acc >= 0.99


def test_reset_restarts_at_even_odds_and_confidence_grows():
    tr = LateralityTracker()
    tr.update(np.array([0.5, 0.5]))
    c1 = tr.confidence_
    for k in range(10):
        tr.update(np.array([(-1) ** (k + 1) * 0.5, (-1) ** (k + 1) * 0.5]))
    assert tr.confidence_ > c1
    tr.reset()
    tr.update(np.array([np.nan, np.nan]))
    assert tr.confidence_ == 0.5


def test_missing_evidence_keeps_alternating():
    tr = LateralityTracker()
    for k in range(10):
        tr.update(np.array([1.0 if k % 2 == 0 else -1.0]))
    last = tr.side_
    tr.update(np.array([np.nan]))
    assert tr.side_ != last


def _forward_after_steps(gait: str, mount: tuple[float, float, float], n_steps: int, seed: int) -> float:
    """Angle (deg) between the StepForward estimate after ``n_steps`` full steps and the true forward."""
    from pelvimon.dsp.events import GaitEventDetector
    from pelvimon.dsp.laterality import ForwardMoment, StepForward
    from pelvimon.sensors.simulator import SimParams, mount_rotation, simulate

    sim = simulate(SimParams(seconds=12, gait=gait, mount_euler_deg=mount, seed=seed))
    b = sim.batch
    fs = sim.params.rate_hz
    _, up = GaitEventDetector(fs).vertical_up(b.acc_mps2)
    mom = ForwardMoment(fs).update(b.acc_mps2, up)
    ics = [s for s in sim.truth.steps if s.ramp >= 1.0]
    sf = StepForward()
    for a, c in zip(ics[:n_steps], ics[1 : n_steps + 1], strict=True):
        i0, i1 = int(round(a.t_ic_s * fs)), int(round(c.t_ic_s * fs))
        sf.add(mom[i0:i1].sum(axis=0), running=gait == "run")
    k = int(round(ics[n_steps].t_ic_s * fs))
    f = sf.forward(up[k])
    assert f is not None
    truth = mount_rotation(mount).inv().apply([1.0, 0.0, 0.0])  # pelvis x in the sensor frame
    truth -= up[k] * (up[k] @ truth)
    return float(np.degrees(np.arccos(np.clip(f @ truth / np.linalg.norm(truth), -1, 1))))


def test_forward_from_the_first_strides_any_mounting():
    """Braking/propulsion moment of the first strides: forward within 10 deg after two strides, walking and
    running, for random mountings (laterality before the mount calibration relies on this)."""
    rng = np.random.default_rng(5)
    for k in range(6):
        mount = tuple(float(v) for v in rng.uniform(-180, 180, 3))
        gait = "walk" if k % 2 else "run"
        assert _forward_after_steps(gait, mount, 4, seed=30 + k) < 10.0


def test_step_forward_needs_two_steps_and_skips_nan():
    from pelvimon.dsp.laterality import StepForward

    sf = StepForward()
    up = np.array([0.0, 0.0, 1.0])
    sf.add(np.array([1.0, 0.2, 3.0]), running=False)
    assert sf.forward(up) is None
    sf.add(np.array([np.nan, 0.0, 0.0]), running=False)
    assert sf.n_steps_ == 1
    sf.add(np.array([1.0, -0.2, 3.0]), running=False)
    np.testing.assert_allclose(sf.forward(up), [1.0, 0.0, 0.0])
    sf.add(np.array([5.0, 0.0, 0.0]), running=True)  # running: the moment points backwards
    np.testing.assert_allclose(sf.forward(up), [-1.0, 0.0, 0.0])


def test_unreliable_feature_is_discounted_by_its_own_alternation():
    """A feature that names the side only 60 % of the time alternates less often than a good one; its
    weight falls (estimated without any reference), so adding it does not spoil the good feature."""
    rng = np.random.default_rng(3)
    truth = _sides(600)
    sign = np.array([1.0 if s == "L" else -1.0 for s in truth])
    good = np.where(rng.random(sign.size) < 0.85, sign, -sign)  # right 85 % of the time, unit magnitude
    bad = np.where(rng.random(sign.size) < 0.6, sign, -sign) * 3.0  # right 60 %, three times as large
    tr = LateralityTracker()
    for g, b in zip(good, bad, strict=True):
        tr.update(np.array([g, b]))
    q_good, q_bad = tr.reliability_
    assert abs(q_good - 0.85) < 0.06
    assert q_bad < 0.7
    # the sides found with both features are as good as with the good one alone
    got_both, got_good = [], []
    a, b2 = LateralityTracker(), LateralityTracker()
    for g, b in zip(good, bad, strict=True):
        a.update(np.array([g, b]))
        b2.update(np.array([g, np.nan]))
        got_both.append(a.side_)
        got_good.append(b2.side_)
    acc_both = np.mean([x == t for x, t in zip(got_both, truth, strict=True)])
    acc_good = np.mean([x == t for x, t in zip(got_good, truth, strict=True)])
    assert acc_both >= acc_good - 0.01


def test_missed_step_keeps_the_side():
    """After a step of two periods (an initial contact missed) the next step is on the same side: the
    tracker follows the evidence at once instead of a run of wrong sides."""
    tr = LateralityTracker()
    for k in range(20):
        tr.update(np.array([1.0 if k % 2 == 0 else -1.0, np.nan]))
    assert tr.side_ == "R"
    # the left step was missed: the next detected step is right again, with ordinary evidence
    tr.update(np.array([-1.0, np.nan]), missed=True)
    assert tr.side_ == "R"
    tr2 = LateralityTracker()
    for k in range(20):
        tr2.update(np.array([1.0 if k % 2 == 0 else -1.0, np.nan]))
    tr2.update(np.array([-1.0, np.nan]))
    assert tr2.side_ == "L"  # strict alternation overrides one step's evidence


def test_first_observation_of_a_feature_is_not_a_typical_step():
    """The first value of a feature sets its running magnitude, so it cannot say how strong it is: however
    weak or strong, it alone does not make a step confident enough for the summaries (0.8)."""
    for f in (1e-3, 1.0, 50.0):
        tr = LateralityTracker()
        tr.update(np.array([f, np.nan]))
        assert tr.side_ == "L"
        assert 0.5 < tr.confidence_ < 0.8
    # consistent, alternating evidence: confident from the third step on
    tr = LateralityTracker()
    conf = []
    for k in range(4):
        tr.update(np.array([(-1.0) ** k, np.nan]))
        conf.append(tr.confidence_)
    assert tr.side_ == "R" and conf[1] < 0.8 < conf[2] < conf[3]


def test_forward_moment_ignores_a_growing_bounce():
    """Gait starting: the bounce grows. A horizontal force partly in phase with the vertical one then adds
    ``a_h a_v d(amplitude)`` to the plain sum of ``a_h da_v``, and turns it; the swept area does not."""
    from pelvimon.dsp.laterality import ForwardMoment

    fs, w = 200.0, 2 * np.pi * 2.0
    t = np.arange(int(4.0 * fs)) / fs
    r = np.clip(t / 2.0, 0.0, 1.0)  # amplitude ramp over 2 s (4 cycles), then 2 s steady
    h = r * (1.0 * np.sin(w * t) + 30.0 * np.cos(w * t))  # the quadrature part sets the steady sum's sign
    v = 9.81 + 3.0 * r * np.cos(w * t)
    acc = np.column_stack([h, np.zeros_like(t), v])
    up = np.tile([0.0, 0.0, 1.0], (t.size, 1))
    ramp = t < 2.0
    # the plain sum (h at the middle of each increment): backwards over the ramp, forwards (-x) when steady
    plain = 0.5 * (h[1:] + h[:-1]) * np.diff(v)
    assert plain[ramp[1:]].sum() > 0 > plain[~ramp[1:]].sum()
    mom = ForwardMoment(fs).update(acc, up)
    assert mom[ramp, 0].sum() < 0 and mom[~ramp, 0].sum() < 0
    # chunked the same
    parts = [ForwardMoment(fs)]
    got = np.concatenate([parts[0].update(acc[a : a + 37], up[a : a + 37]) for a in range(0, t.size, 37)])
    assert got.tobytes() == mom.tobytes()


def test_forward_moment_equals_its_formula_sample_by_sample():
    """The moment is ``0.5 (h[i-1] vd[i] - h[i] vd[i-1])`` of the low-passed force ``lp`` (its horizontal part
    ``h``, its vertical part ``v`` about its low-passed mean ``vd``), bit for bit, in chunks."""
    from pelvimon.dsp._lowpass import Lowpass, butter_lowpass_sos
    from pelvimon.dsp.laterality import _GRAVITY_HZ, ForwardMoment

    fs = 100.0
    rng = np.random.default_rng(5)
    acc = rng.normal(0, 2, (600, 3)) + [0.0, 0.0, 9.81]
    up = rng.normal(0, 0.1, (600, 3)) + [0.0, 0.0, 1.0]
    up /= np.linalg.norm(up, axis=1)[:, None]
    low = Lowpass(butter_lowpass_sos(2, 6.0, fs))  # (one channel at a time, the whole recording at once)
    lp = np.column_stack([low(acc[:, c], low.rest_state(acc[0, c]))[0] for c in range(3)])
    v = lp[:, 0] * up[:, 0] + lp[:, 1] * up[:, 1] + lp[:, 2] * up[:, 2]
    low_g = Lowpass(butter_lowpass_sos(2, _GRAVITY_HZ, fs))
    vd = v - low_g(v, low_g.rest_state(v[0]))[0]
    h = lp - up * v[:, None]
    ref = np.zeros((600, 3))
    for i in range(1, 600):
        ref[i] = 0.5 * (h[i - 1] * vd[i] - h[i] * vd[i - 1])
    fm = ForwardMoment(fs)
    got = np.concatenate([fm.update(acc[a : a + 71], up[a : a + 71]) for a in range(0, 600, 71)])
    assert got.shape == (600, 3) and got.tobytes() == ref.tobytes()
