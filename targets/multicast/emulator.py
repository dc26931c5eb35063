"""The multicast emulator: runs an image's ``multicast.*`` sections, bit-identical to
:mod:`nmc.semantics` when the tables are right (docs/multicast-target.md).

It reads only the sections and the chip, never the image's graph.

**Routing.**  Every source (a neuron, or a host port) of a vertex with destinations sends a
packet with its key for every spike (a vertex without destinations, an output layer, sends
none).  A packet
starts at its vertex's chip and is forwarded hop by hop: each router it reaches looks the key
up in its compressed table (first match; :func:`first_match`), sends copies out of the
entry's links and to its processors; a key matching nothing is default routed (out of the
link opposite the one it came in on), or dropped when it came from a processor of this chip.
A copy sent towards a chip the board does not have, or to a processor without a core, is
dropped.  A router reached by a key that no vertex owns is an error (an unallocated key).
Where a packet goes depends only on its key and its chip, so each key's journey is walked
once, when the image is loaded (keys that travel together are walked together), and every
packet of a run then takes that journey: its hops, lookups, drops and deliveries are counted
per packet.

**Synapses.**  A core receiving a packet looks its key up in its master population table;
the entry's block of rows and the key's index in its range give the synaptic row, whose
synapses add ``w << e`` to their neuron's input ``d`` steps later.  A packet the master table
does not know is dropped.  What was delivered becomes one sparse matrix per delay (a packet
delivered twice adds its row twice, as a core would), so a wrong table gives wrong currents.

**Time.**  Per step, each core's cycles from the packets it received, the synapses of their
rows and its neurons (:mod:`.timing`); the busiest core's cycles over the clock is the step's
time; it keeps real time when that fits the chip's ``step_s``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from nmc import neuron
from nmc.diagnostics import NmcError, UsageError
from nmc.runner import RunResult
from nmc.targets.multicast.board import Board
from nmc.targets.multicast.sections import McProgram, load_sections
from nmc.targets.multicast.table import LINKS, N_LINKS, opposite
from nmc.targets.multicast.timing import cycles
from nmc.targets.outputs import read_outputs
from nmc.targets.ports import PortEncoder, bind_inputs
from nmc.targets.sections import class_chip


def first_match(keys: np.ndarray, entry_key: np.ndarray, entry_mask: np.ndarray) -> np.ndarray:
    """Index of the first entry matching each key, -1 for none."""
    if not len(entry_key) or not len(keys):
        return np.full(len(keys), -1, np.int64)
    hit = (keys[:, None] & entry_mask[None, :]) == entry_key[None, :]
    first = np.argmax(hit, axis=1)
    return np.where(hit[np.arange(len(keys)), first], first, -1)


class Router:
    """Every chip's compressed table (from ``multicast.tables``) and the walk of keys over them."""

    def __init__(self, program: McProgram, chip, board: Board):
        t, k = program.tables, program.keys
        self.chip, self.board = chip, board
        self.start = t["table_start"]
        self.key, self.mask, self.links = t["key"], t["mask"], t["links"].astype(np.int64)
        self.proc_start, self.procs = t["proc_start"], t["procs"]
        self.core_at = {(x, y, p): i for i, ((x, y), p) in enumerate(zip(program.cores["chip"].tolist(),
                                                                            program.cores["proc"].tolist()))}
        base, width = k["vertex_base"], 1 << k["vertex_bits"]
        self.ranges = np.stack([base, base + width], 1)[np.argsort(base)]

    def allocated(self, keys: np.ndarray) -> np.ndarray:
        r = self.ranges
        i = np.searchsorted(r[:, 0], keys, side="right") - 1
        return (i >= 0) & (keys < r[np.maximum(i, 0), 1])

    def walk(self, keys: np.ndarray, start: tuple[int, int]) -> dict:
        """The journey of packets with ``keys`` injected by a processor of chip ``start``:
        per key its lookups, hops, drops, link crossings ``[(key index, link id)]`` and
        deliveries ``[(key index, core)]`` (module docstring)."""
        n = len(keys)
        out = {"lookups": np.zeros(n, np.int64), "hops": np.zeros(n, np.int64), "dropped": np.zeros(n, np.int64),
               "links": [], "deliveries": []}
        stack = [(start, None, np.arange(n))]
        visits, limit = 0, N_LINKS * len(self.board.chips) + 1
        while stack:
            xy, arrived, sel = stack.pop()
            visits += 1
            if visits > limit * max(1, n):
                raise NmcError(f"keys {int(keys[sel][0]):#x}.. loop between routers (seen at chip {xy})",
                               hint="the image's router tables are wrong; compile it again")
            here = keys[sel]
            bad = ~self.allocated(here)
            if bad.any():
                raise NmcError(f"an unallocated key {int(here[bad][0]):#x} reached the router of chip {xy}",
                               hint="no vertex owns this key: the image's keys or tables are wrong")
            c = self.board.index[xy]
            a, b = int(self.start[c]), int(self.start[c + 1])
            entry = first_match(here, self.key[a:b], self.mask[a:b])
            out["lookups"][sel] += 1
            for e in np.unique(entry).tolist():
                group = sel[entry == e]
                if e < 0:
                    if arrived is None or not self.chip.router.default_routing:
                        out["dropped"][group] += 1
                        continue
                    links, procs = [opposite(arrived)], []
                else:
                    bits = int(self.links[a + e])
                    links = [i for i in range(N_LINKS) if bits >> i & 1]
                    procs = self.procs[self.proc_start[a + e]:self.proc_start[a + e + 1]].tolist()
                for p in procs:
                    core = self.core_at.get((*xy, p))
                    if core is None:
                        out["dropped"][group] += 1
                    else:
                        out["deliveries"].append((group, core))
                for link in links:
                    nxt = self.board.neighbour(xy, link)
                    if nxt is None:
                        out["dropped"][group] += 1
                        continue
                    out["hops"][group] += 1
                    out["links"].append((group, c * N_LINKS + link))
                    stack.append((nxt, opposite(link), group))
        return out


class Emulator:
    """A loaded image: routes walked, delivered rows as matrices, neuron parameters."""

    def __init__(self, program: McProgram, chip):
        self.p, self.chip = program, chip
        self.board = Board(chip)
        c, n, k, r = program.cores, program.neurons, program.keys, program.rows
        self.N, self.P, self.C = program.n_neurons, int(program.meta["ports"]), program.n_cores
        S = self.N + self.P
        self.params = neuron.NeuronParams(**{key: n[key].astype(np.int64) for key in ("threshold", "bias", "du", "dv", "v0")},
                                          reset_zero=n["reset"] == 1, bits=n["bits"].astype(np.int64))
        self.router = Router(program, chip, self.board)
        L = len(self.board.chips) * N_LINKS
        self.lookups, self.hops, self.dropped = (np.zeros(S, np.int64) for _ in range(3))
        link_rows, link_cols, deliv_src, deliv_core = [], [], [], []
        key_of = np.zeros(S, np.int64)
        self.sends = np.zeros(S, np.int64)  # 1: the source sends a packet per spike
        for v in range(len(k["vertex_base"])):
            src = k["vertex_sources"][k["vertex_start"][v]:k["vertex_start"][v + 1]]
            keys = int(k["vertex_base"][v]) + np.arange(len(src), dtype=np.int64)
            key_of[src] = keys
            if not k["vertex_sends"][v]:
                continue
            self.sends[src] = 1
            j = self.router.walk(keys, tuple(k["vertex_chip"][v].tolist()))
            self.lookups[src], self.hops[src], self.dropped[src] = j["lookups"], j["hops"], j["dropped"]
            for group, link in j["links"]:
                link_rows.append(src[group])
                link_cols.append(np.full(len(group), link))
            for group, core in j["deliveries"]:
                deliv_src.append(src[group])
                deliv_core.append(np.full(len(group), core))
        cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64)  # noqa: E731
        link_rows, link_cols, deliv_src, deliv_core = map(cat, (link_rows, link_cols, deliv_src, deliv_core))
        self.link_use = sp.csr_matrix((np.ones(len(link_rows), np.int64), (link_rows, link_cols)), shape=(S, L))
        self.deliveries = sp.csr_matrix((np.ones(len(deliv_src), np.int64), (deliv_src, deliv_core)), shape=(S, self.C))
        # each delivery: the core's master table picks a block of rows, the key's index a row
        rows_src, rows_row = [], []
        unknown = np.zeros(S, np.int64)
        for core in range(self.C):
            at = deliv_core == core
            srcs = deliv_src[at]
            if not len(srcs):
                continue
            a, b = int(r["mpt_start"][core]), int(r["mpt_start"][core + 1])
            keys = key_of[srcs]
            e = first_match(keys, r["mpt_key"][a:b], r["mpt_mask"][a:b])
            idx = np.where(e >= 0, keys & ~r["mpt_mask"][a:b][np.maximum(e, 0)], 0) if b > a else np.zeros(len(keys), np.int64)
            ok = (e >= 0) & (idx < r["mpt_count"][a:b][np.maximum(e, 0)] if b > a else np.zeros(len(keys), bool))
            np.add.at(unknown, srcs[~ok], 1)
            rows_src.append(srcs[ok])
            rows_row.append(r["mpt_row"][a:b][e[ok]] + idx[ok])
        self.dropped += unknown
        rows_src, rows_row = cat(rows_src), cat(rows_row)
        lengths = np.diff(r["row_start"])[rows_row]
        syn = (np.repeat(r["row_start"][rows_row], lengths) + np.arange(lengths.sum()) -
               np.repeat(np.cumsum(lengths) - lengths, lengths)) if len(rows_row) else np.zeros(0, np.int64)
        syn_src = np.repeat(rows_src, lengths)
        row_core = np.repeat(np.arange(self.C), np.diff(r["mpt_start"]))  # core of each master entry
        entry_of_row = np.zeros(len(r["row_start"]) - 1, np.int64)
        for e in range(len(r["mpt_row"])):
            entry_of_row[r["mpt_row"][e]:r["mpt_row"][e] + r["mpt_count"][e]] = e
        syn_core = np.repeat(row_core[entry_of_row[rows_row]], lengths) if len(rows_row) else np.zeros(0, np.int64)
        target = c["start"][syn_core] + r["syn_target"][syn]
        weight = r["syn_weight"][syn] << r["syn_exponent"][syn].astype(np.int64)
        delay = r["syn_delay"][syn]
        self.synapses, self.fan = {}, {}
        for d in np.unique(delay).tolist():
            sel = delay == d
            self.synapses[d] = sp.csr_matrix((weight[sel], (syn_src[sel], target[sel])), shape=(S, self.N), dtype=np.int64)
            self.fan[d] = np.bincount(syn_src[sel], minlength=S).astype(np.int64)
        self.events = sp.csr_matrix((np.ones(len(syn_src), np.int64), (syn_src, syn_core)), shape=(S, self.C))
        self.max_delay = max(self.fan, default=1)
        self.core_neurons = np.diff(c["start"]).astype(np.float64)

    # ------------------------------------------------------------------------------ running

    def run(self, inputs, timesteps=None, record=None) -> RunResult:
        meta = self.p.meta
        arrays, B, T = bind_inputs(meta, inputs, timesteps)
        steps = T + int(meta["depth"]) - 1
        N, P = self.N, self.P
        from nmc.limits import check_bytes, check_work

        check_work(B, steps, N + P, "the emulator run")
        if record:
            check_bytes(B * steps * N, "recording the spikes")
        state = neuron.NeuronState.initial(self.params, B)
        emitted: dict = {}
        ports_at = PortEncoder(meta, arrays, B, P, T).at
        counts = np.zeros((B, N), np.int64)
        recorded = np.zeros((B, steps, N), np.int8) if record else None
        tally = {"synaptic_ops": 0, "packets": 0, "dropped": 0, "lookups": 0, "hops": 0, "events": 0, "late_steps": 0}
        link_packets = np.zeros(self.link_use.shape[1], np.int64)
        worst = [0.0]
        step_cycles = []

        def emit(t, spikes, ports):
            out = np.concatenate([np.zeros((B, N), np.int64) if spikes is None else spikes, ports], axis=1)
            emitted[t] = out
            emitted.pop(t - self.max_delay - 1, None)
            active = (out != 0).astype(np.int64) * self.sends  # packets: the spikes of sources with destinations
            per_source = active.sum(axis=0)
            tally["packets"] += int(per_source.sum())
            tally["dropped"] += int(per_source @ self.dropped)
            tally["lookups"] += int(per_source @ self.lookups)
            tally["hops"] += int(per_source @ self.hops)
            link_packets[:] += np.asarray(self.link_use.T @ per_source).astype(np.int64)
            packets = np.asarray(active @ self.deliveries, np.float64) if self.C else np.zeros((B, 0))
            events = np.asarray(active @ self.events, np.float64) if self.C else np.zeros((B, 0))
            tally["events"] += int(events.sum())
            busy = cycles(self.chip, packets, events, self.core_neurons[None, :]).max(axis=1) if self.C else np.zeros(B)
            step_cycles.append(busy)
            worst[0] = max(worst[0], float(busy.max()) if len(busy) else 0.0)

        emit(-1, None, ports_at(0))
        for t in range(steps):
            current = np.zeros((B, N), np.int64)
            for d, W in self.synapses.items():
                x = emitted.get(t - d)
                if x is None:
                    continue
                if W.nnz:
                    current += (sp.csr_matrix(x) @ W).toarray()
                tally["synaptic_ops"] += int(self.fan[d][np.nonzero(x)[1]].sum())
            spikes = state.step(current)
            counts += spikes
            if recorded is not None:
                recorded[:, t] = spikes
            emit(t, spikes, ports_at(t + 1))
        budget = self.chip.core.clock_hz * self.chip.core.step_s
        tally["late_steps"] = int(sum(int(np.sum(b > budget)) for b in step_cycles))
        return self._result(B, T, steps, state.v, counts, recorded, record, tally, link_packets, worst[0])

    def _result(self, B, T, steps, v, counts, recorded, record, tally, link_packets, worst) -> RunResult:
        outputs, voltages, rec = read_outputs(self.p.meta, B, steps, v, counts, recorded, record,
                                              columns=self.p.ports["population_hw"])
        stats = self.statistics(B, steps, tally, link_packets, worst)
        spikes = int(counts.sum())
        return RunResult("emulator", outputs, voltages=voltages, recorded=rec, timesteps=T, steps=steps, spikes=spikes,
                         synaptic_ops=int(tally["synaptic_ops"]), stats={"spikes": spikes, **stats})

    def statistics(self, B, steps, tally, link_packets, worst) -> dict:
        e, core = self.chip.energy, self.chip.core
        updates = B * steps * self.N
        energy = (tally["events"] * e.synaptic_event_j + updates * e.neuron_update_j + tally["hops"] * e.packet_hop_j) / max(B, 1)
        capacity = self.chip.links.packets_per_s * core.step_s
        links = []
        for i in np.flatnonzero(link_packets).tolist():
            c, link = divmod(i, N_LINKS)
            a = self.board.chips[c]
            links.append({"from": list(a), "to": list(self.board.neighbour(a, link)), "link": LINKS[link], "kind": "inter-chip",
                          "spikes_per_step": float(link_packets[i] / max(B * steps, 1)), "capacity": capacity})
        busiest = max(links, key=lambda r: r["spikes_per_step"]) if links else None
        step_time = worst / core.clock_hz
        return {"energy_per_inference_j": float(energy), "links": links, "packets": int(tally["packets"]),
                "dropped_packets": int(tally["dropped"]), "lookups": int(tally["lookups"]), "hops": int(tally["hops"]),
                "hops_on_chip": 0, "hops_between_chips": int(tally["hops"]), "hops_host": 0,
                "synaptic_events": int(tally["events"]), "synaptic_ops": int(tally["synaptic_ops"]),
                "neuron_updates": int(updates), "busiest_link": busiest, "time_per_step_s": step_time,
                "real_time_step_s": core.step_s, "kept_real_time": bool(step_time <= core.step_s),
                "late_steps": int(tally["late_steps"])}


def load_program(image) -> tuple[McProgram, object]:
    sections = getattr(image, "sections", None)
    if not isinstance(sections, dict):
        raise UsageError("the emulator runs a compiled image (.nmb) for a multicast target",
                         hint="compile the model with nmc compile --target spinnaker2 (or spinnaker1, ...)")
    chip = class_chip(sections, "multicast")
    return load_sections(sections, chip), chip


def prepare(image):
    """``execute(inputs, timesteps=None, record=None) -> RunResult`` for an image with multicast sections."""
    emulator = Emulator(*load_program(image))

    def execute(inputs, timesteps=None, record=None) -> RunResult:
        return emulator.run(inputs, timesteps, record)

    return execute
