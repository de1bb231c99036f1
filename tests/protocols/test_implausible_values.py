"""Floats that no sensor can report (NaN, infinity, a flipped exponent bit) and scales that would make
them are refused as malformed frames, never passed on as samples (cases found by fuzzing)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import pelvimon.firmware_protocols.pelvimon_ref as ref
from pelvimon.firmware_protocols import registry
from pelvimon.firmware_protocols.base import MalformedFrameError, StreamConfig, check_values
from pelvimon.firmware_protocols.batch import ImuBatch

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("factor_hex", ["0000c07f", "0000807f", "00000000", "000080bf"])  # NaN, inf, 0, -1
def test_polar_start_response_with_a_bad_factor(factor_hex: str) -> None:
    p = registry.get("polar_pmd")
    cfg = StreamConfig(rate_hz=52.0)
    per = p.peripheral()
    dec = p.decoder(**p.decoder_context(cfg))
    seen = 0
    for w in p.start_sequence(cfg):
        for ch, b in per.handle_write(w.char_uuid, w.data):
            if b[:3] == bytes.fromhex("f00202"):  # the ACC start response ends with its FACTOR
                seen += 1
                with pytest.raises(MalformedFrameError, match="FACTOR"):
                    dec.feed(ch, b[:-4] + bytes.fromhex(factor_hex))
                continue
            dec.feed(ch, b)
    assert seen == 1
    # the stream keeps its previous (default) factor: later samples decode to numbers
    t = 10 + np.arange(60) / 52.0
    notes = per.encode(ImuBatch(t_s=t, acc_mps2=np.tile([0, 0, 9.8], (60, 1)), gyr_rads=np.zeros((60, 3))))
    out = [b for c, n in notes + per.flush() for b in dec.feed(c, n) if b.acc_mps2 is not None]
    assert out and all(np.isfinite(b.acc_mps2).all() for b in out)


@pytest.mark.parametrize("bad", [NAN, INF, 2.3e38])
def test_movesense_float_that_no_sensor_reports(bad: float) -> None:
    ms = registry.get("movesense")
    d = ms.decoder()
    good = bytes([2, 99]) + struct.pack("<I", 1000) + struct.pack("<3f", 0.1, 0, 9.8) + struct.pack("<3f", 0, 0, 0)
    assert d.feed(ms.spec.notify_uuids[0], good)
    payload = bytes([2, 99]) + struct.pack("<I", 1010) + struct.pack("<3f", bad, 0, 9.8) + struct.pack("<3f", 0, 0, 0)
    with pytest.raises(MalformedFrameError):
        ms.decoder().feed(ms.spec.notify_uuids[0], payload)


@pytest.mark.parametrize(("reg", "n", "tail"), [(0x07, 4, b""), (0x04, 3, b"\x03"), (0x05, 3, b"\x03")])
def test_metawear_fusion_nan(reg: int, n: int, tail: bytes) -> None:
    mw = registry.get("metawear")
    with pytest.raises(MalformedFrameError, match="non-finite"):
        mw.decoder().feed(mw.spec.notify_uuids[0], bytes([0x19, reg]) + struct.pack("<f", NAN) * n + tail)


def test_pelvimon_ref_scales_beyond_any_sensor() -> None:
    info = bytearray(bytes.fromhex("a5017e000001010164001000d007c2160100ca02000000000000010000580000000000000000000000"))
    rec = np.frombuffer(bytes(info), dtype=ref._INFO_DTYPE)[0]
    assert float(rec["acc_lsb_per_g"]) < 1e-30  # the fuzzed frame: a denormal scale
    with pytest.raises(MalformedFrameError, match="full scale"):
        ref.parse_info(bytes(info))


def test_check_values_limits_by_unit() -> None:
    ok = np.array([[0.0, 9.8, -150.0]])
    assert check_values("p", "f", "acc_mps2", ok) is ok
    with pytest.raises(MalformedFrameError, match="acc_mps2"):
        check_values("p", "f", "acc_mps2", np.array([1e5]))
    with pytest.raises(MalformedFrameError, match="quat_wxyz"):
        check_values("p", "f", "quat_wxyz", np.array([0.0, 0.0, 3.0, 0.0]))
    assert check_values("p", "f", "status", np.array([1e9])).size == 1  # no unit: finite is enough


def test_movella_dot_flipped_exponent() -> None:
    """A mode-21 notification whose acc_x float had an exponent byte flipped (2.3e38 m/s²)."""
    p = registry.get("movella_dot")
    b = bytes.fromhex("ebb6e70e4ea92d7f3caf593f368d8241807b844138e4be41c44ea542000000000000000000000000")
    with pytest.raises(MalformedFrameError, match="acc_mps2 value 2.31e\\+38"):
        p.decoder(payload_mode=21, output_rate_hz=60).feed("15172003-4947-11e9-8646-d663bd873d93", b)


def test_a_signalling_nan_is_refused_without_a_warning() -> None:
    """A float32 signalling NaN (0x7f800001) printed numpy's "invalid value encountered in cast" on the way to
    its refusal."""
    import warnings

    snan = struct.pack("<I", 0x7F800001)
    ms, dot, mw = registry.get("movesense"), registry.get("movella_dot"), registry.get("metawear")
    dot_payload = bytes.fromhex("ebb6e70e") + snan + bytes.fromhex("3caf593f368d8241807b844138e4be41c44ea542") + bytes(12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(MalformedFrameError, match="NaN"):
            ms.decoder().feed(ms.spec.notify_uuids[0], bytes([2, 99]) + struct.pack("<I", 1000) + snan * 6)
        with pytest.raises(MalformedFrameError, match="NaN"):
            dot.decoder(payload_mode=21, output_rate_hz=60).feed("15172003-4947-11e9-8646-d663bd873d93", dot_payload)
        with pytest.raises(MalformedFrameError, match="NaN"):  # (MetaWear's sensor-fusion floats alike)
            mw.decoder().feed(mw.spec.notify_uuids[0], bytes([0x19, 0x07]) + snan * 4)
