// npuforge fault-injection harness: one Verilated design, many injections per process.
//
// The design-specific glue (port names, fault-site names) is generated into
// "design.h" by sim/fault/harness/__init__.py; this file is the same for every
// design. Commands (see usage()):
//   reference SPEC MAX [F]    run the workload fault-free (or with one fault F), print cycles and beats
//   run SPEC WINDOW TIMEOUT   read faults from stdin, print one result line per fault
//   freerun SPEC REPEAT       time REPEAT fault-free runs (bench: cycles per second)
//
// After the last expected output beat a run goes on (the "tail"), so that a beat the
// design sends after the expected ones is seen: until the model is quiescent (a cycle
// with no transfer leaves its whole state unchanged: its inputs are then the same in
// the next cycle, so nothing changes or leaves ever again), or until its state equals
// the fault-free state of the same cycle, or until the cycle limit (the timeout).
//
// Protocol model: every sink interface (the design consumes it) offers its next
// beat in every cycle (valid stays high while beats remain) and a beat moves
// when ready is high; every source interface (the design produces it) is always
// ready. Cycle 0 is the first cycle after reset is released. A fault at cycle c
// is applied while the clock is low, before the inputs of cycle c settle, so
// the rising edge that ends cycle c sees the flipped value (as the cocotb
// testbench's BitFlips does).

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "Vtop.h"
#include "Vtop___024root.h"
#include "verilated.h"
#include "verilated_syms.h"

#include "port_words.h"

#include "design.h"

[[noreturn]] static void fail(const std::string& message) {
    std::fprintf(stderr, "harness: %s\n", message.c_str());
    std::exit(2);
}

// ---------------------------------------------------------------- the workload spec

struct Field {  // one element field of an output payload
    int offset, width, is_signed, count, stride;
};

struct Spec {
    std::vector<std::vector<uint32_t>> sink_beats[N_SINKS > 0 ? N_SINKS : 1];
    std::vector<std::vector<uint32_t>> expected[N_SOURCES > 0 ? N_SOURCES : 1];
    std::vector<Field> fields[N_SOURCES > 0 ? N_SOURCES : 1];
};

static std::vector<uint32_t> parse_hex(const char* text, int words) {
    std::vector<uint32_t> out(words, 0);
    int len = static_cast<int>(std::strlen(text));
    for (int i = 0; i < len; ++i) {  // i-th hex digit from the right
        char ch = text[len - 1 - i];
        int v = (ch >= '0' && ch <= '9') ? ch - '0' : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10 : -1;
        if (v < 0) fail(std::string("bad hex digit in '") + text + "'");
        if (i / 8 >= words) {
            if (v) fail(std::string("value wider than its port: ") + text);
            continue;
        }
        out[i / 8] |= static_cast<uint32_t>(v) << (4 * (i % 8));
    }
    return out;
}

static Spec read_spec(const char* path) {
    FILE* f = std::fopen(path, "r");
    if (!f) fail(std::string("cannot open ") + path);
    Spec spec;
    char word[64], hex[4096];
    int version = 0;
    if (std::fscanf(f, "%63s %d", word, &version) != 2 || std::strcmp(word, "npuforge-fault-spec") || version != 1)
        fail("not a version 1 npuforge-fault-spec file");
    int index, count, nfields;
    while (std::fscanf(f, "%63s", word) == 1) {
        if (word[0] == '#') {  // a comment, to the end of its line
            int ch;
            while ((ch = std::fgetc(f)) != EOF && ch != '\n') {}
        } else if (!std::strcmp(word, "sink")) {
            if (std::fscanf(f, "%d %d", &index, &count) != 2 || index < 0 || index >= N_SINKS) fail("bad sink line");
            for (int i = 0; i < count; ++i) {
                if (std::fscanf(f, "%4095s", hex) != 1) fail("short sink beats");
                spec.sink_beats[index].push_back(parse_hex(hex, SINK_WORDS[index]));
            }
        } else if (!std::strcmp(word, "source")) {
            if (std::fscanf(f, "%d %d %d", &index, &count, &nfields) != 3 || index < 0 || index >= N_SOURCES)
                fail("bad source line");
            for (int i = 0; i < nfields; ++i) {
                Field fd;
                if (std::fscanf(f, "%d %d %d %d %d", &fd.offset, &fd.width, &fd.is_signed, &fd.count, &fd.stride) != 5)
                    fail("bad field");
                if (fd.width < 1 || fd.width > 62) fail("element fields must be 1..62 bits wide");
                spec.fields[index].push_back(fd);
            }
            for (int i = 0; i < count; ++i) {
                if (std::fscanf(f, "%4095s", hex) != 1) fail("short expected beats");
                spec.expected[index].push_back(parse_hex(hex, SOURCE_WORDS[index]));
            }
        } else {
            fail(std::string("unknown spec line ") + word);
        }
    }
    std::fclose(f);
    return spec;
}

// ---------------------------------------------------------------- fault sites

struct Site {
    uint8_t* data;      // first byte of the variable
    uint32_t ent_size;  // bytes per word
    int width;          // bits per word
    int depth;          // words (1 for a register)
    int low;            // index of the first word (memories)
};

static std::vector<Site> resolve_sites() {
    std::vector<Site> sites;
    for (int i = 0; i < N_SITES; ++i) {
        const VerilatedScope* scope = Verilated::threadContextp()->scopeFind(SITE_SCOPE[i]);
        if (!scope) fail(std::string("no scope ") + SITE_SCOPE[i] + " for fault site " + std::to_string(i));
        VerilatedVar* var = scope->varFind(SITE_VAR[i]);
        if (!var) fail(std::string("no variable ") + SITE_VAR[i] + " in " + SITE_SCOPE[i]);
        Site s;
        s.data = static_cast<uint8_t*>(var->datap());
        s.ent_size = var->entSize();
        s.width = static_cast<int>(var->entBits());
        s.depth = var->udims() ? var->elements(1) : 1;
        s.low = var->udims() ? var->low(1) : 0;
        if (s.width != SITE_WIDTH[i] || s.depth != SITE_DEPTH[i] || var->udims() > 1)
            fail(std::string("fault site ") + SITE_SCOPE[i] + "." + SITE_VAR[i] + ": Verilator has width " +
                 std::to_string(s.width) + " depth " + std::to_string(s.depth) + ", the manifest says " +
                 std::to_string(SITE_WIDTH[i]) + " x " + std::to_string(SITE_DEPTH[i]));
        sites.push_back(s);
    }
    return sites;
}

// Invert bits [bit, bit + width) of one word (bits past the word's width stay).
static void flip(const Site& s, int word, int bit, int width) {
    uint8_t* base = s.data + static_cast<std::size_t>(word - s.low) * s.ent_size;
    int end = bit + width < s.width ? bit + width : s.width;
    for (int b = bit; b < end; ++b) {
        if (s.ent_size <= 8) {  // CData/SData/IData/QData: one little-endian integer
            base[b / 8] ^= static_cast<uint8_t>(1u << (b % 8));
        } else {  // VlWide: 32-bit words, least significant first (little-endian host)
            reinterpret_cast<uint32_t*>(base)[b / 32] ^= 1u << (b % 32);
        }
    }
}

// ---------------------------------------------------------------- the simulation

struct Progress {  // harness-side state of one run, besides the model
    int sent[N_SINKS > 0 ? N_SINKS : 1];
    int received[N_SOURCES > 0 ? N_SOURCES : 1];
    uint32_t alarms;
    int differing;       // elements that differ so far (beats compared on arrival)
    int64_t max_abs;     // largest difference so far
    bool beats_differ;   // some received beat differs from the expected one
    int last_beat_cycle; // cycle of the latest output beat
};

// Output beats past the expected ones (they arrive in the tail).
static int extra_beats(const Spec& spec, const Progress& p) {
    int extra = 0;
    for (int i = 0; i < N_SOURCES; ++i)
        extra += std::max(0, p.received[i] - static_cast<int>(spec.expected[i].size()));
    return extra;
}

static int64_t element(const std::vector<uint32_t>& beat, int offset, int width, int is_signed) {
    uint64_t v = 0;
    for (int b = 0; b < width; ++b) {
        int at = offset + b;
        v |= static_cast<uint64_t>((beat[at / 32] >> (at % 32)) & 1u) << b;
    }
    if (is_signed && (v >> (width - 1)) & 1u) return static_cast<int64_t>(v) - (static_cast<int64_t>(1) << width);
    return static_cast<int64_t>(v);
}

static int elements_per_beat(const std::vector<Field>& fields) {
    int n = 0;
    for (const Field& fd : fields) n += fd.count;
    return n;
}

// Compare one output beat with the expected one; a beat that differs only outside
// the element fields (a wrong `last`, say) counts as one differing element.
static void compare_beat(const Spec& spec, int src, int n, const std::vector<uint32_t>& got, Progress& p) {
    if (n >= static_cast<int>(spec.expected[src].size())) {  // an extra beat: all its elements differ
        p.beats_differ = true;
        p.differing += elements_per_beat(spec.fields[src]);
        return;
    }
    const std::vector<uint32_t>& want = spec.expected[src][n];
    if (got == want) return;
    p.beats_differ = true;
    int before = p.differing;
    for (const Field& fd : spec.fields[src]) {
        for (int e = 0; e < fd.count; ++e) {
            int64_t a = element(got, fd.offset + e * fd.stride, fd.width, fd.is_signed);
            int64_t b = element(want, fd.offset + e * fd.stride, fd.width, fd.is_signed);
            if (a != b) {
                ++p.differing;
                int64_t d = a > b ? a - b : b - a;
                if (d > p.max_abs) p.max_abs = d;
            }
        }
    }
    if (p.differing == before) ++p.differing;
}

struct Sim {
    VerilatedContext context;
    std::unique_ptr<Vtop> top;
    const Spec& spec;
    std::vector<uint32_t> scratch[N_SOURCES > 0 ? N_SOURCES : 1];
    std::vector<std::vector<uint32_t>> captured[N_SOURCES > 0 ? N_SOURCES : 1];  // reference mode only
    bool capture = false;

    std::vector<uint8_t> power_on;  // the model's state after its initial evaluation
    std::vector<uint8_t> before;    // the model's state at the start of the cycle `still_cycle` runs

    explicit Sim(const Spec& s) : spec(s) {
        top.reset(new Vtop{&context, "TOP"});
        for (int i = 0; i < N_SOURCES; ++i) scratch[i].assign(SOURCE_WORDS[i], 0);
        CLOCK_PORT(top) = 0;
        top->eval();  // initial blocks and register initial values
        power_on.resize(sizeof(Vtop___024root));
        std::memcpy(power_on.data(), static_cast<void*>(top->rootp), power_on.size());
        before.resize(power_on.size());
    }

    // From the power-on state (so nothing a previous run left, such as a flipped memory
    // word that reset does not clear, carries over), hold reset for two rising edges;
    // return with the clock low, reset released: the start of cycle 0.
    void reset(Progress& p) {
        std::memcpy(static_cast<void*>(top->rootp), power_on.data(), power_on.size());
        std::memset(&p, 0, sizeof p);
        p.last_beat_cycle = -1;
        for (int i = 0; i < N_SINKS; ++i) sink_drive(top.get(), i, false, ZERO_WORDS);
        for (int i = 0; i < N_SOURCES; ++i) source_ready(top.get(), i, true);
        RESET_PORT(top) = RESET_ACTIVE;
        for (int i = 0; i < 2; ++i) {
            CLOCK_PORT(top) = 0;
            top->eval();
            CLOCK_PORT(top) = 1;
            top->eval();
        }
        RESET_PORT(top) = !RESET_ACTIVE;
        for (int i = 0; i < N_SOURCES; ++i) captured[i].clear();
    }

    bool complete(const Progress& p) const {
        for (int i = 0; i < N_SOURCES; ++i)
            if (p.received[i] < static_cast<int>(spec.expected[i].size())) return false;
        return true;
    }

    // One clock cycle: settle this cycle's inputs with the clock low, record the
    // transfers, then the rising edge.
    void cycle(int c, Progress& p) {
        CLOCK_PORT(top) = 0;
        for (int i = 0; i < N_SINKS; ++i) {
            const auto& beats = spec.sink_beats[i];
            bool valid = p.sent[i] < static_cast<int>(beats.size());
            sink_drive(top.get(), i, valid, valid ? beats[p.sent[i]].data() : ZERO_WORDS);
        }
        top->eval();
        for (int i = 0; i < N_SINKS; ++i)
            if (p.sent[i] < static_cast<int>(spec.sink_beats[i].size()) && sink_ready(top.get(), i)) ++p.sent[i];
        for (int i = 0; i < N_SOURCES; ++i) {
            if (!source_valid(top.get(), i)) continue;
            source_payload(top.get(), i, scratch[i].data());
            compare_beat(spec, i, p.received[i], scratch[i], p);
            if (capture) captured[i].push_back(scratch[i]);
            ++p.received[i];
            p.last_beat_cycle = c;
        }
        p.alarms |= alarm_bits(top.get());
        CLOCK_PORT(top) = 1;
        top->eval();
    }

    // One cycle (as `cycle`); true if it moved no beat and left the model's whole state as it
    // found it: then the model is quiescent (every later cycle repeats this one).
    bool still_cycle(int c, Progress& p) {
        std::memcpy(before.data(), static_cast<void*>(top->rootp), before.size());
        Progress q = p;
        cycle(c, p);
        return std::memcmp(q.sent, p.sent, sizeof p.sent) == 0 &&
               std::memcmp(q.received, p.received, sizeof p.received) == 0 &&
               std::memcmp(before.data(), static_cast<void*>(top->rootp), before.size()) == 0;
    }
};

static void print_hex(const std::vector<uint32_t>& words) {
    int top = static_cast<int>(words.size()) - 1;
    while (top > 0 && words[top] == 0) --top;
    std::printf("%x", words[top]);
    for (int i = top - 1; i >= 0; --i) std::printf("%08x", words[i]);
}

// ---------------------------------------------------------------- commands

// Run the workload once, with at most one fault, and print what came out.
static int cmd_reference(const Spec& spec, long max_cycles, const int* fault) {
    Sim sim(spec);
    sim.capture = true;
    std::vector<Site> sites;
    if (fault) {
        sites = resolve_sites();
        if (fault[0] < 0 || fault[0] >= N_SITES) fail("fault site index out of range");
    }
    Progress p;
    sim.reset(p);
    long c = 0;
    for (; c < max_cycles && !sim.complete(p); ++c) {
        if (fault && c == fault[4]) flip(sites[fault[0]], fault[3], fault[1], fault[2]);
        sim.cycle(static_cast<int>(c), p);
    }
    // The tail (the fault, in the window, lies behind): beats after the expected ones are captured too.
    bool quiet = false;
    while (c < max_cycles && !quiet) quiet = sim.still_cycle(static_cast<int>(c++), p);
    std::printf("complete %d\ncycles %d\nalarms %x\nquiet %ld\n", sim.complete(p) ? 1 : 0, p.last_beat_cycle + 1,
                p.alarms, quiet ? c - 1 : -1L);
    for (int i = 0; i < N_SOURCES; ++i) {
        std::printf("source %d %zu\n", i, sim.captured[i].size());
        for (const auto& beat : sim.captured[i]) {
            print_hex(beat);
            std::printf("\n");
        }
    }
    return 0;
}

static int cmd_freerun(const Spec& spec, long repeat) {
    Sim sim(spec);
    Progress p;
    long cycles = 0;
    std::clock_t cpu_start = std::clock();
    auto start = std::chrono::steady_clock::now();
    for (long r = 0; r < repeat; ++r) {
        sim.reset(p);
        for (int c = 0; !sim.complete(p); ++c) {
            sim.cycle(c, p);
            ++cycles;
        }
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double cpu_seconds = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
    std::printf("cycles %ld\nseconds %.9f\ncpu_seconds %.9f\nstate_bytes %zu\n", cycles, seconds, cpu_seconds,
                sizeof(Vtop___024root));
    return 0;
}

struct Fault {
    int site, bit, width, word, cycle, order;
};

// The fault-free trajectory: the model and harness state at the start of every
// `stride`-th cycle of the window and of the tail (before that cycle's faults and inputs).
struct Checkpoints {
    int stride = 1;
    std::size_t root_size = sizeof(Vtop___024root);
    std::vector<uint8_t> roots;  // bytewise copies of the model's root: one instance, so no pointer changes
    std::vector<Progress> progress;
    const void* root(int k) const { return roots.data() + static_cast<std::size_t>(k) * root_size; }
};

static int cmd_run(const Spec& spec, long expected_window, long timeout, bool use_checkpoints, bool early_stop) {
    std::vector<Fault> faults;
    Fault f;
    while (std::scanf("%d %d %d %d %d", &f.site, &f.bit, &f.width, &f.word, &f.cycle) == 5) {
        f.order = static_cast<int>(faults.size());
        faults.push_back(f);
    }
    Sim sim(spec);
    std::vector<Site> sites = resolve_sites();
    for (const Fault& x : faults) {
        if (x.site < 0 || x.site >= N_SITES) fail("fault site index out of range");
        const Site& s = sites[x.site];
        if (x.bit < 0 || x.bit >= s.width || x.width < 1 || x.word < s.low || x.word >= s.low + s.depth || x.cycle < 0)
            fail("fault out of range");
    }

    // Fault-free run: the window, the tail and (optionally) the trajectory.
    Progress p;
    sim.reset(p);
    Vtop___024root* root = sim.top->rootp;
    const std::size_t root_size = sizeof(Vtop___024root);
    Checkpoints cp;
    int window = 0;
    // The cycle from whose start on the fault-free model is quiescent (`timeout` if it is not by then).
    int settle = 0;
    {
        Progress q = p;
        int c = 0;
        while (!sim.complete(q) && c < expected_window) sim.cycle(c++, q);
        if (!sim.complete(q) || q.beats_differ || q.last_beat_cycle + 1 != expected_window)
            fail("the fault-free run does not reproduce the reference outputs and cycle count");
        window = q.last_beat_cycle + 1;
        bool quiet = false;
        while (c < timeout && !quiet) quiet = sim.still_cycle(c++, q);
        settle = quiet ? c - 1 : c;
        if (extra_beats(spec, q) || q.alarms)
            fail("the fault-free run sends a beat after the expected ones or raises an alarm before it is quiescent");
    }
    // A run that rejoins the reference completes when it does, at `window`: only masked if that is in time.
    if (window > timeout) early_stop = false;
    // Checkpoints cover the window, and with early stop the fault-free tail up to `settle` as well.
    const int span = early_stop ? std::max(settle, window) : window;
    bool checkpoints = use_checkpoints || early_stop;
    if (checkpoints) {
        // Keep every cycle's state unless that needs more than `budget` bytes.
        const std::size_t budget = 256u << 20;
        std::size_t per = root_size + sizeof(Progress);
        cp.stride = static_cast<int>((static_cast<std::size_t>(span + 1) * per + budget - 1) / budget);
        if (cp.stride < 1) cp.stride = 1;
        sim.reset(p);
        int n = span / cp.stride + 1;
        cp.roots.resize(static_cast<std::size_t>(n) * root_size);
        for (int c = 0; c <= span; ++c) {
            if (c % cp.stride == 0) {
                std::memcpy(cp.roots.data() + (c / cp.stride) * root_size, static_cast<void*>(root), root_size);
                cp.progress.push_back(p);
            }
            if (c < span) sim.cycle(c, p);
        }
    }

    // Faults run in cycle order (checkpoints are then read in order); results print in input order.
    std::vector<int> by_cycle(faults.size());
    for (std::size_t i = 0; i < faults.size(); ++i) by_cycle[i] = static_cast<int>(i);
    std::stable_sort(by_cycle.begin(), by_cycle.end(),
                     [&](int a, int b) { return faults[a].cycle < faults[b].cycle; });

    struct Out { int status, cycles, differing; int64_t max_abs; uint32_t alarms; long stepped; int early, extra; };
    std::vector<Out> results(faults.size());
    for (int idx : by_cycle) {
        const Fault& x = faults[idx];
        long stepped = 0;
        int c = 0;
        if (use_checkpoints && x.cycle <= window) {
            int k = x.cycle / cp.stride;
            std::memcpy(static_cast<void*>(root), cp.root(k), root_size);
            p = cp.progress[k];
            c = k * cp.stride;
        } else {
            sim.reset(p);
        }
        for (; c < x.cycle && !sim.complete(p); ++c, ++stepped) sim.cycle(c, p);
        if (c == x.cycle) flip(sites[x.site], x.word, x.bit, x.width);
        Out out{0, 0, 0, 0, 0, 0, 0, 0};
        bool masked_early = false;
        for (; c < timeout && !sim.complete(p); ++c, ++stepped) {
            if (early_stop && c > x.cycle && c < window && c % cp.stride == 0 && !p.beats_differ && !p.alarms) {
                int k = c / cp.stride;
                const Progress& r = cp.progress[k];
                if (std::memcmp(r.sent, p.sent, sizeof p.sent) == 0 &&
                    std::memcmp(r.received, p.received, sizeof p.received) == 0 &&
                    std::memcmp(static_cast<void*>(root), cp.root(k), root_size) == 0) {
                    masked_early = true;
                    break;
                }
            }
            sim.cycle(c, p);
        }
        if (!masked_early && sim.complete(p)) {
            // The tail: every expected beat is in; watch for more until the timeout. With early stop,
            // end it once the run is quiescent, or once its state and inputs equal the fault-free ones
            // of the same cycle after the window (from there on it is the fault-free run, which sends
            // nothing more).
            for (bool quiet = false; c < timeout && !quiet; ++c, ++stepped) {
                if (!early_stop) {
                    sim.cycle(c, p);
                    continue;
                }
                if (c >= window && c <= span && c % cp.stride == 0) {
                    int k = c / cp.stride;
                    if (std::memcmp(cp.progress[k].sent, p.sent, sizeof p.sent) == 0 &&
                        std::memcmp(static_cast<void*>(root), cp.root(k), root_size) == 0)
                        break;
                }
                quiet = sim.still_cycle(c, p);
            }
        }
        if (masked_early) {
            out = Out{0, window, 0, 0, 0, stepped, 1, 0};
        } else if (!sim.complete(p)) {
            out = Out{2, static_cast<int>(timeout), 0, 0, p.alarms, stepped, 0, 0};
            // Missing beats: every element of them differs.
            int differing = p.differing;
            for (int i = 0; i < N_SOURCES; ++i)
                differing += (static_cast<int>(spec.expected[i].size()) - p.received[i]) *
                             elements_per_beat(spec.fields[i]);
            out.differing = differing;
            out.max_abs = p.max_abs;
        } else {
            out = Out{p.beats_differ ? 1 : 0, p.last_beat_cycle + 1, p.differing, p.max_abs, p.alarms, stepped, 0,
                      extra_beats(spec, p)};
        }
        results[idx] = out;
    }
    for (const Out& o : results)
        std::printf("%d %d %d %lld %x %ld %d %d\n", o.status, o.cycles, o.differing, static_cast<long long>(o.max_abs),
                    o.alarms, o.stepped, o.early, o.extra);
    return 0;
}

static void usage() {
    fail("usage: harness reference SPEC MAX_CYCLES [SITE BIT WIDTH WORD CYCLE]"
         " | run SPEC WINDOW TIMEOUT_CYCLES [--no-checkpoints] [--no-early-stop]"
         " | freerun SPEC REPEAT");
}

int main(int argc, char** argv) {
    if (argc < 4) usage();
    std::string command = argv[1];
    Spec spec = read_spec(argv[2]);
    long number = std::strtol(argv[3], nullptr, 10);
    if (command == "reference") {
        if (argc == 4) return cmd_reference(spec, number, nullptr);
        if (argc != 9) usage();
        int fault[5];
        for (int i = 0; i < 5; ++i) fault[i] = std::atoi(argv[4 + i]);
        return cmd_reference(spec, number, fault);
    }
    if (command == "freerun") return cmd_freerun(spec, number);
    if (command == "run") {
        if (argc < 5) usage();
        long timeout = std::strtol(argv[4], nullptr, 10);
        bool checkpoints = true, early = true;
        for (int i = 5; i < argc; ++i) {
            if (!std::strcmp(argv[i], "--no-checkpoints")) checkpoints = false;
            else if (!std::strcmp(argv[i], "--no-early-stop")) early = false;
            else usage();
        }
        return cmd_run(spec, number, timeout, checkpoints, early);
    }
    usage();
}
