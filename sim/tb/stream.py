"""Drivers for :mod:`amaranth.lib.stream` interfaces (valid/ready, payload on one port).

A beat moves on a rising edge where ``valid`` and ``ready`` are both high. The
drivers are stepped by :class:`sim.tb.harness.CycleLoop`: ``drive`` runs just
after the falling edge (outputs settled, inputs may change) and ``sample`` runs in
the read-only phase before the next rising edge, when ``valid``/``ready`` show
exactly what that edge will see. Two Python wake-ups per cycle, whatever the
number of streams.
"""

import random
from collections import deque
from dataclasses import dataclass

from .payload import PayloadCodec


def _bit(handle) -> int:
    return int(handle.value)


@dataclass
class Transfer:
    cycle: int  # cycle whose closing rising edge moved the beat
    beat: dict
    valid_since: int  # first cycle the beat was offered


class StreamSource:
    """Offers queued beats on a stream the DUT consumes.

    ``valid_prob`` is the chance per cycle that an idle source starts offering
    its next beat (1.0: no gaps). Once offered, a beat stays until it moves, as
    the protocol requires. While idle the payload port carries random bits, so a
    DUT that looks at the payload without ``valid`` is caught.
    """

    def __init__(self, dut, interface: dict, *, rng: random.Random, valid_prob: float = 1.0):
        self.valid = getattr(dut, interface["valid"])
        self.ready = getattr(dut, interface["ready"])
        self.payload = getattr(dut, interface["payload"]["port"])
        self.codec = PayloadCodec(interface["payload"])
        self.rng = rng
        self.valid_prob = valid_prob
        self.queue: deque[dict] = deque()
        self.transfers: list[Transfer] = []
        self._offered: dict | None = None
        self._offered_since = 0

    def send(self, beat: dict) -> None:
        self.queue.append(beat)

    @property
    def offered(self) -> dict | None:
        """The beat on offer this cycle (valid high), if any."""
        return self._offered

    def drive(self, cycle: int) -> None:
        if self._offered is None and self.queue and self.rng.random() < self.valid_prob:
            self._offered = self.queue.popleft()
            self._offered_since = cycle
        if self._offered is not None:
            self.valid.value = 1
            self.payload.value = self.codec.pack(self._offered)
        else:
            self.valid.value = 0
            self.payload.value = self.rng.getrandbits(self.codec.width)

    def sample(self, cycle: int) -> None:
        if self._offered is not None and _bit(self.ready):
            self.transfers.append(Transfer(cycle, self._offered, self._offered_since))
            self._offered = None


class StreamSink:
    """Accepts beats from a stream the DUT produces and checks the producer's side of the protocol.

    ``ready_prob`` is the chance per cycle that ``ready`` is high (1.0: no
    backpressure). A producer must keep ``valid`` high and the payload unchanged
    until its beat moves; each breach is recorded in :attr:`violations`.
    """

    def __init__(self, dut, interface: dict, *, rng: random.Random, ready_prob: float = 1.0):
        self.valid = getattr(dut, interface["valid"])
        self.ready = getattr(dut, interface["ready"])
        self.payload = getattr(dut, interface["payload"]["port"])
        self.codec = PayloadCodec(interface["payload"])
        self.name = interface["name"]
        self.rng = rng
        self.ready_prob = ready_prob
        self.transfers: list[Transfer] = []
        self.violations: list[str] = []
        self._waiting: int | None = None  # payload of a beat offered but not yet taken
        self._waiting_since = 0
        self._ready_now = 0

    def drive(self, cycle: int) -> None:
        self._ready_now = int(self.rng.random() < self.ready_prob)
        self.ready.value = self._ready_now

    def sample(self, cycle: int) -> None:
        valid = _bit(self.valid)
        if self._waiting is not None:
            if not valid:
                self.violations.append(f"cycle {cycle}: {self.name}.valid dropped before the beat moved")
                self._waiting = None
                return
            word = self.payload.value.to_unsigned()
            if word != self._waiting:
                self.violations.append(f"cycle {cycle}: {self.name}.payload changed while waiting for ready")
        if not valid:
            return
        word = self.payload.value.to_unsigned()
        if self._waiting is None:
            self._waiting_since = cycle
        if self._ready_now:
            self.transfers.append(Transfer(cycle, self.codec.unpack(word), self._waiting_since))
            self._waiting = None
        else:
            self._waiting = word
