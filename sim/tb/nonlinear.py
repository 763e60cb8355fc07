"""The one testbench of every nonlinear kind (exp, reciprocal, rsqrt, gelu, softmax, layernorm).

Rows travel through the element stream of :mod:`hw.nonlinear.interface`: the
testbench offers them on the stream ``inp`` with random ``valid`` gaps, takes
rows from ``out`` with random ``ready`` stalls and compares every element
bit-exactly with the kind's golden model. ``npuforge.registry`` names this
module as the testbench of every nonlinear kind; there are no per-kind
testbench modules.

**Per-kind hooks.** Everything kind-specific lives in the kind's golden module
``sim.golden.<kind>`` (found by the config's ``kind``), as module-level functions:

* required ``golden_rows(cfg, rows, **context) -> list[np.ndarray]``: the
  bit-exact output codes of each input row (``rows``: int64 code arrays);
* required ``float_rows(cfg, rows, **context) -> list[np.ndarray]``: the exact
  real outputs (for ``npuforge characterize``; unused here);
* optional ``edge_rows(cfg) -> list[tuple[str, np.ndarray]]``: labelled rows
  added after the generic edge cases below (softmax: all equal, one dominant, ...);
* optional ``random_row(cfg, rng, length) -> np.ndarray``: the codes of one
  random row (``rng`` a ``numpy.random.Generator``); default: uniform over every
  input code;
* optional ``context(cfg, rng) -> dict``: JSON-able extra inputs of a run, passed
  to ``golden_rows`` as keyword arguments (e.g. LayerNorm ``gamma``/``beta``);
* optional ``preload_beats(cfg, context) -> dict[str, list[dict]]``: beats to
  send, before any row, on other streams the unit consumes (interface name ->
  beats as ``{field: value}`` dicts, fields as in the manifest); all of them are
  streamed before the first row beat is offered;
* optional ``row_from_beats(cfg, beats) -> list``: the output row made of one
  row's output beats (each a ``{field: value}`` dict, the final one with
  ``last``), or ``None`` for the default: ``data[:count]`` of every beat,
  concatenated, and the output beats must mirror the input beats (same
  ``count``, same ``last``). A kind whose output is not an element row (the
  softmax gate) returns whatever its ``golden_rows`` returns, as nested lists.

**Row kinds and element-wise kinds.** A config with ``n_max`` is a row kind:
rows are 1..``n_max`` elements long. Otherwise rows are just runs of
independent elements, 1..``4 * lanes + 1`` long, so that every ``count`` occurs
on a final beat.

**Stimulus** (:func:`make_vectors`): generic edge rows (each extreme code, zero,
the smallest positive and negative codes, every power of two and its
neighbours, rows shorter than ``lanes``; for row kinds rows of length 1 and
``n_max`` filled with the smallest, the largest and zero codes and alternating
extremes), the kind's ``edge_rows``, then ``n_random`` random rows. For
element-wise kinds with an input of at most :data:`EXHAUSTIVE_MAX_BITS` bits,
``exhaustive`` (default: on) adds every input code once, in rows of random
lengths. Lanes at or beyond ``count`` carry random codes.

**Timing.** The manifest's ``parameters.latency`` and ``parameters.latency_rule``
say what is checked: ``"beat"`` (element-wise units): every output beat becomes
valid exactly ``latency`` cycles after its input beat moved, when the sink is
always ready, and at least that under back-pressure; ``"row"``: the first output
beat of a row becomes valid at least ``latency`` cycles after the row's last
input beat moved (measured values are in the results as ``row_latency``).

Host side (imported by the runner): :func:`make_vectors`, :func:`first_mismatch`,
:func:`describe_mismatch`, :func:`summary_lines`. Simulator side: the cocotb
test :func:`nonlinear_rows`.
"""

import importlib
import time
from types import ModuleType

import cocotb
import numpy as np

from gen.config import parse_config_data
from hw.nonlinear.interface import INPUT_STREAM, OUTPUT_STREAM

from .harness import CycleLoop, RunFiles, start_and_reset
from .stream import StreamSink, StreamSource

#: What the vectors are made of (``npuforge sim`` counts ``vectors[VECTOR_UNIT]``).
VECTOR_UNIT = "rows"

#: Element-wise kinds whose input has at most this many bits are tested over every input code.
EXHAUSTIVE_MAX_BITS = 12


# --------------------------------------------------------------------------- host side

def golden_module(cfg) -> ModuleType:
    """``sim.golden.<kind>``: the golden model and the hooks of ``cfg``'s kind."""
    return importlib.import_module(f"sim.golden.{cfg.kind}")


def is_row_kind(cfg) -> bool:
    """Rows are vectors the unit reduces over (``n_max`` is set), not runs of independent elements."""
    return getattr(cfg, "n_max", None) is not None


def max_row_length(cfg) -> int:
    return cfg.n_max if is_row_kind(cfg) else 4 * cfg.lanes + 1


def _unique(codes, fmt) -> np.ndarray:
    values = sorted({int(c) for c in codes if fmt.min_code <= c <= fmt.max_code})
    return np.array(values, dtype=np.int64)


def generic_edge_rows(cfg, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """Edge cases every nonlinear kind shares (see the module docstring)."""
    fmt, lanes = cfg.input.format, cfg.lanes
    lo, hi = fmt.min_code, fmt.max_code
    extremes = _unique([lo, lo + 1, -2, -1, 0, 1, 2, hi - 1, hi], fmt)
    powers = []
    for k in range(fmt.width):
        for sign in ((1, -1) if fmt.signed else (1,)):
            powers += [sign * ((1 << k) - 1), sign * (1 << k), sign * ((1 << k) + 1)]
    powers = _unique(powers, fmt)
    rows: list[tuple[str, np.ndarray]] = []
    n_max = max_row_length(cfg)

    def chunks(label, codes):
        # Cut a long list of codes into rows the unit accepts.
        for start in range(0, len(codes), n_max):
            rows.append((f"{label} [{start}:]" if len(codes) > n_max else label, codes[start:start + n_max]))

    chunks("extreme codes", extremes)
    chunks("powers of two and neighbours", powers)
    for length in sorted({1, max(1, lanes - 1), lanes, lanes + 1} & set(range(1, n_max + 1))):
        rows.append((f"length {length}", rng.integers(lo, hi + 1, size=length, dtype=np.int64)))
    if is_row_kind(cfg):
        for length in sorted({1, n_max}):
            for name, value in (("smallest", lo), ("largest", hi), ("zero", 0)):
                if lo <= value <= hi:
                    rows.append((f"all {name}, length {length}", np.full(length, value, dtype=np.int64)))
        rows.append((f"alternating extremes, length {n_max}",
                     np.where(np.arange(n_max) % 2 == 0, lo, hi).astype(np.int64)))
    return rows


def exhaustive_rows(cfg, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """Every input code once, ascending, in rows of random lengths 1..``4 * lanes``."""
    codes = cfg.input.format.codes()
    rows, start = [], 0
    while start < len(codes):
        length = int(rng.integers(1, 4 * cfg.lanes + 1))
        part = codes[start:start + length]
        rows.append((f"every code [{int(part[0])}..{int(part[-1])}]", part))
        start += length
    return rows


def _random_length(cfg, rng) -> int:
    n_max = max_row_length(cfg)
    pick = rng.random()
    return 1 if pick < 1 / 6 else n_max if pick < 1 / 3 else int(rng.integers(1, n_max + 1))


def make_vectors(cfg, *, seed: int, n_random: int, valid_prob: float = 1.0, ready_prob: float = 1.0,
                 edge_cases: bool = True, exhaustive: bool | None = None) -> dict:
    """Rows for one run with their golden outputs (see the module docstring for what is included).

    ``exhaustive``: add every input code (element-wise kinds only); default on
    when the input has at most :data:`EXHAUSTIVE_MAX_BITS` bits.
    """
    rng = np.random.default_rng(seed)
    golden = golden_module(cfg)
    fmt = cfg.input.format
    if exhaustive is None:
        exhaustive = not is_row_kind(cfg) and fmt.width <= EXHAUSTIVE_MAX_BITS
    elif exhaustive and is_row_kind(cfg):
        raise ValueError(f"kind {cfg.kind} reduces over rows: exhaustive element stimulus does not apply")

    rows: list[tuple[str, np.ndarray]] = []
    if edge_cases:
        rows += generic_edge_rows(cfg, rng)
        if hasattr(golden, "edge_rows"):
            rows += [(label, np.asarray(row, dtype=np.int64)) for label, row in golden.edge_rows(cfg)]
    if exhaustive:
        rows += exhaustive_rows(cfg, rng)
    draw = getattr(golden, "random_row", None)
    for index in range(n_random):
        length = _random_length(cfg, rng)
        row = draw(cfg, rng, length) if draw else rng.integers(fmt.min_code, fmt.max_code + 1, size=length)
        rows.append((f"random #{index} length {length}", np.asarray(row, dtype=np.int64)))

    context = golden.context(cfg, rng) if hasattr(golden, "context") else {}
    preload = golden.preload_beats(cfg, context) if hasattr(golden, "preload_beats") else {}
    expected = golden.golden_rows(cfg, [row for _, row in rows], **context)
    return {
        "kind": cfg.kind,
        "seed": seed,
        "flow": {"valid_prob": valid_prob, "ready_prob": ready_prob},
        "exhaustive": bool(exhaustive),
        "context": context,
        "preload": preload,
        "rows": [{"label": label, "x": row.tolist(), "y": np.asarray(out).tolist()}
                 for (label, row), out in zip(rows, expected, strict=True)],
    }


def _first_difference(expected, got, path=()):
    """Index path of the first differing element of two nested lists, or None."""
    if isinstance(expected, list) or isinstance(got, list):
        if not (isinstance(expected, list) and isinstance(got, list)) or len(expected) != len(got):
            return path, expected, got
        for index, (e, g) in enumerate(zip(expected, got)):
            found = _first_difference(e, g, path + (index,))
            if found is not None:
                return found
        return None
    return None if expected == got else (path, expected, got)


def first_mismatch(vectors: dict, results: dict) -> dict | None:
    """The first wrong or missing output element, or None if every row matches."""
    got_rows = results.get("rows", [])
    for index, row in enumerate(vectors["rows"]):
        if index >= len(got_rows):
            return {"row": index, "label": row["label"], "index": None, "expected": "a row",
                    "got": f"nothing ({results.get('stopped', 'simulation ended')})"}
        found = _first_difference(row["y"], got_rows[index])
        if found is not None:
            path, expected, got = found
            if not path:  # the rows differ in length
                return {"row": index, "label": row["label"], "index": None,
                        "expected": f"{len(row['y'])} elements", "got": f"{len(got_rows[index])} elements"}
            return {"row": index, "label": row["label"], "index": list(path), "expected": expected, "got": got,
                    "input": row["x"][path[0]] if path[0] < len(row["x"]) else None}
    return None


def describe_mismatch(m: dict) -> str:
    if m["index"] is None:
        return f"row {m['row']} ({m['label']}): expected {m['expected']}, got {m['got']}"
    where = "".join(f"[{i}]" for i in m["index"])
    shown = f" (input {m['input']})" if m.get("input") is not None else ""
    return f"row {m['row']} ({m['label']}): element {where}{shown} expected {m['expected']}, got {m['got']}"


def summary_lines(manifest: dict, vectors: dict, results: dict, seconds: float) -> list[str]:
    """What ``npuforge sim`` prints about a run beyond pass/fail."""
    if not results:
        return []
    params = manifest["parameters"]
    cycles = results.get("cycles") or 0
    elements = sum(len(row["x"]) for row in vectors["rows"])
    measured = sorted(set(results.get("beat_latency", []) or results.get("row_latency", [])))
    lines = [
        f"cycles   {cycles} simulated, {seconds:.2f} s wall; {len(vectors['rows'])} rows, {elements} elements"
        f"{' (every input code)' if vectors.get('exhaustive') else ''}; {results.get('beats_in')} beats in, "
        f"{results.get('beats_out')} beats out",
        f"latency  {', '.join(map(str, measured[:8])) or '-'}{' ...' if len(measured) > 8 else ''} cycles "
        f"measured ({params.get('latency_rule', '?')} rule; documented {params.get('latency', '?')})",
    ]
    if cycles:
        lines.append(f"rate     {elements / cycles:.2f} elements/cycle with {params.get('lanes', '?')} lanes")
    return lines


# --------------------------------------------------------------------------- simulator side

def row_beats(row: list[int], lanes: int, rng, fmt_lo: int, fmt_hi: int) -> list[dict]:
    """The input beats of one row; lanes at or beyond ``count`` carry random codes."""
    beats = []
    for start in range(0, len(row), lanes):
        part = row[start:start + lanes]
        data = list(part) + [rng.randint(fmt_lo, fmt_hi) for _ in range(lanes - len(part))]
        beat = {"data": data, "last": int(start + lanes >= len(row))}
        if lanes > 1:
            beat["count"] = len(part)
        beats.append(beat)
    return beats


def default_row_from_beats(beats: list[dict], lanes: int) -> list[int]:
    row = []
    for beat in beats:
        row += beat["data"][:beat.get("count", 1) if lanes > 1 else 1]
    return row


class RowTestbench:
    """Streams rows through a nonlinear unit and collects its output rows."""

    def __init__(self, dut, run: RunFiles, rng):
        self.dut, self.run = dut, run
        self.cfg = parse_config_data(run.manifest["config"], "manifest.json config")
        self.golden = golden_module(self.cfg)
        self.params = run.manifest["parameters"]
        flow = run.vectors["flow"]
        self.rng = rng
        self.source = StreamSource(dut, run.interface(INPUT_STREAM), rng=rng, valid_prob=flow["valid_prob"])
        self.sink = StreamSink(dut, run.interface(OUTPUT_STREAM), rng=rng, ready_prob=flow["ready_prob"])
        self.preloads = [StreamSource(dut, run.interface(name), rng=rng, valid_prob=flow["valid_prob"])
                         for name in run.vectors.get("preload", {})]
        self.loop = CycleLoop(dut, run.manifest, self.preloads + [self.source, self.sink])
        self.beats_per_row: list[int] = []
        self._counted = self._rows_seen = 0

    async def preload(self) -> bool:
        for source, beats in zip(self.preloads, self.run.vectors["preload"].values()):
            for beat in beats:
                source.send(beat)
        total = sum(len(beats) for beats in self.run.vectors["preload"].values())
        return await self.loop.run(lambda: sum(len(s.transfers) for s in self.preloads) >= total,
                                   max_cycles=int(4 * total / self.source.valid_prob) + 100)

    async def stream(self, rows: list[dict]) -> bool:
        fmt = self.cfg.input.format
        lanes = self.cfg.lanes
        for row in rows:
            beats = row_beats(row["x"], lanes, self.rng, fmt.min_code, fmt.max_code)
            self.beats_per_row.append(len(beats))
            for beat in beats:
                self.source.send(beat)
        rows_wanted = len(rows)
        slowest = min(self.source.valid_prob, self.sink.ready_prob)
        latency = self.params.get("latency", 0)
        n_beats = sum(self.beats_per_row)
        budget = 3 * n_beats + sum(len(row["x"]) for row in rows) + len(rows) * (latency + 4)
        return await self.loop.run(lambda: self._rows_out() >= rows_wanted, max_cycles=int(4 * budget / slowest) + 1000)

    def _rows_out(self) -> int:
        """Output rows completed so far (counted incrementally: this runs every cycle)."""
        transfers = self.sink.transfers
        self._rows_seen += sum(t.beat["last"] for t in transfers[self._counted:])
        self._counted = len(transfers)
        return self._rows_seen

    async def drain_quietly(self) -> None:
        await self.loop.run(lambda: False, max_cycles=self.params.get("latency", 0) + 8)

    def collect(self, rows: list[dict]) -> dict:
        """Regroup output beats into rows; check framing and latency."""
        problems = list(self.sink.violations)
        lanes = self.cfg.lanes
        decode = getattr(self.golden, "row_from_beats", None)
        inputs, outputs = self.source.transfers, self.sink.transfers
        got, beat_latency, row_latency = [], [], []
        in_start = out_start = 0
        for index, beats_in in enumerate(self.beats_per_row):
            end = out_start
            while end < len(outputs) and not outputs[end].beat["last"]:
                end += 1
            if end >= len(outputs):
                break
            group = outputs[out_start:end + 1]
            group_in = inputs[in_start:in_start + beats_in]
            decoded = decode(self.cfg, [t.beat for t in group]) if decode is not None else None
            if decoded is not None:
                got.append(decoded)
            else:
                got.append(default_row_from_beats([t.beat for t in group], lanes))
                framing_in = [(t.beat.get("count", 1), t.beat["last"]) for t in group_in]
                framing_out = [(t.beat.get("count", 1), t.beat["last"]) for t in group]
                if framing_in != framing_out and len(problems) < 10:
                    problems.append(f"row {index}: output (count, last) per beat {framing_out}, "
                                    f"input {framing_in}")
                if len(group) == len(group_in):
                    beat_latency += [o.valid_since - i.cycle for i, o in zip(group_in, group)]
            if len(group_in) == beats_in:
                row_latency.append(group[0].valid_since - group_in[-1].cycle)
            in_start += beats_in
            out_start = end + 1
        if len(outputs) > out_start:
            problems.append(f"{len(outputs) - out_start} output beats after the last expected row")
        problems += self._latency_problems(beat_latency, row_latency)
        return {
            "rows": got,
            "beat_latency": beat_latency,
            "row_latency": row_latency,
            "beats_in": len(inputs),
            "beats_out": len(outputs),
            "protocol_errors": problems,
        }

    def _latency_problems(self, beat_latency, row_latency) -> list[str]:
        latency, rule = self.params.get("latency"), self.params.get("latency_rule")
        exact = self.sink.ready_prob == 1.0
        measured = beat_latency if rule == "beat" else row_latency if rule == "row" else []
        for index, value in enumerate(measured):
            if (value != latency) if (exact and rule == "beat") else (value < latency):
                what = "output beat" if rule == "beat" else "row"
                bound = "" if exact and rule == "beat" else "at least "
                return [f"{what} {index}: became valid {value} cycles after its input, documented "
                        f"{bound}{latency} ({rule} rule)"]
        return []


@cocotb.test()
async def nonlinear_rows(dut):
    """Stream every row back to back (after any preload) and compare with the golden outputs."""
    run = RunFiles.from_env()
    rng = run.rng()
    await start_and_reset(dut, run.manifest)
    bench = RowTestbench(dut, run, rng)
    started = time.perf_counter()
    preloaded = await bench.preload()
    finished = preloaded and await bench.stream(run.vectors["rows"])
    loop_seconds = time.perf_counter() - started
    cycles = bench.loop.cycle
    await bench.drain_quietly()

    results = bench.collect(run.vectors["rows"])
    results["cycles"], results["loop_seconds"] = cycles, loop_seconds
    if not finished:
        results["stopped"] = f"{'preload' if not preloaded else 'no further output'} stalled after {cycles} cycles"
    run.write_results(results)

    mismatch = first_mismatch(run.vectors, results)
    assert mismatch is None, describe_mismatch(mismatch)
    problems = results["protocol_errors"]
    assert not problems, problems[0]
