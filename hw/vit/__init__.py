"""The MoE-ViT accelerator (``kind: moevit_accel``, docs/accelerator.md)."""
