"""The mesh class's views of an image for ``nmc inspect``: per-core and per-link tables, the board plot."""

from __future__ import annotations

import numpy as np

from nmc.diagnostics import NmcError
from nmc.plotting import pyplot, save_png
from nmc.targets.mesh.sections import link_rows, load_sections


def core_table(sections: dict[str, bytes]) -> list[dict]:
    """One row per core: id, chip, x, y, neurons, axons, synapse bits, output entries, and the
    populations it holds (``name:neurons``, in graph order)."""
    p = load_sections(sections)
    c = p.cores
    counts = np.diff(c["start"])
    pops = p.meta["populations"]
    sizes = [int(np.prod(q["shape"])) for q in pops]
    pop_of_hw = np.empty(p.n_neurons, np.int64)  # hardware neuron -> population index
    pop_of_hw[p.ports["population_hw"]] = np.repeat(np.arange(len(pops)), sizes)
    rows = []
    for k in range(p.n_cores):
        held = np.bincount(pop_of_hw[c["start"][k]:c["start"][k + 1]], minlength=len(pops))
        rows.append({"core": k, "chip": [int(c["pos"][k, 0]), int(c["pos"][k, 1])], "x": int(c["pos"][k, 2]),
                     "y": int(c["pos"][k, 3]), "neurons": int(counts[k]), "axons": int(c["axons"][k]),
                     "synapse_bits": int(c["synapse_bits"][k]), "outputs": int(c["outputs"][k]),
                     "populations": " ".join(f"{pops[i]['name']}:{int(held[i])}" for i in np.flatnonzero(held))})
    return rows


def link_loads(sections: dict[str, bytes]) -> list[dict]:
    """One row per link used (:func:`~nmc.targets.mesh.sections.link_rows`): its expected
    spikes per step at the compile-time rates as ``load``."""
    r = load_sections(sections).routes
    return link_rows(r, {"load": np.round(r["link_load"], 6)})


def plot_mapping(image, cores: list[dict] | None, links: list[dict] | None, path: str) -> None:
    """The board, cropped to the cores in use and one slot around them: each core in use shaded
    by the fraction of its neurons used (unused slots white, hatched, so they never look like a
    lightly used core), chip boundaries as thick lines, and every link used drawn as an arrow
    coloured and thickened by its expected load (spikes per step; the host sits left of the
    crop).  The two colour bars sit under the drawing, one above the other, so they never overlap."""
    if not cores:
        raise NmcError(f"{image.filename} has no per-core mapping to plot",
                       hint="--plot needs an image compiled for a chip (not --target cpu)")
    plt = pyplot()
    from matplotlib.patches import Rectangle

    chip = image.chip()
    cx, cy, nx, ny = chip.mesh.cores_x, chip.mesh.cores_y, chip.mesh.chips_x, chip.mesh.chips_y
    links = links or []
    pos = [_board_xy(row, cx, cy) for row in cores]
    xs = [x for x, _ in pos] + [p[0] for r in links for p in (r["from"], r["to"]) if p[0] >= 0]
    ys = [y for _, y in pos] + [p[1] for r in links for p in (r["from"], r["to"])]
    x0, x1 = max(min(xs) - 1, 0), min(max(xs) + 1, nx * cx - 1)
    y0, y1 = max(min(ys) - 1, 0), min(max(ys) + 1, ny * cy - 1)
    host = any(r["kind"] == "host" for r in links)
    W, H = x1 - x0 + 1 + host, y1 - y0 + 1
    draw_h = max(2.5, 0.55 * H)  # inches; below it fixed room for the axis labels and the two colour bars
    fig = plt.figure(figsize=(max(4.5, 0.55 * W + 1.5), draw_h + 2.0))
    grid = fig.add_gridspec(5, 1, height_ratios=[draw_h, 0.75, 0.14, 0.7, 0.14], hspace=0)
    ax, cax_util, cax_load = fig.add_subplot(grid[0]), fig.add_subplot(grid[2]), fig.add_subplot(grid[4])
    util_cmap = plt.get_cmap("Blues")
    unorm = plt.Normalize(0, 1)
    used = set(pos)
    for y in range(y0, y1 + 1):
        for x in range(x0, x1 + 1):
            if (x, y) not in used:
                ax.add_patch(Rectangle((x - 0.45, y - 0.45), 0.9, 0.9, fc="white", ec="0.7", lw=0.6, hatch="///"))
    for row, (x, y) in zip(cores, pos):
        u = float(row.get("neurons", 0)) / chip.core.neurons
        ax.add_patch(Rectangle((x - 0.45, y - 0.45), 0.9, 0.9, fc=util_cmap(0.15 + 0.85 * u), ec="0.2", lw=0.8))
        ax.text(x, y, str(row["core"]), ha="center", va="center", fontsize=7, color="white" if u > 0.5 else "black")
    for i in range(nx):  # chip boundaries, clipped to the crop
        for j in range(ny):
            a0, a1 = max(i * cx, x0), min((i + 1) * cx - 1, x1)
            b0, b1 = max(j * cy, y0), min((j + 1) * cy - 1, y1)
            if a0 <= a1 and b0 <= b1:
                ax.add_patch(Rectangle((a0 - 0.5, b0 - 0.5), a1 - a0 + 1, b1 - b0 + 1, fill=False, ec="navy", lw=2.2))
    if host:
        ax.add_patch(Rectangle((x0 - 1.45, y0 - 0.45), 0.9, y1 - y0 + 0.9, fc="0.92", ec="0.5"))
        ax.text(x0 - 1, (y0 + y1) / 2, "host", rotation=90, ha="center", va="center", fontsize=8)
    lnorm = plt.Normalize(0, max([float(r["load"]) for r in links] + [1e-9]))
    lcmap = plt.get_cmap("OrRd")
    for r in sorted(links, key=lambda r: float(r["load"])):
        (a, b), (c, d) = r["from"], r["to"]
        a = x0 - 1 if a < 0 else a
        t = lnorm(float(r["load"]))
        off = 0.12  # the two directions of a link side by side
        ox, oy = (-(d - b) * off, (c - a) * off) if (a, b) != (c, d) else (0, 0)
        ax.annotate("", xy=(c + ox, d + oy), xytext=(a + ox, b + oy), arrowprops=dict(
            arrowstyle="-|>", color=lcmap(0.35 + 0.65 * t), lw=0.8 + 3 * t, shrinkA=3, shrinkB=3, mutation_scale=8))
    ax.set_xlim(x0 - 0.5 - host, x1 + 0.5)
    ax.set_ylim(y0 - 0.5, y1 + 0.5)
    ax.set_aspect("equal")
    ax.set_xticks(range(x0, x1 + 1))
    ax.set_yticks(range(y0, y1 + 1))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("core x (board)")
    ax.set_ylabel("core y (board)")
    ax.set_title(f"{image.target}: {len(cores)} cores, {len(links)} links (unused slots hatched)", fontsize=10)
    # the colour bars under the drawing, one above the other, each with room for its label
    fig.colorbar(plt.cm.ScalarMappable(norm=unorm, cmap=_shifted(plt, util_cmap)), cax=cax_util,
                 orientation="horizontal", label="fraction of the core's neurons used")
    if links:
        fig.colorbar(plt.cm.ScalarMappable(norm=lnorm, cmap=_shifted(plt, lcmap, 0.35)), cax=cax_load,
                     orientation="horizontal", label="link load (spikes per step)")
    else:
        cax_load.set_visible(False)
    save_png(fig, path, dpi=100)


def _shifted(plt, cmap, lo: float = 0.15):
    """``cmap`` from ``lo`` to 1 (what the drawing uses, so the colour bar matches it)."""
    from matplotlib.colors import ListedColormap

    return ListedColormap(cmap(np.linspace(lo, 1, 256)))


def _board_xy(row: dict, cx: int, cy: int) -> tuple[int, int]:
    """Board-wide mesh coordinates of a core row (``chip`` + on-chip ``x``/``y``, or global)."""
    x, y = int(row.get("x", 0)), int(row.get("y", 0))
    chip = row.get("chip")
    if isinstance(chip, list | tuple):
        return chip[0] * cx + x, chip[1] * cy + y
    return x, y
