"""Clear one-line errors (no stack, not found, unsupported firmware) and the bounded queue."""

from __future__ import annotations

import asyncio

import pytest
from bleak.exc import BleakDeviceNotFoundError, BleakError

from pelvimon.cli import main
from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.ble import BleSource, Inbox, scan, translate_error
from pelvimon.sensors.emulated import (
    EmulatedBleakClient,
    EmulatedBleakScanner,
    EmulatedSensor,
    EmulatedSetup,
    EmulatedWorld,
)
from pelvimon.sensors.source import SourceError


def test_no_dbus_socket_becomes_no_stack_message() -> None:
    err = translate_error(FileNotFoundError(2, "No such file or directory"))
    assert "no Bluetooth stack" in str(err) and "emulated:" in str(err)
    assert "\n" not in str(err)


def test_permission_and_not_found_messages() -> None:
    assert "permission denied" in str(translate_error(PermissionError("Operation not permitted")))
    assert "not found" in str(translate_error(BleakDeviceNotFoundError("AA", "x"), "AA"))


def test_no_adapter_message() -> None:
    from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason

    exc = BleakBluetoothNotAvailableError("No Bluetooth adapters found.", BleakBluetoothNotAvailableReason.NO_BLUETOOTH)
    msg = str(translate_error(exc))
    assert msg.startswith("no usable Bluetooth adapter") and "power on" in msg and "\n" not in msg
    assert "no usable Bluetooth adapter" in str(translate_error(BleakError("adapter hci0 not found")))


def test_default_backend_without_dbus_gives_the_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    # no Bluetooth stack on this machine: bleak's platform backend raises FileNotFoundError
    with pytest.raises(SourceError, match="no Bluetooth stack"):
        asyncio.run(scan(0.1))
    assert main(["scan", "--timeout", "0.1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no Bluetooth stack" in err
    assert "pelvimon scan --emulated" in err and "--sensor" not in err  # scan has no --sensor


def test_scan_command_lists_emulated_sensors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--emulated"]) == 0
    out = capsys.readouterr().out
    assert "emulated:movesense" in out and "87 %" in out


def test_unknown_sensor_is_not_found() -> None:
    world = EmulatedWorld([], speed=50)

    async def run() -> None:
        src = BleSource(
            "Movesense 999",
            client_backend=EmulatedBleakClient,
            scanner_backend=EmulatedBleakScanner,
            backend_kwargs={"world": world},
            timebase=world.clock,
            scan_timeout_s=1.0,
        )
        async with src:
            pass

    with pytest.raises(SourceError, match="sensor Movesense 999 not found"):
        asyncio.run(run())


def test_wrong_firmware_is_reported() -> None:
    sensor = EmulatedSensor("movesense")
    sensor.layout = [(s, []) for s, _ in sensor.layout]  # services advertised, characteristics missing
    world = EmulatedWorld([sensor], speed=50)

    async def run() -> None:
        async with BleSource(sensor.address, protocol="movesense", **EmulatedSetup(world, sensor).source_kwargs()):
            pass

    with pytest.raises(SourceError, match="unsupported firmware"):
        asyncio.run(run())


def test_inbox_is_bounded_and_counts_drops() -> None:
    async def run() -> Inbox:
        box = Inbox(maxlen=4)
        for i in range(10):
            box.put_data(float(i), "c", b"x")
        return box

    box = asyncio.run(run())
    assert len(box) == 4 and box.dropped == 6 and box.received == 10
    assert [box.pop()[0] for _ in range(4)] == [0.0, 1.0, 2.0, 3.0]


def test_stalled_consumer_drops_and_reports() -> None:
    sensor = EmulatedSensor("movesense", sim={"seconds": 20.0})
    sensor.prepare(200)
    world = EmulatedWorld([sensor], speed=20)

    async def run() -> tuple[int, list]:
        src = BleSource(sensor.address, protocol="movesense", rate_hz=200, queue_size=16,
                        **EmulatedSetup(world, sensor).source_kwargs())
        infos = []
        async with src:
            await asyncio.sleep(0.3)  # consumer stalled for 6 s of stream
            n = 0
            async for ev in src:
                if getattr(ev, "kind", "") == "info":
                    infos.append(ev)
                if isinstance(ev, ImuBatch):
                    n += 1
                    if n > 20:
                        break
        return src.inbox.dropped, infos

    dropped, infos = asyncio.run(run())
    assert dropped > 100
    assert any(i.details.get("queue_dropped") for i in infos)
