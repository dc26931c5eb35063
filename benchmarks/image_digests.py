"""SHA-256 of the image of every shipped example (and the benchmarks' networks) on every shipped
chip and ``cpu``: run it at two commits and compare, to show a refactor changed no image.

    python benchmarks/image_digests.py [--data ../shared/data] [--json OUT] > digests.txt

One line per (model, target): the image's digest, or ``refused: <first line of the error>``
(a network that does not fit a small chip is refused the same way before and after).  The
MNIST models are calibrated on the first 200 ``train_idx`` images of ``<data>/mnist``
(pixels/255); without ``--data`` (or when it is missing) they are left out, with a note.
The VGG-11 row is benchmarks/vgg.py's network at width 1/8 on a four-chip board, calibrated on
seeded uniform images.  Deterministic: the same commit gives the same lines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.vgg import vgg11_graph  # noqa: E402
from nmc.compiler import compile_graph  # noqa: E402
from nmc.diagnostics import NmcError  # noqa: E402
from nmc.frontends import load  # noqa: E402
from nmc.targets.chip import shipped_chips  # noqa: E402
from nmc.targets.image import encode_image  # noqa: E402


def mnist_calibration(data: Path) -> np.ndarray:
    d, split = np.load(data / "mnist" / "mnist_test.npz"), np.load(data / "mnist" / "mnist_test_split.npz")
    return (d["x"][split["train_idx"][:200]].astype(np.float32) / 255)[:, None]


def models(data: Path | None) -> list[tuple[str, object, np.ndarray | None, list[str] | None]]:
    """(name, graph or path, calibration, targets: None for every shipped chip and cpu)."""
    digits = np.load(ROOT / "examples" / "digits_calib.npz")["x"]
    rows = [("digits_mlp.nmir", ROOT / "examples" / "digits_mlp.nmir", digits, None),
            ("mlp.nmd", ROOT / "examples" / "mlp.nmd", digits, None),
            ("recurrent_snn.nmd", ROOT / "examples" / "recurrent_snn.nmd", None, None)]
    if data is not None:
        mnist = mnist_calibration(data)
        rows += [("mnist_mlp.onnx", ROOT / "examples" / "mnist_mlp.onnx", mnist, None),
                 ("mnist_cnn.onnx", ROOT / "examples" / "mnist_cnn.onnx", mnist, None),
                 ("cnn.nmd", ROOT / "examples" / "cnn.nmd", mnist, None),
                 ("mnist-8.onnx", data / "models" / "mnist-8.onnx", mnist, None),
                 ("cnn_sinabs.nir", data / "nir" / "02_cnn" / "cnn_sinabs.nir", None, None)]
    vgg = np.random.default_rng(0).random((20, 3, 32, 32), dtype=np.float32)
    rows.append(("vgg11@0.125", vgg11_graph(0.125), vgg, ["mesh-board-4"]))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--json", type=Path, help="also write the digests as JSON")
    args = ap.parse_args()
    data = args.data if args.data.is_dir() else None
    if data is None:
        print(f"note: {args.data} is missing; the MNIST models and the NIR graph are left out", file=sys.stderr)
    out = {}
    for name, model, calibration, targets in models(data):
        for target in targets or [*shipped_chips(), "cpu"]:
            graph = load(str(model)) if isinstance(model, Path) else model
            try:
                image = compile_graph(graph, target, calibration=calibration,
                                      source_path=str(model) if isinstance(model, Path) else None)
                line = hashlib.sha256(encode_image(image)).hexdigest()
            except NmcError as err:
                line = "refused: " + str(err).splitlines()[0].replace(f"{ROOT}/", "")
            out[f"{name} {target}"] = line
            print(f"{name:20s} {target:14s} {line}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
