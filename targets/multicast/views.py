"""``nmc inspect`` views of a multicast image: cores, router tables before and after
compression, link loads, and the board drawing (docs/multicast-target.md)."""

from __future__ import annotations

import numpy as np

from nmc.targets.multicast.board import Board
from nmc.targets.multicast.table import LINKS, N_LINKS


def _program(sections):
    from nmc.targets.multicast.sections import load_sections

    p = load_sections(sections)
    from nmc.targets.sections import section_chip

    return p, section_chip(sections["chip"])


def core_table(sections) -> list[dict]:
    """One row per core: chip, processor, neurons, master table entries, rows, synapses, memory."""
    p, _ = _program(sections)
    c, r = p.cores, p.rows
    rows = []
    for k in range(p.n_cores):
        a, b = int(r["mpt_start"][k]), int(r["mpt_start"][k + 1])
        n_rows = int(r["mpt_count"][a:b].sum())
        first = r["mpt_row"][a:b]
        syn = int(sum(int(r["row_start"][f + n] - r["row_start"][f]) for f, n in zip(first, r["mpt_count"][a:b])))
        rows.append({"core": k, "chip": c["chip"][k].tolist(), "proc": int(c["proc"][k]),
                     "neurons": int(c["start"][k + 1] - c["start"][k]), "master_entries": b - a, "rows": n_rows,
                     "synapses": syn, "memory_bytes": int(c["memory_bits"][k]) // 8})
    return rows


def _entries(t: dict, prefix: str, c: int) -> list[dict]:
    a, b = int(t[f"{prefix}table_start"][c]), int(t[f"{prefix}table_start"][c + 1])
    out = []
    for e in range(a, b):
        procs = t[f"{prefix}procs"][t[f"{prefix}proc_start"][e]:t[f"{prefix}proc_start"][e + 1]].tolist()
        route = [LINKS[i] for i in range(N_LINKS) if int(t[f"{prefix}links"][e]) >> i & 1] + [f"p{q}" for q in procs]
        row = {"key": f"{int(t[prefix + 'key'][e]):#010x}", "mask": f"{int(t[prefix + 'mask'][e]):#010x}",
               "route": " ".join(route) or "-"}
        if prefix:
            row["defaultable"] = bool(t["raw_defaultable"][e])
        out.append(row)
    return out


def router_tables(sections) -> list[dict]:
    """Per chip with a table: its entries before and after compression."""
    p, chip = _program(sections)
    board = Board(chip)
    out = []
    for c, xy in enumerate(board.chips):
        raw, kept = _entries(p.tables, "raw_", c), _entries(p.tables, "", c)
        if raw or kept:
            out.append({"chip": list(xy), "capacity": chip.router.entries, "entries": raw, "compressed": kept})
    return out


def link_table(sections) -> list[dict]:
    """Per directed link used by a tree: the keys whose journey (walked through the compressed
    tables, as the emulator walks them) crosses it; ``load`` is the same count (packets per
    step were every source to spike once a step)."""
    p, chip = _program(sections)
    board = Board(chip)
    from nmc.targets.multicast.emulator import Router

    router = Router(p, chip, board)
    k = p.keys
    load = np.zeros(len(board.chips) * N_LINKS)
    for v in range(len(k["vertex_base"])):
        n = int(k["vertex_start"][v + 1] - k["vertex_start"][v])
        j = router.walk(int(k["vertex_base"][v]) + np.arange(n, dtype=np.int64), tuple(k["vertex_chip"][v].tolist()))
        for group, link in j["links"]:
            load[link] += len(group)
    rows = []
    for i in np.flatnonzero(load).tolist():
        c, link = divmod(i, N_LINKS)
        a = board.chips[c]
        rows.append({"from": list(a), "to": list(board.neighbour(a, link)), "link": LINKS[link], "keys": int(load[i]),
                     "load": float(load[i])})
    return rows


def plot_board(image, path: str) -> None:
    """The board's chips coloured by their table's fill (compressed entries / capacity), the
    links drawn with width by the keys crossing them."""
    from nmc.plotting import pyplot, save_png

    plt = pyplot()
    sections = image.sections
    p, chip = _program(sections)
    board = Board(chip)
    t = p.tables
    fill = np.diff(t["table_start"]) / chip.router.entries
    links = link_table(sections)
    top = max((r["keys"] for r in links), default=1)
    fig, ax = plt.subplots(figsize=(6, 6))
    pos = {xy: (xy[0] - 0.5 * xy[1], xy[1] * 0.87) for xy in board.chips}  # the triangular mesh, sheared
    for r in links:
        (x0, y0), (x1, y1) = pos[tuple(r["from"])], pos[tuple(r["to"])]
        wraps = max(abs(a - b) for a, b in zip(r["from"], r["to"])) > 1  # a torus link round the edge: dashed
        ax.plot([x0, x1], [y0, y1], color="tab:red", lw=0.5 + 4 * r["keys"] / top, alpha=0.6, zorder=1,
                ls="--" if wraps else "-")
    xs, ys = zip(*(pos[xy] for xy in board.chips))
    sc = ax.scatter(xs, ys, c=fill, cmap="viridis", vmin=0, vmax=max(float(fill.max()), 1e-9), s=300, zorder=2,
                    edgecolors="k")
    for xy in board.chips:
        ax.annotate(f"{xy[0]},{xy[1]}", pos[xy], ha="center", va="center", fontsize=6, color="w", zorder=3)
    fig.colorbar(sc, ax=ax, label=f"router table fill (of {chip.router.entries} entries)")
    ax.set_title(f"{chip.name}: table fill, keys per link")
    ax.set_aspect("equal")
    ax.axis("off")
    save_png(fig, path)


def more_tables(sections) -> dict[str, list[dict]]:
    """``nmc inspect``'s chips table and, per chip with a table, its entries before and after
    compression."""
    p, chip = _program(sections)
    board = Board(chip)
    used = {}
    for xy in map(tuple, p.cores["chip"].tolist()):
        used[xy] = used.get(xy, 0) + 1
    tables = router_tables(sections)
    by_chip = {tuple(t["chip"]): t for t in tables}
    chips = [{"chip": list(xy), "cores": used.get(xy, 0), "entries": len(by_chip[xy]["entries"]) if xy in by_chip else 0,
              "defaultable": sum(e["defaultable"] for e in by_chip[xy]["entries"]) if xy in by_chip else 0,
              "compressed": len(by_chip[xy]["compressed"]) if xy in by_chip else 0, "capacity": chip.router.entries}
             for xy in board.chips if used.get(xy) or xy in by_chip]
    out = {"chips": chips}
    for t in tables:
        x, y = t["chip"]
        out[f"router ({x}, {y}) before compression"] = t["entries"]
        out[f"router ({x}, {y}) after compression"] = t["compressed"]
    return out
