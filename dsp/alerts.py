"""Left/right asymmetry alerts with hysteresis and a minimum duration.

An alert starts when a metric's left/right difference is both **credible** (its confidence interval excludes
zero) and **clinically meaningful** (past the rule's threshold), continuously for ``min_duration_s``. It ends
when the difference has been below the lower *release* threshold, or no longer credible, continuously for
``release_hold_s``. The two thresholds and the two hold times keep an alert from flickering when the
difference hovers around a threshold.

Rules (defaults in ``pelvimon/default_config.toml``):

* ``"diff"``: ``|L - R| >= enter`` in the metric's unit (contralateral pelvic drop: 2 deg, release 1.5 deg);
* ``"si"``: ``|symmetry index| >= enter`` in % (10 %, release 7.5 %), and, to start, ``|L - R| >= min_diff`` in
  the metric's unit where a rule sets one (vertical oscillation: 0.5 cm, so that 10 % of a walker's 2-3 cm,
  under the per-step accuracy, raises nothing);
* ``"balance"``: left share of contact time ``100 L / (L + R)`` outside ``[low, high]`` (49.3-50.7 %,
  Garmin-style); released once back inside the band narrowed by ``release_margin`` on each side.

``Alert.side`` is the side the alert points at: for CPD the stance side during which the other hip drops
more (its hip abductors); for the other metrics the side with the larger value. While an alert is active,
"updated" events carry the current figures; the alert that ends (and is recorded) keeps the figures of the
moment it was raised.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from .asymmetry import METRICS, RollingAsymmetry, contact_time_balance_pct
from .records import Alert, Asymmetry, Side

RuleKind = Literal["diff", "si", "balance"]
EventKind = Literal["started", "updated", "ended"]

SIDE_WORD = {"L": "left", "R": "right"}


@dataclass(frozen=True)
class AlertRule:
    """When one metric raises an alert.

    Attributes
    ----------
    metric : str
        ``Step`` field (as in ``Asymmetry.metric``).
    kind : {"diff", "si", "balance"}
        What is compared with the thresholds (see the module docstring).
    enter : float
        Start threshold: ``|L - R|`` (metric unit) for "diff", ``|SI|`` in % for "si"; unused for "balance".
    release : float
        Lower release threshold (hysteresis), ``0 <= release <= enter``; unused for "balance".
    low, high : float
        Normal band of the contact-time balance in %, "balance" only.
    release_margin : float
        The balance must come back inside ``[low + margin, high - margin]`` to release, "balance" only.
    min_diff : float
        "si" only: the smallest ``|L - R|`` (metric unit) that starts an alert (0: none). Release goes by
        the SI alone.
    enabled : bool
        False switches the rule off.
    """

    metric: str
    kind: RuleKind = "si"
    enter: float = 10.0
    release: float = 7.5
    low: float = 49.3
    high: float = 50.7
    release_margin: float = 0.2
    min_diff: float = 0.0
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("diff", "si", "balance"):
            raise ValueError(
                f"alert rule for {self.metric}: kind must be diff, si or balance, got {self.kind!r}"
            )
        if self.kind == "balance":
            if not self.low < self.high:
                raise ValueError(
                    f"alert rule for {self.metric}: low ({self.low}) must be below high ({self.high})"
                )
            if not 0 <= self.release_margin < (self.high - self.low) / 2:
                raise ValueError(
                    f"alert rule for {self.metric}: release_margin must be >= 0 and less than half the band"
                )
        elif not (math.isfinite(self.min_diff) and self.min_diff >= 0):
            raise ValueError(f"alert rule for {self.metric}: min_diff must be >= 0, got {self.min_diff}")
        elif not (self.enter > 0 and 0 <= self.release <= self.enter):
            raise ValueError(
                f"alert rule for {self.metric}: need enter > 0 and 0 <= release <= enter, "
                f"got enter={self.enter}, release={self.release}"
            )

    @property
    def threshold_kind(self) -> str:
        """The ``Alert.threshold_kind`` text: "abs_diff", "si_pct" or "balance_pct"."""
        return {"diff": "abs_diff", "si": "si_pct", "balance": "balance_pct"}[self.kind]


def default_rules() -> dict[str, AlertRule]:
    """The built-in rules: CPD by absolute difference, contact time by balance, the rest by SI."""
    special = {
        "cpd_deg": AlertRule("cpd_deg", kind="diff", enter=2.0, release=1.5),
        "contact_time_s": AlertRule("contact_time_s", kind="balance"),
        # the obliquity range of a step is mostly its pelvic drop, already watched (in degrees) by cpd_deg
        "obliquity_range_deg": AlertRule("obliquity_range_deg", kind="si", enter=10.0, release=7.5, enabled=False),
        # 10 % of a walker's 2-3 cm is under the per-step accuracy (0.5 cm RMSE walking)
        "vertical_oscillation_cm": AlertRule("vertical_oscillation_cm", kind="si", enter=10.0, release=7.5,
                                             min_diff=0.5),
    }
    return {m: special.get(m) or AlertRule(m, kind="si", enter=10.0, release=7.5) for m in METRICS}


@dataclass(frozen=True)
class AlertParams:
    """Timing of the alerts and the rules per metric.

    Attributes
    ----------
    min_duration_s : float
        The start condition must hold this long (s) before an alert starts.
    release_hold_s : float
        The release condition must hold this long (s) before an alert ends.
    stale_s : float
        An active alert whose metric has had no asymmetry (a gap, a stop) for this long ends at the last
        time it was seen.
    rules : mapping of str to AlertRule
        Per metric; metrics without a rule never alert.
    """

    min_duration_s: float = 10.0
    release_hold_s: float = 5.0
    stale_s: float = 30.0
    rules: Mapping[str, AlertRule] = field(default_factory=default_rules)

    def __post_init__(self) -> None:
        for name in ("min_duration_s", "release_hold_s", "stale_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"alerts.{name} must be a number >= 0, got {v}")


@dataclass(frozen=True)
class AlertEvent:
    """What happened to an alert in one ``AlertMonitor.update``: started, updated (new values) or ended.
    ``at_session_end``: ended by :meth:`AlertMonitor.finish` (the session ended, not the difference)."""

    kind: EventKind
    alert: Alert
    at_session_end: bool = False


def _credible(a: Asymmetry) -> bool:
    lo, hi = a.diff_ci_low, a.diff_ci_high
    return math.isfinite(lo) and math.isfinite(hi) and (lo > 0 or hi < 0)


def _value(rule: AlertRule, a: Asymmetry) -> float:
    """The number compared with the thresholds."""
    if rule.kind == "diff":
        return abs(a.diff)
    if rule.kind == "si":
        return abs(a.symmetry_index_pct)
    return contact_time_balance_pct(a)[0]


def start_condition(rule: AlertRule, a: Asymmetry) -> bool:
    """Credible and meaningful: the CI excludes zero and the value is past the start threshold."""
    v = _value(rule, a)
    if not (math.isfinite(v) and _credible(a)):
        return False
    if rule.kind == "balance":
        return v < rule.low or v > rule.high
    return v >= rule.enter and abs(a.diff) >= rule.min_diff


def release_condition(rule: AlertRule, a: Asymmetry) -> bool:
    """No longer credible, or back below the release threshold (inside the narrowed band)."""
    v = _value(rule, a)
    if not (math.isfinite(v) and _credible(a)):
        return True
    if rule.kind == "balance":
        return rule.low + rule.release_margin <= v <= rule.high - rule.release_margin
    return v < rule.release


def worse_side(rule: AlertRule, a: Asymmetry) -> Side:
    """The side an alert points at: the larger mean (the larger CPD, the longer contact time, ...)."""
    return "L" if a.left_mean >= a.right_mean else "R"


_LABELS = {
    "cpd_deg": ("pelvic drop", "°", 1),
    "contact_time_s": ("ground contact time", " ms", 0),
    "step_time_s": ("step time", " ms", 0),
    "flight_time_s": ("flight time", " ms", 0),
    "obliquity_range_deg": ("obliquity range", "°", 1),
    "tilt_range_deg": ("tilt range", "°", 1),
    "rotation_range_deg": ("rotation range", "°", 1),
    "vertical_oscillation_cm": ("vertical oscillation", " cm", 1),
    "impact_g": ("impact", " g", 2),
}


def metric_label(metric: str) -> str:
    """Plain-words name of a metric ("pelvic drop", "ground contact time", ...)."""
    return _LABELS.get(metric, (metric.replace("_", " "), "", 2))[0]


def display_unit(metric: str) -> str:
    """A metric's display unit ("°", "ms", "cm", "g"; "" if unknown)."""
    return _LABELS.get(metric, ("", "", 2))[1].strip()


def display_number(metric: str, value: float, signed: bool = False) -> str:
    """A finite value of a metric in display units (seconds as ms) and digits, without its unit. A signed
    one (a difference, an interval's end) that would round to zero gets up to three more digits, so that an
    interval that excludes zero is not shown as reaching it; zero itself carries no sign."""
    digits = _LABELS[metric][2] if metric in _LABELS else (0 if metric.endswith("_s") else 2 if metric.endswith("_g") else 1)
    if metric.endswith("_s"):
        value = value * 1000.0
    base = digits
    while signed and value != 0.0 and abs(value) < 0.5 * 10.0**-digits and digits < base + 3:
        digits += 1
    text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return f"{0.0:.{digits}f}" if float(text) == 0.0 else text


def format_value(metric: str, value: float) -> str:
    """A metric's value in display units (seconds shown as ms), e.g. ``"8.2°"``, ``"262 ms"``."""
    if not math.isfinite(value):
        return "n/a"
    return display_number(metric, value) + _LABELS.get(metric, ("", "", 2))[1]


def alert_message(rule: AlertRule, a: Asymmetry, side: Side) -> str:
    """A plain-words sentence for an alert on ``a`` pointing at ``side``."""
    m = a.metric
    other = "R" if side == "L" else "L"
    worse, better = (a.left_mean, a.right_mean) if side == "L" else (a.right_mean, a.left_mean)
    if m == "cpd_deg":
        # the difference of the rounded means, so that the sentence adds up
        more = round(worse, 1) - round(better, 1)
        return (
            f"{SIDE_WORD[side].capitalize()} stance: the {SIDE_WORD[other]} hip drops "
            f"{more:.1f}° more than in {SIDE_WORD[other]} stance ({worse:.1f}° vs {better:.1f}°) "
            f"— points at the {SIDE_WORD[side].upper()} hip abductors"
        )
    if rule.kind == "balance":
        bal = contact_time_balance_pct(a)[0]
        return (
            f"Ground contact balance {bal:.1f} % left / {100 - bal:.1f} % right (normal "
            f"{rule.low:g}-{rule.high:g} %): the {SIDE_WORD[side]} foot stays longer on the ground "
            f"({format_value(m, worse)} vs {format_value(m, better)})"
        )
    return (
        f"{metric_label(m).capitalize()}: {SIDE_WORD[side]} {format_value(m, worse)} vs "
        f"{SIDE_WORD[other]} {format_value(m, better)} (symmetry index {a.symmetry_index_pct:+.0f} %, "
        f"threshold {rule.enter:g} %)"
    )


def figures_note(params: AlertParams) -> str:
    """What the figures and times of recorded alerts are, for the tables that list them."""
    return (
        f"from: when the difference began to meet the alert's conditions; the alert was raised "
        f"{params.min_duration_s:g} s later, with the figures shown (those of the rolling window then). "
        f"to: when it fell back (under its release threshold, or back inside the band, for "
        f"{params.release_hold_s:g} s or more), when the other side became the larger, when the data had "
        f"stopped for {params.stale_s:g} s (the last time it was seen), or the end of the session."
    )


def _thresholds(rule: AlertRule, a: Asymmetry) -> tuple[float, float]:
    """(start, release) thresholds of an alert on ``a``: for "balance", the band edge the balance is past."""
    if rule.kind != "balance":
        return rule.enter, rule.release
    if contact_time_balance_pct(a)[0] < rule.low:
        return rule.low, rule.low + rule.release_margin
    return rule.high, rule.high - rule.release_margin


@dataclass
class _State:
    onset_s: float = math.nan  # start condition holding since (s)
    release_s: float = math.nan  # release condition holding since (s)
    last_seen_s: float = math.nan
    active: Alert | None = None  # the current figures
    raised: Alert | None = None  # the figures when it was raised: what ends and is recorded


class AlertMonitor:
    """Streaming alerts from the current asymmetries.

    Parameters
    ----------
    params : AlertParams, optional
        Timing and rules.

    Attributes
    ----------
    active_ : dict of str to Alert
        Active alerts by metric (``t_end_s`` None).
    history_ : list of Alert
        Ended alerts, in the order they ended.
    """

    def __init__(self, params: AlertParams | None = None) -> None:
        self.params = params if params is not None else AlertParams()
        self._state: dict[str, _State] = {}
        self.active_: dict[str, Alert] = {}
        self.history_: list[Alert] = []

    def _build(self, rule: AlertRule, a: Asymmetry, t_start_s: float) -> Alert:
        side = worse_side(rule, a)
        enter, release = _thresholds(rule, a)
        return Alert(
            metric=a.metric,
            side=side,
            left_value=a.left_mean,
            right_value=a.right_mean,
            threshold=enter,
            release_threshold=release,
            threshold_kind=rule.threshold_kind,
            t_start_s=t_start_s,
            t_end_s=None,
            message=alert_message(rule, a, side),
        )

    def _update(self, rule: AlertRule, a: Asymmetry, st: _State) -> Alert:
        """The active alert with the current figures; its thresholds stay those it was raised with (a
        balance alert keeps the band edge it crossed while the balance wanders back)."""
        r = st.raised
        assert r is not None
        return replace(self._build(rule, a, r.t_start_s), threshold=r.threshold, release_threshold=r.release_threshold)

    def _raise(self, metric: str, st: _State, alert: Alert) -> None:
        st.active = st.raised = alert
        st.release_s = math.nan
        self.active_[metric] = alert

    def _end(self, metric: str, st: _State, t_end_s: float, at_session_end: bool = False) -> AlertEvent:
        raised = st.raised if st.raised is not None else self.active_[metric]
        ended = replace(raised, t_end_s=float(t_end_s))
        self.history_.append(ended)
        self.active_.pop(metric, None)
        st.active = st.raised = None
        st.onset_s = st.release_s = math.nan
        return AlertEvent("ended", ended, at_session_end)

    def update(self, asymmetries: Iterable[Asymmetry], t_s: float) -> list[AlertEvent]:
        """Take the current asymmetries at time ``t_s`` (s) and return what started, changed or ended.

        Metrics missing from ``asymmetries`` (not enough steps, windows reset at a gap) give no evidence:
        a pending start is cancelled, an active alert is held and ends after ``stale_s`` without data.
        """
        p = self.params
        t_s = float(t_s)
        events: list[AlertEvent] = []
        seen = set()
        for a in asymmetries:
            rule = p.rules.get(a.metric)
            if rule is None or not rule.enabled:
                continue
            seen.add(a.metric)
            st = self._state.setdefault(a.metric, _State())
            st.last_seen_s = t_s
            if st.active is None:
                if start_condition(rule, a):
                    if math.isnan(st.onset_s):
                        st.onset_s = t_s
                    if t_s - st.onset_s >= p.min_duration_s:
                        self._raise(a.metric, st, self._build(rule, a, st.onset_s))
                        events.append(AlertEvent("started", st.raised))  # type: ignore[arg-type]
                else:
                    st.onset_s = math.nan
                continue
            # active alert
            side_flipped = worse_side(rule, a) != st.active.side
            if release_condition(rule, a) or side_flipped:
                if math.isnan(st.release_s):
                    st.release_s = t_s
                if t_s - st.release_s >= p.release_hold_s or side_flipped:
                    events.append(self._end(a.metric, st, st.release_s))
                continue
            st.release_s = math.nan
            new = self._update(rule, a, st)
            if (new.left_value, new.right_value) != (st.active.left_value, st.active.right_value):
                st.active = new
                self.active_[a.metric] = new
                events.append(AlertEvent("updated", new))
        events += self._expire_unseen(seen, t_s)
        return events

    def _expire_unseen(self, seen: set[str], t_s: float) -> list[AlertEvent]:
        """The metrics without an asymmetry at ``t_s`` (not in ``seen``): a pending start is cancelled, an
        active alert ends once it has had no data for ``stale_s``."""
        events = []
        for metric, st in self._state.items():
            if metric in seen:
                continue
            st.onset_s = math.nan
            if st.active is not None and t_s - st.last_seen_s >= self.params.stale_s:
                events.append(self._end(metric, st, st.last_seen_s))
        return events

    def update_columns(self, rolling: RollingAsymmetry, t_s: Sequence[float]) -> None:
        """:meth:`update` with ``rolling[k]`` at ``t_s[k]`` for every ``k`` in order, read from the columns
        of a :class:`~pelvimon.dsp.asymmetry.RollingAsymmetry`: the conditions are evaluated for all entries
        at once and records are built only for the alerts. The state and the alerts afterwards are those
        of the step-by-step calls (tested); the events are not returned."""
        p = self.params
        metrics = rolling.metrics
        c = rolling.columns
        n_pairs = rolling.keep.shape[0]
        rules = [p.rules.get(m) for m in metrics]
        use = np.array([r is not None and r.enabled for r in rules], dtype=bool)
        start = np.zeros(rolling.keep.shape, dtype=bool)
        release = np.ones(rolling.keep.shape, dtype=bool)
        ml, mr = c["ml"], c["mr"]
        with np.errstate(invalid="ignore", divide="ignore"):
            credible = np.isfinite(c["lo"]) & np.isfinite(c["hi"]) & ((c["lo"] > 0) | (c["hi"] < 0))
            for j, rule in enumerate(rules):
                if rule is None or not rule.enabled:
                    continue
                if rule.kind == "diff":
                    v = np.abs(c["diff"][:, j])
                elif rule.kind == "si":
                    v = np.abs(c["si"][:, j])
                else:  # contact_time_balance_pct, element for element
                    total = ml[:, j] + mr[:, j]
                    v = np.where(np.isfinite(total) & (total > 0), 100.0 * ml[:, j] / total, np.nan)
                ok = np.isfinite(v) & credible[:, j]
                if rule.kind == "balance":
                    start[:, j] = ok & ((v < rule.low) | (v > rule.high))
                    inside = (rule.low + rule.release_margin <= v) & (v <= rule.high - rule.release_margin)
                    release[:, j] = ~ok | inside
                else:
                    start[:, j] = ok & (v >= rule.enter) & (np.abs(c["diff"][:, j]) >= rule.min_diff)
                    release[:, j] = ~ok | (v < rule.release)
        present_mask = rolling.keep & use[None, :]
        present = [np.flatnonzero(present_mask[j]).tolist() for j in range(n_pairs)]
        start_l, release_l = start.tolist(), release.tolist()
        left_worse = (ml >= mr).tolist()
        ml_l, mr_l = ml.tolist(), mr.tolist()

        def record(j: int, m: int) -> Asymmetry:
            return next(a for a in rolling.pair_records(j) if a.metric == metrics[m])

        nan = math.nan
        for j, t in zip(rolling.slot.tolist(), t_s, strict=True):
            t = float(t)
            seen = set()
            for m in present[j] if j >= 0 else ():
                metric, rule = metrics[m], rules[m]
                seen.add(metric)
                st = self._state.setdefault(metric, _State())
                st.last_seen_s = t
                if st.active is None:
                    if start_l[j][m]:
                        if math.isnan(st.onset_s):
                            st.onset_s = t
                        if t - st.onset_s >= p.min_duration_s:
                            self._raise(metric, st, self._build(rule, record(j, m), st.onset_s))  # type: ignore[arg-type]
                    else:
                        st.onset_s = nan
                    continue
                side_flipped = ("L" if left_worse[j][m] else "R") != st.active.side
                if release_l[j][m] or side_flipped:
                    if math.isnan(st.release_s):
                        st.release_s = t
                    if t - st.release_s >= p.release_hold_s or side_flipped:
                        self._end(metric, st, st.release_s)
                    continue
                st.release_s = nan
                if (ml_l[j][m], mr_l[j][m]) != (st.active.left_value, st.active.right_value):
                    st.active = self._update(rule, record(j, m), st)  # type: ignore[arg-type]
                    self.active_[metric] = st.active
            self._expire_unseen(seen, t)

    def finish(self, t_s: float) -> list[AlertEvent]:
        """End every active alert at ``t_s`` (the end of the session)."""
        return [self._end(m, st, float(t_s), True) for m, st in self._state.items() if st.active is not None]

    def all_alerts(self) -> list[Alert]:
        """Ended alerts followed by the still active ones, by start time."""
        return sorted([*self.history_, *self.active_.values()], key=lambda al: (al.t_start_s, al.metric))
