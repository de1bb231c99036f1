"""Samples -> orientation -> gait events -> steps -> asymmetry -> alerts. numpy, scipy and vqf only."""

from ._inputs import MIN_RATE_HZ, RATE_TOLERANCE
from .records import Alert, Asymmetry, Side, Step

__all__ = ["MIN_RATE_HZ", "RATE_TOLERANCE", "Alert", "Asymmetry", "Side", "Step"]
