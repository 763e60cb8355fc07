"""The C++ injection engine against predictions from the golden model and the documented timing."""

import dataclasses
import math
import pickle
import random
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pytest
from conftest import BUILD_ROOT, per_config

from gen.errors import ConfigError, ToolError
from npuforge.registry import workload_for
from sim.fault.engine import Engine, _outcome
from sim.fault.model import Fault, FaultModel, Outcome
from sim.fault.workload import Workload
from sim.golden.intmath import wrap
from sim.tb.payload import PayloadCodec
from sim.tb.tpe_workload import gemm, gemm_jobs

JOBS, K, SEED = 2, 8, 3


@pytest.fixture(scope="module")
def engines(built):
    cache = {}

    def get(name: str) -> Engine:
        if name not in cache:
            model = built(name)
            workload = gemm(model.config, model.manifest, jobs=JOBS, k=K, seed=SEED)
            cache[name] = Engine.prepare(model.root, model.verilog, model.manifest, workload, build_root=BUILD_ROOT)
        return cache[name]
    return get


def _step_cycles(manifest: dict, k: int, jobs: int) -> list[list[int]]:
    """Cycle in which each job's step ``k`` moves, at full rate (``k_steps``, one step per beat).

    Beats move back to back, except that consecutive ``last`` beats are
    ``max(beats, job_interval)`` cycles apart (the documented job interval).
    """
    interval = manifest["parameters"]["job_interval"]
    cycles = []
    for n in range(jobs):
        first, last = (0, k - 1) if n == 0 else (last + 1, last + max(k, interval))
        cycles.append([first + s for s in range(k - 1)] + [last])
    return cycles


def _acc_windows(manifest: dict, i: int, j: int) -> list[range]:
    """Per job, the cycles in which PE (i, j)'s accumulator holds a partial sum later steps add to.

    PE (i, j) adds step ``k`` at the end of cycle ``t_k + i + j + 1``; a flip at the
    start of cycle ``c`` reaches ``C[i][j]`` if the first step was added before
    ``c`` and the last one is added at the end of ``c`` or later.
    """
    return [range(steps[0] + i + j + 2, steps[-1] + i + j + 2) for steps in _step_cycles(manifest, K, JOBS)]


def _partial(job: dict, steps: list[int], i: int, j: int, cycle: int) -> int:
    """The exact partial sum in PE (i, j)'s accumulator at the start of ``cycle``."""
    return sum(job["a"][i][k] * job["b"][k][j] for k, t in enumerate(steps) if t + i + j + 1 < cycle)


def _seu(index, site, bit, cycle, width=1):
    model = FaultModel.MBU if width > 1 else FaultModel.SEU
    return Fault(index=index, model=model, site=site, bit=bit, cycle=cycle, width=width)


def _random_faults(engine: Engine, n: int, seed: int) -> list[Fault]:
    rng = random.Random(seed)
    sites = engine.manifest["fault_sites"]
    faults = []
    for index in range(n):
        site = rng.choice(sites)
        width = rng.choice([1, 1, 2, 3])
        faults.append(_seu(index, site["path"], rng.randrange(site["width"]), rng.randrange(engine.window), width))
    return faults


@per_config("tpe_3x5_w8", "tpe_1x4_u6")
def test_reference_is_the_golden_model(engines, built, config_name):
    engine = engines(config_name)
    cfg = built(config_name).config
    jobs = gemm_jobs(cfg, jobs=JOBS, k=K, seed=SEED)
    got = engine.workload.elements("results", engine.reference.outputs["results"])
    assert np.array_equal(got, np.concatenate([np.array(job["c"]) for job in jobs]))
    assert engine.reference.outputs == engine.workload.outputs
    # The last result beat leaves latency cycles after the last operand beat of the last job.
    last_operand = _step_cycles(engine.manifest, K, JOBS)[-1][-1]
    assert engine.window == last_operand + engine.manifest["parameters"]["latency"] + cfg.c_rows
    # The registry names the same workload.
    assert workload_for(cfg, "gemm") is gemm
    # After its last beat the array is idle: quiescent from the window's end, so tails end at once.
    assert engine.settle(4) == engine.window
    free = engine.free_run(3)  # the bench's fault-free rate runs the same workload
    assert free["cycles"] == 3 * engine.window and free["seconds"] > 0 and free["state_bytes"] > 0


@per_config("ws_3x4_s8")
def test_weight_stationary_beats_and_shortcuts(built, config_name):
    """The other beat format (rows of A with the next job's weights riding along)."""
    model = built(config_name)
    cfg = model.config
    workload = gemm(cfg, model.manifest, jobs=3, k=cfg.rows, seed=4)
    engine = Engine.prepare(model.root, model.verilog, model.manifest, workload, build_root=BUILD_ROOT)
    jobs = gemm_jobs(cfg, jobs=3, k=cfg.rows, seed=4)
    got = workload.elements("results", engine.reference.outputs["results"])
    assert np.array_equal(got, np.concatenate([np.array(job["c"]) for job in jobs]))
    faults = _random_faults(engine, 300, seed=8)
    results = engine.run(faults, timeout_factor=4)
    assert {Outcome.MASKED, Outcome.SDC} <= {r.outcome for r in results}
    assert dataclasses.replace(engine, checkpoints=False, early_stop=False).run(faults, timeout_factor=4) == results


@per_config("tpe_3x5_w8")
def test_reference_that_differs_from_the_expected_beats_is_refused(engines, built, config_name):
    engine, model = engines(config_name), built(config_name)
    beats = list(engine.workload.outputs["results"])
    beats[4] ^= 1 << 2  # one element of the second job's second row
    wrong = dataclasses.replace(engine.workload, outputs={"results": tuple(beats)})
    with pytest.raises(ToolError, match="differs from the golden model on results beat 4"):
        Engine.prepare(model.root, model.verilog, model.manifest, wrong, build_root=BUILD_ROOT)


@per_config("tpe_3x5_w8", "tpe_1x4_u6")
def test_accumulator_flip_changes_exactly_the_predicted_element(engines, built, config_name):
    engine = engines(config_name)
    cfg = built(config_name).config
    jobs = gemm_jobs(cfg, jobs=JOBS, k=K, seed=SEED)
    steps = _step_cycles(engine.manifest, K, JOBS)
    acc = cfg.acc_width
    i, j = cfg.rows - 1, cfg.cols - 2
    windows = _acc_windows(engine.manifest, i, j)
    for bit in (0, 3, acc - 1):
        faults = [_seu(c, f"core.pe_{i}_{j}.acc", bit, c) for c in range(engine.window)]
        for result in engine.run(faults, timeout_factor=4):
            c = result.fault.cycle
            job = next((n for n, w in enumerate(windows) if c in w), None)
            if job is None:  # reloaded by a job's first step, or already copied out: overwritten before use
                assert (result.outcome, result.differing) == (Outcome.MASKED, 0), result
                assert result.cycles == engine.window
                continue
            assert (result.outcome, result.differing, result.max_abs_diff) == (Outcome.SDC, 1, 1 << bit), result
            assert result.cycles == engine.window
    # Which element, and which sign: replay some of them and decode the beats.
    for bit, job in ((3, 0), (acc - 1, 1), (1, 1)):
        cycle = windows[job][len(windows[job]) // 2]
        replay = engine.replay(_seu(0, f"core.pe_{i}_{j}.acc", bit, cycle), timeout_factor=4)
        got = engine.workload.elements("results", replay.outputs["results"])
        expected = np.concatenate([np.array(x["c"]) for x in jobs])
        partial = _partial(jobs[job], steps[job], i, j, cycle)
        delta = -(1 << bit) if (partial >> bit) & 1 else 1 << bit
        row = job * len(jobs[0]["c"]) + i
        expected[row, j] = wrap(expected[row, j] + delta, acc, cfg.operand.signed)
        assert np.array_equal(got, expected), (bit, job, cycle)


@per_config("tpe_3x5_w8")
def test_adjacent_bits_flip_together_and_stop_at_the_register_top(engines, built, config_name):
    engine = engines(config_name)
    cfg = built(config_name).config
    jobs = gemm_jobs(cfg, jobs=JOBS, k=K, seed=SEED)
    steps = _step_cycles(engine.manifest, K, JOBS)
    i, j, bit, width = 0, 1, 2, 3
    cycle = _acc_windows(engine.manifest, i, j)[0][2]
    partial = _partial(jobs[0], steps[0], i, j, cycle)
    acc = cfg.acc_width
    flipped = wrap(partial ^ (((1 << width) - 1) << bit), acc, True)
    delta = int(flipped - wrap(partial, acc, True))
    result, = engine.run([_seu(0, f"core.pe_{i}_{j}.acc", bit, cycle, width)], timeout_factor=4)
    assert (result.outcome, result.differing, result.max_abs_diff) == (Outcome.SDC, 1, abs(delta))
    top_two, top_five = engine.run([_seu(0, f"core.pe_{i}_{j}.acc", acc - 2, cycle, 2),
                                    _seu(1, f"core.pe_{i}_{j}.acc", acc - 2, cycle, 5)], timeout_factor=4)
    assert top_two.outcome is Outcome.SDC
    assert dataclasses.replace(top_five, fault=top_two.fault) == top_two


@per_config("tpe_3x5_w8")
def test_result_register_written_before_it_is_read_is_masked(engines, config_name):
    """PE (1, 2)'s result register takes its sum at the end of the job's last step there; a flip before is lost."""
    engine = engines(config_name)
    i, j = 1, 2
    copied = _step_cycles(engine.manifest, K, JOBS)[0][-1] + i + j + 1
    faults = [_seu(c, f"core.pe_{i}_{j}.result", bit, c) for c in range(copied + 1) for bit in (0, 7, 20)]
    results = engine.run(faults, timeout_factor=4)
    assert {r.outcome for r in results} == {Outcome.MASKED}
    assert {r.cycles for r in results} == {engine.window}
    assert engine.last_stats.early_stops == len(faults)  # each run ended once its state rejoined the reference
    after, = engine.run([_seu(0, f"core.pe_{i}_{j}.result", 7, copied + 1)], timeout_factor=4)
    assert after.outcome is Outcome.SDC  # once it holds C[1][2], the flip reaches the output


@per_config("tpe_3x5_w8")
def test_hang_is_classified_and_bounded(engines, config_name):
    """``pending`` says a finished job waits to drain; set while none waits, it holds job 0's ``last`` beat forever."""
    engine = engines(config_name)
    timeout = engine.timeout_cycles(4)
    hang, = engine.run([_seu(0, "core.pending", 0, 0)], timeout_factor=4)
    assert hang.outcome is Outcome.HANG
    assert hang.cycles == timeout == math.ceil(4 * engine.window)
    assert hang.differing == engine.workload.output_elements()  # nothing came out
    faults = _random_faults(engine, 40, seed=5)
    assert {r.outcome for r in engine.run(faults, timeout_factor=0.5)} == {Outcome.HANG}


@per_config("tpe_1x1_w4")
def test_a_beat_after_the_expected_ones_is_sdc_with_extra_beats(engines, config_name):
    """A column-0 PE's ``done`` set after the final job's pulse sends one row too many (issue 23).

    With the bus readout (``result_buffers: 2``) ``done`` marks the cycle a PE's row of C goes
    onto the column buses; cleared in the cycle of the final pulse, the last row never leaves
    (a hang); set in any later cycle of the window, every expected beat arrives right and then
    one more, after the last expected one: an engine that stopped at the last expected beat
    called these masked.
    """
    engine = engines(config_name)
    window = engine.window
    faults = [_seu(c, "core.pe_0_0.done", 0, c) for c in range(window)]
    results = engine.run(faults, timeout_factor=4)
    with_shortcuts = engine.last_stats
    plain = dataclasses.replace(engine, checkpoints=False, early_stop=False)
    assert plain.run(faults, timeout_factor=4) == results
    assert with_shortcuts.stepped_cycles < plain.last_stats.stepped_cycles
    pulse = max(r.fault.cycle for r in results if r.outcome is Outcome.HANG)
    late = [r for r in results if r.fault.cycle > pulse]
    assert late, "no cycle of the window follows the final done pulse"
    expected = engine.workload.outputs["results"]
    for result in late:
        # One extra beat of one element (the 1x1 array's C), as long after the flip as the last
        # expected beat is after the final pulse.
        assert (result.outcome, result.extra_beats, result.differing, result.max_abs_diff) == \
            (Outcome.SDC, 1, 1, 0), result
        assert result.cycles == result.fault.cycle + window - pulse
        replay = engine.replay(result.fault, timeout_factor=4)
        assert replay.complete and replay.outputs["results"][:len(expected)] == expected
        assert len(replay.outputs["results"]) == len(expected) + 1
    assert all(r.extra_beats == 0 for r in results if r.outcome is not Outcome.SDC)


@per_config("tpe_3x5_w8")
def test_results_do_not_depend_on_batching_order_shortcuts_or_process(engines, config_name):
    engine = engines(config_name)
    faults = _random_faults(engine, 600, seed=11)
    whole = engine.run(faults, timeout_factor=3)
    assert [r.fault for r in whole] == faults
    assert {Outcome.MASKED, Outcome.SDC, Outcome.HANG} <= {r.outcome for r in whole}

    shuffled = list(faults)
    random.Random(2).shuffle(shuffled)
    pieces = []
    for start, stop in ((0, 1), (1, 8), (8, 250), (250, 600)):
        pieces += engine.run(shuffled[start:stop], timeout_factor=3)
    assert sorted(pieces, key=lambda r: r.fault.index) == whole

    plain = dataclasses.replace(engine, checkpoints=False, early_stop=False)
    assert plain.run(faults, timeout_factor=3) == whole

    copy = pickle.loads(pickle.dumps(engine.spec()))
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        assert pool.submit(copy.run, faults[:200], timeout_factor=3).result() == whole[:200]


@per_config("tpe_1x4_u6")
def test_bad_faults_are_refused_in_one_line(engines, config_name):
    engine = engines(config_name)
    assert not [s for s in engine.manifest["fault_sites"] if s["kind"] == "memory"]  # TPE designs have none
    cases = [
        (Fault(3, FaultModel.MEM_SEU, "core.pe_0_1.acc", 0, 1, word=0), "mem_seu needs a memory site.*has no memories"),
        (Fault(4, FaultModel.SEU, "core.nowhere", 0, 1), "not a fault site"),
        (Fault(5, FaultModel.SEU, "core.pe_0_1.acc", 99, 1), "bit 99"),
        (Fault(6, FaultModel.SEU, "core.pe_0_1.acc", 0, engine.window), "outside the window"),
        (Fault(7, FaultModel.SEU, "core.pe_0_1.acc", 0, 1, word=2), "no word"),
        (Fault(8, FaultModel.SEU, "core.pe_0_1.acc", 0, 1, width=2), "flips one bit"),
    ]
    for fault, message in cases:
        with pytest.raises(ValueError, match=f"^fault {fault.index}: .*{message}"):
            engine.run([fault], timeout_factor=4)
    with pytest.raises(ValueError, match="timeout_factor"):
        engine.run(_random_faults(engine, 1, 0), timeout_factor=0)


def test_outcome_rules():
    detects, corrects = {"port": "dmr", "corrects": False}, {"port": "ecc", "corrects": True}
    assert _outcome(2, [detects]) is Outcome.DETECTED  # an alarm beats a hang
    assert _outcome(1, [detects, corrects]) is Outcome.DETECTED
    assert _outcome(2, [corrects]) is Outcome.HANG
    assert _outcome(1, [corrects]) is Outcome.SDC  # "corrected" needs the right outputs
    assert _outcome(0, [corrects]) is Outcome.CORRECTED
    assert _outcome(1, []) is Outcome.SDC
    assert _outcome(0, []) is Outcome.MASKED


@per_config("tpe_3x5_w8")
def test_gemm_workload_checks_its_parameters(built, config_name):
    model = built(config_name)
    with pytest.raises(ConfigError, match="workload.k: 33 .*1 <= K <= 32"):
        gemm(model.config, model.manifest, jobs=1, k=33, seed=1)
    with pytest.raises(ConfigError, match="workload.jobs: 0"):
        gemm(model.config, model.manifest, jobs=0, k=3, seed=1)
    with pytest.raises(ConfigError, match="workload.type: 'conv'.*allowed: gemm"):
        workload_for(model.config, "conv")
    one = gemm(model.config, model.manifest, jobs=2, k=5, seed=9)
    assert one == gemm(model.config, model.manifest, jobs=2, k=5, seed=9)
    assert one != gemm(model.config, model.manifest, jobs=2, k=5, seed=10)
    assert len(one.inputs["operands"]) == 2 * 5 and len(one.outputs["results"]) == 2 * model.config.rows


# A hand-written design with a memory (no TPE design has one) and an alarm port: it
# stores four beats with their parity bit in ``core.mem`` (word w written at the end of
# cycle w), then sends the data back in order (word w read in cycle 4 + w); ``alarm``
# is high while the word being sent fails its parity check. A memory flip's effect is
# known exactly.
STORE_VERILOG = """
module store(input clk, input rst, input operands__valid, output operands__ready, input [9:0] operands__payload,
             output results__valid, input results__ready, output [8:0] results__payload, output alarm);
  store_core core(.clk(clk), .rst(rst), .operands__valid(operands__valid), .operands__ready(operands__ready),
                  .operands__payload(operands__payload), .results__valid(results__valid),
                  .results__ready(results__ready), .results__payload(results__payload), .alarm(alarm));
endmodule
module store_core(input clk, input rst, input operands__valid, output operands__ready, input [9:0] operands__payload,
                  output results__valid, input results__ready, output [8:0] results__payload, output alarm);
  reg [8:0] mem [0:3];
  reg [2:0] wr = 3'd0;
  reg [2:0] rd = 3'd0;
  wire [8:0] word = mem[rd[1:0]];
  assign operands__ready = ~wr[2];
  assign results__valid = wr[2] & ~rd[2];
  assign results__payload = {rd[1:0] == 2'd3, word[7:0]};
  assign alarm = results__valid & ^word;
  always @(posedge clk) begin
    if (operands__valid & ~wr[2]) mem[wr[1:0]] <= operands__payload[8:0];
    if (rst) begin
      wr <= 3'd0;
      rd <= 3'd0;
    end else begin
      if (operands__valid & ~wr[2]) wr <= wr + 3'd1;
      if (results__valid & results__ready) rd <= rd + 3'd1;
    end
  end
endmodule
"""
STORE_DATA = [0x5A, 0x00, 0xFF, 0x81]


def _store_manifest(alarms: list[dict]) -> dict:
    data = {"name": "data", "offset": 0, "width": 8, "signed": False}
    operands = {"port": "operands__payload", "width": 10, "fields": [
        data, {"name": "parity", "offset": 8, "width": 1, "signed": False},
        {"name": "last", "offset": 9, "width": 1, "signed": False}]}
    results = {"port": "results__payload", "width": 9, "fields": [
        data, {"name": "last", "offset": 8, "width": 1, "signed": False}]}
    stream = {"protocol": "amaranth.lib.stream"}
    manifest = {
        "top": "store", "clock": {"port": "clk", "edge": "rising"},
        "reset": {"port": "rst", "active": "high", "synchronous": True},
        "interfaces": [
            {**stream, "name": "operands", "role": "sink", "valid": "operands__valid", "ready": "operands__ready",
             "payload": operands},
            {**stream, "name": "results", "role": "source", "valid": "results__valid", "ready": "results__ready",
             "payload": results},
        ],
        "fault_sites": [
            {"path": "core.mem", "kind": "memory", "width": 9, "depth": 4, "block": "core", "aliases": []},
            {"path": "core.wr", "kind": "register", "width": 3, "block": "core", "aliases": []},
            {"path": "core.rd", "kind": "register", "width": 3, "block": "core", "aliases": []},
        ],
    }
    if alarms:
        manifest["alarms"] = alarms
    return manifest


def _store_engine(tmp_path, alarms: list[dict], parity_fix: int = 0, expected_beats: int = 4) -> Engine:
    verilog = tmp_path / "store.v"
    verilog.write_text(STORE_VERILOG)
    manifest = _store_manifest(alarms)
    codec_in, codec_out = (PayloadCodec(i["payload"]) for i in manifest["interfaces"])
    parity = [bin(d).count("1") % 2 ^ (n == 0 and parity_fix) for n, d in enumerate(STORE_DATA)]
    inputs = tuple(codec_in.pack({"data": d, "parity": p, "last": int(n == 3)})
                   for n, (d, p) in enumerate(zip(STORE_DATA, parity)))
    outputs = tuple(codec_out.pack({"data": d, "last": int(n == 3)}) for n, d in enumerate(STORE_DATA))
    workload = Workload(name="store four", inputs={"operands": inputs}, outputs={"results": outputs[:expected_beats]},
                        layouts={i["name"]: i["payload"] for i in manifest["interfaces"]},
                        element_fields={"results": ("data",)})
    return Engine.prepare(tmp_path, verilog, manifest, workload, build_root=BUILD_ROOT)


def _memory_faults() -> list[Fault]:
    places = [(w, bit, c) for w in range(4) for bit in (0, 7, 8) for c in range(8)]
    return [Fault(index=n, model=FaultModel.MEM_SEU, site="core.mem", bit=bit, cycle=c, word=w)
            for n, (w, bit, c) in enumerate(places)]


def _exposed(fault: Fault) -> bool:
    """Word stored (end of cycle w) and not yet read (cycle 4 + w) when the flip happens."""
    return fault.word < fault.cycle <= 4 + fault.word


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Engine:
    """The store design with its parity check declared as a detecting alarm."""
    return _store_engine(tmp_path_factory.mktemp("store"), alarms=[{"port": "alarm", "corrects": False}])


def test_memory_word_flips_between_write_and_read_reach_the_output(store):
    engine = dataclasses.replace(store, manifest=_store_manifest([]))  # the same design, no alarm declared
    assert engine.window == 8
    results = engine.run(_memory_faults(), timeout_factor=3)
    # From reset every time (memories are not reset: each run restarts from the power-on state).
    plain = dataclasses.replace(engine, checkpoints=False, early_stop=False)
    assert plain.run(list(reversed(_memory_faults())), timeout_factor=3) == list(reversed(results))
    for result in results:
        f = result.fault
        if _exposed(f) and f.bit < 8:
            assert (result.outcome, result.differing, result.max_abs_diff) == (Outcome.SDC, 1, 1 << f.bit), f
            replay = engine.replay(f, timeout_factor=3)
            got = engine.workload.elements("results", replay.outputs["results"])[:, 0]
            assert list(got) == [d ^ (1 << f.bit) if n == f.word else d for n, d in enumerate(STORE_DATA)]
        else:  # overwritten by the write, already read, or the parity bit nobody checks
            assert (result.outcome, result.alarms) == (Outcome.MASKED, ()), f
    stuck, = engine.run([_seu(0, "core.rd", 2, 4)], timeout_factor=3)  # "all read": nothing more comes out
    assert (stuck.outcome, stuck.cycles, stuck.differing) == (Outcome.HANG, 24, 4)
    with pytest.raises(ValueError, match="word 4 of core.mem is not in 0..3"):
        engine.run([Fault(0, FaultModel.MEM_SEU, "core.mem", 0, 1, word=4)], timeout_factor=3)
    with pytest.raises(ValueError, match="seu needs a register site, core.mem is a memory"):
        engine.run([_seu(0, "core.mem", 0, 1)], timeout_factor=3)


def test_alarm_ports_turn_flips_into_detected_or_corrected(store, tmp_path):
    detecting = store
    correcting = dataclasses.replace(detecting, manifest=_store_manifest([{"port": "alarm", "corrects": True}]))
    faults = _memory_faults()
    for detected, corrected in zip(detecting.run(faults, timeout_factor=3), correcting.run(faults, timeout_factor=3)):
        f = detected.fault
        if _exposed(f):  # the parity check fires when the word is sent
            assert (detected.outcome, detected.alarms) == (Outcome.DETECTED, ("alarm",)), f
            assert corrected.outcome is (Outcome.CORRECTED if f.bit == 8 else Outcome.SDC), f
        else:
            assert detected.outcome is corrected.outcome is Outcome.MASKED, f
    with pytest.raises(ToolError, match="an alarm rose in the fault-free run"):
        _store_engine(tmp_path, alarms=[{"port": "alarm", "corrects": False}], parity_fix=1)


def test_a_fault_free_beat_after_the_expected_ones_is_refused(tmp_path):
    """The fault-free run is watched past its last expected beat too: a workload that expects
    fewer beats than the design sends does not pass for the reference."""
    with pytest.raises(ToolError, match=r"differs from the golden model on results beat 3 \(4 beats, expected 3\)"):
        _store_engine(tmp_path, alarms=[], expected_beats=3)


@pytest.mark.parametrize("name", ["os_2x3_s24xs16", "ws_3x2_u8xs16"])
def test_gemm_workload_of_two_operand_formats(name, tmp_path):
    """Host side (no harness): operand beats hold each side's format, expected beats the golden C."""
    from conftest import RTL_CONFIGS

    from gen.config import load_config
    from gen.emit import generate
    from sim.golden.intmath import operand_range

    cfg = load_config(RTL_CONFIGS[name])
    manifest = generate(cfg, tmp_path).manifest
    jobs = gemm_jobs(cfg, jobs=3, k=cfg.k_bound, seed=5)
    workload = gemm(cfg, manifest, jobs=3, k=cfg.k_bound, seed=5)
    operands = PayloadCodec(workload.layouts["operands"])
    beats = [operands.unpack(word) for word in workload.inputs["operands"]]
    for side, fmt in (("a", cfg.a_format), ("b", cfg.b_format)):
        lo, hi = operand_range(fmt.width, fmt.signed)
        values = [value for beat in beats for value in beat[side]]
        assert lo <= min(values) and max(values) <= hi
        assert max(abs(v) for v in values) > (hi - lo) // 8, f"{side}: values spread over {fmt.width} bits"
    got = workload.elements("results", workload.outputs["results"])
    assert np.array_equal(got, np.concatenate([np.array(job["c"]) for job in jobs]))
    assert got.min() < 0  # signed accumulators: a side is signed
