"""``pelvimon report``: one valid, self-contained, escaped HTML file whose numbers are analyze's."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from pelvimon.cli import main
from pelvimon.sensors.csv_source import write_imu_csv
from pelvimon.sensors.simulator import SimParams, simulate

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
EVIL = "<script>alert(1)</script>"


class Checker(HTMLParser):
    """Collects tags, checks they balance, and gathers images, data values and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []
        self.images: list[str] = []
        self.values: dict[tuple[str, str], str] = {}
        self.text: list[str] = []
        self.attr_text: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        self.attr_text += [(k, v) for k, v in attrs if v]
        if tag == "img":
            self.images.append(a.get("src") or "")
        if "data-value" in a:
            self.values[(a["data-metric"], a["data-field"])] = a["data-value"]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("rep")
    sim = simulate(SimParams(seconds=60.0, cpd_left_deg=8.0, cpd_right_deg=4.0, seed=31))
    csv_path = d / "run&<b>.csv"
    write_imu_csv(csv_path, sim.batch)
    html_path = d / "report.html"
    code = main(["report", str(csv_path), "-o", str(html_path), "--title", EVIL, "--runner", "Ann <O'Neil>",
                 "--notes", "new shoes & 12 km/h\n<i>treadmill</i>"])  # fmt: skip
    assert code == 0
    return {"csv": csv_path, "html": html_path.read_text(encoding="utf-8")}


def parse(text: str) -> Checker:
    c = Checker()
    c.feed(text)
    c.close()
    return c


def test_report_is_balanced_html_with_embedded_figures(session: dict) -> None:
    c = parse(session["html"])
    assert c.errors == [] and c.stack == []
    assert c.tags[:3] == ["html", "head", "meta"]
    assert len(c.images) >= 3
    for src in c.images:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_report_is_self_contained(session: dict) -> None:
    text = session["html"]
    c = parse(text)
    low = text.lower()
    assert "http://" not in low and "https://" not in low
    assert "script" not in c.tags and "link" not in c.tags and "iframe" not in c.tags
    assert "@import" not in low and "url(" not in low and "@font-face" not in low
    refs = [(k, v) for k, v in c.attr_text if k in ("src", "href", "srcset", "action", "poster", "data")]
    assert len(refs) == len(c.images)
    assert all(v.startswith("data:image/png;base64,") for _, v in refs)


def test_user_text_is_escaped(session: dict) -> None:
    text = session["html"]
    assert EVIL not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<i>treadmill</i>" not in text and "<b>.csv" not in text
    c = parse(text)
    joined = "".join(c.text)
    assert EVIL in joined  # shown as text, literally
    assert "Ann <O'Neil>" in joined and "run&<b>.csv" in joined and "new shoes & 12 km/h" in joined
    assert (
        c.tags.count("script") == 0 and c.tags.count("i") == 0 and c.tags.count("b") == 1
    )  # the balance line


def test_report_numbers_match_analyze_json(session: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(session["csv"]), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    c = parse(session["html"])
    summ = doc["summary"]
    n = 0
    for metric, a in summ["asymmetry"].items():
        for field in ("left_mean", "right_mean", "left_sd", "right_sd", "diff", "diff_ci_low", "diff_ci_high",
                      "symmetry_index_pct"):  # fmt: skip
            got = c.values[(metric, field)]
            want = a[field]
            assert (got == "null") if want is None else float(got) == want, (metric, field)
            n += 1
    assert n == 8 * len(summ["asymmetry"]) >= 8 * 9
    for metric, sides in summ["per_side"].items():
        for side in ("left", "right"):
            assert int(c.values[(metric, f"{side}_n")]) == sides[side]["n"], (metric, side)
    for al in doc["alerts"]:
        assert float(c.values[(al["metric"], "t_start_s")]) == al["t_start_s"]
    joined = " ".join(c.text)
    for al in doc["alerts"]:
        assert al["message"] in joined and f"{al['t_start_s']:.1f}" in joined
    assert any(al["metric"] == "cpd_deg" and al["side"] == "L" for al in doc["alerts"])
    bal = summ["contact_time_balance"]["value_pct"]
    assert f"{bal:.1f} % left" in joined
    q = doc["quality"]
    assert f"Samples: {q['n_samples']} at {q['rate_hz']:.1f} Hz" in joined


def test_report_explains_and_cites(session: dict) -> None:
    joined = " ".join(parse(session["html"]).text)
    assert "Bramah" in joined and "2018" in joined and "not a diagnosis" in joined
    assert joined.count("Left and right name the stance foot") == 1  # under the table, not again below
    assert "Data quality" in joined and "Asymmetry over time" in joined


def test_report_bad_input_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["report", str(tmp_path / "none.csv"), "-o", str(tmp_path / "r.html")])
    err = capsys.readouterr().err
    assert code == 1 and "no such file" in err and err.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


def test_report_without_steps_is_still_valid() -> None:
    """A recording with no gait (standing only) still gives a valid report that says so."""
    from pelvimon.analysis import analyze_steps
    from pelvimon.report import render_report

    text = render_report(analyze_steps([], name="standing.csv"), title="empty")
    c = parse(text)
    assert c.errors == [] and c.stack == [] and c.images == []  # no empty figures
    assert "No steps to compare" in " ".join(c.text) and "https://" not in text


def test_report_of_steps_without_sides_shows_what_is_known() -> None:
    """A sensor without a gyroscope: no side is known, so no left/right table and no per-side figure, but
    the steps' cadence, contact time and impact over all steps."""
    from dataclasses import replace

    from pelvimon.analysis import analyze_batches, analyze_steps
    from pelvimon.report import render_report

    sim = simulate(SimParams(seconds=40, gait="run", seed=3))
    known = analyze_batches([sim.batch], name="s.csv")
    nan = float("nan")
    steps = [replace(s, laterality_confidence=0.5, cpd_deg=nan, obliquity_range_deg=nan, tilt_range_deg=nan,
                     rotation_range_deg=nan) for s in known.steps]
    a = analyze_steps(steps, name="acc_only.csv")
    assert a.summary()["n_steps_used"] == 0
    free = [s.step_time_s for s in a.gait_steps() if not s.gap]  # no side known: every step without a gap
    assert a.summary()["cadence_spm"] == pytest.approx(60.0 / np.mean(free))
    assert a.summary()["cadence_spm"] == pytest.approx(known.summary()["cadence_spm"], rel=0.01)
    text = render_report(a, title="acc only")
    c = parse(text)
    assert c.errors == [] and 'id="all-steps"' in text and 'id="summary"' not in text
    assert c.images == []  # neither per-side spread, nor CPD (no angles), nor the left-right trend
    ct = float(text.split('data-metric="contact_time_s" data-field="all_mean" data-value="')[1].split('"')[0])
    truth = np.mean([s.contact_time_s for s in sim.truth.steps if s.ramp >= 1.0])
    assert abs(ct - truth) < 0.02


def test_report_of_a_walk_and_a_run_compares_them_apart() -> None:
    """A warm-up walk before a run: the run's table first (id "summary"), then the walk's, and the gait
    phases; the walk's table has no flight-time row."""
    from pelvimon.analysis import analyze_batches
    from pelvimon.report import render_report
    from pelvimon.sensors.simulator import simulate_session

    sim = simulate_session([
        SimParams(seconds=40, gait="walk", end_stand_s=3, seed=51),
        SimParams(seconds=55, gait="run", stand_s=3, seed=52),
    ])
    a = analyze_batches([sim.batch], name="warmup_and_run.csv")
    text = render_report(a, title="walk then run")
    c = parse(text)
    assert c.errors == [] and c.stack == []
    assert a.gait == "running" and list(a.other_gaits) == ["walking"]
    run_table = text.split('<table id="summary">')[1].split("</table>")[0]
    walk_table = text.split('<table id="summary-walking">')[1].split("</table>")[0]
    assert "flight time" in run_table and "flight time" not in walk_table
    assert text.index("Left and right: running steps") < text.index("Left and right: walking steps")
    phases = text.split('<p id="gait-phases">')[1].split("</p>")[0]
    assert phases.startswith("Gait: walking") and "running" in phases and "compared separately" in phases


def test_report_compares_with_a_baseline_of_its_gait(session: dict, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The baseline section holds the changes of analyze's comparison; a baseline of walking against a run
    shows no change, only the note that it was not compared."""
    base = tmp_path / "self.json"
    assert main(["analyze", str(session["csv"]), "--save-baseline", str(base)]) == 0
    html = tmp_path / "b.html"
    assert main(["report", str(session["csv"]), "--baseline", str(base), "-o", str(html)]) == 0
    capsys.readouterr()
    assert main(["analyze", str(session["csv"]), "--baseline", str(base), "--json"]) == 0
    want = json.loads(capsys.readouterr().out)["summary"]["baseline"]["metrics"]
    c = parse(html.read_text(encoding="utf-8"))
    assert want and all(float(c.values[(m, "baseline_diff_change")]) == e["diff"]["change"] for m, e in want.items())

    walk = tmp_path / "walk.csv"
    write_imu_csv(walk, simulate(SimParams(seconds=40, gait="walk", seed=44)).batch)
    assert main(["analyze", str(walk), "--save-baseline", str(base)]) == 0
    assert main(["report", str(session["csv"]), "--baseline", str(base), "-o", str(html)]) == 0
    text = html.read_text(encoding="utf-8")
    joined = " ".join(parse(text).text)
    assert 'id="baseline"' not in text and "Change from baseline" in joined
    assert "the baseline is of walking steps and this session has none: not compared" in joined


def test_report_draws_only_panels_with_values() -> None:
    """Sides known but no pelvis angles (no gyroscope): the spread figure has the contact time alone and
    says what it leaves out, the trend the contact balance alone; too few steps for a rolling comparison:
    a sentence instead of an empty figure."""
    from dataclasses import replace

    from pelvimon.analysis import analyze_batches, analyze_steps
    from pelvimon.report import render_report, spread_values, trend_series

    known = analyze_batches([simulate(SimParams(seconds=60, gait="run", seed=3)).batch], name="s.csv")
    nan = float("nan")
    steps = [replace(s, cpd_deg=nan, obliquity_range_deg=nan, tilt_range_deg=nan, rotation_range_deg=nan)
             for s in known.steps]  # fmt: skip
    a = analyze_steps(steps, name="acc_only.csv")
    assert list(spread_values(a)) == ["contact_time_s"] and list(trend_series(a)) == ["contact_time_s"]
    text = render_report(a, title="acc only")
    c = parse(text)
    assert c.errors == [] and len(c.images) == 2  # spread and trend; no CPD per step
    assert "Not shown, without values: pelvic drop, tilt range, rotation range" in " ".join(c.text)

    few = analyze_steps(known.gait_steps()[:14], name="short.csv")
    assert few.summary()["n_steps_used"] > 0 and trend_series(few) == {}
    joined = " ".join(parse(render_report(few, title="short")).text)
    assert "No rolling comparison: it needs 8 usable steps a side" in joined


def test_the_trend_thresholds_are_where_the_alert_rules_start() -> None:
    """The dashed lines of the trend figure: an "si" rule's follows the mean of both sides (10 % of the
    runner's own tilt range), a "diff" rule's is flat; a credible difference past the line starts an alert."""
    from pelvimon.analysis import analyze_batches
    from pelvimon.dsp.alerts import start_condition
    from pelvimon.report import _scale, diff_threshold, trend_series

    a = analyze_batches([simulate(SimParams(seconds=90, cpd_left_deg=8.0, cpd_right_deg=4.0, seed=5)).batch],
                        name="s.csv")  # fmt: skip
    series = trend_series(a)
    rules = a.config.alerts.rules
    assert rules["tilt_range_deg"].kind == "si" and rules["cpd_deg"].kind == "diff"
    checked = 0
    for m in ("tilt_range_deg", "rotation_range_deg", "cpd_deg"):
        t, d, lo, hi, mid = series[m]
        k, _ = _scale(m)
        thr = diff_threshold(rules[m], mid, k)
        if rules[m].kind == "si":
            ok = np.isfinite(mid)
            np.testing.assert_allclose(thr[ok], np.maximum(0.1 * np.abs(mid[ok]), rules[m].min_diff * k))
            assert np.ptp(thr[ok]) > 0  # it follows the runner's level
        for (ts, current), thr_i in zip(a.rolling, thr, strict=True):
            x = next((z for z in current if z.metric == m), None)
            if x is None or not np.isfinite(thr_i) or abs(abs(x.diff * k) - thr_i) < 1e-9 * thr_i:
                continue
            credible = x.diff_ci_low > 0 or x.diff_ci_high < 0
            assert start_condition(rules[m], x) == (credible and abs(x.diff * k) > thr_i), (m, ts)
            checked += 1
    assert checked > 100
