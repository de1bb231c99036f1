"""``pelvimon review``: a recorded session or a CSV in a window (timeline, ranges, distributions, alerts)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pelvimon.commands import _guards
from pelvimon.errors import UsageError

NAME = "review"
ORDER = 50
HELP = "review a recorded session (.mcap) or a CSV: per-step metrics by side, angle traces, alerts, export"
DESCRIPTION = (
    "Open a session file or an IMU CSV. The top shows per-step pelvic drop, contact time and cadence over the "
    "whole session, left stance in blue and right stance in orange. Drag the grey band to choose a range: the "
    "pelvis angles of that range, per-side statistics and distributions appear below. Alerts are listed "
    "(click one to jump to it). Steps recorded live are used as they are; a CSV (or a session without steps) "
    "is analysed first. --export writes the per-step table as CSV (and quits unless --screenshot or --seconds "
    "is given); with --range T0 T1 it writes only the steps whose initial contact lies in that range, usable "
    "or not (the gap and laterality_confidence columns say which the range statistics leave out). The "
    "window needs a display; without one, --export "
    "and --screenshot still work."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="session file (.mcap) or CSV")
    parser.add_argument(
        "--export",
        metavar="FILE.csv",
        help="write the per-step table to FILE.csv (all steps, or those of --range T0 T1); works without a display",
    )
    parser.add_argument(
        "--screenshot", metavar="FILE.png", help="save the window as PNG and quit (works without a display)"
    )
    parser.add_argument("--seconds", type=_guards.positive_seconds, metavar="N", help="quit after N seconds")
    parser.add_argument(
        "--range",
        nargs=2,
        type=_guards.finite_float,
        metavar=("T0", "T1"),
        help="select this range of session time (s) in the window; --export then writes only the steps whose "
        "initial contact is in it (T0 <= t <= T1)",
    )
    parser.add_argument("--config", metavar="FILE.toml", help="thresholds and windows for the alerts")
    from pelvimon.commands.analyze import add_csv_arguments

    add_csv_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pelvimon.config import load_config

    if args.screenshot is not None and Path(args.screenshot).suffix.lower() != ".png":
        raise UsageError(f"--screenshot {args.screenshot}: give a file name ending in .png")
    if args.range is not None and not args.range[1] > args.range[0]:
        raise UsageError("--range T0 T1 needs T1 > T0 (seconds)")
    window_wanted = not (args.export and args.screenshot is None and args.seconds is None)
    if window_wanted:
        from pelvimon.commands.live import display_problem, offscreen_for_screenshot

        problem = display_problem()
        if problem is not None and args.screenshot is None:
            raise UsageError(
                f"no display found ({problem}): the review window cannot be shown here; without a display use "
                "--export FILE.csv (the per-step table) or --screenshot FILE.png (the window as an image), "
                "or run it on a desktop"
            )
        offscreen_for_screenshot()
    from pelvimon.commands.analyze import csv_options_from_args
    from pelvimon.gui.review_data import load_review

    inputs = [args.file, args.config]
    out = _guards.check_output(args.export, inputs, "--export") if args.export else None
    if args.screenshot is not None:
        _guards.check_output(args.screenshot, inputs, "--screenshot")
    _guards.check_distinct({"--export": args.export, "--screenshot": args.screenshot})
    csv = csv_options_from_args(args)
    config = load_config(args.config)
    data = load_review(args.file, csv=csv, config=config)
    if out is not None:
        from pelvimon.analysis import steps_csv_text
        from pelvimon.outputs import write_output

        steps = data.steps if args.range is None else data.steps_between(*args.range)
        write_output(out, steps_csv_text(steps))
        of = "" if args.range is None else (
            f" (of {len(data.steps)}: initial contact from {args.range[0]:g} to {args.range[1]:g} s)"
        )
        print(f"wrote {len(steps)} steps{of} to {out}")
        if args.range is not None and not steps and data.steps:
            t0, t1 = data.steps[0].t_ic_s, data.steps[-1].t_ic_s
            print(f"no step in that range: the session's steps run from {t0:.1f} to {t1:.1f} s")
        if args.screenshot is None and args.seconds is None:
            return 0

    from pelvimon.gui.app import dispose_window, ensure_app, run_window
    from pelvimon.gui.review_window import ReviewWindow

    ensure_app()
    window = ReviewWindow(data)
    if args.range is not None:
        window.set_range(*args.range)
    try:
        run_window(window, seconds=args.seconds, screenshot=args.screenshot)
    finally:
        dispose_window(window)
    if args.screenshot:
        print(f"screenshot saved to {args.screenshot}")
    return 0
