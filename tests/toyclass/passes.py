"""The toy class's one mapping pass: check the network fits the fabric."""

from __future__ import annotations

from nmc.diagnostics import NmcError
from nmc.passmanager import Pass, PassContext, register_pass
from nmc.targets.mapping.partition import check_formats


@register_pass("toy-fit")
class ToyFit(Pass):
    """Refuse a graph with more neurons than the fabric has; record how many it uses."""

    def run(self, graph, ctx: PassContext) -> bool:
        chip = ctx.target
        check_formats(graph, chip.formats, chip.name)
        neurons = sum(p.result.type.size for p in graph.walk("snn.population"))
        if neurons > chip.fabric.neurons:
            raise NmcError(f"the network has {neurons} neurons; fabric '{chip.name}' has {chip.fabric.neurons}",
                           hint="a smaller network")
        graph.meta["toy.neurons"] = neurons
        ctx.stat("neurons", neurons)
        return True
