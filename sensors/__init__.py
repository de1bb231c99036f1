"""Where samples come from and go: BLE (bleak), emulated peripherals, simulator, CSV import, recorder,
replay. Never imports Qt."""

from .source import RawNotification, Source, SourceError, SourceEvent, SourceInfo, SourceStatus

__all__ = ["RawNotification", "Source", "SourceError", "SourceEvent", "SourceInfo", "SourceStatus"]
