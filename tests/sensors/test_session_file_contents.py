"""Session files whose bytes are sound (every chunk's CRC checks) but whose contents no recording makes: a
message that is not a batch, a batch that is not samples, a header that is not a rate. What is sound is
read; what is not is left out and counted, or believed from the samples' own time stamps."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pelvimon.analysis import analyze_file
from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.replay import ReplaySource
from pelvimon.sensors.session_file import SessionReader, SessionWriter
from pelvimon.sensors.simulator import SimParams, simulate
from pelvimon.sensors.source import SourceInfo, SourceStatus

SIM = simulate(SimParams(seconds=20.0, seed=3)).batch
PARTS = [SIM.slice(i, i + 200) for i in range(0, len(SIM), 200)]


def _body(p: ImuBatch, **kw: object) -> bytes:
    d = {"t_s": p.t_s.tolist(), "acc_mps2": p.acc_mps2.tolist(), "gyr_rads": p.gyr_rads.tolist(), "mag_uT": None,
         "quat_wxyz": None, "seq": None, "gap_before": False, "n_lost": 0, "time_base": "session"}
    d.update(kw)
    return json.dumps(d).encode()


def _file(path: Path, body: Callable[[int, ImuBatch], bytes] | None = None, *, rate: object = 200.0,
          metadata: dict | None = None, protocol: str = "simulator", extra: list[bytes] = ()) -> Path:
    """A session file of the 20 s run in 20 batches, through the writer's own channel (``body`` gives the
    bytes of message i), with ``extra`` status messages."""
    info = SourceInfo(name="sim", protocol=protocol, rate_hz=rate, metadata=metadata or {})  # type: ignore[arg-type]
    w = SessionWriter(path, info, start_unix_ns=1_700_000_000 * 10**9)
    cid = w._channel("/imu", "json", w._json_schema)
    for i, p in enumerate(PARTS):
        w._add(cid, int(p.t_s[-1] * 1e9), body(i, p) if body else _body(p))
    for raw in extra:
        w._add(w._channel("/status", "json"), 10**9, raw)
    w.close()
    return path


@pytest.fixture(scope="module")
def intact(tmp_path_factory: pytest.TempPathFactory):
    return analyze_file(_file(tmp_path_factory.mktemp("intact") / "ok.mcap"))


@pytest.mark.parametrize(
    "bad",
    [
        b"[" * 100_000 + b"]" * 100_000,  # (json: RecursionError; the whole file was lost to it)
        lambda p: _body(p, seq=[2**70] * len(p)),  # (OverflowError: the whole file was lost)
        lambda p: _body(p, t_s=[float("inf")] * len(p)),  # (OverflowError)
        lambda p: _body(p, t_s=p.t_s[::-1].tolist()),
        lambda p: _body(p, acc_mps2=(p.acc_mps2 * 1e300).tolist()),  # (numpy warnings, "NaN or inf")
        lambda p: _body(p, acc_mps2=np.where(np.arange(len(p))[:, None] == 5, np.nan, p.acc_mps2).tolist()),
        lambda p: _body(p, n_lost=1e300, gap_before=True),  # (a 300-digit loss count)
        lambda p: _body(p, n_lost=-5, gap_before=True),
        lambda p: _body(PARTS[2]),  # (a batch from before: session time went back)
    ],
    ids=["nested-json", "huge-seq", "inf-time", "time-backwards", "huge-acc", "nan-acc", "huge-loss",
         "negative-loss", "out-of-order"],
)
def test_a_batch_no_recording_makes_is_left_out_and_counted(tmp_path: Path, intact, bad) -> None:
    path = _file(tmp_path / "x.mcap", lambda i, p: (bad if isinstance(bad, bytes) else bad(p)) if i == 10 else _body(p))
    a = analyze_file(path)
    assert "1 message could not be decoded and were left out" in (a.quality.file_damage.message or "")
    assert a.quality.n_samples == intact.quality.n_samples - 200
    assert 0 < a.quality.n_samples_lost < 1000 and a.quality.duration_s == pytest.approx(intact.quality.duration_s)
    assert abs(len(a.steps) - len(intact.steps)) <= 3


def test_batches_in_reverse_order_are_not_a_negative_session(tmp_path: Path) -> None:
    """The batches written last to first gave "-18.0 s ... cadence -217 steps/min"."""
    path = _file(tmp_path / "x.mcap", lambda i, p: _body(PARTS[-1 - i]))
    reader = SessionReader(path)
    batches = [b for b in reader.items() if isinstance(b, ImuBatch)]
    assert len(batches) == 1 and batches[0].t_s[0] == PARTS[-1].t_s[0]


@pytest.mark.parametrize("rate", ["200", [200], True, float("nan"), 20.0, 90.0, 2000.0, 1e9])
def test_a_header_rate_that_is_not_the_samples_is_taken_from_their_time_stamps(tmp_path: Path, intact, rate,
                                                                                 caplog) -> None:
    """A rate given as text was an internal error; 20 Hz stated over 200 Hz samples gave 2 steps of 739
    steps/min, 1e9 Hz asked for 405 GiB in replay."""
    path = _file(tmp_path / "x.mcap", rate=rate)
    with caplog.at_level(logging.WARNING):
        a = analyze_file(path)
        src = ReplaySource(path)
    assert src.info.rate_hz == pytest.approx(200.0, rel=1e-3) and a.quality.rate_hz == pytest.approx(200.0, rel=1e-3)
    assert len(a.steps) == len(intact.steps)
    if isinstance(rate, float) and np.isfinite(rate):
        assert f"its header says the samples come at {rate:.4g} Hz, but their time stamps give 200 Hz" in caplog.text


@pytest.mark.parametrize("squeeze", [0.8, 0.55])
def test_a_sound_header_stands_when_the_first_second_reads_fast(tmp_path: Path, squeeze: float, caplog) -> None:
    """After a delivery stall at the start the session clock slews: the first second of a healthy 104 Hz
    recording read 127 Hz, and the file was called damaged and analysed at that rate (its pelvic drop 17 %
    low)."""
    def body(i: int, p: ImuBatch) -> bytes:
        return _body(p, t_s=(p.t_s * squeeze).tolist()) if i < 6 else _body(p)

    path = _file(tmp_path / "x.mcap", body)
    with caplog.at_level(logging.WARNING):
        src = ReplaySource(path)
    assert src.info.rate_hz == 200.0 and "header" not in caplog.text


def test_a_status_no_recording_makes_is_left_out(tmp_path: Path, intact) -> None:
    bad = json.dumps({"kind": "gap", "t_s": 5.0, "message": "", "details": {"n_lost": "abc"}}).encode()
    path = _file(tmp_path / "x.mcap", extra=[bad])
    items = list(SessionReader(path).items())
    assert not [s for s in items if isinstance(s, SourceStatus) and s.kind == "gap"]
    assert len(analyze_file(path).steps) == len(intact.steps)


@pytest.mark.parametrize("metadata", [{"decoder_context": [1, 2]}, {"start_writes": [["x", "zz"]]}, {}])
def test_damaged_decoder_settings_or_no_raw_notifications_replay_the_recorded_samples(tmp_path: Path, metadata,
                                                                                      caplog) -> None:
    """A Movesense session whose header's decoder settings are damaged (an internal TypeError, or a bare
    "non-hexadecimal number"), or whose raw notifications are missing ("none could be decoded")."""
    path = _file(tmp_path / "x.mcap", protocol="movesense", metadata=metadata)
    with caplog.at_level(logging.WARNING):
        src = ReplaySource(path)
    assert not src.redecoding
    assert ("decoder settings its header records are damaged" in caplog.text) == bool(metadata)
    with pytest.raises(ValueError, match="cannot decode again"):
        ReplaySource(path, redecode=True)


@pytest.mark.parametrize("name", ["witmotion_symmetric", "movella_dot_fast_cadence"])
def test_a_header_rate_that_is_not_a_number_on_one_sample_notifications(tmp_path: Path, name: str) -> None:
    """Sensors that send one sample a notification record batches of one sample: the time stamps' rate is
    taken across them (a WitMotion replay failed with "rate_hz must be > 0", a DOT replay found half its
    steps at an assumed 100 Hz)."""
    src = Path(__file__).parents[2] / "recordings" / "emulated" / f"{name}.mcap"
    reader = SessionReader(src)
    h = reader.header
    nominal = h.source.rate_hz
    info = SourceInfo(**{**h.source.__dict__, "rate_hz": "abc"})  # type: ignore[arg-type]
    path = tmp_path / "x.mcap"
    w = SessionWriter(path, info, start_unix_ns=h.start_unix_ns, extra=h.extra)
    for it in reader.items():
        w.write_item(it)
    w.close()
    replayed = ReplaySource(path)
    assert replayed.redecoding and replayed.info.rate_hz == pytest.approx(nominal, rel=0.02)
    assert len(analyze_file(path).steps) == len(analyze_file(src).steps)
