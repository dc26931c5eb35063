"""Test helper: an emulator's run checked against the reference semantics (nmc.semantics).

Contract of :func:`assert_matches_reference`: runs the reference on ``graph`` and ``inputs``
recording every population, and fails unless ``got`` (a RunResult of a run with
``record="all"``) has the same outputs, final voltages, spike trains of every population,
spike and synaptic-op counts, timesteps and steps; returns the reference's result.
"""

from __future__ import annotations

import numpy as np

from nmc import semantics


def assert_matches_reference(graph, inputs, got):
    """``got`` equals the reference run of ``graph`` on ``inputs`` (module contract)."""
    pops = graph.walk("snn.population")
    ref = semantics.run_snn(graph, inputs, record=pops)
    for a, b in zip(got.outputs, ref.outputs, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(got.voltages, ref.voltages, strict=True):
        np.testing.assert_array_equal(a, b)
    for pop in pops:
        np.testing.assert_array_equal(got.recorded[pop.result.name], ref.spikes[pop])
    assert got.spikes == ref.spike_count
    assert got.synaptic_ops == ref.synaptic_ops
    assert (got.timesteps, got.steps) == (ref.timesteps, ref.steps)
    return ref
