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
