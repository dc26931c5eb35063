"""The compile driver: model → default (or given) pipeline → image (docs/design.md §1, §6, §7).

Contract of :func:`compile_graph`: it runs the pipeline on a copy of the graph and returns an
:class:`~nmc.targets.image.Image` whose bytes depend only on the inputs (model, target,
calibration data, timesteps, opt level, pipeline, seed).  The image holds

* ``graph``: the ``snn`` graph right before the first mapping pass (``partition``), printed
  with blobs inline, so every image can be run by the reference and CPU backends;
* ``manifest``: JSON — source hash, pipeline, compiler version, target, timesteps, latency,
  resource summary and pass statistics (pass *timings* are not in the image, they would break
  byte-identical rebuilds; they are in ``image.stats["passes"]`` and the compile report, and
  the seconds of the mapping steps that are not passes — ``fit-board`` (``--board auto``),
  ``emit``, ``resource-summary`` — in ``image.stats["phases"]``);
* for a chip target: ``chip`` (the description's text) and the emitter's hardware sections.

Default pipelines (``--print-pipeline`` shows the one chosen):

* an ANN graph: ``canonicalize,calibrate,normalize{timesteps=T},convert-to-spiking{timesteps=T,...}``
  with the chip class's conversion options (for a chip whose synapses keep no state,
  ``maxpool=tree``: max pooling as a tournament of IF neurons) and, on a chip that declares
  graded spikes, burst neurons (``burst=B``, :func:`chip_conversion`); a graph that is already
  spiking (NIR, ``.nmd`` snn, ``.nmir`` snn) skips these;
* ``cpu``: nothing more (a float graph; no chip, no mapping);
* a chip: what its class's :meth:`~nmc.targets.classes.ChipClass.pipeline` gives — by default
  ``quantize{weight-bits=B}`` (B: 8, or the chip's widest weights when narrower; skipped when
  the graph is already integer), ``measure-rates`` (with calibration data: spike rates for
  the traffic model), then the class's mapping passes (whose options the opt level may set).
  Conversion and quantisation are the same at every level.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from nmc.diagnostics import NmcError, UsageError
from nmc.ir.core import Graph
from nmc.ir.printer import print_graph
from nmc.passmanager import Instruments, Pass, PassContext, PassManager, merge_options, parse_pipeline

CPU = "cpu"
CONVERSION = "canonicalize,calibrate,normalize{{timesteps={T}{fit}}},convert-to-spiking{{timesteps={T}{more}}}"
# the input encodings normalize fits the layers to (a spike train input is fitted as a rate code)
FITTED_ENCODINGS = ("rate", "poisson", "current")
#: The burst ``B`` of the default conversion for a chip whose description declares graded spikes
#: (``[spikes] max_per_step >= 2``; at most that many): the ``B`` among 1, 2, 4 and 8 that measured
#: best on models the choice did not see, seven retrained MNIST MLPs at T = 1 … 16 (a larger ``B``
#: only where it gained beyond the paired standard error: 8 over 4 by +0.30 ± 0.07 points at
#: T = 1, +0.15 ± 0.05 at T = 4); docs/conversion.md, "Burst neurons by default", from
#: ``benchmarks/conversion_seeds.py --variants relu --encodings rate --peers --bursts 1,2,4,8``.
DEFAULT_BURST = 8


def option_value(options: str, key: str, default: str) -> str:
    """The value ``options`` (``key=value,...``) give ``key``, else ``default``."""
    parts = options.split(",") if options else []
    return next((p.split("=", 1)[1].strip() for p in parts if p.split("=", 1)[0].strip() == key), default)


def fit_options(options: str) -> str:
    """The options of normalize that follow from convert-to-spiking's ``options``: its
    ``encoding`` (so the layers are fitted to the input as it will be presented) and its
    ``burst`` (the burst neurons' rate code), each only when it is not the default."""
    encoding, burst = option_value(options, "encoding", "rate"), option_value(options, "burst", "1")
    fit = f",encoding={encoding}" if encoding in FITTED_ENCODINGS and encoding != "rate" else ""
    return fit + (f",burst={burst}" if burst != "1" else "")


def chip_conversion(chip, convert: str = "") -> tuple[str, str | None]:
    """The options of convert-to-spiking in the default pipeline for ``chip`` (None: ``cpu``):
    its class's ``conversion_options``, overridden by ``convert`` key by key; and, when the
    chip declares graded spikes (``formats.max_spikes >= 2``), ``convert`` names no ``burst``
    and max pooling is the tree (the only one that passes bursts on), ``burst =
    min(DEFAULT_BURST, max_spikes)`` with the note that says so, else None."""
    if chip is None:
        return merge_options("", convert), None
    from nmc.targets.classes import chip_class

    options = merge_options(chip_class(chip.chip_class).conversion_options(chip), convert)
    burst = min(DEFAULT_BURST, chip.formats.max_spikes)
    if burst < 2 or option_value(convert, "burst", "") or option_value(options, "maxpool", "gate") != "tree":
        return options, None
    note = (f"burst neurons by default: burst={burst} (up to {burst} spikes per neuron and step, one graded "
            f"message), since chip '{chip.name}' declares graded spikes ([spikes] max_per_step = "
            f"{chip.formats.max_spikes}) and B = {burst} measured best on models the choice did not see "
            "(docs/conversion.md, \"Burst neurons by default\"); --convert burst=1 converts to binary spikes")
    return merge_options(options, f"burst={burst}"), note


def conversion_pipeline(timesteps: int, options: str) -> str:
    """:data:`CONVERSION` with ``options`` for convert-to-spiking; its ``encoding`` and
    ``burst`` are also normalize's (:func:`fit_options`); ``lrn=scale`` among them puts
    ``lrn-to-scale`` after ``canonicalize`` (passes/lrn_scale.py)."""
    fit = fit_options(options)
    text = CONVERSION.format(T=timesteps, fit=fit, more="," + options if options else "")
    if "lrn=scale" in options.split(","):
        text = text.replace("canonicalize,", "canonicalize,lrn-to-scale,", 1)
    return text


@dataclass(frozen=True)
class Target:
    """A resolved ``--target``: ``cpu`` (no chip) or a chip with the text of its description."""

    name: str
    chip_class: str
    chip: Any = None
    chip_text: bytes = b""


def resolve_target(name_or_path: str) -> Target:
    """``cpu``, a shipped chip name or the path of a chip description."""
    if name_or_path == CPU:
        return Target(CPU, CPU)
    from nmc.targets.chip import load_chip

    chip = load_chip(name_or_path)
    with open(chip.path, "rb") as f:
        text = f.read()
    if hashlib.sha256(text).hexdigest() != chip.digest:
        raise NmcError(f"chip description {chip.path} changed while it was being read")
    return Target(chip.name, chip.chip_class, chip, text)


def target_class(target: Target):
    """The :class:`~nmc.targets.classes.ChipClass` of a chip target (None for ``cpu``)."""
    if target.chip_class == CPU:
        return None
    from nmc.targets.classes import chip_class

    return chip_class(target.chip_class)


def is_integer(graph: Graph) -> bool:
    pops = graph.walk("snn.population")
    return bool(pops) and all(p.bits for p in pops)


def default_pipeline(graph: Graph, target: Target, opt_level: int = 2, timesteps: int = 32, seed: int = 0,
                     calibrated: bool = False, convert: str = "", quantize: str = "") -> str:
    """The pipeline ``nmc compile`` runs when ``--pipeline`` is not given (module docstring);
    ``calibrated``: calibration data is at hand (so spike rates are measured for placement);
    ``convert``/``quantize``: more options (``key=value,...``) for convert-to-spiking and
    quantize, overriding the defaults of the same keys."""
    from nmc.semantics import is_spiking

    if not 0 <= opt_level <= 3:
        raise UsageError(f"opt level must be 0 to 3, got {opt_level}")
    cls = target_class(target)
    parts = []
    if not is_spiking(graph):
        parts.append(conversion_pipeline(timesteps, chip_conversion(target.chip, convert)[0]))
    elif convert:
        raise UsageError("--convert applies to an ANN; this graph is already spiking")
    if cls is not None:
        parts.append(cls.pipeline(target.chip, integer=is_integer(graph), calibrated=calibrated, opt_level=opt_level,
                                  seed=seed, quantize=quantize))
    elif quantize:
        raise UsageError("--quantize applies to a chip target; --target cpu runs the float graph")
    return ",".join(p for p in parts if p)


def _split(passes: list[Pass], target: Target) -> tuple[list[Pass], list[Pass]]:
    """(before the first mapping pass, from it on); checks the mapping passes suit the target."""
    names = [p.NAME for p in passes]
    cls = target_class(target)
    if cls is None:
        from nmc.targets.classes import chip_class, known_classes

        mapping = [n for n in names if any(n in chip_class(c).mapping_passes for c in known_classes())]
        if mapping:
            raise UsageError(f"--target cpu does not map onto cores; remove {', '.join(mapping)} from the pipeline")
        return passes, []
    missing = [n for n in cls.mapping_passes if n not in names]
    if missing:
        raise UsageError(f"a pipeline for chip '{target.name}' must end with {','.join(cls.mapping_passes)}; "
                         f"it lacks {', '.join(missing)}")
    first = min(names.index(n) for n in cls.mapping_passes)
    return passes[:first], passes[first:]


def source_digest(graph: Graph, path: str | None) -> str:
    """SHA-256 of the model file's bytes (followed by its blob sidecar's, for an ``.nmir`` that
    has one), or of the graph's text when there is no file."""
    if path is None:
        return hashlib.sha256(print_graph(graph, print_blobs=True).encode()).hexdigest()
    from nmc.ir.io import sidecar_path

    digest = hashlib.sha256()
    for part in (path, sidecar_path(path)):
        if part == path or (path.endswith(".nmir") and os.path.isfile(part)):
            with open(part, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def compile_graph(graph: Graph, target: Target | str, *, calibration: np.ndarray | None = None,
                  timesteps: int | None = None, opt_level: int = 2, pipeline: str | None = None, seed: int = 0,
                  source_path: str | None = None, instruments: Instruments | None = None, convert: str = "",
                  quantize: str = "", board: str | None = None):
    """Compile ``graph`` (left unchanged) for ``target``; returns an Image (module contract).

    ``timesteps`` None: the graph's ``meta.timesteps`` for a spiking graph, else 32.
    ``convert``/``quantize``: options for the default pipeline (:func:`default_pipeline`).
    ``board="auto"``: map onto the smallest board of the target's chips that fits the graph
    (the chip class's ``fit_board``; the image's chip section and target name say which)."""
    from nmc import __version__
    from nmc.semantics import is_spiking, latency_steps
    from nmc.targets.image import Image

    target = resolve_target(target) if isinstance(target, str) else target
    cls = target_class(target)
    if timesteps is not None and timesteps < 1:
        raise UsageError(f"timesteps must be at least 1, got {timesteps}")
    source = source_digest(graph, source_path)
    graph = graph.clone()
    if is_spiking(graph):
        if timesteps is not None:
            graph.meta["timesteps"] = timesteps
        graph.meta.setdefault("timesteps", 32)
    T = timesteps or int(graph.meta.get("timesteps", 32))
    if pipeline is not None and (convert or quantize):
        raise UsageError("--convert and --quantize set options of the default pipeline; with --pipeline, "
                         "write the options into it")
    text = pipeline if pipeline is not None else default_pipeline(graph, target, opt_level, T, seed, calibration is not None,
                                                                  convert, quantize)
    passes = parse_pipeline(text)
    front, mapping = _split(passes, target)
    needs_data = [p.NAME for p in front if p.NAME in ("calibrate", "normalize")]
    if needs_data and calibration is None and not is_spiking(graph):
        raise NmcError(f"compiling the ANN @{graph.name} needs calibration data for {' and '.join(needs_data)}",
                       hint="pass --calib DATA.npz (its x: inputs like the model's; labels are not used)")
    from nmc.limits import check_calibration, check_mapping

    if calibration is not None and needs_data:
        check_calibration(graph, len(calibration))  # the passes' memory, estimated before they run (issue 22)
    ins = instruments or Instruments()
    quiet = dataclasses.replace(ins, time_passes=False, pass_statistics=False, remarks=False)
    ctx = PassContext(target=target.chip, calibration=calibration, seed=seed, opt_level=opt_level, instruments=quiet)
    # what the default pipeline chose for the user (burst neurons): a remark, and a note the command prints
    note = chip_conversion(target.chip, convert)[1] if pipeline is None and not is_spiking(graph) else None
    notes = [note] if note else []
    for note in notes:
        ctx.remark(note)
    PassManager(front, ctx).run(graph)
    if not is_spiking(graph):
        raise NmcError(f"the pipeline left @{graph.name} an ANN; the image needs a spiking graph",
                       hint="include convert-to-spiking{timesteps=N} in --pipeline")
    if mapping and not is_integer(graph):
        raise NmcError(f"chip '{target.name}' runs integer graphs; the pipeline reaches {mapping[0].NAME} "
                       "with float populations", hint=f"put quantize{{weight-bits={cls.weight_bits(target.chip)}}} "
                                                   f"before {mapping[0].NAME}")
    snapshot = print_graph(graph, print_blobs=True)
    T = int(graph.meta.get("timesteps", T))
    latency = latency_steps(graph, T)
    resources: dict[str, Any] = {}
    sections: dict[str, bytes] = {"graph": snapshot.encode()}
    phases: dict[str, float] = {}  # seconds of the steps of mapping that are not passes
    clock = time.perf_counter()
    if mapping and board == "auto":
        fitted = cls.fit_board(graph, target.chip, target.chip_text)
        phases["fit-board"] = time.perf_counter() - clock
        if fitted is None:
            raise UsageError(f"chip class '{target.chip_class}' cannot size boards (--board auto)")
        from nmc.targets.chip import parse_chip

        chip = parse_chip(fitted.decode("utf-8"), f"{target.name}[--board auto]")
        target = Target(chip.name, chip.chip_class, chip, fitted)
        ctx.target = chip
    if mapping:
        check_mapping(graph)
        PassManager(mapping, ctx).run(graph)
        clock = time.perf_counter()
        hardware = cls.emit_sections(graph, target.chip)
        phases["emit"] = time.perf_counter() - clock
        clash = set(hardware) & {"graph", "manifest", "chip"}
        if clash:
            raise ValueError(f"the {target.chip_class} emitter returned reserved section names {sorted(clash)}")
        sections.update(hardware)
        sections["chip"] = target.chip_text
        clock = time.perf_counter()
        resources = _jsonable(cls.resource_summary(graph, target.chip))
        phases["resource-summary"] = time.perf_counter() - clock
    manifest = {
        "compiler": f"nmc {__version__}",
        "source_sha256": source,
        "pipeline": text,
        "target": target.name,
        "target_class": target.chip_class,
        "timesteps": T,
        "latency_steps": latency,
        "seed": seed,
        "opt_level": opt_level,
        "resources": resources,
        "statistics": {name: dict(sorted(c.items())) for name, c in sorted(ctx.stats.items())},
    }
    sections["manifest"] = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    seconds: Counter = Counter()
    for name, s in ctx.timings:
        seconds[name] += s
    _report_instruments(ins, passes, ctx)
    return Image(target.name, target.chip.digest if target.chip else "", sections,
                 stats={"passes": dict(seconds), "phases": phases, "remarks": list(ctx.remarks), "notes": notes})


def _report_instruments(ins: Instruments, passes: list[Pass], ctx: PassContext) -> None:
    """One remarks list, timing table and statistics table for the whole run."""
    out = ins.stream or sys.stderr
    if ins.remarks:
        out.writelines(f"remark: {r}\n" for r in ctx.remarks)
    pm = PassManager(passes, ctx)
    if ins.time_passes:
        out.write(pm.timing_report())
    if ins.pass_statistics:
        out.write(pm.statistics_report())


def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and tuples made JSON-ready (so the manifest is stable)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def burst_of(pipeline: str) -> int | None:
    """The burst ``B`` the pipeline's convert-to-spiking makes (1: binary spikes; None: the
    pipeline converts nothing, the graph was spiking already)."""
    return next((p.burst for p in parse_pipeline(pipeline) if p.NAME == "convert-to-spiking"), None)


def report(image, pipeline: str | None = None, losses: dict | None = None, loss_samples: int | None = None) -> dict:
    """The ``nmc compile --report`` JSON (docs/design.md §7 keys; mapping keys None for ``cpu``),
    with the per-layer table, board view and estimates of :func:`nmc.report_data.image_details`
    (``losses``: per-layer conversion losses, when measured); ``--html`` renders this dict."""
    from nmc.report_data import image_details

    manifest = image.manifest
    resources = manifest.get("resources", {})
    keys = ("cores", "cores_lower_bound", "chips", "placement_cost", "placement_cost_naive", "max_link_load")
    out = {"target": image.target, "pipeline": pipeline or manifest.get("pipeline"),
           **{k: resources.get(k) for k in keys},
           "passes": image.stats.get("passes", {}),
           "timesteps": manifest.get("timesteps"), "latency_steps": manifest.get("latency_steps"),
           "source_sha256": manifest.get("source_sha256"), "remarks": image.stats.get("remarks", []),
           "notes": image.stats.get("notes", []), "burst": burst_of(pipeline or manifest.get("pipeline", ""))}
    out.update({k: v for k, v in resources.items() if k not in out})
    out.update({k: v for k, v in image_details(image, losses, loss_samples).items() if k not in out})
    return out
