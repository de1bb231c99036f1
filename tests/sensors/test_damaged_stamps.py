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
from pelvimon.sensors.replay import ReplaySource
from pelvimon.sensors.session_file import SessionReader, SessionWriter
from pelvimon.sensors.source import RawNotification

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
        if i == k:
            data = bytearray(it.data)
            data[byte] ^= 0x80
            it = RawNotification(it.t_host_s, it.char_uuid, bytes(data))  # noqa: PLW2901
        w.write_item(it)
    w.close()
    return size


# the samples one data notification of each recording carries
PER_NOTIFICATION = {"movesense_weak_left_glute": 8, "movella_dot_fast_cadence": 1, "pelvimon_weak_left_glute": 19}


@pytest.mark.parametrize(("name", "byte"), [(n, b) for n, bs in STAMPS.items() for b in bs])
def test_a_damaged_stamp_costs_one_notification(tmp_path: Path, name: str, byte: int) -> None:
    """(A damaged Movesense DATA also cost the packet held before it, whose part 2 it judged by its stamp.)"""
    src = RECORDINGS / f"{name}.mcap"
    span, n, lost = _span_and_loss(src)
    _flipped(src, tmp_path / "x.mcap", byte)
    span_x, n_x, lost_x = _span_and_loss(tmp_path / "x.mcap")
    assert span_x == pytest.approx(span, abs=0.05)
    assert n_x == n - PER_NOTIFICATION[name] and lost_x == lost + PER_NOTIFICATION[name]


def test_the_arrival_check_follows_the_clock_and_believes_a_jump_said_three_times() -> None:
    c = ArrivalCheck()

    def kept(t_device_s: float, t_host_s: float | None) -> str | None:
        why = c.refusal(t_device_s, t_host_s)
        if why is None:
            c.accept(t_device_s, t_host_s)
        return why

    assert kept(100.0, None) is None  # (no receive time: nothing checked)
    assert kept(100.0, 5.0) is None  # the offset: 95 s
    assert kept(100.5, 5.3) is None  # 0.2 s sooner than the promptest: a fast clock, followed
    assert "ahead of its arrival" in (kept(103.0, 5.6) or "")  # 2.1 s ahead of the new offset
    assert kept(100.7, 5.7) is None and kept(61.0, 5.8) is None  # late by up to a minute: taken
    assert "behind its arrival" in (kept(30.0, 5.9) or "")
    assert kept(100.9, 5.95) is None
    for t_host in (6.0, 6.1, 6.2):
        assert kept(t_host + 1000.0, t_host) is not None
    assert kept(1006.3, 6.3) is None and kept(1006.4, 6.4) is None  # the device clock jumped
    assert kept(100.0, 6.5) is not None  # (and the old offset is gone)
    # a stamp the check lets through but the decoder then refuses is not taken into the offset
    d = ArrivalCheck()
    d.accept(10.0, 0.0)
    assert d.refusal(11.5, 0.0) is None  # (1.5 s ahead: fits, but say the decoder refused it)
    assert d.refusal(12.5, 0.1) is not None  # 2.4 s ahead of the offset that was kept


def test_a_repeated_notification_is_refused_as_one_and_costs_nothing_after_it() -> None:
    """A DOT notification repeated four times was refused as 4295 s ahead (a stamp gone back was taken for
    a wrap of the 32-bit clock), the fourth then believed, and the next three good ones refused as behind."""
    from pelvimon.firmware_protocols import registry
    from pelvimon.firmware_protocols.base import MalformedFrameError

    reader = SessionReader(RECORDINGS / "movella_dot_fast_cadence.mcap")
    meta = reader.header.source.metadata
    dec = registry.get("movella_dot").decoder(**meta["decoder_context"])
    for char, data, _ in meta["start_writes"]:
        dec.observe_write(char, bytes.fromhex(data))
    raws = [it for it in reader.items() if isinstance(it, RawNotification)][100:106]
    for r in raws[:3]:
        assert dec.feed(r.char_uuid, r.data, r.t_host_s)
    for _ in range(4):
        with pytest.raises(MalformedFrameError, match="did not advance"):
            dec.feed(raws[1].char_uuid, raws[1].data, raws[3].t_host_s)
    for r in raws[3:]:
        (b,) = dec.feed(r.char_uuid, r.data, r.t_host_s)
        assert b.n_lost == 0
