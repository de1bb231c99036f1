"""Movella DOT (formerly Xsens DOT): BLE measurement service, payload modes, 60 Hz live streaming.

Sources
-------
- "Movella DOT BLE Service Specification", document XD0506P, Rev C, July 2023 (Movella Inc.): UUIDs, the
  measurement control characteristic (section 3.1), payload modes (Table 13), data types (section 3.5),
  the device control characteristic (section 2.2: visit index, output rate, filter profile).
- Official example server ``xsens/xsens_dot_server@364d521ab3f40690649bf281c054c6d798889a12:bleHandler.js``:
  field offsets of the medium-payload modes, timestamp rollover, magnetometer ``int16 / 2**12``.
- ``protobioengineering/xsens-dot-python-examples@3ddc1b2121dbe27202c1dcdbea7514cd143fa95d``: a real
  free-acceleration notification with its decoded values (``tests/protocols/test_movella_dot.py``).

Wire format in short (all little-endian)
----------------------------------------
- Measurement control ``15172001``: ``[0x01 (measurement), action (1 start / 0 stop), payload_mode]``.
- Device control ``15171002`` (32 bytes): byte 0 is the "visit index" bitmask saying which fields the write
  sets (0x10 = output rate); the output rate is a uint16 at offset 24 (1, 4, 10, 12, 15, 20, 30, 60 Hz live;
  120 Hz is for on-device recording only); the filter profile index is at offset 26 (0x20 in the visit index).
- One sample per notification: ``uint32 timestamp_us`` then the fields of the payload mode, on the long
  (``15172002``, 63 B), medium (``15172003``, 40 B) or short (``15172004``, 20 B) payload characteristic,
  zero-padded to the characteristic's size.

Data types: quaternion 4 x float32 ``w, x, y, z`` (scalar first, sensor to the DOT's local earth frame);
Euler angles 3 x float32 deg (roll x, pitch y, yaw z; converted here with the Xsens convention
``R = Rz(yaw) Ry(pitch) Rx(roll)``); free acceleration 3 x float32 m/s² (earth frame, gravity removed);
acceleration 3 x float32 m/s² (sensor frame, gravity included); angular velocity 3 x float32 deg/s;
magnetic field 3 x int16 / 4096 (arbitrary units, normalised field: kept in ``native["mag_au"]`` only, since
it is not in µT); status uint16 and two uint8 clip counters.

The payload mode is not in the notification: the decoder must be told the mode the sensor was started in
(context ``payload_mode``, default 21 "rate quantities", the mode :meth:`MovellaDot.start_sequence` starts).

Timestamps are uint32 µs on the sensor clock and wrap every 2**32 µs = 71.6 min; the decoder unwraps them
modulo 2**32 (the official server adds 2**32 - 1, one microsecond short, at every rollover). There is no
counter: loss is detected from the timestamp step against the output rate (context ``output_rate_hz``).
"""

from __future__ import annotations

import functools
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
from .batch import G_MPS2, ImuBatch

NAME = "movella_dot"


def _uuid(short: int) -> str:
    return f"1517{short:04x}-4947-11e9-8646-d663bd873d93"


DEVICE_INFO_UUID = _uuid(0x1001)
DEVICE_CONTROL_UUID = _uuid(0x1002)
DEVICE_REPORT_UUID = _uuid(0x1004)
MEASUREMENT_SERVICE_UUID = _uuid(0x2000)
MEASUREMENT_CONTROL_UUID = _uuid(0x2001)
LONG_PAYLOAD_UUID = _uuid(0x2002)
MEDIUM_PAYLOAD_UUID = _uuid(0x2003)
SHORT_PAYLOAD_UUID = _uuid(0x2004)
BATTERY_UUID = _uuid(0x3001)

PAYLOAD_SIZE: dict[str, int] = {LONG_PAYLOAD_UUID: 63, MEDIUM_PAYLOAD_UUID: 40, SHORT_PAYLOAD_UUID: 20}
"""Characteristic value sizes in bytes; notifications are zero-padded to these."""

DEVICE_CONTROL_SIZE = 32
VISIT_OUTPUT_RATE = 0x10
VISIT_FILTER_PROFILE = 0x20
OUTPUT_RATE_OFFSET = 24
FILTER_PROFILE_OFFSET = 26

LIVE_RATES_HZ: tuple[int, ...] = (1, 4, 10, 12, 15, 20, 30, 60)
"""Output rates for live streaming; 120 Hz is accepted by the sensor for on-device recording only."""
DEFAULT_RATE_HZ = 60

MODE_RATE_QUANTITIES_MAG = 20
MODE_RATE_QUANTITIES = 21
DEFAULT_MODE = MODE_RATE_QUANTITIES

MANUFACTURER_ID = 0x0886
"""Bluetooth SIG company identifier of Xsens Technologies B.V., seen in the DOT's advertising."""

_WRAP = 1 << 32
_HALF = 1 << 31

# Field -> (numpy format, size in bytes).
_FIELD: dict[str, tuple[Any, int]] = {
    "quat": (("<f4", (4,)), 16),
    "euler": (("<f4", (3,)), 12),
    "free_acc": (("<f4", (3,)), 12),
    "acc": (("<f4", (3,)), 12),
    "gyr": (("<f4", (3,)), 12),
    "mag": (("<i2", (3,)), 6),
    "status": ("<u2", 2),
    "clip_acc": ("u1", 1),
    "clip_gyr": ("u1", 1),
}


@dataclass(frozen=True)
class PayloadMode:
    """One payload mode of the measurement service (spec Table 13).

    Attributes
    ----------
    number : int
        The decimal mode number written in the measurement control command.
    title : str
        The spec's name.
    char_uuid : str
        The payload characteristic the mode's notifications arrive on.
    fields : tuple of str
        Fields after the uint32 timestamp, in order (keys of the module's field table).
    """

    number: int
    title: str
    char_uuid: str
    fields: tuple[str, ...]

    @property
    def size(self) -> int:
        """Bytes used in the notification (timestamp included), before zero padding."""
        return 4 + sum(_FIELD[f][1] for f in self.fields)

    @property
    def dtype(self) -> np.dtype:
        """Structured little-endian dtype of the used bytes."""
        return _record_dtype(self.fields, self.size)


@functools.lru_cache(maxsize=64)
def _record_dtype(fields: tuple[str, ...], itemsize: int) -> np.dtype:
    names = ["ts", *fields]
    formats: list[Any] = ["<u4"] + [_FIELD[f][0] for f in fields]
    offsets = [0]
    pos = 4
    for f in fields:
        offsets.append(pos)
        pos += _FIELD[f][1]
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize})


MODES: dict[int, PayloadMode] = {
    m.number: m
    for m in (
        PayloadMode(
            2,
            "Extended (Quaternion)",
            MEDIUM_PAYLOAD_UUID,
            ("quat", "free_acc", "status", "clip_acc", "clip_gyr"),
        ),
        PayloadMode(3, "Complete (Quaternion)", MEDIUM_PAYLOAD_UUID, ("quat", "free_acc")),
        PayloadMode(4, "Orientation (Euler)", SHORT_PAYLOAD_UUID, ("euler",)),
        PayloadMode(5, "Orientation (Quaternion)", SHORT_PAYLOAD_UUID, ("quat",)),
        PayloadMode(6, "Free acceleration", SHORT_PAYLOAD_UUID, ("free_acc",)),
        PayloadMode(
            7,
            "Extended (Euler)",
            MEDIUM_PAYLOAD_UUID,
            ("euler", "free_acc", "status", "clip_acc", "clip_gyr"),
        ),
        PayloadMode(16, "Complete (Euler)", MEDIUM_PAYLOAD_UUID, ("euler", "free_acc")),
        PayloadMode(20, "Rate quantities (with mag)", MEDIUM_PAYLOAD_UUID, ("acc", "gyr", "mag")),
        PayloadMode(21, "Rate quantities", MEDIUM_PAYLOAD_UUID, ("acc", "gyr")),
        PayloadMode(22, "Custom mode 1", MEDIUM_PAYLOAD_UUID, ("euler", "free_acc", "gyr")),
        PayloadMode(23, "Custom mode 2", MEDIUM_PAYLOAD_UUID, ("euler", "free_acc", "mag")),
        PayloadMode(24, "Custom mode 3", MEDIUM_PAYLOAD_UUID, ("quat", "gyr")),
        PayloadMode(26, "Custom mode 5", LONG_PAYLOAD_UUID, ("quat", "acc", "gyr")),
    )
}
"""Payload modes pelvimon decodes. Not decoded: 1 and 17 (high fidelity) and 25 (custom mode 4), which the
spec reserves for the vendor SDK, and 18/19 (delta quantities dq/dv)."""

_UNSUPPORTED_MODES: dict[int, str] = {
    1: "high fidelity (with mag) is for the Movella SDK only",
    17: "high fidelity is for the Movella SDK only",
    25: "custom mode 4 is for the Movella SDK only",
    18: "delta quantities (dq, dv) are not decoded by pelvimon; use mode 21 (rate quantities)",
    19: "delta quantities (dq, dv) are not decoded by pelvimon; use mode 21 (rate quantities)",
}


def payload_mode(number: Any) -> PayloadMode:
    """The :class:`PayloadMode` numbered ``number`` (decimal), or :class:`UnsupportedFrameError`."""
    try:
        n = int(number)
    except (TypeError, ValueError):
        raise UnsupportedFrameError(NAME, "payload mode", f"{number!r} is not a mode number") from None
    if n in MODES:
        return MODES[n]
    why = _UNSUPPORTED_MODES.get(n, "no such payload mode in the Movella DOT BLE specification")
    known = ", ".join(str(k) for k in MODES)
    raise UnsupportedFrameError(NAME, f"payload mode {n}", f"{why} (decoded modes: {known})")


_resolve_mode = payload_mode  # for signatures whose parameter is called payload_mode


# ----------------------------------------------------------------------------------------------------------
# Orientation helpers (vectorised). Quaternions scalar first [w, x, y, z].


def euler_deg_to_quat_wxyz(euler_deg: np.ndarray) -> np.ndarray:
    """Xsens Euler angles -> unit quaternions.

    Parameters
    ----------
    euler_deg : ndarray, shape (N, 3)
        Roll (about x), pitch (about y), yaw (about z) in degrees, with ``R = Rz(yaw) Ry(pitch) Rx(roll)``.

    Returns
    -------
    ndarray, shape (N, 3 + 1)
        ``[w, x, y, z]`` of the same rotation.
    """
    h = np.deg2rad(np.asarray(euler_deg, dtype=np.float64)) * 0.5
    cr, cp, cy = np.cos(h[:, 0]), np.cos(h[:, 1]), np.cos(h[:, 2])
    sr, sp, sy = np.sin(h[:, 0]), np.sin(h[:, 1]), np.sin(h[:, 2])
    return np.stack(
        [
            cr * cp * cy + sr * sp * sy,
            sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
        ],
        axis=1,
    )


def quat_wxyz_to_euler_deg(q: np.ndarray) -> np.ndarray:
    """Unit quaternions ``[w, x, y, z]`` (N, 4) -> Xsens Euler angles roll, pitch, yaw (N, 3) in degrees."""
    q = np.asarray(q, dtype=np.float64)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    roll = np.arctan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))
    pitch = np.arcsin(np.clip(2.0 * (w * y - z * x), -1.0, 1.0))
    yaw = np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    return np.rad2deg(np.stack([roll, pitch, yaw], axis=1))


def _rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v`` (N, 3) by unit quaternions ``q`` (N, 4, scalar first): R(q) v."""
    w = q[:, :1]
    u = q[:, 1:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


# ----------------------------------------------------------------------------------------------------------
# Pure parsing


def parse_payloads(
    mode: int | PayloadMode, payloads: bytes | np.ndarray, length: int | None = None
) -> dict[str, np.ndarray]:
    """Parse notifications of one payload mode into native arrays, vectorised over notifications.

    Parameters
    ----------
    mode : int or PayloadMode
        The payload mode the sensor was started in.
    payloads : bytes or ndarray of uint8
        One notification, or ``k`` notifications of equal length concatenated.
    length : int, optional
        Length of each notification in bytes (default: all of ``payloads`` is one notification).

    Returns
    -------
    dict of str to ndarray
        ``timestamp_us`` (k,) uint32 and, as the mode has them: ``quat_wxyz`` (k, 4), ``euler_deg`` (k, 3),
        ``free_acc_mps2`` (k, 3), ``acc_mps2`` (k, 3), ``gyr_dps`` (k, 3), ``mag_au`` (k, 3),
        ``status`` (k,), ``clip_count_acc`` (k,), ``clip_count_gyr`` (k,). Floats as float64.

    Raises
    ------
    UnsupportedFrameError
        For a mode pelvimon does not decode.
    MalformedFrameError
        For a wrong length, non-zero padding (another payload mode) or non-finite values.
    """
    m = mode if isinstance(mode, PayloadMode) else payload_mode(mode)
    buf = np.frombuffer(payloads, dtype=np.uint8) if not isinstance(payloads, np.ndarray) else payloads
    buf = buf.reshape(-1)
    total = buf.shape[0]
    length = total if length is None else int(length)
    char_size = PAYLOAD_SIZE[m.char_uuid]
    frame = f"mode {m.number} ({m.title}) notification"
    if length < m.size or length > char_size:
        raise MalformedFrameError(
            NAME, frame, f"expected {m.size} to {char_size} bytes (zero-padded), got {length}"
        )
    if total == 0 or total % length:
        raise MalformedFrameError(
            NAME, frame, f"{total} bytes is not a whole number of {length}-byte notifications"
        )
    dt = _record_dtype(m.fields, length)
    buf = np.ascontiguousarray(buf)
    if length > m.size and buf.reshape(-1, length)[:, m.size :].any():
        raise MalformedFrameError(
            NAME,
            frame,
            f"bytes {m.size}..{length - 1} must be zero padding; data there means the sensor streams another "
            "payload mode (set payload_mode to the mode it was started in)",
        )
    rec = np.frombuffer(buf, dtype=dt)
    out: dict[str, np.ndarray] = {"timestamp_us": rec["ts"].astype(np.uint32)}
    names = {
        "quat": "quat_wxyz",
        "euler": "euler_deg",
        "free_acc": "free_acc_mps2",
        "acc": "acc_mps2",
        "gyr": "gyr_dps",
        "status": "status",
        "clip_acc": "clip_count_acc",
        "clip_gyr": "clip_count_gyr",
    }
    for f in m.fields:
        if f == "mag":
            out["mag_au"] = rec["mag"].astype(np.float64) / 4096.0
            continue
        v = rec[f]
        if v.dtype.kind == "f":
            v = check_values(NAME, frame, names[f], as_float64(v))
        else:
            v = v.astype(np.int64)
        out[names[f]] = v
    return out


class _U32Clock:
    """Unwraps a uint32 µs device clock (period 2**32 µs = 71.6 min) across notifications."""

    def __init__(self) -> None:
        self.last_raw: int | None = None
        self.base = 0  # multiples of 2**32 already added

    def unwrap(self, raw: np.ndarray) -> tuple[np.ndarray, int | None]:
        """Unwrapped µs (int64) of increasing raw stamps; also the step from the previous call's last stamp.

        Raises ``ValueError`` (message text) when a stamp does not advance (a step of 0 or more than half the
        wrap period backwards).
        """
        raw = raw.astype(np.int64)
        d = np.diff(raw) % _WRAP
        if d.size and ((d == 0) | (d >= _HALF)).any():
            raise ValueError("device timestamps within the data do not increase")
        step = None
        base = self.base
        if self.last_raw is not None:
            step = int((raw[0] - self.last_raw) % _WRAP)
            if step == 0 or step >= _HALF:
                back = (self.last_raw - int(raw[0])) % _WRAP
                raise ValueError(f"device timestamp did not advance ({back} µs back from the previous one)")
            if raw[0] < self.last_raw:
                base += _WRAP
        wraps = np.concatenate([[0], np.cumsum(np.diff(raw) < 0)]) if raw.size > 1 else np.zeros(1, np.int64)
        out = raw + base + wraps * _WRAP
        self.base = base + int(wraps[-1]) * _WRAP
        self.last_raw = int(raw[-1])
        return out, step

    def peek(self, raw0: int) -> int:
        """The unwrapped µs of a first stamp ``raw0`` without keeping it: as :meth:`unwrap` gives it where the
        stamp advances (across a wrap too), and behind the previous one where it goes back."""
        wrapped = self.last_raw is not None and raw0 < self.last_raw and (raw0 - self.last_raw) % _WRAP < _HALF
        return int(raw0) + self.base + (_WRAP if wrapped else 0)

    def reset(self) -> None:
        self.last_raw = None
        self.base = 0


class DotDecoder(Decoder):
    """Decoder for one DOT connection.

    Parameters
    ----------
    payload_mode : int
        The payload mode the sensor was started in (default 21, rate quantities).
    output_rate_hz : float
        The configured output rate (default 60 Hz); sets the expected timestamp step for loss detection.
    """

    protocol = NAME

    def __init__(self, payload_mode: int = DEFAULT_MODE, output_rate_hz: float = DEFAULT_RATE_HZ) -> None:
        self.mode = _resolve_mode(payload_mode)
        rate = float(output_rate_hz)
        if not np.isfinite(rate) or rate <= 0:
            raise MalformedFrameError(NAME, "context", f"output_rate_hz must be > 0, got {output_rate_hz!r}")
        self.output_rate_hz = rate
        self.period_us = 1e6 / rate
        self._clock = _U32Clock()
        self._arrival = ArrivalCheck()
        self._mode_error: UnsupportedFrameError | None = None

    def reset(self) -> None:
        self._clock.reset()
        self._arrival.reset()

    def observe_write(self, char_uuid: str, data: bytes) -> None:
        """Learn the configuration from the client's own writes (optional; the live client and replay call it).

        A measurement-control start (``01 01 <mode>``) sets the payload mode; a device-control write with the
        output-rate bit sets the expected timestamp step. Other writes are ignored. A start of a mode pelvimon
        does not decode makes the following notifications raise :class:`UnsupportedFrameError`.
        """
        char = char_uuid.lower()
        data = bytes(data)
        if char == MEASUREMENT_CONTROL_UUID and len(data) == 3 and data[:2] == b"\x01\x01":
            try:
                self.mode = payload_mode(data[2])
                self._mode_error = None
            except UnsupportedFrameError as exc:
                self._mode_error = exc
        elif char == DEVICE_CONTROL_UUID and len(data) == DEVICE_CONTROL_SIZE and data[0] & VISIT_OUTPUT_RATE:
            rate = int.from_bytes(data[OUTPUT_RATE_OFFSET : OUTPUT_RATE_OFFSET + 2], "little")
            if rate > 0:
                self.output_rate_hz = float(rate)
                self.period_us = 1e6 / rate

    def feed(self, char_uuid: str, payload: bytes, t_host_s: float | None = None) -> list[ImuBatch]:
        return self.feed_many(char_uuid, [payload], t_host_s)

    def feed_many(self, char_uuid: str, payloads: list[bytes], t_host_s: float | None = None) -> list[ImuBatch]:
        """Decode consecutive notifications of one characteristic at once (benchmarks).

        Equivalent to feeding them one by one and concatenating, except that a gap is only reported before
        the first notification; gaps inside the block raise nothing and are visible in ``t_s``. ``t_host_s``:
        the receive time of the first, whose stamp is checked against it (:class:`ArrivalCheck`).
        """
        char = char_uuid.lower()
        if self._mode_error is not None:
            raise self._mode_error
        m = self.mode
        if char != m.char_uuid:
            if char in PAYLOAD_SIZE:
                raise MalformedFrameError(
                    NAME,
                    f"notification on {char}",
                    f"payload mode {m.number} ({m.title}) arrives on {m.char_uuid}; "
                    "set payload_mode to the mode the sensor was started in",
                )
            raise UnsupportedFrameError(NAME, f"notification on {char}", "not a DOT payload characteristic")
        if not payloads:
            return []
        length = len(payloads[0])
        if any(len(p) != length for p in payloads):
            raise MalformedFrameError(NAME, "notifications", "feed_many needs notifications of equal length")
        native = parse_payloads(m, b"".join(payloads), length)
        if not any(k in native for k in ("acc_mps2", "gyr_dps", "quat_wxyz", "euler_deg")):
            raise UnsupportedFrameError(
                NAME,
                f"payload mode {m.number} ({m.title})",
                "holds free acceleration only (earth frame, gravity removed): no sensor-frame acceleration, "
                "angular rate or orientation; start payload mode 21 (rate quantities) for gait analysis",
            )
        why = self._arrival.refusal(self._clock.peek(int(native["timestamp_us"][0])) * 1e-6, t_host_s)
        if why is not None:
            raise MalformedFrameError(NAME, f"mode {m.number} notification", why)
        try:
            t_us, step = self._clock.unwrap(native["timestamp_us"])
        except ValueError as exc:
            raise MalformedFrameError(NAME, f"mode {m.number} notification", str(exc)) from None
        self._arrival.accept(float(t_us[0]) * 1e-6, t_host_s)
        n_lost = 0
        if step is not None:
            n_lost = max(0, int(round(step / self.period_us)) - 1)
        quat = native.get("quat_wxyz")
        if quat is None and "euler_deg" in native:
            quat = euler_deg_to_quat_wxyz(native["euler_deg"])
        gyr = native.get("gyr_dps")
        batch = ImuBatch(
            t_s=t_us * 1e-6,
            acc_mps2=native.get("acc_mps2"),
            gyr_rads=None if gyr is None else np.deg2rad(gyr),
            quat_wxyz=quat,
            gap_before=n_lost > 0,
            n_lost=n_lost,
            time_base="device",
            native=native,
        )
        return [batch]


class DotPeripheral(PeripheralModel):
    """Device side of a DOT for emulation: measurement and device control writes, sample encoding.

    Parameters
    ----------
    output_rate_hz : int
        Output rate before any device control write (the sensor's default is 60 Hz).
    """

    def __init__(self, output_rate_hz: int = DEFAULT_RATE_HZ) -> None:
        if output_rate_hz not in LIVE_RATES_HZ:
            raise MalformedFrameError(
                NAME, "peripheral", f"output rate {output_rate_hz} Hz is not a live rate"
            )
        self.output_rate_hz = int(output_rate_hz)
        self.filter_profile = 0
        self.mode: PayloadMode | None = None
        self._streaming = False

    @property
    def streaming(self) -> bool:
        return self._streaming

    @property
    def config(self) -> StreamConfig | None:
        if self.mode is None:
            return None
        return StreamConfig(rate_hz=float(self.output_rate_hz), mag=self.mode.number in (20, 23))

    def handle_write(self, char_uuid: str, data: bytes) -> list[tuple[str, bytes]]:
        char = char_uuid.lower()
        data = bytes(data)
        if char == MEASUREMENT_CONTROL_UUID:
            if len(data) != 3 or data[0] != 0x01 or data[1] not in (0, 1):
                raise MalformedFrameError(
                    NAME, "measurement control write", f"expected 01 <0|1> <mode>, got {data.hex()}"
                )
            if data[1] == 1:
                self.mode = payload_mode(data[2])
                self._streaming = True
            else:
                self._streaming = False
            return []
        if char == DEVICE_CONTROL_UUID:
            if len(data) != DEVICE_CONTROL_SIZE:
                raise MalformedFrameError(NAME, "device control write", f"expected 32 bytes, got {len(data)}")
            visit = data[0]
            if visit & VISIT_OUTPUT_RATE:
                rate = int.from_bytes(data[OUTPUT_RATE_OFFSET : OUTPUT_RATE_OFFSET + 2], "little")
                if rate not in LIVE_RATES_HZ and rate != 120:
                    raise MalformedFrameError(
                        NAME, "device control write", f"output rate {rate} Hz is not supported"
                    )
                self.output_rate_hz = rate
            if visit & VISIT_FILTER_PROFILE:
                self.filter_profile = data[FILTER_PROFILE_OFFSET]
            return []
        raise UnsupportedFrameError(NAME, f"write to {char}", "not a characteristic the DOT model handles")

    def encode(self, batch: ImuBatch) -> list[tuple[str, bytes]]:
        """One notification per sample, zero-padded to the characteristic size, as the sensor sends them.

        The samples' ``t_s`` is taken as the device clock in seconds (rounded to µs, modulo 2**32).
        Free acceleration is ``R(q) acc - [0, 0, g]`` and Euler angles come from ``quat_wxyz``; modes with the
        magnetometer need ``batch.native["mag_au"]`` (the DOT's arbitrary units).
        """
        if self.mode is None or not self._streaming:
            return []
        m = self.mode
        n = len(batch)
        rec = np.zeros(n, dtype=m.dtype)
        rec["ts"] = (np.round(batch.t_s * 1e6).astype(np.int64) % _WRAP).astype(np.uint32)

        def need(value: np.ndarray | None, what: str) -> np.ndarray:
            if value is None:
                raise UnsupportedFrameError(
                    NAME, f"encoding mode {m.number} ({m.title})", f"the batch has no {what}"
                )
            return value

        for f in m.fields:
            if f == "acc":
                rec["acc"] = need(batch.acc_mps2, "acc_mps2")
            elif f == "gyr":
                rec["gyr"] = np.rad2deg(need(batch.gyr_rads, "gyr_rads"))
            elif f == "quat":
                rec["quat"] = need(batch.quat_wxyz, "quat_wxyz")
            elif f == "euler":
                rec["euler"] = quat_wxyz_to_euler_deg(need(batch.quat_wxyz, "quat_wxyz"))
            elif f == "free_acc":
                q = need(batch.quat_wxyz, "quat_wxyz")
                rec["free_acc"] = _rotate(q, need(batch.acc_mps2, "acc_mps2")) - np.array([0.0, 0.0, G_MPS2])
            elif f == "mag":
                au = None if batch.native is None else batch.native.get("mag_au")
                rec["mag"] = np.clip(np.round(need(au, "native['mag_au']") * 4096.0), -32768, 32767)
        size = PAYLOAD_SIZE[m.char_uuid]
        raw = np.zeros((n, size), dtype=np.uint8)
        raw[:, : m.size] = rec.view(np.uint8).reshape(n, m.size)
        return [(m.char_uuid, row.tobytes()) for row in raw]


def nearest_live_rate(rate_hz: float) -> int:
    """The supported live output rate nearest to ``rate_hz`` (ties go to the higher rate)."""
    rates = np.array(LIVE_RATES_HZ, dtype=np.float64)
    d = np.abs(rates - float(rate_hz))
    return int(rates[np.flatnonzero(d == d.min())[-1]])


def device_control_output_rate(rate_hz: int) -> bytes:
    """The 32-byte device control write that sets the output rate (visit index 0x10, uint16 at offset 24)."""
    data = bytearray(DEVICE_CONTROL_SIZE)
    data[0] = VISIT_OUTPUT_RATE
    data[OUTPUT_RATE_OFFSET : OUTPUT_RATE_OFFSET + 2] = int(rate_hz).to_bytes(2, "little")
    return bytes(data)


def measurement_control(start: bool, mode: int) -> bytes:
    """The 3-byte measurement control write: ``01 <01 start | 00 stop> <payload mode>``."""
    payload_mode(mode)
    return bytes([0x01, 0x01 if start else 0x00, int(mode)])


class MovellaDot(Protocol):
    """The Movella DOT measurement service (live streaming, one sample per notification)."""

    spec = ProtocolSpec(
        name=NAME,
        title="Movella DOT (Xsens DOT)",
        service_uuids=(MEASUREMENT_SERVICE_UUID,),
        notify_uuids=(MEDIUM_PAYLOAD_UUID, SHORT_PAYLOAD_UUID, LONG_PAYLOAD_UUID),
        write_uuid=MEASUREMENT_CONTROL_UUID,
        name_patterns=(r"^(Xsens|Movella) DOT",),
        rates_hz=tuple(float(r) for r in LIVE_RATES_HZ),
        default_rate_hz=float(DEFAULT_RATE_HZ),
        has_gyro=True,
        has_mag=True,
        device_clock=True,
        loss_detection="timestamps (uint32 µs per notification, one sample each)",
        context_keys=("payload_mode", "output_rate_hz"),
        notes=(
            "Live streaming is capped at 60 Hz (120 Hz only when recording on the sensor). Payload mode 21 "
            "(rate quantities: acc m/s², gyro deg/s) is what pelvimon starts; mode 20 adds the magnetometer in "
            "arbitrary units. Enable notifications before writing start."
        ),
        extra={
            "other_write_uuids": (DEVICE_CONTROL_UUID,),
            "manufacturer_id": MANUFACTURER_ID,
            "payload_modes": tuple(MODES),
        },
    )

    def start_sequence(self, config: StreamConfig) -> list[GattWrite]:
        """Set the output rate (device control), then start payload mode 21 (20 with ``config.mag``)."""
        rate = nearest_live_rate(config.rate_hz)
        mode = MODE_RATE_QUANTITIES_MAG if config.mag else MODE_RATE_QUANTITIES
        return [
            GattWrite(DEVICE_CONTROL_UUID, device_control_output_rate(rate), response=True),
            GattWrite(MEASUREMENT_CONTROL_UUID, measurement_control(True, mode), response=True),
        ]

    def stop_sequence(self) -> list[GattWrite]:
        return [GattWrite(MEASUREMENT_CONTROL_UUID, measurement_control(False, DEFAULT_MODE), response=True)]

    def decoder_context(self, config: StreamConfig) -> dict[str, Any]:
        """The decoder context matching :meth:`start_sequence` for ``config`` (payload mode and output rate)."""
        mode = MODE_RATE_QUANTITIES_MAG if config.mag else MODE_RATE_QUANTITIES
        return {"payload_mode": mode, "output_rate_hz": nearest_live_rate(config.rate_hz)}

    def decoder(self, **context: Any) -> DotDecoder:
        unknown = set(context) - set(self.spec.context_keys)
        if unknown:
            raise TypeError(
                f"{NAME}: unknown decoder context {sorted(unknown)}; known: {self.spec.context_keys}"
            )
        return DotDecoder(**context)

    def peripheral(self, **options: Any) -> DotPeripheral:
        return DotPeripheral(**options)


PROTOCOL = MovellaDot()
