"""Exposure tables: which golden-model value a mapped RTL bit holds in which cycles, and who reads it.

The kinds' models (``sim/fault/model_tpe.py``, ``sim/fault/model_tile.py``) fill an
:class:`ExposureBuilder`; :class:`sim.fault.model_level.ModelEngine` looks faults up in the
resulting :class:`Exposures` and turns hits into element changes (``docs/fault-campaigns.md``).
"""

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

OPERAND, REGISTER = 0, 1


class ExposureBuilder:
    """Collects exposures one by one; :meth:`table` turns them into arrays."""

    def __init__(self, manifest: dict):
        self.sites = {site["path"]: index for index, site in enumerate(manifest["fault_sites"])}
        self.rows: list[tuple] = []
        self.consumers: list[tuple[list[int], list[int]]] = []

    def has(self, site: str) -> bool:
        return site in self.sites

    def operand(self, site: str, *, bits: tuple[int, int], cycles: tuple[int, int], value: int, signed: bool,
                elements: Sequence[int], partners: Sequence[int], word: int = 0, stage: int = 0) -> None:
        """Bits ``bits[0] .. bits[0]+bits[1]-1`` of ``site`` hold operand ``value`` (``bits[1]`` wide) in
        cycles ``cycles[0] .. cycles[1]``; output ``elements`` (of ``stage``) add ``value * partners``."""
        if site in self.sites and cycles[0] <= cycles[1] and len(elements):
            self.rows.append((self.sites[site], word, bits[0], bits[1], cycles[0], cycles[1], OPERAND,
                              int(value), int(signed), stage))
            self.consumers.append((list(elements), list(partners)))

    def register(self, site: str, *, width: int, cycles: tuple[int, int], code: int, element: int,
                 word: int = 0, stage: int = 0, offset: int = 0) -> None:
        """Bits ``offset ..`` of ``site`` hold the ``width``-bit ``code`` in ``cycles``; ``element`` takes its change."""
        if site in self.sites and cycles[0] <= cycles[1]:
            self.rows.append((self.sites[site], word, offset, width, cycles[0], cycles[1], REGISTER,
                              int(code) & ((1 << width) - 1), 0, stage))
            self.consumers.append(([element], [1]))

    def table(self) -> "Exposures":
        columns = list(zip(*self.rows)) if self.rows else [()] * 10
        arrays = [np.asarray(c, dtype=np.int64) for c in columns]
        counts = np.asarray([len(e) for e, _ in self.consumers], dtype=np.int64)
        start = np.concatenate(([0], np.cumsum(counts)[:-1])) if len(counts) else counts
        elements = np.asarray([x for e, _ in self.consumers for x in e], dtype=np.int64)
        partners = np.asarray([x for _, p in self.consumers for x in p], dtype=np.int64)
        return Exposures(*arrays, start=start, count=counts, elements=elements, partners=partners)


@dataclass(frozen=True)
class Exposures:
    """Which value every mapped (site, word, bit) holds in which cycles, and who reads it (arrays)."""

    site: np.ndarray
    word: np.ndarray
    offset: np.ndarray
    width: np.ndarray
    first: np.ndarray
    last: np.ndarray
    kind: np.ndarray
    value: np.ndarray
    signed: np.ndarray
    stage: np.ndarray
    start: np.ndarray
    count: np.ndarray
    elements: np.ndarray
    partners: np.ndarray

    def match(self, site: np.ndarray, word: np.ndarray, bit: np.ndarray, cycle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(flip index, exposure index) of every flip that hits an exposure (at most one each)."""
        hits_f, hits_e = [], []
        order = np.argsort(self.site, kind="stable")
        keys = self.site[order]
        for s in np.unique(site):
            lo, hi = np.searchsorted(keys, s), np.searchsorted(keys, s, side="right")
            if lo == hi:
                continue
            rows = order[lo:hi]
            flips = np.nonzero(site == s)[0]
            inside = ((word[flips, None] == self.word[None, rows])
                      & (bit[flips, None] >= self.offset[None, rows])
                      & (bit[flips, None] < self.offset[None, rows] + self.width[None, rows])
                      & (cycle[flips, None] >= self.first[None, rows])
                      & (cycle[flips, None] <= self.last[None, rows]))
            f, e = np.nonzero(inside)
            hits_f.append(flips[f])
            hits_e.append(rows[e])
        if not hits_f:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(hits_f), np.concatenate(hits_e)


def flip_change(value: np.ndarray, position: np.ndarray, width: np.ndarray, signed: np.ndarray) -> np.ndarray:
    """``flipped - value`` when bit ``position`` of the ``width``-bit code of ``value`` is inverted."""
    weight = np.left_shift(np.int64(1), position)
    top = signed.astype(bool) & (position == width - 1)
    weight = np.where(top, -weight, weight)  # the sign bit of a two's-complement field weighs -2^(w-1)
    was_set = (np.right_shift(value, position) & 1).astype(bool)
    return np.where(was_set, -weight, weight)


@dataclass
class Plan:
    """What a kind's model hands the engine: the exposures, the stages' sizes and how to finish.

    ``finish(changes)`` takes, per stage, an ``(F, size)`` int64 array of summed element
    changes and returns the ``(F, outputs)`` output elements of the F faulty runs, in the
    order the harness reads them (beats, then element fields).
    """

    exposures: Exposures
    stage_sizes: tuple[int, ...]
    finish: Callable[[list[np.ndarray]], np.ndarray]
    expected: np.ndarray  # fault-free output elements
    window: int
    visible: dict[str, int]  # site path -> bits the model maps (from bit 0)
