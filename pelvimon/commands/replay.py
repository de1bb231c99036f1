"""``pelvimon replay``: run a recorded session through the live pipeline."""

from __future__ import annotations

import argparse

NAME = "replay"
ORDER = 40
HELP = "replay a session file through the live pipeline (raw notifications through the same decoders)"
DESCRIPTION = (
    "Replay a recorded session: its raw notifications go through the same decoders, clock mapping and "
    "analysis as live. As fast as possible by default, or at the recorded pace with --speed 1."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="session file (.mcap)")
    p.add_argument("--speed", type=float, default=0.0,
                   help="0 = as fast as possible (default), 1 = recorded pace, 2 = twice as fast")
    p.add_argument("--steps", action="store_true", help="print every step as it is detected")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="also write the replayed session (with fresh analysis) to FILE")
    p.add_argument("--config", default=None, metavar="FILE", help="analysis thresholds (TOML)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pelvimon.commands._session import run_engine
    from pelvimon.errors import PelvimonError, UsageError
    from pelvimon.sensors.replay import ReplaySource
    from pelvimon.sensors.session_file import SessionFileError

    if args.speed < 0:
        raise UsageError(f"--speed must be >= 0, got {args.speed:g}")
    out = Path(args.output) if args.output else None
    if out is not None and out.exists():
        raise PelvimonError(f"{out} exists already; choose another name for --output")
    try:
        source = ReplaySource(args.file, speed=args.speed)
    except SessionFileError as exc:
        raise PelvimonError(f"{exc}; give a session file written by 'pelvimon record' or 'pelvimon live'") from None
    return run_engine(source, record_to=out, seconds=None, name="replay", config_path=args.config,
                      quiet=args.quiet, verb="replayed", print_steps=args.steps)
