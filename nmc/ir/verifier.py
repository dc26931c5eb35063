"""The graph verifier: runs on parse and after every pass (docs/design.md §3).

Checks, in order: SSA (every operand is defined in the graph, once, before its use — except a
population naming a later projection, which closes a recurrent loop); each op's own rules and
its result type against the type its operands imply; one ``ann.output``, last; no cycle that
avoids a projection (every projection delays by at least one step); and stage invariants
(integer and float populations are not mixed; integer state fits its bit width).
"""

from __future__ import annotations

from itertools import chain

from nmc.ir.core import Graph, Op, VerifyError


def verify(graph: Graph) -> None:
    """Raise :class:`VerifyError` (with the offending op's location) on the first broken rule."""
    position: dict[int, int] = {}
    for i, op in enumerate(graph.ops):
        if id(op) in position:
            raise op.error("appears twice in the graph")
        position[id(op)] = i
        if op.HAS_RESULT != (op.result is not None) or (op.result is not None and op.result.owner is not op):
            raise op.error("has an inconsistent result value")
    _verify_ssa(graph, position)
    for op in graph.ops:
        _verify_op(op)
    _verify_output(graph)
    _verify_cycles(graph)
    _verify_stage(graph)


def check_finite(graph: Graph) -> None:
    """Weights and constants hold finite numbers; a threshold may be infinite (a population
    that never fires), never NaN.  Not part of :func:`verify`: the IR itself holds any float
    (its text round-trips NaN and infinities); model files are checked at the boundary
    (:func:`nmc.frontends.load`), where NaN weights mean a damaged export (issue 22)."""
    import numpy as np

    for op in graph.ops:
        for name, blob in op.blobs():
            data = blob.data
            if data.dtype.kind != "f":
                continue
            bad = int(np.count_nonzero(np.isnan(data) if name == "threshold" else ~np.isfinite(data)))
            if bad:
                raise op.error(f"'{name}' has {bad} {'NaN' if name == 'threshold' else 'non-finite'} value(s) of {blob.size}",
                               hint="the model's weights are damaged (NaN or infinity); export it again")


def _verify_ssa(graph: Graph, position: dict[int, int]) -> None:
    for i, op in enumerate(graph.ops):
        last = None
        for v in op.operands:
            if v is last:  # a repeated operand (a core's slices of one population) is checked once
                continue
            last = v
            owner = v.owner
            if owner is None or id(owner) not in position:
                raise op.error(f"uses %{v.name or '?'}, which no op of the graph defines")
            if position[id(owner)] >= i and not (op.FORWARD_REFS and owner.KIND == "snn.project"):
                raise op.error(
                    f"uses %{v.name or '?'} before its definition",
                    hint="only a population may name a later projection (to close a recurrent loop)",
                )


def _verify_op(op: Op) -> None:
    inferred = op.infer_type()
    if inferred is not None and op.result is not None and inferred != op.result.type:
        raise op.error(f"result type {op.result.type} does not match the inferred type {inferred}")
    op.verify()


def _verify_output(graph: Graph) -> None:
    outs = graph.walk("ann.output")
    if not graph.ops:
        return
    if len(outs) != 1:
        where = outs[1] if outs else graph.ops[-1]
        raise VerifyError(f"graph @{graph.name} must end with exactly one 'ann.output' op, found {len(outs)}", where.loc)
    if graph.ops[-1] is not outs[0]:
        raise outs[0].error("must be the last op of the graph")


def _verify_cycles(graph: Graph) -> None:
    # a depth-first search over the use edges that do not leave a projection (networkx's
    # find_cycle, without importing networkx: the verifier runs on every parse)
    producers = {id(op.result): op for op in graph.ops if op.result is not None}
    users: dict[int, list[Op]] = {id(op): [] for op in graph.ops}
    for op in graph.ops:
        if op.result is None:  # no user reads it, so it is on no cycle (a mapped graph's hw ops)
            continue
        for v in op.operands:
            src = producers.get(id(v))
            if src is not None and src.KIND != "snn.project":
                edges = users[id(src)]
                if not edges or edges[-1] is not op:  # one edge per (source, user)
                    edges.append(op)
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    for root in graph.ops:
        if id(root) in state:
            continue
        state[id(root)] = 1
        stack = [(root, iter(users[id(root)]))]
        while stack:
            op, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[id(op)] = 2
                stack.pop()
            elif state.get(id(nxt)) == 1:
                raise nxt.error("is on a cycle that passes through no delayed projection")
            elif id(nxt) not in state:
                state[id(nxt)] = 1
                stack.append((nxt, iter(users[id(nxt)])))


def _verify_stage(graph: Graph) -> None:
    pops = graph.walk("snn.population")
    integer = [p for p in pops if p.bits]
    if integer and len(integer) != len(pops):
        floating = next(p for p in pops if not p.bits)
        raise floating.error("is a float population in a graph with integer populations",
                             hint="quantize converts every population at once")
    for proj in graph.walk("snn.project"):
        if bool(integer) != proj.is_integer and pops:
            want = "integer" if integer else "float"
            raise proj.error(f"must have {want} weights, like the populations of the graph")
    _verify_hw(graph, pops)


def _verify_hw(graph: Graph, pops: list[Op]) -> None:
    """Mapped graphs: every population neuron on exactly one core, core ids 0..n-1 once
    each, placed cores inside ``meta["hw.board"]`` and no two on one slot."""
    cores = graph.walk("hw.core")
    if not cores:
        return
    ids = sorted(c.id for c in cores)
    if ids != list(range(len(cores))):
        raise cores[0].error(f"hw.core ids must be 0..{len(cores) - 1}, each once")
    import numpy as np  # here, not at import: the verifier runs on every parse

    index = {id(p): i for i, p in enumerate(pops)}
    dendrites = {c.id for c in cores if c.partial}
    for c in cores:
        if c.partial:  # a dendrite core holds no neurons (fan-in splitting)
            if not 0 <= c.partial[0] < len(cores) or c.partial[0] in dendrites:
                raise c.error(f"names soma core {c.partial[0]}, which is no core holding neurons")
    held = [(k, c) for k, c in enumerate(cores) if not c.partial]
    # every slice: population, bounds, core (millions of slices at ImageNet size: no list per field)
    owner = {id(v): index[id(v.owner)] for _, c in held for v in dict.fromkeys(c.pops)}
    pop = np.fromiter((owner[id(v)] for _, c in held for v in c.pops), np.int64)
    bounds = np.fromiter(chain.from_iterable(c.slices for _, c in held), np.int64).reshape(-1, 2)
    lo, hi = bounds[:, 0], bounds[:, 1]
    where = np.repeat(np.array([k for k, _ in held], np.int64), [len(c.pops) for _, c in held])
    order = np.lexsort((lo, pop))  # per population by start, ties in core order
    pop, lo, hi = pop[order], lo[order], hi[order]
    first = np.r_[True, pop[1:] != pop[:-1]] if len(pop) else np.zeros(0, bool)
    end = np.where(first, 0, np.r_[0, hi[:-1]])  # where each slice should start
    bad = np.flatnonzero(lo != end)
    last = {int(i): int(h) for i, h in zip(pop[np.r_[first[1:], True]], hi[np.r_[first[1:], True]])} if len(pop) else {}
    for i, p in enumerate(pops):  # the first problem in population order, as a walk over them finds it
        wrong = bad[pop[bad] == i]
        if len(wrong):
            j = int(wrong[0])
            c, a, e = cores[where[int(order[j])]], int(lo[j]), int(end[j])
            raise c.error(f"slices of %{p.result.name} leave neurons [{e}, {a}) on no core" if a > e else
                          f"holds neurons of %{p.result.name} from {a} that another core holds too")
        if last.get(i, 0) != p.result.type.size:
            raise p.error(f"neurons [{last.get(i, 0)}, {p.result.type.size}) are on no core", hint="run partition again")
    board = graph.meta.get("hw.board")
    slots = set()
    for c in cores:
        if not c.chip:
            continue
        if not (isinstance(board, list) and len(board) == 4):
            raise c.error("is placed but the graph has no meta hw.board = [cores_x, cores_y, chips_x, chips_y]")
        if not (0 <= c.xy[0] < board[0] and 0 <= c.xy[1] < board[1] and 0 <= c.chip[0] < board[2] and 0 <= c.chip[1] < board[3]):
            raise c.error(f"is placed at chip {list(c.chip)} core {list(c.xy)}, outside the board "
                          f"of {board[2]}x{board[3]} chips of {board[0]}x{board[1]} cores")
        slot = (*c.chip, *c.xy)
        if slot in slots:
            raise c.error(f"shares chip {list(c.chip)} core {list(c.xy)} with another core")
        slots.add(slot)
