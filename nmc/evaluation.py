"""ANN vs float SNN vs integer SNN: the measurements behind ``nmc eval`` (docs/design.md §7).

:func:`evaluate` canonicalises, calibrates and normalises an ANN once, then for each T converts
it, runs the float SNN and (with a chip) the quantised integer SNN, and compares classes with
the ANN's.  :func:`rate_code_classes` gives the ANN as a rate code of T steps can show it at
best, which separates the code's resolution from the spiking network's own losses.
:func:`layer_losses` attributes the loss to layers: for each population made from
an ANN activation, how well its firing rates follow the normalised activations.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

import numpy as np

from nmc import semantics
from nmc.compiler import chip_conversion, option_value
from nmc.diagnostics import NmcError
from nmc.ir.core import Graph
from nmc.passmanager import PassContext, PassManager
from nmc.runner import fastest_backend, prepare

CHUNK = 250  # samples per executor call: bounded memory, and the progress bar moves


def progress(total: int, desc: str):
    """A progress bar on a terminal (stderr), none otherwise."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sample", leave=False, disable=not sys.stderr.isatty())


def predict_range(execute, x: np.ndarray, start: int, stop: int, bar=None) -> tuple[np.ndarray, dict]:
    """Classes of ``x[start:stop]`` and totals (spikes, synaptic ops, steps) by a prepared
    executor, one call per block of ``CHUNK`` samples starting at a multiple of ``CHUNK``
    (``start`` is one): the calls, so the results, are the same whether the whole set runs here
    or in shards on a cluster (:mod:`nmc.cluster`)."""
    classes, totals = [], {"spikes": 0, "synaptic_ops": 0, "steps": None}
    for i in range(start, stop, CHUNK):
        chunk = x[i:min(i + CHUNK, stop)]
        res = execute([chunk])
        classes.append(res.predictions())
        totals["spikes"] += res.spikes
        totals["synaptic_ops"] += res.synaptic_ops
        totals["steps"] = res.steps
        if bar is not None:
            bar.update(len(chunk))
    return (np.concatenate(classes) if classes else np.zeros(0, np.int64)), totals


def _predict(graph: Graph, x: np.ndarray, backend: str, bar) -> tuple[np.ndarray, dict]:
    """Classes of ``x`` and totals (spikes, synaptic ops, steps), in chunks."""
    return predict_range(prepare(graph, backend), x, 0, len(x), bar)


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.size < 2 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _voltage_unit(pop) -> float:
    """What one unit of ANN activation is in this population's voltage: 1 for a float
    population; the quantisation scale (the integer threshold of a spiking one) otherwise."""
    if not pop.bits:
        return 1.0
    return float(pop.extra.get("quant.scale", 1.0))


def rate_code_classes(base: Graph, snn: Graph, x: np.ndarray, timesteps: int) -> np.ndarray:
    """Classes of the normalised ANN ``base`` seen through a rate code of ``timesteps`` steps:
    every activation that ``snn`` holds in spiking neurons, and the input where ``snn`` presents
    it as spikes (``rate``, ``poisson``), clipped to [0, 1] and rounded to the nearest multiple
    of ``1 / timesteps``.

    A population of burst neurons (``max_spikes = B``) rounds to multiples of ``1 / (B·timesteps)``.

    That rounding is what an IF neuron (v0 = θ/2, reset by subtraction) fires under a constant
    input in ``timesteps`` steps, and the nearest any count of spikes in that window comes to an
    activation.  So the ANN's accuracy minus this one's is what the code's ``T + 1`` levels
    cost, whatever the neurons do; the SNN's accuracy differs from this one's by what the
    spiking network adds (inputs that arrive unevenly, quantised weights), in either direction
    (a rounding error can also fix a class)."""
    coded = {p.result.name: timesteps * p.max_spikes for p in snn.walk("snn.population")
             if not isinstance(p.threshold, float) or np.isfinite(p.threshold)}
    coded |= {e.x.name: timesteps for e in snn.walk("snn.encode") if e.encoding in ("rate", "poisson")}
    coded.pop(None, None)

    def rounded(a: np.ndarray, levels: int) -> np.ndarray:
        return (np.clip(np.floor(a.astype(np.float64) * levels + 0.5), 0, levels) / levels).astype(a.dtype)

    classes = []
    for i in range(0, len(x), CHUNK):
        chunk = x[i:i + CHUNK]
        inputs = [rounded(chunk, coded[v.name]) if v.name in coded else chunk for v in base.inputs]
        out = semantics.run_ann(base, inputs, transform=lambda v, a: rounded(a, coded[v.name]) if v.name in coded
                                else a).outputs[0]
        classes.append(semantics.classify(out))
    return np.concatenate(classes)


def layer_losses(base: Graph, snn: Graph, x: np.ndarray) -> list[dict]:
    """Per population of ``snn`` made from a named activation of ``base``, the normalised ANN
    it was converted from (same scales):
    Pearson correlation and relative error (L2) between the activations clipped to [0, 1] and
    the firing rates (spikes / T; for a non-spiking output layer, final voltage / T), the
    fraction of activations above 1 (clipped: a rate cannot exceed 1), and the population's
    quantisation error and saturation count when it is integer."""
    ann = semantics.run_ann(base, [x], keep=True)
    by_name = {v.name: a for v, a in ann.values.items() if v.name}
    res = semantics.run_snn(snn, [x])
    T = res.timesteps
    decoded = {d.x.owner: d.mode for d in snn.walk("snn.decode")}
    rows = []
    for pop in snn.walk("snn.population"):
        name = pop.result.name
        if name not in by_name:
            continue
        a = by_name[name].reshape(len(x), -1).astype(np.float64)
        if decoded.get(pop) == "membrane":
            out = res.outputs[[d.x.owner for d in snn.walk("snn.decode")].index(pop)]
            rate = out.reshape(len(x), -1).astype(np.float64) / T / _voltage_unit(pop)
            target = a
        else:
            rate = res.counts[pop].reshape(len(x), -1).astype(np.float64) / T
            target = np.clip(a, 0.0, 1.0)
        norm = np.linalg.norm(target)
        rows.append({
            "layer": name, "neurons": int(pop.result.type.size),
            "correlation": _pearson(target.reshape(-1), rate.reshape(-1)),
            "relative_error": float(np.linalg.norm(rate - target) / norm) if norm > 0 else None,
            "clipped": None if decoded.get(pop) == "membrane" else float(np.mean(a > 1.0)),
            "rate": float(rate.mean()),
            "quant_error": pop.extra.get("quant.error"),
            "saturated": pop.extra.get("quant.saturated"),
        })
    return rows


def evaluate(graph: Graph, x: np.ndarray, y: np.ndarray, x_cal: np.ndarray, chip, timesteps: Iterable[int], *,
             percentile: float = 99.9, thresholds: str = "calibrated", weight_bits: int = 8, encoding: str = "rate",
             convert_options: str = "", normalize_options: str = "",
             backend: str | None = None, per_layer: bool = False, on_row: Callable[[dict], None] | None = None,
             predict: Callable | None = None) -> dict:
    """The report of docs/design.md §7 for ``nmc eval``; ``chip`` None: no integer SNN.
    ``thresholds``: ``percentile`` normalises every layer by its calibrated percentile once;
    ``calibrated`` chooses each layer's scale for each T (``normalize{timesteps=T}``).
    ``normalize_options``: more options of the per-T normalize (``"channelwise=true"``), which
    is also told the ``encoding``.  ``convert_options``: more options of convert-to-spiking (``"v0=0,reset=zero"``); with a chip
    the conversion starts from its class's options, as ``nmc compile`` converts for it (for a chip
    whose synapses keep no state: ``maxpool=tree``; with graded spikes: burst neurons, whose note
    is in ``notes``; :func:`nmc.compiler.chip_conversion`), which these override key by key.  With ``per_layer`` every row also holds ``layers`` (float) and
    ``int_layers`` (:func:`layer_losses`).  ``predict(graph, x, backend, bar)``: how the networks
    are run (default: here, in chunks; ``nmc.cluster.Cluster.predict``: shards on a Ray cluster)."""
    if semantics.is_spiking(graph):
        raise NmcError("nmc eval needs an ANN model; this graph is already spiking",
                       hint="use nmc run --timesteps N to run a spiking graph")
    backend = backend or fastest_backend()
    predict = predict or _predict
    timesteps = list(timesteps)
    convert_options, burst_note = chip_conversion(chip, convert_options)  # as nmc compile converts for the chip
    ctx = PassContext(calibration=x_cal, target=chip)
    lrn_scale = "lrn=scale" in convert_options.split(",")  # the SNN's ANN has fitted gains for LRN
    calibrated = PassManager(f"canonicalize{',lrn-to-scale' if lrn_scale else ''},calibrate{{percentile={percentile}}}",
                             ctx).run(graph.clone())
    base = PassManager(f"normalize{{percentile={percentile}}}", ctx).run(calibrated.clone())
    runs = len(timesteps) * (2 if chip is not None else 1) + 1
    with progress(runs * len(x), "eval") as bar:
        ann = PassManager("canonicalize", ctx).run(graph.clone()) if lrn_scale else base  # with its LRN
        ann_pred, _ = predict(ann, x, "reference", bar)
        report = {"ann_accuracy": float(np.mean(ann_pred == y)), "samples": int(len(x)), "backend": backend,
                  "encoding": encoding, "thresholds": thresholds, "convert_options": convert_options, "snn": []}
        if burst_note:
            report["notes"] = [burst_note]
        if lrn_scale:
            report.setdefault("notes", []).extend(["lrn=scale: the SNN is converted from the network with each LRN replaced by a gain "
                               "fitted on the calibration data (lrn-to-scale); ann_accuracy is the LRN network's"])
        for T in timesteps:
            burst = option_value(convert_options, "burst", "1")  # the burst neurons' code (fit_options)
            per_t = ",".join(o for o in (f"percentile={percentile}", f"timesteps={T}", f"encoding={encoding}",
                                         f"burst={burst}" if burst != "1" else "", normalize_options) if o)
            normed = base if thresholds == "percentile" else PassManager(
                f"normalize{{{per_t}}}", ctx).run(calibrated.clone())
            options = ",".join(o for o in (f"timesteps={T}", f"encoding={encoding}", convert_options) if o)
            snn = PassManager(f"convert-to-spiking{{{options}}}", ctx).run(normed.clone())
            if chip is not None and not any("maxpool=gate" in n for n in report.get("notes", ())) \
                    and any(p.kind == "maxgate" for p in snn.walk("snn.project")):
                report.setdefault("notes", []).extend([f"max pooling is converted to a max-pool gate (maxpool=gate), which the CPU runtime "
                                   f"runs but chip '{chip.name}' cannot map (its synapses keep no state); "
                                   f"convert with maxpool=tree to evaluate what nmc compile --target {chip.name} maps"])
            pred, tot = predict(snn, x, backend, bar)
            coded = rate_code_classes(normed, snn, x, T)
            row = {"timesteps": T, "latency_steps": tot["steps"], "rate_code_accuracy": float(np.mean(coded == y)),
                   "rate_code_agreement": float(np.mean(coded == ann_pred)),
                   "float_accuracy": float(np.mean(pred == y)),
                   "float_agreement": float(np.mean(pred == ann_pred)), "int_accuracy": None, "int_agreement": None,
                   "spikes_per_sample": tot["spikes"] / len(x),
                   "synaptic_ops_per_sample": tot["synaptic_ops"] / len(x)}
            if per_layer:
                row["layers"] = layer_losses(normed, snn, x)
            if chip is not None:
                quant = PassManager(f"quantize{{weight-bits={weight_bits}}}", ctx).run(snn.clone())
                ipred, itot = predict(quant, x, backend, bar)
                row.update(int_accuracy=float(np.mean(ipred == y)), int_agreement=float(np.mean(ipred == ann_pred)),
                           spikes_per_sample=itot["spikes"] / len(x),
                           synaptic_ops_per_sample=itot["synaptic_ops"] / len(x))
                if per_layer:
                    row["int_layers"] = layer_losses(normed, quant, x)
            report["snn"].append(row)
            if on_row is not None:
                on_row(row)
    return report
