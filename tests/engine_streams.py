"""One cycle of a TPE engine's two streams in Amaranth's simulator, for the engine corner tests.

``tests/test_broadcast_amaranth.py`` and ``tests/test_systolic_ws_amaranth.py`` drive
different engines with the same stream rules; this is the part they share, with the
operand formats of their engine descriptions (:class:`OperandFormats`).
"""

from amaranth.hdl import Shape, signed, unsigned

from hw.arith import accumulator_signed


class OperandFormats:
    """Mixin of an engine description with ``A``'s format (``width``, ``signed``) and ``B``'s
    (``b_width``, ``b_signed``; ``None``: ``A``'s)."""

    @property
    def b_format(self) -> tuple[int, bool]:
        return (self.width if self.b_width is None else self.b_width,
                self.signed if self.b_signed is None else self.b_signed)

    @property
    def acc_signed(self) -> bool:
        return accumulator_signed(self.signed, self.b_format[1])

    @property
    def shape(self) -> Shape:
        return signed(self.width) if self.signed else unsigned(self.width)

    @property
    def b_shape(self) -> Shape:
        b_width, b_signed = self.b_format
        return signed(b_width) if b_signed else unsigned(b_width)


def step_streams(ctx, dut, trace, pending: list, offered: bool, held, *, cycle: int, rng, valid_prob: float,
                 ready_prob: float, sink_held: bool):
    """Drive and sample ``dut.operands`` / ``dut.results`` for one cycle (before ``ctx.tick()``).

    Offers ``pending[0]`` (once offered, a beat stays offered until it moves),
    records operand transfers in ``trace.operands`` (and cycles with ready low in
    ``trace.ready_low``), result transfers in ``trace.results`` as
    ``(cycle, valid_since, c, last)``, and stream-rule violations on ``results``
    in ``trace.problems``. ``held`` is ``((c, last), valid_since)`` of a result
    beat on offer that did not move. Returns the new ``(offered, held)``.
    """
    offered = bool(pending) and (offered or rng.random() < valid_prob)
    ready = 0 if sink_held else int(rng.random() < ready_prob)
    ctx.set(dut.operands.valid, int(offered))
    if offered:
        ctx.set(dut.operands.payload, pending[0])
    ctx.set(dut.results.ready, ready)

    if ctx.get(dut.results.valid):
        payload = ctx.get(dut.results.payload)
        c, last = [int(x) for x in payload.c], int(payload.last)
        if held is not None and held[0] != (c, last):
            trace.problems.append(f"cycle {cycle}: result payload changed while waiting")
        since = held[1] if held is not None else cycle
        if ready:
            trace.results.append((cycle, since, c, last))
            held = None
        else:
            held = ((c, last), since)
    elif held is not None:
        trace.problems.append(f"cycle {cycle}: results.valid withdrawn before the beat moved")
        held = None

    if offered:
        if ctx.get(dut.operands.ready):
            trace.operands.append((cycle, pending.pop(0)))
            offered = False
        else:
            trace.ready_low += 1
    return offered, held
