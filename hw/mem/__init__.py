"""On-chip memories built on :mod:`amaranth.lib.memory`."""

from .buffer import Buffer
from .one_word import address_shape, one_word_memory
from .skid import Skid

__all__ = ["Buffer", "Skid", "address_shape", "one_word_memory"]
