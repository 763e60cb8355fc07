"""Host code for the MoE-ViT accelerator: one driver (:class:`Accelerator`) for the board and the simulation.

* :mod:`npuforge.host.driver` -- the driver: registers by name from the manifest, programs from the
  descriptor compiler, ``load(model, weights)``, ``run(image, task)``, the counters;
* :mod:`npuforge.host.pynq_board` -- the backend on a ZCU102/ZCU104 through PYNQ (``open_board``);
* :mod:`npuforge.host.simulated` -- the backend in simulation: the Verilated accelerator in the fast
  harness (``simulated``, ``HarnessSession``).

See docs/fpga.md.
"""

from .driver import Accelerator, AcceleratorError, Outputs

__all__ = ["Accelerator", "AcceleratorError", "Outputs"]
