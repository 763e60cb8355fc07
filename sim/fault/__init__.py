"""Fault-injection campaigns: fault models, the injection engine, storage, metrics and reports.

See ``docs/campaigns.md`` for the user guide and ``docs/architecture.md`` for how
the modules hand data to each other.
"""
