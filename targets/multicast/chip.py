"""The sections of a multicast-class chip description (docs/chip-description.md,
docs/multicast-target.md): ``[board]``, ``[core]``, ``[state]``, ``[router]``, ``[links]``,
``[energy]``; each section's keys are the fields of the dataclass of the same name below
(``State``: the shared one of :mod:`nmc.targets.chip`)."""

from __future__ import annotations

from dataclasses import dataclass

from nmc.targets.chip import Formats, State, spec

LAYOUTS = ("rectangle", "spinn5")


@dataclass(frozen=True)
class Board:
    """Chips at integer ``(x, y)``: a ``chips_x × chips_y`` rectangle, or the 48 chips of a
    SpiNN-5 board in its 8 × 8 bounding box; ``wrap``: the links at the edges wrap round (a
    torus; only for a rectangle)."""

    layout: str = spec(choices=LAYOUTS)
    chips_x: int = spec(1, 256)
    chips_y: int = spec(1, 256)
    wrap: bool = spec()


@dataclass(frozen=True)
class Core:
    """One processor: what it holds and what a step costs it."""

    processors: int = spec(1, 1024)
    app_processors: int = spec(1, 1024)
    neurons: int = spec(1, 1 << 16)
    local_memory_bytes: int = spec(1, 1 << 32)
    rows_in: str = spec(choices=("sdram", "local"))
    row_memory_bytes: int = spec(0, 1 << 40)
    neuron_bytes: int = spec(0, 1 << 16)
    master_entry_bytes: int = spec(0, 1 << 16)
    row_header_bytes: int = spec(0, 1 << 16)
    synapse_bytes: int = spec(1, 1 << 16)
    weight_bits_max: int = spec(2, 32)
    weight_exponent_max: int = spec(0, 30)
    max_delay: int = spec(1, 1 << 16)
    clock_hz: float = spec(1.0, 1e12)
    cycles_per_synaptic_event: float = spec(0.0, 1e9)
    cycles_per_neuron: float = spec(0.0, 1e9)
    cycles_per_packet: float = spec(0.0, 1e9)
    step_s: float = spec(1e-9, 1e3)


@dataclass(frozen=True)
class Router:
    """Each chip's router: entries, key width, default routing."""

    entries: int = spec(1, 1 << 24)
    key_bits: int = spec(1, 32)
    default_routing: bool = spec()


@dataclass(frozen=True)
class Links:
    """Each of a chip's six links: packets per second."""

    packets_per_s: float = spec(0.0, 1e15)


@dataclass(frozen=True)
class Energy:
    """Joules per synaptic event, per neuron and step, per packet and link crossed."""

    synaptic_event_j: float = spec(0.0, 1.0)
    neuron_update_j: float = spec(0.0, 1.0)
    packet_hop_j: float = spec(0.0, 1.0)


SECTIONS = {"board": Board, "core": Core, "state": State, "router": Router, "links": Links, "energy": Energy}
MAX_PROCESSORS = 1 << 16  # processors over the whole board that a mapping handles


def check(sections: dict, checker) -> None:
    """Cross-field checks: application processors within the processors, rows somewhere, a
    SpiNN-5 layout's bounding box, a board nmc can map onto."""
    core, board = sections["core"], sections["board"]
    if core.app_processors > core.processors:
        raise checker.error(f"'[core] app_processors' = {core.app_processors} exceeds processors = {core.processors}",
                            "core", "app_processors")
    if core.rows_in == "sdram" and core.row_memory_bytes == 0:
        raise checker.error("'[core] row_memory_bytes' is 0 but rows_in = \"sdram\"", "core", "row_memory_bytes",
                            hint="give the SDRAM each core may fill with synaptic rows, or rows_in = \"local\"")
    if board.layout == "spinn5" and (board.chips_x, board.chips_y, board.wrap) != (8, 8, False):
        raise checker.error("a spinn5 board is 8 x 8 chips (its bounding box) without wrap-around", "board", "layout")
    if board.chips_x * board.chips_y * core.app_processors > MAX_PROCESSORS:
        raise checker.error(f"the board has {board.chips_x * board.chips_y * core.app_processors} application "
                            f"processors; nmc maps onto at most {MAX_PROCESSORS}", "board", "chips_x",
                            hint="describe the part of the machine the model uses")


def formats(sections: dict) -> Formats:
    """Software neurons: stateless synaptic rows, weights of up to ``weight_bits_max`` bits."""
    core, state = sections["core"], sections["state"]
    return Formats(weight_bits_min=1, weight_bits_max=core.weight_bits_max, weight_exponent_max=core.weight_exponent_max,
                   current_bits=state.current_bits, voltage_bits=state.voltage_bits, decay_bits=state.decay_bits,
                   reset_modes=state.reset_modes, stateful_synapses=False)
