"""The mesh class's part of the compile report (``nmc compile/inspect --html``, docs/design.md §7).

Three views, each read from the image's sections alone (so ``nmc inspect`` gives what
``nmc compile`` gave):

* :func:`layer_table`: one row per population — neurons, synapses, cores, weight bits, the
  largest fan-in of a neuron and the most input axons any of its cores uses, against the
  chip's ``core.input_axons``;
* :func:`board_view`: the data of the board drawing (JSON-ready): the cores in use with their
  board position, neurons, axons and populations, the links used with their load, the board's
  dimensions;
* :func:`board_svg`: that data drawn as inline SVG — one ``<rect data-core=k>`` per core in use
  shaded by utilisation with a ``<title>`` naming its populations, unused slots hatched, chip
  outlines, links as lines coloured and thickened by load — cropped to the cores in use;
* :func:`energy_estimate`: energy per inference at the compile-time spike rates (the
  emulator's energy model, from the rates ``measure-rates`` stored in the graph).
"""

from __future__ import annotations

from html import escape

import numpy as np

from nmc.targets.mesh.sections import link_rows, load_sections

CELL = 34  # pixels per core slot
PAD = 6


def _chip_of(sections: dict[str, bytes]):
    from nmc.targets.chip import parse_chip

    return parse_chip(sections["chip"].decode("utf-8"), "<image>[chip]")


def _pop_of_hw(p) -> tuple[np.ndarray, list[int]]:
    pops = p.meta["populations"]
    sizes = [int(np.prod(q["shape"])) for q in pops]
    pop_of_hw = np.empty(p.n_neurons, np.int64)
    pop_of_hw[p.ports["population_hw"]] = np.repeat(np.arange(len(pops)), sizes)
    return pop_of_hw, sizes


def layer_table(sections: dict[str, bytes]) -> list[dict]:
    """One row per population, in graph order (module docstring)."""
    p = load_sections(sections)
    chip = _chip_of(sections)
    c, s = p.cores, p.synapses
    pop_of_hw, sizes = _pop_of_hw(p)
    core_of_hw = np.repeat(np.arange(p.n_cores), np.diff(c["start"]))
    axon_core = np.repeat(np.arange(p.n_cores), np.diff(s["axon_start"]))
    syn_core = np.repeat(axon_core, np.diff(s["syn_start"]))
    syn_hw = c["start"][syn_core] + s["syn_target"]
    syn_pop = pop_of_hw[syn_hw] if len(syn_hw) else np.zeros(0, np.int64)
    fan_in = np.bincount(syn_hw, minlength=p.n_neurons)
    n = len(p.meta["populations"])
    # per population in one pass over the neurons and synapses (a mask per population is quadratic in depth)
    pairs = np.unique(np.stack([pop_of_hw, core_of_hw]), axis=1)  # (population, core), sorted
    cores_of = np.split(pairs[1], np.searchsorted(pairs[0], np.arange(1, n)))
    n_syn = np.bincount(syn_pop, minlength=n)
    wmax, emax, fmax = (np.zeros(n, np.int64) for _ in range(3))
    has_w = n_syn > 0
    np.maximum.at(wmax, syn_pop, np.abs(s["syn_weight"].astype(np.int64)))
    np.maximum.at(emax, syn_pop, s["syn_exponent"].astype(np.int64))
    # kernels (mesh.kernels): counted from their geometry
    kr, hw = p.kernels, p.ports["population_hw"]
    offsets = np.cumsum([0] + sizes)
    for j, g in enumerate(p.geometries):
        t0 = int(kr["target"][j])
        k = int(np.searchsorted(offsets, t0, side="right") - 1)
        fan = g.fanin()
        fan_in[hw[t0:t0 + len(fan)]] += fan
        n_syn[k] += int(fan.sum())
        w = kr["weights"][kr["weight_start"][j]:kr["weight_start"][j + 1]]
        wmax[k] = max(wmax[k], max(int(w.max()), -int(w.min())) if len(w) else 0)  # w may be int8
        emax[k] = max(emax[k], int(kr["exponent"][j]))
        has_w[k] = True
    np.maximum.at(fmax, pop_of_hw, fan_in)
    rows = []
    for k, q in enumerate(p.meta["populations"]):
        cores = cores_of[k]
        rows.append({
            "name": q["name"], "neurons": sizes[k], "synapses": int(n_syn[k]),
            "cores": int(len(cores)), "core_ids": [int(v) for v in cores],
            "weight_bits": int(wmax[k]).bit_length() + 1 if has_w[k] else None,
            "weight_exponent_max": int(emax[k]) if has_w[k] else None,
            "max_fan_in": int(fmax[k]),
            "max_core_axons": int(c["axons"][cores].max()) if len(cores) else 0,
            "input_axons_limit": int(chip.core.input_axons),
        })
    return rows


def board_view(sections: dict[str, bytes]) -> dict:
    """The board drawing's data (module docstring), JSON-ready."""
    from nmc.targets.mesh.views import core_table

    p = load_sections(sections)
    chip = _chip_of(sections)
    cx, cy, nx, ny = (int(v) for v in p.cores["mesh"])
    cores = []
    for row in core_table(sections):
        (chx, chy), x, y = row["chip"], row["x"], row["y"]
        cores.append({"core": row["core"], "chip": [chx, chy], "x": chx * cx + x, "y": chy * cy + y,
                      "neurons": row["neurons"], "axons": row["axons"], "synapse_bits": row["synapse_bits"],
                      "utilisation": round(row["neurons"] / chip.core.neurons, 6),
                      "populations": row["populations"]})
    r = p.routes
    links = link_rows(r, {"load": np.round(r["link_load"], 6)})
    return {"kind": "mesh", "cores_x": cx, "cores_y": cy, "chips_x": nx, "chips_y": ny,
            "neurons_per_core": int(chip.core.neurons), "input_axons": int(chip.core.input_axons),
            "cores": cores, "links": links}


def energy_estimate(image) -> float | None:
    """Joules per inference at the compile-time rates: synaptic ops, neuron updates and hops
    per step (the emulator's energy model) times the latency in steps; None when the graph
    carries no rates to go by (it then assumes the default rate, as placement did)."""
    from nmc.targets.mapping.netlist import Netlist
    from nmc.targets.mesh.chipclass import DEFAULT_RATE

    p = load_sections(image.sections)
    chip = _chip_of(image.sections)
    graph = image.graph
    net = Netlist(graph)
    rates = net.rates(graph.meta.get("hw.rate", DEFAULT_RATE))
    N, P = p.n_neurons, int(p.meta["ports"])
    if len(rates) != N + P:
        return None
    hw_source = np.concatenate([N + np.arange(P, dtype=np.int64), p.ports["population_hw"]])
    rate_hw = np.zeros(N + P)
    rate_hw[hw_source] = rates
    s, r = p.synapses, p.routes
    syn_ops = float(np.dot(rate_hw[s["axon_source"]], np.diff(s["syn_start"])))
    for k, g in enumerate(p.geometries):  # kernels: each source's synapses from the geometry
        a = int(p.kernels["source"][k])
        syn_ops += float(np.dot(rate_hw[hw_source[a:a + len(g.fanout())]], g.fanout()))
    kind = r["link_kind"]
    hops_chip = float(r["link_load"][kind == 0].sum())
    hops_other = float(r["link_load"][kind != 0].sum())
    e = chip.energy
    steps = int(p.meta["timesteps"]) + int(p.meta["depth"]) - 1
    per_step = syn_ops * e.synaptic_op_j + N * e.neuron_update_j + hops_chip * e.spike_hop_j + hops_other * e.chip_hop_j
    return float(per_step * steps)


# ----------------------------------------------------------------------------- drawing


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> str:
    t = min(max(t, 0.0), 1.0)
    return "#%02x%02x%02x" % tuple(round(x + (y - x) * t) for x, y in zip(a, b))


def util_colour(u: float) -> str:
    """Utilisation 0..1: pale green-blue to deep blue (a used core is never white)."""
    return _mix((199, 233, 192), (8, 64, 129), u) if u < 1 else "#08306b"


def load_colour(t: float) -> str:
    """Relative link load 0..1: orange to dark red."""
    return _mix((253, 174, 97), (165, 0, 38), t)


def board_svg(board: dict) -> str:
    """The board as inline SVG (module docstring); deterministic text."""
    cx, cy, nx, ny = board["cores_x"], board["cores_y"], board["chips_x"], board["chips_y"]
    cores, links = board["cores"], board["links"]
    host = any(lk["kind"] == "host" for lk in links)
    xs = [c["x"] for c in cores] + [c for lk in links for c in (lk["from"][0], lk["to"][0]) if c >= 0]
    ys = [c["y"] for c in cores] + [c for lk in links for c in (lk["from"][1], lk["to"][1])]
    # crop: the cores in use and one slot around them, inside the board
    x0, x1 = max(min(xs) - 1, 0), min(max(xs) + 1, nx * cx - 1)
    y0, y1 = max(min(ys) - 1, 0), min(max(ys) + 1, ny * cy - 1)
    hx = x0 - 1 if host else x0  # the host column left of the crop
    W, H = x1 - hx + 1, y1 - y0 + 1
    cell = min(max(CELL, 440 // max(W, H)), 64)  # small crops are drawn larger

    def px(x: float) -> float:
        return PAD + (x - hx) * cell

    def py(y: float) -> float:  # y grows upwards on the board
        return PAD + (y1 - y) * cell

    width, height = 2 * PAD + W * cell, 2 * PAD + H * cell
    out = [f'<svg class="board" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="cores and links on the board">',
           '<defs><pattern id="unused" width="6" height="6" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/>'
           '<line x1="0" y1="0" x2="0" y2="6" stroke="#d0d0d0" stroke-width="2"/></pattern></defs>']
    used = {(c["x"], c["y"]) for c in cores}
    out.append('<g class="slots">')
    for y in range(y0, y1 + 1):
        for x in range(x0, x1 + 1):
            if (x, y) not in used:
                out.append(f'<rect class="slot" x="{px(x) + 1}" y="{py(y) + 1}" width="{cell - 2}" '
                           f'height="{cell - 2}" fill="url(#unused)" stroke="#bbb" stroke-width="0.5"/>')
    out.append("</g>")
    out.append('<g class="cores">')
    for c in cores:
        u = c["utilisation"]
        title = (f"core {c['core']} at ({c['x']},{c['y']}) on chip ({c['chip'][0]},{c['chip'][1]}): "
                 f"{c['neurons']} of {board['neurons_per_core']} neurons ({100 * u:.0f}%), "
                 f"{c['axons']} of {board['input_axons']} input axons; populations {c['populations']}")
        out.append(f'<rect data-core="{c["core"]}" x="{px(c["x"]) + 1}" y="{py(c["y"]) + 1}" width="{cell - 2}" '
                   f'height="{cell - 2}" rx="3" fill="{util_colour(u)}" stroke="#333" stroke-width="0.8">'
                   f"<title>{escape(title)}</title></rect>")
        dark = u > 0.45
        out.append(f'<text x="{px(c["x"]) + cell / 2}" y="{py(c["y"]) + cell / 2 + 4}" text-anchor="middle" '
                   f'font-size="11" fill="{"#fff" if dark else "#111"}" pointer-events="none">{c["core"]}</text>')
    out.append("</g>")
    # chip outlines: every chip the crop shows part of
    out.append('<g class="chips" fill="none" stroke="#1f4e79" stroke-width="2.5">')
    for j in range(ny):
        for i in range(nx):
            a0, a1 = max(i * cx, x0), min((i + 1) * cx - 1, x1)
            b0, b1 = max(j * cy, y0), min((j + 1) * cy - 1, y1)
            if a0 > a1 or b0 > b1:
                continue
            out.append(f'<rect data-chip="{i},{j}" x="{px(a0)}" y="{py(b1)}" width="{(a1 - a0 + 1) * cell}" '
                       f'height="{(b1 - b0 + 1) * cell}"><title>chip ({i},{j})</title></rect>')
    out.append("</g>")
    if host:
        out.append(f'<g class="host"><rect x="{px(hx) + 3}" y="{PAD + 3}" width="{cell - 6}" height="{H * cell - 6}" '
                   f'rx="4" fill="#eee" stroke="#777"><title>the host (input port)</title></rect>'
                   f'<text x="{px(hx) + cell / 2}" y="{PAD + H * cell / 2}" font-size="11" text-anchor="middle" '
                   f'transform="rotate(-90 {px(hx) + cell / 2} {PAD + H * cell / 2})">host</text></g>')
    peak = max((lk["load"] for lk in links), default=0.0) or 1.0
    out.append('<g class="links" stroke-linecap="round">')
    for i, lk in sorted(enumerate(links), key=lambda t: (t[1]["load"], t[0])):  # busiest on top
        (a, b), (c_, d) = lk["from"], lk["to"]
        t = lk["load"] / peak
        # offset each direction sideways so that the two directions of a link do not overlap
        dx, dy = c_ - a, d - b
        norm = max(abs(dx) + abs(dy), 1)
        ox, oy = -dy / norm * 4, dx / norm * 4
        xa, ya = px(a) + cell / 2 + ox, py(b) + cell / 2 - oy
        xb, yb = px(c_) + cell / 2 + ox, py(d) + cell / 2 - oy
        cap = "not limited" if lk["capacity"] is None else f"capacity {lk['capacity']}"
        title = f"link ({a},{b})->({c_},{d}), {lk['kind']}: {lk['load']:.4g} spikes per step ({cap})"
        out.append(f'<line data-link="{i}" x1="{xa:.1f}" y1="{ya:.1f}" x2="{xb:.1f}" y2="{yb:.1f}" '
                   f'stroke="{load_colour(t)}" stroke-width="{1.2 + 4.8 * t:.2f}" opacity="0.9">'
                   f"<title>{escape(title)}</title></line>")
    out.append("</g></svg>")
    return "\n".join(out)


def legend_html(board: dict) -> str:
    """The board's legend as HTML (beside the drawing, so it never overlaps it)."""
    peak = max((lk["load"] for lk in board["links"]), default=0.0)
    stops = ", ".join(util_colour(u / 4) for u in range(5))
    lstops = ", ".join(load_colour(u / 4) for u in range(5))
    return ('<div class="legend">'
            f'<div><span class="bar" style="background: linear-gradient(to right, {stops})"></span>'
            f'<span class="ends"><span>0%</span><span>core neurons used</span><span>100%</span></span></div>'
            '<div><span class="swatch unused"></span> slot not used</div>'
            f'<div><span class="bar" style="background: linear-gradient(to right, {lstops})"></span>'
            f'<span class="ends"><span>0</span><span>link load (spikes/step), width too</span>'
            f'<span>{peak:.4g}</span></span></div>'
            '<div><span class="swatch chip"></span> chip boundary</div></div>')
