"""Real ATT/GATT without hardware: emulated sensors as bumble peripherals, reached by a bleak backend that
wraps a bumble central, both on one in-process bumble ``LocalLink``.

Where :mod:`pelvimon.sensors.emulated` hands notifications to the client directly, here every byte goes
through bumble's host stack on both sides: advertising and active scanning, LE connection, ATT MTU
exchange, primary service / characteristic / descriptor discovery, CCCD writes, write requests and write
commands, read requests, handle value notifications, disconnection. The peripheral side is the same
:class:`~pelvimon.sensors.emulated.EmulatedSensor` (its GATT layout, its protocol's
:class:`~pelvimon.firmware_protocols.base.PeripheralModel`, simulator samples, device clock and faults):
bumble only replaces the transport.

Use::

    sensor = EmulatedSensor("movesense")
    async with BumbleWorld([sensor]) as world:   # controllers need the running event loop
        src = BleSource(sensor.name, client_backend=BumbleBleakClient, scanner_backend=BumbleBleakScanner,
                        backend_kwargs={"world": world}, timebase=world.clock)

The virtual link has no connection-interval timing and never loses a packet: timing (several
notifications per connection event) and loss come from the emulated sensor, as with the plain emulation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError
from bleak.uuids import normalize_uuid_str
from bumble import hci
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device, Peer
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from .emulated import BATTERY_SERVICE_UUID, EmulatedClock, EmulatedLink, EmulatedSensor

log = logging.getLogger(__name__)

CENTRAL_ADDRESS = "F0:F0:F0:F0:F0:F0"
PREFERRED_MTU = 247
"""ATT MTU the central asks for (what phones and desktop stacks typically get)."""
MAX_QUEUED_NOTIFICATIONS = 4096

_PROPS = {
    "read": Characteristic.Properties.READ,
    "write": Characteristic.Properties.WRITE,
    "write-without-response": Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
    "notify": Characteristic.Properties.NOTIFY,
    "indicate": Characteristic.Properties.INDICATE,
}
_PROP_NAMES = {
    Characteristic.Properties.BROADCAST: "broadcast",
    Characteristic.Properties.READ: "read",
    Characteristic.Properties.WRITE_WITHOUT_RESPONSE: "write-without-response",
    Characteristic.Properties.WRITE: "write",
    Characteristic.Properties.NOTIFY: "notify",
    Characteristic.Properties.INDICATE: "indicate",
}


def _uuid_str(u: UUID) -> str:
    """A bumble UUID as bleak writes it (lower-case 128-bit)."""
    return normalize_uuid_str(u.to_hex_str("-"))


# -- peripheral side -----------------------------------------------------------------------------------
class BumblePeripheral:
    """One :class:`EmulatedSensor` as a bumble Device: GATT server, advertising, the streaming link.

    Parameters
    ----------
    sensor : EmulatedSensor
    link : LocalLink
    index : int
        Number of the controller on the link.
    """

    def __init__(self, sensor: EmulatedSensor, link: LocalLink, index: int) -> None:
        self.sensor = sensor
        self.controller = Controller(f"pelvimon-periph-{index}", link=link)
        self.device = Device(
            name=sensor.name,
            address=hci.Address(sensor.address),
            host=Host(self.controller, AsyncPipeSink(self.controller)),
        )
        self.chars: dict[str, Characteristic[bytes]] = {}
        services = []
        for suuid, chars in sensor.layout:
            items = []
            for cuuid, props in chars:
                flags = Characteristic.Properties(0)
                for p in props:
                    flags |= _PROPS[p]
                ch: Characteristic[bytes] = Characteristic(
                    cuuid,
                    flags,
                    Characteristic.Permissions.READABLE | Characteristic.Permissions.WRITEABLE,
                    CharacteristicValue(read=self._reader(cuuid), write=self._writer(cuuid)),
                )
                self.chars[cuuid.lower()] = ch
                items.append(ch)
            services.append(Service(suuid, items))
        self.device.add_services(services)
        self.device.on("connection", self._on_connection)
        self.device.on("characteristic_subscription", self._on_subscription)
        self.connection: Connection | None = None
        self.emu_link: EmulatedLink | None = None
        self.models: list[Any] = []
        """The peripheral model of every link so far (tests look at what the client asked for)."""
        self.advertising = False
        self.n_notified = 0
        self._queue: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.n_dropped = 0

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- GATT values ----------------------------------------------------------------------------------
    def _reader(self, uuid: str) -> Callable[[Connection], bytes]:
        def read(connection: Connection) -> bytes:
            try:
                return self.sensor.read(uuid)
            except BleakError:
                return b""

        return read

    def _writer(self, uuid: str) -> Callable[[Connection, bytes], None]:
        def write(connection: Connection, value: bytes) -> None:
            if self.emu_link is not None and self.emu_link.open:
                self.emu_link.write(uuid, bytes(value))

        return write

    def _on_subscription(self, bearer: Any, characteristic: Any, notify: bool, indicate: bool) -> None:
        if self.emu_link is not None:
            self.emu_link.subscribe(_uuid_str(characteristic.uuid), notify or indicate)

    # -- advertising ----------------------------------------------------------------------------------
    def _advertising_data(self) -> tuple[bytes, bytes]:
        s = self.sensor
        uuids = b"".join(UUID(u).to_bytes(force_128=True) for u in s.spec.service_uuids[:1])
        adv = AdvertisingData(
            [
                (AdvertisingData.FLAGS, bytes([0x06])),
                (AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS, uuids),
                (AdvertisingData.SERVICE_DATA_16_BIT_UUID, bytes([0x0F, 0x18, s.battery_pct])),
                (AdvertisingData.COMPLETE_LOCAL_NAME, s.name.encode()),
            ]
        )
        scan = AdvertisingData([(AdvertisingData.COMPLETE_LOCAL_NAME, s.name.encode())])
        return bytes(adv), bytes(scan)

    async def start(self) -> None:
        await self.device.power_on()
        await self._advertise()

    async def _advertise(self) -> None:
        if self.advertising:
            return
        adv, scan = self._advertising_data()
        await self.device.start_advertising(
            advertising_data=adv, scan_response_data=scan, advertising_interval_min=20.0,
            advertising_interval_max=20.0, own_address_type=hci.OwnAddressType.RANDOM,
        )
        self.advertising = True

    async def _advertise_when_available(self) -> None:
        while not self.sensor.available and not self._closed:
            await self.sensor.clock.sleep(0.05)
        if self.connection is None and not self._closed:
            await self._advertise()

    # -- connection and streaming ---------------------------------------------------------------------
    def _on_connection(self, connection: Connection) -> None:
        self.advertising = False  # legacy advertising stops with the connection
        try:
            link = self.sensor.connect(self._deliver, self._lost)
        except BleakDeviceNotFoundError:
            self._spawn(connection.disconnect())
            return
        self.connection = connection
        self.emu_link = link
        self.models.append(link.model)
        self._queue.clear()
        connection.on("disconnection", lambda reason: self._on_disconnection(connection))
        self._spawn(self._sender(connection))

    def _on_disconnection(self, connection: Connection) -> None:
        if self.connection is not connection:
            return
        self.connection = None
        link, self.emu_link = self.emu_link, None
        if link is not None:
            link.close(dropped=False)
        self._wake.set()
        self._spawn(self._advertise_when_available())

    def _deliver(self, char_uuid: str, data: bytes) -> None:
        """Called by the emulated link (in order): queued for the sender task, bounded."""
        if len(self._queue) >= MAX_QUEUED_NOTIFICATIONS:
            self.n_dropped += 1
            return
        self._queue.append((char_uuid, bytes(data)))
        self._wake.set()

    def _lost(self) -> None:
        """The sensor drops the link (fault): disconnect; advertise again after its down time."""
        conn = self.connection
        if conn is not None:
            self._spawn(conn.disconnect())

    async def _sender(self, connection: Connection) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while self.connection is connection:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                char, data = self._queue.popleft()
                ch = self.chars.get(char)
                if ch is None:
                    continue
                try:
                    await self.device.notify_subscriber(connection, ch, data)
                except Exception as exc:  # noqa: BLE001 - the link went down under us
                    log.debug("notify failed: %s", exc)
                    return
                self.n_notified += 1

    async def close(self) -> None:
        self._closed = True
        conn = self.connection
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.disconnect(), 1.0)
        self._wake.set()
        # let HCI commands in flight complete (cancelling them leaves their answers without a future)
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        for t in list(self._tasks):
            t.cancel()
        if self.advertising:
            with contextlib.suppress(Exception):
                await self.device.stop_advertising()


class BumbleWorld:
    """A bumble ``LocalLink`` with one peripheral per emulated sensor and one central for the clients.

    Build it inside the running event loop (``async with BumbleWorld(...) as world``): bumble's
    controllers need one at construction.

    Parameters
    ----------
    sensors : list of EmulatedSensor
    speed : float
        Emulation time / real time of the sensors' clock (the virtual link itself has no timing).
    """

    def __init__(self, sensors: list[EmulatedSensor], speed: float = 1.0) -> None:
        self.clock = EmulatedClock(speed)
        self.sensors = list(sensors)
        for s in self.sensors:
            s.clock = self.clock
        self.link: LocalLink | None = None
        self.peripherals: list[BumblePeripheral] = []
        self._central: Device | None = None
        self._central_lock: asyncio.Lock | None = None

    async def start(self) -> BumbleWorld:
        self.link = LocalLink()
        for i, s in enumerate(self.sensors):
            p = BumblePeripheral(s, self.link, i)
            await p.start()
            self.peripherals.append(p)
        self.clock.restart()
        return self

    async def __aenter__(self) -> BumbleWorld:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def central(self) -> Device:
        """The central Device on the link (created and powered on at first use)."""
        if self.link is None:
            raise BleakError("BumbleWorld: start it first (async with BumbleWorld(...) as world)")
        if self._central_lock is None:
            self._central_lock = asyncio.Lock()
        async with self._central_lock:
            if self._central is None:
                controller = Controller("pelvimon-central", link=self.link)
                dev = Device(
                    name="pelvimon", address=hci.Address(CENTRAL_ADDRESS), host=Host(controller, AsyncPipeSink(controller))
                )
                await dev.power_on()
                self._central = dev
        return self._central

    def find(self, address_or_name: str) -> BumblePeripheral | None:
        key = address_or_name.lower()
        for p in self.peripherals:
            if p.sensor.address.lower() == key or p.sensor.name.lower() == key:
                return p
        return None

    async def close(self) -> None:
        for p in self.peripherals:
            await p.close()


# -- bleak backends ------------------------------------------------------------------------------------
class BumbleBleakClient(BaseBleakClient):
    """bleak client backend on a bumble central (``BleakClient(..., backend=BumbleBleakClient, world=w)``).

    GATT operations are real ATT requests over the virtual link; ``services`` is built from bumble's
    discovery (handles as the peripheral's GATT server numbered them).
    """

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        world: BumbleWorld,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self.world = world
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._proxies: dict[int, Any] = {}
        self._subscribers: dict[int, Callable[[bytes], None]] = {}
        self._closing = False

    @property
    def name(self) -> str:
        p = self.world.find(self.address)
        return p.sensor.name if p is not None else self.address

    @property
    def mtu_size(self) -> int:
        return int(self._connection.att_mtu) if self._connection is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool = False, **kwargs: Any) -> None:
        periph = self.world.find(self.address)
        real_timeout = max(self._timeout / self.world.clock.speed, 0.05)
        if periph is None or not periph.advertising:
            # an absent peer never times out on a virtual controller: give up as a real stack would
            await asyncio.sleep(min(real_timeout, 0.5 / self.world.clock.speed))
            raise BleakDeviceNotFoundError(self.address, f"Device with address {self.address} was not found.")
        central = await self.world.central()
        try:
            connection = await asyncio.wait_for(
                central.connect(periph.device.random_address, timeout=None), real_timeout
            )
        except TimeoutError as exc:
            raise BleakDeviceNotFoundError(self.address, f"Device with address {self.address} was not found.") from exc
        self._connection = connection
        self._closing = False
        connection.on("disconnection", lambda reason: self._on_disconnection(connection))
        peer = Peer(connection)
        self._peer = peer
        try:
            await peer.request_mtu(PREFERRED_MTU)
            await peer.discover_all()
        except Exception:
            with contextlib.suppress(Exception):
                await connection.disconnect()
            self._connection = None
            raise
        self.services = self._collection(peer)

    def _collection(self, peer: Peer) -> BleakGATTServiceCollection:
        coll = BleakGATTServiceCollection()
        self._proxies = {}
        for sp in peer.services:
            svc = BleakGATTService(sp, sp.handle, _uuid_str(sp.uuid))
            coll.add_service(svc)
            for cp in sp.characteristics:
                props = [name for flag, name in _PROP_NAMES.items() if cp.properties & flag]
                ch = BleakGATTCharacteristic(cp, cp.handle, _uuid_str(cp.uuid), props, self._max_wwr, svc)  # type: ignore[arg-type]
                coll.add_characteristic(ch)
                self._proxies[cp.handle] = cp
                for dp in cp.descriptors:
                    coll.add_descriptor(BleakGATTDescriptor(dp, dp.handle, _uuid_str(dp.type), ch))
                    self._proxies[dp.handle] = dp
        return coll

    def _max_wwr(self) -> int:
        return self.mtu_size - 3

    def _on_disconnection(self, connection: Connection) -> None:
        if self._connection is not connection:
            return
        self._connection = None
        self._peer = None
        if not self._closing and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        conn = self._connection
        self._closing = True
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.disconnect(), 2.0)
        self._connection = None
        self._peer = None

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def unpair(self) -> None:
        return None

    def _need(self, handle: int) -> tuple[Peer, Any]:
        if self._peer is None or self._connection is None:
            raise BleakError("Not connected")
        proxy = self._proxies.get(handle)
        if proxy is None:
            raise BleakError(f"no attribute with handle {handle}")
        return self._peer, proxy

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, **kwargs: Any) -> bytearray:
        peer, proxy = self._need(characteristic.handle)
        return bytearray(await peer.read_value(proxy))

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, **kwargs: Any) -> bytearray:
        peer, proxy = self._need(descriptor.handle)
        return bytearray(await peer.read_value(proxy))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: Any, response: bool) -> None:
        peer, proxy = self._need(characteristic.handle)
        await peer.write_value(proxy, bytes(data), with_response=response)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        peer, proxy = self._need(descriptor.handle)
        await peer.write_value(proxy, bytes(data), with_response=True)

    async def start_notify(self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any) -> None:
        peer, proxy = self._need(characteristic.handle)

        def on_value(value: bytes) -> None:
            callback(bytearray(value))

        self._subscribers[characteristic.handle] = on_value
        await peer.subscribe(proxy, on_value)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        peer, proxy = self._need(characteristic.handle)
        await peer.unsubscribe(proxy, self._subscribers.pop(characteristic.handle, None))


class BumbleBleakScanner(BaseBleakScanner):
    """bleak scanner backend: active scanning with the bumble central of a :class:`BumbleWorld`."""

    def __init__(
        self,
        detection_callback: Any,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        *,
        world: BumbleWorld,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self.world = world
        self._central: Device | None = None
        self._merged: dict[str, dict[str, Any]] = {}

    async def start(self) -> None:
        self.seen_devices = {}
        self._merged = {}
        self._central = await self.world.central()
        self._central.on("advertisement", self._on_advertisement)
        await self._central.start_scanning(active=True, filter_duplicates=False)

    def _on_advertisement(self, advertisement: Any) -> None:
        # the advertisement and the scan response come as separate reports: merge them per address, as
        # the operating-system stacks do
        address = str(advertisement.address).split("/")[0]
        seen = self._merged.setdefault(address, {"name": None, "uuids": [], "service_data": {}})
        data: AdvertisingData = advertisement.data
        name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(AdvertisingData.SHORTENED_LOCAL_NAME)
        if name:
            seen["name"] = str(name)
        for kind in (
            AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
            AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
            AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
            AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
        ):
            seen["uuids"] += [_uuid_str(u) for u in data.get(kind) or []]
        seen["uuids"] = list(dict.fromkeys(seen["uuids"]))  # reported in both: once
        sd = data.get(AdvertisingData.SERVICE_DATA_16_BIT_UUID)
        if sd is not None:
            seen["service_data"][_uuid_str(sd[0])] = bytes(sd[1])
        if not self.is_allowed_uuid(seen["uuids"]):
            return
        adv = AdvertisementData(
            local_name=seen["name"],
            manufacturer_data={},
            service_data=dict(seen["service_data"]),
            service_uuids=list(seen["uuids"]),
            tx_power=None,
            rssi=int(advertisement.rssi),
            platform_data=(advertisement,),
        )
        device = self.create_or_update_device(address, address, adv.local_name, advertisement, adv)
        self.call_detection_callbacks(device, adv)

    async def stop(self) -> None:
        central, self._central = self._central, None
        if central is not None:
            central.remove_listener("advertisement", self._on_advertisement)
            with contextlib.suppress(Exception):
                await central.stop_scanning()


__all__ = [
    "BATTERY_SERVICE_UUID",
    "BumbleBleakClient",
    "BumbleBleakScanner",
    "BumblePeripheral",
    "BumbleWorld",
]
