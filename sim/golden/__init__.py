"""Bit-exact numpy reference models: the one reference that tests, ``npuforge sim`` and campaigns use."""
