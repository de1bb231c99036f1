"""Make the README screenshots: ``docs/images/live.png`` (the demo once an alert is up) and
``docs/images/review.png`` (the review of that demo session).

Run from the repository root (no display needed)::

    python docs/make_screenshots.py [--out docs/images] [--speed 4]

The live screenshot is taken from a real session: the demo's emulated Movesense sensor streams a simulated
runner with a weak left gluteus medius (pelvic drop 8 deg in left stance, 4 deg in right stance) through
the live engine; the picture is saved a few seconds after the first alert appears.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "images"), help="output folder")
    ap.add_argument("--speed", type=float, default=4.0, help="emulation speed (x real time)")
    ap.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    args = ap.parse_args(argv)

    from PySide6 import QtWidgets

    from pelvimon.engine import SessionEngine
    from pelvimon.gui.app import ensure_app, save_screenshot
    from pelvimon.gui.live_window import LiveWindow
    from pelvimon.gui.review_data import load_review
    from pelvimon.gui.review_window import ReviewWindow
    from pelvimon.sensors.spec import open_source

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    app = ensure_app()
    spec = f"emulated:movesense?cpd_left=8&cpd_right=4&seconds=300&sim_seed=1&seed=1&speed={args.speed:g}"
    with tempfile.TemporaryDirectory() as tmp:
        session = Path(tmp) / "demo.mcap"
        engine = SessionEngine(lambda: open_source(spec, rate_hz=208), record_to=session, name="demo")
        win = LiveWindow(engine, rate_hz=208, sensor_text="emulated:movesense", name="demo",
                         title="pelvimon demo")
        win.resize(1400, 860)
        win.show()
        t0 = time.monotonic()
        alert_at: float | None = None
        while time.monotonic() - t0 < args.timeout:
            app.processEvents()
            win.tick()
            time.sleep(1 / 30)
            if alert_at is None and win.state.active_alerts:
                alert_at = win.state.t_now_s
            if alert_at is not None and win.state.t_now_s > max(alert_at + 6.0, 40.0):
                break
        if alert_at is None:
            print("no alert appeared in time; screenshot not taken", file=sys.stderr)
            win.close()
            return 1
        live_png = save_screenshot(win, out / "live.png")
        win.close()
        print(f"wrote {live_png} (alert at {alert_at:.1f} s of session time)")

        data = load_review(session)
        rev = ReviewWindow(data)
        rev.resize(1500, 900)
        rev.show()
        if data.alerts:
            t = data.alerts[0].t_start_s + 5.0
            rev.set_range(t, t + 6.0)
        QtWidgets.QApplication.processEvents()
        review_png = save_screenshot(rev, out / "review.png")
        rev.close()
        print(f"wrote {review_png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
