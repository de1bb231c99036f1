"""Session files: an append-only MCAP recording of everything a session saw.

Layout (documented for users in docs/session_files.md):

- Metadata record ``pelvimon.session`` written first: format version, pelvimon version, session start
  (UTC), and the source description (protocol, name, address, rate, decoder context, stream config).
- Channel ``/ble/<char_uuid>`` (one per characteristic, encoding ``application/octet-stream``, no schema):
  every raw notification, the message data being the notification bytes unchanged; ``log_time`` is the
  host receive time (session start + whole nanoseconds).
- ``/imu`` (JSON): decoded samples, one message per ``ImuBatch`` on session time.
- ``/status`` (JSON): connection events, gaps, reconnects, prompts.
- ``/steps``, ``/alerts``, ``/calibration``, ``/device`` (JSON): analysis results and device metadata.

Crash safety: chunks are closed and the file flushed (and fsynced) at least once per ``flush_interval_s``
of host time, so a crash or SIGKILL loses at most the last interval; a file without its summary section
(the writer never finished) is read sequentially up to the damage, with a warning.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from mcap.records import Channel, Message, Metadata
from mcap.stream_reader import StreamReader
from mcap.writer import CompressionType, Writer

from pelvimon import __version__
from pelvimon.dsp.records import Alert, Step
from pelvimon.firmware_protocols.batch import ImuBatch

from .source import RawNotification, SourceInfo, SourceStatus

log = logging.getLogger(__name__)

FORMAT = "pelvimon-session"
FORMAT_VERSION = 1
RAW_ENCODING = "application/octet-stream"

_TOPIC_IMU = "/imu"
_TOPIC_STATUS = "/status"
_TOPIC_STEPS = "/steps"
_TOPIC_ALERTS = "/alerts"
_TOPIC_CALIBRATION = "/calibration"
_TOPIC_DEVICE = "/device"
_RAW_PREFIX = "/ble/"

_IMU_SCHEMA = {
    "title": "pelvimon.ImuBatch",
    "type": "object",
    "properties": {
        "t_s": {"type": "array", "items": {"type": "number"}, "description": "session time, s"},
        "acc_mps2": {"type": ["array", "null"], "description": "specific force, m/s^2, sensor frame, N x 3"},
        "gyr_rads": {"type": ["array", "null"], "description": "angular rate, rad/s, sensor frame, N x 3"},
        "mag_uT": {"type": ["array", "null"], "description": "magnetic field, uT, N x 3"},
        "quat_wxyz": {"type": ["array", "null"], "description": "on-board orientation, N x 4, scalar first"},
        "seq": {"type": ["array", "null"]},
        "gap_before": {"type": "boolean"},
        "n_lost": {"type": "integer"},
        "time_base": {"type": "string"},
    },
}


class SessionFileError(ValueError):
    """A session file cannot be opened at all (not MCAP, not a pelvimon session, unreadable)."""


def _finite_or_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _nan_if_none(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _json(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


@dataclass
class SessionHeader:
    """What the ``pelvimon.session`` metadata record holds."""

    start_unix_ns: int
    source: SourceInfo
    pelvimon_version: str = __version__
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_metadata(self) -> dict[str, str]:
        return {
            "format": FORMAT,
            "format_version": str(self.format_version),
            "pelvimon_version": self.pelvimon_version,
            "start_unix_ns": str(self.start_unix_ns),
            "source": json.dumps(asdict(self.source), default=str),
            "extra": json.dumps(self.extra, default=str),
        }

    @classmethod
    def from_metadata(cls, md: dict[str, str]) -> SessionHeader:
        if md.get("format") != FORMAT:
            raise SessionFileError("not a pelvimon session (its first metadata record is not pelvimon.session)")
        src = json.loads(md["source"])
        return cls(
            start_unix_ns=int(md["start_unix_ns"]),
            source=SourceInfo(**src),
            pelvimon_version=md.get("pelvimon_version", ""),
            format_version=int(md.get("format_version", "1")),
            extra=json.loads(md.get("extra", "{}")),
        )


class SessionWriter:
    """Append-only writer of one session file.

    Parameters
    ----------
    path : str or Path
        File to create (an existing file is refused unless ``overwrite``).
    source : SourceInfo
        Description of the source, written first.
    start_unix_ns : int, optional
        Wall-clock time of session time 0 (defaults to now).
    flush_interval_s : float
        Longest host time between two flushes to disk (each closes an MCAP chunk).
    overwrite : bool
        Replace an existing file.
    """

    def __init__(
        self,
        path: str | Path,
        source: SourceInfo,
        *,
        start_unix_ns: int | None = None,
        flush_interval_s: float = 1.0,
        overwrite: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path} exists already; choose another name (nothing was written)")
        self.header = SessionHeader(
            start_unix_ns=time.time_ns() if start_unix_ns is None else int(start_unix_ns),
            source=source,
            extra=dict(extra or {}),
        )
        self.flush_interval_s = float(flush_interval_s)
        self._file: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._writer = Writer(self._file, chunk_size=256 * 1024, compression=CompressionType.ZSTD)
        self._writer.start(profile="", library=f"pelvimon/{__version__}")
        self._writer.add_metadata("pelvimon.session", self.header.to_metadata())
        self._channels: dict[str, int] = {}
        self._seq: dict[int, int] = {}
        self._json_schema = self._writer.register_schema(
            "pelvimon.ImuBatch", "jsonschema", json.dumps(_IMU_SCHEMA).encode()
        )
        self._last_flush = time.monotonic()
        self._last_t_ns = 0
        self.n_messages = 0
        self.closed = False
        self.flush()

    # -- channels -------------------------------------------------------------------------------------
    def _channel(self, topic: str, encoding: str, schema_id: int = 0, meta: dict[str, str] | None = None) -> int:
        cid = self._channels.get(topic)
        if cid is None:
            cid = self._writer.register_channel(topic, encoding, schema_id, meta or {})
            self._channels[topic] = cid
            self._seq[cid] = 0
        return cid

    def _add(self, cid: int, t_ns: int, data: bytes) -> None:
        if self.closed:
            raise SessionFileError(f"{self.path}: the session file is closed")
        t_ns = max(int(t_ns), 0)
        self._last_t_ns = max(self._last_t_ns, t_ns)
        log_time = self.header.start_unix_ns + t_ns
        self._writer.add_message(cid, log_time=log_time, data=data, publish_time=log_time, sequence=self._seq[cid])
        self._seq[cid] += 1
        self.n_messages += 1
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    @staticmethod
    def _t_ns(t_s: float) -> int:
        return round(t_s * 1e9) if math.isfinite(t_s) else 0

    # -- writers ---------------------------------------------------------------------------------------
    def write_raw(self, raw: RawNotification) -> None:
        """Store one notification's bytes unchanged, at its host receive time."""
        cid = self._channel(_RAW_PREFIX + raw.char_uuid, RAW_ENCODING, 0, {"char_uuid": raw.char_uuid})
        self._add(cid, raw.t_host_ns, raw.data)

    def write_batch(self, batch: ImuBatch) -> None:
        """Store decoded samples (time of the message: the batch's last sample)."""
        if len(batch) == 0:
            return

        def rows(a: np.ndarray | None) -> Any:
            return None if a is None else a.tolist()

        msg = {
            "t_s": batch.t_s.tolist(),
            "acc_mps2": rows(batch.acc_mps2),
            "gyr_rads": rows(batch.gyr_rads),
            "mag_uT": rows(batch.mag_uT),
            "quat_wxyz": rows(batch.quat_wxyz),
            "seq": rows(batch.seq),
            "gap_before": bool(batch.gap_before),
            "n_lost": int(batch.n_lost),
            "time_base": batch.time_base,
        }
        cid = self._channel(_TOPIC_IMU, "json", self._json_schema)
        self._add(cid, self._t_ns(float(batch.t_s[-1])), json.dumps(msg, separators=(",", ":")).encode())

    def write_status(self, status: SourceStatus) -> None:
        cid = self._channel(_TOPIC_STATUS, "json")
        body = {"kind": status.kind, "t_s": status.t_s, "message": status.message, "details": status.details}
        self._add(cid, self._t_ns(status.t_s), json.dumps(body, default=str).encode())

    def write_step(self, step: Step) -> None:
        cid = self._channel(_TOPIC_STEPS, "json")
        body = {k: _finite_or_none(v) for k, v in step.to_dict().items()}
        self._add(cid, self._t_ns(step.t_ic_s), _json(body))

    def write_alert(self, alert: Alert) -> None:
        cid = self._channel(_TOPIC_ALERTS, "json")
        body = {k: _finite_or_none(v) for k, v in alert.to_dict().items()}
        t = alert.t_end_s if alert.t_end_s is not None else alert.t_start_s
        self._add(cid, self._t_ns(t), _json(body))

    def write_calibration(self, t_s: float, calibration: dict[str, Any]) -> None:
        cid = self._channel(_TOPIC_CALIBRATION, "json")
        self._add(cid, self._t_ns(t_s), json.dumps({"t_s": t_s, **calibration}, default=str).encode())

    def write_device(self, t_s: float, info: dict[str, Any]) -> None:
        """Device metadata learnt during the session (battery, firmware, ...)."""
        cid = self._channel(_TOPIC_DEVICE, "json")
        self._add(cid, self._t_ns(t_s), json.dumps({"t_s": t_s, **info}, default=str).encode())

    # -- lifetime --------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Close the current chunk and push it to disk."""
        if self.closed:
            return
        self._writer.flush()
        self._file.flush()
        try:
            os.fsync(self._file.fileno())
        except OSError:  # pragma: no cover - e.g. a pipe
            pass
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Write the summary section (indexes, statistics) and close the file."""
        if self.closed:
            return
        self._writer.finish()
        self._file.flush()
        self._file.close()
        self.closed = True

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class CalibrationRecord:
    t_s: float
    values: dict[str, Any]


@dataclass(frozen=True)
class DeviceRecord:
    t_s: float
    values: dict[str, Any]


SessionItem = RawNotification | ImuBatch | SourceStatus | Step | Alert | CalibrationRecord | DeviceRecord


def _decode_batch(d: dict[str, Any]) -> ImuBatch:
    def arr(key: str) -> np.ndarray | None:
        v = d.get(key)
        return None if v is None else np.asarray(v, dtype=np.float64)

    seq = d.get("seq")
    return ImuBatch(
        t_s=np.asarray(d["t_s"], dtype=np.float64),
        acc_mps2=arr("acc_mps2"),
        gyr_rads=arr("gyr_rads"),
        mag_uT=arr("mag_uT"),
        quat_wxyz=arr("quat_wxyz"),
        seq=None if seq is None else np.asarray(seq, dtype=np.int64),
        gap_before=bool(d.get("gap_before", False)),
        n_lost=int(d.get("n_lost", 0)),
        time_base=d.get("time_base", "session"),
    )


def _decode_step(d: dict[str, Any]) -> Step:
    kw = dict(d)
    for name in Step.field_names():
        if name not in ("side", "gap") and name in kw:
            kw[name] = _nan_if_none(kw[name])
    return Step(**kw)


def _decode_alert(d: dict[str, Any]) -> Alert:
    return Alert(**d)


class SessionReader:
    """Reads a session file in recorded order, recovering what it can from damaged files.

    Attributes
    ----------
    header : SessionHeader
    complete : bool
        The file ended with its summary section (the recording was closed cleanly).
    damage : str or None
        What stopped reading early (truncation, bad chunk), after ``items()`` ran to its end.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SessionFileError(f"{self.path}: no such session file")
        self.complete = False
        self.damage: str | None = None
        self.header = self._read_header()

    def _records(self) -> Iterator[Any]:
        with open(self.path, "rb") as f:
            reader = StreamReader(f, validate_crcs=True, record_size_limit=256 * 2**20)
            try:
                yield from reader.records
                self.complete = True
            except Exception as exc:  # noqa: BLE001 - any damage (McapError, EOF, zstd, CRC...) ends the reading
                self.damage = f"{type(exc).__name__}: {exc}".strip().rstrip(":")

    def _read_header(self) -> SessionHeader:
        try:
            for rec in self._records():
                if isinstance(rec, Metadata) and rec.name == "pelvimon.session":
                    return SessionHeader.from_metadata(rec.metadata)
                if isinstance(rec, (Message, Channel)):
                    break
        except SessionFileError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise SessionFileError(f"{self.path}: not a readable session file ({exc})") from None
        raise SessionFileError(
            f"{self.path}: not a pelvimon session file (no pelvimon.session record at its start)"
        )

    def items(self) -> Iterator[SessionItem]:
        """Every recorded item in file order. Logs a warning if the file is damaged or unfinished."""
        self.complete = False
        self.damage = None
        channels: dict[int, Channel] = {}
        start = self.header.start_unix_ns
        n = 0
        for rec in self._records():
            if isinstance(rec, Channel):
                channels[rec.id] = rec
                continue
            if not isinstance(rec, Message):
                continue
            ch = channels.get(rec.channel_id)
            if ch is None:
                continue
            try:
                item = self._decode(ch, rec, start)
            except (ValueError, TypeError, KeyError) as exc:
                self.damage = f"message {n} on {ch.topic} cannot be decoded ({exc})"
                break
            if item is not None:
                n += 1
                yield item
        if self.damage is not None or not self.complete:
            why = self.damage or "the file has no summary section (the recording did not finish)"
            log.warning("%s: read %d items; stopped early: %s", self.path, n, why)

    @staticmethod
    def _decode(ch: Channel, rec: Message, start_ns: int) -> SessionItem | None:
        topic = ch.topic
        if topic.startswith(_RAW_PREFIX):
            return RawNotification((rec.log_time - start_ns) / 1e9, ch.metadata.get("char_uuid", topic[5:]), rec.data)
        body = json.loads(rec.data)
        if topic == _TOPIC_IMU:
            return _decode_batch(body)
        if topic == _TOPIC_STATUS:
            return SourceStatus(body["kind"], float(body["t_s"]), body.get("message", ""), body.get("details", {}))
        if topic == _TOPIC_STEPS:
            return _decode_step(body)
        if topic == _TOPIC_ALERTS:
            return _decode_alert(body)
        if topic == _TOPIC_CALIBRATION:
            return CalibrationRecord(float(body.pop("t_s")), body)
        if topic == _TOPIC_DEVICE:
            return DeviceRecord(float(body.pop("t_s")), body)
        return None
