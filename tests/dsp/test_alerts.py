"""Asymmetry alerts: credible and meaningful, on the right side, after the minimum duration, no flicker."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pytest

from pelvimon.dsp.alerts import AlertMonitor, AlertParams, AlertRule, default_rules
from pelvimon.dsp.asymmetry import (
    METRICS,
    AsymmetryMonitor,
    AsymmetryParams,
    rolling_asymmetry_columns,
    rolling_asymmetry_reference,
    step_end_s,
)
from pelvimon.dsp.records import Alert, Asymmetry, Step
from pelvimon.sensors.simulator import SimParams, simulate


def truth_steps(sim_params: SimParams) -> list[Step]:
    """The simulator's truth steps as ``Step`` records (full-gait steps only)."""
    out = []
    for s in simulate(sim_params).truth.steps:
        if s.ramp < 1:
            continue
        out.append(
            Step(
                side=s.side,
                t_ic_s=s.t_ic_s,
                t_fc_s=s.t_fc_s,
                step_time_s=s.step_time_s,
                contact_time_s=s.contact_time_s,
                flight_time_s=s.flight_time_s,
                cadence_spm=s.cadence_spm,
                cpd_deg=s.cpd_deg,
                obliquity_range_deg=s.obliquity_range_deg,
                tilt_range_deg=s.tilt_range_deg,
                rotation_range_deg=s.rotation_range_deg,
                vertical_oscillation_cm=s.vertical_oscillation_cm,
                impact_g=s.impact_g,
            )
        )
    return out


def run_alerts(
    steps: Sequence[Step], ap: AsymmetryParams | None = None, alp: AlertParams | None = None
) -> tuple[list[Alert], list]:
    """Feed steps one at a time (time of each update: the step's end) and close alerts at the end."""
    mon, alerts = AsymmetryMonitor(ap), AlertMonitor(alp)
    events = []
    for s in steps:
        events += alerts.update(mon.update([s]), s.t_ic_s + s.step_time_s)
    events += alerts.finish(steps[-1].t_ic_s + steps[-1].step_time_s)
    return alerts.all_alerts(), events


def ar1_cpd_steps(n: int, rho: float, seed: int, sd_deg: float = 1.0) -> list[Step]:
    """Alternating steps, CPD 6 deg on both sides plus per-side AR(1) noise; other metrics constant."""
    rng = np.random.default_rng(seed)
    state = rng.standard_normal(2)
    out = []
    for i in range(n):
        k = i % 2
        state[k] = rho * state[k] + math.sqrt(1 - rho**2) * rng.standard_normal()
        out.append(Step("LR"[k], 0.35 * i, 0.35 * i + 0.25, 0.35, 0.25, 0.1, 171.4, 6.0 + sd_deg * state[k],
                        8.0, 5.0, 12.0, 7.0, 2.0))  # fmt: skip
    return out


def asym(metric: str, t: float, left: float, right: float, half: float = 0.3) -> Asymmetry:
    d = left - right
    return Asymmetry(metric, t - 10, t, 20, 20, left, right, 1.0, 1.0, d, d - half, d + half,
                     100 * d / (0.5 * (left + right)))  # fmt: skip


def test_simulated_left_cpd_8_vs_4_alerts_on_the_left_after_the_minimum_duration() -> None:
    steps = truth_steps(SimParams(seconds=90, cpd_left_deg=8.0, cpd_right_deg=4.0, seed=1))
    alerts, events = run_alerts(steps)
    cpd = [a for a in alerts if a.metric == "cpd_deg"]
    assert len(cpd) == 1, alerts
    a = cpd[0]
    assert a.side == "L" and a.threshold == 2.0 and a.threshold_kind == "abs_diff"
    assert a.left_value == pytest.approx(8.0, abs=0.6) and a.right_value == pytest.approx(4.0, abs=0.6)
    assert "LEFT hip abductors" in a.message and "Left stance: the right hip drops" in a.message
    started = next(e for e in events if e.kind == "started" and e.alert.metric == "cpd_deg")
    # the started event came no earlier than min_duration_s after the condition began
    first_step_end = steps[0].t_ic_s + steps[0].step_time_s
    t_started = next(
        s.t_ic_s + s.step_time_s for s in steps if s.t_ic_s + s.step_time_s - a.t_start_s >= 10.0 - 1e-9
    )
    assert a.t_start_s >= first_step_end and started.alert.t_start_s == a.t_start_s
    assert t_started - a.t_start_s >= 10.0
    assert [e.kind for e in events if e.alert.metric == "cpd_deg"][-1] == "ended"
    # the other metrics are symmetric in the simulation, except the obliquity range, which in the
    # simulator's model is the CPD itself (8 vs 4 deg: SI 67 %)
    assert {x.metric for x in alerts} == {"cpd_deg"}  # obliquity range (mostly the drop itself) is off by default


def test_right_side_and_message_are_mirrored() -> None:
    steps = truth_steps(SimParams(seconds=60, cpd_left_deg=5.0, cpd_right_deg=9.0, seed=2))
    alerts, _ = run_alerts(steps)
    (a,) = [x for x in alerts if x.metric == "cpd_deg"]
    assert a.side == "R" and "RIGHT hip abductors" in a.message and "Right stance: the left hip" in a.message


def test_small_cpd_difference_does_not_alert_even_when_credible() -> None:
    """1 deg of difference is credible with 20 steps per side but below the 2 deg meaningful threshold.

    (The obliquity range, equal to the CPD in the simulator's model, may raise its own SI alert.)
    """
    steps = truth_steps(SimParams(seconds=90, cpd_left_deg=7.0, cpd_right_deg=6.0, seed=3))
    mon = AsymmetryMonitor()
    a = {x.metric: x for x in mon.update(steps)}["cpd_deg"]
    assert a.diff_ci_low > 0  # credible ...
    alerts, _ = run_alerts(steps)
    assert [x for x in alerts if x.metric == "cpd_deg"] == []  # ... but not meaningful


def test_equal_sides_have_a_low_false_alarm_rate_over_many_seeds() -> None:
    """Symmetric runner, CPD SD 1.5 deg, AR(1)-correlated steps (rho 0.4): 20 sessions of 10 minutes."""
    ap = AsymmetryParams(metrics=("cpd_deg",))
    n_alerts = 0
    for seed in range(20):
        alerts, _ = run_alerts(ar1_cpd_steps(1700, rho=0.4, seed=100 + seed, sd_deg=1.5), ap)
        n_alerts += len(alerts)
    assert n_alerts <= 1


def test_equal_sides_all_metrics_no_alerts_in_simulated_sessions() -> None:
    for seed in range(3):
        alerts, _ = run_alerts(truth_steps(SimParams(seconds=120, seed=seed)))
        assert alerts == [], alerts


def test_hysteresis_no_flicker_when_the_difference_hovers_at_the_threshold() -> None:
    rng = np.random.default_rng(0)
    mon = AlertMonitor(AlertParams(min_duration_s=5.0, release_hold_s=5.0))
    events = []
    t = 0.0
    for k in range(600):  # 3.5 minutes of updates every 0.35 s, diff hovering in 1.7 .. 2.3 deg
        d = 2.0 + 0.3 * math.sin(k / 7.0) + 0.05 * rng.standard_normal()
        events += mon.update([asym("cpd_deg", t, 6.0 + d, 6.0)], t)
        t += 0.35
    kinds = [e.kind for e in events]
    assert kinds.count("started") == 1 and kinds.count("ended") == 0
    # without hysteresis (release == enter, no hold) the same input flickers
    flick = AlertMonitor(
        AlertParams(
            min_duration_s=0.0, release_hold_s=0.0, rules={"cpd_deg": AlertRule("cpd_deg", "diff", 2.0, 2.0)}
        )
    )
    events = []
    t = 0.0
    rng = np.random.default_rng(0)
    for k in range(600):
        d = 2.0 + 0.3 * math.sin(k / 7.0) + 0.05 * rng.standard_normal()
        events += flick.update([asym("cpd_deg", t, 6.0 + d, 6.0)], t)
        t += 0.35
    assert [e.kind for e in events].count("started") > 5


def test_release_after_hold_and_start_needs_credibility() -> None:
    mon = AlertMonitor(AlertParams(min_duration_s=10.0, release_hold_s=5.0))
    # large but not credible (CI includes 0): never starts
    for t in np.arange(0, 30, 0.5):
        assert mon.update([asym("cpd_deg", t, 10.0, 6.0, half=5.0)], t) == []
    ev = []
    for t in np.arange(30, 60, 0.5):
        ev += mon.update([asym("cpd_deg", t, 10.0, 6.0)], t)
    assert [e.kind for e in ev][0] == "started" and ev[0].alert.t_start_s == 30.0
    assert mon.active_["cpd_deg"].side == "L"
    # back to 1 deg (below release): ends 5 s later, end time = when the release condition began
    ev = []
    for t in np.arange(60, 70, 0.5):
        ev += mon.update([asym("cpd_deg", t, 7.0, 6.0)], t)
    ended = [e for e in ev if e.kind == "ended"]
    assert len(ended) == 1 and ended[0].alert.t_end_s == 60.0
    assert mon.active_ == {} and mon.history_[0].t_end_s == 60.0


def test_missing_data_cancels_onset_and_stale_alert_ends() -> None:
    mon = AlertMonitor(AlertParams(min_duration_s=10.0, stale_s=20.0))
    for t in np.arange(0, 8, 0.5):
        mon.update([asym("cpd_deg", t, 10.0, 6.0)], t)
    mon.update([], 8.0)  # a gap: the onset starts over
    ev = []
    for t in np.arange(9, 18.5, 0.5):
        ev += mon.update([asym("cpd_deg", t, 10.0, 6.0)], t)
    assert ev == []
    for t in np.arange(18.5, 25, 0.5):
        ev += mon.update([asym("cpd_deg", t, 10.0, 6.0)], t)
    assert [e.kind for e in ev] == ["started"] + ["updated"] * 0 and ev[0].alert.t_start_s == 9.0
    assert mon.update([], 30.0) == []  # held while data are missing ...
    (end,) = mon.update([], 45.0)  # ... and ended 20 s after they were last seen
    assert end.kind == "ended" and end.alert.t_end_s == 24.5


def test_contact_time_balance_and_si_rules() -> None:
    mon = AlertMonitor(AlertParams(min_duration_s=0.0))
    # 0.262 vs 0.238 s: balance 52.4 % left, SI 9.6 % -> balance alert (not an SI one)
    (ev,) = mon.update([asym("contact_time_s", 0.0, 0.262, 0.238, half=0.005)], 0.0)
    a = ev.alert
    assert a.threshold_kind == "balance_pct" and a.side == "L" and a.threshold == 50.7
    assert a.release_threshold == pytest.approx(50.5)  # back inside the band narrowed by 0.2 %
    assert "52.4 % left" in a.message and "262 ms vs 238 ms" in a.message
    # a low-side alert (48 % left) whose balance comes back to 49.4 %, inside the band but not yet inside the
    # narrowed release band: its thresholds stay those of the edge it crossed
    low = AlertMonitor(AlertParams(min_duration_s=0.0))
    (ev,) = low.update([asym("contact_time_s", 0.0, 0.240, 0.260, half=0.005)], 0.0)
    assert (ev.alert.side, ev.alert.threshold, ev.alert.release_threshold) == ("R", 49.3, pytest.approx(49.5))
    (up,) = low.update([asym("contact_time_s", 1.0, 0.2470, 0.2530, half=0.0005)], 1.0)
    assert up.kind == "updated" and (up.alert.threshold, up.alert.release_threshold) == (49.3, pytest.approx(49.5))
    # balance inside the band: nothing
    mon2 = AlertMonitor(AlertParams(min_duration_s=0.0))
    assert mon2.update([asym("contact_time_s", 0.0, 0.2502, 0.2498, half=0.0001)], 0.0) == []
    # impact SI +/-: right larger by 20 % -> right side
    (ev,) = mon2.update([asym("impact_g", 1.0, 2.0, 2.44, half=0.1)], 1.0)
    assert (
        ev.alert.side == "R" and ev.alert.threshold_kind == "si_pct" and "impact" in ev.alert.message.lower()
    )
    # SI below 10 %: no alert
    assert mon2.update([asym("tilt_range_deg", 1.0, 5.2, 4.8, half=0.1)], 1.0) == []


def test_a_recorded_alert_keeps_the_figures_it_was_raised_with() -> None:
    """The figures of an active alert follow the window ("updated" events); the alert that ends carries
    those of the moment it was raised (8 vs 4 deg), not the last ones before its release (7.6 vs 6 deg,
    which read as a difference under the threshold)."""
    mon = AlertMonitor(AlertParams(min_duration_s=10.0, release_hold_s=5.0))
    ev = []
    for t in np.arange(0, 20, 0.5):
        ev += mon.update([asym("cpd_deg", t, 8.0 + 0.01 * t, 4.0)], t)
    (started,) = [e for e in ev if e.kind == "started"]
    assert started.alert.left_value == 8.0 + 0.01 * 10.0 and started.alert.t_start_s == 0.0
    assert (started.alert.threshold, started.alert.release_threshold) == (2.0, 1.5)
    for t in np.arange(20, 30, 0.5):
        ev += mon.update([asym("cpd_deg", t, 7.6, 6.0)], t)  # 1.6 deg: past the release (1.5), held
    assert [e for e in ev if e.kind == "updated"][-1].alert.left_value == 7.6
    for t in np.arange(30, 40, 0.5):
        ev += mon.update([asym("cpd_deg", t, 6.5, 6.0)], t)
    (ended,) = [e for e in ev if e.kind == "ended"]
    assert ended.alert.left_value == started.alert.left_value and ended.alert.right_value == 4.0
    assert ended.alert.message == started.alert.message and ended.alert.t_end_s == 30.0
    assert not ended.at_session_end
    mon.update([asym("cpd_deg", 40.0, 9.0, 4.0)], 40.0)
    mon.update([asym("cpd_deg", 50.0, 9.0, 4.0)], 50.0)
    (closed,) = mon.finish(55.0)
    assert closed.at_session_end and closed.alert.t_end_s == 55.0


def test_si_rule_with_a_smallest_difference() -> None:
    """Vertical oscillation: 10 % of a walker's 2.5 cm is under the per-step accuracy, so the default rule
    also needs 0.5 cm; a runner's 8 vs 7 cm (13 %, 1 cm) alerts."""
    rule = default_rules()["vertical_oscillation_cm"]
    assert rule.kind == "si" and rule.min_diff == 0.5
    mon = AlertMonitor(AlertParams(min_duration_s=0.0))
    assert mon.update([asym("vertical_oscillation_cm", 0.0, 2.7, 2.4, half=0.05)], 0.0) == []  # SI 11.8 %
    (ev,) = mon.update([asym("vertical_oscillation_cm", 1.0, 8.0, 7.0, half=0.2)], 1.0)
    assert ev.kind == "started" and ev.alert.side == "L"
    with pytest.raises(ValueError, match="min_diff"):
        AlertRule("impact_g", "si", min_diff=-1.0)


def test_rules_validate() -> None:
    with pytest.raises(ValueError, match="enter"):
        AlertRule("cpd_deg", "diff", enter=2.0, release=3.0)
    with pytest.raises(ValueError, match="kind"):
        AlertRule("cpd_deg", "ratio")
    with pytest.raises(ValueError, match="low"):
        AlertRule("contact_time_s", "balance", low=51.0, high=50.0)
    with pytest.raises(ValueError, match="min_duration_s"):
        AlertParams(min_duration_s=-1.0)
    assert set(default_rules()) >= {"cpd_deg", "contact_time_s", "impact_g"}


def test_display_numbers_never_show_a_signed_zero_or_an_interval_reaching_zero() -> None:
    from pelvimon.dsp.alerts import display_number

    assert display_number("tilt_range_deg", 0.031, signed=True) == "+0.03"  # not "+0.0"
    assert display_number("tilt_range_deg", 0.418, signed=True) == "+0.4"
    assert display_number("cpd_deg", -0.04) == "0.0"  # not "-0.0"
    assert display_number("contact_time_s", -0.0004, signed=True) == "-0.4"  # ms
    assert display_number("contact_time_s", 0.0, signed=True) == "0"
    assert display_number("contact_time_s", 0.2624) == "262"
    assert display_number("impact_g", -0.0001, signed=True) == "-0.0001"
    assert display_number("tilt_range_deg", 0.002, signed=True) == "+0.002"  # [+0.002, +0.1] excludes zero
    assert display_number("impact_g", -0.000001, signed=True) == "0.00"  # three digits more at most, then 0
    assert display_number("tilt_range_deg", 0.00004, signed=True) == "0.0"  # not "0.0000"


def test_a_difference_and_its_interval_are_shown_with_the_same_digits() -> None:
    """"+0.2 ms [-1 ms, +1 ms]" showed the ends of [-0.85, +1.31] coarser than the difference they hold."""
    from pelvimon.dsp.alerts import display_interval, interval_digits

    assert display_interval("step_time_s", 0.00023, -0.00085, 0.00131) == ["+0.2", "-0.8", "+1.3"]
    assert display_interval("contact_time_s", 0.00101, -0.00049, 0.00251) == ["+1.0", "-0.5", "+2.5"]
    assert display_interval("contact_time_s", -0.012, -0.020, -0.004) == ["-12", "-20", "-4"]  # (all whole)
    assert display_interval("cpd_deg", 3.9, 3.8, 4.0) == ["+3.9", "+3.8", "+4.0"]
    assert display_interval("tilt_range_deg", -0.02, -0.1, 0.04) == ["-0.02", "-0.10", "+0.04"]
    assert display_interval("cpd_deg", 0.0, float("nan"), 0.3) == ["0.0", "n/a", "+0.3"]
    assert interval_digits("cpd_deg", None, 0.004) == 3 and interval_digits("cpd_deg") == 0


def test_alert_sentence_adds_up() -> None:
    """The difference quoted is that of the rounded means quoted beside it (9.1 - 4.8 = 4.3, although the
    unrounded difference 4.38 rounds to 4.4)."""
    from pelvimon.dsp.alerts import alert_message

    a = Asymmetry("cpd_deg", 0.0, 10.0, 20, 20, 9.14, 4.76, 0.5, 0.5, 4.38, 4.0, 4.8, 63.0)
    msg = alert_message(default_rules()["cpd_deg"], a, "L")
    assert "drops 4.3° more" in msg and "(9.1° vs 4.8°)" in msg


def _wandering_steps(n: int, seed: int) -> list[Step]:
    """Alternating steps whose left/right differences wander in and out of the alert thresholds and
    switch sides, with gaps, pauses, unsure sides and missing values (alerts start, update, end by release,
    by a side switch and without data)."""
    rng = np.random.default_rng(seed)
    out, t = [], 0.0
    for i in range(n):
        t += 0.35 if rng.random() > 0.004 else rng.uniform(3.0, 60.0)
        side = "L" if i % 2 == 0 else "R"
        if rng.random() < 0.004:
            out.append(Step(side, t, *([math.nan] * 11), gap=True))
            continue
        sign = 1.0 if side == "L" else -1.0
        vals = {m: 10.0 + sign * 0.8 * math.sin(i / (60.0 + 7 * k)) + 0.2 * rng.standard_normal()
                for k, m in enumerate(METRICS)}  # fmt: skip
        vals["contact_time_s"] = 0.25 + sign * 0.01 * math.sin(i / 90.0) + 0.002 * rng.standard_normal()
        if rng.random() < 0.01:
            vals[METRICS[rng.integers(len(METRICS))]] = math.nan
        out.append(Step(side=side, t_ic_s=t, t_fc_s=t + 0.25, cadence_spm=171.0,
                        laterality_confidence=0.6 if rng.random() < 0.03 else 0.95, **vals))  # fmt: skip
    return out


def _monitor_state(mon: AlertMonitor) -> tuple:
    """The whole state of an alert monitor: per-metric states (in order), active alerts (in order), history."""
    states = [(m, repr(dataclasses.astuple(st))) for m, st in mon._state.items()]
    return states, list(mon.active_.items()), list(mon.history_)


_LOW = {m: dataclasses.replace(r, enter=r.enter / 10, release=r.release / 10) if r.kind != "balance"
        else dataclasses.replace(r, low=49.8, high=50.2, release_margin=0.05)
        for m, r in default_rules().items()}  # fmt: skip


@pytest.mark.parametrize(
    "params",
    [
        AlertParams(),
        AlertParams(min_duration_s=3.0, release_hold_s=2.0, stale_s=5.0, rules=_LOW),
        AlertParams(min_duration_s=0.0, release_hold_s=0.0, stale_s=0.0, rules=_LOW),
        AlertParams(min_duration_s=20.0, release_hold_s=10.0, stale_s=60.0,
                    rules={**_LOW, "impact_g": dataclasses.replace(_LOW["impact_g"], enabled=False)}),  # fmt: skip
    ],
)
def test_update_columns_equals_update_step_by_step(params: AlertParams) -> None:
    steps = _wandering_steps(1500, 1)
    p = AsymmetryParams(window_steps=12, min_steps_per_side=4)
    rolling = rolling_asymmetry_columns(steps, p)
    t = [step_end_s(s) for s in steps]
    expected = rolling_asymmetry_reference(steps, p)  # (causal: its first entries are those of a prefix)
    ref = AlertMonitor(params)
    for current, tk in zip(expected, t, strict=True):
        ref.update(current, tk)
    mon = AlertMonitor(params)
    mon.update_columns(rolling, t)
    assert _monitor_state(mon) == _monitor_state(ref)
    assert len(ref.history_) >= 10 and ref.active_  # (the alerts started, ended and went on)
    # a monitor used step by step before takes the rest alike (pending onsets, active alerts carried over)
    half = len(steps) // 2
    head = AlertMonitor(params)
    for current, tk in zip(expected[:half], t[:half], strict=True):
        head.update(current, tk)
    rest = rolling_asymmetry_columns(steps, p)
    tail = _Slice(rest, half)
    head.update_columns(tail, t[half:])  # type: ignore[arg-type]
    assert _monitor_state(head) == _monitor_state(ref)
    assert mon.finish(t[-1] + 100.0) == ref.finish(t[-1] + 100.0)
    assert _monitor_state(mon) == _monitor_state(ref)


class _Slice:
    """The entries of a RollingAsymmetry from ``start`` on (the same columns, a shorter ``slot``)."""

    def __init__(self, rolling: object, start: int) -> None:
        self._r, self.slot = rolling, rolling.slot[start:]  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return int(self.slot.shape[0])

    def __getattr__(self, name: str) -> object:
        return getattr(self._r, name)


def test_update_columns_ends_an_alert_whose_rule_was_switched_off_once_stale() -> None:
    steps = _wandering_steps(1500, 3)
    p = AsymmetryParams(window_steps=12, min_steps_per_side=4)
    t = [step_end_s(s) for s in steps]
    first = AlertParams(min_duration_s=0.0, rules=_LOW)
    ref, mon = AlertMonitor(first), AlertMonitor(first)
    expected = rolling_asymmetry_reference(steps, p)  # (causal: its first entries are those of a prefix)
    for current, tk in zip(expected[:700], t[:700], strict=True):
        ref.update(current, tk)
        mon.update(current, tk)
    assert ref.active_
    off = {m: dataclasses.replace(r, enabled=False) for m, r in _LOW.items()}
    ref.params = mon.params = AlertParams(min_duration_s=0.0, stale_s=10.0, rules=off)
    for current, tk in zip(expected[700:], t[700:], strict=True):
        ref.update(current, tk)
    mon.update_columns(_Slice(rolling_asymmetry_columns(steps, p), 700), t[700:])  # type: ignore[arg-type]
    assert not ref.active_ and _monitor_state(mon) == _monitor_state(ref)


def test_update_columns_with_an_unknown_update_time_equals_update() -> None:
    """A NaN time (an alert's onset then taken at the next update) gives the step-by-step state."""
    rng = np.random.default_rng(0)
    steps = []
    for i in range(80):
        side = "L" if i % 2 == 0 else "R"
        vals = {m: (12.0 if side == "L" else 8.0) + 0.3 * rng.standard_normal() for m in METRICS}
        steps.append(Step(side=side, t_ic_s=0.35 * i, t_fc_s=0.35 * i + 0.2, cadence_spm=171.0, **vals))
    p = AsymmetryParams(window_steps=12, min_steps_per_side=4)
    rolling = rolling_asymmetry_columns(steps, p)
    t = [0.35 * i + 0.35 for i in range(80)]
    t[int(np.flatnonzero(rolling.slot >= 0)[0])] = math.nan  # where the asymmetries first appear
    params = AlertParams(min_duration_s=3.0)
    ref = AlertMonitor(params)
    for k in range(80):
        ref.update(rolling[k], t[k])
    mon = AlertMonitor(params)
    mon.update_columns(rolling, t)
    assert ref.active_ and _monitor_state(mon) == _monitor_state(ref)
