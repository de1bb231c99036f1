"""``pelvimon demo``: the live dashboard on an emulated Movesense sensor, no hardware needed."""

from __future__ import annotations

import argparse

from pelvimon.errors import UsageError

NAME = "demo"
ORDER = 5
HELP = "try it without hardware: the live dashboard on an emulated sensor and a simulated runner"
DESCRIPTION = (
    "The live dashboard (as 'pelvimon live') on an emulated Movesense sensor streaming a simulated runner "
    "whose left hip abductors are weak: the pelvis drops more during left stance (8 deg against 4 deg by "
    "default), so a left/right alert appears within about half a minute. The runner stands still for 5 s "
    "(calibration), then runs. The session is recorded like a real one unless --no-record; the file name is "
    "printed at the end."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .live import add_session_arguments

    parser.add_argument("--cpd-left", type=float, default=8.0, metavar="DEG", help="pelvic drop in left stance (deg)")
    parser.add_argument("--cpd-right", type=float, default=4.0, metavar="DEG", help="pelvic drop in right stance (deg)")
    parser.add_argument("--cadence", type=float, default=170.0, metavar="SPM", help="cadence (steps/min)")
    parser.add_argument(
        "--speed", type=float, default=1.0, metavar="X", help="play the emulation X times faster than real time"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulated runner and the radio link")
    parser.add_argument("--loss", type=float, default=0.0, metavar="P", help="share of notifications lost (0..1)")
    add_session_arguments(parser, default_name="demo")
    parser.set_defaults(rate=208.0)


def demo_spec(args: argparse.Namespace) -> str:
    """The ``emulated:movesense?...`` spec of the demo's options."""
    if not args.speed > 0:
        raise UsageError(f"--speed must be > 0, got {args.speed:g}")
    if not 0 <= args.loss < 1:
        raise UsageError(f"--loss must be in 0..1, got {args.loss:g}")
    if args.cpd_left < 0 or args.cpd_right < 0:
        raise UsageError("--cpd-left and --cpd-right must be >= 0 deg")
    return (
        f"emulated:movesense?cpd_left={args.cpd_left:g}&cpd_right={args.cpd_right:g}&cadence={args.cadence:g}"
        f"&seconds=300&sim_seed={args.seed}&seed={args.seed}&speed={args.speed:g}&loss={args.loss:g}"
    )


def run(args: argparse.Namespace) -> int:
    from .live import run_session

    return run_session(args, demo_spec(args), title="pelvimon demo — emulated sensor, simulated runner")
