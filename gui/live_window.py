"""The live dashboard: sensor panel, calibration prompt, scrolling pelvis angles with initial contacts by
side, per-side pelvic drop and contact time, cadence and its trend, and the alert banner.

The window pulls: a 30 Hz ``QTimer`` drains the engine's subscription (never blocking) into the
preallocated ring buffers of :class:`~pelvimon.dashboard.LiveState` and redraws what changed. Bluetooth,
decoding, the analysis and the recording all run in the engine's worker thread.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from pelvimon.dashboard import LiveState, engine_finished

from .widgets import (
    ANGLE_COLORS,
    LEFT,
    RIGHT,
    AlertBanner,
    CalibrationPrompt,
    SideBars,
    configure_pyqtgraph,
    pen,
    side_legend,
    style_plot,
    zero_line,
)

EngineFactory = Callable[[str, str, bool], Any]
"""``factory(sensor_spec, session_name, record) -> SessionEngine`` (not started)."""

ANGLES = (
    ("tilt", "Tilt", "anterior +"),
    ("obliquity", "Obliquity", "left up +"),
    ("rotation", "Rotation", "to left +"),
)


def _fmt(v: float, digits: int = 0, unit: str = "") -> str:
    return f"{v:.{digits}f}{unit}" if v is not None and math.isfinite(v) else "–"


def _mmss(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "–"
    s = int(seconds)
    return f"{s // 60:02d}:{s % 60:02d}"


class _ScanRelay(QtCore.QObject):
    """Carries scan results from the scanning thread to the GUI thread."""

    done = QtCore.Signal(object)


class SensorPanel(QtWidgets.QGroupBox):
    """Sensor choice (scan, connect), stream facts, the record toggle and the session name."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Sensor", parent)
        lay = QtWidgets.QVBoxLayout(self)
        self.sensor = QtWidgets.QComboBox()
        self.sensor.setEditable(True)
        self.sensor.setToolTip("A sensor address or name, or emulated:movesense?... (see pelvimon live --help)")
        edit = self.sensor.lineEdit()
        if edit is not None:
            edit.setPlaceholderText("address, name or emulated:movesense")
        lay.addWidget(self.sensor)
        row = QtWidgets.QHBoxLayout()
        self.scan_button = QtWidgets.QPushButton("Scan")
        self.connect_button = QtWidgets.QPushButton("Connect")
        row.addWidget(self.scan_button)
        row.addWidget(self.connect_button)
        lay.addLayout(row)
        form = QtWidgets.QFormLayout()
        form.setLabelAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
        self.values: dict[str, QtWidgets.QLabel] = {}
        for key, label in (
            ("device", "Device"),
            ("protocol", "Protocol"),
            ("rate", "Rate"),
            ("battery", "Battery"),
            ("loss", "Data loss"),
            ("session", "Session time"),
            ("steps", "Steps"),
            ("gait", "Gait"),
            ("recording", "Recorded"),
        ):
            v = QtWidgets.QLabel("–")
            v.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            v.setWordWrap(True)  # (a sensor's name with its address is wider than the panel)
            self.values[key] = v
            form.addRow(label + ":", v)
        lay.addLayout(form)
        self.record = QtWidgets.QCheckBox("Record session")
        self.record.setToolTip("Write everything to a session file (on by default)")
        lay.addWidget(self.record)
        self.file = QtWidgets.QLabel("")
        self.file.setWordWrap(True)
        self.file.setStyleSheet("color:#555555; font-size:8pt;")
        lay.addWidget(self.file)
        lay.addWidget(QtWidgets.QLabel("Session name:"))
        self.name = QtWidgets.QLineEdit()
        self.name.setPlaceholderText("e.g. runner-A treadmill 12 km/h")
        self.name.setToolTip("Used in the file name of the next recording")
        lay.addWidget(self.name)
        self.sound = QtWidgets.QCheckBox("Sound on alert")
        self.sound.setChecked(False)
        lay.addWidget(self.sound)
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color:#444444;")
        lay.addWidget(self.status)
        lay.addStretch(1)
        colour_key = QtWidgets.QLabel(
            f"<b><span style='color:{LEFT}'>■ Left</span> &nbsp; <span style='color:{RIGHT}'>■ Right</span></b>"
            "<br>steps are named by the stance foot"
        )
        colour_key.setWordWrap(True)
        lay.addWidget(colour_key)
        self.setFixedWidth(250)


class CadenceView(QtWidgets.QWidget):
    """Cadence now (big number) and its trend (the 8-step cadence at each step) over the last two minutes."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.now = QtWidgets.QLabel("– spm")
        font = self.now.font()
        font.setPointSize(20)
        font.setBold(True)
        self.now.setFont(font)
        self.now.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.now.setToolTip("Mean cadence of the last 8 steps")
        caption = QtWidgets.QLabel("Cadence now (steps/min)")
        caption.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(caption)
        lay.addWidget(self.now)
        self.plot = pg.PlotWidget()
        p = self.plot.getPlotItem()
        style_plot(p, left="Cadence (steps/min)", bottom="Session time (s)", title="Cadence trend, last 2 min (8 steps)")
        p.setMouseEnabled(False, False)
        p.hideButtons()
        self.curve = p.plot(pen=pen("#222222"))
        lay.addWidget(self.plot, 1)

    def set_values(self, now: float, t: np.ndarray, cad: np.ndarray) -> None:
        self.now.setText(f"{now:.0f} spm" if math.isfinite(now) else "– spm")
        self.curve.setData(t, cad)
        if cad.size:
            lo, hi = float(cad.min()), float(cad.max())
            mid = 0.5 * (lo + hi)
            half = max(0.5 * (hi - lo) * 1.2, 10.0)  # (at least 20 spm: step-to-step scatter is not a trend)
            self.plot.getPlotItem().setYRange(mid - half, mid + half, padding=0)


class LiveWindow(QtWidgets.QMainWindow):
    """The live dashboard of one session.

    Parameters
    ----------
    engine : SessionEngine, optional
        A session to show (started here if not running yet).
    engine_factory : callable, optional
        ``factory(sensor_spec, session_name, record) -> SessionEngine`` used by the Connect button.
    refresh_hz : float
        Redraw rate, Hz.
    rate_hz : float
        Highest sample rate expected (sizes the ring buffers).
    record : bool
        Initial state of the record toggle.
    scan : callable, optional
        ``scan() -> list of FoundSensor`` run in a thread by the Scan button (default: Bluetooth scan).
    """

    def __init__(
        self,
        engine: Any = None,
        *,
        engine_factory: EngineFactory | None = None,
        refresh_hz: float = 30.0,
        rate_hz: float = 208.0,
        record: bool = True,
        sensor_text: str = "",
        name: str = "",
        scan: Callable[[], list[Any]] | None = None,
        title: str = "pelvimon live",
    ) -> None:
        super().__init__()
        configure_pyqtgraph()
        self.setWindowTitle(title)
        self.engine: Any = None
        self.engine_factory = engine_factory
        self._scan_fn = scan
        self._sub: Any = None
        self.state = LiveState(rate_hz=rate_hz)
        self.state.alert_listeners.append(self._on_alert_change)
        self.n_frames = 0
        self.paint_enabled = True
        self._last_steps_total = -1
        self.alerts_seen: list[tuple[str, bool]] = []

        central = QtWidgets.QWidget()
        self.setCentralWidget(central)
        outer = QtWidgets.QHBoxLayout(central)
        self.panel = SensorPanel()
        self._device_fit: tuple[str, int] | None = None  # the device name shown, and the width it was fitted to
        self.panel.record.setChecked(record)
        self.panel.name.setText(name)
        if sensor_text:
            self.panel.sensor.setEditText(sensor_text)
            edit = self.panel.sensor.lineEdit()
            if edit is not None:
                edit.setCursorPosition(0)
        outer.addWidget(self.panel)
        right = QtWidgets.QVBoxLayout()
        outer.addLayout(right, 1)
        self.banner = AlertBanner()
        right.addWidget(self.banner)
        self.prompt = CalibrationPrompt()
        right.addWidget(self.prompt)

        # scrolling angles, one plot per angle, linked time axis
        self.angles_view = pg.GraphicsLayoutWidget()
        self.angle_plots: dict[str, pg.PlotItem] = {}
        self.angle_curves: dict[str, pg.PlotDataItem] = {}
        self.ic_marks: dict[tuple[str, str], pg.ScatterPlotItem] = {}
        first: pg.PlotItem | None = None
        self.angles_view.addLabel(
            "<b>Pelvis angles, last 10 s</b> &nbsp; (tilt: anterior +, obliquity: left side up +, "
            "rotation: pelvis turned to the left +)",
            row=0,
            col=0,
            size="10pt",
            color="#222222",
        )
        for row, (key, label, _sign) in enumerate(ANGLES, start=1):
            p = self.angles_view.addPlot(row=row, col=0)
            last = row == len(ANGLES)
            style_plot(p, left=f"{label} (deg)", bottom="Session time (s)" if last else None)
            p.setMouseEnabled(False, False)
            p.hideButtons()
            p.setMenuEnabled(False)
            if not last:
                p.getAxis("bottom").setStyle(showValues=False)
            zero_line(p)
            curve = p.plot(pen=pen(ANGLE_COLORS[key]))
            self.angle_plots[key] = p
            self.angle_curves[key] = curve
            for side, color, symbol in (("L", LEFT, "t1"), ("R", RIGHT, "t")):
                sc = pg.ScatterPlotItem(size=9, symbol=symbol, brush=pg.mkBrush(color), pen=pg.mkPen(color))
                p.addItem(sc)
                self.ic_marks[(key, side)] = sc
            if first is None:
                first = p
                side_legend(
                    p,
                    [
                        (self.ic_marks[(key, "L")], "left foot contact"),
                        (self.ic_marks[(key, "R")], "right foot contact"),
                    ],
                    offset=(5, 5),  # (top left, over the oldest samples: the newest come in on the right)
                )
            else:
                p.setXLink(first)
        assert first is not None
        self._x_master = first
        first.setXRange(-self.state.angle_window_s, 0, padding=0)
        right.addWidget(self.angles_view, 3)

        bottom = QtWidgets.QHBoxLayout()
        self.cpd_bars = SideBars(
            "Pelvic drop per stance side", "CPD (deg)", digits=1, y_min_span=4.0
        )
        self.contact_bars = SideBars(
            "Ground contact time", "Contact time (ms)", scale=1000.0, digits=0, y_min_span=100.0
        )
        self.cadence = CadenceView()
        bottom.addWidget(self.cpd_bars, 1)
        bottom.addWidget(self.contact_bars, 1)
        bottom.addWidget(self.cadence, 1)
        right.addLayout(bottom, 2)
        note = QtWidgets.QLabel("Bars: mean of the last 20 steps of each side.   ◆: latest step.")
        note.setStyleSheet("color:#444444;")
        right.addWidget(note)

        self.panel.scan_button.clicked.connect(self.scan)
        self.panel.connect_button.clicked.connect(self._connect_clicked)
        self.panel.record.toggled.connect(self._record_toggled)
        self.panel.name.editingFinished.connect(self._name_changed)
        self._relay = _ScanRelay()
        self._relay.done.connect(self._scan_done)

        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self.tick)
        self.timer.start(int(round(1000.0 / refresh_hz)))
        self.resize(1400, 860)
        if engine is not None:
            self.set_engine(engine)

    # ------------------------------------------------------------------ session control
    def set_engine(self, engine: Any) -> None:
        """Show ``engine``'s session (subscribe, apply the record toggle, start it if needed)."""
        self.stop_engine()
        self.engine = engine
        self._sub = engine.subscribe()
        name = self.panel.name.text().strip()
        if name and not getattr(engine, "name", ""):
            engine.name = name
        engine.set_recording(self.panel.record.isChecked())
        if not engine.running and not engine_finished_safe(engine):
            engine.start()
        self.panel.connect_button.setText("Disconnect")

    def stop_engine(self) -> None:
        """End the current session (closes its recording)."""
        if self.engine is not None:
            self.engine.stop()
            if self._sub is not None:
                self.state.ingest(self._sub.drain())
            self._update_panel()
        self.panel.connect_button.setText("Connect")

    def _connect_clicked(self) -> None:
        if self.engine is not None and not engine_finished_safe(self.engine):
            self.stop_engine()
            self.panel.status.setText("Disconnected.")
            return
        spec = self.panel.sensor.currentText().strip()
        data = self.panel.sensor.currentData()
        if data:
            spec = str(data)
        if not spec:
            self.panel.status.setText("Choose a sensor: press Scan, or type an address or emulated:movesense.")
            return
        if self.engine_factory is None:
            self.panel.status.setText("This window cannot open sensors by itself.")
            return
        try:
            engine = self.engine_factory(spec, self.panel.name.text().strip(), self.panel.record.isChecked())
        except Exception as exc:  # noqa: BLE001 - shown to the user in one line
            self.panel.status.setText(f"Cannot open {spec}: {exc}")
            return
        self.state = _fresh_state(self.state)
        self.state.alert_listeners.append(self._on_alert_change)
        self._last_steps_total = -1
        self.set_engine(engine)

    def _record_toggled(self, on: bool) -> None:
        if self.engine is not None:
            self.engine.set_recording(on)

    def _name_changed(self) -> None:
        if self.engine is not None:
            self.engine.name = self.panel.name.text().strip()

    def scan(self) -> None:
        """Look for sensors in a background thread; the results fill the sensor list."""
        self.panel.scan_button.setEnabled(False)
        self.panel.status.setText("Scanning for sensors (5 s)...")
        fn = self._scan_fn or _ble_scan
        relay = self._relay

        def work() -> None:
            try:
                relay.done.emit(fn())
            except Exception as exc:  # noqa: BLE001 - reported in the panel
                relay.done.emit(exc)

        threading.Thread(target=work, name="pelvimon-scan", daemon=True).start()

    def _scan_done(self, result: Any) -> None:
        self.panel.scan_button.setEnabled(True)
        if isinstance(result, Exception):
            self.panel.status.setText(f"Scan failed: {result}")
            return
        combo = self.panel.sensor
        combo.clear()
        for s in result:
            batt = f", battery {s.battery_pct} %" if getattr(s, "battery_pct", None) is not None else ""
            combo.addItem(f"{s.name} ({s.protocol}, {s.rssi} dBm{batt})", s.address)
        self.panel.status.setText(
            f"Found {len(result)} sensor(s): pick one and press Connect." if result else "No supported sensor found."
        )

    # ------------------------------------------------------------------ drawing
    def tick(self) -> None:
        """One refresh: drain the subscription, then redraw."""
        if self._sub is None:
            return
        events = self._sub.drain()
        if events:
            self.state.ingest(events)
            if self.paint_enabled:
                self.redraw()
        if self.n_frames % 6 == 0:
            self._update_panel()
        self.n_frames += 1

    def redraw(self) -> None:
        st = self.state
        a = st.recent_angles()
        t_now = st.t_now_s
        if a.shape[0]:
            t = a[:, 0].copy()
            for k, (key, _, _) in enumerate(ANGLES):
                self.angle_curves[key].setData(t, a[:, k + 1].copy())
        if math.isfinite(t_now):
            self._x_master.setXRange(t_now - st.angle_window_s, t_now, padding=0)
        if st.steps.total != self._last_steps_total:
            self._last_steps_total = st.steps.total
            self._redraw_steps(a)
        self.prompt.set_prompt(st.calibration_prompt)

    def _redraw_steps(self, a: np.ndarray) -> None:
        st = self.state
        for side in ("L", "R"):
            t_ic = st.step_marks(side)
            for k, (key, _, _) in enumerate(ANGLES):
                if a.shape[0] and t_ic.size:
                    y = np.interp(t_ic, a[:, 0], a[:, k + 1])
                    ok = np.isfinite(y)
                    self.ic_marks[(key, side)].setData(x=t_ic[ok], y=y[ok])
                else:
                    self.ic_marks[(key, side)].setData(x=[], y=[])
        cpd = st.side_summary("cpd_deg")
        self.cpd_bars.set_values(cpd["L"], cpd["R"])
        ct = st.side_summary("contact_time_s")
        self.contact_bars.set_values(ct["L"], ct["R"])
        t, c = st.cadence_trend()
        self.cadence.set_values(st.cadence_now(), t, c)
        self._update_banner()

    def _update_banner(self) -> None:
        st = self.state
        if st.active_alerts:
            self.banner.set_state("alert", "⚠ " + st.alert_text())
            return
        cpd = st.side_summary("cpd_deg")
        if min(cpd["L"].n, cpd["R"].n) >= 8:
            self.banner.set_state(
                "ok",
                f"No asymmetry alert. Pelvic drop: left stance {cpd['L'].mean:.1f}°, right stance "
                f"{cpd['R'].mean:.1f}° (last {min(cpd['L'].n, cpd['R'].n)} steps per side).",
            )
        else:
            self.banner.set_state(
                "wait", "Waiting for steps: the left/right comparison starts after about 8 steps per side."
            )

    def _on_alert_change(self, alert: Any, active: bool) -> None:
        self.alerts_seen.append((alert.message, active))
        self._update_banner()
        if active and self.panel.sound.isChecked():
            QtWidgets.QApplication.beep()

    def _update_panel(self) -> None:
        st = self.state
        v = self.panel.values
        eng = self.engine
        info = getattr(eng, "info", None) if eng is not None else None
        if info is not None:
            device = v["device"]
            fit = (info.name or "–", device.width())
            if fit != self._device_fit:  # (laid out again only when the name or the width changed)
                self._device_fit = fit
                device.setText(fit[0])
                # a wrapped name's lines: a form layout does not always grow its row for them by itself
                need = device.heightForWidth(fit[1])
                if need > 0:
                    device.setMinimumHeight(need)
            v["protocol"].setText(info.protocol or "–")
            v["rate"].setText(_fmt(info.rate_hz, 0, " Hz"))
        v["battery"].setText(_fmt(st.stat("battery_pct"), 0, " %"))
        v["loss"].setText(_fmt(st.stat("loss_pct"), 1, " %"))
        v["session"].setText(_mmss(st.t_now_s))
        v["steps"].setText(_fmt(st.stat("n_steps"), 0))
        v["gait"].setText(st.gait_state or "–")
        rec = getattr(eng, "recording_path", None) if eng is not None else None
        if rec is not None:
            v["recording"].setText(st.recording_text() + "  ● REC")
            v["recording"].setStyleSheet("color:#C0392B; font-weight:bold;")
            self.panel.file.setText(str(rec))
        else:
            v["recording"].setText(st.recording_text())
            v["recording"].setStyleSheet("")
            paths = getattr(eng, "recordings", None) if eng is not None else None
            self.panel.file.setText(f"last file: {paths[-1]}" if paths else "")
        status = st.status
        if eng is not None and getattr(eng, "error", None):
            status = f"Error: {eng.error}"
        elif eng is not None and engine_finished_safe(eng):
            status = (status + " — session ended") if status else "Session ended"
            self.panel.connect_button.setText("Connect")
        self.panel.status.setText(status)

    # ------------------------------------------------------------------ Qt
    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt naming
        self.timer.stop()
        self.stop_engine()
        super().closeEvent(event)

    @property
    def recordings(self) -> list[Path]:
        return list(getattr(self.engine, "recordings", []) or [])


def engine_finished_safe(engine: Any) -> bool:
    """The engine ran and ended (False for an engine never started)."""
    fin = getattr(engine, "finished", None)
    if fin is not None:
        return bool(fin.is_set())
    return engine_finished(engine)


def _fresh_state(old: LiveState) -> LiveState:
    rows = old.angles.capacity
    st = LiveState(rate_hz=208.0, angle_window_s=old.angle_window_s)
    if st.angles.capacity < rows:
        st.angles = type(old.angles)(rows, 4)
    return st


def _ble_scan() -> list[Any]:
    import asyncio

    from pelvimon.sensors.ble import scan

    return asyncio.run(scan(5.0))
