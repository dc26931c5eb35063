"""docs/design.md and docs/passes.md against the code: every registered pass is listed, the
design has its eight numbered sections, and every "docs/design.md §N" reference in the
repository names a section that exists."""

from __future__ import annotations

import re
from pathlib import Path

from nmc.passmanager import load_passes

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs" / "design.md"
PASSES_DOC = ROOT / "docs" / "passes.md"

SECTIONS = {
    1: "The pipeline",
    2: "Layout",
    3: "The IR",
    4: "Passes and the pass manager",
    5: "Semantics (contract)",
    6: "Targets",
    7: "Interfaces (contract)",
    8: "Testing and measuring",
}
SEARCHED = ("nmc", "passes", "targets", "tests", "docs", "benchmarks", "examples")
REFERENCE = re.compile(r"docs/design\.md[,:]?\s*§\s*(\d+)")


def numbered_sections(text: str) -> dict[int, str]:
    """``## N. Title`` headings of a markdown text, by number."""
    return {int(m.group(1)): m.group(2).strip() for m in re.finditer(r"^## (\d+)\. (.+)$", text, re.MULTILINE)}


def nmc_passes() -> list[str]:
    """The passes nmc registers (its library and its chip classes'); passes that tests
    register from their own folders (the toy class's) are left out."""
    return sorted(name for name, cls in load_passes().items() if cls.__module__.startswith("nmc."))


def listed_passes(text: str) -> set[str]:
    """Pass names in the first column of the tables of docs/passes.md's "## 4." section."""
    section = text[text.index("\n## 4. "):]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names |= set(re.findall(r"`([a-z][a-z0-9-]*)`", first_cell))
    return names


def test_passes_doc_lists_every_registered_pass():
    names = nmc_passes()
    assert {"canonicalize", "convert-to-spiking", "quantize", "partition"} <= set(names)
    listed = listed_passes(PASSES_DOC.read_text(encoding="utf-8"))
    missing = [n for n in names if n not in listed]
    assert not missing, f"docs/passes.md §4 has no row for the registered pass(es) {missing}"
    stale = sorted(listed - set(names))
    assert not stale, f"docs/passes.md §4 lists pass(es) nmc does not register: {stale}"


def test_design_has_the_eight_numbered_sections():
    found = numbered_sections(DESIGN.read_text(encoding="utf-8"))
    assert found == SECTIONS


def _files():
    for top in SEARCHED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix in (".py", ".md") and path.is_file() and ".venv" not in path.parts:
                yield path
    yield ROOT / "README.md"


def test_design_references_name_existing_sections():
    sections = numbered_sections(DESIGN.read_text(encoding="utf-8"))
    bad = []
    for path in _files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for m in REFERENCE.finditer(text):
            if int(m.group(1)) not in sections:
                line = text.count("\n", 0, m.start()) + 1
                bad.append(f"{path.relative_to(ROOT)}:{line}: {m.group(0)}")
    assert not bad, "references to sections docs/design.md does not have:\n" + "\n".join(bad)
