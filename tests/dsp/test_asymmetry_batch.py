"""The vectorised rolling asymmetry equals the streaming monitor fed step by step, bit for bit."""

from __future__ import annotations

import dataclasses
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pelvimon.dsp.asymmetry import (
    GAIT_MIN_STEPS,
    METRICS,
    AsymmetryMonitor,
    AsymmetryParams,
    StepTable,
    _new_bout,
    breaks_sequence,
    compare_gaits,
    gait_stretches,
    main_gait,
    rolling_asymmetry,
    rolling_asymmetry_columns,
    rolling_asymmetry_reference,
    segment_steps,
    session_asymmetry,
    session_side_stats,
    step_end_s,
    step_gait,
    step_is_usable,
    steps_by_gait,
)
from pelvimon.dsp.records import Asymmetry, Step


def _bits(a: Asymmetry) -> tuple:
    """Every field, floats as their bit patterns (NaN == NaN, -0.0 != 0.0), types included."""
    out = []
    for v in a.__dict__.values():
        out.append(struct.pack("<d", v) if isinstance(v, float) else (type(v).__name__, v))
    return tuple(out)


def _same(got: list[list[Asymmetry]], ref: list[list[Asymmetry]]) -> None:
    assert len(got) == len(ref)
    for i, (g, r) in enumerate(zip(got, ref, strict=True)):
        assert all(type(a) is Asymmetry for a in g)
        assert [_bits(a) for a in g] == [_bits(a) for a in r], f"step {i}"


@st.composite
def step_lists(draw: st.DrawFn) -> list[Step]:
    n = draw(st.integers(0, 120))
    t = draw(st.floats(0.0, 100.0))
    out = []
    side = draw(st.sampled_from("LR"))
    walking = draw(st.booleans())  # walking steps have no flight; the windows hold one gait
    for _ in range(n):
        kind = draw(st.sampled_from(["ok"] * 12 + ["gap", "bridged", "unsure", "pause", "back", "nan", "same",
                                                   "switch", "stray"]))
        if kind == "switch":
            walking = not walking
        dt = draw(st.floats(0.2, 0.5))
        if kind == "pause":
            dt = draw(st.floats(2.1, 10.0))
        if kind == "back":
            dt = -draw(st.floats(0.01, 1.0))
        t += dt
        side = "R" if side == "L" else "L"
        if kind == "gap":
            out.append(Step(side, t, *([math.nan] * 11), gap=True))
            continue
        if kind == "bridged":  # a step over a short loss the pipeline ran on across: a gap, not a break
            out.append(Step(side, t, math.nan, 0.35, *([math.nan] * 9), gap=True))
            continue
        scale = draw(st.sampled_from([1e-6, 1.0, 1e3]))
        vals = [draw(st.floats(-3.0, 3.0)) * scale + 10.0 * scale for _ in METRICS]
        if kind == "nan":
            vals[draw(st.integers(0, len(vals) - 1))] = math.nan
        if kind == "same":
            vals = [1.25] * len(vals)
        v = dict(zip(METRICS, vals, strict=True))
        if walking != (kind == "stray"):
            v["flight_time_s"] = 0.0
        out.append(
            Step(
                side=side,
                t_ic_s=t,
                t_fc_s=t + 0.2,
                cadence_spm=170.0,
                laterality_confidence=0.6 if kind == "unsure" else draw(st.floats(0.8, 1.0)),
                **v,
            )
        )
    return out


@st.composite
def params(draw: st.DrawFn) -> AsymmetryParams:
    w = draw(st.integers(2, 12))
    return AsymmetryParams(
        window_steps=w,
        window_s=draw(st.one_of(st.none(), st.floats(1.0, 8.0))),
        min_steps_per_side=draw(st.integers(2, w)),
        level=draw(st.sampled_from([0.9, 0.95])),
        autocorrelation=draw(st.sampled_from(["ar1", "iid"])),
        metrics=draw(st.sampled_from([METRICS, ("cpd_deg", "impact_g"), ("contact_time_s",)])),
    )


@settings(max_examples=60, deadline=None)
@given(step_lists(), params())
def test_rolling_asymmetry_equals_the_monitor_step_by_step(steps: list[Step], p: AsymmetryParams) -> None:
    _same(rolling_asymmetry(steps, p), rolling_asymmetry_reference(steps, p))


def test_default_windows_on_a_long_run_with_gaps_and_pauses() -> None:
    steps = []
    t = 0.0
    for i in range(900):
        t += 0.35 if i % 300 else 5.0  # a pause every 300 steps
        side = "L" if i % 2 == 0 else "R"
        if i == 450:
            steps.append(Step(side, t, *([math.nan] * 11), gap=True))
            continue
        vals = {m: 1.0 + 0.1 * math.sin(0.37 * i + k) + (0.3 if side == "L" else 0.0) for k, m in enumerate(METRICS)}
        steps.append(Step(side=side, t_ic_s=t, t_fc_s=t + 0.2, cadence_spm=171.0,
                          laterality_confidence=0.5 if i % 17 == 0 else 0.97, **vals))  # fmt: skip
    got = rolling_asymmetry(steps)
    ref = rolling_asymmetry_reference(steps)
    _same(got, ref)
    assert sum(1 for g in got if g) > 700  # the windows fill after every reset
    # the columns read entry by entry (records built on demand) give the same records
    cols = rolling_asymmetry_columns(steps)
    assert len(cols) == len(ref)
    _same([cols[i] for i in range(len(cols))], ref)
    _same(cols[100:120], ref[100:120])
    assert cols == ref


def _state(mon: AsymmetryMonitor) -> tuple:
    """Everything a monitor carries from one update to the next, floats as bit patterns."""
    wins = tuple(
        tuple((_float_bits(t0), _float_bits(t1), v.tobytes()) for t0, t1, v in mon._win[side]) for side in "LR"
    )
    latest = tuple((m, _bits(a)) for m, a in mon.latest_.items())
    return wins, _float_bits(mon._last_ic_s), latest, mon.n_resets_, mon.gait_, tuple(map(id, mon._held))


def _float_bits(x: float) -> tuple:
    return type(x).__name__, struct.pack("<d", x)


@settings(max_examples=60, deadline=None)
@given(step_lists(), params())
def test_update_columns_leaves_the_monitor_as_step_by_step(steps: list[Step], p: AsymmetryParams) -> None:
    if len(p.metrics) < 2:
        p = dataclasses.replace(p, metrics=AsymmetryParams().metrics)  # (the other drawn settings kept)
    ref = AsymmetryMonitor(p)
    out = [ref.update([s]) for s in steps]
    mon = AsymmetryMonitor(p)
    cols = mon.update_columns(steps)
    _same(list(cols), out)
    assert _state(mon) == _state(ref)
    # and both go on alike
    more = [Step("L", 500.0 + i, 500.2 + i, 0.4, 0.2, 0.1, 170.0, *([1.0 + i % 3] * 6)) for i in range(3)]
    assert [_bits(a) for a in mon.update(more)] == [_bits(a) for a in ref.update(more)]
    assert _state(mon) == _state(ref)


def test_update_columns_needs_a_monitor_without_steps() -> None:
    steps = [Step("LR"[i % 2], 0.35 * i, 0.35 * i + 0.2, 0.35, 0.2, 0.1, 171.0, *([1.0] * 6)) for i in range(30)]
    mon = AsymmetryMonitor()
    mon.update(steps[:3])
    with pytest.raises(ValueError, match="holds no steps"):
        mon.update_columns(steps[3:])
    with pytest.raises(ValueError, match="two metrics"):
        AsymmetryMonitor(AsymmetryParams(metrics=("cpd_deg",))).update_columns(steps)
    # a restart (a step that breaks the sequence) empties it again: the restarts go on counting
    mon.update([Step("L", 20.0, *([math.nan] * 11), gap=True)])
    ref = AsymmetryMonitor()
    ref.update(steps[:3] + [Step("L", 20.0, *([math.nan] * 11), gap=True)])
    mon.update_columns(steps[3:])
    ref.update(steps[3:4])
    for s in steps[4:]:
        ref.update([s])
    assert _state(mon) == _state(ref) and mon.n_resets_ == 1


@settings(max_examples=60, deadline=None)
@given(step_lists(), params())
def test_step_table_applies_the_per_step_rules(steps: list[Step], p: AsymmetryParams) -> None:
    tab = StepTable(steps)
    assert tab.breaks().tolist() == [breaks_sequence(s) for s in steps]
    assert tab.usable(p).tolist() == [step_is_usable(s, p) for s in steps]
    assert [struct.pack("<d", x) for x in tab.t_end().tolist()] == [struct.pack("<d", step_end_s(s)) for s in steps]
    assert [w for w, s in zip(tab.walking().tolist(), steps, strict=True) if not s.gap] == [
        step_gait(s) == "walking" for s in steps if not s.gap
    ]
    # the bout boundaries as the monitor sees them: its last initial contact forgotten at breaks
    last, ref = math.nan, []
    for s in steps:
        if breaks_sequence(s):
            ref.append(False)
            last = math.nan
            continue
        ref.append(_new_bout(last, s.t_ic_s, p))
        if math.isfinite(s.t_ic_s):
            last = s.t_ic_s
    got = tab.new_bout(p)
    assert [g for g, s in zip(got.tolist(), steps, strict=True) if not breaks_sequence(s)] == [
        r for r, s in zip(ref, steps, strict=True) if not breaks_sequence(s)
    ]
    at = tab.last_ic_at()[-1]
    assert (math.isnan(last) and at < 0) or steps[at].t_ic_s == last
    # segment_steps, written out step by step
    seg, last, segs = 0, math.nan, []
    for s in steps:
        if breaks_sequence(s):
            seg, last = seg + 1, math.nan
            segs.append(-1)
            continue
        seg += _new_bout(last, s.t_ic_s, p)
        last = s.t_ic_s if math.isfinite(s.t_ic_s) else last
        segs.append(-1 if s.gap else seg)
    assert segment_steps(steps, p) == segs
    vals = tab.values(p.metrics)
    assert vals.flags.c_contiguous and vals.shape == (len(steps), len(p.metrics))
    assert vals.tobytes() == np.array([[float(getattr(s, m)) for m in p.metrics] for s in steps]).reshape(
        len(steps), len(p.metrics)
    ).tobytes()


def test_intervals_are_computed_when_read_and_equal_wherever_read() -> None:
    steps = []
    for i in range(400):
        side = "LR"[i % 2]
        vals = {m: 1.0 + 0.1 * math.sin(0.37 * i + k) + (0.05 if side == "L" else 0.0) for k, m in enumerate(METRICS)}
        steps.append(Step(side=side, t_ic_s=0.35 * i, t_fc_s=0.35 * i + 0.2, cadence_spm=171.0, **vals))
    ref = rolling_asymmetry_columns(steps)
    full = ref.columns
    lo, hi = full["lo"], full["hi"]
    assert np.isfinite(lo[ref.keep]).all() and np.isfinite(hi[ref.keep]).all()
    cols = rolling_asymmetry_columns(steps)
    where = np.zeros(cols.keep.shape, dtype=bool)
    where[::3, 1::2] = True
    blo, bhi = cols.bounds(where)
    assert "lo" not in cols._columns  # (not all computed)
    assert blo[where].tobytes() == lo[where].tobytes() and bhi[where].tobytes() == hi[where].tobytes()
    assert np.isnan(blo[~where]).all() and np.isnan(bhi[~where]).all()
    _same([cols.pair_records(j) for j in range(0, cols.keep.shape[0], 17)],
          [ref.pair_records(j) for j in range(0, ref.keep.shape[0], 17)])  # fmt: skip
    assert cols.columns["lo"].tobytes() == lo.tobytes() and cols.column("hi").tobytes() == hi.tobytes()


def _gait_stretches_step_by_step(steps: list[Step], p: AsymmetryParams) -> list[tuple[str, list[int]]]:
    """:func:`gait_stretches` written out step by step (the readable reference of its array form)."""
    raw = [step_gait(s) for s in steps]
    bouts: list[list[int]] = []
    last = math.nan
    for i, (s, g) in enumerate(zip(steps, raw, strict=True)):
        if g is None:
            continue
        if not bouts or _new_bout(last, s.t_ic_s, p):
            bouts.append([])
        bouts[-1].append(i)
        if math.isfinite(s.t_ic_s):
            last = s.t_ic_s
    out: list[tuple[str, list[int]]] = []
    for bout in bouts:
        runs: list[tuple[str, list[int]]] = []
        for i in bout:
            if runs and runs[-1][0] == raw[i]:
                runs[-1][1].append(i)
            else:
                runs.append((str(raw[i]), [i]))
        n_run = sum(len(idx) for g, idx in runs if g == "running")
        fill = "running" if 2 * n_run >= len(bout) else "walking"
        stretches: list[tuple[str, list[int]]] = []
        for j, (g, idx) in enumerate(runs):
            before = [h for h, ix in runs[:j] if len(ix) >= GAIT_MIN_STEPS]
            after = [h for h, ix in runs[j + 1 :] if len(ix) >= GAIT_MIN_STEPS]
            gait = g if len(idx) >= GAIT_MIN_STEPS else (before[-1] if before else after[0] if after else fill)
            if stretches and stretches[-1][0] == gait:
                stretches[-1][1].extend(idx)
            else:
                stretches.append((gait, list(idx)))
        out.extend(stretches)
    return out


@settings(max_examples=80, deadline=None)
@given(step_lists(), params())
def test_gait_stretches_and_the_comparison_per_gait(steps: list[Step], p: AsymmetryParams) -> None:
    stretches = gait_stretches(steps, p)
    assert stretches == _gait_stretches_step_by_step(steps, p)
    got_stretches, parts, gait = compare_gaits(StepTable(steps), p)
    assert got_stretches == stretches
    by_gait = steps_by_gait(steps, stretches)
    assert list(parts) == list(by_gait) and gait == main_gait(by_gait, p)
    for g, part in parts.items():
        assert part.gait == g and list(part.steps) == by_gait[g]
        assert part.n_usable == sum(1 for s in by_gait[g] if step_is_usable(s, p))
        assert repr(part.side_stats) == repr(session_side_stats(by_gait[g], p))
        assert [_bits(a) for a in part.asymmetry.values()] == [
            _bits(a) for a in session_asymmetry(by_gait[g], p).values()
        ]


def test_a_step_table_is_the_list_of_its_steps() -> None:
    steps = [Step("LR"[i % 2], 0.35 * i, 0.35 * i + 0.2, 0.35, 0.2, 0.1, 171.0, *([1.0 + i] * 6)) for i in range(9)]
    tab = StepTable(steps)
    assert len(tab) == 9 and list(tab) == steps and tab[3] is steps[3] and tab[2:4] == steps[2:4]
    assert StepTable.of(tab) is tab and StepTable.of(steps).steps == steps
    assert tab.field("cpd_deg").tolist() == [s.cpd_deg for s in steps]
    part = tab.take([1, 4, 8])
    assert part.steps == [steps[1], steps[4], steps[8]] and part.t_ic.tolist() == [s.t_ic_s for s in part.steps]
    assert part.left.tolist() == [False, True, True] and part.field("cpd_deg").tolist() == [2.0, 5.0, 9.0]
