"""End to end through bleak's public API against every emulated protocol: scan, connect, stream, 5 % loss,
a disconnect mid-run, clean stop. Every decoded sample must be a sample the emulated sensor sent."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from scipy.spatial import cKDTree

from pelvimon.firmware_protocols import registry
from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.ble import BleSource, StreamDecoder, scan
from pelvimon.sensors.emulated import (
    EmulatedBleakScanner,
    EmulatedSensor,
    EmulatedSetup,
    EmulatedWorld,
    Faults,
)
from pelvimon.sensors.source import RawNotification, SourceStatus

PROTOCOLS = [p for p in registry.available()]
SPEED = 25.0
RUN_S = 9.0


def _want_rate(proto: str) -> float:
    return 60.0 if proto == "movella_dot" else 200.0


async def _stream(proto: str, faults: Faults, run_s: float = RUN_S):
    sensor = EmulatedSensor(proto, sim={"seconds": 60.0, "seed": 2, "stand_s": 0.5}, faults=faults)
    sensor.prepare(_want_rate(proto))
    world = EmulatedWorld([sensor], speed=SPEED)
    found = await scan(0.05, backend=EmulatedBleakScanner, backend_kwargs={"world": world})
    src = BleSource(sensor.name, rate_hz=_want_rate(proto), **EmulatedSetup(world, sensor).source_kwargs())
    events: list = []
    async with src:
        async for ev in src:
            events.append(ev)
            if world.clock.now() > run_s:
                break
    # what close() queued (the "stopped" status) is drained by a second iteration
    async for ev in src:
        events.append(ev)
    return sensor, src, found, events


def _replay(proto: str, src: BleSource, events: list) -> list:
    """The raw notifications through a fresh StreamDecoder, as replay does them."""
    sd = StreamDecoder(registry.get(proto), src.info.metadata["decoder_context"], src.info.rate_hz)
    for char, hexdata, _ in src.info.metadata["start_writes"]:
        sd.observe_write(char, bytes.fromhex(hexdata))
    out: list = []
    for ev in events:
        if isinstance(ev, SourceStatus) and ev.kind == "disconnected":
            sd.reset()
        elif isinstance(ev, RawNotification):
            out += sd.feed(ev)
    return out


def _device_acc(proto: str, src: BleSource, events: list) -> list[ImuBatch]:
    """Accelerometer batches on the device clock (plain decoder, no session mapping)."""
    dec = registry.get(proto).decoder(**src.info.metadata["decoder_context"])
    if hasattr(dec, "observe_write"):
        for char, hexdata, _ in src.info.metadata["start_writes"]:
            dec.observe_write(char, bytes.fromhex(hexdata))
    out = []
    for ev in events:
        if isinstance(ev, SourceStatus) and ev.kind == "disconnected":
            dec.reset()
        elif isinstance(ev, RawNotification):
            try:
                out += [b for b in dec.feed(ev.char_uuid, ev.data, ev.t_host_s) if len(b) and b.acc_mps2 is not None]
            except ValueError:
                continue
    return out


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_stream_with_loss_and_disconnect_invents_no_sample(proto: str) -> None:
    faults = Faults(loss=0.05, disconnect_at=(4.0,), down_s=0.6, seed=7)
    sensor, src, found, events = asyncio.run(_stream(proto, faults))
    assert [f.protocol for f in found] == [proto]
    assert found[0].battery_pct == sensor.battery_pct
    rate = src.info.rate_hz
    assert src.info.protocol == proto and src.info.metadata["battery_pct"] == sensor.battery_pct

    kinds = [e.kind for e in events if isinstance(e, SourceStatus)]
    assert kinds[:2] == ["connecting", "connected"]
    assert "disconnected" in kinds and "reconnecting" in kinds
    assert kinds.count("connected") == 2
    first = next(e.message for e in events if isinstance(e, SourceStatus) and e.kind == "connected")
    asked = _want_rate(proto)
    assert f"streaming at {rate:g} Hz" in first  # (the rate used, and why it is not the one asked for)
    assert ("the nearest it offers to the" in first) == (rate != asked), first
    assert kinds[-1] == "stopped"
    gaps = [e for e in events if isinstance(e, SourceStatus) and e.kind == "gap"]
    assert gaps, "5 % loss and a disconnect must be reported as gaps"
    assert src.inbox.dropped == 0

    live = [e for e in events if isinstance(e, ImuBatch)]
    assert all(b.time_base == "session" for b in live)
    t_live = np.concatenate([b.t_s for b in live])
    assert np.all(np.diff(t_live) > 0), "session time runs forwards"
    # the first batch after the reconnect is flagged
    i_rec = next(i for i, e in enumerate(events) if isinstance(e, SourceStatus) and e.kind == "disconnected")
    after = next(e for e in events[i_rec:] if isinstance(e, ImuBatch))
    assert after.gap_before

    # replay of the raw bytes gives the very same batches
    again = [e for e in _replay(proto, src, events) if isinstance(e, ImuBatch)]
    assert sum(len(b) for b in again) == len(t_live)
    np.testing.assert_array_equal(np.concatenate([b.t_s for b in again]), t_live)

    # every sample is one the sensor sent, none twice
    run = sensor.samples(rate)
    acc = np.concatenate([b.acc_mps2 for b in live])
    dist, k = cKDTree(run.acc_mps2).query(acc)
    assert np.max(dist) < 0.01, "a sample that the sensor never sent"
    # (order and uniqueness by value alone are ambiguous on quantised data: checked by device time below)
    assert sensor.n_lost > 0
    # session time follows the sample clock: spacing equals the sample period
    assert np.median(np.diff(t_live)) == pytest.approx(1 / rate, rel=2e-3)

    if sensor.spec.device_clock:  # device times sit on the sensor's sample grid, values are those sent there
        dev = _device_acc(proto, src, events)
        t_dev = np.concatenate([b.t_s for b in dev])
        kt, truth = sensor.truth(rate, t_dev)
        assert np.all(np.abs(t_dev - truth.t_s) < 0.25 / rate)
        np.testing.assert_allclose(np.concatenate([b.acc_mps2 for b in dev]), truth.acc_mps2, atol=0.01)
        assert np.all(np.diff(kt) > 0), "in order, none twice"
        span = kt[-1] - kt[0] + 1
        assert span - len(kt) > 0.03 * span, "loss and the link drop leave holes"
        # (a Movesense DATA whose DATA_PART2 was lost, followed by a lost DATA, used to be completed with
        # the next packet's DATA_PART2: the gyro of another packet; see test_ble_movesense_split.py)
        if sensor.spec.has_gyro and len(dev) and dev[0].gyr_rads is not None:
            np.testing.assert_allclose(np.concatenate([b.gyr_rads for b in dev]), truth.gyr_rads, atol=0.005)
