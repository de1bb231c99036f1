"""WitMotion BLE 5.0 IMUs (BWT901BLE5.0, WT901BLECL 5.0, …): commands, decoder and device model.

Sources (see ``docs/protocols/witmotion.md``): the official SDK
``WITMOTION/WitBluetooth_BWT901BLE5_0@9efaab0`` — ``Python/BWT901BLE5.0_python_sdk/device_model.py`` (UUIDs,
the 0x61 parser and its byte accumulation, scales, unlock / save / register read commands),
``Android_Java/wit-example-ble5/WitSDK/.../Device/DeviceModel.java`` (return-rate codes, register reads),
``Android_Java/Old_Example/.../ble5/Bwt901ble.java`` (unlock, save, calibration); the WTVB01-BT50 manual for
the 0x71 register-read reply.

Wire format, little-endian:

- data frame (notify ``FFE4``), 20 bytes: ``55 61`` then nine int16: acc x,y,z (×16/32768 → g), gyro x,y,z
  (×2000/32768 → deg/s), angle roll, pitch, yaw (×180/32768 → deg). No timestamp, no counter, no checksum.
- register read reply, 20 bytes: ``55 71 <reg u16>`` then eight int16 values of registers reg … reg+7.
- a frame may be split across notifications and several frames may share one; the decoder accumulates
  bytes and re-synchronises on ``55 61`` / ``55 71`` as the SDK does.
- commands (write ``FFE9``), 5 bytes ``FF AA <reg> <value u16>``: unlock ``FF AA 69 88 B5`` before writes,
  save ``FF AA 00 00 00``, return rate ``FF AA 03 <code> 00``, read ``FF AA 27 <reg> 00``.

Timing: there is no device clock, so samples are timed from the host receive time (``time_base="host"``):
the frames completed by one notification end at its receive time, spaced at the configured rate. Loss of
whole frames cannot be detected; bytes discarded while re-synchronising set ``gap_before`` on the next batch.

The service UUIDs use ``…805F9A34FB`` ("9A"), not the Bluetooth base ``…805F9B34FB``; both are recognised.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import (
    Decoder,
    GattWrite,
    MalformedFrameError,
    PeripheralModel,
    Protocol,
    ProtocolSpec,
    StreamConfig,
    UnsupportedFrameError,
)
from .batch import G_MPS2, ImuBatch

NAME = "witmotion"

SERVICE_UUID = "0000ffe5-0000-1000-8000-00805f9a34fb"
NOTIFY_UUID = "0000ffe4-0000-1000-8000-00805f9a34fb"
WRITE_UUID = "0000ffe9-0000-1000-8000-00805f9a34fb"
SIG_BASE_VARIANTS = {
    "0000ffe5-0000-1000-8000-00805f9b34fb": SERVICE_UUID,
    "0000ffe4-0000-1000-8000-00805f9b34fb": NOTIFY_UUID,
    "0000ffe9-0000-1000-8000-00805f9b34fb": WRITE_UUID,
}
"""The same characteristics under the Bluetooth base UUID ("9B"), accepted as aliases."""

FRAME_BYTES = 20
HEADER = 0x55
FLAG_DATA = 0x61
FLAG_REGISTERS = 0x71

ACC_G_PER_LSB = 16.0 / 32768.0
GYRO_DPS_PER_LSB = 2000.0 / 32768.0
ANGLE_DEG_PER_LSB = 180.0 / 32768.0

REG_SAVE = 0x00
REG_CALSW = 0x01
REG_RRATE = 0x03
REG_BANDWIDTH = 0x1F
REG_READ = 0x27
REG_MAG = 0x3A
REG_QUAT = 0x51
REG_BATTERY = 0x64
REG_UNLOCK = 0x69
UNLOCK_VALUE = 0xB588

RATE_CODES: dict[float, int] = {1.0: 0x03, 5.0: 0x05, 10.0: 0x06, 50.0: 0x08, 100.0: 0x09, 200.0: 0x0B}
"""Return-rate codes of the official SDK (``DeviceModel.java``); other models may differ (WTVB01: 0x0A = 200)."""
BANDWIDTH_CODES: dict[float, int] = {188.0: 2, 98.0: 3, 42.0: 4, 20.0: 5, 10.0: 6, 5.0: 7}
RATES_HZ: tuple[float, ...] = tuple(sorted(RATE_CODES))
DEFAULT_RATE_HZ = 100.0

_DEG2RAD = np.pi / 180.0


def _norm(uuid: str) -> str:
    u = uuid.lower()
    return SIG_BASE_VARIANTS.get(u, u)


def nearest_rate(rate_hz: float) -> float:
    """The SDK rate nearest to ``rate_hz``."""
    keys = np.asarray(RATES_HZ)
    return float(keys[int(np.argmin(np.abs(keys - float(rate_hz))))])


def command(register: int, value: int) -> bytes:
    """``FF AA <reg> <value low> <value high>``."""
    if not (0 <= register <= 0xFF and 0 <= value <= 0xFFFF):
        raise ValueError(f"{NAME}: register must be 0..255 and value 0..65535, got {register}, {value}")
    return bytes((0xFF, 0xAA, register, value & 0xFF, value >> 8))


def unlock_command() -> bytes:
    """Unlock register writes (valid about 10 s per the manuals): ``FF AA 69 88 B5``."""
    return command(REG_UNLOCK, UNLOCK_VALUE)


def save_command() -> bytes:
    """Save the configuration: ``FF AA 00 00 00``."""
    return command(REG_SAVE, 0)


def reset_command() -> bytes:
    """Reset (register 0x00 = 1): ``FF AA 00 01 00``."""
    return command(REG_SAVE, 1)


def rate_command(rate_hz: float) -> bytes:
    """Return rate: ``FF AA 03 <code> 00`` (1 Hz 0x03 … 100 Hz 0x09, 200 Hz 0x0B)."""
    r = float(rate_hz)
    if r not in RATE_CODES:
        raise ValueError(f"{NAME}: rate_hz must be one of {list(RATES_HZ)}, got {rate_hz}")
    return command(REG_RRATE, RATE_CODES[r])


def bandwidth_command(bandwidth_hz: float) -> bytes:
    """Bandwidth (register 0x1F): 188 Hz = 2 … 5 Hz = 7."""
    b = float(bandwidth_hz)
    if b not in BANDWIDTH_CODES:
        raise ValueError(f"{NAME}: bandwidth must be one of {sorted(BANDWIDTH_CODES)}, got {bandwidth_hz}")
    return command(REG_BANDWIDTH, BANDWIDTH_CODES[b])


def read_register_command(register: int) -> bytes:
    """Read 8 registers from ``register``: ``FF AA 27 <reg> 00``; the reply is a 0x71 frame."""
    return command(REG_READ, register)


def calibration_command(kind: str) -> bytes:
    """Calibration: ``acc`` (``FF AA 01 01 00``), ``mag_start`` (``… 01 07 00``), ``mag_end`` (``… 01 00 00``)."""
    codes = {"acc": 1, "mag_start": 7, "mag_end": 0}
    if kind not in codes:
        raise ValueError(f"{NAME}: calibration kind must be one of {sorted(codes)}, got {kind!r}")
    return command(REG_CALSW, codes[kind])


def decode_frames(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Scale 0x61 frames.

    Parameters
    ----------
    frames : ndarray, shape (N, 20), uint8
        Whole ``55 61`` frames.

    Returns
    -------
    dict
        ``acc_g``, ``gyro_dps``, ``angle_deg`` (roll, pitch, yaw): each (N, 3) float64.
    """
    raw = np.ascontiguousarray(frames[:, 2:]).view("<i2").reshape(-1, 9).astype(np.float64)
    return {
        "acc_g": raw[:, 0:3] * ACC_G_PER_LSB,
        "gyro_dps": raw[:, 3:6] * GYRO_DPS_PER_LSB,
        "angle_deg": raw[:, 6:9] * ANGLE_DEG_PER_LSB,
    }


def scale_registers(start: int, values: np.ndarray) -> dict[str, np.ndarray]:
    """Known scalings of a 0x71 register block starting at ``start`` (as the SDK polls them).

    ``mag_raw`` (registers 0x3A-0x3C, ÷120 in the SDK; the vendor states no unit, so pelvimon keeps it
    unscaled), ``quat_wxyz`` (0x51-0x54, ÷32768) and ``battery_v`` (0x64, ÷100).
    """
    out: dict[str, np.ndarray] = {}
    idx = {start + i: int(v) for i, v in enumerate(values)}
    if all(r in idx for r in range(REG_MAG, REG_MAG + 3)):
        out["mag_raw"] = np.array([idx[r] for r in range(REG_MAG, REG_MAG + 3)], dtype=np.float64)
        out["mag_sdk_units"] = out["mag_raw"] / 120.0
    if all(r in idx for r in range(REG_QUAT, REG_QUAT + 4)):
        out["quat_wxyz"] = (
            np.array([idx[r] for r in range(REG_QUAT, REG_QUAT + 4)], dtype=np.float64) / 32768.0
        )
    if REG_BATTERY in idx:
        out["battery_v"] = np.array([idx[REG_BATTERY] / 100.0])
    return out


class WitMotionDecoder(Decoder):
    """Client-side decoder: byte accumulation across notifications, re-synchronisation, host timing.

    Parameters
    ----------
    rate_hz : float
        The configured return rate, Hz (default 100, what pelvimon sets); frames are laid out at this rate.
        A return-rate write seen through :meth:`observe_write` updates it.

    Attributes
    ----------
    registers : dict of int -> int
        Latest raw values of registers read with ``FF AA 27`` (0x71 replies).
    register_values : dict
        Scaled known registers of the latest 0x71 reply (see :func:`scale_registers`).
    bytes_discarded : int
        Bytes dropped while re-synchronising, since the start.
    """

    protocol = NAME

    def __init__(self, rate_hz: float = DEFAULT_RATE_HZ) -> None:
        if not float(rate_hz) > 0:
            raise ValueError(f"{NAME}: rate_hz must be > 0, got {rate_hz}")
        self.rate_hz = float(rate_hz)
        self.registers: dict[int, int] = {}
        self.register_values: dict[str, np.ndarray] = {}
        self.bytes_discarded = 0
        self.reset()

    def reset(self) -> None:
        self._buf = b""
        self._next_t: float | None = None
        self._gap = False

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)

    def observe_write(self, char_uuid: str, data: bytes) -> None:
        """Learn the return rate from a client write ``FF AA 03 <code> 00``."""
        d = bytes(data)
        if _norm(char_uuid) == WRITE_UUID and len(d) == 5 and d[:3] == b"\xff\xaa\x03":
            rate = {v: k for k, v in RATE_CODES.items()}.get(d[3])
            if rate is not None:
                self.rate_hz = rate

    def feed(self, char_uuid: str, payload: bytes, t_host_s: float | None = None) -> list[ImuBatch]:
        if _norm(char_uuid) != NOTIFY_UUID:
            raise UnsupportedFrameError(
                NAME, f"notification on {char_uuid}", f"WitMotion notifies on {NOTIFY_UUID}"
            )
        payload = bytes(payload)
        k = len(payload) // FRAME_BYTES
        if (
            not self._buf
            and k
            and len(payload) == k * FRAME_BYTES
            and payload[0::FRAME_BYTES] == b"\x55" * k
            and payload[1::FRAME_BYTES] == b"\x61" * k
        ):
            # the common case: whole, aligned data frames only
            return [self._batch(np.frombuffer(payload, dtype=np.uint8).reshape(k, FRAME_BYTES), t_host_s)]
        buf = self._buf + payload
        b = np.frombuffer(buf, dtype=np.uint8)
        size = b.size
        pos = 0
        discarded = 0
        blocks: list[np.ndarray] = []
        while size - pos >= 2:
            tail = b[pos:]
            heads = np.flatnonzero(
                (tail[:-1] == HEADER) & ((tail[1:] == FLAG_DATA) | (tail[1:] == FLAG_REGISTERS))
            )
            if heads.size == 0:
                break
            start = pos + int(heads[0])
            discarded += start - pos
            pos = start
            m = (size - start) // FRAME_BYTES
            if m == 0:
                break  # a partial frame: wait for the rest
            view = b[start : start + m * FRAME_BYTES].reshape(m, FRAME_BYTES)
            ok = (view[:, 0] == HEADER) & ((view[:, 1] == FLAG_DATA) | (view[:, 1] == FLAG_REGISTERS))
            bad = np.flatnonzero(~ok)
            k = m if bad.size == 0 else int(bad[0])
            end = start + k * FRAME_BYTES
            if not _plausible_follow(b, end):
                # bytes after the run are not a frame start: if a header hides inside the last frame, that
                # frame was cut short by corruption; drop it and resume at the inner header
                first = end - FRAME_BYTES
                seg = b[first + 1 : min(end + 1, size)]
                inner = np.flatnonzero(
                    (seg[:-1] == HEADER) & ((seg[1:] == FLAG_DATA) | (seg[1:] == FLAG_REGISTERS))
                )
                if inner.size:
                    blocks.append(view[: k - 1])
                    skip = int(inner[0]) + 1
                    discarded += skip
                    pos = first + skip
                    continue
            blocks.append(view[:k])
            pos = end
            if k == m:
                break
        rest = buf[pos:]
        if len(rest) >= 2 and not (rest[0] == HEADER and rest[1] in (FLAG_DATA, FLAG_REGISTERS)):
            # no header in the rest: drop it, except a last 0x55 that may start the next frame
            keep = 1 if rest[-1] == HEADER else 0
            discarded += len(rest) - keep
            rest = rest[len(rest) - keep :]
        elif len(rest) == 1 and rest[0] != HEADER:
            discarded += 1
            rest = b""
        self._buf = rest
        self.bytes_discarded += discarded
        if discarded:
            self._gap = True
        frames = np.concatenate(blocks) if blocks else np.zeros((0, FRAME_BYTES), dtype=np.uint8)
        regs = frames[frames[:, 1] == FLAG_REGISTERS]
        if regs.shape[0]:
            self._registers(regs)
        data = frames[frames[:, 1] == FLAG_DATA]
        if data.shape[0] == 0:
            if discarded:
                raise MalformedFrameError(
                    NAME,
                    "notification",
                    f"{discarded} byte(s) without a 55 61 / 55 71 frame header discarded; "
                    "expected 20-byte frames starting 55 61 (data) or 55 71 (register read)",
                )
            return []  # a partial frame waiting for its rest, or register replies only
        return [self._batch(data, t_host_s)]

    def _registers(self, regs: np.ndarray) -> None:
        for row in regs:  # register replies are rare (polled), not a per-sample path
            start = int(row[2]) | (int(row[3]) << 8)
            values = np.ascontiguousarray(row[4:]).view("<i2")
            for i, v in enumerate(values):
                self.registers[start + i] = int(v)
            self.register_values.update(scale_registers(start, values))

    def _batch(self, data: np.ndarray, t_host_s: float | None) -> ImuBatch:
        vals = decode_frames(data)
        n = data.shape[0]
        step = np.arange(n, dtype=np.float64) / self.rate_hz
        if t_host_s is None:
            t = (0.0 if self._next_t is None else self._next_t) + step
        else:
            t = float(t_host_s) - step[::-1]
        self._next_t = float(t[-1]) + 1.0 / self.rate_hz
        gap, self._gap = self._gap, False
        return ImuBatch(
            t_s=t,
            acc_mps2=vals["acc_g"] * G_MPS2,
            gyr_rads=vals["gyro_dps"] * _DEG2RAD,
            gap_before=gap,
            time_base="host",
            native=vals,
        )


def _plausible_follow(b: np.ndarray, end: int) -> bool:
    """Whether what follows a run of frames ending at ``end`` can start the next frame."""
    size = b.size
    if end >= size:
        return True
    if b[end] != HEADER:
        return False
    return end + 1 == size or b[end + 1] in (FLAG_DATA, FLAG_REGISTERS)


def _angles_deg(batch: ImuBatch) -> np.ndarray:
    """Roll, pitch, yaw for the device model: from ``quat_wxyz`` (Z-Y-X) if present, else tilt from acc."""
    n = len(batch)
    if batch.quat_wxyz is not None:
        w, x, y, z = batch.quat_wxyz.T
        roll = np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
        pitch = np.arcsin(np.clip(2 * (w * y - z * x), -1.0, 1.0))
        yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
        return np.degrees(np.column_stack([roll, pitch, yaw]))
    if batch.acc_mps2 is None:
        return np.zeros((n, 3))
    ax, ay, az = batch.acc_mps2.T
    roll = np.arctan2(ay, az)
    pitch = np.arctan2(-ax, np.hypot(ay, az))
    return np.degrees(np.column_stack([roll, pitch, np.zeros(n)]))


class WitMotionPeripheral(PeripheralModel):
    """Device side for emulated sensors.

    Parameters
    ----------
    frames_per_notification : int
        0x61 frames packed into one notification (1 on a default 23-byte ATT MTU).
    battery_v : float
        Voltage reported by register 0x64.

    Notes
    -----
    The device streams 0x61 frames as soon as notifications are on (``streaming`` is always True).
    Register writes take effect only after the unlock command and until the next save or reset, as the
    SDK's unlock -> write -> save sequence assumes; locked writes are recorded in ``ignored_writes``. A
    read (``FF AA 27 <reg> 00``) is answered with a 0x71 frame of eight registers.
    """

    def __init__(self, frames_per_notification: int = 1, battery_v: float = 3.9) -> None:
        if frames_per_notification < 1:
            raise ValueError(f"{NAME}: frames_per_notification must be >= 1, got {frames_per_notification}")
        self.frames_per_notification = int(frames_per_notification)
        self.registers: dict[int, int] = {REG_RRATE: RATE_CODES[10.0], REG_BANDWIDTH: 4}
        self.registers[REG_BATTERY] = int(round(battery_v * 100))
        self.saved = dict(self.registers)
        self.unlocked = False
        self.calibration: list[int] = []
        self.ignored_writes: list[bytes] = []
        self._pending = np.zeros((0, FRAME_BYTES), dtype=np.uint8)

    @property
    def streaming(self) -> bool:
        return True

    @property
    def rate_hz(self) -> float:
        return {v: k for k, v in RATE_CODES.items()}.get(self.registers.get(REG_RRATE, -1), 10.0)

    @property
    def config(self) -> StreamConfig | None:
        return StreamConfig(rate_hz=self.rate_hz, acc_range_g=16.0, gyro_range_dps=2000.0)

    def handle_write(self, char_uuid: str, data: bytes) -> list[tuple[str, bytes]]:
        d = bytes(data)
        if _norm(char_uuid) != WRITE_UUID or len(d) != 5 or d[:2] != b"\xff\xaa":
            self.ignored_writes.append(d)
            return []
        reg, value = d[2], d[3] | (d[4] << 8)
        if reg == REG_UNLOCK:
            self.unlocked = value == UNLOCK_VALUE
            return []
        if reg == REG_READ:
            values = np.array([self.registers.get(value + i, 0) for i in range(8)], dtype="<i2")
            return [
                (NOTIFY_UUID, bytes((HEADER, FLAG_REGISTERS, value & 0xFF, value >> 8)) + values.tobytes())
            ]
        if reg == REG_SAVE:
            if value == 0:
                self.saved = dict(self.registers)
            elif value == 1:
                self.registers = dict(self.saved)
            self.unlocked = False
            return []
        if reg == REG_CALSW:
            self.calibration.append(value)
            return []
        if not self.unlocked:
            self.ignored_writes.append(d)
            return []
        self.registers[reg] = value - 0x10000 if value >= 0x8000 else value
        return []

    def encode(self, batch: ImuBatch) -> list[tuple[str, bytes]]:
        """Samples -> 20-byte 0x61 frames (acc, gyro, angles), ``frames_per_notification`` per notification."""
        n = len(batch)
        acc_g = batch.acc_mps2 / G_MPS2 if batch.acc_mps2 is not None else np.zeros((n, 3))
        gyro_dps = batch.gyr_rads / _DEG2RAD if batch.gyr_rads is not None else np.zeros((n, 3))
        raw = np.column_stack(
            [acc_g / ACC_G_PER_LSB, gyro_dps / GYRO_DPS_PER_LSB, _angles_deg(batch) / ANGLE_DEG_PER_LSB]
        )
        raw = np.clip(np.round(raw), -32768, 32767).astype("<i2")
        frames = np.empty((n, FRAME_BYTES), dtype=np.uint8)
        frames[:, 0] = HEADER
        frames[:, 1] = FLAG_DATA
        frames[:, 2:] = raw.view(np.uint8).reshape(n, 18)
        if batch.quat_wxyz is not None and n:
            q = np.clip(np.round(batch.quat_wxyz[-1] * 32768), -32768, 32767).astype(int)
            for i in range(4):
                self.registers[REG_QUAT + i] = int(q[i])
        allf = np.concatenate([self._pending, frames])
        k = self.frames_per_notification
        full = allf.shape[0] // k
        self._pending = allf[full * k :]
        return [(NOTIFY_UUID, allf[i * k : (i + 1) * k].tobytes()) for i in range(full)]


class WitMotionProtocol(Protocol):
    """WitMotion BLE 5.0 (0x61 frames)."""

    spec = ProtocolSpec(
        name=NAME,
        title="WitMotion BLE 5.0 (BWT901BLE5.0, WT901BLECL 5.0)",
        service_uuids=(SERVICE_UUID, "0000ffe5-0000-1000-8000-00805f9b34fb"),
        notify_uuids=(NOTIFY_UUID,),
        write_uuid=WRITE_UUID,
        name_patterns=(r"^WT901", r"^BWT901", r"^WT\d", r"^WitMotion"),
        rates_hz=RATES_HZ,
        default_rate_hz=DEFAULT_RATE_HZ,
        has_gyro=True,
        has_mag=False,
        device_clock=False,
        loss_detection="none (no counter, no timestamp); re-synchronisation after bad bytes is flagged",
        context_keys=("rate_hz",),
        notes=(
            "20-byte 55 61 frames: acc ±16 g, gyro ±2000 deg/s, on-board angles; host time only; "
            "UUIDs use ...805F9A34FB ('9A'). The magnetometer is only readable by register polling."
        ),
        extra={"rate_codes": RATE_CODES},
    )

    def start_sequence(self, config: StreamConfig) -> list[GattWrite]:
        """Unlock, set the return rate, save (the SDK's ``writeReg``). The data flows once notified."""
        rate = nearest_rate(config.rate_hz)
        return [
            GattWrite(WRITE_UUID, unlock_command(), response=True),
            GattWrite(WRITE_UUID, rate_command(rate), response=True),
            GattWrite(WRITE_UUID, save_command(), response=True),
        ]

    def stop_sequence(self) -> list[GattWrite]:
        """Nothing to write: the sensor streams while notifications are enabled."""
        return []

    def decoder(self, **context: Any) -> WitMotionDecoder:
        unknown = set(context) - {"rate_hz"}
        if unknown:
            raise ValueError(f"{NAME}: unknown decoder context {sorted(unknown)}; known: rate_hz")
        return WitMotionDecoder(**{k: v for k, v in context.items() if v is not None})

    def peripheral(self, **options: Any) -> WitMotionPeripheral:
        return WitMotionPeripheral(**options)


PROTOCOL = WitMotionProtocol()
