"""Session review: per-step metrics over the whole session by side, a selectable time range with its pelvis
angle traces, per-side statistics and distributions, the alerts, and export of the per-step table."""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from pelvimon.analysis import file_damage_text, mount_moved_notes, steps_csv_text
from pelvimon.errors import PelvimonError
from pelvimon.outputs import write_output

from .review_data import TABLE_METRICS, ReviewData
from .widgets import ANGLE_COLORS, LEFT, RIGHT, configure_pyqtgraph, pen, style_plot

TRACES_TITLE = "Pelvis angles (▲ left, ▼ right foot strike)"

TIMELINE = (
    ("cpd_deg", "CPD (deg)", 1.0),
    ("contact_time_s", "Contact (ms)", 1000.0),
    ("cadence_spm", "Cadence (spm)", 1.0),
)

HIST_MIN_SPAN = {"cpd_deg": 2.0, "contact_time_s": 20.0}
"""Narrowest value axis of the distributions, in their units (deg, ms): about twice the step-to-step
spread of a steady runner, so that a tight distribution looks tight."""


def _fmt(v: float, digits: int) -> str:
    if not math.isfinite(v):
        return "–"
    text = f"{v:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _alpha(color: str, a: int) -> tuple[int, int, int, int]:
    c = pg.mkColor(color)
    return (c.red(), c.green(), c.blue(), a)


class ReviewWindow(QtWidgets.QMainWindow):
    """Review of one session (see module docstring).

    Parameters
    ----------
    data : ReviewData
        From :func:`pelvimon.gui.review_data.load_review`.
    """

    def __init__(self, data: ReviewData) -> None:
        super().__init__()
        configure_pyqtgraph()
        self.data = data
        self.setWindowTitle(f"pelvimon review — {data.name}")
        self.cols = data.step_arrays()
        central = QtWidgets.QWidget()
        self.setCentralWidget(central)
        outer = QtWidgets.QVBoxLayout(central)

        # a damaged or unfinished session file (the figures cover only what was read) and a sensor that turned
        # on the body (sides and angles after it may be wrong): said above everything
        q = data.analysis.quality
        notices = [file_damage_text(q), *mount_moved_notes(q)]
        notice = "\n".join(x for x in notices if x is not None)
        self.file_notice = QtWidgets.QLabel(notice)
        self.file_notice.setWordWrap(True)
        self.file_notice.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.file_notice.setStyleSheet(
            "QLabel { background: #FDECEA; color: #7B1F16; border-left: 4px solid #C0392B; padding: 4px 8px; }"
        )
        self.file_notice.setVisible(bool(notice))
        outer.addWidget(self.file_notice)

        self.summary = QtWidgets.QLabel(self._summary_text())
        self.summary.setWordWrap(True)
        font = self.summary.font()
        font.setPointSize(11)
        self.summary.setFont(font)
        outer.addWidget(self.summary)

        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        outer.addWidget(split, 1)

        # -- timeline of per-step metrics, one row per metric, shared time axis, one synced region each
        self.timeline = pg.GraphicsLayoutWidget()
        self.timeline_plots: list[pg.PlotItem] = []
        self.timeline_points: dict[tuple[str, str], pg.ScatterPlotItem] = {}
        self.regions: list[pg.LinearRegionItem] = []
        first: pg.PlotItem | None = None
        for row, (metric, label, scale) in enumerate(TIMELINE):
            p = self.timeline.addPlot(row=row, col=0)
            last = row == len(TIMELINE) - 1
            style_plot(p, left=label, bottom="Session time (s)" if last else None, grid=True)
            if not last:
                p.getAxis("bottom").setStyle(showValues=False)
            for side, color in (("L", LEFT), ("R", RIGHT)):
                mask = self.cols["usable"] & (self.cols["is_left"] == (side == "L"))
                x = self.cols["t_ic_s"][mask] if self.data.steps else np.zeros(0)
                y = self.cols[metric][mask] * scale if self.data.steps else np.zeros(0)
                ok = np.isfinite(y)
                sc = pg.ScatterPlotItem(
                    x=x[ok], y=y[ok], size=5, symbol="o", brush=pg.mkBrush(color), pen=pg.mkPen(color)
                )
                p.addItem(sc)
                self.timeline_points[(metric, side)] = sc
            unsure = ~self.cols["usable"] if self.data.steps else np.zeros(0, dtype=bool)
            ux = self.cols["t_ic_s"][unsure] if self.data.steps else np.zeros(0)
            uy = self.cols[metric][unsure] * scale if self.data.steps else np.zeros(0)
            ok = np.isfinite(uy)
            sc = pg.ScatterPlotItem(x=ux[ok], y=uy[ok], size=4, symbol="o", brush=pg.mkBrush("#9E9E9E"), pen=None)
            p.addItem(sc)
            self.timeline_points[(metric, "?")] = sc
            if first is None:  # (the dots' colours are explained in the header: no legend over the data)
                first = p
            else:
                p.setXLink(first)
            region = pg.LinearRegionItem(
                values=self._default_range(), brush=pg.mkBrush(80, 80, 80, 40), pen=pen("#555555")
            )
            region.setZValue(-10)
            p.addItem(region)
            region.sigRegionChanged.connect(self._region_moved)
            self.regions.append(region)
            self.timeline_plots.append(p)
        if first is not None:  # the whole session, the standing before and after the steps included
            first.setXRange(*self.session_span(), padding=0.01)
        split.addWidget(self.timeline)

        # -- lower part: traces | distributions | stats, alerts, export
        lower = QtWidgets.QWidget()
        low = QtWidgets.QHBoxLayout(lower)
        low.setContentsMargins(0, 0, 0, 0)
        self.traces = pg.PlotWidget()
        tp = self.traces.getPlotItem()
        style_plot(
            tp, left="Angle (deg)", bottom="Session time (s)",
            title=TRACES_TITLE, grid=True
        )
        legend = tp.addLegend(offset=(5, -5), labelTextSize="9pt", colCount=3)
        legend.setBrush(pg.mkBrush(255, 255, 255, 170))  # (translucent: data under it stay visible)
        self.trace_curves = {}
        for key, name in (
            ("tilt", "tilt (anterior +)"),
            ("obliquity", "obliquity (left up +)"),
            ("rotation", "rotation (to left +)"),
        ):
            c = tp.plot(pen=pen(ANGLE_COLORS[key]), name=name)
            c.setDownsampling(auto=True, method="peak")
            c.setClipToView(True)
            self.trace_curves[key] = c
        self.trace_ic = {
            side: pg.ScatterPlotItem(size=8, symbol=sym, brush=pg.mkBrush(color), pen=pg.mkPen(color))
            for side, color, sym in (("L", LEFT, "t1"), ("R", RIGHT, "t"))
        }
        for sc in self.trace_ic.values():
            tp.addItem(sc)
        low.addWidget(self.traces, 3)

        hist_box = QtWidgets.QVBoxLayout()
        self.hists: dict[str, pg.PlotWidget] = {}
        self.hist_curves: dict[tuple[str, str], pg.PlotDataItem] = {}
        for metric, label, scale in (("cpd_deg", "CPD (deg)", 1.0), ("contact_time_s", "Contact time (ms)", 1000.0)):
            w = pg.PlotWidget()
            hp = w.getPlotItem()
            style_plot(
                hp, left="Steps", bottom=label, title=f"Distribution by side: {label.split(' (')[0]}", grid=True
            )
            for side, color in (("L", LEFT), ("R", RIGHT)):
                c = pg.PlotDataItem(
                    [0, 1], [0], stepMode="center", fillLevel=0, brush=pg.mkBrush(*_alpha(color, 90)), pen=pen(color)
                )
                hp.addItem(c)
                self.hist_curves[(metric, side)] = c
            self.hists[metric] = w
            hist_box.addWidget(w)
            w.setProperty("scale", scale)
            w.setProperty("min_span", HIST_MIN_SPAN[metric])
        low.addLayout(hist_box, 2)

        right = QtWidgets.QVBoxLayout()
        self.range_label = QtWidgets.QLabel("")
        right.addWidget(self.range_label)
        self.table = QtWidgets.QTableWidget(len(TABLE_METRICS), 3)
        self.table.setHorizontalHeaderLabels(["Left: mean ± SD (n)", "Right: mean ± SD (n)", "L − R"])
        self.table.setVerticalHeaderLabels([lab for _, lab, _, _ in TABLE_METRICS])
        self.table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setDefaultSectionSize(22)
        right.addWidget(self.table, 3)
        right.addWidget(QtWidgets.QLabel(f"Alerts ({len(data.alerts)}):"))
        self.alert_list = QtWidgets.QListWidget()
        self.alert_list.setWordWrap(True)
        for a in data.alerts:
            end = "end of session" if a.t_end_s is None else f"{a.t_end_s:.0f} s"
            item = QtWidgets.QListWidgetItem(f"{a.t_start_s:.0f} s – {end}: {a.message}")
            item.setData(QtCore.Qt.ItemDataRole.UserRole, (a.t_start_s, a.t_end_s))
            item.setToolTip(a.message)
            self.alert_list.addItem(item)
        if not data.alerts:
            self.alert_list.addItem("No left/right asymmetry alert in this session.")
        self.alert_list.itemClicked.connect(self._alert_clicked)
        right.addWidget(self.alert_list, 1)
        self.export_button = QtWidgets.QPushButton("Export per-step table (CSV)...")
        self.export_button.clicked.connect(self._export_clicked)
        right.addWidget(self.export_button)
        low.addLayout(right, 4)
        split.addWidget(lower)
        split.setSizes([380, 420])
        self.resize(1500, 900)
        self._region_moved(self.regions[0])

    # ------------------------------------------------------------------ content
    def _summary_text(self) -> str:
        d = self.data
        a = d.analysis
        usable = self.cols["usable"] if d.steps else np.zeros(0, dtype=bool)
        is_left = self.cols["is_left"] if d.steps else np.zeros(0, dtype=bool)
        n_l = int((usable & is_left).sum())
        n_r = int((usable & ~is_left).sum())
        n_u = len(d.steps) - n_l - n_r
        ss = a.side_stats.get("cpd_deg")
        cpd = ""
        if ss is not None and (math.isfinite(ss[0].mean) or math.isfinite(ss[1].mean)):
            cpd = (
                f"Pelvic drop{f' ({a.gait})' if a.other_gaits else ''}: <b><span style='color:{LEFT}'>left stance {_fmt(ss[0].mean, 1)}°</span></b>, "
                f"<b><span style='color:{RIGHT}'>right stance {_fmt(ss[1].mean, 1)}°</span></b>. &nbsp; "
            )
        n_usable = int(self.cols["usable"].sum()) if d.steps else 0
        phases = ""
        if a.other_gaits:
            phases = "<br>Gait: " + ", ".join(
                ph.label("–", with_n=False) for ph in a.phases
            ) + " (the per-side figures are those of the " + str(a.gait) + " steps)."
        warn = ""
        loss = a.quality.frequent_loss_text()
        if loss is not None:
            warn += "<br><b style='color:#C0392B'>Note:</b> " + html.escape(loss[0].upper() + loss[1:]) + "."
        if d.steps and n_usable == 0:
            warn += (
                "<br><b style='color:#C0392B'>No step could be given a side with confidence</b> (without a "
                "gyroscope, or with too short a run, left and right cannot be told apart): per-side values are "
                "not available."
            )
        return (
            f"<b>{d.name}</b> &nbsp; {d.duration_s:.0f} s, {len(d.steps)} steps "
            f"({n_l} left, {n_r} right, {n_u} side uncertain or at a gap; {d.steps_source}), "
            f"{a.gait + ' ' if a.gait else ''}cadence {_fmt(a.cadence_spm(), 0)} steps/min, "
            f"{len(d.alerts)} alert{'' if len(d.alerts) == 1 else 's'}.{phases}<br>{cpd}"
            f"Dots: <span style='color:{LEFT}'>●</span> left stance, <span style='color:{RIGHT}'>●</span> right "
            "stance, <span style='color:#9E9E9E'>●</span> side uncertain or at a gap (not in the statistics)."
            "<br>Drag the grey band (or click an alert) to choose the range shown below." + warn
        )

    def session_span(self) -> tuple[float, float]:
        """First and last time of the session (its samples and steps), s; ``(0, 20)`` when it has neither."""
        d = self.data
        ends = [d.t_first_s, d.t_first_s + d.duration_s] if d.duration_s > 0 else []
        t = np.concatenate([ends, self.cols["t_ic_s"] if d.steps else np.zeros(0)])
        t = t[np.isfinite(t)]
        if t.size == 0:
            return (0.0, 20.0)
        lo, hi = float(t.min()), float(t.max())
        return (lo, hi if hi > lo else lo + 1.0)

    def _default_range(self) -> tuple[float, float]:
        d = self.data
        if d.alerts:
            t0 = d.alerts[0].t_start_s
            return (t0, t0 + 8.0)
        t = self.cols["t_ic_s"] if d.steps else d.t_s
        if t.size == 0:
            return (0.0, 20.0)
        mid = float(np.nanmedian(t))
        lo, hi = float(np.nanmin(t)), float(np.nanmax(t))
        if hi - lo <= 8.0:
            return (lo, hi if hi > lo else lo + 1.0)
        lo = max(lo, min(mid - 4.0, hi - 8.0))
        return (lo, lo + 8.0)

    def selected_range(self) -> tuple[float, float]:
        lo, hi = self.regions[0].getRegion()
        return float(lo), float(hi)

    def set_range(self, t0: float, t1: float) -> None:
        """Select ``[t0, t1]`` (s) in every timeline plot."""
        self.regions[0].setRegion((t0, t1))

    def _region_moved(self, region: pg.LinearRegionItem) -> None:
        lo, hi = region.getRegion()
        for r in self.regions:
            if r is not region:
                r.blockSignals(True)
                r.setRegion((lo, hi))
                r.blockSignals(False)
        self._show_range(float(lo), float(hi))

    def _no_angles_why(self, t0: float, t1: float) -> str:
        """Why the range ``[t0, t1]`` shows no pelvis angles, in a few words."""
        from pelvimon.analysis import calibration_state_text
        from pelvimon.dsp.orientation import OrientationParams

        d = self.data
        if t0 > d.duration_s:
            return f"No samples in this range: the session ends at {d.duration_s:.1f} s"
        valid = np.flatnonzero(np.isfinite(d.obliquity_deg))
        if valid.size == 0:
            if d.calibration_state in ("waiting_for_stillness", "gravity_known"):
                outcome = calibration_state_text(d.calibration_state).split(",")[0]
                return f"No pelvis angles: mount calibration {outcome}"
            return "No pelvis angles in this session (no gyroscope, or no calibration)"
        if t1 < d.t_s[valid[0]]:
            return f"No pelvis angles yet: they start at {d.t_s[valid[0]]:.1f} s, once the sensor is calibrated"
        for m in d.analysis.quality.mount_moves:
            if m.t_s <= t1 and not t0 >= m.t_until_s:
                again = (f"its mounting was found again at {m.t_until_s:.1f} s" if math.isfinite(m.t_until_s)
                         else "its mounting was not found again")  # fmt: skip
                return f"No pelvis angles here: the sensor moved on the body (seen at {m.t_s:.1f} s); {again}"
        settle = OrientationParams().settle_s
        return f"No pelvis angles in this range: after a gap the orientation filter settles (up to {settle:g} s)"

    def _show_range(self, t0: float, t1: float) -> None:
        d = self.data
        t, tilt, obl, rot = d.angles_between(t0, t1)
        self.trace_curves["tilt"].setData(t, tilt)
        self.trace_curves["obliquity"].setData(t, obl)
        self.trace_curves["rotation"].setData(t, rot)
        title = TRACES_TITLE if np.isfinite(obl).any() else self._no_angles_why(t0, t1)
        self.traces.getPlotItem().setTitle(title, size="11pt", color="#222222")
        cols = self.cols
        if d.steps:
            sel = (cols["t_ic_s"] >= t0) & (cols["t_ic_s"] <= t1)
            for side in ("L", "R"):
                m = sel & (cols["is_left"] == (side == "L"))
                x = cols["t_ic_s"][m]
                y = np.interp(x, t, obl) if t.size else np.zeros(0)
                ok = np.isfinite(y)
                self.trace_ic[side].setData(x=x[ok], y=y[ok])
        stats = d.range_stats(t0, t1)
        for row, (metric, _, scale, digits) in enumerate(TABLE_METRICS):
            lm, lsd, ln = stats[metric]["L"]
            rm, rsd, rn = stats[metric]["R"]
            if metric == "flight_time_s":  # (walking has none: 0 by definition, left out as analyze does)
                self.table.setRowHidden(row, ln + rn > 0 and all(n == 0 or m == 0.0 for m, n in ((lm, ln), (rm, rn))))
            cells = [
                f"{_fmt(lm * scale, digits)} ± {_fmt(lsd * scale, digits)} ({ln})",
                f"{_fmt(rm * scale, digits)} ± {_fmt(rsd * scale, digits)} ({rn})",
                _fmt((lm - rm) * scale, digits),
            ]
            for col, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
                if col < 2:
                    item.setForeground(pg.mkBrush(LEFT if col == 0 else RIGHT))
                self.table.setItem(row, col, item)
        self.range_stats = stats
        # the usable steps of the range (the statistics' steps; a metric may have fewer, e.g. no pelvic
        # drop without a gyroscope)
        m_sel = cols["usable"] & (cols["t_ic_s"] >= t0) & (cols["t_ic_s"] <= t1) if d.steps else None
        n = 0 if m_sel is None else int(np.count_nonzero(m_sel))
        self.range_label.setText(f"<b>Selected range {t0:.1f} – {t1:.1f} s</b> ({n} usable steps)")
        for metric, w in self.hists.items():
            scale = float(w.property("scale"))
            vals = {}
            for side in ("L", "R"):
                if m_sel is None:
                    vals[side] = np.zeros(0)
                    continue
                v = cols[metric][m_sel & (cols["is_left"] == (side == "L"))] * scale
                vals[side] = v[np.isfinite(v)]
            both = np.concatenate([vals["L"], vals["R"]])
            if both.size:
                lo, hi = float(both.min()), float(both.max())
                # at least HIST_MIN_SPAN wide: a tight distribution does not fill the whole axis
                pad = max(0.0, float(w.property("min_span")) - (hi - lo)) / 2.0
                lo, hi = lo - pad, hi + pad
                edges = np.linspace(lo, hi, 16)
            else:
                edges = np.array([0.0, 1.0])
            top = 1
            for side in ("L", "R"):
                counts, _ = np.histogram(vals[side], bins=edges)
                self.hist_curves[(metric, side)].setData(edges, counts)
                top = max(top, int(np.max(counts)) if counts.size else 0)
            w.getPlotItem().setYRange(0, top * 1.1, padding=0)

    def _alert_clicked(self, item: QtWidgets.QListWidgetItem) -> None:
        span = item.data(QtCore.Qt.ItemDataRole.UserRole)
        if not span:
            return
        t0, t1 = span
        t1 = t0 + 10.0 if t1 is None else min(t1, t0 + 10.0)
        self.set_range(t0, t1)

    # ------------------------------------------------------------------ export
    def export_csv(self, path: str | Path) -> Path:
        """Write the per-step table (all steps) to ``path``."""
        return write_output(path, steps_csv_text(self.data.steps))

    def _export_clicked(self) -> None:
        default = str(Path(self.data.name).with_suffix("").name) + "-steps.csv"
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export per-step table", default, "CSV (*.csv)")
        if path:
            try:
                self.export_csv(path)
            except PelvimonError as exc:
                QtWidgets.QMessageBox.warning(self, "Export failed", str(exc))
                return
            self.statusBar().showMessage(f"Exported {len(self.data.steps)} steps to {path}", 8000)
