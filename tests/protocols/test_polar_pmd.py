"""Polar PMD: vendor vectors (../shared/protocols/vectors/polar_pmd.json and SDK unit tests), commands,
control-point responses, sample times, units, loss detection."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest

from pelvimon.firmware_protocols import polar_pmd as pmd
from pelvimon.firmware_protocols import registry
from pelvimon.firmware_protocols.base import MalformedFrameError, StreamConfig, UnsupportedFrameError
from pelvimon.firmware_protocols.batch import G_MPS2

DATA = pmd.DATA_UUID
CP = pmd.CP_UUID


@pytest.fixture(scope="module")
def vectors(shared_dir):
    path = shared_dir / "protocols" / "vectors" / "polar_pmd.json"
    if not path.is_file():
        pytest.fail(f"vector file missing: {path}")
    return {v["id"]: v for v in json.loads(path.read_text())["vectors"]}


def _decoder_for(vector):
    ctx = vector.get("context", {})
    return pmd.PROTOCOL.decoder(
        previous_timestamp_ns=ctx.get("previous_frame_timestamp_ns", 0),
        factor=ctx.get("factor", 1.0),
        sample_rate_hz=ctx.get("sample_rate_hz") or None,
    )


def _decode_vector(vector):
    out = _decoder_for(vector).feed(DATA, bytes.fromhex(vector["payload_hex"]))
    assert len(out) == 1
    return out[0]


# --- registry and spec ----------------------------------------------------------------------------------


def test_registered_under_polar_pmd():
    proto = registry.get("polar_pmd")
    assert proto is pmd.PROTOCOL
    assert proto.spec.name == "polar_pmd"
    assert pmd.SERVICE_UUID in proto.spec.service_uuids
    assert set(proto.spec.notify_uuids) == {CP, DATA}
    assert proto.spec.notify_uuids[0] == DATA  # the default characteristic of `pelvimon decode`
    assert set(proto.spec.context_keys) == {"factor", "previous_timestamp_ns", "sample_rate_hz"}


def test_uuids_match_vector_file(shared_dir):
    uuids = json.loads((shared_dir / "protocols" / "vectors" / "polar_pmd.json").read_text())["uuids"]
    assert uuids["service"].lower() == pmd.SERVICE_UUID
    assert uuids["control_point"].lower() == pmd.CP_UUID
    assert uuids["data"].lower() == pmd.DATA_UUID


@pytest.mark.parametrize(
    ("name", "variant"),
    [("Polar Sense 0A1B2C3D", "verity"), ("Polar H10 7E6F5A4B", "h10"), ("Movesense 1234", None)],
)
def test_advertised_names(name, variant):
    import re

    matched = any(re.search(p, name) for p in pmd.PROTOCOL.spec.name_patterns)
    assert matched == (variant is not None)
    if variant == "h10":
        assert pmd.protocol_for_name(name) is pmd.H10_PROTOCOL
        assert not pmd.H10_PROTOCOL.spec.has_gyro
    elif variant == "verity":
        assert pmd.protocol_for_name(name) is pmd.PROTOCOL


# --- commands -------------------------------------------------------------------------------------------


def test_start_command_matches_real_verity_capture(vectors):
    v = vectors["pmd_cp_start_acc_verity_52hz_8g"]
    assert pmd.start_command(pmd.MeasurementType.ACC, 52, 16, 8, 3).hex() == v["payload_hex"]
    resp = pmd.parse_cp_response(bytes.fromhex(v["response_hex"]))
    assert resp.ok and not resp.more and resp.opcode == pmd.Opcode.REQUEST_MEASUREMENT_START
    assert resp.settings() == {}


def test_sdk_mode_and_query_commands(vectors):
    v = vectors["pmd_cp_sdk_mode_start_stop"]
    assert pmd.start_sdk_mode_command().hex() == v["payload_hex"]
    assert pmd.stop_sdk_mode_command().hex() == v["stop_hex"]
    assert pmd.get_settings_command(pmd.MeasurementType.ACC).hex() == v["get_settings_acc_hex"]
    assert (
        pmd.get_sdk_mode_settings_command(pmd.MeasurementType.ACC).hex() == v["get_full_sdk_settings_acc_hex"]
    )
    assert pmd.get_status_command().hex() == v["read_status_hex"]
    assert pmd.stop_command(pmd.MeasurementType.ACC).hex() == "0302"
    assert pmd.get_sdk_mode_status_command().hex() == "06"


def test_start_sequence_52hz_needs_no_sdk_mode():
    writes = pmd.PROTOCOL.start_sequence(StreamConfig(rate_hz=52))
    assert [w.data.hex() for w in writes] == [
        "0202000134000101100002010800040103",
        "020500013400010110000201d007040103",
    ]
    assert all(w.char_uuid == CP and w.response for w in writes)


@pytest.mark.parametrize("rate", [26, 104, 208, 416])
def test_start_sequence_other_rates_enter_sdk_mode_first(rate):
    writes = pmd.PROTOCOL.start_sequence(StreamConfig(rate_hz=rate, acc_range_g=16, gyro_range_dps=500))
    assert writes[0].data == bytes.fromhex("0209")
    acc = pmd.parse_settings(writes[1].data[2:])
    gyr = pmd.parse_settings(writes[2].data[2:])
    assert writes[1].data[:2] == b"\x02\x02" and writes[2].data[:2] == b"\x02\x05"
    assert acc[pmd.SettingType.SAMPLE_RATE] == (rate,) and gyr[pmd.SettingType.SAMPLE_RATE] == (rate,)
    assert acc[pmd.SettingType.RANGE] == (16,) and gyr[pmd.SettingType.RANGE] == (500,)


def test_start_sequence_picks_nearest_rate_and_mag():
    writes = pmd.PROTOCOL.start_sequence(StreamConfig(rate_hz=100, mag=True))
    assert pmd.parse_settings(writes[1].data[2:])[pmd.SettingType.SAMPLE_RATE] == (104,)
    assert writes[3].data[:2] == b"\x02\x06"
    assert pmd.parse_settings(writes[3].data[2:])[pmd.SettingType.SAMPLE_RATE] == (100,)


def test_h10_start_sequence_is_acc_only_without_channels():
    writes = pmd.H10_PROTOCOL.start_sequence(StreamConfig(rate_hz=190, acc_range_g=3))
    assert [w.data.hex() for w in writes] == ["02020001c80001011000020104 00".replace(" ", "")]
    assert [w.data.hex() for w in pmd.H10_PROTOCOL.stop_sequence()] == ["0302"]


def test_stop_sequence_leaves_sdk_mode_last():
    datas = [w.data.hex() for w in pmd.PROTOCOL.stop_sequence()]
    assert datas[-1] == "0309" and "0302" in datas and "0305" in datas


# --- control point --------------------------------------------------------------------------------------


def test_settings_tlv_vector(vectors):
    v = vectors["pmd_settings_parameters_gyro_like"]
    got = pmd.parse_settings(bytes.fromhex(v["payload_hex"]))
    assert {k.name: list(vals) for k, vals in got.items()} == v["expected"]


def test_settings_roundtrip_and_factor():
    tlv = pmd.encode_settings({pmd.SettingType.SAMPLE_RATE: 416, pmd.SettingType.FACTOR: 0.06103515625})
    assert tlv[:4] == bytes.fromhex("00 01 a0 01".replace(" ", ""))
    got = pmd.parse_settings(tlv)
    assert got[pmd.SettingType.SAMPLE_RATE] == (416,)
    assert got[pmd.SettingType.FACTOR] == (0.06103515625,)


@pytest.mark.parametrize("bad", ["0701", "0001", "000234", "05010000"])
def test_settings_tlv_errors(bad):
    with pytest.raises(MalformedFrameError):
        pmd.parse_settings(bytes.fromhex(bad))


def test_cp_response_vectors(vectors):
    ok = pmd.parse_cp_response(
        bytes.fromhex(vectors["pmd_cp_response_get_settings_acc_success"]["payload_hex"])
    )
    assert (ok.opcode, ok.measurement_type, ok.status, ok.more, ok.parameters.hex()) == (
        1,
        2,
        0,
        False,
        "ffffff",
    )
    err = pmd.parse_cp_response(
        bytes.fromhex(vectors["pmd_cp_response_error_invalid_resolution"]["payload_hex"])
    )
    assert (err.opcode, err.measurement_type, err.status, err.more, err.parameters) == (1, 6, 7, False, b"")
    assert err.status_name == "INVALID_RESOLUTION" and not err.ok


def test_cp_more_reassembly_in_decoder():
    # a settings response split over two packets: the second contributes its bytes from index 5 on
    first = bytes.fromhex("f001020001") + bytes.fromhex("000134000101")
    second = bytes.fromhex("f001020000") + bytes.fromhex("1000040103")
    dec = pmd.PROTOCOL.decoder()
    assert dec.feed(CP, first) == []
    assert dec.last_response is None
    assert dec.feed(CP, second) == []
    resp = dec.last_response
    assert resp is not None and not resp.more
    assert resp.settings() == {
        pmd.SettingType.SAMPLE_RATE: (52,),
        pmd.SettingType.RESOLUTION: (16,),
        pmd.SettingType.CHANNELS: (3,),
    }


def test_cp_continuation_with_other_opcode_is_an_error():
    r = pmd.CpReassembler()
    assert r.feed(bytes.fromhex("f0010200010001")) is None
    with pytest.raises(MalformedFrameError, match="continuation"):
        r.feed(bytes.fromhex("f002020000"))


def test_device_stop_command_vector_resets_timing(vectors):
    v = vectors["pmd_cp_device_stopped_streams"]
    assert pmd.parse_server_command(bytes.fromhex(v["payload_hex"])) == (1, (1, 2))
    dec = pmd.PROTOCOL.decoder(sample_rate_hz=52)
    frame = bytes.fromhex(vectors["pmd_acc_raw_type1_h10_style"]["payload_hex"])
    first = dec.feed(DATA, frame)[0]
    assert dec.feed(CP, bytes.fromhex(v["payload_hex"])) == []
    assert dec.stopped_by_device == (1, 2)
    # after the stop, the same timestamp is a first frame again (no "time went back" gap)
    again = dec.feed(DATA, frame)[0]
    assert not again.gap_before
    np.testing.assert_array_equal(again.native["t_ns"], first.native["t_ns"])


def test_unknown_server_command():
    with pytest.raises(UnsupportedFrameError):
        pmd.PROTOCOL.decoder().feed(CP, bytes.fromhex("0702"))


def test_features_roundtrip():
    raw = pmd.encode_features(
        [pmd.MeasurementType.ACC, pmd.MeasurementType.GYRO, pmd.MeasurementType.SDK_MODE]
    )
    assert raw == bytes.fromhex("0f2402")
    assert pmd.parse_features(raw) == {
        pmd.MeasurementType.ACC,
        pmd.MeasurementType.GYRO,
        pmd.MeasurementType.SDK_MODE,
    }


def test_start_response_factor_applies_and_stop_resets():
    dec = pmd.PROTOCOL.decoder(previous_timestamp_ns=100)
    factor = struct.pack("<f", 0.5)
    dec.feed(CP, bytes.fromhex("f002050000") + b"\x05\x01" + factor)
    assert dec.factor("gyro") == 0.5
    hdr = bytes.fromhex("05009435770000000080")
    b = dec.feed(DATA, hdr + bytes.fromhex("eaff08000d000301df00"))[0]
    np.testing.assert_allclose(b.native["gyr_dps"], [[-11.0, 4.0, 6.5], [-11.5, 5.5, 8.0]])
    # a start response without FACTOR means 1.0 (as the SDK)
    dec.feed(CP, bytes.fromhex("f002050000"))
    assert dec.factor("gyro") == 1.0
    dec.feed(CP, bytes.fromhex("f003050000"))  # stop: previous timestamps forgotten
    with pytest.raises(pmd.PmdTimestampError, match="sample rate"):
        dec.feed(DATA, hdr + bytes.fromhex("eaff08000d000301df00"))


# --- data frames: vendor vectors ------------------------------------------------------------------------


def test_acc_raw_type1(vectors):
    v = vectors["pmd_acc_raw_type1_h10_style"]
    b = _decode_vector(v)
    exp = v["expected"]
    assert len(b) == exp["n_samples"]
    np.testing.assert_array_equal(b.native["acc_mG"][:2], exp["samples_first2_xyz"])
    np.testing.assert_array_equal(b.native["acc_mG"], v["derived_values"]["samples_xyz_mG"])
    np.testing.assert_array_equal(
        b.native["t_ns"], np.array(v["derived_values"]["sample_timestamps_ns"], np.uint64)
    )
    assert int(b.native["t_ns"][-1]) == exp["last_sample_timestamp_ns"]
    np.testing.assert_allclose(b.acc_mps2, np.array(v["derived_values"]["samples_xyz_mG"]) * G_MPS2 / 1000)
    assert b.gyr_rads is None and b.time_base == "device"
    assert b.t_s[-1] == pytest.approx(2.0)


def test_acc_compressed_type1(vectors):
    v = vectors["pmd_acc_compressed_type1"]
    b = _decode_vector(v)
    np.testing.assert_array_equal(b.native["acc_mG"], v["expected"]["samples_xyz_mG"])
    np.testing.assert_array_equal(b.native["t_ns"], v["expected"]["sample_timestamps_ns_android"])


def test_acc_compressed_type1_ios_twin():
    # iOS test: same content, frame timestamp 102 -> [101, 102] (no rounding tie)
    payload = bytes.fromhex("02660000000000000081f1ff1400f00306017b0f08")
    b = pmd.PROTOCOL.decoder(previous_timestamp_ns=100).feed(DATA, payload)[0]
    np.testing.assert_array_equal(b.native["t_ns"], [101, 102])


def test_gyro_compressed_type0(vectors):
    v = vectors["pmd_gyro_compressed_type0"]
    b = _decode_vector(v)
    np.testing.assert_array_equal(b.native["gyr_dps"], v["expected"]["samples_xyz_dps"])
    assert int(b.native["t_ns"][-1]) == v["expected"]["last_sample_timestamp_ns"]
    np.testing.assert_allclose(b.gyr_rads, np.deg2rad(v["expected"]["samples_xyz_dps"]))


def test_gyro_header_only(vectors):
    v = vectors["pmd_gyro_header_only"]
    hdr = pmd.parse_frame_header(bytes.fromhex(v["payload_hex"]))
    exp = v["expected"]
    assert (hdr.measurement_type, hdr.timestamp_ns, hdr.compressed, hdr.frame_type) == (
        exp["measurement_type"],
        exp["timestamp_ns"],
        exp["compressed"],
        exp["frame_type"],
    )
    assert hdr.content.hex() == exp["data_content_hex"]
    # with no previous frame and no rate the frame cannot be timed: a specific error, not silence
    with pytest.raises(pmd.PmdTimestampError):
        pmd.PROTOCOL.decoder().feed(DATA, bytes.fromhex(v["payload_hex"]))


def test_gyro_compressed_type1_float_bits():
    # GyrDataTest.kt `process gyro compressed data type 1` (and `... with factor`, factor 0.5)
    payload = bytes.fromhex("05009435770000000081") + bytes.fromhex(
        "0000803f000020410000a0411c010000a001000008cdccec0d"
    )
    f = struct.unpack
    bits = [
        [0x3F800000, 0x41200000, 0x41A00000],
        [0x41200000, 0x41A00000, (0x41A00000 + 0xFDECCCCD) & 0xFFFFFFFF],
    ]
    expected = np.array([[f("<f", struct.pack("<I", x))[0] for x in row] for row in bits])
    for factor in (1.0, 0.5):
        b = pmd.PROTOCOL.decoder(previous_timestamp_ns=100, factor=factor).feed(DATA, payload)[0]
        np.testing.assert_array_equal(b.native["gyr_dps"], expected * factor)
        np.testing.assert_array_equal(b.native["raw"], bits)
        assert int(b.native["t_ns"][-1]) == 2_000_000_000
    assert expected[1, 2] == pytest.approx(1.1, abs=1e-6)


def test_mag_compressed_type0(vectors):
    v = vectors["pmd_mag_compressed_type0"]
    b = _decode_vector(v)
    np.testing.assert_array_equal(b.native["mag_G"], v["expected"]["samples_xyz"])
    np.testing.assert_allclose(b.mag_uT, np.array(v["expected"]["samples_xyz"]) * 100)
    assert "mag_status" not in b.native  # NOT_AVAILABLE for type 0
    assert int(b.native["t_ns"][-1]) == v["expected"]["last_sample_timestamp_ns"]


@pytest.mark.parametrize("factor", [1.0, 1.1])
def test_mag_compressed_type1_four_channels(factor):
    # MagDataTest.kt `process magnetometer compressed data type 1` (and `... with factor`)
    payload = bytes.fromhex("06009435770000000081") + bytes.fromhex("37ff51fd6cf600000301f802")
    b = pmd.PROTOCOL.decoder(previous_timestamp_ns=100, factor=factor).feed(DATA, payload)[0]
    f32 = float(np.float32(factor))
    exp = np.array([[-201, -687, -2452], [-201, -688, -2449]]) * f32 / 1000
    np.testing.assert_allclose(b.native["mag_G"], exp, atol=1e-5)
    np.testing.assert_array_equal(b.native["mag_status"], [0, 1])
    np.testing.assert_allclose(b.mag_uT, exp * 100, atol=1e-3)


ACC_TYPE0_CONTENT = (
    "7107f06a9e8d0a38be5cbeba2f96b3ee4be5adfb42b9ebbe4cfeba2f92bfee4be4b1fb12b9ecbd3c3ebb2f8fd3de4be3b5f7d2b8edbd"
    "307e7b2f8be3ce8be2baf7a2b8eebc20be7b2f88f3cecbe1bdef52f8efbc18fe3b2f8403bfcbe0c2ef32b8f0bb044ebc2e8113af0be0"
    "c6eff2f7f1b9fc7dbc2e7d279f4bdfcaebc2f7f2b8eccd7c2e7b378f4bdecee392f7f3b8e00dfd2d774b7fcbddd2df6237f5b7d44dbd"
    "2d745b6fcbdcd7d73237f6b5c88d7d2d716b4f4bdcdcd3f236f7b4bcddfd2c6f7b3f4bdbe0cfd236f8b2b02dbe2c6c8f1fcbdae3c7a276f9"
)


def test_acc_compressed_type0_in_g_with_factor():
    # AccDataTest.kt `process acc compressed data type 0`: 57 samples, 10-bit deltas, factor 2.44e-4 G/LSB
    payload = bytes.fromhex("02009435770000000080") + bytes.fromhex(ACC_TYPE0_CONTENT)
    b = pmd.PROTOCOL.decoder(previous_timestamp_ns=100, factor=2.44e-4).feed(DATA, payload)[0]
    assert len(b) == 57
    f = float(np.float32(2.44e-4))
    s0 = np.array([1905, 27376, -29282])
    s1 = s0 + [190, -105, -85]
    np.testing.assert_array_equal(b.native["raw"][:2], [s0, s1])
    # the SDK truncates to whole mG; pelvimon keeps the fraction
    np.testing.assert_allclose(b.native["acc_mG"][:2], [s0 * f * 1000, s1 * f * 1000])
    np.testing.assert_array_equal(
        np.trunc(b.native["acc_mG"][:2]),
        np.trunc(np.float32(f) * np.array([s0, s1], np.float32) * np.float32(1000)),
    )
    assert np.all(np.abs(b.native["acc_mG"]) <= 8000)
    # timestamps: first = round(prev + (ts - prev)/57), last = ts
    assert int(b.native["t_ns"][0]) == round(100 + (2_000_000_000 - 100) / 57)
    assert int(b.native["t_ns"][-1]) == 2_000_000_000


def test_acc_raw_types_0_and_2():
    ts = (5_000_000_000).to_bytes(8, "little")
    t0 = bytes((2,)) + ts + b"\x00" + np.array([[-1, 2, 100], [3, -4, 127]], np.int8).tobytes()
    b = pmd.PROTOCOL.decoder(sample_rate_hz=52).feed(DATA, t0)[0]
    np.testing.assert_array_equal(b.native["acc_mG"], [[-1, 2, 100], [3, -4, 127]])
    vals = [[-8_000_000, 1, 999], [8_388_607, -8_388_608, -1]]
    content = b"".join(int(v).to_bytes(3, "little", signed=True) for row in vals for v in row)
    b = pmd.PROTOCOL.decoder(sample_rate_hz=52).feed(DATA, bytes((2,)) + ts + b"\x02" + content)[0]
    np.testing.assert_array_equal(b.native["acc_mG"], vals)


def test_delta_parser_multiple_blocks(vectors):
    v = vectors["pmd_delta_content_16bit_multiple_blocks"]
    blocks: list[pmd.DeltaBlock] = []
    s = pmd.parse_delta_frame(bytes.fromhex(v["payload_hex"]), 3, 16, blocks=blocks)
    assert s.shape == (v["expected"]["n_samples"], 3)
    np.testing.assert_array_equal(s[0], v["expected"]["sample0"])
    np.testing.assert_array_equal(s[1], v["expected"]["sample1"])
    np.testing.assert_array_equal(s, v["derived_values"]["samples_xyz"])
    assert [(b.bit_width, b.count) for b in blocks] == [
        (d["bit_width"], d["count"]) for d in v["expected"]["delta_blocks"]
    ]


def test_reference_sample_vector(vectors):
    v = vectors["pmd_ref_sample_16bit_4ch"]
    ref = pmd.parse_reference_sample(bytes.fromhex(v["payload_hex"]), 4, 16)
    np.testing.assert_array_equal(ref, v["expected"]["ref_sample"])


def test_delta_parser_wraps_at_32_bits():
    # reference 0x7fffffff as a 32-bit signed value, one 2-bit delta of +1 -> wraps to -2**31 as the SDK Int
    content = (0x7FFFFFFF).to_bytes(4, "little") + bytes((2, 1, 0b01))
    s = pmd.parse_delta_frame(content, 1, 32)
    np.testing.assert_array_equal(s[:, 0], [2**31 - 1, -(2**31)])


# --- sample times ---------------------------------------------------------------------------------------


def test_timestamp_rule_vectors(vectors):
    for case in vectors["pmd_timestamp_rule_vectors"]["expected"]["cases"]:
        args = (case["previous_ns"], case["frame_ns"], case["n"], case["fs"])
        if "timestamps_ns" in case:
            assert pmd.sample_times_ns(*args).tolist() == case["timestamps_ns"]
        else:
            with pytest.raises(pmd.PmdTimestampError):
                pmd.sample_times_ns(*args)


def test_rounding_ties_to_even_and_exact_at_large_timestamps():
    # (101 - 100)/2 = 0.5 -> 100 (half to even), as the Android test asserts
    assert pmd.sample_times_ns(100, 101, 2).tolist() == [100, 101]
    assert pmd.sample_times_ns(101, 102, 2).tolist() == [102, 102]  # 101.5 -> 102 (even)
    # 2026 timestamps (~8.3e17 ns) are beyond float64's integer range: the rule stays exact
    ts = 830_000_000_123_456_789
    got = pmd.sample_times_ns(ts - 3_000_000_001, ts, 3)
    assert got.tolist() == [ts - 2_000_000_001, ts - 1_000_000_000, ts]  # 1e9+1/3 steps, rounded
    first = pmd.sample_times_ns(0, ts, 4, 52)
    assert first.tolist() == [ts - round(k * 1e9 / 52) for k in (3, 2, 1, 0)]


def test_time_went_back_with_rate_restarts_timing():
    dec = pmd.PROTOCOL.decoder(sample_rate_hz=52)
    a = _acc_frame(10_000_000_000, 36)
    b = _acc_frame(5_000_000_000, 36)
    dec.feed(DATA, a)
    out = dec.feed(DATA, b)[0]
    assert out.gap_before and out.n_lost == 0
    assert int(out.native["t_ns"][-1]) == 5_000_000_000
    assert np.all(np.diff(out.native["t_ns"].astype(np.int64)) == pytest.approx(1e9 / 52, abs=1))


def _acc_frame(ts_ns: int, n: int) -> bytes:
    samples = np.tile(np.array([[0, 0, 1000]], np.int16), (n, 1))
    return bytes((2,)) + ts_ns.to_bytes(8, "little") + b"\x01" + samples.tobytes()


# --- loss detection -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate_known", [True, False])
def test_loss_detected_from_timestamps(rate_known):
    fs, n = 52, 36
    period = 1e9 / fs
    ctx = (
        {"sample_rate_hz": fs}
        if rate_known
        else {"previous_timestamp_ns": 1_000_000_000_000 - round(n * period)}
    )
    dec = pmd.PROTOCOL.decoder(**ctx)
    ts = [1_000_000_000_000 + round(k * n * period) for k in range(6)]
    lost_frame = 3
    batches = [dec.feed(DATA, _acc_frame(t, n))[0] for k, t in enumerate(ts) if k != lost_frame]
    gaps = [(b.gap_before, b.n_lost) for b in batches]
    assert gaps == [(False, 0)] * lost_frame + [(True, n), (False, 0)]
    # after the gap the samples keep the nominal spacing instead of being stretched over the gap
    dt = np.diff(batches[lost_frame].native["t_ns"].astype(np.int64))
    np.testing.assert_allclose(dt, period, atol=1)
    # without loss consecutive frames tile the time axis
    t_all = np.concatenate([b.native["t_ns"].astype(np.int64) for b in batches[:lost_frame]])
    np.testing.assert_allclose(np.diff(t_all), period, atol=1)


def test_no_false_loss_with_realistic_jitter():
    fs, n = 104, 58
    rng = np.random.default_rng(3)
    dec = pmd.PROTOCOL.decoder(sample_rate_hz=fs)
    t = 2_000_000_000_000
    flags = []
    for _ in range(50):
        t += round(n * 1e9 / fs * (1 + rng.normal(0, 0.01)))  # 1 % clock/frame jitter
        flags.append(dec.feed(DATA, _acc_frame(t, n))[0].gap_before)
    assert not any(flags)


# --- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ("02", MalformedFrameError),  # short header
        ("0200943577000000000101", MalformedFrameError),  # raw type 1, 1 content byte
        ("02009435770000000001", MalformedFrameError),  # raw, no samples
        ("02009435770000000081f1ff1400", MalformedFrameError),  # truncated reference
        ("02009435770000000081f1ff1400f00306027b0f08", MalformedFrameError),  # truncated block
        ("02009435770000000081f1ff1400f003210100000000", MalformedFrameError),  # width 33
        ("00009435770000000000aabbcc", UnsupportedFrameError),  # ECG
        ("05009435770000000000000000000000", UnsupportedFrameError),  # raw gyro
        ("02009435770000000083f1ff1400f003", UnsupportedFrameError),  # ACC compressed type 3
        ("3f009435770000000000", UnsupportedFrameError),  # unknown measurement
    ],
)
def test_specific_errors(payload, error):
    dec = pmd.PROTOCOL.decoder(sample_rate_hz=52, previous_timestamp_ns=1)
    with pytest.raises(error) as info:
        dec.feed(DATA, bytes.fromhex(payload))
    assert info.value.protocol == "polar_pmd" and info.value.problem


def test_gyro_float_nan_is_rejected():
    nan = struct.pack("<f", math.nan)
    payload = bytes.fromhex("05009435770000000081") + nan * 3
    with pytest.raises(MalformedFrameError, match="NaN"):
        pmd.PROTOCOL.decoder(previous_timestamp_ns=100).feed(DATA, payload)


def test_unknown_characteristic_and_context():
    with pytest.raises(UnsupportedFrameError):
        pmd.PROTOCOL.decoder().feed("00002a37-0000-1000-8000-00805f9b34fb", b"\x00")
    with pytest.raises(ValueError, match="unknown context"):
        pmd.PROTOCOL.decoder(rate=52)


def test_context_from_cli_strings():
    # ``pelvimon decode --set key=value`` may pass strings
    dec = pmd.PROTOCOL.decoder(factor="0.5", previous_timestamp_ns="100", sample_rate_hz="52")
    payload = bytes.fromhex("05009435770000000080") + bytes.fromhex("eaff08000d000301df00")
    b = dec.feed(DATA, payload)[0]
    np.testing.assert_array_equal(b.native["gyr_dps"], [[-11.0, 4.0, 6.5], [-11.5, 5.5, 8.0]])
    assert int(b.native["t_ns"][-1]) == 2_000_000_000
    assert b.gap_before  # 2 s since the previous frame at 52 Hz is far more than 2 samples


def test_observe_write_sets_rate():
    dec = pmd.PROTOCOL.decoder()
    dec.observe_write(CP, pmd.start_command(pmd.MeasurementType.ACC, 104, 16, 8, 3))
    b = dec.feed(DATA, _acc_frame(10_000_000_000, 10))[0]
    np.testing.assert_allclose(np.diff(b.native["t_ns"].astype(np.int64)), 1e9 / 104, atol=1)


def test_h10_raw_stream_with_loss():
    # H10 ACC: raw int16 mG frames (0x01) at 200 Hz; one lost frame is seen from the timestamps
    dec = pmd.H10_PROTOCOL.decoder(config=StreamConfig(rate_hz=200))
    n = 36
    ts = [3_000_000_000_000 + k * n * 5_000_000 for k in range(5)]
    out = [dec.feed(DATA, _acc_frame(t, n))[0] for k, t in enumerate(ts) if k != 2]
    assert [b.gap_before for b in out] == [False, False, True, False]
    assert out[2].n_lost == n
    np.testing.assert_allclose(out[0].acc_mps2, np.tile([[0, 0, G_MPS2]], (n, 1)))
    assert np.all(np.diff(out[0].native["t_ns"].astype(np.int64)) == 5_000_000)


def test_bad_rate_context():
    with pytest.raises(ValueError, match="sample_rate_hz"):
        pmd.PROTOCOL.decoder(sample_rate_hz=1e300)


# BlePmdClientParsersTest.kt: 32-bit (IEEE-754 bit pattern) delta content
_B28 = (
    "0000a001000008cdccec0d000008cdccec3d33331acdccec3d33331a0000c030333"
    "31a0000c0a09999da0000c0a09999da6666a6a19999da6666a60100000e"
)
_B32 = "6666a6010000e000426c450e0000e000426c450e2bf8ed21000060fdbe93baf0939b4ccf"
PARSER_32BIT_REAL_VECTOR1 = "0000803f000020410000a041" + ("1c06" + _B28 + "2003" + _B32) * 2
PARSER_32BIT = (
    "02000000193299e900dafeff2011173299e9e7a7651638db0646e7a7651638db064673413bb87a26"
    "0401c90aff597707d13287bf019f213e0d91e50176ad213e0d91e50176ad920138cde50176ad9201"
    "38cd00548487920138cd0054848778cbee400054848778cbee40f1decc8b78cbee40f1decc8b1732"
    "99e9f1decc8b173299e9e7a76516173299e9e7a7651638db0646e7a7651638db064673413bb87a26"
    "0401c90aff597707d13287bf019f213e0d91e50176ad213e0d91e50176ad920138cde50176ad9201"
    "38cd00548487920138cd0054848778cbee40"
)


def test_delta_parser_32bit_float_patterns():
    s = pmd.parse_delta_frame(bytes.fromhex(PARSER_32BIT_REAL_VECTOR1), 3, 32, signed=False)
    assert s.shape == (1 + 6 + 3 + 6 + 3, 3)
    np.testing.assert_array_equal(s[0], [0x3F800000, 0x41200000, 0x41A00000])
    np.testing.assert_array_equal(s[1], [0x3F800000 + 0x1A00000, 0x41200000 + 0x0800000, 0x3F8CCCCD])
    s = pmd.parse_delta_frame(bytes.fromhex(PARSER_32BIT), 3, 32, signed=False)
    assert s.shape == (18, 3)
    np.testing.assert_array_equal(s[0], [0x00000002, 0xE9993219, 0xFFFEDA00])
    m = 0xFFFFFFFF
    np.testing.assert_array_equal(
        s[1], [(2 + 0xE9993217) & m, (0xE9993219 + 0x1665A7E7) & m, (0xFFFEDA00 + 0x4606DB38) & m]
    )
    ref = pmd.parse_reference_sample(bytes.fromhex("00000000ffffffff00000080"), 3, 32, signed=False)
    np.testing.assert_array_equal(ref, [0, 0xFFFFFFFF, 0x80000000])


COVERED_VECTORS = {
    "pmd_acc_raw_type1_h10_style",
    "pmd_acc_compressed_type1",
    "pmd_gyro_compressed_type0",
    "pmd_gyro_header_only",
    "pmd_mag_compressed_type0",
    "pmd_delta_content_16bit_multiple_blocks",
    "pmd_ref_sample_16bit_4ch",
    "pmd_settings_parameters_gyro_like",
    "pmd_cp_response_get_settings_acc_success",
    "pmd_cp_response_error_invalid_resolution",
    "pmd_cp_device_stopped_streams",
    "pmd_cp_start_acc_verity_52hz_8g",
    "pmd_cp_sdk_mode_start_stop",
    "pmd_timestamp_rule_vectors",
}


def test_every_vector_in_the_file_is_tested(vectors):
    missing = set(vectors) - COVERED_VECTORS
    assert not missing, f"vectors without a test: {sorted(missing)}"


def test_decoder_context_hook_gives_rates_per_stream():
    ctx = pmd.PROTOCOL.decoder_context(StreamConfig(rate_hz=200, mag=True))
    assert ctx == {"sample_rate_hz": {"acc": 208.0, "gyro": 208.0, "mag": 100.0}}
    assert pmd.H10_PROTOCOL.decoder_context(StreamConfig(rate_hz=100)) == {"sample_rate_hz": {"acc": 100.0}}
    b = pmd.PROTOCOL.decoder(**ctx).feed(DATA, _acc_frame(10_000_000_000, 5))[0]
    np.testing.assert_allclose(np.diff(b.native["t_ns"].astype(np.int64)), 1e9 / 208, atol=1)
