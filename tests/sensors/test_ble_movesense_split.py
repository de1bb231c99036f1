"""Movesense GSP has no counter: a DATA whose DATA_PART2 was lost, followed by a lost DATA, must not be
completed with the next packet's DATA_PART2 (another packet's gyro). The streaming decoder holds each
reassembled payload until the next DATA's timestamp confirms it, and drops it as a gap when in doubt."""

from __future__ import annotations

import numpy as np
import pytest

from pelvimon.firmware_protocols import movesense as ms
from pelvimon.firmware_protocols.base import ProtocolError
from pelvimon.firmware_protocols.batch import ImuBatch

PATH = "/Meas/IMU6/104"


def _packets(n_packets: int, seed: int = 1) -> tuple[ImuBatch, list[tuple[str, bytes]]]:
    rng = np.random.default_rng(seed)
    n = 8 * n_packets
    b = ImuBatch(
        t_s=5.0 + np.arange(n) / 104.0,
        acc_mps2=rng.normal(0, 9, (n, 3)).astype(np.float32).astype(np.float64),
        gyr_rads=rng.normal(0, 3, (n, 3)),
    )
    dev = ms.PROTOCOL.peripheral()
    dev.handle_write(ms.COMMAND_UUID, ms.subscribe_command(PATH))
    msgs = dev.encode(b)
    assert [m[1][0] for m in msgs[:4]] == [2, 3, 2, 3]  # every packet is DATA + DATA_PART2
    return b, msgs


def _decode(msgs, drop: set[int], confirm: bool) -> list[ImuBatch]:
    dec = ms.PROTOCOL.decoder(path=PATH, confirm_split=confirm)
    out: list[ImuBatch] = []
    for i, (c, d) in enumerate(msgs):
        if i in drop:
            continue
        try:
            out += dec.feed(c, d)
        except ProtocolError:
            continue
    return out


def _check_against_truth(out: list[ImuBatch], truth: ImuBatch) -> np.ndarray:
    got = ImuBatch.concat(out)
    k = np.round((got.t_s - 5.0) * 104.0).astype(int)
    np.testing.assert_allclose(got.acc_mps2, truth.acc_mps2[k], rtol=1e-6)
    np.testing.assert_allclose(got.gyr_rads, truth.gyr_rads[k], rtol=1e-5, atol=1e-6)
    return k


def test_without_confirmation_the_next_packets_part2_completes_a_stale_part1() -> None:
    """The failure being fixed, shown on the plain decoder: packet 1's gyro is packet 2's."""
    truth, msgs = _packets(6)
    # packet 1 = messages 2, 3; packet 2 = 4, 5: lose packet 1's DATA_PART2 and packet 2's DATA
    out = _decode(msgs, drop={3, 4}, confirm=False)
    with pytest.raises(AssertionError):
        _check_against_truth(out, truth)


def test_confirmed_stream_drops_the_packet_in_doubt_and_counts_it() -> None:
    truth, msgs = _packets(6)
    out = _decode(msgs, drop={3, 4}, confirm=True)
    k = _check_against_truth(out, truth)  # no mixed sample
    # packets 0, 3, 4 out (5 is held until a next DATA); 1 and 2 lost: one gap of 16 samples
    np.testing.assert_array_equal(k, np.r_[0:8, 24:40])
    after = next(b for b in out if abs(b.t_s[0] - (5.0 + 24 / 104.0)) < 1e-3)
    assert after.gap_before and after.n_lost == 16


def test_confirmed_stream_without_loss_outputs_every_packet_one_packet_late() -> None:
    truth, msgs = _packets(5)
    dec = ms.PROTOCOL.decoder(path=PATH, confirm_split=True)
    outputs = [dec.feed(c, d) for c, d in msgs]
    assert outputs[1] == []  # packet 0 complete, held
    assert len(outputs[2]) == 1 and outputs[2][0].t_s[0] == pytest.approx(5.0, abs=1e-3)  # next DATA confirms it
    k = _check_against_truth([b for o in outputs for b in o], truth)
    np.testing.assert_array_equal(k, np.arange(32))  # packet 4 still held
    assert not any(b.gap_before for o in outputs for b in o)


@pytest.mark.parametrize("drop", [{1}, {2}, {2, 3}, {3, 4}, {3, 4, 5}, {5, 6}, {3, 6}, {1, 4, 7}])
def test_any_loss_pattern_never_mixes_packets(drop: set[int]) -> None:
    truth, msgs = _packets(8, seed=len(drop))
    out = _decode(msgs, drop=drop, confirm=True)
    k = _check_against_truth(out, truth)
    assert np.all(np.diff(k) > 0)
    got = ImuBatch.concat(out)
    # every hole in the output is flagged with its exact size
    holes = np.flatnonzero(np.diff(k) > 1)
    starts = np.cumsum([0] + [len(b) for b in out])[:-1]
    for h in holes:
        b = out[int(np.searchsorted(starts, h + 1))]
        assert b.gap_before and b.n_lost == k[h + 1] - k[h] - 1
    assert len(got) == len(k)


def test_released_packet_keeps_the_receive_time_of_its_part2() -> None:
    """The clock fit pairs a packet's last sample with when it was complete, not with when the next DATA
    released it (one packet later: 77 ms of bias at 104 Hz)."""
    _, msgs = _packets(3)
    dec = ms.PROTOCOL.decoder(path=PATH, confirm_split=True)
    outs = [dec.feed(c, d, t_host_s=10.0 + i) for i, (c, d) in enumerate(msgs)]
    (first,) = outs[2]
    assert float(first.native["t_host_s"][0]) == 11.0  # DATA_PART2 of packet 0 was message 1


@pytest.mark.parametrize("drop", [{0}, {1}, {0, 1, 2}])
def test_loss_before_the_first_sample_out_is_no_gap(drop: set[int]) -> None:
    """A stream whose first packet (or part of it) was lost starts cleanly: nothing is missing from the output
    before its first sample, so no gap status and no ``gap_before``; a later loss is still a gap."""
    from pelvimon.sensors.ble import StreamDecoder
    from pelvimon.sensors.source import RawNotification, SourceStatus

    _, msgs = _packets(8)
    sd = StreamDecoder(ms.PROTOCOL, {"path": PATH, "confirm_split": True}, 104.0)
    out: list = []
    for i, (c, d) in enumerate(msgs):
        if i not in drop | {10}:  # and packet 5's DATA later
            out += sd.feed(RawNotification(0.1 + 0.04 * i, c, d))
    kinds = ["gap" if isinstance(e, SourceStatus) and e.kind == "gap" else type(e).__name__ for e in out]
    first = next(e for e in out if isinstance(e, ImuBatch))
    assert kinds.index("ImuBatch") < kinds.index("gap") and not first.gap_before and first.n_lost == 0
    gaps = [e for e in out if isinstance(e, SourceStatus) and e.kind == "gap"]
    # packet 5 lost; packet 4 kept: its DATA_PART2 and packet 5's lone one both came before packet 6's DATA
    assert len(gaps) == 1 and gaps[0].details["n_lost"] == 8
    assert sd.n_lost == 8
    assert sd.decoder.n_split_dropped == 0


def _provable(n_packets: int, drop: set[int]) -> tuple[set[int], int]:
    """Packets whose DATA + DATA_PART2 can be proven to belong together from what arrived (independent of
    the decoder): received DATAs k and j next, DATA_PART2s of packets k … j − 1 arrive in that order, the
    one after DATA k completes it; it is k's own if j = k + 1, or if all j − k of them came. Returns those
    packets (the last DATA's packet is still held: left out) and the count of packets held in doubt."""
    got = [i for i in range(2 * n_packets) if i not in drop]
    datas = [i // 2 for i in got if i % 2 == 0]
    proven: set[int] = set()
    n_doubt = 0
    for k, j in zip(datas, datas[1:], strict=False):
        n_part2 = sum(1 for i in got if i % 2 == 1 and k <= i // 2 < j)
        if n_part2 and (j == k + 1 or n_part2 == j - k):
            proven.add(k)
        elif n_part2:
            n_doubt += 1
    return proven, n_doubt


@pytest.mark.parametrize("loss", [0.01, 0.1, 0.4])
def test_random_loss_keeps_every_provable_packet_and_counts_exactly_what_is_missing(loss: float) -> None:
    n_packets = 400
    truth, msgs = _packets(n_packets, seed=3)
    drop = set(np.flatnonzero(np.random.default_rng(7).random(len(msgs)) < loss).tolist())
    dec = ms.PROTOCOL.decoder(path=PATH, confirm_split=True)
    out: list[ImuBatch] = []
    for i, (c, d) in enumerate(msgs):
        if i not in drop:
            try:
                out += dec.feed(c, d)
            except ProtocolError:
                pass
    k = _check_against_truth(out, truth)  # never a mixed sample
    kept = set((k // 8).tolist())
    proven, n_doubt = _provable(n_packets, drop)
    assert kept == proven and len(k) == 8 * len(proven)
    assert dec.n_split_dropped == n_doubt and dec.n_split_dropped_samples == 8 * n_doubt
    # the loss reported is the samples missing between the first and the last sample out, no more
    span = int(k[-1] - k[0] + 1)
    assert sum(b.n_lost for b in out[1:]) == span - len(k)
    whole = {p for p in range(n_packets) if 2 * p not in drop and 2 * p + 1 not in drop}
    assert whole >= proven  # a packet kept always arrived whole


@pytest.mark.parametrize("drop", [None, 80])
def test_1666_hz_ms_stamps_make_no_false_gap_and_a_lost_packet_counts_exactly(drop: int | None) -> None:
    """At 1666 Hz a sample lasts 0.6 ms but the packet stamp counts whole ms: successive packets are up to
    1 ms off their true spacing, which is no loss. A lost packet is 12 samples (7.2 ms) and still a gap
    (packet 40's DATA lost here; its DATA_PART2 came, so packet 39 before it is kept)."""
    from pelvimon.sensors.ble import StreamDecoder
    from pelvimon.sensors.source import RawNotification, SourceStatus

    rate, path = 1666.0, "/Meas/IMU6/1666"
    n = 12 * 100
    dev = ms.PROTOCOL.peripheral()
    dev.handle_write(ms.COMMAND_UUID, ms.subscribe_command(path))
    b = ImuBatch(t_s=5.0 + np.arange(n) / rate, acc_mps2=np.zeros((n, 3)), gyr_rads=np.zeros((n, 3)))
    msgs = dev.encode(b)
    assert len(msgs) == 200  # 12 samples a packet, DATA + DATA_PART2
    sd = StreamDecoder(ms.PROTOCOL, {"path": path, "confirm_split": True}, rate)
    out: list = []
    for i, (c, d) in enumerate(msgs):
        if i != drop:
            out += sd.feed(RawNotification(0.1 + 0.0036 * i, c, d))
    gaps = [e.details["n_lost"] for e in out if isinstance(e, SourceStatus) and e.kind == "gap"]
    n_out = sum(len(e) for e in out if isinstance(e, ImuBatch))
    if drop is None:
        assert gaps == [] and n_out == n - 12  # the last packet is still held
    else:
        assert gaps == [12] and sd.n_lost == 12 and n_out == n - 24
