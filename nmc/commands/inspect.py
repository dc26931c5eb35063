"""Show what an image holds: header, sections, resources, and the mapping onto cores.

Prints the target, format version, pipeline and source hash; the section table (sizes and
CRC32s); the manifest's resource summary; and, for an image compiled for a chip, the views
its chip class gives: a table per core and the busiest links.  --plot draws the mapping as
the class draws it (for a board of cores: utilisation as a heat map and the links used as
arrows coloured by their expected load).

examples:
  nmc inspect model.nmb
  nmc inspect model.nmb --json > model.json
  nmc inspect model.nmb --plot mapping.png
"""

from __future__ import annotations

import json
import zlib

from nmc.diagnostics import NmcError
from nmc.targets.image import CHIP, FORMAT_VERSION, GRAPH, MANIFEST, read_image

OWN_SECTIONS = (MANIFEST, GRAPH, CHIP)
MAX_LINKS = 10


def add_arguments(p) -> None:
    p.add_argument("image", metavar="IMAGE", help="an image written by nmc compile (.nmb)")
    p.add_argument("--json", action="store_true", help="print everything as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="draw the board: core utilisation and link loads")
    p.add_argument("--html", metavar="R.html", help="the compile report as one self-contained HTML page")


def _class_tables(image) -> tuple[list[dict] | None, list[dict] | None]:
    """(per-core rows, per-link rows) from the image's chip class, else (None, None)."""
    if CHIP not in image.sections:
        return None, None
    from nmc.targets.classes import class_of_image

    cls = class_of_image(image)
    return cls.core_table(image.sections), cls.link_table(image.sections)


def describe(image) -> dict:
    """Everything ``nmc inspect`` shows, as JSON-ready data."""
    manifest = image.manifest
    cores, links = _class_tables(image)
    return {
        "file": image.filename, "target": image.target, "format_version": FORMAT_VERSION,
        "chip_sha256": image.chip_sha256 or None,
        "pipeline": manifest.get("pipeline"), "source_sha256": manifest.get("source_sha256"),
        "compiler": manifest.get("compiler"), "timesteps": manifest.get("timesteps"),
        "latency_steps": manifest.get("latency_steps"),
        "sections": [{"name": n, "bytes": len(b), "crc32": f"{zlib.crc32(b):08x}"} for n, b in sorted(image.sections.items())],
        "resources": manifest.get("resources", {}),
        "cores": cores, "links": links, "tables": _more_tables(image),
    }


def _more_tables(image) -> dict[str, list[dict]] | None:
    """The chip class's further tables (a multicast image's router tables), else None."""
    if CHIP not in image.sections:
        return None
    from nmc.targets.classes import class_of_image

    more = getattr(class_of_image(image), "more_tables", None)  # optional (a class need not subclass ChipClass)
    return more(image.sections) if more else None


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
    for title, rows in (info.get("tables") or {}).items():
        lines += ["", f"{title} ({len(rows)}):"] + (_table(rows) if rows else ["  (none)"])
    return "\n".join(lines) + "\n"


def run(args) -> int:
    from nmc.outputs import check_outputs

    check_outputs([args.image], [("--plot", args.plot), ("--html", args.html)])
    image = read_image(args.image)
    from nmc.targets.image_check import check_image

    check_image(image)  # the chip through parse_chip, the class's sections field by field (issue 22)
    info = describe(image)
    if args.plot:
        if CHIP not in image.sections:
            raise NmcError(f"{image.filename} has no mapping to plot",
                           hint="--plot needs an image compiled for a chip (not --target cpu)")
        from nmc.targets.classes import class_of_image

        class_of_image(image).plot(image, info["cores"], info["links"], args.plot)
    if args.html:
        from nmc.compiler import report
        from nmc.fileio import atomic_write
        from nmc.report_html import render

        summary = {**report(image), "passes": None, "remarks": None}  # not in the image: "not recorded"
        atomic_write(args.html, render(summary).encode())
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
    else:
        print(format_text(info), end="")
    return 0
