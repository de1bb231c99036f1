"""``pelvimon record``: stream a sensor into a session file (with live analysis), no GUI."""

from __future__ import annotations

import argparse

from pelvimon.commands import _guards

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
    p.add_argument("-o", "--output", required=True, metavar="FILE.mcap", help="session file to write (.mcap)")
    p.add_argument("--seconds", type=_guards.positive_seconds, default=None, metavar="N",
                   help=f"stop after N seconds of session time, at most {_guards.MAX_SECONDS:g} (default: Ctrl-C)")
    p.add_argument("--rate", type=_guards.rate_hz, default=None, metavar="HZ",
                   help="sample rate to ask for, 20-2000 Hz (the sensor's nearest supported rate is used)")
    p.add_argument("--name", default="", help="session name stored in the file")
    p.add_argument("--config", default=None, metavar="FILE", help="analysis thresholds (TOML)")
    p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")


def run(args: argparse.Namespace) -> int:
    from pelvimon.commands._session import open_sensor, run_engine
    from pelvimon.config import load_config

    out = _guards.check_session_output(args.output, "-o", overwrite=args.overwrite)
    source = open_sensor(args.sensor, args.rate)
    config = load_config(args.config)
    # with --overwrite, the file is replaced once the sensor streams: a run that fails before keeps it
    return run_engine(source, record_to=out, seconds=args.seconds, name=args.name, config=config,
                      quiet=args.quiet, verb="recorded", overwrite=args.overwrite)
