"""The MoE-ViT accelerator's top: registers, AXI ports, the descriptor processor and the engines.

Wiring (docs/accelerator.md has the picture): the register block (``csr``) takes the host's
AXI4-Lite accesses; ``CTRL.start`` starts the descriptor processor (``seq``), which runs
descriptors on the engines (``linear``, ``vector``, ``im2col``, ``layernorm``, ``softmax``, with an
``attention:`` section ``attention``, with MoE layers ``gate`` and its route table); every engine's read and
write clients are assigned to the AXI4 master ports (``port_<p>``) by a fixed table
(:attr:`MoevitAccel.client_ports`), the weights on their own port when there are two or more.

Status lives here, not in the processor, so that a soft reset (which resets the processor and
the engines while the ports drain) and an AXI error (which aborts the same way) still leave
``STATUS``, ``ERROR_DESC`` and the counters readable.
"""

from amaranth.hdl import Cat, Module, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.arith.fixed import FixedFormat, Overflow, Rounding
from hw.nonlinear.gelu import GeluSpec
from hw.nonlinear.layernorm import LayerNormSpec
from hw.nonlinear.softmax import SoftmaxSpec

from . import regmap as regmap_module
from .axi import Axi4LiteSignature, Axi4Signature, AxiMasterPort, connect_flat, flat_members
from .csr import CsrBlock
from .descriptors import ERROR
from .im2col import Im2colEngine
from .gate import GateEngine
from .linear import ROUTE_READERS, LinearEngine, MoeSpec
from .router import RouteTable
from .rows import RowEngine
from .sequencer import Sequencer
from .vector import VectorEngine

#: Read clients in assignment order: (engine, client index, what it reads). Client ``i`` of this
#: list goes to port ``i % ports``, so with two ports A rows and weights use different ports.
#: The clients of an engine the config leaves out are skipped, and so is the linear engine's B^T reader
#: without the unified attention (the optional clients are last, so the others keep their ports).
READ_CLIENTS = (("linear", 0, "A rows"), ("linear", 1, "weight tiles"), ("linear", 2, "residual"),
                ("vector", 0, "x"), ("vector", 1, "x2"), ("seq", 0, "descriptors"), ("im2col", 0, "image rows"),
                ("layernorm", 0, "rows"), ("layernorm", 1, "gamma and beta"), ("softmax", 0, "scores"),
                ("attention", 0, "query rows"), ("attention", 1, "key rows"), ("attention", 2, "value rows"),
                ("linear", 3, "key rows (B^T)"), ("gate", 0, "gate logits"))
WRITE_CLIENTS = (("linear", 0, "output"), ("vector", 0, "output"), ("im2col", 0, "patch rows"),
                 ("layernorm", 0, "rows"), ("softmax", 0, "probabilities"), ("attention", 0, "head rows"))
#: Engines with a BUSY counter (register order) and the opcodes each runs; ``attention`` only when configured,
#: ``gate`` (the mixture of experts' GATE) only with MoE layers in the model.
ENGINE_OPCODES = {"linear": "LINEAR", "vector": "ADD", "im2col": "IM2COL", "layernorm": "LAYERNORM",
                  "softmax": "SOFTMAX", "attention": "ATTENTION", "gate": "GATE"}
CSR_ADDR_WIDTH = 12


class MoevitAccel(wiring.Component):
    """The accelerator (see the module docstring and docs/accelerator.md for ports and registers).

    ``engine`` is the linear unit's TPE (a ``k_steps`` engine); ``layernorm`` and ``softmax`` are the
    network's row units (their engines convert with the network's ``rounding`` and ``overflow``).
    ``name`` and ``config_id`` (16 bits of the config hash) go into the register map's ID registers.
    ``attention``: the engine of ``ATTENTION`` descriptors (:class:`hw.vit.attention.AttentionEngine`),
    or None. ``unified_attention``: the linear engine takes the attention's operands (``b_rows``,
    ``b_transposed``, a B^T reader) and the format table has the ``qk`` and ``av`` rows;
    ``attention_limits``: ``(t_max, hd_max)`` of the attention, for the manifest. ``gate`` (a
    :class:`hw.nonlinear.gate.GateSpec`, or None) adds the mixture of experts: ``GATE``, the route table of
    ``tokens`` entries per expert, and the linear engine's gather and scatter.
    """

    def __init__(self, *, name: str, config_id: int, engine, addr_width: int, data_width: int, ports: int,
                 max_burst: int, max_reads: int, max_writes: int, act: FixedFormat, act_bytes: int, w_bytes: int,
                 rounding: Rounding, overflow: Overflow, a_rows: int, a_k: int, k_max: int, formats: list,
                 gelu: GeluSpec | None, layernorm: LayerNormSpec, softmax: SoftmaxSpec, version: tuple[int, int],
                 id_width: int = 1, attention=None, unified_attention: bool = False,
                 attention_limits: tuple[int, int] | None = None, gate=None, tokens: int = 0,
                 read_queue: int | None = None):
        self.name, self.addr_width, self.data_width, self.ports = name, addr_width, data_width, ports
        # Every read client's receive FIFO, in beats (hw/vit/axi.py's default: two bursts).
        self.read_queue = read_queue if read_queue is not None else max(2 * max_burst, 4)
        self.max_burst, self.max_reads, self.max_writes, self.id_width = max_burst, max_reads, max_writes, id_width
        self.moe = None if gate is None else MoeSpec(experts=gate.experts, tokens=tokens, score=gate.softmax.output)
        self.linear = LinearEngine(engine=engine, addr_width=addr_width, data_width=data_width, act=act,
                                   act_bytes=act_bytes, w_bytes=w_bytes, a_rows=a_rows, a_k=a_k, k_max=k_max,
                                   formats=formats, gelu=gelu, attention=unified_attention, moe=self.moe)
        if attention is not None and unified_attention:
            raise ValueError("attention: one attention mode, a dedicated engine or the unified linear engine")
        self.unified_attention, self.attention_limits = unified_attention, attention_limits
        self.gate = None if gate is None else GateEngine(
            addr_width=addr_width, data_width=data_width, act=act, act_bytes=act_bytes, rounding=rounding,
            overflow=overflow, spec=gate, tokens=tokens)
        self.vector = VectorEngine(addr_width=addr_width, data_width=data_width, act=act, act_bytes=act_bytes,
                                   overflow=overflow)
        self.im2col = Im2colEngine(addr_width=addr_width, data_width=data_width, act_bytes=act_bytes)
        self.layernorm, self.softmax = (
            RowEngine(spec=spec, addr_width=addr_width, data_width=data_width, act=act, act_bytes=act_bytes,
                      rounding=rounding, overflow=overflow) for spec in (layernorm, softmax))
        self.attention = attention
        optional = {"attention": attention, "gate": self.gate}
        self.engine_opcodes = {name: op for name, op in ENGINE_OPCODES.items()
                               if name not in optional or optional[name] is not None}
        self.seq = Sequencer(addr_width=addr_width, data_width=data_width,
                             engines={op: index for index, op in enumerate(self.engine_opcodes.values())})
        self.engine_names = ("fetch",) + tuple(self.engine_opcodes)
        lin = self.linear
        caps = {"ports": ports, "data_bytes_log2": (data_width // 8).bit_length() - 1, "rows": lin.rows,
                "cols": lin.cols}
        self.rdl = regmap_module.accel_rdl(name=name, engines=list(self.engine_names), ports=ports, version=version,
                                           config_id=config_id, caps=caps)
        self.register_map, self.rdl_node = regmap_module.elaborate_rdl(self.rdl)
        self.formats = list(formats)
        present = {name: 1 if name == "seq" else len(unit.reads) for name, unit in self._units().items()}
        reads = [client for client in READ_CLIENTS if client[1] < present.get(client[0], 0)]
        writes = [client for client in WRITE_CLIENTS if client[0] in present]
        self.client_ports = {
            "reads": [{"engine": e, "client": c, "what": w, "port": i % ports} for i, (e, c, w) in enumerate(reads)],
            "writes": [{"engine": e, "client": c, "what": w, "port": i % ports} for i, (e, c, w) in enumerate(writes)],
        }
        members = {}
        for p in range(ports):
            members |= flat_members(f"m_axi{p}", Axi4Signature(addr_width=addr_width, data_width=data_width,
                                                               id_width=id_width))
        members |= flat_members("s_axil", Axi4LiteSignature(addr_width=self.register_map.addr_width).flip())
        members["irq"] = Out(1)
        super().__init__(members)

    def _units(self) -> dict:
        """The engines by name (with the processor, ``seq``, which reads descriptors)."""
        units = {"linear": self.linear, "vector": self.vector, "im2col": self.im2col, "layernorm": self.layernorm,
                 "softmax": self.softmax, "seq": self.seq}
        if self.attention is not None:
            units["attention"] = self.attention
        if self.gate is not None:
            units["gate"] = self.gate
        return units

    # ------------------------------------------------------------------ facts for the manifest
    @property
    def axi_ports(self) -> dict:
        return {
            "masters": [{"prefix": f"m_axi{p}", "data_width": self.data_width, "addr_width": self.addr_width,
                         "id_width": self.id_width,
                         "reads": [c["what"] + f" ({c['engine']})" for c in self.client_ports["reads"] if c["port"] == p],
                         "writes": [c["what"] + f" ({c['engine']})" for c in self.client_ports["writes"]
                                    if c["port"] == p]}
                        for p in range(self.ports)],
            "csr": {"prefix": "s_axil", "addr_width": self.register_map.addr_width, "data_width": 32},
            "irq": "irq",
        }

    @property
    def parameters(self) -> dict:
        lin = self.linear
        return {
            "data_width": self.data_width, "addr_width": self.addr_width, "ports": self.ports,
            "max_burst": self.max_burst, "max_reads": self.max_reads, "max_writes": self.max_writes,
            "read_fifo_depth": self.read_queue,
            "linear": {"rows": lin.rows, "cols": lin.cols, "steps": lin.steps, "macs": lin.rows * lin.cols * lin.steps,
                       "a_bits": lin.a_bits, "b_bits": lin.b_bits, "latency": lin.engine.latency,
                       "job_interval": lin.engine.job_interval, "epilogue_latency": lin.epilogue_latency},
            "act": {"width": lin.act.width, "frac": lin.act.frac, "signed": lin.act.signed},
            "act_bytes": lin.act_bytes, "w_bytes": lin.w_bytes,
            "buffers": {"a_rows": lin.a_rows, "a_k": lin.a_k, "k_max": lin.k_max, "a_words": lin.a_words,
                        "weight_words": 2 * lin.half_words},
            "formats": [f.to_json() for f in self.formats],
            "gelu": lin.gelu is not None,
            "rows": {engine.opcode.lower(): {"lanes": engine.spec.lanes, "n_max": engine.spec.n_max,
                                             "banks": engine.spec.banks, "latency": engine.unit_latency,
                                             "params_bytes": engine.params_bytes}
                     for engine in (self.layernorm, self.softmax)},
            "attention": self._attention_parameters(),
            "engines": list(self.engine_names),
            "clients": self.client_ports,
            **({"moe": {"experts": self.moe.experts, "tokens": self.moe.tokens, "top_k": self.gate.top_k,
                        "gate": {"lanes": self.gate.lanes, "banks": self.gate.spec.softmax.banks,
                                 "latency": self.gate.gate.latency},
                        "score": {"width": self.moe.score.width, "frac": self.moe.score.frac,
                                  "signed": self.moe.score.signed}}} if self.moe is not None else {}),
        }

    def _attention_parameters(self) -> dict | None:
        att = self.attention
        if self.unified_attention:
            t_max, hd_max = self.attention_limits
            return {"engine": "unified", "p": None, "macs": None, "lanes": None, "t_max": t_max, "hd_max": hd_max,
                    "softmax_lanes": None}
        if att is None:
            return None
        return {"engine": "dedicated", "p": att.p, "macs": att.macs, "lanes": att.lanes, "t_max": att.t_max,
                "hd_max": att.hd_max, "softmax_lanes": att.softmax.lanes}

    # ------------------------------------------------------------------ hardware
    def elaborate(self, platform):
        m = Module()
        csr = m.submodules.csr = CsrBlock(self.register_map)
        connect_flat(m, "s_axil", self, csr.bus)

        soft = Signal(name="soft_rst")  # resets the processor and the engines while the ports drain
        engines = self._units()
        for name, unit in engines.items():
            m.submodules[name] = ResetInserter(soft)(unit)
        if self.moe is not None:
            moe = self.moe
            table = RouteTable(experts=moe.experts, tokens=moe.tokens, score=moe.score, readers=ROUTE_READERS)
            m.submodules.route_table = ResetInserter(soft)(table)
            wiring.connect(m, self.gate.push, table.push)
            m.d.comb += [table.clear.eq(self.gate.clear), self.linear.route_counts.eq(table.counts),
                         self.linear.route_tokens.eq(self.gate.routed)]
            for i in range(ROUTE_READERS):
                wiring.connect(m, self.linear.route[i], table.reads[i])

        ports = []
        for p in range(self.ports):
            reads = [c for c in self.client_ports["reads"] if c["port"] == p]
            writes = [c for c in self.client_ports["writes"] if c["port"] == p]
            port = AxiMasterPort(addr_width=self.addr_width, data_width=self.data_width, id_width=self.id_width,
                                 read_clients=len(reads), write_clients=len(writes), max_burst=self.max_burst,
                                 max_reads=self.max_reads, max_writes=self.max_writes,
                                 read_fifo_depth=self.read_queue)
            m.submodules[f"port_{p}"] = port
            ports.append(port)
            connect_flat(m, f"m_axi{p}", self, port.axi)
            for i, c in enumerate(reads):
                client = self.seq.fetch if c["engine"] == "seq" else engines[c["engine"]].reads[c["client"]]
                wiring.connect(m, client, port.reads[i])
            for i, c in enumerate(writes):
                wiring.connect(m, engines[c["engine"]].writes[c["client"]], port.writes[i])

        # ------------------------------------------------------------ control and status
        seq = self.seq
        start = csr.ctrl_start
        soft_request = csr.ctrl_soft_reset
        aborting = Signal(name="aborting")
        ports_idle = Signal(name="ports_idle")
        m.d.comb += ports_idle.eq(Cat(*[port.idle for port in ports]).all())
        read_error = Signal(name="read_error")
        write_error = Signal(name="write_error")
        m.d.comb += [read_error.eq(Cat(*[port.read_error for port in ports]).any()),
                     write_error.eq(Cat(*[port.write_error for port in ports]).any())]
        axi_code = Signal(seq.abort_code.shape(), name="axi_code")
        with m.If(read_error):
            m.d.comb += axi_code.eq(ERROR["AXI_READ"])
        with m.Elif(write_error):
            m.d.comb += axi_code.eq(ERROR["AXI_WRITE"])
        axi_failure = seq.failed & axi_code.any()
        # An abort (soft reset or AXI error): one drain pulse starts every port's drain; the processor
        # and the engines stay in reset until every port is idle again.
        abort = Signal(name="abort_now")
        m.d.comb += abort.eq(soft_request | axi_failure)
        with m.If(abort):
            m.d.sync += aborting.eq(1)
        with m.Elif(aborting & ports_idle):
            m.d.sync += aborting.eq(0)
        m.d.comb += soft.eq(abort | aborting)
        starting = Signal(name="starting")
        busy = Signal(name="busy")
        m.d.comb += [busy.eq(seq.busy | aborting), starting.eq(start & ~busy)]
        for port in ports:
            m.d.comb += [port.drain.eq(abort), port.clear.eq(starting)]
        m.d.comb += [seq.start.eq(starting), seq.base.eq(csr.desc_base_value), seq.abort_code.eq(axi_code)]
        opcode_engines = [engines[name] for name in self.engine_opcodes]
        for index, engine in enumerate(opcode_engines):
            m.d.comb += [engine.start.eq(seq.engine_start[index]), engine.desc.eq(seq.desc),
                         seq.engine_done[index].eq(engine.done), seq.engine_error[index].eq(engine.error)]

        done, error = Signal(name="done_flag"), Signal(name="error_flag")
        code, error_desc, desc_done = Signal(8, name="code"), Signal(32, name="error_desc"), Signal(32, name="desc_done")
        with m.If(starting | soft_request):
            m.d.sync += [done.eq(0), error.eq(0), code.eq(0), desc_done.eq(0), error_desc.eq(0)]
        with m.If(seq.completed):
            m.d.sync += desc_done.eq(desc_done + 1)
        with m.If(seq.finished):
            m.d.sync += done.eq(1)
        with m.If(seq.failed):
            m.d.sync += [error.eq(1), code.eq(seq.code), error_desc.eq(seq.index)]
        m.d.comb += [
            csr.status_busy.eq(busy), csr.status_done.eq(done), csr.status_error.eq(error), csr.status_code.eq(code),
            csr.error_desc_value.eq(error_desc), csr.desc_done_value.eq(desc_done),
            csr.irq_status_done_set.eq(seq.finished), csr.irq_status_error_set.eq(seq.failed),
            self.irq.eq((csr.irq_status_done & csr.irq_enable_done) | (csr.irq_status_error & csr.irq_enable_error)),
        ]

        # ------------------------------------------------------------ counters
        counting = seq.running
        beat_bytes = self.data_width // 8
        stall = Signal(name="event_mem_stall")
        m.d.sync += stall.eq(Cat(*[engines[name].mem_stall for name in self.engine_opcodes]).any())
        events = {
            "cycles": counting,
            "busy_fetch": counting & seq.waiting_fetch,
            **{f"busy_{name}": engines[name].busy for name in self.engine_opcodes},
            # one operator runs at a time: the MAC beats of whichever engine has them
            "mac_active": Cat(*[engines[name].mac_beat for name in self.engine_opcodes
                                if hasattr(engines[name], "mac_beat")]).any(),
            # every engine's wait logic ORed, registered first (the counter runs one cycle behind), so that the
            # counter's adder does not sit on that path
            "mem_stall": stall,
        }
        for p, port in enumerate(ports):
            events[f"rd_bytes_p{p}"] = port.read_beat * beat_bytes
            events[f"wr_bytes_p{p}"] = port.write_bytes
        for name, increment in events.items():
            counter = Signal(64, name=f"count_{name}")
            with m.If(starting | soft_request):
                m.d.sync += counter.eq(0)
            with m.Else():
                m.d.sync += counter.eq(counter + increment)
            m.d.comb += getattr(csr, f"{name}_value").eq(counter)
        return m
