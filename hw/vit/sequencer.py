"""The descriptor processor: fetches operator descriptors from DRAM and runs them in order.

On ``start`` it fetches descriptor 0 from ``base`` (aligned to the 64-byte descriptor, else
``BAD_ADDRESS`` at once), then keeps fetching the next one into a two-entry queue while the
engines work, so a descriptor is usually waiting when the previous operator ends. It stops
prefetching after an ``END`` or an unknown opcode (nothing past the list is read).

The dispatcher pops the queue: ``END`` ends the run (``finished``); an opcode with an engine
raises that engine's ``start`` for one cycle with the descriptor on ``desc`` (held until the
engine's ``done``); an unknown opcode fails with ``BAD_OPCODE``. An engine's ``done`` with an
error code fails the run with that code; without, the descriptor counts as ``completed``.
``abort_code`` (non-zero: an AXI error the top saw) fails the run at once with that code.

After ``finished`` or ``failed`` the processor drains its own outstanding fetch (the read
data still due) before it is idle (``busy`` low), so the next run starts clean.
"""

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from .axi import ReadClientSignature
from .descriptors import DESCRIPTOR_BYTES, ERROR, ERROR_BITS, OPCODES
from .engine import DESC_BITS
from .select import equals


class Sequencer(wiring.Component):
    """See the module docstring. ``engines`` maps an opcode name to the index of its engine."""

    def __init__(self, *, addr_width: int, data_width: int, engines: dict[str, int]):
        unknown = set(engines) - set(OPCODES)
        if unknown:
            raise ValueError(f"no opcode {sorted(unknown)}")
        self.addr_width, self.data_width = addr_width, data_width
        self.engines = dict(engines)
        self.count = max(engines.values()) + 1 if engines else 0
        beat_bytes = data_width // 8
        if DESCRIPTOR_BYTES % beat_bytes:
            raise ValueError(f"a {DESCRIPTOR_BYTES}-byte descriptor is not whole {beat_bytes}-byte beats")
        self.desc_beats = DESCRIPTOR_BYTES // beat_bytes
        super().__init__({
            "start": In(1), "base": In(64), "abort_code": In(ERROR_BITS),
            "fetch": Out(ReadClientSignature(addr_width, data_width)),
            "desc": Out(unsigned(DESC_BITS)),
            "engine_start": Out(max(1, self.count)), "engine_done": In(max(1, self.count)),
            "engine_error": In(ERROR_BITS).array(max(1, self.count)),
            "busy": Out(1), "running": Out(1), "waiting_fetch": Out(1),
            "finished": Out(1), "failed": Out(1), "code": Out(ERROR_BITS), "completed": Out(1),
            "index": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        beat_bits = self.data_width
        # Depth 3: Amaranth's buffered FIFO of depth 2 has a zero-width inner address; two entries are used.
        queue = m.submodules.queue = fifo.SyncFIFOBuffered(width=DESC_BITS, depth=3)

        # ------------------------------------------------------------ prefetch
        running = Signal(name="run")  # between start and finished/failed
        prefetch = Signal(name="prefetch")  # keep fetching the next descriptor
        in_flight = Signal(name="in_flight")  # a fetch whose data is still due
        next_addr = Signal(64, name="next_addr")
        gathered = Signal(DESC_BITS, name="gathered")
        beat = Signal(range(max(2, self.desc_beats)), name="fetch_beat")
        req, data = self.fetch.req, self.fetch.data
        # Room for the descriptor on its way plus this one: the queue never overflows.
        room = queue.level + in_flight < 2
        # A descriptor past the end of the address space is never fetched: the run fails there.
        beyond = next_addr > (1 << self.addr_width) - DESCRIPTOR_BYTES
        m.d.comb += [req.valid.eq(prefetch & ~in_flight & room & ~beyond & ~self.start),
                     req.payload.addr.eq(next_addr), req.payload.beats.eq(self.desc_beats),
                     data.ready.eq(1)]
        with m.If(req.valid & req.ready):
            m.d.sync += [in_flight.eq(1), next_addr.eq(next_addr + DESCRIPTOR_BYTES)]
        # Beats arrive low bytes first: each new beat enters at the top, the gathered ones move down.
        whole = Cat(gathered[beat_bits:], data.payload.data) if self.desc_beats > 1 else data.payload.data
        last_beat = data.payload.last
        opcode = whole[:8]
        known = Signal(name="known")
        m.d.comb += known.eq(0)
        for code in OPCODES.values():
            with m.If(equals(opcode, code)):
                m.d.comb += known.eq(1)
        with m.If(data.valid):
            m.d.sync += [gathered.eq(whole), beat.eq(beat + 1)]
            with m.If(last_beat):
                m.d.sync += [in_flight.eq(0), beat.eq(0)]
                # Nothing after an END or an opcode nobody knows is read.
                with m.If(equals(opcode, OPCODES["END"]) | ~known):
                    m.d.sync += prefetch.eq(0)
        m.d.comb += [queue.w_en.eq(data.valid & last_beat & running), queue.w_data.eq(whole)]

        # ------------------------------------------------------------ dispatch
        current = Signal(DESC_BITS, name="current")
        engaged = Signal(name="engaged")  # an engine runs `current`
        index = Signal(32, name="desc_index")
        m.d.comb += [self.desc.eq(current), self.index.eq(index)]
        code = Signal(ERROR_BITS, name="fail_code")
        fail = Signal(name="fail")
        finish = Signal(name="finish")
        start_engine = Signal(max(1, self.count), name="start_engine")
        head = queue.r_data
        head_op = head[:8]
        m.d.comb += queue.r_en.eq(0)
        with m.If(running & ~engaged & queue.r_rdy & ~self.abort_code.any()):
            m.d.comb += queue.r_en.eq(1)
            m.d.sync += current.eq(head)
            with m.If(equals(head_op, OPCODES["END"])):
                m.d.comb += finish.eq(1)
            for name, engine in sorted(self.engines.items()):
                with m.Elif(equals(head_op, OPCODES[name])):
                    m.d.sync += [engaged.eq(1), start_engine.eq(1 << engine)]
            with m.Else():
                m.d.comb += [fail.eq(1), code.eq(ERROR["BAD_OPCODE"])]
        m.d.comb += self.engine_start.eq(start_engine)
        with m.If(start_engine.any()):
            m.d.sync += start_engine.eq(0)
        done_mask = self.engine_done
        engine_code = Signal(ERROR_BITS, name="engine_code")
        for engine in range(self.count):
            with m.If(done_mask[engine]):
                m.d.comb += engine_code.eq(self.engine_error[engine])
        with m.If(engaged & done_mask.any() & ~start_engine.any()):
            m.d.sync += engaged.eq(0)
            with m.If(engine_code.any()):
                m.d.comb += [fail.eq(1), code.eq(engine_code)]
            with m.Else():
                m.d.comb += self.completed.eq(1)
                m.d.sync += index.eq(index + 1)
        with m.If(running & ~engaged & ~queue.r_rdy & ~in_flight & prefetch & beyond):
            m.d.comb += [fail.eq(1), code.eq(ERROR["BAD_ADDRESS"])]
        with m.If(running & self.abort_code.any()):
            m.d.comb += [fail.eq(1), code.eq(self.abort_code)]

        # ------------------------------------------------------------ run control
        aligned = ~self.base[:6].any()
        with m.If(self.start & ~self.busy):
            m.d.sync += [index.eq(0), engaged.eq(0), next_addr.eq(self.base), beat.eq(0)]
            with m.If(aligned & (self.base < (1 << self.addr_width) - DESCRIPTOR_BYTES + 1)):
                m.d.sync += [running.eq(1), prefetch.eq(1)]
            with m.Else():
                m.d.comb += [fail.eq(1), code.eq(ERROR["BAD_ADDRESS"])]
        with m.If(fail | finish):
            m.d.sync += [running.eq(0), prefetch.eq(0), engaged.eq(0)]
        m.d.comb += [
            self.finished.eq(finish), self.failed.eq(fail), self.code.eq(code),
            self.running.eq(running),
            # Busy until the fetch in flight has drained and the queue is empty again.
            self.busy.eq(running | in_flight | queue.r_rdy | engaged),
            self.waiting_fetch.eq(running & ~engaged & ~queue.r_rdy),
        ]
        # Leftover descriptors of a stopped run are dropped.
        with m.If(~running & queue.r_rdy):
            m.d.comb += queue.r_en.eq(1)
        return m
