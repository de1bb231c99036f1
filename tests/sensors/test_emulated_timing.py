"""Emulation time and session time: a busy host does not turn into a stalled sensor, and no sample is put
on the session clock after the moment it was received."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from pelvimon.firmware_protocols import registry
from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.emulated import EmulatedClock
from pelvimon.sensors.source import RawNotification, SourceStatus
from pelvimon.sensors.spec import open_source


def test_emulated_clock_pauses_while_the_host_is_blocked() -> None:
    async def go() -> tuple[float, float, float]:
        clock = EmulatedClock(speed=40, max_lag_s=0.1)
        await clock.sleep(0.5)  # idle: time runs at 40x
        a = clock.now()
        time.sleep(0.1)  # the host blocked for 0.1 s real = 4 s of emulation time
        b = clock.now()
        await clock.sleep(0.5)
        return a, b, clock.now()

    a, b, c = asyncio.run(go())
    assert 0 < a <= 0.6  # (a loaded machine pauses it a little more: never runs ahead)
    assert 0 <= b - a <= 0.1 + 1e-9  # not 4 s: at most one realistic delivery delay
    assert 0 < c - b <= 0.6
    plain = EmulatedClock(speed=40, max_lag_s=None)
    t0 = plain.now()
    time.sleep(0.02)
    assert plain.now() - t0 >= 0.75  # the plain wall clock keeps running


DEVICE_CLOCK = [p for p in registry.available() if registry.get(p).spec.device_clock]


@pytest.mark.parametrize("protocol", DEVICE_CLOCK)
def test_samples_are_never_on_the_session_clock_after_their_arrival(protocol: str) -> None:
    """Session time is the device clock seen through the fastest delivery: a sample cannot be later than
    the notification that carried it (Polar's acc and gyro frames used to push each other forward on one
    no-backwards guard, by seconds; a host stall at start-up did the same). Only while the first
    connection events teach the envelope may it run ahead, by less than a few connection intervals.

    Host-timed protocols without a counter are not held to this: a notification lost unseen shifts their
    sample clock by its samples until the fit re-anchors (documented in docs/bluetooth.md)."""

    async def go() -> list:
        src = open_source(f"emulated:{protocol}?speed=40&loss=0.05&seed=3")
        events: list = []
        async with src:
            async for ev in src:
                events.append(ev)
                if src._now() > 8.0:
                    break
        return events

    events = asyncio.run(go())
    last_rx = -np.inf
    late = []
    for ev in events:
        if isinstance(ev, RawNotification):
            last_rx = ev.t_host_s
        elif isinstance(ev, ImuBatch):
            late.append((last_rx, float(ev.t_s[-1]) - last_rx))
    arr = np.array(late)
    assert len(arr) and np.max(arr[:, 1]) < 0.06
    # later, a faster delivery than any before can still lower the envelope by a connection interval
    assert np.max(arr[arr[:, 0] > 2.0, 1]) < 0.02
    assert np.median(arr[arr[:, 0] > 2.0, 1]) < 0
    n = sum(len(e) for e in events if isinstance(e, ImuBatch))
    lost = sum(e.details["n_lost"] for e in events if isinstance(e, SourceStatus) and e.kind == "gap")
    assert n + lost > 0.8 * 8.0 * registry.get(protocol).spec.default_rate_hz * 0.6
