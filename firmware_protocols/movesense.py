"""Movesense GATT SensorData Protocol (GSP v1): commands, decoder and device model.

Sources (see ``docs/protocols/movesense.md``):

- ``movesense/movesense-device-lib`` (GitHub mirror ``alexisduque/movesense-device-lib@f58142d``):
  ``samples/gatt_sensordata_app/GATTSensorDataClient.cpp`` (firmware side: commands, HELLO reply, the
  "no free slot" error, DATA / DATA_PART2 framing), ``python_client/movesense_sensor_data.py`` (the
  official bleak client: writes with ``response=True``, struct-of-arrays IMU layout),
  ``MovesenseCoreLib/resources/movesense-api/meas/imu.yaml`` and ``acc.yaml`` (units).

Wire format, all little-endian:

- command (client -> sensor, characteristic ``34800001-…``): ``[cmd u8][reference u8 != 0][data…]``;
  HELLO = 0, SUBSCRIBE = 1 (data = ASCII resource path, no terminator), UNSUBSCRIBE = 2.
- notification (sensor -> client, ``34800002-…``): ``[type u8][reference u8][payload…]``;
  COMMAND_RESULT = 1, DATA = 2, DATA_PART2 = 3 (DATA_PART3 = 4 is declared but unused by GSP v1).
  A serialised payload longer than 150 bytes is sent as DATA with bytes 0…149 and DATA_PART2 with the rest.
- IMU payload: ``uint32`` timestamp (ms, sensor clock) of the **first** sample, then N × 3 float32 per
  array, arrays one after the other (struct of arrays): acc (m/s²), gyro (deg/s), magn (µT) as the
  resource path says. N is not sent: N = (len − 4) / (12 × arrays).

Time: sample i of a packet is at ``ts + i·1000/fs`` ms; the uint32 ms clock is unwrapped (it wraps after
49.7 days). There is no counter: loss is found from the timestamp gaps and from a DATA that never got its
DATA_PART2 (or a DATA_PART2 without its DATA).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import (
    ArrivalCheck,
    Decoder,
    GattWrite,
    MalformedFrameError,
    PeripheralModel,
    Protocol,
    ProtocolSpec,
    StreamConfig,
    UnsupportedFrameError,
    as_float64,
    check_values,
)
from .batch import ImuBatch

NAME = "movesense"

SERVICE_UUID = "34802252-7185-4d5d-b431-630e7050e8f0"
COMMAND_UUID = "34800001-7185-4d5d-b431-630e7050e8f0"
DATA_UUID = "34800002-7185-4d5d-b431-630e7050e8f0"

CMD_HELLO = 0
CMD_SUBSCRIBE = 1
CMD_UNSUBSCRIBE = 2

RESP_COMMAND_RESULT = 1
RESP_DATA = 2
RESP_DATA_PART2 = 3
RESP_DATA_PART3 = 4

TIMESTAMP_RESOLUTION_MS = 1.0
"""The packet timestamp counts whole milliseconds (uint32 ms of the first sample)."""
PART1_PAYLOAD_BYTES = 150
"""Payload bytes carried by a DATA notification before the firmware splits into DATA_PART2."""
MAX_PAYLOAD_BYTES = 306
"""Largest reassembled payload of GSP v1 (150 + 156; the send buffer is 158 bytes at MTU 161)."""
MAX_SUBSCRIPTIONS = 4
"""``MAX_DATASUB_COUNT`` of the firmware sample."""
DEFAULT_REFERENCE = 99
"""Client reference the official Python client uses."""

RATES_HZ: tuple[float, ...] = (13.0, 26.0, 52.0, 104.0, 208.0, 416.0, 833.0, 1666.0)
"""LSM6DS3 output data rates (``samples/sens_output_test_app/SensorOutputService.cpp``)."""

HELLO_REPLY = b"Hello"
ERROR_NO_FREE_SLOT = b"\x01\xfb"
"""507 (insufficient storage) as the firmware writes it: big-endian."""

# resource kind -> arrays in payload order
ARRAYS: dict[str, tuple[str, ...]] = {
    "Acc": ("acc",),
    "Gyro": ("gyro",),
    "Magn": ("mag",),
    "IMU6": ("acc", "gyro"),
    "IMU6m": ("acc", "mag"),
    "IMU9": ("acc", "gyro", "mag"),
}

_PATH_RE = re.compile(r"^/Meas/(Acc|Gyro|Magn|IMU6m|IMU6|IMU9)/(\d+)$")
_WRAP = 1 << 32
_DEG2RAD = np.pi / 180.0

DEFAULT_PATH = "/Meas/IMU6/104"


@dataclass(frozen=True)
class Resource:
    """A parsed measurement resource path such as ``/Meas/IMU9/104``."""

    path: str
    kind: str
    rate_hz: float

    @property
    def arrays(self) -> tuple[str, ...]:
        return ARRAYS[self.kind]


def parse_path(path: str) -> Resource:
    """Parse a GSP measurement path.

    Parameters
    ----------
    path : str
        ``/Meas/<Acc|Gyro|Magn|IMU6|IMU6m|IMU9>/<rate in Hz>``.

    Returns
    -------
    Resource

    Raises
    ------
    UnsupportedFrameError
        For any other resource (pelvimon decodes only these IMU resources).
    """
    m = _PATH_RE.match(path)
    if m is None:
        raise UnsupportedFrameError(
            NAME, f"resource {path!r}", "expected /Meas/<Acc|Gyro|Magn|IMU6|IMU6m|IMU9>/<rate Hz>"
        )
    rate = float(m.group(2))
    if rate <= 0:
        raise UnsupportedFrameError(NAME, f"resource {path!r}", "the rate must be a positive number of Hz")
    return Resource(path=path, kind=m.group(1), rate_hz=rate)


def nearest_rate(rate_hz: float) -> float:
    """The supported rate nearest to ``rate_hz`` (Hz)."""
    rates = np.asarray(RATES_HZ)
    return float(rates[int(np.argmin(np.abs(rates - float(rate_hz))))])


def _check_reference(reference: int) -> None:
    if not 1 <= reference <= 255:
        raise ValueError(f"{NAME}: client reference must be 1..255 (0 is reserved), got {reference}")


def hello_command(reference: int = 1) -> bytes:
    """HELLO: ``[0, ref]``; the sensor answers ``[1, ref, 'Hello']`` on the data characteristic."""
    _check_reference(reference)
    return bytes((CMD_HELLO, reference))


def subscribe_command(path: str, reference: int = DEFAULT_REFERENCE) -> bytes:
    """SUBSCRIBE: ``[1, ref] + path`` (ASCII, no terminator), e.g. ``/Meas/IMU9/104``."""
    _check_reference(reference)
    raw = path.encode("ascii")
    if not raw or len(raw) > 158:
        raise ValueError(f"{NAME}: resource path must be 1..158 ASCII bytes, got {len(raw)}")
    return bytes((CMD_SUBSCRIBE, reference)) + raw


def unsubscribe_command(reference: int = DEFAULT_REFERENCE) -> bytes:
    """UNSUBSCRIBE: ``[2, ref]``; the reference must be the one given to SUBSCRIBE."""
    _check_reference(reference)
    return bytes((CMD_UNSUBSCRIBE, reference))


def path_for(config: StreamConfig) -> str:
    """The resource path pelvimon subscribes for a stream configuration (IMU9 with mag, else IMU6)."""
    kind = "IMU9" if config.mag else "IMU6"
    return f"/Meas/{kind}/{int(nearest_rate(config.rate_hz))}"


@dataclass(frozen=True)
class CommandResult:
    """A COMMAND_RESULT notification: the reference and the raw result bytes (format not consistent)."""

    reference: int
    data: bytes

    @property
    def is_hello(self) -> bool:
        return self.data == HELLO_REPLY


def decode_payload(payload: bytes, resource: Resource) -> tuple[int, dict[str, np.ndarray]]:
    """Decode one reassembled IMU payload (after the 2-byte GSP header).

    Parameters
    ----------
    payload : bytes
        ``uint32`` ms timestamp then the struct-of-arrays float32 samples.
    resource : Resource
        The subscribed resource: gives the arrays present.

    Returns
    -------
    timestamp_ms : int
        Sensor time of the first sample, ms (raw uint32).
    arrays : dict
        ``"acc"`` (N, 3) m/s², ``"gyro"`` (N, 3) deg/s, ``"mag"`` (N, 3) µT as present; float64.

    Raises
    ------
    MalformedFrameError
        If the length is not ``4 + 12·arrays·N`` with N ≥ 1.
    """
    k = len(resource.arrays)
    body = len(payload) - 4
    if body <= 0 or body % (12 * k) != 0:
        raise MalformedFrameError(
            NAME,
            f"DATA {resource.path}",
            f"payload of {len(payload)} bytes; expected 4 + {12 * k}·N bytes "
            f"(uint32 timestamp + {k} array(s) of N × 3 float32)",
        )
    n = body // (12 * k)
    ts = int.from_bytes(payload[:4], "little")
    values = as_float64(np.frombuffer(payload, dtype="<f4", offset=4).reshape(k, n, 3))
    for i, name in enumerate(resource.arrays):
        check_values(NAME, f"DATA {resource.path}", _UNIT_KEY.get(name, name), values[i])
    return ts, {name: values[i] for i, name in enumerate(resource.arrays)}


_UNIT_KEY = {"acc": "acc_mps2", "gyro": "gyro_dps", "mag": "mag_uT"}
"""The unit of each GSP array, for the plausibility check."""


def _tolerance_ms(period_ms: float) -> float:
    """How far a first-sample stamp may stray from the expected time without a sample missing, ms: half a
    period, or the ms stamp's rounding (and a little) where that is more."""
    return max(1.5 * TIMESTAMP_RESOLUTION_MS, 0.5 * period_ms)


def _whole_packets(late_ms: float, n: int, period_ms: float) -> int:
    """How many packets of ``n`` samples a stamp ``late_ms`` after the expected time leaves out, if that is a
    whole number of them within :func:`_tolerance_ms`; else 0."""
    packet_ms = n * period_ms
    k = int(round(late_ms / packet_ms)) if packet_ms > 0 else 0
    return k if k >= 1 and abs(late_ms - k * packet_ms) <= _tolerance_ms(period_ms) else 0


class MovesenseDecoder(Decoder):
    """Client-side GSP decoder: DATA + DATA_PART2 reassembly, ms clock unwrap, loss detection.

    Parameters
    ----------
    path : str, optional
        Resource path of the data, e.g. ``/Meas/IMU6/104`` (default). It gives the arrays present and the
        sample rate. A SUBSCRIBE seen through :meth:`observe_write` sets the path for its reference.
    confirm_split : bool
        Hold each payload reassembled from DATA + DATA_PART2 until the next DATA of its reference confirms
        it (streams; the live client sets it). GSP has no counter: if a DATA's DATA_PART2 is lost and the
        next packet's DATA too, that next packet's DATA_PART2 completes the first DATA with another
        packet's samples, and nothing in the payload shows it. The next DATA's timestamp and the
        DATA_PART2s counted since the held DATA do: packets k (held) … j − 1 lie between the two DATAs,
        the timestamp gives j − k, and their DATA_PART2s arrive in order. If all j − k of them came (j − k
        = 1 when the next DATA follows at once), the first one was packet k's own and the held packet is
        output. Otherwise its part 2 may belong to a later packet, so it is dropped and counted lost with
        the packets missing after it (a gap, never mixed data; :attr:`n_split_dropped`). Costs one packet
        of latency; a released batch keeps the receive time of its DATA_PART2 in ``native["t_host_s"]``.
        False (default): output at once (single notifications).

    Attributes
    ----------
    command_results : list of CommandResult
        COMMAND_RESULT notifications seen (HELLO replies, errors), newest last, at most 16 kept.
    n_split_dropped, n_split_dropped_samples : int
        Reassembled packets, and their samples, dropped because the bytes could not rule out a part 2 of
        another packet (``confirm_split``). They are part of the ``n_lost`` of the batch after them, with
        the packets the radio lost; these counters tell the two apart.
    """

    protocol = NAME

    def __init__(self, path: str | None = None, confirm_split: bool = False) -> None:
        self.confirm_split = bool(confirm_split)
        self._default = parse_path(path or DEFAULT_PATH)
        self._by_ref: dict[int, Resource] = {}
        self.command_results: list[CommandResult] = []
        self.reset()

    def reset(self) -> None:
        self._part1: dict[int, bytes] = {}
        self._prev_raw: dict[int, int] = {}
        self._offset: dict[int, int] = {}
        self._next_ms: dict[int, float] = {}
        self._arrival: dict[int, ArrivalCheck] = {}
        self._loss_flag: dict[int, bool] = {}
        # reassembled payload waiting for the next DATA: (batches, expected first-sample ms before it)
        self._held: dict[int, tuple[list[ImuBatch], float | None]] = {}
        # DATA_PART2 notifications (with or without their DATA) since the last DATA of each reference
        self._n_part2: dict[int, int] = {}
        self.n_split_dropped = 0
        self.n_split_dropped_samples = 0

    def resource(self, reference: int) -> Resource:
        """The resource decoded for ``reference`` (the subscribed path, else the default path)."""
        return self._by_ref.get(reference, self._default)

    def observe_write(self, char_uuid: str, data: bytes) -> None:
        """Learn the resource of a reference from a client SUBSCRIBE write (other writes are ignored)."""
        if char_uuid.lower() != COMMAND_UUID or len(data) < 3 or data[0] != CMD_SUBSCRIBE:
            return
        try:
            self._by_ref[data[1]] = parse_path(data[2:].decode("ascii"))
        except (UnicodeDecodeError, UnsupportedFrameError):
            return

    def feed(self, char_uuid: str, payload: bytes, t_host_s: float | None = None) -> list[ImuBatch]:
        payload = bytes(payload)
        if char_uuid.lower() != DATA_UUID:
            raise UnsupportedFrameError(
                NAME,
                f"notification on {char_uuid}",
                f"GSP notifies only on the data characteristic {DATA_UUID}",
            )
        if len(payload) < 2:
            raise MalformedFrameError(
                NAME, "notification", f"{len(payload)} byte(s); expected at least [type, reference]"
            )
        kind, ref = payload[0], payload[1]
        body = payload[2:]
        if kind == RESP_COMMAND_RESULT:
            self.command_results.append(CommandResult(ref, body))
            del self.command_results[:-16]
            return []
        if kind == RESP_DATA:
            why = self._stamp_refusal(ref, body, t_host_s)
            if why is not None:  # (before the stamp judges a held packet: a damaged one would drop it; nothing
                # of the stamp is kept, and the next packet's gap counts these samples lost)
                self._loss_flag[ref] = True
                raise MalformedFrameError(NAME, f"DATA (reference {ref})", why)
            released = self._confirm(ref, body) if ref in self._held else []
            if released:
                return released + self._data(ref, body, t_host_s)
            return self._data(ref, body, t_host_s)
        if kind == RESP_DATA_PART2:
            self._n_part2[ref] = self._n_part2.get(ref, 0) + 1
            first = self._part1.pop(ref, None)
            if first is None:
                self._loss_flag[ref] = True
                raise MalformedFrameError(
                    NAME,
                    f"DATA_PART2 (reference {ref})",
                    "no DATA part 1 before it: part 1 was lost; the samples of this packet are dropped",
                )
            whole = first + body
            if len(whole) > MAX_PAYLOAD_BYTES:
                self._loss_flag[ref] = True
                raise MalformedFrameError(
                    NAME,
                    f"DATA_PART2 (reference {ref})",
                    f"reassembled payload of {len(whole)} bytes; GSP v1 carries at most {MAX_PAYLOAD_BYTES}",
                )
            if not self.confirm_split:
                return self._decode(ref, whole, t_host_s)
            expected = self._next_ms.get(ref)
            held = self._decode(ref, whole, t_host_s)
            if t_host_s is not None:  # when it was complete, for the clock fit of the one who releases it
                for b in held:
                    if b.native is not None:
                        b.native["t_host_s"] = np.array([t_host_s])
            self._held[ref] = (held, expected)
            return []
        if kind == RESP_DATA_PART3:
            raise UnsupportedFrameError(
                NAME, f"DATA_PART3 (reference {ref})", "declared by GSP but never sent by the v1 firmware"
            )
        raise MalformedFrameError(
            NAME, f"notification type {kind}", "expected 1 (COMMAND_RESULT), 2 (DATA) or 3 (DATA_PART2)"
        )

    def _confirm(self, ref: int, body: bytes) -> list[ImuBatch]:
        """The held packet, if the DATA ``body`` proves its part 2 its own; else drop it (in doubt)."""
        batches, expected_before = self._held.pop(ref)
        end_ms = self._next_ms.get(ref)
        if len(body) < 4 or end_ms is None:
            return batches
        period_ms = 1000.0 / self.resource(ref).rate_hz
        late_ms = (int.from_bytes(body[:4], "little") - int(round(end_ms))) % _WRAP
        if late_ms >= _WRAP // 2:
            late_ms -= _WRAP
        if late_ms <= _tolerance_ms(period_ms):
            return batches  # contiguous (or the clock went back: not a loss)
        # packets are missing after the held one: its DATA_PART2 may be one of theirs, unless every
        # DATA_PART2 between the two DATAs came (the held packet's and one per missing packet)
        n_held = sum(len(b) for b in batches)
        n_missing = _whole_packets(late_ms, n_held, period_ms)
        if n_missing and self._n_part2.get(ref, 0) == n_missing + 1:
            return batches
        self.n_split_dropped += 1
        self.n_split_dropped_samples += n_held
        self._loss_flag[ref] = True
        if expected_before is None:
            self._next_ms.pop(ref, None)
        else:
            self._next_ms[ref] = expected_before  # the held samples count as lost with the others
        return []

    @property
    def pending_bytes(self) -> int:
        return sum(len(b) for b in self._part1.values())

    def _data(self, ref: int, body: bytes, t_host_s: float | None) -> list[ImuBatch]:
        self._n_part2[ref] = 0
        if ref in self._part1:
            # the previous DATA never got its DATA_PART2: those samples are lost
            del self._part1[ref]
            self._loss_flag[ref] = True
        if len(body) == PART1_PAYLOAD_BYTES:
            # 150 bytes can never be a whole IMU payload (4 + 12·k·N != 150): part 2 follows
            self._part1[ref] = body
            return []
        return self._decode(ref, body, t_host_s)

    def _unwrapped(self, ref: int, ts_raw: int) -> tuple[int, float]:
        """(the offset of the uint32 ms clock of ``ref`` with the stamp ``ts_raw``, its unwrapped ms)."""
        offset = self._offset.get(ref, 0)
        prev = self._prev_raw.get(ref)
        if prev is not None and ts_raw < prev and prev - ts_raw > _WRAP // 2:
            offset += _WRAP
        return offset, float(ts_raw + offset)

    def _stamp_refusal(self, ref: int, body: bytes, t_host_s: float | None) -> str | None:
        """Why the stamp of a DATA body does not fit its arrival (:class:`ArrivalCheck`), or None."""
        if len(body) < 4:
            return None
        t0_ms = self._unwrapped(ref, int.from_bytes(body[:4], "little"))[1]
        return self._arrival.setdefault(ref, ArrivalCheck()).refusal(t0_ms / 1000.0, t_host_s)

    def _decode(self, ref: int, payload: bytes, t_host_s: float | None = None) -> list[ImuBatch]:
        res = self.resource(ref)
        try:
            ts_raw, arrays = decode_payload(payload, res)
        except MalformedFrameError:
            self._loss_flag[ref] = True
            raise
        n = arrays[res.arrays[0]].shape[0]
        period_ms = 1000.0 / res.rate_hz
        # (the stamp is the DATA's first four bytes, which feed() checked against its arrival)
        offset, t0_ms = self._unwrapped(ref, ts_raw)
        self._offset[ref] = offset
        self._prev_raw[ref] = ts_raw
        self._arrival.setdefault(ref, ArrivalCheck()).accept(t0_ms / 1000.0, t_host_s)
        gap = self._loss_flag.pop(ref, False)
        n_lost = 0
        expected = self._next_ms.get(ref)
        if expected is not None:
            late_ms = t0_ms - expected
            tolerance_ms = _tolerance_ms(period_ms)
            # whole packets of n samples went missing: exact where the ms stamp is coarser than a period
            missing = _whole_packets(late_ms, n, period_ms) * n or int(round(late_ms / period_ms))
            if missing >= 1 and late_ms > tolerance_ms:
                gap = True
                n_lost = missing
            elif late_ms < -tolerance_ms:
                gap = True  # the clock went backwards (sensor restarted): a discontinuity, count unknown
        self._next_ms[ref] = t0_ms + n * period_ms
        t_s = (t0_ms + np.arange(n) * period_ms) / 1000.0
        acc = arrays.get("acc")
        gyro = arrays.get("gyro")
        mag = arrays.get("mag")
        native: dict[str, np.ndarray] = {"timestamp_ms": np.array([ts_raw], dtype=np.int64)}
        if acc is not None:
            native["acc_mps2"] = acc
        if gyro is not None:
            native["gyro_dps"] = gyro
        if mag is not None:
            native["mag_uT"] = mag
        return [
            ImuBatch(
                t_s=t_s,
                acc_mps2=acc,
                gyr_rads=None if gyro is None else gyro * _DEG2RAD,
                mag_uT=mag,
                gap_before=gap,
                n_lost=n_lost,
                time_base="device",
                native=native,
            )
        ]


def default_samples_per_packet(resource: Resource) -> int:
    """Samples per notification the device model sends (emulation choice).

    8 at 104 Hz as in the official IMU9 example; proportional to the rate elsewhere, at least 1 and no
    more than the 306-byte GSP v1 payload allows.
    """
    k = len(resource.arrays)
    by_rate = max(1, int(round(8 * resource.rate_hz / 104.0)))
    fit = (MAX_PAYLOAD_BYTES - 4) // (12 * k)
    return int(min(by_rate, fit))


class MovesensePeripheral(PeripheralModel):
    """Device side of GSP v1 for emulated sensors.

    Parameters
    ----------
    samples_per_packet : int, optional
        Samples per DATA payload; default :func:`default_samples_per_packet` (8 at 104 Hz).
    mag_uT : sequence of 3 float, optional
        Magnetic field sent for IMU9 / IMU6m / Magn when a batch carries no ``mag_uT``.

    Notes
    -----
    Commands are parsed as the firmware does: HELLO is answered with ``[1, ref, 'Hello']``; SUBSCRIBE
    takes a free slot (up to 4) and answers ``[1, ref, 0x01, 0xFB]`` when none is free; a successful
    SUBSCRIBE sends no result; UNSUBSCRIBE frees the slot of its reference. A path the firmware would
    reject (not an IMU resource here) takes no slot and sends nothing. The peripheral model also records
    rejected writes in ``ignored_writes``.
    """

    def __init__(
        self, samples_per_packet: int | None = None, mag_uT: tuple[float, float, float] = (20.0, 0.0, -40.0)
    ):
        if samples_per_packet is not None and samples_per_packet < 1:
            raise ValueError(f"{NAME}: samples_per_packet must be >= 1, got {samples_per_packet}")
        self._spp = samples_per_packet
        self._mag = np.asarray(mag_uT, dtype=np.float64)
        self.subscriptions: dict[int, Resource] = {}
        self._pending: dict[int, list[np.ndarray]] = {}
        self.ignored_writes: list[bytes] = []

    @property
    def streaming(self) -> bool:
        return bool(self.subscriptions)

    @property
    def config(self) -> StreamConfig | None:
        if not self.subscriptions:
            return None
        res = next(iter(self.subscriptions.values()))
        return StreamConfig(rate_hz=res.rate_hz, mag="mag" in res.arrays)

    def handle_write(self, char_uuid: str, data: bytes) -> list[tuple[str, bytes]]:
        data = bytes(data)
        if char_uuid.lower() != COMMAND_UUID or len(data) < 2:
            self.ignored_writes.append(data)
            return []
        cmd, ref = data[0], data[1]
        if cmd == CMD_HELLO:
            return [(DATA_UUID, bytes((RESP_COMMAND_RESULT, ref)) + HELLO_REPLY)]
        if cmd == CMD_SUBSCRIBE:
            if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
                return [(DATA_UUID, bytes((RESP_COMMAND_RESULT, ref)) + ERROR_NO_FREE_SLOT)]
            try:
                res = parse_path(data[2:].decode("ascii"))
            except (UnicodeDecodeError, UnsupportedFrameError):
                self.ignored_writes.append(data)
                return []
            self.subscriptions[ref] = res
            self._pending[ref] = []
            return []
        if cmd == CMD_UNSUBSCRIBE:
            self.subscriptions.pop(ref, None)
            self._pending.pop(ref, None)
            return []
        self.ignored_writes.append(data)
        return []

    def encode(self, batch: ImuBatch) -> list[tuple[str, bytes]]:
        """Samples -> GSP DATA (and DATA_PART2) notifications for every active subscription.

        ``batch.t_s`` is the device clock in s; the first sample of each packet gives its uint32 ms
        timestamp (rounded, modulo 2³²). Samples not filling a packet are kept for the next call.
        """
        n = len(batch)
        acc = batch.acc_mps2 if batch.acc_mps2 is not None else np.zeros((n, 3))
        gyro = np.zeros((n, 3)) if batch.gyr_rads is None else batch.gyr_rads / _DEG2RAD
        mag = batch.mag_uT if batch.mag_uT is not None else np.broadcast_to(self._mag, (n, 3))
        rows = np.column_stack([batch.t_s, acc, gyro, mag])  # (n, 10)
        out: list[tuple[str, bytes]] = []
        for ref, res in self.subscriptions.items():
            pend = self._pending[ref]
            pend.append(rows)
            allrows = np.concatenate(pend) if len(pend) > 1 else pend[0]
            spp = self._spp or default_samples_per_packet(res)
            full = allrows.shape[0] // spp
            self._pending[ref] = [allrows[full * spp :]]
            for p in range(full):
                block = allrows[p * spp : (p + 1) * spp]
                out.extend(self._packet(ref, res, block))
        return out

    @staticmethod
    def _packet(ref: int, res: Resource, block: np.ndarray) -> list[tuple[str, bytes]]:
        cols = {"acc": block[:, 1:4], "gyro": block[:, 4:7], "mag": block[:, 7:10]}
        ts = int(round(block[0, 0] * 1000.0)) % _WRAP
        body = np.concatenate([cols[a].astype("<f4").ravel() for a in res.arrays]).tobytes()
        payload = ts.to_bytes(4, "little") + body
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ValueError(
                f"{NAME}: {block.shape[0]} samples of {res.path} make {len(payload)} bytes; "
                f"GSP v1 carries at most {MAX_PAYLOAD_BYTES}"
            )
        head = payload[:PART1_PAYLOAD_BYTES]
        msgs = [(DATA_UUID, bytes((RESP_DATA, ref)) + head)]
        if len(payload) > PART1_PAYLOAD_BYTES:
            msgs.append((DATA_UUID, bytes((RESP_DATA_PART2, ref)) + payload[PART1_PAYLOAD_BYTES:]))
        return msgs


class MovesenseProtocol(Protocol):
    """Movesense GSP v1 (stock firmware from 2.3.0 on)."""

    spec = ProtocolSpec(
        name=NAME,
        title="Movesense (GATT SensorData Protocol v1)",
        service_uuids=(SERVICE_UUID,),
        notify_uuids=(DATA_UUID,),
        write_uuid=COMMAND_UUID,
        name_patterns=(r"^Movesense\b",),
        rates_hz=RATES_HZ,
        default_rate_hz=104.0,
        has_gyro=True,
        has_mag=True,
        device_clock=True,
        loss_detection="gaps in the uint32 ms first-sample timestamp; DATA without DATA_PART2 (no counter)",
        timestamp_resolution_s=TIMESTAMP_RESOLUTION_MS / 1000.0,
        context_keys=("path", "confirm_split"),
        notes=(
            "float32 SI payload (acc m/s², gyro deg/s, magn µT), struct of arrays, split into DATA + "
            "DATA_PART2 above 150 bytes; negotiate ATT MTU >= 155; writes with response."
        ),
        extra={"reference": DEFAULT_REFERENCE, "max_subscriptions": MAX_SUBSCRIPTIONS},
    )

    def start_sequence(self, config: StreamConfig) -> list[GattWrite]:
        return [
            GattWrite(COMMAND_UUID, subscribe_command(path_for(config), DEFAULT_REFERENCE), response=True)
        ]

    def stop_sequence(self) -> list[GattWrite]:
        return [GattWrite(COMMAND_UUID, unsubscribe_command(DEFAULT_REFERENCE), response=True)]

    def decoder(self, **context: Any) -> MovesenseDecoder:
        unknown = set(context) - {"path", "confirm_split"}
        if unknown:
            raise ValueError(f"{NAME}: unknown decoder context {sorted(unknown)}; known: path, confirm_split")
        return MovesenseDecoder(**context)

    def decoder_context(self, config: StreamConfig) -> dict[str, Any]:
        """Context of a streaming client: payloads split in two are confirmed by the next DATA."""
        return {"confirm_split": True}

    def peripheral(self, **options: Any) -> MovesensePeripheral:
        return MovesensePeripheral(**options)


PROTOCOL = MovesenseProtocol()
