"""A run's outputs, final voltages and recordings, read from an emulator's final state.

Every chip class's image carries the same ports meta (``populations``: name and shape of each,
in graph order; ``outputs``: the population, ``mode``, ``shape`` and ``direct`` flag of each
graph output), so every class's emulator turns its final state into a
:class:`~nmc.runner.RunResult`'s outputs the same way; only where a population's neurons sit
in the state arrays differs, which ``columns`` says.

Contract of :func:`read_outputs`: pure; for ``B`` samples and ``steps`` steps, ``v`` and
``counts`` are [B, N] arrays and ``recorded`` a [B, steps, N] array (or None when nothing is
recorded) whose last axis holds the neurons; ``columns`` (optional) maps the neurons of the
populations, concatenated in graph order, to those state columns (None: they are the columns
in that order).  It returns ``(outputs, voltages, recorded)``: per graph output its value as
float32 in the output's shape (final voltage for ``mode == "membrane"``, else the spike
count) and its final voltage (float32, population shape) when ``direct``, else None; and, when
``record`` is ``"all"`` (every population) or truthy (the outputs' populations), the spikes of
each such population by name as int64 [B, steps, *shape].
"""

from __future__ import annotations

import numpy as np


def read_outputs(meta: dict, B: int, steps: int, v: np.ndarray, counts: np.ndarray, recorded, record,
                 columns: np.ndarray | None = None) -> tuple[list, list, dict]:
    """Outputs, voltages and recordings of a run (module contract)."""
    sizes = [int(np.prod(p["shape"])) for p in meta["populations"]]
    offsets = np.concatenate([[0], np.cumsum(sizes)])

    def of_pop(k: int, arr: np.ndarray) -> np.ndarray:
        if columns is None:
            return arr[..., offsets[k]:offsets[k + 1]]
        return arr[..., columns[offsets[k]:offsets[k + 1]]]

    outputs, voltages = [], []
    for o in meta["outputs"]:
        k = o["population"]
        shape = meta["populations"][k]["shape"]
        final_v = of_pop(k, v).reshape(B, *shape).astype(np.float32)
        value = final_v if o["mode"] == "membrane" else of_pop(k, counts).reshape(B, *shape).astype(np.float32)
        outputs.append(value.reshape(B, *o["shape"]))
        voltages.append(final_v if o["direct"] else None)
    rec = {}
    if record:
        wanted = range(len(sizes)) if record == "all" else sorted({o["population"] for o in meta["outputs"]})
        for k in wanted:
            p = meta["populations"][k]
            rec[p["name"]] = of_pop(k, recorded).astype(np.int64).reshape(B, steps, *p["shape"])
    return outputs, voltages, rec
