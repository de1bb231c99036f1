"""A self-contained HTML report of one analysed session.

One file, no external resources: the figures are PNGs embedded as base64 ``data:`` URIs, the style is
inline, there are no scripts, fonts or links. Every piece of user-provided text (title, runner, notes, file
names) is HTML-escaped. The numbers in the tables carry their full-precision value in a ``data-value``
attribute, the same value ``pelvimon analyze --json`` prints.

matplotlib (Agg backend) draws the figures; it is imported inside the functions that need it.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pelvimon.analysis import (
    NO_GYROSCOPE_NOTE,
    SIDES_LEGEND,
    GaitPart,
    SessionAnalysis,
    all_steps_rows,
    applies,
    calibration_text,
    file_damage_text,
    mount_moved_notes,
    no_angles_why,
    turning_why,
)
from pelvimon.dashboard import SIDE_COLORS
from pelvimon.dsp.alerts import AlertRule, display_number, figures_note, interval_digits, metric_label
from pelvimon.dsp.asymmetry import contact_time_balance_pct

BRAMAH_2018 = (
    "Bramah C, Preece SJ, Gill N, Herrington L. Is there a pathological gait associated with common soft "
    "tissue running injuries? Am J Sports Med. 2018;46(12):3023-3031. doi:10.1177/0363546518793657"
)

LEFT_COLOUR = SIDE_COLORS["L"]  # the same colour-blind-safe pair as the live dashboard
RIGHT_COLOUR = SIDE_COLORS["R"]
ALERT_COLOUR = "#c0392b"

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto; max-width: 60em;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
.meta { color: #555; }
.alert { background: #fdecea; border-left: 4px solid #c0392b; padding: 0.4em 0.8em; margin: 0.4em 0; }
.ok { background: #eef7ee; border-left: 4px solid #2e8b57; padding: 0.4em 0.8em; }
.note { background: #f5f5f5; padding: 0.6em 0.9em; white-space: pre-wrap; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
img { max-width: 100%; height: auto; }
.small { font-size: 0.85em; color: #555; }
"""

SPREAD_METRICS = ("cpd_deg", "tilt_range_deg", "rotation_range_deg", "contact_time_s")
TREND_METRICS = ("cpd_deg", "contact_time_s", "tilt_range_deg", "rotation_range_deg")


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _scale(metric: str) -> tuple[float, str]:
    """Display factor and unit of a metric (seconds shown in ms)."""
    if metric.endswith("_s"):
        return 1000.0, "ms"
    for suffix, unit in (("_deg", "°"), ("_cm", "cm"), ("_g", "g"), ("_spm", "steps/min")):
        if metric.endswith(suffix):
            return 1.0, unit
    return 1.0, ""


def _num(metric: str, value: float | None, *, signed: bool = False, field: str = "", digits: int | None = None) -> str:
    """A ``<td>`` with the display value (with ``digits``, if given) and the full-precision value in
    ``data-value``."""
    if value is None or not math.isfinite(value):
        return f'<td data-metric="{_e(metric)}" data-field="{_e(field)}" data-value="null">n/a</td>'
    _, unit = _scale(metric)
    shown = display_number(metric, value, signed, digits)
    return (
        f'<td data-metric="{_e(metric)}" data-field="{_e(field)}" data-value="{float(value)!r}">'
        f"{_e(shown)}&nbsp;{_e(unit)}</td>"
    )


def _interval_cells(metric: str, values: tuple[float | None, ...], fields: tuple[str, ...]) -> str:
    """The ``<td>`` of a difference and its interval's ends, shown with the same digits
    (:func:`~pelvimon.dsp.alerts.interval_digits`)."""
    digits = interval_digits(metric, *values)
    return "".join(_num(metric, v, signed=True, field=f, digits=digits) for v, f in zip(values, fields, strict=True))


# --- figures ------------------------------------------------------------------------------------------------


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def spread_values(a: SessionAnalysis) -> dict[str, list[np.ndarray]]:
    """Per metric of :data:`SPREAD_METRICS` with any value: the left and the right stance values (scaled for
    display) of the usable steps of the session's gait. A metric without any (no pelvis angles without a
    gyroscope) is left out."""
    from pelvimon.dsp.asymmetry import step_is_usable

    p = a.config.asymmetry
    used = [s for s in a.gait_steps() if step_is_usable(s, p)]
    out: dict[str, list[np.ndarray]] = {}
    for m in SPREAD_METRICS:
        k, _ = _scale(m)
        data = []
        for side in ("L", "R"):
            v = np.array([getattr(s, m) for s in used if s.side == side], dtype=np.float64) * k
            data.append(v[np.isfinite(v)])
        if any(d.size for d in data):
            out[m] = data
    return out


def figure_spread(values: Mapping[str, list[np.ndarray]]) -> str:
    """Per-side box plots with the individual steps (jittered), one panel per metric of ``values``
    (:func:`spread_values`)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(values), figsize=(11 * max(len(values), 2) / len(SPREAD_METRICS), 3.4),
                             layout="constrained", squeeze=False)  # fmt: skip
    rng = np.random.default_rng(0)
    for ax, (m, data) in zip(axes[0], values.items(), strict=True):
        _, unit = _scale(m)
        if all(d.size for d in data):
            ax.boxplot(data, widths=0.5, showfliers=False, medianprops={"color": "black"})
        for i, (d, c) in enumerate(zip(data, (LEFT_COLOUR, RIGHT_COLOUR), strict=True)):
            ax.plot(i + 1 + rng.uniform(-0.15, 0.15, d.size), d, ".", color=c, alpha=0.45, ms=3)
        ax.set_xticks([1, 2], ["left\nstance", "right\nstance"])
        ax.set_title(f"{metric_label(m)} ({unit})", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def _rolling_series(rolling: Sequence[tuple[float, list[Any]]], metric: str) -> tuple[np.ndarray, ...]:
    t, d, lo, hi, mid = [], [], [], [], []
    for ts, current in rolling:
        x = next((z for z in current if z.metric == metric), None)
        t.append(ts)
        if x is None:
            d.append(math.nan)
            lo.append(math.nan)
            hi.append(math.nan)
            mid.append(math.nan)
        elif metric == "contact_time_s":
            b, bl, bh = contact_time_balance_pct(x)
            d.append(b)
            lo.append(bl)
            hi.append(bh)
            mid.append(50.0)
        else:
            k, _ = _scale(metric)
            d.append(x.diff * k)
            lo.append(x.diff_ci_low * k)
            hi.append(x.diff_ci_high * k)
            mid.append(0.5 * (x.left_mean + x.right_mean) * k)
    return tuple(np.asarray(v, dtype=np.float64) for v in (t, d, lo, hi, mid))


def diff_threshold(rule: AlertRule, mid: np.ndarray, k: float = 1.0) -> np.ndarray:
    """The smallest ``|L - R|`` (scaled by ``k``) at which ``rule`` starts an alert, at each point of a
    series whose mean of both sides (scaled) is ``mid``: ``enter`` for a "diff" rule, ``enter`` % of the
    mean for an "si" rule (a line that follows the runner's own level), and never under ``min_diff``.
    NaN where there is no mean; not for "balance" rules (their band is on the balance axis)."""
    if rule.kind == "diff":
        thr = np.full(mid.shape, rule.enter * k)
    elif rule.kind == "si":
        thr = rule.enter / 100.0 * np.abs(mid)
    else:
        raise ValueError(f"a {rule.kind!r} rule has no threshold on L - R")
    return np.where(np.isfinite(mid), np.maximum(thr, rule.min_diff * k), np.nan)


def trend_series(a: SessionAnalysis) -> dict[str, tuple[np.ndarray, ...]]:
    """The series of the trend figure, ``(t, value, ci_low, ci_high, mid)`` per metric (``mid``: the mean of
    both sides, for the thresholds that follow it; 50 % for the contact-time balance): :data:`TREND_METRICS` and
    every other metric that raised an alert, those with at least one value (a rolling comparison needs
    ``min_steps_per_side`` steps a side, and pelvis angles a gyroscope)."""
    alerted = {al.metric for al in a.alerts}
    metrics = [*TREND_METRICS, *(m for m in a.config.asymmetry.metrics if m in alerted and m not in TREND_METRICS)]
    rolling = list(a.rolling)  # (built when read: once for all the metrics)
    series = {m: _rolling_series(rolling, m) for m in metrics}
    return {m: v for m, v in series.items() if np.isfinite(v[1]).any()}


def figure_trend(a: SessionAnalysis, series: Mapping[str, tuple[np.ndarray, ...]]) -> str:
    """Rolling left-right difference with its confidence band (contact time as balance), alerts shaded;
    one panel per metric of ``series`` (:func:`trend_series`)."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(series), 1, figsize=(11, 2.1 * len(series) + 0.5), sharex=True,
                             layout="constrained", squeeze=False)  # fmt: skip
    for ax, (m, (t, d, lo, hi, mid)) in zip(axes[:, 0], series.items(), strict=True):
        rule = a.config.alerts.rules.get(m)
        if m == "contact_time_s":
            ax.axhline(50.0, color="grey", lw=0.8)
            if rule is not None and rule.kind == "balance":
                ax.axhspan(rule.low, rule.high, color="green", alpha=0.12, lw=0)
            ax.set_ylabel("left share\nof contact (%)", fontsize=9)
        else:
            k, unit = _scale(m)
            ax.axhline(0.0, color="grey", lw=0.8)
            if rule is not None and rule.enabled and rule.kind == "diff":
                for sgn in (1, -1):
                    ax.axhline(sgn * float(diff_threshold(rule, np.zeros(1), k)[0]), color=ALERT_COLOUR, lw=0.8,
                               ls="--")  # fmt: skip
            elif rule is not None and rule.enabled and rule.kind == "si" and t.size:
                thr = diff_threshold(rule, mid, k)
                for sgn in (1, -1):
                    ax.plot(t, sgn * thr, color=ALERT_COLOUR, lw=0.8, ls="--")
            ax.set_ylabel(f"L−R\n({unit})", fontsize=9)
        if t.size:
            ax.fill_between(t, lo, hi, color="#555", alpha=0.25, lw=0)
            ax.plot(t, d, color="black", lw=1.0)
        for al in a.alerts:
            if al.metric == m:
                end = al.t_end_s if al.t_end_s is not None else (t[-1] if t.size else al.t_start_s)
                ax.axvspan(al.t_start_s, end, color=ALERT_COLOUR, alpha=0.12, lw=0)
        ax.set_title(metric_label(m), fontsize=10, loc="left")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("session time (s)")
    return _png(fig)


def figure_cpd_steps(a: SessionAnalysis) -> str:
    """Per-step contralateral pelvic drop over time, left and right stance."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 2.8), layout="constrained")
    for side, c, word in (("L", LEFT_COLOUR, "left stance"), ("R", RIGHT_COLOUR, "right stance")):
        pts = [(s.t_ic_s, s.cpd_deg) for s in a.steps if s.side == side and not s.gap]
        if pts:
            x, y = np.array(pts, dtype=np.float64).T
            ax.plot(x, y, ".", color=c, ms=3, label=word)
    for s in a.steps:
        if s.gap:
            ax.axvline(s.t_ic_s, color="black", lw=0.8, ls=":")
    ax.set_xlabel("session time (s)")
    ax.set_ylabel("CPD (°)")
    if ax.get_legend_handles_labels()[0]:  # (above the axes: none of the dots under it)
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return _png(fig)


# --- HTML ---------------------------------------------------------------------------------------------------


def _img(b64: str, alt: str, caption: str) -> str:
    return (
        f'<figure><img src="data:image/png;base64,{b64}" alt="{_e(alt)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _summary_table(a: SessionAnalysis, part: GaitPart) -> str:
    """The left/right table of one gait (id ``summary`` for the session's gait, else ``summary-<gait>``)."""
    side_stats, asymmetry = part.side_stats, part.asymmetry
    table_id = "summary" if part.gait == a.gait else f"summary-{part.gait}"
    lvl = round(100 * a.config.asymmetry.level)
    rows = [
        f'<table id="{table_id}"><thead><tr><th>metric</th><th>left mean</th><th>left SD</th><th>n</th>'
        f"<th>right mean</th><th>right SD</th><th>n</th><th>L−R</th><th>{lvl}&nbsp;% CI low</th>"
        f"<th>{lvl}&nbsp;% CI high</th><th>SI (%)</th></tr></thead><tbody>"
    ]
    for m, (left, right) in side_stats.items():
        if not applies(part.gait, m):
            continue
        x = asymmetry.get(m)
        si = x.symmetry_index_pct if x is not None else None
        si_cell = (
            f'<td data-metric="{_e(m)}" data-field="symmetry_index_pct" data-value="{float(si)!r}">'
            f"{display_number('symmetry_index_pct', si, signed=True)}</td>"
            if si is not None and math.isfinite(si)
            else f'<td data-metric="{_e(m)}" data-field="symmetry_index_pct" data-value="null">n/a</td>'
        )
        rows.append(
            f"<tr><td>{_e(metric_label(m))}</td>"
            + _num(m, left.mean, field="left_mean")
            + _num(m, left.sd, field="left_sd")
            + f'<td data-metric="{_e(m)}" data-field="left_n" data-value="{left.n}">{left.n}</td>'
            + _num(m, right.mean, field="right_mean")
            + _num(m, right.sd, field="right_sd")
            + f'<td data-metric="{_e(m)}" data-field="right_n" data-value="{right.n}">{right.n}</td>'
            + _interval_cells(m, (x.diff, x.diff_ci_low, x.diff_ci_high) if x else (None, None, None),
                              ("diff", "diff_ci_low", "diff_ci_high"))
            + si_cell
            + "</tr>"
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def _all_steps_table(s: dict[str, Any]) -> str:
    """Mean, SD and n of every metric over the steps of the session's gait, sides unknown (or "")."""
    rows = all_steps_rows(s)
    if not rows:
        return ""
    out = [f"<p>All {_e(s['gait'])} steps, side unknown:</p>"
           '<table id="all-steps"><thead><tr><th>metric</th><th>mean</th><th>SD</th><th>n</th></tr></thead><tbody>']
    for m, v in rows:
        out.append(
            f"<tr><td>{_e(metric_label(m))}</td>{_num(m, v['mean'], field='all_mean')}"
            f"{_num(m, v['sd'], field='all_sd')}"
            f'<td data-metric="{_e(m)}" data-field="all_n" data-value="{v["n"]}">{v["n"]}</td></tr>'
        )
    out.append("</tbody></table>")
    return "".join(out)


def _alerts_html(a: SessionAnalysis) -> str:
    if not a.alerts:
        return (
            '<p class="ok">No alerts: no left/right difference was both credible (its confidence interval '
            "excluding zero) and past its threshold for long enough.</p>"
        )
    rows = [f"<p>{_e(figures_note(a.config.alerts))}</p>"
            '<table id="alerts"><thead><tr><th>from (s)</th><th>to (s)</th><th>side</th><th>what</th></tr>'
            "</thead><tbody>"]  # fmt: skip
    for i, al in enumerate(a.alerts):
        end = "end" if al.t_end_s is None else f"{al.t_end_s:.1f}"
        t_end = "null" if al.t_end_s is None else repr(float(al.t_end_s))
        ref = f'data-alert="{i}" data-metric="{_e(al.metric)}"'
        rows.append(
            f'<tr><td {ref} data-field="t_start_s" data-value="{float(al.t_start_s)!r}">{al.t_start_s:.1f}</td>'
            f'<td {ref} data-field="t_end_s" data-value="{t_end}">{_e(end)}</td><td>{_e(al.side)}</td>'
            f'<td style="text-align:left">{_e(al.message)}</td></tr>'
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def _baseline_html(a: SessionAnalysis) -> str:
    if a.baseline is None:
        return ""
    b = a.baseline
    src = b["meta"].get("source", "?")
    runner = b["meta"].get("runner")
    head = f'<h2>Change from baseline</h2><p class="meta">Baseline: {_e(src)}'
    head += f", runner {_e(runner)}" if runner else ""
    note = f'<p class="meta">Note: {_e(b["note"])}.</p>' if b.get("note") else ""
    if not b["metrics"]:
        return head + ".</p>" + note
    head += (
        ". Changes are this session minus the baseline; intervals are Welch t intervals, widened for the "
        "correlation of successive steps. "
        "Bold: the interval excludes zero.</p>"
    ) + note
    rows = [
        '<table id="baseline"><thead><tr><th>metric</th><th>left change</th><th>right change</th>'
        "<th>L−R change</th><th>CI low</th><th>CI high</th></tr></thead><tbody>"
    ]
    for m, e in b["metrics"].items():
        cells = []
        for key in ("left", "right"):
            c = _num(m, e[key]["change"], signed=True, field=f"baseline_{key}_change")
            cells.append(c.replace("<td ", '<td style="font-weight:bold" ') if e[key]["credible"] else c)
        d = e["diff"]
        dc = _interval_cells(m, (d["change"], d["ci_low"], d["ci_high"]),
                             ("baseline_diff_change", "baseline_diff_ci_low", "baseline_diff_ci_high"))
        if d["credible"]:
            dc = dc.replace("<td ", '<td style="font-weight:bold" ', 1)
        rows.append(f"<tr><td>{_e(metric_label(m))}</td>{''.join(cells)}{dc}</tr>")
    rows.append("</tbody></table>")
    return head + "".join(rows)


def _quality_html(a: SessionAnalysis) -> str:
    q = a.quality
    cal = calibration_text(q)
    share = q.share_steps_flagged
    items = [
        f"Samples: {q.n_samples} at {q.rate_hz:.1f} Hz over {q.duration_s:.1f} s.",
        f"Gaps in the data: {q.n_batches_after_gap} ({q.n_samples_lost} samples lost); {q.n_gaps_bridged} short "
        f"ones were bridged and the analysis restarted {q.n_gap_events} times; {q.n_steps_gap} steps touched a "
        "gap and were left out." + (f" Note: {loss}." if (loss := q.frequent_loss_text()) else ""),
        f"Mount calibration: {cal}. Steps without pelvis angles ({no_angles_why(q)}): {q.n_steps_no_angles}."
        + (f" Steps without a rotation range ({turning_why()}): {q.n_steps_turning}." if q.n_steps_turning else ""),
        *mount_moved_notes(q),
        f"Left/right labelling: mean confidence {q.mean_laterality_confidence:.2f}, lowest "
        f"{q.min_laterality_confidence:.2f}; {q.n_steps_low_laterality} steps with an uncertain side were left "
        "out.",
        "Share of steps flagged (gap or uncertain side): "
        + ("n/a" if not math.isfinite(share) else f"{100 * share:.1f} %")
        + ".",
    ]
    text = [x.replace("nan", "n/a") for x in items]
    if q.file_damage.message is not None:  # (words, not figures: no n/a to put in)
        text.append(f"Session file: {q.file_damage.message}.")
    return '<ul id="quality">' + "".join(f"<li>{_e(x)}</li>" for x in text) + "</ul>"


def _meaning_html(a: SessionAnalysis, sides_legend: bool = True) -> str:
    """What the numbers mean; ``sides_legend``: with what left and right mean (not said under a table)."""
    cpd = a.asymmetry.get("cpd_deg")
    lines = []
    if cpd is not None:
        lvl = round(100 * cpd.level)
        lines.append(
            f"Contralateral pelvic drop (CPD) is how far the pelvis drops on the swing side while the other leg "
            f"carries the body. In this session it was {cpd.left_mean:.1f}° in left stance and "
            f"{cpd.right_mean:.1f}° in right stance (difference {cpd.diff:+.1f}°, {lvl} % confidence interval "
            f"{cpd.diff_ci_low:+.1f}° to {cpd.diff_ci_high:+.1f}°). A larger drop in one stance phase can point at "
            "the hip abductors (gluteus medius) of that stance leg."
        )
    lines += [SIDES_LEGEND] if sides_legend else []
    lines += [NO_GYROSCOPE_NOTE] if a.quality.has_gyroscope is False else []
    lines += [
        "How each step is measured: CPD is the largest drop of the swing side between the stance foot's strike "
        "and its toe-off, from the pelvis' side-to-side tilt (obliquity) at the strike. Obliquity, tilt "
        "(forward and backward) and rotation (turning about the vertical) ranges are the pelvis' range of "
        "motion in each plane over the step. Contact time runs from foot strike to toe-off, flight time from "
        "toe-off to the next strike (none in walking). Vertical oscillation is the sacrum's up-and-down travel "
        "over the stride that ends with the step; impact is the peak vertical acceleration early in the contact, "
        "in g.",
        "Comparing the sides: L−R is the difference of the left and right means with its confidence "
        "interval (Welch, widened for the correlation of successive steps); an interval that excludes zero "
        "means the difference is unlikely to be chance. The ground contact balance is the left share of the "
        "total contact time (50 % is even). For every measure other than the pelvic drop, an alert names the "
        "side with the larger value, which is not necessarily the side with the problem.",
    ]
    running = any(g == "running" for g in a.parts)
    lines.append(
        ("" if running else "This session holds no running; the study that follows is of runners. ")
        + "In a laboratory study of 72 injured and 36 uninjured runners, Bramah et al. (2018) found more "
        "contralateral pelvic drop in runners with common soft-tissue running injuries (patellofemoral pain, "
        "iliotibial band syndrome, medial tibial stress syndrome, Achilles tendinopathy); CPD was the measure "
        "that best told the groups apart, each extra degree going with about 80 % higher odds of being in the "
        "injured group. The groups were compared at one point in time: this is an association, not proof that "
        "a drop causes injury, nor a prediction for one runner. The study measured the pelvis with markers in "
        "a gait laboratory; pelvimon's drop, from one sensor and relative to the obliquity at foot strike, "
        "is not the same number, so the 80 % per degree does not carry over one to one."
    )
    lines.append(
        "Limits: these values come from one sensor at the sacrum, not from a gait laboratory; absolute values "
        "depend on the sensor's placement and its calibration and are best compared within the same runner, "
        "sensor and set-up, session to session. An alert means a left/right difference was credible (its "
        "confidence interval excluded zero) and past a configured threshold for a while; thresholds are "
        "conventions, not clinical norms. This report is not a diagnosis: discuss findings with a clinician."
    )
    return "".join(f"<p>{_e(x)}</p>" for x in lines) + f'<p class="small">Reference: {_e(BRAMAH_2018)}</p>'


def render_report(
    a: SessionAnalysis,
    *,
    title: str | None = None,
    runner: str | None = None,
    notes: str | None = None,
    generated: _dt.datetime | None = None,
) -> str:
    """The report of ``a`` as one self-contained HTML document (a string).

    Parameters
    ----------
    a : SessionAnalysis
    title, runner, notes : str, optional
        User text shown in the report (escaped).
    generated : datetime, optional
        Time stamp shown; now (UTC) by default.
    """
    when = (generated or _dt.datetime.now(_dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    title = title or f"pelvimon report: {a.name}"
    s = a.summary()
    q = a.quality
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        '<p class="meta">',
        (f"Runner: {_e(runner)}<br>" if runner else ""),
        f"Recording: {_e(a.name)}<br>Generated {_e(when)} by pelvimon</p>",
    ]
    if notes:
        parts.append(f'<div class="note">{_e(notes)}</div>')
    damage = file_damage_text(q)
    if damage is not None:  # above every figure: they cover only what could be read
        parts.append(f'<div class="alert" id="file-damage">{_e(damage)}</div>')
    parts += [
        "<h2>Session</h2>",
        f"<p>{q.duration_s:.1f} s, {s['n_steps']} steps ({s['n_steps_used']} {_e(a.gait + ' ' if a.gait else '')}"
        f"steps used for the left/right comparison), {_e(a.gait + ' ') if a.other_gaits and a.gait else ''}"
        f"cadence {_e(_fmt_plain(s['cadence_spm'], 1))}{' steps/min' if math.isfinite(s['cadence_spm']) else ''}."
        "</p>",
    ]
    if a.phases:
        parts.append(
            '<p id="gait-phases">Gait: '
            + _e(a.phases_text("–"))
            + (". Walking and running steps are compared separately." if a.other_gaits else ".")
            + "</p>"
        )
    sided = bool(s["n_steps_used"])
    parts += [
        f"<h2>Left and right{': ' + _e(a.gait) + ' steps' if a.gait else ''}</h2>",
        _summary_table(a, a.parts[s["gait"]]) + f'<p class="small" id="sides-legend">{_e(SIDES_LEGEND)}</p>'
        if sided
        else "<p>No steps to compare: the analysis found no walking or running steps with a known side "
        "(see the data quality section).</p>" + _all_steps_table(s),
    ]
    parts.append(_balance_html(s["contact_time_balance"]))
    for g, part in a.other_gaits.items():
        o = s["other_gaits"][g]
        if o["n_steps_used"]:
            parts += [
                f"<h2>Left and right: {_e(g)} steps</h2>",
                f"<p>{o['n_steps_used']} {_e(g)} steps, cadence {_e(_fmt_plain(o['cadence_spm'], 1))} steps/min.</p>",
                _summary_table(a, part),
                _balance_html(o["contact_time_balance"]),
            ]
    spread = spread_values(a) if sided else {}
    if spread:
        missing = [metric_label(m) for m in SPREAD_METRICS if m not in spread]
        parts.append(
            _img(
                figure_spread(spread),
                "Per-side spread",
                f"Per-side spread{' of the ' + a.gait + ' steps' if a.other_gaits and a.gait else ''}: each dot is "
                "one step (left stance blue, right stance orange); boxes show the median and quartiles."
                + (f" Not shown, without values: {', '.join(missing)} (no pelvis angles: see the data quality)."
                   if missing else ""),
            )  # fmt: skip
        )
    if any(math.isfinite(st.cpd_deg) for st in a.steps if not st.gap):
        parts.append(
            _img(
                figure_cpd_steps(a),
                "CPD per step",
                "Contralateral pelvic drop of every step over the session; dotted lines mark data gaps.",
            )  # fmt: skip
        )
    if sided:
        trend = trend_series(a)
        parts.append("<h2>Asymmetry over time</h2>")
        parts.append(
            _img(
                figure_trend(a, trend),
                "Rolling asymmetry",
                f"Rolling left−right difference over the last "
                f"{a.config.asymmetry.window_steps} steps per side with its confidence band; contact time as "
                "the left share of contact time (green: typical range); dashed: alert threshold; red: alerts.",
            )  # fmt: skip
            if trend
            else f"<p>No rolling comparison: it needs {a.config.asymmetry.min_steps_per_side} usable steps "
            "a side within its window.</p>"
        )
    parts += [
        "<h2>Alerts</h2>",
        _alerts_html(a),
        _baseline_html(a),
        "<h2>Data quality</h2>",
        _quality_html(a),
        "<h2>What the numbers mean</h2>",
        _meaning_html(a, sides_legend=not sided),
        "</body></html>",
    ]
    return "\n".join(x for x in parts if x)


def _balance_html(bal: dict[str, float] | None) -> str:
    if bal is None:
        return ""
    return (
        f"<p>Ground contact balance: <b>{_fmt_plain(bal['value_pct'], 1)} % left</b> "
        f"({_fmt_plain(bal['ci_low_pct'], 1)} to {_fmt_plain(bal['ci_high_pct'], 1)} %; typical range "
        f"{bal['normal_low_pct']:g} to {bal['normal_high_pct']:g} %).</p>"
    )


def _fmt_plain(v: float, digits: int) -> str:
    return f"{v:.{digits}f}" if v is not None and math.isfinite(v) else "n/a"


def figures_in(text: str) -> Sequence[str]:
    """The base64 payloads of the embedded PNG figures of a report (for checks)."""
    out = []
    marker = 'src="data:image/png;base64,'
    i = text.find(marker)
    while i >= 0:
        j = text.find('"', i + len(marker))
        out.append(text[i + len(marker) : j])
        i = text.find(marker, j)
    return out
