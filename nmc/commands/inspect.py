"""Show what an image holds: header, sections, resources, and the mapping onto cores.

Prints the target, format version, pipeline and source hash; the section table (sizes and
CRC32s); the manifest's resource summary; and, for an image with mesh sections, a table per
core and the busiest links.  --plot draws the board: core utilisation as a heat map and the
links used as arrows coloured by their expected load.

examples:
  nmc inspect model.nmb
  nmc inspect model.nmb --json > model.json
  nmc inspect model.nmb --plot mapping.png
"""

from __future__ import annotations

import json
import zlib

from nmc.diagnostics import NmcError
from nmc.plotting import pyplot, save_png
from nmc.targets.image import CHIP, FORMAT_VERSION, GRAPH, MANIFEST, read_image

NAME = "inspect"
HELP = "show an image's sections, resources and mapping"
OWN_SECTIONS = (MANIFEST, GRAPH, CHIP)
MAX_LINKS = 10


def add_arguments(p) -> None:
    p.add_argument("image", metavar="IMAGE", help="an image written by nmc compile (.nmb)")
    p.add_argument("--json", action="store_true", help="print everything as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="draw the board: core utilisation and link loads")


def _mesh_tables(image) -> tuple[list[dict] | None, list[dict] | None]:
    """(per-core rows, per-link rows) of an image with mesh sections, else (None, None)."""
    if not any(name.startswith("mesh.") for name in image.sections):
        return None, None
    from nmc.targets import mesh

    return mesh.core_table(image.sections), mesh.link_loads(image.sections)


def describe(image) -> dict:
    """Everything ``nmc inspect`` shows, as JSON-ready data."""
    manifest = image.manifest
    cores, links = _mesh_tables(image)
    return {
        "file": image.filename, "target": image.target, "format_version": FORMAT_VERSION,
        "chip_sha256": image.chip_sha256 or None,
        "pipeline": manifest.get("pipeline"), "source_sha256": manifest.get("source_sha256"),
        "compiler": manifest.get("compiler"), "timesteps": manifest.get("timesteps"),
        "latency_steps": manifest.get("latency_steps"),
        "sections": [{"name": n, "bytes": len(b), "crc32": f"{zlib.crc32(b):08x}"} for n, b in sorted(image.sections.items())],
        "resources": manifest.get("resources", {}),
        "cores": cores, "links": links,
    }


def _table(rows: list[dict]) -> list[str]:
    keys = list(rows[0])
    cells = [keys] + [[_cell(r.get(k)) for k in keys] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(keys))]
    return ["  " + "  ".join(c[i].rjust(w) for i, w in enumerate(widths)) for c in cells]


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | tuple):
        return ",".join(str(x) for x in v)
    return "-" if v is None else str(v)


def format_text(info: dict) -> str:
    lines = [f"image {info['file']}: target {info['target']}, format version {info['format_version']}",
             f"  compiler   {info['compiler']}", f"  pipeline   {info['pipeline']}",
             f"  source     sha256 {info['source_sha256']}",
             f"  chip       sha256 {info['chip_sha256'] or '- (no chip)'}",
             f"  timesteps  {info['timesteps']} (latency {info['latency_steps']} steps)", "", "sections:"]
    lines += _table(info["sections"])
    if info["resources"]:
        lines += ["", "resources:"] + [f"  {k:22s} {_cell(v)}" for k, v in sorted(info["resources"].items())
                                       if not isinstance(v, dict | list)]
    if info["cores"]:
        lines += ["", f"cores ({len(info['cores'])}):"] + _table(info["cores"])
    if info["links"]:
        busiest = sorted(info["links"], key=lambda r: -float(r.get("load", 0) or 0))[:MAX_LINKS]
        lines += ["", f"busiest links ({len(busiest)} of {len(info['links'])}):"] + _table(busiest)
    return "\n".join(lines) + "\n"


def plot_mapping(image, cores: list[dict] | None, links: list[dict] | None, path: str) -> None:
    """The board as a heat map of neurons used per core, chips outlined, with every link used
    drawn as an arrow coloured by its expected load (spikes per step; the host sits at x = -1)."""
    if not cores:
        raise NmcError(f"{image.filename} has no per-core mapping to plot",
                       hint="--plot needs an image compiled for a chip (not --target cpu)")
    import numpy as np

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


def run(args) -> int:
    image = read_image(args.image)
    info = describe(image)
    if args.plot:
        plot_mapping(image, info["cores"], info["links"], args.plot)
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
    else:
        print(format_text(info), end="")
    return 0
