"""Session files: round trip, crash safety (SIGKILL), truncation and corruption recovery."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pelvimon.dsp.records import Alert, Step
from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.session_file import (
    CalibrationRecord,
    DeviceRecord,
    SessionFileError,
    SessionReader,
    SessionWriter,
)
from pelvimon.sensors.source import RawNotification, SourceInfo, SourceStatus

INFO = SourceInfo(name="Movesense 1234", protocol="movesense", rate_hz=104.0, address="AA:BB", metadata={"path": "/Meas/IMU6/104"})


def _batch(t0: float, n: int, rng: np.random.Generator, gap: bool = False) -> ImuBatch:
    return ImuBatch(
        t_s=t0 + np.arange(n) / 104.0,
        acc_mps2=rng.normal(size=(n, 3)) * 3 + [0, 0, 9.8],
        gyr_rads=rng.normal(size=(n, 3)),
        gap_before=gap,
        n_lost=3 if gap else 0,
        time_base="session",
    )


def _step(t: float, side: str = "L", cpd: float = 5.0) -> Step:
    return Step(side, t, t + 0.25, 0.35, 0.25, 0.10, 171.4, cpd, 9.0, 6.0, 10.0, float("nan"), 2.5, False, 0.99)


def _write_session(path: Path, n_batches: int = 50) -> list:
    rng = np.random.default_rng(1)
    written: list = []
    with SessionWriter(path, INFO, start_unix_ns=1_700_000_000_000_000_000) as w:
        for i in range(n_batches):
            raw = RawNotification(0.077 * i + 1e-4 * rng.random(), "34800002-7185-4D5D-B431-630E7050E8F0", rng.bytes(40))
            b = _batch(0.077 * i, 8, rng, gap=(i == 7))
            w.write_raw(raw)
            w.write_batch(b)
            written += [raw, b]
            if i % 10 == 5:
                s = SourceStatus("gap", 0.077 * i, "lost 3 samples", {"n_lost": 3})
                st_ = _step(0.077 * i, "L" if i % 20 == 5 else "R")
                w.write_status(s)
                w.write_step(st_)
                written += [s, st_]
        a = Alert("cpd_deg", "L", 8.0, 4.0, 2.0, "diff_deg", 3.0, None, "left stance drop", 1.5)
        w.write_alert(a)
        w.write_calibration(1.0, {"mount_quat_wxyz": [1.0, 0.0, 0.0, 0.0], "state": "calibrated"})
        w.write_device(2.0, {"battery_pct": 87})
        written += [a, CalibrationRecord(1.0, {"mount_quat_wxyz": [1.0, 0.0, 0.0, 0.0], "state": "calibrated"}), DeviceRecord(2.0, {"battery_pct": 87})]
    return written


def _same(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, ImuBatch):
        return (
            np.array_equal(a.t_s, b.t_s)
            and np.array_equal(a.acc_mps2, b.acc_mps2)
            and np.array_equal(a.gyr_rads, b.gyr_rads)
            and a.gap_before == b.gap_before
            and a.n_lost == b.n_lost
        )
    if isinstance(a, Step | Alert):
        return all(
            (x == y) or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
            for x, y in zip(a.to_dict().values(), b.to_dict().values(), strict=True)
        )
    return a == b


def test_round_trip_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "s.mcap"
    written = _write_session(path)
    r = SessionReader(path)
    assert r.header.source == INFO
    assert r.header.start_unix_ns == 1_700_000_000_000_000_000
    got = list(r.items())
    assert r.complete and r.damage is None
    assert len(got) == len(written)
    for a, b in zip(written, got, strict=True):
        assert _same(a, b), (a, b)


def test_existing_file_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "s.mcap"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="exists already"):
        SessionWriter(path, INFO)
    assert path.read_bytes() == b"precious"


def test_not_a_session_file(tmp_path: Path) -> None:
    p = tmp_path / "x.mcap"
    p.write_text("t_s,acc\n1,2\n")
    with pytest.raises(SessionFileError, match="not a readable session file|not a pelvimon session"):
        SessionReader(p)
    with pytest.raises(SessionFileError, match="no such session file"):
        SessionReader(tmp_path / "missing.mcap")


def test_every_truncation_opens_and_yields_a_prefix(tmp_path: Path) -> None:
    path = tmp_path / "s.mcap"
    written = _write_session(path, n_batches=30)
    data = path.read_bytes()
    header_end = None
    cut_path = tmp_path / "cut.mcap"
    for cut in range(0, len(data), max(1, len(data) // 97)):
        cut_path.write_bytes(data[:cut])
        try:
            r = SessionReader(cut_path)
        except SessionFileError:
            assert header_end is None, f"cut at {cut} fails to open though a shorter cut opened"
            continue
        header_end = header_end or cut
        got = list(r.items())
        assert not r.complete
        assert len(got) <= len(written)
        for a, b in zip(written, got, strict=False):  # a prefix of what was written, in order
            assert _same(a, b)
    assert header_end is not None and header_end < len(data) // 4


def test_a_corrupt_chunk_is_skipped_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "s.mcap"
    # Many flushes -> many chunks: write with a zero flush interval.
    rng = np.random.default_rng(3)
    with SessionWriter(path, INFO, flush_interval_s=0.0) as w:
        for i in range(40):
            w.write_batch(_batch(0.1 * i, 10, rng))
    data = bytearray(path.read_bytes())
    good = list(SessionReader(path).items())
    assert len(good) == 40
    mid = len(data) // 2
    data[mid : mid + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))
    r = SessionReader(path)
    got = list(r.items())
    batches = [b for b in got if isinstance(b, ImuBatch)]
    assert len(batches) == 39  # one chunk (one batch) lost, the ones after it read
    assert r.damage is not None and "skipped 1 damaged chunk" in r.damage
    k = next(i for i, (a, b) in enumerate(zip(good, batches, strict=False)) if not _same(a, b))
    assert all(_same(a, b) for a, b in zip(good[:k], batches[:k], strict=True))  # everything before
    assert batches[k].gap_before and batches[k].n_lost > 0  # the batch after the hole follows a gap
    assert np.array_equal(batches[k].t_s, good[k + 1].t_s)
    assert all(_same(a, b) for a, b in zip(good[k + 2 :], batches[k + 1 :], strict=True))  # everything after


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=600), keep=st.integers(min_value=0, max_value=400))
def test_fuzz_reader_never_raises_anything_but_its_error(tmp_path: Path, blob: bytes, keep: int) -> None:
    base = tmp_path / "base.mcap"
    if not base.exists():
        _write_session(base, n_batches=5)
    p = tmp_path / "fuzz.mcap"
    p.write_bytes(base.read_bytes()[:keep] + blob)
    try:
        r = SessionReader(p)
    except SessionFileError:
        return
    for item in r.items():
        assert item is not None


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from pelvimon.firmware_protocols.batch import ImuBatch
    from pelvimon.sensors.session_file import SessionWriter
    from pelvimon.sensors.source import RawNotification, SourceInfo
    w = SessionWriter(sys.argv[1], SourceInfo("sim", "simulator", 200.0), flush_interval_s=1.0)
    t0 = time.monotonic()
    i = 0
    while True:
        t = time.monotonic() - t0
        w.write_raw(RawNotification(t, "6e400003-b5a3-f393-e0a9-e50e24dcca9e", i.to_bytes(4, "little")))
        w.write_batch(ImuBatch(t_s=np.array([t]), acc_mps2=np.zeros((1, 3)), time_base="session"))
        if i == 0:
            print("started", flush=True)
        i += 1
        time.sleep(0.005)
    """
)


def test_sigkill_loses_at_most_the_last_second(tmp_path: Path) -> None:
    path = tmp_path / "killed.mcap"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    time.sleep(3.0)
    t_kill = os.stat(path).st_mtime  # noqa: F841 - for debugging
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    r = SessionReader(path)
    items = list(r.items())
    assert not r.complete
    raws = [i for i in items if isinstance(i, RawNotification)]
    assert raws, "nothing recovered"
    counters = [int.from_bytes(x.data, "little") for x in raws]
    assert counters == list(range(len(counters))), "recovered notifications are not a gap-free prefix"
    # the process ran for ~3 s after its first write; at most the last ~1 s (plus scheduling) is lost
    assert raws[-1].t_host_s >= 3.0 - 1.5, f"only {raws[-1].t_host_s:.2f} s of ~3 s recovered"


def test_the_reader_and_the_command_line_know_the_same_magic() -> None:
    """pelvimon.file_kinds (dependency-free, for the command line) and the reader (the mcap library's)."""
    from mcap.writer import MCAP0_MAGIC

    from pelvimon.file_kinds import MCAP_MAGIC

    assert MCAP_MAGIC == MCAP0_MAGIC


def test_steps_written_before_they_had_a_stride_time_still_read(tmp_path: Path) -> None:
    """A step record without ``stride_time_s`` (files written before steps had it) reads with it NaN, and
    is still told a step by its keys when its channel description was lost."""
    import json
    from types import SimpleNamespace

    from pelvimon.sensors import session_file as sf

    path = tmp_path / "old.mcap"
    old = {k: v for k, v in _step(1.0).to_dict().items() if k != "stride_time_s"}
    old["vertical_oscillation_cm"] = None  # (NaN as the writer stores it)
    with SessionWriter(path, INFO, start_unix_ns=1_700_000_000_000_000_000) as w:
        w._add(w._channel(sf._TOPIC_STEPS, "json"), w._t_ns(1.0), json.dumps(old).encode())
    (got,) = [i for i in SessionReader(path).items() if isinstance(i, Step)]
    assert math.isnan(got.stride_time_s) and got.t_ic_s == 1.0 and got.cpd_deg == 5.0
    reader = SessionReader(path)
    for body in (old, {**old, "stride_time_s": 0.7}):
        ch = reader._guess_channel(SimpleNamespace(data=json.dumps(body).encode(), channel_id=7))
        assert ch is not None and ch.topic == sf._TOPIC_STEPS
