"""Write the weight files the ``.nmd`` examples load (deterministic: fixed split and seed).

* ``mlp_weights.npz``: a 64-32-10 ReLU MLP trained with scikit-learn on its 8x8 digits (the
  split of ``train_digits_mlp.py``, so ``digits_test.npz`` is held out); keys ``w1 b1 w2 b2``,
  weights ``[out, in]`` as ``dense`` takes them.
* ``rsnn_in.npy``: the input-to-hidden weights ``[16, 64]`` (``[out, in]``) of ``recurrent_snn.nmd``, seeded
  normal numbers (the other projections there use the language's own initialisers).

    python examples/make_nmd_weights.py
"""

from __future__ import annotations

import os

import numpy as np
from train_digits_mlp import train

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    clf, _, _ = train()
    (w1, w2), (b1, b2) = clf.coefs_, clf.intercepts_
    arrays = {"w1": w1.T, "b1": b1, "w2": w2.T, "b2": b2}
    np.savez_compressed(os.path.join(HERE, "mlp_weights.npz"), **{k: v.astype(np.float32) for k, v in arrays.items()})
    rng = np.random.default_rng(7)
    np.save(os.path.join(HERE, "rsnn_in.npy"), (rng.standard_normal((16, 64)) * 0.6).astype(np.float32))
    print("wrote examples/mlp_weights.npz and examples/rsnn_in.npy")


if __name__ == "__main__":
    main()
