"""Throughput and CPU of the bumble ATT/GATT link: BleSource streaming from an emulated sensor served by
a bumble peripheral on an in-process LocalLink, against the plain emulated backend in the same run.

Run: ``python benchmarks/bench_bumble_link.py [seconds]``. Prints notifications/s, samples/s and CPU
(% of one core) per protocol and transport.
"""

from __future__ import annotations

import asyncio
import sys
import time

from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.ble import BleSource
from pelvimon.sensors.bumble_link import BumbleBleakClient, BumbleBleakScanner, BumbleWorld
from pelvimon.sensors.emulated import EmulatedSensor, EmulatedSetup, EmulatedWorld
from pelvimon.sensors.source import RawNotification

CASES = [("witmotion", 200.0), ("movesense", 208.0), ("pelvimon", 200.0)]


async def _stream(src: BleSource, clock, seconds: float) -> tuple[int, int, float, float]:
    n_raw = n = 0
    async with src:
        cpu0, t0 = time.process_time(), time.monotonic()
        start = clock.now()
        async for ev in src:
            if isinstance(ev, RawNotification):
                n_raw += 1
            elif isinstance(ev, ImuBatch):
                n += len(ev)
            if clock.now() - start > seconds:
                break
        cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    return n_raw, n, cpu, wall


async def _bumble(proto: str, rate: float, seconds: float):
    sensor = EmulatedSensor(proto)
    sensor.prepare(rate)
    async with BumbleWorld([sensor]) as world:
        src = BleSource(
            sensor.address, protocol=proto, rate_hz=rate, client_backend=BumbleBleakClient,
            scanner_backend=BumbleBleakScanner, backend_kwargs={"world": world}, timebase=world.clock,
        )
        return await _stream(src, world.clock, seconds)


async def _plain(proto: str, rate: float, seconds: float):
    sensor = EmulatedSensor(proto)
    sensor.prepare(rate)
    world = EmulatedWorld([sensor])
    src = BleSource(sensor.address, protocol=proto, rate_hz=rate, **EmulatedSetup(world, sensor).source_kwargs())
    return await _stream(src, world.clock, seconds)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    print(f"{'protocol':10s} {'transport':9s} {'notif/s':>8s} {'samples/s':>9s} {'CPU %':>6s}")
    for proto, rate in CASES:
        for name, fn in (("plain", _plain), ("bumble", _bumble)):
            n_raw, n, cpu, wall = asyncio.run(fn(proto, rate, seconds))
            print(f"{proto:10s} {name:9s} {n_raw / wall:8.0f} {n / wall:9.0f} {100 * cpu / wall:6.1f}")


if __name__ == "__main__":
    main()
