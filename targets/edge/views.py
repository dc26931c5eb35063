"""``nmc inspect`` and compile-report views of an edge image: one row per population."""

from __future__ import annotations

import numpy as np

from nmc.targets.chip import parse_chip
from nmc.targets.edge.fabric import SECTION, Config, load_config


def load(sections: dict[str, bytes]) -> Config:
    """The image's configuration, validated against its chip (NmcError on bad content)."""
    from nmc.diagnostics import NmcError

    if SECTION not in sections:
        raise NmcError(f"the image has no '{SECTION}' section", hint="compile it again for this chip")
    chip = parse_chip(sections["chip"].decode("utf-8"), "<image>[chip]")
    return load_config(sections[SECTION], chip, f"<image>[{SECTION}]")


def _incoming(c: Config, p: dict) -> tuple[np.ndarray, np.ndarray]:
    """(nonzero weights into the population's neurons, each neuron's fan-in)."""
    rows = slice(p["first"], p["first"] + p["neurons"])
    if p["role"] == "readout":
        w = c.w_out[rows]
        return w[w != 0], (w != 0).sum(axis=1)
    w_in, w_rec = c.w_in[:, rows], c.w_rec[:, rows]
    weights = np.concatenate([w_in[w_in != 0], w_rec[w_rec != 0]])
    return weights, (w_in != 0).sum(axis=(0, 2)) + (w_rec != 0).sum(axis=(0, 2))


def population_table(sections: dict[str, bytes]) -> list[dict]:
    """Per population: role, neuron range, synapses in, largest fan-in and fan-out, shifts."""
    c = load(sections)
    fan_out = c.fan_out() if c.hidden else np.zeros(0, np.int64)
    rows = []
    for p in c.populations:
        weights, fan_in = _incoming(c, p)
        first, n = p["first"], p["neurons"]
        hidden = p["role"] == "hidden"
        dash_mem = (c.dash_mem if hidden else c.dash_mem_out)[first:first + n]
        rows.append({"core": 0, "population": p["name"], "role": p["role"], "neurons": n,
                     "first": first, "synapses": int(len(weights)), "max_fan_in": int(fan_in.max()) if n else 0,
                     "max_fan_out": int(fan_out[first:first + n].max()) if hidden and n else 0,
                     "dash_mem": sorted({int(v) for v in dash_mem})})
    return rows


def layer_table(sections: dict[str, bytes]) -> list[dict]:
    """The compile report's per-layer rows (ChipClass.layer_table's keys)."""
    c = load(sections)
    rows = []
    for p in c.populations:
        weights, fan_in = _incoming(c, p)
        wmax = int(np.abs(weights).max()) if len(weights) else 0
        rows.append({"name": p["name"], "neurons": p["neurons"], "synapses": int(len(weights)), "cores": 1,
                     "core_ids": [0], "weight_bits": wmax.bit_length() + 1 if len(weights) else None,
                     "max_fan_in": int(fan_in.max()) if p["neurons"] else 0, "input_axons_limit": None})
    return rows
