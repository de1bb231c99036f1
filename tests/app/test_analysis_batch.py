"""analyze_steps (all steps at once) gives the rolling asymmetry and alerts of the tracker fed step by step."""

from __future__ import annotations

import math

import numpy as np

from pelvimon.analysis import StepTracker, analyze_steps
from pelvimon.config import Config
from pelvimon.dsp.asymmetry import METRICS
from pelvimon.records import Step


def _steps(n: int, seed: int) -> list[Step]:
    """Alternating steps, left CPD 3 deg above right for the middle third, a gap and a pause."""
    rng = np.random.default_rng(seed)
    out = []
    t = 0.0
    for i in range(n):
        t += 0.35 if i != n // 2 else 6.0
        side = "L" if i % 2 == 0 else "R"
        if i == 2 * n // 3:
            out.append(Step(side, t, *([math.nan] * 11), gap=True))
            continue
        vals = {m: 1.0 + 0.05 * rng.standard_normal() for m in METRICS}
        vals["cpd_deg"] = 6.0 + rng.standard_normal() * 0.5 + (3.0 if side == "L" and n // 6 < i < n // 2 else 0.0)
        out.append(Step(side=side, t_ic_s=t, t_fc_s=t + 0.25, cadence_spm=171.0,
                        laterality_confidence=0.6 if i % 23 == 0 else 0.95, **vals))  # fmt: skip
    return out


def test_batch_rolling_and_alerts_equal_the_tracker_step_by_step() -> None:
    steps = _steps(1500, seed=1)
    cfg = Config()
    a = analyze_steps(steps, cfg)
    tr = StepTracker(cfg)
    ref = [tr.push(s)[:2] for s in steps]
    tr.alerts.finish(a.quality.duration_s)
    assert len(a.rolling) == len(ref)
    for (t1, c1), (t2, c2) in zip(a.rolling, ref, strict=True):
        assert t1 == t2
        assert str(c1) == str(c2)  # every field, repr: exact floats, NaN as nan
    assert a.alerts == tr.alerts.all_alerts()
    assert any(al.metric == "cpd_deg" and al.side == "L" for al in a.alerts)  # the asymmetry was seen


def test_push_all_on_a_used_tracker_goes_step_by_step() -> None:
    steps = _steps(300, seed=2)
    cfg = Config()
    tr = StepTracker(cfg)
    first = [tr.push(s)[:2] for s in steps[:100]]
    rest = tr.push_all(steps[100:])
    tr2 = StepTracker(cfg)
    ref = [tr2.push(s)[:2] for s in steps]
    assert [str(c) for _, c in first + rest] == [str(c) for _, c in ref]
    assert str(tr.current) == str(tr2.current)


def test_run_pipeline_in_chunks_equals_the_pipeline_fed_whole() -> None:
    from pelvimon.analysis import _PIPELINE_CHUNK_N, run_pipeline
    from pelvimon.dsp.pipeline import CalibrationChange, GaitPipeline
    from pelvimon.sensors.simulator import SimParams, simulate

    batch = simulate(SimParams(seconds=180.0, rate_hz=200.0, gait="run", seed=5)).batch
    assert len(batch) > 2 * _PIPELINE_CHUNK_N  # several chunks and a partial one
    run = run_pipeline([batch], 200.0)
    pipe = GaitPipeline(200.0)
    events = pipe.update(batch).events + pipe.finish().events
    assert len(run.steps) > 200
    assert [str(s) for s in run.steps] == [str(s) for s in pipe.steps_]
    cal = [e.t_s for e in events if isinstance(e, CalibrationChange) and e.state == "calibrated"]
    assert run.calibrated_at_s == cal[0] and run.calibration_state == pipe.calibration_.state_


def test_steps_json_equals_jsonable_of_each_step() -> None:
    from pelvimon.analysis import jsonable, steps_json

    steps = _steps(200, seed=3)
    steps[5] = Step("L", 1.0, math.inf, *([math.nan] * 10), gap=True)
    steps[9] = Step("R", np.float64(2.0), 2.2, 0.35, 0.2, 0, 170, *([np.float64(1.5)] * 6),  # type: ignore[arg-type]
                    laterality_confidence=np.float64(0.9))  # fmt: skip
    got = steps_json(steps)
    ref = [jsonable(s.to_dict()) for s in steps]
    assert got == ref
    assert [[(type(v), v) for v in d.values()] for d in got] == [[(type(v), v) for v in d.values()] for d in ref]
    assert [list(d) for d in got] == [list(d) for d in ref]
    assert got[5]["t_fc_s"] is None and type(got[9]["t_ic_s"]) is float and type(got[9]["flight_time_s"]) is int
    assert steps_json([]) == []


def test_summary_counts_and_cadence_follow_the_usable_steps() -> None:
    from pelvimon.dsp.asymmetry import step_is_usable

    steps = _steps(600, seed=4)
    a = analyze_steps(steps, Config())
    p = a.config.asymmetry
    gait_steps = a.gait_steps()
    assert a.n_steps_used() == sum(1 for s in gait_steps if step_is_usable(s, p)) == a.n_steps_used(gait_steps)
    chosen = [s for s in gait_steps if math.isfinite(s.cadence_spm)]
    vals = [s.step_time_s for s in chosen if step_is_usable(s, p)]
    assert a.cadence_spm() == 60.0 / float(np.mean(vals)) == a.cadence_spm(list(gait_steps))
    # without a known side: every step without a gap
    unsure = [Step(**{**s.to_dict(), "laterality_confidence": 0.1}) for s in steps]
    b = analyze_steps(unsure, Config())
    assert b.n_steps_used() == 0
    ok = [s for s in b.gait_steps() if math.isfinite(s.cadence_spm) and not s.gap]
    assert b.cadence_spm() == 60.0 / float(np.mean([s.step_time_s for s in ok]))
    for m, v in b.parts[b.gait].all_steps_stats(list(METRICS)).items():  # type: ignore[index]
        x = np.array([getattr(s, m) for s in b.gait_steps() if not s.gap], dtype=np.float64)
        x = x[np.isfinite(x)]
        assert v == {"n": x.size, "mean": float(x.mean()), "sd": float(x.std(ddof=1))}
