"""Polar PMD device model: control-point handling, encoder -> decoder round trips, and decoder fuzzing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pelvimon.firmware_protocols import polar_pmd as pmd
from pelvimon.firmware_protocols.base import ProtocolError, StreamConfig
from pelvimon.firmware_protocols.batch import G_MPS2, ImuBatch

DATA = pmd.DATA_UUID
CP = pmd.CP_UUID
T0_S = 830_000_000.0  # about 2026 in s since 2000
HYP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _connect(config: StreamConfig, **options):
    """A Verity Sense model started by the client's own start sequence; the decoder sees the CP traffic."""
    per = pmd.PROTOCOL.peripheral(**options)
    dec = pmd.PROTOCOL.decoder(config=config)
    for w in pmd.PROTOCOL.start_sequence(config):
        answers = per.handle_write(w.char_uuid, w.data)
        assert len(answers) == 1
        resp = pmd.parse_cp_response(answers[0][1])
        assert resp.ok, resp
        for ch, data in answers:
            assert dec.feed(ch, data) == []
    return per, dec


def _signals(rng, n, acc_range_g, gyro_range_dps):
    acc_g = np.cumsum(rng.normal(0, 0.05, (n, 3)), axis=0) + [0.0, 0.0, 1.0]
    acc_g = np.clip(acc_g, -0.99 * acc_range_g, 0.99 * acc_range_g)
    gyr_dps = np.cumsum(rng.normal(0, 20, (n, 3)), axis=0)
    gyr_dps = np.clip(gyr_dps, -0.99 * gyro_range_dps, 0.99 * gyro_range_dps)
    if n > 10:  # a few full-scale jumps for wide delta blocks
        acc_g[n // 2] = -acc_g[n // 2]
        gyr_dps[n // 3] = -gyr_dps[n // 3]
    return acc_g * G_MPS2, np.deg2rad(gyr_dps)


def _run(per, dec, t, acc, gyr, chunk):
    notes = []
    for i in range(0, len(t), chunk):
        notes += per.encode(
            ImuBatch(t_s=t[i : i + chunk], acc_mps2=acc[i : i + chunk], gyr_rads=gyr[i : i + chunk])
        )
    notes += per.flush()
    batches = [b for ch, data in notes for b in dec.feed(ch, data)]
    return notes, batches


@HYP
@given(
    rate=st.sampled_from(pmd.VERITY_RATES_HZ),
    acc_range=st.sampled_from(pmd.VERITY_ACC_RANGES_G),
    gyro_range=st.sampled_from(pmd.VERITY_GYRO_RANGES_DPS),
    n=st.integers(1, 600),
    chunk=st.integers(1, 80),
    seed=st.integers(0, 2**32 - 1),
    mtu=st.sampled_from([23, 100, 185, 232, 247, 512]),
    max_samples=st.sampled_from([None, 1, 7, 36]),
)
def test_encoder_decoder_roundtrip(rate, acc_range, gyro_range, n, chunk, seed, mtu, max_samples):
    rng = np.random.default_rng(seed)
    config = StreamConfig(rate_hz=rate, acc_range_g=acc_range, gyro_range_dps=gyro_range)
    per, dec = _connect(config, mtu=mtu, max_samples_per_frame=max_samples)
    t = T0_S + np.arange(n) / rate
    acc, gyr = _signals(rng, n, acc_range, gyro_range)
    notes, batches = _run(per, dec, t, acc, gyr, chunk)

    assert all(ch == DATA and len(data) <= mtu - 3 for ch, data in notes)
    accb = [b for b in batches if b.acc_mps2 is not None]
    gyrb = [b for b in batches if b.gyr_rads is not None]
    assert not any(b.gap_before for b in batches)
    A, G = ImuBatch.concat(accb), ImuBatch.concat(gyrb)
    assert len(A) == n and len(G) == n
    # quantisation: ACC 1 mG (factor 1.0), GYRO range/32768 deg/s
    np.testing.assert_allclose(A.acc_mps2, acc, atol=0.5e-3 * G_MPS2 + 1e-9)
    np.testing.assert_allclose(G.gyr_rads, gyr, atol=np.deg2rad(0.5 * gyro_range / 32768) + 1e-9)
    np.testing.assert_allclose(A.t_s, t, atol=1e-6, rtol=0)
    np.testing.assert_allclose(G.t_s, t, atol=1e-6, rtol=0)
    # each frame carries its last sample's time, to the nanosecond
    t_ns = np.rint(t * 1e9).astype(np.int64)
    ends = np.cumsum([len(b) for b in accb]) - 1
    np.testing.assert_array_equal([int(b.native["t_ns"][-1]) for b in accb], t_ns[ends])


def test_frames_fill_the_mtu_with_minimal_widths():
    config = StreamConfig(rate_hz=104)
    per, dec = _connect(config, mtu=232)
    rng = np.random.default_rng(1)
    n = 3000
    t = T0_S + np.arange(n) / 104
    acc, gyr = _signals(rng, n, 8, 2000)
    notes, _ = _run(per, dec, t, acc, gyr, 13)
    sizes = [len(d) for _, d in notes[:-2]]  # all but the flushed tails
    assert max(sizes) <= 229 and min(sizes) >= 229 - 40  # realistic, close to MTU-3
    for _, data in notes:
        hdr = pmd.parse_frame_header(data)
        assert hdr.frame_byte == (0x81 if hdr.measurement_type == pmd.MeasurementType.ACC else 0x80)
        blocks: list[pmd.DeltaBlock] = []
        s = pmd.parse_delta_frame(hdr.content, 3, 16, blocks=blocks)
        d = np.diff(s, axis=0)
        i = 0
        for blk in blocks:
            part = d[i : i + blk.count]
            i += blk.count
            lim = 1 << (blk.bit_width - 1)
            assert np.all((part >= -lim) & (part < lim))
            if blk.bit_width > 2:  # one bit less would not hold every delta of the block
                half = lim >> 1
                assert np.any((part < -half) | (part >= half))


def test_peripheral_settings_queries_real_format():
    per = pmd.PROTOCOL.peripheral()
    ((ch, data),) = per.handle_write(CP, pmd.get_settings_command(pmd.MeasurementType.ACC))
    resp = pmd.parse_cp_response(data)
    assert ch == CP and resp.ok and resp.opcode == 1 and resp.measurement_type == 2
    assert resp.settings() == {
        pmd.SettingType.SAMPLE_RATE: (52,),
        pmd.SettingType.RESOLUTION: (16,),
        pmd.SettingType.RANGE: (8,),
        pmd.SettingType.CHANNELS: (3,),
    }
    ((_, data),) = per.handle_write(CP, pmd.get_sdk_mode_settings_command(pmd.MeasurementType.GYRO))
    full = pmd.parse_cp_response(data).settings()
    assert full[pmd.SettingType.SAMPLE_RATE] == pmd.VERITY_RATES_HZ
    assert full[pmd.SettingType.RANGE] == pmd.VERITY_GYRO_RANGES_DPS
    assert per.read_features() == pmd.encode_features([2, 5, 9])
    assert pmd.parse_cp_response(per.handle_write(CP, pmd.get_settings_command(0))[0][1]).status == 3


def test_peripheral_sdk_mode_gates_rates_and_status():
    per = pmd.PROTOCOL.peripheral()
    start104 = pmd.start_command(pmd.MeasurementType.ACC, 104, 16, 8, 3)
    assert (
        pmd.parse_cp_response(per.handle_write(CP, start104)[0][1]).status == pmd.Status.INVALID_SAMPLE_RATE
    )
    assert pmd.parse_cp_response(per.handle_write(CP, pmd.start_sdk_mode_command())[0][1]).ok
    assert pmd.parse_cp_response(per.handle_write(CP, pmd.start_sdk_mode_command())[0][1]).status == 6
    resp = pmd.parse_cp_response(per.handle_write(CP, start104)[0][1])
    assert resp.ok and resp.settings()[pmd.SettingType.FACTOR] == (1.0,)
    assert per.streaming and per.config == StreamConfig(rate_hz=104.0, acc_range_g=8.0)
    status = pmd.parse_cp_response(per.handle_write(CP, pmd.get_status_command())[0][1])
    assert status.parameters == bytes((0x42, 0x05))  # ACC online, GYRO idle
    sdk = pmd.parse_cp_response(per.handle_write(CP, pmd.get_sdk_mode_status_command())[0][1])
    assert sdk.parameters == b"\x01"
    bad_range = pmd.start_command(pmd.MeasurementType.GYRO, 104, 16, 300, 3)
    assert pmd.parse_cp_response(per.handle_write(CP, bad_range)[0][1]).status == pmd.Status.INVALID_RANGE
    assert pmd.parse_cp_response(per.handle_write(CP, pmd.stop_command(2))[0][1]).ok
    assert not per.streaming
    assert pmd.parse_cp_response(per.handle_write(CP, pmd.stop_command(2))[0][1]).status == 6
    assert pmd.parse_cp_response(per.handle_write(CP, pmd.stop_sdk_mode_command())[0][1]).ok
    assert pmd.parse_cp_response(per.handle_write(CP, b"\x42\x02")[0][1]).status == pmd.Status.INVALID_OP_CODE


def test_peripheral_device_stop_reaches_decoder():
    per, dec = _connect(StreamConfig(rate_hz=52))
    notes = per.device_stop()
    assert notes == [(CP, bytes((1, 2, 5)))]
    assert not per.streaming
    assert dec.feed(*notes[0]) == [] and dec.stopped_by_device == (2, 5)


def test_stop_sequence_answers_and_resets():
    per, dec = _connect(StreamConfig(rate_hz=208))
    statuses = []
    for w in pmd.PROTOCOL.stop_sequence():
        for ch, data in per.handle_write(w.char_uuid, w.data):
            dec.feed(ch, data)
            statuses.append(pmd.parse_cp_response(data).status)
    assert statuses == [0, pmd.Status.ALREADY_IN_STATE, 0, 0]  # MAG was not running
    assert not per.streaming and not per.sdk_mode


# --- fuzzing --------------------------------------------------------------------------------------------


def _check_feed(dec, uuid, payload):
    try:
        out = dec.feed(uuid, payload)
    except ProtocolError as exc:
        assert exc.protocol == "polar_pmd" and str(exc)
        return
    assert isinstance(out, list)
    for b in out:
        assert isinstance(b, ImuBatch) and len(b) > 0
        assert np.all(np.isfinite(b.t_s))
    if uuid == DATA:
        assert len(out) == 1  # a data frame is never silently empty


@settings(max_examples=300, deadline=None)
@given(
    payloads=st.lists(st.tuples(st.sampled_from([DATA, CP]), st.binary(max_size=80)), min_size=1, max_size=6),
    ctx=st.sampled_from([{}, {"sample_rate_hz": 52}, {"previous_timestamp_ns": 100, "factor": 0.5}]),
)
def test_fuzz_arbitrary_bytes(payloads, ctx):
    dec = pmd.PROTOCOL.decoder(**ctx)
    for uuid, payload in payloads:
        _check_feed(dec, uuid, payload)


@settings(max_examples=300, deadline=None)
@given(
    mtype_frame=st.sampled_from(
        [(2, 0x00), (2, 0x01), (2, 0x02), (2, 0x80), (2, 0x81), (5, 0x80), (5, 0x81), (6, 0x80), (6, 0x81)]
    ),
    ts=st.integers(0, 2**64 - 1),
    content=st.binary(max_size=240),
    rate=st.sampled_from([None, 26, 416]),
)
def test_fuzz_valid_headers_random_content(mtype_frame, ts, content, rate):
    mtype, frame = mtype_frame
    payload = bytes((mtype,)) + ts.to_bytes(8, "little") + bytes((frame,)) + content
    dec = pmd.PROTOCOL.decoder(sample_rate_hz=rate)
    _check_feed(dec, DATA, payload)
    _check_feed(dec, DATA, payload)  # same timestamp again: time did not advance


@settings(max_examples=200, deadline=None)
@given(
    widths=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 20)), max_size=5), seed=st.integers(0, 2**16)
)
def test_fuzz_block_structure(widths, seed):
    rng = np.random.default_rng(seed)
    content = bytearray(rng.integers(0, 256, 6, dtype=np.uint8).tobytes())
    for w, c in widths:
        content += bytes((w, c)) + rng.integers(0, 256, -(-(w * c * 3) // 8), dtype=np.uint8).tobytes()
    payload = bytes.fromhex("02009435770000000081") + bytes(content)
    _check_feed(pmd.PROTOCOL.decoder(sample_rate_hz=52), DATA, payload)


@settings(max_examples=200, deadline=None)
@given(writes=st.lists(st.binary(max_size=24), max_size=8))
def test_fuzz_peripheral_writes(writes):
    per = pmd.PROTOCOL.peripheral()
    for w in writes:
        for ch, data in per.handle_write(CP, w):
            assert ch == CP
            pmd.parse_cp_response(data)


def test_decoder_reset_forgets_timing():
    per, dec = _connect(StreamConfig(rate_hz=52))
    t = T0_S + np.arange(200) / 52
    acc, gyr = _signals(np.random.default_rng(0), 200, 8, 2000)
    notes, _ = _run(per, dec, t, acc, gyr, 50)
    dec.reset()
    again = [b for ch, d in notes for b in dec.feed(ch, d)]
    assert not any(b.gap_before for b in again)


@pytest.mark.parametrize("rate", pmd.VERITY_RATES_HZ)
def test_loss_of_a_frame_is_detected_in_roundtrip(rate):
    per, dec = _connect(StreamConfig(rate_hz=rate))
    n = 400
    t = T0_S + np.arange(n) / rate
    acc, gyr = _signals(np.random.default_rng(rate), n, 8, 2000)
    notes = []
    for i in range(0, n, 20):
        notes += per.encode(ImuBatch(t_s=t[i : i + 20], acc_mps2=acc[i : i + 20], gyr_rads=gyr[i : i + 20]))
    acc_notes = [d for _, d in notes if d[0] == pmd.MeasurementType.ACC]
    assert len(acc_notes) >= 3
    lost = pmd.parse_frame_header(acc_notes[1])
    n_lost = len(pmd.parse_delta_frame(lost.content, 3, 16))
    out = [dec.feed(DATA, d)[0] for d in acc_notes[:1] + acc_notes[2:]]
    assert [b.gap_before for b in out] == [False, True] + [False] * (len(out) - 2)
    assert out[1].n_lost == n_lost
    # samples after the gap keep their true times
    start = len(out[0]) + n_lost
    np.testing.assert_allclose(out[1].t_s, t[start : start + len(out[1])], atol=1e-6, rtol=0)


def test_decoder_and_merger_give_combined_batches():
    from pelvimon.firmware_protocols.merge import ImuMerger

    per, dec = _connect(StreamConfig(rate_hz=208))
    n = 2000
    t = T0_S + np.arange(n) / 208
    acc, gyr = _signals(np.random.default_rng(7), n, 8, 2000)
    notes, batches = _run(per, dec, t, acc, gyr, 16)
    merger = ImuMerger(expect=("acc", "gyr"))
    out = [m for b in batches for m in merger.feed(b)] + merger.flush()
    merged = ImuBatch.concat(out)
    assert all(b.gyr_rads is not None for b in out)
    np.testing.assert_allclose(merged.t_s, t, atol=1e-6, rtol=0)
    # quantisation plus interpolation over the float64 time resolution at 8.3e8 s (~1.2e-7 s)
    np.testing.assert_allclose(merged.gyr_rads, gyr, atol=np.deg2rad(0.5 * 2000 / 32768) + 1e-4)
    np.testing.assert_allclose(merged.acc_mps2, acc, atol=0.5e-3 * 9.80665 + 1e-9)
