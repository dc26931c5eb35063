"""Train the shipped example: a 64-32-10 ReLU MLP on scikit-learn's 8x8 digits.

Writes ``examples/digits_mlp.nmir`` (+ its blob sidecar), ``examples/digits_test.npz``
(the held-out quarter of the data set: ``x`` in [0, 1], ``y``) and ``examples/digits_calib.npz``
(the first 200 training images, ``x`` only: calibration data that is not the test set).  Needs scikit-learn (the
``test`` extra).  Deterministic: fixed split and seed.

    python examples/train_digits_mlp.py
"""

from __future__ import annotations

import os

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from nmc.diagnostics import Loc
from nmc.ir import Blob, Graph, TensorType
from nmc.ir import ann
from nmc.ir.io import write_ir

HERE = os.path.dirname(os.path.abspath(__file__))
CALIB_SAMPLES = 200


def build_graph(clf: MLPClassifier) -> Graph:
    """The trained MLP as an ``ann`` graph, with the softmax a classifier ends in."""
    g = Graph("digits_mlp")
    loc = Loc(os.path.basename(__file__), node="MLPClassifier")
    x = g.add(ann.Input(declared_type=TensorType((64,)), loc=loc), "x")
    h = x
    for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_), 1):
        dense = ann.Dense(x=h, weight=Blob(w.T.astype(np.float32), name=f"fc{i}.weight"),
                          bias=Blob(b.astype(np.float32), name=f"fc{i}.bias"), loc=loc)
        h = g.add(dense, f"fc{i}")
        if i < len(clf.coefs_):
            h = g.add(ann.Relu(x=h, loc=loc), f"relu{i}")
    y = g.add(ann.Softmax(x=h, loc=loc), "probs")
    g.add(ann.Output(values=[y], loc=loc))
    return g


def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x_train, x_test, y_train, y_test: the fixed stratified 3:1 split, x in [0, 1]."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    return train_test_split(x, digits.target, test_size=0.25, random_state=0, stratify=digits.target)


def train() -> tuple[MLPClassifier, np.ndarray, np.ndarray]:
    """The trained classifier and the held-out quarter (x in [0, 1], y)."""
    x_train, x_test, y_train, y_test = split()
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=600, random_state=0).fit(x_train, y_train)
    print(f"scikit-learn test accuracy: {100 * clf.score(x_test, y_test):.2f} %")
    return clf, x_test, y_test


def main() -> None:
    clf, x_test, y_test = train()
    write_ir(build_graph(clf), os.path.join(HERE, "digits_mlp.nmir"))
    np.savez_compressed(os.path.join(HERE, "digits_test.npz"), x=x_test, y=y_test.astype(np.int64))
    write_calibration()
    print("wrote examples/digits_mlp.nmir, examples/digits_test.npz and examples/digits_calib.npz")


def write_calibration() -> None:
    np.savez_compressed(os.path.join(HERE, "digits_calib.npz"), x=split()[0][:CALIB_SAMPLES])


if __name__ == "__main__":
    main()
