"""The sections of an edge-class chip description (docs/edge-target.md, docs/chip-description.md).

``[fabric]``: the fixed neuron budget (input channels, hidden and output neurons), synaptic
currents per neuron, the fan-out limit and the events a channel or neuron carries per step.
``[formats]``: weight, state and threshold widths, the width of a bit-shift decay and the
largest weight shift.
"""

from __future__ import annotations

from dataclasses import dataclass

from nmc.ir.snn import SHIFT_SYNAPSES
from nmc.targets.chip import Formats, spec


@dataclass(frozen=True)
class Fabric:
    """One fabric: inputs → hidden (recurrent) → outputs."""

    input_channels: int = spec(1, 1 << 12, "event input channels")
    hidden_neurons: int = spec(1, 1 << 16, "hidden neurons (recurrent population)")
    output_neurons: int = spec(1, 1 << 10, "readout neurons")
    hidden_synapses: int = spec(1, SHIFT_SYNAPSES, "synaptic currents per hidden neuron")
    output_synapses: int = spec(1, SHIFT_SYNAPSES, "synaptic currents per output neuron")
    max_fan_out: int = spec(1, 1 << 16, "synapses one hidden neuron drives (recurrent and readout)")
    max_input_events: int = spec(1, 255, "events per input channel per step")
    max_hidden_events: int = spec(1, 255, "events per hidden neuron per step")
    max_output_events: int = spec(1, 255, "events per output neuron per step")


@dataclass(frozen=True)
class Widths:
    """Number formats."""

    weight_bits: int = spec(2, 16, "signed weight bits")
    state_bits: int = spec(4, 32, "signed bits of synaptic currents and membrane potential")
    threshold_bits: int = spec(2, 32, "signed threshold (and bias) bits")
    dash_bits: int = spec(1, 5, "bits of a bit-shift decay")
    weight_shift_max: int = spec(0, 16, "largest left shift of a weight matrix")


SECTIONS = {"fabric": Fabric, "formats": Widths}


def check(sections: dict, checker) -> None:
    w = sections["formats"]
    if w.weight_bits + w.weight_shift_max > w.state_bits:
        raise checker.error(f"weights of {w.weight_bits} bits shifted by {w.weight_shift_max} do not fit the "
                            f"{w.state_bits}-bit state", "formats", "weight_shift_max",
                            hint=f"weight_shift_max at most {w.state_bits - w.weight_bits}")
    if w.threshold_bits > w.state_bits:
        raise checker.error(f"{w.threshold_bits}-bit thresholds exceed the {w.state_bits}-bit state", "formats",
                            "threshold_bits")


def formats(sections: dict) -> Formats:
    w = sections["formats"]
    return Formats(weight_bits_min=2, weight_bits_max=w.weight_bits, weight_exponent_max=w.weight_shift_max,
                   current_bits=w.state_bits, voltage_bits=w.state_bits, decay_bits=12,
                   reset_modes=("subtract",), leaks=("shift",))


def max_dash(chip) -> int:
    """The largest bit-shift decay the chip holds (also below the state width)."""
    f = chip.sections["formats"]
    return min((1 << f.dash_bits) - 1, f.state_bits - 1)
