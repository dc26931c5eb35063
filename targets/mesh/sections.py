"""The mesh target's hardware sections: emitted from a mapped graph, parsed back with checks.

Every section is an *array container* (exact bytes in docs/mesh-target.md)::

    "NMA1" | u32 count | per array: u16 name length | name (UTF-8) | u8 dtype code
           | u8 ndim | ndim × u64 dims | the elements, little-endian, C order

dtype codes: 0 int64, 1 uint8, 2 float64.  Sections and their arrays:

* ``mesh.cores``     core configuration: ``mesh`` [4], ``pos`` [C, 4] (chip x, chip y, x, y),
  ``start`` [C+1] (hardware neurons of core c are ``start[c]:start[c+1]``), ``axons``,
  ``synapse_bits``, ``outputs`` [C];
* ``mesh.neurons``   per hardware neuron: ``threshold``, ``bias``, ``du``, ``dv``, ``v0``,
  ``reset`` (0 subtract, 1 zero), ``bits``; ``max_spikes`` (u8) only in images with burst
  neurons, the most spikes each sends per step as one graded message (absent: 1);
* ``mesh.synapses``  per core its input axons (``axon_start`` [C+1], ``axon_source``: a
  source id — hardware neuron ``0..N-1`` or host port ``N..N+P-1``) and per axon its synapses
  (``syn_start`` [A+1], ``syn_target`` core-local, ``syn_weight``, ``syn_exponent``,
  ``syn_delay``);
* ``mesh.routes``    ``source_group`` [N+P] (-1: no destination), per group its source core
  (``group_core``, -1 host), destinations and tree links (CSR ``dest_start``/``dests``,
  ``link_start``/``group_links``), the links (``links`` [L, 4], ``link_kind``,
  ``link_load`` spikes per step, ``link_capacity``);
* ``mesh.ports``     ``meta`` (UTF-8 JSON: timesteps, depth, inputs, encoders, outputs,
  populations) and ``population_hw`` (graph neuron order → hardware neuron).

Contract: :func:`emit_sections` is deterministic (same graph and chip, same bytes);
:func:`load_sections` returns a :class:`MeshProgram` or raises NmcError naming the section and
what is wrong — never another exception, whatever the bytes.
"""

from __future__ import annotations

import itertools
import json
import struct
from dataclasses import dataclass

import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.core import Graph
from nmc.ir.snn import MAX_SPIKES
from nmc.targets.mesh.fanin import check_fanin, dendrite_reads, emit_fanin
from nmc.targets.mesh.mapping import Mapping
from nmc.targets.mapping.netlist import pop_name, synapses
from nmc.targets.mapping.shapes import geometry
from nmc.targets.mesh.kernels import ARRAYS as KERNEL_ARRAYS
from nmc.targets.mesh.kernels import KINDS as KERNEL_KINDS
from nmc.targets.mesh.kernels import check_kernels, emit_kernels, kernel_reads
from nmc.targets.neurons import NEURON_ARRAYS, neuron_arrays
from nmc.targets.sections import CoreCounts, SectionError, check, check_offsets, check_within, read_arrays, section_chip

MAGIC = b"NMA1"
DTYPES = {0: np.dtype("<i8"), 1: np.dtype("u1"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("<i2"),
          5: np.dtype("i1")}
CODES = {v: k for k, v in DTYPES.items()}
SIGNED = (np.dtype("i1"), np.dtype("<i2"), np.dtype("<i4"), np.dtype("<i8"))  # narrowest first
NARROW = {"mesh.kernels": ("weights",), "mesh.routes": ("group_links",)}  # arrays load_sections keeps in their stored integer type
SECTIONS = ("mesh.cores", "mesh.neurons", "mesh.synapses", "mesh.routes", "mesh.ports", "mesh.kernels")
PASS_THROUGH = ("ann.flatten", "ann.reshape", "ann.identity", "ann.dropout")  # host ops that only reshape


# ------------------------------------------------------------------------- array container


def _stored_dtype(arr: np.ndarray) -> np.dtype:
    """uint8 stays; floats are float64; other integers take the narrowest signed type that
    holds their values (the synapse tables are most of an image)."""
    if arr.dtype == np.uint8:
        return DTYPES[1]
    if arr.dtype.kind == "f":
        return DTYPES[2]
    lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
    return next(dt for dt in SIGNED if np.iinfo(dt).min <= lo and hi <= np.iinfo(dt).max)


def pack(arrays: dict[str, np.ndarray]) -> bytes:
    """The arrays in the container format of docs/mesh-target.md (deterministic bytes)."""
    out = [MAGIC, struct.pack("<I", len(arrays))]
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        dt = _stored_dtype(arr)
        arr = np.ascontiguousarray(arr, dtype=dt)
        raw = name.encode()
        out += [struct.pack("<H", len(raw)), raw, struct.pack("<BB", CODES[dt], arr.ndim),
                struct.pack(f"<{arr.ndim}Q", *arr.shape), memoryview(arr.reshape(-1).view(np.uint8))]
    return b"".join(out)  # the arrays' bytes copied once, here


def unpack(data: bytes, section: str, narrow: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The arrays of a container (signed integers as int64, whatever width they were stored
    in, but for the arrays named in ``narrow``: those keep their stored type and are views of
    ``data``), or SectionError saying what is malformed."""
    def bad(msg):
        return SectionError(f"image section '{section}' is malformed: {msg}",
                            hint="the image is damaged or was not written by this nmc; compile it again")

    if not isinstance(data, bytes | bytearray) or data[:4] != MAGIC:
        raise bad("it does not start with the array-container magic 'NMA1'")
    data = bytes(data)  # arrays read in place (no copy of bytes): they must not change under them
    pos, out = 8, {}
    if len(data) < 8:
        raise bad("truncated header")
    (count,) = struct.unpack_from("<I", data, 4)
    for _ in range(count):
        if pos + 2 > len(data):
            raise bad("truncated array header")
        (n,) = struct.unpack_from("<H", data, pos)
        pos += 2
        if pos + n + 2 > len(data):
            raise bad("truncated array name")
        try:
            name = bytes(data[pos:pos + n]).decode()
        except UnicodeDecodeError:
            raise bad("an array name is not UTF-8") from None
        code, ndim = struct.unpack_from("<BB", data, pos + n)
        pos += n + 2
        if code not in DTYPES:
            raise bad(f"array '{name}' has unknown dtype code {code}")
        if pos + 8 * ndim > len(data):
            raise bad(f"array '{name}' is truncated")
        shape = struct.unpack_from(f"<{ndim}Q", data, pos)
        pos += 8 * ndim
        size = int(np.prod(shape, dtype=object)) * DTYPES[code].itemsize
        if pos + size > len(data):
            raise bad(f"array '{name}' is truncated ({size} bytes announced, {len(data) - pos} left)")
        arr = np.frombuffer(data, DTYPES[code], count=size // DTYPES[code].itemsize, offset=pos).reshape(shape)
        out[name] = arr.astype(np.int64) if DTYPES[code] in SIGNED and name not in narrow else arr
        pos += size
    if pos != len(data):
        raise bad(f"{len(data) - pos} stray bytes after the last array")
    return out


# ------------------------------------------------------------------------------- emission


def _host_source(graph: Graph, value, what: str):
    """The op ``value`` comes from, through host ops that only reshape."""
    op = value.owner
    while op is not None and op.KIND in PASS_THROUGH:
        op = op.operands[0].owner
    if op is None:
        raise NmcError(f"{what} comes from no op")
    return op


def ports_meta(graph: Graph, m: Mapping) -> dict:
    """The ``ports`` meta of an image (its ``inputs``, ``encoders``, ``outputs``, ``populations``,
    ``timesteps`` and ``depth``) for ``graph`` mapped as ``m``; NmcError when the host would
    compute more than reshapes and constants around the network."""
    net = m.net
    from nmc.semantics import latency_steps

    T = int(graph.meta.get("timesteps", 32))
    inputs = graph.inputs
    encoders = []
    for e in net.encoders:
        src = _host_source(graph, e.x, "an encoder's input")
        entry = {"encoding": e.encoding, "seed": int(e.seed), "scale": float(e.scale), "phase": int(e.phase),
                 "port": net.source_offset[e], "size": e.result.type.size}
        if src.KIND == "ann.input":
            entry["input"] = [i for i, v in enumerate(inputs) if v is src.result][0]
        elif src.KIND == "ann.constant" and e.encoding != "spikes":  # e.g. NIR's always-on bias source
            entry["input"], entry["constant"] = -1, src.value.data.astype(np.float32).ravel().tolist()
        else:
            raise NmcError(f"the mesh target computes no host op '{src.KIND}' before encoder %{e.result.name}",
                           src.loc, hint="the host may only reshape inputs (flatten, reshape) or hold constants "
                                         "for a mesh image")
        encoders.append(entry)
    outputs = []
    for v in graph.outputs:
        d = _host_source(graph, v, "an output")
        if d.KIND != "snn.decode":
            raise NmcError(f"the mesh target computes no host op '{d.KIND}' after the network", d.loc,
                           hint="outputs must be decoded populations (optionally flattened or reshaped)")
        outputs.append({"population": net.populations.index(d.x.owner), "mode": d.mode,
                        "shape": list(v.type.shape), "direct": v.owner is d})
    trains = sorted({x["input"] for x in encoders if x["encoding"] == "spikes"})
    network = Graph(graph.name, graph.meta)  # without the hw ops, which add no delay
    network.ops = [op for op in graph.ops if op.dialect != "hw"]
    return {"timesteps": T, "depth": latency_steps(network, T) - T + 1,
            "inputs": [{"shape": list(v.type.shape), "train": i in trains} for i, v in enumerate(inputs)],
            "encoders": encoders, "outputs": outputs,
            "populations": [{"name": pop_name(p, i), "shape": list(p.result.type.shape)}
                            for i, p in enumerate(net.populations)],
            "ports": net.n_ports}


def emit_sections(graph: Graph, chip, rate: float = 0.25) -> dict[str, bytes]:
    """The hardware sections of a partitioned (and normally placed and routed) graph."""
    m = Mapping(graph, chip)
    net = m.net
    N, P, C = net.n_neurons, net.n_ports, len(m.cores)
    pos = np.array([[*c.chip, *c.xy] if c.chip else [0, 0, *m.position(c.id)] for c in m.cores], np.int64)
    ints = lambda xs: np.asarray(xs, np.int64)  # noqa: E731
    cores = {"mesh": ints([chip.mesh.cores_x, chip.mesh.cores_y, chip.mesh.chips_x, chip.mesh.chips_y]),
             "pos": pos.reshape(C, 4), "start": m.core_start,
             "axons": ints([c.axons for c in m.cores]), "synapse_bits": ints([c.synapse_bits for c in m.cores]),
             "outputs": ints([c.outputs for c in m.cores])}
    params = neuron_arrays(net, m.hw_of)
    if any(pop.max_spikes > 1 for pop in net.populations):  # burst neurons: only such images have it
        params["max_spikes"] = np.ones(N, np.uint8)
        for pop in net.populations:
            params["max_spikes"][m.hw_of[net.neuron_offset[pop]:net.neuron_offset[pop] + pop.result.type.size]] = pop.max_spikes
    # synapses: shaped projections by their geometry (mesh.kernels), the others as explicit
    # lists per core; source ids in hardware numbering
    hw_source = np.concatenate([N + np.arange(P, dtype=np.int64), m.hw_of])
    shaped, rows = [], []  # rows: (core, axon source, local target, weight, exponent, delay)
    kernel_row = {}  # (population, current operand) -> mesh.kernels row
    for pop in net.populations:
        for i, p in enumerate(c.owner for c in pop.currents):
            g = geometry(p)
            if g is not None:
                kernel_row[(pop, i)] = len(shaped)
                shaped.append((p, g))
                continue
            src, tgt, w = synapses(p)
            tgt = tgt + net.neuron_offset[pop]
            core = m.core_of[tgt]
            n = len(src)
            rows.append(np.stack([core, hw_source[src + net.source_offset[p.src.owner]], m.hw_of[tgt] - m.core_start[core],
                                  w, np.full(n, p.exponent), np.full(n, p.delay)], axis=1))
    table = np.concatenate(rows) if rows else np.zeros((0, 6), np.int64)
    table = table[np.lexsort((table[:, 5], table[:, 2], table[:, 1], table[:, 0]))]
    key = table[:, 0] * (N + P) + table[:, 1]  # (core, source) as one int64, sorted already
    axon_first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
    axon_key = table[axon_first, :2]
    syn_start = np.append(axon_first, len(table))
    axon_start = np.searchsorted(axon_key[:, 0], np.arange(C + 1))
    synapses_ = {"axon_start": axon_start, "axon_source": axon_key[:, 1], "syn_start": syn_start,
                 "syn_target": table[:, 2], "syn_weight": table[:, 3],
                 "syn_exponent": table[:, 4].astype(np.uint8), "syn_delay": table[:, 5]}
    # routes, in hardware source numbering
    r = m.routes(net.rates(rate))
    source_group = np.full(N + P, -1, np.int64)
    source_group[hw_source] = r.group_of
    routes = {"source_group": source_group, "group_core": r.group_core, "dest_start": r.dest_start,
              "dests": r.dests, "link_start": r.link_start, "group_links": r.group_links, "links": r.ends,
              "link_kind": r.kind.astype(np.uint8), "link_load": r.load.astype(np.float64),
              "link_capacity": r.capacity(chip)}
    meta = json.dumps(ports_meta(graph, m), sort_keys=True, separators=(",", ":")).encode()
    ports = {"meta": np.frombuffer(meta, np.uint8), "population_hw": m.hw_of}
    out = {"mesh.cores": pack(cores), "mesh.neurons": pack(params), "mesh.synapses": pack(synapses_),
           "mesh.kernels": pack(emit_kernels(shaped, net)), "mesh.routes": pack(routes), "mesh.ports": pack(ports)}
    split = emit_fanin(m, r, kernel_row)
    if split is not None:  # only images with split neurons have it
        out["mesh.fanin"] = pack(split)
    return out


LINK_KINDS = ("on-chip", "inter-chip", "host")


def link_rows(routes: dict, per_link: dict[str, np.ndarray]) -> list[dict]:
    """One row per link of a ``mesh.routes`` table: board coordinates ``from``/``to`` (the host
    is x = -1), ``kind``, the given per-link figures, and ``capacity`` in spikes per step
    (None: not limited)."""
    return [{"from": [a, b], "to": [c, d], "kind": LINK_KINDS[int(k)],
             **{name: float(v[i]) for name, v in per_link.items()},
             "capacity": int(cap) if cap >= 0 else None}
            for i, ((a, b, c, d), k, cap) in enumerate(zip(routes["links"].tolist(), routes["link_kind"],
                                                           routes["link_capacity"]))]


# -------------------------------------------------------------------------------- loading


@dataclass
class MeshProgram(CoreCounts):
    """The parsed, cross-checked hardware sections (names as in the module docstring)."""

    cores: dict
    neurons: dict
    synapses: dict
    routes: dict
    ports: dict
    meta: dict
    kernels: dict
    geometries: list  # one Geometry per kernel row
    fanin: dict | None = None  # mesh.fanin, when the image splits neurons
    split: frozenset = frozenset()  # kernel rows computed on dendrite cores


_SCHEMA = {
    "mesh.cores": {"mesh": 1, "pos": 2, "start": 1, "axons": 1, "synapse_bits": 1, "outputs": 1},
    "mesh.neurons": {k: 1 for k in NEURON_ARRAYS},
    "mesh.synapses": {k: 1 for k in ("axon_start", "axon_source", "syn_start", "syn_target", "syn_weight",
                                     "syn_exponent", "syn_delay")},
    "mesh.routes": {"source_group": 1, "group_core": 1, "dest_start": 1, "dests": 1, "link_start": 1,
                    "group_links": 1, "links": 2, "link_kind": 1, "link_load": 1, "link_capacity": 1},
    "mesh.ports": {"meta": 1, "population_hw": 1},
    "mesh.kernels": KERNEL_ARRAYS,
}


def _unpack_narrow(data: bytes, section: str) -> dict[str, np.ndarray]:
    """:func:`unpack`, the kernels' weights and the routes' tree links in their stored type
    (ResNet-50's 130 million int8 weights would take 1 GiB as int64, their users widen one row
    at a time; VGG-19's 258 M tree links 1.9 GiB, the emulator reads a range at a time)."""
    return unpack(data, section, NARROW.get(section, ()))


class _Reach:
    """The (route group, destination core) pairs of ``mesh.routes``, as sorted int64 keys
    ``group · C + core`` (not a set of tuples: ResNet-50's image has 11.6 million sources)."""

    def __init__(self, r: dict, C: int):
        self.C = C
        groups = np.repeat(np.arange(len(r["group_core"]), dtype=np.int64), np.diff(r["dest_start"]))
        self.keys = np.sort(groups * C + r["dests"])

    def missing(self, group: np.ndarray, core: np.ndarray) -> tuple[int, int] | None:
        """The first ``(group, core)`` pair (in the arrays' order) that the routes do not
        reach, or None; ``group`` >= 0 and ``0 <= core < C``."""
        key = group * self.C + core
        at = np.minimum(np.searchsorted(self.keys, key), max(len(self.keys) - 1, 0))
        lost = np.flatnonzero(self.keys[at] != key) if len(self.keys) else np.arange(len(key))
        return (int(group[lost[0]]), int(core[lost[0]])) if len(lost) else None


def load_sections(sections: dict[str, bytes], chip=None) -> MeshProgram:
    """Parse and cross-check the hardware sections (module contract); every field is checked
    against ``chip`` (by default the image's own ``chip`` section, when it has one)."""
    from nmc.targets.mesh import validate

    if chip is None and isinstance(sections.get("chip"), bytes | bytearray):
        chip = section_chip(sections["chip"])
    parsed = read_arrays(sections, _SCHEMA, _unpack_narrow, hint="compile the model for a mesh target")
    try:
        meta = json.loads(parsed["mesh.ports"]["meta"].tobytes().decode())
        validate.check_meta(meta)
        T, depth = int(meta["timesteps"]), int(meta["depth"])
        for key in ("inputs", "encoders", "outputs", "populations"):
            check(isinstance(meta[key], list), "mesh.ports", f"'{key}' is not a list")
    except SectionError:
        raise
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError) as err:
        raise SectionError(f"image section 'mesh.ports' is malformed: its meta is not the expected JSON ({err})") from None
    c, n, s, r = (parsed[k] for k in SECTIONS[:4])
    C = len(c["start"]) - 1
    check(C >= 1 and c["pos"].shape == (C, 4) and all(len(c[k]) == C for k in ("axons", "synapse_bits", "outputs")),
          "mesh.cores", "core tables disagree on the number of cores")
    validate.check_arrays(c, parsed["mesh.neurons"], parsed["mesh.synapses"], r, chip)
    N = int(c["start"][-1])
    check_offsets(c["start"], C, N, "mesh.cores", "start")
    for k in _SCHEMA["mesh.neurons"]:
        check(len(n[k]) == N, "mesh.neurons", f"'{k}' has {len(n[k])} entries for {N} neurons")
    check(bool(np.all((n["bits"] >= 2) & (n["bits"] <= 32))), "mesh.neurons", "'bits' must lie in 2..32")
    check_within(n["du"], 0, 4097, "mesh.neurons", "du")
    check_within(n["dv"], 0, 4097, "mesh.neurons", "dv")
    check_within(n["reset"], 0, 2, "mesh.neurons", "reset")
    if "max_spikes" in n:  # optional: burst neurons (docs/mesh-target.md)
        top = chip.formats.max_spikes if chip is not None else MAX_SPIKES
        check(len(n["max_spikes"]) == N, "mesh.neurons", f"'max_spikes' has {len(n['max_spikes'])} entries for {N} neurons")
        check_within(n["max_spikes"], 1, top + 1, "mesh.neurons", "max_spikes")
    P = int(meta.get("ports", -1)) if isinstance(meta.get("ports"), int) else -1
    check(P >= 0, "mesh.ports", "'ports' is not a count")
    A = len(s["axon_source"])
    check_offsets(s["axon_start"], C, A, "mesh.synapses", "axon_start")
    S = len(s["syn_target"])
    check_offsets(s["syn_start"], A, S, "mesh.synapses", "syn_start")
    for k in ("syn_weight", "syn_exponent", "syn_delay"):
        check(len(s[k]) == S, "mesh.synapses", f"'{k}' has {len(s[k])} entries for {S} synapses")
    check_within(s["axon_source"], 0, N + P, "mesh.synapses", "axon_source")
    check_within(s["syn_delay"], 1, 1 << 16, "mesh.synapses", "syn_delay")
    axon_core = np.repeat(np.arange(C), np.diff(s["axon_start"]))
    syn_core = np.repeat(axon_core, np.diff(s["syn_start"]))
    check(bool(np.all(s["syn_target"] >= 0)) and bool(np.all(s["syn_target"] < np.diff(c["start"])[syn_core])),
          "mesh.synapses", "a synapse targets a neuron outside its core")
    G = len(r["group_core"])
    check(len(r["source_group"]) == N + P, "mesh.routes", "'source_group' does not cover every source")
    check_within(r["source_group"], -1, G, "mesh.routes", "source_group")
    check_offsets(r["dest_start"], G, len(r["dests"]), "mesh.routes", "dest_start")
    check_offsets(r["link_start"], G, len(r["group_links"]), "mesh.routes", "link_start")
    L = len(r["links"])
    check(r["links"].shape == (L, 4) and len(r["link_kind"]) == L and len(r["link_load"]) == L
          and len(r["link_capacity"]) == L, "mesh.routes", "link tables disagree on the number of links")
    check_within(r["dests"], 0, C, "mesh.routes", "dests")
    check_within(r["group_links"], 0, L, "mesh.routes", "group_links")
    # every axon's source must route to the axon's core
    group = r["source_group"][s["axon_source"]]
    check(bool(np.all(group >= 0)), "mesh.routes", "a core has an input axon whose source routes nowhere")
    reach = _Reach(r, C)
    missing = reach.missing(group, axon_core)
    check(missing is None, "mesh.routes", f"route group {[missing]} does not reach the core of an axon it feeds")
    hw = parsed["mesh.ports"]["population_hw"]
    check(len(hw) == N and (N == 0 or bool(np.array_equal(np.sort(hw), np.arange(N)))), "mesh.ports",
          "'population_hw' is not a permutation of the neurons")
    kr = parsed["mesh.kernels"]
    geometries = check_kernels(kr, N, P, chip, lambda msg: check(False, "mesh.kernels", msg))
    # every receptive field of a kernel must route to the cores of the neurons it drives
    core_of_graph = np.repeat(np.arange(C), np.diff(c["start"]))[hw]
    fan, split = None, frozenset()
    kinds = [KERNEL_KINDS[int(k)] for k in kr["kind"]]
    if "mesh.fanin" in sections:  # optional: split neurons' dendrite cores
        fan = unpack(sections["mesh.fanin"], "mesh.fanin")
        split = frozenset(check_fanin(fan, kr, geometries, kinds, c["start"], core_of_graph, len(r["links"]),
                                      lambda msg: check(False, "mesh.fanin", msg)))
    reads = kernel_reads(kr, geometries, core_of_graph, split)
    if fan is not None:
        reads = itertools.chain(reads, dendrite_reads(fan, kr, geometries, kinds))
    hw_source = np.concatenate([N + np.arange(P, dtype=np.int64), hw])
    for sources, cores in reads:  # one kernel row's (or dendrite core's) pairs at a time
        kgroup = r["source_group"][hw_source[sources]]
        check(bool(np.all(kgroup >= 0)), "mesh.routes", "a kernel reads a source that routes nowhere")
        lost = reach.missing(kgroup, cores)
        check(lost is None, "mesh.routes", f"route group {[lost]} does not reach a core whose kernel reads it")
    check(T >= 1 and depth >= 1, "mesh.ports", "timesteps and depth must be at least 1")
    sizes = [int(np.prod(p["shape"])) for p in meta["populations"]]
    check(sum(sizes) == N, "mesh.ports", "population shapes do not add up to the neurons")
    validate.check_ports(meta)
    for e in meta["encoders"]:
        source_ok = (0 <= e["input"] < len(meta["inputs"])
                     or (e["input"] == -1 and len(e.get("constant", ())) == e["size"] and e["encoding"] != "spikes"))
        phase = e.get("phase", 0)  # absent in images made before encoders had a phase: 0
        check(source_ok and 0 <= e["port"] and e["port"] + e["size"] <= P
              and isinstance(phase, int) and 0 <= phase < 256
              and e["encoding"] in ("rate", "poisson", "current", "spikes"), "mesh.ports", "a bad encoder entry")
    for o in meta["outputs"]:
        check(0 <= o["population"] < len(sizes) and o["mode"] in ("count", "membrane")
              and int(np.prod(o["shape"])) == sizes[o["population"]], "mesh.ports", "a bad output entry")
    return MeshProgram(c, n, s, r, parsed["mesh.ports"], meta, kr, geometries, fan, split)
