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
(the writer never finished) is read sequentially to its end, with a warning.

Damage: the reader walks the MCAP records itself (``_FileScan``), checks every chunk's CRC, skips a damaged
chunk and goes on with the next one (found by the summary's chunk index, else by searching for the next
self-consistent chunk header), marks the samples after a hole as following a gap, and says in one
warning what it skipped (see ``SessionReader`` and docs/session_files.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import math
import mmap
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import zstandard
from mcap.data_stream import ReadDataStream
from mcap.opcode import Opcode
from mcap.records import Channel, ChunkIndex, Message, Metadata, Schema
from mcap.writer import MCAP0_MAGIC, CompressionType, Writer

from pelvimon import __version__
from pelvimon.dsp.records import Alert, Step
from pelvimon.firmware_protocols.base import check_values
from pelvimon.firmware_protocols.batch import ImuBatch

from .source import (
    RawNotification,
    SessionFileError,
    SourceInfo,
    SourceStatus,
    gap_status,
    is_hole,
    samples_missing,
)

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
        rate = src.get("rate_hz")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or rate <= 0:
            src["rate_hz"] = 0.0  # (not a rate: unknown, as a source that cannot say; the time stamps tell)
        if not isinstance(src.get("metadata", {}), dict):
            src["metadata"] = {}
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

    def write_item(self, item: SessionItem) -> None:
        """Write any item a :class:`SessionReader` gives, as the method of its kind does (a copy of a file)."""
        if isinstance(item, RawNotification):
            self.write_raw(item)
        elif isinstance(item, ImuBatch):
            self.write_batch(item)
        elif isinstance(item, SourceStatus):
            self.write_status(item)
        elif isinstance(item, Step):
            self.write_step(item)
        elif isinstance(item, Alert):
            self.write_alert(item)
        elif isinstance(item, CalibrationRecord):
            self.write_calibration(item.t_s, item.values)
        elif isinstance(item, DeviceRecord):
            self.write_device(item.t_s, item.values)
        else:
            raise TypeError(f"not a session item: {type(item).__name__}")

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


MAX_RECORDED_LOSS = 1 << 31
"""Most samples a recorded batch may say were lost before it (2**31: over 120 days at 200 Hz)."""


def _loss_count(v: Any) -> int:
    """A recorded count of lost samples (a whole number from 0 to :data:`MAX_RECORDED_LOSS`); ValueError for
    anything else."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= MAX_RECORDED_LOSS or v != int(v):
        raise ValueError(f"n_lost {v!r} is not a count of samples")
    return int(v)


def _decode_batch(d: dict[str, Any]) -> ImuBatch:
    """A recorded batch; ValueError for one no recording makes (its message is then left out, counted):
    time stamps that are not finite or do not increase, values beyond any sensor's range, a loss count
    that is not a whole number of samples."""
    def arr(key: str) -> np.ndarray | None:
        v = d.get(key)
        if v is None:
            return None
        a = np.asarray(v, dtype=np.float64)
        if key in ("acc_mps2", "gyr_rads"):
            check_values("session file", "/imu message", key, a)
        return a

    t = np.asarray(d["t_s"], dtype=np.float64)
    if t.ndim != 1 or not np.isfinite(t).all() or (t.size > 1 and not (np.diff(t) > 0).all()):
        raise ValueError("time stamps that are not finite or do not increase")
    n_lost = _loss_count(d.get("n_lost", 0))
    seq = d.get("seq")
    return ImuBatch(
        t_s=t,
        acc_mps2=arr("acc_mps2"),
        gyr_rads=arr("gyr_rads"),
        mag_uT=arr("mag_uT"),
        quat_wxyz=arr("quat_wxyz"),
        seq=None if seq is None else np.asarray(seq, dtype=np.int64),
        gap_before=bool(d.get("gap_before", False)),
        n_lost=n_lost,
        time_base=d.get("time_base", "session"),
    )


def _nan_for_none(d: dict[str, Any], numbers: tuple[str, ...]) -> dict[str, Any]:
    """``d`` with the non-finite numbers the writer stored as null (``_finite_or_none``) back as NaN."""
    return {k: (_nan_if_none(v) if k in numbers else v) for k, v in d.items()}


_STEP_NUMBERS = tuple(n for n in Step.field_names() if n not in ("side", "gap"))
_ALERT_NUMBERS = ("left_value", "right_value", "threshold", "release_threshold", "t_start_s")


def _decode_step(d: dict[str, Any]) -> Step:
    return Step(**_nan_for_none(d, _STEP_NUMBERS))


def _decode_alert(d: dict[str, Any]) -> Alert:
    return Alert(**_nan_for_none(d, _ALERT_NUMBERS))  # (t_end_s: None while active)


# --- reading: a tolerant walk over the MCAP records ------------------------------------------------------

_RECORD_LIMIT = 256 * 2**20
"""Largest record (and uncompressed chunk) the reader accepts, bytes."""
_KNOWN_OPCODES = frozenset(int(op) for op in Opcode)
_COMPRESSIONS = {b"": "", b"zstd": "zstd", b"lz4": "lz4"}
_DAY_NS = 86_400 * 10**9
_DATA_END_SIG = bytes([Opcode.DATA_END]) + struct.pack("<Q", 4)
_FOOTER_SIG = bytes([Opcode.FOOTER]) + struct.pack("<Q", 20)
_SESSION_NAME_SIG = struct.pack("<I", 16) + b"pelvimon.session"
_HEADER_SEARCH_BYTES = 2**20
"""How far from the start of a file the ``pelvimon.session`` record is looked for, bytes."""

FILE_DAMAGE = "file_damage"
"""Key in the ``details`` of the ``gap`` status :meth:`SessionReader.items` inserts where it skipped data."""
_STRAY_MESSAGE = "a message outside any chunk (the recorder writes none there)"
"""Reason of the :class:`SkippedRange` of a message record found outside the chunks: the writer puts every
message into a chunk, whose CRC vouches for it; one outside was not recorded (another program wrote it, or
damaged bytes that happen to look like a record), so it is left out, nothing recorded lost with it."""


class _Unreadable(Exception):
    """Internal: the bytes at a position do not hold a usable record (the message is plain words)."""


@dataclass(frozen=True)
class SkippedRange:
    """A stretch of a session file that :meth:`SessionReader.items` could not use and skipped.

    Attributes
    ----------
    offset : int
        Byte offset of its first byte in the file.
    n_bytes : int
        Its length in bytes.
    n_chunks : int or None
        Damaged chunks (blocks of recorded messages) in it; 0 when it held index records only, or a message
        record outside any chunk (nothing recorded is lost with it); None when the file does not tell.
    reason : str
        Why, in plain words.
    t_start_s, t_end_s : float or None
        Session time covered by the damaged chunks, where their headers or the file's index say, s.
    """

    offset: int
    n_bytes: int
    n_chunks: int | None
    reason: str
    t_start_s: float | None = None
    t_end_s: float | None = None


@dataclass(frozen=True)
class _ChunkHead:
    pos: int
    end: int | None  # first byte after the record, None if the lengths disagree and nothing fits
    start_ns: int
    end_ns: int
    uncompressed_size: int
    crc: int
    compression: str
    data_start: int
    data_len: int
    exact: bool  # the record length and the data length agree


class _Salvaged(list[Channel]):
    """Channel descriptions recovered from a damaged chunk (used only for channels known nowhere else)."""


def _channel_ok(ch: Channel) -> bool:
    """Whether a channel description from an unverified place names a pelvimon channel."""
    if ch.topic.startswith(_RAW_PREFIX):
        return ch.message_encoding == RAW_ENCODING and len(ch.topic) > len(_RAW_PREFIX)
    return ch.message_encoding == "json" and ch.topic in _JSON_TOPICS


_JSON_TOPICS = frozenset((_TOPIC_IMU, _TOPIC_STATUS, _TOPIC_STEPS, _TOPIC_ALERTS, _TOPIC_CALIBRATION, _TOPIC_DEVICE))


def _parse_record(op: int, body: bytes) -> Any:
    """One record's body -> the ``mcap.records`` object (None for records the reader does not use).

    Raises on any inconsistency (the body is shorter than its fields say, bad text, wrong fixed length).
    """
    stream = ReadDataStream(io.BytesIO(body))
    rec: Any
    if op == Opcode.MESSAGE:
        rec = Message.read(stream, len(body))
    elif op == Opcode.CHANNEL:
        rec = Channel.read(stream)
    elif op == Opcode.METADATA:
        rec = Metadata.read(stream)
    elif op == Opcode.SCHEMA:
        rec = Schema.read(stream)
    elif op == Opcode.CHUNK_INDEX:
        rec = ChunkIndex.read(stream)
    elif op == Opcode.MESSAGE_INDEX:
        # channel id (2 bytes), then a byte-counted array of (log time, offset) pairs: nothing else
        if len(body) < 6 or (len(body) - 6) % 16 or struct.unpack_from("<I", body, 2)[0] != len(body) - 6:
            raise _Unreadable("a damaged message index")
        return None
    elif op == Opcode.DATA_END:
        if len(body) != 4:
            raise _Unreadable("a damaged end-of-data record")
        return None
    elif op == Opcode.FOOTER:
        if len(body) != 20:
            raise _Unreadable("a damaged footer")
        return None
    elif op == Opcode.HEADER:
        stream.read_prefixed_string()
        stream.read_prefixed_string()
        return None
    else:
        return None  # statistics, attachments, summary offsets...: not used
    return rec


class _FileScan:
    """Walks the records of an MCAP file held in ``buf``, stepping over damage (see ``SessionReader``).

    Parameters
    ----------
    buf : mmap or bytes
        The whole file.
    start_unix_ns : int or None
        Session start, to tell plausible chunk times from noise while searching (None: no time check).
    """

    def __init__(self, buf: Any, start_unix_ns: int | None) -> None:
        self.buf = buf
        self.size = len(buf)
        self.start_ns = start_unix_ns
        self.index: list[ChunkIndex] = []
        self.summary_channels: dict[int, Channel] = {}
        self.summary_start: int | None = None
        self.complete = False
        self.trailing = 0
        self.n_repaired = 0
        self._read: set[int] = set()  # offsets of the chunks read
        self._read_summary()

    # -- little helpers ---------------------------------------------------------------------------------
    def _u64(self, p: int) -> int:
        return int(struct.unpack_from("<Q", self.buf, p)[0])

    def _session_s(self, t_ns: int) -> float | None:
        if self.start_ns is None or not self.start_ns - _DAY_NS <= t_ns <= self.start_ns + 366 * _DAY_NS:
            return None
        return (t_ns - self.start_ns) / 1e9

    # -- summary (index) --------------------------------------------------------------------------------
    def _read_summary(self) -> None:
        """Channels and chunk index from the summary section, if the file ends with a readable one."""
        buf, size = self.buf, self.size
        fp = size - 8 - 29  # footer record: opcode, length, summary start, summary offset start, crc
        if fp < 8 or buf[size - 8 : size] != MCAP0_MAGIC or buf[fp : fp + 9] != _FOOTER_SIG:
            return
        summary_start, summary_offset_start = self._u64(fp + 9), self._u64(fp + 17)
        crc = int(struct.unpack_from("<I", buf, fp + 25)[0])
        if not 8 < summary_start < fp:
            return
        body = bytes(buf[summary_start:fp])
        trusted = True
        if crc:
            got = zlib.crc32(struct.pack("<BQQQ", Opcode.FOOTER, 20, summary_start, summary_offset_start), zlib.crc32(body))
            trusted = got == crc
        self.summary_start = summary_start
        p = 0
        while p + 9 <= len(body):
            op, length = body[p], int(struct.unpack_from("<Q", body, p + 1)[0])
            if p + 9 + length > len(body):
                break
            try:
                rec = _parse_record(op, body[p + 9 : p + 9 + length])
            except Exception:  # noqa: BLE001 - a damaged summary: keep what came before
                break
            if isinstance(rec, Channel) and (trusted or _channel_ok(rec)):
                self.summary_channels[rec.id] = rec
            elif isinstance(rec, ChunkIndex):
                self.index.append(rec)  # checked against the chunk itself before use
            p += 9 + length
        if not trusted:  # a damaged summary: keep only the entries that point at a chunk
            self.index = [ci for ci in self.index if self._chunk_head(ci.chunk_start_offset, strict=True) is not None]
        self.index.sort(key=lambda ci: ci.chunk_start_offset)

    def _indexed_times(self, pos: int) -> tuple[float | None, float | None]:
        for ci in self.index:
            if ci.chunk_start_offset == pos:
                return self._session_s(ci.message_start_time), self._session_s(ci.message_end_time)
        return None, None

    # -- chunks -----------------------------------------------------------------------------------------
    def _chunk_head(self, p: int, *, strict: bool, ignore_opcode: bool = False) -> _ChunkHead | None:
        """The chunk record starting at ``p`` if its header fields are consistent, else None.

        ``strict`` (used when searching) also asks for a record length that agrees with the inner lengths
        and for times near the session's; ``ignore_opcode`` reads a chunk whose opcode byte is damaged.
        """
        buf, size = self.buf, self.size
        if p + 49 > size or (not ignore_opcode and buf[p] != Opcode.CHUNK):
            return None
        length = self._u64(p + 1)
        start_ns, end_ns, usize, crc, clen = struct.unpack_from("<QQQII", buf, p + 9)
        if clen > 4 or p + 49 + clen > size:
            return None
        comp = _COMPRESSIONS.get(bytes(buf[p + 41 : p + 41 + clen]))
        if comp is None:
            return None
        dlen = self._u64(p + 41 + clen)
        data_start = p + 49 + clen
        inner_end = data_start + dlen
        if usize > _RECORD_LIMIT or (comp == "" and usize != dlen):
            return None
        exact = length == 40 + clen + dlen and inner_end <= size
        if strict and (not exact or start_ns > end_ns or self._session_s(start_ns) is None or self._session_s(end_ns) is None):
            return None
        end: int | None = inner_end if exact else None
        if not exact:  # the record length and the data length disagree: the one that leads to a record wins
            if data_start < p + 9 + length <= size and self._record_fits(p + 9 + length):
                end = p + 9 + length
                dlen = end - data_start  # the writer adds no padding; the CRC checks the guess
            elif inner_end > size:
                return None  # neither fits in the file: cut short, or both lengths damaged
            elif self._record_fits(inner_end):
                end = inner_end
        return _ChunkHead(p, end, start_ns, end_ns, usize, crc, comp, data_start, dlen, exact)

    def _inflate(self, head: _ChunkHead) -> bytes:
        data = bytes(self.buf[head.data_start : head.data_start + head.data_len])
        if head.uncompressed_size == 0:
            return b""
        try:
            if head.compression == "zstd":
                return bytes(zstandard.decompress(data, max_output_size=head.uncompressed_size))
            if head.compression == "lz4":
                import lz4.frame  # type: ignore[import-untyped]  # only other writers use lz4

                return bytes(lz4.frame.decompress(data))
        except ImportError:
            raise _Unreadable("its compression (lz4) needs the lz4 package") from None
        except Exception:  # noqa: BLE001 - zstd/lz4 errors: damaged compressed data
            raise _Unreadable("its compressed data is damaged") from None
        return data

    def _inflate_unsized(self, head: _ChunkHead) -> bytes | None:
        """zstd data decompressed by the size its frame states (bounded), or None."""
        data = bytes(self.buf[head.data_start : head.data_start + head.data_len])
        try:
            cap = min(_RECORD_LIMIT, 64 * len(data) + 2**20)
            return bytes(zstandard.ZstdDecompressor().decompress(data, max_output_size=cap))
        except Exception:  # noqa: BLE001 - damaged or no size in the frame
            return None

    def _chunk_records(self, head: _ChunkHead) -> tuple[list[Any], bool]:
        """The records of a chunk whose contents pass their CRC (raises ``_Unreadable`` otherwise), and
        whether its header needed mending (a size field that did not match)."""
        if head.uncompressed_size == 0 and head.data_len:
            # a size of 0 with data after it: a zeroed header (a zeroed disk page), whose CRC field reads 0 too,
            # so nothing would check it; a true empty chunk has no data (zstd: an empty frame), and the
            # writer never writes one (mcap leaves out a chunk without messages)
            empty = head.compression == "zstd" and self._inflate_unsized(head) == b""
            if not empty:
                raise _Unreadable("its size and checksum fields are zeroed (damaged bytes)")
        try:
            raw: bytes | None = self._inflate(head)
        except _Unreadable:
            raw = None
        sized = raw is not None and len(raw) == head.uncompressed_size
        ok = raw is not None and sized and (not head.crc or zlib.crc32(raw) == head.crc)
        if not ok and head.crc and head.compression == "zstd":
            alt = self._inflate_unsized(head)  # the size field may be the damaged part: the CRC decides
            if alt is not None and zlib.crc32(alt) == head.crc:
                raw, ok, sized = alt, True, False
        if not ok or raw is None:
            raise _Unreadable("its checksum does not match (damaged bytes)" if sized else "its compressed data is damaged")
        return self._inner_records(raw, salvage=False), not sized

    @staticmethod
    def _inner_records(raw: bytes, *, salvage: bool) -> list[Any]:
        out: list[Any] = []
        p = 0
        while p < len(raw):
            if p + 9 > len(raw):
                if salvage:
                    break
                raise _Unreadable("its records are garbled")
            op, length = raw[p], int(struct.unpack_from("<Q", raw, p + 1)[0])
            if p + 9 + length > len(raw):
                if salvage:
                    break
                raise _Unreadable("its records are garbled")
            if op in (Opcode.MESSAGE, Opcode.CHANNEL, Opcode.SCHEMA):
                try:
                    rec = _parse_record(op, raw[p + 9 : p + 9 + length])
                except Exception:  # noqa: BLE001 - struct, text or length errors inside the chunk
                    if salvage:
                        break
                    raise _Unreadable("its records are garbled") from None
                if not salvage or (isinstance(rec, Channel) and _channel_ok(rec)):
                    out.append(rec)
            p += 9 + length
        return out

    def _salvage_channels(self, head: _ChunkHead) -> _Salvaged:
        """Channel descriptions at the start of a damaged chunk (later chunks may need them)."""
        data = bytes(self.buf[head.data_start : head.data_start + head.data_len])
        raw = data
        if head.compression == "zstd":
            dobj = zstandard.ZstdDecompressor().decompressobj()
            parts: list[bytes] = []
            try:
                for i in range(0, len(data), 4096):  # as much as decompresses before the damage
                    parts.append(dobj.decompress(data[i : i + 4096]))
            except Exception:  # noqa: BLE001 - zstd error at the damage
                pass
            raw = b"".join(parts)
        elif head.compression:
            raw = b""
        return _Salvaged(self._inner_records(raw[: head.uncompressed_size], salvage=True))

    # -- record boundaries ------------------------------------------------------------------------------
    def _record_fits(self, p: int) -> bool:
        """Whether a record (or the end of the file) plausibly starts at ``p``."""
        if p == self.size:
            return True
        if p + 9 > self.size:
            return False
        op, length = self.buf[p], self._u64(p + 1)
        if op not in _KNOWN_OPCODES or p + 9 + length > self.size:
            return False
        if op == Opcode.CHUNK:
            return self._chunk_head(p, strict=True) is not None
        if op == Opcode.FOOTER:
            return length == 20
        if op == Opcode.DATA_END:
            return length == 4
        return True

    def _resync(self, q: int) -> int:
        """The first position at or after ``q`` where a trustworthy record starts (the end if none)."""
        buf, size = self.buf, self.size
        best = size
        for ci in self.index:
            off = ci.chunk_start_offset
            if off >= q and off < best and self._chunk_head(off, strict=False) is not None:
                best = off
                break
        if self.summary_start is not None and q <= self.summary_start - 13 < best:
            if buf[self.summary_start - 13 : self.summary_start - 4] == _DATA_END_SIG:
                best = self.summary_start - 13
        # a search: a chunk whose header is self-consistent, or the end of the data section
        for sig, check in ((b"\x06", self._chunk_start), (_DATA_END_SIG, self._data_end_at), (_FOOTER_SIG, self._footer_at)):
            p = buf.find(sig, q, best)
            while p != -1:
                if check(p):
                    best = p
                    break
                p = buf.find(sig, p + 1, best)
        return best

    def _chunk_start(self, p: int) -> bool:
        return self._chunk_head(p, strict=True) is not None

    def _data_end_at(self, p: int) -> bool:
        return self._record_fits(p + 13)

    def _footer_at(self, p: int) -> bool:
        return self.buf[p + 29 : p + 37] == MCAP0_MAGIC

    # -- the walk ---------------------------------------------------------------------------------------
    def _skip(
        self, pos: int, end: int, reason: str, head: _ChunkHead | None = None, *, in_summary: bool = False
    ) -> SkippedRange:
        if in_summary:
            n_chunks: int | None = 0
        elif self.index:  # the indexed chunks the range overlaps that were not read
            n_chunks = sum(
                1
                for ci in self.index
                if ci.chunk_start_offset < end
                and pos < ci.chunk_start_offset + max(ci.chunk_length, 1)
                and ci.chunk_start_offset not in self._read
            )
        elif head is not None or self._chunk_head(pos, strict=False, ignore_opcode=True) is not None:
            n_chunks = 1
        elif self.buf[pos] == Opcode.CHUNK and end == self.size:
            n_chunks = 1  # a chunk cut short
        elif end == self.size and self.buf[pos] in _KNOWN_OPCODES and (pos + 9 > end or pos + 9 + self._u64(pos + 1) > end):
            n_chunks = 0  # an index record cut short at the end of the file: nothing recorded in it
        else:
            n_chunks = None
        t0, t1 = self._indexed_times(pos)
        if head is not None:
            t0 = t0 if t0 is not None else self._session_s(head.start_ns)
            t1 = t1 if t1 is not None else self._session_s(head.end_ns)
        return SkippedRange(pos, end - pos, n_chunks, reason, t0, t1)

    def walk(self) -> Iterator[list[Any] | SkippedRange]:
        """Record lists (a chunk's records, or one record) and the ranges skipped, in file order."""
        buf, size = self.buf, self.size
        p = 8
        in_summary = False  # after the end-of-data record: indexes and statistics, nothing recorded
        while p < size:
            if p + 9 > size:
                yield self._skip(p, size, "the file ends inside a record (cut short)", in_summary=in_summary)
                return
            op, length = buf[p], self._u64(p + 1)
            # a chunk, whatever its opcode byte says: a damaged opcode is no reason to lose what passes its CRC
            head = None
            if not in_summary:  # (a true chunk opcode is checked leniently, any other byte strictly)
                head = self._chunk_head(p, strict=op != Opcode.CHUNK, ignore_opcode=True)
            if head is not None:
                try:
                    records, mended = self._chunk_records(head)
                except _Unreadable as exc:
                    salvaged = self._salvage_channels(head)
                    if salvaged:
                        yield salvaged
                    end = head.end if head.end is not None else self._resync(p + 1)
                    yield self._skip(p, end, f"a damaged chunk: {exc}", head)
                    p = end
                    continue
                if op != Opcode.CHUNK or not head.exact or mended:
                    self.n_repaired += 1
                self._read.add(p)
                yield records
                p = head.end if head.end is not None else self._resync(p + 1)
                continue
            nxt = p + 9 + length
            if op != Opcode.CHUNK and op in _KNOWN_OPCODES and nxt <= size:
                try:
                    rec = _parse_record(op, bytes(buf[p + 9 : nxt]))
                except Exception:  # noqa: BLE001 - the record's fields contradict its length
                    rec = _Unreadable
                validated = op in (Opcode.MESSAGE_INDEX, Opcode.DATA_END, Opcode.FOOTER)
                if rec is not _Unreadable and (validated or self._record_fits(nxt)):
                    if op == Opcode.FOOTER:
                        if buf[nxt : nxt + 8] == MCAP0_MAGIC:
                            self.complete = True
                            self.trailing = size - nxt - 8
                            return
                    else:
                        in_summary = in_summary or op == Opcode.DATA_END
                        if isinstance(rec, Message):
                            yield SkippedRange(p, nxt - p, 0, _STRAY_MESSAGE)
                        elif rec is not None:
                            yield [rec]
                        p = nxt
                        continue
            # a damaged record header: search for the next record to trust
            end = self._resync(p + 1)
            cut = end == size and not self.complete
            if cut:
                cut_chunk = op == Opcode.CHUNK or self._chunk_head(p, strict=False, ignore_opcode=True) is not None
                why = "the file ends inside a chunk (cut short)" if cut_chunk else "unreadable data up to the end of the file"
            else:
                why = "a damaged record header"
            yield self._skip(p, end, why, in_summary=in_summary)
            p = end


_TOPIC_KEYS: dict[str, tuple[set[str], ...]] = {
    _TOPIC_STATUS: ({"kind", "t_s", "message", "details"},),
    # (and as written before steps had a stride time)
    _TOPIC_STEPS: (set(Step.field_names()), set(Step.field_names()) - {"stride_time_s"}),
    _TOPIC_ALERTS: ({f.name for f in dataclasses.fields(Alert)},),
    _TOPIC_CALIBRATION: ({"t_s", "state", "mount_quat_wxyz"},),  # as the engine writes it
}
"""The keys of each JSON record the writer stores: a message whose channel was lost is told by them."""


# --- the reader ------------------------------------------------------------------------------------------


def _is_data(item: SessionItem) -> bool:
    return isinstance(item, RawNotification) or (isinstance(item, ImuBatch) and len(item) > 0)


def _data_t(item: SessionItem) -> float:
    if isinstance(item, RawNotification):
        return item.t_host_s
    assert isinstance(item, ImuBatch)
    return float(item.t_s[0])


def _size_words(n_bytes: int) -> str:
    if n_bytes < 1000:
        return f"{n_bytes} bytes"
    return f"{n_bytes / 1000:.1f} kB" if n_bytes < 1_000_000 else f"{n_bytes / 1e6:.1f} MB"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


class SessionReader:
    """Reads a session file in recorded order, recovering what it can from damaged files.

    The records are walked in file order. A chunk (a block of recorded messages) whose contents fail their
    checksum or do not decompress is skipped and reading goes on with the next one; a record whose header
    is damaged is stepped over by the summary's chunk index where the file has one, else by searching
    forward for the next self-consistent chunk header. A chunk whose opcode or size fields are hit but
    whose contents pass their checksum is read (and reported). Where recorded samples are missing after skipped data,
    the first ``ImuBatch`` after it carries ``gap_before`` and an estimated ``n_lost``, and a ``gap``
    status (``details[FILE_DAMAGE]``) comes before the first item after it. One warning at the end says
    what was skipped and about how much session time was lost.

    Attributes
    ----------
    header : SessionHeader
    complete : bool
        The file ended with its summary section (the recording was closed cleanly).
    cut_short : bool
        The last :meth:`items` skipped unreadable bytes up to the end of a file without summary section
        (a copy taken while recording, a full disk, a truncated transfer).
    damage : str or None
        What was wrong with the file, in plain words (skipped chunks, a cut-short end, ...), after
        ``items()`` ran to its end; None if nothing was (a file without summary section only is not damage).
    skipped : list of SkippedRange
        The byte ranges skipped by the last ``items()``.
    lost_spans_s : list of (float, float or None)
        Session time spans (start, end; end None: up to an unknown end) whose samples were lost with them.
    n_lost_estimate : int
        Samples estimated lost with the skipped data (the sum of the ``n_lost`` the reader added).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise SessionFileError(f"{self.path}: is a directory, not a session file")
        if not self.path.is_file():
            raise SessionFileError(f"{self.path}: no such session file")
        self.complete = False
        self.cut_short = False
        self.damage: str | None = None
        self.skipped: list[SkippedRange] = []
        self.lost_spans_s: list[tuple[float, float | None]] = []
        self.n_lost_estimate = 0
        self._maybe_lost_after_s: float | None = None
        self.header = self._read_header()

    @contextlib.contextmanager
    def _mapped(self) -> Iterator[Any]:
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise SessionFileError(f"{self.path}: cannot open the session file ({exc.strerror or exc})") from None
        with f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                yield b""
                return
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                yield buf

    def _read_header(self) -> SessionHeader:
        with self._mapped() as buf:
            if len(buf) < 8 or buf[:8] != MCAP0_MAGIC:
                raise SessionFileError(f"{self.path}: not a readable session file (it is not an MCAP file)")
            # the pelvimon.session metadata record follows the MCAP header record; it is found even where
            # the header record is damaged
            stop = min(len(buf), _HEADER_SEARCH_BYTES)
            hit = buf.find(_SESSION_NAME_SIG, 8, stop)
            md: dict[str, str] | None = None
            while hit != -1 and md is None:
                p = hit - 9
                if p >= 8 and buf[p] == Opcode.METADATA:
                    length = int(struct.unpack_from("<Q", buf, p + 1)[0])
                    if p + 9 + length <= len(buf):
                        try:
                            rec = _parse_record(Opcode.METADATA, bytes(buf[p + 9 : p + 9 + length]))
                        except Exception:  # noqa: BLE001 - not this one
                            rec = None
                        if isinstance(rec, Metadata) and rec.name == "pelvimon.session":
                            md = rec.metadata
                hit = buf.find(_SESSION_NAME_SIG, hit + 1, stop)
            # without it, records after it that are pelvimon's say that the header was lost
            ours = md is None and buf.find(b"pelvimon", 8, stop) != -1
            n_bytes = len(buf)
        if md is None:
            if n_bytes <= len(MCAP0_MAGIC) + 9:  # (the magic, and not one record's opcode and length after it)
                raise SessionFileError(
                    f"{self.path}: an MCAP file of {n_bytes} bytes, cut short before its first record; it holds no "
                    "session: if it was copied while being recorded, copy it again"
                )
            if ours:
                raise SessionFileError(
                    f"{self.path}: a pelvimon session file whose start (its session header) is cut short or "
                    "damaged; it cannot be read: if it was copied while being recorded, copy it again"
                )
            raise SessionFileError(f"{self.path}: not a pelvimon session file (no pelvimon.session record at its start)")
        try:
            return SessionHeader.from_metadata(md)
        except SessionFileError as exc:
            raise SessionFileError(f"{self.path}: {exc}") from None
        except Exception:  # noqa: BLE001 - missing keys, bad JSON, wrong fields
            raise SessionFileError(f"{self.path}: not a readable session file (its pelvimon.session record is damaged)") from None

    def _rate_hz(self, batch: ImuBatch | None) -> float | None:
        rate = self.header.source.rate_hz
        if isinstance(rate, int | float) and math.isfinite(rate) and rate > 0:
            return float(rate)
        if batch is not None and len(batch) > 1:
            dt = float(np.median(np.diff(batch.t_s)))
            return 1.0 / dt if dt > 0 else None
        return None

    def items(self, *, warn: bool = True) -> Iterator[SessionItem]:
        """Every recorded item in file order, damaged parts skipped (see the class). Logs one warning if the
        file is damaged or unfinished (unless ``warn`` is false: a look at its start)."""
        self.complete = False
        self.cut_short = False
        self.damage = None
        self.skipped = []
        self.lost_spans_s = []
        self.n_lost_estimate = 0
        self._maybe_lost_after_s = None
        channels: dict[int, Channel] = {}
        start = self.header.start_unix_ns
        n = n_undecodable = n_orphaned = n_guessed = 0
        unknown: set[int] = set()  # channel ids described nowhere and not recognised from their messages
        last_imu: ImuBatch | None = None
        t_imu_end = -math.inf  # the last sample time of the batches read
        last_data_t: float | None = None
        pending: list[SkippedRange] = []
        with self._mapped() as buf:
            scan = _FileScan(buf, start)
            channels.update(scan.summary_channels)
            for ev in scan.walk():
                if isinstance(ev, SkippedRange):
                    log.debug("%s: skipped %d bytes at offset %d: %s", self.path, ev.n_bytes, ev.offset, ev.reason)
                    self.skipped.append(ev)
                    pending.append(ev)
                    continue
                if isinstance(ev, _Salvaged):
                    for salvaged in ev:
                        channels.setdefault(salvaged.id, salvaged)
                    continue
                decoded: list[SessionItem] = []
                for rec in ev:
                    if isinstance(rec, Channel):
                        channels[rec.id] = rec
                        continue
                    if not isinstance(rec, Message):
                        continue
                    ch = channels.get(rec.channel_id)
                    if ch is None and rec.channel_id not in unknown:
                        ch = self._guess_channel(rec)
                        if ch is None:
                            unknown.add(rec.channel_id)
                        else:
                            channels[ch.id] = ch
                            n_guessed += 1
                    if ch is None:
                        n_orphaned += 1
                        continue
                    try:
                        item = self._decode(ch, rec, start)
                    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError):
                        n_undecodable += 1
                        continue
                    if isinstance(item, ImuBatch) and len(item):
                        if not item.t_s[0] > t_imu_end:
                            n_undecodable += 1  # (session time never goes back: a batch out of order is damage)
                            continue
                        t_imu_end = float(item.t_s[-1])
                    if item is not None:
                        decoded.append(item)
                if pending and any(_is_data(i) for i in decoded):
                    decoded = self._after_skip(pending, decoded, last_imu, last_data_t)
                    pending = []
                for item in decoded:
                    if isinstance(item, ImuBatch) and len(item):
                        last_imu = item
                        last_data_t = max(last_data_t or -math.inf, float(item.t_s[-1]))
                    elif isinstance(item, RawNotification):
                        last_data_t = max(last_data_t or -math.inf, item.t_host_s)
                    n += 1
                    yield item
            if pending:  # damage up to the end: what it held is lost, where the chunk headers tell
                t_from = self._span_start(pending, last_imu, last_data_t)
                if any(r.n_chunks for r in pending):
                    ends = [r.t_end_s for r in pending if r.t_end_s is not None and r.t_end_s > t_from]
                    self.lost_spans_s.append((t_from, max(ends) if ends else None))
                elif any(r.n_chunks is None for r in pending):
                    self._maybe_lost_after_s = t_from
            self.complete = scan.complete
            self.damage = self._describe(scan, n_undecodable, n_orphaned, n_guessed)
        if self.problem is not None:
            (log.warning if warn else log.debug)("%s: read %d items; %s", self.path, n, self.problem)

    @property
    def problem(self) -> str | None:
        """What the last :meth:`items` found wrong with the file (its damage, a missing summary), or None."""
        if self.damage is None and self.complete:
            return None
        why = self.damage or ""
        if not self.complete:
            why = (why + "; " if why else "") + "the file has no summary section (the recording did not finish)"
        return why

    @staticmethod
    def _span_start(pending: list[SkippedRange], last_imu: ImuBatch | None, last_data_t: float | None) -> float:
        """Session time where the skipped data began: the last sample read before it, else its chunks' start."""
        if last_imu is not None:
            return float(last_imu.t_s[-1])
        if last_data_t is not None:
            return last_data_t
        starts = [r.t_start_s for r in pending if r.t_start_s is not None]
        return max(min(starts), 0.0) if starts else 0.0

    def _after_skip(
        self, pending: list[SkippedRange], decoded: list[SessionItem], last_imu: ImuBatch | None, last_data_t: float | None
    ) -> list[SessionItem]:
        """Mark the items that follow skipped data: a ``gap`` status before the first of them, and
        ``gap_before`` with an estimated ``n_lost`` on the first batch, when samples are missing."""
        if all(r.n_chunks == 0 for r in pending):
            return decoded  # index records only: nothing recorded is missing
        i_data = next(i for i, it in enumerate(decoded) if _is_data(it))
        i_imu = next((i for i, it in enumerate(decoded) if isinstance(it, ImuBatch) and len(it)), None)
        t_from = self._span_start(pending, last_imu, last_data_t)
        t_to = _data_t(decoded[i_imu if i_imu is not None else i_data])
        rate = self._rate_hz(last_imu)
        n_lost = 0
        if i_imu is not None and last_imu is not None:
            # samples on both sides: the time jump between them says whether and how many are missing
            jump = t_to - t_from
            lost = is_hole(jump, rate) if rate is not None else jump > 0.5
            if rate is not None:
                n_lost = samples_missing(jump, rate)
        else:
            lost = True  # no samples on one side: whatever the skipped chunks held is missing
            if rate is not None:
                n_lost = max(round((t_to - t_from) * rate) - (1 if last_data_t is not None else 0), 0)
        if not lost:
            return decoded
        n_bytes = sum(r.n_bytes for r in pending)
        self.lost_spans_s.append((t_from, max(t_to, t_from)))
        self.n_lost_estimate += n_lost
        out = list(decoded)
        if i_imu is not None:
            batch = out[i_imu]
            assert isinstance(batch, ImuBatch)
            out[i_imu] = dataclasses.replace(batch, gap_before=True, n_lost=batch.n_lost + n_lost)
        status = gap_status(
            t_to,
            n_lost,
            f"about {n_lost} samples lost: {_size_words(n_bytes)} of the session file could not be read",
            estimated=True,
            **{FILE_DAMAGE: True},
        )
        out.insert(i_data, status)
        return out

    def _describe(self, scan: _FileScan, n_undecodable: int, n_orphaned: int, n_guessed: int) -> str | None:
        """What was wrong with the file, in plain words (None if nothing)."""
        parts: list[str] = []
        stray = [r for r in self.skipped if r.reason == _STRAY_MESSAGE]
        skipped = [r for r in self.skipped if r.reason != _STRAY_MESSAGE]
        tail = None
        if skipped and not scan.complete and skipped[-1].offset + skipped[-1].n_bytes == scan.size:
            tail = skipped.pop()
        self.cut_short = tail is not None
        if skipped:
            n_bytes = sum(r.n_bytes for r in skipped)
            n_chunks = sum(r.n_chunks or 0 for r in skipped)
            unknown = any(r.n_chunks is None for r in skipped)
            if n_chunks and not unknown:
                what = f"skipped {_plural(n_chunks, 'damaged chunk')} ({_size_words(n_bytes)})"
            elif n_chunks:
                what = f"skipped {_plural(n_chunks, 'damaged chunk')} and other damaged data ({_size_words(n_bytes)} in all)"
            elif unknown:
                what = f"skipped {_size_words(n_bytes)} of damaged data"
            else:
                what = f"skipped {_size_words(n_bytes)} of damaged index or header records"
            places = sum(1 for i, r in enumerate(skipped) if i == 0 or r.offset != skipped[i - 1].offset + skipped[i - 1].n_bytes)
            if places > 1:
                what += f" in {places} places"
            parts.append(what)
        if tail is not None:
            parts.append(f"the file was cut short: its last {_size_words(tail.n_bytes)} could not be read")
        closed = [(a, b) for a, b in self.lost_spans_s if b is not None]
        open_end = next((a for a, b in self.lost_spans_s if b is None), None)
        lost: list[str] = []
        if closed:
            words = ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in closed)
            lost.append(f"about {sum(b - a for a, b in closed):.1f} s of recording lost ({words})")
        if open_end is not None:
            lost.append(f"the recording after {open_end:.1f} s is lost")
        elif self._maybe_lost_after_s is not None:
            lost.append(f"the recording after {self._maybe_lost_after_s:.1f} s may be lost")
        if self.n_lost_estimate:
            lost.append(f"the samples after the damage are marked as following a gap (about {self.n_lost_estimate} lost)")
        if not lost and (skipped or tail is not None):
            lost.append("no recorded samples were lost with it")
        parts.extend(lost)
        if stray:
            parts.append(
                f"left out {_plural(len(stray), 'message')} stored outside any chunk "
                f"({_size_words(sum(r.n_bytes for r in stray))}; the recorder writes every message into a checked "
                "chunk, so they are not part of the recording)"
            )
        if scan.n_repaired:
            parts.append(
                f"read {_plural(scan.n_repaired, 'chunk')} whose record header was damaged (its contents passed their checksum)"
            )
        if n_undecodable:
            parts.append(f"{_plural(n_undecodable, 'message')} could not be decoded and were left out")
        if n_guessed:
            parts.append(f"recognised {_plural(n_guessed, 'channel')} from the messages (the descriptions were in the damaged data)")
        if n_orphaned:
            parts.append(f"{_plural(n_orphaned, 'message')} on channels whose description was lost were left out")
        if scan.trailing > 0:
            parts.append(f"ignored {_size_words(scan.trailing)} after the end of the recording")
        return "; ".join(parts) if parts else None

    def _guess_channel(self, rec: Message) -> Channel | None:
        """The channel of a message whose channel description was lost with damaged data, from the message.

        JSON bodies with exactly the keys of one pelvimon record name their topic; other bytes are raw
        notifications when the sensor notifies on one characteristic only. None if neither says.
        """
        try:
            body = json.loads(rec.data)
        except ValueError:
            body = None
        if isinstance(body, dict):
            keys = set(body)
            topic = next((t for t, known in _TOPIC_KEYS.items() if keys in known), None)
            if topic is None and "t_s" in keys and "time_base" in keys and keys <= set(_IMU_SCHEMA["properties"]):
                topic = _TOPIC_IMU
            return None if topic is None else Channel(rec.channel_id, topic, "json", {}, 0)
        listed = self.header.source.metadata.get("notify_uuids") or []
        uuids = {str(u).lower() for u in (listed if isinstance(listed, list) else [listed])}
        if len(uuids) != 1:
            return None
        uuid = uuids.pop()
        return Channel(rec.channel_id, _RAW_PREFIX + uuid, RAW_ENCODING, {"char_uuid": uuid}, 0)

    @staticmethod
    def _decode(ch: Channel, rec: Message, start_ns: int) -> SessionItem | None:
        topic = ch.topic
        if topic.startswith(_RAW_PREFIX):
            return RawNotification((rec.log_time - start_ns) / 1e9, ch.metadata.get("char_uuid", topic[5:]), rec.data)
        body = json.loads(rec.data)
        if topic == _TOPIC_IMU:
            return _decode_batch(body)
        if topic == _TOPIC_STATUS:
            details = body.get("details", {})
            _loss_count(details.get("n_lost", 0) if isinstance(details, dict) else None)
            return SourceStatus(body["kind"], float(body["t_s"]), str(body.get("message", "")), details)
        if topic == _TOPIC_STEPS:
            return _decode_step(body)
        if topic == _TOPIC_ALERTS:
            return _decode_alert(body)
        if topic == _TOPIC_CALIBRATION:
            return CalibrationRecord(float(body.pop("t_s")), body)
        if topic == _TOPIC_DEVICE:
            return DeviceRecord(float(body.pop("t_s")), body)
        return None
