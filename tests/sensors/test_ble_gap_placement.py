"""Gaps only where samples are missing, once per hole, with the count of the hole, and where it is.

A gap status restarts the analysis downstream (no step across it, pelvis angles back only after the
orientation filter settles), so a flag that lost nothing costs the runner steps for nothing. Checked
against the emulated sensor's record of what it delivered, and against notifications dropped on purpose.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np
import pytest

from pelvimon.firmware_protocols import registry
from pelvimon.firmware_protocols.base import StreamConfig
from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.ble import BleSource, Inbox, StreamDecoder, _Write
from pelvimon.sensors.source import RawNotification, SourceInfo, SourceStatus

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _emulated_run import run_emulated  # noqa: E402


def _metawear_frames(n: int, rate: float, seed: int = 0) -> tuple[ImuBatch, list, list]:
    """(truth, messages, writes): ``n`` samples of noise as the MetaWear firmware sends them, an acc frame
    then a gyro frame every 3 samples, and the writes that start the stream at ``rate``."""
    proto = registry.get("metawear")
    per = proto.peripheral()
    writes = proto.start_sequence(StreamConfig(rate_hz=rate))
    for w in writes:
        per.handle_write(w.char_uuid, w.data)
    rng = np.random.default_rng(seed)
    truth = ImuBatch(t_s=np.arange(n) / rate, acc_mps2=rng.normal(0, 5, (n, 3)), gyr_rads=rng.normal(0, 2, (n, 3)))
    msgs = []
    for j in range(0, n, 3):
        msgs += per.encode(ImuBatch(t_s=truth.t_s[j : j + 3], acc_mps2=truth.acc_mps2[j : j + 3],
                                    gyr_rads=truth.gyr_rads[j : j + 3]))
    assert len(msgs) == 2 * n // 3
    return truth, msgs, writes


def _metawear_source(rate: float, writes: list, maxlen: int | None = None) -> BleSource:
    """A MetaWear client past its start writes, fed by hand through ``inbox`` and ``_process``."""
    src = BleSource("AA:BB:CC:DD:EE:FF", protocol="metawear")
    src._protocol = registry.get("metawear")
    src.info = SourceInfo(name="MetaWear", protocol="metawear", rate_hz=rate)
    src._start_consumer()
    if maxlen is not None:
        src.inbox = Inbox(maxlen=maxlen)
    for w in writes:
        src._process(_Write(w.char_uuid, w.data))
    return src


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_metawear_under_loss_reports_gaps_only_at_holes_with_their_counts(seed: int) -> None:
    """Plain MetaWear streams: acc and gyro in separate notifications, no device clock, no counter, so holes
    are found from the host's arrival times alone. 10 % of 60 s of notifications lost (a seeded draw), the
    rest arriving at 7.5 ms connection events up to 4 ms late, leave about 20 % of the merged samples
    missing. Every gap reported stands for a hole in the output's session time of exactly its ``n_lost``
    samples, every hole is reported once, and the samples output plus those reported lost span the
    samples sent."""
    rate, n = 100.0, 6000
    truth, msgs, writes = _metawear_frames(n, rate, seed)
    rng = np.random.default_rng(100 + seed)
    ci = 0.0075
    t_sent = (np.arange(len(msgs)) // 2 + 1) * 3 / rate  # the frame's last sample measured
    t_host = np.ceil(t_sent / ci) * ci + rng.uniform(0.0, 0.004, len(msgs))
    t_host = np.maximum.accumulate(t_host)
    kept = rng.random(len(msgs)) >= 0.1

    async def run() -> list:
        src = _metawear_source(rate, writes)
        for i in np.flatnonzero(kept):
            src.inbox.put_data(float(t_host[i]), *msgs[i])
            while len(src.inbox):
                src._process(src.inbox.pop())
        return list(src._out)

    events = asyncio.run(run())
    batches = [e for e in events if isinstance(e, ImuBatch)]
    gaps = [e for e in events if isinstance(e, SourceStatus) and e.kind == "gap"]
    assert gaps and all(g.details["n_lost"] >= 1 for g in gaps), "a gap that lost nothing"
    assert len(gaps) == sum(b.gap_before for b in batches)
    t_gap = sorted(g.t_s for g in gaps)
    assert t_gap == sorted(float(b.t_s[0]) for b in batches if b.gap_before)
    assert np.all(np.diff(t_gap) > 3 / rate), "one hole reported twice"
    # each flagged batch follows a hole of n_lost samples; every other batch follows on at one period
    # (a hole may be a little shorter than the acc samples dropped in it, no gyro sample covering them: the
    # session times of a stream slew back onto its envelope at up to half speed; those samples count)
    for prev, b in zip(batches[:-1], batches[1:], strict=True):
        step = (float(b.t_s[0]) - float(prev.t_s[-1])) * rate
        if b.gap_before:
            assert step - 1 == pytest.approx(b.n_lost, abs=0.5 + 0.1 * b.n_lost)
        else:
            assert step < 1.5
    # against the truth: a merged sample needs both its acc and its gyro frame
    frame_kept = kept[0::2] & kept[1::2]
    k_kept = np.flatnonzero(frame_kept)
    span = 3 * int(k_kept[-1] - k_kept[0] + 1)
    truth_lost = span - 3 * k_kept.size
    assert truth_lost > 0.15 * span
    n_out = sum(len(b) for b in batches)
    n_lost = sum(g.details["n_lost"] for g in gaps)
    assert n_out + n_lost == pytest.approx(span, rel=0.01)
    assert n_lost == pytest.approx(truth_lost, rel=0.05)


def test_emulated_metawear_under_loss_flags_only_holes() -> None:
    """The same end to end through the emulated sensor in real time (20 times faster): host timing then
    depends on this machine's load, so only what holds at any timing is checked: every gap lost samples,
    each is on the one batch after its hole, and loss was seen at all."""
    src, sensor, events = asyncio.run(run_emulated("emulated:metawear?loss=0.1&speed=20&seed=3", 20.0))
    batches = [e for e in events if isinstance(e, ImuBatch)]
    gaps = [e for e in events if isinstance(e, SourceStatus) and e.kind == "gap"]
    assert sensor.n_lost > 0.05 * sensor.n_sent
    assert gaps and all(g.details["n_lost"] >= 1 for g in gaps), "a gap that lost nothing"
    assert len(gaps) == sum(b.gap_before for b in batches)
    assert sorted(g.t_s for g in gaps) == sorted(float(b.t_s[0]) for b in batches if b.gap_before)


def _device_decoder(batches: list[ImuBatch]):
    """A decoder that hands out prepared batches, one list per notification."""

    class Prepared:
        def __init__(self) -> None:
            self.queue = list(batches)

        def feed(self, char_uuid: str, data: bytes, t_host_s: float | None = None) -> list[ImuBatch]:
            return [self.queue.pop(0)]

        def reset(self) -> None:
            pass

    return Prepared()


@pytest.mark.parametrize("gyro_hole", [0, 10])
def test_device_clock_flag_without_a_hole_is_no_gap(gyro_hole: int) -> None:
    """Acc and gyro as separate device-clock streams (Polar PMD). A gyro frame flagged ``gap_before`` with
    its samples following on from the last (a refused notification that carried none of them) leaves the
    output whole: no gap, no flagged batch. Flagged after a real hole of gyro samples, the acc samples it
    leaves uncovered are a gap of exactly that many samples."""
    fs = 52.0
    t = 10.0 + np.arange(200) / fs
    acc = np.ones((200, 3))
    gyr = np.zeros((200, 3))
    frames: list[ImuBatch] = []
    for i in range(0, 200, 20):
        frames.append(ImuBatch(t_s=t[i : i + 20], acc_mps2=acc[i : i + 20], time_base="device"))
        j0 = i + gyro_hole if i == 100 else i
        frames.append(
            ImuBatch(
                t_s=t[j0 : i + 20], gyr_rads=gyr[j0 : i + 20], time_base="device",
                gap_before=i == 100, n_lost=gyro_hole if i == 100 else 0,
            )
        )
    sd = StreamDecoder(registry.get("polar_pmd"), {}, fs)
    sd.decoder = _device_decoder(frames)  # type: ignore[assignment]
    out: list = []
    for j in range(len(frames)):
        out += sd.feed(RawNotification(0.5 + j * 10 / fs, "c", b""))
    batches = [e for e in out if isinstance(e, ImuBatch)]
    gaps = [e for e in out if isinstance(e, SourceStatus) and e.kind == "gap"]
    n_out = sum(len(b) for b in batches)
    if gyro_hole == 0:
        assert gaps == [] and not any(b.gap_before for b in batches)
        assert n_out == 200
    else:
        assert [g.details["n_lost"] for g in gaps] == [gyro_hole]
        assert n_out == 200 - gyro_hole


def test_notifications_dropped_by_a_full_inbox_are_a_gap_after_them() -> None:
    """The consumer stalls; the inbox (8 notifications) fills and drops the next 6 (3 acc + 3 gyro frames of
    3 samples: 9 merged samples). The gap is reported on the first notification after the dropped ones, not
    on the older ones still queued when they were dropped, with the 9 samples, once."""
    rate, n = 100.0, 600
    truth, msgs, writes = _metawear_frames(n, rate)
    t_host = (np.arange(len(msgs)) // 2 + 1) * 3 / rate + 0.005  # sample k arrives at k / rate + 0.015 s

    async def run() -> list:
        src = _metawear_source(rate, writes, maxlen=8)
        stall, drop = 100, 6
        for i, (c, d) in enumerate(msgs):
            src.inbox.put_data(float(t_host[i]), c, d)
            if stall <= i < stall + 8 + drop - 1:
                continue  # the consumer stalls: 8 queued, then 6 dropped
            while len(src.inbox):
                src._process(src.inbox.pop())
        assert src.inbox.dropped == drop
        return list(src._out)

    events = asyncio.run(run())
    gaps = [e for e in events if isinstance(e, SourceStatus) and e.kind == "gap"]
    batches = [e for e in events if isinstance(e, ImuBatch)]
    first_after = 100 + 8 + 6  # the first notification accepted after the drop: acc frame of samples 171-173
    assert len(gaps) == 1 and gaps[0].details["n_lost"] == 9
    flagged = [b for b in batches if b.gap_before]
    assert len(flagged) == 1 and flagged[0].t_s[0] == pytest.approx(3 * (first_after // 2) / rate + 0.015, abs=1e-3)
    # the info status sits with that notification too (replay reads it from there)
    i_info = next(i for i, e in enumerate(events) if isinstance(e, SourceStatus) and e.kind == "info")
    raw_before = [e for e in events[:i_info] if isinstance(e, RawNotification)]
    assert raw_before[-1].data == msgs[first_after][1]
    assert sum(len(b) for b in batches) + 9 == n
