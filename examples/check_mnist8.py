"""Check the ONNX frontend on the ONNX model zoo's MNIST model (mnist-8, exported by CNTK).

Runs the MNIST test set through onnxruntime (the model has a fixed batch of 1: one sample per
call) and through nmc (``load_onnx`` + the reference semantics, in batches), then prints the
largest logit difference, how often the two agree on the class, and both accuracies.

usage: python examples/check_mnist8.py [MODEL.onnx] [--data MNIST_TEST.npz] [--limit N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nmc.frontends.onnx import load_onnx
from nmc.semantics import run_ann

SHARED = "/work/shared/data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=f"{SHARED}/models/mnist-8.onnx")
    ap.add_argument("--data", default=f"{SHARED}/mnist/mnist_test.npz")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N test images")
    ap.add_argument("--batch", type=int, default=500, help="nmc batch size")
    args = ap.parse_args()

    import onnxruntime as ort

    data = np.load(args.data)
    x = (data["x"][: args.limit].astype(np.float32) / 255.0)[:, None, :, :]
    y = data["y"][: args.limit]

    t0 = time.perf_counter()
    sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    ref = np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])
    t_ort = time.perf_counter() - t0

    t0 = time.perf_counter()
    graph = load_onnx(args.model)
    ours = np.concatenate([run_ann(graph, [x[i:i + args.batch]]).outputs[0] for i in range(0, len(x), args.batch)])
    t_nmc = time.perf_counter() - t0

    ref_cls, our_cls = ref.argmax(1), ours.argmax(1)
    print(f"model            {args.model}")
    print(f"samples          {len(x)}")
    print(f"max |logit diff| {np.abs(ref - ours).max():.3g}")
    print(f"argmax agreement {np.mean(ref_cls == our_cls) * 100:.2f} %")
    print(f"onnxruntime acc  {np.mean(ref_cls == y) * 100:.2f} %  ({t_ort:.1f} s)")
    print(f"nmc acc          {np.mean(our_cls == y) * 100:.2f} %  ({t_nmc:.1f} s, reference semantics)")


if __name__ == "__main__":
    main()
