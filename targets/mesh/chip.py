"""The sections of a mesh-class chip description (docs/chip-description.md).

``[mesh]``, ``[core]``, ``[state]``, ``[noc]``, ``[energy]`` and the optional ``[fanin]`` and ``[spikes]``; the fields of each section are
the fields of the dataclass of the same name below (``State``: the shared one of
:mod:`nmc.targets.chip`), with the value range in its metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

from nmc.ir.snn import MAX_SPIKES
from nmc.targets.chip import Formats, State, spec


@dataclass(frozen=True)
class Mesh:
    """Cores of one chip on a ``cores_x × cores_y`` mesh; chips on a ``chips_x × chips_y`` board."""

    cores_x: int = spec(1, 4096)
    cores_y: int = spec(1, 4096)
    chips_x: int = spec(1, 4096)
    chips_y: int = spec(1, 4096)


@dataclass(frozen=True)
class Core:
    """Per-core limits."""

    neurons: int = spec(1, 1 << 24)
    input_axons: int = spec(1, 1 << 24)
    output_axons: int = spec(1, 1 << 24)
    synapse_memory_bits: int = spec(1, 1 << 40)
    weight_bits_min: int = spec(1, 32)
    weight_bits_max: int = spec(1, 32)
    weight_exponent_max: int = spec(0, 30)
    shared_weights: bool = spec()


@dataclass(frozen=True)
class Noc:
    """The network-on-chip."""

    routing: str = spec(choices=("dimension-order",))
    link_capacity: int = spec(1, 1 << 32)
    hop_latency_ns: float = spec(0.0, 1e9)
    chip_link_capacity: int = spec(1, 1 << 32, same_as="link_capacity")  # a link between two chips
    chip_hop_latency_ns: float = spec(0.0, 1e9, same_as="hop_latency_ns")


@dataclass(frozen=True)
class Energy:
    """Energy per event, in joules."""

    synaptic_op_j: float = spec(0.0, 1.0)
    neuron_update_j: float = spec(0.0, 1.0)
    spike_hop_j: float = spec(0.0, 1.0)
    chip_hop_j: float = spec(0.0, 1.0, same_as="spike_hop_j")  # a hop between two chips


@dataclass(frozen=True)
class Fanin:
    """Fan-in splitting (optional section; without it ``mechanism = "none"``): how a neuron whose
    inputs exceed one core's input axons or synapse memory is split across cores.
    ``"partial-sums"``: dendrite cores each hold a part of its synapses, compute the part's
    integer sum every step and forward it as one graded message of ``partial_bits`` signed
    bits to the core that holds the neuron (its soma), which adds the parts in the same step
    (docs/mesh-target.md, "Fan-in splitting")."""

    ABSENT = {"mechanism": "none", "partial_bits": 24}
    mechanism: str = spec(choices=("none", "partial-sums"))
    partial_bits: int = spec(2, 64)


@dataclass(frozen=True)
class Spikes:
    """What a neuron's spike message carries (optional section; without it binary spikes):
    ``max_per_step``, the most spikes a neuron may emit in one step, sent as one graded message
    whose payload is the count (burst neurons, ``snn.population`` ``max_spikes``; docs/mesh-target.md)."""

    ABSENT = {"max_per_step": 1}
    max_per_step: int = spec(1, MAX_SPIKES)


MAX_BOARD_CORES = 1 << 20
SECTIONS = {"mesh": Mesh, "core": Core, "state": State, "noc": Noc, "energy": Energy, "fanin": Fanin,
            "spikes": Spikes}


def check(sections: dict, checker) -> None:
    """Cross-field checks: the weight widths are an interval."""
    core = sections["core"]
    if core.weight_bits_min > core.weight_bits_max:
        raise checker.error(f"'[core] weight_bits_min' = {core.weight_bits_min} exceeds weight_bits_max = "
                            f"{core.weight_bits_max}", "core", "weight_bits_min")
    mesh = sections["mesh"]
    cores = mesh.cores_x * mesh.cores_y * mesh.chips_x * mesh.chips_y
    if cores > MAX_BOARD_CORES:  # the mapping passes hold per-core tables of the whole board (issue 22)
        raise checker.error(f"the board has {cores} cores ({mesh.cores_x}x{mesh.cores_y} per chip, "
                            f"{mesh.chips_x}x{mesh.chips_y} chips); nmc maps onto at most {MAX_BOARD_CORES}",
                            "mesh", "cores_x", hint="describe the part of the board the model uses")


def formats(sections: dict) -> Formats:
    """The numeric formats of a mesh chip: its synapses are stateless weight tables."""
    core, state = sections["core"], sections["state"]
    return Formats(weight_bits_min=core.weight_bits_min, weight_bits_max=core.weight_bits_max,
                   weight_exponent_max=core.weight_exponent_max, current_bits=state.current_bits,
                   voltage_bits=state.voltage_bits, decay_bits=state.decay_bits, reset_modes=state.reset_modes,
                   stateful_synapses=False, max_spikes=sections["spikes"].max_per_step)


def cores_per_chip(chip) -> int:
    return chip.mesh.cores_x * chip.mesh.cores_y
