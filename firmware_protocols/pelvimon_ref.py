"""pelvimon reference protocol v1: the wire format pelvimon proposes for DIY sensors.

For boards such as nRF52 or ESP32 with a BNO08x, LSM6DSx or ICM-42688 IMU. The full specification, with byte
tables, hex examples and a checklist for firmware writers, is ``docs/protocols/pelvimon_reference_protocol.md``;
this module is its reference implementation (decoder, command encoder, device model).

In short (all little-endian), over the Nordic UART Service (or a custom service with the same split):

- Every notification starts with ``magic 0xA5, version 0x01, frame type u8, seq u16``; ``seq`` counts every
  notification the device sends (any frame type), modulo 65536.
- Data frames (types 1 IMU6, 2 IMU9, 3 IMU6 + quaternion) continue with ``cfg u8`` (the configuration the
  samples were taken with), ``t0_us u32`` (device clock at the first sample; the host unwraps it),
  ``dt_us u16`` (sample period), ``n u8`` and ``n`` rows of int16 counts.
- The info frame (type 0x7E) declares, for one ``cfg``, the scales (acc LSB per g, gyro LSB per deg/s, mag
  LSB per µT), the rate and ranges, the firmware version and the IMU part. The host never guesses a scale:
  the decoder refuses data frames until it knows the scales of their ``cfg`` (:class:`ScalesUnknownError`),
  unless the scales are given as decoder context.
- Commands ``[op][ref != 0][args]`` are written to RX; each is answered by a reply frame (type 0x7F,
  ``ref, op, status``); START and GET_INFO are then followed by an info frame carrying the same ``ref``.

Quaternions are scalar first ``[w, x, y, z]``, Q14 (16384 = 1.0).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import (
    PLAUSIBLE_LIMITS,
    ArrivalCheck,
    Decoder,
    GattWrite,
    MalformedFrameError,
    PeripheralModel,
    Protocol,
    ProtocolError,
    ProtocolSpec,
    StreamConfig,
    UnsupportedFrameError,
)
from .batch import G_MPS2, ImuBatch

NAME = "pelvimon"

SERVICE_UUID = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
RX_UUID = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
"""Nordic UART RX: the client writes commands here."""
TX_UUID = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"
"""Nordic UART TX: the device notifies data, info and reply frames here."""

MAGIC = 0xA5
VERSION = 1

FRAME_IMU6 = 0x01
FRAME_IMU9 = 0x02
FRAME_IMU6_QUAT = 0x03
FRAME_INFO = 0x7E
FRAME_REPLY = 0x7F

CHANNELS: dict[int, int] = {FRAME_IMU6: 6, FRAME_IMU9: 9, FRAME_IMU6_QUAT: 10}
"""int16 values per sample of each data frame type."""
FRAME_NAMES: dict[int, str] = {
    FRAME_IMU6: "IMU6",
    FRAME_IMU9: "IMU9",
    FRAME_IMU6_QUAT: "IMU6+quaternion",
    FRAME_INFO: "info",
    FRAME_REPLY: "reply",
}

COMMON_HEADER = 5
DATA_HEADER = 13
INFO_SIZE = 41
REPLY_SIZE = 8
QUAT_ONE = 16384.0
"""Q14: the int16 count of a quaternion component equal to 1.0."""

OP_START = 0x01
OP_STOP = 0x02
OP_GET_INFO = 0x03
OP_SET_TIME = 0x04
OP_LENGTH: dict[int, int] = {OP_START: 8, OP_STOP: 2, OP_GET_INFO: 2, OP_SET_TIME: 10}

STATUS_OK = 0
STATUS_UNKNOWN_OP = 1
STATUS_BAD_LENGTH = 2
STATUS_BAD_ARGUMENT = 3
STATUS_BAD_STATE = 4
STATUS_TEXT: dict[int, str] = {
    STATUS_OK: "ok",
    STATUS_UNKNOWN_OP: "unknown op",
    STATUS_BAD_LENGTH: "bad length",
    STATUS_BAD_ARGUMENT: "bad argument (rate, range or frame type not supported)",
    STATUS_BAD_STATE: "bad state",
}

RATES_HZ: tuple[float, ...] = (25.0, 50.0, 100.0, 200.0, 400.0)
DEFAULT_RATE_HZ = 200.0
DEFAULT_ACC_RANGE_G = 16
DEFAULT_GYRO_RANGE_DPS = 2000

_U16 = 1 << 16
_WRAP = 1 << 32
_HALF = 1 << 31

_INFO_DTYPE = np.dtype(
    {
        "names": [
            "cfg", "ref", "frame_type", "rate_hz", "acc_range_g", "gyro_range_dps",
            "acc_lsb_per_g", "gyro_lsb_per_dps", "mag_lsb_per_uT", "fw", "part",
        ],
        "formats": ["u1", "u1", "u1", "<u2", "<u2", "<u2", "<f4", "<f4", "<f4", "3u1", "S12"],
        "offsets": [5, 6, 7, 8, 10, 12, 14, 18, 22, 26, 29],
        "itemsize": INFO_SIZE,
    }
)  # fmt: skip
_DATA_HDR_DTYPE = np.dtype(
    {
        "names": ["cfg", "t0_us", "dt_us", "n"],
        "formats": ["u1", "<u4", "<u2", "u1"],
        "offsets": [5, 6, 10, 12],
        "itemsize": DATA_HEADER,
    }
)


class ScalesUnknownError(ProtocolError):
    """A data frame arrived before the decoder knew the scales of its configuration."""


@dataclass(frozen=True)
class DeviceInfo:
    """The content of an info frame: what the samples of configuration ``cfg`` mean.

    Attributes
    ----------
    cfg : int
        Configuration number (0..255) that data frames taken with these settings carry.
    ref : int
        The command reference this frame answers (0: sent unprompted).
    frame_type : int
        The data frame type the device streams (1 IMU6, 2 IMU9, 3 IMU6 + quaternion).
    rate_hz : int
        Nominal sample rate in Hz.
    acc_range_g, gyro_range_dps : int
        Full scales, ±g and ±deg/s.
    acc_lsb_per_g, gyro_lsb_per_dps : float
        Counts per g and per deg/s (> 0).
    mag_lsb_per_uT : float
        Counts per µT; 0 when the board has no magnetometer.
    firmware : tuple of int
        (major, minor, patch).
    part : str
        IMU part number, ASCII (e.g. ``"ICM-42688-P"``).
    """

    cfg: int
    ref: int
    frame_type: int
    rate_hz: int
    acc_range_g: int
    gyro_range_dps: int
    acc_lsb_per_g: float
    gyro_lsb_per_dps: float
    mag_lsb_per_uT: float
    firmware: tuple[int, int, int]
    part: str


@dataclass(frozen=True)
class Reply:
    """A reply frame: the device's answer to command ``op`` with reference ``ref``."""

    seq: int
    ref: int
    op: int
    status: int

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK


# ----------------------------------------------------------------------------------------------------------
# Encoding (client commands and device frames)


def _common(frame_type: int, seq: int) -> bytes:
    return bytes([MAGIC, VERSION, frame_type]) + int(seq % _U16).to_bytes(2, "little")


def _check_ref(ref: int) -> int:
    if not 1 <= int(ref) <= 255:
        raise ValueError(f"{NAME}: command reference must be 1..255, got {ref}")
    return int(ref)


def cmd_start(
    ref: int, rate_hz: int, acc_range_g: int, gyro_range_dps: int, frame_type: int = FRAME_IMU6
) -> bytes:
    """START: ``01 ref rate_hz:u16 acc_range_g:u8 gyro_range_dps:u16 frame_type:u8`` (8 bytes)."""
    if frame_type not in CHANNELS:
        raise ValueError(f"{NAME}: frame type {frame_type} is not a data frame type")
    return (
        bytes([OP_START, _check_ref(ref)])
        + int(rate_hz).to_bytes(2, "little")
        + bytes([int(acc_range_g)])
        + int(gyro_range_dps).to_bytes(2, "little")
        + bytes([frame_type])
    )


def cmd_stop(ref: int) -> bytes:
    """STOP: ``02 ref``."""
    return bytes([OP_STOP, _check_ref(ref)])


def cmd_get_info(ref: int) -> bytes:
    """GET_INFO: ``03 ref``; answered by a reply and an info frame with the same ``ref``."""
    return bytes([OP_GET_INFO, _check_ref(ref)])


def cmd_set_time(ref: int, t_us: int) -> bytes:
    """SET_TIME: ``04 ref t_us:u64`` sets the device clock (µs); data frames carry its low 32 bits."""
    return bytes([OP_SET_TIME, _check_ref(ref)]) + int(t_us % (1 << 64)).to_bytes(8, "little")


def encode_reply(seq: int, ref: int, op: int, status: int) -> bytes:
    """A reply frame (8 bytes)."""
    return _common(FRAME_REPLY, seq) + bytes([ref & 0xFF, op & 0xFF, status & 0xFF])


def encode_info(seq: int, info: DeviceInfo) -> bytes:
    """An info frame (41 bytes)."""
    rec = np.zeros(1, dtype=_INFO_DTYPE)
    for name in ("cfg", "ref", "frame_type", "rate_hz", "acc_range_g", "gyro_range_dps"):
        rec[name] = getattr(info, name)
    rec["acc_lsb_per_g"] = info.acc_lsb_per_g
    rec["gyro_lsb_per_dps"] = info.gyro_lsb_per_dps
    rec["mag_lsb_per_uT"] = info.mag_lsb_per_uT
    rec["fw"] = info.firmware
    rec["part"] = info.part.encode("ascii")[:12]
    raw = bytearray(rec.tobytes())
    raw[:COMMON_HEADER] = _common(FRAME_INFO, seq)
    return bytes(raw)


def encode_data(seq: int, frame_type: int, cfg: int, t0_us: int, dt_us: int, counts: np.ndarray) -> bytes:
    """A data frame.

    Parameters
    ----------
    counts : ndarray, shape (n, CHANNELS[frame_type]), integer
        int16 counts per sample: acc x,y,z, gyro x,y,z, then mag x,y,z (IMU9) or quaternion w,x,y,z (Q14).
    """
    counts = np.asarray(counts)
    n = counts.shape[0]
    if counts.shape != (n, CHANNELS[frame_type]) or not 1 <= n <= 255:
        raise ValueError(
            f"{NAME}: counts must have shape (1..255, {CHANNELS[frame_type]}), got {counts.shape}"
        )
    hdr = np.zeros(1, dtype=_DATA_HDR_DTYPE)
    hdr["cfg"], hdr["t0_us"], hdr["dt_us"], hdr["n"] = cfg, int(t0_us) % _WRAP, dt_us, n
    raw = bytearray(hdr.tobytes())
    raw[:COMMON_HEADER] = _common(frame_type, seq)
    return bytes(raw) + counts.astype("<i2").tobytes()


# ----------------------------------------------------------------------------------------------------------
# Decoding


def parse_info(payload: bytes) -> DeviceInfo:
    """Parse an info frame (the 5-byte common header included); :class:`MalformedFrameError` if invalid."""
    if len(payload) != INFO_SIZE:
        raise MalformedFrameError(NAME, "info frame", f"expected {INFO_SIZE} bytes, got {len(payload)}")
    rec = np.frombuffer(payload, dtype=_INFO_DTYPE)[0]
    scales = [float(rec["acc_lsb_per_g"]), float(rec["gyro_lsb_per_dps"]), float(rec["mag_lsb_per_uT"])]
    if not all(np.isfinite(s) for s in scales) or scales[0] <= 0 or scales[1] <= 0 or scales[2] < 0:
        raise MalformedFrameError(
            NAME, "info frame", f"scales must be finite and positive (mag may be 0), got {scales}"
        )
    for scale, key in zip(scales, ("acc_g", "gyr_dps", "mag_uT"), strict=True):
        full = 32768.0 / scale if scale > 0 else 0.0
        if full > PLAUSIBLE_LIMITS[key.rsplit("_", 1)[1]]:
            raise MalformedFrameError(
                NAME, "info frame", f"{key} scale {scale:.3g} LSB gives a full scale of {full:.3g}, beyond any sensor's"
            )
    ftype = int(rec["frame_type"])
    if ftype not in CHANNELS:
        raise MalformedFrameError(NAME, "info frame", f"frame type {ftype} is not a data frame type")
    if ftype == FRAME_IMU9 and scales[2] == 0:
        raise MalformedFrameError(NAME, "info frame", "IMU9 frames declared without a magnetometer scale")
    part_raw = bytes(rec["part"]).split(b"\0", 1)[0]
    try:
        part = part_raw.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedFrameError(NAME, "info frame", f"part id is not ASCII: {part_raw.hex()}") from None
    return DeviceInfo(
        cfg=int(rec["cfg"]),
        ref=int(rec["ref"]),
        frame_type=ftype,
        rate_hz=int(rec["rate_hz"]),
        acc_range_g=int(rec["acc_range_g"]),
        gyro_range_dps=int(rec["gyro_range_dps"]),
        acc_lsb_per_g=scales[0],
        gyro_lsb_per_dps=scales[1],
        mag_lsb_per_uT=scales[2],
        firmware=tuple(int(v) for v in rec["fw"]),  # type: ignore[arg-type]
        part=part,
    )


class PelvimonDecoder(Decoder):
    """Decoder for one connection of a device speaking the pelvimon reference protocol.

    Parameters
    ----------
    acc_lsb_per_g, gyro_lsb_per_dps : float, optional
        Scales to use for data frames until an info frame arrives (both or neither). Without them the
        decoder refuses data frames it has no info frame for.
    mag_lsb_per_uT : float, optional
        Magnetometer scale for IMU9 data decoded with context scales.

    Attributes
    ----------
    info : DeviceInfo or None
        The latest info frame.
    replies : deque of Reply
        The latest reply frames (at most 16).
    lost_notifications : int
        Notifications (of any type) missing according to ``seq``, since the decoder was made.
    """

    protocol = NAME

    def __init__(
        self,
        acc_lsb_per_g: float | None = None,
        gyro_lsb_per_dps: float | None = None,
        mag_lsb_per_uT: float | None = None,
    ) -> None:
        if (acc_lsb_per_g is None) != (gyro_lsb_per_dps is None):
            raise ValueError(f"{NAME}: give both acc_lsb_per_g and gyro_lsb_per_dps, or neither")
        self._context: tuple[float, float, float] | None = None
        if acc_lsb_per_g is not None and gyro_lsb_per_dps is not None:
            vals = (float(acc_lsb_per_g), float(gyro_lsb_per_dps), float(mag_lsb_per_uT or 0.0))
            if not all(np.isfinite(v) for v in vals) or vals[0] <= 0 or vals[1] <= 0 or vals[2] < 0:
                raise ValueError(f"{NAME}: scales must be finite and > 0, got {vals}")
            self._context = vals
        self.info: DeviceInfo | None = None
        self.replies: deque[Reply] = deque(maxlen=16)
        self.lost_notifications = 0
        self._reset_stream()

    def _reset_stream(self) -> None:
        self._seq: int | None = None
        self._last_t0: int | None = None
        self._base = 0
        self._end_us: int | None = None
        self._arrival = ArrivalCheck()

    def reset(self) -> None:
        self.info = None
        self.replies.clear()
        self._reset_stream()

    def _check_seq(self, seq: int) -> None:
        if self._seq is not None:
            self.lost_notifications += (seq - self._seq - 1) % _U16
        self._seq = seq

    def feed(self, char_uuid: str, payload: bytes, t_host_s: float | None = None) -> list[ImuBatch]:
        char = char_uuid.lower()
        if char != TX_UUID:
            raise UnsupportedFrameError(NAME, f"notification on {char}", f"frames arrive on TX {TX_UUID}")
        payload = bytes(payload)
        if len(payload) < COMMON_HEADER:
            raise MalformedFrameError(
                NAME, "frame", f"{len(payload)} bytes is shorter than the 5-byte header"
            )
        if payload[0] != MAGIC:
            raise MalformedFrameError(NAME, "frame", f"magic byte is 0x{payload[0]:02x}, expected 0xa5")
        if payload[1] != VERSION:
            raise UnsupportedFrameError(
                NAME, "frame", f"protocol version {payload[1]}; this decoder speaks {VERSION}"
            )
        ftype = payload[2]
        seq = int.from_bytes(payload[3:5], "little")
        if ftype == FRAME_REPLY:
            if len(payload) != REPLY_SIZE:
                raise MalformedFrameError(
                    NAME, "reply frame", f"expected {REPLY_SIZE} bytes, got {len(payload)}"
                )
            self._check_seq(seq)
            self.replies.append(Reply(seq=seq, ref=payload[5], op=payload[6], status=payload[7]))
            return []
        if ftype == FRAME_INFO:
            info = parse_info(payload)
            self._check_seq(seq)
            if self.info is None or info.cfg != self.info.cfg:
                self._last_t0 = None
                self._base = 0
                self._end_us = None
            self.info = info
            return []
        if ftype not in CHANNELS:
            raise UnsupportedFrameError(NAME, f"frame type 0x{ftype:02x}", "not a frame type of protocol v1")
        return [self._data(payload, ftype, seq, t_host_s)]

    def _scales(self, ftype: int, cfg: int) -> tuple[float, float, float]:
        frame = f"{FRAME_NAMES[ftype]} frame (cfg {cfg})"
        if self.info is not None:
            if cfg != self.info.cfg:
                raise ScalesUnknownError(
                    NAME, frame,
                    f"the last info frame describes cfg {self.info.cfg}; send GET_INFO (03 <ref>) to learn "
                    "the scales of this configuration",
                )  # fmt: skip
            if ftype != self.info.frame_type:
                raise MalformedFrameError(
                    NAME, frame, f"info frame announced {FRAME_NAMES[self.info.frame_type]} frames"
                )
            return self.info.acc_lsb_per_g, self.info.gyro_lsb_per_dps, self.info.mag_lsb_per_uT
        if self._context is not None:
            return self._context
        raise ScalesUnknownError(
            NAME, frame,
            "scales unknown: no info frame yet; send GET_INFO (03 <ref>) before streaming, or give the "
            "decoder acc_lsb_per_g and gyro_lsb_per_dps",
        )  # fmt: skip

    def _data(self, payload: bytes, ftype: int, seq: int, t_host_s: float | None = None) -> ImuBatch:
        name = FRAME_NAMES[ftype]
        if len(payload) < DATA_HEADER:
            raise MalformedFrameError(
                NAME, f"{name} frame", f"{len(payload)} bytes is shorter than the 13-byte header"
            )
        hdr = np.frombuffer(payload, dtype=_DATA_HDR_DTYPE, count=1)[0]
        cfg, t0, dt_us, n = int(hdr["cfg"]), int(hdr["t0_us"]), int(hdr["dt_us"]), int(hdr["n"])
        width = CHANNELS[ftype]
        if n == 0 or len(payload) != DATA_HEADER + 2 * width * n:
            raise MalformedFrameError(
                NAME,
                f"{name} frame",
                f"n = {n} needs {DATA_HEADER + 2 * width * n} bytes, got {len(payload)}",
            )
        if dt_us == 0:
            raise MalformedFrameError(NAME, f"{name} frame", "sample period dt_us is 0")
        acc_lsb, gyr_lsb, mag_lsb = self._scales(ftype, cfg)
        if ftype == FRAME_IMU9 and mag_lsb <= 0:
            raise ScalesUnknownError(NAME, f"{name} frame", "no magnetometer scale (mag_lsb_per_uT) known")
        # Unwrap the frame's first-sample time against the previous frame of this configuration.
        n_lost = 0
        base = self._base
        if self._last_t0 is not None:
            step = (t0 - self._last_t0) % _WRAP
            if step == 0 or step >= _HALF:
                raise MalformedFrameError(
                    NAME, f"{name} frame", f"device time t0_us = {t0} is not after the previous frame's"
                )
            if t0 < self._last_t0:
                base += _WRAP
        t0_unwrapped = base + t0
        why = self._arrival.refusal(t0_unwrapped * 1e-6, t_host_s)
        if why is not None:
            raise MalformedFrameError(NAME, f"{name} frame", why)
        if self._end_us is not None:
            delta = t0_unwrapped - self._end_us
            if delta < -dt_us // 2:
                raise MalformedFrameError(
                    NAME, f"{name} frame", f"starts {-delta} µs before the previous frame's samples ended"
                )
            n_lost = max(0, int(round(delta / dt_us)))
        self._check_seq(seq)
        self._base = base
        self._last_t0 = t0
        self._end_us = t0_unwrapped + n * dt_us
        self._arrival.accept(t0_unwrapped * 1e-6, t_host_s)
        counts = np.frombuffer(payload, dtype="<i2", offset=DATA_HEADER).reshape(n, width)
        t_us = t0_unwrapped + np.arange(n, dtype=np.int64) * dt_us
        acc_g = counts[:, 0:3] / acc_lsb
        gyr_dps = counts[:, 3:6] / gyr_lsb
        native: dict[str, np.ndarray] = {
            "seq": np.array([seq]),
            "cfg": np.array([cfg]),
            "t0_us": np.array([t0]),
            "dt_us": np.array([dt_us]),
            "counts": counts.copy(),
            "acc_g": acc_g,
            "gyr_dps": gyr_dps,
        }
        mag = quat = None
        if ftype == FRAME_IMU9:
            mag = counts[:, 6:9] / mag_lsb
            native["mag_uT"] = mag
        elif ftype == FRAME_IMU6_QUAT:
            quat = counts[:, 6:10] / QUAT_ONE
            native["quat_wxyz"] = quat
        return ImuBatch(
            t_s=t_us * 1e-6,
            acc_mps2=acc_g * G_MPS2,
            gyr_rads=np.deg2rad(gyr_dps),
            mag_uT=mag,
            quat_wxyz=quat,
            gap_before=n_lost > 0,
            n_lost=n_lost,
            time_base="device",
            native=native,
        )


# ----------------------------------------------------------------------------------------------------------
# Device model


class PelvimonPeripheral(PeripheralModel):
    """A device speaking the reference protocol, for emulation and for generating the spec's vectors.

    Parameters
    ----------
    part : str
        IMU part number reported in the info frame.
    firmware : tuple of int
        Firmware version (major, minor, patch).
    acc_ranges_g, gyro_ranges_dps : tuple of int
        Full scales the IMU supports; counts per unit are ``32768 / range``.
    mag_lsb_per_uT : float
        Magnetometer scale (0: no magnetometer, IMU9 is refused).
    mtu : int
        Negotiated ATT MTU; a notification carries at most ``mtu - 3`` bytes.
    samples_per_frame : int, optional
        Samples per data frame (default: as many as fit in the MTU, at most 255).
    """

    def __init__(
        self,
        part: str = "ICM-42688-P",
        firmware: tuple[int, int, int] = (1, 0, 0),
        acc_ranges_g: tuple[int, ...] = (2, 4, 8, 16),
        gyro_ranges_dps: tuple[int, ...] = (250, 500, 1000, 2000),
        mag_lsb_per_uT: float = 0.0,
        mtu: int = 247,
        samples_per_frame: int | None = None,
    ) -> None:
        self.part = part
        self.firmware = firmware
        self.acc_ranges_g = tuple(acc_ranges_g)
        self.gyro_ranges_dps = tuple(gyro_ranges_dps)
        self.mag_lsb_per_uT = float(mag_lsb_per_uT)
        self.mtu = int(mtu)
        self.samples_per_frame = samples_per_frame
        self.seq = 0
        self.cfg = 0
        self.clock_offset_us = 0
        self.info: DeviceInfo | None = None
        self._streaming = False
        self._config: StreamConfig | None = None
        self._pending: list[ImuBatch] = []

    @property
    def streaming(self) -> bool:
        return self._streaming

    @property
    def config(self) -> StreamConfig | None:
        return self._config

    def _next_seq(self) -> int:
        s = self.seq
        self.seq = (self.seq + 1) % _U16
        return s

    def _reply(self, ref: int, op: int, status: int) -> tuple[str, bytes]:
        return TX_UUID, encode_reply(self._next_seq(), ref, op, status)

    def _info_frame(self, ref: int) -> tuple[str, bytes]:
        if self.info is None:
            info = DeviceInfo(
                cfg=self.cfg, ref=ref, frame_type=FRAME_IMU6, rate_hz=0, acc_range_g=self.acc_ranges_g[-1],
                gyro_range_dps=self.gyro_ranges_dps[-1], acc_lsb_per_g=32768.0 / self.acc_ranges_g[-1],
                gyro_lsb_per_dps=32768.0 / self.gyro_ranges_dps[-1], mag_lsb_per_uT=self.mag_lsb_per_uT,
                firmware=self.firmware, part=self.part,
            )  # fmt: skip
        else:
            info = DeviceInfo(**{**self.info.__dict__, "ref": ref})
        return TX_UUID, encode_info(self._next_seq(), info)

    def frame_samples(self, frame_type: int) -> int:
        """Samples per data frame for ``frame_type`` at this MTU."""
        fit = (self.mtu - 3 - DATA_HEADER) // (2 * CHANNELS[frame_type])
        n = fit if self.samples_per_frame is None else min(self.samples_per_frame, fit)
        return max(0, min(n, 255))

    def handle_write(self, char_uuid: str, data: bytes) -> list[tuple[str, bytes]]:
        if char_uuid.lower() != RX_UUID:
            raise UnsupportedFrameError(NAME, f"write to {char_uuid}", f"commands go to RX {RX_UUID}")
        data = bytes(data)
        if len(data) < 2:
            raise MalformedFrameError(NAME, "command", f"needs at least op and ref, got {data.hex()}")
        op, ref = data[0], data[1]
        if ref == 0:
            return [self._reply(ref, op, STATUS_BAD_ARGUMENT)]
        if op not in OP_LENGTH:
            return [self._reply(ref, op, STATUS_UNKNOWN_OP)]
        if len(data) != OP_LENGTH[op]:
            return [self._reply(ref, op, STATUS_BAD_LENGTH)]
        if op == OP_STOP:
            self._streaming = False
            self._pending.clear()
            return [self._reply(ref, op, STATUS_OK)]
        if op == OP_GET_INFO:
            return [self._reply(ref, op, STATUS_OK), self._info_frame(ref)]
        if op == OP_SET_TIME:
            self.clock_offset_us = int.from_bytes(data[2:10], "little")
            return [self._reply(ref, op, STATUS_OK)]
        rate = int.from_bytes(data[2:4], "little")
        acc_range = data[4]
        gyro_range = int.from_bytes(data[5:7], "little")
        ftype = data[7]
        ok = (
            16 <= rate <= 2000
            and acc_range in self.acc_ranges_g
            and gyro_range in self.gyro_ranges_dps
            and ftype in CHANNELS
            and not (ftype == FRAME_IMU9 and self.mag_lsb_per_uT <= 0)
            and self.frame_samples(ftype) >= 1
        )
        if not ok:
            return [self._reply(ref, op, STATUS_BAD_ARGUMENT)]
        self.cfg = (self.cfg + 1) % 256
        self.info = DeviceInfo(
            cfg=self.cfg, ref=ref, frame_type=ftype, rate_hz=rate, acc_range_g=acc_range,
            gyro_range_dps=gyro_range, acc_lsb_per_g=32768.0 / acc_range, gyro_lsb_per_dps=32768.0 / gyro_range,
            mag_lsb_per_uT=self.mag_lsb_per_uT, firmware=self.firmware, part=self.part,
        )  # fmt: skip
        self._config = StreamConfig(
            rate_hz=float(rate), acc_range_g=acc_range, gyro_range_dps=gyro_range, mag=ftype == FRAME_IMU9
        )
        self._streaming = True
        self._pending.clear()
        return [self._reply(ref, op, STATUS_OK), self._info_frame(ref)]

    def encode(self, batch: ImuBatch) -> list[tuple[str, bytes]]:
        """Samples -> data frames of the started configuration; the remainder waits for the next call.

        ``batch.t_s`` is the device clock in s (the frame's ``t0_us`` is its first sample, rounded to µs,
        modulo 2**32; the samples are taken as uniformly spaced at the configured rate). Values are rounded
        to counts and saturate at the int16 limits, as an IMU does.
        """
        if not self._streaming or self.info is None:
            return []
        info = self.info
        self._pending.append(batch)
        whole = ImuBatch.concat(self._pending) if len(self._pending) > 1 else batch
        per = self.frame_samples(info.frame_type)
        n_frames = len(whole) // per
        if n_frames == 0:
            self._pending = [whole]
            return []
        used = n_frames * per
        cols = [whole.acc_mps2, whole.gyr_rads]
        if cols[0] is None or cols[1] is None:
            raise UnsupportedFrameError(NAME, "encoding", "the batch needs acc_mps2 and gyr_rads")
        parts = [
            whole.acc_mps2[:used] / G_MPS2 * info.acc_lsb_per_g,  # type: ignore[index]
            np.rad2deg(whole.gyr_rads[:used]) * info.gyro_lsb_per_dps,  # type: ignore[index]
        ]
        if info.frame_type == FRAME_IMU9:
            if whole.mag_uT is None:
                raise UnsupportedFrameError(NAME, "encoding IMU9", "the batch has no mag_uT")
            parts.append(whole.mag_uT[:used] * info.mag_lsb_per_uT)
        elif info.frame_type == FRAME_IMU6_QUAT:
            if whole.quat_wxyz is None:
                raise UnsupportedFrameError(NAME, "encoding IMU6+quaternion", "the batch has no quat_wxyz")
            parts.append(whole.quat_wxyz[:used] * QUAT_ONE)
        counts = np.clip(np.round(np.concatenate(parts, axis=1)), -32768, 32767).astype(np.int16)
        dt_us = int(round(1e6 / info.rate_hz))
        t0_us = np.round(whole.t_s[:used:per] * 1e6).astype(np.int64) + self.clock_offset_us
        out = [
            (
                TX_UUID,
                encode_data(
                    self._next_seq(),
                    info.frame_type,
                    info.cfg,
                    int(t0_us[k]),
                    dt_us,
                    counts[k * per : (k + 1) * per],
                ),
            )
            for k in range(n_frames)
        ]
        self._pending = [whole.slice(used, len(whole))] if used < len(whole) else []
        return out


class PelvimonReference(Protocol):
    """The pelvimon reference protocol v1 (DIY boards over the Nordic UART Service)."""

    spec = ProtocolSpec(
        name=NAME,
        title="pelvimon reference protocol v1 (DIY nRF52/ESP32 boards)",
        service_uuids=(SERVICE_UUID,),
        notify_uuids=(TX_UUID,),
        write_uuid=RX_UUID,
        name_patterns=(r"^pelvimon",),
        rates_hz=RATES_HZ,
        default_rate_hz=DEFAULT_RATE_HZ,
        has_gyro=True,
        has_mag=True,
        device_clock=True,
        loss_detection="seq u16 per notification + device time u32 µs per frame (samples lost counted exactly)",
        context_keys=("acc_lsb_per_g", "gyro_lsb_per_dps", "mag_lsb_per_uT"),
        notes=(
            "Scales are declared by the device in an info frame; data frames are refused until the decoder "
            "knows the scales of their configuration (or they are given as context)."
        ),
        extra={"min_mtu": DATA_HEADER + 12 + 3, "preferred_mtu": 247},
    )

    def start_sequence(self, config: StreamConfig) -> list[GattWrite]:
        """START (ref 1) with the rate, ranges (defaults ±16 g, ±2000 dps) and frame type (IMU9 with ``mag``).

        The device answers with a reply and an info frame, which gives the decoder the scales before data.
        """
        acc = DEFAULT_ACC_RANGE_G if config.acc_range_g is None else int(round(config.acc_range_g))
        gyr = DEFAULT_GYRO_RANGE_DPS if config.gyro_range_dps is None else int(round(config.gyro_range_dps))
        ftype = FRAME_IMU9 if config.mag else FRAME_IMU6
        return [
            GattWrite(RX_UUID, cmd_start(1, int(round(config.rate_hz)), acc, gyr, ftype), response=True),
        ]

    def stop_sequence(self) -> list[GattWrite]:
        return [GattWrite(RX_UUID, cmd_stop(2), response=True)]

    def decoder_context(self, config: StreamConfig) -> dict[str, Any]:
        """Nothing: the device's info frame (sent after START) gives the decoder its scales."""
        return {}

    def decoder(self, **context: Any) -> PelvimonDecoder:
        unknown = set(context) - set(self.spec.context_keys)
        if unknown:
            raise TypeError(
                f"{NAME}: unknown decoder context {sorted(unknown)}; known: {self.spec.context_keys}"
            )
        return PelvimonDecoder(**context)

    def peripheral(self, **options: Any) -> PelvimonPeripheral:
        return PelvimonPeripheral(**options)


PROTOCOL = PelvimonReference()
