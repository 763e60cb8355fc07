"""MoE-ViT evaluation: synthetic segmentation + depth data, task metrics, and the float / fixed-point comparison.

``data`` draws the images (numpy, seeded), ``metrics`` scores predictions, ``evaluate`` runs the
float and fixed-point models of ``sim.golden.moevit`` on held-out data (``npuforge eval``).
"""
