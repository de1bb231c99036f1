"""The real client over real ATT/GATT: BleSource and bleak against emulated sensors served by bumble on
an in-process LocalLink (advertising, active scan, connection, MTU exchange, discovery, CCCD writes,
write requests, read requests, notifications, clean stop)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from pelvimon.firmware_protocols import registry
from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.ble import BleSource, scan
from pelvimon.sensors.bumble_link import BumbleBleakClient, BumbleBleakScanner, BumbleWorld
from pelvimon.sensors.emulated import EmulatedSensor
from pelvimon.sensors.source import RawNotification, SourceStatus

STREAM_S = 2.5


async def _session(proto: str, rate: float):
    sensor = EmulatedSensor(proto, sim={"seconds": 30.0, "seed": 4, "stand_s": 0.5})
    sensor.prepare(rate)
    sensor.track_delivery()
    events: list = []
    async with BumbleWorld([sensor]) as world:
        found = await scan(0.3, backend=BumbleBleakScanner, backend_kwargs={"world": world})
        src = BleSource(
            sensor.name,
            rate_hz=rate,
            client_backend=BumbleBleakClient,
            scanner_backend=BumbleBleakScanner,
            backend_kwargs={"world": world},
            timebase=world.clock,
        )
        cpu0 = time.process_time()
        async with src:
            mtu = src._client.mtu_size
            t_start = world.clock.now()
            async for ev in src:
                events.append(ev)
                if world.clock.now() - t_start > STREAM_S:
                    break
            config = world.peripherals[0].models[-1].config  # what the start writes asked for
        async for ev in src:  # what close() queued
            events.append(ev)
        cpu = time.process_time() - cpu0
        periph = world.peripherals[0]
        model = periph.models[-1]
        return sensor, src, found, events, mtu, (model, config), periph, cpu


def _device_batches(proto: str, src: BleSource, events: list) -> list[ImuBatch]:
    dec = registry.get(proto).decoder(**src.info.metadata["decoder_context"])
    for char, hexdata, _ in src.info.metadata["start_writes"]:
        getattr(dec, "observe_write", lambda *a: None)(char, bytes.fromhex(hexdata))
    out: list[ImuBatch] = []
    for ev in events:
        if isinstance(ev, RawNotification):
            out += [b for b in dec.feed(ev.char_uuid, ev.data, ev.t_host_s) if len(b)]
    return out


@pytest.mark.parametrize(("proto", "rate"), [("movesense", 208.0), ("polar_pmd", 208.0)])
def test_ble_source_streams_through_bumble_att_gatt(proto: str, rate: float) -> None:
    sensor, src, found, events, mtu, (model, config), periph, cpu = asyncio.run(_session(proto, rate))
    # active scan: name, protocol (from the advertised service UUID), battery from the service data
    assert [(f.name, f.protocol, f.battery_pct) for f in found] == [(sensor.name, proto, sensor.battery_pct)]
    # MTU exchange took place (GATT default is 23; Movesense needs >= 155, Polar frames 232)
    assert mtu == 247
    # discovery + read requests: the Battery and Device Information reads came back over ATT
    assert src.info.metadata["battery_pct"] == sensor.battery_pct
    assert src.info.metadata["firmware"] == sensor.firmware
    # the start writes reached the peripheral model; the stop sequence ended the stream
    assert config is not None and config.rate_hz == pytest.approx(rate)
    assert not model.streaming
    kinds = [e.kind for e in events if isinstance(e, SourceStatus)]
    assert kinds == ["connecting", "connected", "stopped"], kinds  # no gap: the virtual link loses nothing
    raws = [e for e in events if isinstance(e, RawNotification)]
    assert 0 < len(raws) <= periph.n_notified
    batches = [e for e in events if isinstance(e, ImuBatch)]
    n = sum(len(b) for b in batches)
    assert n > 0.6 * rate * STREAM_S
    t = np.concatenate([b.t_s for b in batches])
    assert np.all(np.diff(t) > 0)
    assert np.median(np.diff(t)) == pytest.approx(1 / rate, rel=2e-3)
    # every sample decoded from the notifications is the simulator's, at its device time
    dev = _device_batches(proto, src, events)
    for kind in ("acc_mps2", "gyr_rads"):
        part = [b for b in dev if getattr(b, kind) is not None]
        t_dev = np.concatenate([b.t_s for b in part])
        k, truth = sensor.truth(rate, t_dev)
        assert np.all(np.abs(t_dev - truth.t_s) < 0.25 / rate)
        assert np.all(np.diff(k) == 1), "every sample, in order, none twice"
        tol = 0.01 if kind == "acc_mps2" else 0.005
        np.testing.assert_allclose(np.concatenate([getattr(b, kind) for b in part]), getattr(truth, kind), atol=tol)
    # and the stream's own accounting agrees with what the sensor delivered: nothing lost
    assert src.stream.n_lost == 0 and sensor.n_lost == 0
    print(f"{proto}: {len(raws)} notifications, {n} samples in {STREAM_S} s, CPU {cpu:.2f} s")
