"""Protocol names -> protocol objects. Modules are imported on first use."""

from __future__ import annotations

import importlib

from .base import Protocol

_MODULES: dict[str, str] = {
    "movesense": "movesense",
    "polar_pmd": "polar_pmd",
    "metawear": "metawear",
    "witmotion": "witmotion",
    "movella_dot": "movella_dot",
    "pelvimon": "pelvimon_ref",
}


def available() -> list[str]:
    """Names of the protocols whose module is present."""
    names = []
    for name, mod in _MODULES.items():
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError:
            continue
        names.append(name)
    return names


def get(name: str) -> Protocol:
    """The protocol called ``name``; ``KeyError`` with the known names if there is none."""
    if name not in _MODULES:
        raise KeyError(f"unknown protocol {name!r}; known: {', '.join(available())}")
    mod = importlib.import_module(f"{__package__}.{_MODULES[name]}")
    return mod.PROTOCOL
