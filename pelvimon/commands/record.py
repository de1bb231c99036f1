"""``pelvimon record``: stream a sensor into a session file (with live analysis), no GUI."""

from __future__ import annotations

import argparse

NAME = "record"
ORDER = 30
HELP = "record a sensor to a session file (raw notifications, samples, steps, alerts)"
DESCRIPTION = (
    "Connect to a sensor (or an emulated one), stream it, analyse it live and write everything to an "
    "append-only session file (MCAP) that survives a crash (at most the last second is lost)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sensor", required=True, metavar="SPEC",
                   help="sensor address or name, or emulated:PROTOCOL[?key=value&...] (see docs/bluetooth.md)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="session file to write (.mcap)")
    p.add_argument("--seconds", type=float, default=None, metavar="N", help="stop after N seconds (default: Ctrl-C)")
    p.add_argument("--rate", type=float, default=None, metavar="HZ", help="sample rate to ask for (nearest supported)")
    p.add_argument("--name", default="", help="session name stored in the file")
    p.add_argument("--config", default=None, metavar="FILE", help="analysis thresholds (TOML)")
    p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pelvimon.commands._session import open_sensor, run_engine
    from pelvimon.errors import PelvimonError, UsageError

    if args.seconds is not None and args.seconds <= 0:
        raise UsageError(f"--seconds must be > 0, got {args.seconds:g}")
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise PelvimonError(f"{out} exists already; choose another name or add --overwrite")
    if out.exists():
        out.unlink()
    source = open_sensor(args.sensor, args.rate)
    return run_engine(source, record_to=out, seconds=args.seconds, name=args.name, config_path=args.config,
                      quiet=args.quiet, verb="recorded")
