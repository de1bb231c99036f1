"""Movesense GSP v1: vendor command vectors, device model, decoder (reassembly, clock wrap, loss), fuzzing.

The vendor publishes no data-notification captures with decoded values, so every data-path test here is
synthetic: the device model encodes known samples with the documented layout and the decoder must give
them back.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pelvimon.firmware_protocols import movesense as ms
from pelvimon.firmware_protocols import registry
from pelvimon.firmware_protocols.base import (
    GattWrite,
    MalformedFrameError,
    ProtocolError,
    StreamConfig,
    UnsupportedFrameError,
)
from pelvimon.firmware_protocols.batch import ImuBatch

D = ms.DATA_UUID
C = ms.COMMAND_UUID


@pytest.fixture(scope="module")
def vectors(shared_dir):
    path = shared_dir / "protocols" / "vectors" / "movesense_gsp.json"
    return {v["id"]: v for v in json.loads(path.read_text())["vectors"]}, json.loads(path.read_text())


def test_registry_and_uuids_match_vendor(vectors):
    _, doc = vectors
    proto = registry.get("movesense")
    assert proto is ms.PROTOCOL
    assert proto.spec.service_uuids == (doc["uuids"]["service"].lower(),)
    assert proto.spec.write_uuid == doc["uuids"]["write"].lower()
    assert proto.spec.notify_uuids == (doc["uuids"]["notify"].lower(),)
    import re

    assert any(re.search(p, "Movesense 174630000192") for p in proto.spec.name_patterns)
    assert not any(re.search(p, "Polar Sense B5") for p in proto.spec.name_patterns)


def test_subscribe_vector_is_byte_exact(vectors):
    v = vectors[0]["gsp_subscribe_imu9_104"]
    exp = v["expected"]
    assert ms.subscribe_command(exp["path"], exp["client_reference"]).hex() == v["payload_hex"]
    writes = ms.PROTOCOL.start_sequence(StreamConfig(rate_hz=100.0, mag=True))
    assert writes == [GattWrite(C, bytes.fromhex(v["payload_hex"]), response=True)]


def test_unsubscribe_and_stop_sequence(vectors):
    v = vectors[0]["gsp_unsubscribe"]
    assert ms.unsubscribe_command(v["expected"]["client_reference"]).hex() == v["payload_hex"]
    assert ms.PROTOCOL.stop_sequence() == [GattWrite(C, bytes.fromhex(v["payload_hex"]), response=True)]


def test_start_without_mag_subscribes_imu6_at_nearest_rate():
    (w,) = ms.PROTOCOL.start_sequence(StreamConfig(rate_hz=200.0))
    assert w.data == b"\x01\x63/Meas/IMU6/208" and w.response is True


def test_hello_vector_model_answers_and_decoder_accepts(vectors):
    v = vectors[0]["gsp_hello"]
    assert ms.hello_command(1).hex() == v["payload_hex"]
    dev = ms.PROTOCOL.peripheral()
    assert dev.handle_write(C, bytes.fromhex(v["payload_hex"])) == [(D, bytes.fromhex(v["response_hex"]))]
    dec = ms.PROTOCOL.decoder()
    assert dec.feed(D, bytes.fromhex(v["response_hex"])) == []
    assert dec.command_results[-1].is_hello and dec.command_results[-1].reference == 1


def test_no_free_slot_vector_from_model(vectors):
    v = vectors[0]["gsp_error_no_free_slot"]
    dev = ms.PROTOCOL.peripheral()
    for ref in (1, 2, 3, 4):
        assert dev.handle_write(C, ms.subscribe_command("/Meas/Acc/13", ref)) == []
    assert dev.handle_write(C, ms.subscribe_command("/Meas/IMU9/104", 99)) == [
        (D, bytes.fromhex(v["payload_hex"]))
    ]
    dec = ms.PROTOCOL.decoder()
    assert dec.feed(D, bytes.fromhex(v["payload_hex"])) == []
    assert dec.command_results[-1].data == b"\x01\xfb"


def test_model_parses_subscribe_and_unsubscribe():
    dev = ms.PROTOCOL.peripheral()
    assert not dev.streaming and dev.config is None
    for w in ms.PROTOCOL.start_sequence(StreamConfig(rate_hz=104.0, mag=True)):
        dev.handle_write(w.char_uuid, w.data)
    assert dev.streaming and dev.config == StreamConfig(rate_hz=104.0, mag=True)
    assert dev.subscriptions[99].path == "/Meas/IMU9/104"
    for w in ms.PROTOCOL.stop_sequence():
        dev.handle_write(w.char_uuid, w.data)
    assert not dev.streaming


def _batch(n, rate, t0_s=1.0, seed=0, mag=True):
    rng = np.random.default_rng(seed)
    t = t0_s + np.arange(n) / rate
    return ImuBatch(
        t_s=t,
        acc_mps2=rng.normal(0, 9, (n, 3)).astype(np.float32).astype(np.float64),
        gyr_rads=rng.normal(0, 3, (n, 3)),
        mag_uT=rng.normal(0, 40, (n, 3)).astype(np.float32).astype(np.float64) if mag else None,
    )


def _run(path, batch, spp=None, drop=lambda i, msg: False):
    dev = ms.PROTOCOL.peripheral(samples_per_packet=spp)
    dev.handle_write(C, ms.subscribe_command(path))
    msgs = dev.encode(batch)
    dec = ms.PROTOCOL.decoder(path=path)
    out, errors = [], []
    for i, (char, data) in enumerate(msgs):
        if drop(i, data):
            continue
        try:
            out += dec.feed(char, data)
        except ProtocolError as e:
            errors.append(e)
    return msgs, out, errors


def test_imu9_104_is_8_samples_split_at_150_bytes():
    msgs, out, errors = _run("/Meas/IMU9/104", _batch(16, 104.0))
    assert [len(m[1]) for m in msgs] == [152, 144, 152, 144]  # 292 payload bytes: 150 + 142
    assert [m[1][0] for m in msgs] == [2, 3, 2, 3]
    assert [len(b) for b in out] == [8, 8] and not errors


def test_split_payload_waits_for_part2():
    b = _batch(8, 104.0)
    dev = ms.PROTOCOL.peripheral()
    dev.handle_write(C, ms.subscribe_command("/Meas/IMU9/104"))
    (c1, p1), (c2, p2) = dev.encode(b)
    dec = ms.PROTOCOL.decoder(path="/Meas/IMU9/104")
    assert dec.feed(c1, p1) == []
    (got,) = dec.feed(c2, p2)
    np.testing.assert_allclose(got.acc_mps2, b.acc_mps2, rtol=1e-6)
    np.testing.assert_allclose(got.native["gyro_dps"], np.degrees(b.gyr_rads), rtol=1e-5)


def test_struct_of_arrays_layout_hand_built():
    """A payload built by hand from the documented layout (all acc, then all gyro)."""
    acc = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype="<f4")
    gyro = np.array([[90.0, 0.0, -90.0], [180.0, 0.0, 0.0]], dtype="<f4")
    payload = (1234).to_bytes(4, "little") + acc.tobytes() + gyro.tobytes()
    (b,) = ms.PROTOCOL.decoder(path="/Meas/IMU6/52").feed(D, bytes((2, 99)) + payload)
    np.testing.assert_array_equal(b.acc_mps2, acc)
    np.testing.assert_allclose(b.gyr_rads, np.radians(gyro))
    np.testing.assert_allclose(b.t_s, [1.234, 1.234 + 1 / 52])
    assert b.time_base == "device" and b.mag_uT is None


@settings(max_examples=25, deadline=None)
@given(
    rate=st.sampled_from(ms.RATES_HZ),
    kind=st.sampled_from(sorted(ms.ARRAYS)),
    n=st.integers(1, 60),
    t0=st.floats(0, 4.0e6),
    seed=st.integers(0, 2**16),
)
def test_round_trip_every_rate_and_resource(rate, kind, n, t0, seed):
    path = f"/Meas/{kind}/{int(rate)}"
    b = _batch(n, rate, t0, seed)
    msgs, out, errors = _run(path, b)
    assert not errors
    spp = ms.default_samples_per_packet(ms.parse_path(path))
    n_full = (n // spp) * spp
    if n_full == 0:
        assert out == []
        return
    got = ImuBatch.concat(out)
    assert len(got) == n_full
    arrays = ms.ARRAYS[kind]
    if "acc" in arrays:
        np.testing.assert_allclose(got.acc_mps2, b.acc_mps2[:n_full], rtol=1e-6)
    if "gyro" in arrays:
        np.testing.assert_allclose(got.gyr_rads, b.gyr_rads[:n_full], rtol=1e-5, atol=1e-6)
    if "mag" in arrays:
        np.testing.assert_allclose(got.mag_uT, b.mag_uT[:n_full], rtol=1e-6)
    # packet timestamps are whole ms: within 0.5 ms of the truth; samples in between at 1/fs
    np.testing.assert_allclose(got.t_s, b.t_s[:n_full], atol=0.0005 + 1e-9)
    assert not any(x.gap_before for x in out)


def test_clock_wrap_is_unwrapped():
    wrap_s = 2**32 / 1000.0
    b = _batch(104, 104.0, t0_s=wrap_s - 0.5)
    msgs, out, errors = _run("/Meas/IMU6/104", b)
    raw = [int.from_bytes(m[1][2:6], "little") for m in msgs if m[1][0] == 2]
    assert raw[0] > 2**32 - 1000 and raw[-1] < 1000  # the wire really wrapped
    got = ImuBatch.concat(out)
    assert np.all(np.diff(got.t_s) > 0)
    np.testing.assert_allclose(got.t_s, b.t_s[: len(got)], atol=0.0006)
    assert not any(x.gap_before for x in out)


def test_lost_packet_detected_from_timestamps():
    b = _batch(40, 104.0, seed=3, mag=False)
    # IMU6 at 104 Hz: 8 samples = 196 bytes -> two notifications each; drop the whole 2nd packet
    msgs, out, errors = _run("/Meas/IMU6/104", b, drop=lambda i, d: i in (2, 3))
    assert not errors
    assert [x.gap_before for x in out] == [False, True, False, False]
    assert out[1].n_lost == 8
    np.testing.assert_allclose(out[1].t_s[0], b.t_s[16], atol=0.0006)


def test_missing_part2_and_orphan_part2_count_as_loss():
    b = _batch(32, 104.0, seed=4, mag=False)
    # drop part 2 of packet 2: its part 1 is orphaned; the next DATA flags the gap
    msgs, out, errors = _run("/Meas/IMU6/104", b, drop=lambda i, d: i == 3)
    assert [len(x) for x in out] == [8, 8, 8] and not errors
    assert [x.gap_before for x in out] == [False, True, False] and out[1].n_lost == 8
    # with no earlier packet the count is unknown, but the gap is still flagged
    msgs, out, errors = _run("/Meas/IMU6/104", b, drop=lambda i, d: i == 1)
    assert out[0].gap_before and out[0].n_lost == 0 and not errors
    # drop part 1 of packet 2: its part 2 has nothing to join -> specific error, and the next batch has the gap
    msgs, out, errors = _run("/Meas/IMU6/104", b, drop=lambda i, d: i == 2)
    assert len(errors) == 1 and isinstance(errors[0], MalformedFrameError)
    assert "DATA_PART2" in str(errors[0]) and "movesense" in str(errors[0])
    assert [x.gap_before for x in out] == [False, True, False] and out[1].n_lost == 8


def test_subscription_seen_sets_the_layout():
    dec = ms.PROTOCOL.decoder()  # default IMU6
    dec.observe_write(C, ms.subscribe_command("/Meas/Acc/52", 7))
    payload = (10).to_bytes(4, "little") + np.ones((3, 3), "<f4").tobytes()
    (b,) = dec.feed(D, bytes((2, 7)) + payload)
    assert len(b) == 3 and b.gyr_rads is None
    with pytest.raises(MalformedFrameError, match="IMU6"):
        dec.feed(D, bytes((2, 8)) + (10).to_bytes(4, "little") + np.ones((1, 3), "<f4").tobytes())


@pytest.mark.parametrize(
    "data, err, words",
    [
        (b"", MalformedFrameError, "at least"),
        (b"\x09\x63", MalformedFrameError, "type 9"),
        (b"\x04\x63abc", UnsupportedFrameError, "DATA_PART3"),
        (b"\x02\x63\x00\x00\x00\x00\x01", MalformedFrameError, r"4 \+ 24"),
        (b"\x02\x63\x00\x00", MalformedFrameError, "payload of 2 bytes"),
    ],
)
def test_bad_bytes_raise_specific_errors(data, err, words):
    with pytest.raises(err, match=words):
        ms.PROTOCOL.decoder().feed(D, data)


def test_wrong_characteristic_and_context():
    with pytest.raises(UnsupportedFrameError):
        ms.PROTOCOL.decoder().feed(C, b"\x02\x63")
    with pytest.raises(ValueError, match="unknown decoder context"):
        ms.PROTOCOL.decoder(rate=3)
    with pytest.raises(UnsupportedFrameError):
        ms.PROTOCOL.decoder(path="/Meas/Temp")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.binary(max_size=320), max_size=6),
    st.sampled_from(["/Meas/IMU6/104", "/Meas/IMU9/208", "/Meas/Acc/13"]),
)
def test_fuzz_decoder_never_raises_anything_else(chunks, path):
    dec = ms.PROTOCOL.decoder(path=path)
    for data in chunks:
        try:
            res = dec.feed(D, data)
        except ProtocolError as e:
            assert str(e).startswith("movesense: ")
            continue
        for b in res:
            assert isinstance(b, ImuBatch) and len(b) > 0
        if res == []:
            # only a command result or a first part waiting for its second part
            assert data[0] == 1 or (data[0] == 2 and len(data) == 152)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=2, max_size=40).map(lambda b: bytes((2, 99)) + b))
def test_fuzz_data_frames(data):
    try:
        res = ms.PROTOCOL.decoder().feed(D, data)
    except ProtocolError:
        return
    assert len(res) == 1 and len(res[0]) == (len(data) - 6) // 24


def test_two_subscriptions_decode_independently():
    dev = ms.PROTOCOL.peripheral()
    dec = ms.PROTOCOL.decoder()
    for cmd in (ms.subscribe_command("/Meas/IMU9/104", 99), ms.subscribe_command("/Meas/Acc/104", 5)):
        dev.handle_write(C, cmd)
        dec.observe_write(C, cmd)
    b = _batch(16, 104.0, seed=9)
    msgs = dev.encode(b)
    out = {99: [], 5: []}
    for c, m in msgs:
        for x in dec.feed(c, m):
            out[m[1]].append(x)
    imu9, acc = ImuBatch.concat(out[99]), ImuBatch.concat(out[5])
    assert len(imu9) == 16 and imu9.mag_uT is not None and len(acc) == 16 and acc.gyr_rads is None
    np.testing.assert_allclose(acc.acc_mps2, imu9.acc_mps2)
    assert not any(x.gap_before for x in out[99] + out[5])


def test_clock_going_backwards_is_a_gap():
    dec = ms.PROTOCOL.decoder(path="/Meas/Acc/52")
    body = np.ones((4, 3), "<f4").tobytes()
    a = dec.feed(D, b"\x02\x63" + (100000).to_bytes(4, "little") + body)[0]
    b = dec.feed(D, b"\x02\x63" + (50).to_bytes(4, "little") + body)[0]
    assert not a.gap_before and b.gap_before and b.n_lost == 0 and b.t_s[0] == pytest.approx(0.05)
