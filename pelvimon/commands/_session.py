"""Shared plumbing of the terminal commands that run a session (record, replay)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from pelvimon.errors import PelvimonError, UsageError, is_disk_full


def open_sensor(spec: str, rate_hz: float | None) -> Any:
    """A Source for a ``--sensor`` spec; a malformed spec or an unusable ``--rate`` is a usage error."""
    from pelvimon.sensors.spec import SpecError, open_source

    check_rate(spec, rate_hz)
    try:
        return open_source(spec, rate_hz=rate_hz)
    except SpecError as exc:
        raise UsageError(str(exc)) from None


def check_rate(spec: str, rate_hz: float | None) -> None:
    """Refuse a ``--rate`` whose nearest supported rate is below what the gait analysis needs.

    ``rate_hz`` itself is in range (the ``--rate`` type, ``_guards.rate_hz``, checks it). Sensors stream at
    the supported rate nearest to the one asked for (WitMotion: 20 Hz -> 10 Hz). When the spec names the
    protocol (``emulated:NAME`` or ``?protocol=NAME``) that rate is checked here, before connecting;
    otherwise the protocol is known only once connected. Malformed specs pass: opening them reports the
    problem.

    Raises
    ------
    UsageError
        The protocol's nearest rate is below :data:`pelvimon.analysis.MIN_RATE_HZ` (the event detector's
        20 Hz).
    """
    if rate_hz is None:
        return
    from pelvimon.analysis import MIN_RATE_HZ
    from pelvimon.firmware_protocols import registry
    from pelvimon.sensors.spec import SpecError, parse_spec

    try:
        parsed = parse_spec(spec)
    except SpecError:
        return
    name = parsed.target if parsed.kind == "emulated" else parsed.options.get("protocol")
    if not name or name not in registry.available():
        return
    from pelvimon.sensors.ble import nominal_rate

    proto = registry.get(name)
    nearest = nominal_rate(proto, rate_hz)
    if nearest < MIN_RATE_HZ:
        ok = [r for r in (proto.spec.rates_hz or ()) if r >= MIN_RATE_HZ]
        hint = f"; ask for {min(ok):g} Hz or more" if ok else ""
        raise UsageError(
            f"--rate {rate_hz:g}: the nearest rate {name} supports is {nearest:g} Hz, below the "
            f"{MIN_RATE_HZ:g} Hz the gait analysis needs{hint}"
        )


def _num(value: float, fmt: str, unit: str) -> str:
    """``value`` formatted with its unit, or ``n/a`` (same width) when it is not known (NaN)."""
    text = format(value, fmt)
    if not math.isfinite(value):
        return "n/a".rjust(len(text))
    if float(text) == 0.0:
        text = format(0.0, fmt)  # a small negative value is not shown as "-0.0"
    return text + unit


def _step_line(s: Any) -> str:
    return (
        f"{s.t_ic_s:8.2f} s  {s.side}  cadence {_num(s.cadence_spm, '5.1f', '/min')}  "
        f"contact {_num(1000 * s.contact_time_s, '4.0f', ' ms')}  CPD {_num(s.cpd_deg, '4.1f', '°')}"
        + ("  (gap)" if s.gap else "")
    )


def disk_full_message(recordings: list[Path], t_s: float) -> str:
    """The one line for a full disk while recording: what is kept (as far as the file can be read back:
    ``t_s``, the session time reached, is an upper bound), and what to do."""
    if recordings:
        where = recordings[-1]
        kept = _readable_until(where)
        if kept is None:
            return (
                f"the disk is full: no sample of the session could be kept in {where} (the disk filled before "
                "its first part was written); free some space and try again"
            )
        return (
            f"the disk is full: the session up to {min(kept, t_s):.1f} s is kept in {where}; free some space "
            "before recording again"
        )
    return "the disk is full: nothing could be recorded; free some space and try again"


def _readable_until(path: Path) -> float | None:
    """Session time of the last sample a session file gives when read back, or None (none, or unreadable)."""
    from pelvimon.analysis import held_reader_warnings
    from pelvimon.firmware_protocols.batch import ImuBatch
    from pelvimon.sensors.session_file import SessionReader

    last = None
    with held_reader_warnings(quiet=True):  # (a cut file's warning: the caller says what is kept)
        try:
            for item in SessionReader(path).items():
                if isinstance(item, ImuBatch) and len(item):
                    last = float(item.t_s[-1])
        except (OSError, ValueError):
            pass
    return last


PRINT_EVERY_S = 0.5
"""How often (wall time) a running session's log lines are printed; the lines are the same however often."""


def _alert_line(ev: Any, now: float) -> str:
    """The log line of an alert that started or ended, stamped with the session time it happened at (a
    started alert's difference began earlier: its ``t_start_s``)."""
    al = ev.alert
    since = f"since {al.t_start_s:.1f} s"
    if ev.kind == "ended":
        return f"[{al.t_end_s:7.1f} s] ALERT ended ({since}): {al.message}"
    return f"[{max(now, al.t_start_s):7.1f} s] ALERT started (the difference {since}): {al.message}"


def run_engine(
    source: Any,
    *,
    record_to: Path | None,
    seconds: float | None,
    name: str,
    config: Any,
    quiet: bool,
    verb: str,
    print_steps: bool = False,
    no_samples: str | None = None,
    overwrite: bool = False,
) -> int:
    """Run a session in this thread with a progress line every few seconds; summary at the end.

    ``config``: the loaded ``--config`` (:func:`pelvimon.config.load_config`). ``overwrite``: an existing
    ``record_to`` is replaced when recording starts. ``no_samples``: when given,
    a session that yields no sample at all fails with this message instead of printing an empty summary. A full disk while recording is one line saying what is kept.
    """
    import threading

    from pelvimon.dsp.records import Step
    from pelvimon.engine import AlertEvent, EngineStats, SessionEngine
    from pelvimon.sensors.source import SourceStatus

    engine = SessionEngine(source, record_to=record_to, config=config, name=name, seconds=seconds, overwrite=overwrite)
    sub = engine.subscribe(maxlen=200_000)
    stop_printer = threading.Event()
    err = sys.stderr

    last_figures, now = -10.0, -math.inf  # session time of the last figures line; of the latest step or figures

    def show(ev: Any, final: bool = False) -> None:
        """Print one engine event as the log does (``final``: after the session, whose closing status the
        summary covers, as it does the alerts still active at the end; whatever else the printer had not
        shown yet is printed as it would have been had it kept up: a fast replay logs what a slow one does)."""
        nonlocal last_figures, now
        if isinstance(ev, Step):
            now = max(now, ev.t_ic_s + ev.step_time_s)  # (NaN leaves it)
            if print_steps:
                print(_step_line(ev), flush=True)
        elif quiet:
            return
        elif isinstance(ev, SourceStatus) and ev.kind != "info" and not (final and ev.kind == "stopped"):
            print(f"[{ev.t_s:7.1f} s] {ev.kind}: {ev.message}", file=err, flush=True)
        elif isinstance(ev, AlertEvent) and ev.kind != "updated" and not ev.at_session_end:
            print(_alert_line(ev, now), file=err, flush=True)
        elif isinstance(ev, EngineStats) and ev.t_s - last_figures >= 5.0:
            last_figures = now = ev.t_s
            print(
                f"[{ev.t_s:7.1f} s] {ev.n_samples} samples, {ev.n_lost} lost ({ev.loss_pct:.1f} %), "
                f"{ev.n_steps} steps",
                file=err,
                flush=True,
            )

    def printer() -> None:
        while not stop_printer.wait(PRINT_EVERY_S):
            for ev in sub.drain():
                show(ev)

    th = threading.Thread(target=printer, daemon=True)
    th.start()
    try:
        engine.run()
    except KeyboardInterrupt:
        print("stopping", file=err)
    except RuntimeError as exc:
        raise PelvimonError(str(exc)) from None
    except OSError as exc:
        if is_disk_full(exc):
            raise PelvimonError(disk_full_message(list(engine.recordings), engine.t_s)) from None
        raise
    finally:
        stop_printer.set()
        th.join(2.0)
        # whatever the printer had not shown yet (the alerts still active are in the summary)
        for ev in sub.drain():
            show(ev, final=True)
    st = engine.stats()
    if no_samples is not None and st.n_samples == 0:
        raise PelvimonError(no_samples)
    alerts = engine.alerts
    where = ", ".join(str(p) for p in engine.recordings)
    print(
        f"{verb} {st.t_s:.1f} s: {st.n_samples} samples, {st.n_lost} lost ({st.loss_pct:.1f} %), "
        f"{st.n_steps} steps, {len(alerts)} alert{'' if len(alerts) == 1 else 's'}" + (f" -> {where}" if where else "")
    )
    for a in alerts:
        print(f"  alert {a.t_start_s:.1f}-{(a.t_end_s or st.t_s):.1f} s: {a.message}")
    if engine.ended_by_source:
        raise PelvimonError(f"the session ended before its time: {engine.ended_by_source}")
    return 0
