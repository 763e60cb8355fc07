"""The patch gather of the patch embedding: opcode ``IM2COL``, by addressing (no host preprocessing).

The image is ``channels x height x width`` pixel codes, one byte each (the model's
``pixel`` format), channel ``c`` row ``y`` at ``src + (c*height + y)*src_stride``. The
output is the patch matrix of :func:`sim.golden.moevit.reference.patchify`: row
``m = (y//patch)*(width//patch) + x//patch``, element ``k = (c*patch + y%patch)*patch +
x%patch`` holds pixel ``(c, y, x)`` zero-extended to an ``act_bytes`` container, row ``m``
at ``dst + m*dst_stride``.

Each image row is read whole (one request of ``ceil(width / data_bytes)`` beats); each
*segment* of ``patch`` pixels of it (one patch, one channel, one pixel row) is a run of
consecutive elements of one output row and becomes one write request of
``patch*act_bytes`` bytes: whole beats when that is at least a beat (aligned: ``k`` is a
multiple of ``patch``, and ``patch``, ``act_bytes`` and the data bytes are powers of two),
otherwise one beat with strobes on the segment's bytes (the same byte lanes for every
segment of an image row; the segment's pixels are repeated across the beat, the strobes
pick their lanes).

Timing: the image row requests and the segment write requests are issued ahead, each as
fast as its port takes them; a gearbox cuts each input beat into write beats (a whole
beat of widened pixels, or one segment) and produces one write beat per cycle when the
memory keeps up, so the write side, the bottleneck (``act_bytes`` or more write beats
per input beat), is busy every cycle. ``mem_stall`` is high in every running cycle in
which no write beat is produced (the next image beat is not there, the write port does
not take the last one, or the last writes are being acknowledged).

Errors (before any memory access; the first that applies): ``BAD_FORMAT`` (a flag or
``fmt`` set), ``BAD_SIZE`` (``patch`` not a power of two, ``channels``, ``height`` or
``width`` zero, ``height`` or ``width`` not a multiple of ``patch``, ``channels*height``,
the patch count or the patch row's bytes ``channels*patch*patch*act_bytes`` not within 32
bits, an image row of more than 65535 beats), ``BAD_ADDRESS``
(:class:`hw.vit.engine.TensorCheck` of the image, ``channels*height`` rows of ``width``
bytes, and of the patch matrix, ``(height/patch)*(width/patch)`` rows of
``channels*patch*patch*act_bytes`` bytes).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring

from hw.nonlinear.pipeline import split_product

from .descriptors import ERROR
from .engine import (MAX_REQUEST_BEATS, EngineControl, RowRequests, TensorCheck, check_widths, desc_field,
                     engine_members)

#: Cycles from ``start`` to the checks' TensorCheck start: the geometry is computed in three stages.
PREP_CYCLES = 3


class Im2colEngine(wiring.Component):
    """The ``IM2COL`` engine (see the module docstring). ``reads[0]`` the image, ``writes[0]`` the patches."""

    def __init__(self, *, addr_width: int, data_width: int, act_bytes: int):
        self._log_bytes, self._log_act = check_widths(addr_width=addr_width, data_width=data_width,
                                                      act_bytes=act_bytes)
        self.addr_width, self.data_width, self.act_bytes = addr_width, data_width, act_bytes
        super().__init__(engine_members(addr_width=addr_width, data_width=data_width, read_clients=1,
                                        write_clients=1))

    def elaborate(self, platform):
        m = Module()
        lb, lab = self._log_bytes, self._log_act
        nbytes = 1 << lb
        log_lanes = lb - lab  # log2 of the elements of a write beat

        def field(name):
            return desc_field(self.desc, "IM2COL", name)

        channels, height, width, patch = field("channels"), field("height"), field("width"), field("patch")

        control = m.submodules.control = EngineControl(check_cycles=PREP_CYCLES + TensorCheck.latency)
        m.d.comb += [control.start.eq(self.start), self.busy.eq(control.busy), self.done.eq(control.done),
                     self.error.eq(control.error)]

        # ---- geometry, stage 1 (the start cycle): log2(patch), simple size rules (the products below)
        format_bad = Signal(name="format_bad")
        pow2 = Signal(name="patch_pow2")
        log_patch = Signal(5, name="log_patch")
        nonzero = Signal(name="sizes_nonzero")
        multiples = Signal(name="patch_multiples")
        image_rows = Signal(64, name="image_rows")  # channels * height
        image_beats = Signal(16, name="image_beats")  # beats of an image row
        image_beats_ok = Signal(name="image_beats_ok")
        image_beats_full = (width + nbytes - 1) >> lb
        # log2 of a one-hot value: bit b is the OR of the value's bits whose index has bit b set
        encoded = Cat(Cat(patch[i] for i in range(32) if i >> b & 1).any() for b in range(5))
        with m.If(control.check):
            m.d.sync += [format_bad.eq(self.desc[8:24].any()),
                         pow2.eq(patch.any() & ~(patch & (patch - 1)).any()),
                         log_patch.eq(encoded),
                         nonzero.eq(channels.any() & height.any() & width.any()),
                         multiples.eq(~((height | width) & (patch - 1)[:32]).any()),
                         image_beats.eq(image_beats_full), image_beats_ok.eq(image_beats_full <= MAX_REQUEST_BEATS)]
        # The two products as registered half products (a whole 32 x 32 multiply in one cycle was 44 cells
        # deep), summed in stage 2; patches = width * height / patch**2 (exact when both are multiples of
        # patch, and size_bad otherwise).
        rows_sum = split_product(m, control.check, "image_rows", channels, height)
        area_sum = split_product(m, control.check, "image_area", width, height)
        area = Signal(64, name="image_area")
        # stage 2: patches across and down, the patch row's bytes
        grid_w, grid_h = Signal(32, name="grid_w"), Signal(32, name="grid_h")
        row_shift = Signal(7, name="row_shift")  # log2(patch*patch*act_bytes)
        row_bytes = Signal(64, name="patch_row_bytes")
        stage2 = Signal(name="stage2")
        m.d.sync += stage2.eq(control.check)
        with m.If(stage2):
            m.d.sync += [grid_w.eq(width >> log_patch), grid_h.eq(height >> log_patch),
                         image_rows.eq(rows_sum), area.eq(area_sum),
                         row_shift.eq(2 * log_patch + lab),
                         row_bytes.eq(channels << (2 * log_patch + lab)[:6])]
        # stage 3: the patch count; the checks start
        patches = Signal(64, name="patches")
        stage3 = Signal(name="stage3")
        m.d.sync += stage3.eq(stage2)
        with m.If(stage3):
            m.d.sync += patches.eq(area >> Cat(Const(0, 1), log_patch))
        checks_start = Signal(name="checks_start")
        m.d.sync += checks_start.eq(stage3)
        size_bad = Signal(name="size_bad")
        m.d.comb += size_bad.eq(~(pow2 & nonzero & multiples & ~image_rows[32:].any() & ~patches[32:].any()
                                  & (row_shift < 32) & ~row_bytes[32:].any() & image_beats_ok))
        image_check = m.submodules.check_image = TensorCheck(addr_width=self.addr_width, align=nbytes)
        patch_check = m.submodules.check_patches = TensorCheck(addr_width=self.addr_width, align=nbytes)
        m.d.comb += [image_check.sample.eq(checks_start), image_check.base.eq(field("src")),
                     image_check.rows.eq(image_rows[:32]), image_check.stride.eq(field("src_stride")),
                     image_check.row_bytes.eq(width),
                     patch_check.sample.eq(checks_start), patch_check.base.eq(field("dst")),
                     patch_check.rows.eq(patches[:32]), patch_check.stride.eq(field("dst_stride")),
                     patch_check.row_bytes.eq(row_bytes[:32])]
        m.d.comb += control.fault.eq(
            format_bad * ERROR["BAD_FORMAT"]
            | (~format_bad & size_bad) * ERROR["BAD_SIZE"]
            | (~format_bad & ~size_bad & ~(image_check.ok & patch_check.ok)) * ERROR["BAD_ADDRESS"])

        # ---- run constants (valid from go on; the geometry registers hold until the next start)
        seg_shift = Signal(6, name="seg_shift")  # log2 of a segment's bytes, patch*act_bytes
        small = Signal(name="small_segments")  # a segment is less than a beat
        chunk_log = Signal(range(max(log_lanes + 1, 2)), name="chunk_log")  # log2 of the pixels of a write beat
        m.d.comb += [seg_shift.eq(log_patch + lab), small.eq(seg_shift < lb)]
        with m.If(stage2):
            m.d.sync += chunk_log.eq(Mux(log_patch + lab < lb, log_patch, log_lanes))
        seg_bytes = Signal(32, name="seg_bytes")
        back = Signal(32, name="back")  # (patch - 1) * seg_bytes: from the last pixel row of a patch to its first
        chan_step = Signal(32, name="chan_step")  # patch * seg_bytes: from one channel's elements to the next's
        seg_beats = Signal(16, name="seg_beats")
        with m.If(stage3):
            m.d.sync += [seg_bytes.eq(Const(1, 32) << seg_shift), chan_step.eq(Const(1, 32) << row_shift[:6]),
                         seg_beats.eq(Mux(small, 1, (Const(1, 32) << seg_shift) >> lb))]
        with m.If(checks_start):
            m.d.sync += back.eq(chan_step - seg_bytes)
        last_row, last_py = Signal(32, name="last_row"), Signal(32, name="last_py")  # height - 1, patch - 1
        with m.If(control.check):
            m.d.sync += [last_row.eq(height - 1), last_py.eq(patch - 1)]

        # ---- image row requests
        reads = m.submodules.requests_image = RowRequests(addr_width=self.addr_width)
        m.d.comb += [reads.load.eq(control.go), reads.base.eq(field("src")), reads.stride.eq(field("src_stride")),
                     reads.count.eq(image_rows[:32]), reads.beats.eq(image_beats)]
        wiring.connect(m, reads.req, wiring.flipped(self.reads[0].req))

        # ---- segment write requests, in image order: channel, pixel row, patch column
        aw = self.addr_width
        seg_addr = Signal(aw, name="seg_addr")  # this segment's (unaligned) byte address
        row_start = Signal(aw, name="row_start")  # the segment address of patch column 0 of this pixel row
        chan_base = Signal(aw, name="chan_base")  # dst + c*patch*seg_bytes
        gx_left = Signal(32, name="gx_left")  # segments left in this pixel row
        req_rows = Signal(32, name="req_rows")  # pixel rows whose segments are not all requested
        req_py, req_y = Signal(32, name="req_py"), Signal(32, name="req_y")
        wreq = self.writes[0].req
        m.d.comb += [wreq.valid.eq(req_rows.any()), wreq.payload.addr.eq(seg_addr & ~(nbytes - 1)),
                     wreq.payload.beats.eq(seg_beats)]
        dst_stride = field("dst_stride")
        stride_back = Signal(aw, name="stride_back")  # dst_stride - back: from past a patch row to the next's first
        with m.If(control.go):
            m.d.sync += [stride_back.eq(dst_stride - back),
                         seg_addr.eq(field("dst")), row_start.eq(field("dst")), chan_base.eq(field("dst")),
                         gx_left.eq(grid_w), req_rows.eq(image_rows[:32]), req_py.eq(0), req_y.eq(0)]
        with m.Elif(wreq.valid & wreq.ready):
            with m.If(gx_left != 1):
                m.d.sync += [seg_addr.eq(seg_addr + dst_stride), gx_left.eq(gx_left - 1)]
            with m.Else():
                m.d.sync += [gx_left.eq(grid_w), req_rows.eq(req_rows - 1)]
                with m.If(req_y == last_row):  # next channel
                    m.d.sync += [chan_base.eq(chan_base + chan_step), row_start.eq(chan_base + chan_step),
                                 seg_addr.eq(chan_base + chan_step), req_y.eq(0), req_py.eq(0)]
                with m.Elif(req_py == last_py):  # next row of patches: seg_addr + dst_stride is past its last
                    m.d.sync += [row_start.eq(seg_addr + stride_back), seg_addr.eq(seg_addr + stride_back),
                                 req_y.eq(req_y + 1), req_py.eq(0)]
                with m.Else():  # next pixel row of the same patches
                    m.d.sync += [row_start.eq(row_start + seg_bytes), seg_addr.eq(row_start + seg_bytes),
                                 req_y.eq(req_y + 1), req_py.eq(req_py + 1)]

        # ---- data: image beats -> gearbox -> write beats
        image, out = self.reads[0].data, self.writes[0].data
        chunks_full = Signal(lb + 1, name="chunks_full")  # write beats of a whole image beat, minus 1
        chunks_last = Signal(lb + 1, name="chunks_last")  # of the last beat of an image row, minus 1
        with m.If(stage3):
            m.d.sync += [chunks_full.eq((nbytes - 1) >> chunk_log),
                         chunks_last.eq((width - 1)[:lb] >> chunk_log)]
        # byte lane of this pixel row's segments: ((c*patch + py) * seg_bytes) mod data bytes
        lane_off = Signal(lb, name="lane_off")
        lane_mask = Signal(lb, name="lane_mask")  # data bytes - 1 with the bits below seg_bytes cleared
        with m.If(checks_start):
            m.d.sync += lane_mask.eq(Mux(small, ~(seg_bytes[:lb] - 1), 0))
        row_strb = Signal(nbytes, name="row_strb")
        m.d.comb += row_strb.eq(Cat(~((b ^ lane_off) & lane_mask).any() for b in range(nbytes)))
        data_rows = Signal(32, name="data_rows")  # image rows whose last beat has not been taken
        data_py, data_y = Signal(32, name="data_py"), Signal(32, name="data_y")

        buf = Signal(self.data_width, name="buf")  # the image beat being cut, next chunk in the low bytes
        buf_left = Signal(lb + 1, name="buf_left")  # chunks after the one in the low bytes
        buf_valid = Signal(name="buf_valid")
        buf_strb = Signal(nbytes, name="buf_strb")
        out_valid = Signal(name="out_valid")
        out_data = Signal(self.data_width, name="out_data")
        out_strb = Signal(nbytes, name="out_strb")
        advance, emit, refill, load = (Signal(name="advance"), Signal(name="emit"), Signal(name="refill"),
                                       Signal(name="load"))
        m.d.comb += [advance.eq(~out_valid | out.ready),
                     emit.eq(buf_valid & advance),
                     refill.eq(~buf_valid | (emit & ~buf_left.any())),
                     image.ready.eq(control.running & data_rows.any() & refill),
                     load.eq(image.valid & image.ready),
                     out.valid.eq(out_valid), out.payload.data.eq(out_data), out.payload.strb.eq(out_strb)]
        with m.If(advance):
            m.d.sync += out_valid.eq(emit)
        with m.If(emit):
            m.d.sync += out_strb.eq(buf_strb)
            # chunk of 2**g pixels: element slot e of the write beat takes pixel e mod 2**g
            with m.Switch(chunk_log):
                for g in range(log_lanes + 1):  # the widest chunk as the default: no incomplete case
                    with m.Case(g) if g < log_lanes else m.Default():
                        m.d.sync += out_data.eq(Cat(Cat(buf.word_select(e % (1 << g), 8),
                                                        Const(0, 8 * (self.act_bytes - 1)))
                                                    for e in range(1 << log_lanes)))
                        m.d.sync += buf.eq(buf >> (8 << g))
            m.d.sync += buf_left.eq(buf_left - 1)
            with m.If(~buf_left.any()):
                m.d.sync += buf_valid.eq(0)
        with m.If(load):
            m.d.sync += [buf.eq(image.payload.data), buf_valid.eq(1), buf_strb.eq(row_strb),
                         buf_left.eq(Mux(image.payload.last, chunks_last, chunks_full))]
            with m.If(image.payload.last):
                m.d.sync += data_rows.eq(data_rows - 1)
                with m.If(data_y == last_row):  # next channel: c*patch + py + 1 = (c+1)*patch
                    m.d.sync += [data_y.eq(0), data_py.eq(0), lane_off.eq(lane_off + seg_bytes)]
                with m.Elif(data_py == last_py):  # next row of patches: back to element row c*patch
                    m.d.sync += [data_y.eq(data_y + 1), data_py.eq(0), lane_off.eq(lane_off - back)]
                with m.Else():
                    m.d.sync += [data_y.eq(data_y + 1), data_py.eq(data_py + 1), lane_off.eq(lane_off + seg_bytes)]
        with m.If(control.go):
            m.d.sync += [data_rows.eq(image_rows[:32]), data_py.eq(0), data_y.eq(0), lane_off.eq(0),
                         buf_valid.eq(0)]

        # ---- completion: every request issued and acknowledged, every image beat taken
        outstanding = Signal(aw + 1, name="outstanding_writes")
        m.d.sync += outstanding.eq(outstanding + (wreq.valid & wreq.ready) - self.writes[0].acked)
        m.d.comb += [control.finished.eq(~reads.pending & ~req_rows.any() & ~outstanding.any() & ~data_rows.any()),
                     self.mem_stall.eq(control.running & ~emit)]
        return m
