"""Row slices in memory beats and powers of two: the geometry the linear engine's loaders and writers share.

A slice is ``cols`` elements of ``act_bytes`` bytes of one tensor row: either whole memory beats
(``cols * act_bytes`` a multiple of the beat) or a power-of-two part of one beat, at byte lane
``(t * cols * act_bytes) % beat_bytes`` for the slice of tile ``t``.
"""


def log2_exact(value: int) -> int:
    """``log2(value)`` of a power of two (ValueError otherwise)."""
    if value < 1 or value & (value - 1):
        raise ValueError(f"{value} is not a power of two")
    return value.bit_length() - 1


class SliceGeometry:
    """Where slices sit in beats (see the module docstring)."""

    def __init__(self, *, cols: int, act_bytes: int, data_width: int):
        self.cols, self.act_bytes = cols, act_bytes
        self.beat_bytes = data_width // 8
        self.slice_bytes = cols * act_bytes
        if self.slice_bytes >= self.beat_bytes:
            if self.slice_bytes % self.beat_bytes:
                raise ValueError(f"a row slice of {self.slice_bytes} bytes is not a whole number of "
                                 f"{self.beat_bytes}-byte beats")
            self.beats, self.per_beat = self.slice_bytes // self.beat_bytes, 1
        else:
            if self.beat_bytes % self.slice_bytes:
                raise ValueError(f"a row slice of {self.slice_bytes} bytes does not divide a "
                                 f"{self.beat_bytes}-byte beat")
            self.beats, self.per_beat = 1, self.beat_bytes // self.slice_bytes
