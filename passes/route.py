"""``route``: dimension-order multicast routes between the placed cores, and link loads.

Each source neuron's spikes go to the cores that hold its targets.  Sources of one core (or
of the host's input port) that reach the same set of cores share one multicast tree: the
union of the X-then-Y paths from the source core to each destination (the host port enters
west of board core (0, 0)).  A link's load is Σ, over the trees that use it, of the
spikes per step their sources send (rates as in ``place``; ``rate`` when the graph carries no
calibration).  On-chip links hold ``noc.link_capacity`` spikes per step, links between chips
``noc.chip_link_capacity`` (the host's input link is not limited by the
description: its load is reported only); a link over capacity is an error naming it.
"""

from __future__ import annotations

import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.core import Graph
from nmc.ir.hw import Route
from nmc.passes.partition import hw_insert, mesh_chip
from nmc.passmanager import Pass, PassContext, register_pass
from nmc.targets.mesh.mapping import Mapping


@register_pass("route")
class RoutePass(Pass):
    """Route the spikes of a placed graph (module docstring).

    Requires: ``ctx.target`` a mesh-class chip; placed ``hw.core`` ops (partition, place).
    Ensures: one ``hw.route`` per (source core or host, destination set) with its destination
    cores, load (spikes per step) and tree size in links; earlier routes replaced;
    ``meta["hw.max_link_load"]`` and ``meta["hw.rate"]``; every link within its capacity, or
    an error naming the link, its load and its capacity.  ``rate``: assumed spikes per step
    per neuron where the graph has no calibration statistics."""

    rate: float = 0.25

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        chip = mesh_chip(ctx, "route")
        if not 0.0 <= self.rate <= 1.0:
            raise NmcError(f"route: rate={self.rate} must lie in [0, 1] (spikes per step per neuron)")
        graph.ops = [op for op in graph.ops if op.KIND != "hw.route"]
        m = Mapping(graph, chip)
        if not m.placed:
            raise NmcError(f"graph @{graph.name} has cores but no placement", hint="run place before route")
        rates = m.net.rates(self.rate)
        r = m.routes(rates)
        group_rate = np.bincount(r.group_of[r.group_of >= 0], weights=rates[r.group_of >= 0], minlength=len(r.groups))
        hw_insert(graph, [Route(src=src, dests=tuple(dests), load=round(float(load), 6), links=len(tree))
                          for (src, dests), tree, load in zip(r.groups, r.group_links, group_rate)])
        capacity = r.capacity(chip)
        over = np.flatnonzero((capacity >= 0) & (r.load > capacity))
        if len(over):
            i = int(over[np.argmax(r.load[over] / capacity[over])])
            kind = ("on-chip link", "link between chips")[int(r.kind[i])]
            raise NmcError(f"{kind} {r.link_name(i)} carries {r.load[i]:.6g} spikes per step; its capacity is "
                           f"{int(capacity[i])} (over by {r.load[i] - capacity[i]:.6g}); {len(over)} link(s) over capacity",
                           hint="use a larger board or a chip with faster links, lower firing rates, or fewer neurons per layer")
        peak = float(r.load.max()) if len(r.load) else 0.0
        graph.meta["hw.max_link_load"] = round(peak, 6)
        graph.meta["hw.rate"] = float(self.rate)
        ctx.stat("routes", len(r.groups))
        ctx.stat("links", len(r.links))
        ctx.stat("inter-chip-links", int(np.sum(r.kind == 1)))
        if len(r.load):
            i = int(np.argmax(r.load))
            limit = f"of {int(capacity[i])}" if capacity[i] >= 0 else "(the host link: not limited)"
            ctx.remark(f"busiest link {r.link_name(i)}: {peak:.6g} spikes per step {limit}")
        return True
