"""The ``hw`` dialect: a spiking graph mapped onto the cores of a board of chips (docs/design.md §3).

``partition`` appends one ``hw.core`` per core, ``place`` gives each its chip and position,
``route`` appends one ``hw.route`` per source of traffic (a core, or the host's input port)::

    hw.core(%h, %y) {id = 0, slices = [0, 40, 0, 10], neurons = 50, axons = 120,
                     synapse_bits = 4000, outputs = 30, chip = [0, 0], xy = [1, 2]}
    hw.route {src = 0, dests = [1, 2], load = 12.5, links = 3}

A core holds slices of populations: operand ``i`` keeps neurons ``slices[2i] : slices[2i+1]``
(flat C-order indices) of that population.  ``neurons``/``axons``/``synapse_bits``/``outputs``
are the core's use of the chip's per-core limits.  ``chip``/``xy`` are empty until ``place``.
A route's ``src`` is a core id, or -1 for the host; ``dests`` the cores its spikes reach,
``load`` the spikes per step it sends (from rates), ``links`` the links of its multicast tree.
A *dendrite* core of a split neuron (fan-in splitting, docs/mesh-target.md) has ``partial =
[soma, i0, lo0, hi0, i1, lo1, hi1, ...]``: its slices name the neurons whose partial sums it
computes (it holds none of them: their soma core ``soma`` does), from the part of their inputs
``(current operand i, lo, hi)`` (:mod:`nmc.targets.mapping.fanin`).
The snn ops stay untouched, so a mapped graph still runs under :mod:`nmc.semantics`.
The graph's ``meta["hw.board"]`` records ``[cores_x, cores_y, chips_x, chips_y]`` of the target.
"""

from __future__ import annotations

from nmc.ir.core import Op, integer, ints, operands, real, register, require


@register("hw.core")
class Core(Op):
    """One core and the population slices it holds (see the module docstring)."""

    HAS_RESULT = False
    pops: list = operands("populations with a slice on this core")
    id: int = integer(doc="core id, 0-based, dense")
    slices: tuple = ints(doc="start, stop per operand")
    neurons: int = integer(0)
    axons: int = integer(0)
    synapse_bits: int = integer(0)
    outputs: int = integer(0)
    chip: tuple = ints(doc="[chip x, chip y] after place")
    xy: tuple = ints(doc="[x, y] on the chip after place")
    partial: tuple = ints(doc="a dendrite core: [soma core id, then (current operand, lo, hi) per input piece]")

    def verify(self):
        require(self, self.id >= 0, f"id must be >= 0, got {self.id}")
        require(self, len(self.pops) >= 1, "needs at least one population slice")
        require(self, len(self.slices) == 2 * len(self.pops),
                f"has {len(self.pops)} population(s) but {len(self.slices)} slice bounds (need 2 per population)")
        for i, p in enumerate(self.pops):
            require(self, p.owner is not None and p.owner.KIND == "snn.population",
                    f"operand {i} must be a population's spikes")
            a, b = self.slices[2 * i], self.slices[2 * i + 1]
            require(self, 0 <= a < b <= p.type.size, f"slice [{a}, {b}) of operand {i} is outside its {p.type.size} neurons")
        require(self, self.neurons == sum(self.slices[2 * i + 1] - self.slices[2 * i] for i in range(len(self.pops))),
                f"neurons = {self.neurons} is not the total of its slices")
        require(self, len(self.partial) == 0 or (len(self.partial) % 3 == 1 and len(self.partial) >= 4
                                                  and len(set(self.pops)) == 1),
                "partial must be [soma, then (current operand, lo, hi) triples] over one population")
        require(self, len(self.chip) in (0, 2) and len(self.xy) == len(self.chip),
                "chip and xy must both be [x, y] (after place) or both absent")


@register("hw.route")
class Route(Op):
    """The multicast tree of one source's spikes (see the module docstring)."""

    HAS_RESULT = False
    src: int = integer(doc="source core id, -1 for the host")
    dests: tuple = ints(doc="destination core ids")
    load: float = real(0.0)
    links: int = integer(0)

    def verify(self):
        require(self, self.src >= -1, f"src must be a core id or -1 (host), got {self.src}")
        require(self, len(set(self.dests)) == len(self.dests) and all(d >= 0 for d in self.dests),
                "dests must be distinct core ids")
