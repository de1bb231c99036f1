"""The Qt-free state behind the live views: ring buffers, per-side summaries, alerts, terminal dashboard."""

from __future__ import annotations

import dataclasses
import io
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from _feed import FeedEngine, sim_events  # noqa: E402

from pelvimon.dashboard import CALIBRATION_PROMPTS, LiveState, RingBuffer, render_rich, run_headless  # noqa: E402
from pelvimon.dsp.records import Step  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(1, 50),
    chunks=st.lists(st.integers(0, 120), min_size=1, max_size=30),
)
def test_ring_buffer_view_is_the_last_rows_in_order(capacity: int, chunks: list[int]) -> None:
    ring = RingBuffer(capacity, 2)
    fed = np.zeros((0, 2))
    k = 0
    for n in chunks:
        rows = np.column_stack([np.arange(k, k + n), -np.arange(k, k + n)]).astype(float)
        k += n
        ring.extend(rows)
        fed = np.vstack([fed, rows])
        np.testing.assert_array_equal(ring.view(), fed[-capacity:] if len(fed) else fed)
    assert ring.total == k


def test_ring_buffer_never_reallocates() -> None:
    ring = RingBuffer(100, 3)
    buf = ring._buf
    for _ in range(50):
        ring.extend(np.random.default_rng(0).normal(size=(37, 3)))
    assert ring._buf is buf


def _ingested() -> tuple[LiveState, tuple]:
    events = sim_events()
    state = LiveState(rate_hz=208.0)
    state.ingest(events[:-20])  # before the final flush, which ends the alerts
    return state, events[:-20]


def test_angles_are_what_the_engine_sent() -> None:
    state, events = _ingested()
    motions = [e.motion for e in events if type(e).__name__ == "MotionChunk"]
    t = np.concatenate([m.t_s for m in motions])
    obl = np.concatenate([np.where(m.valid, m.obliquity_deg, np.nan) for m in motions])
    a = state.recent_angles()
    n = a.shape[0]
    assert n > 0.9 * 208 * state.angle_window_s
    np.testing.assert_array_equal(a[:, 0], t[-n:])
    np.testing.assert_array_equal(a[:, 2], obl[-n:])
    assert a[-1, 0] - a[0, 0] <= state.angle_window_s


def test_side_summaries_match_the_steps() -> None:
    state, events = _ingested()
    steps = [e for e in events if isinstance(e, Step)]
    ok = [s for s in steps if not s.gap and s.laterality_confidence >= 0.8 and math.isfinite(s.cpd_deg)]
    cpd = state.side_summary("cpd_deg")
    for side in ("L", "R"):
        vals = [s.cpd_deg for s in ok if s.side == side][-20:]
        assert cpd[side].n == len(vals)
        assert cpd[side].mean == np.mean(vals)
        assert cpd[side].latest == vals[-1]
    # the simulated runner: 8 deg in left stance, 4 deg in right stance
    assert abs(cpd["L"].mean - 8.0) < 1.0 and abs(cpd["R"].mean - 4.0) < 1.0
    assert 160 < state.cadence_now() < 180


def test_cadence_does_not_need_the_side() -> None:
    """A sensor without a gyroscope (Polar H10) gives steps of unknown side (confidence 0.5): no per-side
    figures, but the cadence, from every step without a gap."""
    _, events = _ingested()
    steps = [dataclasses.replace(e, laterality_confidence=0.5) for e in events if isinstance(e, Step)]
    state = LiveState(rate_hz=208.0)
    state.ingest(steps)
    assert state.side_summary("cpd_deg")["L"].n == 0
    last = [s for s in steps if not s.gap][-8:]
    assert state.cadence_now() == pytest.approx(60.0 / np.mean([s.step_time_s for s in last]))
    t, c = state.cadence_trend()
    assert t.size > 20


def test_the_cadence_trend_is_the_cadence_of_the_last_8_steps_at_each_step() -> None:
    _, events = _ingested()
    steps = [e for e in events if isinstance(e, Step)]
    state = LiveState(rate_hz=208.0)
    state.ingest(steps)
    t, c = state.cadence_trend(seconds=30.0)
    assert t[-1] - t[0] <= 30.0 and t.size > 40
    assert c[-1] == pytest.approx(state.cadence_now())
    used = state._cadence_steps()
    for k in (0, t.size // 2, t.size - 1):
        j = int(np.flatnonzero(used[:, 0] == t[k])[0])
        window = used[max(j - 7, 0) : j + 1, 4]  # (the steps' cadence column)
        assert c[k] == pytest.approx(8 / np.sum(1.0 / window))
    # smoother than single steps: the runner's left/right step times differ
    single = used[np.isin(used[:, 0], t), 4]
    assert np.std(np.diff(c)) < 0.5 * np.std(np.diff(single))


def test_alerts_start_and_end() -> None:
    events = sim_events()
    state = LiveState()
    seen: list[tuple[str, bool]] = []
    state.alert_listeners.append(lambda a, on: seen.append((a.metric, on)))
    state.ingest(events[:-20])
    assert "cpd_deg" in state.active_alerts
    assert "LEFT" in state.alert_text()
    state.ingest(events[-20:])  # end of session: the session ended, not the difference
    assert "cpd_deg" in state.active_alerts and ("cpd_deg", False) not in seen
    closed = [e for e in events[-20:] if type(e).__name__ == "AlertEvent" and e.kind == "ended"]
    assert closed and all(e.at_session_end for e in closed)
    ended = dataclasses.replace(closed[0], at_session_end=False)  # the difference went away
    state.ingest([ended])
    assert state.active_alerts == {} and ("cpd_deg", True) in seen and ("cpd_deg", False) in seen


def test_calibration_prompt_follows_the_pipeline() -> None:
    events = sim_events()
    cal = [e for e in events if type(e).__name__ == "CalibrationEvent"]
    state = LiveState()
    assert state.calibration_prompt == ""  # no sample yet (connecting)
    # the pipeline reports changes only: before its first, the runner is asked to stand still
    first = next(i for i, e in enumerate(events) if type(e).__name__ == "ImuBatch")
    assert all(type(e).__name__ != "CalibrationEvent" for e in events[: first + 1])
    state.ingest(events[: first + 1])
    assert "Stand still" in state.calibration_prompt
    assert cal[0].state == "gravity_known"
    state.ingest([cal[0]])
    assert "start running" in state.calibration_prompt
    state.ingest(cal)
    assert cal[-1].state == "calibrated"
    assert state.calibration_prompt == ""


def test_a_sensor_that_moved_mid_run_asks_to_keep_going_not_to_stand() -> None:
    """The sensor turned on the body mid-run: the engine's events from a run turned at 45 s bring the prompt
    that the next strides find the mounting again (no one is asked to stand still), then none once found."""
    from scipy.spatial.transform import Rotation

    from pelvimon.engine import CalibrationEvent, SessionAnalyzer
    from pelvimon.firmware_protocols.batch import ImuBatch
    from pelvimon.sensors.simulator import SimParams, simulate

    b = simulate(SimParams(seconds=80.0, gait="run", seed=22)).batch
    k = int(45.0 * 200)
    turn = Rotation.from_euler("z", 180, degrees=True)
    turned = ImuBatch(t_s=b.t_s, acc_mps2=np.vstack([b.acc_mps2[:k], turn.apply(b.acc_mps2[k:])]),
                      gyr_rads=np.vstack([b.gyr_rads[:k], turn.apply(b.gyr_rads[k:])]), time_base="session")
    an = SessionAnalyzer(200.0)
    events = [e for a in range(0, len(turned), 400) for e in an.feed(turned.slice(a, a + 400))]
    states = [e.state for e in events if isinstance(e, CalibrationEvent)]
    assert states[-3:] == ["calibrated", "recalibrating", "calibrated"]
    state = LiveState()
    i = next(i for i, e in enumerate(events) if isinstance(e, CalibrationEvent) and e.state == "recalibrating")
    state.ingest(events[: i + 1])
    assert state.calibration_prompt.startswith("The sensor moved on your pelvis: keep going")
    state.ingest(events[i + 1 :])
    assert state.calibration_prompt == ""


def test_headless_without_tty_prints_lines_and_stops_the_engine() -> None:
    eng = FeedEngine()
    out = io.StringIO()
    eng_events = sim_events()

    # push everything up front; the dashboard drains it during its first refresh
    def start() -> None:
        FeedEngine.start(eng)
        eng.push(list(eng_events[:-20]))

    eng.start = start  # type: ignore[method-assign]
    state = run_headless(eng, seconds=0.6, out=out, tty=False, refresh_hz=20, line_every_s=0.2)
    text = out.getvalue()
    assert eng.stopped == 1
    assert "ALERT: Left stance" in text
    assert "cadence" in text and "CPD L" in text
    assert len(text.strip().splitlines()) >= 3
    assert state.active_alerts


def test_headless_without_tty_closes_with_the_final_line_once() -> None:
    """After the engine stops, the final state's line is written, unless the last periodic line already
    said the same (a session that ends right after a line, or whose numbers stood still)."""
    events = list(sim_events())

    def run(every_s: float) -> tuple[list[str], list[str], str]:
        eng = FeedEngine()

        def start() -> None:
            FeedEngine.start(eng)
            eng.push(events)

        eng.start = start  # type: ignore[method-assign]
        before: list[str] = []  # lines written while the engine ran, and after it stopped
        after: list[str] = []

        class Out(io.StringIO):
            def write(self, text: str) -> int:
                (after if eng.stopped else before).extend(text.splitlines())
                return len(text)

        state = run_headless(eng, seconds=0.5, out=Out(), tty=False, refresh_hz=20, line_every_s=every_s)
        return before, after, state.summary_line()

    before, after, final = run(0.1)  # every state after the first refresh is the same
    assert before and before[-1] == final
    assert after == []
    before, after, final = run(100.0)  # no periodic line came
    assert not [ln for ln in before if ln.startswith("t ")]
    assert after == [final]


def test_headless_without_tty_prints_the_calibration_prompt_at_once() -> None:
    """Plain lines come every few seconds, but the stand lasts five: the prompt is printed as it comes."""
    events = list(sim_events())
    k = next(i for i, e in enumerate(events) if type(e).__name__ == "CalibrationEvent")
    prompt = CALIBRATION_PROMPTS[events[k].state]  # (the simulated stand is found by itself: "start running")
    assert prompt
    eng = FeedEngine()

    def start() -> None:
        FeedEngine.start(eng)
        eng.push(events[: k + 1])

    eng.start = start  # type: ignore[method-assign]
    out = io.StringIO()
    run_headless(eng, seconds=0.4, out=out, tty=False, refresh_hz=20, line_every_s=100.0)
    assert out.getvalue().splitlines()[0] == prompt


def test_rich_panel_renders() -> None:
    from rich.console import Console

    state, _ = _ingested()
    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    console.print(render_rich(state))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "pelvic drop" in text and "ALERT" in text and "LEFT" in text


def test_a_lost_sensor_and_a_warning_are_shown_with_the_figures() -> None:
    """While the sensor is away the figures are those from before it went: the line says so, until it is
    back; an analysis warning (the sensor turned on the body) is shown too."""
    from pelvimon.sensors.source import SourceStatus

    state = LiveState()
    state.ingest(sim_events()[:200])
    assert "SENSOR LOST" not in state.summary_line()
    state.ingest([SourceStatus("disconnected", 20.0, "Movesense: link lost")])
    assert "SENSOR LOST, figures from before: Movesense: link lost" in state.summary_line()
    state.ingest([SourceStatus("reconnecting", 20.1, "reconnecting in 1 s")])
    assert "SENSOR LOST, figures from before: reconnecting in 1 s" in state.summary_line()
    assert "SENSOR LOST" in str(render_rich(state).renderable.renderables[0].renderable)
    state.ingest([SourceStatus("connected", 23.0, "reconnected to Movesense")])
    assert "SENSOR LOST" not in state.summary_line()
    state.ingest([SourceStatus("warning", 40.0, "the sensor seems to have turned on the body")])
    assert "WARNING: the sensor seems to have turned on the body" in state.summary_line()


def test_a_session_not_recorded_says_recording_off() -> None:
    """With --no-record the status read "rec 00:00", as if a file were being written."""
    from pelvimon.engine import EngineStats

    state = LiveState()
    state.ingest([EngineStats(12.0, 2400, 0, 0.0, 30, None, 0.0, None)])
    assert "| rec off" in state.summary_line() and "recording off" in str(render_rich(state).renderable.renderables[-1])
    state.ingest([EngineStats(65.0, 13000, 0, 0.0, 160, None, 65.0, "s.mcap")])
    assert "| rec 01:05" in state.summary_line() and state.recording_text() == "01:05"
