"""Cycles per step of a multicast core: what a core does when packets arrive and when its
neurons update (docs/multicast-target.md).

A core spends ``cycles_per_packet`` on every packet it receives (the master population table
lookup and the row's fetch), ``cycles_per_synaptic_event`` on every synapse of the rows those
packets select, and ``cycles_per_neuron`` on every neuron each step.  A step keeps real time
when the busiest core's cycles fit ``clock_hz × step_s``.
"""

from __future__ import annotations

import numpy as np


def cycles(chip, packets, events, neurons):
    """Cycles of cores receiving ``packets`` packets selecting ``events`` synapses, with ``neurons`` neurons."""
    c = chip.core
    return packets * c.cycles_per_packet + events * c.cycles_per_synaptic_event + neurons * c.cycles_per_neuron


def estimated_cycles(m, rates: np.ndarray) -> np.ndarray:
    """Per core, the cycles of one step at the given source rates (compile-time estimate):
    packets from every key of every vertex routed to the core; synaptic events as the core's
    synapses times the mean rate of the sources that reach it."""
    from nmc.targets.mapping.partition import core_pieces
    from nmc.targets.multicast.passes import core_synapses

    C = len(m.cores)
    packets = np.zeros(C)
    for v, dests in zip(m.vertices(), m.destinations()):
        packets[dests] += float(rates[v.sources].sum())
    pairs = m.pairs()
    reach = np.bincount(pairs[:, 1], weights=rates[pairs[:, 0]], minlength=C) if len(pairs) else np.zeros(C)
    count = np.bincount(pairs[:, 1], minlength=C) if len(pairs) else np.zeros(C)
    mean = np.divide(reach, count, out=np.zeros(C), where=count > 0)
    syn = np.array([core_synapses(m.net, core_pieces(m.net, c.pops, c.slices)) for c in m.cores], np.float64)
    return cycles(m.chip, packets, syn * mean, np.diff(m.core_start).astype(np.float64))
