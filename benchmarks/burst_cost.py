"""What burst neurons cost on the mesh chip: messages, spikes, synaptic ops and energy per step.

For each model, burst ``B`` and ``T``, compiles the model for ``mesh`` as a user would
(``nmc compile --target mesh --timesteps T --convert burst=B --calib ...``: calibration on the
first 1000 ``train_idx`` images) and runs the image on the mesh emulator over the first
``--samples`` ``heldout_idx`` images, rate-coded input; the CPU runtime runs the same image and
must give the same outputs, spikes and synaptic ops (else the script stops).  Prints per
sample and step: the neurons' spike messages (one per firing neuron and step, whatever a
burst neuron's count; from the CPU runtime's recorded trains) and the emulator's packets
(those messages plus the host's input events), spikes, synaptic operations, and the
emulator's energy per inference; the payload a message carries (``⌈log2(B + 1)⌉`` bits of
count; 0 for binary spikes), and the accuracy on those images.

    python benchmarks/burst_cost.py --data ../shared/data [--models mlp,cnn] [--bursts 1,2,4]
        [--timesteps 2,4] [--samples 500]
"""

from __future__ import annotations

import argparse
import math
import pathlib

import numpy as np

import nmc
from nmc.compiler import compile_graph

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = {"mlp": ROOT / "examples" / "mnist_mlp.onnx", "cnn": ROOT / "examples" / "mnist_cnn.onnx",
          "mnist-8": pathlib.Path("models") / "mnist-8.onnx"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=pathlib.Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--bursts", default="1,2,4")
    ap.add_argument("--timesteps", default="2,4")
    ap.add_argument("--samples", type=int, default=500)
    args = ap.parse_args()
    test = np.load(args.data / "mnist" / "mnist_test.npz")
    split = np.load(args.data / "mnist" / "mnist_test_split.npz")
    x_all = test["x"].astype(np.float32)[:, None] / 255.0
    held = split["heldout_idx"][:args.samples]
    x, y, x_cal = x_all[held], test["y"][held].astype(np.int64), x_all[split["train_idx"][:1000]]
    print("model    B   T  payload  messages/step  packets/step  spikes/step  synops/step  energy/inf (J)  accuracy")
    for name in args.models.split(","):
        path = MODELS[name]
        graph = nmc.load(str(path if path.is_absolute() else args.data / path))
        for B in (int(b) for b in args.bursts.split(",")):
            for T in (int(t) for t in args.timesteps.split(",")):
                image = compile_graph(graph.clone(), "mesh", calibration=x_cal, timesteps=T,
                                      convert=f"burst={B}")  # burst=1: binary, not the chip's default
                emu = nmc.run(image, [x], backend="emulator")
                ref = nmc.run(image, [x], backend="cpu", record="all")
                same = all(np.array_equal(a, b) for a, b in zip(emu.outputs, ref.outputs))
                if not (same and emu.spikes == ref.spikes and emu.synaptic_ops == ref.synaptic_ops):
                    raise SystemExit(f"{name} B={B} T={T}: the emulator and the CPU runtime disagree")
                per = len(x) * emu.steps
                messages = sum(int(np.count_nonzero(train)) for train in ref.recorded.values())
                payload = math.ceil(math.log2(B + 1)) if B > 1 else 0
                accuracy = float(np.mean(emu.predictions() == y))
                print(f"{name:8s} {B:2d} {T:3d}  {payload:4d} b  {messages / per:13.1f}  {emu.stats['packets'] / per:12.1f}  "
                      f"{emu.spikes / per:11.1f}  {emu.synaptic_ops / per:11.0f}  "
                      f"{emu.stats['energy_per_inference_j']:14.3e}  {100 * accuracy:7.2f}", flush=True)


if __name__ == "__main__":
    main()
