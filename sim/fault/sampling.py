"""The fault population of a design and a deterministic uniform sample of it.

A fault is a (site, bit, word, cycle) point. The population of one fault model is
every such point within the workload window (cycles ``0 .. window-1``):

* ``seu``: every bit of every register: ``sum(width) x window``;
* ``mbu`` of ``k`` bits: every start bit ``b`` with ``b + k <= width`` of every register
  at least ``k`` bits wide (a multi-bit upset flips ``k`` adjacent bits of one register;
  registers narrower than ``k`` are not mbu sites): ``sum(width - k + 1) x window``;
* ``mem_seu``: every bit of every word of every memory: ``sum(depth x width) x window``.

Each fault model is sampled on its own (a *stratum*); with ``stratify: block`` each
(model, block) pair is, the block being the manifest fault site's ``block``. Within a
stratum the sample is uniform over its points and drawn without replacement (the
Leveugle sample size assumes a finite population sampled without replacement), so no
fault is injected twice. The strata's samples are then shuffled together, so that any
prefix of the campaign (what an interrupted run has done) is a uniform subsample, and
each fault's position is its ``index``. Everything comes from one
``numpy.random.Generator`` seeded with the campaign seed: the same manifest, window,
config and numpy version give the same faults in the same order.
"""

from dataclasses import dataclass

import numpy as np

from .model import Fault, FaultModel


class EmptyPopulation(ValueError):
    """A requested fault model has no sites in this design (e.g. ``mem_seu`` without memories)."""

    def __init__(self, model: FaultModel, reason: str):
        super().__init__(f"{model.value}: {reason}")
        self.model = model
        self.reason = reason


@dataclass(frozen=True)
class Stratum:
    """The sites of one fault model (in one block, when stratified) and their points per site.

    ``starts[i]`` is how many bit positions a fault may start at in ``sites[i]``, ``words[i]``
    its words (1 for a register); a site holds ``starts[i] * words[i] * window`` points.
    """

    model: FaultModel
    block: str | None  # None: the whole design
    sites: tuple[str, ...]
    starts: tuple[int, ...]
    words: tuple[int, ...]
    window: int
    width: int  # bits each fault flips

    @property
    def population(self) -> int:
        return sum(s * w for s, w in zip(self.starts, self.words)) * self.window

    def faults_at(self, positions: np.ndarray) -> list[tuple[str, int, int | None, int]]:
        """(site, bit, word, cycle) of each population position (0 .. population-1)."""
        units = np.asarray([s * w for s, w in zip(self.starts, self.words)], dtype=np.int64)
        first = np.concatenate(([0], np.cumsum(units)[:-1]))
        unit, cycle = np.divmod(np.asarray(positions, dtype=np.int64), self.window)
        site = np.searchsorted(first, unit, side="right") - 1
        offset = unit - first[site]
        word, bit = np.divmod(offset, np.asarray(self.starts, dtype=np.int64)[site])
        memory = self.model is FaultModel.MEM_SEU
        return [(self.sites[s], int(b), int(w) if memory else None, int(c))
                for s, b, w, c in zip(site.tolist(), bit.tolist(), word.tolist(), cycle.tolist())]

    def describe(self, samples: int) -> dict:
        """The stratum as stored in the campaign's meta (``strata``)."""
        return {"model": self.model.value, "block": self.block, "sites": len(self.sites),
                "population": self.population, "samples": samples}


def _site_points(site: dict, model: FaultModel, mbu_width: int) -> tuple[int, int] | None:
    """(start bits, words) of ``site`` under ``model``, or None if the model does not apply to it."""
    if model is FaultModel.MEM_SEU:
        return (site["width"], site["depth"]) if site["kind"] == "memory" else None
    if site["kind"] != "register":
        return None
    if model is FaultModel.SEU:
        return site["width"], 1
    starts = site["width"] - mbu_width + 1
    return (starts, 1) if starts >= 1 else None


def strata(manifest: dict, models: list[FaultModel], *, window: int, mbu_width: int = 2,
           stratify: str = "none") -> list[Stratum]:
    """The strata of ``models`` over ``manifest['fault_sites']``, in model order, then block order.

    Blocks come in the order of their first site in the manifest. Raises
    :class:`EmptyPopulation` when a model has no site (or the window is empty).
    """
    if window < 1:
        raise EmptyPopulation(models[0], f"the workload window is {window} cycles")
    result = []
    for model in models:
        width = mbu_width if model is FaultModel.MBU else 1
        groups: dict[str | None, list[tuple[str, int, int]]] = {}
        for site in manifest["fault_sites"]:
            points = _site_points(site, model, mbu_width)
            if points is not None:
                block = site["block"] if stratify == "block" else None
                groups.setdefault(block, []).append((site["path"], *points))
        if not groups:
            reason = {FaultModel.MEM_SEU: "the design has no memories",
                      FaultModel.MBU: f"no register is {mbu_width} or more bits wide",
                      FaultModel.SEU: "the design has no registers"}[model]
            raise EmptyPopulation(model, reason)
        for block, sites in groups.items():
            paths, starts, words = zip(*sites)
            result.append(Stratum(model=model, block=block, sites=paths, starts=starts, words=words,
                                  window=window, width=width))
    return result


def sample_size(population: int, *, samples: int | None = None, margin: float | None = None,
                confidence: float | None = None) -> int:
    """Injections for a stratum: ``samples`` or the Leveugle size for ``margin``, never above ``population``."""
    if samples is not None:
        return min(samples, population)
    from .metrics import leveugle_sample_size

    return min(int(leveugle_sample_size(population, margin, confidence)), population)


@dataclass(frozen=True)
class Sample:
    """The faults of a campaign (``faults[i].index == i``) and the strata they were drawn from."""

    faults: list[Fault]
    strata: list[Stratum]
    sizes: list[int]

    @property
    def population(self) -> int:
        """Points over every stratum (sites x cycles, summed over the fault models)."""
        return sum(s.population for s in self.strata)

    def describe(self) -> list[dict]:
        return [s.describe(n) for s, n in zip(self.strata, self.sizes)]


def draw(manifest: dict, models: list[FaultModel], *, window: int, seed: int, samples: int | None = None,
         margin: float | None = None, confidence: float | None = None, mbu_width: int = 2,
         stratify: str = "none") -> Sample:
    """Sample faults uniformly within each stratum, without replacement; deterministic for ``seed``."""
    parts = strata(manifest, models, window=window, mbu_width=mbu_width, stratify=stratify)
    rng = np.random.default_rng(seed)
    sizes, drawn = [], []
    for stratum in parts:
        size = sample_size(stratum.population, samples=samples, margin=margin, confidence=confidence)
        positions = rng.choice(stratum.population, size=size, replace=False)
        sizes.append(size)
        drawn += [(stratum, point) for point in stratum.faults_at(positions)]
    order = rng.permutation(len(drawn))
    faults = []
    for index, position in enumerate(order.tolist()):
        stratum, (site, bit, word, cycle) = drawn[position]
        faults.append(Fault(index=index, model=stratum.model, site=site, bit=bit, cycle=cycle, word=word,
                            width=stratum.width))
    return Sample(faults=faults, strata=parts, sizes=sizes)
