"""``pelvimon replay``: run a recorded session through the live pipeline."""

from __future__ import annotations

import argparse
from typing import Any

from pelvimon.commands import _guards

NAME = "replay"
ORDER = 40
HELP = "replay a session file through the live pipeline (raw notifications through the same decoders)"
DESCRIPTION = (
    "Replay a recorded session: its raw notifications go through the same decoders, clock mapping and "
    "analysis as live. As fast as possible by default, or at the recorded pace with --speed 1."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    lo, hi = _guards.SPEED_RANGE
    p.add_argument("file", metavar="FILE", help="session file (.mcap)")
    p.add_argument("--speed", type=_guards.replay_speed, default=0.0, metavar="X",
                   help=f"0 = as fast as possible (default), 1 = recorded pace, 2 = twice as fast ({lo:g}-{hi:g})")
    p.add_argument("--steps", action="store_true", help="print every step as it is detected")
    p.add_argument("-o", "--output", default=None, metavar="FILE.mcap",
                   help="also write the replayed session (with fresh analysis) to FILE.mcap")
    p.add_argument("--config", default=None, metavar="FILE", help="analysis thresholds (TOML)")


def first_samples(reader: Any) -> str | None:
    """None if the session file of ``reader`` (a ``SessionReader``) holds at least one sample or raw
    notification, else why it holds none.

    Reads only up to the first one (``items()`` starts afresh on every call, so the reader is reused). The
    reader's own warning about a damaged file is kept quiet here: the caller turns the answer into one
    line.
    """
    from pelvimon.analysis import held_reader_warnings
    from pelvimon.firmware_protocols.batch import ImuBatch
    from pelvimon.sensors.source import RawNotification

    with held_reader_warnings(quiet=True):
        for item in reader.items():
            if isinstance(item, RawNotification) or (isinstance(item, ImuBatch) and len(item)):
                return None
    if reader.damage:
        return reader.damage
    return "none were recorded" if reader.complete else "the file is cut short"


def run(args: argparse.Namespace) -> int:
    from pelvimon.commands._session import run_engine
    from pelvimon.config import load_config
    from pelvimon.errors import PelvimonError
    from pelvimon.sensors.replay import ReplaySource
    from pelvimon.sensors.session_file import SessionFileError

    out = None
    if args.output is not None:
        out = _guards.check_session_output(args.output, "-o", inputs=[args.file, args.config])
    hint = "give a session file written by 'pelvimon record' or 'pelvimon live'"
    try:
        source = ReplaySource(args.file, speed=args.speed)
        why = first_samples(source.reader)
    except SessionFileError as exc:
        raise PelvimonError(f"{exc}; {hint}") from None
    empty = f"{args.file} holds no readable samples ({{why}}); nothing to replay"
    if why is not None:
        raise PelvimonError(empty.format(why=why))
    return run_engine(source, record_to=out, seconds=None, name="replay", config=load_config(args.config),
                      quiet=args.quiet, verb="replayed", print_steps=args.steps,
                      no_samples=empty.format(why="none could be decoded"))
