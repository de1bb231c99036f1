"""Running a window: the QApplication, auto-quit after N seconds, screenshots."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from .widgets import ensure_app

__all__ = ["ensure_app", "grab_array", "quit_on_signals", "run_window", "save_screenshot"]


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

    Ctrl-C in the terminal ends it the same way (see :func:`quit_on_signals`), and so do SIGTERM and SIGHUP
    when the command line has routed them to the Ctrl-C path (``pelvimon live``/``demo``).
    """
    app = ensure_app()
    window.show()
    shot: dict[str, Path | Exception] = {}
    done = {"finished": False}

    def finish() -> None:
        if done["finished"]:
            return
        done["finished"] = True
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
    with quit_on_signals(finish):
        app.exec()
    if "error" in shot:
        raise shot["error"]  # type: ignore[misc]
    return 0


def dispose_window(window: QtWidgets.QWidget) -> None:
    """Destroy a window whose event loop has ended, now, while its Python objects (plot items and all) are
    still there. Left to the cyclic garbage collector, its parts are freed in any order, and a later event
    loop in the same process (a test run) crashed deleting the rest."""
    window.deleteLater()
    QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete)


@contextmanager
def quit_on_signals(finish: Callable[[], None], poll_ms: int = 200) -> Iterator[None]:
    """While a Qt event loop runs: Ctrl-C (SIGINT) calls ``finish`` from the event loop, as the window's
    own end would, instead of a KeyboardInterrupt that Qt would swallow inside some slot.

    Python runs signal handlers only between bytecodes, so a timer runs a little Python every ``poll_ms``.
    SIGINT is taken over only from Python's default handler (an ignored SIGINT stays ignored). SIGTERM and
    SIGHUP are touched only when a Python handler already owns them (``pelvimon.cli`` installs one for the
    session commands to take the Ctrl-C path): that handler still runs (it notes the signal for the exit
    code), and then the window ends. Without one they keep their default action. Main thread only;
    the previous handlers come back on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def finish_soon() -> None:
        QtCore.QTimer.singleShot(0, finish)

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        finish_soon()

    previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.default_int_handler
        signal.signal(signal.SIGINT, on_sigint)
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)  # no SIGHUP on Windows
        if sig is None:
            continue
        owner = signal.getsignal(sig)
        if not callable(owner):
            continue

        def forward(
            signum: int, frame: FrameType | None, owner: Callable[[int, FrameType | None], object] = owner
        ) -> None:
            try:
                owner(signum, frame)  # may take the Ctrl-C path itself (then on_sigint did finish_soon)
            except KeyboardInterrupt:
                pass
            finish_soon()

        previous[sig] = owner
        signal.signal(sig, forward)
    keepalive = QtCore.QTimer()
    keepalive.timeout.connect(lambda: None)
    keepalive.start(poll_ms)
    try:
        yield
    finally:
        keepalive.stop()
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
