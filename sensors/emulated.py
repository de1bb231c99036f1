"""Emulated BLE sensors: bleak client and scanner backends that talk to in-process peripherals.

An :class:`EmulatedSensor` behaves like the real device of one protocol: it advertises its services, name,
RSSI and battery; exposes a real ``BleakGATTServiceCollection``; answers the client's writes through the
protocol's :class:`~pelvimon.firmware_protocols.base.PeripheralModel` (the vendor's command handling), and
notifies simulated samples in the protocol's real bytes (``PeripheralModel.encode``) on its own device
clock (an offset from the emulation's time plus a small drift), several notifications per connection
event as a real link delivers them.

Faults (see ``docs/bluetooth.md``): random notification loss (``loss``), delayed bursts (``burst_every``,
``burst_s``), link drops (``disconnect_at``, unreachable for ``down_s`` afterwards), and a sensor that stops
sending (``stall_at``). All randomness is seeded.

Time: an :class:`EmulatedClock` runs ``speed`` times faster than real time; the :class:`BleSource` that
talks to the emulation uses the same clock (``timebase=world.clock``), so host receive times, device time
and backoff delays all run accelerated and tests take a fraction of the stream's duration.

Use through bleak's public API::

    world = EmulatedWorld([EmulatedSensor("movesense")], speed=20)
    async with BleakClient(world.sensors[0].address, backend=EmulatedBleakClient, world=world) as c:
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid as uuidlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError

from pelvimon.firmware_protocols import registry
from pelvimon.firmware_protocols.base import PeripheralModel, Protocol
from pelvimon.firmware_protocols.batch import ImuBatch

BATTERY_SERVICE_UUID = "0000180f-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL_UUID = "00002a19-0000-1000-8000-00805f9b34fb"
DEVICE_INFO_SERVICE_UUID = "0000180a-0000-1000-8000-00805f9b34fb"
FIRMWARE_REVISION_UUID = "00002a26-0000-1000-8000-00805f9b34fb"
CCCD_UUID = "00002902-0000-1000-8000-00805f9b34fb"

DEFAULT_NAMES = {
    "movesense": "Movesense 000000000001",
    "polar_pmd": "Polar Sense EMU00001",
    "metawear": "MetaWear",
    "witmotion": "WT901BLE68",
    "movella_dot": "Movella DOT",
    "pelvimon": "pelvimon-imu",
}


class EmulatedClock:
    """Emulation time: real monotonic time times ``speed``, from 0 at construction (s), paused while the
    host process is stalled.

    A real sensor keeps measuring while the host is busy, and its notifications wait in the radio and the
    operating system: a few milliseconds. At ``speed`` 40 the same few milliseconds of a busy host (a
    garbage collection, an import, another process on the CPU) would be 40 times as long in emulation
    time, enough to look like a stalled sensor or a lost link. So emulation time does not advance by more
    than ``max_lag_s`` (emulation s) between two readings of the clock: whatever the host was blocked for
    beyond that is taken out. A heartbeat on the running event loop (a timer callback, not a task: a loop
    that closes with it pending drops it silently) reads the clock every quarter of that, so an idle loop
    never loses time; only a blocked one does.

    Parameters
    ----------
    speed : float
        Emulation seconds per real second.
    max_lag_s : float
        Longest step of emulation time between two readings, s of emulation time (a realistic delivery
        delay); None never pauses (pure wall clock).
    """

    def __init__(self, speed: float = 1.0, max_lag_s: float | None = 0.1) -> None:
        if not speed > 0:
            raise ValueError(f"EmulatedClock: speed must be > 0, got {speed}")
        if max_lag_s is not None and not max_lag_s > 0:
            raise ValueError(f"EmulatedClock: max_lag_s must be > 0 or None, got {max_lag_s}")
        self.speed = float(speed)
        self.max_lag_s = max_lag_s
        self._tol_real = None if max_lag_s is None else max_lag_s / self.speed
        self.paused_s = 0.0
        """Real seconds taken out because the host was blocked."""
        self._t0 = time.monotonic()
        self._last = self._t0
        self._heartbeats: dict[asyncio.AbstractEventLoop, asyncio.TimerHandle] = {}

    def now(self) -> float:
        w = time.monotonic()
        if self._tol_real is not None:
            step = w - self._last
            if step > self._tol_real:
                self.paused_s += step - self._tol_real
            self._last = w
            self._ensure_heartbeat()
        return (w - self._t0 - self.paused_s) * self.speed

    def restart(self) -> None:
        """Emulation time back to 0 (after slow set-up work, before the sensors are used)."""
        self._t0 = time.monotonic()
        self._last = self._t0
        self.paused_s = 0.0

    def _ensure_heartbeat(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if loop in self._heartbeats:
            return
        assert self._tol_real is not None
        self._heartbeats = {lp: h for lp, h in self._heartbeats.items() if not lp.is_closed()}
        self._heartbeats[loop] = loop.call_later(self._tol_real / 4, self._beat, loop)

    def _beat(self, loop: asyncio.AbstractEventLoop) -> None:
        self._heartbeats.pop(loop, None)
        self.now()  # (schedules the next beat)

    async def sleep(self, seconds: float) -> None:
        self.now()  # starts the heartbeat on this loop
        await asyncio.sleep(max(seconds, 0.0) / self.speed)


@dataclass(frozen=True)
class Faults:
    """Faults an emulated sensor injects (times in s of emulation time since the sensor was created).

    Attributes
    ----------
    loss : float
        Probability that a notification is lost (0..1).
    burst_every : float or None
        Every this many s, notifications are held back for ``burst_s`` and then delivered at once.
    burst_s : float
        Length of a held-back burst, s.
    disconnect_at : tuple of float
        Times at which the sensor drops the link.
    down_s : float
        How long the sensor is unreachable after a drop, s.
    stall_at : float or None
        From this time the sensor stops notifying (stays connected) until the client reconnects.
    seed : int
        Seed of the loss draws.
    """

    loss: float = 0.0
    burst_every: float | None = None
    burst_s: float = 0.3
    disconnect_at: tuple[float, ...] = ()
    down_s: float = 1.0
    stall_at: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss < 1.0:
            raise ValueError(f"loss must be in [0, 1), got {self.loss}")
        if self.burst_every is not None and self.burst_every <= self.burst_s:
            raise ValueError(f"burst_every ({self.burst_every}) must be longer than burst_s ({self.burst_s})")
        if self.down_s < 0:
            raise ValueError(f"down_s must be >= 0, got {self.down_s}")


def default_address(protocol: str, index: int = 0) -> str:
    """A stable made-up address per protocol (locally administered range)."""
    h = zlib.crc32(f"{protocol}/{index}".encode())
    b = [0xC2, (h >> 24) & 0xFF, (h >> 16) & 0xFF, (h >> 8) & 0xFF, h & 0xFF, index & 0xFF]
    return ":".join(f"{x:02X}" for x in b)


def simulated_samples(rate_hz: float, sim: dict[str, Any]) -> ImuBatch:
    """Samples of the pelvimon simulator for an emulated sensor (``sim``: :class:`SimParams` fields)."""
    from .simulator import SimParams, simulate

    params = {"seconds": 120.0, **sim, "rate_hz": rate_hz}
    return simulate(SimParams(**params)).batch


class EmulatedSensor:
    """One emulated peripheral (see the module docstring).

    Parameters
    ----------
    protocol : str
        Protocol name (``movesense``, ``polar_pmd``, ...).
    name, address : str, optional
        Advertised name and address (defaults per protocol).
    sim : dict, optional
        Simulator parameters (:class:`~pelvimon.sensors.simulator.SimParams` fields); the sample rate is
        the one the client asks for. The simulated run repeats when it ends.
    samples : callable, optional
        ``samples(rate_hz) -> ImuBatch`` instead of the simulator (tests).
    faults : Faults, optional
        Faults to inject.
    device_offset_s : float
        Device clock at emulation time 0, s.
    drift : float
        Device clock rate error (device s per emulation s, minus 1).
    conn_interval_s : float
        Connection interval: notifications are delivered in events this far apart.
    battery_pct : int
        Battery level (advertised and in the Battery Service).
    rssi : int
        Advertised signal strength, dBm.
    peripheral_options : dict, optional
        Passed to the protocol's ``peripheral()``.
    """

    def __init__(
        self,
        protocol: str,
        *,
        name: str | None = None,
        address: str | None = None,
        sim: dict[str, Any] | None = None,
        samples: Callable[[float], ImuBatch] | None = None,
        faults: Faults | None = None,
        device_offset_s: float = 1234.5,
        drift: float = 40e-6,
        conn_interval_s: float = 0.015,
        battery_pct: int = 87,
        rssi: int = -58,
        peripheral_options: dict[str, Any] | None = None,
    ) -> None:
        self.protocol: Protocol = registry.get(protocol)
        self.spec = self.protocol.spec
        self.name = name or DEFAULT_NAMES.get(protocol, protocol)
        self.address = address or default_address(protocol)
        self.sim = dict(sim or {})
        self._samples_fn = samples
        self.faults = faults or Faults()
        self.device_offset_s = device_offset_s
        self.drift = drift
        self.conn_interval_s = conn_interval_s
        self.battery_pct = battery_pct
        self.rssi = rssi
        self.peripheral_options = dict(peripheral_options or {})
        self.firmware = "emulated-1.0"
        self.clock = EmulatedClock(1.0)
        self._rng = np.random.default_rng(self.faults.seed)
        self._loss_rng = np.random.default_rng(self.faults.seed)  # loss pattern: one draw per notification
        self._down_until = -1.0
        self._disconnects = sorted(self.faults.disconnect_at)
        self._stall_used = False
        self._cache: dict[float, ImuBatch] = {}
        self.link: EmulatedLink | None = None
        self.n_sent = 0
        self.n_lost = 0
        self.n_withheld = 0
        """Notifications a stalled sensor never sent."""
        self.n_skipped = 0
        """Samples not measured into a stream because no client was streaming (link down, reconnecting)."""
        self._last_k: int | None = None
        self._last_rate = 0.0
        self.track = False
        self._delivered: list[np.ndarray] = []
        self.layout = self._layout()

    # -- GATT layout ---------------------------------------------------------------------------------
    def _layout(self) -> list[tuple[str, list[tuple[str, list[str]]]]]:
        """[(service uuid, [(char uuid, properties)])] with handles assigned by :meth:`gatt`."""
        spec = self.spec
        props: dict[str, list[str]] = {}
        for u in spec.notify_uuids:
            props.setdefault(u.lower(), []).append("notify")
        writes = [spec.write_uuid] if spec.write_uuid else []
        writes += list(spec.extra.get("other_write_uuids", ()))
        for u in writes:
            props.setdefault(u.lower(), []).extend(["write", "write-without-response"])
        main = [(u, p) for u, p in props.items()]
        services = [(spec.service_uuids[0].lower(), main)]
        services += [(s.lower(), []) for s in spec.service_uuids[1:]]
        services.append((BATTERY_SERVICE_UUID, [(BATTERY_LEVEL_UUID, ["read", "notify"])]))
        services.append((DEVICE_INFO_SERVICE_UUID, [(FIRMWARE_REVISION_UUID, ["read"])]))
        return services

    def gatt(self) -> BleakGATTServiceCollection:
        """A fresh bleak service collection of this sensor (handles as a GATT server would number them)."""
        coll = BleakGATTServiceCollection()
        handle = 1
        for suuid, chars in self.layout:
            svc = BleakGATTService(None, handle, suuid)
            coll.add_service(svc)
            handle += 1
            for cuuid, props in chars:
                ch = BleakGATTCharacteristic(None, handle + 1, cuuid, props, lambda: 244, svc)  # type: ignore[arg-type]
                handle += 2
                coll.add_characteristic(ch)
                if "notify" in props:
                    coll.add_descriptor(BleakGATTDescriptor(None, handle, CCCD_UUID, ch))
                    handle += 1
        return coll

    def read(self, char_uuid: str) -> bytes:
        u = char_uuid.lower()
        if u == BATTERY_LEVEL_UUID:
            return bytes([self.battery_pct])
        if u == FIRMWARE_REVISION_UUID:
            return self.firmware.encode()
        raise BleakError(f"characteristic {char_uuid} is not readable on {self.name}")

    # -- availability --------------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """Advertising and connectable (not in the down time after a link drop, not connected)."""
        return self.link is None and self.clock.now() >= self._down_until

    def advertisement(self) -> AdvertisementData:
        rssi = self.rssi + int(self._rng.integers(-3, 4))
        return AdvertisementData(
            local_name=self.name,
            manufacturer_data={},
            service_data={BATTERY_SERVICE_UUID: bytes([self.battery_pct])},
            service_uuids=[u.lower() for u in self.spec.service_uuids],
            tx_power=None,
            rssi=rssi,
            platform_data=(),
        )

    # -- device clock and samples --------------------------------------------------------------------
    def device_time(self, t_emu_s: np.ndarray | float) -> np.ndarray:
        """Device clock (s) at emulation times (s)."""
        return self.device_offset_s + (1.0 + self.drift) * np.asarray(t_emu_s, dtype=np.float64)

    def prepare(self, rate_hz: float | None = None) -> None:
        """Compute the sample run for ``rate_hz`` (default: the protocol's rate nearest 200 Hz) ahead of use."""
        rates = np.asarray(self.spec.rates_hz or (self.spec.default_rate_hz,), dtype=np.float64)
        want = 200.0 if rate_hz is None else rate_hz
        self.samples(float(rates[int(np.argmin(np.abs(rates - want)))]))

    def samples(self, rate_hz: float) -> ImuBatch:
        """The sample run at ``rate_hz`` (sample k is at device time ``device_offset_s + k / rate_hz``)."""
        if rate_hz not in self._cache:
            fn = self._samples_fn or (lambda r: simulated_samples(r, self.sim))
            self._cache[rate_hz] = fn(rate_hz)
        return self._cache[rate_hz]

    def truth(self, rate_hz: float, t_device_s: np.ndarray) -> tuple[np.ndarray, ImuBatch]:
        """Sample indices (nearest) and the emulated samples sent at the given device times."""
        k = np.round((np.asarray(t_device_s) - self.device_offset_s) * rate_hz).astype(np.int64)
        run = self.samples(rate_hz)
        idx = np.mod(k, len(run))
        return k, ImuBatch(
            t_s=self.device_offset_s + k / rate_hz,
            acc_mps2=None if run.acc_mps2 is None else run.acc_mps2[idx],
            gyr_rads=None if run.gyr_rads is None else run.gyr_rads[idx],
        )

    def _batch(self, rate_hz: float, k0: int, k1: int) -> ImuBatch:
        run = self.samples(rate_hz)
        k = np.arange(k0, k1)
        idx = np.mod(k, len(run))
        return ImuBatch(
            t_s=self.device_offset_s + k / rate_hz,
            acc_mps2=None if run.acc_mps2 is None else run.acc_mps2[idx],
            gyr_rads=None if run.gyr_rads is None else run.gyr_rads[idx],
            mag_uT=None if run.mag_uT is None else run.mag_uT[idx],
            time_base="device",
        )

    # -- accounting ----------------------------------------------------------------------------------
    def track_delivery(self, on: bool = True) -> None:
        """Record the grid index of every sample delivered to a client (device-clock protocols).

        Each link decodes what it delivered with a fresh decoder of the protocol (a sample of a separately
        sent stream counts once all its streams arrived); see :meth:`delivered_k` and :meth:`missing`.
        """
        self.track = on

    def delivered_k(self) -> np.ndarray:
        """Sorted unique grid indices (``k`` of :meth:`truth`) of the samples delivered so far."""
        if not self._delivered:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(self._delivered))

    def missing(self, k_first: int, k_last: int) -> int:
        """Samples of the grid in ``[k_first, k_last]`` the sensor did not deliver (lost, not sent while
        the link was down or stalled, or held in a packet the link closed on)."""
        k = self.delivered_k()
        n_in = int(np.count_nonzero((k >= k_first) & (k <= k_last)))
        return int(k_last - k_first + 1 - n_in)

    # -- links ---------------------------------------------------------------------------------------
    def connect(self, deliver: Callable[[str, bytes], None], lost: Callable[[], None]) -> EmulatedLink:
        """Open a link; ``deliver(char, data)`` receives notifications, ``lost()`` a drop by the sensor."""
        if not self.available:
            raise BleakDeviceNotFoundError(self.address, f"Device with address {self.address} was not found")
        self.link = EmulatedLink(self, deliver, lost)
        return self.link

    def _link_closed(self, link: EmulatedLink, dropped: bool) -> None:
        if self.link is link:
            self.link = None
        if dropped:
            self._down_until = self.clock.now() + self.faults.down_s

    def _next_disconnect(self, now: float) -> float | None:
        return self._disconnects[0] if self._disconnects else None


class EmulatedLink:
    """One connection to an :class:`EmulatedSensor`: a fresh peripheral model and the streaming task."""

    def __init__(self, sensor: EmulatedSensor, deliver: Callable[[str, bytes], None], lost: Callable[[], None]):
        self.sensor = sensor
        self.model: PeripheralModel = sensor.protocol.peripheral(**sensor.peripheral_options)
        self._deliver = deliver
        self._lost = lost
        self.subscribed: set[str] = set()
        self.open = True
        self._pending: list[tuple[str, bytes, Any]] = []
        self._next_k: int | None = None
        self._rate_hz = 0.0
        self._stalled = False
        self._writes: list[tuple[str, bytes]] = []
        self._shadow: Any = None
        self._shadow_k: dict[str, list[np.ndarray]] = {"acc": [], "gyr": []}
        self._cursor: dict[str, int] = {}
        self._k_first: int | None = None
        self._task = asyncio.get_running_loop().create_task(self._run())

    def subscribe(self, char_uuid: str, on: bool = True) -> None:
        if on:
            self.subscribed.add(char_uuid.lower())
        else:
            self.subscribed.discard(char_uuid.lower())

    def write(self, char_uuid: str, data: bytes) -> None:
        if not self.open:
            raise BleakError("not connected")
        self._writes.append((char_uuid.lower(), bytes(data)))
        for char, payload in self.model.handle_write(char_uuid.lower(), bytes(data)):
            self._notify(char, payload)

    def _notify(self, char: str, payload: bytes, ks: list[tuple[str, np.ndarray]] | None = None) -> None:
        if self.open and char.lower() in self.subscribed:
            self._deliver(char.lower(), payload)
            if self.sensor.track:
                if self.sensor.spec.device_clock:
                    self._record(self._grid_of(self._shadow_feed(char.lower(), payload)))
                elif ks is not None:
                    self._record(ks)
                else:
                    self._shadow_feed(char.lower(), payload)  # a reply: decoder state only

    # -- delivery accounting (EmulatedSensor.track_delivery) ------------------------------------------------
    def _shadow_feed(self, char: str, payload: bytes) -> list[ImuBatch]:
        """The notification through this link's own decoder of the protocol (what a client could decode)."""
        s = self.sensor
        if self.model.config is None:
            return []
        if self._shadow is None:
            from .ble import decoder_context

            self._shadow = s.protocol.decoder(**decoder_context(s.protocol, self.model.config))
            observe = getattr(self._shadow, "observe_write", None)
            if observe is not None:
                for c, d in self._writes:
                    observe(c, d)
        try:
            return [b for b in self._shadow.feed(char, payload, s.clock.now()) if len(b)]
        except ValueError:
            return []

    @staticmethod
    def _kind(b: ImuBatch) -> str:
        if b.acc_mps2 is not None:
            return "both" if b.gyr_rads is not None else "acc"
        return "gyr" if b.gyr_rads is not None else "other"

    def _grid_of(self, batches: list[ImuBatch]) -> list[tuple[str, np.ndarray]]:
        """Grid indices from device times (device-clock protocols)."""
        s = self.sensor
        rate = self._rate()
        return [
            (self._kind(b), np.round((b.t_s - s.device_offset_s) * rate).astype(np.int64))
            for b in batches
            if b.time_base == "device"
        ]

    def _grid_by_order(self, batches: list[ImuBatch]) -> list[tuple[str, np.ndarray]]:
        """Grid indices from the order of encoding (host-timed protocols: samples leave in order)."""
        out = []
        for b in batches:
            kind = self._kind(b)
            k0 = self._cursor.setdefault(kind, self._k_first or 0)
            out.append((kind, np.arange(k0, k0 + len(b), dtype=np.int64)))
            self._cursor[kind] = k0 + len(b)
        return out

    def _record(self, ks: list[tuple[str, np.ndarray]]) -> None:
        s = self.sensor
        for kind, k in ks:
            if kind == "other":
                continue
            if kind == "both" or not s.spec.has_gyro:
                s._delivered.append(k)
                continue
            self._shadow_k[kind].append(k)
            acc, gyr = (np.concatenate(v) if v else np.zeros(0, np.int64) for v in self._shadow_k.values())
            both = np.intersect1d(acc, gyr)
            if both.size:
                s._delivered.append(both)
                self._shadow_k = {"acc": [acc[acc > both[-1]]], "gyr": [gyr[gyr > both[-1]]]}

    def close(self, dropped: bool = False) -> None:
        if not self.open:
            return
        self.open = False
        self._task.cancel()
        self.sensor._link_closed(self, dropped)
        if dropped:
            self._lost()

    def _rate(self) -> float:
        cfg = self.model.config
        spec = self.sensor.spec
        want = cfg.rate_hz if cfg is not None else spec.default_rate_hz
        rates = np.asarray(spec.rates_hz or (spec.default_rate_hz,), dtype=np.float64)
        return float(rates[int(np.argmin(np.abs(rates - want)))])

    async def _run(self) -> None:
        s = self.sensor
        f = s.faults
        clock = s.clock
        try:
            while self.open:
                await clock.sleep(s.conn_interval_s)
                now = clock.now()
                nd = s._next_disconnect(now)
                if nd is not None and now >= nd:
                    s._disconnects.pop(0)
                    self.close(dropped=True)
                    return
                if f.stall_at is not None and not s._stall_used and now >= f.stall_at:
                    s._stall_used = True
                    self._stalled = True
                if not self.model.streaming:
                    self._next_k = None
                    continue
                rate = self._rate()
                k_now = int(np.floor((float(s.device_time(now)) - s.device_offset_s) * rate)) + 1
                if self._next_k is None or rate != self._rate_hz:
                    self._rate_hz = rate
                    self._next_k = k_now
                    if s._last_k is not None and rate == s._last_rate:
                        s.n_skipped += max(k_now - s._last_k, 0)
                    continue
                if k_now > self._next_k:
                    if self._k_first is None:
                        self._k_first = self._next_k
                    batch = s._batch(rate, self._next_k, k_now)
                    self._next_k = k_now
                    s._last_k, s._last_rate = k_now, rate
                    by_order = s.track and not s.spec.device_clock
                    for char, payload in self.model.encode(batch):
                        s.n_sent += 1
                        ks = self._grid_by_order(self._shadow_feed(char.lower(), payload)) if by_order else None
                        if f.loss and s._loss_rng.random() < f.loss:
                            s.n_lost += 1
                            continue
                        self._pending.append((char, payload, ks))
                if self._stalled:
                    s.n_withheld += len(self._pending)
                    self._pending.clear()
                    continue
                if f.burst_every is not None and (now % f.burst_every) < f.burst_s:
                    continue  # held back; delivered in one burst when the window ends
                pending, self._pending = self._pending, []
                for char, payload, ks in pending:
                    self._notify(char, payload, ks)
                    if not self.open:
                        return
        except asyncio.CancelledError:
            pass


class EmulatedWorld:
    """The emulated sensors within radio range, and the clock they (and their clients) run on.

    Parameters
    ----------
    sensors : list of EmulatedSensor
        The peripherals (their clocks are replaced by the world's).
    speed : float
        Emulation time runs this many times faster than real time.
    bluez_quirk : bool
        Call the client's ``disconnected_callback`` also after its own ``disconnect()`` (as BlueZ does).
    """

    def __init__(self, sensors: list[EmulatedSensor] | None = None, speed: float = 1.0, bluez_quirk: bool = True):
        self.clock = EmulatedClock(speed)
        self.sensors: list[EmulatedSensor] = []
        self.bluez_quirk = bluez_quirk
        for s in sensors or []:
            self.add(s)

    def add(self, sensor: EmulatedSensor) -> EmulatedSensor:
        sensor.clock = self.clock
        self.sensors.append(sensor)
        return sensor

    def find(self, address_or_name: str) -> EmulatedSensor | None:
        key = address_or_name.lower()
        for s in self.sensors:
            if s.address.lower() == key or s.name.lower() == key:
                return s
        return None


# -- bleak backends ------------------------------------------------------------------------------------
class EmulatedBleakClient(BaseBleakClient):
    """bleak client backend talking to an :class:`EmulatedWorld` (``BleakClient(..., backend=..., world=w)``)."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        world: EmulatedWorld,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self.world = world
        self._sensor: EmulatedSensor | None = None
        self._link: EmulatedLink | None = None
        self._callbacks: dict[str, NotifyCallback] = {}

    @property
    def name(self) -> str:
        s = self._sensor or self.world.find(self.address)
        return s.name if s is not None else self.address

    @property
    def mtu_size(self) -> int:
        return 247

    @property
    def is_connected(self) -> bool:
        return self._link is not None and self._link.open

    async def connect(self, pair: bool = False, **kwargs: Any) -> None:
        sensor = self.world.find(self.address)
        if sensor is None or not sensor.available:
            await self.world.clock.sleep(min(self._timeout, 0.5))
            raise BleakDeviceNotFoundError(self.address, f"Device with address {self.address} was not found.")
        await self.world.clock.sleep(0.05)  # connection setup and service discovery
        self._sensor = sensor
        self._link = sensor.connect(self._deliver, self._lost)
        self.services = sensor.gatt()

    def _deliver(self, char_uuid: str, data: bytes) -> None:
        cb = self._callbacks.get(char_uuid)
        if cb is not None:
            cb(bytearray(data))

    def _lost(self) -> None:
        self._link = None
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.close()
            if self.world.bluez_quirk and self._disconnected_callback is not None:
                self._disconnected_callback()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def unpair(self) -> None:
        return None

    def _need_link(self) -> EmulatedLink:
        if self._link is None or not self._link.open:
            raise BleakError("Not connected")
        return self._link

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, **kwargs: Any) -> bytearray:
        self._need_link()
        assert self._sensor is not None
        return bytearray(self._sensor.read(characteristic.uuid))

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, **kwargs: Any) -> bytearray:
        self._need_link()
        on = descriptor.characteristic_uuid in self._callbacks
        return bytearray(b"\x01\x00" if on else b"\x00\x00")

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: Any, response: bool) -> None:
        link = self._need_link()
        if response:
            await self.world.clock.sleep(0.0075)  # one connection event for the write response
        link.write(characteristic.uuid, bytes(data))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        link = self._need_link()
        link.subscribe(descriptor.characteristic_uuid, bytes(data)[:1] != b"\x00")

    async def start_notify(self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any) -> None:
        link = self._need_link()
        self._callbacks[characteristic.uuid.lower()] = callback
        link.subscribe(characteristic.uuid, True)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        link = self._need_link()
        self._callbacks.pop(characteristic.uuid.lower(), None)
        link.subscribe(characteristic.uuid, False)


class EmulatedBleakScanner(BaseBleakScanner):
    """bleak scanner backend listing the available sensors of an :class:`EmulatedWorld` (``world=w``)."""

    def __init__(
        self,
        detection_callback: Any,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        *,
        world: EmulatedWorld,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self.world = world
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        self._advertise_once()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def _advertise_once(self) -> None:
        for s in self.world.sensors:
            if not s.available:
                continue
            adv = s.advertisement()
            if not self.is_allowed_uuid(adv.service_uuids):
                continue
            dev = self.create_or_update_device(s.address, s.address, s.name, None, adv)
            self.call_detection_callbacks(dev, adv)

    async def _run(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await self.world.clock.sleep(0.1)
                self._advertise_once()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


@dataclass
class EmulatedSetup:
    """What :class:`~pelvimon.sensors.ble.BleSource` needs to talk to an emulated world."""

    world: EmulatedWorld
    sensor: EmulatedSensor
    kwargs: dict[str, Any] = field(default_factory=dict)

    def source_kwargs(self) -> dict[str, Any]:
        return {
            "client_backend": EmulatedBleakClient,
            "scanner_backend": EmulatedBleakScanner,
            "backend_kwargs": {"world": self.world},
            "timebase": self.world.clock,
            **self.kwargs,
        }


def unique_uuid(seed: str) -> str:
    """A deterministic UUID string from a seed (for made-up services in tests)."""
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, seed))
