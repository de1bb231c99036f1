"""WitMotion BLE 5.0: SDK command vectors, the real 0x61 capture, framing across notifications, resync,
device model round trips and fuzzing."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pelvimon.firmware_protocols import registry
from pelvimon.firmware_protocols import witmotion as wm
from pelvimon.firmware_protocols.base import GattWrite, MalformedFrameError, ProtocolError, StreamConfig
from pelvimon.firmware_protocols.batch import G_MPS2, ImuBatch

N = wm.NOTIFY_UUID
W = wm.WRITE_UUID


@pytest.fixture(scope="module")
def doc(shared_dir):
    return json.loads((shared_dir / "protocols" / "vectors" / "witmotion.json").read_text())


@pytest.fixture(scope="module")
def vec(doc):
    return {v["id"]: v for v in doc["vectors"]}


def test_registry_uuids_and_names(doc):
    p = registry.get("witmotion")
    assert p is wm.PROTOCOL
    assert p.spec.service_uuids[0] == doc["uuids"]["service"].lower()
    assert p.spec.notify_uuids == (doc["uuids"]["notify"].lower(),)
    assert p.spec.write_uuid == doc["uuids"]["write"].lower()
    assert "9a34fb" in p.spec.notify_uuids[0]
    assert any(re.search(x, "WT901BLE67") for x in p.spec.name_patterns)
    assert p.spec.device_clock is False and p.spec.loss_detection.startswith("none")


def test_real_capture(vec):
    v = vec["wit_0x61_real_capture"]
    d = v["derived_values"]
    (b,) = wm.PROTOCOL.decoder().feed(N, bytes.fromhex(v["payload_hex"]), t_host_s=5.0)
    raw = np.concatenate(
        [
            b.native["acc_g"][0] * 2048,
            b.native["gyro_dps"][0] * 16.384,
            b.native["angle_deg"][0] / 180 * 32768,
        ]
    )
    np.testing.assert_allclose(raw, d["raw_int16"], atol=1e-6)
    np.testing.assert_allclose(b.native["acc_g"][0], d["acc_g"], atol=1e-4)
    np.testing.assert_allclose(b.native["gyro_dps"][0], d["gyro_dps"], atol=1e-3)
    np.testing.assert_allclose(b.native["angle_deg"][0], d["angle_deg"], atol=1e-3)
    np.testing.assert_allclose(b.acc_mps2[0], np.asarray(d["acc_g"]) * G_MPS2, atol=1e-3)
    np.testing.assert_allclose(b.gyr_rads[0], np.radians(d["gyro_dps"]), atol=1e-4)
    assert b.time_base == "host" and b.t_s.tolist() == [5.0] and b.seq is None


def test_command_vectors(vec):
    assert wm.unlock_command().hex() == vec["wit_cmd_unlock"]["payload_hex"]
    assert wm.save_command().hex() == vec["wit_cmd_save"]["payload_hex"]
    assert wm.reset_command().hex() == vec["wit_cmd_factory_reset"]["payload_hex"]
    v = vec["wit_cmd_set_rate"]
    assert wm.rate_command(100).hex() == v["payload_hex"]
    for hz, code in v["expected"]["rate_code_table_Hz"].items():
        assert wm.rate_command(float(hz))[3] == int(code, 16)
    v = vec["wit_cmd_calibrate"]
    assert wm.calibration_command("acc").hex() == v["payload_hex"]
    assert wm.calibration_command("mag_start").hex() == v["expected"]["mag_cal_start_hex"]
    assert wm.calibration_command("mag_end").hex() == v["expected"]["mag_cal_end_hex"]
    assert wm.read_register_command(0x3A).hex() == "ffaa273a00"
    assert wm.bandwidth_command(98).hex() == "ffaa1f0300"


def test_start_and_stop_sequences(vec):
    seq = wm.PROTOCOL.start_sequence(StreamConfig(rate_hz=104.0))
    assert seq == [
        GattWrite(W, bytes.fromhex("ffaa6988b5")),
        GattWrite(W, bytes.fromhex("ffaa030900")),
        GattWrite(W, bytes.fromhex("ffaa000000")),
    ]
    assert wm.PROTOCOL.stop_sequence() == []


def test_model_applies_rate_only_when_unlocked():
    dev = wm.PROTOCOL.peripheral()
    assert dev.rate_hz == 10.0  # factory default
    dev.handle_write(W, wm.rate_command(200))
    assert dev.rate_hz == 10.0 and dev.ignored_writes  # locked: ignored
    dec = wm.PROTOCOL.decoder()
    for w in wm.PROTOCOL.start_sequence(StreamConfig(rate_hz=50)):
        dev.handle_write(w.char_uuid, w.data)
        dec.observe_write(w.char_uuid, w.data)
    assert dev.rate_hz == 50.0 and dev.config.rate_hz == 50.0 and dec.rate_hz == 50.0
    ((c, reply),) = dev.handle_write(W, wm.read_register_command(wm.REG_RRATE))
    assert reply[:4] == b"\x55\x71\x03\x00" and len(reply) == 20
    assert dec.feed(c, reply) == [] and dec.registers[wm.REG_RRATE] == 0x08


def test_register_reply_battery_and_quaternion():
    dev = wm.PROTOCOL.peripheral(battery_v=3.87)
    q = np.array([[0.5, 0.5, -0.5, 0.5]])
    dev.encode(ImuBatch(t_s=[0.0], acc_mps2=np.zeros((1, 3)), quat_wxyz=q))
    dec = wm.PROTOCOL.decoder()
    for reg in (wm.REG_QUAT, wm.REG_BATTERY):
        ((c, reply),) = dev.handle_write(W, wm.read_register_command(reg))
        assert dec.feed(c, reply) == []
    np.testing.assert_allclose(dec.register_values["quat_wxyz"], q[0], atol=1e-4)
    assert dec.register_values["battery_v"][0] == pytest.approx(3.87)


def _sim(n, rate, seed):
    rng = np.random.default_rng(seed)
    return ImuBatch(
        t_s=np.arange(n) / rate,
        acc_mps2=rng.uniform(-15, 15, (n, 3)) * G_MPS2,
        gyr_rads=np.radians(rng.uniform(-1900, 1900, (n, 3))),
    )


@settings(max_examples=30, deadline=None)
@given(
    rate=st.sampled_from(wm.RATES_HZ),
    n=st.integers(1, 50),
    per_note=st.integers(1, 4),
    cuts=st.lists(st.integers(1, 60), max_size=8),
    seed=st.integers(0, 999),
)
def test_round_trip_with_arbitrary_notification_boundaries(rate, n, per_note, cuts, seed):
    dev = wm.PROTOCOL.peripheral(frames_per_notification=per_note)
    for w in wm.PROTOCOL.start_sequence(StreamConfig(rate_hz=rate)):
        dev.handle_write(w.char_uuid, w.data)
    b = _sim(n, rate, seed)
    stream = b"".join(m for _, m in dev.encode(b))
    assert len(stream) == 20 * per_note * (n // per_note)
    # cut the byte stream anywhere: frames split across notifications, several per notification
    bounds = sorted({0, len(stream), *[c * 7 % (len(stream) + 1) for c in cuts]})
    dec = wm.PROTOCOL.decoder(rate_hz=rate)
    out = []
    for i, (a, z) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        res = dec.feed(N, stream[a:z], t_host_s=float(i))
        assert res == [] or len(res) == 1
        out += res
    k = len(stream) // 20
    if k == 0:
        assert out == []
        return
    got = ImuBatch.concat(out)
    assert len(got) == k and not any(x.gap_before for x in out)
    np.testing.assert_allclose(got.acc_mps2, b.acc_mps2[:k], atol=0.51 * wm.ACC_G_PER_LSB * G_MPS2)
    np.testing.assert_allclose(got.gyr_rads, b.gyr_rads[:k], atol=0.51 * np.radians(wm.GYRO_DPS_PER_LSB))
    for x in out:
        np.testing.assert_allclose(np.diff(x.t_s), 1 / rate)
    tilt = np.degrees(np.arctan2(b.acc_mps2[:k, 1], b.acc_mps2[:k, 2]))
    angles = np.concatenate([x.native["angle_deg"] for x in out])  # the model sends tilt from acc
    np.testing.assert_allclose(angles[:, 0], tilt, atol=0.01)


def test_several_frames_in_one_notification_end_at_receive_time():
    dev = wm.PROTOCOL.peripheral(frames_per_notification=3)
    msgs = dev.encode(_sim(3, 100, 1))
    (b,) = wm.PROTOCOL.decoder(rate_hz=100).feed(N, msgs[0][1], t_host_s=2.0)
    np.testing.assert_allclose(b.t_s, [1.98, 1.99, 2.0])


def test_resync_on_garbage_flags_a_gap():
    dev = wm.PROTOCOL.peripheral()
    frames = [m for _, m in dev.encode(_sim(4, 100, 2))]
    dec = wm.PROTOCOL.decoder()
    assert len(dec.feed(N, frames[0])) == 1
    # garbage then a whole frame: the frame is found, the garbage counted, the gap flagged
    (b,) = dec.feed(N, b"\x01\x55\x02\x61" + frames[1])
    assert b.gap_before and dec.bytes_discarded == 4
    np.testing.assert_array_equal(
        b.native["acc_g"], wm.decode_frames(np.frombuffer(frames[1], np.uint8)[None])["acc_g"]
    )
    # a frame cut short by garbage: the partial frame is lost, the next one decodes
    out = dec.feed(N, frames[2][:9] + b"\xaa" * 5 + frames[3])
    assert len(out) == 1 and out[0].gap_before
    (c,) = wm.PROTOCOL.decoder().feed(N, frames[3])
    np.testing.assert_array_equal(out[0].native["gyro_dps"], c.native["gyro_dps"])


def test_pure_garbage_raises_and_partial_waits():
    dec = wm.PROTOCOL.decoder()
    with pytest.raises(MalformedFrameError, match="witmotion: notification: 7 byte"):
        dec.feed(N, b"\x00\x01\x02\x03\x04\x05\x06")
    frame = wm.PROTOCOL.peripheral().encode(_sim(1, 100, 3))[0][1]
    assert dec.feed(N, frame[:1]) == [] and dec.feed(N, frame[1:11]) == []
    (b,) = dec.feed(N, frame[11:])
    assert len(b) == 1 and b.gap_before  # the garbage before it is flagged on the next batch
    with pytest.raises(ProtocolError):
        dec.feed(wm.WRITE_UUID, frame)


def test_sig_base_uuid_variant_accepted():
    frame = wm.PROTOCOL.peripheral().encode(_sim(1, 100, 4))[0][1]
    (b,) = wm.PROTOCOL.decoder().feed("0000FFE4-0000-1000-8000-00805F9B34FB", frame)
    assert len(b) == 1


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.binary(max_size=45), st.binary(max_size=30).map(lambda b: b"\x55\x61" + b)), max_size=8
    )
)
def test_fuzz_decoder(chunks):
    dec = wm.PROTOCOL.decoder()
    for data in chunks:
        before = len(dec._buf)
        try:
            res = dec.feed(N, data, t_host_s=1.0)
        except ProtocolError as e:
            assert str(e).startswith("witmotion: ")
            continue
        assert len(dec._buf) < 20
        for b in res:
            assert isinstance(b, ImuBatch) and len(b) >= 1
        if res == []:
            # waiting: all bytes kept or consumed by register replies, nothing thrown away silently
            assert before + len(data) == len(dec._buf) or dec.registers
