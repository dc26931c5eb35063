"""Graph.users inside Graph.tracked_uses (the index rewrite patterns query): the same answers as
the scan of every op, through each kind of edit, and canonicalize's cost linear in the graph."""

from __future__ import annotations

from nmc.ir.ann import Add, Identity, Relu
from nmc.ir.core import Graph, Op
from nmc.ir.parser import parse_ir
from nmc.passes.canonicalize import Canonicalize
from nmc.passmanager import PassContext

TEXT = """graph @g
%x = ann.input : tensor<4xf32>
%a = ann.relu(%x) : tensor<4xf32>
%b = ann.add(%a, %a) : tensor<4xf32>
%c = ann.add(%a, %b) : tensor<4xf32>
%d = ann.relu(%c) : tensor<4xf32>
ann.output(%d, %b)
"""


def scanned(graph: Graph, value) -> list[Op]:
    return [op for op in graph.ops if any(v is value for v in op.operands)]


def same_as_scan(graph: Graph) -> None:
    for op in graph.ops:
        if op.result is not None:
            assert graph.users(op.result) == scanned(graph, op.result), op
        assert graph.holds(op)


def test_tracked_users_follow_every_edit():
    g = parse_ir(TEXT)
    x, a, b, c, d = (op.result for op in g.ops[:5])
    with g.tracked_uses():
        same_as_scan(g)
        assert [op.result for op in g.users(a)] == [b, c]  # program order, each reader once
        e = Identity(x=a)
        g.insert_before(c.owner, e)
        g.replace_all_uses(b, e.result)  # %c and the output now read %e
        same_as_scan(g)
        g.erase(b.owner)
        assert not g.holds(b.owner)
        same_as_scan(g)
        r = Relu(x=x)
        g.replace(a.owner, r)  # %e and %c read the new relu
        same_as_scan(g)
        c.owner.replace_operand(r.result, e.result)  # an edit the index cannot see: rebuilt
        same_as_scan(g)
        assert g.redirect(c.owner, e.result, x) == 2  # the same edit through the graph (%c = add(%e, %e))
        same_as_scan(g)
        g.replace_ops({d.owner: d.owner.with_changes()})
        same_as_scan(g)
        g.add(Add(a=x, b=x))
        same_as_scan(g)
    assert g._uses is None  # outside the block, users() scans again
    same_as_scan(g)


def test_canonicalize_cost_is_linear_in_depth(monkeypatch):
    """Removing a chain of n identities reads operands O(n) times (a scan per removal: n²)."""
    reads = [0]
    plain = Op.operands.fget

    def counted(op):
        reads[0] += 1
        return plain(op)

    monkeypatch.setattr(Op, "operands", property(counted))

    def cost(n: int) -> int:
        lines = ["graph @chain", "%v0 = ann.input : tensor<4xf32>"]
        lines += [f"%v{i} = ann.identity(%v{i - 1}) : tensor<4xf32>" for i in range(1, n + 1)]
        g = parse_ir("\n".join(lines + [f"ann.output(%v{n})", ""]))
        reads[0] = 0
        Canonicalize().run(g, PassContext())
        assert [op.KIND for op in g.ops] == ["ann.input", "ann.output"]
        return reads[0]

    small, large = cost(200), cost(800)
    assert large < 5 * small, (small, large)  # quadratic would be 16x
