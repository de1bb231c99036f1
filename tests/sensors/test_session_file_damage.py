"""Damaged session files: a damaged chunk is skipped and reading goes on; what follows the hole is marked as
following a gap; one plain-words warning says what was skipped and about how much time was lost.

The chunk layout is taken from the official ``mcap`` reader (the summary's chunk index), not from the reader
under test.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader

from pelvimon.dsp.records import Step
from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.replay import ReplaySource
from pelvimon.sensors.session_file import FILE_DAMAGE, SessionFileError, SessionReader, SessionWriter
from pelvimon.sensors.source import RawNotification, SourceInfo, SourceStatus

RATE = 104.0
N_PER_BATCH = 8
BATCHES_PER_CHUNK = 13  # 104 samples: one second per chunk
N_CHUNKS = 10
UUID = "34800002-7185-4d5d-b431-630e7050e8f0"
INFO = SourceInfo(
    name="Movesense 1234", protocol="movesense", rate_hz=RATE, address="AA:BB", metadata={"notify_uuids": [UUID]}
)
EXCEPTION_WORDS = re.compile(r"error|exception|unpack|crc|codec|traceback|struct", re.IGNORECASE)
RECORDINGS = Path(__file__).resolve().parents[2] / "recordings" / "emulated"


def _write(path: Path) -> None:
    """Ten one-second chunks of raw notifications and batches at 104 Hz, a few steps, statuses."""
    rng = np.random.default_rng(7)
    with SessionWriter(path, INFO, start_unix_ns=1_700_000_000_000_000_000, flush_interval_s=1e9) as w:
        w.write_status(SourceStatus("connected", 0.0, "connected"))
        k = 0
        for c in range(N_CHUNKS):
            for _ in range(BATCHES_PER_CHUNK):
                t = (k + np.arange(N_PER_BATCH)) / RATE
                w.write_raw(RawNotification(float(t[-1]) + 0.004, UUID, rng.bytes(60)))
                w.write_batch(
                    ImuBatch(
                        t_s=t,
                        acc_mps2=rng.normal(size=(N_PER_BATCH, 3)) + [0, 0, 9.8],
                        gyr_rads=rng.normal(size=(N_PER_BATCH, 3)),
                        seq=np.arange(k, k + N_PER_BATCH),
                        time_base="session",
                    )
                )
                k += N_PER_BATCH
            w.write_step(Step("L", c + 0.5, c + 0.75, 0.35, 0.25, 0.1, 171.0, 5.0, 9.0, 6.0, 10.0, 6.5, 2.5, False, 0.99))
            w.flush()  # closes the chunk


def _chunks(path: Path) -> list[tuple[int, int]]:
    with open(path, "rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None
    return [(ci.chunk_start_offset, ci.chunk_length) for ci in summary.chunk_indexes]


def _batches(items: list) -> list[ImuBatch]:
    return [i for i in items if isinstance(i, ImuBatch)]


def _chunk_of(batch: ImuBatch) -> int:
    assert batch.seq is not None
    return int(batch.seq[0]) // (N_PER_BATCH * BATCHES_PER_CHUNK)


def _without_summary(data: bytes) -> bytes:
    """What a crash leaves: everything up to the end of the data section, no summary."""
    return data[: data.rfind(b"\x0f\x04\x00\x00\x00\x00\x00\x00\x00")]


@pytest.fixture
def session(tmp_path: Path) -> Path:
    path = tmp_path / "intact.mcap"
    _write(path)
    assert len(_chunks(path)) == N_CHUNKS
    return path


def _read(path: Path, caplog: pytest.LogCaptureFixture) -> tuple[SessionReader, list, list[str]]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pelvimon.sensors.session_file"):
        r = SessionReader(path)
        items = list(r.items())
    return r, items, [rec.getMessage() for rec in caplog.records]


def _assert_skipped(items: list, lost: set[int]) -> None:
    """Every batch of the chunks not in ``lost`` is there, in order; the first one after a hole is flagged."""
    batches = _batches(items)
    chunks = [_chunk_of(b) for b in batches]
    expected = [c for c in range(N_CHUNKS) for _ in range(BATCHES_PER_CHUNK) if c not in lost]
    assert chunks == expected
    seqs = np.concatenate([b.seq for b in batches if b.seq is not None])
    assert np.all(np.diff(seqs) > 0)
    prev_end = -1
    for b in batches:
        assert b.seq is not None
        missing = int(b.seq[0]) - prev_end - 1
        if missing:
            assert b.gap_before, f"batch at {b.t_s[0]:.2f} s follows {missing} missing samples but is not flagged"
            assert abs(b.n_lost - missing) <= 2
        else:
            assert not b.gap_before and b.n_lost == 0
        prev_end = int(b.seq[-1])
        assert np.all(np.isfinite(b.t_s)) and np.all(np.isfinite(b.acc_mps2)) and np.all(np.isfinite(b.gyr_rads))
    # a gap status from the reader comes right before the first item after each hole
    statuses = [i for i in items if isinstance(i, SourceStatus) and i.details.get(FILE_DAMAGE)]
    holes = sum(1 for c in sorted(lost) if c + 1 < N_CHUNKS and c + 1 not in lost)
    assert len(statuses) == holes
    for s in statuses:
        nxt = items[items.index(s) + 1]
        assert isinstance(nxt, RawNotification | ImuBatch) and s.kind == "gap" and s.details["estimated"]


def _plain(text: str) -> None:
    assert "\n" not in text and not EXCEPTION_WORDS.search(text), text


@pytest.mark.parametrize("summary", [True, False], ids=["with-summary", "crash-no-summary"])
def test_a_flipped_byte_inside_a_chunk_loses_that_chunk_only(session: Path, caplog: pytest.LogCaptureFixture, summary: bool) -> None:
    data = bytearray(session.read_bytes())
    off, length = _chunks(session)[2]
    data[off + length // 2] ^= 0x5A
    path = session.with_name("flip.mcap")
    path.write_bytes(bytes(data) if summary else _without_summary(bytes(data)))
    r, items, warnings = _read(path, caplog)
    _assert_skipped(items, {2})
    assert r.complete is summary
    assert len(r.skipped) == 1 and r.skipped[0].n_chunks == 1 and r.skipped[0].offset == off
    assert r.lost_spans_s == [pytest.approx((207 / RATE, 312 / RATE))]  # last sample before, first after
    assert r.damage is not None and "skipped 1 damaged chunk" in r.damage
    assert "about 1.0 s of recording lost (2.0-3.0 s)" in r.damage
    assert "marked as following a gap (about 104 lost)" in r.damage
    (warning,) = warnings
    assert "skipped 1 damaged chunk" in warning and "about 1.0 s of recording lost" in warning
    _plain(warning)


@pytest.mark.parametrize("summary", [True, False], ids=["with-summary", "crash-no-summary"])
def test_a_flipped_chunk_opcode_is_noticed_and_nothing_is_lost(session: Path, caplog: pytest.LogCaptureFixture, summary: bool) -> None:
    intact = list(SessionReader(session).items())
    data = bytearray(session.read_bytes())
    off, _ = _chunks(session)[3]
    assert data[off] == 0x06
    data[off] ^= 0xFF  # the chunk's opcode: an unknown record type to an ordinary MCAP reader
    path = session.with_name("opcode.mcap")
    path.write_bytes(bytes(data) if summary else _without_summary(bytes(data)))
    r, items, warnings = _read(path, caplog)
    # its contents pass their CRC: read, not silently dropped; the reader says so
    _assert_skipped(items, set())
    assert len(items) == len(intact)
    assert r.skipped == [] and r.lost_spans_s == []
    assert r.damage is not None and "read 1 chunk whose record header was damaged" in r.damage
    (warning,) = warnings
    _plain(warning)


# chunk record: opcode 1, length 8, start time 8, end time 8, uncompressed size 8, crc 4, "zstd" 4+4, data length 8
@pytest.mark.parametrize(
    ("field", "at"),
    [("record length", 2), ("record length, top byte", 8), ("uncompressed size", 26), ("data length", 46), ("data length, top byte", 52)],
)
def test_a_damaged_chunk_size_field_is_mended_by_the_checksum(session: Path, caplog: pytest.LogCaptureFixture, field: str, at: int) -> None:
    intact = list(SessionReader(session).items())
    data = bytearray(session.read_bytes())
    off, _ = _chunks(session)[4]
    data[off + at] ^= 0x40
    path = session.with_name("size.mcap")
    path.write_bytes(_without_summary(bytes(data)))
    r, items, warnings = _read(path, caplog)
    _assert_skipped(items, set())
    assert len(items) == len(intact) and r.skipped == []
    assert r.damage is not None and "read 1 chunk whose record header was damaged" in r.damage, field
    (warning,) = warnings
    _plain(warning)


@pytest.mark.parametrize("summary", [True, False], ids=["with-summary", "crash-no-summary"])
def test_a_flipped_chunk_opcode_and_damaged_contents_mark_a_gap(session: Path, caplog: pytest.LogCaptureFixture, summary: bool) -> None:
    data = bytearray(session.read_bytes())
    off, length = _chunks(session)[3]
    data[off] ^= 0xFF
    data[off + length - 100] ^= 0x01
    path = session.with_name("opcode2.mcap")
    path.write_bytes(bytes(data) if summary else _without_summary(bytes(data)))
    r, items, warnings = _read(path, caplog)
    _assert_skipped(items, {3})
    assert r.damage is not None and "skipped 1 damaged chunk" in r.damage and "(3.0-4.0 s)" in r.damage
    (warning,) = warnings
    _plain(warning)


@pytest.mark.parametrize("summary", [True, False], ids=["with-summary", "crash-no-summary"])
def test_a_zeroed_4k_range_loses_the_chunks_it_hits(session: Path, caplog: pytest.LogCaptureFixture, summary: bool) -> None:
    chunks = _chunks(session)
    data = bytearray(session.read_bytes())
    off5, len5 = chunks[5]
    start = off5 + len5 - 1000  # from the end of chunk 5 on, through the start of chunk 6 (and maybe more)
    data[start : start + 4096] = bytes(4096)
    hit = {i for i, (o, n) in enumerate(chunks) if o < start + 4096 and start < o + n}
    assert {5, 6} <= hit
    path = session.with_name("zeroed.mcap")
    path.write_bytes(bytes(data) if summary else _without_summary(bytes(data)))
    r, items, warnings = _read(path, caplog)
    _assert_skipped(items, hit)
    assert r.damage is not None and f"about {len(hit)}.0 s of recording lost" in r.damage
    if summary:  # the chunk index tells how many chunks the unreadable bytes held
        assert f"skipped {len(hit)} damaged chunks" in r.damage
    (warning,) = warnings
    _plain(warning)


# chunk record: opcode 1, length 8, start time 8, end time 8, uncompressed size 8 (at 25), crc 4 (at 33), ...
@pytest.mark.parametrize(("what", "start", "end"), [("size and crc", 25, 37), ("all after the times", 25, None), ("all after the length", 9, None)])
@pytest.mark.parametrize("summary", [True, False], ids=["with-summary", "crash-no-summary"])
def test_a_zeroed_chunk_header_is_a_skipped_damaged_chunk(
    session: Path, caplog: pytest.LogCaptureFixture, summary: bool, what: str, start: int, end: int | None
) -> None:
    """A zeroed size and CRC (a zeroed disk page from inside the header on) read 0 = 0: the chunk was taken
    for an empty one, its second lost without a word or with "passed their checksum"."""
    data = bytearray(session.read_bytes())
    off, length = _chunks(session)[4]
    stop = off + (length if end is None else end)
    data[off + start : stop] = bytes(stop - off - start)
    path = session.with_name("zeroed_header.mcap")
    path.write_bytes(bytes(data) if summary else _without_summary(bytes(data)))
    r, items, warnings = _read(path, caplog)
    _assert_skipped(items, {4})
    assert len(r.skipped) == 1 and r.skipped[0].n_chunks == 1 and r.skipped[0].offset == off
    assert "zeroed" in r.skipped[0].reason, what
    assert r.lost_spans_s == [pytest.approx((415 / RATE, 520 / RATE))]  # last sample before, first after
    (warning,) = warnings
    assert "skipped 1 damaged chunk" in warning and "about 1.0 s of recording lost (4.0-5.0 s)" in warning
    assert "passed their checksum" not in warning
    _plain(warning)


@pytest.mark.parametrize("summary", [True, False], ids=["with-summary", "crash-no-summary"])
def test_a_message_outside_the_chunks_is_left_out_and_said(tmp_path: Path, caplog: pytest.LogCaptureFixture, summary: bool) -> None:
    """The recorder writes every message into a chunk (checked by its CRC): a message record between two
    chunks was not recorded by it, and is not read as if it had been."""
    stray_t = 30.0  # a batch 20 s after the end of the recording
    body = json.dumps({"t_s": [stray_t, stray_t + 1 / RATE], "acc_mps2": [[0, 0, 9.8]] * 2, "gyr_rads": [[0, 0, 0]] * 2,
                       "mag_uT": None, "quat_wxyz": None, "seq": [5000, 5001], "gap_before": False, "n_lost": 0,
                       "time_base": "session"}).encode()  # fmt: skip
    path = tmp_path / "stray.mcap"
    start = 1_700_000_000_000_000_000
    with SessionWriter(path, INFO, start_unix_ns=start, flush_interval_s=1e9) as w:
        for c in range(4):
            t = (c * N_PER_BATCH + np.arange(N_PER_BATCH)) / RATE
            w.write_batch(ImuBatch(t_s=t, acc_mps2=np.zeros((N_PER_BATCH, 3)), seq=np.arange(N_PER_BATCH) + c * N_PER_BATCH))
            w.flush()  # one batch per chunk
            if c == 1:  # between the second and the third chunk, as an unchunked writer would put it
                log_time = start + round(stray_t * 1e9)
                rec = struct.pack("<HIQQ", w._channels["/imu"], 0, log_time, log_time) + body
                w._file.write(bytes([0x05]) + struct.pack("<Q", len(rec)) + rec)
    if not summary:
        path.write_bytes(_without_summary(path.read_bytes()))
    r, items, warnings = _read(path, caplog)
    batches = _batches(items)
    assert [int(b.seq[0]) for b in batches] == [0, 8, 16, 24]  # the four recorded batches, nothing invented
    assert not any(b.gap_before for b in batches)
    assert not any(isinstance(i, SourceStatus) and i.details.get(FILE_DAMAGE) for i in items)  # nothing lost
    (skip,) = r.skipped
    assert skip.n_chunks == 0 and skip.n_bytes == 9 + len(rec) and "outside any chunk" in skip.reason
    assert r.lost_spans_s == [] and r.complete is summary
    (warning,) = warnings
    assert "left out 1 message stored outside any chunk" in warning and "not part of the recording" in warning
    _plain(warning)


def test_the_first_chunk_damaged_in_a_crashed_file_keeps_the_rest(session: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The channel descriptions are in the first chunk; with no summary they are salvaged or recognised."""
    data = bytearray(_without_summary(session.read_bytes()))
    off, length = _chunks(session)[0]
    data[off + 60 : off + length] = bytes(length - 60)  # all of its compressed data
    path = session.with_name("first.mcap")
    path.write_bytes(bytes(data))
    r, items, warnings = _read(path, caplog)
    _assert_skipped(items, {0})
    assert any(isinstance(i, RawNotification) for i in items)  # one notify characteristic: raw recognised
    assert any(isinstance(i, Step) for i in items)
    assert r.damage is not None and "recognised 3 channels from the messages" in r.damage
    (warning,) = warnings
    _plain(warning)


def test_a_file_cut_inside_a_chunk_says_so(session: Path, caplog: pytest.LogCaptureFixture) -> None:
    off, length = _chunks(session)[7]
    path = session.with_name("cut.mcap")
    path.write_bytes(session.read_bytes()[: off + length // 3])
    r, items, warnings = _read(path, caplog)
    assert [_chunk_of(b) for b in _batches(items)] == [c for c in range(7) for _ in range(BATCHES_PER_CHUNK)]
    assert not r.complete
    assert r.damage is not None and "the file was cut short" in r.damage
    (warning,) = warnings
    assert "no summary section" in warning
    _plain(warning)


def test_junk_after_a_complete_file_is_ignored(session: Path, caplog: pytest.LogCaptureFixture) -> None:
    intact = list(SessionReader(session).items())
    path = session.with_name("junk.mcap")
    path.write_bytes(session.read_bytes() + random.Random(3).randbytes(5000))
    r, items, _ = _read(path, caplog)
    assert len(items) == len(intact) and r.complete
    assert r.damage is not None and "ignored 5.0 kB after the end of the recording" in r.damage


def test_a_damaged_session_record_is_a_one_line_error(session: Path) -> None:
    data = bytearray(session.read_bytes())
    i = data.find(b"pelvimon.session")
    data[i + 3] ^= 0x20
    path = session.with_name("nohead.mcap")
    path.write_bytes(bytes(data))
    with pytest.raises(SessionFileError, match="a pelvimon session file whose start .* is cut short or damaged") as exc:
        SessionReader(path)
    _plain(str(exc.value).replace("Error", ""))
    # an MCAP file of another program is named as such
    other = session.with_name("other.mcap")
    other.write_bytes(data[:8] + bytes(data[8:]).replace(b"pelvimon", b"anything"))
    with pytest.raises(SessionFileError, match="not a pelvimon session file"):
        SessionReader(other)


def test_replay_of_recorded_samples_counts_the_loss(session: Path) -> None:
    data = bytearray(session.read_bytes())
    off, length = _chunks(session)[4]
    data[off + length // 2] ^= 0x01
    path = session.with_name("replay.mcap")
    path.write_bytes(bytes(data))
    events = list(ReplaySource(path, redecode=False)._events_sync())
    gaps = [e for e in events if isinstance(e, SourceStatus) and e.kind == "gap"]
    assert len(gaps) == 1 and gaps[0].details[FILE_DAMAGE]
    assert abs(gaps[0].details["n_lost"] - BATCHES_PER_CHUNK * N_PER_BATCH) <= 2
    batches = _batches(events)
    assert sum(len(b) for b in batches) == (N_CHUNKS - 1) * BATCHES_PER_CHUNK * N_PER_BATCH


@pytest.mark.parametrize("name", ["witmotion_symmetric", "movesense_weak_left_glute"])
def test_replay_through_the_decoders_counts_the_loss(tmp_path: Path, name: str) -> None:
    """Host-timed (no device clock, no counter) and device-clock protocols: samples + lost stay whole."""
    path = tmp_path / f"{name}.mcap"
    shutil.copy(RECORDINGS / f"{name}.mcap", path)

    def replay(p: Path) -> tuple[int, int]:
        n_samples = n_lost = 0
        for ev in ReplaySource(p)._events_sync():
            if isinstance(ev, ImuBatch):
                n_samples += len(ev)
            elif isinstance(ev, SourceStatus) and ev.kind == "gap":
                n_lost += int(ev.details["n_lost"])
        return n_samples, n_lost

    n_intact, lost_intact = replay(path)
    data = bytearray(path.read_bytes())
    off, length = _chunks(path)[2]
    data[off + length // 2] ^= 0x10
    damaged = tmp_path / "damaged.mcap"
    damaged.write_bytes(bytes(data))
    n_samples, n_lost = replay(damaged)
    rate = SessionReader(damaged).header.source.rate_hz
    assert n_samples < n_intact - rate  # more than a second of samples went with the chunk
    assert n_lost - lost_intact > rate
    assert abs((n_samples + n_lost) - (n_intact + lost_intact)) <= 0.05 * rate


def test_random_damage_never_raises_and_keeps_every_intact_chunk(session: Path, tmp_path: Path) -> None:
    """A small fuzz: byte flips, zeroed ranges, cuts and junk; every chunk the damage missed is read."""
    intact = _batches(list(SessionReader(session).items()))
    chunks = _chunks(session)
    first_chunk = chunks[0][0]
    base = session.read_bytes()
    rnd = random.Random(11)
    path = tmp_path / "fuzz.mcap"
    for trial in range(120):
        data = bytearray(base if trial % 2 else _without_summary(base))
        kind = trial % 4
        lo = rnd.randrange(8, len(data))
        if kind == 0:
            data[lo] ^= rnd.randrange(1, 256)
            hi = lo + 1
        elif kind == 1:
            data[lo : lo + 4096] = bytes(len(data[lo : lo + 4096]))
            hi = lo + 4096
        elif kind == 2:
            del data[lo:]
            hi = 1 << 62
        else:
            lo = hi = len(data)
            data += rnd.randbytes(rnd.randrange(1, 3000))
        path.write_bytes(bytes(data))
        try:
            r = SessionReader(path)
        except SessionFileError:
            assert lo < first_chunk, f"trial {trial}: damage at {lo} after the session record made the file unreadable"
            continue
        got = _batches(list(r.items()))
        got_chunks = {_chunk_of(b) for b in got}
        for c, (o, n) in enumerate(chunks):
            if (o + n <= lo or o >= hi) and o + n <= len(data):
                assert c in got_chunks, f"trial {trial} (kind {kind}, {lo}-{hi}): intact chunk {c} lost"
        for b in got:  # nothing invented
            k = int(b.seq[0]) // N_PER_BATCH if b.seq is not None else -1
            assert np.array_equal(b.t_s, intact[k].t_s) and np.array_equal(b.acc_mps2, intact[k].acc_mps2)


@pytest.mark.parametrize("n", [8, 12, 17])
def test_an_mcap_cut_short_before_its_first_record_says_so(tmp_path: Path, n: int) -> None:
    """A file holding the MCAP magic and no record was "not a pelvimon session file"."""
    src = next((Path(__file__).parents[2] / "recordings" / "emulated").glob("*.mcap"))
    p = tmp_path / "cut.mcap"
    p.write_bytes(src.read_bytes()[:n])
    with pytest.raises(SessionFileError, match=f"an MCAP file of {n} bytes, cut short before its first record"):
        SessionReader(p)
