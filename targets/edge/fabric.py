"""An edge fabric's configuration: what the image's ``xylo.config`` section holds.

A fabric has ``I`` input channels, ``H`` hidden neurons (one recurrent population with
``S`` synaptic currents each) and ``O`` readout neurons (docs/edge-target.md).  Its
configuration is the weight matrices per synaptic current, one left shift per matrix, and
per neuron the bit-shift decays, threshold and bias.  :func:`assign` builds it from a graph
(neuron assignment and the design-rule check), :meth:`Config.to_bytes` and
:func:`load_config` write and read the section; :func:`load_config` validates every field
against the chip and refuses bad content with :class:`~nmc.diagnostics.NmcError`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.core import Graph, Op
from nmc.targets.edge.chip import max_dash

SECTION = "xylo.config"
FORMAT_VERSION = 1

# name -> (dtype, shape in terms of S, H, I, O)
ARRAYS = {
    "w_in": ("int64", ("S", "H", "I")),
    "w_rec": ("int64", ("S", "H", "H")),
    "w_out": ("int64", ("O", "H")),
    "dash_syn": ("int64", ("S", "H")),
    "dash_mem": ("int64", ("H",)),
    "threshold": ("int64", ("H",)),
    "bias": ("int64", ("H",)),
    "dash_syn_out": ("int64", ("O",)),
    "dash_mem_out": ("int64", ("O",)),
    "threshold_out": ("int64", ("O",)),
    "bias_out": ("int64", ("O",)),
    "fan_in_src": ("int64", ("I",)),
    "fan_hid_src": ("int64", ("H",)),
}
SCALARS = ("inputs", "hidden", "outputs", "synapses", "shift_in", "shift_rec", "shift_out", "state_bits",
           "max_hidden_events", "max_output_events", "max_input_events", "timesteps", "depth")
DECODE_MODES = ("count", "membrane")


@dataclass
class Config:
    """One fabric configuration (module docstring).  ``w_in[k, h, i]``: input channel ``i`` to
    synaptic current ``k`` of hidden neuron ``h``; ``w_rec[k, h, j]``: hidden ``j`` to hidden
    ``h``; ``w_out[o, h]``: hidden ``h`` to readout ``o`` (one synaptic current).
    ``populations``: per graph population its name, role, first neuron and neuron count (the
    assignment).  ``input_shape``: the event input's shape per step; ``decodes``: per graph
    output the readout population it decodes and how (``count`` or ``membrane``);
    ``timesteps``, ``depth``: the default presentation steps and the longest input-to-readout
    delay (a run lasts ``T + depth − 1`` steps, docs/design.md §5); ``fan_in_src``,
    ``fan_hid_src``: the structural fan-out of each input channel and hidden neuron (the
    synaptic-op count of the semantics)."""

    inputs: int
    hidden: int
    outputs: int
    synapses: int
    shift_in: int
    shift_rec: int
    shift_out: int
    state_bits: int
    max_hidden_events: int
    max_output_events: int
    max_input_events: int
    timesteps: int
    depth: int
    w_in: np.ndarray
    w_rec: np.ndarray
    w_out: np.ndarray
    dash_syn: np.ndarray
    dash_mem: np.ndarray
    threshold: np.ndarray
    bias: np.ndarray
    dash_syn_out: np.ndarray
    dash_mem_out: np.ndarray
    threshold_out: np.ndarray
    bias_out: np.ndarray
    fan_in_src: np.ndarray
    fan_hid_src: np.ndarray
    populations: list
    input_shape: list
    decodes: list

    def to_bytes(self) -> bytes:
        """The section's bytes: sorted JSON, arrays as base64 of little-endian int64 (deterministic)."""
        doc = {"version": FORMAT_VERSION, "populations": self.populations, "input_shape": self.input_shape,
               "decodes": self.decodes}
        doc.update({k: int(getattr(self, k)) for k in SCALARS})
        doc["arrays"] = {k: base64.b64encode(np.ascontiguousarray(getattr(self, k), dtype="<i8").tobytes()).decode()
                         for k in ARRAYS}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    def fan_out(self) -> np.ndarray:
        """Synapses each hidden neuron drives: nonzero recurrent and readout weights."""
        return (self.w_rec != 0).sum(axis=(0, 1)) + (self.w_out != 0).sum(axis=0)

    def synapse_count(self) -> int:
        return int((self.w_in != 0).sum() + (self.w_rec != 0).sum() + (self.w_out != 0).sum())


# --------------------------------------------------------------------------- loading


def load_config(data: bytes, chip, where: str) -> Config:
    """The configuration in a section's bytes, every field checked against ``chip``; an
    NmcError naming ``where`` and the field otherwise."""

    def bad(what: str) -> NmcError:
        return NmcError(f"{where}: {what}", hint="the image is damaged or was not written by nmc; compile it again")

    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as err:
        raise bad(f"not JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
        raise bad(f"not a version-{FORMAT_VERSION} fabric configuration")
    values = {}
    for k in SCALARS:
        v = doc.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise bad(f"field '{k}' must be a non-negative integer, got {v!r}")
        values[k] = v
    fab, fmt = chip.sections["fabric"], chip.sections["formats"]
    limits = {"inputs": fab.input_channels, "hidden": fab.hidden_neurons, "outputs": fab.output_neurons,
              "synapses": fab.hidden_synapses, "shift_in": fmt.weight_shift_max, "shift_rec": fmt.weight_shift_max,
              "shift_out": fmt.weight_shift_max}
    for k, hi in limits.items():
        if values[k] > hi:
            raise bad(f"field '{k}' = {values[k]} exceeds the chip's {hi}")
    fixed = {"state_bits": fmt.state_bits, "max_hidden_events": fab.max_hidden_events,
             "max_output_events": fab.max_output_events, "max_input_events": fab.max_input_events}
    for k, want in fixed.items():
        if values[k] != want:
            raise bad(f"field '{k}' = {values[k]}; chip '{chip.name}' has {want}")
    if values["synapses"] < 1 or values["outputs"] < 1:
        raise bad("a fabric needs at least one synaptic current and one output neuron")
    dims = {"S": values["synapses"], "H": values["hidden"], "I": values["inputs"], "O": values["outputs"]}
    arrays = doc.get("arrays")
    if not isinstance(arrays, dict):
        raise bad("field 'arrays' is missing")
    for name, (_, axes) in ARRAYS.items():
        shape = tuple(dims[a] for a in axes)
        try:
            raw = base64.b64decode(arrays[name], validate=True)
        except (KeyError, TypeError, ValueError):
            raise bad(f"array '{name}' is missing or not base64") from None
        if len(raw) != 8 * int(np.prod(shape)):
            raise bad(f"array '{name}' holds {len(raw)} bytes; shape {list(shape)} needs {8 * int(np.prod(shape))}")
        values[name] = np.frombuffer(raw, dtype="<i8").astype(np.int64).reshape(shape)
    wlo, whi = -(1 << (fmt.weight_bits - 1)), (1 << (fmt.weight_bits - 1)) - 1
    tlo, thi = -(1 << (fmt.threshold_bits - 1)), (1 << (fmt.threshold_bits - 1)) - 1
    ranges = {"w_in": (wlo, whi), "w_rec": (wlo, whi), "w_out": (wlo, whi), "dash_syn": (0, max_dash(chip)),
              "dash_mem": (0, max_dash(chip)), "dash_syn_out": (0, max_dash(chip)), "dash_mem_out": (0, max_dash(chip)),
              "threshold": (1, thi), "threshold_out": (1, thi), "bias": (tlo, thi), "bias_out": (tlo, thi)}
    for name, (lo, hi) in ranges.items():
        a = values[name]
        if a.size and (a.min() < lo or a.max() > hi):
            raise bad(f"array '{name}' has values outside [{lo}, {hi}] ({int(a.min())}..{int(a.max())})")
    pops, shape, decodes = doc.get("populations"), doc.get("input_shape"), doc.get("decodes")
    if not isinstance(pops, list) or not all(
            isinstance(p, dict) and isinstance(p.get("name"), str) and p.get("role") in ("hidden", "readout")
            and isinstance(p.get("first"), int) and isinstance(p.get("neurons"), int) and p["neurons"] >= 1
            and 0 <= p["first"] and p["first"] + p["neurons"] <= dims["H" if p["role"] == "hidden" else "O"]
            for p in pops):
        raise bad("field 'populations' must list each population's name, role, first neuron and neuron count "
                  "within the fabric")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 1 for d in shape) \
            or int(np.prod(shape)) != dims["I"]:
        raise bad(f"field 'input_shape' must be the shape of the {dims['I']} input channels, got {shape!r}")
    readouts = {p["name"] for p in pops if p["role"] == "readout"}
    if not isinstance(decodes, list) or not decodes or not all(
            isinstance(d, dict) and d.get("population") in readouts and d.get("mode") in DECODE_MODES for d in decodes):
        raise bad("field 'decodes' must name, per output, a readout population and a mode (count or membrane)")
    if values["timesteps"] < 1 or values["depth"] < 1:
        raise bad("fields 'timesteps' and 'depth' must be at least 1")
    config = Config(**values, populations=pops, input_shape=shape, decodes=decodes)
    over = int(config.fan_out().max()) if config.hidden else 0
    if over > fab.max_fan_out:
        raise bad(f"a hidden neuron drives {over} synapses; the chip allows {fab.max_fan_out}")
    return config


# --------------------------------------------------------------------------- assignment


def matrix(p: Op) -> np.ndarray:
    """The dense ``[target, source]`` integer weight matrix of a stateless projection, without
    its exponent (:func:`nmc.semantics.weight_matrix`)."""
    from nmc.semantics import weight_matrix

    return weight_matrix(p) >> p.exponent


def _param(pop: Op, name: str) -> np.ndarray:
    from nmc.ir.core import param_array

    return param_array(getattr(pop, name), pop.result.type.shape, np.int64).reshape(-1)


def assign(graph: Graph, chip) -> Config:
    """Assign the graph's neurons to the fabric and check every design rule of the chip.

    Roles: the graph's one ``spikes`` encoder feeds the input channels; populations read by an
    ``snn.decode`` are readout neurons, all others hidden neurons, each population a
    contiguous range in graph order.  Every violated rule is collected and reported at once
    (an NmcError listing each with its numbers and what to try)."""
    from nmc.targets.mapping.netlist import pop_name

    fab, fmt = chip.sections["fabric"], chip.sections["formats"]
    errors: list[str] = []
    hints: list[str] = []

    def rule(ok: bool, message: str, hint: str = "") -> None:
        if not ok:
            errors.append(message)
            if hint and hint not in hints:
                hints.append(hint)

    encoders = graph.walk("snn.encode")
    pops = graph.walk("snn.population")
    decoded = {d.x.owner for d in graph.walk("snn.decode")}
    hidden = [p for p in pops if p not in decoded]
    readout = [p for p in pops if p in decoded]
    names = {p: pop_name(p, i) for i, p in enumerate(pops)}
    rule(len(encoders) == 1 and encoders[0].encoding == "spikes",
         f"the fabric takes one event input (an snn.encode with encoding = spikes); the graph has "
         f"{', '.join(e.encoding for e in encoders) or 'none'}", "feed the network a spike train input")
    n_in = sum(e.result.type.size for e in encoders)
    n_hid = sum(p.result.type.size for p in hidden)
    n_out = sum(p.result.type.size for p in readout)
    rule(n_in <= fab.input_channels, f"{n_in} input channels; chip '{chip.name}' has {fab.input_channels} "
         f"(over by {n_in - fab.input_channels})", "fewer input channels (pool or select the input features)")
    rule(n_hid <= fab.hidden_neurons, f"{n_hid} hidden neurons; chip '{chip.name}' has {fab.hidden_neurons} "
         f"(over by {n_hid - fab.hidden_neurons})", "fewer hidden neurons")
    rule(1 <= n_out <= fab.output_neurons, f"{n_out} readout neurons; chip '{chip.name}' has {fab.output_neurons}"
         + (f" (over by {n_out - fab.output_neurons})" if n_out > fab.output_neurons else ""),
         "decode at most that many neurons (one per class)")
    first: dict[Op, int] = {}
    offset = 0
    for p in hidden:
        first[p], offset = offset, offset + p.result.type.size
    offset = 0
    for p in readout:
        first[p], offset = offset, offset + p.result.type.size
    S = fab.hidden_synapses
    w_in = np.zeros((S, n_hid, n_in), np.int64)
    w_rec = np.zeros((S, n_hid, n_hid), np.int64)
    w_out = np.zeros((max(n_out, 0), n_hid), np.int64)
    shifts: dict[str, list[tuple[Op, int]]] = {"in": [], "rec": [], "out": []}
    blocks = []
    for pop in pops:
        name = names[pop]
        limit = fab.max_output_events if pop in decoded else fab.max_hidden_events
        rule(pop.leak == "shift", f"%{name} decays by leak = {pop.leak}; the fabric's neurons decay by bit shifts",
             "compile through xylo-convert (the default pipeline does)")
        rule(pop.bits == fmt.state_bits, f"%{name} has {pop.bits}-bit state; the fabric holds {fmt.state_bits}")
        rule(pop.reset == "subtract", f"%{name} resets by '{pop.reset}'; the fabric subtracts the threshold in the "
             "step a neuron fires")
        rule(pop.max_spikes == limit, f"%{name} emits up to {pop.max_spikes} events per step; the fabric's "
             f"{'readout' if pop in decoded else 'hidden'} neurons emit up to {limit}")
        rule(not np.any(_param(pop, "v0")), f"%{name} starts at a nonzero voltage; the fabric starts at 0")
        synapses = pop.synapse or (0,) * len(pop.currents)
        rank = {op: i for i, op in enumerate(graph.ops)}
        seen: dict[tuple, Op] = {}
        last = -1
        for c, k in zip(pop.currents, synapses):
            p = c.owner
            src = p.src.owner
            where = f"projection %{p.result.name or '?'} into %{name}"
            rule((src, k) not in seen, f"{where} and %{seen.get((src, k)) and seen[(src, k)].result.name} both connect "
                 f"%{names.get(src, src.result.name)} to synaptic current {k}; the fabric holds one weight per pair",
                 "merge the projections into one")
            seen.setdefault((src, k), p)
            rule(rank[src] >= last, f"the inputs of %{name} are not in the fabric's delivery order (input first, then "
                 "source populations in graph order)", "run xylo-convert (it orders them)")
            last = max(last, rank[src])
            rule(p.delay == 1, f"{where} has delay {p.delay}; the fabric delivers after exactly 1 step")
            rule(p.kind != "maxgate", f"{where} is a max-pool gate; the fabric's synapses keep no state")
            if p.delay != 1 or p.kind == "maxgate":
                continue
            if pop in decoded:
                ok = k == 0 and src.KIND == "snn.population" and src not in decoded
                rule(k == 0, f"{where} feeds synaptic current {k}; readout neurons have {fab.output_synapses}")
                rule(src.KIND == "snn.population" and src not in decoded,
                     f"{where} comes from {'the input' if src.KIND == 'snn.encode' else 'a readout population'}; "
                     "readout neurons listen to hidden neurons only", "add a hidden layer between input and readout")
                group = "out"
            else:
                ok = k < S and (src.KIND == "snn.encode" or src not in decoded)
                rule(k < S, f"{where} feeds synaptic current {k}; hidden neurons have {S}")
                rule(src.KIND == "snn.encode" or src not in decoded,
                     f"{where} comes from readout population %{names.get(src, '?')}; readout neurons drive nothing",
                     "decode the hidden population instead, or make the readout a hidden layer")
                group = "in" if src.KIND == "snn.encode" else "rec"
            if not ok:
                continue
            shifts[group].append((p, p.exponent))
            blocks.append((group, k, pop, src, p))
    # one left shift per matrix: the smallest exponent of the group; larger ones scale their weights
    chosen = {g: min((e for _, e in v), default=0) for g, v in shifts.items()}
    wlo, whi = -(1 << (fmt.weight_bits - 1)), (1 << (fmt.weight_bits - 1)) - 1
    for group, k, pop, src, p in blocks:
        m = matrix(p) << (p.exponent - chosen[group])
        where = f"projection %{p.result.name or '?'} into %{names[pop]}"
        lo, hi = (int(m.min()), int(m.max())) if m.size else (0, 0)
        rule(wlo <= lo and hi <= whi, f"{where} needs weights in [{lo}, {hi}] at shift {chosen[group]}; the fabric "
             f"holds {fmt.weight_bits}-bit weights [{wlo}, {whi}]",
             f"quantize{{weight-bits={fmt.weight_bits}}}, with one weight exponent per matrix (input, recurrent, readout)")
        rows = slice(first[pop], first[pop] + pop.result.type.size)
        if group == "in":
            w_in[k, rows, :] += m
        elif group == "rec":
            w_rec[k, rows, first[src]:first[src] + src.result.type.size] += m
        else:
            w_out[rows, first[src]:first[src] + src.result.type.size] += m
    for g, e in chosen.items():
        rule(e <= fmt.weight_shift_max, f"the {g} weights need shift {e}; the fabric shifts by at most "
             f"{fmt.weight_shift_max}")
    hi_dash = max_dash(chip)
    per = {"dash_syn": [], "dash_mem": [], "threshold": [], "bias": []}
    per_out = {"dash_syn_out": [], "dash_mem_out": [], "threshold_out": [], "bias_out": []}
    tlo, thi = -(1 << (fmt.threshold_bits - 1)), (1 << (fmt.threshold_bits - 1)) - 1
    for pop in pops:
        name = names[pop]
        du = np.stack([_param(pop, "du"), _param(pop, "du2")])
        dv, th, b = _param(pop, "dv"), _param(pop, "threshold"), _param(pop, "bias")
        for what, arr, lo, hi in (("synaptic decay shift", du, 0, hi_dash), ("membrane decay shift", dv, 0, hi_dash),
                                  ("threshold", th, 1, thi), ("bias", b, tlo, thi)):
            if arr.size and (arr.min() < lo or arr.max() > hi):
                rule(False, f"%{name} has a {what} in [{int(arr.min())}, {int(arr.max())}]; the fabric holds [{lo}, {hi}]",
                     "map τ to shifts the chip holds (xylo-convert) and quantize thresholds to its width")
        if pop in decoded:
            per_out["dash_syn_out"].append(du[0])
            per_out["dash_mem_out"].append(dv)
            per_out["threshold_out"].append(th)
            per_out["bias_out"].append(b)
        else:
            per["dash_syn"].append(du[:S])
            per["dash_mem"].append(dv)
            per["threshold"].append(th)
            per["bias"].append(b)
    from nmc.semantics import fanout, latency_steps

    fan_in_src, fan_hid_src = np.zeros(n_in, np.int64), np.zeros(n_hid, np.int64)
    for p in graph.walk("snn.project"):
        src = p.src.owner
        if src.KIND == "snn.encode" and n_in == src.result.type.size:
            fan_in_src += fanout(p)
        elif src in first and src not in decoded:
            fan_hid_src[first[src]:first[src] + src.result.type.size] += fanout(p)
    decodes = []
    for v in graph.outputs:
        d = v.owner
        rule(d is not None and d.KIND == "snn.decode", "a graph output is not an snn.decode of a readout population; "
             "the fabric's outputs are its readout neurons", "compute what follows the decode on the host")
        if d is not None and d.KIND == "snn.decode":
            decodes.append({"population": names[d.x.owner], "mode": d.mode})
    x = encoders[0].x if encoders else None
    rule(x is None or (x.owner is not None and x.owner.KIND == "ann.input"),
         "the event input must come straight from a graph input", "preprocess the input on the host")
    config = Config(
        timesteps=int(graph.meta.get("timesteps", 1)), depth=latency_steps(graph, 1),
        fan_in_src=fan_in_src, fan_hid_src=fan_hid_src,
        input_shape=list(encoders[0].result.type.shape) if encoders else [n_in], decodes=decodes,
        inputs=n_in, hidden=n_hid, outputs=n_out, synapses=S, shift_in=chosen["in"], shift_rec=chosen["rec"],
        shift_out=chosen["out"], state_bits=fmt.state_bits, max_hidden_events=fab.max_hidden_events,
        max_output_events=fab.max_output_events, max_input_events=fab.max_input_events,
        w_in=w_in, w_rec=w_rec, w_out=w_out,
        dash_syn=np.concatenate(per["dash_syn"], axis=1) if per["dash_syn"] else np.zeros((S, 0), np.int64),
        **{k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in per.items() if k != "dash_syn"},
        **{k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in per_out.items()},
        populations=[{"name": names[p], "role": "readout" if p in decoded else "hidden", "first": first[p],
                      "neurons": p.result.type.size} for p in pops])
    if n_hid:
        fan = config.fan_out()
        worst = int(fan.max())
        rule(worst <= fab.max_fan_out, f"{int((fan > fab.max_fan_out).sum())} hidden neuron(s) drive more than "
             f"{fab.max_fan_out} synapses (the most: {worst}, over by {worst - fab.max_fan_out})",
             "sparser recurrent and readout weights (prune the smallest), or fewer targets per neuron")
    if errors:
        raise NmcError(f"the network does not fit chip '{chip.name}': {len(errors)} design rule(s) violated:\n  - "
                       + "\n  - ".join(errors), hint="; ".join(hints) or None)
    return config


# --------------------------------------------------------------------------- graph


def _param_value(arr: np.ndarray):
    """A per-neuron parameter as the IR holds it: a number when all equal, else a blob."""
    from nmc.ir.core import Blob

    flat = np.asarray(arr, np.int64).reshape(-1)
    return int(flat[0]) if flat.size and np.all(flat == flat[0]) else Blob(flat.astype(np.int32))


def to_graph(c: Config, name: str = "fabric") -> Graph:
    """The ``snn`` graph a configuration runs (the inverse of :func:`assign` for one hidden
    and one readout population): spikes input ``%x`` ``[T, inputs]``, hidden ``%h`` (bit-shift,
    its synaptic currents fed by one input and one recurrent dense projection each), readout
    ``%o`` decoded by its spike count.  Weight matrices become int8 blobs when they fit."""
    from nmc.ir.ann import Input, Output
    from nmc.ir.core import Blob
    from nmc.ir.snn import Decode, Encode, Population, Project
    from nmc.ir.types import SpikeType, TensorType

    def weights(m: np.ndarray) -> Blob:
        return Blob(m.astype(np.int8 if m.size == 0 or (m.min() >= -128 and m.max() <= 127) else np.int16))

    g = Graph(name, {"timesteps": int(c.timesteps)})
    x = g.add(Input(declared_type=TensorType((c.inputs,), "f32")), "x")
    s = g.add(Encode(x=x, encoding="spikes"), "s")
    hidden = Population(currents=[], declared_type=SpikeType((c.hidden,)), threshold=_param_value(c.threshold),
                        bias=_param_value(c.bias), du=_param_value(c.dash_syn[0]),
                        du2=_param_value(c.dash_syn[1]) if c.synapses > 1 else 0, dv=_param_value(c.dash_mem),
                        v0=0, bits=c.state_bits, leak="shift", max_spikes=c.max_hidden_events,
                        synapse=tuple(range(c.synapses)) * 2)
    for k in range(c.synapses):
        hidden.currents.append(g.add(Project(src=s, kind="dense", weight=weights(c.w_in[k]), exponent=c.shift_in),
                                     f"in{k}"))
    g.add(hidden, "h")
    for k in range(c.synapses):
        hidden.currents.append(g.add(Project(src=hidden.result, kind="dense", weight=weights(c.w_rec[k]),
                                             exponent=c.shift_rec), f"rec{k}"))
    readout_in = g.add(Project(src=hidden.result, kind="dense", weight=weights(c.w_out), exponent=c.shift_out), "ro")
    out = g.add(Population(currents=[readout_in], declared_type=SpikeType((c.outputs,)),
                           threshold=_param_value(c.threshold_out), bias=_param_value(c.bias_out),
                           du=_param_value(c.dash_syn_out), dv=_param_value(c.dash_mem_out), v0=0, bits=c.state_bits,
                           leak="shift", max_spikes=c.max_output_events), "o")
    y = g.add(Decode(x=out, mode="count"), "y")
    g.add(Output(values=[y]))
    from nmc.ir.verifier import verify

    verify(g)
    return g


def random_config(rng: np.random.Generator, chip, *, inputs: int, hidden: int, outputs: int, timesteps: int = 50,
                  density: float = 0.3, weight_scale: int = 127, threshold_max: int = 2000) -> Config:
    """A random configuration within ``chip``'s limits (tests, examples/check_xylo.py): int8
    weights with about ``density`` of them nonzero, at most the fan-out limit per hidden
    neuron; shifts, decays, thresholds in [1, threshold_max] and biases drawn at random."""
    fab, fmt = chip.sections["fabric"], chip.sections["formats"]
    S, top = fab.hidden_synapses, max_dash(chip)

    def sparse(shape, p):
        w = rng.integers(-weight_scale, weight_scale + 1, size=shape)
        return np.where(rng.random(shape) < p, w, 0).astype(np.int64)

    w_in = sparse((S, hidden, inputs), density)
    w_rec = sparse((S, hidden, hidden), density)
    w_out = sparse((outputs, hidden), min(1.0, 2 * density))
    for j in range(hidden):  # prune each hidden neuron's outgoing synapses to the fan-out limit
        slots = [(0, k, h) for k in range(S) for h in range(hidden) if w_rec[k, h, j]] + \
                [(1, o, 0) for o in range(outputs) if w_out[o, j]]
        for i in rng.permutation(len(slots))[: max(0, len(slots) - fab.max_fan_out)]:
            kind, a, b = slots[i]
            if kind == 0:
                w_rec[a, b, j] = 0
            else:
                w_out[a, j] = 0
    shift = fmt.weight_shift_max
    return Config(
        inputs=inputs, hidden=hidden, outputs=outputs, synapses=S,
        shift_in=int(rng.integers(0, min(shift, 4) + 1)), shift_rec=int(rng.integers(0, min(shift, 4) + 1)),
        shift_out=int(rng.integers(0, min(shift, 4) + 1)), state_bits=fmt.state_bits,
        max_hidden_events=fab.max_hidden_events, max_output_events=fab.max_output_events,
        max_input_events=fab.max_input_events, timesteps=timesteps, depth=2,
        w_in=w_in, w_rec=w_rec, w_out=w_out,
        dash_syn=rng.integers(0, top + 1, size=(S, hidden)), dash_mem=rng.integers(0, top + 1, size=hidden),
        threshold=rng.integers(1, threshold_max + 1, size=hidden), bias=rng.integers(-50, 51, size=hidden),
        dash_syn_out=rng.integers(0, top + 1, size=outputs), dash_mem_out=rng.integers(0, top + 1, size=outputs),
        threshold_out=rng.integers(1, threshold_max + 1, size=outputs), bias_out=rng.integers(-50, 51, size=outputs),
        fan_in_src=np.full(inputs, S * hidden, np.int64), fan_hid_src=np.full(hidden, S * hidden + outputs, np.int64),
        populations=[{"name": "h", "role": "hidden", "first": 0, "neurons": hidden},
                     {"name": "o", "role": "readout", "first": 0, "neurons": outputs}],
        input_shape=[inputs], decodes=[{"population": "o", "mode": "count"}])


def random_events(rng: np.random.Generator, config: Config, samples: int, steps: int, rate: float = 0.2) -> np.ndarray:
    """Input event counts ``[samples, steps, inputs]``: a channel is active with probability
    ``rate`` in a step and then carries 1..max_input_events events."""
    active = rng.random((samples, steps, config.inputs)) < rate
    return np.where(active, rng.integers(1, config.max_input_events + 1, size=active.shape), 0).astype(np.float32)
