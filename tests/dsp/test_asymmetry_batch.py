"""The vectorised rolling asymmetry equals the streaming monitor fed step by step, bit for bit."""

from __future__ import annotations

import math
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from pelvimon.dsp.asymmetry import (
    METRICS,
    AsymmetryParams,
    rolling_asymmetry,
    rolling_asymmetry_columns,
    rolling_asymmetry_reference,
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
        kind = draw(st.sampled_from(["ok"] * 12 + ["gap", "unsure", "pause", "back", "nan", "same", "switch",
                                                   "stray"]))
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
