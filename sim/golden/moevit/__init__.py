"""MoE-ViT reference models (``kind: moevit``, docs/moevit.md).

* :mod:`.params` -- the weights dict (npz keys), random init, load and save;
* :mod:`.reference` -- the float forward pass (float64 numpy) and activated MACs;
* :mod:`.fixed` -- the bit-accurate fixed-point network, operator by operator;
* :mod:`.attention` -- attention in the direct and in Edge-MoE's reordered order, with load counts.
"""
