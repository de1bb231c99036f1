"""What a live session shows, without Qt: the state behind the dashboards, and the terminal dashboard.

:class:`LiveState` takes the events of a running session (``SessionEngine.subscribe().drain()``) and keeps
what the live views draw, in preallocated numpy ring buffers: the pelvis angles of the last seconds, the
recent steps per side, the alerts in force, the calibration state and the stream statistics. The Qt window
(``pelvimon.gui.live_window``) and the terminal dashboard below (``pelvimon live --headless``) both read
it, so the two show the same numbers.

:func:`run_headless` drives a terminal dashboard: a ``rich`` live panel on a terminal, plain periodic lines
without one (a pipe, a log file, ``nohup`` over SSH). Ctrl-C ends it cleanly with the recording closed.

Units: angles deg, times s (session time), cadence steps/min, contact time s.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from pelvimon.dsp.records import Alert, Asymmetry, Step

SIDE_COLORS = {"L": "#0072B2", "R": "#E69F00"}
"""Left = blue, right = orange (Okabe-Ito palette, distinguishable with the common colour-vision deficiencies).
Used for every left/right element of every view."""

SIDE_NAMES = {"L": "left", "R": "right"}

CALIBRATION_PROMPTS = {
    "waiting_for_stillness": "Stand still for 5 seconds (calibrating the sensor on your pelvis).",
    "gravity_known": "Thank you. Now start running: the first strides teach the forward direction.",
    "recalibrating": "The sensor moved on your pelvis: keep going, the next strides find its mounting again.",
    "calibrated": "",
}
"""What the runner is asked to do in each state of the mount calibration (``MountCalibration.state_``)."""

ANGLE_WINDOW_S = 10.0
"""Seconds of pelvis angles shown live."""

STEP_WINDOW = 20
"""Steps per side in the rolling means (the default asymmetry window)."""

MIN_LATERALITY_CONFIDENCE = 0.8
"""Steps whose side is less certain than this are left out of the per-side means (as in the asymmetry)."""

# step ring columns
_S_T, _S_LEFT, _S_CPD, _S_CT, _S_CAD, _S_OK, _S_NOGAP = range(7)
_S_WIDTH = 7


class RingBuffer:
    """A fixed-size buffer of rows whose last ``len`` rows are always one contiguous numpy view.

    Every row is written twice (at ``i`` and ``i + capacity``) so that :meth:`view` never copies and no
    array is ever reallocated: appending costs two slice assignments whatever the size.

    Parameters
    ----------
    capacity : int
        Rows kept.
    width : int
        Columns per row.
    """

    def __init__(self, capacity: int, width: int) -> None:
        if capacity < 1 or width < 1:
            raise ValueError(f"RingBuffer needs capacity >= 1 and width >= 1, got {capacity}, {width}")
        self.capacity = int(capacity)
        self.width = int(width)
        self._buf = np.full((2 * self.capacity, self.width), np.nan)
        self._w = 0
        self._n = 0
        self.total = 0
        """Rows ever appended."""

    def __len__(self) -> int:
        return self._n

    def clear(self) -> None:
        self._w = 0
        self._n = 0

    def extend(self, rows: np.ndarray) -> None:
        """Append rows, shape (M, width) (or (width,) for one row); only the last ``capacity`` are kept."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim == 1:
            rows = rows[None, :]
        m = rows.shape[0]
        if m == 0:
            return
        self.total += m
        cap = self.capacity
        if m > cap:
            rows = rows[-cap:]
            m = cap
        i = self._w
        first = min(m, cap - i)
        self._buf[i : i + first] = rows[:first]
        self._buf[i + cap : i + cap + first] = rows[:first]
        rest = m - first
        if rest:
            self._buf[:rest] = rows[first:]
            self._buf[cap : cap + rest] = rows[first:]
        self._w = (i + m) % cap
        self._n = min(self._n + m, cap)

    def view(self) -> np.ndarray:
        """The kept rows, oldest first, shape (len, width): a view, valid until the next :meth:`extend`."""
        end = self._w + self.capacity
        return self._buf[end - self._n : end]


@dataclass(frozen=True)
class SideSummary:
    """One metric on one side: the latest usable step and the mean of the last ``n`` usable steps."""

    latest: float
    mean: float
    n: int


def _harmonic_mean(cadences: np.ndarray) -> float:
    """Cadence of steps given by their cadences: 60 s over their mean step time, steps/min."""
    return float(cadences.size / np.sum(1.0 / cadences))


def _fmt(value: float, digits: int = 1, unit: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}{unit}"


def _mmss(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    s = int(seconds)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


class LiveState:
    """The state the live views draw, fed with engine events.

    Parameters
    ----------
    rate_hz : float
        Highest sample rate expected, Hz (sizes the angle buffer for ``angle_window_s``).
    angle_window_s : float
        Seconds of angles kept.
    step_capacity : int
        Steps kept (about 12 minutes of running at the default).

    Attributes
    ----------
    angles : RingBuffer
        Rows ``(t_s, tilt_deg, obliquity_deg, rotation_deg)``.
    steps : RingBuffer
        Rows ``(t_ic_s, is_left, cpd_deg, contact_time_s, cadence_spm, usable, no_gap)``: usable for the
        left/right comparison (no gap, side known); cadence takes the usable steps, or every one without a
        gap while none is usable.
    recent_steps : deque of Step
        The last few steps, newest last.
    active_alerts : dict of str to Alert
        Alerts in force, by metric.
    alert_log : deque of (Alert, bool)
        Alerts as they started (True) or ended (False), newest last.
    asymmetry : dict of str to Asymmetry
        The latest rolling asymmetry per metric.
    calibration_state : str or None
        The mount calibration's state, None until the pipeline reports its first change (from
        ``waiting_for_stillness``, the state it starts in).
    stats : object or None
        The latest ``EngineStats``.
    status : str
        The latest source status message.
    t_now_s : float
        Latest sample time seen, s (NaN before any).
    n_events : int
        Events ingested.
    """

    def __init__(self, rate_hz: float = 208.0, angle_window_s: float = ANGLE_WINDOW_S, step_capacity: int = 2048):
        self.angle_window_s = float(angle_window_s)
        cap = int(math.ceil(max(rate_hz, 1.0) * angle_window_s * 1.25)) + 64
        self.angles = RingBuffer(cap, 4)
        self.steps = RingBuffer(step_capacity, _S_WIDTH)
        self.recent_steps: deque[Step] = deque(maxlen=8)
        self.active_alerts: dict[str, Alert] = {}
        self.alert_log: deque[tuple[Alert, bool]] = deque(maxlen=50)
        self.asymmetry: dict[str, Asymmetry] = {}
        self.calibration_state: str | None = None
        self.stats: Any = None
        self.status = ""
        self.status_kind = ""
        self.gait_state = ""
        self.t_now_s = math.nan
        self.n_events = 0
        self.alert_listeners: list[Callable[[Alert, bool], None]] = []
        self._dispatch: dict[str, Callable[[Any], None]] = {
            "ImuBatch": self._on_batch,
            "MotionChunk": self._on_motion,
            "Step": self._on_step,
            "AsymmetryUpdate": self._on_asymmetry,
            "AlertEvent": self._on_alert,
            "SourceStatus": self._on_status,
            "CalibrationEvent": self._on_calibration,
            "GaitStateEvent": self._on_gait,
            "EngineStats": self._on_stats,
        }

    # ------------------------------------------------------------------ ingestion
    def ingest(self, events: Iterable[Any]) -> int:
        """Take engine events (any order of the kinds in ``pelvimon.engine.EngineEvent``); returns how many."""
        n = 0
        for ev in events:
            handler = self._dispatch.get(type(ev).__name__)
            if handler is not None:
                handler(ev)
            n += 1
        self.n_events += n
        return n

    def _on_batch(self, batch: Any) -> None:
        if len(batch):
            t = float(batch.t_s[-1])
            if not self.t_now_s >= t:
                self.t_now_s = t

    def _on_motion(self, ev: Any) -> None:
        m = ev.motion
        n = len(m)
        if n == 0:
            return
        rows = np.empty((n, 4))
        rows[:, 0] = m.t_s
        valid = np.asarray(getattr(m, "valid", np.ones(n, dtype=bool)), dtype=bool)
        rows[:, 1] = np.where(valid, m.tilt_deg, np.nan)
        rows[:, 2] = np.where(valid, m.obliquity_deg, np.nan)
        rows[:, 3] = np.where(valid, m.rotation_deg, np.nan)
        self.angles.extend(rows)
        t = float(m.t_s[-1])
        if not self.t_now_s >= t:
            self.t_now_s = t

    def _on_step(self, s: Step) -> None:
        usable = (not s.gap) and s.laterality_confidence >= MIN_LATERALITY_CONFIDENCE
        self.steps.extend(
            np.array(
                [s.t_ic_s, 1.0 if s.side == "L" else 0.0, s.cpd_deg, s.contact_time_s, s.cadence_spm, float(usable),
                 float(not s.gap)]
            )
        )
        self.recent_steps.append(s)

    def _on_asymmetry(self, ev: Any) -> None:
        self.asymmetry = {a.metric: a for a in ev.items}

    def _on_alert(self, ev: Any) -> None:
        if getattr(ev, "at_session_end", False):
            return  # the session ended, not the difference: the alert stays shown as it was at the end
        alert: Alert = ev.alert
        active = getattr(ev, "kind", "started") != "ended" and alert.t_end_s is None
        was = alert.metric in self.active_alerts
        if active:
            self.active_alerts[alert.metric] = alert
        else:
            self.active_alerts.pop(alert.metric, None)
        if active != was:
            self.alert_log.append((alert, active))
            for fn in self.alert_listeners:
                fn(alert, active)

    def _on_status(self, st: Any) -> None:
        self.status = st.message or st.kind
        self.status_kind = st.kind

    def _on_calibration(self, ev: Any) -> None:
        self.calibration_state = str(getattr(ev, "state", ""))

    def _on_gait(self, ev: Any) -> None:
        self.gait_state = str(getattr(ev, "state", ""))

    def _on_stats(self, st: Any) -> None:
        self.stats = st

    # ------------------------------------------------------------------ queries
    @property
    def calibration_prompt(self) -> str:
        """What the runner should do now for the calibration ("" once calibrated, and before any sample).

        The pipeline reports the calibration's state when it changes: until the first report, the samples
        that came are those of its first state (waiting for stillness)."""
        state = self.calibration_state
        if state is None:
            state = "waiting_for_stillness" if math.isfinite(self.t_now_s) else "calibrated"
        return CALIBRATION_PROMPTS.get(state, "")

    def recent_angles(self) -> np.ndarray:
        """Rows ``(t_s, tilt, obliquity, rotation)`` of the last ``angle_window_s`` (a view)."""
        a = self.angles.view()
        if a.shape[0] == 0:
            return a
        t_end = a[-1, 0]
        k = int(np.searchsorted(a[:, 0], t_end - self.angle_window_s, side="left"))
        return a[k:]

    def _usable_steps(self) -> np.ndarray:
        s = self.steps.view()
        return s[s[:, _S_OK] > 0.5]

    def side_summary(self, metric: str, window: int = STEP_WINDOW) -> dict[str, SideSummary]:
        """Latest value and rolling mean per side of ``"cpd_deg"``, ``"contact_time_s"`` or ``"cadence_spm"``."""
        col = {"cpd_deg": _S_CPD, "contact_time_s": _S_CT, "cadence_spm": _S_CAD}[metric]
        s = self._usable_steps()
        out = {}
        for side, flag in (("L", 1.0), ("R", 0.0)):
            v = s[s[:, _S_LEFT] == flag, col]
            v = v[np.isfinite(v)][-window:]
            if v.size == 0:
                out[side] = SideSummary(math.nan, math.nan, 0)
            else:
                mean = _harmonic_mean(v) if col == _S_CAD else float(v.mean())
                out[side] = SideSummary(float(v[-1]), mean, int(v.size))
        return out

    def _cadence_steps(self) -> np.ndarray:
        """The steps cadence is taken from: the usable ones, or, while none has a known side (a sensor
        without a gyroscope), every one without a gap."""
        usable = self._usable_steps()
        if usable.shape[0]:
            return usable
        s = self.steps.view()
        return s[s[:, _S_NOGAP] > 0.5]

    def cadence_now(self, n_steps: int = 8) -> float:
        """Cadence of the last ``n_steps`` steps of :meth:`_cadence_steps` (60 s over their mean step time),
        steps/min (NaN before any)."""
        s = self._cadence_steps()
        c = s[:, _S_CAD]
        c = c[np.isfinite(c)][-n_steps:]
        return _harmonic_mean(c) if c.size else math.nan

    def cadence_trend(self, seconds: float = 120.0, n_steps: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """``(t_ic_s, cadence_spm)`` over the last ``seconds``: at each step of :meth:`_cadence_steps`, the
        cadence of it and the ``n_steps - 1`` before it, as :meth:`cadence_now` gives it at that step (a
        single step's cadence swings with every left/right difference of step time)."""
        s = self._cadence_steps()
        s = s[np.isfinite(s[:, _S_CAD])]
        if s.shape[0] == 0:
            return np.zeros(0), np.zeros(0)
        first = int(np.searchsorted(s[:, _S_T], s[-1, _S_T] - seconds, side="left"))
        s = s[max(first - n_steps + 1, 0):]  # (the kept steps and the ones their windows reach back to)
        first = min(first, n_steps - 1)
        # each kept step's window: it and up to n_steps - 1 steps before it
        i = np.arange(first, s.shape[0])
        lo = np.maximum(i - n_steps + 1, 0)
        step_min = np.concatenate([[0.0], np.cumsum(1.0 / s[:, _S_CAD])])  # running sum of step times, min
        return s[first:, _S_T].copy(), (i + 1 - lo) / (step_min[i + 1] - step_min[lo])

    def step_marks(self, side: str) -> np.ndarray:
        """Initial-contact times of ``side``'s steps within the angle window, s."""
        s = self.steps.view()
        if s.shape[0] == 0 or not math.isfinite(self.t_now_s):
            return np.zeros(0)
        flag = 1.0 if side == "L" else 0.0
        keep = (s[:, _S_LEFT] == flag) & (s[:, _S_T] >= self.t_now_s - self.angle_window_s)
        return s[keep, _S_T].copy()

    def stat(self, name: str, default: float = math.nan) -> float:
        """A field of the latest ``EngineStats`` (``loss_pct``, ``battery_pct``, ``recording_s``...)."""
        v = getattr(self.stats, name, None) if self.stats is not None else None
        return default if v is None else float(v)

    def recording_text(self) -> str:
        """How long the session has been recorded ("mm:ss"), or "off" while no file is written and none was."""
        st = self.stats
        if st is None or (st.recording_path is None and not st.recording_s):
            return "off"
        return _mmss(st.recording_s)

    def alert_text(self) -> str:
        """The plain-words message of every alert in force, one per line ("" when none)."""
        return "\n".join(a.message for a in sorted(self.active_alerts.values(), key=lambda a: a.t_start_s))

    @property
    def stream_warning(self) -> str:
        """What is wrong with the stream now, for the runner ("" when nothing): the sensor is away (the figures
        shown are those from before), or the analysis warned (the sensor turned on the body)."""
        if self.status_kind in ("disconnected", "reconnecting"):
            return f"SENSOR LOST, figures from before: {self.status}"
        if self.status_kind == "warning":
            return f"WARNING: {self.status}"
        return ""

    def summary_line(self) -> str:
        """One plain line with the key numbers (for logs and terminals without a TTY)."""
        ang = self.recent_angles()
        last = ang[-1] if ang.shape[0] else np.full(4, np.nan)
        cpd = self.side_summary("cpd_deg")
        ct = self.side_summary("contact_time_s")
        parts = [
            f"t {_fmt(self.t_now_s, 1)} s",
            f"tilt {_fmt(last[1])} obl {_fmt(last[2])} rot {_fmt(last[3])} deg",
            f"cadence {_fmt(self.cadence_now(), 0)} spm",
            f"CPD L {_fmt(cpd['L'].latest)} (mean {_fmt(cpd['L'].mean)}) R {_fmt(cpd['R'].latest)} "
            f"(mean {_fmt(cpd['R'].mean)}) deg",
            f"contact L {_fmt(ct['L'].mean * 1000, 0)} R {_fmt(ct['R'].mean * 1000, 0)} ms",
            f"loss {_fmt(self.stat('loss_pct'), 1)} %",
            f"rec {self.recording_text()}",
        ]
        if self.stream_warning:
            parts.insert(1, self.stream_warning)
        if self.calibration_prompt:
            parts.append(self.calibration_prompt)
        if self.active_alerts:
            parts.append("ALERT: " + " / ".join(a.message for a in self.active_alerts.values()))
        return " | ".join(parts)


# ---------------------------------------------------------------------------------------------------------
# terminal dashboard
# ---------------------------------------------------------------------------------------------------------


def render_rich(state: LiveState, title: str = "pelvimon live") -> Any:
    """A ``rich`` renderable of the state: angles, steps, per-side metrics, cadence, alerts, stream."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    lc, rc = SIDE_COLORS["L"], SIDE_COLORS["R"]
    ang = state.recent_angles()
    last = ang[-1] if ang.shape[0] else np.full(4, np.nan)

    top = Table.grid(padding=(0, 3))
    top.add_column()
    top.add_column()
    top.add_column()
    top.add_column()
    top.add_row(
        Text(f"tilt {_fmt(last[1])}°", style="bold"),
        Text(f"obliquity {_fmt(last[2])}°", style="bold"),
        Text(f"rotation {_fmt(last[3])}°", style="bold"),
        Text(f"cadence {_fmt(state.cadence_now(), 0)} spm", style="bold"),
    )

    per_side = Table(title="per step, by stance side", expand=False, show_edge=False)
    per_side.add_column("")
    per_side.add_column("LEFT latest", style=lc, justify="right")
    per_side.add_column("LEFT mean", style=lc, justify="right")
    per_side.add_column("RIGHT latest", style=rc, justify="right")
    per_side.add_column("RIGHT mean", style=rc, justify="right")
    for metric, label, scale, digits, unit in (
        ("cpd_deg", "pelvic drop (CPD)", 1.0, 1, "°"),
        ("contact_time_s", "contact time", 1000.0, 0, " ms"),
        ("cadence_spm", "cadence", 1.0, 0, " spm"),
    ):
        s = state.side_summary(metric)
        per_side.add_row(
            label,
            _fmt(s["L"].latest * scale, digits, unit),
            _fmt(s["L"].mean * scale, digits, unit),
            _fmt(s["R"].latest * scale, digits, unit),
            _fmt(s["R"].mean * scale, digits, unit),
        )

    steps = Text("last steps: ")
    for st in list(state.recent_steps)[-6:]:
        color = SIDE_COLORS.get(st.side, "white")
        steps.append(f"{st.side} {_fmt(st.cpd_deg)}°/{_fmt(st.contact_time_s * 1000, 0)}ms  ", style=color)

    if state.active_alerts:
        alerts: Any = Panel(Text(state.alert_text(), style="bold white"), style="on red", title="ALERT")
    else:
        alerts = Text("no alert", style="green")

    stream = Text(
        f"{state.status}   loss {_fmt(state.stat('loss_pct'), 1)} %   battery "
        f"{_fmt(state.stat('battery_pct'), 0)} %   recording {state.recording_text()}   "
        f"t {_fmt(state.t_now_s, 1)} s",
        style="dim",
    )
    parts: list[Any] = [top, per_side, steps, alerts, stream]
    if state.calibration_prompt:
        parts.insert(0, Panel(Text(state.calibration_prompt, style="bold"), style="yellow"))
    if state.stream_warning:  # (on top)
        parts.insert(0, Panel(Text(state.stream_warning, style="bold white"), style="on dark_orange3"))
    return Panel(Group(*parts), title=title)


def engine_finished(engine: Any) -> bool:
    """The engine's session is over (its worker ended, normally or with an error)."""
    fin = getattr(engine, "finished", None)
    if fin is not None:
        return bool(fin.is_set())
    return not engine.running


def run_headless(
    engine: Any,
    *,
    seconds: float | None = None,
    out: TextIO | None = None,
    tty: bool | None = None,
    refresh_hz: float = 4.0,
    line_every_s: float = 5.0,
    title: str = "pelvimon live",
    rate_hz: float = 208.0,
) -> LiveState:
    """Run a started-or-not engine with a terminal dashboard until ``seconds`` pass, it ends, or Ctrl-C.

    Parameters
    ----------
    engine : SessionEngine
        Started here if it is not running; always stopped on return (the recording is closed).
    seconds : float, optional
        Wall-clock seconds to run (None: until the source ends or Ctrl-C).
    out : text stream, optional
        Where to write (default stdout).
    tty : bool, optional
        Force the rich live panel (True) or plain lines (False); default: whether ``out`` is a terminal.
    refresh_hz : float
        Panel refresh rate.
    line_every_s : float
        Seconds between plain lines without a terminal.

    Returns
    -------
    LiveState
        The final state (for the caller's closing summary).
    """
    stream = out if out is not None else sys.stdout
    use_tty = stream.isatty() if tty is None else tty
    state = LiveState(rate_hz=rate_hz)
    sub = engine.subscribe()
    if not engine.running:
        engine.start()
    t0 = time.monotonic()
    period = 1.0 / refresh_hz

    def log_alert(alert: Alert, started: bool) -> None:
        if not use_tty:
            word = "ALERT" if started else "alert ended"
            stream.write(f"{word}: {alert.message}\n")
            stream.flush()

    state.alert_listeners.append(log_alert)
    last_line = ""  # the last plain line written

    def done() -> bool:
        if seconds is not None and time.monotonic() - t0 >= seconds:
            return True
        return engine_finished(engine)

    try:
        if use_tty:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=stream, force_terminal=True)
            with Live(render_rich(state, title), console=console, refresh_per_second=refresh_hz) as live:
                while not done():
                    time.sleep(period)
                    state.ingest(sub.drain())
                    live.update(render_rich(state, title))
        else:
            next_line = t0 + line_every_s
            prompt = ""
            while not done():
                time.sleep(period)
                state.ingest(sub.drain())
                if state.calibration_prompt != prompt:  # at once: the stand is over before the next line
                    prompt = state.calibration_prompt
                    if prompt:
                        stream.write(prompt + "\n")
                        stream.flush()
                if time.monotonic() >= next_line:
                    next_line += line_every_s
                    last_line = state.summary_line()
                    stream.write(last_line + "\n")
                    stream.flush()
    except KeyboardInterrupt:
        stream.write("\nstopping...\n")
    finally:
        engine.stop()
        state.ingest(sub.drain())
    if not use_tty and state.n_events and not getattr(engine, "error", None):
        final = state.summary_line()
        if final != last_line:  # (not the same line again when the session ended right after one)
            stream.write(final + "\n")
    stream.flush()
    return state
