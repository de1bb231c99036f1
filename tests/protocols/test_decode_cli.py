"""``pelvimon decode`` end to end: JSON keys and values, the table, one-line errors and exit codes.

Protocols other than movella_dot and pelvimon are exercised through the registry with their vendor vectors;
those tests skip while a protocol module is not in the tree.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

from pelvimon.cli import main
from pelvimon.commands import decode as dc
from pelvimon.firmware_protocols import registry
from pelvimon.firmware_protocols.batch import G_MPS2

DOT_MEDIUM = "15172003-4947-11e9-8646-d663bd873d93"
DOT_SHORT = "15172004-4947-11E9-8646-D663BD873D93"  # upper case on purpose: UUIDs are normalised


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["decode", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv: str) -> dict:
    code, out, err = run_cli(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def assert_one_line_error(code: int, err: str, expected_code: int, *words: str) -> None:
    assert code == expected_code
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])


def needs(name: str) -> None:
    if name not in registry.available():
        pytest.skip(f"protocol module {name} is not in the tree yet")


@pytest.fixture(scope="module")
def ref_vectors(repo_dir) -> dict[str, dict]:
    doc = (repo_dir / "docs" / "protocols" / "pelvimon_reference_protocol.md").read_text()
    m = re.search(r"<!-- vectors:begin -->\s*```json\n(.*?)```", doc, re.S)
    assert m, "vectors appendix missing from pelvimon_reference_protocol.md"
    return {v["id"]: v for v in json.loads(m.group(1))["vectors"]}


@pytest.fixture(scope="module")
def vendor(shared_dir):
    def load(name: str) -> dict[str, dict]:
        data = json.loads((shared_dir / "protocols" / "vectors" / name).read_text())
        return {v["id"]: v for v in data["vectors"]}

    return load


# ------------------------------------------------------------------------------------------------ Movella DOT


def test_dot_rate_quantities_json(capsys) -> None:
    raw = struct.pack("<I3f3f", 2_000_000, 0.25, -0.5, 9.75, 90.0, 0.0, -180.0) + bytes(12)
    obj = run_json(capsys, "--protocol", "movella_dot", "--hex", raw.hex())
    assert set(obj) == {"t_s", "acc_mps2", "gyr_rads", "native", "assumed_context"}
    assert obj["assumed_context"] == {"payload_mode": 21, "output_rate_hz": 60}  # (the decoder's defaults)
    assert obj["t_s"] == [2.0]
    assert obj["acc_mps2"] == [[0.25, -0.5, 9.75]]
    np.testing.assert_allclose(obj["gyr_rads"], [[np.pi / 2, 0.0, -np.pi]])
    assert obj["native"]["gyr_dps"] == [[90.0, 0.0, -180.0]]
    assert obj["native"]["timestamp_us"] == [2_000_000]


def test_dot_quaternion_mode_with_char_and_set(capsys) -> None:
    raw = struct.pack("<I4f", 7, 0.5, 0.5, -0.5, 0.5)
    obj = run_json(
        capsys,
        "--protocol",
        "movella_dot",
        "--char",
        DOT_SHORT,
        "--set",
        "payload_mode=5",
        "--hex",
        raw.hex(),
    )
    assert set(obj) == {"t_s", "quat_wxyz", "native", "assumed_context"}
    assert obj["assumed_context"] == {"output_rate_hz": 60}  # payload_mode was given
    assert obj["quat_wxyz"] == [[0.5, 0.5, -0.5, 0.5]]


def test_dot_table(capsys) -> None:
    raw = struct.pack("<I3f3f", 16_667, 1.5, 0, 0, 0, 0, 0) + bytes(12)
    code, out, err = run_cli(capsys, "--protocol", "movella_dot", "--hex", " ".join(f"{b:02x}" for b in raw))
    assert code == 0 and err == ""
    assert f"movella_dot on {DOT_MEDIUM}: 1 sample, time base device" in out
    assert "acc m/s² x y z" in out and "1.5 0 0" in out and "0.016667" in out
    assert "native timestamp_us: 16667" in out


def test_dot_free_acceleration_vector_is_refused_in_one_line(capsys, vendor) -> None:
    v = vendor("movella_dot.json")["dot_free_acceleration_1"]
    code, _, err = run_cli(
        capsys,
        "--protocol",
        "movella_dot",
        "--char",
        DOT_SHORT,
        "--set",
        "payload_mode=6",
        "--hex",
        v["payload_hex"],
    )
    assert_one_line_error(code, err, 1, "payload mode 6", "mode 21")


def test_dot_wrong_characteristic_and_length(capsys) -> None:
    code, _, err = run_cli(capsys, "--protocol", "movella_dot", "--char", DOT_SHORT, "--hex", "00" * 20)
    assert_one_line_error(code, err, 1, "payload_mode", DOT_MEDIUM)
    code, _, err = run_cli(capsys, "--protocol", "movella_dot", "--hex", "00" * 10)
    assert_one_line_error(code, err, 1, "expected 28 to 40 bytes")


# ------------------------------------------------------------------------------------------- pelvimon ref


def test_pelvimon_info_then_data_as_parts(capsys, ref_vectors) -> None:
    info, data = ref_vectors["info_after_start"], ref_vectors["data_imu6_two_samples"]
    obj = run_json(capsys, "--protocol", "pelvimon", "--hex", info["hex"], "--hex", data["hex"])
    e = data["expected"]
    assert set(obj) == {"t_s", "acc_mps2", "gyr_rads", "native"}
    np.testing.assert_allclose(obj["t_s"], np.array(e["t_us"]) * 1e-6)
    np.testing.assert_allclose(obj["acc_mps2"], np.array(e["acc_g"]) * G_MPS2)
    np.testing.assert_allclose(obj["native"]["gyr_dps"], e["gyr_dps_approx"], atol=1e-4)
    assert obj["native"]["counts"] == e["counts"]


def test_pelvimon_data_without_scales_is_refused(capsys, ref_vectors) -> None:
    code, _, err = run_cli(
        capsys, "--protocol", "pelvimon", "--hex", ref_vectors["data_imu6_two_samples"]["hex"]
    )
    assert_one_line_error(code, err, 1, "scales unknown", "GET_INFO", "acc_lsb_per_g")


def test_pelvimon_data_with_scales_from_set(capsys, ref_vectors) -> None:
    v = ref_vectors["data_imu9_one_sample"]
    obj = run_json(
        capsys, "--protocol", "pelvimon", "--hex", v["hex"],
        "--set", "acc_lsb_per_g=4096", "--set", "gyro_lsb_per_dps=16.384", "--set", "mag_lsb_per_uT=16",
    )  # fmt: skip
    assert set(obj) == {"t_s", "acc_mps2", "gyr_rads", "mag_uT", "native"}
    assert obj["mag_uT"] == v["expected"]["mag_uT"]
    np.testing.assert_allclose(obj["acc_mps2"], [[0, 0, G_MPS2]])


def test_pelvimon_control_frame_alone_has_no_samples(capsys, ref_vectors) -> None:
    hx = ref_vectors["reply_start_ok"]["hex"]
    assert run_json(capsys, "--protocol", "pelvimon", "--hex", hx) == {}
    code, out, _ = run_cli(capsys, "--protocol", "pelvimon", "--hex", hx)
    assert code == 0 and "no samples" in out


def test_malformed_part_is_named(capsys, ref_vectors) -> None:
    info = ref_vectors["info_after_start"]["hex"]
    code, _, err = run_cli(capsys, "--protocol", "pelvimon", "--hex", info, "--hex", "5a01010000")
    assert_one_line_error(code, err, 1, "part 2 of 2", "magic")


# ------------------------------------------------------------------------------------------ usage errors


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--protocol", "nope", "--hex", "00"], ["unknown protocol 'nope'", "movella_dot"]),
        (["--protocol", "movella_dot", "--hex", "0g"], ["not hex", "'g'"]),
        (["--protocol", "movella_dot", "--hex", "abc"], ["odd number"]),
        (["--protocol", "movella_dot", "--hex", " : "], ["no bytes"]),
        (
            ["--protocol", "movella_dot", "--hex", "00", "--set", "foo=1"],
            ["unknown --set key 'foo'", "payload_mode"],
        ),
        (["--protocol", "movella_dot", "--hex", "00", "--set", "payload_mode"], ["KEY=VALUE"]),
        (["--protocol", "movella_dot", "--hex", "00", "--set", "payload_mode=99"], ["payload mode 99"]),
        (["--protocol", "pelvimon", "--hex", "00", "--set", "acc_lsb_per_g=2048"], ["both"]),
        (["--protocol", "movella_dot"], ["--hex"]),
    ],
)
def test_usage_errors_exit_2_in_one_line(capsys, argv, words) -> None:
    try:
        code, _, err = run_cli(capsys, *argv)
    except SystemExit as e:  # argparse's own errors (missing required option)
        code, err = int(e.code), capsys.readouterr().err
    assert_one_line_error(code, err, 2, *words)


def test_real_process_prints_one_line_and_no_traceback() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "pelvimon.cli", "decode", "--protocol", "movella_dot", "--hex", "0011"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 1 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("pelvimon decode: error:")


def test_help_lists_decode() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "pelvimon.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and "decode" in r.stdout


@pytest.mark.parametrize(
    ("text", "value"),
    [("12", 12), ("-3", -3), ("0x1a", 26), ("0.5", 0.5), ("1e-3", 1e-3), ("true", True), ("GYRO", "GYRO"),
     ("123456789012345678901", 123456789012345678901)],
)  # fmt: skip
def test_parse_value(text: str, value) -> None:
    got = dc.parse_value(text)
    assert got == value and type(got) is type(value)


def test_parse_hex_accepts_common_spellings() -> None:
    assert dc.parse_hex("0x01 0x02:03-04,05") == bytes([1, 2, 3, 4, 5])


# --------------------------------------------------------------------------------- every registered protocol


@pytest.mark.parametrize("name", registry.available())
def test_any_protocol_gives_samples_or_one_line_error(capsys, name: str) -> None:
    for hx in ("00", "ff" * 20, "a501"):
        code, out, err = run_cli(capsys, "--protocol", name, "--hex", hx, "--json")
        if code == 0:
            assert isinstance(json.loads(out), dict)
        else:
            assert_one_line_error(code, err, code)
            assert code in (1, 2) and "internal error" not in err


def test_polar_vector_through_the_cli(capsys, vendor) -> None:
    needs("polar_pmd")
    v = vendor("polar_pmd.json")["pmd_acc_compressed_type1"]
    data_char = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"
    obj = run_json(
        capsys, "--protocol", "polar_pmd", "--char", data_char, "--hex", v["payload_hex"],
        "--set", f"previous_timestamp_ns={v['context']['previous_frame_timestamp_ns']}",
        "--set", f"factor={v['context']['factor']}",
    )  # fmt: skip
    assert {"t_s", "acc_mps2"} <= set(obj)
    np.testing.assert_allclose(
        obj["acc_mps2"], np.array(v["expected"]["samples_xyz_mG"]) * G_MPS2 / 1000, rtol=1e-9
    )


def test_metawear_vector_through_the_cli(capsys, vendor) -> None:
    needs("metawear")
    v = vendor("metawear.json")["mw_acc_bosch_single_4g"]
    obj = run_json(
        capsys,
        "--protocol",
        "metawear",
        "--hex",
        v["payload_hex"],
        "--set",
        f"acc_range_g={v['context']['range_g']}",
    )
    assert {"t_s", "acc_mps2"} <= set(obj)
    np.testing.assert_allclose(
        obj["acc_mps2"][0], np.array(v["expected"]["acc_g"]) * G_MPS2, rtol=1e-3, atol=1e-2
    )


def test_witmotion_vector_through_the_cli(capsys, vendor) -> None:
    needs("witmotion")
    v = vendor("witmotion.json")["wit_0x61_real_capture"]
    obj = run_json(capsys, "--protocol", "witmotion", "--hex", v["payload_hex"])
    assert {"t_s", "acc_mps2", "gyr_rads"} <= set(obj)
    d = v["derived_values"]
    np.testing.assert_allclose(obj["acc_mps2"][0], np.array(d["acc_g"]) * G_MPS2, atol=1e-3)
    np.testing.assert_allclose(obj["gyr_rads"][0], np.deg2rad(d["gyro_dps"]), atol=1e-4)


def test_movella_dot_doc_example_decodes_as_documented(capsys, repo_dir) -> None:
    doc = (repo_dir / "docs" / "protocols" / "movella_dot.md").read_text()
    m = re.search(r'pelvimon decode --protocol movella_dot --hex "([0-9a-f ]+)"', doc)
    assert m, "the mode-21 example is missing from docs/protocols/movella_dot.md"
    obj = run_json(capsys, "--protocol", "movella_dot", "--hex", m.group(1))
    assert obj["t_s"] == [0.123456] and obj["acc_mps2"] == [[0.25, -0.5, 9.75]]
    assert obj["native"]["gyr_dps"] == [[90.0, 0.0, -180.0]]


def test_json_of_separate_streams_keeps_each_batch() -> None:
    from pelvimon.firmware_protocols.batch import ImuBatch

    acc = ImuBatch(
        t_s=np.array([0.0, 0.01]), acc_mps2=np.ones((2, 3)), native={"acc_mG": np.full((2, 3), 102.0)}
    )
    gyr = ImuBatch(t_s=np.array([0.005]), gyr_rads=np.zeros((1, 3)))
    obj = dc.batches_to_json([acc, gyr])
    assert obj["t_s"] == [0.0, 0.01] and obj["acc_mps2"] == [[1.0] * 3] * 2 and "gyr_rads" not in obj
    assert [set(b) for b in obj["batches"]] == [{"t_s", "acc_mps2", "native"}, {"t_s", "gyr_rads"}]
    same = dc.batches_to_json([acc, acc])
    assert same["t_s"] == [0.0, 0.01, 0.0, 0.01] and "batches" not in same and len(same["native"]) == 2
    assert dc.batches_to_json([]) == {}
    # the losses the table names are in the JSON too, before the sample they precede
    lost = ImuBatch(t_s=np.array([0.03]), acc_mps2=np.ones((1, 3)), gap_before=True, n_lost=1)
    assert dc.batches_to_json([acc, lost])["gaps"] == [{"before_sample": 2, "n_lost": 1}]
    assert "gaps" not in same


def test_the_table_shows_device_times_to_the_microsecond() -> None:
    import io

    from pelvimon.firmware_protocols.batch import ImuBatch

    b = ImuBatch(t_s=np.array([770000000.0, 770000000.019]), acc_mps2=np.ones((2, 3)))
    out = io.StringIO()
    dc.print_table("polar_pmd", "pmd_data", [b], out)
    rows = out.getvalue().splitlines()[2:4]
    assert rows[0].startswith("770000000.000000 ") and rows[1].startswith("770000000.019000 ")


def test_the_table_says_what_context_it_assumed(capsys, vendor) -> None:
    """A MetaWear sample read with the default range is 4 times the vendor's (a 4 g configuration): the
    output names the range it assumed, and with --set the vendor's values come."""
    needs("metawear")
    code, out, _ = run_cli(capsys, "--protocol", "metawear", "--hex", "030416c494a22ad0")
    assert code == 0 and "native acc_g (1, 3): -7.48926 -11.6777 -5.97949" in out
    assumed = out.strip().splitlines()[-1]
    assert assumed.startswith("assumed, as the bytes do not say it") and "acc_range_g=16," in assumed
    code, out, _ = run_cli(capsys, "--protocol", "metawear", "--hex", "030416c494a22ad0", "--set", "acc_range_g=4")
    assert "native acc_g (1, 3): -1.87231 -2.91943 -1.49487" in out and "acc_range_g" not in out
    code, _, err = run_cli(capsys, "--protocol", "metawear", "--hex", "030416c494a22ad0", "--set", "acc_range_g=x")
    assert_one_line_error(code, err, 2, "acc_range_g=x", "a number is expected")


def test_missing_context_points_to_set(capsys) -> None:
    needs("polar_pmd")
    hexes = "06009435770000000080e2e6fa15490a06017f20fc"  # a compressed MAG frame (the SDK's MagDataTest)
    code, _, err = run_cli(capsys, "--protocol", "polar_pmd", "--hex", hexes)
    assert_one_line_error(code, err, 1, "sample_rate_hz", "--set KEY=VALUE")
    code, out, _ = run_cli(capsys, "--protocol", "polar_pmd", "--hex", hexes, "--set", "previous_timestamp_ns=100")
    assert code == 0 and "native raw (2, 3): -6430 5626 2633 -6431 5627 2635" in out
    assert out.strip().splitlines()[-1].endswith("factor=1")  # sent in the start response, not in the data


@pytest.mark.parametrize("json_out", [False, True])
def test_a_payload_cut_short_is_an_error_not_no_samples(capsys, vendor, json_out: bool) -> None:
    """A WitMotion frame cut short, or a Movesense DATA whose DATA_PART2 is not given: the decoder holds the
    bytes for the next part; that is said in one line with exit 1 (not "no samples", exit 0). The whole
    payload decodes."""
    needs("witmotion")
    whole = vendor("witmotion.json")["wit_0x61_real_capture"]["payload_hex"]
    extra = ("--json",) if json_out else ()
    code, out, err = run_cli(capsys, "--protocol", "witmotion", "--hex", whole[:24], *extra)
    assert_one_line_error(code, err, 1, "the bytes end inside a payload (12 bytes held", "each with its own --hex")
    assert out == ""
    obj = run_json(capsys, "--protocol", "witmotion", "--hex", whole[:24], "--hex", whole[24:])
    assert len(obj["t_s"]) == 1
    # a Movesense DATA of 150 bytes always has a DATA_PART2
    needs("movesense")
    from pelvimon.firmware_protocols.base import StreamConfig
    from pelvimon.sensors.simulator import SimParams, simulate

    proto = registry.get("movesense")
    model = proto.peripheral()
    for w in proto.start_sequence(StreamConfig(rate_hz=104.0)):
        model.handle_write(w.char_uuid, w.data)
    parts = [d.hex() for _, d in model.encode(simulate(SimParams(seconds=0.2, rate_hz=104.0)).batch)[:2]]
    code, out, err = run_cli(capsys, "--protocol", "movesense", "--hex", parts[0], *extra)
    assert_one_line_error(code, err, 1, "the bytes end inside a payload (150 bytes held")
    code, out, err = run_cli(capsys, "--protocol", "movesense", "--hex", parts[0], "--hex", parts[1])
    assert code == 0 and "8 samples" in out


def test_a_register_reply_has_no_samples_and_says_so(capsys) -> None:
    needs("witmotion")
    code, out, err = run_cli(capsys, "--protocol", "witmotion", "--hex", "5571" + "00" * 18)
    assert code == 0 and "no samples (a control message or a reply, not a data notification)" in out


_MW_HEX, _MW_CHAR = "031c00000300fd0751001600ce08b4004400a909", "326a9006-85cb-9195-d9dd-464cfbbae75a"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--protocol", "metawear", "--hex", _MW_HEX, "--char", _MW_CHAR, "--set", "imu=0"],
         ("imu=0", "imu must be 'bmi160'")),  # (was an internal AttributeError)
        (["--protocol", "metawear", "--hex", _MW_HEX, "--char", _MW_CHAR, "--set", "rate_hz=1e-320"],
         ("rate_hz=1e-320", "sample times it gives are not finite")),  # (was -Infinity, not JSON)
        (["--protocol", "metawear", "--hex", _MW_HEX, "--char", _MW_CHAR, "--set", "rate_hz=inf"],
         ("--set rate_hz=inf: give a finite number",)),
        (["--protocol", "movella_dot", "--hex", "80b2e60eadfd80387bbb743ce5af1c41c6b5933e32c2ed410a519142" + "00" * 12,
          "--set", "payload_mode=inf"], ("payload_mode=inf: give a finite number",)),  # (an internal OverflowError)
    ],
)
def test_set_values_of_the_wrong_kind_are_one_line(capsys, argv: list[str], words: tuple[str, ...]) -> None:
    for name in ("metawear", "movella_dot"):
        needs(name)
    for extra in ([], ["--json"]):
        code, out, err = run_cli(capsys, *argv, *extra)
        assert_one_line_error(code, err, 2, *words)
        assert out == ""
