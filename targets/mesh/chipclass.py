"""The mesh chip class: Loihi-class chips, a 2-D mesh of neuro-cores per chip, chips on a board.

What nmc needs of the class (:class:`nmc.targets.classes.ChipClass`), gathered from the
folder: description sections (:mod:`.chip`), mapping passes (:mod:`.passes`: ``partition``,
``place``, ``route``), image sections (:mod:`.sections`), the emulator (:mod:`.emulator`) and
the ``nmc inspect`` views (:mod:`.views`).
"""

from __future__ import annotations

import math
import re

import numpy as np

from nmc.targets.classes import ChipClass, forward
from nmc.targets.mesh import chip as mesh_chip

DEFAULT_RATE = 0.25


class MeshClass(ChipClass):
    name = "mesh"
    sections = mesh_chip.SECTIONS
    mapping_passes = ("partition", "place", "route")
    pass_modules = {name: "nmc.targets.mesh.passes" for name in mapping_passes}

    def check(self, sections, checker):
        mesh_chip.check(sections, checker)

    def formats(self, sections):
        return mesh_chip.formats(sections)

    def summary(self, chip) -> dict:
        return {"cores": mesh_chip.cores_per_chip(chip), "chips": chip.mesh.chips_x * chip.mesh.chips_y,
                "neurons_per_core": chip.core.neurons}

    def mapping_pipeline(self, chip, *, opt_level: int, seed: int) -> str:
        """``partition,place{seed=S},route``; the opt level sets the placement effort:
        ``-O0`` keeps the constructive placement, ``-O3`` anneals four times as long."""
        from nmc.targets.mesh.passes import Place

        iterations = {0: 0, 3: 4 * Place.iterations}.get(opt_level)
        more = "" if iterations is None else f",iterations={iterations}"
        return f"partition,place{{seed={seed}{more}}},route"

    def emit_sections(self, graph, chip) -> dict[str, bytes]:
        from nmc.targets.mesh.sections import emit_sections

        return emit_sections(graph, chip)

    def resource_summary(self, graph, chip) -> dict:
        """Cores, lower bound, chips, placement cost (and the naive placement's), busiest link;
        placement figures from ``place``'s meta when present, else computed for the current
        (naive) positions."""
        from nmc.targets.mapping.shapes import synapse_count
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
            "dendrite_cores": len(m.dendrites),  # fan-in splitting: cores computing partial sums
            "cores_lower_bound": int(graph.meta.get("hw.cores_lower_bound", 0)),
            "chips": len(chips),
            "placement_cost": round(float(graph.meta.get("hw.placement_cost", cost)), 6),
            "placement_cost_naive": round(float(graph.meta.get("hw.placement_cost_naive", naive)), 6),
            "max_link_load": round(float(routes.load.max()), 6) if len(routes.load) else 0.0,
            "busiest_link": routes.link_name(busiest) if busiest is not None else None,
            "neurons": int(m.net.n_neurons),
            "synapses": int(sum(synapse_count(p) for p in graph.walk("snn.project"))),
            "links_used": len(routes.ends),
            "assumed_rate": float(graph.meta.get("hw.rate", DEFAULT_RATE)),
        }

    def fit_board(self, graph, chip, text: bytes) -> bytes:
        """The smallest board of ``chip``'s chips that holds the graph's cores (partition's
        count): ``n = ⌈cores / cores per chip⌉`` chips as ``⌈√n⌉ × ⌈n / ⌈√n⌉⌉``, renamed
        ``<name>-auto-<x>x<y>``; partition's own errors when a layer fits no core."""
        from nmc.targets.mapping.partition import partition
        from nmc.targets.mesh.passes import core_limits

        cores = len(partition(graph, chip.formats, core_limits(chip), chip.name)["cores"])
        n = max(1, -(-cores // (chip.mesh.cores_x * chip.mesh.cores_y)))
        cx = math.isqrt(n - 1) + 1
        cy = -(-n // cx)
        out = text.decode("utf-8")
        for key, value in (("chips_x", cx), ("chips_y", cy)):
            out, hits = re.subn(rf"(?m)^(\s*{key}\s*=\s*)\d+", rf"\g<1>{value}", out)
            if not hits:
                out = re.sub(r"(?m)^\[mesh\]\s*$", f"[mesh]\n{key} = {value}", out)
        out = re.sub(r'(?m)^(name\s*=\s*)"([^"]*)"', lambda m: f'{m[1]}"{m[2]}-auto-{cx}x{cy}"', out, count=1)
        return out.encode("utf-8")

    prepare = forward("nmc.targets.mesh.emulator", "prepare")

    def check_image(self, sections):
        """Every field of the hardware sections against the chip (NmcError naming it)."""
        from nmc.targets.mesh.sections import load_sections

        load_sections(sections)

    core_table = forward("nmc.targets.mesh.views", "core_table")
    link_table = forward("nmc.targets.mesh.views", "link_loads")
    layer_table = forward("nmc.targets.mesh.report", "layer_table")
    board_view = forward("nmc.targets.mesh.report", "board_view")

    def board_svg(self, board):
        from nmc.targets.mesh.report import board_svg, legend_html

        return board_svg(board) + "\n" + legend_html(board)

    energy_estimate = forward("nmc.targets.mesh.report", "energy_estimate")

    def plot(self, image, cores, links, path):
        from nmc.targets.mesh.views import plot_mapping

        plot_mapping(image, cores, links, path)


CHIP_CLASS = MeshClass()
