"""Testbench of ``kind: npu_tile``: random and edge-case programs against the golden interpreter.

Host side: :func:`make_vectors` builds programs (host words) and runs them
through :class:`sim.golden.npu_tile.Tile` for the expected result rows and the
``done``/``error`` flags. A program marked ``reset_before`` starts a new
*segment*: the design is reset first (registers only; memories keep their
words, in the golden model too). Edge cases: zeros, extreme operands that
saturate at both ends, K loops of several tiles, every activation mode, scale
0 and the largest shift, and one program per error the controller detects.
Random programs are random valid command lists (LOADs, GEMMs over random
buffer ranges, QUANT, ACT, WRITE) run back to back.

Simulator side: :func:`programs` streams each segment's words, collects
result beats, waits for the flags, then checks that no extra beat appears.
"""

import random

import cocotb
import numpy as np

from sim.golden import npu_tile as golden
from sim.golden.intmath import operand_range

from .harness import CycleLoop, RunFiles, as_unsigned, reset, start_and_reset
from .stream import StreamSink, StreamSource

#: What the vectors are made of (``npuforge sim`` counts ``vectors[VECTOR_UNIT]``).
VECTOR_UNIT = "programs"

# --------------------------------------------------------------------------- host side


def _typical_shift(cfg) -> int:
    """A shift that brings a typical random accumulator times a large scale to the output range."""
    c = cfg.compute
    # |A|, |B| average about a quarter of the range; a sum of K products grows like sqrt(K).
    acc_bits = 2 * (c.operand.width - 2) + (cfg.k_beats_max * cfg.steps).bit_length() // 2
    return int(np.clip(acc_bits + cfg.scale_width - 1 - (cfg.out_width - 2), 0, cfg.shift_max))


def _random_words(rng: random.Random, count: int, width: int) -> list[int]:
    return [rng.getrandbits(width) for _ in range(count)]


def random_program(cfg, rng: random.Random) -> list[tuple[int, int]]:
    """A random valid program (ending in WRITE, END) followed by the data words its LOADs take."""
    c, fmt = cfg.compute, cfg.out_format
    a_width = c.operand.width * cfg.steps * c.c_rows
    b_width = c.operand.width * cfg.steps * c.cols
    ops = ["LOAD_A", "LOAD_B", "GEMM", "GEMM", "QUANT", "ACT", "WRITE"]
    program, data = [], []
    for _ in range(rng.randint(1, cfg.cmd_depth - 2)):
        op = rng.choice(ops)
        if op in ("LOAD_A", "LOAD_B"):
            depth, width = (cfg.a_depth, a_width) if op == "LOAD_A" else (cfg.b_depth, b_width)
            addr = rng.randrange(depth)
            count = rng.randint(1, depth - addr)
            program.append(golden.command(cfg, op, addr=addr, count=count))
            data += _random_words(rng, count, width)
        elif op == "GEMM":
            k = rng.randint(1, min(cfg.k_beats_max, cfg.a_depth, cfg.b_depth))
            program.append(golden.command(cfg, op, a_addr=rng.randint(0, cfg.a_depth - k),
                                          b_addr=rng.randint(0, cfg.b_depth - k), k=k, acc=rng.getrandbits(1)))
        elif op == "QUANT":
            shift = rng.randint(0, cfg.shift_max) if rng.random() < 0.25 else \
                int(np.clip(_typical_shift(cfg) + rng.randint(-3, 3), 0, cfg.shift_max))
            program.append(golden.command(cfg, op, scale=rng.getrandbits(cfg.scale_width), shift=shift))
        elif op == "ACT":
            lo, hi = sorted(rng.randint(fmt.min_code, fmt.max_code) for _ in range(2))
            program.append(golden.command(cfg, op, mode=rng.randint(0, 2), lo=lo, hi=hi))
        else:
            program.append(golden.command(cfg, op))
    program += [golden.command(cfg, "WRITE"), golden.command(cfg, "END")]
    return [(1, word) for word in program] + [(0, word) for word in data]


def _tiles(cfg, n: int, k: int, a_value, b_value):
    c = cfg.compute
    steps = k * cfg.steps
    return [(np.full((c.c_rows, steps), a_value), np.full((steps, c.cols), b_value)) for _ in range(n)]


def edge_programs(cfg, rng: np.random.Generator) -> list[tuple[str, list]]:
    """Labelled valid edge-case programs (see the module docstring)."""
    c, fmt = cfg.compute, cfg.out_format
    lo, hi = operand_range(c.operand.width, c.operand.signed)
    k = cfg.k_beats_max
    loop = max(1, min((cfg.cmd_depth - 4) // 3, 4))  # K tiles of a loop that reloads each tile
    top_scale = (1 << cfg.scale_width) - 1
    programs = [
        ("zeros", golden.gemm_program(cfg, _tiles(cfg, 1, k, 0, 0), scale=top_scale, shift=0)),
        (f"all max, K loop of {loop} tiles, saturates high",
         golden.gemm_program(cfg, _tiles(cfg, loop, k, hi, hi), scale=top_scale, shift=0)),
        ("scale 0", golden.gemm_program(cfg, _tiles(cfg, 1, k, hi, hi), scale=0, shift=0)),
        ("largest shift", golden.gemm_program(cfg, _tiles(cfg, loop, k, hi, hi), scale=top_scale,
                                             shift=cfg.shift_max)),
    ]
    if c.operand.signed:
        programs += [
            (f"min x max, K loop of {loop} tiles, saturates low",
             golden.gemm_program(cfg, _tiles(cfg, loop, k, lo, hi), scale=top_scale, shift=0)),
            ("all min, ReLU", golden.gemm_program(cfg, _tiles(cfg, loop, k, lo, lo), scale=1, shift=0, mode="relu")),
            ("min x max, ReLU gives zeros",
             golden.gemm_program(cfg, _tiles(cfg, 1, k, lo, hi), scale=1, shift=0, mode="relu")),
        ]
    steps = k * cfg.steps
    checker_a = np.where(np.add.outer(np.arange(c.c_rows), np.arange(steps)) % 2 == 0, lo, hi)
    checker_b = np.where(np.add.outer(np.arange(steps), np.arange(c.cols)) % 3 == 0, hi, lo)
    programs.append(("checkerboard extremes, both saturations",
                     golden.gemm_program(cfg, [(checker_a, checker_b)], scale=top_scale, shift=0)))
    for mode in ("relu", "clip"):
        tiles = [(rng.integers(lo, hi + 1, (c.c_rows, steps)), rng.integers(lo, hi + 1, (steps, c.cols)))
                 for _ in range(min(2, loop))]  # two tiles reloaded each need 10 commands
        clip = sorted(int(v) for v in rng.integers(fmt.min_code, fmt.max_code + 1, 2))
        programs.append((f"random, {mode}", golden.gemm_program(
            cfg, tiles, scale=int(rng.integers(1, top_scale + 1)), shift=_typical_shift(cfg), mode=mode,
            lo=clip[0], hi=clip[1])))
    return programs


def error_programs(cfg) -> list[tuple[str, list]]:
    """Labelled programs the controller must reject (each sets ``error``)."""
    fmt = cfg.out_format
    cmd = lambda name, **f: (1, golden.command(cfg, name, **f))  # noqa: E731
    end, write = cmd("END"), cmd("WRITE")
    count_max = (1 << _field_width(cfg, "GEMM", "k")) - 1
    shift_field = (1 << _field_width(cfg, "QUANT", "shift")) - 1
    cases = [
        ("invalid opcode 7", [cmd("QUANT", scale=1, shift=0), (1, 7), write, end]),
        ("WRITE, then invalid opcode", [write, (1, 7), end]),
        ("LOAD_A past the end of buf_a", [cmd("LOAD_A", addr=cfg.a_depth - 1, count=2), end, (0, 1), (0, 2)]),
        ("LOAD_B of 0 words", [cmd("LOAD_B", addr=0, count=0), end]),
        ("GEMM of k = 0", [cmd("GEMM", a_addr=0, b_addr=0, k=0, acc=0), write, end]),
        ("GEMM past the end of buf_b", [cmd("GEMM", a_addr=0, b_addr=cfg.b_depth - 1, k=2, acc=0), write, end]),
        ("ACT mode 3", [cmd("ACT", mode=3, lo=0, hi=0), write, end]),
        ("ACT clip with lo > hi", [cmd("ACT", mode=2, lo=fmt.max_code, hi=fmt.min_code), write, end]),
        ("data word where a command is expected", [(0, 5), end]),
        ("command word where a LOAD expects data", [cmd("LOAD_A", addr=0, count=1), end, end]),
        (f"program of more than {cfg.cmd_depth} commands", [write] * cfg.cmd_depth + [end]),
    ]
    if count_max > cfg.k_beats_max:
        cases.append(("GEMM longer than the engine's k_max",
                      [cmd("GEMM", a_addr=0, b_addr=0, k=cfg.k_beats_max + 1, acc=0), end]))
    if shift_field > cfg.shift_max:
        cases.append(("shift above shift_max", [cmd("QUANT", scale=1, shift=cfg.shift_max + 1), end]))
    return cases


def _field_width(cfg, name: str, field: str) -> int:
    return next(f["width"] for f in golden._fields(golden.layouts(cfg)[name]) if f["name"] == field)


def make_vectors(cfg, *, seed: int, n_random: int, valid_prob: float = 1.0, ready_prob: float = 1.0,
                 edge_cases: bool = True) -> dict:
    """Edge programs, error programs (each after a reset), then ``n_random`` random programs back to back."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    labelled = []
    if edge_cases:
        labelled += [(label, words, False) for label, words in edge_programs(cfg, nrng)]
        labelled += [(label, words, True) for label, words in error_programs(cfg)]
    labelled += [(f"random #{n}", random_program(cfg, rng), False) for n in range(n_random)]

    tile = golden.Tile(cfg)
    programs, after_error = [], False
    for label, words, _ in labelled:
        reset_before = after_error
        if reset_before:
            tile.reset()
        before = len(tile.results)
        tile.feed(words)
        programs.append({
            "label": label, "words": [list(w) for w in words], "reset_before": reset_before,
            "results": [[row, last] for row, last in tile.results[before:]],
            "done": int(tile.done), "error": int(tile.error), "reason": tile.reason,
            "clipped": tile.clipped,
        })
        after_error = tile.error
    return {"kind": "npu_tile", "seed": seed, "flow": {"valid_prob": valid_prob, "ready_prob": ready_prob},
            "programs": programs}


def segments(vectors: dict) -> list[list[int]]:
    """Indices of the programs of each segment (a reset starts one)."""
    out = []
    for index, program in enumerate(vectors["programs"]):
        if not out or program["reset_before"]:
            out.append([])
        out[-1].append(index)
    return out


def first_mismatch(vectors: dict, results: dict) -> dict | None:
    """The first wrong or missing result row or flag, or None if every program matches."""
    got = results.get("programs", [])
    flags = results.get("flags", [])
    for index, program in enumerate(vectors["programs"]):
        if index >= len(got):
            return {"program": index, "label": program["label"], "what": "results", "expected": "rows",
                    "got": f"nothing ({results.get('stopped', 'simulation ended')})"}
        expected = program["results"]
        rows = got[index]
        for n, want in enumerate(expected):
            if n >= len(rows):
                return {"program": index, "label": program["label"], "what": f"row {n}", "expected": want,
                        "got": "no beat"}
            if rows[n] != want:
                return {"program": index, "label": program["label"], "what": f"row {n}", "expected": want,
                        "got": rows[n]}
        if len(rows) > len(expected):
            return {"program": index, "label": program["label"], "what": "beats",
                    "expected": len(expected), "got": len(rows)}
    for number, indices in enumerate(segments(vectors)):
        last = vectors["programs"][indices[-1]]
        # No alarm in a fault-free run: status bits and counters stay 0.
        want = {"done": last["done"], "error": last["error"], "alarms": 0, "clip_count": last.get("clipped", 0)}
        have = flags[number] if number < len(flags) else None
        if have != want:
            return {"program": indices[-1], "label": last["label"], "what": "flags at the end",
                    "expected": want, "got": have}
    return None


def describe_mismatch(m: dict) -> str:
    return f"program {m['program']} ({m['label']}): {m['what']} expected {m['expected']}, got {m['got']}"


def summary_lines(manifest: dict, vectors: dict, results: dict, seconds: float) -> list[str]:
    """What ``npuforge sim`` prints about a run beyond pass/fail."""
    if not results:
        return []
    errors = sum(p["error"] for p in vectors["programs"])
    return [f"cycles   {results.get('cycles')} simulated, {seconds:.2f} s wall; {results.get('host_words')} host "
            f"words in, {results.get('result_beats')} result beats out; {errors} programs end in error "
            f"({len(segments(vectors))} resets)"]


# --------------------------------------------------------------------------- simulator side

#: Status ports that a fault-free run leaves at 0 (the protection's alarms, sticky bits, counters).
ALARM_PORTS = ("alarm_status", "corr_count", "uncorr_count")


class _Run:
    def __init__(self, dut, run: RunFiles, rng: random.Random):
        flow = run.vectors["flow"]
        self.source = StreamSource(dut, run.interface("host"), rng=rng, valid_prob=flow["valid_prob"])
        self.sink = StreamSink(dut, run.interface("results"), rng=rng, ready_prob=flow["ready_prob"])
        self.loop = CycleLoop(dut, run.manifest, [self.source, self.sink])


@cocotb.test()
async def programs(dut):
    """Stream every segment's programs and compare rows and flags with the golden interpreter."""
    run = RunFiles.from_env()
    vectors = run.vectors
    rng = run.rng()
    await start_and_reset(dut, run.manifest)
    got, flags, problems = [], [], []
    cycles = words_in = beats_out = 0
    stopped = None
    for number, indices in enumerate(segments(vectors)):
        if number:
            await reset(dut, run.manifest)
        bench = _Run(dut, run, rng)
        progs = [vectors["programs"][i] for i in indices]
        for program in progs:
            for cmd, value in program["words"]:
                bench.source.send({"word": value, "cmd": cmd})
        wanted = sum(len(p["results"]) for p in progs)
        final = progs[-1]
        words = sum(len(p["words"]) for p in progs)
        ended = (lambda: int(dut.error.value) == 1) if final["error"] else (lambda: int(dut.done.value) == 1)
        budget = 50 * words + 40 * wanted + 400

        def finished():
            return (len(bench.source.transfers) >= words and len(bench.sink.transfers) >= wanted
                    and not bench.source.queue and bench.source.offered is None and ended())
        ok = await bench.loop.run(finished, max_cycles=int(budget / min(bench.source.valid_prob,
                                                                         bench.sink.ready_prob)))
        await bench.loop.run(lambda: False, max_cycles=20)  # any stray beat shows up
        cycles += bench.loop.cycle
        words_in += len(bench.source.transfers)
        beats_out += len(bench.sink.transfers)
        rows = [[t.beat["c"], t.beat["last"]] for t in bench.sink.transfers]
        for program in progs:
            got.append(rows[:len(program["results"])])
            rows = rows[len(program["results"]):]
        if rows:
            got[-1] = got[-1] + rows
        alarms = sum(as_unsigned(getattr(dut, port).value) for port in ALARM_PORTS)
        flags.append({"done": as_unsigned(dut.done.value), "error": as_unsigned(dut.error.value), "alarms": alarms,
                      "clip_count": as_unsigned(dut.clip_count.value)})
        problems += bench.sink.violations
        if not ok:
            stopped = f"segment {number} did not finish ({len(bench.source.transfers)} of {words} words taken)"
            break
    results = {"programs": got, "flags": flags, "cycles": cycles, "host_words": words_in, "result_beats": beats_out,
               "protocol_errors": problems}
    if stopped:
        results["stopped"] = stopped
    run.write_results(results)
    mismatch = first_mismatch(vectors, results)
    assert mismatch is None, describe_mismatch(mismatch)
    assert not problems, problems[0]
