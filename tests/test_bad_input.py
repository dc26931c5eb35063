"""Bad input (issue 22): every class of the campaign exits 1 with a diagnostic (never 70, never
a hang), leaves no output behind, and is never accepted silently."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nmc.cli import main
from tests.fuzz import images as im

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TEST = str(EXAMPLES / "digits_test.npz")
CALIB = str(EXAMPLES / "digits_calib.npz")


def nmc(*argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, err.getvalue()


def refused(rc_err, *words) -> None:
    rc, err = rc_err
    assert rc == 1, err
    assert "internal error" not in err
    for w in words:
        assert w in err, err


@pytest.fixture(scope="module")
def seed_image(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("seed") / "tiny.nmb"
    rc, err = nmc("compile", EXAMPLES / "digits_mlp.nmir", "--target", "mesh-tiny", "--calib", CALIB, "-o", path)
    assert rc == 0, err
    return path.read_bytes()


# ------------------------------------------------------------------ 1. valid-CRC images


def _set(section, key, index, value):
    def edit(a):
        x = a[key].astype(np.int64) if a[key].dtype == np.uint8 else a[key].copy()
        x[index] = value
        a[key] = x
    return lambda d: im.edit_arrays(d, section, edit)


IMAGE_MUTATIONS = {
    "meta-missing-port": (lambda d: im.edit_meta(d, lambda m: m["encoders"][0].pop("port")), "no 'port'"),
    "group_core-out-of-range": (_set("mesh.routes", "group_core", 0, 99), "group_core"),
    "link_kind-7": (_set("mesh.routes", "link_kind", 0, 7), "link_kind"),
    "link_kind--1": (_set("mesh.routes", "link_kind", 0, -1), "link_kind"),
    "mesh-0": (_set("mesh.cores", "mesh", 0, 0), "'mesh'"),
    "mesh-not-the-chip": (_set("mesh.cores", "mesh", 0, 8), "the chip"),
    "kernel-exponent-200": (_set("mesh.kernels", "exponent", slice(None), 200), "'exponent'"),
    "kernel-weight-too-wide": (_set("mesh.kernels", "weights", 0, 1 << 20), "'weights'"),
    "kernel-kind-9": (_set("mesh.kernels", "kind", 0, 9), "unknown kind"),
    "kernel-target-off": (_set("mesh.kernels", "target", 0, 1 << 30), "drives neurons"),
    "kernel-shape": (_set("mesh.kernels", "shapes", (0, 5), 3), "geometry needs"),
    "kernel-unrouted": (_set("mesh.routes", "source_group", slice(None), -1), "routes nowhere"),
    "routes-miss-cores": (_set("mesh.routes", "dest_start", 1, 0), "does not reach"),  # the ports reach no core
    "encoders-empty": (lambda d: im.edit_meta(d, lambda m: m.__setitem__("encoders", [])), "feeds no encoder"),
    "pos-off-board": (_set("mesh.cores", "pos", (0, 2), 1000), "pos"),
    "link-off-board": (_set("mesh.routes", "links", (0, 3), 1000), "links"),
    "nan-load": (lambda d: im.edit_arrays(d, "mesh.routes", lambda a: a.__setitem__(
        "link_load", np.full_like(a["link_load"], np.nan))), "non-finite"),
    "meta-list": (lambda d: im.edit_meta(d, replace=[1, 2]), "JSON object"),
    "meta-bool-timesteps": (lambda d: im.edit_meta(d, lambda m: m.__setitem__("timesteps", True)), "timesteps"),
    "manifest-list": (lambda d: im.edit_manifest(d, replace=[1, 2]), "manifest"),
    "manifest-resources-string": (lambda d: im.edit_manifest(d, lambda m: m.__setitem__("resources", "x")), "resources"),
}


@pytest.mark.parametrize("name", sorted(IMAGE_MUTATIONS))
@pytest.mark.parametrize("command", ["emulator", "cpu", "inspect"])
def test_valid_crc_image_with_bad_content(seed_image, tmp_path, name, command):
    mutate, word = IMAGE_MUTATIONS[name]
    path = tmp_path / "m.nmb"
    path.write_bytes(mutate(seed_image))
    out = tmp_path / "o.npy"
    argv = (["inspect", path, "--json"] if command == "inspect"
            else ["run", path, "--backend", command, "--input", TEST, "-o", out])
    refused(nmc(*argv), word)
    assert not out.exists()


def test_image_padding_is_checked(seed_image, tmp_path):
    """A flipped bit in the padding between sections, which no CRC covers (found by the fuzzer)."""
    from nmc.targets.image import decode_image

    img = decode_image(seed_image)
    names = sorted(img.sections)
    end = seed_image.index(img.sections[names[0]]) + len(img.sections[names[0]])
    assert end % 8, "the first section must be followed by padding for this test"
    data = bytearray(seed_image)
    data[end] ^= 1
    path = tmp_path / "m.nmb"
    path.write_bytes(bytes(data))
    refused(nmc("inspect", path), "padding")


def test_damaged_npy_header(tmp_path):
    """A .npy whose header does not parse (numpy raises tokenize errors; found by the fuzzer)."""
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 64), np.float32))
    data = bytearray(x.read_bytes())
    data[data.index(b"}")] = ord("(")
    x.write_bytes(bytes(data))
    refused(nmc("run", EXAMPLES / "digits_mlp.nmir", "--input", x), "not a numpy")


def test_image_chip_section_is_validated_by_inspect(seed_image, tmp_path):
    from nmc.targets.image import decode_image

    text = decode_image(seed_image).sections["chip"].decode().replace('name = "mesh-tiny"', 'name = "../../evil"')
    import hashlib

    img = decode_image(seed_image)
    data = im.encode_image(im.Image(img.target, hashlib.sha256(text.encode()).hexdigest(),
                                    {**img.sections, "chip": text.encode()}))
    path = tmp_path / "m.nmb"
    path.write_bytes(data)
    refused(nmc("inspect", path), "not a chip name")


def test_ir_verifier_refuses_exponent_63(tmp_path):
    from nmc.ir.parser import parse_ir
    from nmc.diagnostics import NmcError

    text = """graph @g {timesteps = 4}
%x = ann.input : tensor<2xf32>
%s = snn.encode(%x) {encoding = rate} : spikes<2>
%c = snn.project(%s) {exponent = 63, kind = one_to_one, weight = dense<[1, 1]> : tensor<2xi8>} : current<2>
%p = snn.population(%c) {bits = 16, threshold = 4} : spikes<2>
%y = snn.decode(%p) : tensor<2xf32>
ann.output(%y)
"""
    with pytest.raises(NmcError, match="exponent"):
        parse_ir(text.replace("exponent = 63", "exponent = 63"))
    parse_ir(text.replace("exponent = 63", "exponent = 3"))


# --------------------------------------------------------------------- 2. output paths


@pytest.fixture
def model(tmp_path) -> Path:
    p = tmp_path / "m.nmir"
    p.write_bytes((EXAMPLES / "digits_mlp.nmir").read_bytes())
    (tmp_path / "m.nmir.npz").write_bytes((EXAMPLES / "digits_mlp.nmir.npz").read_bytes())
    return p


def test_output_in_missing_directory(model, tmp_path):
    refused(nmc("compile", model, "--target", "cpu", "--calib", CALIB, "-o", tmp_path / "missing" / "x.nmb"),
            "does not exist", "missing")


def test_missing_report_directory_leaves_no_image(model, tmp_path):
    out = tmp_path / "x.nmb"
    refused(nmc("compile", model, "--target", "cpu", "--calib", CALIB, "-o", out,
                "--report", tmp_path / "missing" / "r.json"), "missing")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".nmc-")] == []


def test_output_equal_to_input_is_refused(model, tmp_path):
    before = model.read_bytes()
    refused(nmc("compile", model, "--target", "cpu", "--calib", CALIB, "-o", model), "is the input")
    assert model.read_bytes() == before
    x = tmp_path / "in.npy"
    np.save(x, np.load(TEST)["x"][:4])
    before = x.read_bytes()
    refused(nmc("run", model, "--input", x, "-o", x), "is the input")
    refused(nmc("run", model, "--input", x, "-o", tmp_path / "." / "in.npy"), "is the input")
    assert x.read_bytes() == before


def test_output_to_a_device_or_directory_is_refused(model, tmp_path):
    fifo = tmp_path / "fifo"  # not a device: a regression must not replace /dev/null by a file
    os.mkfifo(fifo)
    refused(nmc("run", model, "--input", TEST, "-o", fifo), "not a regular file")
    assert fifo.is_fifo()
    refused(nmc("run", model, "--input", TEST, "-o", tmp_path), "directory")


# --------------------------------------------------------------------- 3. input arrays


def _bad_inputs(d: Path) -> dict[str, Path]:
    x = np.load(TEST)["x"]
    out = {}

    def save(name, arr, **kw):
        out[name] = d / f"{name}.npy"
        np.save(out[name], arr, **kw)
    save("empty-batch", x[:0])
    save("object", np.array([1, None], dtype=object), allow_pickle=True)
    save("string", np.array([["a"] * 64]))
    save("complex", x[:3].astype(complex))
    save("datetime", np.zeros((3, 64), "datetime64[s]"))
    nan = x[:3].astype(np.float32)
    nan[0, 0] = np.nan
    save("nan", nan)
    inf = x[:3].astype(np.float32)
    inf[1, 1] = np.inf
    save("inf", inf)
    out["empty-file"] = d / "e.npy"
    out["empty-file"].write_bytes(b"")
    out["truncated-npz"] = d / "t.npz"
    out["truncated-npz"].write_bytes(Path(TEST).read_bytes()[:500])
    out["garbage-npz"] = d / "g.npz"
    out["garbage-npz"].write_bytes(b"PK\x03\x04" + b"garbage" * 20)
    out["non-array-member"] = d / "s.npz"
    np.savez(out["non-array-member"], x=np.array("abc"))
    return out


BAD_INPUTS = ["empty-batch", "object", "string", "complex", "datetime", "nan", "inf", "empty-file",
              "truncated-npz", "garbage-npz", "non-array-member"]


@pytest.mark.parametrize("name", BAD_INPUTS)
@pytest.mark.parametrize("backend", ["emulator", "cpu"])
def test_bad_input_arrays(seed_image, tmp_path, name, backend):
    img = tmp_path / "m.nmb"
    img.write_bytes(seed_image)
    path = _bad_inputs(tmp_path)[name]
    out = tmp_path / "o.npy"
    refused(nmc("run", img, "--backend", backend, "--input", path, "-o", out))
    assert not out.exists()


def test_truncated_sidecar_and_non_utf8_chip(model, tmp_path):
    (tmp_path / "m.nmir.npz").write_bytes((EXAMPLES / "digits_mlp.nmir.npz").read_bytes()[:300])
    refused(nmc("compile", model, "--target", "cpu", "--calib", CALIB, "-o", tmp_path / "x.nmb"), "sidecar")
    chip = tmp_path / "c.toml"
    chip.write_bytes(b'name = "\xff\xfe"\n')
    refused(nmc("compile", EXAMPLES / "digits_mlp.nmir", "--target", chip, "-o", tmp_path / "y.nmb"), "UTF-8")


# ---------------------------------------------------------------------------- 4. models


def _onnx(tmp_path, name, *, w=None, out="y", short=False, string=False, conv=False, kernel=None) -> Path:
    if conv:
        W = np.ones((2, 1, 3, 3), np.float32)
        node = helper.make_node("Conv", ["x", "W"], ["y"], kernel_shape=kernel or [3, 3], name="c")
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])
    else:
        W = np.ones((4, 3), np.float32) if w is None else w
        node = helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    init = numpy_helper.from_array(W, "W")
    if short:
        init.raw_data = init.raw_data[:5]
    if string:
        init = helper.make_tensor("W", TensorProto.STRING, list(W.shape), [b"a"] * W.size)
    y = helper.make_tensor_value_info(out, TensorProto.FLOAT, None)
    m = helper.make_model(helper.make_graph([node], "g", [x], [y], [init]), opset_imports=[helper.make_opsetid("", 17)])
    p = tmp_path / f"{name}.onnx"
    p.write_bytes(m.SerializeToString())
    return p


ONNX_CASES = {
    "output-produced-by-no-node": ({"out": "zz"}, "produced by no node"),
    "nan-weights": ({"w": np.full((4, 3), np.nan, np.float32)}, "non-finite"),
    "inf-weights": ({"w": np.full((4, 3), np.inf, np.float32)}, "non-finite"),
    "raw_data-too-short": ({"short": True}, "cannot be read"),
    "string-initializer": ({"string": True}, "strings"),
    "kernel_shape-disagrees": ({"conv": True, "kernel": [5, 5]}, "kernel_shape"),
}


@pytest.mark.parametrize("name", sorted(ONNX_CASES))
def test_bad_onnx(tmp_path, name):
    kw, word = ONNX_CASES[name]
    out = tmp_path / "o.nmir"
    refused(nmc("import", _onnx(tmp_path, name, **kw), "-o", out), word)
    assert not out.exists()


NMD = "network n\ninput x: [{shape}]\ny = x -> {layer}\noutput y\n"
NMD_CASES = {
    "splat-1e309": ("4", "dense(3, weight = splat(1e309))", "finite"),
    "splat-1e308": ("4", "dense(3, weight = splat(1e308))", "finite"),
    "avgpool-pad-5": ("1, 4, 4", "avgpool(2, pad = 5)", "pads"),
    "random-seed-1e20": ("4", "dense(3, weight = random(normal, seed = 1e20))", "seed"),
    "input-dimension-1e308": ("1, 8, 1e308", "flatten -> dense(3)", "too large"),
    "dense-1e400": ("4", "dense(" + "9" * 400 + ")", "too large"),
}


@pytest.mark.parametrize("name", sorted(NMD_CASES))
def test_bad_nmd(tmp_path, name):
    shape, layer, word = NMD_CASES[name]
    p = tmp_path / "n.nmd"
    p.write_text(NMD.format(shape=shape, layer=layer))
    refused(nmc("import", p), word)


# ------------------------------------------------------------------ 5. depth and size


def test_deep_nesting(tmp_path):
    ir = tmp_path / "deep.nmir"
    ir.write_text("graph @g\n%x = ann.input : tensor<4xf32>\n%y = ann.dense(%x) {weight = dense<" + "[" * 500
                  + "1.0" + "]" * 500 + "> : tensor<1x4xf32>} : tensor<1xf32>\nann.output(%y)\n")
    refused(nmc("import", ir), "deep")
    nmd = tmp_path / "deep.nmd"
    nmd.write_text(NMD.format(shape="4", layer="dense(3, weight = splat(" + "-" * 5000 + "1))"))
    refused(nmc("import", nmd), "deep")
    toml = tmp_path / "deep.toml"
    toml.write_text("a = " + "[" * 2000 + "]" * 2000 + "\n")
    refused(nmc("compile", EXAMPLES / "digits_mlp.nmir", "--target", toml, "-o", tmp_path / "x.nmb"), "deep")


@pytest.mark.parametrize("layer", ["dense(100000000)", "conv(2, kernel = 1e12)"])
def test_huge_layers_are_estimated_first(tmp_path, layer):
    p = tmp_path / "n.nmd"
    p.write_text(NMD.format(shape="1, 8, 8" if "conv" in layer else "4", layer=layer))
    refused(nmc("import", p), "--max-memory")


def test_huge_board_and_long_runs(seed_image, tmp_path):
    text = (EXAMPLES.parent / "targets" / "chips" / "mesh-tiny.toml").read_text()
    chip = tmp_path / "huge.toml"
    chip.write_text(text.replace("cores_x = 4 ", "cores_x = 4096 ").replace("chips_x = 2 ", "chips_x = 4096 ")
                    .replace("cores_y = 4 ", "cores_y = 4096 "))
    refused(nmc("compile", EXAMPLES / "digits_mlp.nmir", "--target", chip, "--calib", CALIB,
                "-o", tmp_path / "x.nmb"), "at most")
    img = tmp_path / "m.nmb"
    img.write_bytes(seed_image)
    for backend in ("emulator", "cpu", "reference"):
        refused(nmc("run", img, "--backend", backend, "--input", TEST, "--timesteps", 100000000), "NMC_MAX_TIMESTEPS")
    refused(nmc("run", img, "--backend", "emulator", "--input", TEST, "--timesteps", 1000000), "NMC_MAX_WORK")


def test_huge_delay(tmp_path):
    text = (EXAMPLES / "recurrent_snn.nmd").read_text().replace("delay = 2ms", "delay = 1e9ms")
    p = tmp_path / "d.nmd"
    p.write_text(text)
    (tmp_path / "rsnn_in.npy").write_bytes((EXAMPLES / "rsnn_in.npy").read_bytes())
    refused(nmc("run", p, "--input", TEST), "delay")


# ---------------------------------------------------------------------------- 6. names


@pytest.mark.parametrize("name", ["", "../../evil", "a b", "x" * 100])
def test_bad_chip_names(tmp_path, name):
    text = (EXAMPLES.parent / "targets" / "chips" / "mesh-tiny.toml").read_text()
    chip = tmp_path / "c.toml"
    chip.write_text(text.replace('name = "mesh-tiny"', f'name = "{name}"'))
    refused(nmc("compile", EXAMPLES / "digits_mlp.nmir", "--target", chip, "-o", tmp_path / "x.nmb"), "chip name")


def test_onnx_damaged_strings_and_attribute_types(tmp_path):
    """Found by the fuzzer: a byte flip that makes a name invalid UTF-8, or an attribute's type 0."""
    p = _onnx(tmp_path, "conv", conv=True)
    m = onnx.load(p)
    m.graph.node[0].attribute[0].type = onnx.AttributeProto.UNDEFINED
    p.write_bytes(m.SerializeToString())
    refused(nmc("import", p), "no type")
    data = _onnx(tmp_path, "mm").read_bytes()
    i = data.index(b"mm")
    p.write_bytes(data[:i] + b"\xff\xfe" + data[i + 2:])
    refused(nmc("import", p), "UTF-8")


# ------------------------------------------------- 5b. the passes' own memory, estimated first

WIDE_SNN = """network wide(dt = 1ms, timesteps = 8)
input x: [4] encode poisson(seed = 1)
pop a: [1000] lif(tau = 20ms, threshold = 1.0)
pop b: [1000] lif(tau = 20ms, threshold = 1.0)
connect x -> a dense(weight = splat(0.5))
connect a -> b dense(weight = splat(0.01))
output b
"""


def test_pass_memory_is_estimated_before_work(tmp_path, monkeypatch):
    """Small inputs (4 numbers a sample, 4 MB of weights) but a million synapses: mapping and
    the run are refused by their estimate, before they start, naming the stage and leaving
    nothing behind."""
    model = tmp_path / "wide.nmd"
    model.write_text(WIDE_SNN)
    np.save(tmp_path / "x.npy", np.full((2, 4), 0.5, np.float32))
    monkeypatch.setenv("NMC_MAX_MEMORY", "64M")  # restored after the test (the CLI option sets it too)
    out = tmp_path / "w.nmb"
    refused(nmc("compile", model, "--target", "mesh", "-o", out, "--report", tmp_path / "r.json", "--max-memory", "16M"),
            "mapping (partition, place, route)", "weights × 32 B", "over the limit of 16 MiB", "--max-memory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wide.nmd", "x.npy"]
    refused(nmc("run", model, "--input", tmp_path / "x.npy", "--max-memory", "40M", "-o", tmp_path / "o.npy"),
            "the run (reference backend)", "over the limit of 40 MiB")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wide.nmd", "x.npy"]
    monkeypatch.setenv("NMC_MAX_MEMORY", "4G")
    assert nmc("compile", model, "--target", "mesh", "-o", out)[0] == 0


def test_calibration_memory_is_estimated_first(tmp_path, monkeypatch):
    monkeypatch.setenv("NMC_MAX_MEMORY", "500K")  # digits_mlp: 148 activations × 200 samples × 24 B = 694 KiB
    refused(nmc("compile", EXAMPLES / "digits_mlp.nmir", "--target", "cpu", "--calib", CALIB, "-o", tmp_path / "m.nmb"),
            "calibration would need about 694 KiB (200 samples × 148 activations × 24 B)", "over the limit of 500 KiB")
    assert not list(tmp_path.iterdir())


MEDIUM = """network medium
input x: [1, 16, 16]
h = x -> conv(8, kernel = 3, pad = 1, weight = random(normal, seed = 1, scale = 0.2)) -> relu -> avgpool(2) -> flatten
y = h -> dense(128, weight = random(normal, seed = 2, scale = 0.1)) -> relu -> dense(10, weight = random(normal, seed = 3, scale = 0.1))
output y
"""
FACTOR = 3  # every estimate lies within [peak, FACTOR × peak] of the measured peak (docs/bad-input.md)


@pytest.mark.slow
def test_estimates_match_measured_peaks():
    """The estimates of nmc/limits.py against tracemalloc's peak on a medium CNN (about 300,000
    synapses once converted): each is at least the peak and at most FACTOR times it."""
    import tracemalloc

    from nmc import limits
    from nmc.compiler import compile_graph
    from nmc.frontends.nmd import parse_nmd
    from nmc.runner import run
    from nmc.semantics import latency_steps

    def peak(fn) -> int:
        tracemalloc.start()
        try:
            fn()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    ann = parse_nmd(MEDIUM)
    rng = np.random.default_rng(0)
    calib = rng.random((200, 1, 16, 16)).astype(np.float32)
    image = compile_graph(ann, "mesh", calibration=calib)
    snn = image.graph
    neurons, synapses = limits.graph_sizes(ann)
    measured = {"calibration": (peak(lambda: compile_graph(ann, "cpu", calibration=calib)),
                                200 * neurons * limits.CALIBRATION_BYTES_PER_ELEMENT)}
    neurons, synapses = limits.graph_sizes(snn)
    n, w, listed = limits.mapped_sizes(snn)
    measured["mapping"] = (peak(lambda: compile_graph(snn, "mesh")), n * limits.MAP_BYTES_PER_NEURON
                           + w * limits.MAP_BYTES_PER_WEIGHT + listed * limits.MAP_BYTES_PER_LISTED_SYNAPSE)
    x = rng.random((100, 1, 16, 16)).astype(np.float32)
    for backend in ("reference", "emulator"):
        for T in (16, 64):
            steps = latency_steps(snn, T)
            _, kept = limits.graph_sizes(snn, expand_convolutions=backend == "reference")
            est = kept * limits.RUN_BYTES_PER_SYNAPSE + 100 * neurons * limits.RUN_BYTES_PER_STATE
            if backend == "reference":
                est += 100 * steps * neurons * limits.REFERENCE_BYTES_PER_STEP
            measured[f"run {backend} T={T}"] = (peak(lambda: run(image, x, backend=backend, timesteps=T)), est)
    for stage, (got, est) in measured.items():
        assert got <= est <= FACTOR * got, f"{stage}: measured {got / 2**20:.1f} MiB, estimated {est / 2**20:.1f} MiB"


def test_replace_ops_is_replace_in_one_sweep():
    """Graph.replace_ops (quantize's one sweep, linear on deep graphs) gives what a loop of
    Graph.replace gives, recurrent projections (forward references) included."""
    from nmc.frontends import load
    from nmc.ir.printer import print_graph

    g = load(str(EXAMPLES / "recurrent_snn.nmd"))
    one, many = g.clone(), g.clone()
    for op in list(one.ops):
        if op.KIND in ("snn.project", "snn.population"):
            one.replace(op, op.with_changes(delay=op.delay + 1) if op.KIND == "snn.project" else op.with_changes())
    many.replace_ops({op: op.with_changes(delay=op.delay + 1) if op.KIND == "snn.project" else op.with_changes()
                      for op in many.ops if op.KIND in ("snn.project", "snn.population")})
    assert print_graph(many, print_blobs=True) == print_graph(one, print_blobs=True) != print_graph(g, print_blobs=True)
