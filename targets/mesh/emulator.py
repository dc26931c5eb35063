"""The mesh emulator: runs an image's hardware sections, bit-identical to :mod:`nmc.semantics`.

It reads only the sections (``mesh.*`` and ``chip``), never the image's graph.  Each step:

1. the host encodes the inputs into its ports (what is presented at step ``t + 1`` is emitted
   at ``t``, as in the reference semantics);
2. each input axon reads what its source emitted ``d`` steps ago for each synapse delay ``d``
   (the routing tables say the source's spikes reach this core), and the synapse table turns
   it into current: ``Σ w · s << e`` (the cores' tables are merged at load into one matrix
   per delay, which gives every neuron the same integer sum);
3. every neuron updates by the neuron model (:mod:`nmc.neuron`: decay toward zero, saturation
   to its ``bits``, threshold, reset), vectorised over the batch;
4. the spikes are routed: each spike of a source with a route group travels the links of the
   group's multicast tree (counted per link for the statistics).

Statistics: spikes, synaptic ops, neuron updates, packets (spikes injected into the network;
a burst neuron's spikes of one step are one graded packet carrying their count),
hops (link traversals; on-chip, between chips, host port), per-link spikes per step, the
busiest link, ``time_per_step_s`` (the longest route's latency: the chip description gives no
compute time per core, so this is the network's bound) and ``energy_per_inference_j`` per inference from
the chip's energy figures.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from nmc import neuron
from nmc.diagnostics import UsageError
from nmc.runner import RunResult, Tally
from nmc.targets.outputs import read_outputs
from nmc.targets.ports import PortEncoder, bind_inputs
from nmc.targets.sections import class_chip
from nmc.targets.mesh.board import tree_chunks
from nmc.targets.mesh.fanin import PartialSums, piece_rows
from nmc.targets.mesh.jit import FanTable, Neurons, compile_loops
from nmc.targets.mesh.kernels import KINDS, KernelRunner
from nmc.targets.mesh.sections import MeshProgram, link_rows, load_sections



class Emulator:
    """A loaded image: synapse matrices by delay, neuron parameters, route groups."""

    def __init__(self, program: MeshProgram, chip, kernels: str = "auto"):
        self.p, self.chip = program, chip
        c, s, n = program.cores, program.synapses, program.neurons
        self.N, self.P = program.n_neurons, int(program.meta["ports"])
        self.start = c["start"]
        # Internally neurons are in graph order (populations in graph order, flat), then the
        # ports: a kernel reads and drives contiguous ranges.  hw_to_graph maps hardware neurons.
        hw = program.ports["population_hw"]
        self.hw_to_graph = np.empty(self.N, np.int64)
        self.hw_to_graph[hw] = np.arange(self.N)
        burst = n["max_spikes"][hw].astype(np.int64) if "max_spikes" in n else 1  # graded spikes: counts
        self.params = neuron.NeuronParams(**{k: n[k][hw].astype(np.int64) for k in ("threshold", "bias", "du", "dv", "v0")},
                                          reset_zero=n["reset"][hw] == 1, bits=n["bits"][hw].astype(np.int64),
                                          max_spikes=burst)
        self.max_spikes = int(np.max(burst, initial=1))  # the largest value a neuron's event carries
        # The cores' synapse tables, merged into one table per delay by source (neurons, then
        # ports) to every neuron: a neuron lives on one core, so its current is the same integer
        # sum, and a step costs one pass over its events per delay instead of one per core.
        rows, cols, weights, delays = [], [], [], []
        for k in range(program.n_cores):
            a0, a1 = s["axon_start"][k], s["axon_start"][k + 1]
            s0, s1 = s["syn_start"][a0], s["syn_start"][a1]
            rows.append(np.repeat(self.internal(s["axon_source"][a0:a1]), np.diff(s["syn_start"][a0:a1 + 1])))
            cols.append(self.hw_to_graph[self.start[k] + s["syn_target"][s0:s1]])
            weights.append(s["syn_weight"][s0:s1].astype(np.int64) << s["syn_exponent"][s0:s1].astype(np.int64))
            delays.append(s["syn_delay"][s0:s1])
        rows, cols, weights, delays = (np.concatenate(a) if a else np.zeros(0, np.int64)
                                       for a in (rows, cols, weights, delays))
        self.fan = {}  # delay -> synapses leaving each source (explicit and kernels), int32 (counted per step)
        tables = {}  # delay -> [(first internal source, FanTable by source from it, target offset)], merged below
        for d in np.unique(delays):
            sel = delays == d
            order = np.argsort(rows[sel], kind="stable")
            self.fan[int(d)] = np.bincount(rows[sel], minlength=self.N + self.P).astype(np.int32)
            start = np.concatenate([[0], np.cumsum(self.fan[int(d)], dtype=np.int64)])
            tables[int(d)] = [(0, FanTable(start, cols[sel][order], weights[sel][order]), 0)]
        del rows, cols, weights, delays
        # kernels (docs/mesh-target.md): one convolution or product per kernel over its whole
        # target population, or their events through compiled loops (kernels.EventPlan); a
        # kernel with few targets per source joins its delay's fan table instead; sources are
        # netlist ids (ports first), internally neurons first
        kr = program.kernels
        self.kernels = KernelRunner(kr, program.geometries, kernels)  # kernels: auto, dense or event
        self.kernel_rows = {}  # delay -> [(row, first source, sources, target slice)]
        self.tables = {}  # delay -> FanTable by internal source (start, neuron, weight): one compiled
        # pass over a step's events adds every explicit synapse and fan-table kernel (jit.fan_scatter)
        for k, g in enumerate(program.geometries):
            d, n_src, n_tgt = int(kr["delay"][k]), int(np.prod(g.src)), int(np.prod(g.tgt))
            a = self.kernel_source(int(kr["source"][k]))
            t0 = int(kr["target"][k])
            table = self.kernels.fan(k, keep=False) if k not in program.split else None
            if table is not None:
                tables.setdefault(d, []).append((a, table, t0))
            elif k not in program.split:  # a split row runs on its dendrite cores (self.partials)
                self.kernel_rows.setdefault(d, []).append((k, a, n_src, slice(t0, t0 + n_tgt)))
            fan = self.fan.setdefault(d, np.zeros(self.N + self.P, np.int32))
            fan[a:a + n_src] += g.fanout()
        for d in sorted(tables):  # each delay's parts freed once merged
            merged = merge_fans(tables.pop(d), self.N + self.P)
            if len(merged):
                self.tables[d] = merged
        self.partials = None
        if program.fanin is not None:
            rows, geos, firsts = piece_rows(program.fanin, kr, program.geometries,
                                            [KINDS[int(k)] for k in kr["kind"]])
            self.partials = PartialSums(program.fanin, rows, geos, firsts, self.kernel_source, self.N)
            for d in self.partials.by_delay:
                self.fan.setdefault(d, np.zeros(self.N + self.P, np.int32))
        self.max_delay = max(self.fan, default=1)
        compile_loops()  # once per process, with the image's loading rather than in its first run
        self._routes(program)

    def kernel_source(self, a: int) -> int:
        """Internal id of a kernel's netlist source id (ports first there, neurons first here)."""
        return a - self.P if a >= self.P else self.N + a

    def internal(self, source: np.ndarray) -> np.ndarray:
        """Internal ids of hardware source ids (neurons in graph order, then the ports)."""
        source = np.asarray(source, np.int64)
        return np.where(source < self.N, self.hw_to_graph[np.minimum(source, self.N - 1)], source)

    def _routes(self, program: MeshProgram) -> None:
        r, c = program.routes, program.cores
        self.group = np.empty(self.N + self.P, np.int64)
        self.group[self.internal(np.arange(self.N + self.P))] = r["source_group"]
        G, L = len(r["group_core"]), len(r["links"])
        self.routes = r  # group_links in its stored type (VGG-19: 258 M links, int32)
        self.link_kind = r["link_kind"].astype(np.int64)
        cx, cy = int(c["mesh"][0]), int(c["mesh"][1])
        bx = c["pos"][:, 0] * cx + c["pos"][:, 2]
        by = c["pos"][:, 1] * cy + c["pos"][:, 3]
        noc = self.chip.noc
        worst = 0.0
        for g in range(G):
            core = int(r["group_core"][g])
            sx, sy, extra = (0, 0, noc.chip_hop_latency_ns) if core < 0 else (bx[core], by[core], 0.0)
            d = r["dests"][r["dest_start"][g]:r["dest_start"][g + 1]]
            if len(d) == 0:
                continue
            hops = np.abs(bx[d] - sx) + np.abs(by[d] - sy)
            chips = np.abs(bx[d] // cx - sx // cx) + np.abs(by[d] // cy - sy // cy)
            lat = extra + (hops - chips) * noc.hop_latency_ns + chips * noc.chip_hop_latency_ns
            worst = max(worst, float(lat.max()))
        self.time_per_step_s = worst * 1e-9
        self.partial_links = None
        f = program.fanin
        if f is not None:  # partial sums cross the NoC in a second phase of the step
            D = len(f["dendrite_core"])
            rows = np.repeat(np.arange(D), np.diff(f["path_start"]))
            self.partial_links = sp.csr_matrix((np.ones(len(rows), np.int64), (rows, f["path_links"])), shape=(D, L))
            src, dst = f["dendrite_core"], f["dendrite_soma"]
            hops = np.abs(bx[dst] - bx[src]) + np.abs(by[dst] - by[src])
            chips = np.abs(bx[dst] // cx - bx[src] // cx) + np.abs(by[dst] // cy - by[src] // cy)
            lat = (hops - chips) * noc.hop_latency_ns + chips * noc.chip_hop_latency_ns
            self.time_per_step_s += float(lat.max(initial=0.0)) * 1e-9

    # ------------------------------------------------------------------------------ running

    def run(self, inputs, timesteps=None, record=None) -> RunResult:
        # The kernels' matrix products are small and come one after another each step: on one
        # BLAS thread they ran 22x faster than on two on this 2-core host under load (a
        # 32x1600 by 1600x512 float32 product: 1.85 ms against 41 ms).
        with threadpool_limits(limits=1, user_api="blas"):
            return self._run(inputs, timesteps, record)

    def _run(self, inputs, timesteps=None, record=None) -> RunResult:
        meta = self.p.meta
        arrays, B, T = bind_inputs(meta, inputs, timesteps)
        steps = T + int(meta["depth"]) - 1
        N, P = self.N, self.P
        from nmc.limits import check_bytes, check_work

        check_work(B, steps, N + P, "the emulator run")  # estimated before anything is allocated (issue 22)
        if record:
            check_bytes(B * steps * N, "recording the spikes")
        # int32 neurons step in one compiled pass that also clears the current (jit.Neurons),
        # others by nmc.neuron
        compiled = Neurons.fits(self.params)
        neurons = Neurons(self.params, B) if compiled else neuron.NeuronState.initial(self.params, B, narrow=True)
        # step -> what every source emitted then, dense and as events (the last max_delay steps)
        emitted: dict[int, Emitted] = {}
        ports_at = PortEncoder(meta, arrays, B, P, T).at
        counts = np.zeros((B, N), np.int64)
        sent = np.zeros((B, N), np.int64) if self.max_spikes > 1 else counts  # packets each neuron sends
        recorded = np.zeros((B, steps, N), np.int8) if record else None
        synaptic_ops = 0
        link_spikes = np.zeros(len(self.link_kind), np.int64)
        port_active = np.zeros(P, np.int64)  # events each port emitted (the neurons': counts)
        partial_sums = 0
        scratch: dict = {}  # the kernels' accumulators, cleared as they are read (kernels.EventPlan)
        buffers = [np.zeros((B, N), np.int64) for _ in range(1 if compiled else 2)]  # the step's current;
        # nmc.neuron's update may keep one as its u, which the next step does not read

        def emit(t: int, spikes: np.ndarray, fired: np.ndarray, ports: np.ndarray):
            emitted[t] = Emitted(spikes, fired, ports)
            emitted.pop(t - self.max_delay - 1, None)
            port_active[:] += np.count_nonzero(ports, axis=0)

        emit(-1, np.zeros((B, N), np.int8), np.zeros(0, np.int64), ports_at(0))
        for t in range(steps):
            current = buffers[t % len(buffers)]
            if not compiled:
                current.fill(0)
            partial = self.partials.start(B) if self.partials is not None else None
            for d, fan in self.fan.items():
                if t - d not in emitted:
                    continue
                ev = emitted[t - d]
                sample, column, value = ev.events()
                if d in self.tables:
                    self.tables[d].add(current, sample, column, value)
                for k, a, n, tgt in self.kernel_rows.get(d, ()):
                    self.kernels.add(k, current[:, tgt], ev.source(a, n), lambda a=a, n=n, ev=ev: ev.within(a, n),
                                     ev.count(a, n), self.max_spikes if a < N else None, scratch)
                if partial is not None and d in self.partials.by_delay:
                    self.partials.add(partial, d, ev.source)
                synaptic_ops += int(fan[column].sum(dtype=np.int64))
                del sample, column, value
                ev.release()
            if partial is not None:  # dendrite cores -> soma cores, same step
                messages = self.partials.deliver(partial, current)
                partial_sums += int(messages.sum())
                link_spikes += (self.partial_links.T @ messages).astype(np.int64)
            spikes = neurons.step(current) if compiled else neurons.step(current, np.int8)
            if self.max_spikes > 1:  # graded messages: one per firing neuron, carrying its count
                sent.reshape(-1)[neurons.fired_at] += 1
                counts.reshape(-1)[neurons.fired_at] += spikes.reshape(-1)[neurons.fired_at]
            else:
                counts.reshape(-1)[neurons.fired_at] += 1
            if recorded is not None:
                recorded[:, t] = spikes
            emit(t, spikes, neurons.fired_at, ports_at(t + 1))
        # packets and link loads are additive over the steps: from the sources' event totals
        active = np.concatenate([sent.sum(axis=0), port_active])
        routed = self.group >= 0
        packets = int(active[routed].sum())
        per_group = np.zeros(len(self.routes["group_core"]), np.int64)
        np.add.at(per_group, self.group[routed], active[routed])
        link_spikes += _link_spikes(self.routes, per_group)
        return self._result(B, T, steps, neurons.v, counts, recorded, record, synaptic_ops, link_spikes, packets,
                            partial_sums)

    def _result(self, B, T, steps, v, counts, recorded, record, synaptic_ops, link_spikes, packets,
                partial_sums=0) -> RunResult:
        outputs, voltages, rec = read_outputs(self.p.meta, B, steps, v, counts, recorded, record)
        fixed = {"energy": self.chip.energy, "neurons": self.N, "steps": steps, "time_per_step_s": self.time_per_step_s,
                 "links": {k: self.routes[k] for k in ("links", "link_kind", "link_capacity")}}
        tally = Tally({"samples": B, "synaptic_ops": int(synaptic_ops), "packets": int(packets),
                       "spikes": int(counts.sum()), "link_spikes": link_spikes, "partial_sums": int(partial_sums)},
                      partial(statistics, fixed))
        return RunResult("emulator", outputs, voltages=voltages, recorded=rec, timesteps=T, steps=steps,
                         spikes=int(counts.sum()), synaptic_ops=int(synaptic_ops), stats=statistics(fixed, tally.counts),
                         tally=tally)


def merge_fans(parts: list, n_sources: int) -> FanTable:
    """One fan table by source ``0..n_sources-1`` from ``parts`` ``[(first source, table,
    target offset)]``: each source's pairs in the parts' order (as a stable sort of their
    concatenation by source would give them), written straight into the merged arrays (a
    part at a time: no concatenation, no sort; ResNet-50's fan tables hold millions of pairs)."""
    counts = np.zeros(n_sources, np.int64)
    for a, table, _ in parts:
        counts[a:a + len(table.start) - 1] += np.diff(table.start)
    start = np.concatenate([[0], np.cumsum(counts)])
    del counts
    fill = start[:-1].copy()  # where each source's next pair goes
    target, weight = np.empty(int(start[-1]), np.int64), np.empty(int(start[-1]), np.int64)
    for a, table, t0 in parts:
        n, lens = len(table.start) - 1, np.diff(table.start)
        at = np.repeat(fill[a:a + n] - table.start[:-1], lens) + np.arange(int(table.start[-1]), dtype=np.int64)
        target[at] = table.target + t0 if t0 else table.target
        weight[at] = table.weight
        fill[a:a + n] += lens
    return FanTable(start, target, weight)


class Emitted:
    """What every source emitted at one step: the neurons' ``spikes`` [B, N] int8 (``fired``:
    their flat indices) and the ports' values ``ports`` [B, P] int64; internally sources are the
    neurons (graph order), then the ports.  Only these are kept (the emulator keeps the last
    ``max_delay`` steps' worth: ResNet-50 has 9 million events a step); the events as
    (sample, source, value) arrays and the kernels' views of them are worked out when a step
    reads them, and dropped by :meth:`release`."""

    def __init__(self, spikes: np.ndarray, fired: np.ndarray, ports: np.ndarray):
        self.spikes, self.ports, self.fired, self.N = spikes, ports, fired, spikes.shape[1]
        self.port_flat = np.flatnonzero(ports != 0)
        self._cache: dict = {}

    def release(self) -> None:
        """Drop what was worked out from the spikes and ports (the events, their bounds)."""
        self._cache.clear()

    def _part(self, neurons: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(flat index, sample, source within the part, value) of the neurons' or the ports' events."""
        if neurons not in self._cache:
            if neurons:
                flat, width = self.fired, self.N
                value = self.spikes.reshape(-1)[flat].astype(np.int64)  # burst: spike counts
            else:
                flat, width = self.port_flat, self.ports.shape[1]
                value = self.ports.reshape(-1)[flat]
            self._cache[neurons] = (flat, *np.divmod(flat, width), value)
        return self._cache[neurons]

    def events(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sample, internal source, value) of every event (non-zero value), neurons' first."""
        if "events" not in self._cache:
            (_, b0, j0, v0), (_, b1, j1, v1) = self._part(True), self._part(False)
            self._cache["events"] = (np.concatenate([b0, b1]), np.concatenate([j0, j1 + self.N]), np.concatenate([v0, v1]))
        return self._cache["events"]

    def source(self, a: int, n: int) -> np.ndarray:
        """The values of sources ``[a, a + n)`` (all neurons or all ports), [B, n]."""
        return self.spikes[:, a:a + n] if a < self.N else self.ports[:, a - self.N:a - self.N + n]

    def _bounds(self, a: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Per sample, where the events of sources ``[a, a + n)`` start and end in their part."""
        if ("bounds", a, n) not in self._cache:
            flat = self.fired if a < self.N else self.port_flat
            a0, width = (a, self.N) if a < self.N else (a - self.N, self.ports.shape[1])
            rows = np.arange(self.spikes.shape[0]) * width
            self._cache["bounds", a, n] = np.searchsorted(flat, rows + a0), np.searchsorted(flat, rows + a0 + n)
        return self._cache["bounds", a, n]

    def count(self, a: int, n: int) -> int:
        """The number of events of sources ``[a, a + n)`` (all neurons or all ports)."""
        lo, hi = self._bounds(a, n)
        return int((hi - lo).sum())

    def within(self, a: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The events of sources ``[a, a + n)`` (all neurons or all ports): (sample, source − a, value)."""
        if ("within", a, n) not in self._cache:
            _, sample, column, value = self._part(a < self.N)
            lo, hi = self._bounds(a, n)
            lens = hi - lo
            idx = np.repeat(lo - np.cumsum(lens) + lens, lens) + np.arange(int(lens.sum()))
            self._cache["within", a, n] = (sample[idx], column[idx] - (a if a < self.N else a - self.N), value[idx])
        return self._cache["within", a, n]


def statistics(fixed: dict, counts: dict) -> dict:
    """The emulator's figures for a batch from its additive counts (``counts``: samples,
    synaptic ops, packets, spikes, spikes per link) and what the image fixes (``fixed``: the
    chip's energy figures, neurons, steps, the links and the latency bound)."""
    e, B, steps, link_spikes = fixed["energy"], counts["samples"], fixed["steps"], counts["link_spikes"]
    updates = B * steps * fixed["neurons"]
    kind = fixed["links"]["link_kind"].astype(np.int64)
    hops = {name: int(link_spikes[kind == i].sum()) for i, name in enumerate(("chip", "board", "host"))}
    energy = (counts["synaptic_ops"] * e.synaptic_op_j + updates * e.neuron_update_j + hops["chip"] * e.spike_hop_j
              + (hops["board"] + hops["host"]) * e.chip_hop_j) / max(B, 1)
    per_step = link_spikes / max(B * steps, 1)
    links = link_rows(fixed["links"], {"spikes_per_step": per_step})
    busiest = max(links, key=lambda r: r["spikes_per_step"]) if links else None
    return {"energy_per_inference_j": float(energy), "links": links, "packets": int(counts["packets"]),
            "hops": int(link_spikes.sum()), "hops_on_chip": hops["chip"], "hops_between_chips": hops["board"],
            "hops_host": hops["host"], "neuron_updates": int(updates), "busiest_link": busiest,
            "time_per_step_s": fixed["time_per_step_s"], "spikes": int(counts["spikes"]),
            "synaptic_ops": int(counts["synaptic_ops"]), "partial_sums": int(counts.get("partial_sums", 0))}


def prepare(image):
    """``execute(inputs, timesteps=None, record=None) -> RunResult`` for an image with mesh
    sections (``image.sections``; the ``chip`` section holds the chip description's text)."""
    sections = getattr(image, "sections", None)
    if not isinstance(sections, dict):
        raise UsageError("the emulator runs a compiled image (.nmb) for a mesh target",
                         hint="compile the model with nmc compile --target mesh (or mesh-tiny, ...)")
    chip = class_chip(sections, "mesh")
    emulator = Emulator(load_sections(sections, chip), chip)

    def execute(inputs, timesteps=None, record=None) -> RunResult:
        return emulator.run(inputs, timesteps, record)

    return execute


def _link_spikes(routes: dict, per_group: np.ndarray) -> np.ndarray:
    """Spikes over each link: Σ over the route groups whose trees use it of the group's
    spikes (``per_group``), a range of groups at a time (exact integers)."""
    start, links = routes["link_start"], routes["group_links"]
    out = np.zeros(len(routes["links"]), np.int64)
    size = np.diff(start)
    for g0, g1 in tree_chunks(start, 1 << 22):
        np.add.at(out, links[start[g0]:start[g1]], np.repeat(per_group[g0:g1], size[g0:g1]))
    return out
