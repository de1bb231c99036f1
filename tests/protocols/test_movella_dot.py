"""Movella DOT: vendor vectors, layouts against the official example server, round trips, wrap, loss, errors."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from pelvimon.firmware_protocols import movella_dot as md
from pelvimon.firmware_protocols.base import (
    MalformedFrameError,
    ProtocolError,
    StreamConfig,
    UnsupportedFrameError,
)
from pelvimon.firmware_protocols.batch import G_MPS2, ImuBatch

P = md.PROTOCOL
MEDIUM, SHORT, LONG = md.MEDIUM_PAYLOAD_UUID, md.SHORT_PAYLOAD_UUID, md.LONG_PAYLOAD_UUID


@pytest.fixture(scope="module")
def vectors(shared_dir) -> dict:
    return json.loads((shared_dir / "protocols" / "vectors" / "movella_dot.json").read_text())


# ---------------------------------------------------------------------------------------------- vendor vectors


def test_uuids_match_the_vector_file(vectors) -> None:
    u = {k: v.lower() for k, v in vectors["uuids"].items()}
    assert u["measurement_control"] == md.MEASUREMENT_CONTROL_UUID == P.spec.write_uuid
    assert u["long_payload_notify"] == LONG
    assert u["medium_payload_notify"] == MEDIUM
    assert u["short_payload_notify"] == SHORT
    assert u["device_control"] == md.DEVICE_CONTROL_UUID
    assert u["battery"] == md.BATTERY_UUID


def test_free_acceleration_vector_decodes_to_the_printed_values(vectors) -> None:
    v = next(x for x in vectors["vectors"] if x["id"] == "dot_free_acceleration_1")
    payload = bytes.fromhex(v["payload_hex"])
    assert len(payload) == md.PAYLOAD_SIZE[SHORT]
    native = md.parse_payloads(6, payload)
    assert int(native["timestamp_us"][0]) == v["expected"]["timestamp_us"]
    # The source prints numpy float32 values (7 significant digits).
    np.testing.assert_allclose(native["free_acc_mps2"][0], v["expected"]["free_acc_mps2"], rtol=1e-6)
    assert payload[md.MODES[6].size :] == bytes(4) and v["expected"]["zero_padding"] == 0


def test_free_acceleration_only_mode_is_refused_by_the_decoder_with_a_clear_message(vectors) -> None:
    v = next(x for x in vectors["vectors"] if x["id"] == "dot_free_acceleration_1")
    with pytest.raises(UnsupportedFrameError, match="mode 21"):
        P.decoder(payload_mode=6).feed(SHORT, bytes.fromhex(v["payload_hex"]))


def test_command_vectors(vectors) -> None:
    by_id = {v["id"]: v for v in vectors["vectors"]}
    start6 = by_id["dot_cmd_start_free_acceleration"]
    assert md.measurement_control(True, start6["expected"]["payload_mode"]).hex() == start6["payload_hex"]
    rq = by_id["dot_cmd_start_rate_quantities"]
    assert md.measurement_control(True, rq["expected"]["payload_mode"]).hex() == rq["payload_hex"]
    # pelvimon's own start sequence ends with exactly that write, to the measurement control characteristic.
    last = P.start_sequence(StreamConfig(rate_hz=60.0))[-1]
    assert (last.char_uuid, last.data.hex()) == (md.MEASUREMENT_CONTROL_UUID, rq["payload_hex"])
    assert md.MODES[rq["expected"]["payload_mode"]].char_uuid == MEDIUM
    assert md.MODES[21].size == 28  # "28 bytes used" in the vector notes
    # The quirk: custom mode 5 is 26 decimal (0x1a), not 0x26.
    assert md.measurement_control(True, 26) == bytes([1, 1, 0x1A])
    with pytest.raises(UnsupportedFrameError):
        md.payload_mode(0x26)


def test_every_vector_in_the_file_is_covered(vectors) -> None:
    covered = {"dot_free_acceleration_1", "dot_cmd_start_free_acceleration", "dot_cmd_start_rate_quantities"}
    assert {v["id"] for v in vectors["vectors"]} <= covered


# ------------------------------------------------------------------------- layouts: independent byte oracle


def test_rate_quantities_layout_against_a_hand_packed_notification() -> None:
    # Official server: acc float32 x3 at offset 4, gyro float32 x3 at 16 (deg/s); padded to 40 bytes.
    raw = struct.pack("<I3f3f", 123456, 0.5, -9.75, 1.25, 90.0, -45.0, 180.0) + bytes(12)
    (b,) = P.decoder().feed(MEDIUM, raw)
    assert b.t_s[0] == pytest.approx(0.123456)
    np.testing.assert_array_equal(b.acc_mps2[0], [0.5, -9.75, 1.25])
    np.testing.assert_allclose(b.gyr_rads[0], np.deg2rad([90.0, -45.0, 180.0]))
    assert b.native["gyr_dps"][0].tolist() == [90.0, -45.0, 180.0]
    assert b.mag_uT is None and b.quat_wxyz is None and b.time_base == "device"


def test_rate_quantities_with_mag_layout() -> None:
    # Mode 20: mag int16 x3 at offset 28, value / 2**12 (arbitrary units).
    raw = struct.pack("<I3f3f3h", 7, 0.0, 0.0, 9.8, 1.0, 2.0, 3.0, 4096, -2048, 100) + bytes(6)
    (b,) = P.decoder(payload_mode=20).feed(MEDIUM, raw)
    np.testing.assert_allclose(b.native["mag_au"][0], [1.0, -0.5, 100 / 4096])
    assert b.mag_uT is None  # arbitrary units are not µT


def test_custom_mode_1_layout_and_euler_convention() -> None:
    # Mode 22: Euler deg at 4, free acc at 16, gyro at 28 (40 bytes, the whole medium characteristic).
    roll, pitch, yaw = 10.0, -20.0, 135.0
    raw = struct.pack("<I3f3f3f", 99, roll, pitch, yaw, 0.1, 0.2, 0.3, 4.0, 5.0, 6.0)
    assert len(raw) == 40
    (b,) = P.decoder(payload_mode=22).feed(MEDIUM, raw)
    ref = Rotation.from_euler("ZYX", [yaw, pitch, roll], degrees=True).as_quat()  # x, y, z, w
    q = b.quat_wxyz[0]
    assert min(np.abs(q - np.r_[ref[3], ref[:3]]).max(), np.abs(q + np.r_[ref[3], ref[:3]]).max()) < 1e-6
    np.testing.assert_allclose(b.native["free_acc_mps2"][0], [0.1, 0.2, 0.3], rtol=1e-6)
    np.testing.assert_allclose(b.gyr_rads[0], np.deg2rad([4.0, 5.0, 6.0]), rtol=1e-6)
    assert b.acc_mps2 is None


def test_extended_quaternion_status_and_clip_counters() -> None:
    raw = struct.pack("<I4f3fHBB", 5, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0x0102, 3, 4) + bytes(4)
    (b,) = P.decoder(payload_mode=2).feed(MEDIUM, raw)
    assert b.native["status"][0] == 0x0102
    assert (b.native["clip_count_acc"][0], b.native["clip_count_gyr"][0]) == (3, 4)
    np.testing.assert_array_equal(b.quat_wxyz[0], [1.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize(
    ("mode", "size", "char"),
    [(2, 36, MEDIUM), (3, 32, MEDIUM), (4, 16, SHORT), (5, 20, SHORT), (6, 16, SHORT), (7, 32, MEDIUM),
     (16, 28, MEDIUM), (20, 34, MEDIUM), (21, 28, MEDIUM), (22, 40, MEDIUM), (23, 34, MEDIUM),
     (24, 32, MEDIUM), (26, 44, LONG)],
)  # fmt: skip
def test_mode_sizes_and_characteristics(mode: int, size: int, char: str) -> None:
    m = md.MODES[mode]
    assert (m.size, m.char_uuid) == (size, char)
    assert m.size <= md.PAYLOAD_SIZE[char]


def test_euler_quaternion_helpers_are_inverse_and_match_scipy() -> None:
    rng = np.random.default_rng(3)
    e = np.column_stack([rng.uniform(-179, 179, 50), rng.uniform(-85, 85, 50), rng.uniform(-179, 179, 50)])
    q = md.euler_deg_to_quat_wxyz(e)
    ref = Rotation.from_euler("ZYX", e[:, ::-1], degrees=True).as_quat()
    np.testing.assert_allclose(np.abs(np.sum(q * np.c_[ref[:, 3], ref[:, :3]], axis=1)), 1.0, atol=1e-12)
    np.testing.assert_allclose(md.quat_wxyz_to_euler_deg(q), e, atol=1e-9)


# -------------------------------------------------------------------------------------------- round trips


def _stream(n: int, rate: float, t0_s: float, seed: int) -> ImuBatch:
    rng = np.random.default_rng(seed)
    t = t0_s + np.arange(n) / rate
    acc = rng.normal(0.0, 4.0, (n, 3)) + [0.0, 0.0, G_MPS2]
    gyr = rng.normal(0.0, 2.0, (n, 3))
    q = Rotation.random(n, random_state=seed).as_quat()
    return ImuBatch(t_s=t, acc_mps2=acc, gyr_rads=gyr, quat_wxyz=np.c_[q[:, 3], q[:, :3]])


def _started(mode: int, rate: int = 60) -> md.DotPeripheral:
    per = P.peripheral()
    per.handle_write(md.DEVICE_CONTROL_UUID, md.device_control_output_rate(rate))
    per.handle_write(md.MEASUREMENT_CONTROL_UUID, md.measurement_control(True, mode))
    return per


@settings(max_examples=25, deadline=None)
@given(
    mode=st.sampled_from([2, 3, 4, 5, 7, 16, 21, 22, 24, 26]),
    rate=st.sampled_from(md.LIVE_RATES_HZ),
    t0_s=st.floats(0.0, 4400.0),
    seed=st.integers(0, 2**16),
)
def test_encoder_decoder_round_trip(mode: int, rate: int, t0_s: float, seed: int) -> None:
    batch = _stream(40, rate, t0_s, seed)
    per = _started(mode, rate)
    notes = per.encode(batch)
    m = md.MODES[mode]
    assert len(notes) == 40 and all(c == m.char_uuid and len(p) == md.PAYLOAD_SIZE[c] for c, p in notes)
    dec = P.decoder(payload_mode=mode, output_rate_hz=rate)
    batches = [b for c, p in notes for b in dec.feed(c, p)]
    out = ImuBatch.concat(batches)
    # Device time: µs resolution, unwrapped across the 2**32 µs rollover (t0 up to 4400 s crosses it).
    t_expected = np.round(batch.t_s * 1e6) % 2**32
    np.testing.assert_allclose(
        out.t_s - out.t_s[0], (np.unwrap(t_expected, period=2**32) - t_expected[0]) * 1e-6, atol=1e-9
    )
    assert np.all(np.diff(out.t_s) > 0) and out.n_lost == 0
    if "acc" in m.fields:
        np.testing.assert_allclose(out.acc_mps2, batch.acc_mps2, rtol=1e-6, atol=1e-6)
    if "gyr" in m.fields:
        np.testing.assert_allclose(out.gyr_rads, batch.gyr_rads, rtol=1e-6, atol=1e-6)
    if "quat" in m.fields or "euler" in m.fields:
        dots = np.abs(np.sum(out.quat_wxyz * batch.quat_wxyz, axis=1))
        np.testing.assert_allclose(dots, 1.0, atol=1e-5)
    if "free_acc" in m.fields:
        r = Rotation.from_quat(np.c_[batch.quat_wxyz[:, 1:], batch.quat_wxyz[:, :1]])
        np.testing.assert_allclose(
            np.concatenate([b.native["free_acc_mps2"] for b in batches]),
            r.apply(batch.acc_mps2) - [0, 0, G_MPS2],
            atol=1e-4,
        )


def test_feed_many_equals_feeding_one_by_one() -> None:
    notes = _started(21).encode(_stream(100, 60, 10.0, 1))
    one = ImuBatch.concat([b for c, p in notes for b in P.decoder().feed(c, p)])
    many = P.decoder().feed_many(MEDIUM, [p for _, p in notes])[0]
    np.testing.assert_array_equal(one.t_s, many.t_s)
    np.testing.assert_array_equal(one.acc_mps2, many.acc_mps2)
    np.testing.assert_array_equal(one.gyr_rads, many.gyr_rads)


# ---------------------------------------------------------------------------------------- time, wrap, loss


def _rq(ts_us: int) -> bytes:
    return struct.pack("<I3f3f", ts_us % 2**32, 0, 0, 9.8, 0, 0, 0) + bytes(12)


def test_timestamp_wrap_around_is_unwrapped() -> None:
    dec = P.decoder()
    period = round(1e6 / 60)
    start = 2**32 - 2 * period
    ts = [start + k * period for k in range(6)]
    out = [dec.feed(MEDIUM, _rq(t))[0] for t in ts]
    t = np.concatenate([b.t_s for b in out])
    np.testing.assert_allclose(np.diff(t), period * 1e-6, atol=1e-12)
    assert t[-1] > 2**32 * 1e-6  # past the rollover, still increasing
    assert not any(b.gap_before for b in out)


def test_second_wrap_keeps_counting() -> None:
    dec = P.decoder(output_rate_hz=1)
    t = [dec.feed(MEDIUM, _rq(k * 2**30))[0].t_s[0] for k in range(10)]
    np.testing.assert_allclose(np.diff(t), 2**30 * 1e-6)


def test_loss_from_timestamps_including_across_the_wrap() -> None:
    dec = P.decoder()
    period = 1e6 / 60
    stamps = [round(2**32 - 3 * period + k * period) for k in (0, 1, 5, 6)]  # 3 lost, across the rollover
    out = [dec.feed(MEDIUM, _rq(t))[0] for t in stamps]
    assert [b.n_lost for b in out] == [0, 0, 3, 0]
    assert [b.gap_before for b in out] == [False, False, True, False]


def test_loss_at_a_lower_output_rate() -> None:
    dec = P.decoder(output_rate_hz=20)
    dec.feed(MEDIUM, _rq(0))
    assert dec.feed(MEDIUM, _rq(50_000))[0].n_lost == 0
    assert dec.feed(MEDIUM, _rq(200_000))[0].n_lost == 2


def test_timestamp_going_back_or_repeating_is_malformed_and_keeps_state() -> None:
    dec = P.decoder()
    dec.feed(MEDIUM, _rq(1_000_000))
    with pytest.raises(MalformedFrameError, match="did not advance"):
        dec.feed(MEDIUM, _rq(1_000_000))
    with pytest.raises(MalformedFrameError, match="back"):
        dec.feed(MEDIUM, _rq(900_000))
    assert dec.feed(MEDIUM, _rq(1_016_667))[0].n_lost == 0
    dec.reset()
    assert dec.feed(MEDIUM, _rq(5))[0].t_s[0] == pytest.approx(5e-6)


# ------------------------------------------------------------------------------------------------- errors


def test_notification_on_the_wrong_payload_characteristic_names_the_right_one() -> None:
    with pytest.raises(MalformedFrameError, match=MEDIUM):
        P.decoder().feed(SHORT, bytes(20))


def test_unknown_characteristic_is_unsupported() -> None:
    with pytest.raises(UnsupportedFrameError):
        P.decoder().feed(md.BATTERY_UUID, bytes(2))


@pytest.mark.parametrize("n", [0, 27, 41, 63])
def test_wrong_lengths_are_malformed(n: int) -> None:
    with pytest.raises(MalformedFrameError, match="bytes"):
        P.decoder().feed(MEDIUM, bytes(n))


def test_data_in_the_padding_means_another_mode() -> None:
    # A custom mode 1 notification (40 bytes, gyro in bytes 28..39) read as rate quantities (28 bytes + padding).
    raw = struct.pack("<I3f3f3f", 99, 10.0, -20.0, 135.0, 0.1, 0.2, 0.3, 4.0, 5.0, 6.0)
    with pytest.raises(MalformedFrameError, match="another payload mode"):
        P.decoder().feed(MEDIUM, raw)
    assert len(P.decoder(payload_mode=22).feed(MEDIUM, raw)) == 1


def test_non_finite_values_are_malformed() -> None:
    raw = struct.pack("<I3f3f", 1, float("nan"), 0, 0, 0, 0, 0)
    with pytest.raises(MalformedFrameError, match="non-finite"):
        P.decoder().feed(MEDIUM, raw)


@pytest.mark.parametrize("mode", [1, 17, 18, 19, 25, 0, 99, "x"])
def test_modes_not_decoded_are_refused_at_construction(mode) -> None:
    with pytest.raises(UnsupportedFrameError):
        P.decoder(payload_mode=mode)


def test_unknown_context_key_and_bad_rate() -> None:
    with pytest.raises(TypeError, match="payload_mode"):
        P.decoder(rate=60)
    with pytest.raises(MalformedFrameError):
        P.decoder(output_rate_hz=0)


@settings(max_examples=150, deadline=None)
@given(
    char=st.sampled_from([MEDIUM, SHORT, LONG]),
    mode=st.sampled_from(sorted(md.MODES)),
    data=st.binary(max_size=70),
)
def test_fuzz_bytes_give_batches_or_protocol_errors(char: str, mode: int, data: bytes) -> None:
    dec = P.decoder(payload_mode=mode)
    try:
        out = dec.feed(char, data)
    except ProtocolError:
        return
    assert isinstance(out, list) and all(isinstance(b, ImuBatch) and len(b) == 1 for b in out)


# --------------------------------------------------------------------------------------- commands, device


def test_start_sequence_sets_the_rate_then_starts() -> None:
    seq = P.start_sequence(StreamConfig(rate_hz=100.0, mag=True))
    dc, start = seq
    assert dc.char_uuid == md.DEVICE_CONTROL_UUID and len(dc.data) == 32 and dc.data[0] == 0x10
    assert int.from_bytes(dc.data[24:26], "little") == 60  # 100 Hz is not a live rate: nearest is 60
    assert start.data == bytes([1, 1, 20]) and start.response
    assert P.stop_sequence()[0].data == bytes([1, 0, 21])


@pytest.mark.parametrize(
    ("asked", "got"), [(60, 60), (100, 60), (50, 60), (25, 30), (11, 12), (0.1, 1), (13, 12)]
)
def test_nearest_live_rate(asked: float, got: int) -> None:
    assert md.nearest_live_rate(asked) == got


def test_peripheral_commands() -> None:
    per = P.peripheral()
    assert not per.streaming and per.config is None and per.encode(_stream(3, 60, 0, 0)) == []
    per.handle_write(md.DEVICE_CONTROL_UUID, md.device_control_output_rate(30))
    per.handle_write(md.MEASUREMENT_CONTROL_UUID, bytes([1, 1, 21]))
    assert per.streaming and per.config.rate_hz == 30.0
    per.handle_write(md.MEASUREMENT_CONTROL_UUID, bytes([1, 0, 21]))
    assert not per.streaming and per.encode(_stream(3, 60, 0, 0)) == []
    with pytest.raises(MalformedFrameError):
        per.handle_write(md.MEASUREMENT_CONTROL_UUID, bytes([2, 1, 21]))
    with pytest.raises(MalformedFrameError):
        per.handle_write(md.DEVICE_CONTROL_UUID, md.device_control_output_rate(50))
    with pytest.raises(UnsupportedFrameError):
        per.handle_write(md.MEASUREMENT_CONTROL_UUID, bytes([1, 1, 17]))


def test_encoder_needs_the_channels_of_the_mode() -> None:
    per = _started(5)
    b = ImuBatch(t_s=np.arange(3) / 60, acc_mps2=np.zeros((3, 3)), gyr_rads=np.zeros((3, 3)))
    with pytest.raises(UnsupportedFrameError, match="quat_wxyz"):
        per.encode(b)


def test_decoder_learns_mode_and_rate_from_the_client_writes() -> None:
    dec = P.decoder()
    for w in P.start_sequence(StreamConfig(rate_hz=20.0, mag=True)):
        dec.observe_write(w.char_uuid, w.data)
    assert dec.mode.number == 20 and dec.output_rate_hz == 20.0
    assert P.decoder_context(StreamConfig(rate_hz=20.0, mag=True)) == {
        "payload_mode": 20,
        "output_rate_hz": 20,
    }
    raw = struct.pack("<I3f3f3h", 0, 0, 0, 9.8, 0, 0, 0, 1, 2, 3)
    dec.feed(MEDIUM, raw + bytes(6))
    assert (
        dec.feed(MEDIUM, struct.pack("<I3f3f3h", 100_000, 0, 0, 9.8, 0, 0, 0, 1, 2, 3) + bytes(6))[0].n_lost
        == 1
    )
    dec.observe_write(md.MEASUREMENT_CONTROL_UUID, bytes([1, 1, 17]))  # an SDK-only mode
    with pytest.raises(UnsupportedFrameError, match="SDK"):
        dec.feed(MEDIUM, raw + bytes(6))
    dec.observe_write(md.BATTERY_UUID, b"\x01")  # ignored
    dec.observe_write(md.MEASUREMENT_CONTROL_UUID, bytes([1, 1, 21]))
    assert dec.mode.number == 21
