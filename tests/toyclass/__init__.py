"""A toy chip class, registered from the test folder (tests/test_chip_classes.py).

Its chips are one fabric of ``neurons`` integer neurons with no cores to map; its image has
one section, ``toy.program``: the neuron budget and the integer graph, which its emulator runs
with the reference semantics.  It shows what a class must supply and nothing more.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from nmc.diagnostics import NmcError
from nmc.targets.chip import Formats, spec
from nmc.targets.classes import ChipClass

SECTION = "toy.program"


@dataclass(frozen=True)
class Fabric:
    """The fabric: how many neurons, how wide its weights and state."""

    neurons: int = spec(1, 1 << 20)
    weight_bits: int = spec(2, 16)
    state_bits: int = spec(8, 32)


class ToyClass(ChipClass):
    name = "toy"
    sections = {"fabric": Fabric}
    mapping_passes = ("toy-fit",)
    pass_modules = {"toy-fit": "toyclass.passes"}

    def formats(self, sections):
        f = sections["fabric"]
        return Formats(weight_bits_min=2, weight_bits_max=f.weight_bits, weight_exponent_max=0,
                       current_bits=f.state_bits, voltage_bits=f.state_bits, decay_bits=12,
                       reset_modes=("subtract", "zero"))

    def summary(self, chip):
        return {"cores": 1, "chips": 1, "neurons_per_core": chip.fabric.neurons}

    def mapping_pipeline(self, chip, *, opt_level, seed):
        return "toy-fit"

    def emit_sections(self, graph, chip):
        from nmc.ir.printer import print_graph

        program = {"neurons": graph.meta["toy.neurons"], "graph": print_graph(graph, print_blobs=True)}
        return {SECTION: json.dumps(program, sort_keys=True).encode()}

    def resource_summary(self, graph, chip):
        used = graph.meta["toy.neurons"]
        return {"cores": 1, "cores_lower_bound": 1, "chips": 1, "neurons": used,
                "fabric_use": round(used / chip.fabric.neurons, 6)}

    def prepare(self, image):
        from nmc.ir.parser import parse_ir
        from nmc.runner import RunResult
        from nmc.semantics import run_snn

        try:
            program = json.loads(image.sections[SECTION])
        except (KeyError, ValueError) as err:
            raise NmcError(f"the image has no valid {SECTION} section ({err})") from None
        graph = parse_ir(program["graph"], f"{image.filename}[{SECTION}]")

        def execute(inputs, timesteps=None, record=None):
            r = run_snn(graph, inputs, timesteps)
            return RunResult("emulator", r.outputs, voltages=r.voltages, timesteps=r.timesteps, steps=r.steps,
                             spikes=r.spike_count, synaptic_ops=r.synaptic_ops,
                             stats={"fabric_neurons": program["neurons"]})

        return execute

    def core_table(self, sections):
        program = json.loads(sections[SECTION])
        return [{"core": 0, "neurons": program["neurons"]}]


CHIP_CLASS = ToyClass()
