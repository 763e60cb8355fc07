"""On-chip memories built on :mod:`amaranth.lib.memory`."""

from .buffer import Buffer

__all__ = ["Buffer"]
