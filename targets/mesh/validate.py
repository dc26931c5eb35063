"""Field-by-field checks of the mesh class's hardware sections against the chip (issue 22).

:func:`~nmc.targets.mesh.sections.load_sections` checks the container and the tables' shapes
and cross-references; this module checks every remaining field: the ``meta`` JSON of
``mesh.ports`` key by key and type by type, and the values of every array against the chip the
image was compiled for (mesh size, positions on the board, weights and exponents within the
chip's formats, link kinds, finite loads, neuron state within the state widths).  Everything
raises :class:`~nmc.targets.sections.SectionError` (exit 1) naming the section and field.
"""

from __future__ import annotations

import math

import numpy as np

from nmc.targets.sections import inconsistent

ENCODINGS = ("rate", "poisson", "current", "spikes")
MODES = ("count", "membrane")
MAX_ELEMENTS = 1 << 31  # a shape with more elements than this is not a mesh population or input


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _shape(v) -> bool:
    if not isinstance(v, list) or not all(_int(d) and d >= 0 for d in v) or len(v) > 16:
        return False
    return math.prod(v) <= MAX_ELEMENTS


def _need(obj: dict, key: str, ok, what: str, where: str) -> object:
    if key not in obj:
        raise inconsistent("mesh.ports", f"{where} has no '{key}'")
    if not ok(obj[key]):
        raise inconsistent("mesh.ports", f"{where}: '{key}' must be {what}, got {str(obj[key])[:60]!r}")
    return obj[key]


def check_meta(meta) -> None:
    """The ``meta`` JSON of ``mesh.ports``: every key present with the right type."""
    if not isinstance(meta, dict):
        raise inconsistent("mesh.ports", f"its meta must be a JSON object, got {type(meta).__name__}")
    where = "meta"
    for key in ("timesteps", "depth", "ports"):
        _need(meta, key, lambda v: _int(v) and 0 <= v < (1 << 31), "a non-negative integer", where)
    for key in ("inputs", "encoders", "outputs", "populations"):
        _need(meta, key, lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
              "a list of objects", where)
    for i, spec in enumerate(meta["inputs"]):
        w = f"meta inputs[{i}]"
        _need(spec, "shape", _shape, "a list of sizes", w)
        _need(spec, "train", lambda v: isinstance(v, bool), "true or false", w)
    for i, e in enumerate(meta["encoders"]):
        w = f"meta encoders[{i}]"
        _need(e, "encoding", lambda v: v in ENCODINGS, f"one of {', '.join(ENCODINGS)}", w)
        _need(e, "input", _int, "an integer", w)
        _need(e, "port", _int, "an integer", w)
        _need(e, "size", lambda v: _int(v) and 0 < v <= MAX_ELEMENTS, "a positive integer", w)
        if "phase" in e:
            _need(e, "phase", lambda v: _int(v) and 0 <= v < 256, "an integer in 0..255", w)
        if "seed" in e:
            _need(e, "seed", lambda v: _int(v) and 0 <= v < (1 << 64), "an integer in 0..2**64-1", w)
        if "scale" in e:
            _need(e, "scale", lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
                  "a finite number", w)
        if "constant" in e:
            _need(e, "constant", lambda v: isinstance(v, list) and all(
                isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in v),
                "a list of finite numbers", w)
    for i, o in enumerate(meta["outputs"]):
        w = f"meta outputs[{i}]"
        _need(o, "population", _int, "an integer", w)
        _need(o, "mode", lambda v: v in MODES, f"one of {', '.join(MODES)}", w)
        _need(o, "shape", _shape, "a list of sizes", w)
        _need(o, "direct", lambda v: isinstance(v, bool), "true or false", w)
    for i, p in enumerate(meta["populations"]):
        w = f"meta populations[{i}]"
        _need(p, "name", lambda v: isinstance(v, str), "a string", w)
        _need(p, "shape", _shape, "a list of sizes", w)
    if not meta["outputs"]:
        raise inconsistent("mesh.ports", "the image has no outputs")


def check_ports(meta: dict) -> None:
    """Encoders cover every input exactly and the host ports without overlap."""
    inputs, P = meta["inputs"], meta["ports"]
    used = set()
    covered = np.zeros(P, np.int64)
    for i, e in enumerate(meta["encoders"]):
        if e["input"] >= 0:
            if e["input"] >= len(inputs):
                raise inconsistent("mesh.ports", f"encoder {i} reads input {e['input']}; the image has {len(inputs)}")
            size = math.prod(inputs[e["input"]]["shape"])
            if size != e["size"]:
                raise inconsistent("mesh.ports", f"encoder {i} has {e['size']} elements, its input {e['input']} has {size}")
            if (e["encoding"] == "spikes") != inputs[e["input"]]["train"]:
                raise inconsistent("mesh.ports", f"encoder {i}: spike trains must come from inputs marked 'train'")
            used.add(e["input"])
        if not (0 <= e["port"] and e["port"] + e["size"] <= P):
            raise inconsistent("mesh.ports", f"encoder {i} writes ports {e['port']}..{e['port'] + e['size'] - 1}; "
                                       f"the image has {P}")
        covered[e["port"]:e["port"] + e["size"]] += 1
    missing = [i for i in range(len(inputs)) if i not in used]
    if missing:
        raise inconsistent("mesh.ports", f"input {missing[0]} feeds no encoder (the image would ignore it)")
    if P and (covered.max() > 1 or covered.min() < 1):
        raise inconsistent("mesh.ports", "the encoders do not cover the host ports exactly once")


def _finite_range(a: np.ndarray, lo, hi, section: str, name: str) -> None:
    if a.size == 0:
        return
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise inconsistent(section, f"'{name}' has {int(np.sum(~np.isfinite(a)))} non-finite value(s)")
    if int(np.min(a)) < lo or int(np.max(a)) > hi:
        raise inconsistent(section, f"'{name}' has values outside [{lo}, {hi}]")


def check_arrays(c: dict, n: dict, s: dict, r: dict, chip) -> None:
    """Array values against the chip (``chip`` may be None: then only chip-independent checks)."""
    for k in ("threshold", "bias", "du", "dv", "v0"):
        if n[k].dtype.kind == "f":
            raise inconsistent("mesh.neurons", f"'{k}' must hold integers")
    for k in ("axons", "synapse_bits", "outputs"):
        _finite_range(c[k], 0, 1 << 40, "mesh.cores", k)
    for k in ("syn_weight", "syn_target", "syn_delay", "syn_exponent", "axon_source"):
        if s[k].dtype.kind == "f":
            raise inconsistent("mesh.synapses", f"'{k}' must hold integers")
    _finite_range(r["link_load"], 0, 1 << 40, "mesh.routes", "link_load")
    _finite_range(r["link_capacity"], -1, 1 << 40, "mesh.routes", "link_capacity")
    _finite_range(r["link_kind"], 0, 2, "mesh.routes", "link_kind")
    C = len(c["start"]) - 1
    _finite_range(r["group_core"], -1, C - 1, "mesh.routes", "group_core")
    if len(c["mesh"]) != 4:
        raise inconsistent("mesh.cores", f"'mesh' must hold 4 sizes, has {len(c['mesh'])}")
    mesh = [int(v) for v in c["mesh"]]
    if min(mesh) < 1:
        raise inconsistent("mesh.cores", f"'mesh' sizes must be at least 1, got {mesh}")
    if chip is not None:
        m = chip.mesh
        want = [m.cores_x, m.cores_y, m.chips_x, m.chips_y]
        if mesh != want:
            raise inconsistent("mesh.cores", f"'mesh' is {mesh}, the chip '{chip.name}' has {want}")
        f = chip.formats
        _finite_range(s["syn_exponent"], 0, f.weight_exponent_max, "mesh.synapses", "syn_exponent")
        lo, hi = f.weight_range(f.weight_bits_max)
        _finite_range(s["syn_weight"], lo, hi, "mesh.synapses", "syn_weight")
        _finite_range(n["bits"], 2, max(f.voltage_bits, f.current_bits), "mesh.neurons", "bits")
    else:
        _finite_range(s["syn_exponent"], 0, 30, "mesh.synapses", "syn_exponent")
        _finite_range(s["syn_weight"], -(1 << 31), (1 << 31) - 1, "mesh.synapses", "syn_weight")
    limit = (1 << 31) - 1
    for k in ("threshold", "bias", "v0"):
        _finite_range(n[k], -limit, limit, "mesh.neurons", k)
    cx, cy, nx, ny = mesh
    pos = c["pos"]
    for j, (name, hi) in enumerate((("chip x", nx), ("chip y", ny), ("x", cx), ("y", cy))):
        _finite_range(pos[:, j], 0, hi - 1, "mesh.cores", f"pos ({name})")
    links = r["links"]
    W, H = cx * nx, cy * ny
    if len(links):
        xs, ys = links[:, [0, 2]], links[:, [1, 3]]
        _finite_range(xs, -1, W - 1, "mesh.routes", "links (x)")
        _finite_range(ys, 0, H - 1, "mesh.routes", "links (y)")
