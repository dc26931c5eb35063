"""The data of the compile report beyond docs/design.md §7's fixed keys (``--report``, ``--html``).

:func:`image_details` reads everything from the image alone — manifest, sections and the
class's views — so ``nmc inspect IMAGE --html`` shows what ``nmc compile --html`` showed, but
for what only the compile run knew (pass timings, remarks: ``None`` there, "not recorded").
Keys it adds: ``target_class``, ``compiler``, ``opt_level``, ``seed``, ``statistics`` (pass →
counters), ``layers`` (one row per population: the class's :meth:`layer_table` merged with
the conversion loss, ``loss``, when measured), ``loss_samples`` (how many calibration inputs
measured it; None when not measured), ``board`` (the class's :meth:`board_view`, None for
``cpu``), ``energy_per_inference_j`` (the class's estimate at compile-time rates, None when it
has none).

:func:`conversion_losses` measures each layer's conversion loss on a few calibration inputs:
the ANN through the image's own pipeline up to conversion, against the image's integer graph
(:func:`nmc.evaluation.layer_losses`).  It reads the image and never changes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LOSS_SAMPLES = 32  # calibration inputs the per-layer loss is measured on: cheap, deterministic


def _class_of(image):
    if "chip" not in image.sections:
        return None
    from nmc.targets.classes import class_of_image

    return class_of_image(image)


def _graph_layers(image) -> list[dict]:
    """Rows for an image without a class table (``cpu``): name and neurons of each population."""
    try:
        pops = image.graph.walk("snn.population")
    except Exception:  # a damaged graph section: the rest of the report still shows
        return []
    return [{"name": p.result.name or f"population{i}", "neurons": int(p.result.type.size)}
            for i, p in enumerate(pops)]


def image_details(image, losses: dict[str, dict] | None = None, loss_samples: int | None = None) -> dict[str, Any]:
    """The keys of the module docstring; ``losses``: layer name → :func:`conversion_losses` row."""
    manifest = image.manifest
    cls = _class_of(image)
    layers = cls.layer_table(image.sections) if cls is not None else None
    if layers is None:
        layers = _graph_layers(image)
    for row in layers:
        row["loss"] = (losses or {}).get(row["name"])
    board = cls.board_view(image.sections) if cls is not None else None
    energy = cls.energy_estimate(image) if cls is not None else None
    return {"target_class": manifest.get("target_class"), "compiler": manifest.get("compiler"),
            "opt_level": manifest.get("opt_level"), "seed": manifest.get("seed"),
            "statistics": manifest.get("statistics", {}), "layers": layers,
            "loss_samples": loss_samples if losses is not None else None,
            "board": board, "energy_per_inference_j": energy}


def conversion_losses(model, image, calibration: np.ndarray, samples: int = LOSS_SAMPLES) -> dict[str, dict] | None:
    """Layer name → ``relative_error``, ``correlation``, ``clipped``, ``rate``, ``quant_error``
    on the first ``samples`` calibration inputs (module docstring); None for a model that was
    spiking already (no ANN to compare with) or a pipeline without ``convert-to-spiking``."""
    from nmc.evaluation import layer_losses
    from nmc.passmanager import PassContext, PassManager, parse_pipeline
    from nmc.semantics import is_spiking

    if is_spiking(model) or calibration is None:
        return None
    manifest = image.manifest
    passes = parse_pipeline(manifest.get("pipeline", ""))
    names = [p.NAME for p in passes]
    if "convert-to-spiking" not in names:
        return None
    front = passes[:names.index("convert-to-spiking")]
    chip = image.chip() if "chip" in image.sections else None
    ctx = PassContext(target=chip, calibration=calibration, seed=int(manifest.get("seed", 0)),
                      opt_level=int(manifest.get("opt_level", 2)))
    normed = PassManager(front, ctx).run(model.clone())
    rows = layer_losses(normed, image.graph, calibration[:samples])
    keys = ("relative_error", "correlation", "clipped", "rate", "quant_error", "saturated")
    return {r["layer"]: {k: r.get(k) for k in keys} for r in rows}
