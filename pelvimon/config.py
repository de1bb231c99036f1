"""Configuration (asymmetry windows, alert thresholds) and per-runner baselines.

The defaults live in ``pelvimon/default_config.toml`` (shipped with the package). A user file passed with
``--config FILE`` only needs the keys it changes; it is merged over the defaults and validated, and every
error is one line naming the file and the key.

A *baseline* is one session's per-side summary (mean, SD, number of steps and effective number of steps
per metric) saved as JSON with ``pelvimon analyze --save-baseline FILE``; ``--baseline FILE`` compares a
later session against it.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pelvimon.dsp.alerts import RULE_KEYS, AlertParams, AlertRule
from pelvimon.dsp.asymmetry import METRICS, AsymmetryParams, SideStats
from pelvimon.errors import PelvimonError
from pelvimon.file_kinds import BASELINE_FORMAT

DEFAULT_CONFIG_NAME = "default_config.toml"
BASELINE_VERSION = 2
"""2: vertical oscillation over exactly one stride (version 1 files read about 0.3 cm high in running: their
vertical oscillation is left out of comparisons, with a note)."""


class ConfigError(PelvimonError):
    """A configuration or baseline file is wrong. The message names the file and the key."""


@dataclass(frozen=True)
class Config:
    """Validated settings of the analysis.

    Attributes
    ----------
    asymmetry : AsymmetryParams
    alerts : AlertParams
    sources : tuple of str
        Where the settings came from (the defaults, then the user file if any).
    """

    asymmetry: AsymmetryParams = field(default_factory=AsymmetryParams)
    alerts: AlertParams = field(default_factory=AlertParams)
    sources: tuple[str, ...] = ("defaults",)


def default_config_text() -> str:
    """The text of the shipped default configuration file."""
    return resources.files("pelvimon").joinpath(DEFAULT_CONFIG_NAME).read_text(encoding="utf-8")


# key -> (python types accepted, converter); the value types a user may write
_ASYM_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "window_steps": ((int,), "an integer"),
    "window_s": ((int, float), "a number"),
    "min_steps_per_side": ((int,), "an integer"),
    "confidence_level": ((int, float), "a number"),
    "min_laterality_confidence": ((int, float), "a number"),
    "max_step_interval_s": ((int, float), "a number"),
    "autocorrelation": ((str,), "a string"),
    "max_autocorrelation": ((int, float), "a number"),
}
_MAX_COUNT = {"window_steps": 1000}
"""Upper bounds of the settings that size buffers. ``window_steps``: the steps kept per side in the rolling
windows; the offline analysis holds windows of this many steps for every step of the session (an hour of
running with 1000-step windows takes about 0.6 GB; ``min_steps_per_side`` is bounded by it)."""
_ALERT_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "min_duration_s": ((int, float), "a number"),
    "release_hold_s": ((int, float), "a number"),
    "stale_s": ((int, float), "a number"),
}
_RULE_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "kind": ((str,), "a string"),
    "enter": ((int, float), "a number"),
    "release": ((int, float), "a number"),
    "low": ((int, float), "a number"),
    "high": ((int, float), "a number"),
    "release_margin": ((int, float), "a number"),
    "min_diff": ((int, float), "a number"),
    "enabled": ((bool,), "true or false"),
}


_KIND_UNITS = {"diff": "the metric's own unit", "si": "% (symmetry index)"}
_BALANCE_METRIC = "contact_time_s"
"""The metric a "balance" rule compares (the left share of contact time; no other metric has one)."""


def _check_rule_keys(where: str, user: dict[str, Any], defaults: dict[str, Any], merged: dict[str, Any]) -> None:
    """Refuse a threshold the user set on a rule whose kind (the user's, or the default's) does not read it
    (it would have no effect); a "balance" rule on a metric other than contact time; and a kind changed
    from the default's without the thresholds of the new kind (the default's are in another unit: a CPD
    rule turned from "diff" to "si" would otherwise alert at an SI of 2 %)."""
    for metric, rule in user.get("alerts", {}).get("rules", {}).items():
        kind = merged["alerts"]["rules"][metric].get("kind", "si")
        takes = RULE_KEYS.get(kind)
        if takes is None:
            continue  # (an unknown kind is refused with its own message)
        for key in rule:
            if key not in takes | {"kind", "enabled"}:
                raise ConfigError(
                    f"{where}: alerts.rules.{metric}.{key} has no effect on a '{kind}' rule, which reads "
                    f"{', '.join(sorted(takes))}; remove it, or set the rule's kind"
                )
        if kind == "balance" and metric != _BALANCE_METRIC:
            raise ConfigError(
                f"{where}: alerts.rules.{metric}.kind = 'balance' compares the left share of contact time, which "
                f"only {_BALANCE_METRIC} has; use 'diff' or 'si' for {metric}"
            )
        was = defaults["alerts"]["rules"].get(metric, {}).get("kind", "si")
        missing = [k for k in ("enter", "release") if k not in rule]
        if kind != was and kind in _KIND_UNITS and missing:
            raise ConfigError(
                f"{where}: alerts.rules.{metric} is a '{kind}' rule here but '{was}' by default, so its thresholds "
                f"count in {_KIND_UNITS[kind]}; set {' and '.join(missing)} for it too"
            )


def _check_table(where: str, key: str, value: Any, allowed: dict[str, tuple[tuple[type, ...], str]]) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: '{key}' must be a table ([{key}])")
    for k, v in value.items():
        full = f"{key}.{k}"
        if k not in allowed:
            raise ConfigError(f"{where}: unknown key '{full}' (known: {', '.join(sorted(allowed))})")
        types, what = allowed[k]
        ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
        if ok and isinstance(v, float) and not math.isfinite(v):
            ok = False
        if not ok:
            raise ConfigError(f"{where}: '{full}' must be {what}, got {v!r}")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _validate_shape(where: str, data: dict[str, Any]) -> None:
    for key in data:
        if key not in ("asymmetry", "alerts"):
            raise ConfigError(f"{where}: unknown key '{key}' (known: alerts, asymmetry)")
    if "asymmetry" in data:
        _check_table(where, "asymmetry", data["asymmetry"], _ASYM_KEYS)
    if "alerts" in data:
        alerts = data["alerts"]
        if not isinstance(alerts, dict):
            raise ConfigError(f"{where}: 'alerts' must be a table ([alerts])")
        rules = alerts.get("rules", {})
        _check_table(where, "alerts", {k: v for k, v in alerts.items() if k != "rules"}, _ALERT_KEYS)
        if not isinstance(rules, dict):
            raise ConfigError(f"{where}: 'alerts.rules' must be a table")
        for metric, rule in rules.items():
            if metric not in METRICS:
                raise ConfigError(
                    f"{where}: unknown metric 'alerts.rules.{metric}' (known: {', '.join(METRICS)})"
                )
            _check_table(where, f"alerts.rules.{metric}", rule, _RULE_KEYS)


def _build(data: dict[str, Any], where: str, sources: tuple[str, ...]) -> Config:
    a = data["asymmetry"]
    for k, limit in _MAX_COUNT.items():
        if isinstance(a[k], int) and a[k] > limit:
            raise ConfigError(f"{where}: asymmetry.{k} must be at most {limit}, got {a[k]}")
    if a["window_s"] < 0:
        raise ConfigError(f"{where}: asymmetry.window_s must be >= 0 s (0 = no time limit), got {a['window_s']!r}")
    try:
        window_s = float(a["window_s"])
        asym = AsymmetryParams(
            window_steps=a["window_steps"],
            window_s=window_s if window_s > 0 else None,
            min_steps_per_side=a["min_steps_per_side"],
            level=float(a["confidence_level"]),
            min_laterality_confidence=float(a["min_laterality_confidence"]),
            max_step_interval_s=float(a["max_step_interval_s"]),
            autocorrelation=a["autocorrelation"],
            max_autocorrelation=float(a["max_autocorrelation"]),
        )
    except ValueError as exc:
        msg = str(exc).replace("level must", "confidence_level must")
        raise ConfigError(f"{where}: asymmetry.{msg}") from None
    al = data["alerts"]
    rules: dict[str, AlertRule] = {}
    for metric, r in al.get("rules", {}).items():
        kw: dict[str, Any] = {
            k: (float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v)
            for k, v in r.items()
        }
        try:
            rules[metric] = AlertRule(metric=metric, **kw)
        except ValueError as exc:
            msg = str(exc).removeprefix(f"alert rule for {metric}: ")  # (the key below names the rule)
            raise ConfigError(f"{where}: alerts.rules.{metric}: {msg}") from None
    try:
        alerts = AlertParams(
            min_duration_s=float(al["min_duration_s"]),
            release_hold_s=float(al["release_hold_s"]),
            stale_s=float(al["stale_s"]),
            rules=rules,
        )
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return Config(asymmetry=asym, alerts=alerts, sources=sources)


def _parse_toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None


def _read_text(path: str | Path, what: str, expected: str) -> str:
    """The text of a UTF-8 file (a leading byte order mark is dropped); one-line ``ConfigError`` if its name
    is empty, or it is missing, a folder, unreadable or not text."""
    if not str(path).strip():  # (before Path(): Path("") is the current folder)
        raise ConfigError(f"the {what} name is empty; give {expected}")
    p = Path(path)
    where = str(p)
    try:
        return p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {where}; check the path (give {expected})") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {where} is a directory; give {expected}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {where} is not a text file (not UTF-8); give {expected}") from None
    except OSError as exc:
        if p.is_dir():  # Windows says "permission denied" for a folder
            raise ConfigError(f"{what} {where} is a directory; give {expected}") from None
        raise ConfigError(f"cannot read {what} {where}: {exc.strerror or exc}") from None


def load_config(path: str | Path | None = None) -> Config:
    """The defaults, with the user file at ``path`` (TOML) merged over them when given.

    Raises
    ------
    ConfigError
        File missing or unreadable, not TOML, an unknown key, a wrong type or a value out of range (one
        line naming the file and the key).
    """
    defaults = _parse_toml(default_config_text(), DEFAULT_CONFIG_NAME)
    _validate_shape(DEFAULT_CONFIG_NAME, defaults)
    if path is None:
        return _build(defaults, DEFAULT_CONFIG_NAME, ("defaults",))
    p = Path(path)
    where = str(p)
    text = _read_text(path, "config file", "a TOML file")
    user = _parse_toml(text, where)
    _validate_shape(where, user)
    merged = _merge(defaults, user)
    _check_rule_keys(where, user, defaults, merged)
    return _build(merged, where, ("defaults", where))


# --- baselines ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """A saved per-side summary of one session: ``stats[metric] = (left, right)``, plus metadata."""

    stats: dict[str, tuple[SideStats, SideStats]]
    meta: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """What the comparison should say about this baseline (not saved: found when it is read)."""


def _num(v: float | int) -> float | int | None:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def save_baseline(path: str | Path, baseline: Baseline) -> None:
    """Write ``baseline`` as JSON (NaN as null)."""
    doc = {
        "format": BASELINE_FORMAT,
        "version": BASELINE_VERSION,
        "meta": baseline.meta,
        "metrics": {
            m: {
                side: {k: _num(v) for k, v in s.to_dict().items()}
                for side, s in zip(("left", "right"), lr, strict=True)
            }
            for m, lr in baseline.stats.items()
        },
    }
    from pelvimon.outputs import write_output

    write_output(path, json.dumps(doc, indent=2, allow_nan=False) + "\n", "baseline")


_PLAUSIBLE = 1e6
"""Largest mean or standard deviation a baseline may hold, in its metric's unit (deg, s, cm, g, steps/min:
a session's are all far below it); a larger one can only be a damaged or hand-made file."""


def check_side_values(where: str, key: str, vals: dict[str, float | int]) -> None:
    """Refuse per-side baseline values that cannot come from a session (``ConfigError``, one line).

    ``n`` is a whole number >= 0; ``mean`` within ±:data:`_PLAUSIBLE`, NaN exactly when ``n`` is 0 (no
    values); ``sd`` in 0-:data:`_PLAUSIBLE` or NaN; ``rho`` (a
    correlation) in [-1, 1]; ``n_eff`` >= 0. Any of them out of range would silently change the confidence
    interval of the comparison.
    """
    n, mean, sd, rho, n_eff = (vals[k] for k in ("n", "mean", "sd", "rho", "n_eff"))
    if not (math.isfinite(n) and n >= 0 and float(n).is_integer()):
        raise ConfigError(f"{where}: '{key}.n' must be a whole number >= 0 (a number of steps), got {n!r}")
    if not (math.isnan(mean) or abs(mean) <= _PLAUSIBLE):
        raise ConfigError(f"{where}: '{key}.mean' must be a number within ±{_PLAUSIBLE:g}, got {mean!r}")
    if (n == 0) != math.isnan(mean):
        raise ConfigError(
            f"{where}: '{key}' has n = {n!r} and mean = {mean!r}; a side without steps has no mean (null), one "
            "with steps has one"
        )
    if not (math.isnan(sd) or 0 <= sd <= _PLAUSIBLE):
        raise ConfigError(f"{where}: '{key}.sd' must be between 0 and {_PLAUSIBLE:g} (a standard deviation), got {sd!r}")
    if not (math.isfinite(rho) and -1 <= rho <= 1):
        raise ConfigError(f"{where}: '{key}.rho' must be between -1 and 1 (a correlation), got {rho!r}")
    if not (math.isfinite(n_eff) and n_eff >= 0):
        raise ConfigError(f"{where}: '{key}.n_eff' must be >= 0 (an effective number of steps), got {n_eff!r}")


def _side_from(where: str, key: str, d: Any) -> SideStats:
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: '{key}' must be an object")
    vals = {}
    for k in ("n", "mean", "sd", "rho", "n_eff"):
        v = d.get(k, "missing")
        if v is None and k in ("mean", "sd"):
            v = math.nan  # written as null when a side had no values
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ConfigError(f"{where}: '{key}.{k}' must be a number")
        vals[k] = v
    check_side_values(where, key, vals)
    return SideStats(
        n=int(vals["n"]),
        mean=float(vals["mean"]),
        sd=float(vals["sd"]),
        rho=float(vals["rho"]),
        n_eff=float(vals["n_eff"]),
    )


def load_baseline(path: str | Path) -> Baseline:
    """Read a baseline written by ``save_baseline``; one-line ``ConfigError`` on any problem."""
    where = str(path)
    text = _read_text(path, "baseline file", "a baseline JSON file written by --save-baseline")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not a pelvimon baseline (invalid JSON at line {exc.lineno})") from None
    if not isinstance(doc, dict) or doc.get("format") != BASELINE_FORMAT:
        raise ConfigError(f'{where}: not a pelvimon baseline (missing "format": "{BASELINE_FORMAT}")')
    if doc.get("version") not in (1, BASELINE_VERSION):
        raise ConfigError(
            f"{where}: baseline version {doc.get('version')!r} not supported (expected 1 or {BASELINE_VERSION})"
        )
    metrics = doc.get("metrics")
    if not isinstance(metrics, dict):
        raise ConfigError(f"{where}: 'metrics' must be an object")
    stats: dict[str, tuple[SideStats, SideStats]] = {}
    for m, lr in metrics.items():
        if m not in METRICS:
            raise ConfigError(f"{where}: unknown metric 'metrics.{m}'")
        if not isinstance(lr, dict):
            raise ConfigError(f"{where}: 'metrics.{m}' must be an object")
        stats[m] = (
            _side_from(where, f"metrics.{m}.left", lr.get("left")),
            _side_from(where, f"metrics.{m}.right", lr.get("right")),
        )
    meta = doc.get("meta")
    notes = []
    if doc["version"] == 1 and stats.pop("vertical_oscillation_cm", None) is not None:
        notes.append("the baseline was saved before vertical oscillation was measured over exactly one stride "
                     "(it read about 0.3 cm high): vertical oscillation is left out")
    return Baseline(stats=stats, meta=meta if isinstance(meta, dict) else {}, notes=notes)
