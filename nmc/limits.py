"""Size limits checked before allocating or looping (issue 22).

An estimate over the limit is an NmcError giving the estimate and how to raise the limit:
``--max-memory`` or ``NMC_MAX_MEMORY`` (bytes; suffixes K, M, G accepted; default 4G) bounds any one array or state
nmc is asked to allocate from the input, and the estimated memory of each expensive stage
(calibration, mapping with emission, a run: :func:`check_calibration`, :func:`check_mapping`,
:func:`check_run`); ``NMC_MAX_WORK`` (default 2e10) bounds the
element-steps of a run (samples × steps × neurons); ``NMC_MAX_TIMESTEPS`` (default 2**20)
bounds the presentation steps."""

from __future__ import annotations

import os
import re

from nmc.diagnostics import NmcError

DEFAULT_MEMORY = 4 << 30
DEFAULT_WORK = 2 * 10**10
MAX_TIMESTEPS = 1 << 20


def _parse(text: str, default: int) -> int:
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:], 1) if text else 1
    try:
        return int(float(text.rstrip("KMGTB") or "x") * scale)
    except ValueError:
        return default


def max_memory() -> int:
    return _parse(os.environ.get("NMC_MAX_MEMORY", ""), DEFAULT_MEMORY)


def max_timesteps() -> int:
    return _parse(os.environ.get("NMC_MAX_TIMESTEPS", ""), MAX_TIMESTEPS)


def max_work() -> int:
    return _parse(os.environ.get("NMC_MAX_WORK", ""), DEFAULT_WORK)


def check_timesteps(timesteps: int) -> None:
    """NmcError when a run presents more steps than ``NMC_MAX_TIMESTEPS``."""
    if timesteps > max_timesteps():
        raise NmcError(f"{timesteps} timesteps is over the limit of {max_timesteps()}",
                       hint="use fewer --timesteps, or raise the limit with NMC_MAX_TIMESTEPS=<steps>")


def _human(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


def check_bytes(n: int, what: str, loc=None) -> None:
    """NmcError when ``what`` would need more than the memory limit."""
    limit = max_memory()
    if n > limit:
        raise NmcError(f"{what} would need {_human(n)}, over the limit of {_human(limit)}", loc,
                       hint="raise the limit with --max-memory 16G (or NMC_MAX_MEMORY) if the machine has the memory")


def check_work(samples: int, steps: int, neurons: int, what: str = "the run") -> None:
    """NmcError when a run of ``samples × steps × neurons`` neuron updates is over the limit."""
    limit = max_work()
    work = samples * steps * neurons
    if work > limit:
        raise NmcError(f"{what} would take {work:.3g} neuron updates ({samples} samples × {steps} steps × "
                       f"{neurons} neurons), over the limit of {limit:.3g}",
                       hint="use fewer --timesteps or samples, or raise the limit with NMC_MAX_WORK=<updates>")


MAX_NESTING = 200


def check_nesting(text: str, filename: str, limit: int = MAX_NESTING) -> None:
    """NmcError when brackets nest, or prefix signs repeat, deeper than ``limit`` (the parsers
    recurse on both; a deep input would exhaust the stack).  Comments (``//`` to the end of
    the line: IR, .nmd; ``#``: TOML) are skipped.  A run of prefix signs is broken by any
    other character that is not white space.

    Line by line, visiting only brackets and signs (a regular expression finds them): a
    3.4 MB base64 blob took 1.9 s one character at a time."""
    from nmc.diagnostics import Loc

    depth = run = 0
    for number, line in enumerate(text.split("\n"), start=1):
        ends = [i for i in (line.find("#"), line.find("//") + 1 if "//" in line else -1) if i >= 0]
        code = line[:min(ends)] if ends else line
        last = 0
        for m in _NESTING.finditer(code):
            i, ch = m.start(), m.group()
            if not code[last:i].isspace() and i > last:
                run = 0
            last = i + 1
            if ch in "([{":
                depth, run = depth + 1, 0
                if depth > limit:
                    break
            elif ch in ")]}":
                depth, run = max(depth - 1, 0), 0
            else:
                run += 1
                if run > limit:
                    break
        else:
            if code[last:].strip():
                run = 0
            continue
        raise NmcError(f"the text nests brackets or repeats prefix signs more than {limit} deep",
                       Loc(filename, number, i + 1),
                       hint="nmc reads inputs of at most this depth; flatten the expression")


_NESTING = re.compile(r"[(\[{)\]}\-+!~]")


# ------------------------------------------------------------------- the passes' own memory
#
# Estimated from the graph before a stage runs (docs/bad-input.md, "Estimates"): ``neurons``
# (the elements every op produces per sample: an ANN's activations, an SNN's populations and
# currents) and ``synapses`` (weights expanded over their windows).  The per-item costs are the
# bytes the stage keeps per synapse and per neuron; tests/test_bad_input.py checks each against
# the peak tracemalloc measures on a medium model.

MAP_BYTES_PER_NEURON = 256  # partition boxes, placement and routing tables, emitted neuron sections
MAP_BYTES_PER_WEIGHT = 32  # a kept weight array: the graph's, its quantised copy, the emitted kernel section, the mapping's per-graph tables
MAP_BYTES_PER_LISTED_SYNAPSE = 320  # a sparse synapse: netlist columns, sorted copies, partition tables, section
CALIBRATION_BYTES_PER_ELEMENT = 24  # every activation of every calibration sample, kept at once
RUN_BYTES_PER_SYNAPSE = 48  # synapse tables (CSR, per-delay splits) of the emulator or CPU runtime
RUN_BYTES_PER_STATE = 64  # per sample and neuron: voltage, current, counts, delay lines of a step
REFERENCE_BYTES_PER_STEP = 4  # per sample, neuron and step: the reference semantics keep every step's values


def op_sizes(op, expand_convolutions: bool = True) -> tuple[int, int]:
    """(neurons, synapses) of one op: the elements it produces per sample, and its weights
    expanded over their windows (a dense layer ``n × m``, a convolution ``outputs × in/groups ×
    kernel``, a pooling ``outputs × kernel``, a sparse projection its entries, anything else
    one per output).  ``expand_convolutions=False``: a convolution as the emulator and the CPU
    runtime hold it, its kernel plus a window table (output positions × kernel cells)."""
    import math

    if op.result is None or not hasattr(op.result.type, "shape"):
        return 0, 0
    out = math.prod(op.result.type.shape)
    kind = getattr(op, "kind", None)
    wshape = tuple(getattr(getattr(op, "weight", None), "shape", ()))
    if op.KIND == "ann.dense" or (op.KIND == "snn.project" and kind == "dense"):
        return out, out * math.prod(op.src.type.shape if op.KIND == "snn.project" else op.x.type.shape)
    if op.KIND == "ann.conv" or kind == "conv2d":
        if expand_convolutions:
            return out, out * math.prod(wshape[1:])
        return out, math.prod(wshape) + out // max(1, wshape[0]) * math.prod(wshape[2:])
    if op.KIND in ("ann.maxpool", "ann.avgpool") or kind in ("pool", "maxgate"):
        return out, out * math.prod(op.kernel)
    if kind == "sparse":
        return out, int(op.indices.size)
    return out, out


def graph_sizes(graph, expand_convolutions: bool = True) -> tuple[int, int]:
    """(neurons, synapses) of ``graph``: :func:`op_sizes` summed over its ops."""
    neurons = synapses = 0
    for op in graph.ops:
        n, s = op_sizes(op, expand_convolutions)
        neurons += n
        synapses += s
    return neurons, synapses


def check_stage(stage: str, need: int, how: str, smaller: str) -> None:
    """NmcError, before ``stage`` starts, when its estimated memory ``need`` (computed as
    ``how`` says) is over the limit; ``smaller``: what the user can make smaller instead."""
    limit = max_memory()
    if need > limit:
        raise NmcError(f"{stage} would need about {_human(need)} ({how}), over the limit of {_human(limit)}",
                       hint="raise the limit with --max-memory 16G (or NMC_MAX_MEMORY) if the machine has the "
                            f"memory, or use {smaller}")


def check_calibration(graph, samples: int) -> None:
    """Calibration (and the conversion passes after it), estimated from the ANN ``graph``
    before the first pass: every activation of every sample, kept at once."""
    neurons, _ = graph_sizes(graph)
    check_stage("calibration", samples * neurons * CALIBRATION_BYTES_PER_ELEMENT,
                f"{samples} samples × {neurons} activations × {CALIBRATION_BYTES_PER_ELEMENT} B",
                "fewer calibration samples (--calib)")


def mapped_sizes(graph) -> tuple[int, int, int]:
    """(neurons, kept weights, listed synapses) of a spiking ``graph`` as the mapping by shape
    holds it (docs/mesh-target.md): convolution, pooling, dense and one-to-one projections keep
    their weight arrays, never expanded; only sparse projections list their synapses."""
    import math

    neurons = weights = listed = 0
    for op in graph.ops:
        if op.KIND == "snn.population":
            neurons += math.prod(op.result.type.shape)
        elif op.KIND == "snn.project":
            if getattr(op, "kind", None) == "sparse":
                listed += int(op.indices.size)
            else:
                weights += math.prod(getattr(op.weight, "shape", ()) or (1,))
    return neurons, weights, listed


def check_mapping(graph) -> None:
    """Mapping (partition, place, route) and emission, estimated from the spiking ``graph``
    before the first mapping pass: its neurons, the weight arrays the image keeps and the
    synapses of sparse projections, which alone are listed one by one (:func:`mapped_sizes`).
    Placement's distance matrix (board slots squared) is not included."""
    neurons, weights, listed = mapped_sizes(graph)
    need = neurons * MAP_BYTES_PER_NEURON + weights * MAP_BYTES_PER_WEIGHT + listed * MAP_BYTES_PER_LISTED_SYNAPSE
    check_stage("mapping (partition, place, route) and emission", need,
                f"{neurons} neurons × {MAP_BYTES_PER_NEURON} B + {weights} weights × {MAP_BYTES_PER_WEIGHT} B + "
                f"{listed} listed synapses × {MAP_BYTES_PER_LISTED_SYNAPSE} B", "a smaller model")


def check_run(graph, samples: int, steps: int, backend: str) -> None:
    """A run of ``steps`` steps, estimated from ``graph`` before the backend prepares it: its
    synapse tables (the emulator and the CPU runtime keep a convolution's kernel and window
    table, :func:`op_sizes`; the reference semantics count it expanded) plus ``samples ×
    neurons`` of state; the reference semantics also keep every step's values (``samples ×
    steps × neurons``)."""
    neurons, synapses = graph_sizes(graph, expand_convolutions=backend == "reference")
    need = synapses * RUN_BYTES_PER_SYNAPSE + samples * neurons * RUN_BYTES_PER_STATE
    how = f"{synapses} synapses × {RUN_BYTES_PER_SYNAPSE} B + {samples} samples × {neurons} neurons × {RUN_BYTES_PER_STATE} B"
    if backend == "reference":
        need += samples * steps * neurons * REFERENCE_BYTES_PER_STEP
        how += f" + {samples} samples × {steps} steps × {neurons} neurons × {REFERENCE_BYTES_PER_STEP} B"
    check_stage(f"the run ({backend} backend)", need, how, "fewer samples a batch"
                + (", fewer --timesteps or another --backend" if backend == "reference" else ""))
