"""Bluetooth LE sensors through bleak: scanning, and :class:`BleSource`, the one client for every protocol.

The operating-system backend of bleak is swappable: ``client_backend`` / ``scanner_backend`` are bleak
backend classes (``BleakClient(..., backend=Cls)``) and ``backend_kwargs`` reach their constructors. Real
sensors use bleak's platform backend (None); emulated sensors (:mod:`pelvimon.sensors.emulated`) and the
bumble link (:mod:`pelvimon.sensors.bumble_link`) plug in here and run through exactly this code.

Data path (see ``docs/bluetooth.md``): the notification callback stamps the host time and appends the raw
bytes to a bounded :class:`Inbox` that counts what it drops; :meth:`BleSource.events` decodes in the
consumer, yields every :class:`RawNotification` before the batches it produced, maps the device clock to
session time (:mod:`pelvimon.sensors.clock`) and reports gaps, disconnects and reconnects as
:class:`SourceStatus` events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any
from typing import Protocol as TypingProtocol

import numpy as np
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.exc import BleakBluetoothNotAvailableError, BleakDeviceNotFoundError, BleakError

from pelvimon.firmware_protocols import registry
from pelvimon.firmware_protocols.base import Protocol, ProtocolError, StreamConfig
from pelvimon.firmware_protocols.batch import ImuBatch

from .clock import SessionClock
from .source import (
    RawNotification,
    Source,
    SourceError,
    SourceEvent,
    SourceInfo,
    SourceStatus,
    gap_status,
    is_hole,
    samples_missing,
)

log = logging.getLogger(__name__)

BATTERY_SERVICE_UUID = "0000180f-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL_UUID = "00002a19-0000-1000-8000-00805f9b34fb"
FIRMWARE_REVISION_UUID = "00002a26-0000-1000-8000-00805f9b34fb"

_ADDRESS_RE = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$")


# -- time ----------------------------------------------------------------------------------------------
class Timebase(TypingProtocol):
    """The host clock a source runs on: ``now()`` in s (monotonic) and ``sleep(s)``."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> Awaitable[None]: ...


class RealTime:
    """``time.monotonic`` and ``asyncio.sleep``: the clock of real sensors."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# -- errors --------------------------------------------------------------------------------------------
_EMULATED_HINT = "or try pelvimon without hardware: --sensor emulated:movesense"
_SCAN_HINT = "or list the emulated sensors: pelvimon scan --emulated"


def translate_error(exc: BaseException, target: str = "", *, hint: str = _EMULATED_HINT) -> SourceError:
    """A clear one-line :class:`SourceError` for what bleak and the operating system raise.

    Parameters
    ----------
    exc : BaseException
        What the backend raised.
    target : str
        The sensor asked for (address or name), for the message.
    hint : str
        How to go on without hardware, where the stack or the adapter is missing (a scan has no
        ``--sensor``).
    """
    if isinstance(exc, SourceError):
        return exc
    text = " ".join(str(exc).split())
    low = text.lower()
    who = f" {target}" if target else ""
    if isinstance(exc, FileNotFoundError) or (isinstance(exc, OSError) and exc.errno == errno.ENOENT):
        return SourceError(
            "no Bluetooth stack found (the BlueZ/D-Bus system bus is not running): start the bluetooth "
            f"service (sudo systemctl start bluetooth), {hint}"
        )
    if isinstance(exc, PermissionError) or "notauthorized" in low or "accessdenied" in low or (
        "permission" in low
    ):
        return SourceError(
            "permission denied by the Bluetooth stack: add your user to the 'bluetooth' group "
            "(sudo usermod -aG bluetooth $USER, then log in again) or check the OS privacy settings"
        )
    if isinstance(exc, BleakBluetoothNotAvailableError) or "no bluetooth adapter" in low or (
        "adapter" in low and ("not found" in low or "powered" in low)
    ):
        return SourceError(
            f"no usable Bluetooth adapter ({text or 'not available'}): plug in or power on the adapter "
            f"(bluetoothctl power on), {hint}"
        )
    if isinstance(exc, BleakDeviceNotFoundError | TimeoutError | asyncio.TimeoutError) or "not found" in low:
        return SourceError(
            f"sensor{who} not found: switch it on (wake it by moving it), bring it close, make sure no phone "
            "app is connected to it, and check the address with 'pelvimon scan'"
        )
    if isinstance(exc, BleakError):
        return SourceError(f"Bluetooth error with sensor{who}: {text or type(exc).__name__}")
    return SourceError(f"Bluetooth failure with sensor{who}: {type(exc).__name__}: {text}")


# -- recognising sensors -------------------------------------------------------------------------------
def _norm_uuid(u: str) -> str:
    u = str(u).lower()
    if len(u) == 4:
        return f"0000{u}-0000-1000-8000-00805f9b34fb"
    return u


def match_protocol(name: str | None, service_uuids: list[str] | tuple[str, ...] = ()) -> str | None:
    """The protocol a device speaks, from its advertised service UUIDs or local name; None if unsupported."""
    uuids = {_norm_uuid(u) for u in service_uuids}
    protos = [registry.get(p) for p in registry.available()]
    for proto in protos:
        if uuids & {u.lower() for u in proto.spec.service_uuids}:
            return proto.spec.name
    if name:
        for proto in protos:
            if any(re.search(p, name) for p in proto.spec.name_patterns):
                return proto.spec.name
    return None


@dataclass(frozen=True)
class FoundSensor:
    """A supported sensor seen by :func:`scan`."""

    name: str
    address: str
    protocol: str
    rssi: int | None
    battery_pct: int | None = None


def _battery_from_adv(service_data: dict[str, bytes]) -> int | None:
    raw = service_data.get(BATTERY_SERVICE_UUID) or service_data.get("180f")
    if raw and len(raw) >= 1 and raw[0] <= 100:
        return int(raw[0])
    return None


async def scan(
    timeout: float = 5.0,
    *,
    backend: type | None = None,
    backend_kwargs: dict[str, Any] | None = None,
    all_devices: bool = False,
) -> list[FoundSensor]:
    """Supported sensors nearby, strongest signal first.

    Parameters
    ----------
    timeout : float
        Scan time, s.
    backend : type, optional
        bleak scanner backend class (None: the platform's).
    backend_kwargs : dict, optional
        Extra keyword arguments for the backend constructor.
    all_devices : bool
        Also list devices no protocol recognises (protocol ``""``).

    Returns
    -------
    list of FoundSensor
        Battery from the advertised Battery Service data where the device sends it, else None.

    Raises
    ------
    SourceError
        No Bluetooth stack, no adapter, permission denied (one clear line).
    """
    try:
        seen = await BleakScanner.discover(  # type: ignore[call-overload]
            timeout, return_adv=True, backend=backend, **(backend_kwargs or {})
        )
    except (BleakError, OSError, TimeoutError) as exc:
        raise translate_error(exc, hint=_SCAN_HINT) from exc
    found: dict[str, FoundSensor] = {}
    for device, adv in seen.values():
        name = adv.local_name or device.name or ""
        uuids = list(dict.fromkeys(adv.service_uuids))  # some stacks report a UUID twice
        proto = match_protocol(name, uuids)
        if proto is None and not all_devices:
            continue
        found[device.address] = FoundSensor(
            name=name,
            address=device.address,
            protocol=proto or "",
            rssi=adv.rssi,
            battery_pct=_battery_from_adv(adv.service_data),
        )
    return sorted(found.values(), key=lambda s: -(s.rssi if s.rssi is not None else -999))


# -- the bounded inbox ---------------------------------------------------------------------------------
class _Marker:
    def __init__(self, what: str) -> None:
        self.what = what


_RESET = _Marker("reset")


@dataclass(frozen=True)
class _Write:
    """A write the client made, queued in order so decoders that learn from writes see it in sequence."""

    char_uuid: str
    data: bytes


class Inbox:
    """Bounded FIFO between the BLE callback and the consumer; counts the notifications it drops.

    Data items beyond ``maxlen`` waiting are dropped (the newest, so order is kept) and counted in
    ``dropped``; control items (statuses, markers) always go in, up to ``maxlen_control`` more. Each data
    item carries the number of notifications dropped just before it, ``(t_host_s, char_uuid, data,
    n_dropped_before)``, so the consumer flags the gap on the first notification after the drop (where
    the samples are missing), not on an older one still queued.

    Parameters
    ----------
    maxlen : int
        Most notifications waiting at once.
    maxlen_control : int
        Most control items waiting at once (the oldest is dropped beyond; never reached in practice).
    """

    def __init__(self, maxlen: int = 2048, maxlen_control: int = 256) -> None:
        if maxlen < 1:
            raise ValueError(f"Inbox: maxlen must be >= 1, got {maxlen}")
        self.maxlen = maxlen
        self._items: deque[Any] = deque()
        self._n_data = 0
        self._n_control = 0
        self._maxlen_control = maxlen_control
        self.dropped = 0
        self.received = 0
        self._dropped_unseen = 0  # dropped since the last accepted notification
        self._wake = asyncio.Event()

    def put_data(self, t_host_s: float, char_uuid: str, data: bytes | bytearray) -> None:
        """Called from the notification callback: append or count a drop. Never blocks."""
        self.received += 1
        if self._n_data >= self.maxlen:
            self.dropped += 1
            self._dropped_unseen += 1
            return
        self._items.append((t_host_s, char_uuid, data, self._dropped_unseen))
        self._dropped_unseen = 0
        self._n_data += 1
        self._wake.set()

    def put_control(self, item: Any) -> None:
        if self._n_control >= self._maxlen_control:
            return
        self._items.append(item)
        self._n_control += 1
        self._wake.set()

    def __len__(self) -> int:
        return len(self._items)

    def pop(self) -> Any:
        item = self._items.popleft()
        if isinstance(item, tuple):
            self._n_data -= 1
        else:
            self._n_control -= 1
        if not self._items:
            self._wake.clear()
        return item

    async def wait(self) -> None:
        if not self._items:
            await self._wake.wait()


# -- the source ----------------------------------------------------------------------------------------
def nominal_rate(protocol: Protocol, rate_hz: float) -> float:
    """The supported rate of ``protocol`` nearest to ``rate_hz``."""
    rates = np.asarray(protocol.spec.rates_hz or (protocol.spec.default_rate_hz,), dtype=np.float64)
    return float(rates[int(np.argmin(np.abs(rates - float(rate_hz))))])


def decoder_context(protocol: Protocol, config: StreamConfig) -> dict[str, Any]:
    """What the protocol's decoder needs besides the bytes, for this stream configuration.

    A protocol may define ``decoder_context(config) -> dict``; otherwise the keys pelvimon can derive
    generically are filled (``output_rate_hz`` / ``rate_hz``: the nominal rate) and the decoder learns the
    rest from the device's own frames or from the writes (``observe_write``).
    """
    hook = getattr(protocol, "decoder_context", None)
    if callable(hook):
        return dict(hook(config))
    ctx: dict[str, Any] = {}
    for key in protocol.spec.context_keys:
        if key in ("output_rate_hz", "rate_hz"):
            ctx[key] = nominal_rate(protocol, config.rate_hz)
    return ctx


def _merger_class() -> Any:
    try:
        from pelvimon.firmware_protocols.merge import ImuMerger
    except ImportError:  # pragma: no cover - merge lands with the Polar protocol
        return None
    return ImuMerger


class BleSource(Source):
    """One IMU sensor over Bluetooth LE (real or emulated; only the bleak backend differs).

    Parameters
    ----------
    target : str
        Address (``AA:BB:CC:DD:EE:FF``, or a macOS UUID) or advertised name of the sensor; a name is
        resolved by scanning.
    protocol : str, optional
        Protocol name; by default recognised from the advertised or discovered services and the name.
    rate_hz : float, optional
        Requested sample rate (the protocol's nearest supported rate is used); default the protocol's.
    acc_range_g, gyro_range_dps : float, optional
        Full scales to ask for (None: the protocol's default).
    client_backend, scanner_backend : type, optional
        bleak backend classes (None: the platform's).
    backend_kwargs : dict, optional
        Passed to both backend constructors (an emulated world, a bumble device...).
    timebase : Timebase, optional
        Host clock (default :class:`RealTime`); emulated sensors running faster than real time give theirs.
    queue_size : int
        Notifications waiting for the consumer at most (more are dropped and counted).
    connect_timeout_s, scan_timeout_s : float
        Limits for one connection attempt and for resolving a name.
    reconnect : bool
        Reconnect automatically after an unexpected disconnect or a stall.
    backoff_min_s, backoff_max_s : float
        Reconnect delays: doubling from min to max.
    give_up_s : float
        Stop reconnecting after this long without a connection (the source then ends with "stopped").
    stall_timeout_s : float
        No notification for this long while connected counts as a lost link; the floor of the stall timeout,
        which is at least ``STALL_SPANS`` times the span of samples one notification carries (see
        :meth:`stall_limit_s`).
    """

    #: The stall timeout is at least this many times the span of samples one notification carries. Two
    #: streams sent in separate notifications (Polar: acc and gyro, ~1.9 s each at 52 Hz) leave up to two
    #: spans without any notification when one notification of each is lost in a row (ordinary radio
    #: loss); three spans leave a whole span of margin for delivery delays and frames that vary in length,
    #: and still catch a sensor that stopped sending within three of its own notification intervals.
    STALL_SPANS = 3.0
    #: The stall timeout until the first samples of a stream arrive: a sensor fills its first notification
    #: before it sends it (a Polar Verity Sense at 26 Hz: ~100 samples, about 4 s, over the 3 s floor), and
    #: some take a second or two to start measuring.
    FIRST_DATA_S = 10.0

    def __init__(
        self,
        target: str,
        *,
        protocol: str | None = None,
        rate_hz: float | None = None,
        acc_range_g: float | None = None,
        gyro_range_dps: float | None = None,
        client_backend: type | None = None,
        scanner_backend: type | None = None,
        backend_kwargs: dict[str, Any] | None = None,
        timebase: Timebase | None = None,
        queue_size: int = 2048,
        connect_timeout_s: float = 15.0,
        scan_timeout_s: float = 8.0,
        reconnect: bool = True,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 10.0,
        give_up_s: float = 120.0,
        stall_timeout_s: float = 3.0,
    ) -> None:
        self.target = target
        self.protocol_name = protocol
        self.rate_hz = rate_hz
        self.acc_range_g = acc_range_g
        self.gyro_range_dps = gyro_range_dps
        self.client_backend = client_backend
        self.scanner_backend = scanner_backend
        self.backend_kwargs = dict(backend_kwargs or {})
        self.timebase: Timebase = timebase or RealTime()
        self.connect_timeout_s = connect_timeout_s
        self.scan_timeout_s = scan_timeout_s
        self.reconnect = reconnect
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.give_up_s = give_up_s
        self.stall_timeout_s = stall_timeout_s
        self.inbox = Inbox(queue_size)
        self.info = SourceInfo(name=target, protocol=protocol or "", rate_hz=float(rate_hz or 0.0))
        self.n_reconnects = 0
        self._client: BleakClient | None = None
        self._device: Any = None
        self._protocol: Protocol | None = None
        self._config: StreamConfig | None = None
        self._context: dict[str, Any] = {}
        self._t0 = 0.0
        self._closing = False
        self._closed = False
        self._link_lost = False
        self._ended = False
        self._last_rx = 0.0
        self._supervisor: asyncio.Task[None] | None = None

    # -- time ----------------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.timebase.now() - self._t0

    def now_s(self) -> float | None:
        return self._now() if self._supervisor is not None else None

    def _status(self, kind: str, message: str = "", **details: Any) -> SourceStatus:
        return SourceStatus(kind, self._now(), message, details)  # type: ignore[arg-type]

    # -- connection ----------------------------------------------------------------------------------
    def _on_notify(self, char: BleakGATTCharacteristic, data: bytearray) -> None:
        # The whole callback: stamp, enqueue (bounded, counting drops). Decoding is the consumer's job.
        self.inbox.put_data(self.timebase.now() - self._t0, char.uuid, data)

    def _on_disconnect(self, client: BleakClient) -> None:
        if self._closing or client is not self._client:
            return  # our own disconnect (BlueZ calls back for those too) or an old client
        self._link_lost = True

    async def _resolve(self) -> None:
        """Find the device by name (scan) or keep the address; learn the protocol from the advertisement."""
        if _ADDRESS_RE.match(self.target) and self.protocol_name:
            self._device = self.target
            return
        want = self.target
        is_addr = bool(_ADDRESS_RE.match(want))

        def hit(d: Any, ad: Any) -> bool:
            return d.address.lower() == want.lower() if is_addr else (ad.local_name or d.name) == want

        try:
            scanner = BleakScanner(backend=self.scanner_backend, **self.backend_kwargs)
            found: tuple[Any, Any] | None = None
            async with scanner:
                deadline = self.timebase.now() + self.scan_timeout_s
                while found is None and self.timebase.now() < deadline:
                    for d, ad in scanner.discovered_devices_and_advertisement_data.values():
                        if hit(d, ad):
                            found = (d, ad)
                            break
                    else:
                        await self.timebase.sleep(0.05)
        except (BleakError, OSError, TimeoutError) as exc:
            raise translate_error(exc, self.target) from exc
        if found is None:
            if is_addr:  # not advertising right now: try connecting by address anyway
                self._device = self.target
                return
            raise translate_error(BleakDeviceNotFoundError(want), want)
        device, adv = found
        self._device = device
        if not self.protocol_name:
            self.protocol_name = match_protocol(adv.local_name or device.name, list(adv.service_uuids))

    async def _connect_once(self, first: bool) -> None:
        client = BleakClient(
            self._device,
            disconnected_callback=self._on_disconnect,
            timeout=self.connect_timeout_s,
            backend=self.client_backend,
            **self.backend_kwargs,
        )
        try:
            await asyncio.wait_for(client.connect(), self._real_seconds(self.connect_timeout_s))
        except (BleakError, OSError, TimeoutError) as exc:
            with contextlib.suppress(Exception):
                await client.disconnect()
            raise translate_error(exc, self.target) from exc
        self._client = client
        self._link_lost = False
        try:
            await self._setup(client, first)
        except BaseException:
            self._client = None
            with contextlib.suppress(Exception):
                await client.disconnect()
            raise

    def _real_seconds(self, seconds: float) -> float:
        speed = getattr(self.timebase, "speed", 1.0)
        return max(seconds / speed, 0.05)

    async def _setup(self, client: BleakClient, first: bool) -> None:
        services = client.services
        uuids = [s.uuid for s in services] if services is not None else []
        if self._protocol is None:
            name = self.protocol_name or match_protocol(getattr(client, "name", None), uuids)
            if name is None:
                raise SourceError(
                    f"sensor {self.target} is not a supported sensor (services {', '.join(uuids) or 'none'}); "
                    f"supported: {', '.join(registry.available())}"
                )
            try:
                self._protocol = registry.get(name)
            except KeyError as exc:
                raise SourceError(str(exc.args[0])) from exc
        proto = self._protocol
        spec = proto.spec
        chars = {c.uuid.lower() for c in services.characteristics.values()} if services is not None else set()
        missing = [u for u in (*spec.notify_uuids[:1], spec.write_uuid) if u and u.lower() not in chars]
        if missing:
            raise SourceError(
                f"sensor {self.target} does not offer the {spec.title} service (missing characteristic "
                f"{', '.join(missing)}): unsupported firmware; update it or pick another --protocol"
            )
        if first:
            rate = self.rate_hz or spec.default_rate_hz
            self._config = StreamConfig(
                rate_hz=nominal_rate(proto, rate), acc_range_g=self.acc_range_g, gyro_range_dps=self.gyro_range_dps
            )
            self._context = decoder_context(proto, self._config)
            self._metadata: dict[str, Any] = {
                "battery_pct": await self._read_u8(client, BATTERY_LEVEL_UUID, chars),
                "firmware": await self._read_text(client, FIRMWARE_REVISION_UUID, chars),
                "stream_config": dataclasses.asdict(self._config),
                "decoder_context": dict(self._context),
                "notify_uuids": [u for u in spec.notify_uuids if u.lower() in chars],
                "start_writes": [],
            }
        assert self._config is not None
        notify = [u for u in spec.notify_uuids if u.lower() in chars]
        for u in notify:
            await client.start_notify(u, self._on_notify)
        writes = proto.start_sequence(self._config)
        for w in writes:
            await client.write_gatt_char(w.char_uuid, w.data, response=w.response)
            self.inbox.put_control(_Write(w.char_uuid, w.data))
        if first:
            self._metadata["start_writes"] = [(w.char_uuid, w.data.hex(), w.response) for w in writes]
        self._last_rx = self.timebase.now()

    @staticmethod
    async def _read(client: BleakClient, uuid: str, chars: set[str]) -> bytes | None:
        """The value of an optional characteristic, or None when the device lacks it or the read fails."""
        if uuid not in chars:
            return None
        try:
            return bytes(await client.read_gatt_char(uuid))
        except (BleakError, OSError, TimeoutError):
            return None

    @classmethod
    async def _read_u8(cls, client: BleakClient, uuid: str, chars: set[str]) -> int | None:
        raw = await cls._read(client, uuid, chars)
        return int(raw[0]) if raw else None

    @classmethod
    async def _read_text(cls, client: BleakClient, uuid: str, chars: set[str]) -> str | None:
        raw = await cls._read(client, uuid, chars)
        return None if raw is None else raw.decode("utf-8", "replace").strip("\x00 ")

    async def open(self) -> None:
        if self._supervisor is not None:
            return
        self._t0 = self.timebase.now()
        self.inbox.put_control(self._status("connecting", f"connecting to {self.target}"))
        await self._resolve()
        await self._connect_once(first=True)
        assert self._protocol is not None and self._config is not None and self._client is not None
        spec = self._protocol.spec
        address = self._client.address
        self.info = SourceInfo(
            name=getattr(self._client, "name", None) or self.target,
            protocol=spec.name,
            rate_hz=self._config.rate_hz,
            has_gyro=spec.has_gyro,
            address=address,
            metadata=self._metadata,
        )
        rate = self._config.rate_hz
        asked = "" if self.rate_hz is None or self.rate_hz == rate else (
            f" (the nearest it offers to the {self.rate_hz:g} Hz asked for)")
        self.inbox.put_control(
            self._status("connected", f"connected to {self.info.name} ({address}), streaming at {rate:g} Hz{asked}")
        )
        self._start_consumer()
        self._supervisor = asyncio.create_task(self._supervise())

    def stall_limit_s(self) -> float:
        """The stall timeout now, s: ``stall_timeout_s``, or ``STALL_SPANS`` times the longest span of
        samples one recent notification carried (``StreamDecoder.notification_span_s``) where that is
        longer; before the stream's first samples, ``FIRST_DATA_S`` if that is longer.

        A fixed timeout shorter than a few notification intervals takes ordinary radio loss for a stall:
        a Polar Verity Sense at 52 Hz sends a notification per stream about every 1.9 s, so losing one
        acc and one gyro notification in a row left ~4 s without data, over the 3 s floor.
        """
        span = self.stream.notification_span_s if hasattr(self, "stream") else 0.0
        if span == 0.0:  # no samples yet: the first notification is still being filled
            return max(self.stall_timeout_s, self.FIRST_DATA_S)
        return max(self.stall_timeout_s, self.STALL_SPANS * span)

    async def _supervise(self) -> None:
        """Watch the link: unexpected disconnects and stalls lead to reconnection with backoff."""
        poll = min(0.1, self.stall_timeout_s / 4)
        while not self._closing:
            await self.timebase.sleep(poll)
            now = self.timebase.now()
            limit = self.stall_limit_s()
            stalled = now - max(self._last_rx_seen(), self._last_rx) > limit
            if not (self._link_lost or stalled):
                continue
            why = "link lost" if self._link_lost else f"no data for {limit:.3g} s"
            self.inbox.put_control(self._status("disconnected", f"{self.info.name}: {why}", reason=why))
            old, self._client = self._client, None
            if old is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(old.disconnect(), self._real_seconds(2.0))
            if not self.reconnect:
                self._end("stopped", f"{self.info.name}: {why}; reconnecting is off")
                return
            if not await self._reconnect():
                return

    def _last_rx_seen(self) -> float:
        n = self.inbox.received
        if n != getattr(self, "_rx_count", -1):
            self._rx_count = n
            self._rx_time = self.timebase.now()
        return getattr(self, "_rx_time", 0.0)

    async def _reconnect(self) -> bool:
        delay = self.backoff_min_s
        start = self.timebase.now()
        attempt = 0
        while not self._closing:
            attempt += 1
            self.inbox.put_control(
                self._status("reconnecting", f"reconnecting in {delay:g} s", attempt=attempt, delay_s=delay)
            )
            await self.timebase.sleep(delay)
            if self._closing:
                return False
            try:
                await self._connect_once(first=False)
            except Exception as exc:  # noqa: BLE001 - any failure of one attempt: back off and retry
                log.info("reconnect attempt %d failed: %s: %s", attempt, type(exc).__name__, exc)
                self._last_error = f"{type(exc).__name__}: {exc}"
                if self.timebase.now() - start > self.give_up_s:
                    self._end(
                        "stopped",
                        f"gave up reconnecting to {self.info.name} after {self.give_up_s:g} s ({self._last_error})",
                    )
                    return False
                delay = min(delay * 2.0, self.backoff_max_s)
                continue
            self.n_reconnects += 1
            self._rx_count = -1
            self.inbox.put_control(self._status("connected", f"reconnected to {self.info.name}", attempt=attempt))
            return True
        return False

    def _end(self, kind: str, message: str) -> None:
        self.inbox.put_control(self._status(kind, message))
        self.inbox.put_control(_Marker("end"))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._supervisor
        client, self._client = self._client, None
        if client is not None and self._protocol is not None:
            limit = self._real_seconds(2.0)
            with contextlib.suppress(Exception):
                for w in self._protocol.stop_sequence():
                    await asyncio.wait_for(client.write_gatt_char(w.char_uuid, w.data, response=w.response), limit)
            for u in self._metadata.get("notify_uuids", []) if hasattr(self, "_metadata") else []:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.stop_notify(u), limit)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), limit)
        self._end("stopped", f"{self.info.name}: stopped")

    # -- consumer ------------------------------------------------------------------------------------
    def _start_consumer(self) -> None:
        assert self._protocol is not None
        self.stream = StreamDecoder(self._protocol, self._context, self.info.rate_hz)
        self._dropped_seen = 0
        self._out: deque[SourceEvent] = deque()

    async def events(self) -> AsyncIterator[SourceEvent]:
        """Statuses, raw notifications and session-time batches, in order (see the module docstring).

        The decoding state lives on the source, so iterating again (after a ``break``, or after
        :meth:`close` to drain what is left) continues where the previous loop stopped.
        """
        if self._protocol is None or not hasattr(self, "_out"):
            raise SourceError("BleSource.events: open the source first (async with source: ...)")
        while True:
            while self._out:
                yield self._out.popleft()
            if not len(self.inbox):
                if self._ended:
                    return
                await self.inbox.wait()
                continue
            self._process(self.inbox.pop())

    def _process(self, item: Any) -> None:
        """One inbox item -> events appended to ``self._out``."""
        out = self._out
        if isinstance(item, SourceStatus):
            out.append(item)
            if item.kind == "disconnected":
                self.stream.reset()
            return
        if isinstance(item, _Marker):
            if item.what == "end":
                self._ended = True
            return
        if isinstance(item, _Write):
            self.stream.observe_write(item.char_uuid, item.data)
            return
        t_host, char_uuid, data, n_dropped = item
        raw = RawNotification(t_host, char_uuid, data)
        out.append(raw)
        if n_dropped:
            # dropped right before this notification (the inbox was full when they came): the hole is here,
            # not before the older notifications that were still queued then
            self._dropped_seen += n_dropped
            self.stream.gap_pending = True
            out.append(
                self._status(
                    "info", f"consumer too slow: {n_dropped} notifications dropped", queue_dropped=self._dropped_seen
                )
            )
        out.extend(self.stream.feed(raw))


class StreamDecoder:
    """Raw notifications -> session-time batches and gap statuses: what :class:`BleSource` does with each
    notification, reusable by replay (same inputs give the same outputs).

    Per notification: the protocol's decoder; acc and gyro streams sent separately are merged
    (``merge.ImuMerger``); each batch goes to session time (:class:`SessionClock`); a ``gap`` status for
    every batch that follows missing samples.

    Device-clock batches are merged on the device clock and only then mapped to session time, so the
    streams share one mapping; every output batch is checked against the device time of the previous one,
    and a hole of ``k`` sample periods is a gap of ``k - 1`` lost samples whatever lost them (the radio,
    a reconnect, a packet the decoder refused, samples that could not be merged). Host-timed batches
    (no device clock) get their session times first (one sample clock per stream); their losses are the
    decoder's counts where the protocol has a counter, else estimated from session time after a known
    interruption (a notification lost without a counter cannot be seen at all).

    Replay rule: call :meth:`observe_write` with the start writes (``info.metadata["start_writes"]``) and
    :meth:`reset` at every ``disconnected`` status (a reconnect restarts the device's stream).

    Parameters
    ----------
    protocol : Protocol
    context : dict
        Decoder context (``info.metadata["decoder_context"]``).
    rate_hz : float
        Nominal rate (``info.rate_hz``).

    Attributes
    ----------
    n_lost : int
        Samples reported lost so far (the sum of the ``gap`` statuses' ``n_lost``).
    n_dropped : int
        Samples decoded but not output (accelerometer samples no gyroscope sample covers), included in
        the gaps that follow them.
    first_device_s, last_device_s : float or None
        Device time of the first and last sample output (device-clock protocols).
    notification_span_s : float
        Longest span of samples one notification carried among the last ``SPAN_WINDOW`` that carried any,
        s (samples of one stream / nominal rate; 0 before the first): how long the sensor may go between
        notifications of a stream. The live stall watchdog scales with it; it does not touch the output.
    """

    #: Notifications that carried samples over which :attr:`notification_span_s` is the longest: short
    #: enough to follow frames that shorten (a delta-compressed frame carries more samples of a still
    #: sensor than of a running one), long enough to hold both streams of a sensor that sends them apart.
    SPAN_WINDOW = 16

    def __init__(self, protocol: Protocol, context: dict[str, Any], rate_hz: float) -> None:
        self.protocol = protocol
        self.rate_hz = rate_hz
        self.decoder = protocol.decoder(**context)
        self.clock = SessionClock(rate_hz)
        self._merger_cls = _merger_class()
        self._mergers: dict[str, Any] = {}
        self.gap_pending = False
        self.last_t: float | None = None
        self.last_device_s: float | None = None
        self.first_device_s: float | None = None
        self.n_malformed = 0
        self.n_dropped = 0
        self.n_lost = 0
        self._dropped_since = 0
        self._last_host: float | None = None
        self._spans_s: deque[float] = deque(maxlen=self.SPAN_WINDOW)

    @property
    def n_unmerged(self) -> int:
        """Alias of :attr:`n_dropped` (older name)."""
        return self.n_dropped

    def observe_write(self, char_uuid: str, data: bytes) -> None:
        """A write the client made (decoders that learn their configuration from writes look at it)."""
        observe = getattr(self.decoder, "observe_write", None)
        if observe is not None:
            observe(char_uuid, data)

    def reset(self) -> None:
        """The link was lost: forget partial payloads; the next batch is flagged ``gap_before``."""
        self.decoder.reset()
        self.clock.link_lost()
        for m in self._mergers.values():
            self._dropped_since += m.n_held  # held samples are lost with the link (host-timed count)
        self._mergers = {}
        self.gap_pending = True

    def _merge(self, b: ImuBatch, key: str) -> list[ImuBatch]:
        spec = self.protocol.spec
        if not (spec.has_gyro and self._merger_cls is not None and (b.acc_mps2 is None) != (b.gyr_rads is None)):
            return [b]
        if key not in self._mergers:
            self._mergers[key] = self._merger_cls(expect=("acc", "gyr"))
        return list(self._mergers[key].feed(b))

    def feed(self, raw: RawNotification) -> list[SourceEvent]:
        out: list[SourceEvent] = []
        try:
            batches = self.decoder.feed(raw.char_uuid, raw.data, raw.t_host_s)
        except ProtocolError as exc:
            self.n_malformed += 1
            self.gap_pending = True  # whatever the bytes carried is not in the output
            if self.n_malformed == 1 or self.n_malformed % 100 == 0:
                out.append(
                    SourceStatus(
                        "info", raw.t_host_s, f"undecodable notification ({exc})", {"n_malformed": self.n_malformed}
                    )
                )
            return out
        self._observe_span(batches)
        for b in batches:
            if not len(b):
                continue
            if b.time_base == "device":
                # a decoder that held the batch back says when it was complete (native["t_host_s"])
                t_rx = b.native.get("t_host_s") if b.native else None
                self.clock.observe(b, raw.t_host_s if t_rx is None else float(t_rx[0]))
                for part in self._merge(b, "device"):
                    self._emit_device(part, out)
            else:
                sb = self.clock.to_session(b, raw.t_host_s, gap_before=self.gap_pending)
                for part in self._merge(sb, "session"):
                    self._emit_session(part, out, raw.t_host_s)
        return out

    @property
    def notification_span_s(self) -> float:
        return max(self._spans_s, default=0.0)

    def _observe_span(self, batches: list[ImuBatch]) -> None:
        """Keep the span of samples one notification carried for :attr:`notification_span_s`, per stream (acc
        and gyro sent apart are two streams; a batch with both counts once for each)."""
        n_acc = sum(len(b) for b in batches if b.acc_mps2 is not None)
        n_gyr = sum(len(b) for b in batches if b.gyr_rads is not None)
        n = max(n_acc, n_gyr)
        if n and self.rate_hz > 0:
            self._spans_s.append(n / self.rate_hz)

    def _usable(self, part: ImuBatch) -> bool:
        if not len(part):
            return False
        if self.protocol.spec.has_gyro and part.gyr_rads is None:
            # acc no gyro sample covers (before the first one, or inside a gyro gap): not usable downstream
            # (counted, and the gap reported at the next output; not ``gap_pending``, which marks an
            # interruption of the input and would flag the next batch of every stream)
            self.n_dropped += len(part)
            self._dropped_since += len(part)
            return False
        return True

    def _gap_status(self, t_s: float, n_lost: int, estimated: bool) -> SourceStatus:
        self.n_lost += n_lost
        return gap_status(t_s, n_lost, f"{n_lost} samples lost" + (" (estimated)" if estimated else ""),
                          estimated=estimated)

    def _emit_device(self, part: ImuBatch, out: list[SourceEvent]) -> None:
        if not self._usable(part):
            return
        rate = self.rate_hz
        t0 = float(part.t_s[0])
        # the loss counts only samples missing between the first and the last sample output (acc before
        # the first gyro sample, or a payload lost or refused before the first one, is not a gap)
        first = self.last_t is None
        gap = not first and (part.gap_before or part.n_lost > 0 or self.gap_pending or self._dropped_since > 0)
        n_lost = 0 if first else int(part.n_lost)
        if self.last_device_s is not None and rate > 0:
            step = t0 - self.last_device_s
            resolution_s = self.protocol.spec.timestamp_resolution_s
            if is_hole(step, rate, resolution_s):  # a hole in the output on the device clock: samples missing
                gap = True
                n_from_step = samples_missing(step, rate)
                if not (part.n_lost > 0 and abs(part.n_lost - n_from_step) <= resolution_s * rate):
                    n_lost = n_from_step  # else the decoder's count, which agrees within the stamps' step
            elif step > 0:
                # the device clock shows the output continuous: no sample is missing from it, whatever was
                # flagged (an undecodable notification that carried none of its samples, a gap of the gyro
                # stream that the merger did not have to bridge): no gap, and no restart downstream
                n_lost = 0
                gap = False
            else:
                gap = True  # the device clock went back (sensor restarted): a discontinuity of unknown length
        sb = self.clock.map_device(part)
        if gap != sb.gap_before:
            sb = dataclasses.replace(sb, gap_before=gap)
        if sb.n_lost != n_lost:
            sb = dataclasses.replace(sb, n_lost=n_lost)
        if gap:
            out.append(self._gap_status(float(sb.t_s[0]), n_lost, False))
        self.gap_pending = False
        self._dropped_since = 0
        if self.first_device_s is None:
            self.first_device_s = t0
        self.last_device_s = float(part.t_s[-1])
        self.last_t = float(sb.t_s[-1])
        out.append(sb)

    def _emit_session(self, sb: ImuBatch, out: list[SourceEvent], t_host_s: float) -> None:
        if not self._usable(sb):
            return
        rate = self.rate_hz
        if self.last_t is None:
            # nothing output yet: what was flagged before the first sample is no gap (as on the device clock)
            self.gap_pending = False
            self._dropped_since = 0
            if sb.gap_before:
                sb = dataclasses.replace(sb, gap_before=False, n_lost=0)
        n_lost = 0
        estimated = False
        if sb.gap_before or sb.n_lost > 0 or self.gap_pending or self._dropped_since > 0:
            n_lost = int(sb.n_lost)
            if n_lost:
                n_lost += self._dropped_since
            elif self.gap_pending and self._last_host is not None and rate > 0:
                # receive times of the notifications on either side: their delivery delays cancel, where the
                # session times before the gap may lag by the notifications lost unseen (no counter)
                n_lost = max(int(round((t_host_s - self._last_host) * rate)) - len(sb), self._dropped_since, 0)
                estimated = True
            elif sb.gap_before and self.last_t is not None and rate > 0:
                # the host-time clock jumped (re-anchored after a stretch of late arrivals): the samples the
                # jump stands for, as far as arrival times can tell
                n_lost = max(samples_missing(float(sb.t_s[0]) - self.last_t, rate), self._dropped_since)
                estimated = True
            else:
                n_lost = self._dropped_since
        # a flag with nothing missing (a stream re-timed by less than a sample, a gap of the gyro stream that
        # left the merged output whole) is no gap: it would restart the analysis for nothing. A known
        # interruption of the input (reconnect, dropped or refused notifications) stays one
        if n_lost > 0 or self.gap_pending:
            if not sb.gap_before or sb.n_lost != n_lost:
                sb = dataclasses.replace(sb, gap_before=True, n_lost=n_lost)
            out.append(self._gap_status(float(sb.t_s[0]), n_lost, estimated))
        elif sb.gap_before or sb.n_lost:
            sb = dataclasses.replace(sb, gap_before=False, n_lost=0)
        self.gap_pending = False
        self._dropped_since = 0
        self.last_t = float(sb.t_s[-1])
        self._last_host = t_host_s
        out.append(sb)


async def open_ble(target: str, **kwargs: Any) -> BleSource:
    """Build and open a :class:`BleSource` (convenience for scripts)."""
    src = BleSource(target, **kwargs)
    await src.open()
    return src


__all__ = [
    "BleSource",
    "FoundSensor",
    "Inbox",
    "StreamDecoder",
    "RealTime",
    "Timebase",
    "decoder_context",
    "match_protocol",
    "nominal_rate",
    "open_ble",
    "scan",
    "translate_error",
]
