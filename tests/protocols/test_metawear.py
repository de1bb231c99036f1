"""MetaWear: the vendor vectors (SDK unit-test bytes and values), device model, decoder, fuzzing.

Vectors beyond ``metawear.json`` are quoted from the same SDK tests (mbientlab/MetaWear-SDK-Cpp@f67699e,
``test/test_accelerometer_bmi160.py``, ``test_accelerometer_bmi270.py``, ``test_gyro_bmi160.py``,
``test_magnetometer_bmm150.py``, ``test_sensor_fusion.py``, ``test_dataprocessor.py``).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pelvimon.firmware_protocols import metawear as mw
from pelvimon.firmware_protocols import registry
from pelvimon.firmware_protocols.base import (
    MalformedFrameError,
    ProtocolError,
    StreamConfig,
    UnsupportedFrameError,
)
from pelvimon.firmware_protocols.batch import G_MPS2, ImuBatch

N = mw.NOTIFY_UUID
C = mw.COMMAND_UUID


def close(actual, expected):
    """The SDK tests' is_close: |a-b| <= max(1e-3·max(|a|,|b|), 1e-3)."""
    a, e = np.asarray(actual, float), np.asarray(expected, float)
    tol = np.maximum(1e-3 * np.maximum(np.abs(a), np.abs(e)), 1e-3)
    assert a.shape == e.shape and np.all(np.abs(a - e) <= tol), (a, e)


@pytest.fixture(scope="module")
def doc(shared_dir):
    return json.loads((shared_dir / "protocols" / "vectors" / "metawear.json").read_text())


@pytest.fixture(scope="module")
def vec(doc):
    return {v["id"]: v for v in doc["vectors"]}


def test_registry_uuids_and_names(doc):
    p = registry.get("metawear")
    assert p is mw.PROTOCOL
    assert p.spec.service_uuids == (doc["uuids"]["service"].lower(),)
    assert p.spec.write_uuid == doc["uuids"]["command_write"].lower()
    assert p.spec.notify_uuids == (doc["uuids"]["notify"].lower(),)
    assert any(re.search(x, "MetaWear") for x in p.spec.name_patterns)
    assert not any(re.search(x, "Movesense 1234") for x in p.spec.name_patterns)


def _feed1(payload_hex, **ctx):
    (b,) = mw.PROTOCOL.decoder(**ctx).feed(N, bytes.fromhex(payload_hex), t_host_s=10.0)
    return b


def test_vector_acc_single(vec):
    v = vec["mw_acc_bosch_single_4g"]
    b = _feed1(v["payload_hex"], acc_range_g=v["context"]["range_g"])
    close(b.native["acc_g"][0], v["expected"]["acc_g"])
    close(b.acc_mps2[0] / G_MPS2, v["expected"]["acc_g"])
    assert b.time_base == "host" and b.t_s[0] == 10.0 and b.gyr_rads is None
    for imu in ("bmi160", "bmi270"):
        b = _feed1(v["payload_hex"], acc_range_g=4, imu=imu)
        close(b.native["acc_g"][0], v["expected"]["acc_g"])


def test_vector_gyro_single(vec):
    v = vec["mw_gyro_bmi160_single_500dps"]
    b = _feed1(v["payload_hex"], gyro_range_dps=v["context"]["range_dps"])
    close(b.native["gyro_dps"][0], v["expected"]["gyro_dps"])
    close(np.degrees(b.gyr_rads[0]), v["expected"]["gyro_dps"])


def test_vector_mag_single(vec):
    v = vec["mw_mag_bmm150_single"]
    b = _feed1(v["payload_hex"])
    close(b.mag_uT[0], v["expected"]["b_field_uT"])


def test_vector_fusion_corrected_mag_and_quaternion(vec):
    v = vec["mw_sf_corrected_mag"]
    b = _feed1(v["payload_hex"])
    e = v["expected"]
    close(b.mag_uT[0], [e["x_uT"], e["y_uT"], e["z_uT"]])
    assert b.native["accuracy"][0] == 3
    v = vec["mw_sf_quaternion"]
    b = _feed1(v["payload_hex"])
    e = v["expected"]
    close(b.quat_wxyz[0], [e["w"], e["x"], e["y"], e["z"]])


def test_vector_fusion_linear_acc(vec):
    v = vec["mw_sf_linear_acc"]
    kind, vals = mw.decode_values(bytes.fromhex(v["payload_hex"]))
    assert kind == "linear_acc"
    close(vals["linear_acc_g"][0], v["expected"]["g"])
    with pytest.raises(UnsupportedFrameError, match="linear_acc"):
        mw.PROTOCOL.decoder().feed(N, bytes.fromhex(v["payload_hex"]))


def test_vector_accounter(vec):
    v = vec["mw_accounter_time_acc"]
    b = _feed1(v["payload_hex"], acc_range_g=2)
    close(b.native["acc_g"][0], v["expected"]["acc_g"])
    assert b.native["tick"][0] == 0x000D33A6 and b.time_base == "device"
    assert b.t_s[0] == pytest.approx(0x000D33A6 * 48 / 32768)


@pytest.mark.parametrize(
    "vid, imu",
    [
        ("mw_cmd_acc_bmi160_config_100hz_2g", "bmi160"),
        ("mw_cmd_acc_bmi160_config_200hz_8g", "bmi160"),
        ("mw_cmd_acc_bmi270_config_100hz", "bmi270"),
    ],
)
def test_vector_acc_config_commands(vec, vid, imu):
    v = vec[vid]
    want = bytes.fromhex(v["payload_hex"])
    rate = 200.0 if "200hz" in vid else 100.0
    rng = {0x03: 2.0, 0x08: 8.0, 0x02: 8.0}[want[3]] if imu == "bmi160" else 8.0
    assert mw.acc_config_command(rate, rng, imu) == want


def test_vector_other_commands(vec):
    assert mw.enable_sampling(mw.MOD_ACC).hex() == vec["mw_cmd_acc_enable_sampling"]["payload_hex"]
    assert mw.enable_sampling(mw.MOD_ACC, False).hex() == "03020001"
    assert mw.power(mw.MOD_ACC).hex() == vec["mw_cmd_acc_start"]["payload_hex"]
    assert mw.subscribe(mw.MOD_ACC, mw.ACC_DATA).hex() == vec["mw_cmd_acc_subscribe"]["payload_hex"]
    assert (
        mw.gyro_config_command(200, 2000).hex()
        == vec["mw_cmd_gyro_bmi160_config_200hz_2000dps"]["payload_hex"]
    )
    assert mw.power(mw.MOD_GYRO).hex() == vec["mw_cmd_gyro_start_enable_subscribe"]["payload_hex"]
    assert mw.subscribe(mw.MOD_GYRO, mw.GYRO_PACKED["bmi160"]).hex() == "130701"
    assert mw.subscribe(mw.MOD_ACC, mw.ACC_PACKED["bmi270"]).hex() == "030501"


def test_vector_fusion_sequence(vec):
    v = vec["mw_cmd_sensor_fusion_imuplus_start_quat"]
    assert mw.fusion_output_command(("quaternion",)).hex() == v["payload_hex"]
    start, stop = mw.fusion_sequences("imu_plus", ("quaternion",))
    assert [c.hex() for c in start] == ["03020100", "13020100", "030101", "130101", "19030800", "190101"]
    assert [c.hex() for c in stop] == ["190100", "1903007f", "030100", "130100", "03020001", "13020001"]
    assert mw.fusion_config_command("imu_plus", 8, 2000).hex() == "19020212"


def test_sdk_packed_and_fusion_vectors():
    # BMI160 / BMI270 packed acc at ±8 g
    want = [[-4.539, 0.833, -0.131], [-2.995, 0.894, 0.146], [-0.029, 0.352, 0.065]]
    body = "62b7530de9fd16d04d0e57028affa1050a01"
    for head in ("031c", "0305"):
        close(_feed1(head + body, acc_range_g=8).native["acc_g"], want)
    # BMI160 packed gyro at 1000 dps
    b = _feed1("13070915ad2608de8a1a0d2665e48d20ac2773ec", gyro_range_dps=1000)
    close(
        b.native["gyro_dps"],
        [[164.177, 301.860, -265.122], [207.134, 296.982, -215.457], [254.055, 309.634, -152.591]],
    )
    # packed mag
    b = _feed1("1509b60c72f789eeb60b5af832eee60aa2f725ef")
    close(
        b.mag_uT,
        [[203.375, -136.874, -279.437], [187.375, -122.375, -284.874], [174.375, -133.875, -269.687]],
    )
    # sensor fusion corrected acc (g) and gyro (dps), Euler and gravity
    b = _feed1("1904203e53c50cfe79460cfe79c600")
    close(b.native["acc_g"][0], [-3.3799, 15.9995, -15.9995])
    assert b.native["accuracy"][0] == 0
    b = _feed1("19057a569142b46260c27334044400")
    close(b.native["gyro_dps"][0], [72.669, -56.096, 528.820])
    kind, vals = mw.decode_values(bytes.fromhex("1908b1f9c54144b9f1c21a2f04c2b1f9c541"))
    close(vals["euler_deg"][0], [24.747, -120.862, -33.046, 24.747])  # heading, pitch, roll, yaw
    kind, vals = mw.decode_values(bytes.fromhex("1909ee20d33eb29301410459b0c0"))
    close(vals["gravity_g"][0], [0.042, 0.826, -0.562])


def test_sdk_accounter_time_sequence():
    """test_dataprocessor.py TestAccounter.test_time_offset: ticks 7, 7, 6, 7, 7 apart."""
    frames = [
        "090300a6330d00c100b12419cd",
        "090300ad330d00d4001825c0cc",
        "090300b4330d00c7000925b2cc",
        "090300ba330d00c5001725bccc",
        "090300c1330d00d400e924e4cc",
        "090300c8330d00af00f724e3cc",
    ]
    dec = mw.PROTOCOL.decoder(acc_range_g=2, rate_hz=100)
    out = [b for f in frames for b in dec.feed(N, bytes.fromhex(f))]
    t = np.array([b.t_s[0] for b in out])
    np.testing.assert_allclose(np.diff(t) / mw.TICK_S, [7, 7, 6, 7, 7])
    # the SDK's epochs (ms, integer) differ by 10, 11, 8, 11, 10: the same ticks within 1 ms
    assert np.all(np.abs(np.diff(t) * 1000 - [10, 11, 8, 11, 10]) < 1.5)
    assert not any(b.gap_before for b in out)


def test_accounter_count_and_loss():
    dec = mw.PROTOCOL.decoder(accounter="count", acc_range_g=2)
    b = dec.feed(N, bytes.fromhex("090300ec010000010b9a074040"))[0]
    assert b.seq[0] == 492 and b.native["count"][0] == 492 and not b.gap_before
    b = dec.feed(N, bytes.fromhex("090300ef010000010b9a074040"))[0]
    assert b.gap_before and b.n_lost == 2 and b.seq[0] == 495


def test_start_stop_sequences_bmi160_and_bmi270():
    seq = mw.PROTOCOL.start_sequence(StreamConfig(rate_hz=100.0, acc_range_g=16, gyro_range_dps=2000))
    assert all(w.response is False and w.char_uuid == C for w in seq)
    assert [w.data.hex() for w in seq] == [
        "0303280c", "03020100", "031c01", "13032800", "13020100", "130701", "030101", "130101",
    ]  # fmt: skip
    seq = mw.PROTOCOL.with_imu("bmi270").start_sequence(StreamConfig(rate_hz=200.0, acc_range_g=8, mag=True))
    hexes = [w.data.hex() for w in seq]
    assert hexes[:3] == ["0303a902", "03020100", "030501"] and "130501" in hexes and "150901" in hexes
    stop = [w.data.hex() for w in mw.PROTOCOL.stop_sequence()]
    assert stop[:2] == ["030100", "130100"] and "03020001" in stop and "031c00" in stop


@settings(max_examples=25, deadline=None)
@given(
    rate=st.sampled_from(mw.RATES_HZ),
    acc_range=st.sampled_from(sorted(mw.ACC_LSB_PER_G)),
    gyro_range=st.sampled_from(sorted(mw.GYRO_LSB_PER_DPS)),
    imu=st.sampled_from(["bmi160", "bmi270"]),
    n=st.integers(0, 40),
    seed=st.integers(0, 1000),
)
def test_round_trip_packed(rate, acc_range, gyro_range, imu, n, seed):
    proto = mw.PROTOCOL.with_imu(imu)
    cfg = StreamConfig(rate_hz=rate, acc_range_g=acc_range, gyro_range_dps=gyro_range)
    dev = proto.peripheral()
    dec = proto.decoder()
    for w in proto.start_sequence(cfg):
        dev.handle_write(w.char_uuid, w.data)
        dec.observe_write(w.char_uuid, w.data)
    assert dev.streaming and dev.config == StreamConfig(rate, acc_range, gyro_range, False)
    rng = np.random.default_rng(seed)
    acc = rng.uniform(-0.9, 0.9, (n, 3)) * acc_range * G_MPS2
    gyr = np.radians(rng.uniform(-0.9, 0.9, (n, 3)) * gyro_range)
    batch = ImuBatch(t_s=np.arange(n) / rate, acc_mps2=acc, gyr_rads=gyr) if n else None
    msgs = dev.encode(batch) if batch is not None else []
    assert all(len(m) == 20 for _, m in msgs)
    out = [b for i, (c, m) in enumerate(msgs) for b in dec.feed(c, m, t_host_s=float(i))]
    accs = [b for b in out if b.acc_mps2 is not None]
    gyrs = [b for b in out if b.gyr_rads is not None]
    k = (n // 3) * 3
    assert sum(len(b) for b in accs) == k and sum(len(b) for b in gyrs) == k
    if k:
        lsb_a = G_MPS2 / mw.ACC_LSB_PER_G[acc_range]
        np.testing.assert_allclose(ImuBatch.concat(accs).acc_mps2, acc[:k], atol=0.51 * lsb_a)
        lsb_g = np.radians(1 / mw.GYRO_LSB_PER_DPS[gyro_range])
        np.testing.assert_allclose(ImuBatch.concat(gyrs).gyr_rads, gyr[:k], atol=0.51 * lsb_g)
        t = accs[0].t_s
        np.testing.assert_allclose(np.diff(t), 1 / rate)  # laid out at the configured rate
        assert t[-1] == 0.0 and accs[0].time_base == "host"  # the last sample at the receive time


def test_round_trip_accounter_with_loss_and_wrap():
    proto = mw.PROTOCOL
    dev = proto.peripheral()
    dec = proto.decoder()
    for w in proto.accounter_start_sequence(StreamConfig(rate_hz=100.0, acc_range_g=4, gyro_range_dps=500)):
        dec.observe_write(w.char_uuid, w.data)  # the client shows the decoder its write, then writes
        for c, reply in dev.handle_write(w.char_uuid, w.data):
            assert dec.feed(c, reply) == []  # 09 02 <id> replies
    assert dev.processors == {0: ("acc", "time"), 1: ("gyro", "time")} and dec.processors == dev.processors
    t0 = (2**32 - 20) * mw.TICK_S  # the tick counter wraps after 20 samples... of ticks
    n = 30
    t = t0 + np.arange(n) / 100.0
    acc = np.tile([0.0, 0.0, G_MPS2], (n, 1))
    msgs = dev.encode(ImuBatch(t_s=t, acc_mps2=acc, gyr_rads=np.zeros((n, 3))))
    acc_msgs = [m for c, m in msgs if m[2] == 0]
    assert len(acc_msgs) == n and all(len(m) == 13 for m in acc_msgs)
    kept = acc_msgs[:10] + acc_msgs[13:]
    out = [b for m in kept for b in dec.feed(N, m)]
    got = ImuBatch.concat(out)
    assert np.all(np.diff(got.t_s) > 0)
    np.testing.assert_allclose(got.t_s, np.concatenate([t[:10], t[13:]]), atol=mw.TICK_S)
    np.testing.assert_allclose(got.acc_mps2, np.concatenate([acc[:10], acc[13:]]), atol=G_MPS2 / 8192)
    assert [b.gap_before for b in out].count(True) == 1 and out[10].gap_before and out[10].n_lost == 3


def test_model_answers_module_info_and_decoder_learns_imu():
    dev = mw.PROTOCOL.with_imu("bmi270").peripheral()
    ((c, reply),) = dev.handle_write(C, bytes((0x03, 0x80)))
    dec = mw.PROTOCOL.decoder()
    assert dec.imu == "bmi160" and dec.feed(c, reply) == [] and dec.imu == "bmi270"


@pytest.mark.parametrize(
    "hexstr, err, words",
    [
        ("03", MalformedFrameError, "expected"),
        ("030416c494a2", MalformedFrameError, "6 bytes"),
        ("031c0102", MalformedFrameError, "18 bytes"),
        ("0307", UnsupportedFrameError, "acc module 0x03 register 0x07"),
        ("0419aa", UnsupportedFrameError, "module 0x04"),
        ("1907aabb", MalformedFrameError, "expected 16"),
        ("090305", UnsupportedFrameError, "processor 5"),
        ("0903000102", MalformedFrameError, "10·k"),
    ],
)
def test_bad_bytes_raise_specific_errors(hexstr, err, words):
    with pytest.raises(err, match=words) as e:
        mw.PROTOCOL.decoder().feed(N, bytes.fromhex(hexstr))
    assert str(e.value).startswith("metawear: ")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=24),
            st.tuples(
                st.sampled_from([0x03, 0x13, 0x15, 0x19, 0x09]), st.integers(0, 255), st.binary(max_size=20)
            ).map(lambda t: bytes((t[0], t[1])) + t[2]),
        ),
        max_size=6,
    )
)
def test_fuzz_decoder(chunks):
    dec = mw.PROTOCOL.decoder()
    for data in chunks:
        try:
            res = dec.feed(N, data, t_host_s=1.0)
        except ProtocolError as e:
            assert str(e).startswith("metawear: ")
            continue
        if res == []:
            # only read replies and processor-creation replies carry no samples
            assert data[1] & 0x80 or data[:2] == b"\x09\x02"
        for b in res:
            assert isinstance(b, ImuBatch) and len(b) > 0


def test_round_trip_mag_and_fusion_quaternion():
    proto = mw.PROTOCOL
    dev = proto.peripheral()
    dec = proto.decoder()
    writes = [w.data for w in proto.start_sequence(StreamConfig(rate_hz=100.0, mag=True))]
    start, _ = mw.fusion_sequences("ndof", ("quaternion",))
    writes += [mw.fusion_config_command("ndof"), mw.subscribe(mw.MOD_FUSION, 0x07)] + start
    for d in writes:
        dev.handle_write(C, d)
        dec.observe_write(C, d)
    assert dev.config.mag and dev.fusion.running and dec.mag_rate_hz == 25.0
    n = 200
    t = np.arange(n) / 100.0
    ang = np.linspace(0, 2, n)
    quat = np.column_stack([np.cos(ang / 2), np.zeros(n), np.zeros(n), np.sin(ang / 2)])
    mag = np.column_stack([30 * np.cos(ang), -30 * np.sin(ang), np.full(n, -40.0)])
    msgs = dev.encode(
        ImuBatch(t_s=t, acc_mps2=np.zeros((n, 3)), gyr_rads=np.zeros((n, 3)), mag_uT=mag, quat_wxyz=quat)
    )
    out = [b for i, (c, m) in enumerate(msgs) for b in dec.feed(c, m, t_host_s=i * 0.001)]
    q = ImuBatch.concat([b for b in out if b.quat_wxyz is not None])
    np.testing.assert_allclose(q.quat_wxyz, quat, atol=1e-6)  # fusion runs at 100 Hz: every sample
    m = ImuBatch.concat([b for b in out if b.mag_uT is not None])
    assert len(m) == 48  # 25 Hz out of 2 s at 100 Hz, in whole packets of 3
    np.testing.assert_allclose(m.mag_uT, mag[::4][:48], atol=1 / 32)
