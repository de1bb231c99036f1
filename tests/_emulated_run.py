"""An emulated sensor streamed through the Bluetooth client until a session time, with every event it gave
(the fault and gap tests of tests/sensors)."""

from __future__ import annotations

from typing import Any

from pelvimon.sensors.spec import open_source


async def run_emulated(spec: str, until_s: float, **kw: Any) -> tuple[Any, Any, list]:
    """(source, emulated sensor with its delivery record, events) of ``spec`` (``emulated:...``) read until
    session time ``until_s``, then closed and drained."""
    src = open_source(spec, **kw)
    sensor = src.emulated_sensor
    sensor.track_delivery()
    events: list = []
    async with src:
        async for ev in src:
            events.append(ev)
            if src._now() > until_s:
                break
    async for ev in src:
        events.append(ev)
    return src, sensor, events
