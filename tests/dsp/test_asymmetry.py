"""Left/right asymmetry: statistics against hand-computable cases and scipy, windows, gaps and bouts."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pelvimon.dsp.asymmetry import (
    METRICS,
    AsymmetryMonitor,
    AsymmetryParams,
    compare_sides,
    contact_time_balance_pct,
    gait_phases,
    rolling_asymmetry,
    session_asymmetry,
    session_side_stats,
    step_gait,
    symmetry_index_pct,
    welch_interval,
)
from pelvimon.dsp.records import Step

BASE = {
    "cpd_deg": 6.0,
    "contact_time_s": 0.25,
    "step_time_s": 0.35,
    "flight_time_s": 0.10,
    "obliquity_range_deg": 10.0,
    "tilt_range_deg": 5.0,
    "rotation_range_deg": 12.0,
    "vertical_oscillation_cm": 8.0,
    "impact_g": 2.5,
}
SD = {
    "cpd_deg": 1.0,
    "contact_time_s": 0.0075,
    "step_time_s": 0.007,
    "flight_time_s": 0.01,
    "obliquity_range_deg": 0.8,
    "tilt_range_deg": 0.5,
    "rotation_range_deg": 1.0,
    "vertical_oscillation_cm": 0.4,
    "impact_g": 0.2,
}


def make_steps(
    n_steps: int,
    left: dict[str, float] | None = None,
    right: dict[str, float] | None = None,
    *,
    rho: float = 0.0,
    seed: int = 0,
    t0: float = 0.0,
    first: str = "L",
) -> list[Step]:
    """Alternating steps whose metrics are per-side means plus AR(1) noise (lag-1 correlation ``rho``)."""
    rng = np.random.default_rng(seed)
    means = {"L": {**BASE, **(left or {})}, "R": {**BASE, **(right or {})}}
    state = {s: rng.standard_normal(len(METRICS)) for s in "LR"}
    out = []
    t = t0
    for i in range(n_steps):
        side = first if i % 2 == 0 else ("R" if first == "L" else "L")
        state[side] = rho * state[side] + math.sqrt(1 - rho**2) * rng.standard_normal(len(METRICS))
        vals = {m: means[side][m] + SD[m] * state[side][j] for j, m in enumerate(METRICS)}
        out.append(
            Step(
                side=side,
                t_ic_s=t,
                t_fc_s=t + vals["contact_time_s"],
                cadence_spm=60 / vals["step_time_s"],
                **vals,
            )
        )
        t += vals["step_time_s"]
    return out


def hand_steps(left: list[float], right: list[float], metric: str = "cpd_deg") -> list[Step]:
    """Steps alternating L, R with the given values of ``metric`` (others from BASE)."""
    out = []
    t = 0.0
    for lv, rv in zip(left, right, strict=True):
        for side, v in (("L", lv), ("R", rv)):
            vals = {**BASE, metric: v}
            out.append(Step(side=side, t_ic_s=t, t_fc_s=t + 0.25, cadence_spm=60 / 0.35, **vals))
            t += 0.35
    return out


def test_welch_iid_matches_scipy_oracle() -> None:
    rng = np.random.default_rng(3)
    for n_l, n_r, sl, sr in ((10, 14, 1.0, 2.0), (20, 20, 0.5, 0.5), (8, 30, 3.0, 1.0)):
        a = rng.normal(5.0, sl, n_l)
        b = rng.normal(4.0, sr, n_r)
        left, right = compare_sides(a, b, autocorrelation="iid")
        diff, lo, hi = welch_interval(left, right, 0.9)
        ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.9)
        assert diff == pytest.approx(a.mean() - b.mean(), rel=1e-12)
        assert (lo, hi) == pytest.approx((ci.low, ci.high), rel=1e-9)
        assert left.sd == pytest.approx(a.std(ddof=1)) and right.n == n_r and left.n_eff == n_l


def test_hand_computable_means_si_and_balance() -> None:
    steps = hand_steps([1, 2, 3, 4, 5, 6, 7, 8], [11, 12, 13, 14, 15, 16, 17, 18])
    a = session_asymmetry(steps, AsymmetryParams(autocorrelation="iid"))["cpd_deg"]
    assert (a.left_mean, a.right_mean, a.diff) == pytest.approx((4.5, 14.5, -10.0))
    assert a.left_sd == pytest.approx(math.sqrt(6.0)) and a.n_left == 8 and a.n_right == 8
    # equal variances and sizes: df = 14, se = sqrt(6/8 * 2)
    half = stats.t.ppf(0.975, 14) * math.sqrt(1.5)
    assert (a.diff_ci_low, a.diff_ci_high) == pytest.approx((-10 - half, -10 + half))
    assert a.symmetry_index_pct == pytest.approx(100 * -10 / 9.5)
    assert symmetry_index_pct(110.0, 90.0) == pytest.approx(20.0)
    assert math.isnan(symmetry_index_pct(0.0, 0.0))
    ct = hand_steps([0.26] * 8, [0.24] * 8, metric="contact_time_s")
    b = session_asymmetry(ct)["contact_time_s"]
    bal, lo, hi = contact_time_balance_pct(b)
    assert bal == pytest.approx(52.0) and lo == pytest.approx(52.0) and hi == pytest.approx(52.0)


def test_autocorrelation_widens_the_interval_and_keeps_coverage() -> None:
    """AR(1) steps with rho = 0.5, no true difference: the iid interval misses far more than 5 %."""
    rng = np.random.default_rng(11)
    rho = 0.5
    n_trials, n = 600, 20
    miss = {"iid": 0, "ar1": 0}
    for _ in range(n_trials):
        e = rng.standard_normal((2, n + 30))
        x = np.zeros_like(e)
        for i in range(1, e.shape[1]):
            x[:, i] = rho * x[:, i - 1] + math.sqrt(1 - rho**2) * e[:, i]
        a, b = x[0, 30:], x[1, 30:]
        for mode in miss:
            left, right = compare_sides(a, b, autocorrelation=mode)
            _, lo, hi = welch_interval(left, right)
            miss[mode] += lo > 0 or hi < 0
    assert miss["iid"] / n_trials > 0.15
    assert miss["ar1"] / n_trials < 0.09


def test_rolling_window_uses_the_last_steps_per_side() -> None:
    p = AsymmetryParams(window_steps=10, min_steps_per_side=5, autocorrelation="iid")
    steps = make_steps(101, seed=2)
    out = rolling_asymmetry(steps, p)
    assert out[8] == [] and out[9] != []  # 5 steps on each side after 10 steps
    last = {a.metric: a for a in out[-1]}
    lv = np.array([s.cpd_deg for s in steps if s.side == "L"][-10:])
    rv = np.array([s.cpd_deg for s in steps if s.side == "R"][-10:])
    assert last["cpd_deg"].left_mean == pytest.approx(lv.mean())
    assert last["cpd_deg"].right_sd == pytest.approx(rv.std(ddof=1))
    assert last["cpd_deg"].n_left == 10 and last["cpd_deg"].n_right == 10
    assert set(last) == set(METRICS)


def test_time_window_drops_old_steps() -> None:
    p = AsymmetryParams(window_steps=50, window_s=5.0, min_steps_per_side=3)
    steps = make_steps(200, seed=4)
    mon = AsymmetryMonitor(p)
    a = {x.metric: x for x in mon.update(steps)}["cpd_deg"]
    t_last = steps[-1].t_ic_s
    n_in = sum(1 for s in steps if s.side == "L" and s.t_ic_s >= t_last - 5.0)
    assert a.n_left == n_in < 50
    assert a.t_start_s >= t_last - 5.0


def test_streaming_in_chunks_equals_step_by_step() -> None:
    steps = make_steps(300, {"cpd_deg": 8.0}, seed=5)
    series = rolling_asymmetry(steps)
    rng = np.random.default_rng(0)
    mon = AsymmetryMonitor()
    i = 0
    while i < len(steps):
        k = int(rng.integers(1, 12))
        got = mon.update(steps[i : i + k])
        i = min(i + k, len(steps))
        assert got == series[i - 1]


def test_gap_resets_the_windows_and_is_never_used() -> None:
    p = AsymmetryParams(min_steps_per_side=4, window_steps=10)
    before = make_steps(40, {"cpd_deg": 20.0}, seed=6)
    gap = Step("L", before[-1].t_ic_s + 0.35, *([math.nan] * 11), gap=True)
    after = make_steps(40, seed=7, t0=gap.t_ic_s + 0.35)
    mon = AsymmetryMonitor(p)
    assert mon.update(before)
    assert mon.update([gap]) == [] and mon.n_resets_ == 1
    assert mon.update(after[:7]) == []  # 4 L + 3 R: not enough right steps yet
    a = {x.metric: x for x in mon.update(after[7:])}["cpd_deg"]
    assert a.t_start_s >= after[0].t_ic_s  # nothing from before the gap
    assert a.left_mean < 10  # the 20 deg steps before the gap are gone
    whole = session_asymmetry([*before, gap, *after], p)["cpd_deg"]
    assert whole.n_left + whole.n_right == 80  # the gap step is excluded


def test_bout_boundary_resets_but_low_laterality_is_only_skipped() -> None:
    p = AsymmetryParams(min_steps_per_side=4, window_steps=10, max_step_interval_s=2.0)
    bout1 = make_steps(30, seed=8)
    bout2 = make_steps(30, seed=9, t0=bout1[-1].t_ic_s + 10.0)
    mon = AsymmetryMonitor(p)
    mon.update(bout1)
    assert mon.update(bout2[:1]) == [] and mon.n_resets_ == 1
    # a step with an unsure side and a wild value changes nothing and does not reset
    mon2 = AsymmetryMonitor(p)
    ref = mon2.update(bout1)
    odd = Step("L", bout1[-1].t_ic_s + 0.35, math.nan, 0.35, 0.25, 0.1, 171.0, 50.0, *([1.0] * 5),
               laterality_confidence=0.55)  # fmt: skip
    assert mon2.update([odd]) == ref and mon2.n_resets_ == 0


def test_session_stats_pool_autocorrelation_within_bouts_only() -> None:
    steps = make_steps(400, rho=0.6, seed=10)
    st = session_side_stats(steps)["cpd_deg"]
    assert 0.4 < st[0].rho < 0.75 and st[0].n_eff < st[0].n / 2
    iid = session_side_stats(make_steps(400, seed=10))["cpd_deg"][0]
    assert iid.rho < 0.15


@pytest.mark.parametrize(
    "kw",
    [
        {"window_steps": 1},
        {"min_steps_per_side": 30},
        {"level": 1.0},
        {"window_s": -1.0},
        {"autocorrelation": "arma"},
        {"max_autocorrelation": 1.0},
        {"metrics": ("cadence",)},
    ],
)
def test_params_reject_bad_values(kw: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kw)).split("_")[0]):
        AsymmetryParams(**kw)


def test_a_stop_clears_the_windows_when_the_time_is_given() -> None:
    p = AsymmetryParams(max_step_interval_s=2.0)
    steps = make_steps(60, seed=12)
    mon = AsymmetryMonitor(p)
    t_last = steps[-1].t_ic_s
    assert mon.update(steps, t_s=t_last + 0.5)  # still running
    assert mon.update([], t_s=t_last + 1.9) and mon.n_resets_ == 0
    assert mon.update([], t_s=t_last + 2.1) == [] and mon.n_resets_ == 1  # stopped: nothing stale is shown
    # the next bout starts from empty windows, without a second reset
    again = make_steps(20, seed=13, t0=t_last + 30.0)
    mon.update(again)
    assert mon.n_resets_ == 1 and all(a.t_start_s >= again[0].t_ic_s for a in mon.latest_.values())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-50, 50, allow_nan=False), min_size=8, max_size=30),
    st.lists(st.floats(-50, 50, allow_nan=False), min_size=8, max_size=30),
    st.sampled_from(["iid", "ar1"]),
)
def test_interval_properties(left: list[float], right: list[float], mode: str) -> None:
    """The interval holds the difference, is centred on it, and never narrows with autocorrelation allowed.

    (8 or more steps per side, as the monitor requires: below that the n_eff floor of 2 can change the
    degrees of freedom more than the standard error.)
    """
    ls, rs = compare_sides(np.array(left), np.array(right), autocorrelation=mode)  # type: ignore[arg-type]
    d, lo, hi = welch_interval(ls, rs)
    assert d == pytest.approx(np.mean(left) - np.mean(right), abs=1e-9)
    assert lo <= d + 1e-9 and d - 1e-9 <= hi
    assert (d - lo) == pytest.approx(hi - d, abs=1e-9)
    li, ri = compare_sides(np.array(left), np.array(right), autocorrelation="iid")
    _, lo_iid, hi_iid = welch_interval(li, ri)
    assert hi - lo >= hi_iid - lo_iid - 1e-9
    assert 0 <= ls.rho <= 0.6 and ls.n_eff <= ls.n


def _as_gap(step: Step, keep_step_time: bool) -> Step:
    """``step`` flagged gap with its metrics NaN, as the pipeline makes it: over a bridged short loss (its
    step time kept) or at a restart (no next initial contact)."""
    nan = math.nan
    return Step(side=step.side, t_ic_s=step.t_ic_s, t_fc_s=nan,
                step_time_s=step.step_time_s if keep_step_time else nan, contact_time_s=nan, flight_time_s=nan,
                cadence_spm=nan, cpd_deg=nan, obliquity_range_deg=nan, tilt_range_deg=nan,
                rotation_range_deg=nan, vertical_oscillation_cm=nan, impact_g=nan, gap=True,
                laterality_confidence=step.laterality_confidence)


@pytest.mark.parametrize("bridged", [True, False])
def test_a_bridged_gap_step_is_skipped_a_restart_resets(bridged: bool) -> None:
    steps = make_steps(60, seed=4)
    steps[30] = _as_gap(steps[30], keep_step_time=bridged)
    params = AsymmetryParams(window_steps=20, min_steps_per_side=5)
    mon = AsymmetryMonitor(params)
    mon.update(steps[:31])
    after = mon.update(steps[31:36])
    n = {a.metric: (a.n_left, a.n_right) for a in after}
    if bridged:
        # the windows ran on: the left steps 0..34 but the gap step 30, the right steps 1..35
        assert mon.n_resets_ == 0 and n["cpd_deg"] == (17, 18)
    else:
        assert mon.n_resets_ == 1 and after == []  # 3 + 2 steps since the reset: not enough per side
    # the batch forms follow the same rule
    roll = rolling_asymmetry(steps, params)
    assert {a.metric: (a.n_left, a.n_right) for a in roll[35]} == n
    # never used in the session statistics either
    assert session_side_stats(steps, params)["cpd_deg"][0].n == 29


# --- gait of the steps: walking and running are compared apart -------------------------------------------


def _gait_steps(pattern: str, t0: float = 0.0, dt: float = 0.4) -> list[Step]:
    """One step per letter: "r" running (a flight), "w" walking (no flight), "g" a gap step."""
    out = []
    for i, c in enumerate(pattern):
        t = t0 + i * dt
        if c == "g":
            out.append(Step("L", t, *([math.nan] * 11), gap=True))
            continue
        flight = 0.1 if c == "r" else 0.0
        out.append(Step("LR"[i % 2], t, t + 0.3, dt, 0.3, flight, 60 / dt, *([5.0] * 6)))
    return out


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        # the ramp out of standing (no flight yet) belongs to the run that follows
        ("wwwrrrrrrrrrr", "rrrrrrrrrrrrr"),
        # a slow jog's step without a visible flight stays running; a gap step has no gait
        ("rrrrrrrwrrrrgrrrr", "rrrrrrrrrrrr.rrrr"),
        # a walk, then a run without stopping: two phases; a short run inside one is absorbed
        ("wwwwwwwwrrwwwwrrrrrrrrr", "wwwwwwwwwwwwwwrrrrrrrrr"),
        # no run long enough: the commoner gait
        ("wwrwwrrwr", "wwwwwwwww"),
    ],
)
def test_gait_phases_put_stray_steps_right(pattern: str, expected: str) -> None:
    steps = _gait_steps(pattern)
    assert "".join("." if s.gap else step_gait(s)[0] for s in steps) == pattern.replace("g", ".")
    got = "".join("." if g is None else g[0] for g in gait_phases(steps))
    assert got == expected


def test_gait_phases_do_not_reach_across_a_pause() -> None:
    """After a stop, the first steps of the next bout (say the ramp into a run) are not taken for the walk
    before the pause: the bout starts anew."""
    walk = _gait_steps("wwwwwwwwww")
    run = _gait_steps("wwwrrrrrrrr", t0=walk[-1].t_ic_s + 5.0)
    got = "".join(g[0] for g in gait_phases(walk + run))  # type: ignore[index]
    assert got == "w" * 10 + "r" * 11


def test_windows_hold_one_gait_and_stray_steps_join_them() -> None:
    """Running steps, then a stray run of 3 steps without flight (a slow jog's): held out, then joined to
    the running windows; then 6 walking steps in a row: the windows restart with them."""
    import dataclasses

    mon = AsymmetryMonitor(AsymmetryParams(min_steps_per_side=2))
    run = [Step("L" if i % 2 == 0 else "R", 0.35 * i, 0.35 * i + 0.25, 0.35, 0.25, 0.1, 171.0, 6.0, 6.0, 6.0,
                12.0, 7.0, 2.0) for i in range(40)]  # fmt: skip
    stray = {20, 21, 22}
    walk_from = 30
    steps = [dataclasses.replace(s, flight_time_s=0.0, contact_time_s=0.6) if i in stray or i >= walk_from else s
             for i, s in enumerate(run)]  # fmt: skip
    n_in, gait = [], []
    for s in steps:
        mon.update([s])
        n_in.append(len(mon._win["L"]) + len(mon._win["R"]))
        gait.append(mon.gait_)
    assert n_in[20:23] == [n_in[19]] * 3 and gait[20:23] == ["running"] * 3  # held out
    assert n_in[23] == n_in[19] + 4  # the stray steps joined with the next running step
    assert n_in[walk_from : walk_from + 5] == [n_in[walk_from - 1]] * 5  # five walking steps held out
    assert gait[walk_from + 4] == "running" and mon.n_resets_ == 1
    assert gait[walk_from + 5] == "walking" and n_in[walk_from + 5] == 6  # restarted with the six


def test_drop_since_leaves_the_windows_as_without_those_steps() -> None:
    """Steps found wrong after they came (a sensor turned on the body) leave the windows: the asymmetries are
    those of a monitor that never had them, while the windows had not yet let older steps go; steps of the
    other gait held back from the windows go too."""
    steps = make_steps(30, {"cpd_deg": 5.0}, {"cpd_deg": 8.0}, seed=4)
    cut = steps[22].t_ic_s
    mon = AsymmetryMonitor()
    mon.update(steps)
    got = mon.drop_since(cut)
    ref = AsymmetryMonitor()
    assert got == ref.update(steps[:22]) and got and mon.latest_ == ref.latest_
    assert mon.drop_since(steps[0].t_ic_s) == [] and mon.latest_ == {}  # (all gone: too few to compare)
    walk = [replace(s, flight_time_s=0.0) for s in make_steps(3, t0=steps[-1].t_ic_s + 0.4, seed=5)]
    mon = AsymmetryMonitor()
    mon.update(steps + walk[:2])
    assert len(mon._held) == 2
    mon.drop_since(walk[1].t_ic_s)
    assert mon._held == walk[:1]
