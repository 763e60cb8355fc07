"""Errors a user can cause, each reported as one line with a fixed exit code."""


class NpuforgeError(Exception):
    """An error with a one-line message meant for the user, not a traceback."""

    exit_code = 1


class ConfigError(NpuforgeError):
    """The config file is unreadable or invalid. The message names file, field, value and what is allowed."""

    exit_code = 2


class UsageError(NpuforgeError):
    """A command-line argument is invalid."""

    exit_code = 2


class ToolError(NpuforgeError):
    """An external tool (Yosys, Verilator, the C++ compiler) failed; the message says where its log is."""

    exit_code = 3
