"""Building blocks shared by the live and review windows: colours, pens, the alert banner, the
calibration prompt and the left/right bar plot.

Left is blue and right is orange everywhere (Okabe-Ito colours, safe with the common colour-vision
deficiencies); every other curve is drawn in neutral colours so that blue and orange always mean a side.
Pens are 1 px wide and grids are opaque (wider pens and semi-transparent grids are several times slower
to paint).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from pelvimon.dashboard import SIDE_COLORS, SideSummary

LEFT = SIDE_COLORS["L"]
RIGHT = SIDE_COLORS["R"]
ANGLE_COLORS = {"tilt": "#222222", "obliquity": "#009E73", "rotation": "#CC79A7"}
"""Neutral colours of the pelvis angles (black, bluish green, reddish purple: none is a side colour)."""

BANNER_STYLES = {
    "alert": "background:#C0392B; color:white; font-weight:bold; border-radius:4px; padding:6px;",
    "ok": "background:#E8F5E9; color:#1B5E20; border-radius:4px; padding:6px;",
    "wait": "background:#EEEEEE; color:#333333; border-radius:4px; padding:6px;",
}

_CONFIGURED = False


def configure_pyqtgraph() -> None:
    """White background, dark foreground, no antialiasing (speed), once per process."""
    global _CONFIGURED
    if _CONFIGURED:
        return
    pg.setConfigOptions(background="w", foreground="k", antialias=False)
    _CONFIGURED = True


QUIET_QT_MESSAGES = frozenset({"This plugin does not support propagateSizeHints()"})
"""Qt's messages that say nothing to a user (the offscreen platform's, at every window shown)."""


def _qt_message(mode: QtCore.QtMsgType, context: QtCore.QMessageLogContext, message: str) -> None:
    if message not in QUIET_QT_MESSAGES:
        print(message, file=sys.stderr)


def ensure_app() -> QtWidgets.QApplication:
    """The process's QApplication (created offscreen when there is no display and none is chosen)."""
    app = QtWidgets.QApplication.instance()
    if app is None:
        QtCore.qInstallMessageHandler(_qt_message)
        if (not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and os.name == "posix"
                and sys.platform.startswith("linux")):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QtWidgets.QApplication([])
        app.setApplicationName("pelvimon")
        font = app.font()
        if font.pointSizeF() < 10:
            font.setPointSizeF(10)
            app.setFont(font)
    configure_pyqtgraph()
    assert isinstance(app, QtWidgets.QApplication)
    return app


def pen(color: str, width: int = 1, style: QtCore.Qt.PenStyle | None = None) -> QtGui.QPen:
    """A cosmetic pen (1 px by default)."""
    p = pg.mkPen(color=color, width=width)
    if style is not None:
        p.setStyle(style)
    return p


def side_brush(side: str) -> QtGui.QBrush:
    return pg.mkBrush(SIDE_COLORS[side])


def style_plot(
    plot: pg.PlotItem, *, left: str, bottom: str | None = None, title: str | None = None, grid: bool = False
) -> None:
    """Axis labels with units, readable fonts; a light grid only where asked (static plots: a grid is
    semi-transparent in pyqtgraph and makes every repaint several times slower)."""
    font = QtGui.QFont()
    font.setPointSize(9)
    for name in ("left", "bottom"):
        ax = plot.getAxis(name)
        ax.setTickFont(font)
        ax.setTextPen(pg.mkPen("#222222"))
    plot.setLabel("left", left, **{"font-size": "10pt"})
    if bottom is not None:
        plot.setLabel("bottom", bottom, **{"font-size": "10pt"})
    if title is not None:
        plot.setTitle(title, size="11pt", color="#222222")
    if grid:
        plot.showGrid(x=True, y=True, alpha=0.15)


def zero_line(plot: pg.PlotItem) -> pg.InfiniteLine:
    """An opaque light horizontal line at 0 (a cheap reference instead of a grid)."""
    line = pg.InfiniteLine(pos=0.0, angle=0, pen=pen("#C8C8C8"), movable=False)
    plot.addItem(line, ignoreBounds=True)
    return line


def side_legend(plot: pg.PlotItem, items: Sequence[tuple[pg.GraphicsObject, str]], offset=(5, 5)) -> pg.LegendItem:
    legend = plot.addLegend(offset=offset, labelTextSize="9pt")
    legend.setBrush(pg.mkBrush(255, 255, 255, 170))  # (translucent: data under it stay visible)
    legend.setPen(pg.mkPen("#BBBBBB"))
    for item, label in items:
        legend.addItem(item, label)
    return legend


class AlertBanner(QtWidgets.QLabel):
    """One line (or a few) in plain words: the alerts in force in red, else a calm state."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        font = self.font()
        font.setPointSize(14)
        self.setFont(font)
        self.setMinimumHeight(44)
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignVCenter | QtCore.Qt.AlignmentFlag.AlignLeft)
        self.mode = ""
        self.set_state("wait", "Waiting for steps: left/right comparison starts after about 10 steps per side.")

    def set_state(self, mode: str, text: str) -> None:
        """``mode`` is "alert", "ok" or "wait"."""
        if mode != self.mode:
            self.setStyleSheet(BANNER_STYLES[mode])
            self.mode = mode
        if text != self.text():
            self.setText(text)


class CalibrationPrompt(QtWidgets.QLabel):
    """What the runner must do for the calibration, hidden once calibrated."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        font = self.font()
        font.setPointSize(14)
        font.setBold(True)
        self.setFont(font)
        self.setWordWrap(True)
        self.setStyleSheet("background:#FFF3C4; color:#5D4300; border-radius:4px; padding:6px;")
        self.hide()

    def set_prompt(self, text: str) -> None:
        if text != self.text():
            self.setText(text)
        self.setVisible(bool(text))


class SideBars(pg.PlotWidget):
    """One metric per stance side: a bar for the rolling mean and a black diamond for the latest step.

    Parameters
    ----------
    title : str
        Plot title (metric and unit).
    unit_label : str
        Left axis label with its unit.
    scale : float
        Display value = metric value x scale (e.g. 1000 for s -> ms).
    digits : int
        Decimals of the value labels.
    y_min_span : float
        Smallest y range shown (so that tiny values do not fill the plot).
    """

    def __init__(self, title: str, unit_label: str, *, scale: float = 1.0, digits: int = 1, y_min_span: float = 1.0):
        super().__init__()
        self.scale = scale
        self.digits = digits
        self.y_min_span = y_min_span
        p = self.getPlotItem()
        style_plot(p, left=unit_label, title=title)
        p.getAxis("bottom").setTicks([[(0, "Left"), (1, "Right")]])
        p.setMouseEnabled(False, False)
        p.hideButtons()
        p.setMenuEnabled(False)
        p.setXRange(-0.6, 1.6, padding=0)
        p.setYRange(0, self.y_min_span * 1.3, padding=0)  # until the first values (bars of height 0 auto-range
        # to a span of 1e-305)
        self.bars = pg.BarGraphItem(
            x=[0, 1], height=[0, 0], width=0.6, brushes=[side_brush("L"), side_brush("R")], pens=[pen(LEFT), pen(RIGHT)]
        )
        p.addItem(self.bars)
        self.latest = pg.ScatterPlotItem(size=12, symbol="d", brush=pg.mkBrush("k"), pen=pg.mkPen("w"))
        p.addItem(self.latest)
        self.labels = [pg.TextItem("", color="#222222", anchor=(0.5, 1.0)) for _ in range(2)]
        for i, t in enumerate(self.labels):
            t.setPos(i, 0)
            p.addItem(t)
        self.means = (math.nan, math.nan)
        self.latest_values = (math.nan, math.nan)
        self._last: tuple[float, ...] = ()

    def set_values(self, left: SideSummary, right: SideSummary) -> None:
        """Show the rolling means (bars) and latest steps (diamonds) of both sides."""
        key = (left.mean, left.latest, right.mean, right.latest)
        if key == self._last or all(not math.isfinite(v) for v in key) and not self._last:
            return
        self._last = key
        s = self.scale
        means = [left.mean * s, right.mean * s]
        latest = [left.latest * s, right.latest * s]
        self.means = (means[0], means[1])
        self.latest_values = (latest[0], latest[1])
        heights = [v if math.isfinite(v) else 0.0 for v in means]
        self.bars.setOpts(height=heights)
        xs = [i for i, v in enumerate(latest) if math.isfinite(v)]
        self.latest.setData(x=xs, y=[latest[i] for i in xs])
        top = max([v for v in means + latest if math.isfinite(v)] + [self.y_min_span])
        for i, t in enumerate(self.labels):
            m = means[i]
            t.setText(f"{m:.{self.digits}f}" if math.isfinite(m) else "–")
            t.setPos(i, top * 1.18)
        self.getPlotItem().setYRange(0, top * 1.3, padding=0)


def finite_or_empty(x: np.ndarray) -> np.ndarray:
    return x[np.isfinite(x)]
