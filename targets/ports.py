"""The input side of an image, the same for every chip class's emulator: the user's inputs
bound to the image's ports meta, and the values its encoders put on the ports at each step.

The ports meta (``inputs``: shape and whether each is a spike train; ``timesteps``;
``encoders``: each one's input, or ``-1`` with a ``constant``, its encoding, parameters, first
port and size) is what every class's image carries.

Contract: :func:`bind_inputs` returns the inputs as arrays, the batch size and the number of
timesteps, or raises the binding's usage error; :class:`PortEncoder` yields, for steps
``t = 0, 1, ...`` in order, the int64 [B, P] port values (the encoders keep their state between
steps, so each step is asked once, in order), deterministic for the encoders' seeds.
"""

from __future__ import annotations

import numpy as np

from nmc import neuron
from nmc.binding import InputSpec, bind_arrays, resolve_timesteps


def bind_inputs(meta: dict, inputs, timesteps) -> tuple[list, int, int]:
    """``(arrays, batch, T)`` for ``inputs`` fed to an image with ports meta ``meta``
    (``timesteps``: the user's choice, or None for the trains' length or the compiled one)."""
    specs = [InputSpec(tuple(spec["shape"]), bool(spec["train"])) for spec in meta["inputs"]]
    arrays, batch = bind_arrays(inputs, specs, "the image")
    trains = [a.shape[1] for a, spec in zip(arrays, specs) if spec.train]
    return arrays, batch, resolve_timesteps(trains, timesteps, meta["timesteps"], "image")


class PortEncoder:
    """The encoders of ports meta ``meta`` over the bound ``arrays`` (``B`` samples, ``P``
    ports, ``T`` timesteps) (module contract)."""

    def __init__(self, meta: dict, arrays: list, B: int, P: int, T: int):
        self.meta, self.arrays, self.B, self.P, self.T = meta, arrays, B, P, T
        self.state: dict = {}

    def at(self, t: int) -> np.ndarray:
        """The port values of step ``t`` (int64 [B, P])."""
        B, T = self.B, self.T
        out = np.zeros((B, self.P), np.int64)
        for e in self.meta["encoders"]:
            x = self.arrays[e["input"]] if e["input"] >= 0 else np.broadcast_to(np.float32(e["constant"]), (B, e["size"]))
            out[:, e["port"]:e["port"] + e["size"]] = neuron.encode(
                e["encoding"], x, t, T, e["size"], state=self.state, key=e["port"], phase=e.get("phase", 0),
                seed=e.get("seed", 0), scale=e.get("scale", 1.0))
        return out
