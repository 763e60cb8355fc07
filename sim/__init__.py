"""Simulation: golden models, cocotb testbenches, the Verilator runner and (later) fault campaigns."""
