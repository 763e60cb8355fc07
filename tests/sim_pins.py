"""Many signals read and written at once in Amaranth's simulator, for testbenches that drive wide designs.

In a testbench every ``ctx.set`` settles the whole design (a delta cycle) and every
``ctx.get`` evaluates one expression; with forty inputs and outputs per cycle that costs
more than the design itself (measured on ``tests/test_vit_axi.py``: about 25 settles per
cycle). :class:`Pins` collects the writes of a cycle and applies those that change a
value as one ``ctx.set`` of a ``Cat`` (one settle). Reads stay one ``ctx.get`` per signal
(a ``Cat`` read measured slower).
"""

from amaranth.hdl import Cat, Value


class Pins:
    """Named inputs (``set``, applied by ``flush``) and outputs (``read`` returns ``{name: int}``)."""

    def __init__(self, inputs: dict[str, Value], outputs: dict[str, Value]):
        self.inputs = {name: Value.cast(v) for name, v in inputs.items()}
        self.outputs = {name: Value.cast(v) for name, v in outputs.items()}
        self._current = {}   # what the design sees now
        self._pending = {}   # set this cycle, not yet flushed

    def set(self, name: str, value: int):
        self._pending[name] = int(value)

    def flush(self, ctx):
        """Apply the pending writes that change something, in one settle."""
        changed = [(n, v) for n, v in self._pending.items() if self._current.get(n) != v]
        self._pending.clear()
        if not changed:
            return
        packed, offset = 0, 0
        for name, value in changed:
            width = len(self.inputs[name])
            packed |= (value & ((1 << width) - 1)) << offset
            offset += width
            self._current[name] = value
        ctx.set(Cat(*(self.inputs[name] for name, _ in changed)), packed)

    def read(self, ctx, names=None) -> dict[str, int]:
        """The outputs ``names`` (default: all) as ints."""
        outputs = self.outputs
        return {name: ctx.get(outputs[name]) for name in (outputs if names is None else names)}
