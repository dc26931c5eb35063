"""The edge chip class (``class = "xylo"``): Xylo-like sensor fabrics (docs/edge-target.md).

A chip is one fabric: input channels, a recurrent population of hidden bit-shift neurons with
two synaptic currents each, a few readout neurons.  Nothing is partitioned or placed; the
mapping is the neuron assignment and the design-rule check (:mod:`.fabric`).  The default
pipeline quantises, converts the neurons to bit-shift leaks (``xylo-convert``, before the
image's graph is taken) and assigns (``xylo-assign``).  Image section: ``xylo.config``
(:mod:`.fabric`); emulator: :mod:`.emulator`; ``nmc inspect`` views: :mod:`.views`.
"""

from __future__ import annotations

from nmc.targets.classes import ChipClass, forward
from nmc.targets.edge import chip as edge_chip


class EdgeClass(ChipClass):
    name = "xylo"
    sections = edge_chip.SECTIONS
    mapping_passes = ("xylo-assign",)
    pass_modules = {"xylo-convert": "nmc.targets.edge.passes", "xylo-assign": "nmc.targets.edge.passes"}

    def check(self, sections, checker):
        edge_chip.check(sections, checker)

    def formats(self, sections):
        return edge_chip.formats(sections)

    def summary(self, chip) -> dict:
        return {"cores": 1, "chips": 1, "neurons_per_core": chip.fabric.hidden_neurons + chip.fabric.output_neurons}

    def pipeline(self, chip, *, integer: bool, calibrated: bool, opt_level: int, seed: int, quantize: str = "") -> str:
        """The base pipeline with ``xylo-convert`` right before the mapping pass."""
        text = super().pipeline(chip, integer=integer, calibrated=calibrated, opt_level=opt_level, seed=seed,
                                quantize=quantize)
        mapping = self.mapping_pipeline(chip, opt_level=opt_level, seed=seed)
        return text[: len(text) - len(mapping)] + "xylo-convert," + mapping

    def mapping_pipeline(self, chip, *, opt_level: int, seed: int) -> str:
        return "xylo-assign"

    def emit_sections(self, graph, chip) -> dict[str, bytes]:
        from nmc.targets.edge.fabric import SECTION, assign

        return {SECTION: assign(graph, chip).to_bytes()}

    def resource_summary(self, graph, chip) -> dict:
        from nmc.targets.edge.fabric import assign

        c = assign(graph, chip)
        fab = chip.fabric
        return {"cores": 1, "cores_lower_bound": 1, "chips": 1, "inputs": c.inputs, "hidden_neurons": c.hidden,
                "output_neurons": c.outputs, "synapses": c.synapse_count(),
                "max_fan_out": int(c.fan_out().max()) if c.hidden else 0, "fan_out_limit": fab.max_fan_out,
                "hidden_use": round(c.hidden / fab.hidden_neurons, 6)}

    prepare = forward("nmc.targets.edge.emulator", "prepare")

    def check_image(self, sections):
        from nmc.targets.edge.views import load

        load(sections)

    core_table = forward("nmc.targets.edge.views", "population_table")
    layer_table = forward("nmc.targets.edge.views", "layer_table")


CHIP_CLASS = EdgeClass()
