"""Fuzzing the two user files pelvimon reads besides recordings: the TOML thresholds and the JSON baseline.
Whatever the text, the reader gives a Config/Baseline or a one-line ConfigError, never another exception."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pelvimon.config import ConfigError, default_config_text, load_baseline, load_config

_TOML_VALUES = st.one_of(
    st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.text(max_size=8), st.lists(st.integers(-5, 5), max_size=3),
)
_KEYS = ["window_steps", "window_s", "min_steps_per_side", "confidence_level", "min_duration_s", "release_hold_s",
         "enter", "release", "kind", "enabled", "low", "high", "bogus"]


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v))
    return json.dumps(v)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    table=st.sampled_from(["asymmetry", "alerts", "alerts.rules.cpd_deg", "alerts.rules.nope", "other"]),
    key=st.sampled_from(_KEYS),
    value=_TOML_VALUES,
)
def test_config_values_give_a_config_or_one_line_error(tmp_path: Path, table: str, key: str, value: object) -> None:
    p = tmp_path / "c.toml"
    p.write_text(f"[{table}]\n{key} = {_toml_value(value)}\n")
    try:
        cfg = load_config(p)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(p) in str(exc)
        return
    assert cfg.asymmetry.window_steps > 0


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300) | st.sampled_from([default_config_text()[:n] for n in (10, 200, 600, 900)]))
def test_arbitrary_config_text(tmp_path: Path, text: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(text, encoding="utf-8")
    try:
        load_config(p)
    except ConfigError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["format", "version", "meta", "metrics", "left", "right", "cpd_deg", "mean", "sd", "n", "n_eff", "rho"]), inner,
        max_size=4),
    max_leaves=12,
))
def test_arbitrary_baseline_json(tmp_path: Path, doc: object) -> None:
    p = tmp_path / "b.json"
    if isinstance(doc, dict) and "format" in doc:
        doc["format"] = "pelvimon-baseline"  # get past the first check, into the metrics
        doc.setdefault("version", 1)
    p.write_text(json.dumps(doc))
    try:
        load_baseline(p)
    except ConfigError as exc:
        assert "\n" not in str(exc)
