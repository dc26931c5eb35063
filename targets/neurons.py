"""The neuron-parameter arrays of an image's neurons section, as every chip class emits them.

Contract of :func:`neuron_arrays`: for the netlist ``net`` of a mapped graph and ``hw_of``
(the hardware index of each netlist neuron), one array per name of :data:`NEURON_ARRAYS`, each
indexed by hardware neuron: ``threshold``, ``bias``, ``du``, ``dv``, ``v0`` (int64, the
populations' integer parameters broadcast to their shapes), ``reset`` (uint8, the index of the
population's reset mode in :data:`RESETS`) and ``bits`` (uint8, its state width).  Pure.
"""

from __future__ import annotations

import numpy as np

from nmc.ir.core import param_array

NEURON_ARRAYS = ("threshold", "bias", "du", "dv", "v0", "reset", "bits")
RESETS = ("subtract", "zero")  # reset modes by their stored code


def neuron_arrays(net, hw_of: np.ndarray) -> dict[str, np.ndarray]:
    """The neuron parameters in hardware order (module contract)."""
    params = {k: np.zeros(net.n_neurons, np.int64) for k in NEURON_ARRAYS}
    for pop in net.populations:
        hw = hw_of[net.neuron_offset[pop]:net.neuron_offset[pop] + pop.result.type.size]
        for k in ("threshold", "bias", "du", "dv", "v0"):
            params[k][hw] = param_array(getattr(pop, k), pop.result.type.shape, np.float64).reshape(-1).astype(np.int64)
        params["reset"][hw] = RESETS.index(pop.reset)
        params["bits"][hw] = pop.bits
    params["reset"] = params["reset"].astype(np.uint8)
    params["bits"] = params["bits"].astype(np.uint8)
    return params
