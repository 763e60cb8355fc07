"""Model-level exposures of ``kind: npu_tile``: buffer words, their read registers and the accumulators.

The host words of the workload are replayed through the golden interpreter
(:mod:`sim.golden.npu_tile`) for the values, and through the controller's documented
timing (``docs/npu_tile.md``, host always valid, sink always ready) for the cycles
(:func:`schedule`): a program's command words one per cycle, then per command a fetch and
a decode cycle; a ``LOAD`` writes one word per cycle; a ``GEMM`` of ``k`` beats reads
one word of each buffer per cycle from its first cycle, the engine takes beat ``t`` in
the cycle after its read, and result row ``i`` reaches the accumulators ``latency + i``
cycles after the last beat; ``WRITE`` reads accumulator row ``r`` in its ``r``-th cycle.

=======================================  ===============================================
RTL site                                 golden-model value (cycles)
=======================================  ===============================================
``buf_a.mem`` word ``w`` (operand ``i``)  ``A[i, t]`` of the GEMM that reads it, from its write to that read
``buf_b.mem`` word ``w`` (operand ``j``)  ``B[t, j]`` likewise
``buf_a.r_data_reg`` / ``buf_b...``      the word read, in the cycle the engine takes it
``acc.acc_<i>_<j>``                      the accumulator between a row's arrival and the next add or the WRITE
=======================================  ===============================================

Not mapped: ``cmd`` (the program), ``ctrl`` (the controller), ``acc.ptr``, ``post`` (the
requantisation parameters and the result register) and the engine's registers inside the
tile (``compute.*``: its ``systolic_os`` runs with two result buffers, column buses, a
de-skew and a row buffer, whose timing the model level does not hold yet).
"""

import numpy as np

from gen.config import parse_config_data
from sim.golden import npu_tile as golden
from sim.golden import tpe
from sim.golden.intmath import wrap

from .exposure import ExposureBuilder, Plan


def schedule(cfg, words: list[tuple[int, int]], latency: int) -> tuple[list[dict], int]:
    """The commands the tile executes with their cycles, and the window (cycle after the last result beat)."""
    ops = {code: name for name, code in golden.OPCODES.items()}
    rows = cfg.compute.c_rows
    events, cycle, pending = [], 0, list(words)
    last_beat = 0
    while pending:
        program = []
        while pending:  # PROG: one command word per cycle, END starts the program
            cmd, value = pending.pop(0)
            program.append(value)
            cycle += 1
            if value & 0b111 == golden.OPCODES["END"]:
                break
        for value in program:
            op, fields = golden.decode(cfg, value)
            name, start = ops[op], cycle + 2  # FETCH, DECODE
            if name in ("LOAD_A", "LOAD_B"):
                count = fields["count"]
                data = [pending.pop(0)[1] for _ in range(count)]
                events.append({"op": name, "addr": fields["addr"], "words": data, "cycles": list(range(start, start + count))})
                cycle = start + count
            elif name == "GEMM":
                k = fields["k"]
                reads = list(range(start, start + k))
                arrive = start + k + latency
                events.append({"op": name, **fields, "reads": reads, "rows": [arrive + i for i in range(rows)]})
                cycle = arrive + rows  # GEMM_WAIT sees the last row, then FETCH
            elif name == "WRITE":
                events.append({"op": name, "rows": [start + r for r in range(rows)]})
                cycle = start + rows
                last_beat = start + rows
            elif name == "END":
                cycle = start
            else:
                cycle = start
    return events, last_beat + 1


def tile_plan(manifest: dict, workload) -> Plan:
    cfg = parse_config_data(manifest["config"], "manifest.json")
    c = cfg.compute
    rows, cols, steps = c.c_rows, c.cols, cfg.steps
    width, signed = c.operand.width, c.operand.signed
    codec = workload.codec("host")
    words = [(v["cmd"], v["word"]) for v in (codec.unpack(int(w)) for w in workload.inputs["host"])]
    events, window = schedule(cfg, words, manifest["parameters"]["compute"]["latency"])
    build = ExposureBuilder(manifest)
    buffers = {"LOAD_A": [None] * cfg.a_depth, "LOAD_B": [None] * cfg.b_depth}  # (value, written at) per word
    gemms, writes = [], []  # engine results per GEMM, the accumulator rows each WRITE sends
    acc = np.zeros((rows, cols), dtype=np.int64)
    acc_written = np.full(rows, -1)  # cycle a row of the accumulators was last written
    engine_base = 0
    for event in events:
        if event["op"] in buffers:
            for n, (value, at) in enumerate(zip(event["words"], event["cycles"])):
                buffers[event["op"]][event["addr"] + n] = (value, at)
        elif event["op"] == "GEMM":
            k = event["k"]
            a = np.zeros((rows, k * steps), dtype=np.int64)
            b = np.zeros((k * steps, cols), dtype=np.int64)
            for t in range(k):
                wa, at_a = buffers["LOAD_A"][event["a_addr"] + t]
                wb, at_b = buffers["LOAD_B"][event["b_addr"] + t]
                ea = golden._unpack(wa, rows * steps, width, signed)
                eb = golden._unpack(wb, cols * steps, width, signed)
                for s in range(steps):
                    a[:, t * steps + s] = ea[s * rows:(s + 1) * rows]
                    b[t * steps + s, :] = eb[s * cols:(s + 1) * cols]
                read = event["reads"][t]
                for s in range(steps):
                    kk = t * steps + s
                    _word(build, "buf_a", written=at_a, read=read, word=event["a_addr"] + t, lane0=s * rows,
                          width=width, signed=signed, values=a[:, kk], partners=[b[kk, :]] * rows,
                          elements=[[engine_base + i * cols + j for j in range(cols)] for i in range(rows)])
                    _word(build, "buf_b", written=at_b, read=read, word=event["b_addr"] + t, lane0=s * cols,
                          width=width, signed=signed, values=b[kk, :], partners=[a[:, kk]] * cols,
                          elements=[[engine_base + i * cols + j for i in range(rows)] for j in range(cols)])
            product = tpe.matmul(a, b, width=width, signed=signed, acc_width=c.acc_width)
            for i, arrive in enumerate(event["rows"]):
                if event["acc"]:  # the add reads the row: a flip since its last write changes it
                    for j in range(cols):
                        build.register(f"core.acc.acc_{i}_{j}", width=cfg.acc_width,
                                       cycles=(acc_written[i] + 1, arrive), code=acc[i, j],
                                       element=len(writes) * rows * cols + i * cols + j, stage=1)
                acc_written[i] = arrive
            acc = wrap(acc * int(event["acc"]) + product, cfg.acc_width, signed)
            gemms.append({"c": product, "add": event["acc"], "write": len(writes)})
            engine_base += rows * cols
        elif event["op"] == "WRITE":
            for i, read in enumerate(event["rows"]):
                for j in range(cols):
                    build.register(f"core.acc.acc_{i}_{j}", width=cfg.acc_width, cycles=(acc_written[i] + 1, read),
                                   code=acc[i, j], element=len(writes) * rows * cols + i * cols + j, stage=1)
            writes.append(None)
    tile = golden.results_of(cfg, words)
    params = _write_params(cfg, words)
    expected = np.array([code for row, _ in tile.results for code in row], dtype=np.int64)
    n_out = len(writes) * rows * cols

    def finish(changes):
        engine_change, acc_change = changes
        faults = engine_change.shape[0]
        total = np.zeros((faults, n_out), dtype=np.int64)
        running = np.zeros((faults, rows * cols), dtype=np.int64)
        for g, gemm in enumerate(gemms):
            clean = gemm["c"].reshape(-1)
            part = engine_change[:, g * rows * cols:(g + 1) * rows * cols]
            hit = wrap(clean[None, :] + part, c.acc_width, signed)
            running = running * int(gemm["add"]) + hit
            total[:, gemm["write"] * rows * cols:(gemm["write"] + 1) * rows * cols] = running
        accs = wrap(total + acc_change, cfg.acc_width, signed)
        out = np.empty_like(accs)
        for w, p in enumerate(params):
            span = slice(w * rows * cols, (w + 1) * rows * cols)
            out[:, span] = golden.requant(cfg, accs[:, span], **p)
        return out

    visible = {path: site["width"] for path, site in ((s["path"], s) for s in manifest["fault_sites"])
               if path in ("core.buf_a.mem", "core.buf_b.mem", "core.buf_a.r_data_reg", "core.buf_b.r_data_reg")
               or path.startswith("core.acc.acc_")}
    return Plan(exposures=build.table(), stage_sizes=(engine_base, n_out), finish=finish, expected=expected,
                window=window, visible=visible)


def _word(build: ExposureBuilder, block: str, *, written: int, read: int, word: int, lane0: int, width: int,
          signed: bool, values, partners, elements) -> None:
    """Operand ``n`` of a buffer word (bits ``(lane0 + n) * width``): in ``<block>.mem`` from the cycle after
    its write to its read, then in ``<block>.r_data_reg`` in the cycle after the read (the engine takes it)."""
    for n, (value, partner, consumers) in enumerate(zip(values, partners, elements)):
        bits = ((lane0 + n) * width, width)
        for site, cycles, at in ((f"core.{block}.mem", (written + 1, read), word),
                                 (f"core.{block}.r_data_reg", (read + 1, read + 1), 0)):
            build.operand(site, bits=bits, cycles=cycles, value=value, signed=signed, elements=consumers,
                          partners=partner, word=at)


def _write_params(cfg, words) -> list[dict]:
    """The requantisation parameters in force at each WRITE (the golden interpreter's, command by command)."""
    tile, params = golden.Tile(cfg), []
    for n in range(len(words)):
        before = len(tile.results)
        tile.feed(words[n:n + 1])
        if len(tile.results) > before:
            params.extend([dict(tile.params)] * ((len(tile.results) - before) // cfg.compute.c_rows))
    return params
