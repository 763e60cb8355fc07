"""Amaranth hardware generators.

Each subpackage holds small :class:`amaranth.lib.wiring.Component` classes whose
constructor arguments are plain Python values (widths, counts, shapes). They know
nothing about YAML configs, manifests or simulators: ``gen`` adapts configs to
these constructors, ``sim`` verifies what they produce.
"""
