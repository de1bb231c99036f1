"""Throughput and CPU share of a 200 Hz stream through the whole BLE client (emulated Movesense backend).

Prints notifications/s, samples/s and CPU share (process time / wall time) for a real-time run (~10 s)
and an accelerated run (speed 200). Usage: python benchmarks/bench_ble_stream.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.ble import BleSource
from pelvimon.sensors.emulated import EmulatedSensor, EmulatedSetup, EmulatedWorld
from pelvimon.sensors.source import RawNotification


async def run(seconds: float, speed: float) -> tuple[int, int, float, float]:
    sensor = EmulatedSensor("movesense", sim={"seconds": 120.0})
    sensor.prepare(200)
    world = EmulatedWorld([sensor], speed=speed)
    src = BleSource(sensor.address, protocol="movesense", rate_hz=200, **EmulatedSetup(world, sensor).source_kwargs())
    n_raw = n_samp = 0
    w0, c0 = time.perf_counter(), time.process_time()
    async with src:
        async for ev in src:
            if isinstance(ev, RawNotification):
                n_raw += 1
            elif isinstance(ev, ImuBatch):
                n_samp += len(ev)
            if world.clock.now() >= seconds:
                break
    return n_raw, n_samp, time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    for label, speed in (("real time", 1.0), ("accelerated x200", 200.0)):
        n_raw, n_samp, wall, cpu = asyncio.run(run(a.seconds if speed == 1 else 120.0, speed))
        print(
            f"{label:>18}: {n_raw / wall:8.0f} notifications/s, {n_samp / wall:9.0f} samples/s, "
            f"CPU {100 * cpu / wall:5.1f} % of a core ({n_samp} samples in {wall:.2f} s wall)"
        )


if __name__ == "__main__":
    main()
