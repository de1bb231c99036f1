"""Samples -> orientation -> gait events -> steps -> asymmetry -> alerts. numpy, scipy and vqf only."""

from .records import Alert, Asymmetry, Side, Step

__all__ = ["Alert", "Asymmetry", "Side", "Step"]
