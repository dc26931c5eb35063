"""The ``one_to_one`` kernel (DESIGN §6): an event of source neuron ``j`` adds its weight to target ``j``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from nmc.ir.core import Blob, Op

from . import kernel

if TYPE_CHECKING:
    from ..emit import Lowering


@kernel("one_to_one")
def project_one_to_one(lw: Lowering, p: Op, pop: Op, acc):
    """Each event ``j`` adds weight ``j`` into target ``j``."""
    e = lw.e
    shape = p.src.type.shape
    data = p.weight.data if isinstance(p.weight, Blob) else np.asarray(p.weight)
    g, wt = lw.weights(p, np.broadcast_to(data, shape).reshape(-1), "o2o")
    lw.events(p, pop, lambda j, x: lw.accumulate(pop, lw.target(pop, x), j, e.load(g, j, wt), wt, x))
