// npuforge toggle-activity run: the fault harness's simulation loop, fault-free, with
// Verilator's toggle coverage counting every signal bit's changes.
//
// Built by sim/energy.py with `verilator --coverage-toggle` together with the fault
// harness's harness.cpp (its `main` renamed away here) and its generated design.h, so
// the workload spec, the stream protocol and the output check are exactly the fault
// harness's: every sink offers its next beat in every cycle, every source is ready.
//
//   energy SPEC MAX_CYCLES COVERAGE_FILE
//
// The counters are zeroed when reset is released, so COVERAGE_FILE (Verilator's
// coverage.dat format) holds the toggles of cycles 0 .. last output beat only; the
// run stops at the last expected output beat. Prints `complete`, `cycles` (cycle 0 to
// the last output beat) and `differ` (1 when an output beat differed from the spec).

#define main fault_harness_main
#include "harness.cpp"
#undef main

#include "verilated_cov.h"

int main(int argc, char** argv) {
    if (argc != 4) fail("usage: energy SPEC MAX_CYCLES COVERAGE_FILE");
    Spec spec = read_spec(argv[1]);
    long max_cycles = std::strtol(argv[2], nullptr, 10);
    Sim sim(spec);
    Progress p;
    sim.reset(p);
    sim.context.coveragep()->zero();  // power-on and reset are not part of the workload
    long c = 0;
    for (; c < max_cycles && !sim.complete(p); ++c) sim.cycle(static_cast<int>(c), p);
    sim.context.coveragep()->write(argv[3]);
    std::printf("complete %d\ncycles %d\ndiffer %d\n", sim.complete(p) ? 1 : 0, p.last_beat_cycle + 1,
                p.beats_differ ? 1 : 0);
    return 0;
}
