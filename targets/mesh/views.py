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
    """The board as a heat map of neurons used per core, chips outlined, with every link used
    drawn as an arrow coloured by its expected load (spikes per step; the host sits at x = -1)."""
    if not cores:
        raise NmcError(f"{image.filename} has no per-core mapping to plot",
                       hint="--plot needs an image compiled for a chip (not --target cpu)")
    plt = pyplot()
    chip = image.chip()
    cx, cy, nx, ny = chip.mesh.cores_x, chip.mesh.cores_y, chip.mesh.chips_x, chip.mesh.chips_y
    grid = np.zeros((ny * cy, nx * cx))
    for row in cores:
        x, y = _board_xy(row, cx, cy)
        grid[y, x] = float(row.get("neurons", 0)) / chip.core.neurons
    fig, ax = plt.subplots(figsize=(max(5, nx * cx * 0.45 + 3), max(4, ny * cy * 0.45 + 1)))
    im = ax.imshow(grid, cmap="YlGnBu", vmin=0, vmax=1, origin="lower", extent=(-0.5, nx * cx - 0.5, -0.5, ny * cy - 0.5))
    for row in cores:  # outline the cores in use, however little of each is used
        x, y = _board_xy(row, cx, cy)
        ax.add_patch(plt.Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, ec="tab:green", lw=1))
    for k in range(1, nx):
        ax.axvline(k * cx - 0.5, color="tab:blue", lw=2)
    for k in range(1, ny):
        ax.axhline(k * cy - 0.5, color="tab:blue", lw=2)
    fig.colorbar(im, ax=ax, label="fraction of the core's neurons used", fraction=0.04, pad=0.02)
    if links:
        loads = np.array([r["load"] for r in links], float)
        norm = plt.Normalize(0, max(float(loads.max()), 1e-9))
        cmap = plt.get_cmap("inferno_r")
        for r, load in zip(links, loads):
            (x0, y0), (x1, y1) = r["from"], r["to"]
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=dict(
                arrowstyle="->", color=cmap(0.15 + 0.85 * norm(load)), lw=0.8 + 3 * norm(load), shrinkA=4, shrinkB=4))
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="link load (spikes per step)",
                     fraction=0.04, pad=0.12)
        ax.set_xlim(-1.5 if any(r["kind"] == "host" for r in links) else -0.5, nx * cx - 0.5)
    ax.set_xlabel("core x (board)")
    ax.set_ylabel("core y (board)")
    ax.set_title(f"{image.target}: {len(cores)} cores, {len(links or [])} links")
    save_png(fig, path, dpi=100)


def _board_xy(row: dict, cx: int, cy: int) -> tuple[int, int]:
    """Board-wide mesh coordinates of a core row (``chip`` + on-chip ``x``/``y``, or global)."""
    x, y = int(row.get("x", 0)), int(row.get("y", 0))
    chip = row.get("chip")
    if isinstance(chip, list | tuple):
        return chip[0] * cx + x, chip[1] * cy + y
    return x, y
