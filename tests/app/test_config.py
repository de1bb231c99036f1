"""Configuration: shipped defaults, user overrides, one-line errors naming the key; baseline round trip."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from pelvimon.config import (
    Baseline,
    ConfigError,
    default_config_text,
    load_baseline,
    load_config,
    save_baseline,
)
from pelvimon.dsp.alerts import AlertParams, default_rules
from pelvimon.dsp.asymmetry import METRICS, AsymmetryParams, SideStats


def test_defaults_file_matches_the_code_defaults() -> None:
    cfg = load_config()
    assert cfg.asymmetry == AsymmetryParams()
    ap = AlertParams()
    assert (cfg.alerts.min_duration_s, cfg.alerts.release_hold_s, cfg.alerts.stale_s) == (
        ap.min_duration_s,
        ap.release_hold_s,
        ap.stale_s,
    )
    assert dict(cfg.alerts.rules) == default_rules()
    assert "[alerts.rules.cpd_deg]" in default_config_text()


def test_user_file_overrides_only_what_it_sets(tmp_path: Path) -> None:
    p = tmp_path / "my.toml"
    p.write_text(
        "[asymmetry]\nwindow_steps = 30\nwindow_s = 15\n\n[alerts]\nmin_duration_s = 20\n\n"
        "[alerts.rules.cpd_deg]\nenter = 3.0\n\n[alerts.rules.impact_g]\nenabled = false\n"
    )
    cfg = load_config(p)
    assert cfg.asymmetry.window_steps == 30 and cfg.asymmetry.window_s == 15.0
    assert cfg.asymmetry.min_steps_per_side == 8  # default kept
    assert cfg.alerts.min_duration_s == 20.0 and cfg.alerts.release_hold_s == 5.0
    assert cfg.alerts.rules["cpd_deg"].enter == 3.0 and cfg.alerts.rules["cpd_deg"].release == 1.5
    assert cfg.alerts.rules["cpd_deg"].kind == "diff"
    assert cfg.alerts.rules["impact_g"].enabled is False
    assert cfg.sources == ("defaults", str(p))


def test_a_rule_of_another_kind_takes_that_kind_s_thresholds(tmp_path: Path) -> None:
    p = tmp_path / "kinds.toml"
    p.write_text("[alerts.rules.step_time_s]\nkind = 'diff'\nenter = 0.02\nrelease = 0.01\n")
    rule = load_config(p).alerts.rules["step_time_s"]
    assert (rule.kind, rule.enter, rule.release) == ("diff", 0.02, 0.01)


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("[asymmetry]\nwindow_step = 3\n", "unknown key 'asymmetry.window_step'"),
        ("[asymmetry]\nwindow_steps = 'many'\n", "'asymmetry.window_steps' must be an integer"),
        ("[asymmetry]\nwindow_steps = 1\n", "asymmetry.window_steps must be >= 2"),
        ("[asymmetry]\nconfidence_level = 1.5\n", "asymmetry.confidence_level must be"),
        ("[asymmetry]\nautocorrelation = 'arma'\n", "asymmetry.autocorrelation must be"),
        ("[alerts]\nmin_duration_s = -1\n", "alerts.min_duration_s must be"),
        ("[alerts.rules.cpd_deg]\nenter = 2.0\nrelease = 3.0\n", "alerts.rules.cpd_deg"),
        ("[alerts.rules.cadence]\nenter = 2.0\n", "unknown metric 'alerts.rules.cadence'"),
        ("[alerts.rules.impact_g]\nenabled = 1\n", "'alerts.rules.impact_g.enabled' must be true or false"),
        ("[alerts.rules.contact_time_s]\nlow = -10\nhigh = 200\n",
         "alerts.rules.contact_time_s: need 0 <= low < 50 < high <= 100"),
        ("[alerts.rules.contact_time_s]\nlow = 51\nhigh = 60\n", "got low=51.0, high=60.0"),
        ("[alerts.rules.contact_time_s]\nrelease_margin = 5\n", "less than half the band (0.7), got 5.0"),
        ("[alerts.rules.cpd_deg]\nlow = 45\n", "alerts.rules.cpd_deg.low has no effect on a 'diff' rule, which reads "
         "enter, min_diff, release; remove it, or set the rule's kind"),
        ("[alerts.rules.contact_time_s]\nenter = 3\n", "alerts.rules.contact_time_s.enter has no effect on a 'balance'"),
        ("[alerts.rules.step_time_s]\nhigh = 60\n", "step_time_s.high has no effect on a 'si' rule, which reads "
         "enter, min_diff, release"),
        ("[alerts.rules.cpd_deg]\nkind = 'si'\n", "alerts.rules.cpd_deg is a 'si' rule here but 'diff' by default, so "
         "its thresholds count in % (symmetry index); set enter and release for it too"),
        ("[alerts.rules.cpd_deg]\nkind = 'si'\nenter = 10\n", "set release for it too"),
        ("[alerts.rules.step_time_s]\nkind = 'diff'\n", "count in the metric's own unit; set enter and release"),
        ("[alerts.rules.contact_time_s]\nkind = 'si'\n", "'si' rule here but 'balance' by default"),
        ("[alerts.rules.cpd_deg]\nkind = 'balance'\n", "alerts.rules.cpd_deg.kind = 'balance' compares the left share "
         "of contact time, which only contact_time_s has; use 'diff' or 'si' for cpd_deg"),
        ("[alert]\n", "unknown key 'alert'"),
        ("[asymmetry\nwindow_steps = 3\n", "not valid TOML"),
    ],
)
def test_errors_are_one_line_and_name_the_key(tmp_path: Path, text: str, expect: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert expect in msg and "\n" not in msg and str(p) in msg


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found: .*; check the path"):
        load_config(tmp_path / "nope.toml")


def test_baseline_round_trip(tmp_path: Path) -> None:
    stats = {
        m: (SideStats(40, 6.0 + i, 1.0, 0.2, 26.7), SideStats(41, 5.5 + i, 1.1, 0.2, 27.3))
        for i, m in enumerate(METRICS)
    }
    stats["flight_time_s"] = (SideStats(0, math.nan, math.nan, 0.0, 0.0), stats["flight_time_s"][1])
    path = tmp_path / "runner.json"
    save_baseline(path, Baseline(stats=stats, meta={"source": "run1.csv", "runner": "A"}))
    doc = json.loads(path.read_text())  # strict JSON: NaN written as null
    assert doc["format"] == "pelvimon-baseline" and doc["metrics"]["flight_time_s"]["left"]["mean"] is None
    back = load_baseline(path)
    assert back.meta == {"source": "run1.csv", "runner": "A"}
    assert back.stats["cpd_deg"] == stats["cpd_deg"]
    assert math.isnan(back.stats["flight_time_s"][0].mean) and back.stats["flight_time_s"][0].n == 0
    assert back.notes == [] and "vertical_oscillation_cm" in back.stats
    # a version-1 file (vertical oscillation read about 0.3 cm high then): read, that metric left out, said
    doc["version"] = 1
    path.write_text(json.dumps(doc))
    old = load_baseline(path)
    assert "vertical_oscillation_cm" not in old.stats and old.stats["cpd_deg"] == stats["cpd_deg"]
    assert len(old.notes) == 1 and "vertical oscillation is left out" in old.notes[0]


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (None, "baseline file not found"),
        ("{not json", "invalid JSON at line 1"),
        ('{"format": "other"}', "not a pelvimon baseline"),
        ('{"format": "pelvimon-baseline", "version": 9, "metrics": {}}', "version 9 not supported"),
        ('{"format": "pelvimon-baseline", "version": 1, "metrics": {"x": {}}}', "unknown metric 'metrics.x'"),
        (
            '{"format": "pelvimon-baseline", "version": 1, "metrics": {"cpd_deg": {"left": {"n": 3}}}}',
            "'metrics.cpd_deg.left.mean' must be a number",
        ),
    ],
)
def test_bad_baseline_files(tmp_path: Path, content: str | None, expect: str) -> None:
    p = tmp_path / "b.json"
    if content is not None:
        p.write_text(content)
    with pytest.raises(ConfigError, match=expect.replace("(", r"\(").replace(".", r"\.")):
        load_baseline(p)


@pytest.mark.parametrize(
    ("side", "expect"),
    [
        ({"n": 60, "mean": 8.0, "sd": 1e300, "rho": 0.1, "n_eff": 50}, "cpd_deg.left.sd' must be between 0 and"),
        ({"n": 60, "mean": 1e300, "sd": 0.5, "rho": 0.1, "n_eff": 50}, "cpd_deg.left.mean' must be a number within"),
        ({"n": 0, "mean": 8.0, "sd": None, "rho": 0.0, "n_eff": 0}, "a side without steps has no mean"),
        ({"n": 60, "mean": None, "sd": None, "rho": 0.0, "n_eff": 0}, "one with steps has one"),
    ],
)
def test_baseline_values_no_session_gives_are_refused(tmp_path: Path, side: dict, expect: str) -> None:
    """A hand-edited or damaged baseline: one line naming the value (an sd of 1e300 overflowed in the
    comparison, a mean of 1e300 printed 300 digits)."""
    good = {"n": 60, "mean": 4.0, "sd": 0.5, "rho": 0.1, "n_eff": 50}
    doc = {"format": "pelvimon-baseline", "version": 1, "meta": {},
           "metrics": {"cpd_deg": {"left": side, "right": good}}}  # fmt: skip
    p = tmp_path / "b.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=re.escape(expect)) as err:
        load_baseline(p)
    assert "\n" not in str(err.value)
