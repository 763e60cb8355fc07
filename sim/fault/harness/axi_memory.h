// A DRAM model behind AXI4 master ports, for the accelerator's fast harness (accel.cpp).
//
// One byte array serves every port. Per port: read and write address queues, a read
// latency (cycles from an accepted AR to its first R beat), a bandwidth (bytes per
// cycle of R data and of W data), seeded random stalls on every channel (AR/AW/W
// ready low, R/B valid withheld), and a checker of the AXI rules the accelerator
// must keep (INCR bursts of 1..256 beats, full-width beats, aligned addresses, no
// burst across 4 KB, at most the configured bursts in flight, W beats matching
// AWLEN with WLAST on the last, VALID held until the handshake with a stable
// payload). Addresses outside [base, base + size) answer DECERR (reads return
// zeros, writes are dropped).
#pragma once

#include <cstdint>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <vector>

struct AxiMasterOut {  // what the accelerator drives on one port, sampled each cycle
    uint64_t awaddr = 0; uint32_t awlen = 0, awsize = 0, awburst = 0; bool awvalid = false;
    uint32_t wdata[16] = {0}; uint64_t wstrb = 0; bool wlast = false, wvalid = false;
    bool bready = false;
    uint64_t araddr = 0; uint32_t arlen = 0, arsize = 0, arburst = 0; bool arvalid = false;
    bool rready = false;
};

struct AxiMasterIn {  // what the memory drives back
    bool awready = false, wready = false, bvalid = false; uint32_t bresp = 0;
    bool arready = false, rvalid = false; uint32_t rdata[16] = {0}; uint32_t rresp = 0; bool rlast = false;
};

struct MemoryTiming {
    int read_latency = 20;     // cycles from AR accepted to the first R beat
    int write_latency = 10;    // cycles from the last W beat (and its AW) to B
    double bytes_per_cycle = 0; // per port and direction; 0: a full beat every cycle
    double stall = 0.0;        // probability that a channel stalls in a cycle
    uint64_t seed = 1;
    int max_reads = 0, max_writes = 0;  // bursts in flight the checker allows (0: unchecked)
};

class AxiMemory {
  public:
    AxiMemory(uint64_t base, uint64_t size, int ports, int data_bytes, const MemoryTiming& timing)
        : base_(base), bytes_(size, 0), ports_(ports), data_bytes_(data_bytes), timing_(timing),
          rng_(timing.seed), state_(ports) {}

    uint8_t* at(uint64_t addr) { return &bytes_[addr - base_]; }
    bool inside(uint64_t addr, uint64_t len) const { return addr >= base_ && addr + len <= base_ + bytes_.size(); }
    uint64_t base() const { return base_; }
    uint64_t size() const { return bytes_.size(); }
    const std::vector<std::string>& violations() const { return violations_; }
    uint64_t read_bytes(int p) const { return state_[p].read_bytes; }
    uint64_t write_bytes(int p) const { return state_[p].write_bytes; }
    // Strobed bytes of the W beats taken so far (counted at the handshake, not when the burst is written).
    uint64_t write_beat_bytes(int p) const { return state_[p].write_beat_bytes; }

    // The memory's outputs for this cycle (before the accelerator's outputs settle).
    void drive(int p, AxiMasterIn& in) {
        Port& s = state_[p];
        in = AxiMasterIn();
        in.arready = !stall() && (timing_.max_reads == 0 || static_cast<int>(s.reads.size()) < 4 * timing_.max_reads);
        in.awready = !stall();
        s.credit_r = std::min(s.credit_r + rate(), 2.0 * data_bytes_);
        s.credit_w = std::min(s.credit_w + rate(), 2.0 * data_bytes_);
        in.wready = !stall() && s.credit_w >= data_bytes_;
        if (s.r_offer || (!s.reads.empty() && s.reads.front().ready_at <= cycle_ && s.credit_r >= data_bytes_ && !stall())) {
            Read& r = s.reads.front();
            s.r_offer = true;
            in.rvalid = true;
            in.rlast = r.beat == r.beats - 1;
            uint64_t addr = r.addr + static_cast<uint64_t>(r.beat) * data_bytes_;
            in.rresp = r.error ? 3 : 0;
            for (int b = 0; b < data_bytes_; ++b) {
                uint8_t byte = (!r.error && inside(addr + b, 1)) ? *at(addr + b) : 0;
                in.rdata[b / 4] |= static_cast<uint32_t>(byte) << (8 * (b % 4));
            }
        }
        if (s.b_offer || (!s.responses.empty() && s.responses.front().ready_at <= cycle_ && !stall())) {
            s.b_offer = true;
            in.bvalid = true;
            in.bresp = s.responses.front().error ? 3 : 0;
        }
        s.driven = in;
    }

    // The handshakes of this cycle, given the accelerator's settled outputs; called before the rising edge.
    void commit(int p, const AxiMasterOut& out) {
        Port& s = state_[p];
        const AxiMasterIn& in = s.driven;
        check_stable(p, out);
        if (out.arvalid && in.arready) {
            Read r{out.araddr, static_cast<int>(out.arlen) + 1, 0, cycle_ + timing_.read_latency, false};
            check_burst(p, "AR", out.araddr, out.arlen, out.arsize, out.arburst);
            r.error = !inside(out.araddr, static_cast<uint64_t>(r.beats) * data_bytes_);
            s.reads.push_back(r);
            if (timing_.max_reads && static_cast<int>(s.reads.size()) > timing_.max_reads)
                violation(p, "more read bursts in flight than max_reads");
        }
        if (in.rvalid && out.rready) {
            Read& r = s.reads.front();
            s.credit_r -= data_bytes_;
            s.read_bytes += data_bytes_;
            s.r_offer = false;
            if (++r.beat == r.beats) s.reads.pop_front();
        }
        if (out.awvalid && in.awready) {
            check_burst(p, "AW", out.awaddr, out.awlen, out.awsize, out.awburst);
            Write w{out.awaddr, static_cast<int>(out.awlen) + 1};
            s.writes.push_back(w);
            if (timing_.max_writes && static_cast<int>(s.writes.size() + s.responses.size()) > timing_.max_writes)
                violation(p, "more write bursts in flight than max_writes");
        }
        if (out.wvalid && in.wready) {
            s.credit_w -= data_bytes_;
            s.wbeats.push_back({});
            Beat& beat = s.wbeats.back();
            std::memcpy(beat.data, out.wdata, sizeof beat.data);
            beat.strb = out.wstrb;
            beat.last = out.wlast;
            uint64_t strobes = data_bytes_ >= 64 ? out.wstrb : out.wstrb & ((uint64_t{1} << data_bytes_) - 1);
            s.write_beat_bytes += static_cast<uint64_t>(__builtin_popcountll(strobes));
        }
        if (in.bvalid && out.bready) {
            s.responses.pop_front();
            s.b_offer = false;
        }
        // Bursts whose address and every data beat have arrived are written.
        while (!s.writes.empty() && static_cast<int>(s.wbeats.size()) >= s.writes.front().beats) {
            Write w = s.writes.front();
            s.writes.pop_front();
            bool error = !inside(w.addr, static_cast<uint64_t>(w.beats) * data_bytes_);
            for (int i = 0; i < w.beats; ++i) {
                Beat beat = s.wbeats.front();
                s.wbeats.pop_front();
                if (beat.last != (i == w.beats - 1)) violation(p, "WLAST not on the burst's last beat");
                for (int b = 0; b < data_bytes_; ++b) {
                    if (!((beat.strb >> b) & 1)) continue;
                    s.write_bytes += 1;
                    uint64_t addr = w.addr + static_cast<uint64_t>(i) * data_bytes_ + b;
                    if (!error) *at(addr) = static_cast<uint8_t>(beat.data[b / 4] >> (8 * (b % 4)));
                }
            }
            s.responses.push_back({cycle_ + timing_.write_latency, error});
        }
        s.last_out = out;
    }

    void tick() { ++cycle_; }

    // A reset of the system: what was in flight is gone (the memory keeps its contents).
    void drop_in_flight() {
        for (Port& s : state_) {
            s.reads.clear(); s.writes.clear(); s.wbeats.clear(); s.responses.clear();
            s.r_offer = s.b_offer = false;
            s.held_ar = s.held_aw = s.held_w = false;
        }
    }
    bool idle() const {
        for (const Port& s : state_)
            if (!s.reads.empty() || !s.writes.empty() || !s.wbeats.empty() || !s.responses.empty()) return false;
        return true;
    }

  private:
    struct Read { uint64_t addr; int beats, beat; long ready_at; bool error; };
    struct Write { uint64_t addr; int beats; };
    struct Beat { uint32_t data[16]; uint64_t strb; bool last; };
    struct Response { long ready_at; bool error; };
    struct Port {
        std::deque<Read> reads;
        std::deque<Write> writes;
        std::deque<Beat> wbeats;
        std::deque<Response> responses;
        double credit_r = 0, credit_w = 0;
        bool r_offer = false, b_offer = false;
        AxiMasterIn driven;
        AxiMasterOut last_out;
        bool held_ar = false, held_aw = false, held_w = false;
        uint64_t read_bytes = 0, write_bytes = 0, write_beat_bytes = 0;
    };

    double rate() const { return timing_.bytes_per_cycle > 0 ? timing_.bytes_per_cycle : data_bytes_; }
    bool stall() { return timing_.stall > 0 && uniform_(rng_) < timing_.stall; }

    void violation(int p, const std::string& what) {
        if (violations_.size() < 50)
            violations_.push_back("cycle " + std::to_string(cycle_) + " port " + std::to_string(p) + ": " + what);
    }

    void check_burst(int p, const char* ch, uint64_t addr, uint32_t len, uint32_t size, uint32_t burst) {
        if (burst != 1) violation(p, std::string(ch) + ": not an INCR burst");
        if ((1u << size) != static_cast<uint32_t>(data_bytes_)) violation(p, std::string(ch) + ": narrow beats");
        if (len > 255) violation(p, std::string(ch) + ": more than 256 beats");
        if (addr % data_bytes_) violation(p, std::string(ch) + ": address not aligned to the data width");
        uint64_t last = addr + static_cast<uint64_t>(len + 1) * data_bytes_ - 1;
        if ((addr >> 12) != (last >> 12)) violation(p, std::string(ch) + ": burst crosses a 4 KB boundary");
    }

    // A VALID that was high without its READY must stay high, its payload unchanged.
    void check_stable(int p, const AxiMasterOut& out) {
        Port& s = state_[p];
        const AxiMasterOut& o = s.last_out;
        if (s.held_ar && (!out.arvalid || out.araddr != o.araddr || out.arlen != o.arlen))
            violation(p, "AR withdrawn or changed before its handshake");
        if (s.held_aw && (!out.awvalid || out.awaddr != o.awaddr || out.awlen != o.awlen))
            violation(p, "AW withdrawn or changed before its handshake");
        if (s.held_w && (!out.wvalid || out.wstrb != o.wstrb || out.wlast != o.wlast ||
                         std::memcmp(out.wdata, o.wdata, sizeof out.wdata) != 0))
            violation(p, "W withdrawn or changed before its handshake");
        s.held_ar = out.arvalid && !s.driven.arready;
        s.held_aw = out.awvalid && !s.driven.awready;
        s.held_w = out.wvalid && !s.driven.wready;
    }

    uint64_t base_;
    std::vector<uint8_t> bytes_;
    int ports_, data_bytes_;
    MemoryTiming timing_;
    std::mt19937_64 rng_;
    std::uniform_real_distribution<double> uniform_{0.0, 1.0};
    std::vector<Port> state_;
    std::vector<std::string> violations_;
    long cycle_ = 0;
};
