"""The shared records of pelvimon, in one place: ``ImuBatch``, ``Step``, ``Asymmetry``, ``Alert``."""

from pelvimon.dsp.records import Alert, Asymmetry, Side, Step
from pelvimon.firmware_protocols.batch import G_MPS2, ImuBatch, ImuBatchError

__all__ = ["G_MPS2", "Alert", "Asymmetry", "ImuBatch", "ImuBatchError", "Side", "Step"]
