"""Shapes as the libraries write them, made what NIR's type check expects.

snnTorch, Norse and rockpool write a batch axis of 1 into the types of Input and Output
nodes (``[1, 784]`` where the Linear after the Input takes ``[784]``; rockpool's Output even
``[1, 1, 1]``); sinabs writes neuron parameters as scalars (one ``tau`` for a layer).  nir's
own type check refuses both.  :func:`normalise` removes such leading ones and broadcasts such
scalars to the shape of the node's neighbours, in place, and says what it changed; anything
else stays for nir's type check to judge (:func:`nmc.frontends.nir.graph.read_nir`).
"""

from __future__ import annotations

import numpy as np

NEURON_PARAMS = {
    "IF": ("r", "v_threshold", "v_reset"),
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "I": ("r",),
    "LI": ("tau", "r", "v_leak"),
    "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
    "Threshold": ("threshold",),
}


def _kind(node) -> str:
    return type(node).__name__


def _shape(node, port: str) -> tuple[int, ...] | None:
    """The node's declared ``input``/``output`` type, when it is fully known."""
    types = node.input_type if port == "input" else node.output_type
    t = (types or {}).get(port)
    if t is None:
        return None
    arr = np.atleast_1d(np.asarray(t, dtype=object))
    if arr.size == 0 or any(d is None for d in arr):
        return None
    return tuple(int(d) for d in arr)


def _set_type(node, shape: tuple[int, ...]) -> None:
    if _kind(node) == "Input":
        node.input_type = {"input": np.array(shape)}
        node.output_type = {"output": np.array(shape)}
    elif _kind(node) == "Output":
        node.output_type = {"output": np.array(shape)}
        node.input_type = {"input": np.array(shape)}
    else:
        node.input_type = {"input": np.array(shape)}
        node.output_type = {"output": np.array(shape)}


def _unbatched(declared: tuple[int, ...], neighbour: tuple[int, ...]) -> bool:
    """``declared`` is ``neighbour`` with leading axes of 1 in front."""
    extra = len(declared) - len(neighbour)
    return extra > 0 and all(d == 1 for d in declared[:extra]) and declared[extra:] == neighbour


def normalise(graph) -> list[str]:
    """Drop batch axes of 1 from Input/Output types and broadcast scalar neuron parameters,
    in ``graph`` and its nested graphs; returns one line per change (node and what)."""
    notes: list[str] = []
    _normalise(graph, "", notes)
    return notes


def _normalise(graph, prefix: str, notes: list[str]) -> None:
    for name, node in graph.nodes.items():
        if _kind(node) == "NIRGraph":
            _normalise(node, f"{prefix}{name}.", notes)
    preds = {n: [a for a, b in graph.edges if b == n and a in graph.nodes] for n in graph.nodes}
    succs = {n: [b for a, b in graph.edges if a == n and b in graph.nodes] for n in graph.nodes}
    for name, node in graph.nodes.items():  # scalars first: they give neighbours their shape
        params = NEURON_PARAMS.get(_kind(node))
        if not params:
            continue
        values = {p: np.asarray(getattr(node, p)) for p in params if getattr(node, p, None) is not None}
        if any(v.size != 1 for v in values.values()):
            continue
        shapes = [s for s in ([_shape(graph.nodes[p], "output") for p in preds[name]]
                              + [_shape(graph.nodes[s], "input") for s in succs[name]
                                 if _kind(graph.nodes[s]) not in ("Output", "NIRGraph")]) if s]
        shapes = [s for s in shapes if int(np.prod(s)) > 1]
        if not shapes:
            continue
        shape = shapes[0]
        for p, v in values.items():
            setattr(node, p, np.full(shape, v.reshape(-1)[0], dtype=v.dtype if v.dtype.kind == "f" else np.float64))
        _set_type(node, shape)
        notes.append(f"{prefix}{name}: scalar parameters broadcast to {list(shape)}")
    for name, node in graph.nodes.items():
        if _kind(node) == "Input":
            declared, port, others = _shape(node, "input"), "input", succs[name]
        elif _kind(node) == "Output":
            declared, port, others = _shape(node, "output"), "output", preds[name]
        else:
            continue
        if declared is None:
            continue
        for other in others:
            theirs = _shape(graph.nodes[other], port)
            if theirs is not None and _unbatched(declared, theirs):
                _set_type(node, theirs)
                notes.append(f"{prefix}{name}: batch axis of 1 dropped ({list(declared)} → {list(theirs)})")
                break
