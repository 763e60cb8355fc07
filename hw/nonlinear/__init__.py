"""Fixed-point nonlinear units for transformers: exp, reciprocal, rsqrt, GELU, softmax, LayerNorm.

Formats and rounding rules come from :mod:`hw.arith.fixed`; the stream beat
layout every unit shares is in :mod:`hw.nonlinear.interface`.
"""
