"""What the session file reader skipped reaches every output: the quality record (``file_damage``), the JSON
of ``pelvimon analyze``, its terminal text and the HTML report, not only a warning on stderr.

The damage is made at known places: the chunk layout and the message times come from the official ``mcap``
reader of the intact file, not from the reader under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcap.reader import make_reader

from pelvimon.analysis import Quality, analyze_file
from pelvimon.cli import main
from pelvimon.sensors.csv_source import write_imu_csv
from pelvimon.sensors.session_file import SessionWriter
from pelvimon.sensors.simulator import SimParams, simulate
from pelvimon.sensors.source import SourceInfo

RATE = 104.0
START_NS = 1_700_000_000_000_000_000
FILE_DAMAGE_KEYS = {
    "damaged", "n_damaged_ranges", "n_bytes_skipped", "time_lost_s", "lost_after_s", "cut_short", "unfinished", "message",
}  # fmt: skip


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A simulated run written as a session file in one-second chunks, and the same samples as a CSV."""
    d = tmp_path_factory.mktemp("damage")
    sim = simulate(SimParams(seconds=30, rate_hz=RATE, seed=5))
    path = d / "run.mcap"
    b = sim.batch
    with SessionWriter(path, SourceInfo("sim", "simulator", RATE), start_unix_ns=START_NS, flush_interval_s=1e9) as w:
        for i in range(0, len(b), 52):
            w.write_batch(b.slice(i, min(i + 52, len(b))))
            if (i // 52) % 2 == 1:
                w.flush()  # closes the chunk: one second of samples each
    write_imu_csv(d / "run.csv", b)
    with open(path, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None
        chunks = [(ci.chunk_start_offset, ci.chunk_length, ci.message_start_time) for ci in summary.chunk_indexes]
        imu_t = [(m.log_time - START_NS) / 1e9 for _, ch, m in reader.iter_messages() if ch.topic == "/imu"]
    assert len(chunks) >= 14
    return {"dir": d, "path": path, "csv": d / "run.csv", "chunks": chunks, "imu_t": imu_t, "t_s": b.t_s}


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_cut_short_file_says_so_in_the_quality_the_json_the_text_and_the_report(
    rec: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    path: Path = rec["path"]  # type: ignore[assignment]
    off, length, t0_ns = rec["chunks"][9]  # type: ignore[index]
    cut = path.with_name("cut.mcap")
    size = off + length // 2
    cut.write_bytes(path.read_bytes()[:size])
    fd = analyze_file(cut).quality.file_damage
    # the last sample read is the last one recorded before the chunk the cut went through
    last_read = max(t for t in rec["imu_t"] if t < (t0_ns - START_NS) / 1e9)  # type: ignore[attr-defined]
    assert fd.damaged and fd.cut_short and fd.unfinished
    assert fd.n_damaged_ranges == 1 and fd.n_bytes_skipped == size - off
    assert fd.lost_after_s == pytest.approx(last_read, abs=1e-6) and fd.time_lost_s == 0.0
    assert fd.message is not None and "cut short" in fd.message and f"after {last_read:.1f} s is lost" in fd.message

    code, out, err = _cli(capsys, "analyze", str(cut), "--json")
    assert code == 0, err
    q = json.loads(out)["quality"]
    assert set(q["file_damage"]) == FILE_DAMAGE_KEYS
    assert q["file_damage"]["cut_short"] is True and q["file_damage"]["n_bytes_skipped"] == size - off
    assert q["duration_s"] <= last_read

    code, out, err = _cli(capsys, "analyze", str(cut))
    assert code == 0, err
    head, quality = out.split("Data quality")
    assert "The session file is damaged: the file was cut short" in " ".join(head.split())
    assert "session file: the file was cut short" in " ".join(quality.split())

    html = path.with_name("cut.html")
    code, out, err = _cli(capsys, "report", str(cut), "-o", str(html))
    assert code == 0, err
    text = html.read_text()
    notice = text.index('id="file-damage"')
    assert notice < text.index("<h2>Session</h2>") and "cut short" in text[notice : notice + 300]
    assert "<li>Session file: the file was cut short" in text


def test_a_damaged_chunk_inside_the_file_counts_the_time_lost(rec: dict) -> None:
    path: Path = rec["path"]  # type: ignore[assignment]
    chunks = rec["chunks"]
    off, length, t0_ns = chunks[6]  # type: ignore[index]
    t1 = (chunks[7][2] - START_NS) / 1e9  # type: ignore[index]
    data = bytearray(path.read_bytes())
    data[off + length // 2] ^= 0x5A
    bad = path.with_name("flip.mcap")
    bad.write_bytes(bytes(data))
    q = analyze_file(bad).quality
    fd = q.file_damage
    imu_t: list[float] = rec["imu_t"]  # type: ignore[assignment]
    before = max(t for t in imu_t if t < (t0_ns - START_NS) / 1e9)  # last sample before the hole
    j = next(j for j, t in enumerate(imu_t) if t >= t1)  # the first batch after it (a message's time is its last
    after = float(rec["t_s"][52 * j])  # type: ignore[index]  # sample's): its first sample
    assert fd.damaged and not fd.cut_short and not fd.unfinished and fd.lost_after_s is None
    assert fd.n_damaged_ranges == 1 and fd.n_bytes_skipped == length
    assert fd.time_lost_s == pytest.approx(after - before, abs=1e-6)
    assert q.n_samples_lost == pytest.approx((after - before) * RATE - 1, abs=2)


def test_an_unfinished_file_is_told_apart_from_a_damaged_one(rec: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """What a crash leaves (no summary section) is read whole: said, but not as damage."""
    data = rec["path"].read_bytes()  # type: ignore[attr-defined]
    crashed = rec["path"].with_name("crashed.mcap")  # type: ignore[attr-defined]
    crashed.write_bytes(data[: data.rfind(b"\x0f\x04\x00\x00\x00\x00\x00\x00\x00")])  # up to the data end
    fd = analyze_file(crashed).quality.file_damage
    assert fd.unfinished and not fd.damaged and not fd.cut_short and fd.n_bytes_skipped == 0
    code, out, err = _cli(capsys, "analyze", str(crashed))
    assert code == 0, err
    assert "The session file was not closed" in " ".join(out.split())


@pytest.mark.parametrize("name", ["run.mcap", "run.csv"])
def test_an_intact_file_or_a_csv_has_nothing_to_tell(rec: dict, capsys: pytest.CaptureFixture[str], name: str) -> None:
    path = rec["dir"] / name  # type: ignore[operator]
    code, out, err = _cli(capsys, "analyze", str(path), "--json")
    assert code == 0, err
    assert json.loads(out)["quality"]["file_damage"] == {
        "damaged": False, "n_damaged_ranges": 0, "n_bytes_skipped": 0, "time_lost_s": 0.0, "lost_after_s": None,
        "cut_short": False, "unfinished": False, "message": None,
    }  # fmt: skip
    code, out, err = _cli(capsys, "analyze", str(path))
    assert code == 0 and "session file" not in out.lower().replace(name, "")
    assert not Quality.__dataclass_fields__["file_damage"].default.damaged  # (a quality from steps alone too)
