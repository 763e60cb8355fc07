"""Edge-MoE's reordered attention order as counters: the steps of ``Q K^T`` (and ``A V``) with ``p`` slots.

The order is that of :func:`sim.golden.moevit.attention._reordered_steps` (the reference). A
step is a pair (block ``b``, key ``k``): block ``b`` (``base = b*p``) streams the key rows
``0 .. T-1`` in order, one per step; slot ``i`` holds query row ``base + i`` from key ``i`` on
(*new*: loaded at key ``i``) and, for keys ``0 .. i-1``, still holds row ``base - p + i`` of the
previous block (*old*), which needs exactly those keys. So every step loads one key row and at
most one query row whatever ``p`` is. The walk skips the steps no slot needs, which happens only
at the end of the final block (the block whose base is past the rows).

Every stage that follows the order (the key and value requests, the MAC array) keeps its own
copy of these counters and steps it itself, so no stage passes step coordinates to another.
"""

from amaranth.hdl import Const, Module, Mux, Signal, Value, signed
from amaranth.utils import bits_for

from .select import equals


class SkewWalk:
    """The counters of one stage walking the reordered order (see the module docstring).

    ``start`` (one cycle; ``tokens`` valid then and stable while the walk runs) moves to the first
    step, ``step`` to the next. ``end`` is high when the walk has passed its last step (also after
    reset, before the first ``start``). Position: ``key``, ``block``, ``base`` (``block * p``),
    ``first_block``, ``wrap`` (``key`` is the block's last key, ``T - 1``); with ``word`` > 0 also
    ``key_word`` and ``key_lane`` (``key // word`` and ``key % word``).
    """

    def __init__(self, m: Module, name: str, *, p: int, t_max: int, tokens: Value, start: Value, step: Value,
                 word: int = 0):
        self.m, self.p, self.t_max = m, p, t_max
        blocks = -(-t_max // p) + 2
        self.key = Signal(range(max(2, t_max)), name=f"{name}_key")
        self.block = Signal(range(blocks), name=f"{name}_block")
        self.base = Signal(range(blocks * p), name=f"{name}_base")
        self.first_block = Signal(init=1, name=f"{name}_first_block")
        # T - base: the new rows left from this block on (<= 0 in the final block)
        self.rows_left = Signal(signed(bits_for(t_max) + bits_for(p) + 1), name=f"{name}_rows_left")
        self.last_key = Signal(range(max(2, t_max)), name=f"{name}_last_key")
        self.wrap = Signal(name=f"{name}_wrap")
        self.end = Signal(name=f"{name}_end")
        m.d.comb += [
            self.wrap.eq(self.key == self.last_key),
            # no slot is live: no new rows and no old row needs this key (old rows: keys < rows_left + p - 1)
            self.end.eq((self.rows_left <= 0) & (self.first_block | (self.key + 1 >= self.rows_left + p))),
        ]
        if word:
            self.key_word = Signal(range(max(2, -(-t_max // word))), name=f"{name}_key_word")
            self.key_lane = Signal(range(max(2, word)), name=f"{name}_key_lane")
        with m.If(start):
            m.d.sync += [self.key.eq(0), self.block.eq(0), self.base.eq(0), self.first_block.eq(1),
                         self.rows_left.eq(tokens), self.last_key.eq(tokens - 1)]
            if word:
                m.d.sync += [self.key_word.eq(0), self.key_lane.eq(0)]
        with m.Elif(step):
            with m.If(self.wrap):
                m.d.sync += [self.key.eq(0), self.block.eq(self.block + 1), self.base.eq(self.base + p),
                             self.first_block.eq(0), self.rows_left.eq(self.rows_left - p)]
                if word:
                    m.d.sync += [self.key_word.eq(0), self.key_lane.eq(0)]
            with m.Else():
                m.d.sync += self.key.eq(self.key + 1)
                if word:
                    lane_wraps = equals(self.key_lane, word - 1)
                    m.d.sync += [self.key_lane.eq(Mux(lane_wraps, 0, self.key_lane + 1)),
                                 self.key_word.eq(self.key_word + lane_wraps)]

    def slots(self) -> dict:
        """Per slot ``i`` (lists of ``p`` values): ``new`` (holds row ``base + i``), ``old`` (holds row
        ``base - p + i``), ``live`` (either), ``load`` (row ``base + i`` is loaded at this step: its first
        key), ``complete`` (this step gives the row its last key)."""
        m, p = self.m, self.p
        flags = {name: [] for name in ("new", "old", "live", "load", "complete")}
        for i in range(p):
            if i >= self.t_max:  # a slot no row of at most t_max tokens ever reaches
                for values in flags.values():
                    values.append(Const(0, 1))
                continue
            new, old = Signal(name=f"slot{i}_new"), Signal(name=f"slot{i}_old")
            if i == 0:
                m.d.comb += [new.eq(self.rows_left > 0), old.eq(0)]
                load = new & equals(self.key, 0)
                complete = new & self.wrap
            else:
                m.d.comb += [new.eq((self.key >= i) & (self.rows_left > i)),
                             old.eq((self.key < i) & ~self.first_block & (self.rows_left + p > i))]
                load = new & (self.key == i)
                complete = old & equals(self.key, i - 1)
            flags["new"].append(new)
            flags["old"].append(old)
            flags["live"].append(new | old)
            flags["load"].append(load)
            flags["complete"].append(complete)
        return flags
