"""On-chip memories built on :mod:`amaranth.lib.memory`."""

from .buffer import Buffer
from .one_word import address_shape, one_word_memory

__all__ = ["Buffer", "address_shape", "one_word_memory"]
