"""Fuzz cases per input kind: mutations of valid seeds (issue 22).

Each kind has a generator ``make_<kind>(rng, seeds) -> Case`` drawing from a
:class:`random.Random`; :func:`cases` wraps it as a hypothesis strategy (a drawn seed, so a
failing case shrinks to a seed and replays exactly).  Targeted mutations of the classes the
issue lists are marked ``must_refuse`` (exit 0 is then silent acceptance); the rest are blind
(byte flips, token swaps, truncation) and may be accepted.
"""

from __future__ import annotations

import hashlib
import io
import random
from functools import lru_cache
from pathlib import Path

import numpy as np

from tests.fuzz import images as im
from tests.fuzz.harness import Case

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
KINDS = ("nmd", "nmir", "onnx", "image", "arrays", "chip", "cli")
INTERESTING = ["0", "-1", "1", "2", "255", "256", "65536", "1e9", "1e12", "1e20", "1e308", "1e309", "-1e309",
               "nan", "inf", "-inf", "0.5", "-0.0", "4096", "100000000", '""', "[]", "true", "x"]
INTERESTING_INTS = [0, -1, 1, 2, 7, 8, 63, 200, 255, 256, 1 << 16, 1 << 31, -(1 << 31), 1 << 40]


# --------------------------------------------------------------------------- seeds


@lru_cache(maxsize=None)
def seeds() -> dict:
    """The valid inputs every mutation starts from (the image is compiled once)."""
    import contextlib
    import tempfile

    from nmc.cli import main

    x = np.load(EX / "digits_test.npz")
    small = io.BytesIO()
    np.savez(small, x=x["x"][:8], y=x["y"][:8])
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "s.nmb"
        with contextlib.redirect_stdout(io.StringIO()):
            rc = main(["compile", str(EX / "digits_mlp.nmir"), "--target", "mesh-tiny", "--calib",
                       str(EX / "digits_calib.npz"), "-o", str(out)])
        assert rc == 0
        image = out.read_bytes()
    return {
        "data": small.getvalue(),
        "x": x["x"][:8].astype(np.float32),
        "nmir": (EX / "digits_mlp.nmir").read_bytes(),
        "nmir.npz": (EX / "digits_mlp.nmir.npz").read_bytes(),
        "nmd": [NMD_MLP.encode(), NMD_CNN.encode(), (EX / "recurrent_snn.nmd").read_bytes()],
        "rsnn_in.npy": (EX / "rsnn_in.npy").read_bytes(),
        "chip": (ROOT / "targets" / "chips" / "mesh-tiny.toml").read_bytes(),
        "image": image,
        "onnx": [_onnx_model(conv=False), _onnx_model(conv=True)],
    }


NMD_MLP = """network mlp
input x: [64]
h = x -> dense(16, weight = random(normal, seed = 1, scale = 0.1)) -> relu
y = h -> dense(10, weight = random(uniform, seed = 2, scale = 0.2), bias = splat(0.1)) -> softmax
output y
"""
NMD_CNN = """network cnn
input x: [1, 8, 8]
h = x -> conv(4, kernel = 3, pad = 1) -> relu -> avgpool(2)
y = h -> flatten -> dense(10)
output y
"""


def _onnx_model(conv: bool) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    if conv:
        W = np.random.default_rng(0).standard_normal((2, 1, 3, 3)).astype(np.float32)
        nodes = [helper.make_node("Conv", ["x", "W"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv"),
                 helper.make_node("Relu", ["c"], ["r"], name="relu"),
                 helper.make_node("Flatten", ["r"], ["y"], name="flat")]
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])
    else:
        W = np.random.default_rng(0).standard_normal((64, 10)).astype(np.float32)
        nodes = [helper.make_node("MatMul", ["x", "W"], ["m"], name="mm"),
                 helper.make_node("Relu", ["m"], ["y"], name="relu")]
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph(nodes, "g", [x], [y], [numpy_helper.from_array(W, "W")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


# ---------------------------------------------------------------------- text mutation


def mutate_text(rng: random.Random, data: bytes) -> bytes:
    """A blind mutation: a number swapped for an interesting one, a span deleted or repeated,
    bytes flipped, a truncation or deep nesting."""
    op = rng.randrange(7)
    if op <= 2:
        import re

        nums = [m.span() for m in re.finditer(rb"-?\d+(\.\d+)?(e-?\d+)?", data)]
        if nums:
            a, b = rng.choice(nums)
            return data[:a] + rng.choice(INTERESTING).encode() + data[b:]
    if op == 3 and data:
        a = rng.randrange(len(data))
        b = min(len(data), a + rng.randrange(1, 40))
        return data[:a] + data[b:] if rng.random() < 0.5 else data[:b] + data[a:b] * rng.randrange(2, 50) + data[b:]
    if op == 4 and data:
        buf = bytearray(data)
        for _ in range(rng.randrange(1, 5)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        return bytes(buf)
    if op == 5 and data:
        return data[:rng.randrange(len(data))]
    depth = rng.choice([50, 300, 1000, 5000])
    opener, closer = rng.choice([(b"[", b"]"), (b"(", b")"), (b"-", b""), (b"{", b"}")])
    a = rng.randrange(len(data) + 1)
    return data[:a] + opener * depth + b"1" + closer * depth + data[a:]


# ------------------------------------------------------------------------- the kinds


def make_nmd(rng: random.Random) -> Case:
    s = seeds()
    i = rng.randrange(len(s["nmd"]))
    text = s["nmd"][i]
    must = False
    label = "blind"
    if rng.random() < 0.4:  # targeted: the listed .nmd classes
        label, text, must = rng.choice([
            ("splat-inf", text.replace(b"splat(0.1)", b"splat(1e309)"), i == 0),
            ("splat-1e308", text.replace(b"splat(0.1)", b"splat(1e308)"), i == 0),
            ("avgpool-pad", text.replace(b"avgpool(2)", b"avgpool(2, pad = 5)"), i == 1),
            ("seed-1e20", text.replace(b"seed = 1,", b"seed = 1e20,"), i == 0),
            ("dense-huge", text.replace(b"dense(16", b"dense(100000000"), i == 0),
            ("kernel-huge", text.replace(b"kernel = 3", b"kernel = 1e12"), i == 1),
            ("delay-huge", text.replace(b"delay = 2ms", b"delay = 1e9ms"), i == 2),
            ("minus-5000", text.replace(b"scale = 0.1", b"scale = " + b"-" * 5000 + b"0.1"), i == 0),
        ])
    else:
        text = mutate_text(rng, text)
    files = {"m.nmd": text, "rsnn_in.npy": s["rsnn_in.npy"], "d.npz": s["data"]}
    argv = rng.choice([["import", "m.nmd", "-o", "o.nmir"], ["run", "m.nmd", "--input", "d.npz", "-o", "o.npy"]])
    return Case("nmd", argv, files, must, label)


def make_nmir(rng: random.Random) -> Case:
    s = seeds()
    text, side = s["nmir"], s["nmir.npz"]
    must, label = False, "blind"
    r = rng.random()
    if r < 0.15:
        side, must, label = side[:rng.randrange(len(side))], True, "sidecar-truncated"
    elif r < 0.3:
        text = text.replace(b"ann.output", b"%deep = ann.constant {value = dense<" + b"[" * 500 + b"1.0"
                            + b"]" * 500 + b"> : tensor<1xf32>} : tensor<1xf32>\nann.output", 1)
        must, label = True, "deep-literal"
    else:
        text = mutate_text(rng, text)
    files = {"m.nmir": text, "m.nmir.npz": side, "d.npz": s["data"]}
    argv = rng.choice([["import", "m.nmir", "-o", "o.nmir"], ["opt", "m.nmir", "--passes", "dce", "-o", "o.nmir"],
                       ["run", "m.nmir", "--input", "d.npz", "-o", "o.npy"]])
    return Case("nmir", argv, files, must, label)


def make_onnx(rng: random.Random) -> Case:
    import onnx
    from onnx import TensorProto, helper

    s = seeds()
    m = onnx.ModelProto()
    m.ParseFromString(rng.choice(s["onnx"]))
    must, label = True, ""
    init = m.graph.initializer[0]
    op = rng.randrange(9)
    if op == 0:
        m.graph.output[0].name, label = "nobody", "output-unproduced"
    elif op == 1:
        arr = np.frombuffer(init.raw_data, np.float32).copy()
        arr[rng.randrange(arr.size)] = rng.choice([np.nan, np.inf, -np.inf])
        init.raw_data, label = arr.tobytes(), "non-finite-weight"
    elif op == 2:
        init.raw_data, label = init.raw_data[:rng.randrange(len(init.raw_data))], "raw_data-short"
    elif op == 3:
        t = helper.make_tensor(init.name, TensorProto.STRING, list(init.dims), [b"a"] * int(np.prod(init.dims)))
        init.CopyFrom(t)
        label = "string-initializer"
    elif op == 4 and m.graph.node[0].op_type == "Conv":
        for a in m.graph.node[0].attribute:
            if a.name == "kernel_shape":
                a.ints[:] = [rng.choice([1, 2, 5, 1 << 20])] * 2
        label = "kernel_shape"
    elif op == 5:
        init.dims[0] = rng.choice([0, 1 << 40, 3])
        label, must = "dims", True
    else:
        data = bytearray(m.SerializeToString())
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return Case("onnx", ["import", "m.onnx", "-o", "o.nmir"], {"m.onnx": bytes(data)}, False, "bytes")
    return Case("onnx", ["import", "m.onnx", "-o", "o.nmir"], {"m.onnx": m.SerializeToString()}, must, label)


def _image_mutation(rng: random.Random, data: bytes) -> tuple[bytes, bool, str]:
    section = rng.choice(["mesh.cores", "mesh.neurons", "mesh.synapses", "mesh.routes", "mesh.ports", "manifest",
                          "meta", "bytes"])
    if section == "bytes":  # a bit flip: the CRC refuses it
        buf = bytearray(data)
        buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        return bytes(buf), True, "bitflip"
    if section == "manifest":
        key = rng.choice(["resources", "timesteps", "pipeline", "compiler"])
        value = rng.choice([None, [], "x", -1, 0, 1.5, {}])
        if rng.random() < 0.2:
            return im.edit_manifest(data, replace=rng.choice([[1, 2], "s", 3])), True, "manifest-type"
        return im.edit_manifest(data, lambda m: m.__setitem__(key, value)), False, f"manifest-{key}"
    if section == "meta":
        def edit(m):
            target = m if rng.random() < 0.3 else rng.choice(m["encoders"] + m["outputs"] + m["inputs"] + m["populations"])
            key = rng.choice(sorted(target))
            if rng.random() < 0.5:
                target.pop(key)
            else:
                target[key] = rng.choice([None, -1, 0, 1 << 40, "x", [], True, 1.5, [1 << 40]])
        if rng.random() < 0.15:
            return im.edit_meta(data, lambda m: m.__setitem__("encoders", [])), True, "encoders-empty"
        return im.edit_meta(data, edit), False, "meta"
    arrays = im.arrays(data, section)
    key = rng.choice(sorted(k for k in arrays if k != "meta"))

    def edit(a):
        x = a[key].astype(np.int64) if a[key].dtype == np.uint8 else a[key].copy()
        if x.size == 0:
            return
        flat = x.reshape(-1)
        i = rng.randrange(flat.size)
        if x.dtype.kind == "f":
            flat[i] = rng.choice([np.nan, np.inf, -1.0, 1e300])
        else:
            flat[i] = rng.choice(INTERESTING_INTS)
        a[key] = x
    return im.edit_arrays(data, section, edit), False, f"{section}.{key}"


def make_image(rng: random.Random) -> Case:
    s = seeds()
    data, must, label = _image_mutation(rng, s["image"])
    argv = rng.choice([["run", "m.nmb", "--backend", "emulator", "--input", "d.npz", "-o", "o.npy"],
                       ["run", "m.nmb", "--backend", "cpu", "--input", "d.npz", "-o", "o.npy"],
                       ["inspect", "m.nmb", "--json"]])
    return Case("image", argv, {"m.nmb": data, "d.npz": s["data"]}, must, label)


def _npy(arr: np.ndarray, **kw) -> bytes:
    b = io.BytesIO()
    np.save(b, arr, **kw)
    return b.getvalue()


def make_arrays(rng: random.Random) -> Case:
    s = seeds()
    x = s["x"].copy()
    name, must = "x.npy", True
    op = rng.randrange(11)
    if op == 0:
        data, label = _npy(x[:0]), "empty-batch"
    elif op == 1:
        data, label = _npy(x.astype(rng.choice([np.complex64, "datetime64[s]", "U3", "S2"]))), "dtype"
    elif op == 2:
        x.reshape(-1)[rng.randrange(x.size)] = rng.choice([np.nan, np.inf, -np.inf])
        data, label = _npy(x), "non-finite"
    elif op == 3:
        data, label = _npy(np.array([1, None], dtype=object), allow_pickle=True), "object"
    elif op == 4:
        data, label, name = s["data"][:rng.randrange(len(s["data"]))], "truncated-npz", "d.npz"
    elif op == 5:
        data, label = b"", "empty-file"
    elif op == 6:
        b = io.BytesIO()
        np.savez(b, x=np.array("abc"))
        data, label, name = b.getvalue(), "non-array-member", "d.npz"
    elif op == 7:
        shape = rng.choice([(8,), (8, 63), (8, 65), (8, 8, 8), (1,), (8, 64, 1)])
        data, label, must = _npy(np.zeros(shape, np.float32)), "shape", False
    elif op == 8:
        data, label, must = _npy(x.astype(rng.choice([np.int8, np.uint8, np.float16, np.float64, bool]))), "ok-dtype", False
    else:
        buf = bytearray(_npy(x))
        for _ in range(rng.randrange(1, 4)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        data, label, must = bytes(buf), "bytes", False
    backend = rng.choice(["emulator", "cpu", "reference"])
    argv = ["run", "m.nmb", "--backend", backend, "--input", name, "-o", "o.npy"]
    return Case("arrays", argv, {"m.nmb": s["image"], name: data}, must, label)


def make_chip(rng: random.Random) -> Case:
    s = seeds()
    text = s["chip"]
    must, label = True, ""
    op = rng.randrange(6)
    if op == 0:
        text, label = text.replace(b'name = "mesh-tiny"', b'name = "' + rng.choice(
            [b"", b"../../evil", b"a b", b"x" * 100, b"\xc3\xa9"]) + b'"'), "name"
    elif op == 1:
        text, label = text + b"\nx = \xff\xfe\n", "non-utf8"
    elif op == 2:
        text, label = text + b"\nz = " + b"[" * 3000 + b"]" * 3000 + b"\n", "deep"
    elif op == 3:
        text, label = text.replace(b"cores_x = 4 ", b"cores_x = 4096 ").replace(b"chips_x = 2 ", b"chips_x = 4096 ") \
            .replace(b"cores_y = 4 ", b"cores_y = 4096 "), "huge-board"
    else:
        text, must, label = mutate_text(rng, text), False, "blind"
    files = {"c.toml": text, "m.nmir": s["nmir"], "m.nmir.npz": s["nmir.npz"], "c.npz": s["data"]}
    argv = ["compile", "m.nmir", "--target", "c.toml", "--calib", "c.npz", "-o", "o.nmb"]
    if rng.random() < 0.5:
        argv = ["compile", "m.nmir", "--target", "c.toml", "--print-pipeline"]
    return Case("chip", argv, files, must, label)


def make_cli(rng: random.Random) -> Case:
    s = seeds()
    files = {"m.nmir": s["nmir"], "m.nmir.npz": s["nmir.npz"], "d.npz": s["data"], "m.nmb": s["image"],
             "x.npy": _npy(s["x"])}
    must, label = True, ""
    op = rng.randrange(8)
    if op == 0:
        argv, label = ["compile", "m.nmir", "--target", "cpu", "--calib", "d.npz", "-o", "m.nmir"], "out=in"
    elif op == 1:
        argv, label = ["run", "m.nmb", "--input", "x.npy", "-o", rng.choice(["x.npy", "./x.npy", "{d}/x.npy"])], "out=in"
    elif op == 2:
        argv, label = ["compile", "m.nmir", "--target", "cpu", "--calib", "d.npz", "-o", "o.nmb",
                       "--report", "missing/r.json"], "report-missing-dir"
    elif op == 3:
        argv, label = ["run", "m.nmb", "--input", "x.npy", "-o", rng.choice([".", "missing/o.npy", "{d}"])], "bad-output"
    elif op == 4:
        argv, label = ["run", "m.nmb", "--backend", rng.choice(["emulator", "cpu", "reference"]), "--input", "x.npy",
                       "--timesteps", str(rng.choice([100000000, 10**12]))], "timesteps"
    else:  # blind: random flags and values
        cmd = rng.choice(["compile", "run", "import", "opt", "inspect", "eval", "export", "targets"])
        pool = ["m.nmir", "m.nmb", "d.npz", "x.npy", "-o", "o.out", "--target", "mesh-tiny", "cpu", "--timesteps",
                rng.choice(["0", "-1", "5", "x", "100000000"]), "--backend", "emulator", "--input", "--calib", "--passes",
                "dce", "bogus", "--report", "r.json", "--json", "--format", "nir", "--data", "-O", "9", "--seed", "-5"]
        argv = [cmd] + [rng.choice(pool) for _ in range(rng.randrange(0, 8))]
        must, label = False, "blind"
    return Case("cli", argv, files, must, label)


MAKERS = {"nmd": make_nmd, "nmir": make_nmir, "onnx": make_onnx, "image": make_image, "arrays": make_arrays,
          "chip": make_chip, "cli": make_cli}


def make_case(kind: str, seed: int) -> Case:
    return MAKERS[kind](random.Random(hashlib.sha256(f"{kind}:{seed}".encode()).digest()))


def cases(kind: str):
    """A hypothesis strategy of cases of ``kind`` (a drawn seed, so failures replay exactly)."""
    from hypothesis import strategies as st

    return st.integers(min_value=0, max_value=2**32 - 1).map(lambda seed: make_case(kind, seed))
