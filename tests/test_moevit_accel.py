"""The MoE-ViT accelerator (``kind: moevit_accel``): config errors, the compiler, the fast harness, the cocotb bench.

The RTL tests build the micro network's accelerator twice and run many checks per build:
the fast harness on a 4x4 output-stationary array with two 64-bit ports
(``tests/configs/accel_micro_os.yaml``: the program of every operator the accelerator has --
the linear operators, IM2COL and ADD of the embedding, the LayerNorms feeding them, every
head's attention softmax, the MoE layer (the gate's LINEAR, GATE, gathered and scattered
experts, ADD) -- on the golden's own inputs, bit-exact under random stalls on
every AXI channel with the DRAM model checking the AXI rules; a read answered with DECERR;
a soft reset and a hardware reset in the middle of a run, then a clean run), and the
cocotbext-axi testbench on a 2x4x2 cube with one 128-bit port
(``tests/configs/accel_micro_cube.yaml``, ``sim/tb/moevit_accel.py``: ``AxiRam`` on the
port, bad descriptors of every opcode, a reset midway, the program): two architectures,
two data widths, and the two attention modes (the dedicated engine in the harness build,
the unified one chained with SOFTMAX in the cocotb build), bit-exact against the golden.
"""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import BUILD_ROOT, ROOT

from gen.config import load_config, parse_config_text
from gen.errors import ConfigError
from hw.vit import descriptors
from sim.moevit.accel_run import MemoryTiming, compare, head_reports, prepare, program_for, run_program
from sim.moevit.registers import Registers

TESTS = ROOT / "tests" / "configs"
MICRO_OS = TESTS / "accel_micro_os.yaml"
MICRO_CUBE = TESTS / "accel_micro_cube.yaml"
MODEL = TESTS / "moevit" / "micro.yaml"


# --------------------------------------------------------------------------- config

def _config(text: str):
    source = str(TESTS / "inline.yaml")  # `model:` resolves against the tests' config folder
    return parse_config_text(text, source)


GOOD = "kind: moevit_accel\nname: acc\nmodel: moevit/micro.yaml\n"
BAD_CONFIGS = [  # (extra YAML, a piece of the one-line error)
    ("", None),
    ("linear: {arch: systolic_ws, rows: 4, cols: 4}", "linear.arch"),
    ("linear: {cols: 5}\nmemory: {data_width: 256}", "linear.cols"),
    ("buffers: {a_k: 8}", "buffers.a_k"),
    ("buffers: {k_max: 16}", "buffers.k_max"),
    ("buffers: {a_rows: 0}", "buffers.a_rows"),
    ("memory: {data_width: 96}", "memory.data_width"),
    ("memory: {ports: 5}", "memory.ports"),
    ("memory: {max_burst: 16, read_queue: 8}", "memory.read_queue: got 8"),
    ("linear: {arch: systolic_os, depth: 2}", "depth"),
    ("linear: {mac: opt3}", "mac"),
    ("linear: {arch: cube, rows: 2, cols: 4, depth: 3}\nmemory: {data_width: 256}", "linear.depth"),
    ("linear: {arch: adder_tree, cols: 4}", "k_tile"),
    ("memory: {addr_width: 8}", "memory.addr_width"),
    ("clock_mhz: 0", "clock_mhz"),
    ("attention: {engine: unified, p: 2}", "attention.p"),
    ("attention: {engine: systolic}", "attention.engine"),
    ("attention: {p: 2, macs: 6}", "attention.macs"),
    ("colour: red", "colour"),
]


@pytest.mark.parametrize("extra,field", BAD_CONFIGS, ids=[f or "good" for _, f in BAD_CONFIGS])
def test_config_errors_are_one_line(extra, field):
    text = GOOD + extra + "\n"
    if field is None:
        cfg = _config(text)
        assert cfg.facts.rows == 16 and cfg.network.name == "micro_moevit"
        return
    with pytest.raises(ConfigError) as error:
        _config(text)
    message = str(error.value)
    assert "\n" not in message and field in message, message


def test_model_errors_name_the_model():
    with pytest.raises(ConfigError) as error:
        _config("kind: moevit_accel\nname: acc\nmodel: nowhere.yaml\n")
    assert "model:" in str(error.value) and "\n" not in str(error.value)
    # Edge-MoE's formats truncate every product: the linear engine sums exact products.
    with pytest.raises(ConfigError) as error:
        parse_config_text("kind: moevit_accel\nname: acc\nmodel: edge_moe.yaml\n",
                          str(ROOT / "configs" / "moevit" / "inline.yaml"))
    assert "accumulator" in str(error.value) and "\n" not in str(error.value)


def test_unknown_harness_build_is_one_line(monkeypatch):
    from gen.errors import UsageError

    monkeypatch.setenv("NPUFORGE_ACCEL_BUILD", "fastest")
    with pytest.raises(UsageError) as error:
        prepare(load_config(MICRO_OS), BUILD_ROOT)
    assert str(error.value) == "NPUFORGE_ACCEL_BUILD: got 'fastest'; allowed: one of run, quick"


def test_edge_moe_size_config():
    """configs/moevit/accel_edge_moe.yaml: 448 MAC units, two 256-bit ports, 300 MHz, Edge-MoE's network in the
    accelerator's formats (edge_moe_exact.yaml: Edge-MoE's sizes and units, exact products)."""
    from gen.config.moevit import load_moevit

    cfg = load_config(ROOT / "configs" / "moevit" / "accel_edge_moe.yaml")
    edge = load_moevit(ROOT / "configs" / "moevit" / "edge_moe.yaml")
    net = cfg.network
    assert (cfg.facts.macs, cfg.memory.ports, cfg.memory.data_width, cfg.clock_mhz) == (448, 2, 256, 300)
    assert cfg.facts.attention.engine == "unified"  # the whole image: attention on the 448 MACs too
    same = ("height", "width", "channels", "patch", "dim", "heads", "layers", "mlp_ratio", "moe_layers", "experts",
            "top_k", "expert_hidden", "tasks")
    assert net.name == "edge_moe_exact" and all(getattr(net, key) == getattr(edge, key) for key in same)
    # The same units; LayerNorm takes each model's activation format as it is (issue 18: no narrowing).
    assert {k: v for k, v in net.nonlinear.items() if k != "layernorm"} == \
        {k: v for k, v in edge.nonlinear.items() if k != "layernorm"}
    for model in (net, edge):
        assert model.units["layernorm"].input.format == model.format("activation"), model.name
    assert net.weights is None
    for name in ("weight", "patch_weight", "attn_bias", "bias", "norm", "pixel"):
        assert net.format(name) == edge.format(name), name
    acc, act, w = net.format("accumulator"), net.format("activation"), net.format("weight")
    assert acc.frac >= 2 * act.frac and acc.frac >= act.frac + w.frac  # every product exact, qk's too


def test_dense_tiny_vit_configs():
    """The dense tiny ViT (configs/moevit/tiny_dense.yaml: every block a dense MLP, seeded weights) and its two
    accelerators, one per attention mode, compile to one chain from image to head."""
    for name, attention in (("accel_tiny_dense", {"LINEAR", "SOFTMAX"}), ("accel_tiny_dense_edge", {"ATTENTION"})):
        cfg = load_config(ROOT / "configs" / "moevit" / f"{name}.yaml")
        net = cfg.network
        assert net.moe_layers == "none" and net.weights is None and (net.dim, net.layers, net.tokens) == (64, 4, 65)
        program = program_for(cfg, image=0, ops="network")
        opcodes = {op.opcode for op in program.ops}
        assert "GATE" not in opcodes and attention <= opcodes, (name, opcodes)
        assert ("ATTENTION" in opcodes) == (cfg.facts.attention.engine == "dedicated")
        assert program.ops[0].opcode == "IM2COL" and program.ops[-1].name.startswith("head.")


def test_hash_follows_the_model(tmp_path):
    """The config hash covers the model's content, not only its path."""
    (tmp_path / "m.yaml").write_text(MODEL.read_text())
    (tmp_path / "a.yaml").write_text("kind: moevit_accel\nname: acc\nmodel: m.yaml\n")
    first = load_config(tmp_path / "a.yaml").config_hash()
    (tmp_path / "m.yaml").write_text(MODEL.read_text().replace("dim: 16", "dim: 32"))
    assert load_config(tmp_path / "a.yaml").config_hash() != first


# --------------------------------------------------------------------------- compiler

def test_compiler_is_deterministic_and_lays_out_aligned():
    cfg = load_config(MICRO_OS)
    one, two = program_for(cfg, image=3), program_for(cfg, image=3)
    assert one.image.image() == two.image.image()
    assert [op.descriptor() for op in one.ops] == [op.descriptor() for op in two.ops]
    beat = cfg.memory.data_width // 8
    for region in one.image.regions.values():
        assert region.addr % 4096 == 0
        if region.kind == "tensor":
            assert region.stride % beat == 0
    for op in one.ops:
        decoded = descriptors.decode(op.descriptor())
        assert decoded["opcode"] == op.opcode
    names = [op.name for op in one.ops]
    assert names[:4] == ["embed.im2col", "embed.patch_embed", "embed.pos", "blocks.0.ln1"]
    assert names[-2:] == ["norm", "head.seg"]
    # The LayerNorms feed the linear operators: qkv reads what ln1 writes, the head what the final norm writes.
    by_name = {op.name: op for op in one.ops}
    assert by_name["blocks.0.qkv"].fields["src"] == by_name["blocks.0.ln1"].fields["dst"]
    assert by_name["head.seg"].reads[0] == by_name["norm"].writes
    assert "blocks.0.ln1" in one.expected and "blocks.0.ln1" not in program_for(cfg, image=3, ops="linear").expected
    assert [op.opcode for op in program_for(cfg, image=3, ops="rows").ops] == \
        ["LAYERNORM", "SOFTMAX", "SOFTMAX", "LAYERNORM"] * 2 + ["LAYERNORM"]


def test_compiler_unified_attention_matmuls():
    """The unified attention: per head Q K^T (b_transposed, the qk format row with the score scale) in chunks of
    at most a_rows queries and keys, A V (b_rows) in chunks of a_rows queries; a dedicated-only descriptor refused."""
    from sim.moevit.compiler import Builder, CompileError, Target

    cfg = load_config(MICRO_CUBE)
    program = program_for(cfg, image=0)
    target = program.target
    qk = [op for op in program.ops if op.fmt == target.fmt("qk") and op.opcode == "LINEAR"]
    av = [op for op in program.ops if op.fmt == target.fmt("av") and op.opcode == "LINEAR"]
    tokens, hd, a_rows = cfg.network.tokens, cfg.network.head_dim, cfg.facts.a_rows
    heads = cfg.network.layers * cfg.network.heads
    assert all(op.flags == ("b_transposed",) and op.fields["k"] == hd for op in qk)
    assert all(op.flags == ("b_rows",) and op.fields["k"] == tokens and op.fields["n"] == hd for op in av)
    assert sum(op.macs for op in qk) == sum(op.macs for op in av) == heads * tokens * tokens * hd
    assert max(op.fields["m"] for op in qk + av) == max(op.fields["n"] for op in qk) == a_rows
    assert len({op.group for op in qk + av}) == heads and all(op.group for op in qk + av)
    scale = next(f for f in cfg.facts.formats if "qk" in f.names).scale
    assert scale == (cfg.network.score_scale()[0], cfg.network.format("weight").frac)
    b = Builder(Target.from_config(cfg))
    qkv = b.tensor("qkv", rows=tokens, n=3 * cfg.network.dim)
    with pytest.raises(CompileError, match="not the dedicated attention"):
        b.attention("att", qkv, b.tensor("heads", rows=tokens, n=cfg.network.dim), head=0, heads=2, scale=1)


# --------------------------------------------------------------------------- the fast harness

@pytest.fixture(scope="module")
def micro_os():
    cfg = load_config(MICRO_OS)
    return prepare(cfg, BUILD_ROOT)


@pytest.fixture(scope="module")
def micro_program():
    return program_for(load_config(MICRO_OS), image=1)


def _check_attention_counters(manifest, program, reports):
    """Per ATTENTION operator: BUSY_ATTENTION covers the operator, MAC_ACTIVE counts exactly the chunks of both
    matmuls over every step of the reordered order, the engine's bytes are the reference order's rows."""
    from sim.golden.moevit.attention import _reordered_steps

    att = manifest["parameters"]["attention"]
    beat = manifest["parameters"]["data_width"] // 8
    ops = {op.name: op for op in program.ops}
    attention = [r for r in reports if r.opcode == "ATTENTION"]
    assert len(attention) == 4  # two layers, two heads
    for report in attention:
        fields = ops[report.name].fields
        tokens, hd = fields["tokens"], fields["head_dim"]
        steps = len(list(_reordered_steps(tokens, tokens, att["p"])))
        assert report.counters["MAC_ACTIVE"] == 2 * steps * -(-hd // att["lanes"])
        assert 0 < report.counters["BUSY_ATTENTION"] <= report.counters["CYCLES"]
        assert report.counters["BUSY_LINEAR"] == 0
        row = -(-hd * manifest["parameters"]["act_bytes"] // beat) * beat
        read = sum(report.counters[f"RD_BYTES_P{p}"] for p in range(2))
        written = sum(report.counters[f"WR_BYTES_P{p}"] for p in range(2))
        assert read == (tokens + 2 * steps) * row + 2 * descriptors.DESCRIPTOR_BYTES  # q, k and v rows; op + END
        assert written == tokens * hd * manifest["parameters"]["act_bytes"]
    heads = head_reports(reports)
    assert [h.name for h in heads] == [r.name for r in attention]
    for head, report in zip(heads, attention):
        assert head.cycles == report.cycles and head.mac_active == report.counters["MAC_ACTIVE"]
        assert all(0 < peak <= beat for peak in head.peak_read), "a port reads at most a beat per cycle"


def _check_bandwidth(manifest, reports):
    """The fast harness's bandwidth counters (the DRAM model's view) agree with the accelerator's byte counters
    on every port, and no window moves more than a beat per cycle."""
    beat = manifest["parameters"]["data_width"] // 8
    for report in reports:
        assert len(report.bandwidth) == manifest["parameters"]["ports"]
        for p, port in enumerate(report.bandwidth):
            assert (port.read, port.written) == (report.counters[f"RD_BYTES_P{p}"],
                                                 report.counters[f"WR_BYTES_P{p}"]), report.name
            assert port.peak_read <= beat * port.window and port.peak_written <= beat * port.window


def _check(program, result):
    """Every operator PASS; returns the reports."""
    reports = compare(program, result)
    assert result.violations == []
    assert [f"{r.name}: {r.mismatch}" for r in reports if not r.ok] == []
    return reports


@pytest.mark.rtl
@pytest.mark.xdist_group("accel_micro_os")
def test_harness_runs_every_operator_bit_exact(micro_os, micro_program):
    result = run_program(micro_os.harness, micro_os.manifest, micro_program,
                         timing=MemoryTiming(read_latency=40, stall=0.3, seed=7))
    # (These stalls once held a scattered fc2's results back long enough for the feeder to reuse a weight half
    # before its next tile arrived; the Amaranth regression: test_weight_half_fed_once_while_results_wait.)
    reports = _check(micro_program, result)
    # 10 linear-side operators, 4 ATTENTION (2 blocks x 2 heads); 2 blocks x (ln1, ln2, 2 heads' softmax) and the
    # final norm; block 1's MoE layer: the gate's LINEAR, GATE, 4 experts x (fc1, fc2), ADD
    assert len(reports) == len(micro_program.ops) == 23 + 11
    _check_bandwidth(micro_os.manifest, reports)
    for opcode, engine, count in (("LAYERNORM", "BUSY_LAYERNORM", 5), ("SOFTMAX", "BUSY_SOFTMAX", 4)):
        ran = [r for r in reports if r.opcode == opcode]
        assert len(ran) == count
        assert all(r.counters[engine] > 0 and r.counters["MEM_STALL"] > 0 and r.counters["MAC_ACTIVE"] == 0
                   and r.counters["BUSY_LINEAR"] == 0 for r in ran)
    # The MoE layer (block 1, after its ln2): the gate's LINEAR, GATE, per expert a gathered fc1 and a scattered
    # fc2 (their outputs, every expert's hidden rows and the ffn rows, bit-exact above); an expert without tokens
    # reads no weights and computes nothing.
    names = [r.name for r in reports]
    route = names.index("blocks.1.route")
    assert names[route - 2:route] == ["blocks.1.ln2", "blocks.1.gate"] and reports[route].opcode == "GATE"
    experts = [r for r in reports if ".expert" in r.name]
    assert len(experts) == 2 * 4 and any(r.macs == 0 for r in experts) and any(r.macs for r in experts)
    for r in experts:
        assert (r.counters["MAC_ACTIVE"] > 0) == (r.macs > 0), r.name
        if not r.macs:  # only its descriptor and END were read
            read = sum(v for name, v in r.counters.items() if name.startswith("RD_BYTES"))
            written = sum(v for name, v in r.counters.items() if name.startswith("WR_BYTES"))
            assert (read, written) == (2 * descriptors.DESCRIPTOR_BYTES, 0), (r.name, read, written)
    linear = [r for r in reports if r.opcode == "LINEAR" and r.macs]
    assert all(r.counters["MAC_ACTIVE"] > 0 and r.counters["BUSY_LINEAR"] > 0 for r in linear)
    assert all(r.counters["MEM_STALL"] > 0 for r in linear), "a slow memory shows as memory stalls"
    beats = sum(r.counters["MAC_ACTIVE"] for r in linear)
    assert beats * 16 >= sum(r.macs for r in linear), "every MAC of the compiler's count had an operand beat"
    _check_attention_counters(micro_os.manifest, micro_program, reports)
    # Whole list at once: the same outputs, about the sum of the operators' cycles.
    whole = run_program(micro_os.harness, micro_os.manifest, micro_program, per_op=False,
                        timing=MemoryTiming(seed=8))
    _check(micro_program, whole)  # every operator, the MoE layer's too
    assert whole.ops[0].counters["CYCLES"] > 0


@pytest.mark.rtl
@pytest.mark.xdist_group("accel_micro_os")
def test_perf_prediction_follows_the_measured_cycles(micro_os):
    """``npuforge perf``'s schedule of the accelerator (sim/perf/accel.py) against the counters, operator by
    operator, on the whole network (every opcode this design runs; SOFTMAX is inside its dedicated attention
    engine). The micro operators are latency-bound, so the model's fill, latency and turnaround terms carry
    them."""
    from sim.perf.accel import Memory, predict

    program = program_for(load_config(MICRO_OS), image=1, ops="network")
    result = run_program(micro_os.harness, micro_os.manifest, program, timing=MemoryTiming(read_latency=24))
    reports = _check(program, result)
    predicted = predict(micro_os.manifest["parameters"], program.ops, Memory(read_latency=24))
    assert {r.opcode for r in reports} == {"IM2COL", "LINEAR", "ADD", "LAYERNORM", "ATTENTION", "GATE"}
    errors = {r.name: (p.cycles - r.cycles) / r.cycles for r, p in zip(reports, predicted)}
    assert max(abs(e) for e in errors.values()) <= 0.12, errors
    total = sum(p.cycles for p in predicted) / sum(r.cycles for r in reports) - 1
    assert abs(total) <= 0.06, total
    # A slower memory: every prediction moves with it (the latency terms are not constants).
    slow = run_program(micro_os.harness, micro_os.manifest, program, timing=MemoryTiming(read_latency=60))
    slow_predicted = predict(micro_os.manifest["parameters"], program.ops, Memory(read_latency=60))
    total_slow = sum(p.cycles for p in slow_predicted) / sum(r.cycles for r in compare(program, slow)) - 1
    assert abs(total_slow) <= 0.10, total_slow
    assert sum(r.cycles for r in compare(program, slow)) > 1.3 * sum(r.cycles for r in reports)


@pytest.mark.rtl
@pytest.mark.xdist_group("accel_micro_os")
def test_harness_read_error_then_clean_run(micro_os, micro_program, tmp_path):
    """A read the memory answers with DECERR stops the run with AXI_READ; the next run is clean."""
    regs = Registers(micro_os.manifest)
    image = micro_program.image
    beyond = image.end + (1 << 16)  # inside the address space, outside the DRAM model
    first = micro_program.ops[1]  # the patch embedding's LINEAR
    bad = descriptors.encode("LINEAR", {**first.fields, "src": beyond}, flags=first.flags, fmt=first.fmt) + \
        descriptors.encode("END")
    bad_addr = image.regions["descriptors.single"].addr  # the bad list over the one-operator lists (unused here)
    (tmp_path / "image.bin").write_bytes(image.image())
    (tmp_path / "bad.bin").write_bytes(bad)
    lines = ["npuforge-accel-spec 1", f"memory 0 {image.end + 4096}", "timing 20 10 0 0.2 3 2 2", "timeout 200000",
             f"load {image.base} {tmp_path / 'image.bin'}", f"load {bad_addr} {tmp_path / 'bad.bin'}",
             f"write {regs.offset('DESC_BASE')} {bad_addr}", f"write {regs.offset('DESC_BASE') + 4} 0",
             f"write {regs.offset('IRQ_ENABLE')} 3", f"write {regs.offset('CTRL')} 1", "run",
             f"read {regs.offset('STATUS')}", "cycles 50", f"read {regs.offset('STATUS')}",
             f"write {regs.offset('IRQ_STATUS')} 3",
             f"write {regs.offset('DESC_BASE')} {micro_program.desc.addr}", f"write {regs.offset('CTRL')} 1", "run",
             f"read {regs.offset('STATUS')}", f"dump {image.base} {image.end - image.base} {tmp_path / 'dump.bin'}"]
    (tmp_path / "spec").write_text("\n".join(lines) + "\n")
    done = subprocess.run([str(micro_os.harness), str(tmp_path / "spec")], capture_output=True, text=True)
    out = done.stdout.splitlines()
    runs = [line for line in out if line.startswith("run ")]
    status = [int(line.split()[2]) for line in out if line.startswith("csr ")]
    assert all(r.split()[2] == "1" for r in runs), out
    code = regs.extract(status[0], "STATUS", "code")
    assert code == descriptors.ERROR["AXI_READ"], status
    assert regs.extract(status[1], "STATUS", "busy") == 0, "the ports drained and the engines stopped"
    assert regs.extract(status[2], "STATUS", "done") == 1 and regs.extract(status[2], "STATUS", "code") == 0
    dump = (tmp_path / "dump.bin").read_bytes()
    for name, expected in micro_program.expected.items():
        from sim.moevit.memory import tensor_codes

        np.testing.assert_array_equal(tensor_codes(image.regions[name], dump, image.base), expected, err_msg=name)


@pytest.mark.rtl
@pytest.mark.xdist_group("accel_micro_os")
@pytest.mark.parametrize("how", ["soft", "hard"])
def test_harness_reset_midway_then_clean_run(micro_os, micro_program, tmp_path, how):
    regs = Registers(micro_os.manifest)
    image = micro_program.image
    (tmp_path / "image.bin").write_bytes(image.image())
    start = [f"write {regs.offset('DESC_BASE')} {micro_program.desc.addr}", f"write {regs.offset('DESC_BASE') + 4} 0",
             f"write {regs.offset('IRQ_ENABLE')} 3", f"write {regs.offset('IRQ_STATUS')} 3",
             f"write {regs.offset('CTRL')} 1"]
    stop = [f"write {regs.offset('CTRL')} 2", "cycles 300"] if how == "soft" else ["reset 6"]
    lines = ["npuforge-accel-spec 1", f"memory 0 {image.end + 4096}", "timing 30 10 0 0.3 5 2 2", "timeout 400000",
             f"load {image.base} {tmp_path / 'image.bin'}", *start, "cycles 2500", *stop,
             f"read {regs.offset('STATUS')}", *start, "run", f"read {regs.offset('STATUS')}",
             f"dump {image.base} {image.end - image.base} {tmp_path / 'dump.bin'}"]
    (tmp_path / "spec").write_text("\n".join(lines) + "\n")
    done = subprocess.run([str(micro_os.harness), str(tmp_path / "spec")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    status = [int(line.split()[2]) for line in done.stdout.splitlines() if line.startswith("csr ")]
    assert regs.extract(status[0], "STATUS", "busy") == 0
    assert regs.extract(status[1], "STATUS", "done") == 1 and regs.extract(status[1], "STATUS", "code") == 0
    dump = (tmp_path / "dump.bin").read_bytes()
    from sim.moevit.memory import tensor_codes

    for name, expected in micro_program.expected.items():
        np.testing.assert_array_equal(tensor_codes(image.regions[name], dump, image.base), expected, err_msg=name)


# --------------------------------------------------------------------------- the host driver

def _example():
    import importlib.util

    spec = importlib.util.spec_from_file_location("host_moevit", ROOT / "examples" / "host_moevit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.rtl
@pytest.mark.xdist_group("accel_micro_os")
def test_host_driver_runs_the_network_bit_exact(micro_os):
    """npuforge.host's Accelerator against the Verilated accelerator (the fast harness, interactive): the
    example's one image per task through the driver, each head's output bit-exact against the golden's
    whole forward pass; the interrupt path and the polling path; a device that is not the manifest's."""
    from npuforge.host import Accelerator, AcceleratorError
    from npuforge.host.simulated import HarnessSession
    from sim.golden.moevit.fixed import forward_codes, quantize

    model = load_config(MICRO_OS).network
    timing = MemoryTiming(read_latency=30, stall=0.2, seed=11)
    with HarnessSession(micro_os.harness, micro_os.manifest, timing=timing) as session:
        acc = Accelerator(session.mmio, session.memory, micro_os.manifest, interrupt=session.interrupt)
        with pytest.raises(AcceleratorError, match="load"):
            acc.run(np.zeros((model.channels, model.height, model.width)), "seg")
        acc.load(model)
        example = _example()
        results = example.run_tasks(acc, model, image_index=2)
        pixels = quantize(results["image"], model.format("pixel"))[None]
        for task in model.task_names:
            golden = forward_codes(acc._loaded.codes, pixels, task, model)[0]
            out = results[task]
            np.testing.assert_array_equal(out.codes, golden, err_msg=task)
            assert out.map.shape == (model.height, model.width)
            assert out.counters["CYCLES"] > 0 and out.counters["MAC_ACTIVE"] > 0
        assert results["seg"].map.max() < model.task("seg").classes
        assert len(example.character_map(results["depth"])) == model.height
        # Polling STATUS instead of the interrupt: the same result for the same image.
        polling = Accelerator(session.mmio, session.memory, micro_os.manifest)
        polling._loaded, polling._buffer, polling._uploaded = acc._loaded, acc._buffer, acc._uploaded
        again = polling.run(results["image"], "seg")
        np.testing.assert_array_equal(again.codes, results["seg"].codes)
        with pytest.raises(AcceleratorError, match="task"):
            acc.run(results["image"], "nope")
        # A manifest of another design: VERSION differs, the driver refuses the device.
        other = json.loads(json.dumps(micro_os.manifest))
        version = next(r for r in other["registers"]["registers"] if r["name"] == "VERSION")
        next(f for f in version["fields"] if f["name"] == "config")["reset"] ^= 1
        with pytest.raises(AcceleratorError, match="VERSION"):
            Accelerator(session.mmio, session.memory, other)
        end = session.close()
    assert end.violations == [] and end.total_cycles > 0
    assert all(read > 0 for read, _ in end.port_bytes)


def _micro_image(model, index: int = 4):
    from sim.golden.moevit.fixed import quantize
    from sim.moevit.data import make_image

    return quantize(make_image(0, index, model.height, model.width, 3)[0], model.format("pixel"))


@pytest.mark.rtl
@pytest.mark.xdist_group("accel_micro_os")
def test_whole_network_from_one_descriptor_list(micro_os):
    """Both tasks as one descriptor list each: the image in, every operator reading what an earlier one wrote
    (the only tensors the host writes are the image and the position embedding), under stalls; every
    intermediate tensor and the head bit-exact, the head equal to the golden's whole forward pass."""
    from sim.golden.moevit.fixed import forward_codes, quantize_params, unpatchify
    from sim.golden.moevit.params import seeded_params
    from sim.moevit.compiler import CompileError, Target, golden_ops_program, network_program

    cfg = load_config(MICRO_OS)
    model, target = cfg.network, Target.from_config(cfg)
    codes = quantize_params(seeded_params(model), model)
    pixels = _micro_image(model)
    for seed, task in enumerate(model.task_names):
        program = network_program(target, model, codes, pixels, task)
        written = {op.writes for op in program.ops if op.writes}
        host = {name for name, r in program.image.regions.items() if r.kind == "tensor" and name not in written}
        assert host == {"image", "pos"}, host
        assert {op.opcode for op in program.ops} == {"IM2COL", "LINEAR", "ADD", "LAYERNORM", "ATTENTION", "GATE"}
        assert [op.name for op in program.ops][-2:] == ["norm", f"head.{task}"]
        result = run_program(micro_os.harness, micro_os.manifest, program, per_op=False,
                             timing=MemoryTiming(read_latency=30, stall=0.2, seed=20 + seed))
        _check(program, result)
        assert {f"blocks.{layer}.attn" for layer in range(model.layers)} <= set(result.outputs)
        golden = forward_codes(codes, pixels[None], task, model)[0]
        head = unpatchify(result.outputs[f"head.{task}"][None], model.task(task).outputs, model.patch, model.grid)[0]
        np.testing.assert_array_equal(head, golden, err_msg=task)
    with pytest.raises(CompileError, match="network"):
        golden_ops_program(target, model, codes, pixels, "seg", rows=False, network=True)


@pytest.mark.rtl
@pytest.mark.xdist_group("accel_micro_os")
def test_eval_rtl_backend_reports_the_goldens_metrics(micro_os):
    """``npuforge eval --backend rtl``'s report: the accelerator's metrics (every image, both tasks, the whole
    network) equal the fixed-point golden's, no image differs."""
    from sim.golden.moevit.params import seeded_params
    from sim.moevit.evaluate import evaluate

    cfg = load_config(MICRO_OS)
    report = evaluate(cfg.network, images=2, names=["fixed-hw"], params=seeded_params(cfg.network), accel=cfg,
                      build_root=BUILD_ROOT)
    assert report["rtl_mismatches"] == []
    assert report["variants"]["rtl"] == report["variants"]["fixed-hw"]
    assert report["accelerator"]["config"] == cfg.name


@pytest.mark.parametrize("argv,piece", [
    (["--accel", "MICRO_OS"], "--accel, --build-dir: allowed only with --backend rtl"),
    (["--backend", "rtl"], "--accel: not given"),
    (["--backend", "rtl", "--accel", "MODEL"], "kind: 'moevit'"),
    (["--backend", "rtl", "--accel", "TINY_ACCEL"], "runs model 'tiny_moevit'"),
])
def test_eval_rtl_argument_errors_are_one_line(argv, piece, capsys):
    from npuforge.cli import main

    paths = {"MICRO_OS": str(MICRO_OS), "MODEL": str(MODEL),
             "TINY_ACCEL": str(ROOT / "configs" / "moevit" / "accel_tiny.yaml")}
    assert main(["eval", str(MODEL), *[paths.get(a, a) for a in argv]]) == 2
    err = capsys.readouterr().err.strip()
    assert piece in err and "\n" not in err, err


# --------------------------------------------------------------------------- cocotbext-axi

@pytest.mark.rtl
@pytest.mark.xdist_group("accel_micro_cube")
def test_cocotb_axi_models_bad_descriptors_and_reset():
    """The cube accelerator on one 128-bit port (the harness tests run the output-stationary one on two
    64-bit ports): AxiRam with pauses on every channel, AxiLiteMaster, sixteen refused descriptor lists
    (LAYERNORM, SOFTMAX and unified-attention ones among them), a reset midway, then every operator bit-exact
    (M beyond the A buffer runs in two chunks), with the unified attention's Q K^T -> SOFTMAX -> A V of every
    head against the golden's scores, probabilities and heads."""
    from sim import runner
    from sim.tb import moevit_accel

    cfg = load_config(MICRO_CUBE)
    done = runner.simulate(cfg, moevit_accel, seed=2, ready_prob=0.7, build_root=BUILD_ROOT)
    result = done.run
    assert result.ok, (result.mismatch, result.problems, str(result.log))
    runs = result.results["runs"]
    refused = [r for r in runs if r.get("code")]
    assert len(refused) >= 14
    assert {r["name"] for r in refused} >= {"layernorm_beyond_n_max", "layernorm_params_misaligned", "softmax_zero_n",
                                            "softmax_flag"}
    program = runs[-1]
    assert program["desc_done"] == len(result.vectors["ops"])
    assert any("[" in op for op in result.vectors["ops"]), "M beyond a_rows is cut into chunks"
    assert sum(".qk.h" in op for op in result.vectors["ops"]) == 16, "Q K^T of 4 heads in 4 chunks each"
    assert {"keys_beyond_banks", "two_b_sources"} <= {r["name"] for r in result.vectors["runs"]}
    assert program["counters"]["MAC_ACTIVE"] > 0
    assert program["counters"]["BUSY_LAYERNORM"] > 0 and program["counters"]["BUSY_SOFTMAX"] > 0
    assert {"blocks.0.ln1", "norm"} <= set(result.vectors["ops"])


@pytest.mark.xdist_group("accel_micro_os")
def test_generate_writes_the_register_map(micro_os):
    """What generation wrote for the harness build (``gen.emit.generate``, run once per generator version)."""
    rtl = micro_os.verilog.parent
    names = sorted(p.name for p in rtl.iterdir() if not p.name.startswith("."))
    assert names == ["accel_micro_os.v", "accel_micro_os_regs.h", "accel_micro_os_regs.rdl", "manifest.json"]
    manifest = json.loads((rtl / "manifest.json").read_text())
    assert manifest == micro_os.manifest
    assert {r["name"] for r in manifest["registers"]["registers"]} >= {"ID", "CTRL", "STATUS", "DESC_BASE", "CYCLES",
                                                                        "BUSY_LAYERNORM", "BUSY_SOFTMAX"}
    opcodes = manifest["descriptors"]["opcodes"]
    assert [opcodes[name]["code"] for name in ("LINEAR", "LAYERNORM", "SOFTMAX")] == [1, 4, 5]
    assert [m["prefix"] for m in manifest["axi"]["masters"]] == ["m_axi0", "m_axi1"]
    header = (rtl / "accel_micro_os_regs.h").read_text()
    assert "BUSY_LAYERNORM" in header and "BUSY_SOFTMAX" in header
    subprocess.run(["gcc", "-fsyntax-only", "-x", "c", "-"], input=header, text=True, check=True)
