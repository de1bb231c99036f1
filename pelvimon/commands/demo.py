"""``pelvimon demo``: the live dashboard on an emulated Movesense sensor, no hardware needed."""

from __future__ import annotations

import argparse
from typing import Any

from pelvimon.commands import _guards
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

    lo, hi = _guards.SPEED_RANGE
    parser.add_argument("--cpd-left", type=_guards.sim_value("cpd_left_deg"), default=8.0, metavar="DEG",
                        help="pelvic drop in left stance, 0-25 deg (default 8)")
    parser.add_argument("--cpd-right", type=_guards.sim_value("cpd_right_deg"), default=4.0, metavar="DEG",
                        help="pelvic drop in right stance, 0-25 deg (default 4)")
    parser.add_argument("--cadence", type=_guards.sim_value("cadence_spm"), default=170.0, metavar="SPM",
                        help="cadence, 60-240 steps/min (default 170)")
    parser.add_argument(
        "--speed", type=_guards.speed, default=1.0, metavar="X",
        help=f"play the emulation X times faster than real time ({lo:g}-{hi:g}, default 1)",
    )
    parser.add_argument("--seed", type=_guards.nonnegative_int, default=1, metavar="N",
                        help="seed of the simulated runner and the radio link, an integer >= 0 (default 1)")
    parser.add_argument("--loss", type=_guards.loss_share, default=0.0, metavar="P",
                        help="share of notifications lost, 0 to below 1 (default 0)")
    add_session_arguments(parser, default_name="demo", default_rate=208.0)


def _options(args: argparse.Namespace) -> dict[str, tuple[Any, Any]]:
    """The demo's own options: ``{option: (argparse type, value)}``."""
    return {
        "--cpd-left": (_guards.sim_value("cpd_left_deg"), args.cpd_left),
        "--cpd-right": (_guards.sim_value("cpd_right_deg"), args.cpd_right),
        "--cadence": (_guards.sim_value("cadence_spm"), args.cadence),
        "--speed": (_guards.speed, args.speed),
        "--seed": (_guards.nonnegative_int, args.seed),
        "--loss": (_guards.loss_share, args.loss),
    }


def demo_spec(args: argparse.Namespace) -> str:
    """The ``emulated:movesense?...`` spec of the demo's options.

    The options are checked again with their argparse types (for callers that build ``args`` themselves);
    ``--rate`` is checked against the sensor's nearest supported rate where the session starts
    (``live.run_session``).
    """
    for option, (convert, value) in _options(args).items():
        try:
            convert(repr(value))
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"{option} {exc}") from None
    spec = (
        f"emulated:movesense?cpd_left={args.cpd_left!r}&cpd_right={args.cpd_right!r}&cadence={args.cadence!r}"
        f"&seconds=300&sim_seed={args.seed}&seed={args.seed}&speed={args.speed!r}&loss={args.loss!r}"
    )
    return spec


def run(args: argparse.Namespace) -> int:
    from .live import run_session

    return run_session(args, demo_spec(args), title="pelvimon demo — emulated sensor, simulated runner")
