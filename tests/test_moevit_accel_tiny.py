"""The trained tiny MoE-ViT (``configs/moevit/tiny.yaml``) end to end on a generated accelerator.

One build of ``tests/configs/accel_tiny_small.yaml`` (a 4x8 output-stationary array, the unified
attention, one 128-bit port); one held-out image as one descriptor list
(``sim.moevit.compiler.network_program``): patch embedding, four blocks (two dense, two
mixture-of-experts), the final norm and the ``seg`` head, in the fast harness's script mode under AXI
stalls, every intermediate tensor and the output bit-exact against ``sim/golden/moevit/fixed.py``.
The other task, the host driver (``npuforge.host``) and ``npuforge eval --backend rtl`` run the
reduced network of ``tests/configs/accel_micro_os.yaml`` for both tasks (tests/test_moevit_accel.py):
a whole-network run of the tiny model costs about a minute of simulation. The full-size accelerator
(``configs/moevit/accel_tiny.yaml``) runs both tasks' programs in ``npuforge run`` and ``npuforge eval
--backend rtl``.
"""

import numpy as np
import pytest
from conftest import BUILD_ROOT, ROOT

from gen.config import load_config
from sim.moevit.accel_run import MemoryTiming, compare, prepare, run_program

CONFIG = ROOT / "tests" / "configs" / "accel_tiny_small.yaml"


@pytest.mark.rtl
@pytest.mark.xdist_group("accel_tiny_small")
def test_tiny_moevit_whole_network_bit_exact():  # one test: one harness build, shared
    from sim.golden.moevit.fixed import forward_codes, quantize, quantize_params, unpatchify
    from sim.golden.moevit.params import load_params
    from sim.moevit.compiler import Target, network_program
    from sim.moevit.data import HELD_OUT_SEED, make_dataset

    cfg = load_config(CONFIG)
    model = cfg.network
    assert model.weights is not None, "the trained weights"
    prepared = prepare(cfg, BUILD_ROOT)
    codes = quantize_params(load_params(model), model)
    data = make_dataset(1, HELD_OUT_SEED, height=model.height, width=model.width, classes=5)
    pixels = quantize(data.images[0], model.format("pixel"))
    task = "seg"  # depth, the host driver and eval: the micro network (module docstring)
    program = network_program(Target.from_config(cfg), model, codes, pixels, task)
    result = run_program(prepared.harness, prepared.manifest, program, per_op=False,
                         timing=MemoryTiming(read_latency=24, stall=0.1, seed=0))
    [report] = compare(program, result)
    assert result.violations == []
    assert report.ok, f"{task}: {report.mismatch}"
    head = unpatchify(result.outputs[f"head.{task}"][None], model.task(task).outputs, model.patch, model.grid)
    np.testing.assert_array_equal(head[0], forward_codes(codes, pixels[None], task, model)[0], err_msg=task)
    counters = report.counters
    assert counters["BUSY_GATE"] > 0 and counters["BUSY_LAYERNORM"] > 0 and counters["BUSY_SOFTMAX"] > 0
    assert counters["MAC_ACTIVE"] * cfg.facts.macs >= sum(op.macs for op in program.ops)
    print(f"{task}: {len(program.ops)} operators, {counters['CYCLES']:,} cycles, {result.seconds:.1f} s in the harness")
