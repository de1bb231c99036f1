"""``--sensor`` spec strings -> :class:`~pelvimon.sensors.source.Source`.

Syntax::

    emulated:PROTOCOL[?key=value&key=value...]   an emulated sensor (no hardware), e.g.
                                                 emulated:movesense?loss=0.05&disconnect_at=12&cpd_left=8
    ADDRESS_OR_NAME[?protocol=NAME]              a real sensor by address (AA:BB:CC:DD:EE:FF, or a macOS
                                                 UUID) or by advertised name, e.g. "Movesense 223430000123"

Emulated keys (unknown keys are refused with the list of valid ones):

- faults: ``loss`` (0..1), ``burst_every`` (s), ``burst_s`` (s), ``disconnect_at`` (s, comma list),
  ``down_s`` (s), ``stall_at`` (s), ``seed``;
- sensor: ``speed`` (emulation time / real time), ``name``, ``address``, ``battery``, ``rssi``,
  ``drift_ppm``, ``offset_s`` (device clock at start), ``conn_interval_ms``;
- simulator: ``cadence`` (spm), ``cpd_left``, ``cpd_right`` (deg), ``tilt_range``, ``rotation_range`` (deg),
  ``gait`` (run/walk), ``seconds`` (length of the simulated run, repeated), ``sim_seed`` and any other
  :class:`~pelvimon.sensors.simulator.SimParams` field by its full name.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any
from urllib.parse import parse_qsl

from pelvimon.firmware_protocols import registry

from .source import Source, SourceError

FAULT_KEYS = ("loss", "burst_every", "burst_s", "disconnect_at", "down_s", "stall_at", "seed")
SENSOR_KEYS = ("speed", "name", "address", "battery", "rssi", "drift_ppm", "offset_s", "conn_interval_ms")
SIM_ALIASES = {
    "cadence": "cadence_spm",
    "cpd_left": "cpd_left_deg",
    "cpd_right": "cpd_right_deg",
    "tilt_range": "tilt_range_deg",
    "rotation_range": "rotation_range_deg",
    "sim_seed": "seed",
}
HARDWARE_KEYS = ("protocol",)


class SpecError(SourceError):
    """A ``--sensor`` spec that cannot be understood; the message lists what is valid."""


def _sim_fields() -> tuple[str, ...]:
    from .simulator import SimParams

    return tuple(f.name for f in dataclasses.fields(SimParams) if f.name not in ("rate_hz", "seed"))


@dataclasses.dataclass(frozen=True)
class SensorSpec:
    """A parsed ``--sensor`` spec.

    Attributes
    ----------
    kind : {"emulated", "ble"}
    target : str
        Protocol name (emulated) or address / name (ble).
    options : dict
        The query parameters, converted (floats, ints, tuples).
    """

    kind: str
    target: str
    options: dict[str, Any]


def _number(key: str, value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise SpecError(f"--sensor: {key}={value!r} is not a number") from None
    if not math.isfinite(x):
        raise SpecError(f"--sensor: {key}={value!r} must be a finite number")
    return x


def _integer(key: str, value: str) -> int:
    x = _number(key, value)
    if not x.is_integer():
        raise SpecError(f"--sensor: {key}={value!r} must be a whole number")
    if key in ("seed", "sim_seed") and x < 0:
        raise SpecError(f"--sensor: {key}={value!r} must be a whole number >= 0")
    return int(x)


def parse_spec(spec: str) -> SensorSpec:
    """Parse a ``--sensor`` string (see the module docstring); :class:`SpecError` on anything wrong."""
    text = spec.strip()
    if not text:
        raise SpecError("--sensor is empty: give emulated:PROTOCOL or a sensor address or name")
    head, _, query = text.partition("?")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise SpecError(f"--sensor: cannot read the options {query!r}; write key=value&key=value") from None
    if head.lower().startswith("emulated:") or head.lower() == "emulated":
        proto = head.partition(":")[2].strip().lower()
        known = registry.available()
        if not proto:
            raise SpecError(
                f"--sensor {spec.strip()!r} names no emulated protocol; write emulated:PROTOCOL with PROTOCOL "
                f"one of: {', '.join(known)}"
            )
        if proto not in known:
            raise SpecError(f"--sensor: unknown emulated protocol {proto!r}; available: {', '.join(known)}")
        sim_fields = _sim_fields()
        valid = (*FAULT_KEYS, *SENSOR_KEYS, *SIM_ALIASES, *sim_fields)
        opts: dict[str, Any] = {}
        for key, value in pairs:
            if key not in valid:
                raise SpecError(
                    f"--sensor: unknown option {key!r} for an emulated sensor; valid: {', '.join(sorted(set(valid)))}"
                )
            if key == "disconnect_at":
                opts[key] = tuple(_number(key, v) for v in value.split(",") if v.strip())
            elif key in ("name", "address", "gait", "first_side"):
                opts[key] = value
            elif key in ("seed", "sim_seed", "battery", "rssi", "ramp_steps"):
                opts[key] = _integer(key, value)
            elif key in ("errors", "variability"):
                opts[key] = value.lower() not in ("0", "false", "no", "off")
            elif key == "mount_euler_deg":
                parts = tuple(_number(key, v) for v in value.split(","))
                if len(parts) != 3:
                    raise SpecError("--sensor: mount_euler_deg needs three comma-separated angles (deg)")
                opts[key] = parts
            else:
                opts[key] = _number(key, value)
        return SensorSpec("emulated", proto, opts)
    if ":" not in head and head.lower() in {"emulated", "sim", "simulator"}:
        raise SpecError("--sensor: write emulated:PROTOCOL, e.g. emulated:movesense")
    opts = {}
    for key, value in pairs:
        if key not in HARDWARE_KEYS:
            raise SpecError(f"--sensor: unknown option {key!r} for a Bluetooth sensor; valid: protocol")
        known = registry.available()
        if value not in known:
            raise SpecError(f"--sensor: unknown protocol {value!r}; available: {', '.join(known)}")
        opts[key] = value
    return SensorSpec("ble", head, opts)


def build_emulated(spec: SensorSpec, rate_hz: float | None = None) -> tuple[Any, Any]:
    """The emulated world and sensor of an ``emulated:`` spec (sample run prepared, clock at 0)."""
    from .emulated import EmulatedSensor, EmulatedWorld, Faults

    o = dict(spec.options)
    try:
        faults = Faults(**{k: o.pop(k) for k in FAULT_KEYS if k in o})
    except ValueError as exc:
        raise SpecError(f"--sensor: {exc}") from exc
    speed = o.pop("speed", 1.0)
    if not speed > 0:
        raise SpecError(f"--sensor: speed must be > 0, got {speed}")
    kw: dict[str, Any] = {}
    for key, arg in (("name", "name"), ("address", "address"), ("battery", "battery_pct"), ("rssi", "rssi")):
        if key in o:
            kw[arg] = o.pop(key)
    if "drift_ppm" in o:
        kw["drift"] = o.pop("drift_ppm") * 1e-6
    if "offset_s" in o:
        kw["device_offset_s"] = o.pop("offset_s")
    if "conn_interval_ms" in o:
        kw["conn_interval_s"] = o.pop("conn_interval_ms") / 1000.0
    sim = {SIM_ALIASES.get(k, k): v for k, v in o.items()}
    try:
        sensor = EmulatedSensor(spec.target, sim=sim, faults=faults, **kw)
        world = EmulatedWorld([sensor], speed=speed)
        sensor.prepare(rate_hz)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"--sensor: {exc}") from exc
    world.clock.restart()
    return world, sensor


def open_source(spec: str, rate_hz: float | None = None, **kwargs: Any) -> Source:
    """A :class:`Source` for a ``--sensor`` spec (not opened yet: use ``async with``).

    Parameters
    ----------
    spec : str
        ``emulated:PROTOCOL[?...]`` or ``ADDRESS_OR_NAME[?protocol=...]``.
    rate_hz : float, optional
        Requested sample rate (nearest supported; default the protocol's).
    **kwargs
        More :class:`~pelvimon.sensors.ble.BleSource` options (``acc_range_g``, ``give_up_s``,
        ``client_backend``...).

    Raises
    ------
    SpecError
        The spec is malformed (one clear line listing what is valid).
    """
    from .ble import BleSource

    parsed = parse_spec(spec)
    if parsed.kind == "emulated":
        from .emulated import EmulatedBleakClient, EmulatedBleakScanner

        world, sensor = build_emulated(parsed, rate_hz)
        src = BleSource(
            sensor.address,
            protocol=parsed.target,
            rate_hz=rate_hz,
            client_backend=EmulatedBleakClient,
            scanner_backend=EmulatedBleakScanner,
            backend_kwargs={"world": world},
            timebase=world.clock,
            **kwargs,
        )
        src.emulated_sensor = sensor  # type: ignore[attr-defined]
        return src
    return BleSource(parsed.target, protocol=parsed.options.get("protocol"), rate_hz=rate_hz, **kwargs)
