"""The one ``Source`` interface: where samples come from.

BLE sensors, emulated sensors, the simulator, CSV import and session replay all implement ``Source``.
Everything downstream takes a ``Source`` and never builds one (sources are built from a spec string in
``pelvimon.sensors.open_source`` or by the CLI).

A ``Source`` is an async context manager and an async iterator of events::

    async with source:
        async for event in source:
            match event:
                case ImuBatch(): ...          # decoded samples on session time
                case RawNotification(): ...   # the bytes as received (BLE, emulated, replay only)
                case SourceStatus(): ...      # connected, disconnected, gap, calibration prompt...
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

from pelvimon.firmware_protocols.batch import ImuBatch


@dataclass(frozen=True)
class RawNotification:
    """One BLE notification as received.

    Attributes
    ----------
    t_host_s : float
        Host receive time, seconds since the session started (monotonic clock). It is kept on a whole
        number of nanoseconds (rounded on construction), so that a session file, which stores integer
        nanoseconds, gives back the very same float at replay and decoders see identical inputs.
    char_uuid : str
        The characteristic it came from (lower-case UUID string).
    data : bytes
        The notification payload, unchanged.
    """

    t_host_s: float
    char_uuid: str
    data: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "t_host_s", round(float(self.t_host_s) * 1e9) / 1e9)
        object.__setattr__(self, "char_uuid", self.char_uuid.lower())
        object.__setattr__(self, "data", bytes(self.data))

    @property
    def t_host_ns(self) -> int:
        """Host receive time in integer nanoseconds since the session started."""
        return round(self.t_host_s * 1e9)


StatusKind = Literal["connecting", "connected", "disconnected", "reconnecting", "gap", "stopped", "info", "warning"]
"""``warning``: the analysis found something wrong with the stream (the sensor turned on the body)."""


@dataclass(frozen=True)
class SourceStatus:
    """Something that happened to the stream, with its session time and a human-readable message."""

    kind: StatusKind
    t_s: float
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


SourceEvent = ImuBatch | RawNotification | SourceStatus


def is_hole(step_s: float, rate_hz: float, resolution_s: float = 0.0) -> bool:
    """Whether ``step_s`` between two successive samples leaves samples out: more than 1.5 periods, or more
    than a period plus ``resolution_s``, the step of the time stamps (their difference may be off by up to
    that much: Movesense stamps whole ms, more than a period at 1666 Hz)."""
    return step_s > 1.0 / rate_hz + max(0.5 / rate_hz, resolution_s)


def samples_missing(step_s: float, rate_hz: float) -> int:
    """Samples missing between two samples ``step_s`` apart at ``rate_hz`` (0 for a step of one period)."""
    return max(int(round(step_s * rate_hz)) - 1, 0)


def gap_status(t_s: float, n_lost: int, message: str, *, estimated: bool, **details: Any) -> SourceStatus:
    """The ``gap`` status: the session time after the gap, the samples lost and whether that is an estimate
    (``details``: what else the source knows, e.g. the session reader's ``file_damage``)."""
    return SourceStatus("gap", t_s, message, {"n_lost": int(n_lost), "t_s": t_s, "estimated": estimated, **details})


@dataclass(frozen=True)
class SourceInfo:
    """What a source says about itself once opened.

    Attributes
    ----------
    name : str
        Human-readable name (device name, file name, "simulator").
    protocol : str
        Wire protocol name (``movesense``, ``polar_pmd``, ...) or ``simulator`` / ``csv``.
    rate_hz : float
        Nominal sample rate.
    has_gyro : bool
        Whether batches carry ``gyr_rads``.
    address : str
        BLE address or path, where there is one.
    metadata : dict
        Anything else worth recording (firmware version, ranges, serial number, battery).
    """

    name: str
    protocol: str
    rate_hz: float
    has_gyro: bool = True
    address: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


class Source(abc.ABC):
    """Base class of every sample source (see module docstring)."""

    info: SourceInfo

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect or open files; fill ``self.info``."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Stop streaming and release everything; safe to call twice."""

    @abc.abstractmethod
    def events(self) -> AsyncIterator[SourceEvent]:
        """Yield events until the source ends or is closed."""

    def now_s(self) -> float | None:
        """The session time now, s, for a source that streams in time (a sensor): a time limit then ends
        the session on time even while no event comes (the link is down). None: the time is the events'
        (files)."""
        return None

    def __aiter__(self) -> AsyncIterator[SourceEvent]:
        return self.events()


class SessionFileError(ValueError):
    """A session file cannot be opened at all (not MCAP, not a pelvimon session, unreadable). Raised by
    :mod:`.session_file` (and importable from there); defined here so that code which only catches it need
    not import the session reader and its MCAP libraries."""


class SourceError(RuntimeError):
    """A source could not be opened or broke in a way the user must act on; the message says how."""
