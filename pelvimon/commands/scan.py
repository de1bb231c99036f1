"""``pelvimon scan``: list nearby supported sensors."""

from __future__ import annotations

import argparse
import os

from pelvimon.commands import _guards

NAME = "scan"
ORDER = 10
HELP = "list nearby supported sensors (name, address, protocol, signal, battery)"
DESCRIPTION = (
    "Scan for Bluetooth LE sensors pelvimon can read (Movesense, Polar Verity Sense and H10, MetaWear, WitMotion, "
    "Movella DOT, pelvimon DIY boards). With --emulated (or PELVIMON_EMULATED=1) the emulated sensors are "
    "listed instead, so the command works without Bluetooth hardware."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout", type=_guards.scan_seconds, default=5.0, metavar="S",
        help=f"scan time in s, at most {_guards.MAX_SCAN_S:g} (default 5)",
    )
    parser.add_argument(
        "--emulated", action="store_true", help="list the emulated sensors (no hardware needed)"
    )
    parser.add_argument("--all", action="store_true", help="also list devices pelvimon cannot read")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from pelvimon.errors import PelvimonError, UsageError
    from pelvimon.sensors.ble import scan
    from pelvimon.sensors.source import SourceError

    if not args.timeout > 0:
        raise UsageError(f"--timeout must be > 0 s, got {args.timeout}")
    kwargs: dict = {}
    emulated = args.emulated or os.environ.get("PELVIMON_EMULATED", "") not in ("", "0")
    if emulated:
        from pelvimon.firmware_protocols import registry
        from pelvimon.sensors.emulated import EmulatedBleakScanner, EmulatedSensor, EmulatedWorld

        world = EmulatedWorld([EmulatedSensor(p, rssi=-50 - 6 * i) for i, p in enumerate(registry.available())])
        kwargs = {"backend": EmulatedBleakScanner, "backend_kwargs": {"world": world}}
    timeout = min(args.timeout, 0.3) if emulated else args.timeout
    try:
        found = asyncio.run(scan(timeout, all_devices=args.all, **kwargs))
    except SourceError as exc:
        raise PelvimonError(str(exc)) from None
    if not found:
        print(f"no supported sensor found in {args.timeout:g} s (switch it on, move it to wake it, bring it close)")
        return 0
    rows = [("NAME", "ADDRESS", "PROTOCOL", "RSSI", "BATTERY")]
    for s in found:
        rows.append(
            (
                s.name or "?",
                s.address,
                (("emulated:" + s.protocol) if emulated else s.protocol) or "-",
                "" if s.rssi is None else f"{s.rssi} dBm",
                "" if s.battery_pct is None else f"{s.battery_pct} %",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0
