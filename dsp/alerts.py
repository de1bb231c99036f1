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

RULE_KEYS: dict[str, frozenset[str]] = {
    "diff": frozenset({"enter", "release", "min_diff"}),
    "si": frozenset({"enter", "release", "min_diff"}),
    "balance": frozenset({"low", "high", "release_margin"}),
}
"""The thresholds of :class:`AlertRule` that each kind reads (every rule also has ``kind`` and ``enabled``)."""
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
        "si" (and "diff", where only a value above ``enter`` adds to it): the smallest ``|L - R|`` (metric
        unit) that starts an alert (0: none). Release goes by the SI alone.
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
            if not 0 <= self.low < 50 < self.high <= 100:
                raise ValueError(
                    f"alert rule for {self.metric}: need 0 <= low < 50 < high <= 100 (a band of left shares in %, "
                    f"around an even 50 %), got low={self.low}, high={self.high}"
                )
            if not 0 <= self.release_margin < (self.high - self.low) / 2:
                raise ValueError(
                    f"alert rule for {self.metric}: release_margin must be >= 0 and less than half the band "
                    f"({(self.high - self.low) / 2:g}), got {self.release_margin}"
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


def worse_side(left_mean: float, right_mean: float) -> Side:
    """The side an alert points at: the larger mean (the larger CPD, the longer contact time, ...)."""
    return "L" if left_mean >= right_mean else "R"


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


def _display_digits(metric: str, value: float, signed: bool) -> tuple[float, int, int]:
    """(the value in display units, the metric's own digits, the digits it is shown with)."""
    digits = _LABELS[metric][2] if metric in _LABELS else (0 if metric.endswith("_s") else 2 if metric.endswith("_g") else 1)
    if metric.endswith("_s"):
        value = value * 1000.0
    base = digits
    while signed and value != 0.0 and abs(value) < 0.5 * 10.0**-digits and digits < base + 3:
        digits += 1
    return value, base, digits


def display_number(metric: str, value: float, signed: bool = False, digits: int | None = None) -> str:
    """A finite value of a metric in display units (seconds as ms) and digits, without its unit. A signed
    one (a difference, an interval's end) that would round to zero gets up to three more digits, so that an
    interval that excludes zero is not shown as reaching it; zero itself carries no sign. ``digits``: shown
    with these instead (:func:`display_interval`)."""
    value, base, own = _display_digits(metric, value, signed)
    if digits is not None:
        base = own = digits
    text = f"{value:+.{own}f}" if signed else f"{value:.{own}f}"
    return f"{0.0:.{base}f}" if float(text) == 0.0 else text  # (zero even so: at the metric's own digits)


def interval_digits(metric: str, *values: float | None) -> int:
    """The digits of signed values shown together, a difference and its interval's ends: those the finite one
    that needs the most takes alone (:func:`display_number`), so that "+0.2 [-0.9, +1.3]" is not
    "+0.2 [-1, +1]"."""
    return max((_display_digits(metric, v, True)[2] for v in values if v is not None and math.isfinite(v)),
               default=0)


def display_interval(metric: str, *values: float) -> list[str]:
    """Signed values shown together with :func:`interval_digits`; "n/a" for a value that is not finite."""
    digits = interval_digits(metric, *values)
    return [display_number(metric, v, True, digits) if math.isfinite(v) else "n/a" for v in values]


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


def _conditions(rolling: RollingAsymmetry, rules: Sequence[AlertRule | None]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`start_condition` and :func:`release_condition` of every entry of ``rolling`` (P, M), element
    for element; ``rules`` per metric (None or disabled: no alerts, both False/True).

    The difference intervals (a t quantile each, the costly part) are computed only where the value is past
    the release threshold (outside the narrowed band): elsewhere neither condition depends on them.
    """
    keep = rolling.keep
    start = np.zeros(keep.shape, dtype=bool)
    release = np.ones(keep.shape, dtype=bool)
    need = np.zeros(keep.shape, dtype=bool)
    ml, mr, diff = rolling.column("ml"), rolling.column("mr"), rolling.column("diff")
    values: list[tuple[np.ndarray, np.ndarray] | None] = []  # per metric: the value, inside the band
    with np.errstate(invalid="ignore", divide="ignore"):
        for j, rule in enumerate(rules):
            if rule is None or not rule.enabled:
                values.append(None)
                continue
            if rule.kind == "diff":
                v = np.abs(diff[:, j])
            elif rule.kind == "si":
                v = np.abs(rolling.column("si")[:, j])
            else:  # contact_time_balance_pct, element for element
                total = ml[:, j] + mr[:, j]
                v = np.where(np.isfinite(total) & (total > 0), 100.0 * ml[:, j] / total, np.nan)
            if rule.kind == "balance":
                inside = (rule.low + rule.release_margin <= v) & (v <= rule.high - rule.release_margin)
                need[:, j] = keep[:, j] & np.isfinite(v) & ~inside
            else:
                inside = v < rule.release
                need[:, j] = keep[:, j] & (v >= rule.release)
            values.append((v, inside))
        lo, hi = rolling.bounds(need)
        credible = np.isfinite(lo) & np.isfinite(hi) & ((lo > 0) | (hi < 0))
        for j, (rule, vi) in enumerate(zip(rules, values, strict=True)):
            if rule is None or vi is None:
                continue
            v, inside = vi
            ok = np.isfinite(v) & credible[:, j]
            release[:, j] = ~ok | inside
            if rule.kind == "balance":
                start[:, j] = ok & ((v < rule.low) | (v > rule.high))
            else:
                start[:, j] = ok & (v >= rule.enter) & (np.abs(diff[:, j]) >= rule.min_diff)
    return start, release


def _record(rolling: RollingAsymmetry, pair: int, metric: str) -> Asymmetry:
    """The record of ``metric`` in window pair ``pair`` of ``rolling``."""
    return next(a for a in rolling.pair_records(pair) if a.metric == metric)


@dataclass(eq=False)
class _MetricWalk:
    """One metric's columns per step for :meth:`AlertMonitor.update_columns` (shape (K,) each; the entries
    of steps without the metric are not read), and the search for the start of an alert."""

    present: np.ndarray  # the metric has an asymmetry after the step
    start: np.ndarray  # the start condition holds
    release: np.ndarray  # the release condition holds
    left: np.ndarray  # left mean
    right: np.ndarray  # right mean
    row: np.ndarray  # window pair of the step
    t: np.ndarray  # time of the step, s
    t_list: list[float]  # the same as Python floats
    column: int  # of the metric in the rolling asymmetry (-1: none)
    state_pos: int  # of the metric's state in AlertMonitor._state
    min_duration_s: float

    def __post_init__(self) -> None:
        on = self.present & self.start
        n = on.size
        self._on = on
        first = on & ~np.concatenate(([False], on[:-1]))
        self._run_start = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else np.zeros(0, np.int64)
        # where an alert starts if no alert is active and no onset was pending before its run of start steps
        self._starts = np.flatnonzero(on & (self.t - self.t[self._run_start] >= self.min_duration_s))

    def next_start(self, k0: int, onset_s: float) -> tuple[int, float]:
        """The first step from ``k0`` on where an alert starts, with its onset (s), when none is active
        before ``k0`` and the start condition has held since ``onset_s`` (NaN: it has not); or -1 and the
        onset pending after the last step (NaN for none)."""
        on, t, n = self._on, self.t, self._on.size
        if k0 >= n:
            return -1, onset_s
        if on[k0]:
            # the run of start steps through k0 goes on from the pending onset, or begins one
            stop = n if on[k0:].all() else k0 + int(np.argmin(on[k0:]))
            if math.isnan(onset_s):
                onset_s = self.t_list[k0]
            hit = np.flatnonzero(t[k0:stop] - onset_s >= self.min_duration_s)
            if hit.size:
                return k0 + int(hit[0]), onset_s
            if stop == n:
                return -1, onset_s
            k0 = stop
        # the step k0 ends any pending onset; each later run begins its own
        i = int(np.searchsorted(self._starts, k0 + 1))
        if i < self._starts.size:
            k = int(self._starts[i])
            return k, self.t_list[int(self._run_start[k])]
        if on[n - 1] and self._run_start[n - 1] > k0:
            return -1, self.t_list[int(self._run_start[n - 1])]
        return -1, math.nan


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

    def _build(
        self, rule: AlertRule, a: Asymmetry, t_start_s: float, thresholds: tuple[float, float] | None = None
    ) -> Alert:
        """The alert of ``a``; ``thresholds`` (enter, release): those it keeps (default: the rule's for ``a``)."""
        side = worse_side(a.left_mean, a.right_mean)
        enter, release = _thresholds(rule, a) if thresholds is None else thresholds
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
        return self._build(rule, a, r.t_start_s, (r.threshold, r.release_threshold))

    def _raise(self, metric: str, st: _State, alert: Alert) -> None:
        st.active = st.raised = alert
        st.release_s = math.nan
        self.active_[metric] = alert

    def _end(self, metric: str, st: _State, t_end_s: float, at_session_end: bool = False) -> AlertEvent:
        ended = self._ended(metric, st, t_end_s)
        self.history_.append(ended)
        return AlertEvent("ended", ended, at_session_end)

    def _ended(self, metric: str, st: _State, t_end_s: float) -> Alert:
        """End the active alert of ``metric`` at ``t_end_s``: its state cleared, the ended alert returned
        (for the history)."""
        assert st.raised is not None  # (set with ``active`` when the alert was raised)
        ended = replace(st.raised, t_end_s=float(t_end_s))
        self.active_.pop(metric, None)
        st.active = st.raised = None
        st.onset_s = st.release_s = math.nan
        return ended

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
            side_flipped = worse_side(a.left_mean, a.right_mean) != st.active.side
            if release_condition(rule, a) or side_flipped:
                if math.isnan(st.release_s):
                    st.release_s = t_s
                if t_s - st.release_s >= p.release_hold_s or side_flipped:
                    events.append(self._end(a.metric, st, st.release_s))
                continue
            st.release_s = math.nan
            if (a.left_mean, a.right_mean) != (st.active.left_value, st.active.right_value):
                new = self._update(rule, a, st)
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
        of a :class:`~pelvimon.dsp.asymmetry.RollingAsymmetry`. The state and the alerts afterwards are those
        of the step-by-step calls (tested); the events are not returned.

        Each metric's alert has a state of its own, so the metrics are taken one after the other: the
        conditions of all entries at once (:func:`_conditions`), the steps without an active alert searched
        for its start as arrays (:meth:`_MetricWalk.next_start`), the steps of an active alert walked one by
        one. Records are built only for the alerts, and an active alert's current figures once, from its
        last update.
        """
        p = self.params
        metrics = rolling.metrics
        t_list = [float(t) for t in t_s]
        if len(t_list) != len(rolling):
            raise ValueError(f"update_columns: {len(t_list)} times for {len(rolling)} entries")
        if not all(map(math.isfinite, t_list)):
            # a NaN time: step by step an alert's unknown onset is taken at the next update, which the
            # array search for starts does not model
            for k, t_k in enumerate(t_list):
                self.update(rolling[k], t_k)
            return
        rules = [p.rules.get(m) for m in metrics]
        start, release = _conditions(rolling, rules)
        ml, mr = rolling.column("ml"), rolling.column("mr")
        row = np.maximum(rolling.slot, 0)

        def per_step(x: np.ndarray, j: int) -> np.ndarray:
            """Column ``j`` of a (P, M) array at the window pair of each step, (K,) (zeros for no pairs or no
            column, ``j`` -1: entries that are not read)."""
            return x[row, j] if x.shape[0] and j >= 0 else np.zeros(row.shape, dtype=x.dtype)

        present = {
            m: (rolling.slot >= 0) & per_step(rolling.keep, j)
            for j, (m, rule) in enumerate(zip(metrics, rules, strict=True))
            if rule is not None and rule.enabled
        }
        # the metrics in the order update() gives them a state: those that have one, then by first presence
        first = sorted((int(np.argmax(pres)), metrics.index(m), m) for m, pres in present.items() if pres.any())
        names = [*self._state, *(m for _, _, m in first if m not in self._state)]
        t = np.array(t_list, dtype=np.float64)
        no_data = np.zeros(len(t_list), dtype=bool)
        ended: list[tuple[tuple[int, int, int], Alert]] = []
        raised: list[tuple[tuple[int, int, int], str]] = []
        for pos, metric in enumerate(names):
            st = self._state.setdefault(metric, _State())
            j = metrics.index(metric) if metric in present else -1
            walk = _MetricWalk(
                present=present.get(metric, no_data),
                start=per_step(start, j),
                release=per_step(release, j),
                left=per_step(ml, j),
                right=per_step(mr, j),
                row=row,
                t=t,
                t_list=t_list,
                column=j,
                state_pos=pos,
                min_duration_s=p.min_duration_s,
            )
            ends, raise_key = self._walk(rolling, metric, rules[j] if j >= 0 else None, st, walk)
            ended += ends
            if ends or raise_key is not None:
                self.active_.pop(metric, None)  # (back below in the order of the starts if still active)
                if raise_key is not None and st.active is not None:
                    raised.append((raise_key, metric))
            elif st.active is not None:
                self.active_[metric] = st.active
        self.history_ += [al for _, al in sorted(ended, key=lambda e: e[0])]
        for _, metric in sorted(raised):
            active = self._state[metric].active
            assert active is not None
            self.active_[metric] = active

    def _walk(
        self, rolling: RollingAsymmetry, metric: str, rule: AlertRule | None, st: _State, w: _MetricWalk
    ) -> tuple[list[tuple[tuple[int, int, int], Alert]], tuple[int, int, int] | None]:
        """One metric's part of :meth:`update_columns`: its state ``st`` taken through every step.

        Returns the alerts that ended, each with the key that orders them as :meth:`update` would: (step,
        0, column) for an end by the release rule, (step, 1, position of the state) for one without data;
        and (step, 0, column) of the last start, or None.
        """
        p = self.params
        t_list = w.t_list
        n = len(t_list)
        ends: list[tuple[tuple[int, int, int], Alert]] = []
        raise_key = None
        k = 0
        while k < n:
            if st.active is None:
                k, st.onset_s = w.next_start(k, st.onset_s)
                if k < 0:
                    break
                assert rule is not None  # (a metric without a rule is never present)
                st.last_seen_s = t_list[k]
                self._raise(metric, st, self._build(rule, _record(rolling, int(w.row[k]), metric), st.onset_s))
                raise_key = (k, 0, w.column)
                k += 1
                continue
            # an active alert, step by step; its figures are built once, from its last update
            side = st.active.side
            current = (st.active.left_value, st.active.right_value)
            update_row = -1
            while k < n:
                tk = t_list[k]
                if not w.present[k]:
                    st.onset_s = math.nan
                    if tk - st.last_seen_s >= p.stale_s:
                        ends.append(((k, 1, w.state_pos), self._ended(metric, st, st.last_seen_s)))
                        break
                    k += 1
                    continue
                st.last_seen_s = tk
                flipped = worse_side(w.left[k], w.right[k]) != side
                if w.release[k] or flipped:
                    if math.isnan(st.release_s):
                        st.release_s = tk
                    if tk - st.release_s >= p.release_hold_s or flipped:
                        ends.append(((k, 0, w.column), self._ended(metric, st, st.release_s)))
                        break
                    k += 1
                    continue
                st.release_s = math.nan
                values = (float(w.left[k]), float(w.right[k]))
                if values != current:
                    current, update_row = values, int(w.row[k])
                k += 1
            if st.active is not None and update_row >= 0:
                assert rule is not None
                st.active = self._update(rule, _record(rolling, update_row, metric), st)
            k += 1
        seen = np.flatnonzero(w.present)
        if seen.size:
            st.last_seen_s = t_list[int(seen[-1])]
        return ends, raise_key

    def finish(self, t_s: float) -> list[AlertEvent]:
        """End every active alert at ``t_s`` (the end of the session)."""
        return [self._end(m, st, float(t_s), True) for m, st in self._state.items() if st.active is not None]

    def all_alerts(self) -> list[Alert]:
        """Ended alerts followed by the still active ones, by start time."""
        return sorted([*self.history_, *self.active_.values()], key=lambda al: (al.t_start_s, al.metric))
