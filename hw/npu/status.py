"""Alarm aggregation of the NPU tile: sticky status bits and counters (submodule ``alarm_log``)."""

from amaranth.hdl import Module, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .storage import RegisterGroup


class AlarmStatus(wiring.Component):
    """Collects the blocks' alarms.

    Inputs ``corrected``/``detected``: one bit per block, this cycle's alarms.
    Outputs, per clock cycle:

    * ``alarm_corrected``/``alarm_detected``: the OR of this cycle's inputs
      (combinational; the fault harness watches them);
    * ``status``: bit ``b`` is set from the cycle after block ``b`` raised
      either alarm and stays set until reset;
    * ``corr_count``/``uncorr_count``: cycles in which some corrected / detected
      alarm was high, saturating at the counter's maximum.

    Registers: one unprotected group ``regs`` (``status``, ``corr``, ``uncorr``).
    """

    def __init__(self, blocks: int, counter_width: int):
        self._blocks, self._counter_width = blocks, counter_width
        self._layout = data.StructLayout({"status": unsigned(blocks), "corr": unsigned(counter_width),
                                          "uncorr": unsigned(counter_width)})
        super().__init__({
            "corrected": In(blocks), "detected": In(blocks),
            "alarm_corrected": Out(1), "alarm_detected": Out(1),
            "status": Out(blocks), "corr_count": Out(counter_width), "uncorr_count": Out(counter_width),
        })

    def elaborate(self, platform):
        m = Module()
        regs = RegisterGroup(m, "regs", self._layout)
        q, d = regs.q, regs.d
        top = (1 << self._counter_width) - 1
        m.d.comb += [
            self.alarm_corrected.eq(self.corrected.any()),
            self.alarm_detected.eq(self.detected.any()),
            self.status.eq(q.status), self.corr_count.eq(q.corr), self.uncorr_count.eq(q.uncorr),
            d.status.eq(q.status | self.corrected | self.detected),
        ]
        with m.If(self.alarm_corrected & (q.corr != top)):
            m.d.comb += d.corr.eq(q.corr + 1)
        with m.If(self.alarm_detected & (q.uncorr != top)):
            m.d.comb += d.uncorr.eq(q.uncorr + 1)
        return m

