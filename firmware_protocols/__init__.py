"""Bytes <-> samples, one module per sensor firmware. Standard library and numpy only."""

from .batch import G_MPS2, ImuBatch, ImuBatchError

__all__ = ["G_MPS2", "ImuBatch", "ImuBatchError"]
