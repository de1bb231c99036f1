"""``pelvimon live``: the live dashboard of one sensor (Qt window, or ``--headless`` in the terminal)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from pelvimon.commands import _guards
from pelvimon.errors import PelvimonError, UsageError

NAME = "live"
ORDER = 20
HELP = "live dashboard of a sensor: pelvis angles, pelvic drop per side, cadence, alerts (GUI or --headless)"
DESCRIPTION = (
    "Connect to a sensor and show, live, the pelvis angles of the last 10 s with foot contacts by side, the "
    "pelvic drop (CPD) and ground contact time of each stance side, the cadence and its trend, and left/right "
    "asymmetry alerts in plain words. Stand still for 5 s first (calibration), then run. The session is "
    "recorded to a session file (in the user data folder unless -o is given; --no-record to switch it off). "
    "--headless shows the same numbers in the terminal (works over SSH and without a terminal: plain lines); "
    "on a machine without a display the terminal dashboard is used anyway (with a note). Ctrl-C ends the "
    "session cleanly. Without --sensor, the window lets you scan and pick a sensor (it needs a display)."
)


def add_session_arguments(
    parser: argparse.ArgumentParser, *, default_name: str = "", default_rate: float | None = None
) -> None:
    """The options ``live`` and ``demo`` share."""
    parser.add_argument("--rate", type=_guards.rate_hz, metavar="HZ", default=default_rate,
                        help="sample rate to ask the sensor for, 20-2000 Hz (nearest supported; default "
                        + ("the sensor's" if default_rate is None else f"{default_rate:g}") + ")")
    parser.add_argument(
        "--record",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="record the session to a session file (default: on)",
    )
    parser.add_argument("-o", "--output", metavar="FILE.mcap", help="session file to write (default: a new file "
                        "named after the date and --name in the user data folder)")
    parser.add_argument("--name", default=default_name, metavar="NAME", help="session name (used in file names)")
    parser.add_argument("--seconds", type=_guards.positive_seconds, metavar="N",
                        help=f"quit after N seconds (wall clock), at most {_guards.MAX_SECONDS:g}")
    parser.add_argument("--screenshot", metavar="FILE.png", help="save the window as PNG when quitting")
    parser.add_argument("--headless", action="store_true", help="terminal dashboard instead of the window")
    parser.add_argument("--config", metavar="FILE.toml", help="thresholds and windows (see pelvimon/default_config.toml)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sensor",
        metavar="SPEC",
        help="sensor address or advertised name (optionally ?protocol=NAME), or emulated:PROTOCOL?key=value... "
        "(default: scan and pick in the window)",
    )
    add_session_arguments(parser)


def _check(args: argparse.Namespace) -> None:
    """The combinations of options (each option's own range is checked by its argparse type)."""
    if args.screenshot is not None:
        if Path(args.screenshot).suffix.lower() != ".png":
            raise UsageError(f"--screenshot {args.screenshot}: give a file name ending in .png")
        if args.headless:
            raise UsageError("--screenshot needs the window: leave out --headless")
        _guards.check_output(args.screenshot, [args.config], "--screenshot")
        _guards.check_distinct({"-o/--output": args.output, "--screenshot": args.screenshot})
    if args.output is not None:
        if not args.record:
            raise UsageError("-o/--output and --no-record contradict each other")
        _guards.check_session_output(args.output, "-o")  # (a missing folder included)


def _validate_spec(spec: str, rate_hz: float | None = None) -> None:
    """Refuse a malformed spec before the session starts (a usage error); an emulated sensor is built, so
    that its options' values are checked too (as ``record`` does)."""
    from pelvimon.sensors.spec import SpecError, build_emulated, parse_spec

    try:
        parsed = parse_spec(spec)
        if parsed.kind == "emulated":
            build_emulated(parsed, rate_hz)
    except SpecError as exc:
        raise UsageError(str(exc)) from None


def make_factory(args: argparse.Namespace) -> Any:
    """``factory(spec, name, record) -> SessionEngine`` for the window's Connect button and the CLI."""
    from pelvimon.config import load_config
    from pelvimon.engine import SessionEngine
    from pelvimon.sensors.spec import open_source

    config = load_config(args.config)
    rate = args.rate
    output = Path(args.output) if args.output else None
    used_output = {"done": False}

    def factory(spec: str, name: str, record: bool) -> Any:
        _validate_spec(spec, rate)
        record_to = None
        if record and output is not None and not used_output["done"]:
            record_to = output
            used_output["done"] = True
        engine = SessionEngine(lambda: open_source(spec, rate_hz=rate), record_to=record_to, config=config, name=name)
        engine.set_recording(record)
        return engine

    return factory


def _report_recordings(paths: list[Path], wanted: bool = False) -> None:
    """Name the session files written; ``wanted``: recording was on, so none written is said too."""
    for p in paths:
        print(f"session recorded to {p}")
    if paths:
        print(f"review it with: pelvimon review {paths[-1]}")
    elif wanted:
        print("nothing was recorded: the session ended before the sensor was connected")


def display_problem() -> str | None:
    """Why no window can be shown here (a short phrase), or None when one can.

    Windows and macOS always have a display. Elsewhere Qt needs an X11 display (DISPLAY) or a Wayland one
    (WAYLAND_DISPLAY), unless QT_QPA_PLATFORM chooses a platform that needs neither (``offscreen`` for
    tests and screenshots, ``vnc``, ``eglfs``...). A chosen ``xcb`` or ``wayland`` still needs its display
    (Qt would abort the whole process without it).
    """
    if os.name == "nt" or sys.platform == "darwin":
        return None
    x11 = bool(os.environ.get("DISPLAY"))
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    wayland = bool(os.environ.get("WAYLAND_DISPLAY")) or bool(runtime and Path(runtime, "wayland-0").exists())
    chosen = os.environ.get("QT_QPA_PLATFORM", "").strip()
    if not chosen:
        return None if x11 or os.environ.get("WAYLAND_DISPLAY") else "DISPLAY/WAYLAND_DISPLAY unset"
    for candidate in chosen.split(";"):
        name = candidate.split(":", 1)[0].strip().lower()
        if name == "xcb":
            if x11:
                return None
        elif name.startswith("wayland"):
            if wayland:
                return None
        elif name:
            return None
    return f"QT_QPA_PLATFORM={chosen} but DISPLAY/WAYLAND_DISPLAY unset"


def offscreen_for_screenshot() -> None:
    """Without a display, draw a window that is only wanted as a ``--screenshot`` offscreen."""
    if display_problem() is not None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"


def run_session(args: argparse.Namespace, spec: str | None, *, title: str) -> int:
    """Run ``live``/``demo``: the window or the terminal dashboard, then say where the recording is."""
    _check(args)
    if spec is not None:
        _validate_spec(spec)
        from pelvimon.commands._session import check_rate

        check_rate(spec, args.rate)
    factory = make_factory(args)
    rate_hint = max(args.rate or 208.0, 208.0)
    problem = None if args.headless else display_problem()
    if problem is not None and args.screenshot:
        offscreen_for_screenshot()  # the window is drawn for the PNG only, and then closes
    elif problem is not None and spec is None:
        raise UsageError(
            f"no display found ({problem}): the window, where you scan and pick a sensor, cannot be shown; "
            "give --sensor SPEC for the terminal dashboard (find sensors with: pelvimon scan), or run it on a "
            "desktop"
        )
    elif problem is not None:
        print(
            f"pelvimon: no display found ({problem}): showing the terminal dashboard instead; "
            "run it on a desktop for the window, or pass --headless to choose the terminal yourself",
            file=sys.stderr,
        )
        args.headless = True
    if args.headless:
        if spec is None:
            raise UsageError("--headless needs --sensor SPEC (scan with: pelvimon scan)")
        from pelvimon.dashboard import run_headless

        engine = factory(spec, args.name, args.record)
        run_headless(engine, seconds=args.seconds, title=title, rate_hz=rate_hint)
        # (a session that ended with an error says why nothing was recorded)
        _report_recordings(list(engine.recordings), wanted=args.record and not engine.error)
        if engine.error:
            raise PelvimonError(f"the session ended with an error: {engine.error}")
        if engine.ended_by_source:
            raise PelvimonError(f"the session ended before its time: {engine.ended_by_source}")
        return 0

    from pelvimon.gui.app import dispose_window, ensure_app, run_window
    from pelvimon.gui.live_window import LiveWindow

    ensure_app()
    engine = factory(spec, args.name, args.record) if spec is not None else None
    window = LiveWindow(
        engine,
        engine_factory=factory,
        rate_hz=rate_hint,
        record=args.record,
        sensor_text=spec or "",
        name=args.name,
        title=title,
    )
    try:
        run_window(window, seconds=args.seconds, screenshot=args.screenshot, before_quit=window.tick)
    finally:
        # also when the screenshot could not be saved: the session is closed and its file named
        window.stop_engine()
        _report_recordings(window.recordings)
        err = getattr(window.engine, "error", None)
        dispose_window(window)
    if args.screenshot:
        print(f"screenshot saved to {args.screenshot}")
    if err:
        print(f"pelvimon: the session ended with an error: {err}", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    return run_session(args, args.sensor, title="pelvimon live")
