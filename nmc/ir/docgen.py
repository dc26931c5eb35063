"""The op reference of docs/ir.md, generated from the op declarations so it cannot drift.

``python -m nmc.ir.docgen`` prints it; ``python -m nmc.ir.docgen --write docs/ir.md`` replaces
the text between the ``<!-- ops:begin -->`` and ``<!-- ops:end -->`` markers.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect

from nmc.ir import OPS
from nmc.ir.core import Op

BEGIN, END = "<!-- ops:begin -->", "<!-- ops:end -->"
_KIND_WORDS = {
    "int": "int", "float": "float", "bool": "bool", "str": "string", "ints": "int list",
    "floats": "float list", "blob": "blob", "param": "number or blob",
}


def _default(cls: type[Op], name: str, spec) -> str:
    if spec.default_fn is not None:
        return "derived"
    f = cls.__dataclass_fields__[name]
    if f.default is not dataclasses.MISSING:
        return "—" if f.default is None else f"`{f.default}`"
    if f.default_factory is not dataclasses.MISSING:
        return f"`{f.default_factory()}`"
    return "required"


def op_reference() -> str:
    out = []
    for dialect in sorted({k.split(".")[0] for k in OPS}):
        out.append(f"### `{dialect}` dialect\n")
        for kind in sorted(k for k in OPS if k.startswith(dialect + ".")):
            cls = OPS[kind]
            doc = inspect.cleandoc(cls.__doc__)
            operands = [f"`{n}`" + ("…" if s.kind == "operands" else "") for n, s in cls.operand_specs()]
            head = f"`{kind}`" + (f" ({', '.join(operands)})" if operands else "")
            result = "no result" if not cls.HAS_RESULT else ("declared type" if cls.infer_type is Op.infer_type else "inferred type")
            out.append(f"#### {head} — {result}\n")
            if doc:
                out.append(doc + "\n")
            attrs = cls.attr_specs()
            if attrs:
                out.append("| attribute | kind | default |\n|---|---|---|")
                for name, spec in attrs:
                    kind_words = "one of " + ", ".join(f"`{c}`" for c in spec.choices) if spec.kind == "enum" else _KIND_WORDS[spec.kind]
                    out.append(f"| `{name}` | {kind_words} | {_default(cls, name, spec)} |")
                out.append("")
    return "\n".join(out).rstrip() + "\n"


def replace_between_markers(text: str, body: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + body + text[end:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", metavar="FILE", help="update the op reference in FILE")
    args = parser.parse_args()
    if not args.write:
        print(op_reference(), end="")
        return
    with open(args.write, encoding="utf-8") as f:
        text = f.read()
    with open(args.write, "w", encoding="utf-8") as f:
        f.write(replace_between_markers(text, op_reference()))


if __name__ == "__main__":
    main()
