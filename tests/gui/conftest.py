"""Window tests: each test's widgets are closed, deleted and collected before the next test starts.

pyqtgraph items left for Python's cyclic garbage collector can be collected at any later allocation, and
when that falls inside the next test's paint event (a view whose scene items go away while it draws),
the process crashed now and then. Collecting at the end of each test keeps that out of paint events.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _collect_widgets(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "qtbot" not in request.fixturenames:
        return
    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance()
    if app is None:
        return
    for w in QtWidgets.QApplication.topLevelWidgets():
        w.close()
        w.deleteLater()
    app.processEvents()
    gc.collect()
    app.processEvents()
