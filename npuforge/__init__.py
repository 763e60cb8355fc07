"""npuforge's top floor: the command line and the kind registry that names modules of every layer.

Layer order, bottom to top: ``hw`` (generators), ``gen`` (configs, elaboration,
manifest), ``sim`` and ``fpga`` (simulation, synthesis), ``npuforge`` (this
package). A layer imports only the layers below it; nothing imports
``npuforge``.
"""

from gen import __version__

__all__ = ["__version__"]
