"""pyqtgraph + Qt (PySide6): live dashboard and session review. The only layer that imports Qt."""
