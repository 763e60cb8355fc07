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
                   params_bytes=f.params_bytes)

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
                   params_bytes=p.get("rows", {}).get("layernorm", {}).get("params_bytes", 0))


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
               rows: int | None = None) -> Op:
        """``dst[dst_row:] = epilogue(src[src_row:] @ W)`` for ``rows`` rows (default: all of src after src_row)."""
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
                       rows: bool = True, base: int = REGION_ALIGN) -> Program:
    """The operators of ``model`` the accelerator has, in the network's order, with the golden's outputs as
    expectations; ``codes`` are the weight codes (:func:`sim.golden.moevit.fixed.quantize_params`).

    ``linear``: the patch embedding (image -> IM2COL -> LINEAR into token rows 1.., the cls row from the
    compiler -> ADD of the position embedding), per block qkv, proj and, for dense blocks, fc1 + GELU and
    fc2 + residual, then the task head on the patch tokens. ``rows``: per block LAYERNORM ``ln1`` and
    ``ln2`` and one SOFTMAX per head on the golden's scores, then the final LAYERNORM. An operator reads
    the region an earlier operator of the program wrote (the LayerNorms feed qkv, fc1 and the head; the
    embedding and dense blocks feed the next LayerNorm), otherwise a region holding the golden's tensor
    (the attention's scores and heads, whose operators the accelerator does not have yet). ``base`` is where
    the image starts (the host driver's buffer address; a multiple of 4 KB); the layout does not depend on
    ``pixels``.
    """
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
    for layer in range(model.layers):
        p = f"blocks.{layer}."
        layernorm(p + "ln1", previous, p + "ln1")
        if linear:
            b.linear(p + "qkv", source(p + "ln1"),
                     b.weights(p + "attn.qkv.w", codes[p + "attn.qkv.w"], codes[p + "attn.qkv.b"]),
                     produced(p + "qkv", 3 * dim), matmul="qkv")
        if rows:
            for head in range(model.heads):
                name = f"{p}probabilities.h{head}"
                scores = b.tensor(f"{p}scores.h{head}", trace[p + "scores"][head])
                out = b.tensor(name, rows=tokens_n, n=tokens_n, fmt=prob, container=target.act_bytes)
                b.expect(out, trace[p + "probabilities"][head])
                b.softmax(f"{p}softmax.h{head}", scores, out)
        if linear:
            b.linear(p + "proj", source(p + "heads"),
                     b.weights(p + "attn.proj.w", codes[p + "attn.proj.w"], codes[p + "attn.proj.b"]),
                     produced(p + "proj", dim), matmul="proj")
        layernorm(p + "ln2", p + "attn", p + "ln2")
        previous = p + "out"
        if model.is_moe(layer) or not linear:
            continue  # the experts are the mixture-of-experts engine's (issue III)
        b.linear(p + "fc1", source(p + "ln2"),
                 b.weights(p + "mlp.fc1.w", codes[p + "mlp.fc1.w"], codes[p + "mlp.fc1.b"]),
                 produced(p + "fc1", model.hidden), matmul="fc1", gelu=True)
        hidden = b.tensor(p + "fc1.golden", trace[p + "fc1"])
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
