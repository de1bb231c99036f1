"""What every protocol module provides, and the errors decoders raise.

A protocol module (``movesense``, ``polar_pmd``, ``metawear``, ``witmotion``, ``movella_dot``,
``pelvimon_ref``) defines one subclass of :class:`Protocol` and registers it in ``registry.py``. The
pieces:

- :class:`ProtocolSpec`: UUIDs, advertising hints, rates, what the sensor offers.
- :meth:`Protocol.start_sequence` / :meth:`Protocol.stop_sequence`: the GATT writes a client makes,
  byte-exact, in order (subscribe to the notify characteristics first, then write).
- :class:`Decoder`: client side, stateful per connection, notification payloads -> ``ImuBatch``\\ es in SI
  units on the device clock (reassembly of multi-part payloads, clock unwrap, loss detection).
- :class:`PeripheralModel`: device side, for emulated sensors: parses the client's writes, answers them
  as the real firmware does, and encodes samples into the real notification bytes.

Decoders never return empty data silently for bad input: they raise :class:`MalformedFrameError` or
:class:`UnsupportedFrameError`. Waiting for the second part of a split payload is not an error; the
decoder returns ``[]`` and keeps the part.
"""

from __future__ import annotations

import abc
import sys
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .batch import ImuBatch


class ProtocolError(ValueError):
    """Bytes that a protocol cannot accept. The message names the protocol, the frame and what was expected."""

    def __init__(self, protocol: str, frame: str, problem: str) -> None:
        self.protocol = protocol
        self.frame = frame
        self.problem = problem
        super().__init__(f"{protocol}: {frame}: {problem}")


class MalformedFrameError(ProtocolError):
    """The bytes do not follow the protocol (wrong length, bad magic, truncated block...)."""


class UnsupportedFrameError(ProtocolError):
    """The bytes are a valid frame of a kind pelvimon does not decode (another measurement type...)."""


PLAUSIBLE_LIMITS: dict[str, float] = {
    "mps2": 5000.0,  # about 500 g: beyond every accelerometer's range
    "g": 510.0,
    "dps": 20000.0,  # beyond every gyroscope's range (the widest are 4000-5000 deg/s)
    "rads": 350.0,
    "uT": 10000.0,  # the earth's field is 25-65 µT; sensors saturate at a few thousand
    "wxyz": 1.01,  # unit quaternion components
    "deg": 720.0,  # Euler angles
}
"""Largest magnitude a real sensor reports per unit (the suffix of the value's name, e.g. ``acc_mps2``):
a float beyond it is a corrupted frame (a flipped exponent bit), not a measurement."""


def check_values(protocol: str, frame: str, key: str, values: np.ndarray) -> np.ndarray:
    """``values`` if finite and within :data:`PLAUSIBLE_LIMITS` of the unit ``key`` ends with; else
    :class:`MalformedFrameError` naming the quantity.

    On the decode path of every notification: two reductions and no temporary array while the values are
    good (a NaN fails both comparisons, an infinity the float limit); the cause is worked out on failure."""
    if not values.size:
        return values
    limit = PLAUSIBLE_LIMITS.get(key.rsplit("_", 1)[-1], sys.float_info.max)
    if -limit <= float(values.min()) and float(values.max()) <= limit:
        return values
    if not np.isfinite(values).all():
        raise MalformedFrameError(protocol, frame, f"non-finite {key} value (NaN or infinity)")
    raise MalformedFrameError(
        protocol, frame, f"{key} value {float(np.max(np.abs(values))):.3g} beyond any sensor's range ({limit:g})"
    )


def as_float64(values: np.ndarray) -> np.ndarray:
    """Float32 values read from a payload, as float64. A signalling NaN, which numpy warns about as it is cast
    ("invalid value encountered in cast"), stays a NaN for :func:`check_values` to refuse in its words."""
    with np.errstate(invalid="ignore"):
        return values.astype(np.float64)


@dataclass(frozen=True)
class GattWrite:
    """One write to a characteristic."""

    char_uuid: str
    data: bytes
    response: bool = True


@dataclass(frozen=True)
class StreamConfig:
    """What the client asks the sensor to stream.

    Attributes
    ----------
    rate_hz : float
        Requested sample rate; protocols pick the nearest supported rate and say so in their spec.
    acc_range_g : float or None
        Accelerometer full scale, ±g (None: the protocol's default).
    gyro_range_dps : float or None
        Gyroscope full scale, ±deg/s (None: the protocol's default).
    mag : bool
        Also stream the magnetometer where the sensor has one.
    """

    rate_hz: float
    acc_range_g: float | None = None
    gyro_range_dps: float | None = None
    mag: bool = False


@dataclass(frozen=True)
class ProtocolSpec:
    """Static facts about a protocol (see docs/sensors.md for the table built from these).

    UUIDs are lower-case strings. ``name_patterns`` are regular expressions matched against the
    advertised local name; ``service_uuids`` are matched against advertised service UUIDs.
    """

    name: str
    title: str
    service_uuids: tuple[str, ...]
    notify_uuids: tuple[str, ...]
    write_uuid: str | None
    name_patterns: tuple[str, ...]
    rates_hz: tuple[float, ...]
    default_rate_hz: float
    has_gyro: bool
    has_mag: bool
    device_clock: bool
    loss_detection: str
    context_keys: tuple[str, ...] = ()
    timestamp_resolution_s: float = 0.0
    """Step of the device timestamps, s (0: as fine as the samples need). Two device times may differ
    from the true interval by up to this much, e.g. Movesense's whole milliseconds at 1666 Hz."""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


ARRIVAL_AHEAD_S = 2.0
"""How far ahead of its arrival a notification's device time may be, beyond the promptest one's, s."""
ARRIVAL_BEHIND_S = 60.0
"""How far behind its arrival a notification's device time may be, beyond the promptest one's, s (a
connection delivers within its supervision timeout, at most 32 s)."""
ARRIVAL_REFUSALS = 3
"""Refusals in a row after which the device's stamps are believed again (its clock jumped)."""


def _lead(t_device_s: float, t_host_s: float | None) -> float | None:
    """Device time minus receive time, s; None without a receive time (or with a time that is not finite)."""
    if t_host_s is None or not np.isfinite(t_host_s) or not np.isfinite(t_device_s):
        return None
    return float(t_device_s) - float(t_host_s)


class ArrivalCheck:
    """Whether a notification's device time stamp fits its arrival (the host's receive time).

    Samples arrive after they were taken: device time minus receive time is at most what it was for the
    promptest notification so far (the clock offset; it follows a device clock that runs fast). A stamp
    more than :data:`ARRIVAL_AHEAD_S` ahead of that, or :data:`ARRIVAL_BEHIND_S` behind it, is damaged: one
    flipped bit of a Movesense millisecond stamp made a session 12 days long, with 223 million samples
    counted lost, and one of a DOT stamp refused the next 8 s of good notifications as "not after the previous
    one". A decoder asks before it keeps anything of the stamp (:meth:`refusal`), tells once it has kept it
    (:meth:`accept`), and refuses the notification otherwise (:class:`MalformedFrameError`; its samples are
    counted lost with the next one's gap); after
    :data:`ARRIVAL_REFUSALS` refusals in a row the stamps are believed again. Without a receive time (one
    notification decoded alone) nothing is checked.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._lead: float | None = None
        self._refused = 0

    def refusal(self, t_device_s: float, t_host_s: float | None) -> str | None:
        """None if the stamp fits (call :meth:`accept` once the decoder keeps it), else why not (a refusal in a
        row more)."""
        lead = _lead(t_device_s, t_host_s)
        if lead is not None and self._lead is not None and self._refused < ARRIVAL_REFUSALS:
            if lead > self._lead + ARRIVAL_AHEAD_S:
                self._refused += 1
                return (f"its device time stamp is {lead - self._lead:.4g} s ahead of its arrival (a damaged stamp); "
                        "its samples are dropped")
            if lead < self._lead - ARRIVAL_BEHIND_S:
                self._refused += 1
                return (f"its device time stamp is {self._lead - lead:.4g} s behind its arrival (a damaged stamp); "
                        "its samples are dropped")
        return None

    def accept(self, t_device_s: float, t_host_s: float | None) -> None:
        """The decoder kept the stamp: it joins the offset (anew after :data:`ARRIVAL_REFUSALS` refusals)."""
        lead = _lead(t_device_s, t_host_s)
        if lead is None:
            return
        anew = self._lead is None or self._refused >= ARRIVAL_REFUSALS  # (a clock that jumped: its new offset)
        self._lead = lead if self._lead is None or anew else max(self._lead, lead)
        self._refused = 0


class Decoder(abc.ABC):
    """Client-side decoder for one connection (stateful: partial payloads, previous timestamps, wraps)."""

    protocol: ClassVar[str]

    @abc.abstractmethod
    def feed(self, char_uuid: str, payload: bytes, t_host_s: float | None = None) -> list[ImuBatch]:
        """Decode one notification.

        Parameters
        ----------
        char_uuid : str
            Characteristic the notification came from (lower-case UUID).
        payload : bytes
            The notification value.
        t_host_s : float, optional
            Host receive time in s; protocols without a device clock time their samples from it
            (``time_base="host"``).

        Returns
        -------
        list of ImuBatch
            Zero or more batches, one per stream present (acc, gyro... may come separately; see
            ``merge.ImuMerger``). ``[]`` only when the payload is a valid part of something not complete
            yet, or a control message that carries no samples.

        Raises
        ------
        MalformedFrameError, UnsupportedFrameError
        """

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Forget partial payloads and previous timestamps (after a reconnect or a stop)."""

    def assumed_context(self) -> dict[str, Any]:
        """Context values in use that no parameter default shows (a parameter that defaults to None and then
        takes a value): what the bytes are read with although they do not say it. Empty by default."""
        return {}

    @property
    def pending_bytes(self) -> int:
        """Bytes held for the next notification: the start of a payload that is not complete yet (0 for
        protocols whose notifications are whole)."""
        return 0


class PeripheralModel(abc.ABC):
    """Device side of a protocol, for emulated sensors: command handling and the data path encoder."""

    @property
    @abc.abstractmethod
    def streaming(self) -> bool:
        """Whether the client has started a stream that is still running."""

    @property
    @abc.abstractmethod
    def config(self) -> StreamConfig | None:
        """The stream configuration the client asked for (None before a start command)."""

    @abc.abstractmethod
    def handle_write(self, char_uuid: str, data: bytes) -> list[tuple[str, bytes]]:
        """Apply one client write; return the notifications the device sends in answer (char, bytes)."""

    @abc.abstractmethod
    def encode(self, batch: ImuBatch) -> list[tuple[str, bytes]]:
        """Samples (device clock, SI units) -> notifications (char, bytes) exactly as the device sends them.

        The peripheral keeps its own counters and partial notifications: samples that do not fill a
        notification yet are kept for the next call.
        """


class Protocol(abc.ABC):
    """One sensor firmware's protocol: spec, client command sequences, decoder and peripheral model."""

    spec: ClassVar[ProtocolSpec]

    @abc.abstractmethod
    def start_sequence(self, config: StreamConfig) -> list[GattWrite]:
        """Writes that start streaming (after subscribing to ``spec.notify_uuids``)."""

    @abc.abstractmethod
    def stop_sequence(self) -> list[GattWrite]:
        """Writes that stop streaming cleanly."""

    @abc.abstractmethod
    def decoder(self, **context: Any) -> Decoder:
        """A new decoder; ``context`` holds what is not in the bytes (see ``spec.context_keys``)."""

    @abc.abstractmethod
    def peripheral(self, **options: Any) -> PeripheralModel:
        """A new device-side model for emulation."""
