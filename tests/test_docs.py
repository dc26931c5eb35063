"""The docs that are generated from code are current."""

from pathlib import Path

from nmc.ir.docgen import BEGIN, END, op_reference
from nmc.ir import OPS

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_ir_op_reference_is_current():
    text = (DOCS / "ir.md").read_text(encoding="utf-8")
    body = text[text.index(BEGIN) + len(BEGIN): text.index(END)]
    assert body.strip() == op_reference().strip(), "run: python -m nmc.ir.docgen --write docs/ir.md"


def test_every_op_has_its_own_docstring():
    generated = [kind for kind, cls in OPS.items() if cls.__doc__.startswith(cls.__name__ + "(")]
    assert generated == []
