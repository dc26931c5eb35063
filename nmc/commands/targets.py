"""List the targets nmc compiles for: the shipped chip descriptions, and cpu.

A chip description is a TOML file (docs/chip-description.md); pass a file of your own to
--target by its path.  --json prints every field of every shipped chip.

examples:
  nmc targets
  nmc targets --json > chips.json
"""

from __future__ import annotations

import dataclasses
import json


CPU_ROW = {"name": "cpu", "class": "cpu", "cores": None, "chips": None, "neurons_per_core": None,
           "weight_bits": None, "description": "no chip: the snn graph for the llvmlite CPU runtime"}


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="print every field of every target as JSON")


def target_rows() -> list[dict]:
    """One summary row per shipped chip (then cpu), with the full description under ``chip``."""
    from nmc.targets.chip import load_chip, shipped_chips
    from nmc.targets.classes import chip_class

    rows = []
    for name in shipped_chips():
        chip = load_chip(name)
        summary = chip_class(chip.chip_class).summary(chip)
        rows.append({
            "name": chip.name, "class": chip.chip_class, "cores": summary.get("cores"),
            "chips": summary.get("chips"), "neurons_per_core": summary.get("neurons_per_core"),
            "weight_bits": f"{chip.formats.weight_bits_min}-{chip.formats.weight_bits_max}",
            "description": chip.description, "sha256": chip.digest,
            "chip": {s: dataclasses.asdict(v) for s, v in chip.sections.items()},
        })
    return rows + [dict(CPU_ROW)]


def format_table(rows: list[dict]) -> str:
    head = ("name", "class", "cores/chip", "chips", "neurons/core", "weight bits", "description")
    keys = ("name", "class", "cores", "chips", "neurons_per_core", "weight_bits", "description")
    cells = [head] + [tuple("-" if r[k] is None else str(r[k]) for k in keys) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head) - 1)]
    lines = ["  ".join(c[i].ljust(w) if i < 2 else c[i].rjust(w) for i, w in enumerate(widths)) + "  " + c[-1]
             for c in cells]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def run(args) -> int:
    rows = target_rows()
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
    else:
        print(format_table(rows), end="")
    return 0
