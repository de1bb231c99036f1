"""Shared plumbing of the terminal commands that run a session (record, replay)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pelvimon.errors import PelvimonError, UsageError


def open_sensor(spec: str, rate_hz: float | None) -> Any:
    """A Source for a ``--sensor`` spec; a malformed spec is a usage error."""
    from pelvimon.sensors.spec import SpecError, open_source

    if rate_hz is not None and rate_hz <= 0:
        raise UsageError(f"--rate must be > 0 Hz, got {rate_hz:g}")
    try:
        return open_source(spec, rate_hz=rate_hz)
    except SpecError as exc:
        raise UsageError(str(exc)) from None


def _step_line(s: Any) -> str:
    return (
        f"{s.t_ic_s:8.2f} s  {s.side}  cadence {s.cadence_spm:5.1f}/min  contact {1000 * s.contact_time_s:4.0f} ms"
        f"  CPD {s.cpd_deg:4.1f}°" + ("  (gap)" if s.gap else "")
    )


def run_engine(
    source: Any,
    *,
    record_to: Path | None,
    seconds: float | None,
    name: str,
    config_path: str | None,
    quiet: bool,
    verb: str,
    print_steps: bool = False,
) -> int:
    """Run a session in this thread with a progress line every few seconds; summary at the end."""
    import threading

    from pelvimon.config import load_config
    from pelvimon.dsp.records import Step
    from pelvimon.engine import AlertEvent, EngineStats, SessionEngine
    from pelvimon.sensors.source import SourceStatus

    config = load_config(config_path)
    engine = SessionEngine(source, record_to=record_to, config=config, name=name, seconds=seconds)
    sub = engine.subscribe(maxlen=200_000)
    stop_printer = threading.Event()
    err = sys.stderr

    def printer() -> None:
        last = -10.0
        while not stop_printer.wait(0.5):
            for ev in sub.drain():
                if isinstance(ev, Step) and print_steps:
                    print(_step_line(ev), flush=True)
                elif isinstance(ev, SourceStatus) and ev.kind != "info" and not quiet:
                    print(f"[{ev.t_s:7.1f} s] {ev.kind}: {ev.message}", file=err, flush=True)
                elif isinstance(ev, AlertEvent) and ev.kind != "updated" and not quiet:
                    print(f"[{ev.alert.t_start_s:7.1f} s] ALERT {ev.kind}: {ev.alert.message}", file=err, flush=True)
                elif isinstance(ev, EngineStats) and not quiet and ev.t_s - last >= 5.0:
                    last = ev.t_s
                    print(
                        f"[{ev.t_s:7.1f} s] {ev.n_samples} samples, {ev.n_lost} lost ({ev.loss_pct:.1f} %), "
                        f"{ev.n_steps} steps",
                        file=err,
                        flush=True,
                    )

    th = threading.Thread(target=printer, daemon=True)
    th.start()
    try:
        engine.run()
    except KeyboardInterrupt:
        print("stopping (Ctrl-C)", file=err)
    except RuntimeError as exc:
        raise PelvimonError(str(exc)) from None
    finally:
        stop_printer.set()
        th.join(2.0)
        # whatever the printer had not shown yet
        for ev in sub.drain():
            if isinstance(ev, Step) and print_steps:
                print(_step_line(ev))
    st = engine.stats()
    alerts = engine.alerts
    where = ", ".join(str(p) for p in engine.recordings)
    print(
        f"{verb} {st.t_s:.1f} s: {st.n_samples} samples, {st.n_lost} lost ({st.loss_pct:.1f} %), "
        f"{st.n_steps} steps, {len(alerts)} alert(s)" + (f" -> {where}" if where else "")
    )
    for a in alerts:
        print(f"  alert {a.t_start_s:.1f}-{(a.t_end_s or st.t_s):.1f} s: {a.message}")
    return 0
