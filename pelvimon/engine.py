"""The live engine: source -> decoder -> dsp -> recorder -> any number of consumers.

One :class:`SessionEngine` runs a session: it opens the :class:`~pelvimon.sensors.source.Source`, feeds
every batch through the streaming analysis (:class:`SessionAnalyzer`: gait pipeline, asymmetry, alerts),
writes everything to the session file as it happens, and hands the results to subscribers. It runs in a
worker thread with its own asyncio loop (``start``/``stop``, for the GUI) or in the caller's thread
(``run``, for the terminal commands). Subscribers drain their bounded queue without blocking (the GUI does
so from a 30 Hz timer); a subscriber that falls behind loses its oldest events, counted, never the
recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pelvimon.analysis import StepTracker, moved_steps_out
from pelvimon.dsp.alerts import AlertEvent, AlertMonitor
from pelvimon.dsp.events import StateChange
from pelvimon.dsp.orientation import PelvisMotion
from pelvimon.dsp.pipeline import CalibrationChange, GaitPipeline, MountMove, MountMoved, mount_moves_of
from pelvimon.dsp.records import Alert, Asymmetry, Step
from pelvimon.errors import PelvimonError, is_disk_full
from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.session_file import SessionWriter
from pelvimon.sensors.source import RawNotification, Source, SourceInfo, SourceStatus

_TAIL_WAIT_S = 0.5
"""After the time limit, how long to wait for the rest of the last notification's samples, s (they are
normally already decoded; the wait ends at the next notification)."""
_LIMIT_POLL_S = 0.05
"""How often a session with a time limit checks the source's clock while no event comes, s (real time)."""
_LIMIT_GRACE_S = 0.5
"""How far past its time limit a session's clock may run with no event before the session ends without
one, s: samples arrive some tens of milliseconds after their time, and while they stream, they end it."""

log = logging.getLogger(__name__)


# -- events handed to subscribers ------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class MotionChunk:
    """Per-sample pelvis angles of one chunk (for the scrolling plots)."""

    motion: PelvisMotion


@dataclass(frozen=True)
class AsymmetryUpdate:
    """The current left/right asymmetries (one per metric with enough steps) at session time ``t_s``."""

    t_s: float
    items: list[Asymmetry]


@dataclass(frozen=True)
class CalibrationEvent:
    """The sensor-to-pelvis calibration changed state (``waiting_for_stillness``, ``gravity_known``,
    ``calibrated``); ``mount_quat_wxyz`` once calibrated."""

    t_s: float
    state: str
    mount_quat_wxyz: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class GaitStateEvent:
    """The gait state changed (``standing``, ``walking``, ``running``)."""

    t_s: float
    state: str


@dataclass(frozen=True)
class EngineStats:
    """Counters of the session so far.

    ``loss_pct`` counts samples known lost against samples received; ``dropped`` counts events this
    subscriber lost by falling behind (filled per subscription on drain).
    """

    t_s: float
    n_samples: int
    n_lost: int
    loss_pct: float
    n_steps: int
    battery_pct: int | None
    recording_s: float
    recording_path: str | None
    dropped: int = 0


EngineEvent = (
    ImuBatch
    | MotionChunk
    | Step
    | AsymmetryUpdate
    | AlertEvent
    | SourceStatus
    | CalibrationEvent
    | GaitStateEvent
    | EngineStats
)


class Subscription:
    """A bounded, thread-safe queue of engine events for one consumer."""

    def __init__(self, maxlen: int = 20000) -> None:
        self._q: deque[EngineEvent] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.dropped = 0

    def push(self, ev: EngineEvent) -> None:
        with self._lock:
            if len(self._q) == self._q.maxlen:
                self.dropped += 1
            self._q.append(ev)

    def drain(self) -> list[EngineEvent]:
        """Everything queued since the last drain (never blocks for long)."""
        with self._lock:
            out = list(self._q)
            self._q.clear()
        return out


# -- the streaming analysis ----------------------------------------------------------------------------
class SessionAnalyzer:
    """Gait pipeline -> asymmetry -> alerts, streaming: the analysis every live command shares (the
    asymmetry and alert rule is :class:`pelvimon.analysis.StepTracker`, as offline).

    Parameters
    ----------
    rate_hz : float
        Nominal sample rate, Hz.
    config : pelvimon.config.Config, optional
        Asymmetry and alert settings (defaults if None).
    """

    def __init__(self, rate_hz: float, config: Any = None) -> None:
        if config is None:
            from pelvimon.config import load_config

            config = load_config(None)
        self.config = config
        self.pipeline = GaitPipeline(rate_hz)
        self.tracker = StepTracker(config)
        self.steps: list[Step] = []
        self.t_s = 0.0
        self._moves: list[MountMove] = []  # the sensor turned on the body: the steps since are out of the windows

    @property
    def alerts(self) -> AlertMonitor:
        return self.tracker.alerts

    def _after(self, out: Any) -> list[EngineEvent]:
        events: list[EngineEvent] = []
        n_moves = len(self._moves)
        self._moves = list(mount_moves_of(out.events, self._moves))  # (with when the mounting was found anew)
        moves = self._moves[n_moves:]
        for ev in out.events:
            if isinstance(ev, CalibrationChange):
                q = None
                if ev.state == "calibrated":
                    m = getattr(self.pipeline.calibration_, "mount_quat_wxyz_", None)
                    q = None if m is None else (float(m[0]), float(m[1]), float(m[2]), float(m[3]))
                events.append(CalibrationEvent(ev.t_s, ev.state, q))
            elif isinstance(ev, MountMoved):
                events.append(SourceStatus("warning", ev.t_s, mount_moved_message(ev.angle_deg)))
            elif isinstance(ev, StateChange):
                events.append(GaitStateEvent(float(ev.t_s), str(ev.state)))
            # (a GapEvent: the source's gap status has said it)
        if out.motion is not None and len(out.motion.t_s):
            events.append(MotionChunk(out.motion))
        for step in out.steps:
            self.steps.append(step)
            events.append(step)
            # (in a move's span, out of the windows, as in the analysis afterwards)
            (tracked,) = moved_steps_out([step], self._moves)
            t, current, alert_events = self.tracker.push(tracked)
            events.append(AsymmetryUpdate(t, list(current)))
            events.extend(alert_events)
        if moves:
            # the steps since the move began came before it showed: they leave the windows now
            current, alert_events = self.tracker.drop_since(min(m.steps_out_from_s for m in moves), self.t_s)
            events.append(AsymmetryUpdate(self.t_s, list(current)))
            events.extend(alert_events)
        return events

    def feed(self, batch: ImuBatch) -> list[EngineEvent]:
        """One session-time batch in; the events it produced out."""
        if len(batch):
            self.t_s = float(batch.t_s[-1])
        out = self.pipeline.update(batch)
        self.pipeline.drain_steps()
        return self._after(out)

    def finish(self) -> list[EngineEvent]:
        """Flush the look-ahead and end the active alerts (end of the session)."""
        out = self.pipeline.finish()
        self.pipeline.drain_steps()
        events = self._after(out)
        events += self.alerts.finish(self.t_s)
        return events


# -- where session files go ------------------------------------------------------------------------------
def data_dir() -> Path:
    """The user data folder for session files: ``$PELVIMON_DATA_DIR``, else the platform's convention."""
    import os
    import sys

    env = os.environ.get("PELVIMON_DATA_DIR")
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "pelvimon"
    if sys.platform.startswith("win"):
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "pelvimon"
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "pelvimon"


def new_session_path(name: str = "", folder: Path | None = None) -> Path:
    """A fresh file name ``YYYYmmdd-HHMMSS[-name].mcap`` in ``folder`` (default: the sessions folder)."""
    folder = folder if folder is not None else data_dir() / "sessions"
    folder.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name.strip())[:60].strip("-.")
    stem = time.strftime("%Y%m%d-%H%M%S") + (f"-{safe}" if safe else "")
    path = folder / f"{stem}.mcap"
    n = 2
    while path.exists():
        path = folder / f"{stem}-{n}.mcap"
        n += 1
    return path


def mount_moved_message(angle_deg: float) -> str:
    """What a runner is told when the sensor seems to have turned on the body (``MountMoved``)."""
    return (
        f"the sensor seems to have turned on the body (the running direction moved {angle_deg:.0f}° from the "
        "calibrated one): its mounting is found again from the next strides of steady gait; until then sides "
        "and angles are not known and the steps are left out of the left/right comparison"
    )


# -- the engine -------------------------------------------------------------------------------------------
class SessionEngine:
    """Runs one session: source -> analysis -> recorder -> subscribers.

    Parameters
    ----------
    source : Source or callable returning a Source
        Where samples come from (built by the caller; the engine only opens and closes it).
    record_to : Path, optional
        Session file to write (None: no recording until :meth:`set_recording` turns it on, which then
        picks a fresh name in the sessions folder).
    config : pelvimon.config.Config, optional
        Analysis settings.
    name : str
        Session name used for automatic file names.
    seconds : float, optional
        End the session after this much session time.
    stats_interval_s : float
        Session time between two :class:`EngineStats` events.
    """

    def __init__(
        self,
        source: Source | Callable[[], Source],
        *,
        record_to: str | Path | None = None,
        config: Any = None,
        name: str = "",
        seconds: float | None = None,
        stats_interval_s: float = 0.25,
        overwrite: bool = False,
    ) -> None:
        self._source_arg = source
        self.record_to = Path(record_to) if record_to is not None else None
        self.overwrite = overwrite
        self.config = config
        self.name = name
        self.seconds = seconds
        self.stats_interval_s = stats_interval_s
        self._subs: list[Subscription] = []
        self._subs_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop_requested = False
        self._want_recording = record_to is not None
        self._writer: SessionWriter | None = None
        self.recordings: list[Path] = []
        self._rec_started_t: float | None = None
        self._rec_accum_s = 0.0
        self.analyzer: SessionAnalyzer | None = None
        self.info: SourceInfo | None = None
        self.error: str | None = None
        self.running = False
        self.finished = threading.Event()
        self._pending: asyncio.Future[Any] | None = None  # the next event, awaited across time-limit checks
        self._source_ended = False  # the source ended the session (not the time limit, nor a stop)
        self._last_stopped = ""  # the message of the source's last "stopped" status
        self.ended_by_source: str | None = None
        """Why a sensor's stream ended the session by itself (gave up reconnecting...), None otherwise (the
        time limit, a stop, or a file that came to its end)."""
        self.t_s = 0.0
        self.n_samples = 0
        self.n_lost = 0
        self.n_raw = 0
        self._last_stats_t = -math.inf

    # -- consumers ---------------------------------------------------------------------------------------
    def subscribe(self, maxlen: int = 20000) -> Subscription:
        sub = Subscription(maxlen)
        with self._subs_lock:
            self._subs.append(sub)
        return sub

    def _emit(self, ev: EngineEvent) -> None:
        with self._subs_lock:
            subs = list(self._subs)
        for s in subs:
            s.push(ev)

    # -- recording -----------------------------------------------------------------------------------------
    @property
    def recording_path(self) -> Path | None:
        return self._writer.path if self._writer is not None else None

    @property
    def recording_s(self) -> float:
        live = self.t_s - self._rec_started_t if self._rec_started_t is not None else 0.0
        return self._rec_accum_s + max(live, 0.0)

    def set_recording(self, on: bool) -> None:
        """Turn recording on or off (thread-safe). Turning it on again starts a new file."""
        self._want_recording = bool(on)
        if self._loop is not None and self.running:
            self._loop.call_soon_threadsafe(self._apply_recording)

    def _apply_recording(self) -> None:
        if self._want_recording and self._writer is None and self.info is not None:
            first = self.record_to is not None and not self.recordings
            path = self.record_to if first else None
            try:
                if path is None:
                    folder = self.record_to.parent if self.record_to is not None else None
                    path = new_session_path(self.name or (self.record_to.stem if self.record_to else ""), folder)
                path.parent.mkdir(parents=True, exist_ok=True)
                # (an existing file given with --overwrite is replaced only now, once the sensor streams)
                self._writer = SessionWriter(path, self.info, extra={"name": self.name},
                                             overwrite=first and self.overwrite)
            except OSError as exc:
                if is_disk_full(exc):
                    raise
                why = exc.strerror or str(exc)
                if path is None:  # the sessions folder could not be made
                    folder = self.record_to.parent if self.record_to is not None else data_dir() / "sessions"
                    raise PelvimonError(
                        f"cannot create the sessions folder {folder} ({why}): set PELVIMON_DATA_DIR to a folder "
                        "you can write to, name the file with -o FILE, or turn recording off (--no-record)"
                    ) from None
                raise PelvimonError(
                    f"cannot write the session file {path}: {why}; check the folder and its permissions"
                ) from None
            self.recordings.append(path)
            self._rec_started_t = self.t_s
            log.info("recording to %s", path)
        elif not self._want_recording and self._writer is not None:
            self._close_writer()

    def _close_writer(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        if self._rec_started_t is not None:
            self._rec_accum_s += max(self.t_s - self._rec_started_t, 0.0)
        self._rec_started_t = None

    # -- lifetime --------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Run the session in a worker thread (returns at once)."""
        if self._thread is not None:
            raise RuntimeError("SessionEngine.start: already started")
        self._thread = threading.Thread(target=self._thread_main, name="pelvimon-engine", daemon=True)
        self._thread.start()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # noqa: BLE001 - reported through .error, never lost in a thread
            self.error = self.error or f"{type(exc).__name__}: {exc}"

    def stop(self, timeout: float = 5.0) -> None:
        """End the session: stop the source, flush the analysis, close the recording."""
        self._stop_requested = True
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not task.done():
            loop.call_soon_threadsafe(task.cancel)
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Run the session in the calling thread until the source ends, ``seconds`` pass or Ctrl-C."""
        asyncio.run(self._main())
        if self.error:
            raise RuntimeError(self.error)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        try:
            await self._session()
        except asyncio.CancelledError:
            if not self._stop_requested:
                raise
        except Exception as exc:
            self.error = str(exc) or type(exc).__name__
            self._emit(SourceStatus("stopped", self.t_s, f"error: {self.error}"))
            raise
        finally:
            self._finish()

    async def _session(self) -> None:
        source = self._source_arg() if callable(self._source_arg) and not isinstance(self._source_arg, Source) else self._source_arg
        assert isinstance(source, Source)
        self.running = True
        async with source:
            self.info = source.info
            self.analyzer = SessionAnalyzer(source.info.rate_hz or 100.0, self.config)
            self._apply_recording()
            events = aiter(source)
            tail = False  # the time limit was reached within a notification's samples: take the rest of them
            # with a time limit and a source in time, the next event is awaited in slices: a link that is
            # down (no event for as long as it takes to come back) must not hold the session past its end
            in_time = source.now_s() is not None
            timed = self.seconds is not None and in_time
            try:
                while (ev := await self._next_event(events, source, tail=tail, timed=timed)) is not None:
                    if tail and isinstance(ev, RawNotification):
                        break  # (not written: the recording ends with the samples of every notification it holds)
                    self._handle(ev)
                    if self._stop_requested:
                        break
                    if not tail and self.seconds is not None and self.t_s >= self.seconds:
                        if not self.n_raw:
                            break
                        # a notification may decode to several batches (merged streams, a gap): the file holds
                        # the notification, so it must hold all of them, or a replay would give more
                        tail = True
            finally:
                pending, self._pending = self._pending, None
                if pending is not None:  # (the limit came while the link was down)
                    pending.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await pending
            if in_time and self._source_ended and not self._stop_requested:
                self.ended_by_source = self._last_stopped or "the sensor's stream ended"

    async def _next_event(self, events: AsyncIterator[Any], source: Source, *, tail: bool, timed: bool) -> Any:
        """The next event; None at the end of the source, when the rest of the last notification has come
        (``tail``), or when the time limit passes while none comes (``timed``: a source in time whose link
        is down)."""
        try:
            if tail:
                return await asyncio.wait_for(anext(events), _TAIL_WAIT_S)
            if not timed:
                return await anext(events)
            while True:
                self._pending = self._pending or asyncio.ensure_future(anext(events))
                done, _ = await asyncio.wait({self._pending}, timeout=_LIMIT_POLL_S)
                if done:
                    ev, self._pending = self._pending.result(), None
                    return ev
                now = source.now_s()
                if now is not None and self.seconds is not None and now >= self.seconds + _LIMIT_GRACE_S:
                    self.t_s = max(self.t_s, self.seconds)  # (the session's end)
                    return None
        except StopAsyncIteration:
            self._pending = None
            self._source_ended = True
            return None
        except TimeoutError:  # (the tail's wait)
            return None

    def _handle(self, ev: Any) -> None:
        w = self._writer
        if isinstance(ev, RawNotification):
            self.n_raw += 1
            if w is not None:
                w.write_raw(ev)
            return
        if isinstance(ev, SourceStatus):
            if ev.kind == "gap":
                self.n_lost += int(ev.details.get("n_lost", 0) or 0)
            elif ev.kind == "stopped":
                self._last_stopped = ev.message
            if w is not None:
                w.write_status(ev)
            self._emit(ev)
            return
        if not isinstance(ev, ImuBatch) or not len(ev):
            return
        self.n_samples += len(ev)
        self.t_s = max(self.t_s, float(ev.t_s[-1]))
        if w is not None:
            w.write_batch(ev)
        self._emit(ev)
        assert self.analyzer is not None
        self._results(self.analyzer.feed(ev))
        if self.t_s - self._last_stats_t >= self.stats_interval_s:
            self._last_stats_t = self.t_s
            self._emit(self.stats())

    def _results(self, events: list[EngineEvent]) -> None:
        w = self._writer
        for e in events:
            if w is not None:
                if isinstance(e, Step):
                    w.write_step(e)
                elif isinstance(e, AlertEvent) and e.kind != "updated":
                    w.write_alert(e.alert)
                elif isinstance(e, CalibrationEvent):
                    w.write_calibration(e.t_s, {"state": e.state, "mount_quat_wxyz": e.mount_quat_wxyz})
            self._emit(e)

    def stats(self) -> EngineStats:
        total = self.n_samples + self.n_lost
        battery = None
        if self.info is not None:
            battery = self.info.metadata.get("battery_pct")
        return EngineStats(
            t_s=self.t_s,
            n_samples=self.n_samples,
            n_lost=self.n_lost,
            loss_pct=100.0 * self.n_lost / total if total else 0.0,
            n_steps=len(self.analyzer.steps) if self.analyzer is not None else 0,
            battery_pct=battery,
            recording_s=self.recording_s,
            recording_path=str(self.recording_path) if self.recording_path else None,
        )

    def _finish(self) -> None:
        try:
            if self.analyzer is not None:
                self._results(self.analyzer.finish())
            self._emit(self.stats())
        finally:
            self._close_writer()
            self.running = False
            self.finished.set()

    # -- results ---------------------------------------------------------------------------------------------
    @property
    def steps(self) -> list[Step]:
        return list(self.analyzer.steps) if self.analyzer is not None else []

    @property
    def alerts(self) -> list[Alert]:
        return self.analyzer.alerts.all_alerts() if self.analyzer is not None else []


__all__ = [
    "AlertEvent",
    "AsymmetryUpdate",
    "CalibrationEvent",
    "EngineEvent",
    "EngineStats",
    "GaitStateEvent",
    "MotionChunk",
    "SessionAnalyzer",
    "SessionEngine",
    "Subscription",
    "data_dir",
    "new_session_path",
]

