"""The review window offscreen: a generated CSV and a generated session file, every recording in
recordings/, range selection, statistics, distributions and the CSV export."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from pelvimon.gui.review_data import TABLE_METRICS, load_review  # noqa: E402
from pelvimon.gui.review_window import ReviewWindow  # noqa: E402
from pelvimon.sensors.simulator import SimParams, simulate  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
RECORDINGS = sorted(
    p for p in (REPO / "recordings").rglob("*") if p.suffix.lower() in (".mcap", ".csv") and p.is_file()
)


@pytest.fixture(scope="module")
def sim_csv(tmp_path_factory) -> Path:
    from pelvimon.sensors.csv_source import write_imu_csv

    sim = simulate(SimParams(seconds=40, rate_hz=104.0, cpd_left_deg=8.0, cpd_right_deg=4.0, seed=3))
    path = tmp_path_factory.mktemp("review") / "runner.csv"
    write_imu_csv(path, sim.batch)
    return path


@pytest.fixture(scope="module")
def sim_session(tmp_path_factory) -> tuple[Path, list]:
    """A session file written as the live engine writes it: samples, steps and alerts."""
    from pelvimon.engine import AlertEvent, SessionAnalyzer
    from pelvimon.sensors.session_file import SessionWriter
    from pelvimon.sensors.source import SourceInfo

    sim = simulate(SimParams(seconds=40, rate_hz=104.0, cpd_left_deg=4.0, cpd_right_deg=7.0, seed=4))
    path = tmp_path_factory.mktemp("review") / "session.mcap"
    an = SessionAnalyzer(104.0)
    steps = []
    with SessionWriter(path, SourceInfo("sim", "simulator", 104.0)) as w:
        b = sim.batch
        for i in range(0, len(b), 52):
            chunk = b.slice(i, min(i + 52, len(b)))
            w.write_batch(chunk)
            for e in an.feed(chunk):
                if type(e).__name__ == "Step":
                    w.write_step(e)
                    steps.append(e)
                elif isinstance(e, AlertEvent) and e.kind != "updated":
                    w.write_alert(e.alert)
    return path, steps


def test_csv_review_computes_steps_and_shows_them(qtbot, sim_csv, tmp_path) -> None:
    from pelvimon.analysis import load_batches, run_pipeline

    data = load_review(sim_csv)
    assert data.steps_source == "computed"
    want = run_pipeline(load_batches(sim_csv)).steps
    assert [s.side for s in data.steps] == [s.side for s in want]
    np.testing.assert_array_equal([s.t_ic_s for s in data.steps], [s.t_ic_s for s in want])
    np.testing.assert_array_equal([s.cpd_deg for s in data.steps], [s.cpd_deg for s in want])  # NaN == NaN here
    w = ReviewWindow(data)
    qtbot.addWidget(w)
    cols = data.step_arrays()
    for side in ("L", "R"):
        m = cols["usable"] & (cols["is_left"] == (side == "L")) & np.isfinite(cols["cpd_deg"])
        x, y = w.timeline_points[("cpd_deg", side)].getData()
        np.testing.assert_array_equal(x, cols["t_ic_s"][m])
        np.testing.assert_array_equal(y, cols["cpd_deg"][m])
    # an alert for the weak left side, listed in plain words
    assert any(a.metric == "cpd_deg" and a.side == "L" for a in data.alerts)
    assert "LEFT" in w.alert_list.item(0).text() or any(
        "LEFT" in w.alert_list.item(i).text() for i in range(w.alert_list.count())
    )

    # range selection: traces, statistics and histograms of that range only
    w.set_range(20.0, 30.0)
    assert w.selected_range() == (20.0, 30.0)
    for r in w.regions:
        assert tuple(r.getRegion()) == (20.0, 30.0)
    tx, ty = w.trace_curves["obliquity"].getData()
    t, _, obl, _ = data.angles_between(20.0, 30.0)
    np.testing.assert_array_equal(tx, t)
    np.testing.assert_array_equal(ty, obl)
    sel = cols["usable"] & (cols["t_ic_s"] >= 20.0) & (cols["t_ic_s"] <= 30.0)
    for side, col in (("L", 0), ("R", 1)):
        v = cols["cpd_deg"][sel & (cols["is_left"] == (side == "L"))]
        v = v[np.isfinite(v)]
        mean, sd, n = w.range_stats["cpd_deg"][side]
        assert n == v.size > 5
        assert mean == pytest.approx(v.mean()) and sd == pytest.approx(v.std(ddof=1))
        assert w.table.item(0, col).text().startswith(f"{v.mean():.1f} ± ")
        _, counts = w.hist_curves[("cpd_deg", side)].getData()
        assert counts.sum() == n
    assert w.table.item(0, 2).text() == f"{w.range_stats['cpd_deg']['L'][0] - w.range_stats['cpd_deg']['R'][0]:.1f}"
    assert f"({int(sel.sum())} usable steps)" in w.range_label.text()
    # before the calibration the steps have timing but no pelvic drop: they count as usable all the same
    w.set_range(0.0, 14.0)
    early = cols["usable"] & (cols["t_ic_s"] <= 14.0)
    with_cpd = int(np.count_nonzero(early & np.isfinite(cols["cpd_deg"])))
    assert with_cpd < int(early.sum()) and f"({int(early.sum())} usable steps)" in w.range_label.text()

    # export writes the whole per-step table
    out = w.export_csv(tmp_path / "steps.csv")
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(data.steps)
    for row, s in zip(rows, data.steps, strict=True):
        assert row["side"] == s.side
        assert float(row["t_ic_s"]) == s.t_ic_s
        assert (row["cpd_deg"] == "") == (not math.isfinite(s.cpd_deg))
        if row["cpd_deg"]:
            assert float(row["cpd_deg"]) == s.cpd_deg


def test_session_without_steps_is_reviewed_at_its_nominal_rate_as_analyze_does(tmp_path) -> None:
    """A session file with samples only: the review computes the steps ``pelvimon analyze`` gives, at the
    session's nominal rate (here 104 Hz, while the time stamps say 104.2 Hz), from the same Source."""
    import dataclasses

    from pelvimon.analysis import analyze_file
    from pelvimon.sensors.session_file import SessionWriter
    from pelvimon.sensors.source import SourceInfo

    sim = simulate(SimParams(seconds=40, rate_hz=104.0, cpd_left_deg=8.0, cpd_right_deg=4.0, seed=5))
    b = dataclasses.replace(sim.batch, t_s=sim.batch.t_s * (104.0 / 104.2))
    path = tmp_path / "samples_only.mcap"
    with SessionWriter(path, SourceInfo("sim", "simulator", 104.0)) as w:
        for i in range(0, len(b), 52):
            w.write_batch(b.slice(i, min(i + 52, len(b))))
    data = load_review(path)
    want = analyze_file(path)
    assert data.steps_source == "computed" and len(data.steps) > 80
    assert data.analysis.to_json()["steps"] == want.to_json()["steps"]


def test_session_review_uses_the_recorded_steps(qtbot, sim_session, monkeypatch) -> None:
    from pelvimon.sensors.session_file import SessionReader

    path, steps = sim_session
    reads = []
    items = SessionReader.items

    def counted(self, warn: bool = True):
        if warn:  # (warn=False: the replay's look at the first second, to check the header's rate)
            reads.append(self.path)
        return items(self, warn=warn)

    monkeypatch.setattr(SessionReader, "items", counted)
    data = load_review(path)
    assert len(reads) == 1  # the samples and the recorded steps in one pass over the file
    assert data.steps_source == "recorded"
    assert [(s.side, s.t_ic_s) for s in data.steps] == [(s.side, s.t_ic_s) for s in steps]
    assert data.t_s.size > 20 * 104  # angles from the calibration on
    assert any(a.metric == "cpd_deg" and a.side == "R" for a in data.alerts)
    w = ReviewWindow(data)
    qtbot.addWidget(w)
    assert w.alert_list.count() == len(data.alerts)
    w.alert_list.itemClicked.emit(w.alert_list.item(0))
    t0, t1 = w.selected_range()
    assert t0 == pytest.approx(data.alerts[0].t_start_s)


@pytest.mark.skipif(not RECORDINGS, reason="recordings/ holds no session or CSV yet")
@pytest.mark.parametrize("path", RECORDINGS, ids=[p.name for p in RECORDINGS])
def test_review_opens_every_recording(qtbot, path: Path) -> None:
    data = load_review(path)
    w = ReviewWindow(data)
    qtbot.addWidget(w)
    assert w.windowTitle().endswith(path.name)
    assert data.duration_s > 0
    cols = data.step_arrays() if data.steps else None
    if cols is not None:
        want = int((cols["usable"] & np.isfinite(cols["cadence_spm"])).sum())
        shown = sum(len(w.timeline_points[("cadence_spm", s)].getData()[0]) for s in ("L", "R"))
        assert shown == want


def test_review_of_a_walk_and_a_run_names_the_gaits(qtbot, tmp_path) -> None:
    """A warm-up walk before a run: the summary line gives the run's cadence and pelvic drop and lists the
    stretches of each gait."""
    from pelvimon.sensors.csv_source import write_imu_csv
    from pelvimon.sensors.simulator import simulate_session

    sim = simulate_session([SimParams(seconds=30, gait="walk", end_stand_s=3, rate_hz=104.0, seed=5),
                            SimParams(seconds=40, gait="run", stand_s=3, rate_hz=104.0, seed=6)])
    path = tmp_path / "walk_run.csv"
    write_imu_csv(path, sim.batch)
    w = ReviewWindow(load_review(path))
    qtbot.addWidget(w)
    text = w._summary_text()
    assert "running cadence" in text and "Pelvic drop (running)" in text
    assert "Gait: walking" in text and "the per-side figures are those of the running steps" in text
    # the walk alone has no flight time to show ("0 ± 0" it read), the run and the whole session have
    flight = next(i for i, (m, *_) in enumerate(TABLE_METRICS) if m == "flight_time_s")
    w.set_range(0.0, 25.0)
    assert w.table.isRowHidden(flight) and not w.table.isRowHidden(0)
    w.set_range(40.0, 70.0)
    assert not w.table.isRowHidden(flight)
    w.set_range(0.0, 70.0)
    assert not w.table.isRowHidden(flight)


def test_an_empty_angle_panel_says_why(qtbot, sim_csv, tmp_path) -> None:
    """Before the calibration, past the end of the session, and in a session never calibrated: the angle
    panel names the reason instead of guessing at a missing gyroscope."""
    from pelvimon.sensors.csv_source import write_imu_csv

    w = ReviewWindow(load_review(sim_csv))
    qtbot.addWidget(w)

    def title() -> str:
        return w.traces.getPlotItem().titleLabel.text

    w.set_range(0.0, 3.0)
    assert "No pelvis angles yet: they start at" in title() and "calibrated" in title()
    w.set_range(200.0, 300.0)
    assert "No samples in this range: the session ends at 40.0 s" in title()
    w.set_range(25.0, 30.0)
    assert "No " not in title()
    stand = tmp_path / "stand.csv"
    write_imu_csv(stand, simulate(SimParams(seconds=20, stand_s=20, seed=2)).batch)
    ws = ReviewWindow(load_review(stand))
    qtbot.addWidget(ws)
    ws.set_range(5.0, 10.0)
    assert "No pelvis angles: mount calibration not done" in ws.traces.getPlotItem().titleLabel.text


def test_the_timeline_spans_the_whole_session_the_standing_included(qtbot, tmp_path) -> None:
    from pelvimon.sensors.csv_source import write_imu_csv

    batch = simulate(SimParams(seconds=60, stand_s=25, end_stand_s=15, rate_hz=104.0, seed=7)).batch
    path = tmp_path / "long_stand.csv"
    write_imu_csv(path, batch)
    data = load_review(path)
    w = ReviewWindow(data)
    qtbot.addWidget(w)
    t_steps = data.step_arrays()["t_ic_s"]
    assert t_steps.min() > 20.0 and t_steps.max() < 50.0  # the steps leave out the standing at both ends
    first, last = float(batch.t_s[0]), float(batch.t_s[-1])
    assert w.session_span() == pytest.approx((first, last))
    for p in w.timeline_plots:
        lo, hi = p.viewRange()[0]
        assert lo <= first + 0.5 and hi >= last - 0.5


def test_a_tight_distribution_is_drawn_on_at_least_its_minimum_span(qtbot, sim_csv) -> None:
    from pelvimon.gui.review_window import HIST_MIN_SPAN

    data = load_review(sim_csv)
    w = ReviewWindow(data)
    qtbot.addWidget(w)
    w.set_range(30.0, 31.0)  # three steps
    cols = data.step_arrays()
    sel = cols["usable"] & (cols["t_ic_s"] >= 30.0) & (cols["t_ic_s"] <= 31.0)
    widened = 0
    for metric, span in HIST_MIN_SPAN.items():
        v = cols[metric][sel] * (1000.0 if metric == "contact_time_s" else 1.0)
        v = v[np.isfinite(v)]
        edges, counts = w.hist_curves[(metric, "L")].getData()
        assert counts.sum() > 0
        assert edges[-1] - edges[0] == pytest.approx(max(span, v.max() - v.min()))
        assert edges[0] <= v.min() and edges[-1] >= v.max()
        widened += v.max() - v.min() < span
    assert widened


@pytest.mark.parametrize(("factor", "shown"), [(1000.0, "rate of 0.104 Hz"), (1 / 20, "rate of 2080 Hz")])
def test_review_refuses_the_rates_analyze_refuses(tmp_path, factor: float, shown: str) -> None:
    """Times in ms (a rate of 0.1 Hz) or a rate past 2000 Hz: the same one-line refusal as analyze, not
    the event detector's own message or a review of a few wrong steps."""
    from pelvimon.errors import PelvimonError
    from pelvimon.sensors.csv_source import write_imu_csv

    batch = simulate(SimParams(seconds=30, rate_hz=104.0, seed=3)).batch
    path = tmp_path / "scaled.csv"
    write_imu_csv(path, batch.__class__(t_s=batch.t_s * factor, acc_mps2=batch.acc_mps2, gyr_rads=batch.gyr_rads))
    with pytest.raises(PelvimonError, match="check that the time column is in seconds") as err:
        load_review(path)
    assert shown in str(err.value) and "\n" not in str(err.value)


def test_a_cut_short_session_file_is_said_above_the_review(qtbot, tmp_path) -> None:
    """A copy taken while recording: the window says, above its figures, that the file was cut short and
    where the recording read ends; the intact file shows no such notice."""
    from pelvimon.sensors.session_file import SessionWriter
    from pelvimon.sensors.source import SourceInfo

    b = simulate(SimParams(seconds=30, rate_hz=104.0, seed=6)).batch
    path = tmp_path / "whole.mcap"
    with SessionWriter(path, SourceInfo("sim", "simulator", 104.0), flush_interval_s=1e9) as w:
        for i in range(0, len(b), 52):
            w.write_batch(b.slice(i, min(i + 52, len(b))))
            if (i // 52) % 2 == 1:
                w.flush()  # one-second chunks
    whole = ReviewWindow(load_review(path))
    qtbot.addWidget(whole)
    assert not whole.file_notice.isVisibleTo(whole) and whole.file_notice.text() == ""
    cut = tmp_path / "cut.mcap"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    review = load_review(cut)
    w = ReviewWindow(review)
    qtbot.addWidget(w)
    fd = review.analysis.quality.file_damage
    assert fd.cut_short and fd.lost_after_s is not None and fd.lost_after_s < 0.7 * 30
    assert w.file_notice.isVisibleTo(w)
    text = w.file_notice.text()
    assert text.startswith("The session file is damaged: the file was cut short")
    assert f"the recording after {fd.lost_after_s:.1f} s is lost" in text


def test_a_sensor_that_turned_on_the_body_is_said_above_the_review(qtbot, tmp_path) -> None:
    """The sensor turns 90° on the body halfway: the notice above the figures says when the re-check saw it."""
    from scipy.spatial.transform import Rotation

    from pelvimon.sensors.csv_source import write_imu_csv

    b = simulate(SimParams(seconds=90, gait="run", seed=22)).batch
    k = int(45 * 200)
    turn = Rotation.from_euler("z", 90, degrees=True)
    acc = np.vstack([b.acc_mps2[:k], turn.apply(b.acc_mps2[k:])])
    gyr = np.vstack([b.gyr_rads[:k], turn.apply(b.gyr_rads[k:])])
    path = tmp_path / "turned.csv"
    write_imu_csv(path, b.__class__(t_s=b.t_s, acc_mps2=acc, gyr_rads=gyr))
    review = load_review(path)
    w = ReviewWindow(review)
    qtbot.addWidget(w)
    (t, _, t_from, t_until), = review.analysis.quality.mount_moves
    assert b.t_s[k] < t < b.t_s[k] + 15.0 and b.t_s[k] - 5.0 < t_from <= b.t_s[k]
    assert w.file_notice.isVisibleTo(w)
    assert w.file_notice.text().startswith(
        f"Sensor moved: the sensor seems to have turned on the body from about {t_from:.1f} s (seen at {t:.1f} s)")
    # the steps since the move began are out of the left/right comparison, here as in pelvimon analyze
    assert all(s.laterality_confidence <= 0.5 for s in review.steps if t_from <= s.t_ic_s < t_until)
    # the range with no angles while the mounting was found again says so
    assert w._no_angles_why(t + 1.0, t + 2.0) == (f"No pelvis angles here: the sensor moved on the body (seen at "
                                                  f"{t:.1f} s); its mounting was found again at {t_until:.1f} s")


def test_a_review_of_a_recording_that_loses_samples_often_says_what_it_costs(qtbot, tmp_path) -> None:
    """Every step after the losses began was grey, with nothing to say why its figures were missing."""
    from pelvimon.firmware_protocols.batch import ImuBatch
    from pelvimon.sensors.csv_source import write_imu_csv

    b = simulate(SimParams(seconds=40, rate_hz=104.0, seed=3)).batch
    keep = np.ones(len(b), dtype=bool)
    keep[1000::30] = False  # one sample lost every 0.3 s
    path = tmp_path / "lossy.csv"
    write_imu_csv(path, ImuBatch(t_s=b.t_s[keep], acc_mps2=b.acc_mps2[keep], gyr_rads=b.gyr_rads[keep],
                                 time_base="session"))
    w = ReviewWindow(load_review(path))
    qtbot.addWidget(w)
    assert "Note:</b> The recording lost samples" in w._summary_text()
