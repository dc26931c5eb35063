"""Test helper: the TOML text of a small mesh-class chip for tests, built from the few values
the tests vary (board size, neurons and input axons per core, shared weights); the limits,
state widths, network and energy are the same in every such test chip.

Contract of :func:`mesh_chip_text`: a complete description (docs/chip-description.md) that
``parse_chip`` accepts, without a ``[fanin]`` section.
"""

from __future__ import annotations


def mesh_chip_text(name: str, description: str, board: tuple[int, int, int, int], neurons: int,
                   input_axons: int, shared_weights: bool = False) -> str:
    """The chip ``name``: ``board`` = (cores_x, cores_y, chips_x, chips_y) (module contract)."""
    cores_x, cores_y, chips_x, chips_y = board
    return f"""
name = "{name}"
class = "mesh"
description = "{description}"
[mesh]
cores_x = {cores_x}
cores_y = {cores_y}
chips_x = {chips_x}
chips_y = {chips_y}
[core]
neurons = {neurons}
input_axons = {input_axons}
output_axons = 512
synapse_memory_bits = 1048576
weight_bits_min = 1
weight_bits_max = 8
weight_exponent_max = 7
shared_weights = {"true" if shared_weights else "false"}
[state]
current_bits = 24
voltage_bits = 24
decay_bits = 12
reset_modes = ["subtract", "zero"]
[noc]
routing = "dimension-order"
link_capacity = 100000
hop_latency_ns = 6.5
chip_link_capacity = 100000
chip_hop_latency_ns = 65.0
[energy]
synaptic_op_j = 23.6e-12
neuron_update_j = 52e-12
spike_hop_j = 4.0e-12
chip_hop_j = 40.0e-12
"""
