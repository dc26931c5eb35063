"""A NIR file as one flat graph: read with the nir package, nested graphs inlined, their
Input/Output nodes wired through."""

from __future__ import annotations

import os
import re

from nmc.diagnostics import Loc, NmcError
from nmc.frontends.nir.shapes import normalise


def node_kind(node) -> str:
    """A NIR node's type name (``LIF``, ``Conv2d``, ...)."""
    return type(node).__name__


def read_nir(path: str):
    """The ``nir.NIRGraph`` in ``path``; a file the nir package cannot read is an :class:`NmcError`.

    A file nir's type check refuses only for what the libraries are known to write (a batch
    axis of 1 on Input/Output types, scalar neuron parameters; :mod:`.shapes`) is read with
    those normalised, and checked again."""
    import nir

    try:
        return nir.read(path)
    except Exception as err:  # noqa: BLE001 — nir reports malformed files with many exception types
        first = err
    try:
        graph = nir.read(path, type_check=False)
        if normalise(graph):
            return nir.NIRGraph(nodes=graph.nodes, edges=graph.edges, metadata=graph.metadata, type_check=True)
    except Exception:  # noqa: BLE001 — report nir's first reason, on the file as written
        pass
    detail = str(first).splitlines()[0] if str(first) else type(first).__name__
    mismatch = re.search(r"type mismatch: (\S+)\.output", detail)  # nir names the node whose type is wrong
    loc = Loc(os.fspath(path), node=mismatch.group(1)) if mismatch else Loc(os.fspath(path))
    raise NmcError(f"the nir package cannot read this file: {detail}", loc,
                   hint="the graph is malformed (for example an exporter wrote inconsistent shapes); "
                        "re-export it with a current NIR exporter") from None


def _endpoint(graph, prefix: str, name: str, port: str, loc: Loc) -> str:
    """The flat name an edge end ``name`` refers to: a node, or the Input/Output (``port``)
    of a nested graph, found recursively; ``sub.inner`` names a nested graph's node."""
    import nir

    node = graph.nodes.get(name)
    if node is None and "." in name:
        head, rest = name.split(".", 1)
        if isinstance(graph.nodes.get(head), nir.NIRGraph):
            return _endpoint(graph.nodes[head], f"{prefix}{head}.", rest, port, loc)
    if node is None:
        raise NmcError(f"an edge names node '{prefix}{name}', which the graph does not have", loc)
    if isinstance(node, nir.NIRGraph):
        ports = [k for k, n in node.nodes.items() if node_kind(n) == port]
        if len(ports) != 1:
            raise NmcError(f"nested graph '{prefix}{name}' has {len(ports)} {port} nodes; an edge to the graph "
                           f"itself needs exactly one", Loc(loc.file, node=prefix + name, op_type="NIRGraph"),
                           hint=f"name the port in the edge, as '{prefix}{name}.<{port.lower()} node>'")
        return _endpoint(node, f"{prefix}{name}.", ports[0], port, loc)
    return prefix + name


def _flatten(graph, prefix: str, loc: Loc, nodes: dict, edges: list, identities: set) -> None:
    """Inline nested graphs: their nodes get ``prefix.`` names; their Input/Output nodes
    become identities (removed afterwards)."""
    import nir

    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            _flatten(node, f"{prefix}{name}.", loc, nodes, edges, identities)
        else:
            nodes[prefix + name] = node
            if prefix and node_kind(node) in ("Input", "Output"):
                identities.add(prefix + name)
    for a, b in graph.edges:
        edges.append((_endpoint(graph, prefix, a, "Output", loc), _endpoint(graph, prefix, b, "Input", loc)))


def flat_graph(nir_graph, loc: Loc) -> tuple[dict, list]:
    """(nodes by flat name, edges) of ``nir_graph`` with every nested graph inlined."""
    nodes: dict = {}
    edges: list = []
    identities: set = set()
    _flatten(nir_graph, "", loc, nodes, edges, identities)
    edges = list(dict.fromkeys(edges))
    for name in sorted(identities):  # a nested graph's Input/Output: wire through
        ins = [a for a, b in edges if b == name]
        outs = [b for a, b in edges if a == name]
        edges = [e for e in edges if name not in e] + [(a, b) for a in ins for b in outs]
        del nodes[name]
    return nodes, edges
