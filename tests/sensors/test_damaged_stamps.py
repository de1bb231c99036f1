"""A damaged device time stamp in one notification of a recorded session: the notification is refused and
the session goes on (one flipped bit of a Movesense millisecond stamp made a 55 s session 12 days long, with
223 million samples counted lost; one of a DOT or reference-board stamp refused the next 8 s of good
notifications as "not after the previous one")."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pelvimon.analysis import read_source
from pelvimon.firmware_protocols.base import ArrivalCheck
from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.replay import ReplaySource
from pelvimon.sensors.session_file import SessionReader, SessionWriter
from pelvimon.sensors.source import RawNotification, SourceStatus

RECORDINGS = Path(__file__).parents[2] / "recordings" / "emulated"

# the bytes of each protocol's first-sample time stamp in its data notifications whose top bit moves it by
# more than the 2 s a stamp may run ahead (ARRIVAL_AHEAD_S): a flip of a lower bit moves the samples of one
# notification by less, as a stamp late by a few packets would
STAMPS = {
    "movesense_weak_left_glute": range(3, 6),  # uint32 ms after [type, reference]: bit 15 on, 33 s on
    "movella_dot_fast_cadence": range(2, 4),  # uint32 µs: bit 23 on, 8.4 s on
    "pelvimon_weak_left_glute": range(8, 10),  # uint32 µs after magic, version, type, seq, cfg
}


def _span_and_loss(path: Path) -> tuple[float, int, int]:
    s = read_source(ReplaySource(path))
    return float(s.batches[-1].t_s[-1] - s.batches[0].t_s[0]), sum(len(b) for b in s.batches), sum(
        b.n_lost for b in s.batches)


def _flipped(src: Path, dst: Path, byte: int) -> int:
    """``src`` with the top bit of ``byte`` flipped in one data notification halfway through; its length."""
    reader = SessionReader(src)
    items = list(reader.items())
    raws = [i for i, it in enumerate(items) if isinstance(it, RawNotification)]
    size = Counter(len(items[i].data) for i in raws).most_common(1)[0][0]
    k = next(i for i in raws[len(raws) // 2:] if len(items[i].data) == size)
    h = reader.header
    w = SessionWriter(dst, h.source, start_unix_ns=h.start_unix_ns, extra=h.extra)
    for i, it in enumerate(items):
        if isinstance(it, RawNotification):
            data = bytearray(it.data)
            if i == k:
                data[byte] ^= 0x80
            w.write_raw(RawNotification(it.t_host_s, it.char_uuid, bytes(data)))
        elif isinstance(it, ImuBatch):
            w.write_batch(it)
        elif isinstance(it, SourceStatus):
            w.write_status(it)
    w.close()
    return size


@pytest.mark.parametrize(("name", "byte"), [(n, b) for n, bs in STAMPS.items() for b in bs])
def test_a_damaged_stamp_costs_one_notification(tmp_path: Path, name: str, byte: int) -> None:
    src = RECORDINGS / f"{name}.mcap"
    span, n, lost = _span_and_loss(src)
    _flipped(src, tmp_path / "x.mcap", byte)
    span_x, n_x, lost_x = _span_and_loss(tmp_path / "x.mcap")
    assert span_x == pytest.approx(span, abs=0.05)
    assert n - 20 <= n_x <= n and n_x + lost_x == n + lost  # (what the notification carried, counted lost)


def test_the_arrival_check_follows_the_clock_and_believes_a_jump_said_three_times() -> None:
    c = ArrivalCheck()
    assert c.refusal(100.0, None) is None  # (no receive time: nothing checked)
    assert c.refusal(100.0, 5.0) is None  # the offset: 95 s
    assert c.refusal(100.5, 5.3) is None  # 0.2 s sooner than the promptest: a fast clock, followed
    assert "ahead of its arrival" in (c.refusal(103.0, 5.6) or "")  # 2.1 s ahead of the new offset
    assert c.refusal(100.7, 5.7) is None and c.refusal(61.0, 5.8) is None  # late by up to a minute: taken
    assert "behind its arrival" in (c.refusal(30.0, 5.9) or "")
    assert c.refusal(100.9, 5.95) is None
    for t_host in (6.0, 6.1, 6.2):
        assert c.refusal(t_host + 1000.0, t_host) is not None
    assert c.refusal(1006.3, 6.3) is None and c.refusal(1006.4, 6.4) is None  # the device clock jumped
    assert c.refusal(100.0, 6.5) is not None  # (and the old offset is gone)
