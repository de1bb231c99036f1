"""Running a window: the QApplication, auto-quit after N seconds, screenshots."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from .widgets import ensure_app

__all__ = ["ensure_app", "grab_array", "run_window", "save_screenshot"]


def grab_array(widget: QtWidgets.QWidget) -> np.ndarray:
    """The widget's pixels as an (H, W, 4) uint8 array (B, G, R, A), copied out of the QImage."""
    img = widget.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_ARGB32)
    h, w, bpl = img.height(), img.width(), img.bytesPerLine()
    buf = bytes(img.constBits())  # a copy: a view that outlives the QImage crashes
    arr = np.frombuffer(buf, dtype=np.uint8).reshape(h, bpl)[:, : w * 4].reshape(h, w, 4)
    return arr.copy()


def save_screenshot(widget: QtWidgets.QWidget, path: str | Path) -> Path:
    """Render ``widget`` (offscreen works) into a PNG file."""
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    QtWidgets.QApplication.processEvents()
    if not widget.grab().save(str(p), "PNG"):
        raise OSError(f"{p}: cannot write the screenshot (check the folder and the .png suffix)")
    return p


def run_window(
    window: QtWidgets.QWidget,
    *,
    seconds: float | None = None,
    screenshot: str | Path | None = None,
    before_quit: Callable[[], None] | None = None,
) -> int:
    """Show ``window`` and run the event loop until it is closed or ``seconds`` (wall clock) pass.

    With ``screenshot``, the window is saved as PNG just before quitting (after ``seconds``, or at once
    after the first paint when ``seconds`` is None).
    """
    app = ensure_app()
    window.show()
    shot: dict[str, Path | Exception] = {}

    def finish() -> None:
        if before_quit is not None:
            before_quit()
        if screenshot is not None:
            try:
                shot["path"] = save_screenshot(window, screenshot)
            except OSError as exc:
                shot["error"] = exc
        window.close()
        app.quit()

    if seconds is not None:
        QtCore.QTimer.singleShot(int(max(seconds, 0.0) * 1000), finish)
    elif screenshot is not None:
        QtCore.QTimer.singleShot(500, finish)
    app.exec()
    if "error" in shot:
        raise shot["error"]  # type: ignore[misc]
    return 0
