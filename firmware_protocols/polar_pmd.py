"""Polar Measurement Data (PMD): Polar Verity Sense (acc, gyro, mag) and Polar H10 (acc only).

Wire format, client commands, the client-side decoder and a device-side model of a Verity Sense.

Sources (vendor SDK ``polarofficial/polar-ble-sdk@8fb5311c8f63fd58fdd03df1b46cbb2e8f05209e``):

- ``technical_documentation/online_measurement.pdf`` ("Polar Measurement Data" v1.0): UUIDs, opcodes,
  settings TLV, frame types, delta compression;
- ``sources/Android/android-communications/library/src/main/java/com/polar/androidcommunications/api/ble/
  model/gatt/client/pmd/``: ``BlePMDClient.kt`` (control point, delta decoder), ``PmdDataFrame.kt``,
  ``PmdSetting.kt``, ``PmdControlPointResponse.kt``, ``PmdMeasurementType.kt``, ``model/AccData.kt``,
  ``model/GyrData.kt``, ``model/MagData.kt``, ``model/PmdTimeStampUtils.kt`` and their unit tests;
- ``documentation/products/PolarVeritySense.md``, ``PolarH10.md``, ``SdkModeExplained.md``.

Units: the decoder returns acc in m/s² (from mG, × 9.80665e-3), gyro in rad/s (from deg/s), mag in µT
(from Gauss, × 100) and times in seconds on the device clock (ns since 2000-01-01 device local time ÷ 1e9).
``ImuBatch.native`` keeps the vendor units: ``acc_mG``, ``gyr_dps``, ``mag_G`` (+ ``mag_status``), the
integers as sent (``raw``; bit patterns for float frames) and the sample times ``t_ns`` (uint64).

Sample times (rule of ``PmdTimeStampUtils``; the frame timestamp is the time of its LAST sample):

- with a previous frame of the same measurement and frame type: δ = (ts − prev)/n,
  t_i = prev + (i+1)·δ, the last sample = ts;
- otherwise (first frame, or a gap, see below): t_i = ts − (n−1−i)·1e9/fs.

Rounding rule: every sample time is the exact rational value rounded to whole nanoseconds, ties to even
(the Kotlin ``round`` of the Android SDK; Swift rounds ties away from zero). The arithmetic is exact integer
arithmetic, so large timestamps do not lose precision as the SDK's float64 does.

Loss: PMD has no counter. When the gap to the previous frame exceeds the frame's own duration by more than
max(1.5, n/4) sample periods (period from the sample rate, else from the previous frame), the batch gets
``gap_before=True`` and ``n_lost`` = the rounded excess, and its samples are laid out backwards from ts at
the nominal rate instead of being stretched over the gap as the SDK does.
"""

from __future__ import annotations

import enum
import math
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
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

NAME = "polar_pmd"

SERVICE_UUID = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
"""PMD service."""
CP_UUID = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"
"""PMD control point: write with response; responses and server commands arrive as notifications."""
DATA_UUID = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"
"""PMD data: one frame per notification."""

RESPONSE_CODE = 0xF0
"""First byte of a control-point response; any other first byte is a server command."""
SERVER_ONLINE_MEASUREMENT_STOPPED = 0x01
"""Server command: the device stopped the listed online streams."""
FEATURE_READ_CODE = 0x0F
"""First byte of the value read from the control point (the feature bitmap)."""

NS_PER_S = 1_000_000_000
UNIX_NS_AT_2000 = 946_684_800_000_000_000
"""Add to a PMD timestamp to get Unix time in ns (the device clock runs in its local time)."""

MG_TO_MPS2 = G_MPS2 * 1e-3
DEG_TO_RAD = math.pi / 180.0
GAUSS_TO_UT = 100.0


class MeasurementType(enum.IntEnum):
    """PMD measurement types (``PmdMeasurementType.kt``)."""

    ECG = 0
    PPG = 1
    ACC = 2
    PPI = 3
    GYRO = 5
    MAG = 6
    SKIN_TEMP = 7
    SDK_MODE = 9
    LOCATION = 10
    PRESSURE = 11
    TEMPERATURE = 12
    OFFLINE_RECORDING = 13
    OFFLINE_HR = 14


class Opcode(enum.IntEnum):
    """Control-point opcodes, client to device (``PmdControlPointCommand.kt``)."""

    GET_MEASUREMENT_SETTINGS = 1
    REQUEST_MEASUREMENT_START = 2
    STOP_MEASUREMENT = 3
    GET_SDK_MODE_MEASUREMENT_SETTINGS = 4
    GET_MEASUREMENT_STATUS = 5
    GET_SDK_MODE_STATUS = 6


class SettingType(enum.IntEnum):
    """Settings TLV types (``PmdSetting.kt``); value sizes in ``SETTING_SIZES``."""

    SAMPLE_RATE = 0
    RESOLUTION = 1
    RANGE = 2
    RANGE_MILLIUNIT = 3
    CHANNELS = 4
    FACTOR = 5
    SECURITY = 6


SETTING_SIZES: dict[SettingType, int] = {
    SettingType.SAMPLE_RATE: 2,
    SettingType.RESOLUTION: 2,
    SettingType.RANGE: 2,
    SettingType.RANGE_MILLIUNIT: 4,
    SettingType.CHANNELS: 1,
    SettingType.FACTOR: 4,
    SettingType.SECURITY: 16,
}


class Status(enum.IntEnum):
    """Control-point response status codes (``PmdControlPointResponse.kt``)."""

    SUCCESS = 0
    INVALID_OP_CODE = 1
    INVALID_MEASUREMENT_TYPE = 2
    NOT_SUPPORTED = 3
    INVALID_LENGTH = 4
    INVALID_PARAMETER = 5
    ALREADY_IN_STATE = 6
    INVALID_RESOLUTION = 7
    INVALID_SAMPLE_RATE = 8
    INVALID_RANGE = 9
    INVALID_MTU = 10
    INVALID_NUMBER_OF_CHANNELS = 11
    INVALID_STATE = 12
    DEVICE_IN_CHARGER = 13
    DISK_FULL = 14


_FEATURE_BITS: tuple[tuple[int, int, MeasurementType], ...] = (
    (1, 0x01, MeasurementType.ECG),
    (1, 0x02, MeasurementType.PPG),
    (1, 0x04, MeasurementType.ACC),
    (1, 0x08, MeasurementType.PPI),
    (1, 0x20, MeasurementType.GYRO),
    (1, 0x40, MeasurementType.MAG),
    (1, 0x80, MeasurementType.SKIN_TEMP),
    (2, 0x02, MeasurementType.SDK_MODE),
    (2, 0x04, MeasurementType.LOCATION),
    (2, 0x08, MeasurementType.PRESSURE),
    (2, 0x10, MeasurementType.TEMPERATURE),
    (2, 0x20, MeasurementType.OFFLINE_RECORDING),
    (2, 0x40, MeasurementType.OFFLINE_HR),
)

# Verity Sense settings (PolarVeritySense.md; SdkModeExplained.md). Outside SDK mode only the defaults.
VERITY_RATES_HZ = (26, 52, 104, 208, 416)
VERITY_DEFAULT_RATE_HZ = 52
VERITY_ACC_RANGES_G = (2, 4, 8, 16)
VERITY_GYRO_RANGES_DPS = (250, 500, 1000, 2000)
VERITY_MAG_RATES_HZ = (10, 20, 50, 100)
VERITY_MAG_RANGE_GAUSS = 50
H10_ACC_RATES_HZ = (25, 50, 100, 200)
H10_ACC_RANGES_G = (2, 4, 8)


def _malformed(frame: str, problem: str) -> MalformedFrameError:
    return MalformedFrameError(NAME, frame, problem)


def _unsupported(frame: str, problem: str) -> UnsupportedFrameError:
    return UnsupportedFrameError(NAME, frame, problem)


class PmdTimestampError(MalformedFrameError):
    """Sample times cannot be derived for a frame (the SDK's ``NegativeTimeStampError`` and
    ``TimeStampAndFrequencyZeroError``; also a frame with no sample rate known to time it)."""


# ---------------------------------------------------------------------------------------------------------
# Commands (client -> control point)
# ---------------------------------------------------------------------------------------------------------


def _type_byte(mtype: int, offline: bool = False) -> int:
    if not 0 <= int(mtype) <= 0x3F:
        raise ValueError(f"PMD measurement type must be 0..63, got {mtype}")
    return int(mtype) | (0x80 if offline else 0)


def get_settings_command(mtype: int) -> bytes:
    """GET_MEASUREMENT_SETTINGS for one measurement type, e.g. ``01 02`` for ACC."""
    return bytes((Opcode.GET_MEASUREMENT_SETTINGS, _type_byte(mtype)))


def get_sdk_mode_settings_command(mtype: int) -> bytes:
    """GET_SDK_MODE_MEASUREMENT_SETTINGS (all settings the type offers in SDK mode), e.g. ``04 02``."""
    return bytes((Opcode.GET_SDK_MODE_MEASUREMENT_SETTINGS, _type_byte(mtype)))


def encode_settings(settings: Mapping[SettingType, int | float | bytes]) -> bytes:
    """Settings TLV for a start request: ``[type][count=1][value LE]`` per setting, in the given order.

    FACTOR is never sent by a client (it comes back in the start response); it is encoded here only for
    the device-side model's responses.
    """
    out = bytearray()
    for key, value in settings.items():
        st = SettingType(key)
        size = SETTING_SIZES[st]
        out += bytes((st, 1))
        if st is SettingType.FACTOR:
            out += struct.pack("<f", float(value))  # type: ignore[arg-type]
        elif st is SettingType.SECURITY:
            raw = bytes(value)  # type: ignore[arg-type]
            if len(raw) != size:
                raise ValueError(f"PMD SECURITY setting must be {size} bytes, got {len(raw)}")
            out += raw
        else:
            iv = int(value)  # type: ignore[arg-type]
            if not 0 <= iv < 1 << (8 * size):
                raise ValueError(f"PMD setting {st.name}={iv} does not fit {size} bytes")
            out += iv.to_bytes(size, "little")
    return bytes(out)


def start_command(
    mtype: int,
    sample_rate_hz: int,
    resolution_bits: int = 16,
    range_: int | None = None,
    channels: int | None = 3,
) -> bytes:
    """REQUEST_MEASUREMENT_START with a settings TLV, byte-exact as the SDK sends it.

    Example (issue #443, a real Verity Sense): ``start_command(2, 52, 16, 8, 3)`` ->
    ``02 02 00 01 34 00 01 01 10 00 02 01 08 00 04 01 03``.

    Parameters
    ----------
    mtype : int
        Measurement type (``MeasurementType.ACC``...).
    sample_rate_hz : int
        Sample rate in Hz.
    resolution_bits : int
        Resolution in bits (16 for Verity and H10 acc/gyro/mag).
    range_ : int, optional
        Full scale in the stream's unit (g for acc, deg/s for gyro, Gauss for mag); omitted when None.
    channels : int, optional
        Channel count; omitted when None (the H10 start request has no CHANNELS).
    """
    settings: dict[SettingType, int | float | bytes] = {
        SettingType.SAMPLE_RATE: int(sample_rate_hz),
        SettingType.RESOLUTION: int(resolution_bits),
    }
    if range_ is not None:
        settings[SettingType.RANGE] = int(range_)
    if channels is not None:
        settings[SettingType.CHANNELS] = int(channels)
    return bytes((Opcode.REQUEST_MEASUREMENT_START, _type_byte(mtype))) + encode_settings(settings)


def stop_command(mtype: int) -> bytes:
    """STOP_MEASUREMENT, e.g. ``03 02`` (ACC)."""
    return bytes((Opcode.STOP_MEASUREMENT, _type_byte(mtype)))


def start_sdk_mode_command() -> bytes:
    """Enter SDK mode (``02 09``); needed on the Verity Sense for rates other than 52 Hz."""
    return bytes((Opcode.REQUEST_MEASUREMENT_START, MeasurementType.SDK_MODE))


def stop_sdk_mode_command() -> bytes:
    """Leave SDK mode (``03 09``)."""
    return bytes((Opcode.STOP_MEASUREMENT, MeasurementType.SDK_MODE))


def get_status_command() -> bytes:
    """GET_MEASUREMENT_STATUS (``05``): which measurements run."""
    return bytes((Opcode.GET_MEASUREMENT_STATUS,))


def get_sdk_mode_status_command() -> bytes:
    """GET_SDK_MODE_STATUS (``06``)."""
    return bytes((Opcode.GET_SDK_MODE_STATUS,))


# ---------------------------------------------------------------------------------------------------------
# Control point: responses, settings, features, server commands
# ---------------------------------------------------------------------------------------------------------


def parse_settings(data: bytes) -> dict[SettingType, tuple[Any, ...]]:
    """Parse a settings TLV (the parameters of a settings or start response).

    Returns
    -------
    dict
        ``{SettingType: (values...)}``; FACTOR values are floats, SECURITY values bytes, the rest ints.

    Raises
    ------
    MalformedFrameError
        Unknown setting type or a value that runs past the end.
    """
    out: dict[SettingType, tuple[Any, ...]] = {}
    buf = bytes(data)
    off = 0
    while off < len(buf):
        if off + 2 > len(buf):
            raise _malformed(
                "settings TLV", f"setting header at byte {off} needs 2 bytes, {len(buf) - off} left"
            )
        code, count = buf[off], buf[off + 1]
        off += 2
        try:
            st = SettingType(code)
        except ValueError:
            raise _malformed(
                "settings TLV", f"unknown setting type {code} at byte {off - 2}; expected 0..6"
            ) from None
        size = SETTING_SIZES[st]
        end = off + size * count
        if end > len(buf):
            raise _malformed(
                "settings TLV",
                f"{st.name} needs {count} x {size} bytes at byte {off}, only {len(buf) - off} left",
            )
        chunk = buf[off:end]
        if st is SettingType.FACTOR:
            values: tuple[Any, ...] = struct.unpack(f"<{count}f", chunk)
        elif st is SettingType.SECURITY:
            values = tuple(chunk[i * size : (i + 1) * size] for i in range(count))
        else:
            values = tuple(int.from_bytes(chunk[i * size : (i + 1) * size], "little") for i in range(count))
        out[st] = out.get(st, ()) + values
        off = end
    return out


@dataclass(frozen=True)
class CpResponse:
    """A control-point response, reassembled over ``more`` packets.

    Attributes
    ----------
    opcode : int
        The request's opcode (``Opcode`` value where known).
    measurement_type : int
        The type byte echoed by the device (bit 7 = offline).
    status : int
        ``Status`` value (0 = success); unknown codes are kept as ints.
    more : bool
        More packets follow (only ever True on a single packet before reassembly).
    parameters : bytes
        The response parameters (settings TLV, status bytes...), empty on errors.
    """

    opcode: int
    measurement_type: int
    status: int
    more: bool
    parameters: bytes

    @property
    def ok(self) -> bool:
        return self.status == Status.SUCCESS

    @property
    def status_name(self) -> str:
        try:
            return Status(self.status).name
        except ValueError:
            return f"UNKNOWN_STATUS_{self.status}"

    def settings(self) -> dict[SettingType, tuple[Any, ...]]:
        """The parameters parsed as a settings TLV (settings and start responses)."""
        return parse_settings(self.parameters)


def parse_cp_response(packet: bytes) -> CpResponse:
    """Parse one control-point response packet ``F0 op type status more params...``.

    As in ``PmdControlPointResponse.kt``, ``more`` and the parameters are only read on success.

    Raises
    ------
    MalformedFrameError
        Not a response (first byte not 0xF0) or shorter than 4 bytes.
    """
    data = bytes(packet)
    if len(data) < 4:
        raise _malformed(
            "control-point response", f"{len(data)} bytes; expected at least 4 (F0 op type status)"
        )
    if data[0] != RESPONSE_CODE:
        raise _malformed("control-point response", f"first byte 0x{data[0]:02X}; expected 0xF0")
    status = data[3]
    if status == Status.SUCCESS:
        more = len(data) > 4 and data[4] != 0
        params = data[5:]
    else:
        more, params = False, b""
    return CpResponse(opcode=data[1], measurement_type=data[2], status=status, more=more, parameters=params)


class CpReassembler:
    """Joins multi-packet control-point responses (``more`` flag): later packets add their bytes from 5 on."""

    def __init__(self) -> None:
        self._pending: CpResponse | None = None

    def reset(self) -> None:
        self._pending = None

    def feed(self, packet: bytes) -> CpResponse | None:
        """One response packet -> the complete response, or None while more packets are expected."""
        resp = parse_cp_response(packet)
        pending = self._pending
        if pending is not None:
            if resp.opcode != pending.opcode:
                self._pending = None
                raise _malformed(
                    "control-point response",
                    f"opcode {resp.opcode} while the continuation of opcode {pending.opcode} was expected",
                )
            resp = CpResponse(
                opcode=pending.opcode,
                measurement_type=pending.measurement_type,
                status=pending.status,
                more=resp.more,
                parameters=pending.parameters + resp.parameters,
            )
        if resp.more:
            self._pending = resp
            return None
        self._pending = None
        return CpResponse(resp.opcode, resp.measurement_type, resp.status, False, resp.parameters)


def parse_server_command(packet: bytes) -> tuple[int, tuple[int, ...]]:
    """A server-initiated control-point packet (first byte not 0xF0) -> (command, measurement types).

    Only ONLINE_MEASUREMENT_STOPPED (``01 <types...>``) is defined.

    Raises
    ------
    MalformedFrameError, UnsupportedFrameError
    """
    data = bytes(packet)
    if not data:
        raise _malformed(
            "control-point notification", "empty; expected a response (F0...) or a server command"
        )
    if data[0] == RESPONSE_CODE:
        raise _malformed("server command", "first byte 0xF0 is a response, not a server command")
    if data[0] != SERVER_ONLINE_MEASUREMENT_STOPPED:
        raise _unsupported(
            "server command", f"command 0x{data[0]:02X}; only 0x01 ONLINE_MEASUREMENT_STOPPED is known"
        )
    return data[0], tuple(b & 0x3F for b in data[1:])


def parse_features(data: bytes) -> frozenset[MeasurementType]:
    """The feature bitmap read from the control point (``0F <byte1> <byte2>``) -> supported types."""
    buf = bytes(data)
    if len(buf) < 3 or buf[0] != FEATURE_READ_CODE:
        raise _malformed("feature read", f"{buf.hex()}; expected 0F followed by 2 bitmap bytes")
    return frozenset(t for idx, bit, t in _FEATURE_BITS if buf[idx] & bit)


def encode_features(types: Iterable[int]) -> bytes:
    """Supported types -> the feature bitmap a device returns on a control-point read."""
    out = bytearray((FEATURE_READ_CODE, 0, 0))
    wanted = {int(t) for t in types}
    for idx, bit, t in _FEATURE_BITS:
        if int(t) in wanted:
            out[idx] |= bit
    return bytes(out)


# ---------------------------------------------------------------------------------------------------------
# Data frames
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameHeader:
    """The 10-byte PMD data header.

    Attributes
    ----------
    measurement_type : int
        ``byte0 & 0x3F``.
    timestamp_ns : int
        uint64 LE, ns since 2000-01-01 (device local time), time of the LAST sample.
    compressed : bool
        Frame byte bit 7.
    frame_type : int
        Frame byte bits 0..6.
    content : bytes
        Everything after the header.
    """

    measurement_type: int
    timestamp_ns: int
    compressed: bool
    frame_type: int
    content: bytes

    @property
    def frame_byte(self) -> int:
        return self.frame_type | (0x80 if self.compressed else 0)


def parse_frame_header(payload: bytes) -> FrameHeader:
    """Split a PMD data notification into header fields and content.

    Raises
    ------
    MalformedFrameError
        Fewer than 10 bytes.
    """
    data = bytes(payload)
    if len(data) < 10:
        raise _malformed(
            "data frame", f"{len(data)} bytes; expected a 10-byte header (type, u64 timestamp, frame type)"
        )
    return FrameHeader(
        measurement_type=data[0] & 0x3F,
        timestamp_ns=int.from_bytes(data[1:9], "little"),
        compressed=bool(data[9] & 0x80),
        frame_type=data[9] & 0x7F,
        content=data[10:],
    )


def _le_ints(buf: np.ndarray, width_bytes: int) -> np.ndarray:
    """Unsigned little-endian integers of ``width_bytes`` from rows of a (m, width_bytes) uint8 array."""
    weights = (np.uint64(1) << (np.arange(width_bytes, dtype=np.uint64) * np.uint64(8))).astype(np.uint64)
    return (buf.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)


def parse_reference_sample(
    content: bytes, channels: int, resolution_bits: int, *, signed: bool = True
) -> np.ndarray:
    """The reference (first) sample of a delta-compressed frame.

    ``channels`` little-endian values of ceil(resolution/8) bytes; sign-extended at ``resolution_bits`` for
    signed data, kept as the raw bit pattern otherwise (float frames).

    Returns
    -------
    ndarray, shape (channels,), int64
    """
    nbytes = -(-resolution_bits // 8)
    need = channels * nbytes
    if len(content) < need:
        raise _malformed(
            "delta frame", f"{len(content)} bytes; the reference sample needs {channels} x {nbytes} = {need}"
        )
    raw = np.frombuffer(bytes(content[:need]), dtype=np.uint8).reshape(channels, nbytes)
    vals = _le_ints(raw, nbytes).astype(np.int64)
    vals &= (1 << resolution_bits) - 1 if resolution_bits < 63 else -1
    if signed:
        half = 1 << (resolution_bits - 1)
        vals = np.where(vals >= half, vals - (half << 1), vals)
    return vals


@dataclass(frozen=True)
class DeltaBlock:
    """One delta block's header: bit width and sample count."""

    bit_width: int
    count: int


def parse_delta_frame(
    content: bytes,
    channels: int,
    resolution_bits: int,
    *,
    signed: bool = True,
    blocks: list[DeltaBlock] | None = None,
) -> np.ndarray:
    """Decode delta-compressed frame content (``BlePMDClient.parseDeltaFramesAll``), vectorised per block.

    Layout: reference sample, then blocks ``[width u8][count u8][ceil(width*count*channels/8) bytes]``; the
    bits are LSB-first, values in sample-major order, each a two's-complement ``width``-bit delta; samples
    are the running sum of the deltas from the reference, wrapping at 32 bits as the SDK's ``Int``.

    Parameters
    ----------
    content : bytes
        Frame content (after the 10-byte header).
    channels, resolution_bits : int
        As the SDK hard-codes them per stream and frame type.
    signed : bool
        False for IEEE-754 frames (GYRO type 1): values are uint32 bit patterns, summed modulo 2**32.
    blocks : list, optional
        If given, the block headers are appended to it (for tests and ``pelvimon decode``).

    Returns
    -------
    ndarray, shape (1 + sum(counts), channels), int64
        Signed 32-bit values, or uint32 bit patterns when ``signed`` is False.

    Raises
    ------
    MalformedFrameError
        Truncated reference or block, or a bit width above 32.

    Notes
    -----
    Two edge cases the SDK handles differently, decoded here the consistent way: a width of 0 gives
    ``count`` zero deltas (the SDK yields no samples), and a 1-bit delta ``1`` is -1 (the SDK's sign mask
    turns it into 2**31-1). Neither is known to be sent by a device.
    """
    buf = bytes(content)
    ref = parse_reference_sample(buf, channels, resolution_bits, signed=signed)
    off = channels * (-(-resolution_bits // 8))
    arr = np.frombuffer(buf, dtype=np.uint8)
    parts: list[np.ndarray] = [ref[None, :]]
    total = len(buf)
    while off < total:
        if off + 2 > total:
            raise _malformed("delta frame", f"block header at byte {off} needs 2 bytes, {total - off} left")
        width, count = int(arr[off]), int(arr[off + 1])
        off += 2
        if width > 32:
            raise _malformed("delta frame", f"delta bit width {width} at byte {off - 2}; expected 0..32")
        nbits = width * count * channels
        nbytes = -(-nbits // 8)
        if off + nbytes > total:
            raise _malformed(
                "delta frame",
                f"block of {count} samples x {channels} ch x {width} bit needs {nbytes} bytes at byte {off}, "
                f"{total - off} left",
            )
        if blocks is not None:
            blocks.append(DeltaBlock(width, count))
        if count == 0:
            off += nbytes
            continue
        if width == 0:
            parts.append(np.zeros((count, channels), dtype=np.int64))
            continue
        bits = np.unpackbits(arr[off : off + nbytes], bitorder="little")[:nbits].reshape(
            count * channels, width
        )
        weights = np.left_shift(np.int64(1), np.arange(width, dtype=np.int64))
        vals = bits.astype(np.int64) @ weights
        vals -= (vals >> (width - 1)) << width  # two's complement of the width
        parts.append(vals.reshape(count, channels))
        off += nbytes
    samples = np.cumsum(np.concatenate(parts, axis=0), axis=0) if len(parts) > 1 else parts[0]
    wrapped = (samples & 0xFFFFFFFF).astype(np.uint32)
    return wrapped.view(np.int32).astype(np.int64) if signed else wrapped.astype(np.int64)


# ---------------------------------------------------------------------------------------------------------
# Sample times
# ---------------------------------------------------------------------------------------------------------


def _rate_fraction(sample_rate_hz: float) -> Fraction:
    return Fraction(sample_rate_hz).limit_denominator(1000)


def sample_times_ns(previous_ns: int, frame_ns: int, n: int, sample_rate_hz: float = 0.0) -> np.ndarray:
    """Per-sample device times of one frame (``PmdTimeStampUtils.getTimeStamps``), exact, ties to even.

    Parameters
    ----------
    previous_ns : int
        Timestamp of the previous frame of the same measurement and frame type; 0 = none.
    frame_ns : int
        This frame's timestamp (its last sample), ns since 2000.
    n : int
        Number of samples in the frame.
    sample_rate_hz : float
        Nominal rate, used when there is no previous frame.

    Returns
    -------
    ndarray, shape (n,), uint64
        Sample times in ns; the last equals ``frame_ns``.

    Raises
    ------
    PmdTimestampError
        No previous frame and no rate; a frame not after the previous one; or samples that would fall
        before the clock's epoch (the SDK's ``NegativeTimeStampError``).
    """
    if n <= 0:
        raise PmdTimestampError(NAME, "data frame", "no samples to time")
    prev, ts = int(previous_ns), int(frame_ns)
    if prev == 0:
        if not sample_rate_hz or sample_rate_hz <= 0 or not math.isfinite(sample_rate_hz):
            raise PmdTimestampError(
                NAME,
                "data frame",
                "first frame and no sample rate: the decoder needs the stream's sample rate (context "
                "sample_rate_hz) or the previous frame's timestamp (context previous_timestamp_ns, not 0)",
            )
        fs = _rate_fraction(sample_rate_hz)
        num, den = fs.numerator, fs.denominator  # period = 1e9 * den / num ns
        if ts * num < n * NS_PER_S * den:
            raise PmdTimestampError(
                NAME,
                "data frame",
                f"timestamp {ts} ns is before {n} samples at {float(fs)} Hz (negative times)",
            )
        j = np.arange(n - 1, -1, -1, dtype=np.int64) * np.int64(NS_PER_S * den)
        q, r = np.divmod(j, np.int64(num))
        ts_u = np.uint64(ts)
        # ts - q - r/num, rounded half to even
        exact = r == 0
        a = ts_u - q.astype(np.uint64) - (~exact).astype(np.uint64)
        twice = 2 * (num - r)
        up = (~exact) & ((twice > num) | ((twice == num) & ((a & np.uint64(1)) == 1)))
        out = a + up.astype(np.uint64)
        out[-1] = ts_u
        return out
    if ts <= prev:
        raise PmdTimestampError(
            NAME, "data frame", f"timestamp {ts} ns is not after the previous frame's {prev} ns"
        )
    d = ts - prev
    qd, rd = divmod(d, n)
    k = np.arange(1, n + 1, dtype=np.int64)
    q2, r2 = np.divmod(k * rd, n)
    base = np.uint64(prev) + k.astype(np.uint64) * np.uint64(qd) + q2.astype(np.uint64)
    twice = 2 * r2
    up = (twice > n) | ((twice == n) & ((base & np.uint64(1)) == 1))
    out = base + up.astype(np.uint64)
    out[-1] = np.uint64(ts)
    return out


# ---------------------------------------------------------------------------------------------------------
# Frame content per stream
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    """How a (measurement, frame byte) is decoded."""

    stream: str  # "acc", "gyr", "mag"
    compressed: bool
    channels: int
    resolution_bits: int
    signed: bool = True  # False: IEEE-754 bit patterns
    scale: float = 1.0  # native unit = raw * factor * scale (raw frames: raw * scale, no factor)


_KINDS: dict[tuple[int, int], _Kind] = {
    # ACC raw (AccData.kt): values are mG, no factor
    (MeasurementType.ACC, 0x00): _Kind("acc", False, 3, 8),
    (MeasurementType.ACC, 0x01): _Kind("acc", False, 3, 16),
    (MeasurementType.ACC, 0x02): _Kind("acc", False, 3, 24),
    # ACC compressed: type 0 in G (x factor x 1000 -> mG), type 1 in mG (x factor)
    (MeasurementType.ACC, 0x80): _Kind("acc", True, 3, 16, scale=1000.0),
    (MeasurementType.ACC, 0x81): _Kind("acc", True, 3, 16),
    # GYRO compressed: type 0 int16 x factor -> deg/s; type 1 float32 bit patterns x factor
    (MeasurementType.GYRO, 0x80): _Kind("gyr", True, 3, 16),
    (MeasurementType.GYRO, 0x81): _Kind("gyr", True, 3, 32, signed=False),
    # MAG compressed: type 0 x factor -> Gauss; type 1 4 channels (x, y, z, status), mG -> Gauss
    (MeasurementType.MAG, 0x80): _Kind("mag", True, 3, 16),
    (MeasurementType.MAG, 0x81): _Kind("mag", True, 4, 16, scale=1e-3),
}

_STREAM_OF_TYPE = {MeasurementType.ACC: "acc", MeasurementType.GYRO: "gyr", MeasurementType.MAG: "mag"}
_TYPE_OF_STREAM = {v: k for k, v in _STREAM_OF_TYPE.items()}
_STREAM_ALIASES = {
    "acc": "acc",
    "gyr": "gyr",
    "gyro": "gyr",
    "mag": "mag",
    "2": "acc",
    "5": "gyr",
    "6": "mag",
}


def _frame_name(hdr: FrameHeader) -> str:
    try:
        mname = MeasurementType(hdr.measurement_type).name
    except ValueError:
        mname = f"type {hdr.measurement_type}"
    return f"{mname} frame 0x{hdr.frame_byte:02X}"


def decode_frame_values(hdr: FrameHeader, factor: float = 1.0) -> tuple[str, np.ndarray, np.ndarray]:
    """Frame content -> (stream, raw integers (n, ch), native values (n, ch) float64).

    Native units: mG (acc), deg/s (gyro), Gauss (mag; a 4th column holds the calibration status 0..3 of
    MAG type 1, unscaled). Raw frames ignore ``factor`` as the SDK does; compressed frames multiply by it.

    Raises
    ------
    UnsupportedFrameError
        A measurement or frame type pelvimon does not decode (ECG, PPG, raw gyro...).
    MalformedFrameError
        Content that does not fit the frame type.
    """
    name = _frame_name(hdr)
    kind = _KINDS.get((hdr.measurement_type, hdr.frame_byte))
    if kind is None:
        if hdr.measurement_type in _STREAM_OF_TYPE:
            known = ", ".join(f"0x{fb:02X}" for (mt, fb) in _KINDS if mt == hdr.measurement_type)
            raise _unsupported(name, f"frame type not decoded; known for this measurement: {known}")
        raise _unsupported(name, "measurement type not decoded; expected ACC (2), GYRO (5) or MAG (6)")
    content = hdr.content
    if kind.compressed:
        try:
            raw = parse_delta_frame(content, kind.channels, kind.resolution_bits, signed=kind.signed)
        except MalformedFrameError as exc:
            raise _malformed(
                name, f"{exc.problem} (delta content: {kind.channels} ch x {kind.resolution_bits} bit)"
            ) from None
    else:
        width = kind.resolution_bits // 8
        per_sample = width * kind.channels
        if not content or len(content) % per_sample:
            raise _malformed(
                name, f"{len(content)} content bytes; expected a positive multiple of {per_sample}"
            )
        if width == 1:
            raw = np.frombuffer(content, dtype=np.int8).astype(np.int64).reshape(-1, kind.channels)
        elif width == 2:
            raw = np.frombuffer(content, dtype="<i2").astype(np.int64).reshape(-1, kind.channels)
        else:
            u = _le_ints(np.frombuffer(content, dtype=np.uint8).reshape(-1, width), width).astype(np.int64)
            half = 1 << (8 * width - 1)
            raw = np.where(u >= half, u - (half << 1), u).reshape(-1, kind.channels)
    if not kind.signed:
        vals = raw.astype(np.uint32).view(np.float32).astype(np.float64)
        if not np.all(np.isfinite(vals)):
            raise _malformed(name, "float sample is NaN or infinite; expected finite IEEE-754 values")
    else:
        vals = raw.astype(np.float64)
    if kind.compressed:
        xyz = vals[:, :3] * (float(factor) * kind.scale)
    else:
        xyz = vals[:, :3] * kind.scale
    if kind.channels == 4:
        native = np.concatenate([xyz, vals[:, 3:4]], axis=1)
    else:
        native = xyz
    return kind.stream, raw, native


# ---------------------------------------------------------------------------------------------------------
# Decoder
# ---------------------------------------------------------------------------------------------------------


def _per_stream(name: str, value: Any, cast: Any) -> dict[str, Any]:
    """A context value for all streams (number) or per stream (mapping acc/gyro/mag or 2/5/6 -> value)."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        out = {}
        for key, v in value.items():
            stream = _STREAM_ALIASES.get(str(key).lower())
            if stream is None:
                raise ValueError(f"polar_pmd decoder: {name} key {key!r}; expected acc, gyro or mag")
            out[stream] = cast(v)
        return out
    v = cast(value)
    return {"acc": v, "gyr": v, "mag": v}


def _as_float(v: Any) -> float:
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"polar_pmd decoder: context value {v!r} is not finite")
    return f


def _as_rate(v: Any) -> float:
    f = _as_float(v)
    if not 0 <= f <= 100_000:
        raise ValueError(f"polar_pmd decoder: sample_rate_hz={v!r}; expected 0 (unknown) to 100000 Hz")
    return f


def _as_factor(v: Any) -> float:
    """A FACTOR as the device sends it (float32): a finite scale > 0 (0 would zero every value, a negative
    one flip the axes; one beyond float32 would be infinite)."""
    with np.errstate(over="ignore"):
        f = float(np.float32(_as_float(v)))
    if not (math.isfinite(f) and f > 0.0):
        raise ValueError(f"polar_pmd decoder: factor={v!r}; a scale factor must be a finite number > 0")
    return f


def _as_ns(v: Any) -> int:
    if isinstance(v, str):
        v = v.strip()
        ns = int(v) if v.lstrip("+-").isdigit() else int(float(v))
    elif isinstance(v, float):
        ns = int(v)
    else:
        ns = int(v)
    if not 0 <= ns < 1 << 64:
        raise ValueError(f"polar_pmd decoder: previous_timestamp_ns={v!r} must be 0..2**64-1")
    return ns


class PmdDecoder(Decoder):
    """Client-side PMD decoder for one connection.

    Feed it every notification of both characteristics (control point and data). Control-point responses
    are reassembled (``more``); a successful start response sets that measurement's FACTOR (1.0 when the
    device returns none, as in the SDK); a successful stop, ONLINE_MEASUREMENT_STOPPED and :meth:`reset`
    forget the previous frame timestamps. Data frames become one ``ImuBatch`` each (acc, gyro or mag alone:
    combine streams with ``merge.ImuMerger``).

    Parameters
    ----------
    factor : float or mapping, optional
        FACTOR per stream when the start response was not seen (default 1.0). A number applies to all
        streams; a mapping takes keys ``acc``/``gyro``/``mag``.
    previous_timestamp_ns : int, optional
        Timestamp of the frame before the first one fed (all streams); 0 = none.
    sample_rate_hz : float or mapping, optional
        Nominal sample rate per stream (number = all streams): times the first frame and detects loss.
    config : StreamConfig, optional
        The stream configuration the client started; sets the rates as ``start_sequence`` chose them.

    Attributes
    ----------
    last_response : CpResponse or None
        The last complete control-point response.
    stopped_by_device : tuple of int
        Measurement types of the last ONLINE_MEASUREMENT_STOPPED command.
    """

    protocol = NAME

    def __init__(
        self,
        factor: float | Mapping[str, float] | None = None,
        previous_timestamp_ns: int | None = None,
        sample_rate_hz: float | Mapping[str, float] | None = None,
        config: StreamConfig | None = None,
        rates: _Rates | None = None,
    ) -> None:
        self._factor: dict[str, float] = {"acc": 1.0, "gyr": 1.0, "mag": 1.0}
        self._factor.update(_per_stream("factor", factor, _as_factor))
        self._rate: dict[str, float] = {}
        if config is not None:
            r = (rates or VERITY_RATE_RULES).choose(config)
            self._rate.update({"acc": r.acc_hz, "gyr": r.gyr_hz or 0.0, "mag": r.mag_hz or 0.0})
        self._rate.update(_per_stream("sample_rate_hz", sample_rate_hz, _as_rate))
        self._initial_prev = _as_ns(previous_timestamp_ns) if previous_timestamp_ns is not None else 0
        self._prev: dict[tuple[int, int], int] = {}
        self._period_est: dict[tuple[int, int], float] = {}
        self._cp = CpReassembler()
        self.last_response: CpResponse | None = None
        self.stopped_by_device: tuple[int, ...] = ()

    # -- state -------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget previous frame timestamps and partial responses (after a stop or reconnect).

        FACTORs and sample rates stay: they describe the configuration, which the next start renews.
        """
        self._prev.clear()
        self._period_est.clear()
        self._initial_prev = 0
        self._cp.reset()

    def factor(self, stream: str) -> float:
        """The FACTOR in use for ``acc``, ``gyro`` or ``mag``."""
        return self._factor[_STREAM_ALIASES[stream]]

    def assumed_context(self) -> dict[str, Any]:
        """The accelerometer's FACTOR (the sensor sends it in its start response, not in the data)."""
        return {"factor": self.factor("acc")}

    def observe_write(self, char_uuid: str, data: bytes) -> None:
        """Let the decoder see the client's own control-point writes: a start request sets that stream's rate.

        Optional: the live client may call it with each write it sends, instead of giving ``sample_rate_hz``.
        """
        if char_uuid.lower() != CP_UUID or len(data) < 2 or data[0] != Opcode.REQUEST_MEASUREMENT_START:
            return
        stream = _STREAM_OF_TYPE.get(data[1] & 0x3F)  # type: ignore[call-overload]
        if stream is None or data[1] & 0x80:
            return
        try:
            rates = parse_settings(data[2:]).get(SettingType.SAMPLE_RATE)
        except MalformedFrameError:
            return
        if rates:
            self._rate[stream] = float(rates[0])

    # -- feeding -----------------------------------------------------------------------------------------
    def feed(self, char_uuid: str, payload: bytes, t_host_s: float | None = None) -> list[ImuBatch]:
        uuid = char_uuid.lower()
        if uuid == DATA_UUID:
            return [self._feed_data(bytes(payload))]
        if uuid == CP_UUID:
            self._feed_cp(bytes(payload))
            return []
        raise _unsupported(f"notification on {char_uuid}", f"expected {CP_UUID} or {DATA_UUID}")

    def _feed_cp(self, data: bytes) -> None:
        if not data:
            raise _malformed(
                "control-point notification", "empty; expected a response (F0...) or a server command"
            )
        if data[0] != RESPONSE_CODE:
            _, types = parse_server_command(data)
            self.stopped_by_device = types
            for key in [k for k in self._prev if k[0] in types]:
                del self._prev[key]
            for key in [k for k in self._period_est if k[0] in types]:
                del self._period_est[key]
            return
        resp = self._cp.feed(data)
        if resp is None:
            return
        self.last_response = resp
        mtype = resp.measurement_type & 0x3F
        stream = _STREAM_OF_TYPE.get(mtype)  # type: ignore[call-overload]
        if resp.ok and resp.opcode == Opcode.REQUEST_MEASUREMENT_START and stream is not None:
            factors = resp.settings().get(SettingType.FACTOR)
            factor = factors[0] if factors else 1.0
            try:
                self._factor[stream] = _as_factor(factor)
            except ValueError:
                raise _malformed("start response", f"FACTOR {factor!r}; expected a finite positive scale") from None
        elif resp.ok and resp.opcode == Opcode.STOP_MEASUREMENT:
            self.reset()

    def _feed_data(self, data: bytes) -> ImuBatch:
        hdr = parse_frame_header(data)
        stream = _STREAM_OF_TYPE.get(hdr.measurement_type)  # type: ignore[call-overload]
        stream_factor = self._factor.get(stream, 1.0) if stream else 1.0
        stream, raw, native = decode_frame_values(hdr, stream_factor)
        n = raw.shape[0]
        try:
            t_ns, gap, n_lost = self._times(hdr, stream, n)
        except PmdTimestampError as exc:
            raise PmdTimestampError(NAME, _frame_name(hdr), exc.problem) from None
        t_s = t_ns.astype(np.float64) / NS_PER_S
        nat: dict[str, np.ndarray] = {"raw": raw, "t_ns": t_ns}
        if stream == "acc":
            nat["acc_mG"] = native
            return ImuBatch(t_s=t_s, acc_mps2=native * MG_TO_MPS2, gap_before=gap, n_lost=n_lost, native=nat)
        if stream == "gyr":
            nat["gyr_dps"] = native
            return ImuBatch(t_s=t_s, gyr_rads=native * DEG_TO_RAD, gap_before=gap, n_lost=n_lost, native=nat)
        nat["mag_G"] = native[:, :3]
        if native.shape[1] == 4:
            nat["mag_status"] = native[:, 3].astype(np.int64)
        return ImuBatch(
            t_s=t_s, mag_uT=native[:, :3] * GAUSS_TO_UT, gap_before=gap, n_lost=n_lost, native=nat
        )

    def _times(self, hdr: FrameHeader, stream: str, n: int) -> tuple[np.ndarray, bool, int]:
        key = (hdr.measurement_type, hdr.frame_type)
        ts = hdr.timestamp_ns
        prev = self._prev.get(key, self._initial_prev)
        rate = self._rate.get(stream) or 0.0
        period = NS_PER_S / rate if rate > 0 else self._period_est.get(key, 0.0)
        self._prev[key] = ts
        if prev == 0:
            return sample_times_ns(0, ts, n, rate), False, 0
        if ts <= prev:
            # The device clock stepped back (time set, reboot): restart timing from this frame.
            if period <= 0:
                raise PmdTimestampError(
                    NAME,
                    _frame_name(hdr),
                    f"timestamp {ts} ns is not after the previous frame's {prev} ns and no sample rate is known",
                )
            self._period_est.pop(key, None)
            return sample_times_ns(0, ts, n, NS_PER_S / period), True, 0
        if period > 0:
            excess = (ts - prev) / period - n
            if excess > max(1.5, 0.25 * n):
                return sample_times_ns(0, ts, n, NS_PER_S / period), True, int(round(excess))
        self._period_est[key] = (ts - prev) / n
        return sample_times_ns(prev, ts, n), False, 0


# ---------------------------------------------------------------------------------------------------------
# Rate and range choice (client side) and the Protocol objects
# ---------------------------------------------------------------------------------------------------------


def _nearest(options: tuple[int, ...], value: float) -> int:
    return min(options, key=lambda o: (abs(o - value), o))


def _range_at_least(options: tuple[int, ...], value: float | None, default: int) -> int:
    if value is None:
        return default
    fitting = [o for o in options if o >= value]
    return min(fitting) if fitting else max(options)


@dataclass(frozen=True)
class _Choice:
    acc_hz: int
    acc_range: int
    gyr_hz: int | None
    gyr_range: int | None
    mag_hz: int | None
    sdk_mode: bool


@dataclass(frozen=True)
class _Rates:
    """Which rates and ranges a device offers and how a StreamConfig maps onto them."""

    acc_rates: tuple[int, ...]
    acc_ranges: tuple[int, ...]
    acc_default_range: int
    default_rate: int
    gyro: bool
    gyr_ranges: tuple[int, ...] = ()
    gyr_default_range: int = 0
    mag_rates: tuple[int, ...] = ()
    sdk_mode_for_non_default: bool = False

    def choose(self, config: StreamConfig) -> _Choice:
        rate = _nearest(self.acc_rates, config.rate_hz)
        acc_range = _range_at_least(self.acc_ranges, config.acc_range_g, self.acc_default_range)
        gyr_hz = rate if self.gyro else None
        gyr_range = (
            _range_at_least(self.gyr_ranges, config.gyro_range_dps, self.gyr_default_range)
            if self.gyro
            else None
        )
        mag_hz = None
        if config.mag and self.mag_rates:
            below = [r for r in self.mag_rates if r <= rate]
            mag_hz = max(below) if below else min(self.mag_rates)
        sdk = self.sdk_mode_for_non_default and (
            rate != self.default_rate
            or acc_range != self.acc_default_range
            or (gyr_range is not None and gyr_range != self.gyr_default_range)
        )
        return _Choice(rate, acc_range, gyr_hz, gyr_range, mag_hz, sdk)


VERITY_RATE_RULES = _Rates(
    acc_rates=VERITY_RATES_HZ,
    acc_ranges=VERITY_ACC_RANGES_G,
    acc_default_range=8,
    default_rate=VERITY_DEFAULT_RATE_HZ,
    gyro=True,
    gyr_ranges=VERITY_GYRO_RANGES_DPS,
    gyr_default_range=2000,
    mag_rates=VERITY_MAG_RATES_HZ,
    sdk_mode_for_non_default=True,
)

H10_RATE_RULES = _Rates(
    acc_rates=H10_ACC_RATES_HZ,
    acc_ranges=H10_ACC_RANGES_G,
    acc_default_range=8,
    default_rate=200,
    gyro=False,
)

NAME_PATTERNS = (r"^Polar Sense\b", r"^Polar H10\b")
"""Advertised local names: ``Polar Sense <id>`` (Verity Sense), ``Polar H10 <id>``."""


class PolarPmd(Protocol):
    """Polar Verity Sense over PMD: acc + gyro (+ mag), 26-416 Hz (SDK mode for rates other than 52 Hz)."""

    spec = ProtocolSpec(
        name=NAME,
        title="Polar Measurement Data (Verity Sense; H10 acc only)",
        service_uuids=(SERVICE_UUID,),
        notify_uuids=(DATA_UUID, CP_UUID),
        write_uuid=CP_UUID,
        name_patterns=NAME_PATTERNS,
        rates_hz=tuple(float(r) for r in VERITY_RATES_HZ),
        default_rate_hz=float(VERITY_DEFAULT_RATE_HZ),
        has_gyro=True,
        has_mag=True,
        device_clock=True,
        loss_detection="timestamps (uint64 ns of the last sample per frame; no counter)",
        context_keys=("factor", "previous_timestamp_ns", "sample_rate_hz"),
        notes=(
            "Verity Sense: acc/gyro 26, 52 (default), 104, 208, 416 Hz, rates other than 52 Hz in SDK mode; "
            "mag 10/20/50/100 Hz. H10: acc only, 25/50/100/200 Hz (see H10_PROTOCOL). Delta-compressed frames "
            "with a per-stream FACTOR from the start response."
        ),
        extra={
            "h10_rates_hz": tuple(float(r) for r in H10_ACC_RATES_HZ),
            "mag_rates_hz": tuple(float(r) for r in VERITY_MAG_RATES_HZ),
            "units_native": {"acc": "mG", "gyro": "deg/s", "mag": "Gauss"},
            "time_zero": "2000-01-01T00:00:00 device local time",
        },
    )
    rules: _Rates = VERITY_RATE_RULES

    def choose(self, config: StreamConfig) -> _Choice:
        """The rates and ranges ``start_sequence`` asks for (nearest supported rate, smallest range that fits)."""
        return self.rules.choose(config)

    def start_sequence(self, config: StreamConfig) -> list[GattWrite]:
        c = self.choose(config)
        writes = []
        if c.sdk_mode:
            writes.append(GattWrite(CP_UUID, start_sdk_mode_command()))
        writes.append(GattWrite(CP_UUID, start_command(MeasurementType.ACC, c.acc_hz, 16, c.acc_range, 3)))
        if c.gyr_hz is not None:
            writes.append(
                GattWrite(CP_UUID, start_command(MeasurementType.GYRO, c.gyr_hz, 16, c.gyr_range, 3))
            )
        if c.mag_hz is not None:
            writes.append(
                GattWrite(
                    CP_UUID, start_command(MeasurementType.MAG, c.mag_hz, 16, VERITY_MAG_RANGE_GAUSS, 3)
                )
            )
        return writes

    def stop_sequence(self) -> list[GattWrite]:
        """Stop gyro, mag and acc, then leave SDK mode; a stream that was not running answers ALREADY_IN_STATE."""
        return [
            GattWrite(CP_UUID, stop_command(MeasurementType.GYRO)),
            GattWrite(CP_UUID, stop_command(MeasurementType.MAG)),
            GattWrite(CP_UUID, stop_command(MeasurementType.ACC)),
            GattWrite(CP_UUID, stop_sdk_mode_command()),
        ]

    def decoder_context(self, config: StreamConfig) -> dict[str, Any]:
        """The decoder context for a stream started with ``start_sequence(config)``: the rate per stream."""
        c = self.choose(config)
        rates: dict[str, float] = {"acc": float(c.acc_hz)}
        if c.gyr_hz is not None:
            rates["gyro"] = float(c.gyr_hz)
        if c.mag_hz is not None:
            rates["mag"] = float(c.mag_hz)
        return {"sample_rate_hz": rates}

    def decoder(self, **context: Any) -> PmdDecoder:
        known = {"factor", "previous_timestamp_ns", "sample_rate_hz", "config"}
        unknown = sorted(set(context) - known)
        if unknown:
            raise ValueError(
                f"polar_pmd decoder: unknown context {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return PmdDecoder(rates=self.rules, **context)

    def peripheral(self, **options: Any) -> VeritySensePeripheral:
        return VeritySensePeripheral(**options)


class PolarH10Pmd(PolarPmd):
    """Polar H10 over PMD: accelerometer only (raw int16 mG frames, type 0x01), 25/50/100/200 Hz."""

    # the Verity Sense's spec (UUIDs, timing, context) with the H10's rates and channels
    spec = replace(
        PolarPmd.spec,
        title="Polar H10 (PMD, accelerometer only)",
        name_patterns=(r"^Polar H10\b",),
        rates_hz=tuple(float(r) for r in H10_ACC_RATES_HZ),
        default_rate_hz=200.0,
        has_gyro=False,
        has_mag=False,
        notes="Chest strap, no gyroscope: not a pelvis sensor; usable for cadence and impact only.",
        extra={},
    )
    rules = H10_RATE_RULES

    def start_sequence(self, config: StreamConfig) -> list[GattWrite]:
        c = self.choose(config)
        return [GattWrite(CP_UUID, start_command(MeasurementType.ACC, c.acc_hz, 16, c.acc_range, None))]

    def stop_sequence(self) -> list[GattWrite]:
        return [GattWrite(CP_UUID, stop_command(MeasurementType.ACC))]

    def peripheral(self, **options: Any) -> VeritySensePeripheral:
        raise NotImplementedError(
            "polar_pmd: only the Verity Sense has a device model; H10 frames decode fine"
        )


def protocol_for_name(local_name: str | None) -> PolarPmd:
    """The PMD variant for an advertised name: ``H10_PROTOCOL`` for ``Polar H10 ...``, else ``PROTOCOL``."""
    if local_name and re.match(r"^Polar H10\b", local_name):
        return H10_PROTOCOL
    return PROTOCOL


# ---------------------------------------------------------------------------------------------------------
# Device side: encoder and a Verity Sense model
# ---------------------------------------------------------------------------------------------------------

_BLOCK_SAMPLES = 10


def _min_width(deltas: np.ndarray) -> np.ndarray:
    """Smallest two's-complement width (>= 2 bits) holding each row's deltas; deltas shape (m, ch)."""
    hi = np.maximum(deltas.max(axis=1), -deltas.min(axis=1) - 1)  # largest magnitude in "positive" terms
    hi = np.maximum(hi, 0)
    # bits for a non-negative value v: v.bit_length(); a signed width needs one more
    bl = np.zeros(hi.shape, dtype=np.int64)
    nz = hi > 0
    bl[nz] = np.floor(np.log2(hi[nz].astype(np.float64))).astype(np.int64) + 1
    # guard float rounding at powers of two
    bl[nz] += (np.left_shift(np.int64(1), bl[nz]) <= hi[nz]).astype(np.int64)
    bl[nz] -= (np.left_shift(np.int64(1), bl[nz] - 1) > hi[nz]).astype(np.int64)
    return np.maximum(bl + 1, 2)


def _pack_block(deltas: np.ndarray, width: int) -> bytes:
    """Deltas (count, ch) as ``width``-bit two's complement, LSB-first, sample-major."""
    flat = deltas.reshape(-1).astype(np.int64) & ((1 << width) - 1)
    bits = ((flat[:, None] >> np.arange(width, dtype=np.int64)) & 1).astype(np.uint8)
    return np.packbits(bits.reshape(-1), bitorder="little").tobytes()


def encode_delta_frame(samples: np.ndarray, resolution_bits: int = 16) -> bytes:
    """Samples (n, ch) int -> delta-compressed frame content (reference + blocks), as the Verity does.

    Blocks of 10 samples (the first of 9, after the reference), each with the minimal width for its
    deltas (at least 2 bits), adjacent blocks of equal width merged (count <= 255).
    """
    s = np.asarray(samples, dtype=np.int64)
    n, ch = s.shape
    nbytes = -(-resolution_bits // 8)
    ref = (s[0] & ((1 << (8 * nbytes)) - 1)).astype("<u8")
    out = bytearray()
    for v in ref:
        out += int(v).to_bytes(nbytes, "little")
    if n == 1:
        return bytes(out)
    for width, start, stop in _plan_blocks(np.diff(s, axis=0)):
        d = np.diff(s, axis=0)[start:stop]
        out += bytes((width, stop - start))
        out += _pack_block(d, width)
    return bytes(out)


def _plan_blocks(deltas: np.ndarray) -> list[tuple[int, int, int]]:
    """(width, start, stop) per block for deltas (m, ch): chunks of 10 (first 9), equal widths merged."""
    m = deltas.shape[0]
    edges = [0] + list(range(_BLOCK_SAMPLES - 1, m, _BLOCK_SAMPLES)) + [m]
    edges = sorted(set(edges))
    per_row = _min_width(deltas)
    plan: list[tuple[int, int, int]] = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        w = int(per_row[a:b].max())
        if plan and plan[-1][0] == w and (b - plan[-1][1]) <= 255:
            plan[-1] = (w, plan[-1][1], b)
        else:
            plan.append((w, a, b))
    return plan


def _frame_size(deltas: np.ndarray, ch: int, ref_bytes: int) -> int:
    size = 10 + ch * ref_bytes
    for w, a, b in _plan_blocks(deltas):
        size += 2 + -(-(w * (b - a) * ch) // 8)
    return size


class _StreamEncoder:
    """Buffers one stream's quantised samples and cuts them into frames of at most ``max_bytes``."""

    def __init__(self, mtype: int, frame_byte: int, max_bytes: int, max_samples: int | None) -> None:
        self.mtype = mtype
        self.frame_byte = frame_byte
        self.max_bytes = max_bytes
        self.max_samples = max_samples
        self.values = np.zeros((0, 3), dtype=np.int64)
        self.t_ns = np.zeros(0, dtype=np.int64)

    def add(self, values: np.ndarray, t_ns: np.ndarray) -> None:
        self.values = np.concatenate([self.values, values])
        self.t_ns = np.concatenate([self.t_ns, t_ns])

    def _fit(self) -> int:
        """How many pending samples fit one frame (binary search on the encoded size)."""
        n = self.values.shape[0]
        cap = n if self.max_samples is None else min(n, self.max_samples)
        lo, hi = 1, cap
        deltas = np.diff(self.values[:cap], axis=0)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if _frame_size(deltas[: mid - 1], 3, 2) <= self.max_bytes:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def frames(self, flush: bool) -> list[bytes]:
        out = []
        while self.values.shape[0]:
            k = self._fit()
            full = k < self.values.shape[0] or (self.max_samples is not None and k >= self.max_samples)
            if not full and not flush:
                break
            content = encode_delta_frame(self.values[:k])
            ts = int(self.t_ns[k - 1])
            out.append(bytes((self.mtype,)) + ts.to_bytes(8, "little") + bytes((self.frame_byte,)) + content)
            self.values = self.values[k:]
            self.t_ns = self.t_ns[k:]
        return out


class VeritySensePeripheral(PeripheralModel):
    """Device-side model of a Polar Verity Sense (acc + gyro) for emulated sensors.

    Handles control-point writes as the firmware does (settings queries with the real response format,
    SDK mode, start with a FACTOR in the response, stop, status) and encodes samples into delta-compressed
    frames: ACC type 0x81 (mG × 1/factor) and GYRO type 0x80 (deg/s × 1/factor), each frame at most
    ``mtu - 3`` bytes and stamped with its last sample's time. MAG is not modelled (start answers
    NOT_SUPPORTED).

    Parameters
    ----------
    mtu : int
        ATT MTU; frames are at most ``mtu - 3`` bytes (default 232 -> up to 229-byte frames).
    max_samples_per_frame : int, optional
        Cut frames earlier (lower latency); None fills each frame up to the MTU as the device does.
    acc_factor : float
        FACTOR returned for ACC (mG per LSB); 1.0 as a real Verity Sense (issue #443).
    gyro_factor : float, optional
        FACTOR for GYRO (deg/s per LSB); default range/32768 of the requested range.
    """

    def __init__(
        self,
        mtu: int = 232,
        max_samples_per_frame: int | None = None,
        acc_factor: float = 1.0,
        gyro_factor: float | None = None,
    ) -> None:
        if mtu < 19:
            raise ValueError(f"polar_pmd peripheral: mtu {mtu} too small; a frame of one sample needs 16 + 3")
        self.mtu = int(mtu)
        self.max_samples_per_frame = max_samples_per_frame
        self.acc_factor = float(np.float32(acc_factor))
        self.gyro_factor = None if gyro_factor is None else float(np.float32(gyro_factor))
        self.sdk_mode = False
        self._active: dict[int, dict[SettingType, int]] = {}
        self._factors: dict[int, float] = {}
        self._enc: dict[int, _StreamEncoder] = {}

    # -- PeripheralModel ---------------------------------------------------------------------------------
    @property
    def streaming(self) -> bool:
        return bool(self._active)

    @property
    def config(self) -> StreamConfig | None:
        acc = self._active.get(MeasurementType.ACC)
        gyr = self._active.get(MeasurementType.GYRO)
        if acc is None and gyr is None:
            return None
        main = acc if acc is not None else gyr
        rate = float(main[SettingType.SAMPLE_RATE]) if main is not None else 0.0
        return StreamConfig(
            rate_hz=rate,
            acc_range_g=float(acc[SettingType.RANGE]) if acc and SettingType.RANGE in acc else None,
            gyro_range_dps=float(gyr[SettingType.RANGE]) if gyr and SettingType.RANGE in gyr else None,
        )

    def read_features(self) -> bytes:
        """The value of a control-point read: ACC, GYRO and SDK mode."""
        return encode_features((MeasurementType.ACC, MeasurementType.GYRO, MeasurementType.SDK_MODE))

    def _settings_available(self, mtype: int, sdk: bool) -> dict[SettingType, tuple[int, ...]]:
        if mtype == MeasurementType.ACC:
            return {
                SettingType.SAMPLE_RATE: VERITY_RATES_HZ if sdk else (VERITY_DEFAULT_RATE_HZ,),
                SettingType.RESOLUTION: (16,),
                SettingType.RANGE: VERITY_ACC_RANGES_G if sdk else (8,),
                SettingType.CHANNELS: (3,),
            }
        return {
            SettingType.SAMPLE_RATE: VERITY_RATES_HZ if sdk else (VERITY_DEFAULT_RATE_HZ,),
            SettingType.RESOLUTION: (16,),
            SettingType.RANGE: VERITY_GYRO_RANGES_DPS if sdk else (2000,),
            SettingType.CHANNELS: (3,),
        }

    @staticmethod
    def _response(op: int, type_byte: int, status: int, params: bytes = b"") -> tuple[str, bytes]:
        return CP_UUID, bytes((RESPONSE_CODE, op, type_byte, status, 0)) + params

    @staticmethod
    def _settings_tlv(settings: Mapping[SettingType, tuple[int, ...]]) -> bytes:
        out = bytearray()
        for st, values in settings.items():
            out += bytes((st, len(values)))
            for v in values:
                out += int(v).to_bytes(SETTING_SIZES[st], "little")
        return bytes(out)

    def handle_write(self, char_uuid: str, data: bytes) -> list[tuple[str, bytes]]:
        if char_uuid.lower() != CP_UUID:
            raise _unsupported(f"write to {char_uuid}", f"only the control point {CP_UUID} is writable")
        data = bytes(data)
        if not data:
            return []
        op = data[0]
        type_byte = data[1] if len(data) > 1 else 0
        mtype = type_byte & 0x3F
        supported = (MeasurementType.ACC, MeasurementType.GYRO)
        if op in (Opcode.GET_MEASUREMENT_SETTINGS, Opcode.GET_SDK_MODE_MEASUREMENT_SETTINGS):
            if len(data) != 2:
                return [self._response(op, type_byte, Status.INVALID_LENGTH)]
            if mtype not in supported or type_byte & 0x80:
                return [self._response(op, type_byte, Status.NOT_SUPPORTED)]
            sdk = op == Opcode.GET_SDK_MODE_MEASUREMENT_SETTINGS or self.sdk_mode
            tlv = self._settings_tlv(self._settings_available(mtype, sdk))
            return [self._response(op, type_byte, Status.SUCCESS, tlv)]
        if op == Opcode.REQUEST_MEASUREMENT_START:
            return self._start(type_byte, data[2:])
        if op == Opcode.STOP_MEASUREMENT:
            if len(data) != 2:
                return [self._response(op, type_byte, Status.INVALID_LENGTH)]
            if mtype == MeasurementType.SDK_MODE:
                if not self.sdk_mode:
                    return [self._response(op, type_byte, Status.ALREADY_IN_STATE)]
                self.sdk_mode = False
                self._stop_all()
                return [self._response(op, type_byte, Status.SUCCESS)]
            if mtype not in self._active:
                return [self._response(op, type_byte, Status.ALREADY_IN_STATE)]
            del self._active[mtype]
            self._enc.pop(mtype, None)
            return [self._response(op, type_byte, Status.SUCCESS)]
        if op == Opcode.GET_MEASUREMENT_STATUS:
            params = bytes((0x40 | t) if t in self._active else t for t in supported)
            return [self._response(op, 0, Status.SUCCESS, params)]
        if op == Opcode.GET_SDK_MODE_STATUS:
            return [self._response(op, 0, Status.SUCCESS, bytes((1 if self.sdk_mode else 0,)))]
        return [self._response(op, type_byte, Status.INVALID_OP_CODE)]

    def _stop_all(self) -> None:
        self._active.clear()
        self._enc.clear()

    def _start(self, type_byte: int, tlv: bytes) -> list[tuple[str, bytes]]:
        op = Opcode.REQUEST_MEASUREMENT_START
        mtype = type_byte & 0x3F
        if mtype == MeasurementType.SDK_MODE:
            if tlv:
                return [self._response(op, type_byte, Status.INVALID_LENGTH)]
            if self.sdk_mode:
                return [self._response(op, type_byte, Status.ALREADY_IN_STATE)]
            self.sdk_mode = True
            self._stop_all()  # the mode switch ends running streams (the SDK closes its observers)
            return [self._response(op, type_byte, Status.SUCCESS)]
        if mtype not in (MeasurementType.ACC, MeasurementType.GYRO) or type_byte & 0x80:
            return [self._response(op, type_byte, Status.NOT_SUPPORTED)]
        if mtype in self._active:
            return [self._response(op, type_byte, Status.ALREADY_IN_STATE)]
        try:
            parsed = parse_settings(tlv)
        except MalformedFrameError:
            return [self._response(op, type_byte, Status.INVALID_LENGTH)]
        avail = self._settings_available(mtype, self.sdk_mode)
        chosen: dict[SettingType, int] = {}
        checks = (
            (SettingType.SAMPLE_RATE, Status.INVALID_SAMPLE_RATE),
            (SettingType.RESOLUTION, Status.INVALID_RESOLUTION),
            (SettingType.RANGE, Status.INVALID_RANGE),
            (SettingType.CHANNELS, Status.INVALID_NUMBER_OF_CHANNELS),
        )
        for st, err in checks:
            values = parsed.get(st)
            if values is None:
                if st is SettingType.SAMPLE_RATE:
                    return [self._response(op, type_byte, Status.INVALID_PARAMETER)]
                chosen[st] = avail[st][-1] if st is SettingType.RANGE and not self.sdk_mode else avail[st][0]
                continue
            if len(values) != 1 or values[0] not in avail[st]:
                return [self._response(op, type_byte, err)]
            chosen[st] = int(values[0])
        if mtype == MeasurementType.ACC:
            factor = self.acc_factor
            frame_byte = 0x81
        else:
            factor = self.gyro_factor if self.gyro_factor is not None else chosen[SettingType.RANGE] / 32768.0
            factor = float(np.float32(factor))
            frame_byte = 0x80
        self._active[mtype] = chosen
        self._factors[mtype] = factor
        self._enc[mtype] = _StreamEncoder(mtype, frame_byte, self.mtu - 3, self.max_samples_per_frame)
        params = encode_settings({SettingType.FACTOR: factor})
        return [self._response(op, type_byte, Status.SUCCESS, params)]

    def device_stop(self, types: Iterable[int] | None = None) -> list[tuple[str, bytes]]:
        """The device ends streams by itself (ONLINE_MEASUREMENT_STOPPED); default: all running streams."""
        stop = sorted(self._active) if types is None else [int(t) & 0x3F for t in types]
        for t in stop:
            self._active.pop(t, None)
            self._enc.pop(t, None)
        return [(CP_UUID, bytes((SERVER_ONLINE_MEASUREMENT_STOPPED, *stop)))]

    def encode(self, batch: ImuBatch) -> list[tuple[str, bytes]]:
        """Samples on the device clock (s since 2000) in SI units -> full PMD data frames."""
        return self._encode(batch, flush=False)

    def flush(self) -> list[tuple[str, bytes]]:
        """Frames for the samples still buffered (the device would send them once a frame is full)."""
        out: list[tuple[str, bytes]] = []
        for mtype in sorted(self._enc):
            out += [(DATA_UUID, f) for f in self._enc[mtype].frames(flush=True)]
        return out

    def _encode(self, batch: ImuBatch, flush: bool) -> list[tuple[str, bytes]]:
        if not self._active or len(batch) == 0:
            return []
        t_ns = np.rint(np.asarray(batch.t_s, dtype=np.float64) * NS_PER_S).astype(np.int64)
        if np.any(t_ns <= 0):
            raise ValueError("polar_pmd peripheral: sample times must be positive seconds since 2000")
        out: list[tuple[str, bytes]] = []
        for mtype in sorted(self._enc):
            enc = self._enc[mtype]
            factor = self._factors[mtype]
            if mtype == MeasurementType.ACC:
                if batch.acc_mps2 is None:
                    continue
                native = batch.acc_mps2 / MG_TO_MPS2
            else:
                if batch.gyr_rads is None:
                    continue
                native = batch.gyr_rads / DEG_TO_RAD
            q = np.clip(np.rint(native / factor), -32768, 32767).astype(np.int64)
            enc.add(q, t_ns)
            out += [(DATA_UUID, f) for f in enc.frames(flush)]
        return out


PROTOCOL = PolarPmd()
"""The registered protocol (Verity Sense; decodes H10 frames too)."""
H10_PROTOCOL = PolarH10Pmd()
"""The H10 variant (accelerometer only); not in the registry, pick it with :func:`protocol_for_name`."""
