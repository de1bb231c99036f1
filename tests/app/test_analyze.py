"""``pelvimon analyze``: JSON schema, per-step CSV, terminal report, baselines, gaps and one-line errors."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from pelvimon.analysis import CsvOptions, analyze_batches, analyze_steps, load_batches
from pelvimon.cli import main
from pelvimon.config import load_config
from pelvimon.dsp._gait_eval import lossy_batches
from pelvimon.dsp.records import Step
from pelvimon.firmware_protocols.batch import G_MPS2, ImuBatch
from pelvimon.sensors import csv_source
from pelvimon.sensors.csv_source import write_imu_csv
from pelvimon.sensors.simulator import SimParams, simulate

SECONDS = 75.0


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("rec")
    asym = simulate(SimParams(seconds=SECONDS, cpd_left_deg=8.0, cpd_right_deg=4.0, seed=21))
    sym = simulate(SimParams(seconds=SECONDS, cpd_left_deg=6.0, cpd_right_deg=6.0, seed=22))
    write_imu_csv(d / "asym.csv", asym.batch)
    write_imu_csv(d / "sym.csv", sym.batch)
    return {"dir": d, "asym": asym, "sym": sym}


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["analyze", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def no_nan(text: str) -> dict:
    def bad(c: str) -> None:
        raise AssertionError(f"non-standard JSON constant {c}")

    return json.loads(text, parse_constant=bad)


def test_json_is_one_object_with_the_design_names(
    recordings: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, str(recordings["dir"] / "asym.csv"), "--json")
    assert code == 0, err
    doc = no_nan(out)
    assert set(doc) == {"steps", "summary", "alerts", "quality"}
    assert doc["steps"] and all(list(s) == Step.field_names() for s in doc["steps"])
    # NaN metrics (steps before the mount calibration) are null, not NaN
    assert any(s["cpd_deg"] is None for s in doc["steps"])
    summ = doc["summary"]
    assert summ["n_steps"] == len(doc["steps"]) and summ["input"] == "asym.csv"
    cpd = summ["asymmetry"]["cpd_deg"]
    assert set(cpd) >= {
        "left_mean",
        "right_mean",
        "diff",
        "diff_ci_low",
        "diff_ci_high",
        "symmetry_index_pct",
    }
    assert summ["per_side"]["cpd_deg"]["left"]["n"] == cpd["n_left"]
    # against the simulator's truth (full-gait steps): the per-side CPD
    truth = recordings["asym"].truth
    for side, key in (("L", "left_mean"), ("R", "right_mean")):
        ref = np.mean([s.cpd_deg for s in truth.steps if s.side == side and s.ramp == 1])
        assert cpd[key] == pytest.approx(ref, abs=0.5)
    assert cpd["diff_ci_low"] > 2.0
    (alert,) = [a for a in doc["alerts"] if a["metric"] == "cpd_deg"]
    assert alert["side"] == "L" and "LEFT hip abductors" in alert["message"]
    q = doc["quality"]
    assert q["calibration_state"] == "calibrated" and q["n_samples"] == len(recordings["asym"].batch)
    assert 0 <= q["share_steps_flagged"] < 0.3 and q["n_steps"] == len(doc["steps"])
    assert summ["contact_time_balance"]["value_pct"] == pytest.approx(50.0, abs=0.7)


def test_csv_output_is_the_per_step_table(
    recordings: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_csv = tmp_path / "steps.csv"
    code, out, err = run_cli(capsys, str(recordings["dir"] / "sym.csv"), "--json", "--csv", str(out_csv))
    assert code == 0, err
    steps = no_nan(out)["steps"]
    with out_csv.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == Step.field_names()
    assert len(rows) - 1 == len(steps)
    for row, js in zip(rows[1:], steps, strict=True):
        for name, cell in zip(rows[0], row, strict=True):
            v = js[name]
            if name == "side":
                assert cell == v
            elif name == "gap":
                assert cell == ("true" if v else "false")
            elif v is None:
                assert cell == ""
            else:
                assert float(cell) == v


def test_terminal_report_has_every_section(recordings: dict, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, str(recordings["dir"] / "asym.csv"))
    assert code == 0, err
    for text in ("asym.csv", "pelvic drop", "Ground contact balance", "Alerts", "LEFT hip abductors",
                 "Data quality", "calibration: done at "):  # fmt: skip
        assert text in out, text
    # written to a pipe, not wrapped at 80 columns: each table row holds both sides, the interval and SI
    rows = [ln for ln in out.splitlines() if ln.startswith("│ ")]
    assert len(rows) >= 9 and all(ln.count("±") == 2 and ln.rstrip().endswith("% │") for ln in rows)
    assert re.search(r"[+-]0(\.0+)?(?![.0-9])", out) is None  # no signed zero ("-0.0", "+0 ms")


def test_redirected_text_keeps_each_sentence_on_its_line(recordings: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """Into a file the report's prose was cut at 120 columns mid-sentence ("(the \\norientation filter
    settles)"); its tables keep their width."""
    from pelvimon.analysis import NO_ANGLES_WHY, SIDES_LEGEND

    code, out, _ = run_cli(capsys, str(recordings["dir"] / "sym.csv"))
    lines = out.splitlines()
    assert code == 0 and SIDES_LEGEND in lines
    assert any(ln.endswith(f"({NO_ANGLES_WHY})") for ln in lines)
    table = [ln for ln in lines if ln.startswith("│")]
    assert table and max(len(ln) for ln in table) <= 120


def test_symmetric_runner_has_no_cpd_alert(recordings: dict, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, str(recordings["dir"] / "sym.csv"), "--json")
    doc = no_nan(out)
    assert code == 0 and doc["alerts"] == []
    a = doc["summary"]["asymmetry"]["cpd_deg"]
    assert a["diff_ci_low"] < 1.0 and a["diff_ci_high"] > -1.0


def test_baseline_save_and_compare(
    recordings: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "runner.json"
    code, _, err = run_cli(
        capsys, str(recordings["dir"] / "asym.csv"), "--save-baseline", str(base), "--runner", "A. Runner"
    )
    assert code == 0 and base.exists(), err
    assert json.loads(base.read_text())["meta"]["runner"] == "A. Runner"
    # a runner name with nothing to store it in is a usage error, not silently dropped
    code, _, err = run_cli(capsys, str(recordings["dir"] / "asym.csv"), "--runner", "A. Runner")
    assert code == 2 and "add --save-baseline" in err
    # the same session against its own baseline: no credible change
    _, out, _ = run_cli(capsys, str(recordings["dir"] / "asym.csv"), "--json", "--baseline", str(base))
    same = no_nan(out)["summary"]["baseline"]["metrics"]["cpd_deg"]
    assert same["diff"]["change"] == pytest.approx(0.0, abs=1e-12) and not same["diff"]["credible"]
    # a symmetric session against the 8-vs-4 baseline: L-R fell by about 4 deg, credibly
    _, out, _ = run_cli(capsys, str(recordings["dir"] / "sym.csv"), "--json", "--baseline", str(base))
    b = no_nan(out)["summary"]["baseline"]
    assert b["meta"]["source"] == "asym.csv"
    d = b["metrics"]["cpd_deg"]["diff"]
    assert d["change"] == pytest.approx(-4.0, abs=0.7) and d["credible"] and d["ci_high"] < -3.0
    assert (
        b["metrics"]["cpd_deg"]["left"]["change"] < -1.0 and b["metrics"]["cpd_deg"]["right"]["change"] > 1.0
    )


def test_csv_import_options(recordings: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    batch = recordings["sym"].batch
    p = tmp_path / "vendor.csv"
    data = np.column_stack([batch.t_s, batch.acc_mps2 / G_MPS2, np.degrees(batch.gyr_rads)])
    np.savetxt(p, data, delimiter=",", header="time,ax,ay,az,gx,gy,gz", comments="", fmt="%.17g")
    cols = "t_s=time,acc_x_mps2=ax,acc_y_mps2=ay,acc_z_mps2=az,gyr_x_rads=gx,gyr_y_rads=gy,gyr_z_rads=gz"
    code, out, err = run_cli(
        capsys, str(p), "--json", "--columns", cols, "--acc-unit", "g", "--gyr-unit", "dps"
    )
    assert code == 0, err
    got = no_nan(out)["summary"]["asymmetry"]["cpd_deg"]
    _, ref_out, _ = run_cli(capsys, str(recordings["dir"] / "sym.csv"), "--json")
    ref = no_nan(ref_out)["summary"]["asymmetry"]["cpd_deg"]
    assert got["left_mean"] == pytest.approx(ref["left_mean"], abs=1e-6)
    assert got["n_left"] == ref["n_left"]


def test_a_gzip_compressed_csv_gives_the_analysis_of_the_csv(
    recordings: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import gzip

    plain = recordings["dir"] / "asym.csv"
    packed = tmp_path / "asym.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    code, out, err = run_cli(capsys, str(packed), "--json")
    assert code == 0, err
    _, ref, _ = run_cli(capsys, str(plain), "--json")
    got, want = no_nan(out), no_nan(ref)
    assert got["steps"] == want["steps"] and len(got["steps"]) > 100
    assert got["summary"].pop("input") == "asym.csv.gz" and want["summary"].pop("input") == "asym.csv"
    assert got["summary"] == want["summary"] and got["alerts"] == want["alerts"]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["missing.csv"], 1, "no such file"),
        (["bad.csv"], 1, "line 3"),
        (["good.csv", "--columns", "t_s"], 2, "--columns"),
        (["good.csv", "--config", "bad.toml"], 1, "asymmetry.window_steps"),
        (["good.csv", "--baseline", "nope.json"], 1, "baseline file not found"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list, code: int,
    needle: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.csv").write_text(
        "t_s,acc_x_mps2,acc_y_mps2,acc_z_mps2,gyr_x_rads,gyr_y_rads,gyr_z_rads\n0,0,0,9.8,0,0,0\n0.005,0,x,9.8,0,0,0\n"
    )
    (tmp_path / "good.csv").write_text("t_s,acc_x_mps2,acc_y_mps2,acc_z_mps2\n0,0,0,9.8\n0.005,0,0,9.8\n")
    (tmp_path / "bad.toml").write_text("[asymmetry]\nwindow_steps = 0\n")
    got, out, err = run_cli(capsys, *args)
    assert got == code
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_gaps_are_counted_and_windows_restart(recordings: dict) -> None:
    """A recording split by a loss of 1 s: the quality section counts it, no step spans it."""
    b = recordings["sym"].batch
    n = len(b)
    cut, lost = n // 2, 200
    part2 = b.slice(cut + lost, n)
    part2 = ImuBatch(t_s=part2.t_s, acc_mps2=part2.acc_mps2, gyr_rads=part2.gyr_rads, gap_before=True,
                     n_lost=lost, time_base=b.time_base)  # fmt: skip
    a = analyze_batches([b.slice(0, cut), part2], name="gappy")
    q = a.quality
    assert q.n_batches_after_gap == 1 and q.n_samples_lost == lost and q.n_gap_events == 1
    t_gap0, t_gap1 = b.t_s[cut - 1], b.t_s[cut + lost]
    used = [s for s in a.steps if not s.gap]
    assert not any(s.t_ic_s < t_gap0 < s.t_ic_s + s.step_time_s for s in used)
    # the rolling asymmetry right after the gap holds only steps after it
    after = [(t, cur) for t, cur in a.rolling if t > t_gap1 and cur]
    assert after and all(x.t_start_s > t_gap0 for _, cur in after for x in cur)


def test_analyze_steps_without_samples() -> None:
    """The analysis core works from steps alone (GUI review of recorded steps)."""
    rng = np.random.default_rng(1)
    steps = []
    for i in range(120):
        side = "L" if i % 2 == 0 else "R"
        steps.append(Step(side, 0.35 * i, 0.35 * i + 0.25, 0.35, 0.25, 0.1, 171.4,
                          (9.0 if side == "L" else 5.0) + rng.normal(0, 0.5), 8.0, 5.0, 12.0, 7.0, 2.0))  # fmt: skip
    a = analyze_steps(steps, load_config(), name="steps only")
    assert a.quality.n_steps == 120 and a.quality.calibration_state == "unknown"
    assert [x.side for x in a.alerts if x.metric == "cpd_deg"] == ["L"]
    assert math.isfinite(a.to_json()["summary"]["asymmetry"]["cpd_deg"]["diff"])


def test_cadence_is_steps_per_minute_of_the_steps_used() -> None:
    """Cadence is 60 s over the mean step time (steps per minute), not the mean of per-step cadences,
    which reads high when step times vary: steps of 0.3 s and 0.4 s alternate, 171.4 steps/min (the mean
    of 200 and 150 would be 175)."""
    steps, t = [], 0.0
    for i in range(120):
        st = 0.3 if i % 2 == 0 else 0.4
        steps.append(Step("L" if i % 2 == 0 else "R", t, t + 0.2, st, 0.2, st - 0.2, 60.0 / st,
                          6.0, 8.0, 5.0, 12.0, 7.0, 2.0))  # fmt: skip
        t += st
    a = analyze_steps(steps, load_config(), name="steps only")
    assert a.to_json()["summary"]["cadence_spm"] == pytest.approx(60.0 / 0.35, rel=1e-9)


def test_load_batches_rejects_directories_and_reads_csv(recordings: dict) -> None:
    from pelvimon.errors import PelvimonError

    with pytest.raises(PelvimonError, match="directory"):
        load_batches(recordings["dir"])
    (b,) = load_batches(recordings["dir"] / "sym.csv", CsvOptions())
    assert len(b) == len(recordings["sym"].batch)


def test_session_file_input(recordings: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A session file's decoded batches are analysed like the samples themselves, gaps included."""
    from pelvimon.sensors.session_file import SessionWriter
    from pelvimon.sensors.source import SourceInfo

    b = recordings["asym"].batch
    n = len(b)
    chunks = [b.slice(i, min(i + 2000, n)) for i in range(0, n, 2000)]
    k = len(chunks) // 2
    after = chunks[k]
    chunks[k] = ImuBatch(t_s=after.t_s[100:], acc_mps2=after.acc_mps2[100:], gyr_rads=after.gyr_rads[100:],
                         gap_before=True, n_lost=100, time_base=after.time_base)  # fmt: skip
    path = tmp_path / "s.mcap"
    with SessionWriter(path, SourceInfo(name="sim", protocol="pelvimon", rate_hz=200.0)) as w:
        for c in chunks:
            w.write_batch(c)
    code, out, err = run_cli(capsys, str(path), "--json")
    assert code == 0, err
    doc = no_nan(out)
    direct = analyze_batches(chunks, name="s.mcap", rate_hz=200.0).to_json()  # the file's nominal rate
    assert doc["quality"] == direct["quality"] and doc["quality"]["n_samples_lost"] == 100
    assert doc["quality"]["n_batches_after_gap"] == 1 and doc["quality"]["n_steps_gap"] >= 1
    assert doc["steps"] == direct["steps"]
    assert [a["side"] for a in doc["alerts"] if a["metric"] == "cpd_deg"][:1] == ["L"]


def test_every_input_goes_through_its_source_and_any_chunking_gives_the_same_analysis(recordings: dict) -> None:
    """``analyze`` reads a CSV through the CSV import ``Source`` (one input path for every command): fed by a
    source in notification-sized chunks, the analysis equals the file's, step for step and figure for figure."""
    from pelvimon.analysis import analyze_file, analyze_source, open_input, read_source
    from pelvimon.sensors.csv_source import CsvSource

    path = recordings["dir"] / "asym.csv"
    src = open_input(path)
    assert isinstance(src, CsvSource)
    whole = analyze_file(path).to_json()
    small = analyze_source(CsvSource(path, chunk=13)).to_json()
    assert small == whole and len(whole["steps"]) > 100
    samples = read_source(CsvSource(path, chunk=13))
    assert sum(len(b) for b in samples.batches) == len(recordings["asym"].batch)
    assert samples.rate_hz == samples.measured_hz == pytest.approx(200.0, rel=1e-3)  # jittered time stamps


def test_unit_check_samples_the_whole_stream_whatever_its_batches(recordings: dict) -> None:
    """The CSV unit check looks at every n-th sample of the stream: cut into batches anywhere, it picks the
    same samples, so it says the same."""
    from pelvimon.analysis import check_units
    from pelvimon.errors import PelvimonError

    one = recordings["asym"].batch
    n = 3 * len(one)  # over 40,000 samples: the check takes every 2nd or further apart
    b = ImuBatch(t_s=np.arange(n) / 200.0, acc_mps2=np.tile(one.acc_mps2, (3, 1)), gyr_rads=np.tile(one.gyr_rads, (3, 1)))
    step = n // 20000
    assert step >= 2
    as_g = ImuBatch(t_s=b.t_s, acc_mps2=b.acc_mps2 / G_MPS2, gyr_rads=b.gyr_rads, time_base=b.time_base)
    with pytest.raises(PelvimonError) as whole:
        check_units([as_g], "mps2", "rads", "x.csv")
    assert "look like g: add --acc-unit g" in str(whole.value)
    cuts = [0, 7, 4001, 4002, 9999, len(b)]
    parts = [as_g.slice(i, j) for i, j in zip(cuts[:-1], cuts[1:], strict=True)]
    with pytest.raises(PelvimonError) as cut:
        check_units(parts, "mps2", "rads", "x.csv")
    assert str(cut.value) == str(whole.value)  # the same median to the printed digits
    # gyroscope nonsense at some of the sampled positions only (cuts at odd positions must not shift them)
    gyr = b.gyr_rads.copy()
    gyr[:: step * 50] = 100.0
    spiky = ImuBatch(t_s=b.t_s, acc_mps2=b.acc_mps2, gyr_rads=gyr, time_base=b.time_base)
    for batches in ([spiky], [spiky.slice(i, j) for i, j in zip(cuts[:-1], cuts[1:], strict=True)]):
        with pytest.raises(PelvimonError, match="deg/s"):
            check_units(batches, "mps2", "rads", "x.csv")
    check_units([b], "mps2", "rads", "x.csv")  # the right units pass


def test_session_file_without_samples_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pelvimon.sensors.session_file import SessionWriter
    from pelvimon.sensors.source import SourceInfo

    path = tmp_path / "empty.mcap"
    with SessionWriter(path, SourceInfo(name="sim", protocol="pelvimon", rate_hz=200.0)):
        pass
    code, _, err = run_cli(capsys, str(path))
    assert code == 1 and "no decoded samples" in err and err.count("\n") == 1
    (tmp_path / "junk.mcap").write_bytes(b"not an mcap file at all")
    code, _, err = run_cli(capsys, str(tmp_path / "junk.mcap"))
    assert code == 1 and "junk.mcap" in err and err.count("\n") == 1


def test_lost_notifications_keep_the_asymmetry_and_the_alert(recordings: dict) -> None:
    """2 % of 8-sample notifications lost: the short losses are bridged, the CPD asymmetry and its alert
    come out as without loss, the quality section counts them."""
    b = recordings["asym"].batch
    parts = lossy_batches(b, 0.02, seed=5)
    lossy = analyze_batches(parts, name="lossy", rate_hz=200.0)
    clean = analyze_batches([b], name="clean", rate_hz=200.0)
    q = lossy.quality
    n_gaps = sum(p.gap_before for p in parts)
    assert n_gaps >= 20 and q.n_gaps_bridged == n_gaps and q.n_gap_events == 0
    assert 0 < q.n_steps_gap <= 2 * n_gaps
    cpd, ref = lossy.asymmetry["cpd_deg"], clean.asymmetry["cpd_deg"]
    assert cpd.n_left >= 0.7 * ref.n_left and cpd.diff == pytest.approx(ref.diff, abs=0.3)
    assert cpd.diff_ci_low > 2.0
    (alert,) = [a for a in lossy.alerts if a.metric == "cpd_deg"]
    (alert_ref,) = [a for a in clean.alerts if a.metric == "cpd_deg"]
    assert alert.side == "L" and alert.t_start_s <= alert_ref.t_start_s + 10.0


def test_csv_with_dropped_rows_is_analysed_across_them(recordings: dict, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A CSV missing runs of rows (its time column jumps): the gaps are found from the time column, the
    short ones bridged, and the left CPD alert comes out as from the whole file."""
    b = recordings["asym"].batch
    keep = np.ones(len(b), dtype=bool)
    rng = np.random.default_rng(8)
    for a in range(2000, len(b), 200):  # a run of 2-12 rows lost about every second
        keep[a + int(rng.integers(0, 100)) :][: int(rng.integers(2, 13))] = False
    holey = ImuBatch(t_s=b.t_s[keep], acc_mps2=b.acc_mps2[keep], gyr_rads=b.gyr_rads[keep], time_base="session")
    path = tmp_path / "holey.csv"
    write_imu_csv(path, holey)
    code, out, err = run_cli(capsys, str(path), "--json")
    assert code == 0, err
    doc = no_nan(out)
    q = doc["quality"]
    assert q["n_gaps_bridged"] == q["n_batches_after_gap"] >= 60 and q["n_gap_events"] == 0
    assert q["n_samples_lost"] == int((~keep).sum())
    (alert,) = [a for a in doc["alerts"] if a["metric"] == "cpd_deg"]
    assert alert["side"] == "L"


def test_a_recording_that_loses_samples_often_says_what_it_costs(recordings: dict, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A real walk losing samples every 0.2 s kept 16 of 39 steps' figures, and said only "21 at gaps"."""
    b = recordings["asym"].batch
    keep = np.ones(len(b), dtype=bool)
    keep[2000::60] = False  # one sample lost every 0.3 s
    lossy = tmp_path / "lossy.csv"
    write_imu_csv(lossy, ImuBatch(t_s=b.t_s[keep], acc_mps2=b.acc_mps2[keep], gyr_rads=b.gyr_rads[keep],
                                  time_base="session"))
    code, out, err = run_cli(capsys, str(lossy))
    assert code == 0, err
    note = next(ln for ln in out.splitlines() if ln.startswith("  note: the recording lost samples"))
    assert "every 0.3 s on average" in note and "such a step has no metrics" in note
    assert main(["report", str(lossy), "-o", str(tmp_path / "r.html")]) == 0
    assert "Note: the recording lost samples" in (tmp_path / "r.html").read_text()
    code, out, _ = run_cli(capsys, str(recordings["dir"] / "asym.csv"))
    assert code == 0 and "note: the recording lost samples" not in out


@pytest.fixture(scope="module")
def walk_run_walk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A treadmill session: a warm-up walk, a run with a left-side drop, a cool-down walk, standing between."""
    from pelvimon.sensors.simulator import simulate_session

    mount = (10.0, -20.0, 60.0)
    sim = simulate_session([
        SimParams(seconds=45, gait="walk", end_stand_s=3, mount_euler_deg=mount, seed=41),
        SimParams(seconds=60, gait="run", stand_s=3, end_stand_s=3, cpd_left_deg=9, cpd_right_deg=4,
                  mount_euler_deg=mount, seed=42),
        SimParams(seconds=40, gait="walk", stand_s=3, mount_euler_deg=mount, seed=43),
    ])
    path = tmp_path_factory.mktemp("bouts") / "walk_run_walk.csv"
    write_imu_csv(path, sim.batch)
    return path


def test_walking_and_running_are_compared_apart(walk_run_walk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The summary is the run's (the session's gait: more steps), the walks get their own comparison, and
    the gait phases are listed; mixing them would put walking contact times (about 0.65 s) and running ones
    (about 0.25 s) into one mean."""
    code, out, err = run_cli(capsys, str(walk_run_walk), "--json")
    assert code == 0, err
    summ = no_nan(out)["summary"]
    assert summ["gait"] == "running"
    assert [(p["gait"], p["n_steps"] > 20) for p in summ["gait_phases"]] == [
        ("walking", True), ("running", True), ("walking", True)]
    run_phase = summ["gait_phases"][1]
    assert 45.0 < run_phase["t_start_s"] < 55.0 and 95.0 < run_phase["t_end_s"] < 105.0
    ct = summ["per_side"]["contact_time_s"]
    assert 0.2 < ct["left"]["mean"] < 0.3 and 0.2 < ct["right"]["mean"] < 0.3
    assert ct["left"]["n"] + ct["right"]["n"] == summ["n_steps_used"]
    assert summ["asymmetry"]["cpd_deg"]["diff_ci_low"] > 3.0  # the run's 9 vs 4 deg
    assert 160 < summ["cadence_spm"] < 180
    walk = summ["other_gaits"]["walking"]
    assert 0.55 < walk["per_side"]["contact_time_s"]["left"]["mean"] < 0.8 and 100 < walk["cadence_spm"] < 120
    assert abs(walk["asymmetry"]["cpd_deg"]["diff"]) < 1.0  # the walks are symmetric (6 vs 6 deg)
    code, text, _ = run_cli(capsys, str(walk_run_walk))
    assert "Left / right: running steps" in text and "Left / right: walking steps" in text
    assert text.count("│ flight time") == 1  # no row for walking: its flight time is 0 by definition
    assert "gait: walking" in text and "running" in text.split("gait: ")[1].splitlines()[0]


def test_a_baseline_of_another_gait_is_noted(walk_run_walk: Path, recordings: dict, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from pelvimon.sensors.simulator import simulate

    walk = tmp_path / "walk.csv"
    write_imu_csv(walk, simulate(SimParams(seconds=40, gait="walk", seed=44)).batch)
    base = tmp_path / "walk_base.json"
    assert run_cli(capsys, str(walk), "--save-baseline", str(base))[0] == 0
    assert json.loads(base.read_text())["meta"]["gait"] == "walking"
    # a run alone has no walking steps to compare with: the note says so and no change is shown (a walking
    # baseline against running steps would show the gaits' contact times as a 0.4 s change)
    _, out, _ = run_cli(capsys, str(recordings["dir"] / "sym.csv"), "--baseline", str(base))
    section = out.split("Change from baseline")[1].split("Data quality")[0]
    assert "Note: the baseline is of walking steps and this session has none: not compared" in section
    assert "contact time" not in section and "pelvic drop" not in section
    _, out, _ = run_cli(capsys, str(recordings["dir"] / "sym.csv"), "--json", "--baseline", str(base))
    assert no_nan(out)["summary"]["baseline"]["metrics"] == {}
    # a session holding both gaits compares the walking baseline with its walks (about as long as the
    # baseline's), without the flight time walking does not have
    _, out, _ = run_cli(capsys, str(walk_run_walk), "--json", "--baseline", str(base))
    b = no_nan(out)["summary"]["baseline"]
    assert "compared with this session's walking steps, not with its main gait (running)" in b["note"]
    assert "flight_time_s" not in b["metrics"] and "cpd_deg" in b["metrics"]
    ct = b["metrics"]["contact_time_s"]
    assert abs(ct["left"]["change"]) < 0.1 and abs(ct["right"]["change"]) < 0.1


@pytest.mark.parametrize("seed", [1, 2])
def test_walking_straight_into_running_raises_no_alert(seed: int) -> None:
    """A symmetric walker speeds up into a run without stopping: the rolling windows never hold walking and
    running steps together (contact times 0.69 and 0.26 s); they restart with the run's first six steps, so
    no alert comes of a mix; the summary is the run's."""
    import dataclasses

    from pelvimon.dsp.pipeline import analyze_offline

    walk = analyze_offline(simulate(SimParams(seconds=50, gait="walk", seed=seed)).batch, rate_hz=200.0).steps
    walk = [s for s in walk if s.t_ic_s > 8.0]
    first = "R" if walk[-1].side == "L" else "L"
    run = analyze_offline(simulate(SimParams(seconds=60, gait="run", first_side=first, seed=seed + 10)).batch,
                          rate_hz=200.0).steps
    run = [s for s in run if s.t_ic_s > 8.0]
    run = run[1:] if run[0].side == walk[-1].side else run
    off = walk[-1].t_ic_s + walk[-1].step_time_s - run[0].t_ic_s
    run = [dataclasses.replace(s, t_ic_s=s.t_ic_s + off, t_fc_s=s.t_fc_s + off) for s in run]
    a = analyze_steps(walk + run)
    t_switch = run[0].t_ic_s
    windows = [x for _, cur in a.rolling for x in cur]
    assert windows and not any(x.t_start_s < t_switch < x.t_end_s for x in windows)
    assert any(x.t_start_s == t_switch for x in windows)  # the first windows of the run start with it
    assert not [x for x in a.alerts if t_switch - 5.0 < x.t_start_s < t_switch + 15.0]
    assert [ph.gait for ph in a.phases] == ["walking", "running"] and a.gait == "running"
    assert a.side_stats["contact_time_s"][0].mean < 0.3 and a.other_gaits["walking"].side_stats["contact_time_s"][0].mean > 0.6


@pytest.mark.parametrize(("dt", "shown"), [(0.1, "rate of 10 Hz"), (5.0, "rate of 0.2 Hz"), (1e-7, "rate of 1e+07 Hz")])
def test_a_time_column_not_in_seconds_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], dt: float,
                                                  shown: str) -> None:
    """Times in ms, or in s with a wrong rate: one line, not a buffer sized for 10 MHz (MemoryError)."""
    p = tmp_path / "t.csv"
    p.write_text("t_s,acc_x_mps2,acc_y_mps2,acc_z_mps2\n" + "".join(f"{i * dt!r},0.1,0.2,9.8\n" for i in range(3000)))
    code, out, err = run_cli(capsys, str(p))
    assert code == 1 and err.count("\n") == 1 and shown in err and "check that the time column is in seconds" in err
    assert ("add --time-unit ms" in err) == (dt == 5.0)  # (in ms, 5.0 is 200 Hz: the option is named)


def test_a_time_column_in_ms_is_read_with_time_unit(recordings: dict, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Unix times in ms (a phone app's export): the hint names --time-unit ms, which then gives the steps of
    the same samples in seconds."""
    batch = recordings["sym"].batch
    p = tmp_path / "ms.csv"
    data = np.column_stack([1.7e12 + batch.t_s * 1e3, batch.acc_mps2, batch.gyr_rads])
    np.savetxt(p, data, delimiter=",", header=",".join(csv_source.DEFAULT_COLUMNS), comments="", fmt="%.17g")
    code, _, err = run_cli(capsys, str(p), "--json")
    assert code == 1 and "(in ms, it reads 200 Hz: add --time-unit ms)" in err
    code, out, err = run_cli(capsys, str(p), "--json", "--time-unit", "ms")
    assert code == 0, err
    _, ref_out, _ = run_cli(capsys, str(recordings["dir"] / "sym.csv"), "--json")
    got, ref = no_nan(out), no_nan(ref_out)
    assert len(got["steps"]) == len(ref["steps"]) > 50
    t_ref = np.array([s["t_ic_s"] for s in ref["steps"]]) - batch.t_s[0]
    assert np.abs(np.array([s["t_ic_s"] for s in got["steps"]]) - t_ref).max() < 1e-6
    assert got["summary"]["asymmetry"]["cpd_deg"]["left_mean"] == pytest.approx(
        ref["summary"]["asymmetry"]["cpd_deg"]["left_mean"], abs=1e-6)


@pytest.mark.parametrize(("unit", "hint"), [("us", "(in s, it reads 200 Hz: leave out --time-unit us)"),
                                           ("ns", "(in ms, it reads 200 Hz: add --time-unit ms)")])
def test_a_wrong_time_unit_option_is_named(recordings: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            unit: str, hint: str) -> None:
    """--time-unit us on times in s (or ns on ms) read 200 Hz as 2e8 Hz, with the advice to check that the
    column is in seconds."""
    batch = recordings["sym"].batch
    p = tmp_path / "t.csv"
    scale = 1.0 if unit == "us" else 1e3
    data = np.column_stack([batch.t_s * scale, batch.acc_mps2, batch.gyr_rads])
    np.savetxt(p, data, delimiter=",", header=",".join(csv_source.DEFAULT_COLUMNS), comments="", fmt="%.17g")
    code, _, err = run_cli(capsys, str(p), "--time-unit", unit)
    assert code == 1 and err.count("\n") == 1 and "rate of 2e+08 Hz" in err
    assert f"check that the time column is in {unit} (--time-unit {unit}) {hint}" in err


@pytest.mark.parametrize("rate", [400.0, 208.0, 104.0])
def test_time_stamps_rounded_to_milliseconds_give_the_true_rate_and_angles(tmp_path: Path, rate: float) -> None:
    """Whole-millisecond stamps (a logger's millis(), a spreadsheet's export): at 400 Hz the intervals are 2
    and 3 ms, whose median (3 ms) read the rate as 333 Hz and made every angle a fifth too large."""
    import pandas as pd

    from pelvimon.analysis import analyze_file

    exact = tmp_path / "exact.csv"
    write_imu_csv(exact, simulate(SimParams(seconds=40, rate_hz=rate, cpd_left_deg=8.0, cpd_right_deg=5.0,
                                            seed=1)).batch)  # fmt: skip
    d = pd.read_csv(exact)
    d["t_s"] = d["t_s"].round(3)
    rounded = tmp_path / "rounded.csv"
    d.to_csv(rounded, index=False)
    a, b = analyze_file(exact), analyze_file(rounded)
    assert b.quality.rate_hz == pytest.approx(rate, rel=1e-3)
    assert b.quality.n_gap_events == 0 and b.quality.n_samples_lost == 0
    for m in ("cpd_deg", "rotation_range_deg"):
        for side in (0, 1):
            assert b.side_stats[m][side].mean == pytest.approx(a.side_stats[m][side].mean, abs=0.1)


def test_a_rate_of_exactly_20_hz_is_taken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The time stamps of 20 Hz give 19.99999999 Hz: the lowest rate is taken with a hair of slack."""
    p = tmp_path / "r20.csv"
    write_imu_csv(p, simulate(SimParams(seconds=40, rate_hz=20.0, seed=2, errors=False, variability=False)).batch)
    code, out, err = run_cli(capsys, str(p))
    assert code == 0 and "at 20.0 Hz" in out, err


@pytest.mark.parametrize(("rate", "seed"), [(20.0, 0), (2000.0, 3)])
def test_the_edge_rates_are_taken_with_jittered_time_stamps(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            rate: float, seed: int) -> None:
    """20 s of the simulator's 0.1 ms timing jitter read 2000 Hz as 2000.025 Hz and 20 Hz as 19.99997 Hz, and
    both were refused as outside 20-2000 Hz."""
    p = tmp_path / "edge.csv"
    write_imu_csv(p, simulate(SimParams(seconds=20, rate_hz=rate, seed=seed)).batch)
    code, out, err = run_cli(capsys, str(p))
    assert code == 0 and f"at {rate:.1f} Hz" in out, err


def test_a_report_a_json_or_a_csv_named_mcap_is_named_for_what_it_is(recordings: dict, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """An HTML report given as input read "the fields are separated by semicolons", a JSON document "no
    column 't_s' (found: '{')"; a CSV of samples named .mcap "not an MCAP file"."""
    src = str(recordings["dir"] / "sym.csv")
    assert main(["report", src, "-o", str(tmp_path / "r.html")]) == 0
    assert main(["analyze", src, "--save-baseline", str(tmp_path / "b.json")]) == 0
    assert main(["simulate", "--seconds", "3", "-o", str(tmp_path / "s.csv"), "--truth", str(tmp_path / "t.json")]) == 0
    capsys.readouterr()
    (tmp_path / "a.json").write_text(json.dumps({"steps": []}))
    for name, words in (("r.html", "is an HTML page (a report?), not a recording"),
                        ("b.json", "is a runner's baseline, not a recording; compare a recording against it with --baseline"),
                        ("t.json", "is the truth of a simulated session, not a recording"),
                        ("a.json", "is JSON, not a recording")):
        code, _, err = run_cli(capsys, str(tmp_path / name))
        assert code == 1 and err.count("\n") == 1 and words in err, err
    (tmp_path / "samples.mcap").write_bytes(Path(src).read_bytes())
    code, out, err = run_cli(capsys, str(tmp_path / "samples.mcap"), "--json")
    _, ref, _ = run_cli(capsys, src, "--json")
    assert code == 0 and json.loads(out)["steps"] == json.loads(ref)["steps"], err


def _rescaled(src: Path, dst: Path, acc: float, gyr: float) -> Path:
    import pandas as pd

    d = pd.read_csv(src)
    d[["acc_x_mps2", "acc_y_mps2", "acc_z_mps2"]] *= acc
    d[["gyr_x_rads", "gyr_y_rads", "gyr_z_rads"]] *= gyr
    d.to_csv(dst, index=False)
    return dst


def test_units_that_cannot_be_right_are_named(recordings: dict, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Samples whose size says the unit options are wrong: one line naming the option to change, not a
    session of 0 steps (g read as m/s²) or a pelvic drop of 0.1° (rad/s read as deg/s)."""
    src = recordings["dir"] / "asym.csv"
    in_g = _rescaled(src, tmp_path / "g.csv", 1 / G_MPS2, 180 / math.pi)
    cases = [
        ((str(src), "--gyr-unit", "dps"), "leave out --gyr-unit dps"),
        ((str(src), "--acc-unit", "g"), "leave out --acc-unit g"),
        ((str(in_g),), "add --acc-unit g"),
        ((str(in_g), "--acc-unit", "g"), "add --gyr-unit dps"),
    ]
    for argv, fix in cases:
        code, out, err = run_cli(capsys, *argv)
        assert code == 1 and err.count("\n") == 1 and fix in err, (argv, err)
    code, out, err = run_cli(capsys, str(in_g), "--acc-unit", "g", "--gyr-unit", "dps", "--json")
    assert code == 0 and json.loads(out)["summary"]["n_steps_used"] > 100


def test_a_session_file_under_another_name_is_read_as_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = Path(__file__).resolve().parents[2] / "recordings" / "emulated" / "polar_pmd_symmetric.mcap"
    other = tmp_path / "session.csv"
    other.write_bytes(rec.read_bytes())
    code, out, err = run_cli(capsys, str(other), "--json")
    assert code == 0, err
    code2, out2, _ = run_cli(capsys, str(rec), "--json")
    assert json.loads(out)["steps"] == json.loads(out2)["steps"]


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path: Path) -> None:
    """``pelvimon analyze X --json | head -c 100``: the pipe closes long before the output ends; the
    command ends without an error line, with 141 (128 + SIGPIPE) as a process killed by it would."""
    import subprocess
    import sys

    path = tmp_path / "run.csv"
    write_imu_csv(path, simulate(SimParams(seconds=300, gait="run", seed=2)).batch)
    proc = subprocess.Popen([sys.executable, "-m", "pelvimon", "analyze", str(path), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(100).startswith(b'{"steps": [')
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == ""


def test_gaps_do_not_split_the_gait_phases() -> None:
    """A run with lost notifications and a link drop: the steps at the gaps restart the bouts, but the
    runner never stopped; the session is one running phase that counts them apart."""
    from pelvimon.analysis import analyze_file

    path = Path(__file__).parents[2] / "recordings" / "emulated" / "movesense_loss_disconnect.mcap"
    a = analyze_file(path)
    n_gap = sum(s.gap for s in a.steps)
    assert n_gap > 20
    (phase,) = a.phases
    assert phase.gait == "running" and phase.n_steps_gap == n_gap
    assert phase.n_steps + phase.n_steps_gap == len(a.steps) - sum(1 for s in a.steps if s.t_ic_s < phase.t_start_s)
    assert f"({phase.n_steps} steps, {n_gap} more at gaps)" in phase.label()


def test_a_stop_after_a_gap_is_not_joined_into_the_phase() -> None:
    """A run, a link loss on its last step, two minutes of standing, a run: two running phases."""
    from dataclasses import replace

    from pelvimon.analysis import analyze_file

    path = Path(__file__).parents[2] / "recordings" / "emulated" / "movesense_weak_left_glute.mcap"
    steps = analyze_file(path).steps
    nan = float("nan")
    gap = replace(steps[-1], gap=True, step_time_s=nan, contact_time_s=nan, cpd_deg=nan)
    later = [replace(s, t_ic_s=s.t_ic_s + 180.0, t_fc_s=s.t_fc_s + 180.0) for s in steps]
    a = analyze_steps([*steps[:-1], gap, *later])
    assert [ph.gait for ph in a.phases] == ["running", "running"]
    assert a.phases[1].t_start_s - a.phases[0].t_end_s > 100.0


def test_analysis_runs_inside_a_running_event_loop(recordings: dict) -> None:
    """A notebook runs an event loop: reading the input's source there still works (in a worker thread)."""
    import asyncio

    from pelvimon.analysis import analyze_file

    path = recordings["dir"] / "sym.csv"

    async def inside() -> dict:
        return analyze_file(path).to_json()

    assert asyncio.run(inside()) == analyze_file(path).to_json()


def test_an_empty_batch_after_a_gap_still_counts_the_gap(recordings: dict) -> None:
    """A decoder may deliver a gap as an empty batch: the analysis keeps it, so the loss is counted."""
    b = recordings["sym"].batch
    h = len(b) // 2
    empty = ImuBatch(t_s=np.zeros(0), acc_mps2=np.zeros((0, 3)), gyr_rads=np.zeros((0, 3)), gap_before=True,
                     n_lost=40, time_base=b.time_base)  # fmt: skip
    q = analyze_batches([empty, b.slice(0, h), empty, b.slice(h, len(b)), empty], name="x", rate_hz=200.0).quality
    assert (q.n_batches_after_gap, q.n_samples_lost, q.n_samples) == (3, 120, len(b))


def test_steps_at_gaps_outside_the_gait_phases_are_counted() -> None:
    """Steps at gaps before the first phase or after the last (a loss as the run starts, a standing subject
    whose link drops) belong to no phase: the phases' line says how many, so that its counts add up."""
    import dataclasses

    steps = analyze_batches([simulate(SimParams(seconds=40, seed=12)).batch]).steps
    n = len(steps)
    edges = {0, n - 3, n - 2, n - 1}
    steps = [dataclasses.replace(s, gap=True) if i in edges else s for i, s in enumerate(steps)]
    a = analyze_steps(steps)
    assert len(a.phases) == 1
    ph = a.phases[0]
    assert ph.n_steps + ph.n_steps_gap == n - 4
    assert a.phases_text().endswith(f"({ph.n_steps} steps); 4 more steps at gaps outside it")
    whole = analyze_steps([dataclasses.replace(s, gap=False) for s in steps])
    assert "outside" not in whole.phases_text()


def test_the_no_angles_reason_names_the_orientation_settling_time() -> None:
    from pelvimon.analysis import NO_ANGLES_WHY
    from pelvimon.dsp.orientation import OrientationParams

    assert f"up to {OrientationParams().settle_s:.0f} s after a restart at a gap" in NO_ANGLES_WHY


def test_the_legend_explains_a_missing_comparison(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Four steps a side give means but no L−R: the n/a is explained, with the default it comes from."""
    from pelvimon.dsp.asymmetry import AsymmetryParams

    path = tmp_path / "short.csv"
    write_imu_csv(path, simulate(SimParams(seconds=14.5, stand_s=0.0, seed=8)).batch)
    code, out, _ = run_cli(capsys, str(path), "--json")
    summ = no_nan(out)["summary"]
    assert code == 0 and "cpd_deg" not in summ["asymmetry"] and 0 < summ["per_side"]["cpd_deg"]["left"]["n"] < 8
    code, out, _ = run_cli(capsys, str(path))
    flat = " ".join(out.split())
    assert code == 0 and "n/a" in flat
    assert f"min_steps_per_side in the config, {AsymmetryParams().min_steps_per_side} by default" in flat


def test_an_unfinished_calibration_is_explained(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Standing only: gravity is found, the forward direction never; the data quality says what that means
    rather than printing the calibration's internal state."""
    path = tmp_path / "stand.csv"
    write_imu_csv(path, simulate(SimParams(seconds=30, stand_s=30, seed=5)).batch)
    code, out, _ = run_cli(capsys, str(path), "--json")
    assert code == 0 and no_nan(out)["quality"]["calibration_state"] == "gravity_known"
    code, out, _ = run_cli(capsys, str(path))
    flat = " ".join(out.split())
    assert code == 0 and "calibration: not done: gravity was found, not yet the forward direction" in flat
    assert "gravity_known" not in flat


def test_an_input_without_gyroscope_says_why_the_angles_are_missing(capsys: pytest.CaptureFixture[str],
                                                                    tmp_path: Path) -> None:
    """Accelerometer only: the angle rows are n/a, and the output says it is for want of a gyroscope (the
    n/a legend alone reads as too few steps, and "no alerts" as no asymmetry); with a gyroscope, no note."""
    from pelvimon.report import render_report

    batch = simulate(SimParams(seconds=40, cpd_left_deg=8.0, cpd_right_deg=4.0, seed=6)).batch
    acc_only = tmp_path / "acc.csv"
    write_imu_csv(acc_only, ImuBatch(t_s=batch.t_s, acc_mps2=batch.acc_mps2))
    both = tmp_path / "both.csv"
    write_imu_csv(both, batch)
    code, out, _ = run_cli(capsys, str(acc_only), "--json")
    assert code == 0 and no_nan(out)["quality"]["has_gyroscope"] is False
    code, out, _ = run_cli(capsys, str(acc_only))
    flat = " ".join(out.split())
    assert code == 0 and "No gyroscope in the input: the pelvis angles (pelvic drop" in flat
    assert "steps without pelvis angles: " in flat and "(the input has no gyroscope)" in flat
    a = analyze_batches([ImuBatch(t_s=batch.t_s, acc_mps2=batch.acc_mps2)], name="acc.csv")
    assert "No gyroscope in the input" in render_report(a, title="acc")
    code, out, _ = run_cli(capsys, str(both))
    assert code == 0 and "No gyroscope" not in out and "(the input has no gyroscope)" not in out
    code, out, _ = run_cli(capsys, str(both), "--json")
    assert no_nan(out)["quality"]["has_gyroscope"] is True


def test_a_hole_in_a_session_file_without_gap_flag_is_a_gap(recordings: dict, tmp_path: Path) -> None:
    """Samples missing from a session file with no gap flag on the batch after them (a damaged disk page
    skipped, a recording paused): a gap, not one step of 12 s in the statistics."""
    from pelvimon.analysis import analyze_file
    from pelvimon.sensors.session_file import SessionWriter
    from pelvimon.sensors.source import SourceInfo

    b = recordings["asym"].batch
    chunks = [b.slice(i, min(i + 40, len(b))) for i in range(0, len(b), 40)]
    k = len(chunks) // 2
    path = tmp_path / "hole.mcap"
    with SessionWriter(path, SourceInfo(name="sim", protocol="pelvimon", rate_hz=200.0)) as w:
        for c in chunks[:k] + chunks[k + 60 :]:  # 60 notifications, 12 s, gone without a trace
            w.write_batch(c)
    a = analyze_file(path)
    assert a.quality.n_batches_after_gap == 1 and a.quality.n_samples_lost == 2400
    assert max(s.step_time_s for s in a.steps if math.isfinite(s.step_time_s)) < 1.0
    hole = (float(chunks[k].t_s[0]), float(chunks[k + 60].t_s[0]))
    assert not [s for s in a.steps if not s.gap and s.t_ic_s < hole[1] and s.t_ic_s + s.step_time_s > hole[0]]


def test_a_baseline_of_a_session_without_usable_steps_is_refused(capsys: pytest.CaptureFixture[str],
                                                                tmp_path: Path) -> None:
    """Standing only: no baseline is written (an all-empty one compared nothing later, without a reason)."""
    path = tmp_path / "stand.csv"
    write_imu_csv(path, simulate(SimParams(seconds=30, stand_s=30, seed=5)).batch)
    base = tmp_path / "b.json"
    code, out, err = run_cli(capsys, str(path), "--save-baseline", str(base))
    assert code == 1 and not base.exists()
    assert err.count("\n") == 1 and "no walking or running steps with a known side, so no baseline to save" in err


def test_steps_without_a_rotation_range_in_a_turn_are_counted_and_said(capsys: pytest.CaptureFixture[str],
                                                                       tmp_path: Path) -> None:
    """Overground, a U-turn: the steps in it keep their other angles but not their rotation range; the quality
    section counts them and says why, and says nothing of it without a turn."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "dsp"))
    from _orient_synth import synth_run

    for turns, name in (((), "straight.csv"), (((16.0, 1.0, 180.0),), "u_turn.csv")):
        # (contacts of 60 % of the step: over half the samples read more than half a g, as the unit check wants)
        r = synth_run(stand_s=3.0, run_s=24.0, turns=turns, contact_frac=0.6, noise_acc=0.05, noise_gyr=0.005, seed=4)
        write_imu_csv(tmp_path / name, ImuBatch(t_s=r.t_s, acc_mps2=r.acc_mps2, gyr_rads=r.gyr_rads))
        code, out, err = run_cli(capsys, str(tmp_path / name), "--json")
        assert code == 0, err
        doc = json.loads(out)
        steps = [s for s in doc["steps"] if not s["gap"] and s["tilt_range_deg"] is not None]
        no_rot = sum(s["rotation_range_deg"] is None for s in steps)
        assert doc["quality"]["n_steps_turning"] == no_rot
        code, out, _ = run_cli(capsys, str(tmp_path / name))
        flat = " ".join(out.split())
        if turns:
            # the turn (1 s at 170 steps/min) and the restart on the new heading after it
            assert 3 <= no_rot <= 8 and len(steps) - no_rot >= 40
            assert f"steps without a rotation range: {no_rot} (turning: the pelvis faced more than 30°" in flat
            from pelvimon.report import render_report

            a = analyze_batches(load_batches(tmp_path / name), name=name)
            assert "Steps without a rotation range (turning: the pelvis faced more than 30°" in render_report(a, title="t")
        else:
            assert no_rot == 0 and "rotation range:" not in flat


def test_a_sensor_that_turned_on_the_body_is_said_with_its_time(capsys: pytest.CaptureFixture[str],
                                                                 tmp_path: Path) -> None:
    """The sensor turns 90° on the body halfway through a run: the quality section says when the re-check saw
    it (JSON, text, HTML report); a steady recording says nothing of it."""
    from scipy.spatial.transform import Rotation

    from pelvimon.report import render_report

    b = simulate(SimParams(seconds=90.0, gait="run", seed=22)).batch
    k = int(45.0 * 200)
    turn = Rotation.from_euler("z", 90, degrees=True)
    acc = np.vstack([b.acc_mps2[:k], turn.apply(b.acc_mps2[k:])])
    gyr = np.vstack([b.gyr_rads[:k], turn.apply(b.gyr_rads[k:])])
    write_imu_csv(tmp_path / "turned.csv", ImuBatch(t_s=b.t_s, acc_mps2=acc, gyr_rads=gyr))
    write_imu_csv(tmp_path / "steady.csv", b)
    for name in ("turned.csv", "steady.csv"):
        code, out, err = run_cli(capsys, str(tmp_path / name), "--json")
        assert code == 0, err
        moves = no_nan(out)["quality"]["mount_moves"]
        code, out, _ = run_cli(capsys, str(tmp_path / name))
        flat = " ".join(out.split())
        html = render_report(analyze_batches(load_batches(tmp_path / name), name=name), title="t")
        if name == "steady.csv":
            assert moves == [] and "sensor moved" not in flat and "Sensor moved" not in html
            continue
        assert len(moves) == 1
        t, deg, t_from, t_until = (moves[0][k_] for k_ in ("t_s", "angle_deg", "t_from_s", "t_until_s"))
        # seen within the re-check's window of strides after the turn at 45 s (not at the end of a chunk),
        # dated back to a block of strides before the turn, and the mounting found again some strides later
        assert b.t_s[k] < t < b.t_s[k] + 15.0 and 20.0 < deg <= 120.0  # (the recent blocks' direction, noisy)
        assert b.t_s[k] - 5.0 < t_from <= b.t_s[k] and t < t_until < t + 20.0
        said = (f"the sensor seems to have turned on the body from about {t_from:.1f} s (seen at {t:.1f} s); "
                f"the recent strides ran {deg:.0f}° from the calibrated forward direction; the mounting was "
                f"found again at {t_until:.1f} s")
        assert f"sensor moved: {said}" in flat
        assert f"Sensor moved: {said}" in html
        # its steps in between are out of the left/right comparison (counted with the uncertain sides), those
        # after are in again
        data = no_nan(run_cli(capsys, str(tmp_path / name), "--json")[1])
        between = [s for s in data["steps"] if t_from <= s["t_ic_s"] < t_until and not s["gap"]]
        later = [s for s in data["steps"] if s["t_ic_s"] >= t_until and not s["gap"]]
        assert len(between) > 20 and all(s["laterality_confidence"] <= 0.5 for s in between)
        assert data["quality"]["n_steps_low_laterality"] >= len(between)
        assert len(later) > 50 and all(s["laterality_confidence"] >= 0.8 for s in later)
        assert "the steps between are left out of the left/right comparison" in flat


@pytest.mark.parametrize("gait", ["run", "walk"])
def test_the_steps_since_a_sensor_turned_around_stay_out_of_the_whole_session_comparison(gait: str) -> None:
    """A runner with more pelvic drop on the right (5° left, 8° right) whose sensor turns around (180° about
    the vertical) at 45 s of 150 s: every side is swapped from then on in the calibrated frame, and the
    re-check sees it seconds later. The steps since the turn leave the left/right comparisons until the
    mounting is found again, so the whole session's difference is the steady session's (within 0.2°, not
    pulled towards zero by swapped sides) and the alert on the right side runs to the end (swapped steps
    in its windows ended it at about 50 s)."""
    from scipy.spatial.transform import Rotation

    b = simulate(SimParams(seconds=150.0, gait=gait, seed=22, cpd_left_deg=5.0, cpd_right_deg=8.0)).batch
    k = int(45.0 * 200)
    turn = Rotation.from_euler("z", 180, degrees=True)
    acc = np.vstack([b.acc_mps2[:k], turn.apply(b.acc_mps2[k:])])
    gyr = np.vstack([b.gyr_rads[:k], turn.apply(b.gyr_rads[k:])])
    steady = analyze_batches([b])
    turned = analyze_batches([ImuBatch(t_s=b.t_s, acc_mps2=acc, gyr_rads=gyr)])
    (move,) = turned.quality.mount_moves
    assert move.t_from_s <= b.t_s[k] < move.t_s < move.t_until_s < move.t_s + 20.0
    want = steady.asymmetry["cpd_deg"].diff
    assert want < -2.5 and abs(turned.asymmetry["cpd_deg"].diff - want) < 0.2
    (alert,) = [a for a in turned.alerts if a.metric == "cpd_deg"]
    assert alert.side == "R" and alert.t_start_s < b.t_s[k] and alert.t_end_s == pytest.approx(b.t_s[-1], abs=1.0)
    assert all(s.laterality_confidence <= 0.5 for s in turned.steps if move.t_from_s <= s.t_ic_s < move.t_until_s)


def test_steps_without_angles_and_turning_steps_are_not_counted_twice() -> None:
    """A step without a pelvic drop (its contact not found) that also lacks a rotation range is one of the
    steps without pelvis angles, not also a turning step: the two counts add up to the steps they name."""
    from dataclasses import replace

    base = Step("L", 0.0, 0.25, 0.35, 0.25, 0.1, 171.4, 6.0, 8.0, 5.0, 12.0, 7.0, 2.0)
    nan = math.nan
    steps = []
    for i, (cpd, rot) in enumerate([(6.0, 5.0), (6.0, nan), (nan, 5.0), (nan, nan), (6.0, nan), (nan, nan)]):
        steps.append(replace(base, side="L" if i % 2 == 0 else "R", t_ic_s=0.35 * i, t_fc_s=0.35 * i + 0.25,
                             cpd_deg=cpd, rotation_range_deg=rot))
    q = analyze_steps(steps, load_config(), name="steps only").quality
    assert (q.n_steps_no_angles, q.n_steps_turning) == (3, 2)
