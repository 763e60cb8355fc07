"""cocotb test: no stream handshake in a reset cycle (the AXI4-Stream rule every design follows).

Every stream the design consumes is offered a beat in every cycle (random payloads,
each held until it moves) and every stream it produces is ready in every cycle. The
test holds ``rst`` high from power-on, then, between stretches of traffic, again for
a few cycles at several points -- when registers still hold the state of the work
before, which is when a registered ``valid`` would show in a reset cycle. It records
each reset cycle in which a produced stream's ``valid`` or a consumed stream's
``ready`` is high, and each consumed stream that takes no beat in the
``LIVENESS_CYCLES`` cycles after the last reset (so streams stuck low fail too).

The vectors hold only ``seed``. Results: ``{"reset_cycles": n, "beats_taken": n,
"problems": [...]}``.
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from .harness import CLOCK_PERIOD_NS, RunFiles

#: Reset stretches after the power-on one, and the cycles of traffic around them.
ROUNDS = 6
LIVENESS_CYCLES = 100


@cocotb.test()
async def no_handshake_in_reset(dut):
    run = RunFiles.from_env()
    manifest, rng = run.manifest, run.rng()
    clock = getattr(dut, manifest["clock"]["port"])
    rst = getattr(dut, manifest["reset"]["port"])
    sinks = [i for i in manifest["interfaces"] if i["role"] == "sink"]  # streams the design consumes
    sources = [i for i in manifest["interfaces"] if i["role"] == "source"]
    pending = {i["name"]: None for i in sinks}  # payload on offer

    def drive(in_reset: bool) -> None:
        rst.value = int(in_reset)
        for interface in sinks:
            if pending[interface["name"]] is None:
                pending[interface["name"]] = rng.getrandbits(interface["payload"]["width"])
            getattr(dut, interface["valid"]).value = 1
            getattr(dut, interface["payload"]["port"]).value = pending[interface["name"]]
        for interface in sources:
            getattr(dut, interface["ready"]).value = 1

    schedule = [True] * 4  # power-on reset
    for _ in range(ROUNDS):
        schedule += [False] * rng.randint(3, 40) + [True] * rng.randint(1, 4)
    schedule += [False] * LIVENESS_CYCLES

    problems, reset_cycles, beats = [], 0, 0
    taken_since_reset = {i["name"]: False for i in sinks}
    drive(True)
    Clock(clock, CLOCK_PERIOD_NS, unit="ns").start()
    await FallingEdge(clock)
    for cycle, in_reset in enumerate(schedule):
        drive(in_reset)
        await ReadOnly()
        if in_reset:
            reset_cycles += 1
            high = [i["valid"] for i in sources if int(getattr(dut, i["valid"]).value)]
            high += [i["ready"] for i in sinks if int(getattr(dut, i["ready"]).value)]
            problems += [f"cycle {cycle} (in reset): {port} is high" for port in high]
            taken_since_reset = dict.fromkeys(taken_since_reset, False)
        else:
            for interface in sinks:
                if int(getattr(dut, interface["ready"]).value):
                    pending[interface["name"]] = None
                    taken_since_reset[interface["name"]] = True
                    beats += 1
        await FallingEdge(clock)
    problems += [f"{name} took no beat in the {LIVENESS_CYCLES} cycles after the last reset"
                 for name, taken in taken_since_reset.items() if not taken]
    run.write_results({"reset_cycles": reset_cycles, "beats_taken": beats, "problems": problems})
    assert not problems, problems[0]

