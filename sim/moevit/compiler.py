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
program that runs every linear operator of a network on the golden's own inputs.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hw.arith.fixed import FixedFormat
from hw.vit import descriptors

from .memory import REGION_ALIGN, MemoryImage, Region, tensor_codes, weight_tiles

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
        f = cfg.facts
        return cls(data_width=cfg.memory.data_width, addr_width=cfg.memory.addr_width, act=f.act,
                   act_bytes=f.act_bytes, w_bytes=f.w_bytes, rows=f.rows, cols=f.cols, steps=f.steps,
                   a_rows=f.a_rows, a_k=f.a_k, k_max=f.k_max, formats=tuple(fmt.names for fmt in f.formats),
                   gelu=True, **_moe_target(cfg.network))

    @classmethod
    def from_manifest(cls, manifest: dict) -> "Target":
        p = manifest["parameters"]
        act = FixedFormat(p["act"]["width"], p["act"]["frac"], p["act"]["signed"])
        return cls(data_width=p["data_width"], addr_width=p["addr_width"], act=act, act_bytes=p["act_bytes"],
                   w_bytes=p["w_bytes"], rows=p["linear"]["rows"], cols=p["linear"]["cols"],
                   steps=p["linear"]["steps"], a_rows=p["buffers"]["a_rows"], a_k=p["buffers"]["a_k"],
                   k_max=p["buffers"]["k_max"], formats=tuple(tuple(f["names"]) for f in p["formats"]),
                   gelu=p["gelu"], experts=p.get("moe", {}).get("experts", 0), tokens=p.get("moe", {}).get("tokens", 0))


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

    def descriptor(self) -> bytes:
        return descriptors.encode(self.opcode, self.fields, flags=self.flags, fmt=self.fmt)

    def to_json(self) -> dict:
        return {"name": self.name, "opcode": self.opcode, "fields": self.fields, "flags": list(self.flags),
                "fmt": self.fmt, "reads": list(self.reads), "writes": self.writes, "macs": self.macs}


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


def linear_ops_program(target: Target, model, codes: dict, pixels: np.ndarray, task: str) -> Program:
    """Every linear operator of ``model`` (and the patch gather and position add of the embedding), each fed
    the golden's own input tensors, with the golden's outputs as expectations.

    Patch embedding (image -> IM2COL -> LINEAR into token rows 1.., the cls row from the compiler ->
    ADD of the position embedding), per block qkv, proj and, for dense blocks, fc1 + GELU and
    fc2 + residual, then the task head on the patch tokens. ``codes`` are the weight codes
    (:func:`sim.golden.moevit.fixed.quantize_params`).
    """
    from sim.golden.moevit.fixed import convert

    trace = golden_trace(model, codes, pixels, task)
    b = Builder(target)
    act, emb = model.format("activation"), model.format("embedding")
    c, h, w = pixels.shape
    image = image_region(b, "image", pixels, model.format("pixel"))
    patches = b.tensor("embed.patches", rows=model.patches, n=model.patch_inputs, fmt=model.format("pixel"))
    b.expect(patches, trace["embed.patches"])
    b.im2col("embed.im2col", image, patches, channels=c, height=h, width=w, patch=model.patch)
    tokens = b.tensor("embed.tokens", rows=model.tokens, n=model.dim)
    b.image.put(tokens, np.concatenate([convert(codes["cls"], emb, act, model)[None],
                                        np.zeros((model.patches, model.dim), dtype=np.int64)]))
    b.linear("embed.patch_embed", patches, b.weights("patch_embed.w", codes["patch_embed.w"], codes["patch_embed.b"]),
             tokens, matmul="patch_embed", dst_row=1)
    b.expect(tokens, trace["embed.tokens"])
    pos = b.tensor("pos", convert(codes["pos"], emb, act, model))
    out = b.tensor("embed.out", rows=model.tokens, n=model.dim)
    b.add("embed.pos", tokens, pos, out)
    b.expect(out, trace["embed.out"])
    for layer in range(model.layers):
        p = f"blocks.{layer}."
        y = b.tensor(p + "ln1", trace[p + "ln1"])
        qkv = b.tensor(p + "qkv", rows=model.tokens, n=3 * model.dim)
        b.linear(p + "qkv", y, b.weights(p + "attn.qkv.w", codes[p + "attn.qkv.w"], codes[p + "attn.qkv.b"]), qkv,
                 matmul="qkv")
        b.expect(qkv, trace[p + "qkv"])
        heads = b.tensor(p + "heads", trace[p + "heads"])
        proj = b.tensor(p + "proj", rows=model.tokens, n=model.dim)
        b.linear(p + "proj", heads, b.weights(p + "attn.proj.w", codes[p + "attn.proj.w"], codes[p + "attn.proj.b"]),
                 proj, matmul="proj")
        b.expect(proj, trace[p + "proj"])
        if model.is_moe(layer):
            moe_layer(b, model, codes, trace, layer, task)
            continue
        y2 = b.tensor(p + "ln2", trace[p + "ln2"])
        fc1 = b.tensor(p + "fc1", rows=model.tokens, n=model.hidden)
        b.linear(p + "fc1", y2, b.weights(p + "mlp.fc1.w", codes[p + "mlp.fc1.w"], codes[p + "mlp.fc1.b"]), fc1,
                 matmul="fc1", gelu=True)
        b.expect(fc1, trace[p + "fc1"])
        hidden = b.tensor(p + "fc1.golden", trace[p + "fc1"])
        attn = b.tensor(p + "attn", trace[p + "attn"])
        block_out = b.tensor(p + "out", rows=model.tokens, n=model.dim)
        b.linear(p + "fc2", hidden, b.weights(p + "mlp.fc2.w", codes[p + "mlp.fc2.w"], codes[p + "mlp.fc2.b"]),
                 block_out, matmul="fc2", residual=attn)
        b.expect(block_out, trace[p + "out"])
    norm = b.tensor("norm", trace["norm"])
    head = b.tensor(f"head.{task}", rows=model.patches, n=trace["head"].shape[-1])
    b.linear(f"head.{task}", norm, b.weights(f"heads.{task}.w", codes[f"heads.{task}.w"], codes[f"heads.{task}.b"]),
             head, matmul="head", src_row=1)
    b.expect(head, trace["head"])
    return b.finish()


def moe_layer(b: Builder, model, codes: dict, trace: dict, layer: int, task: str) -> None:
    """The mixture of experts of block ``layer`` on the golden's ``ln2`` output, then the block's residual add.

    The gate's logits (``LINEAR`` with the gate's format, no bias), ``GATE`` (the route table), then
    expert by expert in index order (and for a queue longer than the A buffer part by part) fc1 + GELU
    on the gathered tokens into the expert's hidden rows (compact) and fc2 scattered, score-weighted, into the tokens' rows of ``ffn`` (the first expert of
    a token writes its row, the others add to it: the golden's order and rounding); ``ADD`` of the
    attention output. Expectations: the logits, every expert's hidden rows, ``ffn`` and the block output.
    """
    from sim.golden.moevit import fixed

    p = f"blocks.{layer}."
    u, specs = fixed.units(model), fixed.matmul_specs(model)
    act = model.format("activation")
    y2_codes = trace[p + "ln2"]
    gate_w = codes[p + f"moe.gate.{task}"]
    logits_codes = fixed.matmul(specs["gate"], y2_codes, gate_w)
    chosen, _ = fixed.gate(fixed.convert(logits_codes, act, u.gate.input, model), u, model.top_k)
    y2 = b.tensor(p + "ln2", y2_codes)
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
    attn = b.tensor(p + "attn", trace[p + "attn"])
    out = b.tensor(p + "out", rows=model.tokens, n=model.dim)
    b.add(p + "add", attn, ffn, out)
    b.expect(out, trace[p + "out"])
