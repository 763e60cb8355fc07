"""The order in which the linear engine visits output rows, as counters every stage keeps for itself.

A LINEAR of ``M x K x N`` runs ``ceil(N / cols)`` weight tiles; per tile, ``ceil(M / rows)``
jobs (M-tiles) of ``rows`` result rows each. The feeder, the epilogue, the residual reader
and the writer all walk that same order, each with its own copy of these counters, so no
stage passes row coordinates to another: they agree by construction.
"""

from amaranth.hdl import Module, Signal, Value


class RowWalk:
    """Counters over (tile ``t``, M-tile starting at ``row0``, row ``i`` of the job).

    ``start`` (a cycle before the first row) clears them; ``step`` moves to the next row.
    Derived: ``row = row0 + i`` (the row of A and of the output), ``keep = row < m_rows``
    (rows past ``M`` in the last M-tile are computed but not written), ``col0 = t * cols``,
    ``job_end`` (``i`` is the job's last row), ``tile_end`` (and the tile's last job),
    ``final`` (and the last tile), ``done`` (stepped past ``final``; until ``start``).
    With ``rows_only`` the walk has no row level: one step per job (the feeder's view).
    """

    def __init__(self, m: Module, name: str, *, rows: int, cols: int, m_rows: Value, n_cols: Value,
                 start: Value, step: Value, width: int = 32, rows_only: bool = False):
        self.t = Signal(width, name=f"{name}_t")
        self.row0 = Signal(width, name=f"{name}_row0")
        self.col0 = Signal(width, name=f"{name}_col0")
        self.done = Signal(name=f"{name}_done")
        per_job = 1 if rows_only else rows
        self.i = Signal(range(max(2, per_job)), name=f"{name}_i")
        self.row = self.row0 + self.i
        self.keep = Signal(name=f"{name}_keep")
        self.job_end = Signal(name=f"{name}_job_end")
        self.tile_end = Signal(name=f"{name}_tile_end")
        self.final = Signal(name=f"{name}_final")
        m.d.comb += [
            self.keep.eq(self.row < m_rows),
            self.job_end.eq(self.i == per_job - 1),
            self.tile_end.eq(self.job_end & (self.row0 + rows >= m_rows)),
            self.final.eq(self.tile_end & (self.col0 + cols >= n_cols)),
        ]
        with m.If(start):
            m.d.sync += [self.t.eq(0), self.row0.eq(0), self.col0.eq(0), self.i.eq(0), self.done.eq(0)]
        with m.Elif(step & ~self.done):
            with m.If(~self.job_end):
                m.d.sync += self.i.eq(self.i + 1)
            with m.Else():
                m.d.sync += self.i.eq(0)
                with m.If(~self.tile_end):
                    m.d.sync += self.row0.eq(self.row0 + rows)
                with m.Else():
                    m.d.sync += [self.row0.eq(0), self.t.eq(self.t + 1), self.col0.eq(self.col0 + cols)]
                    with m.If(self.final):
                        m.d.sync += self.done.eq(1)
