"""cocotb testbenches.

``stream`` holds one driver class per side of the valid/ready stream protocol,
``harness`` the plumbing every testbench shares (files, clock, reset, cycle loop),
and one module per hardware kind holds its stimulus, its comparison against the
golden model and its ``@cocotb.test``.
"""
