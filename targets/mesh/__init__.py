"""The mesh target (DESIGN §6): hardware sections, resource summary and the emulator.

Interface used by the compile driver, ``nmc inspect`` and the runner:

* :func:`emit_sections` ``(graph, chip) -> dict[str, bytes]`` — the hardware sections of a
  partitioned, placed and routed graph (layout: :mod:`nmc.targets.mesh.sections`);
* :func:`resource_summary` ``(graph, chip) -> dict`` — cores, lower bound, chips, placement
  cost (and the naive placement's), busiest link;
* :func:`core_table` / :func:`link_loads` ``(sections) -> list[dict]`` — per core and per link
  rows for ``nmc inspect``;
* :func:`prepare` ``(image) -> execute`` — the emulator (reads only ``image.sections``).
"""

from __future__ import annotations

import numpy as np

from nmc.targets.mesh.sections import emit_sections, link_rows, load_sections

__all__ = ["emit_sections", "resource_summary", "core_table", "link_loads", "prepare"]

DEFAULT_RATE = 0.25


def prepare(image):
    from nmc.targets.mesh.emulator import prepare as _prepare

    return _prepare(image)


def resource_summary(graph, chip) -> dict:
    """What the mapping uses (see module docstring); placement figures from ``place``'s
    meta when present, else computed for the current (naive) positions."""
    from nmc.targets.mesh.mapping import Mapping, placement_cost

    m = Mapping(graph, chip)
    rates = m.net.rates(graph.meta.get("hw.rate", DEFAULT_RATE))
    src, dst, load = m.traffic(rates)
    cost = placement_cost(m.board, src, dst, load, m.slots)
    naive = placement_cost(m.board, src, dst, load, np.arange(len(m.cores)))
    routes = m.routes(rates)
    chips = sorted({tuple(int(v) for v in divmod(int(s), m.board.cx * m.board.cy)[:1]) for s in m.slots})
    busiest = int(np.argmax(routes.load)) if len(routes.load) else None
    return {
        "cores": len(m.cores),
        "cores_lower_bound": int(graph.meta.get("hw.cores_lower_bound", 0)),
        "chips": len(chips),
        "placement_cost": round(float(graph.meta.get("hw.placement_cost", cost)), 6),
        "placement_cost_naive": round(float(graph.meta.get("hw.placement_cost_naive", naive)), 6),
        "max_link_load": round(float(routes.load.max()), 6) if len(routes.load) else 0.0,
        "busiest_link": routes.link_name(busiest) if busiest is not None else None,
        "neurons": int(m.net.n_neurons),
        "synapses": int(sum(len(m.net.incoming(p).src) for p in m.net.populations)),
        "links_used": len(routes.links),
        "assumed_rate": float(graph.meta.get("hw.rate", DEFAULT_RATE)),
    }


def core_table(sections: dict[str, bytes]) -> list[dict]:
    """One row per core: id, chip, x, y, neurons, axons, synapse bits, output entries, and the
    populations it holds (``name:neurons``, in graph order)."""
    p = load_sections(sections)
    c = p.cores
    counts = np.diff(c["start"])
    pops = p.meta["populations"]
    sizes = [int(np.prod(q["shape"])) for q in pops]
    pop_of_hw = np.empty(p.n_neurons, np.int64)  # hardware neuron -> population index
    pop_of_hw[p.ports["population_hw"]] = np.repeat(np.arange(len(pops)), sizes)
    rows = []
    for k in range(p.n_cores):
        held = np.bincount(pop_of_hw[c["start"][k]:c["start"][k + 1]], minlength=len(pops))
        rows.append({"core": k, "chip": [int(c["pos"][k, 0]), int(c["pos"][k, 1])], "x": int(c["pos"][k, 2]),
                     "y": int(c["pos"][k, 3]), "neurons": int(counts[k]), "axons": int(c["axons"][k]),
                     "synapse_bits": int(c["synapse_bits"][k]), "outputs": int(c["outputs"][k]),
                     "populations": " ".join(f"{pops[i]['name']}:{int(held[i])}" for i in np.flatnonzero(held))})
    return rows


def link_loads(sections: dict[str, bytes]) -> list[dict]:
    """One row per link used (:func:`~nmc.targets.mesh.sections.link_rows`): its expected
    spikes per step at the compile-time rates as ``load``."""
    r = load_sections(sections).routes
    return link_rows(r, {"load": np.round(r["link_load"], 6)})
