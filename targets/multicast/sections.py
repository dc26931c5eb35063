"""The multicast class's image sections: emitted from a placed graph, parsed back with checks
(docs/multicast-target.md has every array).

Each section is an array container (the mesh class's format, :func:`nmc.targets.mesh.sections.pack`):

* ``multicast.cores``   ``chip`` [C, 2], ``proc`` [C], ``start`` [C+1] (hardware neurons of
  core c: ``start[c]:start[c+1]``), ``memory_bits`` [C];
* ``multicast.neurons`` per hardware neuron: ``threshold``, ``bias``, ``du``, ``dv``, ``v0``,
  ``reset`` (0 subtract, 1 zero), ``bits``;
* ``multicast.keys``    per vertex (a key range): ``vertex_core`` (-1: the host),
  ``vertex_chip`` [V, 2], ``vertex_base``, ``vertex_bits``, ``vertex_sends`` (u8: 1 when the
  vertex has destinations; a vertex without sends no packets), and its sources in key order
  (``vertex_start`` [V+1], ``vertex_sources``: hardware neuron ``0..N-1`` or host port
  ``N..N+P-1``);
* ``multicast.tables``  per chip (board order) its table after compression (``table_start``,
  ``key``, ``mask``, ``links`` bit set of the six links, ``proc_start``/``procs``) and before
  (the same with ``raw_`` in front, and ``raw_defaultable``);
* ``multicast.rows``    per core its master population table (``mpt_start`` [C+1], ``mpt_key``,
  ``mpt_mask``, ``mpt_row`` first row, ``mpt_count`` rows) and the synaptic rows (``row_start``
  [R+1]; per synapse ``syn_target`` core-local, ``syn_weight``, ``syn_exponent``, ``syn_delay``);
* ``multicast.ports``   ``meta`` (UTF-8 JSON, as the mesh class's) and ``population_hw``.

Contract: :func:`emit_sections` is deterministic; :func:`load_sections` returns a
:class:`McProgram` or raises NmcError naming the section and the fault, whatever the bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.core import Graph
from nmc.targets.mapping.netlist import synapses
from nmc.targets.mapping.shapes import synapse_count
from nmc.targets.mesh.sections import pack, ports_meta, unpack
from nmc.targets.multicast.board import Board
from nmc.targets.multicast.mapping import McMapping, mapping_of
from nmc.targets.multicast.table import N_LINKS, RouteTables, ranges
from nmc.targets.neurons import NEURON_ARRAYS, neuron_arrays
from nmc.targets.sections import CoreCounts, check, check_offsets, check_within, inconsistent, read_arrays, section_chip

SECTIONS = ("multicast.cores", "multicast.neurons", "multicast.keys", "multicast.tables", "multicast.rows",
            "multicast.ports")
_SCHEMA = {
    "multicast.cores": {"chip": 2, "proc": 1, "start": 1, "memory_bits": 1},
    "multicast.neurons": {k: 1 for k in NEURON_ARRAYS},
    "multicast.keys": {"vertex_core": 1, "vertex_chip": 2, "vertex_base": 1, "vertex_bits": 1, "vertex_sends": 1,
                       "vertex_start": 1,
                       "vertex_sources": 1},
    "multicast.tables": {**{k: 1 for k in ("table_start", "key", "mask", "links", "proc_start", "procs")},
                         **{f"raw_{k}": 1 for k in ("table_start", "key", "mask", "links", "proc_start", "procs",
                                                    "defaultable")}},
    "multicast.rows": {k: 1 for k in ("mpt_start", "mpt_key", "mpt_mask", "mpt_row", "mpt_count", "row_start",
                                      "syn_target", "syn_weight", "syn_exponent", "syn_delay")},
    "multicast.ports": {"meta": 1, "population_hw": 1},
}
LINK_MASK = (1 << N_LINKS) - 1


def _table_arrays(tables: RouteTables, board: Board, prefix: str = "") -> dict:
    """The image's arrays of ``tables`` (chips labelled ``(x, y)``) over every chip of the
    board, in board order (a chip without a table has an empty one), with their defaultable
    flags if they have them."""
    at = np.array([board.index[c] for c in tables.chips], np.int64)
    order = np.argsort(at, kind="stable")
    ordered = tables.take(order)
    counts = np.zeros(len(board.chips), np.int64)
    counts[at[order]] = ordered.sizes()
    # each distinct route word once: its links, and its processors (route r's: flat[first[r]:][:n_procs[r]])
    procs = [[p - N_LINKS for p in range(N_LINKS, r.bit_length()) if r >> p & 1] for r in tables.routes]
    n_procs = np.array([len(p) for p in procs], np.int64)
    first = np.cumsum(n_procs) - n_procs
    flat = np.array([p for ps in procs for p in ps], np.int64)
    proc_start, rows = ranges(first[ordered.route], n_procs[ordered.route])
    arrays = {f"{prefix}table_start": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
              f"{prefix}key": ordered.key.astype(np.int64),
              f"{prefix}mask": ordered.mask.astype(np.int64),
              f"{prefix}links": np.array([r & LINK_MASK for r in tables.routes], np.uint8)[ordered.route],
              f"{prefix}proc_start": proc_start,
              f"{prefix}procs": flat[rows]}
    if ordered.defaultable is not None:
        arrays[f"{prefix}defaultable"] = ordered.defaultable.astype(np.uint8)
    return arrays


def _rows(m: McMapping, key_bits: int) -> dict:
    """The ``multicast.rows`` arrays of mapping ``m`` (module docstring): per core a block of
    rows for every vertex that sends to it, cores in order and a core's blocks by key; in a
    block one row per key of the vertex; a row's synapses by local target, then delay, then
    projection order (the order :func:`~nmc.targets.mapping.netlist.synapses` gives).

    The synapses are sorted once, by one int64 key ``(row · L + target) · D + delay`` (L the
    largest core, D the longest delay + 1) with a stable argsort; before the sort each synapse
    holds only that key, its int32 target, int64 weight and its projection's index, written
    in place into arrays sized by :func:`~nmc.targets.mapping.shapes.synapse_count`."""
    net, vertices = m.net, m.vertices()
    C = len(m.cores)
    ints = lambda xs: np.asarray(xs, np.int64)  # noqa: E731
    vertex_of = m.vertex_of()
    key_index = m.source_keys() - ints([v.base for v in vertices])[vertex_of]  # a source's key within its vertex
    local_of = m.hw_of - m.core_start[m.core_of]  # a neuron's index on its core
    blocks = sorted(((c, i) for i, d in enumerate(m.destinations()) for c in d), key=lambda cv: (cv[0], vertices[cv[1]].base))
    mpt_start = np.searchsorted(ints([c for c, _ in blocks]), np.arange(C + 1)) if blocks else np.zeros(C + 1, np.int64)
    sizes = ints([len(vertices[v].sources) for _, v in blocks])
    first_row = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    R = int(first_row[-1])
    V = max(len(vertices), 1)
    block_code = ints([c * V + v for c, v in blocks])
    by_code = np.argsort(block_code, kind="stable")
    codes = block_code[by_code]
    projections = [(pop, c.owner) for pop in net.populations for c in pop.currents]
    L = int(np.diff(m.core_start).max(initial=1))
    D = max((p.delay for _, p in projections), default=0) + 1
    if R * L * D >= 1 << 62:
        raise NmcError(f"{R} synaptic rows on cores of up to {L} neurons with delays up to {D - 1}: too many "
                       "to index", hint="a smaller network, or more neurons per core")
    ends = np.cumsum([0] + [synapse_count(p) for _, p in projections])
    S = int(ends[-1])
    key, target, weight = np.empty(S, np.int64), np.empty(S, np.int32), np.empty(S, np.int64)
    part = np.repeat(np.arange(len(projections), dtype=np.int32), np.diff(ends))
    per_row = np.zeros(R, np.int64)
    for (pop, p), a, b in zip(projections, ends[:-1].tolist(), ends[1:].tolist()):
        src, tgt, weight[a:b] = synapses(p)
        s = src + net.source_offset[p.src.owner]
        t = tgt + net.neuron_offset[pop]
        row = first_row[by_code[np.searchsorted(codes, m.core_of[t] * V + vertex_of[s])]] + key_index[s]
        per_row += np.bincount(row, minlength=R)
        target[a:b] = local_of[t]
        key[a:b] = (row * L + target[a:b]) * D + p.delay
    order = np.argsort(key, kind="stable")
    del key
    part = part[order]
    return {"mpt_start": mpt_start, "mpt_key": ints([vertices[v].base for _, v in blocks]),
            "mpt_mask": ints([vertices[v].mask(key_bits) for _, v in blocks]),
            "mpt_row": first_row[:-1], "mpt_count": sizes,
            "row_start": np.concatenate([[0], np.cumsum(per_row)]).astype(np.int64),
            "syn_target": target[order].astype(np.int64), "syn_weight": weight[order],
            "syn_exponent": np.array([p.exponent for _, p in projections], np.uint8)[part],
            "syn_delay": ints([p.delay for _, p in projections])[part]}


def emit_sections(graph: Graph, chip) -> dict[str, bytes]:
    """The hardware sections of a placed graph (module docstring)."""
    m = mapping_of(graph, chip)
    net = m.net
    N, P, C = net.n_neurons, net.n_ports, len(m.cores)
    ints = lambda xs: np.asarray(xs, np.int64)  # noqa: E731
    cores = {"chip": ints(m.core_chip).reshape(C, 2), "proc": ints(m.core_proc), "start": m.core_start,
             "memory_bits": ints([c.synapse_bits for c in m.cores])}
    params = neuron_arrays(net, m.hw_of)
    # keys: netlist sources -> hardware source ids (neurons 0..N-1, ports N..N+P-1)
    hw_source = np.concatenate([N + np.arange(P, dtype=np.int64), m.hw_of])
    vertices = m.vertices()
    keys = {"vertex_core": ints([v.core for v in vertices]), "vertex_chip": ints([v.chip for v in vertices]).reshape(-1, 2),
            "vertex_base": ints([v.base for v in vertices]), "vertex_bits": ints([v.bits for v in vertices]),
            "vertex_sends": np.array([bool(d) for d in m.destinations()], np.uint8),
            "vertex_start": np.cumsum([0] + [len(v.sources) for v in vertices]),
            "vertex_sources": hw_source[np.concatenate([v.sources for v in vertices])] if vertices else ints([])}
    board = Board(chip)
    tables = {**_table_arrays(m.compressed_tables(), board), **_table_arrays(m.tables(), board, "raw_")}
    rows = _rows(m, chip.router.key_bits)
    meta = json.dumps(ports_meta(graph, m), sort_keys=True, separators=(",", ":")).encode()
    ports = {"meta": np.frombuffer(meta, np.uint8), "population_hw": m.hw_of}
    return {"multicast.cores": pack(cores), "multicast.neurons": pack(params), "multicast.keys": pack(keys),
            "multicast.tables": pack(tables), "multicast.rows": pack(rows), "multicast.ports": pack(ports)}


# -------------------------------------------------------------------------------- loading


@dataclass
class McProgram(CoreCounts):
    """The parsed, cross-checked sections (names as in the module docstring)."""

    cores: dict
    neurons: dict
    keys: dict
    tables: dict
    rows: dict
    ports: dict
    meta: dict


def _check_tables(t: dict, prefix: str, n_chips: int, key_space: int, procs: int) -> None:
    sec = "multicast.tables"
    E = len(t[f"{prefix}key"])
    check_offsets(t[f"{prefix}table_start"], n_chips, E, sec, f"{prefix}table_start")
    for k in ("mask", "links"):
        check(len(t[f"{prefix}{k}"]) == E, sec, f"'{prefix}{k}' has {len(t[prefix + k])} entries for {E}")
    check_within(t[f"{prefix}key"], 0, key_space, sec, f"{prefix}key")
    check_within(t[f"{prefix}mask"], 0, key_space, sec, f"{prefix}mask")
    check(bool(np.all(t[f"{prefix}key"] & ~t[f"{prefix}mask"] == 0)), sec, f"a '{prefix}key' has bits outside its mask")
    check_within(t[f"{prefix}links"], 0, 1 << N_LINKS, sec, f"{prefix}links")
    check_offsets(t[f"{prefix}proc_start"], E, len(t[f"{prefix}procs"]), sec, f"{prefix}proc_start")
    check_within(t[f"{prefix}procs"], 0, procs, sec, f"{prefix}procs")


def _check_memory(chip, cores: dict, rows: dict, row_core: np.ndarray, syn_core: np.ndarray) -> None:
    """Every core's memory within the chip's (docs/multicast-target.md, "Partitioning"): neuron
    state and master-table entries in local memory; a header per row with synapses and a word
    per synapse in local memory or the core's SDRAM share."""
    k = chip.core
    C = len(cores["start"]) - 1
    lengths = np.diff(rows["row_start"])
    full = np.bincount(row_core[(lengths > 0) & (row_core >= 0)], minlength=C)
    synapses = np.bincount(syn_core, minlength=C) if len(syn_core) else np.zeros(C, np.int64)
    row_bytes = full * k.row_header_bytes + synapses * k.synapse_bytes
    local = np.diff(cores["start"]) * k.neuron_bytes + np.diff(rows["mpt_start"]) * k.master_entry_bytes
    if k.rows_in == "local":
        local, row_bytes = local + row_bytes, np.zeros(C, np.int64)
    for used, limit, what in ((local, k.local_memory_bytes, "local memory"), (row_bytes, k.row_memory_bytes, "SDRAM rows")):
        worst = int(np.argmax(used)) if C else 0
        check(C == 0 or int(used[worst]) <= limit, "multicast.rows",
              f"core {worst} needs {int(used[worst]) if C else 0} bytes of {what}; the chip gives a core {limit}")


def load_sections(sections: dict, chip=None) -> McProgram:
    """Parse and cross-check the multicast sections against ``chip`` (by default the image's
    own ``chip`` section); NmcError naming the section on any fault (module contract)."""
    from nmc.targets.mesh import validate

    if chip is None:
        if not isinstance(sections.get("chip"), bytes | bytearray):
            raise NmcError("the image has no 'chip' section; the emulator needs the chip description")
        chip = section_chip(sections["chip"])
    parsed = read_arrays(sections, _SCHEMA, unpack, hint="compile the model for a multicast target")
    try:
        meta = json.loads(parsed["multicast.ports"]["meta"].tobytes().decode())
        validate.check_meta(meta)
        validate.check_ports(meta)
    except NmcError as err:
        raise NmcError(err.message.replace("mesh.ports", "multicast.ports"), hint=err.hint) from None
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError) as err:
        raise inconsistent("multicast.ports", f"its meta is not the expected JSON ({err})") from None
    c, n, k, t, r = (parsed[s] for s in SECTIONS[:5])
    board = Board(chip)
    procs, n_chips, key_space = board.processors, len(board.chips), 1 << chip.router.key_bits
    C = len(c["start"]) - 1
    check(C >= 1 and c["chip"].shape == (C, 2) and len(c["proc"]) == C and len(c["memory_bits"]) == C,
          "multicast.cores", "core tables disagree on the number of cores")
    N = int(c["start"][-1])
    check_offsets(c["start"], C, N, "multicast.cores", "start")
    check_within(c["proc"], 0, procs, "multicast.cores", "proc")
    slots = set()
    for (x, y), p in zip(c["chip"].tolist(), c["proc"].tolist()):
        check((x, y) in board.index, "multicast.cores", f"a core is on chip ({x}, {y}), which the board does not have")
        check((x, y, p) not in slots, "multicast.cores", f"two cores share processor {p} of chip ({x}, {y})")
        slots.add((x, y, p))
    for key in _SCHEMA["multicast.neurons"]:
        check(len(n[key]) == N, "multicast.neurons", f"'{key}' has {len(n[key])} entries for {N} neurons")
    state = min(chip.state.current_bits, chip.state.voltage_bits)
    check_within(n["bits"], 2, state + 1, "multicast.neurons", "bits")
    check_within(n["du"], 0, 4097, "multicast.neurons", "du")
    check_within(n["dv"], 0, 4097, "multicast.neurons", "dv")
    check_within(n["reset"], 0, 2, "multicast.neurons", "reset")
    for key in ("threshold", "bias", "v0"):
        check(n[key].dtype.kind != "f", "multicast.neurons", f"'{key}' must hold integers")
    P = int(meta["ports"])
    V = len(k["vertex_base"])
    for key in ("vertex_core", "vertex_bits", "vertex_sends"):
        check(len(k[key]) == V, "multicast.keys", f"'{key}' has {len(k[key])} entries for {V} vertices")
    check(k["vertex_chip"].shape == (V, 2), "multicast.keys", "'vertex_chip' must be [vertices, 2]")
    check_offsets(k["vertex_start"], V, len(k["vertex_sources"]), "multicast.keys", "vertex_start")
    check_within(k["vertex_core"], -1, C, "multicast.keys", "vertex_core")
    check_within(k["vertex_bits"], 0, chip.router.key_bits + 1, "multicast.keys", "vertex_bits")
    check_within(k["vertex_sends"], 0, 2, "multicast.keys", "vertex_sends")
    check_within(k["vertex_sources"], 0, N + P, "multicast.keys", "vertex_sources")
    src = k["vertex_sources"]
    check(len(src) == N + P and bool(np.array_equal(np.sort(src), np.arange(N + P))), "multicast.keys",
          "the vertices' sources are not every neuron and port exactly once")
    sizes = np.diff(k["vertex_start"])
    check(bool(np.all(sizes <= (1 << k["vertex_bits"]))), "multicast.keys", "a vertex has more sources than keys")
    base, width = k["vertex_base"], 1 << k["vertex_bits"]
    check(bool(np.all(base % width == 0)) and bool(np.all(base >= 0)) and bool(np.all(base + width <= key_space)),
          "multicast.keys", "a vertex's key range is not aligned or leaves the key space")
    order = np.argsort(base, kind="stable")
    check(bool(np.all(base[order][1:] >= (base + width)[order][:-1])), "multicast.keys", "two vertices' key ranges overlap")
    for v in range(V):
        core, (x, y) = int(k["vertex_core"][v]), k["vertex_chip"][v].tolist()
        where = (0, 0) if core < 0 else tuple(c["chip"][core].tolist())
        check((x, y) == where, "multicast.keys", f"vertex {v} names chip ({x}, {y}) but its source is on chip {where}")
        s = src[k["vertex_start"][v]:k["vertex_start"][v + 1]]
        if core >= 0:
            check(bool(np.all((s >= c["start"][core]) & (s < c["start"][core + 1]))), "multicast.keys",
                  f"vertex {v} holds neurons of another core than its own")
        else:
            check(bool(np.all(s >= N)), "multicast.keys", f"host vertex {v} holds neurons")
    _check_tables(t, "", n_chips, key_space, procs)
    _check_tables(t, "raw_", n_chips, key_space, procs)
    check(len(t["raw_defaultable"]) == len(t["raw_key"]), "multicast.tables", "'raw_defaultable' does not cover every entry")
    counts = np.diff(t["table_start"])
    check(bool(np.all(counts <= chip.router.entries)), "multicast.tables",
          f"a table has {int(counts.max()) if len(counts) else 0} entries; the router holds {chip.router.entries}")
    M = len(r["mpt_key"])
    check_offsets(r["mpt_start"], C, M, "multicast.rows", "mpt_start")
    for key in ("mpt_mask", "mpt_row", "mpt_count"):
        check(len(r[key]) == M, "multicast.rows", f"'{key}' has {len(r[key])} entries for {M}")
    check(bool(np.all(r["mpt_key"] & ~r["mpt_mask"] == 0)), "multicast.rows", "a master table key has bits outside its mask")
    R = len(r["row_start"]) - 1
    check(R >= 0 and bool(np.all(r["mpt_row"] >= 0)) and bool(np.all(r["mpt_count"] >= 0))
          and bool(np.all(r["mpt_row"] + r["mpt_count"] <= R)), "multicast.rows", "a master table entry's rows leave the row table")
    check(bool(np.all(r["mpt_count"] <= (~r["mpt_mask"] & (key_space - 1)) + 1)), "multicast.rows",
          "a master table entry has more rows than keys")
    S = len(r["syn_target"])
    check_offsets(r["row_start"], R, S, "multicast.rows", "row_start")
    for key in ("syn_weight", "syn_exponent", "syn_delay"):
        check(len(r[key]) == S, "multicast.rows", f"'{key}' has {len(r[key])} entries for {S} synapses")
    lo, hi = chip.formats.weight_range(chip.formats.weight_bits_max)
    check_within(r["syn_weight"], lo, hi + 1, "multicast.rows", "syn_weight")
    check_within(r["syn_exponent"], 0, chip.formats.weight_exponent_max + 1, "multicast.rows", "syn_exponent")
    check_within(r["syn_delay"], 1, chip.core.max_delay + 1, "multicast.rows", "syn_delay")
    # every row belongs to one core's block, and its targets are that core's neurons
    row_core = np.full(R, -1, np.int64)
    entry_core = np.repeat(np.arange(C), np.diff(r["mpt_start"]))
    for e in range(M):
        block = slice(int(r["mpt_row"][e]), int(r["mpt_row"][e] + r["mpt_count"][e]))
        check(bool(np.all(row_core[block] == -1)), "multicast.rows", "two master table entries share rows")
        row_core[block] = entry_core[e]
    syn_core = np.repeat(row_core, np.diff(r["row_start"]))
    check(bool(np.all(syn_core >= 0)) or S == 0, "multicast.rows", "a synaptic row belongs to no master table entry")
    if S:
        check(bool(np.all(r["syn_target"] >= 0)) and bool(np.all(r["syn_target"] < np.diff(c["start"])[syn_core])),
              "multicast.rows", "a synapse targets a neuron outside its core")
    _check_memory(chip, c, r, row_core, syn_core)
    hw = parsed["multicast.ports"]["population_hw"]
    check(len(hw) == N and bool(np.array_equal(np.sort(hw), np.arange(N))), "multicast.ports",
          "'population_hw' is not a permutation of the neurons")
    sizes_ = [int(np.prod(p["shape"])) for p in meta["populations"]]
    check(sum(sizes_) == N, "multicast.ports", "population shapes do not add up to the neurons")
    check(int(meta["timesteps"]) >= 1 and int(meta["depth"]) >= 1, "multicast.ports", "timesteps and depth must be at least 1")
    for e in meta["encoders"]:
        ok = (0 <= e["input"] < len(meta["inputs"])
              or (e["input"] == -1 and len(e.get("constant", ())) == e["size"] and e["encoding"] != "spikes"))
        phase = e.get("phase", 0)
        check(ok and 0 <= e["port"] and e["port"] + e["size"] <= P and isinstance(phase, int) and 0 <= phase < 256
              and e["encoding"] in ("rate", "poisson", "current", "spikes"), "multicast.ports", "a bad encoder entry")
    for o in meta["outputs"]:
        check(0 <= o["population"] < len(sizes_) and o["mode"] in ("count", "membrane")
              and int(np.prod(o["shape"])) == sizes_[o["population"]], "multicast.ports", "a bad output entry")
    return McProgram(c, n, k, t, r, parsed["multicast.ports"], meta)
