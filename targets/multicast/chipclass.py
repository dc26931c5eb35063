"""The multicast chip class (``class = "multicast"``): SpiNNaker-class machines
(docs/multicast-target.md).

What nmc needs of the class, gathered from the folder: description sections (:mod:`.chip`),
the board (:mod:`.board`), mapping passes (:mod:`.passes`: ``mc-partition``, ``mc-place``,
``mc-route``), keys, trees and tables (:mod:`.mapping`, :mod:`.table`), image sections
(:mod:`.sections`), the emulator (:mod:`.emulator`) and the ``nmc inspect`` views
(:mod:`.views`).
"""

from __future__ import annotations

from nmc.targets.classes import ChipClass, forward
from nmc.targets.multicast import chip as mc_chip


class MulticastClass(ChipClass):
    name = "multicast"
    sections = mc_chip.SECTIONS
    mapping_passes = ("mc-partition", "mc-place", "mc-route")
    pass_modules = {name: "nmc.targets.multicast.passes" for name in mapping_passes}

    def check(self, sections, checker):
        mc_chip.check(sections, checker)

    def formats(self, sections):
        return mc_chip.formats(sections)

    def summary(self, chip) -> dict:
        from nmc.targets.multicast.board import Board

        return {"cores": chip.core.app_processors, "chips": len(Board(chip).chips), "neurons_per_core": chip.core.neurons}

    def mapping_pipeline(self, chip, *, opt_level: int, seed: int) -> str:
        """``mc-partition,mc-place{seed=S},mc-route``; ``-O0`` keeps the nearest-first placement,
        ``-O3`` anneals four times as long."""
        from nmc.targets.multicast.passes import McPlace

        iterations = {0: 0, 3: 4 * McPlace.iterations}.get(opt_level)
        more = "" if iterations is None else f",iterations={iterations}"
        return f"mc-partition,mc-place{{seed={seed}{more}}},mc-route"

    def emit_sections(self, graph, chip) -> dict[str, bytes]:
        from nmc.targets.multicast.sections import emit_sections

        return emit_sections(graph, chip)

    def resource_summary(self, graph, chip) -> dict:
        """Cores, lower bound, chips, placement cost, table entries before and after
        compression, the fullest table, busiest link, the busiest core's estimated cycles."""
        from nmc.targets.mapping.shapes import synapse_count
        from nmc.targets.multicast.mapping import mapping_of
        from nmc.targets.multicast.passes import DEFAULT_RATE

        m = mapping_of(graph, chip)
        tables = m.tables()
        compressed = m.compressed_tables()
        loads = m.link_loads(m.net.rates(graph.meta.get("hw.rate", DEFAULT_RATE)))
        return {
            "cores": len(m.cores),
            "cores_lower_bound": int(graph.meta.get("hw.cores_lower_bound", 0)),
            "chips": len(set(m.core_chip)),
            "placement_cost": graph.meta.get("hw.placement_cost"),
            "placement_cost_naive": graph.meta.get("hw.placement_cost_naive"),
            "max_link_load": round(float(max(loads.values(), default=0.0)), 6),
            "neurons": int(m.net.n_neurons),
            "synapses": int(sum(synapse_count(p) for p in graph.walk("snn.project"))),
            "key_ranges": len(m.vertices()),
            "table_entries": len(tables.key),
            "table_entries_compressed": len(compressed.key),
            "fullest_table": int(compressed.sizes().max(initial=0)),
            "router_entries": chip.router.entries,
            "step_cycles": graph.meta.get("hw.step_cycles"),
            "step_cycle_budget": chip.core.clock_hz * chip.core.step_s,
            "assumed_rate": float(graph.meta.get("hw.rate", DEFAULT_RATE)),
        }

    prepare = forward("nmc.targets.multicast.emulator", "prepare")

    def check_image(self, sections):
        """Every field of the multicast sections against the chip (NmcError naming it)."""
        from nmc.targets.multicast.sections import load_sections

        load_sections(sections)

    core_table = forward("nmc.targets.multicast.views", "core_table")
    link_table = forward("nmc.targets.multicast.views", "link_table")
    more_tables = forward("nmc.targets.multicast.views", "more_tables")

    def plot(self, image, cores, links, path):
        from nmc.targets.multicast.views import plot_board

        plot_board(image, path)


CHIP_CLASS = MulticastClass()
