"""The descriptor compiler: a ``kind: moevit`` network + weights -> the accelerator's memory image and program.

Host side, deterministic, numpy only at run time (the FPGA host driver uses it unchanged).
The accelerator is described by a :class:`Target` (from a ``kind: moevit_accel`` config or from
the ``parameters`` of its manifest); weights are quantised with the golden's rules
(:func:`sim.golden.moevit.fixed.quantize_params`) and laid out as docs/accelerator.md says
(:mod:`sim.moevit.memory`).

A :class:`Program` is the memory image (weights, inputs, one region per intermediate
tensor, the descriptor list), the list of operators (:class:`Op`: its descriptor, the regions
it reads and writes, its MACs) and the expected contents of the regions the caller wants
checked. :class:`Builder` adds operators one by one; :func:`linear_ops_program` builds the
program that runs every linear operator of a network on the golden's own inputs,
:func:`norm_ops_program` every LayerNorm and attention softmax, :func:`golden_ops_program` both.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hw.arith.fixed import FixedFormat
from hw.vit import descriptors

from .memory import REGION_ALIGN, MemoryImage, Region, norm_params, tensor_codes, weight_tiles

PROGRAM_FORMAT = 1


class CompileError(ValueError):
    """The network does not fit the target (a tensor beyond the buffers, ...); the message says which."""


@dataclass(frozen=True)
class Target:
    """The accelerator as the compiler sees it."""

    data_width: int
    addr_width: int
    act: FixedFormat
    act_bytes: int
    w_bytes: int
    rows: int
    cols: int
    steps: int
    a_rows: int
    a_k: int
    k_max: int
    formats: tuple  # tuple of tuples: the matmul names of each row of the epilogue format table
    gelu: bool
    layernorm_n_max: int = 0  # longest LAYERNORM row (0: no LAYERNORM engine)
    softmax_n_max: int = 0  # longest SOFTMAX row (0: no SOFTMAX engine)
    params_bytes: int = 0  # container of one LayerNorm parameter code
    attention: dict | None = None  # the attention (manifest parameters.attention: engine, limits), None without
    experts: int = 0  # the route table's queues (0: no mixture of experts: no GATE, gather or scatter)
    tokens: int = 0  # entries per queue

    @property
    def beat_bytes(self) -> int:
        return self.data_width // 8

    def fmt(self, matmul: str) -> int:
        for index, names in enumerate(self.formats):
            if matmul in names:
                return index
        raise CompileError(f"the accelerator has no epilogue format for {matmul}")

    @classmethod
    def from_config(cls, cfg) -> "Target":
        f, net = cfg.facts, cfg.network
        return cls(data_width=cfg.memory.data_width, addr_width=cfg.memory.addr_width, act=f.act,
                   act_bytes=f.act_bytes, w_bytes=f.w_bytes, rows=f.rows, cols=f.cols, steps=f.steps,
                   a_rows=f.a_rows, a_k=f.a_k, k_max=f.k_max, formats=tuple(fmt.names for fmt in f.formats),
                   gelu=True, layernorm_n_max=net.units["layernorm"].n_max, softmax_n_max=net.units["softmax"].n_max,
                   params_bytes=f.params_bytes, attention=f.attention.to_json() if f.attention is not None else None,
                   **_moe_target(net))

    @classmethod
    def from_manifest(cls, manifest: dict) -> "Target":
        p = manifest["parameters"]
        act = FixedFormat(p["act"]["width"], p["act"]["frac"], p["act"]["signed"])
        return cls(data_width=p["data_width"], addr_width=p["addr_width"], act=act, act_bytes=p["act_bytes"],
                   w_bytes=p["w_bytes"], rows=p["linear"]["rows"], cols=p["linear"]["cols"],
                   steps=p["linear"]["steps"], a_rows=p["buffers"]["a_rows"], a_k=p["buffers"]["a_k"],
                   k_max=p["buffers"]["k_max"], formats=tuple(tuple(f["names"]) for f in p["formats"]),
                   gelu=p["gelu"], layernorm_n_max=p.get("rows", {}).get("layernorm", {}).get("n_max", 0),
                   softmax_n_max=p.get("rows", {}).get("softmax", {}).get("n_max", 0),
                   params_bytes=p.get("rows", {}).get("layernorm", {}).get("params_bytes", 0),
                   attention=p.get("attention"), experts=p.get("moe", {}).get("experts", 0),
                   tokens=p.get("moe", {}).get("tokens", 0))


def _moe_target(model) -> dict:
    from gen.kinds.moevit_accel import has_moe

    return {"experts": model.experts, "tokens": model.tokens} if has_moe(model) else {}


@dataclass
class Op:
    """One operator of a program: its descriptor and what it reads and writes."""

    name: str
    opcode: str
    fields: dict
    flags: tuple = ()
    fmt: int = 0
    reads: tuple = ()
    writes: str = ""
    macs: int = 0
    group: str = ""  # the operators of one attention head share it (per-head counters)

    def descriptor(self) -> bytes:
        return descriptors.encode(self.opcode, self.fields, flags=self.flags, fmt=self.fmt)

    def to_json(self) -> dict:
        return {"name": self.name, "opcode": self.opcode, "fields": self.fields, "flags": list(self.flags),
                "fmt": self.fmt, "reads": list(self.reads), "writes": self.writes, "macs": self.macs,
                "group": self.group}


@dataclass
class Program:
    """A compiled program: the image, the operators and what their outputs should be."""

    target: Target
    image: MemoryImage
    ops: list
    desc: Region
    expected: dict = field(default_factory=dict)  # region name -> codes the golden computed
    op_lists: list = field(default_factory=list)  # per operator: the address of a list of it and END

    @property
    def base(self) -> int:
        return self.image.base

    def memory_map(self) -> dict:
        return {"format": PROGRAM_FORMAT, "base": self.image.base, "end": self.image.end,
                "descriptors": {"addr": self.desc.addr, "count": len(self.ops) + 1},
                "regions": [r.to_json() for r in self.image.regions.values()],
                "ops": [op.to_json() for op in self.ops]}

    def outputs(self, memory: bytes, base: int | None = None) -> dict:
        """The codes of every region with an expectation, read from a dump of memory starting at ``base``."""
        base = self.image.base if base is None else base
        return {name: tensor_codes(self.image.regions[name], memory, base) for name in self.expected}

    def save(self, out_dir: Path) -> None:
        """``image.bin`` (from ``base``), ``memory_map.json``, ``expected.npz``: written to a temp dir, then moved."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = out_dir / ".staging"
        staging.mkdir(exist_ok=True)
        (staging / "image.bin").write_bytes(self.image.image())
        (staging / "memory_map.json").write_text(json.dumps(self.memory_map(), indent=2, sort_keys=True) + "\n")
        np.savez(staging / "expected.npz", **{k: np.asarray(v) for k, v in self.expected.items()})
        for name in ("image.bin", "memory_map.json", "expected.npz"):
            (staging / name).replace(out_dir / name)
        staging.rmdir()


class Builder:
    """Adds operators to a program: allocates their regions and writes their descriptors at the end."""

    def __init__(self, target: Target, *, base: int = REGION_ALIGN):
        self.target = target
        self.image = MemoryImage(beat_bytes=target.beat_bytes, base=base, limit=1 << target.addr_width)
        self.ops: list[Op] = []
        self.expected: dict = {}

    # ------------------------------------------------------------------ regions
    def tensor(self, name: str, codes=None, *, rows: int | None = None, n: int | None = None,
               fmt: FixedFormat | None = None, container: int | None = None) -> Region:
        """A tensor region (``codes`` written when given)."""
        fmt = fmt or self.target.act
        if codes is not None:
            codes = np.asarray(codes, dtype=np.int64)
            codes = codes.reshape(-1, codes.shape[-1])
            rows, n = codes.shape
        region = self.image.tensor(name, rows, n, fmt, container or self.target.act_bytes)
        if codes is not None:
            self.image.put(region, codes)
        return region

    def weights(self, name: str, w, bias=None) -> Region:
        t = self.target
        payload = weight_tiles(w, bias, cols=t.cols, container=t.w_bytes, beat_bytes=t.beat_bytes)
        k, n = np.asarray(w).shape
        return self.image.raw(name, payload, kind="weights", k=k, n=n, bias=bias is not None)

    def norm_params(self, name: str, gamma, beta) -> Region:
        """A LayerNorm's parameter row (``gamma``, ``beta``: codes of the norm format) as the engine reads it."""
        t = self.target
        if not t.params_bytes:
            raise CompileError(f"{name}: the accelerator has no LAYERNORM engine")
        payload = norm_params(gamma, beta, container=t.params_bytes, beat_bytes=t.beat_bytes)
        return self.image.raw(name, payload, kind="norm_params", n=int(np.asarray(gamma).size))

    def expect(self, region: Region, codes) -> None:
        self.expected[region.name] = np.asarray(codes, dtype=np.int64).reshape(region.rows, region.n)

    # ------------------------------------------------------------------ operators
    def linear(self, name: str, src: Region, weights: Region, dst: Region, *, matmul: str, gelu: bool = False,
               residual: Region | None = None, prefetch: bool = True, src_row: int = 0, dst_row: int = 0,
               rows: int | None = None, expert: int | None = None, gather: bool = False, scatter: bool = False,
               queue_from: int = 0, queued: int | None = None) -> Op:
        """``dst[dst_row:] = epilogue(src[src_row:] @ W)`` for ``rows`` rows (default: all of src after src_row).

        With ``expert``: the rows are that expert's queue of the route table (``GATE``): ``gather`` reads
        A's rows of the queued tokens (``src`` has a row per token), ``scatter`` writes each result row,
        weighted by the token's score, to its token's row of ``dst`` (adding ``residual``, which is then
        ``dst``, except for the token's first expert); the other side is compact (row ``i``: entry
        ``queue_from + i``). One descriptor: the queue's entries ``queue_from`` on, at most ``a_rows``
        (a longer queue takes one descriptor per part). ``queued``, the queue's length under the
        golden's routing, only counts the MACs."""
        if expert is not None:
            return self._routed(name, src, weights, dst, matmul=matmul, gelu=gelu, residual=residual,
                                expert=expert, gather=gather, scatter=scatter, queue_from=queue_from,
                                queued=queued, prefetch=prefetch)
        t = self.target
        k, n, has_bias = weights.meta["k"], weights.meta["n"], weights.meta["bias"]
        m = rows if rows is not None else src.rows - src_row
        if src.n != k:
            raise CompileError(f"{name}: A has {src.n} columns, the weights {k} rows")
        if k > min(t.k_max, t.a_k):
            raise CompileError(f"{name}: K = {k} is beyond the accelerator's buffers (k_max {t.k_max}, a_k {t.a_k})")
        if gelu and not t.gelu:
            raise CompileError(f"{name}: the accelerator has no GELU in its epilogue")
        flags = tuple(f for f, on in (("bias", has_bias), ("gelu", gelu), ("residual", residual is not None),
                                      ("no_prefetch", not prefetch)) if on)
        op = None
        for start in range(0, m, t.a_rows):  # M beyond the A buffer: one descriptor per chunk of rows
            chunk = min(t.a_rows, m - start)
            fields = {"m": chunk, "k": k, "n": n, "src": src.addr + (src_row + start) * src.stride,
                      "weights": weights.addr, "dst": dst.addr + (dst_row + start) * dst.stride,
                      "residual": (residual.addr + (dst_row + start) * residual.stride) if residual else 0,
                      "src_stride": src.stride, "dst_stride": dst.stride,
                      "res_stride": residual.stride if residual else 0}
            suffix = f"[{start}:{start + chunk}]" if m > t.a_rows else ""
            op = Op(name + suffix, "LINEAR", fields, flags, t.fmt(matmul),
                    reads=(src.name, weights.name) + ((residual.name,) if residual else ()), writes=dst.name,
                    macs=chunk * k * n)
            self.ops.append(op)
        return op

    def _routed(self, name, src, weights, dst, *, matmul, gelu, residual, expert, gather, scatter, queue_from,
                queued, prefetch) -> Op:
        t = self.target
        if not t.experts:
            raise CompileError(f"{name}: the accelerator has no route table (its model has no MoE layers)")
        if not 0 <= expert < t.experts or not (gather or scatter):
            raise CompileError(f"{name}: expert {expert} of {t.experts}, gather {gather}, scatter {scatter}")
        k, n, has_bias = weights.meta["k"], weights.meta["n"], weights.meta["bias"]
        if src.n != k:
            raise CompileError(f"{name}: A has {src.n} columns, the weights {k} rows")
        flags = tuple(f for f, on in (("bias", has_bias), ("gelu", gelu), ("residual", residual is not None),
                                      ("no_prefetch", not prefetch), ("gather", gather), ("scatter", scatter)) if on)
        rows = max(src.rows, dst.rows)
        part = max(0, min(t.a_rows, (queued if queued is not None else t.tokens) - queue_from))
        fields = {"m": rows, "k": k, "n": n, "src": src.addr, "weights": weights.addr, "dst": dst.addr,
                  "residual": residual.addr if residual else 0, "src_stride": src.stride,
                  "dst_stride": dst.stride, "res_stride": residual.stride if residual else 0,
                  "expert": expert, "queue_from": queue_from}
        suffix = f"[{queue_from}:]" if t.tokens > t.a_rows else ""
        op = Op(name + suffix, "LINEAR", fields, flags, t.fmt(matmul),
                reads=(src.name, weights.name) + ((residual.name,) if residual else ()), writes=dst.name,
                macs=part * k * n)
        self.ops.append(op)
        return op

    def gate(self, name: str, logits: Region) -> Op:
        """``GATE``: the top-k experts of every row of ``logits`` into the route table's queues."""
        t = self.target
        if not t.experts:
            raise CompileError(f"{name}: the accelerator has no route table (its model has no MoE layers)")
        if logits.rows > t.tokens or logits.n > t.experts:
            raise CompileError(f"{name}: {logits.rows} x {logits.n} logits; the route table takes {t.tokens} "
                               f"tokens of {t.experts} experts")
        op = Op(name, "GATE", {"rows": logits.rows, "n": logits.n, "src": logits.addr, "src_stride": logits.stride},
                reads=(logits.name,))
        self.ops.append(op)
        return op

    def add(self, name: str, x: Region, y: Region, dst: Region, *, rows: int | None = None, x_row: int = 0,
            y_row: int = 0, dst_row: int = 0) -> Op:
        rows = rows if rows is not None else x.rows - x_row
        op = Op(name, "ADD", {"rows": rows, "n": x.n, "src": x.addr + x_row * x.stride, "src2": y.addr + y_row * y.stride,
                              "dst": dst.addr + dst_row * dst.stride, "src_stride": x.stride,
                              "src2_stride": y.stride, "dst_stride": dst.stride},
                reads=(x.name, y.name), writes=dst.name)
        self.ops.append(op)
        return op

    def im2col(self, name: str, image: Region, dst: Region, *, channels: int, height: int, width: int,
               patch: int) -> Op:
        op = Op(name, "IM2COL", {"channels": channels, "height": height, "width": width, "src": image.addr,
                                 "dst": dst.addr, "src_stride": image.stride, "dst_stride": dst.stride,
                                 "patch": patch},
                reads=(image.name,), writes=dst.name)
        self.ops.append(op)
        return op

    def _head(self, name: str, qkv: Region, dst: Region | None, *, head: int, heads: int, tokens: int | None,
              engine: str) -> tuple[int, int, int, int]:
        """Checks of one head of the qkv tensor (and of the heads tensor ``dst``); ``(tokens, hd, column, part)``:
        the head's column offset and the offset of k from q (and of v from k) in bytes."""
        t = self.target
        if t.attention is None or t.attention["engine"] != engine:
            have = "no attention" if t.attention is None else f"the {t.attention['engine']} attention"
            raise CompileError(f"{name}: the accelerator has {have}, not the {engine} attention (config section "
                               f"attention:)")
        if qkv.n % (3 * heads):
            raise CompileError(f"{name}: a qkv row of {qkv.n} codes is not 3 x {heads} heads")
        hd = qkv.n // (3 * heads)
        tokens = tokens if tokens is not None else qkv.rows
        if dst is not None and dst.n != heads * hd:
            raise CompileError(f"{name}: the heads tensor has {dst.n} columns, not {heads} x {hd}")
        if not 1 <= tokens <= t.attention["t_max"] or hd > t.attention["hd_max"]:
            raise CompileError(f"{name}: {tokens} tokens of heads of {hd} is beyond the attention (at most "
                               f"{t.attention['t_max']} tokens, heads of {t.attention['hd_max']})")
        ab = t.act_bytes
        column, part = head * hd * ab, heads * hd * ab
        if column % t.beat_bytes or part % t.beat_bytes:
            raise CompileError(f"{name}: a head of {hd} codes ({hd * ab} bytes) does not start on a "
                               f"{t.beat_bytes}-byte beat; the attention reads aligned rows")
        return tokens, hd, column, part

    def attention(self, name: str, qkv: Region, dst: Region, *, head: int, heads: int, scale: int,
                  tokens: int | None = None) -> Op:
        """Head ``head`` of ``heads`` on the dedicated engine: ``dst[:, head*hd:(head+1)*hd] = attention(q, k, v)``
        of the qkv tensor (row ``t`` = [q | k | v], each ``heads * hd`` codes) for ``tokens`` rows (default: all of
        qkv); ``scale`` is the code of ``1/sqrt(hd)`` in the weight format."""
        tokens, hd, column, part = self._head(name, qkv, dst, head=head, heads=heads, tokens=tokens,
                                              engine="dedicated")
        fields = {"tokens": tokens, "head_dim": hd, "scale": scale & 0xFFFFFFFF, "q": qkv.addr + column,
                  "k": qkv.addr + part + column, "v": qkv.addr + 2 * part + column, "dst": dst.addr + column,
                  "src_stride": qkv.stride, "dst_stride": dst.stride}
        op = Op(name, "ATTENTION", fields, reads=(qkv.name,), writes=dst.name, macs=2 * tokens * tokens * hd,
                group=name)
        self.ops.append(op)
        return op

    def scores(self, name: str, qkv: Region, scores: Region, *, head: int, heads: int, group: str = "") -> list[Op]:
        """The unified attention's ``Q K^T`` of head ``head``: ``scores = scale_scores(q k^T)`` (the golden's
        ``attention_scores``) on the linear engine, K's rows as B^T (``b_transposed``); one descriptor per
        chunk of at most ``a_rows`` queries and ``a_rows`` keys (the B^T banks hold ``a_rows`` rows)."""
        t = self.target
        tokens, hd, column, part = self._head(name, qkv, None, head=head, heads=heads, tokens=None, engine="unified")
        if scores.rows != tokens or scores.n != tokens:
            raise CompileError(f"{name}: the scores tensor is {scores.rows} x {scores.n}, not {tokens} x {tokens}")
        beat_elems = t.beat_bytes // t.act_bytes
        # chunks after the first start at a column of the scores' rows: on a whole beat
        keys = tokens if t.a_rows >= tokens else t.a_rows - t.a_rows % beat_elems
        if keys == 0:
            raise CompileError(f"{name}: chunks of {t.a_rows} keys (a_rows) do not fill a beat of the scores' rows; "
                               f"allowed: a_rows >= {tokens} or at least {beat_elems}")
        ops = []
        for start in range(0, tokens, keys):
            n = min(keys, tokens - start)
            suffix = f"{{{start}:{start + n}}}" if n < tokens else ""
            ops += self._matmul(name + suffix, a=qkv.addr + column, a_stride=qkv.stride, m=tokens, k=hd, n=n,
                                b=qkv.addr + part + column + start * qkv.stride, b_stride=qkv.stride,
                                dst=scores.addr + start * t.act_bytes, dst_stride=scores.stride, matmul="qk",
                                flag="b_transposed", reads=(qkv.name,), writes=scores.name, group=group)
        return ops

    def weighted_values(self, name: str, probabilities: Region, qkv: Region, dst: Region, *, head: int,
                        heads: int, group: str = "") -> list[Op]:
        """The unified attention's ``A V`` of head ``head``: ``dst[:, head*hd:(head+1)*hd] = probabilities @ v``
        (the golden's ``matmul(av)``) on the linear engine, V's rows as B (``b_rows``); ``probabilities`` are the
        softmax unit's output codes in activation containers."""
        tokens, hd, column, part = self._head(name, qkv, dst, head=head, heads=heads, tokens=None, engine="unified")
        if probabilities.rows != tokens or probabilities.n != tokens:
            raise CompileError(f"{name}: the probabilities are {probabilities.rows} x {probabilities.n}, not "
                               f"{tokens} x {tokens}")
        return self._matmul(name, a=probabilities.addr, a_stride=probabilities.stride, m=tokens, k=tokens, n=hd,
                            b=qkv.addr + 2 * part + column, b_stride=qkv.stride, dst=dst.addr + column,
                            dst_stride=dst.stride, matmul="av", flag="b_rows",
                            reads=(probabilities.name, qkv.name), writes=dst.name, group=group)

    def _matmul(self, name: str, *, a: int, a_stride: int, m: int, k: int, n: int, b: int, b_stride: int, dst: int,
                dst_stride: int, matmul: str, flag: str, reads: tuple, writes: str, group: str) -> list[Op]:
        """``LINEAR`` descriptors of a matmul whose B is an activation tensor (``b_rows`` or ``b_transposed``),
        one per chunk of at most ``a_rows`` rows of A."""
        t = self.target
        if k > min(t.k_max, t.a_k):
            raise CompileError(f"{name}: K = {k} is beyond the accelerator's buffers (k_max {t.k_max}, a_k {t.a_k})")
        ops = []
        for start in range(0, m, t.a_rows):
            chunk = min(t.a_rows, m - start)
            fields = {"m": chunk, "k": k, "n": n, "src": a + start * a_stride, "weights": b,
                      "dst": dst + start * dst_stride, "residual": 0, "src_stride": a_stride, "dst_stride": dst_stride,
                      "res_stride": 0, "b_stride": b_stride}
            suffix = f"[{start}:{start + chunk}]" if m > t.a_rows else ""
            ops.append(Op(name + suffix, "LINEAR", fields, (flag,), t.fmt(matmul), reads=reads, writes=writes,
                          macs=chunk * k * n, group=group))
        self.ops += ops
        return ops

    def _rows_op(self, name: str, opcode: str, n_max: int, src: Region, dst: Region, *, rows: int | None,
                 src_row: int, dst_row: int, params: Region | None = None) -> Op:
        rows = rows if rows is not None else src.rows - src_row
        if src.n != dst.n:
            raise CompileError(f"{name}: rows of {src.n} elements in, {dst.n} out")
        if not 1 <= src.n <= n_max:
            raise CompileError(f"{name}: rows of {src.n} elements; the {opcode} engine takes 1 to {n_max}")
        fields = {"rows": rows, "n": src.n, "src": src.addr + src_row * src.stride,
                  "dst": dst.addr + dst_row * dst.stride, "src_stride": src.stride, "dst_stride": dst.stride}
        reads = (src.name,)
        if params is not None:
            if params.meta["n"] != src.n:
                raise CompileError(f"{name}: {params.meta['n']} parameters for rows of {src.n} elements")
            fields["params"], reads = params.addr, reads + (params.name,)
        op = Op(name, opcode, fields, reads=reads, writes=dst.name)
        self.ops.append(op)
        return op

    def layernorm(self, name: str, src: Region, params: Region, dst: Region, *, rows: int | None = None,
                  src_row: int = 0, dst_row: int = 0) -> Op:
        """``dst[dst_row:] = feature_layernorm(src[src_row:])`` with ``params`` (:meth:`norm_params`), ``rows`` rows."""
        return self._rows_op(name, "LAYERNORM", self.target.layernorm_n_max, src, dst, rows=rows, src_row=src_row,
                             dst_row=dst_row, params=params)

    def softmax(self, name: str, src: Region, dst: Region, *, rows: int | None = None, src_row: int = 0,
                dst_row: int = 0) -> Op:
        """``dst[dst_row:] = feature_softmax(src[src_row:])``: probabilities, codes of the softmax unit's output
        format in activation containers (give ``dst`` that format and ``act_bytes``), ``rows`` rows."""
        return self._rows_op(name, "SOFTMAX", self.target.softmax_n_max, src, dst, rows=rows, src_row=src_row,
                             dst_row=dst_row)

    def finish(self) -> Program:
        """Append ``END`` and the descriptor list; the program."""
        end = descriptors.encode("END")
        desc = self.image.raw("descriptors", b"".join(op.descriptor() for op in self.ops) + end)
        # Each operator alone (itself, then END): runs one at a time, for per-operator counters.
        single = self.image.raw("descriptors.single", b"".join(op.descriptor() + end for op in self.ops))
        lists = [single.addr + 2 * descriptors.DESCRIPTOR_BYTES * i for i in range(len(self.ops))]
        return Program(target=self.target, image=self.image, ops=list(self.ops), desc=desc,
                       expected=dict(self.expected), op_lists=lists)


def image_region(builder: Builder, name: str, pixels: np.ndarray, fmt: FixedFormat) -> Region:
    """The input image ``(C, H, W)`` of pixel codes, one byte each, every image row padded to whole beats."""
    c, h, w = pixels.shape
    region = builder.image.tensor(name, c * h, w, fmt, 1)
    builder.image.put(region, np.asarray(pixels, dtype=np.int64).reshape(c * h, w))
    return region


def golden_trace(model, codes: dict, pixels: np.ndarray, task: str) -> dict:
    """Every intermediate tensor of one image (``pixels``: ``(C, H, W)`` codes) through the golden, by name
    (:func:`sim.golden.moevit.fixed.forward_codes`), batch axis removed."""
    from sim.golden.moevit.fixed import forward_codes

    trace: dict = {}
    forward_codes(codes, np.asarray(pixels, dtype=np.int64)[None], task, model, trace=trace)
    return {name: np.asarray(value)[0] for name, value in trace.items()}


def linear_ops_program(target: Target, model, codes: dict, pixels: np.ndarray, task: str, *,
                       base: int = REGION_ALIGN) -> Program:
    """Every linear operator of ``model`` (and the patch gather and position add of the embedding), each fed
    the golden's own input tensors, with the golden's outputs as expectations (:func:`golden_ops_program`)."""
    return golden_ops_program(target, model, codes, pixels, task, rows=False, base=base)


def norm_ops_program(target: Target, model, codes: dict, pixels: np.ndarray, task: str) -> Program:
    """Every LayerNorm (``ln1``, ``ln2`` of every block, the final norm) and every head's attention softmax of
    ``model`` on the golden's own inputs, with the golden's outputs as expectations (:func:`golden_ops_program`)."""
    return golden_ops_program(target, model, codes, pixels, task, linear=False)


def golden_ops_program(target: Target, model, codes: dict, pixels: np.ndarray, task: str, *, linear: bool = True,
                       rows: bool = True, network: bool = False, base: int = REGION_ALIGN) -> Program:
    """The operators of ``model`` the accelerator has, in the network's order, with the golden's outputs as
    expectations; ``codes`` are the weight codes (:func:`sim.golden.moevit.fixed.quantize_params`).

    ``linear``: the patch embedding (image -> IM2COL -> LINEAR into token rows 1.., the cls row from the
    compiler -> ADD of the position embedding), per block qkv, the attention of every head (with an
    ``attention:`` section: one ATTENTION per head on the dedicated engine, or the unified mode's
    LINEAR ``Q K^T`` into the head's scores, SOFTMAX (with ``rows``; else the golden's probabilities)
    and LINEAR ``A V`` into the heads tensor; every operator of a head has the head's ``Op.group``),
    proj and, for dense blocks, fc1 + GELU and fc2 + residual, for mixture-of-experts blocks the MoE
    layer (:func:`moe_layer`: gate LINEAR, GATE, the experts' gathered fc1 and scattered fc2, ADD of the
    attention output), then the task head on the patch tokens.
    ``rows``: per block LAYERNORM ``ln1`` and ``ln2`` and (unless the unified attention chains them)
    one SOFTMAX per head on the golden's scores, then the final LAYERNORM. An operator reads the
    region an earlier operator of the program wrote (the LayerNorms feed qkv, fc1, the MoE layer and the
    head; qkv feeds the attention, the attention proj; the embedding and every block feed the next LayerNorm),
    otherwise a region holding the golden's tensor (the heads without an attention section). ``base`` is where
    the image starts (the host driver's buffer address; a multiple of 4 KB); the layout does not depend on
    ``pixels``.
    ``network`` (with ``linear`` and ``rows``): the network as one chain from the image to the head, no
    golden tensor read anywhere -- proj adds the block input as its residual (writing the block's ``attn``),
    fc2 reads fc1's output, and the dedicated engine's extra SOFTMAX checks are left out (see
    :func:`network_program`).
    """
    if network and not (linear and rows):
        raise CompileError("a network program needs the linear and the row operators (linear=True, rows=True)")
    from sim.golden.moevit.fixed import convert

    trace = golden_trace(model, codes, pixels, task)
    b = Builder(target, base=base)
    act, emb = model.format("activation"), model.format("embedding")
    tokens_n, dim = model.tokens, model.dim

    def source(name: str) -> Region:
        """The region ``name`` (an earlier operator's output or a golden input), else a golden input."""
        return b.image.regions.get(name) or b.tensor(name, trace[name])

    def produced(name: str, n: int, **kw) -> Region:
        region = b.tensor(name, rows=trace[name].shape[0] if name in trace else tokens_n, n=n, **kw)
        b.expect(region, trace[name])
        return region

    def layernorm(name: str, x: str, weights: str) -> None:
        """The LayerNorm ``name`` of tensor ``x`` on the accelerator (without ``rows``, its readers find the
        golden's output through :func:`source`)."""
        if not rows:
            return
        params = b.norm_params(name + ".params", codes[weights + ".g"], codes[weights + ".b"])
        b.layernorm(name, source(x), params, produced(name, dim))

    if linear:
        c, h, w = pixels.shape
        image = image_region(b, "image", pixels, model.format("pixel"))
        patches = b.tensor("embed.patches", rows=model.patches, n=model.patch_inputs, fmt=model.format("pixel"))
        b.expect(patches, trace["embed.patches"])
        b.im2col("embed.im2col", image, patches, channels=c, height=h, width=w, patch=model.patch)
        tokens = b.tensor("embed.tokens", rows=tokens_n, n=dim)
        b.image.put(tokens, np.concatenate([convert(codes["cls"], emb, act, model)[None],
                                            np.zeros((model.patches, dim), dtype=np.int64)]))
        b.linear("embed.patch_embed", patches,
                 b.weights("patch_embed.w", codes["patch_embed.w"], codes["patch_embed.b"]), tokens,
                 matmul="patch_embed", dst_row=1)
        b.expect(tokens, trace["embed.tokens"])
        pos = b.tensor("pos", convert(codes["pos"], emb, act, model))
        b.add("embed.pos", tokens, pos, produced("embed.out", dim))
    previous = "embed.out"
    prob = model.units["softmax"].output.format
    unified = linear and target.attention is not None and target.attention["engine"] == "unified"

    def softmax(p: str, head: int, scores: Region, group: str = "") -> Region:
        """SOFTMAX of head ``head``'s scores into its probabilities (the unit's codes in activation containers)."""
        out = b.tensor(f"{p}probabilities.h{head}", rows=tokens_n, n=tokens_n, fmt=prob, container=target.act_bytes)
        b.expect(out, trace[p + "probabilities"][head])
        b.softmax(f"{p}softmax.h{head}", scores, out).group = group
        return out

    def attention(p: str, qkv: Region, heads: Region) -> None:
        """Every head of block ``p`` from ``qkv`` into ``heads``, in the accelerator's attention mode."""
        for head in range(model.heads):
            group = f"{p}attention.h{head}"
            if not unified:
                b.attention(group, qkv, heads, head=head, heads=model.heads, scale=model.score_scale()[0])
                continue
            scores = b.tensor(f"{p}scores.h{head}", rows=tokens_n, n=tokens_n)
            b.expect(scores, trace[p + "scores"][head])
            b.scores(f"{p}qk.h{head}", qkv, scores, head=head, heads=model.heads, group=group)
            probabilities = (softmax(p, head, scores, group) if rows else
                             b.tensor(f"{p}probabilities.h{head}", trace[p + "probabilities"][head], fmt=prob))
            b.weighted_values(f"{p}av.h{head}", probabilities, qkv, heads, head=head, heads=model.heads, group=group)
    for layer in range(model.layers):
        p = f"blocks.{layer}."
        layernorm(p + "ln1", previous, p + "ln1")
        if linear:
            b.linear(p + "qkv", source(p + "ln1"),
                     b.weights(p + "attn.qkv.w", codes[p + "attn.qkv.w"], codes[p + "attn.qkv.b"]),
                     produced(p + "qkv", 3 * dim), matmul="qkv")
        if linear and target.attention is not None:
            attention(p, source(p + "qkv"), produced(p + "heads", dim))
        if rows and not unified and not network:
            for head in range(model.heads):
                softmax(p, head, b.tensor(f"{p}scores.h{head}", trace[p + "scores"][head]))
        if network:  # the block's residual add in proj's epilogue: attn = x + proj(heads)
            b.linear(p + "proj", source(p + "heads"),
                     b.weights(p + "attn.proj.w", codes[p + "attn.proj.w"], codes[p + "attn.proj.b"]),
                     produced(p + "attn", dim), matmul="proj", residual=source(previous))
        elif linear:
            b.linear(p + "proj", source(p + "heads"),
                     b.weights(p + "attn.proj.w", codes[p + "attn.proj.w"], codes[p + "attn.proj.b"]),
                     produced(p + "proj", dim), matmul="proj")
        layernorm(p + "ln2", p + "attn", p + "ln2")
        previous = p + "out"
        if not linear:
            continue
        if model.is_moe(layer):
            moe_layer(b, model, codes, trace, layer, task, source(p + "ln2"), source(p + "attn"),
                      produced(p + "out", dim))
            continue
        b.linear(p + "fc1", source(p + "ln2"),
                 b.weights(p + "mlp.fc1.w", codes[p + "mlp.fc1.w"], codes[p + "mlp.fc1.b"]),
                 produced(p + "fc1", model.hidden), matmul="fc1", gelu=True)
        hidden = source(p + "fc1") if network else b.tensor(p + "fc1.golden", trace[p + "fc1"])
        b.linear(p + "fc2", hidden, b.weights(p + "mlp.fc2.w", codes[p + "mlp.fc2.w"], codes[p + "mlp.fc2.b"]),
                 produced(p + "out", dim), matmul="fc2", residual=source(p + "attn"))
    layernorm("norm", previous, "norm")
    if linear:
        head = b.tensor(f"head.{task}", rows=model.patches, n=trace["head"].shape[-1])
        b.linear(f"head.{task}", source("norm"),
                 b.weights(f"heads.{task}.w", codes[f"heads.{task}.w"], codes[f"heads.{task}.b"]), head,
                 matmul="head", src_row=1)
        b.expect(head, trace["head"])
    return b.finish()


def network_program(target: Target, model, codes: dict, pixels: np.ndarray, task: str, *,
                    base: int = REGION_ALIGN) -> Program:
    """The whole network for one image and ``task``: the image in, every operator reading what an earlier one
    wrote, the task head's output last (:func:`golden_ops_program` with ``network``); every intermediate
    tensor still has the golden's codes as its expectation, so a mismatch names the first operator that
    differs."""
    return golden_ops_program(target, model, codes, pixels, task, network=True, base=base)


def moe_layer(b: Builder, model, codes: dict, trace: dict, layer: int, task: str, y2: Region, attn: Region,
              out: Region) -> None:
    """The mixture of experts of block ``layer`` on ``y2`` (the block's ``ln2`` output), then the block's
    residual add of ``attn`` into ``out``.

    The gate's logits (``LINEAR`` with the gate's format, no bias), ``GATE`` (the route table), then
    expert by expert in index order (and for a queue longer than the A buffer part by part) fc1 + GELU
    on the gathered tokens into the expert's hidden rows (compact) and fc2 scattered, score-weighted, into
    the tokens' rows of ``ffn`` (the first expert of a token writes its row, the others add to it: the
    golden's order and rounding); ``ADD`` of the attention output. Expectations: the logits, every
    expert's hidden rows and ``ffn`` (the caller expects ``out``).
    """
    from sim.golden.moevit import fixed

    p = f"blocks.{layer}."
    u, specs = fixed.units(model), fixed.matmul_specs(model)
    act = model.format("activation")
    y2_codes = trace[p + "ln2"]
    gate_w = codes[p + f"moe.gate.{task}"]
    logits_codes = fixed.matmul(specs["gate"], y2_codes, gate_w)
    chosen, _ = fixed.gate(fixed.convert(logits_codes, act, u.gate.input, model), u, model.top_k)
    logits = b.tensor(p + "gate.logits", rows=model.tokens, n=model.experts)
    b.linear(p + "gate", y2, b.weights(p + f"moe.gate.{task}", gate_w), logits, matmul="gate")
    b.expect(logits, logits_codes)
    b.gate(p + "route", logits)
    ffn = b.tensor(p + "ffn", rows=model.tokens, n=model.dim)
    for e in range(model.experts):
        rows = np.nonzero((chosen == e).any(axis=-1))[0]
        part_rows = min(model.tokens, b.target.a_rows)
        hidden = b.tensor(p + f"expert{e}.hidden", rows=part_rows, n=model.expert_hidden)
        want = np.zeros((part_rows, model.expert_hidden), dtype=np.int64)  # each part overwrites the first rows
        for start in range(0, rows.size, part_rows):
            part = rows[start:start + part_rows]
            want[:part.size] = fixed.feature_gelu(fixed.matmul(specs["fc1"], y2_codes[part], codes[p + "moe.fc1.w"][e],
                                                               codes[p + "moe.fc1.b"][e]), model, u)
        b.expect(hidden, want)
        w1 = b.weights(p + f"moe.fc1.{e}", codes[p + "moe.fc1.w"][e], codes[p + "moe.fc1.b"][e])
        w2 = b.weights(p + f"moe.fc2.{e}", codes[p + "moe.fc2.w"][e], codes[p + "moe.fc2.b"][e])
        for start in range(0, model.tokens, part_rows):
            b.linear(p + f"expert{e}.fc1", y2, w1, hidden, matmul="fc1", gelu=True, expert=e, gather=True,
                     queue_from=start, queued=rows.size)
            b.linear(p + f"expert{e}.fc2", hidden, w2, ffn, matmul="fc2", residual=ffn, expert=e, scatter=True,
                     queue_from=start, queued=rows.size)
    b.expect(ffn, trace[p + "ffn"])
    b.add(p + "add", attn, ffn, out)
