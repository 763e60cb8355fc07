// Port words: copy between a Verilated port of any width and little-endian 32-bit words.
// Shared by the fault harness (harness.cpp), the accelerator's harness (accel.cpp) and the
// energy proxy's model (sim/energy.py), which all move port values as word arrays.
#pragma once

#include <cstddef>
#include <cstdint>

#include "verilated.h"

// Copy between a Verilated port and little-endian 32-bit words.
static inline void put(CData& port, const uint32_t* w) { port = static_cast<CData>(w[0]); }
static inline void put(SData& port, const uint32_t* w) { port = static_cast<SData>(w[0]); }
static inline void put(IData& port, const uint32_t* w) { port = w[0]; }
static inline void put(QData& port, const uint32_t* w) { port = w[0] | (static_cast<QData>(w[1]) << 32); }
template <std::size_t N>
static inline void put(VlWide<N>& port, const uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) port[i] = w[i];
}
static inline void get(CData port, uint32_t* w) { w[0] = port; }
static inline void get(SData port, uint32_t* w) { w[0] = port; }
static inline void get(IData port, uint32_t* w) { w[0] = port; }
static inline void get(QData port, uint32_t* w) {
    w[0] = static_cast<uint32_t>(port);
    w[1] = static_cast<uint32_t>(port >> 32);
}
template <std::size_t N>
static inline void get(const VlWide<N>& port, uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) w[i] = port[i];
}
