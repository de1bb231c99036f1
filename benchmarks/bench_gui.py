"""CPU share of the live GUI process: a 208 Hz emulated Movesense stream through the live engine into the
live window refreshed at 30 Hz, offscreen.

Prints, for each run, the process CPU time over wall time (all threads: Bluetooth emulation, decoding,
analysis, GUI) and the mean time of one frame (drain + redraw) on the GUI thread:

* ``painting``: the normal window (also: the 99th percentile and the longest interval between frames, a
  measure of stutter);
* ``no painting``: the same loop with drawing disabled (the subscription is still drained and the ring
  buffers filled), the baseline that isolates what the plots cost;
* ``engine only``: the engine with no window at all.

Usage::

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui.py [--seconds 10] [--rate 208]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _engine(rate: float):  # noqa: ANN202
    from pelvimon.engine import SessionEngine
    from pelvimon.sensors.spec import open_source

    spec = "emulated:movesense?cpd_left=8&cpd_right=4&seconds=120&sim_seed=1&seed=1"
    return SessionEngine(lambda: open_source(spec, rate_hz=rate))


def _wait_calibrated(app, state_fn, timeout: float = 30.0) -> None:  # noqa: ANN001
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        app.processEvents()
        time.sleep(0.01)
        if state_fn():
            return
    raise SystemExit("the stream did not reach the running phase in time")


def run_window(seconds: float, rate: float, paint: bool) -> dict[str, float]:
    from pelvimon.gui.app import ensure_app
    from pelvimon.gui.live_window import LiveWindow

    app = ensure_app()
    eng = _engine(rate)
    win = LiveWindow(eng, rate_hz=rate, record=False)
    win.resize(1400, 860)
    win.show()
    frame_s: list[float] = []
    frame_t: list[float] = []
    orig_tick = win.tick

    def timed_tick() -> None:
        t = time.perf_counter()
        orig_tick()
        frame_s.append(time.perf_counter() - t)
        frame_t.append(t)

    win.timer.timeout.disconnect()
    win.timer.timeout.connect(timed_tick)
    _wait_calibrated(app, lambda: win.state.angles.total > 3 * rate)
    win.paint_enabled = paint
    frame_s.clear()
    frame_t.clear()
    n_events0 = win.state.n_events
    c0, w0 = time.process_time(), time.monotonic()
    while time.monotonic() - w0 < seconds:
        app.processEvents()
        time.sleep(0.002)
    cpu, wall = time.process_time() - c0, time.monotonic() - w0
    n_events = win.state.n_events - n_events0
    win.close()
    gaps = np.diff(frame_t) if len(frame_t) > 2 else np.zeros(1)
    return {
        "gap_p99_ms": 1000.0 * float(np.percentile(gaps, 99)),
        "gap_max_ms": 1000.0 * float(gaps.max()),
        "cpu_share_pct": 100.0 * cpu / wall,
        "frames_per_s": len(frame_s) / wall,
        "frame_ms": 1000.0 * sum(frame_s) / max(len(frame_s), 1),
        "events_per_s": n_events / wall,
    }


def run_engine_only(seconds: float, rate: float) -> dict[str, float]:
    eng = _engine(rate)
    sub = eng.subscribe()
    eng.start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        time.sleep(0.05)
        if any(type(e).__name__ == "MotionChunk" for e in sub.drain()):
            break
    c0, w0 = time.process_time(), time.monotonic()
    while time.monotonic() - w0 < seconds:
        time.sleep(1 / 30)
        sub.drain()
    cpu, wall = time.process_time() - c0, time.monotonic() - w0
    eng.stop()
    return {"cpu_share_pct": 100.0 * cpu / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description="CPU share of the live GUI at 30 Hz with a 200 Hz stream")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=208.0)
    args = ap.parse_args()
    print(f"live window, {args.rate:g} Hz emulated stream, 30 Hz refresh, {args.seconds:g} s per run, offscreen")
    paint = run_window(args.seconds, args.rate, True)
    print(
        f"  painting    : process CPU {paint['cpu_share_pct']:5.1f} % of one core, {paint['frames_per_s']:4.1f} "
        f"frames/s, {paint['frame_ms']:5.2f} ms per frame, {paint['events_per_s']:.0f} events/s"
    )
    print(
        f"                interval between frames: 99th percentile {paint['gap_p99_ms']:.1f} ms, "
        f"longest {paint['gap_max_ms']:.1f} ms (33.3 ms nominal)"
    )
    base = run_window(args.seconds, args.rate, False)
    print(
        f"  no painting : process CPU {base['cpu_share_pct']:5.1f} % of one core, {base['frames_per_s']:4.1f} "
        f"frames/s, {base['frame_ms']:5.2f} ms per frame (baseline)"
    )
    eng = run_engine_only(args.seconds, args.rate)
    print(f"  engine only : process CPU {eng['cpu_share_pct']:5.1f} % of one core (no window)")
    print(
        f"  drawing costs {paint['cpu_share_pct'] - base['cpu_share_pct']:+.1f} points of CPU "
        f"({paint['cpu_share_pct'] / max(base['cpu_share_pct'], 1e-9):.2f}x the no-painting baseline); "
        f"the window as a whole {paint['cpu_share_pct'] - eng['cpu_share_pct']:+.1f} points over the engine alone"
    )


if __name__ == "__main__":
    main()
