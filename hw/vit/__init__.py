"""The MoE-ViT accelerator (``kind: moevit_accel``): AXI ports, registers, engines (docs/accelerator.md)."""
