// npuforge accelerator harness: the Verilated accelerator with a DRAM model behind its AXI4
// master ports (axi_memory.h) and an AXI4-Lite master for its registers. No Python per cycle.
//
// The design glue (port names) is generated into "accel_design.h" by sim/fault/harness. The
// run is a script (a text file, one command per line, executed in order):
//
//   npuforge-accel-spec 1
//   memory BASE SIZE                  the DRAM model: SIZE bytes from address BASE
//   timing RLAT WLAT BPC STALL SEED MAXR MAXW   latencies, bytes/cycle per port (0: full), stall probability, ...
//   load ADDR PATH                    the file's bytes into memory at ADDR
//   timeout CYCLES                    the longest a `run` may take
//   write ADDR VALUE                  an AXI4-Lite write (waits for its response)
//   read ADDR                         an AXI4-Lite read; prints "csr ADDR VALUE RESP"
//   run                               clock until irq is high; prints "run CYCLES IRQ" (IRQ 0: timed out)
//   bandwidth                         prints "bandwidth WINDOW" and per port "RD WR PEAK_RD PEAK_WR" of the last
//                                     run, on one line: the bytes read and written (strobed, at the W handshake)
//                                     on the port during the run and the most bytes of any WINDOW consecutive
//                                     cycles of it
//   cycles N                          clock N cycles
//   reset N                           hold rst for N cycles (the memory drops what is in flight); the design
//                                     sees rst through a register (registered_reset_top in sim/fault/harness:
//                                     it keeps the reset out of Verilator's input logic), so this takes N + 1
//                                     cycles, the design in reset for the last N
//   dump ADDR SIZE PATH               memory [ADDR, ADDR+SIZE) into a file
//   trace PATH                        (a build with tracing) write a VCD of everything after this line
//   sync                              prints "sync" (an interactive caller waits for it)
//
// `accel SPEC` runs the file; `accel -` reads the same commands from stdin and flushes its output after
// each one, so a host driver (npuforge.host) can talk to the accelerator register access by register access.
//
// At the end it prints "violation ..." for every AXI rule the accelerator broke (and exits 1 if any),
// "port P READ_BYTES WRITE_BYTES" per port and "total_cycles N".

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"
#ifdef NPUFORGE_TRACE
#include "verilated_vcd_c.h"
#endif

#include "port_words.h"
template <typename T>
static inline uint64_t get64(const T& port) {
    uint32_t w[16] = {0};
    get(port, w);
    return w[0] | (static_cast<uint64_t>(w[1]) << 32);
}
template <typename T>
static inline void put64(T& port, uint64_t value) {
    uint32_t w[16] = {static_cast<uint32_t>(value), static_cast<uint32_t>(value >> 32)};
    put(port, w);
}

#include "axi_memory.h"

struct LiteIn {  // what the harness drives on the register port
    uint64_t awaddr = 0, araddr = 0; uint32_t wdata = 0, wstrb = 0xF;
    bool awvalid = false, wvalid = false, bready = false, arvalid = false, rready = false;
};
struct LiteOut {
    bool awready = false, wready = false, bvalid = false, arready = false, rvalid = false;
    uint32_t bresp = 0, rdata = 0, rresp = 0;
};

#include "accel_design.h"

[[noreturn]] static void fail(const std::string& message) {
    std::fprintf(stderr, "harness: %s\n", message.c_str());
    std::exit(2);
}

// Bytes per port and direction during one run, with the busiest window of BANDWIDTH_WINDOW cycles.
constexpr int BANDWIDTH_WINDOW = 64;
struct Bandwidth {
    uint64_t start = 0, last = 0, sum = 0, peak = 0;
    uint64_t ring[BANDWIDTH_WINDOW] = {0};
    long n = 0;
    void begin(uint64_t total) { start = last = total; sum = peak = 0; n = 0; std::memset(ring, 0, sizeof ring); }
    void sample(uint64_t total) {  // once per cycle: the counter's value after the cycle
        uint64_t moved = total - last;
        last = total;
        uint64_t& slot = ring[n++ % BANDWIDTH_WINDOW];
        sum += moved - slot;
        slot = moved;
        if (sum > peak) peak = sum;
    }
    uint64_t bytes() const { return last - start; }
};

struct Harness {
    VerilatedContext context;
    std::unique_ptr<Vtop> top;
    std::unique_ptr<AxiMemory> memory;
    LiteIn lite;
    long cycle = 0;
    std::vector<Bandwidth> read_bw, write_bw;  // per port, during a `run`
    bool measuring = false;
    std::vector<std::string> reset_violations;
#ifdef NPUFORGE_TRACE
    std::unique_ptr<VerilatedVcdC> vcd;
#endif

    Harness() {
#ifdef NPUFORGE_TRACE
        context.traceEverOn(true);
#endif
        top.reset(new Vtop{&context, "TOP"});
    }

    void dump(int phase) {
#ifdef NPUFORGE_TRACE
        if (vcd) vcd->dump(static_cast<uint64_t>(cycle) * 10 + phase);
#else
        (void)phase;
#endif
    }

    // One clock cycle: drive with the clock low, settle, let the memory see the handshakes, rising edge.
    void step() {
        CLOCK_PORT(top) = 0;
        AxiMasterIn in[N_PORTS > 0 ? N_PORTS : 1];
        for (int p = 0; p < N_PORTS; ++p) {
            memory->drive(p, in[p]);
            axi_drive(top.get(), p, in[p]);
        }
        lite_drive(top.get(), lite);
        top->eval();
        dump(0);
        bool in_reset = DESIGN_RESET_PORT(top) == RESET_ACTIVE;  // the reset the design sees
        for (int p = 0; p < N_PORTS; ++p) {
            AxiMasterOut out;
            axi_sample(top.get(), p, out);
            if (in_reset) {
                if ((out.arvalid || out.awvalid || out.wvalid) && reset_violations.size() < 10)
                    reset_violations.push_back("cycle " + std::to_string(cycle) + " port " + std::to_string(p) +
                                               ": a VALID is high during reset");
            } else {
                memory->commit(p, out);
            }
        }
        CLOCK_PORT(top) = 1;
        top->eval();
        dump(5);
        memory->tick();
        ++cycle;
        if (measuring) {
            for (int p = 0; p < N_PORTS; ++p) {
                read_bw[p].sample(memory->read_bytes(p));
                write_bw[p].sample(memory->write_beat_bytes(p));
            }
        }
    }

    LiteOut lite_out() {
        LiteOut o;
        CLOCK_PORT(top) = 0;
        lite_drive(top.get(), lite);
        top->eval();
        lite_sample(top.get(), o);
        return o;
    }

    void reset(int n) {
        RESET_PORT(top) = RESET_ACTIVE;
        lite = LiteIn();
        for (int i = 0; i < n; ++i) step();
        RESET_PORT(top) = !RESET_ACTIVE;
        step();  // the reset register lets go: the design was in reset for the last n cycles, and is out now
        memory->drop_in_flight();
    }

    void write(uint64_t addr, uint32_t value, long limit) {
        lite = LiteIn();
        lite.awaddr = addr; lite.awvalid = true; lite.wdata = value; lite.wvalid = true; lite.bready = true;
        long start = cycle;
        bool aw = false, w = false;
        while (true) {
            LiteOut o = lite_out();
            bool aw_now = lite.awvalid && o.awready, w_now = lite.wvalid && o.wready, b_now = o.bvalid && lite.bready;
            step();
            aw |= aw_now; w |= w_now;
            if (aw_now) lite.awvalid = false;
            if (w_now) lite.wvalid = false;
            if (b_now && aw && w) break;
            if (cycle - start > limit) fail("the register write to " + std::to_string(addr) + " got no response");
        }
        lite = LiteIn();
    }

    uint32_t read(uint64_t addr, long limit, uint32_t* resp) {
        lite = LiteIn();
        lite.araddr = addr; lite.arvalid = true; lite.rready = true;
        long start = cycle;
        while (true) {
            LiteOut o = lite_out();
            bool ar_now = lite.arvalid && o.arready, r_now = o.rvalid && lite.rready;
            uint32_t data = o.rdata, rr = o.rresp;
            step();
            if (ar_now) lite.arvalid = false;
            if (r_now) { lite = LiteIn(); *resp = rr; return data; }
            if (cycle - start > limit) fail("the register read of " + std::to_string(addr) + " got no response");
        }
    }
};

int main(int argc, char** argv) {
    if (argc != 2) fail("usage: accel SPEC | accel -");
    bool interactive = std::string(argv[1]) == "-";
    std::ifstream file;
    if (!interactive) {
        file.open(argv[1]);
        if (!file) fail(std::string("cannot open ") + argv[1]);
    }
    std::istream& spec = interactive ? std::cin : static_cast<std::istream&>(file);
    std::string word;
    int version = 0;
    if (!(spec >> word >> version) || word != "npuforge-accel-spec" || version != 1)
        fail("not a version 1 npuforge-accel-spec file");
    Harness h;
    MemoryTiming timing;
    uint64_t base = 0, size = 0;
    long timeout = 10000000;
    bool started = false;
    auto clock_start = std::chrono::steady_clock::now();
    long run_cycles = 0;
    while (spec >> word) {
        if (word == "memory") {
            spec >> base >> size;
        } else if (word == "timing") {
            spec >> timing.read_latency >> timing.write_latency >> timing.bytes_per_cycle >> timing.stall >>
                timing.seed >> timing.max_reads >> timing.max_writes;
        } else if (word == "timeout") {
            spec >> timeout;
        } else if (!started && (word == "load" || word == "write" || word == "read" || word == "run" ||
                                word == "cycles" || word == "reset" || word == "dump" || word == "trace" ||
                                word == "sync" || word == "bandwidth")) {
            if (!size) fail("no memory line before the first command");
            h.memory.reset(new AxiMemory(base, size, N_PORTS, DATA_BYTES, timing));
            CLOCK_PORT(h.top) = 0;
            h.top->eval();
            h.reset(4);
            started = true;
        }
        if (!started) continue;
        if (word == "load") {
            uint64_t addr;
            std::string path;
            spec >> addr >> path;
            std::ifstream in(path, std::ios::binary);
            if (!in) fail("cannot open " + path);
            std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            if (!h.memory->inside(addr, bytes.size())) fail("load of " + path + " outside the memory");
            std::memcpy(h.memory->at(addr), bytes.data(), bytes.size());
        } else if (word == "write") {
            uint64_t addr, value;
            spec >> addr >> value;
            h.write(addr, static_cast<uint32_t>(value), 1000);
        } else if (word == "read") {
            uint64_t addr;
            uint32_t resp = 0;
            spec >> addr;
            uint32_t value = h.read(addr, 1000, &resp);
            std::printf("csr %llu %u %u\n", static_cast<unsigned long long>(addr), value, resp);
        } else if (word == "run") {
            long start = h.cycle;
            bool irq = false;
            h.read_bw.assign(N_PORTS, Bandwidth());
            h.write_bw.assign(N_PORTS, Bandwidth());
            for (int p = 0; p < N_PORTS; ++p) {
                h.read_bw[p].begin(h.memory->read_bytes(p));
                h.write_bw[p].begin(h.memory->write_beat_bytes(p));
            }
            h.measuring = true;
            while (h.cycle - start < timeout) {
                CLOCK_PORT(h.top) = 0;
                h.top->eval();
                if (IRQ_PORT(h.top)) { irq = true; break; }
                h.step();
            }
            h.measuring = false;
            run_cycles += h.cycle - start;
            std::printf("run %ld %d\n", h.cycle - start, irq ? 1 : 0);
        } else if (word == "bandwidth") {
            std::printf("bandwidth %d", BANDWIDTH_WINDOW);
            for (int p = 0; p < N_PORTS && p < static_cast<int>(h.read_bw.size()); ++p)
                std::printf(" %llu %llu %llu %llu", static_cast<unsigned long long>(h.read_bw[p].bytes()),
                            static_cast<unsigned long long>(h.write_bw[p].bytes()),
                            static_cast<unsigned long long>(h.read_bw[p].peak),
                            static_cast<unsigned long long>(h.write_bw[p].peak));
            std::printf("\n");
        } else if (word == "cycles") {
            long n;
            spec >> n;
            for (long i = 0; i < n; ++i) h.step();
        } else if (word == "reset") {
            int n;
            spec >> n;
            h.reset(n);
        } else if (word == "trace") {
            std::string path;
            spec >> path;
#ifdef NPUFORGE_TRACE
            h.vcd.reset(new VerilatedVcdC);
            h.top->trace(h.vcd.get(), 99);
            h.vcd->open(path.c_str());
#else
            fail("trace needs a harness built with tracing");
#endif
        } else if (word == "dump") {
            uint64_t addr, bytes;
            std::string path;
            spec >> addr >> bytes >> path;
            if (!h.memory->inside(addr, bytes)) fail("dump outside the memory");
            std::ofstream out(path, std::ios::binary);
            out.write(reinterpret_cast<const char*>(h.memory->at(addr)), static_cast<std::streamsize>(bytes));
            if (!out) fail("cannot write " + path);
        } else if (word == "sync") {
            std::printf("sync\n");
        } else if (word != "memory" && word != "timing" && word != "timeout") {
            fail("unknown command " + word);
        }
        if (interactive) std::fflush(stdout);
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - clock_start).count();
    int bad = 0;
    if (h.memory) {
        for (const std::string& v : h.memory->violations()) { std::printf("violation %s\n", v.c_str()); ++bad; }
        for (const std::string& v : h.reset_violations) { std::printf("violation %s\n", v.c_str()); ++bad; }
        for (int p = 0; p < N_PORTS; ++p)
            std::printf("port %d %llu %llu\n", p, static_cast<unsigned long long>(h.memory->read_bytes(p)),
                        static_cast<unsigned long long>(h.memory->write_bytes(p)));
    }
    std::printf("total_cycles %ld\nrun_cycles %ld\nseconds %.6f\n", h.cycle, run_cycles, seconds);
#ifdef NPUFORGE_TRACE
    if (h.vcd) h.vcd->close();
#endif
    return bad ? 1 : 0;
}
