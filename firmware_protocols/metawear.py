"""MbientLab MetaWear / MetaMotion (R, RL, C, S): register commands, decoder and device model.

Sources (see ``docs/protocols/metawear.md``): ``mbientlab/MetaWear-SDK-Cpp@f67699e`` —
``src/metawear/impl/cpp/metawearboard.cpp`` (UUIDs, write without response),
``src/metawear/core/module.h`` (module ids), ``src/metawear/sensor/cpp/accelerometer_bosch_register.h``,
``gyro_bosch_register.h``, ``magnetometer_bmm150_register.h``, ``sensor_fusion_register.h`` (registers),
``accelerometer_bosch.cpp`` / ``gyro_bosch.cpp`` (scales), ``core/cpp/logging.cpp`` (tick 48/32768 s), and the
SDK's Python unit tests ``test/test_accelerometer_bmi160.py``, ``test_accelerometer_bmi270.py``,
``test_gyro_bmi160.py``, ``test_magnetometer_bmm150.py``, ``test_sensor_fusion.py``, ``test_dataprocessor.py``
(notification bytes with asserted values, exact command bytes).

Framing: every command and notification is ``[module u8][register u8][data…]``, little-endian; bit 7 of
the register marks a read reply. Raw acc / gyro / mag samples are int16 x, y, z scaled by the range the host
configured; "packed" registers carry 3 samples in one 20-byte notification. Streamed data has no device
time: samples are stamped with the host receive time (``time_base="host"``), laid out at the configured
rate. A data-processor *accounter* can prepend a uint32 tick (48/32768 s, time mode) or a sample counter
(count mode); its notifications ``09 03 <id> <u32> <sample>`` are decoded on the device clock with loss
detection.

Native units (``ImuBatch.native``): acc g, gyro deg/s, mag µT, quaternion w,x,y,z, Euler deg; the SDK
reports sensor-fusion gravity and linear acceleration in g (the firmware sends m/s²).
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    as_float64,
    check_values,
)
from .batch import G_MPS2, ImuBatch

NAME = "metawear"

SERVICE_UUID = "326a9000-85cb-9195-d9dd-464cfbbae75a"
COMMAND_UUID = "326a9001-85cb-9195-d9dd-464cfbbae75a"
NOTIFY_UUID = "326a9006-85cb-9195-d9dd-464cfbbae75a"

MOD_ACC = 0x03
MOD_DATAPROC = 0x09
MOD_LOGGING = 0x0B
MOD_GYRO = 0x13
MOD_MAG = 0x15
MOD_FUSION = 0x19

IMU_IMPLEMENTATION = {"bmi160": 1, "bmi270": 4}
"""Accelerometer module implementation byte of the module-info reply ``03 80 <impl> <rev>``."""

ODR_CODES: dict[float, int] = {
    12.5: 5,
    25.0: 6,
    50.0: 7,
    100.0: 8,
    200.0: 9,
    400.0: 10,
    800.0: 11,
    1600.0: 12,
}
"""Bosch output data rate codes, the same for BMI160 / BMI270 acc and gyro (12.5 Hz: acc only)."""
RATES_HZ: tuple[float, ...] = (25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0)

ACC_LSB_PER_G = {2.0: 16384.0, 4.0: 8192.0, 8.0: 4096.0, 16.0: 2048.0}
ACC_RANGE_BITS_BMI160 = {2.0: 0x3, 4.0: 0x5, 8.0: 0x8, 16.0: 0xC}
ACC_RANGE_INDEX = {2.0: 0, 4.0: 1, 8.0: 2, 16.0: 3}
GYRO_LSB_PER_DPS = {2000.0: 16.4, 1000.0: 32.8, 500.0: 65.6, 250.0: 131.2, 125.0: 262.4}
GYRO_RANGE_INDEX = {2000.0: 0, 1000.0: 1, 500.0: 2, 250.0: 3, 125.0: 4}
MAG_LSB_PER_UT = 16.0
MAG_ODR_HZ = {0: 10.0, 1: 2.0, 2: 6.0, 3: 8.0, 4: 15.0, 5: 20.0, 6: 25.0, 7: 30.0}
"""BMM150 rate codes of register ``15 03``."""
DEFAULT_MAG_RATE_HZ = 25.0

TICK_S = 48.0 / 32768.0
"""Length of one accounter / logging tick, s (``logging.cpp``)."""
FUSION_RATE_HZ = 100.0
"""Bosch sensor fusion output rate (fixed)."""

DEFAULT_ACC_RANGE_G = 16.0
DEFAULT_GYRO_RANGE_DPS = 2000.0
DEFAULT_RATE_HZ = 100.0

# data registers: (module, register) -> stream name; packed registers hold 3 samples
ACC_DATA = 0x04
ACC_PACKED = {"bmi160": 0x1C, "bmi270": 0x05}
GYRO_DATA = {"bmi160": 0x05, "bmi270": 0x04}
GYRO_PACKED = {"bmi160": 0x07, "bmi270": 0x05}
MAG_DATA = 0x05
MAG_PACKED = 0x09

FUSION_OUTPUTS = {
    0x04: "corrected_acc",
    0x05: "corrected_gyro",
    0x06: "corrected_mag",
    0x07: "quaternion",
    0x08: "euler",
    0x09: "gravity",
    0x0A: "linear_acc",
}
FUSION_OUTPUT_BIT = {name: reg - 0x04 for reg, name in FUSION_OUTPUTS.items()}
"""Bit of each output in the fusion output-enable mask (``1 << SensorFusionData``)."""
FUSION_MODES = {"sleep": 0, "ndof": 1, "imu_plus": 2, "compass": 3, "m4g": 4}
FUSION_ACC_RANGE_INDEX = {2.0: 0, 4.0: 1, 8.0: 2, 16.0: 3}
FUSION_GYRO_RANGE_INDEX = {2000.0: 0, 1000.0: 1, 500.0: 2, 250.0: 3}

ACCOUNTER_TYPE = 0x11
ACCOUNTER_MODES = {0x30: "count", 0x31: "time"}

_DEG2RAD = np.pi / 180.0
_WRAP = 1 << 32


def _nearest(options: dict[float, Any] | tuple[float, ...], value: float) -> float:
    keys = np.asarray(sorted(options))
    return float(keys[int(np.argmin(np.abs(keys - float(value))))])


def _check_imu(imu: str) -> str:
    imu = imu.lower() if isinstance(imu, str) else imu
    if imu not in IMU_IMPLEMENTATION:
        raise ValueError(
            f"{NAME}: imu must be 'bmi160' (MetaMotion R/RL/C) or 'bmi270' (MetaMotion S), got {imu!r}"
        )
    return imu


def _check_choice(what: str, value: float, table: dict[float, Any]) -> float:
    v = float(value)
    if v not in table:
        raise ValueError(f"{NAME}: {what} must be one of {sorted(table)}, got {value}")
    return v


# ---------------------------------------------------------------------------------------------- commands


def acc_config_command(rate_hz: float, range_g: float, imu: str = "bmi160") -> bytes:
    """Accelerometer DATA_CONFIG ``03 03 <odr | bwp<<4 [| perf<<7]> <range>``.

    BMI160: range bits 0x3/0x5/0x8/0xC for ±2/4/8/16 g; BMI270: range index 0..3 and the performance bit.
    """
    imu = _check_imu(imu)
    odr = ODR_CODES[_check_choice("acc rate_hz", rate_hz, ODR_CODES)]
    rng = _check_choice("acc_range_g", range_g, ACC_LSB_PER_G)
    if imu == "bmi160":
        return bytes((MOD_ACC, 0x03, odr | (2 << 4), ACC_RANGE_BITS_BMI160[rng]))
    return bytes((MOD_ACC, 0x03, odr | (2 << 4) | 0x80, ACC_RANGE_INDEX[rng]))


def gyro_config_command(rate_hz: float, range_dps: float) -> bytes:
    """Gyro CONFIG ``13 03 <odr | bwp<<4> <range index>``; range index 0..4 = 2000/1000/500/250/125 dps."""
    odr = ODR_CODES[_check_choice("gyro rate_hz", rate_hz, {k: v for k, v in ODR_CODES.items() if k >= 25})]
    rng = _check_choice("gyro_range_dps", range_dps, GYRO_RANGE_INDEX)
    return bytes((MOD_GYRO, 0x03, odr | (2 << 4), GYRO_RANGE_INDEX[rng]))


def mag_config_commands(xy_reps: int = 9, z_reps: int = 15, odr_code: int = 6) -> list[bytes]:
    """BMM150 repetitions ``15 04 <(xy-1)/2> <z-1>`` and rate ``15 03 <odr>`` (code 6 = 25 Hz)."""
    return [bytes((MOD_MAG, 0x04, (xy_reps - 1) // 2, z_reps - 1)), bytes((MOD_MAG, 0x03, odr_code))]


def enable_sampling(module: int, on: bool = True) -> bytes:
    """DATA_INTERRUPT_ENABLE: ``<mod> 02 01 00`` on, ``<mod> 02 00 01`` off."""
    return bytes((module, 0x02, 1, 0) if on else (module, 0x02, 0, 1))


def power(module: int, on: bool = True) -> bytes:
    """POWER_MODE / start: ``<mod> 01 01`` start, ``<mod> 01 00`` stop."""
    return bytes((module, 0x01, 1 if on else 0))


def subscribe(module: int, register: int, on: bool = True) -> bytes:
    """Enable (``01``) or disable (``00``) notifications of a data register: ``<mod> <reg> 01``."""
    return bytes((module, register, 1 if on else 0))


def fusion_config_command(mode: str, acc_range_g: float = 16.0, gyro_range_dps: float = 2000.0) -> bytes:
    """Sensor fusion MODE: ``19 02 <mode> <acc_idx | (gyro_idx + 1) << 4>``."""
    m = FUSION_MODES[mode]
    a = FUSION_ACC_RANGE_INDEX[_check_choice("fusion acc_range_g", acc_range_g, FUSION_ACC_RANGE_INDEX)]
    g = FUSION_GYRO_RANGE_INDEX[
        _check_choice("fusion gyro_range_dps", gyro_range_dps, FUSION_GYRO_RANGE_INDEX)
    ]
    return bytes((MOD_FUSION, 0x02, m, a | ((g + 1) << 4)))


def fusion_output_command(outputs: tuple[str, ...]) -> bytes:
    """Fusion OUTPUT_ENABLE ``19 03 <mask> 00`` with bit ``1 << SensorFusionData`` per output."""
    mask = 0
    for o in outputs:
        mask |= 1 << FUSION_OUTPUT_BIT[o]
    return bytes((MOD_FUSION, 0x03, mask, 0))


def fusion_sequences(
    mode: str = "imu_plus", outputs: tuple[str, ...] = ("quaternion",)
) -> tuple[list[bytes], list[bytes]]:
    """Start and stop command lists of the SDK for a fusion mode (as ``test_sensor_fusion.py`` asserts).

    Start: enable and start the sensors the mode uses, output mask, ``19 01 01``. Stop: ``19 01 00``,
    clear the mask (``19 03 00 7f``), stop and disable the sensors. Write :func:`fusion_config_command` and
    subscribe the output registers before starting.
    """
    used = {
        "ndof": (MOD_ACC, MOD_GYRO, MOD_MAG),
        "imu_plus": (MOD_ACC, MOD_GYRO),
        "compass": (MOD_ACC, MOD_MAG),
        "m4g": (MOD_ACC, MOD_MAG),
    }[mode]
    start = [enable_sampling(m) for m in used] + [power(m) for m in used]
    start += [fusion_output_command(outputs), power(MOD_FUSION, True)]
    stop = [power(MOD_FUSION, False), bytes((MOD_FUSION, 0x03, 0x00, 0x7F))]
    stop += [power(m, False) for m in used] + [enable_sampling(m, False) for m in used]
    return start, stop


def accounter_create_command(module: int, register: int, mode: str = "time") -> bytes:
    """Data-processor accounter on a 6-byte signed xyz signal: ``09 02 <mod> <reg> ff a0 11 <31|30> 03``.

    The device answers ``09 02 <processor id>``; subscribe it with ``09 07 <id> 01`` and enable
    data-processor notifications with ``09 03 01``.
    """
    code = {v: k for k, v in ACCOUNTER_MODES.items()}[mode]
    return bytes((MOD_DATAPROC, 0x02, module, register, 0xFF, 0xA0, ACCOUNTER_TYPE, code, 0x03))


# ----------------------------------------------------------------------------------------------- decoding


@dataclass
class _Stream:
    """Per-stream timing state (host layout, device ticks, counters)."""

    next_t_s: float | None = None
    prev_raw: int | None = None
    offset: int = 0
    next_tick: float | None = None


def _xyz(payload: bytes, offset: int, n: int) -> np.ndarray:
    return np.frombuffer(payload, dtype="<i2", count=3 * n, offset=offset).reshape(n, 3).astype(np.float64)


def decode_values(
    payload: bytes, acc_range_g: float = DEFAULT_ACC_RANGE_G, gyro_range_dps: float = DEFAULT_GYRO_RANGE_DPS
) -> tuple[str, dict[str, np.ndarray]]:
    """Decode the values of one sensor notification, in the vendor's units (pure, no timing).

    Parameters
    ----------
    payload : bytes
        ``[module][register][data…]`` as notified.
    acc_range_g, gyro_range_dps : float
        The full scales the host configured (the bytes do not carry them).

    Returns
    -------
    kind : str
        ``acc``, ``gyro``, ``mag`` or a sensor-fusion output name (``corrected_acc``, ``quaternion``,
        ``euler``, ``gravity``, ``linear_acc``, ...).
    values : dict
        ``acc_g`` / ``gyro_dps`` / ``mag_uT`` (N, 3); ``quat_wxyz`` (N, 4); ``euler_deg`` (N, 4: heading,
        pitch, roll, yaw); ``gravity_g``, ``linear_acc_g`` (N, 3); ``accuracy`` (N,) for corrected outputs.

    Raises
    ------
    MalformedFrameError, UnsupportedFrameError
    """
    if len(payload) < 2:
        raise MalformedFrameError(
            NAME, "notification", f"{len(payload)} byte(s); expected [module, register, data…]"
        )
    acc_range_g = _check_choice("acc_range_g", acc_range_g, ACC_LSB_PER_G)
    gyro_range_dps = _check_choice("gyro_range_dps", gyro_range_dps, GYRO_LSB_PER_DPS)
    mod, reg = payload[0], payload[1]
    frame = f"module 0x{mod:02x} register 0x{reg:02x}"
    n_data = len(payload) - 2
    if mod in (MOD_ACC, MOD_GYRO, MOD_MAG):
        kind = {MOD_ACC: "acc", MOD_GYRO: "gyro", MOD_MAG: "mag"}[mod]
        single = {
            MOD_ACC: {ACC_DATA},
            MOD_GYRO: set(GYRO_DATA.values()),
            MOD_MAG: {MAG_DATA},
        }[mod]
        packed = {
            MOD_ACC: set(ACC_PACKED.values()),
            MOD_GYRO: set(GYRO_PACKED.values()),
            MOD_MAG: {MAG_PACKED},
        }[mod]
        if reg in single and n_data == 6:
            n = 1
        elif reg in packed and n_data == 18:
            n = 3
        elif reg in single | packed:
            want = []
            if reg in single:
                want.append("6 bytes (one int16 x,y,z sample)")
            if reg in packed:
                want.append("18 bytes (three packed samples)")
            raise MalformedFrameError(
                NAME, f"{kind} {frame}", f"{n_data} data bytes; expected {' or '.join(want)}"
            )
        else:
            raise UnsupportedFrameError(NAME, f"{kind} {frame}", "not a data register pelvimon decodes")
        raw = _xyz(payload, 2, n)
        if kind == "acc":
            return kind, {"acc_g": raw / ACC_LSB_PER_G[float(acc_range_g)]}
        if kind == "gyro":
            return kind, {"gyro_dps": raw / GYRO_LSB_PER_DPS[float(gyro_range_dps)]}
        return kind, {"mag_uT": raw / MAG_LSB_PER_UT}
    if mod == MOD_FUSION and reg in FUSION_OUTPUTS:
        kind = FUSION_OUTPUTS[reg]
        nbytes = {"quaternion": 16, "euler": 16, "gravity": 12, "linear_acc": 12}.get(kind, 13)
        if n_data != nbytes:
            raise MalformedFrameError(
                NAME, f"sensor fusion {kind} ({frame})", f"{n_data} data bytes; expected {nbytes}"
            )
        nf = 4 if nbytes == 16 else 3
        f = as_float64(np.frombuffer(payload, dtype="<f4", count=nf, offset=2))[None, :]
        if kind == "corrected_acc":
            vals = {"acc_g": f / 1000.0}
        elif kind == "corrected_gyro":
            vals = {"gyro_dps": f}
        elif kind == "corrected_mag":
            vals = {"mag_uT": f}
        elif kind == "quaternion":
            vals = {"quat_wxyz": f}
        elif kind == "euler":
            vals = {"euler_deg": f}
        else:
            vals = {f"{kind}_g": f / G_MPS2}
        for key, v in vals.items():
            check_values(NAME, f"sensor fusion {kind} ({frame})", key, v)
        if nbytes == 13:
            vals["accuracy"] = np.array([payload[14]], dtype=np.int64)
        return kind, vals
    raise UnsupportedFrameError(NAME, frame, "not a sensor data notification pelvimon decodes")


class MetaWearDecoder(Decoder):
    """Client-side MetaWear decoder.

    Parameters
    ----------
    acc_range_g : float
        Accelerometer full scale ±g (2, 4, 8, 16); default 16, the range pelvimon configures.
    gyro_range_dps : float
        Gyro full scale ±deg/s (125 … 2000); default 2000.
    rate_hz : float
        Configured output data rate, Hz: samples of one notification are laid out at this rate (host time).
    imu : {"bmi160", "bmi270"}
        The board's IMU; learnt from a module-info reply ``03 80 <impl>`` when one is seen.
    accounter : {"time", "count"}
        Mode of accounter processors whose creation was not seen (default "time").

    Notes
    -----
    ``observe_write`` updates ranges and rate from the client's config writes and learns which signal each
    accounter processor carries (its creation write plus the ``09 02 <id>`` reply); until then processor 0
    is taken as acc and 1 as gyro. Sensor-fusion Euler angles, gravity and linear acceleration are not IMU
    channels of an ``ImuBatch``: ``feed`` raises :class:`UnsupportedFrameError` for them (the message
    carries the values); :func:`decode_values` decodes them.
    """

    protocol = NAME

    def __init__(
        self,
        acc_range_g: float = DEFAULT_ACC_RANGE_G,
        gyro_range_dps: float = DEFAULT_GYRO_RANGE_DPS,
        rate_hz: float = DEFAULT_RATE_HZ,
        imu: str = "bmi160",
        accounter: str = "time",
    ) -> None:
        self.acc_range_g = _check_choice("acc_range_g", acc_range_g, ACC_LSB_PER_G)
        self.gyro_range_dps = _check_choice("gyro_range_dps", gyro_range_dps, GYRO_LSB_PER_DPS)
        if not float(rate_hz) > 0:
            raise ValueError(f"{NAME}: rate_hz must be > 0, got {rate_hz}")
        self.rate_hz = float(rate_hz)
        self.mag_rate_hz = DEFAULT_MAG_RATE_HZ
        self.imu = _check_imu(imu)
        if accounter not in ("time", "count"):
            raise ValueError(f"{NAME}: accounter must be 'time' or 'count', got {accounter!r}")
        self.accounter_mode = accounter
        self.processors: dict[int, tuple[str, str]] = {0: ("acc", accounter), 1: ("gyro", accounter)}
        self._pending_creates: list[tuple[str, str]] = []
        self.reset()

    def reset(self) -> None:
        self._streams: dict[str, _Stream] = {}

    def _stream(self, key: str) -> _Stream:
        s = self._streams.get(key)
        if s is None:
            s = self._streams[key] = _Stream()
        return s

    def observe_write(self, char_uuid: str, data: bytes) -> None:
        """Learn ranges, rate and accounter processors from a client write (unknown writes are ignored)."""
        d = bytes(data)
        if char_uuid.lower() != COMMAND_UUID or len(d) < 3:
            return
        mod, reg = d[0], d[1]
        odr_by_code = {v: k for k, v in ODR_CODES.items()}
        if mod == MOD_ACC and reg == 0x03 and len(d) == 4:
            self.rate_hz = odr_by_code.get(d[2] & 0x0F, self.rate_hz)
            table = ACC_RANGE_BITS_BMI160 if self.imu == "bmi160" else ACC_RANGE_INDEX
            rng = {v: k for k, v in table.items()}.get(d[3])
            if rng is not None:
                self.acc_range_g = rng
        elif mod == MOD_GYRO and reg == 0x03 and len(d) == 4:
            rng = {v: k for k, v in GYRO_RANGE_INDEX.items()}.get(d[3])
            if rng is not None:
                self.gyro_range_dps = rng
        elif mod == MOD_MAG and reg == 0x03 and len(d) == 3:
            self.mag_rate_hz = MAG_ODR_HZ.get(d[2], self.mag_rate_hz)
        elif mod == MOD_DATAPROC and reg == 0x02 and len(d) >= 9 and d[6] == ACCOUNTER_TYPE:
            src = {MOD_ACC: "acc", MOD_GYRO: "gyro", MOD_MAG: "mag"}.get(d[2])
            if src is not None:
                self._pending_creates.append((src, ACCOUNTER_MODES.get(d[7], self.accounter_mode)))

    def feed(self, char_uuid: str, payload: bytes, t_host_s: float | None = None) -> list[ImuBatch]:
        payload = bytes(payload)
        if char_uuid.lower() != NOTIFY_UUID:
            raise UnsupportedFrameError(
                NAME, f"notification on {char_uuid}", f"MetaWear notifies only on {NOTIFY_UUID}"
            )
        if len(payload) < 2:
            raise MalformedFrameError(
                NAME, "notification", f"{len(payload)} byte(s); expected [module, register, …]"
            )
        mod, reg = payload[0], payload[1]
        if reg & 0x80:
            return self._read_reply(payload)
        if mod == MOD_DATAPROC:
            return self._dataproc(payload, t_host_s)
        kind, vals = decode_values(payload, self.acc_range_g, self.gyro_range_dps)
        if kind in ("euler", "gravity", "linear_acc"):
            shown = ", ".join(f"{k}={np.round(v[0], 4).tolist()}" for k, v in vals.items())
            raise UnsupportedFrameError(
                NAME,
                f"sensor fusion {kind} (0x19 0x{reg:02x})",
                f"a valid sensor-fusion output, which pelvimon does not analyse (it reads the accelerometer and "
                f"gyroscope; metawear.decode_values reads it); values {shown}",
            )
        rate = {MOD_FUSION: FUSION_RATE_HZ, MOD_MAG: self.mag_rate_hz}.get(mod, self.rate_hz)
        n = next(iter(vals.values())).shape[0]
        t = self._host_times(kind, n, rate, t_host_s)
        return [self._batch(kind, vals, t, "host")]

    def _host_times(self, key: str, n: int, rate: float, t_host_s: float | None) -> np.ndarray:
        s = self._stream(key)
        step = np.arange(n, dtype=np.float64) / rate
        if t_host_s is None:
            start = 0.0 if s.next_t_s is None else s.next_t_s
            t = start + step
        else:
            t = float(t_host_s) - step[::-1]
        s.next_t_s = float(t[-1]) + 1.0 / rate
        return t

    @staticmethod
    def _batch(kind: str, vals: dict[str, np.ndarray], t: np.ndarray, base: str, **kw: Any) -> ImuBatch:
        acc = vals.get("acc_g")
        gyro = vals.get("gyro_dps")
        return ImuBatch(
            t_s=t,
            acc_mps2=None if acc is None else acc * G_MPS2,
            gyr_rads=None if gyro is None else gyro * _DEG2RAD,
            mag_uT=vals.get("mag_uT"),
            quat_wxyz=vals.get("quat_wxyz"),
            time_base=base,  # type: ignore[arg-type]
            native=vals,
            **kw,
        )

    def _read_reply(self, payload: bytes) -> list[ImuBatch]:
        mod, reg = payload[0], payload[1]
        if reg == 0x80 and mod == MOD_ACC and len(payload) >= 3:
            impl = {v: k for k, v in IMU_IMPLEMENTATION.items()}.get(payload[2])
            if impl is not None:
                self.imu = impl
        return []  # module info and register read replies carry no samples

    def _dataproc(self, payload: bytes, t_host_s: float | None) -> list[ImuBatch]:
        reg = payload[1]
        if reg == 0x02:
            # reply to a processor creation: 09 02 <id>
            if len(payload) != 3:
                raise MalformedFrameError(
                    NAME, "data processor created (0x09 0x02)", f"{len(payload)} bytes; expected 3"
                )
            if self._pending_creates:
                self.processors[payload[2]] = self._pending_creates.pop(0)
            return []
        if reg != 0x03:
            raise UnsupportedFrameError(
                NAME, f"data processor register 0x{reg:02x}", "expected 0x03 (notify)"
            )
        if len(payload) < 3:
            raise MalformedFrameError(NAME, "data processor notify (0x09 0x03)", "no processor id")
        pid = payload[2]
        frame = f"accounter (0x09 0x03, processor {pid})"
        if pid not in self.processors:
            raise UnsupportedFrameError(NAME, f"data processor {pid}", "no accounter known under this id")
        src, mode = self.processors[pid]
        body = len(payload) - 3
        if body <= 0 or body % 10 != 0:
            raise MalformedFrameError(
                NAME, frame, f"{body} data bytes; expected k × (u32 {mode} + int16 x,y,z) = 10·k"
            )
        k = body // 10
        rows = np.frombuffer(payload, dtype=np.uint8, offset=3).reshape(k, 10)
        raw32 = rows[:, :4].copy().view("<u4").ravel().astype(np.int64)
        xyz = rows[:, 4:].copy().view("<i2").reshape(k, 3).astype(np.float64)
        vals: dict[str, np.ndarray]
        if src == "acc":
            vals = {"acc_g": xyz / ACC_LSB_PER_G[self.acc_range_g]}
        elif src == "gyro":
            vals = {"gyro_dps": xyz / GYRO_LSB_PER_DPS[self.gyro_range_dps]}
        else:
            vals = {"mag_uT": xyz / MAG_LSB_PER_UT}
        s = self._stream(f"proc{pid}")
        # unwrap the uint32 (ticks or counts), vectorised: wraps inside the notification and from the last one
        prev = raw32[0] if s.prev_raw is None else s.prev_raw
        jumps = np.diff(np.concatenate(([prev], raw32)))
        wraps = np.cumsum(jumps < -(_WRAP // 2))
        unwrapped = raw32 + (s.offset + wraps * _WRAP)
        s.offset += int(wraps[-1]) * _WRAP
        s.prev_raw = int(raw32[-1])
        gap = False
        n_lost = 0
        seq = None
        if mode == "time":
            vals["tick"] = raw32
            t = unwrapped * TICK_S
            period_ticks = 1.0 / (self.rate_hz * TICK_S)
            if s.next_tick is not None:
                late = float(unwrapped[0]) - s.next_tick
                if late > 0.5 * period_ticks + 1.0:
                    gap, n_lost = True, int(round(late / period_ticks))
            s.next_tick = float(unwrapped[-1]) + period_ticks
            inner = np.diff(unwrapped) - period_ticks
            if np.any(inner > 0.5 * period_ticks + 1.0) and not gap:
                gap = True
            base = "device"
        else:
            vals["count"] = raw32
            seq = unwrapped
            if s.next_tick is not None:
                missing = int(unwrapped[0] - s.next_tick)
                if missing > 0:
                    gap, n_lost = True, missing
            s.next_tick = float(unwrapped[-1] + 1)
            t = self._host_times(f"proc{pid}_host", k, self.rate_hz, t_host_s)
            base = "host"
        return [self._batch(src, vals, t, base, gap_before=gap, n_lost=n_lost, seq=seq)]


# ---------------------------------------------------------------------------------------- device model


@dataclass
class _Sensor:
    config: bytes | None = None
    enabled: bool = False
    running: bool = False
    subscribed: set[int] = field(default_factory=set)
    pending: list[np.ndarray] = field(default_factory=list)
    last_key: float | None = None


class MetaWearPeripheral(PeripheralModel):
    """Device side of the MetaWear register protocol, for emulated sensors.

    Parameters
    ----------
    imu : {"bmi160", "bmi270"}
        Which board to be: MetaMotion R/RL/C (BMI160) or MetaMotion S (BMI270). Sets the registers.

    Notes
    -----
    Parses config (``03 03``, ``13 03``, ``15 03``/``15 04``), enable (``xx 02``), power (``xx 01``),
    subscribe (``xx <data reg> 01``), sensor fusion (``19 02``/``19 03``/``19 01``) and accounter writes
    (``09 02 … 11 3x …`` answered ``09 02 <id>``, ``09 07 <id> 01``, ``09 03 01``); answers module-info
    reads ``<mod> 80``. ``encode`` sends what the firmware would: packed registers 3 samples per
    notification, single registers one, accounters ``09 03 <id> <tick u32> <xyz>``, mag decimated to its
    rate, fusion quaternions at 100 Hz when the batch carries ``quat_wxyz``.
    """

    def __init__(self, imu: str = "bmi160") -> None:
        self.imu = _check_imu(imu)
        self.acc = _Sensor(config=acc_config_command(100.0, 2.0, self.imu))
        self.gyro = _Sensor(config=gyro_config_command(100.0, 2000.0))
        self.mag = _Sensor(config=bytes((MOD_MAG, 0x03, 0)))
        self.fusion = _Sensor(config=fusion_config_command("sleep"))
        self.fusion_mask = 0
        self.processors: dict[int, tuple[str, str]] = {}
        self.proc_subscribed: set[int] = set()
        self.proc_notify = False
        self._counts: dict[int, int] = {}
        self.ignored_writes: list[bytes] = []

    # -- configuration as the firmware sees it
    @property
    def acc_rate_hz(self) -> float:
        code = self.acc.config[2] & 0x0F if self.acc.config else 8
        return {v: k for k, v in ODR_CODES.items()}.get(code, 100.0)

    @property
    def acc_range_g(self) -> float:
        table = ACC_RANGE_BITS_BMI160 if self.imu == "bmi160" else ACC_RANGE_INDEX
        return {v: k for k, v in table.items()}.get(self.acc.config[3] if self.acc.config else -1, 2.0)

    @property
    def gyro_range_dps(self) -> float:
        return {v: k for k, v in GYRO_RANGE_INDEX.items()}.get(
            self.gyro.config[3] if self.gyro.config else -1, 2000.0
        )

    def _live(self, s: _Sensor) -> bool:
        return s.enabled and s.running

    @property
    def streaming(self) -> bool:
        sensors = any(self._live(s) and s.subscribed for s in (self.acc, self.gyro, self.mag))
        procs = (
            self.proc_notify
            and bool(self.proc_subscribed)
            and (self._live(self.acc) or self._live(self.gyro))
        )
        fusion = self.fusion.running and bool(self.fusion.subscribed)
        return sensors or procs or fusion

    @property
    def config(self) -> StreamConfig | None:
        if not self.streaming:
            return None
        return StreamConfig(
            rate_hz=self.acc_rate_hz,
            acc_range_g=self.acc_range_g,
            gyro_range_dps=self.gyro_range_dps,
            mag=self._live(self.mag),
        )

    def handle_write(self, char_uuid: str, data: bytes) -> list[tuple[str, bytes]]:
        d = bytes(data)
        if char_uuid.lower() != COMMAND_UUID or len(d) < 2:
            self.ignored_writes.append(d)
            return []
        mod, reg = d[0], d[1]
        if reg == 0x80:
            impl = {MOD_ACC: IMU_IMPLEMENTATION[self.imu], MOD_GYRO: 1 if self.imu == "bmi160" else 2}.get(
                mod, 0
            )
            return [(NOTIFY_UUID, bytes((mod, 0x80, impl, 1)))]
        sensors = {MOD_ACC: self.acc, MOD_GYRO: self.gyro, MOD_MAG: self.mag, MOD_FUSION: self.fusion}
        if mod in sensors:
            s = sensors[mod]
            if reg == 0x01 and len(d) == 3:
                s.running = d[2] == 1
            elif reg == 0x02 and len(d) == 4 and mod != MOD_FUSION:
                s.enabled = d[2] == 1 and d[3] == 0
            elif reg == 0x02 and len(d) == 4:
                s.config = d
            elif reg == 0x03 and mod == MOD_FUSION and len(d) == 4:
                self.fusion_mask = (self.fusion_mask | d[2]) & ~d[3]
            elif reg == 0x03 and len(d) in (3, 4):
                s.config = d
            elif reg == 0x04 and mod == MOD_MAG and len(d) == 4:
                pass  # repetitions: no effect on the data path
            elif len(d) == 3 and reg in self._data_registers(mod):
                (s.subscribed.add if d[2] == 1 else s.subscribed.discard)(reg)
            else:
                self.ignored_writes.append(d)
            return []
        if mod == MOD_DATAPROC:
            if reg == 0x02 and len(d) >= 9 and d[6] == ACCOUNTER_TYPE:
                src = {MOD_ACC: "acc", MOD_GYRO: "gyro", MOD_MAG: "mag"}.get(d[2])
                if src is None:
                    self.ignored_writes.append(d)
                    return []
                pid = next(i for i in range(256) if i not in self.processors)
                self.processors[pid] = (src, ACCOUNTER_MODES.get(d[7], "time"))
                return [(NOTIFY_UUID, bytes((MOD_DATAPROC, 0x02, pid)))]
            if reg == 0x07 and len(d) == 4:
                (self.proc_subscribed.add if d[3] == 1 else self.proc_subscribed.discard)(d[2])
                return []
            if reg == 0x03 and len(d) == 3:
                self.proc_notify = d[2] == 1
                return []
        self.ignored_writes.append(d)
        return []

    def _data_registers(self, mod: int) -> set[int]:
        if mod == MOD_ACC:
            return {ACC_DATA, ACC_PACKED[self.imu]}
        if mod == MOD_GYRO:
            return {GYRO_DATA[self.imu], GYRO_PACKED[self.imu]}
        if mod == MOD_MAG:
            return {MAG_DATA, MAG_PACKED}
        return set(FUSION_OUTPUTS)

    def encode(self, batch: ImuBatch) -> list[tuple[str, bytes]]:
        """Samples (device clock, SI) -> notifications, as the firmware batches them."""
        out: list[tuple[str, bytes]] = []
        n = len(batch)
        t = batch.t_s
        if self._live(self.acc):
            acc = batch.acc_mps2 if batch.acc_mps2 is not None else np.zeros((n, 3))
            raw = np.clip(np.round(acc / G_MPS2 * ACC_LSB_PER_G[self.acc_range_g]), -32768, 32767)
            out += self._emit(MOD_ACC, self.acc, ACC_DATA, ACC_PACKED[self.imu], t, raw, "acc")
        if self._live(self.gyro):
            gyr = batch.gyr_rads if batch.gyr_rads is not None else np.zeros((n, 3))
            raw = np.clip(np.round(gyr / _DEG2RAD * GYRO_LSB_PER_DPS[self.gyro_range_dps]), -32768, 32767)
            out += self._emit(MOD_GYRO, self.gyro, GYRO_DATA[self.imu], GYRO_PACKED[self.imu], t, raw, "gyro")
        if self._live(self.mag) and self.mag.subscribed:
            mag = batch.mag_uT if batch.mag_uT is not None else np.broadcast_to([20.0, 0.0, -40.0], (n, 3))
            code = self.mag.config[2] if self.mag.config else 6
            keep = self._decimate(self.mag, t, MAG_ODR_HZ.get(code, DEFAULT_MAG_RATE_HZ))
            raw = np.clip(np.round(mag[keep] * MAG_LSB_PER_UT), -32768, 32767)
            out += self._emit(MOD_MAG, self.mag, MAG_DATA, MAG_PACKED, t[keep], raw, None)
        if self.fusion.running and 0x07 in self.fusion.subscribed and batch.quat_wxyz is not None:
            keep = self._decimate(self.fusion, t, FUSION_RATE_HZ)
            for q in batch.quat_wxyz[keep].astype("<f4"):
                out.append((NOTIFY_UUID, bytes((MOD_FUSION, 0x07)) + q.tobytes()))
        return out

    @staticmethod
    def _decimate(s: _Sensor, t: np.ndarray, rate: float) -> np.ndarray:
        keys = np.floor(t * rate + 1e-6)  # tolerate rounding of times on the grid
        prev = np.concatenate(([s.last_key if s.last_key is not None else -np.inf], keys[:-1]))
        if keys.size:
            s.last_key = float(keys[-1])
        return np.flatnonzero(keys != prev)

    def _emit(
        self, mod: int, s: _Sensor, single: int, packed: int, t: np.ndarray, raw: np.ndarray, src: str | None
    ) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        xyz = raw.astype("<i2")
        if single in s.subscribed:
            head = bytes((mod, single))
            out += [(NOTIFY_UUID, head + row.tobytes()) for row in xyz]
        if packed in s.subscribed:
            pend = np.concatenate([*s.pending, xyz]) if s.pending else xyz
            full = pend.shape[0] // 3
            s.pending = [pend[full * 3 :]]
            head = bytes((mod, packed))
            out += [(NOTIFY_UUID, head + pend[3 * i : 3 * i + 3].tobytes()) for i in range(full)]
        if src is not None and self.proc_notify:
            for pid, (psrc, mode) in self.processors.items():
                if psrc != src or pid not in self.proc_subscribed:
                    continue
                if mode == "time":
                    stamp = (np.round(t / TICK_S).astype(np.int64) % _WRAP).astype("<u4")
                else:
                    start = self._counts.get(pid, 0)
                    stamp = ((start + np.arange(len(t))) % _WRAP).astype("<u4")
                    self._counts[pid] = start + len(t)
                head = bytes((MOD_DATAPROC, 0x03, pid))
                out += [
                    (NOTIFY_UUID, head + a.tobytes() + b.tobytes()) for a, b in zip(stamp, xyz, strict=True)
                ]
        return out


# ---------------------------------------------------------------------------------------------- protocol


class MetaWearProtocol(Protocol):
    """MetaWear / MetaMotion register protocol (raw packed acc + gyro, optional mag).

    Parameters
    ----------
    imu : {"bmi160", "bmi270"}
        BMI160 (MetaMotion R/RL/C, default) or BMI270 (MetaMotion S): the registers differ.
    """

    spec = ProtocolSpec(
        name=NAME,
        title="MbientLab MetaWear / MetaMotion",
        service_uuids=(SERVICE_UUID,),
        notify_uuids=(NOTIFY_UUID,),
        write_uuid=COMMAND_UUID,
        name_patterns=(r"^MetaWear\b", r"^MetaMotion", r"^MMS\b", r"^MMRL?\b", r"^MMC\b"),
        rates_hz=RATES_HZ,
        default_rate_hz=DEFAULT_RATE_HZ,
        has_gyro=True,
        has_mag=True,
        device_clock=False,
        loss_detection="none for plain streams (host time); accounter tick or counter when configured",
        context_keys=("acc_range_g", "gyro_range_dps", "rate_hz", "imu", "accounter"),
        notes=(
            "int16 samples scaled by host-known ranges; packed registers carry 3 samples per 20-byte "
            "notification; writes without response; sensor fusion fixed at 100 Hz."
        ),
        extra={"imu": ("bmi160", "bmi270"), "tick_s": TICK_S},
    )

    def __init__(self, imu: str = "bmi160") -> None:
        self.imu = _check_imu(imu)

    def with_imu(self, imu: str) -> MetaWearProtocol:
        """The same protocol for another IMU (``bmi270`` for MetaMotion S)."""
        return MetaWearProtocol(imu)

    def _ranges(self, config: StreamConfig) -> tuple[float, float, float]:
        rate = _nearest(RATES_HZ, config.rate_hz)
        acc = _nearest(
            ACC_LSB_PER_G, config.acc_range_g if config.acc_range_g is not None else DEFAULT_ACC_RANGE_G
        )
        gyr = _nearest(
            GYRO_RANGE_INDEX,
            config.gyro_range_dps if config.gyro_range_dps is not None else DEFAULT_GYRO_RANGE_DPS,
        )
        return rate, acc, gyr

    def start_sequence(self, config: StreamConfig) -> list[GattWrite]:
        rate, acc, gyr = self._ranges(config)
        cmds = [
            acc_config_command(rate, acc, self.imu),
            enable_sampling(MOD_ACC),
            subscribe(MOD_ACC, ACC_PACKED[self.imu]),
            gyro_config_command(rate, gyr),
            enable_sampling(MOD_GYRO),
            subscribe(MOD_GYRO, GYRO_PACKED[self.imu]),
        ]
        if config.mag:
            cmds += mag_config_commands() + [enable_sampling(MOD_MAG), subscribe(MOD_MAG, MAG_PACKED)]
        cmds += [power(MOD_ACC), power(MOD_GYRO)] + ([power(MOD_MAG)] if config.mag else [])
        return [GattWrite(COMMAND_UUID, c, response=False) for c in cmds]

    def accounter_start_sequence(self, config: StreamConfig) -> list[GattWrite]:
        """Start single-sample acc and gyro streams through time-mode accounters (device clock, loss).

        Assumes a board without data processors (ids 0 = acc, 1 = gyro, as the firmware hands them out
        after a reset); a decoder that sees the writes and the ``09 02 <id>`` replies learns the real ids.
        One notification per sample and sensor: keep the rate at or below 100 Hz.
        """
        rate, acc, gyr = self._ranges(config)
        cmds = [
            acc_config_command(rate, acc, self.imu),
            gyro_config_command(rate, gyr),
            accounter_create_command(MOD_ACC, ACC_DATA, "time"),
            accounter_create_command(MOD_GYRO, GYRO_DATA[self.imu], "time"),
            bytes((MOD_DATAPROC, 0x07, 0, 1)),
            bytes((MOD_DATAPROC, 0x07, 1, 1)),
            bytes((MOD_DATAPROC, 0x03, 1)),
            enable_sampling(MOD_ACC),
            enable_sampling(MOD_GYRO),
            power(MOD_ACC),
            power(MOD_GYRO),
        ]
        return [GattWrite(COMMAND_UUID, c, response=False) for c in cmds]

    def stop_sequence(self) -> list[GattWrite]:
        cmds = [
            power(MOD_ACC, False),
            power(MOD_GYRO, False),
            power(MOD_MAG, False),
            enable_sampling(MOD_ACC, False),
            enable_sampling(MOD_GYRO, False),
            enable_sampling(MOD_MAG, False),
            subscribe(MOD_ACC, ACC_PACKED[self.imu], False),
            subscribe(MOD_GYRO, GYRO_PACKED[self.imu], False),
            subscribe(MOD_MAG, MAG_PACKED, False),
        ]
        return [GattWrite(COMMAND_UUID, c, response=False) for c in cmds]

    def decoder(self, **context: Any) -> MetaWearDecoder:
        known = set(self.spec.context_keys)
        unknown = set(context) - known
        if unknown:
            raise ValueError(
                f"{NAME}: unknown decoder context {sorted(unknown)}; known: {', '.join(sorted(known))}"
            )
        context.setdefault("imu", self.imu)
        return MetaWearDecoder(**{k: v for k, v in context.items() if v is not None})

    def peripheral(self, **options: Any) -> MetaWearPeripheral:
        options.setdefault("imu", self.imu)
        return MetaWearPeripheral(**options)


PROTOCOL = MetaWearProtocol()

__all__ = [
    "PROTOCOL",
    "MetaWearProtocol",
    "MetaWearDecoder",
    "MetaWearPeripheral",
    "decode_values",
]
